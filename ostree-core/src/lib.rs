//! # ostree-core
//!
//! The model and the logic of a pure-Rust, format-compatible OSTree. This crate defines:
//!
//! * the object model: [`Checksum`], [`ObjectType`], [`ObjectKey`], and GVariant codecs for every
//!   OSTree object ([`gvariant`], [`objects`], [`content`]);
//! * the plugin traits (the [`store::ObjectStore`] for repository storage) and the link-time
//!   [`registry`];
//! * every piece of logic written once over those traits: [`repo`] (init, config, refs,
//!   locks, transactions, commit, checkout, fsck…).
//!
//! Plugins (`backends/*`) depend on this crate only; the CLI composes them.

pub mod bootloader;
pub mod checksum;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod content;
pub mod delta;
pub mod error;
pub mod fetcher;
pub mod finder;
pub mod fslock;
pub mod gvariant;
pub mod hostenv;
pub mod keyfile;
pub mod lease;
pub mod object;
pub mod objects;
pub mod pool;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod repo;
pub mod sign;
mod spool;
pub mod store;
pub mod sysroot;

pub use checksum::Checksum;
pub use error::{Error, Result};
pub use object::{ObjectKey, ObjectType};

pub use inventory;
