//! The bodies of signed offers, answers and ICE candidates: strict, versioned, big-endian,
//! length-prefixed, every field bounded, nothing after the end (the style of
//! [`crate::wire::checkpoint`]).
//!
//! ```text
//! offer                                   answer                     candidate
//! u8    version = 1                       (the offer's fields)       u8    version = 1
//! u8    len, from   (device id rule)      [32] offer digest          u8    len, from
//! u8    len, to     (device id rule)                                 u8    len, to
//! u8    len, tenant (tenant rule)                                    u8    len, tenant
//! u16   len, sdp    (UTF-8, ≤ 16 KiB)                                [32]  offer digest
//! u64   ts          (ms since the epoch)                             u8    len, mid (0..=64 printable)
//! [16]  nonce                                                        u16   len, candidate (0..=1024 printable)
//! u64   epoch                                                        u64   ts
//!                                                                    [16]  nonce
//! ```
//!
//! Ids follow [`crate::ids`]. Decoding checks every rule encoding checks, so what decodes
//! re-encodes to the same bytes.

use super::SignalError;
use crate::ids;
use crate::wire::reader::Reader;

/// The body format version this library writes and reads.
pub const VERSION: u8 = 1;

/// The longest SDP, in bytes: 16 KiB.
pub const MAX_SDP_LEN: usize = 16 * 1024;

/// The longest ICE candidate line, in bytes.
pub const MAX_CANDIDATE_LEN: usize = 1024;

/// The longest media id (`a=mid`), in bytes.
pub const MAX_MID_LEN: usize = 64;

/// The length of a nonce, in bytes.
pub const NONCE_LEN: usize = 16;

/// The longest body of any kind (an answer with the longest ids and SDP), in bytes.
pub const MAX_BODY_LEN: usize = 1 + 3 * (1 + crate::ids::MAX_ID_LEN) + 2 + MAX_SDP_LEN + 8 + NONCE_LEN + 8 + 32;

/// A session description with its routing: what an offer says, and what an answer says besides
/// the offer it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The sender's device id: must be the signer's.
    pub from: String,
    /// The recipient's device id.
    pub to: String,
    /// The tenant both belong to.
    pub tenant: String,
    /// The SDP, with exactly one sha-256 DTLS fingerprint ([`super::sdp_fingerprint`]).
    pub sdp: String,
    /// When it was signed, ms since the epoch.
    pub ts_ms: u64,
    /// 16 random bytes from the core's random source: what the replay window remembers.
    pub nonce: [u8; NONCE_LEN],
    /// The sender's trust epoch.
    pub epoch: u64,
}

/// What an answer says: its description, and the digest of the offer it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answerer's description (from = the answerer, to = the offerer).
    pub description: Description,
    /// The signed-object digest ([`crate::wire::SignedObject::digest`]) of the offer answered.
    pub offer_digest: [u8; 32],
}

/// What a trickled ICE candidate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The sender's device id.
    pub from: String,
    /// The recipient's device id.
    pub to: String,
    /// The tenant both belong to.
    pub tenant: String,
    /// The digest of the offer whose session the candidate belongs to.
    pub offer_digest: [u8; 32],
    /// The media id the candidate is for (printable ASCII, no spaces, at most 64 bytes).
    pub mid: String,
    /// The candidate line (printable ASCII and spaces, at most 1024 bytes; empty: end of candidates).
    pub candidate: String,
    /// When it was signed, ms since the epoch.
    pub ts_ms: u64,
    /// 16 random bytes.
    pub nonce: [u8; NONCE_LEN],
}

impl Description {
    /// The offer body. Fails with [`SignalError::Id`] for an id that breaks [`crate::ids`],
    /// [`SignalError::TooLarge`] for an SDP over 16 KiB or with a NUL.
    pub fn encode(&self) -> Result<Vec<u8>, SignalError> {
        let mut out = Vec::with_capacity(64 + self.sdp.len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Decodes an offer body, strictly; verifies nothing.
    pub fn decode(body: &[u8]) -> Result<Self, SignalError> {
        let mut input = Reader::new(body);
        let description = Self::decode_from(&mut input)?;
        end(&input)?;
        Ok(description)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), SignalError> {
        check_routing(&self.from, &self.to, &self.tenant)?;
        if !valid_sdp(&self.sdp) {
            return Err(SignalError::TooLarge);
        }
        out.push(VERSION);
        push_routing(out, &self.from, &self.to, &self.tenant);
        push_u16_prefixed(out, self.sdp.as_bytes());
        out.extend_from_slice(&self.ts_ms.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        Ok(())
    }

    fn decode_from(input: &mut Reader<'_>) -> Result<Self, SignalError> {
        version(input)?;
        let (from, to, tenant) = routing(input)?;
        let sdp = input.u16_prefixed()?;
        let sdp = String::from_utf8(sdp.to_vec()).map_err(|_| SignalError::Malformed)?;
        if !valid_sdp(&sdp) {
            return Err(SignalError::Malformed);
        }
        Ok(Self { from, to, tenant, sdp, ts_ms: input.u64()?, nonce: input.array()?, epoch: input.u64()? })
    }
}

impl Answer {
    /// The answer body; the errors of [`Description::encode`].
    pub fn encode(&self) -> Result<Vec<u8>, SignalError> {
        let mut out = Vec::with_capacity(96 + self.description.sdp.len());
        self.description.encode_into(&mut out)?;
        out.extend_from_slice(&self.offer_digest);
        Ok(out)
    }

    /// Decodes an answer body, strictly; verifies nothing.
    pub fn decode(body: &[u8]) -> Result<Self, SignalError> {
        let mut input = Reader::new(body);
        let description = Description::decode_from(&mut input)?;
        let offer_digest = input.array()?;
        end(&input)?;
        Ok(Self { description, offer_digest })
    }
}

impl Candidate {
    /// The candidate body. Fails with [`SignalError::Id`] for an id that breaks [`crate::ids`],
    /// [`SignalError::TooLarge`] for a mid or candidate out of range.
    pub fn encode(&self) -> Result<Vec<u8>, SignalError> {
        check_routing(&self.from, &self.to, &self.tenant)?;
        if !valid_mid(&self.mid) || !valid_candidate(&self.candidate) {
            return Err(SignalError::TooLarge);
        }
        let mut out = Vec::with_capacity(128 + self.candidate.len());
        out.push(VERSION);
        push_routing(&mut out, &self.from, &self.to, &self.tenant);
        out.extend_from_slice(&self.offer_digest);
        push_u8_prefixed(&mut out, self.mid.as_bytes());
        push_u16_prefixed(&mut out, self.candidate.as_bytes());
        out.extend_from_slice(&self.ts_ms.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        Ok(out)
    }

    /// Decodes a candidate body, strictly; verifies nothing.
    pub fn decode(body: &[u8]) -> Result<Self, SignalError> {
        let mut input = Reader::new(body);
        version(&mut input)?;
        let (from, to, tenant) = routing(&mut input)?;
        let offer_digest = input.array()?;
        let mid = ascii(input.u8_prefixed()?, valid_mid)?;
        let candidate = ascii(input.u16_prefixed()?, valid_candidate)?;
        let candidate =
            Self { from, to, tenant, offer_digest, mid, candidate, ts_ms: input.u64()?, nonce: input.array()? };
        end(&input)?;
        Ok(candidate)
    }
}

fn check_routing(from: &str, to: &str, tenant: &str) -> Result<(), SignalError> {
    ids::check_device_id(from)?;
    ids::check_device_id(to)?;
    ids::check_tenant(tenant)?;
    Ok(())
}

fn valid_sdp(sdp: &str) -> bool {
    sdp.len() <= MAX_SDP_LEN && !sdp.as_bytes().contains(&0)
}

fn valid_mid(mid: &str) -> bool {
    mid.len() <= MAX_MID_LEN && mid.bytes().all(|b| b.is_ascii_graphic())
}

fn valid_candidate(candidate: &str) -> bool {
    candidate.len() <= MAX_CANDIDATE_LEN && candidate.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

fn ascii(bytes: &[u8], valid: fn(&str) -> bool) -> Result<String, SignalError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SignalError::Malformed)?;
    valid(text).then(|| text.to_owned()).ok_or(SignalError::Malformed)
}

fn push_routing(out: &mut Vec<u8>, from: &str, to: &str, tenant: &str) {
    for id in [from, to, tenant] {
        push_u8_prefixed(out, id.as_bytes());
    }
}

/// Ids and mids are checked to be at most 64 bytes before they are written.
fn push_u8_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

/// SDPs and candidates are checked to be at most 16 KiB before they are written.
fn push_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The body's version byte.
fn version(input: &mut Reader<'_>) -> Result<(), SignalError> {
    match input.u8()? {
        VERSION => Ok(()),
        _ => Err(SignalError::Malformed),
    }
}

/// `from`, `to` and `tenant`, each checked by the id rules.
fn routing(input: &mut Reader<'_>) -> Result<(String, String, String), SignalError> {
    let mut id = |check: fn(&str) -> Result<(), ids::IdError>| -> Result<String, SignalError> {
        let text = std::str::from_utf8(input.u8_prefixed()?).map_err(|_| SignalError::Malformed)?;
        check(text).map_err(|_| SignalError::Malformed)?;
        Ok(text.to_owned())
    };
    Ok((id(ids::check_device_id)?, id(ids::check_device_id)?, id(ids::check_tenant)?))
}

/// Nothing may follow a body.
fn end(input: &Reader<'_>) -> Result<(), SignalError> {
    input.is_empty().then_some(()).ok_or(SignalError::Malformed)
}
