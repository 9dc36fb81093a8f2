//! Digital signatures: Ed25519 and ECDSA P-256 with SHA-256.
//!
//! Signing uses ring for both algorithms; so does ECDSA verification. ECDSA signatures are
//! DER-encoded `ECDSA-Sig-Value`s, the form X.509, TLS and node:crypto use.
//!
//! # Ed25519 verification rules
//!
//! RFC 8032 leaves verifiers a choice, and implementations differ on crafted signatures (see
//! "Taming the many EdDSAs", Chalkias, Garillot, Nikolaenko, 2020). ztmesh verifies Ed25519 by
//! one fixed rule set, the cofactored rules of [ZIP-215], plus a weak-key check, in [`verify`]
//! and [`verify_batch`] alike:
//!
//! - the public key is 32 bytes and the signature 64 bytes, `R ‖ S`;
//! - `S` must be canonical (`S < L`), so a signature cannot be malleated into a second valid
//!   encoding by adding L;
//! - `A` and `R` must decode to curve points; non-canonical encodings (`y ≥ p`, or `x = 0` with
//!   the sign bit set) are decoded as ZIP-215 specifies, not rejected;
//! - public keys of small order are rejected: for such an `A` anyone can forge (`R` = identity,
//!   `S` = 0 passes the cofactored equation for every message);
//! - the signature is valid iff `[8]([S]B − R − [k]A)` is the identity, with
//!   `k = SHA-512(R ‖ A ‖ M) mod L` over the encodings as given.
//!
//! Why cofactored: a batch check (a random linear combination of many equations) can only be
//! made to agree with the single check when both multiply by the cofactor 8. With the
//! cofactorless equation a signature whose `R` or `A` carries a small-order component fails
//! alone yet may pass in a batch, depending on the random coefficients. Under these rules the
//! verdict for any input is the same single or batched, every time, so peers and gateways can
//! never disagree on which messages are signed. Honestly generated signatures (ring's,
//! node:crypto's, any RFC 8032 signer's) are unaffected.
//!
//! # Batches
//!
//! [`verify_batch`] checks many independent triples in one call, split over the cores. Ed25519
//! items are checked per core with one randomized batch equation (random 128-bit coefficients
//! from the OS CSPRNG, terms of the same public key merged into one multiscalar multiplication);
//! when it fails, each item of that part is checked on its own, so one bad signature never
//! taints the others. ECDSA items are verified one by one.
//!
//! [ZIP-215]: https://zips.z.cash/zip-0215

use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::thread;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

mod ed25519;

/// A signature algorithm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032). Public keys are 32 raw bytes, signatures 64 bytes.
    Ed25519,
    /// ECDSA on P-256 with SHA-256. Public keys are 65-byte uncompressed SEC1 points,
    /// signatures are DER `ECDSA-Sig-Value`s.
    EcdsaP256Sha256,
}

impl Algorithm {
    /// Parses the algorithm's stable name: `ed25519` or `ecdsa-p256-sha256`.
    pub fn from_name(name: &str) -> Result<Self, SignError> {
        match name {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256-sha256" => Ok(Self::EcdsaP256Sha256),
            _ => Err(SignError::UnknownAlgorithm),
        }
    }

    /// The algorithm's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }
}

/// A private signing key together with its public key.
pub struct SigningKey {
    inner: Inner,
    pkcs8: Zeroizing<Vec<u8>>,
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

impl SigningKey {
    /// Generates a new key pair from the operating system's CSPRNG.
    pub fn generate(algorithm: Algorithm) -> Result<Self, SignError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            }
        }
        .map_err(|_| SignError::Random)?;
        Self::from_pkcs8(algorithm, pkcs8.as_ref())
    }

    /// Loads a key pair from a PKCS#8 v1 or v2 document (DER).
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: &[u8]) -> Result<Self, SignError> {
        let inner = match algorithm {
            Algorithm::Ed25519 => {
                Inner::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| SignError::PrivateKey)?)
            }
            Algorithm::EcdsaP256Sha256 => Inner::EcdsaP256(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
                    .map_err(|_| SignError::PrivateKey)?,
            ),
        };
        Ok(Self { inner, pkcs8: Zeroizing::new(pkcs8.to_vec()) })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Ed25519(_) => Algorithm::Ed25519,
            Inner::EcdsaP256(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    /// The public key: 32 bytes for Ed25519, a 65-byte uncompressed point for P-256.
    pub fn public_key(&self) -> &[u8] {
        match &self.inner {
            Inner::Ed25519(k) => k.public_key().as_ref(),
            Inner::EcdsaP256(k) => k.public_key().as_ref(),
        }
    }

    /// The private key as a PKCS#8 document, zeroized when dropped.
    pub fn to_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// Signs `message`. ECDSA signatures are randomized and DER-encoded.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::EcdsaP256(k) => {
                k.sign(&SystemRandom::new(), message).map(|s| s.as_ref().to_vec()).map_err(|_| SignError::Random)
            }
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm()).finish_non_exhaustive()
    }
}

/// Verifies one signature. Any failure, including a malformed key or signature, is
/// [`SignError::BadSignature`]: the reason is not revealed.
///
/// Ed25519 follows the rules in the [module documentation](self); the verdict is the one
/// [`verify_batch`] gives for the same triple.
pub fn verify(algorithm: Algorithm, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), SignError> {
    let valid = match algorithm {
        Algorithm::Ed25519 => ed25519::verify(public_key, message, signature),
        Algorithm::EcdsaP256Sha256 => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key).verify(message, signature).is_ok()
        }
    };
    if valid {
        Ok(())
    } else {
        Err(SignError::BadSignature)
    }
}

/// One item of a batch verification.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The algorithm the signature claims.
    pub algorithm: Algorithm,
    /// The signer's public key.
    pub public_key: &'a [u8],
    /// The signed message.
    pub message: &'a [u8],
    /// The signature to check.
    pub signature: &'a [u8],
}

/// The fewest items worth a thread of their own: with fewer, spawning costs more than it saves.
const MIN_ITEMS_PER_THREAD: usize = 4;

/// Verifies each item and returns one verdict per item, in order: exactly the verdicts
/// [`verify`] gives, item by item.
///
/// Ed25519 items and the others (ECDSA) are each split into one part per core. A core checks
/// its Ed25519 part with one batch equation (falling back to single checks only if that fails)
/// and verifies its ECDSA part item by item.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<bool> {
    // Positions in `items` and the items themselves, Ed25519 and the others apart.
    let (mut ed_index, mut ed_items, mut other_index, mut other_items) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (index, item) in items.iter().enumerate() {
        if item.algorithm == Algorithm::Ed25519 {
            ed_index.push(index);
            ed_items.push(*item);
        } else {
            other_index.push(index);
            other_items.push(*item);
        }
    }

    // Asked once: on Linux the answer involves reading cgroup files.
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1));
    let threads = (items.len() / MIN_ITEMS_PER_THREAD).clamp(1, cores);
    let work = |part: usize| {
        let ed = ed25519::verify_batch(share(&ed_items, part, threads));
        let other: Vec<bool> = share(&other_items, part, threads)
            .iter()
            .map(|item| verify(item.algorithm, item.public_key, item.message, item.signature).is_ok())
            .collect();
        (ed, other)
    };
    let parts: Vec<(Vec<bool>, Vec<bool>)> = if threads < 2 {
        vec![work(0)]
    } else {
        thread::scope(|scope| {
            let work = &work;
            let spawned: Vec<_> = (1..threads).map(|part| scope.spawn(move || work(part))).collect();
            // The calling thread takes the first part itself instead of idling.
            let mut parts = vec![work(0)];
            // A part whose thread panicked yields no verdicts: its items stay `false`.
            parts.extend(spawned.into_iter().map(|handle| handle.join().unwrap_or_default()));
            parts
        })
    };

    let mut verdicts = vec![false; items.len()];
    for (part, (ed, other)) in parts.into_iter().enumerate() {
        let pairs =
            share(&ed_index, part, threads).iter().zip(ed).chain(share(&other_index, part, threads).iter().zip(other));
        for (index, verdict) in pairs {
            if let Some(slot) = verdicts.get_mut(*index) {
                *slot = verdict;
            }
        }
    }
    verdicts
}

/// Part `part` of `parts` contiguous, nearly equal parts of `items` (empty if there is none).
fn share<T>(items: &[T], part: usize, parts: usize) -> &[T] {
    let size = items.len().div_ceil(parts.max(1)).max(1);
    items.chunks(size).nth(part).unwrap_or(&[])
}

/// Why a signature operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// The algorithm name is not one this module knows.
    UnknownAlgorithm,
    /// A private key document could not be parsed for the requested algorithm.
    PrivateKey,
    /// The signature did not verify, or its key or encoding was malformed.
    BadSignature,
    /// The operating system's random number generator failed.
    Random,
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownAlgorithm => "unknown signature algorithm",
            Self::PrivateKey => "invalid private key",
            Self::BadSignature => "signature verification failed",
            Self::Random => "the operating system's random number generator failed",
        })
    }
}

impl std::error::Error for SignError {}

impl crate::ErrorCode for SignError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownAlgorithm => "ERR_ALGORITHM",
            Self::PrivateKey => "ERR_PRIVATE_KEY",
            Self::BadSignature => "ERR_SIGNATURE",
            Self::Random => "ERR_RANDOM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_both_algorithms() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let key = SigningKey::generate(algorithm).unwrap();
            let sig = key.sign(b"message").unwrap();
            verify(algorithm, key.public_key(), b"message", &sig).unwrap();
            assert_eq!(verify(algorithm, key.public_key(), b"massage", &sig), Err(SignError::BadSignature));
            let reloaded = SigningKey::from_pkcs8(algorithm, &key.to_pkcs8()).unwrap();
            assert_eq!(reloaded.public_key(), key.public_key());
        }
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        assert_eq!(Algorithm::from_name("rsa").unwrap_err(), SignError::UnknownAlgorithm);
        assert_eq!(SigningKey::from_pkcs8(Algorithm::Ed25519, b"junk").unwrap_err(), SignError::PrivateKey);
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            assert!(verify(algorithm, &[], b"m", &[]).is_err());
            assert!(verify(algorithm, &[4u8; 65], b"m", &[0u8; 64]).is_err());
        }
    }

    #[test]
    fn ed25519_rejects_non_canonical_s() {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let mut sig = key.sign(b"m").unwrap();
        // Adding the group order L to S gives the same point equation but a malleated encoding.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (s, l) in sig[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(verify(Algorithm::Ed25519, key.public_key(), b"m", &sig), Err(SignError::BadSignature));
    }

    #[test]
    fn batch_gives_one_verdict_per_item_in_order() {
        let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let ec = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let messages: Vec<Vec<u8>> = (0..37u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let signatures: Vec<Vec<u8>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| if i % 2 == 0 { ed.sign(m).unwrap() } else { ec.sign(m).unwrap() })
            .collect();
        let items: Vec<BatchItem<'_>> = messages
            .iter()
            .zip(&signatures)
            .enumerate()
            .map(|(i, (m, s))| {
                let (algorithm, public_key) = if i % 2 == 0 {
                    (Algorithm::Ed25519, ed.public_key())
                } else {
                    (Algorithm::EcdsaP256Sha256, ec.public_key())
                };
                // Every fifth item carries the next item's message, so it must fail.
                let message = if i % 5 == 4 { messages[(i + 1) % messages.len()].as_slice() } else { m.as_slice() };
                BatchItem { algorithm, public_key, message, signature: s }
            })
            .collect();
        let verdicts = verify_batch(&items);
        for (i, verdict) in verdicts.iter().enumerate() {
            assert_eq!(*verdict, i % 5 != 4, "item {i}");
        }
        assert!(verify_batch(&[]).is_empty());
    }
}
