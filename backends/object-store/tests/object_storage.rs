//! Behaviour specific to object storage: the key layout, archive-only repositories, several
//! independent clients racing on refs (in memory, and against a real S3 server when
//! `OSTREE_TEST_S3_URL` is set), and the real `ostree` pulling over plain HTTP from a bucket.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use ostree_backend_object_store::{ObjectStorageBuilder, ObjectStorageStore};
use ostree_core::content::archived_bytes;
use ostree_core::objects::{
    Commit, DirMeta, DirTree, FileMeta, S_IFDIR, S_IFREG, content_checksum,
};
use ostree_core::registry::Registry;
use ostree_core::store::{ObjectStore, ObjectWrite, OpenOptions, RefExpect, RepoMode};
use ostree_core::{Checksum, Error, ObjectKey, ObjectType};
use url::Url;

fn csum(n: u64) -> Checksum {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    Checksum(b)
}

fn counter(c: &Checksum) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c.0[24..]);
    u64::from_be_bytes(b)
}

async fn handle(bucket: &Arc<InMemory>, prefix: &str, opts: OpenOptions) -> ObjectStorageStore {
    ObjectStorageBuilder::new(bucket.clone(), prefix)
        .expect("valid prefix")
        .open(opts)
        .await
        .expect("open")
}

/// `writers` independent handles each add 1 to a counter ref `per_writer` times, in
/// parallel tasks, with read + compare-and-swap: the end value counts every increment.
async fn race_increments(handles: Vec<Arc<dyn ObjectStore>>, per_writer: u64) {
    let r = "heads/counter";
    handles[0]
        .update_ref(r, RefExpect::Any, Some(csum(0)))
        .await
        .expect("reset counter");
    let writers = handles.len() as u64;
    let tasks: Vec<_> = handles
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                let mut done = 0;
                while done < per_writer {
                    let cur = store
                        .read_ref(r)
                        .await
                        .expect("read")
                        .expect("counter exists");
                    let next = csum(counter(&cur) + 1);
                    match store.update_ref(r, RefExpect::Value(cur), Some(next)).await {
                        Ok(()) => done += 1,
                        Err(Error::Precondition { .. }) => conflicts += 1,
                        Err(e) => panic!("increment: {e}"),
                    }
                }
                (store, conflicts)
            })
        })
        .collect();
    let mut last = None;
    let mut conflicts = 0;
    for t in tasks {
        let (store, c) = t.await.expect("writer task");
        conflicts += c;
        last = Some(store);
    }
    let store = last.expect("at least one writer");
    let end = store
        .read_ref(r)
        .await
        .expect("read")
        .expect("counter exists");
    assert_eq!(
        counter(&end),
        writers * per_writer,
        "lost updates ({conflicts} conflicts seen)"
    );
    eprintln!("{writers} writers x {per_writer} increments: {conflicts} conflicts, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_handles_never_lose_ref_updates_in_memory() {
    let bucket = Arc::new(InMemory::new());
    let first = handle(&bucket, "r", common::create()).await;
    let mut handles: Vec<Arc<dyn ObjectStore>> = vec![Arc::new(first)];
    for _ in 0..3 {
        handles.push(Arc::new(handle(&bucket, "r", OpenOptions::default()).await));
    }
    race_increments(handles, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn independent_clients_never_lose_ref_updates_on_s3() {
    let Some(url) = common::fresh_s3_url("race") else {
        return;
    };
    let mut handles = Vec::new();
    for _ in 0..4 {
        // Each open builds its own S3 client: four independent writers.
        handles.push(common::open(&url).await);
    }
    race_increments(handles, 25).await;
}

#[tokio::test]
async fn keys_are_an_archive_repository_layout() {
    let bucket = Arc::new(InMemory::new());
    let store = handle(&bucket, "srv/repo", common::create()).await;
    let meta = FileMeta {
        mode: S_IFREG | 0o644,
        ..Default::default()
    };
    let data = b"hello\n";
    let file = ObjectKey::new(
        content_checksum(&meta, &data[..]).expect("hash"),
        ObjectType::File,
    );
    store
        .put(
            &file,
            ObjectWrite::Content {
                meta: meta.clone(),
                size: 6,
                source: ostree_core::store::ContentSource::Bytes(Bytes::from_static(data)),
            },
        )
        .await
        .expect("put content");
    let dm = DirMeta {
        mode: S_IFDIR | 0o755,
        ..Default::default()
    };
    let dmk = ObjectKey::new(dm.checksum(), ObjectType::DirMeta);
    store
        .put(&dmk, ObjectWrite::Meta(dm.to_bytes().into()))
        .await
        .expect("put dirmeta");
    store
        .update_ref(
            "heads/os/x86_64/main",
            RefExpect::Absent,
            Some(dm.checksum()),
        )
        .await
        .expect("ref");
    store
        .update_ref(
            "remotes/origin/main",
            RefExpect::Absent,
            Some(dm.checksum()),
        )
        .await
        .expect("ref");
    store
        .write_file("summary", Bytes::from_static(b"S"))
        .await
        .expect("summary");
    store
        .write_file("deltas/ab/cd/superblock", Bytes::from_static(b"D"))
        .await
        .expect("delta");

    let mut keys = BTreeSet::new();
    let mut listing = object_store::ObjectStore::list(&*bucket, None);
    while let Some(m) = futures::StreamExt::next(&mut listing).await {
        keys.insert(m.expect("list").location.to_string());
    }
    let hex = |c: Checksum| c.to_hex();
    let want: BTreeSet<String> = [
        "srv/repo/config".to_string(),
        format!(
            "srv/repo/objects/{}/{}.filez",
            &hex(file.checksum)[..2],
            &hex(file.checksum)[2..]
        ),
        format!(
            "srv/repo/objects/{}/{}.dirmeta",
            &hex(dm.checksum())[..2],
            &hex(dm.checksum())[2..]
        ),
        "srv/repo/refs/heads/os/x86_64/main".to_string(),
        "srv/repo/refs/remotes/origin/main".to_string(),
        "srv/repo/summary".to_string(),
        "srv/repo/deltas/ab/cd/superblock".to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, want);

    let get = |k: &str| {
        let bucket = bucket.clone();
        let k = k.to_string();
        async move {
            bucket
                .get(&k.as_str().into())
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes")
        }
    };
    assert_eq!(
        get("srv/repo/config").await,
        Bytes::from_static(b"[core]\nrepo_version=1\nmode=archive-z2\n")
    );
    assert_eq!(
        get("srv/repo/refs/heads/os/x86_64/main").await,
        Bytes::from(format!("{}\n", dm.checksum()))
    );
    let filez = get(&format!(
        "srv/repo/objects/{}/{}.filez",
        &hex(file.checksum)[..2],
        &hex(file.checksum)[2..]
    ))
    .await;
    assert_eq!(
        filez,
        Bytes::from(archived_bytes(&meta, data).expect("encode")),
        "not ostree's .filez encoding"
    );
}

#[tokio::test]
async fn repositories_are_archive_only() {
    let bucket = Arc::new(InMemory::new());
    for mode in [
        RepoMode::Bare,
        RepoMode::BareUser,
        RepoMode::BareUserOnly,
        RepoMode::BareSplitXattrs,
    ] {
        let opts = OpenOptions {
            create: Some(mode),
            ..Default::default()
        };
        let e = ObjectStorageBuilder::new(bucket.clone(), "x")
            .expect("prefix")
            .open(opts)
            .await
            .expect_err("non-archive create");
        assert!(matches!(e, Error::NotImplemented { .. }), "{e:?}");
        assert!(e.to_string().contains("archive"), "{e}");
    }
    // Nothing was written by the refused creations, so there is no repository to open.
    let e = ObjectStorageBuilder::new(bucket.clone(), "x")
        .expect("prefix")
        .open(OpenOptions::default())
        .await
        .expect_err("no repository");
    assert!(e.is_not_found(), "{e:?}");

    bucket
        .put(
            &"bare/config".into(),
            PutPayload::from_static(b"[core]\nrepo_version=1\nmode=bare\n"),
        )
        .await
        .expect("put");
    let e = handle_err(&bucket, "bare").await;
    assert!(
        matches!(e, Error::NotImplemented { .. }) && e.to_string().contains("bare"),
        "{e:?}"
    );
    bucket
        .put(
            &"junk/config".into(),
            PutPayload::from_static(b"[core]\nrepo_version=2\n"),
        )
        .await
        .expect("put");
    assert!(matches!(
        handle_err(&bucket, "junk").await,
        Error::InvalidInput(_)
    ));

    // Creating over an existing archive repository opens it as it is.
    let a = handle(&bucket, "arch", common::create()).await;
    a.update_ref("heads/main", RefExpect::Absent, Some(csum(5)))
        .await
        .expect("ref");
    let b = handle(&bucket, "arch", common::create()).await;
    assert_eq!(b.read_ref("heads/main").await.expect("read"), Some(csum(5)));
    assert_eq!(b.mode(), RepoMode::Archive);
}

async fn handle_err(bucket: &Arc<InMemory>, prefix: &str) -> Error {
    ObjectStorageBuilder::new(bucket.clone(), prefix)
        .expect("prefix")
        .open(OpenOptions::default())
        .await
        .expect_err("should not open")
}

#[tokio::test]
async fn memory_urls_open_fresh_stores_through_the_registry() {
    let reg = Registry::global();
    reg.check().expect("no duplicate plugins");
    let schemes = reg.store_schemes();
    assert!(
        schemes.contains(&"s3") && schemes.contains(&"memory"),
        "{schemes:?}"
    );
    let mut private = Registry::new();
    ostree_backend_object_store::register(&mut private);
    assert_eq!(private.store_schemes(), vec!["memory", "s3"]);

    let url = Url::parse("memory://").expect("static URL");
    let a = common::open(&url).await;
    a.update_ref("heads/main", RefExpect::Absent, Some(csum(1)))
        .await
        .expect("ref");
    let b = common::open(&url).await;
    assert_eq!(
        b.read_ref("heads/main").await.expect("read"),
        None,
        "memory:// opens share state"
    );
    let e = reg
        .open_store(&url, OpenOptions::default())
        .await
        .expect_err("empty memory store");
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(a.to_string(), "memory://");
}

/// A tombstone (a ref deleted by value) reads as absent, is not listed, and can be
/// recreated, also by a second handle.
#[tokio::test]
async fn ref_tombstones_behave_as_absent() {
    let bucket = Arc::new(InMemory::new());
    let a = handle(&bucket, "t", common::create()).await;
    let b = handle(&bucket, "t", OpenOptions::default()).await;
    a.update_ref("heads/x", RefExpect::Absent, Some(csum(1)))
        .await
        .expect("create");
    b.update_ref("heads/x", RefExpect::Value(csum(1)), None)
        .await
        .expect("delete by value");
    assert_eq!(a.read_ref("heads/x").await.expect("read"), None);
    assert!(a.list_refs("heads/").await.expect("list").is_empty());
    let e = a
        .update_ref("heads/x", RefExpect::Value(csum(1)), Some(csum(2)))
        .await
        .expect_err("gone");
    assert!(matches!(e, Error::Precondition { .. }), "{e:?}");
    a.update_ref("heads/x", RefExpect::Absent, None)
        .await
        .expect("absent holds");
    a.update_ref("heads/x", RefExpect::Absent, Some(csum(3)))
        .await
        .expect("recreate over tombstone");
    assert_eq!(b.read_ref("heads/x").await.expect("read"), Some(csum(3)));
}

/// The real `ostree` pulls a commit written by this backend from the bucket over plain HTTP
/// (moto serves anonymous GETs on the public-read bucket `.ci/moto.sh` creates).
#[tokio::test]
async fn real_ostree_pulls_over_http_from_s3() {
    let ostree = std::path::Path::new("/usr/bin/ostree");
    if !ostree.exists() {
        eprintln!("skipping: /usr/bin/ostree is not installed");
        return;
    }
    let Some(url) = common::fresh_s3_url("interop") else {
        return;
    };
    let http =
        common::http_url(&url).expect("an endpoint in OSTREE_TEST_S3_URL or AWS_ENDPOINT_URL");
    let store = common::open(&url).await;

    let put_file = |meta: FileMeta, data: &'static [u8]| {
        let store = store.clone();
        async move {
            let key = ObjectKey::new(
                content_checksum(&meta, data).expect("hash"),
                ObjectType::File,
            );
            let size = if meta.is_symlink() {
                0
            } else {
                data.len() as u64
            };
            let source = ostree_core::store::ContentSource::Bytes(Bytes::from_static(data));
            store
                .put(&key, ObjectWrite::Content { meta, size, source })
                .await
                .expect("put content");
            key.checksum
        }
    };
    let hello = put_file(
        FileMeta {
            mode: S_IFREG | 0o644,
            ..Default::default()
        },
        b"hello from s3\n",
    )
    .await;
    let link = put_file(
        FileMeta {
            mode: ostree_core::objects::S_IFLNK | 0o777,
            symlink_target: Some("hello.txt".into()),
            ..Default::default()
        },
        b"",
    )
    .await;
    let big: &'static [u8] = Box::leak(vec![b'z'; 300_000].into_boxed_slice());
    let bigsum = put_file(
        FileMeta {
            mode: S_IFREG | 0o755,
            ..Default::default()
        },
        big,
    )
    .await;
    let dm = DirMeta {
        mode: S_IFDIR | 0o755,
        ..Default::default()
    };
    let root = DirTree {
        files: vec![
            ("big".into(), bigsum),
            ("hello.txt".into(), hello),
            ("link".into(), link),
        ],
        dirs: vec![],
    };
    let commit = Commit {
        subject: "from the object-store backend".into(),
        timestamp: 1_700_000_000,
        root_tree: root.checksum(),
        root_meta: dm.checksum(),
        ..Default::default()
    };
    for (key, bytes) in [
        (
            ObjectKey::new(dm.checksum(), ObjectType::DirMeta),
            dm.to_bytes(),
        ),
        (
            ObjectKey::new(root.checksum(), ObjectType::DirTree),
            root.to_bytes(),
        ),
        (
            ObjectKey::new(commit.checksum(), ObjectType::Commit),
            commit.to_bytes(),
        ),
    ] {
        store
            .put(&key, ObjectWrite::Meta(bytes.into()))
            .await
            .expect("put metadata");
    }
    store.sync().await.expect("sync");
    store
        .update_ref("heads/main", RefExpect::Absent, Some(commit.checksum()))
        .await
        .expect("ref");

    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("local");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(ostree)
            .arg(format!("--repo={}", repo.display()))
            .args(args)
            .output()
            .expect("running ostree");
        assert!(
            out.status.success(),
            "ostree {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["init", "--mode=archive"]);
    run(&["remote", "add", "--no-gpg-verify", "origin", &http]);
    run(&["pull", "origin", "main"]);
    assert_eq!(
        run(&["rev-parse", "origin:main"]).trim(),
        commit.checksum().to_hex()
    );
    run(&["fsck"]);
    assert_eq!(
        run(&["cat", "origin:main", "/hello.txt"]),
        "hello from s3\n"
    );
    assert_eq!(run(&["cat", "origin:main", "/big"]).len(), big.len());
}
