//! `ostree pull` and `ostree pull-local`.

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::pull::PullOptions;
use ostree_core::repo::Repo;
use ostree_core::repo::remote::RemotesDir;
use ostree_core::store::OpenOptions;

use super::open_repo_opts;
use crate::opts::Invocation;

fn fsync_opts(inv: &Invocation) -> OpenOptions {
    OpenOptions {
        fsync: inv.flag("disable-fsync").then_some(false),
        ..OpenOptions::default()
    }
}

fn depth(inv: &Invocation) -> i64 {
    inv.int("depth").unwrap_or(0)
}

async fn open_localcache(paths: &[&str]) -> anyhow::Result<Vec<Repo>> {
    let mut out = Vec::new();
    for p in paths {
        let url = ostree_core::registry::repo_url(p)?;
        out.push(Repo::open(&url, OpenOptions::default()).await?);
    }
    Ok(out)
}

/// `ostree pull`.
pub fn pull(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo_opts(&inv, fsync_opts(&inv)).await?;
        let args = inv.positionals();
        if args.is_empty() {
            return Err(inv.usage_error("REMOTE must be specified"));
        }
        if inv.flag("dry-run") && !inv.flag("require-static-deltas") {
            bail!("--dry-run requires --require-static-deltas");
        }
        let mut refs = Vec::new();
        let mut overrides: Vec<Option<Checksum>> = Vec::new();
        let remote;
        if !args[0].contains(':') {
            remote = args[0].clone();
            for a in &args[1..] {
                match a.rsplit_once('@') {
                    Some((r, c)) => {
                        if !ostree_core::checksum::is_valid_hex(c) {
                            bail!("Invalid checksum '{c}'");
                        }
                        refs.push(r.to_string());
                        overrides.push(Some(Checksum::from_hex(c)?));
                    }
                    None => {
                        refs.push(a.clone());
                        overrides.push(None);
                    }
                }
            }
        } else {
            let (r, name) = ostree_core::repo::refs::parse_refspec(&args[0])?;
            remote = r.unwrap_or_default();
            refs.push(name);
            overrides.push(None);
        }
        let mut headers = Vec::new();
        for kv in inv.values("http-header") {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("Missing '=' in --http-header");
            };
            headers.push((k.to_string(), v.to_string()));
        }
        let localcache = open_localcache(&inv.values("localcache-repo")).await?;
        let untrusted = inv.flag("untrusted");
        let retries = inv.int("network-retries").unwrap_or(5);
        let opts = PullOptions {
            refs,
            override_commits: overrides,
            override_url: inv.value("url").map(str::to_string),
            subdirs: inv
                .values("subpath")
                .iter()
                .map(|s| s.to_string())
                .collect(),
            mirror: inv.flag("mirror"),
            commit_only: inv.flag("commit-metadata-only"),
            untrusted,
            bareuseronly_files: inv.flag("bareuseronly-files"),
            depth: depth(&inv),
            network_retries: if retries < 0 { 5 } else { retries as u32 },
            disable_static_deltas: inv.flag("disable-static-deltas"),
            require_static_deltas: inv.flag("require-static-deltas"),
            dry_run: inv.flag("dry-run"),
            timestamp_check: inv.flag("timestamp-check"),
            timestamp_check_from_rev: inv.value("timestamp-check-from-rev").map(str::to_string),
            localcache,
            http_headers: headers,
            append_user_agent: inv.value("append-user-agent").map(str::to_string),
            remotes_dir: RemotesDir::detect(&repo),
            cache_dir: inv.value("cache-dir").map(std::path::PathBuf::from),
            disable_verify_bindings: inv.flag("disable-verify-bindings"),
            http_trusted: inv.flag("http-trusted"),
            ..PullOptions::default()
        };
        let stats = ostree_core::pull::pull(&repo, &remote, opts).await?;
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            print!("{}", super::sign::pull_gpg_results(&stats)); // ostree: on a tty only
        }
        if inv.flag("dry-run") {
            println!("{}", stats.dry_run_line());
        } else {
            println!("{}", stats.status_line());
        }
        Ok(())
    })
}

/// `ostree pull-local`.
pub fn pull_local(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo_opts(&inv, fsync_opts(&inv)).await?;
        let args = inv.positionals();
        if args.is_empty() {
            crate::opts::eprint_text(&format!("{}\n", inv.help()));
            bail!("DESTINATION must be specified");
        }
        let src_arg = &args[0];
        let url = ostree_core::registry::repo_url(src_arg)?;
        let src = Repo::open(&url, OpenOptions::default()).await?;
        let remote = inv.value("remote").map(str::to_string);
        if (inv.flag("gpg-verify") || inv.flag("gpg-verify-summary")) && remote.is_none() {
            bail!("Must specify remote name to enable gpg verification");
        }
        let opts = PullOptions {
            refs: args[1..].to_vec(),
            untrusted: inv.flag("untrusted"),
            bareuseronly_files: inv.flag("bareuseronly-files"),
            commit_only: inv.flag("commit-metadata-only"),
            depth: depth(&inv),
            ref_remote: remote,
            gpg_verify: inv.flag("gpg-verify").then_some(true),
            gpg_verify_summary: inv.flag("gpg-verify-summary").then_some(true),
            disable_verify_bindings: inv.flag("disable-verify-bindings"),
            ..PullOptions::default()
        };
        let stats = if inv.flag("require-static-deltas") {
            // As ostree: deltas need the fetcher path, through a file:// URL.
            let path = crate::opts::absolute(std::path::Path::new(src_arg));
            let url = format!("file://{}", path.display());
            let opts = PullOptions {
                require_static_deltas: true,
                ..opts
            };
            ostree_core::pull::pull(&repo, &url, opts).await?
        } else {
            ostree_core::pull::pull_local(&repo, &src, opts).await?
        };
        println!("{}", stats.status_line());
        Ok(())
    })
}
