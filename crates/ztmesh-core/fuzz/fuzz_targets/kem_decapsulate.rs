//! X-Wing decapsulation of arbitrary ciphertexts and encapsulation to arbitrary public keys.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::kem::{xwing_encapsulate, XWingSecretKey};

fn key() -> &'static XWingSecretKey {
    static KEY: OnceLock<XWingSecretKey> = OnceLock::new();
    KEY.get_or_init(|| XWingSecretKey::from_seed(&[7u8; 32]).expect("a 32-byte seed is valid"))
}

fuzz_target!(|data: &[u8]| {
    let _ = key().decapsulate(data);
    let _ = xwing_encapsulate(data);
});
