//! What ostree reads from the running system and its environment, shared by the repository
//! backends and the sysroot: the boot id that names transaction staging directories, and the
//! `OSTREE_REPO_TEST_ERROR` hooks upstream's tests use to stop an operation at a chosen point.

/// The id of the running boot: `$OSTREE_BOOTID` when set (upstream's tests set it), otherwise
/// `/proc/sys/kernel/random/boot_id`; `"unknown"` when neither is available.
///
/// ostree names a transaction's staging directory `tmp/staging-<boot id>-XXXXXX`: a directory
/// of another boot can only belong to a dead process, one of this boot may be reused.
///
/// ```
/// let id = ostree_core::hostenv::boot_id();
/// assert!(!id.is_empty());
/// ```
pub fn boot_id() -> String {
    if let Ok(v) = std::env::var("OSTREE_BOOTID")
        && !v.is_empty()
    {
        return v;
    }
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The prefix of this boot's staging directories under a repository's `tmp/`:
/// `staging-<boot id>-`.
pub fn staging_prefix() -> String {
    format!("{STAGING_PREFIX}{}-", boot_id())
}

/// What every transaction staging directory's name starts with (`staging-`), whatever its boot.
pub const STAGING_PREFIX: &str = "staging-";

/// Whether `OSTREE_REPO_TEST_ERROR` (a comma-separated list, as ostree parses it) names `hook`,
/// e.g. `pre-commit` or `invalid-cache`.
///
/// ```
/// // Unset in normal runs.
/// assert!(!ostree_core::hostenv::test_error("no-such-hook"));
/// ```
pub fn test_error(hook: &str) -> bool {
    std::env::var("OSTREE_REPO_TEST_ERROR").is_ok_and(|v| v.split(',').any(|f| f.trim() == hook))
}
