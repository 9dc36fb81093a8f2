//! Authenticated encryption: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM, through ring.
//!
//! The `*_into` functions write into a buffer the caller owns, so a caller sealing many small
//! messages pays for no allocation per message. Ciphertexts are `encrypted ‖ 16-byte tag`.
//! Nonces are the caller's responsibility: a nonce must never repeat under one key (use a
//! counter, as Noise and TLS do).

use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// Length in bytes of every key.
pub const KEY_LEN: usize = 32;
/// Length in bytes of every nonce.
pub const NONCE_LEN: usize = 12;
/// Length in bytes of the authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// An AEAD algorithm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
    /// AES-256 in Galois/Counter Mode.
    Aes256Gcm,
}

impl Algorithm {
    /// Parses the algorithm's stable name: `chacha20-poly1305` or `aes-256-gcm`.
    pub fn from_name(name: &str) -> Result<Self, AeadError> {
        match name {
            "chacha20-poly1305" => Ok(Self::ChaCha20Poly1305),
            "aes-256-gcm" => Ok(Self::Aes256Gcm),
            _ => Err(AeadError::UnknownAlgorithm),
        }
    }

    /// The algorithm's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    fn ring(self) -> &'static aead::Algorithm {
        match self {
            Self::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Self::Aes256Gcm => &aead::AES_256_GCM,
        }
    }
}

/// A key for one AEAD algorithm, with its key schedule computed once.
pub struct Key {
    algorithm: Algorithm,
    inner: LessSafeKey,
}

impl Key {
    /// Builds a key from 32 raw bytes.
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Result<Self, AeadError> {
        if key.len() != KEY_LEN {
            return Err(AeadError::KeyLength);
        }
        let unbound = UnboundKey::new(algorithm.ring(), key).map_err(|_| AeadError::KeyLength)?;
        Ok(Self { algorithm, inner: LessSafeKey::new(unbound) })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Seals `plaintext` into `out`, which must hold at least `plaintext.len() + TAG_LEN`
    /// bytes; returns the ciphertext length.
    pub fn seal_into(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8], out: &mut [u8]) -> Result<usize, AeadError> {
        let nonce = parse_nonce(nonce)?;
        let total = plaintext.len().checked_add(TAG_LEN).ok_or(AeadError::BufferTooSmall)?;
        if out.len() < total {
            return Err(AeadError::BufferTooSmall);
        }
        let (body, rest) = out.split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        let tag = self.inner.seal_in_place_separate_tag(nonce, Aad::from(aad), body).map_err(|_| AeadError::TooLong)?;
        rest[..TAG_LEN].copy_from_slice(tag.as_ref());
        Ok(total)
    }

    /// Opens `ciphertext` (encrypted ‖ tag) into `out`, which must hold at least
    /// `ciphertext.len() - TAG_LEN` bytes; returns the plaintext length.
    ///
    /// On failure nothing of the unauthenticated plaintext is left in `out`.
    pub fn open_into(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, AeadError> {
        let nonce = parse_nonce(nonce)?;
        let body_len = ciphertext.len().checked_sub(TAG_LEN).ok_or(AeadError::Decrypt)?;
        if out.len() < body_len {
            return Err(AeadError::BufferTooSmall);
        }
        let (body, tag) = ciphertext.split_at(body_len);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AeadError::Decrypt)?;
        let target = &mut out[..body_len];
        target.copy_from_slice(body);
        match self.inner.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), target, 0..) {
            Ok(_) => Ok(body_len),
            Err(_) => {
                target.fill(0);
                Err(AeadError::Decrypt)
            }
        }
    }

    /// Seals `plaintext` and returns a new `encrypted ‖ tag` vector.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        self.seal_into(nonce, aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens `ciphertext` and returns the plaintext.
    pub fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut out = vec![0u8; ciphertext.len().saturating_sub(TAG_LEN)];
        let len = self.open_into(nonce, aad, ciphertext, &mut out)?;
        out.truncate(len);
        Ok(out)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("aead::Key").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

fn parse_nonce(nonce: &[u8]) -> Result<Nonce, AeadError> {
    Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::NonceLength)
}

/// Why an AEAD operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadError {
    /// The algorithm name is not one this module knows.
    UnknownAlgorithm,
    /// The key was not 32 bytes.
    KeyLength,
    /// The nonce was not 12 bytes.
    NonceLength,
    /// The output buffer is too small for the result.
    BufferTooSmall,
    /// The message is longer than the algorithm allows under one nonce.
    TooLong,
    /// The ciphertext is not authentic (wrong key, nonce, AAD, tag, or truncated).
    Decrypt,
}

impl std::fmt::Display for AeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownAlgorithm => "unknown AEAD algorithm",
            Self::KeyLength => "AEAD key must be 32 bytes",
            Self::NonceLength => "AEAD nonce must be 12 bytes",
            Self::BufferTooSmall => "output buffer too small",
            Self::TooLong => "message too long",
            Self::Decrypt => "decryption failed",
        })
    }
}

impl std::error::Error for AeadError {}

impl crate::ErrorCode for AeadError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownAlgorithm => "ERR_ALGORITHM",
            Self::KeyLength => "ERR_KEY_LENGTH",
            Self::NonceLength => "ERR_NONCE_LENGTH",
            Self::BufferTooSmall => "ERR_BUFFER_TOO_SMALL",
            Self::TooLong => "ERR_MESSAGE_SIZE",
            Self::Decrypt => "ERR_DECRYPT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGORITHMS: [Algorithm; 2] = [Algorithm::ChaCha20Poly1305, Algorithm::Aes256Gcm];

    #[test]
    fn round_trip_and_tamper_detection() {
        for algorithm in ALGORITHMS {
            let key = Key::new(algorithm, &[7u8; 32]).unwrap();
            let nonce = [1u8; 12];
            let sealed = key.seal(&nonce, b"aad", b"hello").unwrap();
            assert_eq!(sealed.len(), 5 + TAG_LEN);
            assert_eq!(key.open(&nonce, b"aad", &sealed).unwrap(), b"hello");
            assert_eq!(key.open(&nonce, b"aab", &sealed), Err(AeadError::Decrypt));
            assert_eq!(key.open(&[2u8; 12], b"aad", &sealed), Err(AeadError::Decrypt));
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x80;
                assert_eq!(key.open(&nonce, b"aad", &bad), Err(AeadError::Decrypt));
            }
            for len in 0..sealed.len() {
                assert_eq!(key.open(&nonce, b"aad", &sealed[..len]), Err(AeadError::Decrypt));
            }
        }
    }

    #[test]
    fn failed_open_leaves_no_plaintext() {
        let key = Key::new(Algorithm::ChaCha20Poly1305, &[7u8; 32]).unwrap();
        let mut sealed = key.seal(&[0u8; 12], b"", &[0x41u8; 64]).unwrap();
        sealed[70] ^= 1;
        let mut out = [0xffu8; 64];
        assert_eq!(key.open_into(&[0u8; 12], b"", &sealed, &mut out), Err(AeadError::Decrypt));
        assert_eq!(out, [0u8; 64]);
    }

    #[test]
    fn bad_parameters_are_typed_errors() {
        assert_eq!(Algorithm::from_name("rot13").unwrap_err(), AeadError::UnknownAlgorithm);
        assert_eq!(Key::new(Algorithm::Aes256Gcm, &[0u8; 16]).unwrap_err(), AeadError::KeyLength);
        let key = Key::new(Algorithm::Aes256Gcm, &[0u8; 32]).unwrap();
        assert_eq!(key.seal(&[0u8; 8], b"", b"x"), Err(AeadError::NonceLength));
        let mut small = [0u8; 16];
        assert_eq!(key.seal_into(&[0u8; 12], b"", b"x", &mut small), Err(AeadError::BufferTooSmall));
        let sealed = key.seal(&[0u8; 12], b"", b"xyz").unwrap();
        assert_eq!(key.open_into(&[0u8; 12], b"", &sealed, &mut [0u8; 2]), Err(AeadError::BufferTooSmall));
    }
}
