//! Extended attributes of open files and of paths (symlinks).

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use ostree_core::objects::{Xattrs, sort_xattrs};
use rustix::buffer::spare_capacity;
use rustix::fs::XattrFlags;
use rustix::io::Errno;

/// Where the attributes live: an open file, or a path that is not followed (symlinks).
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Fd(BorrowedFd<'a>),
    Link(&'a Path),
}

fn list_raw(t: Target<'_>) -> io::Result<Vec<u8>> {
    let mut cap = 256;
    loop {
        let mut v: Vec<u8> = Vec::with_capacity(cap);
        let r = match t {
            Target::Fd(fd) => rustix::fs::flistxattr(fd, spare_capacity(&mut v)),
            Target::Link(p) => rustix::fs::llistxattr(p, spare_capacity(&mut v)),
        };
        match r {
            Ok(_) => return Ok(v),
            Err(Errno::RANGE) => {
                let need = match t {
                    Target::Fd(fd) => rustix::fs::flistxattr_query(fd),
                    Target::Link(p) => rustix::fs::llistxattr_query(p),
                }?;
                cap = need.max(cap * 2);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One attribute's value, or `None` when absent.
pub(crate) fn get(t: Target<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut cap = 256;
    loop {
        let mut v: Vec<u8> = Vec::with_capacity(cap);
        let r = match t {
            Target::Fd(fd) => rustix::fs::fgetxattr(fd, name, spare_capacity(&mut v)),
            Target::Link(p) => rustix::fs::lgetxattr(p, name, spare_capacity(&mut v)),
        };
        match r {
            Ok(_) => return Ok(Some(v)),
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(Errno::RANGE) => {
                let need = match t {
                    Target::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
                    Target::Link(p) => rustix::fs::lgetxattr_query(p, name),
                };
                match need {
                    Ok(n) => cap = n.max(cap * 2),
                    Err(Errno::NODATA) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// All attributes, sorted by name as ostree sorts them.
pub(crate) fn get_all(t: Target<'_>) -> io::Result<Xattrs> {
    let names = list_raw(t)?;
    let mut out = Xattrs::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if let Some(v) = get(t, name)? {
            out.push((name.to_vec(), v));
        }
    }
    sort_xattrs(&mut out);
    Ok(out)
}

/// Set one attribute.
pub(crate) fn set(t: Target<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let r = match t {
        Target::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()),
        Target::Link(p) => rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()),
    };
    r.map_err(Into::into)
}
