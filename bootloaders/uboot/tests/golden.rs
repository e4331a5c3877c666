//! Golden files: the rendered `uEnv.txt` for representative entry lists
//! (`tests/golden/*.txt`; `UPDATE_GOLDEN=1` rewrites them).

use std::path::{Path, PathBuf};

use ostree_bootloader_uboot::{UbootWriter, render};
use ostree_core::bootloader::BlsEntry;
use ostree_core::bootloader::BootloaderWriter;
use ostree_core::bootloader::conformance::{
    assert_golden, sample_entries, sample_sysroot, tempdir,
};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn prepare(sysroot: &Path) {
    std::fs::write(sysroot.join("boot/loader/uEnv.txt"), "old=1\n").unwrap();
}

#[test]
fn sample_entries_with_system_uenv() {
    let d = tempdir();
    let entries = sample_sysroot(d.path(), prepare);
    let out = render(d.path(), &entries).unwrap();
    assert_golden(&golden("sample.txt"), &out);
    // The deployment's own lines follow the first entry's bootargs; the old file is not kept.
    assert!(
        out.contains("/0\nbootdelay=1\nconsole=ttyS0\n\nkernel_image2="),
        "{out}"
    );
    assert!(!out.contains("old=1"));
    UbootWriter.write(d.path(), 1, &entries).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("boot/loader.1/uEnv.txt")).unwrap(),
        out
    );
}

#[test]
fn without_system_uenv_and_options() {
    let d = tempdir();
    let mut entries = sample_sysroot(d.path(), prepare);
    std::fs::remove_file(d.path().join(format!(
        "ostree/deploy/testos/deploy/{}.0/usr/lib/ostree-boot/uEnv.txt",
        ostree_core::bootloader::conformance::COMMIT
    )))
    .unwrap();
    entries[1].remove("options");
    let out = render(d.path(), &entries).unwrap();
    assert_golden(&golden("no-system-uenv.txt"), &out);
    // Without options on the first entry, no system uEnv is looked up at all.
    let single = [BlsEntry::from_pairs([("linux", "/ostree/os-x/vmlinuz")])];
    assert_eq!(
        render(Path::new("/nonexistent"), &single).unwrap(),
        "kernel_image=/boot/ostree/os-x/vmlinuz\n"
    );
}

#[test]
fn errors_like_ostree() {
    let no_ostree = [BlsEntry::from_pairs([
        ("linux", "/k"),
        ("options", "quiet"),
    ])];
    let e = render(Path::new("/nonexistent"), &no_ostree).unwrap_err();
    assert_eq!(
        e.to_string(),
        "No ostree= kernel argument found in boot loader configuration file"
    );
    let e = render(Path::new("/nonexistent"), &[BlsEntry::new()]).unwrap_err();
    assert_eq!(e.to_string(), "No \"linux\" key in bootloader config");
    // write() needs the current boot/loader/uEnv.txt, like ostree.
    let d = tempdir();
    let entries = sample_sysroot(d.path(), |_| {});
    let e = UbootWriter.write(d.path(), 1, &entries).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let _ = sample_entries(0);
}
