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

/// A minimal OS tree at `dir`: one kernel (optionally a second one), an initramfs, /usr/etc.
fn os_tree(dir: &Path, version: &str, kernels: &[&str]) {
    for k in kernels {
        write_file(
            &dir.join(format!("usr/lib/modules/{k}/vmlinuz")),
            format!("kernel {k} {version}").as_bytes(),
            0o644,
        );
        write_file(
            &dir.join(format!("usr/lib/modules/{k}/initramfs.img")),
            format!("initramfs {k}").as_bytes(),
            0o644,
        );
    }
    write_file(
        &dir.join("usr/etc/os-release"),
        format!("ID=testos\nVERSION_ID={version}\n").as_bytes(),
        0o644,
    );
    write_file(&dir.join("usr/bin/true"), b"#!/bin/sh\n", 0o755);
}

fn commit_tree(o: &Ostree, repo: &Path, branch: &str, tree: &Path) -> String {
    o.ok(
        repo,
        &[
            "commit",
            "-b",
            branch,
            "--tree",
            &format!("dir={}", path_str(tree)),
        ],
    )
    .trim()
    .to_string()
}

/// What a bootloader would boot: the `boot/loader` link target and every BLS entry's text.
/// Also checks that each entry's kernel, initramfs and `ostree=` boot link exist, i.e. that
/// this configuration is bootable.
fn boot_config(sysroot: &Path) -> (String, Vec<(String, String)>) {
    let loader = std::fs::read_link(sysroot.join("boot/loader")).expect("boot/loader link");
    let entries_dir = sysroot.join("boot/loader/entries");
    let mut entries: Vec<(String, String)> = std::fs::read_dir(&entries_dir)
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let text = std::fs::read_to_string(e.path()).expect("read entry");
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no boot entries in {loader:?}");
    for (name, text) in &entries {
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "linux" | "initrd" => assert!(
                    sysroot
                        .join("boot")
                        .join(value.trim_start_matches('/'))
                        .is_file(),
                    "{name}: {key} {value} is missing"
                ),
                "options" => {
                    let arg = value
                        .split(' ')
                        .find_map(|a| a.strip_prefix("ostree="))
                        .unwrap_or_else(|| panic!("{name}: no ostree= in {value}"));
                    assert!(
                        sysroot.join(arg.trim_start_matches('/')).is_dir(),
                        "{name}: ostree={arg} does not resolve"
                    );
                }
                _ => {}
            }
        }
    }
    (loader.to_string_lossy().into_owned(), entries)
}

/// Bad trees and settings fail with a clear error and leave the boot configuration exactly as
/// it was; a deploy killed at any instant leaves a bootable configuration, and a later deploy
/// completes.
#[test]
fn bad_deploys_keep_the_boot_configuration() {
    let ours = ostree_tests::bins::ours();
    if !is_root() {
        eprintln!("SKIP: deployments need root (owners of the checked-out files)");
        return;
    }
    let dir = scratch("admin-bad-");
    let sysroot = dir.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).expect("mkdir sysroot");
    admin_ok(&ours, &sysroot, &["init-fs", path_str(&sysroot)]);
    admin_ok(&ours, &sysroot, &["os-init", "testos"]);
    let repo = sysroot.join("ostree/repo");
    let good = dir.path().join("good");
    os_tree(&good, "1", &["6.1.0"]);
    commit_tree(&ours, &repo, "testos/good", &good);
    admin_ok(&ours, &sysroot, &["deploy", "--os=testos", "testos/good"]);
    let before = boot_config(&sysroot);

    let no_kernel = dir.path().join("no-kernel");
    os_tree(&no_kernel, "2", &[]);
    commit_tree(&ours, &repo, "testos/no-kernel", &no_kernel);
    let two = dir.path().join("two-kernels");
    os_tree(&two, "3", &["6.1.0", "6.2.0"]);
    commit_tree(&ours, &repo, "testos/two-kernels", &two);
    let bad_origin = dir.path().join("bad.origin");
    write_file(&bad_origin, b"[origin\nrefspec=\n", 0o644);

    let cases: [(&[&str], &str); 4] = [
        (
            &["deploy", "--os=testos", "testos/no-kernel"],
            "Failed to find kernel",
        ),
        (
            &["deploy", "--os=testos", "testos/two-kernels"],
            "Multiple kernels found",
        ),
        (
            &[
                "deploy",
                "--os=testos",
                &format!("--origin-file={}", path_str(&bad_origin)),
                "testos/good",
            ],
            "origin",
        ),
        (&["deploy", "--os=testos", "testos/nosuchref"], "nosuchref"),
    ];
    for (args, message) in cases {
        let r = admin(&ours, &sysroot, args);
        assert!(!r.success(), "admin {args:?} must fail: {}", r.describe());
        assert!(
            r.err().contains(message),
            "admin {args:?}: the error names the problem ({message}): {}",
            r.describe()
        );
        assert_eq!(
            boot_config(&sysroot),
            before,
            "admin {args:?} changed /boot"
        );
    }

    // An unknown bootloader name is a configuration error, listing what exists.
    ours.ok(&repo, &["config", "set", "sysroot.bootloader", "lilo"]);
    let r = admin(&ours, &sysroot, &["deploy", "--os=testos", "testos/good"]);
    assert!(
        !r.success(),
        "an unknown bootloader must fail: {}",
        r.describe()
    );
    assert!(
        r.err().contains("'lilo'") && r.err().contains("available"),
        "{}",
        r.describe()
    );
    assert_eq!(
        boot_config(&sysroot),
        before,
        "an unknown bootloader changed /boot"
    );
    ours.ok(&repo, &["config", "unset", "sysroot.bootloader"]);

    // Kill deploys at instants spread over a deploy's duration.
    let v2 = dir.path().join("v2");
    os_tree(&v2, "2", &["6.1.0"]);
    commit_tree(&ours, &repo, "testos/good", &v2);
    let start = std::time::Instant::now();
    admin_ok(&ours, &sysroot, &["deploy", "--os=testos", "testos/good"]);
    let span = start.elapsed().as_micros().max(1000) as u64;
    boot_config(&sysroot);
    for i in 0..10u64 {
        let mut c = ours.command();
        c.env("OSTREE_SYSROOT_DEBUG", "mutable-deployments")
            .args(["admin", "deploy", "--os=testos", "--retain", "testos/good"])
            .arg(format!("--sysroot={}", path_str(&sysroot)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().expect("spawn deploy");
        std::thread::sleep(std::time::Duration::from_micros(span * i / 8));
        let _ = child.kill();
        let _ = child.wait();
        boot_config(&sysroot);
        ours.fsck_clean(&repo);
        // Keep the number of deployments bounded.
        admin(&ours, &sysroot, &["cleanup"]);
    }
    admin_ok(&ours, &sysroot, &["deploy", "--os=testos", "testos/good"]);
    let after = boot_config(&sysroot);
    assert!(
        after.1.len() >= 2,
        "the final deploy added an entry: {after:?}"
    );
}

/// A tmpfs mounted for the life of a test (in the scratch directory, never the machine's
/// /boot), unmounted on drop even when the test fails.
struct TmpMount(std::path::PathBuf);

impl Drop for TmpMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Every file under `dir` with its size, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = ostree_tests::fsutil::list_paths(dir)
        .into_iter()
        .map(|p| {
            let len = std::fs::symlink_metadata(dir.join(&p))
                .map(|m| m.len())
                .unwrap_or(0);
            (p.to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}

/// A /boot too small for a new kernel: the deploy refuses before writing anything there,
/// naming the space it needs, and the boot configuration (loader link, entries, files) is
/// exactly as it was; the previous deployment stays bootable.
#[test]
fn full_boot_fails_before_touching_the_configuration() {
    let ours = ostree_tests::bins::ours();
    if !is_root() {
        eprintln!("SKIP: needs root (deployments' owners, and a small tmpfs for /boot)");
        return;
    }
    let dir = scratch("admin-fullboot-");
    let sysroot = dir.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).expect("mkdir sysroot");
    admin_ok(&ours, &sysroot, &["init-fs", path_str(&sysroot)]);
    admin_ok(&ours, &sysroot, &["os-init", "testos"]);
    let boot = sysroot.join("boot");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=5m", "testboot"])
        .arg(&boot)
        .status()
        .expect("run mount");
    if !mounted.success() {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    let _mount = TmpMount(boot.clone());
    let repo = sysroot.join("ostree/repo");
    let tree = |name: &str, seed: u64| {
        let t = dir.path().join(name);
        os_tree(&t, name, &["6.1.0"]);
        let kdir = t.join("usr/lib/modules/6.1.0");
        write_file(
            &kdir.join("vmlinuz"),
            &ostree_tests::fsutil::det_bytes(seed, 2 << 20),
            0o644,
        );
        write_file(
            &kdir.join("initramfs.img"),
            &ostree_tests::fsutil::det_bytes(seed + 1, 1 << 20),
            0o644,
        );
        commit_tree(&ours, &repo, &format!("testos/{name}"), &t);
    };
    tree("v1", 10);
    tree("v2", 20);
    admin_ok(&ours, &sysroot, &["deploy", "--os=testos", "testos/v1"]);
    let config = boot_config(&sysroot);
    let files = listing(&boot);
    let r = admin(&ours, &sysroot, &["deploy", "--os=testos", "testos/v2"]);
    assert!(
        !r.success(),
        "a deploy into a full /boot must fail: {}",
        r.describe()
    );
    assert!(
        r.err().contains("Not enough free space") && r.err().contains("was not changed"),
        "the error names the problem: {}",
        r.describe()
    );
    assert_eq!(
        boot_config(&sysroot),
        config,
        "the boot configuration changed"
    );
    assert_eq!(listing(&boot), files, "files under /boot changed");
}
