//! Building an [`ObjectStorageStore`] from a URL or from any `object_store` implementation.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use ostree_core::config::RepoConfig;
use ostree_core::store::{OpenOptions, RepoMode};
use ostree_core::{Error, Result};
use url::Url;

use crate::error;
use crate::store::ObjectStorageStore;
use crate::{MEMORY_SCHEME, S3_SCHEME};

/// Objects up to this many bytes are read (and written) in memory; larger ones go through a
/// temporary file.
pub const DEFAULT_MEMORY_LIMIT: usize = 4 * 1024 * 1024;

/// Requests run at once by listings, `has_many` and multipart uploads.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Builds an [`ObjectStorageStore`]: from a `s3://` / `memory://` URL, or over any
/// `object_store` implementation and key prefix.
///
/// ```
/// # async fn demo() -> ostree_core::Result<()> {
/// use std::sync::Arc;
/// use ostree_backend_object_store::ObjectStorageBuilder;
/// use ostree_core::store::{ObjectStore, OpenOptions, RepoMode};
///
/// // Two handles over one in-memory bucket: what one writes, the other reads.
/// let bucket = Arc::new(object_store::memory::InMemory::new());
/// let create = OpenOptions { create: Some(RepoMode::Archive), ..Default::default() };
/// let a = ObjectStorageBuilder::new(bucket.clone(), "repo")?.open(create).await?;
/// let b = ObjectStorageBuilder::new(bucket, "repo")?.open(OpenOptions::default()).await?;
/// assert_eq!(b.mode(), RepoMode::Archive);
/// # let _ = a; Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct ObjectStorageBuilder {
    inner: Arc<dyn object_store::ObjectStore>,
    prefix: Path,
    name: String,
    plugin: &'static str,
    memory_limit: usize,
    concurrency: usize,
    lease_ttl: Duration,
}

impl ObjectStorageBuilder {
    /// A repository under `prefix` (`/`-separated, may be empty) of an `object_store` store.
    pub fn new(inner: Arc<dyn object_store::ObjectStore>, prefix: &str) -> Result<Self> {
        let prefix = Path::parse(prefix).map_err(|e| {
            Error::invalid(format!("Invalid object storage prefix '{prefix}': {e}"))
        })?;
        let name = format!("{inner}/{prefix}");
        Ok(ObjectStorageBuilder {
            inner,
            prefix,
            name,
            plugin: "object-store",
            memory_limit: DEFAULT_MEMORY_LIMIT,
            concurrency: DEFAULT_CONCURRENCY,
            lease_ttl: ostree_core::lease::DEFAULT_TTL,
        })
    }

    /// From a URL: `s3://BUCKET[/PREFIX][?KEY=VALUE…]` (standard AWS environment first, then
    /// each query parameter as an `object_store` S3 config key) or `memory://[/PREFIX]` (a
    /// fresh `InMemory` store).
    pub fn from_url(url: &Url) -> Result<Self> {
        let prefix = Path::from_url_path(url.path())
            .map_err(|e| Error::invalid(format!("Invalid repository URL '{url}': {e}")))?;
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        let (inner, plugin): (Arc<dyn object_store::ObjectStore>, &'static str) = match url.scheme()
        {
            S3_SCHEME => (Arc::new(s3_from_url(url)?), "s3"),
            MEMORY_SCHEME => {
                if url.query().is_some() {
                    return Err(Error::invalid(format!(
                        "memory:// takes no parameters: '{url}'"
                    )));
                }
                (Arc::new(InMemory::new()), "memory")
            }
            other => {
                return Err(Error::invalid(format!(
                    "'{other}' URLs are not object storage (expected s3:// or memory://)"
                )));
            }
        };
        let mut lease_ttl = ostree_core::lease::DEFAULT_TTL;
        for (k, v) in url.query_pairs() {
            if k == LEASE_TTL_PARAM {
                lease_ttl = parse_seconds(&v)
                    .filter(|d| *d >= Duration::from_secs(2))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "Invalid {LEASE_TTL_PARAM} '{v}' in repository URL '{url}' (seconds, \
                             at least 2)"
                        ))
                    })?;
            }
        }
        Ok(ObjectStorageBuilder {
            inner,
            prefix,
            name: shown.to_string(),
            plugin,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            concurrency: DEFAULT_CONCURRENCY,
            lease_ttl,
        })
    }

    /// How long this handle's leases live without renewal (default
    /// [`ostree_core::lease::DEFAULT_TTL`]; at least 2 s). Leases are renewed every quarter
    /// of it; a holder that could not renew for that long stops before publishing.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(2));
        self
    }

    /// How the store names itself in messages (defaults to the URL without its query).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The plugin name in `Error::Backend` (`s3`, `memory`; `object-store` by default).
    pub fn with_plugin_name(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    /// Objects larger than this are spooled to temporary files instead of memory.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Requests run at once by listings, `has_many` and multipart uploads (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Before creating a repository: a prefix without `config` must hold nothing else (a
    /// prefix with other data is not taken over).
    async fn refuse_foreign_data(&self, config_path: &Path) -> Result<()> {
        match self.inner.head(config_path).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(error::map(
                    self.plugin,
                    format!("reading {}/config", self.name),
                    e,
                ));
            }
        }
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        match self.inner.list(prefix).next().await {
            None => Ok(()),
            // A concurrent creator wrote its config between our two requests.
            Some(Ok(_)) if self.inner.head(config_path).await.is_ok() => Ok(()),
            Some(Ok(m)) => Err(Error::invalid(format!(
                "{} holds data but no repository (found {}); refusing to create one there",
                self.name, m.location
            ))),
            Some(Err(e)) => Err(error::map(self.plugin, format!("listing {}", self.name), e)),
        }
    }

    /// Open the repository: with `opts.create`, create it first (archive mode only; an
    /// existing archive repository is opened as it is). Reads and checks `config`.
    pub async fn open(self, opts: OpenOptions) -> Result<ObjectStorageStore> {
        let config_path = child(&self.prefix, "config")?;
        if let Some(mode) = opts.create {
            if mode != RepoMode::Archive {
                return Err(Error::NotImplemented {
                    operation: format!("creating a {mode} repository"),
                    implementer: format!(
                        "{} (object storage holds archive-mode repositories only)",
                        self.name
                    ),
                });
            }
            self.refuse_foreign_data(&config_path).await?;
            let text = Bytes::from(RepoConfig::initial(RepoMode::Archive).to_text());
            let put = PutOptions::from(PutMode::Create);
            match self.inner.put_opts(&config_path, text.into(), put).await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(error::map(
                        self.plugin,
                        format!("creating {}/config", self.name),
                        e,
                    ));
                }
            }
        }
        let text = match self.inner.get(&config_path).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| error::map(self.plugin, format!("reading {}/config", self.name), e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::not_found(format!(
                    "No repository at {}: no config found",
                    self.name
                )));
            }
            Err(e) => {
                return Err(error::map(
                    self.plugin,
                    format!("reading {}/config", self.name),
                    e,
                ));
            }
        };
        let config = RepoConfig::parse(&text)?;
        let mode = config.mode()?;
        if mode != RepoMode::Archive {
            return Err(Error::NotImplemented {
                operation: format!("opening a {mode} repository"),
                implementer: format!(
                    "{} (object storage holds archive-mode repositories only)",
                    self.name
                ),
            });
        }
        Ok(ObjectStorageStore::new(
            self.inner,
            self.prefix,
            self.name,
            self.plugin,
            self.memory_limit,
            self.concurrency,
            self.lease_ttl,
        ))
    }
}

/// URL parameter of ours: seconds a lease lives without renewal.
const LEASE_TTL_PARAM: &str = "lease_ttl";

/// Non-negative, finite seconds.
fn parse_seconds(v: &str) -> Option<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// `prefix/rel` as an exact key (no percent-encoding: keys are the archive layout's paths).
pub(crate) fn child(prefix: &Path, rel: &str) -> Result<Path> {
    let full = if prefix.as_ref().is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    };
    Path::parse(&full)
        .map_err(|e| Error::invalid(format!("Invalid object storage key '{full}': {e}")))
}

fn s3_from_url(url: &Url) -> Result<object_store::aws::AmazonS3> {
    let bucket = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        Error::invalid(format!(
            "No bucket in '{url}' (expected s3://BUCKET/PREFIX)"
        ))
    })?;
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let mut http_endpoint = false;
    let mut allow_http_given = std::env::var_os("AWS_ALLOW_HTTP").is_some();
    let mut retry = object_store::RetryConfig::default();
    let mut retry_given = false;
    for (k, v) in url.query_pairs() {
        // Retry policy (ours, not object_store config keys): `max_retries=N` and
        // `retry_timeout=SECONDS` bound how long a failing server is retried.
        match k.as_ref() {
            "max_retries" => {
                retry.max_retries = v.parse().map_err(|_| {
                    Error::invalid(format!(
                        "Invalid max_retries '{v}' in repository URL '{url}'"
                    ))
                })?;
                retry_given = true;
                continue;
            }
            "retry_timeout" => {
                retry.retry_timeout = parse_seconds(&v).ok_or_else(|| {
                    Error::invalid(format!(
                        "Invalid retry_timeout '{v}' in repository URL '{url}'"
                    ))
                })?;
                retry_given = true;
                continue;
            }
            // Read by `from_url`.
            LEASE_TTL_PARAM => continue,
            _ => {}
        }
        let key = AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()).map_err(|_| {
            Error::invalid(format!(
                "Unknown S3 setting '{k}' in repository URL '{url}'"
            ))
        })?;
        match key {
            AmazonS3ConfigKey::Endpoint => http_endpoint = v.starts_with("http://"),
            AmazonS3ConfigKey::Bucket => {
                return Err(Error::invalid(format!(
                    "The bucket is the host of an s3:// URL, not a parameter: '{url}'"
                )));
            }
            AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp) => {
                allow_http_given = true
            }
            _ => {}
        }
        b = b.with_config(key, v.into_owned());
    }
    if http_endpoint && !allow_http_given {
        b = b.with_allow_http(true);
    }
    if retry_given {
        b = b.with_retry(retry);
    }
    b.build()
        .map_err(|e| error::backend("s3", format!("configuring {url}"), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let u = Url::parse("s3://bkt/a/b?endpoint=http://127.0.0.1:1&region=eu-west-1&access_key_id=x&secret_access_key=y")
            .expect("static URL");
        let b = ObjectStorageBuilder::from_url(&u).expect("valid URL");
        assert_eq!(b.prefix.as_ref(), "a/b");
        assert_eq!(b.name, "s3://bkt/a/b");
        assert_eq!(b.plugin, "s3");

        let r = Url::parse("s3://bkt/p?max_retries=1&retry_timeout=2.5").expect("static URL");
        ObjectStorageBuilder::from_url(&r).expect("retry settings");
        let r = Url::parse("s3://bkt/p?max_retries=x").expect("static URL");
        assert!(ObjectStorageBuilder::from_url(&r).is_err());

        let bad = Url::parse("s3://bkt/p?no_such_key=1").expect("static URL");
        let e = ObjectStorageBuilder::from_url(&bad).expect_err("unknown key");
        assert!(e.to_string().contains("no_such_key"), "{e}");

        let nobucket = Url::parse("s3:///p").expect("static URL");
        assert!(ObjectStorageBuilder::from_url(&nobucket).is_err());

        let m = Url::parse("memory:///x/y").expect("static URL");
        assert_eq!(
            ObjectStorageBuilder::from_url(&m)
                .expect("memory")
                .prefix
                .as_ref(),
            "x/y"
        );
        let m = Url::parse("memory://").expect("static URL");
        assert_eq!(
            ObjectStorageBuilder::from_url(&m)
                .expect("memory")
                .prefix
                .as_ref(),
            ""
        );
    }

    #[test]
    fn keys_are_exact() {
        let p = Path::parse("pre/fix").expect("valid");
        assert_eq!(
            child(&p, "objects/ab/cd.filez").expect("valid").as_ref(),
            "pre/fix/objects/ab/cd.filez"
        );
        assert_eq!(
            child(&Path::default(), "config").expect("valid").as_ref(),
            "config"
        );
    }
}
