//! Authenticated encryption: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM, through aws-lc-rs.
//!
//! aws-lc-rs rather than ring: its fused ChaCha20-Poly1305 assembly seals 16 KiB about 1.8x faster
//! than ring on this CPU (7 µs against 12.6 µs); the API is the same.
//!
//! The `*_into` functions write into a buffer the caller owns, so a caller sealing many small
//! messages pays for no allocation per message. Ciphertexts are `encrypted ‖ 16-byte tag`.
//! Nonces are the caller's responsibility: a nonce must never repeat under one key (use a
//! counter, as Noise and TLS do).

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

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

    fn aws_lc(self) -> &'static aead::Algorithm {
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
        let unbound = UnboundKey::new(algorithm.aws_lc(), key).map_err(|_| AeadError::KeyLength)?;
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
        self.inner
            .seal_out_of_place_scatter(nonce, Aad::from(aad), plaintext, body, &[], &mut rest[..TAG_LEN])
            .map_err(|_| AeadError::TooLong)?;
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
        let target = &mut out[..body_len];
        match self.inner.open_separate_gather(nonce, Aad::from(aad), body, tag, target) {
            Ok(()) => Ok(body_len),
            Err(_) => {
                target.fill(0);
                Err(AeadError::Decrypt)
            }
        }
    }

    /// Seals many messages in one call: message `i` is `lengths[i]` bytes of `plaintexts` (laid
    /// out back to back) sealed under `nonces[12 i .. 12 i + 12]` with the shared `aad`, and its
    /// `encrypted ‖ tag` goes to `out` back to back. Returns the bytes written.
    ///
    /// Everything is checked before anything is sealed, so on error `out` is untouched.
    pub fn seal_batch(
        &self,
        nonces: &[u8],
        aad: &[u8],
        plaintexts: &[u8],
        lengths: &[u32],
        out: &mut [u8],
    ) -> Result<usize, AeadError> {
        let sealed_len = batch_layout(nonces, plaintexts, lengths)?;
        if out.len() < sealed_len {
            return Err(AeadError::BufferTooSmall);
        }
        let (mut input, mut output) = (plaintexts, &mut out[..]);
        for (nonce, &len) in nonces.chunks_exact(NONCE_LEN).zip(lengths) {
            let (message, rest_in) = input.split_at(len as usize);
            let (sealed, rest_out) = output.split_at_mut(message.len() + TAG_LEN);
            self.seal_into(nonce, aad, message, sealed)?;
            (input, output) = (rest_in, rest_out);
        }
        Ok(sealed_len)
    }

    /// Opens a batch made by [`Key::seal_batch`]: `lengths[i]` is the plaintext length of
    /// message `i`, whose `encrypted ‖ tag` lies back to back in `ciphertexts`. Returns the
    /// plaintext bytes written to `out`. All or nothing: if any message is not authentic, `out`
    /// is zeroed and the result is [`AeadError::Decrypt`].
    pub fn open_batch(
        &self,
        nonces: &[u8],
        aad: &[u8],
        ciphertexts: &[u8],
        lengths: &[u32],
        out: &mut [u8],
    ) -> Result<usize, AeadError> {
        let plain_len = batch_plain_len(nonces, lengths)?;
        let sealed_len = plain_len.checked_add(lengths.len() * TAG_LEN).ok_or(AeadError::TooLong)?;
        if ciphertexts.len() != sealed_len {
            return Err(AeadError::Decrypt);
        }
        if out.len() < plain_len {
            return Err(AeadError::BufferTooSmall);
        }
        let (mut input, mut output) = (ciphertexts, &mut out[..plain_len]);
        for (nonce, &len) in nonces.chunks_exact(NONCE_LEN).zip(lengths) {
            let (sealed, rest_in) = input.split_at(len as usize + TAG_LEN);
            let (message, rest_out) = output.split_at_mut(len as usize);
            if let Err(error) = self.open_into(nonce, aad, sealed, message) {
                out[..plain_len].fill(0);
                return Err(error);
            }
            (input, output) = (rest_in, rest_out);
        }
        Ok(plain_len)
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

/// Checks a batch's shape and returns the total sealed length.
fn batch_layout(nonces: &[u8], plaintexts: &[u8], lengths: &[u32]) -> Result<usize, AeadError> {
    let plain_len = batch_plain_len(nonces, lengths)?;
    if plain_len != plaintexts.len() {
        return Err(AeadError::BatchLayout);
    }
    plain_len.checked_add(lengths.len() * TAG_LEN).ok_or(AeadError::TooLong)
}

/// Checks that there is one nonce per message and returns the sum of the message lengths.
fn batch_plain_len(nonces: &[u8], lengths: &[u32]) -> Result<usize, AeadError> {
    if nonces.len() != lengths.len() * NONCE_LEN {
        return Err(AeadError::NonceLength);
    }
    lengths.iter().try_fold(0usize, |sum, &len| sum.checked_add(len as usize)).ok_or(AeadError::TooLong)
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
    /// A batch's message lengths do not add up to its input.
    BatchLayout,
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
            Self::BatchLayout => "batch lengths do not match the input",
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
            Self::BatchLayout => "ERR_BATCH_LAYOUT",
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

    #[test]
    fn rfc8439_section_2_8_2_vector() {
        let key: Vec<u8> = (0x80..=0x9f).collect();
        let nonce = hex("070000004041424344454647");
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = Key::new(Algorithm::ChaCha20Poly1305, &key).unwrap().seal(&nonce, &aad, plaintext).unwrap();
        assert_eq!(sealed[..16], hex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        assert_eq!(sealed[sealed.len() - 16..], hex("1ae10b594f09e26a7e902ecbd0600691")[..]);
    }

    /// The GCM specification's test case 16 (AES-256, 60-byte plaintext, 20-byte AAD).
    #[test]
    fn gcm_spec_test_case_16() {
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let nonce = hex("cafebabefacedbaddecaf888");
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let sealed = Key::new(Algorithm::Aes256Gcm, &key).unwrap().seal(&nonce, &aad, &plaintext).unwrap();
        let expected = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b");
        assert_eq!(sealed, expected);
    }

    #[test]
    fn batch_matches_single_calls_and_is_all_or_nothing() {
        for algorithm in ALGORITHMS {
            let key = Key::new(algorithm, &[9u8; 32]).unwrap();
            let lengths = [0u32, 1, 64, 17, 300];
            let plaintexts: Vec<u8> = (0..lengths.iter().sum::<u32>()).map(|i| i as u8).collect();
            let nonces: Vec<u8> = (0..lengths.len() * NONCE_LEN).map(|i| (i * 7) as u8).collect();
            let mut sealed = vec![0u8; plaintexts.len() + lengths.len() * TAG_LEN + 5];
            let written = key.seal_batch(&nonces, b"ad", &plaintexts, &lengths, &mut sealed).unwrap();
            assert_eq!(written, plaintexts.len() + lengths.len() * TAG_LEN);
            let (mut at, mut from) = (0, 0);
            for (i, &len) in lengths.iter().enumerate() {
                let len = len as usize;
                let single = key.seal(&nonces[i * 12..i * 12 + 12], b"ad", &plaintexts[from..from + len]).unwrap();
                assert_eq!(sealed[at..at + len + TAG_LEN], single[..]);
                (at, from) = (at + len + TAG_LEN, from + len);
            }
            let mut opened = vec![0u8; plaintexts.len()];
            assert_eq!(key.open_batch(&nonces, b"ad", &sealed[..written], &lengths, &mut opened), Ok(plaintexts.len()));
            assert_eq!(opened, plaintexts);
            sealed[written - 1] ^= 1;
            assert_eq!(
                key.open_batch(&nonces, b"ad", &sealed[..written], &lengths, &mut opened),
                Err(AeadError::Decrypt)
            );
            assert!(opened.iter().all(|&b| b == 0), "a failed batch open leaves no plaintext");
        }
    }

    #[test]
    fn malformed_batches_are_typed_errors_and_leave_out_untouched() {
        let key = Key::new(Algorithm::ChaCha20Poly1305, &[1u8; 32]).unwrap();
        let mut out = [0xaau8; 64];
        assert_eq!(key.seal_batch(&[0; 12], b"", &[0; 10], &[11], &mut out), Err(AeadError::BatchLayout));
        assert_eq!(key.seal_batch(&[0; 11], b"", &[0; 10], &[10], &mut out), Err(AeadError::NonceLength));
        assert_eq!(key.seal_batch(&[0; 24], b"", &[0; 40], &[20, 20], &mut out), Err(AeadError::BufferTooSmall));
        assert_eq!(key.seal_batch(&[0; 24], b"", &[], &[u32::MAX, u32::MAX], &mut out), Err(AeadError::BatchLayout));
        assert!(out.iter().all(|&b| b == 0xaa));
        assert_eq!(key.open_batch(&[0; 12], b"", &[0; 15], &[0], &mut out), Err(AeadError::Decrypt));
        assert_eq!(key.open_batch(&[0; 12], b"", &[0; 16], &[0], &mut out), Err(AeadError::Decrypt));
        assert_eq!(key.seal_batch(&[], b"", &[], &[], &mut []), Ok(0));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }
}
