//! Plugin crates linked into the binary. Each is named once so that the linker keeps it and
//! its `inventory` records (storage backends…) reach `ostree_core::registry`; a crate that
//! is never named is not linked, and its plugins silently vanish.

use ostree_backend_fs as _;
use ostree_backend_object_store as _;
use ostree_bootloader_grub2 as _;
use ostree_bootloader_syslinux as _;
use ostree_bootloader_uboot as _;
use ostree_fetcher_file as _;
use ostree_fetcher_http as _;
use ostree_signer_ed25519 as _;
use ostree_signer_gpg as _;

#[cfg(test)]
mod tests {
    /// Every signature plugin crate is linked (a crate named nowhere silently vanishes).
    #[test]
    fn linked_signature_types() {
        let r = ostree_core::registry::Registry::global();
        assert_eq!(r.signer_names(), vec!["dummy", "ed25519", "gpg"]);
        assert!(r.check().is_ok());
    }

    /// Every bootloader writer crate is linked (`none` lives in core).
    #[test]
    fn linked_bootloaders() {
        let r = ostree_core::registry::Registry::global();
        assert_eq!(r.bootloader_names(), ["grub2", "none", "syslinux", "uboot"]);
        assert!(r.check().is_ok());
    }
}
