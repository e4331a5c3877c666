//! # ostree-backend-fs
//!
//! [`FsStore`]: an OSTree repository in a local directory, in every mode ostree 2022.7 knows
//! (`bare`, `bare-user`, `bare-user-only`, `archive`; `bare-split-xattrs` can be created only),
//! compatible with what real ostree writes and reads: the same files, modes, owners, xattrs and
//! bytes, except that archive content is compressed by zlib-rs (a valid raw deflate stream at
//! the same level, not byte-identical to libz's). Registered as the `file` storage scheme.
//!
//! ## Layout and representation
//!
//! Objects live at `objects/XX/<62 hex>.<ext>`. Metadata objects are plain 0644 files holding
//! their exact bytes. Content objects:
//!
//! | mode | regular file | symlink |
//! |---|---|---|
//! | `archive` | `.filez` (header + raw deflate), 0644 | `.filez` header only |
//! | `bare` | real file, real uid/gid/mode/xattrs, mtime 0 | real symlink, `lchown`, `lsetxattr` |
//! | `bare-user` | writer-owned, mode `(mode & 0775) \| 0400`, mtime 0, real metadata in `user.ostreemeta` | regular 0644 file holding target + NUL, mtime 0, `user.ostreemeta` |
//! | `bare-user-only` | writer-owned, mode `mode & 0775` (other bits refused, as ostree), mtime 0 | real symlink |
//!
//! ## Durability: hold, then publish
//!
//! A crash at any instant never leaves a partial or non-durable object under `objects/`:
//!
//! * [`put`](ostree_core::store::ObjectStore::put) writes content objects, dirmeta and dirtree
//!   objects as *unnamed* files (`O_TMPFILE`) created directly in their fan-out directory
//!   `objects/XX/`, and holds their descriptors: the object is visible at once to this handle
//!   and to nobody else, and a crash or a dropped handle makes the kernel free the file;
//! * [`sync`](ostree_core::store::ObjectStore::sync) takes the pending set, `syncfs`, gives each
//!   file its name with `linkat` (never replacing; via `AT_EMPTY_PATH` where allowed, else
//!   `/proc/self/fd/N`), then `syncfs` again so the names are durable before any ref moves;
//! * objects are published in dependency order: content, dirmeta, dirtree (each type in put
//!   order, so trees written bottom-up appear bottom-up), then commits and detached metadata.
//!   A kill between two links never leaves a visible commit whose tree is not visible; when a
//!   sync publishes both, a `syncfs` between the two groups makes the names of content and
//!   trees durable before any commit's name is made, so a crash does not either (even on a
//!   filesystem without a journal, whose metadata writes are not ordered);
//! * a handle holds at most [`FsStore::set_held_file_limit`] unnamed files (default: a quarter
//!   of the soft `RLIMIT_NOFILE`, at most 4096). Past half of that, pending content and trees
//!   are made durable and published early, in the same order, on a thread of their own while
//!   puts go on (past the limit they wait; a failure there is reported by the next sync);
//!   commits never are.
//!
//! Symlinks of `bare`/`bare-user-only`, commits, tombstones and detached metadata (and every
//! object when the filesystem has no `O_TMPFILE`, or unnamed files cannot be linked) are
//! written under a name in the handle's staging directory and renamed into place by sync, in
//! the same order. Asking for the [`local_path`] of a held object names it there.
//!
//! Staging directories follow ostree's lifecycle, so both implementations can share a `tmp/`:
//! a handle's first put opens a transaction and takes one, `tmp/staging-<boot id>-XXXXXX`,
//! locked with an OFD lock on `tmp/staging-<boot id>-XXXXXX-lock` (libglnx's lock-file
//! protocol; a live directory is never touched by another process, ours or ostree's). An
//! unlocked directory of this boot is reused (emptied) before a new one is made. A handle
//! dropped after its last transaction completed (`sync`) removes its directory; one dropped
//! with a transaction open (aborted, or stopped by `OSTREE_REPO_TEST_ERROR=pre-commit`) leaves
//! it, emptied, for the next transaction of this boot, as ostree does. The end of every
//! transaction (completed or aborted) cleans `tmp/` as ostree's does: unlocked staging
//! directories of other boots (their processes are gone), and other entries older than
//! `core.tmp-expiry-secs` (a day by default: spool files and checkout-cache staging left by
//! killed processes).
//!
//! With `core.fsync=false` objects are linked into place as soon as written; with
//! `core.per-object-fsync=true` each object is fsynced and linked at once (ostree's option).
//! The staging lock file is dated in 2100: ostree's `tmp/` cleanup deletes unknown files older
//! than a day but skips files "from the future", so a long-lived handle keeps its lock.
//!
//! Two deliberate differences from plain idempotent puts: detached metadata (`.commitmeta`) is
//! *replaced* by a put, as ostree's `write_commit_detached_metadata` replaces it; and
//! `[archive] zlib-level` (1–9, default 6) is honoured like ostree.
//!
//! Capabilities: `local_root` and `local_objects` (answers [`local_path`]) in every mode,
//! `hardlink_checkout` in the bare modes.
//!
//! [`local_path`]: ostree_core::store::ObjectStore::local_path
//!
//! ## Refs and locks
//!
//! Refs are `refs/<name>` files holding 64 hex + newline; alias symlinks resolve. Updates are
//! compare-and-swap under an OFD write lock on [`REFS_LOCK`] (`refs/.lock`, which real ostree
//! never lists), written by temporary file + rename. The repository lock is an OFD lock on
//! `.lock`, the lock real ostree takes, so the two exclude each other.

mod deflate;
mod lock;
mod objects;
mod pending;
mod refs;
mod store;
mod util;
mod xattr;

use std::sync::Arc;

use ostree_core::Error;
use ostree_core::registry::{OpenFuture, Registry, StorePlugin};
use ostree_core::store::{ObjectStore, OpenOptions};
use url::Url;

pub use refs::REFS_LOCK;
pub use store::FsStore;

/// The URL scheme this backend serves.
pub const SCHEME: &str = "file";

fn open_url(url: Url, opts: OpenOptions) -> OpenFuture {
    Box::pin(async move {
        let path = url
            .to_file_path()
            .map_err(|_| Error::invalid(format!("Invalid local repository URL '{url}'")))?;
        let store = FsStore::open(path, opts).await?;
        Ok(Arc::new(store) as Arc<dyn ObjectStore>)
    })
}

static PLUGIN: StorePlugin = StorePlugin {
    scheme: SCHEME,
    description: "local directory repository (bare, bare-user, bare-user-only, archive)",
    open: open_url,
};

ostree_core::inventory::submit! {
    StorePlugin {
        scheme: SCHEME,
        description: "local directory repository (bare, bare-user, bare-user-only, archive)",
        open: open_url,
    }
}

/// Register the `file` scheme in a registry built by hand (the inventory record already puts it
/// in [`Registry::global`] and [`Registry::from_inventory`]; registering it there again is
/// reported as a duplicate).
pub fn register(registry: &mut Registry) {
    registry.register_store(&PLUGIN);
}
