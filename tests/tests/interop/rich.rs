//! The rich tree (every file type, odd modes, owners, xattrs, odd names, deep nesting,
//! hardlinks, empty and large files): both binaries commit it to the same checksums, each
//! fscks the other's repo, and every checkout combination gives the same tree.

use std::path::Path;

use ostree_tests::bins::{Ostree, both, explain_mismatch, is_root, path_str, scratch};
use ostree_tests::fixtures::{add_huge_file, large_file_mb, make_rich_tree, object_names};
use ostree_tests::tree::{
    Compare, assert_same_snapshots, assert_same_tree, drop_empty_xattrs, snapshot,
};

/// Commits made on both sides: (branch, extra flags). All fix timestamp, subject and body.
const COMMITS: &[(&str, &[&str])] = &[
    ("rich", &[]),
    ("rich-owned", &["--owner-uid=42", "--owner-gid=43"]),
    // second commit on an existing branch: the parent is the branch head
    (
        "rich",
        &["--timestamp=2022-03-03T00:00:00Z", "-s", "second", "-m", ""],
    ),
];

fn commit_args<'a>(branch: &'a str, extra: &'a [&'a str], src: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "commit",
        "-b",
        branch,
        "--timestamp=2022-02-02T12:34:56Z",
        "-s",
        "Rich subject ☃",
        "-m",
        "Body line 1\n\nBody line 3 é",
        "--add-metadata-string=version=1.2.3",
    ];
    // later flags override earlier ones, as with the real ostree's option parser
    v.extend_from_slice(extra);
    v.push(src);
    v
}

fn symmetric_difference(a: &[String], b: &[String]) -> Vec<String> {
    let only_a = a
        .iter()
        .filter(|x| b.binary_search(x).is_err())
        .map(|x| format!("only ours: {x}"));
    let only_b = b
        .iter()
        .filter(|x| a.binary_search(x).is_err())
        .map(|x| format!("only real: {x}"));
    only_a.chain(only_b).take(30).collect()
}

fn checkout(o: &Ostree, repo: &Path, branch: &str, user: bool, dest: &Path) {
    let d = path_str(dest);
    if user {
        o.ok(repo, &["checkout", "-U", branch, d]);
    } else {
        o.ok(repo, &["checkout", branch, d]);
    }
}

fn rich(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("rich-");
    let src = tmp.path().join("src");
    make_rich_tree(&src, large_file_mb(), is_root());
    let (repo_o, repo_r) = (tmp.path().join("repo-ours"), tmp.path().join("repo-real"));
    ours.init(&repo_o, mode);
    real.init(&repo_r, mode);

    for (branch, extra) in COMMITS {
        let args = commit_args(branch, extra, path_str(&src));
        let co = ours.ok(&repo_o, &args);
        let cr = real.ok(&repo_r, &args);
        assert!(
            co == cr,
            "commit checksum of the rich tree in {mode}, branch {branch} {extra:?}: ours {co}, real {cr}\n{}",
            explain_mismatch(&real, &repo_o, &repo_r, branch)
        );
        assert_eq!(
            ours.rev_parse(&repo_o, branch),
            Some(cr.clone()),
            "ours rev-parse {branch}"
        );
        assert_eq!(
            real.rev_parse(&repo_o, branch),
            Some(cr),
            "real rev-parse {branch} on our repo"
        );
    }
    let (oo, or) = (object_names(&repo_o), object_names(&repo_r));
    assert!(
        oo == or,
        "object sets differ in {mode}:\n  {}",
        symmetric_difference(&oo, &or).join("\n  ")
    );

    // each accepts the other's repo
    real.fsck_clean(&repo_o);
    ours.fsck_clean(&repo_r);
    ours.fsck_clean(&repo_o);

    // checkouts: the reference is the real checkout of the real repo
    for branch in ["rich", "rich-owned"] {
        for user in [false, true] {
            let tag = format!("{branch}{}", if user { "-U" } else { "" });
            let reference = tmp.path().join(format!("co-real-real-{tag}"));
            checkout(&real, &repo_r, branch, user, &reference);
            for (o, repo, who) in [
                (&ours, &repo_r, "ours-of-real"),
                (&ours, &repo_o, "ours-of-ours"),
                (&real, &repo_o, "real-of-ours"),
            ] {
                let dest = tmp.path().join(format!("co-{who}-{tag}"));
                checkout(o, repo, branch, user, &dest);
                assert_same_tree(
                    &format!("real checkout of real {mode} repo ({tag})"),
                    &reference,
                    &format!("{who} checkout ({tag})"),
                    &dest,
                    Compare::ALL,
                );
                std::fs::remove_dir_all(&dest).expect("cleanup");
            }
            // content and symlinks always round-trip
            let content_only = Compare {
                perms: false,
                owners: false,
                xattrs: false,
                mtime_zero: false,
            };
            assert_same_tree(
                "source tree",
                &src,
                &format!("checkout ({tag})"),
                &reference,
                content_only,
            );
            if mode == "bare" && branch == "rich" && !user {
                // bare keeps everything: the checkout is the source (but mtimes, and ostree
                // does not record empty-valued xattrs)
                let mut s = snapshot(&src);
                drop_empty_xattrs(&mut s);
                assert_same_snapshots(
                    "source tree",
                    &s,
                    "bare checkout",
                    &snapshot(&reference),
                    Compare::NO_MTIME,
                );
            }
            std::fs::remove_dir_all(&reference).expect("cleanup");
        }
    }
}
crate::per_mode!(rich);

/// `$OSTREE_TEST_HUGE_MB` (unset: skipped) MiB sparse-ish file: same checksum, and our
/// checkout of the real repo has the right content. Archive (compression) and bare-user.
#[test]
fn huge_file() {
    let Some(mb) = std::env::var("OSTREE_TEST_HUGE_MB")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        eprintln!("SKIP: set OSTREE_TEST_HUGE_MB=N to commit an N MiB file");
        return;
    };
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("huge-");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    add_huge_file(&src, mb);
    for mode in ["archive", "bare-user"] {
        let (ro, rr) = (
            tmp.path().join(format!("o-{mode}")),
            tmp.path().join(format!("r-{mode}")),
        );
        ours.init(&ro, mode);
        real.init(&rr, mode);
        let args = [
            "commit",
            "-b",
            "huge",
            "--timestamp=2022-02-02T00:00:00Z",
            "-s",
            "huge",
            path_str(&src),
        ];
        let co = ours.ok(&ro, &args);
        let cr = real.ok(&rr, &args);
        assert!(
            co == cr,
            "huge file commit checksum in {mode}: ours {co}, real {cr}\n{}",
            explain_mismatch(&real, &ro, &rr, "huge")
        );
        let dest = tmp.path().join(format!("co-{mode}"));
        ours.ok(&rr, &["checkout", "huge", path_str(&dest)]);
        let cmp = Compare {
            perms: true,
            owners: false,
            xattrs: false,
            mtime_zero: false,
        };
        assert_same_tree("source", &src, "ours checkout of real repo", &dest, cmp);
        real.fsck_clean(&ro);
        std::fs::remove_dir_all(&ro).expect("cleanup");
        std::fs::remove_dir_all(&rr).expect("cleanup");
        std::fs::remove_dir_all(&dest).expect("cleanup");
    }
}
