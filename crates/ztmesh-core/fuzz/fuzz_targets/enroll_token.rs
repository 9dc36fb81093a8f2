//! The enrollment token decoder on arbitrary text: only `Ok` or `ERR_TOKEN_INVALID`, never a
//! panic; whatever decodes re-encodes to the very same text (one spelling per token).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::enroll::{EnrollError, EnrollmentToken, TOKEN_PREFIX};

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes after the prefix reach the base64 and structure parsers, not just the prefix check.
    let Ok(body) = std::str::from_utf8(data) else { return };
    for text in [body.to_owned(), format!("{TOKEN_PREFIX}{body}")] {
        match EnrollmentToken::decode(&text) {
            Ok(token) => assert_eq!(token.encode().as_str(), text, "a decoded token re-encodes to itself"),
            Err(error) => assert_eq!(error, EnrollError::TokenInvalid),
        }
    }
});
