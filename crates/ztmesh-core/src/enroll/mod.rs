//! Enrollment, rotation and quote-exchange messages: the one codec of each, shared by the device
//! and the CA (and by a Rust gateway that links this crate alone).
//!
//! JSON is the wire format of the enrollment API (HTTP bodies) and of the quote exchange (one
//! object per line). Every decoder here is strict: a bounded input size, no unknown fields, no
//! duplicate fields, every binary field decoded (base64 or hex) and every count bounded, so what
//! a caller gets back is a typed value it can use without checking again.
//!
//! | message | direction | wire |
//! | --- | --- | --- |
//! | [`NonceRequest`] | device → CA, `POST /v1/attest/nonce` | `{node_id, token_id, token_proof` or `certificate, timestamp, signature, ek_certificate?, ak_public?}` |
//! | [`NonceAnswer`] | CA → device | `{nonce, expires_at, pcrs?, credential_blob?, encrypted_secret?}` |
//! | [`EnrollRequest`] | device → CA, `POST /v1/enroll` | `{token_id, token_proof, csr, node_id?, attestation?}` |
//! | [`QuoteEvidence`] | inside an enrollment request | `{type: 'tpm2-quote', nonce, ak_public_pem, ak_binding, attest, signature, pcr_values, activated_secret?}` |
//! | [`RotationRequest`] | device → CA, `POST /v1/rotate` | `{certificate, csr, timestamp, signature, attestation?}` |
//! | [`EnrollResponse`] | CA → device, both of the above | `{certificate, ca_cert, serial, not_after, config?}` |
//! | [`QuoteRequest`] | verifier → node, quote exchange | `{v: 1, type: 'quote-request', nonce, pcrs}` |
//! | [`QuoteAnswer`] | node → verifier | `{v: 1, type: 'quote', …}` or `{v: 1, type: 'error', code}` |
//!
//! Binary fields are standard base64 with padding; nonces are hex (16 to 64 bytes, lowercase
//! when encoded, either case accepted); times are milliseconds since the Unix epoch, at most
//! 2^53 − 1 so JavaScript reads them exactly. A rotation request is signed by the current
//! certificate's key over [`rotation_message`], under the [`ROTATION`](crate::wire::labels::ROTATION)
//! label. PCR lists follow one rule, [`PcrSelection`].
//!
//! Errors say which side was wrong: a malformed request is [`EnrollError::BadRequest`]
//! (`ERR_BAD_REQUEST`, the CA's verdict), a malformed answer of the CA is
//! [`EnrollError::BadResponse`] (`ERR_BAD_RESPONSE`, the device's verdict), and a malformed
//! quote-exchange message is [`EnrollError::BadQuoteMessage`] (`ERR_ATTEST_MALFORMED`).
//!
//! Enrollment tokens ([`EnrollmentToken`]) carry the pinned root key and never travel: a request
//! names its token by id and proves it holds it with a signature, under a key derived from the
//! token, over what it asks for. The device
//! checks what the CA answers with [`check_answer`] before it stores anything.
//!
//! New fields (EK certificates, a `TPM2_Certify` of the device key) arrive as optional members,
//! so older encoders stay decodable.

mod accept;
mod codec;
mod error;
mod exchange;
mod messages;
mod pcrs;
#[cfg(test)]
mod tests;
mod token;

pub use accept::{check_answer, pinned_root, AcceptedAnswer, Anchor, ExpectedCertificate};
pub use error::EnrollError;
pub use exchange::{QuoteAnswer, QuoteRequest};
pub use messages::{
    nonce_request_message, rotation_message, BoundQuote, CredentialChallenge, DeviceConfig, Endorsement, EnrollRequest,
    EnrollResponse, KeyCertification, NonceAnswer, NonceAuth, NonceRequest, QuoteEvidence, RotationRequest,
};
pub use pcrs::PcrSelection;
pub use token::{
    verify_enrollment_proof, verify_nonce_proof, EnrollmentToken, TOKEN_PREFIX, TOKEN_PROOF_LEN, TOKEN_SECRET_LEN,
};

/// The largest enrollment or rotation request body a decoder reads.
pub const MAX_REQUEST: usize = 64 * 1024;
/// The largest answer of the CA a decoder reads.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The largest quote-exchange line either side reads.
pub const MAX_QUOTE_MESSAGE: usize = 64 * 1024;
/// The longest text of one evidence field (base64 or PEM).
pub const MAX_EVIDENCE_FIELD: usize = 16 * 1024;
/// The shortest and longest nonce, in bytes (the bounds of `TPM2B_DATA` qualifying data we accept).
pub const NONCE_LENGTH: std::ops::RangeInclusive<usize> = 16..=64;
/// The current version of the quote exchange (`v`).
pub const QUOTE_EXCHANGE_VERSION: u32 = 1;
