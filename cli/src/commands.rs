//! The command tree of ostree 2022.7 and its dispatch: which words select which command,
//! each command's option table (transcribed from upstream's `GOptionEntry` arrays for the
//! build features of Debian's 2022.7: GPGME, libcurl/libsoup, libarchive, SELinux, Avahi;
//! no libsodium), usage strings, command listings, and the errors ostree prints.
//!
//! Dispatch mirrors `ot-main.c` and the group builtins (`ot-builtin-admin.c`,
//! `ot-builtin-remote.c`, `ot-admin-builtin-instutil.c`, `ot-admin-builtin-kargs.c`,
//! `ot-builtin-static-delta.c`), including their quirks: the first argument not starting with
//! `-` is the command word wherever it is, and a group stops looking at `--` and drops
//! everything from it on.
//!
//! Handlers are looked up by command path in [`handler_for`]; add a line there to plug one in.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use crate::builtins;
use crate::opts::{
    AdminFlags, ArgKind, Invocation, OptEntry, OptionContext, Parsed, absolute, check_boolean,
    eprint_text, print_text,
};

/// A command implementation.
pub type Handler = fn(Invocation) -> BoxFuture<'static, anyhow::Result<()>>;

/// Maps a command path (`"commit"`, `"admin deploy"`, `"remote add"`, `"static-delta show"`)
/// to its handler. `"admin --print-current-dir"` is the handler for `ostree admin
/// [SUBCOMMAND] --print-current-dir`, which prints the first deployment's directory.
pub fn handler_for(path: &str) -> Handler {
    match path {
        "cat" => builtins::cat,
        "checkout" => builtins::checkout,
        "checksum" => builtins::checksum,
        "commit" => builtins::commit,
        "config" => builtins::config,
        "export" => builtins::export,
        "find-remotes" => builtins::finder::find_remotes,
        "create-usb" => builtins::finder::create_usb,
        "diff" => builtins::diff,
        "fsck" => builtins::fsck,
        "init" => builtins::init,
        "log" => builtins::log,
        "ls" => builtins::ls,
        "prune" => builtins::prune,
        "refs" => builtins::refs,
        "reset" => builtins::reset,
        "rev-parse" => builtins::rev_parse,
        "show" => builtins::show,
        "static-delta list" => builtins::static_delta_list,
        "static-delta show" => builtins::static_delta_show,
        "static-delta delete" => builtins::static_delta_delete,
        "static-delta generate" => builtins::static_delta_generate,
        "static-delta apply-offline" => builtins::static_delta_apply_offline,
        "static-delta verify" => builtins::static_delta_verify,
        "static-delta indexes" => builtins::static_delta_indexes,
        "static-delta reindex" => builtins::static_delta_reindex,
        "pull" => builtins::pull,
        "pull-local" => builtins::pull_local,
        "push" => builtins::push::push,
        "remote add" => builtins::remote::remote_add,
        "remote delete" => builtins::remote::remote_delete,
        "remote list" => builtins::remote::remote_list,
        "remote show-url" => builtins::remote::remote_show_url,
        "remote refs" => builtins::remote::remote_refs,
        "remote summary" => builtins::remote::remote_summary,
        "remote add-cookie" => builtins::remote::remote_add_cookie,
        "remote delete-cookie" => builtins::remote::remote_delete_cookie,
        "remote list-cookies" => builtins::remote::remote_list_cookies,
        "remote gpg-import" => builtins::sign::remote_gpg_import,
        "remote gpg-list-keys" => builtins::sign::remote_gpg_list_keys,
        "sign" => builtins::sign::sign,
        "gpg-sign" => builtins::sign::gpg_sign,
        "summary" => builtins::summary,
        "admin --print-current-dir" => builtins::admin::print_current_dir,
        "admin init-fs" => builtins::admin::init_fs,
        "admin os-init" => builtins::admin::os_init,
        "admin deploy" => builtins::admin::deploy,
        "admin status" => builtins::admin::status,
        "admin undeploy" => builtins::admin::undeploy,
        "admin cleanup" => builtins::admin::cleanup,
        "admin upgrade" => builtins::admin::upgrade,
        "admin switch" => builtins::admin::switch,
        "admin set-origin" => builtins::admin::set_origin,
        "admin pin" => builtins::admin::pin,
        "admin config-diff" => builtins::admin::config_diff,
        "admin unlock" => builtins::admin::unlock,
        "admin finalize-staged" => builtins::admin::finalize_staged,
        "admin boot-complete" => builtins::admin::boot_complete,
        "admin rollback" => builtins::admin::rollback,
        "admin set-default" => builtins::admin::set_default,
        "admin instutil set-kargs" => builtins::admin::instutil_set_kargs,
        "admin instutil grub2-generate" => builtins::admin::instutil_grub2_generate,
        "admin instutil selinux-ensure-labeled" => builtins::admin::instutil_selinux_ensure_labeled,
        "admin kargs edit-in-place" => builtins::admin::kargs_edit_in_place,
        _ => builtins::unimplemented_handler,
    }
}

/// The features printed by `--version` (ostree's `OSTREE_FEATURES`). Only list what this
/// implementation supports: upstream's tests probe e.g. `- libarchive`.
pub const FEATURES: &[&str] = &["rust", "release", "libarchive", "gpgme", "sign-ed25519"];

/// The version printed by `--version`.
pub const VERSION: &str = "2022.7";

/// `OSTREE_BUILTIN_FLAG_NO_REPO`: no `--repo` option, no repository opened.
pub const NO_REPO: u32 = 1;
/// `OSTREE_BUILTIN_FLAG_NO_CHECK`: an explicit `--repo` is not opened (`init`).
pub const NO_CHECK: u32 = 2;
/// `OSTREE_BUILTIN_FLAG_HIDDEN`: not listed in the parent's help.
pub const HIDDEN: u32 = 4;

/// One command or command group.
#[derive(Debug)]
pub struct CommandSpec {
    /// The command word.
    pub name: &'static str,
    /// One-line description: listed by the parent and used as the help summary.
    pub description: Option<&'static str>,
    /// [`NO_REPO`], [`NO_CHECK`], [`HIDDEN`].
    pub flags: u32,
    /// What the command is.
    pub body: Body,
}

/// The kinds of commands.
#[derive(Debug)]
pub enum Body {
    /// A command with a handler.
    Leaf(Leaf),
    /// A command selecting a subcommand (`admin`, `remote`, `admin instutil`, `admin kargs`).
    Group(Group),
    /// `static-delta`, which does its own simpler subcommand selection.
    StaticDelta(&'static [CommandSpec]),
}

/// How a leaf command parses its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `ostree_option_context_parse`: `--repo` (unless [`NO_REPO`]), the command's entries,
    /// `-v/--verbose`, `--version`.
    Main,
    /// `ostree_admin_option_context_parse`: hidden `--print-current-dir`, `--sysroot`, the
    /// command's entries, the global entries.
    Admin(AdminFlags),
    /// `remote add`/`remote delete`: own `--repo`/`--sysroot` entries, resolved by
    /// `ostree_parse_sysroot_or_repo_option`.
    SysrootOrRepo,
    /// `trivial-httpd`: its own entries only, no global ones.
    Standalone,
}

/// A command with a handler.
#[derive(Debug)]
pub struct Leaf {
    /// Text after `[OPTION…]` in the usage line.
    pub parameter_string: &'static str,
    /// The command's own option entries.
    pub options: &'static [OptEntry],
    /// How the options are parsed.
    pub family: Family,
    /// `admin finalize-staged`/`boot-complete`: do nothing (exit 0, before parsing) unless
    /// the system is booted with ostree (`/run/ostree-booted` exists).
    pub only_when_booted: bool,
}

/// A command group.
#[derive(Debug)]
pub struct Group {
    /// Text after `[OPTION…]` in the usage line.
    pub parameter_string: &'static str,
    /// Name in the messages: `Builtin "admin instutil" Commands:`, `No "admin instutil"
    /// subcommand specified`.
    pub label: &'static str,
    /// Column width of the subcommand listing.
    pub width: usize,
    /// Whether the group is part of `admin` (adds `--sysroot`, `--print-current-dir`).
    pub admin: bool,
    /// The subcommands, in listing order.
    pub subcommands: &'static [CommandSpec],
}

const NONE: ArgKind = ArgKind::None;
const STRING: ArgKind = ArgKind::String;
const STRING_ARRAY: ArgKind = ArgKind::StringArray;
const INT: ArgKind = ArgKind::Int;
const FILENAME: ArgKind = ArgKind::Filename;
const FILENAME_ARRAY: ArgKind = ArgKind::FilenameArray;
const FSYNC_CB: ArgKind = ArgKind::Callback(check_boolean);

const fn o(
    long: &'static str,
    short: char,
    kind: ArgKind,
    desc: &'static str,
    arg: &'static str,
) -> OptEntry {
    OptEntry::new(long, short, kind, desc, arg)
}

const fn leaf(
    name: &'static str,
    flags: u32,
    desc: &'static str,
    params: &'static str,
    options: &'static [OptEntry],
) -> CommandSpec {
    CommandSpec {
        name,
        description: Some(desc),
        flags,
        body: Body::Leaf(Leaf {
            parameter_string: params,
            options,
            family: Family::Main,
            only_when_booted: false,
        }),
    }
}

const fn admin_leaf(
    name: &'static str,
    flags: u32,
    desc: &'static str,
    params: &'static str,
    options: &'static [OptEntry],
    admin_flags: AdminFlags,
) -> CommandSpec {
    CommandSpec {
        name,
        description: Some(desc),
        flags: flags | NO_REPO,
        body: Body::Leaf(Leaf {
            parameter_string: params,
            options,
            family: Family::Admin(admin_flags),
            only_when_booted: false,
        }),
    }
}

/// An admin leaf run only on a booted ostree system.
const fn booted_admin_leaf(
    name: &'static str,
    desc: &'static str,
    options: &'static [OptEntry],
    admin_flags: AdminFlags,
) -> CommandSpec {
    CommandSpec {
        name,
        description: Some(desc),
        flags: NO_REPO | HIDDEN,
        body: Body::Leaf(Leaf {
            parameter_string: "",
            options,
            family: Family::Admin(admin_flags),
            only_when_booted: true,
        }),
    }
}

/// `OSTREE_PATH_BOOTED`: exists when the running system was booted with ostree.
pub const PATH_BOOTED: &str = "/run/ostree-booted";

const SU: AdminFlags = AdminFlags::SUPERUSER;
const SU_UNLOCKED: AdminFlags = AdminFlags::SUPERUSER.with(AdminFlags::UNLOCKED);

/// The option tables, one entry per line as in upstream's sources.
#[rustfmt::skip]
mod tables {
    use super::*;

    /// `-v/--verbose`, `--version`: added to every command.
    pub const GLOBAL: &[OptEntry] = &[
        o("verbose", 'v', NONE, "Print debug information during command processing", ""),
        o("version", '\0', NONE, "Print version information and exit", ""),
    ];

    pub(super) const REPO: &[OptEntry] = &[
        o("repo", '\0', FILENAME, "Path to OSTree repository (defaults to current directory or /sysroot/ostree/repo)", "PATH"),
    ];

    pub(super) const ADMIN_GLOBAL: &[OptEntry] = &[
        o("print-current-dir", '\0', NONE, "", "").hidden(),
        o("sysroot", '\0', FILENAME, "Create a new OSTree sysroot at PATH", "PATH"),
    ];

    pub(super) const CAT: &[OptEntry] = &[
    ];

    pub(super) const CHECKOUT: &[OptEntry] = &[
        o("user-mode", 'U', NONE, "Do not change file ownership or initialize extended attributes", ""),
        o("disable-cache", '\0', NONE, "Do not update or use the internal repository uncompressed object cache", ""),
        o("subpath", '\0', FILENAME, "Checkout sub-directory PATH", "PATH"),
        o("union", '\0', NONE, "Keep existing directories, overwrite existing files", ""),
        o("union-add", '\0', NONE, "Keep existing files/directories, only add new", ""),
        o("union-identical", '\0', NONE, "When layering checkouts, error out if a file would be replaced with a different version, but add new files and directories", ""),
        o("whiteouts", '\0', NONE, "Process 'whiteout' (Docker style) entries", ""),
        o("process-passthrough-whiteouts", '\0', NONE, "Enable overlayfs whiteout extraction into char 0:0 devices", ""),
        o("allow-noent", '\0', NONE, "Do nothing if specified path does not exist", ""),
        o("from-stdin", '\0', NONE, "Process many checkouts from standard input", ""),
        o("from-file", '\0', STRING, "Process many checkouts from input file", "FILE"),
        o("fsync", '\0', FSYNC_CB, "Specify how to invoke fsync()", "POLICY"),
        o("require-hardlinks", 'H', NONE, "Do not fall back to full copies if hardlinking fails", ""),
        o("force-copy-zerosized", 'z', NONE, "Do not hardlink zero-sized files", "").hidden(),
        o("force-copy", 'C', NONE, "Never hardlink (but may reflink if available)", ""),
        o("bareuseronly-dirs", 'M', NONE, "Suppress mode bits outside of 0775 for directories (suid, world writable, etc.)", ""),
        o("skip-list", '\0', FILENAME, "File containing list of files to skip", "FILE"),
        o("selinux-policy", '\0', FILENAME, "Set SELinux labels based on policy in root filesystem PATH (may be /); implies --force-copy", "PATH"),
        o("selinux-prefix", '\0', STRING, "When setting SELinux labels, prefix all paths by PREFIX", "PREFIX"),
    ];

    pub(super) const CHECKSUM: &[OptEntry] = &[
        o("ignore-xattrs", '\0', NONE, "Don't include xattrs in checksum", ""),
    ];

    pub(super) const COMMIT: &[OptEntry] = &[
        o("parent", '\0', STRING, "Parent commit checksum, or \"none\"", "COMMIT"),
        o("subject", 's', STRING, "One line subject", "SUBJECT"),
        o("body", 'm', STRING, "Full description", "BODY"),
        o("body-file", 'F', FILENAME, "Commit message from FILE path", "FILE"),
        o("editor", 'e', NONE, "Use an editor to write the commit message", ""),
        o("branch", 'b', STRING, "Branch", "BRANCH"),
        o("orphan", '\0', NONE, "Create a commit without writing a ref", ""),
        o("no-bindings", '\0', NONE, "Do not write any ref bindings", ""),
        o("bind-ref", '\0', STRING_ARRAY, "Add a ref to ref binding commit metadata", "BRANCH"),
        o("base", '\0', STRING, "Start from the given commit as a base (no modifiers apply)", "REV"),
        o("tree", '\0', STRING_ARRAY, "Overlay the given argument as a tree", "dir=PATH or tar=TARFILE or ref=COMMIT"),
        o("add-metadata-string", '\0', STRING_ARRAY, "Add a key/value pair to metadata", "KEY=VALUE"),
        o("add-metadata", '\0', STRING_ARRAY, "Add a key/value pair to metadata, where the KEY is a string, and VALUE is in GVariant Text Format", "KEY=VALUE"),
        o("keep-metadata", '\0', STRING_ARRAY, "Keep metadata KEY and its associated VALUE from parent", "KEY"),
        o("add-detached-metadata-string", '\0', STRING_ARRAY, "Add a key/value pair to detached metadata", "KEY=VALUE"),
        o("owner-uid", '\0', INT, "Set file ownership user id", "UID"),
        o("owner-gid", '\0', INT, "Set file ownership group id", "GID"),
        o("canonical-permissions", '\0', NONE, "Canonicalize permissions in the same way bare-user does for hardlinked files", ""),
        o("bootable", '\0', NONE, "Flag this commit as a bootable OSTree (e.g. contains a Linux kernel)", ""),
        o("mode-ro-executables", '\0', NONE, "Ensure executable files are not writable", ""),
        o("no-xattrs", '\0', NONE, "Do not import extended attributes", ""),
        o("selinux-policy", '\0', FILENAME, "Set SELinux labels based on policy in root filesystem PATH (may be /)", "PATH"),
        o("selinux-policy-from-base", 'P', NONE, "Set SELinux labels based on first --tree argument", ""),
        o("link-checkout-speedup", '\0', NONE, "Optimize for commits of trees composed of hardlinks into the repository", ""),
        o("devino-canonical", 'I', NONE, "Assume hardlinked objects are unmodified.  Implies --link-checkout-speedup", ""),
        o("tar-autocreate-parents", '\0', NONE, "When loading tar archives, automatically create parent directories as needed", ""),
        o("tar-pathname-filter", '\0', STRING, "When loading tar archives, use REGEX,REPLACEMENT against path names", "REGEX,REPLACEMENT"),
        o("skip-if-unchanged", '\0', NONE, "If the contents are unchanged from previous commit, do nothing", ""),
        o("statoverride", '\0', FILENAME, "File containing list of modifications to make to permissions", "PATH"),
        o("skip-list", '\0', FILENAME, "File containing list of files to skip", "PATH"),
        o("consume", '\0', NONE, "Consume (delete) content after commit (for local directories)", ""),
        o("table-output", '\0', NONE, "Output more information in a KEY: VALUE format", ""),
        o("gpg-sign", '\0', STRING_ARRAY, "GPG Key ID to sign the commit with", "KEY-ID"),
        o("gpg-homedir", '\0', FILENAME, "GPG Homedir to use when looking for keyrings", "HOMEDIR"),
        o("sign", '\0', STRING_ARRAY, "Sign the commit with", "KEY_ID"),
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("generate-sizes", '\0', NONE, "Generate size information along with commit metadata", ""),
        o("disable-fsync", '\0', NONE, "Do not invoke fsync()", "").hidden(),
        o("fsync", '\0', FSYNC_CB, "Specify how to invoke fsync()", "POLICY"),
        o("timestamp", '\0', STRING, "Override the timestamp of the commit", "TIMESTAMP"),
    ];

    pub(super) const CONFIG: &[OptEntry] = &[
        o("group", '\0', STRING, "Group name", ""),
    ];

    pub(super) const DIFF: &[OptEntry] = &[
        o("stats", '\0', NONE, "Print various statistics", ""),
        o("fs-diff", '\0', NONE, "Print filesystem diff", ""),
        o("no-xattrs", '\0', NONE, "Skip output of extended attributes", ""),
        o("owner-uid", '\0', INT, "Use file ownership user id for local files", "UID"),
        o("owner-gid", '\0', INT, "Use file ownership group id for local files", "GID"),
    ];

    pub(super) const EXPORT: &[OptEntry] = &[
        o("no-xattrs", '\0', NONE, "Skip output of extended attributes", ""),
        o("subpath", '\0', FILENAME, "Checkout sub-directory PATH", "PATH"),
        o("prefix", '\0', FILENAME, "Add PATH as prefix to archive pathnames", "PATH"),
        o("output", 'o', FILENAME, "Output to PATH ", "PATH"),
    ];

    pub(super) const FIND_REMOTES: &[OptEntry] = &[
        o("cache-dir", '\0', FILENAME, "Use custom cache dir", ""),
        o("disable-fsync", '\0', NONE, "Do not invoke fsync()", ""),
        o("finders", '\0', STRING, "Use the specified comma separated list of finders (e.g. config,lan,mount)", "FINDERS"),
        o("pull", '\0', NONE, "Pull the updates after finding them", ""),
        o("mirror", '\0', NONE, "Do a mirror pull (see ostree pull --mirror)", ""),
    ];

    pub(super) const CREATE_USB: &[OptEntry] = &[
        o("disable-fsync", '\0', NONE, "Do not invoke fsync()", ""),
        o("destination-repo", '\0', FILENAME, "Use custom repository directory within the mount", "DEST"),
        o("commit", '\0', STRING, "Pull a specific commit (only works when a single ref is specified)", "COMMIT"),
    ];

    pub(super) const FSCK: &[OptEntry] = &[
        o("add-tombstones", '\0', NONE, "Add tombstones for missing commits", ""),
        o("quiet", 'q', NONE, "Only print error messages", ""),
        o("all", 'a', NONE, "Don't stop on first error", ""),
        o("delete", '\0', NONE, "Remove corrupted objects", ""),
        o("verify-bindings", '\0', NONE, "Verify ref bindings", ""),
        o("verify-back-refs", '\0', NONE, "Verify back-references (implies --verify-bindings)", ""),
    ];

    pub(super) const GPG_SIGN: &[OptEntry] = &[
        o("delete", 'd', NONE, "Delete signatures having any of the GPG KEY-IDs", ""),
        o("gpg-homedir", '\0', FILENAME, "GPG Homedir to use when looking for keyrings", "HOMEDIR"),
    ];

    pub(super) const INIT: &[OptEntry] = &[
        o("mode", '\0', STRING, "Initialize repository in given mode (bare, bare-user, bare-user-only, archive)", ""),
        o("collection-id", '\0', STRING, "Globally unique ID for this repository as an collection of refs for redistribution to other repositories", "COLLECTION-ID"),
    ];

    pub(super) const LOG: &[OptEntry] = &[
        o("raw", '\0', NONE, "Show raw variant data", ""),
    ];

    pub(super) const LS: &[OptEntry] = &[
        o("dironly", 'd', NONE, "Do not recurse into directory arguments", ""),
        o("recursive", 'R', NONE, "Print directories recursively", ""),
        o("checksum", 'C', NONE, "Print checksum", ""),
        o("xattrs", 'X', NONE, "Print extended attributes", ""),
        o("nul-filenames-only", '\0', NONE, "Print only filenames, NUL separated", ""),
    ];

    pub(super) const PRUNE: &[OptEntry] = &[
        o("no-prune", '\0', NONE, "Only display unreachable objects; don't delete", ""),
        o("refs-only", '\0', NONE, "Only compute reachability via refs", ""),
        o("depth", '\0', INT, "Only traverse DEPTH parents for each commit (default: -1=infinite)", "DEPTH"),
        o("delete-commit", '\0', STRING, "Specify a commit to delete", "COMMIT"),
        o("keep-younger-than", '\0', STRING, "Prune all commits older than the specified date", "DATE"),
        o("static-deltas-only", '\0', NONE, "Change the behavior of delete-commit and keep-younger-than to prune only static deltas", ""),
        o("retain-branch-depth", '\0', STRING_ARRAY, "Additionally retain BRANCH=DEPTH commits", "BRANCH=DEPTH"),
        o("only-branch", '\0', STRING_ARRAY, "Only prune BRANCH (may be specified multiple times)", "BRANCH"),
        o("commit-only", '\0', NONE, "Only traverse and delete commit objects.", ""),
    ];

    pub(super) const PULL_LOCAL: &[OptEntry] = &[
        o("commit-metadata-only", '\0', NONE, "Fetch only the commit metadata", ""),
        o("remote", '\0', STRING, "Add REMOTE to refspec", "REMOTE"),
        o("disable-fsync", '\0', NONE, "Do not invoke fsync()", ""),
        o("per-object-fsync", '\0', NONE, "Perform writes in such a way that avoids stalling concurrent processes", ""),
        o("untrusted", '\0', NONE, "Verify checksums of local sources (always enabled for HTTP pulls)", ""),
        o("bareuseronly-files", '\0', NONE, "Reject regular files with mode outside of 0775 (world writable, suid, etc.)", ""),
        o("require-static-deltas", '\0', NONE, "Require static deltas", ""),
        o("gpg-verify", '\0', NONE, "GPG verify commits (must specify --remote)", ""),
        o("gpg-verify-summary", '\0', NONE, "GPG verify summary (must specify --remote)", ""),
        o("disable-verify-bindings", '\0', NONE, "Do not verify commit bindings", ""),
        o("depth", '\0', INT, "Traverse DEPTH parents (-1=infinite) (default: 0)", "DEPTH"),
    ];

    pub(super) const PUSH: &[OptEntry] = &[
        o("depth", '\0', INT, "Also push DEPTH parents of each commit (-1=all; default 0)", "DEPTH"),
        o("dry-run", '\0', NONE, "Only print what would be uploaded", ""),
        o("jobs", 'j', INT, "Uploads in flight (default 32)", "N"),
        o("force", '\0', NONE, "Move refs that are not an ancestor of the pushed commit", ""),
        o("no-update-summary", '\0', NONE, "Do not regenerate the destination summary", ""),
        o("no-static-deltas", '\0', NONE, "Do not send the static deltas ending at pushed commits", ""),
        o("gpg-sign", '\0', STRING_ARRAY, "GPG Key ID to sign the summary with", "KEY-ID"),
        o("gpg-homedir", '\0', FILENAME, "GPG Homedir to use when looking for keyrings", "HOMEDIR"),
        o("sign", '\0', STRING_ARRAY, "Key ID to sign the summary with", "KEY-ID"),
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
    ];

    pub(super) const PULL: &[OptEntry] = &[
        o("commit-metadata-only", '\0', NONE, "Fetch only the commit metadata", ""),
        o("cache-dir", '\0', FILENAME, "Use custom cache dir", ""),
        o("disable-fsync", '\0', NONE, "Do not invoke fsync()", ""),
        o("per-object-fsync", '\0', NONE, "Perform writes in such a way that avoids stalling concurrent processes", ""),
        o("disable-static-deltas", '\0', NONE, "Do not use static deltas", ""),
        o("require-static-deltas", '\0', NONE, "Require static deltas", ""),
        o("mirror", '\0', NONE, "Write refs suitable for a mirror and fetches all refs if none provided", ""),
        o("subpath", '\0', FILENAME_ARRAY, "Only pull the provided subpath(s)", ""),
        o("untrusted", '\0', NONE, "Verify checksums of local sources (always enabled for HTTP pulls)", ""),
        o("http-trusted", '\0', NONE, "Do not verify checksums of HTTP sources (mostly useful when mirroring)", ""),
        o("bareuseronly-files", '\0', NONE, "Reject regular files with mode outside of 0775 (world writable, suid, etc.)", ""),
        o("dry-run", '\0', NONE, "Only print information on what will be downloaded (requires static deltas)", ""),
        o("depth", '\0', INT, "Traverse DEPTH parents (-1=infinite) (default: 0)", "DEPTH"),
        o("url", '\0', STRING, "Pull objects from this URL instead of the one from the remote config", "URL"),
        o("http-header", '\0', STRING_ARRAY, "Add NAME=VALUE as HTTP header to all requests", "NAME=VALUE"),
        o("update-frequency", '\0', INT, "Sets the update frequency, in milliseconds (0=1000ms) (default: 0)", "FREQUENCY"),
        o("network-retries", '\0', INT, "Specifies how many times each download should be retried upon error (default: 5)", "N"),
        o("localcache-repo", 'L', FILENAME_ARRAY, "Add REPO as local cache source for objects during this pull", "REPO"),
        o("timestamp-check", 'T', NONE, "Require fetched commits to have newer timestamps", ""),
        o("timestamp-check-from-rev", '\0', STRING, "Require fetched commits to have newer timestamps than given rev", ""),
        o("disable-verify-bindings", '\0', NONE, "Do not verify commit bindings", ""),
        o("append-user-agent", '\0', STRING, "Append string to user agent", "").hidden(),
    ];

    pub(super) const REFS: &[OptEntry] = &[
        o("delete", '\0', NONE, "Delete refs which match PREFIX, rather than listing them", ""),
        o("list", '\0', NONE, "Do not remove the prefix from the refs", ""),
        o("alias", 'A', NONE, "If used with --create, create an alias, otherwise just list aliases", ""),
        o("create", '\0', STRING, "Create a new ref for an existing commit", "NEWREF"),
        o("collections", 'c', NONE, "Enable listing collection IDs for refs", ""),
        o("force", '\0', NONE, "Overwrite existing refs when creating", ""),
    ];

    pub(super) const RESET: &[OptEntry] = &[
    ];

    pub(super) const REV_PARSE: &[OptEntry] = &[
        o("single", 'S', NONE, "If the repository has exactly one commit, then print it; any other case will result in an error", ""),
    ];

    pub(super) const SIGN: &[OptEntry] = &[
        o("delete", 'd', NONE, "Delete signatures having any of the KEY-IDs", ""),
        o("verify", '\0', NONE, "Verify signatures", ""),
        o("sign-type", 's', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("keys-file", '\0', STRING, "Read key(s) from file", "NAME"),
        o("keys-dir", '\0', STRING, "Redefine system-wide directories with public and revoked keys for verification", "NAME"),
    ];

    pub(super) const SHOW: &[OptEntry] = &[
        o("print-related", '\0', NONE, "Show the \"related\" commits", ""),
        o("print-variant-type", '\0', STRING, "Memory map OBJECT (in this case a filename) to the GVariant type string", "TYPE"),
        o("print-metadata-key", '\0', STRING, "Print string value of metadata key", "KEY"),
        o("print-detached-metadata-key", '\0', STRING, "Print string value of detached metadata key", "KEY"),
        o("print-sizes", '\0', NONE, "Show the commit size metadata", ""),
        o("raw", '\0', NONE, "Show raw variant data", ""),
        o("no-byteswap", 'B', NONE, "Do not automatically convert variant data from big endian", ""),
        o("gpg-homedir", '\0', FILENAME, "GPG Homedir to use when looking for keyrings", "HOMEDIR"),
        o("gpg-verify-remote", '\0', STRING, "Use REMOTE name for GPG configuration", "REMOTE"),
    ];

    pub(super) const SUMMARY: &[OptEntry] = &[
        o("update", 'u', NONE, "Update the summary", ""),
        o("view", 'v', NONE, "View the local summary file", ""),
        o("raw", '\0', NONE, "View the raw bytes of the summary file", ""),
        o("gpg-sign", '\0', STRING_ARRAY, "GPG Key ID to sign the summary with", "KEY-ID"),
        o("gpg-homedir", '\0', FILENAME, "GPG Homedir to use when looking for keyrings", "HOMEDIR"),
        o("sign", '\0', STRING_ARRAY, "Key ID to sign the summary with", "KEY-ID"),
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("add-metadata", 'm', STRING_ARRAY, "Additional metadata field to add to the summary", "KEY=VALUE"),
    ];

    pub(super) const ADMIN_CLEANUP: &[OptEntry] = &[
    ];

    pub(super) const ADMIN_CONFIG_DIFF: &[OptEntry] = &[
        o("os", '\0', STRING, "Use a different operating system root than the current one", "OSNAME"),
    ];

    pub(super) const ADMIN_DEPLOY: &[OptEntry] = &[
        o("os", '\0', STRING, "Use a different operating system root than the current one", "OSNAME"),
        o("origin-file", '\0', FILENAME, "Specify origin file", "FILENAME"),
        o("no-prune", '\0', NONE, "Don't prune the repo when done", ""),
        o("no-merge", '\0', NONE, "Do not apply configuration (/etc and kernel arguments) from booted deployment", ""),
        o("retain", '\0', NONE, "Do not delete previous deployments", ""),
        o("stage", '\0', NONE, "Complete deployment at OS shutdown", ""),
        o("lock-finalization", '\0', NONE, "Prevent automatic deployment finalization on shutdown", "").hidden(),
        o("retain-pending", '\0', NONE, "Do not delete pending deployments", ""),
        o("retain-rollback", '\0', NONE, "Do not delete rollback deployments", ""),
        o("not-as-default", '\0', NONE, "Append rather than prepend new deployment", ""),
        o("karg-proc-cmdline", '\0', NONE, "Import current /proc/cmdline", ""),
        o("karg", '\0', STRING_ARRAY, "Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name", "NAME=VALUE"),
        o("karg-append", '\0', STRING_ARRAY, "Append kernel argument; useful with e.g. console= that can be used multiple times", "NAME=VALUE"),
        o("karg-none", '\0', NONE, "Do not import kernel arguments", ""),
        o("karg-delete", '\0', STRING, "Delete kernel argument if exists", "NAME=VALUE"),
        o("overlay-initrd", '\0', STRING_ARRAY, "Overlay iniramfs file", "FILE"),
    ];

    pub(super) const ADMIN_FINALIZE_STAGED: &[OptEntry] = &[
        o("hold", '\0', NONE, "Hold /boot open during finalization", ""),
    ];

    pub(super) const ADMIN_BOOT_COMPLETE: &[OptEntry] = &[
    ];

    pub(super) const ADMIN_INIT_FS: &[OptEntry] = &[
        o("modern", '\0', NONE, "Only create /boot and /ostree", ""),
    ];

    pub(super) const ADMIN_OS_INIT: &[OptEntry] = &[
    ];

    pub(super) const ADMIN_PIN: &[OptEntry] = &[
        o("unpin", 'u', NONE, "Unset pin", ""),
    ];

    pub(super) const ADMIN_SET_ORIGIN: &[OptEntry] = &[
        o("set", 's', STRING_ARRAY, "Set config option KEY=VALUE for remote", "KEY=VALUE"),
        o("index", '\0', INT, "Operate on the deployment INDEX, starting from zero", "INDEX"),
    ];

    pub(super) const ADMIN_STATUS: &[OptEntry] = &[
        o("verify", 'V', NONE, "Print the commit verification status", ""),
    ];

    pub(super) const ADMIN_SWITCH: &[OptEntry] = &[
        o("reboot", 'r', NONE, "Reboot after switching trees", ""),
        o("os", '\0', STRING, "Use a different operating system root than the current one", "OSNAME"),
    ];

    pub(super) const ADMIN_UNDEPLOY: &[OptEntry] = &[
    ];

    pub(super) const ADMIN_UNLOCK: &[OptEntry] = &[
        o("hotfix", '\0', NONE, "Retain changes across reboots", ""),
        o("transient", '\0', NONE, "Mount overlayfs read-only by default", ""),
    ];

    pub(super) const ADMIN_UPGRADE: &[OptEntry] = &[
        o("os", '\0', STRING, "Use a different operating system root than the current one", "OSNAME"),
        o("reboot", 'r', NONE, "Reboot after a successful upgrade", ""),
        o("allow-downgrade", '\0', NONE, "Permit deployment of chronologically older trees", ""),
        o("override-commit", '\0', STRING, "Deploy CHECKSUM instead of the latest tree", "CHECKSUM"),
        o("pull-only", '\0', NONE, "Do not create a deployment, just download", ""),
        o("deploy-only", '\0', NONE, "Do not pull, only deploy", ""),
        o("stage", '\0', NONE, "Enable staging (finalization at reboot time)", ""),
    ];

    pub(super) const INSTUTIL_SELINUX_ENSURE_LABELED: &[OptEntry] = &[
    ];

    pub(super) const INSTUTIL_SET_KARGS: &[OptEntry] = &[
        o("import-proc-cmdline", '\0', NONE, "Import current /proc/cmdline", ""),
        o("merge", '\0', NONE, "Merge with previous command line", ""),
        o("replace", '\0', STRING_ARRAY, "Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name", "NAME=VALUE"),
        o("append", '\0', STRING_ARRAY, "Append kernel argument; useful with e.g. console= that can be used multiple times", "NAME=VALUE"),
    ];

    pub(super) const INSTUTIL_GRUB2_GENERATE: &[OptEntry] = &[
    ];

    pub(super) const KARGS_EDIT_IN_PLACE: &[OptEntry] = &[
        o("append-if-missing", '\0', STRING_ARRAY, "Append kernel arguments if they do not exist", "NAME=VALUE"),
    ];

    pub(super) const REMOTE_ADD: &[OptEntry] = &[
        o("set", '\0', STRING_ARRAY, "Set config option KEY=VALUE for remote", "KEY=VALUE"),
        o("no-gpg-verify", '\0', NONE, "Disable GPG verification", ""),
        o("no-sign-verify", '\0', NONE, "Disable signature verification", ""),
        o("sign-verify", '\0', STRING_ARRAY, "Verify signatures using KEYTYPE=inline:PUBKEY or KEYTYPE=file:/path/to/key", "KEYTYPE=[inline|file]:PUBKEY"),
        o("if-not-exists", '\0', NONE, "Do nothing if the provided remote exists", ""),
        o("force", '\0', NONE, "Replace the provided remote if it exists", ""),
        o("gpg-import", '\0', FILENAME, "Import GPG key from FILE", "FILE"),
        o("custom-backend", '\0', STRING, "This remote has content not fetched via libostree", "NAME"),
        o("contenturl", '\0', STRING, "Use URL when fetching content", "URL"),
        o("collection-id", '\0', STRING, "Globally unique ID for this repository as an collection of refs for redistribution to other repositories", "COLLECTION-ID"),
        o("repo", '\0', FILENAME, "Path to OSTree repository (defaults to /sysroot/ostree/repo)", "PATH"),
        o("sysroot", '\0', FILENAME, "Use sysroot at PATH (overrides --repo)", "PATH"),
    ];

    pub(super) const REMOTE_DELETE: &[OptEntry] = &[
        o("if-exists", '\0', NONE, "Do nothing if the provided remote does not exist", ""),
        o("repo", '\0', FILENAME, "Path to OSTree repository (defaults to /sysroot/ostree/repo)", "PATH"),
        o("sysroot", '\0', FILENAME, "Use sysroot at PATH (overrides --repo)", "PATH"),
    ];

    pub(super) const REMOTE_SHOW_URL: &[OptEntry] = &[
    ];

    pub(super) const REMOTE_LIST: &[OptEntry] = &[
        o("show-urls", 'u', NONE, "Show remote URLs in list", ""),
    ];

    pub(super) const REMOTE_GPG_IMPORT: &[OptEntry] = &[
        o("keyring", 'k', FILENAME_ARRAY, "Import keys from a keyring file (repeatable)", "FILE"),
        o("stdin", '\0', NONE, "Import keys from standard input", ""),
    ];

    pub(super) const REMOTE_GPG_LIST_KEYS: &[OptEntry] = &[
    ];

    pub(super) const REMOTE_ADD_COOKIE: &[OptEntry] = &[
    ];

    pub(super) const REMOTE_DELETE_COOKIE: &[OptEntry] = &[
    ];

    pub(super) const REMOTE_LIST_COOKIES: &[OptEntry] = &[
    ];

    pub(super) const REMOTE_REFS: &[OptEntry] = &[
        o("cache-dir", '\0', FILENAME, "Use custom cache dir", ""),
    ];

    pub(super) const REMOTE_SUMMARY: &[OptEntry] = &[
        o("cache-dir", '\0', FILENAME, "Use custom cache dir", ""),
        o("raw", '\0', NONE, "Show raw variant data", ""),
    ];

    pub(super) const TRIVIAL_HTTPD: &[OptEntry] = &[
        o("daemonize", 'd', NONE, "Fork into background when ready", ""),
        o("autoexit", '\0', NONE, "Automatically exit when directory is deleted", ""),
        o("port", 'P', INT, "Use the specified TCP port", "PORT"),
        o("port-file", 'p', FILENAME, "Write port number to PATH (- for standard output)", "PATH"),
        o("force-range-requests", '\0', NONE, "Force range requests by only serving half of files", ""),
        o("require-basic-auth", '\0', NONE, "Require username foouser, password barpw", ""),
        o("random-500s", '\0', INT, "Generate random HTTP 500 errors approximately for PERCENTAGE requests", "PERCENTAGE"),
        o("random-500s-max", '\0', INT, "Limit HTTP 500 errors to MAX (default 100)", "MAX"),
        o("random-408s", '\0', INT, "Generate random HTTP 408 errors approximately for PERCENTAGE requests", "PERCENTAGE"),
        o("random-408s-max", '\0', INT, "Limit HTTP 408 errors to MAX (default 100)", "MAX"),
        o("log-file", '\0', FILENAME, "Put logs here (use - for stdout)", "PATH"),
        o("expected-cookies", '\0', STRING_ARRAY, "Expect given cookies in the http request", "KEY=VALUE"),
        o("expected-header", '\0', STRING_ARRAY, "Expect given headers in the http request", "KEY=VALUE"),
    ];

    pub(super) const DELTA_GENERATE: &[OptEntry] = &[
        o("from", '\0', STRING, "Create delta from revision REV", "REV"),
        o("empty", '\0', NONE, "Create delta from scratch", ""),
        o("inline", '\0', NONE, "Inline delta parts into main delta", ""),
        o("to", '\0', STRING, "Create delta to revision REV", "REV"),
        o("disable-bsdiff", '\0', NONE, "Disable use of bsdiff", ""),
        o("if-not-exists", 'n', NONE, "Only generate if a delta does not already exist", ""),
        o("set-endianness", '\0', STRING, "Choose metadata endianness ('l' or 'B')", "ENDIAN"),
        o("swap-endianness", '\0', NONE, "Swap metadata endianness from host order", ""),
        o("min-fallback-size", '\0', STRING, "Minimum uncompressed size in megabytes for individual HTTP request", ""),
        o("max-bsdiff-size", '\0', STRING, "Maximum size in megabytes to consider bsdiff compression for input files", ""),
        o("max-chunk-size", '\0', STRING, "Maximum size of delta chunks in megabytes", ""),
        o("filename", '\0', FILENAME, "Write the delta content to PATH (a directory).  If not specified, the OSTree repository is used", "PATH"),
        o("sign", '\0', STRING_ARRAY, "Sign the delta with", "KEY_ID"),
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("keys-file", '\0', STRING, "Read key(s) from file", "NAME"),
    ];

    pub(super) const DELTA_APPLY_OFFLINE: &[OptEntry] = &[
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("keys-file", '\0', STRING, "Read key(s) from file", "NAME"),
        o("keys-dir", '\0', STRING, "Redefine system-wide directories with public and revoked keys for verification", "NAME"),
    ];

    pub(super) const DELTA_LIST: &[OptEntry] = &[
    ];

    pub(super) const DELTA_VERIFY: &[OptEntry] = &[
        o("sign-type", '\0', STRING, "Signature type to use (defaults to 'ed25519')", "NAME"),
        o("keys-file", '\0', STRING, "Read key(s) from file", "NAME"),
        o("keys-dir", '\0', STRING, "Redefine system-wide directories with public and revoked keys for verification", "NAME"),
    ];

    pub(super) const DELTA_INDEXES: &[OptEntry] = &[
    ];

    pub(super) const DELTA_REINDEX: &[OptEntry] = &[
        o("to", '\0', STRING, "Only update delta index to revision REV", "REV"),
    ];
}
use tables::*;

/// The top-level commands, in ostree's order.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "admin",
        description: Some("Commands for managing a host system booted with ostree"),
        flags: NO_REPO,
        body: Body::Group(Group {
            parameter_string: "--print-current-dir|COMMAND",
            label: "admin",
            width: 19,
            admin: true,
            subcommands: ADMIN_COMMANDS,
        }),
    },
    leaf(
        "cat",
        0,
        "Concatenate contents of files",
        "COMMIT PATH...",
        CAT,
    ),
    leaf(
        "checkout",
        0,
        "Check out a commit into a filesystem tree",
        "COMMIT [DESTINATION]",
        CHECKOUT,
    ),
    leaf(
        "checksum",
        NO_REPO,
        "Checksum a file or directory",
        "PATH",
        CHECKSUM,
    ),
    leaf("commit", 0, "Commit a new revision", "[PATH]", COMMIT),
    leaf(
        "config",
        0,
        "Change repo configuration settings",
        "(get KEY|set KEY VALUE|unset KEY)",
        CONFIG,
    ),
    leaf(
        "diff",
        0,
        "Compare directory TARGETDIR against revision REV",
        "REV_OR_DIR REV_OR_DIR",
        DIFF,
    ),
    leaf(
        "export",
        0,
        "Stream COMMIT to stdout in tar format",
        "COMMIT",
        EXPORT,
    ),
    leaf(
        "find-remotes",
        0,
        "Find remotes to serve the given refs",
        "COLLECTION-ID REF [COLLECTION-ID REF...]",
        FIND_REMOTES,
    ),
    leaf(
        "create-usb",
        0,
        "Copy the refs to a USB stick",
        "MOUNT-PATH COLLECTION-ID REF [COLLECTION-ID REF...]",
        CREATE_USB,
    ),
    leaf("fsck", 0, "Check the repository for consistency", "", FSCK),
    leaf("gpg-sign", 0, "Sign a commit", "COMMIT KEY-ID...", GPG_SIGN),
    leaf(
        "init",
        NO_CHECK,
        "Initialize a new empty repository",
        "",
        INIT,
    ),
    leaf("log", 0, "Show log starting at commit or ref", "REV", LOG),
    leaf("ls", 0, "List file paths", "COMMIT [PATH...]", LS),
    leaf("prune", 0, "Search for unreachable objects", "", PRUNE),
    leaf(
        "pull-local",
        0,
        "Copy data from SRC_REPO",
        "SRC_REPO [REFS...]",
        PULL_LOCAL,
    ),
    leaf(
        "pull",
        0,
        "Download data from remote repository",
        "REMOTE [BRANCH...]",
        PULL,
    ),
    leaf(
        "push",
        HIDDEN,
        "Upload commits to a repository store",
        "DEST REF...",
        PUSH,
    ),
    leaf("refs", 0, "List refs", "[PREFIX]", REFS),
    CommandSpec {
        name: "remote",
        description: Some("Remote commands that may involve internet access"),
        flags: NO_REPO,
        body: Body::Group(Group {
            parameter_string: "COMMAND",
            label: "remote",
            width: 18,
            admin: false,
            subcommands: REMOTE_COMMANDS,
        }),
    },
    leaf(
        "reset",
        0,
        "Reset a REF to a previous COMMIT",
        "REF COMMIT",
        RESET,
    ),
    leaf(
        "rev-parse",
        0,
        "Output the target of a rev",
        "REV",
        REV_PARSE,
    ),
    leaf("sign", 0, "Sign a commit", "COMMIT KEY-ID...", SIGN),
    leaf("show", 0, "Output a metadata object", "OBJECT", SHOW),
    CommandSpec {
        name: "static-delta",
        description: Some("Static delta related commands"),
        flags: 0,
        body: Body::StaticDelta(STATIC_DELTA_COMMANDS),
    },
    leaf("summary", 0, "Manage summary metadata", "", SUMMARY),
    // Upstream lists it (without description) only when built with it; Debian's is not, so
    // it stays out of the listing here.
    CommandSpec {
        name: "trivial-httpd",
        description: None,
        flags: NO_REPO | HIDDEN,
        body: Body::Leaf(Leaf {
            parameter_string: "[DIR] - Simple webserver",
            options: TRIVIAL_HTTPD,
            family: Family::Standalone,
            only_when_booted: false,
        }),
    },
];

static ADMIN_COMMANDS: &[CommandSpec] = &[
    admin_leaf(
        "cleanup",
        0,
        "Delete untagged deployments and repository objects",
        "",
        ADMIN_CLEANUP,
        SU,
    ),
    admin_leaf(
        "config-diff",
        0,
        "Diff current /etc configuration versus default",
        "",
        ADMIN_CONFIG_DIFF,
        SU_UNLOCKED,
    ),
    admin_leaf(
        "deploy",
        0,
        "Checkout revision REFSPEC as the new default deployment",
        "REFSPEC",
        ADMIN_DEPLOY,
        SU,
    ),
    booted_admin_leaf(
        "finalize-staged",
        "Internal command to run at shutdown time",
        ADMIN_FINALIZE_STAGED,
        AdminFlags::NO_LOAD,
    ),
    booted_admin_leaf(
        "boot-complete",
        "Internal command to run at boot after an update was applied",
        ADMIN_BOOT_COMPLETE,
        SU,
    ),
    admin_leaf(
        "init-fs",
        0,
        "Initialize a root filesystem",
        "PATH",
        ADMIN_INIT_FS,
        SU_UNLOCKED.with(AdminFlags::NO_SYSROOT),
    ),
    CommandSpec {
        name: "instutil",
        description: Some("Deprecated commands intended for installer programs"),
        flags: NO_REPO | HIDDEN,
        body: Body::Group(Group {
            parameter_string: "COMMAND",
            label: "admin instutil",
            width: 24,
            admin: true,
            subcommands: INSTUTIL_COMMANDS,
        }),
    },
    admin_leaf(
        "os-init",
        0,
        "Initialize empty state for given operating system",
        "OSNAME",
        ADMIN_OS_INIT,
        SU_UNLOCKED,
    ),
    admin_leaf(
        "pin",
        0,
        "Change the \"pinning\" state of a deployment",
        "INDEX",
        ADMIN_PIN,
        SU,
    ),
    admin_leaf(
        "rollback",
        0,
        "Make the previous deployment the default",
        "",
        ADMIN_UNDEPLOY,
        SU,
    ),
    admin_leaf(
        "set-origin",
        0,
        "Set Origin and create a new origin file",
        "REMOTENAME URL [BRANCH]",
        ADMIN_SET_ORIGIN,
        SU,
    ),
    admin_leaf(
        "status",
        0,
        "List deployments",
        "",
        ADMIN_STATUS,
        AdminFlags::UNLOCKED,
    ),
    admin_leaf(
        "switch",
        0,
        "Construct new tree from REFSPEC and deploy it",
        "REFSPEC",
        ADMIN_SWITCH,
        SU,
    ),
    admin_leaf(
        "undeploy",
        0,
        "Delete deployment INDEX",
        "INDEX",
        ADMIN_UNDEPLOY,
        SU,
    ),
    admin_leaf(
        "set-default",
        0,
        "Make deployment INDEX the default",
        "INDEX",
        ADMIN_UNDEPLOY,
        SU,
    ),
    admin_leaf(
        "unlock",
        0,
        "Make the current deployment mutable (as a hotfix or development)",
        "",
        ADMIN_UNLOCK,
        SU,
    ),
    admin_leaf(
        "upgrade",
        0,
        "Construct new tree from current origin and deploy it, if it changed",
        "",
        ADMIN_UPGRADE,
        SU,
    ),
    CommandSpec {
        name: "kargs",
        description: Some("Change kernel arguments"),
        flags: NO_REPO,
        body: Body::Group(Group {
            parameter_string: "COMMAND",
            label: "admin kargs",
            width: 24,
            admin: true,
            subcommands: KARGS_COMMANDS,
        }),
    },
];

static INSTUTIL_COMMANDS: &[CommandSpec] = &[
    admin_leaf(
        "selinux-ensure-labeled",
        0,
        "Relabel all or part of a deployment",
        "[SUBPATH PREFIX]",
        INSTUTIL_SELINUX_ENSURE_LABELED,
        SU_UNLOCKED,
    ),
    admin_leaf(
        "set-kargs",
        0,
        "Set new kernel command line arguments(Not stable)",
        "ARGS",
        INSTUTIL_SET_KARGS,
        SU_UNLOCKED,
    ),
    admin_leaf(
        "grub2-generate",
        0,
        "Generate GRUB2 configuration from given BLS entries",
        "[BOOTVERSION]",
        INSTUTIL_GRUB2_GENERATE,
        SU_UNLOCKED,
    ),
];

static KARGS_COMMANDS: &[CommandSpec] = &[admin_leaf(
    "edit-in-place",
    HIDDEN,
    "Set new kernel command line arguments in place (applies to all deployments by default)",
    "ARGS",
    KARGS_EDIT_IN_PLACE,
    SU,
)];

static REMOTE_COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "add",
        description: Some("Add a remote repository"),
        flags: NO_REPO,
        body: Body::Leaf(Leaf {
            parameter_string: "NAME [metalink=|mirrorlist=]URL [BRANCH...]",
            options: REMOTE_ADD,
            family: Family::SysrootOrRepo,
            only_when_booted: false,
        }),
    },
    CommandSpec {
        name: "delete",
        description: Some("Delete a remote repository"),
        flags: NO_REPO,
        body: Body::Leaf(Leaf {
            parameter_string: "NAME",
            options: REMOTE_DELETE,
            family: Family::SysrootOrRepo,
            only_when_booted: false,
        }),
    },
    leaf(
        "show-url",
        0,
        "Show remote repository URL",
        "NAME",
        REMOTE_SHOW_URL,
    ),
    leaf("list", 0, "List remote repository names", "", REMOTE_LIST),
    leaf(
        "gpg-import",
        0,
        "Import GPG keys",
        "NAME [KEY-ID...]",
        REMOTE_GPG_IMPORT,
    ),
    leaf(
        "gpg-list-keys",
        0,
        "Show remote GPG keys",
        "NAME",
        REMOTE_GPG_LIST_KEYS,
    ),
    leaf(
        "add-cookie",
        0,
        "Add a cookie to remote",
        "NAME DOMAIN PATH COOKIE_NAME VALUE",
        REMOTE_ADD_COOKIE,
    ),
    leaf(
        "delete-cookie",
        0,
        "Remove one cookie from remote",
        "NAME DOMAIN PATH COOKIE_NAME",
        REMOTE_DELETE_COOKIE,
    ),
    leaf(
        "list-cookies",
        0,
        "Show remote repository cookies",
        "NAME",
        REMOTE_LIST_COOKIES,
    ),
    leaf("refs", 0, "List remote refs", "NAME", REMOTE_REFS),
    leaf("summary", 0, "Show remote summary", "NAME", REMOTE_SUMMARY),
];

static STATIC_DELTA_COMMANDS: &[CommandSpec] = &[
    leaf("list", 0, "List static delta files", "", DELTA_LIST),
    leaf("show", 0, "Dump information on a delta", "", DELTA_LIST),
    leaf("delete", 0, "Remove a delta", "", DELTA_LIST),
    leaf(
        "generate",
        0,
        "Generate static delta files",
        "[TO]",
        DELTA_GENERATE,
    ),
    leaf(
        "apply-offline",
        0,
        "Apply static delta file",
        "",
        DELTA_APPLY_OFFLINE,
    ),
    leaf(
        "verify",
        0,
        "Verify static delta signatures",
        "STATIC-DELTA-FILE [KEY-ID...]",
        DELTA_VERIFY,
    ),
    leaf("indexes", 0, "List static delta indexes", "", DELTA_INDEXES),
    leaf(
        "reindex",
        0,
        "Regenerate static delta indexes",
        "",
        DELTA_REINDEX,
    ),
];

/// What [`dispatch`] decided.
#[derive(Debug)]
pub enum Outcome {
    /// Everything is printed: exit with this status.
    Exit(i32),
    /// Print `error: <message>` and exit 1 (any usage text is already on stderr).
    Error(anyhow::Error),
    /// Run this handler.
    Run(Handler, Box<Invocation>),
}

fn error(msg: impl Into<String>) -> Outcome {
    Outcome::Error(anyhow::Error::msg(msg.into()))
}

/// The `Builtin … Commands:` listing (`"\n  %-18s%s"` per visible command).
fn listing(title: &str, commands: &[CommandSpec], width: usize) -> String {
    let mut s = title.to_owned();
    for c in commands.iter().filter(|c| c.flags & HIDDEN == 0) {
        s.push_str(&format!(
            "\n  {:<width$}{}",
            c.name,
            c.description.unwrap_or("")
        ));
    }
    s
}

/// `--version`: ostree's YAML, written with one `write()`.
pub fn version_text() -> String {
    let mut s = format!("libostree:\n Version: '{VERSION}'\n Features:\n");
    for f in FEATURES {
        s.push_str(&format!("  - {f}\n"));
    }
    s
}

fn help_exit(ctx: &OptionContext) -> Outcome {
    print_text(&ctx.help());
    Outcome::Exit(0)
}

/// The top-level help (`ostree --help`), with `prgname` as the program name.
pub fn main_context(prgname: &str) -> OptionContext {
    let mut ctx = OptionContext::new(prgname, Some("COMMAND"));
    ctx.summary = Some(listing("Builtin Commands:", COMMANDS, 18));
    ctx.add_entries(GLOBAL);
    ctx
}

/// Parses `argv` (program name first) down to a command, printing help, usage and version
/// texts on the way exactly as ostree does. Extension commands (`ostree-foo`) are looked up
/// before, by [`lookup_external`].
pub fn dispatch(argv: &[String]) -> Outcome {
    let prgname = argv.first().map(String::as_str).unwrap_or("ostree");
    let rest = argv.get(1..).unwrap_or_default();
    // ostree_run: the first argument not starting with '-' is the command.
    let name_idx = rest.iter().position(|a| !a.starts_with('-'));
    let name = name_idx.map(|i| rest[i].as_str());
    let args: Vec<String> = rest
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != name_idx)
        .map(|(_, a)| a.clone())
        .collect();

    if let Some(cmd) = COMMANDS.iter().find(|c| Some(c.name) == name) {
        return run_command(cmd, format!("{prgname} {}", cmd.name), vec![cmd.name], args);
    }

    let ctx = main_context(prgname);
    let err = match ctx.parse(&args) {
        Ok(Parsed::Help) => return help_exit(&ctx),
        Ok(Parsed::Args(a)) => {
            if a.flag("version") {
                print_text(&version_text());
                return Outcome::Exit(0);
            }
            match name {
                None => "No command specified".to_owned(),
                Some(n) => format!("Unknown command '{n}'"),
            }
        }
        Err(e) => e,
    };
    eprint_text(&ctx.help());
    error(err)
}

fn run_command(
    cmd: &'static CommandSpec,
    prgname: String,
    path: Vec<&'static str>,
    args: Vec<String>,
) -> Outcome {
    match &cmd.body {
        Body::Leaf(l) => run_leaf(cmd, l, prgname, path, args, None),
        Body::Group(g) => run_group(cmd, g, prgname, path, args),
        Body::StaticDelta(subs) => run_static_delta(subs, prgname, path, args),
    }
}

fn run_group(
    cmd: &'static CommandSpec,
    g: &'static Group,
    prgname: String,
    mut path: Vec<&'static str>,
    args: Vec<String>,
) -> Outcome {
    // The first argument not starting with '-' is the subcommand; `--` ends the scan and
    // is dropped along with everything after it.
    let mut sub_name: Option<String> = None;
    let mut rest = Vec::new();
    for a in args {
        if !a.starts_with('-') {
            if sub_name.is_none() {
                sub_name = Some(a);
                continue;
            }
        } else if a == "--" {
            break;
        }
        rest.push(a);
    }

    if let Some(sub) = g
        .subcommands
        .iter()
        .find(|c| Some(c.name) == sub_name.as_deref())
    {
        path.push(sub.name);
        return run_command(sub, format!("{prgname} {}", sub.name), path, rest);
    }

    let mut ctx = OptionContext::new(prgname, Some(g.parameter_string));
    let list = listing(
        &format!("Builtin \"{}\" Commands:", g.label),
        g.subcommands,
        g.width,
    );
    ctx.summary = Some(match cmd.description {
        Some(d) => format!("{d}\n\n{list}"),
        None => list,
    });
    if g.admin {
        ctx.add_entries(ADMIN_GLOBAL);
    }
    if cmd.flags & NO_REPO == 0 {
        ctx.add_entries(REPO);
    }
    ctx.add_entries(GLOBAL);

    let err = match ctx.parse(&rest) {
        Ok(Parsed::Help) => return help_exit(&ctx),
        Ok(Parsed::Args(mut a)) => {
            a.drop_first_double_dash();
            if a.flag("version") {
                print_text(&version_text());
                return Outcome::Exit(0);
            }
            if g.admin && a.flag("print-current-dir") {
                let sysroot = a.value("sysroot").map(|s| absolute(Path::new(s)));
                let inv = Invocation {
                    verbose: a.flag("verbose"),
                    args: a,
                    command_path: path,
                    context: ctx,
                    repo: None,
                    sysroot,
                    admin_flags: Some(AdminFlags::NO_SYSROOT),
                };
                return Outcome::Run(handler_for("admin --print-current-dir"), Box::new(inv));
            }
            match &sub_name {
                None => format!("No \"{}\" subcommand specified", g.label),
                Some(n) => format!("Unknown \"{}\" subcommand '{n}'", g.label),
            }
        }
        Err(e) => e,
    };
    eprint_text(&ctx.help());
    error(err)
}

/// `static_delta_usage`.
fn static_delta_usage(subs: &[CommandSpec]) -> String {
    let mut s = String::from(
        "Usage:\n  ostree static-delta [OPTION...] COMMAND\n\nBuiltin \"static-delta\" Commands:\n",
    );
    for c in subs.iter().filter(|c| c.flags & HIDDEN == 0) {
        s.push_str(&format!(
            "  {:<17}{}\n",
            c.name,
            c.description.unwrap_or("")
        ));
    }
    s.push('\n');
    s
}

fn run_static_delta(
    subs: &'static [CommandSpec],
    prgname: String,
    mut path: Vec<&'static str>,
    args: Vec<String>,
) -> Outcome {
    let mut cmd_idx = None;
    let mut want_help = false;
    for (i, a) in args.iter().enumerate() {
        if !a.starts_with('-') {
            cmd_idx = Some(i);
            break;
        } else if a == "--help" || a == "-h" {
            want_help = true;
            break;
        }
    }
    let Some(idx) = cmd_idx else {
        if want_help {
            print_text(&static_delta_usage(subs));
            return Outcome::Exit(0);
        }
        eprint_text(&static_delta_usage(subs));
        return error("No command specified");
    };
    let name = args[idx].clone();
    let Some(sub) = subs.iter().find(|c| c.name == name) else {
        eprint_text(&static_delta_usage(subs));
        return error(format!("Unknown \"static-delta\" subcommand '{name}'"));
    };
    let Body::Leaf(l) = &sub.body else {
        return error(format!("Unknown \"static-delta\" subcommand '{name}'"));
    };
    path.push(sub.name);
    // The subcommand sees the whole argument list, its own name included.
    run_leaf(sub, l, format!("{prgname} {name}"), path, args, Some(idx))
}

fn run_leaf(
    cmd: &'static CommandSpec,
    leaf: &'static Leaf,
    prgname: String,
    path: Vec<&'static str>,
    args: Vec<String>,
    skip: Option<usize>,
) -> Outcome {
    if leaf.only_when_booted && std::fs::metadata(PATH_BOOTED).is_err() {
        return Outcome::Exit(0);
    }
    let params = (!leaf.parameter_string.is_empty()).then_some(leaf.parameter_string);
    let mut ctx = OptionContext::new(prgname, params);
    if leaf.family == Family::Standalone {
        ctx.add_entries(leaf.options);
        return match ctx.parse(&args) {
            Ok(Parsed::Help) => help_exit(&ctx),
            Ok(Parsed::Args(a)) => {
                let inv = Invocation {
                    verbose: false,
                    args: a,
                    command_path: path.clone(),
                    context: ctx,
                    repo: None,
                    sysroot: None,
                    admin_flags: None,
                };
                Outcome::Run(handler_for(&path.join(" ")), Box::new(inv))
            }
            Err(e) => error(e),
        };
    }

    ctx.summary = cmd.description.map(str::to_owned);
    if matches!(leaf.family, Family::Admin(_)) {
        ctx.add_entries(ADMIN_GLOBAL);
    }
    if cmd.flags & NO_REPO == 0 {
        ctx.add_entries(REPO);
    }
    ctx.add_entries(leaf.options);
    ctx.add_entries(GLOBAL);

    let mut a = match ctx.parse(&args) {
        Ok(Parsed::Help) => return help_exit(&ctx),
        Ok(Parsed::Args(a)) => a,
        Err(e) => return error(e),
    };
    a.drop_first_double_dash();
    if let Some(i) = skip {
        a.remove_positional_at(i);
    }
    if a.flag("version") {
        print_text(&version_text());
        return Outcome::Exit(0);
    }

    let mut repo = None;
    let mut sysroot = None;
    let mut admin_flags = None;
    let mut handler_path = path.join(" ");
    match leaf.family {
        Family::Admin(flags) => {
            admin_flags = Some(flags);
            sysroot = a.value("sysroot").map(|s| absolute(Path::new(s)));
            if a.flag("print-current-dir") {
                handler_path = "admin --print-current-dir".to_owned();
            }
        }
        Family::SysrootOrRepo => {
            if let Some(s) = a.value("sysroot") {
                sysroot = Some(absolute(Path::new(s)));
            } else {
                match resolve_repo(a.value("repo"), false, &ctx) {
                    Ok(p) => repo = Some(p),
                    Err(o) => return o,
                }
            }
        }
        Family::Main if cmd.flags & NO_REPO == 0 => {
            match resolve_repo(a.value("repo"), cmd.flags & NO_CHECK != 0, &ctx) {
                Ok(p) => repo = Some(p),
                Err(o) => return o,
            }
        }
        Family::Main | Family::Standalone => {}
    }

    let inv = Invocation {
        verbose: a.flag("verbose"),
        args: a,
        command_path: path,
        context: ctx,
        repo,
        sysroot,
        admin_flags,
    };
    Outcome::Run(handler_for(&handler_path), Box::new(inv))
}

/// `ostree_repo_new_default`'s choice: the current directory if it holds `objects/` and
/// `config`, else `$OSTREE_REPO`, else `<sysroot>/ostree/repo`.
pub fn default_repo_path() -> PathBuf {
    if Path::new("objects").is_dir() && Path::new("config").is_file() {
        return absolute(Path::new("."));
    }
    match std::env::var_os("OSTREE_REPO") {
        Some(p) if !p.is_empty() => absolute(Path::new(&p)),
        _ => crate::opts::default_sysroot().join("ostree/repo"),
    }
}

/// `parse_repo_option`: the repository path, checked to open (see [`check_repo`]).
/// A URL (`s3://bucket/repo`) is returned verbatim: its backend checks it when opening.
fn resolve_repo(
    arg: Option<&str>,
    skip_open: bool,
    ctx: &OptionContext,
) -> Result<String, Outcome> {
    match arg {
        Some(u) if is_url(u) => Ok(u.to_owned()),
        Some(p) => {
            let path = absolute(Path::new(p));
            if !skip_open {
                check_repo(&path).map_err(|e| error(e.message))?;
            }
            Ok(path.to_string_lossy().into_owned())
        }
        None => {
            if let Some(u) = std::env::var("OSTREE_REPO").ok().filter(|u| is_url(u))
                && !(Path::new("objects").is_dir() && Path::new("config").is_file())
            {
                return Ok(u);
            }
            let path = default_repo_path();
            match check_repo(&path) {
                Ok(()) => Ok(path.to_string_lossy().into_owned()),
                Err(e) if e.not_found => {
                    eprint_text(&ctx.help());
                    Err(error("Command requires a --repo argument"))
                }
                Err(e) => Err(error(e.message)),
            }
        }
    }
}

/// Whether a `--repo` value is a URL (`scheme://…`) rather than a path, with the rule of
/// `ostree_core::registry::repo_url`.
pub fn is_url(arg: &str) -> bool {
    arg.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
    })
}

/// Why a repository does not open.
#[derive(Debug)]
pub struct RepoOpenError {
    /// ostree's message (`opening repo: opendir(objects): No such file or directory`).
    pub message: String,
    /// The cause was `ENOENT` (`G_IO_ERROR_NOT_FOUND`).
    pub not_found: bool,
}

/// The C library's message for an I/O error (`No such file or directory`).
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = std::io::Error::from_raw_os_error(n).to_string();
            match s.rfind(" (os error ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
        None => e.to_string(),
    }
}

/// The read-only part of `ostree_repo_open`, with its messages: the directory, `objects/`,
/// `tmp/` (when it cannot be created) and `config` must open.
pub fn check_repo(path: &Path) -> Result<(), RepoOpenError> {
    let fail = |what: &str, e: std::io::Error| RepoOpenError {
        message: format!("opening repo: {what}: {}", strerror(&e)),
        not_found: e.kind() == std::io::ErrorKind::NotFound,
    };
    std::fs::read_dir(path).map_err(|e| fail(&format!("opendir({})", path.display()), e))?;
    let objects = path.join("objects");
    std::fs::read_dir(&objects).map_err(|e| fail("opendir(objects)", e))?;
    let writable = rustix::fs::access(&objects, rustix::fs::Access::WRITE_OK).is_ok();
    if !writable {
        std::fs::read_dir(path.join("tmp")).map_err(|e| fail("opendir(tmp)", e))?;
    }
    std::fs::File::open(path.join("config")).map_err(|e| fail("openat(config)", e))?;
    Ok(())
}

/// `ostree_command_lookup_external`: for the first argument not starting with `-` that is
/// not a builtin, `/usr/libexec/libostree/ext/ostree-<verb>` if it exists, else
/// `ostree-<verb>` if it is an executable in `$PATH`.
pub fn lookup_external(argv: &[String]) -> Option<String> {
    let verb = argv
        .iter()
        .skip(1)
        .find(|a| !a.is_empty() && !a.starts_with('-'))?;
    if COMMANDS.iter().any(|c| c.name == verb) {
        return None;
    }
    let ext = format!("ostree-{verb}");
    let lib = format!("{EXT_DIR}/{ext}");
    if std::fs::metadata(&lib).is_ok() {
        return Some(lib);
    }
    find_program_in_path(&ext).map(|_| ext)
}

/// Where ostree looks for extension commands first.
pub const EXT_DIR: &str = "/usr/libexec/libostree/ext";

/// `g_find_program_in_path` for a name without `/`: the first executable non-directory
/// `dir/name` along `$PATH` (default `/bin:/usr/bin:.`; an empty entry is `.`).
fn find_program_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin:.".into());
    std::env::split_paths(&path).find_map(|dir| {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        let executable = rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok()
            && meta.permissions().mode() & 0o111 != 0;
        (executable && !meta.is_dir()).then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("ostree")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect()
    }

    fn run(args: &[&str]) -> Outcome {
        dispatch(&argv(args))
    }

    fn err_text(o: Outcome) -> String {
        match o {
            Outcome::Error(e) => format!("{e:#}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn every_command_has_a_handler_and_help() {
        fn walk(cmds: &[CommandSpec], prefix: &str) {
            for c in cmds {
                let path = format!("{prefix}{}", c.name);
                match &c.body {
                    Body::Leaf(_) => {
                        let _ = handler_for(&path);
                    }
                    Body::Group(g) => walk(g.subcommands, &format!("{path} ")),
                    Body::StaticDelta(s) => walk(s, &format!("{path} ")),
                }
            }
        }
        walk(COMMANDS, "");
    }

    #[test]
    fn errors() {
        assert_eq!(err_text(run(&[])), "No command specified");
        assert_eq!(err_text(run(&["nosuch"])), "Unknown command 'nosuch'");
        assert_eq!(err_text(run(&["--foo"])), "Unknown option --foo");
        assert_eq!(
            err_text(run(&["admin"])),
            "No \"admin\" subcommand specified"
        );
        assert_eq!(
            err_text(run(&["admin", "x"])),
            "Unknown \"admin\" subcommand 'x'"
        );
        assert_eq!(
            err_text(run(&["admin", "instutil"])),
            "No \"admin instutil\" subcommand specified"
        );
        assert_eq!(
            err_text(run(&["remote", "x"])),
            "Unknown \"remote\" subcommand 'x'"
        );
        assert_eq!(err_text(run(&["static-delta"])), "No command specified");
        assert_eq!(
            err_text(run(&["static-delta", "x"])),
            "Unknown \"static-delta\" subcommand 'x'"
        );
        assert_eq!(
            err_text(run(&["checksum", "--foo"])),
            "Unknown option --foo"
        );
        assert_eq!(
            err_text(run(&["commit", "--subject"])),
            "Missing argument for --subject"
        );
    }

    #[test]
    fn leaf_invocation() {
        let Outcome::Run(_, inv) = run(&["checksum", "-v", "a", "--", "b"]) else {
            panic!("expected a handler")
        };
        assert_eq!(inv.command_path(), ["checksum"]);
        assert_eq!(inv.prgname(), "ostree checksum");
        assert!(inv.verbose());
        assert_eq!(inv.positionals(), ["a", "b"]);
        assert!(inv.repo().is_none());
    }

    #[test]
    fn explicit_repo_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let r = repo.to_str().expect("utf8");
        assert_eq!(
            err_text(run(&["refs", "--repo", r])),
            format!("opening repo: opendir({r}): No such file or directory")
        );
        std::fs::create_dir_all(repo.join("objects")).expect("mkdir");
        assert_eq!(
            err_text(run(&["refs", &format!("--repo={r}")])),
            "opening repo: openat(config): No such file or directory"
        );
        std::fs::write(repo.join("config"), "[core]\nrepo_version=1\nmode=bare\n").expect("write");
        let Outcome::Run(_, inv) = run(&["refs", "--repo", r, "prefix"]) else {
            panic!("expected a handler")
        };
        assert_eq!(inv.repo(), Some(r));
        assert_eq!(inv.positionals(), ["prefix"]);
        // URLs are kept verbatim and not checked.
        let Outcome::Run(_, inv) = run(&["refs", "--repo=s3://bucket/repo"]) else {
            panic!("expected a handler")
        };
        assert_eq!(inv.repo(), Some("s3://bucket/repo"));
        // init does not open an explicit --repo.
        let Outcome::Run(_, inv) = run(&["init", "--repo", &format!("{r}/new/../new2")]) else {
            panic!("expected a handler")
        };
        assert_eq!(inv.repo_path().ok(), Some(format!("{r}/new2")));
    }

    #[test]
    fn admin_and_static_delta_paths() {
        let Outcome::Run(_, inv) = run(&["admin", "--sysroot=/sr", "deploy", "REF", "--os=x"])
        else {
            panic!("expected a handler")
        };
        assert_eq!(inv.command_path(), ["admin", "deploy"]);
        assert_eq!(inv.sysroot_arg(), Some(Path::new("/sr")));
        assert_eq!(inv.value("os"), Some("x"));
        assert_eq!(inv.positionals(), ["REF"]);
        assert_eq!(inv.admin_flags(), Some(AdminFlags::SUPERUSER));
        // Everything from `--` on is dropped by the admin group.
        let Outcome::Run(_, inv) = run(&["admin", "deploy", "--", "REF"]) else {
            panic!("expected a handler")
        };
        assert!(inv.positionals().is_empty());
        let Outcome::Run(_, inv) = run(&["admin", "instutil", "set-kargs", "a=b"]) else {
            panic!("expected a handler")
        };
        assert_eq!(inv.command_path(), ["admin", "instutil", "set-kargs"]);
        assert_eq!(inv.prgname(), "ostree admin instutil set-kargs");
    }

    #[test]
    fn remote_add_with_sysroot_skips_repo() {
        let Outcome::Run(_, inv) = run(&["remote", "add", "--sysroot=/s", "name", "url"]) else {
            panic!("expected a handler")
        };
        assert!(inv.repo().is_none());
        assert_eq!(inv.sysroot_arg(), Some(Path::new("/s")));
        assert_eq!(inv.positionals(), ["name", "url"]);
    }

    #[test]
    fn version_yaml() {
        let v = version_text();
        assert!(v.starts_with("libostree:\n Version: '2022.7'\n Features:\n  - "));
        assert!(v.ends_with('\n'));
    }

    #[test]
    fn listing_widths() {
        let s = main_context("ostree").help();
        assert!(s.contains("\n  admin             Commands for managing"));
        assert!(!s.contains("trivial-httpd"));
        assert!(
            static_delta_usage(STATIC_DELTA_COMMANDS)
                .contains("  list             List static delta files\n")
        );
    }

    #[test]
    fn external_lookup_ignores_builtins_and_options() {
        assert_eq!(lookup_external(&argv(&["--verbose", "commit"])), None);
        assert_eq!(lookup_external(&argv(&["--verbose"])), None);
        assert_eq!(
            lookup_external(&argv(&["surely-no-such-extension-here"])),
            None
        );
    }
}
