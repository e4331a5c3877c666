//! `ostree static-delta list|show|delete|generate|apply-offline|verify|indexes|reindex`
//! (`ot-builtin-static-delta.c`), thin over [`ostree_core::delta`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::delta::format::validate_checksum_string;
use ostree_core::delta::generate::glib_format_size;
use ostree_core::delta::{
    ApplyOptions, DeltaName, DeltaSource, Endianness, EndiannessInfo, GenerateOptions,
};

use super::{open_repo, parse_boolean};
use crate::opts::Invocation;

/// `g_ascii_strtoull(s, NULL, 10)` truncated to `guint32`, as the C CLI passes megabytes.
fn strtoull_u32(s: &str) -> u64 {
    let t = s.trim_start();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let v: u64 = digits
        .parse()
        .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX });
    u64::from(v as u32)
}

/// `static-delta list`.
pub fn static_delta_list(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let names = repo.list_static_deltas().await?;
        let mut out = String::new();
        if names.is_empty() {
            out.push_str("(No static deltas)\n");
        }
        for n in names {
            out.push_str(&format!("{n}\n"));
        }
        std::io::stdout().write_all(out.as_bytes())?;
        Ok(())
    })
}

/// `static-delta indexes`.
pub fn static_delta_indexes(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let idx = repo.list_static_delta_indexes().await?;
        let mut out = String::new();
        if idx.is_empty() {
            out.push_str("(No static deltas indexes)\n");
        }
        for c in idx {
            out.push_str(&format!("{c}\n"));
        }
        std::io::stdout().write_all(out.as_bytes())?;
        Ok(())
    })
}

/// `static-delta reindex [--to=CHECKSUM]`.
pub fn static_delta_reindex(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let to = match inv.value("to") {
            Some(t) => Some(validate_checksum_string(t)?),
            None => None,
        };
        repo.reindex_static_deltas(to.as_ref()).await?;
        Ok(())
    })
}

/// `static-delta delete DELTA`.
pub fn static_delta_delete(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(id) = inv.positionals().first() else {
            bail!("DELTA must be specified");
        };
        let name = DeltaName::parse(id)?;
        repo.delete_static_delta(&name).await?;
        Ok(())
    })
}

/// `static-delta show DELTA` (a name, or a path containing `/` to a superblock file).
pub fn static_delta_show(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(id) = inv.positionals().first().cloned() else {
            bail!("DELTA must be specified");
        };
        let src = if id.contains('/') {
            DeltaSource::Local(PathBuf::from(&id))
        } else {
            let name = DeltaName::parse(&id)?;
            if !repo.static_delta_exists(&name).await? {
                bail!(
                    "openat({}): No such file or directory",
                    name.superblock_path()
                );
            }
            DeltaSource::Repo(name)
        };
        let (sb, dir) = repo.read_static_delta_superblock(&src).await?;
        let mut out = String::new();
        out.push_str(&format!("Delta: {id}\n"));
        out.push_str(&format!(
            "Signed: {}\n",
            if sb
                .signatures
                .as_ref()
                .is_some_and(|s| s.0.iter().any(|(k, _)| k.starts_with("ostree.sign.")))
            {
                "yes"
            } else {
                "no"
            }
        ));
        match &sb.from {
            Some(f) => out.push_str(&format!("From: {f}\n")),
            None => out.push_str("From <scratch>\n"),
        }
        out.push_str(&format!("To: {}\n", sb.to));
        let endian = match sb.endianness {
            EndiannessInfo::Known {
                endianness: Endianness::Big,
                heuristic,
            } => {
                if heuristic {
                    "big (heuristic)"
                } else {
                    "big"
                }
            }
            EndiannessInfo::Known {
                endianness: Endianness::Little,
                heuristic,
            } => {
                if heuristic {
                    "little (heuristic)"
                } else {
                    "little"
                }
            }
            EndiannessInfo::Invalid => "invalid",
        };
        out.push_str(&format!("Endianness: {endian}\n"));
        out.push_str(&format!("Timestamp: {}\n", sb.timestamp));
        out.push_str(&format!(
            "Number of parents: {}\n",
            sb.dependents.len() / 64
        ));
        out.push_str(&format!(
            "Number of fallback entries: {}\n",
            sb.fallbacks.len()
        ));
        let (mut fsize, mut fusize) = (0u64, 0u64);
        for f in &sb.fallbacks {
            out.push_str(&format!("  {}\n", f.key.checksum));
            fsize = fsize.wrapping_add(f.size);
            fusize = fusize.wrapping_add(f.usize);
        }
        out.push_str(&format!(
            "Total Fallback Size: {fsize} ({})\n",
            glib_format_size(fsize)
        ));
        out.push_str(&format!(
            "Total Fallback Uncompressed Size: {fusize} ({})\n",
            glib_format_size(fusize)
        ));
        out.push_str(&format!("Number of parts: {}\n", sb.parts.len()));
        let infos = repo.static_delta_part_infos(&sb, dir.as_deref()).await?;
        let (mut size, mut usize) = (0u64, 0u64);
        let mut failure = None;
        for (i, info) in infos.into_iter().enumerate() {
            let h = &sb.parts[i];
            size = size.wrapping_add(h.size);
            usize = usize.wrapping_add(h.usize);
            out.push_str(&format!(
                "PartMeta{i}: nobjects={} size={} usize={}\n",
                h.objects.len(),
                h.size,
                h.usize
            ));
            match info {
                Ok(p) => {
                    out.push_str(&format!(
                        "PartPayload{i}: nmodes={} nxattrs={} blobsize={} opsize={}\n",
                        p.n_modes, p.n_xattrs, p.blob_size, p.op_size
                    ));
                    let n = p.stats.n_ops;
                    out.push_str(&format!(
                        "PartPayloadOps{i}: openspliceclose={} open={} write={} setread={} unsetread={} close={} bspatch={}\n",
                        n[0], n[1], n[2], n[3], n[4], n[5], n[6]
                    ));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            std::io::stdout().write_all(out.as_bytes())?;
            return Err(e.into());
        }
        out.push_str(&format!(
            "Total Part Size: {size} ({})\n",
            glib_format_size(size)
        ));
        out.push_str(&format!(
            "Total Part Uncompressed Size: {usize} ({})\n",
            glib_format_size(usize)
        ));
        let (ts, tu) = (size.wrapping_add(fsize), usize.wrapping_add(fusize));
        out.push_str(&format!("Total Size: {ts} ({})\n", glib_format_size(ts)));
        out.push_str(&format!(
            "Total Uncompressed Size: {tu} ({})\n",
            glib_format_size(tu)
        ));
        std::io::stdout().write_all(out.as_bytes())?;
        Ok(())
    })
}

/// Transparent huge pages for glibc's malloc (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`) in
/// `static-delta generate`: xz's match finder walks tables of ~140 MiB an encoder at random,
/// and with 4 KiB pages TLB misses cost ~20% of the generation's CPU. glibc reads tunables at
/// startup only, so when the kernel gives huge pages on request only (`madvise` mode), the
/// command re-executes itself once with the tunable added. Skipped when GLIBC_TUNABLES already
/// names it or OSTREE_RS_DELTA_THP=0; a failed exec just carries on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reexec_with_huge_pages() {
    use std::os::unix::process::CommandExt;
    const TUNABLE: &str = "glibc.malloc.hugetlb";
    if std::env::var_os("OSTREE_RS_DELTA_THP").is_some_and(|v| v == "0") {
        return;
    }
    let Ok(current) = std::env::var("GLIBC_TUNABLES").or_else(|e| match e {
        std::env::VarError::NotPresent => Ok(String::new()),
        other => Err(other),
    }) else {
        return;
    };
    if current.contains(TUNABLE) {
        return;
    }
    let madvise_mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|m| m.contains("[madvise]"));
    if !madvise_mode {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return;
    };
    let value = if current.is_empty() {
        format!("{TUNABLE}=1")
    } else {
        format!("{current}:{TUNABLE}=1")
    };
    // Returns only if the exec failed.
    let _ = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn reexec_with_huge_pages() {}

/// `static-delta generate`.
pub fn static_delta_generate(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        reexec_with_huge_pages();
        let repo = open_repo(&inv).await?;
        let to_rev = match inv.value("to") {
            Some(t) => t.to_string(),
            None => match inv.positionals().first() {
                Some(t) => t.clone(),
                None => bail!("TO revision must be specified"),
            },
        };
        let from_source = if inv.flag("empty") {
            if inv.value("from").is_some() {
                bail!("Cannot specify both --empty and --from=REV");
            }
            None
        } else {
            Some(match inv.value("from") {
                Some(f) => f.to_string(),
                None => format!("{to_rev}^"),
            })
        };
        let from = match &from_source {
            Some(f) => Some(super::resolve(&repo, f).await?),
            None => None,
        };
        let to = super::resolve(&repo, &to_rev).await?;
        let name = DeltaName { from, to };
        if inv.flag("if-not-exists") && repo.static_delta_exists(&name).await? {
            println!("Delta {name} already exists.");
            return Ok(());
        }
        let mut endianness = match inv.value("set-endianness") {
            Some("l") => Endianness::Little,
            Some("B") => Endianness::Big,
            Some(o) => bail!("Invalid endianness '{o}'"),
            None => Endianness::host(),
        };
        if inv.flag("swap-endianness") {
            endianness = endianness.swapped();
        }
        let signers = super::sign::delta_signers(&inv)?; // --sign, --keys-file (issue 5)
        let mut opts = GenerateOptions::new(from, to);
        opts.signers = signers;
        if let Some(v) = inv.value("min-fallback-size") {
            opts.min_fallback_size = strtoull_u32(v) * 1000 * 1000;
        }
        if let Some(v) = inv.value("max-bsdiff-size") {
            opts.max_bsdiff_size = strtoull_u32(v) * 1000 * 1000;
        }
        if let Some(v) = inv.value("max-chunk-size") {
            opts.max_chunk_size = strtoull_u32(v) * 1000 * 1000;
        }
        opts.bsdiff = !inv.flag("disable-bsdiff");
        opts.inline_parts = inv.flag("inline");
        opts.endianness = endianness;
        if let Some(f) = inv.value("filename") {
            if f.is_empty() {
                bail!("Invalid 'filename' parameter");
            }
            opts.filename = Some(PathBuf::from(f));
        }
        // Tuning knobs for benchmarks (not ostree options).
        if let Some(j) = std::env::var("OSTREE_RS_DELTA_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            opts.jobs = j;
        }
        if let Some(d) = std::env::var("OSTREE_RS_DELTA_DICT_MIB")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            opts.xz_dict_size = Some(d << 20);
        }
        if let Some(m) = std::env::var("OSTREE_RS_DELTA_MEM_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            opts.memory_budget = m << 20;
        }
        if let Some(m) = std::env::var("OSTREE_RS_DELTA_PART_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            opts.part_target = Some(m * 1000 * 1000);
        }
        opts.log = Some(Arc::new(|s: &str| eprintln!("{s}")));
        let mut out = std::io::stdout();
        write!(
            out,
            "Generating static delta:\n  From: {}\n  To:   {}\n",
            from.map(|f| f.to_string())
                .unwrap_or_else(|| "empty".into()),
            to
        )?;
        out.flush()?;
        repo.generate_static_delta(&opts).await?;
        Ok(())
    })
}

/// `static-delta apply-offline PATH`.
pub fn static_delta_apply_offline(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(path) = inv.positionals().first() else {
            bail!("PATH must be specified");
        };
        // Signature engine (issue 5): keys after PATH, --keys-file, --keys-dir, system keys.
        let verifier = super::sign::delta_verifier(&inv, &inv.positionals()[1..])?;
        let src = DeltaSource::Local(PathBuf::from(path));
        let (sb, _) = repo.read_static_delta_superblock(&src).await?;
        if sb.signatures.is_some() {
            let verify = repo
                .config()
                .keyfile
                .get_string("core", "sign-verify-deltas")
                .map(|v| parse_boolean(&v))
                .transpose()?
                .unwrap_or(false);
            if verify && verifier.is_none() {
                bail!("Key is mandatory to check delta signature");
            }
            if let Some(v) = &verifier {
                let raw = super::sign::delta_superblock_bytes(&repo, path).await?;
                ostree_core::sign::policy::verify_delta_superblock(&raw, v.as_ref())
                    .map_err(|e| anyhow::anyhow!("Delta signature verification failed: {e}"))?;
            }
        }
        repo.apply_static_delta(&src, &ApplyOptions::default())
            .await?;
        Ok(())
    })
}

/// `static-delta verify DELTA [KEY-ID...]`: needs a signature engine; none is built in.
pub fn static_delta_verify(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(id) = inv.positionals().first().cloned() else {
            bail!("DELTA must be specified");
        };
        if !id.contains('/') {
            DeltaName::parse(&id)?;
        }
        // Issue 5: ostree prints the verdict, then the error if any.
        let verifier = super::sign::delta_verifier(&inv, &inv.positionals()[1..])?
            .ok_or_else(|| anyhow::anyhow!("signature: ed25519: no keys loaded"))?;
        let raw = super::sign::delta_superblock_bytes(&repo, &id).await?;
        let r = ostree_core::sign::policy::verify_delta_superblock(&raw, verifier.as_ref());
        println!("Verification {}", if r.is_ok() { "OK" } else { "fails" });
        r?;
        Ok(())
    })
}
