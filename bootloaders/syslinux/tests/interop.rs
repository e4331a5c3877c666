//! Interop with the real ostree: for the entries the real `ostree admin deploy` writes, our
//! writer produces its `syslinux.cfg` byte for byte, across deploys that exercise foreign
//! entries, DEFAULT handling, device trees and kernels without initramfs.

use ostree_bootloader_syslinux::{SyslinuxWriter, render};
use ostree_core::bootloader::conformance::real::RealSysroot;
use ostree_core::bootloader::read_entries;

fn edit_active(s: &RealSysroot, f: impl FnOnce(&str) -> String) {
    let p = s.sysroot.join("boot/loader/syslinux.cfg");
    let cur = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, f(&cur)).unwrap();
}

#[test]
fn deploys_match_real_ostree() {
    let Some(s) = RealSysroot::new("syslinux", &[]) else {
        return;
    };
    let w = SyslinuxWriter;
    let out = ["syslinux.cfg"];
    // 1. First deploy over the empty stub.
    let (n, text) = s.deploy_and_compare(
        &w,
        &["--karg=root=LABEL=rootfs", "--karg=quiet"],
        &out,
        out[0],
    );
    assert!(
        text.starts_with("DEFAULT TestOS 42 1.0.9 (ostree:0)\nLABEL"),
        "{text}"
    );
    // render() agrees with write() on the entries of the active side.
    let entries = read_entries(&s.sysroot, n).unwrap();
    assert_eq!(render("", &entries).unwrap(), text);

    // 2. An installer adds its own header and entries; the default stays ostree's.
    edit_active(&s, |cur| {
        format!(
            "# installer\nPROMPT 1\nTIMEOUT 50\n\n{cur}\nLABEL Rescue\n\tKERNEL /vmlinuz-rescue\n\tAPPEND single\n\n\nLABEL nokernel\n\tAPPEND x\nMENU SEPARATOR\n"
        )
    });
    std::fs::write(
        s.osdata.join("usr/lib/modules/3.6.0/devicetree"),
        "a device tree\n",
    )
    .unwrap();
    s.commit("1.0.10");
    s.deploy_and_compare(&w, &["--karg-append=console=ttyS0"], &out, out[0]);

    // 3. A foreign DEFAULT: ostree drops it and writes none.
    edit_active(&s, |cur| {
        let kept: Vec<&str> = cur.lines().filter(|l| !l.starts_with("DEFAULT ")).collect();
        format!("DEFAULT Rescue\n{}\n", kept.join("\n"))
    });
    std::fs::remove_file(s.osdata.join("usr/lib/modules/3.6.0/initramfs.img")).unwrap();
    s.commit("1.0.11");
    let (_, text) = s.deploy_and_compare(&w, &[], &out, out[0]);
    assert!(!text.contains("DEFAULT"), "{text}");
    assert!(
        text.contains("LABEL Rescue\n\tKERNEL /vmlinuz-rescue\n"),
        "{text}"
    );

    // 4. The old-format ostree default is regenerated; --not-as-default keeps the order.
    edit_active(&s, |cur| format!("DEFAULT ostree:testos:0\n{cur}"));
    let (_, text) = s.deploy_and_compare(&w, &["--not-as-default"], &out, out[0]);
    assert!(text.contains("\nDEFAULT TestOS"), "{text}");
    s.deploy_and_compare(&w, &["--retain"], &out, out[0]);
}
