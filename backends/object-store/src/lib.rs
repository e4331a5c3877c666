#![doc = include_str!("../README.md")]
//!
//! # API
//!
//! Most programs never name this crate's types: they link it (`use ostree_backend_object_store
//! as _;`) and open `s3://…` or `memory://` URLs through
//! [`ostree_core::registry::Registry`]. [`ObjectStorageBuilder`] builds a store over any
//! `object_store` implementation (several handles over one `InMemory`, for instance).

mod builder;
mod error;
mod store;

pub use builder::{DEFAULT_CONCURRENCY, DEFAULT_MEMORY_LIMIT, ObjectStorageBuilder};
pub use store::ObjectStorageStore;

use std::sync::Arc;

use ostree_core::registry::{OpenFuture, Registry, StorePlugin};
use ostree_core::store::{ObjectStore, OpenOptions};
use url::Url;

/// URL scheme of S3 (and S3-compatible) repositories.
pub const S3_SCHEME: &str = "s3";
/// URL scheme of in-memory repositories (a fresh store per open).
pub const MEMORY_SCHEME: &str = "memory";

fn open_url(url: Url, opts: OpenOptions) -> OpenFuture {
    Box::pin(async move {
        let store = ObjectStorageBuilder::from_url(&url)?.open(opts).await?;
        Ok(Arc::new(store) as Arc<dyn ObjectStore>)
    })
}

const S3_DESCRIPTION: &str = "archive repositories in S3-compatible object storage";
const MEMORY_DESCRIPTION: &str = "archive repositories in memory (fresh on every open; tests)";

/// The plugin record for `s3://` (also submitted to the inventory).
pub static S3_PLUGIN: StorePlugin = StorePlugin {
    scheme: S3_SCHEME,
    description: S3_DESCRIPTION,
    open: open_url,
};

/// The plugin record for `memory://` (also submitted to the inventory).
pub static MEMORY_PLUGIN: StorePlugin = StorePlugin {
    scheme: MEMORY_SCHEME,
    description: MEMORY_DESCRIPTION,
    open: open_url,
};

ostree_core::inventory::submit! {
    StorePlugin { scheme: S3_SCHEME, description: S3_DESCRIPTION, open: open_url }
}

ostree_core::inventory::submit! {
    StorePlugin { scheme: MEMORY_SCHEME, description: MEMORY_DESCRIPTION, open: open_url }
}

/// Register this crate's plugins in a private registry (where link-time registration is not
/// wanted or does not run).
pub fn register(registry: &mut Registry) {
    registry.register_store(&S3_PLUGIN);
    registry.register_store(&MEMORY_PLUGIN);
}
