//! `ostree push` of static deltas, detached commit metadata and a signed summary, judged by
//! the real ostree pulling from the bucket's plain-HTTP URL: it verifies the GPG-signed
//! summary and commits, updates through the pushed static delta (no content object fetched),
//! and fscks clean. The ed25519 signature of the same summary is checked by our pull (the
//! real 2022.7 here has no ed25519). Each test starts its own moto (see `s3_common`).

mod s3_common;

use std::path::{Path, PathBuf};

use ostree_tests::bins::{Ostree, ours, path_str, real, scratch};
use ostree_tests::fixtures::make_bulk_tree;
use ostree_tests::fsutil::write_file;

use s3_common::*;

const KEY1: &str = "7FCA23D8472CDAFA";
/// FORMATS.md §5.4 example key (seed bytes 00..1f).
const ED_SECRET: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA==";
const ED_PUBLIC: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

/// A private copy of ostree's test GnuPG home.
fn gpghome(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../signers/gpg/tests/data/gpghome");
    let h = dir.join("gpghome");
    std::fs::create_dir_all(&h).expect("mkdir");
    for f in ["pubring.gpg", "secring.gpg", "key1.asc", "key2.asc"] {
        std::fs::copy(src.join(f), h.join(f)).expect("copy key");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    h
}

/// GET requests of the moto log so far whose path starts with `/BUCKET/PATH` and contains
/// `needle`.
fn gets(moto: &Moto, path: &str, needle: &str) -> usize {
    let start = format!("\"GET /{BUCKET}/{path}");
    moto.log()
        .lines()
        .filter(|l| l.contains(&start) && l.contains(needle))
        .count()
}

fn signed_commit(o: &Ostree, repo: &Path, tree: &Path, subject: &str, home: &Path) -> String {
    o.ok(
        repo,
        &[
            "commit",
            "-b",
            "main",
            "-s",
            subject,
            &format!("--tree=dir={}", path_str(tree)),
            &format!("--gpg-sign={KEY1}"),
            &format!("--gpg-homedir={}", path_str(home)),
            &format!("--sign={ED_SECRET}"),
            "--sign-type=ed25519",
        ],
    )
}

#[test]
fn real_ostree_pulls_a_pushed_delta_with_verified_summary_and_commits() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-delta-");
    let home = gpghome(dir.path());
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 200, 4, 71);
    o.init(&local, "archive");
    let v1 = signed_commit(&o, &local, &tree, "v1", &home);
    let dest = moto.url("delta");
    let signing = [
        format!("--gpg-sign={KEY1}"),
        format!("--gpg-homedir={}", path_str(&home)),
        format!("--sign={ED_SECRET}"),
        "--sign-type=ed25519".to_string(),
    ];
    let signing: Vec<&str> = signing.iter().map(String::as_str).collect();
    let r = push(&o, &local, &dest, &["main"], &signing);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("Summary signed (2 keys)"), "{}", r.out());

    // The real ostree, verifying the summary and the commits with key1, into a bare-user
    // repository (ostree uses static deltas only when the destination is not archive).
    let judge = dir.path().join("judge");
    real.init(&judge, "bare-user");
    real.ok(
        &judge,
        &[
            "remote",
            "add",
            "--set=gpg-verify=true",
            "--set=gpg-verify-summary=true",
            &format!("--gpg-import={}", path_str(&home.join("key1.asc"))),
            "bucket",
            &moto.http("delta"),
        ],
    );
    real.ok(&judge, &["pull", "bucket", "main"]);
    assert_eq!(
        real.rev_parse(&judge, "bucket:main").as_deref(),
        Some(v1.as_str())
    );

    // v2 with a static delta from v1, generated locally and pushed with the commit.
    for i in 0..20u64 {
        write_file(
            &tree.join(format!("d{:02}/f{i:05}", i % 32)),
            format!("changed {i}\n").as_bytes(),
            0o644,
        );
    }
    make_bulk_tree(&tree.join("added"), 30, 4, 72);
    let v2 = signed_commit(&o, &local, &tree, "v2", &home);
    o.ok(&local, &["static-delta", "generate", "main"]);
    let r = push(&o, &local, &dest, &["main"], &signing);
    assert!(r.success(), "{}", r.describe());
    assert!(r.out().contains("1 static deltas uploaded"), "{}", r.out());
    let listed = on_bucket(&o, &dest, &["static-delta", "list"]);
    assert!(
        listed.out().contains(&format!("{v1}-{v2}")),
        "{}",
        listed.describe()
    );

    let (superblocks, parts) = (
        gets(&moto, "delta/deltas/", "/superblock "),
        gets(&moto, "delta/deltas/", "/0 "),
    );
    // The real ostree revalidates its cached summary with `If-Modified-Since: … UTC`, which
    // moto 5 fails to parse (HTTP 500; S3 accepts it): start without the cache.
    std::fs::remove_dir_all(judge.join("tmp/cache/summaries")).expect("drop summary cache");
    let out = real.ok(&judge, &["pull", "bucket", "main"]);
    assert_eq!(
        real.rev_parse(&judge, "bucket:main").as_deref(),
        Some(v2.as_str())
    );
    // It used the delta: its summary of the pull, and the superblock and part it fetched.
    // (ostree 2022.7 may also fetch some of the delta's objects loose while the part is
    // applied, with deltas it generates itself too.)
    assert!(
        out.contains("1 delta parts"),
        "the real pull did not use the delta: {out}"
    );
    assert_eq!(
        gets(&moto, "delta/deltas/", "/superblock ") - superblocks,
        1,
        "{out}"
    );
    assert_eq!(gets(&moto, "delta/deltas/", "/0 ") - parts, 1, "{out}");
    real.fsck_clean(&judge);
    let show = real.ok(
        &judge,
        &["show", "--gpg-verify-remote=bucket", "bucket:main"],
    );
    assert!(show.contains("Good signature"), "{show}");

    // The summary signature is enforced: a client trusting only key2 is refused.
    let other = dir.path().join("other");
    real.init(&other, "archive");
    real.ok(
        &other,
        &[
            "remote",
            "add",
            "--set=gpg-verify-summary=true",
            "--set=gpg-verify=false",
            &format!("--gpg-import={}", path_str(&home.join("key2.asc"))),
            "bucket",
            &moto.http("delta"),
        ],
    );
    let r = real.run_repo(&other, &["pull", "bucket", "main"]);
    assert!(!r.success(), "{}", r.describe());

    // The ed25519 signatures of the same summary and commits (detached metadata the push
    // sent), checked by our pull.
    let ed = dir.path().join("ed");
    o.init(&ed, "archive");
    o.ok(
        &ed,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            &format!("--sign-verify=ed25519=inline:{ED_PUBLIC}"),
            "--set=sign-verify-summary=true",
            "bucket",
            &moto.http("delta"),
        ],
    );
    o.ok(&ed, &["pull", "bucket", "main"]);
    let wrong = "Lp8fjUCtXBm63x/xIqSlFAz3PjxkVIXpKDhKUYdR/OY=";
    let ed2 = dir.path().join("ed2");
    o.init(&ed2, "archive");
    o.ok(
        &ed2,
        &[
            "remote",
            "add",
            "--no-gpg-verify",
            &format!("--sign-verify=ed25519=inline:{wrong}"),
            "--set=sign-verify-summary=true",
            "bucket",
            &moto.http("delta"),
        ],
    );
    let r = o.run_repo(&ed2, &["pull", "bucket", "main"]);
    assert!(!r.success(), "{}", r.describe());
}

#[test]
fn push_refuses_signing_without_a_summary_and_an_unknown_signature_type() {
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-delta-bad-");
    let (tree, local) = (dir.path().join("tree"), dir.path().join("local"));
    make_bulk_tree(&tree, 5, 1, 73);
    commit(&o, &local, &tree, "v1");
    let dest = moto.url("bad");
    let r = push(
        &o,
        &local,
        &dest,
        &["main"],
        &["--no-update-summary", &format!("--sign={ED_SECRET}")],
    );
    assert!(!r.success());
    assert!(r.err().contains("--no-update-summary"), "{}", r.describe());
    let r = push(
        &o,
        &local,
        &dest,
        &["main"],
        &["--sign=x", "--sign-type=nosuch"],
    );
    assert!(!r.success());
    assert!(r.err().contains("not implemented"), "{}", r.describe());
    // Nothing was written by either.
    assert_eq!(moto.count("PUT", "bad/"), 0);
}
