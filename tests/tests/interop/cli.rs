//! CLI-level behaviour: wrong `--repo` values give a clear error and create nothing;
//! `--repo` is accepted before and after the subcommand.

use ostree_tests::bins::{ours, path_str, repo_arg, scratch};
use ostree_tests::fsutil::list_paths;

#[test]
fn wrong_repo() {
    let o = ours();
    let tmp = scratch("wrongrepo-");
    let empty = tmp.path().join("empty-dir");
    std::fs::create_dir(&empty).expect("mkdir");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a repo\n").expect("write");
    let missing = tmp.path().join("does-not-exist");
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::write(tree.join("f"), "f\n").expect("write");
    let before = list_paths(tmp.path());
    for repo in [&missing, &empty, &file] {
        for args in [
            vec!["refs"],
            vec!["rev-parse", "main"],
            vec!["log", "main"],
            vec!["fsck"],
            vec!["ls", "main"],
            vec!["checkout", "main", path_str(&tmp.path().join("co"))],
            vec!["commit", "-b", "main", "-s", "x", path_str(&tree)],
        ] {
            let r = o.fails(repo, &args);
            let err = r.err();
            assert!(
                err.contains("error"),
                "`--repo={}` with {:?}: expected an `error: ...` message on stderr\n{}",
                repo.display(),
                args,
                r.describe()
            );
        }
    }
    assert_eq!(
        list_paths(tmp.path()),
        before,
        "a failed command created or removed files"
    );
}

#[test]
fn repo_option_position() {
    let o = ours();
    let tmp = scratch("repopos-");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let r = o.run(&[repo_arg(&a), "init".into(), "--mode=archive".into()]);
    assert!(r.success(), "{}", r.describe());
    let r = o.run(&["init".to_string(), repo_arg(&b), "--mode=archive".into()]);
    assert!(r.success(), "{}", r.describe());
    for repo in [&a, &b] {
        let cfg = std::fs::read_to_string(repo.join("config")).expect("config written");
        assert!(
            cfg.contains("mode=archive"),
            "config of {}:\n{cfg}",
            repo.display()
        );
        o.ok(repo, &["refs"]);
    }
}
