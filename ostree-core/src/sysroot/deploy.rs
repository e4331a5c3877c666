//! Creating deployments and committing a new deployment list to the boot configuration
//! (`ostree-sysroot-deploy.c`).
//!
//! A deployment is made in two steps: *initialize* (hardlink checkout of the commit, boot
//! checksum, `/etc` from `/usr/etc`) and *finalize* (the `/etc` merge from the merge
//! deployment, origin file, sealing). [`Sysroot::write_deployments`] then commits an ordered
//! deployment list: when the set of boot entries changes it writes a whole new boot version
//! and swaps `boot/loader`; otherwise only the boot-link symlink farm (`ostree/boot.B`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::deployment::{Deployment, parse_deploy_dir_name};
use super::etcmerge;
use super::fsutil;
use super::kernel::{self, KernelLayout};
use super::staged;
use super::{
    BOOT_INITRAMFS_OVERLAYS, BlsEntry, KernelArgs, RUNSTATE_STAGED, RUNSTATE_STAGED_INITRDS_DIR,
    RUNSTATE_STAGED_LOCKED, Sysroot,
};
use crate::bootloader::BootloaderWriter;
use crate::keyfile::KeyFile;
use crate::repo::checkout::{CheckoutMode, CheckoutOptions};
use crate::{Checksum, Error, Result};

/// Options of [`Sysroot::deploy_tree`] (`OstreeSysrootDeployTreeOpts`).
#[derive(Clone, Debug, Default)]
pub struct DeployTreeOpts {
    /// Kernel arguments for the new deployment; `None` inherits the merge deployment's.
    pub override_kernel_argv: Option<Vec<String>>,
    /// Checksums of overlay initramfs images staged with
    /// [`Sysroot::stage_overlay_initrd`].
    pub overlay_initrds: Vec<String>,
}

/// Flags of [`Sysroot::simple_write_deployment`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimpleWriteFlags {
    /// Keep every current deployment.
    pub retain: bool,
    /// Keep deployments newer than the booted (or merge) one.
    pub retain_pending: bool,
    /// Keep deployments older than the booted (or merge) one.
    pub retain_rollback: bool,
    /// Add the new deployment after the booted (or merge) one instead of first.
    pub not_default: bool,
    /// Do not clean up afterwards.
    pub no_clean: bool,
}

/// Extra bytes reserved on `/boot` beyond the files copied there (entries, boot loader
/// configuration, directory blocks).
const BOOT_SPACE_MARGIN: u64 = 1024 * 1024;

fn ioerr(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::io_path(what, p, e)
}

/// Parse `os-release` text: `KEY=VALUE` lines, values shell-unquoted.
pub fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.split('\n') {
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if let Some(v) = shell_unquote(v) {
            out.insert(k.to_string(), v);
        }
    }
    out
}

/// `g_shell_unquote`: single quotes literal, double quotes with `\` escapes of `$`, `` ` ``,
/// `"`, `\` and newline; unquoted text with `\` escapes.
fn shell_unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    ch => out.push(ch),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        ch @ ('"' | '\\' | '`' | '$') => out.push(ch),
                        '\n' => {}
                        ch => {
                            out.push('\\');
                            out.push(ch);
                        }
                    },
                    ch => out.push(ch),
                }
            },
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => out.push(ch),
                None => out.push('\\'),
            },
            ch => out.push(ch),
        }
    }
    Some(out)
}

impl Sysroot {
    async fn commit_version(&self, csum: &str) -> Option<String> {
        let repo = self.repo.as_ref()?;
        let c = Checksum::from_hex(csum).ok()?;
        let commit = repo.load_commit(&c).await.ok()?;
        commit
            .metadata
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    fn allocate_deployserial(&self, osname: &str, revision: &str) -> Result<u32> {
        let mut serial = 0;
        for (csum, s) in self.list_deployment_dirs_for_os(osname)? {
            if csum == revision {
                serial = serial.max(s + 1);
            }
        }
        Ok(serial)
    }

    /// The deployment directories of a stateroot on disk (`$csum.$serial`).
    pub(crate) fn list_deployment_dirs_for_os(&self, osname: &str) -> Result<Vec<(String, u32)>> {
        let dir = self.join(&format!("ostree/deploy/{osname}/deploy"));
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ioerr("opendir", &dir, e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| ioerr("readdir", &dir, e))?;
            if !ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            out.push(parse_deploy_dir_name(&ent.file_name().to_string_lossy())?);
        }
        Ok(out)
    }

    /// Check out a commit as a deployment directory (hardlinks from the system repository).
    async fn checkout_deployment_tree(&self, d: &Deployment) -> Result<PathBuf> {
        let osdeploy = self.join(&format!("ostree/deploy/{}/deploy", d.osname));
        fsutil::mkdir_p(&osdeploy, 0o775)?;
        let target = osdeploy.join(d.dir_name());
        fsutil::rm_rf(&target)?;
        let commit = Checksum::from_hex(&d.csum)?;
        let opts = CheckoutOptions {
            mode: CheckoutMode::None,
            process_passthrough_whiteouts: true,
            ..CheckoutOptions::default()
        };
        self.repo()?
            .checkout(&commit, &target, &opts)
            .await
            .map_err(|e| Error::Other(format!("Checking out deployment tree: {e}")))?;
        Ok(target)
    }

    /// Create `etc` from `usr/etc` (`prepare_deployment_etc`).
    async fn prepare_deployment_etc(&self, d: &Deployment, root: &Path) -> Result<()> {
        let wrap = |e: Error| Error::Other(format!("Preparing /etc: {e}"));
        let etc = root.join("etc");
        let usretc = root.join("usr/etc");
        let etc_exists = fsutil::lexists(&etc);
        let mut usretc_exists = fsutil::lexists(&usretc);
        let mut from_tree = true;
        if etc_exists {
            if usretc_exists {
                return Err(wrap(Error::invalid("Tree contains both /etc and /usr/etc")));
            }
            std::fs::rename(&etc, &usretc).map_err(|e| wrap(ioerr("renameat", &etc, e)))?;
            usretc_exists = true;
            from_tree = false;
        }
        if !usretc_exists {
            return Err(wrap(Error::invalid(
                "Tree contains neither /usr/etc nor /etc: refusing to deploy a tree without configuration",
            )));
        }
        if from_tree {
            let opts = CheckoutOptions {
                mode: CheckoutMode::None,
                force_copy: true,
                subpath: Some("/usr/etc".into()),
                ..CheckoutOptions::default()
            };
            let commit = Checksum::from_hex(&d.csum)?;
            self.repo()?
                .checkout(&commit, &etc, &opts)
                .await
                .map_err(wrap)?;
        } else {
            // The commit has /etc only: copy the renamed tree.
            fsutil::copy_dir_recurse(&usretc, &etc, self.debug.no_xattrs).map_err(wrap)?;
        }
        Ok(())
    }

    /// The first half of a deployment: checkout, boot checksum, `/etc` (`sysroot_initialize_deployment`).
    async fn initialize_deployment(
        &self,
        osname: Option<&str>,
        revision: &Checksum,
        origin: Option<KeyFile>,
        opts: &DeployTreeOpts,
    ) -> Result<Deployment> {
        let osname = match osname {
            Some(o) => o.to_string(),
            None => self
                .booted
                .as_ref()
                .map(|b| b.osname.clone())
                .ok_or_else(|| Error::invalid("No stateroot given and not booted"))?,
        };
        let stateroot = self.join(&format!("ostree/deploy/{osname}"));
        if !stateroot.join("var").is_dir() {
            return Err(Error::not_found(format!(
                "Stateroot '{osname}' does not exist in {} (create it with `ostree admin os-init {osname}`)",
                self.path.display()
            )));
        }
        let revision = revision.to_hex();
        let serial = self.allocate_deployserial(&osname, &revision)?;
        let mut d = Deployment::new(0, &osname, &revision, serial, "", 0);
        d.origin = origin;
        let root = self.checkout_deployment_tree(&d).await?;
        let layout = kernel::find_kernel(&root, self.debug.no_dtb)?;
        d.bootcsum = layout.bootcsum.clone();
        let mut bc = BlsEntry::new();
        if let Some(k) = &opts.override_kernel_argv {
            let mut ka = KernelArgs::new();
            ka.append_all(k);
            bc.set("options", &ka.to_string());
        }
        d.bootconfig = bc;
        d.overlay_initrds = opts.overlay_initrds.clone();
        self.prepare_deployment_etc(&d, &root).await?;
        // lint_deployment_fs: content in /var is not deployed.
        if let Ok(rd) = std::fs::read_dir(root.join("var")) {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                eprintln!(
                    "note: Deploying commit {} which contains content in /var/{n} that will be ignored.",
                    d.csum
                );
            }
        }
        Ok(d)
    }

    /// The `/var` a deployment will use (`get_var_dfd`).
    fn var_dir(&self, d: &Deployment) -> PathBuf {
        if self.booted.as_ref().map(|b| b.osname.as_str()) == Some(d.osname.as_str()) {
            PathBuf::from("/var")
        } else {
            self.join(&format!("ostree/deploy/{}/var", d.osname))
        }
    }

    /// The `/etc` merge from `merge` into `d` (`merge_configuration_from`).
    pub fn merge_configuration(&self, merge: &Deployment, d: &Deployment) -> Result<()> {
        let wrap = |e: Error| Error::Other(format!("During /etc merge: {e}"));
        let merge_root = self.deployment_directory(merge);
        let new_root = self.deployment_directory(d);
        let diff = etcmerge::diff_etc(&merge_root.join("usr/etc"), &merge_root.join("etc"))
            .map_err(|e| {
                wrap(Error::Other(format!(
                    "While computing configuration diff: {e}"
                )))
            })?;
        self.emit(&format!(
            "Copying /etc changes: {} modified, {} removed, {} added",
            diff.modified.len(),
            diff.removed.len(),
            diff.added.len()
        ));
        etcmerge::apply_etc_diff(&merge_root, &new_root, &diff, self.debug.no_xattrs).map_err(wrap)
    }

    /// The second half of a deployment: kernel arguments and `/etc` from the merge
    /// deployment, `/var` stamps, origin file, sealing (`sysroot_finalize_deployment`).
    fn finalize_deployment(&self, d: &mut Deployment, merge: Option<&Deployment>) -> Result<()> {
        let root = self.deployment_directory(d);
        if let Some(m) = merge
            && d.bootconfig.get("options").is_none()
            && let Some(o) = m.bootconfig.get("options")
        {
            d.bootconfig.set("options", o);
        }
        if let Some(m) = merge {
            self.merge_configuration(m, d)?;
        }
        let osdeploy = self.join(&format!("ostree/deploy/{}", d.osname));
        let var = self.var_dir(d);
        if !var.is_dir() {
            return Err(Error::not_found(format!(
                "opendir({}): No such file or directory",
                var.display()
            )));
        }
        for p in [root.join("etc/.updated"), var.join(".updated")] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ioerr("unlinkat", &p, e)),
            }
        }
        let stamp = osdeploy.join("var/.ostree-selabeled");
        if !fsutil::lexists(&stamp) {
            self.emit("Relabeling /var (no stamp file 'var/.ostree-selabeled' found)");
            fsutil::write_file_atomic(&stamp, b"", 0o644, true)?;
        }
        self.write_origin_file_internal(d, None, false)?;
        if !self.debug.mutable_deployments {
            self.deployment_set_mutable(d, false)?;
        }
        Ok(())
    }

    /// Check out `revision` as a new deployment of `osname`, with configuration merged from
    /// `merge` (`ostree_sysroot_deploy_tree_with_options`). The deployment is not in the boot
    /// configuration until [`Sysroot::write_deployments`].
    pub async fn deploy_tree(
        &self,
        osname: Option<&str>,
        revision: &Checksum,
        origin: Option<KeyFile>,
        merge: Option<&Deployment>,
        opts: &DeployTreeOpts,
    ) -> Result<Deployment> {
        let mut d = self
            .initialize_deployment(osname, revision, origin, opts)
            .await?;
        self.finalize_deployment(&mut d, merge)?;
        Ok(d)
    }

    /// Copy an overlay initramfs to `/run/ostree/staged-initrds/`, named by its checksum
    /// (`ostree_sysroot_stage_overlay_initrd`).
    pub fn stage_overlay_initrd(&self, path: &Path) -> Result<String> {
        use sha2::Digest;
        let data = std::fs::read(path).map_err(|e| ioerr("openat", path, e))?;
        let csum = hex::encode(sha2::Sha256::digest(&data));
        let dir = Path::new(RUNSTATE_STAGED_INITRDS_DIR);
        fsutil::mkdir_p(dir, 0o755)?;
        fsutil::write_file_atomic(&dir.join(&csum), &data, 0o644, false)?;
        Ok(csum)
    }

    /// Like [`Sysroot::deploy_tree`], but the `/etc` merge and the boot configuration happen
    /// at shutdown (`ostree admin finalize-staged`); only on a booted system
    /// (`ostree_sysroot_stage_tree_with_options`).
    pub async fn stage_tree(
        &mut self,
        osname: Option<&str>,
        revision: &Checksum,
        origin: Option<KeyFile>,
        merge: Option<&Deployment>,
        opts: &DeployTreeOpts,
    ) -> Result<Deployment> {
        self.require_booted_deployment()
            .map_err(|e| Error::Other(format!("Cannot stage deployment: {e}")))?;
        let d = self
            .initialize_deployment(osname, revision, origin, opts)
            .await?;
        self.write_origin_file_internal(&d, None, true)?;
        let data = staged::staged_data(
            &d,
            merge,
            opts.override_kernel_argv.as_deref(),
            &opts.overlay_initrds,
        );
        let p = Path::new(RUNSTATE_STAGED);
        if let Some(parent) = p.parent() {
            fsutil::mkdir_p(parent, 0o755)?;
        }
        fsutil::write_file_atomic(p, &data.to_bytes(), 0o644, false)?;
        if let Some(old) = self.staged.clone() {
            self.rmrf_deployment(&old)?;
        }
        self.bump_mtime()?;
        self.load().await?;
        self.cleanup(false).await?;
        Ok(d)
    }

    /// Finalize the staged deployment (at shutdown): `/etc` merge, boot configuration
    /// (`_ostree_sysroot_finalize_staged`). A failure is recorded in
    /// `/boot/ostree/finalize-failure.stamp`.
    pub async fn finalize_staged(&mut self) -> Result<()> {
        match self.finalize_staged_inner().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let p = self.join("boot").join(super::FINALIZE_STAGED_FAILURE_PATH);
                if let Err(we) =
                    fsutil::write_file_atomic(&p, e.to_string().as_bytes(), 0o644, false)
                {
                    eprintln!(
                        "Failed to write {}: {we}",
                        super::FINALIZE_STAGED_FAILURE_PATH
                    );
                }
                Err(e)
            }
        }
    }

    async fn finalize_staged_inner(&mut self) -> Result<()> {
        let Some(staged) = self.staged.clone() else {
            return Ok(());
        };
        if fsutil::lexists(Path::new(RUNSTATE_STAGED_LOCKED)) {
            return Ok(());
        }
        let data = self.staged_data.clone().unwrap_or_default();
        let mut merge = None;
        if let Some(v) = data.get("merge-deployment") {
            let stub = staged::deserialize_deployment(v)?;
            merge = self.deployments.iter().find(|d| d.same(&stub)).cloned();
            if merge.is_none() {
                return Err(Error::not_found(format!(
                    "Failed to find merge deployment {}.{} for staged",
                    stub.csum, stub.deployserial
                )));
            }
        }
        std::fs::remove_file(RUNSTATE_STAGED)
            .map_err(|e| Error::io(format!("unlinkat({RUNSTATE_STAGED})"), e))?;
        let mut target = staged.clone();
        self.finalize_deployment(&mut target, merge.as_ref())?;
        target.staged = false;
        self.staged = None;
        if !self.deployments.is_empty() {
            self.deployments.remove(0);
        }
        let flags = SimpleWriteFlags {
            no_clean: true,
            ..Default::default()
        };
        let os = target.osname.clone();
        self.simple_write_deployment(Some(&os), target, merge.as_ref(), flags)
            .await?;
        self.cleanup(false).await
    }

    /// Prepend (or, with `not_default`, insert after the booted or merge deployment) `new`
    /// to the deployment list, drop the deployments ostree would garbage collect, and commit
    /// (`ostree_sysroot_simple_write_deployment`).
    pub async fn simple_write_deployment(
        &mut self,
        osname: Option<&str>,
        new: Deployment,
        merge: Option<&Deployment>,
        flags: SimpleWriteFlags,
    ) -> Result<()> {
        let booted = self.booted.clone();
        let osname = osname
            .map(str::to_string)
            .or_else(|| booted.as_ref().map(|b| b.osname.clone()));
        let mut retain = flags.retain;
        if booted.is_none() && merge.is_none() && (flags.retain_pending || flags.retain_rollback) {
            retain = true;
        }
        let mut out = Vec::new();
        let mut added = false;
        if !flags.not_default {
            out.push(new.clone());
            added = true;
        }
        let mut before_booted = true;
        let mut before_merge = true;
        for d in &self.deployments {
            let os_matches = osname.as_deref().is_none_or(|o| o == d.osname);
            let is_booted = booted.as_ref().is_some_and(|b| b.same(d));
            let is_merge = merge.is_some_and(|m| m.same(d));
            if is_booted {
                before_booted = false;
            }
            if is_merge {
                before_merge = false;
            }
            let passed = if booted.is_some() {
                !before_booted
            } else {
                !before_merge
            };
            if retain
                || d.is_pinned()
                || !os_matches
                || (flags.retain_pending && !passed)
                || is_booted
                || is_merge
                || (flags.retain_rollback && passed)
            {
                out.push(d.clone());
            }
            if !added && passed {
                out.push(new.clone());
                added = true;
            }
        }
        if !added {
            out.push(new);
        }
        self.write_deployments(out, !flags.no_clean).await
    }

    /// Whether two deployments have the same boot entry apart from `ostree=`
    /// (`deployment_bootconfigs_equal`).
    async fn bootconfigs_equal(&self, a: &Deployment, b: &Deployment) -> bool {
        if a.bootcsum != b.bootcsum || a.overlay_initrds_id() != b.overlay_initrds_id() {
            return false;
        }
        let kargs = |d: &Deployment| {
            let mut k = KernelArgs::parse(d.bootconfig.get("options"));
            k.replace("ostree");
            k.to_string()
        };
        if kargs(a) != kargs(b) {
            return false;
        }
        self.commit_version(&a.csum).await == self.commit_version(&b.csum).await
    }

    /// Commit `new` as the deployment list (default first): write the boot configuration and
    /// swap it in atomically (`ostree_sysroot_write_deployments_with_options`). With
    /// `postclean`, clean up and prune afterwards.
    pub async fn write_deployments(&mut self, new: Vec<Deployment>, postclean: bool) -> Result<()> {
        if !self.loaded {
            return Err(Error::Other("sysroot not loaded".into()));
        }
        let mut new = new;
        let mut removed_staged = self.staged.is_some();
        if let (Some(first), Some(s)) = (new.first(), &self.staged)
            && first.is(s)
        {
            removed_staged = false;
        }
        new.retain(|d| !d.staged);
        if removed_staged {
            let s = self.staged.take().expect("checked above");
            match std::fs::remove_file(RUNSTATE_STAGED) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("unlinkat({RUNSTATE_STAGED})"), e)),
            }
            self.rmrf_deployment(&s)?;
            let _ = std::fs::remove_file(RUNSTATE_STAGED_LOCKED);
            if !self.deployments.is_empty() {
                self.deployments.remove(0);
            }
        }
        let nonstaged_current: Vec<Deployment> = self
            .deployments
            .iter()
            .filter(|d| !d.staged)
            .cloned()
            .collect();

        // Boot serials: per bootcsum, in list order.
        let mut serials: HashMap<String, u32> = HashMap::new();
        for d in new.iter_mut() {
            let c = serials.entry(d.bootcsum.clone()).or_insert(0);
            d.bootserial = *c;
            *c += 1;
        }

        let mut requires_new_bootversion = new.len() != nonstaged_current.len();
        if !requires_new_bootversion {
            let mut is_noop = true;
            for (cur, nd) in nonstaged_current.iter().zip(new.iter()) {
                if !self.bootconfigs_equal(cur, nd).await {
                    requires_new_bootversion = true;
                    is_noop = false;
                    break;
                }
                if !cur.is(nd) {
                    is_noop = false;
                }
            }
            if is_noop {
                if removed_staged {
                    self.write_deployments_finish().await?;
                }
                return Ok(());
            }
        }

        let mut found_booted = false;
        for (i, d) in new.iter_mut().enumerate() {
            if self.booted.as_ref().is_some_and(|b| b.is(d) || b.same(d)) {
                found_booted = true;
            }
            let root = self.deployment_directory(d);
            if !root.exists() {
                return Err(Error::not_found(format!(
                    "Unable to find expected deployment root: {}",
                    root.display()
                )));
            }
            d.index = i;
        }
        if self.booted.is_some() && !found_booted {
            return Err(Error::invalid("Attempting to remove booted deployment"));
        }

        let atomic;
        let new_subbootdir;
        if !requires_new_bootversion {
            let bv = self.bootversion;
            self.create_new_bootlinks(bv, &new)?;
            self.full_system_sync()?;
            new_subbootdir = self.swap_bootlinks(bv)?;
            atomic = true;
        } else {
            let loader = self.query_bootloader()?;
            atomic = loader.is_atomic(&self.path);
            new_subbootdir = self
                .write_deployments_bootswap(&mut new, loader.as_ref())
                .await?;
        }
        let change = new.len() as i64 - self.deployments.len() as i64;
        self.emit(&format!(
            "{}; bootconfig swap: {}; bootversion: {new_subbootdir}, deployment count change: {change}",
            if atomic {
                "Transaction complete"
            } else {
                "Bootloader updated"
            },
            if requires_new_bootversion { "yes" } else { "no" },
        ));
        self.write_deployments_finish().await?;
        if postclean {
            self.cleanup(true)
                .await
                .map_err(|e| Error::Other(format!("Performing final cleanup: {e}")))?;
        }
        Ok(())
    }

    async fn write_deployments_finish(&mut self) -> Result<()> {
        self.bump_mtime()?;
        self.load()
            .await
            .map_err(|e| Error::Other(format!("Reloading deployments after commit: {e}")))?;
        let osnames: Vec<String> = self.deployments.iter().map(|d| d.osname.clone()).collect();
        for os in osnames {
            let p = self.join(&format!("ostree/deploy/{os}/current"));
            if fsutil::lexists(&p) {
                std::fs::remove_file(&p).map_err(|e| ioerr("unlinkat", &p, e))?;
            }
        }
        Ok(())
    }

    /// Flush the root and `/boot` filesystems (`full_system_sync`, minus the freeze).
    fn full_system_sync(&self) -> Result<()> {
        fsutil::syncfs_path(&self.path)
            .map_err(|e| Error::Other(format!("Full sync: syncfs(sysroot): {e}")))?;
        let boot = self.join("boot");
        if self.debug.test_fifreeze {
            // Upstream's test of its freeze watchdog; nothing is frozen here, ever.
            eprintln!("fifreeze watchdog was run");
            return Err(Error::Other(
                "Full sync: During fsfreeze-thaw: aborting due to test-fifreeze".into(),
            ));
        }
        if boot.is_dir() && !kernel::same_device(&boot, &self.path) {
            fsutil::syncfs_path(&boot).map_err(|e| Error::Other(format!("Full sync: {e}")))?;
        }
        self.checkpoint_boot()
    }

    /// Make what `/boot` holds visible to a bootloader that does not replay the journal
    /// ([`fsutil::checkpoint_journal`]); ostree freezes `/boot` for this, we never do.
    fn checkpoint_boot(&self) -> Result<()> {
        let boot = self.join("boot");
        let dir = if boot.is_dir() {
            boot
        } else {
            self.path.clone()
        };
        fsutil::checkpoint_journal(&dir)
            .map(drop)
            .map_err(|e| Error::Other(format!("Full sync: {e}")))
    }

    /// `create_new_bootlinks`: the symlink farm `ostree/boot.B.S'/$os/$bootcsum/$serial`.
    fn create_new_bootlinks(&self, bootversion: u32, deployments: &[Deployment]) -> Result<()> {
        let wrap = |e: Error| Error::Other(format!("Creating new current bootlinks: {e}"));
        let old_sub = if bootversion != self.bootversion {
            self.read_subbootversion(bootversion).map_err(wrap)?
        } else {
            self.subbootversion
        };
        let new_sub = 1 - old_sub;
        let dir = self.join(&format!("ostree/boot.{bootversion}.{new_sub}"));
        fsutil::rm_rf(&dir).map_err(wrap)?;
        fsutil::mkdir_p(&dir, 0o755).map_err(wrap)?;
        for d in deployments {
            let parent = dir.join(&d.osname).join(&d.bootcsum);
            fsutil::mkdir_p(&parent, 0o755).map_err(wrap)?;
            let target = format!("../../../deploy/{}/deploy/{}", d.osname, d.dir_name());
            fsutil::symlink_replace(&target, &parent.join(d.bootserial.to_string()))
                .map_err(wrap)?;
        }
        Ok(())
    }

    /// `swap_bootlinks`: point `ostree/boot.B` at the new farm. Returns `boot.B.S`.
    fn swap_bootlinks(&self, bootversion: u32) -> Result<String> {
        let wrap = |e: Error| Error::Other(format!("Swapping new version bootlinks: {e}"));
        let old_sub = if bootversion != self.bootversion {
            self.read_subbootversion(bootversion).map_err(wrap)?
        } else {
            self.subbootversion
        };
        let name = format!("boot.{bootversion}.{}", 1 - old_sub);
        fsutil::symlink_replace(&name, &self.join(&format!("ostree/boot.{bootversion}")))
            .map_err(wrap)?;
        Ok(name)
    }

    /// Bytes that installing the boot files of `new` into `/boot` would write.
    fn boot_space_needed(&self, new: &[Deployment], layouts: &[KernelLayout]) -> u64 {
        let boot = self.join("boot");
        let mut need = BOOT_SPACE_MARGIN;
        let mut seen = std::collections::HashSet::new();
        for (d, l) in new.iter().zip(layouts) {
            if !seen.insert(format!("{}-{}", d.osname, d.bootcsum)) {
                continue;
            }
            let dir = boot.join(format!("ostree/{}-{}", d.osname, d.bootcsum));
            if kernel::same_device(&l.dir, &boot) {
                continue; // hardlinked
            }
            for (src, dst) in l.files() {
                if !dir.join(&dst).exists() {
                    need += std::fs::metadata(l.dir.join(src))
                        .map(|m| m.len())
                        .unwrap_or(0);
                }
            }
            if let Some((s, None)) = &l.devicetree
                && !dir.join(s).exists()
            {
                need += l.total_size();
            }
        }
        need
    }

    /// Write a new boot version for `new` and swap it in (`write_deployments_bootswap`).
    async fn write_deployments_bootswap(
        &mut self,
        new: &mut [Deployment],
        loader: &dyn BootloaderWriter,
    ) -> Result<String> {
        let new_bv = 1 - self.bootversion;
        let mut layouts = Vec::new();
        for d in new.iter() {
            let root = self.deployment_directory(d);
            layouts.push(
                kernel::find_kernel(&root, self.debug.no_dtb)
                    .map_err(|e| Error::Other(format!("Installing kernel: {e}")))?,
            );
        }
        // Refuse before touching anything if /boot cannot hold what we would write.
        let boot = self.join("boot");
        fsutil::mkdir_p(&boot, 0o755)?;
        let need = self.boot_space_needed(new, &layouts);
        let avail = fsutil::available_bytes(&boot)?;
        if avail < need {
            return Err(Error::Other(format!(
                "Not enough free space in {}: {} needed, {} available; the current boot configuration was not changed",
                boot.display(),
                crate::pull::format_size(need),
                crate::pull::format_size(avail)
            )));
        }
        let entries_dir = self.join(&format!("boot/loader.{new_bv}/entries"));
        fsutil::rm_rf(&entries_dir)?;
        fsutil::mkdir_p(&entries_dir, 0o755)?;
        let show_osname = new.iter().skip(1).any(|d| d.osname != new[0].osname);
        let n = new.len();
        let mut entries = Vec::new();
        for (d, layout) in new.iter_mut().zip(&layouts) {
            let version = self.commit_version(&d.csum).await;
            self.install_deployment_kernel(new_bv, d, layout, n, show_osname, version.as_deref())
                .map_err(|e| Error::Other(format!("Installing kernel: {e}")))?;
            entries.push(d.bootconfig.clone());
        }
        self.create_new_bootlinks(new_bv, new)?;
        let subbootdir = self.swap_bootlinks(new_bv)?;
        loader
            .write(&self.path, new_bv, &entries)
            .map_err(|e| Error::Other(format!("Bootloader write config: {e}")))?;
        // prepare_new_bootloader_link
        let wrap = |e: Error| Error::Other(format!("Preparing final bootloader swap: {e}"));
        match std::os::unix::fs::symlink(".", self.join("boot/boot")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(wrap(Error::io("symlinkat", e))),
        }
        fsutil::symlink_replace(&format!("loader.{new_bv}"), &self.join("boot/loader.tmp"))
            .map_err(wrap)?;
        self.full_system_sync()?;
        // swap_bootloader: the commit point.
        let wrap = |e: Error| Error::Other(format!("Final bootloader swap: {e}"));
        std::fs::rename(self.join("boot/loader.tmp"), self.join("boot/loader"))
            .map_err(|e| wrap(Error::io("renameat", e)))?;
        fsutil::fsync_path(&boot).map_err(wrap)?;
        // The swap must reach the home locations before the old boot version is cleaned up:
        // a bootloader reading the pre-journal `loader` would name links that are gone.
        self.checkpoint_boot().map_err(wrap)?;
        loader.post_bls_sync(&self.path, new_bv).map_err(wrap)?;
        Ok(subbootdir)
    }

    /// Install one deployment's boot files into `/boot/ostree/$os-$bootcsum/` and write its
    /// BLS entry (`install_deployment_kernel`).
    fn install_deployment_kernel(
        &self,
        new_bv: u32,
        d: &mut Deployment,
        layout: &KernelLayout,
        n_deployments: usize,
        show_osname: bool,
        version: Option<&str>,
    ) -> Result<()> {
        let root = self.deployment_directory(d);
        let boot = self.join("boot");
        let bootcsumdir_rel = format!("ostree/{}-{}", d.osname, d.bootcsum);
        let bootcsumdir = boot.join(&bootcsumdir_rel);
        fsutil::mkdir_p(&bootcsumdir, 0o775)?;
        let confdir = boot.join(format!("loader.{new_bv}/entries"));
        fsutil::mkdir_p(&confdir, 0o775)?;
        for (src, dst) in layout.files() {
            let to = bootcsumdir.join(&dst);
            if !to.exists() {
                install_into_boot(&layout.dir.join(&src), &to)?;
            }
        }
        if let Some((src, None)) = &layout.devicetree {
            fsutil::copy_dir_recurse(
                &layout.dir.join(src),
                &bootcsumdir.join(src),
                self.debug.no_xattrs,
            )?;
        }
        let mut overlay_paths = Vec::new();
        if !d.overlay_initrds.is_empty() {
            let odir = boot.join(BOOT_INITRAMFS_OVERLAYS);
            fsutil::mkdir_p(&odir, 0o755)?;
            for c in &d.overlay_initrds {
                let dest = odir.join(format!("{c}.img"));
                if !dest.exists() {
                    install_into_boot(&Path::new(RUNSTATE_STAGED_INITRDS_DIR).join(c), &dest)?;
                }
                overlay_paths.push(format!("/{BOOT_INITRAMFS_OVERLAYS}/{c}.img"));
            }
        }
        let osrel = if root.join("usr/lib/os-release").exists() {
            let p = root.join("usr/lib/os-release");
            std::fs::read_to_string(&p).map_err(|e| Error::io("Reading /usr/lib/os-release", e))?
        } else {
            let p = root.join("etc/os-release");
            std::fs::read_to_string(&p).map_err(|e| Error::io("Reading /etc/os-release", e))?
        };
        let vals = parse_os_release(&osrel);
        let name = vals
            .get("PRETTY_NAME")
            .or_else(|| vals.get("ID"))
            .ok_or_else(|| Error::invalid("No PRETTY_NAME or ID in /etc/os-release"))?;
        let mut title = name.clone();
        if let Some(v) = version
            && !v.is_empty()
            && !name.contains(v)
        {
            title.push(' ');
            title.push_str(v);
        }
        title.push_str(" (ostree");
        if show_osname {
            title.push(':');
            title.push_str(&d.osname);
        }
        title.push_str(&format!(":{})", d.index));
        let bc = &mut d.bootconfig;
        bc.set("title", &title);
        bc.set("version", &(n_deployments - d.index).to_string());
        bc.set(
            "linux",
            &format!("/{bootcsumdir_rel}/{}", layout.kernel_namever),
        );
        let mut kargs = KernelArgs::parse(bc.get("options"));
        if let Some((_, namever)) = &layout.initramfs {
            bc.set("initrd", &format!("/{bootcsumdir_rel}/{namever}"));
            if !overlay_paths.is_empty() {
                bc.set_overlay_initrds(&overlay_paths)?;
            }
        } else {
            bc.remove("initrd");
            kargs.replace(&format!(
                "init=/ostree/boot.{new_bv}/{}/{}/{}/usr/lib/ostree/ostree-prepare-root",
                d.osname, d.bootcsum, d.bootserial
            ));
        }
        match &layout.devicetree {
            Some((_, Some(namever))) => {
                bc.set("devicetree", &format!("/{bootcsumdir_rel}/{namever}"));
                bc.remove("fdtdir");
            }
            Some((src, None)) => {
                bc.set("fdtdir", &format!("/{bootcsumdir_rel}/{src}"));
                bc.remove("devicetree");
            }
            None => {
                bc.remove("devicetree");
                bc.remove("fdtdir");
            }
        }
        kargs.replace(&format!(
            "ostree=/ostree/boot.{new_bv}/{}/{}/{}",
            d.osname, d.bootcsum, d.bootserial
        ));
        bc.set("options", &kargs.to_string());
        let name = format!("ostree-{}-{}.conf", n_deployments - d.index, d.osname);
        fsutil::write_file_atomic(&confdir.join(name), bc.render().as_bytes(), 0o644, false)
    }

    /// Replace a deployment's kernel arguments by writing a new boot configuration
    /// (`ostree_sysroot_deployment_set_kargs`).
    pub async fn deployment_set_kargs(&mut self, d: &Deployment, kargs: &[String]) -> Result<()> {
        if d.staged {
            return Err(Error::invalid(
                "Cannot set kernel arguments of a staged deployment this way",
            ));
        }
        let mut nd = d.duplicate();
        let mut ka = KernelArgs::new();
        ka.append_all(kargs);
        nd.bootconfig.set("options", &ka.to_string());
        let list: Vec<Deployment> = self
            .deployments
            .iter()
            .map(|c| if c.is(d) { nd.clone() } else { c.clone() })
            .collect();
        self.write_deployments(list, true).await
    }

    /// Rewrite a deployment's BLS entry (or staged kernel arguments) in place, without a new
    /// boot version (`ostree_sysroot_deployment_set_kargs_in_place`).
    pub fn deployment_set_kargs_in_place(&mut self, d: &Deployment, kargs: &str) -> Result<()> {
        if d.staged {
            let bytes = std::fs::read(RUNSTATE_STAGED)
                .map_err(|e| Error::io(format!("openat({RUNSTATE_STAGED})"), e))?;
            let mut data = crate::objects::Metadata::from_bytes(&bytes)?;
            let ka = KernelArgs::parse(Some(kargs));
            data.insert("kargs", crate::gvariant::Variant::str_array(&ka.to_strv()));
            return fsutil::write_file_atomic(
                Path::new(RUNSTATE_STAGED),
                &data.to_bytes(),
                0o644,
                false,
            );
        }
        let mut bc = d.bootconfig.clone();
        bc.set("options", kargs);
        let nonstaged = self.deployments.len();
        let name = format!("ostree-{}-{}.conf", nonstaged - d.index, d.osname);
        let dir = self.join(&format!("boot/loader.{}/entries", self.bootversion));
        fsutil::write_file_atomic(&dir.join(name), bc.render().as_bytes(), 0o644, false)?;
        if let Some(slot) = self.deployments.iter_mut().find(|x| x.is(d)) {
            slot.bootconfig = bc;
        }
        Ok(())
    }
}

/// Hardlink a boot file into `/boot`, or copy it (with its owner and mode, data synced)
/// when `/boot` is another filesystem (`install_into_boot`). Never leaves a partial file.
fn install_into_boot(src: &Path, dest: &Path) -> Result<()> {
    match std::fs::hard_link(src, dest) {
        Ok(()) => return Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV) | Some(libc::EMLINK) | Some(libc::EPERM)
            ) => {}
        Err(e) => return Err(ioerr("linkat", dest, e)),
    }
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(src).map_err(|e| ioerr("stat", src, e))?;
    let tmp = fsutil::tmp_sibling(dest);
    let res = (|| -> Result<()> {
        let mut from = std::fs::File::open(src).map_err(|e| ioerr("open", src, e))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| ioerr("Creating", &tmp, e))?;
        std::io::copy(&mut from, &mut to).map_err(|e| ioerr("regfile copy", dest, e))?;
        let _ = std::os::unix::fs::fchown(&to, Some(md.uid()), Some(md.gid()));
        to.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
            md.mode() & 0o7777,
        ))
        .map_err(|e| ioerr("fchmod", &tmp, e))?;
        to.sync_data().map_err(|e| ioerr("fdatasync", &tmp, e))?;
        // No replacing: the name was checked absent.
        std::fs::hard_link(&tmp, dest).map_err(|e| ioerr("linkat", dest, e))?;
        std::fs::remove_file(&tmp).map_err(|e| ioerr("unlinkat", &tmp, e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release() {
        let v = parse_os_release(
            "NAME=TestOS\nPRETTY_NAME=\"TestOS 42\"\n# x=y\nID='a b'\nBAD\nESC=a\\ b\n",
        );
        assert_eq!(v["PRETTY_NAME"], "TestOS 42");
        assert_eq!(v["ID"], "a b");
        assert_eq!(v["ESC"], "a b");
        assert!(!v.contains_key("# x"));
    }
}
