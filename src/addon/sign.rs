//! Ed25519 and ECDSA P-256 signatures, with batch verification.

use napi::bindgen_prelude::{AsyncTask, Buffer, Env, Task};
use napi_derive::napi;
use ztmesh_core::sign::{self, Algorithm, BatchItem};

use crate::error::{guard, sync, Failure, Result};

/// A private signing key (`ed25519` or `ecdsa-p256-sha256`).
#[napi]
pub struct SigningKey {
    inner: sign::SigningKey,
}

#[napi]
impl SigningKey {
    /// Generates a new key pair.
    #[napi(factory)]
    pub fn generate(algorithm: String) -> Result<SigningKey> {
        sync(|| Ok(SigningKey { inner: sign::SigningKey::generate(Algorithm::from_name(&algorithm)?)? }))
    }

    /// Loads a key pair from a PKCS#8 DER document.
    #[napi(factory)]
    pub fn from_pkcs8(algorithm: String, pkcs8: &[u8]) -> Result<SigningKey> {
        sync(|| Ok(SigningKey { inner: sign::SigningKey::from_pkcs8(Algorithm::from_name(&algorithm)?, pkcs8)? }))
    }

    /// The algorithm name.
    #[napi(getter)]
    pub fn algorithm(&self) -> &'static str {
        self.inner.algorithm().name()
    }

    /// The public key: 32 raw bytes (Ed25519) or a 65-byte uncompressed point (P-256).
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        self.inner.public_key().to_vec().into()
    }

    /// Signs a message. ECDSA signatures are DER-encoded.
    #[napi]
    pub fn sign(&self, message: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.inner.sign(message)?.into()))
    }

    /// The private key as PKCS#8 DER.
    #[napi]
    pub fn to_pkcs8(&self) -> Buffer {
        self.inner.to_pkcs8().to_vec().into()
    }
}

/// Verifies one signature; `false` for any bad signature, key or encoding.
#[napi]
pub fn verify(algorithm: String, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool> {
    sync(|| Ok(sign::verify(Algorithm::from_name(&algorithm)?, public_key, message, signature).is_ok()))
}

/// One (message, signature, public key) triple of a batch.
#[napi(object)]
pub struct VerifyItem {
    /// `ed25519` or `ecdsa-p256-sha256`.
    pub algorithm: String,
    /// The signer's public key.
    pub public_key: Buffer,
    /// The signed message.
    pub message: Buffer,
    /// The signature.
    pub signature: Buffer,
}

/// Verifies many signatures in one call, on all cores; one verdict per item, in order.
#[napi]
pub fn verify_batch(items: Vec<VerifyItem>) -> Result<Vec<bool>> {
    sync(|| {
        let algorithms =
            items.iter().map(|i| Algorithm::from_name(&i.algorithm)).collect::<std::result::Result<Vec<_>, _>>()?;
        let batch: Vec<BatchItem<'_>> = items
            .iter()
            .zip(algorithms)
            .map(|(i, algorithm)| BatchItem {
                algorithm,
                public_key: &i.public_key,
                message: &i.message,
                signature: &i.signature,
            })
            .collect();
        Ok(sign::verify_batch(&batch))
    })
}

/// The libuv-thread twin of [`verify_batch`].
pub struct VerifyBatchTask {
    items: Vec<OwnedItem>,
}

/// One batch item copied out of JavaScript memory: algorithm, public key, message, signature.
type OwnedItem = (Algorithm, Vec<u8>, Vec<u8>, Vec<u8>);

#[napi]
impl Task for VerifyBatchTask {
    type Output = std::result::Result<Vec<bool>, Failure>;
    type JsValue = Vec<bool>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| {
            let batch: Vec<BatchItem<'_>> = self
                .items
                .iter()
                .map(|(algorithm, public_key, message, signature)| BatchItem {
                    algorithm: *algorithm,
                    public_key,
                    message,
                    signature,
                })
                .collect();
            Ok(sign::verify_batch(&batch))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map_err(|f| f.into_rejection(&env))
    }
}

/// Verifies many signatures off the JavaScript thread.
#[napi(ts_return_type = "Promise<boolean[]>")]
pub fn verify_batch_async(items: Vec<VerifyItem>) -> Result<AsyncTask<VerifyBatchTask>> {
    sync(|| {
        let items = items
            .into_iter()
            .map(|i| {
                Ok((
                    Algorithm::from_name(&i.algorithm)?,
                    i.public_key.to_vec(),
                    i.message.to_vec(),
                    i.signature.to_vec(),
                ))
            })
            .collect::<std::result::Result<Vec<_>, Failure>>()?;
        Ok(AsyncTask::new(VerifyBatchTask { items }))
    })
}
