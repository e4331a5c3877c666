//! The sysroot: a root filesystem holding `/ostree/repo` and deployments, and `/boot` with
//! the boot configuration that selects them (`OstreeSysroot`).
//!
//! # Layout (FORMATS.md §6)
//!
//! ```text
//! ostree/repo                                  the system repository (bare)
//! ostree/deploy/$os/var                        one /var per stateroot
//! ostree/deploy/$os/deploy/$csum.$serial       hardlink checkouts, and their .origin files
//! ostree/boot.B -> boot.B.S                    symlink farm: $os/$bootcsum/$bootserial -> deployment
//! boot/loader -> loader.B                      the boot configuration in use
//! boot/loader.B/entries/ostree-$N-$os.conf     one BLS entry per deployment
//! boot/ostree/$os-$bootcsum/                   kernel, initramfs, devicetree copies
//! ```
//!
//! # What is the truth
//!
//! The deployment list is read from the BLS entries of the boot configuration in use: the
//! `ostree=` argument of each entry names a boot link, which names a deployment directory.
//! Nothing else (not the deployment directories on disk, not refs) defines what boots.
//!
//! # Atomicity
//!
//! Every change is prepared beside the configuration in use and committed by one `rename`:
//! either of the `boot/loader` symlink (a new boot version `loader.(1-B)`, when entries
//! change), or of the `ostree/boot.B` symlink (a new sub-boot version, when only the
//! deployments behind unchanged entries change). Everything written is flushed with
//! `syncfs` before that rename. A process killed at any instant therefore leaves either the
//! old or the new configuration, each complete; leftovers are removed by the next cleanup.
//! Filesystems are never frozen (`FIFREEZE`): on shared machines that would stop everything
//! else; `syncfs` of the root and `/boot` filesystems gives the durability needed.
//!
//! # Concurrency
//!
//! Writers take the sysroot lock `ostree/lock` ([`Sysroot::lock`]), an exclusive
//! open-file-description lock compatible with the C ostree's.
//!
//! # Environment
//!
//! * `OSTREE_SYSROOT_DEBUG`: `mutable-deployments` (never set the immutable bit),
//!   `no-xattrs` (do not copy xattrs in the /etc merge), `no-dtb` (ignore devicetrees),
//!   `test-fifreeze` (fail where ostree's freeze watchdog test fails — without freezing);
//! * `OSTREE_SYSROOT_OPTS`: `skip-sync` (no global `sync()`; we never do one anyway);
//! * `OSTREE_EX_STAGE_DEPLOYMENTS`: upgrades stage their deployment;
//! * `OSTREE_BOOTID`, `OSTREE_REPO_TEST_ERROR=pre-commit`: the deployment-refs transaction
//!   behaves as ostree's repository transactions do in upstream's tests.

pub mod cleanup;
pub mod deploy;
pub mod deployment;
pub mod etcmerge;
pub mod fsutil;
pub mod kargs;
pub mod kernel;
mod loader;
pub mod prepare_root;
pub mod staged;
mod unlock;
pub mod upgrader;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::bootloader::BlsEntry;
pub use deployment::{Deployment, UnlockedState};
pub use kargs::KernelArgs;

use crate::keyfile::KeyFile;
use crate::objects::Metadata;
use crate::repo::Repo;
use crate::store::OpenOptions;
use crate::{Error, Result};

/// `OSTREE_PATH_BOOTED`: exists when the running system was booted by ostree.
pub const PATH_BOOTED: &str = "/run/ostree-booted";
/// The sysroot lock file, relative to the sysroot.
pub const LOCKFILE: &str = "ostree/lock";
/// Where a staged deployment is described (`a{sv}`).
pub const RUNSTATE_STAGED: &str = "/run/ostree/staged-deployment";
/// Its presence keeps a staged deployment from being finalized.
pub const RUNSTATE_STAGED_LOCKED: &str = "/run/ostree/staged-deployment-locked";
/// Overlay initramfs images staged for deployment.
pub const RUNSTATE_STAGED_INITRDS_DIR: &str = "/run/ostree/staged-initrds";
/// Per-deployment runtime state (unlock flags).
pub const DEPLOYMENT_RUNSTATE_DIR: &str = "/run/ostree/deployment-state";
/// Overlay initramfs images in `/boot`, relative to it.
pub const BOOT_INITRAMFS_OVERLAYS: &str = "ostree/initramfs-overlays";
/// Written to `/boot` when finalizing a staged deployment failed.
pub const FINALIZE_STAGED_FAILURE_PATH: &str = "ostree/finalize-failure.stamp";

/// Flags from `OSTREE_SYSROOT_DEBUG`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugFlags {
    /// `mutable-deployments`: do not make deployments immutable.
    pub mutable_deployments: bool,
    /// `test-fifreeze`: exercise the failure path of the (never used) freeze watchdog.
    pub test_fifreeze: bool,
    /// `no-xattrs`: do not copy extended attributes.
    pub no_xattrs: bool,
    /// `no-dtb`: ignore devicetrees in trees.
    pub no_dtb: bool,
}

impl DebugFlags {
    /// Parse a `g_parse_debug_string` list (`a,b:c d`), unknown keys ignored.
    pub fn parse(s: &str) -> DebugFlags {
        let mut f = DebugFlags::default();
        for k in s.split([',', ':', ';', ' ', '\t']) {
            let k = k.trim().to_ascii_lowercase().replace('_', "-");
            match k.as_str() {
                "mutable-deployments" => f.mutable_deployments = true,
                "test-fifreeze" => f.test_fifreeze = true,
                "no-xattrs" => f.no_xattrs = true,
                "no-dtb" => f.no_dtb = true,
                "all" => {
                    f = DebugFlags {
                        mutable_deployments: true,
                        test_fifreeze: true,
                        no_xattrs: true,
                        no_dtb: true,
                    }
                }
                _ => {}
            }
        }
        f
    }

    /// From the environment.
    pub fn from_env() -> DebugFlags {
        DebugFlags::parse(&std::env::var("OSTREE_SYSROOT_DEBUG").unwrap_or_default())
    }
}

/// A handler for the messages ostree sends to the journal (the CLI prints them).
pub type MessageHandler = Arc<dyn Fn(&str) + Send + Sync>;

/// A sysroot.
pub struct Sysroot {
    path: PathBuf,
    debug: DebugFlags,
    root_is_ostree_booted: bool,
    root_dev_ino: (u64, u64),
    initialized: bool,
    lock: Option<fsutil::LockFile>,
    repo: Option<Repo>,
    loaded: bool,
    bootversion: u32,
    subbootversion: u32,
    deployments: Vec<Deployment>,
    booted: Option<Deployment>,
    staged: Option<Deployment>,
    staged_data: Option<Metadata>,
    is_physical: bool,
    on_message: Option<MessageHandler>,
}

impl std::fmt::Debug for Sysroot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysroot")
            .field("path", &self.path)
            .field("bootversion", &self.bootversion)
            .field("subbootversion", &self.subbootversion)
            .field("deployments", &self.deployments.len())
            .finish()
    }
}

/// glibc's `strverscmp`: compare strings with embedded numbers naturally.
#[cfg(test)]
fn strverscmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    const S_N: usize = 0;
    const S_I: usize = 3;
    const S_F: usize = 6;
    const S_Z: usize = 9;
    const CMP: i32 = 2;
    const LEN: i32 = 3;
    const NEXT: [usize; 12] = [S_N, S_I, S_Z, S_N, S_I, S_I, S_N, S_F, S_F, S_N, S_F, S_Z];
    const RES: [i32; 36] = [
        CMP, CMP, CMP, CMP, LEN, CMP, CMP, CMP, CMP, //
        CMP, -1, -1, 1, LEN, LEN, 1, LEN, LEN, //
        CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, //
        CMP, 1, 1, -1, CMP, CMP, -1, CMP, CMP,
    ];
    let pa = a.as_bytes();
    let pb = b.as_bytes();
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let class = |c: u8| usize::from(c == b'0') + usize::from(c.is_ascii_digit());
    let mut i = 0;
    let mut c1 = at(pa, 0);
    let mut c2 = at(pb, 0);
    let mut state = S_N + class(c1);
    while c1 == c2 {
        if c1 == 0 {
            return Ordering::Equal;
        }
        state = NEXT[state];
        i += 1;
        c1 = at(pa, i);
        c2 = at(pb, i);
        state += class(c1);
    }
    let diff = i32::from(c1) - i32::from(c2);
    let r = RES[state * 3 + class(c2)];
    let v = match r {
        CMP => diff,
        LEN => {
            let mut j = i + 1;
            let mut k = i + 1;
            loop {
                let d1 = at(pa, j).is_ascii_digit();
                j += 1;
                if !d1 {
                    break if at(pb, k).is_ascii_digit() { -1 } else { diff };
                }
                let d2 = at(pb, k).is_ascii_digit();
                k += 1;
                if !d2 {
                    break 1;
                }
            }
        }
        other => other,
    };
    v.cmp(&0).then(Ordering::Equal)
}

/// The value of the first `ostree=` argument of an entry's `options`
/// (`get_ostree_kernel_arg_from_config`: split on single spaces).
pub fn entry_ostree_karg(e: &BlsEntry) -> Option<&str> {
    e.options()?
        .split(' ')
        .find_map(|o| o.strip_prefix("ostree="))
}

/// Parse `ostree=/ostree/boot.B/$os/$bootcsum/$serial`.
fn parse_bootlink(link: &str) -> Result<(u32, String, String, u32)> {
    let bad = || {
        Error::invalid(format!(
            "Invalid ostree= argument '{link}', expected ostree=/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL"
        ))
    };
    let rest = link.strip_prefix("/ostree/boot").ok_or_else(bad)?;
    let mut chars = rest.chars();
    chars.next().ok_or_else(bad)?;
    let rest = chars.as_str();
    let parts: Vec<&str> = rest.split('/').collect();
    let [bv, os, csum, serial] = parts.as_slice() else {
        return Err(bad());
    };
    if !matches!(*bv, "0" | "1")
        || os.is_empty()
        || csum.is_empty()
        || serial.is_empty()
        || !serial.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    Ok((
        bv.parse().map_err(|_| bad())?,
        os.to_string(),
        csum.to_string(),
        serial.parse().map_err(|_| bad())?,
    ))
}

fn read_link_string(p: &Path) -> Result<String> {
    let t = std::fs::read_link(p).map_err(|e| Error::io_path("readlinkat", p, e))?;
    Ok(t.to_string_lossy().into_owned())
}

impl Sysroot {
    /// A sysroot at `path` (not yet loaded).
    pub fn new(path: impl Into<PathBuf>) -> Sysroot {
        Sysroot {
            path: path.into(),
            debug: DebugFlags::from_env(),
            root_is_ostree_booted: false,
            root_dev_ino: (0, 0),
            initialized: false,
            lock: None,
            repo: None,
            loaded: false,
            bootversion: 0,
            subbootversion: 0,
            deployments: Vec::new(),
            booted: None,
            staged: None,
            staged_data: None,
            is_physical: false,
            on_message: None,
        }
    }

    /// The sysroot's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An absolute path inside the sysroot.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Debug flags in effect.
    pub fn debug_flags(&self) -> DebugFlags {
        self.debug
    }

    /// Override the debug flags (tests).
    pub fn set_debug_flags(&mut self, f: DebugFlags) {
        self.debug = f;
    }

    /// Receive the messages ostree would send to the journal.
    pub fn set_message_handler(&mut self, h: MessageHandler) {
        self.on_message = Some(h);
    }

    pub(crate) fn emit(&self, msg: &str) {
        if let Some(h) = &self.on_message {
            h(msg);
        }
    }

    /// `ostree_sysroot_initialize`: find out whether this sysroot is the booted root.
    pub fn initialize(&mut self) -> Result<()> {
        if self.initialized {
            return Ok(());
        }
        let md =
            std::fs::metadata(&self.path).map_err(|e| Error::io_path("opendir", &self.path, e))?;
        if !md.is_dir() {
            return Err(Error::invalid(format!(
                "opendir({}): Not a directory",
                self.path.display()
            )));
        }
        let root = std::fs::metadata("/").map_err(|e| Error::io_path("stat", "/", e))?;
        self.root_dev_ino = (root.dev(), root.ino());
        let booted = Path::new(PATH_BOOTED).exists();
        self.root_is_ostree_booted = booted && root.dev() == md.dev() && root.ino() == md.ino();
        self.initialized = true;
        Ok(())
    }

    /// Whether this sysroot is the running system's root, booted by ostree.
    pub fn is_booted(&self) -> bool {
        self.root_is_ostree_booted
    }

    /// Take the sysroot lock, waiting for it. `on_wait` is called (once right away, then
    /// every 3 seconds) while another process holds it.
    pub fn lock(&mut self, on_wait: &dyn Fn()) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        self.initialize()?;
        let path = self.join(LOCKFILE);
        if let Some(l) = fsutil::LockFile::lock(&path, false)? {
            self.lock = Some(l);
            return Ok(());
        }
        on_wait();
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(fsutil::LockFile::lock(&p2, true));
        });
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(3)) {
                Ok(r) => {
                    self.lock = r?;
                    if self.lock.is_none() {
                        return Err(Error::Locked(format!("Locking {}", path.display())));
                    }
                    return Ok(());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => on_wait(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Locked(format!("Locking {}", path.display())));
                }
            }
        }
    }

    /// Try to take the sysroot lock without waiting; `Ok(false)` when held elsewhere.
    pub fn try_lock(&mut self) -> Result<bool> {
        if self.lock.is_some() {
            return Ok(true);
        }
        self.initialize()?;
        self.lock = fsutil::LockFile::lock(&self.join(LOCKFILE), false)?;
        Ok(self.lock.is_some())
    }

    /// Release the sysroot lock.
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// `ostree_sysroot_ensure_initialized`: create `ostree/repo` (bare) and `ostree/deploy`.
    pub async fn ensure_initialized(&mut self) -> Result<()> {
        fsutil::mkdir_p(&self.join("ostree/repo"), 0o755)?;
        fsutil::mkdir_p(&self.join("ostree/deploy"), 0o755)?;
        let url = crate::registry::repo_url(&self.join("ostree/repo").to_string_lossy())?;
        Repo::create(&url, crate::store::RepoMode::Bare, OpenOptions::default()).await?;
        Ok(())
    }

    async fn ensure_repo(&mut self) -> Result<()> {
        if self.repo.is_some() {
            return Ok(());
        }
        let p = self.join("ostree/repo");
        if !p.is_dir() {
            return Err(Error::not_found(format!(
                "opendir(ostree/repo): No such file or directory ({})",
                p.display()
            )));
        }
        let url = crate::registry::repo_url(&p.to_string_lossy())?;
        self.repo = Some(Repo::open(&url, OpenOptions::default()).await?);
        Ok(())
    }

    /// The system repository (after [`Sysroot::load`]).
    pub fn repo(&self) -> Result<&Repo> {
        self.repo
            .as_ref()
            .ok_or_else(|| Error::Other("sysroot repository not loaded".into()))
    }

    /// `ostree_sysroot_load`: open the repository and read the boot configuration.
    pub async fn load(&mut self) -> Result<()> {
        self.load_inner()
            .await
            .map_err(|e| Error::Other(format!("loading sysroot: {e}")))
    }

    async fn load_inner(&mut self) -> Result<()> {
        self.initialize()?;
        self.ensure_repo().await?;
        self.check_bootloader_setting()?;
        let deploy = self.join("ostree/deploy");
        std::fs::metadata(&deploy).map_err(|e| Error::io("fstatat(ostree/deploy)", e))?;
        self.booted = None;
        self.staged = None;
        self.staged_data = None;
        let bootversion = self.read_current_bootversion()?;
        let subbootversion = self.read_subbootversion(bootversion)?;
        let configs = self.read_boot_loader_configs(bootversion)?;
        let mut deployments = Vec::new();
        for c in configs {
            let arg = entry_ostree_karg(&c)
                .ok_or_else(|| Error::invalid("No ostree= kernel argument found"))?
                .to_string();
            let mut d = self.parse_deployment(&arg)?;
            for i in c.overlay_initrds() {
                let i = i.to_string();
                let base = i.rsplit('/').next().unwrap_or(&i);
                if base.len() != 64 + 4 {
                    return Err(Error::invalid(format!(
                        "Malformed overlay initrd filename: {base}"
                    )));
                }
                d.overlay_initrds.push(base[..64].to_string());
            }
            d.bootconfig = c;
            deployments.push(d);
        }
        if self.root_is_ostree_booted && self.booted.is_none() {
            return Err(Error::invalid(
                if fsutil::lexists(&self.join("boot/loader")) {
                    format!(
                        "Unexpected state: {PATH_BOOTED} found and in / sysroot, but bootloader entry not found"
                    )
                } else {
                    format!("Unexpected state: {PATH_BOOTED} found, but no /boot/loader directory")
                },
            ));
        }
        self.reload_staged()?;
        if let Some(s) = &self.staged {
            deployments.insert(0, s.clone());
        }
        for (i, d) in deployments.iter_mut().enumerate() {
            d.index = i;
        }
        if let Some(b) = &mut self.booted
            && let Some(d) = deployments.iter().find(|d| d.is(b))
        {
            *b = d.clone();
        }
        if let Some(s) = &mut self.staged {
            s.index = 0;
        }
        if !self.loaded {
            self.is_physical = self.booted.is_none() && !fsutil::lexists(&self.join("sysroot"));
            self.loaded = true;
        }
        self.bootversion = bootversion;
        self.subbootversion = subbootversion;
        self.deployments = deployments;
        Ok(())
    }

    fn read_current_bootversion(&self) -> Result<u32> {
        let p = self.join("boot/loader");
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("fstatat(boot/loader)", e)),
            Ok(m) if !m.file_type().is_symlink() => {
                Err(Error::invalid("Not a symbolic link: boot/loader"))
            }
            Ok(_) => match read_link_string(&p)?.as_str() {
                "loader.0" => Ok(0),
                "loader.1" => Ok(1),
                t => Err(Error::invalid(format!(
                    "Invalid target '{t}' in boot/loader"
                ))),
            },
        }
    }

    pub(crate) fn read_subbootversion(&self, bootversion: u32) -> Result<u32> {
        let name = format!("ostree/boot.{bootversion}");
        let p = self.join(&name);
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io(format!("fstatat({name})"), e)),
            Ok(_) => {
                let t = read_link_string(&p)?;
                if t.ends_with(".0") {
                    Ok(0)
                } else if t.ends_with(".1") {
                    Ok(1)
                } else {
                    Err(Error::invalid(format!("Invalid target '{t}' in {name}")))
                }
            }
        }
    }

    /// The BLS entries `ostree-*.conf` of `loader.N`, sorted highest version first.
    pub fn read_boot_loader_configs(&self, bootversion: u32) -> Result<Vec<BlsEntry>> {
        crate::bootloader::read_entries(&self.path, bootversion)
    }

    fn parse_deployment(&mut self, bootlink: &str) -> Result<Deployment> {
        let (_bv, osname, bootcsum, treebootserial) = parse_bootlink(bootlink)?;
        let prefix = format!("Parsing deployment {bootlink} in stateroot '{osname}'");
        let wrap = |e: Error| Error::Other(format!("{prefix}: {e}"));
        let rel = bootlink.trim_start_matches('/');
        let linkpath = self.join(rel);
        let target = read_link_string(&linkpath).map_err(wrap)?;
        let base = target.rsplit('/').next().unwrap_or(&target);
        let (csum, serial) = deployment::parse_deploy_dir_name(base).map_err(wrap)?;
        let md = std::fs::metadata(&linkpath)
            .map_err(|e| wrap(Error::io_path("opendir", &linkpath, e)))?;
        if !md.is_dir() {
            return Err(wrap(Error::invalid(format!(
                "opendir({rel}): Not a directory"
            ))));
        }
        let is_booted = self.root_is_ostree_booted
            && self.booted.is_none()
            && (md.dev(), md.ino()) == self.root_dev_ino;
        let mut d = Deployment::new(0, &osname, &csum, serial, &bootcsum, treebootserial);
        self.load_origin(&mut d).map_err(wrap)?;
        d.unlocked = UnlockedState::None;
        let runstate = Path::new(DEPLOYMENT_RUNSTATE_DIR).join(d.dir_name());
        if fsutil::lexists(&runstate.join("unlocked-development")) {
            d.unlocked = UnlockedState::Development;
        } else if fsutil::lexists(&runstate.join("unlocked-transient")) {
            d.unlocked = UnlockedState::Transient;
        } else if d
            .origin
            .as_ref()
            .and_then(|o| o.get_string("origin", "unlocked"))
            .as_deref()
            == Some("hotfix")
        {
            d.unlocked = UnlockedState::Hotfix;
        }
        if is_booted {
            self.booted = Some(d.clone());
        }
        Ok(d)
    }

    pub(crate) fn load_origin(&self, d: &mut Deployment) -> Result<()> {
        let rel = d.origin_relpath();
        match std::fs::read(self.join(&rel)) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| Error::corrupted(format!("Parsing {rel}: invalid UTF-8")))?;
                let kf = KeyFile::parse(&text)
                    .map_err(|e| Error::Other(format!("Parsing {rel}: {e}")))?;
                d.origin = Some(kf);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("openat({rel})"), e)),
        }
    }

    /// The boot version in use (`boot/loader -> loader.N`).
    pub fn bootversion(&self) -> u32 {
        self.bootversion
    }

    /// The sub-boot version in use (`ostree/boot.N -> boot.N.S`).
    pub fn subbootversion(&self) -> u32 {
        self.subbootversion
    }

    /// The deployments, default first (a staged deployment, if any, at index 0).
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// The deployment the running system booted, if this sysroot is booted.
    pub fn booted_deployment(&self) -> Option<&Deployment> {
        self.booted.as_ref()
    }

    /// The booted deployment, or ostree's error.
    pub fn require_booted_deployment(&self) -> Result<&Deployment> {
        self.booted
            .as_ref()
            .ok_or_else(|| Error::invalid("Not currently booted into an OSTree system"))
    }

    /// The staged deployment, if any.
    pub fn staged_deployment(&self) -> Option<&Deployment> {
        self.staged.as_ref()
    }

    /// Whether this is a physical root (not a deployment's `/sysroot` view).
    pub fn is_physical(&self) -> bool {
        self.is_physical
    }

    /// A deployment's directory.
    pub fn deployment_directory(&self, d: &Deployment) -> PathBuf {
        self.join(&d.dirpath())
    }

    /// `ostree_sysroot_query_deployments_for`: the pending (newer than booted) and rollback
    /// (older) deployments of `osname` (default: the booted one's).
    pub fn query_deployments_for(
        &self,
        osname: Option<&str>,
    ) -> (Option<Deployment>, Option<Deployment>) {
        let osname = match osname {
            Some(o) => o.to_string(),
            None => match &self.booted {
                Some(b) => b.osname.clone(),
                None => return (None, None),
            },
        };
        let mut pending = None;
        let mut rollback = None;
        let mut found_booted = false;
        for d in &self.deployments {
            if d.osname != osname {
                continue;
            }
            if self.booted.as_ref().is_some_and(|b| b.same(d)) {
                found_booted = true;
                continue;
            }
            if !found_booted && pending.is_none() {
                pending = Some(d.clone());
            } else if found_booted && rollback.is_none() {
                rollback = Some(d.clone());
            }
        }
        (pending, rollback)
    }

    /// `ostree_sysroot_get_merge_deployment`: the booted deployment if it is of `osname`,
    /// else the first deployment of `osname`.
    pub fn merge_deployment(&self, osname: Option<&str>) -> Option<Deployment> {
        let osname = match osname {
            Some(o) => o.to_string(),
            None => self.booted.as_ref()?.osname.clone(),
        };
        if let Some(b) = &self.booted
            && b.osname == osname
        {
            return Some(b.clone());
        }
        self.query_deployments_for(Some(&osname)).0
    }

    /// A deployment by index, with ostree's errors.
    pub fn indexed_deployment(&self, index: i64) -> Result<Deployment> {
        if index < 0 {
            return Err(Error::not_found(format!("Invalid index {index}")));
        }
        self.deployments
            .get(index as usize)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Out of range deployment index {index}, expected < {}",
                    self.deployments.len()
                ))
            })
    }

    /// Touch `ostree/deploy` so watchers notice a change (`_ostree_sysroot_bump_mtime`).
    pub(crate) fn bump_mtime(&self) -> Result<()> {
        let p = self.join("ostree/deploy");
        let now = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_NOW,
            },
        };
        rustix::fs::utimensat(rustix::fs::CWD, &p, &now, rustix::fs::AtFlags::empty())
            .map_err(|e| Error::io("futimens", e.into()))
    }

    /// `ostree_sysroot_init_osname`: create a stateroot with its `/var`.
    pub fn init_osname(&self, osname: &str) -> Result<()> {
        if osname.is_empty() || osname.contains('/') || osname == "." || osname == ".." {
            return Err(Error::invalid(format!("Invalid osname '{osname}'")));
        }
        let dir = self.join(&format!("ostree/deploy/{osname}"));
        let mk = |rel: &str, mode: u32| -> Result<()> {
            let p = dir.join(rel);
            let mut b = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
            b.create(&p).map_err(|e| {
                Error::io(
                    format!(
                        "Creating {}",
                        if rel.is_empty() {
                            format!("ostree/deploy/{osname}")
                        } else {
                            rel.to_string()
                        }
                    ),
                    e,
                )
            })
        };
        mk("", 0o777)?;
        mk("var", 0o777)?;
        mk("var/tmp", 0o777)?;
        std::fs::set_permissions(
            dir.join("var/tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .map_err(|e| Error::io("fchmod var/tmp", e))?;
        mk("var/lib", 0o777)?;
        mk("var/log", 0o755)?;
        std::os::unix::fs::symlink("../run", dir.join("var/run"))
            .map_err(|e| Error::io("Symlinking var/run", e))?;
        std::os::unix::fs::symlink("../run/lock", dir.join("var/lock"))
            .map_err(|e| Error::io("Symlinking var/lock", e))?;
        self.bump_mtime()
    }

    /// Replace a deployment's origin file now and bump the mtime
    /// (`ostree_sysroot_write_origin_file`); `None` writes the deployment's own origin.
    pub fn write_origin_file(&self, d: &Deployment, origin: Option<&KeyFile>) -> Result<()> {
        self.write_origin_file_internal(d, origin, true)?;
        self.bump_mtime()
    }

    pub(crate) fn write_origin_file_internal(
        &self,
        d: &Deployment,
        origin: Option<&KeyFile>,
        sync: bool,
    ) -> Result<()> {
        let Some(o) = origin.or(d.origin.as_ref()) else {
            return Ok(());
        };
        let p = self.join(&d.origin_relpath());
        fsutil::write_file_atomic(&p, o.to_string().as_bytes(), 0o644, sync)
            .map_err(|e| Error::Other(format!("Writing out origin file: {e}")))
    }

    /// Pin or unpin a deployment (`ostree_sysroot_deployment_set_pinned`).
    pub fn deployment_set_pinned(&self, d: &Deployment, pinned: bool) -> Result<()> {
        if d.is_pinned() == pinned {
            return Ok(());
        }
        if d.staged {
            return Err(Error::invalid("Cannot pin staged deployment"));
        }
        let mut origin = d.origin.clone().unwrap_or_default();
        if pinned {
            origin.set(deployment::ORIGIN_TRANSIENT_GROUP, "pinned", "true");
        } else {
            origin.remove_key(deployment::ORIGIN_TRANSIENT_GROUP, "pinned");
        }
        self.write_origin_file(d, Some(&origin))
    }

    /// Make a deployment's files mutable or not (`ostree_sysroot_deployment_set_mutable`).
    pub fn deployment_set_mutable(&self, d: &Deployment, mutable: bool) -> Result<()> {
        let fd = fsutil::open_dir(&self.deployment_directory(d))?;
        fsutil::set_immutable(std::os::fd::AsFd::as_fd(&fd), !mutable)
    }

    /// `ostree_sysroot_origin_new_from_refspec`.
    pub fn origin_new_from_refspec(refspec: &str) -> KeyFile {
        let mut kf = KeyFile::new();
        kf.set("origin", "refspec", refspec);
        kf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn strverscmp_like_glibc() {
        assert_eq!(strverscmp("2", "10"), Less);
        assert_eq!(strverscmp("10", "9"), Greater);
        assert_eq!(strverscmp("1", "1"), Equal);
        assert_eq!(strverscmp("a1", "a2"), Less);
        assert_eq!(strverscmp("000", "00"), Less);
        assert_eq!(strverscmp("00", "01"), Less);
        assert_eq!(strverscmp("01", "010"), Less);
        assert_eq!(strverscmp("010", "09"), Less);
        assert_eq!(strverscmp("09", "0"), Less);
        assert_eq!(strverscmp("9", "10"), Less);
        assert_eq!(strverscmp("1.10", "1.9"), Greater);
    }

    #[test]
    fn bootlinks() {
        let (bv, os, c, s) = parse_bootlink("/ostree/boot.1/testos/abc/0").unwrap();
        assert_eq!((bv, os.as_str(), c.as_str(), s), (1, "testos", "abc", 0));
        assert!(parse_bootlink("/ostree/boot.2/testos/abc/0").is_err());
        assert!(parse_bootlink("/ostree/boot.1/testos/abc").is_err());
    }

    #[test]
    fn debug_flags() {
        let f = DebugFlags::parse("mutable-deployments,no-dtb");
        assert!(f.mutable_deployments && f.no_dtb && !f.no_xattrs);
    }
}
