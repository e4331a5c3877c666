//! The signer conformance suite of `ostree-core`, over ed25519 keys.

use ostree_core::sign::VerifierConfig;
use ostree_core::sign::conformance::SignerFixture;
use ostree_signer_ed25519::{Ed25519Signer, Ed25519Verifier, base64_encode, public_key_of};

fn secret(seed: u8) -> String {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let mut b = sk.to_bytes().to_vec();
    b.extend_from_slice(sk.verifying_key().as_bytes());
    base64_encode(&b)
}

fn fixture() -> SignerFixture {
    let a = secret(1);
    let b = secret(2);
    let trust = |k: &str| {
        Box::new(
            Ed25519Verifier::new(&VerifierConfig {
                keys: vec![public_key_of(k).unwrap()],
                ..Default::default()
            })
            .unwrap(),
        )
    };
    SignerFixture {
        signer: Box::new(Ed25519Signer::new(&a).unwrap()),
        verifier: trust(&a),
        wrong: trust(&b),
    }
}

ostree_core::signer_conformance_tests!(|| fixture());
