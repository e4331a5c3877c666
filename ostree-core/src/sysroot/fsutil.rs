//! Small filesystem helpers for the sysroot: recursive removal, atomic replacement of files
//! and symlinks, copies that keep ownership, mode, timestamps and xattrs, the immutable flag,
//! and the `glnx_make_lock_file` lock protocol.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::IoContext;
use crate::{Error, Result};

/// `rm -rf`: remove `path` (never following symlinks); a missing path is fine. Immutable
/// directories (a sealed deployment) are made mutable first.
pub fn rm_rf(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_path("stat", path, e)),
        Ok(md) if md.is_dir() => {
            if let Ok(fd) = open_dir(path) {
                set_immutable(fd.as_fd(), false)?;
            }
            remove_dir_contents(path)?;
            match std::fs::remove_dir(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io_path("Removing", path, e)),
            }
        }
        Ok(_) => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io_path("Removing", path, e)),
        },
    }
}

fn remove_dir_contents(dir: &Path) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io_path("Reading directory", dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io_path("Reading directory", dir, e))?;
        let p = ent.path();
        let ft = ent.file_type().map_err(|e| Error::io_path("stat", &p, e))?;
        if ft.is_dir() {
            rm_rf(&p)?;
        } else {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io_path("Removing", &p, e)),
            }
        }
    }
    Ok(())
}

/// `mkdir -p` with `mode` for the directories created.
pub fn mkdir_p(path: &Path, mode: u32) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
    b.create(path)
        .map_err(|e| Error::io_path("Creating", path, e))
}

/// Open a directory.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opendir({})", path.display()))
}

/// Whether `path` exists (without following a final symlink).
pub fn lexists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name beside `path`.
pub fn tmp_sibling(path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Replace (or create) a symlink atomically (`symlink_at_replace`): `NAME.tmp`, then rename.
pub fn symlink_replace(target: &str, path: &Path) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io_path("symlinkat", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io_path("renameat", path, e))
}

/// Replace a file's contents atomically (write beside it, optionally `fdatasync`, rename).
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32, sync: bool) -> Result<()> {
    let tmp = tmp_sibling(path);
    let res = (|| -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io_path("Creating", &tmp, e))?;
        f.write_all(contents)
            .map_err(|e| Error::io_path("Writing", &tmp, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io_path("fchmod", &tmp, e))?;
        if sync {
            f.sync_data()
                .map_err(|e| Error::io_path("fdatasync", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io_path("rename", path, e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// `fsync` a directory (or file) by path.
pub fn fsync_path(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io_path("open", path, e))?;
    f.sync_all().map_err(|e| Error::io_path("fsync", path, e))
}

/// `syncfs` the filesystem holding `path`.
pub fn syncfs_path(path: &Path) -> Result<()> {
    let fd = open_dir(path)?;
    rustix::fs::syncfs(&fd).ctx(|| format!("syncfs({})", path.display()))
}

/// `EXT4_IOC_CHECKPOINT` (`_IOW('f', 43, __u32)`, Linux 5.13+).
const EXT4_IOC_CHECKPOINT: rustix::ioctl::Opcode = rustix::ioctl::opcode::write::<u32>(b'f', 43);

/// Write the ext4 journal of the filesystem holding `path` back to its home locations
/// (`EXT4_IOC_CHECKPOINT`, flags 0), after a `syncfs`.
///
/// Bootloaders such as GRUB read ext4 without replaying its journal: a `/boot/loader` swap
/// that is durable only in the journal is invisible to them until the kernel checkpoints it.
/// ostree 2022.7 forces that with an FIFREEZE/FITHAW cycle; a checkpoint gives the same
/// on-disk state without ever freezing the filesystem. Returns `Ok(false)` where it does not
/// apply (not ext4, a kernel without the ioctl, or no `CAP_SYS_ADMIN`): then the journal is
/// still durable and the kernel replays it on the next mount.
pub fn checkpoint_journal(path: &Path) -> Result<bool> {
    let fd = open_dir(path)?;
    rustix::fs::syncfs(&fd).ctx(|| format!("syncfs({})", path.display()))?;
    // SAFETY: EXT4_IOC_CHECKPOINT takes a pointer to one `__u32` of flags, which is what
    // `Setter<_, u32>` passes; the kernel only reads it. Other filesystems reject the opcode
    // (ENOTTY/EOPNOTSUPP/EINVAL) without acting on it.
    #[allow(unsafe_code)]
    let r = unsafe {
        rustix::ioctl::ioctl(
            &fd,
            rustix::ioctl::Setter::<{ EXT4_IOC_CHECKPOINT }, u32>::new(0),
        )
    };
    match r {
        Ok(()) => Ok(true),
        Err(e)
            if [
                rustix::io::Errno::NOTTY,
                rustix::io::Errno::OPNOTSUPP,
                rustix::io::Errno::INVAL,
                rustix::io::Errno::PERM,
                rustix::io::Errno::ACCESS,
                rustix::io::Errno::NOSYS,
                rustix::io::Errno::NODEV,
            ]
            .contains(&e) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error::Other(format!(
            "Checkpointing the journal of {}: {e}",
            path.display()
        ))),
    }
}

static NO_ALTER_IMMUTABLE: AtomicBool = AtomicBool::new(false);

/// Set or clear the immutable flag (`chattr +i`) of a file or directory
/// (`_ostree_linuxfs_fd_alter_immutable_flag`): silently nothing where unsupported or not
/// permitted.
pub fn set_immutable(fd: BorrowedFd<'_>, immutable: bool) -> Result<()> {
    use rustix::fs::IFlags;
    if NO_ALTER_IMMUTABLE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let flags = match rustix::fs::ioctl_getflags(fd) {
        Ok(f) => f,
        Err(Errno::PERM) => {
            NO_ALTER_IMMUTABLE.store(true, Ordering::Relaxed);
            return Ok(());
        }
        Err(Errno::OPNOTSUPP) | Err(Errno::NOTTY) | Err(Errno::INVAL) => return Ok(()),
        Err(e) => return Err(Error::io("ioctl(EXT2_IOC_GETFLAGS)", e.into())),
    };
    if flags.contains(IFlags::IMMUTABLE) == immutable {
        return Ok(());
    }
    let new = if immutable {
        flags | IFlags::IMMUTABLE
    } else {
        flags - IFlags::IMMUTABLE
    };
    match rustix::fs::ioctl_setflags(fd, new) {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => {
            NO_ALTER_IMMUTABLE.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(Errno::OPNOTSUPP) | Err(Errno::NOTTY) | Err(Errno::INVAL) => Ok(()),
        Err(e) => Err(Error::io("ioctl(EXT2_IOC_SETFLAGS)", e.into())),
    }
}

/// All extended attributes of `path` (not following symlinks), as (name, value).
pub fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("llistxattr({})", path.display()),
                    e.into(),
                ));
            }
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut val) {
                Ok(l) => break Some(l),
                Err(Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(Errno::NODATA) => break None,
                Err(e) => {
                    return Err(Error::io(
                        format!("lgetxattr({})", path.display()),
                        e.into(),
                    ));
                }
            }
        };
        if let Some(l) = len {
            val.truncate(l);
            out.push((name.to_vec(), val));
        }
    }
    Ok(out)
}

/// Set extended attributes on `path` (not following symlinks).
pub fn write_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(
            path,
            OsStr::from_bytes(k),
            v,
            rustix::fs::XattrFlags::empty(),
        )
        .ctx(|| format!("lsetxattr({})", path.display()))?;
    }
    Ok(())
}

/// Copy ownership, mode and (unless `no_xattrs`) xattrs of directory `src` onto directory
/// `dst` (`dirfd_copy_attributes_and_xattrs`).
pub fn copy_dir_attrs(src: &Path, dst: &Path, no_xattrs: bool) -> Result<()> {
    if !no_xattrs {
        write_xattrs(dst, &read_xattrs(src)?)?;
    }
    let md = std::fs::symlink_metadata(src).map_err(|e| Error::io_path("stat", src, e))?;
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
        .map_err(|e| Error::io_path("fchown", dst, e))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(|e| Error::io_path("fchmod", dst, e))
}

/// Copy a regular file or symlink `src` to `dst`, replacing `dst` atomically, with
/// ownership, mode, timestamps and (unless `no_xattrs`) xattrs (`glnx_file_copy_at` with
/// `GLNX_FILE_COPY_OVERWRITE`).
pub fn copy_file_overwrite(src: &Path, dst: &Path, no_xattrs: bool) -> Result<()> {
    let md = std::fs::symlink_metadata(src).map_err(|e| Error::io_path("stat", src, e))?;
    let tmp = tmp_sibling(dst);
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
    let xattrs = if no_xattrs {
        Vec::new()
    } else {
        read_xattrs(src)?
    };
    let res = (|| -> Result<()> {
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(src).map_err(|e| Error::io_path("readlink", src, e))?;
            std::os::unix::fs::symlink(&target, &tmp)
                .map_err(|e| Error::io_path("symlink", &tmp, e))?;
            std::os::unix::fs::lchown(&tmp, Some(md.uid()), Some(md.gid()))
                .map_err(|e| Error::io_path("fchown", &tmp, e))?;
            write_xattrs(&tmp, &xattrs)?;
            rustix::fs::utimensat(rustix::fs::CWD, &tmp, &ts, AtFlags::SYMLINK_NOFOLLOW)
                .ctx(|| format!("utimensat({})", tmp.display()))?;
        } else {
            // Everything through the new file's descriptor: one path lookup for all the
            // attributes (an /etc merge copies thousands of small files).
            let mut from = std::fs::File::open(src).map_err(|e| Error::io_path("open", src, e))?;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| Error::io_path("Creating", &tmp, e))?;
            std::io::copy(&mut from, &mut to).map_err(|e| Error::io_path("Copying", src, e))?;
            rustix::fs::fchown(
                &to,
                Some(rustix::fs::Uid::from_raw(md.uid())),
                Some(rustix::fs::Gid::from_raw(md.gid())),
            )
            .ctx(|| format!("fchown({})", tmp.display()))?;
            // After the chown, which may clear setuid bits.
            rustix::fs::fchmod(&to, rustix::fs::Mode::from_raw_mode(md.mode() & 0o7777))
                .ctx(|| format!("fchmod({})", tmp.display()))?;
            for (k, v) in &xattrs {
                rustix::fs::fsetxattr(
                    &to,
                    OsStr::from_bytes(k),
                    v,
                    rustix::fs::XattrFlags::empty(),
                )
                .ctx(|| format!("fsetxattr({})", tmp.display()))?;
            }
            rustix::fs::futimens(&to, &ts).ctx(|| format!("futimens({})", tmp.display()))?;
        }
        std::fs::rename(&tmp, dst).map_err(|e| Error::io_path("rename", dst, e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Copy a directory tree with attributes (`copy_dir_recurse`): directories get the source's
/// ownership, mode and xattrs; regular files and symlinks are copied; other files skipped.
pub fn copy_dir_recurse(src: &Path, dst: &Path, no_xattrs: bool) -> Result<()> {
    match std::fs::create_dir(dst) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io_path("mkdir", dst, e)),
    }
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io_path("fchmod", dst, e))?;
    copy_dir_attrs(src, dst, no_xattrs).map_err(|e| {
        Error::Other(format!(
            "Copying attributes of {}: {e}",
            src.file_name().unwrap_or_default().to_string_lossy()
        ))
    })?;
    let rd = std::fs::read_dir(src).map_err(|e| Error::io_path("opendir", src, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io_path("readdir", src, e))?;
        let ft = ent
            .file_type()
            .map_err(|e| Error::io_path("stat", ent.path(), e))?;
        let name = ent.file_name();
        if ft.is_dir() {
            copy_dir_recurse(&src.join(&name), &dst.join(&name), no_xattrs)?;
        } else if ft.is_file() || ft.is_symlink() {
            copy_file_overwrite(&src.join(&name), &dst.join(&name), no_xattrs)
                .map_err(|e| Error::Other(format!("Copying {}: {e}", name.to_string_lossy())))?;
        }
    }
    Ok(())
}

/// An exclusive lock on a lock file, released (and the file unlinked) on drop — libglnx's
/// `glnx_make_lock_file` protocol with open-file-description locks, so it excludes other
/// processes (and the C ostree) as well as other handles in this process.
#[derive(Debug)]
pub struct LockFile {
    fd: Option<OwnedFd>,
    path: PathBuf,
}

impl LockFile {
    /// Take the lock; `blocking` waits for it, otherwise `Ok(None)` when held elsewhere.
    pub fn lock(path: &Path, blocking: bool) -> Result<Option<LockFile>> {
        loop {
            let fd = rustix::fs::open(
                path,
                OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::from_raw_mode(0o600),
            )
            .ctx(|| format!("Opening lock file {}", path.display()))?;
            if !crate::fslock::ofd_lock(fd.as_fd(), crate::fslock::LockKind::Exclusive, blocking)
                .map_err(|e| Error::io(format!("Locking {}", path.display()), e))?
            {
                return Ok(None);
            }
            // The previous owner unlinks the file on release: lock the new one instead.
            let st = rustix::fs::fstat(&fd).ctx(|| format!("fstat {}", path.display()))?;
            if st.st_nlink > 0 {
                return Ok(Some(LockFile {
                    fd: Some(fd),
                    path: path.to_path_buf(),
                }));
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            let _ = std::fs::remove_file(&self.path);
            drop(fd);
        }
    }
}

/// Free bytes available to unprivileged writers on the filesystem of `path`.
pub fn available_bytes(path: &Path) -> Result<u64> {
    let fd = open_dir(path)?;
    let st = rustix::fs::fstatvfs(&fd).ctx(|| format!("fstatvfs({})", path.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
