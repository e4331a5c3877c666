//! The `/etc` three-way merge (`merge_configuration_from`).
//!
//! The merge deployment's `usr/etc` (what its tree shipped) is compared with its `etc` (what
//! the machine has now); every difference is applied onto the new deployment's `etc`, which
//! starts as a copy of the new tree's `usr/etc`. Local changes always win: a removed file is
//! removed, a modified or added file (or directory, symlink) is copied over with its
//! ownership, mode, timestamps and xattrs, and missing parent directories are created from the
//! old `etc` as templates. Sockets, FIFOs and devices are not copied.
//!
//! The comparison is ostree's (`ostree_diff_dirs` with `OSTREE_DIFF_FLAGS_IGNORE_XATTRS`): an
//! entry differs when its type, owner, mode, device number, symlink target or content differs;
//! extended attributes are ignored (SELinux labels of `/usr/etc` and `/etc` always differ).
//! Here files are compared by size and bytes rather than by checksumming both sides.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::fsutil;
use crate::{Error, Result};

/// Paths (relative to `etc`) that differ between the original and the modified `/etc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcDiff {
    /// Present on both sides, different.
    pub modified: Vec<String>,
    /// Only in the original (`usr/etc`).
    pub removed: Vec<String>,
    /// Only in the modified (`etc`).
    pub added: Vec<String>,
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn read_dir_names(p: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(p).map_err(|e| Error::io_path("opendir", p, e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io_path("readdir", p, e))?;
        v.push(e.file_name().to_string_lossy().into_owned());
    }
    Ok(v)
}

fn same_content(a: &Path, b: &Path, len: u64) -> Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let mut fa = std::fs::File::open(a).map_err(|e| Error::io_path("open", a, e))?;
    let mut fb = std::fs::File::open(b).map_err(|e| Error::io_path("open", b, e))?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(|e| Error::io_path("read", a, e))?;
        let m = read_full(&mut fb, &mut bb).map_err(|e| Error::io_path("read", b, e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether two entries of the same type differ as ostree's checksums would say.
fn differs(a: &Path, am: &std::fs::Metadata, b: &Path, bm: &std::fs::Metadata) -> Result<bool> {
    if am.uid() != bm.uid() || am.gid() != bm.gid() || am.mode() != bm.mode() {
        return Ok(true);
    }
    let ft = am.file_type();
    if ft.is_file() {
        if am.len() != bm.len() {
            return Ok(true);
        }
        if am.dev() == bm.dev() && am.ino() == bm.ino() {
            return Ok(false);
        }
        return Ok(!same_content(a, b, am.len())?);
    }
    if ft.is_symlink() {
        let ta = std::fs::read_link(a).map_err(|e| Error::io_path("readlink", a, e))?;
        let tb = std::fs::read_link(b).map_err(|e| Error::io_path("readlink", b, e))?;
        return Ok(ta != tb);
    }
    if ft.is_block_device() || ft.is_char_device() {
        return Ok(am.rdev() != bm.rdev());
    }
    Ok(false)
}

fn add_recurse(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    for name in read_dir_names(dir)? {
        let p = dir.join(&name);
        let r = join(rel, &name);
        out.push(r.clone());
        let md = std::fs::symlink_metadata(&p).map_err(|e| Error::io_path("stat", &p, e))?;
        if md.is_dir() {
            add_recurse(&p, &r, out)?;
        }
    }
    Ok(())
}

fn diff_rec(a: &Path, b: &Path, rel: &str, out: &mut EtcDiff) -> Result<()> {
    let a_names = read_dir_names(a)?;
    for name in &a_names {
        let ca = a.join(name);
        let cb = b.join(name);
        let r = join(rel, name);
        let am = std::fs::symlink_metadata(&ca).map_err(|e| Error::io_path("stat", &ca, e))?;
        let bm = match std::fs::symlink_metadata(&cb) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.removed.push(r);
                continue;
            }
            Err(e) => return Err(Error::io_path("stat", &cb, e)),
        };
        let (ta, tb) = (am.file_type(), bm.file_type());
        let same_type = (ta.is_dir() && tb.is_dir())
            || (ta.is_file() && tb.is_file())
            || (ta.is_symlink() && tb.is_symlink())
            || (ta.is_fifo() && tb.is_fifo())
            || (ta.is_socket() && tb.is_socket())
            || (ta.is_char_device() && tb.is_char_device())
            || (ta.is_block_device() && tb.is_block_device());
        if !same_type {
            out.modified.push(r);
            continue;
        }
        if differs(&ca, &am, &cb, &bm)? {
            out.modified.push(r.clone());
        }
        if ta.is_dir() {
            diff_rec(&ca, &cb, &r, out)?;
        }
    }
    for name in read_dir_names(b)? {
        let ca = a.join(&name);
        if fsutil::lexists(&ca) {
            continue;
        }
        let cb = b.join(&name);
        let r = join(rel, &name);
        out.added.push(r.clone());
        let bm = std::fs::symlink_metadata(&cb).map_err(|e| Error::io_path("stat", &cb, e))?;
        if bm.is_dir() {
            add_recurse(&cb, &r, &mut out.added)?;
        }
    }
    Ok(())
}

/// Compare an original `/etc` (`usr/etc`) with the modified one (`etc`).
pub fn diff_etc(orig: &Path, modified: &Path) -> Result<EtcDiff> {
    let mut out = EtcDiff::default();
    diff_rec(orig, modified, "", &mut out)?;
    Ok(out)
}

/// Lines `ostree admin config-diff` prints (`ostree_diff_print`: `M    path`, `D    path`,
/// `A    path`, paths relative to each side's directory).
pub fn diff_lines(d: &EtcDiff) -> Vec<String> {
    let mut out = Vec::new();
    for (c, list) in [('M', &d.modified), ('D', &d.removed), ('A', &d.added)] {
        for p in list {
            out.push(format!("{c}    {p}"));
        }
    }
    out
}

/// `ensure_directory_from_template`: make `rel` (and missing parents) exist in `new_etc`,
/// with the attributes of the same directory in `modified_etc`.
fn ensure_dir_from_template(
    modified_etc: &Path,
    new_etc: &Path,
    rel: &str,
    no_xattrs: bool,
) -> Result<()> {
    let src = modified_etc.join(rel);
    let dst = new_etc.join(rel);
    let smd = std::fs::metadata(&src).map_err(|e| Error::io_path("opendir", &src, e))?;
    if !smd.is_dir() {
        return Err(Error::invalid(format!(
            "opendir({}): Not a directory",
            src.display()
        )));
    }
    match std::fs::create_dir(&dst) {
        Ok(()) => {
            std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| Error::io_path("fchmod", &dst, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match rel.rsplit_once('/') {
                Some((parent, _)) => {
                    ensure_dir_from_template(modified_etc, new_etc, parent, no_xattrs)?
                }
                None => return Err(Error::io_path("mkdirat", &dst, e)),
            }
            return ensure_dir_from_template(modified_etc, new_etc, rel, no_xattrs);
        }
        Err(e) => return Err(Error::io_path("mkdirat", &dst, e)),
    }
    let dmd = std::fs::metadata(&dst).map_err(|e| Error::io_path("opendir", &dst, e))?;
    if !dmd.is_dir() {
        return Err(Error::invalid(format!(
            "opendir({}): Not a directory",
            dst.display()
        )));
    }
    fsutil::copy_dir_attrs(&src, &dst, no_xattrs)
}

/// `copy_modified_config_file`. `ensured` holds the parent directories already made to
/// match their template in this merge (each is done once, not once per file in it).
fn copy_modified(
    modified_etc: &Path,
    new_etc: &Path,
    rel: &str,
    no_xattrs: bool,
    ensured: &mut HashSet<String>,
) -> Result<()> {
    let src = modified_etc.join(rel);
    let md = std::fs::symlink_metadata(&src)
        .map_err(|e| Error::io(format!("Reading modified config file: {rel}"), e))?;
    if let Some((parent, _)) = rel.rsplit_once('/')
        && !ensured.contains(parent)
    {
        ensure_dir_from_template(modified_etc, new_etc, parent, no_xattrs)?;
        ensured.insert(parent.to_string());
    }
    let dst = new_etc.join(rel);
    match std::fs::symlink_metadata(&dst) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io_path("fstatat", &dst, e)),
        Ok(nm) if nm.is_dir() => {
            if !md.is_dir() {
                return Err(Error::not_found(format!(
                    "Modified config file newly defaults to directory '{rel}', cannot merge"
                )));
            }
            // Copied with its parent already.
            return Ok(());
        }
        Ok(_) => std::fs::remove_file(&dst).map_err(|e| Error::io_path("unlinkat", &dst, e))?,
    }
    let ft = md.file_type();
    if ft.is_dir() {
        fsutil::copy_dir_recurse(&src, &dst, no_xattrs)
    } else if ft.is_file() || ft.is_symlink() {
        fsutil::copy_file_overwrite(&src, &dst, no_xattrs)
            .map_err(|e| Error::Other(format!("Copying {rel}: {e}")))
    } else {
        // ostree logs "Ignoring non-regular/non-symlink file found during /etc merge".
        Ok(())
    }
}

/// Apply `diff` (computed from `merge_root`'s `usr/etc` → `etc`) onto `new_root`'s `etc`.
pub fn apply_etc_diff(
    merge_root: &Path,
    new_root: &Path,
    diff: &EtcDiff,
    no_xattrs: bool,
) -> Result<()> {
    let modified_etc: PathBuf = merge_root.join("etc");
    let new_etc: PathBuf = new_root.join("etc");
    for rel in &diff.removed {
        fsutil::rm_rf(&new_etc.join(rel))?;
    }
    let mut ensured = HashSet::new();
    for rel in diff.modified.iter().chain(diff.added.iter()) {
        copy_modified(&modified_etc, &new_etc, rel, no_xattrs, &mut ensured)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn three_way() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        let new = t.path().join("new");
        for base in [old.join("usr/etc"), old.join("etc")] {
            write(&base.join("keep"), "k");
            write(&base.join("mod"), "orig");
            write(&base.join("gone"), "g");
            write(&base.join("d/inner"), "i");
        }
        write(&old.join("etc/mod"), "local");
        std::fs::remove_file(old.join("etc/gone")).unwrap();
        write(&old.join("etc/a/long/chain"), "c");
        std::fs::set_permissions(old.join("etc/a"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::os::unix::fs::symlink("nowhere", old.join("etc/dangling")).unwrap();
        write(&new.join("etc/keep"), "k2");
        write(&new.join("etc/mod"), "orig2");
        write(&new.join("etc/gone"), "g2");
        let d = diff_etc(&old.join("usr/etc"), &old.join("etc")).unwrap();
        assert_eq!(d.modified, vec!["mod".to_string()]);
        assert_eq!(d.removed, vec!["gone".to_string()]);
        let mut added = d.added.clone();
        added.sort();
        assert_eq!(added, ["a", "a/long", "a/long/chain", "dangling"]);
        apply_etc_diff(&old, &new, &d, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(new.join("etc/mod")).unwrap(),
            "local"
        );
        assert_eq!(std::fs::read_to_string(new.join("etc/keep")).unwrap(), "k2");
        assert!(!new.join("etc/gone").exists());
        assert_eq!(
            std::fs::read_to_string(new.join("etc/a/long/chain")).unwrap(),
            "c"
        );
        let mode = std::fs::metadata(new.join("etc/a")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            std::fs::read_link(new.join("etc/dangling")).unwrap(),
            Path::new("nowhere")
        );
    }

    #[test]
    fn file_over_default_dir_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        let new = t.path().join("new");
        std::fs::create_dir_all(old.join("usr/etc")).unwrap();
        write(&old.join("etc/x"), "file");
        std::fs::create_dir_all(new.join("etc/x")).unwrap();
        let d = diff_etc(&old.join("usr/etc"), &old.join("etc")).unwrap();
        let e = apply_etc_diff(&old, &new, &d, false).unwrap_err();
        assert!(e.to_string().contains("newly defaults to directory 'x'"));
    }
}
