//! Signed objects (`ztmesh_core::wire`), the identifier rulebook (`ztmesh_core::ids`) and
//! certificate inspection: conversions only.
//!
//! Labels cross by their short name (`'test'`, later `'offer'`…), which the core maps through
//! its registry; JavaScript never builds the signed bytes.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::pki;
use ztmesh_core::wire::signed::external::Unsigned;
use ztmesh_core::wire::{challenge, checkpoint, labels, presence, Label, SignedObject, WireError};

use crate::error::{invalid_argument, sync, Failure, Result};
use crate::pki::{
    counter_arg, hex, hex_arg, millis, peer_identity, peer_policy, PeerIdentity, PeerPolicyInit, RevocationSet,
    TrustStore,
};
use crate::signer::Signer;

/// Signs `body` as a signed object under the label named `label` with `signer`, embedding the
/// signer's chain (PEM, leaf first, at most 3). Throws `ERR_WIRE_LABEL` for a name that is not a signed-object label,
/// `ERR_MESSAGE_SIZE` when a field is too large, `ERR_KEY_MISMATCH` when the key is not the
/// leaf's.
#[napi]
pub fn sign_object(label: String, chain_pem: String, body: &[u8], signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let label = label_arg(&label)?;
        let chain = pki::pem::parse_certificates(&chain_pem)?;
        let signer = signer.for_chain(&chain)?;
        let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        Ok(SignedObject::sign(label, &chain, body, signer.as_ref())?.encode().into())
    })
}

/// The digest of a signed object (hex, as its verification reports it): what an answer names
/// its offer by. It makes no trust decision, so it is for objects this side signed itself.
/// Throws `ERR_WIRE_MALFORMED` or `ERR_WIRE_VERSION` for bytes that are not a signed object.
#[napi]
pub fn signed_object_digest(object: &[u8]) -> Result<String> {
    sync(|| Ok(hex(&SignedObject::decode(object)?.digest())))
}

/// A verified signed object: who signed it and what.
#[napi(object)]
pub struct VerifiedObject {
    /// The signer, as `verifyPeer` decided it.
    pub peer: PeerIdentity,
    /// The body it signed.
    pub body: Buffer,
    /// The object's identity for deduplication, hex: SHA-256 of what the signature covers
    /// (label, the leaf certificate's hash, body) and the signature; the site CA and root are
    /// left out (a relay re-encoding them does not change it).
    pub digest: String,
}

/// Verifies a signed object for the purpose named `label`: the label, the embedded chain
/// (`verifyPeer` with `trust`, `revocations` and `policy`), then the signature. Throws
/// `ERR_WIRE_MALFORMED`, `ERR_WIRE_VERSION`, `ERR_WIRE_LABEL`, `ERR_SIGNATURE` or a PKI code
/// (`ERR_CERT_REVOKED`, `ERR_TENANT_MISMATCH`, `ERR_CHAIN`…).
#[napi]
pub fn verify_object(
    object: &[u8],
    label: String,
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: PeerPolicyInit,
) -> Result<VerifiedObject> {
    sync(|| {
        let label = label_arg(&label)?;
        let (rules, now) = peer_policy(policy)?;
        let verified = ztmesh_core::wire::signed::verify(object, label, &trust.inner, &revocations.inner, &rules, now)?;
        Ok(VerifiedObject {
            peer: peer_identity(verified.peer),
            body: verified.body.into(),
            digest: hex(&verified.digest),
        })
    })
}

/// The short names of the labels signed objects may be signed under.
#[napi]
pub fn signed_object_labels() -> Vec<String> {
    labels::SIGNED_OBJECTS.iter().map(|(name, _)| (*name).to_owned()).collect()
}

/// What an audit checkpoint says: log `logId` had `seq` records, the last with chain hash
/// `headSha256`, at `atMs`.
#[napi(object)]
pub struct AuditCheckpoint {
    /// Which log: 1-64 printable ASCII characters, no spaces.
    pub log_id: String,
    /// The number of the last record covered (the first is 1).
    pub seq: f64,
    /// The chain hash of record `seq`, 64 hex digits.
    pub head_sha256: String,
    /// When it was signed, ms since the epoch.
    pub at_ms: f64,
}

/// A checkpoint that verified, with its signer.
#[napi(object)]
pub struct VerifiedAuditCheckpoint {
    /// What it says.
    pub checkpoint: AuditCheckpoint,
    /// Who signed it, as `verifyPeer` decided at the checkpoint's time.
    pub peer: PeerIdentity,
    /// The signed object's digest, hex.
    pub digest: String,
}

/// Signs an audit checkpoint as a signed object under the `audit-checkpoint` label with
/// `signer` and its chain (PEM, leaf first). Throws `ERR_INVALID_ARG` for a field out of range,
/// `ERR_MESSAGE_SIZE` for a log id that is not 1-64 printable characters, `ERR_KEY_MISMATCH`.
#[napi]
pub fn sign_audit_checkpoint(checkpoint: AuditCheckpoint, chain_pem: String, signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let head = hex_arg("headSha256", &checkpoint.head_sha256)?;
        let checkpoint = checkpoint::Checkpoint {
            log_id: checkpoint.log_id,
            seq: counter_arg("seq", checkpoint.seq)?,
            head: head.try_into().map_err(|_| invalid_argument("headSha256 must be 64 hex digits"))?,
            at_ms: counter_arg("atMs", checkpoint.at_ms)?,
        };
        let chain = pki::pem::parse_certificates(&chain_pem)?;
        let signer = signer.for_chain(&chain)?;
        let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        Ok(checkpoint.sign(&chain, signer.as_ref())?.encode().into())
    })
}

/// Verifies a signed audit checkpoint: its label and body, the signer's chain (`trust`,
/// `revocations`, `policy`) at the time the checkpoint carries (`policy.nowMs` is not used),
/// then the signature. Throws the codes of `verifyObject`.
#[napi]
pub fn verify_audit_checkpoint(
    object: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: PeerPolicyInit,
) -> Result<VerifiedAuditCheckpoint> {
    sync(|| {
        let (rules, _) = peer_policy(policy)?;
        let verified = checkpoint::verify(object, &trust.inner, &revocations.inner, &rules)?;
        let checkpoint = verified.checkpoint;
        Ok(VerifiedAuditCheckpoint {
            checkpoint: AuditCheckpoint {
                log_id: checkpoint.log_id,
                seq: checkpoint.seq as f64,
                head_sha256: hex(&checkpoint.head),
                at_ms: checkpoint.at_ms as f64,
            },
            peer: peer_identity(verified.peer),
            digest: hex(&verified.digest),
        })
    })
}

/// What a presence lease says: device `deviceId` of `tenant` is reachable through hub `hubId`
/// from `issuedAtMs` until `expiresAtMs`; lease number `seq`.
#[napi(object)]
pub struct PresenceLease {
    pub device_id: String,
    pub tenant: String,
    pub hub_id: String,
    /// ≥ 1; grows with each lease the device signs.
    pub seq: f64,
    pub issued_at_ms: f64,
    /// After `issuedAtMs`, by at most 10 minutes.
    pub expires_at_ms: f64,
}

/// A presence lease that verified, with its signer.
#[napi(object)]
pub struct VerifiedPresenceLease {
    pub lease: PresenceLease,
    /// The device that signed it (the one the lease names).
    pub peer: PeerIdentity,
    /// The signed object's digest, hex.
    pub digest: String,
}

/// Signs a presence lease as a signed object under the `presence` label with `signer` and its
/// chain (PEM, leaf first). Throws `ERR_INVALID_ARG` for a number out of range,
/// `ERR_MESSAGE_SIZE` for an id out of range, `ERR_WIRE_MALFORMED` for seq 0 or a bad validity,
/// `ERR_KEY_MISMATCH`.
#[napi]
pub fn sign_presence_lease(lease: PresenceLease, chain_pem: String, signer: &Signer) -> Result<Buffer> {
    sync(|| {
        let lease = lease_arg(lease)?;
        let chain = pki::pem::parse_certificates(&chain_pem)?;
        let signer = signer.for_chain(&chain)?;
        let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        Ok(lease.sign(&chain, signer.as_ref())?.encode().into())
    })
}

/// Verifies a signed presence lease at `policy.nowMs` (default now): label and body, the
/// signer's chain (`trust`, `revocations`, `policy`), that the signer is the device and tenant
/// the lease names (`ERR_PRESENCE_MISMATCH`), and that it is valid now (`ERR_PRESENCE_EXPIRED`).
#[napi]
pub fn verify_presence_lease(
    object: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: PeerPolicyInit,
) -> Result<VerifiedPresenceLease> {
    sync(|| {
        let (rules, now) = peer_policy(policy)?;
        let verified = presence::verify(object, &trust.inner, &revocations.inner, &rules, now)?;
        let lease = verified.lease;
        Ok(VerifiedPresenceLease {
            lease: PresenceLease {
                device_id: lease.device_id,
                tenant: lease.tenant,
                hub_id: lease.hub_id,
                seq: lease.seq as f64,
                issued_at_ms: lease.issued_at_ms as f64,
                expires_at_ms: lease.expires_at_ms as f64,
            },
            peer: peer_identity(verified.peer),
            digest: hex(&verified.digest),
        })
    })
}

/// Throws `ERR_IDENTITY` unless `deviceId` is 1-64 characters of `[A-Za-z0-9._-]`, not `.`/`..`.
#[napi]
pub fn check_device_id(device_id: String) -> Result<()> {
    sync(|| Ok(ztmesh_core::ids::check_device_id(&device_id)?))
}

/// Throws `ERR_IDENTITY` unless `tenant` follows the device id rule.
#[napi]
pub fn check_tenant(tenant: String) -> Result<()> {
    sync(|| Ok(ztmesh_core::ids::check_tenant(&tenant)?))
}

/// Throws `ERR_IDENTITY` unless every role is 1-64 characters of `[A-Za-z0-9._:-]`, none is
/// repeated, and there are at most 32.
#[napi]
pub fn check_roles(roles: Vec<String>) -> Result<()> {
    sync(|| Ok(ztmesh_core::ids::check_roles(&roles)?))
}

/// The one spelling of a serial (lowercase hex, no leading zero byte) from what a user typed
/// (optional `0x`, any case, leading zeros). Throws `ERR_SERIAL`.
#[napi]
pub fn normalize_serial(serial: String) -> Result<String> {
    sync(|| Ok(ztmesh_core::ids::normalize_serial(&serial)?))
}

/// The one spelling of a key digest (SPKI SHA-256: 64 lowercase hex digits) from what a user
/// typed (any case, optionally `:` between bytes). Throws `ERR_INVALID_ARG`.
#[napi]
pub fn normalize_key_digest(digest: String) -> Result<String> {
    sync(|| Ok(ztmesh_core::ids::normalize_key_digest(&digest)?))
}

/// What a certificate says, untrusted: read without checking any signature, validity or
/// revocation (use `verifyPeer` to decide a peer).
#[napi(object)]
pub struct UntrustedCertificateFacts {
    /// The subject's CN (the device id), if it has exactly one.
    pub device_id: Option<String>,
    /// The subject's OU (the tenant), if it has exactly one.
    pub tenant: Option<String>,
    /// The roles among its SAN URIs.
    pub roles: Vec<String>,
    /// The serial in its one spelling, if it is a valid serial.
    pub serial: Option<String>,
    /// Start of validity, ms since the epoch.
    pub not_before_ms: f64,
    /// End of validity, ms since the epoch.
    pub not_after_ms: f64,
    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
}

/// Reads the facts of the first certificate in `pem`, with no trust decision. Throws
/// `ERR_CERT_MALFORMED` or `ERR_PEM`.
#[napi]
pub fn inspect_certificate(pem: String) -> Result<UntrustedCertificateFacts> {
    sync(|| {
        let chain = pki::pem::parse_certificates(&pem)?;
        let first = chain.first().ok_or_else(|| Failure::new("ERR_CERT_MALFORMED", "no certificate"))?;
        let facts = pki::inspect_certificate(first)?;
        Ok(UntrustedCertificateFacts {
            device_id: facts.device_id,
            tenant: facts.tenant,
            roles: facts.roles,
            serial: facts.serial,
            not_before_ms: millis(facts.not_before),
            not_after_ms: millis(facts.not_after),
            spki_sha256: hex(&facts.spki_sha256),
            is_ca: facts.is_ca,
        })
    })
}

/// SHA-256 (hex) of an attestation key's SubjectPublicKeyInfo, from its `PUBLIC KEY` PEM: two
/// spellings of one key give the same value. Throws `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn ak_public_key_sha256(ak_public_pem: String) -> Result<String> {
    sync(|| Ok(hex(&ztmesh_core::attest::AkPublicKey::from_pem(&ak_public_pem)?.spki_sha256())))
}

fn label_arg(name: &str) -> std::result::Result<Label, Failure> {
    labels::signed_object(name).ok_or_else(|| Failure::from(WireError::Label))
}

/// A signed object waiting for a signature made outside the core (a browser's non-extractable
/// WebCrypto key): label, chain and body are fixed when it is prepared; `toBeSigned` is the
/// exact message to sign; `assemble` takes the signature (P1363 `r ‖ s` or DER), normalises and
/// verifies it under the leaf's key, and returns the encoded object. Single use.
#[napi]
pub struct PreparedObject {
    inner: std::sync::Mutex<Option<Unsigned>>,
}

#[napi]
impl PreparedObject {
    /// Prepares `body` under the label named `label` for the chain (PEM, leaf first). Throws
    /// `ERR_WIRE_LABEL`, `ERR_MESSAGE_SIZE`, `ERR_CERT_MALFORMED`-family codes for a bad leaf.
    #[napi(factory)]
    pub fn object(label: String, chain_pem: String, body: &[u8]) -> Result<PreparedObject> {
        sync(|| {
            let label = label_arg(&label)?;
            let chain = pki::pem::parse_certificates(&chain_pem)?;
            let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            Ok(PreparedObject::new(Unsigned::prepare(label, &chain, body)?))
        })
    }

    /// Prepares a presence lease (as `signPresenceLease`) for the chain (PEM, leaf first).
    #[napi(factory)]
    pub fn presence_lease(lease: PresenceLease, chain_pem: String) -> Result<PreparedObject> {
        sync(|| {
            let lease = lease_arg(lease)?;
            let chain = pki::pem::parse_certificates(&chain_pem)?;
            let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            Ok(PreparedObject::new(Unsigned::prepare(labels::PRESENCE, &chain, &lease.encode()?)?))
        })
    }

    /// The exact bytes to sign (ECDSA P-256 with SHA-256). Throws `ERR_CLOSED` once assembled.
    #[napi(getter)]
    pub fn to_be_signed(&self) -> Result<Buffer> {
        sync(|| {
            let inner = self.inner.lock().map_err(|_| Failure::new("ERR_INTERNAL", "lock poisoned"))?;
            let prepared = inner.as_ref().ok_or_else(|| Failure::new("ERR_CLOSED", "already assembled"))?;
            Ok(prepared.to_be_signed().into())
        })
    }

    /// Completes the object with `signature` and returns its encoding; verified under the leaf's
    /// key first (`ERR_SIGNATURE`). Consumes the prepared object (`ERR_CLOSED` after), whether
    /// the signature verified or not.
    #[napi]
    pub fn assemble(&self, signature: &[u8]) -> Result<Buffer> {
        sync(|| {
            let prepared = self
                .inner
                .lock()
                .map_err(|_| Failure::new("ERR_INTERNAL", "lock poisoned"))?
                .take()
                .ok_or_else(|| Failure::new("ERR_CLOSED", "already assembled"))?;
            Ok(prepared.assemble(signature)?.encode().into())
        })
    }
}

impl PreparedObject {
    pub(crate) fn new(prepared: Unsigned) -> Self {
        Self { inner: std::sync::Mutex::new(Some(prepared)) }
    }
}

/// A fresh hub challenge of `hubId` (its body bytes: version, hub id, time, 16 random bytes):
/// what the hub keeps for one connection and sends to the client to sign under `hub-challenge`.
#[napi]
pub fn hub_challenge(hub_id: String) -> Result<Buffer> {
    sync(|| Ok(challenge::Challenge::new(&hub_id, std::time::SystemTime::now())?.encode().into()))
}

/// Verifies a client's answer to the challenge `issued` (the exact bytes `hubChallenge`
/// returned): the label, that it signs those bytes and they are at most `maxAgeMs` old
/// (`ERR_HUB_CHALLENGE`), then the chain (`trust`, `revocations`, `policy`) and the signature.
#[napi]
pub fn verify_hub_challenge(
    answer: &[u8],
    issued: &[u8],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: PeerPolicyInit,
    max_age_ms: u32,
) -> Result<VerifiedObject> {
    sync(|| {
        let (rules, now) = peer_policy(policy)?;
        let max_age = std::time::Duration::from_millis(u64::from(max_age_ms));
        let verified = challenge::verify(answer, issued, &trust.inner, &revocations.inner, &rules, max_age, now)?;
        Ok(VerifiedObject {
            peer: peer_identity(verified.peer),
            body: verified.body.into(),
            digest: hex(&verified.digest),
        })
    })
}

fn lease_arg(lease: PresenceLease) -> std::result::Result<presence::Lease, Failure> {
    Ok(presence::Lease {
        device_id: lease.device_id,
        tenant: lease.tenant,
        hub_id: lease.hub_id,
        seq: counter_arg("seq", lease.seq)?,
        issued_at_ms: counter_arg("issuedAtMs", lease.issued_at_ms)?,
        expires_at_ms: counter_arg("expiresAtMs", lease.expires_at_ms)?,
    })
}
