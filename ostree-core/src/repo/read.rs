//! Reading trees: path lookup inside a commit, directory listings with metadata.

use super::Repo;
use crate::objects::{DirMeta, FileMeta};
use crate::store::ContentRead;
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// What a path inside a commit points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeEntry {
    /// A content object.
    File(Checksum),
    /// A directory: (dirtree, dirmeta).
    Dir(Checksum, Checksum),
}

impl Repo {
    /// Resolve `path` (`/`, `/usr/bin/env`, relative paths are taken from the root) inside the
    /// tree of `commit`.
    pub async fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<TreeEntry> {
        let c = self.load_commit(commit).await?;
        self.lookup_in_tree(c.root_tree, c.root_meta, path).await
    }

    /// Resolve `path` under a dirtree/dirmeta pair.
    pub async fn lookup_in_tree(
        &self,
        tree: Checksum,
        meta: Checksum,
        path: &str,
    ) -> Result<TreeEntry> {
        let mut cur = TreeEntry::Dir(tree, meta);
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        // ostree's messages: the path walked so far when a component is missing, and
        // "Not a directory" when one is a file.
        let mut walked = String::new();
        for comp in comps.iter() {
            let TreeEntry::Dir(t, _) = cur else {
                return Err(Error::not_found("Not a directory"));
            };
            walked.push('/');
            walked.push_str(comp);
            let dt = self.load_dirtree(&t).await?;
            if let Some((_, st, sm)) = dt.dirs.iter().find(|(n, _, _)| n == comp) {
                cur = TreeEntry::Dir(*st, *sm);
            } else if let Some((_, f)) = dt.files.iter().find(|(n, _)| n == comp) {
                cur = TreeEntry::File(*f);
            } else {
                return Err(Error::not_found(format!(
                    "No such file or directory: {walked}"
                )));
            }
        }
        Ok(cur)
    }

    /// Load a content object (metadata, size, body), falling back to the `core.parent`
    /// repository.
    pub async fn load_file(&self, csum: &Checksum) -> Result<ContentRead> {
        let key = ObjectKey::new(*csum, ObjectType::File);
        match self.store().get(&key).await {
            Ok(o) => o.into_content(),
            Err(e) if e.is_not_found() => {
                if let Some(p) = self.parent().await? {
                    return Box::pin(p.load_file(csum)).await;
                }
                Err(Error::not_found(format!(
                    "Couldn't find file object '{csum}'"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Metadata and size of a content object, without reading its body.
    pub async fn load_file_meta(&self, csum: &Checksum) -> Result<(FileMeta, u64)> {
        let c = self.load_file(csum).await?;
        Ok((c.meta, c.size))
    }

    /// A dirmeta by checksum (alias of [`Repo::load_dirmeta`] for symmetry).
    pub async fn load_dir_meta(&self, csum: &Checksum) -> Result<DirMeta> {
        self.load_dirmeta(csum).await
    }
}
