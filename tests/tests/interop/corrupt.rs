//! Corrupted, truncated and missing objects: our fsck fails and names the bad object.
//! The repos are written by the real ostree; each case gets a fresh repo with one fault.

use std::fs;
use std::path::{Path, PathBuf};

use ostree_core::Checksum;
use ostree_core::objects::{DirTree, FileMeta, S_IFREG, content_checksum};
use ostree_tests::bins::{Ostree, Run, both, path_str, scratch};
use ostree_tests::fsutil::write_file;

fn file_csum(content: &[u8]) -> Checksum {
    let meta = FileMeta {
        uid: 0,
        gid: 0,
        mode: S_IFREG | 0o644,
        symlink_target: None,
        xattrs: vec![],
    };
    content_checksum(&meta, content).expect("checksum")
}

fn object_path(repo: &Path, c: &Checksum, ext: &str) -> PathBuf {
    let h = c.to_hex();
    repo.join("objects")
        .join(&h[..2])
        .join(format!("{}.{ext}", &h[2..]))
}

const A: &[u8] = b"a-content\n";
const C: &[u8] = b"c-content\n";

fn b_content() -> Vec<u8> {
    (0..4000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Build the tree once, commit it with the real ostree into a fresh repo; returns the commit.
fn fresh_repo(real: &Ostree, mode: &str, tree: &Path, repo: &Path) -> String {
    real.init(repo, mode);
    real.ok(
        repo,
        &[
            "commit",
            "--no-xattrs",
            "--owner-uid=0",
            "--owner-gid=0",
            "-b",
            "main",
            "-s",
            "c",
            path_str(tree),
        ],
    )
}

fn fsck_must_fail(ours: &Ostree, repo: &Path, what: &str, names: Option<&str>) -> Run {
    let r = ours.fails(repo, &["fsck"]);
    if let Some(n) = names {
        assert!(
            r.all_output().contains(n),
            "fsck after {what} fails but does not name the object {n}\n{}",
            r.describe()
        );
    }
    r
}

fn corrupt(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("corrupt-");
    let tree = tmp.path().join("tree");
    write_file(&tree.join("a"), A, 0o644);
    write_file(&tree.join("c"), C, 0o644);
    write_file(&tree.join("sub/b"), &b_content(), 0o644);
    let ext = if mode == "archive" { "filez" } else { "file" };
    let (ca, cb, cc) = (file_csum(A), file_csum(&b_content()), file_csum(C));
    let sub_tree = DirTree {
        files: vec![("b".into(), cb)],
        dirs: vec![],
    }
    .checksum();

    let mut n = 0;
    let mut next = |label: &str| {
        n += 1;
        let repo = tmp.path().join(format!("repo{n}-{label}"));
        let commit = fresh_repo(&real, mode, &tree, &repo);
        (repo, commit)
    };

    // sanity: pristine repo is clean for ours
    let (repo, _) = next("pristine");
    ours.fsck_clean(&repo);

    // 1. content changed in place (same length for bare modes; last byte flipped in archive)
    let (repo, _) = next("modified");
    let p = object_path(&repo, &ca, ext);
    let mut bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    if mode == "archive" {
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
    } else {
        bytes = b"A-CONTENT\n".to_vec();
    }
    fs::write(&p, &bytes).expect("write");
    fsck_must_fail(
        &ours,
        &repo,
        "modifying a content object",
        Some(&ca.to_hex()),
    );

    // 2. content truncated to half
    let (repo, _) = next("truncated");
    let p = object_path(&repo, &cb, ext);
    let len = fs::metadata(&p).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open")
        .set_len(len / 2)
        .expect("truncate");
    fsck_must_fail(
        &ours,
        &repo,
        "truncating a content object",
        Some(&cb.to_hex()),
    );

    // 3. content object missing
    let (repo, _) = next("missing");
    fs::remove_file(object_path(&repo, &cc, ext)).expect("rm");
    fsck_must_fail(
        &ours,
        &repo,
        "deleting a content object",
        Some(&cc.to_hex()),
    );

    // 4. commit object truncated
    let (repo, commit) = next("commit");
    let p = object_path(&repo, &Checksum::from_hex(&commit).expect("hex"), "commit");
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open")
        .set_len(5)
        .expect("truncate");
    fsck_must_fail(&ours, &repo, "truncating the commit object", Some(&commit));

    // 5. dirtree truncated (the real ostree fails here without naming the object)
    let (repo, _) = next("dirtree");
    let p = object_path(&repo, &sub_tree, "dirtree");
    let len = fs::metadata(&p).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .expect("open")
        .set_len(len - 3)
        .expect("truncate");
    fsck_must_fail(&ours, &repo, "truncating a dirtree", None);
}
crate::per_mode!(corrupt);
