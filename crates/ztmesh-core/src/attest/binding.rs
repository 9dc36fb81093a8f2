//! Binding an attestation key to a device identity.
//!
//! A quote proves what a TPM measured, under an attestation key (AK); nothing in it says which
//! device that TPM belongs to. The device therefore signs a statement naming its AK with the
//! key of its certificate, and the verifier checks that signature under the certificate it
//! already trusts (through [`verify_peer`](crate::pki::verify_peer)):
//!
//! ```text
//! message = "ztmesh-ak-binding-v1" 0x00 ‖ SHA-256(AK SubjectPublicKeyInfo, DER)
//! ```
//!
//! The context string keeps the signature from being mistaken for any other statement the
//! device key signs (TLS, CSRs, Noise bindings), and hashing the canonical SPKI gives one
//! message per key, however the key was delivered.
//!
//! The binding says which device vouches for an AK. It does not prove the AK is a restricted
//! key inside a TPM: a device that lies could bind a software key. Establishing that needs the
//! TPM's endorsement key (credential activation) and is outside this module.

use super::error::AttestError;
use super::AkPublicKey;
use crate::pki::{verify_certificate_signature, CertSigner, PkiError};
use crate::wire::labels;

/// The statement a device signs to bind `ak` to its identity: under the label
/// [`labels::AK_BINDING`], SHA-256 of the AK's SubjectPublicKeyInfo.
pub fn ak_binding_message(ak: &AkPublicKey) -> Vec<u8> {
    labels::AK_BINDING.message(&ak.spki_sha256())
}

/// Signs the binding of `ak` with the device's certificate key; returns a DER
/// `ECDSA-Sig-Value`. Fails with [`PkiError::Signer`] if the signer fails.
pub fn sign_ak_binding(signer: &dyn CertSigner, ak: &AkPublicKey) -> Result<Vec<u8>, PkiError> {
    signer.sign(&ak_binding_message(ak))
}

/// Checks that `signature` binds `ak` under the key of `device_certificate` (DER).
///
/// Only the signature is checked: the certificate must already have been verified, with
/// [`verify_peer`](crate::pki::verify_peer). Fails with [`AttestError::Malformed`] if the
/// certificate cannot be parsed or holds no P-256 key, and [`AttestError::Binding`] if the
/// signature does not verify.
pub fn verify_ak_binding(device_certificate: &[u8], ak: &AkPublicKey, signature: &[u8]) -> Result<(), AttestError> {
    match verify_certificate_signature(device_certificate, &ak_binding_message(ak), signature) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AttestError::Binding),
        Err(_) => Err(AttestError::Malformed),
    }
}

/// Checks an AK binding signature under a bare P-256 public key (65-byte uncompressed point):
/// the key of a CSR, when the CA checks an attestation before the certificate exists. Fails
/// with [`AttestError::Binding`] if the signature does not verify under it.
pub fn verify_ak_binding_key(public_key: &[u8], ak: &AkPublicKey, signature: &[u8]) -> Result<(), AttestError> {
    if crate::pki::signer::verify_p256(public_key, &ak_binding_message(ak), signature) {
        Ok(())
    } else {
        Err(AttestError::Binding)
    }
}
