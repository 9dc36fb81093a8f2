//! X25519 key pairs and Diffie-Hellman.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::x25519::PrivateKey;

use crate::error::{sync, Result};

/// A raw X25519 key pair.
#[napi(object)]
pub struct X25519KeyPair {
    /// The 32-byte public key.
    pub public_key: Buffer,
    /// The 32-byte private key. Keep it secret; zero the buffer when done.
    pub private_key: Buffer,
}

/// Generates an X25519 key pair (raw 32-byte keys).
#[napi]
pub fn generate_x25519_key_pair() -> Result<X25519KeyPair> {
    sync(|| {
        let key = PrivateKey::generate()?;
        let private_key = key.to_bytes()?;
        Ok(X25519KeyPair { public_key: key.public_key().to_vec().into(), private_key: private_key.to_vec().into() })
    })
}

/// Computes the X25519 shared secret of a private key and a peer's public key.
#[napi]
pub fn x25519_shared_secret(private_key: &[u8], peer_public_key: &[u8]) -> Result<Buffer> {
    sync(|| Ok(PrivateKey::from_bytes(private_key)?.diffie_hellman(peer_public_key)?.to_vec().into()))
}

/// The public key of a raw X25519 private key.
#[napi]
pub fn x25519_public_key(private_key: &[u8]) -> Result<Buffer> {
    sync(|| Ok(PrivateKey::from_bytes(private_key)?.public_key().to_vec().into()))
}
