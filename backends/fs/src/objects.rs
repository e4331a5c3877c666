//! Writing and reading objects in each repository mode, exactly as ostree 2022.7 lays them out
//! (`ostree-repo-commit.c` `write_content_object` / `commit_loose_regfile_object`, and
//! `ostree-repo.c` `_ostree_repo_load_file_bare`).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use ostree_core::content::read_archived;
use ostree_core::objects::{
    FileMeta, S_IFLNK, S_IFMT, S_IFREG, bare_user_meta, parse_bare_user_meta,
};
use ostree_core::store::{
    ContentBody, ContentRead, ContentSource, ObjectRead, ObjectWrite, RepoMode,
};
use ostree_core::{Error, ObjectKey, ObjectType, Result};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use crate::deflate;
use crate::store::{Inner, Staging, staged_name};
use crate::util::{self, io_err};
use crate::xattr::{self, Target};

/// Name of the bare-user metadata attribute.
pub(crate) const OSTREEMETA: &[u8] = b"user.ostreemeta";

/// Where content bytes come from.
enum Src {
    Bytes(Bytes),
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
}

impl From<ContentSource> for Src {
    fn from(s: ContentSource) -> Self {
        match s {
            ContentSource::Bytes(b) => Src::Bytes(b),
            ContentSource::Path(p) => Src::Path(p),
        }
    }
}

fn changed(expected: u64, got: u64) -> Error {
    Error::Other(format!(
        "content changed while being stored: expected {expected} bytes, read {got}"
    ))
}

/// mtime 0 (`OSTREE_TIMESTAMP`), atime untouched, as ostree sets on bare-mode files.
fn zero_mtime(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        },
    )
}

fn create_file(dir: BorrowedFd<'_>, name: &str, mode: u32) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
}

fn is_symlink_mode(m: u32) -> bool {
    m & S_IFMT == S_IFLNK
}

impl Inner {
    /// Store an object (see the crate docs for staging and publishing).
    pub(crate) fn put_blocking(&self, key: &ObjectKey, data: ObjectWrite) -> Result<()> {
        // Detached metadata is mutable: ostree replaces it (`write_commit_detached_metadata`).
        let replace = key.ty == ObjectType::CommitMeta;
        match (&data, key.ty) {
            (ObjectWrite::Meta(_), ObjectType::File) => {
                return Err(Error::invalid(format!(
                    "{key}: metadata bytes given for a content object"
                )));
            }
            (ObjectWrite::Content { .. } | ObjectWrite::Archived(_), t)
                if t != ObjectType::File =>
            {
                return Err(Error::invalid(format!(
                    "{key}: content given for a metadata object"
                )));
            }
            _ => {}
        }
        if key.ty == ObjectType::File && self.mode == RepoMode::BareSplitXattrs {
            return Err(Error::NotImplemented {
                operation: "Writing content objects (ostree: \"Not allowed due to repo mode\")"
                    .into(),
                implementer: format!("{} (bare-split-xattrs mode)", self.root.display()),
            });
        }
        self.dirty.store(true, Ordering::Release);
        if !replace && self.has_sync(key)? {
            return Ok(());
        }
        let st = self.staging()?;
        let n = st.next_id();
        let tmp = staged_name(n);
        if let Err(e) = self.write_tmp(st, tmp.as_str(), key, data) {
            let _ = rustix::fs::unlinkat(&st.dir, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        if self.staged_mode() {
            let old = {
                let _g = replace.then(|| self.sync_lock.lock().unwrap_or_else(|p| p.into_inner()));
                let mut m = st.staged();
                match m.get(key).copied() {
                    Some(old) if replace => {
                        m.insert(*key, n);
                        Some(old)
                    }
                    // A concurrent put of the same object won: drop ours.
                    Some(_) => Some(n),
                    None => {
                        m.insert(*key, n);
                        None
                    }
                }
            };
            if let Some(old) = old {
                let _ = rustix::fs::unlinkat(&st.dir, staged_name(old).as_str(), AtFlags::empty());
            }
            Ok(())
        } else {
            let r = self.publish(st.dir.as_fd(), tmp.as_str(), key, replace);
            if r.is_err() {
                let _ = rustix::fs::unlinkat(&st.dir, tmp.as_str(), AtFlags::empty());
            }
            r
        }
    }

    fn write_tmp(&self, st: &Staging, tmp: &str, key: &ObjectKey, data: ObjectWrite) -> Result<()> {
        let ctx = |what: &str| {
            format!(
                "writing object {key} to {}/{tmp}: {what}",
                st.path.display()
            )
        };
        match data {
            ObjectWrite::Meta(b) => self
                .write_plain(st.dir.as_fd(), tmp, &b)
                .map_err(|e| io_err(ctx("write"), e)),
            ObjectWrite::Archived(b) if self.mode.is_archive() => self
                .write_plain(st.dir.as_fd(), tmp, &b)
                .map_err(|e| io_err(ctx("write"), e)),
            ObjectWrite::Archived(b) => {
                let (meta, size, reader) = read_archived(io::Cursor::new(b))?;
                self.write_content(st, tmp, key, &meta, size, Src::Reader(reader))
            }
            ObjectWrite::Content { meta, size, source } => {
                self.write_content(st, tmp, key, &meta, size, source.into())
            }
        }
    }

    fn maybe_fsync(&self, fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
        if self.fsync && self.per_object_fsync {
            util::retry(|| rustix::fs::fsync(fd))?;
        }
        Ok(())
    }

    /// A file holding exactly `data`, mode 0644 (metadata objects; archive `.filez` given whole).
    fn write_plain(&self, dir: BorrowedFd<'_>, name: &str, data: &[u8]) -> io::Result<()> {
        let fd = create_file(dir, name, 0o644)?;
        let mut f = File::from(fd);
        f.write_all(data)?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644))?;
        self.maybe_fsync(f.as_fd())?;
        Ok(())
    }

    fn write_content(
        &self,
        st: &Staging,
        tmp: &str,
        key: &ObjectKey,
        meta: &FileMeta,
        size: u64,
        src: Src,
    ) -> Result<()> {
        meta.validate()?;
        let dir = st.dir.as_fd();
        let ctx = |what: &str| {
            format!(
                "writing object {key} to {}/{tmp}: {what}",
                st.path.display()
            )
        };
        let symlink = meta.is_symlink();
        let target = meta.symlink_target.as_deref().unwrap_or("");
        match self.mode {
            RepoMode::Archive => {
                let fd = create_file(dir, tmp, 0o644).map_err(|e| io_err(ctx("create"), e))?;
                let mut f = File::from(fd);
                match src {
                    _ if symlink => {
                        deflate::write_archived(self.zlib_level, meta, 0, io::empty(), &mut f)?
                    }
                    Src::Bytes(b) => {
                        deflate::write_archived(self.zlib_level, meta, size, &b[..], &mut f)?
                    }
                    Src::Reader(r) => {
                        deflate::write_archived(self.zlib_level, meta, size, r, &mut f)?
                    }
                    Src::Path(p) => {
                        let input = File::open(&p).map_err(|e| Error::io_path("opening", &p, e))?;
                        let len = input
                            .metadata()
                            .map_err(|e| Error::io_path("stat", &p, e))?
                            .len();
                        if len != size {
                            return Err(changed(size, len));
                        }
                        deflate::write_archived(self.zlib_level, meta, size, input, &mut f)?
                    }
                }
                rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                self.maybe_fsync(f.as_fd())
                    .map_err(|e| io_err(ctx("fsync"), e))?;
            }
            RepoMode::Bare | RepoMode::BareUserOnly if symlink => {
                rustix::fs::symlinkat(target, dir, tmp).map_err(|e| io_err(ctx("symlinkat"), e))?;
                if self.mode == RepoMode::Bare {
                    rustix::fs::chownat(
                        dir,
                        tmp,
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| io_err(ctx("fchownat"), e))?;
                    if !meta.xattrs.is_empty() {
                        let path = st.path.join(tmp);
                        for (k, v) in &meta.xattrs {
                            xattr::set(Target::Link(&path), k, v).map_err(|e| {
                                io_err(
                                    ctx(&format!("lsetxattr({})", String::from_utf8_lossy(k))),
                                    e,
                                )
                            })?;
                        }
                    }
                }
            }
            RepoMode::Bare => {
                let fd = create_file(dir, tmp, 0o600).map_err(|e| io_err(ctx("create"), e))?;
                let f = File::from(fd);
                self.copy_in(&f, src, size, &ctx)?;
                // Ownership, then mode (chown clears setuid bits), then xattrs: ostree's order.
                rustix::fs::fchown(
                    &f,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                )
                .map_err(|e| io_err(ctx("fchown"), e))?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(meta.mode & 0o7777))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                for (k, v) in &meta.xattrs {
                    xattr::set(Target::Fd(f.as_fd()), k, v).map_err(|e| {
                        io_err(
                            ctx(&format!("fsetxattr({})", String::from_utf8_lossy(k))),
                            e,
                        )
                    })?;
                }
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
                self.maybe_fsync(f.as_fd())
                    .map_err(|e| io_err(ctx("fsync"), e))?;
            }
            RepoMode::BareUser => {
                // Symlinks become regular files holding the target and a NUL, mode 0644.
                let file_mode = if symlink {
                    0o644
                } else {
                    (meta.mode & 0o775) | 0o400
                };
                let fd = create_file(dir, tmp, file_mode).map_err(|e| io_err(ctx("create"), e))?;
                let f = File::from(fd);
                if symlink {
                    let mut buf = Vec::with_capacity(target.len() + 1);
                    buf.extend_from_slice(target.as_bytes());
                    buf.push(0);
                    (&f).write_all(&buf).map_err(|e| io_err(ctx("write"), e))?;
                } else {
                    self.copy_in(&f, src, size, &ctx)?;
                }
                xattr::set(Target::Fd(f.as_fd()), OSTREEMETA, &bare_user_meta(meta))
                    .map_err(|e| io_err(ctx("fsetxattr(user.ostreemeta)"), e))?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(file_mode))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
                self.maybe_fsync(f.as_fd())
                    .map_err(|e| io_err(ctx("fsync"), e))?;
            }
            RepoMode::BareUserOnly => {
                let bad = (meta.mode & !S_IFMT) & !0o775;
                if bad != 0 {
                    return Err(Error::invalid(format!(
                        "Content object {}: invalid mode 0{:04o} with bits 0{:04o}",
                        key.checksum, meta.mode, bad
                    )));
                }
                let perm = meta.mode & 0o775;
                let fd = create_file(dir, tmp, perm).map_err(|e| io_err(ctx("create"), e))?;
                let f = File::from(fd);
                self.copy_in(&f, src, size, &ctx)?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(perm))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
                self.maybe_fsync(f.as_fd())
                    .map_err(|e| io_err(ctx("fsync"), e))?;
            }
            RepoMode::BareSplitXattrs => {
                return Err(Error::NotImplemented {
                    operation: "Writing content objects".into(),
                    implementer: "bare-split-xattrs mode".into(),
                });
            }
        }
        Ok(())
    }

    /// Copy exactly `size` content bytes into `f`: reflink or in-kernel copy for files.
    fn copy_in(&self, f: &File, src: Src, size: u64, ctx: &dyn Fn(&str) -> String) -> Result<()> {
        match src {
            Src::Bytes(b) => {
                if b.len() as u64 != size {
                    return Err(changed(size, b.len() as u64));
                }
                let mut w = f;
                w.write_all(&b).map_err(|e| io_err(ctx("write"), e))
            }
            Src::Reader(r) => {
                let mut w = f;
                let n = io::copy(&mut r.take(size.saturating_add(1)), &mut w)
                    .map_err(|e| io_err(ctx("write"), e))?;
                if n != size {
                    return Err(changed(size, n));
                }
                Ok(())
            }
            Src::Path(p) => {
                let input = File::open(&p).map_err(|e| Error::io_path("opening", &p, e))?;
                let len = input
                    .metadata()
                    .map_err(|e| Error::io_path("stat", &p, e))?
                    .len();
                if len != size {
                    return Err(changed(size, len));
                }
                if size == 0 {
                    return Ok(());
                }
                if !self.no_reflink.load(Ordering::Relaxed) {
                    match rustix::fs::ioctl_ficlone(f, &input) {
                        Ok(()) => return Ok(()),
                        Err(_) => self.no_reflink.store(true, Ordering::Relaxed),
                    }
                }
                let mut remaining = size;
                if !self.no_copy_range.load(Ordering::Relaxed) {
                    while remaining > 0 {
                        let chunk = remaining.min(1 << 30) as usize;
                        match rustix::fs::copy_file_range(&input, None, f, None, chunk) {
                            Ok(0) => return Err(changed(size, size - remaining)),
                            Ok(n) => remaining -= n as u64,
                            Err(Errno::INTR) => {}
                            Err(e) if remaining == size && util::is_unsupported(e) => {
                                self.no_copy_range.store(true, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => return Err(io_err(ctx("copy_file_range"), e)),
                        }
                    }
                    if remaining == 0 {
                        return Ok(());
                    }
                }
                let mut w = f;
                let n = io::copy(&mut (&input).take(remaining + 1), &mut w)
                    .map_err(|e| io_err(ctx("write"), e))?;
                if n != remaining {
                    return Err(changed(size, size - remaining + n));
                }
                Ok(())
            }
        }
    }

    fn not_found(key: &ObjectKey) -> Error {
        if key.ty == ObjectType::File {
            Error::not_found(format!("Couldn't find file object '{}'", key.checksum))
        } else {
            Error::not_found(format!(
                "No such metadata object {}.{}",
                key.checksum, key.ty
            ))
        }
    }

    fn read_whole(&self, key: &ObjectKey) -> Result<Bytes> {
        let fd = self
            .with_obj(key, |dir, name, _| {
                rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            })
            .map_err(|e| {
                io_err(
                    format!("opening object {key} in {}", self.root.display()),
                    e,
                )
            })?
            .ok_or_else(|| Inner::not_found(key))?;
        let mut f = File::from(fd);
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut v = Vec::with_capacity(len as usize);
        f.read_to_end(&mut v).map_err(|e| {
            io_err(
                format!("reading object {key} in {}", self.root.display()),
                e,
            )
        })?;
        Ok(Bytes::from(v))
    }

    /// The stored bytes (metadata, or `.filez` in archive mode).
    pub(crate) fn read_raw(&self, key: &ObjectKey) -> Result<Bytes> {
        self.read_whole(key)
    }

    pub(crate) fn get_blocking(&self, key: &ObjectKey) -> Result<ObjectRead> {
        if key.ty.is_meta() {
            return self.read_whole(key).map(ObjectRead::Meta);
        }
        let ctx = || {
            format!(
                "Opening content object {} in {}",
                key.checksum,
                self.root.display()
            )
        };
        let corrupt = |what: &str| {
            Error::corrupted(format!("Corrupted file object {}: {what}", key.checksum))
        };
        if self.mode == RepoMode::BareSplitXattrs {
            return Err(Error::NotImplemented {
                operation: "Reading content objects".into(),
                implementer: "bare-split-xattrs mode".into(),
            });
        }
        let opened = self
            .with_obj(key, |dir, name, path| {
                match rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                ) {
                    Ok(fd) => {
                        let st = rustix::fs::fstat(&fd)?;
                        Ok(Opened::File(File::from(fd), st))
                    }
                    // O_NOFOLLOW on a symlink.
                    Err(Errno::LOOP) => {
                        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                        let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                        Ok(Opened::Link(st, target.into_bytes(), path()))
                    }
                    Err(e) => Err(e),
                }
            })
            .map_err(|e| io_err(ctx(), e))?
            .ok_or_else(|| Inner::not_found(key))?;
        let link_target =
            |t: Vec<u8>| String::from_utf8(t).map_err(|_| corrupt("symlink target is not UTF-8"));
        let content = match (self.mode, opened) {
            (RepoMode::Archive, Opened::File(f, _)) => {
                let (meta, size, reader) = read_archived(BufReader::with_capacity(8 * 1024, f))?;
                ContentRead {
                    meta,
                    size,
                    body: ContentBody::Reader(reader),
                }
            }
            (RepoMode::Bare, Opened::File(f, st)) => {
                if st.st_mode & S_IFMT != S_IFREG {
                    return Err(corrupt("Not a regular file or symlink"));
                }
                let xattrs = xattr::get_all(Target::Fd(f.as_fd())).map_err(|e| io_err(ctx(), e))?;
                let meta = FileMeta {
                    uid: st.st_uid,
                    gid: st.st_gid,
                    mode: st.st_mode,
                    symlink_target: None,
                    xattrs,
                };
                ContentRead {
                    meta,
                    size: st.st_size as u64,
                    body: ContentBody::Reader(Box::new(f)),
                }
            }
            (RepoMode::Bare, Opened::Link(st, target, path)) => {
                let xattrs = xattr::get_all(Target::Link(&path)).map_err(|e| io_err(ctx(), e))?;
                let meta = FileMeta {
                    uid: st.st_uid,
                    gid: st.st_gid,
                    mode: st.st_mode,
                    symlink_target: Some(link_target(target)?),
                    xattrs,
                };
                ContentRead {
                    meta,
                    size: 0,
                    body: ContentBody::Empty,
                }
            }
            (RepoMode::BareUser, Opened::File(mut f, st)) => {
                let raw = xattr::get(Target::Fd(f.as_fd()), OSTREEMETA)
                    .map_err(|e| io_err(ctx(), e))?
                    .ok_or_else(|| corrupt("missing user.ostreemeta"))?;
                let (uid, gid, mode, xattrs) = parse_bare_user_meta(&raw)?;
                if is_symlink_mode(mode) {
                    // The file holds the target, then (since 2017) a NUL; read up to PATH_MAX.
                    let mut buf = Vec::with_capacity(st.st_size as usize);
                    (&mut f)
                        .take(4097)
                        .read_to_end(&mut buf)
                        .map_err(|e| io_err(ctx(), e))?;
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    buf.truncate(end);
                    let meta = FileMeta {
                        uid,
                        gid,
                        mode,
                        symlink_target: Some(link_target(buf)?),
                        xattrs,
                    };
                    meta.validate()?;
                    ContentRead {
                        meta,
                        size: 0,
                        body: ContentBody::Empty,
                    }
                } else {
                    let meta = FileMeta {
                        uid,
                        gid,
                        mode,
                        symlink_target: None,
                        xattrs,
                    };
                    meta.validate()?;
                    ContentRead {
                        meta,
                        size: st.st_size as u64,
                        body: ContentBody::Reader(Box::new(f)),
                    }
                }
            }
            (RepoMode::BareUserOnly, Opened::File(f, st)) => {
                let meta = FileMeta {
                    uid: 0,
                    gid: 0,
                    mode: st.st_mode,
                    symlink_target: None,
                    xattrs: Vec::new(),
                };
                meta.validate()?;
                ContentRead {
                    meta,
                    size: st.st_size as u64,
                    body: ContentBody::Reader(Box::new(f)),
                }
            }
            (RepoMode::BareUserOnly, Opened::Link(st, target, _)) => {
                let meta = FileMeta {
                    uid: 0,
                    gid: 0,
                    mode: st.st_mode,
                    symlink_target: Some(link_target(target)?),
                    xattrs: Vec::new(),
                };
                ContentRead {
                    meta,
                    size: 0,
                    body: ContentBody::Empty,
                }
            }
            (_, _) => return Err(corrupt("unexpected file type for this repository mode")),
        };
        Ok(ObjectRead::Content(content))
    }
}

enum Opened {
    File(File, Stat),
    Link(Stat, Vec<u8>, PathBuf),
}
