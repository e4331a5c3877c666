//! Open-file-description locks, the kind real ostree takes (`fcntl(F_OFD_SETLK[W])`, falling
//! back to `flock` on kernels without them).
//!
//! OFD locks belong to an open file description, not to a process: two handles in one process
//! exclude each other, closing an unrelated descriptor of the same file releases nothing, and
//! they conflict with the OFD locks a concurrently running ostree takes. (rustix's
//! `fcntl_lock` takes classic process-associated POSIX locks, which have none of these
//! properties within one process, hence `nix` here.)

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno as NixErrno;
use nix::fcntl::{FcntlArg, fcntl};
use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

/// Shared (read) or exclusive (write) lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockKind {
    Shared,
    Exclusive,
}

/// Take a whole-file OFD lock on `fd`. With `blocking` false, returns `Ok(false)` when another
/// holder conflicts.
pub(crate) fn ofd_lock(fd: BorrowedFd<'_>, kind: LockKind, blocking: bool) -> io::Result<bool> {
    let fl = libc::flock {
        l_type: match kind {
            LockKind::Shared => libc::F_RDLCK as libc::c_short,
            LockKind::Exclusive => libc::F_WRLCK as libc::c_short,
        },
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        let arg = if blocking {
            FcntlArg::F_OFD_SETLKW(&fl)
        } else {
            FcntlArg::F_OFD_SETLK(&fl)
        };
        match fcntl(fd, arg) {
            Ok(_) => return Ok(true),
            Err(NixErrno::EINTR) => continue,
            Err(NixErrno::EAGAIN) | Err(NixErrno::EACCES) if !blocking => return Ok(false),
            Err(NixErrno::EINVAL) => return flock_fallback(fd, kind, blocking),
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

fn flock_fallback(fd: BorrowedFd<'_>, kind: LockKind, blocking: bool) -> io::Result<bool> {
    let op = match (kind, blocking) {
        (LockKind::Shared, true) => FlockOperation::LockShared,
        (LockKind::Exclusive, true) => FlockOperation::LockExclusive,
        (LockKind::Shared, false) => FlockOperation::NonBlockingLockShared,
        (LockKind::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    };
    loop {
        match rustix::fs::flock(fd, op) {
            Ok(()) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::WOULDBLOCK) if !blocking => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

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
