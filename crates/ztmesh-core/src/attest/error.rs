//! The verdicts of quote and AK-binding verification, each mapped to a stable `ERR_…` code.
//!
//! Like [`VerifyError`](crate::pki::VerifyError) the variants are coarse on purpose: they say
//! which rule a quote broke, never which byte broke it.

use std::fmt;

use crate::ErrorCode;

/// Why a quote, its PCR values, an attestation key or an AK binding was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttestError {
    /// A `TPMS_ATTEST`, `TPMT_SIGNATURE`, PCR values file, public key or certificate is not
    /// well formed: truncated, a length or count out of range, trailing bytes, an algorithm
    /// other than ECDSA P-256 with SHA-256, an unknown PCR bank, a magic other than
    /// `TPM_GENERATED_VALUE` or an attestation that is not a quote.
    Malformed,
    /// The quote's signature does not verify under the attestation key.
    Signature,
    /// The quote's qualifying data is not the expected nonce, or the expected nonce is not 16
    /// to 64 bytes long.
    Nonce,
    /// The PCR values supplied with the quote are not the ones it signed: another selection of
    /// PCRs, or values whose digest is not the quoted PCR digest.
    PcrValues,
    /// A PCR the policy names is not quoted, or is quoted with another value.
    PcrMismatch,
    /// A PCR the verifier asked to be quoted is not in the quote's SHA-256 selection.
    PcrSelection,
    /// The AK binding signature does not verify under the device key.
    Binding,
    /// A TPM public area is not what it must be: an attestation key that is not restricted,
    /// fixed to its TPM and a signing key, a device key that could leave its TPM, or a key
    /// other than the one it is presented as.
    KeyAttributes,
    /// A certification (`TPM2_Certify`) certifies another object than the key presented.
    Certify,
    /// An endorsement key certificate does not chain to a trusted EK CA, or is not valid now.
    EkCertificate,
    /// The secret returned by credential activation is not the one the verifier encrypted to
    /// the endorsement key, or there is no such challenge.
    Credential,
    /// The operating system's random source failed (a challenge could not be made).
    Random,
}

impl fmt::Display for AttestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed attestation data",
            Self::Signature => "quote signature invalid",
            Self::Nonce => "quote nonce mismatch",
            Self::PcrValues => "PCR values do not match the quote",
            Self::PcrMismatch => "PCR values do not satisfy the policy",
            Self::PcrSelection => "the quote does not cover every PCR asked for",
            Self::Binding => "attestation key binding signature invalid",
            Self::KeyAttributes => "TPM key attributes not acceptable",
            Self::Certify => "the certification is of another key",
            Self::EkCertificate => "endorsement key certificate not trusted",
            Self::Credential => "credential activation failed",
            Self::Random => "the random source failed",
        })
    }
}

impl std::error::Error for AttestError {}

impl ErrorCode for AttestError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "ERR_ATTEST_MALFORMED",
            Self::Signature => "ERR_ATTEST_SIGNATURE",
            Self::Nonce => "ERR_ATTEST_NONCE",
            Self::PcrValues => "ERR_ATTEST_PCR_VALUES",
            Self::PcrMismatch => "ERR_ATTEST_PCR_MISMATCH",
            Self::PcrSelection => "ERR_ATTEST_PCR_SELECTION",
            Self::Binding => "ERR_ATTEST_BINDING",
            Self::KeyAttributes => "ERR_ATTEST_KEY_ATTRIBUTES",
            Self::Certify => "ERR_ATTEST_CERTIFY",
            Self::EkCertificate => "ERR_ATTEST_EK_CERTIFICATE",
            Self::Credential => "ERR_ATTEST_CREDENTIAL",
            Self::Random => "ERR_RANDOM",
        }
    }
}

impl From<crate::pki::PemError> for AttestError {
    fn from(_: crate::pki::PemError) -> Self {
        Self::Malformed
    }
}
