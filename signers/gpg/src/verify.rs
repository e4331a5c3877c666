//! GPG verification in pure Rust: each signature packet is matched to a trusted key by its
//! issuer, checked cryptographically with rPGP, and judged against the key's state now
//! (expiry, revocation) the way GPGME reports it to ostree.

use std::path::Path;

use ostree_core::sign::{SignatureReport, Verifier, VerifierConfig, VerifyReport};
use ostree_core::{Error, Result};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{Packet, Signature, SignatureType};
use pgp::types::KeyDetails;

use crate::keyring::{Cert, KeyState, guard, hex_upper, packets, parse_keyring, split_uid};
use crate::{METADATA_KEY, NAME};

/// Seconds since the epoch, now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `gpgme_pubkey_algo_name`.
pub fn pubkey_algo_name(a: PublicKeyAlgorithm) -> &'static str {
    match a {
        PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSAEncrypt | PublicKeyAlgorithm::RSASign => {
            "RSA"
        }
        PublicKeyAlgorithm::DSA => "DSA",
        PublicKeyAlgorithm::ElgamalEncrypt | PublicKeyAlgorithm::Elgamal => "ELG",
        PublicKeyAlgorithm::ECDSA => "ECDSA",
        PublicKeyAlgorithm::ECDH => "ECDH",
        PublicKeyAlgorithm::EdDSALegacy => "EdDSA",
        PublicKeyAlgorithm::Ed25519 => "Ed25519",
        PublicKeyAlgorithm::Ed448 => "Ed448",
        _ => "[unknown name]",
    }
}

/// `gpgme_hash_algo_name`.
pub fn hash_algo_name(h: HashAlgorithm) -> &'static str {
    match h {
        HashAlgorithm::Md5 => "MD5",
        HashAlgorithm::Sha1 => "SHA1",
        HashAlgorithm::Ripemd160 => "RIPEMD160",
        HashAlgorithm::Sha256 => "SHA256",
        HashAlgorithm::Sha384 => "SHA384",
        HashAlgorithm::Sha512 => "SHA512",
        HashAlgorithm::Sha224 => "SHA224",
        _ => "[unknown name]",
    }
}

/// Read the keyrings a [`VerifierConfig`] names: data, files (a missing one is an error
/// naming it), and the `*.gpg` files of directories (not `trustdb.gpg` or `secring.gpg`).
pub fn load_certs(cfg: &VerifierConfig) -> Result<Vec<Cert>> {
    let mut certs = Vec::new();
    for d in &cfg.key_data {
        certs.extend(parse_keyring(d));
    }
    for f in &cfg.key_files {
        let data = std::fs::read(f).map_err(|e| Error::io_path("opening", f, e))?;
        certs.extend(parse_keyring(&data));
    }
    for d in &cfg.key_dirs {
        for f in keyring_files(d)? {
            let data = std::fs::read(&f).map_err(|e| Error::io_path("opening", &f, e))?;
            certs.extend(parse_keyring(&data));
        }
    }
    Ok(dedup(certs))
}

/// The keyrings of a directory, sorted: regular `*.gpg` files except the trust database and
/// a legacy secret keyring.
pub fn keyring_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io_path("Reading keyring directory", dir, e))?;
    let mut out: Vec<_> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            n.ends_with(".gpg") && n != "trustdb.gpg" && n != "secring.gpg"
        })
        .collect();
    out.sort();
    Ok(out)
}

/// One certificate per primary key: copies from several keyrings are merged.
pub fn dedup(certs: Vec<Cert>) -> Vec<Cert> {
    let mut out: Vec<Cert> = Vec::new();
    for c in certs {
        let f = c.fingerprint();
        match out.iter_mut().find(|x| x.fingerprint() == f) {
            Some(mine) => {
                mine.merge(&c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Verifies OpenPGP signatures against a set of public keys.
#[derive(Debug)]
pub struct GpgVerifier {
    certs: Vec<Cert>,
}

enum Found<'a> {
    Primary(&'a Cert, KeyState),
    Subkey(&'a Cert, usize, KeyState),
}

impl GpgVerifier {
    /// A verifier trusting the keys `cfg` names.
    pub fn new(cfg: &VerifierConfig) -> Result<Self> {
        Ok(GpgVerifier {
            certs: load_certs(cfg)?,
        })
    }

    /// A verifier trusting these certificates.
    pub fn from_certs(certs: Vec<Cert>) -> Self {
        GpgVerifier {
            certs: dedup(certs),
        }
    }

    fn find(&self, sig: &Signature) -> Option<Found<'_>> {
        let fprs: Vec<Vec<u8>> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        let ids: Vec<Vec<u8>> = sig
            .issuer_key_id()
            .iter()
            .map(|k| k.as_ref().to_vec())
            .collect();
        let hit = |fp: &[u8], id: &[u8]| {
            fprs.iter().any(|f| f == fp) || ids.iter().any(|i| i.as_slice() == id)
        };
        for c in &self.certs {
            let pk = c.primary.public();
            if hit(pk.fingerprint().as_bytes(), pk.legacy_key_id().as_ref()) {
                return Some(Found::Primary(c, c.primary_state()));
            }
            for (i, k) in c.subkeys.iter().enumerate() {
                let sk = k.key.public();
                if hit(sk.fingerprint().as_bytes(), sk.legacy_key_id().as_ref()) {
                    let st = c.subkey_state(k);
                    if st.bound {
                        return Some(Found::Subkey(c, i, st));
                    }
                }
            }
        }
        None
    }

    /// Judge one signature packet.
    pub fn check(&self, sig: &Signature, data: &[u8]) -> SignatureReport {
        let now = now();
        let timestamp = sig.created().map(|t| i64::from(t.as_secs())).unwrap_or(0);
        let exp_timestamp = match sig.signature_expiration_time() {
            Some(d) if d.as_secs() > 0 => timestamp + i64::from(d.as_secs()),
            _ => 0,
        };
        let mut r = SignatureReport {
            timestamp,
            exp_timestamp,
            sig_expired: exp_timestamp > 0 && exp_timestamp <= now,
            pubkey_algo: sig
                .config()
                .map(|c| pubkey_algo_name(c.pub_alg))
                .unwrap_or("[unknown name]")
                .into(),
            hash_algo: sig
                .hash_alg()
                .map(hash_algo_name)
                .unwrap_or("[unknown name]")
                .into(),
            user_name: "[unknown name]".into(),
            user_email: "[unknown email]".into(),
            ..Default::default()
        };
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| hex_upper(f.as_bytes()))
            .or_else(|| sig.issuer_key_id().first().map(|k| hex_upper(k.as_ref())))
            .unwrap_or_default();
        let binary = matches!(
            sig.typ(),
            Some(SignatureType::Binary) | Some(SignatureType::Text)
        );
        let Some(found) = self.find(sig) else {
            r.key_missing = true;
            r.fingerprint = issuer;
            r.reason = "public key not found".into();
            return r;
        };
        let (cert, key_state, crypto_ok) = match &found {
            Found::Primary(c, st) => {
                let ok = binary
                    && guard(|| sig.verify(c.primary.public(), data).is_ok()).unwrap_or(false);
                (*c, st.clone(), ok)
            }
            Found::Subkey(c, i, st) => {
                let ok = binary
                    && guard(|| sig.verify(c.subkeys[*i].key.public(), data).is_ok())
                        .unwrap_or(false);
                (*c, st.clone(), ok)
            }
        };
        let primary = cert.primary_state();
        if let Some(uid) = cert.primary_uid() {
            let (n, e) = split_uid(&uid);
            r.user_name = n;
            r.user_email = e;
        }
        r.fingerprint = key_state.fingerprint.clone();
        r.fingerprint_primary = primary.fingerprint.clone();
        r.key_exp_timestamp = key_state.expires;
        r.key_exp_timestamp_primary = primary.expires;
        r.key_expired = key_state.expired(now) || primary.expired(now);
        r.key_revoked = key_state.revoked || primary.revoked;
        r.valid = crypto_ok && !r.key_expired && !r.key_revoked && !r.sig_expired;
        r.reason = if r.valid {
            String::new()
        } else if !crypto_ok {
            "bad signature".into()
        } else if r.key_revoked {
            "key revoked".into()
        } else if r.key_expired {
            "key expired".into()
        } else {
            "signature expired".into()
        };
        r
    }

    /// The primary fingerprint of the trusted key named by `key_id`.
    pub fn lookup(&self, key_id: &str) -> Option<String> {
        self.certs
            .iter()
            .find(|c| c.matches(key_id))
            .map(Cert::fingerprint)
    }
}

impl Verifier for GpgVerifier {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn verify(&self, data: &[u8], signatures: &[Vec<u8>]) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            kind: NAME.into(),
            ..Default::default()
        };
        // Each element of the `aay` is one or more signature packets; anything else in it
        // is ignored, as gpg does with junk around a detached signature.
        for blob in signatures {
            for p in packets(blob) {
                if let Packet::Signature(s) = p {
                    report.signatures.push(self.check(&s, data));
                }
            }
        }
        Ok(report)
    }
    fn lookup_key(&self, key_id: &str) -> Option<String> {
        self.lookup(key_id)
    }
}
