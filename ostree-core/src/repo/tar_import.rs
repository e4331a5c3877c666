//! `commit --tree=tar=`: import a tar or cpio archive into a [`MutableTree`] as ostree 2022.7
//! does through libarchive (`ostree-repo-libarchive.c`).
//!
//! Formats read: tar (v7, ustar, GNU with long names/links, pax with `SCHILY.xattr.*` and
//! `LIBARCHIVE.xattr.*`), cpio (`newc`, `crc`, `odc`), optionally gzip- or xz-compressed; an empty input
//! is an empty archive. The input is untrusted: malformed or truncated archives give an error,
//! never a panic, and sizes announced by headers are bounded before anything is allocated.
//! Nothing is ever written outside the repository: entries only become objects and tree
//! entries.
//!
//! Mapping, as libarchive + ostree do it:
//! * paths are made relative (leading `/` and `/../` dropped, `./` and empty components
//!   removed); any remaining `..` is an error; a translation callback (`--tar-pathname-filter`)
//!   may rewrite them;
//! * the commit filter sees `/` + path and the entry's uid/gid/mode; canonical permissions apply
//!   as for directories on disk; xattrs come from pax records in libarchive's order (reverse of
//!   the records) unless xattrs are skipped;
//! * a parent directory that has no entry is an error (`No such file or directory: NAME`) unless
//!   parents are autocreated: then the root and every directory on the way get a `0755` dirmeta
//!   owned by the entry's (unfiltered) uid/gid;
//! * hardlink entries are resolved at the end: the first link of a group that carries data gives
//!   the checksum to its target and every other link; directories, devices, FIFOs and sockets as
//!   link targets or entries are errors (`Unsupported file type for path "…"`);
//! * later entries replace earlier ones (files) or merge into them (directories, whose dirmeta
//!   is replaced); a file where a directory is (or the reverse) is an error.

use crate::spool::Spool;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::Repo;
use super::commit::{CommitModifier, CommitStats, EntryInfo, FilterResult, MutableTree};
use crate::objects::{DirMeta, FileMeta, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Xattrs};
use crate::store::{ContentSource, ObjectWrite, RepoMode};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Rewrites a relative entry path (`--tar-pathname-filter`).
pub type TranslatePathname = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Options of [`Repo::write_archive_to_mtree`].
#[derive(Clone, Default)]
pub struct ArchiveImportOptions {
    /// Create missing parent directories (`--tar-autocreate-parents`).
    pub autocreate_parents: bool,
    /// Rewrite each path (and hardlink target) after it was made relative.
    pub translate_pathname: Option<TranslatePathname>,
}

impl std::fmt::Debug for ArchiveImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveImportOptions")
            .field("autocreate_parents", &self.autocreate_parents)
            .field("translate_pathname", &self.translate_pathname.is_some())
            .finish()
    }
}

// ------------------------------------------------------------------------------ entries

/// The type of an archive entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// FIFO.
    Fifo,
    /// Socket.
    Socket,
}

/// One entry as read from an archive (libarchive's `archive_entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path as stored (not yet made relative).
    pub path: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits (`& 07777`).
    pub perms: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of the data that follows (regular files; cpio symlinks).
    pub size: u64,
    /// Symlink target.
    pub symlink: Option<Vec<u8>>,
    /// Path of an earlier entry this one is a hardlink to.
    pub hardlink: Option<Vec<u8>>,
    /// Extended attributes in libarchive's iteration order.
    pub xattrs: Xattrs,
}

impl ArchiveEntry {
    /// Full `st_mode` as libarchive's `archive_entry_stat` gives it to ostree (hardlink entries
    /// count as regular files).
    pub fn st_mode(&self) -> u32 {
        let ty = match self.kind {
            EntryKind::File => S_IFREG,
            EntryKind::Dir => S_IFDIR,
            EntryKind::Symlink => S_IFLNK,
            EntryKind::Char => 0o020000,
            EntryKind::Block => 0o060000,
            EntryKind::Fifo => 0o010000,
            EntryKind::Socket => 0o140000,
        };
        let mut m = ty | self.perms;
        if self.hardlink.is_some() {
            m |= S_IFREG;
        }
        m
    }
}

/// Bound on names, link targets and pax headers (libarchive has similar limits).
const MAX_META: u64 = 8 * 1024 * 1024;

fn truncated_tar() -> Error {
    Error::corrupted("Truncated tar archive")
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean EOF before the first byte.
fn read_full(r: &mut dyn Read, buf: &mut [u8], truncated: fn() -> Error) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return if got == 0 {
                    Ok(false)
                } else {
                    Err(truncated())
                };
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading archive", e)),
        }
    }
    Ok(true)
}

fn skip(r: &mut dyn Read, n: u64, truncated: fn() -> Error) -> Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())
        .map_err(|e| Error::io("reading archive", e))?;
    if copied != n {
        return Err(truncated());
    }
    Ok(())
}

fn read_vec(r: &mut dyn Read, n: u64, truncated: fn() -> Error) -> Result<Vec<u8>> {
    if n > MAX_META {
        return Err(Error::corrupted(format!(
            "Archive metadata entry of {n} bytes is too large"
        )));
    }
    let mut v = vec![0u8; n as usize];
    if !read_full(r, &mut v, truncated)? && n > 0 {
        return Err(truncated());
    }
    Ok(v)
}

/// A reader of entries; the caller reads each entry's data (or not) before the next.
pub trait EntryReader: Send {
    /// The next entry, `None` at the end of the archive.
    fn next_entry(&mut self) -> Result<Option<ArchiveEntry>>;
    /// Read up to `buf.len()` bytes of the current entry's data (0 at its end).
    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize>;
}

// ------------------------------------------------------------------------------ tar

struct TarReader<R: Read> {
    r: R,
    /// Data bytes left in the current entry, then its padding.
    remaining: u64,
    padding: u64,
    done: bool,
}

fn parse_octal(field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256; negative values (0xff marker) are refused.
        if field[0] == 0xff {
            return Err(Error::corrupted("Negative number in tar header"));
        }
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            if v > (u64::MAX >> 8) {
                return Err(Error::corrupted("Number too large in tar header"));
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut started = false;
    for &b in field {
        match b {
            b' ' if !started => {}
            b'0'..=b'7' => {
                started = true;
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .ok_or_else(|| Error::corrupted("Number too large in tar header"))?;
            }
            _ => break,
        }
    }
    Ok(v)
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

fn header_checksum_ok(h: &[u8; 512]) -> bool {
    let Ok(stored) = parse_octal(&h[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// Parsed pax records that matter to ostree.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u32>,
    gid: Option<u32>,
    xattrs: Xattrs,
}

fn url_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hexval(s[i + 1]), hexval(s[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn parse_pax(data: &[u8], pax: &mut Pax) -> Result<()> {
    let bad = || Error::corrupted("Invalid pax extended header");
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let rec = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&rec[..eq], &rec[eq + 1..]);
        let num = |v: &[u8]| -> Result<u64> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(bad)
        };
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(num(value)?),
            b"uid" => pax.uid = Some(u32::try_from(num(value)?).map_err(|_| bad())?),
            b"gid" => pax.gid = Some(u32::try_from(num(value)?).map_err(|_| bad())?),
            _ if key.starts_with(b"SCHILY.xattr.") => {
                pax.xattrs.push((key[13..].to_vec(), value.to_vec()));
            }
            _ if key.starts_with(b"LIBARCHIVE.xattr.") => {
                let name = url_decode(&key[17..]);
                let v = base64_decode(value).ok_or_else(bad)?;
                pax.xattrs.push((name, v));
            }
            _ if key.starts_with(b"GNU.sparse.") => {
                return Err(Error::corrupted("Sparse tar entries are not supported"));
            }
            _ => {}
        }
    }
    Ok(())
}

impl<R: Read + Send> TarReader<R> {
    fn finish_current(&mut self) -> Result<()> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        skip(&mut self.r, n, truncated_tar)
    }

    fn next_header(&mut self) -> Result<Option<[u8; 512]>> {
        let mut h = [0u8; 512];
        if !read_full(&mut self.r, &mut h, truncated_tar)? {
            return Ok(None);
        }
        if h.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if !header_checksum_ok(&h) {
            return Err(Error::corrupted("Damaged tar archive"));
        }
        Ok(Some(h))
    }
}

impl<R: Read + Send> EntryReader for TarReader<R> {
    fn next_entry(&mut self) -> Result<Option<ArchiveEntry>> {
        if self.done {
            return Ok(None);
        }
        self.finish_current()?;
        let mut longname: Option<Vec<u8>> = None;
        let mut longlink: Option<Vec<u8>> = None;
        let mut pax = Pax::default();
        // Extension headers (bounded in number: each costs at least one block of input).
        loop {
            let Some(h) = self.next_header()? else {
                self.done = true;
                return Ok(None);
            };
            let size = parse_octal(&h[124..136])?;
            let pad = (512 - size % 512) % 512;
            let typeflag = h[156];
            match typeflag {
                b'L' | b'K' => {
                    let mut v = read_vec(&mut self.r, size, truncated_tar)?;
                    skip(&mut self.r, pad, truncated_tar)?;
                    v.truncate(cstr(&v).len());
                    if typeflag == b'L' {
                        longname = Some(v);
                    } else {
                        longlink = Some(v);
                    }
                    continue;
                }
                b'x' | b'X' => {
                    let v = read_vec(&mut self.r, size, truncated_tar)?;
                    skip(&mut self.r, pad, truncated_tar)?;
                    parse_pax(&v, &mut pax)?;
                    continue;
                }
                b'g' | b'V' => {
                    skip(&mut self.r, size + pad, truncated_tar)?;
                    continue;
                }
                _ => {}
            }
            let magic = &h[257..265];
            let posix = &magic[..6] == b"ustar\0";
            let mut name = cstr(&h[..100]).to_vec();
            if posix {
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&name);
                    name = p;
                }
            }
            if let Some(n) = longname.take() {
                name = n;
            }
            if let Some(n) = pax.path.take() {
                name = n;
            }
            let mut link = cstr(&h[157..257]).to_vec();
            if let Some(l) = longlink.take() {
                link = l;
            }
            if let Some(l) = pax.linkpath.take() {
                link = l;
            }
            let mode = parse_octal(&h[100..108])? as u32;
            let uid = match pax.uid {
                Some(u) => u,
                None => u32::try_from(parse_octal(&h[108..116])?)
                    .map_err(|_| Error::corrupted("uid out of range in tar header"))?,
            };
            let gid = match pax.gid {
                Some(g) => g,
                None => u32::try_from(parse_octal(&h[116..124])?)
                    .map_err(|_| Error::corrupted("gid out of range in tar header"))?,
            };
            let size = pax.size.unwrap_or(size);
            let mut hardlink = None;
            let mut symlink = None;
            let kind = match typeflag {
                b'0' | b'\0' | b'7' => {
                    if name.ends_with(b"/") {
                        EntryKind::Dir
                    } else {
                        EntryKind::File
                    }
                }
                b'1' => {
                    hardlink = Some(link);
                    EntryKind::File
                }
                b'2' => {
                    symlink = Some(link);
                    EntryKind::Symlink
                }
                b'3' => EntryKind::Char,
                b'4' => EntryKind::Block,
                b'5' | b'D' => EntryKind::Dir,
                b'6' => EntryKind::Fifo,
                b'S' => return Err(Error::corrupted("Sparse tar entries are not supported")),
                b'M' | b'N' => {
                    return Err(Error::corrupted(
                        "Multi-volume tar archives are not supported",
                    ));
                }
                // Unknown types are regular files (POSIX).
                _ => EntryKind::File,
            };
            // Only regular files (and hardlinks with data, dumpdirs) carry data; skip the rest.
            self.remaining = size;
            self.padding = (512 - size % 512) % 512;
            let data_size = match kind {
                EntryKind::File => size,
                _ => {
                    self.finish_current()?;
                    0
                }
            };
            let mut xattrs = std::mem::take(&mut pax.xattrs);
            xattrs.reverse();
            return Ok(Some(ArchiveEntry {
                path: name,
                kind,
                perms: mode & 0o7777,
                uid,
                gid,
                size: data_size,
                symlink,
                hardlink,
                xattrs,
            }));
        }
    }

    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading archive", e)),
            }
        };
        if n == 0 {
            return Err(truncated_tar());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

// ------------------------------------------------------------------------------ cpio

fn truncated_cpio() -> Error {
    Error::corrupted("Truncated cpio archive")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CpioFormat {
    Newc,
    Odc,
}

struct CpioReader<R: Read> {
    r: R,
    format: CpioFormat,
    remaining: u64,
    padding: u64,
    done: bool,
    /// (dev, ino) → (first name, links still expected), libarchive's `record_hardlink`.
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
}

fn parse_radix(field: &[u8], radix: u32) -> Result<u64> {
    let s = std::str::from_utf8(field).map_err(|_| Error::corrupted("Damaged cpio header"))?;
    u64::from_str_radix(s, radix).map_err(|_| Error::corrupted("Damaged cpio header"))
}

impl<R: Read + Send> CpioReader<R> {
    fn finish_current(&mut self) -> Result<()> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        skip(&mut self.r, n, truncated_cpio)
    }
}

impl<R: Read + Send> EntryReader for CpioReader<R> {
    fn next_entry(&mut self) -> Result<Option<ArchiveEntry>> {
        if self.done {
            return Ok(None);
        }
        self.finish_current()?;
        let (mode, uid, gid, nlink, size, dev, ino, namesize, hdr_len) = match self.format {
            CpioFormat::Newc => {
                let mut h = [0u8; 110];
                if !read_full(&mut self.r, &mut h, truncated_cpio)? {
                    return Err(truncated_cpio());
                }
                if &h[..5] != b"07070" || !(h[5] == b'1' || h[5] == b'2') {
                    return Err(Error::corrupted("Damaged cpio header"));
                }
                let f = |i: usize| parse_radix(&h[6 + 8 * i..14 + 8 * i], 16);
                let dev = (f(7)? << 32) | f(8)?;
                (
                    f(1)?,
                    f(2)?,
                    f(3)?,
                    f(4)?,
                    f(6)?,
                    dev,
                    f(0)?,
                    f(11)?,
                    110u64,
                )
            }
            CpioFormat::Odc => {
                let mut h = [0u8; 76];
                if !read_full(&mut self.r, &mut h, truncated_cpio)? {
                    return Err(truncated_cpio());
                }
                if &h[..6] != b"070707" {
                    return Err(Error::corrupted("Damaged cpio header"));
                }
                let f = |a: usize, b: usize| parse_radix(&h[a..b], 8);
                (
                    f(18, 24)?,
                    f(24, 30)?,
                    f(30, 36)?,
                    f(36, 42)?,
                    f(65, 76)?,
                    f(6, 12)?,
                    f(12, 18)?,
                    f(59, 65)?,
                    76u64,
                )
            }
        };
        let pad4 = |n: u64| (4 - n % 4) % 4;
        let mut name = read_vec(&mut self.r, namesize, truncated_cpio)?;
        if self.format == CpioFormat::Newc {
            skip(&mut self.r, pad4(hdr_len + namesize), truncated_cpio)?;
        }
        name.truncate(cstr(&name).len());
        let data_pad = if self.format == CpioFormat::Newc {
            pad4(size)
        } else {
            0
        };
        if name == b"TRAILER!!!" {
            self.done = true;
            return Ok(None);
        }
        let mode = mode as u32;
        let kind = match mode & S_IFMT {
            S_IFREG => EntryKind::File,
            S_IFDIR => EntryKind::Dir,
            S_IFLNK => EntryKind::Symlink,
            0o020000 => EntryKind::Char,
            0o060000 => EntryKind::Block,
            0o010000 => EntryKind::Fifo,
            0o140000 => EntryKind::Socket,
            _ => return Err(Error::corrupted("Damaged cpio header: unknown file type")),
        };
        let uid = u32::try_from(uid).map_err(|_| Error::corrupted("Damaged cpio header"))?;
        let gid = u32::try_from(gid).map_err(|_| Error::corrupted("Damaged cpio header"))?;
        self.remaining = size;
        self.padding = data_pad;
        let mut symlink = None;
        if kind == EntryKind::Symlink {
            if size > 1024 * 1024 {
                return Err(Error::corrupted(
                    "Rejecting malformed cpio archive: symlink contents exceed 1 megabyte",
                ));
            }
            let t = read_vec(&mut self.r, size, truncated_cpio)?;
            self.remaining = 0;
            symlink = Some(t);
        }
        let mut hardlink = None;
        if nlink > 1 {
            match self.links.get_mut(&(dev, ino)) {
                Some((first, left)) => {
                    hardlink = Some(first.clone());
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        self.links.remove(&(dev, ino));
                    }
                }
                None => {
                    if self.links.len() >= 1 << 20 {
                        return Err(Error::corrupted("Too many hardlinked cpio entries"));
                    }
                    self.links.insert((dev, ino), (name.clone(), nlink - 1));
                }
            }
        }
        let data_size = match kind {
            EntryKind::File | EntryKind::Symlink => size,
            _ => {
                self.finish_current()?;
                0
            }
        };
        Ok(Some(ArchiveEntry {
            path: name,
            kind,
            perms: mode & 0o7777,
            uid,
            gid,
            size: data_size,
            symlink,
            hardlink,
            xattrs: Vec::new(),
        }))
    }

    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = loop {
            match self.r.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading archive", e)),
            }
        };
        if n == 0 {
            return Err(truncated_cpio());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// An archive with no entries (an empty input).
struct EmptyReader;

impl EntryReader for EmptyReader {
    fn next_entry(&mut self) -> Result<Option<ArchiveEntry>> {
        Ok(None)
    }
    fn read_data(&mut self, _buf: &mut [u8]) -> Result<usize> {
        Ok(0)
    }
}

/// Peek at the start of a buffered reader (up to `n` bytes, fewer at EOF).
fn peek(r: &mut BufReader<Box<dyn Read + Send>>, n: usize) -> Result<Vec<u8>> {
    // BufReader only refills when empty; read through a small look-ahead instead.
    let buf = r.fill_buf().map_err(|e| Error::io("reading archive", e))?;
    Ok(buf[..buf.len().min(n)].to_vec())
}

/// Open an archive: detect compression (gzip, xz) and format (tar, cpio) by magic bytes.
pub fn open_archive(input: Box<dyn Read + Send>) -> Result<Box<dyn EntryReader>> {
    let mut br = BufReader::with_capacity(64 * 1024, input);
    let head = peek(&mut br, 6)?;
    let decoded: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(br))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(br))
    } else if head.starts_with(b"BZh") {
        return Err(Error::invalid(
            "bzip2-compressed archives are not supported; decompress first",
        ));
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::invalid(
            "zstd-compressed archives are not supported; decompress first",
        ));
    } else {
        Box::new(br)
    };
    let mut br = BufReader::with_capacity(64 * 1024, decoded);
    // The first 512 bytes decide the format.
    let head = peek_exact(&mut br)?;
    let inner: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head.clone()).chain(br));
    if head.is_empty() {
        return Ok(Box::new(EmptyReader));
    }
    if head.starts_with(b"070701") || head.starts_with(b"070702") {
        return Ok(Box::new(CpioReader {
            r: inner,
            format: CpioFormat::Newc,
            remaining: 0,
            padding: 0,
            done: false,
            links: HashMap::new(),
        }));
    }
    if head.starts_with(b"070707") {
        return Ok(Box::new(CpioReader {
            r: inner,
            format: CpioFormat::Odc,
            remaining: 0,
            padding: 0,
            done: false,
            links: HashMap::new(),
        }));
    }
    if head.len() == 512 {
        let mut h = [0u8; 512];
        h.copy_from_slice(&head);
        if h.iter().all(|&b| b == 0) || header_checksum_ok(&h) {
            return Ok(Box::new(TarReader {
                r: inner,
                remaining: 0,
                padding: 0,
                done: false,
            }));
        }
    }
    Err(Error::invalid("Unrecognized archive format"))
}

/// Read up to 512 bytes from the start of the decoded stream.
fn peek_exact(br: &mut BufReader<Box<dyn Read + Send>>) -> Result<Vec<u8>> {
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match br.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading archive", e)),
        }
    }
    head.truncate(got);
    Ok(head)
}

// ------------------------------------------------------------------------------ paths

/// libarchive-import's `path_relative`: drop leading `/` (and `/../` right after them), `./`
/// and empty components; `.` alone is the root (empty string). `..` left anywhere is an error.
pub fn path_relative(src: &str) -> Result<String> {
    let mut s = src;
    while let Some(rest) = s.strip_prefix('/') {
        s = rest;
        if s.starts_with("../") {
            s = &s[2..];
        }
    }
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            break;
        }
    }
    if s == "." {
        s = "";
    }
    split_validate(s)
        .map_err(|e| Error::invalid(format!("While making relative path \"{s}\":{e}")))?;
    Ok(s.to_string())
}

/// `ot_util_path_split_validate`: components without `.` and empty ones; `..` is an error.
fn split_validate(path: &str) -> Result<Vec<String>> {
    if path.len() > 4096 {
        return Err(Error::invalid(format!("Path '{path}' is too long")));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        if c == ".." {
            return Err(Error::invalid(format!(
                "Invalid uplink '..' in path {path}"
            )));
        }
        if c.is_empty() || c == "." {
            continue;
        }
        out.push(c.to_string());
    }
    Ok(out)
}

// ------------------------------------------------------------------------------ import

/// What the reader thread hands to the tree builder, in archive order.
enum Event {
    Dir {
        comps: Vec<String>,
        meta: DirMeta,
        raw_uid: u32,
        raw_gid: u32,
    },
    File {
        comps: Vec<String>,
        raw_uid: u32,
        raw_gid: u32,
        /// The content object, when this entry carries one (not a data-less hardlink).
        object: Option<(Checksum, FileMeta, u64, Body)>,
        /// Hardlink target components, when this entry is one.
        hardlink: Option<(Vec<String>, String)>,
        size: u64,
    },
    Unsupported {
        comps: Vec<String>,
        raw_uid: u32,
        raw_gid: u32,
        path: String,
    },
}

/// File data read from the archive: in memory, or spooled to a temporary file when large.
enum Body {
    Mem(Bytes),
    Spool(Spool),
}

/// Files larger than this are spooled to disk instead of held in memory.
const SPOOL_OVER: u64 = 32 * 1024 * 1024;

/// A hardlink waiting for the end of the archive.
struct Deferred {
    parent: Vec<String>,
    name: String,
    size: u64,
}

struct Prepared {
    /// Where large files are spooled (the repository's `tmp/` when local).
    spool_dir: std::path::PathBuf,
    modifier: CommitModifier,
    canonical: bool,
    skip_xattrs: bool,
    opts: ArchiveImportOptions,
}

impl Prepared {
    fn final_path(&self, raw: &[u8]) -> Result<String> {
        let raw = std::str::from_utf8(raw).map_err(|_| {
            Error::invalid(format!(
                "Invalid UTF-8 in filename {}",
                String::from_utf8_lossy(raw)
            ))
        })?;
        let rel = path_relative(raw)?;
        Ok(match &self.opts.translate_pathname {
            Some(t) => t(&rel),
            None => rel,
        })
    }

    /// Filter + canonicalization (`_ostree_repo_commit_modifier_apply`).
    fn apply(&self, rel: &str, info: &mut EntryInfo) -> bool {
        let abs = format!("/{rel}");
        if let Some(f) = &self.modifier.filter
            && f(&abs, info) == FilterResult::Skip
        {
            return false;
        }
        if self.canonical {
            match info.mode & S_IFMT {
                S_IFREG => info.mode &= S_IFREG | 0o755,
                S_IFDIR => info.mode &= S_IFDIR | 0o755,
                _ => {}
            }
            info.uid = 0;
            info.gid = 0;
        }
        true
    }

    /// Copy the current entry's data to a new temporary file, hashing it on the way.
    fn spool(
        &self,
        reader: &mut dyn EntryReader,
        buf: &mut [u8],
        h: &mut crate::checksum::Hasher,
    ) -> Result<(u64, Body)> {
        use std::io::Write;
        let (spool, f) = Spool::create(&self.spool_dir, "tar-import")?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut total = 0u64;
        loop {
            let n = reader.read_data(buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            w.write_all(&buf[..n])
                .map_err(|e| Error::io_path("writing spool file", spool.path(), e))?;
            total += n as u64;
        }
        w.flush()
            .map_err(|e| Error::io_path("writing spool file", spool.path(), e))?;
        Ok((total, Body::Spool(spool)))
    }

    /// Read one archive into events; runs on a blocking thread.
    fn read_all(
        &self,
        mut reader: Box<dyn EntryReader>,
        tx: tokio::sync::mpsc::Sender<Result<Event>>,
    ) -> Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while let Some(e) = reader.next_entry()? {
            let path = self.final_path(&e.path)?;
            let path = path.trim_end_matches('/').to_string();
            let hardlink = match &e.hardlink {
                Some(h) => {
                    let t = self.final_path(h)?;
                    Some((split_validate(&t)?, t))
                }
                None => None,
            };
            let mut info = EntryInfo {
                uid: e.uid,
                gid: e.gid,
                mode: e.st_mode(),
            };
            if !self.apply(&path, &mut info) {
                continue;
            }
            let comps = split_validate(&path)?;
            let xattrs = if self.skip_xattrs {
                Vec::new()
            } else {
                e.xattrs.clone()
            };
            let ev = match e.st_mode() & S_IFMT {
                S_IFDIR => Event::Dir {
                    comps,
                    meta: DirMeta {
                        uid: info.uid,
                        gid: info.gid,
                        mode: info.mode,
                        xattrs,
                    },
                    raw_uid: e.uid,
                    raw_gid: e.gid,
                },
                S_IFREG | S_IFLNK => {
                    let is_link = e.st_mode() & S_IFMT == S_IFLNK;
                    let object = if hardlink.is_none() || e.size > 0 {
                        let meta = FileMeta {
                            uid: info.uid,
                            gid: info.gid,
                            mode: info.mode,
                            symlink_target: if is_link {
                                let t = e.symlink.clone().unwrap_or_default();
                                Some(String::from_utf8(t).map_err(|_| {
                                    Error::invalid(format!(
                                        "Invalid UTF-8 in symlink target of {path}"
                                    ))
                                })?)
                            } else {
                                None
                            },
                            xattrs,
                        };
                        meta.validate()
                            .map_err(|err| Error::invalid(format!("{path}: {err}")))?;
                        let mut h = crate::checksum::Hasher::new();
                        h.update(&meta.file_header());
                        let (size, data) = if is_link {
                            (0, Body::Mem(Bytes::new()))
                        } else if e.size > SPOOL_OVER {
                            self.spool(reader.as_mut(), &mut buf, &mut h)?
                        } else {
                            let mut data = Vec::with_capacity(e.size as usize);
                            loop {
                                let n = reader.read_data(&mut buf)?;
                                if n == 0 {
                                    break;
                                }
                                h.update(&buf[..n]);
                                data.extend_from_slice(&buf[..n]);
                            }
                            (data.len() as u64, Body::Mem(Bytes::from(data)))
                        };
                        Some((h.finish(), meta, size, data))
                    } else {
                        None
                    };
                    Event::File {
                        comps,
                        raw_uid: e.uid,
                        raw_gid: e.gid,
                        object,
                        hardlink,
                        size: e.size,
                    }
                }
                _ => Event::Unsupported {
                    comps,
                    raw_uid: e.uid,
                    raw_gid: e.gid,
                    path,
                },
            };
            if tx.blocking_send(Ok(ev)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Immutable walk to `comps` (all must be directories).
fn walk<'a>(root: &'a MutableTree, comps: &[String]) -> Option<&'a MutableTree> {
    let mut cur = root;
    for c in comps {
        cur = cur.dirs.get(c)?;
    }
    Some(cur)
}

fn walk_mut<'a>(root: &'a mut MutableTree, comps: &[String]) -> Option<&'a mut MutableTree> {
    let mut cur = root;
    for c in comps {
        cur = cur.dirs.get_mut(c)?;
    }
    Some(cur)
}

impl Repo {
    /// Load lazily represented directories along `comps` (those that exist).
    async fn load_along(&self, root: &mut MutableTree, comps: &[String]) -> Result<()> {
        let mut cur = root;
        cur.ensure_loaded(self).await?;
        for c in comps {
            match cur.dirs.get_mut(c) {
                Some(d) => {
                    d.ensure_loaded(self).await?;
                    cur = d;
                }
                None => break,
            }
        }
        Ok(())
    }

    /// The parent directory of `comps` (`aic_get_parent_dir`), created with default dirmetas
    /// when `autocreate`; returns its components.
    async fn archive_parent(
        &self,
        root: &mut MutableTree,
        comps: &[String],
        autocreate: bool,
        owner: (u32, u32),
        stats: &mut CommitStats,
    ) -> Result<Vec<String>> {
        let parent: Vec<String> = comps[..comps.len().saturating_sub(1)].to_vec();
        self.load_along(root, &parent).await?;
        if walk(root, &parent).is_some() {
            return Ok(parent);
        }
        if !autocreate {
            let mut cur = &*root;
            for c in &parent {
                match cur.dirs.get(c) {
                    Some(d) => cur = d,
                    None => {
                        return Err(Error::not_found(format!("No such file or directory: {c}")));
                    }
                }
            }
            return Ok(parent);
        }
        // aic_create_parent_dirs: the root and every parent get a 0755 dirmeta owned by the
        // entry's owner, even those that exist.
        let dm = DirMeta {
            uid: owner.0,
            gid: owner.1,
            mode: S_IFDIR | 0o755,
            xattrs: Vec::new(),
        };
        let m = self
            .write_meta_object(ObjectType::DirMeta, dm.to_bytes(), stats)
            .await?;
        root.meta = Some(m);
        let mut cur = root;
        for c in &parent {
            cur.ensure_loaded(self).await?;
            let sub = cur
                .ensure_dir(c)
                .map_err(|e| Error::invalid(format!("ostree-tar: Failed to create parent: {e}")))?;
            sub.ensure_loaded(self).await?;
            sub.meta = Some(m);
            cur = sub;
        }
        Ok(parent)
    }

    /// Import an archive (tar or cpio, possibly gzip- or xz-compressed) into `mtree`, storing its
    /// content objects (`ostree_repo_import_archive_to_mtree`).
    pub async fn write_archive_to_mtree(
        &self,
        input: Box<dyn Read + Send>,
        mtree: &mut MutableTree,
        modifier: &CommitModifier,
        opts: &ArchiveImportOptions,
        stats: &mut CommitStats,
    ) -> Result<()> {
        let (canonical, _) = self.effective_modifier(modifier);
        let skip_xattrs = modifier.skip_xattrs || self.mode() == RepoMode::BareUserOnly;
        let spool_dir = crate::spool::dir_for(self);
        let prep = Arc::new(Prepared {
            spool_dir,
            modifier: modifier.clone(),
            canonical,
            skip_xattrs,
            opts: opts.clone(),
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Event>>(8);
        let p2 = prep.clone();
        let reader = tokio::task::spawn_blocking(move || -> Result<()> {
            let r = open_archive(input).and_then(|a| p2.read_all(a, tx.clone()));
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
            Ok(())
        });

        let store = self.store().clone();
        let mut puts = FuturesUnordered::new();
        let limit = std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(2)
            * 2;
        // Deferred hardlinks by target path, in first-seen order of targets.
        let mut deferred: Vec<(String, Vec<String>, Vec<Deferred>)> = Vec::new();
        let mut deferred_idx: HashMap<String, usize> = HashMap::new();
        let result: Result<()> = async {
            while let Some(ev) = rx.recv().await {
                match ev? {
                    Event::Dir {
                        comps,
                        meta,
                        raw_uid,
                        raw_gid,
                    } => {
                        let parent = self
                            .archive_parent(
                                mtree,
                                &comps,
                                opts.autocreate_parents,
                                (raw_uid, raw_gid),
                                stats,
                            )
                            .await?;
                        let m = self
                            .write_meta_object(ObjectType::DirMeta, meta.to_bytes(), stats)
                            .await?;
                        let p = walk_mut(mtree, &parent)
                            .ok_or_else(|| Error::Other("tar import: parent vanished".into()))?;
                        let dir = match comps.last() {
                            None => p,
                            Some(name) => p.ensure_dir(name).map_err(|e| {
                                Error::invalid(format!(
                                    "ostree-tar: Failed to handle directory: {e}"
                                ))
                            })?,
                        };
                        dir.meta = Some(m);
                    }
                    Event::Unsupported {
                        comps,
                        raw_uid,
                        raw_gid,
                        path,
                    } => {
                        self.archive_parent(
                            mtree,
                            &comps,
                            opts.autocreate_parents,
                            (raw_uid, raw_gid),
                            stats,
                        )
                        .await?;
                        return Err(Error::invalid(format!(
                            "Unsupported file type for path \"{path}\""
                        )));
                    }
                    Event::File {
                        comps,
                        raw_uid,
                        raw_gid,
                        object,
                        hardlink,
                        size,
                    } => {
                        let parent = self
                            .archive_parent(
                                mtree,
                                &comps,
                                opts.autocreate_parents,
                                (raw_uid, raw_gid),
                                stats,
                            )
                            .await?;
                        let Some(name) = comps.last().cloned() else {
                            return Err(Error::invalid(
                                "ostree-tar: Failed to handle file: Invalid empty filename",
                            ));
                        };
                        crate::objects::validate_filename(&name)?;
                        if let Some((csum, meta, size, data)) = object {
                            let key = ObjectKey::new(csum, ObjectType::File);
                            stats.content_objects_total += 1;
                            while puts.len() >= limit {
                                if let Some(r) = puts.next().await {
                                    record_put(stats, r?);
                                }
                            }
                            let store = store.clone();
                            let unpacked = if meta.is_symlink() {
                                meta.symlink_target.as_ref().map_or(0, |t| t.len() as u64)
                            } else {
                                size
                            };
                            let want_size = stats.sizes.is_some();
                            puts.push(async move {
                                let written = if store.has(&key).await? {
                                    false
                                } else {
                                    let source = match &data {
                                        Body::Mem(b) => ContentSource::Bytes(b.clone()),
                                        Body::Spool(s) => {
                                            ContentSource::Path(s.path().to_path_buf())
                                        }
                                    };
                                    store
                                        .put(&key, ObjectWrite::Content { meta, size, source })
                                        .await?;
                                    true
                                };
                                drop(data);
                                let archived = if want_size {
                                    Some(super::commit::stored_size(store.as_ref(), &key).await?)
                                } else {
                                    None
                                };
                                Ok::<_, Error>((key, written, size, unpacked, archived))
                            });
                            // Collect finished writes' stats as they come.
                            while let Some(Some(r)) = futures::FutureExt::now_or_never(puts.next())
                            {
                                record_put(stats, r?);
                            }
                            let p = walk_mut(mtree, &parent).ok_or_else(|| {
                                Error::Other("tar import: parent vanished".into())
                            })?;
                            p.replace_file(&name, csum).map_err(|e| {
                                Error::invalid(format!("ostree-tar: Failed to handle file: {e}"))
                            })?;
                        }
                        if let Some((target, tpath)) = hardlink {
                            let i = *deferred_idx.entry(tpath.clone()).or_insert_with(|| {
                                deferred.push((tpath.clone(), target, Vec::new()));
                                deferred.len() - 1
                            });
                            deferred[i].2.push(Deferred { parent, name, size });
                        }
                    }
                }
            }
            while let Some(r) = puts.next().await {
                record_put(stats, r?);
            }
            Ok(())
        }
        .await;
        drop(rx);
        reader
            .await
            .map_err(|e| Error::Other(format!("archive reader failed: {e}")))??;
        result?;

        // Deferred hardlinks, in GHashTable iteration order of their targets like ostree.
        let order = super::commit::glib_hash_order(deferred.iter().map(|d| d.0.as_str()));
        for i in order {
            let (tpath, target, links) = &deferred[i];
            self.resolve_hardlinks(mtree, tpath, target, links)
                .await
                .map_err(|e| {
                    Error::invalid(format!(
                        "ostree-tar: Processing deferred hardlink {tpath}: {e}"
                    ))
                })?;
        }

        // An archive with nothing in it still gets a root with autocreation.
        if opts.autocreate_parents && mtree.meta.is_none() {
            let mut info = EntryInfo {
                uid: 0,
                gid: 0,
                mode: S_IFDIR | 0o755,
            };
            prep.apply("", &mut info);
            let dm = DirMeta {
                uid: info.uid,
                gid: info.gid,
                mode: info.mode,
                xattrs: Vec::new(),
            };
            mtree.meta = Some(
                self.write_meta_object(ObjectType::DirMeta, dm.to_bytes(), stats)
                    .await?,
            );
        }
        Ok(())
    }

    async fn resolve_hardlinks(
        &self,
        root: &mut MutableTree,
        _tpath: &str,
        target: &[String],
        links: &[Deferred],
    ) -> Result<()> {
        let Some(tname) = target.last() else {
            return Err(Error::invalid(
                "Failed to find object: Invalid empty filename",
            ));
        };
        let tparent = &target[..target.len() - 1];
        self.load_along(root, target).await?;
        let lookup =
            |root: &MutableTree, parent: &[String], name: &str| -> Result<Option<Checksum>> {
                let mut cur = root;
                for c in parent {
                    cur = cur.dirs.get(c).ok_or_else(|| {
                        Error::not_found(format!("No such file or directory: {c}"))
                    })?;
                }
                Ok(cur.files.get(name).copied())
            };
        // The first link carrying data gives its checksum to the target.
        let payload = links.iter().position(|d| d.size > 0);
        if let Some(p) = payload {
            let d = &links[p];
            let csum = lookup(root, &d.parent, &d.name)
                .map_err(|e| Error::invalid(format!("Failed importing hardlink: {e}")))?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Failed importing hardlink: No such file or directory: {}",
                        d.name
                    ))
                })?;
            let tp = walk_mut(root, tparent).ok_or_else(|| {
                Error::invalid("Failed importing hardlink: No such file or directory")
            })?;
            tp.replace_file(tname, csum)
                .map_err(|e| Error::invalid(format!("Failed importing hardlink: {e}")))?;
        }
        let fail = |e: Error| Error::invalid(format!("Failed to find object: {e}"));
        let mut cur = &*root;
        for c in tparent {
            cur = cur
                .dirs
                .get(c)
                .ok_or_else(|| fail(Error::not_found(format!("No such file or directory: {c}"))))?;
        }
        if cur.dirs.contains_key(tname) {
            return Err(fail(Error::invalid(format!(
                "Expected hardlink file target at \"{}\" but found a directory",
                target.join("/")
            ))));
        }
        let csum = *cur.files.get(tname).ok_or_else(|| {
            fail(Error::not_found(format!(
                "No such file or directory: {tname}"
            )))
        })?;
        for (i, d) in links.iter().enumerate() {
            if Some(i) == payload {
                continue;
            }
            let p = walk_mut(root, &d.parent).ok_or_else(|| {
                Error::invalid("Failed to replace file: No such file or directory")
            })?;
            p.replace_file(&d.name, csum)
                .map_err(|e| Error::invalid(format!("Failed to replace file: {e}")))?;
        }
        Ok(())
    }
}

fn record_put(stats: &mut CommitStats, r: (ObjectKey, bool, u64, u64, Option<u64>)) {
    let (key, written, size, unpacked, archived) = r;
    if written {
        stats.content_objects_written += 1;
        stats.content_bytes_written += size;
    }
    if let (Some(sizes), Some(archived)) = (stats.sizes.as_mut(), archived) {
        sizes.insert(
            key.checksum,
            super::commit::SizeEntry {
                objtype: ObjectType::File,
                unpacked,
                archived,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(data: Vec<u8>) -> Result<Vec<(ArchiveEntry, Vec<u8>)>> {
        let mut r = open_archive(Box::new(std::io::Cursor::new(data)))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        while let Some(e) = r.next_entry()? {
            let mut d = Vec::new();
            loop {
                let n = r.read_data(&mut buf)?;
                if n == 0 {
                    break;
                }
                d.extend_from_slice(&buf[..n]);
            }
            out.push((e, d));
        }
        Ok(out)
    }

    fn sample_tar() -> Vec<u8> {
        let mut w = crate::repo::export::GnuTarWriter::new(Vec::new());
        w.entry_header(".", b'5', 0o40755, 0, 0, 0, 1, "").unwrap();
        w.entry_header("a", b'0', 0o100644, 1, 2, 5, 1, "").unwrap();
        w.data(b"hello").unwrap();
        w.finish_entry(5).unwrap();
        let long = "d/".to_string() + &"x".repeat(150);
        w.entry_header(&long, b'2', 0o120777, 0, 0, 0, 1, &"t".repeat(120))
            .unwrap();
        w.finish(true).unwrap()
    }

    #[test]
    fn reads_our_export() {
        let es = entries(sample_tar()).unwrap();
        assert_eq!(es.len(), 3);
        assert_eq!(es[0].0.path, b"./");
        assert_eq!(es[0].0.kind, EntryKind::Dir);
        assert_eq!(es[1].1, b"hello");
        assert_eq!((es[1].0.uid, es[1].0.gid, es[1].0.perms), (1, 2, 0o644));
        assert_eq!(es[2].0.path.len(), 152);
        assert_eq!(es[2].0.symlink.as_deref(), Some("t".repeat(120).as_bytes()));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(path_relative("/../../x").unwrap(), "x");
        assert_eq!(path_relative("./a/b/").unwrap(), "a/b/");
        assert_eq!(path_relative(".").unwrap(), "");
        assert_eq!(path_relative("/etc/abs").unwrap(), "etc/abs");
        assert!(path_relative("../evil").is_err());
        assert!(path_relative("a/../../evil").is_err());
    }

    #[test]
    fn truncated_and_garbage() {
        let t = sample_tar();
        for cut in [100, 600, 1030, 1600, 2000] {
            let r = entries(t[..cut].to_vec());
            assert!(r.is_err(), "cut at {cut} should fail");
        }
        assert!(entries(b"hello world".repeat(100)).is_err());
        assert!(entries(Vec::new()).unwrap().is_empty());
    }

    /// Deterministic mutation test: flipping, truncating and overwriting bytes of valid
    /// archives never panics and never allocates beyond the bounds.
    #[test]
    fn mutations_never_panic() {
        let mut seeds = vec![sample_tar()];
        // a newc cpio sample
        let mut c = Vec::new();
        for (name, mode, data) in [
            (".", 0o40755u32, &b""[..]),
            ("f", 0o100644, &b"abc"[..]),
            ("TRAILER!!!", 0, &b""[..]),
        ] {
            let h = format!(
                "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                1,
                mode,
                0,
                0,
                1,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            c.extend_from_slice(h.as_bytes());
            c.extend_from_slice(name.as_bytes());
            c.push(0);
            while c.len() % 4 != 0 {
                c.push(0);
            }
            c.extend_from_slice(data);
            while c.len() % 4 != 0 {
                c.push(0);
            }
        }
        assert_eq!(entries(c.clone()).unwrap().len(), 2);
        seeds.push(c);
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in &seeds {
            for _ in 0..3000 {
                let mut m = seed.clone();
                match rnd() % 4 {
                    0 => {
                        let i = (rnd() as usize) % m.len();
                        m[i] ^= 1 << (rnd() % 8);
                    }
                    1 => {
                        let n = (rnd() as usize) % m.len();
                        m.truncate(n);
                    }
                    2 => {
                        let i = (rnd() as usize) % m.len();
                        let v = [b'7', 0xff, 0x80, b' ', 0, b'x'][(rnd() % 6) as usize];
                        for b in m.iter_mut().skip(i).take(12) {
                            *b = v;
                        }
                    }
                    _ => {
                        let i = (rnd() as usize) % m.len();
                        m[i] = rnd() as u8;
                    }
                }
                let _ = entries(m);
            }
        }
    }
}
