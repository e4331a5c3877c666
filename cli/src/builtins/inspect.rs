//! ls, cat, show, log: reading commits and trees.

use std::io::Write;

use anyhow::bail;
use futures::future::BoxFuture;
use ostree_core::gvariant::Variant;
use ostree_core::gvariant::text::print as gprint;
use ostree_core::objects::{Commit, FileMeta, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Xattrs};
use ostree_core::repo::Repo;
use ostree_core::repo::read::TreeEntry;
use ostree_core::{Checksum, ObjectKey, ObjectType};

use super::{open_repo, resolve};
use crate::opts::Invocation;

fn xattrs_variant(x: &Xattrs) -> Variant {
    // Reuse the object codec's layout: a(ayay) with NUL-terminated names.
    let t = ostree_core::gvariant::VariantType::parse("(ayay)").expect("static type");
    Variant::Array(
        t,
        x.iter()
            .map(|(k, v)| {
                let mut n = k.clone();
                n.push(0);
                Variant::Tuple(vec![Variant::Bytes(n), Variant::Bytes(v.clone())])
            })
            .collect(),
    )
}

/// Format a commit's timestamp as ostree does (`%Y-%m-%d %H:%M:%S +0000`).
pub fn format_utc(ts: u64) -> String {
    let days = (ts / 86400) as i64;
    let secs = ts % 86400;
    // Civil from days (Howard Hinnant).
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn indented(out: &mut String, text: &str) {
    let mut rest = text;
    loop {
        match rest.find('\n') {
            Some(i) => {
                out.push_str("    ");
                out.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
            None => {
                if !rest.is_empty() {
                    out.push_str("    ");
                    out.push_str(rest);
                    out.push('\n');
                }
                break;
            }
        }
    }
}

/// The text `ostree show`/`log` print for a commit (after the `commit CSUM` line).
pub fn dump_commit(c: &Commit) -> String {
    let mut out = String::new();
    if let Some(p) = c.parent {
        out.push_str(&format!("Parent:  {p}\n"));
    }
    let mut h = ostree_core::checksum::Hasher::new();
    h.update(c.root_tree.as_bytes());
    h.update(c.root_meta.as_bytes());
    out.push_str(&format!("ContentChecksum:  {}\n", h.finish()));
    out.push_str(&format!("Date:  {}\n", format_utc(c.timestamp)));
    if let Some(v) = c.metadata.get("version").and_then(Variant::as_str) {
        out.push_str(&format!("Version: {v}\n"));
    }
    if c.subject.is_empty() {
        out.push_str("(no subject)\n");
    } else {
        out.push('\n');
        indented(&mut out, &c.subject);
    }
    if !c.body.is_empty() {
        out.push('\n');
        indented(&mut out, &c.body);
    }
    out.push('\n');
    out
}

async fn print_commit(
    repo: &Repo,
    csum: &Checksum,
    raw: bool,
    out: &mut String,
) -> anyhow::Result<()> {
    let bytes = repo.load_meta(ObjectType::Commit, csum).await?;
    out.push_str(&format!("commit {csum}\n"));
    let c = Commit::from_bytes(&bytes)?;
    if raw {
        out.push_str(&gprint(&c.to_variant().byteswap(), true));
        out.push('\n');
        return Ok(());
    }
    out.push_str(&dump_commit(&c));
    Ok(())
}

fn write_stdout(s: &str) -> anyhow::Result<()> {
    let mut so = std::io::stdout().lock();
    so.write_all(s.as_bytes())?;
    so.flush()?;
    Ok(())
}

/// `ostree log`.
pub fn log(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(rev) = inv.positionals().first().cloned() else {
            return Err(inv.usage_error("A rev argument is required"));
        };
        let mut cur = Some(resolve(&repo, &rev).await?);
        let mut first = true;
        while let Some(c) = cur {
            let mut out = String::new();
            match repo.load_commit(&c).await {
                Ok(commit) => {
                    print_commit(&repo, &c, inv.flag("raw"), &mut out).await?;
                    cur = commit.parent;
                }
                Err(e) if !first && e.is_not_found() => {
                    out.push_str("<< History beyond this commit not fetched >>\n");
                    cur = None;
                }
                Err(e) => return Err(e.into()),
            }
            first = false;
            write_stdout(&out)?;
        }
        Ok(())
    })
}

/// `ostree show`.
pub fn show(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let Some(rev) = inv.positionals().first().cloned() else {
            return Err(inv.usage_error("An object argument is required"));
        };
        let no_swap = inv.flag("no-byteswap");
        let key = inv
            .value("print-metadata-key")
            .map(|k| (k.to_string(), false));
        let key = key.or(inv
            .value("print-detached-metadata-key")
            .map(|k| (k.to_string(), true)));
        if let Some((k, detached)) = key {
            let c = resolve(&repo, &rev).await?;
            let md = if detached {
                repo.read_commit_detached_metadata(&c)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("No detached metadata for commit {c}"))?
            } else {
                repo.load_commit(&c).await?.metadata
            };
            let v = md
                .get(&k)
                .ok_or_else(|| anyhow::anyhow!("No such metadata key '{k}'"))?;
            let v = if no_swap { v.clone() } else { v.byteswap() };
            write_stdout(&format!("{}\n", gprint(&v, true)))?;
            return Ok(());
        }
        if inv.flag("print-related") {
            let c = resolve(&repo, &rev).await?;
            let commit = repo.load_commit(&c).await?;
            let mut out = String::new();
            for (n, cs) in commit.related {
                out.push_str(&format!("{n} {cs}\n"));
            }
            return write_stdout(&out);
        }
        if let Some(t) = inv.value("print-variant-type") {
            let ty = ostree_core::gvariant::VariantType::parse(t)?;
            let data = std::fs::read(&rev)?;
            let v = Variant::from_bytes(&ty, &data)?;
            return write_stdout(&format!("{}\n", gprint(&v.byteswap(), true)));
        }
        if inv.flag("print-sizes") {
            let c = resolve(&repo, &rev).await?;
            return print_sizes(&repo, &c).await;
        }
        let raw = inv.flag("raw");
        let mut out = String::new();
        if !ostree_core::checksum::is_valid_hex(&rev) {
            let c = resolve(&repo, &rev).await?;
            print_commit(&repo, &c, raw, &mut out).await?;
            out.push_str(
                &super::sign::show_signatures(
                    &repo,
                    &c,
                    inv.value("gpg-homedir"),
                    inv.value("gpg-verify-remote"),
                )
                .await?,
            );
            return write_stdout(&out);
        }
        let c = Checksum::from_hex(&rev)?;
        for ty in [ObjectType::Commit, ObjectType::DirMeta, ObjectType::DirTree] {
            if repo.has_object(&ObjectKey::new(c, ty)).await? {
                if ty == ObjectType::Commit {
                    print_commit(&repo, &c, raw, &mut out).await?;
                    out.push_str(
                        &super::sign::show_signatures(
                            &repo,
                            &c,
                            inv.value("gpg-homedir"),
                            inv.value("gpg-verify-remote"),
                        )
                        .await?,
                    );
                } else {
                    let bytes = repo.load_meta(ty, &c).await?;
                    out.push_str(&format!("{} {c}\n", ty.name()));
                    if raw || no_swap {
                        let vt = ostree_core::gvariant::VariantType::parse(
                            ty.variant_type().unwrap_or("v"),
                        )?;
                        let v = Variant::from_bytes(&vt, &bytes)?;
                        let v = if no_swap { v } else { v.byteswap() };
                        out.push_str(&format!("{}\n", gprint(&v, true)));
                    }
                }
                return write_stdout(&out);
            }
        }
        let f = repo.load_file(&c).await?;
        out.push_str(&format!("Object: {c}\nType: file\nFile Type: "));
        if f.meta.is_symlink() {
            out.push_str(&format!(
                "symlink\nTarget: {}\n",
                f.meta.symlink_target.clone().unwrap_or_default()
            ));
        } else {
            out.push_str(&format!("regular\nSize: {}\n", f.size));
        }
        out.push_str(&format!(
            "Mode: 0{:04o}\nUid: {}\nGid: {}\nExtended Attributes: {{ {} }}\n",
            f.meta.mode,
            f.meta.uid,
            f.meta.gid,
            gprint(&xattrs_variant(&f.meta.xattrs), true)
        ));
        write_stdout(&out)
    })
}

/// `ostree cat`.
pub fn cat(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        if args.len() < 2 {
            return Err(inv.usage_error("A COMMIT and at least one PATH argument are required"));
        }
        let c = resolve(&repo, &args[0]).await?;
        for p in &args[1..] {
            let path = if p.starts_with('/') {
                p.clone()
            } else {
                format!("/{p}")
            };
            // Symlinks are followed, relative to their directory (ostree_repo_file_read).
            let mut path = path;
            let mut hops = 0;
            loop {
                match repo.lookup_path(&c, &path).await? {
                    TreeEntry::File(f) => {
                        let content = repo.load_file(&f).await?;
                        if let Some(target) = &content.meta.symlink_target {
                            hops += 1;
                            if hops > 40 {
                                bail!("Too many levels of symbolic links: {path}");
                            }
                            path = resolve_link(&path, target);
                            continue;
                        }
                        let mut r = content.body.into_reader();
                        let mut so = std::io::stdout().lock();
                        std::io::copy(&mut r, &mut so)?;
                        so.flush()?;
                    }
                    TreeEntry::Dir(..) => bail!("Can't open directory"),
                }
                break;
            }
        }
        Ok(())
    })
}

/// The path a symlink at `link` (absolute in the commit) pointing to `target` names.
fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
        p.pop();
        p
    };
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

struct LsOpts {
    checksum: bool,
    xattrs: bool,
    nul: bool,
}

// One line of `ls` output: the fields are the columns ostree prints.
#[allow(clippy::too_many_arguments)]
fn ls_line(
    o: &LsOpts,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    csums: &[Checksum],
    xattrs: &Xattrs,
    path: &str,
    target: Option<&str>,
) -> String {
    if o.nul {
        return format!("{path}\0");
    }
    let tc = match mode & S_IFMT {
        S_IFREG => '-',
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        _ => '?',
    };
    let mut s = format!("{tc}0{:04o} {uid} {gid} {size:6} ", mode & !S_IFMT);
    if o.checksum {
        for c in csums {
            s.push_str(&format!("{c} "));
        }
    }
    if o.xattrs {
        s.push_str(&format!("{{ {} }} ", gprint(&xattrs_variant(xattrs), true)));
    }
    s.push_str(path);
    if let Some(t) = target {
        s.push_str(&format!(" -> {t}"));
    }
    s.push('\n');
    s
}

fn file_line(o: &LsOpts, meta: &FileMeta, size: u64, csum: &Checksum, path: &str) -> String {
    ls_line(
        o,
        meta.mode,
        meta.uid,
        meta.gid,
        if meta.is_symlink() { 0 } else { size },
        &[*csum],
        &meta.xattrs,
        path,
        meta.symlink_target.as_deref(),
    )
}

async fn ls_dir(
    repo: &Repo,
    o: &LsOpts,
    tree: Checksum,
    path: &str,
    depth: i32,
    out: &mut String,
) -> anyhow::Result<()> {
    if depth == 0 {
        return Ok(());
    }
    let dt = repo.load_dirtree(&tree).await?;
    let join = |n: &str| {
        if path == "/" {
            format!("/{n}")
        } else {
            format!("{path}/{n}")
        }
    };
    for (n, f) in &dt.files {
        let (meta, size) = repo.load_file_meta(f).await?;
        out.push_str(&file_line(o, &meta, size, f, &join(n)));
    }
    for (n, t, m) in &dt.dirs {
        let dm = repo.load_dirmeta(m).await?;
        let p = join(n);
        out.push_str(&ls_line(
            o,
            dm.mode,
            dm.uid,
            dm.gid,
            0,
            &[*t, *m],
            &dm.xattrs,
            &p,
            None,
        ));
        Box::pin(ls_dir(
            repo,
            o,
            *t,
            &p,
            if depth > 0 { depth - 1 } else { depth },
            out,
        ))
        .await?;
    }
    Ok(())
}

/// `ostree ls`.
pub fn ls(inv: Invocation) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let repo = open_repo(&inv).await?;
        let args = inv.positionals().to_vec();
        let Some(rev) = args.first() else {
            return Err(inv.usage_error("An COMMIT argument is required"));
        };
        let c = resolve(&repo, rev).await?;
        let o = LsOpts {
            checksum: inv.flag("checksum"),
            xattrs: inv.flag("xattrs"),
            nul: inv.flag("nul-filenames-only"),
        };
        let paths: Vec<String> = if args.len() > 1 {
            args[1..].to_vec()
        } else {
            vec!["/".to_string()]
        };
        for p in paths {
            let mut out = String::new();
            let norm = {
                let comps: Vec<&str> = p
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .collect();
                format!("/{}", comps.join("/"))
            };
            let entry = repo
                .lookup_path(&c, &norm)
                .await
                .map_err(|e| anyhow::anyhow!("Inspecting path '{p}': {e}"))?;
            match entry {
                TreeEntry::File(f) => {
                    let (meta, size) = repo.load_file_meta(&f).await?;
                    out.push_str(&file_line(&o, &meta, size, &f, &norm));
                }
                TreeEntry::Dir(t, m) => {
                    let dm = repo.load_dirmeta(&m).await?;
                    out.push_str(&ls_line(
                        &o,
                        dm.mode,
                        dm.uid,
                        dm.gid,
                        0,
                        &[t, m],
                        &dm.xattrs,
                        &norm,
                        None,
                    ));
                    let depth = if inv.flag("recursive") {
                        -1
                    } else if inv.flag("dironly") {
                        0
                    } else {
                        1
                    };
                    ls_dir(&repo, &o, t, &norm, depth, &mut out).await?;
                }
            }
            write_stdout(&out)?;
        }
        Ok(())
    })
}

/// `ostree show --print-sizes` (`do_print_sizes` over `ostree_commit_get_object_sizes`).
async fn print_sizes(repo: &Repo, c: &Checksum) -> anyhow::Result<()> {
    let commit = repo
        .load_commit(c)
        .await
        .map_err(|e| anyhow::anyhow!("Failed to read commit: {e}"))?;
    let Some(Variant::Array(_, items)) = commit.metadata.get("ostree.sizes") else {
        bail!("No metadata key ostree.sizes in commit");
    };
    fn varint(b: &[u8], pos: &mut usize) -> anyhow::Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = b.get(*pos) else { break };
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("Unexpected EOF reading ostree.sizes varint")
    }
    let (mut archived, mut unpacked, mut objects) = (0u64, 0u64, 0u64);
    let (mut new_archived, mut new_unpacked, mut new_objects) = (0u64, 0u64, 0u64);
    for item in items {
        let Some(b) = item.as_bytes() else {
            bail!("Could not read ostree.sizes metadata entry");
        };
        if b.len() < 34 {
            bail!("Could not read ostree.sizes metadata entry");
        }
        let csum = Checksum::from_bytes(&b[..32])?;
        let mut pos = 32;
        let a = varint(b, &mut pos)?;
        let u = varint(b, &mut pos)?;
        let ty = match b.get(pos) {
            None => ObjectType::File,
            Some(&t) => ObjectType::from_u8(t)
                .map_err(|_| anyhow::anyhow!("Unexpected ostree.sizes object type {t}"))?,
        };
        archived += a;
        unpacked += u;
        objects += 1;
        if !repo.has_object(&ObjectKey::new(csum, ty)).await? {
            new_archived += a;
            new_unpacked += u;
            new_objects += 1;
        }
    }
    let f = ostree_core::delta::generate::glib_format_size;
    write_stdout(&format!(
        "Compressed size (needed/total): {}/{}\nUnpacked size (needed/total): {}/{}\nNumber of objects (needed/total): {new_objects}/{objects}\n",
        f(new_archived),
        f(archived),
        f(new_unpacked),
        f(unpacked),
    ))
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn dates() {
        assert_eq!(format_utc(1234567890), "2009-02-13 23:31:30 +0000");
        assert_eq!(format_utc(1600000000), "2020-09-13 12:26:40 +0000");
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 +0000");
    }
}
