//! The uncompressed-objects cache of a local `archive` repository, as ostree 2022.7 keeps it
//! (`ostree-repo-checkout.c`): `<repo>/uncompressed-objects-cache/XX/<rest>.file`, one regular
//! file per content object, holding the object's inflated bytes with its mode minus
//! setuid/setgid, owned by whoever checked it out, without xattrs. A user-mode checkout
//! (`checkout -U`) from an archive repository hardlinks its files from there, inflating and
//! adding the missing ones first, so a second checkout of the same content only makes links.
//!
//! Only regular, non-empty, owner-readable files are cached (symlinks, empty and unreadable
//! files are always copied). Entries are never rewritten: a checkout file linked to an entry
//! shares its inode, so editing the checkout in place edits the cache (ostree has the same
//! property; `--disable-cache` or `core.enable-uncompressed-cache=false` avoid it).
//!
//! The cache is a local-filesystem artefact of the fs backend's layout (found through
//! [`ObjectStore::local_root`](crate::store::ObjectStore::local_root)); it holds no object of
//! the repository, so fsck, pull, summary and the object listing never see it. `prune`
//! removes the entries of the content objects it deletes (ostree leaves them; they could never
//! be used again), and [`UncompressedCache::gc`] is `ostree_repo_checkout_gc` over the whole
//! cache (entries no checkout links to).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::Repo;
use crate::error::IoContext;
use crate::store::RepoMode;
use crate::{Checksum, Error, Result};

/// The cache directory of a local archive repository (see the module docs).
#[derive(Debug, Clone)]
pub struct UncompressedCache {
    dir: PathBuf,
}

/// Mode of the directories ostree creates (`DEFAULT_DIRECTORY_MODE`, minus the umask).
const DIR_MODE: u32 = 0o775;

impl UncompressedCache {
    /// Name of the cache directory in the repository.
    pub const DIR: &'static str = "uncompressed-objects-cache";

    /// The cache of `repo`, when it is a local archive repository (whether or not the
    /// directory exists yet).
    pub fn of(repo: &Repo) -> Option<UncompressedCache> {
        if repo.mode() != RepoMode::Archive {
            return None;
        }
        let root = repo.store().local_root()?;
        Some(UncompressedCache {
            dir: root.join(Self::DIR),
        })
    }

    /// Whether checkouts may use the cache of `repo`: ostree reads
    /// `core.enable-uncompressed-cache` (default true) only for a writable repository
    /// (`objects/` writable by us) and disables the cache otherwise.
    pub fn enabled(repo: &Repo) -> Result<bool> {
        let Some(root) = repo.store().local_root() else {
            return Ok(false);
        };
        if rustix::fs::access(root.join("objects"), Access::WRITE_OK).is_err() {
            return Ok(false);
        }
        repo.config().core_bool("enable-uncompressed-cache", true)
    }

    /// The directory (`<repo>/uncompressed-objects-cache`).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// An object's entry, relative to the cache directory (`ab/cdef….file`, the loose path
    /// of the object in a bare repository).
    pub fn entry_name(csum: &Checksum) -> String {
        let hex = csum.to_hex();
        format!("{}/{}.file", &hex[..2], &hex[2..])
    }

    /// Open the directory if it exists.
    pub fn open(&self) -> Result<Option<OwnedFd>> {
        match rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(
                format!("opendir({})", Self::DIR),
                std::io::Error::from(e),
            )),
        }
    }

    /// Open the directory, creating it first if needed.
    pub fn create(&self) -> Result<OwnedFd> {
        match rustix::fs::mkdir(&self.dir, Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(Error::io(
                    format!("mkdir({})", self.dir.display()),
                    std::io::Error::from(e),
                ));
            }
        }
        self.open()?.ok_or_else(|| {
            Error::not_found(format!("{} vanished while opening it", self.dir.display()))
        })
    }

    /// Create the fanout directory of `csum`'s entry under the open cache directory.
    pub(crate) fn ensure_fanout(dir: &OwnedFd, csum: &Checksum) -> Result<()> {
        let hex = csum.to_hex();
        match rustix::fs::mkdirat(dir, &hex[..2], Mode::from_raw_mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(Error::io(
                format!("mkdir {}/{}", Self::DIR, &hex[..2]),
                std::io::Error::from(e),
            )),
        }
    }

    /// Remove the entries of these objects (missing ones are fine); returns how many went.
    pub fn remove_entries<'a>(&self, csums: impl IntoIterator<Item = &'a Checksum>) -> Result<u64> {
        let Some(dir) = self.open()? else {
            return Ok(0);
        };
        let mut n = 0;
        for c in csums {
            let name = Self::entry_name(c);
            match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                Ok(()) => n += 1,
                Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("unlinking {}/{name}", Self::DIR),
                        std::io::Error::from(e),
                    ));
                }
            }
        }
        Ok(n)
    }

    /// Every entry as `(checksum, stat)`; names that are not entries are skipped.
    pub fn entries(&self) -> Result<Vec<(Checksum, rustix::fs::Stat)>> {
        let mut out = Vec::new();
        let Some(dir) = self.open()? else {
            return Ok(out);
        };
        for fan in read_names(&dir, Self::DIR)? {
            if fan.len() != 2 {
                continue;
            }
            let sub = rustix::fs::openat(
                &dir,
                fan.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("opening {}/{fan}", Self::DIR))?;
            for name in read_names(&sub, &fan)? {
                let Some(rest) = name.strip_suffix(".file") else {
                    continue;
                };
                let Ok(csum) = Checksum::from_hex(&format!("{fan}{rest}")) else {
                    continue;
                };
                let st = rustix::fs::statat(&sub, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .ctx(|| format!("stat {}/{fan}/{name}", Self::DIR))?;
                out.push((csum, st));
            }
        }
        Ok(out)
    }

    /// `ostree_repo_checkout_gc` over the whole cache: remove the entries no checkout links
    /// to (link count 1). Returns how many went.
    pub fn gc(&self) -> Result<u64> {
        let stale: Vec<Checksum> = self
            .entries()?
            .into_iter()
            .filter(|(_, st)| st.st_nlink == 1)
            .map(|(c, _)| c)
            .collect();
        self.remove_entries(&stale)
    }
}

fn read_names(dir: &impl AsFd, what: &str) -> Result<Vec<String>> {
    let d = rustix::fs::Dir::read_from(dir.as_fd()).ctx(|| format!("reading {what}"))?;
    let mut out = Vec::new();
    for ent in d {
        let ent = ent.ctx(|| format!("reading {what}"))?;
        let n = ent.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            out.push(n);
        }
    }
    Ok(out)
}
