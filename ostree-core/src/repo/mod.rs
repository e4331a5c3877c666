//! Repository logic written once over [`ObjectStore`]: open/create, config, typed object
//! loading, refs and rev resolution, transactions, commit, checkout, fsck.
//!
//! ```no_run
//! # async fn demo() -> ostree_core::Result<()> {
//! use ostree_core::repo::Repo;
//! use ostree_core::store::{OpenOptions, RepoMode};
//! let url = ostree_core::registry::repo_url("/tmp/repo")?;
//! // A storage plugin for `file://` must be linked (ostree-backend-fs).
//! let repo = Repo::create(&url, RepoMode::Archive, OpenOptions::default()).await?;
//! let csum = repo.resolve_rev("main", true).await?;
//! # let _ = csum; Ok(()) }
//! ```

pub mod checkout;
pub mod commit;
pub mod diff;
pub mod export;
pub mod fsck;
pub mod prune;
pub mod read;
pub mod refs;
pub mod remote;
pub mod summary;
pub mod tar_import;
pub mod traverse;
pub mod ucache;

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use url::Url;

use crate::config::RepoConfig;
use crate::objects::{Commit, DirMeta, DirTree, Metadata};
use crate::registry::Registry;
use crate::store::{ObjectStore, OpenOptions, RepoMode};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    url: Url,
    config: RwLock<RepoConfig>,
    /// The `core.parent` repository, opened on first use.
    parent: tokio::sync::OnceCell<Option<Repo>>,
}

impl Repo {
    /// Open an existing repository through the global registry.
    pub async fn open(url: &Url, opts: OpenOptions) -> Result<Repo> {
        Self::open_with(Registry::global(), url, opts).await
    }

    /// Open with a specific registry.
    pub async fn open_with(registry: &Registry, url: &Url, opts: OpenOptions) -> Result<Repo> {
        let store = registry.open_store(url, opts).await?;
        Self::from_store(store, url.clone()).await
    }

    /// Create (or open, if it already exists) a repository in `mode`.
    pub async fn create(url: &Url, mode: RepoMode, opts: OpenOptions) -> Result<Repo> {
        let opts = OpenOptions {
            create: Some(mode),
            ..opts
        };
        Self::open(url, opts).await
    }

    /// Wrap an already opened store (reads its `config`).
    pub async fn from_store(store: Arc<dyn ObjectStore>, url: Url) -> Result<Repo> {
        let text = store
            .read_file("config")
            .await?
            .ok_or_else(|| Error::not_found(format!("No config found in repository {url}")))?;
        let config = RepoConfig::parse(&text)?;
        Ok(Repo {
            inner: Arc::new(Inner {
                store,
                url,
                config: RwLock::new(config),
                parent: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The storage backend.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Where the repository lives.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The repository mode.
    pub fn mode(&self) -> RepoMode {
        self.inner.store.mode()
    }

    /// A copy of the current configuration.
    pub fn config(&self) -> RepoConfig {
        self.inner
            .config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replace the configuration (written atomically).
    pub async fn write_config(&self, cfg: RepoConfig) -> Result<()> {
        self.inner
            .store
            .write_file("config", Bytes::from(cfg.to_text()))
            .await?;
        match self.inner.config.write() {
            Ok(mut g) => *g = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
        Ok(())
    }

    /// `core.collection-id`, if set.
    pub fn collection_id(&self) -> Option<String> {
        self.config().keyfile.get_string("core", "collection-id")
    }

    /// True when xattrs are disabled for this repo (`core.disable-xattrs`).
    pub fn disable_xattrs(&self) -> bool {
        self.config()
            .core_bool("disable-xattrs", false)
            .unwrap_or(false)
    }

    // ------------------------------------------------------------------ objects

    /// The `core.parent` repository (opened once): objects missing here are read from it,
    /// as ostree's `parent_repo` fallbacks do.
    pub(crate) async fn parent(&self) -> Result<Option<Repo>> {
        self.inner
            .parent
            .get_or_try_init(|| self.parent_repo())
            .await
            .cloned()
    }

    /// Whether an object is stored (here or in the `core.parent` repository).
    pub async fn has_object(&self, key: &ObjectKey) -> Result<bool> {
        if self.inner.store.has(key).await? {
            return Ok(true);
        }
        match self.parent().await? {
            Some(p) => Box::pin(p.has_object(key)).await,
            None => Ok(false),
        }
    }

    /// [`Repo::has_object`] for many keys at once: one batched question to this store, then
    /// the `core.parent` chain for the keys it lacks.
    pub async fn has_objects(&self, keys: &[ObjectKey]) -> Result<Vec<bool>> {
        let mut have = self.inner.store.has_many(keys).await?;
        if have.iter().all(|h| *h) {
            return Ok(have);
        }
        if let Some(p) = self.parent().await? {
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| !have[i]).collect();
            let ask: Vec<ObjectKey> = missing.iter().map(|&i| keys[i]).collect();
            let found = Box::pin(p.has_objects(&ask)).await?;
            for (i, f) in missing.into_iter().zip(found) {
                have[i] = f;
            }
        }
        Ok(have)
    }

    /// Load a metadata object's bytes (falling back to the `core.parent` repository); a
    /// missing object is `NotFound` with ostree's wording.
    pub async fn load_meta(&self, ty: ObjectType, csum: &Checksum) -> Result<Bytes> {
        let key = ObjectKey::new(*csum, ty);
        match self.inner.store.get(&key).await {
            Ok(o) => o.into_meta(),
            Err(e) if e.is_not_found() => {
                if let Some(p) = self.parent().await? {
                    return Box::pin(p.load_meta(ty, csum)).await;
                }
                Err(Error::not_found(format!(
                    "No such metadata object {}.{}",
                    csum,
                    ty.name()
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Load and decode a commit.
    pub async fn load_commit(&self, csum: &Checksum) -> Result<Commit> {
        let b = self.load_meta(ObjectType::Commit, csum).await?;
        Commit::from_bytes(&b)
            .map_err(|e| Error::corrupted(format!("Corrupted commit object {csum}: {e}")))
    }

    /// Load and decode a dirtree.
    pub async fn load_dirtree(&self, csum: &Checksum) -> Result<DirTree> {
        let b = self.load_meta(ObjectType::DirTree, csum).await?;
        DirTree::from_bytes(&b)
            .map_err(|e| Error::corrupted(format!("Corrupted dirtree object {csum}: {e}")))
    }

    /// Load and decode a dirmeta.
    pub async fn load_dirmeta(&self, csum: &Checksum) -> Result<DirMeta> {
        let b = self.load_meta(ObjectType::DirMeta, csum).await?;
        DirMeta::from_bytes(&b)
            .map_err(|e| Error::corrupted(format!("Corrupted dirmeta object {csum}: {e}")))
    }

    /// Detached metadata of a commit, if any.
    pub async fn read_commit_detached_metadata(&self, csum: &Checksum) -> Result<Option<Metadata>> {
        let key = ObjectKey::new(*csum, ObjectType::CommitMeta);
        match self.inner.store.get(&key).await {
            Ok(o) => Ok(Some(Metadata::from_bytes(&o.into_meta()?)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace (or remove, with `None`) a commit's detached metadata.
    pub async fn write_commit_detached_metadata(
        &self,
        csum: &Checksum,
        md: Option<&Metadata>,
    ) -> Result<()> {
        let key = ObjectKey::new(*csum, ObjectType::CommitMeta);
        self.inner.store.delete(&key).await?;
        if let Some(md) = md {
            self.inner
                .store
                .put(
                    &key,
                    crate::store::ObjectWrite::Meta(Bytes::from(md.to_bytes())),
                )
                .await?;
        }
        self.inner.store.sync().await
    }

    /// Store a commit object (already verified by the caller) and delete its tombstone, if any:
    /// a commit that comes back is no longer intentionally absent (as ostree does when it
    /// writes a commit).
    pub async fn put_commit_object(&self, csum: &Checksum, bytes: Bytes) -> Result<()> {
        let store = &self.inner.store;
        store
            .put(
                &ObjectKey::new(*csum, ObjectType::Commit),
                crate::store::ObjectWrite::Meta(bytes),
            )
            .await?;
        store
            .delete(&ObjectKey::new(*csum, ObjectType::TombstoneCommit))
            .await
    }

    /// Take the repository lock: shared for anything that adds objects or moves refs
    /// (commit, pull), exclusive for destructive work (prune). Released on drop. Take the
    /// strongest lock an operation needs first: upgrading a held lock would wait on itself.
    pub async fn lock(&self, exclusive: bool) -> Result<crate::store::LockGuard> {
        self.inner.store.lock(exclusive).await
    }

    /// True if `state/<commit>.commitpartial` marks the commit's tree as incomplete.
    pub async fn is_commit_partial(&self, csum: &Checksum) -> Result<bool> {
        Ok(self
            .inner
            .store
            .read_file(&format!("state/{csum}.commitpartial"))
            .await?
            .is_some())
    }
}
