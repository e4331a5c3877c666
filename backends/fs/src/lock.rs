//! Lock files for the repository: the OFD lock itself is [`ostree_core::fslock`] (shared with
//! the sysroot); this module adds libglnx's unlink-on-release lock-file protocol.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags};

pub(crate) use ostree_core::fslock::{LockKind, ofd_lock};

/// A lock file that is unlinked by its exclusive owner on release (libglnx's
/// `glnx_make_lock_file` protocol, used by ostree for `tmp/staging-*-lock`): after locking, the
/// file must still have a link, otherwise the previous owner removed it and we retry.
#[derive(Debug)]
pub(crate) struct LockFile {
    fd: OwnedFd,
    name: String,
}

impl LockFile {
    /// Create (if needed) and lock `name` under `dirfd`. Non-blocking: `Ok(None)` when held
    /// elsewhere.
    pub(crate) fn try_lock(
        dirfd: BorrowedFd<'_>,
        name: &str,
        kind: LockKind,
    ) -> io::Result<Option<LockFile>> {
        loop {
            let fd = rustix::fs::openat(
                dirfd,
                name,
                OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::from_raw_mode(0o600),
            )?;
            if !ofd_lock(fd.as_fd(), kind, false)? {
                return Ok(None);
            }
            if rustix::fs::fstat(&fd)?.st_nlink > 0 {
                return Ok(Some(LockFile {
                    fd,
                    name: name.to_string(),
                }));
            }
        }
    }

    /// Lock a file we just created exclusively (`O_EXCL`): no window in which another process
    /// could take it. `Ok(None)` if someone did anyway.
    pub(crate) fn lock_new(fd: OwnedFd, name: &str) -> io::Result<Option<LockFile>> {
        if !ofd_lock(fd.as_fd(), LockKind::Exclusive, false)? {
            return Ok(None);
        }
        // A cleaner may have taken it for an orphan and unlinked it before we locked.
        if rustix::fs::fstat(&fd)?.st_nlink == 0 {
            return Ok(None);
        }
        Ok(Some(LockFile {
            fd,
            name: name.to_string(),
        }))
    }

    /// The locked descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Release: unlink the file (we hold it exclusively), then close.
    pub(crate) fn release(self, dirfd: BorrowedFd<'_>) {
        let _ = rustix::fs::unlinkat(dirfd, self.name.as_str(), AtFlags::empty());
        drop(self.fd);
    }
}
