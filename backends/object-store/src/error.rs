//! Mapping `object_store` errors into `ostree_core::Error`.
//!
//! Callers match on `NotFound`, `Precondition` and `AlreadyExists`; everything else becomes
//! `Error::Backend { plugin, .. }` carrying a message only, so no `object_store` type is
//! reachable from the public API (not even through `source()`).

use std::fmt;

use ostree_core::Error;

/// A backend failure described in words (the `object_store` error chain flattened).
#[derive(Debug)]
pub(crate) struct BackendError(String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

fn flatten(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        cur = s.source();
    }
    msg
}

/// A `Backend` error for `plugin` saying what was being done.
pub(crate) fn backend(
    plugin: &'static str,
    what: impl fmt::Display,
    e: &dyn std::error::Error,
) -> Error {
    let mut msg = format!("{what}: {}", flatten(e));
    if msg.contains("169.254.169.254") {
        // object_store fell back to the instance metadata service: nothing else gave keys.
        msg = format!(
            "{what}: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             or access_key_id and secret_access_key in the URL; the instance metadata service \
             did not answer: {})",
            flatten(e).split(": ").last().unwrap_or_default()
        );
    }
    Error::Backend {
        plugin,
        source: Box::new(BackendError(msg)),
    }
}

/// Map an `object_store` error: not found, precondition and already-exists keep their
/// meaning (with `what` as the message); the rest become `Backend`.
pub(crate) fn map(plugin: &'static str, what: impl fmt::Display, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found(what.to_string()),
        object_store::Error::Precondition { .. } => Error::Precondition {
            what: what.to_string(),
        },
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists {
            what: what.to_string(),
        },
        e => backend(plugin, what, &e),
    }
}
