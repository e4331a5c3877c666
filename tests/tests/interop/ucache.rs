//! The uncompressed-objects cache of archive repositories: a user-mode checkout
//! (`checkout -U`, also `--union`) from an archive repo fills
//! `repo/uncompressed-objects-cache/XX/….file` and hardlinks the checkout from it, as the
//! real ostree does. Both binaries check out the same archive repo (two copies of it); the
//! caches must be laid out alike (names, modes, link counts) and the checkouts equal; each
//! binary then checks out from the cache the other filled.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ostree_tests::bins::{Ostree, both, path_str, scratch};
use ostree_tests::fixtures::make_rich_tree;
use ostree_tests::fsutil::write_file;
use ostree_tests::tree::{Compare, assert_same_snapshots, assert_same_tree, snapshot};

const CACHE: &str = "uncompressed-objects-cache";

/// Every entry under the cache: relative path → (mode, link count) (directories: link count 0).
fn cache_layout(repo: &Path) -> BTreeMap<String, (u32, u64)> {
    let mut out = BTreeMap::new();
    let root = repo.join(CACHE);
    for rel in ostree_tests::fsutil::list_paths(&root) {
        let md = std::fs::symlink_metadata(root.join(&rel)).expect("stat cache entry");
        let rel = rel.to_string_lossy().into_owned();
        let nlink = if md.is_dir() { 0 } else { md.nlink() };
        out.insert(rel, (md.mode(), nlink));
    }
    out
}

fn assert_same_layout(what: &str, ours: &Path, real: &Path) {
    let (o, r) = (cache_layout(ours), cache_layout(real));
    assert!(
        !r.is_empty(),
        "{what}: the real ostree made no cache entries"
    );
    assert!(
        o == r,
        "{what}: cache layouts differ\nours: {o:#?}\nreal: {r:#?}"
    );
}

fn copy_repo(src: &Path, dst: &Path) {
    let st = std::process::Command::new("cp")
        .args(["-a", path_str(src), path_str(dst)])
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", src.display(), dst.display());
}

fn co(o: &Ostree, repo: &Path, extra: &[&str], rev: &str, dest: &Path) {
    let mut args = vec!["checkout", "-U"];
    args.extend_from_slice(extra);
    args.push(rev);
    args.push(path_str(dest));
    o.ok(repo, &args);
}

#[test]
fn archive_checkout_cache_matches_real() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("ucache-");
    let t = tmp.path();
    let src = t.join("src");
    make_rich_tree(&src, 1, false);
    let base = t.join("base");
    real.init(&base, "archive");
    let tree = format!("--tree=dir={}", path_str(&src));
    real.ok(&base, &["commit", "-b", "main", &tree]);
    let (ro, rr) = (t.join("repo-ours"), t.join("repo-real"));
    copy_repo(&base, &ro);
    copy_repo(&base, &rr);

    // --disable-cache neither makes nor uses the cache.
    co(&ours, &ro, &["--disable-cache"], "main", &t.join("nocache"));
    assert!(!ro.join(CACHE).exists(), "--disable-cache made a cache");

    // Cold checkout: same cache, same tree.
    co(&ours, &ro, &[], "main", &t.join("co-ours"));
    co(&real, &rr, &[], "main", &t.join("co-real"));
    assert_same_layout("first checkout", &ro, &rr);
    assert_same_tree(
        "ours",
        &t.join("co-ours"),
        "real",
        &t.join("co-real"),
        Compare::ALL,
    );
    assert_same_tree(
        "cached",
        &t.join("co-ours"),
        "--disable-cache",
        &t.join("nocache"),
        Compare::ALL,
    );

    // Warm checkout: only links (link counts go up alike), same tree.
    co(&ours, &ro, &[], "main", &t.join("co2-ours"));
    co(&real, &rr, &[], "main", &t.join("co2-real"));
    assert_same_layout("second checkout", &ro, &rr);
    assert_same_tree(
        "ours (warm)",
        &t.join("co2-ours"),
        "real (warm)",
        &t.join("co2-real"),
        Compare::ALL,
    );

    // Each binary uses the cache the other filled.
    co(&ours, &rr, &[], "main", &t.join("co3-ours"));
    co(&real, &ro, &[], "main", &t.join("co3-real"));
    assert_same_layout("crossed checkouts", &ro, &rr);
    assert_same_tree(
        "ours from real's cache",
        &t.join("co3-ours"),
        "real",
        &t.join("co-real"),
        Compare::ALL,
    );

    // --union over an existing checkout with a changed file.
    for (o, repo, d) in [(&ours, &ro, "co-ours"), (&real, &rr, "co-real")] {
        write_file(&t.join(d).join("plain.txt"), b"changed\n", 0o644);
        co(o, repo, &["--union"], "main", &t.join(d));
    }
    assert_same_layout("union checkouts", &ro, &rr);
    assert_same_snapshots(
        "ours --union",
        &snapshot(&t.join("co-ours")),
        "real --union",
        &snapshot(&t.join("co-real")),
        Compare::ALL,
    );

    // Both fsck each repo clean: the cache is not part of the object store.
    for o in [&ours, &real] {
        o.fsck_clean(&ro);
        o.fsck_clean(&rr);
    }
}

/// An extension over ostree (whose prune leaves the cache alone): our prune drops the entries
/// of the content objects it deletes. Skipped when "ours" is the real binary.
#[test]
fn prune_drops_cache_entries_of_deleted_objects() {
    let Some((ours, real)) = both() else { return };
    if std::fs::canonicalize(&ours.bin).ok() == std::fs::canonicalize(&real.bin).ok() {
        eprintln!("SKIP: an extension of ours; the real ostree keeps the entries");
        return;
    }
    let tmp = scratch("ucache-prune-");
    let t = tmp.path();
    let repo = t.join("repo");
    ours.init(&repo, "archive");
    for (b, content) in [("keep", b"kept\n".as_slice()), ("drop", b"dropped\n")] {
        let d = t.join(b);
        std::fs::create_dir(&d).expect("mkdir");
        write_file(&d.join("f"), content, 0o644);
        write_file(&d.join("shared"), b"in both\n", 0o644);
        let tree = format!("--tree=dir={}", path_str(&d));
        ours.ok(&repo, &["commit", "-b", b, &tree]);
        co(&ours, &repo, &[], b, &t.join(format!("co-{b}")));
    }
    assert_eq!(cache_layout(&repo).values().filter(|v| v.1 > 0).count(), 3);
    ours.ok(&repo, &["refs", "--delete", "drop"]);
    ours.ok(&repo, &["prune", "--refs-only"]);
    let files: Vec<String> = cache_layout(&repo)
        .into_iter()
        .filter(|(_, v)| v.1 > 0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(files.len(), 2, "cache after prune: {files:?}");
    // The checkout of the pruned commit keeps its content.
    assert_eq!(
        std::fs::read(t.join("co-drop/f")).expect("read"),
        b"dropped\n"
    );
    real.fsck_clean(&repo);
    co(&real, &repo, &[], "keep", &t.join("co-keep-real"));
    assert_like_real("ours", &t.join("co-keep"), &t.join("co-keep-real"));
}

/// The checkout `ours` (described by `what`) equals the real ostree's checkout `real`.
fn assert_like_real(what: &str, ours: &Path, real: &Path) {
    assert_same_tree(what, ours, "real", real, Compare::ALL);
}

/// A checkout onto another filesystem than the repository's (a tmpfs under /dev/shm for the
/// repository): files are inflated in place there, the cache cannot link them and the tree
/// still equals the real ostree's checkout; a second checkout next to the repository, which
/// can use the cache, does.
#[test]
fn archive_checkout_onto_another_filesystem() {
    let Some((ours, real)) = both() else { return };
    let shm = tempfile::Builder::new()
        .prefix("ucache-xdev-")
        .tempdir_in("/dev/shm")
        .expect("scratch dir in /dev/shm");
    let tmp = scratch("ucache-xdev-");
    let t = tmp.path();
    let src = t.join("src");
    make_rich_tree(&src, 2, false);
    let repo = shm.path().join("repo");
    real.init(&repo, "archive");
    let tree = format!("--tree=dir={}", path_str(&src));
    real.ok(&repo, &["commit", "-b", "main", &tree]);
    co(
        &real,
        &repo,
        &["--disable-cache"],
        "main",
        &t.join("co-real"),
    );
    co(&ours, &repo, &[], "main", &t.join("co-ours"));
    assert_like_real(
        "ours, onto another filesystem",
        &t.join("co-ours"),
        &t.join("co-real"),
    );
    co(&ours, &repo, &[], "main", &shm.path().join("co-near"));
    assert_like_real(
        "ours, next to the repository",
        &shm.path().join("co-near"),
        &t.join("co-real"),
    );
    real.fsck_clean(&repo);
}
