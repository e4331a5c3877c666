//! `ostree push [--repo=LOCAL] DEST REF...`: send commits to any store the registry opens
//! (`s3://BUCKET/PREFIX`, `file:///PATH`, a remote whose URL is one of those). An extension
//! of ours (ostree has no push); the work is [`ostree_core::push`].

use anyhow::Context;
use futures::future::BoxFuture;
use ostree_core::push::{PushOptions, open_destination, push as push_refs};

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
        crate::opts::print_text(&out);
        Ok(())
    })
}
