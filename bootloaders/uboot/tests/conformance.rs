//! The bootloader-writer conformance suite of `ostree-core`, over a stub U-Boot setup as
//! upstream's `libtest.sh` makes it.

use std::path::Path;

use ostree_bootloader_uboot::UbootWriter;
use ostree_core::bootloader::conformance::WriterFixture;

/// `boot/loader/uEnv.txt` (empty) and `boot/uEnv.txt -> loader/uEnv.txt`.
fn prepare(sysroot: &Path) {
    std::fs::write(sysroot.join("boot/loader/uEnv.txt"), "").unwrap();
    std::os::unix::fs::symlink("loader/uEnv.txt", sysroot.join("boot/uEnv.txt")).unwrap();
}

ostree_core::bootloader_conformance_tests!(|| WriterFixture {
    writer: Box::new(UbootWriter),
    prepare,
    outputs: &["uEnv.txt"],
});
