//! Object types and object names.

use std::fmt;

use crate::{Checksum, Error, Result};

/// The kind of an OSTree object (values are ostree's `OstreeObjectType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ObjectType {
    /// File content with its metadata (`.file` / `.filez`).
    File = 1,
    /// A directory listing (`.dirtree`).
    DirTree = 2,
    /// Directory metadata (`.dirmeta`).
    DirMeta = 3,
    /// A commit (`.commit`).
    Commit = 4,
    /// A marker for a deleted commit (`.tombstone-commit`).
    TombstoneCommit = 5,
    /// Detached commit metadata (`.commitmeta`).
    CommitMeta = 6,
}

impl ObjectType {
    /// All types, in enum order.
    pub const ALL: [ObjectType; 6] = [
        ObjectType::File,
        ObjectType::DirTree,
        ObjectType::DirMeta,
        ObjectType::Commit,
        ObjectType::TombstoneCommit,
        ObjectType::CommitMeta,
    ];

    /// The name ostree prints (`file`, `dirtree`, …); also used in `commit:CSUM`-style refs.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::TombstoneCommit => "tombstone-commit",
            ObjectType::CommitMeta => "commitmeta",
        }
    }

    /// Parse an object type name.
    pub fn from_name(s: &str) -> Result<Self> {
        Ok(match s {
            "file" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "tombstone-commit" => ObjectType::TombstoneCommit,
            "commitmeta" => ObjectType::CommitMeta,
            _ => return Err(Error::invalid(format!("Invalid object type '{s}'"))),
        })
    }

    /// From the numeric value used inside deltas and summaries.
    pub fn from_u8(v: u8) -> Result<Self> {
        ObjectType::ALL
            .into_iter()
            .find(|t| *t as u8 == v)
            .ok_or_else(|| Error::corrupted(format!("Invalid object type {v}")))
    }

    /// True for metadata objects (everything but file content), as `OSTREE_OBJECT_TYPE_IS_META`.
    pub fn is_meta(self) -> bool {
        self != ObjectType::File
    }

    /// The on-disk extension; `archive` selects `.filez` for content.
    pub fn extension(self, archive: bool) -> &'static str {
        match self {
            ObjectType::File if archive => "filez",
            ObjectType::File => "file",
            t => t.name(),
        }
    }

    /// The GVariant type string of a metadata object.
    pub fn variant_type(self) -> Option<&'static str> {
        match self {
            ObjectType::File => None,
            ObjectType::DirTree => Some("(a(say)a(sayay))"),
            ObjectType::DirMeta => Some("(uuua(ayay))"),
            ObjectType::Commit => Some("(a{sv}aya(say)sstayay)"),
            ObjectType::TombstoneCommit | ObjectType::CommitMeta => Some("a{sv}"),
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of one object: its type and checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjectKey {
    /// The object's checksum.
    pub checksum: Checksum,
    /// The object's type.
    pub ty: ObjectType,
}

impl ObjectKey {
    /// A key.
    pub fn new(checksum: Checksum, ty: ObjectType) -> Self {
        ObjectKey { checksum, ty }
    }

    /// Relative path in a repository: `objects/ab/cdef….ext`.
    pub fn loose_path(&self, archive: bool) -> String {
        let hex = self.checksum.to_hex();
        format!(
            "objects/{}/{}.{}",
            &hex[..2],
            &hex[2..],
            self.ty.extension(archive)
        )
    }

    /// Parse a loose object path relative to `objects/` (`ab/cdef….ext`) or a file name within a
    /// fan-out directory (prefix given separately).
    pub fn from_loose_name(prefix: &str, name: &str) -> Option<Self> {
        let (rest, ext) = name.rsplit_once('.')?;
        let ty = match ext {
            "file" | "filez" => ObjectType::File,
            other => ObjectType::from_name(other).ok()?,
        };
        if prefix.len() != 2 || rest.len() != 62 {
            return None;
        }
        let hex = format!("{prefix}{rest}");
        if !crate::checksum::is_valid_hex(&hex) || hex.bytes().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        Some(ObjectKey::new(Checksum::from_hex(&hex).ok()?, ty))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.checksum, self.ty.name())
    }
}
