//! The repository `summary` (`(a(s(taya{sv}))a{sv})`) and the static-delta listing it
//! carries (`ostree_repo_regenerate_summary`).
//!
//! Layout (see FORMATS.md §5.1): a refs array sorted by name, each `(name, (commit size,
//! commit checksum, a{sv}))` with the commit size in little-endian (host) order and the
//! `ostree.commit.timestamp` in big-endian order; then the global `a{sv}` (mode, last
//! modification time, tombstone flag, `ostree.static-deltas`, `ostree.summary.indexed-deltas`,
//! collection ID and the refs of other collections in `ostree.summary.collection-map`).
//!
//! Parsing never panics: a summary is fetched from servers, so every field is checked and a
//! malformed one is an [`Error::Corrupted`].

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::Repo;
use super::refs::{CollectionRef, CollectionRefFilter};
use crate::gvariant::{Variant, VariantType};
use crate::objects::Metadata;
use crate::{Checksum, Error, ObjectType, Result};

/// GVariant type of a summary.
pub const SUMMARY_TYPE: &str = "(a(s(taya{sv}))a{sv})";
/// Type of one ref list (the main one, and each collection's in the collection map).
pub const SUMMARY_REFS_TYPE: &str = "a(s(taya{sv}))";

/// Global key: static deltas, delta name → `ay` SHA-256 of the superblock.
pub const KEY_STATIC_DELTAS: &str = "ostree.static-deltas";
/// Global key: last modification time (`t`, big-endian seconds).
pub const KEY_LAST_MODIFIED: &str = "ostree.summary.last-modified";
/// Global key: expiry time (`t`, big-endian seconds).
pub const KEY_EXPIRES: &str = "ostree.summary.expires";
/// Global key: the repository's collection ID (`s`).
pub const KEY_COLLECTION_ID: &str = "ostree.summary.collection-id";
/// Global key: refs of other collections (`a{sa(s(taya{sv}))}`).
pub const KEY_COLLECTION_MAP: &str = "ostree.summary.collection-map";
/// Global key: the repository mode (`s`).
pub const KEY_MODE: &str = "ostree.summary.mode";
/// Global key: whether the repository writes tombstone commits (`b`).
pub const KEY_TOMBSTONE_COMMITS: &str = "ostree.summary.tombstone-commits";
/// Global key: deltas are also listed in `delta-indexes/` (`b`).
pub const KEY_INDEXED_DELTAS: &str = "ostree.summary.indexed-deltas";
/// Per-ref key: commit timestamp (`t`, big-endian).
pub const KEY_COMMIT_TIMESTAMP: &str = "ostree.commit.timestamp";
/// Per-ref key: the commit's `version` metadata (`s`).
pub const KEY_COMMIT_VERSION: &str = "ostree.commit.version";
/// The ref of the metadata commit `summary -u` writes in a repository with a collection ID.
pub const METADATA_REF: &str = "ostree-metadata";

fn ty(s: &str) -> VariantType {
    VariantType::parse(s).expect("static type string")
}

/// One ref of a summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRef {
    /// Ref name (no remote, no collection).
    pub name: String,
    /// Size in bytes of the commit object.
    pub commit_size: u64,
    /// The commit checksum as stored (32 bytes when valid; see [`SummaryRef::checksum`]).
    pub checksum_bytes: Vec<u8>,
    /// Per-ref metadata (`ostree.commit.timestamp`, `ostree.commit.version`…).
    pub metadata: Metadata,
}

impl SummaryRef {
    /// The commit checksum, or an error naming what is wrong with the stored bytes.
    pub fn checksum(&self) -> Result<Checksum> {
        Checksum::from_bytes(&self.checksum_bytes)
    }

    /// The commit timestamp from `ostree.commit.timestamp`, if present and well typed.
    pub fn timestamp(&self) -> Option<u64> {
        self.metadata
            .get(KEY_COMMIT_TIMESTAMP)
            .and_then(Variant::as_u64)
            .map(u64::from_be)
    }

    fn to_variant(&self) -> Variant {
        Variant::Tuple(vec![
            Variant::Str(self.name.clone()),
            Variant::Tuple(vec![
                Variant::U64(self.commit_size),
                Variant::Bytes(self.checksum_bytes.clone()),
                self.metadata.to_variant(),
            ]),
        ])
    }

    fn from_variant(v: &Variant) -> Result<Self> {
        let bad = || Error::corrupted("Invalid summary: malformed ref entry");
        let t = v.as_tuple().ok_or_else(bad)?;
        let name = t.first().and_then(Variant::as_str).ok_or_else(bad)?;
        let inner = t.get(1).and_then(Variant::as_tuple).ok_or_else(bad)?;
        Ok(SummaryRef {
            name: name.to_string(),
            commit_size: inner.first().and_then(Variant::as_u64).ok_or_else(bad)?,
            checksum_bytes: inner
                .get(1)
                .and_then(Variant::as_bytes)
                .ok_or_else(bad)?
                .to_vec(),
            metadata: Metadata::from_variant(inner.get(2).ok_or_else(bad)?)?,
        })
    }
}

fn refs_to_variant(refs: &[SummaryRef]) -> Variant {
    Variant::Array(
        ty("(s(taya{sv}))"),
        refs.iter().map(SummaryRef::to_variant).collect(),
    )
}

fn refs_from_variant(v: &Variant) -> Result<Vec<SummaryRef>> {
    v.as_array()
        .ok_or_else(|| Error::corrupted("Invalid summary: refs are not an array"))?
        .iter()
        .map(SummaryRef::from_variant)
        .collect()
}

/// A parsed summary.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Summary {
    /// The refs of the repository's main collection (or of a repository without one),
    /// sorted by name.
    pub refs: Vec<SummaryRef>,
    /// The global metadata, in stored order.
    pub metadata: Metadata,
}

impl Summary {
    /// Parse summary bytes (never panics; malformed input is [`Error::Corrupted`]).
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let v = Variant::from_bytes(&ty(SUMMARY_TYPE), data)
            .map_err(|e| Error::corrupted(format!("Invalid summary: {e}")))?;
        Self::from_variant(&v)
    }

    /// From a `(a(s(taya{sv}))a{sv})` value.
    pub fn from_variant(v: &Variant) -> Result<Self> {
        let t = v
            .as_tuple()
            .ok_or_else(|| Error::corrupted("Invalid summary: not a tuple"))?;
        let (Some(refs), Some(md)) = (t.first(), t.get(1)) else {
            return Err(Error::corrupted("Invalid summary: missing fields"));
        };
        Ok(Summary {
            refs: refs_from_variant(refs)?,
            metadata: Metadata::from_variant(md)?,
        })
    }

    /// As a variant.
    pub fn to_variant(&self) -> Variant {
        Variant::Tuple(vec![
            refs_to_variant(&self.refs),
            self.metadata.to_variant(),
        ])
    }

    /// Serialize (GVariant normal form).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_variant().to_bytes()
    }

    /// `ostree.summary.collection-id`, if present and a string.
    pub fn collection_id(&self) -> Option<&str> {
        self.metadata
            .get(KEY_COLLECTION_ID)
            .and_then(Variant::as_str)
    }

    /// The refs of other collections (`ostree.summary.collection-map`), in stored order.
    /// A value of the wrong type is ignored, as ostree does.
    pub fn collection_map(&self) -> Result<Vec<(String, Vec<SummaryRef>)>> {
        let Some(map) = self.metadata.get(KEY_COLLECTION_MAP) else {
            return Ok(Vec::new());
        };
        if map.type_() != ty("a{sa(s(taya{sv}))}") {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for e in map.as_array().unwrap_or(&[]) {
            let Variant::DictEntry(k, v) = e else {
                return Err(Error::corrupted(
                    "Invalid summary: malformed collection map",
                ));
            };
            let id = k
                .as_str()
                .ok_or_else(|| Error::corrupted("Invalid summary: malformed collection map"))?;
            out.push((id.to_string(), refs_from_variant(v)?));
        }
        Ok(out)
    }

    /// The static deltas listed in `ostree.static-deltas`: name → SHA-256 of the superblock.
    pub fn static_deltas(&self) -> Vec<(String, Vec<u8>)> {
        let Some(d) = self.metadata.get(KEY_STATIC_DELTAS) else {
            return Vec::new();
        };
        let Ok(md) = Metadata::from_variant(d) else {
            return Vec::new();
        };
        md.0.into_iter()
            .filter_map(|(k, v)| v.as_bytes().map(|b| (k, b.to_vec())))
            .collect()
    }

    /// Find a ref of the main list by name.
    pub fn find_ref(&self, name: &str) -> Option<&SummaryRef> {
        self.refs.iter().find(|r| r.name == name)
    }
}

// ------------------------------------------------------------------ GVariantDict order

/// `g_str_hash` (djb2 over *signed* chars).
pub(crate) fn g_str_hash(s: &str) -> u32 {
    s.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33).wrapping_add(b as i8 as i32 as u32)
    })
}

/// GLib's `prime_mod` table, by table shift.
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
    268435399, 536870909, 1073741789, 2147483647,
];

/// A model of GLib's `GHashTable` (open addressing, quadratic probing, in-place resizes),
/// enough to know the order in which a `GVariantDict` built by inserting keys iterates them.
struct GHashOrder {
    hashes: Vec<u32>,
    keys: Vec<Option<usize>>,
    mask: usize,
    modulo: u32,
    nnodes: usize,
    noccupied: usize,
}

impl GHashOrder {
    fn new() -> Self {
        let mut t = GHashOrder {
            hashes: Vec::new(),
            keys: Vec::new(),
            mask: 0,
            modulo: 1,
            nnodes: 0,
            noccupied: 0,
        };
        t.set_shift(3);
        t.hashes = vec![0; 8];
        t.keys = vec![None; 8];
        t
    }

    fn set_shift(&mut self, shift: usize) {
        let shift = shift.min(PRIME_MOD.len() - 1);
        self.mask = (1usize << shift) - 1;
        self.modulo = PRIME_MOD[shift];
    }

    fn size(&self) -> usize {
        self.mask + 1
    }

    fn index(&self, h: u32) -> usize {
        (h.wrapping_mul(11) % self.modulo) as usize
    }

    /// Insert key number `k` (with name `name`); an equal name keeps its slot.
    fn insert(&mut self, k: usize, name: &str, names: &[&str]) {
        self.insert_hashed(k, g_str_hash(name), |o| names[o] == name);
    }

    /// Insert key number `k` whose hash is `h`; a key `same` as it keeps its slot.
    fn insert_hashed(&mut self, k: usize, h: u32, same: impl Fn(usize) -> bool) {
        let mut h = h;
        if h < 2 {
            h = 2;
        }
        let mut i = self.index(h);
        let mut step = 0;
        let mut tombstone = None;
        while self.hashes[i] != 0 {
            if self.hashes[i] == h && self.keys[i].is_some_and(&same) {
                return;
            }
            if self.hashes[i] == 1 && tombstone.is_none() {
                tombstone = Some(i);
            }
            step += 1;
            i = (i + step) & self.mask;
        }
        let i = tombstone.unwrap_or(i);
        let old = self.hashes[i];
        self.hashes[i] = h;
        self.keys[i] = Some(k);
        self.nnodes += 1;
        if old == 0 {
            self.noccupied += 1;
            let size = self.size();
            if (size > self.nnodes * 4 && size > 8) || size <= self.noccupied + self.noccupied / 16
            {
                self.resize();
            }
        }
    }

    fn resize(&mut self) {
        let old = self.size();
        let mut n = (self.nnodes as f64 * 1.333) as usize;
        let mut shift = 0;
        while n > 0 {
            n >>= 1;
            shift += 1;
        }
        self.set_shift(shift.max(3));
        let new = self.size();
        if new > old {
            self.hashes.resize(new, 0);
            self.keys.resize(new, None);
        }
        let mut moved = vec![false; new.max(old)];
        for i in 0..old {
            let mut h = self.hashes[i];
            if h < 2 {
                self.hashes[i] = 0;
                continue;
            }
            if moved[i] {
                continue;
            }
            self.hashes[i] = 0;
            let mut key = self.keys[i].take();
            loop {
                let mut step = 0;
                let mut j = self.index(h);
                while moved[j] {
                    step += 1;
                    j = (j + step) & self.mask;
                }
                moved[j] = true;
                let replaced = self.hashes[j];
                self.hashes[j] = h;
                if replaced < 2 {
                    self.keys[j] = key;
                    break;
                }
                h = replaced;
                key = std::mem::replace(&mut self.keys[j], key);
            }
        }
        self.hashes.truncate(new);
        self.keys.truncate(new);
        self.noccupied = self.nnodes;
    }
}

/// The order in which a `GHashTable` iterates keys inserted in the order given, each with its
/// hash (`hashes[i]`); `same(a, b)` says two keys are equal (the later one is then not added).
/// Returns key indices.
pub(crate) fn ghash_iteration_order(
    hashes: &[u32],
    same: impl Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let mut t = GHashOrder::new();
    for (i, h) in hashes.iter().enumerate() {
        t.insert_hashed(i, *h, |o| same(o, i));
    }
    t.keys.iter().flatten().copied().collect()
}

/// Reorder `a{sv}` entries as a `GVariantDict` filled in this order would write them
/// (`g_variant_dict_end` walks its hash table): how ostree orders the dictionaries of
/// summaries, delta indexes and metadata commits. A repeated key keeps its first slot and
/// its last value.
pub fn gvariant_dict_order(md: Metadata) -> Metadata {
    let names: Vec<&str> = md.0.iter().map(|(k, _)| k.as_str()).collect();
    let mut t = GHashOrder::new();
    for (i, n) in names.iter().enumerate() {
        t.insert(i, n, &names);
    }
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, n) in names.iter().enumerate() {
        last.insert(n, i);
    }
    let order: Vec<usize> = t.keys.iter().flatten().copied().collect();
    let out = order
        .into_iter()
        .map(|i| {
            let j = last[names[i]];
            (md.0[j].0.clone(), md.0[j].1.clone())
        })
        .collect();
    Metadata(out)
}

fn deltas_dict(entries: Vec<(String, Vec<u8>)>) -> Variant {
    gvariant_dict_order(Metadata(
        entries
            .into_iter()
            .map(|(k, d)| (k, Variant::Bytes(d)))
            .collect(),
    ))
    .to_variant()
}

// ---------------------------------------------------------------------------- writing

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `g_date_time_new_from_unix_utc` accepts years 1..9999 only.
fn valid_unix_time(t: u64) -> bool {
    let t = t as i64;
    (-62_135_596_800..253_402_300_800).contains(&t)
}

impl Repo {
    /// The summary entry of one ref (`summary_add_ref_entry`): commit size, checksum and the
    /// commit's timestamp and version.
    async fn summary_ref_entry(&self, name: &str, commit: &Checksum) -> Result<SummaryRef> {
        let bytes = self.load_meta(ObjectType::Commit, commit).await?;
        let c = crate::objects::Commit::from_bytes(&bytes)
            .map_err(|e| Error::corrupted(format!("Corrupted commit object {commit}: {e}")))?;
        let mut md = Metadata::new();
        if valid_unix_time(c.timestamp) {
            md.insert(KEY_COMMIT_TIMESTAMP, Variant::U64(c.timestamp.to_be()));
        }
        if let Some(Variant::Str(v)) = c.metadata.get("version") {
            md.insert(KEY_COMMIT_VERSION, Variant::Str(v.clone()));
        }
        Ok(SummaryRef {
            name: name.to_string(),
            commit_size: bytes.len() as u64,
            checksum_bytes: commit.0.to_vec(),
            metadata: gvariant_dict_order(md),
        })
    }

    /// Build a new summary of the repository (without writing it).
    pub async fn generate_summary(&self, additional: Option<&Metadata>) -> Result<Summary> {
        let config = self.config();
        let main_collection = self.collection_id();
        let mut md = additional.cloned().unwrap_or_default();
        let mut refs = Vec::new();

        if main_collection.is_none() {
            // Local refs only: remote refs never go into a summary.
            for (name, c) in self.store().list_refs("heads/").await? {
                refs.push(self.summary_ref_entry(&name["heads/".len()..], &c).await?);
            }
        }

        if !config.core_bool("no-deltas-in-summary", false)? {
            let mut deltas = Vec::new();
            for name in self.list_static_deltas().await? {
                let digest = self.static_delta_superblock_digest(&name).await?;
                deltas.push((name.to_string(), digest.0.to_vec()));
            }
            if !deltas.is_empty() {
                md.insert(KEY_STATIC_DELTAS, deltas_dict(deltas));
            }
        }
        md.insert(KEY_LAST_MODIFIED, Variant::U64(now_secs().to_be()));
        let mode = config
            .keyfile
            .get_string("core", "mode")
            .unwrap_or_else(|| "bare".to_string());
        md.insert(KEY_MODE, Variant::Str(mode));
        md.insert(
            KEY_TOMBSTONE_COMMITS,
            Variant::Bool(config.core_bool("tombstone-commits", false)?),
        );
        md.insert(KEY_INDEXED_DELTAS, Variant::Bool(true));

        // Refs with a collection ID: the main collection's go in the main list (backwards
        // compatibility), the others in the collection map; both sorted.
        let crefs = self
            .list_collection_refs(None, CollectionRefFilter::default())
            .await?;
        let mut by_collection: BTreeMap<&str, Vec<(&CollectionRef, &Checksum)>> = BTreeMap::new();
        for (cr, c) in &crefs {
            by_collection
                .entry(cr.collection_id.as_str())
                .or_default()
                .push((cr, c));
        }
        let mut map_entries = Vec::new();
        for (id, list) in by_collection {
            let mut entries = Vec::new();
            for (cr, c) in list {
                entries.push(self.summary_ref_entry(&cr.ref_name, c).await?);
            }
            if main_collection.as_deref() == Some(id) {
                refs.extend(entries);
            } else {
                map_entries.push(Variant::DictEntry(
                    Box::new(Variant::Str(id.to_string())),
                    Box::new(refs_to_variant(&entries)),
                ));
            }
        }
        if let Some(id) = &main_collection {
            md.insert(KEY_COLLECTION_ID, Variant::Str(id.clone()));
        }
        if !map_entries.is_empty() {
            md.insert(
                KEY_COLLECTION_MAP,
                Variant::Array(ty("{sa(s(taya{sv}))}"), map_entries),
            );
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Summary {
            refs,
            metadata: gvariant_dict_order(md),
        })
    }

    /// Regenerate and write `summary` (`ostree_repo_regenerate_summary`): the summary of the
    /// current refs and deltas plus `additional` metadata; delta indexes are regenerated
    /// ([`Repo::reindex_static_deltas`], which takes the shared lock) and a stale
    /// `summary.sig` is removed.
    pub async fn regenerate_summary(&self, additional: Option<&Metadata>) -> Result<Summary> {
        let summary = self.generate_summary(additional).await?;
        self.reindex_static_deltas(None).await?;
        self.store()
            .write_file("summary", Bytes::from(summary.to_bytes()))
            .await?;
        self.store().delete_file("summary.sig").await?;
        Ok(summary)
    }

    /// Regenerate the summary if `core.auto-update-summary` (or its deprecated alias
    /// `core.commit-update-summary`) is set; called after every ref change.
    pub async fn maybe_regenerate_summary(&self) -> Result<()> {
        let config = self.config();
        if config.core_bool("auto-update-summary", false)?
            || config.core_bool("commit-update-summary", false)?
        {
            self.regenerate_summary(None).await?;
        }
        Ok(())
    }

    /// Read and parse the repository's `summary`, if any.
    pub async fn read_summary(&self) -> Result<Option<Summary>> {
        match self.store().read_file("summary").await? {
            Some(b) => Summary::from_bytes(&b).map(Some),
            None => Ok(None),
        }
    }

    /// In a repository with a collection ID, `summary -u` also records its additional metadata
    /// as a new commit on the `ostree-metadata` ref (empty tree, bound to the collection–ref),
    /// signed by each of `signers`; returns that commit. Each call adds one commit on top of
    /// the previous one.
    pub async fn commit_summary_metadata(
        &self,
        additional: Option<&Metadata>,
        timestamp: u64,
        signers: &[Box<dyn crate::sign::Signer>],
    ) -> Result<Option<Checksum>> {
        use super::commit::{CommitStats, MutableTree};
        use crate::objects::{Commit, DirMeta, S_IFDIR};

        let Some(collection_id) = self.collection_id() else {
            return Ok(None);
        };
        let parent = self.resolve_rev(METADATA_REF, true).await?;
        let mut md = additional.cloned().unwrap_or_default();
        md.insert(
            "ostree.collection-binding",
            Variant::Str(collection_id.clone()),
        );
        md.insert("ostree.ref-binding", Variant::str_array(&[METADATA_REF]));
        let mut stats = CommitStats::default();
        let dirmeta = DirMeta {
            uid: 0,
            gid: 0,
            mode: S_IFDIR | 0o755,
            xattrs: vec![],
        };
        let mut mtree = MutableTree::new();
        mtree.meta = Some(
            self.write_meta_object(ObjectType::DirMeta, dirmeta.to_bytes(), &mut stats)
                .await?,
        );
        let (root_tree, root_meta) = self.write_mtree(&mtree, &mut stats).await?;
        let commit = Commit {
            metadata: gvariant_dict_order(md),
            parent,
            related: vec![],
            subject: String::new(),
            body: String::new(),
            timestamp,
            root_tree,
            root_meta,
        };
        let mut detached = Metadata::new();
        if !signers.is_empty() {
            let bytes = commit.to_bytes();
            for signer in signers {
                crate::sign::append_signature(
                    &mut detached,
                    signer.metadata_key(),
                    signer.sign(&bytes)?,
                );
            }
        }
        let csum = self
            .write_commit(
                &commit,
                (!detached.is_empty()).then_some(&detached),
                &mut stats,
            )
            .await?;
        let cref = CollectionRef::new(collection_id, METADATA_REF);
        self.store().sync().await?;
        self.store()
            .update_ref(
                &self.collection_ref_store_name(&cref),
                crate::store::RefExpect::Any,
                Some(csum),
            )
            .await?;
        Ok(Some(csum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        let mut md = Metadata::new();
        md.insert(KEY_MODE, Variant::Str("archive-z2".into()));
        md.insert(KEY_LAST_MODIFIED, Variant::U64(1_700_000_000u64.to_be()));
        let mut rmd = Metadata::new();
        rmd.insert(KEY_COMMIT_TIMESTAMP, Variant::U64(1_600_000_000u64.to_be()));
        Summary {
            refs: vec![SummaryRef {
                name: "main".into(),
                commit_size: 102,
                checksum_bytes: vec![7; 32],
                metadata: rmd,
            }],
            metadata: md,
        }
    }

    #[test]
    fn roundtrip() {
        let s = sample();
        let b = s.to_bytes();
        let back = Summary::from_bytes(&b).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.refs[0].timestamp(), Some(1_600_000_000));
        assert_eq!(back.refs[0].checksum().unwrap(), Checksum([7; 32]));
        // The commit size is stored little-endian.
        assert!(b.windows(8).any(|w| w == 102u64.to_le_bytes()));
    }

    #[test]
    fn dict_order_like_glib() {
        let keys = [
            "a",
            KEY_EXPIRES,
            KEY_STATIC_DELTAS,
            KEY_LAST_MODIFIED,
            KEY_MODE,
            KEY_TOMBSTONE_COMMITS,
            KEY_INDEXED_DELTAS,
            KEY_COLLECTION_ID,
            KEY_COLLECTION_MAP,
        ];
        let md = Metadata(
            keys.iter()
                .map(|k| (k.to_string(), Variant::Bool(true)))
                .collect(),
        );
        let got: Vec<String> = gvariant_dict_order(md)
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // The order real ostree 2022.7 (GLib 2.74) wrote.
        assert_eq!(
            got,
            [
                KEY_TOMBSTONE_COMMITS,
                KEY_COLLECTION_ID,
                "a",
                KEY_INDEXED_DELTAS,
                KEY_STATIC_DELTAS,
                KEY_LAST_MODIFIED,
                KEY_MODE,
                KEY_EXPIRES,
                KEY_COLLECTION_MAP
            ]
        );
        let d = [
            "27178d9c960e8cf458ee36d8d7ba3d87d2a80aaf61d678289d5aa827dc98bf45",
            "92bbbe43ec3c5d0034dd2709d2cc2e70b64862c13f97f53313ff31d4a094d8a2-27178d9c960e8cf458ee36d8d7ba3d87d2a80aaf61d678289d5aa827dc98bf45",
        ];
        let md = Metadata(
            d.iter()
                .map(|k| (k.to_string(), Variant::Bool(true)))
                .collect(),
        );
        let got: Vec<String> = gvariant_dict_order(md)
            .0
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(got, [d[1], d[0]]);
        // Many keys (several resizes) keep every key exactly once.
        let many = Metadata(
            (0..200)
                .map(|i| (format!("k{i}"), Variant::U32(i)))
                .collect(),
        );
        let got = gvariant_dict_order(many);
        assert_eq!(got.0.len(), 200);
        let uniq: std::collections::BTreeSet<&String> = got.0.iter().map(|(k, _)| k).collect();
        assert_eq!(uniq.len(), 200);
    }

    /// Every single-byte mutation and every truncation of a summary parses or fails cleanly.
    #[test]
    fn hostile_summaries_never_panic() {
        let mut s = sample();
        s.metadata.insert(
            KEY_COLLECTION_MAP,
            Variant::Array(
                ty("{sa(s(taya{sv}))}"),
                vec![Variant::DictEntry(
                    Box::new(Variant::Str("org.example.Other".into())),
                    Box::new(refs_to_variant(&s.refs.clone())),
                )],
            ),
        );
        s.metadata.insert(
            KEY_STATIC_DELTAS,
            deltas_dict(vec![("a-b".into(), vec![1; 32])]),
        );
        let b = s.to_bytes();
        let mut seed = 0x9e37_79b9u32;
        for i in 0..b.len() {
            for delta in [1u8, 0x80, 0xff] {
                let mut m = b.clone();
                m[i] = m[i].wrapping_add(delta);
                if let Ok(p) = Summary::from_bytes(&m) {
                    let _ = p.collection_map();
                    let _ = p.static_deltas();
                    for r in &p.refs {
                        let _ = r.checksum();
                        let _ = r.timestamp();
                    }
                }
            }
            let _ = Summary::from_bytes(&b[..i]);
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut m = b.clone();
            let j = (seed as usize >> 8) % m.len();
            m[j] = (seed >> 16) as u8;
            let _ = Summary::from_bytes(&m);
        }
    }
}
