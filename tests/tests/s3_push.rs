//! `ostree push` into object storage, judged by the real ostree: each test starts its own
//! `moto_server` on 127.0.0.1 (through `.ci/moto.sh`, on a free port, with a private state
//! directory so the request log counts only its requests), pushes with our binary, and has
//! `/usr/bin/ostree` pull from the bucket's path-style HTTP URL, fsck and check out.
//!
//! Without moto (no venv and no way to install it) the tests print a skip message, unless
//! `OSTREE_TEST_REQUIRE` contains `s3`, which makes that a failure.

mod s3_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ostree_tests::bins::{ours, path_str, real, scratch};
use ostree_tests::fixtures::{make_bulk_tree, make_small_tree};
use ostree_tests::fsutil::write_file;

use s3_common::*;

#[test]
fn push_then_real_ostree_pulls_and_incremental_sends_only_new_objects() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-push-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 300, 6, 1);
    make_small_tree(&tree.join("small"));
    let v1 = commit(&o, &local, &tree, "v1");
    let total_v1 = objects_in(&local);

    let dest = moto.url("inc");
    let before = moto.count_all("inc");
    let out = push_ok(&o, &local, &dest, &["main"]);
    let reqs = moto.count_all("inc") - before;
    assert_eq!(uploaded(&out), total_v1, "{out}");
    // One create-only PUT per object, plus a fixed overhead (config, ref, manifest, summary).
    assert!(
        reqs <= total_v1 + 40,
        "{reqs} requests for {total_v1} objects\n{out}"
    );
    real_pull_matches(&real, &o, dir.path(), &moto.http("inc"), &local, &v1);

    // Idempotent: nothing to send the second time, and no object checked either.
    let heads = moto.count("HEAD", "inc/objects/");
    let out = push_ok(&o, &local, &dest, &["main"]);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(uploaded(&out), 0);
    assert!(moto.count("HEAD", "inc/objects/") - heads <= 1);

    // v2: change 5 files, add 3: only the new objects go up, with no existence checks.
    for i in 0..5u64 {
        write_file(
            &tree.join(format!("d{:02}/f{i:05}", i % 32)),
            format!("changed {i}\n").as_bytes(),
            0o644,
        );
    }
    for i in 0..3 {
        write_file(
            &tree.join(format!("new/n{i}")),
            format!("new {i}\n").as_bytes(),
            0o644,
        );
    }
    let before_objs = ostree_tests::fixtures::object_names(&local);
    let v2 = commit(&o, &local, &tree, "v2");
    let new_objs = objects_in(&local) - before_objs.len();
    let (puts, heads) = (
        moto.count("PUT", "inc/objects/"),
        moto.count("HEAD", "inc/objects/"),
    );
    let lease_starts = || {
        let needle = format!("\"PUT /{BUCKET}/inc/extensions/leases/w-");
        moto.log()
            .lines()
            .filter(|l| l.contains(&needle))
            .filter(|l| l.contains(".start "))
            .count()
    };
    let leases = lease_starts();
    let out = push_ok(&o, &local, &dest, &["main"]);
    assert_eq!(uploaded(&out), new_objs, "{out}");
    assert_eq!(moto.count("PUT", "inc/objects/") - puts, new_objs);
    // One lease for the whole push: sending no static delta, it regenerates the summary
    // without rebuilding the delta indexes (which would take a lease of its own).
    assert_eq!(lease_starts() - leases, 1);
    // Only the old commit's presence is checked (its manifest is trusted).
    assert!(moto.count("HEAD", "inc/objects/") - heads <= 2);
    real_pull_matches(&real, &o, dir.path(), &moto.http("inc"), &local, &v2);

    // The summary names v2, as the real ostree reads it.
    let judge = dir.path().join("judge-summary");
    real.init(&judge, "archive");
    real.ok(
        &judge,
        &["remote", "add", "--no-gpg-verify", "b", &moto.http("inc")],
    );
    let refs = real.ok(&judge, &["remote", "refs", "b"]);
    assert_eq!(refs.trim(), "b:main");
    let summary = real.ok(&judge, &["remote", "summary", "b"]);
    assert!(summary.contains(&v2), "{summary}");

    // --dry-run moves nothing.
    let v3 = {
        write_file(&tree.join("new/dry"), b"dry\n", 0o644);
        commit(&o, &local, &tree, "v3")
    };
    let puts = moto.count("PUT", "inc/");
    let r = push(&o, &local, &dest, &["main"], &["--dry-run"]);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("Would push main"), "{}", r.out());
    assert!(r.out().contains(&v3));
    assert_eq!(moto.count("PUT", "inc/"), puts, "dry run wrote");
}

#[test]
fn file_destination_is_a_valid_repo_for_the_real_ostree() {
    let Some(real) = real() else { return };
    let o = ours();
    let dir = scratch("file-push-");
    let (tree, local, dest) = (
        dir.path().join("tree"),
        dir.path().join("local"),
        dir.path().join("dest"),
    );
    make_bulk_tree(&tree, 40, 2, 3);
    let v1 = commit(&o, &local, &tree, "v1");
    write_file(&tree.join("x"), b"x\n", 0o644);
    let v2 = commit(&o, &local, &tree, "v2");
    // With --depth=1 the parent travels too.
    let r = push(&o, &local, path_str(&dest), &["main"], &["--depth=1"]);
    assert!(r.success(), "{}", r.describe());
    real.fsck_clean(&dest);
    assert_eq!(real.rev_parse(&dest, "main").as_deref(), Some(v2.as_str()));
    real.ok(&dest, &["show", &v1]);
    // A remote whose URL is a file:// URL works as DEST.
    o.ok(
        &local,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            "mirror",
            &format!("file://{}", path_str(&dest)),
        ],
    );
    let out = push_ok(&o, &local, "mirror", &["main"]);
    assert!(out.contains("up to date"), "{out}");
    // Without its manifest (a repository another tool filled), the objects are checked, not
    // sent again.
    std::fs::remove_dir_all(dest.join("extensions")).expect("rm manifests");
    let out = push_ok(&o, &local, "mirror", &["main"]);
    assert_eq!(uploaded(&out), 0, "{out}");
    assert!(out.contains("checked"), "{out}");
    // An HTTP remote is refused clearly.
    o.ok(
        &local,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            "web",
            "http://127.0.0.1:1/r",
        ],
    );
    let r = push(&o, &local, "web", &["main"], &[]);
    assert!(!r.success());
    assert!(r.err().contains("read-only over HTTP"), "{}", r.describe());
}

#[test]
fn concurrent_pushers_on_one_ref_lose_no_update() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-race-");
    let dest = moto.url("race");
    // A common base, pushed first; then two pushers each with their own child of it.
    let base_tree = dir.path().join("base");
    make_bulk_tree(&base_tree, 50, 2, 5);
    let a = dir.path().join("a");
    let base = commit(&o, &a, &base_tree, "base");
    push_ok(&o, &a, &dest, &["main"]);
    let b = dir.path().join("b");
    o.init(&b, "archive");
    o.ok(&b, &["pull-local", path_str(&a), "main"]);
    let mut news = Vec::new();
    for (repo, tag) in [(&a, "a"), (&b, "b")] {
        let t = dir.path().join(format!("tree-{tag}"));
        make_bulk_tree(&t, 120, 3, if tag == "a" { 11 } else { 12 });
        news.push(commit(&o, repo, &t, tag));
        let parent = o.ok(repo, &["rev-parse", "main^"]);
        assert_eq!(parent, base);
    }
    let children: Vec<_> = [&a, &b]
        .into_iter()
        .map(|repo| {
            let mut c = push_cmd(&o, repo, &dest, &[]);
            c.arg("main").stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawn push")
        })
        .collect();
    let results: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("push output"))
        .collect();
    let ok: Vec<usize> = (0..2).filter(|&i| results[i].status.success()).collect();
    assert_eq!(
        ok.len(),
        1,
        "exactly one pusher must win: {:?}",
        results
            .iter()
            .map(|r| String::from_utf8_lossy(&r.stderr).into_owned())
            .collect::<Vec<_>>()
    );
    let (win, lose) = (ok[0], 1 - ok[0]);
    let err = String::from_utf8_lossy(&results[lose].stderr).into_owned();
    assert!(
        err.contains("moved while pushing") || err.contains("not an ancestor"),
        "the loser must be told why: {err}"
    );
    let winner_repo = if win == 0 { &a } else { &b };
    real_pull_matches(
        &real,
        &o,
        dir.path(),
        &moto.http("race"),
        winner_repo,
        &news[win],
    );
    // The loser, forced, replaces it; the summary follows.
    let loser_repo = if lose == 0 { &a } else { &b };
    let r = push(&o, loser_repo, &dest, &["main"], &["--force"]);
    assert!(r.success(), "{}", r.describe());
    real_pull_matches(
        &real,
        &o,
        dir.path(),
        &moto.http("race"),
        loser_repo,
        &news[lose],
    );
}

#[test]
fn interrupted_push_resumes_with_only_the_rest() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-resume-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 600, 4, 21);
    let v1 = commit(&o, &local, &tree, "v1");
    let total = objects_in(&local);
    let dest = moto.url("resume");

    let mut c = push_cmd(&o, &local, &dest, &["--jobs=2"]);
    c.arg("main").stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn push");
    wait_for_puts(&moto, "resume", 100);
    child.kill().expect("kill the pusher");
    let _ = child.wait();
    let first = moto.count("PUT", "resume/objects/");
    assert!(first < total, "the push finished before it was interrupted");

    // Nothing names the unfinished commit.
    let judge = dir.path().join("judge-early");
    real.init(&judge, "archive");
    real.ok(
        &judge,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            "b",
            &moto.http("resume"),
        ],
    );
    assert!(!real.run_repo(&judge, &["pull", "b", "main"]).success());

    let out = push_ok(&o, &local, &dest, &["main"]);
    assert!(out.contains("resuming"), "{out}");
    let second = moto.count("PUT", "resume/objects/") - first;
    assert!(
        second <= total - first + 2 * 2,
        "second push sent {second} objects; {first} of {total} were already there\n{out}"
    );
    assert!(second < total, "{out}");
    real_pull_matches(&real, &o, dir.path(), &moto.http("resume"), &local, &v1);
}

#[test]
fn server_killed_mid_push_fails_clearly_and_a_rerun_completes() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-kill-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 500, 4, 31);
    let v1 = commit(&o, &local, &tree, "v1");
    let dest = moto.url("kill");

    let mut c = push_cmd(&o, &local, &dest, &["--jobs=2"]);
    c.arg("main").stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn push");
    wait_for_puts(&moto, "kill", 60);
    moto.stop();
    let started = Instant::now();
    let out = child.wait_with_output().expect("push output");
    assert!(
        !out.status.success(),
        "push succeeded against a dead server"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failing took {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("error:") && err.contains("kill"),
        "unclear error: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // moto keeps its data in memory: the restarted server is empty, so the rerun recreates
    // the repository and sends everything; it must complete.
    moto.restart();
    push_ok(&o, &local, &dest, &["main"]);
    real_pull_matches(&real, &o, dir.path(), &moto.http("kill"), &local, &v1);
}

#[test]
fn bad_destinations_fail_clearly() {
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-bad-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_small_tree(&tree);
    commit(&o, &local, &tree, "v1");

    // A bucket that does not exist.
    let missing = format!(
        "s3://no-such-bucket/p?endpoint={}&region=us-east-1&max_retries=0",
        moto.endpoint()
    );
    let r = push(&o, &local, &missing, &["main"], &[]);
    assert!(!r.success());
    assert!(r.err().contains("no-such-bucket"), "{}", r.describe());

    // No credentials anywhere: said so (whatever the metadata service does here).
    let mut c = o.command();
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_ALLOW_HTTP", "true")
        .arg(format!("--repo={}", path_str(&local)))
        .args([
            "push",
            &moto.url("nokeys").replace("max_retries=2", "max_retries=0"),
            "main",
        ]);
    let r = ostree_tests::bins::run_command("ours", c);
    assert!(!r.success());
    assert!(
        r.err().to_lowercase().contains("credential"),
        "{}",
        r.describe()
    );

    // Nobody listening.
    let dead = format!(
        "s3://{BUCKET}/p?endpoint=http://127.0.0.1:{}&max_retries=0&retry_timeout=1",
        free_port()
    );
    let r = push(&o, &local, &dead, &["main"], &[]);
    assert!(!r.success());
    assert!(r.err().contains("error:"), "{}", r.describe());

    // A prefix holding something that is not a repository is not taken over.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"junk").expect("write");
    let put = Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "--data-binary"])
        .arg(format!("@{}", path_str(&junk)))
        .arg(format!("{}/{BUCKET}/junk/file.txt", moto.endpoint()))
        .status()
        .expect("curl");
    assert!(put.success());
    let r = push(&o, &local, &moto.url("junk"), &["main"], &[]);
    assert!(!r.success());
    assert!(
        r.err().contains("holds data but no repository"),
        "{}",
        r.describe()
    );

    // A ref that does not exist locally; a REF that is a checksum.
    let r = push(&o, &local, &moto.url("ok"), &["nosuch"], &[]);
    assert!(!r.success());
    assert!(r.err().contains("nosuch"), "{}", r.describe());
    let r = push(&o, &local, &moto.url("ok"), &[], &[]);
    assert!(!r.success());
}

#[test]
fn fsck_and_prune_work_on_the_bucket() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-fsck-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 80, 3, 41);
    commit(&o, &local, &tree, "v1");
    let dest = moto.url("fsck");
    push_ok(&o, &local, &dest, &["main"]);
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());

    // Replace main with an unrelated commit, then prune: v1's objects go, v2 stays whole.
    let other = dir.path().join("other");
    make_bulk_tree(&other, 30, 2, 42);
    std::fs::remove_dir_all(&local).expect("rm");
    let v2 = commit(&o, &local, &other, "v2");
    let r = push(&o, &local, &dest, &["main"], &["--force"]);
    assert!(r.success(), "{}", r.describe());
    let r = on_bucket(&o, &dest, &["prune", "--refs-only"]);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("Total objects:"), "{}", r.out());
    assert!(!r.out().contains("No unreachable objects"), "{}", r.out());
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
    real_pull_matches(&real, &o, dir.path(), &moto.http("fsck"), &local, &v2);

    // A corrupted object in the bucket: fsck names it.
    let name = ostree_tests::fixtures::object_names(&local)
        .into_iter()
        .find(|n| n.ends_with(".filez"))
        .expect("a content object");
    let key = format!("objects/{}/{}", &name[..2], &name[2..]);
    let bad = dir.path().join("bad");
    std::fs::write(&bad, b"not an object").expect("write");
    let put = Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "--data-binary"])
        .arg(format!("@{}", path_str(&bad)))
        .arg(format!("{}/{BUCKET}/fsck/{key}", moto.endpoint()))
        .status()
        .expect("curl");
    assert!(put.success());
    let r = on_bucket(&o, &dest, &["fsck"]);
    assert!(!r.success(), "{}", r.describe());
    let csum = name.split('.').next().expect("checksum");
    assert!(r.all_output().contains(csum), "{}", r.describe());
}

#[test]
fn concurrent_pushers_of_different_refs_leave_a_complete_summary() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-refs-");
    let dest = moto.url("refs");
    let mut repos = Vec::new();
    for i in 0..4u64 {
        let (t, r) = (
            dir.path().join(format!("t{i}")),
            dir.path().join(format!("r{i}")),
        );
        make_bulk_tree(&t, 40, 2, 100 + i);
        o.init(&r, "archive");
        let c = o.ok(
            &r,
            &[
                "commit",
                "-b",
                &format!("branch{i}"),
                "-s",
                "x",
                &format!("--tree=dir={}", path_str(&t)),
            ],
        );
        repos.push((r, format!("branch{i}"), c));
    }
    let children: Vec<_> = repos
        .iter()
        .map(|(r, b, _)| {
            let mut c = push_cmd(&o, r, &dest, &[]);
            c.arg(b).stdout(Stdio::null()).stderr(Stdio::piped());
            c.spawn().expect("spawn push")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("push");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The summary the real ostree reads lists every branch at its commit.
    let judge = dir.path().join("judge");
    real.init(&judge, "archive");
    real.ok(
        &judge,
        &["remote", "add", "--no-gpg-verify", "b", &moto.http("refs")],
    );
    let listed = real.ok(&judge, &["remote", "refs", "b"]);
    for (_, b, c) in &repos {
        assert!(listed.contains(&format!("b:{b}")), "{listed}");
        let s = real.ok(&judge, &["remote", "summary", "b"]);
        assert!(s.contains(c), "summary lacks {b} at {c}:\n{s}");
    }
    real.ok(
        &judge,
        &["pull", "b", "branch0", "branch1", "branch2", "branch3"],
    );
    real.fsck_clean(&judge);
}
