//! Making a booted deployment's `/usr` writable with an overlayfs
//! (`ostree_sysroot_deployment_unlock`).
//!
//! Only a booted deployment can be unlocked, and the overlay is mounted with `mount(8)` run
//! in the deployment directory (so the overlay options stay relative), needing the
//! privileges to mount. A hotfix first pushes an unmodified clone of the deployment as the
//! rollback target.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::deploy::{DeployTreeOpts, SimpleWriteFlags};
use super::deployment::{Deployment, UnlockedState};
use super::{DEPLOYMENT_RUNSTATE_DIR, KernelArgs, Sysroot, fsutil};
use crate::{Checksum, Error, Result};

fn mkdir_unmasked(p: &Path, mode: u32) -> Result<()> {
    fsutil::mkdir_p(p, mode)?;
    std::fs::set_permissions(
        p,
        std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777),
    )
    .map_err(|e| Error::io_path("chmod", p, e))
}

fn mkdtemp(prefix: &str) -> Result<PathBuf> {
    for i in 0..1000u32 {
        let p = PathBuf::from(format!(
            "{prefix}{:06}",
            (std::process::id() ^ (i * 7919)) % 1_000_000
        ));
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o755);
        match b.create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_path("mkdtemp", &p, e)),
        }
    }
    Err(Error::Other("mkdtemp: no free name".into()))
}

impl Sysroot {
    /// Unlock `d`'s `/usr` into `state` (not [`UnlockedState::None`]).
    pub async fn deployment_unlock(&mut self, d: &Deployment, state: UnlockedState) -> Result<()> {
        if state == UnlockedState::None {
            return Err(Error::invalid("Cannot re-lock a deployment"));
        }
        if d.unlocked != UnlockedState::None {
            return Err(Error::invalid(format!(
                "Deployment is already in unlocked state: {}",
                d.unlocked.as_str()
            )));
        }
        let merge = self
            .merge_deployment(Some(&d.osname))
            .ok_or_else(|| Error::not_found("No previous deployment to duplicate"))?;
        if state == UnlockedState::Hotfix {
            // clone_deployment: push an unmodified copy as the rollback target.
            self.cleanup(false)
                .await
                .map_err(|e| Error::Other(format!("Performing initial cleanup: {e}")))?;
            let kargs = KernelArgs::parse(merge.bootconfig.get("options"));
            let opts = DeployTreeOpts {
                override_kernel_argv: Some(kargs.to_strv()),
                ..Default::default()
            };
            let c = Checksum::from_hex(&d.csum)?;
            let new = self
                .deploy_tree(Some(&d.osname), &c, d.origin.clone(), Some(&merge), &opts)
                .await?;
            let flags = SimpleWriteFlags {
                not_default: true,
                ..Default::default()
            };
            let os = d.osname.clone();
            self.simple_write_deployment(Some(&os), new, Some(&merge), flags)
                .await?;
        }
        self.deployment_set_mutable(d, true)?;
        let root = self.deployment_directory(d);
        let usr_mode = std::fs::metadata(root.join("usr"))
            .map_err(|e| Error::io("fstatat(usr)", e))?
            .mode();
        let (opts, ovldir) = match state {
            UnlockedState::Hotfix => {
                mkdir_unmasked(&root.join(".usr-ovl-upper"), usr_mode)?;
                mkdir_unmasked(&root.join(".usr-ovl-work"), usr_mode)?;
                (
                    "lowerdir=usr,upperdir=.usr-ovl-upper,workdir=.usr-ovl-work".to_string(),
                    None,
                )
            }
            _ => {
                let dir = mkdtemp("/var/tmp/ostree-unlock-ovl.")?;
                mkdir_unmasked(&dir.join("upper"), usr_mode)?;
                mkdir_unmasked(&dir.join("work"), usr_mode)?;
                (
                    format!(
                        "lowerdir=usr,upperdir={},workdir={}",
                        dir.join("upper").display(),
                        dir.join("work").display()
                    ),
                    Some(dir),
                )
            }
        };
        let mut cmd = std::process::Command::new("mount");
        cmd.current_dir(&root).args(["-t", "overlay"]);
        if state == UnlockedState::Transient {
            cmd.args(["-o", &format!("ro,{opts}")]);
        } else {
            cmd.args(["-o", &opts]);
        }
        cmd.args(["overlay", "/usr"]);
        let st = cmd
            .status()
            .map_err(|e| Error::io("Failed overlayfs mount: running mount", e))?;
        if !st.success() {
            return Err(Error::Other(format!("Failed overlayfs mount: mount {st}")));
        }
        match state {
            UnlockedState::Hotfix => {
                let mut origin = d.origin.clone().unwrap_or_default();
                origin.set("origin", "unlocked", state.as_str());
                self.write_origin_file(d, Some(&origin))?;
            }
            _ => {
                let flag = if state == UnlockedState::Development {
                    "unlocked-development"
                } else {
                    "unlocked-transient"
                };
                let dir = Path::new(DEPLOYMENT_RUNSTATE_DIR).join(d.dir_name());
                fsutil::mkdir_p(&dir, 0o755)?;
                let text = ovldir.map(|p| p.display().to_string()).unwrap_or_default();
                fsutil::write_file_atomic(&dir.join(flag), text.as_bytes(), 0o644, false)?;
            }
        }
        self.bump_mtime()
    }
}
