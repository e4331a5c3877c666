//! bsdiff patches in the raw stream format ostree uses (Endsley's library stream without the
//! `ENDSLEY/BSDIFF43` header and without bzip2): repeated `(add_len, copy_len, seek)` controls
//! as 8-byte sign-magnitude integers, each followed by `add_len` diff bytes and `copy_len`
//! extra bytes.
//!
//! [`patch`] follows the C `bspatch` exactly (including its tolerance of diff positions outside
//! the old buffer, which add nothing) but every length and position is checked: a hostile
//! patch is an error, never a panic, an out-of-bounds access or an unbounded allocation.
//! Generation uses the `bsdiff` crate, which reproduces ostree's streams byte for byte.

use crate::{Error, Result};

fn offtin(b: &[u8]) -> i64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&b[..8]);
    let y = u64::from_le_bytes(buf);
    let mag = (y & !(1u64 << 63)) as i64;
    if y & (1u64 << 63) != 0 { -mag } else { mag }
}

fn bad(msg: &str) -> Error {
    Error::corrupted(format!("bsdiff patch failed: {msg}"))
}

/// Apply `patch` to `old`, producing exactly `new_size` bytes.
pub fn patch(old: &[u8], patch: &[u8], new_size: u64) -> Result<Vec<u8>> {
    // Every output byte is read from the patch: its length bounds the output.
    if new_size > patch.len() as u64 {
        return Err(bad("patch is shorter than the output"));
    }
    let new_size = new_size as usize;
    let mut new = vec![0u8; new_size];
    let mut pp = 0usize; // position in patch
    let mut newpos = 0usize;
    let mut oldpos: i64 = 0;
    let oldsize = old.len() as i64;
    while newpos < new_size {
        let ctrl = patch
            .get(pp..pp + 24)
            .ok_or_else(|| bad("truncated control block"))?;
        pp += 24;
        let (c0, c1, c2) = (
            offtin(&ctrl[0..8]),
            offtin(&ctrl[8..16]),
            offtin(&ctrl[16..24]),
        );
        if c0 < 0 || c0 > i32::MAX as i64 || c1 < 0 || c1 > i32::MAX as i64 {
            return Err(bad("invalid control lengths"));
        }
        let (c0u, c1u) = (c0 as usize, c1 as usize);
        if newpos + c0u > new_size {
            return Err(bad("diff block exceeds the output"));
        }
        let diff = patch
            .get(pp..pp + c0u)
            .ok_or_else(|| bad("truncated diff block"))?;
        pp += c0u;
        let out = &mut new[newpos..newpos + c0u];
        out.copy_from_slice(diff);
        // Add the old bytes that exist (positions outside `old` add nothing, as in C).
        let lo = oldpos.clamp(0, oldsize);
        let hi = oldpos.saturating_add(c0).clamp(0, oldsize);
        if lo < hi {
            let skip = (lo - oldpos) as usize;
            for (n, o) in out[skip..].iter_mut().zip(&old[lo as usize..hi as usize]) {
                *n = n.wrapping_add(*o);
            }
        }
        newpos += c0u;
        oldpos = oldpos
            .checked_add(c0)
            .ok_or_else(|| bad("position overflow"))?;
        if newpos + c1u > new_size {
            return Err(bad("extra block exceeds the output"));
        }
        let extra = patch
            .get(pp..pp + c1u)
            .ok_or_else(|| bad("truncated extra block"))?;
        pp += c1u;
        new[newpos..newpos + c1u].copy_from_slice(extra);
        newpos += c1u;
        oldpos = oldpos
            .checked_add(c2)
            .ok_or_else(|| bad("position overflow"))?;
    }
    Ok(new)
}

/// Generate a patch from `old` to `new` (the stream ostree writes).
pub fn diff(old: &[u8], new: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    bsdiff::diff(old, new, &mut out)
        .map_err(|e| Error::Other(format!("bsdiff generation failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seed: u32, n: usize) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn roundtrip_and_bounds() {
        let old = data(1, 5000);
        let mut new = old.clone();
        new[100] ^= 1;
        new.extend_from_slice(&data(2, 300));
        new.drain(2000..2100);
        let p = diff(&old, &new).unwrap();
        assert_eq!(patch(&old, &p, new.len() as u64).unwrap(), new);
        // Wrong sizes and truncations are errors.
        assert!(patch(&old, &p, new.len() as u64 + 1).is_err());
        for cut in [0, 1, 23, 24, 25, p.len() / 2, p.len() - 1] {
            assert!(
                patch(&old, &p[..cut], new.len() as u64).is_err(),
                "cut {cut}"
            );
        }
        // Hostile controls: huge lengths, huge seeks.
        let mut h = vec![0u8; 24];
        h[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        h.extend_from_slice(&[0; 64]);
        assert!(patch(&old, &h, 10).is_err());
        let mut h = vec![0u8; 24];
        h[0] = 4;
        h[16..24].copy_from_slice(&(i64::MAX as u64).to_le_bytes());
        h.extend_from_slice(&[1, 2, 3, 4]);
        h.extend_from_slice(&[0u8; 24]);
        h[24 + 4 + 16..24 + 4 + 24].copy_from_slice(&(i64::MAX as u64).to_le_bytes());
        assert!(patch(&old, &h, 8).is_err());
        // Old positions outside the buffer add nothing (C semantics).
        let mut h = vec![0u8; 24];
        h[0] = 3;
        h[16..24].copy_from_slice(&((1u64 << 63) | 2).to_le_bytes());
        h.extend_from_slice(&[1, 1, 1]);
        assert_eq!(patch(&[10, 20], &h, 3).unwrap(), vec![11, 21, 1]);
    }
}
