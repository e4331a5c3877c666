#![doc = include_str!("../README.md")]

use std::path::Path;

use ostree_core::bootloader::{
    BlsEntry, BootloaderWriter, join_lines, loader_dir, replace_file_atomic,
};
use ostree_core::registry::{BootloaderPlugin, Registry};
use ostree_core::{Error, Result};

/// The registry key.
pub const NAME: &str = "uboot";
/// The current configuration, relative to the sysroot (through the `boot/loader` link).
pub const CONFIG_PATH: &str = "boot/loader/uEnv.txt";
/// The file written into `boot/loader.N/`.
pub const OUTPUT: &str = "uEnv.txt";
/// Where a deployment ships extra environment lines, relative to its root.
pub const SYSTEM_UENV: &str = "usr/lib/ostree-boot/uEnv.txt";

/// The U-Boot writer (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct UbootWriter;

fn read_utf8(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| Error::corrupted(format!("Reading {}: invalid UTF-8", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io_path("Reading", path, e)),
    }
}

/// The first deployment's own `uEnv.txt`, found through the `ostree=` argument of `options`.
fn system_uenv(sysroot: &Path, options: &str) -> Result<Option<String>> {
    let arg = ostree_core::bootloader::kernel_arg_last(options, "ostree").ok_or_else(|| {
        Error::invalid("No ostree= kernel argument found in boot loader configuration file")
    })?;
    // ostree skips the first character (the leading '/') and opens relative to the sysroot.
    let rel = arg.get(1..).unwrap_or("");
    read_utf8(&sysroot.join(rel).join(SYSTEM_UENV))
}

/// Render `uEnv.txt` for the entries (newest first); the sysroot is where the first
/// deployment's own `uEnv.txt` is looked up.
pub fn render(sysroot: &Path, entries: &[BlsEntry]) -> Result<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let sfx = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        out.push(format!("kernel_image{sfx}=/boot{}", e.require_linux()?));
        if let Some(v) = e.initrd() {
            out.push(format!("ramdisk_image{sfx}=/boot{v}"));
        }
        if let Some(v) = e.devicetree() {
            out.push(format!("fdt_file{sfx}=/boot{v}"));
        }
        if let Some(v) = e.fdtdir() {
            out.push(format!("fdtdir{sfx}=/boot{v}"));
        }
        if let Some(v) = e.options() {
            out.push(format!("bootargs{sfx}={v}"));
            if i == 0
                && let Some(extra) = system_uenv(sysroot, v)?
            {
                out.push(extra);
            }
        }
    }
    Ok(join_lines(&out))
}

impl BootloaderWriter for UbootWriter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "U-Boot"
    }

    fn detect(&self, sysroot: &Path) -> Result<bool> {
        let p = sysroot.join(CONFIG_PATH);
        match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io_path("stat", &p, e)),
        }
    }

    fn write(&self, sysroot: &Path, bootversion: u32, entries: &[BlsEntry]) -> Result<()> {
        // ostree reads the current file (and fails without it) but does not keep it.
        let cur = sysroot.join(CONFIG_PATH);
        if read_utf8(&cur)?.is_none() {
            return Err(Error::io_path(
                "Reading",
                &cur,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let text = render(sysroot, entries)?;
        replace_file_atomic(
            &loader_dir(sysroot, bootversion).join(OUTPUT),
            text.as_bytes(),
        )
    }
}

fn build() -> Box<dyn BootloaderWriter> {
    Box::new(UbootWriter)
}

const RECORD: BootloaderPlugin = BootloaderPlugin {
    name: NAME,
    description: "U-Boot (boot/loader.N/uEnv.txt, appends the deployment's own uEnv.txt)",
    // ostree probes uboot last, after syslinux and grub2.
    autodetect: Some(30),
    build,
};

/// The registry record.
pub static PLUGIN: BootloaderPlugin = RECORD;

inventory::submit! { RECORD }

/// Register into a private registry (where link-time registration does not run).
pub fn register(registry: &mut Registry) {
    registry.register_bootloader(&PLUGIN);
}
