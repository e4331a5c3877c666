//! The `dummy` signature type of ostree's test suite: a "signature" is the key string itself.
//!
//! It exists so that tests can exercise signature policy without keys; like ostree, it only
//! works when the environment has `OSTREE_DUMMY_SIGN_ENABLED=1`, so a production system can
//! never be configured to trust it by accident.

use super::SignatureReport;
use super::{Signer, SignerConfig, SignerPlugin, Verifier, VerifierConfig, VerifyReport};
use crate::{Error, Result};

/// The signature type name.
pub const NAME: &str = "dummy";
/// The detached-metadata key.
pub const METADATA_KEY: &str = "ostree.sign.dummy";

fn check_enabled() -> Result<()> {
    if std::env::var("OSTREE_DUMMY_SIGN_ENABLED").as_deref() != Ok("1") {
        return Err(Error::Other(
            "dummy signature type is only for ostree testing".into(),
        ));
    }
    Ok(())
}

/// Signs with a fixed string.
#[derive(Debug)]
pub struct DummySigner {
    key: String,
}

impl Signer for DummySigner {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn sign(&self, _data: &[u8]) -> Result<Vec<u8>> {
        check_enabled()?;
        Ok(self.key.as_bytes().to_vec())
    }
}

/// Accepts a signature equal to its key string.
#[derive(Debug)]
pub struct DummyVerifier {
    key: Option<String>,
}

impl Verifier for DummyVerifier {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn verify(&self, _data: &[u8], signatures: &[Vec<u8>]) -> Result<VerifyReport> {
        check_enabled()?;
        let mut report = VerifyReport {
            kind: NAME.into(),
            ..Default::default()
        };
        for s in signatures {
            // Compared as C strings: the signature up to its first NUL.
            let text = s.split(|b| *b == 0).next().unwrap_or_default();
            let valid = self.key.as_deref().map(str::as_bytes) == Some(text);
            report.signatures.push(SignatureReport {
                valid,
                key_missing: self.key.is_none(),
                fingerprint: String::from_utf8_lossy(text).into_owned(),
                fingerprint_primary: String::from_utf8_lossy(text).into_owned(),
                pubkey_algo: NAME.into(),
                reason: if valid {
                    String::new()
                } else {
                    "signature does not match the dummy key".into()
                },
                ..Default::default()
            });
        }
        report.message = if report.is_valid() {
            "dummy: Signature verified".into()
        } else if signatures.is_empty() {
            "signature: dummy: no signatures".into()
        } else {
            format!(
                "signature: dummy: incorrect signatures found: {}",
                signatures.len()
            )
        };
        Ok(report)
    }
}

fn signer(cfg: &SignerConfig) -> Result<Box<dyn Signer>> {
    check_enabled()?;
    Ok(Box::new(DummySigner {
        key: cfg.key.clone(),
    }))
}

fn verifier(cfg: &VerifierConfig) -> Result<Box<dyn Verifier>> {
    if let Some(f) = cfg.key_files.first() {
        return Err(Error::Other(format!(
            "Failed loading 'dummy' keys from '{}': not implemented",
            f.display()
        )));
    }
    // Like ostree, the last key set wins.
    Ok(Box::new(DummyVerifier {
        key: cfg.keys.last().cloned(),
    }))
}

inventory::submit! {
    SignerPlugin {
        name: NAME,
        description: "test-only signatures (OSTREE_DUMMY_SIGN_ENABLED=1)",
        metadata_key: METADATA_KEY,
        signer,
        verifier,
        keyring: None,
    }
}
