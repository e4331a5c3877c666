//! Where pulled objects come from: a remote reached through [`Fetcher`]s (with retries, byte
//! range resume, the no-progress watchdog and mirror failover), or another local repository
//! (`pull-local`, `file://` remotes, `--localcache-repo`).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::fetcher::{FetchRequest, FetchStatus, Fetcher, no_progress};
use crate::objects::FileMeta;
use crate::repo::Repo;
use crate::store::ObjectRead;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// ostree's cap on metadata objects (`OSTREE_MAX_METADATA_SIZE`, 10 MiB).
pub const MAX_METADATA_SIZE: u64 = 10 * 1024 * 1024;

/// Cap on one content object held in memory while it is verified.
pub const MAX_CONTENT_SIZE: u64 = 4 * 1024 * 1024 * 1024;

/// Where a fetched body goes as it arrives: memory, or a file (a delta part).
pub trait BodySink: Send {
    /// Bytes held so far.
    fn len(&self) -> u64;
    /// Whether nothing is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drop what is held (the server did not honour a range request).
    fn clear(&mut self) -> Result<()>;
    /// Room for `n` more bytes is about to be needed.
    fn reserve(&mut self, _n: u64) {}
    /// Append a chunk.
    fn append(&mut self, chunk: &[u8]) -> Result<()>;
}

impl BodySink for BytesMut {
    fn len(&self) -> u64 {
        BytesMut::len(self) as u64
    }
    fn clear(&mut self) -> Result<()> {
        BytesMut::clear(self);
        Ok(())
    }
    fn reserve(&mut self, n: u64) {
        BytesMut::reserve(self, n.min(64 << 20) as usize);
    }
    fn append(&mut self, chunk: &[u8]) -> Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
}

/// A body appended to a file (writes go to the page cache: a chunk at a time, they are
/// not worth a trip through the blocking pool).
#[derive(Debug)]
pub struct FileSink {
    file: std::fs::File,
    path: std::path::PathBuf,
    len: u64,
}

impl FileSink {
    /// Open (creating it if needed) `path` to continue it: what it holds is kept, unless it
    /// is `max` bytes or more (it cannot be the beginning of the body then).
    pub fn open(path: &std::path::Path, max: u64) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io_path("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io_path("reading", path, e))?
            .len();
        let mut s = FileSink {
            file,
            path: path.to_path_buf(),
            len,
        };
        if len >= max {
            s.clear()?;
        }
        Ok(s)
    }

    /// The file, and where it is.
    pub fn into_parts(self) -> (std::fs::File, std::path::PathBuf) {
        (self.file, self.path)
    }
}

impl BodySink for FileSink {
    fn len(&self) -> u64 {
        self.len
    }
    fn clear(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(|e| Error::io_path("truncating", &self.path, e))?;
        self.len = 0;
        Ok(())
    }
    fn append(&mut self, chunk: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(chunk, self.len)
            .map_err(|e| Error::io_path("writing", &self.path, e))?;
        self.len += chunk.len() as u64;
        Ok(())
    }
}

/// A body held in memory up to a limit, then moved to an unnamed file (a large `.filez`
/// object: its compressed bytes are not held in memory while they arrive and are verified).
#[derive(Debug)]
pub struct SpillSink {
    mem: BytesMut,
    file: Option<std::fs::File>,
    len: u64,
    dir: std::path::PathBuf,
    limit: u64,
}

impl SpillSink {
    /// A sink that moves to a file in `dir` once it would hold more than `limit` bytes.
    pub fn new(dir: std::path::PathBuf, limit: u64) -> Self {
        SpillSink {
            mem: BytesMut::new(),
            file: None,
            len: 0,
            dir,
            limit,
        }
    }

    /// Move what is held to a new file (created in `dir` and unlinked at once: it goes
    /// with the last handle, whatever happens to this process).
    fn spill(&mut self) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let f = crate::spool::Spool::unlinked(&self.dir, "body")?;
        f.write_all_at(&self.mem, 0)
            .map_err(|e| Error::io_path("writing a spilled body in", &self.dir, e))?;
        self.mem = BytesMut::new();
        self.file = Some(f);
        Ok(())
    }

    /// The body: in memory, or the file holding it (read from its start).
    pub fn finish(self) -> SpilledBody {
        match self.file {
            Some(f) => SpilledBody::File(f, self.len),
            None => SpilledBody::Bytes(self.mem.freeze()),
        }
    }
}

/// What a [`SpillSink`] holds at the end.
#[derive(Debug)]
pub enum SpilledBody {
    /// Small enough for memory.
    Bytes(Bytes),
    /// An unlinked file and its length.
    File(std::fs::File, u64),
}

impl BodySink for SpillSink {
    fn len(&self) -> u64 {
        self.len
    }
    fn clear(&mut self) -> Result<()> {
        self.mem.clear();
        if let Some(f) = &self.file {
            f.set_len(0).map_err(|e| {
                Error::io(
                    format!("truncating a spool file in {}", self.dir.display()),
                    e,
                )
            })?;
        }
        self.len = 0;
        Ok(())
    }
    fn reserve(&mut self, n: u64) {
        // Only a body that stays in memory is worth room; a larger one spills on its first
        // chunk.
        if self.file.is_none() && self.len.saturating_add(n) <= self.limit {
            self.mem.reserve(n as usize);
        }
    }
    fn append(&mut self, chunk: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() && self.len + chunk.len() as u64 > self.limit {
            self.spill()?;
        }
        match &self.file {
            Some(f) => f.write_all_at(chunk, self.len).map_err(|e| {
                Error::io(format!("writing a spool file in {}", self.dir.display()), e)
            })?,
            None => self.mem.extend_from_slice(chunk),
        }
        self.len += chunk.len() as u64;
        Ok(())
    }
}

/// A content object as a source gives it.
#[derive(Debug)]
pub enum ContentPayload {
    /// `.filez` bytes (archive sources).
    Archived(Bytes),
    /// `.filez` bytes in an unlinked file, with their length (a large object).
    ArchivedFile(std::fs::File, u64),
    /// Decoded metadata and content bytes (bare sources).
    Decoded(FileMeta, Bytes),
}

/// One source of objects.
#[async_trait]
pub trait ObjectSource: Send + Sync + std::fmt::Debug {
    /// A metadata object's bytes, `None` when the source has none.
    async fn meta(&self, key: &ObjectKey) -> Result<Option<Bytes>>;
    /// A content object.
    async fn content(&self, csum: &Checksum) -> Result<ContentPayload>;
    /// A plain file of the source repository (`summary`, `config`, `refs/heads/X`), `None` if
    /// absent.
    async fn file(&self, path: &str, max: u64) -> Result<Option<Bytes>>;
    /// True for local repositories (ostree says "imported" rather than "fetched").
    fn is_local(&self) -> bool;
    /// Bytes of the pull moved over the network so far: objects, delta superblocks, parts and
    /// indexes. Like ostree's figure, it leaves out the repository's `summary`,
    /// `summary.sig` and `config`, fetched before the pull proper.
    fn bytes_transferred(&self) -> u64 {
        0
    }
    /// The remote behind this source, when it is one (static deltas need it).
    fn as_remote(&self) -> Option<&RemoteSource> {
        None
    }
    /// The repository behind this source, when it is a local one (objects may then be
    /// hardlinked from it).
    fn local_repo(&self) -> Option<&Repo> {
        None
    }
}

/// Retry and watchdog policy for network sources.
#[derive(Clone, Copy, Debug)]
pub struct NetPolicy {
    /// Retries of a transient failure (`--network-retries`, default 5).
    pub retries: u32,
    /// Fail a transfer that receives nothing for this long.
    pub idle_timeout: Duration,
}

impl Default for NetPolicy {
    fn default() -> Self {
        let idle = std::env::var("OSTREE_RS_FETCH_IDLE_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(30);
        NetPolicy {
            retries: 5,
            idle_timeout: Duration::from_secs(idle.max(1)),
        }
    }
}

/// Several fetchers for one repository (a mirrorlist): each request tries them in order.
#[derive(Debug)]
pub struct Mirrors(pub Vec<Arc<dyn Fetcher>>);

/// A remote reached through fetchers: metadata from `meta`, content (and delta parts) from
/// `content` (`contenturl`).
#[derive(Debug)]
pub struct RemoteSource {
    meta: Mirrors,
    content: Mirrors,
    policy: NetPolicy,
    bytes: AtomicU64,
    counters: Option<Arc<super::engine::Counters>>,
    /// Where bodies of content objects larger than [`SPILL_OVER`] go (none: memory).
    spool_dir: Option<std::path::PathBuf>,
}

/// Content objects (`.filez`) larger than this, as fetched, are received into an unlinked
/// file rather than memory when the source has a spool directory.
pub const SPILL_OVER: u64 = 512 * 1024;

impl RemoteSource {
    /// A source over mirrored fetchers.
    pub fn new(meta: Mirrors, content: Mirrors, policy: NetPolicy) -> Self {
        RemoteSource {
            meta,
            content,
            policy,
            bytes: AtomicU64::new(0),
            counters: None,
            spool_dir: None,
        }
    }

    /// Receive content objects larger than [`SPILL_OVER`] into unlinked files in `dir` (the
    /// repository's `tmp/`) rather than memory.
    pub fn with_spool_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.spool_dir = Some(dir);
        self
    }

    /// Also count received bytes into `counters` (a progress display reads them).
    pub fn with_counters(mut self, counters: Arc<super::engine::Counters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Fetch a path fully: retries transient errors with backoff, resumes a broken body with
    /// a range request, fails over to the next mirror, caps the size. `Ok(None)` for 404.
    pub async fn get(
        &self,
        mirrors: &Mirrors,
        path: &str,
        max: u64,
        if_none_match: Option<String>,
    ) -> Result<Option<(FetchStatus, Bytes, Option<String>)>> {
        // Like ostree's mirrored requests: a failure or a 404 on one mirror moves on to the
        // next; the answer is "not found" only when no mirror has it and none failed.
        let mut last: Option<Error> = None;
        let mut not_found = false;
        for f in &mirrors.0 {
            match self
                .get_one(f.as_ref(), path, max, if_none_match.clone())
                .await
            {
                Ok(Some(v)) => return Ok(Some(v)),
                Ok(None) => not_found = true,
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None if not_found => Ok(None),
            None => Err(Error::Other("no mirrors configured".into())),
        }
    }

    async fn get_one(
        &self,
        f: &dyn Fetcher,
        path: &str,
        max: u64,
        if_none_match: Option<String>,
    ) -> Result<Option<(FetchStatus, Bytes, Option<String>)>> {
        let mut buf = BytesMut::new();
        self.get_one_into(f, path, max, if_none_match, &mut buf)
            .await
            .map(|r| r.map(|(st, etag)| (st, std::mem::take(&mut buf).freeze(), etag)))
    }

    /// Fetch `path` from `f`, appending to `buf` (which may already hold the first bytes of
    /// the file: the request then asks for the rest with a byte range). On failure `buf`
    /// keeps what arrived, for a later resume.
    async fn get_one_into<S: BodySink + ?Sized>(
        &self,
        f: &dyn Fetcher,
        path: &str,
        max: u64,
        if_none_match: Option<String>,
        buf: &mut S,
    ) -> Result<Option<(FetchStatus, Option<String>)>> {
        let mut attempt = 0u32;
        let what = format!("{}{}", f.base_url(), path);
        let counted = !matches!(path, "summary" | "summary.sig" | "config");
        loop {
            let req = FetchRequest {
                path: path.to_string(),
                range_start: (!buf.is_empty()).then_some(buf.len()),
                if_none_match: if_none_match.clone(),
                if_modified_since: None,
            };
            let res = async {
                let resp = f.fetch(req).await?;
                if resp.status == FetchStatus::NotModified {
                    return Ok(Some((FetchStatus::NotModified, resp.etag)));
                }
                if resp.range_start.unwrap_or(0) != buf.len() {
                    buf.clear()?;
                }
                if let Some(len) = resp.content_length
                    && len.saturating_add(buf.len()) > max
                {
                    return Err(Error::Corrupted(format!(
                        "URI {what} exceeded maximum size of {max} bytes"
                    )));
                }
                if let Some(len) = resp.content_length {
                    buf.reserve(len);
                }
                let etag = resp.etag.clone();
                let mut body = resp.body;
                loop {
                    let next = tokio::time::timeout(self.policy.idle_timeout, body.next())
                        .await
                        .map_err(|_| no_progress(&what, self.policy.idle_timeout))?;
                    match next {
                        None => break,
                        Some(chunk) => {
                            let chunk = chunk?;
                            if counted {
                                self.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                                if let Some(c) = &self.counters {
                                    c.bytes_transferred
                                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                                }
                            }
                            if buf.len() + chunk.len() as u64 > max {
                                return Err(Error::Corrupted(format!(
                                    "URI {what} exceeded maximum size of {max} bytes"
                                )));
                            }
                            buf.append(&chunk)?;
                        }
                    }
                }
                Ok(Some((FetchStatus::Ok, etag)))
            }
            .await;
            match res {
                Ok(other) => return Ok(other),
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) if e.is_retryable() && attempt < self.policy.retries && !f.is_local() => {
                    attempt += 1;
                    let backoff = Duration::from_millis((100u64 << attempt.min(6)).min(5000));
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetch `path` fully from `mirrors`, continuing from the bytes already in `buf` (a
    /// download interrupted earlier, possibly by another pull) with a range request. On
    /// failure the error comes back with `buf` holding everything received so far, so the
    /// caller can keep it for the next attempt. `Ok(None)` for 404.
    pub async fn get_resumable(
        &self,
        mirrors: &Mirrors,
        path: &str,
        max: u64,
        buf: &mut BytesMut,
    ) -> Result<Option<Bytes>> {
        Ok(self
            .get_resumable_into(mirrors, path, max, buf)
            .await?
            .map(|()| std::mem::take(buf).freeze()))
    }

    /// [`RemoteSource::get_resumable`] into any [`BodySink`] (a file, for delta parts):
    /// `Ok(Some(()))` when `sink` holds the whole body.
    pub async fn get_resumable_into<S: BodySink + ?Sized>(
        &self,
        mirrors: &Mirrors,
        path: &str,
        max: u64,
        buf: &mut S,
    ) -> Result<Option<()>> {
        let mut last: Option<Error> = None;
        let mut not_found = false;
        for f in &mirrors.0 {
            match self.get_one_into(f.as_ref(), path, max, None, buf).await {
                Ok(Some(_)) => return Ok(Some(())),
                Ok(None) => not_found = true,
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e),
            None if not_found => Ok(None),
            None => Err(Error::Other("no mirrors configured".into())),
        }
    }

    /// The metadata mirrors.
    pub fn meta_mirrors(&self) -> &Mirrors {
        &self.meta
    }

    /// The content mirrors.
    pub fn content_mirrors(&self) -> &Mirrors {
        &self.content
    }
}

#[async_trait]
impl ObjectSource for RemoteSource {
    async fn meta(&self, key: &ObjectKey) -> Result<Option<Bytes>> {
        let path = key.loose_path(true);
        // Like ostree: detached metadata comes from the metadata URL, every other object
        // from the content URL (`contenturl`).
        let mirrors = if key.ty == ObjectType::CommitMeta {
            &self.meta
        } else {
            &self.content
        };
        Ok(self
            .get(mirrors, &path, MAX_METADATA_SIZE, None)
            .await?
            .map(|(_, b, _)| b))
    }

    async fn content(&self, csum: &Checksum) -> Result<ContentPayload> {
        let key = ObjectKey::new(*csum, ObjectType::File);
        let path = key.loose_path(true);
        let got = match &self.spool_dir {
            Some(dir) => {
                let mut sink = SpillSink::new(dir.clone(), SPILL_OVER);
                self.get_resumable_into(&self.content, &path, MAX_CONTENT_SIZE, &mut sink)
                    .await?
                    .map(|()| match sink.finish() {
                        SpilledBody::Bytes(b) => ContentPayload::Archived(b),
                        SpilledBody::File(f, n) => ContentPayload::ArchivedFile(f, n),
                    })
            }
            None => self
                .get(&self.content, &path, MAX_CONTENT_SIZE, None)
                .await?
                .map(|(_, b, _)| ContentPayload::Archived(b)),
        };
        got.ok_or_else(|| {
            Error::not_found(format!(
                "Server returned HTTP 404 for {path}: object {csum}.file not found"
            ))
        })
    }

    async fn file(&self, path: &str, max: u64) -> Result<Option<Bytes>> {
        Ok(self
            .get(&self.meta, path, max, None)
            .await?
            .map(|(_, b, _)| b))
    }

    fn is_local(&self) -> bool {
        // Even `file://` fetchers are a fetch, verified like HTTP (ostree imports directly
        // only from a repository it opens, which is [`LocalSource`]).
        false
    }

    fn as_remote(&self) -> Option<&RemoteSource> {
        Some(self)
    }

    fn bytes_transferred(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Another repository opened through the storage registry.
#[derive(Debug, Clone)]
pub struct LocalSource {
    /// The source repository.
    pub repo: Repo,
}

#[async_trait]
impl ObjectSource for LocalSource {
    async fn meta(&self, key: &ObjectKey) -> Result<Option<Bytes>> {
        match self.repo.store().get(key).await {
            Ok(o) => Ok(Some(o.into_meta()?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn content(&self, csum: &Checksum) -> Result<ContentPayload> {
        let key = ObjectKey::new(*csum, ObjectType::File);
        let store = self.repo.store();
        if store.mode().is_archive() {
            return Ok(ContentPayload::Archived(store.get_raw(&key).await?));
        }
        let c = match store.get(&key).await? {
            ObjectRead::Content(c) => c,
            ObjectRead::Meta(_) => return Err(Error::corrupted(format!("{key}: not content"))),
        };
        let size = c.size;
        let meta = c.meta;
        let body = c.body;
        let bytes = tokio::task::spawn_blocking(move || -> Result<Bytes> {
            let mut v = Vec::with_capacity(size.min(MAX_CONTENT_SIZE) as usize);
            body.into_reader()
                .take(size)
                .read_to_end(&mut v)
                .map_err(|e| Error::io(format!("Reading {key}"), e))?;
            Ok(Bytes::from(v))
        })
        .await
        .map_err(|e| Error::Other(format!("reading content: {e}")))??;
        Ok(ContentPayload::Decoded(meta, bytes))
    }

    async fn file(&self, path: &str, _max: u64) -> Result<Option<Bytes>> {
        if let Some(name) = path.strip_prefix("refs/") {
            return Ok(self
                .repo
                .store()
                .read_ref(name)
                .await?
                .map(|c| Bytes::from(format!("{c}\n"))));
        }
        self.repo.store().read_file(path).await
    }

    fn is_local(&self) -> bool {
        true
    }

    fn local_repo(&self) -> Option<&Repo> {
        Some(&self.repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_sinks_move_large_bodies_to_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Under the limit: memory.
        let mut s = SpillSink::new(dir.path().to_path_buf(), 8);
        s.reserve(6);
        s.append(b"abc").expect("append");
        s.append(b"def").expect("append");
        match s.finish() {
            SpilledBody::Bytes(b) => assert_eq!(&b[..], b"abcdef"),
            SpilledBody::File(..) => panic!("spilled under the limit"),
        }
        // Over it: an unlinked file holding every byte, the first ones included.
        let mut s = SpillSink::new(dir.path().to_path_buf(), 8);
        s.append(b"abcdef").expect("append");
        s.append(b"ghij").expect("append");
        assert_eq!(s.len(), 10);
        s.append(b"k").expect("append");
        let (mut f, len) = match s.finish() {
            SpilledBody::File(f, len) => (f, len),
            SpilledBody::Bytes(_) => panic!("not spilled"),
        };
        assert_eq!(len, 11);
        let mut got = Vec::new();
        f.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"abcdefghijk");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("readdir").count(),
            0,
            "the spool file has no name"
        );
        // Cleared after spilling (a range the server did not honour): starts over.
        let mut s = SpillSink::new(dir.path().to_path_buf(), 4);
        s.append(b"0123456").expect("append");
        s.clear().expect("clear");
        s.append(b"xy").expect("append");
        match s.finish() {
            SpilledBody::File(mut f, 2) => {
                let mut got = Vec::new();
                f.read_to_end(&mut got).expect("read");
                assert_eq!(got, b"xy");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_sinks_continue_or_start_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("part.partial");
        let mut s = FileSink::open(&p, 10).expect("open");
        assert!(s.is_empty());
        s.append(b"abc").expect("append");
        s.append(b"de").expect("append");
        drop(s);
        // A later pull continues from what was kept.
        let s = FileSink::open(&p, 10).expect("reopen");
        assert_eq!(s.len(), 5);
        drop(s);
        assert_eq!(std::fs::read(&p).expect("read"), b"abcde");
        // Not shorter than the whole body: not a beginning of it.
        let mut s = FileSink::open(&p, 5).expect("reopen");
        assert!(s.is_empty());
        s.append(b"xy").expect("append");
        s.clear().expect("clear");
        s.append(b"z").expect("append");
        let (_, path) = s.into_parts();
        assert_eq!(std::fs::read(path).expect("read"), b"z");
    }
}
