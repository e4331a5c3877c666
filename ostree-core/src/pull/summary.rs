//! Reading a remote's `summary` for a pull: refs, collection ID, mode hints and static delta
//! names. (Generating summaries lives with `ostree summary`; this is the client's view.)

use std::collections::BTreeMap;

use crate::gvariant::{Variant, VariantType};
use crate::{Checksum, Error, Result};

/// `OSTREE_SUMMARY_GVARIANT_FORMAT`.
pub const SUMMARY_FORMAT: &str = "(a(s(taya{sv}))a{sv})";

/// What a pull needs from a summary.
#[derive(Clone, Debug, Default)]
pub struct RemoteSummary {
    /// Ref name → (commit size, commit checksum).
    pub refs: BTreeMap<String, (u64, Checksum)>,
    /// `ostree.summary.collection-id`.
    pub collection_id: Option<String>,
    /// `ostree.summary.mode`, when published.
    pub mode: Option<String>,
    /// `ostree.summary.tombstone-commits`.
    pub tombstone_commits: bool,
    /// Static delta names listed in `ostree.static-deltas` (`[FROM-]TO`, hex checksums).
    pub deltas: Vec<String>,
    /// The superblock digest each listed delta's `v` holds (meant to be an `ay` of 32
    /// bytes; validated where it is used).
    pub delta_digests: BTreeMap<String, Variant>,
    /// `ostree.summary.indexed-deltas`.
    pub indexed_deltas: bool,
    /// The refs of other collections (`ostree.summary.collection-map`): collection ID → ref
    /// name → (commit size, commit checksum).
    pub collection_map: BTreeMap<String, BTreeMap<String, (u64, Checksum)>>,
    /// The raw additional metadata.
    pub metadata: Vec<(String, Variant)>,
}

/// Parse summary bytes (`Not normal form` / type errors as ostree words them).
pub fn parse_summary(data: &[u8]) -> Result<RemoteSummary> {
    let ty = VariantType::parse(SUMMARY_FORMAT)?;
    let v = Variant::from_bytes_normal(&ty, data)
        .map_err(|e| Error::corrupted(format!("Invalid summary: Not normal form ({e})")))?;
    let f = v.as_tuple().unwrap_or(&[]);
    let bad = || Error::corrupted("Invalid summary");
    let mut out = RemoteSummary::default();
    for r in f.first().and_then(Variant::as_array).ok_or_else(bad)? {
        let (name, entry) = parse_ref_entry(r)?;
        out.refs.insert(name, entry);
    }
    for e in f.get(1).and_then(Variant::as_array).ok_or_else(bad)? {
        let Variant::DictEntry(k, val) = e else {
            return Err(bad());
        };
        let Some(k) = k.as_str() else {
            return Err(bad());
        };
        let inner = val.as_variant().cloned().unwrap_or(Variant::Bool(false));
        match k {
            "ostree.summary.collection-id" => {
                if let Some(s) = inner.as_str() {
                    crate::repo::refs::validate_collection_id(s)?;
                    out.collection_id = Some(s.to_string());
                }
            }
            "ostree.summary.mode" => out.mode = inner.as_str().map(str::to_string),
            "ostree.summary.tombstone-commits" => {
                out.tombstone_commits = inner.as_bool().unwrap_or(false)
            }
            "ostree.summary.indexed-deltas" => {
                out.indexed_deltas = inner.as_bool().unwrap_or(false)
            }
            "ostree.summary.collection-map" => {
                // A value of another type is ignored, as `g_variant_lookup_value` does.
                for e in inner.as_array().unwrap_or(&[]) {
                    let Variant::DictEntry(id, refs) = e else {
                        continue;
                    };
                    let Some(id) = id.as_str() else { continue };
                    crate::repo::refs::validate_collection_id(id)?;
                    let map = out.collection_map.entry(id.to_string()).or_default();
                    for r in refs.as_array().unwrap_or(&[]) {
                        let (name, entry) = parse_ref_entry(r)?;
                        map.insert(name, entry);
                    }
                }
            }
            "ostree.static-deltas" => {
                for d in inner.as_array().unwrap_or(&[]) {
                    if let Variant::DictEntry(dk, dv) = d
                        && let Some(name) = dk.as_str()
                    {
                        out.deltas.push(name.to_string());
                        let v = dv.as_variant().cloned().unwrap_or(Variant::Bool(false));
                        out.delta_digests.insert(name.to_string(), v);
                    }
                }
            }
            _ => {}
        }
        out.metadata.push((k.to_string(), inner));
    }
    Ok(out)
}

/// One `(s(taya{sv}))` ref entry: name, (commit size, commit checksum).
fn parse_ref_entry(r: &Variant) -> Result<(String, (u64, Checksum))> {
    let bad = || Error::corrupted("Invalid summary");
    let t = r.as_tuple().ok_or_else(bad)?;
    let name = t.first().and_then(Variant::as_str).ok_or_else(bad)?;
    crate::repo::refs::validate_ref_name(name)?;
    let d = t.get(1).and_then(Variant::as_tuple).ok_or_else(bad)?;
    let size = d.first().and_then(Variant::as_u64).ok_or_else(bad)?;
    let csum = Checksum::from_bytes(d.get(1).and_then(Variant::as_bytes).ok_or_else(bad)?)?;
    Ok((name.to_string(), (size, csum)))
}

impl RemoteSummary {
    /// The commit a collection–ref points to (`lookup_commit_checksum_and_collection_from_summary`):
    /// in the main list when `collection_id` is `None` or the summary's own, else in the
    /// collection map.
    pub fn lookup(&self, collection_id: Option<&str>, name: &str) -> Option<(u64, Checksum)> {
        match collection_id {
            None => self.refs.get(name).copied(),
            Some(c) if self.collection_id.as_deref() == Some(c) => self.refs.get(name).copied(),
            Some(c) => self.collection_map.get(c)?.get(name).copied(),
        }
    }
}

/// The name of a static delta from `from` (or from scratch) to `to`, as summaries list them.
pub fn delta_name(from: Option<&Checksum>, to: &Checksum) -> String {
    match from {
        Some(f) => format!("{}-{}", f.to_modified_base64(), to.to_modified_base64()),
        None => to.to_modified_base64(),
    }
}
