//! Open-file-description locks, the kind real ostree takes (`fcntl(F_OFD_SETLK[W])`, falling
//! back to `flock` on kernels without them). Shared by the repository backend and the sysroot.
//!
//! OFD locks belong to an open file description, not to a process: two handles in one process
//! exclude each other, closing an unrelated descriptor of the same file releases nothing, and
//! they conflict with the OFD locks a concurrently running ostree takes. (rustix's
//! `fcntl_lock` takes classic process-associated POSIX locks, which have none of these
//! properties within one process, hence `nix` here.)

use std::io;
use std::os::fd::BorrowedFd;

use nix::errno::Errno as NixErrno;
use nix::fcntl::{FcntlArg, fcntl};
use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Shared (read) or exclusive (write) lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// A read lock: any number of holders.
    Shared,
    /// A write lock: one holder, no shared holders.
    Exclusive,
}

/// Take a whole-file OFD lock on `fd`. With `blocking` false, returns `Ok(false)` when another
/// holder conflicts.
pub fn ofd_lock(fd: BorrowedFd<'_>, kind: LockKind, blocking: bool) -> io::Result<bool> {
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
