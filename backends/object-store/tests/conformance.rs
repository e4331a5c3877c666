//! The `ostree_core::conformance` suite against this backend: `memory://` always, a small
//! memory limit (so every large-object path runs), and S3 when `OSTREE_TEST_S3_URL` is set
//! (each case under a fresh prefix; see `.ci/moto.sh`).

mod common;

mod memory {
    ostree_core::conformance_tests!(async || {
        let url = url::Url::parse("memory://").expect("static URL");
        super::common::open(&url).await
    });
}

mod memory_spooling {
    use std::sync::Arc;

    use ostree_backend_object_store::{ObjectStorageBuilder, ObjectStorageStore};

    async fn make() -> Arc<ObjectStorageStore> {
        let bucket = Arc::new(object_store::memory::InMemory::new());
        let store = ObjectStorageBuilder::new(bucket, "some/prefix")
            .expect("valid prefix")
            .with_memory_limit(1024)
            .with_concurrency(2)
            .open(super::common::create())
            .await
            .expect("create");
        Arc::new(store)
    }

    ostree_core::conformance_tests!(async || make().await);
}

mod s3 {
    ostree_core::conformance_tests!(async || {
        match super::common::fresh_s3_url("conformance") {
            Some(url) => Some(super::common::open(&url).await),
            None => None,
        }
    });
}
