//! Push: copy commits from a local repository into any repository the registry opens
//! (`s3://bucket/prefix`, `file:///srv/repo`, or a remote whose URL is one of those).
//!
//! # How a push decides what to send
//!
//! Object storage makes listing expensive (one request per 1000 keys) and existence checks
//! cost one request each, so push avoids both in the common case:
//!
//! * Every pushed commit gets a **reachability manifest** in the destination,
//!   `extensions/push/manifests/<commit>`: the sorted list of every object reachable from that
//!   commit's tree. A manifest is trusted only while its commit object is still in the
//!   destination (prune deletes whole commits, never part of one).
//! * Before uploading, push reads the manifests of the destination's current ref values and of
//!   the pushed commits' parents; whatever they list is present and is not checked again. An
//!   incremental push thus costs one request per *new* object (its create-only PUT) plus a few
//!   per commit.
//! * **Resumable**: a push first writes a marker in `extensions/push/pending/` (the commit's
//!   manifest), removed once its manifest is written. When a marker is there (a push was interrupted, or is running
//!   elsewhere), the candidates are checked for existence (concurrent, bounded) and only the
//!   missing ones are uploaded. Uploads are create-only, so racing pushers never clobber each
//!   other's objects.
//!
//! # Ordering (what a reader can observe)
//!
//! Content, dirmeta and dirtree objects first, then detached commit metadata, then commit
//! objects (oldest first), then manifests, then the static deltas ending at pushed commits,
//! then each ref moves with compare-and-swap from the value read at the start, then the
//! summary is regenerated (delta indexes with it) and, with signers, signed. A reader
//! therefore never sees a commit whose objects are missing, and a ref or summary never names
//! such a commit. Two pushers on one ref: exactly one wins; the other gets
//! [`Error::Precondition`] naming the ref (its objects stay, so a rerun is cheap).
//!
//! # Prune on the destination
//!
//! On a `file://` destination push holds the shared repository lock, so a local prune waits.
//! On object storage push holds a *declared lease* ([`crate::lease`]): before it relies on
//! anything in the destination it records the commits whose manifests it trusts, and before
//! it checks or sends objects, the pending manifests of the commits it writes. A concurrent
//! prune keeps all of those; a prune that started before the lease was written is waited for.
//! A push paused for longer than the lease's ttl stops before writing its commits.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use url::Url;

use crate::lease::{self, LeaseDecl, Role};
use crate::progress::Progress;
use crate::repo::Repo;
use crate::repo::refs::{parse_refspec, validate_ref_name};
use crate::repo::remote::RemotesDir;
use crate::sign::Signer;
use crate::store::{
    ContentBody, ContentSource, LockGuard, ObjectWrite, OpenOptions, RefExpect, RepoMode,
};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Where reachability manifests live in a destination repository.
pub const MANIFEST_DIR: &str = "extensions/push/manifests";
/// Where markers of unfinished pushes live in a destination repository.
pub const PENDING_DIR: &str = "extensions/push/pending";

const MANIFEST_MAGIC: &[u8; 8] = b"OTPUSHM1";

/// Default number of uploads (and existence checks) in flight.
pub const DEFAULT_JOBS: usize = 32;

/// How many commits back the fast-forward check looks for the destination's current commit.
const ANCESTRY_LIMIT: usize = 100_000;

/// Settings of a push.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Parents to push with each commit: 0 for the commit only, -1 for the whole history
    /// available locally.
    pub depth: i64,
    /// Compute and report, write nothing.
    pub dry_run: bool,
    /// Uploads and existence checks in flight (at least 1).
    pub jobs: usize,
    /// Move refs even when the destination's commit is not an ancestor of the pushed one.
    pub force: bool,
    /// Regenerate the destination's summary after the refs moved.
    pub update_summary: bool,
    /// Also send the local static deltas whose target is a pushed commit.
    pub static_deltas: bool,
    /// Sign the regenerated summary with these (`summary.sig`, as `ostree summary -u
    /// --sign/--gpg-sign` writes it).
    pub summary_signers: Vec<Arc<dyn Signer>>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            depth: 0,
            dry_run: false,
            jobs: DEFAULT_JOBS,
            force: false,
            update_summary: true,
            static_deltas: true,
            summary_signers: Vec::new(),
        }
    }
}

/// One ref a push moves (or would move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefUpdate {
    /// Name relative to `refs/heads/`.
    pub name: String,
    /// The destination's value before the push.
    pub old: Option<Checksum>,
    /// The pushed commit.
    pub new: Checksum,
}

/// What a push did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// The refs, in the order given.
    pub refs: Vec<RefUpdate>,
    /// Commits whose objects had to be sent (not already complete in the destination).
    pub commits: usize,
    /// Objects reachable from those commits that no trusted manifest lists.
    pub candidates: u64,
    /// Existence checks issued (only when resuming an interrupted push).
    pub checked: u64,
    /// Objects uploaded (or to upload).
    pub uploaded: u64,
    /// Bytes of those objects as stored locally.
    pub bytes: u64,
    /// An unfinished push was found, so candidates were checked first.
    pub resumed: bool,
    /// The summary was regenerated.
    pub summary_updated: bool,
    /// The summary was signed (`summary.sig` written).
    pub summary_signed: bool,
    /// Static deltas sent.
    pub deltas: usize,
    /// Detached commit metadata objects sent (new or changed).
    pub commitmeta: usize,
}

/// Encode a manifest: magic, then `type byte + 32 checksum bytes` per object, sorted.
pub fn encode_manifest(keys: &BTreeSet<ObjectKey>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MANIFEST_MAGIC.len() + keys.len() * 33);
    out.extend_from_slice(MANIFEST_MAGIC);
    for k in keys {
        out.push(k.ty as u8);
        out.extend_from_slice(&k.checksum.0);
    }
    out
}

/// Decode a manifest written by [`encode_manifest`].
pub fn decode_manifest(data: &[u8]) -> Result<Vec<ObjectKey>> {
    let body = data
        .strip_prefix(MANIFEST_MAGIC.as_slice())
        .filter(|b| b.len() % 33 == 0)
        .ok_or_else(|| Error::corrupted("Invalid push manifest"))?;
    body.chunks_exact(33)
        .map(|c| {
            let ty = ObjectType::from_u8(c[0])?;
            let mut b = [0u8; 32];
            b.copy_from_slice(&c[1..]);
            Ok(ObjectKey::new(Checksum(b), ty))
        })
        .collect()
}

fn manifest_path(c: &Checksum) -> String {
    format!("{MANIFEST_DIR}/{c}")
}

fn pending_path(c: &Checksum) -> String {
    format!("{PENDING_DIR}/{c}")
}

/// Open the destination of a push: a URL (`s3://…`, `file://…`), a remote of `local` whose
/// URL is a store URL, or a local path. With `create`, a missing repository is created in
/// archive mode (object-storage backends refuse a prefix that holds other data).
pub async fn open_destination(local: &Repo, dest: &str, create: bool) -> Result<Repo> {
    let url = destination_url(local, dest).await?;
    match Repo::open(&url, OpenOptions::default()).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_not_found() && create => {
            Repo::create(&url, RepoMode::Archive, OpenOptions::default()).await
        }
        Err(e) => Err(e),
    }
}

async fn destination_url(local: &Repo, dest: &str) -> Result<Url> {
    let looks_like_url = dest.contains("://");
    let looks_like_path = dest.starts_with('/') || dest.starts_with('.');
    if !looks_like_url
        && !looks_like_path
        && let Ok(remote) = local.remote(&RemotesDir::detect(local), dest).await
    {
        let u = remote.url()?;
        let parsed = crate::registry::repo_url(&u)?;
        if matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid(format!(
                "Remote \"{dest}\" has URL {u}, which is read-only over HTTP; push needs a \
                 store URL such as s3://BUCKET/PREFIX or file:///PATH"
            )));
        }
        return Ok(parsed);
    }
    crate::registry::repo_url(dest)
}

/// A local commit and what is known about it.
#[derive(Debug)]
struct Planned {
    commit: Checksum,
    /// Every object reachable from its tree (itself included); empty when complete.
    reachable: BTreeSet<ObjectKey>,
}

/// Push `refs` (`REF` or `REMOTE:REF`, resolved in `local`) to `dest` under
/// `refs/heads/<REF>`. See the module docs for what is sent and in which order.
pub async fn push(
    local: &Repo,
    dest: &Repo,
    refs: &[String],
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let jobs = opts.jobs.max(1);
    let dstore = dest.store().clone();
    let mut report = PushReport::default();

    // 1. What to push, and where the destination stands.
    let mut chain: Vec<Checksum> = Vec::new(); // newest first per ref; deduplicated below
    let mut parents_of_chain: Vec<Checksum> = Vec::new();
    for spec in refs {
        let (_, name) = parse_refspec(spec)?;
        validate_ref_name(&name)?;
        let new = local
            .resolve_rev(spec, false)
            .await?
            .ok_or_else(|| Error::not_found(format!("Refspec '{spec}' not found")))?;
        if local.is_commit_partial(&new).await? {
            return Err(Error::invalid(format!(
                "Commit {new} ({spec}) is partial in the local repository; pull it completely \
                 before pushing it"
            )));
        }
        let old = dstore.read_ref(&format!("heads/{name}")).await?;
        if let Some(o) = old
            && o != new
            && !opts.force
            && !is_ancestor(local, &o, &new).await?
        {
            return Err(Error::Precondition {
                what: format!(
                    "Ref {name} in {} is at {o}, which is not an ancestor of {new}; push with \
                     --force to replace it",
                    dest.url()
                ),
            });
        }
        let mut c = new;
        let mut depth = 0i64;
        loop {
            if !chain.contains(&c) {
                chain.push(c);
            }
            let parent = local.load_commit(&c).await?.parent;
            let Some(p) = parent else { break };
            if (opts.depth >= 0 && depth >= opts.depth)
                || !local
                    .has_object(&ObjectKey::new(p, ObjectType::Commit))
                    .await?
                || local.is_commit_partial(&p).await?
            {
                parents_of_chain.push(p);
                break;
            }
            depth += 1;
            c = p;
        }
        report.refs.push(RefUpdate { name, old, new });
    }

    // 2. Trusted manifests: the destination's refs, the pushed commits, their parents.
    let mut bases: Vec<Checksum> = report.refs.iter().filter_map(|r| r.old).collect();
    bases.extend(chain.iter().copied());
    bases.extend(parents_of_chain.iter().copied());
    bases.sort();
    bases.dedup();
    // Before relying on anything being in the destination: its lock (a local prune waits),
    // or on object storage a lease declaring those commits (a prune keeps their objects;
    // we wait for a prune that could have missed the lease). A dry run relies on nothing.
    // The markers of unfinished pushes are listed meanwhile (step 4): nothing is trusted
    // because of them, they only decide whether candidates are checked before uploading.
    let lease_and_manifests = async {
        let guard = if opts.dry_run {
            None
        } else {
            Some(match dstore.lease_table() {
                Some(t) => {
                    let decl = LeaseDecl::declared("push", bases.clone(), Vec::new());
                    lease::acquire(dstore.clone(), &t, Role::Writer, decl).await?
                }
                None => dest.lock(false).await?,
            })
        };
        let manifests: Vec<(Checksum, Vec<ObjectKey>)> = stream::iter(bases.clone())
            .map(|c| {
                let dstore = dstore.clone();
                async move {
                    let Some(data) = dstore.read_file(&manifest_path(&c)).await? else {
                        return Ok(None);
                    };
                    if !dstore.has(&ObjectKey::new(c, ObjectType::Commit)).await? {
                        return Ok(None);
                    }
                    Ok::<_, Error>(Some((c, decode_manifest(&data)?)))
                }
            })
            .buffer_unordered(jobs)
            .try_filter_map(|m| futures::future::ready(Ok(m)))
            .try_collect()
            .await?;
        Ok::<_, Error>((guard, manifests))
    };
    let (started, pending) = futures::join!(lease_and_manifests, dstore.list_files(PENDING_DIR));
    let (guard, manifests) = started?;
    let complete: HashSet<Checksum> = manifests.iter().map(|(c, _)| *c).collect();
    let known: HashSet<ObjectKey> = manifests.into_iter().flat_map(|(_, k)| k).collect();

    // 3. Local walk of the commits that are not complete in the destination.
    let mut planned = Vec::new();
    let mut needed: BTreeSet<ObjectKey> = BTreeSet::new();
    for c in chain.iter().filter(|c| !complete.contains(c)) {
        let mut reach = HashSet::new();
        local.traverse_commit(c, &mut reach).await?;
        let reachable: BTreeSet<ObjectKey> = reach.into_iter().collect();
        needed.extend(reachable.iter().filter(|k| !known.contains(k)).copied());
        planned.push(Planned {
            commit: *c,
            reachable,
        });
    }
    report.commits = planned.len();
    report.candidates = needed.len() as u64;

    // 4. Resuming: check what an interrupted push already sent.
    // Also when a commit is already there without a manifest (written by another tool, or a
    // push interrupted after its commit): its objects are probably there too.
    let pending = pending.unwrap_or_default();
    let mut foreign = false;
    if pending.is_empty() && !needed.is_empty() {
        for r in &report.refs {
            if r.old == Some(r.new) && !complete.contains(&r.new) {
                foreign = true;
            }
        }
    }
    report.resumed = (!pending.is_empty() || foreign) && !needed.is_empty();
    if opts.dry_run {
        if report.resumed {
            report.checked = drop_present(&dstore, &mut needed, jobs, progress).await?;
        }
        report.uploaded = needed.len() as u64;
        report.bytes = local_size(local, &needed, jobs).await?;
        progress.finish();
        return Ok(report);
    }
    let guard = guard.expect("taken unless dry run");

    // 5. Mark the push as unfinished: each commit's pending marker is its manifest, and the
    //    lease now declares them, so a prune keeps everything this push sends or finds.
    if !planned.is_empty() {
        let markers: Vec<(String, Bytes)> = planned
            .iter()
            .map(|p| {
                let data = Bytes::from(encode_manifest(&p.reachable));
                (pending_path(&p.commit), data)
            })
            .collect();
        stream::iter(markers)
            .map(|(path, data)| {
                let dstore = dstore.clone();
                async move { dstore.write_file(&path, data).await }
            })
            .buffer_unordered(jobs)
            .try_collect::<()>()
            .await?;
        let pending_commits = planned.iter().map(|p| p.commit).collect();
        lease::update(
            &guard,
            LeaseDecl::declared("push", bases.clone(), pending_commits),
        )
        .await?;
    }
    if report.resumed {
        report.checked = drop_present(&dstore, &mut needed, jobs, progress).await?;
    }
    report.uploaded = needed.len() as u64;
    report.bytes = local_size(local, &needed, jobs).await?;
    let (commits, objects): (Vec<ObjectKey>, Vec<ObjectKey>) = needed
        .iter()
        .copied()
        .partition(|k| k.ty == ObjectType::Commit);

    // 6. Send objects: content and trees, commitmeta, commits (oldest first).
    let archive_src = local.mode().is_archive();
    let mut objects = objects;
    // Content first, then dirmeta, then dirtrees (children before the trees naming them
    // is not needed for correctness: the commit comes last).
    objects.sort_by_key(|k| match k.ty {
        ObjectType::File => 0,
        ObjectType::DirMeta => 1,
        _ => 2,
    });
    progress.phase(
        &format!("Uploading ({:.1} MB)", report.bytes as f64 / 1e6),
        objects.len() as u64,
    );
    let sent = AtomicU64::new(0);
    stream::iter(objects)
        .map(|k| {
            let (dest, sent) = (&dstore, &sent);
            async move {
                copy_object(local, dest.as_ref(), k, archive_src).await?;
                sent.fetch_add(1, Ordering::Relaxed);
                progress.inc(1);
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(jobs)
        .try_collect::<()>()
        .await
        .map_err(|e| under_lease(&guard, e))?;

    // Detached metadata of every pushed commit (it may have been re-signed since).
    let commitmeta = async {
        for c in &chain {
            let key = ObjectKey::new(*c, ObjectType::CommitMeta);
            let ours = match local.store().get_raw(&key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            match dstore.get_raw(&key).await {
                Ok(theirs) if theirs == ours => continue,
                Ok(_) => dstore.delete(&key).await?,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            dstore.put(&key, ObjectWrite::Meta(ours)).await?;
            report.commitmeta += 1;
        }
        Ok::<_, Error>(())
    };
    commitmeta.await.map_err(|e| under_lease(&guard, e))?;
    // Commits, oldest first (a store with leases refuses them once the lease is lost).
    lease::check(&guard)?;
    for c in chain.iter().rev() {
        let key = ObjectKey::new(*c, ObjectType::Commit);
        if commits.contains(&key) {
            let bytes = local.store().get_raw(&key).await?;
            dest.put_commit_object(c, bytes).await?;
        }
    }
    dstore.sync().await?;
    for p in &planned {
        dstore
            .write_file(
                &manifest_path(&p.commit),
                Bytes::from(encode_manifest(&p.reachable)),
            )
            .await?;
        dstore.delete_file(&pending_path(&p.commit)).await?;
    }
    progress.finish();

    // 7. Static deltas ending at a pushed commit (their target is in place now), and their
    //    indexes.
    let delta_targets = if opts.static_deltas {
        push_static_deltas(local, dest, &chain, &mut report).await?
    } else {
        BTreeSet::new()
    };
    if !opts.update_summary {
        for t in &delta_targets {
            dest.reindex_static_deltas(Some(t)).await?;
        }
    }

    // 8. Refs, compare-and-swap from the values read at the start.
    let mut moved = false;
    for r in &report.refs {
        if r.old == Some(r.new) {
            continue;
        }
        let name = format!("heads/{}", r.name);
        let expect = r.old.map_or(RefExpect::Absent, RefExpect::Value);
        match dstore.update_ref(&name, expect, Some(r.new)).await {
            Ok(()) => moved = true,
            Err(Error::Precondition { what }) if what.contains(lease::LEASE_DIR) => {
                return Err(Error::Precondition { what });
            }
            Err(Error::Precondition { .. }) => {
                let now = dstore.read_ref(&name).await.ok().flatten();
                let show = |c: Option<Checksum>| c.map_or("(none)".to_string(), |c| c.to_hex());
                return Err(Error::Precondition {
                    what: format!(
                        "Ref {} in {} moved while pushing (expected {}, now {}); it was not \
                         changed. The objects of {} are uploaded: push again to retry",
                        r.name,
                        dest.url(),
                        show(r.old),
                        show(now),
                        r.new
                    ),
                });
            }
            Err(e) => return Err(e),
        }
    }

    // 9. Summary (then its signature). Concurrent pushers may interleave; each re-reads the
    //    refs after writing and regenerates until the written summary matches what it sees
    //    (the last writer wins with a complete view), and signs exactly the bytes it reads
    //    back.
    let signing = !opts.summary_signers.is_empty();
    if opts.update_summary
        && (moved || signing || !delta_targets.is_empty() || dest.read_summary().await?.is_none())
    {
        for _ in 0..8 {
            let s = write_summary(dest, !delta_targets.is_empty()).await?;
            let listed: BTreeMap<String, Checksum> = s
                .refs
                .iter()
                .filter_map(|r| r.checksum().ok().map(|c| (r.name.clone(), c)))
                .collect();
            let now: BTreeMap<String, Checksum> = dstore
                .list_refs("heads/")
                .await?
                .into_iter()
                .map(|(n, c)| (n["heads/".len()..].to_string(), c))
                .collect();
            if dest.collection_id().is_none() && listed != now {
                continue;
            }
            if !signing {
                break;
            }
            if sign_summary(dest, &opts.summary_signers).await? {
                report.summary_signed = true;
                break;
            }
        }
        report.summary_updated = true;
    }
    drop(guard);
    Ok(report)
}

/// The error of a step taken under `guard`: the lease's own error when it expired meanwhile.
/// A push paused past its lease sees its requests in flight time out when it resumes, but
/// the cause to report is the pause (and that nothing was published).
fn under_lease(guard: &LockGuard, e: Error) -> Error {
    match lease::check(guard) {
        Err(expired) => expired,
        Ok(()) => e,
    }
}

/// Regenerate and write the destination's summary (removing a stale `summary.sig`). With
/// `reindex` (this push sent static deltas) it is [`Repo::regenerate_summary`], which also
/// rewrites every delta index; otherwise the delta indexes are left as they are (this push
/// changed no delta, and the summary lists the deltas present either way), which spares the
/// index rebuild its listings and its own lease.
async fn write_summary(dest: &Repo, reindex: bool) -> Result<crate::repo::summary::Summary> {
    if reindex {
        return dest.regenerate_summary(None).await;
    }
    let summary = dest.generate_summary(None).await?;
    let store = dest.store();
    store
        .write_file("summary", Bytes::from(summary.to_bytes()))
        .await?;
    store.delete_file("summary.sig").await?;
    Ok(summary)
}

/// Bytes `keys` occupy in the local repository.
async fn local_size(local: &Repo, keys: &BTreeSet<ObjectKey>, jobs: usize) -> Result<u64> {
    stream::iter(keys.iter().copied())
        .map(|k| async move { local.store().object_size(&k).await })
        .buffer_unordered(jobs)
        .try_fold(0u64, |a, n| futures::future::ready(Ok(a + n)))
        .await
}

/// Remove from `needed` what the destination already has (existence checks, concurrent and
/// bounded); returns how many were checked.
async fn drop_present(
    dstore: &Arc<dyn crate::store::ObjectStore>,
    needed: &mut BTreeSet<ObjectKey>,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<u64> {
    let keys: Vec<ObjectKey> = needed.iter().copied().collect();
    progress.phase("Checking objects", keys.len() as u64);
    let present: Vec<bool> = stream::iter(keys.chunks(256).map(<[ObjectKey]>::to_vec))
        .map(|chunk| {
            let dstore = dstore.clone();
            async move {
                let r = dstore.has_many(&chunk).await;
                progress.inc(chunk.len() as u64);
                r
            }
        })
        .buffered(jobs.div_ceil(32).max(1))
        .try_concat()
        .await?;
    for (k, p) in keys.iter().zip(present) {
        if p {
            needed.remove(k);
        }
    }
    Ok(keys.len() as u64)
}

/// Sign the destination's summary as it is now, replacing `summary.sig`; false when the
/// summary changed meanwhile (a concurrent pusher: regenerate and sign again).
async fn sign_summary(dest: &Repo, signers: &[Arc<dyn Signer>]) -> Result<bool> {
    let store = dest.store();
    let summary = store
        .read_file("summary")
        .await?
        .ok_or_else(|| Error::not_found("opening summary: No such file or directory"))?;
    let mut md = crate::objects::Metadata::new();
    for s in signers {
        crate::sign::append_signature(&mut md, s.metadata_key(), s.sign(&summary)?);
    }
    store
        .write_file("summary.sig", Bytes::from(md.to_bytes()))
        .await?;
    Ok(store.read_file("summary").await?.as_deref() == Some(&summary[..]))
}

/// Copy the local static deltas whose target is one of `commits` (every file of the delta,
/// the superblock last, so a half-copied delta is never listed); a delta whose superblock
/// the destination already has byte for byte is skipped. Returns the targets sent to.
async fn push_static_deltas(
    local: &Repo,
    dest: &Repo,
    commits: &[Checksum],
    report: &mut PushReport,
) -> Result<BTreeSet<Checksum>> {
    let mut targets = BTreeSet::new();
    let wanted: HashSet<&Checksum> = commits.iter().collect();
    for name in local.list_static_deltas().await? {
        if !wanted.contains(&name.to) {
            continue;
        }
        let sb_path = name.superblock_path();
        let Some(sb) = local.store().read_file(&sb_path).await? else {
            continue;
        };
        if dest.store().read_file(&sb_path).await?.as_deref() == Some(&sb[..]) {
            continue;
        }
        let files = local
            .store()
            .list_files(&format!("{}/", name.dir()))
            .await?;
        let parts: Vec<String> = files.into_iter().filter(|f| *f != sb_path).collect();
        stream::iter(parts)
            .map(|f| {
                let (from, to) = (local.store().clone(), dest.store().clone());
                let name = name.to_string();
                async move {
                    let data = from.read_file(&f).await?.ok_or_else(|| {
                        Error::not_found(format!("Static delta {name}: {f} vanished"))
                    })?;
                    to.write_file(&f, data).await
                }
            })
            .buffer_unordered(8)
            .try_collect::<()>()
            .await?;
        dest.store().write_file(&sb_path, sb).await?;
        report.deltas += 1;
        targets.insert(name.to);
    }
    Ok(targets)
}

/// True when `old` is `new` or one of its ancestors in the local history.
async fn is_ancestor(local: &Repo, old: &Checksum, new: &Checksum) -> Result<bool> {
    let mut c = *new;
    for _ in 0..ANCESTRY_LIMIT {
        if c == *old {
            return Ok(true);
        }
        let commit = match local.load_commit(&c).await {
            Ok(commit) => commit,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        match commit.parent {
            Some(p) => c = p,
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// Copy one object from `local` into `dest` (create-only; an object already there is kept).
async fn copy_object(
    local: &Repo,
    dest: &dyn crate::store::ObjectStore,
    key: ObjectKey,
    archive_src: bool,
) -> Result<()> {
    let write = if key.ty.is_meta() {
        ObjectWrite::Meta(local.store().get_raw(&key).await?)
    } else if archive_src {
        ObjectWrite::Archived(local.store().get_raw(&key).await?)
    } else {
        let c = local.store().get(&key).await?.into_content()?;
        let source = match c.body {
            ContentBody::Empty => ContentSource::Bytes(Bytes::new()),
            ContentBody::Bytes(b) => ContentSource::Bytes(b),
            ContentBody::Reader(mut r) => match local.store().local_path(&key) {
                Some(p) => ContentSource::Path(p),
                None => {
                    let buf = tokio::task::spawn_blocking(move || {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut r, &mut buf)
                            .map(|_| buf)
                            .map_err(|e| Error::io("reading a content object", e))
                    })
                    .await
                    .map_err(|e| Error::Other(format!("background task failed: {e}")))??;
                    ContentSource::Bytes(Bytes::from(buf))
                }
            },
        };
        ObjectWrite::Content {
            meta: c.meta,
            size: c.size,
            source,
        }
    };
    dest.put(&key, write).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let keys: BTreeSet<ObjectKey> = [
            ObjectKey::new(Checksum([1; 32]), ObjectType::File),
            ObjectKey::new(Checksum([2; 32]), ObjectType::DirTree),
            ObjectKey::new(Checksum([3; 32]), ObjectType::Commit),
        ]
        .into_iter()
        .collect();
        let data = encode_manifest(&keys);
        assert_eq!(data.len(), 8 + 3 * 33);
        let back: BTreeSet<ObjectKey> = decode_manifest(&data)
            .expect("valid manifest")
            .into_iter()
            .collect();
        assert_eq!(back, keys);
        assert!(decode_manifest(b"OTPUSHM1x").is_err());
        assert!(decode_manifest(b"garbage").is_err());
    }
}
