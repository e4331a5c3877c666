#![doc = include_str!("../README.md")]

use std::path::Path;

use ostree_core::bootloader::{
    BlsEntry, BootloaderWriter, join_lines, loader_dir, replace_file_atomic,
};
use ostree_core::registry::{BootloaderPlugin, Registry};
use ostree_core::{Error, Result};

/// The registry key.
pub const NAME: &str = "syslinux";
/// Where the bootloader reads its configuration, relative to the sysroot.
pub const CONFIG_PATH: &str = "boot/syslinux/syslinux.cfg";
/// The file written into `boot/loader.N/`.
pub const OUTPUT: &str = "syslinux.cfg";

/// The SYSLINUX writer (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct SyslinuxWriter;

/// Render the new `syslinux.cfg` from the current one and the entries (newest first).
pub fn render(current: &str, entries: &[BlsEntry]) -> Result<String> {
    // GLib splits "" into no lines at all.
    let lines: Vec<&str> = if current.is_empty() {
        Vec::new()
    } else {
        current.split('\n').collect()
    };
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    // Like ostree, the kernel seen last survives from one LABEL block to the next.
    let mut kernel: Option<&str> = None;
    let mut saw_default = false;
    let mut regenerate_default = false;
    let mut in_label = false;
    for line in lines.iter().copied().map(Some).chain([None]) {
        if in_label && line.is_none_or(|l| !l.starts_with('\t')) {
            in_label = false;
            let k = kernel.ok_or_else(|| Error::invalid("No KERNEL argument found after LABEL"))?;
            if !k.starts_with("/ostree/") && !k.starts_with("/boot/ostree/") {
                out.extend(block.drain(..).map(str::to_string));
            } else {
                block.clear();
            }
        }
        let Some(line) = line else { break };
        let mut skip = false;
        if !in_label && line.starts_with("LABEL ") {
            in_label = true;
            block.clear();
        } else if in_label && let Some(k) = line.strip_prefix("\tKERNEL ") {
            kernel = Some(k);
        } else if !in_label && line.starts_with("DEFAULT ") {
            saw_default = true;
            if line.starts_with("DEFAULT ostree:") || line.contains("(ostree") {
                regenerate_default = true;
            }
            skip = true;
        }
        if !skip {
            if in_label {
                block.push(line);
            } else {
                out.push(line.to_string());
            }
        }
    }
    if !saw_default {
        regenerate_default = true;
    }
    for (i, e) in entries.iter().enumerate() {
        let title = e.title().unwrap_or("(Untitled)");
        if regenerate_default && i == 0 {
            out.push(format!("DEFAULT {title}"));
        }
        out.push(format!("LABEL {title}"));
        out.push(format!("\tKERNEL /boot{}", e.require_linux()?));
        if let Some(v) = e.initrd() {
            out.push(format!("\tINITRD /boot{v}"));
        }
        if let Some(v) = e.devicetree() {
            out.push(format!("\tDEVICETREE /boot{v}"));
        }
        if let Some(v) = e.options() {
            out.push(format!("\tAPPEND {v}"));
        }
    }
    Ok(join_lines(&out))
}

impl BootloaderWriter for SyslinuxWriter {
    fn name(&self) -> &'static str {
        NAME
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
        let p = sysroot.join(CONFIG_PATH);
        let current = std::fs::read(&p).map_err(|e| Error::io_path("Reading", &p, e))?;
        let current = String::from_utf8(current)
            .map_err(|_| Error::corrupted(format!("{CONFIG_PATH}: invalid UTF-8")))?;
        let text = render(&current, entries)?;
        replace_file_atomic(
            &loader_dir(sysroot, bootversion).join(OUTPUT),
            text.as_bytes(),
        )
    }
}

fn build() -> Box<dyn BootloaderWriter> {
    Box::new(SyslinuxWriter)
}

const RECORD: BootloaderPlugin = BootloaderPlugin {
    name: NAME,
    description: "SYSLINUX (boot/loader.N/syslinux.cfg, keeps non-ostree entries)",
    // ostree probes syslinux first.
    autodetect: Some(10),
    build,
};

/// The registry record.
pub static PLUGIN: BootloaderPlugin = RECORD;

inventory::submit! { RECORD }

/// Register into a private registry (where link-time registration does not run).
pub fn register(registry: &mut Registry) {
    registry.register_bootloader(&PLUGIN);
}
