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
    /// refs/remotes). With `allow_noent`, a missing ref is `Ok(None)`.
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
                if v.is_none() && name.contains('/') {
                    // `REMOTE/REF` names refs/remotes/REMOTE/REF (ostree's resolve_refspec).
                    v = store.read_ref(&format!("remotes/{name}")).await?;
                }
                if v.is_none() && fallback_remote {
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

    /// Set (or delete with `None`) a local or remote ref, unconditionally.
    pub async fn set_ref(
        &self,
        remote: Option<&str>,
        name: &str,
        value: Option<Checksum>,
    ) -> Result<()> {
        if let Some(r) = remote {
            validate_remote_name(r)?;
        }
        validate_ref_name(name)?;
        self.store()
            .update_ref(&store_ref_name(remote, name), RefExpect::Any, value)
            .await
    }

    /// Compare-and-swap a local or remote ref.
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
        self.store()
            .update_ref(&store_ref_name(remote, name), expect, value)
            .await
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
