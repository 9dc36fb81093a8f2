//! X25519 Diffie-Hellman (RFC 7748).
//!
//! Backed by aws-lc's constant-time field arithmetic (ADX/BMI2 on x86-64). ring has X25519 too,
//! but only for ephemeral keys; Noise static keys and the X-Wing decapsulation key need static
//! ones, and the published test vectors need deterministic keys.

use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use zeroize::Zeroizing;

/// Length in bytes of an X25519 private key, public key and shared secret.
pub const KEY_LEN: usize = 32;

/// An X25519 private key, with its public key computed once.
pub struct PrivateKey {
    inner: agreement::PrivateKey,
    public: [u8; KEY_LEN],
}

impl PrivateKey {
    /// Generates a fresh private key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, X25519Error> {
        let inner = agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| X25519Error::Random)?;
        Self::with_public(inner)
    }

    /// Loads a private key from its 32 raw bytes (clamping happens inside, as RFC 7748 says).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, X25519Error> {
        if bytes.len() != KEY_LEN {
            return Err(X25519Error::KeyLength);
        }
        let inner =
            agreement::PrivateKey::from_private_key(&agreement::X25519, bytes).map_err(|_| X25519Error::KeyLength)?;
        Self::with_public(inner)
    }

    fn with_public(inner: agreement::PrivateKey) -> Result<Self, X25519Error> {
        let computed = inner.compute_public_key().map_err(|_| X25519Error::Internal)?;
        let public = computed.as_ref().try_into().map_err(|_| X25519Error::Internal)?;
        Ok(Self { inner, public })
    }

    /// The public key, `X25519(k, 9)`.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The raw private key bytes, zeroized when dropped.
    pub fn to_bytes(&self) -> Result<Zeroizing<[u8; KEY_LEN]>, X25519Error> {
        let seed: Curve25519SeedBin<'_> = self.inner.as_be_bytes().map_err(|_| X25519Error::Internal)?;
        let bytes: [u8; KEY_LEN] = seed.as_ref().try_into().map_err(|_| X25519Error::Internal)?;
        Ok(Zeroizing::new(bytes))
    }

    /// Computes the shared secret with a peer's public key.
    ///
    /// A peer key of the wrong length, or one of small order (whose shared secret would be all
    /// zeros, RFC 7748 §6.1), is refused with [`X25519Error::PeerKey`].
    pub fn diffie_hellman(&self, peer_public_key: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, X25519Error> {
        if peer_public_key.len() != KEY_LEN {
            return Err(X25519Error::PeerKey);
        }
        let peer = UnparsedPublicKey::new(&agreement::X25519, peer_public_key);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        agreement::agree(&self.inner, peer, X25519Error::PeerKey, |secret| {
            out.copy_from_slice(secret);
            Ok(())
        })?;
        Ok(out)
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("x25519::PrivateKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Why an X25519 operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X25519Error {
    /// A private key was not exactly 32 bytes.
    KeyLength,
    /// A peer public key was not 32 bytes, or was of small order.
    PeerKey,
    /// The operating system's random number generator failed.
    Random,
    /// The underlying library failed in a way that should be impossible.
    Internal,
}

impl std::fmt::Display for X25519Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::KeyLength => "X25519 private key must be 32 bytes",
            Self::PeerKey => "invalid X25519 public key",
            Self::Random => "the operating system's random number generator failed",
            Self::Internal => "internal X25519 failure",
        })
    }
}

impl std::error::Error for X25519Error {}

impl crate::ErrorCode for X25519Error {
    fn code(&self) -> &'static str {
        match self {
            Self::KeyLength => "ERR_KEY_LENGTH",
            Self::PeerKey => "ERR_PUBLIC_KEY",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_INTERNAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 7748 §6.1 Diffie-Hellman test vector.
    #[test]
    fn rfc7748_diffie_hellman() {
        let alice =
            PrivateKey::from_bytes(&unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")).unwrap();
        let bob =
            PrivateKey::from_bytes(&unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")).unwrap();
        assert_eq!(
            alice.public_key().as_slice(),
            unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public_key().as_slice(),
            unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(alice.diffie_hellman(bob.public_key()).unwrap().as_slice(), shared);
        assert_eq!(bob.diffie_hellman(alice.public_key()).unwrap().as_slice(), shared);
        assert_eq!(
            alice.to_bytes().unwrap().as_slice(),
            unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        );
    }

    #[test]
    fn refuses_bad_lengths_and_small_order_points() {
        assert_eq!(PrivateKey::from_bytes(&[1u8; 31]).unwrap_err(), X25519Error::KeyLength);
        let key = PrivateKey::generate().unwrap();
        assert_eq!(key.diffie_hellman(&[9u8; 33]).unwrap_err(), X25519Error::PeerKey);
        // The point of order 1 (u = 0) yields an all-zero secret.
        assert_eq!(key.diffie_hellman(&[0u8; 32]).unwrap_err(), X25519Error::PeerKey);
    }
}
