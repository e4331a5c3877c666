//! The signer conformance suite of `ostree-core`, over ostree's test keys (signing in pure
//! Rust from the legacy `secring.gpg`).

use std::path::PathBuf;

use ostree_core::sign::Keyring;
use ostree_core::sign::conformance::SignerFixture;
use ostree_signer_gpg::{GpgKeyring, GpgSigner, GpgVerifier, keyring};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn trusting(key_id: &str) -> Box<GpgVerifier> {
    let ring = std::fs::read(data("gpghome/pubring.gpg")).unwrap();
    let (one, _) = GpgKeyring.import(&[], &ring, &[key_id.into()]).unwrap();
    Box::new(GpgVerifier::from_certs(keyring::parse_keyring(&one)))
}

fn fixture() -> SignerFixture {
    let home = data("gpghome");
    SignerFixture {
        signer: Box::new(GpgSigner::without_porting("7FCA23D8472CDAFA", Some(&home)).unwrap()),
        verifier: trusting("7FCA23D8472CDAFA"),
        wrong: trusting("D8228CFECA950D41"),
    }
}

ostree_core::signer_conformance_tests!(|| fixture());
