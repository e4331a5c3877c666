//! The bootloader-writer conformance suite of `ostree-core`, over a stub SYSLINUX setup as
//! upstream's `libtest.sh` makes it.

use std::path::Path;

use ostree_bootloader_syslinux::SyslinuxWriter;
use ostree_core::bootloader::conformance::WriterFixture;

/// `boot/loader/syslinux.cfg` (empty) and `boot/syslinux/syslinux.cfg -> ../loader/syslinux.cfg`.
fn prepare(sysroot: &Path) {
    std::fs::write(sysroot.join("boot/loader/syslinux.cfg"), "").unwrap();
    std::fs::create_dir_all(sysroot.join("boot/syslinux")).unwrap();
    std::os::unix::fs::symlink(
        "../loader/syslinux.cfg",
        sysroot.join("boot/syslinux/syslinux.cfg"),
    )
    .unwrap();
}

ostree_core::bootloader_conformance_tests!(|| WriterFixture {
    writer: Box::new(SyslinuxWriter),
    prepare,
    outputs: &["syslinux.cfg"],
});
