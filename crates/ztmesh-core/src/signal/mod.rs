//! Signed signaling: WebRTC offers, answers and ICE candidates as [`SignedObject`]s under their
//! own labels ([`labels::OFFER`], [`labels::ANSWER`], [`labels::ICE_CANDIDATE`]), and the one
//! receiver-side check of each.
//!
//! The signature covers the whole SDP, so the DTLS fingerprint and the ICE credentials are bound
//! to the signer's certificate; the SDP must carry exactly one sha-256 fingerprint
//! ([`sdp_fingerprint`]), checked when signing and when verifying.
//!
//! A [`SignalVerifier`] is what one device checks every incoming message with, in this order:
//!
//! 1. the signed object: its label, the signer's chain through `verify_peer` (chain to the
//!    trust anchors, expiry, revocation, the verifier's tenant; verdicts cached per trust
//!    snapshot as the TLS contexts do) and the signature ([`SignalError::Wire`]);
//! 2. the body, strictly decoded ([`SignalError::Malformed`]) and, for offers and answers, the
//!    SDP rule ([`SignalError::Sdp`]);
//! 3. the routing: `from` is the signer's device id ([`SignalError::Sender`]), `tenant` is the
//!    signer's and the verifier's ([`SignalError::Tenant`]), `to` is this device
//!    ([`SignalError::Recipient`]);
//! 4. what the kind needs: an offer that came over an authenticated link was signed by the
//!    link's peer ([`SignalError::Link`]); an answer or candidate names the offer it is checked
//!    against, and comes from the device offered to ([`SignalError::Mismatch`]);
//! 5. the time and the nonce, in the [`ReplayWindow`] ([`SignalError::Stale`],
//!    [`SignalError::Future`], [`SignalError::Replay`], [`SignalError::ReplayFull`]). A nonce is
//!    remembered only once every other check has passed, so a refused message never uses up
//!    the nonce of a genuine one.
//!
//! Before any of it, a message longer than [`MAX_OBJECT_LEN`] is refused unread
//! ([`SignalError::TooLarge`]).
//!
//! Roles, time of day and other policy are for the policy decision point, after this.

mod body;
mod replay;
mod sdp;

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use body::{
    Answer, Candidate, Description, MAX_BODY_LEN, MAX_CANDIDATE_LEN, MAX_MID_LEN, MAX_SDP_LEN, NONCE_LEN,
    VERSION as BODY_VERSION,
};
pub use replay::{ReplayWindow, DEFAULT_CAPACITY, DEFAULT_FUTURE_SKEW, DEFAULT_WINDOW, MAX_CAPACITY};
pub use sdp::sdp_fingerprint;

use crate::ids::IdError;
use crate::pki::snapshot::SharedTrust;
use crate::pki::{sha256, CertSigner, PeerIdentity, PeerPolicy, RevocationSet, TrustStore};
use crate::rand::RandomError;
use crate::wire::reader::Truncated;
use crate::wire::signed::external::Unsigned;
use crate::wire::{labels, Label, SignedObject, WireError};
use crate::ErrorCode;

/// The longest signed offer, answer or candidate, in bytes: a signed object with the longest
/// label and chain around the longest body. Anything longer is refused before it is decoded
/// ([`SignalError::TooLarge`]), so a peer cannot make a verifier hash a megabyte per message.
pub const MAX_OBJECT_LEN: usize = 1
    + 1
    + crate::wire::signed::MAX_LABEL_LEN
    + 1
    + crate::wire::signed::MAX_CHAIN_LEN * (2 + crate::wire::signed::MAX_CERT_LEN)
    + 4
    + MAX_BODY_LEN
    + 1
    + 72;

/// Why a signed offer, answer or candidate was refused, or could not be made.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalError {
    /// The signed object was refused: format, label, the signer's chain, or the signature.
    Wire(WireError),
    /// The body is truncated, has a field out of range or an invalid id, or bytes after its end.
    Malformed,
    /// The SDP does not carry exactly one sha-256 DTLS fingerprint ([`sdp_fingerprint`]).
    Sdp,
    /// The message is older than the replay window.
    Stale,
    /// The message is dated further ahead than the clock skew allows.
    Future,
    /// The body names another sender than the signer.
    Sender,
    /// The body names another tenant than the signer's and the verifier's.
    Tenant,
    /// The message is addressed to another device.
    Recipient,
    /// An answer or candidate names another offer, or comes from another device than expected.
    Mismatch,
    /// An offer came over a link whose authenticated peer is not its signer.
    Link,
    /// The nonce was seen before, inside the window.
    Replay,
    /// The window holds as many live nonces as it may (fail closed).
    ReplayFull,
    /// A field is larger than the format allows, or a limit is out of range (when signing or
    /// configuring).
    TooLarge,
    /// An id breaks the rules of [`crate::ids`] (when signing).
    Id(IdError),
    /// The random source failed (when signing).
    Random,
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(e) => write!(f, "{e}"),
            Self::Malformed => f.write_str("malformed signaling body"),
            Self::Sdp => f.write_str("the SDP must carry exactly one sha-256 DTLS fingerprint"),
            Self::Stale => f.write_str("signaling message older than the replay window"),
            Self::Future => f.write_str("signaling message dated in the future"),
            Self::Sender => f.write_str("signaling message names another sender than its signer"),
            Self::Tenant => f.write_str("signaling message names another tenant"),
            Self::Recipient => f.write_str("signaling message addressed to another device"),
            Self::Mismatch => f.write_str("signaling message for another offer or from another device"),
            Self::Link => f.write_str("offer signed by another device than the link's peer"),
            Self::Replay => f.write_str("signaling message replayed"),
            Self::ReplayFull => f.write_str("replay window full"),
            Self::TooLarge => f.write_str("signaling field too large"),
            Self::Id(e) => write!(f, "{e}"),
            Self::Random => f.write_str("the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for SignalError {}

impl ErrorCode for SignalError {
    fn code(&self) -> &'static str {
        match self {
            Self::Wire(e) => e.code(),
            Self::Malformed => "ERR_SIGNAL_MALFORMED",
            Self::Sdp => "ERR_SIGNAL_SDP",
            Self::Stale => "ERR_SIGNAL_STALE",
            Self::Future => "ERR_SIGNAL_FUTURE",
            Self::Sender => "ERR_SIGNAL_SENDER",
            Self::Tenant => "ERR_TENANT_MISMATCH",
            Self::Recipient => "ERR_SIGNAL_RECIPIENT",
            Self::Mismatch => "ERR_SIGNAL_MISMATCH",
            Self::Link => "ERR_SIGNAL_LINK",
            Self::Replay => "ERR_REPLAY",
            Self::ReplayFull => "ERR_REPLAY_FULL",
            Self::TooLarge => "ERR_MESSAGE_SIZE",
            Self::Id(e) => e.code(),
            Self::Random => "ERR_RANDOM",
        }
    }
}

impl From<WireError> for SignalError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<Truncated> for SignalError {
    fn from(_: Truncated) -> Self {
        Self::Malformed
    }
}

impl From<IdError> for SignalError {
    fn from(e: IdError) -> Self {
        Self::Id(e)
    }
}

impl From<RandomError> for SignalError {
    fn from(_: RandomError) -> Self {
        Self::Random
    }
}

/// Why a message was refused ([`Self::error`]), and who signed it ([`Self::signer`]) when its
/// signature had verified before a later check refused it: a refused replay, a stale message or
/// one for another device still names its signer, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub error: SignalError,
    /// The verified signer, if the refusal came after the signature check.
    pub signer: Option<Box<PeerIdentity>>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Refusal {}

impl ErrorCode for Refusal {
    fn code(&self) -> &'static str {
        self.error.code()
    }
}

impl From<SignalError> for Refusal {
    fn from(error: SignalError) -> Self {
        Self { error, signer: None }
    }
}

impl Description {
    /// A description dated `now` with a fresh nonce from the core's random source.
    pub fn new(
        from: &str,
        to: &str,
        tenant: &str,
        sdp: &str,
        epoch: u64,
        now: SystemTime,
    ) -> Result<Self, SignalError> {
        Ok(Self {
            from: from.to_owned(),
            to: to.to_owned(),
            tenant: tenant.to_owned(),
            sdp: sdp.to_owned(),
            ts_ms: millis(now),
            nonce: crate::rand::array()?,
            epoch,
        })
    }
}

impl Candidate {
    /// A candidate dated `now` with a fresh nonce from the core's random source.
    pub fn new(
        from: &str,
        to: &str,
        tenant: &str,
        offer_digest: [u8; 32],
        mid: &str,
        candidate: &str,
        now: SystemTime,
    ) -> Result<Self, SignalError> {
        Ok(Self {
            from: from.to_owned(),
            to: to.to_owned(),
            tenant: tenant.to_owned(),
            offer_digest,
            mid: mid.to_owned(),
            candidate: candidate.to_owned(),
            ts_ms: millis(now),
            nonce: crate::rand::array()?,
        })
    }
}

/// Signs an offer with `signer`, whose chain (DER, leaf first) is embedded. Fails with
/// [`SignalError::Sdp`] unless the SDP follows the rule, and with the errors of
/// [`Description::encode`] and [`SignedObject::sign`].
pub fn sign_offer(offer: &Description, chain: &[&[u8]], signer: &dyn CertSigner) -> Result<SignedObject, SignalError> {
    sdp_fingerprint(&offer.sdp)?;
    Ok(SignedObject::sign(labels::OFFER, chain, &offer.encode()?, signer)?)
}

/// Signs an answer; as [`sign_offer`].
pub fn sign_answer(answer: &Answer, chain: &[&[u8]], signer: &dyn CertSigner) -> Result<SignedObject, SignalError> {
    sdp_fingerprint(&answer.description.sdp)?;
    Ok(SignedObject::sign(labels::ANSWER, chain, &answer.encode()?, signer)?)
}

/// Signs an ICE candidate; the errors of [`Candidate::encode`] and [`SignedObject::sign`].
pub fn sign_candidate(
    candidate: &Candidate,
    chain: &[&[u8]],
    signer: &dyn CertSigner,
) -> Result<SignedObject, SignalError> {
    Ok(SignedObject::sign(labels::ICE_CANDIDATE, chain, &candidate.encode()?, signer)?)
}

/// Prepares an offer for a signature made outside the core ([`Unsigned`]); the checks of
/// [`sign_offer`] but the signer's.
pub fn prepare_offer(offer: &Description, chain: &[&[u8]]) -> Result<Unsigned, SignalError> {
    sdp_fingerprint(&offer.sdp)?;
    Ok(Unsigned::prepare(labels::OFFER, chain, &offer.encode()?)?)
}

/// Prepares an answer; as [`prepare_offer`].
pub fn prepare_answer(answer: &Answer, chain: &[&[u8]]) -> Result<Unsigned, SignalError> {
    sdp_fingerprint(&answer.description.sdp)?;
    Ok(Unsigned::prepare(labels::ANSWER, chain, &answer.encode()?)?)
}

/// Prepares an ICE candidate; as [`prepare_offer`].
pub fn prepare_candidate(candidate: &Candidate, chain: &[&[u8]]) -> Result<Unsigned, SignalError> {
    Ok(Unsigned::prepare(labels::ICE_CANDIDATE, chain, &candidate.encode()?)?)
}

/// An offer that passed every check of [`SignalVerifier::verify_offer`].
#[derive(Debug, Clone)]
pub struct VerifiedOffer {
    /// The signer, as `verify_peer` decided it.
    pub peer: PeerIdentity,
    /// What it offers.
    pub description: Description,
    /// Its signed-object digest: what the answer names.
    pub digest: [u8; 32],
}

/// An answer that passed every check of [`SignalVerifier::verify_answer`].
#[derive(Debug, Clone)]
pub struct VerifiedAnswer {
    /// The signer.
    pub peer: PeerIdentity,
    /// What it answers.
    pub answer: Answer,
    /// Its signed-object digest.
    pub digest: [u8; 32],
}

/// A candidate that passed every check of [`SignalVerifier::verify_candidate`].
#[derive(Debug, Clone)]
pub struct VerifiedCandidate {
    /// The signer.
    pub peer: PeerIdentity,
    /// The candidate.
    pub candidate: Candidate,
    /// Its signed-object digest.
    pub digest: [u8; 32],
}

/// The limits of a [`SignalVerifier`]'s replay window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// How old a message may be ([`DEFAULT_WINDOW`]).
    pub window: Duration,
    /// How far ahead a message may be dated ([`DEFAULT_FUTURE_SKEW`]).
    pub future_skew: Duration,
    /// How many live nonces are remembered ([`DEFAULT_CAPACITY`]).
    pub capacity: usize,
}

impl Default for WindowLimits {
    fn default() -> Self {
        Self { window: DEFAULT_WINDOW, future_skew: DEFAULT_FUTURE_SKEW, capacity: DEFAULT_CAPACITY }
    }
}

/// The device a message is expected from when it came over an authenticated link: its id and
/// tenant, as the link's `verify_peer` decided them.
#[derive(Debug, Clone, Copy)]
pub struct LinkPeer<'a> {
    /// The link peer's device id.
    pub device_id: &'a str,
    /// The link peer's tenant.
    pub tenant: &'a str,
}

/// The one receiver-side check of signed signaling for one device; see the module documentation.
#[derive(Debug)]
pub struct SignalVerifier {
    trust: SharedTrust,
    device_id: String,
    tenant: String,
    window: Mutex<ReplayWindow>,
}

/// Which kind of message a replay key is for, so that kinds never collide.
#[derive(Clone, Copy)]
enum Kind {
    Offer = 1,
    Answer = 2,
    Candidate = 3,
}

impl SignalVerifier {
    /// The verifier of device `device_id` of `tenant` (checked by the id rules), trusting
    /// `trust`'s anchors under `revocations`, with a replay window of `limits`.
    pub fn new(
        trust: TrustStore,
        revocations: RevocationSet,
        device_id: &str,
        tenant: &str,
        limits: WindowLimits,
    ) -> Result<Self, SignalError> {
        crate::ids::check_device_id(device_id)?;
        crate::ids::check_tenant(tenant)?;
        Ok(Self {
            trust: SharedTrust::new(trust, revocations),
            device_id: device_id.to_owned(),
            tenant: tenant.to_owned(),
            window: Mutex::new(ReplayWindow::new(limits.window, limits.future_skew, limits.capacity)?),
        })
    }

    /// Replaces the revocations: every message verified from now on is decided under them, and
    /// no verdict reached before survives.
    pub fn set_revocations(&self, revocations: RevocationSet) {
        self.trust.set_revocations(revocations);
    }

    /// How many nonces the replay window remembers.
    pub fn nonces(&self) -> usize {
        self.window.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Verifies an offer to this device at `now`; when it came over an authenticated link,
    /// `link` names the link's peer, which must be the signer.
    pub fn verify_offer(
        &self,
        bytes: &[u8],
        link: Option<LinkPeer<'_>>,
        now: SystemTime,
    ) -> Result<VerifiedOffer, Refusal> {
        let verified = self.signed(bytes, labels::OFFER, now)?;
        let description = signed_by(&verified.peer, || {
            let description = Description::decode(&verified.body)?;
            sdp_fingerprint(&description.sdp)?;
            self.routing(&verified.peer, &description.from, &description.to, &description.tenant)?;
            if link.is_some_and(|l| l.device_id != verified.peer.device_id || l.tenant != verified.peer.tenant) {
                return Err(SignalError::Link);
            }
            self.admit(Kind::Offer, &verified.peer, &description.nonce, description.ts_ms, now)?;
            Ok(description)
        })?;
        Ok(VerifiedOffer { peer: verified.peer, description, digest: verified.digest })
    }

    /// Verifies an answer to the offer whose digest is `offer_digest`, at `now`; `expected_from`
    /// (the offer's `to`) must be the signer when given.
    pub fn verify_answer(
        &self,
        bytes: &[u8],
        offer_digest: &[u8; 32],
        expected_from: Option<&str>,
        now: SystemTime,
    ) -> Result<VerifiedAnswer, Refusal> {
        let verified = self.signed(bytes, labels::ANSWER, now)?;
        let answer = signed_by(&verified.peer, || {
            let answer = Answer::decode(&verified.body)?;
            let description = &answer.description;
            sdp_fingerprint(&description.sdp)?;
            self.routing(&verified.peer, &description.from, &description.to, &description.tenant)?;
            expect(&answer.offer_digest, offer_digest, expected_from, &verified.peer)?;
            self.admit(Kind::Answer, &verified.peer, &description.nonce, description.ts_ms, now)?;
            Ok(answer)
        })?;
        Ok(VerifiedAnswer { peer: verified.peer, answer, digest: verified.digest })
    }

    /// Verifies an ICE candidate of the session of the offer whose digest is `offer_digest`, at
    /// `now`; `expected_from` must be the signer when given.
    pub fn verify_candidate(
        &self,
        bytes: &[u8],
        offer_digest: &[u8; 32],
        expected_from: Option<&str>,
        now: SystemTime,
    ) -> Result<VerifiedCandidate, Refusal> {
        let verified = self.signed(bytes, labels::ICE_CANDIDATE, now)?;
        let candidate = signed_by(&verified.peer, || {
            let candidate = Candidate::decode(&verified.body)?;
            self.routing(&verified.peer, &candidate.from, &candidate.to, &candidate.tenant)?;
            expect(&candidate.offer_digest, offer_digest, expected_from, &verified.peer)?;
            self.admit(Kind::Candidate, &verified.peer, &candidate.nonce, candidate.ts_ms, now)?;
            Ok(candidate)
        })?;
        Ok(VerifiedCandidate { peer: verified.peer, candidate, digest: verified.digest })
    }

    /// Step 1: the signed object under `label`, its chain decided under this verifier's tenant.
    fn signed(&self, bytes: &[u8], label: Label, now: SystemTime) -> Result<crate::wire::Verified, SignalError> {
        if bytes.len() > MAX_OBJECT_LEN {
            return Err(SignalError::TooLarge);
        }
        let policy = PeerPolicy { expected_tenant: Some(self.tenant.clone()), ..PeerPolicy::default() };
        Ok(SignedObject::decode(bytes)?.verify_decided(label, |chain| self.trust.decide(chain, &policy, now))?)
    }

    /// Step 3: sender, tenant and recipient.
    fn routing(&self, peer: &PeerIdentity, from: &str, to: &str, tenant: &str) -> Result<(), SignalError> {
        if from != peer.device_id {
            return Err(SignalError::Sender);
        }
        if tenant != peer.tenant || tenant != self.tenant {
            return Err(SignalError::Tenant);
        }
        if to != self.device_id {
            return Err(SignalError::Recipient);
        }
        Ok(())
    }

    /// Step 5: the time, then the nonce (bound to its kind and signer) in the window.
    fn admit(
        &self,
        kind: Kind,
        peer: &PeerIdentity,
        nonce: &[u8; NONCE_LEN],
        ts_ms: u64,
        now: SystemTime,
    ) -> Result<(), SignalError> {
        let mut key = Vec::with_capacity(2 + peer.device_id.len() + NONCE_LEN);
        key.push(kind as u8);
        key.push(u8::try_from(peer.device_id.len()).unwrap_or(u8::MAX));
        key.extend_from_slice(peer.device_id.as_bytes());
        key.extend_from_slice(nonce);
        self.window.lock().unwrap_or_else(PoisonError::into_inner).admit(sha256(&key), ts_ms, millis(now))
    }
}

/// The checks after the signature's: a refusal names the verified signer.
fn signed_by<T>(signer: &PeerIdentity, checks: impl FnOnce() -> Result<T, SignalError>) -> Result<T, Refusal> {
    checks().map_err(|error| Refusal { error, signer: Some(Box::new(signer.clone())) })
}

/// Step 4 of answers and candidates: the offer they name, and their signer.
fn expect(
    named: &[u8; 32],
    offer_digest: &[u8; 32],
    expected_from: Option<&str>,
    peer: &PeerIdentity,
) -> Result<(), SignalError> {
    if named != offer_digest || expected_from.is_some_and(|from| from != peer.device_id) {
        return Err(SignalError::Mismatch);
    }
    Ok(())
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
