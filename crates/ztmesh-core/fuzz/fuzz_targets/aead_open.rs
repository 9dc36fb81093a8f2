//! AEAD open and batch open on arbitrary ciphertexts, nonces, AAD and batch lengths: only `Ok`
//! or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::aead::{Algorithm, Key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let algorithm = if selector & 1 == 0 { Algorithm::ChaCha20Poly1305 } else { Algorithm::Aes256Gcm };
    let Ok(key) = Key::new(algorithm, &[0x42; 32]) else { return };
    let nonce_len = usize::from(selector >> 1) % 16;
    let (nonce, rest) = rest.split_at(nonce_len.min(rest.len()));
    let aad_len = rest.first().map_or(0, |b| usize::from(*b) % 32);
    let rest = rest.get(1..).unwrap_or_default();
    let (aad, ciphertext) = rest.split_at(aad_len.min(rest.len()));
    if let Ok(plaintext) = key.open(nonce, aad, ciphertext) {
        // Anything that opens must re-seal to the same bytes.
        assert_eq!(key.seal(nonce, aad, &plaintext).ok().as_deref(), Some(ciphertext));
    }
    // The same bytes as a batch: lengths taken from the AAD, one nonce per message from the
    // start of the ciphertext.
    let lengths: Vec<u32> = aad.chunks(2).map(|c| u32::from(c[0]) + (u32::from(*c.get(1).unwrap_or(&0)) << 8)).collect();
    let (nonces, sealed) = ciphertext.split_at((lengths.len() * 12).min(ciphertext.len()));
    let mut out = vec![0u8; sealed.len()];
    if let Ok(written) = key.open_batch(nonces, b"", sealed, &lengths, &mut out) {
        let mut again = vec![0u8; sealed.len()];
        assert_eq!(key.seal_batch(nonces, b"", &out[..written], &lengths, &mut again), Ok(sealed.len()));
        assert_eq!(again, sealed);
    }
});
