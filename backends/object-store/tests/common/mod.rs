//! Shared helpers of this crate's integration tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ostree_backend_object_store as _;
use ostree_core::registry::Registry;
use ostree_core::store::{ObjectStore, OpenOptions, RepoMode};
use url::Url;

/// Options that create an archive repository (or open the existing one).
pub fn create() -> OpenOptions {
    OpenOptions {
        create: Some(RepoMode::Archive),
        ..Default::default()
    }
}

/// Open a URL through the global registry, creating the repository.
pub async fn open(url: &Url) -> Arc<dyn ObjectStore> {
    Registry::global()
        .open_store(url, create())
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

/// The S3 URL from `OSTREE_TEST_S3_URL` with a fresh, unique path component appended (so
/// each test works in an empty prefix), or `None` (after printing why) to skip.
pub fn fresh_s3_url(tag: &str) -> Option<Url> {
    let base = ostree_core::conformance::skip_unless_env("OSTREE_TEST_S3_URL", "s3")?;
    let mut url = Url::parse(&base).unwrap_or_else(|e| panic!("OSTREE_TEST_S3_URL={base}: {e}"));
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let unique = format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    url.path_segments_mut()
        .unwrap_or_else(|_| panic!("OSTREE_TEST_S3_URL={base} cannot take a path"))
        .pop_if_empty()
        .push(&unique);
    Some(url)
}

/// The plain-HTTP address of an S3 URL's repository (path-style: endpoint/bucket/prefix).
pub fn http_url(s3: &Url) -> Option<String> {
    let endpoint = s3
        .query_pairs()
        .find(|(k, _)| k == "endpoint")
        .map(|(_, v)| v.into_owned())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())?;
    let bucket = s3.host_str()?;
    Some(format!(
        "{}/{bucket}{}",
        endpoint.trim_end_matches('/'),
        s3.path()
    ))
}
