//! Leases: how writers and prune share a repository that no lock covers (object storage,
//! where every client is on another machine). The design and its argument are in
//! `docs/design/0008-object-storage-leases.md`; in short:
//!
//! * A **writer** (push, commit, pull, delta generation: whatever takes the shared
//!   [`crate::store::ObjectStore::lock`]) writes `extensions/leases/w-ID.start` before it
//!   relies on any object being present, renews `w-ID.alive` every `ttl/4`, and deletes both
//!   when done. A lease says what the writer relies on: *declared* (push: the commits whose
//!   manifests it trusts, and the pending manifests of the commits it writes) or *undeclared*
//!   (anything it finds present).
//! * A **prune** (the exclusive lock) writes `p-ID.start` the same way, then reads the leases,
//!   then the refs. It keeps whatever a live lease declares, and every object last modified
//!   after the oldest live lease started; a live undeclared lease makes it keep everything.
//! * A writer, after writing (or changing) its lease, lists the prune markers and waits while
//!   one is live: a prune that started before the lease was written may not have seen it.
//!   Either the prune saw the lease, or the writer waits for the prune: never neither.
//! * Times are the store's (each file's last-modified from a listing), never a client's
//!   clock. A holder that could not renew for `ttl` (paused, cut off) has lost its lease: it
//!   stops before it publishes anything (the store refuses commit objects and ref updates
//!   through [`LeaseTable::check`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::keyfile::KeyFile;
use crate::repo::Repo;
use crate::store::{ListedFile, LockGuard, ObjectStore};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Where leases and prune markers live in a repository.
pub const LEASE_DIR: &str = "extensions/leases";

/// How long a lease lives without renewal, unless the store is configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Added to every comparison of store times: S3 reports last-modified to the second.
pub const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Repository config group and key of the grace period: prune also keeps every unreferenced
/// object younger than this many seconds (for writers that take no lease).
pub const GRACE_GROUP: &str = "object-storage";
/// See [`GRACE_GROUP`].
pub const GRACE_KEY: &str = "prune-grace-seconds";

const GROUP: &str = "lease";

/// Who holds a lease file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A writer (shared lock): prune must keep what it relies on.
    Writer,
    /// A prune (exclusive lock): writers wait while it runs.
    Prune,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Writer => "w-",
            Role::Prune => "p-",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Prune => "prune",
        }
    }
}

/// What a writer relies on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseDecl {
    /// What the writer is (`push`, `write`…), for messages.
    pub kind: String,
    /// `false`: the writer may rely on any object it finds present (prune keeps everything
    /// while the lease lives). `true`: only on `roots` and `pending`.
    pub declared: bool,
    /// Commits whose whole tree the writer relies on (their push manifest, or else their
    /// objects in the store).
    pub roots: Vec<Checksum>,
    /// Commits the writer is writing, each with its pending manifest
    /// (`extensions/push/pending/<commit>`, the encoded list of every object it reaches).
    pub pending: Vec<Checksum>,
}

impl LeaseDecl {
    /// A writer that may rely on any object it finds present.
    pub fn undeclared(kind: &str) -> Self {
        LeaseDecl {
            kind: kind.to_string(),
            ..Default::default()
        }
    }

    /// A writer that relies only on `roots` and `pending`.
    pub fn declared(kind: &str, roots: Vec<Checksum>, pending: Vec<Checksum>) -> Self {
        LeaseDecl {
            kind: kind.to_string(),
            declared: true,
            roots,
            pending,
        }
    }

    fn to_text(&self, role: Role, ttl: Duration, holder: &str) -> String {
        let mut kf = KeyFile::new();
        kf.set(GROUP, "role", role.name());
        kf.set_string(GROUP, "kind", &self.kind);
        kf.set_string(GROUP, "holder", holder);
        kf.set(GROUP, "ttl", &ttl.as_secs().max(1).to_string());
        if role == Role::Writer {
            kf.set(
                GROUP,
                "declared",
                if self.declared { "true" } else { "false" },
            );
            let hex = |v: &[Checksum]| v.iter().map(|c| c.to_hex()).collect::<Vec<_>>();
            let roots = hex(&self.roots);
            let pending = hex(&self.pending);
            kf.set_list(
                GROUP,
                "roots",
                &roots.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            kf.set_list(
                GROUP,
                "pending",
                &pending.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        kf.to_string()
    }

    /// Parse a lease body: the declaration, its ttl and its holder. A body that does not
    /// parse is an undeclared lease with the default ttl (the safe reading).
    fn parse(body: &[u8]) -> (LeaseDecl, Duration, String) {
        let kf = std::str::from_utf8(body)
            .ok()
            .and_then(|t| KeyFile::parse(t).ok());
        let Some(kf) = kf else {
            return (LeaseDecl::undeclared("unknown"), DEFAULT_TTL, String::new());
        };
        let ttl = kf
            .get(GROUP, "ttl")
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(DEFAULT_TTL, Duration::from_secs);
        let list = |k: &str| -> Option<Vec<Checksum>> {
            kf.get_list(GROUP, k)
                .unwrap_or_default()
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| Checksum::from_hex(s).ok())
                .collect()
        };
        let declared = kf.get_bool(GROUP, "declared").ok().flatten() == Some(true);
        let decl = match (declared, list("roots"), list("pending")) {
            (true, Some(roots), Some(pending)) => LeaseDecl {
                kind: kf.get_string(GROUP, "kind").unwrap_or_default(),
                declared: true,
                roots,
                pending,
            },
            _ => LeaseDecl::undeclared(&kf.get_string(GROUP, "kind").unwrap_or_default()),
        };
        (
            decl,
            ttl,
            kf.get_string(GROUP, "holder").unwrap_or_default(),
        )
    }
}

/// The leases and prune markers one store handle holds. Object-storage stores own one and
/// return it from [`ObjectStore::lease_table`].
#[derive(Debug)]
pub struct LeaseTable {
    ttl: Duration,
    held: Mutex<Vec<Weak<Held>>>,
    own_prunes: Mutex<HashSet<String>>,
}

impl LeaseTable {
    /// A table whose leases live `ttl` without renewal (at least 2 s).
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(LeaseTable {
            ttl: ttl.max(Duration::from_secs(2)),
            held: Mutex::new(Vec::new()),
            own_prunes: Mutex::new(HashSet::new()),
        })
    }

    /// How long a lease of this table lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Fails when a lease or prune marker held through this table has expired (the process
    /// was paused or cut off from the store for longer than its ttl allows): a prune may then
    /// have deleted what a writer relies on, or a writer may have started under a prune.
    /// Stores call it before writing commit objects and moving refs; prune calls it before
    /// each deletion batch.
    pub fn check(&self) -> Result<()> {
        let held = self.held.lock().expect("lease table lock");
        for h in held.iter().filter_map(Weak::upgrade) {
            h.check()?;
        }
        Ok(())
    }

    fn register(&self, h: &Arc<Held>) {
        let mut held = self.held.lock().expect("lease table lock");
        held.retain(|w| w.strong_count() > 0);
        held.push(Arc::downgrade(h));
        if h.role == Role::Prune {
            self.own_prunes
                .lock()
                .expect("lease table lock")
                .insert(h.id.clone());
        }
    }

    fn is_own_prune(&self, id: &str) -> bool {
        self.own_prunes
            .lock()
            .expect("lease table lock")
            .contains(id)
    }
}

/// One held lease or prune marker.
#[derive(Debug)]
struct Held {
    id: String,
    role: Role,
    ttl: Duration,
    holder: String,
    store: Arc<dyn ObjectStore>,
    table: Arc<LeaseTable>,
    decl: Mutex<LeaseDecl>,
    /// When the last successful write of the lease was *sent*.
    last_ok: Mutex<Instant>,
    lost: AtomicBool,
    /// The guard is gone: nothing relies on the lease any more.
    released: AtomicBool,
}

impl Held {
    fn path(&self, what: &str) -> String {
        format!("{LEASE_DIR}/{}{}.{what}", self.role.prefix(), self.id)
    }

    fn body(&self) -> Bytes {
        let decl = self.decl.lock().expect("lease lock").clone();
        Bytes::from(decl.to_text(self.role, self.ttl, &self.holder))
    }

    /// Time a lease must keep in hand: requests in flight when it is checked must land
    /// before the store's clock passes its expiry.
    fn margin(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_secs(1)).min(self.ttl / 2)
    }

    fn valid_at(&self, at: Instant) -> bool {
        let last = *self.last_ok.lock().expect("lease lock");
        !self.lost.load(Ordering::SeqCst)
            && at.saturating_duration_since(last) + self.margin() < self.ttl
    }

    fn check(&self) -> Result<()> {
        if self.released.load(Ordering::SeqCst) || self.valid_at(Instant::now()) {
            return Ok(());
        }
        self.lost.store(true, Ordering::SeqCst);
        let last = *self.last_ok.lock().expect("lease lock");
        let what = match self.role {
            Role::Writer => "a prune may have removed objects this write relies on",
            Role::Prune => "writers may have started meanwhile",
        };
        Err(Error::Precondition {
            what: format!(
                "The {} lease {} on {} expired: it could not be renewed for {} s (ttl {} s; \
                 the process was paused or cut off from the store), so {what}. Nothing more \
                 was published; run the command again",
                self.role.name(),
                self.id,
                LEASE_DIR,
                last.elapsed().as_secs(),
                self.ttl.as_secs()
            ),
        })
    }

    /// Write the lease (`start` once, `alive` on renewal), recording when it was sent.
    async fn write(&self, what: &str) -> Result<()> {
        let sent = Instant::now();
        if what != "start" {
            // Never revive an expired lease: a prune may already have ignored it.
            self.check()?;
        }
        self.store.write_file(&self.path(what), self.body()).await?;
        *self.last_ok.lock().expect("lease lock") = sent;
        Ok(())
    }

    async fn release(&self) {
        // `start` first: without it the id is not a lease any more.
        let _ = self.store.delete_file(&self.path("start")).await;
        let _ = self.store.delete_file(&self.path("alive")).await;
    }
}

/// The guard behind a [`LockGuard`] of a leased store: renews while held, deletes the lease
/// when dropped.
#[derive(Debug)]
struct LeaseGuard {
    held: Arc<Held>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.held.released.store(true, Ordering::SeqCst);
        let held = self.held.clone();
        // Release now when the runtime allows blocking (the CLI's multi-threaded runtime),
        // so a finished command leaves no lease behind; otherwise in the background (the
        // lease then expires by itself if the process ends first).
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(async move { held.release().await }));
            }
            Ok(h) => {
                h.spawn(async move { held.release().await });
            }
            Err(_) => {}
        }
    }
}

fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mix = (nanos as u64) ^ ((std::process::id() as u64) << 40) ^ n.rotate_left(20);
    let host = hostname();
    let h = Checksum::of(format!("{host}:{}:{nanos}:{n}:{mix}", std::process::id()).as_bytes());
    h.to_hex()[..20].to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Take a lease (writer) or prune marker on `store`, renewed until the guard is dropped. A
/// writer returns once no prune that could have missed its lease is running.
pub async fn acquire(
    store: Arc<dyn ObjectStore>,
    table: &Arc<LeaseTable>,
    role: Role,
    decl: LeaseDecl,
) -> Result<LockGuard> {
    let held = Arc::new(Held {
        id: new_id(),
        role,
        ttl: table.ttl,
        holder: format!("{}:{}", hostname(), std::process::id()),
        store,
        table: table.clone(),
        decl: Mutex::new(decl),
        last_ok: Mutex::new(Instant::now()),
        lost: AtomicBool::new(false),
        released: AtomicBool::new(false),
    });
    held.write("start").await?;
    table.register(&held);
    let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(&held)));
    let guard = LeaseGuard { held, heartbeat };
    if role == Role::Writer {
        wait_for_prunes(&guard.held).await?;
    }
    Ok(LockGuard(Box::new(guard)))
}

async fn heartbeat(held: Weak<Held>) {
    loop {
        let Some(period) = held.upgrade().map(|h| h.ttl / 4) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(h) = held.upgrade() else { return };
        if h.write("alive").await.is_err() && h.lost.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Replace what a held writer lease declares (a guard that is not a lease: nothing to do),
/// then wait for any prune that may have read the old declaration.
pub async fn update(guard: &LockGuard, decl: LeaseDecl) -> Result<()> {
    let Some(g) = guard.0.downcast_ref::<LeaseGuard>() else {
        return Ok(());
    };
    *g.held.decl.lock().expect("lease lock") = decl;
    g.held.write("alive").await?;
    wait_for_prunes(&g.held).await
}

/// Fails when `guard` is a lease that has expired ([`LeaseTable::check`] for one guard).
pub fn check(guard: &LockGuard) -> Result<()> {
    match guard.0.downcast_ref::<LeaseGuard>() {
        Some(g) => g.held.check(),
        None => Ok(()),
    }
}

/// Lease files grouped by holder id.
#[derive(Debug, Default)]
struct Group {
    role: Option<Role>,
    start: Option<SystemTime>,
    alive: Option<SystemTime>,
}

impl Group {
    fn renewed(&self) -> Option<SystemTime> {
        self.start.max(self.alive)
    }
}

fn group(files: &[ListedFile]) -> BTreeMap<String, Group> {
    let mut out: BTreeMap<String, Group> = BTreeMap::new();
    for f in files {
        let Some(name) = f
            .path
            .strip_prefix(LEASE_DIR)
            .and_then(|n| n.strip_prefix('/'))
        else {
            continue;
        };
        let (role, rest) = if let Some(r) = name.strip_prefix("w-") {
            (Role::Writer, r)
        } else if let Some(r) = name.strip_prefix("p-") {
            (Role::Prune, r)
        } else {
            continue;
        };
        let Some((id, what)) = rest.rsplit_once('.') else {
            continue;
        };
        let g = out.entry(id.to_string()).or_default();
        g.role = Some(role);
        // A time the store does not report counts as "now" (kept live).
        let t = f.modified.unwrap_or_else(SystemTime::now);
        match what {
            "start" => g.start = Some(t),
            "alive" => g.alive = Some(t),
            _ => {}
        }
    }
    out
}

async fn read_body(
    store: &dyn ObjectStore,
    role: Role,
    id: &str,
    what: &str,
) -> Result<Option<Bytes>> {
    store
        .read_file(&format!("{LEASE_DIR}/{}{id}.{what}", role.prefix()))
        .await
}

/// List the prune markers until none that could have missed `held` is live.
async fn wait_for_prunes(held: &Held) -> Result<()> {
    let mut ttls: HashMap<String, Duration> = HashMap::new();
    let poll = (held.ttl / 4).min(Duration::from_secs(1));
    // The store's clock only shows in what is written: its "now" is the latest time listed,
    // or the first one plus the time waited since (never ahead of the store's real now).
    let mut base: Option<(SystemTime, Instant)> = None;
    loop {
        let listed_at = Instant::now();
        let files = held
            .store
            .list_files_detailed(&format!("{LEASE_DIR}/"))
            .await?;
        let latest = files.iter().filter_map(|f| f.modified).max();
        if base.is_none() {
            base = latest.map(|t| (t, listed_at));
        }
        let now = match (latest, base) {
            (Some(l), Some((t, at))) => Some(l.max(t + at.elapsed())),
            (l, _) => l,
        };
        let mut live = false;
        for (id, g) in group(&files) {
            if g.role != Some(Role::Prune) || g.start.is_none() || held.table.is_own_prune(&id) {
                continue;
            }
            let ttl = match ttls.get(&id) {
                Some(t) => *t,
                None => {
                    let t = match read_body(held.store.as_ref(), Role::Prune, &id, "start").await? {
                        Some(b) => LeaseDecl::parse(&b).1,
                        // Released meanwhile.
                        None => continue,
                    };
                    ttls.insert(id.clone(), t);
                    t
                }
            };
            match (g.renewed(), now) {
                (Some(r), Some(now)) if r + ttl + CLOCK_SLACK < now => {}
                _ => live = true,
            }
        }
        if !live {
            return Ok(());
        }
        held.check()?;
        tokio::time::sleep(poll).await;
    }
}

/// A writer lease as a prune sees it.
#[derive(Clone, Debug)]
pub struct LeaseInfo {
    /// The holder's id.
    pub id: String,
    /// What it relies on.
    pub decl: LeaseDecl,
    /// `host:pid` of the holder.
    pub holder: String,
    /// When it was taken (store clock).
    pub started: SystemTime,
    /// When it was last renewed (store clock).
    pub renewed: SystemTime,
    /// How long it lives without renewal.
    pub ttl: Duration,
}

impl LeaseInfo {
    /// Live at `now` (store clock).
    pub fn live_at(&self, now: SystemTime) -> bool {
        self.renewed + self.ttl + CLOCK_SLACK >= now
    }
}

/// The writer leases of a store, and the store's time of the reading.
#[derive(Clone, Debug)]
pub struct LeaseSnapshot {
    /// The store's "now": this handle's prune marker's start when it holds one (the instant
    /// from which writers wait for it), else the latest time in the listing.
    pub now: SystemTime,
    /// Every writer lease found, live or not.
    pub writers: Vec<LeaseInfo>,
}

/// Read the writer leases of `store`.
pub async fn snapshot(store: &dyn ObjectStore, table: &LeaseTable) -> Result<LeaseSnapshot> {
    let files = store.list_files_detailed(&format!("{LEASE_DIR}/")).await?;
    let groups = group(&files);
    let own = groups
        .iter()
        .filter(|(id, g)| g.role == Some(Role::Prune) && table.is_own_prune(id))
        .filter_map(|(_, g)| g.start)
        .max();
    let now = own
        .or_else(|| files.iter().filter_map(|f| f.modified).max())
        .unwrap_or_else(SystemTime::now);
    let mut writers = Vec::new();
    for (id, g) in groups {
        if g.role != Some(Role::Writer) {
            continue;
        }
        let Some(started) = g.start else { continue };
        let body = match read_body(store, Role::Writer, &id, "alive").await? {
            Some(b) => Some(b),
            None => read_body(store, Role::Writer, &id, "start").await?,
        };
        // Released between the listing and now.
        let Some(body) = body else { continue };
        let (decl, ttl, holder) = LeaseDecl::parse(&body);
        writers.push(LeaseInfo {
            id,
            decl,
            holder,
            started,
            renewed: g.renewed().unwrap_or(started),
            ttl,
        });
    }
    Ok(LeaseSnapshot { now, writers })
}

/// What a prune must keep besides what refs reach, because of live writers.
#[derive(Clone, Debug, Default)]
pub struct Protection {
    /// Objects live leases declare.
    pub keep: HashSet<ObjectKey>,
    /// Keep every object last modified at or after this (store clock): the oldest live
    /// lease's start, or the grace period.
    pub keep_newer_than: Option<SystemTime>,
    /// Live undeclared leases (`kind holder since…`): while any is there, nothing
    /// unreferenced is deleted.
    pub undeclared: Vec<String>,
    /// Every live lease, described (`kind holder`).
    pub writers: Vec<String>,
}

impl Protection {
    /// Whether an unreferenced object must be kept.
    pub fn keeps(&self, key: &ObjectKey, modified: Option<SystemTime>) -> bool {
        if !self.undeclared.is_empty() || self.keep.contains(key) {
            return true;
        }
        match (self.keep_newer_than, modified) {
            (Some(t), Some(m)) => m >= t,
            // Age unknown: keep.
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Read a push manifest (`extensions/push/manifests/<c>` or a pending one) into `keep`;
/// false when there is none (or it does not parse).
async fn read_manifest_into(
    store: &dyn ObjectStore,
    path: &str,
    keep: &mut HashSet<ObjectKey>,
) -> Result<bool> {
    let Some(data) = store.read_file(path).await? else {
        return Ok(false);
    };
    match crate::push::decode_manifest(&data) {
        Ok(keys) => {
            keep.extend(keys);
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

/// What a prune of `repo` must keep for live writers (see the module docs). Call after
/// taking the exclusive lock and *before* reading the refs.
pub async fn protection(repo: &Repo, table: &LeaseTable) -> Result<Protection> {
    let store = repo.store().clone();
    let snap = snapshot(store.as_ref(), table).await?;
    let mut p = Protection::default();
    let grace = repo
        .config()
        .keyfile
        .get(GRACE_GROUP, GRACE_KEY)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    if let Some(g) = grace {
        p.keep_newer_than = snap.now.checked_sub(g);
    }
    for l in snap.writers.iter().filter(|l| l.live_at(snap.now)) {
        let since = chrono::DateTime::<chrono::Utc>::from(l.started).format("%Y-%m-%dT%H:%M:%SZ");
        let what = format!("{} ({}, since {since})", l.decl.kind, l.holder);
        let start = l.started.checked_sub(CLOCK_SLACK).unwrap_or(l.started);
        p.keep_newer_than = Some(p.keep_newer_than.map_or(start, |t| t.min(start)));
        if !l.decl.declared {
            p.undeclared.push(what.clone());
        } else {
            for r in &l.decl.roots {
                let path = format!("{}/{r}", crate::push::MANIFEST_DIR);
                if !read_manifest_into(store.as_ref(), &path, &mut p.keep).await? {
                    let mut reach = HashSet::new();
                    repo.traverse_commit_depth(r, 0, false, &mut reach).await?;
                    p.keep.extend(reach);
                }
                p.keep.insert(ObjectKey::new(*r, ObjectType::Commit));
            }
            for c in &l.decl.pending {
                let path = format!("{}/{c}", crate::push::PENDING_DIR);
                read_manifest_into(store.as_ref(), &path, &mut p.keep).await?;
                p.keep.insert(ObjectKey::new(*c, ObjectType::Commit));
            }
        }
        p.writers.push(what);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decl_round_trip() {
        let d = LeaseDecl::declared("push", vec![Checksum([1; 32])], vec![Checksum([2; 32])]);
        let text = d.to_text(Role::Writer, Duration::from_secs(42), "h:1");
        let (back, ttl, holder) = LeaseDecl::parse(text.as_bytes());
        assert_eq!(back, d);
        assert_eq!(ttl, Duration::from_secs(42));
        assert_eq!(holder, "h:1");
        let u = LeaseDecl::undeclared("write");
        let (back, _, _) = LeaseDecl::parse(u.to_text(Role::Writer, DEFAULT_TTL, "h").as_bytes());
        assert_eq!(back, u);
        // Garbage reads as undeclared (keep everything).
        let (g, ttl, _) = LeaseDecl::parse(b"\xff\xfe");
        assert!(!g.declared);
        assert_eq!(ttl, DEFAULT_TTL);
        let empty = LeaseDecl::declared("push", vec![], vec![]);
        let (back, _, _) =
            LeaseDecl::parse(empty.to_text(Role::Writer, DEFAULT_TTL, "h").as_bytes());
        assert_eq!(back, empty);
    }

    #[test]
    fn grouping_and_keeping() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let f = |p: &str, s: u64| ListedFile {
            path: format!("{LEASE_DIR}/{p}"),
            size: Some(1),
            modified: Some(t0 + Duration::from_secs(s)),
        };
        let g = group(&[
            f("w-a.start", 0),
            f("w-a.alive", 5),
            f("p-b.start", 3),
            f("x", 1),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g["a"].role, Some(Role::Writer));
        assert_eq!(g["a"].renewed(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(g["b"].role, Some(Role::Prune));

        let k = ObjectKey::new(Checksum([3; 32]), ObjectType::File);
        let mut p = Protection {
            keep_newer_than: Some(t0),
            ..Default::default()
        };
        assert!(p.keeps(&k, Some(t0)));
        assert!(!p.keeps(&k, Some(t0 - Duration::from_secs(1))));
        assert!(p.keeps(&k, None));
        p.keep_newer_than = None;
        assert!(!p.keeps(&k, None));
        p.keep.insert(k);
        assert!(p.keeps(&k, None));
        p.keep.clear();
        p.undeclared.push("write".into());
        assert!(p.keeps(&k, Some(t0 - Duration::from_secs(100))));
    }
}
