//! rustls signing through a [`CertSigner`]: the private key stays in the software keystore or the
//! TPM, and rustls only ever sees signatures.
//!
//! TLS 1.3's `ecdsa_secp256r1_sha256` wants exactly what a [`CertSigner`] produces: ECDSA
//! P-256 over SHA-256 of the message, as a DER `ECDSA-Sig-Value`. No other scheme is offered.

use std::sync::Arc;

use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, OtherError, SignatureAlgorithm, SignatureScheme};

use crate::pki::signer::p256_spki;
use crate::pki::CertSigner;

/// A [`CertSigner`] as a rustls [`SigningKey`].
pub(crate) struct CertSignerKey {
    signer: Arc<dyn CertSigner + Send + Sync>,
    spki: Vec<u8>,
}

impl CertSignerKey {
    pub(crate) fn new(signer: Arc<dyn CertSigner + Send + Sync>) -> Self {
        let spki = p256_spki(signer.public_key());
        Self { signer, spki }
    }
}

impl SigningKey for CertSignerKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        if offered.contains(&SignatureScheme::ECDSA_NISTP256_SHA256) {
            Some(Box::new(EcdsaP256Signer(Arc::clone(&self.signer))))
        } else {
            None
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl std::fmt::Debug for CertSignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSignerKey").finish_non_exhaustive()
    }
}

/// One handshake's signer. A signer failure reaches rustls as the [`PkiError`](crate::pki::PkiError)
/// itself, and the session reports it as [`TlsError::Signer`](super::TlsError::Signer).
struct EcdsaP256Signer(Arc<dyn CertSigner + Send + Sync>);

impl Signer for EcdsaP256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.sign(message).map_err(|e| Error::Other(OtherError(Arc::new(e))))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

impl std::fmt::Debug for EcdsaP256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaP256Signer").finish_non_exhaustive()
    }
}
