//! Checking out a commit (or a subpath of it) into a local directory.
//!
//! Phases: (1) load dirtrees breadth-first and create every directory (mode 0700 until
//! filled); (2) materialize files in parallel, in chunks per directory — hardlinks from bare
//! stores when the modes allow, else copies (inflating archive objects on the fly); (3) set
//! directory ownership/modes/mtimes bottom-up.
//!
//! A user-mode checkout from a local archive repository with
//! [`CheckoutOptions::enable_uncompressed_cache`] goes through the repository's
//! uncompressed-objects cache ([`super::ucache`]): files are hardlinked from it, and missing
//! entries are inflated into it first (staged, made durable with one `syncfs`, then renamed
//! into place) between phases 2 and 3.
//!
//! Safety: every name comes from a validated dirtree (no `/`, `.`, `..`, duplicates), and
//! every directory is opened relative to the checkout root with `RESOLVE_BENEATH`, so nothing
//! the repository (or an earlier union checkout) contains can make us write outside the target.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::Repo;
use super::ucache::UncompressedCache;
use crate::error::IoContext;
use crate::objects::{DirMeta, DirTree, FileMeta, S_IFDIR, S_IFMT, Xattrs};
use crate::progress::{NoProgress, Progress};
use crate::store::RepoMode;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Ownership handling (ostree's checkout mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckoutMode {
    /// Apply ownership and xattrs (needs root).
    #[default]
    None,
    /// `-U`: files owned by the caller, no xattrs, no setuid/setgid.
    User,
}

/// What to do when the target already has an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverwriteMode {
    /// Error (the target must not exist).
    #[default]
    None,
    /// `--union`: keep existing directories, replace files.
    UnionFiles,
    /// `--union-add`: keep everything existing, only add.
    AddFiles,
    /// `--union-identical`: add, but error if an existing file differs.
    UnionIdentical,
}

/// Checkout options.
#[derive(Clone, Default)]
pub struct CheckoutOptions {
    /// Ownership handling.
    pub mode: CheckoutMode,
    /// Existing-entry handling.
    pub overwrite: OverwriteMode,
    /// Only this path of the commit (`/usr`); a file subpath checks out that one file.
    pub subpath: Option<String>,
    /// Never hardlink.
    pub force_copy: bool,
    /// `-H`: fail rather than copy when hardlinking is impossible.
    pub require_hardlinks: bool,
    /// `-M`: mask directory modes as bare-user-only does.
    pub bareuseronly_dirs: bool,
    /// `--whiteouts`: process `.wh.` entries (Docker style).
    pub process_whiteouts: bool,
    /// Turn `.ostree-wh.NAME` files into overlayfs whiteouts (a `0:0` character device
    /// `NAME` with the file's mode and owner), as deployments do
    /// (`process_passthrough_whiteouts`).
    pub process_passthrough_whiteouts: bool,
    /// fsync written files and directories.
    pub fsync: bool,
    /// Use and fill the uncompressed-objects cache of an `archive` repository (see
    /// [`UncompressedCache`]): `ostree_repo_checkout_tree` does, `ostree_repo_checkout_at`
    /// does not unless asked. It only applies to user-mode checkouts from a local archive
    /// repository whose `core.enable-uncompressed-cache` (default true) holds and whose
    /// `objects/` is writable.
    pub enable_uncompressed_cache: bool,
    /// Whether new cache entries are made durable before they get their final name; `None`:
    /// the repository's `core.fsync` (default true). `checkout --fsync=false` sets `Some(false)`.
    pub cache_fsync: Option<bool>,
    /// Progress sink.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for CheckoutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutOptions")
            .field("mode", &self.mode)
            .field("overwrite", &self.overwrite)
            .field("subpath", &self.subpath)
            .field("force_copy", &self.force_copy)
            .field("require_hardlinks", &self.require_hardlinks)
            .field("enable_uncompressed_cache", &self.enable_uncompressed_cache)
            .finish()
    }
}

struct DirJob {
    rel: String,
    tree: DirTree,
    meta: DirMeta,
    did_exist: bool,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OVERLAYFS_WHITEOUT_PREFIX: &str = ".ostree-wh.";

fn open_beneath(root: &OwnedFd, rel: &str) -> Result<OwnedFd> {
    let path = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .ctx(|| format!("opening directory {path} in checkout"))
}

fn set_xattrs_fd(fd: impl AsFd, xattrs: &Xattrs, what: &str) -> Result<()> {
    for (k, v) in xattrs {
        let name = std::ffi::CString::new(k.clone())
            .map_err(|_| Error::corrupted("xattr name with NUL"))?;
        rustix::fs::fsetxattr(&fd, name.as_c_str(), v, rustix::fs::XattrFlags::empty())
            .ctx(|| format!("fsetxattr({}) on {what}", String::from_utf8_lossy(k)))?;
    }
    Ok(())
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

struct Ctx {
    repo: Repo,
    opts: CheckoutOptions,
    root: OwnedFd,
    root_path: PathBuf,
    hardlinkable: bool,
    usermode_repo: bool,
    /// The uncompressed-objects cache, when this checkout goes through it.
    ucache: Option<UcState>,
    rt: tokio::runtime::Handle,
}

/// Files by directory, (directory, [(name, checksum)]): the work list of a checkout, or the
/// files waiting for their new cache entry.
type Deferred = Vec<(String, Vec<(String, Checksum)>)>;

/// A checkout's use of the uncompressed-objects cache. Files found there are hardlinked at
/// once. A missing entry is inflated straight into the checkout when nothing can be there
/// already (no union mode) and no other file of this checkout has the same content; other
/// misses are inflated into a private staging directory (`tmp/ucache-*`) and their checkout
/// files deferred. Once every file went through, the repository's filesystem is made durable
/// with one `syncfs` (when fsync is on: ostree fsyncs each new entry instead); then the files
/// inflated in place are hardlinked into the cache, and each staged entry is renamed into it
/// (never replacing one) and hardlinked into the checkout. A crash thus never leaves an entry
/// with missing bytes under its final name.
struct UcState {
    cache: UncompressedCache,
    /// The open cache directory (opened at the start if it exists, else made for the first
    /// new entry). Read for every file: lock-free.
    dir: std::sync::OnceLock<Arc<OwnedFd>>,
    /// `<repo>/tmp`.
    tmp: PathBuf,
    fsync: bool,
    /// Fan-out directories of the cache known to exist.
    fanout: [std::sync::atomic::AtomicBool; 256],
    /// This checkout's staging directory (made on the first miss) and its name under `tmp/`.
    staging: Mutex<Option<Arc<(OwnedFd, String)>>>,
    deferred: Mutex<Deferred>,
    /// Contents inflated in place by this checkout (the first file of each).
    claimed: Mutex<std::collections::HashSet<Checksum>>,
    /// The files inflated in place, to link into the cache once durable.
    originals: Mutex<Deferred>,
}

impl UcState {
    fn dir(&self) -> Option<&OwnedFd> {
        self.dir.get().map(|d| &**d)
    }

    fn create_dir(&self) -> Result<Arc<OwnedFd>> {
        if let Some(d) = self.dir.get() {
            return Ok(d.clone());
        }
        let d = Arc::new(self.cache.create()?);
        Ok(self.dir.get_or_init(|| d).clone())
    }

    fn staging(&self) -> Result<Arc<(OwnedFd, String)>> {
        let mut g = self
            .staging
            .lock()
            .map_err(|_| Error::Other("uncompressed cache lock poisoned".into()))?;
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        match rustix::fs::mkdir(&self.tmp, Mode::from_raw_mode(0o775)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(Error::io(format!("mkdir {}", self.tmp.display()), e.into()));
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("ucache-{}-{nanos:08x}", std::process::id());
        let path = self.tmp.join(&name);
        rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700))
            .ctx(|| format!("mkdir {}", path.display()))?;
        let fd = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", path.display()))?;
        let s = Arc::new((fd, name));
        *g = Some(s.clone());
        Ok(s)
    }

    /// The staging directory, if a miss made it.
    fn staging_if_made(&self) -> Option<Arc<(OwnedFd, String)>> {
        self.staging.lock().ok().and_then(|g| g.clone())
    }

    /// True for the first file of content `csum` in this checkout.
    fn claim(&self, csum: Checksum) -> Result<bool> {
        Ok(self
            .claimed
            .lock()
            .map_err(|_| Error::Other("uncompressed cache lock poisoned".into()))?
            .insert(csum))
    }

    /// Whether a file of this checkout already claimed content `csum`.
    fn is_claimed(&self, csum: &Checksum) -> Result<bool> {
        Ok(self
            .claimed
            .lock()
            .map_err(|_| Error::Other("uncompressed cache lock poisoned".into()))?
            .contains(csum))
    }

    fn defer(&self, rel: &str, name: &str, csum: Checksum) -> Result<()> {
        Self::push(&self.deferred, rel, name, csum)
    }

    fn defer_original(&self, rel: &str, name: &str, csum: Checksum) -> Result<()> {
        Self::push(&self.originals, rel, name, csum)
    }

    fn push(list: &Mutex<Deferred>, rel: &str, name: &str, csum: Checksum) -> Result<()> {
        let mut g = list
            .lock()
            .map_err(|_| Error::Other("uncompressed cache lock poisoned".into()))?;
        match g.last_mut() {
            Some((r, v)) if r == rel && v.len() < 64 => v.push((name.to_string(), csum)),
            _ => g.push((rel.to_string(), vec![(name.to_string(), csum)])),
        }
        Ok(())
    }

    /// The deferred files and the files inflated in place.
    fn take_deferred(&self) -> (Deferred, Deferred) {
        let take = |list: &Mutex<Deferred>| {
            list.lock()
                .map(|mut g| std::mem::take(&mut *g))
                .unwrap_or_default()
        };
        (take(&self.deferred), take(&self.originals))
    }
}

impl Drop for UcState {
    fn drop(&mut self) {
        if let Ok(mut g) = self.staging.lock()
            && let Some(s) = g.take()
            && let Ok(tmp) = rustix::fs::open(
                &self.tmp,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        {
            let _ = remove_all_at(&tmp, &s.1);
        }
    }
}

/// How a hardlink attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Link {
    /// Linked (or, with a union mode, the existing file was kept).
    Done,
    /// The source does not exist (only when asked to allow it).
    Missing,
    /// Not possible here (another filesystem, link count limit): copy instead.
    Impossible,
}

impl Repo {
    /// Check out `commit` into `dest` (created; with a union mode it may exist).
    pub async fn checkout(
        &self,
        commit: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
    ) -> Result<()> {
        // ostree: "Force USER mode for BARE_USER_ONLY always - nothing else makes sense".
        let forced;
        let opts = if self.mode() == RepoMode::BareUserOnly && opts.mode != CheckoutMode::User {
            forced = CheckoutOptions {
                mode: CheckoutMode::User,
                ..opts.clone()
            };
            &forced
        } else {
            opts
        };
        let c = self.load_commit(commit).await?;
        if self.is_commit_partial(commit).await? {
            return Err(Error::invalid(format!(
                "Commit {commit} is partial (missing objects); pull it completely first"
            )));
        }
        // Resolve the subpath.
        let (mut tree_csum, mut meta_csum) = (c.root_tree, c.root_meta);
        if let Some(sp) = opts.subpath.as_deref() {
            let comps: Vec<&str> = sp
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            for (i, comp) in comps.iter().enumerate() {
                let dt = self.load_dirtree(&tree_csum).await?;
                if let Some((_, t, m)) = dt.dirs.iter().find(|(n, _, _)| n == comp) {
                    tree_csum = *t;
                    meta_csum = *m;
                } else if let Some((_, f)) = dt.files.iter().find(|(n, _)| n == comp) {
                    if i + 1 != comps.len() {
                        return Err(Error::not_found(format!("No such file or directory: {sp}")));
                    }
                    return self.checkout_single_file(f, comp, dest, opts).await;
                } else {
                    return Err(Error::not_found(format!("No such file or directory: {sp}")));
                }
            }
        }
        self.checkout_tree(&tree_csum, &meta_csum, dest, opts).await
    }

    /// A file subpath: checked out as `dest/<its name>`, `dest` made (0700) unless it is `.`
    /// or exists (ostree's "backwards compat" special case in checkout_tree_at).
    async fn checkout_single_file(
        &self,
        csum: &Checksum,
        name: &str,
        dest: &Path,
        opts: &CheckoutOptions,
    ) -> Result<()> {
        let parent = dest;
        let name = name.to_string();
        if dest != Path::new(".") {
            match rustix::fs::mkdir(dest, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io(format!("mkdirat: {}", dest.display()), e.into())),
            }
        }
        let root: OwnedFd = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", parent.display()))?;
        let ctx = Arc::new(self.checkout_ctx(root, parent.to_path_buf(), opts)?);
        let csum = *csum;
        let c = ctx.clone();
        tokio::task::spawn_blocking(move || c.file(&c.root, "", &name, &csum))
            .await
            .map_err(|e| Error::Other(format!("checkout worker failed: {e}")))??;
        place_deferred(&ctx).await
    }

    fn checkout_ctx(
        &self,
        root: OwnedFd,
        root_path: PathBuf,
        opts: &CheckoutOptions,
    ) -> Result<Ctx> {
        let mode = self.mode();
        // ostree: `is_archive_z2_with_cache` (archive repository, user mode, cache enabled
        // by the caller and by the repository).
        let ucache = match UncompressedCache::of(self) {
            Some(cache)
                if opts.enable_uncompressed_cache
                    && opts.mode == CheckoutMode::User
                    && !opts.force_copy
                    && UncompressedCache::enabled(self)? =>
            {
                let fsync = match opts.cache_fsync {
                    Some(f) => f,
                    None => self.config().core_bool("fsync", true)?,
                };
                let tmp = cache
                    .path()
                    .parent()
                    .map(|p| p.join("tmp"))
                    .unwrap_or_else(|| PathBuf::from("tmp"));
                let dir = std::sync::OnceLock::new();
                if let Some(d) = cache.open()? {
                    let _ = dir.set(Arc::new(d));
                }
                Some(UcState {
                    cache,
                    dir,
                    tmp,
                    fsync,
                    fanout: std::array::from_fn(|_| std::sync::atomic::AtomicBool::new(false)),
                    staging: Mutex::new(None),
                    deferred: Mutex::new(Vec::new()),
                    claimed: Mutex::new(Default::default()),
                    originals: Mutex::new(Vec::new()),
                })
            }
            _ => None,
        };
        let usermode_repo = matches!(mode, RepoMode::BareUser | RepoMode::BareUserOnly);
        let hardlinkable = self.store().capabilities().hardlink_checkout
            && ((mode == RepoMode::Bare && opts.mode == CheckoutMode::None)
                || (usermode_repo && opts.mode == CheckoutMode::User));
        Ok(Ctx {
            repo: self.clone(),
            opts: opts.clone(),
            root,
            root_path,
            hardlinkable,
            usermode_repo,
            ucache,
            rt: tokio::runtime::Handle::current(),
        })
    }

    /// Check out a dirtree/dirmeta pair into `dest`.
    pub async fn checkout_tree(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        dest: &Path,
        opts: &CheckoutOptions,
    ) -> Result<()> {
        let progress: Arc<dyn Progress> = opts
            .progress
            .clone()
            .unwrap_or_else(|| Arc::new(NoProgress));
        // Create the destination itself.
        let root_meta = self.load_dirmeta(meta).await?;
        let did_exist = match rustix::fs::mkdir(dest, Mode::from_raw_mode(0o700)) {
            Ok(()) => false,
            Err(Errno::EXIST) if opts.overwrite != OverwriteMode::None => true,
            Err(e) => return Err(Error::io(format!("mkdirat: {}", dest.display()), e.into())),
        };
        let root: OwnedFd = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", dest.display()))?;
        let ctx = Arc::new(self.checkout_ctx(root, dest.to_path_buf(), opts)?);
        // ostree checks devices per directory before any file (checkout_tree_at_recurse).
        if opts.require_hardlinks
            && let Some(repo_root) = self.store().local_root()
            && let (Ok(src), Ok(dst)) = (rustix::fs::stat(repo_root), rustix::fs::fstat(&ctx.root))
            && src.st_dev != dst.st_dev
        {
            return Err(Error::invalid(format!(
                "Unable to do hardlink checkout across devices (src={} destination={})",
                src.st_dev, dst.st_dev
            )));
        }
        if opts.require_hardlinks && !ctx.hardlinkable && !opts.force_copy {
            return Err(Error::invalid(if ctx.usermode_repo {
                "User repository mode requires user checkout mode to hardlink"
            } else {
                "Bare repository mode cannot hardlink in user checkout mode"
            }));
        }
        if !did_exist && opts.mode == CheckoutMode::None {
            set_xattrs_fd(&ctx.root, &root_meta.xattrs, &dest.display().to_string())?;
        }

        // Phase 1: directories, breadth-first.
        progress.phase("Checking out", 0);
        let mut dirs: Vec<DirJob> = Vec::new();
        let root_tree = self.load_dirtree(tree).await?;
        dirs.push(DirJob {
            rel: String::new(),
            tree: root_tree,
            meta: root_meta,
            did_exist,
        });
        let mut metas: HashMap<Checksum, DirMeta> = HashMap::new();
        let mut i = 0;
        let mut nfiles = 0usize;
        while i < dirs.len() {
            let rel = dirs[i].rel.clone();
            nfiles += dirs[i].tree.files.len();
            let subdirs = dirs[i].tree.dirs.clone();
            if !subdirs.is_empty() {
                let parent = open_beneath(&ctx.root, &rel)?;
                let trees: Vec<Checksum> = subdirs.iter().map(|(_, t, _)| *t).collect();
                let repo = self.clone();
                let loaded: Vec<DirTree> = futures::stream::iter(trees.into_iter().map(move |t| {
                    let repo = repo.clone();
                    async move { repo.load_dirtree(&t).await }
                }))
                .buffered(16)
                .try_collect()
                .await?;
                // A tree has few distinct dirmetas: each is loaded once.
                for (_, _, m) in &subdirs {
                    if !metas.contains_key(m) {
                        metas.insert(*m, self.load_dirmeta(m).await?);
                    }
                }
                for ((name, _, m), dt) in subdirs.iter().zip(loaded) {
                    let dm = metas[m].clone();
                    let exist = match rustix::fs::mkdirat(
                        &parent,
                        name.as_str(),
                        Mode::from_raw_mode(0o700),
                    ) {
                        Ok(()) => false,
                        Err(Errno::EXIST) if opts.overwrite != OverwriteMode::None => {
                            let st = rustix::fs::statat(&parent, name.as_str(), AtFlags::empty())
                                .ctx(|| format!("stat {}", join(&rel, name)))?;
                            if st.st_mode & S_IFMT != S_IFDIR {
                                if opts.overwrite == OverwriteMode::UnionFiles {
                                    rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::empty())
                                        .ctx(|| format!("unlinkat {}", join(&rel, name)))?;
                                    rustix::fs::mkdirat(
                                        &parent,
                                        name.as_str(),
                                        Mode::from_raw_mode(0o700),
                                    )
                                    .ctx(|| format!("mkdirat {}", join(&rel, name)))?;
                                    false
                                } else {
                                    return Err(Error::AlreadyExists {
                                        what: join(&rel, name),
                                    });
                                }
                            } else {
                                true
                            }
                        }
                        Err(e) => {
                            return Err(Error::io(
                                format!("mkdirat: {}", join(&rel, name)),
                                e.into(),
                            ));
                        }
                    };
                    if !exist && opts.mode == CheckoutMode::None && !dm.xattrs.is_empty() {
                        let fd = open_beneath(&ctx.root, &join(&rel, name))?;
                        set_xattrs_fd(&fd, &dm.xattrs, &join(&rel, name))?;
                    }
                    dirs.push(DirJob {
                        rel: join(&rel, name),
                        tree: dt,
                        meta: dm,
                        did_exist: exist,
                    });
                }
            }
            i += 1;
        }

        // Phase 2: files, in chunks per directory.
        progress.phase("Checking out files", nfiles as u64);
        let mut chunks: Vec<(String, Vec<(String, Checksum)>)> = Vec::new();
        for d in &dirs {
            for c in d.tree.files.chunks(64) {
                chunks.push((d.rel.clone(), c.to_vec()));
            }
        }
        let p = progress.clone();
        for_each_file(&ctx, chunks, move |ctx, dfd, rel, name, csum| {
            ctx.file(dfd, rel, name, csum)?;
            p.inc(1);
            Ok(())
        })
        .await?;
        // Files waiting for their new uncompressed-cache entry.
        place_deferred(&ctx).await?;

        // Phase 3: directory metadata, deepest first.
        let ctx2 = ctx.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for d in dirs.iter().rev() {
                if d.did_exist {
                    continue;
                }
                let fd = open_beneath(&ctx2.root, &d.rel)?;
                let mode =
                    if ctx2.repo.mode() == RepoMode::BareUserOnly || ctx2.opts.bareuseronly_dirs {
                        (d.meta.mode & 0o775) | S_IFDIR
                    } else {
                        d.meta.mode
                    };
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                    .ctx(|| format!("fchmod {}", d.rel))?;
                if ctx2.opts.mode == CheckoutMode::None {
                    rustix::fs::fchown(
                        &fd,
                        Some(rustix::fs::Uid::from_raw(d.meta.uid)),
                        Some(rustix::fs::Gid::from_raw(d.meta.gid)),
                    )
                    .ctx(|| format!("fchown {}", d.rel))?;
                }
                if !ctx2.opts.force_copy {
                    let ts = rustix::fs::Timestamps {
                        last_access: rustix::fs::Timespec {
                            tv_sec: 0,
                            tv_nsec: rustix::fs::UTIME_OMIT,
                        },
                        last_modification: rustix::fs::Timespec {
                            tv_sec: 0,
                            tv_nsec: 0,
                        },
                    };
                    rustix::fs::futimens(&fd, &ts).ctx(|| format!("futimens {}", d.rel))?;
                }
                if ctx2.opts.fsync {
                    rustix::fs::fsync(&fd).ctx(|| format!("fsync {}", d.rel))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Other(format!("checkout worker failed: {e}")))??;
        progress.finish();
        Ok(())
    }
}

/// The second half of a checkout through the uncompressed-objects cache (see [`UcState`]):
/// make the new files durable, link those inflated in place into the cache, then move the
/// staged entries into it and link their files.
async fn place_deferred(ctx: &Arc<Ctx>) -> Result<()> {
    let Some(uc) = &ctx.ucache else {
        return Ok(());
    };
    let (deferred, originals) = uc.take_deferred();
    if deferred.is_empty() && originals.is_empty() {
        return Ok(());
    }
    let c = ctx.clone();
    let (cdir, staging) = tokio::task::spawn_blocking(move || -> Result<_> {
        let Some(uc) = &c.ucache else {
            return Err(Error::Other("uncompressed cache state vanished".into()));
        };
        let cdir = uc.create_dir()?;
        if uc.fsync {
            rustix::fs::syncfs(&*cdir).ctx(|| "syncfs (uncompressed cache)".to_string())?;
        }
        // Files inflated in place on another filesystem than the repository's.
        if c.opts.fsync {
            rustix::fs::syncfs(&c.root).ctx(|| "syncfs (checkout)".to_string())?;
        }
        Ok((cdir, uc.staging_if_made()))
    })
    .await
    .map_err(|e| Error::Other(format!("checkout worker failed: {e}")))??;
    let cd = cdir.clone();
    for_each_file(ctx, originals, move |ctx, dfd, _rel, name, csum| {
        ctx.cache_original(&cd, dfd, name, csum)
    })
    .await?;
    for_each_file(ctx, deferred, move |ctx, dfd, rel, name, csum| {
        ctx.place_one(
            &cdir,
            staging.as_deref().map(|s| &s.0),
            dfd,
            rel,
            name,
            csum,
        )
    })
    .await
}

/// Run `f` on every file of `chunks` (a directory's relative path and up to 64 of its files
/// each), as many blocking tasks at once as cores plus one. Consecutive chunks of small
/// directories share a task (up to 64 files in all): a trip through tokio's blocking pool
/// costs more than linking a few files, and most directories of an OS tree hold a few.
async fn for_each_file<F>(ctx: &Arc<Ctx>, chunks: Deferred, f: F) -> Result<()>
where
    F: Fn(&Ctx, &OwnedFd, &str, &str, &Checksum) -> Result<()> + Send + Sync + 'static,
{
    const BATCH_FILES: usize = 64;
    let par = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        + 1;
    let mut batches: Vec<Deferred> = Vec::new();
    let mut in_last = 0;
    for chunk in chunks {
        if batches.is_empty() || in_last + chunk.1.len() > BATCH_FILES {
            batches.push(Vec::new());
            in_last = 0;
        }
        in_last += chunk.1.len();
        if let Some(b) = batches.last_mut() {
            b.push(chunk);
        }
    }
    let f = Arc::new(f);
    futures::stream::iter(batches.into_iter().map(|batch| {
        let ctx = ctx.clone();
        let f = f.clone();
        async move {
            tokio::task::spawn_blocking(move || -> Result<()> {
                for (rel, files) in &batch {
                    let dfd = open_beneath(&ctx.root, rel)?;
                    for (name, csum) in files {
                        f(&ctx, &dfd, rel, name, csum)?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Other(format!("checkout worker failed: {e}")))?
        }
    }))
    .buffer_unordered(par)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

impl Ctx {
    /// Make sure the cache's fan-out directory of `csum` exists.
    fn fanout(&self, cdir: &OwnedFd, csum: &Checksum) -> Result<()> {
        if let Some(uc) = &self.ucache {
            let known = &uc.fanout[csum.0[0] as usize];
            if !known.load(std::sync::atomic::Ordering::Relaxed) {
                UncompressedCache::ensure_fanout(cdir, csum)?;
                known.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Link dfd/name, inflated in place, into the cache as the entry of `csum`. An entry there
    /// already (another checkout's) is kept; where no link can be made (another filesystem,
    /// link count limit) the cache just stays without it.
    fn cache_original(
        &self,
        cdir: &OwnedFd,
        dfd: &OwnedFd,
        name: &str,
        csum: &Checksum,
    ) -> Result<()> {
        self.fanout(cdir, csum)?;
        let entry = UncompressedCache::entry_name(csum);
        match rustix::fs::linkat(dfd, name, cdir, entry.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST | Errno::XDEV | Errno::MLINK | Errno::PERM) => Ok(()),
            Err(e) => Err(Error::io(
                format!("Unpacking loose object {csum}: linking into the cache"),
                e.into(),
            )),
        }
    }

    /// Move the staged entry of `csum` (if any) into the cache (unless one is there already)
    /// and link dfd/name to it.
    fn place_one(
        &self,
        cdir: &OwnedFd,
        staging: Option<&OwnedFd>,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        csum: &Checksum,
    ) -> Result<()> {
        let entry = UncompressedCache::entry_name(csum);
        let staged = format!("{csum}.file");
        self.fanout(cdir, csum)?;
        match staging.map(|staging| {
            rustix::fs::renameat_with(
                staging,
                staged.as_str(),
                cdir,
                entry.as_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            )
        }) {
            // NOENT: another file of this checkout with the same content moved it already
            // (or it was inflated in place and linked into the cache).
            None | Some(Ok(()) | Err(Errno::NOENT)) => {}
            Some(Err(Errno::EXIST)) => {
                if let Some(staging) = staging {
                    let _ = rustix::fs::unlinkat(staging, staged.as_str(), AtFlags::empty());
                }
            }
            Some(Err(e)) => {
                return Err(Error::io(
                    format!("Unpacking loose object {csum}: renaming into the cache"),
                    e.into(),
                ));
            }
        }
        let key = ObjectKey::new(*csum, ObjectType::File);
        match self.link(cdir.as_fd(), Path::new(&entry), dfd, rel, name, &key, true)? {
            Link::Done => Ok(()),
            _ => self.copy(dfd, rel, name, &key),
        }
    }

    /// A file of a checkout through the uncompressed-objects cache.
    fn file_cached(
        &self,
        uc: &UcState,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        key: &ObjectKey,
    ) -> Result<()> {
        // Only regular, non-empty, readable files are ever cached, so a hit needs no look at
        // the object itself.
        if let Some(cdir) = uc.dir() {
            let entry = UncompressedCache::entry_name(&key.checksum);
            match self.link(cdir.as_fd(), Path::new(&entry), dfd, rel, name, key, true)? {
                Link::Done => return Ok(()),
                Link::Impossible => return self.copy(dfd, rel, name, key),
                Link::Missing => {}
            }
        }
        let csum = key.checksum;
        // Content another file of this checkout inflated in place (so it is cacheable): linked
        // to its entry once that is cached, without inflating it again.
        if self.opts.overwrite == OverwriteMode::None && uc.is_claimed(&csum)? {
            return uc.defer(rel, name, csum);
        }
        let content = self.load(key)?;
        let m = &content.meta;
        if m.is_symlink() || content.size == 0 || m.mode & 0o400 == 0 {
            return self.copy_content(dfd, rel, name, key, content);
        }
        let create =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        if self.opts.overwrite == OverwriteMode::None && uc.claim(csum)? {
            // Inflated in place; linked into the cache once durable (see `UcState`).
            let fd = match rustix::fs::openat(dfd, name, create, Mode::from_raw_mode(0o600)) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => {
                    return Err(Error::io(
                        format!("Copy checkout of {csum} to {name}"),
                        std::io::Error::from_raw_os_error(libc::EEXIST),
                    ));
                }
                Err(e) => {
                    return Err(Error::io(format!("creating {}", join(rel, name)), e.into()));
                }
            };
            if let Err(e) = write_cache_entry(fd, content, key) {
                let _ = rustix::fs::unlinkat(dfd, name, AtFlags::empty());
                return Err(e);
            }
            return uc.defer_original(rel, name, csum);
        }
        if self.opts.overwrite == OverwriteMode::None {
            // The same content as a file of this checkout inflated in place: linked to its
            // entry once that is cached. (In a union mode every miss is staged.)
            return uc.defer(rel, name, csum);
        }
        let staging = uc.staging()?;
        let staged = format!("{csum}.file");
        match rustix::fs::openat(
            &staging.0,
            staged.as_str(),
            create,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => {
                if let Err(e) = write_cache_entry(fd, content, key) {
                    let _ = rustix::fs::unlinkat(&staging.0, staged.as_str(), AtFlags::empty());
                    return Err(e);
                }
            }
            // The same content elsewhere in this checkout: that file stages it.
            Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("Unpacking loose object {csum}"),
                    e.into(),
                ));
            }
        }
        uc.defer(rel, name, csum)
    }

    fn file(&self, dfd: &OwnedFd, rel: &str, name: &str, csum: &Checksum) -> Result<()> {
        crate::objects::validate_filename(name)?;
        let key = ObjectKey::new(*csum, ObjectType::File);
        if self.opts.process_whiteouts
            && let Some(target) = name.strip_prefix(WHITEOUT_PREFIX)
        {
            if target.is_empty() {
                return Err(Error::corrupted(format!("Invalid empty whiteout '{name}'")));
            }
            return remove_all_at(dfd, target);
        }
        if self.opts.process_passthrough_whiteouts
            && let Some(target) = name.strip_prefix(OVERLAYFS_WHITEOUT_PREFIX)
        {
            return self.overlayfs_whiteout(dfd, rel, target, &key);
        }
        // Archive user-mode checkouts go through the uncompressed-objects cache.
        if let Some(uc) = &self.ucache {
            return self.file_cached(uc, dfd, rel, name, &key);
        }
        let store = self.repo.store();
        // Hardlink fast path: through the objects directory's descriptor where the store
        // gives one (no walk of the repository's absolute path per call), else by path.
        if self.hardlinkable && !self.opts.force_copy {
            let linked = if let Some((odir, oname)) = store.local_at(&key) {
                let abs = || {
                    store
                        .local_root()
                        .map(|r| r.join("objects").join(&oname))
                        .unwrap_or_else(|| PathBuf::from(&oname))
                };
                self.link_object(odir, Path::new(&oname), &abs, dfd, rel, name, &key)?
            } else if let Some(src) = store.local_path(&key) {
                self.link_object(rustix::fs::CWD, &src, &|| src.clone(), dfd, rel, name, &key)?
            } else {
                false
            };
            if linked {
                return Ok(());
            }
        }
        self.copy(dfd, rel, name, &key)
    }

    /// `_checkout_overlayfs_whiteout_at`: a `0:0` character device in place of the marker
    /// file, with its mode, owner and xattrs (a symlink marker is checked out as is).
    fn overlayfs_whiteout(
        &self,
        dfd: &OwnedFd,
        rel: &str,
        target: &str,
        key: &ObjectKey,
    ) -> Result<()> {
        let what = join(rel, target);
        if target.is_empty() {
            return Err(Error::corrupted(format!(
                "Invalid empty overlayfs whiteout '{what}'"
            )));
        }
        let store = self.repo.store().clone();
        let k = *key;
        let meta = self
            .rt
            .block_on(async move { store.get(&k).await })?
            .into_content()?
            .meta;
        if meta.is_symlink() {
            return self.copy(
                dfd,
                rel,
                &format!("{OVERLAYFS_WHITEOUT_PREFIX}{target}"),
                key,
            );
        }
        let mode = meta.mode & !S_IFMT;
        match rustix::fs::mknodat(
            dfd,
            target,
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(mode),
            0,
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) if self.opts.overwrite == OverwriteMode::AddFiles => return Ok(()),
            Err(Errno::EXIST) if self.opts.overwrite != OverwriteMode::None => {
                remove_all_at(dfd, target)?;
                rustix::fs::mknodat(
                    dfd,
                    target,
                    rustix::fs::FileType::CharacterDevice,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .ctx(|| format!("Creating whiteout char device {what}"))?;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("Creating whiteout char device {what}"),
                    e.into(),
                ));
            }
        }
        if self.opts.mode == CheckoutMode::None {
            for (k, v) in &meta.xattrs {
                let p = self.root_path.join(&what);
                let n = std::ffi::CString::new(k.clone())
                    .map_err(|_| Error::corrupted("xattr name with NUL"))?;
                rustix::fs::lsetxattr(&p, n.as_c_str(), v, rustix::fs::XattrFlags::empty())
                    .ctx(|| format!("Setting xattrs for whiteout char device {what}"))?;
            }
            rustix::fs::chownat(
                dfd,
                target,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .ctx(|| format!("fchownat {what}"))?;
            rustix::fs::chmodat(dfd, target, Mode::from_raw_mode(mode), AtFlags::empty())
                .ctx(|| format!("fchmodat {what} to 0{mode:o}"))?;
        }
        Ok(())
    }

    /// The mode the object was committed with (bare-user keeps it in `user.ostreemeta`).
    /// Hardlink object `key` (`src` relative to `src_dir`; `abs` its absolute path, for the
    /// metadata xattr) to dfd/name, unless ostree would copy it: zero-sized files (EMLINK),
    /// bare-user symlinks (stored as regular files) and, in user mode, files the owner cannot
    /// read. `false`: copy it instead.
    #[allow(clippy::too_many_arguments)]
    fn link_object(
        &self,
        src_dir: BorrowedFd<'_>,
        src: &Path,
        abs: &dyn Fn() -> PathBuf,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        key: &ObjectKey,
    ) -> Result<bool> {
        let st = match rustix::fs::statat(src_dir, src, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Not stored: the copy path names the missing object.
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(Error::io(format!("stat {}", abs().display()), e.into())),
        };
        let mode = self.committed_mode(abs, &st)?;
        let is_symlink = mode & S_IFMT == crate::objects::S_IFLNK;
        let bare_user_symlink = self.usermode_repo && is_symlink;
        let zero = !is_symlink && st.st_size == 0;
        let unreadable = self.opts.mode == CheckoutMode::User && !is_symlink && mode & 0o400 == 0;
        Ok(!(bare_user_symlink || zero || unreadable)
            && self.link(src_dir, src, dfd, rel, name, key, false)? == Link::Done)
    }

    fn committed_mode(&self, abs: &dyn Fn() -> PathBuf, st: &rustix::fs::Stat) -> Result<u32> {
        if self.repo.mode() != RepoMode::BareUser {
            return Ok(st.st_mode);
        }
        let src = abs();
        let mut buf = [0u8; 4096];
        match rustix::fs::lgetxattr(&src, "user.ostreemeta", &mut buf) {
            Ok(n) => Ok(crate::objects::parse_bare_user_meta(&buf[..n])?.2),
            Err(e) => Err(Error::io(
                format!("reading user.ostreemeta of {}", src.display()),
                e.into(),
            )),
        }
    }

    /// Whether dfd/name already is object `csum` at `src`: the same inode, or (the last
    /// resort of ostree's checkout_file_hardlink) the same type, size and owner and a content
    /// checksum equal to the object's.
    fn identical(
        &self,
        src_dir: BorrowedFd<'_>,
        src: &Path,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        csum: &Checksum,
    ) -> Result<bool> {
        let a = rustix::fs::statat(src_dir, src, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {}", src.display()))?;
        let b = rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {}", join(rel, name)))?;
        if a.st_dev == b.st_dev && a.st_ino == b.st_ino {
            return Ok(true);
        }
        let is_reg = b.st_mode & S_IFMT == crate::objects::S_IFREG;
        // Only regular files get a checksum comparison (symlinks are never hardlinked).
        if !is_reg
            || a.st_mode != b.st_mode
            || a.st_size != b.st_size
            || a.st_uid != b.st_uid
            || a.st_gid != b.st_gid
        {
            return Ok(false);
        }
        self.checksum_matches(dfd, rel, name, &b, csum)
    }

    /// Whether the regular file dfd/name (stat `st`) checksums to `csum` as a content object
    /// (`ostree_checksum_file_at` with the flags checkout uses for the repository's mode).
    fn checksum_matches(
        &self,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        st: &rustix::fs::Stat,
        csum: &Checksum,
    ) -> Result<bool> {
        let b = st;
        if b.st_mode & S_IFMT != crate::objects::S_IFREG {
            return Ok(false);
        }
        let mode = self.repo.mode();
        let buo = mode == RepoMode::BareUserOnly;
        let path = self.root_path.join(join(rel, name));
        let mut meta = crate::objects::FileMeta {
            uid: b.st_uid,
            gid: b.st_gid,
            mode: b.st_mode,
            symlink_target: None,
            xattrs: if self.repo.disable_xattrs() || buo {
                Vec::new()
            } else {
                super::commit::read_xattrs(&path)?
            },
        };
        if buo {
            meta.uid = 0;
            meta.gid = 0;
            meta.mode &= crate::objects::S_IFREG | 0o755;
        }
        let mut h = crate::checksum::Hasher::new();
        h.update(&meta.file_header());
        let fd = rustix::fs::openat(
            dfd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", join(rel, name)))?;
        let mut f = std::fs::File::from(fd);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)
                .map_err(|e| Error::io(format!("read {}", join(rel, name)), e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finish() == *csum)
    }

    /// Try to hardlink `src` (relative to `src_dir`; object `key`) to dfd/name.
    #[allow(clippy::too_many_arguments)]
    fn link(
        &self,
        src_dir: BorrowedFd<'_>,
        src: &Path,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        key: &ObjectKey,
        allow_noent: bool,
    ) -> Result<Link> {
        match rustix::fs::linkat(src_dir, src, dfd, name, AtFlags::empty()) {
            Ok(()) => Ok(Link::Done),
            Err(Errno::NOENT) if allow_noent => Ok(Link::Missing),
            Err(Errno::EXIST) => match self.opts.overwrite {
                OverwriteMode::None => Err(Error::io(
                    format!("Hardlinking {} to {}", src.display(), join(rel, name)),
                    std::io::Error::from_raw_os_error(libc::EEXIST),
                )),
                OverwriteMode::AddFiles => Ok(Link::Done),
                OverwriteMode::UnionFiles | OverwriteMode::UnionIdentical
                    if self.identical(src_dir, src, dfd, rel, name, &key.checksum)? =>
                {
                    Ok(Link::Done)
                }
                OverwriteMode::UnionFiles => {
                    let tmp = format!(".ostree-tmp-{}-{}", std::process::id(), rand_suffix());
                    let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
                    rustix::fs::linkat(src_dir, src, dfd, tmp.as_str(), AtFlags::empty())
                        .ctx(|| format!("linkat {}", join(rel, name)))?;
                    if let Err(e) = rustix::fs::renameat(dfd, tmp.as_str(), dfd, name) {
                        let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
                        if e == Errno::ISDIR {
                            remove_all_at(dfd, name)?;
                            return self.link(src_dir, src, dfd, rel, name, key, false);
                        }
                        return Err(Error::io(format!("renameat {}", join(rel, name)), e.into()));
                    }
                    Ok(Link::Done)
                }
                OverwriteMode::UnionIdentical => Err(Error::io(
                    format!("Hardlinking {} to {name}", src.display()),
                    std::io::Error::from_raw_os_error(libc::EEXIST),
                )),
            },
            Err(Errno::MLINK) | Err(Errno::XDEV) | Err(Errno::PERM)
                if !self.opts.require_hardlinks =>
            {
                Ok(Link::Impossible)
            }
            Err(e) => Err(Error::io(
                format!("Hardlinking {} to {}", src.display(), join(rel, name)),
                e.into(),
            )),
        }
    }

    fn copy(&self, dfd: &OwnedFd, rel: &str, name: &str, key: &ObjectKey) -> Result<()> {
        let content = self.load(key)?;
        self.copy_content(dfd, rel, name, key, content)
    }

    /// Load a content object. An archive object stored as a local file is opened and
    /// inflated right here (a checkout reads thousands: no round trip through the store's
    /// blocking pool each); anything else goes through [`Repo::load_file`].
    fn load(&self, key: &ObjectKey) -> Result<crate::store::ContentRead> {
        if self.repo.mode() == RepoMode::Archive
            && let Some(p) = self.repo.store().local_path(key)
        {
            match std::fs::File::open(&p) {
                Ok(f) => {
                    return crate::content::open_archived_file(f, INFLATE_WHOLE).map_err(
                        |e| match e {
                            Error::Corrupted(e) => Error::Corrupted(format!(
                                "Unpacking loose object {}: {e}",
                                key.checksum
                            )),
                            e => e,
                        },
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io_path("Opening content object", &p, e)),
            }
        }
        let repo = self.repo.clone();
        let csum = key.checksum;
        self.rt.block_on(async move { repo.load_file(&csum).await })
    }

    /// [`Ctx::copy`] of an already loaded object.
    fn copy_content(
        &self,
        dfd: &OwnedFd,
        rel: &str,
        name: &str,
        key: &ObjectKey,
        content: crate::store::ContentRead,
    ) -> Result<()> {
        let meta: FileMeta = content.meta;
        let what = join(rel, name);
        if meta.is_symlink() {
            let target = meta.symlink_target.as_deref().unwrap_or_default();
            match rustix::fs::symlinkat(target, dfd, name) {
                Ok(()) => {}
                Err(Errno::EXIST) => match self.opts.overwrite {
                    OverwriteMode::None => {
                        return Err(Error::io(
                            format!("symlinkat: {what}"),
                            std::io::Error::from_raw_os_error(libc::EEXIST),
                        ));
                    }
                    OverwriteMode::AddFiles => return Ok(()),
                    OverwriteMode::UnionFiles => {
                        if self.opts.process_whiteouts {
                            remove_all_at(dfd, name)?;
                        } else {
                            match rustix::fs::unlinkat(dfd, name, AtFlags::empty()) {
                                Ok(()) | Err(Errno::NOENT) => {}
                                Err(e) => {
                                    return Err(Error::io(format!("unlinkat({name})"), e.into()));
                                }
                            }
                        }
                        rustix::fs::symlinkat(target, dfd, name)
                            .ctx(|| format!("symlinkat: {what}"))?;
                    }
                    OverwriteMode::UnionIdentical => {
                        let cur = rustix::fs::readlinkat(dfd, name, Vec::new()).ok();
                        if cur.as_ref().map(|c| c.as_bytes()) == Some(target.as_bytes()) {
                            return Ok(());
                        }
                        return Err(Error::io(
                            format!("symlinkat: {what}"),
                            std::io::Error::from_raw_os_error(libc::EEXIST),
                        ));
                    }
                },
                Err(e) => return Err(Error::io(format!("symlinkat: {what}"), e.into())),
            }
            if self.opts.mode == CheckoutMode::None {
                rustix::fs::chownat(
                    dfd,
                    name,
                    Some(rustix::fs::Uid::from_raw(meta.uid)),
                    Some(rustix::fs::Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ctx(|| format!("fchownat {what}"))?;
                for (k, v) in &meta.xattrs {
                    let p = self.root_path.join(&what);
                    let n = std::ffi::CString::new(k.clone())
                        .map_err(|_| Error::corrupted("xattr name with NUL"))?;
                    rustix::fs::lsetxattr(&p, n.as_c_str(), v, rustix::fs::XattrFlags::empty())
                        .ctx(|| format!("lsetxattr {what}"))?;
                }
            }
            return Ok(());
        }
        // Regular file. Without a union mode the final name is created directly (O_EXCL: an
        // existing entry is an error, or skipped for --union-add); with --union/--union-identical
        // we write a temporary name and move it into place.
        let direct = matches!(
            self.opts.overwrite,
            OverwriteMode::None | OverwriteMode::AddFiles
        );
        let tmp = if direct {
            name.to_string()
        } else {
            format!(".ostree-tmp-{}-{}", std::process::id(), rand_suffix())
        };
        let fd: OwnedFd = match rustix::fs::openat(
            dfd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(Errno::EXIST) if direct && self.opts.overwrite == OverwriteMode::AddFiles => {
                return Ok(());
            }
            Err(Errno::EXIST) if direct => {
                return Err(Error::io(
                    format!("Copy checkout of {} to {name}", key.checksum),
                    std::io::Error::from_raw_os_error(libc::EEXIST),
                ));
            }
            Err(e) => return Err(Error::io(format!("creating {what}"), e.into())),
        };
        let res = (|| -> Result<()> {
            let mut f = std::fs::File::from(fd);
            let n = write_body(content.body, &mut f, content.size)
                .map_err(|e| Error::io(format!("writing {what}"), e))?;
            if n != content.size {
                return Err(Error::corrupted(format!(
                    "object {key} has {n} bytes, expected {}",
                    content.size
                )));
            }
            let mut mode = meta.mode & 0o7777;
            if self.opts.mode == CheckoutMode::None {
                rustix::fs::fchown(
                    &f,
                    Some(rustix::fs::Uid::from_raw(meta.uid)),
                    Some(rustix::fs::Gid::from_raw(meta.gid)),
                )
                .ctx(|| format!("fchown {what}"))?;
                set_xattrs_fd(&f, &meta.xattrs, &what)?;
            } else {
                mode &= !0o6000;
                if mode & 0o400 == 0 {
                    mode |= 0o400;
                }
            }
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).ctx(|| format!("fchmod {what}"))?;
            if self.opts.fsync {
                f.sync_all()
                    .map_err(|e| Error::io(format!("fsync {what}"), e))?;
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        if direct {
            return Ok(());
        }
        let placed = match self.opts.overwrite {
            OverwriteMode::UnionFiles => match rustix::fs::renameat(dfd, tmp.as_str(), dfd, name) {
                Err(Errno::ISDIR) => {
                    remove_all_at(dfd, name)?;
                    rustix::fs::renameat(dfd, tmp.as_str(), dfd, name)
                }
                r => r,
            },
            _ => rustix::fs::renameat_with(
                dfd,
                tmp.as_str(),
                dfd,
                name,
                rustix::fs::RenameFlags::NOREPLACE,
            ),
        };
        match placed {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
                match self.opts.overwrite {
                    OverwriteMode::AddFiles => Ok(()),
                    OverwriteMode::UnionIdentical => {
                        // Keep what exists if it checksums to the object, else EEXIST.
                        let st = rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW)
                            .ctx(|| format!("stat {what}"))?;
                        if self.checksum_matches(dfd, rel, name, &st, &key.checksum)? {
                            Ok(())
                        } else {
                            Err(Error::io(
                                format!("Copy checkout of {} to {name}", key.checksum),
                                std::io::Error::from_raw_os_error(libc::EEXIST),
                            ))
                        }
                    }
                    _ => Err(Error::io(
                        format!("Copy checkout of {} to {name}: File exists", key.checksum),
                        std::io::Error::from_raw_os_error(libc::EEXIST),
                    )),
                }
            }
            Err(e) => {
                let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
                Err(Error::io(format!("placing {what}"), e.into()))
            }
        }
    }
}

/// Copy with a buffer of up to 256 KiB (std's copy uses 8 KiB, which means many small writes
/// when the source is an inflating reader), sized to the `expected` length: a zeroed 256 KiB
/// buffer per small file (an /etc of a thousand files) cost more than the copies.
/// Write the content of a new cache entry (or of a checkout file about to become one) into
/// `fd` and give it the entry's mode: the object's permission bits without setuid/setgid.
fn write_cache_entry(
    fd: OwnedFd,
    content: crate::store::ContentRead,
    key: &ObjectKey,
) -> Result<()> {
    let csum = key.checksum;
    let mode = content.meta.mode & 0o7777 & !0o6000;
    let size = content.size;
    let mut f = std::fs::File::from(fd);
    let n = write_body(content.body, &mut f, size)
        .map_err(|e| Error::io(format!("Unpacking loose object {csum}"), e))?;
    if n != size {
        return Err(Error::corrupted(format!(
            "object {key} has {n} bytes, expected {size}"
        )));
    }
    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))
        .ctx(|| format!("Unpacking loose object {csum}: fchmod"))
}

/// Archive objects up to this size (compressed) are read and inflated in one piece.
const INFLATE_WHOLE: u64 = 1 << 20;

/// Write a content body to `w`: in one call when it is in memory, else through
/// [`copy_large`]. Returns the number of bytes written.
fn write_body(
    body: crate::store::ContentBody,
    w: &mut std::fs::File,
    expected: u64,
) -> std::io::Result<u64> {
    use std::io::Write;
    match body {
        crate::store::ContentBody::Bytes(b) => {
            w.write_all(&b)?;
            Ok(b.len() as u64)
        }
        body => copy_large(&mut body.into_reader(), w, expected),
    }
}

fn copy_large(
    r: &mut dyn std::io::Read,
    w: &mut std::fs::File,
    expected: u64,
) -> std::io::Result<u64> {
    use std::io::Write;
    let cap = expected.clamp(4096, 256 * 1024) as usize;
    let mut buf = vec![0u8; cap];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Remove `name` under `dfd` recursively (never following symlinks).
fn remove_all_at(dfd: &OwnedFd, name: &str) -> Result<()> {
    match rustix::fs::unlinkat(dfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(Error::io(format!("unlinkat {name}"), e.into())),
    }
    let sub: OwnedFd = rustix::fs::openat(
        dfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening {name}"))?;
    let mut names = Vec::new();
    let dir = rustix::fs::Dir::read_from(&sub).ctx(|| format!("reading {name}"))?;
    for ent in dir {
        let ent = ent.ctx(|| format!("reading {name}"))?;
        let n = ent.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    for n in names {
        remove_all_at(&sub, &n)?;
    }
    rustix::fs::unlinkat(dfd, name, AtFlags::REMOVEDIR).ctx(|| format!("rmdir {name}"))
}
