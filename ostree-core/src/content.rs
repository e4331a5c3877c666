//! Codecs for content objects shared by every backend: the archive (`.filez`) form, the
//! checksum stream, and verification of content received from elsewhere.

use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use crate::objects::{FileMeta, content_checksum, read_lenprefixed_header};
use crate::{Checksum, Error, ObjectKey, ObjectType, Result};

/// Deflate level ostree uses for `.filez` (zlib's default, 6).
pub const ARCHIVE_LEVEL: u32 = 6;

/// Write an archive object: header, then raw deflate of `content` (nothing for symlinks).
/// Returns the number of content bytes read, which must equal `size`.
pub fn write_archived(
    meta: &FileMeta,
    size: u64,
    content: impl Read,
    mut out: impl Write,
) -> Result<()> {
    out.write_all(&meta.archive_header(size))
        .map_err(|e| Error::io("writing archive object header", e))?;
    if meta.is_symlink() {
        return Ok(());
    }
    let mut enc = DeflateEncoder::new(out, Compression::new(ARCHIVE_LEVEL));
    let n = io::copy(&mut content.take(size.saturating_add(1)), &mut enc)
        .map_err(|e| Error::io("compressing content", e))?;
    if n != size {
        return Err(Error::Other(format!(
            "content changed while being stored: expected {size} bytes, read {n}"
        )));
    }
    enc.finish()
        .map_err(|e| Error::io("compressing content", e))?;
    Ok(())
}

/// Archive-encode in memory.
pub fn archived_bytes(meta: &FileMeta, content: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len() / 2 + 64);
    write_archived(meta, content.len() as u64, content, &mut out)?;
    Ok(out)
}

/// A reader yielding exactly `size` bytes of inflated content, erroring on short or long data.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
    checked_end: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.checked_end {
                self.checked_end = true;
                let mut one = [0u8; 1];
                if self.inner.read(&mut one)? != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "archive object has more content than its header says",
                    ));
                }
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive object content is truncated",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Decode an archive object from a reader: metadata, size, and a reader of exactly `size`
/// inflated bytes.
pub fn read_archived<R: Read + Send + 'static>(
    mut r: R,
) -> Result<(FileMeta, u64, Box<dyn Read + Send>)> {
    let hdr = read_lenprefixed_header(&mut r)?;
    let (meta, size, _) = FileMeta::parse_archive_header(&hdr)?;
    if meta.is_symlink() {
        if size != 0 {
            return Err(Error::corrupted("archive symlink object with a size"));
        }
        return Ok((meta, 0, Box::new(io::empty())));
    }
    let reader = ExactReader {
        inner: DeflateDecoder::new(r),
        remaining: size,
        checked_end: false,
    };
    Ok((meta, size, Box::new(reader)))
}

/// Verify that `.filez` bytes decode and hash to `expected`.
pub fn verify_archived(expected: &Checksum, data: &[u8]) -> Result<()> {
    let (meta, _size, reader) = read_archived(io::Cursor::new(data.to_vec()))?;
    let actual = content_checksum(&meta, reader)?;
    check(ObjectType::File, expected, &actual)
}

/// Verify a metadata object's bytes against its name (commitmeta/tombstone are not
/// content-addressed and only checked to parse).
pub fn verify_meta(key: &ObjectKey, data: &[u8]) -> Result<()> {
    match key.ty {
        ObjectType::CommitMeta | ObjectType::TombstoneCommit => {
            crate::objects::Metadata::from_bytes(data).map(|_| ())
        }
        ObjectType::File => Err(Error::invalid("verify_meta called on a content object")),
        ty => check(ty, &key.checksum, &Checksum::of(data)),
    }
}

/// A checksum mismatch error unless equal.
pub fn check(ty: ObjectType, expected: &Checksum, actual: &Checksum) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            kind: ty.name().to_string(),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{S_IFLNK, S_IFREG};

    #[test]
    fn archive_roundtrip_and_verify() {
        let meta = FileMeta {
            mode: S_IFREG | 0o644,
            ..Default::default()
        };
        let data = archived_bytes(&meta, b"hello world\n").unwrap();
        let c =
            Checksum::from_hex("81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6")
                .unwrap();
        verify_archived(&c, &data).unwrap();
        let mut bad = data.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0xff;
        assert!(verify_archived(&c, &bad).is_err());
        // truncated
        assert!(verify_archived(&c, &data[..data.len() - 2]).is_err());
        let link = FileMeta {
            mode: S_IFLNK | 0o777,
            symlink_target: Some("/usr/bin/env".into()),
            ..Default::default()
        };
        assert_eq!(archived_bytes(&link, b"").unwrap().len(), 46);
    }

    #[test]
    fn empty_file_deflate_matches_zlib() {
        let meta = FileMeta {
            mode: S_IFREG | 0o600,
            ..Default::default()
        };
        let data = archived_bytes(&meta, b"").unwrap();
        assert_eq!(&data[data.len() - 2..], &[3, 0]);
    }
}
