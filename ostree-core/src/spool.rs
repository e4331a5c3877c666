//! Temporary files for object content too large to hold in memory (a tar entry being
//! imported, a large file object being pulled): created in the repository's `tmp/` when it is
//! local (so the store can copy it within one filesystem), removed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::repo::Repo;

/// A temporary file, removed on drop.
#[derive(Debug)]
pub(crate) struct Spool(PathBuf);

impl Spool {
    /// Create a new empty spool file in `dir`, named after `prefix`, this process and a
    /// counter; returns it with the file open for writing.
    pub(crate) fn create(dir: &Path, prefix: &str) -> Result<(Spool, File)> {
        let path = Self::new_path(dir, prefix);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io_path("creating spool file", &path, e))?;
        Ok((Spool(path), f))
    }

    /// A new file in `dir`, open for reading and writing and already unlinked: it goes with
    /// its last handle, whatever happens to this process.
    pub(crate) fn unlinked(dir: &Path, prefix: &str) -> Result<File> {
        let path = Self::new_path(dir, prefix);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io_path("creating spool file", &path, e))?;
        std::fs::remove_file(&path)
            .map_err(|e| Error::io_path("unlinking spool file", &path, e))?;
        Ok(f)
    }

    /// `dir/.PREFIX-PID-N`, N from a process-wide counter.
    fn new_path(dir: &Path, prefix: &str) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".{prefix}-{}-{n}", std::process::id()))
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The directory for `repo`'s spool files: its `tmp/` when the store is local, else the
/// system's temporary directory.
pub(crate) fn dir_for(repo: &Repo) -> PathBuf {
    repo.store()
        .local_root()
        .map(|r| r.join("tmp"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}
