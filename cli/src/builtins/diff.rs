//! `ostree diff` and `ostree checksum`.

use std::path::PathBuf;

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::repo::diff::{DiffOptions, DiffSide, checksum_local};

use super::summary::format_size;
use super::{open_repo, resolve};
use crate::opts::Invocation;

/// A `REV_OR_DIR` argument: a directory when it starts with `/` or `./`, else a rev.
async fn side(repo: &ostree_core::repo::Repo, arg: &str) -> anyhow::Result<DiffSide> {
    if arg.starts_with('/') || arg.starts_with("./") {
        Ok(DiffSide::Dir(PathBuf::from(arg)))
    } else {
        Ok(DiffSide::Commit(resolve(repo, arg).await?))
    }
}

/// `ostree diff`.
pub fn diff(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        if args.is_empty() {
            crate::opts::eprint_text(&format!("{}\n", inv.help()));
            bail!("REV must be specified");
        }
        let (src, target) = if args.len() == 1 {
            (format!("{}^", args[0]), args[0].clone())
        } else {
            (args[0].clone(), args[1].clone())
        };
        let stats = inv.flag("stats");
        let fs_diff = inv.flag("fs-diff") || !stats;
        let id = |name: &str| -> anyhow::Result<Option<u32>> {
            match inv.int(name) {
                None | Some(-1) => Ok(None),
                Some(v) => {
                    Ok(Some(u32::try_from(v).map_err(|_| {
                        anyhow::anyhow!("Invalid --{name} value {v}")
                    })?))
                }
            }
        };
        if fs_diff {
            let opts = DiffOptions {
                ignore_xattrs: inv.flag("no-xattrs"),
                owner_uid: id("owner-uid")?,
                owner_gid: id("owner-gid")?,
            };
            let a = side(&repo, &src).await?;
            let b = side(&repo, &target).await?;
            let result = repo.diff_dirs(&a, &b, &opts).await?;
            let mut out = String::new();
            for l in result.lines() {
                out.push_str(&l);
                out.push('\n');
            }
            crate::opts::print_text(&out);
        }
        if stats {
            let a = resolve(&repo, &src).await?;
            let b = resolve(&repo, &target).await?;
            let s = repo.diff_stats(&a, &b).await?;
            crate::opts::print_text(&format!(
                "[A] Object Count: {}\n[B] Object Count: {}\nCommon Object Count: {}\nCommon Object Size: {}\n",
                s.a_count,
                s.b_count,
                s.common_count,
                format_size(s.common_size)
            ));
        }
        Ok(())
    })
}

/// `ostree checksum PATH`.
pub fn checksum(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let Some(path) = inv.positionals().first() else {
            bail!("A filename must be given");
        };
        let p = PathBuf::from(path);
        let md = std::fs::symlink_metadata(&p)
            .map_err(|e| anyhow::anyhow!("Error getting file info: {e}"))?;
        let c = checksum_local(&p, &md, inv.flag("ignore-xattrs"), None, None)?;
        crate::opts::print_text(&format!("{c}\n"));
        Ok(())
    })
}
