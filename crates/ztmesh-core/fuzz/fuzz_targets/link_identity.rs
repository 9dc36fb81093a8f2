//! Feeds arbitrary bytes to the decoder of a link identity (the certificate chain and binding
//! signature carried in message 3's payload and in the confirmation).
//!
//! `link_handshake` cannot reach this decoder: Noise hands a payload over only once it decrypts
//! under the session's keys, which a fuzzer never produces. Nothing may panic; a refusal must be
//! `LinkError::Identity`; an accepted payload must be exactly what the encoder writes for the
//! chain and signature it decoded to, followed by zero padding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::link::{decode_identity_for_fuzzing, encode_identity_for_fuzzing, LinkError};

fuzz_target!(|data: &[u8]| {
    match decode_identity_for_fuzzing(data) {
        Err(error) => assert_eq!(error, LinkError::Identity, "a refusal is typed"),
        Ok((chain, signature)) => {
            assert!((1..=3).contains(&chain.len()));
            let owned: Vec<Vec<u8>> = chain.iter().map(|cert| cert.to_vec()).collect();
            let encoded = encode_identity_for_fuzzing(&owned, signature).expect("a decoded identity encodes");
            assert!(data.starts_with(&encoded), "the fields decode to what they encode");
            assert!(data[encoded.len()..].iter().all(|byte| *byte == 0), "only zero padding follows");
        }
    }
});
