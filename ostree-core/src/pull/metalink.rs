//! Metalink remotes (`ostree remote add NAME metalink=URL`: the remote's `metalink` option).
//!
//! As ostree does it: the metalink document (Metalink 3.0 XML) is fetched, its
//! `<file name="summary">` entry gives the summary's size, a sha256 and/or sha512 digest and
//! a list of `<url>`s; each URL is tried in document order until one serves a summary of the
//! announced size and digest (sha512 when both are given); the repository's base URL is the
//! directory of the URL that succeeded, and the summary is the one already fetched.
//!
//! The document comes from the network, so [`parse`] is a small hand-written XML reader that
//! never panics and never recurses: elements, attributes, text, entity and character
//! references, comments, CDATA, processing instructions and a DOCTYPE are understood;
//! anything malformed is an error naming the problem (GMarkup's words where ostree's tests
//! look for them, e.g. "Document must begin with an element"). The element walk follows
//! ostree's state machine, so documents ostree accepts or rejects are accepted or rejected
//! alike, unknown elements anywhere being skipped with everything inside them.

use bytes::Bytes;
use sha2::{Digest, Sha256, Sha512};
use url::Url;

use super::source::{MAX_METADATA_SIZE, Mirrors, NetPolicy, RemoteSource};
use crate::fetcher::FetcherConfig;
use crate::registry::Registry;
use crate::{Error, Result};

/// What a metalink says about one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetalinkFile {
    /// `<size>` (0 when absent).
    pub size: u64,
    /// `<hash type="sha256">`, as written.
    pub sha256: Option<String>,
    /// `<hash type="sha512">`, as written.
    pub sha512: Option<String>,
    /// The `<url>`s of http and https resources that parse, in document order.
    pub urls: Vec<Url>,
}

impl MetalinkFile {
    /// Check `data` against the announced size and digest (sha512 first), with ostree's
    /// messages.
    pub fn verify(&self, data: &[u8]) -> Result<()> {
        if data.len() as u64 != self.size {
            return Err(Error::Other(format!(
                "Expected size is {} bytes but content is {} bytes",
                self.size,
                data.len()
            )));
        }
        let (expected, actual) = if let Some(e) = &self.sha512 {
            (e, hex::encode(Sha512::digest(data)))
        } else if let Some(e) = &self.sha256 {
            (e, hex::encode(Sha256::digest(data)))
        } else {
            return Err(no_hash());
        };
        if *expected != actual {
            return Err(Error::Other(format!(
                "Expected checksum is {expected} but actual is {actual}"
            )));
        }
        Ok(())
    }
}

fn no_hash() -> Error {
    Error::Other("No <verification> hash for sha256 or sha512 found".into())
}

fn err(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

/// One markup event.
#[derive(Debug, PartialEq)]
enum Event {
    Start(String, Vec<(String, String)>),
    End,
    Text(String),
}

/// Decode `&...;` references in `s` (text or an attribute value).
fn unescape(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .filter(|&e| e <= 12)
            .ok_or_else(|| err("Entity did not end with a semicolon"))?;
        let name = &after[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let num = name
                    .strip_prefix("#x")
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| name.strip_prefix('#').map(|d| d.parse::<u32>()));
                match num {
                    Some(Ok(n)) => char::from_u32(n)
                        .filter(|&c| c != '\0')
                        .ok_or_else(|| err(format!("Character reference '{name}' is invalid")))?,
                    _ => return Err(err(format!("Entity name '{name}' is not known"))),
                }
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Tokenize a whole document into events; checks well-formedness (one root element, tags
/// balanced, nothing but whitespace, comments and processing instructions around the root).
fn events(doc: &str) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut seen_root = false;
    let mut rest = doc.strip_prefix('\u{feff}').unwrap_or(doc);
    loop {
        // Text up to the next '<'.
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        if !text.is_empty() {
            if stack.is_empty() {
                if !text.trim().is_empty() {
                    return Err(err(if seen_root {
                        "Document must end with an element"
                    } else {
                        "Document must begin with an element (e.g. <book>)"
                    }));
                }
            } else {
                out.push(Event::Text(unescape(text)?));
            }
        }
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        if let Some(r) = rest.strip_prefix("<!--") {
            let e = r
                .find("-->")
                .ok_or_else(|| err("Document ended unexpectedly inside a comment"))?;
            rest = &r[e + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<?") {
            let e = r.find("?>").ok_or_else(|| {
                err("Document ended unexpectedly inside a processing instruction")
            })?;
            rest = &r[e + 2..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<![CDATA[") {
            if stack.is_empty() {
                return Err(err("Document must begin with an element (e.g. <book>)"));
            }
            let e = r
                .find("]]>")
                .ok_or_else(|| err("Document ended unexpectedly inside a CDATA section"))?;
            out.push(Event::Text(r[..e].to_string()));
            rest = &r[e + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("<!") {
            // DOCTYPE (without an internal subset).
            if seen_root || !stack.is_empty() {
                return Err(err("Unexpected '<!' inside the document"));
            }
            let e = r
                .find('>')
                .ok_or_else(|| err("Document ended unexpectedly inside a declaration"))?;
            rest = &r[e + 1..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("</") {
            let e = r
                .find('>')
                .ok_or_else(|| err("Document ended unexpectedly inside a close tag"))?;
            let name = r[..e].trim_end();
            match stack.pop() {
                Some(open) if open == name => {}
                Some(open) => {
                    return Err(err(format!(
                        "Element '{name}' was closed, but the currently open element is '{open}'"
                    )));
                }
                None => {
                    return Err(err(format!(
                        "Element '{name}' was closed, no element is currently open"
                    )));
                }
            }
            out.push(Event::End);
            rest = &r[e + 1..];
            continue;
        }
        // A start tag.
        let r = &rest[1..];
        if seen_root && stack.is_empty() {
            return Err(err("Document must end with an element"));
        }
        let name_len = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        if name_len == 0 {
            return Err(err("'<' is not a valid start of an element name"));
        }
        let name = &r[..name_len];
        let mut p = &r[name_len..];
        let mut attrs: Vec<(String, String)> = Vec::new();
        let self_closing;
        loop {
            p = p.trim_start();
            if let Some(q) = p.strip_prefix("/>") {
                self_closing = true;
                p = q;
                break;
            }
            if let Some(q) = p.strip_prefix('>') {
                self_closing = false;
                p = q;
                break;
            }
            let an = p.find(|c: char| !is_name_char(c)).unwrap_or(p.len());
            if an == 0 {
                return Err(err(if p.is_empty() {
                    format!("Document ended unexpectedly inside element '{name}'")
                } else {
                    format!("Unexpected character in the attributes of element '{name}'")
                }));
            }
            let aname = &p[..an];
            let q = p[an..].trim_start();
            let q = q
                .strip_prefix('=')
                .ok_or_else(|| {
                    err(format!(
                        "Attribute '{aname}' of element '{name}' has no value"
                    ))
                })?
                .trim_start();
            let quote = q.chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or_else(|| {
                err(format!(
                    "Value of attribute '{aname}' of element '{name}' is not quoted"
                ))
            })?;
            let body = &q[1..];
            let close = body.find(quote).ok_or_else(|| {
                err(format!(
                    "Document ended unexpectedly inside an attribute value of element '{name}'"
                ))
            })?;
            if attrs.iter().any(|(n, _)| n == aname) {
                return Err(err(format!(
                    "Attribute '{aname}' given twice on element '{name}'"
                )));
            }
            attrs.push((aname.to_string(), unescape(&body[..close])?));
            p = &body[close + 1..];
        }
        out.push(Event::Start(name.to_string(), attrs));
        if self_closing {
            out.push(Event::End);
        } else {
            stack.push(name);
        }
        seen_root = true;
        rest = p;
    }
    if let Some(open) = stack.last() {
        return Err(err(format!(
            "Document ended unexpectedly with elements still open - '{open}' was the last element opened"
        )));
    }
    if !seen_root {
        return Err(err("Document was empty or contained only whitespace"));
    }
    Ok(out)
}

/// Take exactly the attributes `want` (all required, no others), as GMarkup's
/// `g_markup_collect_attributes` does for ostree.
fn collect<'a>(
    element: &str,
    attrs: &'a [(String, String)],
    want: &[&str],
) -> Result<Vec<&'a str>> {
    if let Some((n, _)) = attrs.iter().find(|(n, _)| !want.contains(&n.as_str())) {
        return Err(err(format!(
            "attribute '{n}' invalid for element '{element}'"
        )));
    }
    want.iter()
        .map(|w| {
            attrs
                .iter()
                .find(|(n, _)| n == w)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| err(format!("element '{element}' requires attribute '{w}'")))
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Initial,
    Metalink,
    Files,
    File,
    Size,
    Verification,
    Hash,
    Resources,
    Url,
    /// Skipping an unknown element (and everything in it).
    Passthrough,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashType {
    Sha256,
    Sha512,
}

/// ostree's `g_ascii_strtoull (text, NULL, 10)`: leading whitespace, an optional sign, the
/// leading digits; 0 when there are none, saturating.
fn strtoull(s: &str) -> u64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit);
    let mut v: u64 = 0;
    for d in digits {
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0') as u64))
        {
            Some(v) => v,
            None => return u64::MAX,
        };
    }
    if neg { v.wrapping_neg() } else { v }
}

fn valid_hex(s: &str, len: usize) -> bool {
    // ostree's strspn over "01234567890abcdef": lower-case hex digits only.
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parse a metalink document for the file `requested` (ostree asks for `summary`), with
/// ostree's checks: a `<file>` element, ours among them, a sha256 or sha512 digest of the
/// right form, at least one http(s) URL.
pub fn parse(doc: &[u8], requested: &str) -> Result<MetalinkFile> {
    let doc = std::str::from_utf8(doc).map_err(|e| {
        err(format!(
            "Invalid UTF-8 encoded text in the metalink document (byte {})",
            e.valid_up_to()
        ))
    })?;
    let mut state = State::Initial;
    let mut before_passthrough = State::Initial;
    let mut depth = 0usize;
    let mut found_a_file = false;
    let mut found_ours = false;
    // Set by each <hash>: whether its type is one ostree checks (the last one counts).
    let mut verification_known = false;
    let mut hash_type: Option<HashType> = None;
    let mut f = MetalinkFile::default();
    for ev in events(doc)? {
        match ev {
            Event::Start(name, attrs) => {
                let mut skip = false;
                match state {
                    State::Initial if name == "metalink" => state = State::Metalink,
                    State::Metalink if name == "files" => state = State::Files,
                    State::Files if !f.urls.is_empty() => skip = true,
                    State::Files if name == "file" => {
                        let v = collect(&name, &attrs, &["name"])?;
                        found_a_file = true;
                        if v[0] == requested {
                            found_ours = true;
                            state = State::File;
                        } else {
                            skip = true;
                        }
                    }
                    State::File if name == "size" => state = State::Size,
                    State::File if name == "verification" => state = State::Verification,
                    State::File if name == "resources" => state = State::Resources,
                    State::Verification if name == "hash" => {
                        state = State::Hash;
                        let v = collect(&name, &attrs, &["type"])?;
                        hash_type = match v[0] {
                            "sha256" => Some(HashType::Sha256),
                            "sha512" => Some(HashType::Sha512),
                            _ => None,
                        };
                        verification_known = hash_type.is_some();
                    }
                    State::Resources => {
                        if f.size == 0 {
                            return Err(err("No <size> element found or it is zero"));
                        }
                        if !verification_known {
                            return Err(err(
                                "No <verification> element with known <hash type=> found",
                            ));
                        }
                        if name == "url" {
                            let v = collect(
                                &name,
                                &attrs,
                                &["protocol", "type", "location", "preference"],
                            )?;
                            if v[0] == "http" || v[0] == "https" {
                                state = State::Url;
                            } else {
                                skip = true;
                            }
                        } else {
                            skip = true;
                        }
                    }
                    State::Passthrough => depth += 1,
                    _ => skip = true,
                }
                if skip {
                    before_passthrough = state;
                    state = State::Passthrough;
                }
            }
            Event::End => {
                state = match state {
                    State::Initial => State::Initial,
                    State::Metalink => State::Initial,
                    State::Files => State::Metalink,
                    State::File => State::Files,
                    State::Size | State::Verification | State::Resources => State::File,
                    State::Hash => State::Verification,
                    State::Url => State::Resources,
                    State::Passthrough if depth > 0 => {
                        depth -= 1;
                        State::Passthrough
                    }
                    State::Passthrough => before_passthrough,
                };
            }
            Event::Text(t) => match state {
                State::Size => f.size = strtoull(&t),
                State::Hash if verification_known => match hash_type {
                    Some(HashType::Sha256) => f.sha256 = Some(t),
                    Some(HashType::Sha512) => f.sha512 = Some(t),
                    None => {}
                },
                State::Url => {
                    if let Ok(u) = Url::parse(&t) {
                        f.urls.push(u);
                    }
                }
                _ => {}
            },
        }
    }
    if !found_a_file {
        return Err(err("No <file> element found"));
    }
    if !found_ours {
        return Err(Error::not_found(format!(
            "No <file name='{requested}'> found"
        )));
    }
    if f.sha256.is_none() && f.sha512.is_none() {
        return Err(no_hash());
    }
    if f.sha256.as_deref().is_some_and(|s| !valid_hex(s, 64)) {
        return Err(err("Invalid hash digest for sha256"));
    }
    if f.sha512.as_deref().is_some_and(|s| !valid_hex(s, 128)) {
        return Err(err("Invalid hash digest for sha512"));
    }
    if f.urls.is_empty() {
        return Err(err("No <url method='http'> elements found"));
    }
    Ok(f)
}

/// The directory of `u` (its path's dirname, no query or fragment): the repository a
/// metalink's summary URL lies in.
pub fn base_of(u: &Url) -> Url {
    let mut b = u.clone();
    let path = u.path().trim_end_matches('/');
    let dir = match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    };
    b.set_path(dir);
    b.set_query(None);
    b.set_fragment(None);
    b
}

/// Fetch `metalink_url`, then the summary it describes: the summary's bytes and the base URL
/// of the repository they came from.
pub async fn fetch_summary(
    registry: &Registry,
    metalink_url: &str,
    cfg: &FetcherConfig,
    policy: NetPolicy,
) -> Result<(Bytes, Url)> {
    let get = |u: Url| async move {
        let f = super::build_fetcher(registry, &u, cfg)?;
        let src = RemoteSource::new(Mirrors(vec![f]), Mirrors(Vec::new()), policy);
        match src
            .get(src.meta_mirrors(), "", MAX_METADATA_SIZE, None)
            .await?
        {
            Some((_, b, _)) => Ok(b),
            None => Err(Error::not_found(format!(
                "Server returned HTTP 404 for {u}"
            ))),
        }
    };
    let mu = Url::parse(metalink_url)
        .map_err(|e| Error::invalid(format!("Invalid URL '{metalink_url}': {e}")))?;
    let doc = get(mu).await?;
    let file = parse(&doc, "summary")?;
    let mut last = String::new();
    for u in &file.urls {
        match get(u.clone())
            .await
            .and_then(|b| file.verify(&b).map(|()| b))
        {
            Ok(b) => return Ok((b, base_of(u))),
            Err(e) => last = e.to_string(),
        }
    }
    Err(err(format!(
        "Exhausted {} metalink targets, last error: {last}",
        file.urls.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &[u8] = b"not really a summary";

    fn doc(extra_file_body: &str) -> String {
        let sha256 = hex::encode(Sha256::digest(SUMMARY));
        let sha512 = hex::encode(Sha512::digest(SUMMARY));
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment -->
<metalink version="3.0" xmlns="http://www.metalinker.org/">
  <deeply><nested a='1'><unknown/>text &amp; more</nested></deeply>
  <files>
    <file name="other"><size>1</size></file>
    <file name="summary">
      <size>{}</size>
      <verification>
        <hash type="md5">00</hash>
        <hash type="sha256">{sha256}</hash>
        <hash type="sha512">{sha512}</hash>
      </verification>
      <resources maxconnections="1">
        <url protocol="ftp" type="ftp" location="US" preference="101">ftp://h/x/summary</url>
        <url protocol="http" type="http" location="US" preference="100">http://h/a/bad</url>
        <url protocol="https" type="https" location="US" preference="99">https://h/repo/summary?x=1</url>
        <url protocol="http" type="http" location="US" preference="98">not a url</url>
      </resources>
      {extra_file_body}
    </file>
  </files>
</metalink>
"#,
            SUMMARY.len()
        )
    }

    #[test]
    fn parses_ostree_test_document() {
        let f = parse(doc("").as_bytes(), "summary").unwrap();
        assert_eq!(f.size, SUMMARY.len() as u64);
        assert_eq!(f.urls.len(), 2);
        assert_eq!(f.urls[1].as_str(), "https://h/repo/summary?x=1");
        assert_eq!(base_of(&f.urls[1]).as_str(), "https://h/repo");
        assert_eq!(
            base_of(&Url::parse("http://h/summary").unwrap()).as_str(),
            "http://h/"
        );
        f.verify(SUMMARY).unwrap();
        let e = f.verify(b"moo").unwrap_err().to_string();
        assert!(
            e.contains("Expected size is 20 bytes but content is 3 bytes"),
            "{e}"
        );
        let mut other = SUMMARY.to_vec();
        other[0] ^= 1;
        let e = f.verify(&other).unwrap_err().to_string();
        assert!(e.contains("Expected checksum is ") && e.contains(" but actual is "));
    }

    #[test]
    fn ostree_errors() {
        let good = doc("");
        let bad512 = good.replace(&hex::encode(Sha512::digest(SUMMARY)), "bacon");
        let e = parse(bad512.as_bytes(), "summary").unwrap_err().to_string();
        assert!(e.contains("Invalid hash digest for sha512"), "{e}");
        let no_sha: String = good
            .lines()
            .filter(|l| !l.contains("sha256") && !l.contains("sha512"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = parse(no_sha.as_bytes(), "summary").unwrap_err().to_string();
        assert!(
            e.contains("No <verification> element with known <hash type=> found"),
            "{e}"
        );
        let no_url: String = good
            .lines()
            .filter(|l| !l.contains("<url protocol"))
            .collect::<Vec<_>>()
            .join("\n");
        let e = parse(no_url.as_bytes(), "summary").unwrap_err().to_string();
        assert!(e.contains("No <url method='http'> elements found"), "{e}");
        let e = parse(b"bacon\n", "summary").unwrap_err().to_string();
        assert!(e.contains("Document must begin with an element"), "{e}");
        let e = parse(good.as_bytes(), "config").unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
        let e = parse(b"<metalink><files/></metalink>", "summary").unwrap_err();
        assert!(e.to_string().contains("No <file> element found"));
        let e = parse(doc("<bogus/>").as_bytes(), "summary").map(|_| ());
        assert!(e.is_ok(), "unknown elements are skipped: {e:?}");
        let e = parse(good.replace("preference=\"99\"", "").as_bytes(), "summary").unwrap_err();
        assert!(
            e.to_string().contains("requires attribute 'preference'"),
            "{e}"
        );
    }

    #[test]
    fn markup() {
        assert_eq!(unescape("a&lt;b&#65;&#x42;&quot;").unwrap(), "a<bAB\"");
        assert!(unescape("&bogus;").is_err());
        assert!(unescape("&#0;").is_err());
        assert!(unescape("&#xFFFFFFFFFF;").is_err());
        assert!(unescape("&amp").is_err());
        assert!(events("<a><b></a></b>").is_err());
        assert!(events("<a></a><b></b>").is_err());
        assert!(events("<a></a>trailing").is_err());
        assert!(events("<a>").is_err());
        assert!(events("").is_err());
        assert!(events("<a x=1/>").is_err());
        assert!(events("<a x='1' x='2'/>").is_err());
        assert_eq!(
            events("<a x='1'><![CDATA[<&>]]></a>").unwrap(),
            vec![
                Event::Start("a".into(), vec![("x".into(), "1".into())]),
                Event::Text("<&>".into()),
                Event::End
            ]
        );
        assert_eq!(strtoull(" 42abc"), 42);
        assert_eq!(strtoull("x"), 0);
        assert_eq!(strtoull("99999999999999999999999"), u64::MAX);
    }

    /// Hostile input: every truncation, byte flips, deep nesting, junk — an answer (usually
    /// an error), never a panic.
    #[test]
    fn garbage_never_panics() {
        let good = doc("");
        let b = good.as_bytes();
        for cut in 0..b.len() {
            let _ = parse(&b[..cut], "summary");
        }
        let mut s: u32 = 12345;
        for i in 0..3000 {
            let mut m = b.to_vec();
            for _ in 0..(1 + i % 4) {
                s = s.wrapping_mul(1103515245).wrapping_add(12345);
                let at = (s >> 8) as usize % m.len();
                m[at] = (s >> 20) as u8;
            }
            let _ = parse(&m, "summary");
        }
        let deep = "<a>".repeat(200_000) + &"</a>".repeat(200_000);
        let _ = parse(deep.as_bytes(), "summary");
        let deep = "<metalink><files>".to_string() + &"<x>".repeat(100_000);
        let _ = parse(deep.as_bytes(), "summary");
        for junk in [
            &b"<"[..],
            b"<<<<",
            b"</>",
            b"<a b",
            b"<a b=",
            b"<a b='",
            b"<!--",
            b"<?",
            b"<![CDATA[",
            b"<!",
            b"\xff\xfe<a/>",
            b"<a>&#;</a>",
            b"<a>&#x;</a>",
            b"<a>&#xd800;</a>",
            b"<metalink><files><file name='summary'><size>-1</size><resources><url/></resources></file></files></metalink>",
        ] {
            let _ = parse(junk, "summary");
        }
    }
}
