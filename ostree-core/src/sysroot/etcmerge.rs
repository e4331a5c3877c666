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
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

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
    // Buffers no larger than the file: most of /etc is a few hundred bytes, and zeroing two
    // 64 KiB buffers per file cost more than reading it.
    let cap = len.min(64 * 1024) as usize;
    let mut ba = vec![0u8; cap];
    let mut bb = vec![0u8; cap];
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

/// The names and values of all xattrs of `fd`.
fn fd_xattrs(fd: BorrowedFd<'_>, what: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let ctx = |op: &str, e: Errno| Error::io(format!("{op}({})", what.display()), e.into());
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::flistxattr(fd, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(ctx("flistxattr", e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut val = vec![0u8; 256];
        loop {
            match rustix::fs::fgetxattr(fd, cname, &mut val[..]) {
                Ok(l) => {
                    val.truncate(l);
                    out.push((name.to_vec(), val));
                    break;
                }
                Err(Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(Errno::NODATA) => break,
                Err(e) => return Err(ctx("fgetxattr", e)),
            }
        }
    }
    Ok(out)
}

/// Replace the contents and attributes of the regular file `dst` (a fresh copy in the new
/// `/etc`, with no other links) by those of the regular file `src`, in place. The result is
/// what `glnx_file_copy_at` gives after removing `dst` (same bytes, owner, mode, xattrs and
/// times), without freeing one inode and allocating another: on ext4, allocating inodes near
/// recently freed ones dominates the cost of a merge of many files. `Ok(false)` when `dst`
/// cannot be opened for writing (a read-only file and no `CAP_DAC_OVERRIDE`): the caller then
/// removes and recreates it.
fn overwrite_in_place(src: &Path, md: &std::fs::Metadata, dst: &Path) -> Result<bool> {
    let ctx = |op: &str, e: Errno| Error::io(format!("{op}({})", dst.display()), e.into());
    let to = match rustix::fs::open(
        dst,
        OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) | Err(Errno::PERM) | Err(Errno::TXTBSY) => return Ok(false),
        Err(e) => return Err(ctx("open", e)),
    };
    let from = rustix::fs::open(
        src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open({})", src.display()), e.into()))?;
    let src_xattrs = fd_xattrs(from.as_fd(), src)?;
    let mut from = std::fs::File::from(from);
    let mut to = std::fs::File::from(to);
    copy_bytes(&mut from, &mut to, md.len()).map_err(|e| Error::io_path("Copying", src, e))?;
    rustix::fs::fchown(
        &to,
        Some(rustix::fs::Uid::from_raw(md.uid())),
        Some(rustix::fs::Gid::from_raw(md.gid())),
    )
    .map_err(|e| ctx("fchown", e))?;
    // After the chown and the write, which may clear setuid bits.
    rustix::fs::fchmod(&to, Mode::from_raw_mode(md.mode() & 0o7777))
        .map_err(|e| ctx("fchmod", e))?;
    // Exactly the source's xattrs: drop those only the old file had.
    for (k, _) in fd_xattrs(to.as_fd(), dst)? {
        if !src_xattrs.iter().any(|(n, _)| *n == k) {
            match rustix::fs::fremovexattr(&to, OsStr::from_bytes(&k)) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(e) => return Err(ctx("fremovexattr", e)),
            }
        }
    }
    for (k, v) in &src_xattrs {
        rustix::fs::fsetxattr(
            &to,
            OsStr::from_bytes(k),
            v,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| ctx("fsetxattr", e))?;
    }
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::futimens(&to, &ts).map_err(|e| ctx("futimens", e))?;
    Ok(true)
}

/// A modified regular file whose copy in the new `/etc` is overwritten in place.
struct InPlace {
    rel: String,
    src: PathBuf,
    dst: PathBuf,
    md: std::fs::Metadata,
}

impl InPlace {
    fn run(&self) -> Result<()> {
        let wrap = |e: Error| Error::Other(format!("Copying {}: {e}", self.rel));
        if overwrite_in_place(&self.src, &self.md, &self.dst).map_err(wrap)? {
            return Ok(());
        }
        std::fs::remove_file(&self.dst).map_err(|e| Error::io_path("unlinkat", &self.dst, e))?;
        fsutil::copy_file_overwrite(&self.src, &self.dst, false).map_err(wrap)
    }
}

/// Threads for the in-place copies: the work is mostly in the kernel (journal, page cache),
/// and two threads already take most of the gain on the 2-core machines this runs on.
const INPLACE_THREADS: usize = 2;

/// Run `jobs` on up to [`INPLACE_THREADS`] threads; the first error (in list order) wins.
fn run_inplace(jobs: &[InPlace]) -> Result<()> {
    if jobs.len() < 64 {
        return jobs.iter().try_for_each(InPlace::run);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..INPLACE_THREADS {
            s.spawn(|| {
                use std::sync::atomic::Ordering::Relaxed;
                while !failed.load(Relaxed) {
                    let i = next.fetch_add(1, Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    if let Err(e) = job.run() {
                        failed.store(true, Relaxed);
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i, e));
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by_key(|(i, _)| *i);
    match errors.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Copy the bytes of `from` (of `len` bytes) into the empty `to` (`copy_file_range`, which
/// reflinks where the filesystem can; plain reads and writes where it is not supported).
fn copy_bytes(from: &mut std::fs::File, to: &mut std::fs::File, len: u64) -> std::io::Result<()> {
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(&*from, None, &*to, None, chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => left = left.saturating_sub(n as u64),
            Err(Errno::INTR) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP | Errno::PERM) => {
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Whatever copy_file_range did not do (and anything past the expected length).
    std::io::copy(from, to).map(|_| ())
}

/// `copy_modified_config_file`. `ensured` holds the parent directories already made to
/// match their template in this merge (each is done once, not once per file in it).
fn copy_modified(
    modified_etc: &Path,
    new_etc: &Path,
    rel: &str,
    no_xattrs: bool,
    ensured: &mut HashSet<String>,
    inplace: &mut Vec<InPlace>,
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
        Ok(nm) => {
            if !no_xattrs && md.is_file() && nm.is_file() && nm.nlink() == 1 {
                // Independent of every other entry: done later, on a few threads.
                inplace.push(InPlace {
                    rel: rel.to_string(),
                    src,
                    dst,
                    md,
                });
                return Ok(());
            }
            std::fs::remove_file(&dst).map_err(|e| Error::io_path("unlinkat", &dst, e))?
        }
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
    let mut inplace = Vec::new();
    for rel in diff.modified.iter().chain(diff.added.iter()) {
        copy_modified(
            &modified_etc,
            &new_etc,
            rel,
            no_xattrs,
            &mut ensured,
            &mut inplace,
        )?;
    }
    run_inplace(&inplace)
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
        // The in-place overwrite keeps exactly the source's xattrs (where user xattrs work).
        let xattrs = rustix::fs::lsetxattr(
            old.join("etc/mod"),
            "user.src",
            b"1",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok()
            && rustix::fs::lsetxattr(
                new.join("etc/mod"),
                "user.stale",
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
            .is_ok();
        std::fs::set_permissions(old.join("etc/mod"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
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
        let mmd = std::fs::metadata(new.join("etc/mod")).unwrap();
        assert_eq!(mmd.mode() & 0o7777, 0o640);
        let omd = std::fs::metadata(old.join("etc/mod")).unwrap();
        assert_eq!(mmd.mtime(), omd.mtime());
        assert_eq!(mmd.mtime_nsec(), omd.mtime_nsec());
        if xattrs {
            let names: Vec<Vec<u8>> = fsutil::read_xattrs(&new.join("etc/mod"))
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert!(names.contains(&b"user.src".to_vec()));
            assert!(!names.contains(&b"user.stale".to_vec()));
        }
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
    fn many_files_in_place_on_threads() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        let new = t.path().join("new");
        for i in 0..200 {
            write(&old.join(format!("usr/etc/b/f{i}")), "default");
            write(&old.join(format!("etc/b/f{i}")), &format!("local {i}"));
            write(&new.join(format!("etc/b/f{i}")), "new default");
        }
        let d = diff_etc(&old.join("usr/etc"), &old.join("etc")).unwrap();
        assert_eq!(d.modified.len(), 200);
        apply_etc_diff(&old, &new, &d, false).unwrap();
        for i in 0..200 {
            assert_eq!(
                std::fs::read_to_string(new.join(format!("etc/b/f{i}"))).unwrap(),
                format!("local {i}")
            );
        }
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
