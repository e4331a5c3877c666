//! Interop tests: our `ostree` against the real ostree 2022.7 (the judge).
//!
//! Run with both sides real to validate the tests themselves:
//! `OSTREE_RS_BIN=/usr/bin/ostree cargo test -p ostree-tests`.

mod admin;
mod bad_input;
mod cli;
mod corrupt;
mod delta;
mod finder;
mod hostile;
mod kill;
mod pull;
mod repo_admin;
mod rich;
mod staging;
mod tar;
mod ucache;
mod vectors;

/// Generate one `#[test]` per repo mode calling `$body(mode)`.
#[macro_export]
macro_rules! per_mode {
    ($body:ident) => {
        mod $body {
            #[test]
            fn archive() {
                super::$body("archive");
            }
            #[test]
            fn bare() {
                super::$body("bare");
            }
            #[test]
            fn bare_user() {
                super::$body("bare-user");
            }
            #[test]
            fn bare_user_only() {
                super::$body("bare-user-only");
            }
        }
    };
}
