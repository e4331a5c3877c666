//! Typed OSTree objects and their exact GVariant encodings.
//!
//! Every encoder here produces the bytes real ostree 2022.7 writes (integers that ostree
//! byte-swaps are stored big-endian; framing in GVariant normal form). Every decoder validates
//! framing and content (names, checksum lengths) and never panics.

use std::io::Read;

use crate::gvariant::{Variant, VariantType};
use crate::{Checksum, Error, Result};

/// Extended attributes: `(name without its trailing NUL, value)`, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// File-type bits of `st_mode`.
pub const S_IFMT: u32 = 0o170000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;

fn xattrs_to_variant(x: &Xattrs) -> Variant {
    Variant::Array(
        VariantType::Tuple(vec![
            VariantType::Array(Box::new(VariantType::Byte)),
            VariantType::Array(Box::new(VariantType::Byte)),
        ]),
        x.iter()
            .map(|(k, v)| {
                let mut name = k.clone();
                name.push(0);
                Variant::Tuple(vec![Variant::Bytes(name), Variant::Bytes(v.clone())])
            })
            .collect(),
    )
}

fn xattrs_from_variant(v: &Variant) -> Result<Xattrs> {
    let items = v
        .as_array()
        .ok_or_else(|| Error::corrupted("xattrs are not a(ayay)"))?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let t = it.as_tuple().unwrap_or(&[]);
        let (Some(k), Some(val)) = (
            t.first().and_then(Variant::as_bytes),
            t.get(1).and_then(Variant::as_bytes),
        ) else {
            return Err(Error::corrupted("malformed xattr entry"));
        };
        let name = match k.split_last() {
            Some((0, n)) if !n.is_empty() && !n.contains(&0) => n.to_vec(),
            _ => {
                return Err(Error::corrupted(
                    "xattr name is not a NUL-terminated string",
                ));
            }
        };
        out.push((name, val.to_vec()));
    }
    Ok(out)
}

/// Decode a serialized `a(ayay)` xattrs variant (a `bare-split-xattrs` repository's
/// `.file-xattrs` objects).
pub fn parse_xattrs(data: &[u8]) -> Result<Xattrs> {
    let v = Variant::from_bytes(&VariantType::parse("a(ayay)")?, data)?;
    xattrs_from_variant(&v)
}

/// Sort xattrs the way ostree does (by name, bytewise).
pub fn sort_xattrs(x: &mut Xattrs) {
    x.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Metadata of a content (file) object: what the checksum covers besides the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FileMeta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full `st_mode` including the file-type bits.
    pub mode: u32,
    /// Symlink target (symlinks only).
    pub symlink_target: Option<String>,
    /// Extended attributes, sorted.
    pub xattrs: Xattrs,
}

impl FileMeta {
    /// True for symbolic links.
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
    /// True for regular files.
    pub fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    fn common_fields(&self) -> Vec<Variant> {
        vec![
            Variant::U32(self.uid.to_be()),
            Variant::U32(self.gid.to_be()),
            Variant::U32(self.mode.to_be()),
            Variant::U32(0),
            Variant::Str(self.symlink_target.clone().unwrap_or_default()),
            xattrs_to_variant(&self.xattrs),
        ]
    }

    /// The `(uuuusa(ayay))` header variant (no length prefix).
    pub fn header_variant(&self) -> Variant {
        Variant::Tuple(self.common_fields())
    }

    /// The checksum-stream header: u32 BE length, 4 zero bytes, then the header variant.
    pub fn file_header(&self) -> Vec<u8> {
        lenprefixed(&self.header_variant().to_bytes())
    }

    /// The archive (`.filez`) header for content of `size` bytes.
    pub fn archive_header(&self, size: u64) -> Vec<u8> {
        let mut fields = vec![Variant::U64(size.to_be())];
        fields.extend(self.common_fields());
        lenprefixed(&Variant::Tuple(fields).to_bytes())
    }

    fn from_common(f: &[Variant]) -> Result<Self> {
        let u = |i: usize| {
            f.get(i)
                .and_then(Variant::as_u32)
                .map(u32::from_be)
                .ok_or_else(|| Error::corrupted("malformed file header"))
        };
        let target = f
            .get(4)
            .and_then(Variant::as_str)
            .ok_or_else(|| Error::corrupted("malformed file header"))?;
        let mode = u(2)?;
        let xattrs = xattrs_from_variant(
            f.get(5)
                .ok_or_else(|| Error::corrupted("malformed file header"))?,
        )?;
        let meta = FileMeta {
            uid: u(0)?,
            gid: u(1)?,
            mode,
            symlink_target: if mode & S_IFMT == S_IFLNK {
                Some(target.to_string())
            } else {
                None
            },
            xattrs,
        };
        meta.validate()?;
        Ok(meta)
    }

    /// Reject metadata ostree would refuse (types other than regular/symlink, bad targets).
    pub fn validate(&self) -> Result<()> {
        match self.mode & S_IFMT {
            S_IFREG => {
                if self.symlink_target.is_some() {
                    return Err(Error::corrupted("regular file with a symlink target"));
                }
            }
            S_IFLNK => match &self.symlink_target {
                Some(t) if !t.is_empty() => {}
                _ => return Err(Error::corrupted("Invalid symlink target: empty")),
            },
            _ => {
                return Err(Error::corrupted(format!(
                    "Corrupted file object; invalid mode {:o}",
                    self.mode
                )));
            }
        }
        Ok(())
    }

    /// Parse the checksum-stream header at the start of `data`; returns the meta and the
    /// number of header bytes.
    pub fn parse_file_header(data: &[u8]) -> Result<(FileMeta, usize)> {
        let (body, used) = split_lenprefixed(data)?;
        let v = Variant::from_bytes(&VariantType::parse("(uuuusa(ayay))")?, body)?;
        Ok((FileMeta::from_common(v.as_tuple().unwrap_or(&[]))?, used))
    }

    /// Parse an archive (`.filez`) header at the start of `data`; returns the meta, the
    /// uncompressed size and the number of header bytes.
    pub fn parse_archive_header(data: &[u8]) -> Result<(FileMeta, u64, usize)> {
        let (body, used) = split_lenprefixed(data)?;
        let v = Variant::from_bytes(&VariantType::parse("(tuuuusa(ayay))")?, body)?;
        let f = v.as_tuple().unwrap_or(&[]);
        let size = f
            .first()
            .and_then(Variant::as_u64)
            .map(u64::from_be)
            .ok_or_else(|| Error::corrupted("malformed archive header"))?;
        Ok((FileMeta::from_common(&f[1..])?, size, used))
    }
}

/// Largest header we accept (ostree's own limit for the file header is generous; xattrs can
/// make it big, but 10 MiB is the metadata cap).
pub const MAX_HEADER_SIZE: usize = 10 * 1024 * 1024;

fn lenprefixed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(body);
    out
}

fn split_lenprefixed(data: &[u8]) -> Result<(&[u8], usize)> {
    if data.len() < 8 {
        return Err(Error::corrupted("File header too short"));
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if len > MAX_HEADER_SIZE {
        return Err(Error::corrupted(format!(
            "File header size {len} too large"
        )));
    }
    let body = data
        .get(8..8 + len)
        .ok_or_else(|| Error::corrupted("File header truncated"))?;
    Ok((body, 8 + len))
}

/// Read a length-prefixed header from a stream (returns the raw header bytes including prefix).
pub fn read_lenprefixed_header(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| Error::corrupted(format!("File header truncated: {e}")))?;
    let len = u32::from_be_bytes([pre[0], pre[1], pre[2], pre[3]]) as usize;
    if len > MAX_HEADER_SIZE {
        return Err(Error::corrupted(format!(
            "File header size {len} too large"
        )));
    }
    let mut buf = vec![0u8; 8 + len];
    buf[..8].copy_from_slice(&pre);
    r.read_exact(&mut buf[8..])
        .map_err(|e| Error::corrupted(format!("File header truncated: {e}")))?;
    Ok(buf)
}

/// Checksum of a content object from its metadata and (for regular files) its bytes.
pub fn content_checksum(meta: &FileMeta, content: impl Read) -> Result<Checksum> {
    let mut h = crate::checksum::Hasher::new();
    h.update(&meta.file_header());
    if meta.is_regular() {
        // A large buffer (fewer, larger calls into an inflating reader than io::copy's
        // 8 KiB), taken from a small shared pool: zeroing a fresh one per small object would
        // cost more than hashing it, and one per thread would grow with tokio's blocking pool.
        static BUFS: crate::pool::Pool<Vec<u8>> = crate::pool::Pool::new(8);
        let mut buf = BUFS.take().unwrap_or_else(|| vec![0; 128 * 1024]);
        let mut content = content;
        let r = loop {
            match content.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Error::io("reading content", e)),
            }
        };
        BUFS.give(buf);
        r?;
    }
    Ok(h.finish())
}

/// Directory metadata `(uuua(ayay))`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DirMeta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Full mode including `S_IFDIR`.
    pub mode: u32,
    /// Extended attributes, sorted.
    pub xattrs: Xattrs,
}

impl DirMeta {
    /// Encode.
    pub fn to_bytes(&self) -> Vec<u8> {
        Variant::Tuple(vec![
            Variant::U32(self.uid.to_be()),
            Variant::U32(self.gid.to_be()),
            Variant::U32(self.mode.to_be()),
            xattrs_to_variant(&self.xattrs),
        ])
        .to_bytes()
    }

    /// Decode and validate.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let v = Variant::from_bytes(&VariantType::parse("(uuua(ayay))")?, data)?;
        let f = v.as_tuple().unwrap_or(&[]);
        let u = |i: usize| {
            f.get(i)
                .and_then(Variant::as_u32)
                .map(u32::from_be)
                .ok_or_else(|| Error::corrupted("malformed dirmeta"))
        };
        let m = DirMeta {
            uid: u(0)?,
            gid: u(1)?,
            mode: u(2)?,
            xattrs: xattrs_from_variant(
                f.get(3)
                    .ok_or_else(|| Error::corrupted("malformed dirmeta"))?,
            )?,
        };
        if m.mode & S_IFMT != S_IFDIR {
            return Err(Error::corrupted(format!(
                "Corrupted dirmeta object; invalid mode {:o}",
                m.mode
            )));
        }
        Ok(m)
    }

    /// Checksum of the encoding.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }
}

/// Bytes of a bare-user `user.ostreemeta` xattr: `(uuua(ayay))` of the file's real metadata.
pub fn bare_user_meta(meta: &FileMeta) -> Vec<u8> {
    DirMetaLike {
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        xattrs: &meta.xattrs,
    }
    .to_bytes()
}

/// Parse a `user.ostreemeta` xattr into (uid, gid, mode, xattrs).
pub fn parse_bare_user_meta(data: &[u8]) -> Result<(u32, u32, u32, Xattrs)> {
    let v = Variant::from_bytes(&VariantType::parse("(uuua(ayay))")?, data)?;
    let f = v.as_tuple().unwrap_or(&[]);
    let u = |i: usize| {
        f.get(i)
            .and_then(Variant::as_u32)
            .map(u32::from_be)
            .ok_or_else(|| Error::corrupted("malformed user.ostreemeta"))
    };
    Ok((
        u(0)?,
        u(1)?,
        u(2)?,
        xattrs_from_variant(
            f.get(3)
                .ok_or_else(|| Error::corrupted("malformed user.ostreemeta"))?,
        )?,
    ))
}

struct DirMetaLike<'a> {
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &'a Xattrs,
}

impl DirMetaLike<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        Variant::Tuple(vec![
            Variant::U32(self.uid.to_be()),
            Variant::U32(self.gid.to_be()),
            Variant::U32(self.mode.to_be()),
            xattrs_to_variant(self.xattrs),
        ])
        .to_bytes()
    }
}

/// Validate one path component as ostree does for dirtree entries.
pub fn validate_filename(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::corrupted("Invalid empty filename"));
    }
    if name == "." || name == ".." {
        return Err(Error::corrupted(format!(
            "Invalid special element '{name}' in filename"
        )));
    }
    if name.contains('/') {
        return Err(Error::corrupted(format!("Invalid / in filename {name}")));
    }
    Ok(())
}

/// A directory listing `(a(say)a(sayay))`; both lists sorted by name (bytewise).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DirTree {
    /// `(name, content checksum)`.
    pub files: Vec<(String, Checksum)>,
    /// `(name, dirtree checksum, dirmeta checksum)`.
    pub dirs: Vec<(String, Checksum, Checksum)>,
}

impl DirTree {
    /// Encode (sorts nothing: callers keep both lists sorted).
    pub fn to_bytes(&self) -> Vec<u8> {
        let say = VariantType::parse("(say)").expect("static type string");
        let sayay = VariantType::parse("(sayay)").expect("static type string");
        Variant::Tuple(vec![
            Variant::Array(
                say,
                self.files
                    .iter()
                    .map(|(n, c)| {
                        Variant::Tuple(vec![Variant::Str(n.clone()), Variant::Bytes(c.0.to_vec())])
                    })
                    .collect(),
            ),
            Variant::Array(
                sayay,
                self.dirs
                    .iter()
                    .map(|(n, t, m)| {
                        Variant::Tuple(vec![
                            Variant::Str(n.clone()),
                            Variant::Bytes(t.0.to_vec()),
                            Variant::Bytes(m.0.to_vec()),
                        ])
                    })
                    .collect(),
            ),
        ])
        .to_bytes()
    }

    /// Decode and validate: names must be valid single components, unique and sorted
    /// (across files and directories), checksums 32 bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let v = Variant::from_bytes(&VariantType::parse("(a(say)a(sayay))")?, data)?;
        let f = v.as_tuple().unwrap_or(&[]);
        let bad = || Error::corrupted("malformed dirtree");
        let mut tree = DirTree::default();
        for it in f.first().and_then(Variant::as_array).ok_or_else(bad)? {
            let t = it.as_tuple().ok_or_else(bad)?;
            let name = t.first().and_then(Variant::as_str).ok_or_else(bad)?;
            let csum = t.get(1).and_then(Variant::as_bytes).ok_or_else(bad)?;
            validate_filename(name)?;
            tree.files
                .push((name.to_string(), Checksum::from_bytes(csum)?));
        }
        for it in f.get(1).and_then(Variant::as_array).ok_or_else(bad)? {
            let t = it.as_tuple().ok_or_else(bad)?;
            let name = t.first().and_then(Variant::as_str).ok_or_else(bad)?;
            let c1 = t.get(1).and_then(Variant::as_bytes).ok_or_else(bad)?;
            let c2 = t.get(2).and_then(Variant::as_bytes).ok_or_else(bad)?;
            validate_filename(name)?;
            tree.dirs.push((
                name.to_string(),
                Checksum::from_bytes(c1)?,
                Checksum::from_bytes(c2)?,
            ));
        }
        for w in tree.files.windows(2) {
            if w[0].0.as_bytes() >= w[1].0.as_bytes() {
                return Err(Error::corrupted(format!(
                    "Invalid dirtree: files not sorted or duplicated ({})",
                    w[1].0
                )));
            }
        }
        for w in tree.dirs.windows(2) {
            if w[0].0.as_bytes() >= w[1].0.as_bytes() {
                return Err(Error::corrupted(format!(
                    "Invalid dirtree: directories not sorted or duplicated ({})",
                    w[1].0
                )));
            }
        }
        if !tree.files.is_empty() && !tree.dirs.is_empty() {
            let mut names: Vec<&str> = tree.files.iter().map(|f| f.0.as_str()).collect();
            names.sort_unstable();
            for d in &tree.dirs {
                if names.binary_search(&d.0.as_str()).is_ok() {
                    return Err(Error::corrupted(format!(
                        "Invalid dirtree: duplicate name {}",
                        d.0
                    )));
                }
            }
        }
        Ok(tree)
    }

    /// Checksum of the encoding.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }
}

/// An ordered `a{sv}` dictionary (key order is preserved: it is hashed).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata(pub Vec<(String, Variant)>);

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Metadata(Vec::new())
    }
    /// Look up a key (unboxed value).
    pub fn get(&self, key: &str) -> Option<&Variant> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Insert or replace a key, keeping the position of an existing key.
    pub fn insert(&mut self, key: impl Into<String>, value: Variant) {
        let key = key.into();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.0.push((key, value));
        }
    }
    /// Remove a key.
    pub fn remove(&mut self, key: &str) -> Option<Variant> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// As an `a{sv}` variant.
    pub fn to_variant(&self) -> Variant {
        Variant::Array(
            VariantType::DictEntry(Box::new(VariantType::Str), Box::new(VariantType::Variant)),
            self.0
                .iter()
                .map(|(k, v)| {
                    Variant::DictEntry(
                        Box::new(Variant::Str(k.clone())),
                        Box::new(Variant::Variant(Box::new(v.clone()))),
                    )
                })
                .collect(),
        )
    }
    /// From an `a{sv}` variant.
    pub fn from_variant(v: &Variant) -> Result<Self> {
        let bad = || Error::corrupted("metadata is not a{sv}");
        let mut out = Vec::new();
        for e in v.as_array().ok_or_else(bad)? {
            let Variant::DictEntry(k, val) = e else {
                return Err(bad());
            };
            let k = k.as_str().ok_or_else(bad)?;
            let val = val.as_variant().ok_or_else(bad)?;
            out.push((k.to_string(), val.clone()));
        }
        Ok(Metadata(out))
    }
    /// Encode as `a{sv}`.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_variant().to_bytes()
    }
    /// Decode `a{sv}`.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        Metadata::from_variant(&Variant::from_bytes(&VariantType::parse("a{sv}")?, data)?)
    }
}

/// A commit `(a{sv}aya(say)sstayay)`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Commit {
    /// Commit metadata (ordered).
    pub metadata: Metadata,
    /// Parent commit.
    pub parent: Option<Checksum>,
    /// "Related objects" (unused by ostree; kept for round-trips).
    pub related: Vec<(String, Checksum)>,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Seconds since the epoch, UTC.
    pub timestamp: u64,
    /// Root dirtree.
    pub root_tree: Checksum,
    /// Root dirmeta.
    pub root_meta: Checksum,
}

impl Commit {
    /// Encode.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_variant().to_bytes()
    }

    /// As a variant.
    pub fn to_variant(&self) -> Variant {
        Variant::Tuple(vec![
            self.metadata.to_variant(),
            Variant::Bytes(self.parent.map(|c| c.0.to_vec()).unwrap_or_default()),
            Variant::Array(
                VariantType::parse("(say)").expect("static type string"),
                self.related
                    .iter()
                    .map(|(n, c)| {
                        Variant::Tuple(vec![Variant::Str(n.clone()), Variant::Bytes(c.0.to_vec())])
                    })
                    .collect(),
            ),
            Variant::Str(self.subject.clone()),
            Variant::Str(self.body.clone()),
            Variant::U64(self.timestamp.to_be()),
            Variant::Bytes(self.root_tree.0.to_vec()),
            Variant::Bytes(self.root_meta.0.to_vec()),
        ])
    }

    /// Decode and validate.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let v = Variant::from_bytes(&VariantType::parse("(a{sv}aya(say)sstayay)")?, data)?;
        let f = v.as_tuple().unwrap_or(&[]);
        let bad = || Error::corrupted("malformed commit");
        let parent = f.get(1).and_then(Variant::as_bytes).ok_or_else(bad)?;
        let mut related = Vec::new();
        for it in f.get(2).and_then(Variant::as_array).ok_or_else(bad)? {
            let t = it.as_tuple().ok_or_else(bad)?;
            related.push((
                t.first()
                    .and_then(Variant::as_str)
                    .ok_or_else(bad)?
                    .to_string(),
                Checksum::from_bytes(t.get(1).and_then(Variant::as_bytes).ok_or_else(bad)?)?,
            ));
        }
        Ok(Commit {
            metadata: Metadata::from_variant(f.first().ok_or_else(bad)?)?,
            parent: if parent.is_empty() {
                None
            } else {
                Some(Checksum::from_bytes(parent)?)
            },
            related,
            subject: f
                .get(3)
                .and_then(Variant::as_str)
                .ok_or_else(bad)?
                .to_string(),
            body: f
                .get(4)
                .and_then(Variant::as_str)
                .ok_or_else(bad)?
                .to_string(),
            timestamp: u64::from_be(f.get(5).and_then(Variant::as_u64).ok_or_else(bad)?),
            root_tree: Checksum::from_bytes(f.get(6).and_then(Variant::as_bytes).ok_or_else(bad)?)?,
            root_meta: Checksum::from_bytes(f.get(7).and_then(Variant::as_bytes).ok_or_else(bad)?)?,
        })
    }

    /// Checksum of the encoding.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    /// The checks of `ostree_validate_structureof_commit` beyond the encoding (which
    /// [`Commit::from_bytes`] does): no empty metadata key.
    pub fn validate_structure(&self) -> Result<()> {
        if self.metadata.0.iter().any(|(k, _)| k.is_empty()) {
            return Err(Error::invalid("Empty metadata key"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Checksum {
        Checksum::from_hex(s).unwrap()
    }

    #[test]
    fn vector_v1_objects() {
        let hello = FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o644,
            symlink_target: None,
            xattrs: vec![],
        };
        assert_eq!(
            content_checksum(&hello, &b"hello world\n"[..])
                .unwrap()
                .to_string(),
            "81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6"
        );
        let link = FileMeta {
            mode: S_IFLNK | 0o777,
            symlink_target: Some("hello.txt".into()),
            ..Default::default()
        };
        assert_eq!(
            content_checksum(&link, std::io::empty())
                .unwrap()
                .to_string(),
            "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
        );
        let dm = DirMeta {
            uid: 0,
            gid: 0,
            mode: S_IFDIR | 0o755,
            xattrs: vec![],
        };
        assert_eq!(
            dm.checksum().to_string(),
            "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
        );
        let empty = DirTree::default();
        assert_eq!(
            empty.checksum().to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let root = DirTree {
            files: vec![
                (
                    "hello.txt".into(),
                    h("81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6"),
                ),
                (
                    "link".into(),
                    h("f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"),
                ),
                (
                    "run.sh".into(),
                    h("89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"),
                ),
            ],
            dirs: vec![("emptydir".into(), empty.checksum(), dm.checksum())],
        };
        assert_eq!(root.to_bytes().len(), 201);
        assert_eq!(
            root.checksum().to_string(),
            "aa43f21c69fb397f11ece64accc80726f588147a5f4f128ea2a19893d4141630"
        );
        assert_eq!(DirTree::from_bytes(&root.to_bytes()).unwrap(), root);
        let commit = Commit {
            subject: "v1 subject".into(),
            body: "v1 body".into(),
            timestamp: 1609459200,
            root_tree: root.checksum(),
            root_meta: dm.checksum(),
            ..Default::default()
        };
        assert_eq!(commit.to_bytes().len(), 102);
        assert_eq!(
            commit.checksum().to_string(),
            "dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f"
        );
        assert_eq!(Commit::from_bytes(&commit.to_bytes()).unwrap(), commit);
    }

    #[test]
    fn vector_v3_data_with_xattr() {
        let meta = FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o640,
            symlink_target: None,
            xattrs: vec![(b"user.test".to_vec(), b"hello".to_vec())],
        };
        let content = [b'x'; 100];
        assert_eq!(
            content_checksum(&meta, &content[..]).unwrap().to_string(),
            "c4ccdcc248c27e4879845419a1b0de33192e098f9d87977268b73b9e1ac93276"
        );
        let hdr = meta.file_header();
        let (back, used) = FileMeta::parse_file_header(&hdr).unwrap();
        assert_eq!(back, meta);
        assert_eq!(used, hdr.len());
    }

    #[test]
    fn vector_v3_commit_with_metadata() {
        // v3: version then ostree.ref-binding, parent v1.
        let mut md = Metadata::new();
        md.insert("version", Variant::Str("3.0".into()));
        md.insert("ostree.ref-binding", Variant::str_array(&["v3"]));
        let c = Commit {
            metadata: md,
            parent: Some(h(
                "dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f",
            )),
            subject: "v3".into(),
            body: String::new(),
            timestamp: 1609459200,
            root_tree: h("c4b2038a2f36257d46e3ea45262ecba3aec3fdf5432edb6bba71206704f45f76"),
            root_meta: h("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"),
            related: vec![],
        };
        assert_eq!(
            c.checksum().to_string(),
            "748d8d15a88624beb167b5f3aa5caa317914b3a4d096380aaa4705011c05444c"
        );
    }

    #[test]
    fn hostile_dirtree_rejected() {
        for name in ["", ".", "..", "a/b"] {
            let t = DirTree {
                files: vec![(name.into(), Checksum::default())],
                dirs: vec![],
            };
            assert!(DirTree::from_bytes(&t.to_bytes()).is_err(), "{name:?}");
        }
        let dup = DirTree {
            files: vec![
                ("a".into(), Checksum::default()),
                ("a".into(), Checksum::default()),
            ],
            dirs: vec![],
        };
        assert!(DirTree::from_bytes(&dup.to_bytes()).is_err());
        let cross = DirTree {
            files: vec![("a".into(), Checksum::default())],
            dirs: vec![("a".into(), Checksum::default(), Checksum::default())],
        };
        assert!(DirTree::from_bytes(&cross.to_bytes()).is_err());
    }

    #[test]
    fn archive_header_vector() {
        // abs-link .filez from EXPECTED.txt (46 bytes)
        let meta = FileMeta {
            mode: S_IFLNK | 0o777,
            symlink_target: Some("/usr/bin/env".into()),
            ..Default::default()
        };
        let hdr = meta.archive_header(0);
        assert_eq!(hdr.len(), 46);
        assert_eq!(&hdr[..4], &[0, 0, 0, 0x26]);
        let (m, size, used) = FileMeta::parse_archive_header(&hdr).unwrap();
        assert_eq!((m, size, used), (meta, 0, 46));
    }
}
