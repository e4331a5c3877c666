//! `ostree push [--repo=LOCAL] DEST REF...`: send commits to any store the registry opens
//! (`s3://BUCKET/PREFIX`, `file:///PATH`, a remote whose URL is one of those). An extension
//! of ours (ostree has no push); the work is [`ostree_core::push`].

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use ostree_core::push::{PushOptions, open_destination, push as push_refs};
use ostree_core::sign::SignerConfig;
use ostree_core::sign::policy::GPG;

use super::open_repo;
use super::summary::format_size;
use crate::opts::Invocation;

/// `ostree push`.
pub fn push(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let args = inv.positionals();
        if args.len() < 2 {
            return Err(inv.usage_error("DEST and at least one REF must be specified"));
        }
        let (dest_arg, refs) = (args[0].clone(), args[1..].to_vec());
        let mut opts = PushOptions {
            dry_run: inv.flag("dry-run"),
            force: inv.flag("force"),
            update_summary: !inv.flag("no-update-summary"),
            ..PushOptions::default()
        };
        if let Some(d) = inv.int("depth") {
            opts.depth = d;
        }
        if let Some(j) = inv.int("jobs") {
            if j < 1 {
                return Err(inv.usage_error("--jobs must be at least 1"));
            }
            opts.jobs = j as usize;
        }
        opts.static_deltas = !inv.flag("no-static-deltas");
        // Summary signers, as `summary -u` builds them (the signature type is checked first).
        let registry = ostree_core::registry::Registry::global();
        let sign_keys = inv.values("sign");
        let sign_type = inv.value("sign-type").unwrap_or("ed25519");
        if !sign_keys.is_empty() {
            registry.signer_plugin(sign_type)?;
        }
        let homedir = inv.value("gpg-homedir").map(std::path::PathBuf::from);
        for key in inv.values("gpg-sign") {
            let config = SignerConfig {
                key: key.to_string(),
                homedir: homedir.clone(),
            };
            opts.summary_signers
                .push(Arc::from(registry.build_signer(GPG, &config)?));
        }
        for key in &sign_keys {
            let config = SignerConfig {
                key: key.to_string(),
                homedir: None,
            };
            opts.summary_signers
                .push(Arc::from(registry.build_signer(sign_type, &config)?));
        }
        if !opts.summary_signers.is_empty() && !opts.update_summary {
            return Err(inv.usage_error(
                "--sign and --gpg-sign sign the regenerated summary; they cannot be combined \
                 with --no-update-summary",
            ));
        }
        let local = open_repo(&inv).await?;
        let dest = open_destination(&local, &dest_arg, !opts.dry_run)
            .await
            .with_context(|| format!("opening {dest_arg}"))?;
        let progress = inv.progress();
        let report = push_refs(&local, &dest, &refs, &opts, progress.as_ref())
            .await
            .with_context(|| format!("pushing to {}", dest.url()))?;
        let mut out = String::new();
        let verb = if opts.dry_run { "Would push" } else { "Pushed" };
        for r in &report.refs {
            let old = r.old.map_or("(none)".to_string(), |c| c.to_hex());
            if r.old == Some(r.new) {
                out.push_str(&format!("{}: up to date at {}\n", r.name, r.new));
            } else {
                out.push_str(&format!("{verb} {}: {old} -> {}\n", r.name, r.new));
            }
        }
        let what = if opts.dry_run {
            "to upload"
        } else {
            "uploaded"
        };
        out.push_str(&format!(
            "{} objects {what} ({}), {} commits; {} not in a destination manifest{}\n",
            report.uploaded,
            format_size(report.bytes),
            report.commits,
            report.candidates,
            if report.resumed {
                format!(
                    ", {} checked (resuming: the destination may hold some already)",
                    report.checked
                )
            } else {
                String::new()
            }
        ));
        if report.deltas > 0 {
            out.push_str(&format!("{} static deltas {what}\n", report.deltas));
        }
        if report.summary_signed {
            out.push_str(&format!(
                "Summary signed ({} keys)\n",
                opts.summary_signers.len()
            ));
        }
        crate::opts::print_text(&out);
        Ok(())
    })
}
