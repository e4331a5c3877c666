//! Static deltas made by the real ostree 2022.7 (fixtures in `tests/data/delta`): parsing in
//! both endiannesses, inline parts, executing parts in memory (every object verified), and
//! bad input — corrupted/truncated superblocks and parts, checksum mismatches, decompression
//! bombs, out-of-bounds offsets and bsdiff controls — plus a deterministic mutation run that
//! must never panic.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use ostree_core::delta::apply::{execute_in_memory, part_stats};
use ostree_core::delta::format::{
    self, EndiannessInfo, PartHeader, PartPayload, Superblock, op, open_part, write_varuint,
};
use ostree_core::objects::Commit;
use ostree_core::store::{ContentSource, ObjectWrite};
use ostree_core::{Checksum, ObjectKey, ObjectType};

fn data(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/delta")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn commits() -> (Checksum, Checksum) {
    let s = String::from_utf8(data("COMMITS")).unwrap();
    let mut l = s.lines();
    (
        Checksum::from_hex(l.next().unwrap()).unwrap(),
        Checksum::from_hex(l.next().unwrap()).unwrap(),
    )
}

/// Content of the objects the from-scratch delta produces (the sources of the v1→v2 delta).
fn v1_sources() -> HashMap<Checksum, Bytes> {
    let sb = Superblock::parse(&data("empty/superblock")).unwrap();
    let part = open_part(
        &data("empty/0"),
        Some(&sb.parts[0]),
        format::part_size_limit(&sb.parts[0]),
    )
    .unwrap();
    let objs = execute_in_memory(&sb.parts[0].objects, &part, &HashMap::new()).unwrap();
    let mut out = HashMap::new();
    for o in objs {
        if let ObjectWrite::Content {
            source: ContentSource::Bytes(b),
            ..
        } = o.write
        {
            out.insert(o.key.checksum, b);
        }
    }
    out
}

#[test]
fn real_superblocks_parse() {
    let (v1, v2) = commits();
    let e = Superblock::parse(&data("empty/superblock")).unwrap();
    assert_eq!((e.from, e.to), (None, v1));
    assert_eq!(Checksum::of(&e.commit), v1);
    Commit::from_bytes(&e.commit).unwrap();
    assert_eq!(e.parts.len(), 1);
    assert_eq!(e.parts[0].objects.len(), 8);
    assert!(matches!(
        e.endianness,
        EndiannessInfo::Known {
            heuristic: false,
            ..
        }
    ));
    let m = Superblock::parse(&data("mod/superblock")).unwrap();
    assert_eq!((m.from, m.to), (Some(v1), v2));
    let s = Superblock::parse(&data("swapped/superblock")).unwrap();
    // Byte-swapped headers read back to the same values.
    assert_eq!(s.parts[0].size, m.parts[0].size);
    assert_eq!(s.parts[0].usize, m.parts[0].usize);
    assert_eq!(s.parts[0].size, data("swapped/0").len() as u64);
    let i = Superblock::parse(&data("inline/superblock")).unwrap();
    assert!(i.inline_part(0).is_some());
    // Re-serialization is byte-identical (same endianness).
    for (f, endian) in [
        ("empty/superblock", format::Endianness::Little),
        ("mod/superblock", format::Endianness::Little),
        ("swapped/superblock", format::Endianness::Big),
        ("inline/superblock", format::Endianness::Little),
    ] {
        let raw = data(f);
        assert_eq!(
            Superblock::parse(&raw).unwrap().to_bytes(endian),
            raw,
            "{f}"
        );
    }
}

#[test]
fn real_parts_execute_and_verify() {
    let sources = v1_sources();
    assert_eq!(sources.len(), 5, "v1 has 5 distinct content objects");
    for (sbf, partf) in [
        ("mod/superblock", Some("mod/0")),
        ("swapped/superblock", Some("swapped/0")),
        ("inline/superblock", None),
    ] {
        let sb = Superblock::parse(&data(sbf)).unwrap();
        let raw = match partf {
            Some(p) => data(p),
            None => sb.inline_part(0).unwrap(),
        };
        let h = &sb.parts[0];
        let part = open_part(&raw, Some(h), format::part_size_limit(h)).unwrap();
        let stats = part_stats(&h.objects, &part).unwrap();
        assert_eq!(stats.n_ops[6], 2, "two bspatch ops");
        assert!(stats.n_ops[2] > 0, "rollsum writes");
        let objs = execute_in_memory(&h.objects, &part, &sources).unwrap();
        assert_eq!(objs.len(), h.objects.len());
        // Without the sources, a clear error.
        let err = execute_in_memory(&h.objects, &part, &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("source object"), "{err}");
    }
}

#[test]
fn corrupted_parts_are_rejected() {
    let sb = Superblock::parse(&data("mod/superblock")).unwrap();
    let h = &sb.parts[0];
    let raw = data("mod/0");
    let limit = format::part_size_limit(h);
    // One flipped bit anywhere: checksum mismatch, before any decompression.
    for pos in [0, 1, 10, raw.len() / 2, raw.len() - 1] {
        let mut bad = raw.clone();
        bad[pos] ^= 0x10;
        let e = open_part(&bad, Some(h), limit).unwrap_err().to_string();
        assert!(e.contains("Checksum mismatch in static delta part"), "{e}");
    }
    // Truncated: size mismatch.
    let e = open_part(&raw[..raw.len() - 1], Some(h), limit)
        .unwrap_err()
        .to_string();
    assert!(e.contains("size"), "{e}");
    // Unknown compression byte.
    let mut bad = raw.clone();
    bad[0] = b'q';
    assert!(
        open_part(&bad, None, limit)
            .unwrap_err()
            .to_string()
            .contains("Invalid compression type")
    );
    // Decompression bomb: 20 MiB of zeros in a tiny xz part, declared usize small.
    let mut bomb = vec![format::COMPRESSION_XZ];
    {
        let mut enc = format::xz_compress_into(&mut bomb, 0, None).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..20 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        enc.finish().unwrap();
    }
    assert!(bomb.len() < 64 * 1024);
    let hb = PartHeader {
        version: 0,
        checksum: Checksum::of(&bomb),
        size: bomb.len() as u64,
        usize: 100,
        objects: vec![],
    };
    let e = open_part(&bomb, Some(&hb), format::part_size_limit(&hb))
        .unwrap_err()
        .to_string();
    assert!(e.contains("decompresses to more than"), "{e}");
}

#[test]
fn corrupted_superblocks_are_rejected() {
    let raw = data("mod/superblock");
    for cut in [0, 1, 8, raw.len() / 3, raw.len() - 1] {
        assert!(Superblock::parse(&raw[..cut]).is_err(), "cut at {cut}");
    }
    // A signed wrapper around a valid superblock is read (and reported as signed).
    let inner = ostree_core::gvariant::Variant::Tuple(vec![
        ostree_core::gvariant::Variant::U64(format::SIGNED_MAGIC.to_be()),
        ostree_core::gvariant::Variant::Bytes(raw.clone()),
        ostree_core::objects::Metadata::new().to_variant(),
    ])
    .to_bytes();
    let sb = Superblock::parse(&inner).unwrap();
    assert!(sb.signatures.is_some());
    assert_eq!(sb.to, commits().1);
}

/// A hand-made part: objects, mode table, payload and operations.
fn part_of(payload: &[u8], ops: &[u8]) -> PartPayload {
    PartPayload {
        modes: vec![(0, 0, 0o100644)],
        xattrs: vec![vec![]],
        payload: Bytes::copy_from_slice(payload),
        ops: Bytes::copy_from_slice(ops),
    }
}

#[test]
#[allow(clippy::vec_init_then_push)] // one commented case per push
fn hostile_operations_are_errors() {
    let sources = v1_sources();
    let (src, src_bytes) = sources.iter().max_by_key(|(_, b)| b.len()).unwrap();
    let file = ObjectKey::new(Checksum([7; 32]), ObjectType::File);
    let meta = ObjectKey::new(Checksum([8; 32]), ObjectType::DirTree);
    let v = |vals: &[u64]| {
        let mut o = Vec::new();
        for x in vals {
            write_varuint(&mut o, *x);
        }
        o
    };
    let mut cases: Vec<(&str, Vec<ObjectKey>, PartPayload)> = Vec::new();
    // splice beyond the payload (meta and content), huge lengths, overflow
    cases.push((
        "meta oob",
        vec![meta],
        part_of(
            b"abc",
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[4, 0])].concat(),
        ),
    ));
    cases.push((
        "content oob",
        vec![file],
        part_of(
            b"abc",
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[0, 0, 2, 2])].concat(),
        ),
    ));
    cases.push((
        "overflow",
        vec![file],
        part_of(
            b"abc",
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[0, 0, u64::MAX, 2])].concat(),
        ),
    ));
    cases.push((
        "mode index",
        vec![file],
        part_of(
            b"abc",
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[5, 0, 1, 0])].concat(),
        ),
    ));
    cases.push((
        "xattr index",
        vec![file],
        part_of(
            b"abc",
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[0, 9, 1, 0])].concat(),
        ),
    ));
    let two = [&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[0, 0, 1, 0])]
        .concat()
        .repeat(2);
    cases.push(("too many objects", vec![file], part_of(b"abc", &two)));
    cases.push((
        "truncated varint",
        vec![file],
        part_of(b"abc", &[op::OPEN_SPLICE_AND_CLOSE, 0x80]),
    ));
    cases.push(("unknown opcode", vec![file], part_of(b"abc", b"Z")));
    cases.push((
        "write without open",
        vec![file],
        part_of(b"abc", &[&[op::WRITE][..], &v(&[1, 0])].concat()),
    ));
    cases.push((
        "open without close",
        vec![file],
        part_of(b"abc", &[&[op::OPEN][..], &v(&[0, 0, 3])].concat()),
    ));
    cases.push((
        "write past size",
        vec![file],
        part_of(
            b"abc",
            &[
                &[op::OPEN][..],
                &v(&[0, 0, 1]),
                &[op::WRITE],
                &v(&[3, 0]),
                &[op::CLOSE],
            ]
            .concat(),
        ),
    ));
    // read source: checksum beyond the payload, reads beyond the source
    let mut pl = src.0.to_vec();
    pl.extend_from_slice(b"xyz");
    cases.push((
        "source csum oob",
        vec![file],
        part_of(b"short", &[&[op::SET_READ_SOURCE][..], &v(&[0])].concat()),
    ));
    cases.push((
        "source read oob",
        vec![file],
        part_of(
            &pl,
            &[
                &[op::OPEN][..],
                &v(&[0, 0, 10]),
                &[op::SET_READ_SOURCE],
                &v(&[0]),
                &[op::WRITE],
                &v(&[10, src_bytes.len() as u64 - 5]),
                &[op::CLOSE],
            ]
            .concat(),
        ),
    ));
    // bspatch: patch beyond the payload; controls pointing outside; declared size larger than
    // the patch can produce; a wrong result (checksum mismatch)
    let mut ctrl = vec![0u8; 24];
    ctrl[..8].copy_from_slice(&(i64::MAX as u64).to_le_bytes());
    let mut bp = src.0.to_vec();
    let patch_off = bp.len() as u64;
    bp.extend_from_slice(&ctrl);
    bp.extend_from_slice(&[0u8; 16]);
    for (name, size, plen) in [
        ("bspatch huge ctrl", 16u64, 40u64),
        ("bspatch oob", 16, 400),
        ("bspatch size", 1 << 40, 40),
    ] {
        cases.push((
            name,
            vec![file],
            part_of(
                &bp,
                &[
                    &[op::SET_READ_SOURCE][..],
                    &v(&[0]),
                    &[op::OPEN],
                    &v(&[0, 0, size]),
                    &[op::BSPATCH],
                    &v(&[patch_off, plen]),
                    &[op::CLOSE],
                ]
                .concat(),
            ),
        ));
    }
    let mut good = bp[..32].to_vec();
    let mut patch = Vec::new();
    ostree_core::delta::bspatch::diff(src_bytes, b"some other content")
        .map(|p| patch = p)
        .unwrap();
    let poff = good.len() as u64;
    good.extend_from_slice(&patch);
    cases.push((
        "bspatch checksum",
        vec![file],
        part_of(
            &good,
            &[
                &[op::SET_READ_SOURCE][..],
                &v(&[0]),
                &[op::OPEN],
                &v(&[0, 0, 18]),
                &[op::BSPATCH],
                &v(&[poff, patch.len() as u64]),
                &[op::CLOSE],
            ]
            .concat(),
        ),
    ));
    cases.push((
        "meta checksum",
        vec![meta],
        part_of(
            &[0u8],
            &[&[op::OPEN_SPLICE_AND_CLOSE][..], &v(&[1, 0])].concat(),
        ),
    ));
    for (name, objs, part) in cases {
        let r = execute_in_memory(&objs, &part, &sources);
        assert!(
            r.is_err(),
            "{name}: expected an error, got {} objects",
            r.map(|v| v.len()).unwrap_or(0)
        );
        // Also through the serialized, uncompressed form.
        let mut raw = vec![format::COMPRESSION_NONE];
        raw.extend_from_slice(&part.to_bytes());
        let back = open_part(&raw, None, 1 << 30).unwrap();
        assert!(
            execute_in_memory(&objs, &back, &sources).is_err(),
            "{name} (serialized)"
        );
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            2 => d.truncate(rng.below(d.len() + 1)),
            3 => {
                let i = rng.below(d.len() + 1);
                d.insert(i, rng.next() as u8);
            }
            4 if !d.is_empty() => {
                let i = rng.below(d.len());
                d.remove(i);
            }
            _ if d.len() >= 8 => {
                let i = rng.below(d.len() - 7);
                d[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
            }
            _ => {}
        }
    }
    d
}

#[test]
fn mutated_inputs_never_panic() {
    let sources = v1_sources();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for f in [
        "empty/superblock",
        "mod/superblock",
        "swapped/superblock",
        "inline/superblock",
    ] {
        let raw = data(f);
        for _ in 0..400 {
            let m = mutate(&mut rng, &raw);
            if let Ok(sb) = Superblock::parse(&m) {
                let _ = sb.inline_part(0);
                let _ = sb.detached_commitmeta();
            }
        }
    }
    // Decompressed parts, mutated and executed uncompressed (the interpreter sees hostile
    // offsets, tables, opcodes and bsdiff streams).
    for (sbf, pf) in [("mod/superblock", "mod/0"), ("empty/superblock", "empty/0")] {
        let sb = Superblock::parse(&data(sbf)).unwrap();
        let h = &sb.parts[0];
        let part = open_part(&data(pf), Some(h), format::part_size_limit(h)).unwrap();
        let plain = part.to_bytes();
        let mut n_ok = 0;
        for i in 0..600 {
            let m = if i % 3 == 0 {
                // Mutate only the operations: framing stays valid, the interpreter is stressed.
                let mut p = part.clone();
                p.ops = Bytes::from(mutate(&mut rng, &p.ops));
                p.to_bytes()
            } else {
                mutate(&mut rng, &plain)
            };
            let mut raw = vec![format::COMPRESSION_NONE];
            raw.extend_from_slice(&m);
            if let Ok(p) = open_part(&raw, None, 1 << 26) {
                let _ = part_stats(&h.objects, &p);
                if execute_in_memory(&h.objects, &p, &sources).is_ok() {
                    n_ok += 1;
                }
            }
        }
        // Whatever was accepted was checksum-verified; most mutations are rejected.
        assert!(n_ok < 600);
        // Mutated compressed parts never decode with a bad checksum and never panic.
        let raw = data(pf);
        for _ in 0..200 {
            let m = mutate(&mut rng, &raw);
            let _ = open_part(&m, None, format::part_size_limit(h));
            if m != raw {
                assert!(open_part(&m, Some(h), format::part_size_limit(h)).is_err());
            }
        }
    }
}
