//! The hub's challenge to a client that cannot present its key in a TLS handshake (a browser's
//! non-extractable WebCrypto key): "sign this fresh challenge of hub H with the key of the chain
//! you sent". The answer is a signed object under [`labels::HUB_CHALLENGE`], so it is decided by
//! [`verify_peer`] (tenant, revocation, roles) and the signature like every other object, and a
//! signature made for an offer or a lease can never stand in for it.
//!
//! # Body (version 1)
//!
//! ```text
//! u8   version      = 1
//! u8   hub id length 1..=64, then the hub id (printable ASCII)
//! u64  issued_at    ms since the epoch
//! [16] nonce        from the core's random source
//! ```
//!
//! The hub keeps the challenge it issued on one connection and accepts one answer to it, once
//! ([`verify`] checks the answer against those exact bytes): an answer for another hub, another
//! connection or an older challenge does not match, and a stale one is refused by its age.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::presence::valid_hub_id;
use super::reader::Reader;
use super::{labels, SignedObject, Verified, WireError};
#[cfg(doc)]
use crate::pki::verify_peer;
use crate::pki::{PeerPolicy, RevocationSet, TrustStore};

/// The body format version.
pub const VERSION: u8 = 1;

/// The length of the nonce.
pub const NONCE_LEN: usize = 16;

/// The longest hub id (the rule of presence leases).
pub use super::presence::MAX_HUB_ID_LEN;

/// A hub's challenge, as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The hub that issued it.
    pub hub_id: String,
    /// When, ms since the epoch.
    pub issued_at_ms: u64,
    /// Fresh random bytes.
    pub nonce: [u8; NONCE_LEN],
}

impl Challenge {
    /// A fresh challenge of `hub_id` at `now`. [`WireError::TooLarge`] for a hub id that is not
    /// 1-64 printable ASCII characters; [`WireError::Signer`] when the random source fails.
    pub fn new(hub_id: &str, now: SystemTime) -> Result<Self, WireError> {
        if !valid_hub_id(hub_id.as_bytes()) {
            return Err(WireError::TooLarge);
        }
        let nonce = crate::rand::array().map_err(|_| WireError::Signer(crate::pki::PkiError::Random))?;
        Ok(Self { hub_id: hub_id.to_owned(), issued_at_ms: millis(now), nonce })
    }

    /// The body encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.hub_id.len() + 8 + NONCE_LEN);
        out.push(VERSION);
        out.push(u8::try_from(self.hub_id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(self.hub_id.as_bytes());
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    /// Decodes a body, strictly.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut input = Reader::new(body);
        let version = input.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let hub = input.u8_prefixed()?;
        if !valid_hub_id(hub) {
            return Err(WireError::Malformed);
        }
        let issued_at_ms = input.u64()?;
        let nonce = input.array::<NONCE_LEN>()?;
        if !input.is_empty() {
            return Err(WireError::Malformed);
        }
        let hub_id = String::from_utf8(hub.to_vec()).map_err(|_| WireError::Malformed)?;
        Ok(Self { hub_id, issued_at_ms, nonce })
    }
}

/// Why an answer to a challenge was refused: the object's own errors, or
/// [`ChallengeError::Mismatch`] / [`ChallengeError::Expired`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// The signed object was refused (malformed, label, chain, signature).
    Wire(WireError),
    /// The answer signs another challenge than the one this hub issued on this connection.
    Mismatch,
    /// The challenge is older than the hub allows (or dated in the future).
    Expired,
}

impl std::fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "{e}"),
            Self::Mismatch => f.write_str("the answer signs another challenge than the one issued"),
            Self::Expired => f.write_str("the challenge is no longer fresh"),
        }
    }
}

impl std::error::Error for ChallengeError {}

impl crate::ErrorCode for ChallengeError {
    fn code(&self) -> &'static str {
        match self {
            Self::Wire(e) => e.code(),
            Self::Mismatch | Self::Expired => "ERR_HUB_CHALLENGE",
        }
    }
}

impl From<WireError> for ChallengeError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

/// Verifies `answer`, a signed object, against the challenge `issued` (its exact body bytes, as
/// the hub kept them): the label, that the body is those bytes ([`ChallengeError::Mismatch`]),
/// that the challenge is at most `max_age` old at `now` ([`ChallengeError::Expired`]), then the
/// signer's chain ([`verify_peer`] with `trust`, `revocations`, `policy`) and the signature.
pub fn verify(
    answer: &[u8],
    issued: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    max_age: Duration,
    now: SystemTime,
) -> Result<Verified, ChallengeError> {
    let object = SignedObject::decode(answer)?;
    if object.label() != labels::HUB_CHALLENGE.as_str() {
        return Err(WireError::Label.into());
    }
    let challenge = Challenge::decode(issued)?;
    if object.body() != issued {
        return Err(ChallengeError::Mismatch);
    }
    let now_ms = millis(now);
    let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    if challenge.issued_at_ms > now_ms.saturating_add(1000)
        || now_ms.saturating_sub(challenge.issued_at_ms) > max_age_ms
    {
        return Err(ChallengeError::Expired);
    }
    Ok(object.verify(labels::HUB_CHALLENGE, trust, revocations, policy, now)?)
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
