//! The configured remotes as a finder (`OstreeRepoFinderConfig`): every remote with a valid
//! `collection-id` whose summary lists some of the refs asked for (in that collection) is a
//! result, at priority 100. Remotes whose summary cannot be fetched are left out.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{FinderResult, RepoFinder, compare_results, fetch_result_summary};
use crate::pull::PullOptions;
use crate::repo::Repo;
use crate::repo::refs::{CollectionRef, validate_collection_id, validate_ref_name};
use crate::repo::remote::Remote;
use crate::repo::summary::{Summary, SummaryRef};
use crate::{Checksum, Error, Result};

/// ostree's priority for configured remotes (lower is better; mounts have 50).
pub const PRIORITY: i32 = 100;

/// Finds refs in the configured remotes of a repository.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConfigFinder;

/// The collection–refs a remote's summary lists (`ostree_repo_remote_list_collection_refs`):
/// the main list under the summary's collection ID (refs of a summary without one have no
/// collection and are left out), then every collection of `ostree.summary.collection-map`.
pub async fn remote_list_collection_refs(
    repo: &Repo,
    remote: &Remote,
    configured: bool,
    opts: &PullOptions,
) -> Result<BTreeMap<CollectionRef, Checksum>> {
    let bytes = fetch_result_summary(repo, remote, configured, opts)
        .await?
        .ok_or_else(|| Error::not_found("Remote refs not available; server has no summary file"))?;
    let summary = Summary::from_bytes(&bytes)?;
    let mut out = BTreeMap::new();
    let mut add = |cid: Option<&str>, list: &[SummaryRef]| -> Result<()> {
        for r in list {
            validate_ref_name(&r.name)?;
            let c = r.checksum()?;
            if let Some(cid) = cid {
                out.insert(CollectionRef::new(cid, &r.name), c);
            }
        }
        Ok(())
    };
    add(summary.collection_id(), &summary.refs)?;
    for (cid, list) in summary.collection_map()? {
        add(Some(&cid), &list)?;
    }
    Ok(out)
}

#[async_trait]
impl RepoFinder for ConfigFinder {
    fn name(&self) -> &'static str {
        "OstreeRepoFinderConfig"
    }

    async fn resolve(
        &self,
        refs: &[CollectionRef],
        repo: &Repo,
        opts: &PullOptions,
    ) -> Result<Vec<FinderResult>> {
        let mut results = Vec::new();
        for name in repo.remote_list(&opts.remotes_dir).await? {
            // ostree ignores (with a debug message) remotes without a valid collection ID,
            // whose refs cannot be listed, or that list none of the refs.
            let Ok(remote) = repo.remote(&opts.remotes_dir, &name).await else {
                continue;
            };
            let Some(cid) = remote
                .get("collection-id")
                .filter(|c| validate_collection_id(c).is_ok())
            else {
                continue;
            };
            let Ok(remote_refs) = remote_list_collection_refs(repo, &remote, true, opts).await
            else {
                continue;
            };
            let mut found: Vec<(CollectionRef, Option<Checksum>)> = Vec::new();
            for r in refs {
                if r.collection_id == cid
                    && let Some(c) = remote_refs.get(r)
                    && !found.iter().any(|(f, _)| f == r)
                {
                    found.push((r.clone(), Some(*c)));
                }
            }
            if found.is_empty() {
                continue;
            }
            results.push(FinderResult {
                keyring: remote.keyring(),
                remote,
                refspec_name: None,
                finder: self.name(),
                priority: PRIORITY,
                ref_to_checksum: found,
                ref_to_timestamp: Vec::new(),
                // Unknown without fetching more: find_remotes reads it from the summary.
                summary_last_modified: 0,
            });
        }
        results.sort_by(compare_results);
        Ok(results)
    }
}
