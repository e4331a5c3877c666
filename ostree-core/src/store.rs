//! The object-storage door: [`ObjectStore`], the trait every repository backend implements.
//!
//! A store holds one repository: its objects (addressed by [`ObjectKey`], never by free paths),
//! its refs (with an atomic compare-and-swap update, the commit point of every write), and a
//! handful of plain repository files (`config`, `summary`, `deltas/…`, `state/…`) addressed by
//! validated relative paths.
//!
//! # Semantics every implementation guarantees
//!
//! * **put is atomic**: no reader ever observes a partial object. Putting an object that already
//!   exists succeeds and leaves the stored one untouched.
//! * **put is visible at once to this handle** (`has`/`get` find it) and **durable after
//!   [`ObjectStore::sync`]**. A store may stage objects until `sync`; dropping a handle without
//!   `sync` may discard them (an aborted transaction), never leave them half-written.
//! * **Stores never verify content**: core checks every checksum before it calls `put`.
//! * **update_ref is compare-and-swap**: with [`RefExpect::Value`] the update happens only if
//!   the ref still holds that value, otherwise [`Error::Precondition`]; two concurrent writers
//!   never silently lose an update.
//! * Content objects are given and returned *decoded* ([`FileMeta`] + bytes); each backend
//!   stores them in its repository mode's representation using the shared codecs in
//!   [`crate::content`].

use std::fmt::{Debug, Display};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::objects::FileMeta;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// How a repository stores content objects (`core.mode` in `config`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RepoMode {
    /// Real files with real ownership, modes and xattrs (needs root).
    Bare,
    /// Files owned by the writer; real metadata in the `user.ostreemeta` xattr.
    BareUser,
    /// Files owned by the writer; no ownership or xattrs kept (flatpak).
    BareUserOnly,
    /// Compressed `.filez` objects (the only mode servable over HTTP). Written as `archive-z2`.
    Archive,
    /// Experimental 2022.7 mode: xattrs in separate objects. Can be initialized only.
    BareSplitXattrs,
}

impl RepoMode {
    /// The value written in `config` (`archive-z2` for archive, as ostree writes).
    pub fn config_name(self) -> &'static str {
        match self {
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
            RepoMode::Archive => "archive-z2",
            RepoMode::BareSplitXattrs => "bare-split-xattrs",
        }
    }
    /// The name ostree shows in messages (`archive` rather than `archive-z2`).
    pub fn name(self) -> &'static str {
        match self {
            RepoMode::Archive => "archive",
            m => m.config_name(),
        }
    }
    /// True for `archive`.
    pub fn is_archive(self) -> bool {
        self == RepoMode::Archive
    }
    /// Extension of content objects in this mode.
    pub fn content_extension(self) -> &'static str {
        if self.is_archive() { "filez" } else { "file" }
    }
}

impl FromStr for RepoMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            "archive" | "archive-z2" => RepoMode::Archive,
            "bare-split-xattrs" => RepoMode::BareSplitXattrs,
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid mode '{s}' in repository configuration"
                )));
            }
        })
    }
}

impl Display for RepoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a backend can do beyond the required surface; core takes fast paths on these, never
/// on a backend's name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Objects are files on a local filesystem: [`ObjectStore::local_path`] answers.
    pub local_objects: bool,
    /// Content objects can be hardlinked into checkouts (bare modes on a local filesystem).
    pub hardlink_checkout: bool,
    /// The store is a directory on the local filesystem ([`ObjectStore::local_root`]).
    pub local_root: bool,
}

/// Where the bytes of a content object come from on `put`.
#[derive(Debug)]
pub enum ContentSource {
    /// In memory.
    Bytes(Bytes),
    /// A local file to read (commit from a directory); its current content must hash to the
    /// key (core hashed it first).
    Path(PathBuf),
}

/// An object given to [`ObjectStore::put`].
#[derive(Debug)]
pub enum ObjectWrite {
    /// A metadata object's exact bytes (dirtree, dirmeta, commit, commitmeta, tombstone).
    Meta(Bytes),
    /// A content object, decoded. `size` is the content length (0 for symlinks).
    Content {
        /// Ownership, mode, xattrs, symlink target.
        meta: FileMeta,
        /// Content length in bytes.
        size: u64,
        /// The bytes (ignored for symlinks).
        source: ContentSource,
    },
    /// A content object in archive (`.filez`) form, already verified. Archive stores keep it
    /// verbatim; others decode it.
    Archived(Bytes),
}

/// The content bytes of a content object on `get`.
pub enum ContentBody {
    /// No body (symlinks).
    Empty,
    /// In memory.
    Bytes(Bytes),
    /// A reader (an open bare file, or an inflating reader over an archive object).
    Reader(Box<dyn Read + Send>),
}

impl Debug for ContentBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentBody::Empty => f.write_str("Empty"),
            ContentBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ContentBody::Reader(_) => f.write_str("Reader"),
        }
    }
}

impl ContentBody {
    /// Turn into a reader.
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        match self {
            ContentBody::Empty => Box::new(std::io::empty()),
            ContentBody::Bytes(b) => Box::new(std::io::Cursor::new(b)),
            ContentBody::Reader(r) => r,
        }
    }
}

/// A content object returned by [`ObjectStore::get`].
#[derive(Debug)]
pub struct ContentRead {
    /// Metadata as committed (for bare-user: from `user.ostreemeta`).
    pub meta: FileMeta,
    /// Content length.
    pub size: u64,
    /// The bytes.
    pub body: ContentBody,
}

/// An object returned by [`ObjectStore::get`].
#[derive(Debug)]
pub enum ObjectRead {
    /// A metadata object's exact bytes.
    Meta(Bytes),
    /// A content object, decoded.
    Content(ContentRead),
}

impl ObjectRead {
    /// The bytes of a metadata object, or an error for content.
    pub fn into_meta(self) -> Result<Bytes> {
        match self {
            ObjectRead::Meta(b) => Ok(b),
            ObjectRead::Content(_) => Err(Error::invalid("expected a metadata object")),
        }
    }
    /// The content object, or an error for metadata.
    pub fn into_content(self) -> Result<ContentRead> {
        match self {
            ObjectRead::Content(c) => Ok(c),
            ObjectRead::Meta(_) => Err(Error::invalid("expected a content object")),
        }
    }
}

/// The precondition of a ref update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefExpect {
    /// Update unconditionally.
    Any,
    /// The ref must not exist.
    Absent,
    /// The ref must currently hold this value.
    Value(Checksum),
}

/// A held repository lock; released on drop.
pub struct LockGuard(pub Box<dyn std::any::Any + Send + Sync>);

impl Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Validate a repository-relative path for the plain-file API: relative, no `.`/`..`/empty
/// components, not inside `objects/` or `refs/` (those have their own API).
pub fn validate_repo_path(path: &str) -> Result<()> {
    let bad = || Error::invalid(format!("Invalid repository path '{path}'"));
    if path.is_empty() || path.starts_with('/') || path.contains('\0') {
        return Err(bad());
    }
    for c in path.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad());
        }
    }
    if path.starts_with("objects/")
        || path.starts_with("refs/")
        || path == "objects"
        || path == "refs"
    {
        return Err(bad());
    }
    Ok(())
}

/// Storage for one repository. See the module docs for the guarantees.
#[async_trait]
pub trait ObjectStore: Debug + Display + Send + Sync + 'static {
    /// The repository mode (how content objects are represented).
    fn mode(&self) -> RepoMode;

    /// What this store can do beyond the required surface.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The directory holding the repository, when it is local.
    fn local_root(&self) -> Option<&Path> {
        None
    }

    /// Path of a stored object on the local filesystem, if it exists there (for hardlink
    /// checkouts and copy fast paths). `None` when not local or not present.
    fn local_path(&self, _key: &ObjectKey) -> Option<PathBuf> {
        None
    }

    /// Where a stored object's file would be on the local filesystem, as a directory and a
    /// name relative to it, for `*at()` calls that avoid walking the repository's absolute
    /// path once per object (hardlink checkouts link thousands). Nothing is checked: the
    /// caller's own call on it reports a missing object (`ENOENT`). `None` when the store is
    /// not local or the object may be somewhere else (staged by an open transaction):
    /// then use [`local_path`](ObjectStore::local_path).
    fn local_at(&self, _key: &ObjectKey) -> Option<(std::os::fd::BorrowedFd<'_>, String)> {
        None
    }

    /// Whether an object is stored.
    async fn has(&self, key: &ObjectKey) -> Result<bool>;

    /// Whether each of many objects is stored (backends may batch).
    async fn has_many(&self, keys: &[ObjectKey]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.has(k).await?);
        }
        Ok(out)
    }

    /// Read an object. A missing object is [`Error::NotFound`].
    async fn get(&self, key: &ObjectKey) -> Result<ObjectRead>;

    /// The stored bytes of an object in the on-wire form of an archive repository: metadata
    /// bytes, or `.filez` bytes for content. Non-archive stores return
    /// [`Error::NotImplemented`] for content.
    async fn get_raw(&self, key: &ObjectKey) -> Result<Bytes> {
        match key.ty {
            ObjectType::File => Err(Error::NotImplemented {
                operation: "get_raw of content objects".into(),
                implementer: format!("{self} ({} mode)", self.mode()),
            }),
            _ => self.get(key).await?.into_meta(),
        }
    }

    /// Bytes an object occupies in the store, as `ostree_repo_query_object_storage_size`
    /// reports it (the loose file's size; what `prune` counts as freed). A missing object is
    /// [`Error::NotFound`]. The default stats [`ObjectStore::local_path`], else reads the
    /// object.
    async fn object_size(&self, key: &ObjectKey) -> Result<u64> {
        if let Some(p) = self.local_path(key) {
            return std::fs::symlink_metadata(&p)
                .map(|m| m.len())
                .map_err(|e| Error::io_path("stat", p, e));
        }
        match self.get_raw(key).await {
            Ok(b) => Ok(b.len() as u64),
            Err(Error::NotImplemented { .. }) => match self.get(key).await? {
                ObjectRead::Meta(b) => Ok(b.len() as u64),
                ObjectRead::Content(c) => Ok(c.size),
            },
            Err(e) => Err(e),
        }
    }

    /// Store an object (atomic, idempotent). Core has verified it.
    async fn put(&self, key: &ObjectKey, data: ObjectWrite) -> Result<()>;

    /// Store several objects, as [`ObjectStore::put`] of each in turn (stopping at the first
    /// error; those before it stay stored). A local store does them in one trip through its
    /// blocking pool: a batch of small objects costs one thread hand-off instead of one each.
    async fn put_many(&self, items: Vec<(ObjectKey, ObjectWrite)>) -> Result<()> {
        for (key, data) in items {
            self.put(&key, data).await?;
        }
        Ok(())
    }

    /// Store a content object by taking over the local regular file `path` instead of copying
    /// it (`commit --consume`; ostree's `adopt_and_commit_regfile`): a local store may rename
    /// it into place, keeping its inode. The caller guarantees that the file's content hashes
    /// to `key` with `meta`, and that whatever of its own metadata the store's mode keeps
    /// (bare: ownership, mode, xattrs) is `meta`. `Ok(true)`: stored, and `path` is gone;
    /// `Ok(false)` (the default): nothing done, store it with [`ObjectStore::put`].
    async fn adopt(&self, _key: &ObjectKey, _meta: &FileMeta, _path: &Path) -> Result<bool> {
        Ok(false)
    }

    /// Store an object by hardlinking `src`, the stored file of the same object in another
    /// local repository whose representation of it is the one this store keeps (metadata
    /// objects; content objects between repositories of the same mode, or bare-user regular
    /// files into bare-user-only): ostree's `import_one_object_direct`. The caller has checked
    /// (or trusts) the object. `Ok(true)`: stored (or already present); `Ok(false)` (the
    /// default, and when the link is impossible: another filesystem, link count limit):
    /// nothing done, store it with [`ObjectStore::put`].
    async fn link_from(&self, _key: &ObjectKey, _src: &Path) -> Result<bool> {
        Ok(false)
    }

    /// Delete an object. Deleting a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// List stored objects, optionally of one type.
    fn list(&self, ty: Option<ObjectType>) -> BoxStream<'_, Result<ObjectKey>>;

    /// Make every object put so far durable and visible to other handles. Called before any
    /// ref that needs those objects moves.
    ///
    /// A store that holds objects until `sync` publishes them in dependency order (content,
    /// dirmeta, dirtree, then commits and detached metadata), and makes a commit durable only
    /// after everything put before it: a commit put after its tree, then one `sync`, is never
    /// found (after a kill or a crash) without that tree. A store whose puts are durable and
    /// visible at once gives this by itself.
    async fn sync(&self) -> Result<()>;

    /// Read a ref. `name` is relative to `refs/` (`heads/main`, `remotes/origin/main`,
    /// `mirrors/org.example/main`). A missing ref is `Ok(None)`.
    async fn read_ref(&self, name: &str) -> Result<Option<Checksum>>;

    /// List refs whose name (relative to `refs/`) starts with the directory `prefix`
    /// (`heads/`, `remotes/origin/`…). Names are returned relative to `refs/`, sorted. A
    /// prefix without its trailing `/` that names a ref lists that ref alone.
    async fn list_refs(&self, prefix: &str) -> Result<Vec<(String, Checksum)>>;

    /// Compare-and-swap a ref: set it to `new` (or delete it for `None`) if `expect` holds.
    async fn update_ref(&self, name: &str, expect: RefExpect, new: Option<Checksum>) -> Result<()>;

    /// List alias refs (refs that name another ref instead of holding a checksum, ostree's
    /// symlinked refs) under the directory `prefix`, as `(alias, target)`: `alias` is relative
    /// to `refs/` (`heads/stable`), `target` is the aliased ref relative to the alias's own
    /// top directory (`x86_64/27` for `heads/x86_64/27`), as ostree prints it. Sorted by
    /// alias. [`ObjectStore::read_ref`] and [`ObjectStore::list_refs`] already resolve aliases
    /// to the target's value. Stores without aliases return an empty list (the default).
    async fn list_ref_aliases(&self, _prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    /// Make `name` (relative to `refs/`) an alias of `target` (relative to `name`'s top
    /// directory, e.g. `heads/`), replacing whatever ref or alias `name` was. Deleting an
    /// alias is [`ObjectStore::update_ref`] with `None`. Default: [`Error::NotImplemented`].
    async fn set_ref_alias(&self, name: &str, target: &str) -> Result<()> {
        let _ = (name, target);
        Err(Error::NotImplemented {
            operation: "ref aliases".into(),
            implementer: self.to_string(),
        })
    }

    /// Read a plain repository file (`config`, `summary`, `state/…`). Missing → `Ok(None)`.
    async fn read_file(&self, path: &str) -> Result<Option<Bytes>>;

    /// Atomically replace a plain repository file.
    async fn write_file(&self, path: &str, data: Bytes) -> Result<()>;

    /// Delete a plain repository file; missing is not an error.
    async fn delete_file(&self, path: &str) -> Result<()>;

    /// List plain files under a directory prefix (`state/`, `deltas/`), relative to the repo.
    async fn list_files(&self, prefix: &str) -> Result<Vec<String>>;

    /// Take the repository lock (shared for readers/writers of objects, exclusive for prune
    /// and other destructive work). Stores without locking return a no-op guard. Stores
    /// shared without a lock (object storage) record a lease instead ([`crate::lease`]).
    async fn lock(&self, _exclusive: bool) -> Result<LockGuard> {
        Ok(LockGuard(Box::new(())))
    }

    /// The leases this handle holds, when the store is shared by clients that no lock can
    /// exclude (object storage): writers then record leases in the store and prune honours
    /// them ([`crate::lease`]). `None` (the default): [`ObjectStore::lock`] excludes.
    fn lease_table(&self) -> Option<Arc<crate::lease::LeaseTable>> {
        None
    }

    /// List stored objects with the size and last-modified time the store records, when it
    /// records them (object storage listings carry both, so prune needs no request per
    /// object). Default: [`ObjectStore::list`] with neither.
    fn list_detailed(&self, ty: Option<ObjectType>) -> BoxStream<'_, Result<ListedObject>> {
        use futures::StreamExt;
        self.list(ty)
            .map(|r| {
                r.map(|key| ListedObject {
                    key,
                    size: None,
                    modified: None,
                })
            })
            .boxed()
    }

    /// [`ObjectStore::list_files`] with each file's size and last-modified time when the
    /// store records them. Default: neither.
    async fn list_files_detailed(&self, prefix: &str) -> Result<Vec<ListedFile>> {
        Ok(self
            .list_files(prefix)
            .await?
            .into_iter()
            .map(|path| ListedFile {
                path,
                size: None,
                modified: None,
            })
            .collect())
    }

    /// Delete many objects (missing ones are not an error); object storage batches them.
    /// Default: one [`ObjectStore::delete`] after the other.
    async fn delete_many(&self, keys: &[ObjectKey]) -> Result<()> {
        for k in keys {
            self.delete(k).await?;
        }
        Ok(())
    }
}

/// An object as a detailed listing reports it ([`ObjectStore::list_detailed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedObject {
    /// The object.
    pub key: ObjectKey,
    /// Bytes it occupies in the store, when the listing says.
    pub size: Option<u64>,
    /// When it was last written, by the store's clock, when the listing says.
    pub modified: Option<SystemTime>,
}

/// A plain file as a detailed listing reports it ([`ObjectStore::list_files_detailed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// Path relative to the repository.
    pub path: String,
    /// Its size, when the listing says.
    pub size: Option<u64>,
    /// When it was last written, by the store's clock, when the listing says.
    pub modified: Option<SystemTime>,
}

/// Options given to a backend when it opens (or creates) a repository.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Create a new repository in this mode (the layout and an initial `config`).
    pub create: Option<RepoMode>,
    /// Override `core.fsync` (`--fsync=false`).
    pub fsync: Option<bool>,
}
