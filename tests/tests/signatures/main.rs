//! Signatures end to end: GPG interop with the real ostree as the judge (its signatures verify
//! with ours, ours are "Good signature" for it, on commits and summaries), pull enforcement
//! (nothing below a badly signed commit is stored), ed25519 and dummy signing through the CLI,
//! and hostile signature data (never a panic, never valid).
//!
//! The GPG keys are ostree's test keys (`signers/gpg/tests/data/gpghome`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ostree_tests::bins::{
    Ostree, Run, assert_no_panic, ours, path_str, real, run_command, scratch,
};
use ostree_tests::fixtures::make_small_tree;
use ostree_tests::httpd::TestServer;

const KEY1: &str = "7FCA23D8472CDAFA";
const KEY2: &str = "D8228CFECA950D41";
/// FORMATS.md §5.4 example key (seed bytes 00..1f).
const ED_SECRET: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA==";
const ED_PUBLIC: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signers/gpg/tests/data/gpghome")
}

/// A private copy of the test GnuPG home (gpg wants it writable and 0700).
fn gpghome(dir: &Path) -> PathBuf {
    let h = dir.join("gpghome");
    std::fs::create_dir_all(h.join("trusted")).expect("mkdir");
    for f in [
        "pubring.gpg",
        "secring.gpg",
        "key1.asc",
        "key2.asc",
        "key3.asc",
    ] {
        std::fs::copy(keys_dir().join(f), h.join(f)).expect("copy key");
    }
    std::fs::copy(
        keys_dir().join("pubring.gpg"),
        h.join("trusted/pubring.gpg"),
    )
    .expect("copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    h
}

/// Run with extra environment.
fn run_env(o: &Ostree, env: &[(&str, &Path)], args: &[&str]) -> Run {
    let mut c: Command = o.command();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args);
    let r = run_command("env", c);
    assert_no_panic(&r);
    r
}

fn repo_args(repo: &Path, rest: &[&str]) -> Vec<String> {
    let mut v = vec![format!("--repo={}", path_str(repo))];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn show(o: &Ostree, repo: &Path, trusted: &Path, rev: &str) -> String {
    let args = repo_args(repo, &["show", rev]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_env(o, &[("OSTREE_GPG_HOME", trusted)], &args);
    assert!(r.success(), "{}", r.describe());
    r.out()
}

fn commit(o: &Ostree, repo: &Path, tree: &Path, extra: &[&str]) -> String {
    let t = format!("--tree=dir={}", path_str(tree));
    let mut args = vec!["commit", "-b", "main", "-s", "signed", t.as_str()];
    args.extend_from_slice(extra);
    o.ok(repo, &args)
}

#[test]
fn real_gpg_signatures_verify_with_ours_and_ours_with_real() {
    let Some(real) = real() else { return };
    let ours = ours();
    let d = scratch("sig-gpg-");
    let home = gpghome(d.path());
    let homearg = format!("--gpg-homedir={}", path_str(&home));
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let repo = d.path().join("repo");
    ours.init(&repo, "archive");

    // The real ostree signs; ours verifies.
    let c1 = commit(
        &real,
        &repo,
        &tree,
        &[&format!("--gpg-sign={KEY1}"), &homearg],
    );
    let s = show(&ours, &repo, &home.join("trusted"), &c1);
    assert!(s.contains("Found 1 signature:"), "{s}");
    assert!(
        s.contains("Good signature from \"Ostree Tester <test@test.com>\""),
        "{s}"
    );
    // Identical report text from both (same time zone: C locale, TZ inherited).
    let r = show(&real, &repo, &home.join("trusted"), &c1);
    assert_eq!(s, r, "show output differs");

    // Ours signs (pure Rust from secring.gpg); the real ostree reports a good signature.
    std::fs::write(tree.join("more"), b"more\n").expect("write");
    let c2 = commit(
        &ours,
        &repo,
        &tree,
        &[&format!("--gpg-sign={KEY2}"), &homearg],
    );
    let s = show(&real, &repo, &home.join("trusted"), &c2);
    assert!(
        s.contains("Good signature from \"Ostree Tester II <test2@test.com>\""),
        "{s}"
    );
    // ostree gpg-sign by the real one on top of ours: both count two.
    real.ok(&repo, &["gpg-sign", &homearg, &c2, KEY1]);
    for o in [&ours, &real] {
        let s = show(o, &repo, &home.join("trusted"), &c2);
        assert!(s.contains("Found 2 signatures:"), "{s}");
        assert_eq!(s.matches("Good signature").count(), 2, "{s}");
    }
    // Signing twice with one key is refused; --delete removes one.
    let again = ours.run_repo(&repo, &["gpg-sign", &homearg, &c2, KEY2]);
    assert!(!again.success());
    assert!(
        again.err().contains("already signed"),
        "{}",
        again.describe()
    );
    let trusted = home.join("trusted");
    let args = repo_args(&repo, &["gpg-sign", "--delete", &c2, KEY1]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let del = run_env(&ours, &[("OSTREE_GPG_HOME", &trusted)], &args);
    assert!(
        del.out().contains("Signatures deleted: 1"),
        "{}",
        del.describe()
    );
    let s = show(&real, &repo, &home.join("trusted"), &c2);
    assert!(s.contains("Found 1 signature:"), "{s}");
}

/// Serve `srv` and add remote `origin` to `client` with `opts`.
fn client(o: &Ostree, client: &Path, url: &str, opts: &[&str]) {
    o.init(client, "archive");
    let mut args = vec!["remote", "add"];
    args.extend_from_slice(opts);
    args.push("origin");
    args.push(url);
    o.ok(client, &args);
}

fn stored_dirtrees(repo: &Path) -> usize {
    walk(&repo.join("objects"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dirtree"))
        .count()
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn pull_enforces_gpg_signatures_before_storing() {
    let ours = ours();
    let d = scratch("sig-pull-");
    let home = gpghome(d.path());
    let homearg = format!("--gpg-homedir={}", path_str(&home));
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let srv = d.path().join("srv");
    ours.init(&srv, "archive");
    commit(
        &ours,
        &srv,
        &tree,
        &[&format!("--gpg-sign={KEY1}"), &homearg],
    );
    let server = TestServer::start(&srv);
    let key1 = home.join("key1.asc");
    let key2 = home.join("key2.asc");

    // Trusted key: the pull succeeds; real ostree (when installed) agrees on the same setup.
    let good = d.path().join("good");
    client(
        &ours,
        &good,
        &server.url,
        &["--gpg-import", path_str(&key1)],
    );
    ours.ok(&good, &["pull", "origin", "main"]);
    ours.fsck_clean(&good);
    if let Some(real) = real() {
        let rgood = d.path().join("rgood");
        client(
            &real,
            &rgood,
            &server.url,
            &["--gpg-import", path_str(&key1)],
        );
        real.ok(&rgood, &["pull", "origin", "main"]);
    }

    // Untrusted key: refused, and nothing below the commit was stored, no ref moved.
    let bad = d.path().join("bad");
    client(&ours, &bad, &server.url, &["--gpg-import", path_str(&key2)]);
    let r = ours.fails(&bad, &["pull", "origin", "main"]);
    assert!(r.err().contains("public key not found"), "{}", r.describe());
    assert_eq!(
        stored_dirtrees(&bad),
        0,
        "objects stored after a refused commit"
    );
    assert!(ours.rev_parse(&bad, "origin:main").is_none());

    // Unsigned commit: refused with ostree's words.
    std::fs::write(tree.join("unsigned"), b"x\n").expect("write");
    commit(&ours, &srv, &tree, &[]);
    let r = ours.fails(&good, &["pull", "origin", "main"]);
    assert!(
        r.err()
            .contains("GPG verification enabled, but no signatures found"),
        "{}",
        r.describe()
    );
    // gpg-verify=false accepts it.
    ours.ok(
        &good,
        &["config", "set", "remote \"origin\".gpg-verify", "false"],
    );
    ours.ok(&good, &["pull", "origin", "main"]);
}

#[test]
fn hostile_signature_data_never_verifies() {
    let ours = ours();
    let d = scratch("sig-hostile-");
    let home = gpghome(d.path());
    let homearg = format!("--gpg-homedir={}", path_str(&home));
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let srv = d.path().join("srv");
    ours.init(&srv, "archive");
    let c = commit(
        &ours,
        &srv,
        &tree,
        &[&format!("--gpg-sign={KEY1}"), &homearg],
    );
    let meta = srv
        .join("objects")
        .join(&c[..2])
        .join(format!("{}.commitmeta", &c[2..]));
    let good = std::fs::read(&meta).expect("commitmeta");
    let server = TestServer::start(&srv);
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"borkborkbork\n".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![0xff; 4096],
    ];
    // Flip bytes across the signature (bounded, deterministic).
    for i in (0..good.len()).step_by((good.len() / 24).max(1)) {
        let mut m = good.clone();
        m[i] ^= 0x5a;
        cases.push(m);
    }
    for (n, case) in cases.iter().enumerate() {
        std::fs::write(&meta, case).expect("write");
        let cl = d.path().join(format!("c{n}"));
        client(
            &ours,
            &cl,
            &server.url,
            &["--gpg-import", path_str(&home.join("key1.asc"))],
        );
        let r = ours.run_repo(&cl, &["pull", "origin", "main"]);
        assert_no_panic(&r);
        if r.success() {
            // Only a flip outside the signed material (e.g. an unhashed subpacket or the
            // metadata framing that still decodes to the same signature) may pass.
            let s = show(&ours, &cl, &home.join("trusted"), "origin:main");
            assert!(
                s.contains("Good signature"),
                "case {n} pulled without a good signature"
            );
        } else {
            assert_eq!(stored_dirtrees(&cl), 0, "case {n}: objects stored");
        }
    }
}

#[test]
fn ed25519_and_dummy_through_the_cli() {
    let ours = ours();
    // (When the binary under test is a real ostree built without libsodium, as Debian's.)
    if !ours.run(&["--version"]).out().contains("- sign-ed25519") {
        eprintln!("SKIP: {} has no ed25519 support", ours.bin.display());
        return;
    }
    let d = scratch("sig-ed-");
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let srv = d.path().join("srv");
    ours.init(&srv, "archive");
    let c = commit(
        &ours,
        &srv,
        &tree,
        &[&format!("--sign={ED_SECRET}"), "--sign-type=ed25519"],
    );
    let out = ours.ok(
        &srv,
        &["sign", "--verify", "--sign-type=ed25519", &c, ED_PUBLIC],
    );
    assert_eq!(
        out,
        "ed25519: Signature verified successfully with key '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8'"
    );
    let wrong = "Wrong4bP5rY8mMdX9kCt1zL6hN2wQ3eR7yU0iO5pA8s=";
    ours.fails(
        &srv,
        &["sign", "--verify", "--sign-type=ed25519", &c, wrong],
    );
    // Keys file, and pulls with sign-verify.
    let keys = d.path().join("keys");
    std::fs::write(&keys, format!("garbage\n{ED_PUBLIC}\n")).expect("write");
    ours.ok(
        &srv,
        &[
            "sign",
            "--verify",
            "--sign-type=ed25519",
            &format!("--keys-file={}", path_str(&keys)),
            &c,
        ],
    );
    let server = TestServer::start(&srv);
    let good = d.path().join("good");
    client(
        &ours,
        &good,
        &server.url,
        &[
            "--no-gpg-verify",
            &format!("--sign-verify=ed25519=inline:{ED_PUBLIC}"),
        ],
    );
    ours.ok(&good, &["pull", "origin", "main"]);
    let bad = d.path().join("bad");
    client(
        &ours,
        &bad,
        &server.url,
        &[
            "--no-gpg-verify",
            &format!("--sign-verify=ed25519=inline:{wrong}"),
        ],
    );
    let r = ours.fails(&bad, &["pull", "origin", "main"]);
    assert!(
        r.err()
            .contains("ed25519: Signature couldn't be verified with: key"),
        "{}",
        r.describe()
    );
    assert_eq!(stored_dirtrees(&bad), 0);
}

#[test]
fn real_signed_summaries_verify_with_ours() {
    let Some(real) = real() else { return };
    let ours = ours();
    let d = scratch("sig-summary-");
    let home = gpghome(d.path());
    let homearg = format!("--gpg-homedir={}", path_str(&home));
    let tree = d.path().join("tree");
    make_small_tree(&tree);
    let srv = d.path().join("srv");
    real.init(&srv, "archive");
    commit(
        &real,
        &srv,
        &tree,
        &[&format!("--gpg-sign={KEY1}"), &homearg],
    );
    real.ok(
        &srv,
        &["summary", "-u", &format!("--gpg-sign={KEY1}"), &homearg],
    );
    let server = TestServer::start(&srv);
    let key1 = home.join("key1.asc");
    let cl = d.path().join("cl");
    client(
        &ours,
        &cl,
        &server.url,
        &[
            "--set=gpg-verify-summary=true",
            "--gpg-import",
            path_str(&key1),
        ],
    );
    ours.ok(&cl, &["pull", "origin", "main"]);
    for f in ["origin", "origin.sig"] {
        assert!(
            cl.join("tmp/cache/summaries").join(f).exists(),
            "summary cache {f} missing"
        );
    }
    let out = ours.ok(&cl, &["remote", "summary", "origin"]);
    assert!(
        out.contains("GPG: Verification enabled, found 1 signature:"),
        "{out}"
    );
    assert!(
        out.contains("Good signature from \"Ostree Tester <test@test.com>\""),
        "{out}"
    );

    // A summary signed by a key the remote does not trust, and garbage: refused.
    real.ok(
        &srv,
        &["summary", "-u", &format!("--gpg-sign={KEY2}"), &homearg],
    );
    let cl2 = d.path().join("cl2");
    client(
        &ours,
        &cl2,
        &server.url,
        &[
            "--set=gpg-verify-summary=true",
            "--gpg-import",
            path_str(&key1),
        ],
    );
    let r = ours.fails(&cl2, &["pull", "origin", "main"]);
    assert!(r.err().contains("public key not found"), "{}", r.describe());
    std::fs::write(srv.join("summary.sig"), b"invalid\n").expect("write");
    let r = ours.fails(&cl2, &["pull", "origin", "main"]);
    assert!(r.err().contains("no signatures found"), "{}", r.describe());
    assert!(!cl2.join("tmp/cache/summaries/origin.sig").exists());
}
