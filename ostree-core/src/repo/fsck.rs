//! Verifying a repository: every ref's commit exists, and every object reachable from every
//! complete commit hashes to its name (content re-hashed from its decoded form, so archive
//! and bare objects are both checked end to end). Objects are verified in parallel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;

use super::Repo;
use crate::content::check;
use crate::objects::{Commit, DirMeta, DirTree, Metadata, content_checksum};
use crate::progress::{NoProgress, Progress};
use crate::store::ObjectRead;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Objects verified at once when the store is not local (each is a GET).
const REMOTE_PARALLELISM: usize = 32;

/// fsck options.
#[derive(Clone, Default)]
pub struct FsckOptions {
    /// Delete corrupted objects (and mark their commits partial).
    pub delete: bool,
    /// Keep going after a corrupted object instead of stopping at the first.
    pub all: bool,
    /// Check each ref's commit lists the ref in its bindings (`--verify-bindings`).
    pub verify_bindings: bool,
    /// Check every ref a commit's bindings name points back to it (`--verify-back-refs`,
    /// implies `verify_bindings`).
    pub verify_back_refs: bool,
    /// Replace commits whose parent is missing by tombstones (`--add-tombstones`).
    pub add_tombstones: bool,
    /// Progress sink.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for FsckOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsckOptions")
            .field("delete", &self.delete)
            .field("all", &self.all)
            .field("verify_bindings", &self.verify_bindings)
            .field("verify_back_refs", &self.verify_back_refs)
            .field("add_tombstones", &self.add_tombstones)
            .finish()
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsckProblem {
    /// An object a commit needs is absent.
    Missing {
        /// The object.
        key: ObjectKey,
        /// Commits that reach it.
        commits: Vec<Checksum>,
    },
    /// An object does not verify; `message` is ostree-style text.
    Corrupted {
        /// The object.
        key: ObjectKey,
        /// What is wrong, prefixed with the commits reaching it.
        message: String,
        /// Whether it was deleted (`--delete`).
        deleted: bool,
    },
}

/// What fsck found.
#[derive(Clone, Debug, Default)]
pub struct FsckReport {
    /// Complete commits whose reachable objects were verified.
    pub commits_verified: usize,
    /// Commits skipped because they are partial.
    pub partial_commits: usize,
    /// Number of objects verified.
    pub objects_checked: usize,
    /// Problems in the order found.
    pub problems: Vec<FsckProblem>,
    /// Commits newly marked partial because objects were missing or deleted.
    pub marked_partial: Vec<Checksum>,
    /// Partial commits marked so by an earlier fsck (`--delete`): still corruption.
    pub fsck_partial_commits: usize,
    /// Commits replaced by tombstones (`add_tombstones`).
    pub tombstones_added: Vec<Checksum>,
}

impl FsckReport {
    /// True if any corruption or missing object was found.
    pub fn found_corruption(&self) -> bool {
        !self.problems.is_empty()
    }
}

impl Repo {
    /// Verify one object; errors are ostree-worded (`fsck content object X: Corrupted file
    /// object; checksum expected='…' actual='…'`).
    pub async fn fsck_object(&self, key: &ObjectKey) -> Result<()> {
        // An archive content object stored as a local file: open, inflate and hash it in one
        // blocking task (no round trip through the store's own blocking pool first).
        if key.ty == ObjectType::File
            && self.mode() == crate::store::RepoMode::Archive
            && let Some(p) = self.store().local_path(key)
        {
            let key = *key;
            let direct = tokio::task::spawn_blocking(move || -> Option<Result<()>> {
                let f = match std::fs::File::open(&p) {
                    Ok(f) => f,
                    // Gone meanwhile: let the store answer.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    Err(e) => return Some(Err(Error::io_path("Opening content object", &p, e))),
                };
                Some(match crate::content::open_archived_file(f, 1 << 20) {
                    Ok(content) => verify_object(&key, ObjectRead::Content(content)),
                    // Inflated whole on open: name the object as a failed read would.
                    Err(Error::Corrupted(e)) => Err(Error::Corrupted(format!(
                        "fsck content object {}: reading content: {e}",
                        key.checksum
                    ))),
                    Err(e) => Err(e),
                })
            })
            .await
            .map_err(|e| Error::Other(format!("fsck worker failed: {e}")))?;
            if let Some(r) = direct {
                return r;
            }
        }
        let obj = self.store().get(key).await?;
        let key = *key;
        tokio::task::spawn_blocking(move || verify_object(&key, obj))
            .await
            .map_err(|e| Error::Other(format!("fsck worker failed: {e}")))?
    }

    /// Run fsck over the whole repository.
    pub async fn fsck(&self, opts: &FsckOptions) -> Result<FsckReport> {
        let progress: Arc<dyn Progress> = opts
            .progress
            .clone()
            .unwrap_or_else(|| Arc::new(NoProgress));
        let mut report = FsckReport::default();
        let verify_bindings = opts.verify_bindings || opts.verify_back_refs;
        // Each ref's commit must exist and verify: plain refs, then collection–refs.
        let mut ref_commits: Vec<(Option<String>, String, Checksum)> = Vec::new();
        for (refspec, c) in self.list_refs(None).await? {
            let name = refspec.split_once(':').map(|(_, r)| r).unwrap_or(&refspec);
            ref_commits.push((None, name.to_string(), c));
        }
        let filter = super::refs::CollectionRefFilter {
            exclude_remotes: true,
            exclude_mirrors: false,
        };
        for (cr, c) in self.list_collection_refs(None, filter).await? {
            ref_commits.push((Some(cr.collection_id), cr.ref_name, c));
        }
        for (collection, name, c) in &ref_commits {
            let what = match collection {
                Some(id) => format!("({id}, {name})"),
                None => name.clone(),
            };
            let key = ObjectKey::new(*c, ObjectType::Commit);
            if let Err(e) = self.fsck_object(&key).await {
                if e.is_not_found() {
                    return Err(Error::not_found(format!(
                        "Loading commit for ref {what}: No such metadata object {c}.commit"
                    )));
                }
                return Err(e);
            }
            if verify_bindings {
                let commit = self.load_commit(c).await?;
                super::refs::verify_bindings(collection.as_deref(), Some(name), &commit)
                    .map_err(|e| Error::invalid(format!("Commit {c}: {e}")))?;
            }
        }
        // Enumerate commits (partial ones included for the per-commit checks).
        let mut commits = Vec::new();
        let mut tombstones = Vec::new();
        let mut s = self.store().list(Some(ObjectType::Commit));
        let mut all_commits = Vec::new();
        while let Some(k) = s.next().await {
            let k = k?;
            if k.ty == ObjectType::Commit {
                all_commits.push(k.checksum);
            }
        }
        drop(s);
        all_commits.sort();
        for c in all_commits {
            if opts.verify_back_refs || opts.add_tombstones {
                let commit = self.load_commit(&c).await?;
                if opts.verify_back_refs {
                    super::refs::verify_back_refs(self, &c, &commit).await?;
                }
                if opts.add_tombstones
                    && let Some(p) = commit.parent
                    && !self
                        .store()
                        .has(&ObjectKey::new(p, ObjectType::Commit))
                        .await?
                {
                    tombstones.push(c);
                }
            }
            match self
                .store()
                .read_file(&format!("state/{c}.commitpartial"))
                .await?
            {
                Some(marker) => {
                    report.partial_commits += 1;
                    if marker.first() == Some(&b'f') {
                        report.fsck_partial_commits += 1;
                    }
                }
                None => commits.push(c),
            }
        }
        commits.sort();
        report.commits_verified = commits.len();

        // Reachable objects with the commits reaching them.
        let mut parents: HashMap<ObjectKey, Vec<Checksum>> = HashMap::new();
        let mut missing_meta: BTreeMap<ObjectKey, Vec<Checksum>> = BTreeMap::new();
        for c in &commits {
            self.collect_reachable(c, &mut parents, &mut missing_meta)
                .await?;
        }
        let mut keys: Vec<ObjectKey> = parents.keys().copied().collect();
        keys.sort();
        progress.phase("fsck objects", keys.len() as u64);
        report.objects_checked = keys.len();
        // Local objects: bounded by the CPUs that hash them; remote ones (object storage):
        // by the requests worth keeping in flight.
        let par = if self.store().capabilities().local_objects {
            std::thread::available_parallelism()
                .map(|p| p.get())
                .unwrap_or(2)
                * 2
        } else {
            REMOTE_PARALLELISM
        };
        // Unordered: a large object does not hold back the start of the ones after it. The
        // results are put back in key order for the report.
        let mut results: Vec<(ObjectKey, Result<()>)> =
            futures::stream::iter(keys.into_iter().map(|k| {
                let repo = self.clone();
                let progress = progress.clone();
                async move {
                    let r = repo.fsck_object(&k).await;
                    progress.inc(1);
                    (k, r)
                }
            }))
            .buffer_unordered(par)
            .collect()
            .await;
        results.sort_unstable_by_key(|(k, _)| *k);
        progress.finish();

        let mut to_mark: Vec<Checksum> = Vec::new();
        for (key, cs) in missing_meta {
            to_mark.extend(cs.iter().copied());
            report
                .problems
                .push(FsckProblem::Missing { key, commits: cs });
        }
        for (key, r) in results {
            let Err(e) = r else { continue };
            let cs = parents.get(&key).cloned().unwrap_or_default();
            if e.is_not_found() {
                if key.ty != ObjectType::Commit {
                    to_mark.extend(cs.iter().copied());
                }
                report
                    .problems
                    .push(FsckProblem::Missing { key, commits: cs });
                continue;
            }
            let prefix = if cs.is_empty() {
                String::new()
            } else {
                format!(
                    "In commits {}: ",
                    cs.iter().map(|c| c.to_hex()).collect::<Vec<_>>().join(", ")
                )
            };
            let message = format!("{prefix}{e}");
            if opts.delete {
                self.store().delete(&key).await?;
                if key.ty != ObjectType::Commit {
                    to_mark.extend(cs.iter().copied());
                }
                report.problems.push(FsckProblem::Corrupted {
                    key,
                    message,
                    deleted: true,
                });
            } else if opts.all {
                report.problems.push(FsckProblem::Corrupted {
                    key,
                    message,
                    deleted: false,
                });
            } else {
                return Err(Error::Corrupted(message));
            }
        }
        if !tombstones.is_empty() {
            let mut config = self.config();
            if !config
                .core_bool("tombstone-commits", false)
                .unwrap_or(false)
            {
                config.keyfile.set("core", "tombstone-commits", "true");
                self.write_config(config).await?;
            }
            for c in tombstones {
                self.delete_commit_object(&c, true).await?;
                report.tombstones_added.push(c);
            }
            self.store().sync().await?;
        }
        to_mark.sort();
        to_mark.dedup();
        for c in to_mark {
            if !self.is_commit_partial(&c).await? {
                self.store()
                    .write_file(
                        &format!("state/{c}.commitpartial"),
                        bytes::Bytes::from_static(b"f"),
                    )
                    .await?;
                report.marked_partial.push(c);
            }
        }
        Ok(report)
    }

    async fn collect_reachable(
        &self,
        commit: &Checksum,
        parents: &mut HashMap<ObjectKey, Vec<Checksum>>,
        missing: &mut BTreeMap<ObjectKey, Vec<Checksum>>,
    ) -> Result<()> {
        let add = |k: ObjectKey, parents: &mut HashMap<ObjectKey, Vec<Checksum>>| -> bool {
            let v = parents.entry(k).or_default();
            let first = v.is_empty();
            if !v.contains(commit) {
                v.push(*commit);
            }
            first
        };
        add(ObjectKey::new(*commit, ObjectType::Commit), parents);
        let c = match self.load_commit(commit).await {
            Ok(c) => c,
            Err(_) => return Ok(()), // reported by the object check
        };
        add(ObjectKey::new(c.root_meta, ObjectType::DirMeta), parents);
        let mut stack = vec![c.root_tree];
        let mut seen_here = std::collections::HashSet::new();
        while let Some(t) = stack.pop() {
            if !seen_here.insert(t) {
                continue;
            }
            let tk = ObjectKey::new(t, ObjectType::DirTree);
            add(tk, parents);
            let dt = match self.load_dirtree(&t).await {
                Ok(dt) => dt,
                Err(e) if e.is_not_found() => {
                    parents.remove(&tk);
                    missing.entry(tk).or_default().push(*commit);
                    continue;
                }
                Err(_) => continue, // corrupted: reported by the object check
            };
            for (_, f) in dt.files {
                add(ObjectKey::new(f, ObjectType::File), parents);
            }
            for (_, st, sm) in dt.dirs {
                add(ObjectKey::new(sm, ObjectType::DirMeta), parents);
                stack.push(st);
            }
        }
        Ok(())
    }
}

/// Verify a loaded object against its key (blocking: hashes content).
pub fn verify_object(key: &ObjectKey, obj: ObjectRead) -> Result<()> {
    match obj {
        ObjectRead::Meta(bytes) => {
            let r = (|| -> Result<()> {
                if !matches!(key.ty, ObjectType::CommitMeta | ObjectType::TombstoneCommit) {
                    check(key.ty, &key.checksum, &Checksum::of(&bytes))?;
                }
                match key.ty {
                    ObjectType::DirTree => {
                        DirTree::from_bytes(&bytes)?;
                    }
                    ObjectType::DirMeta => {
                        DirMeta::from_bytes(&bytes)?;
                    }
                    ObjectType::Commit => {
                        Commit::from_bytes(&bytes)?;
                    }
                    ObjectType::CommitMeta | ObjectType::TombstoneCommit => {
                        Metadata::from_bytes(&bytes)?;
                        return Ok(());
                    }
                    ObjectType::File => {
                        return Err(Error::corrupted("content object stored as metadata"));
                    }
                }
                Ok(())
            })();
            r.map_err(|e| Error::Corrupted(format!("fsck {}.{}: {e}", key.checksum, key.ty.name())))
        }
        ObjectRead::Content(c) => {
            let r = (|| -> Result<()> {
                c.meta.validate()?;
                let actual = content_checksum(&c.meta, c.body.into_reader())
                    .map_err(|e| Error::corrupted(format!("reading content: {e}")))?;
                check(ObjectType::File, &key.checksum, &actual)
            })();
            r.map_err(|e| Error::Corrupted(format!("fsck content object {}: {e}", key.checksum)))
        }
    }
}
