//! [`TlsError`]: why a TLS context could not be built or a session failed.

use std::fmt;

use rustls::{AlertDescription, CertificateError, PeerIncompatible};

use super::PqPolicy;
use crate::pki::{PkiError, VerifyError};
use crate::ErrorCode;

/// Why a TLS context could not be built, or why a session failed.
///
/// A session that fails keeps its error: every later call that moves data returns it again
/// ([`TlsSession::error`](super::TlsSession::error)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The peer's certificate chain was refused by [`verify_peer`](crate::pki::verify_peer); the
    /// code is the PKI's own (`ERR_CERT_REVOKED`, `ERR_TENANT_MISMATCH`, `ERR_CHAIN`, …). Also
    /// reported when a resumed session's stored chain no longer passes.
    Peer(VerifyError),
    /// The peer sent no certificate (a client that ignored the certificate request).
    NoCertificate,
    /// The peer offered (client) or selected (server) no application protocol we accept.
    NoApplicationProtocol,
    /// Post-quantum key exchange is required ([`PqPolicy::Require`]) and the peer did not offer
    /// X25519MLKEM768.
    NoPostQuantum,
    /// No protocol version, cipher suite, key exchange group or signature scheme in common.
    Incompatible,
    /// The peer ended the session with a fatal alert (its description, RFC 8446 §6, as a number;
    /// the message names it). The peer's reason for refusing us arrives this way.
    Alert {
        /// The alert description, such as 42 (bad_certificate) or 44 (certificate_revoked).
        description: u8,
    },
    /// The peer broke the protocol: garbage or truncated records, an oversized record, a record
    /// that fails to decrypt, an unexpected or malformed message, an invalid key share.
    Protocol,
    /// The handshake failed for another reason, such as a handshake signature that does not
    /// verify under the peer's certificate key.
    Handshake,
    /// Application data was written after [`TlsSession::send_close_notify`](super::TlsSession::send_close_notify).
    Closed,
    /// The settings are unusable; the message says which one.
    Config(&'static str),
    /// Our [`CertSigner`](crate::pki::CertSigner) failed to sign the handshake.
    Signer,
    /// The operating system's random number generator failed.
    Random,
    /// rustls failed in a way that should be impossible.
    Internal,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(e) => write!(f, "TLS peer refused: {e}"),
            Self::NoCertificate => f.write_str("TLS peer sent no certificate"),
            Self::NoApplicationProtocol => f.write_str("no TLS application protocol (ALPN) in common"),
            Self::NoPostQuantum => f.write_str("TLS peer offers no post-quantum key exchange"),
            Self::Incompatible => f.write_str("no TLS parameters in common with the peer"),
            Self::Alert { description } => {
                write!(f, "TLS peer sent fatal alert {:?} ({description})", AlertDescription::from(*description))
            }
            Self::Protocol => f.write_str("TLS protocol violation by the peer"),
            Self::Handshake => f.write_str("TLS handshake failed"),
            Self::Closed => f.write_str("TLS session closed"),
            Self::Config(what) => write!(f, "invalid TLS settings: {what}"),
            Self::Signer => f.write_str("signer failed during the TLS handshake"),
            Self::Random => f.write_str("the operating system's random number generator failed"),
            Self::Internal => f.write_str("internal TLS error"),
        }
    }
}

impl std::error::Error for TlsError {}

impl ErrorCode for TlsError {
    fn code(&self) -> &'static str {
        match self {
            Self::Peer(e) => e.code(),
            Self::NoCertificate => "ERR_TLS_NO_CERT",
            Self::NoApplicationProtocol => "ERR_TLS_ALPN",
            Self::NoPostQuantum => "ERR_TLS_NO_PQ",
            Self::Incompatible => "ERR_TLS_INCOMPATIBLE",
            Self::Alert { .. } => "ERR_TLS_ALERT",
            Self::Protocol => "ERR_TLS_PROTOCOL",
            Self::Handshake => "ERR_TLS_HANDSHAKE",
            Self::Closed => "ERR_TLS_CLOSED",
            Self::Config(_) => "ERR_TLS_CONFIG",
            Self::Signer => "ERR_SIGNER",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_TLS_INTERNAL",
        }
    }
}

impl TlsError {
    /// Classifies an error rustls reported for a session with post-quantum policy `pq`.
    pub(crate) fn from_rustls(error: &rustls::Error, pq: PqPolicy) -> Self {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(e) => verify_error(e).map_or(Self::Handshake, Self::Peer),
            E::NoCertificatesPresented => Self::NoCertificate,
            E::NoApplicationProtocol => Self::NoApplicationProtocol,
            E::PeerIncompatible(PeerIncompatible::NoKxGroupsInCommon) if pq == PqPolicy::Require => Self::NoPostQuantum,
            E::PeerIncompatible(_) => Self::Incompatible,
            E::AlertReceived(alert) => Self::Alert { description: u8::from(*alert) },
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::DecryptError
            | E::PeerMisbehaved(_)
            | E::PeerSentOversizedRecord => Self::Protocol,
            E::FailedToGetRandomBytes => Self::Random,
            E::Other(other) if other.0.downcast_ref::<PkiError>().is_some() => Self::Signer,
            _ => Self::Handshake,
        }
    }
}

/// The rustls error for a chain [`verify_peer`](crate::pki::verify_peer) refused. Where rustls
/// has an exact counterpart, it is used, so the peer receives a precise alert (certificate_expired,
/// certificate_revoked, unknown_ca, unsupported_certificate, bad_certificate); identity
/// mismatches and pins travel as the [`VerifyError`] itself (alert certificate_unknown).
pub(crate) fn certificate_error(error: VerifyError) -> rustls::Error {
    rustls::Error::InvalidCertificate(match error {
        VerifyError::Expired => CertificateError::Expired,
        VerifyError::NotYetValid => CertificateError::NotValidYet,
        VerifyError::Revoked => CertificateError::Revoked,
        VerifyError::Chain => CertificateError::UnknownIssuer,
        VerifyError::KeyUsage => CertificateError::InvalidPurpose,
        VerifyError::Malformed => CertificateError::BadEncoding,
        VerifyError::TenantMismatch
        | VerifyError::DeviceMismatch
        | VerifyError::Pin
        | VerifyError::RevocationStale
        | VerifyError::NameConstraint => CertificateError::Other(rustls::OtherError(std::sync::Arc::new(error))),
    })
}

/// The [`VerifyError`] behind a rustls certificate error produced by [`certificate_error`]; `None`
/// for the one certificate error our verifiers raise themselves (a bad handshake signature). No
/// other part of rustls raises certificate errors: ztmesh uses no webpki verifier.
fn verify_error(error: &CertificateError) -> Option<VerifyError> {
    match error {
        CertificateError::Expired => Some(VerifyError::Expired),
        CertificateError::NotValidYet => Some(VerifyError::NotYetValid),
        CertificateError::Revoked => Some(VerifyError::Revoked),
        CertificateError::UnknownIssuer => Some(VerifyError::Chain),
        CertificateError::InvalidPurpose => Some(VerifyError::KeyUsage),
        CertificateError::BadEncoding => Some(VerifyError::Malformed),
        CertificateError::Other(other) => other.0.downcast_ref::<VerifyError>().copied(),
        _ => None,
    }
}
