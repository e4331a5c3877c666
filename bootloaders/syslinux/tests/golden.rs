//! Golden files: the rendered `syslinux.cfg` for representative current configurations and
//! entry lists (`tests/golden/*.cfg`; `UPDATE_GOLDEN=1` rewrites them).

use std::path::PathBuf;

use ostree_bootloader_syslinux::render;
use ostree_core::bootloader::BlsEntry;
use ostree_core::bootloader::conformance::{assert_golden, sample_entries};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// A configuration an installer wrote, with the entries of a previous ostree deploy.
const MIXED: &str = "\
# Installer's header
PROMPT 1
TIMEOUT 50
DEFAULT TestOS 42 1.0.9 (ostree:0)

LABEL Rescue
\tKERNEL /vmlinuz-rescue
\tAPPEND root=/dev/sda2 single


LABEL TestOS 42 1.0.9 (ostree:0)
\tKERNEL /boot/ostree/testos-aaaa/vmlinuz-3.6.0
\tINITRD /boot/ostree/testos-aaaa/initramfs-3.6.0.img
\tAPPEND root=LABEL=rootfs ostree=/ostree/boot.0/testos/aaaa/0
LABEL Legacy ostree:0
\tKERNEL /ostree/testos-bbbb/vmlinuz
MENU SEPARATOR
LABEL memtest
\tLINUX /memtest86+.bin
";

#[test]
fn fresh_sample_entries() {
    let out = render("", &sample_entries(1)).unwrap();
    assert_golden(&golden("fresh.cfg"), &out);
}

#[test]
fn mixed_config_keeps_foreign_entries() {
    // "memtest" has no KERNEL of its own: like ostree, it inherits the previous block's
    // (an ostree kernel), so it is dropped along with ostree's own entries.
    let out = render(MIXED, &sample_entries(1)).unwrap();
    assert_golden(&golden("mixed.cfg"), &out);
    assert!(out.contains("LABEL Rescue\n\tKERNEL /vmlinuz-rescue\n"));
    // Foreign lines keep their place; the regenerated DEFAULT comes with the new entries.
    assert!(out.starts_with("# Installer's header\nPROMPT 1\nTIMEOUT 50\n\nLABEL Rescue"));
    assert!(out.contains("MENU SEPARATOR\nDEFAULT TestOS 42 1.0.10 (ostree:0)\nLABEL TestOS"));
    assert!(!out.contains("memtest"));
}

#[test]
fn foreign_default_is_dropped() {
    let cur = "DEFAULT Rescue\nLABEL Rescue\n\tKERNEL /vmlinuz-rescue\n";
    let out = render(cur, &sample_entries(0)[..1]).unwrap();
    assert_golden(&golden("foreign-default.cfg"), &out);
    assert!(!out.contains("DEFAULT"));
}

#[test]
fn old_default_format_is_regenerated() {
    let cur = "DEFAULT ostree:testos:0\nLABEL ostree:testos:0\n\tKERNEL /ostree/testos-x/vmlinuz\n";
    let out = render(cur, &sample_entries(1)).unwrap();
    assert_golden(&golden("old-default.cfg"), &out);
}

#[test]
fn untitled_and_minimal_entries() {
    let entries = [
        BlsEntry::from_pairs([("linux", "/ostree/os-c/vmlinuz"), ("version", "2")]),
        BlsEntry::from_pairs([
            ("title", "Two"),
            ("linux", "/ostree/os-d/vmlinuz"),
            ("options", "quiet"),
        ]),
    ];
    let out = render("TIMEOUT 10\n", &entries).unwrap();
    assert_golden(&golden("minimal.cfg"), &out);
}

#[test]
fn errors_like_ostree() {
    let e = render("LABEL x\n\tAPPEND y\n", &[]).unwrap_err();
    assert_eq!(e.to_string(), "No KERNEL argument found after LABEL");
    let e = render("", &[BlsEntry::from_pairs([("title", "t")])]).unwrap_err();
    assert_eq!(e.to_string(), "No \"linux\" key in bootloader config");
}
