//! Finding remotes that serve collection–refs, and pulling from what was found: ostree's
//! `OstreeRepoFinder` interface, `ostree_repo_find_remotes_async` and
//! `ostree_repo_pull_from_remotes_async` (2022.7), behind `ostree find-remotes` and
//! `ostree create-usb`.
//!
//! A [`RepoFinder`] turns collection–refs (`(COLLECTION-ID, REF)`) into candidate remotes, each
//! a [`FinderResult`] claiming some of the refs:
//!
//! * [`config::ConfigFinder`] (priority 100): the configured remotes that have a
//!   `collection-id` and whose summary lists the ref;
//! * [`mount::MountFinder`] (priority 50): repositories on mounted volumes (`.ostree/repos.d/*`,
//!   then `.ostree/repo`, `ostree/repo`, `var/lib/flatpak/repo`), such as the ones
//!   [`usb::UsbDestination`] (`ostree create-usb`) writes. The mounts are an explicit list of
//!   roots; [`mount::system_mount_roots`] gives the ones GLib's Unix volume monitor would.
//! * ostree's `lan` finder (Avahi/DNS-SD) is not implemented: [`parse_finder_names`] refuses it
//!   with [`LAN_UNSUPPORTED`].
//!
//! [`find_remotes`] then checks every claim against the remote's summary, keeps for each ref
//! only the remotes that have its newest commit (by commit timestamp) and ranks the results as
//! ostree does ([`compare_results`]: priority, then summary age, then number of refs, then
//! name). [`pull_from_remotes`] pulls each ref from the first result that has it, trying the
//! next ones on failure, with GPG verification of every commit against the keyring of the
//! remote configured for the collection.

pub mod config;
pub mod mount;
pub mod usb;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::gvariant::Variant;
use crate::pull::{PullOptions, PullStats};
use crate::registry::Registry;
use crate::repo::Repo;
use crate::repo::refs::{CollectionRef, validate_collection_id, validate_ref_name};
use crate::repo::remote::Remote;
use crate::repo::summary::{KEY_LAST_MODIFIED, Summary, SummaryRef};
use crate::sign::policy::PullVerification;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// What `--finders=lan` (or a `lan` in `core.default-repo-finders`) gets: this implementation
/// has no LAN (Avahi) finder. The words are those of an ostree built without Avahi.
pub const LAN_UNSUPPORTED: &str =
    "LAN repo finder requested but ostree was compiled without Avahi support";

/// One remote a finder found, and the refs it claims to have.
#[derive(Clone, Debug)]
pub struct FinderResult {
    /// The remote: a configured one, or a dynamic one made up by the finder (not in the
    /// configuration; `url`, `gpg-verify=true`, `gpg-verify-summary=false`).
    pub remote: Remote,
    /// The GPG keyring file commits from it are verified with (`NAME.trustedkeys.gpg`).
    pub keyring: String,
    /// For a dynamic remote, the configured remote it stands for (whose keyring it uses,
    /// whose `collection-id` filters its summary, under whose name pulled refs land):
    /// ostree's `refspec_name`.
    pub refspec_name: Option<String>,
    /// The finder's name as ostree prints it (`OstreeRepoFinderConfig`).
    pub finder: &'static str,
    /// Lower is better.
    pub priority: i32,
    /// The refs asked for, in the order asked, each with the commit this remote has for it
    /// (`None`: it does not have it, or not the newest one).
    pub ref_to_checksum: Vec<(CollectionRef, Option<Checksum>)>,
    /// After [`find_remotes`]: the commit timestamp of each ref this result has.
    pub ref_to_timestamp: Vec<(CollectionRef, u64)>,
    /// `ostree.summary.last-modified` of the remote's summary (0: unknown).
    pub summary_last_modified: u64,
}

impl FinderResult {
    /// How many refs this result has a commit for.
    pub fn n_refs(&self) -> usize {
        self.ref_to_checksum
            .iter()
            .filter(|(_, c)| c.is_some())
            .count()
    }

    /// The indices of `ref_to_checksum` in the order ostree prints them (the iteration order
    /// of its hash table of collection–refs).
    pub fn display_order(&self) -> Vec<usize> {
        let refs: Vec<&CollectionRef> = self.ref_to_checksum.iter().map(|(r, _)| r).collect();
        collection_ref_table_order(&refs)
    }
}

/// The iteration order of a GLib hash table of collection–refs inserted in this order
/// (`ostree_collection_ref_hash`): what ostree's output follows.
pub fn collection_ref_table_order(refs: &[&CollectionRef]) -> Vec<usize> {
    use crate::repo::summary::g_str_hash;
    let hashes: Vec<u32> = refs
        .iter()
        .map(|r| g_str_hash(&r.collection_id) ^ g_str_hash(&r.ref_name))
        .collect();
    crate::repo::summary::ghash_iteration_order(&hashes, |a, b| refs[a] == refs[b])
}

/// Rank two results (`ostree_repo_finder_result_compare`): lower priority value first; then,
/// when both summaries have a (different) last-modified time, the older first; then fewer
/// refs first; then by remote name. As in ostree, the time difference is taken modulo 2³²
/// (a `guint64` difference returned as a `gint`).
pub fn compare_results(a: &FinderResult, b: &FinderResult) -> Ordering {
    if a.priority != b.priority {
        return a.priority.cmp(&b.priority);
    }
    let (la, lb) = (a.summary_last_modified, b.summary_last_modified);
    if la != 0 && lb != 0 && la != lb {
        return (la.wrapping_sub(lb) as u32 as i32).cmp(&0);
    }
    let (na, nb) = (a.n_refs(), b.n_refs());
    if na != nb {
        return na.cmp(&nb);
    }
    a.remote.name.cmp(&b.remote.name)
}

/// Something that finds remotes for collection–refs (`OstreeRepoFinder`).
#[async_trait]
pub trait RepoFinder: Send + Sync + std::fmt::Debug {
    /// The name ostree prints for results of this finder (`OstreeRepoFinderConfig`).
    fn name(&self) -> &'static str;

    /// The remotes claiming some of `refs` (valid collection–refs, non-empty), for the
    /// repository `repo`; sorted by [`compare_results`]. `opts` carries what reaching a remote
    /// needs (remotes directory, registry, headers, retries).
    async fn resolve(
        &self,
        refs: &[CollectionRef],
        repo: &Repo,
        opts: &PullOptions,
    ) -> Result<Vec<FinderResult>>;
}

/// Which finders to use: `config`, `mount` (with [`mount::system_mount_roots`]); `lan` is
/// refused ([`LAN_UNSUPPORTED`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinderKind {
    /// [`config::ConfigFinder`].
    Config,
    /// [`mount::MountFinder`].
    Mount,
    /// ostree's Avahi finder (not available here).
    Lan,
}

impl FinderKind {
    /// The finder of this kind; `None` for `lan`.
    pub fn build(self) -> Option<Box<dyn RepoFinder>> {
        match self {
            FinderKind::Config => Some(Box::new(config::ConfigFinder)),
            FinderKind::Mount => Some(Box::new(mount::MountFinder::system())),
            FinderKind::Lan => None,
        }
    }
}

/// Parse finder names (`config`, `lan`, `mount`), each at most once, in the order given
/// (`--finders=config,mount`): an empty list, an unknown or a repeated name is an error
/// worded as ostree's.
pub fn parse_finder_names(names: &[&str]) -> Result<Vec<FinderKind>> {
    if names.is_empty() {
        return Err(Error::invalid(
            "List of finders in --finders option must not be empty",
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let k = match *n {
            "config" => Some(FinderKind::Config),
            "lan" => Some(FinderKind::Lan),
            "mount" => Some(FinderKind::Mount),
            _ => None,
        };
        match k {
            Some(k) if !out.contains(&k) => out.push(k),
            _ => {
                return Err(Error::invalid(format!(
                    "Unknown or duplicate finder type given in --finders option: ‘{n}’"
                )));
            }
        }
    }
    Ok(out)
}

/// The repository's default finders (`core.default-repo-finders`, default `config;mount`).
/// `lan` is left out (this implementation has none), as ostree leaves out an Avahi finder
/// whose daemon is not running.
pub fn default_finder_kinds(repo: &Repo) -> Result<Vec<FinderKind>> {
    let kf = repo.config().keyfile;
    let Some(list) = kf.get_list("core", "default-repo-finders") else {
        return Ok(vec![FinderKind::Config, FinderKind::Mount]);
    };
    if list.is_empty() {
        return Err(Error::invalid(
            "Invalid empty default-repo-finders configuration",
        ));
    }
    let mut out = Vec::new();
    for n in &list {
        let k = match n.as_str() {
            "config" => FinderKind::Config,
            "mount" => FinderKind::Mount,
            "lan" => continue,
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid configured repo-finder '{n}'"
                )));
            }
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Check a list of collection–refs as ostree's finders require it.
fn check_refs(refs: &[CollectionRef]) -> Result<()> {
    if refs.is_empty() {
        return Err(Error::invalid("No collection–refs to find remotes for"));
    }
    for r in refs {
        validate_collection_id(&r.collection_id)?;
        validate_ref_name(&r.ref_name)?;
    }
    Ok(())
}

/// Run every finder (concurrently) and merge their results, ranked
/// (`ostree_repo_finder_resolve_all_async`). A finder that fails is left out.
pub async fn resolve_all(
    finders: &[Box<dyn RepoFinder>],
    refs: &[CollectionRef],
    repo: &Repo,
    opts: &PullOptions,
) -> Result<Vec<FinderResult>> {
    check_refs(refs)?;
    let runs = finders.iter().map(|f| f.resolve(refs, repo, opts));
    let mut out = Vec::new();
    // A finder that fails is left out (ostree logs it with g_debug).
    for mut v in futures::future::join_all(runs).await.into_iter().flatten() {
        out.append(&mut v);
    }
    out.sort_by(compare_results);
    Ok(out)
}

/// Options of [`find_remotes`].
#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    /// How remotes are reached (remotes directory, registry, headers, retries).
    pub pull: PullOptions,
    /// `override-commit-ids`: the commit to use for each ref (parallel to the refs), instead
    /// of the newest one the remotes have.
    pub override_commit_ids: Option<Vec<Checksum>>,
}

/// What one commit pointed to by some result is known by.
#[derive(Debug)]
struct CommitMeta {
    checksum: Checksum,
    size: u64,
    timestamp: u64,
    /// Indices of the refs pointing to it on some result.
    refs: Vec<usize>,
}

/// A signature policy for pulling (or checking commits) from a result: GPG, always, with
/// the keyring of the remote the result uses (`gpg-verify=true`, `gpg-verify-summary=false`,
/// no signapi, as `ostree_repo_pull_from_remotes_async` sets).
pub async fn result_verification(
    repo: &Repo,
    result: &FinderResult,
    opts: &PullOptions,
) -> Result<PullVerification> {
    use crate::sign::VerifierConfig;
    use crate::sign::policy::{GPG, GpgScope, find_remote_keyring, global_gpg_dir};
    let registry = opts.registry.unwrap_or_else(Registry::global);
    let cfg = match &result.refspec_name {
        // A configured remote: its keyring and `gpgkeypath`, as any pull from it.
        None => {
            crate::sign::policy::gpg_verifier_config(
                repo,
                &opts.remotes_dir,
                GpgScope::Remote(&result.remote.name),
                None,
                None,
            )
            .await?
        }
        // A dynamic remote: the keyring of the remote it stands for (the dynamic remote has
        // no `gpgkeypath` of its own), else the global keyring directory.
        Some(name) => {
            let mut cfg = VerifierConfig::default();
            let keyring_remote = repo.remote(&opts.remotes_dir, name).await?;
            match find_remote_keyring(repo, &opts.remotes_dir, &keyring_remote).await? {
                Some(data) => cfg.key_data.push(data.to_vec()),
                None => {
                    if let Some(g) = global_gpg_dir() {
                        cfg.key_dirs.push(g);
                    }
                }
            }
            cfg
        }
    };
    Ok(PullVerification {
        remote: result.remote.name.clone(),
        gpg: Some(registry.build_verifier(GPG, &cfg)?),
        gpg_commits: true,
        gpg_summary: false,
        commit: None,
        summary: None,
        gpg_reports: Default::default(),
    })
}

/// The summary of a result's remote, checked as `ostree_repo_remote_fetch_summary` checks it
/// (`gpg-verify-summary`, `sign-verify-summary` of a configured remote). `None`: it has none.
pub async fn fetch_result_summary(
    repo: &Repo,
    remote: &Remote,
    configured: bool,
    opts: &PullOptions,
) -> Result<Option<Bytes>> {
    let src = crate::pull::source_for_remote(repo, remote, opts).await?;
    let max = crate::pull::source::MAX_METADATA_SIZE;
    let summary = src.file("summary", max).await?;
    let needs_check = configured
        && (remote.get_bool("gpg-verify-summary", false)?
            || remote.get("sign-verify-summary").is_some());
    if needs_check {
        let Some(s) = &summary else {
            return Err(Error::Other(
                "GPG verification enabled, but no summary found (check that the configured URL in remote config is correct)".into(),
            ));
        };
        let sig = src.file("summary.sig", max).await?;
        let v = PullVerification::for_remote(
            repo,
            &opts.remotes_dir,
            remote,
            None,
            None,
            opts.registry,
        )
        .await?;
        v.verify_summary(s, sig.as_deref())?;
    }
    Ok(summary)
}

/// A valid `g_date_time_new_from_unix_utc` time (years 1 to 9999), else 0.
fn valid_time(t: u64) -> u64 {
    if (t as i64) < 253_402_300_800 && (t as i64) >= -62_135_596_800 {
        t
    } else {
        0
    }
}

/// `%FT%TZ` of a Unix time, or `invalid` (GLib's range is years 1 to 9999).
pub fn iso8601(secs: u64) -> String {
    if valid_time(secs) != secs {
        return "invalid".into();
    }
    let s = crate::repo::remote::format_utc(secs as i64);
    format!("{}T{}Z", &s[..10], &s[11..19])
}

/// Whether remote `name` has `collection-id` equal to `id` (`check_remote_matches_collection_id`).
async fn remote_has_collection_id(repo: &Repo, opts: &PullOptions, name: &str, id: &str) -> bool {
    match repo.remote(&opts.remotes_dir, name).await {
        Ok(r) => r
            .get("collection-id")
            .is_some_and(|c| !c.is_empty() && c == id),
        Err(_) => false,
    }
}

/// The state of [`find_remotes`]: the table of which result has which commit for which ref.
struct Table {
    /// `cells[result][ref]`: index into `commits`.
    cells: Vec<Vec<Option<usize>>>,
    commits: Vec<CommitMeta>,
    by_checksum: HashMap<Checksum, usize>,
}

impl Table {
    /// Record the refs of one summary list (`find_remotes_process_refs`); `false` when the
    /// list contradicts what other summaries or the local repository say (the result is
    /// then dropped).
    async fn process(
        &mut self,
        repo: &Repo,
        refs: &[CollectionRef],
        result: usize,
        collection_id: &str,
        list: &[SummaryRef],
    ) -> bool {
        for sref in list {
            if validate_ref_name(&sref.name).is_err() {
                return false;
            }
            let Ok(csum) = sref.checksum() else {
                return false;
            };
            let Some(ref_index) = refs
                .iter()
                .position(|r| r.collection_id == collection_id && r.ref_name == sref.name)
            else {
                continue;
            };
            let timestamp = valid_time(sref.timestamp().unwrap_or(0));
            let idx = match self.by_checksum.get(&csum) {
                Some(i) => *i,
                None => {
                    let stored = repo.load_commit(&csum).await.map(|c| c.timestamp).ok();
                    self.commits.push(CommitMeta {
                        checksum: csum,
                        size: sref.commit_size,
                        timestamp: stored.unwrap_or(0),
                        refs: Vec::new(),
                    });
                    self.by_checksum.insert(csum, self.commits.len() - 1);
                    self.commits.len() - 1
                }
            };
            let cm = &mut self.commits[idx];
            if cm.timestamp == 0 {
                cm.timestamp = timestamp;
            } else if timestamp != 0 && cm.timestamp != timestamp {
                return false;
            }
            if sref.commit_size != cm.size {
                return false;
            }
            self.cells[result][ref_index] = Some(idx);
            cm.refs.push(ref_index);
        }
        true
    }
}

/// Find the remotes to pull `refs` from (`ostree_repo_find_remotes_async`): run `finders`,
/// read each result's summary, keep for each ref only the results that have its newest
/// commit, and drop results left with none. Results are ranked, best first.
pub async fn find_remotes(
    repo: &Repo,
    refs: &[CollectionRef],
    finders: &[Box<dyn RepoFinder>],
    opts: &FindOptions,
) -> Result<Vec<FinderResult>> {
    if let Some(o) = &opts.override_commit_ids
        && o.len() != refs.len()
    {
        return Err(Error::invalid(
            "override-commit-ids must list one commit per ref",
        ));
    }
    let mut results = resolve_all(finders, refs, repo, &opts.pull).await?;
    if results.is_empty() {
        return Ok(results);
    }
    let n_refs = refs.len();
    let mut table = Table {
        cells: vec![vec![None; n_refs]; results.len()],
        commits: Vec::new(),
        by_checksum: HashMap::new(),
    };
    let mut valid = vec![true; results.len()];
    for (i, result) in results.iter_mut().enumerate() {
        let configured = result.refspec_name.is_none();
        let summary = match fetch_result_summary(repo, &result.remote, configured, &opts.pull).await
        {
            Ok(Some(b)) => b,
            // No summary, or it could not be fetched: ostree ignores the result.
            Ok(None) | Err(_) => {
                valid[i] = false;
                continue;
            }
        };
        let Ok(summary) = Summary::from_bytes(&summary) else {
            valid[i] = false;
            continue;
        };
        if let Some(cid) = summary.collection_id()
            && !table.process(repo, refs, i, cid, &summary.refs).await
        {
            valid[i] = false;
            continue;
        }
        for (cid, list) in summary.collection_map().unwrap_or_default() {
            // A dynamic remote only serves the collection of the remote it stands for.
            if let Some(rs) = &result.refspec_name
                && !remote_has_collection_id(repo, &opts.pull, rs, &cid).await
            {
                continue;
            }
            if !table.process(repo, refs, i, &cid, &list).await {
                valid[i] = false;
                break;
            }
        }
        if !valid[i] {
            continue;
        }
        result.summary_last_modified = summary
            .metadata
            .get(KEY_LAST_MODIFIED)
            .and_then(Variant::as_u64)
            .map(u64::from_be)
            .unwrap_or(0);
    }

    fill_missing_timestamps(repo, &results, &valid, &mut table, &opts.pull).await?;

    // The newest commit of each ref over all results (the first one in rank order on ties).
    let mut latest: Vec<Option<usize>> = vec![None; n_refs];
    if opts.override_commit_ids.is_none() {
        for (i, l) in latest.iter_mut().enumerate() {
            for row in &table.cells {
                if let Some(c) = row[i]
                    && l.is_none_or(|b| table.commits[c].timestamp > table.commits[b].timestamp)
                {
                    *l = Some(c);
                }
            }
        }
    }

    let mut out = Vec::new();
    for (j, mut result) in results.into_iter().enumerate() {
        if !valid[j] {
            continue;
        }
        let mut ref_to_checksum = Vec::with_capacity(n_refs);
        let mut ref_to_timestamp = Vec::with_capacity(n_refs);
        match &opts.override_commit_ids {
            Some(ids) => {
                for (r, c) in refs.iter().zip(ids) {
                    ref_to_checksum.push((r.clone(), Some(*c)));
                    ref_to_timestamp.push((r.clone(), 0));
                }
            }
            None => {
                for (i, r) in refs.iter().enumerate() {
                    let have = latest[i].filter(|l| table.cells[j][i] == Some(*l));
                    ref_to_checksum.push((r.clone(), have.map(|c| table.commits[c].checksum)));
                    ref_to_timestamp
                        .push((r.clone(), have.map_or(0, |c| table.commits[c].timestamp)));
                }
                if ref_to_checksum.iter().all(|(_, c)| c.is_none()) {
                    // None of its refs is new enough.
                    continue;
                }
            }
        }
        result.ref_to_checksum = table_insert_all(ref_to_checksum);
        result.ref_to_timestamp = table_insert_all(ref_to_timestamp);
        out.push(result);
    }
    out.sort_by(compare_results);
    Ok(out)
}

/// Entries inserted one by one into a hash table keyed by collection–ref: a ref asked for
/// twice keeps its first place and takes the later value (ostree's `g_hash_table_insert`;
/// only the first of equal refs ever gets a commit, so such a ref reads as not found).
fn table_insert_all<T>(entries: Vec<(CollectionRef, T)>) -> Vec<(CollectionRef, T)> {
    let mut out: Vec<(CollectionRef, T)> = Vec::with_capacity(entries.len());
    for (r, v) in entries {
        match out.iter_mut().find(|(o, _)| *o == r) {
            Some(e) => e.1 = v,
            None => out.push((r, v)),
        }
    }
    out
}

/// For head commits whose summaries gave no timestamp (and which are not stored locally),
/// fetch the commit from a result that lists it, check its GPG signature with that result's
/// keyring, and take its timestamp. (ostree 2022.7 means to do this, but checks the signature
/// of the *local* copy, which by then is known not to exist; this does what it means.)
async fn fill_missing_timestamps(
    repo: &Repo,
    results: &[FinderResult],
    valid: &[bool],
    table: &mut Table,
    opts: &PullOptions,
) -> Result<()> {
    for ci in 0..table.commits.len() {
        if table.commits[ci].timestamp != 0 {
            continue;
        }
        let csum = table.commits[ci].checksum;
        let mut found: Option<u64> = None;
        'refs: for &ref_index in &table.commits[ci].refs {
            for (j, result) in results.iter().enumerate() {
                if !valid[j] || table.cells[j][ref_index] != Some(ci) {
                    continue;
                }
                let src = crate::pull::source_for_remote(repo, &result.remote, opts).await?;
                let Some(bytes) = src.meta(&ObjectKey::new(csum, ObjectType::Commit)).await? else {
                    continue;
                };
                let detached = src
                    .meta(&ObjectKey::new(csum, ObjectType::CommitMeta))
                    .await?
                    .map(|b| crate::sign::parse_signature_metadata(&b));
                let v = result_verification(repo, result, opts).await?;
                v.verify_commit(&csum, &bytes, detached.as_ref())?;
                let commit = crate::objects::Commit::from_bytes(&bytes)?;
                found = Some(valid_time(commit.timestamp));
                break 'refs;
            }
        }
        match found {
            Some(t) => table.commits[ci].timestamp = t,
            None => {
                return Err(Error::Other(format!(
                    "Metadata not found for commit ‘{csum}’"
                )));
            }
        }
    }
    Ok(())
}

/// Options of [`pull_from_remotes`].
#[derive(Clone, Debug, Default)]
pub struct PullFromRemotesOptions {
    /// Template for each pull (remotes directory, registry, depth, headers, retries,
    /// `mirror`, `disable_static_deltas`, `subdirs`…). Refs, commits, collection IDs, the
    /// signature policy and `untrusted` are set per result.
    pub pull: PullOptions,
}

/// What [`pull_from_remotes`] did.
#[derive(Debug, Default)]
pub struct PullFromRemotesReport {
    /// Each pull that succeeded: the remote's name and its statistics.
    pub pulls: Vec<(String, PullStats)>,
    /// Each pull that failed: the remote's name and why (its refs were then tried on the
    /// next results).
    pub failures: Vec<(String, Error)>,
}

/// Pull the refs of `results` (as [`find_remotes`] ranked them), each ref from the first
/// result that has it and from the next ones if that fails
/// (`ostree_repo_pull_from_remotes_async`). Commits are always GPG-verified with the result's
/// keyring; objects from local repositories are verified too (`untrusted`). Refs land in
/// `refs/remotes/REMOTE/` (the configured remote, also for dynamic ones), or as
/// collection–refs when mirroring. Fails, naming them, if some refs were tried and none of
/// their results delivered them.
pub async fn pull_from_remotes(
    repo: &Repo,
    results: &[FinderResult],
    opts: &PullFromRemotesOptions,
) -> Result<PullFromRemotesReport> {
    let mut pulled: Vec<(CollectionRef, bool)> = Vec::new();
    let mut report = PullFromRemotesReport::default();
    for result in results {
        let to_pull: Vec<(CollectionRef, Checksum)> = result
            .ref_to_checksum
            .iter()
            .filter_map(|(r, c)| c.map(|c| (r.clone(), c)))
            .filter(|(r, _)| !pulled.iter().any(|(p, ok)| p == r && *ok))
            .collect();
        if to_pull.is_empty() {
            continue;
        }
        let verification = match result_verification(repo, result, &opts.pull).await {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                mark(&mut pulled, &to_pull, false);
                report.failures.push((result.remote.name.clone(), e));
                continue;
            }
        };
        let popts = PullOptions {
            refs: to_pull.iter().map(|(r, _)| r.ref_name.clone()).collect(),
            override_commits: to_pull.iter().map(|(_, c)| Some(*c)).collect(),
            collection_ids: to_pull
                .iter()
                .map(|(r, _)| Some(r.collection_id.clone()))
                .collect(),
            untrusted: true,
            gpg_verify: Some(true),
            gpg_verify_summary: Some(false),
            verification,
            ref_remote: result.refspec_name.clone(),
            ..opts.pull.clone()
        };
        match crate::pull::pull_remote(repo, result.remote.clone(), popts).await {
            Ok(stats) => {
                mark(&mut pulled, &to_pull, true);
                report.pulls.push((result.remote.name.clone(), stats));
            }
            Err(e) => {
                mark(&mut pulled, &to_pull, false);
                report.failures.push((result.remote.name.clone(), e));
            }
        }
    }
    let keys: Vec<&CollectionRef> = pulled.iter().map(|(r, _)| r).collect();
    let missing: Vec<String> = collection_ref_table_order(&keys)
        .into_iter()
        .filter(|&i| !pulled[i].1)
        .map(|i| format!("({}, {})", pulled[i].0.collection_id, pulled[i].0.ref_name))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Other(format!(
            "Failed to pull some refs from the remotes: {}",
            missing.join(", ")
        )));
    }
    Ok(report)
}

fn mark(pulled: &mut Vec<(CollectionRef, bool)>, refs: &[(CollectionRef, Checksum)], ok: bool) {
    for (r, _) in refs {
        match pulled.iter_mut().find(|(p, _)| p == r) {
            Some(e) => e.1 = ok,
            None => pulled.push((r.clone(), ok)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::KeyFile;

    fn result(name: &str, priority: i32, modified: u64, n: usize) -> FinderResult {
        FinderResult {
            remote: Remote {
                name: name.into(),
                options: KeyFile::new(),
                file: None,
            },
            keyring: format!("{name}.trustedkeys.gpg"),
            refspec_name: None,
            finder: "OstreeRepoFinderConfig",
            priority,
            ref_to_checksum: (0..n)
                .map(|i| {
                    (
                        CollectionRef::new("org.example.C", format!("r{i}")),
                        Some(Checksum([i as u8; 32])),
                    )
                })
                .collect(),
            ref_to_timestamp: Vec::new(),
            summary_last_modified: modified,
        }
    }

    #[test]
    fn ranking_follows_ostree() {
        // Priority first (lower is better).
        assert_eq!(
            compare_results(&result("b", 50, 0, 1), &result("a", 100, 0, 1)),
            Ordering::Less
        );
        // Both summary times known: the older first.
        assert_eq!(
            compare_results(&result("a", 100, 20, 3), &result("b", 100, 10, 1)),
            Ordering::Greater
        );
        // One unknown: by number of refs (fewer first), then name.
        assert_eq!(
            compare_results(&result("a", 100, 0, 3), &result("b", 100, 10, 1)),
            Ordering::Greater
        );
        assert_eq!(
            compare_results(&result("a", 100, 0, 1), &result("b", 100, 0, 1)),
            Ordering::Less
        );
        // The time difference is truncated to a gint, as in ostree: 2³² − 1 reads as −1.
        assert_eq!(
            compare_results(&result("a", 100, 1 << 32, 1), &result("b", 100, 1, 1)),
            Ordering::Less
        );
    }

    #[test]
    fn finder_names() {
        assert_eq!(
            parse_finder_names(&["mount", "config"]).expect("valid"),
            vec![FinderKind::Mount, FinderKind::Config]
        );
        for bad in [&["config", "config"][..], &["usb"][..], &[][..]] {
            assert!(parse_finder_names(bad).is_err(), "{bad:?}");
        }
        assert!(FinderKind::Lan.build().is_none());
    }

    #[test]
    fn iso_times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_600_000_000), "2020-09-13T12:26:40Z");
        // A guint64 read as a gint64, as GLib gets it: −1 is valid, year 10000 is not.
        assert_eq!(iso8601(u64::MAX), "1969-12-31T23:59:59Z");
        assert_eq!(iso8601(253_402_300_800), "invalid");
    }
}
