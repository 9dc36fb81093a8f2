//! The error of the enrollment codecs, with the side that was wrong in its code.

use std::fmt;

use crate::ErrorCode;

/// Why an enrollment, rotation or quote-exchange message was refused.
///
/// The detail strings name a field and a rule, never a field's value: a request carries a
/// one-time token, and refusals are logged.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollError {
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
            Self::BadRequest(detail) => write!(f, "malformed request: {detail}"),
            Self::BadResponse(detail) => write!(f, "malformed response: {detail}"),
            Self::BadQuoteMessage(detail) => write!(f, "malformed quote-exchange message: {detail}"),
            Self::InvalidArgument(detail) => write!(f, "invalid argument: {detail}"),
        }
    }
}

impl std::error::Error for EnrollError {}

impl ErrorCode for EnrollError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "ERR_BAD_REQUEST",
            Self::BadResponse(_) => "ERR_BAD_RESPONSE",
            Self::BadQuoteMessage(_) => "ERR_ATTEST_MALFORMED",
            Self::InvalidArgument(_) => "ERR_INVALID_ARG",
        }
    }
}
