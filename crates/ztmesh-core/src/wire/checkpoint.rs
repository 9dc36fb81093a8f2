//! Audit checkpoints: a node's signed statement "my audit log `log_id` had `seq` records, the
//! last with hash `head`, at time `at`". A checkpoint kept outside the log (on a peer, in a file
//! the log does not own) lets a verifier detect that records after it were deleted
//! (truncation) or that the chain up to it was rewritten and recomputed: the head no longer
//! matches.
//!
//! A checkpoint is a [`SignedObject`] under [`labels::AUDIT_CHECKPOINT`], whose body is
//!
//! ```text
//! u8   version         = 1
//! u8   log id length   1..=64, then the log id (printable ASCII)
//! u64  seq             the number of the last record covered (≥ 1)
//! [32] head            SHA-256 chain hash of that record
//! u64  at              signing time, ms since the epoch
//! ```
//!
//! big-endian, nothing after. The signer's chain is checked by [`verify_peer`] at the time the
//! checkpoint says it was signed, not at the time of reading: a log keeps its checkpoints for
//! as long as it keeps records, and the node's certificate will have been renewed (and the old
//! one expired) long before the oldest is read again. Revocation still applies: a checkpoint
//! signed by a revoked key is refused whatever time it claims.

use std::time::{Duration, UNIX_EPOCH};

use super::reader::Reader;
use super::{labels, SignedObject, WireError};
#[cfg(doc)]
use crate::pki::verify_peer;
use crate::pki::{CertSigner, PeerIdentity, PeerPolicy, RevocationSet, TrustStore};

/// The body format version this library writes and reads.
pub const VERSION: u8 = 1;

/// The longest log id, in bytes.
pub const MAX_LOG_ID_LEN: usize = 64;

/// What a checkpoint says about its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log (1..=64 printable ASCII characters): a node may keep several.
    pub log_id: String,
    /// The number of the last record covered (the first record is 1).
    pub seq: u64,
    /// The chain hash of record `seq`.
    pub head: [u8; 32],
    /// When it was signed, ms since the epoch.
    pub at_ms: u64,
}

/// A checkpoint that verified, with its signer.
#[derive(Debug, Clone)]
pub struct VerifiedCheckpoint {
    /// What it says.
    pub checkpoint: Checkpoint,
    /// Who signed it, as [`verify_peer`] decided at the checkpoint's time.
    pub peer: PeerIdentity,
    /// The signed object's digest ([`SignedObject::digest`]).
    pub digest: [u8; 32],
}

impl Checkpoint {
    /// The body encoding. Fails with [`WireError::TooLarge`] for a log id out of range and
    /// [`WireError::Malformed`] for a sequence number of 0.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let id = self.log_id.as_bytes();
        if !valid_log_id(id) {
            return Err(WireError::TooLarge);
        }
        if self.seq == 0 {
            return Err(WireError::Malformed);
        }
        let mut out = Vec::with_capacity(2 + id.len() + 8 + 32 + 8);
        out.push(VERSION);
        out.push(u8::try_from(id.len()).map_err(|_| WireError::TooLarge)?);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        Ok(out)
    }

    /// Decodes a body, strictly; verifies nothing.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut input = Reader::new(body);
        let version = input.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let id = input.u8_prefixed()?;
        let (seq, head, at_ms) = (input.u64()?, input.array::<32>()?, input.u64()?);
        if !input.is_empty() || !valid_log_id(id) || seq == 0 {
            return Err(WireError::Malformed);
        }
        Ok(Self { log_id: String::from_utf8(id.to_vec()).map_err(|_| WireError::Malformed)?, seq, head, at_ms })
    }

    /// Signs the checkpoint with `signer`, whose chain (DER, leaf first) is embedded; the
    /// errors of [`Self::encode`] and [`SignedObject::sign`].
    pub fn sign(&self, chain: &[&[u8]], signer: &dyn CertSigner) -> Result<SignedObject, WireError> {
        SignedObject::sign(labels::AUDIT_CHECKPOINT, chain, &self.encode()?, signer)
    }
}

/// Decodes and verifies a signed checkpoint: the label, the body, then the signer's chain
/// (`trust`, `revocations`, `policy`) at the checkpoint's own time, then the signature.
pub fn verify(
    bytes: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
) -> Result<VerifiedCheckpoint, WireError> {
    let object = SignedObject::decode(bytes)?;
    if object.label() != labels::AUDIT_CHECKPOINT.as_str() {
        return Err(WireError::Label);
    }
    let checkpoint = Checkpoint::decode(object.body())?;
    let at = UNIX_EPOCH.checked_add(Duration::from_millis(checkpoint.at_ms)).ok_or(WireError::Malformed)?;
    let verified = object.verify(labels::AUDIT_CHECKPOINT, trust, revocations, policy, at)?;
    Ok(VerifiedCheckpoint { checkpoint, peer: verified.peer, digest: verified.digest })
}

fn valid_log_id(id: &[u8]) -> bool {
    (1..=MAX_LOG_ID_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
