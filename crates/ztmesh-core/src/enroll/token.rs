//! One-time enrollment tokens: what `ztmesh ca token` prints and `ztmesh enroll` reads.
//!
//! A token carries, step-ca style, everything a new device needs to trust the CA it has never
//! met, and a secret that never crosses the network:
//!
//! ```text
//! ztm2.<base64url, unpadded, of:
//!   secret (32) ‖ root SPKI SHA-256 (32) ‖ u8 len ‖ tenant ‖ u8 len ‖ device id>
//! ```
//!
//! - The root's SubjectPublicKeyInfo SHA-256 is the device's trust anchor, pinned out of band
//!   (the operator hands the token over): the device accepts a certificate, a CA chain or a
//!   server only if it chains to the root with that key ([`super::check_answer`]).
//! - The tenant and device id are what the device expects its certificate to name.
//! - The secret stays on the device. From it HKDF-SHA256 derives the token's id
//!   ([`ENROLL_TOKEN_ID`]: what the CA stores and looks the token up by) and the seed of an
//!   Ed25519 key ([`ENROLL_TOKEN_KEY`]). A request carries the id and that key's signature over
//!   what it asks for ([`ENROLL_PROOF`]: the CSR and node id; [`NONCE_PROOF`]: the node id), so a
//!   captured request cannot be redeemed with another key: the proof covers this CSR only.
//!
//! The CA keeps the id and the proof key's public half, never the secret: a copy of the
//! registry can check proofs but cannot make one, so it cannot enroll anything.
//!
//! Decoding is strict: one spelling per token (canonical base64url, no padding, exact lengths,
//! ids valid under [`crate::ids`]), and errors that never quote the token.

use base64ct::{Base64UrlUnpadded, Encoding};
use ring::digest::{digest, SHA256};
use ring::hkdf;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use zeroize::Zeroizing;

use super::error::EnrollError;
use crate::ids::{check_device_id, check_tenant, MAX_ID_LEN};
use crate::wire::labels::{Label, ENROLL_PROOF, ENROLL_TOKEN_ID, ENROLL_TOKEN_KEY, NONCE_PROOF};

/// The prefix of a token of this format.
pub const TOKEN_PREFIX: &str = "ztm2.";
/// The length of a token's secret and of its id.
pub const TOKEN_SECRET_LEN: usize = 32;
/// The length of a proof: an Ed25519 signature.
pub const TOKEN_PROOF_LEN: usize = 64;
/// The longest token text: the prefix and base64url of 32 + 32 + 1 + 64 + 1 + 64 bytes.
const MAX_TOKEN_TEXT: usize = TOKEN_PREFIX.len() + (2 * TOKEN_SECRET_LEN + 2 + 2 * MAX_ID_LEN).div_ceil(3) * 4;

/// A decoded enrollment token (a secret: `Debug` does not show it, and it is zeroized on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    secret: Zeroizing<[u8; TOKEN_SECRET_LEN]>,
    root_spki_sha256: [u8; 32],
    tenant: String,
    device_id: String,
}

impl EnrollmentToken {
    /// A new token with a fresh random secret, for a device of `tenant` under the root whose
    /// SubjectPublicKeyInfo hashes to `root_spki_sha256`. [`EnrollError::InvalidArgument`] for
    /// an invalid id, [`EnrollError::Random`] if the OS generator fails.
    pub fn generate(root_spki_sha256: [u8; 32], tenant: &str, device_id: &str) -> Result<Self, EnrollError> {
        check_tenant(tenant).map_err(|e| EnrollError::InvalidArgument(e.to_string()))?;
        check_device_id(device_id).map_err(|e| EnrollError::InvalidArgument(e.to_string()))?;
        let secret = Zeroizing::new(crate::rand::array().map_err(|_| EnrollError::Random)?);
        Ok(Self { secret, root_spki_sha256, tenant: tenant.to_owned(), device_id: device_id.to_owned() })
    }

    /// Decodes a token; [`EnrollError::TokenInvalid`] for anything but a token of this format.
    pub fn decode(text: &str) -> Result<Self, EnrollError> {
        if text.len() > MAX_TOKEN_TEXT {
            return Err(EnrollError::TokenInvalid);
        }
        let body = text.strip_prefix(TOKEN_PREFIX).ok_or(EnrollError::TokenInvalid)?;
        let bytes = Zeroizing::new(Base64UrlUnpadded::decode_vec(body).map_err(|_| EnrollError::TokenInvalid)?);
        // One spelling: base64ct accepts no padding and no stray bits, but check the round trip.
        if Base64UrlUnpadded::encode_string(&bytes) != body {
            return Err(EnrollError::TokenInvalid);
        }
        let mut cursor = bytes.as_slice();
        let secret = Zeroizing::new(take_array(&mut cursor)?);
        let root_spki_sha256 = take_array(&mut cursor)?;
        let tenant = take_id(&mut cursor)?;
        let device_id = take_id(&mut cursor)?;
        if !cursor.is_empty() || check_tenant(&tenant).is_err() || check_device_id(&device_id).is_err() {
            return Err(EnrollError::TokenInvalid);
        }
        Ok(Self { secret, root_spki_sha256, tenant, device_id })
    }

    /// The token's text (`ztm2.…`).
    pub fn encode(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(2 * TOKEN_SECRET_LEN + 2 + 2 * MAX_ID_LEN));
        bytes.extend_from_slice(self.secret.as_ref());
        bytes.extend_from_slice(&self.root_spki_sha256);
        for id in [&self.tenant, &self.device_id] {
            // Both ids passed check_*, so they are 1 to 64 bytes.
            bytes.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
            bytes.extend_from_slice(id.as_bytes());
        }
        Zeroizing::new(format!("{TOKEN_PREFIX}{}", Base64UrlUnpadded::encode_string(&bytes)))
    }

    /// The SHA-256 of the root's SubjectPublicKeyInfo: the device's trust anchor.
    pub fn root_spki_sha256(&self) -> [u8; 32] {
        self.root_spki_sha256
    }

    /// The tenant the device's certificate must name.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The device id the device's certificate must name.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The token's id: what the CA stores and a request names the token by (not secret).
    pub fn id(&self) -> [u8; 32] {
        let mut id = [0u8; 32];
        self.derive(ENROLL_TOKEN_ID, &mut id);
        id
    }

    /// The public key of the token's proofs (Ed25519), which the CA stores beside the id.
    pub fn proof_key(&self) -> Result<[u8; 32], EnrollError> {
        let key = self.signing_key()?;
        key.public_key().as_ref().try_into().map_err(|_| EnrollError::InvalidArgument("an Ed25519 key".into()))
    }

    /// The proof of an enrollment request for `csr_pem` (the exact text sent) and `node_id`.
    pub fn prove_enrollment(&self, csr_pem: &str, node_id: Option<&str>) -> Result<[u8; TOKEN_PROOF_LEN], EnrollError> {
        self.sign(ENROLL_PROOF, &enrollment_body(csr_pem, node_id))
    }

    /// The proof of a nonce request for `node_id`.
    pub fn prove_nonce_request(&self, node_id: &str) -> Result<[u8; TOKEN_PROOF_LEN], EnrollError> {
        self.sign(NONCE_PROOF, node_id.as_bytes())
    }

    fn sign(&self, label: Label, body: &[u8]) -> Result<[u8; TOKEN_PROOF_LEN], EnrollError> {
        let signature = self.signing_key()?.sign(&label.message(body));
        signature.as_ref().try_into().map_err(|_| EnrollError::InvalidArgument("an Ed25519 signature".into()))
    }

    fn signing_key(&self) -> Result<Ed25519KeyPair, EnrollError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        self.derive(ENROLL_TOKEN_KEY, &mut seed);
        // Every 32-byte seed is an Ed25519 key: this cannot fail.
        Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).map_err(|_| EnrollError::TokenInvalid)
    }

    fn derive(&self, info: Label, out: &mut [u8; 32]) {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(self.secret.as_ref());
        let info = [info.as_bytes()];
        // A 32-byte output of HKDF-SHA256 is always within its limit (255 × 32): cannot fail.
        if let Ok(okm) = prk.expand(&info, hkdf::HKDF_SHA256) {
            let _ = okm.fill(out);
        }
    }
}

impl std::fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentToken")
            .field("tenant", &self.tenant)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Checks the proof of an enrollment request under a token's proof key (the CA's side);
/// [`EnrollError::TokenProof`] if it is not the proof of this CSR and node id.
pub fn verify_enrollment_proof(
    proof_key: &[u8],
    csr_pem: &str,
    node_id: Option<&str>,
    proof: &[u8],
) -> Result<(), EnrollError> {
    verify(proof_key, ENROLL_PROOF, &enrollment_body(csr_pem, node_id), proof)
}

/// Checks the proof of a nonce request for `node_id` (the CA's side); [`EnrollError::TokenProof`]
/// if it is wrong.
pub fn verify_nonce_proof(proof_key: &[u8], node_id: &str, proof: &[u8]) -> Result<(), EnrollError> {
    verify(proof_key, NONCE_PROOF, node_id.as_bytes(), proof)
}

/// SHA-256 of the CSR text, then the node id (a fixed-length hash first: unambiguous).
fn enrollment_body(csr_pem: &str, node_id: Option<&str>) -> Vec<u8> {
    let mut body = digest(&SHA256, csr_pem.as_bytes()).as_ref().to_vec();
    body.extend_from_slice(node_id.unwrap_or_default().as_bytes());
    body
}

/// Strict RFC 8032 verification (ring): the signer is this protocol's own derived key, so there
/// is no other implementation's acceptance rule to agree with.
fn verify(proof_key: &[u8], label: Label, body: &[u8], proof: &[u8]) -> Result<(), EnrollError> {
    UnparsedPublicKey::new(&ED25519, proof_key).verify(&label.message(body), proof).map_err(|_| EnrollError::TokenProof)
}

fn take_array<const N: usize>(cursor: &mut &[u8]) -> Result<[u8; N], EnrollError> {
    let (head, rest) = cursor.split_first_chunk::<N>().ok_or(EnrollError::TokenInvalid)?;
    *cursor = rest;
    Ok(*head)
}

fn take_id(cursor: &mut &[u8]) -> Result<String, EnrollError> {
    let [len] = take_array::<1>(cursor)?;
    let len = usize::from(len);
    if len == 0 || len > MAX_ID_LEN || cursor.len() < len {
        return Err(EnrollError::TokenInvalid);
    }
    let (id, rest) = cursor.split_at(len);
    *cursor = rest;
    String::from_utf8(id.to_vec()).map_err(|_| EnrollError::TokenInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> EnrollmentToken {
        EnrollmentToken::generate([7; 32], "hotel-1", "tablet-7").unwrap()
    }

    #[test]
    fn a_token_round_trips_and_carries_its_anchor_and_identity() {
        let token = token();
        let text = token.encode();
        assert!(text.starts_with(TOKEN_PREFIX));
        let decoded = EnrollmentToken::decode(&text).unwrap();
        assert_eq!(decoded, token);
        assert_eq!(decoded.root_spki_sha256(), [7; 32]);
        assert_eq!((decoded.tenant(), decoded.device_id()), ("hotel-1", "tablet-7"));
        assert_ne!(decoded.id(), decoded.proof_key().unwrap(), "id and proof key are independent derivations");
        assert!(!format!("{decoded:?}").contains(&text[5..20]), "Debug hides the secret");
    }

    #[test]
    fn every_other_spelling_is_refused() {
        let token = token();
        let text = token.encode();
        let body = &text[TOKEN_PREFIX.len()..];
        let mut bad = vec![
            String::new(),
            TOKEN_PREFIX.to_owned(),
            format!("ztm1.{body}"),
            format!("{}=", text.as_str()),
            format!("{}A", text.as_str()),
            format!(" {}", text.as_str()),
            text[..text.len() - 1].to_owned(),
            text.replace('.', ":"),
            format!("{TOKEN_PREFIX}{}", "A".repeat(MAX_TOKEN_TEXT)),
        ];
        // A structurally wrong body: ids out of rule, an empty id, trailing bytes.
        let raw = |tenant: &[u8], device: &[u8], extra: &[u8]| {
            let mut bytes = vec![1u8; 64];
            bytes.push(tenant.len() as u8);
            bytes.extend_from_slice(tenant);
            bytes.push(device.len() as u8);
            bytes.extend_from_slice(device);
            bytes.extend_from_slice(extra);
            format!("{TOKEN_PREFIX}{}", Base64UrlUnpadded::encode_string(&bytes))
        };
        assert!(EnrollmentToken::decode(&raw(b"t", b"d", b"")).is_ok());
        bad.extend([raw(b"t", b"", b""), raw(b"..", b"d", b""), raw(b"t", b"a/b", b""), raw(b"t", b"d", b"x")]);
        for text in bad {
            assert_eq!(EnrollmentToken::decode(&text), Err(EnrollError::TokenInvalid), "{text}");
        }
    }

    #[test]
    fn a_proof_binds_the_csr_and_the_node_id_under_the_token() {
        let token = token();
        let key = token.proof_key().unwrap();
        let proof = token.prove_enrollment("csr-a", Some("tablet-7")).unwrap();
        assert_eq!(verify_enrollment_proof(&key, "csr-a", Some("tablet-7"), &proof), Ok(()));
        for (csr, node) in [("csr-b", Some("tablet-7")), ("csr-a", None), ("csr-a", Some("tablet-8"))] {
            assert_eq!(verify_enrollment_proof(&key, csr, node, &proof), Err(EnrollError::TokenProof));
        }
        let other = EnrollmentToken::generate([7; 32], "hotel-1", "tablet-7").unwrap();
        assert_eq!(
            verify_enrollment_proof(&other.proof_key().unwrap(), "csr-a", Some("tablet-7"), &proof),
            Err(EnrollError::TokenProof)
        );
        // A nonce proof is not an enrollment proof, and the other way round.
        let nonce = token.prove_nonce_request("tablet-7").unwrap();
        assert_eq!(verify_nonce_proof(&key, "tablet-7", &nonce), Ok(()));
        assert_eq!(verify_nonce_proof(&key, "tablet-8", &nonce), Err(EnrollError::TokenProof));
        assert_eq!(verify_enrollment_proof(&key, "", Some("tablet-7"), &nonce), Err(EnrollError::TokenProof));
        assert_eq!(verify_nonce_proof(&key, "tablet-7", &proof[..63]), Err(EnrollError::TokenProof));
        assert_eq!(verify_nonce_proof(&key[..31], "tablet-7", &nonce), Err(EnrollError::TokenProof));
    }
}
