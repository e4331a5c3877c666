//! Deployments, judged by the real ostree: a sysroot that ours deployed into, reordered with
//! `admin set-default` and `admin rollback` (commands newer than 2022.7), reads the same
//! with the real `admin status`. The real ostree only reads here: its writing admin commands
//! freeze the filesystem of /boot (FIFREEZE), which a test on a shared machine must not do.

use std::path::Path;

use ostree_tests::bins::{Ostree, Run, both, is_root, path_str, run_command, scratch};
use ostree_tests::fsutil::write_file;

/// Run `ostree admin ARGS... --sysroot=SYSROOT` with mutable deployments (no `chattr +i`, so
/// the scratch directory can be removed).
fn admin(o: &Ostree, sysroot: &Path, args: &[&str]) -> Run {
    let mut c = o.command();
    c.env("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
        .arg("admin")
        .args(args)
        .arg(format!("--sysroot={}", path_str(sysroot)));
    run_command(o.label, c)
}

fn admin_ok(o: &Ostree, sysroot: &Path, args: &[&str]) -> String {
    let r = admin(o, sysroot, args);
    assert!(r.success(), "admin {args:?}: {}", r.describe());
    r.out()
}

/// The status both binaries print, which must be the same.
fn status(ours: &Ostree, real: &Ostree, sysroot: &Path) -> String {
    let a = admin_ok(ours, sysroot, &["status"]);
    let b = admin_ok(real, sysroot, &["status"]);
    assert_eq!(
        a, b,
        "admin status: ours (left) and the real one (right) differ"
    );
    a
}

/// The deployment names (`CSUM.SERIAL`) of a status, in boot order.
fn order(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

#[test]
fn deploy_set_default_rollback_read_by_real() {
    let Some((ours, real)) = both() else { return };
    if std::fs::canonicalize(&ours.bin).ok() == std::fs::canonicalize(&real.bin).ok() {
        eprintln!("SKIP: `ours` is the real ostree, whose deploy would freeze the filesystem");
        return;
    }
    if !is_root() {
        eprintln!("SKIP: deployments need root (owners of the checked-out files)");
        return;
    }
    let dir = scratch("admin-");
    let sysroot = dir.path().join("sysroot");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&sysroot).expect("mkdir sysroot");
    write_file(
        &tree.join("usr/lib/modules/6.1.0/vmlinuz"),
        b"kernel",
        0o644,
    );
    write_file(
        &tree.join("usr/lib/modules/6.1.0/initramfs.img"),
        b"initramfs",
        0o644,
    );
    write_file(
        &tree.join("usr/etc/os-release"),
        b"ID=testos\nNAME=TestOS\nVERSION_ID=1\n",
        0o644,
    );
    write_file(&tree.join("usr/bin/true"), b"#!/bin/sh\n", 0o755);
    admin_ok(&ours, &sysroot, &["init-fs", path_str(&sysroot)]);
    admin_ok(&ours, &sysroot, &["os-init", "testos"]);
    let repo = sysroot.join("ostree/repo");
    ours.ok(
        &repo,
        &[
            "commit",
            "-b",
            "testos/main",
            "-s",
            "v1",
            "--tree",
            &format!("dir={}", path_str(&tree)),
        ],
    );
    admin_ok(
        &ours,
        &sysroot,
        &[
            "deploy",
            "--os=testos",
            "--karg=root=LABEL=a",
            "testos/main",
        ],
    );
    admin_ok(
        &ours,
        &sysroot,
        &[
            "deploy",
            "--os=testos",
            "--karg=root=LABEL=b",
            "testos/main",
        ],
    );
    let first = order(&status(&ours, &real, &sysroot));
    assert_eq!(first.len(), 2, "two deployments: {first:?}");
    assert!(
        first[0].ends_with(".1"),
        "the newest deployment is the default: {first:?}"
    );

    admin_ok(&ours, &sysroot, &["set-default", "1"]);
    let swapped = order(&status(&ours, &real, &sysroot));
    assert_eq!(
        swapped,
        [first[1].clone(), first[0].clone()],
        "set-default 1"
    );

    admin_ok(&ours, &sysroot, &["rollback"]);
    assert_eq!(
        order(&status(&ours, &real, &sysroot)),
        first,
        "rollback undoes set-default"
    );

    let r = admin(&ours, &sysroot, &["set-default", "2"]);
    assert!(!r.success(), "set-default out of range must fail");
    assert!(
        r.err().contains("Out of range deployment index 2"),
        "{}",
        r.describe()
    );
}
