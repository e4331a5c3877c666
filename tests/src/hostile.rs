//! Hand-crafted hostile repositories: dirtree objects whose entry names try to escape the
//! checkout target (`..`, `.`, empty, `/`, names containing `/`, absolute names, duplicates,
//! a symlink and a directory under one name), written straight into a repo with ostree-core's
//! encoders (which encode whatever they are given; only the decoders validate).

use std::fs;
use std::path::Path;

use ostree_core::Checksum;
use ostree_core::objects::{
    Commit, DirMeta, DirTree, FileMeta, S_IFDIR, S_IFLNK, S_IFREG, content_checksum,
};

use crate::bins::{Ostree, path_str};
use crate::fsutil::{set_mode, symlink, write_file};

/// Content of the regular file every hostile tree tries to write somewhere.
pub const PAYLOAD: &[u8] = b"escaped\n";
/// Target of the symlink used by the symlink+directory trick, relative to the checkout root:
/// `<sandbox>/inner/co/<link>` → `<sandbox>/outside`.
pub const LINK_TARGET: &str = "../../outside";

/// The legitimate objects a hostile tree can point at (all present in the repo).
#[derive(Debug, Clone)]
pub struct Base {
    /// Regular file object with content [`PAYLOAD`], mode 0644, owned by 0:0, no xattrs.
    pub file: Checksum,
    /// Symlink object to [`LINK_TARGET`].
    pub link: Checksum,
    /// Dirmeta 0:0 0755, no xattrs.
    pub meta: Checksum,
    /// The empty dirtree.
    pub empty_tree: Checksum,
}

/// Commit a legitimate base tree with `builder` so the payload objects exist in `repo`
/// (already initialised), and return their checksums.
pub fn plant_base(builder: &Ostree, repo: &Path, scratch: &Path) -> Base {
    let t = scratch.join("base-tree");
    write_file(&t.join("payload"), PAYLOAD, 0o644);
    symlink(LINK_TARGET, &t.join("sym"));
    fs::create_dir_all(t.join("emptydir")).expect("mkdir");
    set_mode(&t.join("emptydir"), 0o755);
    set_mode(&t, 0o755);
    builder.ok(
        repo,
        &[
            "commit",
            "--no-xattrs",
            "--owner-uid=0",
            "--owner-gid=0",
            "-b",
            "base",
            "-s",
            "base",
            path_str(&t),
        ],
    );
    let file = content_checksum(
        &FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o644,
            symlink_target: None,
            xattrs: vec![],
        },
        PAYLOAD,
    )
    .expect("checksum");
    let link = content_checksum(
        &FileMeta {
            uid: 0,
            gid: 0,
            mode: S_IFLNK | 0o777,
            symlink_target: Some(LINK_TARGET.to_string()),
            xattrs: vec![],
        },
        &b""[..],
    )
    .expect("checksum");
    let meta = DirMeta {
        uid: 0,
        gid: 0,
        mode: S_IFDIR | 0o755,
        xattrs: vec![],
    }
    .checksum();
    let empty_tree = DirTree::default().checksum();
    let objs = crate::fixtures::object_names(repo);
    for (c, what) in [(&file, "file"), (&link, "symlink")] {
        assert!(
            objs.iter().any(|o| o.starts_with(&c.to_hex())),
            "base {what} object {} not found in {} after commit by {}",
            c.to_hex(),
            repo.display(),
            builder.label
        );
    }
    Base {
        file,
        link,
        meta,
        empty_tree,
    }
}

/// Write a metadata object (`dirtree`, `dirmeta`, `commit`) into the repo's object store as is
/// (metadata objects are stored uncompressed in every mode). Returns its checksum.
pub fn write_metadata(repo: &Path, ext: &str, bytes: &[u8]) -> Checksum {
    let c = Checksum::of(bytes);
    let hex = c.to_hex();
    let dir = repo.join("objects").join(&hex[..2]);
    fs::create_dir_all(&dir).expect("mkdir objects/xx");
    fs::write(dir.join(format!("{}.{ext}", &hex[2..])), bytes).expect("write object");
    c
}

/// Write a dirtree object (entries encoded in the order given, unvalidated).
pub fn write_tree(repo: &Path, t: &DirTree) -> Checksum {
    write_metadata(repo, "dirtree", &t.to_bytes())
}

/// Write a commit whose root is `(tree, meta)` and point `refs/heads/<branch>` at it.
pub fn write_commit(repo: &Path, branch: &str, tree: Checksum, meta: Checksum) -> Checksum {
    let commit = Commit {
        subject: format!("hostile {branch}"),
        timestamp: 1_609_459_200,
        root_tree: tree,
        root_meta: meta,
        ..Default::default()
    };
    let c = write_metadata(repo, "commit", &commit.to_bytes());
    let r = repo.join("refs/heads").join(branch);
    fs::create_dir_all(r.parent().expect("parent")).expect("mkdir refs");
    fs::write(&r, format!("{}\n", c.to_hex())).expect("write ref");
    c
}

/// One hostile case: a branch name and a description.
#[derive(Debug, Clone)]
pub struct Case {
    /// Branch the hostile commit is on.
    pub branch: String,
    /// What it tries.
    pub what: String,
}

/// Plant every hostile case into `repo` (which holds [`plant_base`]'s objects).
///
/// `sandbox` is the directory whose contents must not change (the checkout target is
/// `<sandbox>/inner/co`); `tag` makes payload names unique, so an escape to `/` is detectable.
pub fn plant_cases(repo: &Path, base: &Base, sandbox: &Path, tag: &str) -> Vec<Case> {
    let payload_name = format!("ostree-hostile-{tag}");
    let payload_tree = write_tree(
        repo,
        &DirTree {
            files: vec![(payload_name.clone(), base.file)],
            dirs: vec![(format!("{payload_name}-dir"), base.empty_tree, base.meta)],
        },
    );
    let m = base.meta;
    let abs = format!("{}/abs-escape", path_str(sandbox));
    let dir = |name: &str| DirTree {
        files: vec![],
        dirs: vec![(name.to_string(), payload_tree, m)],
    };
    let file = |name: &str| DirTree {
        files: vec![(name.to_string(), base.file)],
        dirs: vec![],
    };
    let mut cases: Vec<(&str, String, DirTree)> = vec![
        ("dotdot-dir", "directory named ..".into(), dir("..")),
        ("dot-dir", "directory named .".into(), dir(".")),
        ("empty-dir", "directory with an empty name".into(), dir("")),
        ("slash-dir", "directory named /".into(), dir("/")),
        (
            "relpath-dir",
            "directory named ../../outside-escape".into(),
            dir("../../outside-escape"),
        ),
        ("abspath-dir", format!("directory named {abs}"), dir(&abs)),
        ("dotdot-file", "file named ..".into(), file("..")),
        ("dot-file", "file named .".into(), file(".")),
        ("empty-file", "file with an empty name".into(), file("")),
        (
            "relpath-file",
            "file named ../escaped-file".into(),
            file("../escaped-file"),
        ),
        ("abspath-file", format!("file named {abs}"), file(&abs)),
        (
            "dup-file",
            "two files named dup".into(),
            DirTree {
                files: vec![("dup".into(), base.file), ("dup".into(), base.link)],
                dirs: vec![],
            },
        ),
        (
            "dup-dir",
            "two directories named dup".into(),
            DirTree {
                files: vec![],
                dirs: vec![
                    ("dup".into(), payload_tree, m),
                    ("dup".into(), payload_tree, m),
                ],
            },
        ),
        (
            "symlink-then-dir",
            format!("a symlink to {LINK_TARGET} and a directory under the same name"),
            DirTree {
                files: vec![("same".into(), base.link)],
                dirs: vec![("same".into(), payload_tree, m)],
            },
        ),
    ];
    // two levels down: ok/../.. escapes to <sandbox>/inner
    let up = write_tree(repo, &dir(".."));
    let up2 = write_tree(
        repo,
        &DirTree {
            files: vec![],
            dirs: vec![("..".into(), up, m)],
        },
    );
    cases.push((
        "nested-dotdot",
        "ok/../.. two levels below the root".into(),
        DirTree {
            files: vec![],
            dirs: vec![("ok".into(), up2, m)],
        },
    ));
    cases
        .into_iter()
        .map(|(branch, what, tree)| {
            let t = write_tree(repo, &tree);
            write_commit(repo, &format!("hostile/{branch}"), t, m);
            Case {
                branch: format!("hostile/{branch}"),
                what,
            }
        })
        .collect()
}

/// Absolute paths a naive implementation could have written outside the sandbox.
pub fn root_escape_paths(tag: &str) -> Vec<std::path::PathBuf> {
    let n = format!("ostree-hostile-{tag}");
    vec![
        Path::new("/").join(&n),
        Path::new("/").join(format!("{n}-dir")),
    ]
}
