//! Byte-exact agreement with libsodium: signatures made by PyNaCl 1.6.2 (libsodium's
//! `crypto_sign_detached`), with secret keys in its 64-byte layout, reproduced and verified
//! here. Regenerate with: `seed = sha256(b"seed%d" % i)`, `SigningKey(seed).sign(msg)`.

use ostree_core::sign::{Signer, Verifier, VerifierConfig};
use ostree_signer_ed25519::{Ed25519Signer, Ed25519Verifier, public_key_of};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn pynacl_signatures_byte_identical() {
    let messages: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"ostree".to_vec(),
        (0u8..=255).collect(),
        vec![b'x'; 1000],
        unhex("9505cacb7c710ed17125fcc6cb3669e8ddca6c8cd8af6a31f6b3cd64604c3098"),
    ];
    let vectors = [
        (
            "KFVP/azOvX7LnzE6cuJy4n/j8sex0Vscan31o2F2ndiPgDOO73M+xnxgE0nEqCUTk7KN63Is/QqRkHdEom09qw==",
            "dad88d9f735434282a6cc50924f71eb03f10acd0f4ea598f0c7f0842c74327ed62c52f2408c0ce65212c7153739ba3957eefbd11f63cc2968c04700bdb33370c",
        ),
        (
            "357PTHnlrXdwHPyIwZZjKzUxSdhYEKOB9Gn4/AXcG5LMGYNGlIZBjNZtzchmRnfCY0h7c2hAz9FTLhRDhvp2EA==",
            "588985eb7d98bd7d2465daae012b3459ce9ce237ff518c13cfb34b50271041bdd0ad4fb9ce0003da602859b15766f438553277eec19a07dc3c3df0b1e85ef10e",
        ),
        (
            "NbD60WdYtYEk858A0mBhcEUUvk45weA7eyNTSv1ggeOIFmYX+RvBRbJDwq5uEIjxIIvxcxHMp02/Ay/uJbIZ4A==",
            "546408c666d753e3ab33e25e6f696727bee727fa355325838a9aa500c52f06a5e5e190d267cb9a47de5255805edc1699c346bf560f37b3f7b34c857faa546606",
        ),
        (
            "ueHpsGjJSvASnSD3daOV5OCrKM0gJvRe6gghtyv1jZNvl0BJR6ADEXhXhSF7F1mwAsuuFtom4IAfDcvk4A1fRQ==",
            "1599af95573f45dc0dc159894afbe294ce4a3b12e1da0c1121138e4fedfdd5472546c192ad6ecdd5ea405564f1ead79c7e0081193c44e18544431dfe7433e806",
        ),
        (
            "E+XICiy3WUUVE9gPeUTx/Zea9T+V7+6vjez8nGZIHav7eoWJy+WUJ7LpyRpQkb9DzyCA8dTxlHrw0hTKglB28A==",
            "ca1617b31f9ec5c630d355022b8120976dcfb3896e246a6d9ca6ec206bb8a20c729706a5cf54e2d93235a9bafca5658ee02901ee7adec6fac680f819c0dfc400",
        ),
    ];
    for ((secret, sig_hex), msg) in vectors.iter().zip(&messages) {
        let sig = Ed25519Signer::new(secret).unwrap().sign(msg).unwrap();
        assert_eq!(hex(&sig), *sig_hex, "signature differs from libsodium's");
        let v = Ed25519Verifier::new(&VerifierConfig {
            keys: vec![public_key_of(secret).unwrap()],
            ..Default::default()
        })
        .unwrap();
        assert!(v.verify(msg, &[unhex(sig_hex)]).unwrap().is_valid());
    }
}
