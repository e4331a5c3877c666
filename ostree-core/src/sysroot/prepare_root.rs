//! `ostree-prepare-root`'s decisions, without the mounts: read `ostree=` from the kernel
//! command line, resolve it on the physical root, and plan the mounts that turn the
//! deployment into the root of the booted system (ostree 2022.7's
//! `src/switchroot/ostree-prepare-root.c`).
//!
//! The plan is a list of [`MountStep`]s computed from what is on disk; the binary
//! (`cli/src/bin/ostree-prepare-root.rs`) only executes it. Keeping the two apart lets the
//! unit tests check every decision on a temporary directory, without privileges.
//!
//! # What the plan does (physical root at `R`, deployment `D = R/ostree/deploy/$os/deploy/$c.$s`)
//!
//! 1. `/` becomes a private mount tree recursively (the kernel refuses to move shared mounts);
//! 2. `D` is bind-mounted on itself, so it can be moved later;
//! 3. `R/boot` is bound on `D/boot` when `R/boot/loader` is a symlink (one filesystem for
//!    `/` and `/boot`) and `D/boot` is a directory;
//! 4. `/usr` of the deployment becomes a read-only bind mount;
//! 5. `D/var` gets the stateroot's shared `R/ostree/deploy/$os/var`;
//! 6. `/run/ostree-booted` is created (when not running as PID 1);
//! 7. the deployment replaces `R`: with `R` = `/`, `pivot_root(D, D/sysroot)`; otherwise three
//!    moves (`D` → `R.tmp`, `R` → `R.tmp/sysroot`, `R.tmp` → `R`), after which the caller
//!    (an initramfs `/init` or systemd) switches root to `R`.
//!
//! `sysroot.readonly=true` in the repository config adds writable binds of `/etc` and the
//! stateroot's `/var`, and the stamp `/run/ostree-sysroot-ro.stamp`, as upstream does.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// The kernel argument naming the boot link.
pub const KARG: &str = "ostree";
/// Created once the root is prepared (`OSTREE_PATH_BOOTED`).
pub const RUN_OSTREE_BOOTED: &str = "/run/ostree-booted";
/// Tells `ostree-remount` that the sysroot is configured read-only.
pub const SYSROOT_RO_STAMP: &str = "/run/ostree-sysroot-ro.stamp";
/// When present, `/var` is mounted even where systemd would do it (`INITRAMFS_MOUNT_VAR`).
pub const INITRAMFS_MOUNT_VAR: &str = "/run/ostree/initramfs-mount-var";

/// The value of the last `ostree=` argument of a kernel command line (the kernel's own
/// quoting: `"` toggles quoting, so `ostree="/a b"` is one argument). `None` when absent.
pub fn ostree_karg(cmdline: &str) -> Option<String> {
    let mut found = None;
    for arg in split_cmdline(cmdline) {
        if let Some(v) = arg.strip_prefix("ostree=") {
            found = Some(v.to_string());
        }
    }
    found
}

/// Split a kernel command line into arguments as the kernel's `next_arg` does: whitespace
/// separates, double quotes group (and are dropped).
pub fn split_cmdline(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    out.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        out.push(cur);
    }
    out
}

/// A checked `ostree=` value: `/ostree/boot.N/$os/$bootcsum/$serial` (what ostree writes), or
/// any other absolute path without `..` (upstream accepts any link; so do we, but a value
/// that cannot be a path inside the root is refused here with a clear message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootLink {
    /// The value as given, e.g. `/ostree/boot.1/debian/<bootcsum>/0`.
    pub path: String,
    /// `(bootversion, osname, bootcsum, serial)` when it has ostree's shape.
    pub parts: Option<(u32, String, String, u32)>,
}

impl BootLink {
    /// Check an `ostree=` value.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "Malformed ostree= argument '{value}': {why}; expected ostree=/ostree/boot.N/$osname/$bootcsum/$serial"
            ))
        };
        if value.is_empty() {
            return Err(bad("empty"));
        }
        if !value.starts_with('/') {
            return Err(bad("not an absolute path"));
        }
        if Path::new(value)
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(bad("contains '..'"));
        }
        let comps: Vec<&str> = value.split('/').filter(|c| !c.is_empty()).collect();
        let parts = match comps.as_slice() {
            ["ostree", boot, os, csum, serial] => {
                let v = boot
                    .strip_prefix("boot.")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|v| *v <= 1);
                let serial = serial.parse::<u32>().ok();
                let csum_ok = csum.len() == 64 && csum.bytes().all(|b| b.is_ascii_hexdigit());
                match (v, serial, csum_ok) {
                    (Some(v), Some(s), true) => Some((v, os.to_string(), csum.to_string(), s)),
                    _ => None,
                }
            }
            _ => None,
        };
        if comps.first() == Some(&"ostree") && parts.is_none() {
            return Err(bad(
                "the boot version must be 0 or 1, the boot checksum 64 hex digits, the serial a number",
            ));
        }
        Ok(BootLink {
            path: value.to_string(),
            parts,
        })
    }

    /// From a whole kernel command line.
    pub fn from_cmdline(cmdline: &str) -> Result<Self> {
        match ostree_karg(cmdline) {
            Some(v) => Self::parse(&v),
            None => Err(Error::invalid(
                "No OSTree target; expected ostree=/ostree/boot.N/... on the kernel command line",
            )),
        }
    }
}

/// Resolve the boot link on the physical root `root`: it must be a symbolic link whose chain
/// ends at a directory. Returns the deployment directory (canonical, under `root`).
pub fn resolve_deployment(root: &Path, link: &BootLink) -> Result<PathBuf> {
    let dest = root.join(link.path.trim_start_matches('/'));
    let md = std::fs::symlink_metadata(&dest)
        .map_err(|e| Error::io_path("Couldn't find specified OSTree root", dest.clone(), e))?;
    if !md.file_type().is_symlink() {
        return Err(Error::invalid(format!(
            "OSTree target is not a symbolic link: {}",
            dest.display()
        )));
    }
    let deploy = std::fs::canonicalize(&dest).map_err(|e| {
        Error::io_path(
            "Deployment of the boot link is missing: realpath",
            dest.clone(),
            e,
        )
    })?;
    let md = std::fs::metadata(&deploy).map_err(|e| Error::io_path("stat", deploy.clone(), e))?;
    if !md.is_dir() {
        return Err(Error::invalid(format!(
            "Deployment is not a directory: {}",
            deploy.display()
        )));
    }
    let root_c = std::fs::canonicalize(root).map_err(|e| Error::io_path("realpath", root, e))?;
    if !deploy.starts_with(&root_c) {
        return Err(Error::invalid(format!(
            "OSTree target {} resolves outside the root {}: {}",
            link.path,
            root_c.display(),
            deploy.display()
        )));
    }
    Ok(deploy)
}

/// Whether the repository config of the physical root says `[sysroot] readonly=true`.
pub fn sysroot_configured_readonly(config: &str) -> bool {
    let mut in_sysroot = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_sysroot = line == "[sysroot]";
        } else if in_sysroot
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "readonly"
        {
            return v.trim() == "true";
        }
    }
    false
}

/// One mount operation of the plan. Paths are absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountStep {
    /// `mount --make-rprivate TARGET`.
    MakePrivate(PathBuf),
    /// `mount --bind SRC DST`.
    Bind(PathBuf, PathBuf),
    /// Remount the bind mount at the path read-only.
    RemountReadOnly(PathBuf),
    /// Remount the bind mount at the path read-write.
    RemountReadWrite(PathBuf),
    /// Create an empty file (a stamp under /run).
    Touch(PathBuf),
    /// Create a directory (mode 0755) if missing.
    Mkdir(PathBuf),
    /// `mount --move SRC DST`.
    Move(PathBuf, PathBuf),
    /// Remove an empty directory.
    Rmdir(PathBuf),
    /// `pivot_root(NEW, PUT_OLD)`.
    PivotRoot(PathBuf, PathBuf),
}

/// What [`plan`] needs besides the disk.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Running as PID 1 (no initramfs): no `/run` stamp, root is `/`.
    pub pid1: bool,
    /// Mount the stateroot's /var (true without systemd; upstream's default in a build without
    /// systemd, or when `/run/ostree/initramfs-mount-var` exists).
    pub mount_var: bool,
}

/// The mounts that make `deploy` (from [`resolve_deployment`]) the root, with the physical
/// root `root` (canonical) ending at `/sysroot` of it.
pub fn plan(root: &Path, deploy: &Path, opts: &PlanOptions) -> Result<Vec<MountStep>> {
    use MountStep::*;
    let mut steps = vec![MakePrivate("/".into()), Bind(deploy.into(), deploy.into())];
    let d = |p: &str| deploy.join(p);
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let config = std::fs::read_to_string(root.join("ostree/repo/config")).unwrap_or_default();
    let readonly = sysroot_configured_readonly(&config);
    if readonly {
        steps.push(Touch(SYSROOT_RO_STAMP.into()));
    }
    let loader = root.join("boot/loader");
    if std::fs::symlink_metadata(&loader).is_ok_and(|m| m.file_type().is_symlink())
        && is_dir(&d("boot"))
    {
        steps.push(Bind(root.join("boot"), d("boot")));
    }
    if readonly {
        steps.push(Bind(d("etc"), d("etc")));
        steps.push(RemountReadWrite(d("etc")));
    }
    if !is_dir(&d("usr")) {
        return Err(Error::invalid(format!(
            "Deployment {} has no usr directory",
            deploy.display()
        )));
    }
    steps.push(Bind(d("usr"), d("usr")));
    steps.push(RemountReadOnly(d("usr")));
    let stateroot_var = deploy
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("var"))
        .ok_or_else(|| Error::invalid(format!("No stateroot above {}", deploy.display())))?;
    if readonly {
        steps.push(Bind(stateroot_var.clone(), stateroot_var.clone()));
        steps.push(RemountReadWrite(stateroot_var.clone()));
    }
    if opts.mount_var {
        if !is_dir(&stateroot_var) {
            return Err(Error::invalid(format!(
                "The stateroot's /var is missing: {}",
                stateroot_var.display()
            )));
        }
        if !is_dir(&d("var")) {
            return Err(Error::invalid(format!(
                "Deployment {} has no var directory",
                deploy.display()
            )));
        }
        steps.push(Bind(stateroot_var, d("var")));
    }
    if !opts.pid1 {
        steps.push(Mkdir("/run".into()));
        steps.push(Touch(RUN_OSTREE_BOOTED.into()));
    }
    if !is_dir(&d("sysroot")) {
        return Err(Error::invalid(format!(
            "Deployment {} has no sysroot directory to hold the physical root",
            deploy.display()
        )));
    }
    if root == Path::new("/") {
        steps.push(PivotRoot(deploy.into(), d("sysroot")));
    } else {
        let mut tmp = root.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        steps.push(Mkdir(tmp.clone()));
        steps.push(Move(deploy.into(), tmp.clone()));
        steps.push(Move(root.into(), tmp.join("sysroot")));
        steps.push(Move(tmp.clone(), root.into()));
        steps.push(Rmdir(tmp));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn cmdline_parsing() {
        let l = format!("BOOT_IMAGE=/x root=/dev/vda1 ostree=/ostree/boot.1/os/{CSUM}/0 quiet");
        assert_eq!(
            ostree_karg(&l).as_deref(),
            Some(format!("/ostree/boot.1/os/{CSUM}/0").as_str())
        );
        assert_eq!(ostree_karg("root=/dev/sda quiet\n"), None);
        assert_eq!(ostree_karg("ostree=/a ostree=/b"), Some("/b".into()));
        assert_eq!(ostree_karg("x \"ostree=/a b\" y"), Some("/a b".into()));
        assert_eq!(ostree_karg("ostree"), None);
        assert_eq!(split_cmdline("  a=\"b c\"  d\n"), ["a=b c", "d"]);
    }

    #[test]
    fn bootlink_parsing() {
        let b = BootLink::parse(&format!("/ostree/boot.0/debian/{CSUM}/3")).expect("valid");
        assert_eq!(b.parts, Some((0, "debian".into(), CSUM.into(), 3)));
        assert!(BootLink::parse("/some/other/link").is_ok_and(|b| b.parts.is_none()));
        for bad in [
            "",
            "ostree/boot.0/os/x/0",
            "/ostree/boot.2/os/x/0",
            "/ostree/boot.0/os/short/0",
            &format!("/ostree/boot.0/os/{CSUM}/x"),
            &format!("/ostree/boot.0/os/{CSUM}"),
            "/ostree/../etc",
        ] {
            let e = BootLink::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("Malformed ostree= argument"), "{bad}: {e}");
        }
        let e = BootLink::from_cmdline("root=/dev/vda1").expect_err("absent");
        assert!(e.to_string().contains("No OSTree target"), "{e}");
    }

    #[test]
    fn readonly_config() {
        assert!(sysroot_configured_readonly(
            "[core]\nmode=bare\n[sysroot]\nreadonly=true\n"
        ));
        assert!(!sysroot_configured_readonly("[core]\nreadonly=true\n"));
        assert!(!sysroot_configured_readonly("[sysroot]\nreadonly=false\n"));
    }

    /// A physical root with one deployment, as `ostree admin deploy` leaves it.
    fn fake_root() -> (tempfile::TempDir, PathBuf, BootLink) {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        let dep = r.join(format!("ostree/deploy/os/deploy/{CSUM}.0"));
        for d in ["usr", "var", "etc", "sysroot", "boot"] {
            std::fs::create_dir_all(dep.join(d)).expect("mkdir");
        }
        std::fs::create_dir_all(r.join("ostree/deploy/os/var")).expect("mkdir");
        std::fs::create_dir_all(r.join("ostree/repo")).expect("mkdir");
        std::fs::create_dir_all(r.join(format!("ostree/boot.1.1/os/{CSUM}"))).expect("mkdir");
        std::os::unix::fs::symlink("boot.1.1", r.join("ostree/boot.1")).expect("ln");
        std::os::unix::fs::symlink(
            format!("../../../deploy/os/deploy/{CSUM}.0"),
            r.join(format!("ostree/boot.1.1/os/{CSUM}/0")),
        )
        .expect("ln");
        std::fs::create_dir_all(r.join("boot/loader.1")).expect("mkdir");
        std::os::unix::fs::symlink("loader.1", r.join("boot/loader")).expect("ln");
        let link = BootLink::parse(&format!("/ostree/boot.1/os/{CSUM}/0")).expect("valid");
        (t, dep, link)
    }

    #[test]
    fn resolve_and_plan() {
        let (t, dep, link) = fake_root();
        let root = std::fs::canonicalize(t.path()).expect("realpath");
        let got = resolve_deployment(&root, &link).expect("resolves");
        let dep = std::fs::canonicalize(dep).expect("realpath");
        assert_eq!(got, dep);
        let steps = plan(
            &root,
            &got,
            &PlanOptions {
                pid1: false,
                mount_var: true,
            },
        )
        .expect("plan");
        use MountStep::*;
        let var = root.join("ostree/deploy/os/var");
        let tmp = PathBuf::from(format!("{}.tmp", root.display()));
        assert_eq!(
            steps,
            vec![
                MakePrivate("/".into()),
                Bind(dep.clone(), dep.clone()),
                Bind(root.join("boot"), dep.join("boot")),
                Bind(dep.join("usr"), dep.join("usr")),
                RemountReadOnly(dep.join("usr")),
                Bind(var, dep.join("var")),
                Mkdir("/run".into()),
                Touch(RUN_OSTREE_BOOTED.into()),
                Mkdir(tmp.clone()),
                Move(dep.clone(), tmp.clone()),
                Move(root.clone(), tmp.join("sysroot")),
                Move(tmp.clone(), root.clone()),
                Rmdir(tmp),
            ]
        );
        // As PID 1 on `/`: a pivot, no stamp.
        let steps = plan(
            Path::new("/"),
            &got,
            &PlanOptions {
                pid1: true,
                mount_var: false,
            },
        )
        .expect("plan");
        assert_eq!(
            steps.last(),
            Some(&PivotRoot(dep.clone(), dep.join("sysroot")))
        );
        assert!(!steps.contains(&Touch(RUN_OSTREE_BOOTED.into())));
    }

    #[test]
    fn readonly_sysroot_plan() {
        let (t, dep, _) = fake_root();
        std::fs::write(
            t.path().join("ostree/repo/config"),
            "[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\n",
        )
        .expect("write");
        let steps = plan(t.path(), &dep, &PlanOptions::default()).expect("plan");
        assert!(steps.contains(&MountStep::Touch(SYSROOT_RO_STAMP.into())));
        assert!(steps.contains(&MountStep::RemountReadWrite(dep.join("etc"))));
    }

    #[test]
    fn missing_pieces_are_clear_errors() {
        let (t, dep, link) = fake_root();
        // The deployment directory is gone: the link dangles.
        std::fs::rename(&dep, t.path().join("gone")).expect("mv");
        let e = resolve_deployment(t.path(), &link).expect_err("dangling");
        assert!(
            e.to_string()
                .contains("Deployment of the boot link is missing"),
            "{e}"
        );
        std::fs::rename(t.path().join("gone"), &dep).expect("mv back");
        // A boot link that does not exist.
        let other = BootLink::parse(&format!("/ostree/boot.0/os/{CSUM}/0")).expect("valid");
        let e = resolve_deployment(t.path(), &other).expect_err("absent");
        assert!(
            e.to_string()
                .contains("Couldn't find specified OSTree root"),
            "{e}"
        );
        // A directory instead of a link.
        let e = resolve_deployment(
            t.path(),
            &BootLink::parse("/boot/loader.1").expect("valid path"),
        )
        .expect_err("not a link");
        assert!(e.to_string().contains("not a symbolic link"), "{e}");
        // No sysroot dir in the tree.
        std::fs::remove_dir(dep.join("sysroot")).expect("rmdir");
        let e = plan(t.path(), &dep, &PlanOptions::default()).expect_err("no sysroot");
        assert!(e.to_string().contains("no sysroot directory"), "{e}");
    }
}
