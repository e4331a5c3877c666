//! Progress reporting for long operations. Core reports; front-ends render (the CLI draws an
//! `indicatif` bar on a terminal and stays quiet otherwise).

use std::fmt::Debug;

/// Receives progress of a long operation. Implementations must be cheap and thread-safe:
/// `inc` is called from worker threads.
pub trait Progress: Debug + Send + Sync {
    /// A new phase starts (`"Scanning"`, `"Writing objects"`…) with `total` units (0 if unknown).
    fn phase(&self, label: &str, total: u64);
    /// `n` more units of the current phase are done.
    fn inc(&self, n: u64);
    /// The operation finished (clear any display).
    fn finish(&self);
}

/// A progress sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _label: &str, _total: u64) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}
