//! Golden files of our generator (`tests/golden/*.cfg`; `UPDATE_GOLDEN=1` rewrites them),
//! each also accepted by `grub-script-check` and read back by our parser.

mod common;

use std::path::PathBuf;

use ostree_bootloader_grub2::{MenuOptions, generate, menuentries};
use ostree_core::bootloader::BlsEntry;
use ostree_core::bootloader::conformance::{assert_golden, sample_entries};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn check(name: &str, text: &str, entries: &[BlsEntry], prefix: &str) {
    assert_golden(&golden(name), text);
    common::script_check_text(text);
    common::assert_menu_matches(text, entries, prefix);
}

const PREPARE: &str = "insmod part_gpt\ninsmod ext2\nset root='hd0,gpt2'\nif [ x$feature_platform_search_hint = xy ]; then\n  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt2 --hint-efi=hd0,gpt2 --hint-baremetal=ahci0,gpt2  0f3e5c1a-1b2c-4d5e-8f90-123456789abc\nelse\n  search --no-floppy --fs-uuid --set=root 0f3e5c1a-1b2c-4d5e-8f90-123456789abc\nfi";

#[test]
fn instutil_shape() {
    let entries = sample_entries(1);
    let opts = MenuOptions {
        boot_device_id: Some("0f3e5c1a-1b2c-4d5e-8f90-123456789abc".into()),
        prepare_root: Some(PREPARE.into()),
        boot_prefix: String::new(),
        is_efi: false,
    };
    let text = menuentries(&entries, &opts).unwrap();
    check("instutil.cfg", &text, &entries, "");
    // EFI changes nothing on a modern-GRUB build.
    assert_eq!(
        menuentries(
            &entries,
            &MenuOptions {
                is_efi: true,
                ..opts
            }
        )
        .unwrap(),
        text
    );
}

#[test]
fn full_config_same_filesystem() {
    let entries = sample_entries(0);
    let opts = MenuOptions {
        boot_device_id: None,
        prepare_root: None,
        boot_prefix: "/boot".into(),
        is_efi: false,
    };
    let text = generate(&entries, &opts).unwrap();
    check("same-fs.cfg", &text, &entries, "/boot");
    let c = ostree_bootloader_grub2::cfg::parse(&text).unwrap();
    assert_eq!(c.var("default"), Some("0"));
    assert_eq!(c.functions, ["load_video"]);
    assert_eq!(c.entries[1].id(), Some("ostree-1"));
}

#[test]
fn full_config_separate_boot_with_uuid() {
    let entries = sample_entries(1);
    let opts = MenuOptions {
        boot_device_id: Some("0f3e5c1a".into()),
        prepare_root: Some("search --no-floppy --fs-uuid --set=root 0f3e5c1a".into()),
        boot_prefix: String::new(),
        is_efi: true,
    };
    let text = generate(&entries, &opts).unwrap();
    check("separate-boot.cfg", &text, &entries, "");
}

#[test]
fn awkward_titles_and_minimal_entries() {
    let entries = [
        BlsEntry::from_pairs([
            ("title", "It's \"quoted\" $HOME; {braces} \\ back"),
            ("linux", "/ostree/os-a/vmlinuz"),
            ("options", "root=UUID=x rw"),
        ]),
        BlsEntry::from_pairs([("linux", "/ostree/os-b/vmlinuz")]),
    ];
    let text = generate(&entries, &MenuOptions::default()).unwrap();
    check("awkward.cfg", &text, &entries, "");
    let e = generate(
        &[BlsEntry::from_pairs([("title", "t")])],
        &MenuOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "No \"linux\" key in bootloader config");
    assert_eq!(
        generate(&[], &MenuOptions::default()).unwrap(),
        ostree_bootloader_grub2::HEADER
    );
    common::script_check_text(ostree_bootloader_grub2::HEADER);
}
