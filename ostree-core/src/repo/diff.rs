//! Comparing two trees, each a commit or a local directory (`ostree_diff_dirs_with_options`),
//! and the object statistics of `ostree diff --stats`.
//!
//! Entries are compared by checksum: a content object's checksum, or a directory's dirmeta
//! checksum, computed for local files as a commit would (ownership, mode, xattrs, content).
//! The result lists paths in ostree's order: a directory's entries as its side enumerates them
//! (a commit: files, then subdirectories, each sorted; a local directory: `readdir` order),
//! depth first; modified entries, then removed, then added.

use std::collections::HashSet;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Repo;
use crate::objects::{DirMeta, FileMeta, S_IFDIR, S_IFLNK, S_IFMT, Xattrs, sort_xattrs};
use crate::{Checksum, Error, ObjectKey, Result};

/// One side of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffSide {
    /// The tree of a commit.
    Commit(Checksum),
    /// A local directory.
    Dir(PathBuf),
}

/// Options of a diff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Leave extended attributes of local files out of their checksums (`--no-xattrs`;
    /// implied when the repository has xattrs disabled or is bare-user-only).
    pub ignore_xattrs: bool,
    /// Take local files of the second side as owned by this uid (`--owner-uid`).
    pub owner_uid: Option<u32>,
    /// Take local files of the second side as owned by this gid (`--owner-gid`).
    pub owner_gid: Option<u32>,
}

/// A path in a diff, relative to the root of its side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffPath {
    /// The path without a leading `/` (`usr/bin/env`).
    pub rel: String,
    /// True when it lies in a commit (printed absolute, `/usr/bin/env`), false for a local
    /// directory (printed relative to that directory).
    pub in_commit: bool,
}

impl DiffPath {
    /// The path as `ostree diff` prints it.
    pub fn display(&self) -> String {
        if self.in_commit {
            format!("/{}", self.rel)
        } else {
            self.rel.clone()
        }
    }
}

/// The result of a diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffResult {
    /// Entries present on both sides that differ (paths of the first side).
    pub modified: Vec<DiffPath>,
    /// Entries only on the first side.
    pub removed: Vec<DiffPath>,
    /// Entries only on the second side.
    pub added: Vec<DiffPath>,
}

impl DiffResult {
    /// The lines `ostree diff` prints (`M    path`, `D    path`, `A    path`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (c, list) in [
            ('M', &self.modified),
            ('D', &self.removed),
            ('A', &self.added),
        ] {
            for p in list {
                out.push(format!("{c}    {}", p.display()));
            }
        }
        out
    }
}

/// Object counts of `ostree diff --stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Objects reachable from the first commit.
    pub a_count: u64,
    /// Objects reachable from the second commit.
    pub b_count: u64,
    /// Objects reachable from both.
    pub common_count: u64,
    /// Storage size of the common objects.
    pub common_size: u64,
}

/// An entry of a tree being compared.
#[derive(Clone, Debug)]
enum Node {
    /// A commit directory: (dirtree, dirmeta).
    RepoDir(Checksum, Checksum),
    /// A commit file: its content checksum.
    RepoFile(Checksum),
    /// A local entry and its metadata (not following symlinks).
    Local(PathBuf, std::fs::Metadata),
}

impl Node {
    fn is_dir(&self) -> bool {
        match self {
            Node::RepoDir(..) => true,
            Node::RepoFile(_) => false,
            Node::Local(_, m) => m.is_dir(),
        }
    }
}

/// Read all extended attributes of a local path (not following symlinks), sorted; empty-valued
/// ones are skipped as libglnx does.
pub fn read_local_xattrs(path: &Path) -> Result<Xattrs> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let len = names.len() * 4;
                names.resize(len, 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listxattr {}", path.display()), e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname =
            std::ffi::CString::new(name).map_err(|_| Error::corrupted("xattr name with NUL"))?;
        let mut val = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut val) {
                Ok(vn) => {
                    if vn > 0 {
                        val.truncate(vn);
                        out.push((name.to_vec(), std::mem::take(&mut val)));
                    }
                    break;
                }
                Err(rustix::io::Errno::RANGE) => {
                    let len = val.len() * 4;
                    val.resize(len, 0);
                }
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => {
                    return Err(Error::io(
                        format!(
                            "getxattr {} {}",
                            path.display(),
                            String::from_utf8_lossy(name)
                        ),
                        e.into(),
                    ));
                }
            }
        }
    }
    sort_xattrs(&mut out);
    Ok(out)
}

/// The checksum ostree gives a local file or directory (`ostree checksum`,
/// `ostree_checksum_file_at`): the content checksum of a file or symlink, the dirmeta
/// checksum of a directory. `uid`/`gid` override the owner.
pub fn checksum_local(
    path: &Path,
    md: &std::fs::Metadata,
    ignore_xattrs: bool,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Checksum> {
    let xattrs = if ignore_xattrs {
        Vec::new()
    } else {
        read_local_xattrs(path)?
    };
    let uid = uid.unwrap_or(md.uid());
    let gid = gid.unwrap_or(md.gid());
    let mode = md.mode();
    match mode & S_IFMT {
        S_IFDIR => Ok(DirMeta {
            uid,
            gid,
            mode,
            xattrs,
        }
        .checksum()),
        S_IFLNK => {
            let target =
                std::fs::read_link(path).map_err(|e| Error::io_path("readlink", path, e))?;
            let meta = FileMeta {
                uid,
                gid,
                mode,
                symlink_target: Some(target.to_string_lossy().into_owned()),
                xattrs,
            };
            crate::objects::content_checksum(&meta, std::io::empty())
        }
        crate::objects::S_IFREG => {
            let f = std::fs::File::open(path).map_err(|e| Error::io_path("open", path, e))?;
            let meta = FileMeta {
                uid,
                gid,
                mode,
                symlink_target: None,
                xattrs,
            };
            crate::objects::content_checksum(
                &meta,
                std::io::BufReader::with_capacity(256 * 1024, f),
            )
        }
        _ => Err(Error::invalid(format!(
            "Unsupported file type for checksum: {}",
            path.display()
        ))),
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

impl Repo {
    /// The children of a directory node, in its side's enumeration order.
    async fn diff_children(&self, node: &Node) -> Result<Vec<(String, Node)>> {
        match node {
            Node::RepoDir(t, _) => {
                let dt = self.load_dirtree(t).await?;
                let mut out = Vec::with_capacity(dt.files.len() + dt.dirs.len());
                for (n, c) in dt.files {
                    out.push((n, Node::RepoFile(c)));
                }
                for (n, t, m) in dt.dirs {
                    out.push((n, Node::RepoDir(t, m)));
                }
                Ok(out)
            }
            Node::Local(p, _) => {
                let rd = std::fs::read_dir(p).map_err(|e| Error::io_path("opendir", p, e))?;
                let mut ents = Vec::new();
                for ent in rd {
                    let ent = ent.map_err(|e| Error::io_path("readdir", p, e))?;
                    ents.push((ent.ino(), ent.file_name(), ent.path()));
                }
                // GIO's local enumerator reads entries in chunks of 1000 and sorts each chunk
                // by inode (comparing `(int)(a - b)`).
                for chunk in ents.chunks_mut(1000) {
                    chunk.sort_by(|a, b| (a.0.wrapping_sub(b.0) as i32).cmp(&0));
                }
                let mut out = Vec::with_capacity(ents.len());
                for (_, name, path) in ents {
                    let md = std::fs::symlink_metadata(&path)
                        .map_err(|e| Error::io_path("stat", &path, e))?;
                    out.push((name.to_string_lossy().into_owned(), Node::Local(path, md)));
                }
                Ok(out)
            }
            Node::RepoFile(_) => Err(Error::invalid("Not a directory")),
        }
    }

    fn node_checksum(node: &Node, opts: &DiffOptions, second: bool) -> Result<Checksum> {
        match node {
            Node::RepoDir(_, m) => Ok(*m),
            Node::RepoFile(c) => Ok(*c),
            Node::Local(p, md) => checksum_local(
                p,
                md,
                opts.ignore_xattrs,
                if second { opts.owner_uid } else { None },
                if second { opts.owner_gid } else { None },
            ),
        }
    }

    async fn side_root(&self, side: &DiffSide) -> Result<Node> {
        match side {
            DiffSide::Commit(c) => {
                let commit = self.load_commit(c).await?;
                Ok(Node::RepoDir(commit.root_tree, commit.root_meta))
            }
            DiffSide::Dir(p) => {
                let md = std::fs::symlink_metadata(p).map_err(|e| Error::io_path("stat", p, e))?;
                Ok(Node::Local(p.clone(), md))
            }
        }
    }

    /// Compare two trees (`ostree_diff_dirs_with_options`).
    pub async fn diff_dirs(
        &self,
        a: &DiffSide,
        b: &DiffSide,
        opts: &DiffOptions,
    ) -> Result<DiffResult> {
        let mut opts = *opts;
        if self.disable_xattrs() || self.mode() == crate::store::RepoMode::BareUserOnly {
            opts.ignore_xattrs = true;
        }
        let ra = self.side_root(a).await?;
        let rb = self.side_root(b).await?;
        let mut out = DiffResult::default();
        self.diff_rec(&ra, &rb, "", &opts, &mut out).await?;
        Ok(out)
    }

    async fn diff_rec(
        &self,
        a: &Node,
        b: &Node,
        rel: &str,
        opts: &DiffOptions,
        out: &mut DiffResult,
    ) -> Result<()> {
        if let (Node::RepoDir(ta, _), Node::RepoDir(tb, _)) = (a, b)
            && ta == tb
        {
            return Ok(());
        }
        let a_in_commit = !matches!(a, Node::Local(..));
        let b_in_commit = !matches!(b, Node::Local(..));
        let ca = self.diff_children(a).await?;
        let cb = self.diff_children(b).await?;
        let b_index: std::collections::HashMap<&str, &Node> =
            cb.iter().map(|(n, node)| (n.as_str(), node)).collect();
        for (name, na) in &ca {
            let path = join(rel, name);
            let Some(nb) = b_index.get(name.as_str()) else {
                out.removed.push(DiffPath {
                    rel: path,
                    in_commit: a_in_commit,
                });
                continue;
            };
            let same_type = match (na, *nb) {
                (Node::Local(_, ma), Node::Local(_, mb)) => ma.file_type() == mb.file_type(),
                (Node::Local(_, m), other) | (other, Node::Local(_, m)) => {
                    // A commit file's exact type (regular or symlink) only matters when its
                    // checksum matches, which implies equal types.
                    m.is_dir() == other.is_dir()
                }
                _ => na.is_dir() == nb.is_dir(),
            };
            if !same_type {
                out.modified.push(DiffPath {
                    rel: path,
                    in_commit: a_in_commit,
                });
                continue;
            }
            let sa = Self::node_checksum(na, opts, false)?;
            let sb = Self::node_checksum(nb, opts, true)?;
            if sa != sb {
                out.modified.push(DiffPath {
                    rel: path.clone(),
                    in_commit: a_in_commit,
                });
            }
            if na.is_dir() {
                Box::pin(self.diff_rec(na, nb, &path, opts, out)).await?;
            }
        }
        let a_names: HashSet<&str> = ca.iter().map(|(n, _)| n.as_str()).collect();
        for (name, nb) in &cb {
            if a_names.contains(name.as_str()) {
                continue;
            }
            let path = join(rel, name);
            out.added.push(DiffPath {
                rel: path.clone(),
                in_commit: b_in_commit,
            });
            if nb.is_dir() {
                Box::pin(self.diff_add_all(nb, &path, b_in_commit, out)).await?;
            }
        }
        Ok(())
    }

    async fn diff_add_all(
        &self,
        node: &Node,
        rel: &str,
        in_commit: bool,
        out: &mut DiffResult,
    ) -> Result<()> {
        for (name, child) in self.diff_children(node).await? {
            let path = join(rel, &name);
            out.added.push(DiffPath {
                rel: path.clone(),
                in_commit,
            });
            if child.is_dir() {
                Box::pin(self.diff_add_all(&child, &path, in_commit, out)).await?;
            }
        }
        Ok(())
    }

    /// Object statistics of two commits (`ostree diff --stats`).
    pub async fn diff_stats(&self, a: &Checksum, b: &Checksum) -> Result<DiffStats> {
        let mut ra = HashSet::new();
        self.traverse_commit_depth(a, 0, false, &mut ra).await?;
        let mut rb = HashSet::new();
        self.traverse_commit_depth(b, 0, false, &mut rb).await?;
        let common: Vec<&ObjectKey> = ra.intersection(&rb).collect();
        let mut size = 0;
        for k in &common {
            size += self.store().object_size(k).await?;
        }
        Ok(DiffStats {
            a_count: ra.len() as u64,
            b_count: rb.len() as u64,
            common_count: common.len() as u64,
            common_size: size,
        })
    }
}
