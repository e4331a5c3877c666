//! `ostree-prepare-root`: in the initramfs (or as PID 1 without one), make the deployment
//! named by `ostree=` on the kernel command line the root of the system that is booting —
//! ostree 2022.7's `src/switchroot/ostree-prepare-root.c`.
//!
//! ```text
//! ostree-prepare-root SYSROOT     the physical root is mounted at SYSROOT (e.g. /sysroot);
//!                                 afterwards SYSROOT is the deployment, SYSROOT/sysroot the
//!                                 physical root; the caller then runs `switch_root SYSROOT`
//! ostree-prepare-root             as PID 1 only: the physical root is `/`; pivot into the
//!                                 deployment and exec /sbin/init
//! ```
//!
//! The decisions (parsing, resolving the boot link, which mounts) are in
//! `ostree_core::sysroot::prepare_root` and unit-tested there; this file runs the plan.
//! Every failure is one line on the console starting with `ostree-prepare-root: error:`, and
//! the exit status is 1; nothing is mounted past the failing step, and nothing on disk is
//! written except the stamps under `/run`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ostree_core::sysroot::prepare_root::{self, BootLink, MountStep, PlanOptions};
use rustix::mount::{MountFlags, MountPropagationFlags};

const PROG: &str = "ostree-prepare-root";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{PROG}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: {PROG} SYSROOT");
        return Ok(());
    }
    let pid1 = rustix::process::getpid().is_init();
    let root_arg = match (args.as_slice(), pid1) {
        ([root], _) => root.clone(),
        ([], true) => "/".to_string(),
        _ => return Err(format!("usage: {PROG} SYSROOT")),
    };

    let cmdline = read_cmdline()?;
    let link = BootLink::from_cmdline(&cmdline).map_err(|e| e.to_string())?;
    let root =
        std::fs::canonicalize(&root_arg).map_err(|e| format!("realpath({root_arg}): {e}"))?;
    let deploy = prepare_root::resolve_deployment(&root, &link).map_err(|e| e.to_string())?;
    eprintln!("{PROG}: Resolved OSTree target to: {}", deploy.display());
    let opts = PlanOptions {
        pid1,
        mount_var: true,
    };
    let steps = prepare_root::plan(&root, &deploy, &opts).map_err(|e| e.to_string())?;
    for step in &steps {
        execute(step).map_err(|e| format!("{}: {e}", describe(step)))?;
    }
    if pid1 {
        std::env::set_current_dir("/").map_err(|e| format!("chdir(/): {e}"))?;
        use std::os::unix::process::CommandExt;
        let e = std::process::Command::new("/sbin/init").exec();
        return Err(format!("exec /sbin/init: {e}"));
    }
    Ok(())
}

/// `/proc/cmdline`, mounting /proc for the read when it is not mounted (and unmounting it
/// after, leaving things as they were).
fn read_cmdline() -> Result<String, String> {
    let path = Path::new("/proc/cmdline");
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s);
    }
    rustix::mount::mount("proc", "/proc", "proc", MountFlags::SILENT, None)
        .map_err(|e| format!("failed to mount proc on /proc: {e}"))?;
    let res = std::fs::read_to_string(path).map_err(|e| format!("reading /proc/cmdline: {e}"));
    rustix::mount::unmount("/proc", rustix::mount::UnmountFlags::empty())
        .map_err(|e| format!("failed to umount proc from /proc: {e}"))?;
    res
}

fn describe(step: &MountStep) -> String {
    match step {
        MountStep::MakePrivate(p) => format!("failed to make \"{}\" a private mount", p.display()),
        MountStep::Bind(s, d) => format!("failed to bind mount {} to {}", s.display(), d.display()),
        MountStep::RemountReadOnly(p) => format!("failed to remount {} read-only", p.display()),
        MountStep::RemountReadWrite(p) => format!("failed to remount {} writable", p.display()),
        MountStep::Touch(p) => format!("failed to create {}", p.display()),
        MountStep::Mkdir(p) => format!("failed to create directory {}", p.display()),
        MountStep::Move(s, d) => format!("failed to move mount {} to {}", s.display(), d.display()),
        MountStep::Rmdir(p) => format!("failed to remove {}", p.display()),
        MountStep::PivotRoot(n, o) => {
            format!(
                "failed to pivot_root to {} (old root at {})",
                n.display(),
                o.display()
            )
        }
    }
}

fn execute(step: &MountStep) -> std::io::Result<()> {
    use rustix::mount::{mount_bind, mount_change, mount_move, mount_remount};
    match step {
        MountStep::MakePrivate(p) => Ok(mount_change(
            p,
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )?),
        MountStep::Bind(s, d) => Ok(mount_bind(s, d)?),
        MountStep::RemountReadOnly(p) => Ok(mount_remount(
            p,
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::SILENT,
            "",
        )?),
        MountStep::RemountReadWrite(p) => {
            Ok(mount_remount(p, MountFlags::BIND | MountFlags::SILENT, "")?)
        }
        MountStep::Touch(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(drop),
        MountStep::Mkdir(p) => match std::fs::create_dir(p) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            r => r,
        },
        MountStep::Move(s, d) => Ok(mount_move(s, d)?),
        MountStep::Rmdir(p) => std::fs::remove_dir(p),
        MountStep::PivotRoot(new, old) => {
            std::env::set_current_dir(new)?;
            Ok(rustix::process::pivot_root(".", relative_to(old, new))?)
        }
    }
}

/// `old` relative to `base` (for `pivot_root(".", "sysroot")` after a chdir).
fn relative_to(old: &Path, base: &Path) -> PathBuf {
    old.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| old.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_pivot_path() {
        assert_eq!(
            relative_to(Path::new("/d/x/sysroot"), Path::new("/d/x")),
            PathBuf::from("sysroot")
        );
    }

    #[test]
    fn describes_steps() {
        let s = describe(&MountStep::Bind("/a".into(), "/b".into()));
        assert_eq!(s, "failed to bind mount /a to /b");
    }
}
