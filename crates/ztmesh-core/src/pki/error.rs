//! The PKI's error types: one per area, each mapped to stable `ERR_…` codes.
//!
//! [`VerifyError`] is the verdict of [`verify_peer`](super::verify_peer) and is coarse on
//! purpose: it says which rule a chain broke, never the bytes that broke it.

use std::fmt;

use crate::ErrorCode;

/// Why a peer's certificate chain was rejected by [`verify_peer`](super::verify_peer), or why a
/// CA certificate could not be trusted as the issuer of revocation data.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyError {
    /// A certificate on the path is past its `notAfter` (plus the allowed clock skew).
    Expired,
    /// A certificate on the path is before its `notBefore` (minus the allowed clock skew).
    NotYetValid,
    /// The leaf or an intermediate CA is revoked, by serial or by public key.
    Revoked,
    /// No path to a trust anchor: no certificate or more than three, an unknown or untrusted
    /// issuer, a bad signature, an algorithm other than ECDSA P-256 with SHA-256, an issuer
    /// that is not a CA allowed to sign certificates, a path too long, an unknown critical
    /// extension, duplicate extensions, a serial that is not positive, or an identity inside
    /// the certificate that disagrees with itself (CN/OU against the SAN, malformed roles).
    Chain,
    /// The certificate's tenant is not the expected tenant.
    TenantMismatch,
    /// The certificate's device id is not the expected device id.
    DeviceMismatch,
    /// The leaf may not be used this way: it is a CA, lacks digitalSignature, or lacks the
    /// extended key usage the caller requires; or a revocation issuer lacks cRLSign.
    KeyUsage,
    /// The leaf's public key is not one of the pinned keys.
    Pin,
    /// The revocation data of an issuer on the path is past its `nextUpdate` plus the grace
    /// period, and the revocation set fails closed.
    RevocationStale,
    /// A certificate on the path breaks the name constraints of a CA above it: a site CA
    /// vouching for a tenant it was not issued for.
    NameConstraint,
    /// A certificate (DER or PEM) could not be parsed, or had bytes after its end.
    Malformed,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "certificate expired",
            Self::NotYetValid => "certificate not yet valid",
            Self::Revoked => "certificate revoked",
            Self::Chain => "certificate chain not trusted",
            Self::TenantMismatch => "certificate tenant mismatch",
            Self::DeviceMismatch => "certificate device id mismatch",
            Self::KeyUsage => "certificate key usage not allowed",
            Self::Pin => "certificate public key not pinned",
            Self::RevocationStale => "revocation data stale",
            Self::NameConstraint => "certificate outside its issuer's name constraints",
            Self::Malformed => "malformed certificate",
        })
    }
}

impl std::error::Error for VerifyError {}

impl ErrorCode for VerifyError {
    fn code(&self) -> &'static str {
        match self {
            Self::Expired => "ERR_CERT_EXPIRED",
            Self::NotYetValid => "ERR_CERT_NOT_YET_VALID",
            Self::Revoked => "ERR_CERT_REVOKED",
            Self::Chain => "ERR_CHAIN",
            Self::TenantMismatch => "ERR_TENANT_MISMATCH",
            Self::DeviceMismatch => "ERR_DEVICE_MISMATCH",
            Self::KeyUsage => "ERR_KEY_USAGE",
            Self::Pin => "ERR_PIN",
            Self::RevocationStale => "ERR_REVOCATION_STALE",
            Self::NameConstraint => "ERR_NAME_CONSTRAINT",
            Self::Malformed => "ERR_CERT_MALFORMED",
        }
    }
}

impl From<PemError> for VerifyError {
    fn from(_: PemError) -> Self {
        Self::Malformed
    }
}

/// Why a CA, CSR or issuance operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiError {
    /// The CSR is not a well-formed PKCS#10 request.
    CsrMalformed,
    /// The CSR's signature does not verify under the public key it carries.
    CsrSignature,
    /// A key (in a CSR, a signer or a CA certificate) is not ECDSA P-256 with an uncompressed
    /// point, or a CSR is signed with an algorithm other than ecdsa-with-SHA256.
    UnsupportedKey,
    /// A device id, tenant, role, CA name or organisation breaks the naming rules.
    InvalidIdentity,
    /// A validity period is empty or not representable, or a CRL's `nextUpdate` is not after
    /// its `thisUpdate`.
    InvalidValidity,
    /// The CA's own certificate is not valid at the time of issuance.
    CaNotValid,
    /// The certificate is not a CA certificate allowed for this operation (CA:true,
    /// keyCertSign, cRLSign, path length, single-valued names).
    NotCa,
    /// The private key or signer does not belong to the certificate (a CA's, or a device's
    /// at context creation).
    KeyMismatch,
    /// A private key is not a valid ECDSA P-256 PKCS#8 document.
    PrivateKey,
    /// A certificate could not be parsed.
    CertificateMalformed,
    /// PEM input is malformed or has the wrong label.
    Pem(PemError),
    /// A revocation entry is invalid (serial empty or over 20 bytes, too many entries).
    InvalidRevocation,
    /// A signer failed, or produced a signature that does not verify.
    Signer,
    /// The operating system's random number generator failed.
    Random,
    /// An underlying library failed in a way that should be impossible.
    Internal,
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CsrMalformed => f.write_str("malformed certificate signing request"),
            Self::CsrSignature => f.write_str("certificate signing request signature invalid"),
            Self::UnsupportedKey => f.write_str("unsupported key type (ECDSA P-256 required)"),
            Self::InvalidIdentity => f.write_str("invalid device id, tenant, role or name"),
            Self::InvalidValidity => f.write_str("invalid validity period"),
            Self::CaNotValid => f.write_str("CA certificate not valid at issuance time"),
            Self::NotCa => f.write_str("certificate is not a CA allowed for this operation"),
            Self::KeyMismatch => f.write_str("key does not match the certificate"),
            Self::PrivateKey => f.write_str("invalid private key"),
            Self::CertificateMalformed => f.write_str("malformed certificate"),
            Self::Pem(e) => write!(f, "{e}"),
            Self::InvalidRevocation => f.write_str("invalid revocation entry"),
            Self::Signer => f.write_str("signer failed"),
            Self::Random => f.write_str("the operating system's random number generator failed"),
            Self::Internal => f.write_str("internal PKI error"),
        }
    }
}

impl std::error::Error for PkiError {}

impl ErrorCode for PkiError {
    fn code(&self) -> &'static str {
        match self {
            Self::CsrMalformed => "ERR_CSR_MALFORMED",
            Self::CsrSignature => "ERR_CSR_SIGNATURE",
            Self::UnsupportedKey => "ERR_KEY_TYPE",
            Self::InvalidIdentity => "ERR_IDENTITY",
            Self::InvalidValidity => "ERR_VALIDITY",
            Self::CaNotValid => "ERR_CA_NOT_VALID",
            Self::NotCa => "ERR_NOT_CA",
            Self::KeyMismatch => "ERR_KEY_MISMATCH",
            Self::PrivateKey => "ERR_PRIVATE_KEY",
            Self::CertificateMalformed => "ERR_CERT_MALFORMED",
            Self::Pem(e) => e.code(),
            Self::InvalidRevocation => "ERR_REVOCATION_ENTRY",
            Self::Signer => "ERR_SIGNER",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_PKI_INTERNAL",
        }
    }
}

impl From<PemError> for PkiError {
    fn from(e: PemError) -> Self {
        Self::Pem(e)
    }
}

impl From<crate::rand::RandomError> for PkiError {
    fn from(_: crate::rand::RandomError) -> Self {
        Self::Random
    }
}

/// Why revocation data (a CRL or a revocation record) was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationError {
    /// The bytes are not a well-formed CRL or revocation record (including PEM problems).
    Malformed,
    /// The revocation record is of a format version this library does not read.
    UnsupportedVersion(u8),
    /// The signature does not verify under the issuer's key, or uses another algorithm.
    Signature,
    /// The data names a different issuer than the CA it was checked against.
    WrongIssuer,
    /// The CRL number or record number is lower than one already applied (or saved) for this
    /// issuer: a rollback.
    Rollback,
    /// The CRL is past its `nextUpdate` plus the grace period, or has none.
    Stale,
    /// A record with the same number but different content was already applied.
    Conflict,
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed revocation data"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported revocation record version {v}"),
            Self::Signature => f.write_str("revocation data signature invalid"),
            Self::WrongIssuer => f.write_str("revocation data from a different issuer"),
            Self::Rollback => f.write_str("revocation data rolled back (number lower than one applied)"),
            Self::Stale => f.write_str("stale revocation data (past its next update)"),
            Self::Conflict => f.write_str("conflicting revocation record for the same number"),
        }
    }
}

impl std::error::Error for RevocationError {}

impl ErrorCode for RevocationError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "ERR_REVOCATION_MALFORMED",
            Self::UnsupportedVersion(_) => "ERR_REVOCATION_VERSION",
            Self::Signature => "ERR_REVOCATION_SIGNATURE",
            Self::WrongIssuer => "ERR_REVOCATION_ISSUER",
            Self::Rollback => "ERR_REVOCATION_ROLLBACK",
            Self::Stale => "ERR_REVOCATION_STALE",
            Self::Conflict => "ERR_REVOCATION_CONFLICT",
        }
    }
}

impl From<PemError> for RevocationError {
    fn from(_: PemError) -> Self {
        Self::Malformed
    }
}

/// Why PEM text was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PemError {
    /// The input holds no PEM block.
    NoBlocks,
    /// The framing is broken: a BEGIN without END, mismatched labels, headers, text outside
    /// the blocks, an empty block, or more blocks than allowed.
    Framing,
    /// The body of a block is not valid padded base64.
    Base64,
    /// A block has another label than the one expected.
    UnexpectedLabel {
        /// The label expected, such as `CERTIFICATE`.
        expected: &'static str,
        /// The label found.
        found: String,
    },
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBlocks => f.write_str("no PEM block found"),
            Self::Framing => f.write_str("malformed PEM framing"),
            Self::Base64 => f.write_str("invalid base64 in PEM block"),
            Self::UnexpectedLabel { expected, found } => {
                write!(f, "PEM label {found:?} where {expected:?} was expected")
            }
        }
    }
}

impl std::error::Error for PemError {}

impl ErrorCode for PemError {
    fn code(&self) -> &'static str {
        "ERR_PEM"
    }
}
