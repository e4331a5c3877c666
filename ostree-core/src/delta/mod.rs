//! Static deltas: generation, application, listing, indexes — format-compatible with ostree
//! 2022.7 both ways (FORMATS.md §4, §5.1).
//!
//! * [`format`]: names/paths, superblocks (plain, signed, either endianness), part headers,
//!   part files (xz or uncompressed), varints and opcodes.
//! * [`apply`]: the operation interpreter and [`Repo::apply_static_delta`] (offline apply). Every
//!   produced object is checksum-verified before `put`; every offset is bounds-checked; parts
//!   are verified against their header checksum before they are decompressed, with a size limit
//!   derived from the header.
//! * [`generate`]: [`Repo::generate_static_delta`], ostree's algorithm (new metadata first,
//!   rollsum-similar files as read-source writes, bsdiff for other modified files, fallbacks for
//!   large new files, parts up to the chunk size, xz preset 8) with parts built and compressed in
//!   parallel and bounded memory.
//! * this module: listing, deletion, `show` data, delta indexes (`delta-indexes/…`).

pub mod apply;
pub mod bspatch;
pub mod format;
pub mod generate;
pub mod rollsum;
pub mod sais;
mod xz;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use apply::{ApplyOptions, ApplyReport, DeltaSource, OpStats};
pub use format::{DeltaName, Endianness, EndiannessInfo, FallbackEntry, PartHeader, Superblock};
pub use generate::{GenerateOptions, GenerateReport};

use crate::gvariant::Variant;
use crate::objects::Metadata;
use crate::repo::Repo;
use crate::{Checksum, Error, Result};

/// One part as `static-delta show` describes it.
#[derive(Debug, Clone)]
pub struct PartInfo {
    /// Number of objects.
    pub n_objects: usize,
    /// Compressed size (header).
    pub size: u64,
    /// Uncompressed size (header).
    pub usize: u64,
    /// Mode table entries.
    pub n_modes: usize,
    /// xattr table entries.
    pub n_xattrs: usize,
    /// Payload bytes.
    pub blob_size: usize,
    /// Operation bytes.
    pub op_size: usize,
    /// Operation counts.
    pub stats: OpStats,
}

impl Repo {
    /// Every delta in `deltas/` (`ostree_repo_list_static_delta_names`), sorted.
    pub async fn list_static_deltas(&self) -> Result<Vec<DeltaName>> {
        let files = self.store().list_files("deltas/").await?;
        let mut out = Vec::new();
        for f in files {
            let comps: Vec<&str> = f.split('/').collect();
            if let ["deltas", a, b, "superblock"] = comps.as_slice()
                && let Ok(n) = DeltaName::from_dir_components(a, b)
            {
                out.push(n);
            }
        }
        out.sort_by_key(|n| n.to_string());
        out.dedup();
        Ok(out)
    }

    /// Every delta index in `delta-indexes/` (target commits), sorted.
    pub async fn list_static_delta_indexes(&self) -> Result<Vec<Checksum>> {
        let files = self.store().list_files("delta-indexes/").await?;
        let mut out = Vec::new();
        for f in files {
            let comps: Vec<&str> = f.split('/').collect();
            if let ["delta-indexes", a, b] = comps.as_slice()
                && a.len() == 2
                && b.len() == 41 + ".index".len()
                && let Some(rest) = b.strip_suffix(".index")
                && let Ok(c) = Checksum::from_modified_base64(&format!("{a}{rest}"))
            {
                out.push(c);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether a delta's superblock exists.
    pub async fn static_delta_exists(&self, name: &DeltaName) -> Result<bool> {
        Ok(self
            .store()
            .read_file(&name.superblock_path())
            .await?
            .is_some())
    }

    /// Delete a delta (`ostree static-delta delete`): every file of its directory.
    pub async fn delete_static_delta(&self, name: &DeltaName) -> Result<()> {
        let dir = name.dir();
        let files = self.store().list_files(&format!("{dir}/")).await?;
        if files.is_empty() {
            return Err(Error::not_found(format!("Can't find delta {name}")));
        }
        // The superblock first: a half-deleted delta is not listed any more.
        let sb = name.superblock_path();
        if files.contains(&sb) {
            self.store().delete_file(&sb).await?;
        }
        for f in files.iter().filter(|f| **f != sb) {
            self.store().delete_file(f).await?;
        }
        Ok(())
    }

    /// SHA-256 of a delta's superblock file (the value listed in summaries and indexes).
    pub async fn static_delta_superblock_digest(&self, name: &DeltaName) -> Result<Checksum> {
        let data = self
            .store()
            .read_file(&name.superblock_path())
            .await?
            .ok_or_else(|| Error::not_found(format!("No such delta {name}")))?;
        Ok(Checksum::of(&data))
    }

    /// The `a{sv}` of a delta index for `to` listing `deltas` (name → digest), sorted by name.
    pub fn static_delta_index_bytes(deltas: &BTreeMap<String, Checksum>) -> Vec<u8> {
        let mut inner = Metadata::new();
        for (name, digest) in deltas {
            inner.insert(name.clone(), Variant::Bytes(digest.0.to_vec()));
        }
        let mut top = Metadata::new();
        top.insert(format::SUMMARY_STATIC_DELTAS, inner.to_variant());
        top.to_bytes()
    }

    /// Regenerate delta indexes (`ostree static-delta reindex`): for `to` only, or for every
    /// target with a delta (removing indexes of targets without deltas). Sets
    /// `core.indexed-deltas=true` like ostree.
    pub async fn reindex_static_deltas(&self, to: Option<&Checksum>) -> Result<()> {
        let _lock = self.lock(false).await?;
        let mut cfg = self.config();
        if !cfg.core_bool("indexed-deltas", false).unwrap_or(false) {
            cfg.keyfile.set_string("core", "indexed-deltas", "true");
            self.write_config(cfg).await?;
        }
        let mut targets: BTreeMap<Checksum, BTreeMap<String, Checksum>> = BTreeMap::new();
        let mut stale: Vec<Checksum> = match to {
            Some(t) => vec![*t],
            None => self.list_static_delta_indexes().await?,
        };
        for name in self.list_static_deltas().await? {
            if to.is_some_and(|t| *t != name.to) {
                continue;
            }
            let digest = self.static_delta_superblock_digest(&name).await?;
            targets
                .entry(name.to)
                .or_default()
                .insert(name.to_string(), digest);
        }
        stale.retain(|c| !targets.contains_key(c));
        for c in stale {
            self.store().delete_file(&format::index_path(&c)).await?;
        }
        for (t, deltas) in targets {
            let bytes = Self::static_delta_index_bytes(&deltas);
            let path = format::index_path(&t);
            if self.store().read_file(&path).await?.as_deref() == Some(&bytes[..]) {
                continue;
            }
            self.store().write_file(&path, Bytes::from(bytes)).await?;
        }
        Ok(())
    }

    /// Describe every part of a delta as `static-delta show` does (parts are decompressed but
    /// not checksum-verified, as ostree; operations are counted, not executed).
    pub async fn static_delta_part_infos(
        &self,
        sb: &Superblock,
        dir: Option<&std::path::Path>,
    ) -> Result<Vec<Result<PartInfo>>> {
        let mut out = Vec::new();
        for (i, h) in sb.parts.iter().enumerate() {
            let r: Result<PartInfo> = async {
                let raw = self.read_static_delta_part(sb, dir, i).await?;
                let limit = format::part_size_limit(h);
                let part =
                    tokio::task::spawn_blocking(move || format::open_part(&raw, None, limit))
                        .await
                        .map_err(|e| Error::Other(format!("delta part: {e}")))??;
                struct NoEnv;
                impl apply::PartEnv for NoEnv {
                    fn have(&mut self, _: usize) -> bool {
                        true
                    }
                    fn source(&mut self, _: &Checksum) -> Result<Bytes> {
                        Ok(Bytes::new())
                    }
                }
                let stats = apply::execute(&h.objects, &part, true, &mut NoEnv, &mut |_| Ok(()))?;
                Ok(PartInfo {
                    n_objects: h.objects.len(),
                    size: h.size,
                    usize: h.usize,
                    n_modes: part.modes.len(),
                    n_xattrs: part.xattrs.len(),
                    blob_size: part.payload.len(),
                    op_size: part.ops.len(),
                    stats,
                })
            }
            .await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        Ok(out)
    }
}
