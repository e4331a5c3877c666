//! Upgrading a stateroot from its origin (`OstreeSysrootUpgrader`): pull the origin's ref
//! through the pull engine (with the remote's signature policy and ostree's downgrade
//! protection), follow end-of-life rebases, then deploy.

use super::Sysroot;
use super::deploy::{DeployTreeOpts, SimpleWriteFlags};
use super::deployment::Deployment;
use crate::keyfile::KeyFile;
use crate::pull::PullOptions;
use crate::repo::refs::parse_refspec;
use crate::repo::remote::RemotesDir;
use crate::{Checksum, Error, Result};

/// Flags of [`Upgrader::new`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpgraderFlags {
    /// Do not refuse origins with `unconfigured-state` (`switch`).
    pub ignore_unconfigured: bool,
    /// Stage the deployment (finalized at shutdown).
    pub stage: bool,
}

/// Flags of [`Upgrader::pull`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpgraderPullFlags {
    /// Accept a commit older than the deployed one.
    pub allow_older: bool,
    /// Do not pull; use what the repository has (`--deploy-only`).
    pub synthetic: bool,
}

/// An upgrade in progress.
#[derive(Debug)]
pub struct Upgrader {
    osname: String,
    flags: UpgraderFlags,
    merge: Deployment,
    origin: KeyFile,
    origin_remote: Option<String>,
    origin_ref: String,
    override_csum: Option<Checksum>,
    new_revision: Option<Checksum>,
}

impl Upgrader {
    /// Prepare to upgrade `osname` (default: the booted stateroot).
    pub fn new(sysroot: &Sysroot, osname: Option<&str>, flags: UpgraderFlags) -> Result<Upgrader> {
        let booted = sysroot.booted_deployment();
        let osname = match osname {
            Some("") => return Err(Error::invalid("Invalid empty osname")),
            Some(o) => o.to_string(),
            None => match booted {
                Some(b) => b.osname.clone(),
                None => {
                    return Err(Error::invalid(
                        "Not currently booted into an OSTree system and no OS specified",
                    ));
                }
            },
        };
        let merge = sysroot
            .merge_deployment(Some(&osname))
            .ok_or_else(|| Error::not_found(format!("No previous deployment for OS '{osname}'")))?;
        let origin = merge.origin.clone().ok_or_else(|| {
            Error::not_found(format!(
                "No origin known for deployment {}.{}",
                merge.csum, merge.deployserial
            ))
        })?;
        let mut u = Upgrader {
            osname,
            flags,
            merge,
            origin,
            origin_remote: None,
            origin_ref: String::new(),
            override_csum: None,
            new_revision: None,
        };
        u.parse_refspec()?;
        Ok(u)
    }

    fn parse_refspec(&mut self) -> Result<()> {
        if !self.flags.ignore_unconfigured
            && let Some(s) = self.origin.get_string("origin", "unconfigured-state")
        {
            return Err(Error::invalid(format!("origin unconfigured-state: {s}")));
        }
        let refspec = self.origin.get_string("origin", "refspec").ok_or_else(|| {
            Error::invalid(
                "No origin/refspec in current deployment origin; cannot upgrade via ostree",
            )
        })?;
        let (remote, r) = parse_refspec(&refspec)?;
        self.origin_remote = remote;
        self.origin_ref = r;
        self.override_csum = match self.origin.get_string("origin", "override-commit") {
            Some(c) => Some(Checksum::from_hex(&c)?),
            None => None,
        };
        Ok(())
    }

    /// The origin being upgraded from (a copy).
    pub fn origin(&self) -> KeyFile {
        self.origin.clone()
    }

    /// Replace the origin (e.g. to switch refs) and re-read it.
    pub fn set_origin(&mut self, origin: KeyFile) -> Result<()> {
        self.origin = origin;
        self.parse_refspec()
    }

    /// The deployment configuration is merged from.
    pub fn merge_deployment(&self) -> &Deployment {
        &self.merge
    }

    /// The stateroot.
    pub fn osname(&self) -> &str {
        &self.osname
    }

    fn origin_refspec(&self) -> String {
        match &self.origin_remote {
            Some(r) => format!("{r}:{}", self.origin_ref),
            None => self.origin_ref.clone(),
        }
    }

    /// Pull the origin's ref (or override commit) and find the revision to deploy. Returns
    /// whether it differs from the merge deployment's commit
    /// (`ostree_sysroot_upgrader_pull`).
    pub async fn pull(&mut self, sysroot: &Sysroot, flags: UpgraderPullFlags) -> Result<bool> {
        let repo = sysroot.repo()?.clone();
        let from = Checksum::from_hex(&self.merge.csum)?;
        let remotes_dir = RemotesDir::for_sysroot(sysroot.path());
        let wanted = match &self.override_csum {
            Some(c) => c.to_hex(),
            None => self.origin_ref.clone(),
        };
        if let Some(remote) = self.origin_remote.clone()
            && !flags.synthetic
        {
            let opts = PullOptions {
                refs: vec![wanted],
                timestamp_check_from_rev: (!flags.allow_older).then(|| from.to_hex()),
                remotes_dir: remotes_dir.clone(),
                ..PullOptions::default()
            };
            // The pull checks the timestamp as soon as the commit object arrives, before any
            // of its content is fetched (as ostree does): an older commit leaves neither
            // content nor a moved ref behind.
            crate::pull::pull(&repo, &remote, opts).await?;
        }
        let mut refspec = self.origin_refspec();
        let rev = repo
            .resolve_rev(&refspec, false)
            .await?
            .ok_or_else(|| Error::not_found(format!("Refspec '{refspec}' not found")))?;
        let commit = repo.load_commit(&rev).await?;
        if let Some(new_ref) = commit
            .metadata
            .get("ostree.endoflife-rebase")
            .and_then(|v| v.as_str())
            .map(str::to_string)
        {
            if let Some(remote) = self.origin_remote.clone()
                && !flags.synthetic
            {
                let opts = PullOptions {
                    refs: vec![new_ref.clone()],
                    remotes_dir: remotes_dir.clone(),
                    ..PullOptions::default()
                };
                crate::pull::pull(&repo, &remote, opts).await?;
            }
            self.origin_ref = new_ref.clone();
            refspec = self.origin_refspec();
            self.origin.set("origin", "refspec", &refspec);
        }
        let new = match &self.override_csum {
            Some(c) => {
                repo.set_ref(self.origin_remote.as_deref(), &self.origin_ref, Some(*c))
                    .await?;
                *c
            }
            None => repo
                .resolve_rev(&refspec, false)
                .await?
                .ok_or_else(|| Error::not_found(format!("Refspec '{refspec}' not found")))?,
        };
        self.new_revision = Some(new);
        if new == from {
            return Ok(false);
        }
        if !flags.allow_older {
            let old_c = repo.load_commit(&from).await?;
            let new_c = repo.load_commit(&new).await?;
            crate::pull::compare_timestamps(&from, old_c.timestamp, &new, new_c.timestamp)?;
        }
        Ok(true)
    }

    /// Deploy the pulled revision (`ostree_sysroot_upgrader_deploy`).
    pub async fn deploy(&self, sysroot: &mut Sysroot) -> Result<()> {
        let rev = self
            .new_revision
            .ok_or_else(|| Error::Other("upgrader: nothing pulled".into()))?;
        let stage = self.flags.stage || std::env::var_os("OSTREE_EX_STAGE_DEPLOYMENTS").is_some();
        let opts = DeployTreeOpts::default();
        if stage {
            sysroot
                .stage_tree(
                    Some(&self.osname),
                    &rev,
                    Some(self.origin.clone()),
                    Some(&self.merge),
                    &opts,
                )
                .await?;
        } else {
            let d = sysroot
                .deploy_tree(
                    Some(&self.osname),
                    &rev,
                    Some(self.origin.clone()),
                    Some(&self.merge),
                    &opts,
                )
                .await?;
            sysroot
                .simple_write_deployment(
                    Some(&self.osname),
                    d,
                    Some(&self.merge),
                    SimpleWriteFlags::default(),
                )
                .await?;
        }
        Ok(())
    }
}
