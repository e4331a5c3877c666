//! The summary cache of pulls: `tmp/cache/summaries/REMOTE` (and `REMOTE.sig`) in the
//! repository, or `DIR/summaries/` with `--cache-dir=DIR`, each file with its HTTP ETag in
//! the `user.etag` xattr as ostree keeps it.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::repo::Repo;
use crate::{Error, Result};

/// Where summaries are cached.
#[derive(Clone, Debug)]
pub struct SummaryCache {
    repo: Repo,
    dir: Option<PathBuf>,
}

fn rel(name: &str, suffix: &str) -> String {
    format!("tmp/cache/summaries/{name}{suffix}")
}

fn get_etag(p: &Path) -> Option<String> {
    let mut buf = vec![0u8; 512];
    let n = rustix::fs::getxattr(p, "user.etag", &mut buf).ok()?;
    buf.truncate(n);
    // ostree ignores ETags with embedded NULs.
    if buf.contains(&0) || buf.is_empty() {
        return None;
    }
    String::from_utf8(buf).ok()
}

fn set_etag(p: &Path, etag: Option<&str>) {
    let _ = match etag {
        Some(e) => rustix::fs::setxattr(
            p,
            "user.etag",
            e.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        ),
        None => rustix::fs::removexattr(p, "user.etag"),
    };
}

impl SummaryCache {
    /// The cache of `repo`, or of `--cache-dir` when given.
    pub fn new(repo: &Repo, dir: Option<PathBuf>) -> Self {
        SummaryCache {
            repo: repo.clone(),
            dir,
        }
    }

    fn path(&self, name: &str, suffix: &str) -> Option<PathBuf> {
        match &self.dir {
            Some(d) => Some(d.join("summaries").join(format!("{name}{suffix}"))),
            None => self
                .repo
                .store()
                .local_root()
                .map(|r| r.join(rel(name, suffix))),
        }
    }

    /// The cached file, if any.
    pub async fn read(&self, name: &str, suffix: &str) -> Result<Option<Bytes>> {
        match &self.dir {
            Some(_) => {
                let p = self.path(name, suffix).expect("a cache dir gives paths");
                match std::fs::read(&p) {
                    Ok(b) => Ok(Some(Bytes::from(b))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io_path("Reading", p, e)),
                }
            }
            None => self.repo.store().read_file(&rel(name, suffix)).await,
        }
    }

    /// Replace the cached file and record its ETag (failures to cache are not errors).
    pub async fn write(&self, name: &str, suffix: &str, data: Bytes, etag: Option<&str>) {
        let ok = match &self.dir {
            Some(_) => {
                let p = self.path(name, suffix).expect("a cache dir gives paths");
                let tmp = p.with_extension("tmp-rs");
                p.parent()
                    .map(std::fs::create_dir_all)
                    .transpose()
                    .and_then(|_| std::fs::write(&tmp, &data))
                    .and_then(|_| std::fs::rename(&tmp, &p))
                    .is_ok()
            }
            None => self
                .repo
                .store()
                .write_file(&rel(name, suffix), data)
                .await
                .is_ok(),
        };
        if ok && let Some(p) = self.path(name, suffix) {
            set_etag(&p, etag);
        }
    }

    /// Remove a cached file.
    pub async fn delete(&self, name: &str, suffix: &str) {
        match &self.dir {
            Some(_) => {
                if let Some(p) = self.path(name, suffix) {
                    let _ = std::fs::remove_file(p);
                }
            }
            None => {
                let _ = self.repo.store().delete_file(&rel(name, suffix)).await;
            }
        }
    }

    /// The ETag recorded for a cached file.
    pub fn etag(&self, name: &str, suffix: &str) -> Option<String> {
        get_etag(&self.path(name, suffix)?)
    }
}
