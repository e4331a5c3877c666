//! Writing archive (`.filez`) objects with a per-thread reusable deflate state.
//!
//! The objects are those of [`ostree_core::content::write_archived`] (header, then raw deflate
//! at the repository's level with the same compressor; the deflate stream may differ in its
//! bytes, as zlib-rs's output depends on how input is fed), but a deflate state costs ~270 KiB of
//! allocations and initialisation, and a commit writes many small objects. States are therefore
//! kept in one small process-wide pool, taken for one object and given back: as many exist as
//! objects are compressed at once (a few), not one per thread of tokio's blocking pool, which
//! grows to dozens of threads on a busy machine. Header and compressed output share one
//! buffer, so a small object is written with a single `write`.

use std::io::{Read, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use ostree_core::objects::FileMeta;
use ostree_core::pool::Pool;
use ostree_core::{Error, Result};

const CHUNK: usize = 64 * 1024;

struct State {
    level: u32,
    z: Compress,
    input: Vec<u8>,
    out: Vec<u8>,
}

/// Idle deflate states.
static POOL: Pool<State> = Pool::new(8);

/// A state at `level` from the pool (or a new one).
fn take_state(level: u32) -> State {
    while let Some(st) = POOL.take() {
        if st.level == level {
            return st;
        }
    }
    State {
        level,
        z: Compress::new(Compression::new(level), false),
        input: vec![0; CHUNK],
        out: Vec::with_capacity(2 * CHUNK),
    }
}

/// Give a state back, reset and with its output buffer trimmed.
fn give_back(mut st: State) {
    st.z.reset();
    st.out.clear();
    if st.out.capacity() > 4 * CHUNK {
        st.out.shrink_to(2 * CHUNK);
    }
    POOL.give(st);
}

fn zerr(e: flate2::CompressError) -> Error {
    Error::Other(format!("compressing content: {e}"))
}

/// Write the archive form of a content object at deflate `level` (ostree's `[archive]
/// zlib-level`, default 6): exactly `size` bytes are read from `input` (more or
/// fewer is an error: the content changed under us).
pub(crate) fn write_archived(
    level: u32,
    meta: &FileMeta,
    size: u64,
    mut input: impl Read,
    out: &mut impl Write,
) -> Result<()> {
    let wio = |e| Error::io("writing archive object", e);
    let header = meta.archive_header(size);
    if meta.is_symlink() {
        return out.write_all(&header).map_err(wio);
    }
    let mut st = take_state(level);
    let r = compress_into(&mut st, &header, size, &mut input, out);
    give_back(st);
    r
}

/// Header, then the deflated `size` bytes of `input`, written to `out` through `st`.
fn compress_into(
    st: &mut State,
    header: &[u8],
    size: u64,
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<()> {
    let wio = |e| Error::io("writing archive object", e);
    st.z.reset();
    st.out.clear();
    st.out.extend_from_slice(header);
    let mut remaining = size;
    loop {
        // Read up to a chunk; at the end, probe one byte more to catch growth.
        let want = (remaining.min(CHUNK as u64) as usize).max(1);
        let n = match input.read(&mut st.input[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading content", e)),
        };
        if n == 0 {
            if remaining != 0 {
                return Err(Error::Other(format!(
                    "content changed while being stored: expected {size} bytes, read {}",
                    size - remaining
                )));
            }
            break;
        }
        if remaining == 0 {
            return Err(Error::Other(format!(
                "content changed while being stored: more than the expected {size} bytes"
            )));
        }
        remaining -= n as u64;
        let mut data = &st.input[..n];
        while !data.is_empty() {
            if st.out.capacity() - st.out.len() < CHUNK / 2 {
                out.write_all(&st.out).map_err(wio)?;
                st.out.clear();
            }
            let before = st.z.total_in();
            st.z.compress_vec(data, &mut st.out, FlushCompress::None)
                .map_err(zerr)?;
            data = &data[(st.z.total_in() - before) as usize..];
        }
    }
    loop {
        if st.out.capacity() - st.out.len() < CHUNK / 2 {
            out.write_all(&st.out).map_err(wio)?;
            st.out.clear();
        }
        if st
            .z
            .compress_vec(&[], &mut st.out, FlushCompress::Finish)
            .map_err(zerr)?
            == Status::StreamEnd
        {
            break;
        }
    }
    out.write_all(&st.out).map_err(wio)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ostree_core::content::ARCHIVE_LEVEL;
    use ostree_core::objects::{S_IFLNK, S_IFREG};

    /// Same header, and a body inflating to the same bytes (the deflate stream itself may
    /// depend on how the input was fed to the compressor).
    fn assert_same_object(meta: &FileMeta, size: usize, got: &[u8], expected: &[u8], what: &str) {
        let hlen = meta.archive_header(size as u64).len();
        assert_eq!(got[..hlen], expected[..hlen], "{what}: header");
        let inflate = |b: &[u8]| {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(b)
                .read_to_end(&mut out)
                .unwrap();
            out
        };
        assert!(
            inflate(&got[hlen..]) == inflate(&expected[hlen..]),
            "{what}: body"
        );
    }

    #[test]
    fn same_objects_as_core() {
        let meta = FileMeta {
            mode: S_IFREG | 0o644,
            ..Default::default()
        };
        let mut seed = 1u64;
        for size in [
            0usize,
            1,
            12,
            1000,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            5 * CHUNK + 17,
            3_000_000,
        ] {
            let data: Vec<u8> = (0..size)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if i % 3 == 0 {
                        (seed >> 56) as u8
                    } else {
                        b'a' + (i % 7) as u8
                    }
                })
                .collect();
            let expected = ostree_core::content::archived_bytes(&meta, &data).unwrap();
            let mut got = Vec::new();
            write_archived(ARCHIVE_LEVEL, &meta, size as u64, &data[..], &mut got).unwrap();
            assert_same_object(&meta, size, &got, &expected, &format!("size {size}"));
            let c = ostree_core::objects::content_checksum(&meta, &data[..]).unwrap();
            ostree_core::content::verify_archived(&c, &got).unwrap();
            // Reading in odd-sized pieces changes nothing.
            let mut got2 = Vec::new();
            write_archived(
                ARCHIVE_LEVEL,
                &meta,
                size as u64,
                std::io::BufReader::with_capacity(977, &data[..]),
                &mut got2,
            )
            .unwrap();
            assert_same_object(
                &meta,
                size,
                &got2,
                &expected,
                &format!("size {size}, small reads"),
            );
            // Wrong sizes are refused.
            assert!(
                write_archived(
                    ARCHIVE_LEVEL,
                    &meta,
                    size as u64 + 1,
                    &data[..],
                    &mut Vec::new()
                )
                .is_err()
            );
            if size > 0 {
                assert!(
                    write_archived(
                        ARCHIVE_LEVEL,
                        &meta,
                        size as u64 - 1,
                        &data[..],
                        &mut Vec::new()
                    )
                    .is_err()
                );
            }
        }
        // Another level: other bytes, still a valid object.
        let data = b"level one level one level one".repeat(100);
        let mut fast = Vec::new();
        write_archived(1, &meta, data.len() as u64, &data[..], &mut fast).unwrap();
        let c = ostree_core::objects::content_checksum(&meta, &data[..]).unwrap();
        ostree_core::content::verify_archived(&c, &fast).unwrap();
        let link = FileMeta {
            mode: S_IFLNK | 0o777,
            symlink_target: Some("t".into()),
            ..Default::default()
        };
        let mut got = Vec::new();
        write_archived(ARCHIVE_LEVEL, &link, 0, std::io::empty(), &mut got).unwrap();
        assert_eq!(
            got,
            ostree_core::content::archived_bytes(&link, b"").unwrap()
        );
    }
}
