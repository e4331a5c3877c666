//! [`ObjectStorageStore`]: the `ObjectStore` implementation.

use std::fmt;
use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetResult, ObjectStoreExt, PutMode, PutOptions, UpdateVersion, WriteMultipart};
use ostree_core::content::{read_archived, write_archived};
use ostree_core::lease::{self, LeaseDecl, LeaseTable, Role};
use ostree_core::objects::FileMeta;
use ostree_core::store::{
    ContentBody, ContentRead, ContentSource, ListedFile, ListedObject, LockGuard, ObjectRead,
    ObjectStore, ObjectWrite, RefExpect, RepoMode, validate_repo_path,
};
use ostree_core::{Checksum, Error, ObjectKey, ObjectType, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::builder::child;
use crate::error;

/// Size of the parts of multipart uploads (S3 wants at least 5 MiB but for the last one).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// How many times a ref creation retries when the ref vanishes or appears under it.
const CAS_ATTEMPTS: usize = 8;

/// How many times an object create is tried while a concurrent create of it is unfinished.
const CREATE_ATTEMPTS: u32 = 4;

/// An archive-mode repository in object storage. See the crate docs for the layout and the
/// guarantees; build one with [`crate::ObjectStorageBuilder`] or open a URL through the
/// registry. A clone is another handle on the same repository holding the same leases.
#[derive(Clone, Debug)]
pub struct ObjectStorageStore {
    inner: Arc<dyn object_store::ObjectStore>,
    prefix: Path,
    name: String,
    plugin: &'static str,
    memory_limit: usize,
    concurrency: usize,
    leases: Arc<LeaseTable>,
}

/// A ref as stored: its value (`None` for a tombstone) and the version to update it with.
struct StoredRef {
    value: Option<Checksum>,
    version: UpdateVersion,
}

impl fmt::Display for ObjectStorageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Validate a ref name relative to `refs/` (`OSTREE_REF_REGEXP`: `/`-separated fragments of
/// word characters, `-` and `.`, each starting with a word character).
fn validate_ref_name(name: &str) -> Result<()> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let fragment_ok = |f: &str| {
        let mut cs = f.chars();
        matches!(cs.next(), Some(c) if word(c)) && cs.all(|c| word(c) || c == '-' || c == '.')
    };
    if !name.is_empty() && name.split('/').all(fragment_ok) {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid ref name {name}")))
    }
}

/// A directory prefix (`heads/`, `remotes/origin/`, or empty for everything) without its
/// trailing slash, validated.
fn ref_dir(prefix: &str) -> Result<&str> {
    let dir = prefix.strip_suffix('/').unwrap_or(prefix);
    if !dir.is_empty() {
        validate_ref_name(dir)
            .map_err(|_| Error::invalid(format!("Invalid ref prefix {prefix}")))?;
    }
    Ok(dir)
}

fn parse_ref(name: &str, body: &[u8]) -> Result<Option<Checksum>> {
    if body.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(body)
        .ok()
        .map(|t| t.strip_suffix('\n').unwrap_or(t))
        .filter(|t| t.len() == 64);
    match text.map(Checksum::from_hex) {
        Some(Ok(c)) => Ok(Some(c)),
        _ => Err(Error::corrupted(format!("Invalid checksum in ref {name}"))),
    }
}

fn ref_body(c: Option<Checksum>) -> Bytes {
    match c {
        Some(c) => Bytes::from(format!("{}\n", c.to_hex())),
        None => Bytes::new(),
    }
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(what.to_string(), e)
}

fn temp_file() -> Result<std::fs::File> {
    tempfile::tempfile().map_err(io_err("creating a temporary file"))
}

/// Encoded `.filez` content: in memory, or in a temporary file (rewound) with its length.
enum Encoded {
    Memory(Vec<u8>),
    File(std::fs::File, u64),
}

/// Archive-encode content (blocking: runs on the blocking pool).
fn encode(meta: FileMeta, size: u64, source: ContentSource, spill: bool) -> Result<Encoded> {
    let reader: Box<dyn Read> = match source {
        ContentSource::Bytes(b) => Box::new(Cursor::new(b)),
        ContentSource::Path(p) => Box::new(BufReader::new(
            std::fs::File::open(&p).map_err(|e| Error::io_path("opening", &p, e))?,
        )),
    };
    let reader: Box<dyn Read> = if meta.is_symlink() {
        Box::new(std::io::empty())
    } else {
        reader
    };
    if spill {
        let mut f = temp_file()?;
        {
            let mut w = std::io::BufWriter::new(&mut f);
            write_archived(&meta, size, reader, &mut w)?;
            w.flush().map_err(io_err("writing a temporary file"))?;
        }
        let len = f
            .stream_position()
            .map_err(io_err("sizing a temporary file"))?;
        f.rewind().map_err(io_err("rewinding a temporary file"))?;
        Ok(Encoded::File(f, len))
    } else {
        let mut out = Vec::with_capacity((size as usize).min(1 << 20) / 2 + 128);
        write_archived(&meta, size, reader, &mut out)?;
        Ok(Encoded::Memory(out))
    }
}

/// A content object that does not decode, named (fsck and pull report it by name).
fn corrupt(key: &ObjectKey, e: Error) -> Error {
    match e {
        Error::Corrupted(m) if m.contains(&key.checksum.to_hex()) => Error::Corrupted(m),
        e => Error::corrupted(format!("Corrupted file object {}: {e}", key.checksum)),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Other(format!("background task failed: {e}")))?
}

impl ObjectStorageStore {
    pub(crate) fn new(
        inner: Arc<dyn object_store::ObjectStore>,
        prefix: Path,
        name: String,
        plugin: &'static str,
        memory_limit: usize,
        concurrency: usize,
        lease_ttl: std::time::Duration,
    ) -> Self {
        ObjectStorageStore {
            inner,
            prefix,
            name,
            plugin,
            memory_limit,
            concurrency,
            leases: LeaseTable::new(lease_ttl),
        }
    }

    /// The `object_store` store underneath.
    pub fn inner(&self) -> &Arc<dyn object_store::ObjectStore> {
        &self.inner
    }

    /// The key prefix of the repository (empty for a bucket's root).
    pub fn prefix(&self) -> &str {
        self.prefix.as_ref()
    }

    fn key(&self, rel: &str) -> Result<Path> {
        child(&self.prefix, rel)
    }

    fn object_path(&self, key: &ObjectKey) -> Result<Path> {
        self.key(&key.loose_path(true))
    }

    fn map(&self, what: impl fmt::Display, e: object_store::Error) -> Error {
        error::map(self.plugin, what, e)
    }

    /// `location` relative to the repository, if it is under it.
    fn relative(&self, location: &Path) -> Option<String> {
        let loc = location.as_ref();
        let p = self.prefix.as_ref();
        if p.is_empty() {
            Some(loc.to_string())
        } else {
            loc.strip_prefix(p)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string)
        }
    }

    fn not_found_object(key: &ObjectKey) -> String {
        if key.ty == ObjectType::File {
            format!("Couldn't find file object '{}'", key.checksum)
        } else {
            format!("No such metadata object {key}")
        }
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<GetResult> {
        let path = self.object_path(key)?;
        self.inner
            .get(&path)
            .await
            .map_err(|e| self.map(Self::not_found_object(key), e))
    }

    async fn read_all(&self, r: GetResult, what: &str) -> Result<Bytes> {
        r.bytes()
            .await
            .map_err(|e| self.map(format!("reading {what}"), e))
    }

    /// Create-only PUT: an object already there is success (and is left as it is).
    ///
    /// "Already exists" is also how a conflict with a concurrent, still unfinished create of
    /// the same key is reported (S3's 409); success is only claimed once the object is
    /// visible, retrying the create a few times if the other upload never lands.
    async fn put_new(&self, key: &ObjectKey, data: Bytes) -> Result<()> {
        let path = self.object_path(key)?;
        let mut attempt = 0u32;
        loop {
            let put = PutOptions::from(PutMode::Create);
            let err = match self.inner.put_opts(&path, data.clone().into(), put).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if self.has(key).await.unwrap_or(false) {
                return Ok(());
            }
            attempt += 1;
            if attempt >= CREATE_ATTEMPTS
                || !matches!(err, object_store::Error::AlreadyExists { .. })
            {
                return Err(self.map(format!("storing {key}"), err));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
    }

    /// Upload a large encoded object from a temporary file in parts.
    async fn put_file(&self, key: &ObjectKey, file: std::fs::File, len: u64) -> Result<()> {
        let path = self.object_path(key)?;
        let what = || format!("uploading {key} ({len} bytes)");
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| self.map(what(), e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut file = tokio::fs::File::from_std(file);
        let result: Result<()> = async {
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(io_err("reading a temporary file"))?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(self.concurrency)
                    .await
                    .map_err(|e| self.map(what(), e))?;
                w.write(&buf[..n]);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => w
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.map(what(), e)),
            Err(e) => {
                // Best effort: the upload is abandoned either way.
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Decode a `.filez` object, in memory when small, from a spooled file otherwise.
    async fn read_content(&self, key: &ObjectKey, r: GetResult) -> Result<ContentRead> {
        let what = key.to_string();
        let (meta, size, reader): (FileMeta, u64, Box<dyn Read + Send>) =
            if r.meta.size <= self.memory_limit as u64 {
                let data = self.read_all(r, &what).await?;
                read_archived(Cursor::new(data)).map_err(|e| corrupt(key, e))?
            } else {
                let mut file = tokio::fs::File::from_std(temp_file()?);
                let mut chunks = r.into_stream();
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| self.map(format!("reading {what}"), e))?;
                    file.write_all(&chunk)
                        .await
                        .map_err(io_err("writing a temporary file"))?;
                }
                file.flush()
                    .await
                    .map_err(io_err("writing a temporary file"))?;
                let mut file = file.into_std().await;
                file.rewind()
                    .map_err(io_err("rewinding a temporary file"))?;
                read_archived(BufReader::new(file)).map_err(|e| corrupt(key, e))?
            };
        let body = if meta.is_symlink() {
            ContentBody::Empty
        } else if size <= self.memory_limit as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            let mut reader = reader;
            reader.read_to_end(&mut buf).map_err(|e| {
                Error::corrupted(format!("Corrupted file object {}: {e}", key.checksum))
            })?;
            ContentBody::Bytes(Bytes::from(buf))
        } else {
            ContentBody::Reader(reader)
        };
        Ok(ContentRead { meta, size, body })
    }

    /// Read a ref object with the version to update it with; `None` when the key is missing.
    async fn read_stored_ref(&self, name: &str) -> Result<Option<StoredRef>> {
        validate_ref_name(name)?;
        let path = self.key(&format!("refs/{name}"))?;
        let r = match self.inner.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.map(format!("reading ref {name}"), e)),
        };
        let version = UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let body = match r.bytes().await {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.map(format!("reading ref {name}"), e)),
        };
        Ok(Some(StoredRef {
            value: parse_ref(name, &body)?,
            version,
        }))
    }

    async fn put_ref(&self, name: &str, value: Option<Checksum>, mode: PutMode) -> Result<()> {
        let path = self.key(&format!("refs/{name}"))?;
        match self
            .inner
            .put_opts(&path, ref_body(value).into(), PutOptions::from(mode))
            .await
        {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(Error::Precondition {
                what: format!("ref {name} was changed by another writer"),
            }),
            Err(e) => Err(self.map(format!("writing ref {name}"), e)),
        }
    }

    fn precondition(name: &str, expect: RefExpect) -> Error {
        let what = match expect {
            RefExpect::Absent => format!("ref {name} already exists"),
            RefExpect::Value(v) => format!("ref {name} does not point to {v}"),
            RefExpect::Any => format!("ref {name} was changed by another writer"),
        };
        Error::Precondition { what }
    }

    /// Plain-file keys under a directory prefix (empty: the whole repository but `objects/`
    /// and `refs/`), relative to the repository.
    async fn list_keys(&self, dir: Option<&str>) -> Result<Vec<String>> {
        Ok(self
            .list_metas(dir)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    /// [`Self::list_keys`] with sizes and last-modified times (one paginated listing).
    async fn list_metas(&self, dir: Option<&str>) -> Result<Vec<ListedFile>> {
        let base = match dir {
            Some(d) => self.key(d)?,
            None => self.prefix.clone(),
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| self.map(format!("listing {}", self.name), e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                self.relative(&m.location).map(|path| ListedFile {
                    path,
                    size: Some(m.size),
                    modified: Some(m.last_modified.into()),
                })
            })
            .collect())
    }

    /// Plain files under `prefix` as [`ObjectStore::list_files`] selects them.
    async fn files_under(&self, prefix: &str) -> Result<Vec<ListedFile>> {
        let dir = prefix.strip_suffix('/').unwrap_or(prefix);
        let mut files: Vec<ListedFile> = if dir.is_empty() {
            self.list_metas(None)
                .await?
                .into_iter()
                .filter(|f| !(f.path.starts_with("objects/") || f.path.starts_with("refs/")))
                .collect()
        } else {
            validate_repo_path(dir)?;
            self.list_metas(Some(dir)).await?
        };
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// An object key from a listed location under `base` (`objects/`), archive names only.
    fn listed_key(base: &Path, location: &Path) -> Option<ObjectKey> {
        location.prefix_match(base).and_then(|parts| {
            let parts: Vec<_> = parts.collect();
            let [dir, file] = parts.as_slice() else {
                return None;
            };
            let (dir, file) = (dir.as_ref(), file.as_ref());
            let k = ObjectKey::from_loose_name(dir, file)?;
            // Only archive-mode names: `.file` objects are not part of this repo.
            (k.ty != ObjectType::File || file.ends_with(".filez")).then_some(k)
        })
    }
}

#[async_trait]
impl ObjectStore for ObjectStorageStore {
    fn mode(&self) -> RepoMode {
        RepoMode::Archive
    }

    async fn has(&self, key: &ObjectKey) -> Result<bool> {
        let path = self.object_path(key)?;
        match self.inner.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.map(format!("looking up {key}"), e)),
        }
    }

    async fn has_many(&self, keys: &[ObjectKey]) -> Result<Vec<bool>> {
        stream::iter(keys.iter().copied())
            .map(|k| async move { self.has(&k).await })
            .buffered(self.concurrency)
            .try_collect()
            .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectRead> {
        let r = self.get_object(key).await?;
        if key.ty.is_meta() {
            Ok(ObjectRead::Meta(self.read_all(r, &key.to_string()).await?))
        } else {
            Ok(ObjectRead::Content(self.read_content(key, r).await?))
        }
    }

    async fn get_raw(&self, key: &ObjectKey) -> Result<Bytes> {
        let r = self.get_object(key).await?;
        self.read_all(r, &key.to_string()).await
    }

    async fn put(&self, key: &ObjectKey, data: ObjectWrite) -> Result<()> {
        if key.ty == ObjectType::Commit {
            // A commit names its tree: only under a lease a prune honours.
            self.leases.check()?;
        }
        match data {
            ObjectWrite::Meta(b) | ObjectWrite::Archived(b) => self.put_new(key, b).await,
            ObjectWrite::Content { meta, size, source } => {
                let spill = size > self.memory_limit as u64;
                if spill && self.has(key).await? {
                    return Ok(());
                }
                match blocking(move || encode(meta, size, source, spill)).await? {
                    Encoded::Memory(v) => self.put_new(key, Bytes::from(v)).await,
                    Encoded::File(f, len) => self.put_file(key, f, len).await,
                }
            }
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let path = self.object_path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map(format!("deleting {key}"), e)),
        }
    }

    fn list(&self, ty: Option<ObjectType>) -> BoxStream<'_, Result<ObjectKey>> {
        self.list_detailed(ty).map_ok(|o| o.key).boxed()
    }

    fn list_detailed(&self, ty: Option<ObjectType>) -> BoxStream<'_, Result<ListedObject>> {
        let base = match self.key("objects") {
            Ok(b) => b,
            Err(e) => return stream::once(async move { Err(e) }).boxed(),
        };
        // `object_store` pages through the listing (1000 keys per request on S3).
        self.inner
            .list(Some(&base))
            .map_err(|e| self.map(format!("listing objects of {}", self.name), e))
            .try_filter_map(move |m| {
                let listed = Self::listed_key(&base, &m.location)
                    .filter(|k| ty.is_none_or(|t| t == k.ty))
                    .map(|key| ListedObject {
                        key,
                        size: Some(m.size),
                        modified: Some(m.last_modified.into()),
                    });
                futures::future::ready(Ok(listed))
            })
            .boxed()
    }

    async fn delete_many(&self, keys: &[ObjectKey]) -> Result<()> {
        let paths: Vec<Path> = keys
            .iter()
            .map(|k| self.object_path(k))
            .collect::<Result<_>>()?;
        // Bulk deletes (S3 DeleteObjects, 1000 keys per request).
        let mut deleted = self
            .inner
            .delete_stream(stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.map(format!("deleting objects of {}", self.name), e)),
            }
        }
        Ok(())
    }

    fn lease_table(&self) -> Option<Arc<LeaseTable>> {
        Some(self.leases.clone())
    }

    async fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let (role, decl) = if exclusive {
            (Role::Prune, LeaseDecl::undeclared("prune"))
        } else {
            (Role::Writer, LeaseDecl::undeclared("write"))
        };
        lease::acquire(Arc::new(self.clone()), &self.leases, role, decl).await
    }

    async fn sync(&self) -> Result<()> {
        // Every successful PUT is durable and visible to all clients.
        Ok(())
    }

    async fn read_ref(&self, name: &str) -> Result<Option<Checksum>> {
        Ok(self.read_stored_ref(name).await?.and_then(|r| r.value))
    }

    async fn list_refs(&self, prefix: &str) -> Result<Vec<(String, Checksum)>> {
        let dir = ref_dir(prefix)?;
        if !dir.is_empty() && !prefix.ends_with('/') {
            // The prefix may name one ref (`ostree refs --delete main`), as a file would in a
            // local repository: then that ref alone.
            if let Some(value) = self.read_stored_ref(dir).await?.and_then(|r| r.value) {
                return Ok(vec![(dir.to_string(), value)]);
            }
        }
        let base = if dir.is_empty() {
            "refs".to_string()
        } else {
            format!("refs/{dir}")
        };
        let names: Vec<String> = self
            .list_keys(Some(&base))
            .await?
            .into_iter()
            .filter_map(|rel| rel.strip_prefix("refs/").map(str::to_string))
            .filter(|n| validate_ref_name(n).is_ok())
            .collect();
        let mut refs: Vec<(String, Checksum)> = stream::iter(names)
            .map(|n| async move {
                let r = self.read_stored_ref(&n).await?;
                Ok::<_, Error>(r.and_then(|r| r.value).map(|v| (n, v)))
            })
            .buffer_unordered(self.concurrency)
            .try_filter_map(|r| futures::future::ready(Ok(r)))
            .try_collect()
            .await?;
        refs.sort();
        Ok(refs)
    }

    async fn update_ref(&self, name: &str, expect: RefExpect, new: Option<Checksum>) -> Result<()> {
        validate_ref_name(name)?;
        self.leases.check()?;
        match expect {
            RefExpect::Any => match new {
                Some(_) => self.put_ref(name, new, PutMode::Overwrite).await,
                None => {
                    let path = self.key(&format!("refs/{name}"))?;
                    match self.inner.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(self.map(format!("deleting ref {name}"), e)),
                    }
                }
            },
            RefExpect::Value(v) => match self.read_stored_ref(name).await? {
                Some(StoredRef {
                    value: Some(cur),
                    version,
                }) if cur == v => {
                    // Deleting by value writes a tombstone: there is no conditional DELETE.
                    self.put_ref(name, new, PutMode::Update(version)).await
                }
                _ => Err(Self::precondition(name, expect)),
            },
            RefExpect::Absent => {
                for _ in 0..CAS_ATTEMPTS {
                    let Some(value) = new else {
                        // "Make sure it is absent": holds unless the ref has a value.
                        return match self.read_stored_ref(name).await? {
                            Some(StoredRef { value: Some(_), .. }) => {
                                Err(Self::precondition(name, expect))
                            }
                            _ => Ok(()),
                        };
                    };
                    match self.put_ref(name, Some(value), PutMode::Create).await {
                        Err(Error::Precondition { .. }) => {}
                        r => return r,
                    }
                    // Something is there: a live ref (we lost), or a tombstone to replace.
                    match self.read_stored_ref(name).await? {
                        Some(StoredRef { value: Some(_), .. }) => {
                            return Err(Self::precondition(name, expect));
                        }
                        Some(StoredRef {
                            value: None,
                            version,
                        }) => {
                            return match self.put_ref(name, new, PutMode::Update(version)).await {
                                Err(Error::Precondition { .. }) => {
                                    Err(Self::precondition(name, expect))
                                }
                                r => r,
                            };
                        }
                        // Deleted in between: try creating again.
                        None => {}
                    }
                }
                Err(Self::precondition(name, expect))
            }
        }
    }

    async fn read_file(&self, path: &str) -> Result<Option<Bytes>> {
        validate_repo_path(path)?;
        let key = self.key(path)?;
        match self.inner.get(&key).await {
            Ok(r) => match r.bytes().await {
                Ok(b) => Ok(Some(b)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.map(format!("reading {path}"), e)),
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.map(format!("reading {path}"), e)),
        }
    }

    async fn write_file(&self, path: &str, data: Bytes) -> Result<()> {
        validate_repo_path(path)?;
        let key = self.key(path)?;
        self.inner
            .put(&key, data.into())
            .await
            .map(|_| ())
            .map_err(|e| self.map(format!("writing {path}"), e))
    }

    async fn delete_file(&self, path: &str) -> Result<()> {
        validate_repo_path(path)?;
        let key = self.key(path)?;
        match self.inner.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map(format!("deleting {path}"), e)),
        }
    }

    async fn list_files(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .files_under(prefix)
            .await?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    async fn list_files_detailed(&self, prefix: &str) -> Result<Vec<ListedFile>> {
        self.files_under(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in [
            "heads/main",
            "heads/a/b-c.d",
            "remotes/origin/x86_64/stable",
            "mirrors/org.example.Coll/main",
        ] {
            validate_ref_name(ok).expect(ok);
        }
        for bad in [
            "",
            "/x",
            "heads/",
            "heads//x",
            "heads/../x",
            "heads/.x",
            "a b",
            "x\0",
        ] {
            assert!(validate_ref_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ref_dir("heads/").expect("valid"), "heads");
        assert_eq!(ref_dir("").expect("valid"), "");
        assert!(ref_dir("../").is_err());
    }

    #[test]
    fn ref_bodies() {
        let c = Checksum([7; 32]);
        assert_eq!(parse_ref("r", &ref_body(Some(c))).expect("valid"), Some(c));
        assert_eq!(parse_ref("r", b"").expect("tombstone"), None);
        assert!(parse_ref("r", b"zz\n").is_err());
        assert_eq!(ref_body(Some(c)).len(), 65);
    }
}
