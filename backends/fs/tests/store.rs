//! FsStore's own behaviour: staging and sync, aborted handles, dead staging directories, refs
//! compare-and-swap across handles, locks, opening and creating, the registry.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::TryStreamExt;
use ostree_backend_fs::FsStore;
use ostree_core::objects::{FileMeta, S_IFLNK, S_IFREG};
use ostree_core::registry::Registry;
use ostree_core::store::{
    ContentSource, ObjectRead, ObjectStore, ObjectWrite, OpenOptions, RefExpect, RepoMode,
};
use ostree_core::{Checksum, Error, ObjectKey, ObjectType};

fn staging_dirs(repo: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staging-") && !n.ends_with("-lock"))
        .collect();
    v.sort();
    v
}

/// Entries inside the staging directory `name`.
fn staged_entries(repo: &std::path::Path, name: &str) -> usize {
    std::fs::read_dir(repo.join("tmp").join(name))
        .unwrap()
        .count()
}

fn lock_files(repo: &std::path::Path) -> usize {
    std::fs::read_dir(repo.join("tmp"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-lock")
        })
        .count()
}

/// Files (not directories) under `objects/`.
fn published_files(repo: &std::path::Path) -> Vec<String> {
    let mut v = Vec::new();
    for d in std::fs::read_dir(repo.join("objects")).unwrap() {
        let d = d.unwrap();
        if d.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(d.path()).unwrap() {
                v.push(f.unwrap().path().display().to_string());
            }
        } else {
            v.push(d.path().display().to_string());
        }
    }
    v
}

fn counter_csum(n: u64) -> Checksum {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    Checksum(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_until_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let a = new_repo(&p, RepoMode::BareUser).await;
    let b = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    let objs = v1_objects();
    for o in &objs {
        a.put(&o.key, o.write()).await.unwrap();
    }
    // Visible at once to the writer (has, get, local_path, list), not to anyone else.
    for o in &objs {
        assert!(a.has(&o.key).await.unwrap());
        assert!(!b.has(&o.key).await.unwrap());
        let lp = a.local_path(&o.key).unwrap();
        assert!(lp.starts_with(p.join("tmp")), "{}", lp.display());
        assert!(b.local_path(&o.key).is_none());
        // The writer's staged object is not in objects/: no (directory, name) for it.
        assert!(a.local_at(&o.key).is_none());
        // The other handle names where it would be; it is not there yet.
        let (dir, name) = b.local_at(&o.key).unwrap();
        assert_eq!(
            rustix::fs::statat(dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).err(),
            Some(rustix::io::Errno::NOENT)
        );
    }
    let listed: BTreeSet<ObjectKey> = a.list(None).try_collect().await.unwrap();
    assert_eq!(listed, objs.iter().map(|o| o.key).collect());
    // (Fan-out directories may exist: unnamed files are created in them.)
    assert_eq!(
        published_files(&p),
        Vec::<String>::new(),
        "nothing published before sync"
    );
    let hello = &objs[0];
    let c = a.get(&hello.key).await.unwrap().into_content().unwrap();
    let mut body = Vec::new();
    c.body.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, b"hello world\n");

    a.sync().await.unwrap();
    for o in &objs {
        assert!(b.has(&o.key).await.unwrap());
        let lp = a.local_path(&o.key).unwrap();
        assert!(lp.starts_with(p.join("objects")));
        // local_at names the same file, relative to objects/.
        for s in [&a, &b] {
            let (dir, name) = s.local_at(&o.key).unwrap();
            assert_eq!(p.join("objects").join(&name), lp);
            let st = rustix::fs::statat(dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .unwrap();
            assert_eq!(st.st_ino, std::fs::symlink_metadata(&lp).unwrap().ino());
        }
    }
    // list does not repeat objects that are both staged-known and published.
    let listed: Vec<ObjectKey> = a.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), objs.len());
    let commits: Vec<ObjectKey> = b
        .list(Some(ObjectType::Commit))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(commits, [objs[6].key]);
    // A second sync with nothing staged is a no-op; the staging dir is kept for reuse.
    a.sync().await.unwrap();
    let dirs = staging_dirs(&p);
    assert_eq!(dirs.len(), 1);
    assert!(
        dirs[0].starts_with(&ostree_core::hostenv::staging_prefix()),
        "named after this boot as ostree names its own: {}",
        dirs[0]
    );
    // A completed transaction: the directory and its lock go with the handle.
    drop(a);
    assert!(staging_dirs(&p).is_empty());
    assert_eq!(lock_files(&p), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_without_sync_discards() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let a = new_repo(&p, RepoMode::Archive).await;
    let objs = v1_objects();
    for o in &objs {
        a.put(&o.key, o.write()).await.unwrap();
    }
    let dirs = staging_dirs(&p);
    assert_eq!(dirs.len(), 1);
    // An aborted transaction: nothing published, the directory stays (emptied, unlocked) for
    // this boot's next transaction, as ostree keeps its own.
    drop(a);
    assert_eq!(staging_dirs(&p), dirs);
    assert_eq!(staged_entries(&p, &dirs[0]), 0);
    assert_eq!(lock_files(&p), 0);
    let b = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    for o in &objs {
        assert!(!b.has(&o.key).await.unwrap());
    }
    let listed: Vec<ObjectKey> = b.list(None).try_collect().await.unwrap();
    assert!(listed.is_empty());
    // The next writer of this boot takes it over, and removes it once its transaction is done.
    b.put(&objs[0].key, objs[0].write()).await.unwrap();
    assert_eq!(staging_dirs(&p), dirs);
    assert_eq!(lock_files(&p), 1);
    b.sync().await.unwrap();
    drop(b);
    assert!(staging_dirs(&p).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_staging_removed_live_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let live = new_repo(&p, RepoMode::Bare).await;
    assert!(
        staging_dirs(&p).is_empty(),
        "a handle that writes nothing stages nothing"
    );
    let (_, o) = file(0o644, b"live\n", vec![]);
    live.put(&o.key, o.write()).await.unwrap();
    // A transaction is open: it has its (locked) staging directory, as ostree's do.
    let live_dir = staging_dirs(&p);
    assert_eq!(live_dir.len(), 1);
    assert!(live.local_path(&o.key).unwrap().starts_with(p.join("tmp")));
    // Crashed writers of another boot (ostree's naming, and our naming before boot ids), with
    // an orphaned lock file, and an aborted transaction of this boot that nobody holds.
    std::fs::create_dir_all(p.join("tmp/staging-0123-other-boot-dead00/sub")).unwrap();
    std::fs::write(
        p.join("tmp/staging-0123-other-boot-dead00/sub/o1"),
        b"partial",
    )
    .unwrap();
    std::fs::write(p.join("tmp/staging-0123-other-boot-dead00-lock"), b"").unwrap();
    std::fs::create_dir(p.join("tmp/staging-rs-00dead00")).unwrap();
    std::fs::write(p.join("tmp/staging-rs-0orphan0-lock"), b"").unwrap();
    let mine = format!("{}left00", ostree_core::hostenv::staging_prefix());
    std::fs::create_dir(p.join("tmp").join(&mine)).unwrap();
    std::fs::write(p.join("tmp").join(&mine).join("o0"), b"junk").unwrap();
    let other = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    assert_eq!(
        staging_dirs(&p).len(),
        4,
        "opening cleans nothing (as ostree)"
    );
    // The next transaction of this boot reuses the unlocked directory, emptied.
    let (_, o2) = file(0o644, b"second\n", vec![]);
    other.put(&o2.key, o2.write()).await.unwrap();
    assert!(!p.join("tmp").join(&mine).join("o0").exists());
    assert!(p.join("tmp").join(format!("{mine}-lock")).exists());
    // Completing it cleans tmp/ as ostree's commit_transaction does.
    other.sync().await.unwrap();
    let mut expect = live_dir.clone();
    expect.push(mine.clone());
    expect.sort();
    assert_eq!(
        staging_dirs(&p),
        expect,
        "other boots' dirs removed; the live one and this boot's one in use kept"
    );
    assert!(!p.join("tmp/staging-0123-other-boot-dead00-lock").exists());
    assert!(!p.join("tmp/staging-rs-0orphan0-lock").exists());
    assert!(live.has(&o.key).await.unwrap());
    live.sync().await.unwrap();
    assert!(other.has(&o.key).await.unwrap());
    drop(other);
    assert_eq!(staging_dirs(&p), live_dir);
}

/// Leftovers of killed processes in `tmp/` (spool files, checkout-cache staging) expire after
/// `core.tmp-expiry-secs` when a transaction completes, as with ostree; recent and
/// future-dated ones stay, and merely opening the repository removes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_leftovers_expire() {
    use std::time::{Duration, SystemTime};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    drop(new_repo(&p, RepoMode::BareUser).await);
    let set_mtime = |rel: &str, t: SystemTime| {
        std::fs::File::open(p.join(rel))
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let one_transaction = async |content: &[u8]| {
        let s = FsStore::open(&p, OpenOptions::default()).await.unwrap();
        let (_, o) = file(0o644, content, vec![]);
        s.put(&o.key, o.write()).await.unwrap();
        s.sync().await.unwrap();
    };
    let day = Duration::from_secs(86_400);
    std::fs::write(p.join("tmp/.pull-123-0"), b"spooled").unwrap();
    set_mtime("tmp/.pull-123-0", SystemTime::now() - 2 * day);
    std::fs::create_dir_all(p.join("tmp/ucache-123-00ff/ab")).unwrap();
    std::fs::write(p.join("tmp/ucache-123-00ff/ab/cd.file"), b"x").unwrap();
    set_mtime("tmp/ucache-123-00ff", SystemTime::now() - 2 * day);
    std::fs::write(p.join("tmp/.pull-456-0"), b"recent").unwrap();
    std::fs::write(p.join("tmp/future"), b"").unwrap();
    set_mtime("tmp/future", SystemTime::now() + 365 * day);
    set_mtime("tmp/cache", SystemTime::now() - 2 * day);
    drop(FsStore::open(&p, OpenOptions::default()).await.unwrap());
    assert!(p.join("tmp/.pull-123-0").exists(), "removed by an open");
    one_transaction(b"first\n").await;
    assert!(!p.join("tmp/.pull-123-0").exists());
    assert!(!p.join("tmp/ucache-123-00ff").exists());
    assert!(p.join("tmp/.pull-456-0").exists());
    assert!(p.join("tmp/future").exists());
    assert!(p.join("tmp/cache").is_dir());
    // A shorter expiry set in the config applies.
    let cfg = std::fs::read_to_string(p.join("config")).unwrap();
    std::fs::write(
        p.join("config"),
        cfg.replace("[core]\n", "[core]\ntmp-expiry-secs=60\n"),
    )
    .unwrap();
    set_mtime(
        "tmp/.pull-456-0",
        SystemTime::now() - Duration::from_secs(120),
    );
    one_transaction(b"second\n").await;
    assert!(!p.join("tmp/.pull-456-0").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_off_publishes_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let a = FsStore::open(
        &p,
        OpenOptions {
            create: Some(RepoMode::BareUserOnly),
            fsync: Some(false),
        },
    )
    .await
    .unwrap();
    assert!(!a.fsync_enabled());
    let b = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    assert!(b.fsync_enabled());
    for o in &v1_objects() {
        a.put(&o.key, o.write()).await.unwrap();
        assert!(b.has(&o.key).await.unwrap());
    }
    // core.fsync=false in config, and per-object-fsync, are honoured.
    std::fs::write(
        p.join("config"),
        "[core]\nrepo_version=1\nmode=bare-user-only\nfsync=false\n",
    )
    .unwrap();
    assert!(
        !FsStore::open(&p, OpenOptions::default())
            .await
            .unwrap()
            .fsync_enabled()
    );
    std::fs::write(
        p.join("config"),
        "[core]\nrepo_version=1\nmode=bare-user-only\nper-object-fsync=true\n",
    )
    .unwrap();
    let c = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    let (_, o) = file(0o755, b"per object\n", vec![]);
    c.put(&o.key, o.write()).await.unwrap();
    assert!(b.has(&o.key).await.unwrap());
    c.sync().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = Arc::new(new_repo(&p, RepoMode::BareUser).await);
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for i in 0..50u32 {
                // Half shared between tasks (same object put concurrently), half distinct.
                let content = if i % 2 == 0 {
                    format!("shared {i}")
                } else {
                    format!("task {t} item {i}")
                };
                let (_, o) = file(0o644, content.as_bytes(), vec![]);
                store.put(&o.key, o.write()).await.unwrap();
                keys.push(o.key);
            }
            keys
        }));
    }
    let mut all = BTreeSet::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    store.sync().await.unwrap();
    let other = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    let listed: BTreeSet<ObjectKey> = other.list(None).try_collect().await.unwrap();
    assert_eq!(listed, all);
    // No leftovers staged: every duplicate write was dropped.
    for d in staging_dirs(&p) {
        assert_eq!(std::fs::read_dir(p.join("tmp").join(d)).unwrap().count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_from_path_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    for mode in MODES {
        let p = tmp.path().join(format!("r-{}", mode.name()));
        let store = new_repo(&p, mode).await;
        let meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o755,
            symlink_target: None,
            xattrs: vec![],
        };
        let c = ostree_core::objects::content_checksum(&meta, &data[..]).unwrap();
        let key = ObjectKey::new(c, ObjectType::File);
        let w = ObjectWrite::Content {
            meta: meta.clone(),
            size: data.len() as u64,
            source: ContentSource::Path(src.clone()),
        };
        store.put(&key, w).await.unwrap();
        // A size that does not match the file is refused.
        let bad = ObjectWrite::Content {
            meta: meta.clone(),
            size: 10,
            source: ContentSource::Path(src.clone()),
        };
        let (_, other) = file(0o644, b"other", vec![]);
        assert!(store.put(&other.key, bad).await.is_err());
        store.sync().await.unwrap();
        let got = store.get(&key).await.unwrap().into_content().unwrap();
        assert_eq!(got.meta, meta);
        let mut body = Vec::new();
        got.body.into_reader().read_to_end(&mut body).unwrap();
        assert!(body == data, "{mode}: content");
        let md = std::fs::metadata(store.local_path(&key).unwrap()).unwrap();
        let expect_perm = match mode {
            RepoMode::Archive => 0o644,
            _ => 0o755,
        };
        assert_eq!(md.permissions().mode() & 0o7777, expect_perm, "{mode}");
        if mode != RepoMode::Archive {
            assert_eq!(md.mtime(), 0, "{mode}: mtime");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_user_representation() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = new_repo(&p, RepoMode::BareUser).await;
    // setuid, g+w, o+w: the file keeps (mode & 0775) | 0400; the real mode is in the xattr.
    let meta = FileMeta {
        uid: 1000,
        gid: 1000,
        mode: S_IFREG | 0o4037,
        symlink_target: None,
        xattrs: vec![
            (b"security.capability".to_vec(), vec![1, 2, 3]),
            (b"user.a".to_vec(), b"b".to_vec()),
        ],
    };
    let c = ostree_core::objects::content_checksum(&meta, &b"x"[..]).unwrap();
    let key = ObjectKey::new(c, ObjectType::File);
    let w = ObjectWrite::Content {
        meta: meta.clone(),
        size: 1,
        source: ContentSource::Bytes(Bytes::from_static(b"x")),
    };
    store.put(&key, w).await.unwrap();
    store.sync().await.unwrap();
    let path = store.local_path(&key).unwrap();
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o435);
    assert_eq!(md.uid(), 0, "owned by the writer");
    let x = xattrs_of(&path);
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].0, b"user.ostreemeta");
    assert_eq!(x[0].1, ostree_core::objects::bare_user_meta(&meta));
    let got = store.get(&key).await.unwrap().into_content().unwrap();
    assert_eq!(got.meta, meta);

    // Symlinks: a 0644 regular file with target + NUL.
    let (_, l) = link("some/where");
    store.put(&l.key, l.write()).await.unwrap();
    let lp = store.local_path(&l.key).unwrap();
    assert_eq!(std::fs::read(&lp).unwrap(), b"some/where\0");
    assert_eq!(
        std::fs::symlink_metadata(&lp).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    let got = store.get(&l.key).await.unwrap().into_content().unwrap();
    assert_eq!(got.meta.symlink_target.as_deref(), Some("some/where"));
    assert_eq!(got.meta.mode, S_IFLNK | 0o777);
    assert_eq!(got.size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_real_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = new_repo(&p, RepoMode::Bare).await;
    let meta = FileMeta {
        uid: 1234,
        gid: 5678,
        mode: S_IFREG | 0o4755,
        symlink_target: None,
        xattrs: vec![
            (b"trusted.x".to_vec(), b"1".to_vec()),
            (b"user.test".to_vec(), b"hello".to_vec()),
        ],
    };
    let c = ostree_core::objects::content_checksum(&meta, &b"suid"[..]).unwrap();
    let key = ObjectKey::new(c, ObjectType::File);
    let w = ObjectWrite::Content {
        meta: meta.clone(),
        size: 4,
        source: ContentSource::Bytes(Bytes::from_static(b"suid")),
    };
    store.put(&key, w).await.unwrap();
    let path = store.local_path(&key).unwrap();
    let md = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode()),
        (1234, 5678, S_IFREG | 0o4755)
    );
    assert_eq!(
        store.get(&key).await.unwrap().into_content().unwrap().meta,
        meta
    );
    // A symlink owned by someone, with a trusted xattr (user.* is not allowed on symlinks).
    let lmeta = FileMeta {
        uid: 42,
        gid: 43,
        mode: S_IFLNK | 0o777,
        symlink_target: Some("/target".into()),
        xattrs: vec![(b"trusted.y".to_vec(), b"2".to_vec())],
    };
    let c = ostree_core::objects::content_checksum(&lmeta, std::io::empty()).unwrap();
    let lkey = ObjectKey::new(c, ObjectType::File);
    let w = ObjectWrite::Content {
        meta: lmeta.clone(),
        size: 0,
        source: ContentSource::Bytes(Bytes::new()),
    };
    store.put(&lkey, w).await.unwrap();
    let lp = store.local_path(&lkey).unwrap();
    let md = std::fs::symlink_metadata(&lp).unwrap();
    assert!(md.file_type().is_symlink());
    assert_eq!((md.uid(), md.gid()), (42, 43));
    assert_eq!(
        store.get(&lkey).await.unwrap().into_content().unwrap().meta,
        lmeta
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_user_only_refuses_special_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = new_repo(&tmp.path().join("r"), RepoMode::BareUserOnly).await;
    let (_, o) = file(0o4755, b"suid", vec![]);
    let e = store.put(&o.key, o.write()).await.unwrap_err();
    assert!(e.to_string().contains("invalid mode"), "{e}");
    let (_, o) = file(0o775, b"group writable is fine", vec![]);
    store.put(&o.key, o.write()).await.unwrap();
    let got = store.get(&o.key).await.unwrap().into_content().unwrap();
    assert_eq!(
        (got.meta.uid, got.meta.gid, got.meta.mode),
        (0, 0, S_IFREG | 0o775)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commitmeta_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = new_repo(&p, RepoMode::Archive).await;
    let key = ObjectKey::new(h(V1), ObjectType::CommitMeta);
    for sync_between in [false, true] {
        for v in [b"\x01".as_slice(), b"\x02", b"\x03"] {
            store
                .put(&key, ObjectWrite::Meta(Bytes::copy_from_slice(v)))
                .await
                .unwrap();
            assert_eq!(store.get(&key).await.unwrap().into_meta().unwrap(), v);
            if sync_between {
                store.sync().await.unwrap();
            }
        }
        store.sync().await.unwrap();
        let other = FsStore::open(&p, OpenOptions::default()).await.unwrap();
        assert_eq!(
            other.get(&key).await.unwrap().into_meta().unwrap(),
            b"\x03".as_slice()
        );
        store.delete(&key).await.unwrap();
        assert!(!store.has(&key).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_staged_and_published() {
    let tmp = tempfile::tempdir().unwrap();
    let store = new_repo(&tmp.path().join("r"), RepoMode::Bare).await;
    let objs = v1_objects();
    for o in &objs[..3] {
        store.put(&o.key, o.write()).await.unwrap();
    }
    store.sync().await.unwrap();
    for o in &objs[3..] {
        store.put(&o.key, o.write()).await.unwrap();
    }
    for o in &objs {
        store.delete(&o.key).await.unwrap();
        assert!(!store.has(&o.key).await.unwrap());
        assert!(store.get(&o.key).await.unwrap_err().is_not_found());
    }
    store.sync().await.unwrap();
    let listed: Vec<ObjectKey> = store.list(None).try_collect().await.unwrap();
    assert!(listed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refs_cas_across_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let a = Arc::new(new_repo(&p, RepoMode::Archive).await);
    let b = Arc::new(FsStore::open(&p, OpenOptions::default()).await.unwrap());
    let (x, y, z) = (counter_csum(1), counter_csum(2), counter_csum(3));
    a.update_ref("heads/main", RefExpect::Absent, Some(x))
        .await
        .unwrap();
    assert!(matches!(
        b.update_ref("heads/main", RefExpect::Absent, Some(y)).await,
        Err(Error::Precondition { .. })
    ));
    b.update_ref("heads/main", RefExpect::Value(x), Some(y))
        .await
        .unwrap();
    assert!(matches!(
        a.update_ref("heads/main", RefExpect::Value(x), Some(z))
            .await,
        Err(Error::Precondition { .. })
    ));
    assert_eq!(a.read_ref("heads/main").await.unwrap(), Some(y));
    assert_eq!(
        std::fs::read_to_string(p.join("refs/heads/main")).unwrap(),
        format!("{y}\n")
    );

    // Racing increments from both handles lose nothing.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let cur = s.read_ref("heads/counter").await.unwrap();
                    let n = cur.map_or(0, |c| u64::from_be_bytes(c.0[24..].try_into().unwrap()));
                    let expect = cur.map_or(RefExpect::Absent, RefExpect::Value);
                    match s
                        .update_ref("heads/counter", expect, Some(counter_csum(n + 1)))
                        .await
                    {
                        Ok(()) => break,
                        Err(Error::Precondition { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        a.read_ref("heads/counter").await.unwrap(),
        Some(counter_csum(80))
    );

    // Directory conflicts: a ref cannot be written where refs live below it.
    a.update_ref("heads/dir/sub", RefExpect::Absent, Some(x))
        .await
        .unwrap();
    let e = a
        .update_ref("heads/dir", RefExpect::Any, Some(x))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Conflict"), "{e}");
    a.update_ref("heads/dir/sub", RefExpect::Any, None)
        .await
        .unwrap();
    assert!(!p.join("refs/heads/dir").exists());
    a.update_ref("heads/dir", RefExpect::Absent, Some(x))
        .await
        .unwrap();
    // Deleting a missing ref with Any is fine; with Value it is a failed precondition.
    a.update_ref("heads/nothing", RefExpect::Any, None)
        .await
        .unwrap();
    assert!(matches!(
        a.update_ref("heads/nothing", RefExpect::Value(x), None)
            .await,
        Err(Error::Precondition { .. })
    ));

    let all: Vec<String> = a
        .list_refs("")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(all, ["heads/counter", "heads/dir", "heads/main"]);
    assert_eq!(
        a.list_refs("heads/main").await.unwrap(),
        [("heads/main".to_string(), y)]
    );
    assert!(a.list_refs("remotes/").await.unwrap().is_empty());
    assert!(a.read_ref("../config").await.is_err());
    assert!(a.read_ref(".lock").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let s = new_repo(&p, RepoMode::Archive).await;
    assert_eq!(s.read_file("summary").await.unwrap(), None);
    s.write_file("summary", Bytes::from_static(b"one"))
        .await
        .unwrap();
    s.write_file("summary", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(
        s.read_file("summary").await.unwrap().unwrap(),
        b"two".as_slice()
    );
    s.write_file("deltas/ab/cd/superblock", Bytes::from_static(b"sb"))
        .await
        .unwrap();
    s.write_file("deltas/ab/cd/0", Bytes::from_static(b"p0"))
        .await
        .unwrap();
    s.write_file("state/x.commitpartial", Bytes::new())
        .await
        .unwrap();
    assert_eq!(
        s.list_files("deltas/").await.unwrap(),
        ["deltas/ab/cd/0", "deltas/ab/cd/superblock"]
    );
    assert_eq!(
        s.list_files("state").await.unwrap(),
        ["state/x.commitpartial"]
    );
    assert!(s.list_files("nothing/").await.unwrap().is_empty());
    s.delete_file("deltas/ab/cd/0").await.unwrap();
    s.delete_file("deltas/ab/cd/0").await.unwrap();
    assert_eq!(
        s.list_files("deltas").await.unwrap(),
        ["deltas/ab/cd/superblock"]
    );
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "objects/ab/cd.commit",
        "refs/heads/x",
    ] {
        assert!(s.write_file(bad, Bytes::new()).await.is_err(), "{bad}");
        assert!(s.read_file(bad).await.is_err(), "{bad}");
    }
    let cfg = s.read_file("config").await.unwrap().unwrap();
    assert_eq!(&cfg[..], b"[core]\nrepo_version=1\nmode=archive-z2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repo_lock_exclusion() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let a = new_repo(&p, RepoMode::Archive).await;
    let b = Arc::new(FsStore::open(&p, OpenOptions::default()).await.unwrap());
    // Shared + shared across handles: fine.
    let s1 = a.lock(false).await.unwrap();
    let s2 = b.lock(false).await.unwrap();
    // Exclusive waits for both.
    let b2 = b.clone();
    let ex = tokio::spawn(async move { b2.lock(true).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!ex.is_finished());
    drop(s1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!ex.is_finished());
    drop(s2);
    let g = tokio::time::timeout(Duration::from_secs(5), ex)
        .await
        .unwrap()
        .unwrap();
    // And a shared lock waits for the exclusive one.
    let sh = tokio::spawn(async move { a.lock(false).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!sh.is_finished());
    drop(g);
    tokio::time::timeout(Duration::from_secs(5), sh)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn open_errors_and_create() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let e = FsStore::open(&missing, OpenOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("opening repo") && e.contains(&*missing.to_string_lossy()),
        "{e}"
    );
    let no_config = tmp.path().join("noconfig");
    std::fs::create_dir_all(no_config.join("objects")).unwrap();
    let e = FsStore::open(&no_config, OpenOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{}/config", no_config.display())) && e.contains("No such file"),
        "{e}"
    );
    assert!(
        !no_config.join("tmp").exists(),
        "a failed open leaves nothing behind"
    );

    // Creating: the layout ostree init makes; an existing repository is left as it is.
    let p = tmp.path().join("r");
    let s = new_repo(&p, RepoMode::BareUserOnly).await;
    for d in [
        "objects",
        "refs/heads",
        "refs/remotes",
        "refs/mirrors",
        "tmp",
        "tmp/cache",
        "state",
        "extensions",
    ] {
        assert!(p.join(d).is_dir(), "{d}");
    }
    assert!(p.join(".lock").is_file());
    assert_eq!(
        std::fs::read_to_string(p.join("config")).unwrap(),
        "[core]\nrepo_version=1\nmode=bare-user-only\n"
    );
    drop(s);
    std::fs::write(
        p.join("config"),
        "[core]\nrepo_version=1\nmode=bare-user-only\n# mine\n",
    )
    .unwrap();
    let s = new_repo(&p, RepoMode::Archive).await;
    assert_eq!(s.mode(), RepoMode::BareUserOnly);
    assert!(
        std::fs::read_to_string(p.join("config"))
            .unwrap()
            .contains("# mine")
    );
    // ostree opens what we create, in every mode.
    for mode in MODES {
        let p = tmp.path().join(format!("m-{}", mode.name()));
        new_repo(&p, mode).await;
        assert_eq!(
            ostree(&p, &["config", "get", "core.mode"]).trim(),
            mode.config_name()
        );
        assert_eq!(ostree(&p, &["refs"]), "");
    }
    // A bad config is an error naming the file.
    std::fs::write(p.join("config"), "[core]\nrepo_version=1\nmode=weird\n").unwrap();
    let e = FsStore::open(&p, OpenOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("config") && e.contains("weird"), "{e}");
}

#[tokio::test]
async fn registry_opens_file_urls() {
    let reg = Registry::global();
    assert!(reg.store_schemes().contains(&"file"));
    reg.check().unwrap();
    let mut own = Registry::new();
    ostree_backend_fs::register(&mut own);
    assert_eq!(own.store_schemes(), ["file"]);
    let tmp = tempfile::tempdir().unwrap();
    let url = url::Url::from_file_path(tmp.path().join("r")).unwrap();
    let s = reg
        .open_store(&url, create_opts(RepoMode::BareUser))
        .await
        .unwrap();
    assert_eq!(s.mode(), RepoMode::BareUser);
    assert_eq!(s.local_root(), Some(tmp.path().join("r").as_path()));
    assert!(s.capabilities().hardlink_checkout && s.capabilities().local_objects);
    let s2 = own.open_store(&url, OpenOptions::default()).await.unwrap();
    assert_eq!(s2.mode(), RepoMode::BareUser);
    assert_eq!(s2.to_string(), tmp.path().join("r").display().to_string());
}

#[tokio::test]
async fn archived_input_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in MODES {
        let store = new_repo(&tmp.path().join(mode.name()), mode).await;
        for (_, o) in [file(0o644, b"archived\n", vec![]), link("t")] {
            let (meta, content) = o.file.clone().unwrap();
            let z = ostree_core::content::archived_bytes(&meta, &content).unwrap();
            store
                .put(&o.key, ObjectWrite::Archived(Bytes::from(z.clone())))
                .await
                .unwrap();
            let ObjectRead::Content(c) = store.get(&o.key).await.unwrap() else {
                panic!()
            };
            assert_eq!(c.meta, meta);
            if mode.is_archive() {
                assert_eq!(&store.get_raw(&o.key).await.unwrap()[..], &z[..]);
            } else {
                assert!(matches!(
                    store.get_raw(&o.key).await,
                    Err(Error::NotImplemented { .. })
                ));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_sync_batch() {
    // Enough objects that sync publishes from several threads.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = Arc::new(new_repo(&p, RepoMode::Archive).await);
    let mut keys = BTreeSet::new();
    let mut tasks = Vec::new();
    for t in 0..4u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for i in 0..800u32 {
                let (_, o) = meta_obj(ObjectType::DirMeta, format!("object {t} {i}").into_bytes());
                store.put(&o.key, o.write()).await.unwrap();
                keys.push(o.key);
            }
            keys
        }));
    }
    for t in tasks {
        keys.extend(t.await.unwrap());
    }
    store.sync().await.unwrap();
    let other = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    let listed: BTreeSet<ObjectKey> = other.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 3200);
    assert_eq!(listed, keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_files_published_early_in_dependency_order() {
    // Past the held-file limit, pending content and trees are published early (children
    // before parents); commits only by sync.
    for mode in [RepoMode::Archive, RepoMode::BareUser, RepoMode::Bare] {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("r");
        let a = new_repo(&p, mode).await;
        a.set_held_file_limit(3);
        let b = FsStore::open(&p, OpenOptions::default()).await.unwrap();
        let mut extra = Vec::new();
        for i in 0..10u32 {
            let (_, o) = file(0o644, format!("early {i}\n").as_bytes(), vec![]);
            a.put(&o.key, o.write()).await.unwrap();
            extra.push(o);
        }
        let mut visible = 0;
        for o in &extra {
            visible += b.has(&o.key).await.unwrap() as usize;
            // Held or published, this handle reads it.
            let c = a.get(&o.key).await.unwrap().into_content().unwrap();
            let mut body = Vec::new();
            c.body.into_reader().read_to_end(&mut body).unwrap();
            assert_eq!(body, o.file.as_ref().unwrap().1, "{mode}");
        }
        assert!(visible >= 7, "{mode}: only {visible} published early");
        let objs = v1_objects();
        for o in &objs {
            a.put(&o.key, o.write()).await.unwrap();
            // Whatever another handle sees has its children visible too.
            for o2 in &objs {
                if b.has(&o2.key).await.unwrap() {
                    assert_ne!(o2.key.ty, ObjectType::Commit, "{mode}: commit before sync");
                }
            }
        }
        let root = &objs[5];
        if b.has(&root.key).await.unwrap() {
            for o in &objs[..5] {
                assert!(b.has(&o.key).await.unwrap(), "{mode}: tree before child");
            }
        }
        a.sync().await.unwrap();
        for o in objs.iter().chain(&extra) {
            assert!(b.has(&o.key).await.unwrap(), "{mode}");
        }
        let listed: BTreeSet<ObjectKey> = b.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), objs.len() + extra.len(), "{mode}");
        // Dropping a handle after an early publication leaves no commit and no leftovers.
        let (_, o) = file(0o644, b"late\n", vec![]);
        let (_, t) = meta_obj(ObjectType::Commit, b"not really a commit".to_vec());
        for i in 0..5u32 {
            let (_, f) = file(0o644, format!("late {i}\n").as_bytes(), vec![]);
            a.put(&f.key, f.write()).await.unwrap();
        }
        a.put(&o.key, o.write()).await.unwrap();
        a.put(&t.key, t.write()).await.unwrap();
        drop(a);
        assert!(!b.has(&t.key).await.unwrap(), "{mode}");
        for d in staging_dirs(&p) {
            assert_eq!(staged_entries(&p, &d), 0, "{mode}: leftovers in {d}");
        }
    }
}
