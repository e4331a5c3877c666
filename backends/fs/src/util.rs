//! Small helpers: stack-built object paths, unique names, recursive removal, errno handling.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use ostree_core::store::RepoMode;
use ostree_core::{Error, ObjectKey};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `XX/<62 hex>.<ext>`, built on the stack (the longest extension is `tombstone-commit`).
pub(crate) struct ObjName {
    buf: [u8; 88],
    len: usize,
}

impl ObjName {
    /// The loose path of `key` relative to `objects/` in a repository of `mode`.
    pub(crate) fn new(key: &ObjectKey, mode: RepoMode) -> Self {
        let mut buf = [0u8; 88];
        let mut i = 0;
        for (n, b) in key.checksum.0.iter().enumerate() {
            buf[i] = HEX[(b >> 4) as usize];
            buf[i + 1] = HEX[(b & 15) as usize];
            i += 2;
            if n == 0 {
                buf[i] = b'/';
                i += 1;
            }
        }
        buf[i] = b'.';
        i += 1;
        let ext = key.ty.extension(mode.is_archive()).as_bytes();
        buf[i..i + ext.len()].copy_from_slice(ext);
        ObjName {
            buf,
            len: i + ext.len(),
        }
    }

    /// The whole relative path.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("built from ASCII")
    }

    /// The fan-out directory (`XX`).
    pub(crate) fn dir(&self) -> &str {
        std::str::from_utf8(&self.buf[..2]).expect("built from ASCII")
    }
}

/// A short lowercase-hex name for a number, on the stack.
pub(crate) struct HexName {
    buf: [u8; 17],
    len: usize,
}

impl HexName {
    /// `prefix` (one ASCII byte or none) followed by `n` in hex.
    pub(crate) fn new(prefix: Option<u8>, n: u64) -> Self {
        let mut buf = [0u8; 17];
        let mut len = 0;
        if let Some(p) = prefix {
            buf[0] = p;
            len = 1;
        }
        let digits = if n == 0 {
            1
        } else {
            (64 - n.leading_zeros()).div_ceil(4) as usize
        };
        for d in 0..digits {
            buf[len + digits - 1 - d] = HEX[((n >> (4 * d)) & 15) as usize];
        }
        HexName {
            buf,
            len: len + digits,
        }
    }

    /// The name.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("built from ASCII")
    }
}

/// A 64-bit random value (std's per-process random hash keys, mixed with time and a counter).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A 256-entry set of "this fan-out directory exists", shared by concurrent writers.
#[derive(Debug, Default)]
pub(crate) struct FanoutSet([AtomicU64; 4]);

impl FanoutSet {
    pub(crate) fn contains(&self, i: u8) -> bool {
        self.0[(i >> 6) as usize].load(Ordering::Relaxed) & (1u64 << (i & 63)) != 0
    }
    pub(crate) fn insert(&self, i: u8) {
        self.0[(i >> 6) as usize].fetch_or(1u64 << (i & 63), Ordering::Relaxed);
    }
    pub(crate) fn remove(&self, i: u8) {
        self.0[(i >> 6) as usize].fetch_and(!(1u64 << (i & 63)), Ordering::Relaxed);
    }
}

/// Make sure the fan-out directory `name` (index `i`) exists under `dirfd`.
pub(crate) fn ensure_fanout(
    dirfd: BorrowedFd<'_>,
    set: &FanoutSet,
    i: u8,
    name: &str,
) -> io::Result<()> {
    if set.contains(i) {
        return Ok(());
    }
    match rustix::fs::mkdirat(dirfd, name, Mode::from_raw_mode(0o777)) {
        Ok(()) | Err(Errno::EXIST) => {
            set.insert(i);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Retry a syscall on `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Open a directory relative to `dirfd`.
pub(crate) fn open_dir<P: rustix::path::Arg>(
    dirfd: impl AsFd,
    path: P,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dirfd,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Create `path` and its missing parents under `dirfd` (like `mkdir -p`).
pub(crate) fn mkdir_p(dirfd: BorrowedFd<'_>, path: &str, mode: u32) -> rustix::io::Result<()> {
    match rustix::fs::mkdirat(dirfd, path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(Errno::NOENT) => {
            if let Some((parent, _)) = path.rsplit_once('/') {
                mkdir_p(dirfd, parent, mode)?;
                match rustix::fs::mkdirat(dirfd, path, Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(Errno::EXIST) => Ok(()),
                    Err(e) => Err(e),
                }
            } else {
                Err(Errno::NOENT)
            }
        }
        Err(e) => Err(e),
    }
}

/// The entries of a directory (without `.`/`..`), with their types (`Unknown` resolved by
/// `lstat`).
pub(crate) fn read_dir_at(
    dirfd: BorrowedFd<'_>,
    path: &str,
) -> rustix::io::Result<Vec<(String, FileType)>> {
    let fd = open_dir(dirfd, path)?;
    let mut dir = Dir::new(fd)?;
    let mut out = Vec::new();
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let mut ft = ent.file_type();
        if ft == FileType::Unknown {
            let rel = format!("{path}/{name}");
            ft = match rustix::fs::statat(dirfd, rel.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            };
        }
        out.push((name.to_string(), ft));
    }
    Ok(out)
}

/// Remove `name` under `dirfd` recursively (`rm -rf`); a missing path is not an error.
pub(crate) fn remove_all_at(dirfd: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dirfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = match rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_contents(sub.as_fd())?;
    match rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove everything inside the directory `sub` (not the directory itself).
pub(crate) fn remove_contents(sub: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    {
        let mut dir = Dir::read_from(sub)?;
        while let Some(ent) = dir.read() {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push((n.to_vec(), ent.file_type()));
            }
        }
    }
    for (n, ft) in names {
        let Ok(n) = String::from_utf8(n.clone()) else {
            // Non-UTF-8 names: unlink by raw bytes.
            let c = std::ffi::CString::new(n).map_err(|_| Errno::INVAL)?;
            match rustix::fs::unlinkat(sub, c.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => {
                    return Err(Errno::NOTEMPTY);
                }
                Err(e) => return Err(e),
            }
            continue;
        };
        if ft == FileType::Directory {
            remove_all_at(sub, &n)?;
        } else {
            match rustix::fs::unlinkat(sub, n.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => remove_all_at(sub, &n)?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// An `Io` error whose context names a path.
pub(crate) fn io_err(context: impl Into<String>, e: impl Into<io::Error>) -> Error {
    Error::io(context, e.into())
}

/// True for errors meaning "this filesystem or kernel cannot do that".
pub(crate) fn is_unsupported(e: Errno) -> bool {
    matches!(
        e,
        Errno::OPNOTSUPP
            | Errno::NOSYS
            | Errno::INVAL
            | Errno::XDEV
            | Errno::NOTTY
            | Errno::PERM
            | Errno::BADF
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ostree_core::{Checksum, ObjectType};

    #[test]
    fn object_names() {
        let c =
            Checksum::from_hex("81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6")
                .unwrap();
        let k = ObjectKey::new(c, ObjectType::File);
        assert_eq!(
            ObjName::new(&k, RepoMode::Archive).as_str(),
            "81/381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6.filez"
        );
        assert_eq!(
            &k.loose_path(false)["objects/".len()..],
            ObjName::new(&k, RepoMode::Bare).as_str()
        );
        let t = ObjectKey::new(c, ObjectType::TombstoneCommit);
        assert_eq!(
            &t.loose_path(false)["objects/".len()..],
            ObjName::new(&t, RepoMode::Bare).as_str()
        );
        assert_eq!(ObjName::new(&t, RepoMode::Bare).dir(), "81");
    }

    #[test]
    fn hex_names() {
        assert_eq!(HexName::new(None, 0).as_str(), "0");
        assert_eq!(HexName::new(Some(b't'), 0xabc).as_str(), "tabc");
        assert_eq!(HexName::new(None, u64::MAX).as_str(), "ffffffffffffffff");
    }

    #[test]
    fn fanout_set() {
        let s = FanoutSet::default();
        assert!(!s.contains(200));
        s.insert(200);
        s.insert(3);
        assert!(s.contains(200) && s.contains(3) && !s.contains(4));
        s.remove(200);
        assert!(!s.contains(200));
    }
}
