//! `ostree find-remotes` and `ostree create-usb`: thin wrappers over
//! [`ostree_core::finder`].

use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::finder::mount::MountFinder;
use ostree_core::finder::usb::UsbDestination;
use ostree_core::finder::{
    FindOptions, FinderKind, LAN_UNSUPPORTED, PullFromRemotesOptions, RepoFinder,
};
use ostree_core::pull::PullOptions;
use ostree_core::repo::refs::{CollectionRef, validate_collection_id, validate_ref_name};
use ostree_core::repo::remote::RemotesDir;
use ostree_core::store::OpenOptions;

use super::open_repo_opts;
use crate::opts::{Invocation, print_text};

fn fsync_opts(inv: &Invocation) -> OpenOptions {
    OpenOptions {
        fsync: inv.flag("disable-fsync").then_some(false),
        ..OpenOptions::default()
    }
}

/// The mount roots the `mount` finder looks at: `$OSTREE_RS_MOUNT_ROOTS` (colon-separated
/// directories, each looked at as a mounted volume) when set, else the mounts GLib's volume
/// monitor would list.
fn mount_roots() -> Vec<std::path::PathBuf> {
    match std::env::var_os("OSTREE_RS_MOUNT_ROOTS") {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => ostree_core::finder::mount::system_mount_roots(),
    }
}

/// `COLLECTION-ID REF` pairs, validated as ostree does.
fn collection_refs(pairs: &[String]) -> anyhow::Result<Vec<CollectionRef>> {
    let mut out = Vec::new();
    for p in pairs.chunks(2) {
        validate_collection_id(&p[0])?;
        validate_ref_name(&p[1])?;
        out.push(CollectionRef::new(&p[0], &p[1]));
    }
    Ok(out)
}

/// `ostree find-remotes`.
pub fn find_remotes(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo_opts(&inv, fsync_opts(&inv)).await?;
        let args = inv.positionals();
        if args.len() < 2 {
            return Err(inv.usage_error("At least one COLLECTION-ID REF pair must be specified"));
        }
        if args.len() % 2 == 1 {
            return Err(inv.usage_error("Only complete COLLECTION-ID REF pairs may be specified"));
        }
        let pull = inv.flag("pull");
        if inv.flag("mirror") && !pull {
            return Err(inv.usage_error("When --mirror is specified, --pull must also be"));
        }
        let refs = collection_refs(args)?;
        let kinds = match inv.value("finders") {
            Some(list) => {
                let names: Vec<&str> = if list.is_empty() {
                    Vec::new()
                } else {
                    list.split(',').collect()
                };
                let mut kinds = ostree_core::finder::parse_finder_names(&names)
                    .map_err(|e| inv.usage_error(e.to_string()))?;
                if kinds.contains(&FinderKind::Lan) {
                    // The real ostree drops an Avahi finder that cannot start (with a
                    // warning) and goes on with the others; alone, it has nothing to run.
                    if kinds.len() == 1 {
                        return Err(inv.usage_error(LAN_UNSUPPORTED));
                    }
                    crate::opts::eprint_text(
                        "warning: the LAN (Avahi) repo finder is not supported by this ostree; removing it\n",
                    );
                    kinds.retain(|k| *k != FinderKind::Lan);
                }
                kinds
            }
            None => ostree_core::finder::default_finder_kinds(&repo)?,
        };
        let finders: Vec<Box<dyn RepoFinder>> = kinds
            .into_iter()
            .filter_map(|k| match k {
                FinderKind::Mount => Some(Box::new(MountFinder::new(mount_roots())) as _),
                k => k.build(),
            })
            .collect();
        let base = PullOptions {
            remotes_dir: RemotesDir::detect(&repo),
            cache_dir: inv.value("cache-dir").map(std::path::PathBuf::from),
            ..PullOptions::default()
        };
        let fopts = FindOptions {
            pull: base.clone(),
            override_commit_ids: None,
        };
        let results = ostree_core::finder::find_remotes(&repo, &refs, &finders, &fopts).await?;

        let mut out = String::new();
        let mut found: Vec<&CollectionRef> = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let uri = r.remote.get("url").unwrap_or_default();
            let modified = if r.summary_last_modified > 0 {
                ostree_core::finder::iso8601(r.summary_last_modified)
            } else {
                "unknown".to_string()
            };
            out.push_str(&format!(
                "Result {i}: {uri}\n - Finder: {}\n - Keyring: {}\n - Priority: {}\n - Summary last modified: {modified}\n - Refs:\n",
                r.finder, r.keyring, r.priority
            ));
            for k in r.display_order() {
                let (cref, c) = &r.ref_to_checksum[k];
                let shown = match c {
                    Some(c) => c.to_string(),
                    None => "(not found)".to_string(),
                };
                out.push_str(&format!(
                    "    - ({}, {}) = {shown}\n",
                    cref.collection_id, cref.ref_name
                ));
                if c.is_some() && !found.contains(&cref) {
                    found.push(cref);
                }
            }
            out.push('\n');
        }
        if results.is_empty() {
            print_text("No results.\n");
            return Ok(());
        }
        out.push_str(&format!(
            "{}/{} refs were found.\n",
            found.len(),
            refs.len()
        ));
        if found.len() != refs.len() {
            out.push_str("Refs not found in any remote:\n");
            for r in &refs {
                if !found.contains(&r) {
                    out.push_str(&format!(" - ({}, {})\n", r.collection_id, r.ref_name));
                }
            }
        }
        print_text(&out);
        if !pull {
            return Ok(());
        }
        let popts = PullFromRemotesOptions {
            pull: PullOptions {
                mirror: inv.flag("mirror"),
                ..base
            },
        };
        ostree_core::finder::pull_from_remotes(&repo, &results, &popts).await?;
        // As ostree: the pull fails if any ref it tried could not be pulled.
        print_text(&format!(
            "Pulled {}/{} refs successfully.\n",
            refs.len(),
            refs.len()
        ));
        Ok(())
    })
}

/// `ostree create-usb`.
pub fn create_usb(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let src = super::open_repo(&inv).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("A MOUNT-PATH must be specified"));
        }
        if args.len() < 3 {
            return Err(inv.usage_error("At least one COLLECTION-ID REF pair must be specified"));
        }
        if args.len().is_multiple_of(2) {
            return Err(inv.usage_error("Only complete COLLECTION-ID REF pairs may be specified"));
        }
        let commit = inv.value("commit");
        if commit.is_some() && args.len() > 3 {
            return Err(inv.usage_error(
                "The --commit option can only be used when a single COLLECTION-ID REF pair is specified",
            ));
        }
        let mount = std::path::Path::new(&args[0]);
        if let Err(e) = std::fs::metadata(mount) {
            anyhow::bail!("opendir({}): {}", args[0], crate::commands::strerror(&e));
        }
        let refs = collection_refs(&args[1..])?;
        let dest_path = inv.value("destination-repo");
        let fsync = inv.flag("disable-fsync").then_some(false);
        let dest = UsbDestination::create(mount, dest_path, fsync).await?;
        if let Some(p) = dest.problem(&src) {
            return Err(inv.usage_error(p));
        }
        let commit = match commit {
            Some(c) => Some(Checksum::from_hex(c)?),
            None => None,
        };
        dest.copy_refs(&src, &refs, commit).await?;
        print_text(&format!(
            "Copied {}/{} refs successfully from ‘{}’ to ‘{}’ repository in ‘{}’.\n",
            refs.len(),
            refs.len(),
            inv.repo_path()?,
            dest.dest_path,
            args[0]
        ));
        Ok(())
    })
}
