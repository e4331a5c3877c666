#![doc = include_str!("../README.md")]

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use ostree_core::sign::{
    SignatureReport, Signer, SignerConfig, SignerPlugin, Verifier, VerifierConfig, VerifyReport,
};
use ostree_core::{Error, Result};

/// The signature type name.
pub const NAME: &str = "ed25519";
/// The detached-metadata key of its signatures.
pub const METADATA_KEY: &str = "ostree.sign.ed25519";
/// Bytes of a signature (`crypto_sign_BYTES`).
pub const SIGNATURE_BYTES: usize = 64;
/// Bytes of a public key (`crypto_sign_PUBLICKEYBYTES`).
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of a secret key (`crypto_sign_SECRETKEYBYTES`: seed ‖ public key).
pub const SECRET_KEY_BYTES: usize = 64;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decode base64 as `g_base64_decode`: characters outside the alphabet are skipped, `=`
/// pads, and a trailing incomplete group is dropped.
pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut n = 0;
    let mut last = [0u8; 2];
    for c in s.bytes() {
        let rank = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => 0,
            _ => continue,
        };
        last = [c, last[0]];
        acc = (acc << 6) | u32::from(rank);
        n += 1;
        if n == 4 {
            let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
            let mut take = 3;
            if last[0] == b'=' {
                take -= 1;
                if last[1] == b'=' {
                    take -= 1;
                }
            }
            out.extend_from_slice(&bytes[..take]);
            acc = 0;
            n = 0;
        }
    }
    out
}

/// Encode base64 with padding (`g_base64_encode`).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse a secret key (base64 of seed ‖ public key, libsodium's layout).
pub fn parse_secret_key(s: &str) -> Result<SigningKey> {
    let raw = base64_decode(s);
    let bytes: [u8; SECRET_KEY_BYTES] = raw
        .as_slice()
        .try_into()
        .map_err(|_| Error::invalid("Incorrect ed25519 secret key"))?;
    SigningKey::from_keypair_bytes(&bytes).map_err(|_| {
        Error::invalid("Incorrect ed25519 secret key (its public half does not match its seed)")
    })
}

/// Parse a public key (base64 of 32 bytes). Bytes that are not a curve point are kept: no
/// signature will ever verify with them.
pub fn parse_public_key(s: &str) -> Result<[u8; PUBLIC_KEY_BYTES]> {
    base64_decode(s)
        .as_slice()
        .try_into()
        .map_err(|_| Error::invalid("Incorrect ed25519 public key"))
}

/// The base64 public key of a secret key string.
pub fn public_key_of(secret: &str) -> Result<String> {
    Ok(base64_encode(
        parse_secret_key(secret)?.verifying_key().as_bytes(),
    ))
}

/// Signs with one secret key.
#[derive(Debug)]
pub struct Ed25519Signer {
    key: SigningKey,
}

impl Ed25519Signer {
    /// A signer for a base64 secret key.
    pub fn new(secret: &str) -> Result<Self> {
        Ok(Ed25519Signer {
            key: parse_secret_key(secret)?,
        })
    }
}

impl Signer for Ed25519Signer {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(data).to_bytes().to_vec())
    }
    fn fingerprints(&self) -> Vec<String> {
        vec![hex(self.key.verifying_key().as_bytes())]
    }
}

/// Verifies against trusted public keys, skipping revoked ones.
#[derive(Debug, Default)]
pub struct Ed25519Verifier {
    /// Trusted keys, most recently added first (as ostree's list).
    keys: Vec<[u8; PUBLIC_KEY_BYTES]>,
    revoked: Vec<[u8; PUBLIC_KEY_BYTES]>,
    /// Why no key could be loaded, reported at verification (as ostree does).
    load_error: Option<String>,
}

impl Ed25519Verifier {
    fn add(&mut self, k: [u8; PUBLIC_KEY_BYTES]) {
        if !self.keys.contains(&k) {
            self.keys.insert(0, k);
        }
    }

    fn add_revoked(&mut self, k: [u8; PUBLIC_KEY_BYTES]) {
        if !self.revoked.contains(&k) {
            self.revoked.insert(0, k);
        }
    }

    /// Load keys from a file of base64 lines; lines that are not keys are skipped, but a file
    /// with no key at all is an error (`_load_pk_from_file`).
    fn load_file(&mut self, path: &Path, trusted: bool) -> Result<()> {
        let meta = std::fs::metadata(path);
        if !meta.is_ok_and(|m| m.is_file()) {
            return Err(Error::invalid(format!(
                "File object '{}' is not a regular file",
                path.display()
            )));
        }
        let text = std::fs::read(path).map_err(|e| Error::io_path("Reading", path, e))?;
        let mut any = false;
        for line in text.split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            if let Ok(k) = parse_public_key(&line) {
                if trusted {
                    self.add(k);
                } else {
                    self.add_revoked(k);
                }
                any = true;
            }
        }
        if !any {
            return Err(Error::invalid(format!(
                "signature: ed25519: no valid keys in file '{}'",
                path.display()
            )));
        }
        Ok(())
    }

    /// `trusted.ed25519` / `revoked.ed25519` and their `.d` directories under each base.
    fn load_dirs(&mut self, bases: &[PathBuf], trusted: bool) -> bool {
        let stem = if trusted {
            "trusted.ed25519"
        } else {
            "revoked.ed25519"
        };
        let mut files = Vec::new();
        for b in bases {
            files.push(b.join(stem));
            if let Ok(rd) = std::fs::read_dir(b.join(format!("{stem}.d"))) {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                v.sort();
                files.extend(v);
            }
        }
        let mut any = false;
        for f in files {
            if self.load_file(&f, trusted).is_ok() {
                any = true;
            }
        }
        any
    }

    /// A verifier for `cfg` (see [`VerifierConfig`]).
    pub fn new(cfg: &VerifierConfig) -> Result<Self> {
        let mut v = Ed25519Verifier::default();
        for f in &cfg.key_files {
            v.load_file(f, true)?;
        }
        for k in &cfg.keys {
            v.add(parse_public_key(k)?);
        }
        if v.keys.is_empty() && cfg.key_files.is_empty() && cfg.keys.is_empty() {
            if cfg.system_fallback || !cfg.key_dirs.is_empty() {
                let bases = if cfg.key_dirs.is_empty() {
                    vec![
                        PathBuf::from("/etc/ostree"),
                        PathBuf::from("/usr/share/ostree"),
                    ]
                } else {
                    cfg.key_dirs.clone()
                };
                if !v.load_dirs(&bases, true) {
                    v.load_error = Some("signature: ed25519: no keys loaded".into());
                }
                v.load_dirs(&bases, false);
            } else {
                v.load_error = Some("signature: ed25519: no keys loaded".into());
            }
        }
        Ok(v)
    }
}

impl Verifier for Ed25519Verifier {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn verify(&self, data: &[u8], signatures: &[Vec<u8>]) -> Result<VerifyReport> {
        if let Some(e) = &self.load_error {
            return Err(Error::BadSignature(e.clone()));
        }
        let mut report = VerifyReport {
            kind: NAME.into(),
            ..Default::default()
        };
        let mut invalid: Vec<String> = Vec::new();
        let mut length_error: Option<String> = None;
        for raw in signatures {
            let Ok(bytes) = <[u8; SIGNATURE_BYTES]>::try_from(raw.as_slice()) else {
                // ostree stops at such a signature; a malformed one must not hide a good one
                // that follows, so it is reported and skipped.
                let why = format!(
                    "Invalid signature length of {} bytes, expected {SIGNATURE_BYTES}",
                    raw.len()
                );
                report.signatures.push(SignatureReport {
                    pubkey_algo: NAME.into(),
                    reason: why.clone(),
                    ..Default::default()
                });
                length_error.get_or_insert(why);
                continue;
            };
            let sig = Signature::from_bytes(&bytes);
            let mut verdict = SignatureReport {
                pubkey_algo: NAME.into(),
                key_missing: true,
                reason: "no trusted key made this signature".into(),
                ..Default::default()
            };
            for k in &self.keys {
                if self.revoked.contains(k) {
                    continue;
                }
                let ok = VerifyingKey::from_bytes(k)
                    .map(|vk| vk.verify_strict(data, &sig).is_ok())
                    .unwrap_or(false);
                if ok {
                    verdict = SignatureReport {
                        valid: true,
                        fingerprint: hex(k),
                        fingerprint_primary: hex(k),
                        pubkey_algo: NAME.into(),
                        ..Default::default()
                    };
                    report.message = format!(
                        "ed25519: Signature verified successfully with key '{}'",
                        hex(k)
                    );
                    report.signatures.push(verdict);
                    return Ok(report);
                }
                invalid.push(format!("key '{}'", hex(k)));
            }
            report.signatures.push(verdict);
        }
        report.message = if invalid.len() > 3 {
            format!(
                "ed25519: Signature couldn't be verified; tried {} keys",
                invalid.len()
            )
        } else if !invalid.is_empty() {
            format!(
                "ed25519: Signature couldn't be verified with: {}",
                invalid.join("; ")
            )
        } else if let Some(e) = length_error {
            e
        } else {
            "ed25519: no signatures found".into()
        };
        Ok(report)
    }

    fn lookup_key(&self, key_id: &str) -> Option<String> {
        let k = parse_public_key(key_id).ok()?;
        self.keys.contains(&k).then(|| hex(&k))
    }
}

fn signer(cfg: &SignerConfig) -> Result<Box<dyn Signer>> {
    Ok(Box::new(Ed25519Signer::new(&cfg.key)?))
}

fn verifier(cfg: &VerifierConfig) -> Result<Box<dyn Verifier>> {
    Ok(Box::new(Ed25519Verifier::new(cfg)?))
}

/// The registry record.
pub static PLUGIN: SignerPlugin = SignerPlugin {
    name: NAME,
    description: "ed25519 signatures (ostree sign, libsodium key layout)",
    metadata_key: METADATA_KEY,
    signer,
    verifier,
    keyring: None,
};

inventory::submit! {
    SignerPlugin {
        name: NAME,
        description: "ed25519 signatures (ostree sign, libsodium key layout)",
        metadata_key: METADATA_KEY,
        signer,
        verifier,
        keyring: None,
    }
}

/// Register into a private registry (where link-time registration does not run).
pub fn register(registry: &mut ostree_core::registry::Registry) {
    registry.register_signer(&PLUGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMATS.md §5.4: seed bytes 00..1f.
    const SEC: &str =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA==";
    const PUB: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";

    #[test]
    fn libsodium_key_layout() {
        assert_eq!(public_key_of(SEC).unwrap(), PUB);
        let raw = base64_decode(SEC);
        assert_eq!(raw.len(), 64);
        assert_eq!(&raw[..32], &(0u8..32).collect::<Vec<_>>()[..]);
        assert_eq!(base64_encode(&raw), SEC);
    }

    #[test]
    fn glib_base64_leniency() {
        assert_eq!(base64_decode("AQID"), vec![1, 2, 3]);
        assert_eq!(base64_decode("AQ=="), vec![1]);
        assert_eq!(base64_decode("AQI="), vec![1, 2]);
        assert_eq!(base64_decode(" A Q\nI D\r"), vec![1, 2, 3]);
        assert_eq!(base64_decode("AQIDB"), vec![1, 2, 3]);
        assert!(base64_decode("").is_empty());
        assert!(parse_public_key("short").is_err());
    }

    /// RFC 8032 §7.1, test 2 (one-byte message 0x72).
    #[test]
    fn rfc8032_vector() {
        let seed = [
            0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11,
            0x4e, 0x0f, 0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed,
            0x4f, 0xb8, 0xa6, 0xfb,
        ];
        let sk = SigningKey::from_bytes(&seed);
        let mut full = seed.to_vec();
        full.extend_from_slice(sk.verifying_key().as_bytes());
        let signer = Ed25519Signer::new(&base64_encode(&full)).unwrap();
        let sig = signer.sign(&[0x72]).unwrap();
        assert_eq!(
            hex(&sig),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        assert_eq!(
            hex(sk.verifying_key().as_bytes()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
    }

    #[test]
    fn messages_like_ostree() {
        let s = Ed25519Signer::new(SEC).unwrap();
        let sig = s.sign(b"data").unwrap();
        let v = Ed25519Verifier::new(&VerifierConfig {
            keys: vec![PUB.into()],
            ..Default::default()
        })
        .unwrap();
        let r = v.verify(b"data", std::slice::from_ref(&sig)).unwrap();
        assert!(r.is_valid());
        assert_eq!(
            r.message,
            format!(
                "ed25519: Signature verified successfully with key '{}'",
                hex(&base64_decode(PUB))
            )
        );
        let r = v.verify(b"other", std::slice::from_ref(&sig)).unwrap();
        assert!(!r.is_valid());
        assert!(
            r.message
                .starts_with("ed25519: Signature couldn't be verified with: key '03a107")
        );
        let r = v.verify(b"data", &[vec![0; 10]]).unwrap();
        assert_eq!(
            r.failure_text(),
            "Invalid signature length of 10 bytes, expected 64"
        );
        // No keys at all.
        let none = Ed25519Verifier::new(&VerifierConfig::default()).unwrap();
        assert!(none.verify(b"data", &[sig]).is_err());
    }

    #[test]
    fn key_files_and_revocation() {
        let d = tempfile::tempdir().unwrap();
        let s = Ed25519Signer::new(SEC).unwrap();
        let sig = s.sign(b"data").unwrap();
        std::fs::create_dir(d.path().join("trusted.ed25519.d")).unwrap();
        std::fs::write(
            d.path().join("trusted.ed25519.d/k"),
            format!("garbage\n{PUB}\n"),
        )
        .unwrap();
        let cfg = VerifierConfig {
            key_dirs: vec![d.path().to_path_buf()],
            ..Default::default()
        };
        let v = Ed25519Verifier::new(&cfg).unwrap();
        assert!(
            v.verify(b"data", std::slice::from_ref(&sig))
                .unwrap()
                .is_valid()
        );
        std::fs::create_dir(d.path().join("revoked.ed25519.d")).unwrap();
        std::fs::write(d.path().join("revoked.ed25519.d/k"), PUB).unwrap();
        let v = Ed25519Verifier::new(&cfg).unwrap();
        let r = v.verify(b"data", std::slice::from_ref(&sig)).unwrap();
        assert!(!r.is_valid());
        // A keys file with no key, and a directory as keys file.
        let empty = d.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        for f in [empty, d.path().to_path_buf()] {
            assert!(
                Ed25519Verifier::new(&VerifierConfig {
                    key_files: vec![f],
                    ..Default::default()
                })
                .is_err()
            );
        }
    }
}
