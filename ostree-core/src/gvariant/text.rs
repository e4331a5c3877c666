//! The GVariant text format: [`print()`] is GLib's `g_variant_print()` and [`parse()`] is
//! `g_variant_parse()`, both reproduced byte for byte (GLib 2.74).
//!
//! Why exact: the real `ostree` prints metadata, xattrs and whole objects with
//! `g_variant_print()` (`ostree show --raw`, `--print-metadata-key`, `ls -X`) and upstream's
//! tests grep that output; `commit --add-metadata=K=V` parses `V` with `g_variant_parse()` and
//! prints its error messages (`0-3:unable to infer type`) verbatim.
//!
//! The behaviour follows GLib's algorithm, including its quirks:
//!
//! * Printing annotates only where the type is otherwise ambiguous: `int32`, `double`, `bool`
//!   and strings are never annotated; arrays and dictionaries annotate only their first
//!   element; a variant's content is always annotated; a `just` is dropped unless it wraps a
//!   nested `nothing` (`@mmi 5`, `@mmi just nothing`).
//! * An `ay` prints as `b'…'` exactly when its only NUL byte is the last one, escaped with
//!   `g_strescape()` (octal for control and non-ASCII bytes); `b"…"` if it contains `'`.
//! * Doubles print as `%.17g` with `.0` appended when that has no `.`, `e` or `n`.
//! * Strings escape `g_unichar_isprint()`-rejected characters (GLib 2.74's own Unicode tables,
//!   embedded below) as `\a \b \f \n \r \t \v \uXXXX \UXXXXXXXX`, and use `"…"` when the
//!   string contains `'`.
//! * Parsing infers types from "patterns" (`MN` = maybe-number, `S` = some string type, `*` =
//!   anything) coalesced across array elements; a dictionary's value type is inferred from its
//!   *first* value only. Unannotated integers default to `int32`, strings to `s`. Any value
//!   may stand for a `just` of itself when a maybe type is expected.
//! * Numbers go through C `strtoull`/`strtod` rules: `0x10` is hex, `010` octal, `1E5` is an
//!   error but `1e5` a double, `-0x1e` a (hex-float) double, subnormal doubles are rejected
//!   as "number too big for any type" (so GLib cannot re-parse its own `5e-324`).
//! * Errors are `Error::InvalidInput` carrying GLib's message, byte offsets included.
//!
//! Known differences from GLib, none reachable by sane input:
//!
//! * "variant nested too deeply" right after `<`, `just` or a type keyword: GLib reports an
//!   uninitialised offset; we report the offset of the next token.
//! * `\u`/`\U` escapes naming a surrogate or a value beyond U+10FFFF: GLib emits a critical
//!   warning and fails without a message; we report an invalid unicode escape.
//! * Doubles: a decimal literal within 2^-1075 below `f64::MIN_POSITIVE` is accepted (glibc
//!   flags that underflow), and an exactly representable decimal subnormal is rejected.
//! * Deeply nested maybe types repeated over a long array fail with "value too large" once
//!   the value would need millions of type nodes (see `Builder`); GLib builds them.

use std::fmt::Write as _;

use super::{Variant, VariantType};
use crate::{Error, Result};

/// GLib's `G_VARIANT_MAX_RECURSION_DEPTH`: how deeply the parser nests.
const MAX_DEPTH: usize = 128;

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

/// Print a value in GVariant text format, exactly as GLib's `g_variant_print()` does.
///
/// With `type_annotate`, type information is included where the text would otherwise be
/// ambiguous (`uint64 5`, `@as []`), so [`parse()`] gives back a value of the same type.
///
/// ```
/// use ostree_core::gvariant::{text, Variant, VariantType};
/// let v = Variant::Array(VariantType::Uint32, vec![Variant::U32(1), Variant::U32(2)]);
/// assert_eq!(text::print(&v, true), "[uint32 1, 2]");
/// assert_eq!(text::print(&Variant::Bytes(b"user.test\0".to_vec()), true), "b'user.test'");
/// ```
pub fn print(v: &Variant, type_annotate: bool) -> String {
    let mut out = String::new();
    print_into(&mut out, v, type_annotate);
    out
}

fn print_into(out: &mut String, v: &Variant, annotate: bool) {
    match v {
        Variant::Maybe(..) => print_maybe(out, v, annotate),
        Variant::Bytes(b) => print_bytes(out, b, annotate),
        Variant::Array(VariantType::Byte, items)
            if items.iter().all(|i| matches!(i, Variant::Byte(_))) =>
        {
            let bytes: Vec<u8> = items
                .iter()
                .map(|i| match i {
                    Variant::Byte(b) => *b,
                    _ => 0,
                })
                .collect();
            print_bytes(out, &bytes, annotate)
        }
        Variant::Array(t, items) => {
            let dict = matches!(t, VariantType::DictEntry(..));
            if items.is_empty() {
                if annotate {
                    let _ = write!(out, "@a{t} ");
                }
                out.push_str(if dict { "{}" } else { "[]" });
                return;
            }
            out.push(if dict { '{' } else { '[' });
            let mut annotate = annotate;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    Variant::DictEntry(k, val) if dict => {
                        print_into(out, k, annotate);
                        out.push_str(": ");
                        print_into(out, val, annotate);
                    }
                    other => print_into(out, other, annotate),
                }
                annotate = false;
            }
            out.push(if dict { '}' } else { ']' });
        }
        Variant::Tuple(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_into(out, item, annotate);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Variant::DictEntry(k, val) => {
            out.push('{');
            print_into(out, k, annotate);
            out.push_str(", ");
            print_into(out, val, annotate);
            out.push('}');
        }
        Variant::Variant(inner) => {
            out.push('<');
            print_into(out, inner, true);
            out.push('>');
        }
        Variant::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Variant::Str(s) => print_string(out, s),
        Variant::Byte(b) => {
            if annotate {
                out.push_str("byte ");
            }
            let _ = write!(out, "0x{b:02x}");
        }
        Variant::Int16(n) => annotated(out, annotate, "int16 ", n),
        Variant::Uint16(n) => annotated(out, annotate, "uint16 ", n),
        Variant::Int32(n) => annotated(out, false, "", n),
        Variant::Handle(n) => annotated(out, annotate, "handle ", n),
        Variant::U32(n) => annotated(out, annotate, "uint32 ", n),
        Variant::Int64(n) => annotated(out, annotate, "int64 ", n),
        Variant::U64(n) => annotated(out, annotate, "uint64 ", n),
        Variant::Double(d) => {
            let s = format_g17(*d);
            out.push_str(&s);
            if !s.contains(['.', 'e', 'n', 'N']) {
                out.push_str(".0");
            }
        }
        Variant::ObjectPath(s) => {
            if annotate {
                out.push_str("objectpath ");
            }
            let _ = write!(out, "'{s}'");
        }
        Variant::Signature(s) => {
            if annotate {
                out.push_str("signature ");
            }
            let _ = write!(out, "'{s}'");
        }
    }
}

fn annotated(out: &mut String, annotate: bool, prefix: &str, n: &dyn std::fmt::Display) {
    if annotate {
        out.push_str(prefix);
    }
    let _ = write!(out, "{n}");
}

/// Maybes: `nothing`; otherwise the innermost value *without* any `just`, unless a nested
/// maybe is `nothing`, which needs its `just`s to stay distinguishable (`just nothing`).
fn print_maybe(out: &mut String, v: &Variant, annotate: bool) {
    if annotate {
        let _ = write!(out, "@{} ", v.type_());
    }
    let mut cur = v;
    let mut justs = 0usize;
    loop {
        match cur {
            Variant::Maybe(_, Some(child)) => {
                cur = child;
                justs += 1;
            }
            Variant::Maybe(_, None) => {
                for _ in 0..justs {
                    out.push_str("just ");
                }
                out.push_str("nothing");
                return;
            }
            base => {
                print_into(out, base, false);
                return;
            }
        }
    }
}

fn print_bytes(out: &mut String, b: &[u8], annotate: bool) {
    if b.iter().position(|&c| c == 0) == Some(b.len().wrapping_sub(1)) {
        let content = &b[..b.len() - 1];
        let quote = if content.contains(&b'\'') { '"' } else { '\'' };
        out.push('b');
        out.push(quote);
        strescape(out, content);
        out.push(quote);
        return;
    }
    if b.is_empty() {
        if annotate {
            out.push_str("@ay ");
        }
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (i, c) in b.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        } else if annotate {
            out.push_str("byte ");
        }
        let _ = write!(out, "0x{c:02x}");
    }
    out.push(']');
}

/// GLib's `g_strescape(s, NULL)`.
fn strescape(out: &mut String, s: &[u8]) {
    for &c in s {
        match c {
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            c if !(0x20..0x7f).contains(&c) => {
                let _ = write!(out, "\\{}{}{}", c >> 6, (c >> 3) & 7, c & 7);
            }
            c => out.push(c as char),
        }
    }
}

fn print_string(out: &mut String, s: &str) {
    let quote = if s.contains('\'') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
        }
        if is_print(c) {
            out.push(c);
            continue;
        }
        out.push('\\');
        match c {
            '\x07' => out.push('a'),
            '\x08' => out.push('b'),
            '\x0c' => out.push('f'),
            '\n' => out.push('n'),
            '\r' => out.push('r'),
            '\t' => out.push('t'),
            '\x0b' => out.push('v'),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
}

/// GLib's `g_unichar_isprint()`.
fn is_print(c: char) -> bool {
    let c = c as u32;
    NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// C's `printf("%.17g", d)` (what `g_ascii_dtostr()` produces).
fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` with a precision is exact and rounds half to even, like glibc.
    let e = format!("{d:.16e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if d < 0.0 {
        out.push('-');
    }
    if !(-4..17).contains(&exp) {
        let trimmed = digits.trim_end_matches('0');
        let (first, rest) = trimmed.split_at(1.min(trimmed.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp >= 0 {
        let (int, frac) = digits.split_at((exp as usize + 1).min(digits.len()));
        out.push_str(int);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parse GVariant text, exactly as GLib's `g_variant_parse()` does.
///
/// With `ty`, the text is parsed as a value of that type (`5` as `uint64`, `[]` as `as`);
/// without, the type is inferred (integers default to `int32`, strings to `s`). The whole
/// input must be one value, surrounded by optional whitespace; text after a NUL is ignored
/// (GLib reads a C string).
///
/// Errors are [`Error::InvalidInput`] with GLib's message, which starts with the byte range
/// concerned (`0-2:unable to infer type`, `1-2,4-7:unable to find a common type`). No input
/// panics; nesting is limited to 128 levels as in GLib.
///
/// ```
/// use ostree_core::gvariant::{text, Variant, VariantType};
/// assert_eq!(text::parse("42", None).unwrap(), Variant::Int32(42));
/// let t = VariantType::parse("t").unwrap();
/// assert_eq!(text::parse("42", Some(&t)).unwrap(), Variant::U64(42));
/// assert_eq!(text::parse("[]", None).unwrap_err().to_string(), "0-2:unable to infer type");
/// ```
pub fn parse(text: &str, ty: Option<&VariantType>) -> Result<Variant> {
    let bytes = text.as_bytes();
    let src = match bytes.iter().position(|&c| c == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    };
    let mut p = Parser {
        toks: Tokens {
            src,
            this: None,
            stream: 0,
        },
    };
    let ast = p.parse(MAX_DEPTH)?;
    let mut builder = Builder {
        budget: src.len().saturating_mul(16).saturating_add(1 << 22),
    };
    let value = match ty {
        Some(t) => builder.get_value(&ast, t)?,
        None => builder.resolve(&ast)?,
    };
    let mut pos = p.toks.stream;
    while pos < src.len() && is_space(src[pos]) {
        pos += 1;
    }
    if pos < src.len() {
        return Err(err_at(pos, pos, None, "expected end of input"));
    }
    Ok(value)
}

/// `g_ascii_isspace()`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// GLib's error message: `START[-END][,START2-END2]:message`.
fn err_at(start: usize, end: usize, other: Option<(usize, usize)>, msg: &str) -> Error {
    let mut s = if start == end {
        format!("{start}")
    } else {
        format!("{start}-{end}")
    };
    if let Some((a, b)) = other {
        let _ = write!(s, ",{a}-{b}");
    }
    s.push(':');
    s.push_str(msg);
    Error::invalid(s)
}

/// GLib's tokenizer: `this..stream` is the current token (empty at end of input); `this` is
/// `None` once the token has been consumed.
struct Tokens<'a> {
    src: &'a [u8],
    this: Option<usize>,
    stream: usize,
}

impl Tokens<'_> {
    /// The byte at `i`, or 0 (the C string's terminator) past the end.
    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn prepare(&mut self) -> usize {
        if let Some(t) = self.this {
            return t;
        }
        let mut p = self.stream;
        while p < self.src.len() && is_space(self.src[p]) {
            p += 1;
        }
        let end = if p >= self.src.len() {
            p
        } else {
            match self.src[p] {
                b'-' | b'+' | b'.' | b'0'..=b'9' => {
                    let mut e = p;
                    while e < self.src.len()
                        && (self.src[e].is_ascii_alphanumeric()
                            || matches!(self.src[e], b'-' | b'+' | b'.'))
                    {
                        e += 1;
                    }
                    e
                }
                b'b' if matches!(self.at(p + 1), b'\'' | b'"') => {
                    self.quoted(p + 2, self.at(p + 1))
                }
                b'a'..=b'z' => {
                    let mut e = p;
                    while e < self.src.len() && self.src[e].is_ascii_alphanumeric() {
                        e += 1;
                    }
                    e
                }
                q @ (b'\'' | b'"') => self.quoted(p + 1, q),
                b'@' | b'%' => {
                    // Stop at the first space, comma, colon, `>`, `]` or unmatched bracket.
                    let mut e = p + 1;
                    let mut brackets = 0usize;
                    while e < self.src.len() {
                        let c = self.src[e];
                        if matches!(c, b',' | b':' | b'>' | b']') || is_space(c) {
                            break;
                        }
                        if matches!(c, b'(' | b'{') {
                            brackets += 1;
                        } else if matches!(c, b')' | b'}') {
                            if brackets == 0 {
                                break;
                            }
                            brackets -= 1;
                        }
                        e += 1;
                    }
                    e
                }
                _ => p + 1,
            }
        };
        self.this = Some(p);
        self.stream = end;
        p
    }

    /// End of a quoted token whose body starts at `i`: just past the closing quote, or at
    /// the end of input when unterminated (a backslash escapes the next byte).
    fn quoted(&self, mut i: usize, quote: u8) -> usize {
        loop {
            let c = self.at(i);
            if c == 0 || c == quote {
                break;
            }
            if c == b'\\' {
                i += 1;
                if self.at(i) == 0 {
                    break;
                }
            }
            i += 1;
        }
        if self.at(i) != 0 {
            i += 1;
        }
        i
    }

    fn token(&mut self) -> &[u8] {
        let t = self.prepare();
        &self.src[t..self.stream]
    }

    fn next(&mut self) {
        self.this = None;
    }

    fn peek(&mut self, c: u8) -> bool {
        self.token().first() == Some(&c)
    }

    fn peek2(&mut self, a: u8, b: u8) -> bool {
        self.token().starts_with(&[a, b])
    }

    fn is_keyword(&mut self) -> bool {
        let t = self.token();
        t.len() >= 2 && t[0].is_ascii_alphabetic() && t[1].is_ascii_alphabetic()
    }

    fn is_numeric(&mut self) -> bool {
        matches!(self.token().first(), Some(b'0'..=b'9' | b'-' | b'+' | b'.'))
    }

    fn peek_string(&mut self, s: &str) -> bool {
        self.token() == s.as_bytes()
    }

    fn consume(&mut self, s: &str) -> bool {
        if self.peek_string(s) {
            self.next();
            true
        } else {
            false
        }
    }

    fn require(&mut self, s: &str, purpose: &str) -> Result<()> {
        if self.consume(s) {
            Ok(())
        } else {
            Err(self.error(false, &format!("expected '{s}'{purpose}")))
        }
    }

    /// An error at the current token (its whole range with `this_token`, else its start).
    fn error(&mut self, this_token: bool, msg: &str) -> Error {
        let start = self.prepare();
        let end = if this_token { self.stream } else { start };
        err_at(start, end, None, msg)
    }
}

/// A parsed value whose type is not yet known, with its byte range in the input.
struct Ast {
    kind: Kind,
    start: usize,
    end: usize,
}

enum Kind {
    Maybe(Option<Box<Ast>>),
    Array(Vec<Ast>),
    Tuple(Vec<Ast>),
    Variant(Box<Ast>),
    /// `entry` is a lone `{k, v}` dictionary entry rather than a `{k: v, …}` dictionary.
    Dict {
        keys: Vec<Ast>,
        values: Vec<Ast>,
        entry: bool,
    },
    Str(Vec<u8>),
    /// Content of a `b'…'`, up to (excluding) its first NUL.
    ByteString(Vec<u8>),
    Number(Vec<u8>),
    Bool(bool),
    /// `@type value` or `keyword value`; holds the type string.
    TypeDecl(Vec<u8>, Box<Ast>),
}

impl Ast {
    fn error(&self, msg: &str) -> Error {
        err_at(self.start, self.end, None, msg)
    }

    fn type_error(&self, ty: &VariantType) -> Error {
        self.error(&format!("can not parse as value of type '{ty}'"))
    }
}

struct Parser<'a> {
    toks: Tokens<'a>,
}

const TYPE_KEYWORDS: &[(&str, &[u8])] = &[
    ("boolean", b"b"),
    ("byte", b"y"),
    ("int16", b"n"),
    ("uint16", b"q"),
    ("int32", b"i"),
    ("handle", b"h"),
    ("uint32", b"u"),
    ("int64", b"x"),
    ("uint64", b"t"),
    ("double", b"d"),
    ("string", b"s"),
    ("objectpath", b"o"),
    ("signature", b"g"),
];

impl Parser<'_> {
    fn parse(&mut self, depth: usize) -> Result<Ast> {
        let t = &mut self.toks;
        if depth == 0 {
            return Err(t.error(false, "variant nested too deeply"));
        }
        let start = t.prepare();
        let kind = if t.peek(b'[') {
            self.array(depth)?
        } else if t.peek(b'(') {
            self.tuple(depth)?
        } else if t.peek(b'<') {
            self.variant(depth)?
        } else if t.peek(b'{') {
            self.dict(depth)?
        } else if t.consume("true") {
            Kind::Bool(true)
        } else if t.consume("false") {
            Kind::Bool(false)
        } else if t.is_numeric() || t.peek_string("inf") || t.peek_string("nan") {
            let tok = t.token().to_vec();
            t.next();
            Kind::Number(tok)
        } else if t.peek(b'n') || t.peek(b'j') {
            self.maybe(depth)?
        } else if t.peek(b'@') || t.is_keyword() {
            self.typedecl(depth)?
        } else if t.peek(b'\'') || t.peek(b'"') {
            self.string()?
        } else if t.peek2(b'b', b'\'') || t.peek2(b'b', b'"') {
            self.bytestring()?
        } else {
            return Err(t.error(false, "expected value"));
        };
        Ok(Ast {
            kind,
            start,
            end: self.toks.stream,
        })
    }

    fn array(&mut self, depth: usize) -> Result<Kind> {
        self.toks.consume("[");
        let mut items = Vec::new();
        while !self.toks.consume("]") {
            if !items.is_empty() {
                self.toks.require(",", " or ']' to follow array element")?;
            }
            items.push(self.parse(depth - 1)?);
        }
        Ok(Kind::Array(items))
    }

    fn tuple(&mut self, depth: usize) -> Result<Kind> {
        self.toks.consume("(");
        let mut items = Vec::new();
        while !self.toks.consume(")") {
            if items.len() > 1 {
                self.toks.require(",", " or ')' to follow tuple element")?;
            }
            items.push(self.parse(depth - 1)?);
            if items.len() == 1 {
                self.toks.require(",", " after first tuple element")?;
            }
        }
        Ok(Kind::Tuple(items))
    }

    fn variant(&mut self, depth: usize) -> Result<Kind> {
        self.toks.consume("<");
        let value = self.parse(depth - 1)?;
        self.toks.require(">", " to follow variant value")?;
        Ok(Kind::Variant(Box::new(value)))
    }

    fn dict(&mut self, depth: usize) -> Result<Kind> {
        self.toks.consume("{");
        let mut keys = Vec::new();
        let mut values = Vec::new();
        if self.toks.consume("}") {
            return Ok(Kind::Dict {
                keys,
                values,
                entry: false,
            });
        }
        keys.push(self.parse(depth - 1)?);
        let only_one = self.toks.consume(",");
        if !only_one {
            self.toks
                .require(":", " or ',' to follow dictionary entry key")?;
        }
        values.push(self.parse(depth - 1)?);
        if only_one {
            self.toks.require("}", " at end of dictionary entry")?;
            return Ok(Kind::Dict {
                keys,
                values,
                entry: true,
            });
        }
        while !self.toks.consume("}") {
            self.toks
                .require(",", " or '}' to follow dictionary entry")?;
            keys.push(self.parse(depth - 1)?);
            self.toks.require(":", " to follow dictionary entry key")?;
            values.push(self.parse(depth - 1)?);
        }
        Ok(Kind::Dict {
            keys,
            values,
            entry: false,
        })
    }

    fn maybe(&mut self, depth: usize) -> Result<Kind> {
        if self.toks.consume("just") {
            Ok(Kind::Maybe(Some(Box::new(self.parse(depth - 1)?))))
        } else if self.toks.consume("nothing") {
            Ok(Kind::Maybe(None))
        } else {
            Err(self.toks.error(true, "unknown keyword"))
        }
    }

    fn typedecl(&mut self, depth: usize) -> Result<Kind> {
        let ty = if self.toks.peek(b'@') {
            let ts = self.toks.token()[1..].to_vec();
            match scan_type(&ts, 0, MAX_DEPTH) {
                Some((end, _, _)) if end != ts.len() => {
                    return Err(self.toks.error(true, "invalid type declaration"));
                }
                None => return Err(self.toks.error(true, "invalid type declaration")),
                Some((_, d, _)) if d > depth => {
                    return Err(self
                        .toks
                        .error(true, "type declaration recurses too deeply"));
                }
                Some((_, _, None)) => {
                    return Err(self.toks.error(true, "type declarations must be definite"));
                }
                Some(_) => {}
            }
            self.toks.next();
            ts
        } else {
            match TYPE_KEYWORDS.iter().find(|(k, _)| self.toks.peek_string(k)) {
                Some((_, t)) => {
                    self.toks.next();
                    t.to_vec()
                }
                None => return Err(self.toks.error(true, "unknown keyword")),
            }
        };
        let child = self.parse(depth - 1)?;
        Ok(Kind::TypeDecl(ty, Box::new(child)))
    }

    fn string(&mut self) -> Result<Kind> {
        let start = self.toks.prepare();
        let end = self.toks.stream;
        let tok = self.toks.token().to_vec();
        let at = |i: usize| tok.get(i).copied().unwrap_or(0);
        let unterminated = || err_at(start, end, None, "unterminated string constant");
        let quote = at(0);
        let mut out = Vec::with_capacity(tok.len());
        let mut i = 1;
        while at(i) != quote {
            match at(i) {
                0 => return Err(unterminated()),
                b'\\' => {
                    i += 1;
                    let simple = match at(i) {
                        0 => return Err(unterminated()),
                        b'u' | b'U' => {
                            let len = if at(i) == b'u' { 4 } else { 8 };
                            i += 1;
                            let c = unicode_unescape(&tok, i, len, start)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            i += len;
                            continue;
                        }
                        b'\n' => {
                            i += 1;
                            continue;
                        }
                        c => simple_escape(c),
                    };
                    match simple {
                        Some(c) => {
                            out.push(c);
                            i += 1;
                        }
                        None => {
                            out.push(at(i));
                            i += 1;
                        }
                    }
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        self.toks.next();
        Ok(Kind::Str(out))
    }

    fn bytestring(&mut self) -> Result<Kind> {
        let start = self.toks.prepare();
        let end = self.toks.stream;
        let tok = self.toks.token().to_vec();
        let at = |i: usize| tok.get(i).copied().unwrap_or(0);
        let unterminated = || err_at(start, end, None, "unterminated string constant");
        let quote = at(1);
        let mut out = Vec::with_capacity(tok.len());
        let mut i = 2;
        while at(i) != quote {
            match at(i) {
                0 => return Err(unterminated()),
                b'\\' => {
                    i += 1;
                    match at(i) {
                        0 => return Err(unterminated()),
                        c @ b'0'..=b'7' => {
                            // up to three octal digits, wrapping like C's `guchar`
                            let mut val = c - b'0';
                            i += 1;
                            for _ in 0..2 {
                                if (b'0'..b'8').contains(&at(i)) {
                                    val = (val << 3) | (at(i) - b'0');
                                    i += 1;
                                }
                            }
                            out.push(val);
                        }
                        b'\n' => i += 1,
                        c => {
                            out.push(simple_escape(c).unwrap_or(c));
                            i += 1;
                        }
                    }
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        // g_variant_new_bytestring() takes a C string: it ends at the first NUL.
        if let Some(n) = out.iter().position(|&c| c == 0) {
            out.truncate(n);
        }
        self.toks.next();
        Ok(Kind::ByteString(out))
    }
}

fn simple_escape(c: u8) -> Option<u8> {
    Some(match c {
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        _ => return None,
    })
}

/// `\uXXXX` / `\UXXXXXXXX`: exactly `len` hex digits at `tok[i..]`, not zero.
fn unicode_unescape(tok: &[u8], i: usize, len: usize, token_start: usize) -> Result<char> {
    let digits = &tok[i.min(tok.len())..(i + len).min(tok.len())];
    let valid = digits.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    let value = if valid == len {
        digits.iter().fold(0u32, |v, &c| {
            (v << 4) | (c as char).to_digit(16).unwrap_or(0)
        })
    } else {
        0
    };
    match char::from_u32(value) {
        Some(c) if value != 0 => Ok(c),
        _ => Err(err_at(
            token_start + i,
            token_start + i + valid,
            None,
            &format!("invalid {len}-character unicode escape"),
        )),
    }
}

// ---- type inference ------------------------------------------------------------------------

/// The pattern of an AST: a type string that may also hold `*` (any type), `M` (maybe a
/// maybe), `N` (some number type) and `S` (some string type).
fn pattern(ast: &Ast) -> Result<Vec<u8>> {
    Ok(match &ast.kind {
        Kind::Maybe(Some(child)) => [b"m".as_slice(), &pattern(child)?].concat(),
        Kind::Maybe(None) => b"m*".to_vec(),
        Kind::Array(items) if items.is_empty() => b"Ma*".to_vec(),
        Kind::Array(items) => [b"Ma".as_slice(), &array_pattern(items)?].concat(),
        Kind::Tuple(items) => {
            let mut p = b"M(".to_vec();
            for item in items {
                p.extend(pattern(item)?);
            }
            p.push(b')');
            p
        }
        Kind::Variant(_) => b"Mv".to_vec(),
        Kind::Dict { keys, values, .. } if keys.is_empty() || values.is_empty() => {
            b"Ma{**}".to_vec()
        }
        Kind::Dict {
            keys,
            values,
            entry,
        } => {
            let kp = array_pattern(keys)?;
            let key = if kp.first() == Some(&b'M') {
                kp.get(1)
            } else {
                kp.first()
            };
            let key = match key {
                Some(&k) if b"bynqiuxthdsogNS".contains(&k) => k,
                _ => return Err(ast.error("dictionary keys must have basic types")),
            };
            let mut p = if *entry {
                b"M{".to_vec()
            } else {
                b"Ma{".to_vec()
            };
            p.push(key);
            p.extend(pattern(&values[0])?);
            p.push(b'}');
            p
        }
        Kind::Str(_) => b"MS".to_vec(),
        Kind::ByteString(_) => b"May".to_vec(),
        Kind::Number(tok) => {
            let has = |s: &[u8]| tok.windows(s.len()).any(|w| w == s);
            if tok.contains(&b'.')
                || (!tok.starts_with(b"0x") && tok.contains(&b'e'))
                || has(b"inf")
                || has(b"nan")
            {
                b"Md".to_vec()
            } else {
                b"MN".to_vec()
            }
        }
        Kind::Bool(_) => b"Mb".to_vec(),
        Kind::TypeDecl(ty, _) => ty.clone(),
    })
}

/// The pattern common to all `items` (non-empty), or GLib's "no common type" error naming
/// the first conflicting pair.
fn array_pattern(items: &[Ast]) -> Result<Vec<u8>> {
    let Some(first) = items.first() else {
        return Ok(b"*".to_vec());
    };
    let mut pat = pattern(first)?;
    for (i, item) in items.iter().enumerate().skip(1) {
        let tmp = pattern(item)?;
        match coalesce(&pat, &tmp) {
            Some(merged) => pat = merged,
            None => {
                for other in &items[..i] {
                    if coalesce(&tmp, &pattern(other)?).is_none() {
                        return Err(err_at(
                            other.start,
                            other.end,
                            Some((item.start, item.end)),
                            "unable to find a common type",
                        ));
                    }
                }
                return Err(item.error("unable to find a common type"));
            }
        }
    }
    Ok(pat)
}

/// The most general pattern matching both `left` and `right` (GLib's `pattern_coalesce`).
fn coalesce(left: &[u8], right: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (0usize, 0usize);
    while l < left.len() && r < right.len() {
        if left[l] == right[r] {
            out.push(left[l]);
            l += 1;
            r += 1;
        } else if !coalesce_step(left, &mut l, right, &mut r, &mut out)
            && !coalesce_step(right, &mut r, left, &mut l, &mut out)
        {
            break;
        }
    }
    (l == left.len() && r == right.len()).then_some(out)
}

/// One rule of `pattern_coalesce` with `one[*oi]` as the more general side.
fn coalesce_step(
    one: &[u8],
    oi: &mut usize,
    other: &[u8],
    ti: &mut usize,
    out: &mut Vec<u8>,
) -> bool {
    let a = one.get(*oi).copied().unwrap_or(0);
    let b = other.get(*ti).copied().unwrap_or(0);
    if a == b'*' && b != b')' {
        pattern_copy(out, other, ti);
        *oi += 1;
    } else if a == b'M' && b == b'm' {
        out.push(b);
        *ti += 1;
    } else if a == b'M' && b != b'm' && b != b'*' {
        *oi += 1;
    } else if (a == b'N' && b"ynqiuxthd".contains(&b)) || (a == b'S' && b"sog".contains(&b)) {
        out.push(b);
        *ti += 1;
        *oi += 1;
    } else {
        return false;
    }
    true
}

/// Copy one complete (sub)pattern from `src[*i..]`.
fn pattern_copy(out: &mut Vec<u8>, src: &[u8], i: &mut usize) {
    while let Some(&c @ (b'a' | b'm' | b'M')) = src.get(*i) {
        out.push(c);
        *i += 1;
    }
    let mut brackets = 0i64;
    while let Some(&c) = src.get(*i) {
        if matches!(c, b'(' | b'{') {
            brackets += 1;
        } else if matches!(c, b')' | b'}') {
            brackets -= 1;
        }
        out.push(c);
        *i += 1;
        if brackets == 0 {
            break;
        }
    }
}

/// Builds values from ASTs. Every `Maybe` and `Array` value carries its own copy of its
/// element type, so deeply nested maybe types repeated in a long array (`[@mmm…mi 1, 1, …]`)
/// would need memory quadratic in the nesting; GLib avoids this by building serialized data
/// directly. We bound the type nodes copied instead (4 Mi plus 16 per input byte, a few
/// hundred MB at worst), failing with "value too large" where GLib would succeed.
struct Builder {
    budget: usize,
}

impl Builder {
    fn clone_type(&mut self, ast: &Ast, t: &VariantType) -> Result<VariantType> {
        let cost = type_size(t);
        if cost > self.budget {
            return Err(ast.error("value too large"));
        }
        self.budget -= cost;
        Ok(t.clone())
    }

    /// Infer the type of `ast` (defaults: not a maybe, `s`, `i`) and build its value.
    fn resolve(&mut self, ast: &Ast) -> Result<Variant> {
        let mut ts = Vec::new();
        for c in pattern(ast)? {
            match c {
                b'*' => return Err(ast.error("unable to infer type")),
                b'M' => {}
                b'S' => ts.push(b's'),
                b'N' => ts.push(b'i'),
                c => ts.push(c),
            }
        }
        match scan_type(&ts, 0, 4 * MAX_DEPTH) {
            Some((end, _, Some(ty))) if end == ts.len() => self.get_value(ast, &ty),
            _ => Err(ast.error("unable to infer type")),
        }
    }

    fn get_value(&mut self, ast: &Ast, ty: &VariantType) -> Result<Variant> {
        match &ast.kind {
            Kind::TypeDecl(_, child) => self.get_value(child, ty),
            Kind::Maybe(child) => {
                let VariantType::Maybe(elem) = ty else {
                    return Err(ast.type_error(ty));
                };
                let value = match child {
                    Some(c) => Some(Box::new(self.get_value(c, elem)?)),
                    None => None,
                };
                Ok(Variant::Maybe(self.clone_type(ast, elem)?, value))
            }
            _ => {
                // Any value also stands for `just` itself, as many times as `ty` asks.
                let mut base = ty;
                let mut depth = 0usize;
                while let VariantType::Maybe(elem) = base {
                    base = elem;
                    depth += 1;
                }
                let mut value = self.get_base_value(ast, base)?;
                if depth == 0 {
                    return Ok(value);
                }
                let mut elem = self.clone_type(ast, base)?;
                for i in 0..depth {
                    value = Variant::Maybe(self.clone_type(ast, &elem)?, Some(Box::new(value)));
                    if i + 1 < depth {
                        elem = VariantType::Maybe(Box::new(elem));
                    }
                }
                Ok(value)
            }
        }
    }

    fn get_base_value(&mut self, ast: &Ast, ty: &VariantType) -> Result<Variant> {
        match &ast.kind {
            Kind::Array(items) => {
                let VariantType::Array(elem) = ty else {
                    return Err(ast.type_error(ty));
                };
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.get_value(item, elem)?);
                }
                if **elem == VariantType::Byte {
                    let bytes = values
                        .iter()
                        .map(|v| match v {
                            Variant::Byte(b) => Ok(*b),
                            _ => Err(ast.type_error(ty)),
                        })
                        .collect::<Result<Vec<u8>>>()?;
                    return Ok(Variant::Bytes(bytes));
                }
                Ok(Variant::Array(self.clone_type(ast, elem)?, values))
            }
            Kind::Tuple(items) => {
                let VariantType::Tuple(types) = ty else {
                    return Err(ast.type_error(ty));
                };
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let Some(t) = types.get(i) else {
                        return Err(ast.type_error(ty));
                    };
                    values.push(self.get_value(item, t)?);
                }
                if types.len() != items.len() {
                    return Err(ast.type_error(ty));
                }
                Ok(Variant::Tuple(values))
            }
            Kind::Variant(child) => {
                if *ty != VariantType::Variant {
                    return Err(ast.type_error(ty));
                }
                Ok(Variant::Variant(Box::new(self.resolve(child)?)))
            }
            Kind::Dict {
                keys,
                values,
                entry: true,
            } => {
                let (VariantType::DictEntry(kt, vt), Some(k), Some(v)) =
                    (ty, keys.first(), values.first())
                else {
                    return Err(ast.type_error(ty));
                };
                Ok(Variant::DictEntry(
                    Box::new(self.get_value(k, kt)?),
                    Box::new(self.get_value(v, vt)?),
                ))
            }
            Kind::Dict { keys, values, .. } => {
                let VariantType::Array(entry) = ty else {
                    return Err(ast.type_error(ty));
                };
                let VariantType::DictEntry(kt, vt) = &**entry else {
                    return Err(ast.type_error(ty));
                };
                let mut entries = Vec::with_capacity(keys.len());
                for (k, v) in keys.iter().zip(values) {
                    entries.push(Variant::DictEntry(
                        Box::new(self.get_value(k, kt)?),
                        Box::new(self.get_value(v, vt)?),
                    ));
                }
                Ok(Variant::Array(self.clone_type(ast, entry)?, entries))
            }
            Kind::Str(s) => {
                let s = String::from_utf8(s.clone())
                    .map_err(|_| ast.error("invalid UTF-8 in string constant"))?;
                match ty {
                    VariantType::Str => Ok(Variant::Str(s)),
                    VariantType::ObjectPath if is_object_path(&s) => Ok(Variant::ObjectPath(s)),
                    VariantType::ObjectPath => Err(ast.error("not a valid object path")),
                    VariantType::Signature if is_signature(&s) => Ok(Variant::Signature(s)),
                    VariantType::Signature => Err(ast.error("not a valid signature")),
                    _ => Err(ast.type_error(ty)),
                }
            }
            Kind::ByteString(b) => match ty {
                VariantType::Array(e) if **e == VariantType::Byte => {
                    let mut bytes = b.clone();
                    bytes.push(0);
                    Ok(Variant::Bytes(bytes))
                }
                _ => Err(ast.type_error(ty)),
            },
            Kind::Number(tok) => number_value(ast, tok, ty),
            Kind::Bool(b) => match ty {
                VariantType::Bool => Ok(Variant::Bool(*b)),
                _ => Err(ast.type_error(ty)),
            },
            Kind::Maybe(_) | Kind::TypeDecl(..) => self.get_value(ast, ty),
        }
    }
}

/// Number of nodes in a type.
fn type_size(t: &VariantType) -> usize {
    match t {
        VariantType::Maybe(e) | VariantType::Array(e) => 1 + type_size(e),
        VariantType::Tuple(items) => 1 + items.iter().map(type_size).sum::<usize>(),
        VariantType::DictEntry(k, v) => 1 + type_size(k) + type_size(v),
        _ => 1,
    }
}

fn number_value(ast: &Ast, tok: &[u8], ty: &VariantType) -> Result<Variant> {
    let invalid_char = |offset: usize| {
        err_at(
            ast.start + offset,
            ast.start + offset + 1,
            None,
            "invalid character in number",
        )
    };
    if *ty == VariantType::Double {
        let (value, used, erange) = strtod(tok);
        if value != 0.0 && erange {
            return Err(ast.error("number too big for any type"));
        }
        if used != tok.len() {
            return Err(invalid_char(used));
        }
        return Ok(Variant::Double(value));
    }
    let sign = usize::from(tok.first() == Some(&b'-'));
    let (abs, used, erange) = strtoull(&tok[sign..]);
    if abs == u64::MAX && erange {
        return Err(ast.error("integer too big for any type"));
    }
    if sign + used != tok.len() {
        return Err(invalid_char(sign + used));
    }
    let negative = sign == 1 && abs != 0;
    let overflow = |c: char| Err(ast.error(&format!("number out of range for type '{c}'")));
    // `abs - negative` as GLib computes it (never underflows: negative implies abs > 0)
    let magnitude = abs - u64::from(negative);
    Ok(match ty {
        VariantType::Byte => match u8::try_from(abs) {
            Ok(b) if !negative => Variant::Byte(b),
            _ => return overflow('y'),
        },
        VariantType::Int16 => match signed(negative, abs, magnitude, i16::MAX as u64) {
            Some(n) => Variant::Int16(n as i16),
            None => return overflow('n'),
        },
        VariantType::Uint16 => match u16::try_from(abs) {
            Ok(n) if !negative => Variant::Uint16(n),
            _ => return overflow('q'),
        },
        VariantType::Int32 => match signed(negative, abs, magnitude, i32::MAX as u64) {
            Some(n) => Variant::Int32(n as i32),
            None => return overflow('i'),
        },
        VariantType::Uint32 => match u32::try_from(abs) {
            Ok(n) if !negative => Variant::U32(n),
            _ => return overflow('u'),
        },
        VariantType::Int64 => match signed(negative, abs, magnitude, i64::MAX as u64) {
            Some(n) => Variant::Int64(n),
            None => return overflow('x'),
        },
        VariantType::Uint64 if !negative => Variant::U64(abs),
        VariantType::Uint64 => return overflow('t'),
        VariantType::Handle => match signed(negative, abs, magnitude, i32::MAX as u64) {
            Some(n) => Variant::Handle(n as i32),
            None => return overflow('h'),
        },
        _ => return Err(ast.type_error(ty)),
    })
}

/// The signed value `±abs` if it fits a type whose maximum is `max` (as an `i64`, to be
/// narrowed by the caller).
fn signed(negative: bool, abs: u64, magnitude: u64, max: u64) -> Option<i64> {
    if magnitude > max {
        return None;
    }
    Some(if negative {
        // abs <= max + 1 <= 2^63
        (abs as i128).wrapping_neg() as i64
    } else {
        abs as i64
    })
}

/// C `strtoull(s, &end, 0)` as glibc does it: returns the value, the bytes used (0 when
/// nothing converts) and whether it overflowed (value `u64::MAX`, ERANGE).
fn strtoull(s: &[u8]) -> (u64, usize, bool) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    let mut negative = false;
    if at(i) == b'-' {
        negative = true;
        i += 1;
    } else if at(i) == b'+' {
        i += 1;
    }
    let base: u64 = if at(i) == b'0' && at(i + 1).eq_ignore_ascii_case(&b'x') {
        i += 2;
        16
    } else if at(i) == b'0' {
        8
    } else {
        10
    };
    let digits_start = i;
    let mut value = 0u64;
    let mut overflow = false;
    while let Some(d) = (at(i) as char).to_digit(base as u32) {
        match value
            .checked_mul(base)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        // "0x" without hex digits converts the "0"; anything else converts nothing
        return if base == 16 {
            (0, digits_start - 1, false)
        } else {
            (0, 0, false)
        };
    }
    if overflow {
        return (u64::MAX, i, true);
    }
    (
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        i,
        false,
    )
}

/// C `strtod(s, &end)` in the C locale, as glibc does it: value, bytes used, ERANGE.
///
/// ERANGE is set on overflow and on underflow (inexact and tiny). Decimal input is judged by
/// its rounded result: subnormal means ERANGE (decimal subnormals are practically never
/// exact), so unlike glibc a decimal within 2^-1075 below `f64::MIN_POSITIVE` that rounds up
/// to it is accepted.
fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let lower = |i: usize| at(i).to_ascii_lowercase();
    let mut i = 0;
    let negative = at(0) == b'-';
    if matches!(at(0), b'-' | b'+') {
        i += 1;
    }
    let sign = |v: f64| if negative { -v } else { v };
    let starts_ci = |i: usize, word: &[u8]| (0..word.len()).all(|k| lower(i + k) == word[k]);
    if starts_ci(i, b"inf") {
        let n = if starts_ci(i + 3, b"inity") { 8 } else { 3 };
        return (sign(f64::INFINITY), i + n, false);
    }
    if starts_ci(i, b"nan") {
        let mut n = i + 3;
        if at(n) == b'(' {
            let mut k = n + 1;
            while at(k).is_ascii_alphanumeric() || at(k) == b'_' {
                k += 1;
            }
            if at(k) == b')' {
                n = k + 1;
            }
        }
        return (sign(f64::NAN), n, false);
    }
    if at(i) == b'0'
        && lower(i + 1) == b'x'
        && (at(i + 2).is_ascii_hexdigit() || (at(i + 2) == b'.' && at(i + 3).is_ascii_hexdigit()))
    {
        return hex_float(s, i + 2, negative);
    }
    let mut k = i;
    let mut digits = 0;
    let mut nonzero = false;
    while at(k).is_ascii_digit() {
        nonzero |= at(k) != b'0';
        digits += 1;
        k += 1;
    }
    if at(k) == b'.' {
        k += 1;
        while at(k).is_ascii_digit() {
            nonzero |= at(k) != b'0';
            digits += 1;
            k += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    if lower(k) == b'e' {
        let mut e = k + 1;
        if matches!(at(e), b'+' | b'-') {
            e += 1;
        }
        if at(e).is_ascii_digit() {
            while at(e).is_ascii_digit() {
                e += 1;
            }
            k = e;
        }
    }
    let text = std::str::from_utf8(&s[..k]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    let erange = value.is_infinite() || value.is_subnormal() || (value == 0.0 && nonzero);
    (value, k, erange)
}

/// The hexadecimal form of `strtod`, mantissa digits starting at `s[i]`.
fn hex_float(s: &[u8], mut i: usize, negative: bool) -> (f64, usize, bool) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut mant = 0u64;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut seen_point = false;
    loop {
        let c = at(i);
        if c == b'.' && !seen_point {
            seen_point = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            if mant >> 60 == 0 {
                mant = (mant << 4) | u64::from(d);
                if seen_point {
                    exp -= 4;
                }
            } else {
                sticky |= d != 0;
                if !seen_point {
                    exp += 4;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if at(i).eq_ignore_ascii_case(&b'p') {
        let mut k = i + 1;
        let neg_exp = at(k) == b'-';
        if matches!(at(k), b'+' | b'-') {
            k += 1;
        }
        if at(k).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(k).is_ascii_digit() {
                e = (e * 10 + i64::from(at(k) - b'0')).min(1 << 20);
                k += 1;
            }
            exp += if neg_exp { -e } else { e };
            i = k;
        }
    }
    let (v, erange) = make_f64(mant, exp, sticky);
    (if negative { -v } else { v }, i, erange)
}

/// `mant * 2^exp` (plus a nonzero tail when `sticky`) rounded to nearest-even.
fn make_f64(mant: u64, exp: i64, sticky: bool) -> (f64, bool) {
    if mant == 0 {
        return (0.0, false);
    }
    let lz = i64::from(mant.leading_zeros());
    let m = mant << lz;
    let top = exp - lz + 63; // exponent of the leading bit
    if top > 1023 {
        return (f64::INFINITY, true);
    }
    let keep = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    if keep < 0 {
        return (0.0, true);
    }
    let shift = (64 - keep) as u32; // 11..=64
    let (mut q, half, rest) = if shift == 64 {
        (0u64, true, (m << 1) != 0 || sticky)
    } else {
        (
            m >> shift,
            (m >> (shift - 1)) & 1 == 1,
            (m & ((1u64 << (shift - 1)) - 1)) != 0 || sticky,
        )
    };
    if half && (rest || q & 1 == 1) {
        q += 1;
    }
    let inexact = half || rest;
    if top >= -1022 {
        let mut top = top;
        if q == 1 << 53 {
            q >>= 1;
            top += 1;
            if top > 1023 {
                return (f64::INFINITY, true);
            }
        }
        let bits = (((top + 1023) as u64) << 52) | (q & ((1u64 << 52) - 1));
        (f64::from_bits(bits), false)
    } else {
        // subnormal: q counts units of 2^-1074 (2^52 of them is the smallest normal). Like
        // glibc, underflow (ERANGE) is "inexact and tiny after rounding to 53 bits": only a
        // value that rounds to 2^-1022 even with an unbounded exponent is not tiny.
        let rounds_to_normal = top == -1023 && (m >> 10) == (1 << 54) - 1;
        (f64::from_bits(q), inexact && !rounds_to_normal)
    }
}

/// `g_variant_is_object_path()`.
fn is_object_path(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    for i in 1..b.len() {
        match b[i] {
            c if c.is_ascii_alphanumeric() || c == b'_' => {}
            b'/' if b[i - 1] != b'/' => {}
            _ => return false,
        }
    }
    b.len() == 1 || b[b.len() - 1] != b'/'
}

/// `g_variant_is_signature()`: zero or more complete D-Bus types.
fn is_signature(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.iter().all(|c| b"ybnqiuxthdvasog(){}".contains(c)) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        match scan_type(b, i, MAX_DEPTH) {
            Some((end, _, _)) => i = end,
            None => return false,
        }
    }
    true
}

/// Scan one type string at `s[i..]` like GLib (`r`, `*`, `?` allowed, `limit` nesting
/// levels): its end, its depth, and the type when it is definite.
fn scan_type(s: &[u8], i: usize, limit: usize) -> Option<(usize, usize, Option<VariantType>)> {
    let c = *s.get(i)?;
    let basic = |c: u8| -> Option<VariantType> {
        Some(match c {
            b'b' => VariantType::Bool,
            b'y' => VariantType::Byte,
            b'n' => VariantType::Int16,
            b'q' => VariantType::Uint16,
            b'i' => VariantType::Int32,
            b'u' => VariantType::Uint32,
            b'x' => VariantType::Int64,
            b't' => VariantType::Uint64,
            b'h' => VariantType::Handle,
            b'd' => VariantType::Double,
            b's' => VariantType::Str,
            b'o' => VariantType::ObjectPath,
            b'g' => VariantType::Signature,
            _ => return None,
        })
    };
    match c {
        b'(' => {
            let mut j = i + 1;
            let mut depth = 0;
            let mut items = Some(Vec::new());
            while s.get(j) != Some(&b')') {
                if limit == 0 {
                    return None;
                }
                let (end, d, t) = scan_type(s, j, limit - 1)?;
                depth = depth.max(d + 1);
                match (t, items.as_mut()) {
                    (Some(t), Some(v)) => v.push(t),
                    _ => items = None,
                }
                j = end;
            }
            Some((j + 1, depth, items.map(VariantType::Tuple)))
        }
        b'{' => {
            if limit == 0 {
                return None;
            }
            let k = *s.get(i + 1)?;
            if !b"bynqihuxtdsog?".contains(&k) {
                return None;
            }
            let (end, d, v) = scan_type(s, i + 2, limit - 1)?;
            if s.get(end) != Some(&b'}') {
                return None;
            }
            let t = match (basic(k), v) {
                (Some(k), Some(v)) => Some(VariantType::DictEntry(Box::new(k), Box::new(v))),
                _ => None,
            };
            Some((end + 1, d + 1, t))
        }
        b'm' | b'a' => {
            if limit == 0 {
                return None;
            }
            let (end, d, t) = scan_type(s, i + 1, limit - 1)?;
            let t = t.map(|t| {
                if c == b'm' {
                    VariantType::Maybe(Box::new(t))
                } else {
                    VariantType::Array(Box::new(t))
                }
            });
            Some((end, d + 1, t))
        }
        b'v' => Some((i + 1, 1, Some(VariantType::Variant))),
        b'r' | b'*' | b'?' => Some((i + 1, 1, None)),
        c => basic(c).map(|t| (i + 1, 1, Some(t))),
    }
}

/// Characters `g_unichar_isprint()` (GLib 2.74) rejects: controls, format characters and
/// unassigned code points (surrogates merged in; they never occur in a `str`). Generated by
/// `ostree-core/tests/gvariant-text/generate.py --unicode-table`.
#[rustfmt::skip]
const NON_PRINTABLE: &[(u32, u32)] = &[
    (0x0, 0x1f), (0x7f, 0x9f), (0xad, 0xad), (0x378, 0x379), (0x380, 0x383),
    (0x38b, 0x38b), (0x38d, 0x38d), (0x3a2, 0x3a2), (0x530, 0x530), (0x557, 0x558),
    (0x58b, 0x58c), (0x590, 0x590), (0x5c8, 0x5cf), (0x5eb, 0x5ee), (0x5f5, 0x605),
    (0x61c, 0x61c), (0x6dd, 0x6dd), (0x70e, 0x70f), (0x74b, 0x74c), (0x7b2, 0x7bf),
    (0x7fb, 0x7fc), (0x82e, 0x82f), (0x83f, 0x83f), (0x85c, 0x85d), (0x85f, 0x85f),
    (0x86b, 0x86f), (0x88f, 0x897), (0x8e2, 0x8e2), (0x984, 0x984), (0x98d, 0x98e),
    (0x991, 0x992), (0x9a9, 0x9a9), (0x9b1, 0x9b1), (0x9b3, 0x9b5), (0x9ba, 0x9bb),
    (0x9c5, 0x9c6), (0x9c9, 0x9ca), (0x9cf, 0x9d6), (0x9d8, 0x9db), (0x9de, 0x9de),
    (0x9e4, 0x9e5), (0x9ff, 0xa00), (0xa04, 0xa04), (0xa0b, 0xa0e), (0xa11, 0xa12),
    (0xa29, 0xa29), (0xa31, 0xa31), (0xa34, 0xa34), (0xa37, 0xa37), (0xa3a, 0xa3b),
    (0xa3d, 0xa3d), (0xa43, 0xa46), (0xa49, 0xa4a), (0xa4e, 0xa50), (0xa52, 0xa58),
    (0xa5d, 0xa5d), (0xa5f, 0xa65), (0xa77, 0xa80), (0xa84, 0xa84), (0xa8e, 0xa8e),
    (0xa92, 0xa92), (0xaa9, 0xaa9), (0xab1, 0xab1), (0xab4, 0xab4), (0xaba, 0xabb),
    (0xac6, 0xac6), (0xaca, 0xaca), (0xace, 0xacf), (0xad1, 0xadf), (0xae4, 0xae5),
    (0xaf2, 0xaf8), (0xb00, 0xb00), (0xb04, 0xb04), (0xb0d, 0xb0e), (0xb11, 0xb12),
    (0xb29, 0xb29), (0xb31, 0xb31), (0xb34, 0xb34), (0xb3a, 0xb3b), (0xb45, 0xb46),
    (0xb49, 0xb4a), (0xb4e, 0xb54), (0xb58, 0xb5b), (0xb5e, 0xb5e), (0xb64, 0xb65),
    (0xb78, 0xb81), (0xb84, 0xb84), (0xb8b, 0xb8d), (0xb91, 0xb91), (0xb96, 0xb98),
    (0xb9b, 0xb9b), (0xb9d, 0xb9d), (0xba0, 0xba2), (0xba5, 0xba7), (0xbab, 0xbad),
    (0xbba, 0xbbd), (0xbc3, 0xbc5), (0xbc9, 0xbc9), (0xbce, 0xbcf), (0xbd1, 0xbd6),
    (0xbd8, 0xbe5), (0xbfb, 0xbff), (0xc0d, 0xc0d), (0xc11, 0xc11), (0xc29, 0xc29),
    (0xc3a, 0xc3b), (0xc45, 0xc45), (0xc49, 0xc49), (0xc4e, 0xc54), (0xc57, 0xc57),
    (0xc5b, 0xc5c), (0xc5e, 0xc5f), (0xc64, 0xc65), (0xc70, 0xc76), (0xc8d, 0xc8d),
    (0xc91, 0xc91), (0xca9, 0xca9), (0xcb4, 0xcb4), (0xcba, 0xcbb), (0xcc5, 0xcc5),
    (0xcc9, 0xcc9), (0xcce, 0xcd4), (0xcd7, 0xcdc), (0xcdf, 0xcdf), (0xce4, 0xce5),
    (0xcf0, 0xcf0), (0xcf4, 0xcff), (0xd0d, 0xd0d), (0xd11, 0xd11), (0xd45, 0xd45),
    (0xd49, 0xd49), (0xd50, 0xd53), (0xd64, 0xd65), (0xd80, 0xd80), (0xd84, 0xd84),
    (0xd97, 0xd99), (0xdb2, 0xdb2), (0xdbc, 0xdbc), (0xdbe, 0xdbf), (0xdc7, 0xdc9),
    (0xdcb, 0xdce), (0xdd5, 0xdd5), (0xdd7, 0xdd7), (0xde0, 0xde5), (0xdf0, 0xdf1),
    (0xdf5, 0xe00), (0xe3b, 0xe3e), (0xe5c, 0xe80), (0xe83, 0xe83), (0xe85, 0xe85),
    (0xe8b, 0xe8b), (0xea4, 0xea4), (0xea6, 0xea6), (0xebe, 0xebf), (0xec5, 0xec5),
    (0xec7, 0xec7), (0xecf, 0xecf), (0xeda, 0xedb), (0xee0, 0xeff), (0xf48, 0xf48),
    (0xf6d, 0xf70), (0xf98, 0xf98), (0xfbd, 0xfbd), (0xfcd, 0xfcd), (0xfdb, 0xfff),
    (0x10c6, 0x10c6), (0x10c8, 0x10cc), (0x10ce, 0x10cf), (0x1249, 0x1249), (0x124e, 0x124f),
    (0x1257, 0x1257), (0x1259, 0x1259), (0x125e, 0x125f), (0x1289, 0x1289), (0x128e, 0x128f),
    (0x12b1, 0x12b1), (0x12b6, 0x12b7), (0x12bf, 0x12bf), (0x12c1, 0x12c1), (0x12c6, 0x12c7),
    (0x12d7, 0x12d7), (0x1311, 0x1311), (0x1316, 0x1317), (0x135b, 0x135c), (0x137d, 0x137f),
    (0x139a, 0x139f), (0x13f6, 0x13f7), (0x13fe, 0x13ff), (0x169d, 0x169f), (0x16f9, 0x16ff),
    (0x1716, 0x171e), (0x1737, 0x173f), (0x1754, 0x175f), (0x176d, 0x176d), (0x1771, 0x1771),
    (0x1774, 0x177f), (0x17de, 0x17df), (0x17ea, 0x17ef), (0x17fa, 0x17ff), (0x180e, 0x180e),
    (0x181a, 0x181f), (0x1879, 0x187f), (0x18ab, 0x18af), (0x18f6, 0x18ff), (0x191f, 0x191f),
    (0x192c, 0x192f), (0x193c, 0x193f), (0x1941, 0x1943), (0x196e, 0x196f), (0x1975, 0x197f),
    (0x19ac, 0x19af), (0x19ca, 0x19cf), (0x19db, 0x19dd), (0x1a1c, 0x1a1d), (0x1a5f, 0x1a5f),
    (0x1a7d, 0x1a7e), (0x1a8a, 0x1a8f), (0x1a9a, 0x1a9f), (0x1aae, 0x1aaf), (0x1acf, 0x1aff),
    (0x1b4d, 0x1b4f), (0x1b7f, 0x1b7f), (0x1bf4, 0x1bfb), (0x1c38, 0x1c3a), (0x1c4a, 0x1c4c),
    (0x1c89, 0x1c8f), (0x1cbb, 0x1cbc), (0x1cc8, 0x1ccf), (0x1cfb, 0x1cff), (0x1f16, 0x1f17),
    (0x1f1e, 0x1f1f), (0x1f46, 0x1f47), (0x1f4e, 0x1f4f), (0x1f58, 0x1f58), (0x1f5a, 0x1f5a),
    (0x1f5c, 0x1f5c), (0x1f5e, 0x1f5e), (0x1f7e, 0x1f7f), (0x1fb5, 0x1fb5), (0x1fc5, 0x1fc5),
    (0x1fd4, 0x1fd5), (0x1fdc, 0x1fdc), (0x1ff0, 0x1ff1), (0x1ff5, 0x1ff5), (0x1fff, 0x1fff),
    (0x200b, 0x200f), (0x202a, 0x202e), (0x2060, 0x206f), (0x2072, 0x2073), (0x208f, 0x208f),
    (0x209d, 0x209f), (0x20c1, 0x20cf), (0x20f1, 0x20ff), (0x218c, 0x218f), (0x2427, 0x243f),
    (0x244b, 0x245f), (0x2b74, 0x2b75), (0x2b96, 0x2b96), (0x2cf4, 0x2cf8), (0x2d26, 0x2d26),
    (0x2d28, 0x2d2c), (0x2d2e, 0x2d2f), (0x2d68, 0x2d6e), (0x2d71, 0x2d7e), (0x2d97, 0x2d9f),
    (0x2da7, 0x2da7), (0x2daf, 0x2daf), (0x2db7, 0x2db7), (0x2dbf, 0x2dbf), (0x2dc7, 0x2dc7),
    (0x2dcf, 0x2dcf), (0x2dd7, 0x2dd7), (0x2ddf, 0x2ddf), (0x2e5e, 0x2e7f), (0x2e9a, 0x2e9a),
    (0x2ef4, 0x2eff), (0x2fd6, 0x2fef), (0x2ffc, 0x2fff), (0x3040, 0x3040), (0x3097, 0x3098),
    (0x3100, 0x3104), (0x3130, 0x3130), (0x318f, 0x318f), (0x31e4, 0x31ef), (0x321f, 0x321f),
    (0xa48d, 0xa48f), (0xa4c7, 0xa4cf), (0xa62c, 0xa63f), (0xa6f8, 0xa6ff), (0xa7cb, 0xa7cf),
    (0xa7d2, 0xa7d2), (0xa7d4, 0xa7d4), (0xa7da, 0xa7f1), (0xa82d, 0xa82f), (0xa83a, 0xa83f),
    (0xa878, 0xa87f), (0xa8c6, 0xa8cd), (0xa8da, 0xa8df), (0xa954, 0xa95e), (0xa97d, 0xa97f),
    (0xa9ce, 0xa9ce), (0xa9da, 0xa9dd), (0xa9ff, 0xa9ff), (0xaa37, 0xaa3f), (0xaa4e, 0xaa4f),
    (0xaa5a, 0xaa5b), (0xaac3, 0xaada), (0xaaf7, 0xab00), (0xab07, 0xab08), (0xab0f, 0xab10),
    (0xab17, 0xab1f), (0xab27, 0xab27), (0xab2f, 0xab2f), (0xab6c, 0xab6f), (0xabee, 0xabef),
    (0xabfa, 0xabff), (0xd7a4, 0xd7af), (0xd7c7, 0xd7ca), (0xd7fc, 0xdfff), (0xfa6e, 0xfa6f),
    (0xfada, 0xfaff), (0xfb07, 0xfb12), (0xfb18, 0xfb1c), (0xfb37, 0xfb37), (0xfb3d, 0xfb3d),
    (0xfb3f, 0xfb3f), (0xfb42, 0xfb42), (0xfb45, 0xfb45), (0xfbc3, 0xfbd2), (0xfd90, 0xfd91),
    (0xfdc8, 0xfdce), (0xfdd0, 0xfdef), (0xfe1a, 0xfe1f), (0xfe53, 0xfe53), (0xfe67, 0xfe67),
    (0xfe6c, 0xfe6f), (0xfe75, 0xfe75), (0xfefd, 0xff00), (0xffbf, 0xffc1), (0xffc8, 0xffc9),
    (0xffd0, 0xffd1), (0xffd8, 0xffd9), (0xffdd, 0xffdf), (0xffe7, 0xffe7), (0xffef, 0xfffb),
    (0xfffe, 0xffff), (0x1000c, 0x1000c), (0x10027, 0x10027), (0x1003b, 0x1003b), (0x1003e, 0x1003e),
    (0x1004e, 0x1004f), (0x1005e, 0x1007f), (0x100fb, 0x100ff), (0x10103, 0x10106), (0x10134, 0x10136),
    (0x1018f, 0x1018f), (0x1019d, 0x1019f), (0x101a1, 0x101cf), (0x101fe, 0x1027f), (0x1029d, 0x1029f),
    (0x102d1, 0x102df), (0x102fc, 0x102ff), (0x10324, 0x1032c), (0x1034b, 0x1034f), (0x1037b, 0x1037f),
    (0x1039e, 0x1039e), (0x103c4, 0x103c7), (0x103d6, 0x103ff), (0x1049e, 0x1049f), (0x104aa, 0x104af),
    (0x104d4, 0x104d7), (0x104fc, 0x104ff), (0x10528, 0x1052f), (0x10564, 0x1056e), (0x1057b, 0x1057b),
    (0x1058b, 0x1058b), (0x10593, 0x10593), (0x10596, 0x10596), (0x105a2, 0x105a2), (0x105b2, 0x105b2),
    (0x105ba, 0x105ba), (0x105bd, 0x105ff), (0x10737, 0x1073f), (0x10756, 0x1075f), (0x10768, 0x1077f),
    (0x10786, 0x10786), (0x107b1, 0x107b1), (0x107bb, 0x107ff), (0x10806, 0x10807), (0x10809, 0x10809),
    (0x10836, 0x10836), (0x10839, 0x1083b), (0x1083d, 0x1083e), (0x10856, 0x10856), (0x1089f, 0x108a6),
    (0x108b0, 0x108df), (0x108f3, 0x108f3), (0x108f6, 0x108fa), (0x1091c, 0x1091e), (0x1093a, 0x1093e),
    (0x10940, 0x1097f), (0x109b8, 0x109bb), (0x109d0, 0x109d1), (0x10a04, 0x10a04), (0x10a07, 0x10a0b),
    (0x10a14, 0x10a14), (0x10a18, 0x10a18), (0x10a36, 0x10a37), (0x10a3b, 0x10a3e), (0x10a49, 0x10a4f),
    (0x10a59, 0x10a5f), (0x10aa0, 0x10abf), (0x10ae7, 0x10aea), (0x10af7, 0x10aff), (0x10b36, 0x10b38),
    (0x10b56, 0x10b57), (0x10b73, 0x10b77), (0x10b92, 0x10b98), (0x10b9d, 0x10ba8), (0x10bb0, 0x10bff),
    (0x10c49, 0x10c7f), (0x10cb3, 0x10cbf), (0x10cf3, 0x10cf9), (0x10d28, 0x10d2f), (0x10d3a, 0x10e5f),
    (0x10e7f, 0x10e7f), (0x10eaa, 0x10eaa), (0x10eae, 0x10eaf), (0x10eb2, 0x10efc), (0x10f28, 0x10f2f),
    (0x10f5a, 0x10f6f), (0x10f8a, 0x10faf), (0x10fcc, 0x10fdf), (0x10ff7, 0x10fff), (0x1104e, 0x11051),
    (0x11076, 0x1107e), (0x110bd, 0x110bd), (0x110c3, 0x110cf), (0x110e9, 0x110ef), (0x110fa, 0x110ff),
    (0x11135, 0x11135), (0x11148, 0x1114f), (0x11177, 0x1117f), (0x111e0, 0x111e0), (0x111f5, 0x111ff),
    (0x11212, 0x11212), (0x11242, 0x1127f), (0x11287, 0x11287), (0x11289, 0x11289), (0x1128e, 0x1128e),
    (0x1129e, 0x1129e), (0x112aa, 0x112af), (0x112eb, 0x112ef), (0x112fa, 0x112ff), (0x11304, 0x11304),
    (0x1130d, 0x1130e), (0x11311, 0x11312), (0x11329, 0x11329), (0x11331, 0x11331), (0x11334, 0x11334),
    (0x1133a, 0x1133a), (0x11345, 0x11346), (0x11349, 0x1134a), (0x1134e, 0x1134f), (0x11351, 0x11356),
    (0x11358, 0x1135c), (0x11364, 0x11365), (0x1136d, 0x1136f), (0x11375, 0x113ff), (0x1145c, 0x1145c),
    (0x11462, 0x1147f), (0x114c8, 0x114cf), (0x114da, 0x1157f), (0x115b6, 0x115b7), (0x115de, 0x115ff),
    (0x11645, 0x1164f), (0x1165a, 0x1165f), (0x1166d, 0x1167f), (0x116ba, 0x116bf), (0x116ca, 0x116ff),
    (0x1171b, 0x1171c), (0x1172c, 0x1172f), (0x11747, 0x117ff), (0x1183c, 0x1189f), (0x118f3, 0x118fe),
    (0x11907, 0x11908), (0x1190a, 0x1190b), (0x11914, 0x11914), (0x11917, 0x11917), (0x11936, 0x11936),
    (0x11939, 0x1193a), (0x11947, 0x1194f), (0x1195a, 0x1199f), (0x119a8, 0x119a9), (0x119d8, 0x119d9),
    (0x119e5, 0x119ff), (0x11a48, 0x11a4f), (0x11aa3, 0x11aaf), (0x11af9, 0x11aff), (0x11b0a, 0x11bff),
    (0x11c09, 0x11c09), (0x11c37, 0x11c37), (0x11c46, 0x11c4f), (0x11c6d, 0x11c6f), (0x11c90, 0x11c91),
    (0x11ca8, 0x11ca8), (0x11cb7, 0x11cff), (0x11d07, 0x11d07), (0x11d0a, 0x11d0a), (0x11d37, 0x11d39),
    (0x11d3b, 0x11d3b), (0x11d3e, 0x11d3e), (0x11d48, 0x11d4f), (0x11d5a, 0x11d5f), (0x11d66, 0x11d66),
    (0x11d69, 0x11d69), (0x11d8f, 0x11d8f), (0x11d92, 0x11d92), (0x11d99, 0x11d9f), (0x11daa, 0x11edf),
    (0x11ef9, 0x11eff), (0x11f11, 0x11f11), (0x11f3b, 0x11f3d), (0x11f5a, 0x11faf), (0x11fb1, 0x11fbf),
    (0x11ff2, 0x11ffe), (0x1239a, 0x123ff), (0x1246f, 0x1246f), (0x12475, 0x1247f), (0x12544, 0x12f8f),
    (0x12ff3, 0x12fff), (0x13430, 0x1343f), (0x13456, 0x143ff), (0x14647, 0x167ff), (0x16a39, 0x16a3f),
    (0x16a5f, 0x16a5f), (0x16a6a, 0x16a6d), (0x16abf, 0x16abf), (0x16aca, 0x16acf), (0x16aee, 0x16aef),
    (0x16af6, 0x16aff), (0x16b46, 0x16b4f), (0x16b5a, 0x16b5a), (0x16b62, 0x16b62), (0x16b78, 0x16b7c),
    (0x16b90, 0x16e3f), (0x16e9b, 0x16eff), (0x16f4b, 0x16f4e), (0x16f88, 0x16f8e), (0x16fa0, 0x16fdf),
    (0x16fe5, 0x16fef), (0x16ff2, 0x16fff), (0x187f8, 0x187ff), (0x18cd6, 0x18cff), (0x18d09, 0x1afef),
    (0x1aff4, 0x1aff4), (0x1affc, 0x1affc), (0x1afff, 0x1afff), (0x1b123, 0x1b131), (0x1b133, 0x1b14f),
    (0x1b153, 0x1b154), (0x1b156, 0x1b163), (0x1b168, 0x1b16f), (0x1b2fc, 0x1bbff), (0x1bc6b, 0x1bc6f),
    (0x1bc7d, 0x1bc7f), (0x1bc89, 0x1bc8f), (0x1bc9a, 0x1bc9b), (0x1bca0, 0x1ceff), (0x1cf2e, 0x1cf2f),
    (0x1cf47, 0x1cf4f), (0x1cfc4, 0x1cfff), (0x1d0f6, 0x1d0ff), (0x1d127, 0x1d128), (0x1d173, 0x1d17a),
    (0x1d1eb, 0x1d1ff), (0x1d246, 0x1d2bf), (0x1d2d4, 0x1d2df), (0x1d2f4, 0x1d2ff), (0x1d357, 0x1d35f),
    (0x1d379, 0x1d3ff), (0x1d455, 0x1d455), (0x1d49d, 0x1d49d), (0x1d4a0, 0x1d4a1), (0x1d4a3, 0x1d4a4),
    (0x1d4a7, 0x1d4a8), (0x1d4ad, 0x1d4ad), (0x1d4ba, 0x1d4ba), (0x1d4bc, 0x1d4bc), (0x1d4c4, 0x1d4c4),
    (0x1d506, 0x1d506), (0x1d50b, 0x1d50c), (0x1d515, 0x1d515), (0x1d51d, 0x1d51d), (0x1d53a, 0x1d53a),
    (0x1d53f, 0x1d53f), (0x1d545, 0x1d545), (0x1d547, 0x1d549), (0x1d551, 0x1d551), (0x1d6a6, 0x1d6a7),
    (0x1d7cc, 0x1d7cd), (0x1da8c, 0x1da9a), (0x1daa0, 0x1daa0), (0x1dab0, 0x1deff), (0x1df1f, 0x1df24),
    (0x1df2b, 0x1dfff), (0x1e007, 0x1e007), (0x1e019, 0x1e01a), (0x1e022, 0x1e022), (0x1e025, 0x1e025),
    (0x1e02b, 0x1e02f), (0x1e06e, 0x1e08e), (0x1e090, 0x1e0ff), (0x1e12d, 0x1e12f), (0x1e13e, 0x1e13f),
    (0x1e14a, 0x1e14d), (0x1e150, 0x1e28f), (0x1e2af, 0x1e2bf), (0x1e2fa, 0x1e2fe), (0x1e300, 0x1e4cf),
    (0x1e4fa, 0x1e7df), (0x1e7e7, 0x1e7e7), (0x1e7ec, 0x1e7ec), (0x1e7ef, 0x1e7ef), (0x1e7ff, 0x1e7ff),
    (0x1e8c5, 0x1e8c6), (0x1e8d7, 0x1e8ff), (0x1e94c, 0x1e94f), (0x1e95a, 0x1e95d), (0x1e960, 0x1ec70),
    (0x1ecb5, 0x1ed00), (0x1ed3e, 0x1edff), (0x1ee04, 0x1ee04), (0x1ee20, 0x1ee20), (0x1ee23, 0x1ee23),
    (0x1ee25, 0x1ee26), (0x1ee28, 0x1ee28), (0x1ee33, 0x1ee33), (0x1ee38, 0x1ee38), (0x1ee3a, 0x1ee3a),
    (0x1ee3c, 0x1ee41), (0x1ee43, 0x1ee46), (0x1ee48, 0x1ee48), (0x1ee4a, 0x1ee4a), (0x1ee4c, 0x1ee4c),
    (0x1ee50, 0x1ee50), (0x1ee53, 0x1ee53), (0x1ee55, 0x1ee56), (0x1ee58, 0x1ee58), (0x1ee5a, 0x1ee5a),
    (0x1ee5c, 0x1ee5c), (0x1ee5e, 0x1ee5e), (0x1ee60, 0x1ee60), (0x1ee63, 0x1ee63), (0x1ee65, 0x1ee66),
    (0x1ee6b, 0x1ee6b), (0x1ee73, 0x1ee73), (0x1ee78, 0x1ee78), (0x1ee7d, 0x1ee7d), (0x1ee7f, 0x1ee7f),
    (0x1ee8a, 0x1ee8a), (0x1ee9c, 0x1eea0), (0x1eea4, 0x1eea4), (0x1eeaa, 0x1eeaa), (0x1eebc, 0x1eeef),
    (0x1eef2, 0x1efff), (0x1f02c, 0x1f02f), (0x1f094, 0x1f09f), (0x1f0af, 0x1f0b0), (0x1f0c0, 0x1f0c0),
    (0x1f0d0, 0x1f0d0), (0x1f0f6, 0x1f0ff), (0x1f1ae, 0x1f1e5), (0x1f203, 0x1f20f), (0x1f23c, 0x1f23f),
    (0x1f249, 0x1f24f), (0x1f252, 0x1f25f), (0x1f266, 0x1f2ff), (0x1f6d8, 0x1f6db), (0x1f6ed, 0x1f6ef),
    (0x1f6fd, 0x1f6ff), (0x1f777, 0x1f77a), (0x1f7da, 0x1f7df), (0x1f7ec, 0x1f7ef), (0x1f7f1, 0x1f7ff),
    (0x1f80c, 0x1f80f), (0x1f848, 0x1f84f), (0x1f85a, 0x1f85f), (0x1f888, 0x1f88f), (0x1f8ae, 0x1f8af),
    (0x1f8b2, 0x1f8ff), (0x1fa54, 0x1fa5f), (0x1fa6e, 0x1fa6f), (0x1fa7d, 0x1fa7f), (0x1fa89, 0x1fa8f),
    (0x1fabe, 0x1fabe), (0x1fac6, 0x1facd), (0x1fadc, 0x1fadf), (0x1fae9, 0x1faef), (0x1faf9, 0x1faff),
    (0x1fb93, 0x1fb93), (0x1fbcb, 0x1fbef), (0x1fbfa, 0x1ffff), (0x2a6e0, 0x2a6ff), (0x2b73a, 0x2b73f),
    (0x2b81e, 0x2b81f), (0x2cea2, 0x2ceaf), (0x2ebe1, 0x2f7ff), (0x2fa1e, 0x2ffff), (0x3134b, 0x3134f),
    (0x323b0, 0xe00ff), (0xe01f0, 0xeffff), (0xffffe, 0xfffff), (0x10fffe, 0x10ffff),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Expectations generated from the real GLib by `tests/gvariant-text/generate.py`.
    const CASES: &str = include_str!("../../tests/gvariant-text/cases.txt");

    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        }
        out
    }

    fn ty(s: &str) -> VariantType {
        VariantType::parse(s).expect("valid type in test data")
    }

    /// (kind, fields) of every record.
    fn records() -> Vec<(String, Vec<String>)> {
        CASES
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let mut f = l.split('\t').map(unescape);
                let kind = f.next().expect("record kind");
                (kind, f.collect())
            })
            .collect()
    }

    fn print_cases() -> Vec<(Variant, String, String)> {
        records()
            .into_iter()
            .filter(|(k, _)| k == "print")
            .map(|(_, f)| {
                let bytes = hex::decode(&f[1]).expect("hex");
                let v = Variant::from_bytes(&ty(&f[0]), &bytes).expect("GLib value decodes");
                assert_eq!(v.to_bytes(), bytes, "normal form of {}", f[0]);
                (v, f[2].clone(), f[3].clone())
            })
            .collect()
    }

    fn check(failures: Vec<String>, total: usize) {
        if !failures.is_empty() {
            for f in failures.iter().take(40) {
                eprintln!("{f}");
            }
            panic!("{} of {total} cases differ from GLib", failures.len());
        }
    }

    #[test]
    fn print_matches_glib() {
        let cases = print_cases();
        assert!(cases.len() > 1000);
        let mut failures = Vec::new();
        for (v, annotated, plain) in &cases {
            let (a, p) = (print(v, true), print(v, false));
            if &a != annotated || &p != plain {
                failures.push(format!(
                    "{}:\n  glib: {annotated}\n  ours: {a}\n  glib: {plain}\n  ours: {p}",
                    v.type_()
                ));
            }
        }
        check(failures, cases.len());
    }

    #[test]
    fn parse_matches_glib() {
        let mut failures = Vec::new();
        let mut total = 0;
        for (kind, f) in records() {
            if !kind.starts_with("parse") {
                continue;
            }
            let (input, type_arg) = (&f[0], &f[1]);
            let type_arg = (!type_arg.is_empty()).then(|| ty(type_arg));
            let got = parse(input, type_arg.as_ref());
            let got = match &got {
                Ok(v) => format!("ok {} {}", v.type_(), hex::encode(v.to_bytes())),
                Err(e) => format!("err {e}"),
            };
            let want = match kind.as_str() {
                "parse-ok" => format!("ok {} {}", f[2], f[3]),
                "parse-err" => format!("err {}", f[2]),
                _ => continue,
            };
            total += 1;
            if got != want {
                failures.push(format!(
                    "{input:?} {type_arg:?}\n  glib: {want}\n  ours: {got}"
                ));
            }
        }
        assert!(total > 2000);
        check(failures, total);
    }

    fn has_subnormal(v: &Variant) -> bool {
        match v {
            Variant::Double(d) => d.is_subnormal(),
            Variant::Variant(c) => has_subnormal(c),
            Variant::Maybe(_, c) => c.as_deref().is_some_and(has_subnormal),
            Variant::Array(_, c) | Variant::Tuple(c) => c.iter().any(has_subnormal),
            Variant::DictEntry(k, v) => has_subnormal(k) || has_subnormal(v),
            _ => false,
        }
    }

    fn same(a: &Variant, b: &Variant) -> bool {
        a.type_() == b.type_() && a.to_bytes() == b.to_bytes()
    }

    fn hand_built() -> Vec<Variant> {
        let s = |x: &str| Variant::Str(x.to_string());
        vec![
            Variant::Array(
                VariantType::Byte,
                vec![Variant::Byte(b'a'), Variant::Byte(0)],
            ),
            Variant::Array(VariantType::Byte, vec![]),
            Variant::Array(VariantType::Byte, vec![Variant::Byte(1)]),
            Variant::Handle(-7),
            Variant::Double(-0.0),
            Variant::Double(f64::NAN),
            Variant::Double(1e-7),
            s("\u{1}\u{7f}\u{85}\u{200b}\u{2028}\u{e000}\u{1f600}\u{e0001}\u{10ffff}"),
            s("'\"\\"),
            Variant::Maybe(
                VariantType::Maybe(Box::new(VariantType::Maybe(Box::new(VariantType::Str)))),
                Some(Box::new(Variant::Maybe(
                    VariantType::Maybe(Box::new(VariantType::Str)),
                    Some(Box::new(Variant::Maybe(VariantType::Str, None))),
                ))),
            ),
            Variant::Tuple(vec![
                Variant::ObjectPath("/a/b".into()),
                Variant::Signature("a{sv}(i)".into()),
                Variant::Bytes(vec![0, 0]),
                Variant::Bytes(b"\\'\"\x01\xff\0".to_vec()),
            ]),
            Variant::DictEntry(Box::new(Variant::U64(1)), Box::new(s("x").boxed())),
            Variant::Array(
                VariantType::parse("a{sv}").expect("type"),
                vec![Variant::Array(
                    VariantType::parse("{sv}").expect("type"),
                    vec![Variant::DictEntry(
                        Box::new(s("k")),
                        Box::new(Variant::Array(VariantType::Int16, vec![]).boxed()),
                    )],
                )],
            ),
        ]
    }

    #[test]
    fn annotated_print_round_trips() {
        let mut values: Vec<Variant> = print_cases().into_iter().map(|c| c.0).collect();
        values.extend(hand_built());
        let mut failures = Vec::new();
        for v in &values {
            let text = print(v, true);
            match parse(&text, None) {
                Ok(back) if same(&back, v) => {}
                Err(e) if has_subnormal(v) && e.to_string().ends_with("too big for any type") => {}
                other => failures.push(format!("{text}\n  -> {other:?}")),
            }
            // with the type given, the unannotated form parses back too
            match parse(&print(v, false), Some(&v.type_())) {
                Ok(back) if same(&back, v) => {}
                Err(_) if has_subnormal(v) => {}
                other => failures.push(format!(
                    "{} as {}\n  -> {other:?}",
                    print(v, false),
                    v.type_()
                )),
            }
        }
        check(failures, values.len());
    }

    #[test]
    fn ostree_cli_examples() {
        let ok = |s: &str| parse(s, None).expect(s);
        assert_eq!(ok("42"), Variant::Int32(42));
        assert_eq!(ok("-42"), Variant::Int32(-42));
        assert_eq!(ok("0x10"), Variant::Int32(16));
        assert_eq!(ok("'str'"), Variant::Str("str".into()));
        assert_eq!(ok("true"), Variant::Bool(true));
        assert_eq!(ok("uint64 5"), Variant::U64(5));
        assert_eq!(ok("1.5"), Variant::Double(1.5));
        assert_eq!(ok("['a','b']"), Variant::str_array(&["a", "b"]));
        assert_eq!(ok("@as []"), Variant::str_array::<&str>(&[]));
        assert_eq!(ok("b'bytes'"), Variant::Bytes(b"bytes\0".to_vec()));
        assert_eq!(ok("[byte 0x01]"), Variant::Bytes(vec![1]));
        assert_eq!(ok("<1>"), Variant::Int32(1).boxed());
        assert_eq!(
            ok("(1, 'x')"),
            Variant::Tuple(vec![Variant::Int32(1), Variant::Str("x".into())])
        );
        assert_eq!(ok("@ms nothing"), Variant::Maybe(VariantType::Str, None));
        assert_eq!(
            ok("just 5"),
            Variant::Maybe(VariantType::Int32, Some(Box::new(Variant::Int32(5))))
        );
        assert_eq!(print(&ok("{'a': <1>}"), true), "{'a': <1>}");
        let err = |s: &str| parse(s, None).expect_err(s).to_string();
        assert_eq!(err("[]"), "0-2:unable to infer type");
        assert_eq!(err("[1, 'a']"), "1-2,4-7:unable to find a common type");
        assert_eq!(err("'abc"), "0-4:unterminated string constant");
        assert_eq!(err("1 2"), "2:expected end of input");
        assert_eq!(err("foo"), "0-3:unknown keyword");
        assert!(matches!(parse("", None), Err(Error::InvalidInput(_))));

        let xattrs = Variant::Array(
            ty("(ayay)"),
            vec![Variant::Tuple(vec![
                Variant::Bytes(b"user.test\0".to_vec()),
                Variant::Bytes(b"hello".to_vec()),
            ])],
        );
        assert_eq!(
            print(&xattrs, true),
            "[(b'user.test', [byte 0x68, 0x65, 0x6c, 0x6c, 0x6f])]"
        );
        assert_eq!(
            print(&Variant::Array(ty("(ayay)"), vec![]), true),
            "@a(ayay) []"
        );
        assert_eq!(print(&Variant::Str("3.0".into()), true), "'3.0'");
    }

    /// A small deterministic generator (xorshift64*), to need no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        const PIECES: &[&str] = &[
            "[",
            "]",
            "(",
            ")",
            "{",
            "}",
            "<",
            ">",
            ",",
            ":",
            " ",
            "'",
            "\"",
            "\\",
            "b'",
            "@",
            "%",
            "1",
            "-",
            "+",
            ".",
            "e",
            "E",
            "0x",
            "p",
            "inf",
            "nan",
            "nothing",
            "just ",
            "true",
            "@as ",
            "@mmi ",
            "@a{sv} ",
            "@(ii) ",
            "@r ",
            "@*",
            "int32 ",
            "byte ",
            "uint64 ",
            "objectpath ",
            "signature ",
            "\\u",
            "\\U0010ffff",
            "\\ud800",
            "\\377",
            "é",
            "\u{2028}",
            "\0",
            "a",
            "x",
            "9",
            "18446744073709551616",
            "1e-320",
            "0x1p-1074",
            "\n",
            "\\\n",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let valid: Vec<String> = print_cases()
            .iter()
            .take(200)
            .map(|c| print(&c.0, true))
            .collect();
        for round in 0..30_000 {
            let mut s = if round % 2 == 0 {
                String::new()
            } else {
                valid[rng.below(valid.len())].clone()
            };
            for _ in 0..rng.below(12) + 1 {
                let piece = PIECES[rng.below(PIECES.len())];
                let mut at = rng.below(s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.below(3) == 0 && at < s.len() {
                    let mut end = at + 1;
                    while !s.is_char_boundary(end) {
                        end += 1;
                    }
                    s.replace_range(at..end, "");
                } else {
                    s.insert_str(at, piece);
                }
            }
            if let Ok(v) = parse(&s, None) {
                // whatever parses prints and parses back
                let text = print(&v, true);
                if !has_subnormal(&v) {
                    let back = parse(&text, None).expect(&text);
                    assert!(same(&back, &v), "{s:?} -> {text}");
                }
            }
            let _ = parse(&s, Some(&ty("a{sv}")));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for (open, close) in [
            ("[", "]"),
            ("(", ",)"),
            ("<", ">"),
            ("{1:", "}"),
            ("just ", ""),
            ("@mi ", ""),
            ("int32 ", ""),
        ] {
            for n in [127, 128, 129, 100_000] {
                let s = format!("{}1{}", open.repeat(n), close.repeat(n));
                let _ = parse(&s, None);
            }
        }
        let deep_type = format!("@{}i 1", "m".repeat(200_000));
        assert_eq!(
            parse(&deep_type, None).expect_err("too deep").to_string(),
            "0-200002:invalid type declaration"
        );
        let e = parse(&"[".repeat(200), None)
            .expect_err("too deep")
            .to_string();
        assert_eq!(e, "128:variant nested too deeply");
    }

    #[test]
    fn quadratic_maybe_nesting_is_bounded() {
        // GLib builds this in linear memory; our per-node types would need ~n * 126^2 / 2.
        let attack = format!("[@{}i 1{}]", "m".repeat(126), ", 1".repeat(5_000));
        let e = parse(&attack, None).expect_err("bounded").to_string();
        assert!(e.ends_with(":value too large"), "{e}");
        let fine = format!("[@{}i 1{}]", "m".repeat(126), ", 1".repeat(100));
        let v = parse(&fine, None).expect("within budget");
        assert_eq!(v.as_array().map(<[Variant]>::len), Some(101));
    }

    #[test]
    fn doubles_print_like_glib() {
        let p = |d: f64| print(&Variant::Double(d), false);
        assert_eq!(p(3.0), "3.0");
        assert_eq!(p(0.1), "0.10000000000000001");
        assert_eq!(p(1e16), "10000000000000000.0");
        assert_eq!(p(1e17), "1e+17");
        assert_eq!(p(1e-5), "1.0000000000000001e-05");
        assert_eq!(p(-0.0), "-0.0");
        assert_eq!(p(f64::INFINITY), "inf");
        assert_eq!(p(-f64::NAN), "-nan");
    }
}
