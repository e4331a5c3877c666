//! Interop with the real ostree:
//!
//! * our [`menuentries`] equals `ostree admin instutil grub2-generate` byte for byte for the
//!   entries of real deploys (device tree, no initramfs, several entries; BIOS and EFI);
//! * with `OSTREE_GRUB2_EXEC` pointing at upstream's `ostree-grub-generator` (what
//!   `test-admin-deploy-grub2.sh` does), our writer produces the real ostree's `grub.cfg`;
//! * our own generator's config for the same entries passes `grub-script-check` and reads
//!   back as exactly those entries.

mod common;

use ostree_bootloader_grub2::{Grub2Options, Grub2Writer, MenuOptions, generate, menuentries};
use ostree_core::bootloader::conformance::real::RealSysroot;
use ostree_core::bootloader::read_entries;

const CACHE: &str =
    "insmod part_gpt\ninsmod ext2\nsearch --no-floppy --fs-uuid --set=root 1234-abcd";

fn check_state(s: &RealSysroot, n: u32) {
    let entries = read_entries(&s.sysroot, n).unwrap();
    let bv = n.to_string();
    for efi in [false, true] {
        let mut env = vec![
            ("GRUB2_BOOT_DEVICE_ID", "1234-abcd"),
            ("GRUB2_PREPARE_ROOT_CACHE", CACHE),
        ];
        if efi {
            env.push(("_OSTREE_GRUB2_IS_EFI", "1"));
        }
        let theirs = s.admin_env(&["instutil", "grub2-generate", &bv], &env);
        let ours = menuentries(
            &entries,
            &MenuOptions {
                boot_device_id: Some("1234-abcd".into()),
                prepare_root: Some(CACHE.into()),
                boot_prefix: String::new(),
                is_efi: efi,
            },
        )
        .unwrap();
        assert_eq!(ours, theirs, "instutil grub2-generate {n} (efi: {efi})");
    }
    let text = generate(&entries, &MenuOptions::for_sysroot(&s.sysroot, false)).unwrap();
    common::script_check_text(&text);
    common::assert_menu_matches(
        &text,
        &entries,
        ostree_bootloader_grub2::boot_prefix(&s.sysroot),
    );
}

#[test]
fn deploys_match_real_ostree() {
    let Some(script) = common::generator_script() else {
        return;
    };
    let script_s = script.to_str().unwrap();
    let env = [
        ("OSTREE_GRUB2_EXEC", script_s),
        ("OSTREE_BOOT_PARTITION", "/boot"),
    ];
    let Some(s) = RealSysroot::new("grub2", &env) else {
        return;
    };
    let w = Grub2Writer::new(Grub2Options {
        exec: Some(script.clone()),
        env: vec![("OSTREE_BOOT_PARTITION".into(), "/boot".into())],
        ..Grub2Options::default()
    });
    let io = ["grub.cfg"];
    let (n, text) = s.deploy_and_compare(
        &w,
        &["--karg=root=LABEL=rootfs", "--karg=quiet"],
        &[],
        io[0],
    );
    assert!(
        text.contains("menuentry 'TestOS 42 1.0.9 (ostree:0)'"),
        "{text}"
    );
    common::script_check_text(&text);
    check_state(&s, n);

    let m = s.osdata.join("usr/lib/modules/3.6.0");
    std::fs::write(m.join("devicetree"), "a device tree\n").unwrap();
    s.commit("1.0.10");
    let (n, _) = s.deploy_and_compare(&w, &["--karg-append=console=ttyS0"], &[], io[0]);
    check_state(&s, n);

    std::fs::remove_file(m.join("initramfs.img")).unwrap();
    s.commit("1.0.11");
    let (n, _) = s.deploy_and_compare(&w, &["--retain"], &[], io[0]);
    check_state(&s, n);
    assert_eq!(read_entries(&s.sysroot, n).unwrap().len(), 3);
}

#[test]
fn efi_layout_is_detected_and_updated_after_the_swap() {
    use ostree_core::bootloader::BootloaderWriter;
    let Some(s) = RealSysroot::new("grub2-efi", &[]) else {
        return;
    };
    // The reference build runs the system grub-mkconfig (absent from the deployment) and
    // fails; the BLS entries are what we need: make them with the none writer.
    s.set_config("sysroot.bootloader", "none");
    let n = s.deploy(&["--karg=root=LABEL=rootfs"]);
    let w = Grub2Writer::new(Grub2Options::default());
    assert!(w.detect(&s.sysroot).unwrap());
    assert!(!w.is_atomic(&s.sysroot));
    let entries = read_entries(&s.sysroot, n).unwrap();
    let efi_cfg = s.sysroot.join("boot/efi/EFI/testos/grub.cfg");
    let before = std::fs::read_to_string(&efi_cfg).unwrap();
    w.write(&s.sysroot, n, &entries).unwrap();
    assert_eq!(
        std::fs::read_to_string(&efi_cfg).unwrap(),
        before,
        "EFI config changed before the swap"
    );
    w.post_bls_sync(&s.sysroot, n).unwrap();
    let after = std::fs::read_to_string(&efi_cfg).unwrap();
    assert_eq!(after, s.loader_file(n, "grub.cfg"));
    assert_eq!(
        std::fs::read_to_string(s.sysroot.join("boot/efi/EFI/testos/grub.cfg.old")).unwrap(),
        before
    );
    common::script_check(&efi_cfg);
    common::assert_menu_matches(
        &after,
        &entries,
        ostree_bootloader_grub2::boot_prefix(&s.sysroot),
    );
}
