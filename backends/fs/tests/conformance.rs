//! The `ostree_core::conformance` suite against the local-directory backend, once per
//! repository mode (`bare` needs root, as these tests expect to run) and once more with
//! `fsync=false` (objects published at once instead of staged), each case in a fresh temporary
//! directory, opened through the registry like any `file://` URL.

use std::sync::Arc;

use ostree_backend_fs as _;
use ostree_core::registry::Registry;
use ostree_core::store::{ObjectStore, OpenOptions, RepoMode};

/// A fresh repository in `mode`; the directory lives as long as the returned guard, which is
/// dropped after the store.
async fn make(mode: RepoMode, fsync: Option<bool>) -> (Arc<dyn ObjectStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("repo");
    let url = url::Url::from_file_path(&path).expect("an absolute path");
    let opts = OpenOptions {
        create: Some(mode),
        fsync,
    };
    let store = Registry::global()
        .open_store(&url, opts)
        .await
        .unwrap_or_else(|e| panic!("creating a {mode} repository at {url}: {e}"));
    (store, dir)
}

mod archive {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::Archive, None).await);
}

mod bare {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::Bare, None).await);
}

mod bare_user {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::BareUser, None).await);
}

mod bare_user_only {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::BareUserOnly, None).await);
}

mod archive_nofsync {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::Archive, Some(false)).await);
}

mod bare_user_nofsync {
    use super::{RepoMode, make};
    ostree_core::conformance_tests!(async || make(RepoMode::BareUser, Some(false)).await);
}
