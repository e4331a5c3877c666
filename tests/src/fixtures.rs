//! The trees under test.
//!
//! * the spec vectors v1/v2/v3 (from `shared/spec/vectors/make-vectors.sh`) and the commit
//!   checksums the real ostree 2022.7 gives them;
//! * a "rich" tree exercising every file type ostree stores, odd permission bits, owners,
//!   xattrs, odd and non-ASCII names, deep nesting, hardlinks, empty and large files;
//! * a "bulk" tree of many distinct files, big enough for a commit to take about a second.

use std::fs;
use std::path::Path;

use crate::bins::{Ostree, path_str};
use crate::fsutil::{
    det_bytes, lchown, mkdir, set_mode, set_xattr, symlink, write_file, write_sparse,
};

/// Commit timestamp of the spec vectors.
pub const VECTOR_TIMESTAMP: &str = "2021-01-01T00:00:00Z";
/// Expected v1 commit (every mode).
pub const V1: &str = "dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f";
/// Expected v2 commit (every mode).
pub const V2: &str = "b03701c9a56afea1f3ea8d38d2b041e8dd19859a691e471e747e0717b8907376";
/// Expected v3 commit (archive, bare, bare-user).
pub const V3: &str = "748d8d15a88624beb167b5f3aa5caa317914b3a4d096380aaa4705011c05444c";
/// Expected v3 commit in bare-user-only (xattrs dropped).
pub const V3_BARE_USER_ONLY: &str =
    "7531d04bcffede9595c0e0dab1bb5121de6863fabf7f3d5ac34a60ca64210a2b";

/// Expected `(v1, v2, v3)` commit checksums for a repo mode.
pub fn expected_vectors(mode: &str) -> (&'static str, &'static str, &'static str) {
    let v3 = if mode == "bare-user-only" {
        V3_BARE_USER_ONLY
    } else {
        V3
    };
    (V1, V2, v3)
}

/// Build the three vector trees under `dir` (`dir/v1`, `dir/v2`, `dir/v3`).
pub fn make_vector_trees(dir: &Path) {
    let t = dir.join("v1");
    mkdir(&t.join("emptydir"), 0o755);
    write_file(&t.join("hello.txt"), b"hello world\n", 0o644);
    write_file(&t.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    symlink("hello.txt", &t.join("link"));
    set_mode(&t, 0o755);

    mkdir(&dir.join("v2"), 0o755);

    let t = dir.join("v3");
    mkdir(&t.join("a/b"), 0o755);
    mkdir(&t.join("z"), 0o755);
    write_file(&t.join("a/empty"), b"", 0o600);
    write_file(&t.join("a/b/data"), &[b'x'; 100], 0o640);
    symlink("/usr/bin/env", &t.join("z/abs-link"));
    set_mode(&t.join("a"), 0o700);
    set_mode(&t, 0o755);
    set_xattr(&t.join("a/b/data"), "user.test", b"hello");
}

/// Commit the vector trees (built by [`make_vector_trees`]) exactly as make-vectors.sh does;
/// returns the printed `(v1, v2, v3)` checksums.
pub fn commit_vectors(o: &Ostree, repo: &Path, trees: &Path) -> (String, String, String) {
    let ts = format!("--timestamp={VECTOR_TIMESTAMP}");
    let v1 = o.ok(
        repo,
        &[
            "commit",
            "--no-xattrs",
            "--owner-uid=0",
            "--owner-gid=0",
            &ts,
            "--no-bindings",
            "-b",
            "v1",
            "-s",
            "v1 subject",
            "-m",
            "v1 body",
            path_str(&trees.join("v1")),
        ],
    );
    let v2 = o.ok(
        repo,
        &[
            "commit",
            "--no-xattrs",
            "--owner-uid=0",
            "--owner-gid=0",
            &ts,
            "--no-bindings",
            "--parent=none",
            "-b",
            "v2",
            "-s",
            "",
            path_str(&trees.join("v2")),
        ],
    );
    let v3 = o.ok(
        repo,
        &[
            "commit",
            "--owner-uid=0",
            "--owner-gid=0",
            &ts,
            &format!("--parent={v1}"),
            "--add-metadata-string=version=3.0",
            "-b",
            "v3",
            "-s",
            "v3",
            path_str(&trees.join("v3")),
        ],
    );
    (v1, v2, v3)
}

/// Size of the large file in the rich tree: `$OSTREE_TEST_LARGE_MB` MiB (default 4).
pub fn large_file_mb() -> u64 {
    std::env::var("OSTREE_TEST_LARGE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// Names that ostree accepts (valid UTF-8, no `/`, not `.`/`..`, non-empty) but that break
/// naive path handling, quoting or sorting.
pub const ODD_NAMES: &[&str] = &[
    "with space",
    " leading-space",
    "trailing-space ",
    "new\nline",
    "tab\there",
    "cr\rreturn",
    "héllo wörld ☃",
    "emoji 🦀",
    "日本語",
    ".hidden",
    "..double-dot-prefix",
    "...",
    "-dash",
    "--double-dash",
    "~tilde",
    "#hash",
    "back\\slash",
    "quote\"'",
    "colon:name",
    "star*?[glob]",
    "$dollar",
    "\u{1}ctrl",
    "\u{7f}del",
    "UPPER",
    "lower",
    "Z",
    "_",
    "0",
    "é",
    "e\u{301}", // decomposed é: a different name
];

/// Build the rich tree at `root`. `large_mb` sizes the large file; owners other than root are
/// set only when `owners` (needs root).
pub fn make_rich_tree(root: &Path, large_mb: u64, owners: bool) {
    mkdir(root, 0o755);
    // regular files with every interesting permission combination
    write_file(&root.join("plain.txt"), b"hello\n", 0o644);
    write_file(&root.join("exec.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write_file(&root.join("readonly"), b"ro\n", 0o444);
    write_file(&root.join("noperm"), b"none\n", 0o000);
    write_file(&root.join("suid"), b"suid\n", 0o4755);
    write_file(&root.join("sgid"), b"sgid\n", 0o2755);
    write_file(&root.join("sticky-file"), b"sticky\n", 0o1644);
    write_file(&root.join("allbits"), b"all\n", 0o7777);
    write_file(&root.join("empty"), b"", 0o644);
    write_file(&root.join("empty-exec"), b"", 0o755);
    write_file(
        &root.join("large.bin"),
        &det_bytes(1, (large_mb as usize) << 20),
        0o644,
    );
    write_file(&root.join("exactly-64k"), &det_bytes(2, 65536), 0o644);
    write_file(&root.join("zeros-1m"), &vec![0u8; 1 << 20], 0o644);

    // directories with odd bits (contents first: some are read-only)
    write_file(&root.join("d-private/secret"), b"s\n", 0o600);
    set_mode(&root.join("d-private"), 0o700);
    write_file(&root.join("d-readonly/inside"), b"i\n", 0o644);
    set_mode(&root.join("d-readonly"), 0o555);
    mkdir(&root.join("d-sgid"), 0o2775);
    mkdir(&root.join("d-sticky"), 0o1777);
    mkdir(&root.join("d-empty"), 0o755);
    mkdir(&root.join("d-0311"), 0o311);
    mkdir(&root.join("d-nested-empty/a/b/c"), 0o755);

    // symlinks of every flavour
    symlink("plain.txt", &root.join("link-rel"));
    symlink("/etc/passwd", &root.join("link-abs"));
    symlink("does/not/exist", &root.join("link-dangling"));
    symlink("d-private", &root.join("link-dir"));
    symlink(".", &root.join("link-dot"));
    symlink("..", &root.join("link-dotdot"));
    symlink("sp ace\nnewline é☃", &root.join("link-weird"));
    symlink("x/".repeat(500), &root.join("link-long"));
    symlink("link-rel", &root.join("link-chain"));

    // odd names (the content is the name, so every file is distinct)
    mkdir(&root.join("names"), 0o755);
    for n in ODD_NAMES {
        write_file(&root.join("names").join(n), n.as_bytes(), 0o644);
    }
    write_file(
        &root.join("names").join("n".repeat(255)),
        b"longest name\n",
        0o644,
    );
    mkdir(&root.join("names/dir with space/sous-répertoire ☃"), 0o755);
    write_file(
        &root.join("names/dir with space/sous-répertoire ☃/f"),
        b"f\n",
        0o644,
    );

    // deep nesting
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep.push(format!("l{i:02}"));
    }
    write_file(&deep.join("bottom.txt"), b"bottom\n", 0o644);

    // hardlinks (same inode under several names, in several directories)
    write_file(&root.join("hl/a"), b"hardlinked\n", 0o644);
    mkdir(&root.join("hl/sub"), 0o755);
    fs::hard_link(root.join("hl/a"), root.join("hl/b")).expect("hardlink");
    fs::hard_link(root.join("hl/a"), root.join("hl/sub/c")).expect("hardlink");
    fs::hard_link(root.join("suid"), root.join("hl/suid-link")).expect("hardlink");

    // many files in one directory; content repeats every 50 (shared objects)
    for i in 0..300u64 {
        write_file(
            &root.join("many").join(format!("f{i:03}")),
            &det_bytes(1000 + i % 50, (i % 7) as usize * 300),
            if i % 3 == 0 { 0o755 } else { 0o644 },
        );
    }

    // extended attributes
    set_xattr(root, "user.rootattr", b"top");
    write_file(&root.join("x/one"), b"one\n", 0o644);
    set_xattr(&root.join("x/one"), "user.a", b"1");
    write_file(&root.join("x/multi"), b"multi\n", 0o644);
    set_xattr(&root.join("x/multi"), "user.a", b"1");
    set_xattr(&root.join("x/multi"), "user.b", b"\0\x01\xff binary \xfe");
    set_xattr(&root.join("x/multi"), "user.empty", b"");
    set_xattr(&root.join("x/multi"), "user.z-last", b"z");
    write_file(&root.join("x/big-value"), b"big\n", 0o644);
    set_xattr(&root.join("x/big-value"), "user.big", &det_bytes(3, 2000));
    write_file(&root.join("x/same-content-as-one"), b"one\n", 0o644);
    mkdir(&root.join("x/dir"), 0o750);
    set_xattr(&root.join("x/dir"), "user.dirattr", b"d");
    write_file(&root.join("x/suid-with-xattr"), b"sx\n", 0o4750);
    set_xattr(&root.join("x/suid-with-xattr"), "user.s", b"s");

    if owners {
        write_file(&root.join("owned/file"), b"owned\n", 0o644);
        lchown(&root.join("owned/file"), 1234, 5678);
        mkdir(&root.join("owned/dir"), 0o755);
        lchown(&root.join("owned/dir"), 4321, 8765);
        symlink("file", &root.join("owned/link"));
        lchown(&root.join("owned/link"), 99, 98);
        write_file(&root.join("owned/suid-owned"), b"so\n", 0o644);
        lchown(&root.join("owned/suid-owned"), 1000, 1000);
        set_mode(&root.join("owned/suid-owned"), 0o4755); // chown clears setuid: chmod after
        write_file(&root.join("owned/nobody"), b"nobody\n", 0o640);
        lchown(&root.join("owned/nobody"), 65534, 65534);
    }
    set_mode(root, 0o755);
}

/// Add one huge sparse-ish file (`mb` MiB) to a tree.
pub fn add_huge_file(root: &Path, mb: u64) {
    write_sparse(&root.join("huge.sparse"), mb << 20, 7, 0o644);
}

/// Build a tree of `nfiles` distinct files (about `avg_kib` KiB each) in 32 directories.
pub fn make_bulk_tree(root: &Path, nfiles: u64, avg_kib: u64, seed: u64) {
    for i in 0..nfiles {
        let size = (seed.wrapping_add(i).wrapping_mul(7919) % (2 * avg_kib + 1)) as usize * 1024
            + (i % 97) as usize;
        write_file(
            &root
                .join(format!("d{:02}", i % 32))
                .join(format!("f{i:05}")),
            &det_bytes(seed.wrapping_mul(1_000_003).wrapping_add(i), size),
            0o644,
        );
    }
    set_mode(root, 0o755);
}

/// A tiny legitimate tree (used as a repo's previous state in bad-input tests).
pub fn make_small_tree(root: &Path) {
    write_file(&root.join("a"), b"a\n", 0o644);
    write_file(&root.join("sub/b"), b"b\n", 0o644);
    symlink("a", &root.join("ln"));
    set_mode(root, 0o755);
}

/// Sorted list of the object files (`objects/xx/yyyy.type`) of a repo, as `xxyyyy.type`.
pub fn object_names(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(repo.join("objects")) else {
        return out;
    };
    for d in rd.flatten() {
        let prefix = d.file_name().to_string_lossy().into_owned();
        if let Ok(files) = fs::read_dir(d.path()) {
            for f in files.flatten() {
                out.push(format!("{prefix}{}", f.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// Sorted `(ref path, content)` of every file under `refs/` of a repo.
pub fn ref_files(repo: &Path) -> Vec<(String, String)> {
    crate::fsutil::list_paths(&repo.join("refs"))
        .into_iter()
        .filter_map(|p| {
            let full = repo.join("refs").join(&p);
            fs::read_to_string(&full)
                .ok()
                .map(|c| (p.display().to_string(), c))
        })
        .collect()
}
