//! Writing trees and commits: scan a directory (or take an existing commit's tree) into a
//! mutable tree, hash every file once in parallel, store only what the repository lacks, then
//! write dirtree/dirmeta objects bottom-up and the commit.
//!
//! Data flow for a directory: walk (one `stat` per entry, xattrs when kept) → hash all regular
//! files on every core (hardlinked inputs hashed once) → one batched `has_many` → write the
//! missing objects concurrently (the backend compresses archive objects in parallel) →
//! metadata objects → commit → [`crate::store::ObjectStore::sync`] → ref compare-and-swap.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::Repo;
use crate::objects::{
    Commit, DirMeta, DirTree, FileMeta, Metadata, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Xattrs,
    sort_xattrs,
};
use crate::progress::{NoProgress, Progress};
use crate::store::{ContentSource, ObjectWrite, RefExpect, RepoMode};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Stat-like information of one entry, as given to a [`CommitFilter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode including type bits.
    pub mode: u32,
}

/// What a filter decides for one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterResult {
    /// Commit the entry (with any changes the filter made to its [`EntryInfo`]).
    Allow,
    /// Leave it out (and, for a directory, everything below it).
    Skip,
}

/// A callback run on every entry (path like `/a/b`, root is `/`) before it is committed.
pub type CommitFilter = Arc<dyn Fn(&str, &mut EntryInfo) -> FilterResult + Send + Sync>;

/// How entries are transformed on their way into the repository (ostree's commit modifier).
#[derive(Clone, Default)]
pub struct CommitModifier {
    /// Force uid/gid 0 and strip mode bits to `0755` (implied in bare-user-only repos).
    pub canonical_permissions: bool,
    /// Do not read extended attributes (implied in bare-user-only repos).
    pub skip_xattrs: bool,
    /// Called on every entry, before canonicalization.
    pub filter: Option<CommitFilter>,
    /// Progress sink.
    pub progress: Option<Arc<dyn Progress>>,
    /// (device, inode) → checksum of the repository's content objects
    /// ([`Repo::scan_hardlinks`], `--link-checkout-speedup`): files of a hardlinked checkout
    /// are recognised without reading them when their metadata is unchanged.
    pub devino_cache: Option<Arc<DevinoCache>>,
    /// Trust a devino hit even if the file's metadata changed (`--devino-canonical`).
    pub devino_canonical: bool,
    /// Delete the input directory's content once it is committed (`--consume`).
    pub consume: bool,
}

/// (device, inode) of content objects in a local repository → their checksums.
pub type DevinoCache = HashMap<(u64, u64), Checksum>;

impl std::fmt::Debug for CommitModifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitModifier")
            .field("canonical_permissions", &self.canonical_permissions)
            .field("skip_xattrs", &self.skip_xattrs)
            .field("filter", &self.filter.is_some())
            .field("devino_cache", &self.devino_cache.as_ref().map(|c| c.len()))
            .field("devino_canonical", &self.devino_canonical)
            .field("consume", &self.consume)
            .finish()
    }
}

/// Counters of one transaction (what `commit --table-output` prints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Metadata objects in the written trees.
    pub metadata_objects_total: u64,
    /// Metadata objects newly stored.
    pub metadata_objects_written: u64,
    /// Content objects in the written trees.
    pub content_objects_total: u64,
    /// Content objects newly stored.
    pub content_objects_written: u64,
    /// Bytes of content newly stored (uncompressed).
    pub content_bytes_written: u64,
    /// Files recognised through the devino cache (`Content Cache Hits`).
    pub devino_cache_hits: u64,
    /// When set (`--generate-sizes` in an archive repository), the size of every content,
    /// dirtree and dirmeta object written, for the commit's `ostree.sizes` metadata.
    pub sizes: Option<BTreeMap<Checksum, SizeEntry>>,
}

/// One object's sizes for `ostree.sizes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeEntry {
    /// Object type (file, dirtree or dirmeta).
    pub objtype: ObjectType,
    /// Size unpacked (content length, symlink target length, metadata length).
    pub unpacked: u64,
    /// Size as stored in the archive repository.
    pub archived: u64,
}

fn write_varuint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

/// The `ostree.sizes` metadata value (`aay`, sorted by checksum): per object its checksum,
/// varint archived size, varint unpacked size and object type byte.
pub fn sizes_metadata(sizes: &BTreeMap<Checksum, SizeEntry>) -> crate::gvariant::Variant {
    use crate::gvariant::Variant;
    let items = sizes
        .iter()
        .map(|(c, e)| {
            let mut b = c.as_bytes().to_vec();
            write_varuint(&mut b, e.archived);
            write_varuint(&mut b, e.unpacked);
            b.push(e.objtype as u8);
            Variant::Bytes(b)
        })
        .collect();
    Variant::Array(
        crate::gvariant::VariantType::Array(Box::new(crate::gvariant::VariantType::Byte)),
        items,
    )
}

/// Size of an object as stored (the `.filez` length in archive repositories).
pub(crate) async fn stored_size(
    store: &dyn crate::store::ObjectStore,
    key: &ObjectKey,
) -> Result<u64> {
    if let Some(p) = store.local_path(key)
        && let Ok(md) = std::fs::symlink_metadata(&p)
    {
        return Ok(md.len());
    }
    Ok(store.get_raw(key).await?.len() as u64)
}

/// `g_str_hash` (djb2 over signed chars).
fn g_str_hash(s: &str) -> u32 {
    let mut h: u32 = 5381;
    for &b in s.as_bytes() {
        h = h
            .wrapping_shl(5)
            .wrapping_add(h)
            .wrapping_add(b as i8 as i32 as u32);
    }
    h
}

/// The order in which a GLib `GHashTable` keyed by strings (`g_str_hash`, GLib 2.74) iterates
/// keys inserted in the given order (repeated keys keep their first slot). Returns indices
/// into the input of the first occurrences. ostree builds some `a{sv}` (e.g. `--bootable`
/// commit metadata through a `GVariantDict`) and processes some lists in this order, and the
/// bytes (so checksums) follow it.
pub fn glib_hash_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    const PRIMES: [u32; 32] = [
        1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
        262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859,
        134217689, 268435399, 536870909, 1073741789, 2147483647,
    ];
    struct Table {
        size: usize,
        modulo: u32,
        mask: usize,
        nnodes: usize,
        noccupied: usize,
        hashes: Vec<u32>,
        slots: Vec<usize>,
    }
    impl Table {
        fn set_shift(&mut self, shift: usize) {
            self.size = 1 << shift;
            self.modulo = PRIMES[shift.min(31)];
            self.mask = self.size - 1;
        }
        fn index(&self, hash: u32) -> usize {
            (hash.wrapping_mul(11) % self.modulo) as usize
        }
        fn resize(&mut self) {
            let old_size = self.size;
            let want = (self.nnodes as f64 * 1.333) as usize;
            let mut shift = 0;
            let mut n = want;
            while n != 0 {
                n >>= 1;
                shift += 1;
            }
            self.set_shift(shift.max(3));
            if self.size > old_size {
                self.hashes.resize(self.size, 0);
                self.slots.resize(self.size, usize::MAX);
            }
            let mut done = vec![false; self.size.max(old_size)];
            for i in 0..old_size {
                let h = self.hashes[i];
                if h < 2 {
                    self.hashes[i] = 0;
                    continue;
                }
                if done[i] {
                    continue;
                }
                self.hashes[i] = 0;
                let mut node_hash = h;
                let mut key = self.slots[i];
                loop {
                    let mut idx = self.index(node_hash);
                    let mut step = 0;
                    while done[idx] {
                        step += 1;
                        idx = (idx + step) & self.mask;
                    }
                    done[idx] = true;
                    let replaced = self.hashes[idx];
                    self.hashes[idx] = node_hash;
                    let replaced_key = std::mem::replace(&mut self.slots[idx], key);
                    if replaced < 2 {
                        break;
                    }
                    node_hash = replaced;
                    key = replaced_key;
                }
            }
            if self.size < old_size {
                self.hashes.truncate(self.size);
                self.slots.truncate(self.size);
            }
            self.noccupied = self.nnodes;
        }
    }
    let mut t = Table {
        size: 0,
        modulo: 0,
        mask: 0,
        nnodes: 0,
        noccupied: 0,
        hashes: Vec::new(),
        slots: Vec::new(),
    };
    t.set_shift(3);
    t.hashes = vec![0; t.size];
    t.slots = vec![usize::MAX; t.size];
    let keys: Vec<&str> = keys.into_iter().collect();
    for (ki, k) in keys.iter().enumerate() {
        let mut hash = g_str_hash(k);
        if hash < 2 {
            hash = 2;
        }
        let mut idx = t.index(hash);
        let mut step = 0;
        let mut exists = false;
        while t.hashes[idx] != 0 {
            if t.hashes[idx] == hash && keys[t.slots[idx]] == *k {
                exists = true;
                break;
            }
            step += 1;
            idx = (idx + step) & t.mask;
        }
        if exists {
            continue;
        }
        t.hashes[idx] = hash;
        t.slots[idx] = ki;
        t.nnodes += 1;
        t.noccupied += 1;
        if (t.size > t.nnodes * 4 && t.size > 8) || t.size <= t.noccupied + t.noccupied / 16 {
            t.resize();
        }
    }
    (0..t.size)
        .filter(|&i| t.hashes[i] >= 2)
        .map(|i| t.slots[i])
        .collect()
}

/// A directory being assembled in memory.
#[derive(Clone, Debug, Default)]
pub struct MutableTree {
    /// The dirmeta of this directory (set by the last tree written into it).
    pub meta: Option<Checksum>,
    /// Files by name.
    pub files: BTreeMap<String, Checksum>,
    /// Subdirectories by name.
    pub dirs: BTreeMap<String, MutableTree>,
    /// Set when this subtree is an unmodified existing dirtree whose entries are not loaded.
    lazy: Option<Checksum>,
}

impl MutableTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree standing for an existing dirtree/dirmeta pair, loaded only when modified.
    pub fn from_existing(tree: Checksum, meta: Checksum) -> Self {
        MutableTree {
            meta: Some(meta),
            lazy: Some(tree),
            ..Default::default()
        }
    }

    pub(crate) async fn ensure_loaded(&mut self, repo: &Repo) -> Result<()> {
        if let Some(t) = self.lazy.take() {
            let dt = repo.load_dirtree(&t).await?;
            for (n, c) in dt.files {
                self.files.insert(n, c);
            }
            for (n, t, m) in dt.dirs {
                self.dirs.insert(n, MutableTree::from_existing(t, m));
            }
        }
        Ok(())
    }

    /// Add or replace a file (error if a directory has that name).
    pub fn replace_file(&mut self, name: &str, csum: Checksum) -> Result<()> {
        if self.dirs.contains_key(name) {
            return Err(Error::invalid(format!(
                "Can't replace directory with file: {name}"
            )));
        }
        self.files.insert(name.to_string(), csum);
        Ok(())
    }

    /// Get or create a subdirectory (error if a file has that name).
    pub fn ensure_dir(&mut self, name: &str) -> Result<&mut MutableTree> {
        if self.files.contains_key(name) {
            return Err(Error::invalid(format!(
                "Can't replace file with directory: {name}"
            )));
        }
        Ok(self.dirs.entry(name.to_string()).or_default())
    }

    /// Remove an entry (file or directory); returns whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        self.files.remove(name).is_some() || self.dirs.remove(name).is_some()
    }
}

// ---------------------------------------------------------------------------- scanning

#[derive(Debug)]
enum ScanKind {
    /// Index into the job list.
    File(usize),
    /// A file recognised through the devino cache.
    Known(Checksum),
    Symlink(FileMeta),
    Dir(Box<ScanDir>),
}

#[derive(Debug)]
struct ScanDir {
    meta: DirMeta,
    entries: Vec<(String, ScanKind)>,
}

#[derive(Debug)]
struct FileJob {
    path: PathBuf,
    meta: FileMeta,
    size: u64,
    /// (dev, ino) when the file has other hardlinks.
    devino: Option<(u64, u64)>,
    /// Neither the modifier nor xattr skipping changed its metadata (`meta` is the file's own).
    unmodified: bool,
}

struct Scanner<'a> {
    modifier: &'a CommitModifier,
    skip_xattrs: bool,
    canonical: bool,
    jobs: Vec<FileJob>,
    /// Whether the repository is bare-user (devino hits take their metadata from the object).
    bare_user: bool,
    devino_hits: u64,
}

pub(crate) fn read_xattrs(path: &Path) -> Result<Xattrs> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let len = names.len() * 4;
                names.resize(len, 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(format!("listxattr {}", path.display()), e.into()));
            }
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname =
            std::ffi::CString::new(name).map_err(|_| Error::corrupted("xattr name with NUL"))?;
        let mut val = vec![0u8; 256];
        let vn = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut val) {
                Ok(vn) => break vn,
                Err(rustix::io::Errno::RANGE) => {
                    let len = val.len() * 4;
                    val.resize(len, 0);
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => {
                    return Err(Error::io(
                        format!(
                            "getxattr {} {}",
                            path.display(),
                            String::from_utf8_lossy(name)
                        ),
                        e.into(),
                    ));
                }
            }
        };
        // Like libglnx (and so ostree), xattrs with an empty value are not recorded.
        if vn != usize::MAX && vn > 0 {
            val.truncate(vn);
            out.push((name.to_vec(), val));
        }
    }
    sort_xattrs(&mut out);
    Ok(out)
}

/// Run the modifier's filter, then canonicalize (ostree's `_ostree_repo_commit_modifier_apply`:
/// uid/gid 0, regular files and directories masked to 0755). `false` = skip the entry.
fn apply_modifier(
    modifier: &CommitModifier,
    canonical: bool,
    path: &str,
    info: &mut EntryInfo,
) -> bool {
    if let Some(f) = &modifier.filter
        && f(path, info) == FilterResult::Skip
    {
        return false;
    }
    if canonical {
        match info.mode & S_IFMT {
            S_IFREG => info.mode &= S_IFREG | 0o755,
            S_IFDIR => info.mode &= S_IFDIR | 0o755,
            _ => {}
        }
        info.uid = 0;
        info.gid = 0;
    }
    true
}

/// One xattr of a path (`None` when absent or unsupported).
fn read_one_xattr(path: &Path, name: &std::ffi::CStr) -> Result<Option<Vec<u8>>> {
    let mut val = vec![0u8; 512];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut val) {
            Ok(n) => {
                val.truncate(n);
                return Ok(Some(val));
            }
            Err(rustix::io::Errno::RANGE) => {
                let len = val.len() * 4;
                if len > crate::objects::MAX_HEADER_SIZE {
                    return Err(Error::corrupted(format!(
                        "xattr {} of {} too large",
                        name.to_string_lossy(),
                        path.display()
                    )));
                }
                val.resize(len, 0);
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => {
                return Err(Error::io(format!("getxattr {}", path.display()), e.into()));
            }
        }
    }
}

fn join_rel(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Scanner<'_> {
    /// Apply filter then canonicalization; `None` = skipped.
    fn apply(&self, rel: &str, md: &std::fs::Metadata) -> Option<EntryInfo> {
        self.apply_info(
            rel,
            EntryInfo {
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode(),
            },
        )
    }

    fn apply_info(&self, rel: &str, info: EntryInfo) -> Option<EntryInfo> {
        let mut info = info;
        apply_modifier(self.modifier, self.canonical, rel, &mut info).then_some(info)
    }

    fn xattrs(&self, path: &Path) -> Result<Xattrs> {
        if self.skip_xattrs {
            Ok(Vec::new())
        } else {
            read_xattrs(path)
        }
    }

    fn scan_dir(&mut self, path: &Path, rel: &str, info: EntryInfo) -> Result<ScanDir> {
        let meta = DirMeta {
            uid: info.uid,
            gid: info.gid,
            mode: info.mode,
            xattrs: self.xattrs(path)?,
        };
        let rd = std::fs::read_dir(path).map_err(|e| Error::io_path("opendir", path, e))?;
        let mut entries = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io_path("readdir", path, e))?;
            let os_name = ent.file_name();
            // ot_util_filename_validate's message.
            let name = os_name.to_str().ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid UTF-8 in filename {}",
                    os_name.to_string_lossy()
                ))
            })?;
            let child = path.join(name);
            let child_rel = join_rel(rel, name);
            let md =
                std::fs::symlink_metadata(&child).map_err(|e| Error::io_path("stat", &child, e))?;
            let ft = md.file_type();
            // --link-checkout-speedup: a hardlink of a repository object (ostree's
            // devino_cache_lookup in write_content_to_mtree_internal).
            let mut source_xattrs: Option<Xattrs> = None;
            let mut stat_info = EntryInfo {
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode(),
            };
            if (ft.is_file() || ft.is_symlink())
                && let Some(cache) = &self.modifier.devino_cache
                && let Some(csum) = cache.get(&(md.dev(), md.ino()))
            {
                if self.modifier.devino_canonical {
                    self.devino_hits += 1;
                    entries.push((name.to_string(), ScanKind::Known(*csum)));
                    continue;
                }
                if self.bare_user && ft.is_file() {
                    let raw = read_one_xattr(&child, c"user.ostreemeta")?;
                    if let Some(raw) = raw {
                        let (uid, gid, mode, xattrs) = crate::objects::parse_bare_user_meta(&raw)?;
                        stat_info = EntryInfo { uid, gid, mode };
                        source_xattrs = Some(xattrs);
                    }
                }
                let Some(info) = self.apply_info(&child_rel, stat_info.clone()) else {
                    continue;
                };
                // Skipping xattrs counts as modifying them (ostree's get_final_xattrs).
                if info == stat_info && !self.skip_xattrs {
                    self.devino_hits += 1;
                    entries.push((name.to_string(), ScanKind::Known(*csum)));
                    continue;
                }
            }
            let from_stat = source_xattrs.is_none();
            let Some(info) = self.apply_info(&child_rel, stat_info.clone()) else {
                continue;
            };
            let unmodified = from_stat && info == stat_info && !self.skip_xattrs;
            if ft.is_dir() {
                let d = self.scan_dir(&child, &child_rel, info)?;
                entries.push((name.to_string(), ScanKind::Dir(Box::new(d))));
            } else if ft.is_file() {
                let devino = (md.nlink() > 1).then(|| (md.dev(), md.ino()));
                let xattrs = match source_xattrs {
                    Some(x) if !self.skip_xattrs => x,
                    _ => self.xattrs(&child)?,
                };
                self.jobs.push(FileJob {
                    path: child,
                    meta: FileMeta {
                        uid: info.uid,
                        gid: info.gid,
                        mode: info.mode,
                        symlink_target: None,
                        xattrs,
                    },
                    size: md.len(),
                    devino,
                    unmodified,
                });
                entries.push((name.to_string(), ScanKind::File(self.jobs.len() - 1)));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&child)
                    .map_err(|e| Error::io_path("readlink", &child, e))?;
                let target = target.into_os_string().into_string().map_err(|_| {
                    Error::invalid(format!(
                        "Invalid symlink target (not UTF-8): {}",
                        child.display()
                    ))
                })?;
                let xattrs = self.xattrs(&child)?;
                let meta = FileMeta {
                    uid: info.uid,
                    gid: info.gid,
                    mode: S_IFLNK | (info.mode & !S_IFMT),
                    symlink_target: Some(target),
                    xattrs,
                };
                meta.validate()
                    .map_err(|e| Error::invalid(format!("{}: {e}", child.display())))?;
                entries.push((name.to_string(), ScanKind::Symlink(meta)));
            } else {
                return Err(Error::invalid(format!(
                    "Not a regular file or symlink: {name}"
                )));
            }
        }
        Ok(ScanDir { meta, entries })
    }
}

/// Hash a regular file from disk: header then content, streaming.
fn hash_file(job: &FileJob, buf: &mut [u8]) -> Result<Checksum> {
    let mut h = crate::checksum::Hasher::new();
    h.update(&job.meta.file_header());
    let mut f = std::fs::File::open(&job.path).map_err(|e| Error::io_path("open", &job.path, e))?;
    let mut total = 0u64;
    loop {
        let n = f
            .read(buf)
            .map_err(|e| Error::io_path("read", &job.path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total != job.size {
        return Err(Error::Other(format!(
            "File {} changed size while being committed",
            job.path.display()
        )));
    }
    Ok(h.finish())
}

fn hash_all(jobs: &[FileJob], progress: &dyn Progress) -> Result<Vec<Checksum>> {
    let n = jobs.len();
    let mut out = vec![Checksum::default(); n];
    if n == 0 {
        return Ok(out);
    }
    // Hardlinked inputs: hash the first occurrence only.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut alias: Vec<Option<usize>> = vec![None; n];
    for (i, j) in jobs.iter().enumerate() {
        if let Some(di) = j.devino {
            match first_of.get(&di) {
                Some(&f) if jobs[f].meta == j.meta => alias[i] = Some(f),
                _ => {
                    first_of.insert(di, i);
                }
            }
        }
    }
    let todo: Vec<usize> = (0..n).filter(|i| alias[*i].is_none()).collect();
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .min(todo.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, Checksum)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<Vec<(usize, Checksum)>> {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = todo.get(k) else { break };
                        mine.push((i, hash_file(&jobs[i], &mut buf)?));
                        progress.inc(1);
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Other("hashing thread panicked".into())))
            })
            .collect()
    });
    for r in results {
        for (i, c) in r? {
            out[i] = c;
        }
    }
    for i in 0..n {
        if let Some(f) = alias[i] {
            out[i] = out[f];
            progress.inc(1);
        }
    }
    Ok(out)
}

/// Parallelism for object writes.
fn write_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        * 2
}

impl Repo {
    pub(crate) fn effective_modifier(&self, m: &CommitModifier) -> (bool, bool) {
        let buo = self.mode() == RepoMode::BareUserOnly;
        (
            m.canonical_permissions || buo,
            m.skip_xattrs || buo || self.disable_xattrs(),
        )
    }

    /// Scan `dir` and write its content into `mtree` (overlaying what is there: files replace,
    /// directories merge, the root's metadata replaces the tree's). Content objects are stored;
    /// dirtree/dirmeta objects are written later by [`Repo::write_mtree`].
    pub async fn write_dir_to_mtree(
        &self,
        dir: &Path,
        mtree: &mut MutableTree,
        modifier: &CommitModifier,
        stats: &mut CommitStats,
    ) -> Result<()> {
        let (canonical, skip_xattrs) = self.effective_modifier(modifier);
        let progress: Arc<dyn Progress> = modifier
            .progress
            .clone()
            .unwrap_or_else(|| Arc::new(NoProgress));
        let dir = dir.to_path_buf();
        let dir_for_consume = dir.clone();
        let m2 = modifier.clone();
        let p2 = progress.clone();
        // Scan and hash on blocking threads.
        let bare_user = self.mode() == RepoMode::BareUser;
        let (scan, jobs, sums, hits) = tokio::task::spawn_blocking(move || -> Result<_> {
            let md = std::fs::metadata(&dir).map_err(|e| Error::io_path("opendir", &dir, e))?;
            if !md.is_dir() {
                return Err(Error::invalid(format!(
                    "Not a directory: {}",
                    dir.display()
                )));
            }
            let mut sc = Scanner {
                modifier: &m2,
                skip_xattrs,
                canonical,
                jobs: Vec::new(),
                bare_user,
                devino_hits: 0,
            };
            p2.phase("Scanning", 0);
            let root_info = sc.apply("/", &md).unwrap_or(EntryInfo {
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode(),
            });
            let scan = sc.scan_dir(&dir, "/", root_info)?;
            let jobs = sc.jobs;
            let hits = sc.devino_hits;
            p2.phase("Hashing", jobs.len() as u64);
            let sums = hash_all(&jobs, p2.as_ref())?;
            Ok((scan, jobs, sums, hits))
        })
        .await
        .map_err(|e| Error::Other(format!("commit worker failed: {e}")))??;
        stats.devino_cache_hits += hits;

        // Which content objects are missing?
        let mut keys: Vec<ObjectKey> = sums
            .iter()
            .map(|c| ObjectKey::new(*c, ObjectType::File))
            .collect();
        let mut symlinks: Vec<(Checksum, FileMeta)> = Vec::new();
        collect_symlinks(&scan, &mut symlinks)?;
        keys.extend(
            symlinks
                .iter()
                .map(|(c, _)| ObjectKey::new(*c, ObjectType::File)),
        );
        stats.content_objects_total += keys.len() as u64;
        let mut uniq: Vec<(ObjectKey, usize)> =
            keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        uniq.sort_unstable_by_key(|a| a.0);
        uniq.dedup_by(|a, b| a.0 == b.0);
        let store = self.store().clone();
        let present = store
            .has_many(&uniq.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .await?;
        let missing: Vec<usize> = uniq
            .iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|((_, i), _)| *i)
            .collect();
        progress.phase("Writing objects", missing.len() as u64);
        let njobs = jobs.len();
        let jobs = Arc::new(jobs);
        let mode = self.mode();
        let consume = modifier.consume;
        let adopt_ok = move |j: &FileJob| {
            consume
                && match mode {
                    RepoMode::Bare => j.unmodified,
                    RepoMode::BareUserOnly => true,
                    _ => false,
                }
        };
        // Objects of a bare repository go to the store in batches (one blocking-pool trip each
        // for a local store, see `ObjectStore::put_many`): up to 64 objects or 4 MiB of content
        // a batch. Into an archive repository each object is deflated, which costs far more
        // than the trip: one object a batch keeps the work in small units for every core (with
        // 64 a batch the v1 commit took 1.9 s instead of 1.5 s on a loaded machine).
        let batch_objects: usize = if mode == RepoMode::Archive { 1 } else { 64 };
        const BATCH_BYTES: u64 = 4 << 20;
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut batch_bytes = 0u64;
        for i in missing {
            let size = if i < njobs { jobs[i].size } else { 0 };
            match batches.last_mut() {
                Some(b) if b.len() < batch_objects && batch_bytes + size <= BATCH_BYTES => {
                    b.push(i);
                    batch_bytes += size;
                }
                _ => {
                    batches.push(vec![i]);
                    batch_bytes = size;
                }
            }
        }
        let writes = futures::stream::iter(batches.into_iter().map(|batch| {
            let store = store.clone();
            let jobs = jobs.clone();
            let progress = progress.clone();
            let items: Vec<(usize, ObjectKey, Option<FileMeta>)> = batch
                .into_iter()
                .map(|i| {
                    let symlink = (i >= njobs).then(|| symlinks[i - njobs].1.clone());
                    (i, keys[i], symlink)
                })
                .collect();
            async move {
                let mut puts = Vec::with_capacity(items.len());
                let mut done = Vec::with_capacity(items.len());
                for (i, key, symlink) in items {
                    let w = match symlink {
                        Some(meta) => {
                            done.push(0);
                            ObjectWrite::Content {
                                meta,
                                size: 0,
                                source: ContentSource::Bytes(Bytes::new()),
                            }
                        }
                        None => {
                            let j = &jobs[i];
                            done.push(j.size);
                            // --consume: take the file over instead of copying it (ostree's
                            // adopt_and_commit_regfile), where the repository's mode keeps
                            // what was checksummed: bare with the file's own metadata,
                            // bare-user-only.
                            if adopt_ok(j) && store.adopt(&key, &j.meta, &j.path).await? {
                                progress.inc(1);
                                continue;
                            }
                            ObjectWrite::Content {
                                meta: j.meta.clone(),
                                size: j.size,
                                source: ContentSource::Path(j.path.clone()),
                            }
                        }
                    };
                    puts.push((key, w));
                }
                let n = puts.len() as u64;
                store.put_many(puts).await?;
                progress.inc(n);
                Ok::<Vec<u64>, Error>(done)
            }
        }))
        .buffer_unordered(write_concurrency());
        let written: Vec<u64> = writes
            .try_collect::<Vec<Vec<u64>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        stats.content_objects_written += written.len() as u64;
        stats.content_bytes_written += written.iter().sum::<u64>();

        // --generate-sizes: every content object of this tree (ostree records each one it
        // writes, present before or not).
        if stats.sizes.is_some() {
            let mut entries = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let unpacked = if i < njobs {
                    jobs[i].size
                } else {
                    symlinks[i - njobs]
                        .1
                        .symlink_target
                        .as_ref()
                        .map_or(0, |t| t.len() as u64)
                };
                let archived = stored_size(store.as_ref(), key).await?;
                entries.push((key.checksum, unpacked, archived));
            }
            if let Some(sizes) = stats.sizes.as_mut() {
                for (c, unpacked, archived) in entries {
                    sizes.insert(
                        c,
                        SizeEntry {
                            objtype: ObjectType::File,
                            unpacked,
                            archived,
                        },
                    );
                }
            }
        }

        // Dirmetas are small: write them as we merge.
        let mut sym_iter = symlinks.into_iter().map(|(c, _)| c);
        self.merge_scan(scan, mtree, &sums, &mut sym_iter, stats)
            .await?;
        if modifier.consume {
            consume_dir(&dir_for_consume)?;
        }
        Ok(())
    }

    /// Map (device, inode) of every content object of a local bare repository to its checksum
    /// (`ostree_repo_scan_hardlinks`). Other repositories give an empty map.
    pub async fn scan_hardlinks(&self) -> Result<DevinoCache> {
        let mut out = DevinoCache::new();
        if !self.store().capabilities().hardlink_checkout {
            return Ok(out);
        }
        let keys: Vec<ObjectKey> = self
            .store()
            .list(Some(ObjectType::File))
            .try_collect()
            .await?;
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || {
            for k in keys {
                if let Some(p) = store.local_path(&k)
                    && let Ok(md) = std::fs::symlink_metadata(&p)
                    && (md.is_file() || md.is_symlink())
                {
                    out.insert((md.dev(), md.ino()), k.checksum);
                }
            }
            out
        })
        .await
        .map_err(|e| Error::Other(format!("hardlink scan failed: {e}")))
    }

    async fn merge_scan(
        &self,
        scan: ScanDir,
        mtree: &mut MutableTree,
        sums: &[Checksum],
        symlinks: &mut impl Iterator<Item = Checksum>,
        stats: &mut CommitStats,
    ) -> Result<()> {
        mtree.ensure_loaded(self).await?;
        mtree.meta = Some(
            self.write_meta_object(ObjectType::DirMeta, scan.meta.to_bytes(), stats)
                .await?,
        );
        for (name, kind) in scan.entries {
            match kind {
                ScanKind::File(i) => mtree.replace_file(&name, sums[i])?,
                ScanKind::Known(c) => mtree.replace_file(&name, c)?,
                ScanKind::Symlink(_) => {
                    let c = symlinks
                        .next()
                        .ok_or_else(|| Error::Other("symlink bookkeeping".into()))?;
                    mtree.replace_file(&name, c)?
                }
                ScanKind::Dir(d) => {
                    let sub = mtree.ensure_dir(&name)?;
                    Box::pin(self.merge_scan(*d, sub, sums, symlinks, stats)).await?
                }
            }
        }
        Ok(())
    }

    /// Store a metadata object if missing; returns its checksum.
    pub async fn write_meta_object(
        &self,
        ty: ObjectType,
        bytes: Vec<u8>,
        stats: &mut CommitStats,
    ) -> Result<Checksum> {
        let c = Checksum::of(&bytes);
        let key = ObjectKey::new(c, ty);
        stats.metadata_objects_total += 1;
        if matches!(ty, ObjectType::DirTree | ObjectType::DirMeta)
            && let Some(sizes) = stats.sizes.as_mut()
        {
            let n = bytes.len() as u64;
            sizes.entry(c).or_insert(SizeEntry {
                objtype: ty,
                unpacked: n,
                archived: n,
            });
        }
        if !self.store().has(&key).await? {
            self.store()
                .put(&key, ObjectWrite::Meta(Bytes::from(bytes)))
                .await?;
            stats.metadata_objects_written += 1;
        }
        Ok(c)
    }

    /// Overlay the tree of an existing commit (`--tree=ref=`) into `mtree`.
    pub async fn write_commit_tree_to_mtree(
        &self,
        commit: &Checksum,
        mtree: &mut MutableTree,
    ) -> Result<()> {
        let c = self.load_commit(commit).await?;
        self.overlay_tree(c.root_tree, c.root_meta, mtree).await
    }

    /// Overlay an existing commit's tree, applying a commit modifier to every entry (ostree
    /// rewrites content objects whose metadata the modifier changes, e.g. `--owner-uid`).
    /// Without an effective modifier this is [`Repo::write_commit_tree_to_mtree`].
    pub async fn write_commit_tree_to_mtree_modified(
        &self,
        commit: &Checksum,
        mtree: &mut MutableTree,
        modifier: &CommitModifier,
        stats: &mut CommitStats,
    ) -> Result<()> {
        let (canonical, skip_xattrs) = self.effective_modifier(modifier);
        if !canonical && !skip_xattrs && modifier.filter.is_none() {
            return self.write_commit_tree_to_mtree(commit, mtree).await;
        }
        let c = self.load_commit(commit).await?;
        self.overlay_tree_modified(c.root_tree, c.root_meta, "/", mtree, modifier, stats)
            .await
    }

    fn modify_info(&self, path: &str, info: &mut EntryInfo, modifier: &CommitModifier) -> bool {
        let (canonical, _) = self.effective_modifier(modifier);
        apply_modifier(modifier, canonical, path, info)
    }

    async fn overlay_tree_modified(
        &self,
        tree: Checksum,
        meta: Checksum,
        path: &str,
        mtree: &mut MutableTree,
        modifier: &CommitModifier,
        stats: &mut CommitStats,
    ) -> Result<()> {
        let (_, skip_xattrs) = self.effective_modifier(modifier);
        mtree.ensure_loaded(self).await?;
        let mut dm = self.load_dirmeta(&meta).await?;
        let mut info = EntryInfo {
            uid: dm.uid,
            gid: dm.gid,
            mode: dm.mode,
        };
        if self.modify_info(path, &mut info, modifier) {
            dm.uid = info.uid;
            dm.gid = info.gid;
            dm.mode = info.mode;
        }
        if skip_xattrs {
            dm.xattrs.clear();
        }
        mtree.meta = Some(
            self.write_meta_object(ObjectType::DirMeta, dm.to_bytes(), stats)
                .await?,
        );
        let dt = self.load_dirtree(&tree).await?;
        for (n, c) in dt.files {
            let child = join_rel(path, &n);
            let content = self.load_file(&c).await?;
            let mut fm = content.meta.clone();
            let mut info = EntryInfo {
                uid: fm.uid,
                gid: fm.gid,
                mode: fm.mode,
            };
            if !self.modify_info(&child, &mut info, modifier) {
                continue;
            }
            fm.uid = info.uid;
            fm.gid = info.gid;
            fm.mode = (fm.mode & S_IFMT) | (info.mode & !S_IFMT);
            if skip_xattrs {
                fm.xattrs.clear();
            }
            stats.content_objects_total += 1;
            let unpacked = match &fm.symlink_target {
                Some(t) => t.len() as u64,
                None => content.size,
            };
            let newc = if fm == content.meta {
                c
            } else {
                let size = content.size;
                let mut body = Vec::with_capacity(size.min(1 << 20) as usize);
                let mut r = content.body.into_reader();
                std::io::copy(&mut r, &mut body)
                    .map_err(|e| Error::io(format!("reading object {c}"), e))?;
                let nc = crate::objects::content_checksum(&fm, &body[..])?;
                let key = ObjectKey::new(nc, ObjectType::File);
                if !self.store().has(&key).await? {
                    self.store()
                        .put(
                            &key,
                            ObjectWrite::Content {
                                meta: fm,
                                size,
                                source: ContentSource::Bytes(Bytes::from(body)),
                            },
                        )
                        .await?;
                    stats.content_objects_written += 1;
                    stats.content_bytes_written += size;
                }
                nc
            };
            // ostree rewrites every file on this path, so each gets a size entry.
            if stats.sizes.is_some() {
                let key = ObjectKey::new(newc, ObjectType::File);
                let archived = stored_size(self.store().as_ref(), &key).await?;
                if let Some(sizes) = stats.sizes.as_mut() {
                    sizes.insert(
                        newc,
                        SizeEntry {
                            objtype: ObjectType::File,
                            unpacked,
                            archived,
                        },
                    );
                }
            }
            mtree.replace_file(&n, newc)?;
        }
        for (n, t, m) in dt.dirs {
            let child = join_rel(path, &n);
            let dmeta = self.load_dirmeta(&m).await?;
            let mut info = EntryInfo {
                uid: dmeta.uid,
                gid: dmeta.gid,
                mode: dmeta.mode,
            };
            if !self.modify_info(&child, &mut info, modifier) {
                continue;
            }
            let sub = mtree.ensure_dir(&n)?;
            Box::pin(self.overlay_tree_modified(t, m, &child, sub, modifier, stats)).await?;
        }
        Ok(())
    }

    async fn overlay_tree(
        &self,
        tree: Checksum,
        meta: Checksum,
        mtree: &mut MutableTree,
    ) -> Result<()> {
        if mtree.files.is_empty() && mtree.dirs.is_empty() && mtree.lazy.is_none() {
            *mtree = MutableTree::from_existing(tree, meta);
            return Ok(());
        }
        mtree.ensure_loaded(self).await?;
        mtree.meta = Some(meta);
        let dt = self.load_dirtree(&tree).await?;
        for (n, c) in dt.files {
            mtree.replace_file(&n, c)?;
        }
        for (n, t, m) in dt.dirs {
            let sub = mtree.ensure_dir(&n)?;
            Box::pin(self.overlay_tree(t, m, sub)).await?;
        }
        Ok(())
    }

    /// Write the dirtree/dirmeta objects of `mtree` bottom-up; returns (tree, meta) of its root.
    pub async fn write_mtree(
        &self,
        mtree: &MutableTree,
        stats: &mut CommitStats,
    ) -> Result<(Checksum, Checksum)> {
        let meta = match mtree.meta {
            Some(m) => m,
            None => {
                // A directory created implicitly gets ostree's default 0755 root:root dirmeta.
                let dm = DirMeta {
                    uid: 0,
                    gid: 0,
                    mode: S_IFDIR | 0o755,
                    xattrs: vec![],
                };
                self.write_meta_object(ObjectType::DirMeta, dm.to_bytes(), stats)
                    .await?
            }
        };
        if let Some(t) = mtree.lazy {
            return Ok((t, meta));
        }
        let mut tree = DirTree::default();
        for (n, c) in &mtree.files {
            tree.files.push((n.clone(), *c));
        }
        for (n, sub) in &mtree.dirs {
            let (t, m) = Box::pin(self.write_mtree(sub, stats)).await?;
            tree.dirs.push((n.clone(), t, m));
        }
        let t = self
            .write_meta_object(ObjectType::DirTree, tree.to_bytes(), stats)
            .await?;
        Ok((t, meta))
    }

    /// Write a commit object pointing at a root tree. Detached metadata, if given, is written
    /// alongside. Not durable until [`Repo::commit_transaction`].
    pub async fn write_commit(
        &self,
        commit: &Commit,
        detached: Option<&Metadata>,
        stats: &mut CommitStats,
    ) -> Result<Checksum> {
        commit.validate_structure()?;
        let bytes = commit.to_bytes();
        let c = Checksum::of(&bytes);
        stats.metadata_objects_total += 1;
        if !self
            .store()
            .has(&ObjectKey::new(c, ObjectType::Commit))
            .await?
        {
            stats.metadata_objects_written += 1;
        }
        self.put_commit_object(&c, Bytes::from(bytes)).await?;
        if let Some(md) = detached {
            let key = ObjectKey::new(c, ObjectType::CommitMeta);
            self.store().delete(&key).await?;
            self.store()
                .put(&key, ObjectWrite::Meta(Bytes::from(md.to_bytes())))
                .await?;
        }
        Ok(c)
    }

    /// Make everything written so far durable, then move `refs` (compare-and-swap against the
    /// value each ref had when the transaction started).
    ///
    /// With `OSTREE_REPO_TEST_ERROR=pre-commit` (upstream's test hook) it fails before anything
    /// is made durable or any ref moves, as `ostree_repo_commit_transaction` does: what was
    /// written stays in the store's staging area, as after a crash.
    pub async fn commit_transaction(
        &self,
        refs: &[(Option<String>, String, RefExpect, Option<Checksum>)],
    ) -> Result<()> {
        if crate::hostenv::test_error("pre-commit") {
            return Err(Error::Other(
                "OSTREE_REPO_TEST_ERROR_PRE_COMMIT specified".into(),
            ));
        }
        self.store().sync().await?;
        for (remote, name, expect, value) in refs {
            self.update_ref(remote.as_deref(), name, *expect, *value)
                .await
                .map_err(|e| match e {
                    Error::Precondition { .. } => Error::Other(format!(
                        "ref {name} was changed by someone else during this operation"
                    )),
                    e => e,
                })?;
        }
        Ok(())
    }
}

/// `--consume`: remove what was committed (the directory itself unless it is `.`).
fn consume_dir(dir: &Path) -> Result<()> {
    if dir == Path::new(".") {
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io_path("opendir", dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io_path("readdir", dir, e))?;
            let p = ent.path();
            let r = if ent.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| Error::io_path("unlink", &p, e))?;
        }
        Ok(())
    } else {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io_path("unlink", dir, e))
    }
}

fn collect_symlinks(d: &ScanDir, out: &mut Vec<(Checksum, FileMeta)>) -> Result<()> {
    for (_, k) in &d.entries {
        match k {
            ScanKind::Symlink(meta) => out.push((
                crate::objects::content_checksum(meta, std::io::empty())?,
                meta.clone(),
            )),
            ScanKind::Dir(sub) => collect_symlinks(sub, out)?,
            ScanKind::File(_) | ScanKind::Known(_) => {}
        }
    }
    Ok(())
}
