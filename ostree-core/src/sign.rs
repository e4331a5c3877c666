//! Signatures: the [`Signer`] and [`Verifier`] plugin traits, what a verification reports,
//! and ostree's signature policy (where keys come from, what a pull requires).
//!
//! # Shape
//!
//! A signature type is a plugin registered under the name ostree uses (`gpg`, `ed25519`,
//! `dummy`) with a [`SignerPlugin`] record: constructors for a [`Signer`] (one secret key)
//! and a [`Verifier`] (a set of trusted keys), and optionally a [`Keyring`] tool for key
//! management (`remote gpg-import` / `gpg-list-keys`). Traits are synchronous: signing and
//! verifying are CPU work on a few kilobytes (a commit object, a summary).
//!
//! Verification never answers with a bare boolean: [`Verifier::verify`] returns a
//! [`VerifyReport`] with one [`SignatureReport`] per signature — which key, whether it was
//! valid, expired, revoked or missing, and why not — shaped after ostree's
//! `OstreeGpgVerifyResult` attributes so that [`describe_signature`] prints exactly what
//! `ostree show` prints. Plugins never decide policy; core decides which keys are trusted for
//! a remote ([`policy`]), and which verdicts a pull accepts.
//!
//! # Where signatures live
//!
//! * commits: detached metadata (`objects/XX/REST.commitmeta`, `a{sv}`), one `aay` per type:
//!   `ostree.gpgsigs`, `ostree.sign.ed25519`, `ostree.sign.dummy`;
//! * summaries: `summary.sig`, an `a{sv}` with the same keys over the `summary` bytes;
//! * static deltas: the superblock wrapped as `(taya{sv})` (see [`policy::sign_delta_superblock`]).

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dummy;
pub mod policy;

use std::fmt;
use std::path::PathBuf;

use crate::gvariant::{Variant, VariantType};
use crate::objects::Metadata;
use crate::registry::Registry;
use crate::{Error, Result};

/// The detached-metadata key of GPG signatures.
pub const GPG_METADATA_KEY: &str = "ostree.gpgsigs";

/// What a [`Signer`] is built from.
#[derive(Clone, Debug, Default)]
pub struct SignerConfig {
    /// The key: a GPG key ID or fingerprint; an ed25519 secret key (base64 of 64 bytes); the
    /// dummy signature string.
    pub key: String,
    /// GPG: the GnuPG home directory holding the secret key (`--gpg-homedir`); `None` for
    /// `$GNUPGHOME` or `~/.gnupg`.
    pub homedir: Option<PathBuf>,
}

/// What a [`Verifier`] trusts.
#[derive(Clone, Debug, Default)]
pub struct VerifierConfig {
    /// Keys given inline: ed25519 public keys (base64), the dummy string.
    pub keys: Vec<String>,
    /// Key material already read: GPG keyrings (binary or ASCII-armored, concatenated keys).
    pub key_data: Vec<Vec<u8>>,
    /// Key files. ed25519: one base64 public key per line; GPG: keyrings or armored keys.
    /// A file that cannot be read is an error.
    pub key_files: Vec<PathBuf>,
    /// Directories. GPG: every `*.gpg` keyring in them (not `trustdb.gpg`/`secring.gpg`);
    /// ed25519: base directories holding `trusted.ed25519(.d)` and `revoked.ed25519(.d)`,
    /// used (instead of `/etc/ostree` and `/usr/share/ostree`) when no key is given.
    pub key_dirs: Vec<PathBuf>,
    /// ed25519: when no key is given at all, trust the system key files.
    pub system_fallback: bool,
}

/// Signs bytes with one secret key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The signature type (`gpg`, `ed25519`, `dummy`).
    fn name(&self) -> &'static str;
    /// The detached-metadata key its signatures go under.
    fn metadata_key(&self) -> &'static str;
    /// One detached signature over `data`.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>>;
    /// Fingerprints identifying the signing key (GPG: the primary key and the signing
    /// subkey), used to refuse signing twice with one key. Empty when unknown.
    fn fingerprints(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Verifies signatures against a set of trusted keys.
pub trait Verifier: Send + Sync + fmt::Debug {
    /// The signature type (`gpg`, `ed25519`, `dummy`).
    fn name(&self) -> &'static str;
    /// The detached-metadata key its signatures are read from.
    fn metadata_key(&self) -> &'static str;
    /// Check every signature in `signatures` (the elements of the metadata's `aay`) over
    /// `data`. Malformed signatures are reported as invalid, never an error; an error means
    /// the verifier itself could not work (e.g. no usable key at all).
    fn verify(&self, data: &[u8], signatures: &[Vec<u8>]) -> Result<VerifyReport>;
    /// The primary-key fingerprint of a trusted key named by `key_id` (GPG key ID, long ID or
    /// fingerprint), for matching signatures to keys; `None` when no such key is trusted.
    fn lookup_key(&self, key_id: &str) -> Option<String> {
        let _ = key_id;
        None
    }
}

/// One key of a keyring, as `remote gpg-list-keys` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// Primary key fingerprint (upper-case hex).
    pub fingerprint: String,
    /// Creation time (seconds since the epoch).
    pub created: i64,
    /// Expiry time, 0 for none.
    pub expires: i64,
    /// Expired now.
    pub expired: bool,
    /// Revoked.
    pub revoked: bool,
    /// User IDs.
    pub uids: Vec<UidInfo>,
    /// Subkeys.
    pub subkeys: Vec<SubkeyInfo>,
}

/// A user ID of a [`KeyInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UidInfo {
    /// The whole user ID (`Name (comment) <email>`).
    pub uid: String,
    /// The e-mail address part, if any.
    pub email: Option<String>,
    /// Revoked.
    pub revoked: bool,
    /// OpenPGP Web Key Directory URL, advanced method (for a UID with an e-mail address).
    pub advanced_url: Option<String>,
    /// OpenPGP Web Key Directory URL, direct method.
    pub direct_url: Option<String>,
}

/// A subkey of a [`KeyInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubkeyInfo {
    /// Fingerprint (upper-case hex).
    pub fingerprint: String,
    /// Creation time.
    pub created: i64,
    /// Expiry time, 0 for none.
    pub expires: i64,
    /// Expired now.
    pub expired: bool,
    /// Revoked.
    pub revoked: bool,
}

/// Key management for signature types with keyrings (GPG).
pub trait Keyring: Send + Sync + fmt::Debug {
    /// The keys in `data` (a keyring, binary or armored), or only those matching `key_ids`.
    fn list(&self, data: &[u8], key_ids: &[String]) -> Result<Vec<KeyInfo>>;
    /// Merge the keys of `new` (all, or those matching `key_ids`) into the keyring
    /// `existing`: new keys are added, known keys gain new signatures (expiry changes,
    /// revocations). Returns the merged keyring and how many keys were new.
    fn import(&self, existing: &[u8], new: &[u8], key_ids: &[String]) -> Result<(Vec<u8>, usize)>;
}

/// A signature plugin record.
#[derive(Debug)]
pub struct SignerPlugin {
    /// The signature type name (lowercase): `gpg`, `ed25519`, `dummy`.
    pub name: &'static str,
    /// One line for `ostree --version` / listings.
    pub description: &'static str,
    /// The detached-metadata key of its signatures.
    pub metadata_key: &'static str,
    /// Build a signer for one secret key.
    pub signer: fn(&SignerConfig) -> Result<Box<dyn Signer>>,
    /// Build a verifier for a set of trusted keys.
    pub verifier: fn(&VerifierConfig) -> Result<Box<dyn Verifier>>,
    /// Key management, where the type has keyrings.
    pub keyring: Option<fn() -> Box<dyn Keyring>>,
}

inventory::collect!(SignerPlugin);

/// The verdict on one signature. Fields follow ostree's `OstreeGpgSignatureAttr` so that
/// [`describe_signature`] reproduces `ostree_gpg_verify_result_describe`; types without some
/// notion leave it empty or zero.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureReport {
    /// The signature is good and its key usable now.
    pub valid: bool,
    /// The signature itself has expired.
    pub sig_expired: bool,
    /// The signing key (or its primary key) has expired.
    pub key_expired: bool,
    /// The signing key (or its primary key) is revoked.
    pub key_revoked: bool,
    /// No trusted key matches the signature.
    pub key_missing: bool,
    /// Fingerprint of the signing key (GPG: upper-case hex; when the key is missing, what
    /// the signature names: a fingerprint or a 16-digit key ID; ed25519: the public key in
    /// hex).
    pub fingerprint: String,
    /// Fingerprint of the primary key of the signing key (empty when missing).
    pub fingerprint_primary: String,
    /// Signature creation time.
    pub timestamp: i64,
    /// Signature expiry time, 0 for none.
    pub exp_timestamp: i64,
    /// Public key algorithm (`RSA`, `EdDSA`…).
    pub pubkey_algo: String,
    /// Hash algorithm (`SHA256`…).
    pub hash_algo: String,
    /// Name of the key's first user ID (`[unknown name]` when missing).
    pub user_name: String,
    /// E-mail of the key's first user ID (`[unknown email]` when missing).
    pub user_email: String,
    /// Expiry of the signing key, 0 for none.
    pub key_exp_timestamp: i64,
    /// Expiry of the primary key, 0 for none.
    pub key_exp_timestamp_primary: i64,
    /// Why the signature is not valid, in words (empty when valid).
    pub reason: String,
}

/// What a verifier found: one report per signature, and the verifier's own summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The signature type that verified.
    pub kind: String,
    /// One entry per signature, in order.
    pub signatures: Vec<SignatureReport>,
    /// ostree's message for this type: on success e.g. `ed25519: Signature verified
    /// successfully with key '…'`; on failure why (e.g. `ed25519: Signature couldn't be
    /// verified with: key '…'`). Empty for GPG, whose text is [`describe_signature`].
    pub message: String,
}

impl VerifyReport {
    /// Number of valid signatures.
    pub fn count_valid(&self) -> usize {
        self.signatures.iter().filter(|s| s.valid).count()
    }

    /// At least one signature is valid.
    pub fn is_valid(&self) -> bool {
        self.count_valid() > 0
    }

    /// `Ok` when a signature is valid; otherwise [`Error::BadSignature`] with ostree's text
    /// (GPG: every signature described, last first, as
    /// `ostree_gpg_verify_result_require_valid_signature`; other types: their message).
    pub fn require_valid(&self) -> Result<()> {
        if self.is_valid() {
            return Ok(());
        }
        Err(Error::BadSignature(self.failure_text()))
    }

    /// The text of [`VerifyReport::require_valid`]'s error.
    pub fn failure_text(&self) -> String {
        if self.kind == "gpg" || self.message.is_empty() {
            if self.signatures.is_empty() {
                return "No GPG signatures found".into();
            }
            let mut s = String::new();
            for sig in self.signatures.iter().rev() {
                s.push_str(&describe_signature(sig, ""));
            }
            s.trim_end().to_string()
        } else {
            self.message.clone()
        }
    }
}

/// Format a time as `%c` in the C locale and the local time zone (`Tue Sep 10 02:29:42 2013`),
/// as GLib's `g_date_time_format (local, "%c")` does.
pub fn format_local_time(t: i64) -> Option<String> {
    use chrono::TimeZone;
    let utc = chrono::Utc.timestamp_opt(t, 0).single()?;
    let local = utc.with_timezone(&chrono::Local);
    Some(local.format("%a %b %e %H:%M:%S %Y").to_string())
}

fn expire_line(out: &mut String, prefix: &str, what: &str, ts: i64, expired: bool) {
    out.push_str(prefix);
    match format_local_time(ts) {
        Some(d) => out.push_str(&format!(
            "{what} {} {d}\n",
            if expired { "expired" } else { "expires" }
        )),
        None => out.push_str(&format!("{what} expiry timestamp ({ts}) is invalid\n")),
    }
}

fn short_id(fpr: &str) -> &str {
    if fpr.len() > 16 {
        &fpr[fpr.len() - 16..]
    } else {
        fpr
    }
}

/// Describe one signature as `ostree_gpg_verify_result_describe_variant` does, each line
/// starting with `prefix`.
pub fn describe_signature(sig: &SignatureReport, prefix: &str) -> String {
    let mut out = String::new();
    let key_id = short_id(&sig.fingerprint);
    let Some(date) = format_local_time(sig.timestamp) else {
        return format!(
            "Can't check signature: timestamp {} is invalid\n",
            sig.timestamp
        );
    };
    out.push_str(prefix);
    out.push_str(&format!(
        "Signature made {date} using {} key ID {key_id}\n",
        sig.pubkey_algo
    ));
    out.push_str(prefix);
    if sig.key_missing {
        out.push_str("Can't check signature: public key not found\n");
    } else if sig.valid {
        out.push_str(&format!(
            "Good signature from \"{} <{}>\"\n",
            sig.user_name, sig.user_email
        ));
    } else if sig.key_revoked {
        out.push_str("Key revoked\n");
    } else if sig.sig_expired {
        out.push_str(&format!(
            "Expired signature from \"{} <{}>\"\n",
            sig.user_name, sig.user_email
        ));
    } else {
        out.push_str(&format!(
            "BAD signature from \"{} <{}>\"\n",
            sig.user_name, sig.user_email
        ));
    }
    if !sig.key_missing && sig.fingerprint != sig.fingerprint_primary {
        out.push_str(prefix);
        out.push_str(&format!(
            "Primary key ID {}\n",
            short_id(&sig.fingerprint_primary)
        ));
    }
    if sig.exp_timestamp > 0 {
        expire_line(
            &mut out,
            prefix,
            "Signature",
            sig.exp_timestamp,
            sig.sig_expired,
        );
    }
    if sig.key_exp_timestamp > 0 {
        expire_line(
            &mut out,
            prefix,
            "Key",
            sig.key_exp_timestamp,
            sig.key_expired,
        );
    }
    if sig.key_exp_timestamp_primary > 0 && sig.fingerprint != sig.fingerprint_primary {
        expire_line(
            &mut out,
            prefix,
            "Primary key",
            sig.key_exp_timestamp_primary,
            sig.key_expired,
        );
    }
    out
}

/// The `"Found N signature(s):"` block `ostree show` prints for a GPG report.
pub fn describe_report(report: &VerifyReport) -> String {
    let n = report.signatures.len();
    let mut s = format!("Found {n} signature{}:\n", if n == 1 { "" } else { "s" });
    for sig in &report.signatures {
        s.push('\n');
        s.push_str(&describe_signature(sig, "  "));
    }
    s
}

fn aay_type() -> VariantType {
    VariantType::Array(Box::new(VariantType::Array(Box::new(VariantType::Byte))))
}

/// The signatures stored under `key` (an `aay`) in detached metadata; `None` when the key is
/// absent or of another type (as `g_variant_lookup_value` with a type).
pub fn signatures_in(md: &Metadata, key: &str) -> Option<Vec<Vec<u8>>> {
    let v = md.get(key)?;
    match v {
        Variant::Array(t, items) if *t == VariantType::Array(Box::new(VariantType::Byte)) => items
            .iter()
            .map(|i| match i {
                Variant::Bytes(b) => Some(b.clone()),
                Variant::Array(VariantType::Byte, bs) => bs
                    .iter()
                    .map(|b| match b {
                        Variant::Byte(x) => Some(*x),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Store `sigs` under `key` (as an `aay`), or remove the key when `sigs` is empty.
pub fn set_signatures(md: &mut Metadata, key: &str, sigs: &[Vec<u8>]) {
    if sigs.is_empty() {
        md.remove(key);
        return;
    }
    let v = Variant::Array(
        VariantType::Array(Box::new(VariantType::Byte)),
        sigs.iter().map(|s| Variant::Bytes(s.clone())).collect(),
    );
    debug_assert_eq!(v.type_(), aay_type());
    md.insert(key, v);
}

/// Append one signature under `key`, after any already there (`_sign_detached_metadata_append`).
pub fn append_signature(md: &mut Metadata, key: &str, sig: Vec<u8>) {
    let mut sigs = signatures_in(md, key).unwrap_or_default();
    sigs.push(sig);
    set_signatures(md, key, &sigs);
}

/// Parse detached metadata or `summary.sig` leniently: bytes that are not an `a{sv}` hold no
/// signatures (GLib reads such data as an empty dictionary).
pub fn parse_signature_metadata(data: &[u8]) -> Metadata {
    Metadata::from_bytes(data).unwrap_or_default()
}

impl Registry {
    /// Registered signature types, sorted.
    pub fn signer_names(&self) -> Vec<&str> {
        self.signer_plugins().map(|p| p.name).collect()
    }

    /// The plugin for a signature type, or `Requested signature type is not implemented`
    /// (ostree's words) listing the registered ones.
    pub fn signer_plugin(&self, name: &str) -> Result<&'static SignerPlugin> {
        self.signer_plugin_lookup(name)
    }

    /// Build a signer of type `name`.
    pub fn build_signer(&self, name: &str, cfg: &SignerConfig) -> Result<Box<dyn Signer>> {
        (self.signer_plugin(name)?.signer)(cfg)
    }

    /// Build a verifier of type `name`.
    pub fn build_verifier(&self, name: &str, cfg: &VerifierConfig) -> Result<Box<dyn Verifier>> {
        (self.signer_plugin(name)?.verifier)(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_signer(_: &SignerConfig) -> Result<Box<dyn Signer>> {
        Err(Error::Other("test".into()))
    }
    fn no_verifier(_: &VerifierConfig) -> Result<Box<dyn Verifier>> {
        Err(Error::Other("test".into()))
    }
    static X: SignerPlugin = SignerPlugin {
        name: "x",
        description: "X",
        metadata_key: "ostree.sign.x",
        signer: no_signer,
        verifier: no_verifier,
        keyring: None,
    };
    static X2: SignerPlugin = SignerPlugin {
        name: "X",
        description: "X again",
        metadata_key: "ostree.sign.x",
        signer: no_signer,
        verifier: no_verifier,
        keyring: None,
    };

    #[test]
    fn registry_rules() {
        let mut r = Registry::new();
        r.register_signer(&X);
        assert_eq!(r.signer_names(), vec!["x"]);
        let e = r.signer_plugin("nosuchsystem").unwrap_err().to_string();
        assert!(
            e.starts_with("Requested signature type is not implemented"),
            "{e}"
        );
        assert!(e.contains("available: x"), "{e}");
        r.register_signer(&X2);
        assert!(matches!(
            r.signer_plugin("x"),
            Err(Error::DuplicatePlugin { .. })
        ));
        assert!(r.check().is_err());
        fn _object_safe(_: &dyn Signer, _: &dyn Verifier, _: &dyn Keyring) {}
    }

    #[test]
    fn dummy_is_registered_in_core() {
        assert!(Registry::global().signer_plugin("dummy").is_ok());
    }

    #[test]
    fn append_and_read_signatures() {
        let mut md = Metadata::new();
        assert!(signatures_in(&md, GPG_METADATA_KEY).is_none());
        append_signature(&mut md, GPG_METADATA_KEY, vec![1, 2, 3]);
        append_signature(&mut md, GPG_METADATA_KEY, vec![4]);
        let bytes = md.to_bytes();
        let md2 = Metadata::from_bytes(&bytes).unwrap();
        assert_eq!(
            signatures_in(&md2, GPG_METADATA_KEY).unwrap(),
            vec![vec![1, 2, 3], vec![4]]
        );
        set_signatures(&mut md, GPG_METADATA_KEY, &[]);
        assert!(md.is_empty());
        // A key of another type is not signatures.
        md.insert("ostree.gpgsigs", Variant::Str("x".into()));
        assert!(signatures_in(&md, GPG_METADATA_KEY).is_none());
        // Garbage metadata holds nothing.
        assert!(parse_signature_metadata(b"invalid\n").get("x").is_none());
    }

    #[test]
    fn describe_like_ostree() {
        let sig = SignatureReport {
            valid: false,
            key_missing: true,
            fingerprint: "5E65DE75AB1C501862D476347FCA23D8472CDAFA".into(),
            timestamp: 0,
            pubkey_algo: "RSA".into(),
            ..Default::default()
        };
        let d = describe_signature(&sig, "  ");
        assert!(d.contains("using RSA key ID 7FCA23D8472CDAFA\n"), "{d}");
        assert!(d.ends_with("  Can't check signature: public key not found\n"));
        let good = SignatureReport {
            valid: true,
            fingerprint: "AAAA".into(),
            fingerprint_primary: "BBBB".into(),
            user_name: "Test Key 2".into(),
            user_email: String::new(),
            pubkey_algo: "RSA".into(),
            key_exp_timestamp_primary: 10,
            ..Default::default()
        };
        let d = describe_signature(&good, "");
        assert!(d.contains("Good signature from \"Test Key 2 <>\"\nPrimary key ID BBBB\n"));
        assert!(d.contains("Primary key expires "));
        let r = VerifyReport {
            kind: "gpg".into(),
            signatures: vec![sig, good],
            message: String::new(),
        };
        assert!(r.require_valid().is_ok());
        assert!(describe_report(&r).starts_with("Found 2 signatures:\n\n  Signature made"));
        let bad = VerifyReport {
            kind: "gpg".into(),
            signatures: vec![],
            message: String::new(),
        };
        assert_eq!(
            bad.require_valid().unwrap_err().to_string(),
            "No GPG signatures found"
        );
    }
}
