//! Small filesystem helpers for building test trees.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags};

/// Create (or truncate) a file with `data`, then set its permission bits to `mode` exactly.
pub fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dirs");
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

/// Create a directory (and its parents), then set its permission bits to `mode` exactly.
pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    set_mode(path, mode);
}

/// `chmod` (follows symlinks; never call it on one).
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// `lchown`.
pub fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {}: {e}", path.display()));
}

/// Create a symlink `path` -> `target`.
pub fn symlink(target: impl AsRef<std::ffi::OsStr>, path: &Path) {
    std::os::unix::fs::symlink(target.as_ref(), path)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// Set an extended attribute (does not follow symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// Whether the filesystem holding `dir` accepts `user.*` xattrs.
pub fn supports_user_xattrs(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    write_file(&p, b"", 0o644);
    let ok = rustix::fs::lsetxattr(&p, "user.probe", b"1", XattrFlags::empty()).is_ok();
    let _ = fs::remove_file(&p);
    ok
}

/// All extended attributes of `path` (not following symlinks), sorted by name.
pub fn list_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Vec::new(),
            Err(e) => panic!("listxattr {}: {e}", path.display()),
        }
    };
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or_default());
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut val[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => val.resize(val.len() * 16, 0),
                Err(e) => panic!("getxattr {} on {}: {e}", cname.display(), path.display()),
            }
        };
        val.truncate(len);
        out.push((name.to_vec(), val));
    }
    out.sort();
    out
}

/// Create a FIFO.
pub fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Create a character device node (needs root).
pub fn mkchardev(path: &Path, major: u32, minor: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o644),
        rustix::fs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
}

/// Create a UNIX socket file (bound, then the listener is dropped; the inode stays).
pub fn mksocket(path: &Path) {
    let l = std::os::unix::net::UnixListener::bind(path)
        .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
    drop(l);
}

/// A small deterministic PRNG (xorshift64*), so generated trees are identical across runs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Fill a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` deterministic bytes: alternating blocks of random (incompressible) and text-like
/// (compressible) data, so archive-mode compression has something to do.
pub fn det_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len];
    let words: [&[u8]; 8] = [
        b"ostree ",
        b"commit ",
        b"object ",
        b"dirtree ",
        b"content ",
        b"checksum\n",
        b"a ",
        b"zz ",
    ];
    let mut pos = 0;
    while pos < len {
        let block = (4096 + rng.below(60_000) as usize).min(len - pos);
        if rng.below(2) == 0 {
            rng.fill(&mut out[pos..pos + block]);
        } else {
            let mut i = pos;
            while i < pos + block {
                let w = words[rng.below(words.len() as u64) as usize];
                let n = w.len().min(pos + block - i);
                out[i..i + n].copy_from_slice(&w[..n]);
                i += n;
            }
        }
        pos += block;
    }
    out
}

/// A sparse-ish file of `len` bytes: mostly holes, with deterministic data blocks every 64 MiB
/// and at the end, written without materialising the whole file in memory.
pub fn write_sparse(path: &Path, len: u64, seed: u64, mode: u32) {
    let mut f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(len).expect("set_len");
    let block = det_bytes(seed, 256 * 1024);
    let mut off = 0u64;
    while off < len {
        let n = (block.len() as u64).min(len - off) as usize;
        f.seek(SeekFrom::Start(off)).expect("seek");
        f.write_all(&block[..n]).expect("write");
        off += 64 << 20;
    }
    if len > block.len() as u64 {
        f.seek(SeekFrom::Start(len - block.len() as u64))
            .expect("seek");
        f.write_all(&block).expect("write");
    }
    drop(f);
    set_mode(path, mode);
}

/// Recursively list every path under `root` (relative, sorted), not following symlinks.
pub fn list_paths(root: &Path) -> Vec<std::path::PathBuf> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = fs::read_dir(root.join(rel)) else {
            return;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            out.push(r.clone());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &r, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out.sort();
    out
}
