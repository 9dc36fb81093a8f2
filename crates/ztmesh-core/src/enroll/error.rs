//! The error of the enrollment codecs, with the side that was wrong in its code.

use std::fmt;

use crate::pki::VerifyError;
use crate::ErrorCode;

/// Why an enrollment, rotation or quote-exchange message was refused.
///
/// The detail strings name a field and a rule, never a field's value: a request carries a
/// one-time token, and refusals are logged.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollError {
    /// An enrollment token is not a token of the current format (never quoted: it is a secret).
    TokenInvalid,
    /// A request's token proof is not the proof of what it asks for under the token's key.
    TokenProof,
    /// No certificate the CA presented has the key of the root the device pinned.
    TrustAnchor,
    /// The certificate the CA issued does not pass the device's own check; the verdict of
    /// `pki::verify_peer` (its code is this error's code).
    Certificate(VerifyError),
    /// The operating system's random generator failed.
    Random,
    /// A request to the CA (enrollment, rotation, nonce) is not a valid message: bad JSON, an
    /// unknown, missing or duplicate field, a wrong type, a bad encoding, a value out of bounds.
    BadRequest(String),
    /// An answer of the CA is not a valid message (same rules).
    BadResponse(String),
    /// A quote-exchange message (request or answer) is not a valid message (same rules).
    BadQuoteMessage(String),
    /// A value given to an encoder breaks the message's rules (a PCR out of range, a nonce of
    /// the wrong length, a time beyond 2^53 − 1, an error code that is not `ERR_…`).
    InvalidArgument(String),
}

impl fmt::Display for EnrollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenInvalid => f.write_str("the enrollment token is malformed"),
            Self::TokenProof => f.write_str("the request's token proof does not match the request"),
            Self::TrustAnchor => f.write_str("the CA presented no certificate of the pinned root"),
            Self::Certificate(error) => write!(f, "the issued certificate is refused: {error}"),
            Self::Random => f.write_str("the random generator failed"),
            Self::BadRequest(detail) => write!(f, "malformed request: {detail}"),
            Self::BadResponse(detail) => write!(f, "malformed response: {detail}"),
            Self::BadQuoteMessage(detail) => write!(f, "malformed quote-exchange message: {detail}"),
            Self::InvalidArgument(detail) => write!(f, "invalid argument: {detail}"),
        }
    }
}

impl std::error::Error for EnrollError {}

impl From<VerifyError> for EnrollError {
    fn from(error: VerifyError) -> Self {
        Self::Certificate(error)
    }
}

impl ErrorCode for EnrollError {
    fn code(&self) -> &'static str {
        match self {
            Self::TokenInvalid => "ERR_TOKEN_INVALID",
            Self::TokenProof => "ERR_TOKEN_PROOF",
            Self::TrustAnchor => "ERR_TRUST_ANCHOR",
            Self::Certificate(error) => error.code(),
            Self::Random => "ERR_RANDOM",
            Self::BadRequest(_) => "ERR_BAD_REQUEST",
            Self::BadResponse(_) => "ERR_BAD_RESPONSE",
            Self::BadQuoteMessage(_) => "ERR_ATTEST_MALFORMED",
            Self::InvalidArgument(_) => "ERR_INVALID_ARG",
        }
    }
}
