//! A GVariant implementation sized for OSTree: the type system, a normal-form serializer, a
//! validating parser that never panics, and the text format (`g_variant_print` /
//! `g_variant_parse`) in [`text`].
//!
//! Why our own: object names are SHA-256 over these exact bytes, so the serializer must produce
//! GLib's *normal form* byte for byte, and the parser reads untrusted input (objects fetched
//! over the network), so every offset is bounds-checked and malformed framing is an error, not
//! a panic or a silently defaulted value.
//!
//! ```
//! use ostree_core::gvariant::{Variant, VariantType};
//! let v = Variant::Tuple(vec![Variant::U32(1), Variant::Str("x".into())]);
//! let bytes = v.to_bytes();
//! let ty = VariantType::parse("(us)").unwrap();
//! assert_eq!(Variant::from_bytes(&ty, &bytes).unwrap(), v);
//! ```

pub mod text;

use std::fmt;

use crate::{Error, Result};

/// A GVariant type, parsed from its type string.
#[derive(Clone, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum VariantType {
    Bool,
    Byte,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Handle,
    Double,
    Str,
    ObjectPath,
    Signature,
    Variant,
    Maybe(Box<VariantType>),
    Array(Box<VariantType>),
    Tuple(Vec<VariantType>),
    DictEntry(Box<VariantType>, Box<VariantType>),
}

impl fmt::Debug for VariantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VariantType({self})")
    }
}

impl fmt::Display for VariantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

impl VariantType {
    /// Parse a complete type string such as `a{sv}`.
    pub fn parse(s: &str) -> Result<Self> {
        let b = s.as_bytes();
        let (t, used) = Self::parse_prefix(b, 0)?;
        if used != b.len() {
            return Err(Error::invalid(format!(
                "Invalid GVariant type string '{s}'"
            )));
        }
        Ok(t)
    }

    /// Parse one complete type at the start of `b`; returns it and the bytes consumed.
    pub fn parse_prefix(b: &[u8], depth: usize) -> Result<(Self, usize)> {
        let bad = || {
            Error::invalid(format!(
                "Invalid GVariant type string '{}'",
                String::from_utf8_lossy(b)
            ))
        };
        if depth > 64 {
            return Err(bad());
        }
        let c = *b.first().ok_or_else(bad)?;
        let simple = match c {
            b'b' => Some(VariantType::Bool),
            b'y' => Some(VariantType::Byte),
            b'n' => Some(VariantType::Int16),
            b'q' => Some(VariantType::Uint16),
            b'i' => Some(VariantType::Int32),
            b'u' => Some(VariantType::Uint32),
            b'x' => Some(VariantType::Int64),
            b't' => Some(VariantType::Uint64),
            b'h' => Some(VariantType::Handle),
            b'd' => Some(VariantType::Double),
            b's' => Some(VariantType::Str),
            b'o' => Some(VariantType::ObjectPath),
            b'g' => Some(VariantType::Signature),
            b'v' => Some(VariantType::Variant),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok((t, 1));
        }
        match c {
            b'm' => {
                let (t, n) = Self::parse_prefix(&b[1..], depth + 1)?;
                Ok((VariantType::Maybe(Box::new(t)), n + 1))
            }
            b'a' => {
                let (t, n) = Self::parse_prefix(&b[1..], depth + 1)?;
                Ok((VariantType::Array(Box::new(t)), n + 1))
            }
            b'(' => {
                let mut pos = 1;
                let mut items = Vec::new();
                loop {
                    match b.get(pos) {
                        None => return Err(bad()),
                        Some(b')') => return Ok((VariantType::Tuple(items), pos + 1)),
                        Some(_) => {
                            let (t, n) = Self::parse_prefix(&b[pos..], depth + 1)?;
                            items.push(t);
                            pos += n;
                        }
                    }
                }
            }
            b'{' => {
                let (k, n1) = Self::parse_prefix(&b[1..], depth + 1)?;
                if !k.is_basic() {
                    return Err(bad());
                }
                let (v, n2) = Self::parse_prefix(&b[1 + n1..], depth + 1)?;
                if b.get(1 + n1 + n2) != Some(&b'}') {
                    return Err(bad());
                }
                Ok((
                    VariantType::DictEntry(Box::new(k), Box::new(v)),
                    n1 + n2 + 2,
                ))
            }
            _ => Err(bad()),
        }
    }

    fn write_to(&self, s: &mut String) {
        match self {
            VariantType::Bool => s.push('b'),
            VariantType::Byte => s.push('y'),
            VariantType::Int16 => s.push('n'),
            VariantType::Uint16 => s.push('q'),
            VariantType::Int32 => s.push('i'),
            VariantType::Uint32 => s.push('u'),
            VariantType::Int64 => s.push('x'),
            VariantType::Uint64 => s.push('t'),
            VariantType::Handle => s.push('h'),
            VariantType::Double => s.push('d'),
            VariantType::Str => s.push('s'),
            VariantType::ObjectPath => s.push('o'),
            VariantType::Signature => s.push('g'),
            VariantType::Variant => s.push('v'),
            VariantType::Maybe(t) => {
                s.push('m');
                t.write_to(s)
            }
            VariantType::Array(t) => {
                s.push('a');
                t.write_to(s)
            }
            VariantType::Tuple(items) => {
                s.push('(');
                for t in items {
                    t.write_to(s);
                }
                s.push(')');
            }
            VariantType::DictEntry(k, v) => {
                s.push('{');
                k.write_to(s);
                v.write_to(s);
                s.push('}');
            }
        }
    }

    /// True for the basic types (those allowed as dictionary keys).
    pub fn is_basic(&self) -> bool {
        !matches!(
            self,
            VariantType::Variant
                | VariantType::Maybe(_)
                | VariantType::Array(_)
                | VariantType::Tuple(_)
                | VariantType::DictEntry(..)
        )
    }

    /// Alignment in bytes (1, 2, 4 or 8).
    pub fn alignment(&self) -> usize {
        match self {
            VariantType::Bool | VariantType::Byte => 1,
            VariantType::Int16 | VariantType::Uint16 => 2,
            VariantType::Int32 | VariantType::Uint32 | VariantType::Handle => 4,
            VariantType::Int64 | VariantType::Uint64 | VariantType::Double => 8,
            VariantType::Str | VariantType::ObjectPath | VariantType::Signature => 1,
            VariantType::Variant => 8,
            VariantType::Maybe(t) | VariantType::Array(t) => t.alignment(),
            VariantType::Tuple(items) => items.iter().map(|t| t.alignment()).max().unwrap_or(1),
            VariantType::DictEntry(k, v) => k.alignment().max(v.alignment()),
        }
    }

    /// Size in bytes if every value of this type has the same size.
    pub fn fixed_size(&self) -> Option<usize> {
        match self {
            VariantType::Bool | VariantType::Byte => Some(1),
            VariantType::Int16 | VariantType::Uint16 => Some(2),
            VariantType::Int32 | VariantType::Uint32 | VariantType::Handle => Some(4),
            VariantType::Int64 | VariantType::Uint64 | VariantType::Double => Some(8),
            VariantType::Tuple(items) => tuple_fixed_size(items.iter()),
            VariantType::DictEntry(k, v) => tuple_fixed_size([&**k, &**v].into_iter()),
            _ => None,
        }
    }
}

fn tuple_fixed_size<'a>(items: impl Iterator<Item = &'a VariantType>) -> Option<usize> {
    let mut off = 0usize;
    let mut align = 1usize;
    for t in items {
        let a = t.alignment();
        align = align.max(a);
        off = align_up(off, a) + t.fixed_size()?;
    }
    let total = align_up(off, align);
    Some(if total == 0 { 1 } else { total })
}

#[inline]
fn align_up(n: usize, a: usize) -> usize {
    (n + a - 1) & !(a - 1)
}

/// A GVariant value.
///
/// `ay` values are held as [`Variant::Bytes`]; `Array(VariantType::Byte, ..)` is never produced
/// by the parser and is serialized identically if built by hand.
#[derive(Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Variant {
    Bool(bool),
    Byte(u8),
    Int16(i16),
    Uint16(u16),
    Int32(i32),
    U32(u32),
    Int64(i64),
    U64(u64),
    Handle(i32),
    Double(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// A boxed value of any type (`v`).
    Variant(Box<Variant>),
    /// `m<T>`: the element type and maybe a value.
    Maybe(VariantType, Option<Box<Variant>>),
    /// `a<T>`: the element type and the elements.
    Array(VariantType, Vec<Variant>),
    /// `ay`.
    Bytes(Vec<u8>),
    Tuple(Vec<Variant>),
    DictEntry(Box<Variant>, Box<Variant>),
}

impl fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::print(self, true))
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::print(self, true))
    }
}

impl Variant {
    /// The type of this value.
    pub fn type_(&self) -> VariantType {
        match self {
            Variant::Bool(_) => VariantType::Bool,
            Variant::Byte(_) => VariantType::Byte,
            Variant::Int16(_) => VariantType::Int16,
            Variant::Uint16(_) => VariantType::Uint16,
            Variant::Int32(_) => VariantType::Int32,
            Variant::U32(_) => VariantType::Uint32,
            Variant::Int64(_) => VariantType::Int64,
            Variant::U64(_) => VariantType::Uint64,
            Variant::Handle(_) => VariantType::Handle,
            Variant::Double(_) => VariantType::Double,
            Variant::Str(_) => VariantType::Str,
            Variant::ObjectPath(_) => VariantType::ObjectPath,
            Variant::Signature(_) => VariantType::Signature,
            Variant::Variant(_) => VariantType::Variant,
            Variant::Maybe(t, _) => VariantType::Maybe(Box::new(t.clone())),
            Variant::Array(t, _) => VariantType::Array(Box::new(t.clone())),
            Variant::Bytes(_) => VariantType::Array(Box::new(VariantType::Byte)),
            Variant::Tuple(items) => VariantType::Tuple(items.iter().map(|v| v.type_()).collect()),
            Variant::DictEntry(k, v) => {
                VariantType::DictEntry(Box::new(k.type_()), Box::new(v.type_()))
            }
        }
    }

    /// Wrap in a `v`.
    pub fn boxed(self) -> Variant {
        Variant::Variant(Box::new(self))
    }

    /// A string array `as`.
    pub fn str_array<S: AsRef<str>>(items: &[S]) -> Variant {
        Variant::Array(
            VariantType::Str,
            items
                .iter()
                .map(|s| Variant::Str(s.as_ref().to_string()))
                .collect(),
        )
    }

    /// Serialize in normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Append the normal-form serialization to `out`. `out.len()` must be aligned to this
    /// value's alignment relative to the start of the enclosing top-level value.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Variant::Bool(b) => out.push(*b as u8),
            Variant::Byte(b) => out.push(*b),
            Variant::Int16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::Uint16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::Int32(v) | Variant::Handle(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::Int64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::Double(v) => out.extend_from_slice(&v.to_le_bytes()),
            Variant::Str(s) | Variant::ObjectPath(s) | Variant::Signature(s) => {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            Variant::Bytes(b) => out.extend_from_slice(b),
            Variant::Variant(inner) => {
                inner.write(out);
                out.push(0);
                out.extend_from_slice(inner.type_().to_string().as_bytes());
            }
            Variant::Maybe(t, v) => {
                if let Some(v) = v {
                    v.write(out);
                    if t.fixed_size().is_none() {
                        out.push(0);
                    }
                }
            }
            Variant::Array(t, items) => {
                let start = out.len();
                if t.fixed_size().is_some() {
                    for it in items {
                        pad_to(out, t.alignment());
                        it.write(out);
                    }
                } else {
                    let mut ends = Vec::with_capacity(items.len());
                    for it in items {
                        pad_to(out, t.alignment());
                        it.write(out);
                        ends.push(out.len() - start);
                    }
                    write_offsets(out, start, &ends);
                }
            }
            Variant::Tuple(items) => write_tuple(out, items.iter()),
            Variant::DictEntry(k, v) => write_tuple(out, [&**k, &**v].into_iter()),
        }
    }

    /// Parse `data` as a value of type `ty`. Malformed framing is an error.
    pub fn from_bytes(ty: &VariantType, data: &[u8]) -> Result<Variant> {
        parse(ty, data, 0)
    }

    /// Parse and also require that `data` is in normal form (re-serializes identically).
    pub fn from_bytes_normal(ty: &VariantType, data: &[u8]) -> Result<Variant> {
        let v = parse(ty, data, 0)?;
        if v.to_bytes() != data {
            return Err(Error::corrupted(format!(
                "GVariant of type {ty} is not in normal form"
            )));
        }
        Ok(v)
    }

    /// Swap the byte order of every fixed-size number (`g_variant_byteswap`); framing is
    /// unaffected. ostree's `show --raw` prints commits byteswapped on little-endian hosts.
    pub fn byteswap(&self) -> Variant {
        match self {
            Variant::Int16(v) => Variant::Int16(v.swap_bytes()),
            Variant::Uint16(v) => Variant::Uint16(v.swap_bytes()),
            Variant::Int32(v) => Variant::Int32(v.swap_bytes()),
            Variant::U32(v) => Variant::U32(v.swap_bytes()),
            Variant::Handle(v) => Variant::Handle(v.swap_bytes()),
            Variant::Int64(v) => Variant::Int64(v.swap_bytes()),
            Variant::U64(v) => Variant::U64(v.swap_bytes()),
            Variant::Double(v) => Variant::Double(f64::from_bits(v.to_bits().swap_bytes())),
            Variant::Variant(v) => Variant::Variant(Box::new(v.byteswap())),
            Variant::Maybe(t, v) => {
                Variant::Maybe(t.clone(), v.as_ref().map(|v| Box::new(v.byteswap())))
            }
            Variant::Array(t, items) => {
                Variant::Array(t.clone(), items.iter().map(Variant::byteswap).collect())
            }
            Variant::Tuple(items) => Variant::Tuple(items.iter().map(Variant::byteswap).collect()),
            Variant::DictEntry(k, v) => {
                Variant::DictEntry(Box::new(k.byteswap()), Box::new(v.byteswap()))
            }
            other => other.clone(),
        }
    }

    // ---- typed accessors (return None on type mismatch) ----

    /// `s`/`o`/`g` contents.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Variant::Str(s) | Variant::ObjectPath(s) | Variant::Signature(s) => Some(s),
            _ => None,
        }
    }
    /// `ay` contents.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Variant::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// `u` value.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Variant::U32(v) => Some(*v),
            _ => None,
        }
    }
    /// `t` value.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Variant::U64(v) => Some(*v),
            _ => None,
        }
    }
    /// `b` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Variant::Bool(v) => Some(*v),
            _ => None,
        }
    }
    /// Unbox a `v`.
    pub fn as_variant(&self) -> Option<&Variant> {
        match self {
            Variant::Variant(v) => Some(v),
            _ => None,
        }
    }
    /// Tuple members.
    pub fn as_tuple(&self) -> Option<&[Variant]> {
        match self {
            Variant::Tuple(v) => Some(v),
            _ => None,
        }
    }
    /// Array elements (not for `ay`).
    pub fn as_array(&self) -> Option<&[Variant]> {
        match self {
            Variant::Array(_, v) => Some(v),
            _ => None,
        }
    }
    /// Elements of an `as`.
    pub fn as_str_array(&self) -> Option<Vec<String>> {
        match self {
            Variant::Array(VariantType::Str, v) => {
                v.iter().map(|s| s.as_str().map(str::to_string)).collect()
            }
            _ => None,
        }
    }
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    let n = align_up(out.len(), align) - out.len();
    out.extend(std::iter::repeat_n(0u8, n));
}

fn offset_size_for(body: usize, n: usize) -> usize {
    if body + n <= 0xff {
        1
    } else if body + 2 * n <= 0xffff {
        2
    } else if body + 4 * n <= 0xffff_ffff {
        4
    } else {
        8
    }
}

fn write_offsets(out: &mut Vec<u8>, start: usize, offsets: &[usize]) {
    if offsets.is_empty() {
        return;
    }
    let body = out.len() - start;
    let w = offset_size_for(body, offsets.len());
    for &o in offsets {
        out.extend_from_slice(&(o as u64).to_le_bytes()[..w]);
    }
}

fn write_tuple<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a Variant>) {
    let start = out.len();
    let n = items.len();
    let mut ends = Vec::new();
    let mut all_fixed = true;
    let mut max_align = 1;
    for (i, it) in items.enumerate() {
        let t = it.type_();
        let a = t.alignment();
        max_align = max_align.max(a);
        pad_to(out, a);
        it.write(out);
        if t.fixed_size().is_none() {
            all_fixed = false;
            if i + 1 != n {
                ends.push(out.len() - start);
            }
        }
    }
    if all_fixed {
        if out.len() == start {
            out.push(0);
        } else {
            pad_to(out, max_align);
        }
    } else {
        ends.reverse();
        write_offsets(out, start, &ends);
    }
}

const MAX_DEPTH: usize = 128;

fn read_offset(data: &[u8], at: usize, w: usize) -> Result<usize> {
    let slice = data
        .get(at..at + w)
        .ok_or_else(|| Error::corrupted("GVariant framing offset out of bounds"))?;
    let mut buf = [0u8; 8];
    buf[..w].copy_from_slice(slice);
    usize::try_from(u64::from_le_bytes(buf))
        .map_err(|_| Error::corrupted("GVariant framing offset too large"))
}

fn offset_width(len: usize) -> usize {
    if len <= 0xff {
        1
    } else if len <= 0xffff {
        2
    } else if len <= 0xffff_ffff {
        4
    } else {
        8
    }
}

fn fixed<const N: usize>(ty: &VariantType, data: &[u8]) -> Result<[u8; N]> {
    data.try_into().map_err(|_| {
        Error::corrupted(format!(
            "GVariant value of type {ty} has size {} (expected {N})",
            data.len()
        ))
    })
}

fn parse_string(data: &[u8]) -> Result<String> {
    match data.split_last() {
        Some((0, body)) if !body.contains(&0) => std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|_| Error::corrupted("GVariant string is not valid UTF-8")),
        _ => Err(Error::corrupted("GVariant string is not NUL-terminated")),
    }
}

fn parse(ty: &VariantType, data: &[u8], depth: usize) -> Result<Variant> {
    if depth > MAX_DEPTH {
        return Err(Error::corrupted("GVariant nesting too deep"));
    }
    Ok(match ty {
        VariantType::Bool => match fixed::<1>(ty, data)?[0] {
            0 => Variant::Bool(false),
            1 => Variant::Bool(true),
            _ => return Err(Error::corrupted("GVariant boolean is neither 0 nor 1")),
        },
        VariantType::Byte => Variant::Byte(fixed::<1>(ty, data)?[0]),
        VariantType::Int16 => Variant::Int16(i16::from_le_bytes(fixed(ty, data)?)),
        VariantType::Uint16 => Variant::Uint16(u16::from_le_bytes(fixed(ty, data)?)),
        VariantType::Int32 => Variant::Int32(i32::from_le_bytes(fixed(ty, data)?)),
        VariantType::Handle => Variant::Handle(i32::from_le_bytes(fixed(ty, data)?)),
        VariantType::Uint32 => Variant::U32(u32::from_le_bytes(fixed(ty, data)?)),
        VariantType::Int64 => Variant::Int64(i64::from_le_bytes(fixed(ty, data)?)),
        VariantType::Uint64 => Variant::U64(u64::from_le_bytes(fixed(ty, data)?)),
        VariantType::Double => Variant::Double(f64::from_le_bytes(fixed(ty, data)?)),
        VariantType::Str => Variant::Str(parse_string(data)?),
        VariantType::ObjectPath => Variant::ObjectPath(parse_string(data)?),
        VariantType::Signature => Variant::Signature(parse_string(data)?),
        VariantType::Variant => {
            let sep = data
                .iter()
                .rposition(|&b| b == 0)
                .ok_or_else(|| Error::corrupted("GVariant variant has no type separator"))?;
            let tstr = std::str::from_utf8(&data[sep + 1..])
                .map_err(|_| Error::corrupted("GVariant variant type is not ASCII"))?;
            let inner_ty = VariantType::parse(tstr)
                .map_err(|_| Error::corrupted(format!("Invalid GVariant variant type '{tstr}'")))?;
            Variant::Variant(Box::new(parse(&inner_ty, &data[..sep], depth + 1)?))
        }
        VariantType::Maybe(t) => {
            if data.is_empty() {
                Variant::Maybe((**t).clone(), None)
            } else if t.fixed_size().is_some() {
                Variant::Maybe((**t).clone(), Some(Box::new(parse(t, data, depth + 1)?)))
            } else {
                match data.split_last() {
                    Some((0, body)) => {
                        Variant::Maybe((**t).clone(), Some(Box::new(parse(t, body, depth + 1)?)))
                    }
                    _ => return Err(Error::corrupted("GVariant maybe lacks its trailing NUL")),
                }
            }
        }
        VariantType::Array(t) => {
            if **t == VariantType::Byte {
                return Ok(Variant::Bytes(data.to_vec()));
            }
            let mut items = Vec::new();
            if let Some(sz) = t.fixed_size() {
                if !data.len().is_multiple_of(sz) {
                    return Err(Error::corrupted(format!(
                        "GVariant array of {t} has size {} not a multiple of {sz}",
                        data.len()
                    )));
                }
                for chunk in data.chunks(sz) {
                    items.push(parse(t, chunk, depth + 1)?);
                }
            } else if !data.is_empty() {
                let w = offset_width(data.len());
                let last_end = read_offset(data, data.len() - w, w)?;
                if last_end > data.len() || !(data.len() - last_end).is_multiple_of(w) {
                    return Err(Error::corrupted("GVariant array framing is invalid"));
                }
                let n = (data.len() - last_end) / w;
                if n == 0 {
                    return Err(Error::corrupted("GVariant array framing is invalid"));
                }
                items.reserve(n);
                let a = t.alignment();
                let mut pos = 0usize;
                for i in 0..n {
                    let end = read_offset(data, last_end + i * w, w)?;
                    let start = align_up(pos, a);
                    if start > end || end > last_end {
                        return Err(Error::corrupted("GVariant array element out of bounds"));
                    }
                    items.push(parse(t, &data[start..end], depth + 1)?);
                    pos = end;
                }
            }
            Variant::Array((**t).clone(), items)
        }
        VariantType::Tuple(members) => {
            Variant::Tuple(parse_tuple(ty, members.iter(), data, depth)?)
        }
        VariantType::DictEntry(k, v) => {
            let mut it = parse_tuple(ty, [&**k, &**v].into_iter(), data, depth)?.into_iter();
            match (it.next(), it.next()) {
                (Some(k), Some(v)) => Variant::DictEntry(Box::new(k), Box::new(v)),
                _ => return Err(Error::corrupted("GVariant dict entry is malformed")),
            }
        }
    })
}

fn parse_tuple<'a>(
    ty: &VariantType,
    members: impl ExactSizeIterator<Item = &'a VariantType> + Clone,
    data: &[u8],
    depth: usize,
) -> Result<Vec<Variant>> {
    let n = members.len();
    if let Some(sz) = ty.fixed_size()
        && data.len() != sz
    {
        return Err(Error::corrupted(format!(
            "GVariant tuple {ty} has size {} (expected {sz})",
            data.len()
        )));
    }
    let w = offset_width(data.len());
    let mut out = Vec::with_capacity(n);
    let mut pos = 0usize;
    let mut n_offsets_read = 0usize;
    let mut limit = data.len();
    // Number of framing offsets stored: variable members except a trailing one.
    let var_count = members.clone().filter(|t| t.fixed_size().is_none()).count();
    let last_is_var = members
        .clone()
        .last()
        .is_some_and(|t| t.fixed_size().is_none());
    let n_offsets = var_count - usize::from(last_is_var);
    if n_offsets > 0 {
        limit = data
            .len()
            .checked_sub(n_offsets * w)
            .ok_or_else(|| Error::corrupted("GVariant tuple framing is invalid"))?;
    }
    for (i, t) in members.enumerate() {
        let start = align_up(pos, t.alignment());
        let end = if let Some(sz) = t.fixed_size() {
            start + sz
        } else if i + 1 == n {
            limit
        } else {
            n_offsets_read += 1;
            read_offset(data, data.len() - n_offsets_read * w, w)?
        };
        if start > end || end > limit {
            return Err(Error::corrupted(format!(
                "GVariant tuple {ty} member {i} out of bounds"
            )));
        }
        out.push(parse(t, &data[start..end], depth + 1)?);
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(tstr: &str, v: &Variant) {
        let ty = VariantType::parse(tstr).unwrap();
        assert_eq!(v.type_(), ty);
        let b = v.to_bytes();
        let back = Variant::from_bytes(&ty, &b).unwrap();
        assert_eq!(&back, v, "roundtrip of {tstr}");
        assert_eq!(back.to_bytes(), b);
    }

    #[test]
    fn types_parse_and_print() {
        for s in [
            "a{sv}",
            "(a(say)a(sayay))",
            "(uuua(ayay))",
            "(a{sv}aya(say)sstayay)",
            "mas",
            "()",
        ] {
            assert_eq!(VariantType::parse(s).unwrap().to_string(), s);
        }
        for s in ["", "a", "(s", "{vs}", "z", "ss"] {
            assert!(VariantType::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn empty_dirtree_is_one_zero_byte() {
        let v = Variant::Tuple(vec![
            Variant::Array(VariantType::parse("(say)").unwrap(), vec![]),
            Variant::Array(VariantType::parse("(sayay)").unwrap(), vec![]),
        ]);
        assert_eq!(v.to_bytes(), vec![0u8]);
    }

    #[test]
    fn roundtrips() {
        rt("()", &Variant::Tuple(vec![]));
        rt("s", &Variant::Str("hello".into()));
        rt("v", &Variant::Str("x".into()).boxed());
        rt(
            "(yt)",
            &Variant::Tuple(vec![Variant::Byte(1), Variant::U64(7)]),
        );
        rt(
            "mu",
            &Variant::Maybe(VariantType::Uint32, Some(Box::new(Variant::U32(3)))),
        );
        rt("ms", &Variant::Maybe(VariantType::Str, None));
        rt(
            "ms",
            &Variant::Maybe(VariantType::Str, Some(Box::new(Variant::Str("a".into())))),
        );
        rt("as", &Variant::str_array(&["a", "bb", ""]));
        let big: Vec<String> = (0..300).map(|i| format!("item{i}")).collect();
        rt("as", &Variant::str_array(&big));
        rt(
            "a{sv}",
            &Variant::Array(
                VariantType::parse("{sv}").unwrap(),
                vec![Variant::DictEntry(
                    Box::new(Variant::Str("k".into())),
                    Box::new(Variant::U64(5).boxed()),
                )],
            ),
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        let ty = VariantType::parse("(a{sv}aya(say)sstayay)").unwrap();
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = Variant::from_bytes(&ty, &data);
        }
    }
}
