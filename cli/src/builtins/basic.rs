//! init, checkout, rev-parse, fsck, config.

use std::path::PathBuf;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::repo::checkout::{CheckoutMode, CheckoutOptions, OverwriteMode};
use ostree_core::repo::fsck::{FsckOptions, FsckProblem};
use ostree_core::store::{OpenOptions, RepoMode};

use super::{open_repo, parse_boolean, resolve};
use crate::opts::Invocation;

/// `ostree init`.
pub fn init(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let mode: RepoMode = inv.value("mode").unwrap_or("bare").parse()?;
        let arg = inv.repo_path()?;
        let url = ostree_core::registry::repo_url(&arg)?;
        let repo = ostree_core::repo::Repo::create(&url, mode, OpenOptions::default()).await?;
        if let Some(cid) = inv.value("collection-id") {
            ostree_core::repo::refs::validate_collection_id(cid)?;
            let mut cfg = repo.config();
            cfg.keyfile.set_string("core", "collection-id", cid);
            repo.write_config(cfg).await?;
        }
        Ok(())
    })
}

/// `ostree rev-parse`.
pub fn rev_parse(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals();
        if inv.flag("single") {
            if !args.is_empty() {
                return Err(inv.usage_error("Cannot specify arguments with --single"));
            }
            let all = repo.list_commits_starting_with("").await?;
            match all.as_slice() {
                [] => bail!("No commit objects found"),
                [one] => println!("{one}"),
                _ => bail!("Multiple commit objects found"),
            }
            return Ok(());
        }
        if args.is_empty() {
            return Err(inv.usage_error("REV must be specified"));
        }
        for rev in args {
            println!("{}", resolve(&repo, rev).await?);
        }
        Ok(())
    })
}

/// `ostree fsck`.
pub fn fsck(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let quiet = inv.flag("quiet");
        if !quiet {
            println!("Validating refs...");
            println!("Validating refs in collections...");
            println!("Enumerating commits...");
        }
        let opts = FsckOptions {
            delete: inv.flag("delete"),
            all: inv.flag("all"),
            verify_bindings: inv.flag("verify-bindings"),
            verify_back_refs: inv.flag("verify-back-refs"),
            add_tombstones: inv.flag("add-tombstones"),
            progress: Some(inv.progress()),
        };
        let report = repo.fsck(&opts).await?;
        if !quiet {
            println!(
                "Verifying content integrity of {} commit objects...",
                report.commits_verified
            );
        }
        for p in &report.problems {
            match p {
                FsckProblem::Missing { key, commits } if !commits.is_empty() => eprintln!(
                    "Object missing in commits {}: {}.{}",
                    commits
                        .iter()
                        .map(Checksum::to_hex)
                        .collect::<Vec<_>>()
                        .join(", "),
                    key.checksum,
                    key.ty.name()
                ),
                FsckProblem::Missing { key, .. } => {
                    eprintln!("Object missing: {}.{}", key.checksum, key.ty.name())
                }
                FsckProblem::Corrupted { message, .. } => eprintln!("{message}"),
            }
        }
        for c in &report.marked_partial {
            eprintln!("Marking commit as partial: {c}");
        }
        for c in &report.tombstones_added {
            println!("Adding tombstone for commit {c}");
        }
        if !inv.flag("add-tombstones") && report.partial_commits > 0 {
            println!("{} partial commits not verified", report.partial_commits);
        }
        if report.found_corruption() {
            bail!("Repository corruption encountered");
        }
        if report.fsck_partial_commits > 0 {
            // ostree prints the count of all partial commits here.
            bail!(
                "{} partial commits from fsck-detected corruption",
                report.partial_commits
            );
        }
        println!(
            "object fsck of {} commits completed successfully - no errors found.",
            report.commits_verified
        );
        Ok(())
    })
}

fn split_key(s: &str) -> anyhow::Result<(String, String)> {
    match s.rsplit_once('.') {
        Some((g, k)) if !g.is_empty() && !k.is_empty() => Ok((g.to_string(), k.to_string())),
        _ => bail!("Section key '{s}' must be of the form SECTION.KEY"),
    }
}

/// `ostree config`.
pub fn config(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        let Some(op) = args.first().map(String::as_str) else {
            return Err(inv.usage_error("OPERATION must be specified"));
        };
        let correct = if op == "set" { 3 } else { 2 };
        if args.len() > correct {
            return Err(inv.usage_error("Too many arguments given"));
        }
        let group = inv.value("group").map(str::to_string);
        let target = |need_value: bool| -> anyhow::Result<(String, String)> {
            match &group {
                Some(g) => {
                    if args.len() < if need_value { 3 } else { 2 } {
                        bail!(if need_value {
                            "GROUP name, KEY and VALUE must be specified"
                        } else {
                            "Group name and key must be specified"
                        });
                    }
                    Ok((g.clone(), args[1].clone()))
                }
                None => {
                    if args.len() < if need_value { 3 } else { 2 } {
                        bail!(if need_value {
                            "KEY and VALUE must be specified"
                        } else {
                            "KEY must be specified"
                        });
                    }
                    split_key(&args[1])
                }
            }
        };
        match op {
            "set" => {
                let (g, k) = target(true)?;
                let mut cfg = repo.config();
                cfg.keyfile.set_string(&g, &k, &args[2]);
                repo.write_config(cfg).await?;
            }
            "get" => {
                let (g, k) = target(false)?;
                let cfg = repo.config();
                if !cfg.keyfile.has_group(&g) {
                    bail!("Key file does not have group “{g}”");
                }
                match cfg.keyfile.get_string(&g, &k) {
                    Some(v) => println!("{v}"),
                    None => bail!("Key file does not have key “{k}” in group “{g}”"),
                }
            }
            "unset" => {
                let (g, k) = target(false)?;
                let mut cfg = repo.config();
                if cfg.keyfile.remove_key(&g, &k) {
                    repo.write_config(cfg).await?;
                }
            }
            other => bail!("Unknown operation {other}"),
        }
        Ok(())
    })
}

/// `ostree checkout`.
pub fn checkout(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        if inv.flag("from-stdin") || inv.value("from-file").is_some() {
            bail!("--from-stdin/--from-file are not supported yet");
        }
        if args.is_empty() {
            return Err(inv.usage_error("COMMIT must be specified"));
        }
        let rev = &args[0];
        // Like ostree's CLI, checkouts never fsync the files they write (`--fsync` only
        // concerns repository writes, and checkout writes none).
        // `--fsync=false` does concern the uncompressed-objects cache (ostree sets the repo's
        // disable_fsync).
        let cache_fsync = match inv.value("fsync") {
            Some(v) => (!parse_boolean(v)?).then_some(false),
            None => None,
        };
        let fsync = false;
        // ostree's CLI uses the cache only on its legacy path (`ostree_repo_checkout_tree`),
        // which it takes unless one of these options needs `ostree_repo_checkout_at`.
        let enable_uncompressed_cache = ![
            "disable-cache",
            "whiteouts",
            "require-hardlinks",
            "union-add",
            "force-copy",
            "force-copy-zerosized",
            "bareuseronly-dirs",
            "union-identical",
            "process-passthrough-whiteouts",
        ]
        .iter()
        .any(|f| inv.flag(f))
            && ["skip-list", "selinux-policy", "selinux-prefix"]
                .iter()
                .all(|v| inv.value(v).is_none());
        // ot-builtin-checkout.c's option checks.
        let (union, add, identical) = (
            inv.flag("union"),
            inv.flag("union-add"),
            inv.flag("union-identical"),
        );
        if union && add {
            bail!("Cannot specify both --union and --union-add");
        }
        if union && identical {
            bail!("Cannot specify both --union and --union-identical");
        }
        if add && identical {
            bail!("Cannot specify both --union-add and --union-identical");
        }
        if inv.flag("require-hardlinks") && inv.flag("force-copy") {
            bail!("Cannot specify both --require-hardlinks and --force-copy");
        }
        if identical && !union && !add && !inv.flag("require-hardlinks") {
            bail!("--union-identical requires --require-hardlinks");
        }
        let overwrite = if inv.flag("union") {
            OverwriteMode::UnionFiles
        } else if inv.flag("union-add") {
            OverwriteMode::AddFiles
        } else if inv.flag("union-identical") {
            OverwriteMode::UnionIdentical
        } else {
            OverwriteMode::None
        };
        let opts = CheckoutOptions {
            mode: if inv.flag("user-mode") {
                CheckoutMode::User
            } else {
                CheckoutMode::None
            },
            overwrite,
            subpath: inv.value("subpath").map(str::to_string),
            force_copy: inv.flag("force-copy"),
            require_hardlinks: inv.flag("require-hardlinks"),
            bareuseronly_dirs: inv.flag("bareuseronly-dirs"),
            process_whiteouts: inv.flag("whiteouts"),
            process_passthrough_whiteouts: inv.flag("process-passthrough-whiteouts"),
            fsync,
            enable_uncompressed_cache,
            cache_fsync,
            progress: Some(inv.progress()),
        };
        let csum = resolve(&repo, rev).await?;
        let dest: PathBuf = match args.get(1) {
            Some(d) => PathBuf::from(d),
            None => {
                // Default destination: the ref's last component or the checksum.
                PathBuf::from(rev.rsplit(['/', ':']).next().unwrap_or(rev))
            }
        };
        if inv.flag("allow-noent")
            && let Some(sp) = &opts.subpath
            && repo.lookup_path(&csum, sp).await.is_err()
        {
            return Ok(());
        }
        repo.checkout(&csum, &dest, &opts)
            .await
            .with_context(|| format!("Checking out {rev}"))
            .map_err(|e| anyhow::anyhow!("{:#}", e))?;
        Ok(())
    })
}
