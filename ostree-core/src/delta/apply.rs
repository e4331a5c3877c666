//! Executing delta parts: the operation interpreter and offline application of a delta.
//!
//! Every object a part produces is checksum-verified before it is stored; every offset and
//! length (payload ranges, read-source ranges, mode/xattr table indices, bsdiff controls) is
//! bounds-checked; a malformed part is an error naming the part and opcode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::bspatch;
use super::format::{self, PartHeader, PartPayload, Superblock, op, read_varuint};
use crate::objects::{
    Commit, DirMeta, DirTree, FileMeta, S_IFLNK, S_IFMT, S_IFREG, content_checksum,
};
use crate::repo::Repo;
use crate::store::{ContentSource, ObjectWrite};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Counts of executed operations, in ostree's order (`static-delta show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// open-splice-and-close, open, write, set-read-source, unset-read-source, close, bspatch.
    pub n_ops: [u32; 7],
}

fn op_index(o: u8) -> Option<usize> {
    Some(match o {
        op::OPEN_SPLICE_AND_CLOSE => 0,
        op::OPEN => 1,
        op::WRITE => 2,
        op::SET_READ_SOURCE => 3,
        op::UNSET_READ_SOURCE => 4,
        op::CLOSE => 5,
        op::BSPATCH => 6,
        _ => return None,
    })
}

/// What the interpreter produces: verified objects to store.
#[derive(Debug)]
pub struct ProducedObject {
    /// The object.
    pub key: ObjectKey,
    /// What to give to `put`.
    pub write: ObjectWrite,
    /// The spool file a large object's content was written to (its `ContentSource::Path`):
    /// removed when this is dropped, so it must live until the object is stored.
    spool: Option<crate::spool::Spool>,
}

impl ProducedObject {
    fn new(key: ObjectKey, write: ObjectWrite) -> Self {
        ProducedObject {
            key,
            write,
            spool: None,
        }
    }
}

/// Source of read-source objects and of "do we already have it" answers.
pub(crate) trait PartEnv {
    fn have(&mut self, idx: usize) -> bool;
    fn source(&mut self, csum: &Checksum) -> Result<Bytes>;
    /// Where content objects larger than [`STREAM_OBJECT_OVER`] are written as they are
    /// produced (and verified) instead of being assembled in memory; `None`: in memory.
    fn spool_dir(&self) -> Option<&Path> {
        None
    }
}

/// Content objects larger than this are streamed into a spool file (checksummed as they are
/// written, verified before they are stored) rather than assembled in memory, when the
/// environment has a spool directory: applying a part whose one object is a 32 MB file then
/// costs a few buffers, not the object twice over, while the next part's xz dictionary fills.
pub const STREAM_OBJECT_OVER: u64 = 2 * 1024 * 1024;

/// The content of the object being written.
enum Sink {
    /// Assembled in memory.
    Memory(Vec<u8>),
    /// Streamed into a spool file, checksummed (header first) as it is written.
    Spooled {
        spool: crate::spool::Spool,
        file: std::fs::File,
        hasher: crate::checksum::Hasher,
        written: u64,
    },
}

impl Sink {
    /// Where to write a content object of `size` bytes, of which at most `avail` can come
    /// from the part's payload: a spool file in `spool_dir` when it is large, else memory.
    fn for_object(
        spool_dir: Option<&Path>,
        meta: &FileMeta,
        size: u64,
        avail: u64,
    ) -> Result<Sink> {
        match Self::stream_dir(spool_dir, meta, size) {
            Some(dir) => Self::spooled(dir, meta),
            // Output bytes all come from the payload or the source: never reserve more than
            // those can supply.
            None => Ok(Sink::Memory(Vec::with_capacity(
                size.min(64 * 1024 * 1024)
                    .min(avail.saturating_add(1 << 20)) as usize,
            ))),
        }
    }

    /// The directory to stream a content object of `size` bytes into, if it is streamed.
    fn stream_dir<'a>(spool_dir: Option<&'a Path>, meta: &FileMeta, size: u64) -> Option<&'a Path> {
        spool_dir.filter(|_| size > STREAM_OBJECT_OVER && meta.is_regular())
    }

    /// A new spool file in `dir` for a content object with `meta`.
    fn spooled(dir: &Path, meta: &FileMeta) -> Result<Sink> {
        let (spool, file) = crate::spool::Spool::create(dir, "deltaobj")?;
        let mut hasher = crate::checksum::Hasher::new();
        hasher.update(&meta.file_header());
        Ok(Sink::Spooled {
            spool,
            file,
            hasher,
            written: 0,
        })
    }

    /// Verify the finished object and build its write.
    fn finish(self, key: &ObjectKey, meta: FileMeta) -> Result<ProducedObject> {
        match self {
            Sink::Memory(b) => finish_content(key, meta, Bytes::from(b)),
            Sink::Spooled {
                spool,
                file,
                hasher,
                written,
            } => {
                drop(file);
                finish_spooled(key, meta, spool, hasher, written)
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            Sink::Memory(b) => b.len() as u64,
            Sink::Spooled { written, .. } => *written,
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(b) => b.extend_from_slice(data),
            Sink::Spooled {
                file,
                hasher,
                written,
                ..
            } => {
                std::io::Write::write_all(file, data)
                    .map_err(|e| Error::io("writing a large delta object to its spool file", e))?;
                hasher.update(data);
                *written += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Append `len` bytes of the payload at `off` (bounds-checked).
    fn append_payload(&mut self, payload: &dyn PayloadRead, off: u64, len: u64) -> Result<()> {
        match self {
            Sink::Memory(b) => payload.read_onto(off, len, b),
            Sink::Spooled { .. } => {
                let mut buf = Vec::new();
                payload.check(off, len)?;
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(1 << 20);
                    buf.clear();
                    payload.read_onto(off + done, n, &mut buf)?;
                    self.append(&buf)?;
                    done += n;
                }
                Ok(())
            }
        }
    }
}

enum Src {
    Unset,
    Loaded(Bytes),
    /// Set, but not read: the object it serves is skipped.
    Unloaded,
}

struct Open {
    idx: usize,
    key: ObjectKey,
    meta: FileMeta,
    size: u64,
    buf: Sink,
    skip: bool,
}

fn bounds(payload: &Bytes, off: u64, len: u64) -> Result<Bytes> {
    let end = off
        .checked_add(len)
        .filter(|e| *e <= payload.len() as u64)
        .ok_or_else(|| Error::corrupted(format!("Invalid offset/length {off}/{len}")))?;
    Ok(payload.slice(off as usize..end as usize))
}

/// Random access to a part's payload, held in memory or in a spool file.
pub(crate) trait PayloadRead {
    /// Length of the payload.
    fn len(&self) -> u64;
    /// `len` bytes at `off`, bounds-checked.
    fn read(&self, off: u64, len: u64) -> Result<Bytes>;
    /// Append `len` bytes at `off` to `out`, bounds-checked.
    fn read_onto(&self, off: u64, len: u64, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.read(off, len)?);
        Ok(())
    }
    /// Fail unless `len` bytes at `off` are within the payload.
    fn check(&self, off: u64, len: u64) -> Result<()> {
        off.checked_add(len)
            .filter(|e| *e <= self.len())
            .map(|_| ())
            .ok_or_else(|| Error::corrupted(format!("Invalid offset/length {off}/{len}")))
    }
}

impl PayloadRead for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }
    fn read(&self, off: u64, len: u64) -> Result<Bytes> {
        bounds(self, off, len)
    }
}

/// A payload in a file (a decompressed part spooled to disk): read on demand.
#[derive(Debug)]
struct FilePayload {
    file: std::fs::File,
    start: u64,
    len: u64,
}

impl PayloadRead for FilePayload {
    fn len(&self) -> u64 {
        self.len
    }
    fn read(&self, off: u64, len: u64) -> Result<Bytes> {
        let mut buf = Vec::new();
        self.read_onto(off, len, &mut buf)?;
        Ok(Bytes::from(buf))
    }
    fn read_onto(&self, off: u64, len: u64, out: &mut Vec<u8>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.check(off, len)?;
        let n = usize::try_from(len)
            .map_err(|_| Error::corrupted(format!("Invalid offset/length {off}/{len}")))?;
        let at = out.len();
        out.resize(at + n, 0);
        self.file
            .read_exact_at(&mut out[at..], self.start + off)
            .map_err(|e| Error::io("reading a spooled delta part", e))
    }
}

/// A part ready to run: tables and operations in memory, the payload wherever it is.
pub(crate) struct PartView<'a> {
    modes: &'a [(u32, u32, u32)],
    xattrs: &'a [crate::objects::Xattrs],
    ops: &'a [u8],
    payload: &'a dyn PayloadRead,
}

impl<'a> From<&'a PartPayload> for PartView<'a> {
    fn from(p: &'a PartPayload) -> Self {
        PartView {
            modes: &p.modes,
            xattrs: &p.xattrs,
            ops: &p.ops,
            payload: &p.payload,
        }
    }
}

/// With `OSTREE_RS_APPLY_TRACE` set, print `what` with the time since the first trace line
/// (part decompression and execution timings, on stderr).
fn trace(what: impl FnOnce() -> String) {
    static T0: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    if let Some(t0) = T0.get_or_init(|| {
        std::env::var_os("OSTREE_RS_APPLY_TRACE").map(|_| std::time::Instant::now())
    }) {
        eprintln!("[apply {:7.3}s] {}", t0.elapsed().as_secs_f64(), what());
    }
}

/// The calling thread's CPU time so far, in seconds (for [`trace`]: a decompression whose
/// CPU time falls short of its wall time waited for a CPU).
fn thread_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Parts whose declared uncompressed size is larger than this are decompressed into a spool
/// file (in the repository's `tmp/`) and their payload is read from there as operations need
/// it, rather than held in memory whole.
pub const SPOOL_PART_OVER: u64 = 4 * 1024 * 1024;

/// Memory allowed for parts being decompressed at once, in MiB. An xz decoder's dictionary
/// fills as the part is decompressed (up to the part's size, 32 MiB for ostree's parts), so
/// decompressing two large parts together costs two dictionaries: a part waits until the
/// budget has room for its size (capped at the budget). Executing a decompressed part
/// takes no budget, so one part's operations run while the next is decompressed.
const DECOMPRESS_BUDGET_MIB: u32 = 32;

static DECOMPRESS_BUDGET: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(DECOMPRESS_BUDGET_MIB as usize);

/// The share of [`DECOMPRESS_BUDGET_MIB`] a part of `usize` uncompressed bytes takes.
fn decompress_cost(usize: u64) -> u32 {
    u32::try_from(usize.div_ceil(1 << 20))
        .unwrap_or(u32::MAX)
        .clamp(1, DECOMPRESS_BUDGET_MIB)
}

/// A decompressed part, in memory or spooled.
enum OpenedPart {
    Memory(PartPayload),
    Spooled {
        modes: Vec<(u32, u32, u32)>,
        xattrs: Vec<crate::objects::Xattrs>,
        ops: Vec<u8>,
        payload: FilePayload,
    },
}

impl OpenedPart {
    fn view(&self) -> PartView<'_> {
        match self {
            OpenedPart::Memory(p) => p.into(),
            OpenedPart::Spooled {
                modes,
                xattrs,
                ops,
                payload,
            } => PartView {
                modes,
                xattrs,
                ops,
                payload,
            },
        }
    }
}

/// A part file as fetched or read: in memory, or in a file (a downloaded part).
#[derive(Debug)]
pub(crate) enum RawPart {
    Bytes(Bytes),
    File(std::fs::File),
}

/// Check a part file's size and SHA-256 against its header, reading it in pieces.
pub(crate) fn check_part_file(f: &std::fs::File, h: &PartHeader) -> Result<()> {
    let len = f
        .metadata()
        .map_err(|e| Error::io("reading a delta part", e))?
        .len();
    if len != h.size {
        return Err(Error::corrupted(format!(
            "Static delta part has size {len} but the superblock says {}",
            h.size
        )));
    }
    // Positional reads: the descriptor's offset is left to whoever else reads the file (the
    // decompression running beside this check).
    use std::os::unix::fs::FileExt;
    let mut hasher = crate::checksum::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        match f.read_at(&mut buf, off) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading a delta part", e)),
        }
    }
    let actual = hasher.finish();
    if actual != h.checksum {
        return Err(Error::corrupted(format!(
            "Checksum mismatch in static delta part; expected={} actual={}",
            h.checksum, actual
        )));
    }
    Ok(())
}

/// [`open_part_for_apply`] on a part in memory or in a file.
fn open_raw_part_for_apply(
    raw: RawPart,
    h: &PartHeader,
    verify: bool,
    spool_over: u64,
    spool_dir: &Path,
) -> Result<OpenedPart> {
    use std::io::{Read, Seek};
    let mut f = match raw {
        RawPart::Bytes(b) => return open_part_for_apply(&b, h, verify, spool_over, spool_dir),
        RawPart::File(f) => f,
    };
    let rerr = |e: std::io::Error| Error::io("reading a delta part", e);
    f.rewind().map_err(rerr)?;
    if h.usize <= spool_over {
        let mut raw = Vec::new();
        (&f).take(h.size.saturating_add(1))
            .read_to_end(&mut raw)
            .map_err(rerr)?;
        return open_part_for_apply(&raw, h, verify, spool_over, spool_dir);
    }
    checked_beside(
        verify,
        || check_part_file(&f, h),
        || {
            let mut r = std::io::BufReader::with_capacity(256 * 1024, &f);
            let mut comptype = [0u8; 1];
            r.read_exact(&mut comptype).map_err(|_| {
                Error::corrupted("Reading initial compression flag byte: empty part")
            })?;
            if comptype[0] != format::COMPRESSION_XZ {
                let mut raw = comptype.to_vec();
                r.take(h.size).read_to_end(&mut raw).map_err(rerr)?;
                return open_part_for_apply(&raw, h, false, u64::MAX, spool_dir);
            }
            spool_decompressed(r, h, spool_dir)
        },
    )
}

/// Run `open` (a part's decompression) while `check` (its SHA-256 against the superblock)
/// runs on a thread beside it, when `verify`: the check is off the critical path of an
/// application, where decompression is one part after another (on the debootstrap delta,
/// ~7 ms per 10 MB part). Nothing of the part is used before both are done, and a failed
/// check is the error reported, whatever the decompression made of the bytes.
fn checked_beside<T: Send>(
    verify: bool,
    check: impl FnOnce() -> Result<()> + Send,
    open: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if !verify {
        return open();
    }
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("ostree-part-check".into())
            .spawn_scoped(s, check)
            .map_err(|e| Error::io("starting a delta part check", e))?;
        let opened = open();
        handle
            .join()
            .map_err(|_| Error::Other("delta part check panicked".into()))??;
        opened
    })
}

/// Verify (when `expected`) and decompress a part file: into memory when small or not
/// xz-compressed, else into a spool file in `spool_dir` whose payload is read on demand.
fn open_part_for_apply(
    raw: &[u8],
    h: &PartHeader,
    verify: bool,
    spool_over: u64,
    spool_dir: &Path,
) -> Result<OpenedPart> {
    let limit = format::part_size_limit(h);
    if h.usize <= spool_over || raw.first() != Some(&format::COMPRESSION_XZ) {
        return Ok(OpenedPart::Memory(format::open_part(
            raw,
            verify.then_some(h),
            limit,
        )?));
    }
    checked_beside(
        verify,
        || format::check_part(raw, h),
        || spool_decompressed(raw.get(1..).unwrap_or_default(), h, spool_dir),
    )
}

/// Parts up to this size (uncompressed) are spooled into an anonymous memory file rather
/// than a file in the repository's `tmp/`.
const MEMFD_SPOOL_MAX: u64 = 64 * 1024 * 1024;

/// A file to spool a decompressed part of `size` bytes into, open for reading and writing:
/// an anonymous memory file (`memfd`) when the part is at most [`MEMFD_SPOOL_MAX`] and the
/// kernel has them, else an unlinked file in `spool_dir`.
///
/// A memory file is never written back to disk: a spool in `tmp/` sits on the repository's
/// filesystem, where the `syncfs` that makes the objects durable would also write out the
/// spool's dirty pages (tens of MB per part) for nothing. Its pages are shared memory, like a
/// tmpfs file's: they count in the system's memory, not in this process's resident set
/// (this is what a spool file in the page cache costs too), and they are freed when the part
/// is done. At most [`DECOMPRESS_BUDGET_MIB`] of parts are decompressed at once, and an
/// application executes at most its `jobs` parts at once.
fn spool_file(size: u64, spool_dir: &Path) -> Result<std::fs::File> {
    if size <= MEMFD_SPOOL_MAX
        && let Ok(fd) =
            rustix::fs::memfd_create("ostree-deltapart", rustix::fs::MemfdFlags::CLOEXEC)
    {
        return Ok(std::fs::File::from(fd));
    }
    crate::spool::Spool::unlinked(spool_dir, "deltapart")
}

/// Decompress a part's xz stream `body` into a spool file (see [`spool_file`]); its tables
/// and operations are read back into memory, its payload left there to be read on demand.
fn spool_decompressed(
    body: impl std::io::Read,
    h: &PartHeader,
    spool_dir: &Path,
) -> Result<OpenedPart> {
    let limit = format::part_size_limit(h);
    let mut file = spool_file(h.usize, spool_dir)?;
    // The stream's own check (CRC64) is not computed: the part file's SHA-256 is checked
    // against the superblock before it is decompressed, and every object it produces is
    // verified before it is stored.
    let len = format::xz_decompress_to_unchecked(body, limit, &mut file, h.usize)?;
    let read_at = |off: u64, n: usize| -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; n];
        file.read_exact_at(&mut b, off)
            .map_err(|e| Error::io("reading a spooled delta part", e))?;
        Ok(b)
    };
    let tl = format::PartFraming::tail_len(len);
    if len < tl as u64 {
        return Err(Error::corrupted("Invalid delta part framing"));
    }
    let fr = format::PartFraming::parse(len, &read_at(len - tl as u64, tl)?)?;
    let (modes, xattrs) = format::parse_part_tables(&read_at(0, fr.xattrs_end)?, fr.modes_end)?;
    let ops = read_at(fr.payload_end as u64, fr.ops_end - fr.payload_end)?;
    Ok(OpenedPart::Spooled {
        modes,
        xattrs,
        ops,
        payload: FilePayload {
            file,
            start: fr.xattrs_end as u64,
            len: (fr.payload_end - fr.xattrs_end) as u64,
        },
    })
}

fn file_meta(part: &PartView<'_>, mode_idx: u64, xattr_idx: u64) -> Result<FileMeta> {
    let (uid, gid, mode) = *usize::try_from(mode_idx)
        .ok()
        .and_then(|i| part.modes.get(i))
        .ok_or_else(|| Error::corrupted(format!("Invalid mode index {mode_idx}")))?;
    let xattrs = usize::try_from(xattr_idx)
        .ok()
        .and_then(|i| part.xattrs.get(i))
        .ok_or_else(|| Error::corrupted(format!("Invalid xattr index {xattr_idx}")))?
        .clone();
    match mode & S_IFMT {
        S_IFREG | S_IFLNK => {}
        _ => {
            return Err(Error::corrupted(format!(
                "Invalid file mode {mode:o} in delta part"
            )));
        }
    }
    Ok(FileMeta {
        uid,
        gid,
        mode,
        symlink_target: None,
        xattrs,
    })
}

/// Verify content and build the object write.
fn finish_content(key: &ObjectKey, mut meta: FileMeta, content: Bytes) -> Result<ProducedObject> {
    if meta.is_symlink() {
        let t = std::str::from_utf8(&content)
            .ok()
            .filter(|t| !t.is_empty() && !t.contains('\0'))
            .ok_or_else(|| Error::corrupted("Invalid symlink target in delta part"))?;
        meta.symlink_target = Some(t.to_string());
        meta.validate()?;
        let actual = content_checksum(&meta, std::io::empty())?;
        crate::content::check(ObjectType::File, &key.checksum, &actual)?;
        return Ok(ProducedObject::new(
            *key,
            ObjectWrite::Content {
                meta,
                size: 0,
                source: ContentSource::Bytes(Bytes::new()),
            },
        ));
    }
    meta.validate()?;
    let actual = content_checksum(&meta, &content[..])?;
    crate::content::check(ObjectType::File, &key.checksum, &actual)?;
    Ok(ProducedObject::new(
        *key,
        ObjectWrite::Content {
            meta,
            size: content.len() as u64,
            source: ContentSource::Bytes(content),
        },
    ))
}

/// Verify a content object written to a spool file and build the object write.
fn finish_spooled(
    key: &ObjectKey,
    meta: FileMeta,
    spool: crate::spool::Spool,
    hasher: crate::checksum::Hasher,
    size: u64,
) -> Result<ProducedObject> {
    crate::content::check(ObjectType::File, &key.checksum, &hasher.finish())?;
    Ok(ProducedObject {
        key: *key,
        write: ObjectWrite::Content {
            meta,
            size,
            source: ContentSource::Path(spool.path().to_path_buf()),
        },
        spool: Some(spool),
    })
}

fn finish_meta(key: &ObjectKey, data: Bytes) -> Result<ProducedObject> {
    match key.ty {
        ObjectType::DirTree => {
            DirTree::from_bytes(&data)?;
        }
        ObjectType::DirMeta => {
            DirMeta::from_bytes(&data)?;
        }
        ObjectType::Commit => {
            Commit::from_bytes(&data)?;
        }
        _ => {
            return Err(Error::corrupted(format!(
                "Unsupported object type {} in delta part",
                key.ty.name()
            )));
        }
    }
    crate::content::check(key.ty, &key.checksum, &Checksum::of(&data))?;
    Ok(ProducedObject::new(*key, ObjectWrite::Meta(data)))
}

/// Run the operations of a part. With `stats_only`, nothing is produced or read (as
/// `static-delta show`); otherwise `emit` receives each verified object.
pub(crate) fn execute(
    objects: &[ObjectKey],
    part: &PartPayload,
    stats_only: bool,
    env: &mut dyn PartEnv,
    emit: &mut dyn FnMut(ProducedObject) -> Result<()>,
) -> Result<OpStats> {
    execute_view(objects, &part.into(), stats_only, env, emit)
}

/// [`execute`] on a part whose payload may be in memory or spooled.
fn execute_view(
    objects: &[ObjectKey],
    part: &PartView<'_>,
    stats_only: bool,
    env: &mut dyn PartEnv,
    emit: &mut dyn FnMut(ProducedObject) -> Result<()>,
) -> Result<OpStats> {
    let mut stats = OpStats::default();
    if objects.is_empty() {
        return Ok(stats);
    }
    let ops = part.ops;
    let payload = part.payload;
    let mut pos = 0usize;
    let mut index = 0usize;
    let mut source = Src::Unset;
    let mut open: Option<Open> = None;
    let mut n_executed = 0u64;
    let next_obj = |index: usize| -> Result<ObjectKey> {
        objects
            .get(index)
            .copied()
            .ok_or_else(|| Error::corrupted("Delta part operations exceed its object list"))
    };
    while pos < ops.len() {
        let opcode = ops[pos];
        pos += 1;
        let prefix =
            |e: Error, name: &str| -> Error { Error::corrupted(format!("opcode {name}: {e}")) };
        match opcode {
            op::OPEN_SPLICE_AND_CLOSE => {
                let r: Result<()> = (|| {
                    if open.is_some() {
                        return Err(Error::corrupted("object already open"));
                    }
                    let key = next_obj(index)?;
                    if key.ty.is_meta() {
                        let len = read_varuint(ops, &mut pos)?;
                        let off = read_varuint(ops, &mut pos)?;
                        if !stats_only && !env.have(index) {
                            emit(finish_meta(&key, payload.read(off, len)?)?)?;
                        } else if off.checked_add(len).is_none_or(|e| e > payload.len()) {
                            return Err(Error::corrupted(format!(
                                "Invalid offset/length {off}/{len}"
                            )));
                        }
                    } else {
                        let mi = read_varuint(ops, &mut pos)?;
                        let xi = read_varuint(ops, &mut pos)?;
                        let size = read_varuint(ops, &mut pos)?;
                        let off = read_varuint(ops, &mut pos)?;
                        let meta = file_meta(part, mi, xi)?;
                        if !stats_only && !env.have(index) {
                            payload.check(off, size)?;
                            emit(match Sink::stream_dir(env.spool_dir(), &meta, size) {
                                None => finish_content(&key, meta, payload.read(off, size)?)?,
                                Some(dir) => {
                                    let mut sink = Sink::spooled(dir, &meta)?;
                                    sink.append_payload(payload, off, size)?;
                                    sink.finish(&key, meta)?
                                }
                            })?;
                        } else if off.checked_add(size).is_none_or(|e| e > payload.len()) {
                            return Err(Error::corrupted(format!(
                                "Invalid offset/length {off}/{size}"
                            )));
                        }
                    }
                    source = Src::Unset;
                    index += 1;
                    Ok(())
                })();
                r.map_err(|e| prefix(e, "open-splice-and-close"))?;
            }
            op::OPEN => {
                let r: Result<()> = (|| {
                    if open.is_some() {
                        return Err(Error::corrupted("object already open"));
                    }
                    let key = next_obj(index)?;
                    if key.ty != ObjectType::File {
                        return Err(Error::corrupted("open of a metadata object"));
                    }
                    let mi = read_varuint(ops, &mut pos)?;
                    let xi = read_varuint(ops, &mut pos)?;
                    let size = read_varuint(ops, &mut pos)?;
                    let meta = file_meta(part, mi, xi)?;
                    let skip = stats_only || env.have(index);
                    let buf = if skip {
                        Sink::Memory(Vec::new())
                    } else {
                        Sink::for_object(env.spool_dir(), &meta, size, payload.len())?
                    };
                    open = Some(Open {
                        idx: index,
                        key,
                        meta,
                        size,
                        buf,
                        skip,
                    });
                    Ok(())
                })();
                r.map_err(|e| prefix(e, "open"))?;
            }
            op::WRITE => {
                let r: Result<()> = (|| {
                    let len = read_varuint(ops, &mut pos)?;
                    let off = read_varuint(ops, &mut pos)?;
                    let o = open
                        .as_mut()
                        .ok_or_else(|| Error::corrupted("no object open"))?;
                    match &source {
                        Src::Loaded(src) => {
                            let data = bounds(src, off, len).map_err(|_| {
                                Error::corrupted(format!(
                                    "Unexpected EOF reading source object at {off}/{len}"
                                ))
                            })?;
                            if o.skip {
                                return Ok(());
                            }
                            if o.buf.len().checked_add(len).is_none_or(|n| n > o.size) {
                                return Err(Error::corrupted("write beyond the object size"));
                            }
                            o.buf.append(&data)
                        }
                        Src::Unloaded => {
                            o.skip = true;
                            Ok(())
                        }
                        Src::Unset if o.skip => payload.check(off, len),
                        Src::Unset => {
                            payload.check(off, len)?;
                            if o.buf.len().checked_add(len).is_none_or(|n| n > o.size) {
                                return Err(Error::corrupted("write beyond the object size"));
                            }
                            o.buf.append_payload(payload, off, len)
                        }
                    }
                })();
                r.map_err(|e| prefix(e, "write"))?;
            }
            op::SET_READ_SOURCE => {
                let r: Result<()> = (|| {
                    let off = read_varuint(ops, &mut pos)?;
                    let c = payload.read(off, 32)?;
                    if stats_only {
                        source = Src::Unloaded;
                        return Ok(());
                    }
                    let csum = Checksum::from_bytes(&c)?;
                    // Only load the source when an object that needs it is being written.
                    let needed = match &open {
                        Some(o) => !o.skip,
                        None => index < objects.len() && !env.have(index),
                    };
                    source = if needed {
                        Src::Loaded(env.source(&csum)?)
                    } else {
                        Src::Unloaded
                    };
                    Ok(())
                })();
                r.map_err(|e| prefix(e, "set-read-source"))?;
            }
            op::UNSET_READ_SOURCE => {
                source = Src::Unset;
            }
            op::CLOSE => {
                let r: Result<()> = (|| {
                    let o = open
                        .take()
                        .ok_or_else(|| Error::corrupted("no object open"))?;
                    source = Src::Unset;
                    if !o.skip {
                        if o.buf.len() != o.size {
                            return Err(Error::corrupted(format!(
                                "object {} has {} bytes, expected {}",
                                o.key.checksum,
                                o.buf.len(),
                                o.size
                            )));
                        }
                        emit(o.buf.finish(&o.key, o.meta)?)?;
                    }
                    debug_assert_eq!(o.idx, index);
                    index += 1;
                    Ok(())
                })();
                r.map_err(|e| prefix(e, "close"))?;
            }
            op::BSPATCH => {
                let r: Result<()> = (|| {
                    let off = read_varuint(ops, &mut pos)?;
                    let len = read_varuint(ops, &mut pos)?;
                    off.checked_add(len)
                        .filter(|e| *e <= payload.len())
                        .ok_or_else(|| {
                            Error::corrupted(format!("Invalid offset/length {off}/{len}"))
                        })?;
                    let o = open
                        .as_mut()
                        .ok_or_else(|| Error::corrupted("no object open"))?;
                    if o.skip {
                        return Ok(());
                    }
                    let src = match &source {
                        Src::Loaded(s) => s,
                        Src::Unloaded => {
                            o.skip = true;
                            return Ok(());
                        }
                        Src::Unset => {
                            return Err(Error::corrupted("bspatch without a read source"));
                        }
                    };
                    if !o.buf.is_empty() {
                        return Err(Error::corrupted("bspatch into a partly written object"));
                    }
                    let p = payload.read(off, len)?;
                    if o.size > 1 << 20 {
                        trace(|| format!("bspatch {} <- {} + {}", o.size, src.len(), p.len()));
                    }
                    let out = bspatch::patch(src, &p, o.size)?;
                    drop(p);
                    match &mut o.buf {
                        Sink::Memory(b) => *b = out,
                        spooled => spooled.append(&out)?,
                    }
                    Ok(())
                })();
                r.map_err(|e| prefix(e, "bspatch"))?;
            }
            other => {
                return Err(Error::corrupted(format!(
                    "Unknown opcode {other} at offset {n_executed}"
                )));
            }
        }
        n_executed += 1;
        if let Some(i) = op_index(opcode) {
            stats.n_ops[i] += 1;
        }
    }
    if open.is_some() {
        return Err(Error::corrupted(
            "Delta part ends with an object still open",
        ));
    }
    Ok(stats)
}

/// Execute a part without a repository: `sources` supplies read-source objects' content,
/// nothing is considered present. Returns the verified objects in order. For tools and tests
/// (e.g. checking a delta before applying it).
pub fn execute_in_memory(
    objects: &[ObjectKey],
    part: &PartPayload,
    sources: &HashMap<Checksum, Bytes>,
) -> Result<Vec<ProducedObject>> {
    struct MemEnv<'a>(&'a HashMap<Checksum, Bytes>);
    impl PartEnv for MemEnv<'_> {
        fn have(&mut self, _: usize) -> bool {
            false
        }
        fn source(&mut self, csum: &Checksum) -> Result<Bytes> {
            self.0.get(csum).cloned().ok_or_else(|| {
                Error::not_found(format!("Delta source object {csum} is not available"))
            })
        }
    }
    let mut out = Vec::new();
    execute(objects, part, false, &mut MemEnv(sources), &mut |o| {
        out.push(o);
        Ok(())
    })?;
    Ok(out)
}

/// Count the operations of a part without executing them (`static-delta show`).
pub fn part_stats(objects: &[ObjectKey], part: &PartPayload) -> Result<OpStats> {
    struct NoEnv;
    impl PartEnv for NoEnv {
        fn have(&mut self, _: usize) -> bool {
            true
        }
        fn source(&mut self, _: &Checksum) -> Result<Bytes> {
            Ok(Bytes::new())
        }
    }
    execute(objects, part, true, &mut NoEnv, &mut |_| Ok(()))
}

// ------------------------------------------------------------------------------ offline apply

/// Where a delta's files are read from.
#[derive(Debug, Clone)]
pub enum DeltaSource {
    /// A directory holding `superblock` and parts, or the path of a superblock file (parts
    /// beside it).
    Local(PathBuf),
    /// A delta inside the repository itself (`deltas/…`).
    Repo(super::format::DeltaName),
}

/// Options of [`Repo::apply_static_delta`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Parts executed concurrently (0: the number of CPUs, at most 4).
    pub jobs: usize,
}

/// What an application did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Target commit.
    pub to: Checksum,
    /// Parts executed.
    pub parts_executed: usize,
    /// Parts skipped because all their objects were present.
    pub parts_skipped: usize,
    /// Objects written.
    pub objects_written: usize,
    /// Fallback objects of the delta (they must already be present; fetch them otherwise).
    pub fallbacks: Vec<ObjectKey>,
}

struct StoreEnv {
    have: Vec<bool>,
    sources: HashMap<Checksum, Bytes>,
    repo: Repo,
    rt: tokio::runtime::Handle,
    spool_dir: PathBuf,
}

impl PartEnv for StoreEnv {
    fn spool_dir(&self) -> Option<&Path> {
        Some(&self.spool_dir)
    }
    fn have(&mut self, idx: usize) -> bool {
        self.have.get(idx).copied().unwrap_or(false)
    }
    fn source(&mut self, csum: &Checksum) -> Result<Bytes> {
        if let Some(b) = self.sources.get(csum) {
            return Ok(b.clone());
        }
        let repo = self.repo.clone();
        let c = *csum;
        let content = self.rt.block_on(async move {
            let cr = repo.load_file(&c).await.map_err(|e| {
                if e.is_not_found() {
                    Error::not_found(format!("Delta source object {c} is not in the repository"))
                } else {
                    e
                }
            })?;
            Ok::<_, Error>(cr)
        })?;
        let mut buf = Vec::with_capacity(content.size.min(256 * 1024 * 1024) as usize);
        let mut r = content.body.into_reader();
        std::io::Read::read_to_end(&mut r, &mut buf)
            .map_err(|e| Error::io(format!("reading object {csum}"), e))?;
        if buf.len() as u64 != content.size {
            return Err(Error::corrupted(format!(
                "object {csum} has the wrong size"
            )));
        }
        let b = Bytes::from(buf);
        self.sources.clear();
        self.sources.insert(*csum, b.clone());
        Ok(b)
    }
}

async fn read_local(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&p).map_err(|e| Error::io_path("open", &p, e))?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(f, limit.saturating_add(1)),
            &mut buf,
        )
        .map_err(|e| Error::io_path("read", &p, e))?;
        if buf.len() as u64 > limit {
            return Err(Error::corrupted(format!("{} is too large", p.display())));
        }
        Ok(buf)
    })
    .await
    .map_err(|e| Error::Other(format!("reading delta file: {e}")))?
}

impl Repo {
    /// Read a superblock from `src` (the repository or a local path). Returns it and, for a
    /// local source, the directory holding the parts.
    pub async fn read_static_delta_superblock(
        &self,
        src: &DeltaSource,
    ) -> Result<(Superblock, Option<PathBuf>)> {
        match src {
            DeltaSource::Repo(name) => {
                let data = self
                    .store()
                    .read_file(&name.superblock_path())
                    .await?
                    .ok_or_else(|| Error::not_found(format!("No such delta {name}")))?;
                Ok((Superblock::parse(&data)?, None))
            }
            DeltaSource::Local(path) => {
                let (dir, file) = if path.is_dir() {
                    (path.clone(), path.join("superblock"))
                } else {
                    let dir = path
                        .parent()
                        .map(|p| {
                            if p.as_os_str().is_empty() {
                                Path::new(".")
                            } else {
                                p
                            }
                        })
                        .unwrap_or(Path::new("."))
                        .to_path_buf();
                    (dir, path.clone())
                };
                let data = read_local(&file, format::MAX_SUPERBLOCK_SIZE)
                    .await
                    .map_err(|e| match e {
                        Error::Io { source, .. } => {
                            Error::io(format!("openat({})", file.display()), source)
                        }
                        e => e,
                    })?;
                Ok((Superblock::parse(&data)?, Some(dir)))
            }
        }
    }

    /// Read the raw bytes of part `i` of a delta (inline or file).
    pub async fn read_static_delta_part(
        &self,
        sb: &Superblock,
        dir: Option<&Path>,
        i: usize,
    ) -> Result<Vec<u8>> {
        if let Some(b) = sb.inline_part(i) {
            return Ok(b);
        }
        let h = sb
            .parts
            .get(i)
            .ok_or_else(|| Error::invalid(format!("No part {i} in delta")))?;
        match dir {
            Some(d) => read_local(&d.join(i.to_string()), h.size)
                .await
                .map_err(|e| Error::Other(format!("Opening deltapart '{i}': {e}"))),
            None => self
                .store()
                .read_file(&sb.name().part_path(i))
                .await?
                .map(|b| b.to_vec())
                .ok_or_else(|| Error::not_found(format!("Opening deltapart '{i}': missing"))),
        }
    }

    /// Part `i` of a delta as [`Repo::apply_static_delta`] executes it: inline parts in
    /// memory, part files opened (decompressed as they are read, never held whole), from a
    /// local directory or the repository's own `deltas/` when it is local.
    async fn open_static_delta_part(
        &self,
        sb: &Superblock,
        dir: Option<&Path>,
        i: usize,
    ) -> Result<RawPart> {
        if let Some(b) = sb.inline_part(i) {
            return Ok(RawPart::Bytes(Bytes::from(b)));
        }
        let path = match (dir, self.store().local_root()) {
            (Some(d), _) => d.join(i.to_string()),
            (None, Some(root)) => root.join(sb.name().part_path(i)),
            (None, None) => {
                return Ok(RawPart::Bytes(Bytes::from(
                    self.read_static_delta_part(sb, dir, i).await?,
                )));
            }
        };
        let f = std::fs::File::open(&path).map_err(|e| {
            Error::Other(format!(
                "Opening deltapart '{i}': {}",
                Error::io_path("open", &path, e)
            ))
        })?;
        Ok(RawPart::File(f))
    }

    /// Execute one part (already read) into the repository. A part larger than
    /// [`SPOOL_PART_OVER`] uncompressed is decompressed into a spool file rather than memory.
    pub async fn execute_static_delta_part(
        &self,
        header: &PartHeader,
        raw: Bytes,
        verify_checksum: bool,
    ) -> Result<usize> {
        self.execute_static_delta_part_with(header, raw, verify_checksum, SPOOL_PART_OVER)
            .await
    }

    /// [`Repo::execute_static_delta_part`], spooling parts over `spool_over` bytes.
    pub(crate) async fn execute_static_delta_part_with(
        &self,
        header: &PartHeader,
        raw: Bytes,
        verify_checksum: bool,
        spool_over: u64,
    ) -> Result<usize> {
        self.execute_raw_static_delta_part(header, RawPart::Bytes(raw), verify_checksum, spool_over)
            .await
    }

    /// Execute one part, in memory or in a file, spooling parts over `spool_over` bytes.
    pub(crate) async fn execute_raw_static_delta_part(
        &self,
        header: &PartHeader,
        raw: RawPart,
        verify_checksum: bool,
        spool_over: u64,
    ) -> Result<usize> {
        let have = self.has_objects(&header.objects).await?;
        self.execute_part_lacking(header, raw, have, verify_checksum, spool_over)
            .await
    }

    /// [`Repo::execute_raw_static_delta_part`] knowing which of the part's objects are
    /// already stored (`have`, in the part's order): the first thing it waits for is the
    /// decompression budget, so parts started in an order take the budget in that order.
    async fn execute_part_lacking(
        &self,
        header: &PartHeader,
        raw: RawPart,
        have: Vec<bool>,
        verify_checksum: bool,
        spool_over: u64,
    ) -> Result<usize> {
        if header.version > format::PART_VERSION {
            return Err(Error::corrupted(format!(
                "Delta part has too new version {}",
                header.version
            )));
        }
        if have.iter().all(|h| *h) {
            return Ok(0);
        }
        let h2 = header.clone();
        let spool_dir = crate::spool::dir_for(self);
        let permit = DECOMPRESS_BUDGET
            .acquire_many(decompress_cost(header.usize))
            .await
            .map_err(|e| Error::Other(format!("delta part: {e}")))?;
        let spool_dir2 = spool_dir.clone();
        let part = tokio::task::spawn_blocking(move || {
            let spool_dir = spool_dir2;
            trace(|| format!("part {} ({} B): decompressing", h2.checksum, h2.usize));
            let cpu0 = thread_cpu_seconds();
            let r = open_raw_part_for_apply(raw, &h2, verify_checksum, spool_over, &spool_dir);
            let cpu = thread_cpu_seconds() - cpu0;
            trace(|| format!("part {}: decompressed, {cpu:.3} s of CPU", h2.checksum));
            r
        })
        .await
        .map_err(|e| Error::Other(format!("delta part: {e}")))??;
        // Its dictionary is gone: a spooled part is executed from its file, a small one
        // (at most [`SPOOL_PART_OVER`]) from memory, and the next part's decompression may
        // start. A large part in memory (not compressed) keeps its share while it executes.
        let _permit = match part {
            OpenedPart::Memory(_) if header.usize > SPOOL_PART_OVER => Some(permit),
            _ => {
                drop(permit);
                None
            }
        };
        let repo = self.clone();
        let objects = header.objects.clone();
        let rt = tokio::runtime::Handle::current();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ProducedObject>(8);
        let exec = tokio::task::spawn_blocking(move || {
            let mut env = StoreEnv {
                have,
                sources: HashMap::new(),
                repo,
                rt,
                spool_dir,
            };
            let mut emit = |o: ProducedObject| {
                tx.blocking_send(o)
                    .map_err(|_| Error::Other("delta part writer stopped".into()))
            };
            execute_view(&objects, &part.view(), false, &mut env, &mut emit)
        });
        let store = self.store().clone();
        let mut written = 0usize;
        let mut inflight = FuturesUnordered::new();
        let mut first_err: Option<Error> = None;
        while let Some(o) = rx.recv().await {
            let store = store.clone();
            inflight.push(async move {
                let r = store.put(&o.key, o.write).await;
                // A spooled object's file goes only once it is stored.
                drop(o.spool);
                r
            });
            written += 1;
            while inflight.len() >= 4 {
                if let Some(Err(e)) = inflight.next().await {
                    first_err.get_or_insert(e);
                }
            }
        }
        while let Some(r) = inflight.next().await {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        exec.await
            .map_err(|e| Error::Other(format!("delta part: {e}")))??;
        trace(|| format!("part {}: {written} objects written", header.checksum));
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(written)
    }

    /// Apply a static delta from a local directory/superblock file or from the repository's
    /// own `deltas/` (`ostree static-delta apply-offline`). The target commit is written last,
    /// after every part succeeded, so an interrupted application leaves no incomplete commit.
    /// Fallback objects must already be present.
    pub async fn apply_static_delta(
        &self,
        src: &DeltaSource,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport> {
        trace(|| "apply".into());
        let _lock = self.lock(false).await?;
        let (sb, dir) = self.read_static_delta_superblock(src).await?;
        let sb = Arc::new(sb);
        let to = sb.to;
        if let Some(from) = sb.from
            && !self
                .has_object(&ObjectKey::new(from, ObjectType::Commit))
                .await?
        {
            return Err(Error::not_found(format!(
                "Commit {from}, which is the delta source, is not in repository"
            )));
        }
        // The embedded commit must be the target.
        crate::content::check(ObjectType::Commit, &to, &Checksum::of(&sb.commit))?;
        Commit::from_bytes(&sb.commit)?;
        let mut report = ApplyReport {
            to,
            ..Default::default()
        };
        let fb_keys: Vec<ObjectKey> = sb.fallbacks.iter().map(|f| f.key).collect();
        let fb_have = self.has_objects(&fb_keys).await?;
        if let Some((k, _)) = fb_keys.iter().zip(&fb_have).find(|(_, h)| !**h) {
            return Err(Error::invalid(format!(
                "Cannot execute delta offline: contains nonempty http fallback entries (object {}.{} is missing)",
                k.checksum,
                k.ty.name()
            )));
        }
        report.fallbacks = fb_keys;
        let jobs = if opts.jobs == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(4)
        } else {
            opts.jobs
        };
        // Parts are opened one after another, in `part_order`, and start executing in that
        // order: the first to wait for the decompression budget is the next in the order,
        // not whichever finished its existence checks first (a part of one large object
        // was decompressed before the small dense part meant to go first).
        let mut tasks = Box::pin(
            futures::stream::iter(part_order(&sb.parts))
                .then(|i| {
                    let sb = sb.clone();
                    let dir = dir.clone();
                    let repo = self.clone();
                    async move {
                        let h = &sb.parts[i];
                        let have = repo.has_objects(&h.objects).await?;
                        if have.iter().all(|x| *x) {
                            return Ok::<_, Error>(None);
                        }
                        let raw = repo.open_static_delta_part(&sb, dir.as_deref(), i).await?;
                        Ok(Some((i, raw, have)))
                    }
                })
                .map(|opened| {
                    let sb = sb.clone();
                    let repo = self.clone();
                    async move {
                        let Some((i, raw, have)) = opened? else {
                            return Ok::<_, Error>(None);
                        };
                        let n = repo
                            .execute_part_lacking(&sb.parts[i], raw, have, true, SPOOL_PART_OVER)
                            .await
                            .map_err(|e| {
                                Error::corrupted(format!("Executing delta part {i}: {e}"))
                            })?;
                        Ok(Some(n))
                    }
                })
                .buffer_unordered(jobs.max(1)),
        );
        while let Some(r) = tasks.next().await {
            match r? {
                Some(n) => {
                    report.parts_executed += 1;
                    report.objects_written += n;
                }
                None => report.parts_skipped += 1,
            }
        }
        drop(tasks);
        // Everything the commit needs is there: detached metadata, then the commit. One sync
        // makes it all durable: a store publishes what a commit needs no later than the
        // commit ([`ObjectStore::sync`]), so a crash never leaves the commit without its tree.
        //
        // [`ObjectStore::sync`]: crate::store::ObjectStore::sync
        trace(|| "parts done".into());
        let ckey = ObjectKey::new(to, ObjectType::Commit);
        if !self.has_object(&ckey).await? {
            if let Some(md) = sb.detached_commitmeta() {
                self.store()
                    .put(
                        &ObjectKey::new(to, ObjectType::CommitMeta),
                        ObjectWrite::Meta(Bytes::from(md.to_bytes())),
                    )
                    .await?;
            }
            self.put_commit_object(&to, sb.commit.clone()).await?;
        }
        self.store().sync().await?;
        trace(|| "synced".into());
        Ok(report)
    }
}

/// The order to apply parts in. Parts decompress one at a time (that is the critical path),
/// and each executes once decompressed, overlapping the next one's decompression: what is
/// left after the last decompression (the last part's execution, then the final sync) is not
/// overlapped by anything.
///
/// * Parts by objects per uncompressed byte, densest first: the later parts have the least
///   to execute once decompressed.
/// * Whole-file parts (one object: ostree gives a large file a part of its own) right after
///   the first part, not last where density puts them: its tens of MB would then still be in
///   the page cache, unwritten, when the final sync starts (on the debootstrap v1→v2 delta,
///   9% of the time), and decompressing one first would leave execution nothing to overlap.
///
/// Parts are independent, so any order gives the same result.
fn part_order(parts: &[PartHeader]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..parts.len()).collect();
    // a.objects / a.usize > b.objects / b.usize, without division.
    let density =
        |i: usize, j: usize| parts[i].objects.len() as u128 * u128::from(parts[j].usize.max(1));
    order.sort_by(|&a, &b| density(b, a).cmp(&density(a, b)));
    let (whole, rest): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| parts[i].objects.len() == 1);
    let mut out: Vec<usize> = rest.iter().take(1).copied().collect();
    out.extend(whole);
    out.extend(rest.iter().skip(1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::format::write_varuint;

    struct NoSources;
    impl PartEnv for NoSources {
        fn have(&mut self, _: usize) -> bool {
            false
        }
        fn source(&mut self, c: &Checksum) -> Result<Bytes> {
            Err(Error::not_found(format!("no source {c}")))
        }
    }

    fn regular() -> FileMeta {
        FileMeta {
            uid: 0,
            gid: 0,
            mode: 0o100644,
            symlink_target: None,
            xattrs: Vec::new(),
        }
    }

    fn key_of(content: &[u8]) -> ObjectKey {
        let c = content_checksum(&regular(), content).expect("checksum");
        ObjectKey::new(c, ObjectType::File)
    }

    /// A part file (xz) producing `a` by splice and `b` by open/write/close, with its header.
    fn part(a: &[u8], b: &[u8], ops_tail: &[u8]) -> (Vec<u8>, PartHeader) {
        let mut payload = a.to_vec();
        payload.extend_from_slice(b);
        let mut ops = vec![op::OPEN_SPLICE_AND_CLOSE];
        for v in [0, 0, a.len() as u64, 0] {
            write_varuint(&mut ops, v);
        }
        ops.push(op::OPEN);
        for v in [0, 0, b.len() as u64] {
            write_varuint(&mut ops, v);
        }
        ops.push(op::WRITE);
        for v in [b.len() as u64, a.len() as u64] {
            write_varuint(&mut ops, v);
        }
        ops.push(op::CLOSE);
        ops.extend_from_slice(ops_tail);
        let p = PartPayload {
            modes: vec![(0, 0, 0o100644)],
            xattrs: vec![vec![]],
            payload: Bytes::from(payload),
            ops: Bytes::from(ops),
        };
        let mut raw = vec![format::COMPRESSION_XZ];
        let mut enc = format::xz_compress_into(&mut raw, 1, None).expect("encoder");
        std::io::Write::write_all(&mut enc, &p.to_bytes()).expect("compress");
        enc.finish().expect("finish");
        let h = PartHeader {
            version: 0,
            checksum: Checksum::of(&raw),
            size: raw.len() as u64,
            usize: (a.len() + b.len()) as u64,
            objects: vec![key_of(a), key_of(b)],
        };
        (raw, h)
    }

    /// Run a part opened with `spool_over`; the produced objects' keys and contents.
    fn run(raw: &[u8], h: &PartHeader, spool_over: u64, dir: &Path) -> Result<Vec<Vec<u8>>> {
        let from_bytes = run_raw(
            RawPart::Bytes(Bytes::copy_from_slice(raw)),
            h,
            spool_over,
            dir,
        );
        // The same part read from a file (a downloaded part) gives the same answer.
        let file = dir.join("part-file");
        std::fs::write(&file, raw).expect("write part");
        let f = std::fs::File::open(&file).expect("open part");
        std::fs::remove_file(&file).expect("unlink part");
        let from_file = run_raw(RawPart::File(f), h, spool_over, dir);
        match (&from_bytes, &from_file) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("bytes: {from_bytes:?}, file: {from_file:?}"),
        }
        from_bytes
    }

    fn run_raw(raw: RawPart, h: &PartHeader, spool_over: u64, dir: &Path) -> Result<Vec<Vec<u8>>> {
        let opened = open_raw_part_for_apply(raw, h, true, spool_over, dir)?;
        assert_eq!(
            matches!(opened, OpenedPart::Spooled { .. }),
            h.usize > spool_over
        );
        let mut out = Vec::new();
        execute_view(
            &h.objects,
            &opened.view(),
            false,
            &mut NoSources,
            &mut |o| {
                let ObjectWrite::Content {
                    source: ContentSource::Bytes(b),
                    ..
                } = o.write
                else {
                    panic!("content expected");
                };
                out.push(b.to_vec());
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn spooled_parts_apply_like_parts_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 241) as u8).collect();
        let (raw, h) = part(&a, &b, &[]);
        let mem = run(&raw, &h, u64::MAX, dir.path()).expect("in memory");
        let spooled = run(&raw, &h, 0, dir.path()).expect("spooled");
        assert_eq!(mem, vec![a.clone(), b.clone()]);
        assert_eq!(spooled, mem);
        // The spool file is gone once the part is opened.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

        // Out-of-bounds operations fail the same way from a spool file.
        let mut bad = vec![op::OPEN_SPLICE_AND_CLOSE];
        for v in [0, 0, 10, (a.len() + b.len()) as u64] {
            write_varuint(&mut bad, v);
        }
        let (raw, mut h) = part(&a, &b, &bad);
        h.objects.push(key_of(b"0123456789"));
        let e1 = run(&raw, &h, u64::MAX, dir.path()).expect_err("oob");
        let e2 = run(&raw, &h, 0, dir.path()).expect_err("oob");
        assert_eq!(e1.to_string(), e2.to_string());
        assert!(e2.to_string().contains("Invalid offset/length"), "{e2}");

        // A corrupted part file is refused before anything is decompressed.
        let (mut raw, h) = part(&a, &b, &[]);
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let e = run(&raw, &h, 0, dir.path()).expect_err("checksum");
        assert!(e.to_string().contains("Checksum mismatch"), "{e}");
    }

    /// An environment with a spool directory: large objects are streamed there.
    struct SpoolEnv(PathBuf);
    impl PartEnv for SpoolEnv {
        fn have(&mut self, _: usize) -> bool {
            false
        }
        fn source(&mut self, c: &Checksum) -> Result<Bytes> {
            Err(Error::not_found(format!("no source {c}")))
        }
        fn spool_dir(&self) -> Option<&Path> {
            Some(&self.0)
        }
    }

    #[test]
    fn large_objects_are_streamed_to_spool_files_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = STREAM_OBJECT_OVER as usize + 12345;
        // `a` by open-splice-and-close, `b` by open/write/close: both large.
        let a: Vec<u8> = (0..big as u32).map(|i| (i * 7 % 251) as u8).collect();
        let b: Vec<u8> = (0..big as u32 + 1).map(|i| (i * 13 % 241) as u8).collect();
        let (raw, h) = part(&a, &b, &[]);
        for spool_over in [0, u64::MAX] {
            let opened = open_raw_part_for_apply(
                RawPart::Bytes(Bytes::from(raw.clone())),
                &h,
                true,
                spool_over,
                dir.path(),
            )
            .expect("open");
            let mut out = Vec::new();
            execute_view(
                &h.objects,
                &opened.view(),
                false,
                &mut SpoolEnv(dir.path().to_path_buf()),
                &mut |o| {
                    out.push(o);
                    Ok(())
                },
            )
            .expect("execute");
            assert_eq!(out.len(), 2);
            for (o, want) in out.iter().zip([&a, &b]) {
                let ObjectWrite::Content {
                    source: ContentSource::Path(p),
                    size,
                    ..
                } = &o.write
                else {
                    panic!("a spooled object expected, got {:?}", o.write);
                };
                assert_eq!(*size, want.len() as u64);
                assert_eq!(&std::fs::read(p).expect("spool"), want);
            }
            // The spool files go with the objects.
            drop(out);
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        }

        // An object whose content does not match its checksum is refused, and its spool
        // file removed.
        let (raw, mut h) = part(&a, &b, &[]);
        h.objects[1] = key_of(b"something else");
        let opened =
            open_raw_part_for_apply(RawPart::Bytes(Bytes::from(raw)), &h, true, 0, dir.path())
                .expect("open");
        let mut n = 0;
        let e = execute_view(
            &h.objects,
            &opened.view(),
            false,
            &mut SpoolEnv(dir.path().to_path_buf()),
            &mut |_| {
                n += 1;
                Ok(())
            },
        )
        .expect_err("corrupted");
        assert_eq!(n, 1, "the first object is good");
        assert!(e.to_string().contains("Corrupted"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn spool_files_leave_nothing_behind() {
        use std::io::{Seek, Write};
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // A memory file for parts that fit, an unlinked file in the directory otherwise.
        for size in [1, MEMFD_SPOOL_MAX + 1] {
            let mut f = spool_file(size, dir.path()).expect("spool");
            f.write_all(b"0123456789").expect("write");
            f.rewind().expect("rewind");
            let mut b = [0u8; 4];
            f.read_exact_at(&mut b, 3).expect("read");
            assert_eq!(&b, b"3456");
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
        }
    }

    #[test]
    fn parts_in_order_of_density_with_whole_files_second() {
        let part = |objects: usize, usize: u64| PartHeader {
            version: 0,
            checksum: Checksum([0; 32]),
            size: 0,
            usize,
            objects: vec![key_of(b"x"); objects],
        };
        // One 32 MB file; 1000 small files in 30 MB; 800 in 8 MB; 160 in 11 MB; an empty part.
        let parts = [
            part(1, 32 << 20),
            part(1000, 30 << 20),
            part(800, 8 << 20),
            part(160, 11 << 20),
            part(0, 0),
        ];
        assert_eq!(part_order(&parts), vec![2, 0, 1, 3, 4]);
        assert!(part_order(&[]).is_empty());
        // Only whole files: by size (density), densest first.
        assert_eq!(
            part_order(&[part(1, 32 << 20), part(1, 3 << 20)]),
            vec![1, 0]
        );
    }

    #[test]
    fn decompression_budget_shares() {
        assert_eq!(decompress_cost(0), 1);
        assert_eq!(decompress_cost(1), 1);
        assert_eq!(decompress_cost(3 << 20), 3);
        assert_eq!(decompress_cost(u64::MAX), DECOMPRESS_BUDGET_MIB);
    }
}
