#![doc = include_str!("../README.md")]

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use ostree_core::fetcher::{FetchRequest, FetchResponse, FetchStatus, Fetcher, FetcherConfig};
use ostree_core::registry::{FetcherPlugin, Registry};
use ostree_core::{Error, Result};
use url::Url;

/// The URL scheme this fetcher serves.
pub const SCHEME: &str = "file";

/// Chunk size of streamed bodies.
const CHUNK: usize = 256 * 1024;

/// Fetches paths below a local directory.
#[derive(Debug, Clone)]
pub struct FileFetcher {
    base: Url,
    root: PathBuf,
}

impl FileFetcher {
    /// A fetcher for `file://` base URL `base`.
    pub fn new(base: &Url) -> Result<Self> {
        let root = base
            .to_file_path()
            .map_err(|_| Error::invalid(format!("Invalid file URL '{base}'")))?;
        Ok(FileFetcher {
            base: base.clone(),
            root,
        })
    }
}

fn etag_of(md: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("\"{:x}-{:x}-{:x}\"", md.ino(), md.size(), md.mtime())
}

#[async_trait]
impl Fetcher for FileFetcher {
    fn base_url(&self) -> &Url {
        &self.base
    }

    async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse> {
        if req.path.starts_with('/') || req.path.split('/').any(|c| c == "..") {
            return Err(Error::invalid(format!("Invalid path '{}'", req.path)));
        }
        let path = if req.path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&req.path)
        };
        let p2 = path.clone();
        let opened = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut f = std::fs::File::open(&p2)?;
            let md = f.metadata()?;
            if md.is_dir() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "is a directory",
                ));
            }
            if let Some(start) = req.range_start {
                f.seek(SeekFrom::Start(start.min(md.len())))?;
            }
            Ok((f, md))
        })
        .await
        .map_err(|e| Error::Other(format!("file fetcher: {e}")))?;
        let (file, md) = match opened {
            Ok(v) => v,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found(format!("{}: not found", path.display())));
            }
            Err(e) => return Err(Error::io_path("Opening", &path, e)),
        };
        let etag = etag_of(&md);
        if req.if_none_match.as_deref() == Some(etag.as_str()) {
            return Ok(FetchResponse::not_modified(Some(etag)));
        }
        let start = req.range_start.map(|s| s.min(md.len()));
        let remaining = md.len() - start.unwrap_or(0);
        let shown = path.clone();
        let body = futures::stream::unfold(Some(file), move |state| {
            let shown = shown.clone();
            async move {
                let mut f = state?;
                let res = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; CHUNK];
                    let n = f.read(&mut buf)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>((f, buf))
                })
                .await;
                match res {
                    Ok(Ok((_, buf))) if buf.is_empty() => None,
                    Ok(Ok((f, buf))) => Some((Ok(Bytes::from(buf)), Some(f))),
                    Ok(Err(e)) => Some((Err(Error::io_path("Reading", &shown, e)), None)),
                    Err(e) => Some((Err(Error::Other(format!("file fetcher: {e}"))), None)),
                }
            }
        })
        .boxed();
        Ok(FetchResponse {
            status: FetchStatus::Ok,
            etag: Some(etag),
            last_modified: None,
            range_start: start,
            content_length: Some(remaining),
            body,
            local_path: Some(path),
        })
    }

    fn is_local(&self) -> bool {
        true
    }
}

fn build(url: &Url, _cfg: &FetcherConfig) -> Result<Arc<dyn Fetcher>> {
    Ok(Arc::new(FileFetcher::new(url)?))
}

const DESCRIPTION: &str = "local files below a file:// base URL";

static PLUGIN: FetcherPlugin = FetcherPlugin {
    scheme: SCHEME,
    description: DESCRIPTION,
    build,
};

ostree_core::inventory::submit! {
    FetcherPlugin {
        scheme: SCHEME,
        description: DESCRIPTION,
        build,
    }
}

/// Register the `file` fetcher in a registry built by hand (the inventory record already puts
/// it in [`Registry::global`]).
pub fn register(registry: &mut Registry) {
    registry.register_fetcher(&PLUGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_range_etag_notfound() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("objects/ab")).unwrap();
        std::fs::write(d.path().join("objects/ab/cd.filez"), b"0123456789").unwrap();
        let base = Url::from_directory_path(d.path()).unwrap();
        let f = Registry::global()
            .build_fetcher(&base, &FetcherConfig::default())
            .unwrap();
        assert!(f.is_local());
        let r = f
            .fetch(FetchRequest::new("objects/ab/cd.filez"))
            .await
            .unwrap();
        let etag = r.etag.clone();
        assert_eq!(&r.collect(100, None, "t").await.unwrap()[..], b"0123456789");
        let r = f
            .fetch(FetchRequest {
                path: "objects/ab/cd.filez".into(),
                range_start: Some(4),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.range_start, Some(4));
        assert_eq!(&r.collect(100, None, "t").await.unwrap()[..], b"456789");
        let r = f
            .fetch(FetchRequest {
                path: "objects/ab/cd.filez".into(),
                if_none_match: etag,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(r.status, FetchStatus::NotModified);
        let e = f.fetch(FetchRequest::new("summary")).await.unwrap_err();
        assert!(e.is_not_found());
        assert!(f.fetch(FetchRequest::new("../x")).await.is_err());
    }

    #[test]
    fn registered() {
        assert!(Registry::global().fetcher_schemes().contains(&"file"));
    }
}
