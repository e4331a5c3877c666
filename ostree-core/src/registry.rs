//! The plugin registry, filled at link time with [`inventory`].
//!
//! A plugin submits a record holding only a key, a one-line description and a constructor; the
//! registry sorts keys, rejects duplicates, and answers an unknown key with an error listing
//! what is available. The CLI names each plugin crate once (`use … as _;`) so the linker
//! keeps its records, and asks the registry for everything else.
//!
//! ```
//! use ostree_core::registry::Registry;
//! let reg = Registry::global();
//! // No plugin crate is linked into this doctest, so nothing is registered:
//! let err = reg.store_plugin("s3").unwrap_err();
//! assert!(err.to_string().contains("unsupported storage backend 's3'"));
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use url::Url;

use crate::bootloader::BootloaderWriter;
use crate::fetcher::{Fetcher, FetcherConfig};
use crate::sign::SignerPlugin;
use crate::store::{ObjectStore, OpenOptions};
use crate::{Error, Result};

/// The future returned by a storage plugin's constructor.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Arc<dyn ObjectStore>>> + Send>>;

/// A storage backend plugin record: opens repositories for URLs with its scheme.
#[derive(Debug)]
pub struct StorePlugin {
    /// URL scheme (lowercase): `file`, `s3`, `memory`…
    pub scheme: &'static str,
    /// One line for `ostree --version` / listings.
    pub description: &'static str,
    /// Open (or create, per options) the repository at this URL.
    pub open: fn(Url, OpenOptions) -> OpenFuture,
}

inventory::collect!(StorePlugin);

/// A fetcher plugin record: moves bytes for base URLs with its scheme.
#[derive(Debug)]
pub struct FetcherPlugin {
    /// URL scheme (lowercase): `file`, `http`, `https`…
    pub scheme: &'static str,
    /// One line for `ostree --version` / listings.
    pub description: &'static str,
    /// Build a fetcher for this base URL.
    pub build: fn(&Url, &FetcherConfig) -> Result<Arc<dyn Fetcher>>,
}

inventory::collect!(FetcherPlugin);

/// A bootloader writer plugin record (see [`crate::bootloader`]).
#[derive(Debug)]
pub struct BootloaderPlugin {
    /// The `sysroot.bootloader` value (lowercase): `grub2`, `syslinux`, `uboot`, `none`.
    pub name: &'static str,
    /// One line for `ostree --version` / listings.
    pub description: &'static str,
    /// Place in `auto` probing, lower first; `None` when only chosen by configuration.
    /// ostree's order: syslinux 10, grub2 20, uboot 30 (zipl and none never probe).
    pub autodetect: Option<u32>,
    /// Build the (stateless) writer.
    pub build: fn() -> Box<dyn BootloaderWriter>,
}

inventory::collect!(BootloaderPlugin);

/// Plugins by kind and key.
#[derive(Debug, Default)]
pub struct Registry {
    stores: BTreeMap<String, &'static StorePlugin>,
    fetchers: BTreeMap<String, &'static FetcherPlugin>,
    signers: BTreeMap<String, &'static SignerPlugin>,
    bootloaders: BTreeMap<String, &'static BootloaderPlugin>,
    duplicates: Vec<(&'static str, String)>,
}

impl Registry {
    /// An empty registry (tests build private ones).
    pub fn new() -> Self {
        Registry::default()
    }

    /// A registry holding every linked plugin.
    pub fn from_inventory() -> Self {
        let mut r = Registry::new();
        for p in inventory::iter::<StorePlugin> {
            r.register_store(p);
        }
        for p in inventory::iter::<FetcherPlugin> {
            r.register_fetcher(p);
        }
        for p in inventory::iter::<SignerPlugin> {
            r.register_signer(p);
        }
        for p in inventory::iter::<BootloaderPlugin> {
            r.register_bootloader(p);
        }
        r
    }

    /// The process-wide registry, built once from the inventory.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(Registry::from_inventory)
    }

    /// Add a storage plugin. A duplicate key is remembered and reported when used.
    pub fn register_store(&mut self, p: &'static StorePlugin) {
        let key = p.scheme.to_ascii_lowercase();
        match self.stores.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => {
                self.duplicates.push(("storage backend", e.key().clone()));
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(p);
            }
        }
    }

    /// Add a fetcher plugin. A duplicate key is remembered and reported when used.
    pub fn register_fetcher(&mut self, p: &'static FetcherPlugin) {
        let key = p.scheme.to_ascii_lowercase();
        match self.fetchers.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => {
                self.duplicates.push(("fetcher", e.key().clone()));
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(p);
            }
        }
    }

    /// Add a signature plugin. A duplicate name is remembered and reported when used.
    pub fn register_signer(&mut self, p: &'static SignerPlugin) {
        let key = p.name.to_ascii_lowercase();
        match self.signers.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => {
                self.duplicates.push(("signature type", e.key().clone()));
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(p);
            }
        }
    }

    /// Add a bootloader writer plugin. A duplicate name is remembered and reported when used.
    pub fn register_bootloader(&mut self, p: &'static BootloaderPlugin) {
        let key = p.name.to_ascii_lowercase();
        match self.bootloaders.entry(key) {
            std::collections::btree_map::Entry::Occupied(e) => {
                self.duplicates.push(("bootloader", e.key().clone()));
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(p);
            }
        }
    }

    /// Every bootloader writer plugin, sorted by name.
    pub fn bootloader_plugins(&self) -> impl Iterator<Item = &'static BootloaderPlugin> + '_ {
        self.bootloaders.values().copied()
    }

    /// The bootloader plugin registered under `name` (`Ok(None)` when none is; an error when
    /// two are).
    pub(crate) fn bootloader_plugin_lookup(
        &self,
        name: &str,
    ) -> Result<Option<&'static BootloaderPlugin>> {
        let key = name.to_ascii_lowercase();
        if self
            .duplicates
            .iter()
            .any(|(kind, k)| *kind == "bootloader" && *k == key)
        {
            return Err(Error::DuplicatePlugin {
                kind: "bootloader",
                key,
            });
        }
        Ok(self.bootloaders.get(&key).copied())
    }

    /// Every signature plugin, sorted by name.
    pub fn signer_plugins(&self) -> impl Iterator<Item = &'static SignerPlugin> + '_ {
        self.signers.values().copied()
    }

    /// The signature plugin for a type name. An unknown name is an error in ostree's words
    /// (`Requested signature type is not implemented`) listing the registered types.
    pub(crate) fn signer_plugin_lookup(&self, name: &str) -> Result<&'static SignerPlugin> {
        let key = name.to_ascii_lowercase();
        if self
            .duplicates
            .iter()
            .any(|(kind, k)| *kind == "signature type" && *k == key)
        {
            return Err(Error::DuplicatePlugin {
                kind: "signature type",
                key,
            });
        }
        self.signers.get(&key).copied().ok_or_else(|| {
            Error::Other(format!(
                "Requested signature type is not implemented (available: {})",
                self.signers.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Registered fetcher schemes, sorted.
    pub fn fetcher_schemes(&self) -> Vec<&str> {
        self.fetchers.keys().map(String::as_str).collect()
    }

    /// Every fetcher plugin, sorted by scheme.
    pub fn fetcher_plugins(&self) -> impl Iterator<Item = &'static FetcherPlugin> + '_ {
        self.fetchers.values().copied()
    }

    /// The fetcher plugin for a scheme.
    pub fn fetcher_plugin(&self, scheme: &str) -> Result<&'static FetcherPlugin> {
        let key = scheme.to_ascii_lowercase();
        if self
            .duplicates
            .iter()
            .any(|(kind, k)| *kind == "fetcher" && *k == key)
        {
            return Err(Error::DuplicatePlugin {
                kind: "fetcher",
                key,
            });
        }
        self.fetchers
            .get(&key)
            .copied()
            .ok_or_else(|| Error::UnsupportedScheme {
                kind: "fetcher",
                key,
                available: self.fetchers.keys().cloned().collect(),
            })
    }

    /// Build a fetcher for a base URL through the plugin for its scheme.
    pub fn build_fetcher(&self, url: &Url, config: &FetcherConfig) -> Result<Arc<dyn Fetcher>> {
        let p = self.fetcher_plugin(url.scheme())?;
        (p.build)(url, config)
    }

    /// Registered storage schemes, sorted.
    pub fn store_schemes(&self) -> Vec<&str> {
        self.stores.keys().map(String::as_str).collect()
    }

    /// Every storage plugin, sorted by scheme.
    pub fn store_plugins(&self) -> impl Iterator<Item = &'static StorePlugin> + '_ {
        self.stores.values().copied()
    }

    /// Check that no key was registered twice.
    pub fn check(&self) -> Result<()> {
        match self.duplicates.first() {
            Some((kind, key)) => Err(Error::DuplicatePlugin {
                kind,
                key: key.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The storage plugin for a scheme.
    pub fn store_plugin(&self, scheme: &str) -> Result<&'static StorePlugin> {
        let key = scheme.to_ascii_lowercase();
        if self
            .duplicates
            .iter()
            .any(|(kind, k)| *kind == "storage backend" && *k == key)
        {
            return Err(Error::DuplicatePlugin {
                kind: "storage backend",
                key,
            });
        }
        self.stores
            .get(&key)
            .copied()
            .ok_or_else(|| Error::UnsupportedScheme {
                kind: "storage backend",
                key,
                available: self.stores.keys().cloned().collect(),
            })
    }

    /// Open a repository by URL through the plugin for its scheme.
    pub async fn open_store(&self, url: &Url, opts: OpenOptions) -> Result<Arc<dyn ObjectStore>> {
        let p = self.store_plugin(url.scheme())?;
        (p.open)(url.clone(), opts).await
    }
}

/// Turn a `--repo` argument into a URL: a URL with a registered-looking scheme (`s3://…`) is
/// taken as is; anything else is a local path (made absolute) → `file://`.
pub fn repo_url(arg: &str) -> Result<Url> {
    if let Some((scheme, _)) = arg.split_once("://")
        && !scheme.is_empty()
        && scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
    {
        return Url::parse(arg)
            .map_err(|e| Error::invalid(format!("Invalid repository URL '{arg}': {e}")));
    }
    let p = std::path::Path::new(arg);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("getting current directory", e))?
            .join(p)
    };
    Url::from_file_path(&abs)
        .map_err(|_| Error::invalid(format!("Invalid repository path '{arg}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_nothing(_u: Url, _o: OpenOptions) -> OpenFuture {
        Box::pin(async { Err(Error::Other("test plugin".into())) })
    }
    static A: StorePlugin = StorePlugin {
        scheme: "a",
        description: "A",
        open: open_nothing,
    };
    static A2: StorePlugin = StorePlugin {
        scheme: "A",
        description: "A again",
        open: open_nothing,
    };
    static B: StorePlugin = StorePlugin {
        scheme: "b",
        description: "B",
        open: open_nothing,
    };

    #[test]
    fn unknown_key_lists_available() {
        let mut r = Registry::new();
        r.register_store(&B);
        r.register_store(&A);
        assert_eq!(r.store_schemes(), vec!["a", "b"]);
        let e = r.store_plugin("zz").unwrap_err().to_string();
        assert_eq!(e, "unsupported storage backend 'zz'; available: a, b");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let mut r = Registry::new();
        r.register_store(&A);
        r.register_store(&A2);
        assert!(matches!(r.check(), Err(Error::DuplicatePlugin { .. })));
        assert!(matches!(
            r.store_plugin("a"),
            Err(Error::DuplicatePlugin { .. })
        ));
    }

    fn build_nothing(_u: &Url, _c: &FetcherConfig) -> Result<Arc<dyn Fetcher>> {
        Err(Error::Other("test fetcher".into()))
    }
    static FA: FetcherPlugin = FetcherPlugin {
        scheme: "http",
        description: "F",
        build: build_nothing,
    };
    static FA2: FetcherPlugin = FetcherPlugin {
        scheme: "HTTP",
        description: "F again",
        build: build_nothing,
    };
    static FB: FetcherPlugin = FetcherPlugin {
        scheme: "file",
        description: "F file",
        build: build_nothing,
    };

    #[test]
    fn fetcher_unknown_key_lists_available() {
        let mut r = Registry::new();
        r.register_fetcher(&FA);
        r.register_fetcher(&FB);
        r.register_store(&A);
        assert_eq!(r.fetcher_schemes(), vec!["file", "http"]);
        let e = r.fetcher_plugin("s3").unwrap_err().to_string();
        assert_eq!(e, "unsupported fetcher 's3'; available: file, http");
        // A store key is not a fetcher key, and the reverse.
        assert!(r.fetcher_plugin("a").is_err());
        assert!(r.store_plugin("http").is_err());
        let u = Url::parse("http://x/").unwrap();
        assert!(r.build_fetcher(&u, &FetcherConfig::default()).is_err());
    }

    #[test]
    fn fetcher_duplicate_key_is_an_error() {
        let mut r = Registry::new();
        r.register_fetcher(&FA);
        r.register_fetcher(&FA2);
        r.register_store(&B);
        assert!(matches!(r.check(), Err(Error::DuplicatePlugin { .. })));
        assert!(matches!(
            r.fetcher_plugin("http"),
            Err(Error::DuplicatePlugin {
                kind: "fetcher",
                ..
            })
        ));
        // The duplicate fetcher key does not poison a store of another name.
        assert!(r.store_plugin("b").is_ok());
    }

    #[test]
    fn object_safe() {
        fn _assert(_: &dyn ObjectStore) {}
    }

    #[test]
    fn repo_urls() {
        assert_eq!(repo_url("s3://bucket/p").unwrap().scheme(), "s3");
        assert_eq!(repo_url("/tmp/repo").unwrap().as_str(), "file:///tmp/repo");
        assert_eq!(repo_url("memory://").unwrap().scheme(), "memory");
    }
}
