//! What every message of this module shares: bounded strict JSON, base64, hex, times.

use base64ct::{Base64, Encoding};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::EnrollError;
use super::{MAX_EVIDENCE_FIELD, NONCE_LENGTH};

/// The largest integer JavaScript represents exactly: times and counts stay below it.
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Which side a malformed message is blamed on, and so which error it becomes.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Request,
    Response,
    Exchange,
}

impl Side {
    pub(crate) fn error(self, detail: impl Into<String>) -> EnrollError {
        let detail = detail.into();
        match self {
            Self::Request => EnrollError::BadRequest(detail),
            Self::Response => EnrollError::BadResponse(detail),
            Self::Exchange => EnrollError::BadQuoteMessage(detail),
        }
    }
}

/// Parses one JSON message of at most `max` bytes into its wire struct.
pub(crate) fn decode_json<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    side: Side,
    what: &str,
) -> Result<T, EnrollError> {
    if bytes.len() > max {
        return Err(side.error(format!("{what} exceeds {max} bytes")));
    }
    let fail = |e: serde_json::Error| side.error(format!("{what}: {}", describe(&e)));
    // serde's derived structs also read a JSON array as a struct (fields by position): look at
    // the shape first, so every struct is an object and only list fields are arrays.
    let shape: serde_json::Value = serde_json::from_slice(bytes).map_err(fail)?;
    if !shape.is_object() || !objects_and_lists_only(&shape) {
        return Err(side.error(format!("{what} must be a JSON object of the documented fields")));
    }
    // The typed parse also refuses a duplicate field, which the shape's map would merge.
    serde_json::from_slice(bytes).map_err(fail)
}

/// The members that hold lists; every other array is a struct spelled by position.
const LIST_FIELDS: &[&str] = &["pcrs", "bootstrap_peers"];

/// Whether every array is the value of a list field and holds scalars only.
fn objects_and_lists_only(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter().all(|(key, member)| match member {
            Value::Array(items) => {
                LIST_FIELDS.contains(&key.as_str()) && items.iter().all(|i| !i.is_array() && !i.is_object())
            }
            other => objects_and_lists_only(other),
        }),
        Value::Array(_) => false,
        _ => true,
    }
}

/// Serializes a wire struct (which cannot fail: every field is a string, number, list or struct).
pub(crate) fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A serde error without the input's values: the input may hold a token.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Io => format!("not valid JSON (line {}, column {})", error.line(), error.column()),
        Category::Eof => "truncated JSON".into(),
        Category::Data => {
            let text = error.to_string();
            // "invalid type: string \"…\"" and "invalid value: …" quote the input; field names
            // ("unknown field `x`", "missing field `x`") and our own rules do not.
            if text.starts_with("invalid type")
                || text.starts_with("invalid value")
                || text.starts_with("invalid length")
            {
                format!("a field has the wrong type or value (line {}, column {})", error.line(), error.column())
            } else {
                text.chars().take(160).collect()
            }
        }
    }
}

/// A non-empty text field of at most `max` bytes.
pub(crate) fn text(value: String, max: usize, side: Side, field: &str) -> Result<String, EnrollError> {
    if value.is_empty() || value.len() > max {
        return Err(side.error(format!("{field} must be 1 to {max} bytes")));
    }
    Ok(value)
}

/// A non-empty standard base64 (padded) field of at most [`MAX_EVIDENCE_FIELD`] characters.
pub(crate) fn base64(value: &str, side: Side, field: &str) -> Result<Vec<u8>, EnrollError> {
    if value.is_empty() || value.len() > MAX_EVIDENCE_FIELD {
        return Err(side.error(format!("{field} must be 1 to {MAX_EVIDENCE_FIELD} characters of base64")));
    }
    Base64::decode_vec(value).map_err(|_| side.error(format!("{field} must be standard base64")))
}

/// Encodes bytes as standard base64 with padding.
pub(crate) fn to_base64(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

/// A hex nonce of [`NONCE_LENGTH`] bytes, either case.
pub(crate) fn nonce(value: &str, side: Side, field: &str) -> Result<Vec<u8>, EnrollError> {
    let bad = || side.error(format!("{field} must be {} to {} bytes as hex", NONCE_LENGTH.start(), NONCE_LENGTH.end()));
    if !value.len().is_multiple_of(2) || !NONCE_LENGTH.contains(&(value.len() / 2)) {
        return Err(bad());
    }
    value
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

/// Checks a nonce given to an encoder and returns it as lowercase hex.
pub(crate) fn nonce_hex(bytes: &[u8]) -> Result<String, EnrollError> {
    if !NONCE_LENGTH.contains(&bytes.len()) {
        return Err(EnrollError::InvalidArgument(format!(
            "a nonce is {} to {} bytes",
            NONCE_LENGTH.start(),
            NONCE_LENGTH.end()
        )));
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `N` bytes as `2N` hex digits, either case (a token id, a token proof).
pub(crate) fn hex_array<const N: usize>(value: &str, side: Side, field: &str) -> Result<[u8; N], EnrollError> {
    let bad = || side.error(format!("{field} must be {N} bytes as hex"));
    if value.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(value.as_bytes().chunks_exact(2)) {
        *byte = (hex_digit(pair[0]).ok_or_else(bad)? << 4) | hex_digit(pair[1]).ok_or_else(bad)?;
    }
    Ok(out)
}

/// Bytes as lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A time in ms since the epoch that JavaScript reads exactly.
pub(crate) fn time_ms(value: u64, side: Side, field: &str) -> Result<u64, EnrollError> {
    if value > MAX_SAFE_INTEGER {
        return Err(side.error(format!("{field} must be at most 2^53 - 1")));
    }
    Ok(value)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
