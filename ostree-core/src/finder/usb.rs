//! Copying collection–refs onto a removable volume so that [`super::mount::MountFinder`] finds
//! them elsewhere (`ostree create-usb`, 2022.7).
//!
//! The volume gets an archive repository (`.ostree/repo` unless told otherwise; archive works
//! on file systems without xattrs and compresses), filled by a mirror pull of the refs from
//! the source repository: they land as collection–refs (`refs/mirrors/ID/REF`), with their
//! whole history down to depth 0 (the commits only, not their parents). A summary is then
//! generated (the finders read it). A repository elsewhere than `.ostree/repo` or
//! `ostree/repo` gets a symlink `.ostree/repos.d/NN-generated` → `../../PATH`, unless an entry
//! of `repos.d` already is that directory.
//!
//! As in ostree, an existing entry is recognised by its own inode (`d_ino`): a symlink to the
//! repository is not, so copying into the same custom location again adds another
//! `NN-generated` link.

use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::pull::{PullOptions, PullStats};
use crate::repo::Repo;
use crate::repo::refs::{CollectionRef, validate_collection_id, validate_ref_name};
use crate::store::{OpenOptions, RepoMode};
use crate::{Checksum, Error, Result};

/// Where ostree puts the repository on a volume by default.
pub const DEFAULT_DEST_REPO: &str = ".ostree/repo";

/// `--destination-repo` outside the volume (another file system).
pub const NOT_DESCENDANT: &str = "--destination-repo must be a descendent of MOUNT-PATH";
/// `--destination-repo` is the source repository itself.
pub const SAME_AS_SOURCE: &str = "--destination-repo must not be the source repository";

/// The repository on the volume, created (or opened) and ready to receive refs.
#[derive(Debug)]
pub struct UsbDestination {
    /// The repository.
    pub repo: Repo,
    /// The volume's root, as given.
    pub mount_root: PathBuf,
    /// The repository's path relative to the root, as given.
    pub dest_path: String,
    mount_dev: u64,
    dest_id: (u64, u64),
}

fn stat_dir(p: &Path) -> Result<std::fs::Metadata> {
    let md = std::fs::metadata(p).map_err(|e| Error::io(format!("opendir({})", p.display()), e))?;
    if !md.is_dir() {
        return Err(Error::io(
            format!("opendir({})", p.display()),
            std::io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
        ));
    }
    Ok(md)
}

impl UsbDestination {
    /// Create the archive repository `dest_path` (default [`DEFAULT_DEST_REPO`]) under the
    /// volume root `mount_root` (which must exist; symlinks are followed), or open the one
    /// there. `fsync: Some(false)` is `--disable-fsync`.
    pub async fn create(
        mount_root: &Path,
        dest_path: Option<&str>,
        fsync: Option<bool>,
    ) -> Result<Self> {
        let root_md = stat_dir(mount_root)?;
        let dest_path = dest_path.unwrap_or(DEFAULT_DEST_REPO).to_string();
        let dir = mount_root.join(&dest_path);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("mkdir({})", dir.display()), e))?;
        let abs = std::path::absolute(&dir)
            .map_err(|e| Error::io(format!("realpath({})", dir.display()), e))?;
        let url = crate::registry::repo_url(
            abs.to_str()
                .ok_or_else(|| Error::invalid("Destination path is not valid UTF-8"))?,
        )?;
        let opts = OpenOptions {
            fsync,
            ..OpenOptions::default()
        };
        let repo = Repo::create(&url, RepoMode::Archive, opts)
            .await
            .map_err(|e| Error::Other(format!("Creating repo: {e}")))?;
        let md = stat_dir(&dir)?;
        Ok(UsbDestination {
            repo,
            mount_root: mount_root.to_path_buf(),
            dest_path,
            mount_dev: root_md.dev(),
            dest_id: (md.dev(), md.ino()),
        })
    }

    /// Why this destination cannot receive refs from `src`, in ostree's words (a usage
    /// error): [`NOT_DESCENDANT`] or [`SAME_AS_SOURCE`].
    pub fn problem(&self, src: &Repo) -> Option<&'static str> {
        if self.dest_id.0 != self.mount_dev {
            return Some(NOT_DESCENDANT);
        }
        let src_id = src
            .store()
            .local_root()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()));
        if src_id == Some(self.dest_id) {
            return Some(SAME_AS_SOURCE);
        }
        None
    }

    /// Copy `refs` from `src` (mirror pull, depth 0; `commit` instead of each ref's current
    /// commit), regenerate the summary, and link the repository from `.ostree/repos.d` if it
    /// is not in a well-known place.
    pub async fn copy_refs(
        &self,
        src: &Repo,
        refs: &[CollectionRef],
        commit: Option<Checksum>,
    ) -> Result<PullStats> {
        if let Some(p) = self.problem(src) {
            return Err(Error::invalid(p));
        }
        for r in refs {
            validate_collection_id(&r.collection_id)?;
            validate_ref_name(&r.ref_name)?;
        }
        let opts = PullOptions {
            refs: refs.iter().map(|r| r.ref_name.clone()).collect(),
            collection_ids: refs.iter().map(|r| Some(r.collection_id.clone())).collect(),
            override_commits: refs.iter().map(|_| commit).collect(),
            mirror: true,
            depth: 0,
            ..PullOptions::default()
        };
        let stats = crate::pull::pull_local(&self.repo, src, opts).await?;
        // The finders read refs from the summary (ostree's find_remotes needs one).
        self.repo.regenerate_summary(None).await?;
        if self.dest_path != "ostree/repo" && self.dest_path != DEFAULT_DEST_REPO {
            self.link_from_repos_d()?;
        }
        Ok(stats)
    }

    /// `.ostree/repos.d/NN-generated` → `../../DEST`, unless an entry already is the
    /// repository (same inode).
    fn link_from_repos_d(&self) -> Result<()> {
        let repos_d = self.mount_root.join(".ostree/repos.d");
        std::fs::create_dir_all(&repos_d)
            .map_err(|e| Error::io(format!("mkdir({})", repos_d.display()), e))?;
        let rd = std::fs::read_dir(&repos_d)
            .map_err(|e| Error::io(format!("opendir({})", repos_d.display()), e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(format!("readdir({})", repos_d.display()), e))?;
            if e.ino() == self.dest_id.1 {
                return Ok(());
            }
        }
        let target = format!("../../{}", self.dest_path.trim_start_matches('/'));
        for i in 0..100u32 {
            let name = format!("{i:02}-generated");
            match std::os::unix::fs::symlink(&target, repos_d.join(&name)) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::io(
                        format!("symlinkat(.ostree/repos.d/{name} → {target})"),
                        e,
                    ));
                }
            }
        }
        Err(Error::Other(
            "Could not find an unused symlink name for the repository".into(),
        ))
    }
}
