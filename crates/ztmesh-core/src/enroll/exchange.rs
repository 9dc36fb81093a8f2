//! The quote exchange: a verifier asks a node, over an authenticated link, for a fresh quote.
//!
//! One JSON object per line (`\n`), at most [`MAX_QUOTE_MESSAGE`] bytes:
//!
//! ```text
//! → {"v":1,"type":"quote-request","nonce":"<hex>","pcrs":[0,1,2,3,7]}
//! ← {"v":1,"type":"quote","ak_public_pem":"…","ak_binding":"<b64>","attest":"<b64>","signature":"<b64>","pcr_values":"<b64>"}
//! ← {"v":1,"type":"error","code":"ERR_TPM_UNAVAILABLE"}
//! ```
//!
//! Encoders end the line with `\n`; decoders take a line with or without it.

use serde::{Deserialize, Serialize};

use super::codec::{self, Side};
use super::error::EnrollError;
use super::messages::{invalid as as_invalid_argument, BoundQuote, BoundQuoteText};
use super::pcrs::PcrSelection;
use super::{MAX_QUOTE_MESSAGE, QUOTE_EXCHANGE_VERSION};

/// The longest error code an answer may carry.
const MAX_CODE: usize = 64;

/// A verifier's request for a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteRequest {
    /// The verifier's fresh nonce (16 to 64 bytes; hex on the wire).
    pub nonce: Vec<u8>,
    /// The SHA-256 PCRs to quote.
    pub pcrs: PcrSelection,
}

/// A node's answer to a [`QuoteRequest`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteAnswer {
    /// The quote, with its AK binding.
    Quote(BoundQuote),
    /// The node could not quote; `code` is an `ERR_…` code (not necessarily one this build knows).
    Error {
        /// The node's error code.
        code: String,
    },
}

/// Every field any quote-exchange message may carry; which ones must be present depends on `type`.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    v: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pcrs: Option<PcrSelection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ak_public_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ak_binding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pcr_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

impl WireMessage {
    fn new(kind: &str) -> Self {
        Self { v: QUOTE_EXCHANGE_VERSION, kind: kind.into(), ..Self::default() }
    }

    fn decode(line: &[u8]) -> Result<Self, EnrollError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let wire: Self = codec::decode_json(line, MAX_QUOTE_MESSAGE, Side::Exchange, "the quote-exchange message")?;
        if wire.v != QUOTE_EXCHANGE_VERSION {
            return Err(Side::Exchange.error("not a version-1 quote-exchange message"));
        }
        Ok(wire)
    }

    fn encode(&self) -> Vec<u8> {
        let mut line = codec::encode_json(self);
        line.push(b'\n');
        line
    }

    /// Whether only the fields of `kind` are present.
    fn only(&self, kind: &str) -> bool {
        let request = self.nonce.is_some() || self.pcrs.is_some();
        let quote = [&self.ak_public_pem, &self.ak_binding, &self.attest, &self.signature, &self.pcr_values]
            .iter()
            .any(|f| f.is_some());
        let error = self.code.is_some();
        match kind {
            "quote-request" => !quote && !error,
            "quote" => !request && !error,
            _ => !request && !quote,
        }
    }
}

impl QuoteRequest {
    /// Decodes a request line (the node's side): [`EnrollError::BadQuoteMessage`] when malformed.
    pub fn decode(line: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Exchange;
        let wire = WireMessage::decode(line)?;
        if wire.kind != "quote-request" || !wire.only("quote-request") {
            return Err(side.error("not a quote request"));
        }
        let (Some(nonce), Some(pcrs)) = (wire.nonce, wire.pcrs) else {
            return Err(side.error("a quote request has a nonce and pcrs"));
        };
        Ok(Self { nonce: codec::nonce(&nonce, side, "nonce")?, pcrs })
    }

    /// Encodes the request line (the verifier's side), `\n` included.
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let wire = WireMessage {
            nonce: Some(codec::nonce_hex(&self.nonce)?),
            pcrs: Some(self.pcrs.clone()),
            ..WireMessage::new("quote-request")
        };
        Ok(wire.encode())
    }
}

impl QuoteAnswer {
    /// Decodes an answer line (the verifier's side): [`EnrollError::BadQuoteMessage`] when malformed.
    pub fn decode(line: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Exchange;
        let wire = WireMessage::decode(line)?;
        match wire.kind.as_str() {
            "quote" if wire.only("quote") => {
                let missing =
                    || side.error("a quote answer has ak_public_pem, ak_binding, attest, signature and pcr_values");
                let text = BoundQuoteText {
                    ak_public_pem: wire.ak_public_pem.ok_or_else(missing)?,
                    ak_binding: wire.ak_binding.ok_or_else(missing)?,
                    attest: wire.attest.ok_or_else(missing)?,
                    signature: wire.signature.ok_or_else(missing)?,
                    pcr_values: wire.pcr_values.ok_or_else(missing)?,
                };
                Ok(Self::Quote(BoundQuote::from_text(text, side)?))
            }
            "error" if wire.only("error") => {
                let code = wire.code.ok_or_else(|| side.error("an error answer has a code"))?;
                check_code(&code).map_err(|d| side.error(d))?;
                Ok(Self::Error { code })
            }
            _ => Err(side.error("not a quote answer")),
        }
    }

    /// Encodes the answer line (the node's side), `\n` included.
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let wire = match self {
            Self::Quote(quote) => {
                let text = quote.to_text().map_err(as_invalid_argument)?;
                WireMessage {
                    ak_public_pem: Some(text.ak_public_pem),
                    ak_binding: Some(text.ak_binding),
                    attest: Some(text.attest),
                    signature: Some(text.signature),
                    pcr_values: Some(text.pcr_values),
                    ..WireMessage::new("quote")
                }
            }
            Self::Error { code } => {
                check_code(code).map_err(EnrollError::InvalidArgument)?;
                WireMessage { code: Some(code.clone()), ..WireMessage::new("error") }
            }
        };
        Ok(wire.encode())
    }
}

/// An error code: `ERR_` and then upper-case letters, digits and `_`, at most 64 bytes.
fn check_code(code: &str) -> Result<(), String> {
    let rest = code.strip_prefix("ERR_").unwrap_or("");
    if rest.is_empty()
        || code.len() > MAX_CODE
        || !rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("an error code is ERR_ and upper-case letters, digits or _".into());
    }
    Ok(())
}
