//! The rollsum "similar file" matcher of delta generation (bup's rolling checksum splits both
//! files into content-defined chunks; chunks of the target found byte-identical in the source
//! become `w` operations reading from the source object).

use std::collections::HashMap;

const WINDOW_BITS: u32 = 7;
const WINDOW_SIZE: usize = 1 << (WINDOW_BITS - 1);
const BLOB_BITS: u32 = 13;
const BLOB_SIZE: u32 = 1 << BLOB_BITS;
const CHAR_OFFSET: u32 = 31;
/// Largest chunk.
pub const ROLLSUM_BLOB_MAX: usize = 8192 * 4;

/// `bupsplit_find_ofs`: the length of the first chunk of `buf`, or 0 if no split point.
fn find_ofs(buf: &[u8]) -> usize {
    let mut s1: u32 = (WINDOW_SIZE as u32) * CHAR_OFFSET;
    let mut s2: u32 = (WINDOW_SIZE as u32) * (WINDOW_SIZE as u32 - 1) * CHAR_OFFSET;
    let mut window = [0u8; WINDOW_SIZE];
    let mut wofs = 0usize;
    for (count, &ch) in buf.iter().enumerate() {
        let drop = window[wofs];
        s1 = s1.wrapping_add(u32::from(ch)).wrapping_sub(u32::from(drop));
        s2 = s2
            .wrapping_add(s1)
            .wrapping_sub((WINDOW_SIZE as u32).wrapping_mul(u32::from(drop) + CHAR_OFFSET));
        window[wofs] = ch;
        wofs = (wofs + 1) % WINDOW_SIZE;
        if s2 & (BLOB_SIZE - 1) == (BLOB_SIZE - 1) {
            return count + 1;
        }
    }
    0
}

/// `(crc32, start, length)` of each chunk, in order.
fn chunks(buf: &[u8]) -> Vec<(u32, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut end_reached = false;
    while start < buf.len() {
        let remaining = buf.len() - start;
        let offset = if !end_reached {
            let o = find_ofs(&buf[start..start + remaining.min(i32::MAX as usize)]);
            if o == 0 {
                end_reached = true;
                ROLLSUM_BLOB_MAX.min(remaining)
            } else {
                o.min(ROLLSUM_BLOB_MAX)
            }
        } else {
            ROLLSUM_BLOB_MAX.min(remaining)
        };
        // ostree 2022.7 computes each chunk's crc over the *start of the buffer*
        // (`crc32 (crc, buf, offset)`), not over the chunk: the crc depends on the chunk length
        // and the file's first bytes only. Kept for identical decisions (and the bytes are
        // compared anyway before a match is used).
        out.push((crc32fast::hash(&buf[..offset]), start, offset));
        start += offset;
    }
    out
}

/// A chunk of the target found in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Length.
    pub len: u64,
    /// Offset in the target.
    pub to_start: u64,
    /// Offset in the source.
    pub from_start: u64,
}

/// Result of matching a target against a source.
#[derive(Clone, Debug, Default)]
pub struct Matches {
    /// Matched chunks, by target offset.
    pub matches: Vec<Match>,
    /// Number of distinct crc values with a counterpart.
    pub crcmatches: u32,
    /// Number of matched chunks.
    pub bufmatches: u32,
    /// Number of target chunks.
    pub total: u32,
    /// Bytes matched.
    pub match_size: u64,
}

impl Matches {
    /// `bufmatches * 100 / total` (integer, as ostree).
    pub fn ratio(&self) -> u32 {
        if self.total == 0 {
            0
        } else {
            ((u64::from(self.bufmatches) * 100) / u64::from(self.total)) as u32
        }
    }
}

/// `_ostree_compute_rollsum_matches`.
pub fn compute(from: &[u8], to: &[u8]) -> Matches {
    let mut from_map: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
    for (crc, s, l) in chunks(from) {
        from_map.entry(crc).or_default().push((s, l));
    }
    let to_chunks = chunks(to);
    let mut ret = Matches {
        total: to_chunks.len() as u32,
        ..Default::default()
    };
    let mut seen_crc: HashMap<u32, ()> = HashMap::new();
    for (crc, ts, tl) in to_chunks {
        let Some(cands) = from_map.get(&crc) else {
            continue;
        };
        if seen_crc.insert(crc, ()).is_none() {
            ret.crcmatches += 1;
        }
        for &(fs, fl) in cands {
            if fl != tl {
                continue;
            }
            if from[fs..fs + fl] == to[ts..ts + tl] {
                ret.bufmatches += 1;
                ret.match_size += tl as u64;
                ret.matches.push(Match {
                    len: tl as u64,
                    to_start: ts as u64,
                    from_start: fs as u64,
                });
                break;
            }
        }
    }
    ret.matches.sort_by_key(|m| m.to_start);
    ret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_files_match() {
        let mut s = 7u32;
        let a: Vec<u8> = (0..200_000)
            .map(|_| {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect();
        // As in ostree, a changed start defeats the matcher (crcs cover the file's start)...
        let mut p = b"aheader\n".to_vec();
        p.extend_from_slice(&a);
        assert!(compute(&a, &p).ratio() < 50);
        // ...while appended data keeps the chunks.
        let mut b = a.clone();
        b.extend_from_slice(&[0u8; 40]);
        let m = compute(&a, &b);
        assert!(m.ratio() >= 50, "{m:?}");
        let mut pos = 0;
        for x in &m.matches {
            assert!(x.to_start >= pos);
            assert_eq!(
                &a[x.from_start as usize..(x.from_start + x.len) as usize],
                &b[x.to_start as usize..(x.to_start + x.len) as usize]
            );
            pos = x.to_start + x.len;
        }
        assert_eq!(compute(&a, &[]).total, 0);
    }
}
