//! SHA-256 checksums, the names of every OSTree object.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A SHA-256 checksum: 32 raw bytes, shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// Checksum of a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Checksum(Sha256::digest(data).into())
    }

    /// From 32 raw bytes (as stored inside GVariants).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| Error::corrupted(format!("Invalid checksum of length {}", b.len())))?;
        Ok(Checksum(arr))
    }

    /// Parse 64 hex characters (lowercase or uppercase are accepted; ostree wants lowercase).
    pub fn from_hex(s: &str) -> Result<Self> {
        if !is_valid_hex(s) {
            return Err(Error::invalid(format!("Invalid checksum: {s}")));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| Error::invalid(format!("Invalid checksum: {s}")))?;
        Ok(Checksum(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// OSTree's "modified base64": standard alphabet with `/` → `_`, no padding (43 chars).
    pub fn to_modified_base64(&self) -> String {
        const ALPHA: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_";
        let mut out = String::with_capacity(44);
        for chunk in self.0.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHA[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    /// Parse OSTree's modified base64 form.
    pub fn from_modified_base64(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("Invalid modified base64 checksum: {s}"));
        if s.len() != 43 {
            return Err(bad());
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(32);
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'_' => 63,
                _ => return Err(bad()),
            } as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        Checksum::from_bytes(&out).map_err(|_| bad())
    }
}

/// True if `s` is exactly 64 hex characters.
pub fn is_valid_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// True if `s` is a possibly-abbreviated checksum prefix (hex only).
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // hex::encode_to_slice cannot fail with a correctly sized buffer.
        if hex::encode_to_slice(self.0, &mut buf).is_err() {
            return Err(fmt::Error);
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

impl FromStr for Checksum {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Checksum::from_hex(s)
    }
}

/// Incremental SHA-256 hasher producing a [`Checksum`].
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// A new hasher.
    pub fn new() -> Self {
        Hasher(Sha256::new())
    }
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// Finish.
    pub fn finish(self) -> Checksum {
        Checksum(self.0.finalize().into())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let c = Checksum::of(b"\0");
        assert_eq!(
            c.to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(Checksum::from_hex(&c.to_hex()).unwrap(), c);
        assert!(Checksum::from_hex("xyz").is_err());
    }

    #[test]
    fn modified_base64_matches_ostree() {
        // From the spec: TO=dfb97ca9… → deltas/37/l8qQRaF08wVzLbUWCOiCf0uYCC1RFzK7PzPZTveD8
        let c =
            Checksum::from_hex("dfb97ca9045a174f305732db51608e8827f4b98082d511732bb3f33d94ef783f")
                .unwrap();
        let b = c.to_modified_base64();
        assert_eq!(b, "37l8qQRaF08wVzLbUWCOiCf0uYCC1RFzK7PzPZTveD8");
        assert_eq!(Checksum::from_modified_base64(&b).unwrap(), c);
    }
}
