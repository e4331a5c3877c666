//! Hostile repos: dirtree entries named `..`, `.`, ``, `/`, containing `/`, absolute,
//! duplicated, or a symlink and a directory under one name. Checking them out must fail and
//! must write nothing outside the target directory.

use std::path::Path;

use ostree_tests::bins::{Ostree, ours, path_str, real, scratch};
use ostree_tests::fsutil::list_paths;
use ostree_tests::hostile::{plant_base, plant_cases, root_escape_paths};

fn hostile(mode: &str) {
    let ours = ours();
    // the base tree is committed by the real ostree when present (else by ours)
    let builder: Ostree = real().unwrap_or_else(|| ours.clone());
    let tmp = scratch("hostile-");
    let repo = tmp.path().join("repo");
    builder.init(&repo, mode);
    let base = plant_base(&builder, &repo, tmp.path());
    let sandbox = tmp.path().join("sandbox");
    let tag = format!("{}-{}", std::process::id(), mode);
    let cases = plant_cases(&repo, &base, &sandbox, &tag);
    let mut failures = Vec::new();
    for case in &cases {
        let _ = std::fs::remove_dir_all(&sandbox);
        std::fs::create_dir_all(sandbox.join("outside")).expect("mkdir");
        std::fs::create_dir_all(sandbox.join("inner")).expect("mkdir");
        let target = sandbox.join("inner/co");
        let before = list_paths(&sandbox);
        let r = ours.run_repo(&repo, &["checkout", &case.branch, path_str(&target)]);
        ostree_tests::bins::assert_no_panic(&r);
        let outside_target = |v: Vec<std::path::PathBuf>| -> Vec<_> {
            v.into_iter()
                .filter(|p| !p.starts_with(Path::new("inner/co")))
                .collect()
        };
        let before = outside_target(before);
        let after = outside_target(list_paths(&sandbox));
        let mut problems = Vec::new();
        if r.success() {
            problems.push("checkout succeeded".to_string());
        }
        if after != before {
            problems.push(format!("wrote outside the target: {before:?} -> {after:?}"));
        }
        for p in root_escape_paths(&tag) {
            if p.symlink_metadata().is_ok() {
                problems.push(format!("wrote {}", p.display()));
                let _ = std::fs::remove_dir_all(&p);
                let _ = std::fs::remove_file(&p);
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({}): {}\n{}",
                case.branch,
                case.what,
                problems.join("; "),
                r.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "hostile checkouts in {mode}:\n{}",
        failures.join("\n\n")
    );
}
crate::per_mode!(hostile);
