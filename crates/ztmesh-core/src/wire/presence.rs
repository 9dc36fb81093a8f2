//! Presence leases: a device's signed statement "I, `device_id` of `tenant`, am reachable
//! through hub `hub_id` from `issued_at` until `expires_at`", number `seq` of its leases.
//!
//! A hub relays leases but cannot make them: each is a [`SignedObject`] under
//! [`labels::PRESENCE`], signed by the device's own key, and every receiver verifies it itself
//! ([`verify`]). A compromised hub can therefore drop a device's presence (not forward its
//! lease, or let it expire) but cannot forge it: a lease it rewrites fails the signature, and a
//! lease it makes with its own key names the hub, not the device ([`PresenceError::Mismatch`]).
//!
//! The body is
//!
//! ```text
//! u8   version           = 1
//! u8   device id length  1..=64, then the device id (the ids rule)
//! u8   tenant length     1..=64, then the tenant (the ids rule)
//! u8   hub id length     1..=64, then the hub id (printable ASCII, no spaces)
//! u64  seq               ≥ 1, grows with each lease the device signs
//! u64  issued_at         ms since the epoch
//! u64  expires_at        ms since the epoch, after issued_at by at most MAX_LEASE_MS
//! ```
//!
//! big-endian, nothing after. A lease is valid from `issued_at` (less the policy's clock skew)
//! to `expires_at` (no skew: an expired lease means offline); the signer's chain is checked by
//! [`verify_peer`] at the time of reading, so a revoked or expired certificate ends the
//! device's presence at once, whatever its lease says.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::reader::Reader;
use super::{labels, SignedObject, WireError};
use crate::ids;
#[cfg(doc)]
use crate::pki::verify_peer;
use crate::pki::{CertSigner, PeerIdentity, PeerPolicy, RevocationSet, TrustStore};
use crate::ErrorCode;

/// The body format version this library writes and reads.
pub const VERSION: u8 = 1;

/// The longest hub id, in bytes.
pub const MAX_HUB_ID_LEN: usize = 64;

/// The longest lease: 10 minutes. Clients renew well before expiry; a short lease bounds how
/// long a hub can replay a device's presence after the device went away.
pub const MAX_LEASE_MS: u64 = 10 * 60 * 1000;

/// What a lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The device that is present.
    pub device_id: String,
    /// Its tenant.
    pub tenant: String,
    /// The hub it is connected to.
    pub hub_id: String,
    /// The lease's number (≥ 1): a receiver keeps the highest it has seen.
    pub seq: u64,
    /// Start of validity, ms since the epoch.
    pub issued_at_ms: u64,
    /// End of validity, ms since the epoch.
    pub expires_at_ms: u64,
}

/// A lease that verified, with its signer.
#[derive(Debug, Clone)]
pub struct VerifiedLease {
    /// What it says.
    pub lease: Lease,
    /// Who signed it (the device itself).
    pub peer: PeerIdentity,
    /// The signed object's digest ([`SignedObject::digest`]).
    pub digest: [u8; 32],
}

/// Why a lease was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceError {
    /// The signed object or its body was refused ([`WireError`]).
    Wire(WireError),
    /// The lease is not valid now: expired, or issued in the future.
    Expired,
    /// The lease names another device or tenant than the certificate that signed it.
    Mismatch,
}

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "{e}"),
            Self::Expired => f.write_str("the presence lease is not valid now (expired or not yet issued)"),
            Self::Mismatch => f.write_str("the presence lease names another device or tenant than its signer"),
        }
    }
}

impl std::error::Error for PresenceError {}

impl ErrorCode for PresenceError {
    fn code(&self) -> &'static str {
        match self {
            Self::Wire(e) => e.code(),
            Self::Expired => "ERR_PRESENCE_EXPIRED",
            Self::Mismatch => "ERR_PRESENCE_MISMATCH",
        }
    }
}

impl From<WireError> for PresenceError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl Lease {
    /// The body encoding. Fails with [`WireError::TooLarge`] for an id out of range and
    /// [`WireError::Malformed`] for a sequence number of 0 or a validity that is empty or longer
    /// than [`MAX_LEASE_MS`].
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let (device, tenant, hub) = (self.device_id.as_bytes(), self.tenant.as_bytes(), self.hub_id.as_bytes());
        if ids::check_device_id(&self.device_id).is_err()
            || ids::check_tenant(&self.tenant).is_err()
            || !valid_hub_id(hub)
        {
            return Err(WireError::TooLarge);
        }
        if !self.valid_numbers() {
            return Err(WireError::Malformed);
        }
        let mut out = Vec::with_capacity(4 + device.len() + tenant.len() + hub.len() + 24);
        out.push(VERSION);
        for field in [device, tenant, hub] {
            out.push(u8::try_from(field.len()).map_err(|_| WireError::TooLarge)?);
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        Ok(out)
    }

    /// Decodes a body, strictly; verifies nothing.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut input = Reader::new(body);
        let version = input.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let mut text = || -> Result<String, WireError> {
            String::from_utf8(input.u8_prefixed()?.to_vec()).map_err(|_| WireError::Malformed)
        };
        let (device_id, tenant, hub_id) = (text()?, text()?, text()?);
        let lease = Self {
            device_id,
            tenant,
            hub_id,
            seq: input.u64()?,
            issued_at_ms: input.u64()?,
            expires_at_ms: input.u64()?,
        };
        if !input.is_empty() {
            return Err(WireError::Malformed);
        }
        if ids::check_device_id(&lease.device_id).is_err()
            || ids::check_tenant(&lease.tenant).is_err()
            || !valid_hub_id(lease.hub_id.as_bytes())
            || !lease.valid_numbers()
        {
            return Err(WireError::Malformed);
        }
        Ok(lease)
    }

    /// Signs the lease with `signer`, whose chain (DER, leaf first) is embedded; the errors of
    /// [`Self::encode`] and [`SignedObject::sign`].
    pub fn sign(&self, chain: &[&[u8]], signer: &dyn CertSigner) -> Result<SignedObject, WireError> {
        SignedObject::sign(labels::PRESENCE, chain, &self.encode()?, signer)
    }

    fn valid_numbers(&self) -> bool {
        self.seq != 0
            && self.expires_at_ms > self.issued_at_ms
            && self.expires_at_ms - self.issued_at_ms <= MAX_LEASE_MS
    }
}

/// Decodes and verifies a signed lease at `now`: the label, the body, the signer's chain
/// ([`verify_peer`] with `trust`, `revocations`, `policy`: set `expected_tenant` to the
/// reader's tenant), then that the signer is the device and tenant the lease names
/// ([`PresenceError::Mismatch`]), then that the lease is valid at `now`
/// ([`PresenceError::Expired`]; the policy's clock skew applies to `issued_at` only).
pub fn verify(
    bytes: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: SystemTime,
) -> Result<VerifiedLease, PresenceError> {
    let object = SignedObject::decode(bytes)?;
    if object.label() != labels::PRESENCE.as_str() {
        return Err(WireError::Label.into());
    }
    let lease = Lease::decode(object.body())?;
    let verified = object.verify(labels::PRESENCE, trust, revocations, policy, now)?;
    if verified.peer.device_id != lease.device_id || verified.peer.tenant != lease.tenant {
        return Err(PresenceError::Mismatch);
    }
    let now_ms = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    let skew = policy.clock_skew.as_millis();
    if now_ms >= u128::from(lease.expires_at_ms) || u128::from(lease.issued_at_ms) > now_ms.saturating_add(skew) {
        return Err(PresenceError::Expired);
    }
    Ok(VerifiedLease { lease, peer: verified.peer, digest: verified.digest })
}

/// The hub id rule, shared by leases and hub challenges: 1..=[`MAX_HUB_ID_LEN`] printable ASCII.
pub(crate) fn valid_hub_id(id: &[u8]) -> bool {
    (1..=MAX_HUB_ID_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
