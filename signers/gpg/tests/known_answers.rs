//! Known answers: ostree's own GPG test data (`test-gpg-verify-result.c`), the test keys of
//! its shell tests, and keyring handling.

use std::path::PathBuf;

use ostree_core::sign::{Keyring, Signer, Verifier, VerifierConfig};
use ostree_signer_gpg::{GpgKeyring, GpgSigner, GpgVerifier};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn verifier(files: &[&str]) -> GpgVerifier {
    GpgVerifier::new(&VerifierConfig {
        key_files: files.iter().map(|f| data(f)).collect(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn ostree_verify_result_vectors() {
    let v = verifier(&["gpg-verify-data/pubring.gpg"]);
    let text = std::fs::read(data("gpg-verify-data/lgpl2")).unwrap();
    let sig = std::fs::read(data("gpg-verify-data/lgpl2.sig")).unwrap();
    let r = v.verify(&text, &[sig]).unwrap();
    assert_eq!(r.signatures.len(), 5, "{r:#?}");
    assert_eq!(r.count_valid(), 1);
    let s = &r.signatures;
    // 0: valid
    assert!(s[0].valid && !s[0].key_expired && !s[0].key_revoked && !s[0].key_missing);
    assert_eq!(s[0].key_exp_timestamp, 0);
    assert_eq!(s[0].pubkey_algo, "RSA");
    assert_eq!(s[0].hash_algo, "SHA1");
    assert_eq!(s[0].user_name, "J. Random User");
    assert_eq!(s[0].user_email, "testcase@redhat.com");
    // 1: expired key
    assert!(!s[1].valid && s[1].key_expired && !s[1].key_revoked && !s[1].key_missing);
    assert_eq!(s[1].key_exp_timestamp, 1426782201);
    // 2: revoked key
    assert!(!s[2].valid && !s[2].key_expired && s[2].key_revoked && !s[2].key_missing);
    // 3: missing key
    assert!(!s[3].valid && s[3].key_missing);
    assert_eq!(s[3].user_name, "[unknown name]");
    assert_eq!(s[3].user_email, "[unknown email]");
    // 4: expired signature
    assert!(!s[4].valid && s[4].sig_expired && !s[4].key_expired && !s[4].key_missing);
    // Each alone gives ostree's error words.
    let words = [
        (1, "Key expired"),
        (2, "Key revoked"),
        (3, "public key not found"),
        (4, "Expired signature"),
    ];
    let raw = std::fs::read(data("gpg-verify-data/lgpl2.sig")).unwrap();
    let _ = raw;
    for (i, w) in words {
        let one = ostree_core::sign::VerifyReport {
            kind: "gpg".into(),
            signatures: vec![s[i].clone()],
            message: String::new(),
        };
        let e = one.require_valid().unwrap_err().to_string();
        assert!(e.contains(w), "signature {i}: {e}");
    }
}

#[test]
fn sign_with_legacy_secring_and_verify() {
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(data("gpghome/secring.gpg"), home.path().join("secring.gpg")).unwrap();
    for id in [
        "472CDAFA",
        "7FCA23D8472CDAFA",
        "5E65DE75AB1C501862D476347FCA23D8472CDAFA",
    ] {
        let s = GpgSigner::without_porting(id, Some(home.path())).unwrap();
        assert!(s.is_native());
        let sig = s.sign(b"hello").unwrap();
        let v = verifier(&["gpghome/pubring.gpg"]);
        let r = v.verify(b"hello", std::slice::from_ref(&sig)).unwrap();
        assert!(r.is_valid(), "{r:#?}");
        assert_eq!(r.signatures[0].user_name, "Ostree Tester");
        assert_eq!(
            r.signatures[0].fingerprint_primary,
            "5E65DE75AB1C501862D476347FCA23D8472CDAFA"
        );
        assert!(!v.verify(b"hellO", &[sig]).unwrap().is_valid());
    }
}

#[test]
fn revocation_certificate_import_revokes() {
    let k = GpgKeyring;
    let key1 = std::fs::read(data("gpghome/key1.asc")).unwrap();
    let (ring, n) = k.import(&[], &key1, &[]).unwrap();
    assert_eq!(n, 1);
    let (ring2, n) = k.import(&ring, &key1, &[]).unwrap();
    assert_eq!(n, 0);
    let info = k.list(&ring2, &[]).unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(
        info[0].fingerprint,
        "5E65DE75AB1C501862D476347FCA23D8472CDAFA"
    );
    assert!(!info[0].revoked);
    assert_eq!(info[0].uids[0].uid, "Ostree Tester <test@test.com>");
    assert_eq!(
        info[0].subkeys[0].fingerprint,
        "CC47B2DFB520AEF231180725DF20F58B408DEA49"
    );
    // The revocation certificate is a lone signature packet: gpg merges it into the key.
    let rev = std::fs::read(data("gpghome/revocations/key1.rev")).unwrap();
    let (ring3, n) = k.import(&ring2, &rev, &[]).unwrap();
    assert_eq!(n, 0);
    let info = k.list(&ring3, &[]).unwrap();
    assert!(info[0].revoked, "{info:?}");
    assert!(info[0].uids[0].revoked && info[0].subkeys[0].revoked);
    // Signatures made by a revoked key are reported as such.
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(data("gpghome/secring.gpg"), home.path().join("secring.gpg")).unwrap();
    let sig = GpgSigner::without_porting("472CDAFA", Some(home.path()))
        .unwrap()
        .sign(b"x")
        .unwrap();
    let v = GpgVerifier::new(&VerifierConfig {
        key_data: vec![ring3],
        ..Default::default()
    })
    .unwrap();
    let r = v.verify(b"x", &[sig]).unwrap();
    assert!(!r.is_valid() && r.signatures[0].key_revoked);
    assert!(r.failure_text().contains("Key revoked"));
}

#[test]
fn import_by_key_id() {
    let k = GpgKeyring;
    let ring = std::fs::read(data("gpghome/pubring.gpg")).unwrap();
    let (out, n) = k.import(&[], &ring, &["D8228CFECA950D41".into()]).unwrap();
    assert_eq!(n, 1);
    assert_eq!(k.list(&out, &[]).unwrap().len(), 1);
    assert!(k.import(&[], &ring, &["DEADBEEF".into()]).is_err());
    let (_, n) = k.import(&[], &ring, &[]).unwrap();
    assert_eq!(n, 3);
}

/// Hostile keyrings: truncated, byte-flipped, oversized, armored garbage — never a panic,
/// and a signature never verifies against a keyring that lost the signing key's material.
#[test]
fn mutated_keyrings_never_panic() {
    let ring = std::fs::read(data("gpghome/pubring.gpg")).unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(data("gpghome/secring.gpg"), home.path().join("secring.gpg")).unwrap();
    let sig = GpgSigner::without_porting("472CDAFA", Some(home.path()))
        .unwrap()
        .sign(b"data")
        .unwrap();
    let step = (ring.len() / 97).max(1);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in (0..ring.len()).step_by(step) {
        cases.push(ring[..i].to_vec());
        let mut m = ring.clone();
        m[i] ^= 0xff;
        cases.push(m);
    }
    cases.push([ring.clone(), vec![0xff; 70_000]].concat());
    cases.push(
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"
            .to_vec(),
    );
    for c in &cases {
        let v = GpgVerifier::new(&VerifierConfig {
            key_data: vec![c.clone()],
            ..Default::default()
        })
        .unwrap();
        let r = v.verify(b"data", std::slice::from_ref(&sig)).unwrap();
        if r.is_valid() {
            // Only keyrings that still hold key 1's intact public key material may verify.
            assert!(
                r.signatures[0].fingerprint_primary == "5E65DE75AB1C501862D476347FCA23D8472CDAFA"
            );
        }
        let _ = GpgKeyring.list(c, &[]);
        let _ = GpgKeyring.import(&ring, c, &[]);
    }
}

/// A GnuPG 1 home signed from natively is left as the real ostree (GPGME) leaves it: ported
/// to GnuPG ≥ 2.1, so `gpg` itself then finds the secret keys (`--quick-set-expire` in
/// ostree's test-remote-gpg-import.sh). Skipped without an installed `gpg`.
#[test]
fn native_signing_ports_a_gnupg1_home() {
    use std::process::Command;
    let gpg_ok = Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !gpg_ok {
        eprintln!("skipped: no gpg");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    for f in ["secring.gpg", "pubring.gpg"] {
        std::fs::copy(data(&format!("gpghome/{f}")), home.path().join(f)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let untouched = GpgSigner::without_porting("7FCA23D8472CDAFA", Some(home.path())).unwrap();
    assert!(untouched.is_native());
    assert!(ostree_signer_gpg::needs_secring_port(home.path()));
    let s = GpgSigner::new("7FCA23D8472CDAFA", Some(home.path())).unwrap();
    assert!(s.is_native());
    let sig = s.sign(b"hello").unwrap();
    let r = verifier(&["gpghome/pubring.gpg"])
        .verify(b"hello", &[sig])
        .unwrap();
    assert!(r.is_valid());
    assert!(!ostree_signer_gpg::needs_secring_port(home.path()));
    let expire = Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--quick-set-expire"])
        .arg("5E65DE75AB1C501862D476347FCA23D8472CDAFA")
        .arg("seconds=0")
        .output()
        .unwrap();
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home.path())
        .args(["--kill", "gpg-agent"])
        .status();
    assert!(
        expire.status.success(),
        "{}",
        String::from_utf8_lossy(&expire.stderr)
    );
}
