//! `ostree prune`, and the date parser its `--keep-younger-than` needs (gnulib's
//! `parse_datetime`, as ostree uses it, for the forms people write).

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::Checksum;
use ostree_core::repo::prune::PruneOptions;

use super::open_repo;
use super::summary::format_size;
use crate::opts::Invocation;

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_of(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| {
            *m == w || (w.len() == 3 && m.starts_with(&w)) || (w == "sept" && *m == "september")
        })
        .map(|i| i as u32 + 1)
}

/// Seconds (or, for months and years, calendar months) of a relative unit word.
enum Unit {
    Secs(i64),
    Months(i64),
}

fn unit_of(word: &str) -> Option<Unit> {
    let w = word.to_ascii_lowercase();
    let w = w.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or(&w);
    Some(match w {
        "year" => Unit::Months(12),
        "month" => Unit::Months(1),
        "fortnight" => Unit::Secs(14 * 86_400),
        "week" => Unit::Secs(7 * 86_400),
        "day" => Unit::Secs(86_400),
        "hour" => Unit::Secs(3600),
        "minute" | "min" => Unit::Secs(60),
        "second" | "sec" => Unit::Secs(1),
        _ => return None,
    })
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

fn parse_tz(tok: &str) -> Option<i64> {
    let t = tok.to_ascii_uppercase();
    if matches!(t.as_str(), "Z" | "UTC" | "GMT" | "UT") {
        return Some(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    Some(sign * (h * 3600 + m * 60))
}

fn parse_time(tok: &str) -> Option<(i64, i64, i64)> {
    let mut p = tok.split(':');
    let h: i64 = p.next()?.parse().ok()?;
    let m: i64 = p.next()?.parse().ok()?;
    let s: i64 = match p.next() {
        Some(s) => s.split(['.', ',']).next()?.parse().ok()?,
        None => 0,
    };
    if p.next().is_some() || h > 24 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s))
}

/// Parse a date the way `ostree prune --keep-younger-than` (gnulib `parse_datetime`)
/// understands the usual forms: `@EPOCH`, `YYYY-MM-DD[ T]HH:MM[:SS][ ][TZ]`, `Month DD YYYY`,
/// `DD Month YYYY`, `now`, `today`, `yesterday`, `N unit(s) [ago]` (`1 week ago`, `3 days`).
/// Dates without a zone are local time. `now` is the current time in seconds.
pub fn parse_datetime(s: &str, now: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(n) = s.strip_prefix('@') {
        return n.trim().parse().ok();
    }
    let norm = s.replace(',', " ");
    let mut toks: Vec<String> = Vec::new();
    for w in norm.split_whitespace() {
        // Split "2015-10-29T12:43:29+0000" into date, time and zone.
        if let Some((d, t)) = w.split_once(['T', 't'])
            && d.len() == 10
            && d.chars().filter(|c| *c == '-').count() == 2
        {
            toks.push(d.to_string());
            match t.find(['+', '-', 'Z', 'z']) {
                Some(i) => {
                    toks.push(t[..i].to_string());
                    toks.push(t[i..].to_string());
                }
                None => toks.push(t.to_string()),
            }
        } else if w.contains(':') && w.len() > 5 && (w.contains('+') || w.ends_with(['Z', 'z'])) {
            let i = w.find(['+', 'Z', 'z'])?;
            toks.push(w[..i].to_string());
            toks.push(w[i..].to_string());
        } else {
            toks.push(w.to_string());
        }
    }
    let mut date: Option<(i64, u32, u32)> = None;
    let mut time: Option<(i64, i64, i64)> = None;
    let mut tz: Option<i64> = None;
    let mut rel_secs = 0i64;
    let mut rel_months = 0i64;
    let mut day_shift = 0i64;
    let mut pending_month: Option<u32> = None;
    let mut pending_day: Option<u32> = None;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        let lower = t.to_ascii_lowercase();
        if lower == "now" {
        } else if lower == "today" {
            time.get_or_insert((0, 0, 0));
        } else if lower == "yesterday" {
            time.get_or_insert((0, 0, 0));
            day_shift -= 1;
        } else if lower == "tomorrow" {
            time.get_or_insert((0, 0, 0));
            day_shift += 1;
        } else if lower == "ago" {
            rel_secs = -rel_secs;
            rel_months = -rel_months;
        } else if let Some(u) = unit_of(t) {
            match u {
                Unit::Secs(n) => rel_secs += n,
                Unit::Months(n) => rel_months += n,
            }
        } else if let Some(m) = month_of(t) {
            pending_month = Some(m);
        } else if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
            let mut p = t.split('-');
            let y: i64 = p.next()?.parse().ok()?;
            let m: u32 = p.next()?.parse().ok()?;
            let d: u32 = p.next()?.parse().ok()?;
            date = Some((y, m, d));
        } else if t.contains(':') && !t.starts_with(['+', '-']) && parse_time(t).is_some() {
            time = parse_time(t);
        } else if (t.starts_with('+')
            || t.starts_with('-')
            || lower == "utc"
            || lower == "gmt"
            || lower == "z")
            && parse_tz(t).is_some()
        {
            tz = parse_tz(t);
        } else if let Ok(n) = t.parse::<i64>() {
            // A number: a relative count (before a unit), a day or a year.
            if let Some(u) = toks.get(i + 1).and_then(|w| unit_of(w)) {
                match u {
                    Unit::Secs(k) => rel_secs += n * k,
                    Unit::Months(k) => rel_months += n * k,
                }
                i += 2;
                continue;
            } else if t.len() == 4 || n > 31 {
                let m = pending_month?;
                let d = pending_day.unwrap_or(1);
                date = Some((n, m, d));
            } else {
                pending_day = Some(u32::try_from(n).ok()?);
            }
        } else {
            return None;
        }
        i += 1;
    }
    if date.is_none()
        && let (Some(m), Some(d)) = (pending_month, pending_day)
    {
        let (y, _, _) = civil_from_days(now.div_euclid(86_400));
        date = Some((y, m, d));
    }
    let offset = |t: i64| tz.unwrap_or_else(|| super::summary::local_offset(t));
    let mut base = match (date, time) {
        (Some((y, m, d)), t) => {
            if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
                return None;
            }
            let (h, mi, sec) = t.unwrap_or((0, 0, 0));
            let local = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec;
            local - offset(local)
        }
        (None, Some((h, mi, sec))) => {
            let off = offset(now);
            let days = (now + off).div_euclid(86_400);
            days * 86_400 + h * 3600 + mi * 60 + sec - off
        }
        (None, None) => now,
    };
    base += day_shift * 86_400;
    if rel_months != 0 {
        let off = offset(base);
        let local = base + off;
        let (y, m, d) = civil_from_days(local.div_euclid(86_400));
        let secs = local.rem_euclid(86_400);
        let total = y * 12 + (m as i64 - 1) + rel_months;
        let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
        base = days_from_civil(ny, nm, 1) * 86_400 + (d as i64 - 1) * 86_400 + secs - off;
    }
    Some(base + rel_secs)
}

/// `g_ascii_strtoll` then `(int)`, with ostree's checks on `--retain-branch-depth` values.
fn parse_depth(s: &str) -> anyhow::Result<i32> {
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        bail!("Invalid depth {s}");
    }
    let v: i64 = digits.parse().unwrap_or(i64::MAX);
    let v = if neg { -v } else { v };
    Ok(v as i32)
}

/// `ostree prune`.
pub fn prune(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        // Everything below runs under the exclusive lock, taken first.
        let _lock = repo.lock(true).await?;
        let no_prune = inv.flag("no-prune");
        let static_deltas_only = inv.flag("static-deltas-only");
        let commit_only = inv.flag("commit-only");
        if let Some(dc) = inv.value("delete-commit") {
            if no_prune {
                return Err(inv.usage_error("Cannot specify both --delete-commit and --no-prune"));
            }
            if static_deltas_only {
                if let Ok(c) = Checksum::from_hex(dc) {
                    repo.prune_static_deltas(Some(&c)).await?;
                }
            } else {
                let c = Checksum::from_hex(dc).map_err(|_| {
                    anyhow::anyhow!("Deleting object {dc}.commit: Invalid checksum")
                })?;
                repo.prune_delete_commit(&c).await?;
            }
        } else if static_deltas_only {
            bail!(
                "--static-deltas-only requires --delete-commit; see https://github.com/ostreedev/ostree/issues/1479"
            );
        }
        let mut opts = PruneOptions {
            no_prune,
            refs_only: inv.flag("refs-only"),
            depth: inv.int("depth").map(|d| d as i32).unwrap_or(-1),
            commit_only,
            ..Default::default()
        };
        if let Some(k) = inv.value("keep-younger-than") {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let t =
                parse_datetime(k, now).ok_or_else(|| anyhow::anyhow!("Could not parse '{k}'"))?;
            opts.keep_younger_than = Some(t.max(0) as u64);
        }
        for bd in inv.values("retain-branch-depth") {
            let Some((b, d)) = bd.split_once('=') else {
                bail!("Invalid value {bd}, must specify BRANCH=DEPTH");
            };
            let depth = parse_depth(d)?;
            opts.retain_branch_depth.retain(|(n, _)| n != b);
            opts.retain_branch_depth.push((b.to_string(), depth));
        }
        opts.only_branches = inv
            .values("only-branch")
            .into_iter()
            .map(str::to_string)
            .collect();
        let stats = repo.prune(&opts).await?;
        let mut out = String::new();
        if commit_only {
            out.push_str(&format!(
                "Total (commit only) objects: {}\n",
                stats.objects_total
            ));
        } else {
            out.push_str(&format!("Total objects: {}\n", stats.objects_total));
        }
        if stats.objects_pruned == 0 {
            out.push_str("No unreachable objects\n");
        } else if no_prune {
            out.push_str(&format!(
                "Would delete: {} objects, freeing {}\n",
                stats.objects_pruned,
                format_size(stats.bytes_freed)
            ));
        } else {
            out.push_str(&format!(
                "Deleted {} objects, {} freed\n",
                stats.objects_pruned,
                format_size(stats.bytes_freed)
            ));
        }
        if stats.objects_kept > 0 {
            // Object storage only: what writers holding leases may still reference.
            out.push_str(&format!(
                "Kept {} unreferenced objects for writers in progress or younger than the \
                 grace period (see {})\n",
                stats.objects_kept,
                ostree_core::lease::LEASE_DIR
            ));
        }
        crate::opts::print_text(&out);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn dates() {
        // These assume the local zone is UTC only for forms without a zone.
        assert_eq!(
            parse_datetime("2015-10-29 12:43:29 +0000", NOW),
            Some(1_446_122_609)
        );
        assert_eq!(parse_datetime("@123", NOW), Some(123));
        assert_eq!(parse_datetime("1 week ago", NOW), Some(NOW - 7 * 86_400));
        assert_eq!(parse_datetime("2 days ago", NOW), Some(NOW - 2 * 86_400));
        assert_eq!(parse_datetime("now", NOW), Some(NOW));
        assert_eq!(parse_datetime("garbage", NOW), None);
        assert_eq!(
            parse_datetime("2015-10-29T12:43:29Z", NOW),
            Some(1_446_122_609)
        );
        if super::super::summary::local_offset(0) == 0 {
            assert_eq!(parse_datetime("October 25 1985", NOW), Some(499_046_400));
            assert_eq!(parse_datetime("25 October 1985", NOW), Some(499_046_400));
            assert_eq!(parse_datetime("Oct 25, 1985", NOW), Some(499_046_400));
        }
        assert_eq!(parse_depth("5").unwrap(), 5);
        assert_eq!(parse_depth("-1").unwrap(), -1);
        assert!(parse_depth("BACON").is_err());
    }
}
