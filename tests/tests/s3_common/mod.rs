//! What the S3 tests share: a private moto server per test, the push/commit helpers, and the
//! real ostree as the judge of what lands in the bucket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ostree_tests::bins::{Ostree, Run, assert_no_panic, path_str, required, scratch};
use ostree_tests::tree::{Compare, assert_same_tree};

pub const BUCKET: &str = "ostree-test";

/// A private moto server: stopped (and its state removed) on drop.
pub struct Moto {
    port: u16,
    state: tempfile::TempDir,
}

pub fn moto_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/moto.sh")
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Moto {
    /// Start a server, or `None` (after printing why) when moto cannot run here.
    pub fn start() -> Option<Moto> {
        let state = scratch("moto-state-");
        let port = free_port();
        let m = Moto { port, state };
        match m.script("start") {
            Ok(()) => Some(m),
            Err(why) => {
                assert!(
                    !required("s3"),
                    "moto could not start and OSTREE_TEST_REQUIRE contains s3: {why}"
                );
                eprintln!("SKIP: moto_server could not start ({why}); S3 push test skipped");
                None
            }
        }
    }

    pub fn script(&self, action: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(moto_script())
            .arg(action)
            .arg(self.port.to_string())
            .env("MOTO_STATE_DIR", self.state.path())
            .env("MOTO_BUCKET", BUCKET)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running .ci/moto.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn restart(&self) {
        self.script("start").expect("restart moto");
    }

    pub fn stop(&self) {
        let _ = self.script("stop");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://` URL of a prefix in the bucket, with short retries.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&region=us-east-1&max_retries=2&retry_timeout=5",
            self.endpoint()
        )
    }

    /// Plain-HTTP URL of a prefix (what the real ostree pulls from).
    pub fn http(&self, prefix: &str) -> String {
        format!("{}/{BUCKET}/{prefix}", self.endpoint())
    }

    /// The request log so far (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join(format!("moto-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// Requests of `method` (`PUT`, `GET`, `HEAD`…) logged so far whose path starts with
    /// `/BUCKET/PATH`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} /{BUCKET}/{path}");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// Requests under a prefix (any method), for requests-per-object figures.
    pub fn count_all(&self, prefix: &str) -> usize {
        let needle = format!(" /{BUCKET}/{prefix}");
        let list = format!("prefix={prefix}");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle) || l.contains(&list))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn s3_env(c: &mut Command) {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
}

pub fn push_cmd(o: &Ostree, local: &Path, dest: &str, extra: &[&str]) -> Command {
    let mut c = o.command();
    s3_env(&mut c);
    c.arg(format!("--repo={}", path_str(local)))
        .arg("push")
        .args(extra)
        .arg(dest);
    c
}

pub fn push(o: &Ostree, local: &Path, dest: &str, refs: &[&str], extra: &[&str]) -> Run {
    let mut c = push_cmd(o, local, dest, extra);
    c.args(refs);
    let r = ostree_tests::bins::run_command("ours", c);
    assert_no_panic(&r);
    r
}

pub fn push_ok(o: &Ostree, local: &Path, dest: &str, refs: &[&str]) -> String {
    let r = push(o, local, dest, refs, &[]);
    assert!(r.success(), "push failed\n{}", r.describe());
    r.out()
}

/// Number in `"N objects uploaded"` of push's output.
pub fn uploaded(out: &str) -> usize {
    out.lines()
        .find_map(|l| {
            l.split_once(" objects uploaded")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no upload count in push output:\n{out}"))
}

/// A local archive repository with `main` committed from `tree`.
pub fn commit(o: &Ostree, repo: &Path, tree: &Path, subject: &str) -> String {
    commit_on(o, repo, "main", tree, subject)
}

/// Commit `tree` on `branch` of the archive repository `repo` (created when missing).
pub fn commit_on(o: &Ostree, repo: &Path, branch: &str, tree: &Path, subject: &str) -> String {
    if !repo.join("config").exists() {
        o.init(repo, "archive");
    }
    o.ok(
        repo,
        &[
            "commit",
            "-b",
            branch,
            "-s",
            subject,
            &format!("--tree=dir={}", path_str(tree)),
        ],
    )
}

/// The real ostree pulls `main` from the bucket over HTTP into a fresh repo, fscks it, and its
/// checkout equals ours of `rev` from `local`.
pub fn real_pull_matches(
    real: &Ostree,
    ours: &Ostree,
    dir: &Path,
    http: &str,
    local: &Path,
    rev: &str,
) {
    let name = format!("judge-{}", &rev[..8]);
    let judge = dir.join(&name);
    real.init(&judge, "archive");
    real.ok(
        &judge,
        &["remote", "add", "--no-gpg-verify", "bucket", http],
    );
    real.ok(&judge, &["pull", "bucket", "main"]);
    assert_eq!(real.rev_parse(&judge, "bucket:main").as_deref(), Some(rev));
    real.fsck_clean(&judge);
    let a = dir.join(format!("{name}-real"));
    let b = dir.join(format!("{name}-ours"));
    real.ok(&judge, &["checkout", "-U", rev, path_str(&a)]);
    ours.ok(local, &["checkout", "-U", rev, path_str(&b)]);
    assert_same_tree("real from bucket", &a, "ours local", &b, Compare::NO_MTIME);
}

pub fn objects_in(repo: &Path) -> usize {
    ostree_tests::fixtures::object_names(repo).len()
}

/// Wait until at least `n` object PUTs under `prefix` are logged (or panic after 60 s).
pub fn wait_for_puts(moto: &Moto, prefix: &str, n: usize) {
    let start = Instant::now();
    while moto.count("PUT", &format!("{prefix}/objects/")) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "push made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ostree CMD --repo=s3://…` with the test credentials.
pub fn on_bucket(o: &Ostree, url: &str, args: &[&str]) -> Run {
    let mut c = o.command();
    s3_env(&mut c);
    c.arg(format!("--repo={url}")).args(args);
    let r = ostree_tests::bins::run_command("ours", c);
    assert_no_panic(&r);
    r
}
