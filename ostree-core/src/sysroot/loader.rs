//! The boot loader step of a boot configuration change: which writer
//! ([`crate::bootloader::BootloaderWriter`]) renders the new `loader.N` for the BLS entries
//! core decided on — the repository's `sysroot.bootloader` (default `auto`: detection), as
//! ostree's `_ostree_sysroot_query_bootloader`.
//!
//! Core decides the entries, their order, titles and options, and performs the swap; a
//! writer only renders its own configuration file from the entries.

use super::Sysroot;
use crate::bootloader::BootloaderWriter;
use crate::registry::Registry;
use crate::{Error, Result};

/// The configured `sysroot.bootloader` value (`auto` when unset).
pub(crate) fn bootloader_setting(sysroot: &Sysroot) -> Result<String> {
    let repo = sysroot.repo()?;
    Ok(repo
        .config()
        .keyfile
        .get_string("sysroot", "bootloader")
        .unwrap_or_else(|| crate::bootloader::AUTO.to_string()))
}

impl Sysroot {
    /// Check `sysroot.bootloader` names a known value (ostree refuses to open such a
    /// repository at all).
    pub(crate) fn check_bootloader_setting(&self) -> Result<()> {
        let setting = bootloader_setting(self)?;
        Registry::global().check_bootloader_setting(&setting)
    }

    /// The configured or detected writer (`none`: BLS entries only).
    pub(crate) fn query_bootloader(&self) -> Result<Box<dyn BootloaderWriter>> {
        let setting = bootloader_setting(self)?;
        Registry::global()
            .bootloader_for(&setting, self.path())
            .map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(m),
                other => other,
            })
    }

    /// The boot loader writer this sysroot uses (its `name()`), for status displays.
    pub fn bootloader_name(&self) -> Result<&'static str> {
        Ok(self.query_bootloader()?.name())
    }
}
