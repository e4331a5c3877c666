//! GPG signing from a GnuPG home directory.
//!
//! Secret keys are found in two places, tried in order:
//!
//! 1. the legacy secret keyring `secring.gpg` (GnuPG 1, and the keys of ostree's test suite):
//!    read and used in pure Rust when the key is not passphrase-protected;
//! 2. otherwise the keys GnuPG ≥ 2.1 keeps in `private-keys-v1.d/` behind `gpg-agent`
//!    (S-expressions, usually protected): those are used through the installed `gpg`
//!    (`gpg --detach-sign`), which talks to the agent — the only party allowed to unlock them.
//!
//! Either way the signature is a binary, detached v4 OpenPGP signature over the exact bytes,
//! made by the newest usable signing subkey of the named key, else its primary key (GnuPG's
//! choice when given a key ID without `!`).
//!
//! The home is left as the real ostree leaves it. ostree signs through GPGME, whose first
//! `gpg --list-secret-keys` in a GnuPG 1 home makes GnuPG ≥ 2.1 port `secring.gpg` into its
//! agent (`private-keys-v1.d/`, marker `.gpg-v21-migrated`). Scripts rely on that: after
//! `ostree commit --gpg-sign`, `gpg --quick-set-expire` on the same home must find the
//! secret key — and GnuPG ≥ 2.1 never reads `secring.gpg` itself outside that port. So when
//! signing natively from a home that has not been ported, [`GpgSigner::new`] runs that one
//! listing too (once per home: the marker stops it; a missing `gpg` or a read-only home is no
//! error, the signature does not depend on it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ostree_core::sign::{Signer, SignerConfig};
use ostree_core::{Error, Result};
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey, Timestamp};

use crate::keyring::{Cert, KeyPacket, SubkeyPacket, guard, hex_upper, parse_keyring};
use crate::verify::now;
use crate::{METADATA_KEY, NAME};

/// `$GNUPGHOME`, else `~/.gnupg`.
pub fn default_homedir() -> PathBuf {
    if let Some(h) = std::env::var_os("GNUPGHOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".gnupg")
}

#[derive(Debug)]
enum Backend {
    /// Sign in-process with this certificate's key (`None`: primary; `Some(i)`: subkey i).
    Native {
        cert: Box<Cert>,
        subkey: Option<usize>,
    },
    /// Sign through the `gpg` program.
    Program,
}

/// Signs with one GPG key of a GnuPG home directory.
#[derive(Debug)]
pub struct GpgSigner {
    key_id: String,
    homedir: PathBuf,
    backend: Backend,
    fingerprints: Vec<String>,
}

fn plain(s: &pgp::types::SecretParams) -> bool {
    !s.is_encrypted()
}

fn signing_choice(cert: &Cert) -> Option<Option<usize>> {
    let now = now();
    let mut best: Option<(usize, i64)> = None;
    for (i, k) in cert.subkeys.iter().enumerate() {
        let SubkeyPacket::Secret(s) = &k.key else {
            continue;
        };
        if !plain(s.secret_params()) {
            continue;
        }
        let st = cert.subkey_state(k);
        if !st.bound || !st.can_sign || st.revoked || st.expired(now) {
            continue;
        }
        if best.is_none_or(|(_, c)| st.created >= c) {
            best = Some((i, st.created));
        }
    }
    if let Some((i, _)) = best {
        return Some(Some(i));
    }
    match &cert.primary {
        KeyPacket::Secret(s) if plain(s.secret_params()) && cert.primary_state().can_sign => {
            Some(None)
        }
        _ => None,
    }
}

/// Whether GnuPG ≥ 2.1 has yet to port `homedir`'s legacy `secring.gpg` into its agent.
pub fn needs_secring_port(homedir: &Path) -> bool {
    homedir.join("secring.gpg").is_file() && !homedir.join(".gpg-v21-migrated").exists()
}

/// Let the installed `gpg` port `homedir`'s legacy `secring.gpg` into its agent, as GPGME's
/// secret-key listing does for the real ostree (see the module documentation). Best effort:
/// returns whether `gpg` ran and succeeded.
pub fn port_legacy_secring(homedir: &Path) -> bool {
    run_gpg(homedir, &["--with-colons", "--list-secret-keys"], None).is_ok()
}

impl GpgSigner {
    /// A signer for `key_id` in `homedir` (default: [`default_homedir`]). Like the real
    /// ostree, this may leave the home ported to GnuPG ≥ 2.1 (see the module documentation);
    /// [`GpgSigner::without_porting`] never touches it.
    pub fn new(key_id: &str, homedir: Option<&Path>) -> Result<Self> {
        let s = Self::without_porting(key_id, homedir)?;
        if s.is_native() && needs_secring_port(&s.homedir) {
            port_legacy_secring(&s.homedir);
        }
        Ok(s)
    }

    /// [`GpgSigner::new`] without ever running `gpg` for a home signed from natively: the
    /// home is only read (a read-only or shared home, test data).
    pub fn without_porting(key_id: &str, homedir: Option<&Path>) -> Result<Self> {
        let homedir = homedir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_homedir);
        let secring = homedir.join("secring.gpg");
        if let Ok(data) = std::fs::read(&secring) {
            let certs: Vec<Cert> = parse_keyring(&data)
                .into_iter()
                .filter(|c| c.matches(key_id))
                .collect();
            if certs.len() > 1 {
                return Err(Error::Other(format!(
                    "gpg key id {key_id} ambiguous (homedir: {}). Try the fingerprint instead",
                    homedir.display()
                )));
            }
            if let Some(cert) = certs.into_iter().next()
                && let Some(subkey) = signing_choice(&cert)
            {
                let mut fingerprints = vec![cert.fingerprint()];
                if let Some(i) = subkey {
                    fingerprints.push(hex_upper(
                        cert.subkeys[i].key.public().fingerprint().as_bytes(),
                    ));
                }
                return Ok(GpgSigner {
                    key_id: key_id.to_string(),
                    homedir,
                    backend: Backend::Native {
                        cert: Box::new(cert),
                        subkey,
                    },
                    fingerprints,
                });
            }
        }
        let fingerprints = program_fingerprints(key_id, &homedir)?;
        Ok(GpgSigner {
            key_id: key_id.to_string(),
            homedir,
            backend: Backend::Program,
            fingerprints,
        })
    }

    /// Signed in-process (not through `gpg`).
    pub fn is_native(&self) -> bool {
        matches!(self.backend, Backend::Native { .. })
    }
}

fn sign_with(key: &impl SigningKey, data: &[u8]) -> Result<Vec<u8>> {
    let err = |e: pgp::errors::Error| Error::Other(format!("Failure signing commit file: {e}"));
    let mut cfg = SignatureConfig::v4(SignatureType::Binary, key.algorithm(), key.hash_alg());
    cfg.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).map_err(err)?,
        Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).map_err(err)?,
    ];
    cfg.unhashed_subpackets =
        vec![Subpacket::regular(SubpacketData::IssuerKeyId(key.legacy_key_id())).map_err(err)?];
    let sig = cfg.sign(key, &Password::empty(), data).map_err(err)?;
    let packet = pgp::packet::Packet::Signature(sig);
    packet.to_bytes().map_err(err)
}

fn gpg_program() -> String {
    std::env::var("OSTREE_GPG_PROGRAM").unwrap_or_else(|_| "gpg".into())
}

fn run_gpg(homedir: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut child = Command::new(gpg_program())
        .arg("--homedir")
        .arg(homedir)
        .args(["--batch", "--no-tty", "--no-greeting", "--quiet"])
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("running {}", gpg_program()), e))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(data)
            .map_err(|e| Error::io("writing to gpg", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for gpg", e))?;
    if !out.status.success() {
        return Err(Error::Other(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(out.stdout)
}

/// The fingerprints (`fpr` records) of the secret key `key_id` as the `gpg` program lists
/// them; "No gpg key found" when it has none.
fn program_fingerprints(key_id: &str, homedir: &Path) -> Result<Vec<String>> {
    let not_found = || {
        Error::not_found(format!(
            "No gpg key found with ID {key_id} (homedir: {})",
            homedir.display()
        ))
    };
    let out = run_gpg(
        homedir,
        &["--with-colons", "--list-secret-keys", "--", key_id],
        None,
    )
    .map_err(|_| not_found())?;
    let text = String::from_utf8_lossy(&out);
    let n_keys = text.lines().filter(|l| l.starts_with("sec:")).count();
    if n_keys > 1 {
        return Err(Error::Other(format!(
            "gpg key id {key_id} ambiguous (homedir: {}). Try the fingerprint instead",
            homedir.display()
        )));
    }
    let fprs: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("fpr:"))
        .filter_map(|l| l.split(':').nth(9).map(str::to_string))
        .filter(|f| !f.is_empty())
        .collect();
    if fprs.is_empty() {
        return Err(not_found());
    }
    Ok(fprs)
}

impl Signer for GpgSigner {
    fn name(&self) -> &'static str {
        NAME
    }
    fn metadata_key(&self) -> &'static str {
        METADATA_KEY
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        match &self.backend {
            Backend::Native { cert, subkey } => {
                let r = match subkey {
                    Some(i) => match &cert.subkeys[*i].key {
                        SubkeyPacket::Secret(s) => guard(|| sign_with(s.as_ref(), data)),
                        SubkeyPacket::Public(_) => None,
                    },
                    None => match &cert.primary {
                        KeyPacket::Secret(s) => guard(|| sign_with(s.as_ref(), data)),
                        KeyPacket::Public(_) => None,
                    },
                };
                r.unwrap_or_else(|| Err(Error::Other("Failure signing commit file".into())))
            }
            Backend::Program => run_gpg(
                &self.homedir,
                &[
                    "--detach-sign",
                    "--local-user",
                    &self.key_id,
                    "--output",
                    "-",
                ],
                Some(data),
            )
            .map_err(|e| Error::Other(format!("Failure signing commit file: {e}"))),
        }
    }
    fn fingerprints(&self) -> Vec<String> {
        self.fingerprints.clone()
    }
}

/// Build a signer from a [`SignerConfig`] (`key` = key ID, `homedir`).
pub fn build(cfg: &SignerConfig) -> Result<GpgSigner> {
    GpgSigner::new(&cfg.key, cfg.homedir.as_deref())
}
