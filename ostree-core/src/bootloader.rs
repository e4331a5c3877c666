//! Bootloader writers: the [`BootloaderWriter`] plugin trait, the [`BlsEntry`] model of a
//! `loader/entries/*.conf` file, and the small shared helpers every writer uses.
//!
//! # Shape
//!
//! Deployment logic (which entries exist, their order, their kernel arguments, the `/boot`
//! swap) lives once, in core's sysroot code. A writer only *renders*: given the sysroot, the
//! not-yet-active boot version `N` and the ordered entries (newest first, as ostree sorts
//! them), it writes its own configuration file (`grub.cfg`, `syslinux.cfg`, `uEnv.txt`) into
//! `boot/loader.N/`. Core then syncs and renames the `boot/loader` symlink — the one atomic
//! instant the machine switches — and finally calls [`BootloaderWriter::post_bls_sync`].
//!
//! The call sequence core follows for every change of the boot configuration (ostree's
//! `write_deployments_bootswap`):
//!
//! 1. empty `boot/loader.N/entries` and write one BLS entry per deployment
//!    ([`BlsEntry::render`], file name `ostree-$version-$stateroot.conf`), and the
//!    `ostree/boot.N.S` links;
//! 2. [`BootloaderWriter::write`]`(sysroot, N, &entries)` — only into `boot/loader.N/`;
//! 3. sync, then rename `boot/loader.tmp` (→ `loader.N`) over `boot/loader`;
//! 4. [`BootloaderWriter::post_bls_sync`]`(sysroot, N)`.
//!
//! Writers are synchronous (a config file of a few kilobytes), object-safe and stateless:
//! every call is given the sysroot path, so one writer value serves any sysroot.
//!
//! # Choosing a writer
//!
//! Writers are plugins ([`crate::registry::BootloaderPlugin`]), chosen by the repo config key
//! `sysroot.bootloader` through [`Registry::bootloader_for`]: `auto` (the default) probes the
//! writers that take part in autodetection in ostree's order (syslinux → grub2 → uboot) and
//! falls back to [`NoneWriter`]; `none` writes BLS entries only; any other value names a
//! plugin. `zipl` (s390x) is a valid ostree value that this implementation does not support:
//! it is a clear error rather than a silent `none`.

#[cfg(feature = "conformance")]
pub mod conformance;

use std::cmp::Ordering;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::registry::{BootloaderPlugin, Registry};
use crate::{Error, Result};

// ------------------------------------------------------------------------------------ BlsEntry

/// The keys ostree writes first, in this order (the BootLoaderSpec example order); every
/// other key follows in insertion order.
pub const BLS_KEY_ORDER: [&str; 6] = [
    "title",
    "version",
    "options",
    "devicetree",
    "linux",
    "initrd",
];

/// One Boot Loader Specification entry as ostree reads and writes it
/// (`boot/loader.N/entries/ostree-$version-$stateroot.conf`).
///
/// An entry is a list of `key value` lines. Reading follows ostree's
/// `ostree_bootconfig_parser_parse`: a line counts when it starts with an ASCII letter and
/// holds a separator (space or tab); the key ends at the first separator and the value is
/// the rest of the line, verbatim. A repeated `initrd` adds an overlay initrd; any other
/// repeated key replaces the earlier value. Writing ([`BlsEntry::render`]) puts `title`,
/// `version`, `options`, `devicetree`, `linux`, `initrd` (then overlay initrds) first and
/// every other key (`fdtdir`, `bls-append` keys…) after them in insertion order, each as
/// `key value\n` separated by one space.
///
/// ```
/// use ostree_core::bootloader::BlsEntry;
/// let mut e = BlsEntry::new();
/// e.set("linux", "/ostree/os-abc/vmlinuz-5.10");
/// e.set("title", "TestOS 42 (ostree:0)");
/// e.set("options", "root=LABEL=root ostree=/ostree/boot.1/os/abc/0");
/// assert_eq!(e.render(), "title TestOS 42 (ostree:0)\n\
///                         options root=LABEL=root ostree=/ostree/boot.1/os/abc/0\n\
///                         linux /ostree/os-abc/vmlinuz-5.10\n");
/// assert_eq!(BlsEntry::parse(&e.render()), e);
/// assert_eq!(e.ostree_karg(), Some("/ostree/boot.1/os/abc/0"));
/// ```
///
/// Two entries are equal when they render to the same text (the order in which the standard
/// keys were set does not matter).
#[derive(Clone, Debug, Default)]
pub struct BlsEntry {
    /// Lines in insertion order; at most one per key except `initrd` (primary, then overlays).
    lines: Vec<(String, String)>,
}

impl BlsEntry {
    /// An empty entry.
    pub fn new() -> Self {
        BlsEntry::default()
    }

    /// Build an entry from `(key, value)` pairs, applying [`BlsEntry::set`] to each (an
    /// `initrd` given twice sets the primary initrd twice; use
    /// [`BlsEntry::set_overlay_initrds`] for more).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut e = BlsEntry::new();
        for (k, v) in pairs {
            e.set(k.as_ref(), v.as_ref());
        }
        e
    }

    /// Parse the text of an entry file, leniently, exactly as ostree does (never fails:
    /// lines that are not `key value` are ignored).
    pub fn parse(text: &str) -> Self {
        let mut e = BlsEntry::new();
        for line in text.split('\n') {
            if !line.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
                continue;
            }
            let Some(pos) = line.find([' ', '\t']) else {
                continue;
            };
            let (key, value) = (&line[..pos], &line[pos + 1..]);
            if key == "initrd" && e.get("initrd").is_some() {
                e.lines.push((key.to_string(), value.to_string()));
            } else {
                e.set(key, value);
            }
        }
        e
    }

    /// Read and parse an entry file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io_path("Reading", path, e))?;
        let text = String::from_utf8(text)
            .map_err(|_| Error::corrupted(format!("{}: invalid UTF-8", path.display())))?;
        Ok(BlsEntry::parse(&text))
    }

    /// The value of `key` (for `initrd`, the primary initrd).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set `key` to `value`, replacing its value in place (for `initrd`, the primary one), or
    /// appending the key when new.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.lines.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.lines.push((key.to_string(), value.to_string())),
        }
    }

    /// Remove `key` (for `initrd`, the primary initrd and every overlay).
    pub fn remove(&mut self, key: &str) {
        self.lines.retain(|(k, _)| k != key);
    }

    /// The additional initrds after the primary one (ostree's "overlay initrds").
    pub fn overlay_initrds(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == "initrd")
            .skip(1)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Replace the overlay initrds. Like ostree, this needs a primary `initrd`.
    pub fn set_overlay_initrds<S: AsRef<str>>(&mut self, initrds: &[S]) -> Result<()> {
        if self.get("initrd").is_none() {
            return Err(Error::invalid(
                "overlay initrds need a primary \"initrd\" key in the boot entry",
            ));
        }
        let mut seen = false;
        self.lines.retain(|(k, _)| {
            if k != "initrd" {
                return true;
            }
            let keep = !seen;
            seen = true;
            keep
        });
        for i in initrds {
            self.lines.push(("initrd".into(), i.as_ref().to_string()));
        }
        Ok(())
    }

    /// Every line, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when the entry holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The `title` line.
    pub fn title(&self) -> Option<&str> {
        self.get("title")
    }
    /// The `version` line (ostree: `n_deployments - index`).
    pub fn version(&self) -> Option<&str> {
        self.get("version")
    }
    /// The `options` line (kernel arguments).
    pub fn options(&self) -> Option<&str> {
        self.get("options")
    }
    /// The `linux` line (kernel path relative to the /boot filesystem).
    pub fn linux(&self) -> Option<&str> {
        self.get("linux")
    }
    /// The primary `initrd` line.
    pub fn initrd(&self) -> Option<&str> {
        self.get("initrd")
    }
    /// The `devicetree` line (one device tree file).
    pub fn devicetree(&self) -> Option<&str> {
        self.get("devicetree")
    }
    /// The `fdtdir` line (a directory of device trees).
    pub fn fdtdir(&self) -> Option<&str> {
        self.get("fdtdir")
    }

    /// The last `ostree=` kernel argument of `options` (where the deployment is:
    /// `/ostree/boot.N/$stateroot/$bootcsum/$bootserial`).
    pub fn ostree_karg(&self) -> Option<&str> {
        kernel_arg_last(self.options()?, "ostree")
    }

    /// The `linux` line, or ostree's error when it is missing.
    pub fn require_linux(&self) -> Result<&str> {
        self.linux()
            .ok_or_else(|| Error::invalid("No \"linux\" key in bootloader config"))
    }

    /// The text ostree writes for this entry (see the type's docs for the order).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| {
            out.push_str(k);
            out.push(' ');
            out.push_str(v);
            out.push('\n');
        };
        for key in BLS_KEY_ORDER {
            if let Some(v) = self.get(key) {
                line(key, v);
            }
        }
        if self.get("initrd").is_some() {
            for v in self.overlay_initrds() {
                line("initrd", v);
            }
        }
        for (k, v) in &self.lines {
            if !BLS_KEY_ORDER.contains(&k.as_str()) {
                line(k, v);
            }
        }
        out
    }
}

impl PartialEq for BlsEntry {
    fn eq(&self, other: &Self) -> bool {
        self.render() == other.render()
    }
}

impl Eq for BlsEntry {}

impl fmt::Display for BlsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::str::FromStr for BlsEntry {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(BlsEntry::parse(s))
    }
}

/// Split a kernel command line into arguments: whitespace separates, double quotes group
/// (and are kept, as ostree keeps them).
pub fn split_kernel_args(cmdline: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in cmdline.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_ascii_whitespace() && !quoted {
            if let Some(s) = start.take() {
                out.push(&cmdline[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&cmdline[s..]);
    }
    out
}

/// The value of the last `key=value` argument of a kernel command line.
pub fn kernel_arg_last<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    split_kernel_args(cmdline)
        .into_iter()
        .rev()
        .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
}

/// Compare two strings as glibc's `strverscmp` does (digit runs compare as numbers, runs with
/// leading zeros as fractions): the order ostree sorts entry `version`s by.
pub fn strverscmp(a: &str, b: &str) -> Ordering {
    // glibc's state machine. Character classes: 0 other, 1 digit 1-9, 2 the digit 0.
    // States (multiples of 3): normal, integral part, fractional part, leading zeros.
    const S_N: usize = 0;
    const S_I: usize = 3;
    const S_F: usize = 6;
    const S_Z: usize = 9;
    const NEXT: [usize; 12] = [S_N, S_I, S_Z, S_N, S_I, S_I, S_N, S_F, S_F, S_N, S_F, S_Z];
    // Result types: CMP compare the differing bytes, LEN the longer digit run wins.
    const CMP: i8 = 2;
    const LEN: i8 = 3;
    #[rustfmt::skip]
    const RESULT: [i8; 36] = [
        CMP, CMP, CMP, CMP, LEN, CMP, CMP, CMP, CMP,
        CMP, -1,  -1,  1,   LEN, LEN, 1,   LEN, LEN,
        CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP, CMP,
        CMP, 1,   1,   -1,  CMP, CMP, -1,  CMP, CMP,
    ];
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let class = |c: u8| usize::from(c == b'0') + usize::from(c.is_ascii_digit());
    let mut i = 0;
    let (mut c1, mut c2) = (at(a, 0), at(b, 0));
    let mut state = S_N + class(c1);
    while c1 == c2 {
        if c1 == 0 {
            return Ordering::Equal;
        }
        state = NEXT[state];
        i += 1;
        c1 = at(a, i);
        c2 = at(b, i);
        state += class(c1);
    }
    let diff = c1.cmp(&c2);
    match RESULT[state * 3 + class(c2)] {
        CMP => diff,
        LEN => {
            let mut j = i + 1;
            loop {
                let d1 = at(a, j).is_ascii_digit();
                let d2 = at(b, j).is_ascii_digit();
                match (d1, d2) {
                    (true, true) => j += 1,
                    (true, false) => return Ordering::Greater,
                    (false, true) => return Ordering::Less,
                    (false, false) => return diff,
                }
            }
        }
        r => r.cmp(&0),
    }
}

/// ostree's order of entries: `version` descending by [`strverscmp`]; entries without a
/// version last.
pub fn compare_entries(a: &BlsEntry, b: &BlsEntry) -> Ordering {
    match (a.version(), b.version()) {
        (Some(x), Some(y)) => strverscmp(y, x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

// ------------------------------------------------------------------------------------ helpers

/// `boot/loader.N` under a sysroot.
pub fn loader_dir(sysroot: &Path, bootversion: u32) -> PathBuf {
    sysroot.join(format!("boot/loader.{bootversion}"))
}

/// `boot/loader.N/entries` under a sysroot.
pub fn entries_dir(sysroot: &Path, bootversion: u32) -> PathBuf {
    loader_dir(sysroot, bootversion).join("entries")
}

/// Read the BLS entries of `boot/loader.N/entries` as ostree does: regular files (following
/// symlinks) named `ostree-*.conf`, sorted by [`compare_entries`] (newest first). A missing
/// directory holds no entries.
pub fn read_entries(sysroot: &Path, bootversion: u32) -> Result<Vec<BlsEntry>> {
    let dir = entries_dir(sysroot, bootversion);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io_path("Reading", &dir, e)),
    };
    let mut named = Vec::new();
    for d in rd {
        let d = d.map_err(|e| Error::io_path("Reading", &dir, e))?;
        let name = d.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("ostree-") && name.ends_with(".conf")) {
            continue;
        }
        let path = d.path();
        let md = std::fs::metadata(&path).map_err(|e| Error::io_path("stat", &path, e))?;
        if md.is_file() {
            let e =
                BlsEntry::read(&path).map_err(|e| Error::Other(format!("Parsing {name}: {e}")))?;
            named.push((name.to_string(), e));
        }
    }
    // Directory order is arbitrary; make ties deterministic by file name.
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entries: Vec<BlsEntry> = named.into_iter().map(|(_, e)| e).collect();
    entries.sort_by(compare_entries);
    Ok(entries)
}

/// Join lines as ostree's `_ostree_sysroot_join_lines` does: each line followed by `\n`,
/// dropping an empty first line and every empty line after the first kept one (ostree's
/// "previous line was empty" flag is never reset, so only one empty line survives).
pub fn join_lines<S: AsRef<str>>(lines: &[S]) -> String {
    let mut out = String::new();
    let mut prev_empty = false;
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        if line.is_empty() {
            if prev_empty || i == 0 {
                continue;
            }
            prev_empty = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Replace `path` atomically: write a temporary file beside it (mode 0644), `fdatasync` it,
/// then rename it over `path`. A reader sees the old file or the new one, never a mix, and
/// the old inode (and any hard link to it) is left untouched.
pub fn replace_file_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid(format!("Invalid file name: {}", path.display())))?;
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{}-{attempt}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io_path("Creating", &tmp, e)),
        }
    };
    let res = f
        .write_all(contents)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io_path("Writing", &tmp, e))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| Error::io_path("Renaming to", path, e))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

// ------------------------------------------------------------------------------------ the trait

/// A bootloader's configuration writer (a plugin: see the module docs).
///
/// Guarantees every implementation keeps (checked by the conformance suite, feature
/// `conformance`):
///
/// * [`write`](Self::write) creates or replaces files only inside `boot/loader.N/`, never on
///   the active side (`boot/loader.(1-N)`, which `boot/loader` points to) nor elsewhere;
/// * each file is replaced atomically (see [`replace_file_atomic`]);
/// * the same sysroot and entries give the same bytes (idempotent);
/// * a failure (for instance an entry without `linux`) is an error, and the active side is
///   left as it was.
pub trait BootloaderWriter: Send + Sync + fmt::Debug {
    /// The registry key and `sysroot.bootloader` value: `grub2`, `syslinux`, `uboot`,
    /// `none`.
    fn name(&self) -> &'static str;

    /// The name ostree prints for it (`OSTREE_BOOTLOADER=` in its journal message): the key,
    /// except `U-Boot`.
    fn display_name(&self) -> &'static str {
        self.name()
    }

    /// Whether this bootloader is installed on the sysroot (ostree's `query`), by looking at
    /// its files only (e.g. `boot/syslinux/syslinux.cfg`). `Ok(false)` for writers that are
    /// never autodetected.
    fn detect(&self, sysroot: &Path) -> Result<bool>;

    /// Write the configuration for `entries` (in boot menu order, the default first; they
    /// are also on disk already in `boot/loader.N/entries`) into `boot/loader.N/`, where `N`
    /// is `bootversion`, the side that is not active yet.
    fn write(&self, sysroot: &Path, bootversion: u32, entries: &[BlsEntry]) -> Result<()>;

    /// Whether the `boot/loader` swap alone switches this bootloader (ostree then prints
    /// `Transaction complete`, otherwise `Bootloader updated`). A writer that must also
    /// update a file outside `boot/loader.N` (GRUB on EFI) is not atomic.
    fn is_atomic(&self, _sysroot: &Path) -> bool {
        true
    }

    /// Called after the swap, with the now-active boot version (ostree's `post_bls_sync`).
    fn post_bls_sync(&self, _sysroot: &Path, _bootversion: u32) -> Result<()> {
        Ok(())
    }

    /// Whether core should write BLS entries in `boot/loader.N/entries` for this bootloader
    /// (every bootloader of ostree 2022.7 does: they are how ostree lists deployments).
    fn wants_bls_entries(&self) -> bool {
        true
    }
}

/// The `none` writer: BLS entries only (bootloaders that read `loader/entries` themselves,
/// like GRUB's `blscfg` or systemd-boot). Never autodetected; the `auto` fallback.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoneWriter;

/// Registry key of [`NoneWriter`].
pub const NONE: &str = "none";
/// The `sysroot.bootloader` value that autodetects.
pub const AUTO: &str = "auto";
/// The `sysroot.bootloader` value ostree accepts for s390x, which this build does not support.
pub const ZIPL: &str = "zipl";

impl BootloaderWriter for NoneWriter {
    fn name(&self) -> &'static str {
        NONE
    }
    fn detect(&self, _sysroot: &Path) -> Result<bool> {
        Ok(false)
    }
    fn write(&self, _sysroot: &Path, _bootversion: u32, _entries: &[BlsEntry]) -> Result<()> {
        Ok(())
    }
    /// ostree has no bootloader object here, and reports the change as not atomic.
    fn is_atomic(&self, _sysroot: &Path) -> bool {
        false
    }
}

fn build_none() -> Box<dyn BootloaderWriter> {
    Box::new(NoneWriter)
}

inventory::submit! {
    BootloaderPlugin {
        name: NONE,
        description: "BLS entries only (for bootloaders that read loader/entries)",
        autodetect: None,
        build: build_none,
    }
}

impl Registry {
    /// Registered bootloader writer names, sorted (`none` included).
    pub fn bootloader_names(&self) -> Vec<&str> {
        self.bootloader_plugins().map(|p| p.name).collect()
    }

    /// Build the writer named by a `sysroot.bootloader` value: `auto` probes
    /// ([`Registry::detect_bootloader`]); `none` and plugin names build that writer; `zipl`
    /// is not supported; anything else is ostree's `Invalid bootloader configuration` error
    /// listing the accepted values.
    pub fn bootloader_for(
        &self,
        setting: &str,
        sysroot: &Path,
    ) -> Result<Box<dyn BootloaderWriter>> {
        if setting == AUTO {
            return self.detect_bootloader(sysroot);
        }
        Ok((self.bootloader_plugin(setting)?.build)())
    }

    /// Check a `sysroot.bootloader` value without building anything (what ostree does when
    /// it opens the sysroot's repository).
    pub fn check_bootloader_setting(&self, setting: &str) -> Result<()> {
        if setting == AUTO {
            return Ok(());
        }
        self.bootloader_plugin(setting).map(|_| ())
    }

    /// ostree's `auto`: ask every writer that takes part in autodetection, in order
    /// (syslinux → grub2 → uboot), and take the first that finds itself; [`NoneWriter`]
    /// when none does.
    pub fn detect_bootloader(&self, sysroot: &Path) -> Result<Box<dyn BootloaderWriter>> {
        let mut probes: Vec<&BootloaderPlugin> = self
            .bootloader_plugins()
            .filter(|p| p.autodetect.is_some())
            .collect();
        probes.sort_by_key(|p| (p.autodetect, p.name));
        for p in probes {
            let w = (p.build)();
            if w.detect(sysroot)? {
                return Ok(w);
            }
        }
        Ok(Box::new(NoneWriter))
    }

    /// The plugin for a bootloader name. `zipl` without a plugin is `NotImplemented`; an
    /// unknown name is `Invalid bootloader configuration: 'NAME'` (ostree's words) with the
    /// accepted values.
    pub fn bootloader_plugin(&self, name: &str) -> Result<&'static BootloaderPlugin> {
        // Values are case-sensitive in ostree ("GRUB2" is invalid there too).
        if name == name.to_ascii_lowercase()
            && let Some(p) = self.bootloader_plugin_lookup(name)?
        {
            return Ok(p);
        }
        if name == ZIPL {
            return Err(Error::NotImplemented {
                operation: "sysroot.bootloader=zipl (s390x)".into(),
                implementer: format!(
                    "this ostree (supported: {})",
                    self.bootloader_setting_values().join(", ")
                ),
            });
        }
        Err(Error::InvalidInput(format!(
            "Invalid bootloader configuration: '{name}' (available: {})",
            self.bootloader_setting_values().join(", ")
        )))
    }

    /// Every value `sysroot.bootloader` accepts here: `auto` and the registered names.
    pub fn bootloader_setting_values(&self) -> Vec<&str> {
        let mut v = vec![AUTO];
        v.extend(self.bootloader_names());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_ostree() {
        let e = BlsEntry::parse(
            "title  Two  spaces\n# comment\n version 3\nversion\t2\noptions a=b  c\n\
             linux /k\ninitrd /i1\ninitrd /i2\ninitrd /i3\nnovalue\n9x y\nlinux /k2\r\n",
        );
        assert_eq!(e.title(), Some(" Two  spaces"));
        assert_eq!(e.version(), Some("2"));
        assert_eq!(e.options(), Some("a=b  c"));
        assert_eq!(e.linux(), Some("/k2\r"));
        assert_eq!(e.initrd(), Some("/i1"));
        assert_eq!(e.overlay_initrds(), vec!["/i2", "/i3"]);
        assert_eq!(e.get("novalue"), None);
        assert_eq!(e.get("9x"), None);
    }

    #[test]
    fn render_order_and_round_trip() {
        let mut e = BlsEntry::new();
        e.set("fdtdir", "/ostree/os-c/dtb");
        e.set("initrd", "/ostree/os-c/initramfs-1.img");
        e.set("linux", "/ostree/os-c/vmlinuz-1");
        e.set("custom", "x y");
        e.set("devicetree", "/ostree/os-c/devicetree-1");
        e.set("options", "quiet ostree=/ostree/boot.0/os/c/0");
        e.set("version", "1");
        e.set("title", "OS (ostree:0)");
        e.set_overlay_initrds(&["/o1", "/o2"]).unwrap();
        let text = e.render();
        assert_eq!(
            text,
            "title OS (ostree:0)\nversion 1\noptions quiet ostree=/ostree/boot.0/os/c/0\n\
             devicetree /ostree/os-c/devicetree-1\nlinux /ostree/os-c/vmlinuz-1\n\
             initrd /ostree/os-c/initramfs-1.img\ninitrd /o1\ninitrd /o2\n\
             fdtdir /ostree/os-c/dtb\ncustom x y\n"
        );
        let back = BlsEntry::parse(&text);
        assert_eq!(back.render(), text);
        assert_eq!(back.ostree_karg(), Some("/ostree/boot.0/os/c/0"));
        let mut no_initrd = BlsEntry::from_pairs([("linux", "/k")]);
        assert!(no_initrd.set_overlay_initrds(&["/x"]).is_err());
    }

    #[test]
    fn kernel_args() {
        assert_eq!(
            split_kernel_args(" a  b=\"c d\" e"),
            vec!["a", "b=\"c d\"", "e"]
        );
        assert_eq!(
            kernel_arg_last("ostree=/a x ostree=/b", "ostree"),
            Some("/b")
        );
        assert_eq!(kernel_arg_last("ostreex=/a", "ostree"), None);
    }

    #[test]
    fn strverscmp_like_glibc() {
        use Ordering::*;
        let cases = [
            ("", "", Equal),
            ("1", "2", Less),
            ("10", "9", Greater),
            ("2", "10", Less),
            ("a2", "a10", Less),
            ("000", "00", Less),
            ("00", "01", Less),
            ("01", "010", Less),
            ("010", "09", Less),
            ("09", "0", Less),
            ("0", "1", Less),
            ("1.0.10", "1.0.9", Greater),
            ("abc", "abd", Less),
            ("item#99", "item#100", Less),
            ("alpha1", "alpha001", Greater),
            ("part1_f012", "part1_f01", Greater),
            ("3", "3a", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(strverscmp(a, b), want, "{a} vs {b}");
            assert_eq!(strverscmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn join_lines_drops_extra_empties() {
        // ostree never resets its "previous line was empty" flag: only the first empty line
        // (not at the start) survives.
        assert_eq!(join_lines(&["", "a", "", "", "b", ""]), "a\n\nb\n");
        assert_eq!(join_lines::<&str>(&[]), "");
    }

    #[test]
    fn read_entries_sorted_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let dir = entries_dir(d.path(), 1);
        std::fs::create_dir_all(&dir).unwrap();
        for v in ["1", "10", "2"] {
            std::fs::write(
                dir.join(format!("ostree-{v}-os.conf")),
                format!("version {v}\nlinux /k{v}\n"),
            )
            .unwrap();
        }
        std::fs::write(dir.join("other.conf"), "version 99\n").unwrap();
        std::fs::create_dir(dir.join("ostree-dir.conf")).unwrap();
        let got: Vec<_> = read_entries(d.path(), 1)
            .unwrap()
            .iter()
            .map(|e| e.version().unwrap().to_string())
            .collect();
        assert_eq!(got, ["10", "2", "1"]);
        assert!(read_entries(d.path(), 0).unwrap().is_empty());
    }

    #[test]
    fn atomic_replace_keeps_old_inode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.cfg");
        std::fs::write(&p, "old").unwrap();
        std::fs::hard_link(&p, d.path().join("witness")).unwrap();
        replace_file_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read(d.path().join("witness")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    static FAKE: BootloaderPlugin = BootloaderPlugin {
        name: "fake",
        description: "F",
        autodetect: Some(5),
        build: build_none,
    };
    static FAKE2: BootloaderPlugin = BootloaderPlugin {
        name: "FAKE",
        description: "F again",
        autodetect: None,
        build: build_none,
    };

    #[test]
    fn registry_rules() {
        let mut r = Registry::new();
        r.register_bootloader(&FAKE);
        r.register_bootloader(
            inventory::iter::<BootloaderPlugin>
                .into_iter()
                .find(|p| p.name == NONE)
                .unwrap(),
        );
        assert_eq!(r.bootloader_names(), vec!["fake", "none"]);
        assert_eq!(r.bootloader_setting_values(), vec!["auto", "fake", "none"]);
        let e = r.bootloader_plugin("lilo").unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid bootloader configuration: 'lilo' (available: auto, fake, none)"
        );
        let e = r.bootloader_plugin(ZIPL).unwrap_err();
        assert!(matches!(e, Error::NotImplemented { .. }), "{e}");
        assert!(e.to_string().contains("zipl"), "{e}");
        assert!(r.check_bootloader_setting("auto").is_ok());
        assert!(r.check_bootloader_setting("none").is_ok());
        assert!(r.check_bootloader_setting("").is_err());
        let d = tempfile::tempdir().unwrap();
        // The fake detects nothing (it builds a NoneWriter): auto falls back to none.
        let w = r.bootloader_for("auto", d.path()).unwrap();
        assert_eq!(w.name(), NONE);
        assert!(!w.is_atomic(d.path()));
        assert_eq!(r.bootloader_for("none", d.path()).unwrap().name(), NONE);
        r.register_bootloader(&FAKE2);
        assert!(matches!(
            r.bootloader_plugin("fake"),
            Err(Error::DuplicatePlugin { .. })
        ));
        assert!(r.check().is_err());
        fn _object_safe(_: &dyn BootloaderWriter) {}
    }

    #[test]
    fn none_is_registered_in_core() {
        assert!(Registry::global().bootloader_plugin(NONE).is_ok());
    }
}
