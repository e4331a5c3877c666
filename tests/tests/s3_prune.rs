//! Prune and fsck on a bucket while pushes run (`ostree_core::lease`): a push stopped mid-way
//! (SIGSTOP) keeps, through its lease, everything it relies on while a prune on the bucket
//! deletes the real garbage; resumed, it completes and the real ostree pulls an fsck-clean
//! commit. A push stopped for longer than its lease's ttl stops before publishing, and a
//! rerun completes. Writers without a lease are covered by the grace period. Each test starts
//! its own moto (see `s3_common`).

mod s3_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ostree_tests::bins::{Ostree, ours, path_str, real, scratch};
use ostree_tests::fixtures::make_bulk_tree;

use s3_common::*;

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{sig}");
}

/// HTTP status of a key in the bucket.
fn http_status(moto: &Moto, key: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/{BUCKET}/{key}", moto.endpoint()))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn commit_key(prefix: &str, c: &str) -> String {
    format!("{prefix}/objects/{}/{}.commit", &c[..2], &c[2..])
}

/// The bucket under `prefix` holds:
/// * `main` at X, an unrelated commit force-pushed over P: P and its objects are unreferenced
///   but P's push manifest is still there;
/// * garbage: G, pushed to `junk`, whose ref was then deleted.
///
/// Locally, `next` is C, a child of P with `new_files` new files. Returns (local, P, C, G).
fn scene(
    o: &Ostree,
    dir: &Path,
    dest: &str,
    new_files: u64,
) -> (std::path::PathBuf, String, String, String) {
    let (tree, local) = (dir.join("tree"), dir.join("local"));
    make_bulk_tree(&tree, 60, 2, 51);
    let p = commit(o, &local, &tree, "P");
    push_ok(o, &local, dest, &["main"]);
    let (gtree, grepo) = (dir.join("gtree"), dir.join("g"));
    make_bulk_tree(&gtree, 40, 2, 52);
    let g = commit_on(o, &grepo, "junk", &gtree, "G");
    push_ok(o, &grepo, dest, &["junk"]);
    let r = on_bucket(o, dest, &["refs", "--delete", "junk"]);
    assert!(r.success(), "{}", r.describe());
    let (xtree, xrepo) = (dir.join("xtree"), dir.join("x"));
    make_bulk_tree(&xtree, 20, 1, 53);
    commit(o, &xrepo, &xtree, "X");
    let r = push(o, &xrepo, dest, &["main"], &["--force"]);
    assert!(r.success(), "{}", r.describe());
    // C: P's tree plus many new files (slow to upload one at a time).
    make_bulk_tree(&tree.join("more"), new_files, 8, 54);
    let c = o.ok(
        &local,
        &[
            "commit",
            "-b",
            "next",
            &format!("--parent={p}"),
            "-s",
            "C",
            &format!("--tree=dir={}", path_str(&tree)),
        ],
    );
    // Everything above is clearly older than the push's lease (store times have 1 s
    // resolution and prune allows 2 s of slack).
    std::thread::sleep(Duration::from_secs(3));
    (local, p, c, g)
}

/// Start `push --jobs=1 DEST next` and stop it (SIGSTOP) once it has uploaded some objects.
fn start_and_stop_push(o: &Ostree, moto: &Moto, local: &Path, dest: &str, prefix: &str) -> Child {
    let before = moto.count("PUT", &format!("{prefix}/objects/"));
    let mut c = push_cmd(o, local, dest, &["--jobs=1"]);
    c.arg("next").stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn push");
    wait_for_puts(moto, prefix, before + 40);
    signal(&child, "STOP");
    child
}

/// The real ostree pulls `next` over HTTP, fscks it and resolves it to `rev`.
fn real_pulls_next(real: &Ostree, dir: &Path, http: &str, rev: &str) {
    let judge = dir.join("judge");
    real.init(&judge, "archive");
    real.ok(
        &judge,
        &["remote", "add", "--no-gpg-verify", "bucket", http],
    );
    real.ok(&judge, &["pull", "bucket", "next"]);
    assert_eq!(real.rev_parse(&judge, "bucket:next").as_deref(), Some(rev));
    real.fsck_clean(&judge);
}

#[test]
fn prune_during_a_stopped_push_keeps_what_the_push_relies_on() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-lease-");
    let dest = moto.url("lease");
    let (local, p, c, g) = scene(&o, dir.path(), &dest, 400);
    let mut child = start_and_stop_push(&o, &moto, &local, &dest, "lease");

    // The push is frozen mid-upload, its lease in the bucket; the prune runs to the end.
    let r = on_bucket(&o, &dest, &["prune", "--refs-only"]);
    signal(&child, "CONT");
    assert!(r.success(), "{}", r.describe());
    let out = r.out();
    assert!(out.contains("Deleted "), "prune deleted nothing:\n{out}");
    assert!(
        out.contains("Kept "),
        "prune kept nothing for the push:\n{out}"
    );
    // The garbage went; P (whose manifest the push trusts, so it does not resend P's
    // objects) stayed.
    assert_eq!(http_status(&moto, &commit_key("lease", &g)), "404");
    assert_eq!(http_status(&moto, &commit_key("lease", &p)), "200");

    let status = child.wait().expect("push");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    assert!(status.success(), "the resumed push failed: {err}");
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
    let r = on_bucket(&o, &dest, &["rev-parse", "next"]);
    assert_eq!(r.out().trim(), c, "{}", r.describe());
    real_pulls_next(&real, dir.path(), &moto.http("lease"), &c);
    // Nothing of either is left behind.
    let r = on_bucket(&o, &dest, &["prune", "--refs-only", "--no-prune"]);
    assert!(!r.out().contains("Kept"), "{}", r.out());
}

#[test]
fn a_push_stopped_past_its_lease_stops_before_publishing_and_a_rerun_completes() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-expire-");
    // Leases of 4 s (renewed every second): a push stopped for 9 s has lost its lease.
    let dest = format!("{}&lease_ttl=4", moto.url("expire"));
    let (local, p, c, _g) = scene(&o, dir.path(), &dest, 400);
    let mut child = start_and_stop_push(&o, &moto, &local, &dest, "expire");
    std::thread::sleep(Duration::from_secs(9));
    // The lease has expired by the store's clock: the prune ignores it and deletes P and
    // the objects sent so far (nothing references them).
    let r = on_bucket(&o, &dest, &["prune", "--refs-only"]);
    assert!(r.success(), "{}", r.describe());
    assert!(!r.out().contains("Kept"), "{}", r.out());
    assert_eq!(http_status(&moto, &commit_key("expire", &p)), "404");
    signal(&child, "CONT");
    let status = child.wait().expect("push");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("stderr");
    }
    assert!(!status.success(), "a push that lost its lease published");
    assert!(err.contains("expired"), "unclear error: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing names the commit, and the bucket is consistent.
    assert_eq!(http_status(&moto, &commit_key("expire", &c)), "404");
    let r = on_bucket(&o, &dest, &["rev-parse", "next"]);
    assert!(!r.success(), "{}", r.describe());
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());

    // A rerun sends what is missing (P's objects included, P being gone) and completes.
    let out = push_ok(&o, &local, &dest, &["next"]);
    assert!(out.contains("Pushed next"), "{out}");
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
    real_pulls_next(&real, dir.path(), &moto.http("expire"), &c);
}

/// Writers that take no lease are covered by the grace period
/// (`object-storage.prune-grace-seconds` in the bucket's config): a prune keeps unreferenced
/// objects younger than it, and deletes them once they are older.
#[test]
fn prune_keeps_unreferenced_objects_younger_than_the_grace_period() {
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-grace-");
    let dest = moto.url("grace");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 30, 2, 71);
    let kept = commit(&o, &local, &tree, "K");
    push_ok(&o, &local, &dest, &["main"]);
    let (gtree, grepo) = (dir.path().join("gtree"), dir.path().join("g"));
    make_bulk_tree(&gtree, 20, 2, 72);
    let g = commit_on(&o, &grepo, "junk", &gtree, "G");
    push_ok(&o, &grepo, &dest, &["junk"]);
    let r = on_bucket(&o, &dest, &["refs", "--delete", "junk"]);
    assert!(r.success(), "{}", r.describe());

    let grace = |secs: &str| {
        let r = on_bucket(
            &o,
            &dest,
            &["config", "set", "object-storage.prune-grace-seconds", secs],
        );
        assert!(r.success(), "{}", r.describe());
    };
    grace("3600");
    let r = on_bucket(&o, &dest, &["prune", "--refs-only"]);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("Kept "), "nothing kept:\n{}", r.out());
    assert_eq!(http_status(&moto, &commit_key("grace", &g)), "200");

    // Older than a 1 s grace period (plus the store clock's slack): gone.
    grace("1");
    std::thread::sleep(Duration::from_secs(4));
    let r = on_bucket(&o, &dest, &["prune", "--refs-only"]);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("Deleted "), "{}", r.out());
    assert!(!r.out().contains("Kept "), "{}", r.out());
    assert_eq!(http_status(&moto, &commit_key("grace", &g)), "404");
    assert_eq!(http_status(&moto, &commit_key("grace", &kept)), "200");
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
}

#[test]
fn fsck_on_the_bucket_names_missing_and_corrupted_objects() {
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-fsck-names-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 1500, 20, 61);
    commit(&o, &local, &tree, "v1");
    let dest = moto.url("names");
    push_ok(&o, &local, &dest, &["main"]);
    // More than one listing page (1000 keys) of objects, verified in parallel.
    let before = moto.count_all("names/objects");
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
    let objects = ostree_tests::fixtures::object_names(&local).len();
    assert!(objects > 1000, "{objects}");
    assert!(r.out().contains("no errors found"), "{}", r.out());
    // One GET per object (and the paged listing), nothing more.
    let reqs = moto.count_all("names/objects") - before;
    assert!(
        reqs <= objects + 40,
        "{reqs} requests for {objects} objects"
    );

    // Delete one content object and corrupt another: fsck --all names both.
    let names: Vec<String> = ostree_tests::fixtures::object_names(&local)
        .into_iter()
        .filter(|n| n.ends_with(".filez"))
        .take(2)
        .collect();
    let key = |n: &str| format!("names/objects/{}/{}", &n[..2], &n[2..]);
    let del = Command::new("curl")
        .args(["-s", "-f", "-X", "DELETE"])
        .arg(format!("{}/{BUCKET}/{}", moto.endpoint(), key(&names[0])))
        .status()
        .expect("curl");
    assert!(del.success());
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"not an object").expect("write");
    let put = Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "--data-binary"])
        .arg(format!("@{}", path_str(&bad)))
        .arg(format!("{}/{BUCKET}/{}", moto.endpoint(), key(&names[1])))
        .status()
        .expect("curl");
    assert!(put.success());
    let r = on_bucket(&o, &dest, &["fsck", "--all"]);
    assert!(!r.success(), "{}", r.describe());
    for n in &names {
        let csum = n.split('.').next().expect("checksum");
        assert!(
            r.all_output().contains(csum),
            "{csum} not named:\n{}",
            r.describe()
        );
    }
}
