//! `export` and `commit --tree=tar=` against the real ostree: both export a commit to the same
//! bytes, each imports the other's export to the same commit, and the commit options that
//! change metadata (`--generate-sizes`, `--bootable`, statoverride/skip-list) give the real
//! binary's checksums. Hostile archives are refused without writing outside the repository.

use std::path::Path;

use ostree_tests::bins::{Ostree, assert_no_panic, both, is_root, path_str, scratch};
use ostree_tests::fixtures::{make_rich_tree, make_small_tree, object_names, ref_files};
use ostree_tests::fsutil::{mkdir, write_file};

const TS: &str = "--timestamp=2022-02-02T12:34:56Z";

fn commit(o: &Ostree, repo: &Path, branch: &str, extra: &[&str]) -> String {
    let mut args = vec!["commit", "-b", branch, TS, "-s", "s", "-m", ""];
    args.extend_from_slice(extra);
    o.ok(repo, &args).trim().to_string()
}

/// Export options exercised: plain, subpath, prefix (with and without a slash), both.
const EXPORTS: &[&[&str]] = &[
    &[],
    &["--subpath=/d1"],
    &["--prefix=the-prefix/"],
    &["--prefix=pfx"],
    &["--subpath=d1", "--prefix=p/"],
];

#[test]
fn export_is_byte_identical() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("export-");
    let src = tmp.path().join("src");
    make_rich_tree(&src, 1, is_root());
    mkdir(&src.join("d1"), 0o755);
    write_file(&src.join("d1/f"), b"in d1\n", 0o644);
    let repo = tmp.path().join("repo");
    real.init(&repo, "archive");
    commit(&real, &repo, "main", &[path_str(&src)]);
    for opts in EXPORTS {
        let (to, tr) = (tmp.path().join("o.tar"), tmp.path().join("r.tar"));
        for (o, out) in [(&ours, &to), (&real, &tr)] {
            let mut args = vec!["export", "main", "-o", path_str(out)];
            args.extend_from_slice(opts);
            o.ok(&repo, &args);
        }
        let (a, b) = (std::fs::read(&to).unwrap(), std::fs::read(&tr).unwrap());
        assert!(
            a == b,
            "export {opts:?}: ours {} bytes, real {} bytes, first difference at {:?}",
            a.len(),
            b.len(),
            a.iter().zip(&b).position(|(x, y)| x != y)
        );
    }
    // stdout: padded to libarchive's 10240-byte blocks
    let o = ours.run_repo(&repo, &["export", "main"]);
    let r = real.run_repo(&repo, &["export", "main"]);
    assert!(o.success() && r.success(), "{}", o.describe());
    assert!(o.stdout == r.stdout, "export to stdout differs");
    assert_eq!(o.stdout.len() % 10240, 0);
}

#[test]
fn imports_of_each_others_exports_agree() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("tarimport-");
    let src = tmp.path().join("src");
    make_rich_tree(&src, 1, is_root());
    let repo = tmp.path().join("repo");
    real.init(&repo, "archive");
    commit(&real, &repo, "main", &[path_str(&src)]);
    let (to, tr) = (tmp.path().join("o.tar"), tmp.path().join("r.tar"));
    ours.ok(&repo, &["export", "main", "-o", path_str(&to)]);
    real.ok(&repo, &["export", "main", "-o", path_str(&tr)]);
    for mode in ["archive", "bare", "bare-user"] {
        let (ro, rr) = (
            tmp.path().join(format!("o-{mode}")),
            tmp.path().join(format!("r-{mode}")),
        );
        ours.init(&ro, mode);
        real.init(&rr, mode);
        for tar in [&to, &tr] {
            let arg = format!("--tree=tar={}", path_str(tar));
            let co = commit(&ours, &ro, "t", &["--orphan", &arg]);
            let cr = commit(&real, &rr, "t", &["--orphan", &arg]);
            assert_eq!(co, cr, "import of {} in {mode}", tar.display());
        }
        real.fsck_clean(&ro);
    }
}

/// A tree with hardlinks, a symlink, a setuid candidate, a file to skip and a kernel.
fn options_tree(dir: &Path) {
    mkdir(dir, 0o755);
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/modules",
        "usr/lib/modules/6.1.0-9",
    ] {
        mkdir(&dir.join(d), 0o755);
    }
    write_file(&dir.join("usr/bin/foo"), b"contents\n", 0o755);
    std::fs::hard_link(dir.join("usr/bin/foo"), dir.join("usr/bin/bar")).unwrap();
    std::os::unix::fs::symlink("foo", dir.join("usr/bin/sl")).unwrap();
    write_file(&dir.join("usr/bin/setuidme"), b"setuidme\n", 0o755);
    write_file(&dir.join("usr/bin/skipme"), b"skipme\n", 0o644);
    write_file(
        &dir.join("usr/lib/modules/6.1.0-9/vmlinuz"),
        b"kernel",
        0o644,
    );
}

#[test]
fn commit_options_match_real() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("commitopts-");
    let src = tmp.path().join("src");
    options_tree(&src);
    let so = tmp.path().join("statoverride.txt");
    std::fs::write(&so, "2048 /usr/bin/setuidme\n=420 /usr/bin/bar\n").unwrap();
    let sk = tmp.path().join("skip.txt");
    std::fs::write(&sk, "/usr/bin/skipme\n").unwrap();
    let tarf = tmp.path().join("t.tar");
    {
        // a tar of the tree made by the real export (no hardlinks) plus the original tree
        let repo = tmp.path().join("tmp-repo");
        real.init(&repo, "archive");
        commit(&real, &repo, "x", &[path_str(&src)]);
        real.ok(&repo, &["export", "x", "-o", path_str(&tarf)]);
    }
    let so_arg = format!("--statoverride={}", path_str(&so));
    let sk_arg = format!("--skip-list={}", path_str(&sk));
    let tree_dir = format!("--tree=dir={}", path_str(&src));
    let tree_tar = format!("--tree=tar={}", path_str(&tarf));
    let many: Vec<String> = (0..20)
        .map(|i| format!("--add-metadata-string=key{i}=value{i}"))
        .collect();
    let mut cases: Vec<(&str, Vec<&str>)> = vec![
        ("archive", vec!["--generate-sizes", &tree_dir]),
        ("archive", vec!["--generate-sizes", &tree_tar]),
        ("archive", vec!["--generate-sizes", &tree_dir, &tree_tar]),
        ("archive", vec!["--bootable", &tree_dir]),
        ("bare", vec!["--bootable", "--generate-sizes", &tree_tar]),
        ("archive", vec![&so_arg, &sk_arg, &tree_dir]),
        ("bare-user", vec![&so_arg, &sk_arg, &tree_tar]),
        (
            "archive",
            vec![
                "--tar-autocreate-parents",
                "--tar-pathname-filter=^,foo/",
                &tree_tar,
            ],
        ),
        (
            "archive",
            vec!["--tar-pathname-filter=/bin/,/sbin/", &tree_tar],
        ),
    ];
    let mut boot = vec!["--bootable", "--add-metadata-string=version=1"];
    boot.extend(many.iter().map(String::as_str));
    boot.push(&tree_dir);
    cases.push(("archive", boot));
    for (i, (mode, args)) in cases.iter().enumerate() {
        let (ro, rr) = (
            tmp.path().join(format!("o{i}")),
            tmp.path().join(format!("r{i}")),
        );
        ours.init(&ro, mode);
        real.init(&rr, mode);
        let co = commit(&ours, &ro, "t", args);
        let cr = commit(&real, &rr, "t", args);
        assert_eq!(co, cr, "commit {args:?} in {mode}");
        if args.contains(&"--generate-sizes") && *mode == "archive" {
            let so = ours.ok(&ro, &["show", "--print-sizes", "t"]);
            let sr = real.ok(&rr, &["show", "--print-sizes", "t"]);
            assert_eq!(so, sr, "show --print-sizes");
        }
    }
    // unmatched entries: same messages
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "/nothere\n").unwrap();
    let r0 = tmp.path().join("bad-repo");
    ours.init(&r0, "archive");
    let arg = format!("--skip-list={}", path_str(&bad));
    let o = ours.fails(&r0, &["commit", "-b", "t", &arg, path_str(&src)]);
    assert!(
        o.err().contains("Unmatched skip-list path: /nothere")
            && o.err().contains("Unmatched skip-list paths"),
        "{}",
        o.describe()
    );
}

// ------------------------------------------------------------------------- hostile tars

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{:0width$o}", v, width = n);
    field[..n].copy_from_slice(s.as_bytes());
}

/// A minimal ustar entry: name, type flag, link target, data.
fn entry(name: &str, typeflag: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(
        &mut h[100..108],
        if typeflag == b'5' { 0o755 } else { 0o644 },
    );
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 0);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if typeflag == b'3' {
        octal(&mut h[329..337], 1);
        octal(&mut h[337..345], 3);
    }
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<u8> = entries.concat();
    v.extend_from_slice(&[0u8; 1024]);
    v
}

#[test]
fn hostile_archives_are_refused() {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("tarbad-");
    let root = entry("./", b'5', "", b"");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            archive(&[root.clone(), entry("../evil", b'0', "", b"x")]),
        ),
        (
            "inner-dotdot",
            archive(&[root.clone(), entry("a/../../evil", b'0', "", b"x")]),
        ),
        (
            "absolute-no-parent",
            archive(&[root.clone(), entry("/etc/evil", b'0', "", b"x")]),
        ),
        (
            "device",
            archive(&[root.clone(), entry("null", b'3', "", b"")]),
        ),
        ("fifo", archive(&[root.clone(), entry("f", b'6', "", b"")])),
        (
            "hardlink-missing",
            archive(&[root.clone(), entry("h", b'1', "nothere", b"")]),
        ),
        (
            "hardlink-dir",
            archive(&[
                root.clone(),
                entry("d/", b'5', "", b""),
                entry("h", b'1', "d", b""),
            ]),
        ),
        ("truncated", {
            let a = archive(&[root.clone(), entry("f", b'0', "", &[7u8; 2000])]);
            a[..1200].to_vec()
        }),
        ("garbage", b"definitely not an archive".repeat(40)),
    ];
    for (what, data) in cases {
        let f = tmp.path().join(format!("{what}.tar"));
        std::fs::write(&f, &data).unwrap();
        let arg = format!("--tree=tar={}", path_str(&f));
        let (ro, rr) = (
            tmp.path().join(format!("o-{what}")),
            tmp.path().join(format!("r-{what}")),
        );
        ours.init(&ro, "archive");
        real.init(&rr, "archive");
        let small = tmp.path().join("small");
        if !small.exists() {
            make_small_tree(&small);
        }
        commit(&ours, &ro, "main", &[path_str(&small)]);
        let refs = ref_files(&ro);
        let objects = object_names(&ro);
        let o = ours.run_repo(&ro, &["commit", "-b", "main", TS, &arg]);
        assert_no_panic(&o);
        assert!(!o.success(), "{what}: ours accepted it\n{}", o.describe());
        // The real ostree loops forever on a tar truncated inside file data (its libarchive
        // input stream never reports the short read), so it is not asked about that one.
        if what != "truncated" {
            let r = real.run_repo(&rr, &["commit", "-b", "main", TS, &arg]);
            assert!(!r.success(), "{what}: the real ostree accepted it");
        }
        assert_eq!(refs, ref_files(&ro), "{what}: a ref moved");
        // only content objects of entries before the bad one may have been stored
        let after = object_names(&ro);
        assert!(
            after
                .iter()
                .all(|n| !n.ends_with(".commit") || objects.contains(n)),
            "{what}: a commit was written"
        );
        assert!(!tmp.path().join("evil").exists() && !Path::new("/etc/evil").exists());
        real.fsck_clean(&ro);
    }
}
