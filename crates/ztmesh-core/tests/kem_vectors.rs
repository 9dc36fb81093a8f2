//! X-Wing known-answer tests from draft-connolly-cfrg-xwing-kem-06 (`spec/test-vectors.json`
//! of the draft's repository). Each vector fixes the key seed and the encapsulation seed.

use serde::Deserialize;
use ztmesh_core::kem::{self, XWingSecretKey};

#[derive(Deserialize)]
struct Vector {
    seed: String,
    eseed: String,
    ss: String,
    sk: String,
    pk: String,
    ct: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector file holds hex")
}

#[test]
fn xwing_draft_vectors() {
    let vectors: Vec<Vector> = serde_json::from_str(include_str!("vectors/xwing_draft06.json")).expect("vector file");
    assert!(vectors.len() >= 3);
    for (i, v) in vectors.iter().enumerate() {
        // Key generation draws exactly the 32-byte seed.
        assert_eq!(unhex(&v.sk), unhex(&v.seed)[..32], "vector {i}: sk is the seed");
        let key = XWingSecretKey::from_seed(&unhex(&v.sk)).expect("seed");
        assert_eq!(key.public_key().as_slice(), unhex(&v.pk), "vector {i}: public key");
        let eseed: [u8; 64] = unhex(&v.eseed)[..64].try_into().expect("eseed");
        let (ct, ss) =
            kem::xwing_encapsulate_deterministic_for_testing_only(key.public_key(), &eseed).expect("encapsulate");
        assert_eq!(ct, unhex(&v.ct), "vector {i}: ciphertext");
        assert_eq!(ss.as_slice(), unhex(&v.ss), "vector {i}: shared secret (encapsulate)");
        assert_eq!(
            key.decapsulate(&ct).expect("decapsulate").as_slice(),
            unhex(&v.ss),
            "vector {i}: shared secret (decapsulate)"
        );
    }
}
