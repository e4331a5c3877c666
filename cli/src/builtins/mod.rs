//! Command implementations. Each command of `crate::commands` maps to a handler here.

use futures::future::BoxFuture;

use crate::opts::Invocation;

/// Placeholder handler for commands that are not implemented yet.
pub fn unimplemented_handler(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move { anyhow::bail!("{}: not implemented yet", inv.command_path().join(" ")) })
}
