//! Repository administration, judged by the real ostree: summaries written by each binary
//! read identically with the other (`summary --view`/`--raw`, delta indexes byte for byte);
//! `prune` leaves exactly the objects the real prune leaves and prints the same words, in
//! every mode and option set; `diff` prints what the real one prints (commits and
//! directories); ref aliases and collection refs made by each are read by the other; a prune
//! killed at random instants leaves a repository both fscks accept; hostile summaries never
//! make ours panic.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ostree_tests::bins::{Ostree, assert_no_panic, both, ours, path_str, repo_arg, scratch};
use ostree_tests::fixtures::{make_bulk_tree, object_names};
use ostree_tests::fsutil::{Rng, det_bytes, symlink, write_file};

fn cp_a(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .args(["-a", path_str(from), path_str(to)])
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

/// Every regular file of a repo (objects, refs, state, deltas, config), sorted.
fn repo_files(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            if rel.starts_with("tmp") || rel == ".lock" || rel.ends_with("/.lock") {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(base, &p, out),
                Ok(_) => out.push(rel),
                Err(_) => {}
            }
        }
    }
    walk(repo, repo, &mut out);
    out.sort();
    out
}

/// A repo with history on two branches, an unreferenced commit, a mirror collection–ref, a
/// deleted branch and (archive) static deltas, written by the real ostree.
fn history_repo(real: &Ostree, dir: &Path, mode: &str) -> PathBuf {
    let repo = dir.join("base");
    real.init(&repo, mode);
    let t = dir.join("hist-tree");
    for i in 1..=5 {
        write_file(
            &t.join(format!("d/f{i}")),
            format!("v{i}\n").as_bytes(),
            0o644,
        );
        write_file(&t.join("acc"), &det_bytes(i, 2000 + i as usize), 0o644);
        real.ok(
            &repo,
            &[
                "commit",
                "-b",
                "main",
                "-s",
                &format!("m{i}"),
                &format!("--timestamp=2015-10-2{i} 10:00:00 +0000"),
                &format!("--add-metadata-string=version=1.{i}"),
                path_str(&t),
            ],
        );
    }
    for i in 1..=3 {
        write_file(
            &t.join(format!("o{i}")),
            format!("o{i}\n").as_bytes(),
            0o600,
        );
        real.ok(
            &repo,
            &[
                "commit",
                "-b",
                "other",
                "-s",
                &format!("o{i}"),
                "--timestamp=2020-01-01T00:00:00Z",
                path_str(&t),
            ],
        );
    }
    real.ok(
        &repo,
        &[
            "commit",
            "--orphan",
            "-s",
            "orphan",
            "--timestamp=2020-01-02T00:00:00Z",
            path_str(&t),
        ],
    );
    write_file(&t.join("dev-only"), b"x\n", 0o644);
    real.ok(
        &repo,
        &[
            "commit",
            "-b",
            "dev",
            "-s",
            "dev",
            "--timestamp=2020-01-03T00:00:00Z",
            path_str(&t),
        ],
    );
    real.ok(
        &repo,
        &[
            "refs",
            "--collections",
            "--create=org.example.Mirror:mir",
            "other",
        ],
    );
    real.ok(&repo, &["refs", "--delete", "dev"]);
    if mode == "archive" {
        real.ok(&repo, &["static-delta", "generate", "main"]);
        real.ok(&repo, &["static-delta", "generate", "--empty", "main^"]);
    }
    repo
}

fn prune_same(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("prune-");
    let base = history_repo(&real, tmp.path(), mode);
    let main2 = real.rev_parse(&base, "main^^").expect("main^^");
    let option_sets: Vec<Vec<String>> = vec![
        vec![],
        vec!["--refs-only".into()],
        vec!["--refs-only".into(), "--depth=0".into()],
        vec!["--refs-only".into(), "--depth=1".into()],
        vec![
            "--no-prune".into(),
            "--refs-only".into(),
            "--depth=0".into(),
        ],
        vec![
            "--commit-only".into(),
            "--refs-only".into(),
            "--depth=1".into(),
        ],
        vec!["--only-branch=main".into(), "--depth=1".into()],
        vec!["--retain-branch-depth=main=2".into(), "--depth=0".into()],
        vec!["--keep-younger-than=2015-10-23 12:00:00 +0000".into()],
        vec![format!("--delete-commit={main2}")],
        vec!["--only-branch=nonexistent".into()],
        vec!["--static-deltas-only".into()],
    ];
    for opts in option_sets {
        let name = opts.join(" ");
        let r_repo = tmp.path().join("real-repo");
        let o_repo = tmp.path().join("ours-repo");
        let _ = std::fs::remove_dir_all(&r_repo);
        let _ = std::fs::remove_dir_all(&o_repo);
        cp_a(&base, &r_repo);
        cp_a(&base, &o_repo);
        let mut args = vec!["prune"];
        args.extend(opts.iter().map(String::as_str));
        let r = real.run_repo(&r_repo, &args);
        let o = ours.run_repo(&o_repo, &args);
        assert_no_panic(&o);
        assert_eq!(
            o.success(),
            r.success(),
            "{mode} prune {name}: exit status differs\nours: {}\nreal: {}",
            o.describe(),
            r.describe()
        );
        if r.success() {
            assert_eq!(o.out(), r.out(), "{mode} prune {name}: output differs");
        } else {
            assert_eq!(o.err(), r.err(), "{mode} prune {name}: error differs");
        }
        assert_eq!(
            repo_files(&o_repo),
            repo_files(&r_repo),
            "{mode} prune {name}: the repositories differ afterwards"
        );
        assert_eq!(
            std::fs::read_to_string(o_repo.join("config")).expect("config"),
            std::fs::read_to_string(r_repo.join("config")).expect("config"),
            "{mode} prune {name}: config differs"
        );
        real.fsck_clean(&o_repo);
    }
}
crate::per_mode!(prune_same);

/// `summary --view` without the lines that depend on the time of writing.
fn view(o: &Ostree, repo: &Path) -> String {
    o.ok(repo, &["summary", "--view"])
        .lines()
        .filter(|l| !l.contains("ostree.summary.last-modified"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn summaries_cross_read() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("summary-");
    let base = history_repo(&real, tmp.path(), "archive");
    real.ok(
        &base,
        &["config", "set", "core.collection-id", "org.example.Main"],
    );
    let r_repo = tmp.path().join("real-repo");
    let o_repo = tmp.path().join("ours-repo");
    cp_a(&base, &r_repo);
    cp_a(&base, &o_repo);
    let mut md = vec![
        "summary".to_string(),
        "-u".into(),
        "-m".into(),
        "key='value'".into(),
        "--add-metadata=n=@t 123".into(),
    ];
    md.extend((0..30).map(|i| format!("--add-metadata=k{i}={i}")));
    let md: Vec<&str> = md.iter().map(String::as_str).collect();
    real.ok(&r_repo, &md);
    ours.ok(&o_repo, &md);
    // Each binary reads both summaries; all four views agree (the metadata commit ref
    // differs: its timestamp is the time of writing).
    let strip = |s: String| -> String {
        let mut out = Vec::new();
        let mut skip = 0;
        for l in s.lines() {
            if l.starts_with("* (org.example.Main, ostree-metadata)") {
                skip = 5;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(l.to_string());
        }
        out.join("\n")
    };
    let rr = strip(view(&real, &r_repo));
    let ro = strip(view(&real, &o_repo));
    let or = strip(view(&ours, &r_repo));
    let oo = strip(view(&ours, &o_repo));
    assert!(rr.contains("(org.example.Mirror, mir)"), "{rr}");
    assert!(rr.contains("Version (ostree.commit.version): 1.5"), "{rr}");
    assert_eq!(ro, rr, "the real ostree reads our summary differently");
    assert_eq!(
        or, rr,
        "ours reads the real summary differently from the real ostree"
    );
    assert_eq!(oo, rr, "ours reads its own summary differently");
    // --raw prints the same for the same bytes.
    assert_eq!(
        ours.ok(&r_repo, &["summary", "--raw"]),
        real.ok(&r_repo, &["summary", "--raw"])
    );
    // Delta indexes: byte for byte, and the config gains indexed-deltas=true in both.
    let idx = |repo: &Path| -> Vec<(String, Vec<u8>)> {
        repo_files(repo)
            .into_iter()
            .filter(|f| f.starts_with("delta-indexes/"))
            .map(|f| {
                let b = std::fs::read(repo.join(&f)).expect("read index");
                (f, b)
            })
            .collect()
    };
    assert!(!idx(&r_repo).is_empty());
    assert_eq!(idx(&o_repo), idx(&r_repo), "delta indexes differ");
    assert_eq!(
        std::fs::read_to_string(o_repo.join("config")).expect("config"),
        std::fs::read_to_string(r_repo.join("config")).expect("config")
    );
    // summary.sig is removed on regeneration.
    write_file(&o_repo.join("summary.sig"), b"stale", 0o644);
    ours.ok(&o_repo, &["summary", "-u"]);
    assert!(!o_repo.join("summary.sig").exists());
    // The metadata commits: one per update, bound to the collection, readable by the real one.
    let log = real.ok(&o_repo, &["log", "ostree-metadata"]);
    assert_eq!(log.matches("commit ").count(), 2, "{log}");
    real.fsck_clean(&o_repo);
}

#[test]
fn auto_update_summary() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("autosum-");
    let repo = tmp.path().join("repo");
    ours.init(&repo, "archive");
    ours.ok(
        &repo,
        &["config", "set", "core.auto-update-summary", "true"],
    );
    let t = tmp.path().join("t");
    write_file(&t.join("a"), b"a\n", 0o644);
    ours.ok(&repo, &["commit", "-b", "one", path_str(&t)]);
    assert!(view(&real, &repo).contains("* one"));
    ours.ok(&repo, &["refs", "one", "--create=two"]);
    assert!(view(&real, &repo).contains("* two"));
    ours.ok(&repo, &["refs", "--delete", "one"]);
    let v = view(&real, &repo);
    assert!(!v.contains("* one") && v.contains("* two"), "{v}");
}

#[test]
fn aliases_and_collection_refs_cross_read() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("refs-");
    let repo = tmp.path().join("repo");
    real.init(&repo, "bare-user");
    let t = tmp.path().join("t");
    write_file(&t.join("a"), b"a\n", 0o644);
    let c1 = real.ok(&repo, &["commit", "-b", "os/x86_64/26", path_str(&t)]);
    write_file(&t.join("b"), b"b\n", 0o644);
    let c2 = real.ok(&repo, &["commit", "-b", "os/x86_64/27", path_str(&t)]);
    // ours makes an alias; the real ostree follows and lists it
    ours.ok(
        &repo,
        &["refs", "-A", "os/x86_64/26", "--create=os/x86_64/stable"],
    );
    assert_eq!(real.rev_parse(&repo, "os/x86_64/stable"), Some(c1.clone()));
    assert_eq!(
        real.ok(&repo, &["refs", "-A"]),
        "os/x86_64/stable -> os/x86_64/26"
    );
    // the real one swaps it; ours follows
    real.ok(
        &repo,
        &["refs", "-A", "os/x86_64/27", "--create=os/x86_64/stable"],
    );
    assert_eq!(ours.rev_parse(&repo, "os/x86_64/stable"), Some(c2.clone()));
    assert_eq!(
        ours.ok(&repo, &["refs", "-A"]),
        real.ok(&repo, &["refs", "-A"])
    );
    let r = ours.fails(&repo, &["refs", "--delete", "os/x86_64/27"]);
    assert!(r.err().contains("has an active alias"), "{}", r.describe());
    // collection refs made by ours are listed by the real one, and vice versa
    ours.ok(
        &repo,
        &[
            "refs",
            "--collections",
            "--create=org.example.A:mirror-a",
            "os/x86_64/26",
        ],
    );
    real.ok(
        &repo,
        &[
            "refs",
            "--collections",
            "--create=org.example.B:mirror-b",
            "os/x86_64/27",
        ],
    );
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(ours.ok(&repo, &["refs", "--collections"])),
        sorted(real.ok(&repo, &["refs", "--collections"]))
    );
    assert_eq!(
        sorted(ours.ok(&repo, &["refs"])),
        sorted(real.ok(&repo, &["refs"]))
    );
    assert_eq!(
        sorted(ours.ok(&repo, &["refs", "--list", "os"])),
        sorted(real.ok(&repo, &["refs", "--list", "os"]))
    );
    assert_eq!(
        sorted(ours.ok(&repo, &["refs", "os/x86_64"])),
        sorted(real.ok(&repo, &["refs", "os/x86_64"]))
    );
    // reset moves a ref to any commit
    ours.ok(&repo, &["reset", "os/x86_64/27", &c1]);
    assert_eq!(real.rev_parse(&repo, "os/x86_64/27"), Some(c1));
    real.fsck_clean(&repo);
}

fn diff_same(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("diff-");
    let d = tmp.path();
    let repo = d.join("repo");
    real.init(&repo, mode);
    let t = d.join("t");
    write_file(&t.join("a/f"), b"1\n", 0o644);
    write_file(&t.join("a/b/g"), b"2\n", 0o644);
    symlink("f", &t.join("a/l"));
    write_file(&t.join("c/h"), b"3\n", 0o700);
    write_file(&t.join("top"), b"top\n", 0o644);
    real.ok(&repo, &["commit", "-b", "v1", path_str(&t)]);
    write_file(&t.join("a/f"), b"1b\n", 0o644);
    std::fs::remove_dir_all(t.join("c")).expect("rm");
    std::fs::remove_file(t.join("a/l")).expect("rm");
    write_file(&t.join("a/l"), b"now a file\n", 0o644);
    for i in 0..40 {
        write_file(&t.join(format!("n/m/f{i}")), &det_bytes(i, 100), 0o644);
    }
    real.ok(&repo, &["commit", "-b", "v2", path_str(&t)]);
    let co = d.join("co");
    real.ok(&repo, &["checkout", "-U", "v1", path_str(&co)]);
    write_file(&co.join("a/b/g"), b"changed\n", 0o644);
    write_file(&co.join("zz/q"), b"", 0o644);
    let co_rel = "./co";
    let t_rel = "./t";
    let uid = format!("--owner-uid={}", rustix::process::getuid().as_raw() + 1);
    let cases: Vec<Vec<&str>> = vec![
        vec!["v1", "v2"],
        vec!["v2", "v1"],
        vec!["v2"],
        vec!["v1", co_rel],
        vec![co_rel, "v2"],
        vec![t_rel, co_rel],
        vec!["--no-xattrs", "v2", co_rel],
        vec![&uid, "v1", co_rel],
        vec!["--stats", "v1", "v2"],
        vec!["--stats", "--fs-diff", "v1", "v2"],
        vec!["nosuchref", "v2"],
    ];
    for case in cases {
        let mut args = vec![repo_arg(&repo), "diff".to_string()];
        args.extend(case.iter().map(|s| s.to_string()));
        let run = |o: &Ostree| {
            let mut c = o.command();
            c.current_dir(d).args(&args);
            ostree_tests::bins::run_command(o.label, c)
        };
        let r = run(&real);
        let o = run(&ours);
        assert_no_panic(&o);
        assert_eq!(
            o.success(),
            r.success(),
            "{mode} diff {case:?}\n{}",
            o.describe()
        );
        assert_eq!(o.out(), r.out(), "{mode} diff {case:?}: output differs");
    }
}
crate::per_mode!(diff_same);

#[test]
fn checksum_matches() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("csum-");
    let d = tmp.path();
    write_file(&d.join("f"), b"hello\n", 0o640);
    symlink("f", &d.join("l"));
    std::fs::create_dir(d.join("dir")).expect("mkdir");
    for p in ["f", "l", "dir"] {
        let path = d.join(p);
        for extra in [None, Some("--ignore-xattrs")] {
            let mut args = vec!["checksum".to_string()];
            args.extend(extra.map(str::to_string));
            args.push(path_str(&path).to_string());
            let o = ours.run(&args);
            let r = real.run(&args);
            assert_eq!(o.out(), r.out(), "checksum {args:?}\n{}", o.describe());
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A prune killed with SIGKILL at random instants leaves a repository that both fscks pass,
/// and the prune completed afterwards leaves what the real prune leaves.
///
/// Env: OSTREE_TEST_KILL_PRUNE_FILES (files per commit, default 2000),
/// OSTREE_TEST_KILL_ROUNDS (default 5), OSTREE_TEST_SEED (printed, for replays).
#[test]
fn prune_killed_midway_is_fsck_clean() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("kill-prune-");
    let d = tmp.path();
    let base = d.join("base");
    ours.init(&base, "archive");
    let nfiles = env_u64("OSTREE_TEST_KILL_PRUNE_FILES", 2000);
    for (i, b) in ["a", "b", "c"].iter().enumerate() {
        let t = d.join(format!("t{i}"));
        make_bulk_tree(&t, nfiles, 2, 77 + i as u64);
        ours.ok(
            &base,
            &[
                "commit",
                "-b",
                "main",
                "-s",
                b,
                "--timestamp=2022-01-01T00:00:00Z",
                path_str(&t),
            ],
        );
        std::fs::remove_dir_all(&t).expect("cleanup");
    }
    let reference = d.join("reference");
    cp_a(&base, &reference);
    real.ok(&reference, &["prune", "--refs-only", "--depth=0"]);
    let expected = object_names(&reference);

    // how long one prune takes
    let calib = d.join("calib");
    cp_a(&base, &calib);
    let t0 = Instant::now();
    ours.ok(&calib, &["prune", "--refs-only", "--depth=0"]);
    let full = t0.elapsed().max(Duration::from_millis(5));
    assert_eq!(object_names(&calib), expected);
    std::fs::remove_dir_all(&calib).expect("cleanup");

    let seed = env_u64(
        "OSTREE_TEST_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let mut rng = Rng::new(seed);
    let rounds = env_u64("OSTREE_TEST_KILL_ROUNDS", 5);
    eprintln!("prune_killed_midway: a prune takes {full:?}; OSTREE_TEST_SEED={seed}");
    let (mut interrupted, mut finished) = (0, 0);
    for round in 0..rounds {
        let repo = d.join(format!("r{round}"));
        cp_a(&base, &repo);
        let before = object_names(&repo).len();
        let delay = full.mul_f64(rng.below(1000) as f64 / 1000.0);
        let mut c = ours.command();
        c.arg(repo_arg(&repo))
            .args(["prune", "--refs-only", "--depth=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("spawn prune");
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let ctx =
            format!("round {round}, killed after {delay:?} ({status}), OSTREE_TEST_SEED={seed}");
        let after = object_names(&repo).len();
        if after == expected.len() {
            finished += 1;
        } else if after < before {
            interrupted += 1;
        }
        real.fsck_clean(&repo);
        ours.fsck_clean(&repo);
        ours.ok(&repo, &["prune", "--refs-only", "--depth=0"]);
        assert_eq!(object_names(&repo), expected, "{ctx}: prune after the kill");
        std::fs::remove_dir_all(&repo).expect("cleanup");
    }
    eprintln!(
        "prune_killed_midway: {interrupted} prunes interrupted while deleting, {finished} finished"
    );
}

/// `summary --view`/`--raw` over mutated and truncated summaries: never a panic.
#[test]
fn hostile_summaries_do_not_panic() {
    let o = ours();
    let tmp = scratch("hostile-summary-");
    let repo = tmp.path().join("repo");
    o.init(&repo, "archive");
    let t = tmp.path().join("t");
    write_file(&t.join("a"), b"a\n", 0o644);
    o.ok(
        &repo,
        &[
            "commit",
            "-b",
            "main",
            "--add-metadata-string=version=1",
            path_str(&t),
        ],
    );
    o.ok(
        &repo,
        &["refs", "--collections", "--create=org.example.X:m", "main"],
    );
    o.ok(&repo, &["summary", "-u", "-m", "k=<(1, 'x')>"]);
    let good = std::fs::read(repo.join("summary")).expect("summary");
    let seed = env_u64("OSTREE_TEST_SEED", 4242);
    let mut rng = Rng::new(seed);
    let n = env_u64("OSTREE_TEST_HOSTILE_ROUNDS", 150);
    for i in 0..n {
        let mut bad = good.clone();
        match i % 3 {
            0 => {
                let j = rng.below(bad.len() as u64) as usize;
                bad[j] ^= 1 << rng.below(8);
            }
            1 => bad.truncate(rng.below(bad.len() as u64) as usize),
            _ => {
                for _ in 0..4 {
                    let j = rng.below(bad.len() as u64) as usize;
                    bad[j] = rng.next_u64() as u8;
                }
            }
        }
        std::fs::write(repo.join("summary"), &bad).expect("write");
        for flag in ["--view", "--raw"] {
            let r = o.run_repo(&repo, &["summary", flag]);
            assert_no_panic(&r);
        }
    }
}
