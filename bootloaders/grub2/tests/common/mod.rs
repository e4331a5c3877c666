//! Helpers shared by the grub2 tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ostree_bootloader_grub2::cfg;
use ostree_core::bootloader::BlsEntry;
use ostree_core::bootloader::conformance::real::require_tool;

/// Upstream's generator script, installed with ostree's tests (it is not copied here).
pub fn generator_script() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/libexec/installed-tests/libostree/ostree-grub-generator");
    if p.is_file() {
        return Some(p);
    }
    assert!(
        !std::env::var("OSTREE_TEST_REQUIRE")
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim() == "ostree"),
        "{} is missing (package ostree-tests) and OSTREE_TEST_REQUIRE contains `ostree`",
        p.display()
    );
    eprintln!("SKIP: {} is not installed", p.display());
    None
}

/// `grub-script-check` accepts the file (skipped when the tool is missing, unless
/// `OSTREE_TEST_REQUIRE` contains `grub`).
pub fn script_check(path: &Path) {
    let Some(tool) = require_tool("grub-script-check", "grub") else {
        return;
    };
    let out = std::process::Command::new(tool)
        .arg(path)
        .output()
        .expect("run grub-script-check");
    assert!(
        out.status.success(),
        "grub-script-check rejects {}: {}{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// [`script_check`] on a text.
pub fn script_check_text(text: &str) {
    let d = ostree_core::bootloader::conformance::tempdir();
    let p = d.path().join("grub.cfg");
    std::fs::write(&p, text).unwrap();
    script_check(&p);
}

/// Read the configuration back and check that it boots exactly the entries: same order,
/// titles, kernels (with `prefix`), options, initrds and device trees.
pub fn assert_menu_matches(text: &str, entries: &[BlsEntry], prefix: &str) {
    let c = cfg::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.entries.len(), entries.len(), "{text}");
    for (m, e) in c.entries.iter().zip(entries) {
        assert_eq!(m.title, e.title().unwrap_or("(Untitled)"));
        assert_eq!(
            m.linux(),
            Some(format!("{prefix}{}", e.linux().unwrap()).as_str())
        );
        assert_eq!(m.options().as_deref(), e.options());
        let want: Vec<String> = e
            .initrd()
            .into_iter()
            .map(|i| format!("{prefix}{i}"))
            .collect();
        assert_eq!(m.initrds(), want);
        assert_eq!(
            m.devicetree().map(str::to_string),
            e.devicetree().map(|d| format!("{prefix}{d}"))
        );
    }
}
