//! bsdiff patches in the raw stream format ostree uses (Endsley's library stream without the
//! `ENDSLEY/BSDIFF43` header and without bzip2): repeated `(add_len, copy_len, seek)` controls
//! as 8-byte sign-magnitude integers, each followed by `add_len` diff bytes and `copy_len`
//! extra bytes.
//!
//! [`patch`] follows the C `bspatch` exactly (including its tolerance of diff positions outside
//! the old buffer, which add nothing) but every length and position is checked: a hostile
//! patch is an error, never a panic, an out-of-bounds access or an unbounded allocation.
//! [`diff`] is Percival's bsdiff search as ostree's bundled copy runs it, so its streams are
//! ostree's byte for byte; the suffix array comes from SA-IS ([`super::sais`]) instead of
//! `qsufsort` — the same array, in linear time.

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
    if old.len() > super::sais::MAX_LEN {
        return Err(Error::Other(format!(
            "bsdiff generation failed: old file of {} bytes is too large",
            old.len()
        )));
    }
    let sa = super::sais::suffix_array(old);
    let mut out = Vec::new();
    write_patch(&sa, old, new, &mut out);
    Ok(out)
}

fn matchlen(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Binary search of the suffix array for the longest match of `new` in `old`: (position,
/// length). Bisects on `memcmp` of the common length as bsdiff does, so ties resolve alike.
fn search(sa: &[u32], old: &[u8], new: &[u8]) -> (usize, usize) {
    let (mut st, mut en) = (0usize, sa.len() - 1);
    while en - st >= 2 {
        let x = st + (en - st) / 2;
        let o = &old[sa[x] as usize..];
        let l = o.len().min(new.len());
        if o[..l] < new[..l] {
            st = x;
        } else {
            en = x;
        }
    }
    let (ps, pe) = (sa[st] as usize, sa[en] as usize);
    let x = matchlen(&old[ps..], new);
    let y = matchlen(&old[pe..], new);
    if x > y { (ps, x) } else { (pe, y) }
}

fn offtout(x: i64, out: &mut Vec<u8>) {
    let v = if x >= 0 {
        x as u64
    } else {
        x.unsigned_abs() | (1u64 << 63)
    };
    out.extend_from_slice(&v.to_le_bytes());
}

/// bsdiff's scan over `new` with `old`'s suffix array `sa`, writing controls, diff bytes and
/// extra bytes.
fn write_patch(sa: &[u32], old: &[u8], new: &[u8], out: &mut Vec<u8>) {
    let (oldsize, newsize) = (old.len() as i64, new.len());
    let (mut scan, mut len, mut pos) = (0usize, 0usize, 0usize);
    let (mut lastscan, mut lastpos, mut lastoffset) = (0usize, 0usize, 0i64);
    while scan < newsize {
        let mut oldscore = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < newsize {
            (pos, len) = search(sa, old, &new[scan..]);
            while scsc < scan + len {
                let o = scsc as i64 + lastoffset;
                if o < oldsize && old[o as usize] == new[scsc] {
                    oldscore += 1;
                }
                scsc += 1;
            }
            if (len == oldscore && len != 0) || len > oldscore + 8 {
                break;
            }
            let o = scan as i64 + lastoffset;
            if o < oldsize && old[o as usize] == new[scan] {
                oldscore -= 1;
            }
            scan += 1;
        }
        if len == oldscore && scan != newsize {
            continue;
        }
        // Extend the previous match forwards...
        let (mut s, mut sf, mut lenf, mut i) = (0i64, 0i64, 0usize, 0usize);
        while lastscan + i < scan && lastpos + i < old.len() {
            if old[lastpos + i] == new[lastscan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as i64 > sf * 2 - lenf as i64 {
                sf = s;
                lenf = i;
            }
        }
        // ...and this one backwards...
        let mut lenb = 0usize;
        if scan < newsize {
            let (mut s, mut sb) = (0i64, 0i64);
            let mut i = 1;
            while scan >= lastscan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as i64 > sb * 2 - lenb as i64 {
                    sb = s;
                    lenb = i;
                }
                i += 1;
            }
        }
        // ...splitting any overlap where it scores best.
        if lastscan + lenf > scan - lenb {
            let overlap = lastscan + lenf - (scan - lenb);
            let (mut s, mut ss, mut lens) = (0i64, 0i64, 0usize);
            for i in 0..overlap {
                if new[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i] {
                    s += 1;
                }
                if new[scan - lenb + i] == old[pos - lenb + i] {
                    s -= 1;
                }
                if s > ss {
                    ss = s;
                    lens = i + 1;
                }
            }
            lenf = lenf + lens - overlap;
            lenb -= lens;
        }
        offtout(lenf as i64, out);
        offtout(scan as i64 - lenb as i64 - (lastscan + lenf) as i64, out);
        offtout(pos as i64 - lenb as i64 - (lastpos + lenf) as i64, out);
        out.extend(
            new[lastscan..lastscan + lenf]
                .iter()
                .zip(&old[lastpos..lastpos + lenf])
                .map(|(n, o)| n.wrapping_sub(*o)),
        );
        out.extend_from_slice(&new[lastscan + lenf..scan - lenb]);
        lastscan = scan - lenb;
        lastpos = pos - lenb;
        lastoffset = pos as i64 - scan as i64;
    }
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

    /// Byte for byte the streams of the reference bsdiff (the `bsdiff` crate, itself checked
    /// against ostree's), on random, repetitive, shifted and empty inputs.
    #[test]
    fn same_stream_as_reference_bsdiff() {
        let base = data(3, 20_000);
        let mut shifted = b"aheader\n".to_vec();
        shifted.extend_from_slice(&base);
        let mut edited = base.clone();
        for i in (0..edited.len()).step_by(997) {
            edited[i] = edited[i].wrapping_add(7);
        }
        edited.splice(5000..5000, data(4, 700));
        let rep = b"0123456789abcdef".repeat(800);
        let mut rep2 = rep.clone();
        rep2[4000] = b'x';
        rep2.extend_from_slice(&[0; 40]);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![], vec![]),
            (vec![], data(5, 100)),
            (data(5, 100), vec![]),
            (vec![1], vec![1]),
            (base.clone(), shifted),
            (base.clone(), edited),
            (base.clone(), data(6, 20_000)),
            (rep, rep2),
            (vec![0; 3000], vec![0; 3040]),
        ];
        for (old, new) in &cases {
            let mut reference = Vec::new();
            bsdiff::diff(old, new, &mut reference).unwrap();
            let ours = diff(old, new).unwrap();
            assert!(ours == reference, "old {} new {}", old.len(), new.len());
            assert_eq!(&patch(old, &ours, new.len() as u64).unwrap(), new);
        }
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
