//! The pull engine: replicate commits from a remote (any [`crate::fetcher::Fetcher`] scheme)
//! or from another repository (`pull-local`, `file://` remotes) into a repository.
//!
//! The order of work follows ostree's protocol, and every step keeps the repository valid if
//! the process dies there:
//!
//! 1. resolve the remote (config, `--url`, `mirrorlist=`, `contenturl`) and build fetchers
//!    through the registry;
//! 2. fetch the `summary` (cached in `tmp/cache/summaries/REMOTE` with its ETag, revalidated
//!    with `If-None-Match`), then the remote `config` when the summary does not say the mode;
//! 3. resolve refs from the summary, or from `refs/heads/REF`, or take commit checksums as
//!    given;
//! 4. for each commit: mark `state/COMMIT.commitpartial`, fetch detached metadata, then the
//!    commit, then traverse ([`engine`]) with bounded concurrency — every object is verified
//!    before it is stored, and objects already stored are never fetched again;
//! 5. make everything durable (`sync`), drop the `commitpartial` markers of complete commits,
//!    and only then move refs (`refs/remotes/REMOTE/REF`, or `refs/heads` for mirrors) with
//!    compare-and-swap. On any failure the refs are untouched and what was verified so far is
//!    kept, so the next pull resumes.
//!
//! Static deltas ([`delta`]) are chosen per target commit before the traversal, as ostree
//! chooses them, and applied through a [`DeltaApplier`] ([`StaticDeltas`] by default).
//!
//! Runtime: a pull runs on the caller's tokio runtime (it needs the `rt`, `time` and `io`
//! drivers; large objects go to the blocking pool). Over the network, a runtime with one
//! worker thread is the cheapest: most of the work per object is short and done where the
//! object arrives, and several workers spend their time waking each other (the `ostree` CLI
//! pulls on one worker: 15% less CPU on two CPUs, bench/pull.md). From a local repository the
//! traversal spreads its reads over a multi-thread runtime, its own one when the caller's has
//! fewer workers than CPUs ([`engine::Engine::run`]).

pub mod cache;
pub mod delta;
pub mod engine;
pub mod metalink;
pub mod source;
pub mod summary;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use url::Url;

use crate::fetcher::{Cookie, FetchStatus, FetcherConfig};
use crate::registry::Registry;
use crate::repo::Repo;
use crate::repo::remote::{Remote, RemotesDir, parse_cookie_jar};
use crate::store::{OpenOptions, RefExpect};
use crate::{Checksum, Error, Result, checksum};
use engine::{Engine, EngineOptions};
use source::{LocalSource, MAX_METADATA_SIZE, Mirrors, NetPolicy, ObjectSource, RemoteSource};
use summary::{RemoteSummary, parse_summary};

/// The User-Agent ostree 2022.7 sends.
pub const USER_AGENT: &str = "libostree/2022.7";

pub use delta::{DeltaApplier, DeltaJob, StaticDeltas};
pub use engine::Counters;

/// Options of a pull (`ostree pull` / `pull-local` flags, `ostree_repo_pull_with_options`).
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Refs (or commit checksums) to pull; empty: the remote's `branches`, or all (mirror).
    pub refs: Vec<String>,
    /// Per-ref commit overrides (`REF@COMMIT`), parallel to `refs`.
    pub override_commits: Vec<Option<Checksum>>,
    /// Per-ref collection IDs, parallel to `refs` (ostree's `collection-refs` option; empty or
    /// `None`: plain refs). A collection–ref without an override resolves through the
    /// summary's collection map (or the source's collection refs), and a mirror stores it as
    /// a collection–ref (`refs/mirrors/ID/REF`, or `refs/heads/REF` for our own collection).
    pub collection_ids: Vec<Option<String>>,
    /// `--url`.
    pub override_url: Option<String>,
    /// `--subpath`.
    pub subdirs: Vec<String>,
    /// `--mirror`: refs go to `refs/heads`, summary is copied.
    pub mirror: bool,
    /// `--commit-metadata-only`.
    pub commit_only: bool,
    /// `--untrusted`: verify local sources too.
    pub untrusted: bool,
    /// `--bareuseronly-files`.
    pub bareuseronly_files: bool,
    /// `--depth` (-1: all parents).
    pub depth: i64,
    /// `--network-retries`.
    pub network_retries: u32,
    /// `--disable-static-deltas`.
    pub disable_static_deltas: bool,
    /// `--require-static-deltas`.
    pub require_static_deltas: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--timestamp-check`.
    pub timestamp_check: bool,
    /// `--timestamp-check-from-rev`.
    pub timestamp_check_from_rev: Option<String>,
    /// `--localcache-repo` repositories.
    pub localcache: Vec<Repo>,
    /// `--http-header` pairs.
    pub http_headers: Vec<(String, String)>,
    /// `--append-user-agent`.
    pub append_user_agent: Option<String>,
    /// Where remote `*.conf` files live.
    pub remotes_dir: RemotesDir,
    /// For pulls from a repository (pull-local): write refs under this remote name.
    pub ref_remote: Option<String>,
    /// Concurrency override (default 8 requests in flight, as ostree's
    /// `_OSTREE_MAX_OUTSTANDING_FETCHER_REQUESTS`: over loopback HTTP/1.1, 32 connections
    /// were no faster and each held a read buffer of up to 400 KiB).
    pub concurrency: Option<usize>,
    /// Static delta application ([`StaticDeltas`] when `None`).
    pub deltas: Option<Arc<dyn DeltaApplier>>,
    /// Counters to share with a progress display (a fresh set when `None`).
    pub counters: Option<Arc<Counters>>,
    /// Registry used to build fetchers and open repositories.
    pub registry: Option<&'static Registry>,
    /// GPG verification requested explicitly (pull-local `--gpg-verify`).
    pub gpg_verify: Option<bool>,
    /// GPG summary verification requested explicitly.
    pub gpg_verify_summary: Option<bool>,
    /// Signature policy (built from the remote's options when `None`).
    pub verification: Option<Arc<crate::sign::policy::PullVerification>>,
    /// `--cache-dir`: cache summaries in `DIR/summaries/` instead of the repository.
    pub cache_dir: Option<std::path::PathBuf>,
    /// `--disable-verify-bindings`.
    pub disable_verify_bindings: bool,
    /// `--http-trusted`: content fetched over the network is not verified when mirroring
    /// into an archive repository.
    pub http_trusted: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            refs: Vec::new(),
            override_commits: Vec::new(),
            collection_ids: Vec::new(),
            override_url: None,
            subdirs: Vec::new(),
            mirror: false,
            commit_only: false,
            untrusted: false,
            bareuseronly_files: false,
            depth: 0,
            network_retries: 5,
            disable_static_deltas: false,
            require_static_deltas: false,
            dry_run: false,
            timestamp_check: false,
            timestamp_check_from_rev: None,
            localcache: Vec::new(),
            http_headers: Vec::new(),
            append_user_agent: None,
            remotes_dir: RemotesDir::none(),
            ref_remote: None,
            concurrency: None,
            deltas: None,
            counters: None,
            registry: None,
            gpg_verify: None,
            gpg_verify_summary: None,
            verification: None,
            cache_dir: None,
            disable_verify_bindings: false,
            http_trusted: false,
        }
    }
}

/// What a pull did, for ostree's closing line.
#[derive(Clone, Debug, Default)]
pub struct PullStats {
    /// The source was a local repository.
    pub local: bool,
    /// Metadata objects fetched.
    pub fetched_meta: u64,
    /// Content objects fetched.
    pub fetched_content: u64,
    /// Metadata objects imported from a local repository.
    pub imported_meta: u64,
    /// Content objects imported from a local repository.
    pub imported_content: u64,
    /// Static delta parts fetched (or found complete).
    pub delta_parts: u64,
    /// Static delta parts of the deltas used.
    pub delta_parts_total: u64,
    /// Fallback objects fetched, and listed, by the deltas used.
    pub delta_fallbacks: (u64, u64),
    /// Compressed bytes of parts and fallbacks fetched (or present), and in total.
    pub delta_size: (u64, u64),
    /// Uncompressed bytes of every part and fallback.
    pub delta_usize: u64,
    /// Bytes of objects and static deltas received over the network (as ostree counts them:
    /// not the `summary`, its signature or `config`).
    pub bytes_transferred: u64,
    /// Uncompressed content bytes written.
    pub content_bytes_written: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Refs updated: (store ref name, new commit).
    pub refs_updated: Vec<(String, Checksum)>,
    /// GPG verification reports of the commits pulled, in order.
    pub gpg_reports: Vec<(Checksum, crate::sign::VerifyReport)>,
}

/// `g_format_size` (SI units, one decimal).
pub fn format_size(n: u64) -> String {
    if n < 1000 {
        return if n == 1 {
            "1 byte".into()
        } else {
            format!("{n} bytes")
        };
    }
    let units = ["kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64 / 1000.0;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

impl PullStats {
    /// What `ostree pull --dry-run` prints.
    pub fn dry_run_line(&self) -> String {
        format!(
            "Delta update: {}/{} parts, {}/{}, {} total uncompressed",
            self.delta_parts + self.delta_fallbacks.0,
            self.delta_parts_total + self.delta_fallbacks.1,
            format_size(self.delta_size.0),
            format_size(self.delta_size.1),
            format_size(self.delta_usize)
        )
    }

    /// The line ostree prints when a pull finishes (non-interactive).
    pub fn status_line(&self) -> String {
        let mut s = if self.local {
            format!(
                "{} metadata, {} content objects imported",
                self.imported_meta, self.imported_content
            )
        } else if self.delta_parts > 0 {
            format!(
                "{} delta parts, {} loose fetched",
                self.delta_parts,
                self.fetched_meta + self.fetched_content
            )
        } else {
            format!(
                "{} metadata, {} content objects fetched",
                self.fetched_meta, self.fetched_content
            )
        };
        if !self.local && (self.imported_meta > 0 || self.imported_content > 0) {
            s.push_str(&format!(
                " ({} meta, {} content local)",
                self.imported_meta, self.imported_content
            ));
        }
        if self.bytes_transferred > 0 {
            let (v, unit) = if self.bytes_transferred < 1024 {
                (self.bytes_transferred, "B")
            } else {
                (self.bytes_transferred / 1024, "KiB")
            };
            s.push_str(&format!(
                "; {v} {unit} transferred in {} seconds",
                self.elapsed.as_secs()
            ));
        }
        s.push_str(&format!(
            "; {} content written",
            format_size(self.content_bytes_written)
        ));
        s
    }
}

/// A ref (or commit) to pull and where it lands.
#[derive(Clone, Debug)]
struct Target {
    /// The ref name as requested, `None` for a commit checksum.
    name: Option<String>,
    commit: Checksum,
    /// Store-level ref to update, and its value before the pull.
    store_ref: Option<(String, Option<Checksum>)>,
}

/// `%c` in the C locale (`Thu Nov 26 15:51:21 2026`).
fn ctime(t: u64) -> String {
    let days = (t / 86400) as i64;
    let s = t % 86400;
    let line = crate::repo::remote::format_utc(t as i64);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let y = &line[0..4];
    let m: usize = line[5..7].parse().unwrap_or(1);
    let d: u32 = line[8..10].parse().unwrap_or(1);
    format!(
        "{wd} {} {d:2} {:02}:{:02}:{:02} {y}",
        months[m.saturating_sub(1).min(11)],
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// `_ostree_compare_timestamps`.
pub fn compare_timestamps(
    cur_rev: &Checksum,
    cur_ts: u64,
    new_rev: &Checksum,
    new_ts: u64,
) -> Result<()> {
    if new_ts >= cur_ts || cur_rev == new_rev {
        return Ok(());
    }
    Err(Error::Other(format!(
        "Upgrade target revision '{new_rev}' with timestamp '{}' is chronologically older than current revision '{cur_rev}' with timestamp '{}'; use --allow-downgrade to permit",
        ctime(new_ts),
        ctime(cur_ts)
    )))
}

fn fetcher_config(
    repo: &Repo,
    remote: Option<&Remote>,
    opts: &PullOptions,
) -> Result<FetcherConfig> {
    let mut cfg = FetcherConfig {
        headers: opts.http_headers.clone(),
        user_agent: Some(match &opts.append_user_agent {
            Some(a) => format!("{USER_AGENT} {a}"),
            None => USER_AGENT.to_string(),
        }),
        ..Default::default()
    };
    if let Some(r) = remote {
        cfg.tls_permissive = r.get_bool("tls-permissive", false)?;
        cfg.tls_ca_path = r.get("tls-ca-path").map(Into::into);
        let cert = r.get("tls-client-cert-path");
        let key = r.get("tls-client-key-path");
        if cert.is_some() != key.is_some() {
            return Err(Error::Other(format!(
                "Remote \"{}\" must specify both \"tls-client-cert-path\" and \"tls-client-key-path\"",
                r.name
            )));
        }
        cfg.tls_client_cert_path = cert.map(Into::into);
        cfg.tls_client_key_path = key.map(Into::into);
        cfg.proxy = r.get("proxy");
        if r.get("http2").is_some() {
            cfg.http2 = Some(r.get_bool("http2", true)?);
        }
        if let Some(jar) = repo.cookie_jar_path(&r.name)
            && let Ok(text) = std::fs::read_to_string(&jar)
        {
            cfg.cookies = parse_cookie_jar(&text)
                .into_iter()
                .map(|c| Cookie {
                    domain: c.domain,
                    path: c.path,
                    name: c.name,
                    value: c.value,
                })
                .collect();
        }
    }
    Ok(cfg)
}

fn parse_url(u: &str) -> Result<Url> {
    let mut url = Url::parse(u).map_err(|e| Error::invalid(format!("Invalid URL '{u}': {e}")))?;
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// A fetcher for `url` through the registry; an unknown scheme reads as ostree's
/// "Invalid URI scheme in URL" (with the schemes this build has).
fn build_fetcher(
    registry: &Registry,
    url: &Url,
    cfg: &FetcherConfig,
) -> Result<Arc<dyn crate::fetcher::Fetcher>> {
    registry.build_fetcher(url, cfg).map_err(|e| match e {
        Error::UnsupportedScheme { available, .. } => {
            let mut shown = url.clone();
            let _ = shown.set_password(None);
            let s = shown.as_str();
            let s = s
                .strip_suffix('/')
                .filter(|_| url.path() == "/")
                .unwrap_or(s);
            Error::invalid(format!(
                "Invalid URI scheme in {s} (available: {})",
                available.join(", ")
            ))
        }
        e => e,
    })
}

/// Build the fetchers for a `url` / `contenturl` value (`mirrorlist=URL` expands to every
/// mirror listed there).
async fn mirrors_for(registry: &Registry, spec: &str, cfg: &FetcherConfig) -> Result<Mirrors> {
    if let Some(list_url) = spec.strip_prefix("mirrorlist=") {
        let u = Url::parse(list_url)
            .map_err(|e| Error::invalid(format!("Invalid URL '{list_url}': {e}")))?;
        let f = build_fetcher(registry, &u, cfg)?;
        let lister = RemoteSource::new(Mirrors(vec![f]), Mirrors(Vec::new()), NetPolicy::default());
        let text = lister
            .get(lister.meta_mirrors(), "", MAX_METADATA_SIZE, None)
            .await
            .map_err(|e| Error::Other(format!("While fetching mirrorlist '{list_url}': {e}")))?
            .ok_or_else(|| {
                Error::Other(format!(
                    "While fetching mirrorlist '{list_url}': Server returned HTTP 404"
                ))
            })?
            .1;
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_url(line).and_then(|u| build_fetcher(registry, &u, cfg)) {
                Ok(f) => out.push(f),
                Err(_) => continue,
            }
        }
        if out.is_empty() {
            return Err(Error::Other(format!(
                "No valid mirrors were found in mirrorlist '{list_url}'"
            )));
        }
        return Ok(Mirrors(out));
    }
    let u = parse_url(spec)?;
    Ok(Mirrors(vec![build_fetcher(registry, &u, cfg)?]))
}

/// Fetch the summary through the cache: conditional on the cached ETag; a 304 loads the
/// cached copy. Returns the bytes, and whether they are new (to be cached).
async fn fetch_summary(
    cache: &cache::SummaryCache,
    src: &RemoteSource,
    cache_name: Option<&str>,
) -> Result<Option<Bytes>> {
    let cached_etag = cache_name.and_then(|n| cache.etag(n, ""));
    let got = src
        .get(
            src.meta_mirrors(),
            "summary",
            MAX_METADATA_SIZE,
            cached_etag,
        )
        .await?;
    match got {
        None => Ok(None),
        Some((FetchStatus::NotModified, _, _)) => {
            let name = cache_name.unwrap_or_default();
            match cache.read(name, "").await? {
                Some(b) => Ok(Some(b)),
                None => {
                    // The cache vanished under us: fetch unconditionally.
                    Ok(src
                        .get(src.meta_mirrors(), "summary", MAX_METADATA_SIZE, None)
                        .await?
                        .map(|(_, b, _)| b))
                }
            }
        }
        Some((FetchStatus::Ok, bytes, etag)) => {
            if let Some(n) = cache_name {
                cache.write(n, "", bytes.clone(), etag.as_deref()).await;
            }
            Ok(Some(bytes))
        }
    }
}

/// A ref asked for twice is pulled once, as the last request for it says (ostree keeps
/// requests in a hash table keyed by ref).
fn dedupe_refs(opts: &mut PullOptions) {
    let mut refs: Vec<String> = Vec::new();
    let mut overs: Vec<Option<Checksum>> = Vec::new();
    let mut cids: Vec<Option<String>> = Vec::new();
    for (i, r) in opts.refs.iter().enumerate() {
        let o = opts.override_commits.get(i).copied().flatten();
        let c = opts.collection_ids.get(i).cloned().flatten();
        match (0..refs.len()).find(|&j| refs[j] == *r && cids[j] == c) {
            Some(j) => overs[j] = o,
            None => {
                refs.push(r.clone());
                overs.push(o);
                cids.push(c);
            }
        }
    }
    opts.refs = refs;
    opts.override_commits = overs;
    opts.collection_ids = if cids.iter().any(Option::is_some) {
        cids
    } else {
        Vec::new()
    };
}

/// Pull from a configured remote, or a URL, into `repo` (`ostree pull`).
pub async fn pull(repo: &Repo, remote_or_url: &str, opts: PullOptions) -> Result<PullStats> {
    if remote_or_url.contains("://") {
        pull_inner(repo, None, remote_or_url, opts).await
    } else {
        let r = repo.remote(&opts.remotes_dir, remote_or_url).await?;
        pull_remote(repo, r, opts).await
    }
}

/// Pull from a remote given by value: a configured one, or one a repo finder made up (a
/// dynamic remote: not in the configuration, its keys given by `opts.verification`).
pub async fn pull_remote(repo: &Repo, remote: Remote, opts: PullOptions) -> Result<PullStats> {
    let name = remote.name.clone();
    pull_inner(repo, Some(remote), &name, opts).await
}

async fn pull_inner(
    repo: &Repo,
    remote: Option<Remote>,
    remote_or_url: &str,
    opts: PullOptions,
) -> Result<PullStats> {
    let start = Instant::now();
    let mut opts = opts;
    dedupe_refs(&mut opts);
    let registry = opts.registry.unwrap_or_else(Registry::global);
    let (remote, url_spec): (Option<Remote>, String) = match remote {
        None => (None, remote_or_url.to_string()),
        Some(r) => {
            if let Some(s) = r.get("unconfigured-state") {
                return Err(Error::Other(format!("remote unconfigured-state: {s}")));
            }
            if let Some(b) = r.get("custom-backend") {
                return Err(Error::Other(format!(
                    "Cannot fetch via libostree - remote '{}' uses custom backend '{b}'",
                    r.name
                )));
            }
            let u = match &opts.override_url {
                Some(u) => u.clone(),
                // A metalink remote: the repository's URL comes from the metalink (below).
                None => match r.get("metalink") {
                    Some(m) => m,
                    None => r.url()?,
                },
            };
            (Some(r), u)
        }
    };
    let remote_name = remote.as_ref().map(|r| r.name.clone());
    let mut opts = opts;
    if let Some(r) = &remote
        && opts.verification.is_none()
    {
        opts.verification = Some(Arc::new(
            crate::sign::policy::PullVerification::for_remote(
                repo,
                &opts.remotes_dir,
                r,
                opts.gpg_verify,
                opts.gpg_verify_summary,
                Some(registry),
            )
            .await?,
        ));
    }
    if opts.dry_run && !opts.require_static_deltas {
        return Err(Error::invalid("--dry-run requires --require-static-deltas"));
    }

    // A file:// remote is imported from the repository directly, like ostree does (unless
    // static deltas are required: then it is fetched like any URL, to use them).
    if url_spec.starts_with("file://") && !opts.require_static_deltas {
        let url = Url::parse(&url_spec)
            .map_err(|e| Error::invalid(format!("Invalid URL '{url_spec}': {e}")))?;
        let src = Repo::open_with(registry, &url, OpenOptions::default()).await?;
        let mut o = opts;
        if o.ref_remote.is_none() && !o.mirror {
            o.ref_remote = remote_name.clone();
        }
        if o.refs.is_empty() && !o.mirror {
            match remote.as_ref().and_then(|r| r.get_list("branches")) {
                Some(b) if !b.is_empty() => o.refs = b,
                _ => {
                    return Err(Error::Other(format!(
                        "No configured branches for remote {remote_or_url}"
                    )));
                }
            }
        }
        return pull_from_repo(repo, &src, o, start).await;
    }

    if opts.require_static_deltas && repo.mode().is_archive() {
        return Err(Error::Other(
            "Can't use static deltas in an archive repo".into(),
        ));
    }

    let cfg = fetcher_config(repo, remote.as_ref(), &opts)?;
    let policy = NetPolicy {
        retries: opts.network_retries,
        ..NetPolicy::default()
    };
    let metalink_url = remote
        .as_ref()
        .filter(|_| opts.override_url.is_none())
        .and_then(|r| r.get("metalink"));
    // A metalink gives the summary (verified by size and digest) and the repository's URL.
    let (meta, metalink_summary) = match &metalink_url {
        Some(m) => {
            let (bytes, base) = metalink::fetch_summary(registry, m, &cfg, policy).await?;
            let f = build_fetcher(registry, &parse_url(base.as_str())?, &cfg)?;
            (Mirrors(vec![f]), Some(bytes))
        }
        None => (mirrors_for(registry, &url_spec, &cfg).await?, None),
    };
    let content = match remote.as_ref().and_then(|r| r.get("contenturl")) {
        Some(c) if opts.override_url.is_none() => mirrors_for(registry, &c, &cfg).await?,
        _ => Mirrors(meta.0.clone()),
    };
    let counters = opts.counters.clone().unwrap_or_default();
    opts.counters = Some(counters.clone());
    // Large content objects arrive into unlinked files in the repository's tmp/, not memory.
    let src = Arc::new(
        RemoteSource::new(meta, content, policy)
            .with_counters(counters)
            .with_spool_dir(crate::spool::dir_for(repo)),
    );

    // Summary (cached per remote), then the remote's mode.
    let cache = cache::SummaryCache::new(repo, opts.cache_dir.clone());
    // As ostree: the summary is skipped when every ref comes with its commit and deltas
    // cannot need it (disabled, or indexed outside the summary per the remote's config).
    let verifies_summary = opts
        .verification
        .as_ref()
        .is_some_and(|v| v.verifies_summary());
    let all_have_commit = !opts.refs.is_empty()
        && opts.refs.iter().enumerate().all(|(i, r)| {
            checksum::is_valid_hex(r) || opts.override_commits.get(i).copied().flatten().is_some()
        });
    let mut need_summary = opts.mirror && opts.refs.is_empty()
        || !all_have_commit
        || verifies_summary
        || metalink_summary.is_some();
    let mut remote_config: Option<Bytes> = None;
    let mut config_indexed_deltas = false;
    if !need_summary && !opts.disable_static_deltas && !repo.mode().is_archive() {
        remote_config = src.file("config", MAX_METADATA_SIZE).await?;
        config_indexed_deltas = remote_config
            .as_ref()
            .and_then(|b| crate::keyfile::KeyFile::parse(&String::from_utf8_lossy(b)).ok())
            .and_then(|kf| kf.get_string("core", "indexed-deltas"))
            .is_some_and(|v| v.trim() == "true");
        need_summary = !config_indexed_deltas;
    }
    let summary_bytes = match &opts.verification {
        _ if metalink_summary.is_some() => {
            let b = metalink_summary.clone();
            if let (Some(v), Some(b)) = (opts.verification.as_ref(), &b)
                && v.verifies_summary()
            {
                let sig = src.file("summary.sig", MAX_METADATA_SIZE).await?;
                v.verify_summary(b, sig.as_deref())?;
            }
            b
        }
        _ if !need_summary => None,
        Some(v) if v.verifies_summary() => {
            verify::fetch_verified_summary(&cache, &src, remote_name.as_deref(), v).await?
        }
        _ => fetch_summary(&cache, &src, remote_name.as_deref()).await?,
    };
    // GLib reads a summary that is not a valid serialization as an empty one (no refs, no
    // deltas): refs then fail to resolve, while commits given by checksum still pull.
    let summary: Option<RemoteSummary> = summary_bytes
        .as_ref()
        .map(|b| parse_summary(b).unwrap_or_default());
    let mode = match summary.as_ref().and_then(|s| s.mode.clone()) {
        Some(m) => m,
        None => {
            let cfg_bytes = match remote_config.take() {
                Some(b) => Some(b),
                None => src.file("config", MAX_METADATA_SIZE).await?,
            };
            let cfg_bytes = cfg_bytes.ok_or_else(|| {
                    Error::not_found(format!(
                        "Server returned HTTP 404 for {}config (remote {remote_or_url} has no config file)",
                        src.meta_mirrors()
                            .0
                            .first()
                            .map(|f| f.base_url().to_string())
                            .unwrap_or_default()
                    ))
                })?;
            let text = String::from_utf8_lossy(&cfg_bytes).into_owned();
            let kf = crate::keyfile::KeyFile::parse(&text)?;
            kf.get_string("core", "mode")
                .unwrap_or_else(|| "bare".into())
        }
    };
    if mode != "archive-z2" && mode != "archive" {
        return Err(Error::Other(format!(
            "Can't pull from archives with mode \"{mode}\""
        )));
    }

    let mut opts = opts;
    let configured_branches = remote
        .as_ref()
        .and_then(|r| r.get_list("branches"))
        .is_some_and(|b| !b.is_empty());
    // ostree copies the summary into a mirror only when it mirrored every ref.
    let mirror_all = opts.mirror && opts.refs.is_empty() && !configured_branches;
    if opts.refs.is_empty() {
        if opts.mirror && !configured_branches {
            match &summary {
                Some(s) => opts.refs = s.refs.keys().cloned().collect(),
                None => {
                    return Err(Error::Other(
                        "Fetching all refs was requested in mirror mode, but remote repository does not have a summary".into(),
                    ));
                }
            }
        } else {
            match remote.as_ref().and_then(|r| r.get_list("branches")) {
                Some(b) if !b.is_empty() => opts.refs = b,
                _ => {
                    return Err(Error::Other(format!(
                        "No configured branches for remote {remote_or_url}"
                    )));
                }
            }
        }
    }

    let ref_remote = if opts.mirror {
        None
    } else {
        opts.ref_remote.clone().or_else(|| remote_name.clone())
    };
    let mut targets = Vec::new();
    for (i, name) in opts.refs.iter().enumerate() {
        let over = opts.override_commits.get(i).copied().flatten();
        let req_cid = opts.collection_ids.get(i).cloned().flatten();
        if checksum::is_valid_hex(name) && req_cid.is_none() {
            targets.push(Target {
                name: None,
                commit: Checksum::from_hex(&name.to_ascii_lowercase())?,
                store_ref: None,
            });
            continue;
        }
        crate::repo::refs::validate_ref_name(name)?;
        let commit = match over {
            Some(c) => c,
            None => match &summary {
                Some(s) => {
                    s.lookup(req_cid.as_deref(), name)
                        .ok_or_else(|| {
                            Error::not_found(match &req_cid {
                                Some(c) => {
                                    format!("No such branch ({c}, {name}) in repository summary")
                                }
                                None => format!("No such branch '{name}' in repository summary"),
                            })
                        })?
                        .1
                }
                None => {
                    // Without a summary (so no main collection ID), a collection–ref is
                    // read from `refs/mirrors/ID/REF`.
                    let path = match &req_cid {
                        Some(c) => format!("refs/mirrors/{c}/{name}"),
                        None => format!("refs/heads/{name}"),
                    };
                    let b = src.file(&path, 4096).await?.ok_or_else(|| {
                        Error::not_found(format!("Server returned HTTP 404 for refs/heads/{name}"))
                    })?;
                    let t = String::from_utf8_lossy(&b).trim_end().to_string();
                    let shown = req_cid.as_deref().unwrap_or("(empty)");
                    let bad = |e: String| {
                        Error::Other(format!("Fetching checksum for ref ({shown}, {name}): {e}"))
                    };
                    if t.len() != 64 {
                        // ostree quashes the text (an HTML page, say) to 64 bytes, one line.
                        let q: String = String::from_utf8_lossy(&t.as_bytes()[..t.len().min(64)])
                            .replace('\n', " ");
                        return Err(bad(format!("Invalid rev {q}")));
                    }
                    Checksum::from_hex(&t).map_err(|e| bad(e.to_string()))?
                }
            },
        };
        // A mirror keeps the collection ID the summary gives the ref (refs/mirrors/ID/REF),
        // or the one it was asked for as a collection–ref.
        let cid = match &summary {
            _ if opts.mirror && req_cid.is_some() => req_cid.as_deref(),
            Some(s) if opts.mirror && over.is_none() => s.collection_id.as_deref(),
            _ => None,
        };
        let store_name = target_ref_name(repo, ref_remote.as_deref(), cid, name);
        let old = repo.store().read_ref(&store_name).await?;
        targets.push(Target {
            name: Some(name.clone()),
            commit,
            store_ref: Some((store_name, old)),
        });
    }

    if opts.require_static_deltas {
        let has = config_indexed_deltas
            || summary
                .as_ref()
                .is_some_and(|s| !s.deltas.is_empty() || s.indexed_deltas);
        if !has {
            return Err(Error::not_found(
                "Fetch configured to require static deltas, but no summary deltas or delta index found",
            ));
        }
    }

    let deltas = DeltaInfo {
        summary_digests: match &summary {
            Some(s) => delta::collect_digests(&s.delta_digests)?,
            None => Default::default(),
        },
        indexed: config_indexed_deltas || summary.as_ref().is_some_and(|s| s.indexed_deltas),
        remote_name: remote_name.clone(),
    };
    let collection_id = remote.as_ref().and_then(|r| r.get("collection-id"));
    let mut stats = run_targets(
        repo,
        src.clone(),
        &targets,
        &opts,
        Some(&deltas),
        collection_id,
    )
    .await?;
    stats.bytes_transferred = src.bytes_transferred();

    if mirror_all && !opts.dry_run {
        if let Some(b) = &summary_bytes {
            repo.store().write_file("summary", b.clone()).await?;
        }
        if let Some(sig) = src.file("summary.sig", MAX_METADATA_SIZE).await? {
            repo.store().write_file("summary.sig", sig).await?;
        }
        stats.bytes_transferred = src.bytes_transferred();
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn delta_stats(mut stats: PullStats, c: &Counters) -> PullStats {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    stats.delta_parts = l(&c.delta_parts_fetched);
    stats.delta_parts_total = l(&c.delta_parts_total);
    stats.delta_fallbacks = (l(&c.delta_fallbacks_fetched), l(&c.delta_fallbacks_total));
    stats.delta_size = (l(&c.delta_size_fetched), l(&c.delta_size_total));
    stats.delta_usize = l(&c.delta_usize_total);
    stats
}

/// The checks the engine runs on each requested commit as soon as it arrives.
async fn engine_timestamp_checks(
    repo: &Repo,
    targets: &[Target],
    opts: &PullOptions,
) -> Result<Option<engine::TimestampChecks>> {
    if !opts.timestamp_check && opts.timestamp_check_from_rev.is_none() {
        return Ok(None);
    }
    let mut tc = engine::TimestampChecks::default();
    if let Some(rev) = &opts.timestamp_check_from_rev {
        tc.from_rev = Some(
            repo.resolve_rev(rev, false)
                .await?
                .ok_or_else(|| Error::not_found(format!("Refspec '{rev}' not found")))?,
        );
    }
    if opts.timestamp_check {
        for t in targets {
            if let Some((_, Some(old))) = &t.store_ref {
                tc.orig
                    .entry(t.commit)
                    .or_default()
                    .push((t.name.clone().unwrap_or_default(), *old));
            }
        }
    }
    Ok(Some(tc))
}

/// The same checks once everything is stored (commits that came whole from a static delta
/// were not traversed), before any ref moves.
async fn timestamp_checks(repo: &Repo, targets: &[Target], opts: &PullOptions) -> Result<()> {
    if !opts.timestamp_check && opts.timestamp_check_from_rev.is_none() {
        return Ok(());
    }
    let from_rev_ts = match &opts.timestamp_check_from_rev {
        Some(rev) => {
            let c = repo
                .resolve_rev(rev, false)
                .await?
                .ok_or_else(|| Error::not_found(format!("Refspec '{rev}' not found")))?;
            let commit = repo.load_commit(&c).await.map_err(|e| {
                Error::Other(format!("Reading {rev} for timestamp-check-from-rev: {e}"))
            })?;
            Some((c, commit.timestamp))
        }
        None => None,
    };
    for t in targets {
        let new = repo.load_commit(&t.commit).await?;
        if opts.timestamp_check
            && let Some((_, Some(old))) = &t.store_ref
        {
            let oc = repo.load_commit(old).await.map_err(|e| {
                Error::Other(format!(
                    "Reading {} for timestamp-check: {e}",
                    t.name.clone().unwrap_or_default()
                ))
            })?;
            compare_timestamps(old, oc.timestamp, &t.commit, new.timestamp)?;
        }
        if let Some((c, ts)) = &from_rev_ts {
            compare_timestamps(c, *ts, &t.commit, new.timestamp)?;
        }
    }
    Ok(())
}

/// The store ref a pulled ref lands in: `remotes/REMOTE/REF`, or for mirrors `heads/REF`
/// (`mirrors/ID/REF` when the source gives the ref a collection ID other than ours).
fn target_ref_name(
    repo: &Repo,
    ref_remote: Option<&str>,
    collection_id: Option<&str>,
    name: &str,
) -> String {
    match (ref_remote, collection_id) {
        (None, Some(cid)) => repo.collection_ref_store_name(&crate::repo::refs::CollectionRef {
            collection_id: cid.to_string(),
            ref_name: name.to_string(),
        }),
        _ => crate::repo::refs::store_ref_name(ref_remote, name),
    }
}

/// What the remote publishes about its static deltas.
#[derive(Debug, Default)]
struct DeltaInfo {
    summary_digests: std::collections::HashMap<String, Checksum>,
    indexed: bool,
    remote_name: Option<String>,
}

async fn run_targets(
    repo: &Repo,
    src: Arc<dyn ObjectSource>,
    targets: &[Target],
    opts: &PullOptions,
    deltas: Option<&DeltaInfo>,
    collection_id: Option<String>,
) -> Result<PullStats> {
    let _lock = repo.lock(false).await?;
    let bindings = (!opts.disable_verify_bindings).then(|| {
        let mut refs: std::collections::HashMap<Checksum, Vec<String>> = Default::default();
        for t in targets {
            if let Some(n) = &t.name {
                refs.entry(t.commit).or_default().push(n.clone());
            }
        }
        engine::Bindings {
            collection_id: collection_id.filter(|c| !c.is_empty()),
            refs,
        }
    });
    let local = src.is_local();
    let verify = !local || opts.untrusted;
    let timestamp_checks_early = engine_timestamp_checks(repo, targets, opts).await?;
    let eopts = EngineOptions {
        timestamp_checks: timestamp_checks_early,
        verify,
        bareuseronly_files: opts.bareuseronly_files,
        commit_only: opts.commit_only,
        maxdepth: opts.depth,
        subdirs: opts
            .subdirs
            .iter()
            .map(|s| {
                if s.starts_with('/') {
                    s.clone()
                } else {
                    format!("/{s}")
                }
            })
            .collect(),
        concurrency: opts.concurrency.unwrap_or(8),
        fetch_commitmeta: true,
        verification: opts.verification.clone(),
        trust_content: !local
            && opts.http_trusted
            && opts.mirror
            && repo.mode() == crate::store::RepoMode::Archive
            && !opts.bareuseronly_files,
        bindings,
    };
    let caches = opts
        .localcache
        .iter()
        .map(|r| LocalSource { repo: r.clone() })
        .collect();
    let counters = opts.counters.clone().unwrap_or_default();
    let engine = Arc::new(Engine::with_counters(
        repo.clone(),
        src.clone(),
        caches,
        eopts,
        counters.clone(),
    ));
    let result = async {
        // Static deltas first (as ostree chooses them), then the traversal of every target:
        // it fetches whatever is still missing.
        let mut commits: Vec<Checksum> = Vec::new();
        let use_deltas = !opts.disable_static_deltas
            && !opts.commit_only
            && !repo.mode().is_archive()
            && deltas.is_some();
        match (src.as_remote(), deltas) {
            (Some(remote), Some(info)) if use_deltas => {
                let ctx = delta::DeltaCtx {
                    engine: &engine,
                    source: remote,
                    applier: opts
                        .deltas
                        .clone()
                        .unwrap_or_else(|| Arc::new(StaticDeltas)),
                    summary_digests: info.summary_digests.clone(),
                    indexed: info.indexed,
                    remote_name: info.remote_name.clone(),
                    require: opts.require_static_deltas,
                    dry_run: opts.dry_run,
                    gpg_verify_summary: opts.verification.as_ref().is_some_and(|v| v.gpg_summary),
                };
                for t in targets {
                    if ctx.initiate(t.name.as_deref(), t.commit).await? {
                        commits.push(t.commit);
                    }
                }
            }
            _ => commits = targets.iter().map(|t| t.commit).collect(),
        }
        if opts.dry_run {
            return Ok(());
        }
        engine.run(&commits).await
    }
    .await;
    if opts.dry_run {
        result?;
        return Ok(delta_stats(PullStats::default(), &counters));
    }
    // Keep what was verified so far, even on failure: the next pull resumes from it.
    let synced = repo.store().sync().await;
    result?;
    synced?;
    timestamp_checks(repo, targets, opts).await?;
    if !opts.commit_only && opts.subdirs.is_empty() {
        for c in engine.completed() {
            repo.store()
                .delete_file(&format!("state/{c}.commitpartial"))
                .await?;
        }
    }
    let mut stats = PullStats {
        local,
        fetched_meta: engine.counters.fetched_meta.load(Ordering::Relaxed),
        fetched_content: engine.counters.fetched_content.load(Ordering::Relaxed),
        imported_meta: engine.counters.imported_meta.load(Ordering::Relaxed),
        imported_content: engine.counters.imported_content.load(Ordering::Relaxed),
        content_bytes_written: engine
            .counters
            .content_bytes_written
            .load(Ordering::Relaxed),
        ..Default::default()
    };
    stats = delta_stats(stats, &counters);
    if let Some(v) = &opts.verification
        && let Ok(g) = v.gpg_reports.lock()
    {
        stats.gpg_reports = g.clone();
    }
    for t in targets {
        if let Some((name, old)) = &t.store_ref {
            if *old == Some(t.commit) {
                continue;
            }
            let expect = match old {
                Some(o) => RefExpect::Value(*o),
                None => RefExpect::Absent,
            };
            repo.store()
                .update_ref(name, expect, Some(t.commit))
                .await?;
            stats.refs_updated.push((name.clone(), t.commit));
        }
    }
    Ok(stats)
}

/// Copy commits from another repository (`ostree pull-local`, and `file://` remotes).
/// Refs land in `refs/remotes/<ref_remote>/` when set, else `refs/heads/` (mirror or plain).
pub async fn pull_local(repo: &Repo, src: &Repo, opts: PullOptions) -> Result<PullStats> {
    if opts.refs.is_empty() {
        // ostree mirrors every ref the source lists, remote refs included, and those are
        // no valid ref names to mirror.
        if let Some((n, _)) = src.store().list_refs("remotes/").await?.first() {
            let rest = n.strip_prefix("remotes/").unwrap_or(n);
            let (r, b) = rest.split_once('/').unwrap_or((rest, ""));
            return Err(Error::invalid(format!("Invalid ref name {r}:{b}")));
        }
    }
    pull_from_repo(repo, src, opts, Instant::now()).await
}

async fn pull_from_repo(
    repo: &Repo,
    src: &Repo,
    opts: PullOptions,
    start: Instant,
) -> Result<PullStats> {
    let mut opts = opts;
    if opts.verification.is_none()
        && (opts.gpg_verify == Some(true) || opts.gpg_verify_summary == Some(true))
        && let Some(name) = opts.ref_remote.clone()
    {
        let r = repo.remote(&opts.remotes_dir, &name).await?;
        opts.verification = Some(Arc::new(
            crate::sign::policy::PullVerification::for_remote(
                repo,
                &opts.remotes_dir,
                &r,
                opts.gpg_verify,
                opts.gpg_verify_summary,
                opts.registry,
            )
            .await?,
        ));
    }
    let mirror_all = opts.mirror && opts.refs.is_empty();
    if opts.refs.is_empty() {
        // All local heads (pull-local without refs; mirror of a file:// remote).
        opts.refs = src
            .store()
            .list_refs("heads/")
            .await?
            .into_iter()
            .map(|(n, _)| n["heads/".len()..].to_string())
            .collect();
    }
    if let Some(v) = &opts.verification
        && v.verifies_summary()
    {
        verify::verify_local_summary(src, v).await?;
    }
    let ref_remote = if opts.mirror {
        None
    } else {
        opts.ref_remote.clone()
    };
    // A mirror keeps the collection ID the source's summary publishes.
    let src_summary = src.store().read_file("summary").await?;
    let src_cid = match &src_summary {
        Some(b) if opts.mirror => parse_summary(b).ok().and_then(|s| s.collection_id),
        _ => None,
    };
    let mut targets = Vec::new();
    for (i, name) in opts.refs.iter().enumerate() {
        let over = opts.override_commits.get(i).copied().flatten();
        if let Some(cid) = opts.collection_ids.get(i).cloned().flatten() {
            targets.push(
                collection_target(repo, src, src_summary.as_ref(), &cid, name, over, &opts).await?,
            );
            continue;
        }
        if checksum::is_valid_hex(name) {
            targets.push(Target {
                name: None,
                commit: Checksum::from_hex(&name.to_ascii_lowercase())?,
                store_ref: None,
            });
            continue;
        }
        let commit = match over {
            Some(c) => c,
            None => src
                .resolve_rev(name, false)
                .await?
                .ok_or_else(|| Error::not_found(format!("Refspec '{name}' not found")))?,
        };
        // A `REMOTE:REF` source refspec lands under its ref name.
        let (_, plain) = crate::repo::refs::parse_refspec(name)?;
        let store_name = target_ref_name(repo, ref_remote.as_deref(), src_cid.as_deref(), &plain);
        let old = repo.store().read_ref(&store_name).await?;
        targets.push(Target {
            name: Some(plain),
            commit,
            store_ref: Some((store_name, old)),
        });
    }
    let source: Arc<dyn ObjectSource> = Arc::new(LocalSource { repo: src.clone() });
    let mut stats = run_targets(repo, source, &targets, &opts, None, src.collection_id()).await?;
    if mirror_all
        && !opts.dry_run
        && let Some(s) = src.store().read_file("summary").await?
    {
        repo.store().write_file("summary", s).await?;
        if let Some(sig) = src.store().read_file("summary.sig").await? {
            repo.store().write_file("summary.sig", sig).await?;
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// The target of a collection–ref pulled from a local repository: its commit from the
/// source's summary when it has one, else from the source's collection–refs (ostree's
/// `fetch_ref_contents`); a mirror stores it as a collection–ref.
async fn collection_target(
    repo: &Repo,
    src: &Repo,
    src_summary: Option<&Bytes>,
    cid: &str,
    name: &str,
    over: Option<Checksum>,
    opts: &PullOptions,
) -> Result<Target> {
    crate::repo::refs::validate_ref_name(name)?;
    let cref = crate::repo::refs::CollectionRef::new(cid, name);
    let commit = match (over, src_summary) {
        (Some(c), _) => c,
        (None, Some(b)) => {
            parse_summary(b)
                .unwrap_or_default()
                .lookup(Some(cid), name)
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "No such branch ({cid}, {name}) in repository summary"
                    ))
                })?
                .1
        }
        (None, None) => src
            .resolve_collection_ref(&cref, false, false)
            .await?
            .ok_or_else(|| Error::not_found(format!("Collection–ref ({cid}, {name}) not found")))?,
    };
    let store_name = if opts.mirror {
        repo.collection_ref_store_name(&cref)
    } else {
        crate::repo::refs::store_ref_name(opts.ref_remote.as_deref(), name)
    };
    let old = repo.store().read_ref(&store_name).await?;
    Ok(Target {
        name: Some(name.to_string()),
        commit,
        store_ref: Some((store_name, old)),
    })
}

/// An object source for a remote given by value (configured, or made up by a repo finder):
/// the repository itself for a `file://` URL, else fetchers for its `url` (and
/// `contenturl`).
pub async fn source_for_remote(
    repo: &Repo,
    remote: &Remote,
    opts: &PullOptions,
) -> Result<Arc<dyn ObjectSource>> {
    let registry = opts.registry.unwrap_or_else(Registry::global);
    let url = remote.url()?;
    if url.starts_with("file://") {
        let u =
            Url::parse(&url).map_err(|e| Error::invalid(format!("Invalid URL '{url}': {e}")))?;
        let src = Repo::open_with(registry, &u, OpenOptions::default()).await?;
        return Ok(Arc::new(LocalSource { repo: src }));
    }
    let cfg = fetcher_config(repo, Some(remote), opts)?;
    let meta = mirrors_for(registry, &url, &cfg).await?;
    let content = match remote.get("contenturl") {
        Some(c) => mirrors_for(registry, &c, &cfg).await?,
        None => Mirrors(meta.0.clone()),
    };
    let policy = NetPolicy {
        retries: opts.network_retries,
        ..NetPolicy::default()
    };
    Ok(Arc::new(RemoteSource::new(meta, content, policy)))
}

/// The refs a remote publishes: from its summary, else none (`ostree remote refs`).
pub async fn remote_refs(
    repo: &Repo,
    remote_name: &str,
    opts: &PullOptions,
) -> Result<RemoteSummary> {
    let (bytes, _) = remote_summary_bytes(repo, remote_name, opts).await?;
    match bytes {
        Some(b) => parse_summary(&b),
        None => Err(Error::not_found(
            "Remote refs not available; server has no summary file",
        )),
    }
}

/// The summary (and summary.sig) bytes of a remote (`ostree remote summary`).
pub async fn remote_summary_bytes(
    repo: &Repo,
    remote_name: &str,
    opts: &PullOptions,
) -> Result<(Option<Bytes>, Option<Bytes>)> {
    let registry = opts.registry.unwrap_or_else(Registry::global);
    let r = repo.remote(&opts.remotes_dir, remote_name).await?;
    if let Some(m) = r.get("metalink") {
        let cfg = fetcher_config(repo, Some(&r), opts)?;
        let (summary, base) =
            metalink::fetch_summary(registry, &m, &cfg, NetPolicy::default()).await?;
        let f = build_fetcher(registry, &parse_url(base.as_str())?, &cfg)?;
        let src = RemoteSource::new(Mirrors(vec![f]), Mirrors(Vec::new()), NetPolicy::default());
        let sig = src.file("summary.sig", MAX_METADATA_SIZE).await?;
        return Ok((Some(summary), sig));
    }
    let url = r.url()?;
    if url.starts_with("file://") {
        let u =
            Url::parse(&url).map_err(|e| Error::invalid(format!("Invalid URL '{url}': {e}")))?;
        let src = Repo::open_with(registry, &u, OpenOptions::default()).await?;
        return Ok((
            src.store().read_file("summary").await?,
            src.store().read_file("summary.sig").await?,
        ));
    }
    let cfg = fetcher_config(repo, Some(&r), opts)?;
    let meta = mirrors_for(registry, &url, &cfg).await?;
    let src = RemoteSource::new(meta, Mirrors(Vec::new()), NetPolicy::default());
    let cache = cache::SummaryCache::new(repo, opts.cache_dir.clone());
    let summary = fetch_summary(&cache, &src, Some(remote_name)).await?;
    let sig = src.file("summary.sig", MAX_METADATA_SIZE).await?;
    Ok((summary, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lines() {
        assert_eq!(format_size(5), "5 bytes");
        assert_eq!(format_size(1), "1 byte");
        assert_eq!(format_size(1500), "1.5 kB");
        assert_eq!(format_size(2_345_678), "2.3 MB");
        let s = PullStats {
            local: true,
            imported_meta: 4,
            imported_content: 2,
            content_bytes_written: 5,
            ..Default::default()
        };
        assert_eq!(
            s.status_line(),
            "4 metadata, 2 content objects imported; 5 bytes content written"
        );
        assert_eq!(ctime(2584626681), "Sun Nov 26 15:51:21 2051");
    }
}
