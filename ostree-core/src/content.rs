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

/// Inflate an archive object held whole in memory, in one call (libdeflate, ~1.4× the speed
/// of the streaming reader's zlib-rs here): its metadata and exactly the `size` bytes its
/// header gives, into a buffer of that size (a stream that would give more stops there).
/// `Ok(None)` when that size is over `max_size` (stream it with [`read_archived`] instead).
/// A stream that ends early is truncated, one that yields more is too long, a bad one is
/// corrupted (libdeflate reports a stream cut short as bad data: the message says both).
///
/// ```
/// use ostree_core::content::{archived_bytes, inflate_archived};
/// use ostree_core::objects::{FileMeta, S_IFREG};
/// let meta = FileMeta { mode: S_IFREG | 0o644, ..Default::default() };
/// let filez = archived_bytes(&meta, b"hello").unwrap();
/// let (m, body) = inflate_archived(&filez, 1 << 20).unwrap().unwrap();
/// assert_eq!((m.mode, &body[..]), (S_IFREG | 0o644, &b"hello"[..]));
/// assert!(inflate_archived(&filez, 4).unwrap().is_none());
/// ```
pub fn inflate_archived(data: &[u8], max_size: u64) -> Result<Option<(FileMeta, Vec<u8>)>> {
    use libdeflater::{DecompressionError, Decompressor};
    // Decompressors (their tables) are reused across objects.
    static STATES: crate::pool::Pool<Decompressor> = crate::pool::Pool::new(8);
    let mut rest = data;
    let hdr = read_lenprefixed_header(&mut rest)?;
    let (meta, size, _) = FileMeta::parse_archive_header(&hdr)?;
    if meta.is_symlink() {
        if size != 0 {
            return Err(Error::corrupted("archive symlink object with a size"));
        }
        return Ok(Some((meta, Vec::new())));
    }
    if size > max_size {
        return Ok(None);
    }
    let size = usize::try_from(size)
        .map_err(|_| Error::corrupted("archive object size does not fit in memory"))?;
    let mut z = STATES.take().unwrap_or_default();
    // One byte of room past `size`: a stream with more content fills it (or does not fit).
    let mut out = vec![0u8; size + 1];
    let res = z.deflate_decompress(rest, &mut out);
    STATES.give(z);
    match res {
        Ok(n) if n == size => {
            out.truncate(size);
            Ok(Some((meta, out)))
        }
        Ok(n) if n < size => Err(Error::corrupted("archive object content is truncated")),
        Ok(_) | Err(DecompressionError::InsufficientSpace) => Err(Error::corrupted(
            "archive object has more content than its header says",
        )),
        // libdeflate cannot tell a stream cut short from a bad one.
        Err(DecompressionError::BadData) => Err(Error::corrupted(
            "corrupt deflate stream (bad or truncated archive object content)",
        )),
    }
}

/// Open an archive object stored as a local file: one whose file and content are both at most
/// `max_inline` bytes is read and inflated in one piece into
/// [`ContentBody::Bytes`](crate::store::ContentBody::Bytes); a larger one is streamed (its
/// buffers stay small and reused).
pub fn open_archived_file(
    mut f: std::fs::File,
    max_inline: u64,
) -> Result<crate::store::ContentRead> {
    use crate::store::{ContentBody, ContentRead};
    let len = f
        .metadata()
        .map_err(|e| Error::io("stat of an archive object", e))?
        .len();
    if len <= max_inline {
        let mut data = Vec::with_capacity(len as usize);
        f.read_to_end(&mut data)
            .map_err(|e| Error::io("reading an archive object", e))?;
        if let Some((meta, body)) = inflate_archived(&data, max_inline)? {
            return Ok(ContentRead {
                meta,
                size: body.len() as u64,
                body: if body.is_empty() {
                    ContentBody::Empty
                } else {
                    ContentBody::Bytes(body.into())
                },
            });
        }
        let (meta, size, reader) = read_archived(io::Cursor::new(data))?;
        return Ok(ContentRead {
            meta,
            size,
            body: ContentBody::Reader(reader),
        });
    }
    let (meta, size, reader) = read_archived(io::BufReader::with_capacity(64 * 1024, f))?;
    Ok(ContentRead {
        meta,
        size,
        body: ContentBody::Reader(reader),
    })
}

/// Verify that `.filez` bytes decode and hash to `expected`.
pub fn verify_archived(expected: &Checksum, data: &[u8]) -> Result<()> {
    let actual = match inflate_archived(data, 64 << 20)? {
        Some((meta, body)) => content_checksum(&meta, &body[..])?,
        None => {
            let (meta, _size, reader) = read_archived(io::Cursor::new(data.to_vec()))?;
            content_checksum(&meta, reader)?
        }
    };
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
    fn inflate_whole_agrees_with_the_stream() {
        let meta = FileMeta {
            mode: S_IFREG | 0o644,
            ..Default::default()
        };
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let data = archived_bytes(&meta, &body).unwrap();
        let (m, got) = inflate_archived(&data, 1 << 20).unwrap().unwrap();
        assert_eq!((m, got), (meta.clone(), body.clone()));
        // Over the limit: left to the stream.
        assert!(inflate_archived(&data, 1000).unwrap().is_none());
        // A header that promises less, or more, than the stream holds.
        let short = archived_bytes(&meta, &body[..99_999]).unwrap();
        let mut longer = meta.archive_header(99_999);
        longer.extend_from_slice(&data[meta.archive_header(100_000).len()..]);
        let e = inflate_archived(&longer, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("more content"), "{e}");
        let mut shorter = meta.archive_header(100_000);
        shorter.extend_from_slice(&short[meta.archive_header(99_999).len()..]);
        let e = inflate_archived(&shorter, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // Cut short, and garbled.
        let e = inflate_archived(&data[..data.len() / 2], 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut bad = data.clone();
        let at = meta.archive_header(100_000).len();
        bad[at] = 0xff;
        assert!(inflate_archived(&bad, 1 << 20).is_err());
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
