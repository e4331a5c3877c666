//! Refs: name validation, refspec parsing, rev resolution and updates.
//!
//! Store-level ref names are relative to `refs/`: `heads/NAME` for local refs,
//! `remotes/REMOTE/NAME` for refs fetched from a remote, `mirrors/COLLECTION/NAME` for
//! collection mirrors. At this level, a "refspec" is `[REMOTE:]NAME` as ostree's CLI takes it.

use std::collections::BTreeMap;

use super::Repo;
use crate::store::RefExpect;
use crate::{Checksum, Error, ObjectType, Result, checksum};

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn valid_fragment(f: &str) -> bool {
    let mut chars = f.chars();
    match chars.next() {
        Some(c) if is_word_char(c) => {}
        _ => return false,
    }
    chars.all(|c| is_word_char(c) || c == '-' || c == '.')
}

/// Validate a ref name (`OSTREE_REF_REGEXP`): `/`-separated fragments of word characters,
/// `-` and `.`, each starting with a word character.
pub fn validate_ref_name(name: &str) -> Result<()> {
    if !name.is_empty() && name.split('/').all(valid_fragment) {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid ref name {name}")))
    }
}

/// Validate a remote name (one ref fragment).
pub fn validate_remote_name(name: &str) -> Result<()> {
    if valid_fragment(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid remote name {name}")))
    }
}

/// Validate a collection ID (reverse DNS: at least two `.`-separated elements, each starting
/// with a letter or `_` and made of ASCII letters, digits and `_`).
pub fn validate_collection_id(id: &str) -> Result<()> {
    let ok = id.len() <= 255
        && id.split('.').count() >= 2
        && id.split('.').all(|e| {
            let mut c = e.chars();
            matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
                && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid collection ID {id}")))
    }
}

/// Split `[REMOTE:]REF` (ostree_parse_refspec).
pub fn parse_refspec(refspec: &str) -> Result<(Option<String>, String)> {
    let bad = || Error::invalid(format!("Invalid refspec {refspec}"));
    match refspec.split_once(':') {
        Some((remote, r)) => {
            if !valid_fragment(remote) || validate_ref_name(r).is_err() {
                return Err(bad());
            }
            Ok((Some(remote.to_string()), r.to_string()))
        }
        None => {
            validate_ref_name(refspec).map_err(|_| bad())?;
            Ok((None, refspec.to_string()))
        }
    }
}

/// The store-level name of a refspec's ref.
pub fn store_ref_name(remote: Option<&str>, name: &str) -> String {
    match remote {
        Some(r) => format!("remotes/{r}/{name}"),
        None => format!("heads/{name}"),
    }
}

impl Repo {
    /// Resolve a rev the way `ostree_repo_resolve_rev` does: a full checksum as is, a unique
    /// commit checksum prefix, `REV^` for the parent, `[REMOTE:]REF` (local heads first, then
    /// `refs/remotes/REF` and `refs/remotes/*/REF`). With `allow_noent`, a missing ref is
    /// `Ok(None)`.
    pub async fn resolve_rev(&self, rev: &str, allow_noent: bool) -> Result<Option<Checksum>> {
        self.resolve_rev_ext(rev, allow_noent, true).await
    }

    /// Like [`Repo::resolve_rev`], optionally also searching remote refs for a bare name
    /// (`fallback_remote`, as `ostree_repo_resolve_rev_ext`).
    pub async fn resolve_rev_ext(
        &self,
        rev: &str,
        allow_noent: bool,
        fallback_remote: bool,
    ) -> Result<Option<Checksum>> {
        if checksum::is_valid_hex(rev) {
            return Checksum::from_hex(&rev.to_ascii_lowercase()).map(Some);
        }
        if let Some(c) = self.resolve_partial_checksum(rev).await? {
            return Ok(Some(c));
        }
        if let Some(base) = rev.strip_suffix('^') {
            let parent_of =
                Box::pin(self.resolve_rev_ext(base, allow_noent, fallback_remote)).await?;
            let Some(parent_of) = parent_of else {
                return Ok(None);
            };
            let commit = self.load_commit(&parent_of).await?;
            return match commit.parent {
                Some(p) => Ok(Some(p)),
                None => Err(Error::not_found(format!(
                    "Commit {parent_of} has no parent"
                ))),
            };
        }
        let (remote, name) = parse_refspec(rev)?;
        let store = self.store();
        let found = match &remote {
            Some(r) => store.read_ref(&store_ref_name(Some(r), &name)).await?,
            None => {
                let mut v = store.read_ref(&store_ref_name(None, &name)).await?;
                if v.is_none() && fallback_remote {
                    // `REMOTE/REF` names refs/remotes/REMOTE/REF, then any remote's REF
                    // (ostree's resolve_refspec; not for ostree_repo_resolve_rev_ext).
                    v = store.read_ref(&format!("remotes/{name}")).await?;
                    if v.is_none() {
                        for (rname, c) in store.list_refs("remotes/").await? {
                            // remotes/<remote>/<name>
                            if let Some((_, rest)) = rname["remotes/".len()..].split_once('/')
                                && rest == name
                            {
                                v = Some(c);
                                break;
                            }
                        }
                    }
                }
                v
            }
        };
        match found {
            Some(c) => Ok(Some(c)),
            None if allow_noent => Ok(None),
            None => Err(Error::not_found(format!(
                "Refspec '{}{}{}' not found",
                remote.as_deref().unwrap_or(""),
                if remote.is_some() { ":" } else { "" },
                name
            ))),
        }
    }

    /// A unique commit whose checksum starts with `prefix` (hex only, < 64 chars).
    pub async fn resolve_partial_checksum(&self, prefix: &str) -> Result<Option<Checksum>> {
        if prefix.is_empty()
            || prefix.len() >= 64
            || !prefix
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Ok(None);
        }
        let matches = self.list_commits_starting_with(prefix).await?;
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.into_iter().next()),
            _ => Err(Error::invalid(format!("Refspec {prefix} not unique"))),
        }
    }

    /// Commit objects whose checksum starts with `prefix`.
    pub async fn list_commits_starting_with(&self, prefix: &str) -> Result<Vec<Checksum>> {
        use futures::StreamExt;
        let mut out = Vec::new();
        let mut s = self.store().list(Some(ObjectType::Commit));
        while let Some(k) = s.next().await {
            let k = k?;
            if k.ty == ObjectType::Commit && k.checksum.to_hex().starts_with(prefix) {
                out.push(k.checksum);
            }
        }
        Ok(out)
    }

    /// All refs as ostree's CLI lists them: local heads as `NAME`, remote refs as
    /// `REMOTE:NAME`, optionally restricted to those under `prefix` (a refspec prefix).
    pub async fn list_refs(&self, prefix: Option<&str>) -> Result<BTreeMap<String, Checksum>> {
        let mut out = BTreeMap::new();
        for (name, c) in self.store().list_refs("heads/").await? {
            out.insert(name["heads/".len()..].to_string(), c);
        }
        for (name, c) in self.store().list_refs("remotes/").await? {
            let rest = &name["remotes/".len()..];
            if let Some((remote, r)) = rest.split_once('/') {
                out.insert(format!("{remote}:{r}"), c);
            }
        }
        if let Some(p) = prefix {
            let p = p.trim_end_matches('/');
            out.retain(|k, _| k == p || k.starts_with(&format!("{p}/")));
        }
        Ok(out)
    }

    /// Set (or delete with `None`) a local or remote ref, unconditionally. Regenerates the
    /// summary afterwards when `core.auto-update-summary` is set.
    pub async fn set_ref(
        &self,
        remote: Option<&str>,
        name: &str,
        value: Option<Checksum>,
    ) -> Result<()> {
        self.update_ref(remote, name, RefExpect::Any, value).await
    }

    /// Compare-and-swap a local or remote ref. Regenerates the summary afterwards when
    /// `core.auto-update-summary` is set.
    pub async fn update_ref(
        &self,
        remote: Option<&str>,
        name: &str,
        expect: RefExpect,
        value: Option<Checksum>,
    ) -> Result<()> {
        if let Some(r) = remote {
            validate_remote_name(r)?;
        }
        validate_ref_name(name)?;
        if value.is_some() {
            check_writable_ref_name(name)?;
        }
        self.store()
            .update_ref(&store_ref_name(remote, name), expect, value)
            .await?;
        self.maybe_regenerate_summary().await
    }

    /// The refs under a refspec prefix, as `ostree_repo_list_refs_ext` lists them: without a
    /// prefix every local ref (`NAME`) and, unless `exclude_remotes`, every remote ref
    /// (`REMOTE:NAME`). A prefix (`PATH`, `REMOTE:PATH`, `REMOTE:` or `REMOTE:.`) selects one
    /// ref or a directory of refs; with `cut_prefix` (`ostree_repo_list_refs`) the names found
    /// under a directory prefix lose that prefix (a remote keeps its `REMOTE:`).
    pub async fn list_refs_ext(
        &self,
        prefix: Option<&str>,
        cut_prefix: bool,
        exclude_remotes: bool,
    ) -> Result<BTreeMap<String, Checksum>> {
        let mut out = BTreeMap::new();
        match prefix {
            None => {
                for (name, c) in self.store().list_refs("heads/").await? {
                    out.insert(name["heads/".len()..].to_string(), c);
                }
                if !exclude_remotes {
                    for (name, c) in self.store().list_refs("remotes/").await? {
                        if let Some((remote, r)) = name["remotes/".len()..].split_once('/') {
                            out.insert(format!("{remote}:{r}"), c);
                        }
                    }
                }
            }
            Some(p) => {
                let loc = PrefixLocation::parse(p, exclude_remotes)?;
                let found = self.store().list_refs(&loc.store_path()).await?;
                for (name, c) in found {
                    if let Some(k) = loc.key_for(&name, cut_prefix) {
                        out.insert(k, c);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Alias refs (`ostree refs --alias`), as `ostree_repo_list_refs_ext` with
    /// `OSTREE_REPO_LIST_REFS_EXT_ALIASES` lists them: alias name (as in
    /// [`Repo::list_refs_ext`] without cutting) to the aliased ref's name.
    pub async fn list_ref_aliases(&self, prefix: Option<&str>) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        match prefix {
            None => {
                for (name, t) in self.store().list_ref_aliases("heads/").await? {
                    out.insert(name["heads/".len()..].to_string(), t);
                }
                for (name, t) in self.store().list_ref_aliases("remotes/").await? {
                    if let Some((remote, r)) = name["remotes/".len()..].split_once('/') {
                        out.insert(format!("{remote}:{r}"), t);
                    }
                }
            }
            Some(p) => {
                let loc = PrefixLocation::parse(p, false)?;
                for (name, t) in self.store().list_ref_aliases(&loc.store_path()).await? {
                    if let Some(k) = loc.key_for(&name, false) {
                        out.insert(k, t);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Make the local ref `name` an alias of the local ref `target`
    /// (`ostree_repo_set_alias_ref_immediate`): reading `name` then yields `target`'s commit.
    pub async fn set_ref_alias(&self, name: &str, target: &str) -> Result<()> {
        validate_ref_name(name)?;
        check_writable_ref_name(name)?;
        validate_ref_name(target)?;
        self.store()
            .set_ref_alias(&store_ref_name(None, name), target)
            .await?;
        self.maybe_regenerate_summary().await
    }

    // ------------------------------------------------------------------ collection refs

    /// Collection–refs (`ostree_repo_list_collection_refs`): the local refs under the
    /// repository's own `core.collection-id` (none without one), the mirrors in
    /// `refs/mirrors/COLLECTION/` and the refs of remotes that have a `collection-id`,
    /// optionally only those of `match_collection_id`.
    pub async fn list_collection_refs(
        &self,
        match_collection_id: Option<&str>,
        filter: CollectionRefFilter,
    ) -> Result<BTreeMap<CollectionRef, Checksum>> {
        if let Some(id) = match_collection_id {
            validate_collection_id(id)?;
        }
        let wanted = |id: &str| match_collection_id.is_none_or(|m| m == id);
        let mut out = BTreeMap::new();
        if let Some(main) = self.collection_id()
            && wanted(&main)
        {
            for (name, c) in self.store().list_refs("heads/").await? {
                out.insert(CollectionRef::new(&main, &name["heads/".len()..]), c);
            }
        }
        if !filter.exclude_mirrors {
            for (name, c) in self.store().list_refs("mirrors/").await? {
                if let Some((id, r)) = name["mirrors/".len()..].split_once('/')
                    && wanted(id)
                {
                    out.insert(CollectionRef::new(id, r), c);
                }
            }
        }
        if !filter.exclude_remotes {
            let dir = super::remote::RemotesDir::detect(self);
            let mut ids: std::collections::HashMap<String, Option<String>> = Default::default();
            for (name, c) in self.store().list_refs("remotes/").await? {
                let Some((remote, r)) = name["remotes/".len()..].split_once('/') else {
                    continue;
                };
                if !ids.contains_key(remote) {
                    // Remotes without a valid collection ID are skipped, as ostree does.
                    let id = match self.remote(&dir, remote).await {
                        Ok(rem) => rem
                            .get("collection-id")
                            .filter(|id| validate_collection_id(id).is_ok()),
                        Err(_) => None,
                    };
                    ids.insert(remote.to_string(), id);
                }
                if let Some(Some(id)) = ids.get(remote)
                    && wanted(id)
                {
                    out.insert(CollectionRef::new(id, r), c);
                }
            }
        }
        Ok(out)
    }

    /// Resolve a collection–ref (`ostree_repo_resolve_collection_ref`): the local refs of the
    /// repository's collection, then (unless `local_only`) mirrors and remotes.
    pub async fn resolve_collection_ref(
        &self,
        cref: &CollectionRef,
        allow_noent: bool,
        local_only: bool,
    ) -> Result<Option<Checksum>> {
        let filter = CollectionRefFilter {
            exclude_remotes: local_only,
            exclude_mirrors: local_only,
        };
        let refs = self
            .list_collection_refs(Some(&cref.collection_id), filter)
            .await?;
        match refs.get(cref) {
            Some(c) => Ok(Some(*c)),
            None if allow_noent => Ok(None),
            None => Err(Error::not_found(format!(
                "Collection–ref ({}, {}) not found",
                cref.collection_id, cref.ref_name
            ))),
        }
    }

    /// Set (or delete with `None`) a collection–ref (`ostree_repo_set_collection_ref_immediate`):
    /// under `refs/heads/` for the repository's own collection, `refs/mirrors/COLLECTION/`
    /// otherwise.
    pub async fn set_collection_ref(
        &self,
        cref: &CollectionRef,
        value: Option<Checksum>,
    ) -> Result<()> {
        validate_collection_id(&cref.collection_id)?;
        validate_ref_name(&cref.ref_name)?;
        if value.is_some() {
            check_writable_ref_name(&cref.ref_name)?;
        }
        self.store()
            .update_ref(&self.collection_ref_store_name(cref), RefExpect::Any, value)
            .await?;
        self.maybe_regenerate_summary().await
    }

    /// Where a collection–ref lives, relative to `refs/`.
    pub fn collection_ref_store_name(&self, cref: &CollectionRef) -> String {
        if self.collection_id().as_deref() == Some(cref.collection_id.as_str()) {
            format!("heads/{}", cref.ref_name)
        } else {
            format!("mirrors/{}/{}", cref.collection_id, cref.ref_name)
        }
    }
}

/// Check a commit's ref and collection bindings (`_ostree_repo_verify_bindings`): when the
/// commit has `ostree.ref-binding`, `ref_name` (if given) must be listed; when
/// `collection_id` is given, both bindings must exist and `ostree.collection-binding` must
/// equal it.
pub fn verify_bindings(
    collection_id: Option<&str>,
    ref_name: Option<&str>,
    commit: &crate::objects::Commit,
) -> Result<()> {
    let refs = commit
        .metadata
        .get("ostree.ref-binding")
        .and_then(crate::gvariant::Variant::as_str_array);
    let Some(refs) = refs else {
        if collection_id.is_none() {
            return Ok(());
        }
        return Err(Error::invalid(
            "Expected commit metadata to have ref binding information, found none",
        ));
    };
    if let Some(r) = ref_name
        && !refs.iter().any(|x| x == r)
    {
        let listed = if refs.is_empty() {
            "no refs".to_string()
        } else {
            refs.iter()
                .map(|x| format!("‘{x}’"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::invalid(format!(
            "Commit has no requested ref ‘{r}’ in ref binding metadata ({listed})"
        )));
    }
    if let Some(id) = collection_id {
        let Some(binding) = commit
            .metadata
            .get("ostree.collection-binding")
            .and_then(crate::gvariant::Variant::as_str)
        else {
            return Err(Error::invalid(
                "Expected commit metadata to have collection ID binding information, found none",
            ));
        };
        if binding != id {
            return Err(Error::invalid(format!(
                "Commit has collection ID ‘{binding}’ in collection binding metadata, while the remote it came from has collection ID ‘{id}’"
            )));
        }
    }
    Ok(())
}

/// Check that every ref a commit's bindings name resolves back to it (`fsck
/// --verify-back-refs`).
pub async fn verify_back_refs(
    repo: &Repo,
    checksum: &Checksum,
    commit: &crate::objects::Commit,
) -> Result<()> {
    let collection_id = commit
        .metadata
        .get("ostree.collection-binding")
        .and_then(crate::gvariant::Variant::as_str);
    let Some(refs) = commit
        .metadata
        .get("ostree.ref-binding")
        .and_then(crate::gvariant::Variant::as_str_array)
    else {
        return Ok(());
    };
    for r in refs {
        let found = match collection_id {
            Some(id) => {
                repo.resolve_collection_ref(&CollectionRef::new(id, &r), true, false)
                    .await?
            }
            None => repo.resolve_rev(&r, true).await?,
        };
        let what = match collection_id {
            Some(id) => format!("Collection–ref ({id}, {r})"),
            None => format!("Ref ‘{r}’"),
        };
        match found {
            None => {
                return Err(Error::invalid(format!(
                    "{what} in bindings for commit {checksum} does not exist"
                )));
            }
            Some(c) if c != *checksum => {
                return Err(Error::invalid(format!(
                    "{what} in bindings for commit {checksum} does not resolve to that commit"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Refuse names ostree refuses to write (`write_checksum_file_at`).
fn check_writable_ref_name(name: &str) -> Result<()> {
    if checksum::is_valid_hex(name) {
        return Err(Error::invalid(format!(
            "Rev name '{name}' looks like a checksum"
        )));
    }
    Ok(())
}

/// A collection–ref: a ref name qualified by the globally unique ID of the collection it
/// belongs to (`OstreeCollectionRef`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CollectionRef {
    /// Reverse-DNS collection ID.
    pub collection_id: String,
    /// The ref name within the collection.
    pub ref_name: String,
}

impl CollectionRef {
    /// Build from its two parts (not validated).
    pub fn new(collection_id: impl Into<String>, ref_name: impl Into<String>) -> Self {
        CollectionRef {
            collection_id: collection_id.into(),
            ref_name: ref_name.into(),
        }
    }
}

/// What [`Repo::list_collection_refs`] leaves out (`OSTREE_REPO_LIST_REFS_EXT_EXCLUDE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectionRefFilter {
    /// Leave out refs of remotes.
    pub exclude_remotes: bool,
    /// Leave out `refs/mirrors`.
    pub exclude_mirrors: bool,
}

/// A refspec prefix located in the store (`_ostree_repo_list_refs_internal`).
struct PrefixLocation {
    remote: Option<String>,
    /// Ref path under `heads/` or `remotes/REMOTE/`; `.` for all of a remote.
    ref_prefix: String,
}

impl PrefixLocation {
    fn parse(prefix: &str, exclude_remotes: bool) -> Result<Self> {
        // "REMOTE:" and "REMOTE:." (flatpak) name all refs of a remote.
        if let Some(r) = prefix
            .strip_suffix(":.")
            .or_else(|| prefix.strip_suffix(':'))
            && validate_remote_name(r).is_ok()
        {
            return Ok(PrefixLocation {
                remote: (!exclude_remotes).then(|| r.to_string()),
                ref_prefix: ".".into(),
            });
        }
        let (remote, r) = parse_refspec(prefix)?;
        Ok(PrefixLocation {
            remote: if exclude_remotes { None } else { remote },
            ref_prefix: r,
        })
    }

    fn base(&self) -> String {
        match &self.remote {
            Some(r) => format!("remotes/{r}/"),
            None => "heads/".into(),
        }
    }

    /// The path given to the store's listing.
    fn store_path(&self) -> String {
        if self.ref_prefix == "." {
            self.base()
        } else {
            format!("{}{}", self.base(), self.ref_prefix)
        }
    }

    /// The key ostree gives a store ref found under this prefix.
    fn key_for(&self, store_name: &str, cut_prefix: bool) -> Option<String> {
        let remote = self
            .remote
            .as_ref()
            .map(|r| format!("{r}:"))
            .unwrap_or_default();
        let rel = store_name.strip_prefix(&self.base())?;
        if self.ref_prefix != "." && rel == self.ref_prefix {
            // The prefix names a ref itself.
            return Some(format!("{remote}{rel}"));
        }
        let under = if self.ref_prefix == "." {
            rel
        } else {
            rel.strip_prefix(&self.ref_prefix)?.strip_prefix('/')?
        };
        Some(if cut_prefix {
            format!("{remote}{under}")
        } else {
            format!("{remote}{}/{under}", self.ref_prefix)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in ["main", "a/b/c", "fedora/x86_64-1.0", "_x", "é"] {
            validate_ref_name(ok).unwrap();
        }
        for bad in ["", "/a", "a/", "a//b", "-a", ".a", "a b", "a:b", "a/../b"] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_refspec("origin:main").unwrap(),
            (Some("origin".into()), "main".into())
        );
        assert_eq!(parse_refspec("main").unwrap(), (None, "main".into()));
        assert!(parse_refspec("a:b:c").is_err());
    }
}
