//! Pruning: deleting the objects no ref (or, without `refs_only`, no commit) still needs
//! (`ostree_repo_prune`, `ostree_repo_prune_from_reachable` and the selective modes of
//! `ostree prune`), deleting single commits, and pruning static deltas.
//!
//! # What is never deleted
//!
//! * Everything reachable from a ref: local refs, remote refs, collection refs in
//!   `refs/mirrors/`, and therefore deployments, which the sysroot pins with
//!   `refs/heads/ostree/<bootversion>/<subbootversion>/<index>` refs.
//! * Without `refs_only`, everything reachable from any commit present, partial commits
//!   included (their missing directories are skipped, not an error).
//!
//! # Kill safety
//!
//! Deletion is ordered so that a prune killed at any instant leaves a repository that fsck
//! passes: unreachable commits go first (detached metadata, then the commit, then its
//! tombstone and `commitpartial` marker), then the other objects. A commit is thus never
//! left behind without the tree it references. Callers hold the exclusive repository lock
//! ([`Repo::lock`]) for the whole operation, so no concurrent commit can gain a reference to
//! an object being deleted. On object storage that lock is a prune marker and writers hold
//! leases ([`crate::lease`]): prune keeps what live writers rely on, and objects younger
//! than the oldest live lease (or the grace period).
//!
//! The uncompressed-objects cache of an archive repository loses the entries of the content
//! objects deleted (see [`super::ucache`]).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::Repo;
use super::refs::CollectionRefFilter;
use crate::gvariant::Variant;
use crate::lease::Protection;
use crate::objects::{Commit, DirTree, Metadata};
use crate::store::{ListedObject, ObjectStore, ObjectWrite};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// How many object reads or deletions run at once.
const CONCURRENCY: usize = 32;

/// Objects per bulk deletion on object storage (S3's DeleteObjects limit).
const BULK_DELETE: usize = 1000;

/// Deletion batches run at once on stores without leases (local ones).
const DELETE_TASKS: usize = 8;

/// Most objects in one deletion batch on stores without leases.
const DELETE_BATCH: usize = 256;

/// What to prune (the options of `ostree prune`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneOptions {
    /// Only count what would be deleted (`--no-prune`).
    pub no_prune: bool,
    /// Reachability from refs only, not from every commit (`--refs-only`).
    pub refs_only: bool,
    /// Parents to keep below each starting commit; -1 for all (`--depth`).
    pub depth: i32,
    /// Only consider commit objects (`--commit-only`).
    pub commit_only: bool,
    /// Keep the commits of each ref not older than this time (seconds since the epoch),
    /// besides the ref's own commit (`--keep-younger-than`).
    pub keep_younger_than: Option<u64>,
    /// Per-ref depths overriding the others, by ref name as `ostree refs` lists it
    /// (`--retain-branch-depth=REF=DEPTH`).
    pub retain_branch_depth: Vec<(String, i32)>,
    /// Prune only these refs; the others keep their whole history (`--only-branch`).
    pub only_branches: Vec<String>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            no_prune: false,
            refs_only: false,
            depth: -1,
            commit_only: false,
            keep_younger_than: None,
            retain_branch_depth: Vec::new(),
            only_branches: Vec::new(),
        }
    }
}

impl PruneOptions {
    /// True when a selective mode (per-ref depths, age, only some refs) is asked for; these
    /// imply reachability from refs only.
    pub fn is_selective(&self) -> bool {
        self.keep_younger_than.is_some()
            || !self.retain_branch_depth.is_empty()
            || !self.only_branches.is_empty()
    }
}

/// What a prune found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Objects considered (commits only with `commit_only`).
    pub objects_total: u64,
    /// Objects deleted (or that would be, with `no_prune`).
    pub objects_pruned: u64,
    /// Their storage size in bytes.
    pub bytes_freed: u64,
    /// Unreferenced objects kept because writers holding leases may rely on them, or
    /// because they are younger than the grace period (object storage; [`crate::lease`]).
    pub objects_kept: u64,
}

/// The objects a prune considers: what `list_loose_objects` reports (content, dirtree,
/// dirmeta, commit; never detached metadata or tombstones).
fn prunable(ty: ObjectType) -> bool {
    matches!(
        ty,
        ObjectType::File | ObjectType::DirTree | ObjectType::DirMeta | ObjectType::Commit
    )
}

/// Bytes of a tombstone for `commit`: `{"commit": <hex checksum as a bytestring>}`.
pub fn tombstone_bytes(commit: &Checksum) -> Vec<u8> {
    let mut hex = commit.to_hex().into_bytes();
    hex.push(0);
    let mut md = Metadata::new();
    md.insert("commit", Variant::Bytes(hex));
    md.to_bytes()
}

/// A metadata object from the first store that has it; `None` when none has.
async fn get_meta(stores: &[Arc<dyn ObjectStore>], key: &ObjectKey) -> Result<Option<Bytes>> {
    for s in stores {
        match s.get(key).await {
            Ok(o) => return o.into_meta().map(Some),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Breadth-first walk of dirtrees, reading each level's new dirtrees concurrently.
async fn traverse_trees(
    stores: &[Arc<dyn ObjectStore>],
    roots: Vec<Checksum>,
    ignore_missing: bool,
    reachable: &mut HashSet<ObjectKey>,
) -> Result<()> {
    let mut frontier: Vec<Checksum> = roots
        .into_iter()
        .filter(|t| reachable.insert(ObjectKey::new(*t, ObjectType::DirTree)))
        .collect();
    while !frontier.is_empty() {
        let loaded: Vec<Option<DirTree>> = futures::stream::iter(std::mem::take(&mut frontier))
            // Concurrent reads within this task, not one task each: a local store answers
            // `get` at once (a task per dirtree cost more in hand-offs between threads than
            // the reads themselves), object storage overlaps its requests.
            .map(|t| {
                let stores = stores.to_vec();
                async move {
                    let key = ObjectKey::new(t, ObjectType::DirTree);
                    match get_meta(&stores, &key).await? {
                        Some(b) => DirTree::from_bytes(&b).map(Some).map_err(|e| {
                            Error::corrupted(format!("Corrupted dirtree object {t}: {e}"))
                        }),
                        None if ignore_missing => Ok(None),
                        None => Err(Error::not_found(format!(
                            "No such metadata object {t}.dirtree"
                        ))),
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for dt in loaded.into_iter().flatten() {
            for (_, f) in dt.files {
                reachable.insert(ObjectKey::new(f, ObjectType::File));
            }
            for (_, t, m) in dt.dirs {
                reachable.insert(ObjectKey::new(m, ObjectType::DirMeta));
                if reachable.insert(ObjectKey::new(t, ObjectType::DirTree)) {
                    frontier.push(t);
                }
            }
        }
    }
    Ok(())
}

impl Repo {
    /// Add to `reachable` every object reachable from `commit` and from up to `depth` of its
    /// parents (-1: all), as `ostree_repo_traverse_commit_with_flags`: the walk stops at a
    /// commit already in `reachable` or missing; a partial commit's missing directories are
    /// skipped. With `commit_only`, only commit objects are added.
    pub async fn traverse_commit_depth(
        &self,
        commit: &Checksum,
        depth: i32,
        commit_only: bool,
        reachable: &mut HashSet<ObjectKey>,
    ) -> Result<()> {
        let stores = self.meta_sources().await?;
        let mut cur = *commit;
        let mut depth = depth;
        loop {
            let key = ObjectKey::new(cur, ObjectType::Commit);
            if reachable.contains(&key) {
                break;
            }
            let Some(bytes) = get_meta(&stores, &key).await? else {
                break;
            };
            let c = Commit::from_bytes(&bytes)
                .map_err(|e| Error::corrupted(format!("Corrupted commit object {cur}: {e}")))?;
            let partial = self.is_commit_partial(&cur).await?;
            reachable.insert(key);
            if !commit_only {
                reachable.insert(ObjectKey::new(c.root_meta, ObjectType::DirMeta));
                traverse_trees(&stores, vec![c.root_tree], partial, reachable).await?;
            }
            match c.parent {
                Some(p) if depth == -1 || depth > 0 => {
                    cur = p;
                    if depth > 0 {
                        depth -= 1;
                    }
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The stores metadata is read from: this repository's, then its parents' (`core.parent`),
    /// as `ostree_repo_load_variant` falls back to the parent repository.
    async fn meta_sources(&self) -> Result<Vec<Arc<dyn ObjectStore>>> {
        let mut out = vec![self.store().clone()];
        let mut cur = self.clone();
        // A parent chain longer than this is surely a loop.
        for _ in 0..8 {
            match cur.parent_repo().await? {
                Some(p) => {
                    out.push(p.store().clone());
                    cur = p;
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Add what every ref needs (`ostree_repo_traverse_reachable_refs`): local and remote
    /// refs, then collection refs other than remotes' (mirrors).
    pub async fn traverse_reachable_refs(
        &self,
        depth: i32,
        commit_only: bool,
        reachable: &mut HashSet<ObjectKey>,
    ) -> Result<()> {
        for c in self.list_refs_ext(None, true, false).await?.into_values() {
            self.traverse_commit_depth(&c, depth, commit_only, reachable)
                .await?;
        }
        let filter = CollectionRefFilter {
            exclude_remotes: true,
            exclude_mirrors: false,
        };
        for c in self.list_collection_refs(None, filter).await?.into_values() {
            self.traverse_commit_depth(&c, depth, commit_only, reachable)
                .await?;
        }
        Ok(())
    }

    /// The commits of one ref younger than `cutoff` (`traverse_keep_younger_than`): the ref's
    /// commit always, then its ancestors while their timestamp is ≥ `cutoff`.
    async fn traverse_keep_younger_than(
        &self,
        commit: &Checksum,
        cutoff: u64,
        commit_only: bool,
        reachable: &mut HashSet<ObjectKey>,
    ) -> Result<()> {
        self.traverse_commit_depth(commit, 0, commit_only, reachable)
            .await?;
        let stores = self.meta_sources().await?;
        let mut next = *commit;
        loop {
            let key = ObjectKey::new(next, ObjectType::Commit);
            let Some(bytes) = get_meta(&stores, &key).await? else {
                break;
            };
            let c = Commit::from_bytes(&bytes)
                .map_err(|e| Error::corrupted(format!("Corrupted commit object {next}: {e}")))?;
            if c.timestamp < cutoff {
                break;
            }
            self.traverse_commit_depth(&next, 0, commit_only, reachable)
                .await?;
            match c.parent {
                Some(p) => next = p,
                None => break,
            }
        }
        Ok(())
    }

    /// What a prune must keep for writers holding leases on a store shared without a lock
    /// (object storage; [`crate::lease`]); `None` for other stores. Read it after taking the
    /// exclusive lock and before reading the refs.
    pub async fn lease_protection(&self) -> Result<Option<Protection>> {
        match self.store().lease_table() {
            Some(t) => Ok(Some(crate::lease::protection(self, &t).await?)),
            None => Ok(None),
        }
    }

    /// Prune as `ostree prune` does with `opts`. The caller holds the exclusive repository
    /// lock.
    pub async fn prune(&self, opts: &PruneOptions) -> Result<PruneStats> {
        // Leases first: a writer that finished after this reading moved its refs before it.
        let protection = self.lease_protection().await?;
        let mut reachable = HashSet::new();
        if !opts.is_selective() {
            if opts.refs_only {
                self.traverse_reachable_refs(opts.depth, opts.commit_only, &mut reachable)
                    .await?;
            } else {
                let commits = self.list_commits_starting_with("").await?;
                for c in commits {
                    self.traverse_commit_depth(&c, opts.depth, opts.commit_only, &mut reachable)
                        .await?;
                }
            }
        } else {
            let all_refs = self.list_refs_ext(None, true, false).await?;
            let mut depths: std::collections::HashMap<String, i32> =
                opts.retain_branch_depth.iter().cloned().collect();
            if !opts.only_branches.is_empty() {
                for b in &opts.only_branches {
                    self.resolve_rev(b, false).await?;
                }
                for name in all_refs.keys() {
                    if !opts.only_branches.contains(name) && !depths.contains_key(name) {
                        depths.insert(name.clone(), -1);
                    }
                }
            }
            for (name, c) in &all_refs {
                if let Some(d) = depths.get(name) {
                    self.traverse_commit_depth(c, *d, opts.commit_only, &mut reachable)
                        .await?;
                } else if let Some(cutoff) = opts.keep_younger_than {
                    self.traverse_keep_younger_than(c, cutoff, opts.commit_only, &mut reachable)
                        .await?;
                } else {
                    self.traverse_commit_depth(c, opts.depth, opts.commit_only, &mut reachable)
                        .await?;
                }
            }
        }
        self.prune_unreachable(
            &reachable,
            protection.as_ref(),
            opts.no_prune,
            opts.commit_only,
        )
        .await
    }

    /// Delete every object not in `reachable` (`ostree_repo_prune_from_reachable`), then the
    /// static deltas whose target commit is gone and stale cached summaries. With
    /// `commit_only`, only commit objects are considered. The caller holds the exclusive
    /// repository lock. On a store with leases, what live writers rely on is kept (read
    /// here; [`Repo::prune`] reads it before the refs, which is what makes it exact).
    pub async fn prune_from_reachable(
        &self,
        reachable: &HashSet<ObjectKey>,
        no_prune: bool,
        commit_only: bool,
    ) -> Result<PruneStats> {
        let protection = self.lease_protection().await?;
        self.prune_unreachable(reachable, protection.as_ref(), no_prune, commit_only)
            .await
    }

    async fn prune_unreachable(
        &self,
        reachable: &HashSet<ObjectKey>,
        protection: Option<&Protection>,
        no_prune: bool,
        commit_only: bool,
    ) -> Result<PruneStats> {
        let ty = commit_only.then_some(ObjectType::Commit);
        let all: Vec<ListedObject> = self
            .store()
            .list_detailed(ty)
            .try_filter(|o| futures::future::ready(prunable(o.key.ty)))
            .try_collect()
            .await?;
        let mut stats = PruneStats {
            objects_total: all.len() as u64,
            ..Default::default()
        };
        let unreachable: Vec<ListedObject> = all
            .into_iter()
            .filter(|o| !reachable.contains(&o.key))
            .collect();
        let before = unreachable.len();
        let (commits, others): (Vec<ListedObject>, Vec<ListedObject>) = unreachable
            .into_iter()
            .filter(|o| protection.is_none_or(|p| !p.keeps(&o.key, o.modified)))
            .partition(|o| o.key.ty == ObjectType::Commit);
        stats.objects_pruned = (commits.len() + others.len()) as u64;
        stats.objects_kept = before as u64 - stats.objects_pruned;
        let leases = self.store().lease_table();
        // A prune whose marker expired (paused past its ttl) must not delete any more.
        let still_held = || leases.as_ref().map_or(Ok(()), |t| t.check());

        // Commits first: a kill after this phase leaves only unreferenced trees behind.
        let tombstones = self.config().core_bool("tombstone-commits", false)?;
        for o in &commits {
            stats.bytes_freed += match o.size {
                Some(n) => n,
                None => self.store().object_size(&o.key).await?,
            };
            if !no_prune {
                still_held()?;
                self.delete_commit_object(&o.key.checksum, tombstones)
                    .await?;
                if leases.is_some() {
                    self.store()
                        .delete_file(&format!("{}/{}", crate::push::MANIFEST_DIR, o.key.checksum))
                        .await?;
                }
            }
        }
        if !no_prune && !commits.is_empty() {
            self.store().sync().await?;
        }
        let store = self.store().clone();
        let deleted_files: Vec<Checksum> = others
            .iter()
            .filter(|o| o.key.ty == ObjectType::File)
            .map(|o| o.key.checksum)
            .collect();
        if leases.is_some() {
            // Object storage: sizes come with the listing, deletions go in bulk.
            for chunk in others.chunks(BULK_DELETE) {
                stats.bytes_freed += chunk.iter().map(|o| o.size.unwrap_or(0)).sum::<u64>();
                if !no_prune {
                    still_held()?;
                    let keys: Vec<ObjectKey> = chunk.iter().map(|o| o.key).collect();
                    store.delete_many(&keys).await?;
                }
            }
        } else {
            // Sizes first (a local store answers at once), then deletions in batches, a few
            // at once: a store deletes a batch in one go (the fs store: one blocking task per
            // batch rather than a hand-off per object), batches overlap where a deletion
            // waits (a filesystem mounted with `discard` makes `unlink` wait).
            let listed: Vec<(ObjectKey, Option<u64>)> =
                others.iter().map(|o| (o.key, o.size)).collect();
            let sizes: Vec<u64> = futures::stream::iter(listed)
                .map(|(key, size)| {
                    let store = store.clone();
                    async move {
                        match size {
                            Some(n) => Ok::<u64, Error>(n),
                            None => store.object_size(&key).await,
                        }
                    }
                })
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            stats.bytes_freed += sizes.iter().sum::<u64>();
            if !no_prune {
                let keys: Vec<ObjectKey> = others.iter().map(|o| o.key).collect();
                let batch = keys.len().div_ceil(DELETE_TASKS).clamp(1, DELETE_BATCH);
                let chunks: Vec<Vec<ObjectKey>> = keys.chunks(batch).map(<[_]>::to_vec).collect();
                futures::stream::iter(chunks)
                    .map(|chunk| {
                        let store = store.clone();
                        async move {
                            store
                                .delete_many(&chunk)
                                .await
                                .map_err(|e| Error::Other(format!("Deleting objects: {e}")))
                        }
                    })
                    .buffer_unordered(DELETE_TASKS)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
        }

        // Uncompressed-cache entries of deleted content objects could never be used again
        // (ostree leaves them behind); checkouts linked to them keep their copy.
        if !no_prune
            && !deleted_files.is_empty()
            && let Some(cache) = super::ucache::UncompressedCache::of(self)
        {
            tokio::task::spawn_blocking(move || cache.remove_entries(&deleted_files))
                .await
                .map_err(|e| Error::Other(format!("prune task failed: {e}")))??;
        }

        if !no_prune {
            self.prune_static_deltas(None).await?;
            self.prune_summary_cache().await?;
            self.store().sync().await?;
        }
        Ok(stats)
    }

    /// Delete a commit object as `ostree_repo_delete_object` does: its detached metadata,
    /// the commit, then (with `tombstone`) a tombstone recording the deletion, and any
    /// `commitpartial` marker. A missing commit is an error.
    pub async fn delete_commit_object(&self, commit: &Checksum, tombstone: bool) -> Result<()> {
        let key = ObjectKey::new(*commit, ObjectType::Commit);
        if !self.store().has(&key).await? {
            return Err(Error::not_found(format!(
                "Deleting object {commit}.commit: No such file or directory"
            )));
        }
        self.store()
            .delete(&ObjectKey::new(*commit, ObjectType::CommitMeta))
            .await?;
        self.store().delete(&key).await?;
        if tombstone {
            self.store()
                .put(
                    &ObjectKey::new(*commit, ObjectType::TombstoneCommit),
                    ObjectWrite::Meta(tombstone_bytes(commit).into()),
                )
                .await?;
        }
        self.store()
            .delete_file(&format!("state/{commit}.commitpartial"))
            .await
    }

    /// `ostree prune --delete-commit`: refuse a commit any ref (collection refs of remotes
    /// aside) points to, turn on `core.tombstone-commits`, delete the commit (its tree stays
    /// until the next prune).
    pub async fn prune_delete_commit(&self, commit: &Checksum) -> Result<()> {
        for (name, c) in self.list_refs_ext(None, true, false).await? {
            if c == *commit {
                return Err(Error::invalid(format!(
                    "Commit '{commit}' is referenced by '{name}'"
                )));
            }
        }
        let filter = CollectionRefFilter {
            exclude_remotes: true,
            exclude_mirrors: false,
        };
        for (cr, c) in self.list_collection_refs(None, filter).await? {
            if c == *commit {
                return Err(Error::invalid(format!(
                    "Commit '{commit}' is referenced by ({}, {})",
                    cr.collection_id, cr.ref_name
                )));
            }
        }
        let mut config = self.config();
        if !config
            .core_bool("tombstone-commits", false)
            .unwrap_or(false)
        {
            config.keyfile.set("core", "tombstone-commits", "true");
            self.write_config(config).await?;
        }
        self.delete_commit_object(commit, true).await?;
        self.store().sync().await
    }

    /// Delete static deltas (`ostree_repo_prune_static_deltas`): those targeting `commit`, or
    /// without one, those whose target commit is not in the repository.
    pub async fn prune_static_deltas(&self, commit: Option<&Checksum>) -> Result<()> {
        for name in self.list_static_deltas().await? {
            let drop = match commit {
                Some(c) => name.to == *c,
                None => {
                    !self
                        .store()
                        .has(&ObjectKey::new(name.to, ObjectType::Commit))
                        .await?
                }
            };
            if drop {
                // Superblock first: a kill never leaves a listed delta with parts missing.
                self.delete_static_delta(&name).await?;
            }
        }
        Ok(())
    }

    /// Remove cached remote summaries of remotes that no longer exist (`_ostree_repo_prune_tmp`).
    async fn prune_summary_cache(&self) -> Result<()> {
        let remotes: HashSet<String> = self
            .remotes_local(&super::remote::RemotesDir::detect(self))?
            .into_iter()
            .map(|r| r.name)
            .collect();
        for f in self.store().list_files("tmp/cache/summaries/").await? {
            let Some(name) = f.strip_prefix("tmp/cache/summaries/") else {
                continue;
            };
            if name.contains('/') {
                continue;
            }
            let remote = name.strip_suffix(".sig").unwrap_or(name);
            if !remotes.contains(remote) {
                self.store().delete_file(&f).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstone_matches_ostree() {
        // FORMATS.md §1.6: 'commit' key, `ay` value = hex checksum + NUL.
        let c = Checksum([0xdf; 32]);
        let b = tombstone_bytes(&c);
        assert!(b.starts_with(b"commit\0"));
        let md = Metadata::from_bytes(&b).unwrap();
        let v = md.get("commit").unwrap().as_bytes().unwrap();
        assert_eq!(&v[..64], c.to_hex().as_bytes());
        assert_eq!(v[64], 0);
    }
}
