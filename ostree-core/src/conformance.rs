//! The conformance suite every [`ObjectStore`] implementation runs (feature `conformance`).
//!
//! **Not stable API**: cases are added and tightened as the trait's contract is refined.
//!
//! Each case is a `pub async fn` taking `&dyn ObjectStore` and **panicking** with a message
//! naming the broken guarantee (the suite is test code: a panic is how it reports), like
//! `object_store`'s `integration` module. Cases expect a *fresh, empty* repository each and
//! do not clean up after themselves. A backend's `tests/conformance.rs` is one line:
//!
//! ```ignore
//! ostree_core::conformance_tests!(async || make_store().await);
//! ```
//!
//! which expands to one `#[tokio::test]` per case (see [`crate::conformance_tests!`]), so each failure
//! is named. The closure returns anything implementing [`StoreHandle`]: an
//! `Arc<dyn ObjectStore>`, a `(store, guard)` pair whose guard (a temporary directory) lives as
//! long as the case, or an `Option` of those where `None` means "skip" (see [`skip_unless_env`]).
//!
//! Cases are gated only on what the store reports ([`ObjectStore::mode`] and
//! [`ObjectStore::capabilities`]), never on its name: a `bare-user-only` store, for instance,
//! cannot represent ownership or xattrs, so the cases that need them return early there.
//!
//! What the suite checks, by guarantee of [`crate::store`]:
//!
//! * objects of every type: put / get / has / has_many / delete / list, idempotent put that
//!   leaves the first object untouched, visibility before [`ObjectStore::sync`];
//! * content objects: regular, empty, executable, large, symlink, ownership and xattrs (where
//!   the mode keeps them), from bytes, from a local file, and as archived `.filez` input;
//!   [`ObjectStore::get_raw`] for archive stores;
//! * missing items: [`Error::is_not_found`] for objects, `Ok(None)` for refs and files;
//! * refs: read, nested names, list by directory prefix (sorted), compare-and-swap with
//!   [`RefExpect::Absent`] / [`RefExpect::Value`] / [`RefExpect::Any`], deletion, invalid names
//!   rejected, a losing concurrent writer gets [`Error::Precondition`], and racing writers of
//!   many increments lose none;
//! * plain files: write / read / replace / delete / list (recursive), invalid paths rejected;
//! * `config` (when the store has one) names the store's mode; capabilities are consistent;
//!   locks can be taken.
//!
//! The concurrency cases use real threads when the runtime is multi-threaded (as the macro's
//! tests are) and interleaved futures otherwise.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::config::RepoConfig;
use crate::content::{archived_bytes, verify_archived};
use crate::gvariant::Variant;
use crate::objects::{
    Commit, DirMeta, DirTree, FileMeta, Metadata, S_IFDIR, S_IFLNK, S_IFREG, content_checksum,
};
use crate::store::{ContentSource, ObjectRead, ObjectStore, ObjectWrite, RefExpect, RepoMode};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

// ------------------------------------------------------------------------------------ harness

/// What a store factory hands to the generated tests: something that lends a store for the
/// duration of one case.
pub trait StoreHandle {
    /// The store to test, or `None` to skip the case.
    fn store(&self) -> Option<&dyn ObjectStore>;
}

impl StoreHandle for Arc<dyn ObjectStore> {
    fn store(&self) -> Option<&dyn ObjectStore> {
        Some(&**self)
    }
}

impl StoreHandle for Box<dyn ObjectStore> {
    fn store(&self) -> Option<&dyn ObjectStore> {
        Some(&**self)
    }
}

impl<T: ObjectStore> StoreHandle for Arc<T> {
    fn store(&self) -> Option<&dyn ObjectStore> {
        Some(&**self)
    }
}

/// A store plus something that must outlive it (a temporary directory, a server guard).
impl<S: StoreHandle, G> StoreHandle for (S, G) {
    fn store(&self) -> Option<&dyn ObjectStore> {
        self.0.store()
    }
}

/// `None` skips the case (the factory says why, e.g. with [`skip_unless_env`]).
impl<S: StoreHandle> StoreHandle for Option<S> {
    fn store(&self) -> Option<&dyn ObjectStore> {
        self.as_ref().and_then(StoreHandle::store)
    }
}

/// Read an environment variable a real-server test needs.
///
/// When it is unset, print `skipping: set VAR` and return `None`, unless the comma-separated
/// `OSTREE_TEST_REQUIRE` names `tag` (CI sets `OSTREE_TEST_REQUIRE=s3,http`), in which case
/// a skip is a failure: this panics.
pub fn skip_unless_env(var: &str, tag: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let required = std::env::var("OSTREE_TEST_REQUIRE").unwrap_or_default();
            if required.split(',').any(|t| t.trim() == tag) {
                panic!("OSTREE_TEST_REQUIRE contains '{tag}' but {var} is not set");
            }
            eprintln!("skipping: set {var}");
            None
        }
    }
}

/// Expand to one `#[tokio::test]` per conformance case, each opening a fresh store with the
/// given factory (an `async` closure returning a [`StoreHandle`]).
///
/// ```ignore
/// ostree_core::conformance_tests!(async || make_store().await);
/// ```
///
/// The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dependency.
/// Invoke it once per module; wrap several invocations (one per mode) in separate modules.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_cases!(
            $make;
            metadata_roundtrip,
            put_is_idempotent,
            missing_objects_are_not_found,
            delete_objects,
            list_objects,
            has_many_order,
            put_many_batch,
            content_regular,
            content_empty,
            content_executable,
            content_symlink,
            content_ownership_and_xattrs,
            content_from_path,
            content_large,
            content_archived_input,
            get_raw,
            sync_after_puts,
            refs_read_write,
            refs_compare_and_swap,
            refs_list_prefixes,
            refs_invalid_names,
            refs_losing_writer,
            refs_concurrent_increments,
            files_roundtrip,
            files_invalid_paths,
            config_matches_mode,
            capabilities_consistent,
            lock_guards,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let make = $make;
                let handle = make().await;
                if let Some(store) = $crate::conformance::StoreHandle::store(&handle) {
                    $crate::conformance::$case(store).await;
                }
            }
        )*
    };
}

// ------------------------------------------------------------------------------------ helpers

#[track_caller]
fn must<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e} ({e:?})"),
    }
}

#[track_caller]
fn must_fail<T: std::fmt::Debug>(r: Result<T>, what: &str) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    let e = must_fail(r, what);
    assert!(
        e.is_not_found(),
        "{what}: expected a not-found error, got {e} ({e:?})"
    );
}

#[track_caller]
fn assert_precondition<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    let e = must_fail(r, what);
    assert!(
        matches!(e, Error::Precondition { .. }),
        "{what}: expected Error::Precondition, got {e} ({e:?})"
    );
}

/// A deterministic checksum for ref tests (`n` in the last eight bytes).
fn csum(n: u64) -> Checksum {
    let mut b = [0u8; 32];
    b[0] = 0x5a;
    b[24..].copy_from_slice(&n.to_be_bytes());
    Checksum(b)
}

fn counter(c: &Checksum) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.0[24..]);
    u64::from_be_bytes(b)
}

/// Deterministic, poorly compressible bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small metadata object of each type, all related (a commit over a tree with one dir).
struct MetaSet {
    objects: Vec<(ObjectKey, Bytes)>,
}

fn meta_set(seed: &str) -> MetaSet {
    let dirmeta = DirMeta {
        uid: 0,
        gid: 0,
        mode: S_IFDIR | 0o755,
        xattrs: vec![],
    };
    let sub = DirTree {
        files: vec![(format!("{seed}.txt"), csum(1)), ("z".into(), csum(2))],
        dirs: vec![],
    };
    let root = DirTree {
        files: vec![],
        dirs: vec![("sub".into(), sub.checksum(), dirmeta.checksum())],
    };
    let mut md = Metadata::new();
    md.insert("version", Variant::Str(seed.to_string()));
    let commit = Commit {
        metadata: md,
        subject: format!("conformance {seed}"),
        timestamp: 1_609_459_200,
        root_tree: root.checksum(),
        root_meta: dirmeta.checksum(),
        ..Default::default()
    };
    let mut detached = Metadata::new();
    detached.insert("conformance.note", Variant::Str(format!("detached {seed}")));
    let mut tomb = Metadata::new();
    tomb.insert("commit", Variant::Str(commit.checksum().to_hex()));
    let c = commit.checksum();
    MetaSet {
        objects: vec![
            (
                ObjectKey::new(dirmeta.checksum(), ObjectType::DirMeta),
                dirmeta.to_bytes().into(),
            ),
            (
                ObjectKey::new(sub.checksum(), ObjectType::DirTree),
                sub.to_bytes().into(),
            ),
            (
                ObjectKey::new(root.checksum(), ObjectType::DirTree),
                root.to_bytes().into(),
            ),
            (
                ObjectKey::new(c, ObjectType::Commit),
                commit.to_bytes().into(),
            ),
            (
                ObjectKey::new(c, ObjectType::CommitMeta),
                detached.to_bytes().into(),
            ),
            (
                ObjectKey::new(c, ObjectType::TombstoneCommit),
                tomb.to_bytes().into(),
            ),
        ],
    }
}

fn regular(mode: u32) -> FileMeta {
    FileMeta {
        uid: 0,
        gid: 0,
        mode: S_IFREG | mode,
        symlink_target: None,
        xattrs: vec![],
    }
}

fn content_key(meta: &FileMeta, data: &[u8]) -> ObjectKey {
    ObjectKey::new(
        must(content_checksum(meta, data), "hashing test content"),
        ObjectType::File,
    )
}

fn content_write(meta: &FileMeta, data: &[u8]) -> ObjectWrite {
    ObjectWrite::Content {
        meta: meta.clone(),
        size: if meta.is_symlink() {
            0
        } else {
            data.len() as u64
        },
        source: ContentSource::Bytes(Bytes::copy_from_slice(data)),
    }
}

/// What a store in `mode` gives back for `meta` (bare-user-only keeps neither ownership nor
/// xattrs; every other mode keeps everything).
fn expected_meta(mode: RepoMode, meta: &FileMeta) -> FileMeta {
    let mut m = meta.clone();
    if mode == RepoMode::BareUserOnly {
        m.uid = 0;
        m.gid = 0;
        m.xattrs.clear();
    }
    m
}

fn read_body(r: ObjectRead, what: &str) -> (FileMeta, u64, Vec<u8>) {
    let c = must(r.into_content(), what);
    let mut buf = Vec::new();
    must(
        c.body
            .into_reader()
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(what.to_string(), e)),
        what,
    );
    (c.meta, c.size, buf)
}

/// Put content, then check has/get give it back as the mode represents it.
async fn content_roundtrip(store: &dyn ObjectStore, meta: &FileMeta, data: &[u8], what: &str) {
    let key = content_key(meta, data);
    must(
        store.put(&key, content_write(meta, data)).await,
        &format!("{what}: put"),
    );
    check_content(store, &key, meta, data, what).await;
}

async fn check_content(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    meta: &FileMeta,
    data: &[u8],
    what: &str,
) {
    assert!(
        must(store.has(key).await, &format!("{what}: has")),
        "{what}: has() is false after put"
    );
    let got = must(store.get(key).await, &format!("{what}: get"));
    let (m, size, body) = read_body(got, &format!("{what}: reading the body"));
    assert_eq!(
        m,
        expected_meta(store.mode(), meta),
        "{what}: metadata differs"
    );
    let want: &[u8] = if meta.is_symlink() { b"" } else { data };
    assert_eq!(size, want.len() as u64, "{what}: size differs");
    assert!(
        body == want,
        "{what}: content differs ({} bytes read, {} expected)",
        body.len(),
        want.len()
    );
}

/// Run two futures at once: on two threads when the runtime is multi-threaded (so stores with
/// blocking internals are really raced), interleaved on this task otherwise.
async fn concurrently<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: Future + Send,
    B: Future + Send,
    A::Output: Send,
    B::Output: Send,
{
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return tokio::join!(a, b);
    }
    let barrier = std::sync::Barrier::new(2);
    let (barrier, handle) = (&barrier, &handle);
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let ta = s.spawn(move || {
                barrier.wait();
                handle.block_on(a)
            });
            let tb = s.spawn(move || {
                barrier.wait();
                handle.block_on(b)
            });
            let ra = ta.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let rb = tb.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (ra, rb)
        })
    })
}

// ------------------------------------------------------------------------------------ objects

/// Metadata objects of every type round-trip byte for byte and are visible before `sync`.
pub async fn metadata_roundtrip(store: &dyn ObjectStore) {
    let set = meta_set("roundtrip");
    for (key, bytes) in &set.objects {
        assert!(
            !must(store.has(key).await, "has before put"),
            "{key}: present before put"
        );
        must(
            store.put(key, ObjectWrite::Meta(bytes.clone())).await,
            &format!("put {key}"),
        );
        assert!(
            must(store.has(key).await, "has after put"),
            "{key}: not visible after put"
        );
        let got = must(
            must(store.get(key).await, &format!("get {key}")).into_meta(),
            "into_meta",
        );
        assert_eq!(got, *bytes, "{key}: bytes differ");
    }
    must(store.sync().await, "sync");
    for (key, bytes) in &set.objects {
        let got = must(
            must(store.get(key).await, "get after sync").into_meta(),
            "into_meta",
        );
        assert_eq!(got, *bytes, "{key}: bytes differ after sync");
    }
}

/// Putting an existing object succeeds and leaves the stored one untouched (even when the
/// second put carries other bytes: stores never verify, and never rewrite).
pub async fn put_is_idempotent(store: &dyn ObjectStore) {
    let set = meta_set("idempotent");
    let (key, bytes) = &set.objects[3];
    must(
        store.put(key, ObjectWrite::Meta(bytes.clone())).await,
        "first put",
    );
    must(
        store.put(key, ObjectWrite::Meta(bytes.clone())).await,
        "second identical put",
    );
    must(
        store
            .put(
                key,
                ObjectWrite::Meta(Bytes::from_static(b"not the same bytes")),
            )
            .await,
        "put of an existing key with other bytes",
    );
    let got = must(must(store.get(key).await, "get").into_meta(), "into_meta");
    assert_eq!(got, *bytes, "{key}: a put of an existing object rewrote it");

    let meta = regular(0o644);
    let data = b"idempotent content\n";
    let ckey = content_key(&meta, data);
    must(
        store.put(&ckey, content_write(&meta, data)).await,
        "first content put",
    );
    must(
        store.put(&ckey, content_write(&meta, data)).await,
        "second content put",
    );
    let other = regular(0o600);
    must(
        store
            .put(&ckey, content_write(&other, b"something else"))
            .await,
        "content put of an existing key with other content",
    );
    check_content(store, &ckey, &meta, data, "content after repeated puts").await;
}

/// A missing object: `has` is false, `get`/`get_raw` fail with a not-found error, deleting it
/// is not an error.
pub async fn missing_objects_are_not_found(store: &dyn ObjectStore) {
    for ty in ObjectType::ALL {
        let key = ObjectKey::new(csum(0xdead), ty);
        assert!(
            !must(store.has(&key).await, "has"),
            "{key}: has() of a missing object"
        );
        assert_not_found(store.get(&key).await, &format!("get of missing {key}"));
        if ty.is_meta() || store.mode().is_archive() {
            assert_not_found(
                store.get_raw(&key).await,
                &format!("get_raw of missing {key}"),
            );
        }
        must(
            store.delete(&key).await,
            &format!("delete of missing {key}"),
        );
    }
}

/// Deleting objects of each type removes them (has, get, list) and leaves others alone.
pub async fn delete_objects(store: &dyn ObjectStore) {
    let set = meta_set("delete");
    let meta = regular(0o644);
    let data = b"to be deleted\n";
    let ckey = content_key(&meta, data);
    must(
        store.put(&ckey, content_write(&meta, data)).await,
        "put content",
    );
    for (key, bytes) in &set.objects {
        must(
            store.put(key, ObjectWrite::Meta(bytes.clone())).await,
            "put",
        );
    }
    let mut doomed: Vec<ObjectKey> = set.objects.iter().step_by(2).map(|(k, _)| *k).collect();
    doomed.push(ckey);
    for key in &doomed {
        must(store.delete(key).await, &format!("delete {key}"));
        assert!(
            !must(store.has(key).await, "has"),
            "{key}: still present after delete"
        );
        assert_not_found(store.get(key).await, &format!("get of deleted {key}"));
        must(store.delete(key).await, &format!("second delete of {key}"));
    }
    let listed: BTreeSet<ObjectKey> = must(store.list(None).try_collect().await, "list");
    for key in &doomed {
        assert!(!listed.contains(key), "{key}: listed after delete");
    }
    for (key, bytes) in set.objects.iter().skip(1).step_by(2) {
        assert!(
            listed.contains(key),
            "{key}: deleting others removed it from the listing"
        );
        let got = must(
            must(store.get(key).await, "get survivor").into_meta(),
            "into_meta",
        );
        assert_eq!(got, *bytes, "{key}: survivor changed");
    }
}

/// `list` returns every stored object once, and only objects of the asked type.
pub async fn list_objects(store: &dyn ObjectStore) {
    let set = meta_set("list");
    let mut all: BTreeSet<ObjectKey> = BTreeSet::new();
    for (key, bytes) in &set.objects {
        must(
            store.put(key, ObjectWrite::Meta(bytes.clone())).await,
            "put",
        );
        all.insert(*key);
    }
    for (i, data) in [&b"one"[..], b"two", b""].into_iter().enumerate() {
        let meta = regular(0o644);
        let key = content_key(&meta, data);
        must(
            store.put(&key, content_write(&meta, data)).await,
            &format!("put content {i}"),
        );
        all.insert(key);
    }
    let link = FileMeta {
        mode: S_IFLNK | 0o777,
        symlink_target: Some("target".into()),
        ..Default::default()
    };
    let lkey = content_key(&link, b"");
    must(
        store.put(&lkey, content_write(&link, b"")).await,
        "put symlink",
    );
    all.insert(lkey);

    let listed: Vec<ObjectKey> = must(store.list(None).try_collect().await, "list(None)");
    let set_listed: BTreeSet<ObjectKey> = listed.iter().copied().collect();
    assert_eq!(
        set_listed.len(),
        listed.len(),
        "list(None) returned duplicates: {listed:?}"
    );
    assert_eq!(
        set_listed, all,
        "list(None) of a fresh store differs from what was put"
    );
    for ty in ObjectType::ALL {
        let of_ty: BTreeSet<ObjectKey> = must(
            store.list(Some(ty)).try_collect().await,
            &format!("list({ty})"),
        );
        let want: BTreeSet<ObjectKey> = all.iter().filter(|k| k.ty == ty).copied().collect();
        assert_eq!(of_ty, want, "list(Some({ty})) differs");
    }
}

/// `has_many` answers in the order asked, for many keys (more than any batch size), with
/// duplicates, and for none.
pub async fn has_many_order(store: &dyn ObjectStore) {
    assert!(
        must(store.has_many(&[]).await, "has_many(&[])").is_empty(),
        "has_many of nothing"
    );
    let mut keys = Vec::new();
    let mut want = Vec::new();
    for i in 0..100u64 {
        let tree = DirTree {
            files: vec![(format!("f{i}"), csum(i))],
            dirs: vec![],
        };
        let key = ObjectKey::new(tree.checksum(), ObjectType::DirTree);
        let present = i % 3 != 1;
        if present {
            must(
                store
                    .put(&key, ObjectWrite::Meta(tree.to_bytes().into()))
                    .await,
                "put",
            );
        }
        keys.push(key);
        want.push(present);
    }
    keys.push(keys[0]);
    want.push(want[0]);
    keys.push(keys[1]);
    want.push(want[1]);
    keys.push(ObjectKey::new(keys[0].checksum, ObjectType::Commit));
    want.push(false);
    let got = must(store.has_many(&keys).await, "has_many");
    assert_eq!(got, want, "has_many answers differ from what was put");
}

/// [`ObjectStore::put_many`] stores every object of a batch (content and metadata mixed,
/// one of them twice), each as `put` would.
pub async fn put_many_batch(store: &dyn ObjectStore) {
    must(store.put_many(Vec::new()).await, "put_many of nothing");
    let mut items = Vec::new();
    let mut contents = Vec::new();
    for i in 0..10u32 {
        let meta = regular(0o644 | ((i % 2) * 0o111));
        let data = format!("batched file {i}\n").repeat(i as usize * 50 + 1);
        let key = content_key(&meta, data.as_bytes());
        items.push((key, content_write(&meta, data.as_bytes())));
        contents.push((key, meta, data));
    }
    let tree = DirTree {
        files: vec![("batched".into(), csum(7))],
        dirs: vec![],
    };
    let tkey = ObjectKey::new(tree.checksum(), ObjectType::DirTree);
    items.push((tkey, ObjectWrite::Meta(tree.to_bytes().into())));
    let (k0, m0, d0) = &contents[0];
    items.push((*k0, content_write(m0, d0.as_bytes())));
    must(store.put_many(items).await, "put_many");
    for (key, meta, data) in &contents {
        check_content(store, key, meta, data.as_bytes(), "put_many").await;
    }
    let got = must(store.get(&tkey).await, "get of a batched dirtree");
    assert!(
        matches!(&got, ObjectRead::Meta(b) if b[..] == tree.to_bytes()[..]),
        "put_many: the dirtree differs"
    );
}

/// A regular file's content and metadata round-trip.
pub async fn content_regular(store: &dyn ObjectStore) {
    let meta = regular(0o644);
    content_roundtrip(store, &meta, b"hello world\n", "regular file").await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    content_roundtrip(store, &meta, &binary, "binary file").await;
}

/// An empty regular file round-trips (size 0, not confused with a symlink).
pub async fn content_empty(store: &dyn ObjectStore) {
    content_roundtrip(store, &regular(0o644), b"", "empty file").await;
    content_roundtrip(store, &regular(0o600), b"", "empty file, mode 0600").await;
}

/// Permission bits are kept (0755 executables next to the same bytes at 0644).
pub async fn content_executable(store: &dyn ObjectStore) {
    let data = b"#!/bin/sh\necho hi\n";
    content_roundtrip(store, &regular(0o755), data, "executable").await;
    content_roundtrip(store, &regular(0o644), data, "same bytes, not executable").await;
}

/// A symlink object: metadata with its target, size 0, no body.
pub async fn content_symlink(store: &dyn ObjectStore) {
    for target in ["hello.txt", "/usr/bin/env", "../a/b/c with space"] {
        let meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFLNK | 0o777,
            symlink_target: Some(target.into()),
            xattrs: vec![],
        };
        content_roundtrip(store, &meta, b"", &format!("symlink to {target}")).await;
    }
}

/// Ownership and xattrs are kept by every mode that can represent them (all but
/// `bare-user-only`, which drops both; there the case is skipped).
pub async fn content_ownership_and_xattrs(store: &dyn ObjectStore) {
    if store.mode() == RepoMode::BareUserOnly {
        eprintln!(
            "skipping: {} mode keeps neither ownership nor xattrs",
            store.mode()
        );
        return;
    }
    let meta = FileMeta {
        uid: 1000,
        gid: 100,
        mode: S_IFREG | 0o640,
        symlink_target: None,
        xattrs: vec![
            (b"user.a".to_vec(), b"first".to_vec()),
            (b"user.b".to_vec(), vec![0, 1, 2, 255]),
        ],
    };
    content_roundtrip(
        store,
        &meta,
        b"owned content\n",
        "file with owner and xattrs",
    )
    .await;
    let link = FileMeta {
        uid: 1000,
        gid: 100,
        mode: S_IFLNK | 0o777,
        symlink_target: Some("owned-target".into()),
        xattrs: vec![],
    };
    content_roundtrip(store, &link, b"", "symlink with owner").await;
}

/// Content given as a local file ([`ContentSource::Path`]) is stored like bytes.
pub async fn content_from_path(store: &dyn ObjectStore) {
    let dir = must(
        tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e)),
        "tempdir",
    );
    let path = dir.path().join("source");
    let data = noise(200_000, 7);
    must(
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&data))
            .map_err(|e| Error::io("writing the source file", e)),
        "source file",
    );
    let meta = regular(0o644);
    let key = content_key(&meta, &data);
    let write = ObjectWrite::Content {
        meta: meta.clone(),
        size: data.len() as u64,
        source: ContentSource::Path(path),
    };
    must(store.put(&key, write).await, "put from path");
    drop(dir);
    check_content(store, &key, &meta, &data, "content put from a path").await;
}

/// A large, poorly compressible object (6 MiB) round-trips; backends that spool or stream
/// above some size take that path here.
pub async fn content_large(store: &dyn ObjectStore) {
    let data = noise(6 * 1024 * 1024 + 123, 42);
    content_roundtrip(store, &regular(0o644), &data, "6 MiB file").await;
}

/// [`ObjectWrite::Archived`] input (`.filez` bytes) is decoded by every store; archive stores
/// keep it verbatim.
pub async fn content_archived_input(store: &dyn ObjectStore) {
    let cases = [
        (regular(0o644), b"archived input\n".to_vec()),
        (regular(0o755), Vec::new()),
        (
            FileMeta {
                mode: S_IFLNK | 0o777,
                symlink_target: Some("archived-link".into()),
                ..Default::default()
            },
            Vec::new(),
        ),
    ];
    for (meta, data) in cases {
        let key = content_key(&meta, &data);
        let filez = Bytes::from(must(archived_bytes(&meta, &data), "encoding .filez"));
        must(
            store.put(&key, ObjectWrite::Archived(filez.clone())).await,
            "put archived",
        );
        check_content(store, &key, &meta, &data, "archived input").await;
        if store.mode().is_archive() {
            let raw = must(store.get_raw(&key).await, "get_raw");
            assert_eq!(
                raw, filez,
                "{key}: archive store did not keep .filez input verbatim"
            );
        }
    }
}

/// `get_raw` gives metadata bytes in every mode, and valid `.filez` bytes for content in
/// archive mode (other modes may encode on the fly or answer `NotImplemented`).
pub async fn get_raw(store: &dyn ObjectStore) {
    let set = meta_set("raw");
    for (key, bytes) in &set.objects {
        must(
            store.put(key, ObjectWrite::Meta(bytes.clone())).await,
            "put",
        );
        assert_eq!(
            must(store.get_raw(key).await, "get_raw of metadata"),
            *bytes,
            "{key}: raw bytes"
        );
    }
    let meta = regular(0o644);
    let data = b"raw content\n";
    let key = content_key(&meta, data);
    must(
        store.put(&key, content_write(&meta, data)).await,
        "put content",
    );
    match store.get_raw(&key).await {
        Ok(raw) => {
            must(
                verify_archived(&key.checksum, &raw),
                "get_raw of content must be valid .filez",
            );
            let (m, size, mut r) = must(
                crate::content::read_archived(std::io::Cursor::new(raw.to_vec())),
                "decode",
            );
            let mut body = Vec::new();
            must(
                r.read_to_end(&mut body)
                    .map_err(|e| Error::io("inflating", e)),
                "inflate",
            );
            assert_eq!(
                (m, size, body),
                (
                    expected_meta(store.mode(), &meta),
                    data.len() as u64,
                    data.to_vec()
                )
            );
        }
        Err(Error::NotImplemented { .. }) if !store.mode().is_archive() => {}
        Err(e) => panic!("get_raw of content in {} mode: {e} ({e:?})", store.mode()),
    }
}

/// `sync` succeeds on an empty store and after puts, and objects stay readable.
pub async fn sync_after_puts(store: &dyn ObjectStore) {
    must(store.sync().await, "sync of an empty store");
    let set = meta_set("sync");
    for (key, bytes) in &set.objects {
        must(
            store.put(key, ObjectWrite::Meta(bytes.clone())).await,
            "put",
        );
    }
    content_roundtrip(store, &regular(0o644), b"synced\n", "content before sync").await;
    must(store.sync().await, "sync");
    must(store.sync().await, "second sync");
    let keys: Vec<ObjectKey> = set.objects.iter().map(|(k, _)| *k).collect();
    let present = must(store.has_many(&keys).await, "has_many after sync");
    assert!(
        present.iter().all(|p| *p),
        "objects missing after sync: {present:?}"
    );
}

// ------------------------------------------------------------------------------------ refs

/// Refs: missing is `None`; written refs read back; nested names work.
pub async fn refs_read_write(store: &dyn ObjectStore) {
    assert_eq!(
        must(store.read_ref("heads/main").await, "read missing ref"),
        None
    );
    for (i, name) in [
        "heads/main",
        "heads/a/b/c",
        "remotes/origin/x86_64/stable",
        "mirrors/org.example.Coll/main",
    ]
    .into_iter()
    .enumerate()
    {
        must(
            store
                .update_ref(name, RefExpect::Absent, Some(csum(i as u64)))
                .await,
            &format!("create {name}"),
        );
        assert_eq!(
            must(store.read_ref(name).await, "read"),
            Some(csum(i as u64)),
            "{name}"
        );
    }
    must(store.sync().await, "sync");
    assert_eq!(
        must(store.read_ref("heads/a/b/c").await, "read nested"),
        Some(csum(1))
    );
    assert_eq!(
        must(store.read_ref("heads/a").await, "read a ref's parent dir"),
        None
    );
    assert_eq!(
        must(store.read_ref("heads/a/b/c/d").await, "read below a ref"),
        None
    );
}

/// Compare-and-swap: `Absent`, `Value`, `Any`, deletion; a failed precondition is
/// [`Error::Precondition`] and changes nothing.
pub async fn refs_compare_and_swap(store: &dyn ObjectStore) {
    let r = "heads/cas";
    let (a, b, c) = (csum(1), csum(2), csum(3));
    assert_precondition(
        store.update_ref(r, RefExpect::Value(a), Some(b)).await,
        "Value on a missing ref",
    );
    assert_eq!(
        must(store.read_ref(r).await, "read"),
        None,
        "failed CAS created the ref"
    );
    must(
        store.update_ref(r, RefExpect::Absent, Some(a)).await,
        "Absent on a missing ref",
    );
    assert_precondition(
        store.update_ref(r, RefExpect::Absent, Some(b)).await,
        "Absent on an existing ref",
    );
    assert_eq!(
        must(store.read_ref(r).await, "read"),
        Some(a),
        "failed Absent changed the ref"
    );
    must(
        store.update_ref(r, RefExpect::Value(a), Some(b)).await,
        "Value with the current value",
    );
    assert_eq!(must(store.read_ref(r).await, "read"), Some(b));
    assert_precondition(
        store.update_ref(r, RefExpect::Value(a), Some(c)).await,
        "Value with a stale value",
    );
    assert_eq!(
        must(store.read_ref(r).await, "read"),
        Some(b),
        "stale CAS changed the ref"
    );
    must(
        store.update_ref(r, RefExpect::Value(b), Some(b)).await,
        "Value to the same value",
    );
    must(
        store.update_ref(r, RefExpect::Any, Some(c)).await,
        "Any over an existing ref",
    );
    assert_eq!(must(store.read_ref(r).await, "read"), Some(c));

    // Deletion.
    assert_precondition(
        store.update_ref(r, RefExpect::Value(a), None).await,
        "delete with a stale value",
    );
    assert_eq!(
        must(store.read_ref(r).await, "read"),
        Some(c),
        "stale delete removed the ref"
    );
    must(
        store.update_ref(r, RefExpect::Value(c), None).await,
        "delete with the current value",
    );
    assert_eq!(must(store.read_ref(r).await, "read deleted"), None);
    assert!(
        must(store.list_refs("heads/").await, "list")
            .iter()
            .all(|(n, _)| n != r),
        "deleted ref still listed"
    );
    assert_precondition(
        store.update_ref(r, RefExpect::Value(c), None).await,
        "delete of a deleted ref by value",
    );
    must(
        store.update_ref(r, RefExpect::Absent, Some(a)).await,
        "recreate after delete",
    );
    assert_eq!(must(store.read_ref(r).await, "read recreated"), Some(a));
    must(
        store.update_ref(r, RefExpect::Any, None).await,
        "delete with Any",
    );
    assert_eq!(must(store.read_ref(r).await, "read"), None);
    must(
        store.update_ref(r, RefExpect::Any, None).await,
        "delete of a missing ref with Any",
    );
    must(
        store.update_ref(r, RefExpect::Any, Some(b)).await,
        "Any on a missing ref",
    );
    assert_eq!(must(store.read_ref(r).await, "read"), Some(b));
}

/// `list_refs` by directory prefix: names relative to `refs/`, sorted, nested included, other
/// directories excluded.
pub async fn refs_list_prefixes(store: &dyn ObjectStore) {
    let refs = [
        ("heads/main", 1),
        ("heads/a/b/c", 2),
        ("heads/a/d", 3),
        ("heads/z", 4),
        ("remotes/origin/main", 5),
        ("remotes/origin/x86_64/stable", 6),
        ("remotes/other/main", 7),
        ("mirrors/org.example.Coll/main", 8),
    ];
    for (name, n) in refs {
        must(
            store.update_ref(name, RefExpect::Any, Some(csum(n))).await,
            &format!("write {name}"),
        );
    }
    let expect = |prefix: &str| -> Vec<(String, Checksum)> {
        let mut v: Vec<(String, Checksum)> = refs
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, c)| (n.to_string(), csum(*c)))
            .collect();
        v.sort();
        v
    };
    for prefix in [
        "heads/",
        "heads/a/",
        "remotes/",
        "remotes/origin/",
        "mirrors/",
        "",
    ] {
        assert_eq!(
            must(
                store.list_refs(prefix).await,
                &format!("list_refs({prefix:?})")
            ),
            expect(prefix),
            "list_refs({prefix:?})"
        );
    }
    assert!(
        must(
            store.list_refs("remotes/nowhere/").await,
            "list of a missing dir"
        )
        .is_empty(),
        "list_refs of a directory with no refs"
    );
}

/// Ref names that are empty or could escape `refs/` are rejected by `update_ref`.
pub async fn refs_invalid_names(store: &dyn ObjectStore) {
    for name in [
        "",
        "/heads/x",
        "heads/../../config",
        "heads/./x",
        "heads//x",
        "heads/x/",
        "..",
        "heads/x\0y",
    ] {
        must_fail(
            store.update_ref(name, RefExpect::Any, Some(csum(1))).await,
            &format!("update_ref({name:?})"),
        );
    }
    assert!(
        must(store.list_refs("").await, "list").is_empty(),
        "an invalid name created a ref"
    );
}

/// Two writers race from the same value: exactly one wins, the other gets
/// [`Error::Precondition`], and the ref holds the winner's value.
pub async fn refs_losing_writer(store: &dyn ObjectStore) {
    let r = "heads/race";
    for round in 0..100u64 {
        let base = csum(round * 10);
        must(
            store.update_ref(r, RefExpect::Any, Some(base)).await,
            "reset",
        );
        let (x, y) = (csum(round * 10 + 1), csum(round * 10 + 2));
        let (ra, rb) = concurrently(
            store.update_ref(r, RefExpect::Value(base), Some(x)),
            store.update_ref(r, RefExpect::Value(base), Some(y)),
        )
        .await;
        let now = must(store.read_ref(r).await, "read");
        match (&ra, &rb) {
            (Ok(()), Err(Error::Precondition { .. })) => assert_eq!(now, Some(x), "round {round}"),
            (Err(Error::Precondition { .. }), Ok(())) => assert_eq!(now, Some(y), "round {round}"),
            _ => panic!(
                "round {round}: expected one winner and one Precondition, got {ra:?} and {rb:?}"
            ),
        }
        // Creation races the same way.
        let fresh = format!("heads/race-new-{round}");
        let (ca, cb) = concurrently(
            store.update_ref(&fresh, RefExpect::Absent, Some(x)),
            store.update_ref(&fresh, RefExpect::Absent, Some(y)),
        )
        .await;
        assert!(
            matches!(
                (&ca, &cb),
                (Ok(()), Err(Error::Precondition { .. }))
                    | (Err(Error::Precondition { .. }), Ok(()))
            ),
            "round {round}: racing creations: {ca:?} and {cb:?}"
        );
    }
}

/// Two tasks each add 1 to a counter ref N times with read + CAS, retrying on
/// [`Error::Precondition`]: no increment is lost.
pub async fn refs_concurrent_increments(store: &dyn ObjectStore) {
    const N: u64 = 25;
    let r = "heads/counter";
    must(
        store.update_ref(r, RefExpect::Absent, Some(csum(0))).await,
        "create counter",
    );
    let worker = || async {
        let mut conflicts = 0u64;
        let mut done = 0;
        while done < N {
            let cur =
                must(store.read_ref(r).await, "read counter").expect("the counter ref exists");
            match store
                .update_ref(r, RefExpect::Value(cur), Some(csum(counter(&cur) + 1)))
                .await
            {
                Ok(()) => done += 1,
                Err(Error::Precondition { .. }) => conflicts += 1,
                Err(e) => panic!("increment: {e} ({e:?})"),
            }
            assert!(conflicts < 100 * N, "no progress: {conflicts} conflicts");
        }
        conflicts
    };
    let (ca, cb) = concurrently(worker(), worker()).await;
    let end = must(store.read_ref(r).await, "read").expect("the counter ref exists");
    assert_eq!(
        counter(&end),
        2 * N,
        "lost increments ({ca} + {cb} conflicts seen)"
    );
}

// ------------------------------------------------------------------------------------ files

/// Plain files: missing is `None`, write/read/replace/delete, nested directories created as
/// needed, `list_files` recursive and relative to the repository.
pub async fn files_roundtrip(store: &dyn ObjectStore) {
    assert_eq!(
        must(store.read_file("state/none").await, "read missing"),
        None
    );
    let c = csum(9).to_hex();
    let partial = format!("state/{c}.commitpartial");
    must(
        store.write_file(&partial, Bytes::new()).await,
        "write empty file",
    );
    assert_eq!(
        must(store.read_file(&partial).await, "read empty"),
        Some(Bytes::new())
    );
    let sb = "deltas/ab/cdef/superblock";
    let bin = Bytes::from(noise(5000, 3));
    must(store.write_file(sb, bin.clone()).await, "write nested");
    assert_eq!(must(store.read_file(sb).await, "read nested"), Some(bin));
    must(
        store.write_file(sb, Bytes::from_static(b"replaced")).await,
        "replace",
    );
    assert_eq!(
        must(store.read_file(sb).await, "read replaced"),
        Some(Bytes::from_static(b"replaced"))
    );
    must(
        store
            .write_file("deltas/ab/cdef/0", Bytes::from_static(b"part"))
            .await,
        "write part",
    );
    must(
        store
            .write_file("summary", Bytes::from_static(b"sum"))
            .await,
        "write summary",
    );
    assert_eq!(
        must(store.read_file("summary").await, "read summary"),
        Some(Bytes::from_static(b"sum"))
    );

    let mut state = must(store.list_files("state/").await, "list state/");
    state.sort();
    assert_eq!(state, vec![partial.clone()], "list_files(state/)");
    let mut deltas = must(store.list_files("deltas/").await, "list deltas/");
    deltas.sort();
    assert_eq!(
        deltas,
        vec!["deltas/ab/cdef/0".to_string(), sb.to_string()],
        "list_files(deltas/)"
    );
    assert!(must(store.list_files("nothing-here/").await, "list missing dir").is_empty());

    must(store.delete_file(&partial).await, "delete");
    assert_eq!(must(store.read_file(&partial).await, "read deleted"), None);
    must(store.delete_file(&partial).await, "delete missing");
    assert!(must(store.list_files("state/").await, "list after delete").is_empty());
    // Files never show up as objects or refs.
    assert!(
        must(store.list_refs("").await, "list_refs").is_empty(),
        "plain files listed as refs"
    );
    let objs: Vec<ObjectKey> = must(store.list(None).try_collect().await, "list");
    assert!(objs.is_empty(), "plain files listed as objects: {objs:?}");
}

/// Paths that are absolute, empty, contain `.`/`..`/empty components, or point into
/// `objects/` or `refs/` are rejected by every plain-file operation.
pub async fn files_invalid_paths(store: &dyn ObjectStore) {
    for p in [
        "",
        "/etc/passwd",
        "../outside",
        "state/../../outside",
        "state/./x",
        "state//x",
        "objects/ab/cd.commit",
        "refs/heads/main",
        "objects",
        "refs",
    ] {
        must_fail(
            store.write_file(p, Bytes::from_static(b"x")).await,
            &format!("write_file({p:?})"),
        );
        must_fail(store.read_file(p).await, &format!("read_file({p:?})"));
        must_fail(store.delete_file(p).await, &format!("delete_file({p:?})"));
    }
    assert!(
        must(store.list_refs("").await, "list_refs").is_empty(),
        "a rejected path wrote a ref"
    );
}

// ------------------------------------------------------------------------------------ misc

/// A store that has a `config` names its own mode there.
pub async fn config_matches_mode(store: &dyn ObjectStore) {
    if let Some(text) = must(store.read_file("config").await, "read config") {
        let cfg = must(RepoConfig::parse(&text), "parse config");
        assert_eq!(
            must(cfg.mode(), "config mode"),
            store.mode(),
            "config names another mode"
        );
    }
}

/// What capabilities promise is there: `local_root` is a directory, `local_path` finds
/// stored objects (and only those).
pub async fn capabilities_consistent(store: &dyn ObjectStore) {
    let caps = store.capabilities();
    if caps.local_root {
        let root = store
            .local_root()
            .expect("capabilities().local_root promises local_root()");
        assert!(
            root.is_dir(),
            "local_root {} is not a directory",
            root.display()
        );
    }
    let meta = regular(0o644);
    let data = b"local\n";
    let key = content_key(&meta, data);
    must(store.put(&key, content_write(&meta, data)).await, "put");
    let set = meta_set("caps");
    let (mkey, bytes) = &set.objects[0];
    must(
        store.put(mkey, ObjectWrite::Meta(bytes.clone())).await,
        "put meta",
    );
    if caps.local_objects {
        for k in [&key, mkey] {
            let p = store
                .local_path(k)
                .unwrap_or_else(|| panic!("local_objects but no local_path for {k}"));
            assert!(
                p.symlink_metadata().is_ok(),
                "local_path {} of {k} does not exist",
                p.display()
            );
        }
        assert_eq!(
            store.local_path(&ObjectKey::new(csum(77), ObjectType::File)),
            None,
            "local_path of a missing object"
        );
    } else {
        assert_eq!(
            store.local_path(&key),
            None,
            "local_path without capabilities().local_objects"
        );
    }
    if caps.hardlink_checkout {
        assert!(caps.local_objects, "hardlink_checkout needs local_objects");
        assert!(
            !store.mode().is_archive(),
            "hardlink_checkout in archive mode"
        );
    }
}

/// Shared locks can be held together; an exclusive one can be taken once they are dropped.
pub async fn lock_guards(store: &dyn ObjectStore) {
    let a = must(store.lock(false).await, "shared lock");
    let b = must(store.lock(false).await, "second shared lock");
    drop((a, b));
    let x = must(store.lock(true).await, "exclusive lock");
    drop(x);
    let again = must(store.lock(false).await, "shared lock after exclusive");
    drop(again);
}
