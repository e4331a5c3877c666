//! xz decoding of delta parts, with the decoder's dictionary on transparent huge pages.
//!
//! ostree compresses parts at preset 8: a 32 MiB dictionary, which the decoder fills as it
//! goes and which every match reads back into at any distance. On 4 KiB pages that is up
//! to 8192 pages read in random order, far more than a TLB holds, so decompression, the
//! critical path of an application, spends much of its time on page walks. Here the
//! decoder's large allocations (its dictionary) are mappings of their own, aligned to
//! 2 MiB and advised for huge pages (`MADV_HUGEPAGE`; the kernel's default policy,
//! `madvise`, gives them huge pages only when asked). A huge page is resident whole once
//! touched, so only the whole huge pages the part's declared size will fill are advised:
//! the dictionary's resident size stays the bytes it holds, as on small pages. Where the
//! kernel has no huge pages the advice is ignored and nothing else changes.
//!
//! Everything else is liblzma's own stream decoder, driven through its C interface (the
//! `liblzma` crate gives no way to pass an allocator).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io::{Read, Write};

use liblzma_sys as sys;

use crate::{Error, Result};

/// Allocations at least this large (a decoder's dictionary: ostree's parts declare
/// 32 MiB, small presets 1–8 MiB) are mapped on their own and advised for huge pages;
/// smaller ones (the decoder's state, a few tens of KiB) come from `malloc`.
const HUGE_MIN: usize = 4 << 20;

/// The huge page size the mappings are aligned to (x86-64's and aarch64's with 4 KiB
/// base pages); elsewhere it only costs the unused head of the mapping, never touched.
const HUGE_ALIGN: usize = 2 << 20;

/// Where an allocation came from, kept just before the bytes handed to liblzma.
#[repr(C)]
struct Header {
    /// The mapping's or `malloc`'s own pointer.
    base: *mut c_void,
    /// The mapping's length, or 0 for a `malloc`ed block.
    mapped: usize,
}

/// Room for the [`Header`], keeping the bytes after it aligned as `malloc`'s are.
const HDR: usize = 32;
const _: () = assert!(std::mem::size_of::<Header>() <= HDR && HDR.is_multiple_of(16));

/// liblzma's `alloc` callback (it always passes `nmemb` 1). `opaque` points to the number of
/// bytes the stream is expected to decode (see [`Stream`]).
unsafe extern "C" fn alloc(opaque: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    let Some(n) = nmemb.checked_mul(size) else {
        return std::ptr::null_mut();
    };
    if n >= HUGE_MIN {
        let Some(len) = n.checked_add(HUGE_ALIGN + HDR) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        // The bytes start on a huge page boundary with the header just before them: both
        // lie inside the mapping, which has HUGE_ALIGN + HDR bytes to spare.
        let data = (base as usize + HDR).next_multiple_of(HUGE_ALIGN) as *mut c_void;
        // SAFETY: `opaque` points to the owning stream's expected size, which outlives it.
        let expected = unsafe { *opaque.cast::<usize>() };
        // Only the huge pages the expected output fills whole: a page the output only
        // starts would be resident whole (up to 2 MiB more than on small pages).
        let huge = expected.min(n) / HUGE_ALIGN * HUGE_ALIGN;
        // SAFETY: [data, data + n) is inside the mapping (see above), and huge <= n. The
        // advice is a hint: where huge pages are unavailable it fails, pages stay small.
        unsafe {
            if huge > 0 {
                libc::madvise(data, huge, libc::MADV_HUGEPAGE);
            }
            data.cast::<u8>()
                .sub(HDR)
                .cast::<Header>()
                .write(Header { base, mapped: len });
        }
        data
    } else {
        let Some(len) = n.checked_add(HDR) else {
            return std::ptr::null_mut();
        };
        // SAFETY: plain malloc; the block is HDR + n bytes, aligned for any type.
        unsafe {
            let base = libc::malloc(len);
            if base.is_null() {
                return base;
            }
            base.cast::<Header>().write(Header { base, mapped: 0 });
            base.cast::<u8>().add(HDR).cast()
        }
    }
}

/// liblzma's `free` callback, for what [`alloc`] returned (or null).
unsafe extern "C" fn free(_opaque: *mut c_void, ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` came from `alloc`, so a header written there lies HDR bytes before it,
    // and the block or mapping it names is released once, here.
    unsafe {
        let h = ptr.cast::<u8>().sub(HDR).cast::<Header>().read();
        if h.mapped == 0 {
            libc::free(h.base);
        } else {
            libc::munmap(h.base, h.mapped);
        }
    }
}

/// A liblzma stream decoder with its allocator, ended when dropped. Always boxed: the
/// stream points to the allocator, and the allocator to `expected`.
struct Stream {
    strm: sys::lzma_stream,
    allocator: sys::lzma_allocator,
    /// How many bytes the stream is expected to decode (its dictionary fills up to this).
    expected: usize,
}

impl Stream {
    fn decoder(memlimit: u64, flags: u32, expected: u64) -> Result<Box<Stream>> {
        let mut s = Box::new(Stream {
            // SAFETY: LZMA_STREAM_INIT is all zeros (null pointers, zero counters).
            strm: unsafe { std::mem::zeroed::<sys::lzma_stream>() },
            allocator: sys::lzma_allocator {
                alloc: Some(alloc),
                free: Some(free),
                opaque: std::ptr::null_mut(),
            },
            expected: usize::try_from(expected).unwrap_or(usize::MAX),
        });
        s.allocator.opaque = (&raw mut s.expected).cast();
        s.strm.allocator = &raw const s.allocator;
        // SAFETY: a zeroed stream with an allocator that lives as long as it (same box).
        let ret = unsafe { sys::lzma_stream_decoder(&mut s.strm, memlimit, flags) };
        if ret != sys::LZMA_OK {
            return Err(Error::Other(format!("lzma: {}", describe(ret))));
        }
        Ok(s)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised (or is still all zeros, which lzma_end accepts).
        unsafe { sys::lzma_end(&mut self.strm) }
    }
}

fn describe(ret: sys::lzma_ret) -> &'static str {
    match ret {
        sys::LZMA_DATA_ERROR => "compressed data is corrupt",
        sys::LZMA_FORMAT_ERROR => "not an xz stream",
        sys::LZMA_OPTIONS_ERROR => "unsupported compression options",
        sys::LZMA_MEMLIMIT_ERROR => "needs more memory than allowed",
        sys::LZMA_MEM_ERROR => "out of memory",
        sys::LZMA_BUF_ERROR => "truncated xz stream",
        sys::LZMA_UNSUPPORTED_CHECK => "unsupported integrity check",
        _ => "decoder error",
    }
}

/// Decode one xz stream read from `data` into `out`, failing once it would write more than
/// `limit` bytes (nothing beyond `limit` is written) or when the stream is corrupt or
/// truncated; bytes after the end of the stream are ignored. With `check`, the stream's
/// own integrity check is verified; without it, not computed. `expected` is the size the
/// output is expected to have (a part's declared size; 0 when unknown, for small pages only):
/// it only decides how much of the dictionary goes on huge pages. Returns the bytes written.
pub(crate) fn decode<R: Read, W: Write>(
    mut data: R,
    limit: u64,
    out: &mut W,
    memlimit: u64,
    check: bool,
    expected: u64,
) -> Result<u64> {
    let flags = if check { 0 } else { sys::LZMA_IGNORE_CHECK };
    let mut s = Stream::decoder(memlimit, flags, expected)?;
    let corrupt = |what: &str| Error::corrupted(format!("Decompressing static delta part: {what}"));
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut outbuf = vec![0u8; 256 * 1024];
    let (mut in_pos, mut in_len, mut eof) = (0usize, 0usize, false);
    let mut total = 0u64;
    loop {
        if in_pos == in_len && !eof {
            in_len = loop {
                match data.read(&mut inbuf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("reading a delta part", e)),
                }
            };
            in_pos = 0;
            eof = in_len == 0;
        }
        let st = &mut s.strm;
        st.next_in = inbuf[in_pos..in_len].as_ptr();
        st.avail_in = in_len - in_pos;
        st.next_out = outbuf.as_mut_ptr();
        st.avail_out = outbuf.len();
        let action = if eof { sys::LZMA_FINISH } else { sys::LZMA_RUN };
        // SAFETY: next_in/avail_in and next_out/avail_out describe live buffers owned here.
        let ret = unsafe { sys::lzma_code(st, action) };
        in_pos = in_len - st.avail_in;
        let produced = outbuf.len() - st.avail_out;
        total += produced as u64;
        if total > limit {
            return Err(Error::corrupted(format!(
                "Static delta part decompresses to more than {limit} bytes"
            )));
        }
        out.write_all(&outbuf[..produced])
            .map_err(|e| Error::io("writing a decompressed delta part", e))?;
        match ret {
            sys::LZMA_STREAM_END => return Ok(total),
            // liblzma reports LZMA_BUF_ERROR once no progress is possible, so a stream
            // cut short ends here after its input runs out.
            sys::LZMA_OK => {}
            e => return Err(corrupt(describe(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xz(data: &[u8], preset: u32) -> Vec<u8> {
        let mut enc = crate::delta::format::xz_compress_into(Vec::new(), preset, None).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A deterministic xorshift sequence.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn sample(n: usize) -> Vec<u8> {
        // Compressible but not trivial: repeats at long distances as well as short ones.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let block: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                let x = next();
                b"ostree content "[(x % 15) as usize] ^ ((x >> 32) as u8 & 1)
            })
            .collect();
        block.iter().cycle().take(n).copied().collect()
    }

    #[test]
    fn decodes_with_a_huge_page_dictionary() {
        // Preset 8: a 32 MiB dictionary, mapped and advised for huge pages.
        let data = sample(5 << 20);
        let packed = xz(&data, 8);
        for check in [true, false] {
            let mut out = Vec::new();
            let n = decode(&packed[..], u64::MAX, &mut out, u64::MAX, check, u64::MAX).unwrap();
            assert_eq!(n, data.len() as u64);
            assert_eq!(out, data);
        }
        // Preset 1: a 1 MiB dictionary, from malloc.
        let packed = xz(&data[..100_000], 1);
        let mut out = Vec::new();
        decode(&packed[..], u64::MAX, &mut out, u64::MAX, true, u64::MAX).unwrap();
        assert_eq!(out, data[..100_000]);
    }

    #[test]
    fn bad_streams_are_errors() {
        let data = sample(300_000);
        let packed = xz(&data, 6);
        let mut out = Vec::new();
        // Truncated anywhere.
        for cut in [0, 1, 12, packed.len() / 2, packed.len() - 1] {
            out.clear();
            let e =
                decode(&packed[..cut], u64::MAX, &mut out, u64::MAX, true, u64::MAX).unwrap_err();
            assert!(e.to_string().contains("Decompressing"), "{cut}: {e}");
        }
        // A flipped byte in the compressed data: the check (or the decoder) notices.
        let mut bad = packed.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        out.clear();
        assert!(decode(&bad[..], u64::MAX, &mut out, u64::MAX, true, u64::MAX).is_err());
        // Over the limit: an error, and nothing past the limit was written.
        out.clear();
        let e = decode(&packed[..], 1000, &mut out, u64::MAX, false, 1000).unwrap_err();
        assert!(e.to_string().contains("more than 1000 bytes"), "{e}");
        assert!(out.len() <= 1000);
        // A memory limit below the dictionary's size.
        out.clear();
        assert!(decode(&packed[..], u64::MAX, &mut out, 1 << 16, true, u64::MAX).is_err());
        // Not xz at all.
        out.clear();
        assert!(
            decode(
                &b"not an xz stream"[..],
                u64::MAX,
                &mut out,
                u64::MAX,
                true,
                u64::MAX
            )
            .is_err()
        );
    }

    #[test]
    fn bytes_after_the_stream_are_ignored() {
        let data = sample(10_000);
        let mut packed = xz(&data, 6);
        packed.extend_from_slice(b"trailing");
        let mut out = Vec::new();
        decode(&packed[..], u64::MAX, &mut out, u64::MAX, true, u64::MAX).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn mutated_streams_never_panic() {
        // Preset 8, so every decoder maps a 32 MiB dictionary on huge pages.
        let data = sample(200_000);
        let packed = xz(&data, 8);
        let mut rng = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng() as usize;
        let mut out = Vec::new();
        for i in 0..300 {
            let mut m = packed.clone();
            match i % 3 {
                0 => m.truncate(next() % m.len()),
                1 => {
                    let at = next() % m.len();
                    m[at] ^= 1 << (next() % 8);
                }
                _ => {
                    let at = next() % m.len();
                    m[at] = next() as u8;
                }
            }
            out.clear();
            let r = decode(&m[..], 300_000, &mut out, u64::MAX, i % 2 == 0, 1 << 30);
            assert!(out.len() <= 300_000);
            if r.is_ok() && i % 2 == 0 {
                // With the check verified, what decodes is the original.
                assert_eq!(out, data);
            }
        }
    }
}
