#![doc = include_str!("../README.md")]

pub mod cfg;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ostree_core::bootloader::{BlsEntry, BootloaderWriter, loader_dir, replace_file_atomic};
use ostree_core::registry::{BootloaderPlugin, Registry};
use ostree_core::{Error, Result};

/// The registry key.
pub const NAME: &str = "grub2";
/// The file written into `boot/loader.N/`.
pub const OUTPUT: &str = "grub.cfg";
/// BIOS configuration paths (Debian, Fedora), relative to the sysroot; either marks GRUB as
/// installed.
pub const BIOS_CONFIG_PATHS: [&str; 2] = ["boot/grub/grub.cfg", "boot/grub2/grub.cfg"];
/// Where EFI vendor directories live, relative to the sysroot.
pub const EFI_DIR: &str = "boot/efi/EFI";

/// The `linux`/`initrd` command suffix. ostree picks it at build time: `16` on x86 BIOS and
/// `efi` on x86 EFI for legacy GRUB builds, none for "modern GRUB" builds and aarch64. The
/// reference (Debian's ostree 2022.7) is a modern-GRUB build, and so are we: GRUB 2.04+
/// accepts plain `linux`/`initrd` on both firmwares.
const SUFFIX: &str = "";

/// GLib's `g_shell_quote`: the string in single quotes, each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// What the menu entries need besides the BLS entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MenuOptions {
    /// The boot device id (`GRUB2_BOOT_DEVICE_ID`): entry ids are `ostree-<i>-<id>`. `None`
    /// gives `ostree-<i>`.
    pub boot_device_id: Option<String>,
    /// Commands that make the boot filesystem GRUB's root (`GRUB2_PREPARE_ROOT_CACHE`,
    /// the output of grub's `prepare_grub_to_access_device`). `None`: each entry searches
    /// for its own kernel file (`search --no-floppy --set=root --file …`).
    pub prepare_root: Option<String>,
    /// Prepended to every `linux`/`initrd`/`devicetree` path: `""` when GRUB's root is the
    /// /boot filesystem, `/boot` when /boot is a directory of the root filesystem.
    pub boot_prefix: String,
    /// Booting through EFI (ostree's `_OSTREE_GRUB2_IS_EFI`; selects the command suffix on
    /// legacy builds only).
    pub is_efi: bool,
}

impl MenuOptions {
    /// What `ostree admin instutil grub2-generate` uses: `GRUB2_BOOT_DEVICE_ID` and
    /// `GRUB2_PREPARE_ROOT_CACHE` (exported by GRUB's `15_ostree` script, which must be its
    /// caller) and `_OSTREE_GRUB2_IS_EFI`; no path prefix. Missing variables are an error
    /// (ostree aborts on an assertion).
    pub fn from_grub_mkconfig_env() -> Result<Self> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| {
                Error::invalid(format!(
                    "{k} is not set: grub2-generate must be run by grub2-mkconfig (its 15_ostree script)"
                ))
            })
        };
        Ok(MenuOptions {
            boot_device_id: Some(var("GRUB2_BOOT_DEVICE_ID")?),
            prepare_root: Some(var("GRUB2_PREPARE_ROOT_CACHE")?),
            boot_prefix: String::new(),
            is_efi: std::env::var_os("_OSTREE_GRUB2_IS_EFI").is_some(),
        })
    }

    /// For a sysroot, as our generator writes `grub.cfg`: `GRUB2_BOOT_DEVICE_ID` /
    /// `GRUB2_PREPARE_ROOT_CACHE` when set, else the UUID of the filesystem holding
    /// `boot/ostree` (from `/dev/disk/by-uuid`, when it is listed there) for both; the prefix
    /// from whether `boot` is its own filesystem.
    pub fn for_sysroot(sysroot: &Path, is_efi: bool) -> Self {
        let boot = sysroot.join("boot");
        let uuid = fs_uuid(&boot);
        let boot_device_id = std::env::var("GRUB2_BOOT_DEVICE_ID")
            .ok()
            .or_else(|| uuid.clone());
        let prepare_root = std::env::var("GRUB2_PREPARE_ROOT_CACHE")
            .ok()
            .or_else(|| uuid.map(|u| format!("search --no-floppy --fs-uuid --set=root {u}")));
        MenuOptions {
            boot_device_id,
            prepare_root,
            boot_prefix: boot_prefix(sysroot).to_string(),
            is_efi,
        }
    }
}

/// `""` when `sysroot/boot` is a separate filesystem (GRUB's root is then /boot), `/boot`
/// otherwise (the kernels are in /boot of the root filesystem).
pub fn boot_prefix(sysroot: &Path) -> &'static str {
    match (
        std::fs::metadata(sysroot.join("boot")),
        std::fs::metadata(sysroot),
    ) {
        (Ok(b), Ok(r)) if b.dev() != r.dev() => "",
        _ => "/boot",
    }
}

/// The UUID of the filesystem holding `path`, when `/dev/disk/by-uuid` names its device.
fn fs_uuid(path: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    for d in std::fs::read_dir("/dev/disk/by-uuid").ok()? {
        let d = d.ok()?;
        if std::fs::metadata(d.path()).is_ok_and(|m| m.rdev() == dev) {
            return d.file_name().into_string().ok();
        }
    }
    None
}

/// The menu entries for the BLS entries (boot menu order), in exactly the shape of
/// ostree's `ostree admin instutil grub2-generate`:
///
/// ```text
/// menuentry '<title>' --class gnu-linux --class gnu --class os --unrestricted 'ostree-<i>-<id>' {
/// load_video
/// set gfxpayload=keep
/// insmod gzio
/// <prepare_root>
/// linux <linux> <options>
/// initrd <initrd>
/// devicetree <devicetree>
/// }
/// ```
pub fn menuentries(entries: &[BlsEntry], opts: &MenuOptions) -> Result<String> {
    let mut out = String::new();
    let p = &opts.boot_prefix;
    for (i, e) in entries.iter().enumerate() {
        let title = e.title().unwrap_or("(Untitled)");
        let id = match &opts.boot_device_id {
            Some(d) => format!("ostree-{i}-{d}"),
            None => format!("ostree-{i}"),
        };
        out.push_str(&format!(
            "menuentry {} --class gnu-linux --class gnu --class os --unrestricted {} {{\n",
            shell_quote(title),
            shell_quote(&id)
        ));
        out.push_str("load_video\nset gfxpayload=keep\ninsmod gzio\n");
        let linux = e.require_linux()?;
        match &opts.prepare_root {
            Some(s) => out.push_str(s),
            None => out.push_str(&format!(
                "search --no-floppy --set=root --file {}",
                shell_quote(&format!("{p}{linux}"))
            )),
        }
        out.push('\n');
        out.push_str(&format!("linux{SUFFIX} {p}{linux}"));
        if let Some(o) = e.options() {
            out.push(' ');
            out.push_str(o);
        }
        out.push('\n');
        if let Some(v) = e.initrd() {
            out.push_str(&format!("initrd{SUFFIX} {p}{v}\n"));
        }
        if let Some(v) = e.devicetree() {
            out.push_str(&format!("devicetree {p}{v}\n"));
        }
        out.push_str("}\n");
    }
    Ok(out)
}

/// The header of the `grub.cfg` our generator writes: what GRUB needs before the entries
/// (grub-mkconfig's `00_header` minimum: the default entry, a timeout, `load_video`).
pub const HEADER: &str = "\
# Generated by ostree from the boot loader entries of this boot version.
# Do not edit: every change of deployments rewrites it.
set default=0
set timeout=5
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

";

/// A complete `grub.cfg`: [`HEADER`] then [`menuentries`].
pub fn generate(entries: &[BlsEntry], opts: &MenuOptions) -> Result<String> {
    Ok(format!("{HEADER}{}", menuentries(entries, opts)?))
}

/// Where GRUB reads its configuration on a sysroot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// BIOS (`boot/grub/grub.cfg` or `boot/grub2/grub.cfg`; expected to be a link into
    /// `boot/loader/`), or GRUB chosen by configuration without any of its files.
    Bios,
    /// EFI: the first vendor directory (by name, `BOOT` excluded) of `boot/efi/EFI` holding a
    /// `grub.cfg`, which is that file.
    Efi(PathBuf),
}

fn lexists(p: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(p) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io_path("stat", p, e)),
    }
}

fn bios_found(sysroot: &Path) -> Result<bool> {
    for p in BIOS_CONFIG_PATHS {
        if lexists(&sysroot.join(p))? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn efi_config(sysroot: &Path) -> Result<Option<PathBuf>> {
    let base = sysroot.join(EFI_DIR);
    let rd = match std::fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(Error::io_path("Reading", &base, e)),
    };
    let mut dirs = Vec::new();
    for d in rd {
        let d = d.map_err(|e| Error::io_path("Reading", &base, e))?;
        if d.file_name() == "BOOT" {
            continue;
        }
        let ft = d
            .file_type()
            .map_err(|e| Error::io_path("stat", d.path(), e))?;
        if ft.is_dir() {
            dirs.push(d.path());
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|d| d.join("grub.cfg"))
        .find(|p| p.exists()))
}

/// How GRUB is installed on a sysroot (BIOS paths win over EFI, as in ostree).
pub fn layout(sysroot: &Path) -> Result<Layout> {
    if bios_found(sysroot)? {
        return Ok(Layout::Bios);
    }
    Ok(efi_config(sysroot)?.map_or(Layout::Bios, Layout::Efi))
}

/// Settings of the writer; [`Grub2Options::from_env`] reads ostree's environment hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grub2Options {
    /// `OSTREE_GRUB2_EXEC`: run this program as `PROG -o OUTPUT` instead of our generator
    /// (upstream's tests point it at their `ostree-grub-generator` script). A program named
    /// `grub2-mkconfig`/`grub-mkconfig` is the system generator: run inside the first
    /// deployment (`chroot`) unless the sysroot is `/`.
    pub exec: Option<PathBuf>,
    /// `OSTREE_DEBUG_GRUB2`: let the program's output through (it goes to /dev/null
    /// otherwise).
    pub debug: bool,
    /// Extra environment for the program.
    pub env: Vec<(OsString, OsString)>,
    /// Menu options for our generator; `None` derives them from the sysroot
    /// ([`MenuOptions::for_sysroot`]).
    pub menu: Option<MenuOptions>,
}

impl Grub2Options {
    /// `OSTREE_GRUB2_EXEC` and `OSTREE_DEBUG_GRUB2` from the environment.
    pub fn from_env() -> Self {
        Grub2Options {
            exec: std::env::var_os("OSTREE_GRUB2_EXEC")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            debug: std::env::var_os("OSTREE_DEBUG_GRUB2").is_some(),
            env: Vec::new(),
            menu: None,
        }
    }
}

/// The GRUB 2 writer.
#[derive(Clone, Debug, Default)]
pub struct Grub2Writer {
    opts: Grub2Options,
}

impl Grub2Writer {
    /// A writer with explicit settings (tests; the plugin uses [`Grub2Options::from_env`]).
    pub fn new(opts: Grub2Options) -> Self {
        Grub2Writer { opts }
    }

    fn is_system_mkconfig(exec: &Path) -> bool {
        exec.file_name()
            .is_some_and(|n| n == "grub2-mkconfig" || n == "grub-mkconfig")
    }

    /// Run the external generator into `tmp` (which it creates).
    fn run_exec(
        &self,
        exec: &Path,
        sysroot: &Path,
        bootversion: u32,
        is_efi: bool,
        entries: &[BlsEntry],
        tmp: &Path,
    ) -> Result<()> {
        let abs_sysroot =
            std::path::absolute(sysroot).map_err(|e| Error::io_path("Resolving", sysroot, e))?;
        let chroot = if Self::is_system_mkconfig(exec) && abs_sysroot != Path::new("/") {
            // ostree runs the system generator inside the first deployment when installing
            // into a sysroot that is not the running system.
            let first = entries
                .first()
                .and_then(|e| e.ostree_karg())
                .ok_or_else(|| Error::invalid("No deployment to run grub2-mkconfig in"))?;
            let root = abs_sysroot.join(first.trim_start_matches('/'));
            Some(std::fs::canonicalize(&root).map_err(|e| Error::io_path("Resolving", &root, e))?)
        } else {
            None
        };
        let mut cmd = match &chroot {
            Some(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).arg(exec);
                c
            }
            None => Command::new(exec),
        };
        cmd.arg("-o")
            .arg(tmp)
            .env("_OSTREE_GRUB2_BOOTVERSION", bootversion.to_string())
            .stdin(Stdio::null());
        if is_efi {
            cmd.env("_OSTREE_GRUB2_IS_EFI", "1");
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        if !self.opts.debug {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let status = cmd.status().map_err(|e| {
            Error::io(
                format!("Failed to execute child process “{}”", exec.display()),
                e,
            )
        })?;
        if !status.success() {
            let how = match status.code() {
                Some(c) => format!("Child process exited with code {c}"),
                None => "Child process killed by a signal".to_string(),
            };
            return Err(Error::Other(format!("{}: {how}", exec.display())));
        }
        let f = std::fs::File::open(tmp).map_err(|e| Error::io_path("Opening", tmp, e))?;
        f.sync_data()
            .map_err(|e| Error::io_path("fdatasync", tmp, e))
    }
}

impl BootloaderWriter for Grub2Writer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, sysroot: &Path) -> Result<bool> {
        Ok(bios_found(sysroot)? || efi_config(sysroot)?.is_some())
    }

    fn write(&self, sysroot: &Path, bootversion: u32, entries: &[BlsEntry]) -> Result<()> {
        // A kernel-less entry cannot boot: refuse it whichever program renders the file.
        for e in entries {
            e.require_linux()?;
        }
        let is_efi = matches!(layout(sysroot)?, Layout::Efi(_));
        let out = loader_dir(sysroot, bootversion).join(OUTPUT);
        match &self.opts.exec {
            Some(exec) => {
                let tmp = loader_dir(sysroot, bootversion).join("grub.cfg.new");
                match std::fs::remove_file(&tmp) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io_path("Removing", &tmp, e)),
                }
                let res = self
                    .run_exec(exec, sysroot, bootversion, is_efi, entries, &tmp)
                    .and_then(|()| {
                        std::fs::rename(&tmp, &out)
                            .map_err(|e| Error::io_path("Renaming to", &out, e))
                    });
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                res
            }
            None => {
                let opts = match &self.opts.menu {
                    Some(m) => m.clone(),
                    None => MenuOptions::for_sysroot(sysroot, is_efi),
                };
                replace_file_atomic(&out, generate(entries, &opts)?.as_bytes())
            }
        }
    }

    /// Not atomic on EFI: the firmware's `grub.cfg` lives on the EFI system partition and is
    /// replaced after the swap.
    fn is_atomic(&self, sysroot: &Path) -> bool {
        !matches!(layout(sysroot), Ok(Layout::Efi(_)))
    }

    /// On EFI, copy the new `boot/loader.N/grub.cfg` over the vendor directory's `grub.cfg`
    /// as ostree does (previous one kept as `grub.cfg.old`; FAT has no atomic replace).
    fn post_bls_sync(&self, sysroot: &Path, bootversion: u32) -> Result<()> {
        let Layout::Efi(target) = layout(sysroot)? else {
            return Ok(());
        };
        let src = loader_dir(sysroot, bootversion).join(OUTPUT);
        let data = std::fs::read(&src).map_err(|e| Error::io_path("Reading", &src, e))?;
        let dir = target.parent().unwrap_or(Path::new("."));
        let new = dir.join("grub.cfg.new");
        let old = dir.join("grub.cfg.old");
        {
            let mut f =
                std::fs::File::create(&new).map_err(|e| Error::io_path("Creating", &new, e))?;
            f.write_all(&data)
                .and_then(|()| f.sync_data())
                .map_err(|e| Error::io_path("Writing", &new, e))?;
        }
        let _ = std::fs::remove_file(&old);
        if target.exists() {
            std::fs::copy(&target, &old).map_err(|e| Error::io_path("Copying to", &old, e))?;
        }
        // NON-ATOMIC on FAT, as in ostree.
        match std::fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io_path("Removing", &target, e)),
        }
        std::fs::rename(&new, &target).map_err(|e| Error::io_path("Renaming to", &target, e))
    }
}

fn build() -> Box<dyn BootloaderWriter> {
    Box::new(Grub2Writer::new(Grub2Options::from_env()))
}

const RECORD: BootloaderPlugin = BootloaderPlugin {
    name: NAME,
    description: "GRUB 2 (boot/loader.N/grub.cfg from our generator, or OSTREE_GRUB2_EXEC)",
    // ostree probes grub2 after syslinux, before uboot.
    autodetect: Some(20),
    build,
};

/// The registry record.
pub static PLUGIN: BootloaderPlugin = RECORD;

inventory::submit! { RECORD }

/// Register into a private registry (where link-time registration does not run).
pub fn register(registry: &mut Registry) {
    registry.register_bootloader(&PLUGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_glib() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
