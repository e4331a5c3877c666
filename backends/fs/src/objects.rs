//! Writing and reading objects in each repository mode, exactly as ostree 2022.7 lays them out
//! (`ostree-repo-commit.c` `write_content_object` / `commit_loose_regfile_object`, and
//! `ostree-repo.c` `_ostree_repo_load_file_bare`).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
use crate::pending::{HeldReader, PendingFile, rank};
use crate::store::{Inner, Loc, Staging, staged_name};
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

/// Open a content source file, checking it still has the size core hashed.
fn open_source(p: &Path, size: u64) -> Result<File> {
    let input = File::open(p).map_err(|e| Error::io_path("opening", p, e))?;
    let len = input
        .metadata()
        .map_err(|e| Error::io_path("stat", p, e))?
        .len();
    if len != size {
        return Err(changed(size, len));
    }
    Ok(input)
}

/// `OSTREE_EXP_WRITE_BARE_SPLIT_XATTRS` is set: ostree 2022.7 then lets content be written to
/// a `bare-split-xattrs` repository (an unfinished experiment it otherwise refuses).
fn exp_write_split_xattrs() -> bool {
    std::env::var_os("OSTREE_EXP_WRITE_BARE_SPLIT_XATTRS").is_some()
}

fn is_symlink_mode(m: u32) -> bool {
    m & S_IFMT == S_IFLNK
}

/// What a put writes into a new file.
enum Body {
    /// Exact bytes: metadata objects, and `.filez` given whole to an archive store.
    Plain(Bytes),
    /// A content object, to store in this repository's representation.
    Content { meta: FileMeta, size: u64, src: Src },
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
        if key.ty == ObjectType::File
            && self.mode == RepoMode::BareSplitXattrs
            && !exp_write_split_xattrs()
        {
            return Err(Error::NotImplemented {
                operation: "Writing content objects (ostree: \"Not allowed due to repo mode\")"
                    .into(),
                implementer: format!("{} (bare-split-xattrs mode)", self.root.display()),
            });
        }
        self.begin_put();
        if !replace && self.has_sync(key)? {
            return Ok(());
        }
        let body = match data {
            ObjectWrite::Meta(b) => Body::Plain(b),
            ObjectWrite::Archived(b) if self.mode.is_archive() => Body::Plain(b),
            ObjectWrite::Archived(b) => {
                let (meta, size, reader) = read_archived(io::Cursor::new(b))?;
                Body::Content {
                    meta,
                    size,
                    src: Src::Reader(reader),
                }
            }
            ObjectWrite::Content { meta, size, source } => Body::Content {
                meta,
                size,
                src: source.into(),
            },
        };
        let perm = match &body {
            Body::Plain(_) => 0o644,
            Body::Content { meta, .. } => {
                meta.validate()?;
                if meta.is_symlink() && matches!(self.mode, RepoMode::Bare | RepoMode::BareUserOnly)
                {
                    // A real symlink: named in the staging directory.
                    return self.put_named(key, body, replace, 0);
                }
                self.file_perm(key, meta)?
            }
        };
        // Content and trees as unnamed files in their fan-out directory. Commits (never
        // published before sync, and so never held open) and replaced detached metadata are
        // named in the staging directory.
        if rank(key.ty) <= rank(ObjectType::DirTree)
            && let Some(fd) = self.create_unnamed(key, perm)?
        {
            let f = File::from(fd);
            self.fill(&f, key, body)?;
            let fd = OwnedFd::from(f);
            return if self.staged_mode() {
                self.hold(key, PendingFile::Unnamed(Arc::new(fd)), false)
            } else {
                self.link_into_place(fd.as_fd(), key)
            };
        }
        self.put_named(key, body, replace, perm)
    }

    /// Take over the local regular file `path` as content object `key`
    /// ([`ostree_core::store::ObjectStore::adopt`]; ostree's `adopt_and_commit_regfile`): in a
    /// bare repository when the file already has `meta`'s ownership and mode, in a
    /// bare-user-only one after canonicalizing its mode; it is renamed into place, so other
    /// hardlinks of it become hardlinks of the object. `false`: not adoptable here.
    pub(crate) fn adopt_blocking(
        &self,
        key: &ObjectKey,
        meta: &FileMeta,
        path: &Path,
    ) -> Result<bool> {
        if key.ty != ObjectType::File || meta.is_symlink() {
            return Ok(false);
        }
        let ctx = |what: &str| format!("Commit regfile (adopt) {}: {what}", path.display());
        let st = rustix::fs::lstat(path).map_err(|e| io_err(ctx("lstat"), e))?;
        if st.st_mode & S_IFMT != S_IFREG {
            return Ok(false);
        }
        match self.mode {
            RepoMode::Bare => {
                if (st.st_uid, st.st_gid, st.st_mode) != (meta.uid, meta.gid, meta.mode) {
                    return Ok(false);
                }
            }
            RepoMode::BareUserOnly => {}
            _ => return Ok(false),
        }
        let stg = self.staging()?;
        let dir_st = rustix::fs::fstat(&stg.dir).map_err(|e| io_err(ctx("fstat"), e))?;
        if dir_st.st_dev != st.st_dev {
            return Ok(false);
        }
        if self.mode == RepoMode::BareUserOnly {
            let perm = self.file_perm(key, meta)?;
            rustix::fs::chmod(path, Mode::from_raw_mode(perm))
                .map_err(|e| io_err(ctx("fchmod"), e))?;
        }
        self.begin_put();
        if self.has_sync(key)? {
            // Stored already (maybe as this very inode, with a hardlink checkout): the file
            // was taken over all the same, so it goes.
            rustix::fs::unlink(path).map_err(|e| io_err(ctx("unlink"), e))?;
            return Ok(true);
        }
        let n = stg.next_id();
        let tmp = staged_name(n);
        match rustix::fs::renameat(rustix::fs::CWD, path, &stg.dir, tmp.as_str()) {
            Ok(()) => {}
            Err(Errno::XDEV) => return Ok(false),
            Err(e) => return Err(io_err(ctx("rename"), e)),
        }
        if self.staged_mode() {
            self.hold(key, PendingFile::Named(n), false)?;
        } else {
            let r = self.publish(stg.dir.as_fd(), tmp.as_str(), key, false);
            if r.is_err() {
                let _ = rustix::fs::unlinkat(&stg.dir, tmp.as_str(), AtFlags::empty());
            }
            r?;
        }
        Ok(true)
    }

    /// Store an object as a hardlink of `src`, another repository's file of the same object
    /// in this mode's representation (see `ObjectStore::link_from`). `Ok(false)` when it
    /// cannot be linked (another filesystem, too many links, not permitted).
    pub(crate) fn link_from_blocking(&self, key: &ObjectKey, src: &Path) -> Result<bool> {
        if key.ty == ObjectType::CommitMeta {
            // Mutable: replaced on put, never shared with another repository.
            return Ok(false);
        }
        let ctx = || format!("Importing {}.{}: linkat", key.checksum, key.ty.name());
        if self.has_sync(key)? {
            return Ok(true);
        }
        let stg = self.staging()?;
        let n = stg.next_id();
        let tmp = staged_name(n);
        match rustix::fs::linkat(
            rustix::fs::CWD,
            src,
            &stg.dir,
            tmp.as_str(),
            AtFlags::empty(),
        ) {
            Ok(()) => {}
            Err(Errno::XDEV | Errno::MLINK | Errno::PERM) => return Ok(false),
            Err(e) => return Err(io_err(ctx(), e)),
        }
        self.begin_put();
        if self.staged_mode() {
            self.hold(key, PendingFile::Named(n), false)?;
        } else {
            let r = self.publish(stg.dir.as_fd(), tmp.as_str(), key, false);
            if r.is_err() {
                let _ = rustix::fs::unlinkat(&stg.dir, tmp.as_str(), AtFlags::empty());
            }
            r?;
        }
        Ok(true)
    }

    /// Write the object under a name in the staging directory, then hold it until sync (or
    /// publish it at once when not staging).
    fn put_named(&self, key: &ObjectKey, body: Body, replace: bool, perm: u32) -> Result<()> {
        let st = self.staging()?;
        let n = st.next_id();
        let tmp = staged_name(n);
        let r = match body {
            Body::Content { meta, .. }
                if meta.is_symlink()
                    && matches!(self.mode, RepoMode::Bare | RepoMode::BareUserOnly) =>
            {
                self.write_symlink(st, tmp.as_str(), key, &meta)
            }
            body => create_file(st.dir.as_fd(), tmp.as_str(), perm)
                .map_err(|e| {
                    io_err(
                        format!(
                            "writing object {key} to {}/{}: create",
                            st.path.display(),
                            tmp.as_str()
                        ),
                        e,
                    )
                })
                .and_then(|fd| self.fill(&File::from(fd), key, body)),
        };
        if let Err(e) = r {
            let _ = rustix::fs::unlinkat(&st.dir, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        if self.staged_mode() {
            self.hold(key, PendingFile::Named(n), replace)
        } else {
            let r = self.publish(st.dir.as_fd(), tmp.as_str(), key, replace);
            if r.is_err() {
                let _ = rustix::fs::unlinkat(&st.dir, tmp.as_str(), AtFlags::empty());
            }
            r
        }
    }

    /// The permissions a content object's file is created with (`bare`: owner-only until its
    /// metadata is applied).
    fn file_perm(&self, key: &ObjectKey, meta: &FileMeta) -> Result<u32> {
        Ok(match self.mode {
            RepoMode::Archive => 0o644,
            RepoMode::Bare => 0o600,
            // Symlinks become regular files holding the target and a NUL, mode 0644.
            RepoMode::BareUser if meta.is_symlink() => 0o644,
            RepoMode::BareUser => (meta.mode & 0o775) | 0o400,
            RepoMode::BareUserOnly => {
                let bad = (meta.mode & !S_IFMT) & !0o775;
                if bad != 0 {
                    return Err(Error::invalid(format!(
                        "Content object {}: invalid mode 0{:04o} with bits 0{:04o}",
                        key.checksum, meta.mode, bad
                    )));
                }
                meta.mode & 0o775
            }
            // Experimental writes (see `exp_write_split_xattrs`): a plain 0644 file.
            RepoMode::BareSplitXattrs => 0o644,
        })
    }

    fn maybe_fsync(&self, fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
        if self.fsync && self.per_object_fsync {
            util::retry(|| rustix::fs::fsync(fd))?;
        }
        Ok(())
    }

    /// Fill a new regular file (created with [`Inner::file_perm`]) with the object.
    fn fill(&self, f: &File, key: &ObjectKey, body: Body) -> Result<()> {
        let ctx = |what: &str| format!("writing object {key} in {}: {what}", self.root.display());
        let (meta, size, src) = match body {
            Body::Plain(b) => {
                let mut w = f;
                w.write_all(&b).map_err(|e| io_err(ctx("write"), e))?;
                rustix::fs::fchmod(f, Mode::from_raw_mode(0o644))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                return self
                    .maybe_fsync(f.as_fd())
                    .map_err(|e| io_err(ctx("fsync"), e));
            }
            Body::Content { meta, size, src } => (meta, size, src),
        };
        let symlink = meta.is_symlink();
        match self.mode {
            RepoMode::Archive => {
                let mut w = f;
                match src {
                    _ if symlink => {
                        deflate::write_archived(self.zlib_level, &meta, 0, io::empty(), &mut w)?
                    }
                    Src::Bytes(b) => {
                        deflate::write_archived(self.zlib_level, &meta, size, &b[..], &mut w)?
                    }
                    Src::Reader(r) => {
                        deflate::write_archived(self.zlib_level, &meta, size, r, &mut w)?
                    }
                    Src::Path(p) => {
                        let input = open_source(&p, size)?;
                        deflate::write_archived(self.zlib_level, &meta, size, input, &mut w)?
                    }
                }
                rustix::fs::fchmod(f, Mode::from_raw_mode(0o644))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
            }
            RepoMode::Bare => {
                self.copy_in(f, src, size, &ctx)?;
                // Ownership, then mode (chown clears setuid bits), then xattrs: ostree's order.
                rustix::fs::fchown(
                    f,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                )
                .map_err(|e| io_err(ctx("fchown"), e))?;
                rustix::fs::fchmod(f, Mode::from_raw_mode(meta.mode & 0o7777))
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
            }
            RepoMode::BareUser => {
                let file_mode = self.file_perm(key, &meta)?;
                if symlink {
                    let target = meta.symlink_target.as_deref().unwrap_or("");
                    let mut buf = Vec::with_capacity(target.len() + 1);
                    buf.extend_from_slice(target.as_bytes());
                    buf.push(0);
                    let mut w = f;
                    w.write_all(&buf).map_err(|e| io_err(ctx("write"), e))?;
                } else {
                    self.copy_in(f, src, size, &ctx)?;
                }
                xattr::set(Target::Fd(f.as_fd()), OSTREEMETA, &bare_user_meta(&meta))
                    .map_err(|e| io_err(ctx("fsetxattr(user.ostreemeta)"), e))?;
                rustix::fs::fchmod(f, Mode::from_raw_mode(file_mode))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
            }
            RepoMode::BareUserOnly => {
                let perm = self.file_perm(key, &meta)?;
                self.copy_in(f, src, size, &ctx)?;
                rustix::fs::fchmod(f, Mode::from_raw_mode(perm))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
            }
            RepoMode::BareSplitXattrs => {
                // Experimental writes: ostree 2022.7 stores the content (a symlink's is empty)
                // with none of its metadata and no xattrs link, so fsck then fails on it.
                if !symlink {
                    self.copy_in(f, src, size, &ctx)?;
                }
                rustix::fs::fchmod(f, Mode::from_raw_mode(0o644))
                    .map_err(|e| io_err(ctx("fchmod"), e))?;
                zero_mtime(f.as_fd()).map_err(|e| io_err(ctx("futimens"), e))?;
            }
        }
        self.maybe_fsync(f.as_fd())
            .map_err(|e| io_err(ctx("fsync"), e))
    }

    /// A real symlink named `tmp` in the staging directory (`bare`, `bare-user-only`).
    fn write_symlink(
        &self,
        st: &Staging,
        tmp: &str,
        key: &ObjectKey,
        meta: &FileMeta,
    ) -> Result<()> {
        let dir = st.dir.as_fd();
        let ctx = |what: &str| {
            format!(
                "writing object {key} to {}/{tmp}: {what}",
                st.path.display()
            )
        };
        let target = meta.symlink_target.as_deref().unwrap_or("");
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
                let input = open_source(&p, size)?;
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
                // sendfile, asking for one byte more than expected (a file that grew is an
                // error): std's io::copy would first try copy_file_range again for each file.
                let mut copied = 0u64;
                loop {
                    let want = (remaining + 1 - copied).min(1 << 30) as usize;
                    match rustix::fs::sendfile(f, &input, None, want) {
                        Ok(0) => break,
                        Ok(n) => {
                            copied += n as u64;
                            // Short of what was asked: the end of the file.
                            if n < want || copied > remaining {
                                break;
                            }
                        }
                        Err(Errno::INTR) => {}
                        Err(e) if copied == 0 && util::is_unsupported(e) => {
                            let mut w = f;
                            copied = io::copy(&mut (&input).take(remaining + 1), &mut w)
                                .map_err(|e| io_err(ctx("write"), e))?;
                            break;
                        }
                        Err(e) => return Err(io_err(ctx("sendfile"), e)),
                    }
                }
                if copied != remaining {
                    return Err(changed(size, size - remaining + copied));
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
        let staged = match self.locate(key) {
            Loc::Held(fd) => Some(ObjFile::Held(HeldReader::new(fd))),
            Loc::Staged(n) => self.open_named(key, Some(n))?,
            Loc::Objects => self.open_named(key, None)?,
        };
        let mut f = staged.ok_or_else(|| Inner::not_found(key))?;
        let len = rustix::fs::fstat(f.as_fd())
            .map(|m| m.st_size as u64)
            .unwrap_or(0);
        let mut v = Vec::with_capacity(len as usize);
        f.read_to_end(&mut v).map_err(|e| {
            io_err(
                format!("reading object {key} in {}", self.root.display()),
                e,
            )
        })?;
        Ok(Bytes::from(v))
    }

    /// Open a named object for reading (see [`Inner::with_named`]).
    fn open_named(&self, key: &ObjectKey, staged: Option<u64>) -> Result<Option<ObjFile>> {
        self.with_named(key, staged, |dir, name, _| {
            rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        })
        .map(|o| o.map(|fd| ObjFile::File(File::from(fd))))
        .map_err(|e| {
            io_err(
                format!("opening object {key} in {}", self.root.display()),
                e,
            )
        })
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
        let staged = match self.locate(key) {
            Loc::Held(fd) => {
                let st = rustix::fs::fstat(&*fd).map_err(|e| io_err(ctx(), e))?;
                return self
                    .content_from(key, Opened::File(ObjFile::Held(HeldReader::new(fd)), st));
            }
            Loc::Staged(n) => Some(n),
            Loc::Objects => None,
        };
        let opened = self
            .with_named(key, staged, |dir, name, path| {
                match rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                    Mode::empty(),
                ) {
                    Ok(fd) => {
                        let st = rustix::fs::fstat(&fd)?;
                        Ok(Opened::File(ObjFile::File(File::from(fd)), st))
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
        self.content_from(key, opened)
    }

    /// The xattrs of a `bare-split-xattrs` content object, from its `.file-xattrs-link`.
    fn split_xattrs(&self, key: &ObjectKey) -> Result<ostree_core::objects::Xattrs> {
        let hex = key.checksum.to_string();
        let path = self
            .root
            .join("objects")
            .join(&hex[..2])
            .join(format!("{}.file-xattrs-link", &hex[2..]));
        let data = std::fs::read(&path).map_err(|e| {
            Error::io_path(
                &format!("Opening content object {}: openat", key.checksum),
                &path,
                e,
            )
        })?;
        ostree_core::objects::parse_xattrs(&data).map_err(|e| {
            Error::corrupted(format!(
                "Opening content object {}: Deserializing xattrs content: {e}",
                key.checksum
            ))
        })
    }

    /// Decode an opened content object.
    fn content_from(&self, key: &ObjectKey, opened: Opened) -> Result<ObjectRead> {
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
            (RepoMode::BareSplitXattrs, opened) => {
                // Bare, with the xattrs in the `.file-xattrs` object that `.file-xattrs-link`
                // hardlinks (`_ostree_repo_read_xattrs_file_link`).
                let xattrs = self.split_xattrs(key)?;
                let (st, symlink_target, body) = match opened {
                    Opened::File(f, st) if st.st_mode & S_IFMT == S_IFREG => {
                        (st, None, ContentBody::Reader(Box::new(f)))
                    }
                    Opened::Link(st, target, _) => {
                        (st, Some(link_target(target)?), ContentBody::Empty)
                    }
                    Opened::File(..) => return Err(corrupt("Not a regular file or symlink")),
                };
                let size = if symlink_target.is_some() {
                    0
                } else {
                    st.st_size as u64
                };
                ContentRead {
                    meta: FileMeta {
                        uid: st.st_uid,
                        gid: st.st_gid,
                        mode: st.st_mode,
                        symlink_target,
                        xattrs,
                    },
                    size,
                    body,
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
    File(ObjFile, Stat),
    Link(Stat, Vec<u8>, PathBuf),
}

/// An object file open for reading: named, or held unnamed by this handle.
enum ObjFile {
    File(File),
    Held(HeldReader),
}

impl AsFd for ObjFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            ObjFile::File(f) => f.as_fd(),
            ObjFile::Held(h) => h.fd(),
        }
    }
}

impl Read for ObjFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ObjFile::File(f) => f.read(buf),
            ObjFile::Held(h) => h.read(buf),
        }
    }
}
