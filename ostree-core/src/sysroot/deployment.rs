//! A deployment: one checked-out tree of a stateroot, with its origin and boot entry
//! (`OstreeDeployment`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::bootloader::BlsEntry;
use crate::keyfile::KeyFile;

/// The origin group holding transient state (`pinned`).
pub const ORIGIN_TRANSIENT_GROUP: &str = "libostree-transient";

/// Whether `/usr` of a deployment is writable, and how (`OstreeDeploymentUnlockedState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnlockedState {
    /// Read-only `/usr` (the normal state).
    #[default]
    None,
    /// Writable overlay kept across reboots (`origin` `unlocked=hotfix`).
    Hotfix,
    /// Writable overlay discarded at reboot.
    Development,
    /// Overlay prepared but mounted read-only.
    Transient,
}

impl UnlockedState {
    /// The name ostree prints and stores.
    pub fn as_str(self) -> &'static str {
        match self {
            UnlockedState::None => "none",
            UnlockedState::Hotfix => "hotfix",
            UnlockedState::Development => "development",
            UnlockedState::Transient => "transient",
        }
    }
}

static NEXT_IDENT: AtomicU64 = AtomicU64::new(1);

fn new_ident() -> u64 {
    NEXT_IDENT.fetch_add(1, Ordering::Relaxed)
}

/// A deployment. Two values are the *same deployment* when stateroot, commit and serial
/// agree ([`Deployment::same`]); [`Clone`] keeps the identity of the in-memory object (as a
/// reference would), while [`Deployment::duplicate`] makes a new one (`ostree_deployment_clone`),
/// which the boot configuration writer treats as changed.
#[derive(Clone, Debug)]
pub struct Deployment {
    ident: u64,
    /// Position in the deployment list (0 = default).
    pub index: usize,
    /// The stateroot (`osname`).
    pub osname: String,
    /// The commit checked out (hex).
    pub csum: String,
    /// Serial among deployments of the same commit in this stateroot.
    pub deployserial: u32,
    /// Checksum of kernel + initramfs (+ devicetree).
    pub bootcsum: String,
    /// Serial among deployments sharing `bootcsum` (the last part of `ostree=`).
    pub bootserial: u32,
    /// The boot entry (kernel arguments in `options`).
    pub bootconfig: BlsEntry,
    /// The `.origin` key file, if any.
    pub origin: Option<KeyFile>,
    /// Unlock state of `/usr`.
    pub unlocked: UnlockedState,
    /// A staged deployment (finalized at shutdown), not yet in the boot entries.
    pub staged: bool,
    /// Checksums of overlay initramfs images.
    pub overlay_initrds: Vec<String>,
}

impl Deployment {
    /// A new deployment record.
    pub fn new(
        index: usize,
        osname: &str,
        csum: &str,
        deployserial: u32,
        bootcsum: &str,
        bootserial: u32,
    ) -> Self {
        Deployment {
            ident: new_ident(),
            index,
            osname: osname.to_string(),
            csum: csum.to_string(),
            deployserial,
            bootcsum: bootcsum.to_string(),
            bootserial,
            bootconfig: BlsEntry::new(),
            origin: None,
            unlocked: UnlockedState::None,
            staged: false,
            overlay_initrds: Vec::new(),
        }
    }

    /// A copy that is a different object (`ostree_deployment_clone`).
    pub fn duplicate(&self) -> Self {
        Deployment {
            ident: new_ident(),
            ..self.clone()
        }
    }

    /// Whether `other` is this very object (or a [`Clone`] of it).
    pub fn is(&self, other: &Deployment) -> bool {
        self.ident == other.ident
    }

    /// Whether `other` names the same deployment (`ostree_deployment_equal`).
    pub fn same(&self, other: &Deployment) -> bool {
        self.osname == other.osname
            && self.csum == other.csum
            && self.deployserial == other.deployserial
    }

    /// `$csum.$deployserial`.
    pub fn dir_name(&self) -> String {
        format!("{}.{}", self.csum, self.deployserial)
    }

    /// The deployment directory relative to the sysroot.
    pub fn dirpath(&self) -> String {
        format!("ostree/deploy/{}/deploy/{}", self.osname, self.dir_name())
    }

    /// The origin file relative to the sysroot.
    pub fn origin_relpath(&self) -> String {
        format!("{}.origin", self.dirpath())
    }

    /// Pinned deployments are never garbage collected.
    pub fn is_pinned(&self) -> bool {
        self.origin
            .as_ref()
            .and_then(|o| o.get_bool(ORIGIN_TRANSIENT_GROUP, "pinned").ok().flatten())
            .unwrap_or(false)
    }

    /// The origin's `refspec`.
    pub fn origin_refspec(&self) -> Option<String> {
        self.origin
            .as_ref()
            .and_then(|o| o.get_string("origin", "refspec"))
    }

    /// A hash of the overlay initramfs set (`overlay_initrds_id`), `None` without any.
    pub fn overlay_initrds_id(&self) -> Option<String> {
        if self.overlay_initrds.is_empty() {
            return None;
        }
        Some(self.overlay_initrds.concat())
    }
}

/// Remove transient state from an origin (`ostree_deployment_origin_remove_transient_state`):
/// the whole `libostree-transient` group, and the `override-commit` and `unlocked` keys, none
/// of which an upgrade carries over.
pub fn origin_remove_transient_state(origin: &mut KeyFile) {
    origin.remove_group(ORIGIN_TRANSIENT_GROUP);
    origin.remove_key("origin", "override-commit");
    origin.remove_key("origin", "unlocked");
}

/// Parse a deployment directory name `CHECKSUM.SERIAL`.
pub fn parse_deploy_dir_name(name: &str) -> crate::Result<(String, u32)> {
    let bad = || {
        crate::Error::invalid(format!(
            "Invalid deploy name '{name}', expected CHECKSUM.TREESERIAL"
        ))
    };
    let (csum, serial) = name.split_once('.').ok_or_else(bad)?;
    if csum.is_empty()
        || !csum
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        || serial.is_empty()
        || !serial.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    Ok((csum.to_string(), serial.parse().map_err(|_| bad())?))
}
