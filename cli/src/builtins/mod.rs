//! Command implementations. Each command of `crate::commands` maps to a handler here; handlers
//! are thin: parse options into library calls on [`ostree_core::repo::Repo`] and print.

use futures::future::BoxFuture;

use crate::opts::Invocation;

pub mod admin;
pub mod basic;
pub mod commit;
pub mod delta;
pub mod diff;
pub mod export;
pub mod finder;
pub mod inspect;
pub mod prune;
pub mod pull;
pub mod push;
pub mod refs;
pub mod remote;
pub mod sign;
pub mod summary;

pub use basic::{checkout, config, fsck, init, rev_parse};
pub use commit::commit;
pub use delta::{
    static_delta_apply_offline, static_delta_delete, static_delta_generate, static_delta_indexes,
    static_delta_list, static_delta_reindex, static_delta_show, static_delta_verify,
};
pub use diff::{checksum, diff};
pub use export::export;
pub use inspect::{cat, log, ls, show};
pub use prune::prune;
pub use pull::{pull, pull_local};
pub use refs::{refs, reset};
pub use summary::summary;

/// Placeholder handler for commands that are not implemented yet.
pub fn unimplemented_handler(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move { anyhow::bail!("{}: not implemented yet", inv.command_path().join(" ")) })
}

/// Open the repository named by `--repo` (or its defaults).
pub async fn open_repo(inv: &Invocation) -> anyhow::Result<ostree_core::repo::Repo> {
    open_repo_opts(inv, ostree_core::store::OpenOptions::default()).await
}

/// Open with options (e.g. an fsync override).
pub async fn open_repo_opts(
    inv: &Invocation,
    opts: ostree_core::store::OpenOptions,
) -> anyhow::Result<ostree_core::repo::Repo> {
    let arg = inv.repo_path()?;
    let url = ostree_core::registry::repo_url(&arg)?;
    Ok(ostree_core::repo::Repo::open(&url, opts).await?)
}

/// Parse an ostree boolean (`ot_parse_boolean`).
pub fn parse_boolean(s: &str) -> anyhow::Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "none" => Ok(false),
        _ => anyhow::bail!("Invalid boolean argument '{s}'"),
    }
}

/// Resolve a rev to a checksum, erroring as ostree does.
pub async fn resolve(
    repo: &ostree_core::repo::Repo,
    rev: &str,
) -> anyhow::Result<ostree_core::Checksum> {
    repo.resolve_rev(rev, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("Refspec '{rev}' not found"))
}
