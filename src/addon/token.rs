//! Enrollment tokens and the device's check of the CA's answer (`ztmesh_core::enroll`): the
//! token codec, its id, MAC key and proofs, and `check_answer`.

use napi_derive::napi;
use ztmesh_core::enroll::{self as core, Anchor, EnrollmentToken, ExpectedCertificate};
use ztmesh_core::pki::TrustStore;

use crate::enroll::{hex32, hex_bytes};
use crate::error::{invalid_argument, sync, Result};
use crate::pki::{hex, peer_identity, time_arg, PeerIdentity};

/// A new enrollment token, with what the CA stores of it.
#[napi(object)]
pub struct NewEnrollmentToken {
    /// The token (`ztm2.…`), a secret: show it once.
    pub token: String,
    /// Its id, hex: what the CA looks it up by.
    pub id: String,
    /// The public key of its proofs (Ed25519), hex: what the CA checks requests with.
    pub proof_key: String,
}

/// What an enrollment token says (its secret stays inside).
#[napi(object)]
pub struct EnrollmentTokenFacts {
    /// Its id, hex.
    pub id: String,
    /// The SHA-256 of the root's SubjectPublicKeyInfo, hex: the device's trust anchor.
    pub root_spki_sha256: String,
    /// The tenant the certificate must name.
    pub tenant: String,
    /// The device id the certificate must name.
    pub device_id: String,
}

/// Creates a token for `deviceId` of `tenant` under the root whose SPKI SHA-256 is
/// `rootSpkiSha256` (hex). `ERR_INVALID_ARG` for an invalid id or hash.
#[napi]
pub fn generate_enrollment_token(
    root_spki_sha256: String,
    tenant: String,
    device_id: String,
) -> Result<NewEnrollmentToken> {
    sync(|| {
        let token = EnrollmentToken::generate(hex32("rootSpkiSha256", &root_spki_sha256)?, &tenant, &device_id)?;
        Ok(NewEnrollmentToken {
            token: token.encode().to_string(),
            id: hex(&token.id()),
            proof_key: hex(&token.proof_key()?),
        })
    })
}

/// Decodes a token; `ERR_TOKEN_INVALID`.
#[napi]
pub fn decode_enrollment_token(token: String) -> Result<EnrollmentTokenFacts> {
    sync(|| {
        let token = EnrollmentToken::decode(&token)?;
        Ok(EnrollmentTokenFacts {
            id: hex(&token.id()),
            root_spki_sha256: hex(&token.root_spki_sha256()),
            tenant: token.tenant().to_owned(),
            device_id: token.device_id().to_owned(),
        })
    })
}

/// The token's proof (hex) over an enrollment request for `csr` (the exact text sent) and
/// `nodeId`; `ERR_TOKEN_INVALID`.
#[napi]
pub fn enrollment_token_proof(token: String, csr: String, node_id: Option<String>) -> Result<String> {
    sync(|| Ok(hex(&EnrollmentToken::decode(&token)?.prove_enrollment(&csr, node_id.as_deref())?)))
}

/// The token's proof (hex) over a nonce request for `nodeId`; `ERR_TOKEN_INVALID`.
#[napi]
pub fn nonce_request_proof(token: String, node_id: String) -> Result<String> {
    sync(|| Ok(hex(&EnrollmentToken::decode(&token)?.prove_nonce_request(&node_id)?)))
}

/// Checks an enrollment request's proof under the token's proof key (hex); `ERR_TOKEN_PROOF`
/// when it is not the proof of this CSR and node id.
#[napi]
pub fn verify_enrollment_proof(proof_key: String, csr: String, node_id: Option<String>, proof: String) -> Result<()> {
    sync(|| {
        Ok(core::verify_enrollment_proof(
            &hex32("proofKey", &proof_key)?,
            &csr,
            node_id.as_deref(),
            &hex_bytes::<64>("proof", &proof)?,
        )?)
    })
}

/// Checks a nonce request's proof under the token's proof key (hex); `ERR_TOKEN_PROOF`.
#[napi]
pub fn verify_nonce_proof(proof_key: String, node_id: String, proof: String) -> Result<()> {
    sync(|| {
        Ok(core::verify_nonce_proof(&hex32("proofKey", &proof_key)?, &node_id, &hex_bytes::<64>("proof", &proof)?)?)
    })
}

/// The CA's answer, as the device checks it.
#[napi(object)]
pub struct AnswerToCheck {
    /// The issued certificate, PEM.
    pub certificate: String,
    /// The CA chain above it, PEM.
    pub ca_chain: String,
    /// The serial the answer names.
    pub serial: String,
}

/// What the device expects, and what it trusts: exactly one of `rootSpkiSha256` (enrollment) and
/// `trustPem` (rotation).
#[napi(object)]
pub struct AnswerExpectation {
    /// The device id the certificate must name.
    pub device_id: String,
    /// The tenant it must name.
    pub tenant: String,
    /// The CSR the device sent: the certificate must carry its key.
    pub csr: String,
    /// The pinned root key, hex (enrollment).
    pub root_spki_sha256: Option<String>,
    /// The roots the device trusts, PEM (rotation: its `trust.pem`).
    pub trust_pem: Option<String>,
    /// When to check at, ms since the epoch; default now.
    pub now_ms: Option<f64>,
}

/// What the device may store.
#[napi(object)]
pub struct AcceptedAnswer {
    /// Who the certificate says the device is.
    pub identity: PeerIdentity,
    /// The pinned root, PEM (enrollment only): the device's trust.
    pub root_pem: Option<String>,
}

/// Checks the CA's answer before the device stores it: `verify_peer` against the pinned root
/// (found in the answer by its key) or the device's `trustPem`, for the expected device, tenant and
/// CSR key. Throws `ERR_TRUST_ANCHOR`, `ERR_CHAIN`, `ERR_DEVICE_MISMATCH`, `ERR_TENANT_MISMATCH`,
/// `ERR_PIN` (another key), `ERR_BAD_RESPONSE`, ….
#[napi]
pub fn check_enroll_answer(answer: AnswerToCheck, expected: AnswerExpectation) -> Result<AcceptedAnswer> {
    sync(|| {
        let trust = expected.trust_pem.as_deref().map(TrustStore::from_pem).transpose()?;
        let anchor = match (&expected.root_spki_sha256, &trust) {
            (Some(pin), None) => Anchor::RootKey(hex32("rootSpkiSha256", pin)?),
            (None, Some(trust)) => Anchor::Trust(trust),
            _ => return Err(invalid_argument("give exactly one of rootSpkiSha256 and trustPem")),
        };
        let now = expected.now_ms.map_or(Ok(std::time::SystemTime::now()), |ms| time_arg("nowMs", ms))?;
        let response = core::EnrollResponse {
            certificate_pem: answer.certificate,
            ca_chain_pem: answer.ca_chain,
            serial: answer.serial,
            not_after_ms: 0,
            config: None,
        };
        let wanted =
            ExpectedCertificate { device_id: &expected.device_id, tenant: &expected.tenant, csr_pem: &expected.csr };
        let accepted = core::check_answer(&response, anchor, wanted, now)?;
        Ok(AcceptedAnswer { identity: peer_identity(accepted.identity), root_pem: accepted.root_pem })
    })
}
