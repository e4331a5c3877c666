//! The spec vectors committed by our binary give the checksums the real ostree gives.

use ostree_tests::bins::{both, scratch};
use ostree_tests::fixtures::{commit_vectors, expected_vectors, make_vector_trees};

fn vectors(mode: &str) {
    let Some((ours, real)) = both() else { return };
    let tmp = scratch("vectors-");
    let trees = tmp.path().join("trees");
    make_vector_trees(&trees);
    let repo = tmp.path().join(format!("repo-{mode}"));
    ours.init(&repo, mode);
    let (v1, v2, v3) = commit_vectors(&ours, &repo, &trees);
    let (e1, e2, e3) = expected_vectors(mode);
    assert_eq!(
        v1, e1,
        "v1 commit checksum in {mode} (what `commit` printed)"
    );
    assert_eq!(v2, e2, "v2 commit checksum in {mode}");
    assert_eq!(v3, e3, "v3 commit checksum in {mode}");
    // The refs point there, for both readers.
    for (r, e) in [("v1", e1), ("v2", e2), ("v3", e3)] {
        assert_eq!(
            ours.rev_parse(&repo, r).as_deref(),
            Some(e),
            "ours rev-parse {r}"
        );
        assert_eq!(
            real.rev_parse(&repo, r).as_deref(),
            Some(e),
            "real rev-parse {r} on our repo"
        );
    }
    // The real ostree accepts the repo we wrote, and ours accepts it too.
    real.fsck_clean(&repo);
    ours.fsck_clean(&repo);
    // The real ostree can read our v3 back in full (it checks every object it reads).
    let co = tmp.path().join("co");
    real.ok(
        &repo,
        &["checkout", "v3", ostree_tests::bins::path_str(&co)],
    );
    assert_eq!(
        std::fs::read(co.join("a/b/data")).expect("read"),
        vec![b'x'; 100]
    );
}
crate::per_mode!(vectors);
