//! Signed signaling (`ztmesh_core::signal`): conversions only. The core fills in the time and the
//! nonce, encodes, signs and verifies; JavaScript passes strings and bytes.

use std::time::{Duration, SystemTime};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::pki;
use ztmesh_core::signal::{self, Answer, Candidate, Description, LinkPeer, WindowLimits};
use ztmesh_core::wire::SignedObject;
use ztmesh_core::ErrorCode;

use crate::error::{invalid_argument, sync, Failure, Result};
use crate::pki::{counter_arg, hex, hex_arg, peer_identity, time_arg, PeerIdentity, RevocationSet, TrustStore};
use crate::signer::Signer;
use crate::wire::PreparedObject;

/// What an offer says, before the core dates it and draws its nonce.
#[napi(object)]
pub struct OfferInit {
    /// The sender: the signer's device id.
    pub from: String,
    /// The recipient's device id.
    pub to: String,
    /// The tenant of both.
    pub tenant: String,
    /// The SDP: exactly one `a=fingerprint:sha-256` (session or every media section), at most 16 KiB.
    pub sdp: String,
    /// The sender's trust epoch (a safe integer).
    pub epoch: f64,
}

/// What an answer says, before the core dates it and draws its nonce.
#[napi(object)]
pub struct AnswerInit {
    /// The answerer: the signer's device id.
    pub from: String,
    /// The offerer.
    pub to: String,
    /// The tenant of both.
    pub tenant: String,
    /// The answer's SDP, under the same rule as an offer's.
    pub sdp: String,
    /// The answerer's trust epoch.
    pub epoch: f64,
    /// The digest of the offer answered, 64 hex digits (`digest` of its verification).
    pub offer_digest: String,
}

/// What an ICE candidate says, before the core dates it and draws its nonce.
#[napi(object)]
pub struct CandidateInit {
    /// The sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The tenant of both.
    pub tenant: String,
    /// The digest of the offer of the session, 64 hex digits.
    pub offer_digest: String,
    /// The media id (at most 64 printable characters, no spaces).
    pub mid: String,
    /// The candidate line (at most 1024 printable characters; empty for end of candidates).
    pub candidate: String,
}

/// The body of a verified offer, or of a verified answer (then with `offerDigest`).
#[napi(object)]
pub struct SignalBody {
    /// The sender (the signer's device id).
    pub from: String,
    /// The recipient (this device).
    pub to: String,
    /// The tenant.
    pub tenant: String,
    /// The SDP.
    pub sdp: String,
    /// When it was signed, ms since the epoch.
    pub ts: f64,
    /// Its nonce, 32 hex digits.
    pub nonce: String,
    /// The sender's trust epoch.
    pub epoch: f64,
    /// For an answer: the digest of the offer it answers, hex.
    pub offer_digest: Option<String>,
}

/// The body of a verified ICE candidate.
#[napi(object)]
pub struct CandidateBody {
    /// The sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The tenant.
    pub tenant: String,
    /// The digest of the offer of the session, hex.
    pub offer_digest: String,
    /// The media id.
    pub mid: String,
    /// The candidate line.
    pub candidate: String,
    /// When it was signed, ms since the epoch.
    pub ts: f64,
    /// Its nonce, hex.
    pub nonce: String,
}

/// A verified offer or answer: who signed it, what it says, and its digest (hex).
#[napi(object)]
pub struct VerifiedSignal {
    /// The signer, as `verifyPeer` decided it.
    pub peer: PeerIdentity,
    /// What it says.
    pub body: SignalBody,
    /// Its signed-object digest, hex: what an answer names.
    pub digest: String,
}

/// A verified ICE candidate.
#[napi(object)]
pub struct VerifiedCandidate {
    /// The signer.
    pub peer: PeerIdentity,
    /// What it says.
    pub body: CandidateBody,
    /// Its signed-object digest, hex.
    pub digest: String,
}

/// Why a message was refused, and who signed it when its signature had verified first.
#[napi(object)]
pub struct SignalRefusal {
    /// The stable `ERR_…` code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The verified signer, when the refusal came after the signature check (a replay, a stale
    /// message, one for another device…): for the audit log.
    pub signer: Option<PeerIdentity>,
}

/// The outcome of checking an offer or answer: `verified`, or `refusal`.
#[napi(object)]
pub struct SignalOutcome {
    /// The message, when every check passed.
    pub verified: Option<VerifiedSignal>,
    /// Why it was refused, otherwise.
    pub refusal: Option<SignalRefusal>,
}

/// The outcome of checking an ICE candidate: `verified`, or `refusal`.
#[napi(object)]
pub struct CandidateOutcome {
    /// The candidate, when every check passed.
    pub verified: Option<VerifiedCandidate>,
    /// Why it was refused, otherwise.
    pub refusal: Option<SignalRefusal>,
}

/// The limits of a verifier's replay window.
#[napi(object)]
pub struct SignalWindowInit {
    /// How old a message may be, ms (default 60000).
    pub window_ms: Option<f64>,
    /// How far ahead a message may be dated, ms (default 5000).
    pub future_skew_ms: Option<f64>,
    /// How many live nonces are remembered (default 65536, at most 4194304); when full, new
    /// messages are refused with `ERR_REPLAY_FULL`.
    pub max_nonces: Option<f64>,
}

/// Where a message is checked from: the link it came over, the sender expected, the time.
#[napi(object)]
pub struct SignalCheck {
    /// The device id of the authenticated peer of the link the offer came over.
    pub link_device: Option<String>,
    /// That peer's tenant (required with `linkDevice`).
    pub link_tenant: Option<String>,
    /// For answers and candidates: the device that must have signed (the offer's `to`).
    pub expected_from: Option<String>,
    /// The time to verify at, ms since the epoch (default now).
    pub now_ms: Option<f64>,
}

/// Signs an offer with `signer` and its chain (PEM, leaf first); the core dates it and draws its
/// nonce. Throws `ERR_SIGNAL_SDP`, `ERR_IDENTITY`, `ERR_MESSAGE_SIZE`, `ERR_KEY_MISMATCH`.
#[napi]
pub fn sign_offer(init: OfferInit, chain_pem: String, signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let description = offer_of(&init)?;
        signed(&chain_pem, signer, |chain, key| signal::sign_offer(&description, chain, key))
    })
}

/// Signs an answer; as `signOffer`, and `ERR_INVALID_ARG` for an offer digest that is not 64 hex digits.
#[napi]
pub fn sign_answer(init: AnswerInit, chain_pem: String, signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let answer = answer_of(&init)?;
        signed(&chain_pem, signer, |chain, key| signal::sign_answer(&answer, chain, key))
    })
}

/// Signs an ICE candidate; throws `ERR_IDENTITY`, `ERR_MESSAGE_SIZE`, `ERR_KEY_MISMATCH`, `ERR_INVALID_ARG`.
#[napi]
pub fn sign_candidate(init: CandidateInit, chain_pem: String, signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let candidate = candidate_of(&init)?;
        signed(&chain_pem, signer, |chain, key| signal::sign_candidate(&candidate, chain, key))
    })
}

/// The SHA-256 DTLS fingerprint an SDP commits to, 64 lowercase hex digits. Throws
/// `ERR_SIGNAL_SDP` unless there is exactly one, sha-256, agreed by every section.
#[napi]
pub fn sdp_fingerprint(sdp: String) -> Result<String> {
    sync(|| Ok(hex(&signal::sdp_fingerprint(&sdp)?)))
}

/// The size limits of signed signaling, in bytes.
#[napi(object)]
pub struct SignalLimits {
    /// The longest signed offer, answer or candidate a verifier reads (`ERR_MESSAGE_SIZE` beyond).
    pub max_object_len: u32,
    /// The longest SDP.
    pub max_sdp_len: u32,
    /// The longest ICE candidate line.
    pub max_candidate_len: u32,
}

/// The size limits of signed signaling.
#[napi]
pub fn signal_limits() -> SignalLimits {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    SignalLimits {
        max_object_len: len(signal::MAX_OBJECT_LEN),
        max_sdp_len: len(signal::MAX_SDP_LEN),
        max_candidate_len: len(signal::MAX_CANDIDATE_LEN),
    }
}

/// The receiver-side check of signed offers, answers and candidates for one device, with its
/// replay window.
#[napi]
pub struct SignalVerifier {
    inner: signal::SignalVerifier,
}

#[napi]
impl SignalVerifier {
    /// The verifier of device `deviceId` of `tenant`, trusting `trust` under `revocations`.
    #[napi(constructor)]
    pub fn new(
        trust: &TrustStore,
        revocations: &RevocationSet,
        device_id: String,
        tenant: String,
        init: Option<SignalWindowInit>,
    ) -> Result<Self> {
        sync(|| {
            let mut limits = WindowLimits::default();
            if let Some(init) = init {
                if let Some(ms) = init.window_ms {
                    limits.window = Duration::from_millis(counter_arg("windowMs", ms)?);
                }
                if let Some(ms) = init.future_skew_ms {
                    limits.future_skew = Duration::from_millis(counter_arg("futureSkewMs", ms)?);
                }
                if let Some(max) = init.max_nonces {
                    limits.capacity = usize::try_from(counter_arg("maxNonces", max)?)
                        .map_err(|_| invalid_argument("maxNonces is too large"))?;
                }
            }
            let inner = signal::SignalVerifier::new(
                trust.inner.clone(),
                revocations.inner.clone(),
                &device_id,
                &tenant,
                limits,
            )?;
            Ok(Self { inner })
        })
    }

    /// Checks an offer to this device: the signed object (chain, expiry, tenant, revocation,
    /// signature), the body and its SDP, from = signer, tenant, to = this device, the link's peer
    /// if given, then time and nonce. A refusal is returned (with its code, and the signer when
    /// the signature had verified), not thrown; only bad arguments throw (`ERR_INVALID_ARG`).
    #[napi]
    pub fn check_offer(&self, object: &[u8], check: Option<SignalCheck>) -> Result<SignalOutcome> {
        sync(|| {
            let (check, now) = check_arg(check)?;
            let link = match (&check.link_device, &check.link_tenant) {
                (Some(device_id), Some(tenant)) => Some(LinkPeer { device_id, tenant }),
                (None, None) => None,
                _ => return Err(invalid_argument("linkDevice and linkTenant go together")),
            };
            Ok(match self.inner.verify_offer(object, link, now) {
                Ok(v) => verified(VerifiedSignal {
                    peer: peer_identity(v.peer),
                    body: body(v.description, None),
                    digest: hex(&v.digest),
                }),
                Err(refusal) => refused(refusal),
            })
        })
    }

    /// Checks an answer to the offer whose digest is `offerDigest` (hex); `check.expectedFrom`
    /// (the device offered to) must be its signer when given (`ERR_SIGNAL_MISMATCH`). As
    /// `checkOffer`, a refusal is returned.
    #[napi]
    pub fn check_answer(
        &self,
        object: &[u8],
        offer_digest: String,
        check: Option<SignalCheck>,
    ) -> Result<SignalOutcome> {
        sync(|| {
            let (check, now) = check_arg(check)?;
            let digest = digest_arg(&offer_digest)?;
            Ok(match self.inner.verify_answer(object, &digest, check.expected_from.as_deref(), now) {
                Ok(v) => verified(VerifiedSignal {
                    peer: peer_identity(v.peer),
                    body: body(v.answer.description, Some(&v.answer.offer_digest)),
                    digest: hex(&v.digest),
                }),
                Err(refusal) => refused(refusal),
            })
        })
    }

    /// Checks an ICE candidate of the session of the offer whose digest is `offerDigest`. As
    /// `checkOffer`, a refusal is returned.
    #[napi]
    pub fn check_candidate(
        &self,
        object: &[u8],
        offer_digest: String,
        check: Option<SignalCheck>,
    ) -> Result<CandidateOutcome> {
        sync(|| {
            let (check, now) = check_arg(check)?;
            let digest = digest_arg(&offer_digest)?;
            Ok(match self.inner.verify_candidate(object, &digest, check.expected_from.as_deref(), now) {
                Ok(v) => {
                    let c = v.candidate;
                    let body = CandidateBody {
                        from: c.from,
                        to: c.to,
                        tenant: c.tenant,
                        offer_digest: hex(&c.offer_digest),
                        mid: c.mid,
                        candidate: c.candidate,
                        ts: c.ts_ms as f64,
                        nonce: hex(&c.nonce),
                    };
                    CandidateOutcome {
                        verified: Some(VerifiedCandidate { peer: peer_identity(v.peer), body, digest: hex(&v.digest) }),
                        refusal: None,
                    }
                }
                Err(refusal) => CandidateOutcome { verified: None, refusal: Some(refusal_of(refusal)) },
            })
        })
    }

    /// Replaces the revocations; no verdict reached before survives.
    #[napi]
    pub fn set_revocations(&self, revocations: &RevocationSet) {
        self.inner.set_revocations(revocations.inner.clone());
    }

    /// How many nonces the replay window remembers.
    #[napi(getter)]
    pub fn nonces(&self) -> u32 {
        u32::try_from(self.inner.nonces()).unwrap_or(u32::MAX)
    }
}

/// Parses the chain, binds the signer to its leaf, signs with `sign` and encodes.
fn signed(
    chain_pem: &str,
    signer: &Signer,
    sign: impl FnOnce(&[&[u8]], &dyn pki::CertSigner) -> std::result::Result<SignedObject, signal::SignalError>,
) -> std::result::Result<Buffer, Failure> {
    let chain = pki::pem::parse_certificates(chain_pem)?;
    let key = signer.for_chain(&chain)?;
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    Ok(sign(&chain, key.as_ref())?.encode().into())
}

fn verified(signal: VerifiedSignal) -> SignalOutcome {
    SignalOutcome { verified: Some(signal), refusal: None }
}

fn refused(refusal: signal::Refusal) -> SignalOutcome {
    SignalOutcome { verified: None, refusal: Some(refusal_of(refusal)) }
}

fn refusal_of(refusal: signal::Refusal) -> SignalRefusal {
    SignalRefusal {
        code: refusal.code().to_owned(),
        message: refusal.to_string(),
        signer: refusal.signer.map(|signer| peer_identity(*signer)),
    }
}

fn check_arg(check: Option<SignalCheck>) -> std::result::Result<(SignalCheck, SystemTime), Failure> {
    let check =
        check.unwrap_or(SignalCheck { link_device: None, link_tenant: None, expected_from: None, now_ms: None });
    let now = check.now_ms.map_or(Ok(SystemTime::now()), |ms| time_arg("nowMs", ms))?;
    Ok((check, now))
}

fn digest_arg(text: &str) -> std::result::Result<[u8; 32], Failure> {
    if text.len() != 64 {
        return Err(invalid_argument("offerDigest must be 64 hex digits"));
    }
    hex_arg("offerDigest", text)?.try_into().map_err(|_| invalid_argument("offerDigest must be 64 hex digits"))
}

fn body(d: Description, offer_digest: Option<&[u8; 32]>) -> SignalBody {
    SignalBody {
        from: d.from,
        to: d.to,
        tenant: d.tenant,
        sdp: d.sdp,
        ts: d.ts_ms as f64,
        nonce: hex(&d.nonce),
        epoch: d.epoch as f64,
        offer_digest: offer_digest.map(|digest| hex(digest)),
    }
}

/// Prepares an offer for a signature made outside the core (`PreparedObject`); the core dates
/// it and draws its nonce, as `signOffer` does. Throws `signOffer`'s codes but `ERR_KEY_MISMATCH`.
#[napi]
pub fn prepare_offer(init: OfferInit, chain_pem: String) -> Result<PreparedObject> {
    sync(|| {
        let description = offer_of(&init)?;
        prepared(&chain_pem, |chain| signal::prepare_offer(&description, chain))
    })
}

/// Prepares an answer; as `prepareOffer`.
#[napi]
pub fn prepare_answer(init: AnswerInit, chain_pem: String) -> Result<PreparedObject> {
    sync(|| {
        let answer = answer_of(&init)?;
        prepared(&chain_pem, |chain| signal::prepare_answer(&answer, chain))
    })
}

/// Prepares an ICE candidate; as `prepareOffer`.
#[napi]
pub fn prepare_candidate(init: CandidateInit, chain_pem: String) -> Result<PreparedObject> {
    sync(|| {
        let candidate = candidate_of(&init)?;
        prepared(&chain_pem, |chain| signal::prepare_candidate(&candidate, chain))
    })
}

fn prepared(
    chain_pem: &str,
    prepare: impl FnOnce(
        &[&[u8]],
    ) -> std::result::Result<ztmesh_core::wire::signed::external::Unsigned, signal::SignalError>,
) -> std::result::Result<PreparedObject, Failure> {
    let chain = pki::pem::parse_certificates(chain_pem)?;
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    Ok(PreparedObject::new(prepare(&chain)?))
}

/// The offer `init` describes, dated now with a fresh nonce.
fn offer_of(init: &OfferInit) -> std::result::Result<Description, Failure> {
    description(&init.from, &init.to, &init.tenant, &init.sdp, init.epoch)
}

/// The answer `init` describes, dated now with a fresh nonce.
fn answer_of(init: &AnswerInit) -> std::result::Result<Answer, Failure> {
    let description = description(&init.from, &init.to, &init.tenant, &init.sdp, init.epoch)?;
    Ok(Answer { description, offer_digest: digest_arg(&init.offer_digest)? })
}

fn description(from: &str, to: &str, tenant: &str, sdp: &str, epoch: f64) -> std::result::Result<Description, Failure> {
    Ok(Description::new(from, to, tenant, sdp, counter_arg("epoch", epoch)?, SystemTime::now())?)
}

/// The candidate `init` describes, dated now with a fresh nonce.
fn candidate_of(init: &CandidateInit) -> std::result::Result<Candidate, Failure> {
    Ok(Candidate::new(
        &init.from,
        &init.to,
        &init.tenant,
        digest_arg(&init.offer_digest)?,
        &init.mid,
        &init.candidate,
        SystemTime::now(),
    )?)
}
