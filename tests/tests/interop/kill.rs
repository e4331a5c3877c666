//! A commit killed with SIGKILL at random instants leaves the repo fsck-clean (for both
//! binaries) and the ref where it was (or, if the kill came too late, at the finished commit);
//! a later commit then completes normally.
//!
//! The real ostree 2022.7 does not have this property (a kill during the final renames can
//! publish a commit object before its dirtrees: its own fsck then reports "No such metadata
//! object"); when OSTREE_RS_BIN is the real binary (validating the test), fsck failures are
//! printed as notes instead of failing.
//!
//! Env: OSTREE_TEST_KILL_FILES (default 1000 files of ~8 KiB), OSTREE_TEST_KILL_ROUNDS
//! (default 4), OSTREE_TEST_SEED (default: time-based; printed so a failure can be replayed).

use std::process::Stdio;
use std::time::{Duration, Instant};

use std::path::Path;

use ostree_tests::bins::{Ostree, both, path_str, repo_arg, scratch};
use ostree_tests::fixtures::{make_bulk_tree, make_small_tree};
use ostree_tests::fsutil::Rng;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// fsck must pass, except (printed as a note) when the binary under test is the real ostree.
fn fsck_after_kill(o: &Ostree, repo: &Path, upstream: bool, ctx: &str) {
    if !upstream {
        return o.fsck_clean(repo);
    }
    let r = o.run_repo(repo, &["fsck"]);
    if !r.success() {
        eprintln!(
            "NOTE {ctx}: [{}] fsck fails after a killed commit (known upstream behaviour, \
             tolerated only because OSTREE_RS_BIN is the real ostree): {}",
            o.label,
            r.err().trim()
        );
    }
}

fn kill_commit(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let upstream = std::fs::canonicalize(&ours.bin).ok() == std::fs::canonicalize(&real.bin).ok();
    let tmp = scratch("kill-");
    let repo = tmp.path().join("repo");
    ours.init(&repo, mode);
    let small = tmp.path().join("small");
    make_small_tree(&small);
    let ts = "--timestamp=2022-01-01T00:00:00Z";
    let base = ours.ok(
        &repo,
        &["commit", "-b", "main", ts, "-s", "base", path_str(&small)],
    );
    let bulk = tmp.path().join("bulk");
    make_bulk_tree(&bulk, env_u64("OSTREE_TEST_KILL_FILES", 1000), 8, 11);
    let args = ["commit", "-b", "main", ts, "-s", "bulk", path_str(&bulk)];

    // calibrate on a copy: how long a full commit takes, and what it produces
    let calib = tmp.path().join("calib");
    let st = std::process::Command::new("cp")
        .args(["-a", path_str(&repo), path_str(&calib)])
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a failed");
    let t0 = Instant::now();
    let expected = ours.ok(&calib, &args);
    let full = t0.elapsed();
    std::fs::remove_dir_all(&calib).expect("cleanup");

    let seed = env_u64(
        "OSTREE_TEST_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let mut rng = Rng::new(seed);
    let (mut interrupted, mut finished) = (0, 0);
    eprintln!("kill_commit {mode}: full commit takes {full:?}; OSTREE_TEST_SEED={seed}");
    for round in 0..env_u64("OSTREE_TEST_KILL_ROUNDS", 4) {
        let delay = full.mul_f64(rng.below(1100) as f64 / 1000.0);
        let mut c = ours.command();
        c.arg(repo_arg(&repo))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("spawn commit");
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; an error means it already exited
        let status = child.wait().expect("wait");
        let head = ours.rev_parse(&repo, "main");
        let ctx = format!(
            "{mode}, round {round}, killed after {delay:?} ({status}), OSTREE_TEST_SEED={seed}"
        );
        assert!(
            head.as_deref() == Some(base.as_str()) || head.as_deref() == Some(expected.as_str()),
            "{ctx}: ref main is {head:?}, expected the old {base} or the finished {expected}"
        );
        fsck_after_kill(&real, &repo, upstream, &ctx);
        fsck_after_kill(&ours, &repo, upstream, &ctx);
        if head.as_deref() == Some(base.as_str()) {
            interrupted += 1;
        }
        if head.as_deref() == Some(expected.as_str()) {
            finished += 1;
            // finished before the kill: put the ref back so the next round commits again
            std::fs::write(repo.join("refs/heads/main"), format!("{base}\n")).expect("reset ref");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "kill_commit {mode}: {interrupted} commits interrupted, {finished} finished before the kill"
    );
    let done = ours.ok(&repo, &args);
    assert_eq!(done, expected, "{mode}: commit after the killed ones");
    let ctx = format!("{mode}, final commit, OSTREE_TEST_SEED={seed}");
    fsck_after_kill(&real, &repo, upstream, &ctx);
    fsck_after_kill(&ours, &repo, upstream, &ctx);
}
crate::per_mode!(kill_commit);
