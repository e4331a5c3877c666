//! `ostree admin`: deployments on a sysroot (`ot-admin-builtin-*.c`). The work is done by
//! [`ostree_core::sysroot`]; these handlers parse options, load and lock the sysroot as
//! `ostree_admin_option_context_parse` does, and print what ostree prints.

use std::sync::Arc;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::keyfile::KeyFile;
use ostree_core::sysroot::deploy::{DeployTreeOpts, SimpleWriteFlags};
use ostree_core::sysroot::deployment::{Deployment, UnlockedState, origin_remove_transient_state};
use ostree_core::sysroot::upgrader::{Upgrader, UpgraderFlags, UpgraderPullFlags};
use ostree_core::sysroot::{KernelArgs, RUNSTATE_STAGED_LOCKED, Sysroot};

use crate::opts::{AdminFlags, Invocation, eprint_text, print_text};

/// Whether the current process runs as root.
fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

/// `ostree_admin_option_context_parse` + `ostree_admin_sysroot_load`: the sysroot of this
/// invocation, locked unless the command is `UNLOCKED`, loaded unless `NO_LOAD`.
pub(crate) async fn open_sysroot(inv: &Invocation) -> anyhow::Result<Sysroot> {
    let flags = inv.admin_flags().unwrap_or(AdminFlags::NONE);
    let mut sysroot = Sysroot::new(inv.sysroot_path());
    sysroot.set_message_handler(Arc::new(|m: &str| print_text(&format!("{m}\n"))));
    sysroot.initialize()?;
    if !flags.contains(AdminFlags::NO_LOAD) {
        load_sysroot(&mut sysroot, flags).await?;
    }
    Ok(sysroot)
}

/// `ostree_admin_sysroot_load`.
pub(crate) async fn load_sysroot(sysroot: &mut Sysroot, flags: AdminFlags) -> anyhow::Result<()> {
    if !flags.contains(AdminFlags::UNLOCKED) {
        sysroot.lock(&|| print_text("Waiting for sysroot lock...\n"))?;
    }
    sysroot.load().await?;
    if flags.contains(AdminFlags::SUPERUSER) && sysroot.booted_deployment().is_some() && !is_root()
    {
        bail!("You must be root to perform this command");
    }
    Ok(())
}

fn pos(inv: &Invocation) -> &[String] {
    inv.positionals()
}

/// C's `atoi`: leading blanks, sign, digits; anything else stops (0 when none).
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let v: i64 = digits.parse::<i64>().unwrap_or(0).min(i64::from(i32::MAX));
    if neg { -v } else { v }
}

/// `ostree admin --print-current-dir`.
pub fn print_current_dir(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let flags = inv.admin_flags().unwrap_or(AdminFlags::NONE);
        let mut sysroot = Sysroot::new(inv.sysroot_path());
        sysroot.initialize()?;
        load_sysroot(&mut sysroot, flags).await?;
        let Some(first) = sysroot.deployments().first() else {
            bail!("Unable to find a deployment in sysroot");
        };
        print_text(&format!(
            "{}\n",
            sysroot.deployment_directory(first).display()
        ));
        Ok(())
    })
}

/// `ostree admin init-fs`.
pub fn init_fs(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let Some(path) = pos(&inv).first().cloned() else {
            return Err(inv.usage_error("PATH must be specified"));
        };
        let root = std::path::Path::new(&path);
        let md = std::fs::metadata(root).with_context(|| format!("opendir({path})"))?;
        if !md.is_dir() {
            bail!("opendir({path}): Not a directory");
        }
        let mkdir = |rel: &str, mode: u32| -> anyhow::Result<()> {
            let p = root.join(rel);
            if !p.exists() {
                let mut b = std::fs::DirBuilder::new();
                b.recursive(true);
                std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
                b.create(&p).with_context(|| format!("mkdir({rel})"))?;
            }
            Ok(())
        };
        mkdir("boot", 0o755)?;
        if !inv.flag("modern") {
            for d in ["boot", "dev", "home", "proc", "run", "sys"] {
                mkdir(d, 0o755)?;
            }
            mkdir("root", 0o700)?;
            mkdir("tmp", 0o1777)?;
            std::fs::set_permissions(
                root.join("tmp"),
                std::os::unix::fs::PermissionsExt::from_mode(0o1777),
            )
            .context("chmod: tmp")?;
        }
        let mut sysroot = Sysroot::new(root);
        sysroot.ensure_initialized().await?;
        Ok(())
    })
}

/// `ostree admin os-init`.
pub fn os_init(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        sysroot.ensure_initialized().await?;
        let Some(osname) = pos(&inv).first().cloned() else {
            return Err(inv.usage_error("OSNAME must be specified"));
        };
        sysroot.init_osname(&osname)?;
        print_text(&format!(
            "ostree/deploy/{osname} initialized as OSTree root\n"
        ));
        Ok(())
    })
}

fn require_booted_or_osname(sysroot: &Sysroot, osname: Option<&str>) -> anyhow::Result<()> {
    if sysroot.booted_deployment().is_none() && osname.is_none() {
        bail!("Not currently booted into an OSTree system and no --os= argument given");
    }
    Ok(())
}

/// `ostree admin deploy`.
pub fn deploy(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let Some(refspec) = pos(&inv).first().cloned() else {
            return Err(inv.usage_error("REF/REV must be specified"));
        };
        if inv.flag("karg-proc-cmdline") && inv.flag("karg-none") {
            return Err(inv.usage_error("Can't specify both --karg-proc-cmdline and --karg-none"));
        }
        if inv.flag("karg-none") && inv.value("karg-delete").is_some() {
            return Err(inv.usage_error("Can't specify both --karg-none and --karg-delete"));
        }
        if inv.flag("no-merge") && inv.value("karg-delete").is_some() {
            return Err(inv.usage_error("Can't specify both --no-merge and --karg-delete"));
        }
        let osname = inv.value("os").map(str::to_string);
        require_booted_or_osname(&sysroot, osname.as_deref())
            .context("Looking for booted deployment")?;
        let origin = match inv.value("origin-file") {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("Failed to open file “{p}”"))?;
                KeyFile::parse(&text)?
            }
            None => Sysroot::origin_new_from_refspec(&refspec),
        };
        let repo = sysroot.repo()?.clone();
        let revision = super::resolve(&repo, &refspec).await?;
        let merge = if inv.flag("no-merge") {
            None
        } else {
            sysroot.merge_deployment(osname.as_deref())
        };
        sysroot
            .cleanup(false)
            .await
            .context("Performing initial cleanup")?;

        let karg = inv.values("karg");
        let karg_append = inv.values("karg-append");
        let karg_delete = inv.value("karg-delete");
        let mut kargs: Option<KernelArgs> = None;
        if inv.flag("karg-none") {
            kargs = Some(KernelArgs::new());
        } else if inv.flag("karg-proc-cmdline") {
            let mut k = KernelArgs::new();
            k.append_proc_cmdline()?;
            kargs = Some(k);
        } else if let Some(m) = &merge
            && (!karg.is_empty() || !karg_append.is_empty() || karg_delete.is_some())
        {
            let mut k = KernelArgs::new();
            if let Some(o) = m.bootconfig.get("options") {
                k.parse_append(o);
            }
            kargs = Some(k);
        }
        if !karg.is_empty() {
            kargs.get_or_insert_with(KernelArgs::new).replace_all(&karg);
        }
        if !karg_append.is_empty() {
            kargs
                .get_or_insert_with(KernelArgs::new)
                .append_all(&karg_append);
        }
        if let Some(d) = karg_delete {
            match &mut kargs {
                Some(k) => k.delete(d)?,
                None => bail!("No key '{}' found", d.split('=').next().unwrap_or(d)),
            }
        }
        let mut overlay = Vec::new();
        for p in inv.values("overlay-initrd") {
            overlay.push(sysroot.stage_overlay_initrd(std::path::Path::new(p))?);
        }
        let opts = DeployTreeOpts {
            override_kernel_argv: kargs.map(|k| k.to_strv()),
            overlay_initrds: overlay,
        };
        let stage = inv.flag("stage");
        if stage {
            if inv.flag("retain-pending") || inv.flag("retain-rollback") {
                bail!("--stage cannot currently be combined with --retain arguments");
            }
            if inv.flag("not-as-default") {
                bail!("--stage cannot currently be combined with --not-as-default");
            }
            if inv.flag("lock-finalization") {
                let p = std::path::Path::new(RUNSTATE_STAGED_LOCKED);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(p)
                    .with_context(|| format!("touch({RUNSTATE_STAGED_LOCKED})"))?;
            }
            sysroot
                .stage_tree(
                    osname.as_deref(),
                    &revision,
                    Some(origin),
                    merge.as_ref(),
                    &opts,
                )
                .await?;
        } else {
            let d = sysroot
                .deploy_tree(
                    osname.as_deref(),
                    &revision,
                    Some(origin),
                    merge.as_ref(),
                    &opts,
                )
                .await?;
            let mut flags = SimpleWriteFlags {
                no_clean: true,
                ..Default::default()
            };
            if inv.flag("retain") {
                flags.retain = true;
            } else {
                flags.retain_pending = inv.flag("retain-pending");
                flags.retain_rollback = inv.flag("retain-rollback");
            }
            flags.not_default = inv.flag("not-as-default");
            sysroot
                .simple_write_deployment(osname.as_deref(), d, merge.as_ref(), flags)
                .await?;
        }
        let prune = !(inv.flag("no-prune") || stage);
        sysroot.cleanup(prune).await?;
        Ok(())
    })
}

/// `ot_admin_checksum_version` and `ostree.source-title` of a commit.
async fn commit_info(
    repo: &ostree_core::repo::Repo,
    csum: &str,
) -> (
    Option<ostree_core::objects::Commit>,
    Option<String>,
    Option<String>,
) {
    let Ok(c) = Checksum::from_hex(csum) else {
        return (None, None, None);
    };
    match repo.load_commit(&c).await {
        Ok(commit) => {
            let version = commit
                .metadata
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let title = commit
                .metadata
                .get("ostree.source-title")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            (Some(commit), version, title)
        }
        Err(_) => (None, None, None),
    }
}

fn remote_of(d: &Deployment) -> Option<String> {
    let refspec = d.origin_refspec()?;
    ostree_core::repo::refs::parse_refspec(&refspec).ok()?.0
}

async fn deployment_gpg_verify(
    repo: &ostree_core::repo::Repo,
    sysroot: &Sysroot,
    d: &Deployment,
) -> bool {
    let Some(remote) = remote_of(d) else {
        return false;
    };
    let dir = ostree_core::repo::remote::RemotesDir::for_sysroot(sysroot.path());
    match repo.remote(&dir, &remote).await {
        Ok(r) => r.get_bool("gpg-verify", true).unwrap_or(false),
        Err(_) => false,
    }
}

/// `ostree admin status`.
pub fn status(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        let repo = sysroot.repo()?.clone();
        let deployments = sysroot.deployments().to_vec();
        let booted = sysroot.booted_deployment().cloned();
        let (pending, rollback) = if booted.is_some() {
            sysroot.query_deployments_for(None)
        } else {
            (None, None)
        };
        if deployments.is_empty() {
            print_text("No deployments.\n");
            return Ok(());
        }
        let (red, bold, bold_end, red_end) = if std::io::IsTerminal::is_terminal(&std::io::stdout())
        {
            ("\x1b[31m", "\x1b[1m", "\x1b[0m", "\x1b[22m")
        } else {
            ("", "", "", "")
        };
        let verify = inv.flag("verify");
        for d in &deployments {
            let (commit, version, source_title) = commit_info(&repo, &d.csum).await;
            let is = |o: &Option<Deployment>| o.as_ref().is_some_and(|x| x.same(d));
            let status = if d.staged {
                " (staged)"
            } else if is(&pending) {
                " (pending)"
            } else if is(&rollback) {
                " (rollback)"
            } else {
                ""
            };
            let mut out = format!(
                "{} {} {}.{}{status}\n",
                if is(&booted) { '*' } else { ' ' },
                d.osname,
                d.csum,
                d.deployserial
            );
            if let Some(v) = &version {
                out.push_str(&format!("    Version: {v}\n"));
            }
            if d.unlocked != UnlockedState::None {
                out.push_str(&format!(
                    "    {red}{bold}Unlocked: {}{bold_end}{red_end}\n",
                    d.unlocked.as_str()
                ));
            }
            if d.is_pinned() {
                out.push_str("    Pinned: yes\n");
            }
            match &d.origin {
                None => out.push_str("    origin: none\n"),
                Some(o) => {
                    match o.get_string("origin", "refspec") {
                        Some(r) => out.push_str(&format!("    origin refspec: {r}\n")),
                        None => out.push_str("    origin: <unknown origin type>\n"),
                    }
                    if let Some(t) = &source_title {
                        out.push_str(&format!("    `- {t}\n"));
                    }
                }
            }
            print_text(&out);
            if !verify && deployment_gpg_verify(&repo, &sysroot, d).await {
                let Ok(c) = Checksum::from_hex(&d.csum) else {
                    continue;
                };
                match ostree_core::sign::policy::verify_commit_gpg(
                    &repo,
                    &c,
                    Some(&d.osname),
                    None,
                    None,
                )
                .await
                {
                    Ok(Some(report)) => {
                        let mut s = String::new();
                        for sig in &report.signatures {
                            s.push_str(&ostree_core::sign::describe_signature(sig, "    GPG: "));
                        }
                        print_text(&s);
                    }
                    Ok(None) => continue,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if verify {
                let Some(_) = commit else {
                    bail!("Cannot verify, failed to load commit");
                };
                let Some(origin) = &d.origin else {
                    bail!("Cannot verify deployment with no origin");
                };
                let Some(refspec) = origin.get_string("origin", "refspec") else {
                    bail!("No origin/refspec, cannot verify");
                };
                let (remote, _) = ostree_core::repo::refs::parse_refspec(&refspec)?;
                let Some(remote) = remote else {
                    bail!("Cannot verify deployment without remote");
                };
                let text = verify_commit_for_remote(&repo, &sysroot, &remote, &d.csum).await?;
                print_text(&format!("{text}\n"));
            }
        }
        Ok(())
    })
}

/// `ostree_repo_signature_verify_commit_data`: the commit's signatures checked with the
/// remote's policy; the text describing them.
async fn verify_commit_for_remote(
    repo: &ostree_core::repo::Repo,
    sysroot: &Sysroot,
    remote: &str,
    csum: &str,
) -> anyhow::Result<String> {
    use ostree_core::sign::policy::PullVerification;
    let c = Checksum::from_hex(csum)?;
    let dir = ostree_core::repo::remote::RemotesDir::for_sysroot(sysroot.path());
    let r = repo.remote(&dir, remote).await?;
    let data = repo.load_meta(ostree_core::ObjectType::Commit, &c).await?;
    let Some(md) = repo.read_commit_detached_metadata(&c).await? else {
        bail!("Can't verify commit without detached metadata");
    };
    let policy = PullVerification::for_remote(repo, &dir, &r, None, None, None).await?;
    if !policy.verifies_commits() {
        bail!(
            "Cannot verify commit for remote {remote}; GPG verification disabled, and no signapi verifiers configured"
        );
    }
    Ok(policy.verify_commit(&c, &data, Some(&md))?)
}

/// `ostree admin undeploy`.
pub fn undeploy(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let Some(idx) = pos(&inv).first() else {
            return Err(inv.usage_error("INDEX must be specified"));
        };
        let idx = atoi(idx);
        let target = sysroot.indexed_deployment(idx)?;
        if sysroot.booted_deployment().is_some_and(|b| b.same(&target)) {
            bail!("Cannot undeploy currently booted deployment {idx}");
        }
        let mut list = sysroot.deployments().to_vec();
        list.remove(idx as usize);
        sysroot.write_deployments(list, true).await?;
        print_text(&format!(
            "Deleted deployment {}.{}\n",
            target.csum, target.deployserial
        ));
        sysroot
            .cleanup(true)
            .await
            .context("Performing final cleanup")?;
        Ok(())
    })
}

/// `ostree admin cleanup`.
pub fn cleanup(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        sysroot.cleanup(true).await?;
        Ok(())
    })
}

/// `ostree admin upgrade`.
pub fn upgrade(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let pull_only = inv.flag("pull-only");
        let deploy_only = inv.flag("deploy-only");
        if pull_only && deploy_only {
            bail!("Cannot simultaneously specify --pull-only and --deploy-only");
        } else if pull_only && inv.flag("reboot") {
            bail!("Cannot simultaneously specify --pull-only and --reboot");
        }
        let flags = UpgraderFlags {
            stage: inv.flag("stage"),
            ..Default::default()
        };
        let mut upgrader = Upgrader::new(&sysroot, inv.value("os"), flags)?;
        let mut origin = upgrader.origin();
        origin_remove_transient_state(&mut origin);
        if let Some(c) = inv.value("override-commit") {
            origin.set("origin", "override-commit", c);
        }
        upgrader.set_origin(origin)?;
        let pull_flags = UpgraderPullFlags {
            allow_older: inv.flag("allow-downgrade"),
            synthetic: deploy_only,
        };
        let changed = match upgrader.pull(&sysroot, pull_flags).await {
            Ok(c) => c,
            Err(e) => {
                if pull_only {
                    let _ = sysroot.cleanup(true).await;
                }
                return Err(e.into());
            }
        };
        if !changed {
            print_text("No update available.\n");
        } else {
            if !pull_only {
                upgrader.deploy(&mut sysroot).await?;
            }
            if inv.flag("reboot") {
                reboot(&sysroot)?;
            }
        }
        Ok(())
    })
}

/// `ot_admin_execve_reboot`: only on a booted system.
fn reboot(sysroot: &Sysroot) -> anyhow::Result<()> {
    if sysroot.booted_deployment().is_none() {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("systemctl").arg("reboot").exec();
    Err(anyhow::anyhow!("execve(systemctl reboot): {err}"))
}

/// `ostree admin switch`.
pub fn switch(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let Some(new_provided) = pos(&inv).first().cloned() else {
            return Err(inv.usage_error("REFSPEC must be specified"));
        };
        let flags = UpgraderFlags {
            ignore_unconfigured: true,
            ..Default::default()
        };
        let mut upgrader = Upgrader::new(&sysroot, inv.value("os"), flags)?;
        let old_origin = upgrader.origin();
        let origin_refspec = old_origin
            .get_string("origin", "refspec")
            .unwrap_or_default();
        let (origin_remote, origin_ref) = ostree_core::repo::refs::parse_refspec(&origin_refspec)?;
        let (new_remote, new_ref) = match new_provided.strip_suffix(':') {
            Some(r) => (Some(r.to_string()), origin_ref.clone()),
            None => ostree_core::repo::refs::parse_refspec(&new_provided)?,
        };
        let remote = new_remote.or(origin_remote.clone());
        let new_refspec = match &remote {
            Some(r) => format!("{r}:{new_ref}"),
            None => new_ref.clone(),
        };
        if origin_refspec == new_refspec {
            bail!("Old and new refs are equal: {new_refspec}");
        }
        upgrader.set_origin(Sysroot::origin_new_from_refspec(&new_refspec))?;
        upgrader
            .pull(
                &sysroot,
                UpgraderPullFlags {
                    allow_older: true,
                    synthetic: false,
                },
            )
            .await?;
        upgrader.deploy(&mut sysroot).await?;
        let repo = sysroot.repo()?.clone();
        print_text(&format!(
            "Deleting ref '{}:{origin_ref}'\n",
            origin_remote.as_deref().unwrap_or("(null)")
        ));
        repo.set_ref(origin_remote.as_deref(), &origin_ref, None)
            .await?;
        if inv.flag("reboot") {
            reboot(&sysroot)?;
        }
        Ok(())
    })
}

/// `ostree admin set-origin`.
pub fn set_origin(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        let args = pos(&inv);
        if args.len() < 2 {
            return Err(inv.usage_error("REMOTENAME and URL must be specified"));
        }
        let (remotename, url) = (args[0].clone(), args[1].clone());
        let branch = args.get(2).cloned();
        let repo = sysroot.repo()?.clone();
        let target = match inv.int("index") {
            None | Some(-1) => sysroot.require_booted_deployment()?.clone(),
            Some(i) => sysroot.indexed_deployment(i)?,
        };
        let mut options = Vec::new();
        for kv in inv.values("set") {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("Missing '=' in KEY=VALUE pair \"{kv}\"");
            };
            options.push((
                k.to_string(),
                ostree_core::repo::remote::RemoteValue::Str(v.to_string()),
            ));
        }
        let dir = ostree_core::repo::remote::RemotesDir::for_sysroot(sysroot.path());
        repo.remote_change(
            &dir,
            ostree_core::repo::remote::RemoteChange::AddIfNotExists,
            &remotename,
            Some(&url),
            &options,
        )
        .await?;
        let old = target
            .origin_refspec()
            .ok_or_else(|| anyhow::anyhow!("No origin/refspec in deployment origin"))?;
        let (_, origin_ref) = ostree_core::repo::refs::parse_refspec(&old)?;
        let new_refspec = format!("{remotename}:{}", branch.unwrap_or(origin_ref));
        sysroot.write_origin_file(
            &target,
            Some(&Sysroot::origin_new_from_refspec(&new_refspec)),
        )?;
        Ok(())
    })
}

/// `ostree admin pin`.
pub fn pin(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        if pos(&inv).is_empty() {
            return Err(inv.usage_error("INDEX must be specified"));
        }
        for s in pos(&inv).to_vec() {
            let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.len() != s.len() && !(digits.is_empty() && s.is_empty()) {
                bail!("Invalid index: {s}");
            }
            let idx: u64 = if digits.is_empty() {
                0
            } else {
                digits
                    .parse()
                    .map_err(|_| anyhow::anyhow!("Index too large: {s}"))?
            };
            // ostree passes the 64-bit value on as an int.
            let target = sysroot.indexed_deployment(idx as i32 as i64)?;
            let want = !inv.flag("unpin");
            if target.is_pinned() == want {
                print_text(&format!(
                    "Deployment {s} is already {}\n",
                    if want { "pinned" } else { "unpinned" }
                ));
            } else {
                sysroot.deployment_set_pinned(&target, want)?;
                print_text(&format!(
                    "Deployment {s} is now {}\n",
                    if want { "pinned" } else { "unpinned" }
                ));
            }
        }
        Ok(())
    })
}

/// `ostree admin config-diff`.
pub fn config_diff(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        let osname = inv.value("os");
        require_booted_or_osname(&sysroot, osname)?;
        let d = match osname {
            Some(o) => sysroot
                .merge_deployment(Some(o))
                .ok_or_else(|| anyhow::anyhow!("No deployment for OS '{o}'"))?,
            None => sysroot.require_booted_deployment()?.clone(),
        };
        let root = sysroot.deployment_directory(&d);
        let diff =
            ostree_core::sysroot::etcmerge::diff_etc(&root.join("usr/etc"), &root.join("etc"))?;
        let mut out = String::new();
        for l in ostree_core::sysroot::etcmerge::diff_lines(&diff) {
            out.push_str(&l);
            out.push('\n');
        }
        print_text(&out);
        Ok(())
    })
}

/// `ostree admin unlock`.
pub fn unlock(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        if !pos(&inv).is_empty() {
            return Err(inv.usage_error("This command takes no extra arguments"));
        }
        let booted = sysroot.require_booted_deployment()?.clone();
        let state = match (inv.flag("hotfix"), inv.flag("transient")) {
            (true, true) => bail!("Cannot specify both --hotfix and --transient"),
            (true, false) => UnlockedState::Hotfix,
            (false, true) => UnlockedState::Transient,
            (false, false) => UnlockedState::Development,
        };
        sysroot.deployment_unlock(&booted, state).await?;
        print_text(match state {
            UnlockedState::Hotfix => {
                "Hotfix mode enabled.  A writable overlayfs is now mounted on /usr\nfor this booted deployment.  A non-hotfixed clone has been created\nas the non-default rollback target.\n"
            }
            UnlockedState::Transient => {
                "A writable overlayfs is prepared for /usr, but is mounted read-only by default.\nAll changes there will be discarded on reboot.\n"
            }
            _ => {
                "Development mode enabled.  A writable overlayfs is now mounted on /usr.\nAll changes there will be discarded on reboot.\n"
            }
        });
        Ok(())
    })
}

/// `ostree admin finalize-staged` (run by `ostree-finalize-staged.service` at shutdown).
pub fn finalize_staged(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        if inv.flag("hold") {
            load_sysroot(
                &mut sysroot,
                AdminFlags::SUPERUSER.with(AdminFlags::UNLOCKED),
            )
            .await?;
            let _boot = std::fs::File::open(sysroot.join("boot")).context("opendir(boot)")?;
            // Keep /boot open until systemd stops the unit (SIGTERM ends the process).
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        load_sysroot(&mut sysroot, AdminFlags::SUPERUSER).await?;
        sysroot.finalize_staged().await?;
        Ok(())
    })
}

/// `ostree admin boot-complete` (run at boot after an update).
pub fn boot_complete(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        let p = sysroot
            .join("boot")
            .join(ostree_core::sysroot::FINALIZE_STAGED_FAILURE_PATH);
        let data = match std::fs::read_to_string(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "Reading from {}",
                    ostree_core::sysroot::FINALIZE_STAGED_FAILURE_PATH
                )));
            }
        };
        let _ = std::fs::remove_file(&p);
        bail!("ostree-finalize-staged.service failed on previous boot: {data}");
    })
}

/// `ostree admin set-default INDEX` (ostree 2023.x and later): make deployment INDEX the
/// default, keeping every other deployment.
pub fn set_default(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let Some(idx) = pos(&inv).first() else {
            return Err(inv.usage_error("INDEX must be specified"));
        };
        let idx = atoi(idx);
        let target = sysroot.indexed_deployment(idx)?;
        make_default(&mut sysroot, &target).await
    })
}

async fn make_default(sysroot: &mut Sysroot, target: &Deployment) -> anyhow::Result<()> {
    if target.staged {
        bail!("Cannot make the staged deployment the default");
    }
    let mut list: Vec<Deployment> = sysroot.deployments().to_vec();
    list.retain(|d| !d.is(target));
    list.insert(0, target.clone());
    sysroot.write_deployments(list, true).await?;
    Ok(())
}

/// `ostree admin rollback`: make the previous deployment the default. On a booted system
/// with a pending deployment, that is the booted one (the pending update is undone);
/// otherwise the rollback deployment (the one after the default).
pub fn rollback(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        if !pos(&inv).is_empty() {
            return Err(inv.usage_error("This command takes no extra arguments"));
        }
        let deployments: Vec<Deployment> = sysroot
            .deployments()
            .iter()
            .filter(|d| !d.staged)
            .cloned()
            .collect();
        let target = match sysroot.booted_deployment().cloned() {
            Some(b) if deployments.first().is_some_and(|d| !d.same(&b)) => b,
            Some(b) => {
                let (_, rollback) = sysroot.query_deployments_for(Some(&b.osname));
                rollback.ok_or_else(|| anyhow::anyhow!("No rollback deployment found"))?
            }
            None => deployments
                .get(1)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("No rollback deployment found"))?,
        };
        print_text(&format!(
            "Moving '{}.{}' to be first deployment\n",
            target.csum, target.deployserial
        ));
        make_default(&mut sysroot, &target).await
    })
}

/// `ostree admin instutil set-kargs`.
pub fn instutil_set_kargs(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let Some(first) = sysroot.deployments().first().cloned() else {
            bail!("Unable to find a deployment in sysroot");
        };
        let mut kargs = KernelArgs::new();
        if inv.flag("import-proc-cmdline") {
            kargs.append_proc_cmdline()?;
        } else if inv.flag("merge")
            && let Some(o) = first.bootconfig.get("options")
        {
            kargs.parse_append(o);
        }
        kargs.replace_all(&inv.values("replace"));
        kargs.append_all(&inv.values("append"));
        for a in pos(&inv) {
            kargs.append(a);
        }
        sysroot
            .deployment_set_kargs(&first, &kargs.to_strv())
            .await?;
        Ok(())
    })
}

/// `ostree admin kargs edit-in-place`.
pub fn kargs_edit_in_place(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mut sysroot = open_sysroot(&inv).await?;
        let deployments = sysroot.deployments().to_vec();
        if deployments.is_empty() {
            bail!("Unable to find a deployment in sysroot");
        }
        let append = inv.values("append-if-missing");
        for d in &deployments {
            let mut k = KernelArgs::parse(d.bootconfig.get("options"));
            for a in &append {
                k.append_if_missing(a);
            }
            sysroot.deployment_set_kargs_in_place(d, &k.to_string())?;
        }
        Ok(())
    })
}

/// `ostree admin instutil grub2-generate [BOOTVERSION]`: print the GRUB2 menu entries for
/// the boot entries of a boot version (called by GRUB's `15_ostree` script).
pub fn instutil_grub2_generate(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let sysroot = open_sysroot(&inv).await?;
        let bootversion = match pos(&inv).first() {
            Some(s) => {
                let v: u64 = s
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0);
                if v > 1 {
                    bail!("Invalid bootversion: {v}");
                }
                v as u32
            }
            None => match std::env::var("_OSTREE_GRUB2_BOOTVERSION") {
                Ok(v) => v.trim().parse().unwrap_or(0),
                Err(_) => sysroot.bootversion(),
            },
        };
        let text = grub2_generate(&sysroot, bootversion)?;
        print_text(&text);
        Ok(())
    })
}

/// The GRUB2 writer's menu entries for the BLS entries of `bootversion`, with the device
/// settings `15_ostree` exports (`_ostree_bootloader_grub2_generate_config`).
fn grub2_generate(sysroot: &Sysroot, bootversion: u32) -> anyhow::Result<String> {
    let entries = ostree_core::bootloader::read_entries(sysroot.path(), bootversion)?;
    let opts = ostree_bootloader_grub2::MenuOptions::from_grub_mkconfig_env()?;
    Ok(ostree_bootloader_grub2::menuentries(&entries, &opts)?)
}

/// `ostree admin instutil selinux-ensure-labeled`: nothing to do without SELinux support.
pub fn instutil_selinux_ensure_labeled(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let _sysroot = open_sysroot(&inv).await?;
        eprint_text("No SELinux policy support in this ostree; nothing to relabel\n");
        Ok(())
    })
}
