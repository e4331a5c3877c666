//! Transaction staging directories shared with the real ostree (`tmp/staging-<boot id>-*`): a
//! commit stopped before it completes (`OSTREE_REPO_TEST_ERROR=pre-commit`) leaves its
//! directory for the next transaction of the same boot, whichever binary runs it; a directory
//! of another boot is removed; every commit that completes is intact for both fscks.

use std::path::Path;

use ostree_tests::bins::{Ostree, both, path_str, repo_arg, run_command, scratch};
use ostree_tests::fixtures::make_small_tree;

const BOOT_A: &str = "3072029c-8b10-60d1-d31b-8422eeff9b42";
const BOOT_B: &str = "9f0c1e55-0d1e-4a8c-9d6c-0e3c2b7a1f00";

fn staging_dirs(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("staging-") && !n.ends_with("-lock"))
        .collect();
    v.sort();
    v
}

/// `commit -b main` of `tree` with `OSTREE_BOOTID=boot` (and the pre-commit hook if `stop`).
fn commit(o: &Ostree, repo: &Path, tree: &Path, boot: &str, stop: bool) -> bool {
    let mut c = o.command();
    c.env("OSTREE_BOOTID", boot);
    if stop {
        c.env("OSTREE_REPO_TEST_ERROR", "pre-commit");
    }
    c.args([
        &repo_arg(repo),
        "commit",
        "-b",
        "main",
        "-s",
        "s",
        path_str(tree),
    ]);
    let r = run_command(o.label, c);
    if stop {
        assert!(
            !r.success(),
            "[{}] the pre-commit hook did not stop it",
            o.label
        );
        assert!(
            r.err().contains("OSTREE_REPO_TEST_ERROR_PRE_COMMIT"),
            "[{}] {}",
            o.label,
            r.describe()
        );
    }
    r.success()
}

#[test]
fn staging_directories_are_shared_with_ostree() {
    let Some((ours, real)) = both() else { return };
    for (first, second) in [(&ours, &real), (&real, &ours)] {
        let dir = scratch("staging-");
        let (repo, tree) = (dir.path().join("repo"), dir.path().join("tree"));
        make_small_tree(&tree);
        first.init(&repo, "bare-user");
        let before = first.rev_parse(&repo, "main");
        assert_eq!(before, None);

        // Stopped before completing: nothing moved, a staging directory of boot A is left.
        commit(first, &repo, &tree, BOOT_A, true);
        assert_eq!(first.rev_parse(&repo, "main"), None);
        let left = staging_dirs(&repo);
        assert_eq!(left.len(), 1, "[{}] {left:?}", first.label);
        assert!(
            left[0].starts_with(&format!("staging-{BOOT_A}-")),
            "[{}] {left:?}",
            first.label
        );

        // The other binary, same boot: completes (reusing or not the directory left).
        assert!(commit(second, &repo, &tree, BOOT_A, false));
        let c1 = second.rev_parse(&repo, "main").expect("main");
        ours.fsck_clean(&repo);
        real.fsck_clean(&repo);

        // Stopped again by the first binary in boot A; then the second binary in boot B
        // removes that dead boot's directory and completes.
        std::fs::write(tree.join("new"), b"new\n").unwrap();
        commit(first, &repo, &tree, BOOT_A, true);
        assert_eq!(first.rev_parse(&repo, "main").as_deref(), Some(c1.as_str()));
        assert!(commit(second, &repo, &tree, BOOT_B, false));
        assert!(
            !staging_dirs(&repo)
                .iter()
                .any(|d| d.starts_with(&format!("staging-{BOOT_A}-"))),
            "[{} after {}] boot A's directory was kept: {:?}",
            second.label,
            first.label,
            staging_dirs(&repo)
        );
        let c2 = second.rev_parse(&repo, "main").expect("main");
        assert_ne!(c1, c2);
        ours.fsck_clean(&repo);
        real.fsck_clean(&repo);
        let ls = ours.ok(&repo, &["ls", "main", "/new"]);
        assert!(ls.contains("/new"), "{ls}");
    }
}
