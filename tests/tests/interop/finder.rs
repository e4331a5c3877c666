//! Collection-based remotes with the real ostree as the judge: a volume written by our
//! `create-usb` is read by the real libostree (its mount finder, through the
//! `repo-finder-mount` program of the ostree-tests package, and its `find-remotes --pull`);
//! a volume written by the real `create-usb` is found and pulled by our
//! `find-remotes --finders=mount --pull`, with GPG enforced; and both `find-remotes` print the
//! same report for the same repositories.

use std::path::{Path, PathBuf};

use ostree_tests::bins::{Ostree, Run, both, path_str, run_command, scratch};
use ostree_tests::fixtures::make_small_tree;

const APPS: &str = "org.example.Apps";
const KEY1: &str = "7FCA23D8472CDAFA";
/// The real libostree's mount finder over one directory (ostree-tests).
const REPO_FINDER_MOUNT: &str = "/usr/libexec/installed-tests/libostree/repo-finder-mount";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../signers/gpg/tests/data/gpghome")
}

fn key(name: &str) -> String {
    path_str(&keys_dir().join(name)).to_string()
}

/// A private copy of the test GnuPG home (gpg writes into it when the real ostree signs).
fn gpghome(dir: &Path) -> PathBuf {
    let h = dir.join("gpghome");
    if !h.exists() {
        std::fs::create_dir_all(&h).expect("mkdir");
        for f in ["pubring.gpg", "secring.gpg"] {
            std::fs::copy(keys_dir().join(f), h.join(f)).expect("copy key");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    h
}

/// A source repository with collection ID `org.example.Apps`, refs app1 and app2 signed with
/// test key 1 (by ours: pure-Rust signing needs no gpg-agent), a summary; then `local`, a
/// repository that pulled both from it through a remote `apps-remote` (by `puller`).
/// Returns (source, local, app1 commit, app2 commit).
fn sources(ours: &Ostree, puller: &Ostree, d: &Path) -> (PathBuf, PathBuf, String, String) {
    let apps = d.join("apps");
    ours.ok(
        &apps,
        &["init", "--mode=archive", &format!("--collection-id={APPS}")],
    );
    let tree = d.join("tree");
    make_small_tree(&tree);
    let home = format!("--gpg-homedir={}", path_str(&gpghome(d)));
    let sign = format!("--gpg-sign={KEY1}");
    let t = format!("--tree=dir={}", path_str(&tree));
    let c1 = ours.ok(
        &apps,
        &["commit", "-b", "app1", "-s", "one", &t, &home, &sign],
    );
    std::fs::write(tree.join("two"), b"two\n").expect("write");
    let c2 = ours.ok(
        &apps,
        &["commit", "-b", "app2", "-s", "two", &t, &home, &sign],
    );
    ours.ok(&apps, &["summary", "-u"]);

    let local = d.join("local");
    puller.init(&local, "archive");
    add_remote(puller, &local, "apps-remote", &apps, "key1.asc");
    puller.ok(&local, &["pull", "apps-remote", "app1", "app2"]);
    (apps, local, c1, c2)
}

fn add_remote(o: &Ostree, repo: &Path, name: &str, target: &Path, keyfile: &str) {
    o.ok(
        repo,
        &[
            "remote",
            "add",
            name,
            &format!("file://{}", path_str(target)),
            &format!("--collection-id={APPS}"),
            &format!("--gpg-import={}", key(keyfile)),
        ],
    );
}

/// `ostree create-usb MOUNT org.example.Apps app1 org.example.Apps app2 [EXTRA...]`.
fn create_usb(o: &Ostree, local: &Path, mount: &Path, extra: &[&str]) -> String {
    std::fs::create_dir_all(mount).expect("mkdir");
    let mut args = vec!["create-usb"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[path_str(mount), APPS, "app1", APPS, "app2"]);
    o.ok(local, &args)
}

/// Files, directories and symlinks of a volume, without object and scratch files (and the
/// lock files each implementation keeps its own way).
fn layout(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("below root")
                .display()
                .to_string();
            if ["objects", "tmp", "state", "extensions"]
                .iter()
                .any(|s| rel.ends_with(&format!("/{s}")) || rel.contains(&format!("/{s}/")))
                || rel.ends_with(".lock")
            {
                continue;
            }
            let ft = e.file_type().expect("file type");
            if ft.is_symlink() {
                let t = std::fs::read_link(&p).expect("readlink");
                out.push(format!("l {rel} -> {}", t.display()));
            } else if ft.is_dir() {
                out.push(format!("d {rel}"));
                walk(root, &p, out);
            } else {
                let content = if rel.contains("/refs/") {
                    std::fs::read_to_string(&p).unwrap_or_default()
                } else {
                    String::new()
                };
                out.push(format!("f {rel} {}", content.trim()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn run_env(o: &Ostree, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = o.command();
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args);
    run_command(o.label, c)
}

/// Our `create-usb` writes what the real `create-usb` writes (same refs under
/// `refs/mirrors`, same `repos.d` links, same report), and the real libostree finds and pulls
/// the refs from it, verifying their signatures.
#[test]
fn create_usb_ours_is_found_and_pulled_by_real() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("finder-ours-vol");
    let (_, local, c1, c2) = sources(&ours, &ours, d.path());

    // Default place and a custom one (twice: ostree adds a second link then).
    let out_ours = create_usb(&ours, &local, &d.path().join("vol-ours"), &[]);
    let out_real = create_usb(&real, &local, &d.path().join("vol-real"), &[]);
    assert_eq!(
        out_ours.replace("/vol-ours", "/vol"),
        out_real.replace("/vol-real", "/vol"),
        "create-usb reports differ"
    );
    for _ in 0..2 {
        create_usb(
            &ours,
            &local,
            &d.path().join("vol-ours"),
            &["--destination-repo=custom/dir"],
        );
        create_usb(
            &real,
            &local,
            &d.path().join("vol-real"),
            &["--destination-repo=custom/dir"],
        );
    }
    let (lo, lr) = (
        layout(&d.path().join("vol-ours")),
        layout(&d.path().join("vol-real")),
    );
    assert_eq!(lo, lr, "volume layouts differ");
    assert!(
        lo.contains(&format!("f .ostree/repo/refs/mirrors/{APPS}/app1 {c1}")),
        "{lo:#?}"
    );
    assert!(
        lo.contains(&"l .ostree/repos.d/01-generated -> ../../custom/dir".to_string()),
        "{lo:#?}"
    );

    let usb = d.path().join("vol-ours");
    let usb_repo = usb.join(".ostree/repo");
    real.fsck_clean(&usb_repo);
    real.fsck_clean(&usb.join("custom/dir"));
    let refs = real.ok(&usb_repo, &["refs", "--collections"]);
    assert!(refs.contains(&format!("({APPS}, app1)")), "{refs}");
    assert!(refs.contains(&format!("({APPS}, app2)")), "{refs}");
    let summary = real.ok(&usb_repo, &["summary", "--view"]);
    assert!(summary.contains(&format!("({APPS}, app2)")), "{summary}");

    // The real mount finder over our volume.
    let finder_repo = d.path().join("finder-repo");
    real.init(&finder_repo, "archive");
    add_remote(
        &real,
        &finder_repo,
        "remote1",
        &d.path().join("nowhere"),
        "key1.asc",
    );
    if Path::new(REPO_FINDER_MOUNT).exists() {
        let mut c = std::process::Command::new(REPO_FINDER_MOUNT);
        c.args([
            path_str(&finder_repo),
            path_str(&usb),
            APPS,
            "app1",
            APPS,
            "app2",
        ]);
        let r = run_command("repo-finder-mount", c);
        assert!(r.success(), "{}", r.describe());
        let usb_real = std::fs::canonicalize(&usb).expect("realpath");
        // `.ostree/repos.d/*` come before `.ostree/repo`: the link to custom/dir wins.
        let uri = format!("file://{}/custom/dir", path_str(&usb_real));
        let name = format!("{}_remote1.trustedkeys.gpg", uri_escape(&uri));
        for (refname, c) in [("app1", &c1), ("app2", &c2)] {
            let line = format!("0 {name} {APPS} {refname} {c}\n");
            assert!(
                r.out().contains(&line),
                "missing {line:?}\n{}",
                r.describe()
            );
        }
    }

    // The real find-remotes --pull, through a configured remote pointing at the volume.
    let client = d.path().join("client");
    real.init(&client, "archive");
    add_remote(&real, &client, "usbremote", &usb_repo, "key1.asc");
    let out = real.ok(
        &client,
        &[
            "find-remotes",
            "--finders=config",
            "--pull",
            APPS,
            "app1",
            APPS,
            "app2",
        ],
    );
    assert!(out.contains("2/2 refs were found."), "{out}");
    assert!(out.contains("Pulled 2/2 refs successfully."), "{out}");
    assert_eq!(real.rev_parse(&client, "usbremote:app1"), Some(c1));
    assert_eq!(real.rev_parse(&client, "usbremote:app2"), Some(c2));
    real.fsck_clean(&client);
}

/// `g_uri_escape_string (s, NULL, FALSE)` with `%` read as `_` (how ostree names the
/// dynamic remote of a repository on a mount).
fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("_{b:02X}")
            }
        })
        .collect()
}

/// The real `create-usb` writes a volume; our mount finder (pointed at it with
/// `OSTREE_RS_MOUNT_ROOTS`) finds the refs there under a dynamic remote named as ostree names
/// it, and `--pull` verifies each commit with the keyring of the configured remote for the
/// collection: the right key pulls, the wrong one stores no ref.
#[test]
fn create_usb_real_is_found_and_pulled_by_ours() {
    let Some((ours, real)) = both() else { return };
    if std::fs::canonicalize(&ours.bin).ok() == std::fs::canonicalize(&real.bin).ok() {
        // OSTREE_RS_BIN=/usr/bin/ostree: its mount finder only sees real mounts.
        eprintln!("skipped: the real ostree's mount finder cannot be pointed at a directory");
        return;
    }
    let d = scratch("finder-real-vol");
    let (_, local, c1, c2) = sources(&ours, &real, d.path());
    let usb = d.path().join("usb");
    create_usb(&real, &local, &usb, &[]);
    let usb_real = std::fs::canonicalize(&usb).expect("realpath");
    let env = [("OSTREE_RS_MOUNT_ROOTS", path_str(&usb))];

    let client = d.path().join("client");
    ours.init(&client, "archive");
    add_remote(
        &ours,
        &client,
        "apps-remote",
        &d.path().join("nowhere"),
        "key1.asc",
    );
    let repo = format!("--repo={}", path_str(&client));
    let find = [
        repo.as_str(),
        "find-remotes",
        "--finders=mount",
        APPS,
        "app1",
        APPS,
        "app2",
    ];
    let r = run_env(&ours, &env, &find);
    assert!(r.success(), "{}", r.describe());
    let out = r.out();
    for want in [
        format!("Result 0: file://{}/.ostree/repo\n", path_str(&usb_real)),
        " - Finder: OstreeRepoFinderMount\n".to_string(),
        " - Keyring: apps-remote.trustedkeys.gpg\n".to_string(),
        " - Priority: 50\n".to_string(),
        format!("    - ({APPS}, app1) = {c1}\n"),
        format!("    - ({APPS}, app2) = {c2}\n"),
        "2/2 refs were found.\n".to_string(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in\n{out}");
    }

    let mut pull = find.to_vec();
    pull.insert(3, "--pull");
    let r = run_env(&ours, &env, &pull);
    assert!(r.success(), "{}", r.describe());
    assert!(
        r.out().contains("Pulled 2/2 refs successfully."),
        "{}",
        r.describe()
    );
    // Refs land under the configured remote the dynamic one stands for.
    assert_eq!(
        real.rev_parse(&client, "apps-remote:app1"),
        Some(c1.clone())
    );
    assert_eq!(real.rev_parse(&client, "apps-remote:app2"), Some(c2));
    real.fsck_clean(&client);

    // The wrong key: found, but not pulled.
    let wrong = d.path().join("wrong");
    ours.init(&wrong, "archive");
    add_remote(
        &ours,
        &wrong,
        "apps-remote",
        &d.path().join("nowhere"),
        "key2.asc",
    );
    let repo = format!("--repo={}", path_str(&wrong));
    let r = run_env(
        &ours,
        &env,
        &[
            &repo,
            "find-remotes",
            "--finders=mount",
            "--pull",
            APPS,
            "app1",
        ],
    );
    assert!(!r.success(), "{}", r.describe());
    assert!(
        r.err().contains(&format!(
            "Failed to pull some refs from the remotes: ({APPS}, app1)"
        )),
        "{}",
        r.describe()
    );
    assert_eq!(real.rev_parse(&wrong, "apps-remote:app1"), None);

    // No remote configured for the collection: no keyring, so no result.
    let bare = d.path().join("bare");
    ours.init(&bare, "archive");
    let repo = format!("--repo={}", path_str(&bare));
    let r = run_env(
        &ours,
        &env,
        &[&repo, "find-remotes", "--finders=mount", APPS, "app1"],
    );
    assert!(r.success(), "{}", r.describe());
    assert_eq!(r.out(), "No results.\n");
}

/// Same repositories, same `find-remotes` report from both (result order, ref order, keyrings,
/// summary times, refs not found), then the same pulls.
#[test]
fn find_remotes_report_matches_real() {
    let Some((ours, real)) = both() else { return };
    let d = scratch("finder-report");
    let (apps, _, c1, _) = sources(&ours, &ours, d.path());
    // A stale mirror of the apps collection: its app1 is older than the source's.
    let mirror = d.path().join("mirror");
    ours.init(&mirror, "archive");
    add_remote(&ours, &mirror, "apps-remote", &apps, "key1.asc");
    ours.ok(
        &mirror,
        &["pull", "--mirror", "apps-remote", "app1", "app2"],
    );
    ours.ok(&mirror, &["summary", "-u"]);
    let tree = d.path().join("tree");
    std::fs::write(tree.join("three"), b"three\n").expect("write");
    // A later timestamp than the first commit.
    let c3 = ours.ok(
        &apps,
        &[
            "commit",
            "-b",
            "app1",
            "-s",
            "three",
            &format!("--tree=dir={}", path_str(&tree)),
            &format!("--gpg-homedir={}", path_str(&gpghome(d.path()))),
            &format!("--gpg-sign={KEY1}"),
            "--timestamp=2030-01-01T00:00:00Z",
        ],
    );
    assert_ne!(c3, c1);
    ours.ok(&apps, &["summary", "-u"]);

    for side in ["ours", "real"] {
        let client = d.path().join(format!("client-{side}"));
        ours.init(&client, "archive");
        add_remote(&ours, &client, "apps-remote", &apps, "key1.asc");
        add_remote(&ours, &client, "apps-mirror", &mirror, "key1.asc");
    }
    let (co, cr) = (d.path().join("client-ours"), d.path().join("client-real"));
    for refs in [
        vec![APPS, "app1"],
        vec![APPS, "app2"],
        vec![
            APPS,
            "app1",
            APPS,
            "app2",
            APPS,
            "nope",
            "org.example.Other",
            "x",
        ],
    ] {
        let mut args = vec!["find-remotes", "--finders=config"];
        args.extend_from_slice(&refs);
        let o = ours.ok(&co, &args);
        let r = real.ok(&cr, &args);
        assert_eq!(o, r, "find-remotes {refs:?}: ours vs real");
    }
    let args = [
        "find-remotes",
        "--finders=config",
        "--pull",
        APPS,
        "app1",
        APPS,
        "app2",
    ];
    assert_eq!(
        ours.ok(&co, &args),
        real.ok(&cr, &args),
        "find-remotes --pull"
    );
    for r in ["apps-remote:app1", "apps-remote:app2", "apps-mirror:app2"] {
        assert_eq!(ours.rev_parse(&co, r), real.rev_parse(&cr, r), "{r}");
    }
    assert_eq!(real.rev_parse(&co, "apps-remote:app1"), Some(c3));
    real.fsck_clean(&co);
}
