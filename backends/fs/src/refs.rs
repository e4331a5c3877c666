//! Refs (`refs/**`, 64 hex + newline, compare-and-swap under an OFD lock) and plain repository
//! files.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use bytes::Bytes;
use ostree_core::store::{RefExpect, validate_repo_path};
use ostree_core::{Checksum, Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::lock::{LockKind, ofd_lock};
use crate::store::{Inner, temp_name};
use crate::util::{self, io_err};

/// The lock file serializing ref updates, relative to the repository. Real ostree never sees
/// it: it lists refs only inside `refs/heads`, `refs/remotes/<dir>` and `refs/mirrors/<dir>`,
/// and skips names that are not valid ref fragments (a leading `.`).
pub const REFS_LOCK: &str = "refs/.lock";

/// A path component ostree accepts in a ref (`[\w\d][-._\w\d]*`); others are skipped when
/// listing, as ostree does (issue 1285).
fn valid_fragment(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// A ref name relative to `refs/`: safe relative path of valid fragments.
fn validate_ref_name(name: &str) -> Result<()> {
    if name.is_empty() || name.split('/').any(|c| !valid_fragment(c)) {
        return Err(Error::invalid(format!("Invalid ref name '{name}'")));
    }
    Ok(())
}

fn parse_ref(name: &str, data: &[u8]) -> Result<Checksum> {
    let text = std::str::from_utf8(data)
        .map_err(|_| Error::corrupted(format!("Corrupted ref '{name}': not text")))?;
    let t = text.trim();
    if t.len() != 64 {
        return Err(Error::corrupted(format!(
            "Corrupted ref '{name}': invalid checksum '{t}'"
        )));
    }
    Checksum::from_hex(t)
        .map_err(|_| Error::corrupted(format!("Corrupted ref '{name}': invalid checksum '{t}'")))
}

fn read_small(fd: OwnedFd) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::with_capacity(66);
    File::from(fd).take(4096).read_to_end(&mut v)?;
    Ok(v)
}

impl Inner {
    fn refs_fd(&self) -> Result<OwnedFd> {
        util::open_dir(&self.root_fd, "refs")
            .map_err(|e| io_err(format!("opendir({}/refs)", self.root.display()), e))
    }

    /// Read `refs/<name>`, following alias symlinks.
    fn read_ref_at(&self, refs: BorrowedFd<'_>, name: &str) -> Result<Option<Checksum>> {
        let fd =
            match rustix::fs::openat(refs, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
                Err(e) => {
                    return Err(io_err(
                        format!("reading ref {}/refs/{name}", self.root.display()),
                        e,
                    ));
                }
            };
        let st = rustix::fs::fstat(&fd).map_err(|e| {
            io_err(
                format!("reading ref {}/refs/{name}", self.root.display()),
                e,
            )
        })?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        let data = read_small(fd).map_err(|e| {
            io_err(
                format!("reading ref {}/refs/{name}", self.root.display()),
                e,
            )
        })?;
        parse_ref(name, &data).map(Some)
    }

    pub(crate) fn read_ref_blocking(&self, name: &str) -> Result<Option<Checksum>> {
        validate_ref_name(name)?;
        let refs = self.refs_fd()?;
        self.read_ref_at(refs.as_fd(), name)
    }

    fn walk_refs(
        &self,
        refs: BorrowedFd<'_>,
        dir: &str,
        out: &mut Vec<(String, Checksum)>,
    ) -> Result<()> {
        let entries = match util::read_dir_at(refs, if dir.is_empty() { "." } else { dir }) {
            Ok(e) => e,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => {
                return Err(io_err(
                    format!("listing {}/refs/{dir}", self.root.display()),
                    e,
                ));
            }
        };
        for (name, ft) in entries {
            if !valid_fragment(&name) {
                continue;
            }
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            match ft {
                FileType::Directory => self.walk_refs(refs, &rel, out)?,
                FileType::RegularFile | FileType::Symlink => {
                    if let Some(c) = self.read_ref_at(refs, &rel)? {
                        out.push((rel, c));
                    } else if ft == FileType::Symlink {
                        // A dangling alias: ostree fails the listing too.
                        let st = rustix::fs::statat(refs, rel.as_str(), AtFlags::empty());
                        if let Err(e) = st {
                            return Err(io_err(
                                format!("resolving ref alias {}/refs/{rel}", self.root.display()),
                                e,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn list_refs_blocking(&self, prefix: &str) -> Result<Vec<(String, Checksum)>> {
        let p = prefix.trim_end_matches('/');
        if !p.is_empty() {
            validate_ref_name(p)?;
        }
        let refs = self.refs_fd()?;
        let mut out = Vec::new();
        if !p.is_empty() {
            match rustix::fs::statat(&refs, p, AtFlags::empty()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                    // The prefix names one ref.
                    if !prefix.ends_with('/')
                        && let Some(c) = self.read_ref_at(refs.as_fd(), p)?
                    {
                        out.push((p.to_string(), c));
                    }
                    return Ok(out);
                }
                Ok(_) => {}
                // ostree opens refs/heads and refs/remotes to list all refs, and fails when
                // one is missing (ostreedev/ostree#1467).
                Err(e @ Errno::NOENT) if matches!(p, "heads" | "remotes") => {
                    return Err(io_err(format!("Listing refs: opendir(refs/{p})"), e));
                }
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(out),
                Err(e) => {
                    return Err(io_err(
                        format!("listing {}/refs/{p}", self.root.display()),
                        e,
                    ));
                }
            }
        }
        self.walk_refs(refs.as_fd(), p, &mut out)?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Write `data` to a new temporary file in the staging directory and return its name.
    fn write_temp(
        &self,
        data: &[u8],
        ctx: &dyn Fn() -> String,
    ) -> Result<(BorrowedFd<'_>, String)> {
        let st = self.staging()?;
        let name = temp_name(st.next_id()).as_str().to_string();
        let fd = rustix::fs::openat(
            &st.dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err(ctx(), e))?;
        let mut f = File::from(fd);
        let r = f
            .write_all(data)
            .and_then(|_| rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644)).map_err(Into::into))
            .and_then(|_| if self.fsync { f.sync_data() } else { Ok(()) });
        if let Err(e) = r {
            let _ = rustix::fs::unlinkat(&st.dir, name.as_str(), AtFlags::empty());
            return Err(io_err(ctx(), e));
        }
        Ok((st.dir.as_fd(), name))
    }

    /// Atomically put `data` at `path` under `dirfd` (parents created).
    fn replace_at(
        &self,
        dirfd: BorrowedFd<'_>,
        path: &str,
        data: &[u8],
        ctx: &dyn Fn() -> String,
    ) -> Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            util::mkdir_p(dirfd, parent, 0o777).map_err(|e| io_err(ctx(), e))?;
        }
        let (tdir, tname) = self.write_temp(data, ctx)?;
        let r = match rustix::fs::renameat(tdir, tname.as_str(), dirfd, path) {
            // The destination is on another filesystem: write beside it instead.
            Err(Errno::XDEV) => {
                let _ = rustix::fs::unlinkat(tdir, tname.as_str(), AtFlags::empty());
                let (parent, base) = path.rsplit_once('/').unwrap_or((".", path));
                let pfd = util::open_dir(dirfd, parent).map_err(|e| io_err(ctx(), e))?;
                let tmp = format!(".{base}.tmp-{:016x}", util::random_u64());
                let fd = rustix::fs::openat(
                    &pfd,
                    tmp.as_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| io_err(ctx(), e))?;
                let mut f = File::from(fd);
                let r = f
                    .write_all(data)
                    .and_then(|_| if self.fsync { f.sync_data() } else { Ok(()) })
                    .and_then(|_| {
                        rustix::fs::renameat(&pfd, tmp.as_str(), &pfd, base).map_err(Into::into)
                    });
                if r.is_err() {
                    let _ = rustix::fs::unlinkat(&pfd, tmp.as_str(), AtFlags::empty());
                }
                return r.map_err(|e| io_err(ctx(), e));
            }
            r => r,
        };
        if let Err(e) = r {
            let _ = rustix::fs::unlinkat(tdir, tname.as_str(), AtFlags::empty());
            return Err(io_err(ctx(), e));
        }
        Ok(())
    }

    pub(crate) fn update_ref_blocking(
        &self,
        name: &str,
        expect: RefExpect,
        new: Option<Checksum>,
    ) -> Result<()> {
        validate_ref_name(name)?;
        let refs = self.refs_fd()?;
        let lock_ctx = || format!("locking {}/{REFS_LOCK}", self.root.display());
        let lock = rustix::fs::openat(
            &refs,
            ".lock",
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err(lock_ctx(), e))?;
        ofd_lock(lock.as_fd(), LockKind::Exclusive, true).map_err(|e| io_err(lock_ctx(), e))?;

        let current = self.read_ref_at(refs.as_fd(), name)?;
        let ok = match expect {
            RefExpect::Any => true,
            RefExpect::Absent => current.is_none(),
            RefExpect::Value(v) => current == Some(v),
        };
        if !ok {
            return Err(Error::Precondition {
                what: format!(
                    "ref '{name}' is {} (expected {})",
                    current.map_or("absent".to_string(), |c| c.to_hex()),
                    match expect {
                        RefExpect::Value(v) => v.to_hex(),
                        _ => "absent".to_string(),
                    }
                ),
            });
        }
        let ctx = || format!("writing ref {}/refs/{name}", self.root.display());
        match new {
            Some(c) => {
                // A directory in the way (refs under it) is a conflict, as in ostree.
                if let Ok(st) = rustix::fs::statat(&refs, name, AtFlags::SYMLINK_NOFOLLOW)
                    && FileType::from_raw_mode(st.st_mode) == FileType::Directory
                {
                    let mut under = Vec::new();
                    self.walk_refs(refs.as_fd(), name, &mut under)?;
                    if let Some((other, _)) = under.first() {
                        return Err(Error::invalid(format!(
                            "Conflict: {other} exists under {name} when attempting write"
                        )));
                    }
                    util::remove_all_at(refs.as_fd(), name).map_err(|e| io_err(ctx(), e))?;
                }
                let mut line = c.to_hex().into_bytes();
                line.push(b'\n');
                self.replace_at(refs.as_fd(), name, &line, &ctx)?;
            }
            None => {
                match rustix::fs::unlinkat(&refs, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => {}
                    Err(e) => {
                        return Err(io_err(
                            format!("deleting ref {}/refs/{name}", self.root.display()),
                            e,
                        ));
                    }
                }
                // Remove now-empty parents, never the top-level heads/remotes/mirrors.
                let mut p = name;
                while let Some((parent, _)) = p.rsplit_once('/') {
                    if !parent.contains('/') {
                        break;
                    }
                    if rustix::fs::unlinkat(&refs, parent, AtFlags::REMOVEDIR).is_err() {
                        break;
                    }
                    p = parent;
                }
            }
        }
        // ostree touches the repository directory after every ref change (flatpak watches it).
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let _ = rustix::fs::futimens(
            &self.root_fd,
            &Timestamps {
                last_access: now,
                last_modification: now,
            },
        );
        drop(lock);
        Ok(())
    }

    /// Collect alias symlinks under `dir` (relative to `refs/`): (name, link text without its
    /// leading `../` components, as ostree reports it).
    fn walk_aliases(
        &self,
        refs: BorrowedFd<'_>,
        dir: &str,
        out: &mut Vec<(String, String)>,
    ) -> Result<()> {
        let entries = match util::read_dir_at(refs, dir) {
            Ok(e) => e,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => {
                return Err(io_err(
                    format!("listing {}/refs/{dir}", self.root.display()),
                    e,
                ));
            }
        };
        for (name, ft) in entries {
            if !valid_fragment(&name) {
                continue;
            }
            let rel = format!("{dir}/{name}");
            match ft {
                FileType::Directory => self.walk_aliases(refs, &rel, out)?,
                FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(refs, rel.as_str(), Vec::new()).map_err(|e| {
                            io_err(
                                format!("reading ref alias {}/refs/{rel}", self.root.display()),
                                e,
                            )
                        })?;
                    let target = target.to_string_lossy().into_owned();
                    let mut t = target.as_str();
                    while let Some(rest) = t.strip_prefix("../") {
                        t = rest;
                    }
                    out.push((rel, t.to_string()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn list_ref_aliases_blocking(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let p = prefix.trim_end_matches('/');
        let refs = self.refs_fd()?;
        let mut out = Vec::new();
        if p.is_empty() {
            for top in ["heads", "remotes", "mirrors"] {
                self.walk_aliases(refs.as_fd(), top, &mut out)?;
            }
        } else {
            validate_ref_name(p)?;
            self.walk_aliases(refs.as_fd(), p, &mut out)?;
        }
        out.sort();
        Ok(out)
    }

    /// Replace `name` by a relative symlink to `target` (relative to `name`'s top directory:
    /// `heads/`, `remotes/R/` or `mirrors/C/`), as `ostree refs --alias --create` does.
    pub(crate) fn set_ref_alias_blocking(&self, name: &str, target: &str) -> Result<()> {
        validate_ref_name(name)?;
        validate_ref_name(target)?;
        let top_len = if name.starts_with("heads/") { 1 } else { 2 };
        let n = name.split('/').count();
        if n <= top_len {
            return Err(Error::invalid(format!("Invalid ref name '{name}'")));
        }
        let depth = n - top_len - 1;
        let link = format!("{}{target}", "../".repeat(depth));
        let refs = self.refs_fd()?;
        let ctx = || format!("writing ref alias {}/refs/{name}", self.root.display());
        let lock = rustix::fs::openat(
            &refs,
            ".lock",
            OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err(format!("locking {}/{REFS_LOCK}", self.root.display()), e))?;
        ofd_lock(lock.as_fd(), LockKind::Exclusive, true)
            .map_err(|e| io_err(format!("locking {}/{REFS_LOCK}", self.root.display()), e))?;
        if let Some((parent, _)) = name.rsplit_once('/') {
            util::mkdir_p(refs.as_fd(), parent, 0o777).map_err(|e| io_err(ctx(), e))?;
        }
        let st = self.staging()?;
        let tmp = temp_name(st.next_id()).as_str().to_string();
        rustix::fs::symlinkat(link.as_str(), &st.dir, tmp.as_str())
            .map_err(|e| io_err(ctx(), e))?;
        if let Err(e) = rustix::fs::renameat(&st.dir, tmp.as_str(), &refs, name) {
            let _ = rustix::fs::unlinkat(&st.dir, tmp.as_str(), AtFlags::empty());
            return Err(io_err(ctx(), e));
        }
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let _ = rustix::fs::futimens(
            &self.root_fd,
            &Timestamps {
                last_access: now,
                last_modification: now,
            },
        );
        drop(lock);
        Ok(())
    }

    pub(crate) fn read_file_blocking(&self, path: &str) -> Result<Option<Bytes>> {
        validate_repo_path(path)?;
        let ctx = || format!("reading {}/{path}", self.root.display());
        let fd = match rustix::fs::openat(
            &self.root_fd,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(io_err(ctx(), e)),
        };
        let mut f = File::from(fd);
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut v = Vec::with_capacity(len as usize);
        f.read_to_end(&mut v).map_err(|e| io_err(ctx(), e))?;
        Ok(Some(Bytes::from(v)))
    }

    pub(crate) fn write_file_blocking(&self, path: &str, data: &[u8]) -> Result<()> {
        validate_repo_path(path)?;
        let ctx = || format!("writing {}/{path}", self.root.display());
        self.replace_at(self.root_fd.as_fd(), path, data, &ctx)
    }

    pub(crate) fn delete_file_blocking(&self, path: &str) -> Result<()> {
        validate_repo_path(path)?;
        match rustix::fs::unlinkat(&self.root_fd, path, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(()),
            Err(e) => Err(io_err(
                format!("deleting {}/{path}", self.root.display()),
                e,
            )),
        }
    }

    fn walk_files(&self, dir: &str, out: &mut Vec<String>) -> Result<()> {
        let entries = match util::read_dir_at(self.root_fd.as_fd(), dir) {
            Ok(e) => e,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(io_err(format!("listing {}/{dir}", self.root.display()), e)),
        };
        for (name, ft) in entries {
            let rel = format!("{dir}/{name}");
            if ft == FileType::Directory {
                self.walk_files(&rel, out)?;
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }

    pub(crate) fn list_files_blocking(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.trim_end_matches('/');
        validate_repo_path(p)?;
        let mut out = Vec::new();
        match rustix::fs::statat(&self.root_fd, p, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                if !prefix.ends_with('/') {
                    out.push(p.to_string());
                }
                return Ok(out);
            }
            Ok(_) => {}
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(out),
            Err(e) => return Err(io_err(format!("listing {}/{p}", self.root.display()), e)),
        }
        self.walk_files(p, &mut out)?;
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments() {
        assert!(valid_fragment("main"));
        assert!(valid_fragment("x86_64"));
        assert!(valid_fragment("1.0-beta"));
        assert!(!valid_fragment(".lock"));
        assert!(!valid_fragment("-x"));
        assert!(!valid_fragment(""));
        assert!(validate_ref_name("heads/os/x86_64/stable").is_ok());
        assert!(validate_ref_name("heads/../x").is_err());
        assert!(validate_ref_name("/heads/x").is_err());
        assert!(validate_ref_name("heads//x").is_err());
        assert!(validate_ref_name(".lock").is_err());
    }
}
