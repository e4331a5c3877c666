//! Replication: pulls over HTTP both ways with the real ostree as the judge, pull-local both
//! ways, and fault injection (dropped connections, stalls, 500s, corrupted objects).

use std::path::Path;
use std::time::{Duration, Instant};

use ostree_tests::bins::{Ostree, both, ours, path_str, scratch};
use ostree_tests::fixtures::{make_rich_tree, make_small_tree};
use ostree_tests::httpd::{Fault, TestServer, TrivialHttpd};
use ostree_tests::tree::{Compare, assert_same_tree};

/// Commit `tree` twice (two commits on `main`) into a fresh archive repo with `o`; returns the
/// head checksum.
fn make_served_repo(o: &Ostree, repo: &Path, tree: &Path) -> String {
    o.init(repo, "archive");
    o.ok(
        repo,
        &[
            "commit",
            "-b",
            "main",
            "-s",
            "one",
            &format!("--tree=dir={}", path_str(tree)),
        ],
    );
    std::fs::write(tree.join("second"), b"second commit\n").expect("write");
    o.ok(
        repo,
        &[
            "commit",
            "-b",
            "main",
            "-s",
            "two",
            &format!("--tree=dir={}", path_str(tree)),
        ],
    )
}

fn checkout_compare(judge: &Ostree, a: &Path, b: &Path, rev: &str, work: &Path, perms: bool) {
    // `a` is the client (`origin:REF`), `b` the served repository (`REF`).
    std::fs::create_dir_all(work).expect("mkdir");
    let ca = work.join("co-a");
    let cb = work.join("co-b");
    judge.ok(a, &["checkout", "-U", rev, path_str(&ca)]);
    let plain = rev.split_once(':').map(|(_, r)| r).unwrap_or(rev);
    judge.ok(b, &["checkout", "-U", plain, path_str(&cb)]);
    assert_same_tree(
        "a",
        &ca,
        "b",
        &cb,
        Compare {
            perms,
            owners: false,
            xattrs: false,
            mtime_zero: false,
        },
    );
}

fn pull_into(o: &Ostree, repo: &Path, mode: &str, url: &str, extra: &[&str]) -> String {
    o.init(repo, mode);
    o.ok(repo, &["remote", "add", "--no-gpg-verify", "origin", url]);
    let mut args = vec!["pull"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["origin", "main"]);
    o.ok(repo, &args)
}

/// ostree's trivial-httpd serving `root`; `None` (the test skips) when it is not installed
/// and the real ostree is not required.
fn httpd(root: &Path) -> Option<TrivialHttpd> {
    let h = TrivialHttpd::start(root);
    if h.is_none() {
        if ostree_tests::bins::required("ostree") {
            panic!("ostree-trivial-httpd is missing");
        }
        eprintln!("skipping: ostree-trivial-httpd not installed");
    }
    h
}

/// The real ostree pulls our archive repo (served by trivial-httpd) and we pull the real
/// one's; both fscks pass, checkouts are equal, refs land in refs/remotes.
#[test]
fn http_both_ways() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("pull-http");
    let tree = d.path().join("tree");
    make_rich_tree(&tree, 3, false);
    let srv = d.path().join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    let head_ours = make_served_repo(&ours, &srv.join("ours"), &tree);
    std::fs::remove_file(tree.join("second")).expect("rm");
    let head_real = make_served_repo(&real, &srv.join("real"), &tree);
    real.ok(&srv.join("real"), &["summary", "-u"]);
    let Some(httpd) = httpd(&srv) else { return };
    for mode in ["bare-user", "archive"] {
        // real ← ours
        let a = d.path().join(format!("real-from-ours-{mode}"));
        pull_into(
            &real,
            &a,
            mode,
            &format!("{}/ours", httpd.url),
            &["--depth=-1"],
        );
        assert_eq!(
            real.rev_parse(&a, "origin:main").as_deref(),
            Some(head_ours.as_str())
        );
        real.fsck_clean(&a);
        checkout_compare(
            &real,
            &a,
            &srv.join("ours"),
            "origin:main",
            &d.path().join(format!("c1-{mode}")),
            mode == "archive",
        );
        // ours ← real
        let b = d.path().join(format!("ours-from-real-{mode}"));
        let out = pull_into(
            &ours,
            &b,
            mode,
            &format!("{}/real", httpd.url),
            &["--depth=-1"],
        );
        assert!(out.contains("content objects fetched"), "{out}");
        assert_eq!(
            real.rev_parse(&b, "origin:main").as_deref(),
            Some(head_real.as_str())
        );
        assert!(!b.join(format!("state/{head_real}.commitpartial")).exists());
        real.fsck_clean(&b);
        ours.fsck_clean(&b);
        checkout_compare(
            &real,
            &b,
            &srv.join("real"),
            "origin:main",
            &d.path().join(format!("c2-{mode}")),
            mode == "archive",
        );
        // A second pull fetches no content. (Like ostree, it still counts the commit's
        // detached-metadata request and the commit as metadata "fetched": the real ostree
        // prints "2 metadata, 0 content objects fetched" here.)
        let again = ours.ok(&b, &["pull", "origin", "main"]);
        assert!(
            again.contains(" metadata, 0 content objects fetched"),
            "{again}"
        );
        assert!(!again.contains("transferred"), "{again}");
    }
}

/// The "transferred" figure counts what ostree counts: the objects fetched, not the summary
/// and config read first. On a repository of a few hundred bytes both print it in bytes, so
/// the figures must be equal to the byte, and equal to the served objects' sizes.
#[test]
fn transferred_figure_counts_what_ostree_counts() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("pull-transferred");
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let srv = d.path().join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    make_served_repo(&real, &srv.join("real"), &tree);
    real.ok(&srv.join("real"), &["summary", "-u"]);
    let Some(httpd) = httpd(&srv) else { return };
    let objects: u64 = walk_sizes(&srv.join("real/objects"));
    assert!(
        objects < 1024,
        "the served objects must fit in 1 KiB: {objects}"
    );
    let figure = |o: &str| {
        o.split("; ")
            .find(|p| p.contains(" transferred in "))
            .and_then(|p| p.split(" transferred in ").next())
            .map(str::to_owned)
    };
    let url = format!("{}/real", httpd.url);
    let out = pull_into(
        &ours,
        &d.path().join("ours"),
        "archive",
        &url,
        &["--depth=-1"],
    );
    let real_out = pull_into(
        &real,
        &d.path().join("real"),
        "archive",
        &url,
        &["--depth=-1"],
    );
    assert_eq!(figure(&out), Some(format!("{objects} B")), "{out}");
    assert_eq!(figure(&out), figure(&real_out), "{out}\n{real_out}");
}

fn walk_sizes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let md = e.metadata().expect("metadata");
        n += if md.is_dir() {
            walk_sizes(&e.path())
        } else {
            md.len()
        };
    }
    n
}

/// pull-local both ways between every mode pair that makes sense, judged by fsck + checkout.
#[test]
fn pull_local_both_ways() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("pull-local");
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let src = d.path().join("src");
    let head = make_served_repo(&real, &src, &tree);
    for (i, (puller, judge)) in [(&ours, &real), (&real, &ours)].into_iter().enumerate() {
        for mode in ["archive", "bare-user", "bare-user-only"] {
            let dst = d.path().join(format!("dst-{i}-{mode}"));
            puller.init(&dst, mode);
            let out = puller.ok(&dst, &["pull-local", "--depth=1", path_str(&src), "main"]);
            assert!(out.contains("content objects imported"), "{out}");
            assert_eq!(
                judge.rev_parse(&dst, "main").as_deref(),
                Some(head.as_str())
            );
            real.fsck_clean(&dst);
            // And back: the other side copies from what this side wrote, with --untrusted.
            let back = d.path().join(format!("back-{i}-{mode}"));
            judge.init(&back, "archive");
            judge.ok(
                &back,
                &[
                    "pull-local",
                    "--untrusted",
                    "--remote=origin",
                    path_str(&dst),
                    "main",
                ],
            );
            assert_eq!(
                real.rev_parse(&back, "origin:main").as_deref(),
                Some(head.as_str())
            );
            real.fsck_clean(&back);
        }
    }
}

fn served(o: &Ostree, d: &Path) -> (std::path::PathBuf, String) {
    let tree = d.join("tree");
    make_rich_tree(&tree, 2, false);
    let srv = d.join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    let repo = srv.join("repo");
    let head = make_served_repo(o, &repo, &tree);
    (srv, head)
}

fn largest_object(repo: &Path) -> String {
    let mut best = (0u64, String::new());
    for p in ostree_tests::fsutil::list_paths(&repo.join("objects")) {
        let full = repo.join("objects").join(&p);
        let len = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
        if p.to_string_lossy().ends_with(".filez") && len > best.0 {
            best = (len, p.to_string_lossy().into_owned());
        }
    }
    best.1
}

fn client(o: &Ostree, repo: &Path, url: &str) {
    o.init(repo, "bare-user");
    o.ok(
        repo,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            "origin",
            &format!("{url}/repo"),
        ],
    );
}

/// A connection dropped in the middle of an object: the pull resumes it (range request) and
/// completes; 500s are retried.
#[test]
fn fault_drop_and_500_are_retried() {
    let o = ours();
    let d = scratch("pull-fault-drop");
    let (srv, head) = served(&o, d.path());
    let big = largest_object(&srv.join("repo"));
    let server = TestServer::start(&srv);
    server.add_rule(&big, Fault::DropAfter(4096), Some(2));
    server.add_rule(".dirtree", Fault::Status500, Some(2));
    let c = d.path().join("client");
    client(&o, &c, &server.url);
    let out = o.ok(&c, &["pull", "origin", "main"]);
    assert!(out.contains("content objects fetched"), "{out}");
    assert_eq!(
        o.rev_parse(&c, "origin:main").as_deref(),
        Some(head.as_str())
    );
    if let Some(real) = ostree_tests::bins::real() {
        real.fsck_clean(&c);
    }
}

/// A corrupted object: the pull fails naming the corruption, the object is not stored, the
/// ref is untouched; a later clean pull completes without refetching what was verified.
#[test]
fn fault_corrupt_object_is_never_stored() {
    let o = ours();
    let d = scratch("pull-fault-corrupt");
    let (srv, head) = served(&o, d.path());
    let big = largest_object(&srv.join("repo"));
    let server = TestServer::start(&srv);
    server.add_rule(&big, Fault::Corrupt, None);
    let c = d.path().join("client");
    client(&o, &c, &server.url);
    let r = o.fails(&c, &["pull", "origin", "main"]);
    assert!(
        r.err().contains("Corrupted") || r.err().contains("checksum"),
        "{}",
        r.describe()
    );
    assert!(
        !c.join("objects")
            .join(big.replace(".filez", ".file"))
            .exists()
    );
    assert_eq!(
        o.rev_parse(&c, "origin:main"),
        None,
        "ref moved after a failed pull"
    );
    let stored_before = ostree_tests::fixtures::object_names(&c).len();
    assert!(
        stored_before > 0,
        "verified objects were not kept for resume"
    );
    server.clear_rules();
    server.clear_log();
    o.ok(&c, &["pull", "origin", "main"]);
    assert_eq!(
        o.rev_parse(&c, "origin:main").as_deref(),
        Some(head.as_str())
    );
    let refetched = server
        .log()
        .iter()
        .filter(|p| p.contains("/objects/"))
        .count();
    let total = ostree_tests::fixtures::object_names(&srv.join("repo")).len();
    assert!(
        refetched < total,
        "resume refetched everything ({refetched} of {total})"
    );
    if let Some(real) = ostree_tests::bins::real() {
        real.fsck_clean(&c);
    }
}

/// A stalled server: the pull fails within a bounded time (no-progress watchdog), refs
/// untouched; persistent 500s fail after the configured retries.
#[test]
fn fault_stall_and_dead_server_fail_in_bounded_time() {
    let o = ours();
    let d = scratch("pull-fault-stall");
    let (srv, _head) = served(&o, d.path());
    let big = largest_object(&srv.join("repo"));
    let server = TestServer::start(&srv);
    server.add_rule(&big, Fault::Stall(100, Duration::from_secs(60)), None);
    let c = d.path().join("client");
    client(&o, &c, &server.url);
    let mut cmd = o.command();
    cmd.env("OSTREE_RS_FETCH_IDLE_TIMEOUT", "2").args([
        &ostree_tests::bins::repo_arg(&c),
        "pull",
        "--network-retries=1",
        "origin",
        "main",
    ]);
    let t = Instant::now();
    let r = ostree_tests::bins::run_command("ours", cmd);
    assert!(!r.success(), "{}", r.describe());
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert!(r.err().contains("no data received"), "{}", r.describe());
    assert_eq!(o.rev_parse(&c, "origin:main"), None);

    server.clear_rules();
    server.add_rule(".commit", Fault::Status500, None);
    let c2 = d.path().join("client2");
    client(&o, &c2, &server.url);
    let t = Instant::now();
    let r = o.fails(&c2, &["pull", "--network-retries=2", "origin", "main"]);
    assert!(r.err().contains("500"), "{}", r.describe());
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(o.rev_parse(&c2, "origin:main"), None);
}

/// Pull options: --commit-metadata-only leaves the commit partial, --subpath only fetches the
/// subtree, --mirror writes refs/heads, pulling by checksum writes no ref, `--url` overrides.
#[test]
fn pull_options() {
    let o = ours();
    let d = scratch("pull-opts");
    let (srv, head) = served(&o, d.path());
    let server = TestServer::start(&srv);
    let url = format!("{}/repo", server.url);

    let c = d.path().join("commit-only");
    client(&o, &c, &server.url);
    o.ok(
        &c,
        &[
            "pull",
            "--commit-metadata-only",
            "--depth=1",
            "origin",
            "main",
        ],
    );
    assert!(c.join(format!("state/{head}.commitpartial")).exists());
    let names = ostree_tests::fixtures::object_names(&c);
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".commit") || n.ends_with(".commitmeta")),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".commit")).count(), 2);

    let m = d.path().join("mirror");
    o.init(&m, "archive");
    o.ok(&m, &["remote", "add", "--no-gpg-verify", "origin", &url]);
    o.ok(&m, &["pull", "--mirror", "origin", "main"]);
    assert_eq!(o.rev_parse(&m, "main").as_deref(), Some(head.as_str()));

    let k = d.path().join("by-checksum");
    client(&o, &k, "http://127.0.0.1:9");
    o.ok(&k, &["pull", &format!("--url={url}"), "origin", &head]);
    assert_eq!(o.rev_parse(&k, "origin:main"), None);
    o.ok(&k, &["show", &head]);

    let s = d.path().join("subpath");
    client(&o, &s, &server.url);
    o.ok(&s, &["pull", "--subpath=/second", "origin", "main"]);
    assert!(s.join(format!("state/{head}.commitpartial")).exists());
    let full = ostree_tests::fixtures::object_names(&srv.join("repo")).len();
    assert!(ostree_tests::fixtures::object_names(&s).len() < full / 2);
}

/// File objects larger than the engine's in-memory limits (1 MiB decompressed, 512 KiB as
/// fetched) are received into an unlinked file and decompressed into a spool file: pulled into
/// bare-user, bare and archive repos they check out the same as the real ostree's copy and
/// pass the real fsck; a corrupted one is refused and stores nothing; no spool file is left
/// behind either way.
#[test]
fn large_objects_are_spooled_and_verified() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("pull-large-");
    let tree = d.path().join("tree");
    ostree_tests::fsutil::write_file(
        &tree.join("big/blob"),
        &ostree_tests::fsutil::det_bytes(7, 6 << 20),
        0o644,
    );
    ostree_tests::fsutil::write_file(&tree.join("small"), b"small\n", 0o644);
    let srv = d.path().join("srv");
    std::fs::create_dir_all(&srv).expect("mkdir");
    let repo = srv.join("repo");
    let head = make_served_repo(&real, &repo, &tree);
    let big = largest_object(&repo);
    let server = TestServer::start(&srv);
    let leftovers = |c: &Path| {
        std::fs::read_dir(c.join("tmp"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".pull-") || n.starts_with(".body-"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    for mode in ["bare-user", "bare", "archive"] {
        if mode == "bare" && !ostree_tests::bins::is_root() {
            continue;
        }
        let c = d.path().join(format!("client-{mode}"));
        pull_into(&ours, &c, mode, &format!("{}/repo", server.url), &[]);
        assert_eq!(
            ours.rev_parse(&c, "origin:main").as_deref(),
            Some(head.as_str())
        );
        real.fsck_clean(&c);
        checkout_compare(
            &real,
            &c,
            &repo,
            "origin:main",
            &d.path().join(format!("co-{mode}")),
            true,
        );
        assert!(
            leftovers(&c).is_empty(),
            "spool files left: {:?}",
            leftovers(&c)
        );
    }
    server.add_rule(&big, Fault::Corrupt, None);
    let c = d.path().join("client-corrupt");
    client(&ours, &c, &server.url);
    let r = ours.fails(&c, &["pull", "origin", "main"]);
    assert!(
        r.err().contains("Corrupted") || r.err().contains("checksum"),
        "{}",
        r.describe()
    );
    assert!(
        !c.join("objects")
            .join(big.replace(".filez", ".file"))
            .exists(),
        "the corrupted object was stored"
    );
    assert!(
        leftovers(&c).is_empty(),
        "spool files left: {:?}",
        leftovers(&c)
    );
}
