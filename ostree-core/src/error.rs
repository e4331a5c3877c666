//! The one public error type of the workspace.
//!
//! # Error policy
//!
//! * Every `pub fn` of a library crate returns [`Result`]. Variants are what callers *match* on
//!   (not found, already exists, checksum mismatch, precondition failed, unsupported scheme…);
//!   everything else carries a human-readable message naming the path or object concerned.
//! * Plugins map their own errors into this type (`Backend { plugin, .. }`); third-party error
//!   types never appear in the public API.
//! * Library code never panics on input: decoders validate framing and return
//!   [`Error::Corrupted`] or [`Error::InvalidInput`].
//! * Messages follow OSTree's wording where users (and upstream's test suite) grep for it.

use std::path::PathBuf;

/// Convenient alias used throughout the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by every crate of the workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An object, ref, file or other named item does not exist.
    #[error("{what}")]
    NotFound {
        /// What was looked for, in words (e.g. `No such metadata object 1234.commit`).
        what: String,
    },
    /// The item already exists and the operation required it not to.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What already exists.
        what: String,
    },
    /// A compare-and-swap precondition did not hold (a concurrent writer won).
    #[error("precondition failed: {what}")]
    Precondition {
        /// Which item's precondition failed.
        what: String,
    },
    /// Content does not hash to the name it was stored or fetched under.
    #[error("Corrupted {kind} object; checksum expected='{expected}' actual='{actual}'")]
    ChecksumMismatch {
        /// Object type name (`file`, `dirtree`, …).
        kind: String,
        /// The checksum the object is named by.
        expected: String,
        /// The checksum of its content.
        actual: String,
    },
    /// Bytes that do not decode as what they claim to be.
    #[error("{0}")]
    Corrupted(String),
    /// A caller-supplied value is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// No plugin is registered under this key.
    #[error("unsupported {kind} '{key}'; available: {}", available.join(", "))]
    UnsupportedScheme {
        /// Plugin kind (`storage backend`, `fetcher`…).
        kind: &'static str,
        /// The key that was asked for.
        key: String,
        /// Keys that are registered.
        available: Vec<String>,
    },
    /// Two plugins registered under one key.
    #[error("duplicate {kind} plugin '{key}'")]
    DuplicatePlugin {
        /// Plugin kind.
        kind: &'static str,
        /// The duplicated key.
        key: String,
    },
    /// The operation is not available on this implementation.
    #[error("{operation} is not supported by {implementer}")]
    NotImplemented {
        /// The operation.
        operation: String,
        /// The implementation (backend, mode…).
        implementer: String,
    },
    /// An I/O error on a named path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin-specific failure.
    #[error("{plugin}: {source}")]
    Backend {
        /// Plugin name.
        plugin: &'static str,
        /// The plugin's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No acceptable signature: missing, bad, or made by an untrusted, expired or revoked
    /// key. The text says which key and which check failed, in ostree's words.
    #[error("{0}")]
    BadSignature(String),
    /// The repository lock could not be taken.
    #[error("{0}")]
    Locked(String),
    /// Any other failure, described in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Build a `NotFound` error.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
    /// Build a `Corrupted` error.
    pub fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted(what.into())
    }
    /// Build an `InvalidInput` error.
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidInput(what.into())
    }
    /// Build an `Io` error with a context naming the path.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// Build an `Io` error for an operation on a path.
    pub fn io_path(op: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path: PathBuf = path.into();
        Error::Io {
            context: format!("{op} {}", path.display()),
            source,
        }
    }
    /// True when this error means "does not exist".
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
    /// True for failures worth retrying (network hiccups, throttling).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }
}

/// Extension to attach a path context to `std::io::Result`.
pub trait IoContext<T> {
    /// Attach a context (usually naming a path) to an I/O error.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> IoContext<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e.into()))
    }
}
