//! Locating and running the two `ostree` binaries.
//!
//! * ours: `$OSTREE_RS_BIN`, else `<target>/release/ostree`, else `<target>/debug/ostree`, where
//!   `<target>` is the target dir this test executable was built into, `$CARGO_TARGET_DIR`, or
//!   `<workspace>/target`. Missing → the test fails with a message saying how to build it.
//! * the real one (the judge): `$OSTREE_REAL_BIN`, default `/usr/bin/ostree`. Missing → the test
//!   prints a skip message and returns, unless `$OSTREE_TEST_REQUIRE` contains `ostree`.
//!
//! Every command runs with a timeout (`$OSTREE_TEST_CMD_TIMEOUT` seconds, default 300), stdin
//! from /dev/null, `LC_ALL=C.UTF-8` and the `OSTREE_*` environment variables that change where
//! ostree looks for repos removed.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One `ostree`-compatible binary.
#[derive(Debug, Clone)]
pub struct Ostree {
    /// Path of the executable.
    pub bin: PathBuf,
    /// Short name used in messages (`ours` or `real`).
    pub label: &'static str,
}

/// What a finished command did.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub argv: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

impl Run {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output as (lossy) text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as (lossy) text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Both streams, for "does the output mention X" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.out(), self.err())
    }

    /// A multi-line description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout\n{}--- stderr\n{}---",
            self.argv,
            self.status,
            truncate(&self.out(), 4000),
            truncate(&self.err(), 4000)
        )
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]\n", &s[..end], s.len() - end)
}

/// `--repo=PATH` as one argument.
pub fn repo_arg(repo: &Path) -> String {
    format!("--repo={}", path_str(repo))
}

/// A path as `&str` (test paths are always UTF-8: they live under a tempdir we created).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

impl Ostree {
    /// A `Command` for this binary with the test environment applied.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        for v in [
            "OSTREE_REPO",
            "OSTREE_SYSROOT",
            "OSTREE_SYSROOT_DEBUG",
            "OSTREE_GPG_HOME",
            "OSTREE_DEBUG_HTTP",
        ] {
            c.env_remove(v);
        }
        c.env("LC_ALL", "C.UTF-8").stdin(Stdio::null());
        c
    }

    /// Run with arbitrary arguments; never panics on a non-zero exit.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut c = self.command();
        c.args(args);
        run_command(self.label, c)
    }

    /// Run `ostree --repo=REPO ARGS...`.
    pub fn run_repo(&self, repo: &Path, args: &[&str]) -> Run {
        let mut all: Vec<OsString> = vec![repo_arg(repo).into()];
        all.extend(args.iter().map(OsString::from));
        self.run(&all)
    }

    /// Run `ostree --repo=REPO ARGS...`, panic unless it succeeds, return trimmed stdout.
    pub fn ok(&self, repo: &Path, args: &[&str]) -> String {
        let r = self.run_repo(repo, args);
        assert!(
            r.success(),
            "[{}] command failed\n{}",
            self.label,
            r.describe()
        );
        r.out().trim().to_string()
    }

    /// Run `ostree --repo=REPO ARGS...` and panic if it succeeds.
    pub fn fails(&self, repo: &Path, args: &[&str]) -> Run {
        let r = self.run_repo(repo, args);
        assert!(
            !r.success(),
            "[{}] command unexpectedly succeeded\n{}",
            self.label,
            r.describe()
        );
        assert_no_panic(&r);
        r
    }

    /// `ostree --repo=REPO init --mode=MODE`.
    pub fn init(&self, repo: &Path, mode: &str) {
        self.ok(repo, &["init", &format!("--mode={mode}")]);
    }

    /// `ostree --repo=REPO rev-parse REF`, or `None` if it fails (no such ref).
    pub fn rev_parse(&self, repo: &Path, refspec: &str) -> Option<String> {
        let r = self.run_repo(repo, &["rev-parse", refspec]);
        r.success().then(|| r.out().trim().to_string())
    }

    /// `ostree --repo=REPO fsck`, panicking with the output if it reports a problem.
    pub fn fsck_clean(&self, repo: &Path) {
        let r = self.run_repo(repo, &["fsck"]);
        assert!(
            r.success(),
            "[{}] fsck of {} failed\n{}",
            self.label,
            repo.display(),
            r.describe()
        );
    }
}

/// When two repos disagree on a commit checksum: the lines of the judge's
/// `ls -R -X -C REFSPEC` that differ between them (the judge reads both repos), so a failure
/// names the entries whose metadata or content differ.
pub fn explain_mismatch(
    judge: &Ostree,
    ours_repo: &Path,
    real_repo: &Path,
    refspec: &str,
) -> String {
    let ls = |repo: &Path| {
        let r = judge.run_repo(repo, &["ls", "-R", "-X", "-C", refspec]);
        if r.success() {
            Ok(r.out().lines().map(str::to_string).collect::<Vec<_>>())
        } else {
            Err(r.err())
        }
    };
    match (ls(ours_repo), ls(real_repo)) {
        (Ok(a), Ok(b)) => {
            let mut d: Vec<String> = a
                .iter()
                .filter(|l| !b.contains(l))
                .map(|l| format!("ours: {l}"))
                .chain(
                    b.iter()
                        .filter(|l| !a.contains(l))
                        .map(|l| format!("real: {l}")),
                )
                .collect();
            d.truncate(40);
            format!(
                "`{} ls -RXC {refspec}` differs on:\n  {}",
                judge.label,
                d.join("\n  ")
            )
        }
        (a, b) => format!(
            "`{} ls -RXC {refspec}` failed: ours repo: {:?}; real repo: {:?}",
            judge.label,
            a.err(),
            b.err()
        ),
    }
}

/// A Rust panic in the binary under test is never an acceptable way to report an error.
pub fn assert_no_panic(r: &Run) {
    let e = r.err();
    assert!(
        !e.contains("panicked at") && r.status.code().is_some(),
        "process panicked or died from a signal\n{}",
        r.describe()
    );
}

fn cmd_timeout() -> Duration {
    let secs = std::env::var("OSTREE_TEST_CMD_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

fn describe_command(label: &str, c: &Command) -> String {
    let mut s = format!("[{label}] {}", c.get_program().to_string_lossy());
    for a in c.get_args() {
        let a = a.to_string_lossy();
        if a.contains([' ', '\n', '\t', '\'']) || a.is_empty() {
            s.push_str(&format!(" {a:?}"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Run a prepared command with the test timeout, capturing both streams.
pub fn run_command(label: &str, mut c: Command) -> Run {
    let argv = describe_command(label, &c);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child: Child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {argv}: {e}"));
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + cmd_timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{argv}: timed out after {:?}", cmd_timeout());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{argv}: wait failed: {e}"),
        }
    };
    Run {
        argv,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Whether `$OSTREE_TEST_REQUIRE` (comma/space separated) names `what`.
pub fn required(what: &str) -> bool {
    std::env::var("OSTREE_TEST_REQUIRE")
        .map(|v| v.split([',', ' ']).any(|w| w.trim() == what))
        .unwrap_or(false)
}

fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn target_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    // <target>/<profile>/deps/<test-exe>
    if let Ok(exe) = std::env::current_exe()
        && let Some(t) = exe.parent().and_then(Path::parent).and_then(Path::parent)
    {
        v.push(t.to_path_buf());
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        v.push(if t.is_absolute() {
            t
        } else {
            workspace_root().join(t)
        });
    }
    v.push(workspace_root().join("target"));
    v.dedup();
    v
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Our binary (see the module docs for the search order). Panics if none is found.
pub fn ours() -> Ostree {
    if let Some(p) = std::env::var_os("OSTREE_RS_BIN") {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "OSTREE_RS_BIN={} is not an executable file",
            p.display()
        );
        return Ostree {
            bin: p,
            label: "ours",
        };
    }
    let mut looked = Vec::new();
    for profile in ["release", "debug"] {
        for t in target_dirs() {
            let p = t.join(profile).join("ostree");
            if is_executable(&p) {
                return Ostree {
                    bin: p,
                    label: "ours",
                };
            }
            looked.push(p.display().to_string());
        }
    }
    panic!(
        "our ostree binary was not found (looked in: {}).\n\
         Build it first with `cargo build --release` (package ostree-cli), or set OSTREE_RS_BIN.",
        looked.join(", ")
    );
}

/// The real ostree, or `None` (after printing why) when it is missing and not required.
pub fn real() -> Option<Ostree> {
    let p = std::env::var_os("OSTREE_REAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/ostree"));
    if is_executable(&p) {
        return Some(Ostree {
            bin: p,
            label: "real",
        });
    }
    assert!(
        !required("ostree"),
        "the real ostree ({}) is missing and OSTREE_TEST_REQUIRE contains `ostree`; \
         install it with `apt-get install ostree` or set OSTREE_REAL_BIN",
        p.display()
    );
    eprintln!(
        "SKIP: the real ostree ({}) is not installed; interop test skipped \
         (set OSTREE_TEST_REQUIRE=ostree to make this a failure)",
        p.display()
    );
    None
}

/// Both binaries, or `None` if the test must be skipped (see [`real`]).
pub fn both() -> Option<(Ostree, Ostree)> {
    let real = real()?;
    Some((ours(), real))
}

/// A fresh scratch directory (removed on drop) under `$OSTREE_TEST_TMPDIR` or the system
/// tempdir. The filesystem must support `user.*` xattrs (ext4, xfs, btrfs and tmpfs do).
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    match std::env::var_os("OSTREE_TEST_TMPDIR") {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .expect("create scratch dir")
}

/// Whether the current process runs as root (the suite needs it for owners and devices).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
