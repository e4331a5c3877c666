//! The conformance suite every [`BootloaderWriter`] runs (feature `conformance`; **not stable
//! API**).
//!
//! Each case builds a fresh test sysroot in a temporary directory (on tmpfs when `/dev/shm`
//! is writable; never the machine's `/boot`), shaped like the one upstream's `libtest.sh`
//! builds: `boot/loader -> loader.0` active, a deployment with fake kernels, the
//! `ostree/boot.1.0` links and the new BLS entries already in `boot/loader.1/entries` (core
//! writes them before calling a writer). The fixture's `prepare` installs the bootloader's
//! own files, as an installer would. Cases **panic** naming the broken guarantee. A plugin's
//! `tests/conformance.rs` is one line:
//!
//! ```ignore
//! ostree_core::bootloader_conformance_tests!(|| WriterFixture { .. });
//! ```
//!
//! What the suite checks:
//!
//! * the writer's name is registered, and writers that take part in `auto` detect a prepared
//!   sysroot and not a bare one;
//! * `write` changes nothing outside `boot/loader.N` (files, links, inodes, modes, times), in
//!   particular not the active side, for either boot version;
//! * it produces exactly its declared files (no temporary leftovers), replacing existing
//!   ones atomically (an old inode keeps its bytes);
//! * the same entries give the same bytes (idempotent), also over an existing output;
//! * an entry without `linux` is an error for writers that render entries, and leaves the
//!   active side untouched; an empty entry list is fine;
//! * `post_bls_sync` succeeds after the swap.

pub mod real;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{BlsEntry, BootloaderWriter, entries_dir, loader_dir};
use crate::registry::Registry;

/// What the cases need from a plugin.
#[derive(Debug)]
pub struct WriterFixture {
    /// The writer under test.
    pub writer: Box<dyn BootloaderWriter>,
    /// Install the bootloader's own files on a fresh sysroot whose `boot/loader -> loader.0`
    /// already exists (upstream's `setup_os_boot_*`).
    pub prepare: fn(&Path),
    /// The files `write` creates in `boot/loader.N/` (e.g. `["grub.cfg"]`; empty for `none`).
    pub outputs: &'static [&'static str],
}

/// The stateroot of the test sysroot.
pub const OSNAME: &str = "testos";
/// The boot checksum of the first test deployment.
pub const BOOTCSUM: &str = "5e3d4c0ad5c2f4bc1e2b9e6f35a0cb23f3d2a6e8cbd7a56a7ab7e0ab0c7a0a1f";
/// The boot checksum of the other test deployments.
pub const BOOTCSUM2: &str = "8b1a9953c4611296a827abf8c47804d7e0f1b3b1c3b9b1f0f6a3c3d2b9f8e7d6";
/// The commit of the first test deployment.
pub const COMMIT: &str = "0b0c5d5e8e0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aab";

/// A temporary directory, on tmpfs (`/dev/shm`) when possible.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ostree-bootloader-")
        .tempdir_in("/dev/shm")
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix("ostree-bootloader-")
                .tempdir()
        })
        .expect("a temporary directory is needed for the test sysroot")
}

/// Representative entries for boot version `bootversion`, newest first, as ostree writes
/// them: a kernel with initramfs and device tree, a `dtb/` directory (`fdtdir`), and one
/// without initramfs (ostree then adds `init=` to the options).
pub fn sample_entries(bootversion: u32) -> Vec<BlsEntry> {
    let b = bootversion;
    vec![
        BlsEntry::from_pairs([
            ("title", "TestOS 42 1.0.10 (ostree:0)"),
            ("version", "3"),
            (
                "options",
                &format!("root=LABEL=rootfs quiet ostree=/ostree/boot.{b}/{OSNAME}/{BOOTCSUM}/0"),
            ),
            (
                "devicetree",
                &format!("/ostree/{OSNAME}-{BOOTCSUM}/devicetree-3.6.0"),
            ),
            (
                "linux",
                &format!("/ostree/{OSNAME}-{BOOTCSUM}/vmlinuz-3.6.0"),
            ),
            (
                "initrd",
                &format!("/ostree/{OSNAME}-{BOOTCSUM}/initramfs-3.6.0.img"),
            ),
        ]),
        BlsEntry::from_pairs([
            ("title", "TestOS 42 1.0.9 (ostree:1)"),
            ("version", "2"),
            (
                "options",
                &format!("root=LABEL=rootfs ostree=/ostree/boot.{b}/{OSNAME}/{BOOTCSUM2}/0"),
            ),
            (
                "linux",
                &format!("/ostree/{OSNAME}-{BOOTCSUM2}/vmlinuz-3.6.0"),
            ),
            (
                "initrd",
                &format!("/ostree/{OSNAME}-{BOOTCSUM2}/initramfs-3.6.0.img"),
            ),
            ("fdtdir", &format!("/ostree/{OSNAME}-{BOOTCSUM2}/dtb")),
        ]),
        BlsEntry::from_pairs([
            ("title", "TestOS 42 1.0.8 (ostree:2)"),
            ("version", "1"),
            (
                "options",
                &format!(
                    "root=LABEL=rootfs init=/ostree/boot.{b}/{OSNAME}/{BOOTCSUM2}/1/usr/lib/ostree/ostree-prepare-root ostree=/ostree/boot.{b}/{OSNAME}/{BOOTCSUM2}/1"
                ),
            ),
            (
                "linux",
                &format!("/ostree/{OSNAME}-{BOOTCSUM2}/vmlinuz-3.6.0"),
            ),
        ]),
    ]
}

/// Write entries into `boot/loader.N/entries` as core does (`ostree-$version-$os.conf`,
/// replacing the directory).
pub fn write_entries(sysroot: &Path, bootversion: u32, entries: &[BlsEntry]) {
    let dir = entries_dir(sysroot, bootversion);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create entries dir");
    for (i, e) in entries.iter().enumerate() {
        let version = e.version().map_or_else(|| format!("x{i}"), str::to_string);
        std::fs::write(
            dir.join(format!("ostree-{version}-{OSNAME}.conf")),
            e.render(),
        )
        .expect("write entry");
    }
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// Build the test sysroot under `root` (see the module docs): active `loader.0` with the
/// same deployments' entries, `prepare` applied, and the entries of
/// [`sample_entries`]`(1)` in `boot/loader.1/entries`. Returns those entries.
pub fn sample_sysroot(root: &Path, prepare: fn(&Path)) -> Vec<BlsEntry> {
    let mk = |p: &str| std::fs::create_dir_all(root.join(p)).expect("mkdir");
    mk("boot/loader.0");
    symlink("loader.0", &root.join("boot/loader"));
    symlink(".", &root.join("boot/boot"));
    mk("ostree/repo");
    let deploy = format!("ostree/deploy/{OSNAME}/deploy/{COMMIT}.0");
    mk(&format!("{deploy}/usr/lib/ostree-boot"));
    mk(&format!("{deploy}/etc"));
    std::fs::write(
        root.join(format!("{deploy}/usr/lib/ostree-boot/uEnv.txt")),
        "bootdelay=1\nconsole=ttyS0\n",
    )
    .expect("write uEnv");
    for csum in [BOOTCSUM, BOOTCSUM2] {
        let d = format!("boot/ostree/{OSNAME}-{csum}");
        mk(&format!("{d}/dtb"));
        for (f, c) in [
            ("vmlinuz-3.6.0", "a kernel\n"),
            ("initramfs-3.6.0.img", "an initramfs\n"),
            ("devicetree-3.6.0", "a device tree\n"),
            ("dtb/board.dtb", "a board\n"),
        ] {
            std::fs::write(root.join(&d).join(f), c).expect("write boot file");
        }
    }
    for b in [0u32, 1] {
        mk(&format!("ostree/boot.{b}.0/{OSNAME}/{BOOTCSUM}"));
        mk(&format!("ostree/boot.{b}.0/{OSNAME}/{BOOTCSUM2}"));
        let rel = format!("../../../deploy/{OSNAME}/deploy/{COMMIT}.0");
        symlink(
            &rel,
            &root.join(format!("ostree/boot.{b}.0/{OSNAME}/{BOOTCSUM}/0")),
        );
        symlink(
            &rel,
            &root.join(format!("ostree/boot.{b}.0/{OSNAME}/{BOOTCSUM2}/0")),
        );
        symlink(
            &rel,
            &root.join(format!("ostree/boot.{b}.0/{OSNAME}/{BOOTCSUM2}/1")),
        );
        symlink(
            &format!("boot.{b}.0"),
            &root.join(format!("ostree/boot.{b}")),
        );
    }
    write_entries(root, 0, &sample_entries(0));
    prepare(root);
    let entries = sample_entries(1);
    write_entries(root, 1, &entries);
    entries
}

/// One file system entry as the snapshot sees it.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
        ino: u64,
    },
    File {
        mode: u32,
        ino: u64,
        mtime: (i64, i64),
        data: Vec<u8>,
    },
    Link {
        target: PathBuf,
    },
}

/// Everything under `root` except paths under one of `skip` (relative).
fn snapshot(root: &Path, skip: &[&str], identity: bool) -> BTreeMap<PathBuf, Node> {
    fn walk(
        root: &Path,
        rel: &Path,
        skip: &[&str],
        identity: bool,
        out: &mut BTreeMap<PathBuf, Node>,
    ) {
        let path = root.join(rel);
        let md = std::fs::symlink_metadata(&path).expect("lstat in snapshot");
        let id = |v: u64| if identity { v } else { 0 };
        let node = if md.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(&path).expect("readlink"),
            }
        } else if md.is_dir() {
            for d in std::fs::read_dir(&path).expect("readdir") {
                let d = d.expect("dirent");
                let r = rel.join(d.file_name());
                if skip.iter().any(|s| r.starts_with(s)) {
                    continue;
                }
                walk(root, &r, skip, identity, out);
            }
            Node::Dir {
                mode: md.mode(),
                ino: id(md.ino()),
            }
        } else {
            Node::File {
                mode: md.mode(),
                ino: id(md.ino()),
                mtime: if identity {
                    (md.mtime(), md.mtime_nsec())
                } else {
                    (0, 0)
                },
                data: std::fs::read(&path).expect("read"),
            }
        };
        out.insert(rel.to_path_buf(), node);
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), skip, identity, &mut out);
    out
}

fn assert_same(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>, what: &str) {
    for (p, n) in before {
        match after.get(p) {
            None => panic!("{what}: {} was removed", p.display()),
            Some(m) if m != n => panic!("{what}: {} was changed", p.display()),
            Some(_) => {}
        }
    }
    for p in after.keys() {
        assert!(
            before.contains_key(p),
            "{what}: {} was created",
            p.display()
        );
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readdir")
        .map(|d| {
            d.expect("dirent")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// The writer's name is a registered bootloader; writers taking part in `auto` detect a
/// prepared sysroot and not a bare one, and `auto` picks a writer of this name there.
pub fn registered_and_detected(f: &WriterFixture) {
    let name = f.writer.name();
    let plugin = Registry::global()
        .bootloader_plugin(name)
        .unwrap_or_else(|e| panic!("writer '{name}' is not registered: {e}"));
    assert_eq!(
        plugin.name, name,
        "registry record and writer disagree on the name"
    );
    assert_eq!(
        (plugin.build)().name(),
        name,
        "the record builds another writer"
    );
    let bare = tempdir();
    std::fs::create_dir_all(bare.path().join("boot/loader.0")).expect("mkdir");
    symlink("loader.0", &bare.path().join("boot/loader"));
    assert!(
        !f.writer
            .detect(bare.path())
            .expect("detect on a bare sysroot"),
        "'{name}' detected itself on a sysroot without its files"
    );
    if plugin.autodetect.is_some() {
        let d = tempdir();
        sample_sysroot(d.path(), f.prepare);
        assert!(
            f.writer.detect(d.path()).expect("detect"),
            "'{name}' does not detect its own prepared sysroot"
        );
        let auto = Registry::global()
            .bootloader_for("auto", d.path())
            .expect("auto");
        assert_eq!(auto.name(), name, "auto chose another writer");
    }
}

/// `write` touches nothing outside `boot/loader.N`, for N = 1 (loader.0 active) and N = 0
/// (loader.1 active).
pub fn writes_only_into_new_loader(f: &WriterFixture) {
    for (new, old) in [(1u32, 0u32), (0, 1)] {
        let d = tempdir();
        let root = d.path();
        let mut entries = sample_sysroot(root, f.prepare);
        if new == 0 {
            // Make loader.1 the active side, as after a first deploy.
            std::fs::remove_file(root.join("boot/loader")).expect("rm link");
            symlink("loader.1", &root.join("boot/loader"));
            // Move the prepared files along, as a real swap would have.
            for name in names_in(&loader_dir(root, 0)) {
                if name != "entries" {
                    let _ = std::fs::rename(
                        loader_dir(root, 0).join(&name),
                        loader_dir(root, 1).join(&name),
                    );
                }
            }
            entries = sample_entries(0);
            write_entries(root, 0, &entries);
        }
        let skip = format!("boot/loader.{new}");
        let before = snapshot(root, &[&skip], true);
        f.writer
            .write(root, new, &entries)
            .unwrap_or_else(|e| panic!("write into loader.{new} failed: {e}"));
        let after = snapshot(root, &[&skip], true);
        assert_same(
            &before,
            &after,
            &format!("writing loader.{new} (loader.{old} active)"),
        );
    }
}

/// After `write`, `boot/loader.N` holds exactly `entries/` and the declared outputs.
pub fn produces_declared_files(f: &WriterFixture) {
    let d = tempdir();
    let entries = sample_sysroot(d.path(), f.prepare);
    f.writer.write(d.path(), 1, &entries).expect("write");
    let mut want: Vec<String> = f.outputs.iter().map(|s| s.to_string()).collect();
    want.push("entries".into());
    want.sort();
    assert_eq!(
        names_in(&loader_dir(d.path(), 1)),
        want,
        "loader.1 holds other files than entries/ and the declared outputs"
    );
    for o in f.outputs {
        let md = std::fs::symlink_metadata(loader_dir(d.path(), 1).join(o)).expect("lstat output");
        assert!(md.is_file(), "{o} is not a regular file");
    }
}

/// The same entries give the same bytes, from scratch and over an existing output.
pub fn idempotent(f: &WriterFixture) {
    let d = tempdir();
    let entries = sample_sysroot(d.path(), f.prepare);
    let dir = "boot/loader.1";
    let only = |root: &Path| {
        let all = snapshot(root, &[], false);
        all.into_iter()
            .filter(|(p, _)| p.starts_with(dir))
            .collect::<BTreeMap<_, _>>()
    };
    f.writer.write(d.path(), 1, &entries).expect("first write");
    let first = only(d.path());
    f.writer.write(d.path(), 1, &entries).expect("second write");
    let second = only(d.path());
    assert_same(&first, &second, "writing the same entries twice");
    let e = tempdir();
    let again = sample_sysroot(e.path(), f.prepare);
    f.writer
        .write(e.path(), 1, &again)
        .expect("write elsewhere");
    assert_same(
        &first,
        &only(e.path()),
        "writing the same entries on another sysroot",
    );
}

/// Existing outputs are replaced by rename: a hard link to the old file keeps its bytes.
pub fn atomic_replacement(f: &WriterFixture) {
    let d = tempdir();
    let root = d.path();
    let entries = sample_sysroot(root, f.prepare);
    let dir = loader_dir(root, 1);
    for (i, o) in f.outputs.iter().enumerate() {
        std::fs::write(dir.join(o), "old contents\n").expect("write old output");
        std::fs::hard_link(dir.join(o), root.join(format!("witness-{i}"))).expect("link");
    }
    f.writer.write(root, 1, &entries).expect("write");
    for (i, o) in f.outputs.iter().enumerate() {
        assert_eq!(
            std::fs::read(root.join(format!("witness-{i}"))).expect("read witness"),
            b"old contents\n",
            "{o} was rewritten in place instead of replaced atomically"
        );
        assert_ne!(
            std::fs::read(dir.join(o)).expect("read output"),
            b"old contents\n",
            "{o} was not replaced"
        );
    }
}

/// An entry without `linux` is an error (for writers with outputs), leaving everything but
/// `loader.N` untouched; an empty list of entries is written without error.
pub fn bad_and_empty_entries(f: &WriterFixture) {
    let d = tempdir();
    let root = d.path();
    let mut entries = sample_sysroot(root, f.prepare);
    entries[1].remove("linux");
    write_entries(root, 1, &entries);
    let before = snapshot(root, &["boot/loader.1"], true);
    let r = f.writer.write(root, 1, &entries);
    if !f.outputs.is_empty() {
        let e = r.expect_err("an entry without linux must be an error");
        assert!(
            e.to_string().contains("linux"),
            "the error should name the missing key: {e}"
        );
    }
    assert_same(
        &before,
        &snapshot(root, &["boot/loader.1"], true),
        "a failed write",
    );
    write_entries(root, 1, &[]);
    f.writer
        .write(root, 1, &[])
        .expect("an empty entry list is written");
}

/// `post_bls_sync` succeeds once `boot/loader` points to the new side.
pub fn post_swap(f: &WriterFixture) {
    let d = tempdir();
    let root = d.path();
    let entries = sample_sysroot(root, f.prepare);
    f.writer.write(root, 1, &entries).expect("write");
    symlink("loader.1", &root.join("boot/loader.tmp"));
    std::fs::rename(root.join("boot/loader.tmp"), root.join("boot/loader")).expect("swap");
    f.writer.post_bls_sync(root, 1).expect("post_bls_sync");
    let _ = f.writer.is_atomic(root);
}

/// Compare `actual` with the golden file at `path`; with `UPDATE_GOLDEN=1` in the
/// environment, (re)write the file instead. On a mismatch, panics showing the first
/// differing line.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).expect("mkdir golden dir");
        }
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "golden file {}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if want != actual {
        let line = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the golden file at line {}:\n want: {:?}\n  got: {:?}\n\
             --- got ---\n{actual}(run with UPDATE_GOLDEN=1 to accept)",
            path.display(),
            line + 1,
            want.lines().nth(line),
            actual.lines().nth(line),
        );
    }
}

/// Expands to one `#[test]` per bootloader conformance case; `$make` builds a
/// [`WriterFixture`].
#[macro_export]
macro_rules! bootloader_conformance_tests {
    ($make:expr) => {
        $crate::__bootloader_cases!(
            $make;
            registered_and_detected,
            writes_only_into_new_loader,
            produces_declared_files,
            idempotent,
            atomic_replacement,
            bad_and_empty_entries,
            post_swap
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bootloader_cases {
    ($make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let make = $make;
                let fixture: $crate::bootloader::conformance::WriterFixture = make();
                $crate::bootloader::conformance::$case(&fixture);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootloader::NoneWriter;

    fn nothing(_: &Path) {}

    crate::bootloader_conformance_tests!(|| WriterFixture {
        writer: Box::new(NoneWriter),
        prepare: nothing,
        outputs: &[],
    });
}
