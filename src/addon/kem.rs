//! X-Wing (X25519 + ML-KEM-768) and ML-KEM-768.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::kem;

use crate::error::{sync, Result};

/// A KEM ciphertext with the shared secret it carries.
#[napi(object)]
pub struct Encapsulation {
    /// The ciphertext to send to the key's owner.
    pub ciphertext: Buffer,
    /// The 32-byte shared secret. Keep it secret.
    pub shared_secret: Buffer,
}

/// An X-Wing decapsulation key (draft-connolly-cfrg-xwing-kem-06).
#[napi]
pub struct XWingSecretKey {
    inner: kem::XWingSecretKey,
}

#[napi]
impl XWingSecretKey {
    /// Generates a new key.
    #[napi(factory)]
    pub fn generate() -> Result<XWingSecretKey> {
        sync(|| Ok(XWingSecretKey { inner: kem::XWingSecretKey::generate()? }))
    }

    /// Loads a key from its 32-byte seed.
    #[napi(factory)]
    pub fn from_seed(seed: &[u8]) -> Result<XWingSecretKey> {
        sync(|| Ok(XWingSecretKey { inner: kem::XWingSecretKey::from_seed(seed)? }))
    }

    /// The 1216-byte public key.
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        self.inner.public_key().to_vec().into()
    }

    /// The 32-byte seed (the secret key in storable form).
    #[napi]
    pub fn export_seed(&self) -> Buffer {
        self.inner.seed().to_vec().into()
    }

    /// Recovers the shared secret from a 1120-byte ciphertext.
    #[napi]
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.inner.decapsulate(ciphertext)?.to_vec().into()))
    }
}

/// Encapsulates a fresh shared secret to an X-Wing public key.
#[napi]
pub fn xwing_encapsulate(public_key: &[u8]) -> Result<Encapsulation> {
    sync(|| {
        let (ciphertext, shared_secret) = kem::xwing_encapsulate(public_key)?;
        Ok(Encapsulation { ciphertext: ciphertext.into(), shared_secret: shared_secret.to_vec().into() })
    })
}

/// An ML-KEM-768 decapsulation key (FIPS 203).
#[napi]
pub struct MlKem768SecretKey {
    inner: kem::MlKem768SecretKey,
}

#[napi]
impl MlKem768SecretKey {
    /// Generates a new key pair.
    #[napi(factory)]
    pub fn generate() -> Result<MlKem768SecretKey> {
        sync(|| Ok(MlKem768SecretKey { inner: kem::MlKem768SecretKey::generate()? }))
    }

    /// The 1184-byte encapsulation key.
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        self.inner.public_key().to_vec().into()
    }

    /// Recovers the shared secret from a 1088-byte ciphertext.
    #[napi]
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.inner.decapsulate(ciphertext)?.to_vec().into()))
    }
}

/// Encapsulates to an ML-KEM-768 encapsulation key (checked per FIPS 203 §7.2).
#[napi]
pub fn mlkem768_encapsulate(public_key: &[u8]) -> Result<Encapsulation> {
    sync(|| {
        let (ciphertext, shared_secret) = kem::mlkem768_encapsulate(public_key)?;
        Ok(Encapsulation { ciphertext: ciphertext.into(), shared_secret: shared_secret.to_vec().into() })
    })
}
