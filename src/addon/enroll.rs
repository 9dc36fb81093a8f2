//! The enrollment, rotation and quote-exchange codecs (`ztmesh_core::enroll`): objects in,
//! JSON bytes out, and back.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::enroll::{self as core, PcrSelection};

use crate::error::{invalid_argument, sync, Failure, Result};
use crate::pki::{hex, hex_arg};

/// A TPM quote with the binding of its attestation key to the device key.
#[napi(object)]
pub struct BoundQuote {
    /// The attestation key, SubjectPublicKeyInfo PEM.
    pub ak_public_pem: String,
    /// The device key's signature over the AK binding message.
    pub ak_binding: Buffer,
    /// The marshalled `TPMS_ATTEST`.
    pub attest: Buffer,
    /// The marshalled `TPMT_SIGNATURE`.
    pub signature: Buffer,
    /// The quoted PCR values, tpm2-tools format.
    pub pcr_values: Buffer,
}

/// The `attestation` of an enrollment request: a quote over the CA's nonce.
#[napi(object)]
pub struct QuoteEvidence {
    /// The CA's nonce (16 to 64 bytes).
    pub nonce: Buffer,
    /// The quote and its AK binding.
    pub quote: BoundQuote,
    /// The secret the TPM activated for the CA's credential challenge.
    pub activated_secret: Option<Buffer>,
    /// The AK's certification (`TPM2_Certify` over the same nonce) of the device key.
    pub certification: Option<KeyCertification>,
}

/// A `TPM2_Certify` of the device key by the attestation key.
#[napi(object)]
pub struct KeyCertification {
    /// The device key's public area, a marshalled `TPMT_PUBLIC`.
    pub key_public: Buffer,
    /// The marshalled `TPMS_ATTEST` (type certify).
    pub attest: Buffer,
    /// The marshalled `TPMT_SIGNATURE` by the AK.
    pub signature: Buffer,
}

/// `POST /v1/enroll`.
#[napi(object)]
pub struct EnrollRequest {
    /// The id of the one-time token, hex (see `enrollmentTokenProof`).
    pub token_id: String,
    /// The token's proof over the CSR and node id (an Ed25519 signature), hex.
    pub token_proof: String,
    /// The CSR, PEM.
    pub csr: String,
    /// The device id the token is believed to be for.
    pub node_id: Option<String>,
    /// The TPM quote, when the device attests.
    pub attestation: Option<QuoteEvidence>,
}

/// `POST /v1/rotate`.
#[napi(object)]
pub struct RotationRequest {
    /// The current certificate, PEM (its chain may follow).
    pub certificate: String,
    /// The CSR for the new certificate, PEM.
    pub csr: String,
    /// When the request was signed, ms since the epoch.
    pub timestamp_ms: f64,
    /// The current key's signature over `rotationMessage(timestampMs, csr)`.
    pub signature: Buffer,
    /// For an attested device: a fresh quote and the AK's certification of the new key.
    pub attestation: Option<QuoteEvidence>,
}

/// What the CA tells an enrolled device (snake_case, as stored in `config.json`).
#[napi(object)]
pub struct DeviceConfig {
    /// Peers to contact first.
    #[napi(js_name = "bootstrap_peers")]
    pub bootstrap_peers: Vec<String>,
    /// Peers reached per gossip round.
    #[napi(js_name = "gossip_fanout")]
    pub gossip_fanout: u32,
    /// Where the CRL is published.
    #[napi(js_name = "crl_url")]
    pub crl_url: String,
}

/// The CA's answer to an enrollment or rotation.
#[napi(object)]
pub struct EnrollResponse {
    /// The issued certificate, PEM.
    pub certificate: String,
    /// The CA chain above it, PEM.
    pub ca_chain: String,
    /// The issued certificate's serial.
    pub serial: String,
    /// When it expires, ms since the epoch.
    pub not_after_ms: f64,
    /// What the device should know about the mesh.
    pub config: Option<DeviceConfig>,
}

/// The CA's answer to `POST /v1/attest/nonce`.
#[napi(object)]
pub struct NonceAnswer {
    /// The nonce (16 to 64 bytes).
    pub nonce: Buffer,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: f64,
    /// The PCRs to quote, ascending, when the CA names them.
    pub pcrs: Option<Vec<u32>>,
    /// The credential challenge (the buffer of a `TPM2B_ID_OBJECT`), when the request carried an endorsement.
    pub credential_blob: Option<Buffer>,
    /// Its encrypted secret (the buffer of a `TPM2B_ENCRYPTED_SECRET`).
    pub encrypted_secret: Option<Buffer>,
}

/// `POST /v1/attest/nonce`: a node id, with the proof of that node's enrollment token, and
/// optionally what a credential challenge needs.
#[napi(object)]
pub struct NonceRequest {
    /// The device id the nonce is bound to.
    pub node_id: String,
    /// Before enrollment: the id of the device's enrollment token, hex (with `tokenProof`).
    pub token_id: Option<String>,
    /// The token's proof over the node id (an Ed25519 signature), hex.
    pub token_proof: Option<String>,
    /// After enrollment, instead of a token: the device's current certificate, PEM (with
    /// `timestampMs` and `signature`).
    pub certificate: Option<String>,
    /// When the request was signed, milliseconds since the epoch.
    pub timestamp_ms: Option<f64>,
    /// The certificate key's signature over `nonceRequestMessage(timestampMs, nodeId)`.
    pub signature: Option<Buffer>,
    /// The TPM's EK certificate, DER (with `akPublic`: asks for a credential challenge).
    pub ek_certificate: Option<Buffer>,
    /// The attestation key's public area, a marshalled `TPMT_PUBLIC`.
    pub ak_public: Option<Buffer>,
}

/// A verifier's quote request.
#[napi(object)]
pub struct QuoteRequest {
    /// The verifier's nonce (16 to 64 bytes).
    pub nonce: Buffer,
    /// The SHA-256 PCRs to quote (ascending when decoded).
    pub pcrs: Vec<u32>,
}

/// A node's answer: `quote`, or the `errorCode` it could not quote with.
#[napi(object)]
pub struct QuoteAnswer {
    /// The quote.
    pub quote: Option<BoundQuote>,
    /// An `ERR_…` code.
    pub error_code: Option<String>,
}

/// Checks a PCR list (1 to 24 distinct indices 0..23) and returns it ascending; `ERR_INVALID_ARG`.
#[napi]
pub fn check_pcr_selection(pcrs: Vec<u32>) -> Result<Vec<u32>> {
    sync(|| Ok(indices(&PcrSelection::new(&pcrs)?)))
}

/// The bytes a rotation request signs.
#[napi]
pub fn rotation_message(timestamp_ms: f64, csr_pem: String) -> Result<Buffer> {
    sync(|| Ok(core::rotation_message(time(timestamp_ms)?, &csr_pem).into()))
}

/// The bytes the certificate key of a nonce request signs (after enrollment, for an attested rotation).
#[napi]
pub fn nonce_request_message(timestamp_ms: f64, node_id: String) -> Result<Buffer> {
    sync(|| Ok(core::nonce_request_message(time(timestamp_ms)?, &node_id).into()))
}

/// Encodes an enrollment request body.
#[napi]
pub fn encode_enroll_request(request: EnrollRequest) -> Result<Buffer> {
    sync(|| {
        let request = core::EnrollRequest {
            token_id: hex32("tokenId", &request.token_id)?,
            token_proof: hex_bytes::<64>("tokenProof", &request.token_proof)?,
            csr_pem: request.csr,
            node_id: request.node_id,
            attestation: request.attestation.map(evidence_from_js),
        };
        Ok(request.encode()?.into())
    })
}

/// Decodes an enrollment request body; `ERR_BAD_REQUEST`.
#[napi]
pub fn decode_enroll_request(body: &[u8]) -> Result<EnrollRequest> {
    sync(|| {
        let request = core::EnrollRequest::decode(body)?;
        Ok(EnrollRequest {
            token_id: hex(&request.token_id),
            token_proof: hex(&request.token_proof),
            csr: request.csr_pem,
            node_id: request.node_id,
            attestation: request.attestation.map(evidence_to_js),
        })
    })
}

/// Decodes the `attestation` member alone (JSON); `ERR_BAD_REQUEST`.
#[napi]
pub fn decode_quote_evidence(body: &[u8]) -> Result<QuoteEvidence> {
    sync(|| Ok(evidence_to_js(core::QuoteEvidence::decode(body)?)))
}

/// Encodes a rotation request body.
#[napi]
pub fn encode_rotation_request(request: RotationRequest) -> Result<Buffer> {
    sync(|| {
        let request = core::RotationRequest {
            certificate_pem: request.certificate,
            csr_pem: request.csr,
            timestamp_ms: time(request.timestamp_ms)?,
            signature: request.signature.to_vec(),
            attestation: request.attestation.map(evidence_from_js),
        };
        Ok(request.encode()?.into())
    })
}

/// Decodes a rotation request body; `ERR_BAD_REQUEST`.
#[napi]
pub fn decode_rotation_request(body: &[u8]) -> Result<RotationRequest> {
    sync(|| {
        let request = core::RotationRequest::decode(body)?;
        Ok(RotationRequest {
            certificate: request.certificate_pem,
            csr: request.csr_pem,
            timestamp_ms: request.timestamp_ms as f64,
            signature: request.signature.into(),
            attestation: request.attestation.map(evidence_to_js),
        })
    })
}

/// Encodes the CA's answer to an enrollment or rotation.
#[napi]
pub fn encode_enroll_response(response: EnrollResponse) -> Result<Buffer> {
    sync(|| {
        let response = core::EnrollResponse {
            certificate_pem: response.certificate,
            ca_chain_pem: response.ca_chain,
            serial: response.serial,
            not_after_ms: time(response.not_after_ms)?,
            config: response.config.map(|c| core::DeviceConfig {
                bootstrap_peers: c.bootstrap_peers,
                gossip_fanout: c.gossip_fanout,
                crl_url: c.crl_url,
            }),
        };
        Ok(response.encode()?.into())
    })
}

/// Decodes the CA's answer to an enrollment or rotation; `ERR_BAD_RESPONSE`.
#[napi]
pub fn decode_enroll_response(body: &[u8]) -> Result<EnrollResponse> {
    sync(|| {
        let response = core::EnrollResponse::decode(body)?;
        Ok(EnrollResponse {
            certificate: response.certificate_pem,
            ca_chain: response.ca_chain_pem,
            serial: response.serial,
            not_after_ms: response.not_after_ms as f64,
            config: response.config.map(|c| DeviceConfig {
                bootstrap_peers: c.bootstrap_peers,
                gossip_fanout: c.gossip_fanout,
                crl_url: c.crl_url,
            }),
        })
    })
}

/// Encodes a nonce request body `{node_id, token_id, token_proof, ek_certificate?, ak_public?}`.
#[napi]
pub fn encode_nonce_request(request: NonceRequest) -> Result<Buffer> {
    sync(|| {
        let endorsement = match (request.ek_certificate, request.ak_public) {
            (None, None) => None,
            (Some(ek), Some(ak)) => Some(core::Endorsement { ek_certificate: ek.to_vec(), ak_public: ak.to_vec() }),
            _ => return Err(crate::error::invalid_argument("ekCertificate and akPublic come together")),
        };
        let auth =
            match (request.token_id, request.token_proof, request.certificate, request.timestamp_ms, request.signature)
            {
                (Some(id), Some(proof), None, None, None) => core::NonceAuth::Token {
                    token_id: hex32("tokenId", &id)?,
                    token_proof: hex_bytes::<64>("tokenProof", &proof)?,
                },
                (None, None, Some(certificate_pem), Some(timestamp_ms), Some(signature)) => {
                    core::NonceAuth::Certificate {
                        certificate_pem,
                        timestamp_ms: time(timestamp_ms)?,
                        signature: signature.to_vec(),
                    }
                }
                _ => {
                    return Err(crate::error::invalid_argument(
                        "a nonce request has tokenId and tokenProof, or certificate, timestampMs and signature",
                    ))
                }
            };
        let request = core::NonceRequest { node_id: request.node_id, auth, endorsement };
        Ok(request.encode()?.into())
    })
}

/// Decodes a nonce request body; `ERR_BAD_REQUEST`.
#[napi]
pub fn decode_nonce_request(body: &[u8]) -> Result<NonceRequest> {
    sync(|| {
        let request = core::NonceRequest::decode(body)?;
        let (ek_certificate, ak_public) = match request.endorsement {
            Some(e) => (Some(e.ek_certificate.into()), Some(e.ak_public.into())),
            None => (None, None),
        };
        let (token_id, token_proof, certificate, timestamp_ms, signature) = match request.auth {
            core::NonceAuth::Token { token_id, token_proof } => {
                (Some(hex(&token_id)), Some(hex(&token_proof)), None, None, None)
            }
            core::NonceAuth::Certificate { certificate_pem, timestamp_ms, signature } => {
                (None, None, Some(certificate_pem), Some(timestamp_ms as f64), Some(signature.into()))
            }
        };
        Ok(NonceRequest {
            node_id: request.node_id,
            token_id,
            token_proof,
            certificate,
            timestamp_ms,
            signature,
            ek_certificate,
            ak_public,
        })
    })
}

/// Encodes the CA's nonce answer.
#[napi]
pub fn encode_nonce_answer(answer: NonceAnswer) -> Result<Buffer> {
    sync(|| {
        let answer = core::NonceAnswer {
            nonce: answer.nonce.to_vec(),
            expires_at_ms: time(answer.expires_at_ms)?,
            pcrs: answer.pcrs.map(|p| PcrSelection::new(&p)).transpose()?,
            challenge: match (answer.credential_blob, answer.encrypted_secret) {
                (None, None) => None,
                (Some(blob), Some(secret)) => Some(core::CredentialChallenge {
                    credential_blob: blob.to_vec(),
                    encrypted_secret: secret.to_vec(),
                }),
                _ => return Err(crate::error::invalid_argument("credentialBlob and encryptedSecret come together")),
            },
        };
        Ok(answer.encode()?.into())
    })
}

/// Decodes the CA's nonce answer; `ERR_BAD_RESPONSE`.
#[napi]
pub fn decode_nonce_answer(body: &[u8]) -> Result<NonceAnswer> {
    sync(|| {
        let answer = core::NonceAnswer::decode(body)?;
        Ok(NonceAnswer {
            nonce: answer.nonce.into(),
            expires_at_ms: answer.expires_at_ms as f64,
            pcrs: answer.pcrs.as_ref().map(indices),
            credential_blob: answer.challenge.as_ref().map(|c| c.credential_blob.clone().into()),
            encrypted_secret: answer.challenge.map(|c| c.encrypted_secret.into()),
        })
    })
}

/// Encodes a quote-request line (`\n` included).
#[napi]
pub fn encode_quote_request(request: QuoteRequest) -> Result<Buffer> {
    sync(|| {
        let request = core::QuoteRequest { nonce: request.nonce.to_vec(), pcrs: PcrSelection::new(&request.pcrs)? };
        Ok(request.encode()?.into())
    })
}

/// Decodes a quote-request line; `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn decode_quote_request(line: &[u8]) -> Result<QuoteRequest> {
    sync(|| {
        let request = core::QuoteRequest::decode(line)?;
        Ok(QuoteRequest { pcrs: indices(&request.pcrs), nonce: request.nonce.into() })
    })
}

/// Encodes a quote-answer line (`\n` included): exactly one of `quote` and `errorCode`.
#[napi]
pub fn encode_quote_answer(answer: QuoteAnswer) -> Result<Buffer> {
    sync(|| {
        let answer = match (answer.quote, answer.error_code) {
            (Some(quote), None) => core::QuoteAnswer::Quote(quote_from_js(quote)),
            (None, Some(code)) => core::QuoteAnswer::Error { code },
            _ => return Err(invalid_argument("a quote answer has a quote or an error code")),
        };
        Ok(answer.encode()?.into())
    })
}

/// Decodes a quote-answer line; `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn decode_quote_answer(line: &[u8]) -> Result<QuoteAnswer> {
    sync(|| {
        Ok(match core::QuoteAnswer::decode(line)? {
            core::QuoteAnswer::Quote(quote) => QuoteAnswer { quote: Some(quote_to_js(quote)), error_code: None },
            core::QuoteAnswer::Error { code } => QuoteAnswer { quote: None, error_code: Some(code) },
            _ => return Err(Failure::new("ERR_ATTEST_MALFORMED", "an answer this build does not know")),
        })
    })
}

/// 32 bytes from hex (a token id, a key); `ERR_INVALID_ARG`.
pub(crate) fn hex32(name: &str, text: &str) -> std::result::Result<[u8; 32], Failure> {
    hex_bytes::<32>(name, text)
}

/// `N` bytes from hex; `ERR_INVALID_ARG`.
pub(crate) fn hex_bytes<const N: usize>(name: &str, text: &str) -> std::result::Result<[u8; N], Failure> {
    hex_arg(name, text)?.try_into().map_err(|_| invalid_argument(&format!("{name} is {N} bytes of hex")))
}

fn indices(selection: &PcrSelection) -> Vec<u32> {
    selection.indices().iter().map(|&i| u32::from(i)).collect()
}

/// A JavaScript time in ms: a non-negative integer.
fn time(ms: f64) -> std::result::Result<u64, Failure> {
    if !(ms.is_finite() && ms >= 0.0 && ms.fract() == 0.0 && ms <= 9_007_199_254_740_991.0) {
        return Err(invalid_argument("a time is a non-negative integer number of ms"));
    }
    Ok(ms as u64)
}

fn quote_from_js(quote: BoundQuote) -> core::BoundQuote {
    core::BoundQuote {
        ak_public_pem: quote.ak_public_pem,
        ak_binding: quote.ak_binding.to_vec(),
        attest: quote.attest.to_vec(),
        signature: quote.signature.to_vec(),
        pcr_values: quote.pcr_values.to_vec(),
    }
}

fn quote_to_js(quote: core::BoundQuote) -> BoundQuote {
    BoundQuote {
        ak_public_pem: quote.ak_public_pem,
        ak_binding: quote.ak_binding.into(),
        attest: quote.attest.into(),
        signature: quote.signature.into(),
        pcr_values: quote.pcr_values.into(),
    }
}

fn evidence_from_js(evidence: QuoteEvidence) -> core::QuoteEvidence {
    core::QuoteEvidence {
        nonce: evidence.nonce.to_vec(),
        quote: quote_from_js(evidence.quote),
        activated_secret: evidence.activated_secret.map(|s| s.to_vec()),
        certification: evidence.certification.map(|c| core::KeyCertification {
            key_public: c.key_public.to_vec(),
            attest: c.attest.to_vec(),
            signature: c.signature.to_vec(),
        }),
    }
}

fn evidence_to_js(evidence: core::QuoteEvidence) -> QuoteEvidence {
    QuoteEvidence {
        nonce: evidence.nonce.into(),
        quote: quote_to_js(evidence.quote),
        activated_secret: evidence.activated_secret.map(Into::into),
        certification: evidence.certification.map(|c| KeyCertification {
            key_public: c.key_public.into(),
            attest: c.attest.into(),
            signature: c.signature.into(),
        }),
    }
}
