//! [`TpmSigner`]: a [`CertSigner`] whose key never leaves the TPM.
//!
//! The key is kept as a saved context (see the [module documentation](super) for why): a sign
//! is `ContextLoad`, `Sign` of the SHA-256 digest computed in software, `FlushContext`. If the
//! saved context no longer loads (the TPM was reset), the key is loaded from its blob again and
//! saved anew, once per sign at most.

use std::sync::{Arc, Mutex, PoisonError};

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashcheckTicket, Signature, SignatureScheme};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::utils::TpmsContext;
use tss_esapi::Context;

use super::error::{from_tss, TpmError};
use super::{flush, load_object, with_primary, KeyBlob, Tpm};
use crate::pki::{ecdsa_p256_signature_to_der, CertSigner, PkiError};

/// An ECDSA P-256 signing key in a TPM.
pub struct TpmSigner {
    tpm: Arc<Tpm>,
    blob: KeyBlob,
    saved: Mutex<TpmsContext>,
}

impl TpmSigner {
    pub(crate) fn new(tpm: Arc<Tpm>, blob: KeyBlob) -> Result<Self, TpmError> {
        let saved = save(&mut tpm.lock(), &blob)?;
        Ok(Self { tpm, blob, saved: Mutex::new(saved) })
    }

    /// Signs `message` with ECDSA P-256 and SHA-256; returns a DER `ECDSA-Sig-Value`. The
    /// signature is verified before it is returned.
    pub fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, TpmError> {
        let digest = Digest::try_from(&crate::pki::sha256(message)[..]).map_err(from_tss)?;
        let signature = {
            let mut ctx = self.tpm.lock();
            let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
            let handle = match ctx.context_load(saved.clone()) {
                Ok(handle) => handle,
                Err(_) => {
                    *saved = save(&mut ctx, &self.blob)?;
                    ctx.context_load(saved.clone()).map_err(from_tss)?
                }
            };
            let signed = ctx
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.sign(handle.into(), digest, SignatureScheme::Null, null_ticket()?)
                })
                .map_err(from_tss);
            flush(&mut ctx, handle, signed)?
        };
        let Signature::EcDsa(ecdsa) = signature else { return Err(TpmError::Internal) };
        let mut raw = [0u8; 64];
        for (half, scalar) in raw.chunks_exact_mut(32).zip([ecdsa.signature_r().value(), ecdsa.signature_s().value()]) {
            let start = half.len().checked_sub(scalar.len()).ok_or(TpmError::Internal)?;
            half[start..].copy_from_slice(scalar);
        }
        let der = ecdsa_p256_signature_to_der(&raw).map_err(|_| TpmError::Internal)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.blob.public_key())
            .verify(message, &der)
            .map_err(|_| TpmError::Internal)?;
        Ok(der)
    }

    /// The key's blob.
    pub fn blob(&self) -> &KeyBlob {
        &self.blob
    }
}

impl CertSigner for TpmSigner {
    fn public_key(&self) -> &[u8] {
        self.blob.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.try_sign(message).map_err(|_| PkiError::Signer)
    }
}

impl std::fmt::Debug for TpmSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmSigner").field("public_key", &crate::pki::hex_lower(self.blob.public_key())).finish()
    }
}

/// Loads the key of `blob` and saves its context.
fn save(ctx: &mut Context, blob: &KeyBlob) -> Result<TpmsContext, TpmError> {
    let handle = with_primary(ctx, |ctx, primary| load_object(ctx, primary, blob.public(), blob.private()))?;
    let saved = ctx.context_save(handle.into()).map_err(from_tss);
    flush(ctx, handle.into(), saved)
}

/// The NULL hash-check ticket: enough for an unrestricted key, which signs any digest.
fn null_ticket() -> tss_esapi::Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
}

/// The signer must cross threads: TLS contexts and CAs hold it as `dyn CertSigner + Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TpmSigner>();
    send_sync::<Tpm>();
};
