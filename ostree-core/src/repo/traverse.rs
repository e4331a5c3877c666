//! Walking the objects reachable from commits.

use std::collections::HashSet;

use super::Repo;
use crate::{Checksum, ObjectKey, ObjectType, Result};

impl Repo {
    /// Every object reachable from `commit` (the commit, its commitmeta if present is not
    /// included, dirtrees, dirmetas, files). With `ignore_missing_dirs`, a missing dirtree
    /// is skipped (partial commits).
    pub async fn traverse_commit(
        &self,
        commit: &Checksum,
        out: &mut HashSet<ObjectKey>,
    ) -> Result<()> {
        out.insert(ObjectKey::new(*commit, ObjectType::Commit));
        let c = self.load_commit(commit).await?;
        out.insert(ObjectKey::new(c.root_meta, ObjectType::DirMeta));
        self.traverse_dirtree(&c.root_tree, out).await
    }

    /// Every object reachable from a dirtree (itself included).
    pub async fn traverse_dirtree(
        &self,
        tree: &Checksum,
        out: &mut HashSet<ObjectKey>,
    ) -> Result<()> {
        let mut stack = vec![*tree];
        while let Some(t) = stack.pop() {
            if !out.insert(ObjectKey::new(t, ObjectType::DirTree)) {
                continue;
            }
            let dt = self.load_dirtree(&t).await?;
            for (_, c) in dt.files {
                out.insert(ObjectKey::new(c, ObjectType::File));
            }
            for (_, st, sm) in dt.dirs {
                out.insert(ObjectKey::new(sm, ObjectType::DirMeta));
                stack.push(st);
            }
        }
        Ok(())
    }
}
