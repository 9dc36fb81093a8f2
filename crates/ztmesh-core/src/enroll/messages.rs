//! The messages of the enrollment API: nonce, enrollment, rotation, and the CA's answer.

use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};

use super::codec::{self, Side};
use super::error::EnrollError;
use super::pcrs::PcrSelection;
use super::{MAX_EVIDENCE_FIELD, MAX_REQUEST, MAX_RESPONSE};
use crate::wire::labels::{NONCE_BY_CERTIFICATE, ROTATION};

/// The longest CSR or certificate, PEM.
const MAX_PEM: usize = 16 * 1024;
/// The longest CA chain, PEM (site CA and root, with room for a rollover).
const MAX_CHAIN_PEM: usize = 32 * 1024;
/// The longest node id (the identifier rules themselves are the CA's).
const MAX_NODE_ID: usize = 128;
/// The longest serial text.
const MAX_SERIAL: usize = 64;
/// The most bootstrap peers, and the longest of each and of the CRL URL.
const MAX_PEERS: usize = 64;
const MAX_PEER: usize = 256;
const MAX_URL: usize = 2048;
/// The largest gossip fan-out a CA may ask for.
const MAX_FANOUT: u32 = 64;
/// The evidence type of a TPM 2.0 quote.
const TPM2_QUOTE: &str = "tpm2-quote";

/// The bytes a rotation request's signature covers:
/// `ROTATION.message(timestamp_ms as u64 big-endian ‖ SHA-256(csr_pem))`.
///
/// The CSR is hashed as the exact text sent, so the CA checks the signature over what it
/// received without re-encoding anything.
pub fn rotation_message(timestamp_ms: u64, csr_pem: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + 32);
    body.extend_from_slice(&timestamp_ms.to_be_bytes());
    body.extend_from_slice(digest(&SHA256, csr_pem.as_bytes()).as_ref());
    ROTATION.message(&body)
}

/// The bytes the certificate key of a [`NonceAuth::Certificate`] request signs:
/// `NONCE_BY_CERTIFICATE.message(timestamp_ms as u64 big-endian ‖ node id)`.
pub fn nonce_request_message(timestamp_ms: u64, node_id: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + node_id.len());
    body.extend_from_slice(&timestamp_ms.to_be_bytes());
    body.extend_from_slice(node_id.as_bytes());
    NONCE_BY_CERTIFICATE.message(&body)
}

/// `POST /v1/attest/nonce`: a device asks for the nonce of a quote, proving who it is so that
/// nobody else can use up or evict its nonces; and, to prove its attestation key lives in a real
/// TPM, for a credential challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceRequest {
    /// The device id the nonce is bound to.
    pub node_id: String,
    /// How the request proves it comes from that device.
    pub auth: NonceAuth,
    /// The TPM's endorsement key certificate and its AK's public area, for the CA's
    /// `MakeCredential` (see [`crate::attest::make_credential`]).
    pub endorsement: Option<Endorsement>,
}

/// How a [`NonceRequest`] proves it comes from its node: exactly one of the two on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonceAuth {
    /// Before enrollment: the proof of the node's enrollment token
    /// ([`super::EnrollmentToken::prove_nonce_request`]).
    Token {
        /// The id of the device's enrollment token.
        token_id: [u8; 32],
        /// The token's proof over the node id (an Ed25519 signature).
        token_proof: [u8; 64],
    },
    /// After enrollment (an attested rotation, when the token is spent): the device's current
    /// certificate, and its key's signature over [`nonce_request_message`]. The CA decides the
    /// certificate with `verify_peer` and checks its device id is the node id.
    Certificate {
        /// The device's current certificate, PEM.
        certificate_pem: String,
        /// When the request was signed, milliseconds since the epoch.
        timestamp_ms: u64,
        /// The certificate key's signature over [`nonce_request_message`].
        signature: Vec<u8>,
    },
}

/// What a device presents for a credential challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    /// The EK certificate, DER.
    pub ek_certificate: Vec<u8>,
    /// The attestation key's public area, a marshalled `TPMT_PUBLIC`.
    pub ak_public: Vec<u8>,
}

/// A credential challenge: a secret encrypted to the device's EK for its AK's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialChallenge {
    /// The buffer of the `TPM2B_ID_OBJECT`.
    pub credential_blob: Vec<u8>,
    /// The buffer of the `TPM2B_ENCRYPTED_SECRET`.
    pub encrypted_secret: Vec<u8>,
}

/// The largest nonce request: room for an EK certificate in base64.
const MAX_NONCE_REQUEST: usize = 4096;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireNonceRequest {
    node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_proof: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ek_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ak_public: Option<String>,
}

impl NonceRequest {
    /// Decodes a request body (the CA's side): [`EnrollError::BadRequest`] when malformed (an
    /// EK certificate without an AK public area, or the reverse, included), and unless it carries
    /// exactly one whole authentication: a token proof, or a certificate with its signature.
    /// The proof is not checked here: that needs the CA's records.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Request;
        let wire: WireNonceRequest = codec::decode_json(bytes, MAX_NONCE_REQUEST, side, "the nonce request")?;
        let endorsement = match (wire.ek_certificate, wire.ak_public) {
            (None, None) => None,
            (Some(ek), Some(ak)) => Some(Endorsement {
                ek_certificate: codec::base64(&ek, side, "ek_certificate")?,
                ak_public: codec::base64(&ak, side, "ak_public")?,
            }),
            _ => return Err(side.error("ek_certificate and ak_public come together")),
        };
        let auth = match (wire.token_id, wire.token_proof, wire.certificate, wire.timestamp, wire.signature) {
            (Some(id), Some(proof), None, None, None) => NonceAuth::Token {
                token_id: codec::hex_array(&id, side, "token_id")?,
                token_proof: codec::hex_array(&proof, side, "token_proof")?,
            },
            (None, None, Some(certificate), Some(timestamp), Some(signature)) => NonceAuth::Certificate {
                certificate_pem: codec::text(certificate, MAX_PEM, side, "certificate")?,
                timestamp_ms: codec::time_ms(timestamp, side, "timestamp")?,
                signature: codec::base64(&signature, side, "signature")?,
            },
            _ => {
                return Err(side.error("a nonce request carries a token proof or a signed certificate, whole, not both"))
            }
        };
        Ok(Self { node_id: codec::text(wire.node_id, MAX_NODE_ID, side, "node_id")?, auth, endorsement })
    }

    /// Encodes the request body (the device's side).
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let side = Side::Request;
        let node_id = codec::text(self.node_id.clone(), MAX_NODE_ID, side, "node_id").map_err(invalid)?;
        let (mut token_id, mut token_proof, mut certificate, mut timestamp, mut signature) =
            (None, None, None, None, None);
        match &self.auth {
            NonceAuth::Token { token_id: id, token_proof: proof } => {
                token_id = Some(codec::to_hex(id));
                token_proof = Some(codec::to_hex(proof));
            }
            NonceAuth::Certificate { certificate_pem, timestamp_ms, signature: signed } => {
                if signed.is_empty() {
                    return Err(EnrollError::InvalidArgument("the nonce request is not signed".into()));
                }
                certificate =
                    Some(codec::text(certificate_pem.clone(), MAX_PEM, side, "certificate").map_err(invalid)?);
                timestamp = Some(codec::time_ms(*timestamp_ms, side, "timestamp").map_err(invalid)?);
                signature = Some(codec::to_base64(signed));
            }
        }
        let wire = WireNonceRequest {
            node_id,
            token_id,
            token_proof,
            certificate,
            timestamp,
            signature,
            ek_certificate: self.endorsement.as_ref().map(|e| codec::to_base64(&e.ek_certificate)),
            ak_public: self.endorsement.as_ref().map(|e| codec::to_base64(&e.ak_public)),
        };
        let bytes = codec::encode_json(&wire);
        if bytes.len() > MAX_NONCE_REQUEST {
            return Err(EnrollError::InvalidArgument(format!("a nonce request is at most {MAX_NONCE_REQUEST} bytes")));
        }
        Ok(bytes)
    }
}

/// The CA's answer to a [`NonceRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceAnswer {
    /// The single-use nonce to quote over (16 to 64 bytes; hex on the wire).
    pub nonce: Vec<u8>,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// The PCRs the CA asks the device to quote, when it names them.
    pub pcrs: Option<PcrSelection>,
    /// The credential challenge, when the request carried an endorsement.
    pub challenge: Option<CredentialChallenge>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireNonceAnswer {
    nonce: String,
    expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pcrs: Option<PcrSelection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential_blob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted_secret: Option<String>,
}

impl NonceAnswer {
    /// Decodes the CA's answer (the device's side): [`EnrollError::BadResponse`] when malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Response;
        let wire: WireNonceAnswer = codec::decode_json(bytes, 4096, side, "the nonce answer")?;
        let challenge = match (wire.credential_blob, wire.encrypted_secret) {
            (None, None) => None,
            (Some(blob), Some(secret)) => Some(CredentialChallenge {
                credential_blob: codec::base64(&blob, side, "credential_blob")?,
                encrypted_secret: codec::base64(&secret, side, "encrypted_secret")?,
            }),
            _ => return Err(side.error("credential_blob and encrypted_secret come together")),
        };
        Ok(Self {
            nonce: codec::nonce(&wire.nonce, side, "nonce")?,
            expires_at_ms: codec::time_ms(wire.expires_at, side, "expires_at")?,
            pcrs: wire.pcrs,
            challenge,
        })
    }

    /// Encodes the answer (the CA's side).
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let wire = WireNonceAnswer {
            nonce: codec::nonce_hex(&self.nonce)?,
            expires_at: codec::time_ms(self.expires_at_ms, Side::Response, "expires_at").map_err(invalid)?,
            pcrs: self.pcrs.clone(),
            credential_blob: self.challenge.as_ref().map(|c| codec::to_base64(&c.credential_blob)),
            encrypted_secret: self.challenge.as_ref().map(|c| codec::to_base64(&c.encrypted_secret)),
        };
        Ok(codec::encode_json(&wire))
    }
}

/// A TPM 2.0 quote with the binding of its attestation key (AK) to the device's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundQuote {
    /// The AK's public key, SubjectPublicKeyInfo PEM (parsed by the verifier, not here).
    pub ak_public_pem: String,
    /// The device key's signature over the AK binding message ([`crate::attest`]).
    pub ak_binding: Vec<u8>,
    /// The marshalled `TPMS_ATTEST` (`quote.msg`).
    pub attest: Vec<u8>,
    /// The marshalled `TPMT_SIGNATURE` (`quote.sig`).
    pub signature: Vec<u8>,
    /// The quoted PCR values, tpm2-tools format (`pcrs.bin`).
    pub pcr_values: Vec<u8>,
}

/// The wire text of a [`BoundQuote`]'s fields, in the order of the struct.
pub(crate) struct BoundQuoteText {
    pub ak_public_pem: String,
    pub ak_binding: String,
    pub attest: String,
    pub signature: String,
    pub pcr_values: String,
}

impl BoundQuote {
    pub(crate) fn from_text(text: BoundQuoteText, side: Side) -> Result<Self, EnrollError> {
        Ok(Self {
            ak_public_pem: codec::text(text.ak_public_pem, MAX_EVIDENCE_FIELD, side, "ak_public_pem")?,
            ak_binding: codec::base64(&text.ak_binding, side, "ak_binding")?,
            attest: codec::base64(&text.attest, side, "attest")?,
            signature: codec::base64(&text.signature, side, "signature")?,
            pcr_values: codec::base64(&text.pcr_values, side, "pcr_values")?,
        })
    }

    pub(crate) fn to_text(&self) -> Result<BoundQuoteText, EnrollError> {
        let text = BoundQuoteText {
            ak_public_pem: self.ak_public_pem.clone(),
            ak_binding: codec::to_base64(&self.ak_binding),
            attest: codec::to_base64(&self.attest),
            signature: codec::to_base64(&self.signature),
            pcr_values: codec::to_base64(&self.pcr_values),
        };
        // What an encoder writes, its own decoder must accept.
        let fields = [&text.ak_public_pem, &text.ak_binding, &text.attest, &text.signature, &text.pcr_values];
        if fields.iter().any(|f| f.is_empty() || f.len() > MAX_EVIDENCE_FIELD) {
            return Err(EnrollError::InvalidArgument(format!(
                "each quote field is 1 to {MAX_EVIDENCE_FIELD} characters"
            )));
        }
        Ok(text)
    }
}

/// The `attestation` member of an enrollment request: a quote over the CA's nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteEvidence {
    /// The nonce the CA issued (16 to 64 bytes; hex on the wire).
    pub nonce: Vec<u8>,
    /// The quote and its AK binding.
    pub quote: BoundQuote,
    /// The secret the TPM gave back for the CA's credential challenge (`TPM2_ActivateCredential`).
    pub activated_secret: Option<Vec<u8>>,
    /// The AK's certification of the device key (`TPM2_Certify` over the same nonce).
    pub certification: Option<KeyCertification>,
}

/// A `TPM2_Certify` of the device key by the attestation key: the key lives in the AK's TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCertification {
    /// The device key's public area, a marshalled `TPMT_PUBLIC`.
    pub key_public: Vec<u8>,
    /// The marshalled `TPMS_ATTEST` (type certify).
    pub attest: Vec<u8>,
    /// The marshalled `TPMT_SIGNATURE` by the AK.
    pub signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvidence {
    #[serde(rename = "type")]
    kind: String,
    nonce: String,
    ak_public_pem: String,
    ak_binding: String,
    attest: String,
    signature: String,
    pcr_values: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activated_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_public: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certify_attest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certify_signature: Option<String>,
}

impl QuoteEvidence {
    fn from_wire(wire: WireEvidence, side: Side) -> Result<Self, EnrollError> {
        if wire.kind != TPM2_QUOTE {
            return Err(side.error("attestation.type must be 'tpm2-quote'"));
        }
        let nonce = codec::nonce(&wire.nonce, side, "attestation.nonce")?;
        let text = BoundQuoteText {
            ak_public_pem: wire.ak_public_pem,
            ak_binding: wire.ak_binding,
            attest: wire.attest,
            signature: wire.signature,
            pcr_values: wire.pcr_values,
        };
        let activated_secret = wire
            .activated_secret
            .map(|secret| codec::base64(&secret, side, "attestation.activated_secret"))
            .transpose()?;
        let certification = match (wire.key_public, wire.certify_attest, wire.certify_signature) {
            (None, None, None) => None,
            (Some(key_public), Some(attest), Some(signature)) => Some(KeyCertification {
                key_public: codec::base64(&key_public, side, "attestation.key_public")?,
                attest: codec::base64(&attest, side, "attestation.certify_attest")?,
                signature: codec::base64(&signature, side, "attestation.certify_signature")?,
            }),
            _ => return Err(side.error("key_public, certify_attest and certify_signature come together")),
        };
        Ok(Self { nonce, quote: BoundQuote::from_text(text, side)?, activated_secret, certification })
    }

    fn to_wire(&self) -> Result<WireEvidence, EnrollError> {
        let text = self.quote.to_text()?;
        Ok(WireEvidence {
            kind: TPM2_QUOTE.into(),
            nonce: codec::nonce_hex(&self.nonce)?,
            ak_public_pem: text.ak_public_pem,
            ak_binding: text.ak_binding,
            attest: text.attest,
            signature: text.signature,
            pcr_values: text.pcr_values,
            activated_secret: self.activated_secret.as_ref().map(|secret| codec::to_base64(secret)),
            key_public: self.certification.as_ref().map(|c| codec::to_base64(&c.key_public)),
            certify_attest: self.certification.as_ref().map(|c| codec::to_base64(&c.attest)),
            certify_signature: self.certification.as_ref().map(|c| codec::to_base64(&c.signature)),
        })
    }

    /// Decodes the evidence alone (the CA's side; a library caller that holds it as JSON).
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        let wire = codec::decode_json(bytes, MAX_REQUEST, Side::Request, "the attestation")?;
        Self::from_wire(wire, Side::Request)
    }

    /// Encodes the evidence alone.
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        Ok(codec::encode_json(&self.to_wire()?))
    }
}

/// `POST /v1/enroll`: a CSR with the proof of a one-time token, and a quote when the device
/// attests.
///
/// The token itself never travels: the request names it by its id and carries its proof over
/// this CSR and node id ([`super::EnrollmentToken::prove_enrollment`]), which the CA checks. A
/// captured request redeemed with another CSR fails that check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollRequest {
    /// The id of the one-time enrollment token.
    pub token_id: [u8; 32],
    /// The token's proof over the CSR and the node id (an Ed25519 signature).
    pub token_proof: [u8; 64],
    /// The CSR, PEM.
    pub csr_pem: String,
    /// The device id the device believes the token is for (the token decides).
    pub node_id: Option<String>,
    /// The TPM quote over the CA's nonce.
    pub attestation: Option<QuoteEvidence>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnrollRequest {
    token_id: String,
    token_proof: String,
    csr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attestation: Option<WireEvidence>,
}

impl EnrollRequest {
    /// Decodes a request body (the CA's side): [`EnrollError::BadRequest`] when malformed.
    /// `attestation: null` reads as no attestation.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Request;
        let wire: WireEnrollRequest = codec::decode_json(bytes, MAX_REQUEST, side, "the enrollment request")?;
        Ok(Self {
            token_id: codec::hex_array(&wire.token_id, side, "token_id")?,
            token_proof: codec::hex_array(&wire.token_proof, side, "token_proof")?,
            csr_pem: codec::text(wire.csr, MAX_PEM, side, "csr")?,
            node_id: wire.node_id.map(|id| codec::text(id, MAX_NODE_ID, side, "node_id")).transpose()?,
            attestation: wire.attestation.map(|e| QuoteEvidence::from_wire(e, side)).transpose()?,
        })
    }

    /// Encodes the request body (the device's side).
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let side = Side::Request;
        let wire = WireEnrollRequest {
            token_id: codec::to_hex(&self.token_id),
            token_proof: codec::to_hex(&self.token_proof),
            csr: codec::text(self.csr_pem.clone(), MAX_PEM, side, "csr").map_err(invalid)?,
            node_id: self
                .node_id
                .clone()
                .map(|id| codec::text(id, MAX_NODE_ID, side, "node_id").map_err(invalid))
                .transpose()?,
            attestation: self.attestation.as_ref().map(QuoteEvidence::to_wire).transpose()?,
        };
        Ok(codec::encode_json(&wire))
    }
}

/// `POST /v1/rotate`: a CSR for a new certificate, signed by the key of the current one over
/// [`rotation_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationRequest {
    /// The current certificate, PEM (its CA chain may follow).
    pub certificate_pem: String,
    /// The CSR for the new certificate, PEM.
    pub csr_pem: String,
    /// When the request was signed, ms since the epoch.
    pub timestamp_ms: u64,
    /// The current key's signature over [`Self::signed_message`] (DER ECDSA; base64 on the wire).
    pub signature: Vec<u8>,
    /// For an attested device: a fresh quote over a CA nonce by its AK, and the AK's
    /// certification of the new key (else the device loses its attested status).
    pub attestation: Option<QuoteEvidence>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRotationRequest {
    certificate: String,
    csr: String,
    timestamp: u64,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attestation: Option<WireEvidence>,
}

impl RotationRequest {
    /// The bytes [`Self::signature`] covers.
    pub fn signed_message(&self) -> Vec<u8> {
        rotation_message(self.timestamp_ms, &self.csr_pem)
    }

    /// Decodes a request body (the CA's side): [`EnrollError::BadRequest`] when malformed.
    /// The signature is not checked here: that needs the certificate, decided by the CA.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        let side = Side::Request;
        let wire: WireRotationRequest = codec::decode_json(bytes, MAX_REQUEST, side, "the rotation request")?;
        Ok(Self {
            certificate_pem: codec::text(wire.certificate, MAX_CHAIN_PEM, side, "certificate")?,
            csr_pem: codec::text(wire.csr, MAX_PEM, side, "csr")?,
            timestamp_ms: codec::time_ms(wire.timestamp, side, "timestamp")?,
            signature: codec::base64(&wire.signature, side, "signature")?,
            attestation: wire.attestation.map(|evidence| QuoteEvidence::from_wire(evidence, side)).transpose()?,
        })
    }

    /// Encodes the request body (the device's side).
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let side = Side::Request;
        if self.signature.is_empty() {
            return Err(EnrollError::InvalidArgument("the rotation request is not signed".into()));
        }
        let wire = WireRotationRequest {
            certificate: codec::text(self.certificate_pem.clone(), MAX_CHAIN_PEM, side, "certificate")
                .map_err(invalid)?,
            csr: codec::text(self.csr_pem.clone(), MAX_PEM, side, "csr").map_err(invalid)?,
            timestamp: codec::time_ms(self.timestamp_ms, side, "timestamp").map_err(invalid)?,
            signature: codec::to_base64(&self.signature),
            attestation: self.attestation.as_ref().map(QuoteEvidence::to_wire).transpose()?,
        };
        Ok(codec::encode_json(&wire))
    }
}

/// What the CA tells an enrolled device about the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Peers to contact first (at most 64, each at most 256 bytes).
    pub bootstrap_peers: Vec<String>,
    /// How many peers each gossip round reaches (at most 64).
    pub gossip_fanout: u32,
    /// Where the CRL is published.
    pub crl_url: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDeviceConfig {
    bootstrap_peers: Vec<String>,
    gossip_fanout: u32,
    crl_url: String,
}

impl DeviceConfig {
    fn checked(wire: WireDeviceConfig, side: Side) -> Result<Self, EnrollError> {
        if wire.bootstrap_peers.len() > MAX_PEERS {
            return Err(side.error(format!("config.bootstrap_peers holds at most {MAX_PEERS} peers")));
        }
        let bootstrap_peers = wire
            .bootstrap_peers
            .into_iter()
            .map(|peer| codec::text(peer, MAX_PEER, side, "config.bootstrap_peers[]"))
            .collect::<Result<_, _>>()?;
        if wire.gossip_fanout > MAX_FANOUT {
            return Err(side.error(format!("config.gossip_fanout is at most {MAX_FANOUT}")));
        }
        Ok(Self {
            bootstrap_peers,
            gossip_fanout: wire.gossip_fanout,
            crl_url: codec::text(wire.crl_url, MAX_URL, side, "config.crl_url")?,
        })
    }

    fn to_wire(&self) -> WireDeviceConfig {
        WireDeviceConfig {
            bootstrap_peers: self.bootstrap_peers.clone(),
            gossip_fanout: self.gossip_fanout,
            crl_url: self.crl_url.clone(),
        }
    }
}

/// The CA's answer to an enrollment or a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollResponse {
    /// The issued certificate, PEM.
    pub certificate_pem: String,
    /// The CA chain above it (site CA, then root), PEM.
    pub ca_chain_pem: String,
    /// The issued certificate's serial, as the CA's registry spells it.
    pub serial: String,
    /// When the certificate expires, ms since the epoch.
    pub not_after_ms: u64,
    /// What the device should know about the mesh.
    pub config: Option<DeviceConfig>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnrollResponse {
    certificate: String,
    ca_cert: String,
    serial: String,
    not_after: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<WireDeviceConfig>,
}

impl EnrollResponse {
    /// Decodes the CA's answer (the device's side): [`EnrollError::BadResponse`] when malformed.
    /// The certificate itself is checked by the caller with `pki::verify_peer`.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnrollError> {
        Self::from_wire(codec::decode_json(bytes, MAX_RESPONSE, Side::Response, "the CA's answer")?, Side::Response)
    }

    /// Encodes the answer (the CA's side).
    pub fn encode(&self) -> Result<Vec<u8>, EnrollError> {
        let wire = WireEnrollResponse {
            certificate: self.certificate_pem.clone(),
            ca_cert: self.ca_chain_pem.clone(),
            serial: self.serial.clone(),
            not_after: self.not_after_ms,
            config: self.config.as_ref().map(DeviceConfig::to_wire),
        };
        // What the CA writes, a device must be able to read.
        let bytes = codec::encode_json(&wire);
        Self::from_wire(wire, Side::Response).map_err(invalid)?;
        Ok(bytes)
    }

    fn from_wire(wire: WireEnrollResponse, side: Side) -> Result<Self, EnrollError> {
        let serial = codec::text(wire.serial, MAX_SERIAL, side, "serial")?;
        if !serial.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(side.error("serial must be hex"));
        }
        Ok(Self {
            certificate_pem: codec::text(wire.certificate, MAX_PEM, side, "certificate")?,
            ca_chain_pem: codec::text(wire.ca_cert, MAX_CHAIN_PEM, side, "ca_cert")?,
            serial,
            not_after_ms: codec::time_ms(wire.not_after, side, "not_after")?,
            config: wire.config.map(|c| DeviceConfig::checked(c, side)).transpose()?,
        })
    }
}

/// A decoder's verdict on an encoder's input: the caller's argument, not the peer's message.
pub(crate) fn invalid(error: EnrollError) -> EnrollError {
    match error {
        EnrollError::BadRequest(d) | EnrollError::BadResponse(d) | EnrollError::BadQuoteMessage(d) => {
            EnrollError::InvalidArgument(d)
        }
        other => other,
    }
}
