//! [`FsStore`]: opening and creating repositories, the staging directory, and the
//! [`ObjectStore`] implementation (which hands heavy I/O to the blocking pool).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use ostree_core::config::RepoConfig;
use ostree_core::objects::FileMeta;
use ostree_core::store::{
    Capabilities, ContentSource, LockGuard, ObjectRead, ObjectStore, ObjectWrite, OpenOptions,
    RefExpect, RepoMode,
};
use ostree_core::{Checksum, Error, ObjectKey, ObjectType, Result, hostenv};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::lock::{LockFile, LockKind, ofd_lock};
use crate::pending::{LinkVia, PendingFile, PendingSet};
use crate::util::{self, FanoutSet, HexName, ObjName, io_err};

/// A local-directory OSTree repository in any mode, byte-compatible with ostree 2022.7.
///
/// Open with [`FsStore::open`] (or through the registry with a `file://` URL). Puts are held
/// as unnamed files (or named in the handle's `tmp/staging-<boot id>-*` directory) and published into
/// `objects/` by [`ObjectStore::sync`] after a `syncfs`; see the crate docs for the durability
/// design.
pub struct FsStore {
    pub(crate) inner: Arc<Inner>,
}

/// Shared state of one handle (moved into blocking tasks).
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) root_fd: OwnedFd,
    pub(crate) objects_fd: OwnedFd,
    pub(crate) tmp_fd: Option<OwnedFd>,
    pub(crate) mode: RepoMode,
    /// `core.fsync` (or the open option).
    pub(crate) fsync: bool,
    /// `core.per-object-fsync`: fsync each object and publish it at once.
    pub(crate) per_object_fsync: bool,
    /// Deflate level of archive content (`[archive] zlib-level`, 1–9, default 6).
    pub(crate) zlib_level: u32,
    /// Fan-out directories known to exist under `objects/`.
    pub(crate) fanout: FanoutSet,
    staging: OnceLock<Staging>,
    staging_init: Mutex<()>,
    /// Objects put but not yet published (staged mode only).
    pending: Mutex<PendingSet>,
    /// Put order of pending objects.
    pub(crate) seq: AtomicU64,
    /// How unnamed files are linked (probed at the first put).
    pub(crate) link_via: OnceLock<LinkVia>,
    /// `O_TMPFILE` failed in `objects/`: write named files only.
    pub(crate) no_tmpfile: AtomicBool,
    /// Unnamed files held before pending objects are published early.
    pub(crate) unnamed_limit: AtomicUsize,
    /// Held while pending objects are published (and by anything removing staged files).
    pub(crate) sync_lock: Mutex<()>,
    /// A put happened since the last `sync` (which then owes a `syncfs` even with nothing
    /// staged).
    pub(crate) dirty: AtomicBool,
    /// A put happened since the last completed `sync`: a transaction is open. A handle dropped
    /// with one open aborted it, and keeps its staging directory for this boot's next one.
    pub(crate) txn_open: AtomicBool,
    /// `core.tmp-expiry-secs`: age past which unknown `tmp/` entries are removed.
    tmp_expiry_secs: u64,
    /// `FICLONE` failed once: do not try it again.
    pub(crate) no_reflink: AtomicBool,
    /// `copy_file_range` failed once: do not try it again.
    pub(crate) no_copy_range: AtomicBool,
    /// This handle, for the thread that publishes pending objects early.
    pub(crate) me: std::sync::Weak<Inner>,
    /// The thread of the last early publication (one runs at a time; the handle waits for
    /// it when dropped).
    pub(crate) flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// What an early publication on its own thread failed with: the next `sync` reports it.
    pub(crate) flush_error: Mutex<Option<Error>>,
}

/// This handle's staging directory `tmp/staging-<boot id>-XXXXXX/`, locked (OFD) through
/// `tmp/staging-<boot id>-XXXXXX-lock` as ostree locks its own.
pub(crate) struct Staging {
    pub(crate) name: String,
    pub(crate) dir: OwnedFd,
    pub(crate) path: PathBuf,
    lock: LockFile,
    counter: AtomicU64,
}

impl Staging {
    pub(crate) fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// Where an object is, as far as this handle knows.
pub(crate) enum Loc {
    /// Pending, in an unnamed file held open.
    Held(Arc<OwnedFd>),
    /// Pending, as staged file number `n` (may have been published meanwhile).
    Staged(u64),
    /// Not pending: in `objects/`, or missing.
    Objects,
}

/// How many unnamed files a handle holds before publishing early: a quarter of the soft
/// `RLIMIT_NOFILE`, between 16 and 4096.
fn default_unnamed_limit() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(4 * 4096);
    (soft / 4).clamp(16, 4096) as usize
}

/// The name of staged object number `n`.
pub(crate) fn staged_name(n: u64) -> HexName {
    HexName::new(Some(b'o'), n)
}

/// The name of temporary file number `n` (refs, plain files).
pub(crate) fn temp_name(n: u64) -> HexName {
    HexName::new(Some(b't'), n)
}

impl Drop for FsStore {
    fn drop(&mut self) {
        // An early publication running on its own thread holds the handle's state: wait for
        // it, so what dropping the handle does (discarding what is not published, cleaning
        // the staging directory) is done when this returns, as without one.
        let running = self
            .inner
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = running {
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Discard everything not published. After an aborted transaction the (emptied)
        // directory stays for the next transaction of this boot, as ostree's does; after a
        // completed one it goes.
        let aborted = self.txn_open.load(Ordering::Acquire);
        if let (Some(st), Some(tmp)) = (self.staging.take(), self.tmp_fd.as_ref()) {
            if aborted {
                let _ = util::remove_contents(st.dir.as_fd());
                drop(st.dir);
            } else {
                drop(st.dir);
                let _ = util::remove_all_at(tmp.as_fd(), &st.name);
            }
            st.lock.release(tmp.as_fd());
        }
        if aborted {
            // As ostree's abort_transaction.
            self.cleanup_tmp();
        }
    }
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Other(format!("blocking task failed: {e}"))
}

/// Run `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_err)?
}

/// Writes of up to this many bytes in memory are done in place by [`FsStore`]'s `put`.
const INLINE_PUT_MAX: usize = 64 * 1024;

/// Whether `w` is in memory, at most [`INLINE_PUT_MAX`] bytes, and written as it is: an
/// archived object only into an archive store (elsewhere it is inflated, to any size), decoded
/// content only into the other modes (an archive store deflates it, which is CPU work for the
/// pool's threads).
fn is_small_write(w: &ObjectWrite, archive: bool) -> bool {
    match w {
        ObjectWrite::Meta(b) => b.len() <= INLINE_PUT_MAX,
        ObjectWrite::Archived(b) => archive && b.len() <= INLINE_PUT_MAX,
        ObjectWrite::Content { source, .. } => {
            !archive && matches!(source, ContentSource::Bytes(b) if b.len() <= INLINE_PUT_MAX)
        }
    }
}

fn is_readonly_err(e: Errno) -> bool {
    matches!(e, Errno::ACCESS | Errno::ROFS | Errno::PERM)
}

/// Write `data` to `name` under `dirfd` atomically (temporary file + rename), mode 0644.
fn write_file_atomic_at(
    dirfd: BorrowedFd<'_>,
    dir_display: &Path,
    name: &str,
    data: &[u8],
) -> Result<()> {
    let tmp = format!(".{name}.tmp-{:016x}", util::random_u64());
    let ctx = || format!("writing {}", dir_display.join(name).display());
    let fd = rustix::fs::openat(
        dirfd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io_err(ctx(), e))?;
    let mut f = std::fs::File::from(fd);
    let r = f
        .write_all(data)
        .and_then(|_| rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644)).map_err(Into::into))
        .and_then(|_| f.sync_data())
        .and_then(|_| rustix::fs::renameat(dirfd, tmp.as_str(), dirfd, name).map_err(Into::into));
    if let Err(e) = r {
        let _ = rustix::fs::unlinkat(dirfd, tmp.as_str(), AtFlags::empty());
        return Err(io_err(ctx(), e));
    }
    Ok(())
}

/// Create the layout `ostree init` creates (an existing repository is left as it is).
fn create_layout(path: &Path, mode: RepoMode) -> Result<()> {
    let p = |rel: &str| path.join(rel);
    match rustix::fs::statat(CWD, p("objects").as_path(), AtFlags::empty()) {
        Ok(_) => return Ok(()),
        Err(Errno::NOENT) => {}
        Err(e) => {
            return Err(io_err(
                format!("Creating repo: stat({})", p("objects").display()),
                e,
            ));
        }
    }
    match rustix::fs::mkdirat(CWD, path, Mode::from_raw_mode(0o775)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => {
            return Err(io_err(
                format!("Creating repo: mkdir({})", path.display()),
                e,
            ));
        }
    }
    let root = util::open_dir(CWD, path)
        .map_err(|e| io_err(format!("Creating repo: opendir({})", path.display()), e))?;
    match rustix::fs::statat(&root, "config", AtFlags::empty()) {
        Ok(_) => {}
        Err(Errno::NOENT) => {
            let text = RepoConfig::initial(mode).to_text();
            write_file_atomic_at(root.as_fd(), path, "config", text.as_bytes())?;
        }
        Err(e) => {
            return Err(io_err(
                format!("Creating repo: stat({})", p("config").display()),
                e,
            ));
        }
    }
    for d in [
        "tmp",
        "extensions",
        "state",
        "refs",
        "refs/heads",
        "refs/mirrors",
        "refs/remotes",
        "objects",
    ] {
        match rustix::fs::mkdirat(&root, d, Mode::from_raw_mode(0o775)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(io_err(
                    format!("Creating repo: mkdir({})", p(d).display()),
                    e,
                ));
            }
        }
    }
    if mode == RepoMode::BareUser {
        // Like ostree: fail now rather than at the first object write.
        let name = format!("tmp/xattr-test-{:016x}", util::random_u64());
        let fd = rustix::fs::openat(
            &root,
            name.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err(format!("Creating repo: creating {}", p(&name).display()), e))?;
        let r = crate::xattr::set(
            crate::xattr::Target::Fd(fd.as_fd()),
            b"user.ostreemeta",
            &[0; 12],
        );
        let _ = rustix::fs::unlinkat(&root, name.as_str(), AtFlags::empty());
        r.map_err(|e| {
            io_err(
                format!(
                    "Creating repo: fsetxattr(user.ostreemeta) on {} (bare-user needs user xattrs)",
                    path.display()
                ),
                e,
            )
        })?;
    }
    rustix::fs::openat(
        &root,
        ".lock",
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| {
        io_err(
            format!("Creating repo: creating {}", p(".lock").display()),
            e,
        )
    })?;
    Ok(())
}

impl Inner {
    /// Clean `tmp/` as ostree's `cleanup_tmpdir` does at the end of every transaction (see
    /// [`cleanup_tmp`]).
    pub(crate) fn cleanup_tmp(&self) {
        if let Some(tmp) = &self.tmp_fd {
            cleanup_tmp(tmp.as_fd(), self.tmp_expiry_secs);
        }
    }
}

/// Clean `tmp/` as ostree's `cleanup_tmpdir` does: remove the staging directories of other
/// boots (their processes are gone) and of the pre-boot-id naming, lock files left without
/// their directory, and anything else (temporary files of killed processes: spools,
/// checkout caches) older than `expiry_secs` (`core.tmp-expiry-secs`, a day by default; files
/// dated in the future are kept). This boot's unlocked staging directories stay: the next
/// transaction reuses one.
fn cleanup_tmp(tmp: BorrowedFd<'_>, expiry_secs: u64) {
    let Ok(entries) = util::read_dir_at(tmp, ".") else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (name, _) in &entries {
        if name == "cache" || name.starts_with(hostenv::STAGING_PREFIX) {
            continue;
        }
        let Ok(st) = rustix::fs::statat(tmp, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
        if mtime <= now && now - mtime > expiry_secs {
            let _ = util::remove_all_at(tmp, name);
        }
    }
    let own = hostenv::staging_prefix();
    let dirs: HashSet<&str> = entries
        .iter()
        .filter(|(n, ft)| *ft == FileType::Directory && n.starts_with(hostenv::STAGING_PREFIX))
        .map(|(n, _)| n.as_str())
        .collect();
    for (name, ft) in &entries {
        if !name.starts_with(hostenv::STAGING_PREFIX) {
            continue;
        }
        if *ft == FileType::Directory {
            if name.starts_with(&own) {
                continue;
            }
            let lock_name = format!("{name}-lock");
            if let Ok(Some(lock)) = LockFile::try_lock(tmp, &lock_name, LockKind::Exclusive) {
                let _ = util::remove_all_at(tmp, name);
                lock.release(tmp);
            }
        } else if let Some(dir) = name.strip_suffix("-lock")
            && !dirs.contains(dir)
            && let Ok(Some(lock)) = LockFile::try_lock(tmp, name, LockKind::Exclusive)
        {
            // An orphaned lock file; make sure no directory appeared meanwhile.
            if rustix::fs::statat(tmp, dir, AtFlags::SYMLINK_NOFOLLOW).is_err() {
                lock.release(tmp);
            }
        }
    }
}

/// ostree's tmp/ cleanup deletes unknown files older than a day, a lock file of a handle
/// living longer included (after which the live directory would look dead), but skips files
/// "from the future": date a staging lock file in 2100.
fn date_lock_in_future(lock: &LockFile) {
    let _ = rustix::fs::futimens(
        lock.fd(),
        &rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 4_102_444_800,
                tv_nsec: 0,
            },
        },
    );
}

/// Timestamps meaning "now" for `futimens`.
fn now_timestamps() -> rustix::fs::Timestamps {
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    rustix::fs::Timestamps {
        last_access: now,
        last_modification: now,
    }
}

/// `XXXXXX` of a new staging directory's name (`mkdtemp`'s alphabet).
fn random_suffix() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = util::random_u64();
    (0..6)
        .map(|_| {
            let c = CHARS[(x % CHARS.len() as u64) as usize] as char;
            x /= CHARS.len() as u64;
            c
        })
        .collect()
}

impl FsStore {
    /// Open (or with [`OpenOptions::create`], create) the repository at `path`.
    pub async fn open(path: impl Into<PathBuf>, opts: OpenOptions) -> Result<FsStore> {
        let path = path.into();
        blocking(move || FsStore::open_blocking(&path, opts)).await
    }

    /// [`FsStore::open`] without a runtime (blocks the calling thread).
    pub fn open_blocking(path: &Path, opts: OpenOptions) -> Result<FsStore> {
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("getting current directory", e))?
                .join(path)
        };
        if let Some(mode) = opts.create {
            create_layout(&path, mode)?;
        }
        let root_fd = util::open_dir(CWD, path.as_path())
            .map_err(|e| io_err(format!("opening repo: opendir({})", path.display()), e))?;
        let cfg_text = match rustix::fs::openat(
            &root_fd,
            "config",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut v).map_err(|e| {
                    io_err(
                        format!("opening repo: reading {}/config", path.display()),
                        e,
                    )
                })?;
                v
            }
            Err(e) => {
                return Err(io_err(
                    format!("opening repo: openat({}/config)", path.display()),
                    e,
                ));
            }
        };
        let cfg = RepoConfig::parse(&cfg_text)
            .map_err(|e| Error::invalid(format!("opening repo: {}/config: {e}", path.display())))?;
        let mode = cfg.mode()?;
        let fsync = match opts.fsync {
            Some(v) => v,
            None => cfg.core_bool("fsync", true)?,
        };
        let per_object_fsync = cfg.core_bool("per-object-fsync", false)?;
        // As ostree: clamped to 1..=9; unparsable values count as 0, hence 1.
        let zlib_level = match cfg.keyfile.get("archive", "zlib-level") {
            Some(v) => v.trim().parse::<u64>().unwrap_or(0).clamp(1, 9) as u32,
            None => ostree_core::content::ARCHIVE_LEVEL,
        };
        let objects_fd = util::open_dir(&root_fd, "objects").map_err(|e| {
            io_err(
                format!("opening repo: opendir({}/objects)", path.display()),
                e,
            )
        })?;
        let tmp_fd = match util::mkdir_p(root_fd.as_fd(), "tmp/cache", 0o775) {
            Ok(()) => Some(util::open_dir(&root_fd, "tmp").map_err(|e| {
                io_err(format!("opening repo: opendir({}/tmp)", path.display()), e)
            })?),
            Err(e) if is_readonly_err(e) => util::open_dir(&root_fd, "tmp").ok(),
            Err(e) => {
                return Err(io_err(
                    format!("opening repo: mkdir({}/tmp/cache)", path.display()),
                    e,
                ));
            }
        };
        let tmp_expiry_secs = match cfg.keyfile.get("core", "tmp-expiry-secs") {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "opening repo: {}/config: core.tmp-expiry-secs: not a number: {v}",
                    path.display()
                ))
            })?,
            None => 86_400,
        };
        Ok(FsStore {
            inner: Arc::new_cyclic(|me| Inner {
                root: path,
                root_fd,
                objects_fd,
                tmp_fd,
                mode,
                fsync,
                per_object_fsync,
                zlib_level,
                fanout: FanoutSet::default(),
                staging: OnceLock::new(),
                staging_init: Mutex::new(()),
                pending: Mutex::new(PendingSet::default()),
                seq: AtomicU64::new(0),
                link_via: OnceLock::new(),
                no_tmpfile: AtomicBool::new(false),
                unnamed_limit: AtomicUsize::new(default_unnamed_limit()),
                sync_lock: Mutex::new(()),
                dirty: AtomicBool::new(false),
                txn_open: AtomicBool::new(false),
                tmp_expiry_secs,
                no_reflink: AtomicBool::new(false),
                no_copy_range: AtomicBool::new(false),
                me: me.clone(),
                flusher: Mutex::new(None),
                flush_error: Mutex::new(None),
            }),
        })
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Whether writes are made durable (`core.fsync`, or the open option).
    pub fn fsync_enabled(&self) -> bool {
        self.inner.fsync
    }

    /// How many unnamed object files this handle may hold open before it publishes pending
    /// content and trees early (default: a quarter of the soft `RLIMIT_NOFILE`, between 16
    /// and 4096). Commits are never published early.
    pub fn set_held_file_limit(&self, n: usize) {
        self.inner.unnamed_limit.store(n, Ordering::Relaxed);
    }
}

impl Inner {
    /// Objects wait in the staging directory until `sync` (fsync on, per-object fsync off).
    pub(crate) fn staged_mode(&self) -> bool {
        self.fsync && !self.per_object_fsync
    }

    pub(crate) fn tmp_fd(&self) -> Result<BorrowedFd<'_>> {
        self.tmp_fd.as_ref().map(|f| f.as_fd()).ok_or_else(|| {
            Error::io(
                format!(
                    "writing to {}: no usable tmp/ directory",
                    self.root.display()
                ),
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            )
        })
    }

    /// A put is starting: a transaction is open from here to the next completed `sync`, with
    /// a staging directory (created now if needed, as ostree creates one when a transaction
    /// begins; a failure here is left to the put that needs the directory).
    pub(crate) fn begin_put(&self) {
        self.dirty.store(true, Ordering::Release);
        if !self.txn_open.swap(true, Ordering::AcqRel) && self.tmp_fd.is_some() {
            let _ = self.staging();
        }
    }

    /// This handle's staging directory, created on first use.
    pub(crate) fn staging(&self) -> Result<&Staging> {
        if let Some(s) = self.staging.get() {
            return Ok(s);
        }
        let _g = self.staging_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.staging.get() {
            return Ok(s);
        }
        let st = self.create_staging()?;
        let _ = self.staging.set(st);
        Ok(self.staging.get().expect("staging was just set"))
    }

    /// A staging directory for this handle: an unlocked one of this boot, emptied (as ostree
    /// reuses them), or a new `staging-<boot id>-XXXXXX`.
    fn create_staging(&self) -> Result<Staging> {
        let tmp = self.tmp_fd()?;
        let ctx = |what: &str, name: &str| {
            format!(
                "creating staging directory {}/tmp/{name}: {what}",
                self.root.display()
            )
        };
        let prefix = hostenv::staging_prefix();
        if let Some(st) = self.adopt_staging(tmp, &prefix) {
            return Ok(st);
        }
        for _ in 0..64 {
            let name = format!("{prefix}{}", random_suffix());
            let lock_name = format!("{name}-lock");
            // Lock first, then create the directory: a cleaner that sees the directory can
            // never take its lock while we live.
            let fd = match rustix::fs::openat(
                tmp,
                lock_name.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io_err(ctx("lock file", &lock_name), e)),
            };
            let Some(lock) = LockFile::lock_new(fd, &lock_name)
                .map_err(|e| io_err(ctx("locking", &lock_name), e))?
            else {
                continue;
            };
            date_lock_in_future(&lock);
            match rustix::fs::mkdirat(tmp, name.as_str(), Mode::from_raw_mode(0o775)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    lock.release(tmp);
                    continue;
                }
                Err(e) => {
                    lock.release(tmp);
                    return Err(io_err(ctx("mkdir", &name), e));
                }
            }
            let dir = match util::open_dir(tmp, &name) {
                Ok(d) => d,
                Err(e) => {
                    let _ = util::remove_all_at(tmp, &name);
                    lock.release(tmp);
                    return Err(io_err(ctx("open", &name), e));
                }
            };
            return Ok(self.staging_at(name, dir, lock));
        }
        Err(Error::Other(format!(
            "could not allocate a staging directory in {}/tmp",
            self.root.display()
        )))
    }

    /// Take over an unlocked staging directory of this boot (left by an aborted transaction),
    /// emptied: what our staged files were is known only to the handle that wrote them, and
    /// ostree's staged objects are not trusted unverified.
    fn adopt_staging(&self, tmp: BorrowedFd<'_>, prefix: &str) -> Option<Staging> {
        let mut names: Vec<String> = util::read_dir_at(tmp, ".")
            .ok()?
            .into_iter()
            .filter(|(n, ft)| *ft == FileType::Directory && n.starts_with(prefix))
            .map(|(n, _)| n)
            .collect();
        names.sort();
        for name in names {
            let Ok(Some(lock)) =
                LockFile::try_lock(tmp, &format!("{name}-lock"), LockKind::Exclusive)
            else {
                continue;
            };
            let dir = match util::open_dir(tmp, &name) {
                Ok(d) if util::remove_contents(d.as_fd()).is_ok() => d,
                _ => {
                    lock.release(tmp);
                    continue;
                }
            };
            date_lock_in_future(&lock);
            // Touched, as ostree touches a directory it reuses (its cleanup goes by age).
            let _ = rustix::fs::futimens(&dir, &now_timestamps());
            return Some(self.staging_at(name, dir, lock));
        }
        None
    }

    fn staging_at(&self, name: String, dir: OwnedFd, lock: LockFile) -> Staging {
        Staging {
            path: self.root.join("tmp").join(&name),
            name,
            dir,
            lock,
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn staging_if_exists(&self) -> Option<&Staging> {
        self.staging.get()
    }

    /// Move a finished file into `objects/` under `key`'s name. An existing object is kept
    /// (the new file is dropped) unless `replace` (detached metadata, which is mutable).
    pub(crate) fn publish(
        &self,
        from_dir: BorrowedFd<'_>,
        from: &str,
        key: &ObjectKey,
        replace: bool,
    ) -> Result<()> {
        let name = ObjName::new(key, self.mode);
        let idx = key.checksum.0[0];
        let ctx = || {
            format!(
                "storing object {}/objects/{}",
                self.root.display(),
                name.as_str()
            )
        };
        for attempt in 0..2 {
            util::ensure_fanout(self.objects_fd.as_fd(), &self.fanout, idx, name.dir())
                .map_err(|e| io_err(ctx(), e))?;
            let r = if replace {
                rustix::fs::renameat(from_dir, from, &self.objects_fd, name.as_str())
            } else {
                match rustix::fs::renameat_with(
                    from_dir,
                    from,
                    &self.objects_fd,
                    name.as_str(),
                    rustix::fs::RenameFlags::NOREPLACE,
                ) {
                    // No RENAME_NOREPLACE here: link (which never replaces), then unlink.
                    Err(Errno::INVAL) => rustix::fs::linkat(
                        from_dir,
                        from,
                        &self.objects_fd,
                        name.as_str(),
                        AtFlags::empty(),
                    )
                    .map(|()| {
                        let _ = rustix::fs::unlinkat(from_dir, from, AtFlags::empty());
                    }),
                    r => r,
                }
            };
            match r {
                Ok(()) => return Ok(()),
                Err(Errno::EXIST) => {
                    let _ = rustix::fs::unlinkat(from_dir, from, AtFlags::empty());
                    return Ok(());
                }
                Err(Errno::NOENT) if attempt == 0 => {
                    // The fan-out directory vanished under us; create it again.
                    self.fanout.remove(idx);
                }
                Err(e) => return Err(io_err(ctx(), e)),
            }
        }
        Err(io_err(ctx(), Errno::NOENT))
    }

    /// Objects put but not yet published.
    pub(crate) fn pending(&self) -> MutexGuard<'_, PendingSet> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where an object is: held by this handle, staged by this handle, or (maybe) in
    /// `objects/`.
    pub(crate) fn locate(&self, key: &ObjectKey) -> Loc {
        match self.pending().get(key) {
            Some(p) => match &p.file {
                PendingFile::Unnamed(fd) => Loc::Held(fd.clone()),
                PendingFile::Named(n) => Loc::Staged(*n),
            },
            None => Loc::Objects,
        }
    }

    /// Run `f` on a named object: the staged file if this handle staged it under a name,
    /// else `objects/`. `Ok(None)` when the object is in neither; held unnamed objects are
    /// not seen (callers check [`Inner::locate`] first).
    pub(crate) fn with_named<T>(
        &self,
        key: &ObjectKey,
        staged: Option<u64>,
        mut f: impl FnMut(BorrowedFd<'_>, &str, &dyn Fn() -> PathBuf) -> rustix::io::Result<T>,
    ) -> rustix::io::Result<Option<T>> {
        if let (Some(n), Some(st)) = (staged, self.staging.get()) {
            let name = staged_name(n);
            match f(st.dir.as_fd(), name.as_str(), &|| {
                st.path.join(name.as_str())
            }) {
                Ok(v) => return Ok(Some(v)),
                // Published meanwhile.
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
        let name = ObjName::new(key, self.mode);
        match f(self.objects_fd.as_fd(), name.as_str(), &|| {
            self.root.join("objects").join(name.as_str())
        }) {
            Ok(v) => Ok(Some(v)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn has_sync(&self, key: &ObjectKey) -> Result<bool> {
        if self.pending().contains(key) {
            return Ok(true);
        }
        self.with_named(key, None, |dir, name, _| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|_| ())
        })
        .map(|o| o.is_some())
        .map_err(|e| {
            io_err(
                format!("checking for object {key} in {}", self.root.display()),
                e,
            )
        })
    }

    pub(crate) fn delete_blocking(&self, key: &ObjectKey) -> Result<()> {
        {
            let _g = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
            let old = self.pending().remove(key);
            if let (Some(PendingFile::Named(n)), Some(st)) =
                (old.map(|p| p.file), self.staging.get())
            {
                let _ = rustix::fs::unlinkat(&st.dir, staged_name(n).as_str(), AtFlags::empty());
            }
        }
        let name = ObjName::new(key, self.mode);
        match rustix::fs::unlinkat(&self.objects_fd, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(
                format!("deleting {}/objects/{}", self.root.display(), name.as_str()),
                e,
            )),
        }
    }

    /// Keys stored in one fan-out directory.
    fn list_dir(&self, dir: &str, ty: Option<ObjectType>) -> Result<Vec<ObjectKey>> {
        let entries = match util::read_dir_at(self.objects_fd.as_fd(), dir) {
            Ok(e) => e,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(Vec::new()),
            Err(e) => {
                return Err(io_err(
                    format!("listing {}/objects/{dir}", self.root.display()),
                    e,
                ));
            }
        };
        let content_ext = self.mode.content_extension();
        let mut out = Vec::with_capacity(entries.len());
        for (name, _) in entries {
            let Some(k) = ObjectKey::from_loose_name(dir, &name) else {
                continue;
            };
            if k.ty == ObjectType::File && !name.ends_with(content_ext) {
                continue;
            }
            if ty.is_none_or(|t| t == k.ty) {
                out.push(k);
            }
        }
        Ok(out)
    }

    fn list_fanout_dirs(&self) -> Result<VecDeque<String>> {
        let entries = util::read_dir_at(self.objects_fd.as_fd(), ".")
            .map_err(|e| io_err(format!("listing {}/objects", self.root.display()), e))?;
        let mut dirs: Vec<String> = entries
            .into_iter()
            .filter(|(n, ft)| {
                *ft == FileType::Directory
                    && n.len() == 2
                    && n.bytes()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            })
            .map(|(n, _)| n)
            .collect();
        dirs.sort();
        Ok(dirs.into())
    }
}

struct ListState {
    inner: Arc<Inner>,
    ty: Option<ObjectType>,
    dirs: Option<VecDeque<String>>,
    staged: HashSet<ObjectKey>,
    buf: VecDeque<ObjectKey>,
    staged_done: bool,
    failed: bool,
}

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore")
            .field("path", &self.inner.root)
            .field("mode", &self.inner.mode)
            .field("fsync", &self.inner.fsync)
            .finish()
    }
}

impl fmt::Display for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner.root.display())
    }
}

/// The held repository lock (`.lock`): released when the descriptor closes.
#[derive(Debug)]
struct RepoLock(#[allow(dead_code)] OwnedFd);

#[async_trait]
impl ObjectStore for FsStore {
    fn mode(&self) -> RepoMode {
        self.inner.mode
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            local_objects: true,
            hardlink_checkout: matches!(
                self.inner.mode,
                RepoMode::Bare | RepoMode::BareUser | RepoMode::BareUserOnly
            ),
            local_root: true,
        }
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.inner.root)
    }

    fn local_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        if let Some(p) = self.inner.pending_path(key) {
            return Some(p);
        }
        self.inner
            .with_named(key, None, |dir, name, path| {
                rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|_| path())
            })
            .ok()
            .flatten()
    }

    fn local_at(&self, key: &ObjectKey) -> Option<(BorrowedFd<'_>, String)> {
        // A pending object is in the staging directory (or an unnamed file): not here.
        if self.inner.pending().get(key).is_some() {
            return None;
        }
        let name = ObjName::new(key, self.inner.mode);
        Some((self.inner.objects_fd.as_fd(), name.as_str().to_owned()))
    }

    async fn has(&self, key: &ObjectKey) -> Result<bool> {
        self.inner.has_sync(key)
    }

    async fn has_many(&self, keys: &[ObjectKey]) -> Result<Vec<bool>> {
        if keys.len() <= 64 {
            return keys.iter().map(|k| self.inner.has_sync(k)).collect();
        }
        let inner = self.inner.clone();
        let keys = keys.to_vec();
        blocking(move || keys.iter().map(|k| inner.has_sync(k)).collect()).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectRead> {
        // Done in place, not on the blocking pool: a metadata object is one open and one read
        // of a few KiB, a content object one open and fstat (and the metadata xattr in
        // bare-user; the content is read later through the returned reader). A trip through
        // the pool costs more than that and dominated tree walks (a checkout loads thousands
        // of dirtrees; copying /etc opens a thousand objects), as `has` already is in place.
        self.inner.get_blocking(key)
    }

    async fn get_raw(&self, key: &ObjectKey) -> Result<Bytes> {
        if key.ty == ObjectType::File && !self.inner.mode.is_archive() {
            return Err(Error::NotImplemented {
                operation: "get_raw of content objects".into(),
                implementer: format!("{self} ({} mode)", self.inner.mode),
            });
        }
        let inner = self.inner.clone();
        let key = *key;
        blocking(move || inner.read_raw(&key)).await
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<u64> {
        let staged = match self.inner.locate(key) {
            Loc::Held(fd) => {
                return rustix::fs::fstat(&*fd)
                    .map(|st| st.st_size as u64)
                    .map_err(|e| io_err(format!("Querying object {key}"), e));
            }
            Loc::Staged(n) => Some(n),
            Loc::Objects => None,
        };
        let found = self
            .inner
            .with_named(key, staged, |dir, name, _| {
                rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| st.st_size as u64)
            })
            .map_err(|e| {
                io_err(
                    format!("Querying object {key} in {}", self.inner.root.display()),
                    e,
                )
            })?;
        found.ok_or_else(|| {
            Error::not_found(format!("Querying object {key}: No such file or directory"))
        })
    }

    async fn put(&self, key: &ObjectKey, data: ObjectWrite) -> Result<()> {
        // A small object in memory is written in place, as `get` reads in place: an unnamed
        // file, one write of a few KiB and an xattr cost less than a trip through the blocking
        // pool (a pull of 6k objects spent ~15% of its CPU in those hand-offs).
        if is_small_write(&data, self.inner.mode.is_archive()) {
            return self.inner.put_blocking(key, data);
        }
        let inner = self.inner.clone();
        let key = *key;
        blocking(move || inner.put_blocking(&key, data)).await
    }

    async fn put_many(&self, items: Vec<(ObjectKey, ObjectWrite)>) -> Result<()> {
        let inner = self.inner.clone();
        blocking(move || {
            items
                .into_iter()
                .try_for_each(|(key, data)| inner.put_blocking(&key, data))
        })
        .await
    }

    async fn adopt(&self, key: &ObjectKey, meta: &FileMeta, path: &Path) -> Result<bool> {
        let inner = self.inner.clone();
        let (key, meta, path) = (*key, meta.clone(), path.to_path_buf());
        blocking(move || inner.adopt_blocking(&key, &meta, &path)).await
    }

    async fn link_from(&self, key: &ObjectKey, src: &Path) -> Result<bool> {
        let inner = self.inner.clone();
        let (key, src) = (*key, src.to_path_buf());
        blocking(move || inner.link_from_blocking(&key, &src)).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let inner = self.inner.clone();
        let key = *key;
        blocking(move || inner.delete_blocking(&key)).await
    }

    async fn delete_many(&self, keys: &[ObjectKey]) -> Result<()> {
        // One trip to the blocking pool for the lot, not one per object.
        let inner = self.inner.clone();
        let keys = keys.to_vec();
        blocking(move || keys.iter().try_for_each(|k| inner.delete_blocking(k))).await
    }

    fn list(&self, ty: Option<ObjectType>) -> BoxStream<'_, Result<ObjectKey>> {
        let staged: HashSet<ObjectKey> = self
            .inner
            .pending()
            .keys()
            .filter(|k| ty.is_none_or(|t| t == k.ty))
            .copied()
            .collect();
        let state = ListState {
            inner: self.inner.clone(),
            ty,
            dirs: None,
            staged,
            buf: VecDeque::new(),
            staged_done: false,
            failed: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(k) = s.buf.pop_front() {
                    return Some((Ok(k), s));
                }
                if s.failed {
                    return None;
                }
                let Some(dirs) = s.dirs.as_mut() else {
                    let inner = s.inner.clone();
                    match blocking(move || inner.list_fanout_dirs()).await {
                        Ok(d) => s.dirs = Some(d),
                        Err(e) => {
                            s.failed = true;
                            return Some((Err(e), s));
                        }
                    }
                    continue;
                };
                if let Some(dir) = dirs.pop_front() {
                    // In place, as `get`: reading one fan-out directory (tens of entries) costs
                    // less than a trip through the blocking pool.
                    match s.inner.list_dir(&dir, s.ty) {
                        Ok(keys) => {
                            for k in &keys {
                                s.staged.remove(k);
                            }
                            s.buf.extend(keys);
                        }
                        Err(e) => {
                            s.failed = true;
                            return Some((Err(e), s));
                        }
                    }
                    continue;
                }
                if !s.staged_done {
                    s.staged_done = true;
                    s.buf.extend(s.staged.drain());
                    continue;
                }
                return None;
            }
        })
        .boxed()
    }

    async fn sync(&self) -> Result<()> {
        let inner = self.inner.clone();
        blocking(move || inner.sync_blocking()).await
    }

    async fn read_ref(&self, name: &str) -> Result<Option<Checksum>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || inner.read_ref_blocking(&name)).await
    }

    async fn list_refs(&self, prefix: &str) -> Result<Vec<(String, Checksum)>> {
        let inner = self.inner.clone();
        let prefix = prefix.to_string();
        blocking(move || inner.list_refs_blocking(&prefix)).await
    }

    async fn update_ref(&self, name: &str, expect: RefExpect, new: Option<Checksum>) -> Result<()> {
        let inner = self.inner.clone();
        let name = name.to_string();
        blocking(move || inner.update_ref_blocking(&name, expect, new)).await
    }

    async fn list_ref_aliases(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let inner = self.inner.clone();
        let prefix = prefix.to_string();
        blocking(move || inner.list_ref_aliases_blocking(&prefix)).await
    }

    async fn set_ref_alias(&self, name: &str, target: &str) -> Result<()> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let target = target.to_string();
        blocking(move || inner.set_ref_alias_blocking(&name, &target)).await
    }

    async fn read_file(&self, path: &str) -> Result<Option<Bytes>> {
        let inner = self.inner.clone();
        let path = path.to_string();
        blocking(move || inner.read_file_blocking(&path)).await
    }

    async fn write_file(&self, path: &str, data: Bytes) -> Result<()> {
        let inner = self.inner.clone();
        let path = path.to_string();
        blocking(move || inner.write_file_blocking(&path, &data)).await
    }

    async fn delete_file(&self, path: &str) -> Result<()> {
        let inner = self.inner.clone();
        let path = path.to_string();
        blocking(move || inner.delete_file_blocking(&path)).await
    }

    async fn list_files(&self, prefix: &str) -> Result<Vec<String>> {
        let inner = self.inner.clone();
        let prefix = prefix.to_string();
        blocking(move || inner.list_files_blocking(&prefix)).await
    }

    async fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let inner = self.inner.clone();
        blocking(move || {
            let ctx = || format!("Opening lock file {}/.lock failed", inner.root.display());
            let fd = match rustix::fs::openat(
                &inner.root_fd,
                ".lock",
                OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(fd) => fd,
                // A read-only repository can still be locked shared.
                Err(e) if !exclusive && is_readonly_err(e) => rustix::fs::openat(
                    &inner.root_fd,
                    ".lock",
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(ctx(), e))?,
                Err(e) => return Err(io_err(ctx(), e)),
            };
            let kind = if exclusive {
                LockKind::Exclusive
            } else {
                LockKind::Shared
            };
            ofd_lock(fd.as_fd(), kind, true).map_err(|e| {
                Error::Locked(format!(
                    "Locking repo {} {} failed: {e}",
                    inner.root.display(),
                    if exclusive { "exclusive" } else { "shared" }
                ))
            })?;
            Ok(LockGuard(Box::new(RepoLock(fd))))
        })
        .await
    }
}
