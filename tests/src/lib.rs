//! # ostree-tests
//!
//! Interop tests for the pure-Rust `ostree` binary, judged by the real ostree 2022.7.
//!
//! The tests live in `tests/interop/` and only drive both binaries through their CLI (the same
//! commands, flags and output), so they can be validated by pointing both sides at the real
//! binary: `OSTREE_RS_BIN=/usr/bin/ostree cargo test -p ostree-tests`.
//!
//! This library holds what they share:
//!
//! * [`bins`]: locating the two binaries (`OSTREE_RS_BIN`, `OSTREE_REAL_BIN`), running them with a
//!   timeout, skip/require policy (`OSTREE_TEST_REQUIRE`);
//! * [`fsutil`]: small filesystem helpers (modes, owners, xattrs, special files, deterministic data);
//! * [`fixtures`]: the trees under test (the spec vectors, a "rich" tree with every feature, a bulk tree);
//! * [`tree`]: a tree snapshot and comparison helper (content, modes, owners, symlinks, xattrs);
//! * [`hostile`]: hand-crafted malicious dirtree/commit objects written straight into a repo.

pub mod bins;
pub mod fixtures;
pub mod fsutil;
pub mod hostile;
pub mod httpd;
pub mod tree;

/// The four repository modes, in the order tests iterate them.
pub const MODES: [&str; 4] = ["archive", "bare", "bare-user", "bare-user-only"];
