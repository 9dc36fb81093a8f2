//! Post-quantum key encapsulation: ML-KEM-768 (FIPS 203) and X-Wing.
//!
//! X-Wing (draft-connolly-cfrg-xwing-kem-06) is the hybrid KEM of X25519 and ML-KEM-768: its
//! shared secret stays safe while either component holds. ML-KEM comes from libcrux (formally
//! verified, FIPS 203 final, AVX2 chosen at run time); X25519 from [`crate::x25519`].
//!
//! A [`XWingSecretKey`] keeps the expanded ML-KEM and X25519 keys next to the 32-byte seed, so
//! decapsulation does not re-run key generation. Both secret key types hold the ML-KEM key in
//! libcrux's unpacked form (matrix already sampled, secret already in NTT form), which halves
//! the cost of a decapsulation.

use libcrux_ml_kem::mlkem768::{self, MlKem768Ciphertext, MlKem768PrivateKey, MlKem768PublicKey};
use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::{Digest, Sha3_256, Shake256};
use zeroize::Zeroizing;

use crate::x25519;

/// Length of an X-Wing public (encapsulation) key: ML-KEM-768 key ‖ X25519 key.
pub const XWING_PUBLIC_KEY_LEN: usize = 1216;
/// Length of an X-Wing secret (decapsulation) key: the seed everything expands from.
pub const XWING_SECRET_KEY_LEN: usize = 32;
/// Length of an X-Wing ciphertext: ML-KEM-768 ciphertext ‖ X25519 ephemeral key.
pub const XWING_CIPHERTEXT_LEN: usize = 1120;
/// Length of every shared secret.
pub const SHARED_SECRET_LEN: usize = 32;
/// Length of an ML-KEM-768 encapsulation key.
pub const MLKEM768_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const MLKEM768_CIPHERTEXT_LEN: usize = 1088;
/// Length of the randomness X-Wing encapsulation consumes.
pub const XWING_ENCAPSULATION_SEED_LEN: usize = 64;

/// The X-Wing domain separator, `\.//^\`.
const XWING_LABEL: &[u8; 6] = b"\\.//^\\";

/// A shared secret, zeroized when dropped.
pub type SharedSecret = Zeroizing<[u8; SHARED_SECRET_LEN]>;

/// An X-Wing decapsulation key.
pub struct XWingSecretKey {
    seed: Zeroizing<[u8; XWING_SECRET_KEY_LEN]>,
    ml_kem: UnpackedKey,
    x25519: x25519::PrivateKey,
    public_key: Box<[u8; XWING_PUBLIC_KEY_LEN]>,
}

impl XWingSecretKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KemError> {
        let seed = Zeroizing::new(crate::rand::array::<XWING_SECRET_KEY_LEN>().map_err(|_| KemError::Random)?);
        Self::from_seed(seed.as_slice())
    }

    /// Expands a 32-byte seed into the key (draft §5.2: SHAKE256 → ML-KEM d ‖ z, X25519 key).
    pub fn from_seed(seed: &[u8]) -> Result<Self, KemError> {
        let seed: [u8; XWING_SECRET_KEY_LEN] = seed.try_into().map_err(|_| KemError::SecretKeyLength)?;
        let seed = Zeroizing::new(seed);
        let mut expanded = Zeroizing::new([0u8; 96]);
        let mut shake = Shake256::default();
        shake.update(seed.as_slice());
        shake.finalize_xof().read(expanded.as_mut_slice());

        let mut ml_kem_seed = Zeroizing::new([0u8; 64]);
        ml_kem_seed.copy_from_slice(&expanded[..64]);
        let pair = mlkem768::generate_key_pair(*ml_kem_seed);
        let x25519 = x25519::PrivateKey::from_bytes(&expanded[64..]).map_err(|_| KemError::Internal)?;

        let mut public_key = Box::new([0u8; XWING_PUBLIC_KEY_LEN]);
        public_key[..MLKEM768_PUBLIC_KEY_LEN].copy_from_slice(pair.public_key().as_slice());
        public_key[MLKEM768_PUBLIC_KEY_LEN..].copy_from_slice(x25519.public_key());
        let ml_kem = UnpackedKey::new(pair.private_key());
        Ok(Self { seed, ml_kem, x25519, public_key })
    }

    /// The 32-byte seed: the whole secret key in its storable form.
    pub fn seed(&self) -> &[u8; XWING_SECRET_KEY_LEN] {
        &self.seed
    }

    /// The 1216-byte public (encapsulation) key.
    pub fn public_key(&self) -> &[u8; XWING_PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// Recovers the shared secret from a 1120-byte ciphertext.
    ///
    /// A tampered ciphertext yields an unrelated secret (ML-KEM's implicit rejection), not an
    /// error; the mismatch surfaces when the secret is used. An X25519 share of small order is
    /// refused with [`KemError::Ciphertext`].
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SharedSecret, KemError> {
        if ciphertext.len() != XWING_CIPHERTEXT_LEN {
            return Err(KemError::CiphertextLength);
        }
        let (ct_m, ct_x) = ciphertext.split_at(MLKEM768_CIPHERTEXT_LEN);
        let ct_m: [u8; MLKEM768_CIPHERTEXT_LEN] = ct_m.try_into().map_err(|_| KemError::CiphertextLength)?;
        let ss_m = self.ml_kem.decapsulate(&MlKem768Ciphertext::from(ct_m));
        let ss_x = self.x25519.diffie_hellman(ct_x).map_err(|_| KemError::Ciphertext)?;
        Ok(combine(ss_m.as_slice(), ss_x.as_slice(), ct_x, self.x25519.public_key()))
    }
}

impl std::fmt::Debug for XWingSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XWingSecretKey").finish_non_exhaustive()
    }
}

/// Encapsulates a fresh shared secret to an X-Wing public key; returns the 1120-byte
/// ciphertext and the secret.
pub fn xwing_encapsulate(public_key: &[u8]) -> Result<(Vec<u8>, SharedSecret), KemError> {
    let seed = Zeroizing::new(crate::rand::array::<XWING_ENCAPSULATION_SEED_LEN>().map_err(|_| KemError::Random)?);
    encapsulate_with_seed(public_key, &seed)
}

/// X-Wing encapsulation with caller-chosen randomness, for known-answer tests only: reusing
/// or guessing the seed destroys all security. Only with the feature `testing`.
#[cfg(any(test, feature = "testing"))]
pub fn xwing_encapsulate_deterministic_for_testing_only(
    public_key: &[u8],
    seed: &[u8; XWING_ENCAPSULATION_SEED_LEN],
) -> Result<(Vec<u8>, SharedSecret), KemError> {
    encapsulate_with_seed(public_key, seed)
}

fn encapsulate_with_seed(
    public_key: &[u8],
    seed: &[u8; XWING_ENCAPSULATION_SEED_LEN],
) -> Result<(Vec<u8>, SharedSecret), KemError> {
    if public_key.len() != XWING_PUBLIC_KEY_LEN {
        return Err(KemError::PublicKeyLength);
    }
    let (pk_m, pk_x) = public_key.split_at(MLKEM768_PUBLIC_KEY_LEN);
    let pk_m = parse_mlkem_public_key(pk_m)?;
    let mut m_randomness = Zeroizing::new([0u8; 32]);
    m_randomness.copy_from_slice(&seed[..32]);
    let (ct_m, ss_m) = mlkem768::encapsulate(&pk_m, *m_randomness);
    let ss_m = Zeroizing::new(ss_m);

    let ephemeral = x25519::PrivateKey::from_bytes(&seed[32..]).map_err(|_| KemError::Internal)?;
    let ss_x = ephemeral.diffie_hellman(pk_x).map_err(|_| KemError::PublicKey)?;
    let ct_x = ephemeral.public_key();

    let mut ciphertext = Vec::with_capacity(XWING_CIPHERTEXT_LEN);
    ciphertext.extend_from_slice(ct_m.as_slice());
    ciphertext.extend_from_slice(ct_x);
    Ok((ciphertext, combine(ss_m.as_slice(), ss_x.as_slice(), ct_x, pk_x)))
}

/// The X-Wing combiner: SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖ pk_X ‖ label).
fn combine(ss_m: &[u8], ss_x: &[u8], ct_x: &[u8], pk_x: &[u8]) -> SharedSecret {
    let mut hash = Sha3_256::new();
    Digest::update(&mut hash, ss_m);
    Digest::update(&mut hash, ss_x);
    Digest::update(&mut hash, ct_x);
    Digest::update(&mut hash, pk_x);
    Digest::update(&mut hash, XWING_LABEL);
    Zeroizing::new(hash.finalize().into())
}

/// An ML-KEM-768 decapsulation key (the building block of X-Wing and of hybrid TLS/Noise).
pub struct MlKem768SecretKey {
    private_key: UnpackedKey,
    public_key: Box<[u8; MLKEM768_PUBLIC_KEY_LEN]>,
}

impl MlKem768SecretKey {
    /// Generates a fresh key pair.
    pub fn generate() -> Result<Self, KemError> {
        let randomness = Zeroizing::new(crate::rand::array::<64>().map_err(|_| KemError::Random)?);
        let pair = mlkem768::generate_key_pair(*randomness);
        let private_key = UnpackedKey::new(pair.private_key());
        Ok(Self { private_key, public_key: Box::new(*pair.public_key().as_slice()) })
    }

    /// The 1184-byte encapsulation key.
    pub fn public_key(&self) -> &[u8; MLKEM768_PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// Recovers the shared secret from a 1088-byte ciphertext (implicit rejection: a tampered
    /// ciphertext gives an unrelated secret).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<SharedSecret, KemError> {
        let ct: [u8; MLKEM768_CIPHERTEXT_LEN] = ciphertext.try_into().map_err(|_| KemError::CiphertextLength)?;
        Ok(self.private_key.decapsulate(&MlKem768Ciphertext::from(ct)))
    }
}

impl std::fmt::Debug for MlKem768SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlKem768SecretKey").finish_non_exhaustive()
    }
}

/// Encapsulates to an ML-KEM-768 key after the FIPS 203 §7.2 input check; returns the
/// 1088-byte ciphertext and the shared secret.
pub fn mlkem768_encapsulate(public_key: &[u8]) -> Result<(Vec<u8>, SharedSecret), KemError> {
    let pk = parse_mlkem_public_key(public_key)?;
    let randomness = Zeroizing::new(crate::rand::array::<32>().map_err(|_| KemError::Random)?);
    let (ct, ss) = mlkem768::encapsulate(&pk, *randomness);
    Ok((ct.as_slice().to_vec(), Zeroizing::new(ss)))
}

/// An ML-KEM-768 decapsulation key in libcrux's unpacked form, on the AVX2 code path when the
/// CPU has it. Wiped on drop: libcrux's unpacked types do not zeroize themselves, so the key is
/// overwritten with the all-zero default, and `black_box` keeps that store from being elided.
enum UnpackedKey {
    #[cfg(target_arch = "x86_64")]
    Avx2(Box<mlkem768::avx2::unpacked::MlKem768KeyPairUnpacked>),
    Portable(Box<mlkem768::portable::unpacked::MlKem768KeyPairUnpacked>),
}

impl UnpackedKey {
    fn new(private_key: &MlKem768PrivateKey) -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            use mlkem768::avx2::unpacked;
            let mut pair = Box::new(unpacked::init_key_pair());
            unpacked::key_pair_from_private_mut(private_key, &mut pair);
            return Self::Avx2(pair);
        }
        use mlkem768::portable::unpacked;
        let mut pair = Box::new(unpacked::init_key_pair());
        unpacked::key_pair_from_private_mut(private_key, &mut pair);
        Self::Portable(pair)
    }

    fn decapsulate(&self, ciphertext: &MlKem768Ciphertext) -> SharedSecret {
        Zeroizing::new(match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(pair) => mlkem768::avx2::unpacked::decapsulate(pair, ciphertext),
            Self::Portable(pair) => mlkem768::portable::unpacked::decapsulate(pair, ciphertext),
        })
    }
}

impl Drop for UnpackedKey {
    fn drop(&mut self) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2(pair) => {
                **pair = mlkem768::avx2::unpacked::init_key_pair();
                std::hint::black_box(&**pair);
            }
            Self::Portable(pair) => {
                **pair = mlkem768::portable::unpacked::init_key_pair();
                std::hint::black_box(&**pair);
            }
        }
    }
}

fn parse_mlkem_public_key(bytes: &[u8]) -> Result<MlKem768PublicKey, KemError> {
    let bytes: [u8; MLKEM768_PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KemError::PublicKeyLength)?;
    let pk = MlKem768PublicKey::from(bytes);
    if !mlkem768::validate_public_key(&pk) {
        return Err(KemError::PublicKey);
    }
    Ok(pk)
}

/// Why a KEM operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KemError {
    /// A public key had the wrong length.
    PublicKeyLength,
    /// A public key failed validation (ML-KEM modulus check, or an X25519 key of small order).
    PublicKey,
    /// A secret key (seed) had the wrong length.
    SecretKeyLength,
    /// A ciphertext had the wrong length.
    CiphertextLength,
    /// A ciphertext's X25519 share was of small order.
    Ciphertext,
    /// The operating system's random number generator failed.
    Random,
    /// A component failed in a way that should be impossible.
    Internal,
}

impl std::fmt::Display for KemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PublicKeyLength => "KEM public key has the wrong length",
            Self::PublicKey => "invalid KEM public key",
            Self::SecretKeyLength => "KEM secret key has the wrong length",
            Self::CiphertextLength => "KEM ciphertext has the wrong length",
            Self::Ciphertext => "invalid KEM ciphertext",
            Self::Random => "the operating system's random number generator failed",
            Self::Internal => "internal KEM failure",
        })
    }
}

impl std::error::Error for KemError {}

impl crate::ErrorCode for KemError {
    fn code(&self) -> &'static str {
        match self {
            Self::PublicKeyLength | Self::SecretKeyLength => "ERR_KEY_LENGTH",
            Self::PublicKey => "ERR_PUBLIC_KEY",
            Self::CiphertextLength | Self::Ciphertext => "ERR_CIPHERTEXT",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_INTERNAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 and the portable unpacked keys agree, for good and for tampered ciphertexts.
    #[test]
    fn unpacked_backends_agree() {
        let pair = mlkem768::generate_key_pair([5u8; 64]);
        let mut portable = Box::new(mlkem768::portable::unpacked::init_key_pair());
        mlkem768::portable::unpacked::key_pair_from_private_mut(pair.private_key(), &mut portable);
        let portable = UnpackedKey::Portable(portable);
        let chosen = UnpackedKey::new(pair.private_key());
        for tamper in [None, Some(0usize), Some(1000)] {
            let (ct, ss) = mlkem768::encapsulate(pair.public_key(), [6u8; 32]);
            let mut bytes: [u8; MLKEM768_CIPHERTEXT_LEN] = *ct.as_slice();
            if let Some(at) = tamper {
                bytes[at] ^= 1;
            }
            let ct = MlKem768Ciphertext::from(bytes);
            assert_eq!(portable.decapsulate(&ct), chosen.decapsulate(&ct));
            assert_eq!(*chosen.decapsulate(&ct) == ss, tamper.is_none());
        }
    }

    #[test]
    fn xwing_round_trip_and_implicit_rejection() {
        let key = XWingSecretKey::generate().unwrap();
        let (ct, ss) = xwing_encapsulate(key.public_key()).unwrap();
        assert_eq!(ct.len(), XWING_CIPHERTEXT_LEN);
        assert_eq!(*key.decapsulate(&ct).unwrap(), *ss);
        let mut tampered = ct.clone();
        tampered[10] ^= 1;
        assert_ne!(*key.decapsulate(&tampered).unwrap(), *ss);
        let reloaded = XWingSecretKey::from_seed(key.seed()).unwrap();
        assert_eq!(reloaded.public_key(), key.public_key());
    }

    #[test]
    fn xwing_malformed_inputs_are_typed_errors() {
        let key = XWingSecretKey::generate().unwrap();
        assert_eq!(XWingSecretKey::from_seed(&[0u8; 31]).unwrap_err(), KemError::SecretKeyLength);
        assert_eq!(xwing_encapsulate(&[0u8; 12]).unwrap_err(), KemError::PublicKeyLength);
        assert_eq!(key.decapsulate(&[0u8; 1119]).unwrap_err(), KemError::CiphertextLength);
        // ML-KEM coefficients of 0xfff exceed q: the FIPS 203 modulus check refuses the key.
        let mut bad = *key.public_key();
        bad[..384].fill(0xff);
        assert_eq!(xwing_encapsulate(&bad).unwrap_err(), KemError::PublicKey);
        // An X25519 share of small order (u = 0) in the ciphertext.
        let (mut ct, _) = xwing_encapsulate(key.public_key()).unwrap();
        ct[MLKEM768_CIPHERTEXT_LEN..].fill(0);
        assert_eq!(key.decapsulate(&ct).unwrap_err(), KemError::Ciphertext);
    }

    #[test]
    fn mlkem768_round_trip() {
        let key = MlKem768SecretKey::generate().unwrap();
        let (ct, ss) = mlkem768_encapsulate(key.public_key()).unwrap();
        assert_eq!(ct.len(), MLKEM768_CIPHERTEXT_LEN);
        assert_eq!(*key.decapsulate(&ct).unwrap(), *ss);
        assert_eq!(key.decapsulate(&ct[1..]).unwrap_err(), KemError::CiphertextLength);
    }
}
