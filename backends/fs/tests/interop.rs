//! Interop with the real ostree 2022.7 (`/usr/bin/ostree`) as the judge: objects written by
//! FsStore land where and as ostree puts them, and FsStore reads what ostree wrote.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::*;
use futures::TryStreamExt;
use ostree_backend_fs::FsStore;
use ostree_core::objects::{DirMeta, DirTree, content_checksum};
use ostree_core::store::{ObjectStore, OpenOptions, RefExpect, RepoMode};
use ostree_core::{Checksum, ObjectKey, ObjectType};

/// Write v1 and v3 with FsStore; the object files are the ones ostree writes (same paths, type,
/// permissions, owner, bytes, xattrs, mtime), `ostree fsck` passes and checkouts are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn written_objects_match_real_ostree() {
    for mode in MODES {
        let tmp = tempfile::tempdir().unwrap();
        let reference = reference_repo(tmp.path(), mode, false);
        let ours = tmp.path().join("ours");
        let store = new_repo(&ours, mode).await;
        let buo = mode == RepoMode::BareUserOnly;
        for o in v1_objects().iter().chain(v3_objects(buo).iter()) {
            store.put(&o.key, o.write()).await.unwrap();
        }
        store.sync().await.unwrap();
        store
            .update_ref("heads/v1", RefExpect::Absent, Some(h(V1)))
            .await
            .unwrap();
        let v3 = h(if buo { V3_BUO } else { V3 });
        store
            .update_ref("heads/v3", RefExpect::Absent, Some(v3))
            .await
            .unwrap();
        drop(store);

        // Object files: identical in every observable way (bare modes: mtime 0 included).
        let with_mtime = mode != RepoMode::Archive;
        let a = snapshot(&reference.join("objects"), with_mtime);
        let b = snapshot(&ours.join("objects"), with_mtime);
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{mode}: object paths"
        );
        for (path, ea) in &a {
            let eb = &b[path];
            if ea.kind == 'd' {
                continue;
            }
            let (mut ea, mut eb) = (ea.clone(), eb.clone());
            if path.ends_with(".filez") {
                // Same metadata and content; the deflate stream need not be libz's bytes.
                ea.data = decoded_filez(&ea.data);
                eb.data = decoded_filez(&eb.data);
            }
            if !path.ends_with(".file") {
                // Only content objects get mtime 0; others keep their creation time.
                ea.mtime = None;
                eb.mtime = None;
            }
            assert_eq!(ea, eb, "{mode}: objects/{path} differs");
        }
        // Refs as ostree writes them.
        for r in ["v1", "v3"] {
            assert_eq!(
                std::fs::read(reference.join("refs/heads").join(r)).unwrap(),
                std::fs::read(ours.join("refs/heads").join(r)).unwrap(),
                "{mode}: ref {r}"
            );
        }
        assert_eq!(
            std::fs::read(reference.join("config")).unwrap(),
            std::fs::read(ours.join("config")).unwrap()
        );
        // No leftovers in tmp/ after the handle is gone.
        let leftovers: Vec<_> = std::fs::read_dir(ours.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "cache")
            .collect();
        assert!(leftovers.is_empty(), "{mode}: tmp/ leftovers {leftovers:?}");

        // The real ostree agrees the repository is sound and checks it out identically.
        let fsck = ostree(&ours, &["fsck"]);
        assert!(!fsck.contains("orrupt"), "{mode}: {fsck}");
        let mut refs: Vec<String> = ostree(&ours, &["refs"])
            .lines()
            .map(str::to_string)
            .collect();
        refs.sort();
        assert_eq!(refs, ["v1", "v3"]);
        for r in ["v1", "v3"] {
            let co_a = tmp.path().join(format!("co-ref-{r}"));
            let co_b = tmp.path().join(format!("co-ours-{r}"));
            ostree(&reference, &["checkout", r, co_a.to_str().unwrap()]);
            ostree(&ours, &["checkout", r, co_b.to_str().unwrap()]);
            assert_eq!(
                snapshot(&co_a, false),
                snapshot(&co_b, false),
                "{mode}: checkout of {r}"
            );
        }
    }
}

/// An archive content object as (metadata, size, content), for comparing objects whose
/// compressed bytes may differ.
fn decoded_filez(raw: &[u8]) -> Vec<u8> {
    let (meta, size, mut r) =
        ostree_core::content::read_archived(std::io::Cursor::new(raw.to_vec()))
            .expect("a valid .filez");
    let mut body = Vec::new();
    r.read_to_end(&mut body).expect("inflating");
    format!("{meta:?} {size} ")
        .into_bytes()
        .into_iter()
        .chain(body)
        .collect()
}

/// `ostree ls -R -C`-style listing of a commit, read through FsStore, checking every content
/// object against its name on the way.
async fn ls_through_store(store: &FsStore, commit: Checksum) -> String {
    let c = store
        .get(&ObjectKey::new(commit, ObjectType::Commit))
        .await
        .unwrap()
        .into_meta()
        .unwrap();
    let c = ostree_core::objects::Commit::from_bytes(&c).unwrap();
    let mut out = String::new();
    let mut stack = vec![("/".to_string(), c.root_tree, c.root_meta)];
    // Depth-first in ostree's order: a directory, its files, then each subdirectory.
    while let Some((path, tree, meta)) = stack.pop() {
        let dm = store
            .get(&ObjectKey::new(meta, ObjectType::DirMeta))
            .await
            .unwrap()
            .into_meta()
            .unwrap();
        let dm = DirMeta::from_bytes(&dm).unwrap();
        out += &format!(
            "d0{:04o} {} {} {:6} {} {} {}\n",
            dm.mode & 0o7777,
            dm.uid,
            dm.gid,
            0,
            tree,
            meta,
            path
        );
        let t = store
            .get(&ObjectKey::new(tree, ObjectType::DirTree))
            .await
            .unwrap()
            .into_meta()
            .unwrap();
        let t = DirTree::from_bytes(&t).unwrap();
        let join = |n: &str| {
            if path == "/" {
                format!("/{n}")
            } else {
                format!("{path}/{n}")
            }
        };
        for (name, csum) in &t.files {
            let key = ObjectKey::new(*csum, ObjectType::File);
            let c = store.get(&key).await.unwrap().into_content().unwrap();
            let mut body = Vec::new();
            c.body.into_reader().read_to_end(&mut body).unwrap();
            assert_eq!(body.len() as u64, c.size);
            assert_eq!(
                content_checksum(&c.meta, &body[..]).unwrap(),
                *csum,
                "{}: metadata and content hash to the name",
                join(name)
            );
            let kind = if c.meta.is_symlink() { 'l' } else { '-' };
            out += &format!(
                "{kind}0{:04o} {} {} {:6} {} {}",
                c.meta.mode & 0o7777,
                c.meta.uid,
                c.meta.gid,
                c.size,
                csum,
                join(name)
            );
            if let Some(t) = &c.meta.symlink_target {
                out += &format!(" -> {t}");
            }
            out += "\n";
        }
        for (name, dt, dm) in t.dirs.iter().rev() {
            stack.push((join(name), *dt, *dm));
        }
    }
    out
}

/// FsStore reads repositories the real ostree made, in every mode: the decoded metadata hashes
/// to each object's name and matches `ostree ls -R -C`; `list` finds exactly the stored objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_real_ostree_repos() {
    for mode in MODES {
        let tmp = tempfile::tempdir().unwrap();
        let repo = reference_repo(tmp.path(), mode, true);
        let store = FsStore::open(&repo, OpenOptions::default()).await.unwrap();
        assert_eq!(store.mode(), mode);
        assert_eq!(
            store.capabilities().hardlink_checkout,
            mode != RepoMode::Archive
        );
        for r in ["v1", "v2", "v3"] {
            let c = store
                .read_ref(&format!("heads/{r}"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(c.to_hex(), ostree(&repo, &["rev-parse", r]).trim());
            let ours = ls_through_store(&store, c).await;
            let theirs = ostree(&repo, &["ls", "-R", "-C", r]);
            assert_eq!(ours, theirs, "{mode}: ls -R -C {r}");
        }
        let refs = store.list_refs("heads/").await.unwrap();
        assert_eq!(
            refs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["heads/v1", "heads/v2", "heads/v3"]
        );

        // list(): every object file, no more.
        let mut on_disk = BTreeSet::new();
        for d in std::fs::read_dir(repo.join("objects")).unwrap() {
            let d = d.unwrap();
            for f in std::fs::read_dir(d.path()).unwrap() {
                let name = f.unwrap().file_name().to_string_lossy().into_owned();
                on_disk.insert(
                    ObjectKey::from_loose_name(&d.file_name().to_string_lossy(), &name).unwrap(),
                );
            }
        }
        let listed: BTreeSet<ObjectKey> = store.list(None).try_collect().await.unwrap();
        assert_eq!(listed, on_disk, "{mode}: list");
        let files: BTreeSet<ObjectKey> = store
            .list(Some(ObjectType::File))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            files,
            on_disk
                .iter()
                .filter(|k| k.ty == ObjectType::File)
                .copied()
                .collect(),
            "{mode}: list files"
        );

        // Archive: get_raw gives the stored .filez bytes.
        if mode == RepoMode::Archive {
            let k = *files.iter().next().unwrap();
            let raw = store.get_raw(&k).await.unwrap();
            let hex = k.checksum.to_hex();
            let path = repo.join(format!("objects/{}/{}.filez", &hex[..2], &hex[2..]));
            assert_eq!(&raw[..], &std::fs::read(path).unwrap()[..]);
        }
    }
}

/// Refs written by one side are read by the other; aliases resolve; our ref lock file is
/// invisible to ostree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_interop() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = reference_repo(tmp.path(), RepoMode::Archive, false);
    let store = FsStore::open(&repo, OpenOptions::default()).await.unwrap();
    store
        .update_ref("heads/os/x86_64/stable", RefExpect::Absent, Some(h(V1)))
        .await
        .unwrap();
    store
        .update_ref("remotes/origin/main", RefExpect::Absent, Some(h(V3)))
        .await
        .unwrap();
    assert!(repo.join(ostree_backend_fs::REFS_LOCK).exists());
    let mut listed: Vec<String> = ostree(&repo, &["refs"])
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(listed, ["origin:main", "os/x86_64/stable", "v1", "v3"]);
    assert_eq!(ostree(&repo, &["rev-parse", "os/x86_64/stable"]).trim(), V1);
    assert_eq!(ostree(&repo, &["rev-parse", "origin:main"]).trim(), V3);

    // An alias made by ostree (a relative symlink) resolves to its target.
    ostree(&repo, &["refs", "--create=nested/alias", "--alias", "v3"]);
    ostree(
        &repo,
        &["refs", "--create=flat", "--alias", "os/x86_64/stable"],
    );
    assert_eq!(
        store.read_ref("heads/nested/alias").await.unwrap(),
        Some(h(V3))
    );
    assert_eq!(store.read_ref("heads/flat").await.unwrap(), Some(h(V1)));
    let names: Vec<String> = store
        .list_refs("heads/")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "heads/flat",
            "heads/nested/alias",
            "heads/os/x86_64/stable",
            "heads/v1",
            "heads/v3"
        ]
    );

    // Deleting a nested ref removes its now-empty directories but not refs/heads.
    store
        .update_ref("heads/os/x86_64/stable", RefExpect::Value(h(V1)), None)
        .await
        .unwrap();
    assert!(!repo.join("refs/heads/os").exists());
    assert!(repo.join("refs/heads").is_dir());
    store
        .update_ref("remotes/origin/main", RefExpect::Any, None)
        .await
        .unwrap();
    assert!(repo.join("refs/remotes").is_dir());
    // ostree deletes; we see it.
    ostree(&repo, &["refs", "--delete", "v1"]);
    assert_eq!(store.read_ref("heads/v1").await.unwrap(), None);
}

/// Our repository lock excludes a real ostree taking the exclusive lock (prune), and real
/// ostree's cleanup leaves our live staging directory alone but removes a dead one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_staging_interop() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = reference_repo(tmp.path(), RepoMode::BareUser, false);
    ostree(&repo, &["config", "set", "core.lock-timeout-secs", "1"]);
    let store = FsStore::open(&repo, OpenOptions::default()).await.unwrap();

    // Shared lock held by us: ostree's exclusive lock (prune) must time out.
    let guard = store.lock(false).await.unwrap();
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["prune", "--refs-only"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "prune ran while we held the lock");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ock"), "unexpected prune error: {err}");
    drop(guard);
    ostree(&repo, &["prune", "--refs-only"]);

    // Exclusive lock by us: even ostree's shared lock (commit) waits and times out.
    let guard = store.lock(true).await.unwrap();
    let trees = tmp.path().join("trees/v1");
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["commit", "-b", "blocked", "--owner-uid=0", "--owner-gid=0"])
        .arg(&trees)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "commit ran while we held the exclusive lock"
    );
    drop(guard);

    // A live staging directory of ours (objects staged, not synced) survives an ostree commit
    // (which cleans tmp/), and a dead one (nobody holds its lock) does not.
    let (c, o) = file(0o644, b"staged but not yet synced\n", vec![]);
    store.put(&o.key, o.write()).await.unwrap();
    // (Asking for its path names the held file in our staging directory.)
    assert!(
        store
            .local_path(&o.key)
            .unwrap()
            .starts_with(repo.join("tmp"))
    );
    std::fs::create_dir(repo.join("tmp/staging-rs-dead0000")).unwrap();
    std::fs::write(repo.join("tmp/staging-rs-dead0000/o0"), b"junk").unwrap();
    ostree(
        &repo,
        &[
            "commit",
            "-b",
            "other",
            "--owner-uid=0",
            "--owner-gid=0",
            trees.to_str().unwrap(),
        ],
    );
    assert!(
        !repo.join("tmp/staging-rs-dead0000").exists(),
        "ostree did not clean a dead staging dir"
    );
    // Our lock file is dated in the future, so ostree's one-day expiry of unknown tmp/ files
    // never removes the lock of a long-lived handle.
    let locks: Vec<_> = std::fs::read_dir(repo.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let now = std::time::SystemTime::now();
    assert!(std::fs::metadata(&locks[0]).unwrap().modified().unwrap() > now);
    assert!(store.has(&o.key).await.unwrap());
    store.sync().await.unwrap();
    assert!(
        store
            .local_path(&o.key)
            .unwrap()
            .starts_with(repo.join("objects"))
    );
    let other = FsStore::open(&repo, OpenOptions::default()).await.unwrap();
    assert!(
        other
            .has(&ObjectKey::new(c, ObjectType::File))
            .await
            .unwrap()
    );
    ostree(&repo, &["fsck"]);

    // A blocked shared lock of ours waits for ostree-compatible exclusive holders, then wins.
    let g = other.lock(true).await.unwrap();
    let s2 = tokio::spawn(async move {
        let _g = store.lock(false).await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!s2.is_finished());
    drop(g);
    tokio::time::timeout(Duration::from_secs(10), s2)
        .await
        .unwrap()
        .unwrap();
}

/// bare-split-xattrs: created like `ostree init` does; ostree opens it; content writes are
/// refused as ostree refuses them.
#[tokio::test]
async fn bare_split_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    let store = new_repo(&p, RepoMode::BareSplitXattrs).await;
    assert_eq!(
        ostree(&p, &["config", "get", "core.mode"]).trim(),
        "bare-split-xattrs"
    );
    let (_, o) = file(0o644, b"x", vec![]);
    let e = store.put(&o.key, o.write()).await.unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
    let (_, m) = meta_obj(ObjectType::DirTree, DirTree::default().to_bytes());
    store.put(&m.key, m.write()).await.unwrap();
    store.sync().await.unwrap();
    assert!(store.has(&m.key).await.unwrap());
    // And ostree itself: the same refusal.
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("f"), b"x").unwrap();
    let out = Command::new("ostree")
        .arg(format!("--repo={}", p.display()))
        .args(["commit", "-b", "x"])
        .arg(&tree)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Not allowed due to repo mode"));
}

/// `[archive] zlib-level` is honoured (as ostree does) and the result is still a sound repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_zlib_level() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("r");
    drop(new_repo(&p, RepoMode::Archive).await);
    ostree(&p, &["config", "set", "archive.zlib-level", "1"]);
    let store = FsStore::open(&p, OpenOptions::default()).await.unwrap();
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| b"abcdefghij"[(i % 7 + i / 1000 % 3) as usize])
        .collect();
    let (c, o) = file(0o644, &data, vec![]);
    store.put(&o.key, o.write()).await.unwrap();
    store.sync().await.unwrap();
    let stored = std::fs::read(store.local_path(&o.key).unwrap()).unwrap();
    let level6 = ostree_core::content::archived_bytes(&o.file.as_ref().unwrap().0, &data).unwrap();
    assert_ne!(stored, level6, "zlib-level=1 was not used");
    ostree_core::content::verify_archived(&c, &stored).unwrap();
    ostree(&p, &["fsck"]);
}
