//! Shared test helpers: the v1/v3 vector objects (as in /work/shared/spec/vectors), repositories
//! made by the real ostree, and a comparable listing of directories.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use ostree_backend_fs::FsStore;
use ostree_core::gvariant::Variant;
use ostree_core::objects::{
    Commit, DirMeta, DirTree, FileMeta, Metadata, S_IFDIR, S_IFLNK, S_IFREG,
};
use ostree_core::store::{ContentSource, ObjectWrite, OpenOptions, RepoMode};
use ostree_core::{Checksum, ObjectKey, ObjectType};

pub const V1: &str = "dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f";
pub const V2: &str = "b03701c9a56afea1f3ea8d38d2b041e8dd19859a691e471e747e0717b8907376";
pub const V3: &str = "748d8d15a88624beb167b5f3aa5caa317914b3a4d096380aaa4705011c05444c";
pub const V3_BUO: &str = "7531d04bcffede9595c0e0dab1bb5121de6863fabf7f3d5ac34a60ca64210a2b";
pub const TS: u64 = 1609459200;

pub const MODES: [RepoMode; 4] = [
    RepoMode::Archive,
    RepoMode::Bare,
    RepoMode::BareUser,
    RepoMode::BareUserOnly,
];

pub fn h(s: &str) -> Checksum {
    Checksum::from_hex(s).unwrap()
}

/// One object to put: key and a way to make its write (ObjectWrite is not Clone).
pub struct Obj {
    pub key: ObjectKey,
    pub meta_bytes: Option<Vec<u8>>,
    pub file: Option<(FileMeta, Vec<u8>)>,
}

impl Obj {
    pub fn write(&self) -> ObjectWrite {
        match (&self.meta_bytes, &self.file) {
            (Some(b), _) => ObjectWrite::Meta(Bytes::from(b.clone())),
            (None, Some((m, c))) => ObjectWrite::Content {
                meta: m.clone(),
                size: if m.is_symlink() { 0 } else { c.len() as u64 },
                source: ContentSource::Bytes(Bytes::from(c.clone())),
            },
            _ => unreachable!(),
        }
    }
}

pub fn file(mode: u32, content: &[u8], xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> (Checksum, Obj) {
    let meta = FileMeta {
        uid: 0,
        gid: 0,
        mode: S_IFREG | mode,
        symlink_target: None,
        xattrs,
    };
    let c = ostree_core::objects::content_checksum(&meta, content).unwrap();
    (
        c,
        Obj {
            key: ObjectKey::new(c, ObjectType::File),
            meta_bytes: None,
            file: Some((meta, content.to_vec())),
        },
    )
}

pub fn link(target: &str) -> (Checksum, Obj) {
    let meta = FileMeta {
        uid: 0,
        gid: 0,
        mode: S_IFLNK | 0o777,
        symlink_target: Some(target.into()),
        xattrs: vec![],
    };
    let c = ostree_core::objects::content_checksum(&meta, std::io::empty()).unwrap();
    (
        c,
        Obj {
            key: ObjectKey::new(c, ObjectType::File),
            meta_bytes: None,
            file: Some((meta, vec![])),
        },
    )
}

pub fn meta_obj(ty: ObjectType, bytes: Vec<u8>) -> (Checksum, Obj) {
    let c = Checksum::of(&bytes);
    (
        c,
        Obj {
            key: ObjectKey::new(c, ty),
            meta_bytes: Some(bytes),
            file: None,
        },
    )
}

fn dirmeta(mode: u32) -> (Checksum, Obj) {
    meta_obj(
        ObjectType::DirMeta,
        DirMeta {
            uid: 0,
            gid: 0,
            mode: S_IFDIR | mode,
            xattrs: vec![],
        }
        .to_bytes(),
    )
}

/// Objects of v1 (commit last).
pub fn v1_objects() -> Vec<Obj> {
    let (hello, o1) = file(0o644, b"hello world\n", vec![]);
    let (run, o2) = file(0o755, b"#!/bin/sh\necho hi\n", vec![]);
    let (lnk, o3) = link("hello.txt");
    let (empty, o4) = meta_obj(ObjectType::DirTree, DirTree::default().to_bytes());
    let (dm, o5) = dirmeta(0o755);
    let root = DirTree {
        files: vec![
            ("hello.txt".into(), hello),
            ("link".into(), lnk),
            ("run.sh".into(), run),
        ],
        dirs: vec![("emptydir".into(), empty, dm)],
    };
    let (rt, o6) = meta_obj(ObjectType::DirTree, root.to_bytes());
    let commit = Commit {
        subject: "v1 subject".into(),
        body: "v1 body".into(),
        timestamp: TS,
        root_tree: rt,
        root_meta: dm,
        ..Default::default()
    };
    let (cc, o7) = meta_obj(ObjectType::Commit, commit.to_bytes());
    assert_eq!(cc.to_hex(), V1);
    vec![o1, o2, o3, o4, o5, o6, o7]
}

/// Objects of v3 (not including v1's); `bare_user_only` drops the xattr as that mode does.
pub fn v3_objects(bare_user_only: bool) -> Vec<Obj> {
    let xattrs = if bare_user_only {
        vec![]
    } else {
        vec![(b"user.test".to_vec(), b"hello".to_vec())]
    };
    let (data, o1) = file(0o640, &[b'x'; 100], xattrs);
    let (empty, o2) = file(0o600, b"", vec![]);
    let (abs, o3) = link("/usr/bin/env");
    let (dm755, o4) = dirmeta(0o755);
    let (dm700, o5) = dirmeta(0o700);
    let (b, o6) = meta_obj(
        ObjectType::DirTree,
        DirTree {
            files: vec![("data".into(), data)],
            dirs: vec![],
        }
        .to_bytes(),
    );
    let (a, o7) = meta_obj(
        ObjectType::DirTree,
        DirTree {
            files: vec![("empty".into(), empty)],
            dirs: vec![("b".into(), b, dm755)],
        }
        .to_bytes(),
    );
    let (z, o8) = meta_obj(
        ObjectType::DirTree,
        DirTree {
            files: vec![("abs-link".into(), abs)],
            dirs: vec![],
        }
        .to_bytes(),
    );
    let (root, o9) = meta_obj(
        ObjectType::DirTree,
        DirTree {
            files: vec![],
            dirs: vec![("a".into(), a, dm700), ("z".into(), z, dm755)],
        }
        .to_bytes(),
    );
    let mut md = Metadata::new();
    md.insert("version", Variant::Str("3.0".into()));
    md.insert("ostree.ref-binding", Variant::str_array(&["v3"]));
    let commit = Commit {
        metadata: md,
        parent: Some(h(V1)),
        subject: "v3".into(),
        body: String::new(),
        timestamp: TS,
        root_tree: root,
        root_meta: dm755,
        related: vec![],
    };
    let (cc, o10) = meta_obj(ObjectType::Commit, commit.to_bytes());
    assert_eq!(cc.to_hex(), if bare_user_only { V3_BUO } else { V3 });
    vec![o1, o2, o3, o4, o5, o6, o7, o8, o9, o10]
}

pub fn create_opts(mode: RepoMode) -> OpenOptions {
    OpenOptions {
        create: Some(mode),
        fsync: None,
    }
}

pub async fn new_repo(dir: &Path, mode: RepoMode) -> FsStore {
    FsStore::open(dir, create_opts(mode)).await.unwrap()
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn ostree(repo: &Path, args: &[&str]) -> String {
    run(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args))
}

/// Build the vector trees and a repository of `mode` with real ostree holding v1 and v3 (and
/// v2 with `with_v2`), with refs `v1`, `v3` (`v2`). Returns the repo path.
pub fn reference_repo(dir: &Path, mode: RepoMode, with_v2: bool) -> PathBuf {
    let script = r#"
set -euo pipefail
export LC_ALL=C
umask 022
mkdir -p trees
T=trees/v1
mkdir -p $T/emptydir
printf 'hello world\n' > $T/hello.txt; chmod 0644 $T/hello.txt
printf '#!/bin/sh\necho hi\n' > $T/run.sh; chmod 0755 $T/run.sh
ln -s hello.txt $T/link
chmod 0755 $T $T/emptydir
mkdir -p trees/v2; chmod 0755 trees/v2
T=trees/v3
mkdir -p $T/a/b $T/z
printf '' > $T/a/empty; chmod 0600 $T/a/empty
printf 'x%.0s' $(seq 1 100) > $T/a/b/data; chmod 0640 $T/a/b/data
ln -s /usr/bin/env $T/z/abs-link
chmod 0700 $T/a; chmod 0755 $T $T/a/b $T/z
setfattr -n user.test -v hello $T/a/b/data
R=repo
ostree --repo=$R init --mode=$MODE
TS='2021-01-01T00:00:00Z'
ostree --repo=$R commit --no-xattrs --owner-uid=0 --owner-gid=0 --timestamp="$TS" --no-bindings \
   -b v1 -s 'v1 subject' -m 'v1 body' trees/v1 > v1.commit
if [ "$WITH_V2" = 1 ]; then
ostree --repo=$R commit --no-xattrs --owner-uid=0 --owner-gid=0 --timestamp="$TS" --no-bindings \
   --parent=none -b v2 -s '' trees/v2 > /dev/null
fi
ostree --repo=$R commit --owner-uid=0 --owner-gid=0 --timestamp="$TS" \
   --parent=$(cat v1.commit) --add-metadata-string=version=3.0 -b v3 -s 'v3' trees/v3 > /dev/null
"#;
    run(Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("MODE", mode.name())
        .env("WITH_V2", if with_v2 { "1" } else { "0" }));
    dir.join("repo")
}

/// Everything observable about one filesystem entry, for comparisons.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Entry {
    pub kind: char,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub data: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub mtime: Option<i64>,
}

pub fn xattrs_of(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap_or(0);
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        out.push((name.to_vec(), v[..len].to_vec()));
    }
    out.sort();
    out
}

/// Map of relative path → entry for every file under `root` (directories included, without
/// data). `with_mtime` records mtimes of regular files.
pub fn snapshot(root: &Path, with_mtime: bool) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, rel: &Path, with_mtime: bool, out: &mut BTreeMap<String, Entry>) {
        let p = root.join(rel);
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let (kind, data) = if ft.is_symlink() {
            (
                'l',
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if ft.is_dir() {
            ('d', vec![])
        } else {
            ('-', std::fs::read(&p).unwrap())
        };
        let e = Entry {
            kind,
            perm: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            data,
            xattrs: xattrs_of(&p),
            mtime: (with_mtime && kind == '-').then(|| md.mtime()),
        };
        out.insert(rel.to_string_lossy().into_owned(), e);
        if ft.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            for n in names {
                walk(root, &rel.join(n), with_mtime, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), with_mtime, &mut out);
    out
}
