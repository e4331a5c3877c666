//! The fetching door: [`Fetcher`], the trait every transport (`http`, `https`, `file`…)
//! implements.
//!
//! A fetcher moves bytes for paths relative to one base URL (`summary`, `config`,
//! `objects/ab/cdef….filez`, `deltas/…`): one `GET`, optionally a byte range, optionally
//! conditional on an ETag. That is all. **Fetchers never verify**: the pull engine in
//! [`crate::pull`] checks every checksum before anything is stored, applies the retry policy
//! ([`Error::is_retryable`]), the no-progress watchdog and the concurrency limits. Keeping the
//! trait this small keeps every transport honest and lets core's policy apply to all of them.
//!
//! # Semantics every implementation guarantees
//!
//! * A missing path is [`Error::NotFound`] (HTTP 404/410, `ENOENT`), so the engine can tell
//!   "the server has no such object" from a failure.
//! * Transient failures (connection reset, timeouts, HTTP 5xx/408/429) are errors for which
//!   [`Error::is_retryable`] is true; permanent ones (403, TLS errors, bad URL) are not.
//! * `If-None-Match` that matches is answered with [`FetchStatus::NotModified`] and an empty
//!   body.
//! * A byte range that the source cannot honour may be answered in full: the response says
//!   which it is ([`FetchResponse::range_start`]).
//!
//! ```
//! use ostree_core::registry::Registry;
//! // No fetcher crate is linked into this doctest:
//! let err = Registry::global().fetcher_plugin("https").unwrap_err();
//! assert!(err.to_string().contains("unsupported fetcher 'https'"));
//! ```

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use url::Url;

use crate::{Error, Result};

/// One request: a path relative to the fetcher's base URL.
#[derive(Clone, Debug, Default)]
pub struct FetchRequest {
    /// Relative path (`summary`, `objects/ab/…`); never starts with `/`.
    pub path: String,
    /// Fetch from this byte offset to the end (resume of a partial download).
    pub range_start: Option<u64>,
    /// Conditional request: the ETag the caller already holds.
    pub if_none_match: Option<String>,
    /// Conditional request: the `Last-Modified` value the caller already holds.
    pub if_modified_since: Option<String>,
}

impl FetchRequest {
    /// A plain GET of `path`.
    pub fn new(path: impl Into<String>) -> Self {
        FetchRequest {
            path: path.into(),
            ..Default::default()
        }
    }
}

/// Whether the body is new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    /// The body follows.
    Ok,
    /// The caller's ETag / date still matches; no body.
    NotModified,
}

/// What a fetch returned.
pub struct FetchResponse {
    /// New content, or not modified.
    pub status: FetchStatus,
    /// The `ETag` of the content, when the source has one.
    pub etag: Option<String>,
    /// The `Last-Modified` of the content, when the source has one.
    pub last_modified: Option<String>,
    /// The offset the body starts at (`Some(n)` when a range request was honoured).
    pub range_start: Option<u64>,
    /// Announced body length, if known (a hint: the engine still counts bytes).
    pub content_length: Option<u64>,
    /// The body, streamed. Errors mid-body are reported through the stream.
    pub body: BoxStream<'static, Result<Bytes>>,
    /// The local file holding the content, when the source is a local file (the engine may
    /// link or copy it instead of reading the stream).
    pub local_path: Option<PathBuf>,
}

impl Debug for FetchResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchResponse")
            .field("status", &self.status)
            .field("etag", &self.etag)
            .field("range_start", &self.range_start)
            .field("content_length", &self.content_length)
            .field("local_path", &self.local_path)
            .finish_non_exhaustive()
    }
}

impl FetchResponse {
    /// A full response from in-memory bytes.
    pub fn from_bytes(data: Bytes) -> Self {
        let len = data.len() as u64;
        FetchResponse {
            status: FetchStatus::Ok,
            etag: None,
            last_modified: None,
            range_start: None,
            content_length: Some(len),
            body: futures::stream::once(async move { Ok(data) }).boxed(),
            local_path: None,
        }
    }

    /// A `NotModified` response.
    pub fn not_modified(etag: Option<String>) -> Self {
        FetchResponse {
            status: FetchStatus::NotModified,
            etag,
            last_modified: None,
            range_start: None,
            content_length: Some(0),
            body: futures::stream::empty().boxed(),
            local_path: None,
        }
    }

    /// Collect the body, failing with a clear error past `max` bytes (an endless or absurd
    /// body never exhausts memory) or when no byte arrives for `idle` (a stalled link).
    pub async fn collect(self, max: u64, idle: Option<Duration>, what: &str) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(
            self.content_length.unwrap_or(0).min(max).min(64 << 20) as usize,
        );
        let mut body = self.body;
        loop {
            let next = match idle {
                Some(d) => match tokio::time::timeout(d, body.next()).await {
                    Ok(n) => n,
                    Err(_) => return Err(no_progress(what, d)),
                },
                None => body.next().await,
            };
            match next {
                None => break,
                Some(chunk) => {
                    let chunk = chunk?;
                    if buf.len() as u64 + chunk.len() as u64 > max {
                        return Err(Error::Corrupted(format!(
                            "{what}: exceeds the maximum size of {max} bytes"
                        )));
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(buf.freeze())
    }
}

/// The error of a stalled transfer (the no-progress watchdog fired). Retryable.
pub fn no_progress(what: &str, d: Duration) -> Error {
    Error::io(
        what.to_string(),
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no data received for {} seconds", d.as_secs()),
        ),
    )
}

/// Moves bytes for paths below one base URL. See the module docs for the guarantees.
#[async_trait]
pub trait Fetcher: Debug + Send + Sync + 'static {
    /// The base URL every request path is relative to.
    fn base_url(&self) -> &Url;

    /// Fetch one path.
    async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse>;

    /// True when requests to this fetcher are local (no network): the engine then uses a
    /// wider concurrency and no retries.
    fn is_local(&self) -> bool {
        false
    }
}

/// A cookie for the fetcher (from the remote's cookie jar, `remote add-cookie`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// Domain the cookie applies to.
    pub domain: String,
    /// Path prefix it applies to.
    pub path: String,
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: String,
}

/// Transport settings, built by core from the remote's config and the pull options. Every
/// field has a neutral default; a fetcher ignores what its transport has no use for.
#[derive(Clone, Debug, Default)]
pub struct FetcherConfig {
    /// `tls-permissive`: accept any server certificate.
    pub tls_permissive: bool,
    /// `tls-ca-path`: trust only the CAs in this PEM file.
    pub tls_ca_path: Option<PathBuf>,
    /// `tls-client-cert-path`: client certificate (PEM).
    pub tls_client_cert_path: Option<PathBuf>,
    /// `tls-client-key-path`: client key (PEM).
    pub tls_client_key_path: Option<PathBuf>,
    /// `proxy`: proxy URL for every request.
    pub proxy: Option<String>,
    /// `http2=false` disables HTTP/2.
    pub http2: Option<bool>,
    /// Extra request headers (`--http-header`, `ostree_pull_options http-headers`).
    pub headers: Vec<(String, String)>,
    /// Cookies to send.
    pub cookies: Vec<Cookie>,
    /// The User-Agent.
    pub user_agent: Option<String>,
    /// Connection establishment timeout.
    pub connect_timeout: Option<Duration>,
    /// Most requests in flight at once (the engine also limits).
    pub max_concurrency: Option<usize>,
}

/// The future returned by a fetcher plugin's constructor.
pub type BuildResult = Result<Arc<dyn Fetcher>>;

/// Wrap a transport failure into the workspace error with the URL; `retryable` decides
/// whether core's retry policy applies.
pub fn transport_error(
    plugin: &'static str,
    url: &str,
    message: impl std::fmt::Display,
    retryable: bool,
) -> Error {
    if retryable {
        Error::io(
            url.to_string(),
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, message.to_string()),
        )
    } else {
        Error::Backend {
            plugin,
            source: format!("{url}: {message}").into(),
        }
    }
}

/// `g_uri_escape_string (s, NULL, FALSE)`: every byte but ASCII letters, digits and `-._~`
/// becomes `%XX` (upper-case hex), as ostree escapes names into URLs and remote names.
///
/// ```
/// assert_eq!(ostree_core::fetcher::uri_escape("a b/ü"), "a%20b%2F%C3%BC");
/// ```
pub fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nothing(Url);
    #[async_trait]
    impl Fetcher for Nothing {
        fn base_url(&self) -> &Url {
            &self.0
        }
        async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse> {
            Err(Error::not_found(req.path))
        }
    }

    #[test]
    fn object_safe() {
        fn _assert(_: &dyn Fetcher) {}
        let f: Arc<dyn Fetcher> = Arc::new(Nothing(Url::parse("http://x/").unwrap()));
        assert_eq!(f.base_url().as_str(), "http://x/");
    }

    #[tokio::test]
    async fn collect_caps_size() {
        let r = FetchResponse::from_bytes(Bytes::from(vec![0u8; 100]));
        assert_eq!(r.collect(100, None, "x").await.unwrap().len(), 100);
        let r = FetchResponse::from_bytes(Bytes::from(vec![0u8; 101]));
        assert!(r.collect(100, None, "x").await.is_err());
    }

    #[tokio::test]
    async fn collect_watchdog() {
        let r = FetchResponse {
            body: futures::stream::pending().boxed(),
            ..FetchResponse::from_bytes(Bytes::new())
        };
        let e = r
            .collect(10, Some(Duration::from_millis(50)), "stall")
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn transport_errors_classify() {
        assert!(transport_error("http", "u", "reset", true).is_retryable());
        assert!(!transport_error("http", "u", "403", false).is_retryable());
    }
}
