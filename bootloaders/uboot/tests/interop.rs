//! Interop with the real ostree: for the entries the real `ostree admin deploy` writes, our
//! writer produces its `uEnv.txt` byte for byte — the first deploy, a deployment shipping
//! its own `usr/lib/ostree-boot/uEnv.txt`, a device tree file and a `dtb/` directory
//! (`fdtdir`), several entries.

use ostree_bootloader_uboot::UbootWriter;
use ostree_core::bootloader::conformance::real::RealSysroot;

#[test]
fn deploys_match_real_ostree() {
    let Some(s) = RealSysroot::new("uboot", &[]) else {
        return;
    };
    let w = UbootWriter;
    let io = ["uEnv.txt"];
    let (_, text) = s.deploy_and_compare(&w, &["--karg=root=LABEL=rootfs"], &io, io[0]);
    assert!(
        text.starts_with("kernel_image=/boot/ostree/testos-"),
        "{text}"
    );

    let m = s.osdata.join("usr/lib/modules/3.6.0");
    std::fs::create_dir_all(s.osdata.join("usr/lib/ostree-boot")).unwrap();
    std::fs::write(
        s.osdata.join("usr/lib/ostree-boot/uEnv.txt"),
        "loaduimage=load mmc ${bootpart} ${loadaddr} ${kernel_image}\nmmcboot=run loadramdisk; bootz\n",
    )
    .unwrap();
    std::fs::write(m.join("devicetree"), "a device tree\n").unwrap();
    s.commit("1.0.10");
    let (_, text) = s.deploy_and_compare(&w, &[], &io, io[0]);
    assert!(text.contains("fdt_file=/boot/ostree/"), "{text}");
    assert!(text.contains("\nloaduimage=load mmc"), "{text}");
    assert!(text.contains("kernel_image2="), "{text}");

    std::fs::remove_file(m.join("devicetree")).unwrap();
    std::fs::create_dir_all(m.join("dtb/overlays")).unwrap();
    std::fs::write(m.join("dtb/asoc-board.dtb"), "a device tree\n").unwrap();
    std::fs::write(m.join("dtb/overlays/overlay.dtbo"), "an overlay\n").unwrap();
    s.commit("1.0.11");
    let (_, text) = s.deploy_and_compare(&w, &["--karg-append=console=ttyS0"], &io, io[0]);
    assert!(text.contains("fdtdir=/boot/ostree/"), "{text}");
    assert!(text.contains("kernel_image2="), "{text}");
    // An empty system uEnv.txt and a not-as-default deploy.
    std::fs::write(s.osdata.join("usr/lib/ostree-boot/uEnv.txt"), "").unwrap();
    s.commit("1.0.12");
    s.deploy_and_compare(&w, &["--not-as-default"], &io, io[0]);
    s.deploy_and_compare(&w, &[], &io, io[0]);
}
