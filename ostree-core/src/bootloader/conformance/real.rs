//! Test sysroots made by the real `ostree` (the judge for interop tests of writers).
//!
//! [`RealSysroot::new`] builds, in a temporary directory (tmpfs when possible), what
//! upstream's `libtest.sh` `setup_os_repository` builds: an OS repository with a bootable
//! commit (fake kernel and initramfs in `usr/lib/modules/3.6.0`, `os-release` in `usr/etc`),
//! a sysroot from `ostree admin init-fs` + `os-init testos`, the bootloader stub files of the
//! chosen mode, and the commit pulled into the sysroot's repository. Every command uses
//! `--sysroot=`/`--repo=` on that directory: the machine's own `/boot` is never touched.
//!
//! The real binary is `$OSTREE_REAL_BIN` (default `/usr/bin/ostree`). When it is missing the
//! constructor prints `SKIP: …` and returns `None`, unless `$OSTREE_TEST_REQUIRE` names
//! `ostree`, which makes it a failure.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::tempdir;

/// The branch the test OS is committed to.
pub const BRANCH: &str = "testos/buildmain/x86_64-runtime";

/// A test sysroot managed by the real `ostree`.
#[derive(Debug)]
pub struct RealSysroot {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The sysroot (`DIR/sysroot`).
    pub sysroot: PathBuf,
    /// The OS build repository (`DIR/testos-repo`).
    pub repo: PathBuf,
    /// The tree that [`RealSysroot::commit`] commits (`DIR/osdata`).
    pub osdata: PathBuf,
    bin: PathBuf,
    env: Vec<(String, String)>,
}

fn required(tag: &str) -> bool {
    std::env::var("OSTREE_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|t| t.trim() == tag)
}

/// The real ostree binary, or `None` after printing why the test is skipped.
pub fn real_ostree() -> Option<PathBuf> {
    let p = std::env::var_os("OSTREE_REAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/ostree"));
    if p.is_file() {
        return Some(p);
    }
    assert!(
        !required("ostree"),
        "the real ostree ({}) is missing and OSTREE_TEST_REQUIRE contains `ostree`",
        p.display()
    );
    eprintln!(
        "SKIP: the real ostree ({}) is not installed; interop test skipped",
        p.display()
    );
    None
}

/// A tool a test needs (e.g. `grub-script-check`): its path, or `None` after printing why the
/// test is skipped (a failure when `$OSTREE_TEST_REQUIRE` names `tag`).
pub fn require_tool(name: &str, tag: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    assert!(
        !required(tag),
        "{name} is missing and OSTREE_TEST_REQUIRE contains `{tag}`"
    );
    eprintln!("SKIP: {name} is not installed (set OSTREE_TEST_REQUIRE={tag} to fail instead)");
    None
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

impl RealSysroot {
    /// Build the sysroot for a boot mode: `syslinux`, `uboot`, `grub2` (BIOS stub
    /// `boot/grub2/grub.cfg -> ../loader/grub.cfg`), `grub2-efi` (`boot/efi/EFI/testos/grub.cfg`),
    /// `none` (`sysroot.bootloader=none`), or `` (nothing: autodetection finds nothing).
    /// `env` is added to every `ostree` command (e.g. `OSTREE_GRUB2_EXEC`).
    pub fn new(mode: &str, env: &[(&str, &str)]) -> Option<Self> {
        let bin = real_ostree()?;
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        let s = RealSysroot {
            sysroot: root.join("sysroot"),
            repo: root.join("testos-repo"),
            osdata: root.join("osdata"),
            bin,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        };
        s.ostree([
            OsStr::new("init"),
            OsStr::new("--mode=archive"),
            &s.repo_arg(),
        ]);
        let o = &s.osdata;
        write(&o.join("usr/lib/modules/3.6.0/vmlinuz"), "a kernel\n");
        write(
            &o.join("usr/lib/modules/3.6.0/initramfs.img"),
            "an initramfs\n",
        );
        write(&o.join("usr/bin/sh"), "an executable\n");
        write(&o.join("usr/share/langs.txt"), "some shared data\n");
        symlink("usr/bin", &o.join("bin"));
        write(
            &o.join("usr/etc/os-release"),
            "NAME=TestOS\nVERSION=42\nID=testos\nVERSION_ID=42\nPRETTY_NAME=\"TestOS 42\"\n",
        );
        write(&o.join("usr/etc/aconfigfile"), "a config file\n");
        s.commit("1.0.9");
        let sr = &s.sysroot;
        std::fs::create_dir_all(sr).expect("mkdir sysroot");
        s.ostree([OsStr::new("admin"), OsStr::new("init-fs"), sr.as_os_str()]);
        s.admin(&["os-init", "testos"]);
        let mk = |p: &str| std::fs::create_dir_all(sr.join(p)).expect("mkdir");
        match mode {
            "syslinux" => {
                mk("boot/loader.0");
                symlink("loader.0", &sr.join("boot/loader"));
                write(&sr.join("boot/loader/syslinux.cfg"), "");
                mk("boot/syslinux");
                symlink(
                    "../loader/syslinux.cfg",
                    &sr.join("boot/syslinux/syslinux.cfg"),
                );
            }
            "uboot" => {
                mk("boot/loader.0");
                symlink("loader.0", &sr.join("boot/loader"));
                write(&sr.join("boot/loader/uEnv.txt"), "");
                symlink("loader/uEnv.txt", &sr.join("boot/uEnv.txt"));
            }
            "grub2" => {
                mk("boot/grub2");
                symlink("../loader/grub.cfg", &sr.join("boot/grub2/grub.cfg"));
            }
            "grub2-efi" => {
                write(
                    &sr.join("boot/efi/EFI/testos/grub.cfg"),
                    "# installer's grub.cfg\n",
                );
            }
            "none" => s.set_config("sysroot.bootloader", "none"),
            "" => {}
            other => panic!("unknown boot mode {other}"),
        }
        s.pull();
        Some(s)
    }

    fn repo_arg(&self) -> std::ffi::OsString {
        let mut a = std::ffi::OsString::from("--repo=");
        a.push(&self.repo);
        a
    }

    /// Run the real ostree with these arguments; panics (with its output) when it fails.
    pub fn ostree<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ostree_env(args, &[])
    }

    /// [`RealSysroot::ostree`] with more environment variables for this command.
    pub fn ostree_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env("LC_ALL", "C.UTF-8");
        for k in [
            "OSTREE_SYSROOT",
            "OSTREE_REPO",
            "OSTREE_GRUB2_EXEC",
            "OSTREE_BOOT_PARTITION",
        ] {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("running the real ostree");
        assert!(
            out.status.success(),
            "{:?} failed: {}\n{}",
            c,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ostree admin --sysroot=SYSROOT ARGS…`.
    pub fn admin(&self, args: &[&str]) -> String {
        self.admin_env(args, &[])
    }

    /// [`RealSysroot::admin`] with more environment variables for this command.
    pub fn admin_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut a: Vec<std::ffi::OsString> = vec!["admin".into(), args[0].into()];
        let mut s = std::ffi::OsString::from("--sysroot=");
        s.push(&self.sysroot);
        a.push(s);
        a.extend(args[1..].iter().map(std::ffi::OsString::from));
        self.ostree_env(a, env)
    }

    /// `ostree config set` on the sysroot's repository.
    pub fn set_config(&self, key: &str, value: &str) {
        let mut r = std::ffi::OsString::from("--repo=");
        r.push(self.sysroot.join("ostree/repo"));
        self.ostree([r, "config".into(), "set".into(), key.into(), value.into()]);
    }

    /// Commit `osdata` (after the caller changed it) as version `version`, and pull it into the
    /// sysroot's repository when the sysroot exists.
    pub fn commit(&self, version: &str) {
        let mut t = std::ffi::OsString::from("--tree=dir=");
        t.push(&self.osdata);
        self.ostree([
            self.repo_arg(),
            "commit".into(),
            "--bootable".into(),
            "--add-metadata-string".into(),
            format!("version={version}").into(),
            "-b".into(),
            BRANCH.into(),
            "-s".into(),
            "Build".into(),
            t,
        ]);
        if self.sysroot.join("ostree/repo").is_dir() {
            self.pull();
        }
    }

    fn pull(&self) {
        let mut r = std::ffi::OsString::from("--repo=");
        r.push(self.sysroot.join("ostree/repo"));
        self.ostree([
            r,
            "pull-local".into(),
            "--remote=testos".into(),
            self.repo.clone().into_os_string(),
            BRANCH.into(),
        ]);
    }

    /// `ostree admin deploy --os=testos ARGS… testos:BRANCH`; returns the new boot version.
    pub fn deploy(&self, args: &[&str]) -> u32 {
        let mut a = vec!["deploy", "--os=testos"];
        a.extend_from_slice(args);
        let r = format!("testos:{BRANCH}");
        a.push(&r);
        self.admin(&a);
        self.bootversion()
    }

    /// The active boot version (the target of `boot/loader`; 0 when absent).
    pub fn bootversion(&self) -> u32 {
        match std::fs::read_link(self.sysroot.join("boot/loader")) {
            Ok(t) if t == Path::new("loader.1") => 1,
            _ => 0,
        }
    }

    /// The content of `boot/loader.N/NAME`.
    pub fn loader_file(&self, bootversion: u32, name: &str) -> String {
        let p = self
            .sysroot
            .join(format!("boot/loader.{bootversion}/{name}"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }
}

impl RealSysroot {
    /// Deploy with the real ostree (`deploy_args` as for [`RealSysroot::deploy`]), then run
    /// `writer` on the same sysroot as it stood before the swap — the entries ostree wrote
    /// in `boot/loader.N/entries`, and the files named in `inputs` (under `boot/loader/`) as
    /// they were before the deploy — and assert that it writes `boot/loader.N/<output>` byte
    /// for byte as ostree did. The sysroot is restored afterwards. Returns N and the text.
    pub fn deploy_and_compare(
        &self,
        writer: &dyn crate::bootloader::BootloaderWriter,
        deploy_args: &[&str],
        inputs: &[&str],
        output: &str,
    ) -> (u32, String) {
        let sr = &self.sysroot;
        let pre: Vec<(String, Option<Vec<u8>>)> = inputs
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    std::fs::read(sr.join("boot/loader").join(n)).ok(),
                )
            })
            .collect();
        let n = self.deploy(deploy_args);
        let theirs = self.loader_file(n, output);
        let entries = crate::bootloader::read_entries(sr, n).expect("read entries");
        // Rewind to the moment before ostree's swap.
        let old = 1 - n;
        let old_dir = sr.join(format!("boot/loader.{old}"));
        let created = !old_dir.exists();
        std::fs::create_dir_all(&old_dir).expect("mkdir old loader");
        for (name, data) in &pre {
            if let Some(d) = data {
                std::fs::write(old_dir.join(name), d).expect("write input");
            }
        }
        let link = sr.join("boot/loader");
        let swap = |target: &str| {
            let tmp = sr.join("boot/loader.tmp-test");
            symlink(target, &tmp);
            std::fs::rename(&tmp, &link).expect("swap link");
        };
        swap(&format!("loader.{old}"));
        let out = sr.join(format!("boot/loader.{n}")).join(output);
        let saved = sr.join(format!("boot/loader.{n}/{output}.ostree-test"));
        std::fs::rename(&out, &saved).expect("set ostree's output aside");
        let res = writer.write(sr, n, &entries);
        let ours = std::fs::read_to_string(&out);
        std::fs::rename(&saved, &out).expect("restore ostree's output");
        swap(&format!("loader.{n}"));
        if created {
            std::fs::remove_dir_all(&old_dir).expect("remove old loader");
        }
        res.unwrap_or_else(|e| panic!("our {} writer failed: {e}", writer.name()));
        let ours = ours.expect("our writer wrote no output");
        assert_eq!(
            ours,
            theirs,
            "our {} output differs from the real ostree's for bootversion {n}",
            writer.name()
        );
        (n, theirs)
    }
}
