//! `ostree export`.

use std::io::BufWriter;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;

use anyhow::Context;
use futures::future::BoxFuture;
use ostree_core::repo::export::ExportOptions;

use super::{open_repo, resolve};
use crate::opts::Invocation;

/// `ostree export`.
pub fn export(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(inv))
}

async fn run(inv: Invocation) -> anyhow::Result<()> {
    let repo = open_repo(&inv).await?;
    let Some(rev) = inv.positionals().first().cloned() else {
        return Err(inv.usage_error("A COMMIT argument is required"));
    };
    // Like ostree, the output is opened before the commit is resolved; like libarchive, the
    // end is padded to a 10240-byte block except when writing to a regular file. ostree writes
    // to a terminal too (it does not refuse one).
    let (file, pad) = match inv.value("output") {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|_| anyhow::anyhow!("Failed to open '{path}'"))?;
            let ft = f.metadata().context("stat output")?.file_type();
            let pad = ft.is_char_device() || ft.is_block_device() || ft.is_fifo();
            (f, pad)
        }
        None => {
            let fd = std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("duplicating stdout")?;
            (std::fs::File::from(fd), true)
        }
    };
    let commit = resolve(&repo, &rev).await?;
    let opts = ExportOptions {
        subpath: inv.value("subpath").map(str::to_string),
        prefix: inv.value("prefix").map(str::to_string),
        pad_to_block: pad,
    };
    let out = BufWriter::with_capacity(1 << 20, file);
    repo.export_tar(&commit, &opts, out).await?;
    Ok(())
}
