//! X-Wing decapsulation of arbitrary ciphertexts and encapsulation to arbitrary public keys.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::kem::{xwing_encapsulate, XWingSecretKey, XWING_CIPHERTEXT_LEN, XWING_PUBLIC_KEY_LEN};

fn key() -> &'static XWingSecretKey {
    static KEY: OnceLock<XWingSecretKey> = OnceLock::new();
    KEY.get_or_init(|| XWingSecretKey::from_seed(&[7u8; 32]).expect("a 32-byte seed is valid"))
}

/// `data` repeated or cut to exactly `len` bytes, so that most inputs reach the deep paths.
fn fitted(data: &[u8], len: usize) -> Vec<u8> {
    if data.is_empty() {
        return vec![0; len];
    }
    data.iter().copied().cycle().take(len).collect()
}

fuzz_target!(|data: &[u8]| {
    // As given: wrong lengths must be typed errors.
    let _ = key().decapsulate(data);
    let _ = xwing_encapsulate(data);
    // Fitted to the exact sizes: garbage ciphertexts decapsulate to some secret (implicit
    // rejection) or a typed error; garbage public keys fail validation or encapsulate.
    let _ = key().decapsulate(&fitted(data, XWING_CIPHERTEXT_LEN));
    let _ = xwing_encapsulate(&fitted(data, XWING_PUBLIC_KEY_LEN));
});
