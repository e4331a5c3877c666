//! `ostree summary` (-u/--update with --add-metadata, --view, --raw).

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::gvariant::Variant;
use ostree_core::gvariant::text::{parse as gparse, print as gprint};
use ostree_core::objects::Metadata;
use ostree_core::repo::summary::{self, Summary, SummaryRef};
use ostree_core::sign::policy::{self, GPG};
use ostree_core::sign::{Signer, SignerConfig};

use super::open_repo;
use crate::opts::Invocation;

/// `g_format_size`: SI units, one decimal, a no-break space before the unit (`102 bytes`,
/// `1.5\u{a0}kB`).
pub fn format_size(size: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("kB", 1_000),
        ("MB", 1_000_000),
        ("GB", 1_000_000_000),
        ("TB", 1_000_000_000_000),
        ("PB", 1_000_000_000_000_000),
        ("EB", 1_000_000_000_000_000_000),
    ];
    if size < 1000 {
        return if size == 1 {
            "1 byte".to_string()
        } else {
            format!("{size} bytes")
        };
    }
    let mut unit = UNITS[0];
    for u in UNITS {
        if size >= u.1 {
            unit = u;
        }
    }
    format!("{:.1}\u{a0}{}", size as f64 / unit.1 as f64, unit.0)
}

/// Civil date of a day count since the epoch (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The local time zone's UTC offset in seconds at `t` (from `$TZ` or `/etc/localtime`, TZif
/// files; anything else counts as UTC).
pub fn local_offset(t: i64) -> i64 {
    let path = match std::env::var("TZ") {
        Ok(tz) if tz.is_empty() || tz == "UTC" || tz == "UTC0" || tz == ":UTC" => return 0,
        Ok(tz) => {
            let name = tz.trim_start_matches(':');
            if name.starts_with('/') {
                std::path::PathBuf::from(name)
            } else {
                std::path::Path::new("/usr/share/zoneinfo").join(name)
            }
        }
        Err(_) => std::path::PathBuf::from("/etc/localtime"),
    };
    std::fs::read(path)
        .ok()
        .and_then(|d| tzif_offset(&d, t))
        .unwrap_or(0)
}

/// The UTC offset a TZif file gives for time `t` (version 1 data block).
fn tzif_offset(d: &[u8], t: i64) -> Option<i64> {
    if d.get(..4)? != b"TZif" {
        return None;
    }
    let be32 =
        |o: usize| -> Option<u32> { Some(u32::from_be_bytes(d.get(o..o + 4)?.try_into().ok()?)) };
    let (isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt) = (
        be32(20)? as usize,
        be32(24)? as usize,
        be32(28)? as usize,
        be32(32)? as usize,
        be32(36)? as usize,
        be32(40)? as usize,
    );
    let _ = (isutcnt, isstdcnt, leapcnt, charcnt);
    if typecnt == 0 {
        return None;
    }
    let times = 44;
    let idx = times + 4 * timecnt;
    let types = idx + timecnt;
    let mut ty = 0usize;
    // Before the first transition: the first non-DST type (or type 0).
    for i in 0..timecnt {
        let tt = be32(times + 4 * i)? as i32 as i64;
        if tt > t {
            break;
        }
        ty = *d.get(idx + i)? as usize;
    }
    if ty >= typecnt {
        return None;
    }
    let off = be32(types + 6 * ty)? as i32 as i64;
    Some(off)
}

/// `uint64_secs_to_iso8601`: local time as `%FT%T%:::z` (`2023-11-14T22:13:20+00`), or
/// `invalid`.
pub fn secs_to_iso8601(secs: u64) -> String {
    let t = secs as i64;
    if !(-62_135_596_800..253_402_300_800).contains(&t) {
        return "invalid".to_string();
    }
    let off = local_offset(t);
    let lt = t + off;
    let (y, m, d) = civil(lt.div_euclid(86_400));
    let s = lt.rem_euclid(86_400);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    let (oh, om, os) = (a / 3600, (a % 3600) / 60, a % 60);
    let tz = if os != 0 {
        format!("{sign}{oh:02}:{om:02}:{os:02}")
    } else if om != 0 {
        format!("{sign}{oh:02}:{om:02}")
    } else {
        format!("{sign}{oh:02}")
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{tz}",
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

fn dump_ref(out: &mut String, collection_id: Option<&str>, r: &SummaryRef) {
    match collection_id {
        None => out.push_str(&format!("* {}\n", r.name)),
        Some(c) => out.push_str(&format!("* ({c}, {})\n", r.name)),
    }
    out.push_str(&format!(
        "    Latest Commit ({}):\n",
        format_size(r.commit_size)
    ));
    match r.checksum() {
        Ok(c) => out.push_str(&format!("      {c}\n")),
        Err(_) => out.push_str(&format!(
            "      Invalid checksum of length {} expected 32\n",
            r.checksum_bytes.len()
        )),
    }
    for (key, value) in &r.metadata.0 {
        match (key.as_str(), value) {
            (summary::KEY_COMMIT_TIMESTAMP, Variant::U64(t)) => out.push_str(&format!(
                "    Timestamp ({key}): {}\n",
                secs_to_iso8601(u64::from_be(*t))
            )),
            (summary::KEY_COMMIT_VERSION, Variant::Str(v)) => {
                out.push_str(&format!("    Version ({key}): {v}\n"))
            }
            _ => out.push_str(&format!("    {key}: {}\n", gprint(value, false))),
        }
    }
    out.push('\n');
}

/// The text of `ostree summary --view` (`ot_dump_summary_bytes`).
pub fn view_text(s: &Summary) -> anyhow::Result<String> {
    let mut out = String::new();
    let main = s.collection_id();
    for r in &s.refs {
        dump_ref(&mut out, main, r);
    }
    for (id, refs) in s.collection_map()? {
        for r in &refs {
            dump_ref(&mut out, Some(&id), r);
        }
    }
    for (key, value) in &s.metadata.0 {
        let pretty: Option<(&str, String)> = match (key.as_str(), value) {
            (summary::KEY_STATIC_DELTAS, v) => Some(("Static Deltas", gprint(v, false))),
            (summary::KEY_LAST_MODIFIED, Variant::U64(t)) => {
                Some(("Last-Modified", secs_to_iso8601(u64::from_be(*t))))
            }
            (summary::KEY_EXPIRES, Variant::U64(t)) => {
                Some(("Expires", secs_to_iso8601(u64::from_be(*t))))
            }
            (summary::KEY_COLLECTION_ID, Variant::Str(c)) => Some(("Collection ID", c.clone())),
            (summary::KEY_COLLECTION_MAP, _) => {
                Some(("Collection Map", "(printed above)".to_string()))
            }
            (summary::KEY_MODE, Variant::Str(m)) => Some((
                "Repository Mode",
                if m.parse::<ostree_core::store::RepoMode>().is_ok() {
                    m.clone()
                } else {
                    format!("Invalid (‘{m}’)")
                },
            )),
            (summary::KEY_TOMBSTONE_COMMITS, Variant::Bool(b)) => Some((
                "Has Tombstone Commits",
                if *b { "Yes" } else { "No" }.to_string(),
            )),
            _ => None,
        };
        match pretty {
            Some((p, v)) => out.push_str(&format!("{p} ({key}): {v}\n")),
            None => out.push_str(&format!("{key}: {}\n", gprint(value, false))),
        }
    }
    Ok(out)
}

/// Parse `--add-metadata KEY=VALUE` arguments (values in GVariant text format).
pub fn build_additional_metadata(args: &[&str]) -> anyhow::Result<Metadata> {
    let mut md = Metadata::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("Missing '=' in KEY=VALUE metadata '{a}'");
        };
        let value =
            gparse(v, None).map_err(|e| anyhow::anyhow!("Error parsing variant ‘{v}’: {e}"))?;
        // g_variant_builder_add ("{sv}") appends: later duplicates are kept as they come.
        md.0.push((k.to_string(), value));
    }
    Ok(md)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `ostree summary`.
pub fn summary(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let registry = ostree_core::registry::Registry::global();
        // `--sign` keys are checked first, as ostree builds that signer before anything.
        let mut signers: Vec<Box<dyn Signer>> = Vec::new();
        let sign_keys = inv.values("sign");
        let sign_type = inv.value("sign-type").unwrap_or("ed25519");
        let mut sign_signers = Vec::new();
        if !sign_keys.is_empty() {
            registry.signer_plugin(sign_type)?;
        }
        if inv.flag("update") {
            let md = inv.values("add-metadata");
            let additional = if md.is_empty() {
                None
            } else {
                Some(build_additional_metadata(&md)?)
            };
            let homedir = inv.value("gpg-homedir").map(std::path::PathBuf::from);
            for key in inv.values("gpg-sign") {
                signers.push(registry.build_signer(
                    GPG,
                    &SignerConfig {
                        key: key.to_string(),
                        homedir: homedir.clone(),
                    },
                )?);
            }
            for key in &sign_keys {
                sign_signers.push(registry.build_signer(
                    sign_type,
                    &SignerConfig {
                        key: key.to_string(),
                        homedir: None,
                    },
                )?);
            }
            signers.extend(sign_signers);
            let _lock = repo.lock(false).await?;
            repo.commit_summary_metadata(additional.as_ref(), now(), &signers)
                .await?;
            repo.regenerate_summary(additional.as_ref()).await?;
            if !signers.is_empty() {
                policy::sign_summary(&repo, &signers).await?;
            }
        } else if inv.flag("view") || inv.flag("raw") {
            let data = repo
                .store()
                .read_file("summary")
                .await?
                .ok_or_else(|| anyhow::anyhow!("openat(summary): No such file or directory"))?;
            let s = Summary::from_bytes(&data)?;
            let text = if inv.flag("raw") {
                format!("{}\n", gprint(&s.to_variant().byteswap(), true))
            } else {
                view_text(&s)?
            };
            crate::opts::print_text(&text);
        } else {
            bail!("No option specified; use -u to update summary");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_glib() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(format_size(1), "1 byte");
        assert_eq!(format_size(999), "999 bytes");
        assert_eq!(format_size(1000), "1.0\u{a0}kB");
        assert_eq!(format_size(1536), "1.5\u{a0}kB");
        assert_eq!(format_size(12_345_678), "12.3\u{a0}MB");
    }

    #[test]
    fn iso8601_utc() {
        // The exact text depends on the local zone; check the shape.
        let s = secs_to_iso8601(1_700_000_000);
        assert!(s.starts_with("2023-11-1"), "{s}");
        assert_eq!(secs_to_iso8601(253_402_300_800), "invalid");
    }
}
