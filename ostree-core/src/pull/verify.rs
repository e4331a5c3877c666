//! Signed summaries: fetch `summary.sig` and `summary`, verify them against the remote's
//! policy before anything is cached or used, and keep the cache consistent
//! (`tmp/cache/summaries/REMOTE` and `REMOTE.sig` are written only as a verified pair).
//!
//! The order is ostree's: the signature first; if it equals the cached one, the cached
//! summary is used without downloading it again; a cached summary that fails verification
//! (a stale cache, or a cache written by a client that cached before verifying) is replaced
//! by a fresh download verified again. `OSTREE_REPO_TEST_ERROR=invalid-cache` stops at that
//! point, for ostree's tests.

use bytes::Bytes;

use super::cache::SummaryCache;
use super::source::{MAX_METADATA_SIZE, RemoteSource};
use crate::repo::Repo;
use crate::sign::policy::PullVerification;
use crate::{Error, Result};

fn test_error_invalid_cache() -> bool {
    crate::hostenv::test_error("invalid-cache")
}

async fn fetch_plain(src: &RemoteSource, path: &str) -> Result<Option<(Bytes, Option<String>)>> {
    Ok(src
        .get(src.meta_mirrors(), path, MAX_METADATA_SIZE, None)
        .await?
        .map(|(_, b, etag)| (b, etag)))
}

/// The remote's summary, verified by `v` (which requires summary signatures).
pub(super) async fn fetch_verified_summary(
    cache: &SummaryCache,
    src: &RemoteSource,
    cache_name: Option<&str>,
    v: &PullVerification,
) -> Result<Option<Bytes>> {
    let sig = fetch_plain(src, "summary.sig").await?;
    let sig_bytes = sig.as_ref().map(|(b, _)| b.clone());
    let mut summary: Option<(Bytes, Option<String>)> = None;
    let mut from_cache = false;
    if let (Some(s), Some(name)) = (&sig_bytes, cache_name) {
        let cached_sig = cache.read(name, ".sig").await?;
        if cached_sig.as_ref() == Some(s) {
            match cache.read(name, "").await? {
                Some(b) => {
                    summary = Some((b, None));
                    from_cache = true;
                }
                None => {
                    // A cached signature without its summary is useless.
                    cache.delete(name, ".sig").await;
                }
            }
        }
    }
    if summary.is_none() {
        summary = fetch_plain(src, "summary").await?;
    }
    let Some((mut summary_bytes, mut etag)) = summary else {
        if v.gpg_summary {
            return Err(Error::not_found(
                "GPG verification enabled, but no summary found (use gpg-verify-summary=false in remote config to disable)",
            ));
        }
        return Ok(None);
    };
    if let Err(e) = v.verify_summary(&summary_bytes, sig_bytes.as_deref()) {
        if !from_cache {
            return Err(e);
        }
        if test_error_invalid_cache() {
            return Err(Error::Other(format!(
                "Remote {} cached summary invalid and OSTREE_REPO_TEST_ERROR_INVALID_CACHE specified",
                v.remote
            )));
        }
        let (b, t) = fetch_plain(src, "summary").await?.ok_or_else(|| {
            Error::not_found("Remote summary vanished while re-fetching an invalid cache")
        })?;
        v.verify_summary(&b, sig_bytes.as_deref())?;
        summary_bytes = b;
        etag = t;
        from_cache = false;
    }
    if !from_cache && let (Some(name), Some((s, sig_etag))) = (cache_name, &sig) {
        cache
            .write(name, "", summary_bytes.clone(), etag.as_deref())
            .await;
        cache
            .write(name, ".sig", s.clone(), sig_etag.as_deref())
            .await;
    }
    Ok(Some(summary_bytes))
}

/// The summary of a local source repository (`pull-local`, `file://` remotes), verified as a
/// pull verifies a remote's.
pub(super) async fn verify_local_summary(src: &Repo, v: &PullVerification) -> Result<()> {
    let summary = src.store().read_file("summary").await?;
    let sig = src.store().read_file("summary.sig").await?;
    match summary {
        Some(s) => v.verify_summary(&s, sig.as_deref()),
        None if v.gpg_summary => Err(Error::not_found(
            "GPG verification enabled, but no summary found (use gpg-verify-summary=false in remote config to disable)",
        )),
        None => Err(Error::BadSignature(
            "Signatures verification enabled, but no summary found (use sign-verify-summary=false in remote config to disable)".into(),
        )),
    }
}
