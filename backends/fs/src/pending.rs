//! Objects put but not yet published, and publishing them into `objects/` in dependency order.
//!
//! Most objects are written as unnamed files (`O_TMPFILE`) created directly in their fan-out
//! directory `objects/XX/` and given their name there with `linkat`: no temporary name, no
//! cross-directory rename, no shared staging directory every writer inserts into. While such a
//! file is pending, this handle holds its descriptor; a crash or a dropped handle makes the
//! kernel free it. The rest (symlinks of the `bare` modes, commits, detached metadata, and
//! everything when the filesystem has no `O_TMPFILE`) is written under a name in the handle's
//! staging directory and renamed into place, as before.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ostree_core::{Error, ObjectKey, ObjectType, Result};
use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use crate::store::{Inner, staged_name};
use crate::util::{self, ObjName, io_err};

/// Where the bytes of a pending object are.
#[derive(Clone)]
pub(crate) enum PendingFile {
    /// An unnamed (`O_TMPFILE`) file, linked into `objects/` when published.
    Unnamed(Arc<OwnedFd>),
    /// `o<n>` in the staging directory, renamed into `objects/` when published.
    Named(u64),
}

/// An object put by this handle and not yet published.
#[derive(Clone)]
pub(crate) struct Pending {
    /// Put order: objects of one type are published in this order (children before parents
    /// for a writer that puts trees bottom-up, as commit does).
    pub(crate) seq: u64,
    pub(crate) file: PendingFile,
}

/// The pending objects of a handle, with the number of descriptors they hold.
#[derive(Default)]
pub(crate) struct PendingSet {
    map: HashMap<ObjectKey, Pending>,
    unnamed: usize,
}

impl PendingSet {
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Pending> {
        self.map.get(key)
    }

    pub(crate) fn contains(&self, key: &ObjectKey) -> bool {
        self.map.contains_key(key)
    }

    /// Insert or replace; returns the replaced entry.
    pub(crate) fn insert(&mut self, key: ObjectKey, p: Pending) -> Option<Pending> {
        if matches!(p.file, PendingFile::Unnamed(_)) {
            self.unnamed += 1;
        }
        let old = self.map.insert(key, p);
        if let Some(Pending {
            file: PendingFile::Unnamed(_),
            ..
        }) = &old
        {
            self.unnamed -= 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<Pending> {
        let old = self.map.remove(key);
        if let Some(Pending {
            file: PendingFile::Unnamed(_),
            ..
        }) = &old
        {
            self.unnamed -= 1;
        }
        old
    }

    /// Remove `key` if it is still the entry put with `seq`.
    fn remove_if(&mut self, key: &ObjectKey, seq: u64) {
        if self.map.get(key).is_some_and(|p| p.seq == seq) {
            self.remove(key);
        }
    }

    /// Number of unnamed files held open.
    pub(crate) fn unnamed(&self) -> usize {
        self.unnamed
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.map.keys()
    }

    /// The entries of objects of rank `max_rank` or lower.
    fn snapshot(&self, max_rank: u8) -> Vec<(ObjectKey, Pending)> {
        self.map
            .iter()
            .filter(|(k, _)| rank(k.ty) <= max_rank)
            .map(|(k, p)| (*k, p.clone()))
            .collect()
    }
}

/// Publishing order: content, dirmeta, dirtree, then commits and their detached metadata. A
/// kill between two publications then never leaves a visible commit whose tree is not (yet)
/// visible.
pub(crate) fn rank(t: ObjectType) -> u8 {
    match t {
        ObjectType::File => 0,
        ObjectType::DirMeta => 1,
        ObjectType::DirTree => 2,
        ObjectType::Commit => 3,
        ObjectType::CommitMeta | ObjectType::TombstoneCommit => 4,
    }
}

/// How an unnamed file gets a name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LinkVia {
    /// `linkat(fd, "", …, AT_EMPTY_PATH)` (needs `CAP_DAC_READ_SEARCH` on most kernels).
    EmptyPath,
    /// `linkat(AT_FDCWD, "/proc/self/fd/N", …, AT_SYMLINK_FOLLOW)`.
    Proc,
    /// Neither works (or no `O_TMPFILE`): named files only.
    Unsupported,
}

/// Give the unnamed file `fd` the name `name` under `dir` (never replaces).
pub(crate) fn link_fd(
    via: LinkVia,
    fd: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
) -> rustix::io::Result<()> {
    match via {
        LinkVia::EmptyPath => rustix::fs::linkat(fd, "", dir, name, AtFlags::EMPTY_PATH),
        LinkVia::Proc => {
            let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rustix::fs::linkat(CWD, path.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW)
        }
        LinkVia::Unsupported => Err(Errno::OPNOTSUPP),
    }
}

/// Reads a held unnamed file from the start with positioned reads (the descriptor's own
/// offset is left alone, so concurrent readers do not disturb each other).
pub(crate) struct HeldReader {
    fd: Arc<OwnedFd>,
    pos: u64,
}

impl HeldReader {
    pub(crate) fn new(fd: Arc<OwnedFd>) -> Self {
        HeldReader { fd, pos: 0 }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Read for HeldReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = util::retry(|| rustix::io::pread(self.fd.as_fd(), &mut *buf, self.pos))?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Inner {
    /// How this handle names unnamed files (probed once, in `tmp/`).
    pub(crate) fn link_via(&self) -> LinkVia {
        *self.link_via.get_or_init(|| self.probe_link_via())
    }

    fn probe_link_via(&self) -> LinkVia {
        let Some(tmp) = self.tmp_fd.as_ref() else {
            return LinkVia::Unsupported;
        };
        let Ok(fd) = rustix::fs::openat(
            tmp,
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) else {
            return LinkVia::Unsupported;
        };
        let name = format!(".link-probe-{:016x}", util::random_u64());
        for via in [LinkVia::EmptyPath, LinkVia::Proc] {
            if link_fd(via, fd.as_fd(), tmp.as_fd(), &name).is_ok() {
                let _ = rustix::fs::unlinkat(tmp, name.as_str(), AtFlags::empty());
                return via;
            }
        }
        LinkVia::Unsupported
    }

    /// A new unnamed file with permissions `perm` in `key`'s fan-out directory, or `None`
    /// when this filesystem cannot do that (the caller then writes a named file).
    pub(crate) fn create_unnamed(&self, key: &ObjectKey, perm: u32) -> Result<Option<OwnedFd>> {
        if self.no_tmpfile.load(Ordering::Relaxed) || self.link_via() == LinkVia::Unsupported {
            return Ok(None);
        }
        let name = ObjName::new(key, self.mode);
        let idx = key.checksum.0[0];
        let ctx = || {
            format!(
                "creating object {key} in {}/objects/{}",
                self.root.display(),
                name.dir()
            )
        };
        for attempt in 0..2 {
            util::ensure_fanout(self.objects_fd.as_fd(), &self.fanout, idx, name.dir())
                .map_err(|e| io_err(ctx(), e))?;
            match rustix::fs::openat(
                &self.objects_fd,
                name.dir(),
                OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
                Mode::from_raw_mode(perm),
            ) {
                Ok(fd) => return Ok(Some(fd)),
                // The fan-out directory vanished under us; create it again.
                Err(Errno::NOENT) if attempt == 0 => self.fanout.remove(idx),
                // No O_TMPFILE here (EISDIR: a kernel that does not know the flag).
                Err(e) if util::is_unsupported(e) || e == Errno::ISDIR => {
                    self.no_tmpfile.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                Err(e) => return Err(io_err(ctx(), e)),
            }
        }
        Err(io_err(ctx(), Errno::NOENT))
    }

    /// Give a finished unnamed file its name in `objects/` (an existing object is kept).
    pub(crate) fn link_into_place(&self, fd: BorrowedFd<'_>, key: &ObjectKey) -> Result<()> {
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
            match link_fd(self.link_via(), fd, self.objects_fd.as_fd(), name.as_str()) {
                Ok(()) | Err(Errno::EXIST) => return Ok(()),
                Err(Errno::NOENT) if attempt == 0 => self.fanout.remove(idx),
                Err(e) => return Err(io_err(ctx(), e)),
            }
        }
        Err(io_err(ctx(), Errno::NOENT))
    }

    /// Hold a finished object until `sync` (publishing early when too many files are held).
    pub(crate) fn hold(&self, key: &ObjectKey, file: PendingFile, replace: bool) -> Result<()> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (dropped, over) = {
            let _g = replace.then(|| self.sync_lock.lock().unwrap_or_else(|p| p.into_inner()));
            let mut set = self.pending();
            let dropped = if replace || !set.contains(key) {
                set.insert(*key, Pending { seq, file }).map(|p| p.file)
            } else {
                // A concurrent put of the same object won: drop ours.
                Some(file)
            };
            let limit = self.unnamed_limit.load(Ordering::Relaxed);
            let over = match set.unnamed() {
                n if n > limit => Some(true),
                n if n > limit / 2 => Some(false),
                _ => None,
            };
            (dropped, over)
        };
        if let (Some(PendingFile::Named(n)), Some(st)) = (dropped, self.staging_if_exists()) {
            let _ = rustix::fs::unlinkat(&st.dir, staged_name(n).as_str(), AtFlags::empty());
        }
        match over {
            Some(true) => self.flush_early(true),
            Some(false) => {
                self.flush_in_background();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Start an early publication on a thread of its own, unless one is running: the put
    /// that crossed half the limit goes on at once (a put on an async runtime's only worker
    /// would otherwise stop every transfer for the `syncfs` and the links, 50–80 ms for 2000
    /// objects). What it fails with is reported by the next `sync`; the objects it did not
    /// publish stay pending.
    fn flush_in_background(&self) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let mut flusher = self.flusher.lock().unwrap_or_else(|p| p.into_inner());
        if flusher.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("ostree-publish".into())
            .spawn(move || {
                if let Err(e) = me.flush_early(false) {
                    let mut slot = me.flush_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                }
            });
        // No thread to spare: the next put past the limit publishes and waits.
        if let Ok(h) = spawned {
            *flusher = Some(h);
        }
    }

    /// Many unnamed files are held: make pending objects durable and publish them now
    /// (content and trees only, in dependency order; commits always wait for `sync`, and are
    /// never held unnamed). Past half the limit, a put that finds no publication running
    /// starts one on a thread of its own ([`Inner::flush_in_background`]); past the limit,
    /// puts wait for it (`wait`), so the number of held files stays bounded.
    fn flush_early(&self, wait: bool) -> Result<()> {
        let _g = if wait {
            self.sync_lock.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match self.sync_lock.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            }
        };
        // Done by another put meanwhile?
        let limit = self.unnamed_limit.load(Ordering::Relaxed);
        if self.pending().unnamed() <= if wait { limit } else { limit / 2 } {
            return Ok(());
        }
        let batch = self.pending().snapshot(rank(ObjectType::DirTree));
        if batch.is_empty() {
            return Ok(());
        }
        rustix::fs::syncfs(&self.objects_fd)
            .map_err(|e| io_err(format!("syncfs({})", self.root.display()), e))?;
        // The links themselves are made durable by the next sync.
        self.dirty.store(true, Ordering::Release);
        self.publish_batch(batch)
    }

    /// Make pending objects durable, then visible in `objects/`, then make that durable: the
    /// end of a transaction.
    pub(crate) fn sync_blocking(&self) -> Result<()> {
        // Puts from here on belong to the next transaction; a failed sync leaves this one open.
        let was_open = self.txn_open.swap(false, Ordering::AcqRel);
        let r = self.sync_durable();
        match (&r, was_open) {
            (Err(_), true) => self.txn_open.store(true, Ordering::Release),
            // A transaction completed: ostree's commit_transaction cleans tmp/ here.
            (Ok(()), true) => self.cleanup_tmp(),
            _ => {}
        }
        r
    }

    fn sync_durable(&self) -> Result<()> {
        if !self.fsync {
            return Ok(());
        }
        let _g = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        // An early publication on its own thread failed: this transaction is not durable.
        if let Some(e) = self
            .flush_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        // Any put since the last sync, even one that found the object already there: another
        // handle may have published it without having made the link durable yet.
        let had_puts = self.dirty.swap(false, Ordering::AcqRel);
        let syncfs_objects = || {
            rustix::fs::syncfs(&self.objects_fd)
                .map_err(|e| io_err(format!("syncfs({})", self.root.display()), e))
        };
        let batch = self.pending().snapshot(u8::MAX);
        if batch.is_empty() {
            return if had_puts { syncfs_objects() } else { Ok(()) };
        }
        // Everything in the batch was completely written before we took it: one syncfs makes
        // all of it durable before any of it becomes visible.
        syncfs_objects()?;
        // A commit's name must not reach the disk before the names of the objects it needs:
        // a filesystem without a journal (or one that reorders metadata) could otherwise keep
        // the commit and lose its tree in a crash. Content and trees are published and their
        // names made durable first, then commits and detached metadata.
        let (needed, markers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|(k, _)| rank(k.ty) < rank(ObjectType::Commit));
        let r = if needed.is_empty() || markers.is_empty() {
            let mut all = needed;
            all.extend(markers);
            self.publish_batch(all)
        } else {
            self.publish_batch(needed)
                .and_then(|()| syncfs_objects())
                .and_then(|()| self.publish_batch(markers))
        };
        // Make the links and renames (and new fan-out directories) durable too.
        r.and(syncfs_objects())
    }

    /// Publish a batch (already durable) in dependency order; published entries leave the
    /// pending set. Called with `sync_lock` held.
    fn publish_batch(&self, mut batch: Vec<(ObjectKey, Pending)>) -> Result<()> {
        batch.sort_by_key(|(k, p)| (rank(k.ty), p.seq));
        let mut result = Ok(());
        for group in batch.chunk_by(|a, b| rank(a.0.ty) == rank(b.0.ty)) {
            // Leaves (content, dirmeta) in parallel when there are many; trees and commits in
            // put order.
            let threads = if rank(group[0].0.ty) <= 1 && group.len() >= 2048 {
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .clamp(2, 8)
            } else {
                1
            };
            let r = if threads == 1 {
                self.publish_run(group)
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = group
                        .chunks(group.len().div_ceil(threads))
                        .map(|part| s.spawn(move || self.publish_run(part)))
                        .collect();
                    let mut r = Ok(());
                    for h in handles {
                        let hr = h.join().unwrap_or_else(|_| {
                            Err(Error::Other("publishing thread panicked".into()))
                        });
                        if r.is_ok() {
                            r = hr;
                        }
                    }
                    r
                })
            };
            if r.is_err() {
                result = r;
                break;
            }
        }
        result
    }

    /// Publish a run of objects in order, stopping at the first error.
    fn publish_run(&self, run: &[(ObjectKey, Pending)]) -> Result<()> {
        for (key, p) in run {
            match &p.file {
                PendingFile::Unnamed(fd) => self.link_into_place(fd.as_fd(), key)?,
                PendingFile::Named(n) => {
                    let st = self.staging()?;
                    let replace = key.ty == ObjectType::CommitMeta;
                    self.publish(st.dir.as_fd(), staged_name(*n).as_str(), key, replace)?;
                }
            }
            self.pending().remove_if(key, p.seq);
        }
        Ok(())
    }

    /// The path of a pending object, for [`local_path`]: an unnamed file is first given a
    /// name in the staging directory (where sync then finds it). `None` if it is not pending.
    ///
    /// [`local_path`]: ostree_core::store::ObjectStore::local_path
    pub(crate) fn pending_path(&self, key: &ObjectKey) -> Option<PathBuf> {
        if let PendingFile::Named(n) = self.pending().get(key)?.file {
            let st = self.staging_if_exists()?;
            return Some(st.path.join(staged_name(n).as_str()));
        }
        // Not while a sync publishes it.
        let _g = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let st = self.staging().ok()?;
        let mut set = self.pending();
        let cur = set.get(key)?.clone();
        match cur.file {
            PendingFile::Named(n) => Some(st.path.join(staged_name(n).as_str())),
            PendingFile::Unnamed(fd) => {
                let n = st.next_id();
                let name = staged_name(n);
                link_fd(self.link_via(), fd.as_fd(), st.dir.as_fd(), name.as_str()).ok()?;
                set.insert(
                    *key,
                    Pending {
                        seq: cur.seq,
                        file: PendingFile::Named(n),
                    },
                );
                Some(st.path.join(name.as_str()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use bytes::Bytes;
    use ostree_core::objects::{FileMeta, S_IFREG, content_checksum};
    use ostree_core::store::{ContentSource, ObjectStore, ObjectWrite, OpenOptions, RepoMode};
    use ostree_core::{Checksum, ObjectKey, ObjectType};

    use super::*;
    use crate::FsStore;
    use crate::store::Loc;

    /// Concurrent puts past the held-file limit wait for the early publication: the number of
    /// held files stays within the limit plus the number of writers.
    #[test]
    fn held_files_stay_bounded() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let p = tmp.path().join("r");
            let opts = OpenOptions {
                create: Some(RepoMode::BareUser),
                fsync: None,
            };
            let a = std::sync::Arc::new(FsStore::open(&p, opts).await.expect("create"));
            a.set_held_file_limit(8);
            let max = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for t in 0..8u32 {
                let (a, max) = (a.clone(), max.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..100u32 {
                        let meta = FileMeta {
                            mode: S_IFREG | 0o644,
                            ..Default::default()
                        };
                        let data = format!("task {t} object {i}");
                        let c = content_checksum(&meta, data.as_bytes()).expect("hash");
                        let write = ObjectWrite::Content {
                            meta,
                            size: data.len() as u64,
                            source: ContentSource::Bytes(Bytes::from(data)),
                        };
                        a.put(&ObjectKey::new(c, ObjectType::File), write)
                            .await
                            .expect("put");
                        max.fetch_max(a.inner.pending().unnamed(), Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
            let max = max.load(Ordering::Relaxed);
            assert!(max <= 8 + 8, "{max} files held");
            a.sync().await.expect("sync");
            assert_eq!(a.inner.pending().unnamed(), 0);
        });
    }

    /// Without `O_TMPFILE` (or a way to link unnamed files), objects are named in the staging
    /// directory and published the same way.
    #[test]
    fn named_when_unnamed_files_are_unavailable() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let tmp = tempfile::tempdir().expect("tempdir");
            let p = tmp.path().join("r");
            for mode in [RepoMode::Archive, RepoMode::BareUser] {
                let _ = std::fs::remove_dir_all(&p);
                let opts = OpenOptions {
                    create: Some(mode),
                    fsync: None,
                };
                let a = FsStore::open(&p, opts).await.expect("create");
                a.inner.no_tmpfile.store(true, Ordering::Relaxed);
                let meta = FileMeta {
                    mode: S_IFREG | 0o644,
                    ..Default::default()
                };
                let data = b"named\n";
                let c = content_checksum(&meta, &data[..]).expect("hash");
                let key = ObjectKey::new(c, ObjectType::File);
                let write = ObjectWrite::Content {
                    meta,
                    size: data.len() as u64,
                    source: ContentSource::Bytes(Bytes::from_static(data)),
                };
                a.put(&key, write).await.expect("put");
                let dm = Bytes::from_static(b"not a real dirmeta");
                let mkey = ObjectKey::new(Checksum::of(&dm), ObjectType::DirMeta);
                a.put(&mkey, ObjectWrite::Meta(dm.clone()))
                    .await
                    .expect("put");
                assert!(matches!(a.inner.locate(&key), Loc::Staged(_)));
                assert_eq!(a.inner.pending().unnamed(), 0);
                let st = a.inner.staging_if_exists().expect("staging");
                assert_eq!(std::fs::read_dir(&st.path).expect("readdir").count(), 2);
                let mut body = Vec::new();
                a.get(&key)
                    .await
                    .expect("get")
                    .into_content()
                    .expect("content")
                    .body
                    .into_reader()
                    .read_to_end(&mut body)
                    .expect("read");
                assert_eq!(body, data);
                assert_eq!(
                    a.get(&mkey).await.expect("get").into_meta().expect("meta"),
                    dm
                );
                a.sync().await.expect("sync");
                let b = FsStore::open(&p, OpenOptions::default())
                    .await
                    .expect("open");
                assert!(b.has(&key).await.expect("has") && b.has(&mkey).await.expect("has"));
                assert_eq!(std::fs::read_dir(&st.path).expect("readdir").count(), 0);
            }
        });
    }
}
