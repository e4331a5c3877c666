//! Staged deployments: `/run/ostree/staged-deployment` (FORMATS.md §6.7).
//!
//! The file is an `a{sv}`: `target` and `merge-deployment` (each `a{sv}` with `name`
//! `"$csum.$serial"`, `osname`, `bootcsum`), and optionally `kargs` (`as`) and
//! `overlay-initrds` (`as`). It lives on `/run`, so a reboot without finalization forgets it;
//! `ostree admin finalize-staged` (at shutdown) completes the deployment.

use super::deployment::{Deployment, parse_deploy_dir_name};
use super::{BlsEntry, KernelArgs, RUNSTATE_STAGED, Sysroot};
use crate::gvariant::Variant;
use crate::objects::Metadata;
use crate::{Error, Result};

/// A deployment as the staged file records it.
pub fn serialize_deployment(d: &Deployment) -> Variant {
    let mut m = Metadata::new();
    m.insert("name", Variant::Str(d.dir_name()));
    m.insert("osname", Variant::Str(d.osname.clone()));
    m.insert("bootcsum", Variant::Str(d.bootcsum.clone()));
    m.to_variant()
}

fn require_str(m: &Metadata, key: &str) -> Result<String> {
    m.get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("Missing key: {key}")))
}

/// The reverse of [`serialize_deployment`] (the deployment may not exist on disk).
pub fn deserialize_deployment(v: &Variant) -> Result<Deployment> {
    let m = Metadata::from_variant(v)?;
    let name = require_str(&m, "name")?;
    let bootcsum = require_str(&m, "bootcsum")?;
    let osname = require_str(&m, "osname")?;
    let (csum, serial) = parse_deploy_dir_name(&name)?;
    Ok(Deployment::new(0, &osname, &csum, serial, &bootcsum, 0))
}

/// The staged file's contents.
pub fn staged_data(
    target: &Deployment,
    merge: Option<&Deployment>,
    kargs: Option<&[String]>,
    overlay_initrds: &[String],
) -> Metadata {
    let mut m = Metadata::new();
    m.insert("target", serialize_deployment(target));
    if let Some(md) = merge {
        m.insert("merge-deployment", serialize_deployment(md));
    }
    if let Some(k) = kargs {
        m.insert("kargs", Variant::str_array(k));
    }
    if !overlay_initrds.is_empty() {
        m.insert("overlay-initrds", Variant::str_array(overlay_initrds));
    }
    m
}

impl Sysroot {
    /// Read the staged deployment from `/run` (booted systems only).
    pub(crate) fn reload_staged(&mut self) -> Result<()> {
        self.staged = None;
        self.staged_data = None;
        if !self.root_is_ostree_booted {
            return Ok(());
        }
        let bytes = match std::fs::read(RUNSTATE_STAGED) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::io(
                    format!("Loading staged deployment: openat({RUNSTATE_STAGED})"),
                    e,
                ));
            }
        };
        let data = Metadata::from_bytes(&bytes)
            .map_err(|e| Error::Other(format!("Loading staged deployment: {e}")))?;
        let Some(target) = data.get("target") else {
            return Ok(());
        };
        let mut staged = deserialize_deployment(target)
            .map_err(|e| Error::Other(format!("Loading staged deployment: {e}")))?;
        let kargs = data.get("kargs").and_then(|v| v.as_str_array());
        let mut bc = BlsEntry::new();
        if let Some(k) = &kargs {
            let mut ka = KernelArgs::new();
            ka.append_all(k);
            bc.set("options", &ka.to_string());
        }
        staged.bootconfig = bc;
        self.load_origin(&mut staged)?;
        staged.overlay_initrds = data
            .get("overlay-initrds")
            .and_then(|v| v.as_str_array())
            .unwrap_or_default();
        staged.staged = true;
        self.staged = Some(staged);
        self.staged_data = Some(data);
        Ok(())
    }
}
