//! Repository commands run directly on a bucket (`--repo=s3://…`): init, commit, refs
//! (create, list, delete), static-delta generate/list, summary -u/--view, fsck, and
//! `pull --mirror` from an HTTP remote into the bucket. The real ostree judges each result by
//! pulling from the bucket's plain-HTTP URL. Each test starts its own moto (`s3_common`).

mod s3_common;

use std::path::Path;

use ostree_tests::bins::{Ostree, ours, path_str, real, scratch};
use ostree_tests::fixtures::make_bulk_tree;
use ostree_tests::fsutil::write_file;
use ostree_tests::httpd::TestServer;
use ostree_tests::tree::{Compare, assert_same_tree};

use s3_common::*;

fn ok_on(o: &Ostree, url: &str, args: &[&str]) -> String {
    let r = on_bucket(o, url, args);
    assert!(r.success(), "{}", r.describe());
    r.out()
}

/// A fresh judge repository of `mode` with the bucket prefix as remote `bucket`.
fn judge(real: &Ostree, dir: &Path, name: &str, mode: &str, http: &str) -> std::path::PathBuf {
    let j = dir.join(name);
    real.init(&j, mode);
    real.ok(&j, &["remote", "add", "--no-gpg-verify", "bucket", http]);
    j
}

#[test]
fn commit_refs_deltas_and_summary_directly_on_a_bucket() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-direct-");
    let url = moto.url("direct");
    ok_on(&o, &url, &["init", "--mode=archive"]);
    let tree = dir.path().join("tree");
    make_bulk_tree(&tree, 120, 4, 81);
    let commit_args = |subject: &'static str| -> Vec<String> {
        vec![
            "commit".into(),
            "-b".into(),
            "main".into(),
            "-s".into(),
            subject.into(),
            format!("--tree=dir={}", path_str(&tree)),
        ]
    };
    let args: Vec<String> = commit_args("v1");
    let v1 = ok_on(
        &o,
        &url,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let v1 = v1.trim().to_string();
    for i in 0..10u64 {
        write_file(
            &tree.join(format!("d{:02}/f{i:05}", i % 32)),
            format!("v2 {i}\n").as_bytes(),
            0o644,
        );
    }
    let args: Vec<String> = commit_args("v2");
    let v2 = ok_on(
        &o,
        &url,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let v2 = v2.trim().to_string();
    assert_eq!(ok_on(&o, &url, &["rev-parse", "main^"]).trim(), v1);

    // refs: create, list, delete.
    ok_on(&o, &url, &["refs", "main", "--create=stable"]);
    ok_on(&o, &url, &["refs", "main^", "--create=old"]);
    assert_eq!(ok_on(&o, &url, &["refs"]), "main\nold\nstable\n");
    ok_on(&o, &url, &["refs", "--delete", "old"]);
    assert_eq!(ok_on(&o, &url, &["refs"]), "main\nstable\n");
    assert!(!on_bucket(&o, &url, &["rev-parse", "old"]).success());

    // A static delta v1 -> v2, generated in the bucket from the bucket's objects.
    let r = on_bucket(&o, &url, &["static-delta", "generate", "main"]);
    assert!(r.success(), "{}", r.describe());
    assert_eq!(
        ok_on(&o, &url, &["static-delta", "list"]).trim(),
        format!("{v1}-{v2}")
    );

    // summary -u lists both refs and the delta.
    ok_on(&o, &url, &["summary", "-u"]);
    let view = ok_on(&o, &url, &["summary", "--view"]);
    assert!(
        view.contains("* main") && view.contains("* stable"),
        "{view}"
    );
    assert!(view.contains(&format!("{v1}-{v2}")), "{view}");
    let r = on_bucket(&o, &url, &["fsck"]);
    assert!(r.success(), "{}", r.describe());

    // The real ostree reads the summary, pulls v1, then updates to v2 through the delta
    // (into bare-user: ostree does not use deltas into archive repositories).
    let j = judge(
        &real,
        dir.path(),
        "judge",
        "bare-user",
        &moto.http("direct"),
    );
    let refs = real.ok(&j, &["remote", "refs", "bucket"]);
    assert_eq!(refs, "bucket:main\nbucket:stable");
    real.ok(&j, &["pull", "bucket", &v1]);
    real.ok(&j, &["refs", "--create=bucket:main", &v1]);
    // (moto cannot parse the `If-Modified-Since` ostree sends for a cached summary.)
    let _ = std::fs::remove_dir_all(j.join("tmp/cache/summaries"));
    let out = real.ok(&j, &["pull", "bucket", "main"]);
    assert!(out.contains("1 delta parts"), "{out}");
    assert_eq!(
        real.rev_parse(&j, "bucket:main").as_deref(),
        Some(v2.as_str())
    );
    real.fsck_clean(&j);
    let co = dir.path().join("co");
    real.ok(&j, &["checkout", "-U", "--force-copy", &v2, path_str(&co)]);
    assert_same_tree("source", &tree, "real from bucket", &co, Compare::NO_MTIME);
}

#[test]
fn pull_mirror_into_a_bucket() {
    let Some(real) = real() else { return };
    let Some(moto) = Moto::start() else { return };
    let o = ours();
    let dir = scratch("s3-mirror-");
    // The source: an archive repository with two branches, served over HTTP.
    let src = dir.path().join("src");
    real.init(&src, "archive");
    let (ta, tb) = (dir.path().join("ta"), dir.path().join("tb"));
    make_bulk_tree(&ta, 80, 3, 91);
    make_bulk_tree(&tb, 30, 2, 92);
    let mut heads = Vec::new();
    for (branch, t) in [("main", &ta), ("extra", &tb)] {
        heads.push(real.ok(
            &src,
            &[
                "commit",
                "-b",
                branch,
                "-s",
                branch,
                &format!("--tree=dir={}", path_str(t)),
            ],
        ));
    }
    real.ok(&src, &["summary", "-u"]);
    let server = TestServer::start(&src);

    let url = moto.url("mirror");
    ok_on(&o, &url, &["init", "--mode=archive"]);
    ok_on(
        &o,
        &url,
        &["remote", "add", "--no-gpg-verify", "origin", &server.url],
    );
    // Every branch of the remote, as local refs of the bucket.
    ok_on(&o, &url, &["pull", "--mirror", "origin"]);
    assert_eq!(ok_on(&o, &url, &["refs"]), "extra\nmain\n");
    assert_eq!(ok_on(&o, &url, &["rev-parse", "main"]).trim(), heads[0]);
    let r = on_bucket(&o, &url, &["fsck"]);
    assert!(r.success(), "{}", r.describe());
    ok_on(&o, &url, &["summary", "-u"]);

    // An update of one branch mirrors only what is new.
    write_file(&ta.join("new-file"), b"new\n", 0o644);
    let v2 = real.ok(
        &src,
        &[
            "commit",
            "-b",
            "main",
            "-s",
            "v2",
            &format!("--tree=dir={}", path_str(&ta)),
        ],
    );
    real.ok(&src, &["summary", "-u"]);
    let puts = moto.count("PUT", "mirror/objects/");
    ok_on(&o, &url, &["pull", "--mirror", "origin", "main"]);
    // The new commit, its root dirtree and the new file's object (the directory metadata
    // is unchanged).
    assert_eq!(moto.count("PUT", "mirror/objects/") - puts, 3);
    ok_on(&o, &url, &["summary", "-u"]);

    // The real ostree pulls both branches from the bucket.
    let j = judge(&real, dir.path(), "judge", "archive", &moto.http("mirror"));
    real.ok(&j, &["pull", "bucket", "main", "extra"]);
    assert_eq!(
        real.rev_parse(&j, "bucket:main").as_deref(),
        Some(v2.as_str())
    );
    assert_eq!(
        real.rev_parse(&j, "bucket:extra").as_deref(),
        Some(heads[1].as_str())
    );
    real.fsck_clean(&j);
}
