//! Runs `compare-with-ostree.sh`: every `--help` text and the usage/error paths of our
//! `ostree` must be byte-identical to the real ostree 2022.7 when it is installed.

use std::path::Path;
use std::process::Command;

#[test]
fn help_and_errors_match_real_ostree() {
    let real = Path::new("/usr/bin/ostree");
    if !real.exists() {
        eprintln!("SKIP: no reference ostree at {}", real.display());
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compare-with-ostree.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_ostree"))
        .arg(real)
        .output()
        .expect("run compare-with-ostree.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "differences from the real ostree:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_is_one_write_and_yaml() {
    let out = Command::new(env!("CARGO_BIN_EXE_ostree"))
        .arg("--version")
        .output()
        .expect("run ostree --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with("libostree:\n Version: '2022.7'\n Features:\n"),
        "{text}"
    );
    assert!(
        text.lines().skip(3).all(|l| l.starts_with("  - ")),
        "{text}"
    );
}

#[test]
fn closed_stdout_pipe_does_not_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // Help is one write; make the reader go away first, then check for a panic message.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ostree"))
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ostree");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let _ = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "{err}");
}
