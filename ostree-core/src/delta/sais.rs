//! Suffix arrays in linear time (SA-IS: Nong, Zhang and Chan, "Two Efficient Algorithms for
//! Linear Time Suffix Array Construction", 2011), for bsdiff generation.
//!
//! bsdiff needs the suffix array of the old file. The classic `qsufsort` (Larsson–Sadakane
//! prefix doubling) it ships with is O(n log n) with a large constant and degrades on
//! repetitive input such as executables: on a 22 MB binary it took ~6 s of CPU, two thirds
//! of a whole static delta. A suffix array is unique, so any correct construction gives
//! bsdiff the same array and therefore the same patch, byte for byte; SA-IS builds it in a
//! fraction of the time and with 32-bit indices (4 bytes per input byte instead of the 16
//! of two `isize` arrays).

/// Marks an empty slot during induction.
const EMPTY: u32 = u32::MAX;

/// The largest input [`suffix_array`] accepts (indices are `u32`, one value is [`EMPTY`]).
pub const MAX_LEN: usize = (u32::MAX - 2) as usize;

/// The suffix array of `text` in bsdiff's layout: `n + 1` entries, the first being `n` (the
/// empty suffix, which sorts before every other), then the start of every suffix of `text` in
/// lexicographic order (a proper prefix sorts before the longer string).
///
/// # Panics
/// If `text` is longer than [`MAX_LEN`] (callers bound inputs far below that).
pub fn suffix_array(text: &[u8]) -> Vec<u32> {
    assert!(text.len() <= MAX_LEN, "suffix array input too large");
    let n = text.len() + 1;
    let mut sa = vec![EMPTY; n];
    sais(n, 257, &Bytes(text), &mut sa);
    sa
}

/// A string SA-IS sorts: symbol `i` of `len`, the last one the unique smallest.
trait Text {
    fn at(&self, i: usize) -> usize;
}

/// The input bytes as symbols 1..=256, then the sentinel 0.
struct Bytes<'a>(&'a [u8]);

impl Text for Bytes<'_> {
    fn at(&self, i: usize) -> usize {
        match self.0.get(i) {
            Some(&b) => b as usize + 1,
            None => 0,
        }
    }
}

/// A reduced string (names of LMS substrings).
struct Names<'a>(&'a [u32]);

impl Text for Names<'_> {
    fn at(&self, i: usize) -> usize {
        self.0[i] as usize
    }
}

/// L/S types, one bit per position (`true`: S).
struct Types(Vec<u64>);

impl Types {
    fn new<F: Text>(n: usize, s: &F) -> Self {
        let mut bits = vec![0u64; n.div_ceil(64)];
        let set = |bits: &mut Vec<u64>, i: usize| bits[i / 64] |= 1 << (i % 64);
        set(&mut bits, n - 1);
        let mut next_s = true;
        let mut next = s.at(n - 1);
        for i in (0..n - 1).rev() {
            let c = s.at(i);
            let is_s = c < next || (c == next && next_s);
            if is_s {
                set(&mut bits, i);
            }
            next_s = is_s;
            next = c;
        }
        Types(bits)
    }
    fn is_s(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn lms(&self, i: usize) -> bool {
        i > 0 && self.is_s(i) && !self.is_s(i - 1)
    }
}

fn buckets<F: Text>(n: usize, k: usize, s: &F, ends: bool) -> Vec<u32> {
    let mut b = vec![0u32; k];
    for i in 0..n {
        b[s.at(i)] += 1;
    }
    let mut sum = 0u32;
    for c in b.iter_mut() {
        sum += *c;
        *c = if ends { sum } else { sum - *c };
    }
    b
}

fn induce<F: Text>(n: usize, k: usize, s: &F, t: &Types, sa: &mut [u32]) {
    let mut b = buckets(n, k, s, false);
    for i in 0..n {
        let p = sa[i];
        if p != EMPTY && p > 0 && !t.is_s(p as usize - 1) {
            let j = p as usize - 1;
            let c = s.at(j);
            sa[b[c] as usize] = j as u32;
            b[c] += 1;
        }
    }
    let mut b = buckets(n, k, s, true);
    for i in (0..n).rev() {
        let p = sa[i];
        if p != EMPTY && p > 0 && t.is_s(p as usize - 1) {
            let j = p as usize - 1;
            let c = s.at(j);
            b[c] -= 1;
            sa[b[c] as usize] = j as u32;
        }
    }
}

/// SA-IS over `s` (length `n`, symbols `< k`, `s.at(n - 1)` the unique smallest) into `sa`.
fn sais<F: Text>(n: usize, k: usize, s: &F, sa: &mut [u32]) {
    debug_assert_eq!(sa.len(), n);
    if n == 1 {
        sa[0] = 0;
        return;
    }
    let t = Types::new(n, s);
    // Stage 1: sort the LMS substrings.
    sa.fill(EMPTY);
    let mut b = buckets(n, k, s, true);
    for i in 1..n {
        if t.lms(i) {
            let c = s.at(i);
            b[c] -= 1;
            sa[b[c] as usize] = i as u32;
        }
    }
    induce(n, k, s, &t, sa);
    // Compact the sorted LMS positions into sa[..n1].
    let mut n1 = 0;
    for i in 0..n {
        let p = sa[i] as usize;
        if t.lms(p) {
            sa[n1] = p as u32;
            n1 += 1;
        }
    }
    // Name the LMS substrings: equal substrings get equal names.
    sa[n1..].fill(EMPTY);
    let mut name = 0u32;
    let mut prev: Option<usize> = None;
    for i in 0..n1 {
        let pos = sa[i] as usize;
        let differs = match prev {
            None => true,
            Some(pr) => {
                let mut d = 0;
                loop {
                    if pos + d >= n
                        || pr + d >= n
                        || s.at(pos + d) != s.at(pr + d)
                        || t.is_s(pos + d) != t.is_s(pr + d)
                    {
                        break true;
                    }
                    if d > 0 && (t.lms(pos + d) || t.lms(pr + d)) {
                        break false;
                    }
                    d += 1;
                }
            }
        };
        if differs {
            name += 1;
            prev = Some(pos);
        }
        sa[n1 + pos / 2] = name - 1;
    }
    // Gather the names, in text order, at the end of sa: the reduced string s1.
    let mut j = n;
    for i in (n1..n).rev() {
        if sa[i] != EMPTY {
            j -= 1;
            sa[j] = sa[i];
        }
    }
    // Stage 2: the suffix array of s1 into sa[..n1].
    {
        let (sa1, rest) = sa.split_at_mut(n1);
        let s1 = &mut rest[n - 2 * n1..];
        if (name as usize) < n1 {
            let s1r: &[u32] = s1;
            sais(n1, name as usize, &Names(s1r), sa1);
        } else {
            for (i, &c) in s1.iter().enumerate() {
                sa1[c as usize] = i as u32;
            }
        }
        // s1 now holds the LMS positions, in text order.
        let mut j = 0;
        for i in 1..n {
            if t.lms(i) {
                s1[j] = i as u32;
                j += 1;
            }
        }
        for p in sa1.iter_mut() {
            *p = s1[*p as usize];
        }
    }
    // Stage 3: place the sorted LMS suffixes at their bucket ends and induce the rest.
    sa[n1..].fill(EMPTY);
    let mut b = buckets(n, k, s, true);
    for i in (0..n1).rev() {
        let p = sa[i];
        sa[i] = EMPTY;
        let c = s.at(p as usize);
        b[c] -= 1;
        sa[b[c] as usize] = p;
    }
    induce(n, k, s, &t, sa);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(text: &[u8]) -> Vec<u32> {
        let mut v: Vec<u32> = (0..=text.len() as u32).collect();
        v.sort_by(|&a, &b| text[a as usize..].cmp(&text[b as usize..]));
        v
    }

    fn lcg(seed: u32, n: usize, alphabet: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                ((s >> 16) % alphabet) as u8
            })
            .collect()
    }

    #[test]
    fn matches_naive_sort() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![255],
            b"banana".to_vec(),
            b"mississippi".to_vec(),
            b"abracadabra".to_vec(),
            vec![0; 100],
            vec![255; 77],
            b"ab".repeat(50),
            b"abc".repeat(33),
            b"aab".repeat(40),
        ];
        for seed in 0..40 {
            for alphabet in [1, 2, 3, 4, 17, 256] {
                cases.push(lcg(seed, (seed as usize * 37) % 500, alphabet));
            }
        }
        // Repetitive with noise: deep recursion.
        let mut r = lcg(7, 64, 4).repeat(40);
        r[900] ^= 1;
        cases.push(r);
        for c in &cases {
            assert_eq!(suffix_array(c), naive(c), "{c:?}");
        }
    }
}
