//! The one signer handle: a software or a TPM P-256 key behind `pki::CertSigner`, taken by every
//! native operation that signs (TLS and Noise link contexts, signed objects, CSRs).
//!
//! A keystore entry becomes a signer inside the core, so a device key never crosses into
//! JavaScript. Contexts share the key with the handle; `close` drops the handle's share (the
//! software key is zeroized once the last context using it is gone).

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::pki::{self, CertSigner, PkiError, SoftwareSigner};

use crate::error::{sync, Failure, Result};
use crate::keystore::Keystore;
use crate::tpm::TpmKey;

/// A signer shared between its JavaScript handle and the contexts built from it.
type SharedKey = Arc<dyn CertSigner + Send + Sync>;

/// An ECDSA P-256 signing key, in software or in a TPM.
#[napi]
pub struct Signer {
    /// `None` once closed.
    inner: Mutex<Option<SharedKey>>,
}

#[napi]
impl Signer {
    /// A fresh software key that lives only in this process, inside the core (no keystore entry):
    /// for short-lived certificates such as the CA API's own TLS certificate.
    #[napi(factory)]
    pub fn generate() -> Result<Signer> {
        sync(|| Ok(Self::new(Arc::new(SoftwareSigner::generate()?))))
    }

    /// The key of the keystore entry `name` (ecdsa-p256), decrypted inside the core.
    #[napi(factory)]
    pub fn from_keystore(keystore: &Keystore, name: String) -> Result<Signer> {
        sync(|| Ok(Self::new(Arc::new(keystore.software_signer(&name)?))))
    }

    /// A key in the TPM.
    #[napi(factory)]
    pub fn from_tpm_key(key: &TpmKey) -> Result<Signer> {
        sync(|| Ok(Self::new(Arc::from(key.cert_signer()?))))
    }

    /// A software key from a PKCS#8 document (DER), for CA tooling and tests: zero-fill the
    /// buffer after the call.
    #[napi(factory)]
    pub fn from_pkcs8(private_key: &[u8]) -> Result<Signer> {
        sync(|| Ok(Self::new(Arc::new(SoftwareSigner::from_pkcs8(private_key)?))))
    }

    /// The public key: a 65-byte uncompressed P-256 point. Throws `ERR_CLOSED` once closed.
    #[napi(getter)]
    pub fn public_key(&self) -> Result<Buffer> {
        sync(|| Ok(self.key()?.public_key().to_vec().into()))
    }

    /// ECDSA P-256/SHA-256 signature of `message`, DER. Throws `ERR_CLOSED` once closed.
    #[napi]
    pub fn sign(&self, message: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.key()?.sign(message)?.into()))
    }

    /// Proves that this signer holds and can use the key of the certificate (PEM, the first
    /// block): a signature over a fresh challenge must verify under it. `ERR_KEY_MISMATCH` if not.
    #[napi]
    pub fn prove_for(&self, certificate_pem: String) -> Result<()> {
        sync(|| {
            let der = pki::pem::parse_certificates(&certificate_pem)?;
            let leaf = der.first().ok_or(PkiError::CertificateMalformed)?;
            Ok(pki::prove_possession(leaf, self.key()?.as_ref())?)
        })
    }

    /// A CSR (PEM) for `deviceId` in `tenant`, signed by this key. Throws `ERR_IDENTITY` for
    /// an invalid device id or tenant, `ERR_CLOSED` once closed.
    #[napi]
    pub fn build_csr(&self, device_id: String, tenant: String) -> Result<String> {
        sync(|| Ok(pki::build_csr(self.key()?.as_ref(), &device_id, &tenant)?.pem))
    }

    /// A CSR (PEM) for a site CA key named `commonName`, signed by this key: what a gateway
    /// sends to its offline root. Throws `ERR_IDENTITY` for an invalid name, `ERR_CLOSED` once closed.
    #[napi]
    pub fn build_ca_csr(&self, common_name: String) -> Result<String> {
        sync(|| Ok(pki::build_ca_csr(self.key()?.as_ref(), &common_name)?.pem))
    }

    /// Drops this handle's key; later uses throw `ERR_CLOSED`. Contexts already built keep
    /// working until they are dropped.
    #[napi]
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.take();
        }
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.inner.lock().map_or(true, |inner| inner.is_none())
    }
}

impl Signer {
    fn new(key: SharedKey) -> Self {
        Signer { inner: Mutex::new(Some(key)) }
    }

    fn key(&self) -> std::result::Result<SharedKey, Failure> {
        let inner = self.inner.lock().map_err(|_| Failure::new("ERR_INTERNAL", "signer lock poisoned"))?;
        inner.clone().ok_or_else(|| Failure::new("ERR_CLOSED", "the signer was closed"))
    }

    /// The key for a context presenting `chain` (DER, leaf first): refused with
    /// `ERR_KEY_MISMATCH` unless it is the leaf's key, `ERR_CLOSED` once closed.
    pub(crate) fn for_chain(
        &self,
        chain: &[Vec<u8>],
    ) -> std::result::Result<Box<dyn CertSigner + Send + Sync>, Failure> {
        let key = self.key()?;
        let leaf = chain.first().ok_or(PkiError::CertificateMalformed)?;
        pki::check_signer_matches(leaf, key.as_ref())?;
        Ok(Box::new(Shared(key)))
    }
}

/// One share of a signer, as the core's contexts take it.
struct Shared(SharedKey);

impl CertSigner for Shared {
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, PkiError> {
        self.0.sign(message)
    }
}
