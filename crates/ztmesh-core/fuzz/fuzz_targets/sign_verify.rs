//! Signature verification on arbitrary keys, messages and signatures: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::sign::{verify, verify_batch, Algorithm, BatchItem};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let algorithm = if selector & 1 == 0 { Algorithm::Ed25519 } else { Algorithm::EcdsaP256Sha256 };
    let key_len = if algorithm == Algorithm::Ed25519 { 32 } else { 65 };
    let (public_key, rest) = rest.split_at(key_len.min(rest.len()));
    let sig_len = usize::from(selector >> 1).min(rest.len());
    let (signature, message) = rest.split_at(sig_len);
    let single = verify(algorithm, public_key, message, signature).is_ok();
    let batch = verify_batch(&[BatchItem { algorithm, public_key, message, signature }]);
    assert_eq!(batch, vec![single]);
});
