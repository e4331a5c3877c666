//! Bad input to `commit`: FIFOs, sockets, device nodes and non-UTF-8 names are refused, and the
//! repo is left as it was (refs and objects/ unchanged, fsck clean for both binaries).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ostree_tests::bins::{both, is_root, path_str, scratch};
use ostree_tests::fixtures::{make_small_tree, object_names, ref_files};
use ostree_tests::fsutil::{mkchardev, mkfifo, mksocket, write_file};

type Maker = fn(&Path);

fn special_files(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("badinput-");
    let repo = tmp.path().join("repo");
    ours.init(&repo, mode);
    let small = tmp.path().join("small");
    make_small_tree(&small);
    let base = ours.ok(
        &repo,
        &["commit", "-b", "main", "-s", "base", path_str(&small)],
    );

    let mut cases: Vec<(&str, Maker)> = vec![
        ("fifo", |d| mkfifo(&d.join("sub/zz-fifo"))),
        ("socket", |d| mksocket(&d.join("zz-socket"))),
        ("non-utf8-name", |d| {
            write_file(&d.join(OsStr::from_bytes(b"bad-\xff-name")), b"x", 0o644)
        }),
    ];
    if is_root() {
        cases.push(("chardev", |d| mkchardev(&d.join("zz-null"), 1, 3)));
    }
    for (i, (what, make)) in cases.into_iter().enumerate() {
        // a bigger tree than the base, so a commit that does not stop at the first bad
        // entry would have new objects to write
        let t = tmp.path().join(format!("tree-{i}"));
        make_small_tree(&t);
        for j in 0..40 {
            write_file(
                &t.join(format!("new/f{j:02}")),
                format!("new file {j} {what}\n").as_bytes(),
                0o644,
            );
        }
        make(&t);
        let objects_before = object_names(&repo);
        let refs_before = ref_files(&repo);
        let r = ours.fails(&repo, &["commit", "-b", "main", "-s", "bad", path_str(&t)]);
        assert!(
            !r.stderr.is_empty(),
            "commit of a tree with a {what} failed silently\n{}",
            r.describe()
        );
        assert_eq!(
            ours.rev_parse(&repo, "main").as_deref(),
            Some(base.as_str()),
            "{what}: ref moved"
        );
        assert_eq!(ref_files(&repo), refs_before, "{what}: refs changed");
        assert_eq!(
            object_names(&repo),
            objects_before,
            "{what}: objects/ changed"
        );
        real.fsck_clean(&repo);
        ours.fsck_clean(&repo);
    }
}
crate::per_mode!(special_files);
