//! Snapshot a directory tree and compare two snapshots.
//!
//! A snapshot records, for every path (the root is `""`): its kind, permission bits (including
//! setuid/setgid/sticky), owner, size and SHA-256 of regular files, symlink targets, all
//! extended attributes, and whether the mtime is the epoch (ostree checkouts set directory and
//! hardlinked-object mtimes to 0; the exact value of other mtimes is the checkout time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::fsutil::list_xattrs;

/// Kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Anything else (FIFO, socket, device): never expected in a checkout.
    Other,
}

/// One path in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind.
    pub kind: Kind,
    /// Permission bits, `mode & 0o7777`.
    pub perms: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size of regular files (0 otherwise).
    pub size: u64,
    /// Hex SHA-256 of a regular file's content.
    pub sha256: Option<String>,
    /// Symlink target bytes.
    pub target: Option<Vec<u8>>,
    /// Sorted extended attributes `(name, value)`.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether the mtime is exactly the epoch.
    pub mtime_zero: bool,
}

/// A tree snapshot: relative path bytes → entry.
pub type Snapshot = BTreeMap<Vec<u8>, Entry>;

/// What [`diff`] compares besides kind, content and symlink targets (always compared).
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    /// Permission bits.
    pub perms: bool,
    /// uid/gid.
    pub owners: bool,
    /// Extended attributes.
    pub xattrs: bool,
    /// The "mtime is the epoch" flag.
    pub mtime_zero: bool,
}

impl Compare {
    /// Everything.
    pub const ALL: Compare = Compare {
        perms: true,
        owners: true,
        xattrs: true,
        mtime_zero: true,
    };
    /// Everything but mtimes (for comparing a checkout with its source tree).
    pub const NO_MTIME: Compare = Compare {
        perms: true,
        owners: true,
        xattrs: true,
        mtime_zero: false,
    };
}

fn sha256_file(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Take a snapshot of everything under `root` (not following symlinks).
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, Vec::new(), &mut out);
    out
}

fn walk(path: &Path, rel: Vec<u8>, out: &mut Snapshot) {
    let md = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    let entry = Entry {
        kind,
        perms: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if kind == Kind::File { md.len() } else { 0 },
        sha256: (kind == Kind::File).then(|| sha256_file(path)),
        target: (kind == Kind::Symlink).then(|| {
            fs::read_link(path)
                .expect("readlink")
                .as_os_str()
                .as_bytes()
                .to_vec()
        }),
        xattrs: list_xattrs(path),
        mtime_zero: md.mtime() == 0 && md.mtime_nsec() == 0,
    };
    out.insert(rel.clone(), entry);
    if kind == Kind::Dir {
        let mut names: Vec<_> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", path.display()))
            .map(|e| e.expect("dirent").file_name())
            .collect();
        names.sort();
        for n in names {
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(n.as_bytes());
            walk(&path.join(&n), r, out);
        }
    }
}

fn show_path(p: &[u8]) -> String {
    if p.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", String::from_utf8_lossy(p).escape_debug())
    }
}

fn show_xattrs(x: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = x
        .iter()
        .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), hex::encode(v)))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Human-readable differences between two snapshots (empty if equal under `cmp`).
pub fn diff(a: &Snapshot, b: &Snapshot, cmp: Compare) -> Vec<String> {
    let mut d = Vec::new();
    for (p, ea) in a {
        let Some(eb) = b.get(p) else {
            d.push(format!("{}: only in A ({:?})", show_path(p), ea.kind));
            continue;
        };
        let mut s = String::new();
        if ea.kind != eb.kind {
            let _ = write!(s, " kind {:?} != {:?};", ea.kind, eb.kind);
        }
        if cmp.perms && ea.kind != Kind::Symlink && ea.perms != eb.perms {
            let _ = write!(s, " mode {:04o} != {:04o};", ea.perms, eb.perms);
        }
        if cmp.owners && (ea.uid, ea.gid) != (eb.uid, eb.gid) {
            let _ = write!(s, " owner {}:{} != {}:{};", ea.uid, ea.gid, eb.uid, eb.gid);
        }
        if ea.size != eb.size {
            let _ = write!(s, " size {} != {};", ea.size, eb.size);
        } else if ea.sha256 != eb.sha256 {
            let _ = write!(s, " content differs;");
        }
        if ea.target != eb.target {
            let _ = write!(
                s,
                " symlink target {:?} != {:?};",
                ea.target.as_deref().map(String::from_utf8_lossy),
                eb.target.as_deref().map(String::from_utf8_lossy)
            );
        }
        if cmp.xattrs && ea.xattrs != eb.xattrs {
            let _ = write!(
                s,
                " xattrs {} != {};",
                show_xattrs(&ea.xattrs),
                show_xattrs(&eb.xattrs)
            );
        }
        if cmp.mtime_zero && ea.kind != Kind::Symlink && ea.mtime_zero != eb.mtime_zero {
            let _ = write!(s, " mtime-is-epoch {} != {};", ea.mtime_zero, eb.mtime_zero);
        }
        if !s.is_empty() {
            d.push(format!("{}:{}", show_path(p), s));
        }
    }
    for (p, eb) in b {
        if !a.contains_key(p) {
            d.push(format!("{}: only in B ({:?})", show_path(p), eb.kind));
        }
    }
    d
}

/// Remove empty-valued xattrs from a snapshot: ostree does not record them (a source tree
/// compared with a checkout must drop them first).
pub fn drop_empty_xattrs(s: &mut Snapshot) {
    for e in s.values_mut() {
        e.xattrs.retain(|(_, v)| !v.is_empty());
    }
}

/// Panic with a readable report if the trees at `a` and `b` differ under `cmp`.
pub fn assert_same_tree(a_label: &str, a: &Path, b_label: &str, b: &Path, cmp: Compare) {
    assert_same_snapshots(
        &format!("{a_label} ({})", a.display()),
        &snapshot(a),
        &format!("{b_label} ({})", b.display()),
        &snapshot(b),
        cmp,
    );
}

/// Panic with a readable report if two snapshots differ under `cmp`.
pub fn assert_same_snapshots(
    a_label: &str,
    sa: &Snapshot,
    b_label: &str,
    sb: &Snapshot,
    cmp: Compare,
) {
    let d = diff(sa, sb, cmp);
    if !d.is_empty() {
        let shown: Vec<&String> = d.iter().take(40).collect();
        panic!(
            "trees differ: A = {a_label}, B = {b_label}; {} differences:\n  {}{}",
            d.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if d.len() > 40 { "\n  ..." } else { "" }
        );
    }
}
