//! Finding the kernel, initramfs and devicetree of a deployment tree, and the boot checksum
//! over them (`get_kernel_from_tree`).
//!
//! Two layouts exist. The current one puts `vmlinuz` (and optionally `initramfs.img`,
//! `devicetree` or a `dtb/` directory, `.vmlinuz.hmac`) in `usr/lib/modules/$kver/`, and the
//! boot checksum is the SHA-256 of their concatenated bytes. The legacy one has
//! `vmlinuz-$kver-$bootcsum` (and `initramfs-$kver.img-$bootcsum`, `devicetree-…-$bootcsum`)
//! in `usr/lib/ostree-boot/` or `boot/`, the checksum in the names. A legacy layout with an
//! initramfs wins over a module layout without one (rpm-ostree's Fedora layout); otherwise the
//! module layout wins.
//!
//! Deliberate difference: where ostree takes whichever kernel `readdir` happens to return
//! first, two kernels in one layout are an error here, so a deployment never depends on
//! directory order.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::{Error, Result};

/// Where the boot files of a tree are and what they are called in `/boot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// The directory holding the files (absolute).
    pub dir: PathBuf,
    /// The kernel's name in `dir`.
    pub kernel_src: String,
    /// Its name in `/boot/ostree/$os-$bootcsum/` (`vmlinuz-$kver`).
    pub kernel_namever: String,
    /// Initramfs: name in `dir`, name in `/boot` (`initramfs-$kver.img`).
    pub initramfs: Option<(String, String)>,
    /// Devicetree: name in `dir`, and the name in `/boot`, or `None` for a `dtb/` directory
    /// copied whole.
    pub devicetree: Option<(String, Option<String>)>,
    /// FIPS HMAC of the kernel: name in `dir`, name in `/boot` (`.vmlinuz-$kver.hmac`).
    pub hmac: Option<(String, String)>,
    /// The boot checksum.
    pub bootcsum: String,
}

impl KernelLayout {
    /// Every (source, destination) regular file to install into the bootcsum directory, and
    /// the devicetree directory if any.
    pub fn files(&self) -> Vec<(String, String)> {
        let mut v = vec![(self.kernel_src.clone(), self.kernel_namever.clone())];
        if let Some(i) = &self.initramfs {
            v.push(i.clone());
        }
        if let Some((s, Some(d))) = &self.devicetree {
            v.push((s.clone(), d.clone()));
        }
        if let Some(h) = &self.hmac {
            v.push(h.clone());
        }
        v
    }

    /// Bytes the boot files take (a dtb directory counted recursively).
    pub fn total_size(&self) -> u64 {
        let mut n = 0;
        for (src, _) in self.files() {
            n += std::fs::metadata(self.dir.join(src))
                .map(|m| m.len())
                .unwrap_or(0);
        }
        if let Some((s, None)) = &self.devicetree {
            n += dir_size(&self.dir.join(s));
        }
        n
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn hash_file(h: &mut sha2::Sha256, path: &Path) -> Result<bool> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io_path("open", path, e)),
    };
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io_path("read", path, e))?;
        if n == 0 {
            return Ok(true);
        }
        h.update(&buf[..n]);
    }
}

/// `checksum_dir_recurse`: entries sorted by name, directories recursed, other entries'
/// contents hashed (dangling symlinks skipped).
fn hash_dir(h: &mut sha2::Sha256, path: &Path) -> Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(path)
        .map_err(|e| Error::io_path("opendir", path, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io_path("readdir", path, e))?;
    names.sort();
    for n in names {
        let p = path.join(&n);
        let md = std::fs::symlink_metadata(&p).map_err(|e| Error::io_path("stat", &p, e))?;
        if md.is_dir() {
            hash_dir(h, &p)?;
        } else {
            hash_file(h, &p)?;
        }
    }
    Ok(())
}

fn is_regular_following(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
}

/// `/usr/lib/modules/$kver/vmlinuz` layout.
fn from_usrlib_modules(root: &Path, no_dtb: bool) -> Result<Option<KernelLayout>> {
    let modules = root.join("usr/lib/modules");
    let rd = match std::fs::read_dir(&modules) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io_path("opendir", &modules, e)),
    };
    let mut found: Vec<String> = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io_path("readdir", &modules, e))?;
        if !ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = ent.file_name().to_string_lossy().into_owned();
        if is_regular_following(&modules.join(&name).join("vmlinuz")) {
            found.push(name);
        }
    }
    found.sort();
    let kver = match found.as_slice() {
        [] => return Ok(None),
        [one] => one.clone(),
        many => {
            return Err(Error::invalid(format!(
                "Multiple kernels found in /usr/lib/modules ({}); a deployment needs exactly one",
                many.join(", ")
            )));
        }
    };
    let dir = modules.join(&kver);
    let mut h = sha2::Sha256::new();
    hash_file(&mut h, &dir.join("vmlinuz"))?;
    let mut initramfs = None;
    for cand in ["initramfs.img", "initramfs"] {
        if hash_file(&mut h, &dir.join(cand))? {
            initramfs = Some((cand.to_string(), format!("initramfs-{kver}.img")));
            break;
        }
    }
    let mut devicetree = None;
    if !no_dtb {
        if hash_file(&mut h, &dir.join("devicetree"))? {
            devicetree = Some(("devicetree".to_string(), Some(format!("devicetree-{kver}"))));
        } else if std::fs::metadata(dir.join("dtb"))
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            hash_dir(&mut h, &dir.join("dtb"))?;
            devicetree = Some(("dtb".to_string(), None));
        }
    }
    let hmac = std::fs::metadata(dir.join(".vmlinuz.hmac"))
        .is_ok()
        .then(|| (".vmlinuz.hmac".to_string(), format!(".vmlinuz-{kver}.hmac")));
    Ok(Some(KernelLayout {
        dir,
        kernel_src: "vmlinuz".into(),
        kernel_namever: format!("vmlinuz-{kver}"),
        initramfs,
        devicetree,
        hmac,
        bootcsum: hex::encode(h.finalize()),
    }))
}

fn checksum_suffix(name: &str) -> Option<(&str, &str)> {
    let dash = name.rfind('-')?;
    let csum = &name[dash + 1..];
    (csum.len() == 64
        && csum
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then(|| (&name[..dash], csum))
}

/// `usr/lib/ostree-boot/` or `boot/` with checksummed names.
fn from_legacy(root: &Path) -> Result<Option<KernelLayout>> {
    let mut dir = None;
    for p in ["usr/lib/ostree-boot", "boot"] {
        let d = root.join(p);
        match std::fs::metadata(&d) {
            Ok(m) if m.is_dir() => {
                dir = Some(d);
                break;
            }
            Ok(_) => return Err(Error::invalid(format!("openat({p}): Not a directory"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("openat({p})"), e)),
        }
    }
    let Some(dir) = dir else { return Ok(None) };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io_path("opendir", &dir, e))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io_path("readdir", &dir, e))?;
    names.sort();
    let mut kernels = Vec::new();
    let mut initramfs = None;
    let mut devicetree = None;
    for name in &names {
        let Some((namever, csum)) = checksum_suffix(name) else {
            continue;
        };
        if name.starts_with("vmlinuz-") {
            kernels.push((name.clone(), namever.to_string(), csum.to_string()));
        } else if name.starts_with("initramfs-") && initramfs.is_none() {
            initramfs = Some((name.clone(), namever.to_string(), csum.to_string()));
        } else if name.starts_with("devicetree-") && devicetree.is_none() {
            devicetree = Some((name.clone(), namever.to_string(), csum.to_string()));
        }
    }
    let (ksrc, knamever, kcsum) = match kernels.len() {
        0 => return Ok(None),
        1 => kernels.remove(0),
        _ => {
            return Err(Error::invalid(format!(
                "Multiple kernels found in {} ({}); a deployment needs exactly one",
                dir.strip_prefix(root).unwrap_or(&dir).display(),
                kernels
                    .iter()
                    .map(|k| k.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    if let Some((_, _, c)) = &initramfs
        && *c != kcsum
    {
        return Err(Error::invalid("Mismatched kernel checksum vs initrd"));
    }
    if let Some((_, _, c)) = &devicetree
        && *c != kcsum
    {
        return Err(Error::invalid(
            "Mismatched kernel checksum vs device tree in tree",
        ));
    }
    Ok(Some(KernelLayout {
        dir,
        kernel_src: ksrc,
        kernel_namever: knamever,
        initramfs: initramfs.map(|(s, n, _)| (s, n)),
        devicetree: devicetree.map(|(s, n, _)| (s, Some(n))),
        hmac: None,
        bootcsum: kcsum,
    }))
}

/// Find the boot files of the tree checked out at `root`.
pub fn find_kernel(root: &Path, no_dtb: bool) -> Result<KernelLayout> {
    let modules = from_usrlib_modules(root, no_dtb)?;
    let legacy = from_legacy(root)?;
    match (modules, legacy) {
        (None, None) => Err(Error::not_found(
            "Failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot",
        )),
        (Some(m), None) => Ok(m),
        (Some(m), Some(l)) => {
            if m.initramfs.is_none() && l.initramfs.is_some() {
                Ok(l)
            } else {
                Ok(m)
            }
        }
        (None, Some(l)) => Ok(l),
    }
}

/// Whether two paths are on the same filesystem.
pub fn same_device(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}
