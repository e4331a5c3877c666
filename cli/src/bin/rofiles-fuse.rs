//! `rofiles-fuse`: expose a directory (typically a hardlinked ostree checkout) through FUSE so
//! that files with more than one link are read-only, while new files can be created and
//! directories changed — the behaviour of ostree 2022.7's `src/rofiles-fuse/main.c`.
//!
//! ```text
//! rofiles-fuse [--copyup] [-o OPT[,OPT…]] [-f] [-d] BASEPATH MOUNTPOINT
//! ```
//!
//! * a write open, `chmod`, `chown`, `truncate` or `setxattr` on a regular file or symlink whose
//!   link count is above one fails with `EROFS` — or, with `--copyup`, first replaces it by a
//!   private copy (ostree's `ostree_break_hardlink`: same data, owner, mode, times, xattrs);
//! * everything else (creating, renaming, deleting, linking, `utimens`, new directories) passes
//!   through; device nodes cannot be created (`EROFS`).
//!
//! Like libfuse's `fuse_main`, the process puts itself in the background once the mount is up
//! unless `-f`/`-d` is given, so `rofiles-fuse base mnt && use mnt` works; `fusermount -u mnt`
//! ends it. The FUSE protocol is spoken by the pure-Rust `fuser` crate, which mounts through the
//! `fusermount3` helper (no libfuse needed).
//!
//! The kernel talks in inode numbers; like libfuse's high-level API we keep a table of
//! (parent, name) nodes and turn them back into paths relative to BASEPATH, which every
//! operation resolves with `*at` calls on the base directory's descriptor.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};
use rustix::fs::{AtFlags, Mode, OFlags, Stat};

/// libfuse's default entry and attribute timeout.
const TTL: Duration = Duration::from_secs(1);

/// Environment variable marking the backgrounded child.
const CHILD_ENV: &str = "ROFILES_FUSE_DAEMON_CHILD";

#[derive(Debug)]
struct Node {
    parent: u64,
    name: OsString,
    nlookup: u64,
}

#[derive(Debug, Default)]
struct Tables {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, OsString), u64>,
    next_ino: u64,
    files: HashMap<u64, Arc<File>>,
    next_fh: u64,
}

#[derive(Debug)]
struct RoFiles {
    base: OwnedFd,
    copyup: bool,
    t: Mutex<Tables>,
}

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc_eio()))
}

const fn libc_eio() -> i32 {
    5
}

fn kind_of(mode: u32) -> FileType {
    match mode & 0o170000 {
        0o040000 => FileType::Directory,
        0o120000 => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o060000 => FileType::BlockDevice,
        0o010000 => FileType::NamedPipe,
        0o140000 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs())
    }
}

fn to_attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.st_ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec as i64),
        mtime: time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// ostree won't hardlink anything but regular files and symlinks; those with one link are
/// private to this checkout (`can_write_stbuf`).
fn can_write(st: &Stat) -> bool {
    let fmt = st.st_mode & 0o170000;
    if fmt != 0o100000 && fmt != 0o120000 {
        return true;
    }
    st.st_nlink <= 1
}

fn timespec(t: TimeOrNow) -> rustix::fs::Timespec {
    match t {
        TimeOrNow::Now => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        TimeOrNow::SpecificTime(t) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            rustix::fs::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()) as _,
            }
        }
    }
}

fn omit() -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    }
}

impl RoFiles {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.t.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Path of a node relative to the base (`.` for the root), as `ENSURE_RELPATH` gives it.
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        let t = self.tables();
        let mut parts: Vec<&OsStr> = Vec::new();
        let mut cur = ino.0;
        while cur != INodeNo::ROOT.0 {
            let n = t.nodes.get(&cur).ok_or(Errno::ENOENT)?;
            parts.push(&n.name);
            cur = n.parent;
            if parts.len() > 4096 {
                return Err(Errno::ELOOP);
            }
        }
        if parts.is_empty() {
            return Ok(PathBuf::from("."));
        }
        let mut p = PathBuf::new();
        for part in parts.iter().rev() {
            p.push(part);
        }
        Ok(p)
    }

    fn child_path(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        let p = self.path(parent)?;
        Ok(if p == Path::new(".") {
            PathBuf::from(name)
        } else {
            p.join(name)
        })
    }

    /// The node for (parent, name), created if needed; counts one lookup.
    fn remember(&self, parent: INodeNo, name: &OsStr) -> INodeNo {
        let mut t = self.tables();
        let key = (parent.0, name.to_os_string());
        if let Some(&ino) = t.by_name.get(&key) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.nlookup += 1;
            }
            return INodeNo(ino);
        }
        t.next_ino += 1;
        let ino = t.next_ino;
        t.nodes.insert(
            ino,
            Node {
                parent: parent.0,
                name: name.to_os_string(),
                nlookup: 1,
            },
        );
        t.by_name.insert(key, ino);
        INodeNo(ino)
    }

    fn stat_path(&self, path: &Path) -> Result<Stat, Errno> {
        rustix::fs::statat(&self.base, path, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)
    }

    fn entry(&self, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self
            .child_path(parent, name)
            .and_then(|p| self.stat_path(&p));
        match r {
            Ok(st) => {
                self.remember(parent, name);
                let ino = self.lookup_ino(parent, name);
                let mut attr = to_attr(&st);
                attr.ino = ino;
                reply.entry(&TTL, &attr, Generation(0));
            }
            Err(e) => reply.error(e),
        }
    }

    fn lookup_ino(&self, parent: INodeNo, name: &OsStr) -> INodeNo {
        let t = self.tables();
        INodeNo(
            t.by_name
                .get(&(parent.0, name.to_os_string()))
                .copied()
                .unwrap_or(0),
        )
    }

    /// `/proc/self/fd/BASE/PATH`, what upstream uses for the xattr calls.
    fn proc_path(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.base.as_raw_fd())).join(path)
    }

    /// `verify_write_or_copyup`: refuse (or copy up) writes to hardlinked files.
    fn verify_write(&self, path: &Path, st: Option<&Stat>) -> Result<bool, Errno> {
        let local;
        let st = match st {
            Some(s) => s,
            None => match rustix::fs::statat(&self.base, path, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => {
                    local = s;
                    &local
                }
                Err(rustix::io::Errno::NOENT) => return Ok(false),
                Err(e) => return Err(errno(e)),
            },
        };
        if can_write(st) {
            return Ok(false);
        }
        if !self.copyup {
            return Err(Errno::EROFS);
        }
        self.break_hardlink(path, st).map_err(errno)?;
        Ok(true)
    }

    /// `ostree_break_hardlink`: replace `path` by a private copy (data, owner, mode, times,
    /// xattrs), renamed over it.
    fn break_hardlink(&self, path: &Path, st: &Stat) -> rustix::io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(
            ".{name}.rofiles-copyup-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec as _,
            },
        };
        let owner = Some(rustix::fs::Uid::from_raw(st.st_uid));
        let group = Some(rustix::fs::Gid::from_raw(st.st_gid));
        let result = (|| -> rustix::io::Result<()> {
            if st.st_mode & 0o170000 == 0o120000 {
                let target = rustix::fs::readlinkat(&self.base, path, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), &self.base, &tmp)?;
                rustix::fs::chownat(&self.base, &tmp, owner, group, AtFlags::SYMLINK_NOFOLLOW)?;
                // Symlinks carry only trusted/security xattrs; copy what the kernel allows.
                let from = self.proc_path(path);
                let to = self.proc_path(&tmp);
                if let Ok(list) = grow(|b| rustix::fs::llistxattr(&from, b)) {
                    for n in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                        let n = OsStr::from_bytes(n);
                        if let Ok(v) = grow(|b| rustix::fs::lgetxattr(&from, n, b)) {
                            let _ =
                                rustix::fs::lsetxattr(&to, n, &v, rustix::fs::XattrFlags::empty());
                        }
                    }
                }
                rustix::fs::utimensat(&self.base, &tmp, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            } else {
                let src = rustix::fs::openat(
                    &self.base,
                    path,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = rustix::fs::openat(
                    &self.base,
                    &tmp,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let (src, dst) = (File::from(src), File::from(dst));
                let mut r = std::io::BufReader::with_capacity(128 * 1024, &src);
                let mut w = &dst;
                std::io::copy(&mut r, &mut w).map_err(|e| {
                    rustix::io::Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc_eio()))
                })?;
                if let Ok(list) = grow(|b| rustix::fs::flistxattr(&src, b)) {
                    for n in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                        let n = OsStr::from_bytes(n);
                        let v = grow(|b| rustix::fs::fgetxattr(&src, n, b))?;
                        rustix::fs::fsetxattr(&dst, n, &v, rustix::fs::XattrFlags::empty())?;
                    }
                }
                rustix::fs::fchown(&dst, owner, group)?;
                rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
                rustix::fs::futimens(&dst, &times)?;
            }
            rustix::fs::renameat(&self.base, &tmp, &self.base, path)
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.base, &tmp, AtFlags::empty());
        }
        result
    }

    /// `do_open` of upstream: reads pass through; writes are checked against hardlinks, with
    /// `O_TRUNC` applied only after the check.
    fn do_open(&self, path: &Path, mode: u32, flags: i32) -> Result<FileHandle, Errno> {
        let oflags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(mode);
        let fd = if oflags & OFlags::RWMODE == OFlags::RDONLY {
            rustix::fs::openat(&self.base, path, oflags, mode).map_err(errno)?
        } else {
            let fd = rustix::fs::openat(&self.base, path, oflags - OFlags::TRUNC, mode)
                .map_err(errno)?;
            let st = rustix::fs::fstat(&fd).map_err(errno)?;
            let copied = self.verify_write(path, Some(&st))?;
            if copied {
                drop(fd);
                rustix::fs::openat(
                    &self.base,
                    path,
                    oflags - OFlags::EXCL - OFlags::CREATE,
                    mode,
                )
                .map_err(errno)?
            } else {
                if oflags.contains(OFlags::TRUNC) {
                    rustix::fs::ftruncate(&fd, 0).map_err(errno)?;
                }
                fd
            }
        };
        let mut t = self.tables();
        t.next_fh += 1;
        let fh = t.next_fh;
        t.files.insert(fh, Arc::new(File::from(fd)));
        Ok(FileHandle(fh))
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.tables().files.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn getattr_path(&self, path: &Path) -> Result<FileAttr, Errno> {
        let st = if path == Path::new(".") {
            rustix::fs::fstat(&self.base).map_err(errno)?
        } else {
            self.stat_path(path)?
        };
        Ok(to_attr(&st))
    }
}

impl Filesystem for RoFiles {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(parent, name, reply);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut t = self.tables();
        let remove = match t.nodes.get_mut(&ino.0) {
            Some(n) => {
                n.nlookup = n.nlookup.saturating_sub(nlookup);
                n.nlookup == 0
            }
            None => false,
        };
        if remove && ino != INodeNo::ROOT {
            // Children keep their parent referenced in the kernel, so none is left here.
            if let Some(n) = t.nodes.remove(&ino.0) {
                let key = (n.parent, n.name);
                if t.by_name.get(&key) == Some(&ino.0) {
                    t.by_name.remove(&key);
                }
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path(ino).and_then(|p| self.getattr_path(&p)) {
            Ok(mut a) => {
                a.ino = ino;
                reply.attr(&TTL, &a)
            }
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = (|| -> Result<FileAttr, Errno> {
            let path = self.path(ino)?;
            if let Some(mode) = mode {
                self.verify_write(&path, None)?;
                // Like upstream, chmod follows symlinks (fchmodat has no NOFOLLOW).
                rustix::fs::chmodat(
                    &self.base,
                    &path,
                    Mode::from_raw_mode(mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                self.verify_write(&path, None)?;
                rustix::fs::chownat(
                    &self.base,
                    &path,
                    uid.map(rustix::fs::Uid::from_raw),
                    gid.map(rustix::fs::Gid::from_raw),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(errno)?;
            }
            if let Some(size) = size {
                self.verify_write(&path, None)?;
                let fd = rustix::fs::openat(
                    &self.base,
                    &path,
                    OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                rustix::fs::ftruncate(&fd, size).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                // Not write-checked: times may change even on hardlinked files.
                let ts = rustix::fs::Timestamps {
                    last_access: atime.map_or_else(omit, timespec),
                    last_modification: mtime.map_or_else(omit, timespec),
                };
                rustix::fs::utimensat(&self.base, &path, &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno)?;
            }
            let mut a = self.getattr_path(&path)?;
            a.ino = ino;
            Ok(a)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self
            .path(ino)
            .and_then(|p| rustix::fs::readlinkat(&self.base, &p, Vec::new()).map_err(errno));
        match r {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.child_path(parent, name).and_then(|p| {
            rustix::fs::mkdirat(&self.base, &p, Mode::from_raw_mode(mode)).map_err(errno)
        });
        match r {
            Ok(()) => self.entry(parent, name, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .child_path(parent, name)
            .and_then(|p| rustix::fs::unlinkat(&self.base, &p, AtFlags::empty()).map_err(errno));
        match r {
            Ok(()) => {
                self.tables()
                    .by_name
                    .remove(&(parent.0, name.to_os_string()));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .child_path(parent, name)
            .and_then(|p| rustix::fs::unlinkat(&self.base, &p, AtFlags::REMOVEDIR).map_err(errno));
        match r {
            Ok(()) => {
                self.tables()
                    .by_name
                    .remove(&(parent.0, name.to_os_string()));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = self
            .child_path(parent, link_name)
            .and_then(|p| rustix::fs::symlinkat(target, &self.base, &p).map_err(errno));
        match r {
            Ok(()) => self.entry(parent, link_name, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> Result<(), Errno> {
            let from = self.child_path(parent, name)?;
            let to = self.child_path(newparent, newname)?;
            rustix::fs::renameat_with(
                &self.base,
                &from,
                &self.base,
                &to,
                rustix::fs::RenameFlags::from_bits_retain(flags.bits()),
            )
            .map_err(errno)?;
            let mut t = self.tables();
            let old_key = (parent.0, name.to_os_string());
            let new_key = (newparent.0, newname.to_os_string());
            let moved = t.by_name.remove(&old_key);
            let replaced = t.by_name.remove(&new_key);
            if flags.contains(RenameFlags::RENAME_EXCHANGE)
                && let Some(r) = replaced
            {
                if let Some(n) = t.nodes.get_mut(&r) {
                    n.parent = parent.0;
                    n.name = name.to_os_string();
                }
                t.by_name.insert(old_key, r);
            }
            if let Some(m) = moved {
                if let Some(n) = t.nodes.get_mut(&m) {
                    n.parent = newparent.0;
                    n.name = newname.to_os_string();
                }
                t.by_name.insert(new_key, m);
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| -> Result<(), Errno> {
            let from = self.path(ino)?;
            let to = self.child_path(newparent, newname)?;
            rustix::fs::linkat(&self.base, &from, &self.base, &to, AtFlags::empty()).map_err(errno)
        })();
        match r {
            Ok(()) => self.entry(newparent, newname, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino).and_then(|p| self.do_open(&p, 0, flags.0)) {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| -> Result<(FileHandle, FileAttr), Errno> {
            let path = self.child_path(parent, name)?;
            let fh = self.do_open(&path, mode & !umask & 0o7777, flags | libc_o_creat())?;
            let st = self.stat_path(&path)?;
            Ok((fh, to_attr(&st)))
        })();
        match r {
            Ok((fh, mut attr)) => {
                self.remember(parent, name);
                attr.ino = self.lookup_ino(parent, name);
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.file(fh).and_then(|f| {
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_errno(&e)),
                }
            }
            buf.truncate(got);
            Ok(buf)
        });
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.file(fh).and_then(|f| {
            f.write_all_at(data, offset)
                .map(|()| data.len() as u32)
                .map_err(|e| io_errno(&e))
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.tables().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        match self
            .file(fh)
            .and_then(|f| f.sync_all().map_err(|e| io_errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = (|| -> Result<Vec<(u64, FileType, OsString)>, Errno> {
            let path = self.path(ino)?;
            let fd = rustix::fs::openat(
                &self.base,
                &path,
                OFlags::RDONLY | OFlags::NONBLOCK | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)?;
            let mut dir = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
            let mut out = Vec::new();
            while let Some(ent) = dir.read() {
                let ent = ent.map_err(errno)?;
                let kind = match ent.file_type() {
                    rustix::fs::FileType::Directory => FileType::Directory,
                    rustix::fs::FileType::Symlink => FileType::Symlink,
                    rustix::fs::FileType::CharacterDevice => FileType::CharDevice,
                    rustix::fs::FileType::BlockDevice => FileType::BlockDevice,
                    rustix::fs::FileType::Fifo => FileType::NamedPipe,
                    rustix::fs::FileType::Socket => FileType::Socket,
                    _ => FileType::RegularFile,
                };
                out.push((
                    ent.ino(),
                    kind,
                    OsStr::from_bytes(ent.file_name().to_bytes()).to_os_string(),
                ));
            }
            Ok(out)
        })();
        match r {
            Ok(entries) => {
                for (i, (dino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(*dino), (i + 1) as u64, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match rustix::fs::fstatvfs(&self.base) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = (|| -> Result<(), Errno> {
            let path = self.path(ino)?;
            self.verify_write(&path, None)?;
            rustix::fs::setxattr(
                self.proc_path(&path),
                name,
                value,
                rustix::fs::XattrFlags::from_bits_retain(flags as u32),
            )
            .map_err(errno)
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = self.path(ino).and_then(|p| {
            grow(|b| rustix::fs::getxattr(self.proc_path(&p), name, b)).map_err(errno)
        });
        xattr_reply(r, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let r = self
            .path(ino)
            .and_then(|p| grow(|b| rustix::fs::llistxattr(self.proc_path(&p), b)).map_err(errno));
        xattr_reply(r, size, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .path(ino)
            .and_then(|p| rustix::fs::lremovexattr(self.proc_path(&p), name).map_err(errno));
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let r = self.path(ino).and_then(|p| {
            rustix::fs::accessat(
                &self.base,
                &p,
                rustix::fs::Access::from_bits_retain(mask.bits() as u32),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// Call an xattr getter with a growing buffer until the value fits.
fn grow(mut f: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (64 << 20) => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e),
        }
    }
}

const fn libc_o_creat() -> i32 {
    0o100
}

fn xattr_reply(r: Result<Vec<u8>, Errno>, size: u32, reply: ReplyXattr) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}

fn usage(prog: &str) {
    print!(
        "usage: {prog} basepath mountpoint [options]\n\n   Makes basepath visible at mountpoint such that files are read-only, directories are writable\n\ngeneral options:\n   -o opt,[opt...]     mount options\n   -h  --help          print help\n\n"
    );
}

fn die(prog: &str, msg: &str) -> ! {
    eprintln!("{msg}");
    eprintln!("see `{prog} -h' for usage");
    std::process::exit(1);
}

fn mount_option(o: &str) -> MountOption {
    match o {
        "auto_unmount" => MountOption::AutoUnmount,
        "default_permissions" => MountOption::DefaultPermissions,
        "dev" => MountOption::Dev,
        "nodev" => MountOption::NoDev,
        "suid" => MountOption::Suid,
        "nosuid" => MountOption::NoSuid,
        "ro" => MountOption::RO,
        "rw" => MountOption::RW,
        "exec" => MountOption::Exec,
        "noexec" => MountOption::NoExec,
        "atime" => MountOption::Atime,
        "noatime" => MountOption::NoAtime,
        "dirsync" => MountOption::DirSync,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        x if x.starts_with("fsname=") => MountOption::FSName(x[7..].into()),
        x if x.starts_with("subtype=") => MountOption::Subtype(x[8..].into()),
        x => MountOption::CUSTOM(x.into()),
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let prog = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rofiles-fuse".into());
    let mut copyup = false;
    let mut foreground = false;
    let mut opts: Vec<MountOption> = vec![MountOption::FSName("rofiles-fuse".into())];
    let mut positional: Vec<OsString> = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-h") | Some("--help") => {
                usage(&prog);
                std::process::exit(0);
            }
            Some("--copyup") => copyup = true,
            Some("-f") | Some("-d") | Some("-s") => {
                if a == "-f" || a == "-d" {
                    foreground = true;
                }
            }
            Some("-o") => {
                let Some(v) = it.next() else {
                    die(&prog, "Invalid arguments");
                };
                for o in v.to_string_lossy().split(',').filter(|o| !o.is_empty()) {
                    opts.push(mount_option(o));
                }
            }
            Some(s) if s.starts_with("-o") && s.len() > 2 => {
                for o in s[2..].split(',').filter(|o| !o.is_empty()) {
                    opts.push(mount_option(o));
                }
            }
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                // libfuse's option parser sends unknown keys (e.g. -V) to the usage error.
                die(&prog, &format!("see `{prog} -h' for usage"));
            }
            _ => positional.push(a.clone()),
        }
    }
    let Some(base) = positional.first() else {
        die(&prog, "Missing basepath");
    };
    let Some(mountpoint) = positional.get(1) else {
        eprintln!("fuse: no mountpoint specified");
        std::process::exit(2);
    };
    if positional.len() > 2 {
        eprintln!(
            "fuse: invalid argument `{}'",
            positional[2].to_string_lossy()
        );
        std::process::exit(1);
    }
    let base_fd = match rustix::fs::openat(
        rustix::fs::CWD,
        Path::new(base),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "{prog}: opening rootfs {}: {}",
                base.to_string_lossy(),
                std::io::Error::from(e)
            );
            std::process::exit(1);
        }
    };

    let is_child = std::env::var_os(CHILD_ENV).is_some();
    if !foreground && !is_child {
        std::process::exit(background(&args));
    }

    let fs = RoFiles {
        base: base_fd,
        copyup,
        t: Mutex::new(Tables {
            // Node 1 is the root (FUSE_ROOT_ID); others count from 2.
            next_ino: 1,
            ..Tables::default()
        }),
    };
    let mut config = Config::default();
    config.mount_options = opts;
    config.n_threads = Some(2);
    let session = match fuser::Session::new(fs, Path::new(mountpoint), &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuse: {e}");
            std::process::exit(1);
        }
    };
    if is_child {
        // Tell the waiting parent the mount is up, then let go of its pipe.
        println!("ready");
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(null.as_fd());
        }
    }
    if let Err(e) = session.run() {
        eprintln!("fuse: {e}");
        std::process::exit(1);
    }
}

/// `fuse_daemonize`: run the filesystem in a detached child and return once it has mounted.
fn background(args: &[OsString]) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fuse: {e}");
            return 1;
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args[1..])
        .env(CHILD_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fuse: failed to start: {e}");
            return 1;
        }
    };
    let Some(out) = child.stdout.take() else {
        return 1;
    };
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == "ready" {
        return 0;
    }
    match child.wait() {
        Ok(st) => st.code().unwrap_or(1).max(1),
        Err(_) => 1,
    }
}
