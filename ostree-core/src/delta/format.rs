//! The on-disk formats of static deltas: names and paths, the superblock (plain and signed),
//! part headers, fallback entries, part files (compression byte + payload variant) and the
//! varint/opcode encoding of part operations. See FORMATS.md §4.
//!
//! Everything here validates framing and bounds and never panics on input.

use std::io::{Read, Write};

use bytes::Bytes;

use crate::gvariant::{Variant, VariantType};
use crate::objects::{Metadata, Xattrs};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// GVariant type of a superblock.
pub const SUPERBLOCK_FORMAT: &str = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";
/// GVariant type of a signed superblock wrapper.
pub const SIGNED_FORMAT: &str = "(taya{sv})";
/// Magic of a signed superblock ("OSTSGNDT"), stored big-endian.
pub const SIGNED_MAGIC: u64 = 0x4F53_5453_474E_4454;
/// GVariant type of a (decompressed) part.
pub const PART_FORMAT: &str = "(a(uuu)aa(ayay)ayay)";
/// The only part version.
pub const PART_VERSION: u32 = 0;
/// Bytes per entry of a part's object list (type byte + checksum).
pub const OBJTYPE_CSUM_LEN: usize = 33;
/// Summary/index key listing deltas.
pub const SUMMARY_STATIC_DELTAS: &str = "ostree.static-deltas";
/// Part compression: none.
pub const COMPRESSION_NONE: u8 = 0;
/// Part compression: xz.
pub const COMPRESSION_XZ: u8 = b'x';

/// Largest superblock accepted (inline parts can make it big).
pub const MAX_SUPERBLOCK_SIZE: u64 = 2 * 1024 * 1024 * 1024;
/// Memory limit given to the xz decoder.
pub const XZ_MEMLIMIT: u64 = 1024 * 1024 * 1024;

/// Operation codes of part payloads.
#[allow(missing_docs)]
pub mod op {
    pub const OPEN_SPLICE_AND_CLOSE: u8 = b'S';
    pub const OPEN: u8 = b'o';
    pub const WRITE: u8 = b'w';
    pub const SET_READ_SOURCE: u8 = b'r';
    pub const UNSET_READ_SOURCE: u8 = b'R';
    pub const CLOSE: u8 = b'c';
    pub const BSPATCH: u8 = b'B';
}

// ------------------------------------------------------------------------------ names, paths

/// A delta's identity: `TO` (from scratch) or `FROM-TO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeltaName {
    /// Source commit (`None`: from scratch).
    pub from: Option<Checksum>,
    /// Target commit.
    pub to: Checksum,
}

/// `ostree_validate_checksum_string` with ostree's messages.
pub fn validate_checksum_string(s: &str) -> Result<Checksum> {
    if s.len() != 64 {
        let mut quashed: String = s
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect();
        if s.chars().count() > 64 {
            quashed.push_str("...");
        }
        return Err(Error::invalid(format!("Invalid rev {quashed}")));
    }
    if let Some(c) = s.bytes().find(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::invalid(format!(
            "Invalid character '{c}' in rev '{s}'"
        )));
    }
    Checksum::from_hex(s)
}

fn b64_split(c: &Checksum) -> (String, String) {
    let b = c.to_modified_base64();
    (b[..2].to_string(), b[2..].to_string())
}

impl DeltaName {
    /// Parse `TO` or `FROM-TO` (`_ostree_parse_delta_name`).
    pub fn parse(name: &str) -> Result<Self> {
        match name.split_once('-') {
            Some((from, to)) => {
                let from = validate_checksum_string(from)?;
                let to = validate_checksum_string(to)?;
                Ok(DeltaName {
                    from: Some(from),
                    to,
                })
            }
            None => Ok(DeltaName {
                from: None,
                to: validate_checksum_string(name)?,
            }),
        }
    }

    /// The directory of the delta, relative to the repository (`deltas/AB/CDE…[-TO]`).
    pub fn dir(&self) -> String {
        let (t0, t1) = b64_split(&self.to);
        match &self.from {
            Some(f) => {
                let (f0, f1) = b64_split(f);
                format!("deltas/{f0}/{f1}-{t0}{t1}")
            }
            None => format!("deltas/{t0}/{t1}"),
        }
    }

    /// `deltas/…/superblock`.
    pub fn superblock_path(&self) -> String {
        format!("{}/superblock", self.dir())
    }

    /// `deltas/…/N`: a part file, also the metadata key of an inline part.
    pub fn part_path(&self, i: usize) -> String {
        format!("{}/{i}", self.dir())
    }

    /// `deltas/…/commitmeta`: metadata key of the target's detached metadata.
    pub fn commitmeta_key(&self) -> String {
        format!("{}/commitmeta", self.dir())
    }

    /// Parse the relative directory of a delta (`AB/CDE…` or `AB/CDE…-FGH…` below `deltas/`).
    pub fn from_dir_components(first: &str, second: &str) -> Result<Self> {
        let joined = format!("{first}{second}");
        match joined.split_once('-') {
            Some((f, t)) => Ok(DeltaName {
                from: Some(Checksum::from_modified_base64(f)?),
                to: Checksum::from_modified_base64(t)?,
            }),
            None => Ok(DeltaName {
                from: None,
                to: Checksum::from_modified_base64(&joined)?,
            }),
        }
    }
}

impl std::fmt::Display for DeltaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.from {
            Some(from) => write!(f, "{from}-{}", self.to),
            None => write!(f, "{}", self.to),
        }
    }
}

/// `delta-indexes/AB/CDE….index` of a target commit.
pub fn index_path(to: &Checksum) -> String {
    let (t0, t1) = b64_split(to);
    format!("delta-indexes/{t0}/{t1}.index")
}

// ------------------------------------------------------------------------------ varints

/// Append an unsigned LEB128 varint.
pub fn write_varuint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Read an unsigned LEB128 varint (at most 10 bytes) at `*pos`.
pub fn read_varuint(data: &[u8], pos: &mut usize) -> Result<u64> {
    let mut result = 0u64;
    for count in 0..10 {
        let b = *data
            .get(*pos)
            .ok_or_else(|| Error::corrupted("Unexpected EOF reading varint"))?;
        *pos += 1;
        result |= u64::from(b & 0x7f).checked_shl(7 * count).unwrap_or(0);
        if b & 0x80 == 0 {
            return Ok(result);
        }
    }
    Err(Error::corrupted("Unexpected EOF reading varint"))
}

// ------------------------------------------------------------------------------ superblock

/// Byte order of the part-header and fallback integers of a delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endianness {
    /// `'l'`.
    Little,
    /// `'B'`.
    Big,
}

impl Endianness {
    /// This machine's byte order.
    pub fn host() -> Self {
        if cfg!(target_endian = "big") {
            Endianness::Big
        } else {
            Endianness::Little
        }
    }
    /// The other one.
    pub fn swapped(self) -> Self {
        match self {
            Endianness::Little => Endianness::Big,
            Endianness::Big => Endianness::Little,
        }
    }
    fn needs_swap(self) -> bool {
        self != Self::host()
    }
    /// The `ostree.endianness` byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Endianness::Little => b'l',
            Endianness::Big => b'B',
        }
    }
}

/// How the endianness of a superblock was determined (`static-delta show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndiannessInfo {
    /// Declared by `ostree.endianness` (or guessed when `heuristic`).
    Known {
        /// The byte order.
        endianness: Endianness,
        /// True when guessed from the sizes (old deltas without the key).
        heuristic: bool,
    },
    /// Declared with an unknown value, or missing and not guessable: read in host order.
    Invalid,
}

/// One part header `(uayttay)` (integers in host order after reading).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartHeader {
    /// Format version (0).
    pub version: u32,
    /// SHA-256 of the part file (`(yay)` bytes).
    pub checksum: Checksum,
    /// Size of the part file.
    pub size: u64,
    /// Sum of the sizes of the objects the part produces.
    pub usize: u64,
    /// The objects, in the order the operations produce them.
    pub objects: Vec<ObjectKey>,
}

/// One fallback entry `(yaytt)`: an object fetched on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackEntry {
    /// The object.
    pub key: ObjectKey,
    /// Stored (compressed) size.
    pub size: u64,
    /// Uncompressed size.
    pub usize: u64,
}

/// A parsed superblock.
#[derive(Clone, Debug)]
pub struct Superblock {
    /// The metadata dictionary (endianness, inline parts, detached commit metadata, user keys).
    pub metadata: Metadata,
    /// Generation time (seconds since the epoch).
    pub timestamp: u64,
    /// Source commit, `None` from scratch.
    pub from: Option<Checksum>,
    /// Target commit.
    pub to: Checksum,
    /// The target commit object's bytes.
    pub commit: Bytes,
    /// "Dependent deltas" bytes (always empty in practice).
    pub dependents: Vec<u8>,
    /// Part headers.
    pub parts: Vec<PartHeader>,
    /// Fallback objects.
    pub fallbacks: Vec<FallbackEntry>,
    /// Byte order the integers were read in.
    pub endianness: EndiannessInfo,
    /// Signature types present (`ed25519`…) when the file was a signed wrapper.
    pub signatures: Option<Metadata>,
}

fn objects_from_bytes(b: &[u8]) -> Result<Vec<ObjectKey>> {
    if !b.len().is_multiple_of(OBJTYPE_CSUM_LEN) {
        return Err(Error::corrupted(format!(
            "Invalid checksum array length {}",
            b.len()
        )));
    }
    b.chunks(OBJTYPE_CSUM_LEN)
        .map(|c| {
            let ty = ObjectType::from_u8(c[0])?;
            Ok(ObjectKey::new(Checksum::from_bytes(&c[1..])?, ty))
        })
        .collect()
}

/// The `ay` object list of a part header.
pub fn objects_to_bytes(objs: &[ObjectKey]) -> Vec<u8> {
    let mut out = Vec::with_capacity(objs.len() * OBJTYPE_CSUM_LEN);
    for k in objs {
        out.push(k.ty as u8);
        out.extend_from_slice(&k.checksum.0);
    }
    out
}

fn stype(s: &str) -> VariantType {
    VariantType::parse(s).expect("static type string")
}

/// Split a signed wrapper: `Some((inner superblock bytes, signature dict))` when `data` is a
/// `(taya{sv})` with the magic.
pub fn unwrap_signed(data: &[u8]) -> Option<(Vec<u8>, Metadata)> {
    let v = Variant::from_bytes(&stype(SIGNED_FORMAT), data).ok()?;
    let t = v.as_tuple()?;
    if u64::from_be(t.first()?.as_u64()?) != SIGNED_MAGIC {
        return None;
    }
    let inner = t.get(1)?.as_bytes()?.to_vec();
    let sigs = Metadata::from_variant(t.get(2)?).ok()?;
    Some((inner, sigs))
}

impl Superblock {
    /// Parse a superblock file (plain or signed).
    pub fn parse(data: &[u8]) -> Result<Self> {
        if let Some((inner, sigs)) = unwrap_signed(data) {
            let mut sb = Self::parse_unsigned(&inner)?;
            sb.signatures = Some(sigs);
            return Ok(sb);
        }
        Self::parse_unsigned(data)
    }

    /// Parse an unsigned superblock.
    pub fn parse_unsigned(data: &[u8]) -> Result<Self> {
        let v = Variant::from_bytes(&stype(SUPERBLOCK_FORMAT), data)
            .map_err(|e| Error::corrupted(format!("Invalid static delta superblock: {e}")))?;
        let bad = |what: &str| Error::corrupted(format!("Invalid static delta superblock: {what}"));
        let f = v.as_tuple().ok_or_else(|| bad("not a tuple"))?;
        let metadata = Metadata::from_variant(f.first().ok_or_else(|| bad("metadata"))?)?;
        let timestamp = u64::from_be(
            f.get(1)
                .and_then(Variant::as_u64)
                .ok_or_else(|| bad("timestamp"))?,
        );
        let from_b = f
            .get(2)
            .and_then(Variant::as_bytes)
            .ok_or_else(|| bad("from"))?;
        let from = if from_b.is_empty() {
            None
        } else {
            Some(Checksum::from_bytes(from_b)?)
        };
        let to = Checksum::from_bytes(
            f.get(3)
                .and_then(Variant::as_bytes)
                .ok_or_else(|| bad("to"))?,
        )?;
        let commit = Bytes::from(f.get(4).ok_or_else(|| bad("commit"))?.to_bytes());
        let dependents = f
            .get(5)
            .and_then(Variant::as_bytes)
            .ok_or_else(|| bad("dependents"))?
            .to_vec();
        let mut raw_parts = Vec::new();
        for h in f
            .get(6)
            .and_then(Variant::as_array)
            .ok_or_else(|| bad("part headers"))?
        {
            let t = h.as_tuple().ok_or_else(|| bad("part header"))?;
            let version = t
                .first()
                .and_then(Variant::as_u32)
                .ok_or_else(|| bad("part header"))?;
            let csum = t
                .get(1)
                .and_then(Variant::as_bytes)
                .ok_or_else(|| bad("part header"))?;
            let size = t
                .get(2)
                .and_then(Variant::as_u64)
                .ok_or_else(|| bad("part header"))?;
            let usize = t
                .get(3)
                .and_then(Variant::as_u64)
                .ok_or_else(|| bad("part header"))?;
            let objs = t
                .get(4)
                .and_then(Variant::as_bytes)
                .ok_or_else(|| bad("part header"))?;
            raw_parts.push((
                version,
                csum.to_vec(),
                size,
                usize,
                objects_from_bytes(objs)?,
            ));
        }
        let mut raw_fallbacks = Vec::new();
        for e in f
            .get(7)
            .and_then(Variant::as_array)
            .ok_or_else(|| bad("fallbacks"))?
        {
            let t = e.as_tuple().ok_or_else(|| bad("fallback"))?;
            let ty = match t.first() {
                Some(Variant::Byte(b)) => ObjectType::from_u8(*b)?,
                _ => return Err(bad("fallback")),
            };
            let c = t
                .get(1)
                .and_then(Variant::as_bytes)
                .ok_or_else(|| bad("fallback"))?;
            let size = t
                .get(2)
                .and_then(Variant::as_u64)
                .ok_or_else(|| bad("fallback"))?;
            let usize = t
                .get(3)
                .and_then(Variant::as_u64)
                .ok_or_else(|| bad("fallback"))?;
            raw_fallbacks.push((ObjectKey::new(Checksum::from_bytes(c)?, ty), size, usize));
        }

        let endianness = detect_endianness(&metadata, &raw_parts);
        let swap =
            matches!(endianness, EndiannessInfo::Known { endianness: e, .. } if e.needs_swap());
        let s64 = |v: u64| if swap { v.swap_bytes() } else { v };
        let s32 = |v: u32| if swap { v.swap_bytes() } else { v };
        let mut parts = Vec::with_capacity(raw_parts.len());
        for (version, csum, size, usize, objects) in raw_parts {
            parts.push(PartHeader {
                version: s32(version),
                // A bad checksum length is reported when the part is opened.
                checksum: Checksum::from_bytes(&csum).unwrap_or_default(),
                size: s64(size),
                usize: s64(usize),
                objects,
            });
        }
        let fallbacks = raw_fallbacks
            .into_iter()
            .map(|(key, size, usize)| FallbackEntry {
                key,
                size: s64(size),
                usize: s64(usize),
            })
            .collect();
        Ok(Superblock {
            metadata,
            timestamp,
            from,
            to,
            commit,
            dependents,
            parts,
            fallbacks,
            endianness,
            signatures: None,
        })
    }

    /// The delta's name.
    pub fn name(&self) -> DeltaName {
        DeltaName {
            from: self.from,
            to: self.to,
        }
    }

    /// Serialize (unsigned) with integers in `endianness`.
    pub fn to_bytes(&self, endianness: Endianness) -> Vec<u8> {
        let swap = endianness.needs_swap();
        let s64 = |v: u64| if swap { v.swap_bytes() } else { v };
        let s32 = |v: u32| if swap { v.swap_bytes() } else { v };
        let headers = Variant::Array(
            stype("(uayttay)"),
            self.parts
                .iter()
                .map(|p| {
                    Variant::Tuple(vec![
                        Variant::U32(s32(p.version)),
                        Variant::Bytes(p.checksum.0.to_vec()),
                        Variant::U64(s64(p.size)),
                        Variant::U64(s64(p.usize)),
                        Variant::Bytes(objects_to_bytes(&p.objects)),
                    ])
                })
                .collect(),
        );
        let fallbacks = Variant::Array(
            stype("(yaytt)"),
            self.fallbacks
                .iter()
                .map(|f| {
                    Variant::Tuple(vec![
                        Variant::Byte(f.key.ty as u8),
                        Variant::Bytes(f.key.checksum.0.to_vec()),
                        Variant::U64(s64(f.size)),
                        Variant::U64(s64(f.usize)),
                    ])
                })
                .collect(),
        );
        let commit = Variant::from_bytes(&stype("(a{sv}aya(say)sstayay)"), &self.commit)
            .unwrap_or_else(|_| Variant::Tuple(vec![]));
        Variant::Tuple(vec![
            self.metadata.to_variant(),
            Variant::U64(self.timestamp.to_be()),
            Variant::Bytes(self.from.map(|c| c.0.to_vec()).unwrap_or_default()),
            Variant::Bytes(self.to.0.to_vec()),
            commit,
            Variant::Bytes(self.dependents.clone()),
            headers,
            fallbacks,
        ])
        .to_bytes()
    }

    /// The bytes of inline part `i` (`(yay)` in the metadata), if inlined.
    pub fn inline_part(&self, i: usize) -> Option<Vec<u8>> {
        let key = self.name().part_path(i);
        match self.metadata.get(&key)? {
            v @ Variant::Tuple(t)
                if matches!(t.as_slice(), [Variant::Byte(_), Variant::Bytes(_)]) =>
            {
                Some(v.to_bytes())
            }
            _ => None,
        }
    }

    /// Detached metadata of the target embedded in the superblock.
    pub fn detached_commitmeta(&self) -> Option<Metadata> {
        let v = self.metadata.get(&self.name().commitmeta_key())?;
        Metadata::from_variant(v).ok()
    }
}

/// A part header as read, before byte-order correction.
type RawPartHeader = (u32, Vec<u8>, u64, u64, Vec<ObjectKey>);

fn detect_endianness(md: &Metadata, parts: &[RawPartHeader]) -> EndiannessInfo {
    if let Some(v) = md.get("ostree.endianness") {
        return match v {
            Variant::Byte(b'l') => EndiannessInfo::Known {
                endianness: Endianness::Little,
                heuristic: false,
            },
            Variant::Byte(b'B') => EndiannessInfo::Known {
                endianness: Endianness::Big,
                heuristic: false,
            },
            _ => EndiannessInfo::Invalid,
        };
    }
    let mut total_size = 0u64;
    let mut total_objects = 0u64;
    let mut byteswapped = false;
    for (_, _, size, usize, objs) in parts {
        total_objects += objs.len() as u64;
        total_size = total_size.wrapping_add(*size);
        if size > usize && (*size as f64) / (*usize as f64) > 1.2 {
            byteswapped = true;
            break;
        }
    }
    if !byteswapped && total_objects > 0 && total_size / total_objects > u64::from(u32::MAX) {
        byteswapped = true;
    }
    if byteswapped {
        EndiannessInfo::Known {
            endianness: Endianness::host().swapped(),
            heuristic: true,
        }
    } else {
        EndiannessInfo::Invalid
    }
}

// ------------------------------------------------------------------------------ parts

/// A decompressed part: mode table, xattr table, payload, operations.
#[derive(Clone, Debug)]
pub struct PartPayload {
    /// `(uid, gid, mode)` in host order.
    pub modes: Vec<(u32, u32, u32)>,
    /// xattr sets (names without their NUL).
    pub xattrs: Vec<Xattrs>,
    /// The payload bytes.
    pub payload: Bytes,
    /// The operation stream.
    pub ops: Bytes,
}

fn offset_width(len: usize) -> usize {
    if len <= 0xff {
        1
    } else if len <= 0xffff {
        2
    } else if len <= 0xffff_ffff {
        4
    } else {
        8
    }
}

fn read_off(data: &[u8], at: usize, w: usize) -> Result<usize> {
    let s = data
        .get(at..at + w)
        .ok_or_else(|| Error::corrupted("Invalid delta part framing"))?;
    let mut b = [0u8; 8];
    b[..w].copy_from_slice(s);
    usize::try_from(u64::from_le_bytes(b))
        .map_err(|_| Error::corrupted("Invalid delta part framing"))
}

fn xattrs_from_variant(v: &Variant) -> Result<Xattrs> {
    let bad = || Error::corrupted("Invalid xattr entry in delta part");
    let mut out = Vec::new();
    for e in v.as_array().ok_or_else(bad)? {
        let t = e.as_tuple().ok_or_else(bad)?;
        let (Some(k), Some(val)) = (
            t.first().and_then(Variant::as_bytes),
            t.get(1).and_then(Variant::as_bytes),
        ) else {
            return Err(bad());
        };
        match k.split_last() {
            Some((0, n)) if !n.is_empty() && !n.contains(&0) => {
                out.push((n.to_vec(), val.to_vec()))
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The `a(ayay)` variant of an xattr set (names NUL-terminated).
pub fn xattrs_to_variant(x: &Xattrs) -> Variant {
    Variant::Array(
        stype("(ayay)"),
        x.iter()
            .map(|(k, v)| {
                let mut n = k.clone();
                n.push(0);
                Variant::Tuple(vec![Variant::Bytes(n), Variant::Bytes(v.clone())])
            })
            .collect(),
    )
}

/// Where the members of a decompressed part end, from its framing offsets (the last bytes of
/// the part), validated against its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartFraming {
    /// End of the mode table (start of the xattr table).
    pub modes_end: usize,
    /// End of the xattr table (start of the payload).
    pub xattrs_end: usize,
    /// End of the payload (start of the operations).
    pub payload_end: usize,
    /// End of the operations (start of the framing offsets).
    pub ops_end: usize,
}

impl PartFraming {
    /// Bytes of framing at the end of a part of `len` bytes.
    pub fn tail_len(len: u64) -> usize {
        3 * offset_width(usize::try_from(len).unwrap_or(usize::MAX))
    }

    /// Read the framing of a part of `len` bytes from its last [`PartFraming::tail_len`]
    /// bytes, `tail`.
    pub fn parse(len: u64, tail: &[u8]) -> Result<Self> {
        let bad = || Error::corrupted("Invalid delta part framing");
        let len = usize::try_from(len).map_err(|_| bad())?;
        let w = offset_width(len);
        if len < 3 * w || tail.len() != 3 * w {
            return Err(bad());
        }
        let end1 = read_off(tail, 2 * w, w)?;
        let end2 = read_off(tail, w, w)?;
        let end3 = read_off(tail, 0, w)?;
        let limit = len - 3 * w;
        if !(end1 <= end2 && end2 <= end3 && end3 <= limit) {
            return Err(bad());
        }
        Ok(PartFraming {
            modes_end: end1,
            xattrs_end: end2,
            payload_end: end3,
            ops_end: limit,
        })
    }
}

/// A part's mode table (`(uid, gid, mode)` in host order) and xattr table.
pub type PartTables = (Vec<(u32, u32, u32)>, Vec<Xattrs>);

/// Parse a part's mode and xattr tables: `head` holds both, the modes ending at `modes_end`.
pub fn parse_part_tables(head: &[u8], modes_end: usize) -> Result<PartTables> {
    let bad = || Error::corrupted("Invalid delta part framing");
    let (m, x) = (
        head.get(..modes_end).ok_or_else(bad)?,
        head.get(modes_end..).ok_or_else(bad)?,
    );
    let modes_v = Variant::from_bytes(&stype("a(uuu)"), m)?;
    let xattrs_v = Variant::from_bytes(&stype("aa(ayay)"), x)?;
    let mut modes = Vec::new();
    for m in modes_v.as_array().ok_or_else(bad)? {
        let t = m.as_tuple().ok_or_else(bad)?;
        let u = |i: usize| {
            t.get(i)
                .and_then(Variant::as_u32)
                .map(u32::from_be)
                .ok_or_else(bad)
        };
        modes.push((u(0)?, u(1)?, u(2)?));
    }
    let mut xattrs = Vec::new();
    for x in xattrs_v.as_array().ok_or_else(bad)? {
        xattrs.push(xattrs_from_variant(x)?);
    }
    Ok((modes, xattrs))
}

impl PartPayload {
    /// Split a decompressed `(a(uuu)aa(ayay)ayay)` without copying the payload.
    pub fn parse(data: Bytes) -> Result<Self> {
        let len = data.len();
        let w = offset_width(len);
        let tail = data
            .get(len.saturating_sub(3 * w)..)
            .ok_or_else(|| Error::corrupted("Invalid delta part framing"))?;
        let f = PartFraming::parse(len as u64, tail)?;
        let (modes, xattrs) = parse_part_tables(&data[..f.xattrs_end], f.modes_end)?;
        Ok(PartPayload {
            modes,
            xattrs,
            payload: data.slice(f.xattrs_end..f.payload_end),
            ops: data.slice(f.payload_end..f.ops_end),
        })
    }

    /// Serialize (the inverse of [`PartPayload::parse`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let modes = Variant::Array(
            stype("(uuu)"),
            self.modes
                .iter()
                .map(|(u, g, m)| {
                    Variant::Tuple(vec![
                        Variant::U32(u.to_be()),
                        Variant::U32(g.to_be()),
                        Variant::U32(m.to_be()),
                    ])
                })
                .collect(),
        );
        let xattrs = Variant::Array(
            stype("a(ayay)"),
            self.xattrs.iter().map(xattrs_to_variant).collect(),
        );
        serialize_part(
            &modes.to_bytes(),
            &xattrs.to_bytes(),
            &self.payload,
            &self.ops,
        )
    }
}

/// Serialize a part variant from its pre-serialized members (modes array bytes, xattrs array
/// bytes, payload, ops), computing the framing like GLib.
pub fn serialize_part(modes: &[u8], xattrs: &[u8], payload: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(modes.len() + xattrs.len() + payload.len() + ops.len() + 32);
    write_part_into(&mut out, modes, xattrs, payload, ops);
    out
}

fn write_part_into(out: &mut Vec<u8>, modes: &[u8], xattrs: &[u8], payload: &[u8], ops: &[u8]) {
    out.extend_from_slice(modes);
    let e1 = out.len();
    out.extend_from_slice(xattrs);
    let e2 = out.len();
    out.extend_from_slice(payload);
    let e3 = out.len();
    out.extend_from_slice(ops);
    let body = out.len();
    // GLib picks the smallest offset size w with body + 3*w fitting in w bytes.
    let w = if body + 3 <= 0xff {
        1
    } else if body + 6 <= 0xffff {
        2
    } else if body + 12 <= 0xffff_ffff {
        4
    } else {
        8
    };
    for o in [e3, e2, e1] {
        out.extend_from_slice(&(o as u64).to_le_bytes()[..w]);
    }
}

/// Streaming writer of a part variant: the members are written straight into an output (an
/// xz encoder), the framing at the end. Used by the generator to avoid a copy of the payload.
pub fn write_part<W: Write>(
    w: &mut W,
    modes: &[u8],
    xattrs: &[u8],
    payload: &[u8],
    ops: &[u8],
) -> std::io::Result<()> {
    let mut tail = Vec::new();
    w.write_all(modes)?;
    w.write_all(xattrs)?;
    w.write_all(payload)?;
    w.write_all(ops)?;
    let e1 = modes.len();
    let e2 = e1 + xattrs.len();
    let e3 = e2 + payload.len();
    let body = e3 + ops.len();
    let wd = if body + 3 <= 0xff {
        1
    } else if body + 6 <= 0xffff {
        2
    } else if body + 12 <= 0xffff_ffff {
        4
    } else {
        8
    };
    for o in [e3, e2, e1] {
        tail.extend_from_slice(&(o as u64).to_le_bytes()[..wd]);
    }
    w.write_all(&tail)
}

/// The decompressed-size limit of a part: its declared object sizes, plus room for tables,
/// operations, source checksums and bsdiff overhead. Anything beyond is a decompression bomb.
pub fn part_size_limit(h: &PartHeader) -> u64 {
    h.usize
        .saturating_mul(2)
        .saturating_add(16 * 1024 * 1024)
        .saturating_add((h.objects.len() as u64).saturating_mul(8192))
}

/// Verify and decompress a part file (`(yay)` bytes). `expected` is checked first (size and
/// SHA-256), then the content is decompressed with at most `limit` bytes of output.
pub fn open_part(raw: &[u8], expected: Option<&PartHeader>, limit: u64) -> Result<PartPayload> {
    if let Some(h) = expected {
        check_part(raw, h)?;
    }
    let (&comptype, body) = raw
        .split_first()
        .ok_or_else(|| Error::corrupted("Reading initial compression flag byte: empty part"))?;
    let data = match comptype {
        COMPRESSION_NONE => {
            if body.len() as u64 > limit {
                return Err(Error::corrupted(
                    "Static delta part larger than its declared size",
                ));
            }
            Bytes::copy_from_slice(body)
        }
        COMPRESSION_XZ => Bytes::from(xz_decompress(body, limit)?),
        c => return Err(Error::corrupted(format!("Invalid compression type '{c}'"))),
    };
    PartPayload::parse(data)
}

/// Check a part file's size and SHA-256 against its header.
pub fn check_part(raw: &[u8], h: &PartHeader) -> Result<()> {
    if raw.len() as u64 != h.size {
        return Err(Error::corrupted(format!(
            "Static delta part has size {} but the superblock says {}",
            raw.len(),
            h.size
        )));
    }
    let actual = Checksum::of(raw);
    if actual != h.checksum {
        return Err(Error::corrupted(format!(
            "Checksum mismatch in static delta part; expected={} actual={}",
            h.checksum, actual
        )));
    }
    Ok(())
}

/// Decompress an xz stream, failing beyond `limit` bytes of output (bytes after the end of
/// the stream are ignored).
pub fn xz_decompress(data: &[u8], limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(64 * 1024 * 1024) as usize);
    xz_decompress_to(data, limit, &mut out)?;
    Ok(out)
}

/// Decompress an xz stream into `out`, failing beyond `limit` bytes of output (nothing past
/// it is written); returns the number of bytes written. The output is never held in memory
/// whole.
pub fn xz_decompress_to<R: Read, W: Write>(data: R, limit: u64, out: &mut W) -> Result<u64> {
    super::xz::decode(data, limit, out, XZ_MEMLIMIT, true, 0)
}

/// [`xz_decompress_to`] without computing the stream's own check (CRC64), for data whose
/// integrity is checked otherwise (a delta part whose SHA-256 was verified, every object it
/// produces verified again before it is stored): the CRC costs ~10% of the decoding time.
/// `expected` is the size the output should have (a part's declared uncompressed size): the
/// decoder's dictionary goes on huge pages as far as that fills them (see `delta::xz`).
pub fn xz_decompress_to_unchecked<R: Read, W: Write>(
    data: R,
    limit: u64,
    out: &mut W,
    expected: u64,
) -> Result<u64> {
    super::xz::decode(data, limit, out, XZ_MEMLIMIT, false, expected)
}

/// Compress with xz at `preset` (CRC64 check, as ostree), using `dict_size` if given.
pub fn xz_compress_into<W: Write>(
    out: W,
    preset: u32,
    dict_size: Option<u32>,
) -> Result<liblzma::write::XzEncoder<W>> {
    let mut opts = liblzma::stream::LzmaOptions::new_preset(preset)
        .map_err(|e| Error::Other(format!("lzma: {e}")))?;
    if let Some(d) = dict_size {
        opts.dict_size(d);
    }
    let mut filters = liblzma::stream::Filters::new();
    filters.lzma2(&opts);
    let stream =
        liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc64)
            .map_err(|e| Error::Other(format!("lzma: {e}")))?;
    Ok(liblzma::write::XzEncoder::new_stream(out, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 1 << 21, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            write_varuint(&mut b, v);
            let mut p = 0;
            assert_eq!(read_varuint(&b, &mut p).unwrap(), v);
            assert_eq!(p, b.len());
        }
        assert!(read_varuint(&[0x80], &mut 0).is_err());
        assert!(read_varuint(&[0xff; 11], &mut 0).is_err());
    }

    #[test]
    fn names_and_paths() {
        let to =
            Checksum::from_hex("dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f")
                .unwrap();
        let n = DeltaName { from: None, to };
        assert_eq!(
            n.superblock_path(),
            "deltas/37/l8qQRaF08wVzLbUWCOiCf0uYCC1RFzK7PzPZTveD8/superblock"
        );
        assert_eq!(DeltaName::parse(&n.to_string()).unwrap(), n);
        let dir = n.dir();
        let comps: Vec<&str> = dir.split('/').collect();
        assert_eq!(
            DeltaName::from_dir_components(comps[1], comps[2]).unwrap(),
            n
        );
        let m = DeltaName { from: Some(to), to };
        let dir = m.dir();
        let comps: Vec<&str> = dir.split('/').collect();
        assert_eq!(
            DeltaName::from_dir_components(comps[1], comps[2]).unwrap(),
            m
        );
        assert_eq!(
            DeltaName::parse("GARBAGE").unwrap_err().to_string(),
            "Invalid rev GARBAGE"
        );
    }

    #[test]
    fn part_roundtrip() {
        let p = PartPayload {
            modes: vec![(0, 0, 0o100644)],
            xattrs: vec![vec![], vec![(b"user.a".to_vec(), b"b".to_vec())]],
            payload: Bytes::from_static(b"hello"),
            ops: Bytes::from_static(&[b'S', 0, 0, 5, 0]),
        };
        let b = p.to_bytes();
        let ty = stype(PART_FORMAT);
        // Same bytes as the generic serializer.
        let generic = Variant::from_bytes(&ty, &b).unwrap();
        assert_eq!(generic.to_bytes(), b);
        let q = PartPayload::parse(Bytes::from(b.clone())).unwrap();
        assert_eq!(q.modes, p.modes);
        assert_eq!(q.xattrs, p.xattrs);
        assert_eq!(q.payload, p.payload);
        assert_eq!(q.ops, p.ops);
        let mut streamed = Vec::new();
        let xv = Variant::Array(
            stype("a(ayay)"),
            p.xattrs.iter().map(xattrs_to_variant).collect(),
        );
        let mv = Variant::Array(
            stype("(uuu)"),
            vec![Variant::Tuple(vec![
                Variant::U32(0),
                Variant::U32(0),
                Variant::U32(0o100644u32.to_be()),
            ])],
        );
        write_part(
            &mut streamed,
            &mv.to_bytes(),
            &xv.to_bytes(),
            b"hello",
            &p.ops,
        )
        .unwrap();
        assert_eq!(streamed, b);
    }
}
