//! The traversal: starting from commits, fetch every missing object with bounded
//! concurrency, verify it, and store it. Nothing unverified is ever stored (unless the source
//! is a trusted local repository, as in ostree), and already stored objects are never fetched
//! again, which is what makes an interrupted pull resumable.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::source::{ContentPayload, LocalSource, ObjectSource};
use crate::content::{check, inflate_archived, read_archived};
use crate::objects::{Commit, DirTree, FileMeta, content_checksum};
use crate::repo::Repo;
use crate::store::{ContentSource, ObjectWrite, RepoMode};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Counters of a pull: reported at the end, and read while it runs (progress display).
#[derive(Debug, Default)]
pub struct Counters {
    /// Metadata objects requested from the source (fetches started).
    pub requested_meta: AtomicU64,
    /// Content objects requested from the source (fetches started).
    pub requested_content: AtomicU64,
    /// Metadata objects scanned (present or fetched).
    pub scanned_meta: AtomicU64,
    /// Bytes received over the network.
    pub bytes_transferred: AtomicU64,
    /// Static delta parts fetched, applied or found complete.
    pub delta_parts_fetched: AtomicU64,
    /// Static delta parts of the deltas in use.
    pub delta_parts_total: AtomicU64,
    /// Fallback objects of the deltas in use that were fetched.
    pub delta_fallbacks_fetched: AtomicU64,
    /// Fallback objects of the deltas in use.
    pub delta_fallbacks_total: AtomicU64,
    /// Compressed bytes of the parts and fallbacks fetched or already present.
    pub delta_size_fetched: AtomicU64,
    /// Compressed bytes of every part and fallback.
    pub delta_size_total: AtomicU64,
    /// Uncompressed bytes of every part and fallback.
    pub delta_usize_total: AtomicU64,
    /// Superblocks fetched.
    pub delta_superblocks: AtomicU64,
    /// Metadata objects fetched over the network.
    pub fetched_meta: AtomicU64,
    /// Content objects fetched over the network.
    pub fetched_content: AtomicU64,
    /// Metadata objects imported from a local repository.
    pub imported_meta: AtomicU64,
    /// Content objects imported from a local repository.
    pub imported_content: AtomicU64,
    /// Uncompressed bytes of content objects written.
    pub content_bytes_written: AtomicU64,
}

#[derive(Debug, Clone)]
enum Task {
    Commit { csum: Checksum, depth: i64 },
    DirTree { csum: Checksum, path: String },
    DirMeta(Checksum),
    File(Checksum),
}

/// Settings of one traversal.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Verify checksums (always, except trusted local sources).
    pub verify: bool,
    /// Reject regular files with modes outside 0775 (`--bareuseronly-files`).
    pub bareuseronly_files: bool,
    /// Fetch commits only (`--commit-metadata-only`).
    pub commit_only: bool,
    /// Parent commits to follow: -1 all, 0 none.
    pub maxdepth: i64,
    /// Only these subpaths (`--subpath`); empty for everything.
    pub subdirs: Vec<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Fetch detached metadata (`.commitmeta`) before each commit.
    pub fetch_commitmeta: bool,
    /// Signature policy: every commit is verified before it, or anything below it, is stored.
    pub verification: Option<Arc<crate::sign::policy::PullVerification>>,
    /// Store fetched content without verifying it (`--http-trusted` mirrors into archive
    /// repositories: ostree's `trusted_http_direct`). Metadata is always verified.
    pub trust_content: bool,
    /// Ref and collection bindings to check on every commit (`None`:
    /// `--disable-verify-bindings`).
    pub bindings: Option<Bindings>,
    /// Downgrade checks run on each requested commit as soon as it is fetched and verified,
    /// before any of its content (`--timestamp-check`, `--timestamp-check-from-rev`).
    pub timestamp_checks: Option<TimestampChecks>,
}

/// The downgrade checks of a pull (ostree's `scan_commit_object`).
#[derive(Debug, Clone, Default)]
pub struct TimestampChecks {
    /// `--timestamp-check`: per requested commit, the refs it was asked for with the
    /// commit each held before the pull.
    pub orig: std::collections::HashMap<Checksum, Vec<(String, Checksum)>>,
    /// `--timestamp-check-from-rev`, resolved: no requested commit may be older.
    pub from_rev: Option<Checksum>,
}

/// What `_ostree_repo_verify_bindings` checks each pulled commit against.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    /// The collection ID of the remote (its `collection-id` option, or the source
    /// repository's for local pulls); `None` when it has none.
    pub collection_id: Option<String>,
    /// The ref names each requested commit was asked for (commits asked for by checksum,
    /// and parents, have none).
    pub refs: std::collections::HashMap<Checksum, Vec<String>>,
}

/// One traversal over a repository and a source.
#[derive(Debug)]
pub struct Engine {
    pub(crate) repo: Repo,
    pub(crate) source: Arc<dyn ObjectSource>,
    caches: Vec<LocalSource>,
    pub(crate) opts: EngineOptions,
    /// What was counted.
    pub counters: Arc<Counters>,
    complete: Mutex<Vec<Checksum>>,
    /// Commits whose signatures were checked in this pull (each is checked once).
    verified: Mutex<HashSet<Checksum>>,
    /// Objects may be hardlinked from the source repository.
    link: Option<LinkModes>,
    /// Where file objects larger than [`SPOOL_OVER`] are decompressed (not held in memory).
    spool_dir: std::path::PathBuf,
    /// Slots for local work (store lookups and writes, verification): each is a job on the
    /// runtime's blocking pool, which otherwise grows a thread per request in flight.
    local: tokio::sync::Semaphore,
}

/// Local work done at once by a traversal: twice the CPUs, at least 4 and at most 16.
/// Requests in flight ([`EngineOptions::concurrency`]) are not limited by this; with one
/// blocking-pool thread per request (32), a pull on 2 CPUs spent its time switching
/// threads and its memory on their stacks and allocator caches.
fn local_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .saturating_mul(2)
        .clamp(4, 16)
}

/// File objects whose content is larger than this are decompressed into a spool file in the
/// repository's `tmp/` rather than into memory (a pull of a Debian tree meets a 32 MB file;
/// with several objects in flight, a few MB each were a good part of a pull's peak memory).
const SPOOL_OVER: u64 = 1024 * 1024;

/// Content objects up to this size (as fetched) are verified on the task's own thread.
const INLINE_VERIFY_MAX: usize = 64 * 1024;

/// A local source repository on the same filesystem and with the same owner as the
/// destination: objects can be hardlinked from it (ostree's `import_one_object_direct`).
#[derive(Debug, Clone, Copy)]
struct LinkModes {
    src: RepoMode,
    dst: RepoMode,
}

/// Whether the source repository's objects can be hardlinked into `repo`: both local
/// directories on the same device, owned by the same user.
fn link_modes(repo: &Repo, source: &dyn ObjectSource) -> Option<LinkModes> {
    use std::os::unix::fs::MetadataExt;
    let src = source.local_repo()?;
    let (a, b) = (src.store().local_root()?, repo.store().local_root()?);
    let (ma, mb) = (std::fs::metadata(a).ok()?, std::fs::metadata(b).ok()?);
    (ma.dev() == mb.dev() && ma.uid() == mb.uid()).then(|| LinkModes {
        src: src.store().mode(),
        dst: repo.store().mode(),
    })
}

fn meta_key(csum: Checksum, ty: ObjectType) -> ObjectKey {
    ObjectKey::new(csum, ty)
}

/// The subpath filter: does `path` (a directory, `/`-rooted, no trailing slash except `/`)
/// need traversing, and are files directly in it wanted?
fn dir_wanted(subdirs: &[String], path: &str) -> (bool, bool) {
    if subdirs.is_empty() {
        return (true, true);
    }
    let mut traverse = false;
    let mut files = false;
    for s in subdirs {
        let s = s.trim_end_matches('/');
        let s = if s.is_empty() { "/" } else { s };
        let inside = path == s || s == "/" || path.starts_with(&format!("{s}/"));
        let above = path == "/" || s.starts_with(&format!("{path}/"));
        if inside {
            traverse = true;
            files = true;
        } else if above {
            traverse = true;
        }
    }
    (traverse, files)
}

fn file_wanted(subdirs: &[String], path: &str) -> bool {
    subdirs.is_empty()
        || subdirs.iter().any(|s| {
            let s = s.trim_end_matches('/');
            s.is_empty() || path == s || path.starts_with(&format!("{s}/"))
        })
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `_ostree_validate_bareuseronly_mode`.
pub fn validate_bareuseronly(meta: &FileMeta, csum: &Checksum) -> Result<()> {
    if meta.is_regular() {
        let bits = (meta.mode & !crate::objects::S_IFMT) & !0o775;
        if bits != 0 {
            return Err(Error::invalid(format!(
                "Content object {csum}: invalid mode 0{:04o} with bits 0{bits:04o}",
                meta.mode
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// A traversal storing into `repo` from `source`, consulting `caches` first for content.
    pub fn new(
        repo: Repo,
        source: Arc<dyn ObjectSource>,
        caches: Vec<LocalSource>,
        opts: EngineOptions,
    ) -> Self {
        Self::with_counters(repo, source, caches, opts, Arc::default())
    }

    /// As [`Engine::new`], counting into `counters` (shared with a progress display).
    pub fn with_counters(
        repo: Repo,
        source: Arc<dyn ObjectSource>,
        caches: Vec<LocalSource>,
        opts: EngineOptions,
        counters: Arc<Counters>,
    ) -> Self {
        let link = link_modes(&repo, source.as_ref());
        let spool_dir = crate::spool::dir_for(&repo);
        Engine {
            link,
            spool_dir,
            repo,
            source,
            caches,
            opts,
            counters,
            complete: Mutex::new(Vec::new()),
            verified: Mutex::new(HashSet::new()),
            local: tokio::sync::Semaphore::new(local_slots()),
        }
    }

    /// Record that `csum`'s signatures were verified (by the delta path, from the
    /// superblock's copy of the commit), so the traversal does not verify it again.
    pub(crate) fn mark_verified(&self, csum: Checksum) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(csum);
        }
    }

    /// Wait for a slot of local work (held while the permit lives).
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.local
            .acquire()
            .await
            .map_err(|e| Error::Other(format!("pull: {e}")))
    }

    fn is_verified(&self, csum: &Checksum) -> bool {
        self.verified.lock().is_ok_and(|v| v.contains(csum))
    }

    /// Fetch (or import from a local cache), verify and store one content object unless
    /// it is stored already (delta fallback objects).
    pub(crate) async fn fetch_content(&self, csum: Checksum) -> Result<()> {
        self.file(csum).await
    }

    /// The source repository's file of `key` when it can be hardlinked here: metadata
    /// always, content between equal modes, and bare-user regular files (`regular`) into
    /// bare-user-only.
    fn link_path(&self, key: &ObjectKey, regular: bool) -> Option<std::path::PathBuf> {
        let l = self.link?;
        if key.ty == ObjectType::CommitMeta {
            return None;
        }
        if key.ty == ObjectType::File
            && l.src != l.dst
            && !(regular && l.src == RepoMode::BareUser && l.dst == RepoMode::BareUserOnly)
        {
            return None;
        }
        self.source.local_repo()?.store().local_path(key)
    }

    /// Store a metadata object that came from the source (verified unless trusted): a
    /// hardlink of the source's file when possible, else its bytes.
    async fn store_meta(&self, key: &ObjectKey, data: Bytes, from_source: bool) -> Result<()> {
        let store = self.repo.store();
        if from_source
            && let Some(src) = self.link_path(key, false)
            && store.link_from(key, &src).await?
        {
            return Ok(());
        }
        store.put(key, ObjectWrite::Meta(data)).await
    }

    /// `--timestamp-check` and `--timestamp-check-from-rev` on a requested commit.
    async fn check_timestamps(&self, csum: &Checksum, commit: &Commit) -> Result<()> {
        let Some(tc) = &self.opts.timestamp_checks else {
            return Ok(());
        };
        for (name, old) in tc.orig.get(csum).into_iter().flatten() {
            let oc =
                self.repo.load_commit(old).await.map_err(|e| {
                    Error::Other(format!("Reading {name} for timestamp-check: {e}"))
                })?;
            super::compare_timestamps(old, oc.timestamp, csum, commit.timestamp)?;
        }
        if let Some(from) = &tc.from_rev {
            let fc = self.repo.load_commit(from).await.map_err(|e| {
                Error::Other(format!("Reading {from} for timestamp-check-from-rev: {e}"))
            })?;
            super::compare_timestamps(from, fc.timestamp, csum, commit.timestamp)?;
        }
        Ok(())
    }

    fn count_meta(&self, local: bool) {
        if local {
            self.counters.imported_meta.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.fetched_meta.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Commits whose whole tree is now stored (their `commitpartial` can go).
    pub fn completed(&self) -> Vec<Checksum> {
        self.complete.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Pull everything reachable from `commits` (with parents per `maxdepth`).
    ///
    /// Reading a local source repository is spread over the runtime's workers: on a runtime
    /// with fewer workers than CPUs (the CLI pulls from remotes with one, see its
    /// `worker_threads`), the traversal gets a multi-thread runtime of its own, on a thread
    /// of its own (a `file://` pull was 20% slower on one worker).
    pub async fn run(self: &Arc<Self>, commits: &[Checksum]) -> Result<()> {
        let me = Arc::clone(self);
        let commits = commits.to_vec();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.source.is_local()
            && tokio::runtime::Handle::current().metrics().num_workers() < cpus
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("ostree-pull".into())
                .spawn(move || {
                    let r = tokio::runtime::Builder::new_multi_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Other(format!("starting the pull runtime: {e}")))
                        .and_then(|rt| rt.block_on(me.run_loop(&commits)));
                    // The caller may be gone (cancelled): nothing to report then.
                    let _ = tx.send(r);
                })
                .map_err(|e| Error::Other(format!("starting the pull thread: {e}")))?;
            return rx
                .await
                .map_err(|_| Error::Other("the pull thread stopped".into()))?;
        }
        // The loop runs as a task of the runtime, beside the object tasks it spawns: each
        // finished object then wakes it on the same worker, not the thread blocked in
        // `block_on` (a futex wake-up and a thread switch per object).
        tokio::spawn(async move { me.run_loop(&commits).await })
            .await
            .map_err(|e| Error::Other(format!("pull task failed: {e}")))?
    }

    async fn run_loop(self: &Arc<Self>, commits: &[Checksum]) -> Result<()> {
        let mut queue: VecDeque<Task> = commits
            .iter()
            .map(|c| Task::Commit { csum: *c, depth: 0 })
            .collect();
        let mut seen: HashSet<(ObjectKey, String)> = HashSet::new();
        let mut inflight = FuturesUnordered::new();
        let cap = self.opts.concurrency.max(1);
        loop {
            while inflight.len() < cap {
                let Some(t) = queue.pop_front() else { break };
                let id = match &t {
                    Task::Commit { csum, .. } => {
                        (meta_key(*csum, ObjectType::Commit), String::new())
                    }
                    Task::DirTree { csum, path } => {
                        // The same tree can appear under two paths; with a subpath filter the
                        // path matters, otherwise one visit is enough.
                        let p = if self.opts.subdirs.is_empty() {
                            String::new()
                        } else {
                            path.clone()
                        };
                        (meta_key(*csum, ObjectType::DirTree), p)
                    }
                    Task::DirMeta(c) => (meta_key(*c, ObjectType::DirMeta), String::new()),
                    Task::File(c) => (meta_key(*c, ObjectType::File), String::new()),
                };
                if !seen.insert(id) {
                    continue;
                }
                let me = Arc::clone(self);
                inflight.push(tokio::spawn(async move { me.task(t).await }));
            }
            match inflight.next().await {
                None => break,
                Some(joined) => {
                    let children =
                        joined.map_err(|e| Error::Other(format!("pull task failed: {e}")))??;
                    // Depth-first-ish: metadata first keeps the queue short.
                    for c in children.into_iter().rev() {
                        match c {
                            Task::File(_) => queue.push_back(c),
                            _ => queue.push_front(c),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn task(self: Arc<Self>, t: Task) -> Result<Vec<Task>> {
        match t {
            Task::Commit { csum, depth } => self.commit(csum, depth).await,
            Task::DirTree { csum, path } => self.dirtree(csum, path).await,
            Task::DirMeta(c) => {
                self.simple_meta(meta_key(c, ObjectType::DirMeta)).await?;
                Ok(Vec::new())
            }
            Task::File(c) => {
                self.file(c).await?;
                Ok(Vec::new())
            }
        }
    }

    /// Fetch, verify and store a metadata object unless present; returns its bytes when
    /// `want_bytes` (loading the local copy if present).
    async fn fetch_meta(&self, key: ObjectKey, required: bool) -> Result<Option<Bytes>> {
        // Objects of the `core.parent` repository count as present, as in ostree.
        if self.repo.has_object(&key).await? {
            return Ok(Some(self.repo.load_meta(key.ty, &key.checksum).await?));
        }
        let Some((data, local)) = self.fetch_meta_unstored(key, required).await? else {
            return Ok(None);
        };
        let _slot = self.slot().await?;
        self.store_meta(&key, data.clone(), self.caches.is_empty())
            .await?;
        self.count_meta(local);
        Ok(Some(data))
    }

    /// Fetch and verify a metadata object (local caches first, then the source) without
    /// storing it; also says whether it came from a local repository.
    async fn fetch_meta_unstored(
        &self,
        key: ObjectKey,
        required: bool,
    ) -> Result<Option<(Bytes, bool)>> {
        for c in &self.caches {
            if key.ty != ObjectType::CommitMeta
                && c.repo.store().has(&key).await?
                && let Some(data) = c.meta(&key).await?
            {
                if Checksum::of(&data) != key.checksum {
                    break;
                }
                return Ok(Some((data, true)));
            }
        }
        self.counters.requested_meta.fetch_add(1, Ordering::Relaxed);
        let Some(data) = self.source.meta(&key).await? else {
            if required {
                let why = if self.source.is_local() {
                    String::new()
                } else {
                    " (Server returned HTTP 404)".to_string()
                };
                return Err(Error::not_found(format!(
                    "No such metadata object {}.{}{why}",
                    key.checksum,
                    key.ty.name()
                )));
            }
            return Ok(None);
        };
        if data.len() as u64 > super::source::MAX_METADATA_SIZE {
            return Err(Error::Corrupted(format!(
                "Metadata object {key} is {} bytes, exceeding the maximum of {}",
                data.len(),
                super::source::MAX_METADATA_SIZE
            )));
        }
        if self.opts.verify {
            match key.ty {
                ObjectType::CommitMeta => {
                    // Detached metadata has no checksum; it is kept in normal form (bytes
                    // that are not an a{sv} hold nothing, as GLib reads them).
                    let md = crate::sign::parse_signature_metadata(&data);
                    return Ok(Some((Bytes::from(md.to_bytes()), self.source.is_local())));
                }
                _ => {
                    check(key.ty, &key.checksum, &Checksum::of(&data))?;
                    // Structure too, before anything is written (ostree prefixes the
                    // object name).
                    validate_structure(&key, &data)?;
                }
            }
        }
        Ok(Some((data, self.source.is_local())))
    }

    async fn simple_meta(&self, key: ObjectKey) -> Result<()> {
        if self.repo.has_object(&key).await? {
            return Ok(());
        }
        self.fetch_meta(key, true).await.map(|_| ())
    }

    async fn commit(&self, csum: Checksum, depth: i64) -> Result<Vec<Task>> {
        let store = self.repo.store();
        let key = meta_key(csum, ObjectType::Commit);
        let had = self.repo.has_object(&key).await?;
        let partial = had && self.repo.is_commit_partial(&csum).await?;
        let mut children = Vec::new();
        // Detached metadata is fetched for every commit, stored or not: new signatures (or
        // removed ones) appear there. Nothing is stored before the signature check.
        let mdkey = meta_key(csum, ObjectType::CommitMeta);
        let detached = if self.opts.fetch_commitmeta {
            let got = self.fetch_meta_unstored(mdkey, false).await?;
            if got.is_none() && !self.source.is_local() {
                // ostree counts the request for detached metadata as a fetched metadata
                // object even when the server has none (404).
                self.counters.fetched_meta.fetch_add(1, Ordering::Relaxed);
            }
            got
        } else {
            None
        };
        let (commit_bytes, commit_local) = if had {
            (self.repo.load_meta(ObjectType::Commit, &csum).await?, false)
        } else {
            match self.fetch_meta_unstored(key, depth == 0).await? {
                Some(got) => got,
                // A parent the server does not have (pruned history): stop here.
                None => return Ok(children),
            }
        };
        if let Some(v) = &self.opts.verification
            && v.verifies_commits()
            && !self.is_verified(&csum)
        {
            let md = match &detached {
                Some((b, _)) => Some(crate::sign::parse_signature_metadata(b)),
                None if had => self
                    .repo
                    .read_commit_detached_metadata(&csum)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            v.verify_commit(&csum, &commit_bytes, md.as_ref())?;
            self.mark_verified(csum);
        }
        let commit = Commit::from_bytes(&commit_bytes)
            .map_err(|e| Error::corrupted(format!("Corrupted commit object {csum}: {e}")))?;
        if depth == 0 {
            // Before the commit or anything below it is stored: a refused downgrade leaves
            // nothing behind.
            self.check_timestamps(&csum, &commit).await?;
        }
        if let Some((b, local)) = detached {
            store.delete(&mdkey).await?;
            store.put(&mdkey, ObjectWrite::Meta(b)).await?;
            self.count_meta(local);
        }
        if !had {
            // Mark the commit partial before any of it is stored.
            store
                .write_file(&format!("state/{csum}.commitpartial"), Bytes::new())
                .await?;
            let linked = self.caches.is_empty()
                && match self.link_path(&key, false) {
                    Some(src) => store.link_from(&key, &src).await?,
                    None => false,
                };
            if linked {
                store
                    .delete(&meta_key(csum, ObjectType::TombstoneCommit))
                    .await?;
            } else {
                self.repo
                    .put_commit_object(&csum, commit_bytes.clone())
                    .await?;
            }
            self.count_meta(commit_local);
        }
        if let Some(b) = &self.opts.bindings {
            let cid = b.collection_id.as_deref();
            let check = |r: Option<&str>| {
                crate::repo::refs::verify_bindings(cid, r, &commit)
                    .map_err(|e| Error::invalid(format!("Commit {csum}: {e}")))
            };
            match b.refs.get(&csum).filter(|_| depth == 0) {
                Some(names) => {
                    for n in names {
                        check(Some(n))?;
                    }
                }
                None => check(None)?,
            }
        }
        if let Some(p) = commit.parent
            && (self.opts.maxdepth < 0 || depth < self.opts.maxdepth)
        {
            children.push(Task::Commit {
                csum: p,
                depth: depth + 1,
            });
        }
        let need_tree = !self.opts.commit_only && (!had || partial);
        if need_tree {
            children.push(Task::DirMeta(commit.root_meta));
            children.push(Task::DirTree {
                csum: commit.root_tree,
                path: "/".into(),
            });
            if self.opts.subdirs.is_empty()
                && let Ok(mut v) = self.complete.lock()
            {
                v.push(csum);
            }
        }
        Ok(children)
    }

    async fn dirtree(&self, csum: Checksum, path: String) -> Result<Vec<Task>> {
        let key = meta_key(csum, ObjectType::DirTree);
        let data = self
            .fetch_meta(key, true)
            .await?
            .ok_or_else(|| Error::not_found(format!("No such metadata object {csum}.dirtree")))?;
        let tree = DirTree::from_bytes(&data)
            .map_err(|e| Error::corrupted(format!("Validating dirtree {csum} ({path}): {e}")))?;
        let (_, files_here) = dir_wanted(&self.opts.subdirs, &path);
        let mut out = Vec::new();
        for (name, c) in &tree.files {
            if files_here || file_wanted(&self.opts.subdirs, &join(&path, name)) {
                out.push(Task::File(*c));
            }
        }
        for (name, t, m) in &tree.dirs {
            let p = join(&path, name);
            let (trav, _) = dir_wanted(&self.opts.subdirs, &p);
            if trav {
                out.push(Task::DirMeta(*m));
                out.push(Task::DirTree { csum: *t, path: p });
            }
        }
        Ok(out)
    }

    async fn file(&self, csum: Checksum) -> Result<()> {
        let key = meta_key(csum, ObjectType::File);
        let store = self.repo.store();
        if self.repo.has_object(&key).await? {
            return Ok(());
        }
        // A trusted local source in the same mode: hardlink its file, unread.
        if !self.opts.verify
            && !self.opts.bareuseronly_files
            && self.link.is_some_and(|l| l.src == l.dst)
            && let Some(src) = self.link_path(&key, false)
            && store.link_from(&key, &src).await?
        {
            self.counters
                .imported_content
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut from_cache = false;
        let mut payload = None;
        for c in &self.caches {
            if c.repo.store().has(&key).await? {
                payload = Some(c.content(&csum).await?);
                from_cache = true;
                break;
            }
        }
        let payload = match payload {
            Some(p) => p,
            None => {
                self.counters
                    .requested_content
                    .fetch_add(1, Ordering::Relaxed);
                self.source.content(&csum).await?
            }
        };
        // Verification and storing: one slot of local work.
        let _slot = self.slot().await?;
        let verify = (self.opts.verify && !self.opts.trust_content) || from_cache;
        let bareuseronly = self.opts.bareuseronly_files;
        let archive_dest = store.mode().is_archive();
        let spool_dir = self.spool_dir.clone();
        let small = match &payload {
            ContentPayload::Archived(raw) => raw.len() <= INLINE_VERIFY_MAX,
            ContentPayload::ArchivedFile(..) => false,
            ContentPayload::Decoded(_, content) => content.len() <= INLINE_VERIFY_MAX,
        };
        let prepare = move || -> Result<Prepared> {
            let payload = match payload {
                // An archive store keeps the bytes as they came: read them back.
                ContentPayload::ArchivedFile(f, len) if archive_dest => {
                    ContentPayload::Archived(read_spilled(f, len, &csum)?)
                }
                p => p,
            };
            let decode = |meta: FileMeta, size: u64, reader: Box<dyn std::io::Read + Send>| {
                decode_content(&spool_dir, &csum, meta, size, reader, verify, bareuseronly)
            };
            match payload {
                ContentPayload::Archived(raw) => {
                    if !archive_dest
                        && let Some((meta, content)) =
                            inflate_archived(&raw, SPOOL_OVER).map_err(|e| {
                                Error::corrupted(format!("Corrupted file object {csum}: {e}"))
                            })?
                    {
                        // Small enough to inflate in one call.
                        return in_memory(meta, content, &csum, verify, bareuseronly);
                    }
                    let (meta, size, reader) = read_archived(std::io::Cursor::new(raw.clone()))?;
                    if !verify && archive_dest && !bareuseronly {
                        // Trusted archive → archive: the bytes as they are.
                        return Ok((ObjectWrite::Archived(raw), size, meta.is_regular(), None));
                    }
                    if !archive_dest {
                        return decode(meta, size, reader);
                    }
                    // Into an archive store: the bytes as they came, once their content
                    // hashes right (streamed: nothing decoded is kept).
                    if verify {
                        let actual = content_checksum(&meta, reader).map_err(|e| {
                            Error::corrupted(format!("Corrupted file object {csum}: {e}"))
                        })?;
                        check(ObjectType::File, &csum, &actual)?;
                    }
                    if bareuseronly {
                        validate_bareuseronly(&meta, &csum)?;
                    }
                    Ok((ObjectWrite::Archived(raw), size, meta.is_regular(), None))
                }
                ContentPayload::ArchivedFile(f, _) => {
                    let (meta, size, reader) = read_archived(f)?;
                    decode(meta, size, reader)
                }
                ContentPayload::Decoded(meta, content) => {
                    in_memory(meta, content, &csum, verify, bareuseronly)
                }
            }
        };
        // A small object is verified in place: a trip through the blocking pool (two thread
        // switches) costs more than inflating and hashing a few KiB.
        let write = if small {
            prepare()?
        } else {
            tokio::task::spawn_blocking(prepare)
                .await
                .map_err(|e| Error::Other(format!("verifying {csum}: {e}")))??
        };
        // The spool file (if any) lives until the store has copied it.
        let (write, size, regular, _spool) = write;
        // Verified (or converted) from a local source: a hardlink of its file when possible.
        let linked = !from_cache
            && match self.link_path(&key, regular) {
                Some(src) => store.link_from(&key, &src).await?,
                None => false,
            };
        if !linked {
            store.put(&key, write).await?;
        }
        if self.source.is_local() || from_cache {
            self.counters
                .imported_content
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters
                .fetched_content
                .fetch_add(1, Ordering::Relaxed);
        }
        if !linked {
            // A hardlink writes no content (ostree counts written bytes only).
            self.counters
                .content_bytes_written
                .fetch_add(size, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// What the verification of a content object prepares for the store: the write, the content
/// size, whether it is a regular file, and the spool file the write reads (kept until then).
type Prepared = (ObjectWrite, u64, bool, Option<crate::spool::Spool>);

/// Decode a `.filez` object's content (`meta`, `size`, the inflating `reader`): verified
/// against `csum` when `verify`, into memory, or into a spool file in `spool_dir` when it is
/// a regular file larger than [`SPOOL_OVER`].
fn decode_content(
    spool_dir: &std::path::Path,
    csum: &Checksum,
    meta: FileMeta,
    size: u64,
    mut reader: Box<dyn std::io::Read + Send>,
    verify: bool,
    bareuseronly: bool,
) -> Result<Prepared> {
    if meta.is_regular() && size > SPOOL_OVER {
        if bareuseronly {
            validate_bareuseronly(&meta, csum)?;
        }
        let spool = spool_content(spool_dir, &meta, reader, verify, csum)?;
        let source = ContentSource::Path(spool.path().to_path_buf());
        let write = ObjectWrite::Content { meta, size, source };
        return Ok((write, size, true, Some(spool)));
    }
    let mut content = Vec::with_capacity(size as usize);
    std::io::Read::read_to_end(&mut reader, &mut content)
        .map_err(|e| Error::corrupted(format!("Corrupted file object {csum}: {e}")))?;
    in_memory(meta, content, csum, verify, bareuseronly)
}

/// The write of a file object whose content is in memory: verified against `csum` when
/// `verify`.
fn in_memory(
    meta: FileMeta,
    content: impl Into<Bytes>,
    csum: &Checksum,
    verify: bool,
    bareuseronly: bool,
) -> Result<Prepared> {
    let content = content.into();
    if verify {
        check(
            ObjectType::File,
            csum,
            &checksum_in_memory(&meta, &content)?,
        )?;
    }
    if bareuseronly {
        validate_bareuseronly(&meta, csum)?;
    }
    let regular = meta.is_regular();
    let size = if regular { content.len() as u64 } else { 0 };
    let write = ObjectWrite::Content {
        meta,
        size,
        source: ContentSource::Bytes(content),
    };
    Ok((write, size, regular, None))
}

/// The `len` bytes of a spilled body.
fn read_spilled(mut f: std::fs::File, len: u64, csum: &Checksum) -> Result<Bytes> {
    let mut v = Vec::with_capacity(len.min(super::source::MAX_CONTENT_SIZE) as usize);
    std::io::Read::read_to_end(&mut f, &mut v)
        .map_err(|e| Error::io(format!("Reading the fetched body of {csum}.file"), e))?;
    Ok(Bytes::from(v))
}

/// [`content_checksum`] of content already in memory: hashed where it is (no copy through
/// a read buffer).
fn checksum_in_memory(meta: &FileMeta, content: &[u8]) -> Result<Checksum> {
    if !meta.is_regular() {
        return content_checksum(meta, std::io::empty());
    }
    let mut h = crate::checksum::Hasher::new();
    h.update(&meta.file_header());
    h.update(content);
    Ok(h.finish())
}

/// Decompress a large file object's content into a new spool file in `dir` (hashing it with
/// its header on the way when `verify`, and checking that against `csum`).
fn spool_content(
    dir: &std::path::Path,
    meta: &FileMeta,
    mut reader: impl std::io::Read,
    verify: bool,
    csum: &Checksum,
) -> Result<crate::spool::Spool> {
    use std::io::Write;
    let (spool, f) = crate::spool::Spool::create(dir, "pull")?;
    // Written a read buffer at a time (256 KiB: no need for a write buffer on top).
    let mut w = f;
    let mut h = verify.then(|| {
        let mut h = crate::checksum::Hasher::new();
        h.update(&meta.file_header());
        h
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::corrupted(format!(
                    "Corrupted file object {csum}: {e}"
                )));
            }
        };
        if let Some(h) = h.as_mut() {
            h.update(&buf[..n]);
        }
        w.write_all(&buf[..n])
            .map_err(|e| Error::io_path("writing spool file", spool.path(), e))?;
    }
    if let Some(h) = h {
        check(ObjectType::File, csum, &h.finish())?;
    }
    Ok(spool)
}

/// `_ostree_validate_structureof_metadata`, errors prefixed `CHECKSUM.TYPE: `.
fn validate_structure(key: &ObjectKey, data: &[u8]) -> Result<()> {
    let r = match key.ty {
        ObjectType::DirTree => DirTree::from_bytes(data).map(|_| ()),
        ObjectType::Commit => Commit::from_bytes(data).and_then(|c| c.validate_structure()),
        _ => Ok(()),
    };
    r.map_err(|e| Error::corrupted(format!("{}.{}: {e}", key.checksum, key.ty.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpath_filter() {
        let s = vec!["/baz".to_string()];
        assert_eq!(dir_wanted(&s, "/"), (true, false));
        assert_eq!(dir_wanted(&s, "/baz"), (true, true));
        assert_eq!(dir_wanted(&s, "/baz/deeper"), (true, true));
        assert_eq!(dir_wanted(&s, "/other"), (false, false));
        assert!(!file_wanted(&s, "/firstfile"));
        assert!(file_wanted(&s, "/baz/cow"));
        let f = vec!["/firstfile".to_string()];
        assert!(file_wanted(&f, "/firstfile"));
        assert_eq!(dir_wanted(&[], "/x"), (true, true));
    }

    #[test]
    fn in_memory_checksum_is_the_content_checksum() {
        let mut meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: None,
            xattrs: vec![(b"user.a".to_vec(), b"1".to_vec())],
        };
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(
            checksum_in_memory(&meta, &content).unwrap(),
            content_checksum(&meta, &content[..]).unwrap()
        );
        meta.mode = 0o120777;
        meta.symlink_target = Some("target".into());
        assert_eq!(
            checksum_in_memory(&meta, b"").unwrap(),
            content_checksum(&meta, std::io::empty()).unwrap()
        );
    }

    #[test]
    fn local_work_is_bounded() {
        let n = local_slots();
        assert!((4..=16).contains(&n), "{n}");
    }
}
