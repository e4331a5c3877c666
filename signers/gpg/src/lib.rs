#![doc = include_str!("../README.md")]

pub mod keyring;
pub mod signer;
pub mod verify;

use ostree_core::sign::{
    KeyInfo, Keyring, Signer, SignerConfig, SignerPlugin, SubkeyInfo, UidInfo, Verifier,
    VerifierConfig,
};
use ostree_core::{Error, Result};
use pgp::types::KeyDetails;
use sha1::Digest;

pub use signer::{GpgSigner, default_homedir, needs_secring_port, port_legacy_secring};
pub use verify::GpgVerifier;

/// The signature type name.
pub const NAME: &str = "gpg";
/// The detached-metadata key of its signatures.
pub const METADATA_KEY: &str = "ostree.gpgsigs";

/// z-base-32 (`zbase32_encode`, for WKD).
pub fn zbase32(data: &[u8]) -> String {
    const A: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in data {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(A[((acc >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// OpenPGP Web Key Directory URLs (advanced, direct) for an e-mail address
/// (`ot_gpg_wkd_urls`); `None` when it is not `local@domain`.
pub fn wkd_urls(email: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = email.split('@').collect();
    let [local, domain] = parts.as_slice() else {
        return None;
    };
    let hash = sha1::Sha1::digest(local.to_ascii_lowercase().as_bytes());
    let enc = zbase32(&hash);
    let esc = ostree_core::fetcher::uri_escape(local);
    Some((
        format!(
            "https://openpgpkey.{domain}/.well-known/openpgpkey/{}/hu/{enc}?l={esc}",
            domain.to_ascii_lowercase()
        ),
        format!("https://{domain}/.well-known/openpgpkey/hu/{enc}?l={esc}"),
    ))
}

/// Keyring listing and import for `remote gpg-list-keys` / `gpg-import`.
#[derive(Debug, Default)]
pub struct GpgKeyring;

fn select(certs: Vec<keyring::Cert>, key_ids: &[String]) -> Result<Vec<keyring::Cert>> {
    if key_ids.is_empty() {
        return Ok(certs);
    }
    let mut out = Vec::new();
    for k in key_ids {
        let c = certs
            .iter()
            .find(|c| c.matches(k))
            .ok_or_else(|| Error::not_found(format!("Unable to find key \"{k}\"")))?;
        if !out
            .iter()
            .any(|x: &keyring::Cert| x.fingerprint() == c.fingerprint())
        {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// Describe a certificate for listings.
pub fn key_info(c: &keyring::Cert) -> KeyInfo {
    let now = verify::now();
    let p = c.primary_state();
    KeyInfo {
        fingerprint: p.fingerprint.clone(),
        created: p.created,
        expires: p.expires,
        expired: p.expired(now),
        revoked: p.revoked,
        uids: c
            .uids()
            .into_iter()
            .map(|(uid, revoked)| {
                let (_, email) = keyring::split_uid(&uid);
                let urls = if email.is_empty() {
                    None
                } else {
                    wkd_urls(&email)
                };
                UidInfo {
                    uid,
                    email: (!email.is_empty()).then_some(email),
                    revoked: revoked || p.revoked,
                    advanced_url: urls.as_ref().map(|u| u.0.clone()),
                    direct_url: urls.map(|u| u.1),
                }
            })
            .collect(),
        subkeys: c
            .subkeys
            .iter()
            .map(|k| {
                let s = c.subkey_state(k);
                SubkeyInfo {
                    fingerprint: keyring::hex_upper(k.key.public().fingerprint().as_bytes()),
                    created: s.created,
                    expires: s.expires,
                    expired: s.expired(now),
                    revoked: s.revoked || p.revoked,
                }
            })
            .collect(),
    }
}

impl Keyring for GpgKeyring {
    fn list(&self, data: &[u8], key_ids: &[String]) -> Result<Vec<KeyInfo>> {
        let certs = verify::dedup(keyring::parse_keyring(data));
        Ok(select(certs, key_ids)?.iter().map(key_info).collect())
    }

    fn import(&self, existing: &[u8], new: &[u8], key_ids: &[String]) -> Result<(Vec<u8>, usize)> {
        let mut mine = verify::dedup(keyring::parse_keyring(existing));
        let (theirs, orphans) = keyring::parse_keyring_with_orphans(new);
        keyring::attach_orphans(&mut mine, &orphans);
        let theirs = select(verify::dedup(theirs), key_ids)?;
        let mut imported = 0;
        for c in theirs {
            let f = c.fingerprint();
            match mine.iter_mut().find(|m| m.fingerprint() == f) {
                Some(m) => {
                    m.merge(&c);
                }
                None => {
                    mine.push(c);
                    imported += 1;
                }
            }
        }
        Ok((keyring::to_keyring(&mine), imported))
    }
}

fn build_signer(cfg: &SignerConfig) -> Result<Box<dyn Signer>> {
    Ok(Box::new(signer::build(cfg)?))
}

fn build_verifier(cfg: &VerifierConfig) -> Result<Box<dyn Verifier>> {
    Ok(Box::new(GpgVerifier::new(cfg)?))
}

fn build_keyring() -> Box<dyn Keyring> {
    Box::new(GpgKeyring)
}

/// The registry record.
pub static PLUGIN: SignerPlugin = SignerPlugin {
    name: NAME,
    description: "OpenPGP signatures (rPGP; signing from GnuPG homes)",
    metadata_key: METADATA_KEY,
    signer: build_signer,
    verifier: build_verifier,
    keyring: Some(build_keyring),
};

inventory::submit! {
    SignerPlugin {
        name: NAME,
        description: "OpenPGP signatures (rPGP; signing from GnuPG homes)",
        metadata_key: METADATA_KEY,
        signer: build_signer,
        verifier: build_verifier,
        keyring: Some(build_keyring),
    }
}

/// Register into a private registry (where link-time registration does not run).
pub fn register(registry: &mut ostree_core::registry::Registry) {
    registry.register_signer(&PLUGIN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkd_like_ostree() {
        let (a, d) = wkd_urls("test@test.com").unwrap();
        assert_eq!(
            a,
            "https://openpgpkey.test.com/.well-known/openpgpkey/test.com/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test"
        );
        assert_eq!(
            d,
            "https://test.com/.well-known/openpgpkey/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test"
        );
        assert!(wkd_urls("nope").is_none());
    }
}
