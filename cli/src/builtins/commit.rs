//! `ostree commit`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use ostree_core::gvariant::Variant;
use ostree_core::objects::{Commit, Metadata, S_IFMT, S_IFREG};
use ostree_core::repo::commit::{
    CommitModifier, CommitStats, EntryInfo, FilterResult, MutableTree,
};
use ostree_core::store::{OpenOptions, RefExpect};

use super::{open_repo_opts, parse_boolean};
use crate::opts::Invocation;

/// Parse `--timestamp` values the way ostree's `parse_datetime` is used: `@EPOCH`,
/// `YYYY-MM-DD`, `YYYY-MM-DD[T ]HH:MM[:SS][Z|±HH[:MM]]`.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let t = s.trim();
    if let Some(n) = t.strip_prefix('@') {
        return n.parse::<i64>().ok().and_then(|v| u64::try_from(v).ok());
    }
    let (date, rest) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut off) = (0i64, 0i64, 0i64, 0i64);
    if !rest.is_empty() {
        let (time, tz) = match rest.find(['Z', 'z', '+', '-']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut tp = time.trim().split(':');
        h = tp.next()?.parse().ok()?;
        mi = tp.next().unwrap_or("0").parse().ok()?;
        let s = tp.next().unwrap_or("0");
        sec = s.split('.').next()?.parse().ok()?;
        if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let tz = tz.trim();
        if !tz.is_empty() && !tz.eq_ignore_ascii_case("z") {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let digits: String = tz[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            let (oh, om) = match digits.len() {
                2 => (digits.parse::<i64>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i64>().ok()?,
                    digits[2..].parse::<i64>().ok()?,
                ),
                _ => return None,
            };
            off = sign * (oh * 3600 + om * 60);
        }
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + sec - off;
    u64::try_from(secs).ok()
}

/// Timestamp of a new commit without `--timestamp`: `SOURCE_DATE_EPOCH` or now.
pub fn default_timestamp() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => {
            // g_ascii_strtoll semantics: leading space, optional sign, digits; the rest ignored.
            let t = v.trim_start();
            let (neg, digits) = match t.as_bytes().first() {
                Some(b'-') => (true, &t[1..]),
                Some(b'+') => (false, &t[1..]),
                _ => (false, t),
            };
            let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
            if digits.is_empty() {
                bail!("Failed to convert SOURCE_DATE_EPOCH");
            }
            let n: i64 = format!("{}{digits}", if neg { "-" } else { "" })
                .parse()
                .map_err(|_| {
                    anyhow::anyhow!("Parsing SOURCE_DATE_EPOCH: Numerical result out of range")
                })?;
            Ok(n as u64)
        }
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

fn parse_kv(s: &str) -> anyhow::Result<(&str, &str)> {
    s.split_once('=')
        .ok_or_else(|| anyhow::anyhow!("Missing '=' in KEY=VALUE metadata '{s}'"))
}

/// `ostree commit`.
pub fn commit(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(inv))
}

async fn run(inv: Invocation) -> anyhow::Result<()> {
    let fsync = match inv.value("fsync") {
        Some(v) => Some(parse_boolean(v)?),
        None => None,
    };
    let repo = open_repo_opts(
        &inv,
        OpenOptions {
            fsync,
            ..Default::default()
        },
    )
    .await?;
    // Held for the whole transaction, as ostree's prepare_transaction does.
    let _lock = repo.lock(false).await?;
    let branch = inv.value("branch").map(str::to_string);
    let orphan = inv.flag("orphan");
    if branch.is_none() && !orphan {
        bail!("A branch must be specified with --branch, or use --orphan");
    }
    let branch_spec = match &branch {
        Some(b) => Some(ostree_core::repo::refs::parse_refspec(b)?),
        None => None,
    };
    // Current value of the branch: the parent unless --parent says otherwise.
    let current = match &branch_spec {
        Some((remote, name)) => {
            repo.store()
                .read_ref(&ostree_core::repo::refs::store_ref_name(
                    remote.as_deref(),
                    name,
                ))
                .await?
        }
        None => None,
    };
    let parent = match inv.value("parent") {
        Some("none") => None,
        Some(p) => Some(ostree_core::Checksum::from_hex(p)?),
        None if !orphan => current,
        None => None,
    };
    let keep = inv.values("keep-metadata");
    if parent.is_none() && !keep.is_empty() {
        bail!("Either --branch or --parent must be specified when using --keep-metadata");
    }
    let owner_uid = inv.int("owner-uid");
    let owner_gid = inv.int("owner-gid");
    let canonical = inv.flag("canonical-permissions");
    if canonical && owner_uid.is_some_and(|u| u > 0) {
        bail!("Cannot specify both --canonical-permissions and non-zero --owner-uid");
    }
    if canonical && owner_gid.is_some_and(|g| g > 0) {
        bail!("Cannot specify both --canonical-permissions and non-zero --owner-gid");
    }
    if inv.value("selinux-policy").is_some() || inv.flag("selinux-policy-from-base") {
        bail!("SELinux labeling is not supported: this system has no SELinux policy support");
    }
    let ro_exec = inv.flag("mode-ro-executables");

    // Metadata, in ostree's insertion order.
    let mut metadata = Metadata::new();
    for s in inv.values("add-metadata-string") {
        let (k, v) = parse_kv(s)?;
        metadata
            .0
            .push((k.to_string(), Variant::Str(v.to_string())));
    }
    for s in inv.values("add-metadata") {
        let (k, v) = parse_kv(s)?;
        let val =
            ostree_core::gvariant::text::parse(v, None).with_context(|| format!("Parsing {s}"))?;
        metadata.0.push((k.to_string(), val));
    }
    if !keep.is_empty() {
        let Some(p) = parent else {
            bail!("Either --branch or --parent must be specified when using --keep-metadata");
        };
        let pc = repo.load_commit(&p).await?;
        for k in &keep {
            let v = pc
                .metadata
                .get(k)
                .ok_or_else(|| anyhow::anyhow!("Missing metadata key '{k}' from commit '{p}'"))?;
            metadata.0.push((k.to_string(), v.clone()));
        }
    }
    let mut detached = Metadata::new();
    for s in inv.values("add-detached-metadata-string") {
        let (k, v) = parse_kv(s)?;
        detached
            .0
            .push((k.to_string(), Variant::Str(v.to_string())));
    }

    let body = if let Some(f) = inv.value("body-file") {
        std::fs::read_to_string(f).with_context(|| format!("Reading {f}"))?
    } else {
        inv.value("body").unwrap_or("").to_string()
    };
    let subject = inv.value("subject").unwrap_or("").to_string();
    if inv.flag("editor") {
        bail!("--editor is not supported; use --subject/--body");
    }

    let filter: Option<ostree_core::repo::commit::CommitFilter> =
        if owner_uid.is_some() || owner_gid.is_some() || ro_exec {
            let (u, g) = (owner_uid, owner_gid);
            Some(Arc::new(move |_path: &str, info: &mut EntryInfo| {
                if let Some(u) = u {
                    info.uid = u as u32;
                }
                if let Some(g) = g {
                    info.gid = g as u32;
                }
                if ro_exec && info.mode & S_IFMT == S_IFREG && info.mode & 0o111 != 0 {
                    info.mode &= !0o222;
                }
                FilterResult::Allow
            }))
        } else {
            None
        };
    let modifier = CommitModifier {
        canonical_permissions: canonical,
        skip_xattrs: inv.flag("no-xattrs"),
        filter,
        progress: Some(inv.progress()),
    };

    let mut stats = CommitStats::default();
    let mut mtree = MutableTree::new();
    if let Some(base) = inv.value("base") {
        let b = super::resolve(&repo, base).await?;
        repo.write_commit_tree_to_mtree(&b, &mut mtree).await?;
    }
    let mut trees: Vec<String> = inv.values("tree").iter().map(|s| s.to_string()).collect();
    if trees.is_empty() {
        let path = inv
            .positionals()
            .first()
            .cloned()
            .unwrap_or_else(|| ".".to_string());
        trees.push(format!("dir={path}"));
    }
    for t in &trees {
        let Some((ty, val)) = t.split_once('=') else {
            bail!("Missing type in tree specification '{t}'");
        };
        match ty {
            "dir" => {
                repo.write_dir_to_mtree(Path::new(val), &mut mtree, &modifier, &mut stats)
                    .await?
            }
            "ref" => {
                let c = super::resolve(&repo, val).await?;
                repo.write_commit_tree_to_mtree_modified(&c, &mut mtree, &modifier, &mut stats)
                    .await?;
            }
            "tar" => bail!("--tree=tar= is not supported yet"),
            other => bail!("Invalid tree type specification '{other}'"),
        }
    }
    let (root_tree, root_meta) = repo.write_mtree(&mtree, &mut stats).await?;

    let mut skip = false;
    if inv.flag("skip-if-unchanged")
        && let Some(p) = parent
    {
        let pc = repo.load_commit(&p).await?;
        skip = pc.root_tree == root_tree && pc.root_meta == root_meta;
    }
    let checksum = if skip {
        parent.unwrap_or_default()
    } else {
        if !inv.flag("no-bindings") {
            let mut refs: Vec<String> = branch.iter().cloned().collect();
            refs.extend(inv.values("bind-ref").iter().map(|s| s.to_string()));
            refs.sort();
            metadata
                .0
                .push(("ostree.ref-binding".into(), Variant::str_array(&refs)));
            if metadata.get("ostree.collection-binding").is_none()
                && let Some(cid) = repo.collection_id()
            {
                metadata
                    .0
                    .push(("ostree.collection-binding".into(), Variant::Str(cid)));
            }
        }
        if inv.flag("bootable") {
            bail!("--bootable is not supported yet");
        }
        if inv.flag("generate-sizes") {
            bail!("--generate-sizes is not supported yet");
        }
        if !inv.values("gpg-sign").is_empty() || !inv.values("sign").is_empty() {
            bail!("signing commits is not supported yet");
        }
        let timestamp = match inv.value("timestamp") {
            Some(ts) => {
                parse_timestamp(ts).ok_or_else(|| anyhow::anyhow!("Could not parse '{ts}'"))?
            }
            None => default_timestamp()?,
        };
        let commit = Commit {
            metadata,
            parent,
            related: vec![],
            subject,
            body,
            timestamp,
            root_tree,
            root_meta,
        };
        let det = (!detached.is_empty()).then_some(&detached);
        let c = repo.write_commit(&commit, det, &mut stats).await?;
        // Like ostree, the ref is set unconditionally at the end of the transaction
        // (concurrent commits to one branch both succeed; the last one wins).
        let refs = match &branch_spec {
            Some((remote, name)) => vec![(remote.clone(), name.clone(), RefExpect::Any, Some(c))],
            None => vec![],
        };
        repo.commit_transaction(&refs).await?;
        c
    };
    inv.progress().finish();
    if inv.flag("table-output") {
        println!("Commit: {checksum}");
        println!("Metadata Total: {}", stats.metadata_objects_total);
        println!("Metadata Written: {}", stats.metadata_objects_written);
        println!("Content Total: {}", stats.content_objects_total);
        println!("Content Written: {}", stats.content_objects_written);
        println!("Content Cache Hits: 0");
        println!("Content Bytes Written: {}", stats.content_bytes_written);
    } else {
        println!("{checksum}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("@1234567890"), Some(1234567890));
        assert_eq!(parse_timestamp("2021-01-01T00:00:00Z"), Some(1609459200));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20Z"), Some(1700000000));
        assert_eq!(parse_timestamp("2021-01-01"), Some(1609459200));
        assert_eq!(
            parse_timestamp("2021-01-01 01:00:00+01:00"),
            Some(1609459200)
        );
        assert_eq!(parse_timestamp("garbage"), None);
    }
}
