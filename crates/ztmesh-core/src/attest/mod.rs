//! Verifying TPM 2.0 quotes: the verifier's side of remote attestation (the CA or a gateway).
//!
//! Pure Rust and always compiled: a verifier needs no TPM. The device side, which makes the
//! quotes, is the `tpm` module (cargo feature `tpm`); tpm2-tools (`tpm2_quote`) makes the same
//! artefacts.
//!
//! # What a quote is
//!
//! A device proves what its TPM measured with three pieces:
//!
//! | piece | form | made by |
//! | --- | --- | --- |
//! | the quote | a marshalled `TPMS_ATTEST` (TPM 2.0 Part 2, big-endian) | `TPM2_Quote`, `tpm2_quote -m` |
//! | its signature | a marshalled `TPMT_SIGNATURE`, ECDSA P-256 with SHA-256 | the same call, `tpm2_quote -s` |
//! | the PCR values | the tpm2-tools PCR file ([`PcrValues`]) | `TPM2_PCR_Read`, `tpm2_quote -o` |
//!
//! The quote carries the verifier's nonce (`extraData`), the TPM's clock, the selection of PCRs
//! and one digest of their values; the values themselves travel beside it, unsigned, and are
//! believed only because they hash to the signed digest.
//!
//! # Verification
//!
//! [`verify_quote`] applies these rules in order and stops at the first broken one:
//!
//! 1. the expected nonce is 16 to 64 bytes ([`AttestError::Nonce`]);
//! 2. the signature is a well-formed ECDSA/SHA-256 `TPMT_SIGNATURE` ([`AttestError::Malformed`])
//!    that verifies over the quote bytes under the attestation key ([`AttestError::Signature`]);
//! 3. the quote is a well-formed `TPMS_ATTEST`, starts with `TPM_GENERATED_VALUE` (a restricted
//!    key never signs external data that does) and is of type `TPM_ST_ATTEST_QUOTE`
//!    ([`AttestError::Malformed`]);
//! 4. its `extraData` equals the nonce, compared in constant time ([`AttestError::Nonce`]);
//! 5. the PCR file is well formed ([`AttestError::Malformed`]), selects the same PCRs in the same
//!    order as the quote, and SHA-256 over its values is the quoted PCR digest
//!    ([`AttestError::PcrValues`]);
//! 6. every PCR of the [`PcrPolicy`] is quoted with the expected value
//!    ([`AttestError::PcrMismatch`]);
//! 7. every PCR the verifier asked for ([`PcrPolicy::requiring`]) is quoted in the SHA-256
//!    bank ([`AttestError::PcrSelection`]): a quote over fewer PCRs than asked would shrink
//!    the baseline recorded from it.
//!
//! The signature is checked before the quote is parsed, so unauthenticated bytes only ever
//! reach the two small signature and PCR-file parsers.
//!
//! # Whose key
//!
//! Whether the attestation key belongs to the device presenting the quote is a separate
//! question, answered by the AK binding ([`ak_binding_message`], [`verify_ak_binding`]): the
//! device signs its AK with the key of its certificate.
//!
//! # Modules
//!
//! | module | what |
//! | --- | --- |
//! | `quote` | `TPMS_ATTEST` and `TPMT_SIGNATURE` parsers |
//! | `pcrs` | PCR banks, selections and the tpm2-tools PCR file ([`PcrValues`]) |
//! | `binding` | the AK binding statement |
//! | `public` | TPM public areas, names and attributes; certifications (`TPM2_Certify`) |
//! | `credential` | EK certificates and `TPM2_MakeCredential` |

use std::collections::{BTreeMap, BTreeSet};

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use subtle::ConstantTimeEq;

use crate::pki::{ecdsa_p256_signature_to_der, pem};

mod binding;
mod credential;
mod error;
mod pcrs;
mod public;
mod quote;
mod wire;

#[cfg(test)]
mod tests;

pub use binding::{ak_binding_message, sign_ak_binding, verify_ak_binding, verify_ak_binding_key};
pub use credential::{
    challenge_attestation_key, make_credential, verify_activated_secret, verify_ek_certificate, AkChallenge,
    MadeCredential, CREDENTIAL_SECRET_LEN,
};
pub use error::AttestError;
pub use pcrs::{PcrBank, PcrValue, PcrValues};
pub use public::{verify_certify, verify_key_certification, TpmPublic};

/// The shortest nonce [`verify_quote`] accepts: 128 bits.
pub const MIN_NONCE_LEN: usize = 16;
/// The longest nonce a TPM accepts as qualifying data.
pub const MAX_NONCE_LEN: usize = 64;

/// The PEM label of a SubjectPublicKeyInfo.
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
/// The DER of a P-256 SubjectPublicKeyInfo up to the point: `SEQUENCE { SEQUENCE {
/// id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) … }`. DER has one encoding of this
/// structure, so a key is accepted exactly when its SPKI is this prefix and a 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The length of an uncompressed P-256 point.
const P256_POINT_LEN: usize = 65;

/// The public key of an attestation key: ECDSA P-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AkPublicKey {
    point: [u8; P256_POINT_LEN],
}

impl AkPublicKey {
    /// A key from its uncompressed SEC1 point (`04 ‖ x ‖ y`, 65 bytes). Whether the point is on
    /// the curve is checked when a signature is verified with it (a point that is not never
    /// verifies anything).
    pub fn from_point(point: &[u8]) -> Result<Self, AttestError> {
        match <[u8; P256_POINT_LEN]>::try_from(point) {
            Ok(point) if point[0] == 0x04 => Ok(Self { point }),
            _ => Err(AttestError::Malformed),
        }
    }

    /// A key from its DER SubjectPublicKeyInfo: id-ecPublicKey on the named curve prime256v1,
    /// uncompressed point.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, AttestError> {
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) => Self::from_point(point),
            None => Err(AttestError::Malformed),
        }
    }

    /// A key from one `PUBLIC KEY` PEM block (what `tpm2_createak -f pem` and
    /// `tpm2_readpublic -f pem` write).
    pub fn from_pem(pem: &str) -> Result<Self, AttestError> {
        Self::from_spki_der(&pem::decode_one(pem, PUBLIC_KEY_LABEL)?)
    }

    /// The uncompressed point.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], &self.point].concat()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: what the AK binding signs, and how two spellings
    /// of one key compare equal.
    pub fn spki_sha256(&self) -> [u8; 32] {
        crate::pki::sha256(&self.spki_der())
    }

    /// The SubjectPublicKeyInfo as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        pem::encode(PUBLIC_KEY_LABEL, &self.spki_der())
    }
}

/// The PCR values a verifier expects, in the SHA-256 bank, and the PCRs it asked to be quoted.
/// An empty policy accepts any values (the quote is still checked for freshness and
/// consistency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcrPolicy {
    sha256: BTreeMap<u8, [u8; 32]>,
    required: BTreeSet<u8>,
}

impl PcrPolicy {
    /// A policy that requires each `(index, value)` in the SHA-256 bank. Fails with
    /// [`AttestError::Malformed`] for an index above 31 or an index given twice.
    pub fn sha256(expected: &[(u8, [u8; 32])]) -> Result<Self, AttestError> {
        let mut sha256 = BTreeMap::new();
        for (index, value) in expected {
            if *index > 31 || sha256.insert(*index, *value).is_some() {
                return Err(AttestError::Malformed);
            }
        }
        Ok(Self { sha256, required: BTreeSet::new() })
    }

    /// This policy, also requiring each PCR of `indexes` to be quoted in the SHA-256 bank, with
    /// any value: the selection the verifier asked the device to quote. Fails with
    /// [`AttestError::Malformed`] for an index above 31.
    pub fn requiring(mut self, indexes: &[u8]) -> Result<Self, AttestError> {
        for index in indexes {
            if *index > 31 {
                return Err(AttestError::Malformed);
            }
            self.required.insert(*index);
        }
        Ok(self)
    }

    /// The PCRs that must be quoted in the SHA-256 bank, with any value, ascending.
    pub fn required(&self) -> impl Iterator<Item = u8> + '_ {
        self.required.iter().copied()
    }

    /// The expected `(index, value)` pairs, by ascending index.
    pub fn expected(&self) -> impl Iterator<Item = (u8, &[u8; 32])> {
        self.sha256.iter().map(|(index, value)| (*index, value))
    }

    /// Whether the policy expects nothing: no values and no required PCRs.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.required.is_empty()
    }
}

/// The TPM's clock when it made a quote (`TPMS_CLOCK_INFO`).
///
/// For keys outside the endorsement and platform hierarchies (such as an AK under the storage
/// key) the TPM obfuscates `reset_count` and `restart_count`: compare them between quotes of
/// the same key, never with absolute expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its clock was last set.
    pub clock: u64,
    /// TPM resets (reboots) so far.
    pub reset_count: u32,
    /// TPM restarts (resumes from hibernation) since the last reset.
    pub restart_count: u32,
    /// Whether `clock` has not gone backwards since it was last reported.
    pub safe: bool,
}

/// A verified quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// The TPM's clock.
    pub clock: ClockInfo,
    /// The TPM firmware version (vendor-specific; obfuscated like the counters of [`ClockInfo`]).
    pub firmware_version: u64,
    /// The qualified name of the key that signed (a `TPM2B_NAME`'s bytes).
    pub qualified_signer: Vec<u8>,
    /// The quoted PCRs and their values, in selection order.
    pub pcrs: Vec<PcrValue>,
}

/// Verifies a quote made by `ak` over `attest` (a marshalled `TPMS_ATTEST`), with `signature`
/// (a marshalled `TPMT_SIGNATURE`), `pcr_values` (the tpm2-tools PCR file), `expected_nonce`
/// (the nonce the verifier issued, 16 to 64 bytes) and `policy`. See the
/// [module documentation](self) for the rules, in the order they are applied.
pub fn verify_quote(
    ak: &AkPublicKey,
    attest: &[u8],
    signature: &[u8],
    pcr_values: &[u8],
    expected_nonce: &[u8],
    policy: &PcrPolicy,
) -> Result<QuoteInfo, AttestError> {
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&expected_nonce.len()) {
        return Err(AttestError::Nonce);
    }
    let raw = quote::parse_ecdsa_sha256_signature(signature).ok_or(AttestError::Malformed)?;
    let der = ecdsa_p256_signature_to_der(&raw).map_err(|_| AttestError::Signature)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ak.point())
        .verify(attest, &der)
        .map_err(|_| AttestError::Signature)?;

    let quote = quote::parse_quote_attest(attest).ok_or(AttestError::Malformed)?;
    if !bool::from(quote.extra_data.ct_eq(expected_nonce)) {
        return Err(AttestError::Nonce);
    }

    let values = PcrValues::from_tpm2_tools(pcr_values)?;
    if values.selected() != pcrs::selected(&quote.selection) || values.quote_digest() != quote.pcr_digest {
        return Err(AttestError::PcrValues);
    }
    for (index, expected) in policy.expected() {
        match values.get(PcrBank::Sha256, index) {
            Some(value) if value == expected => {}
            _ => return Err(AttestError::PcrMismatch),
        }
    }
    if policy.required().any(|index| values.get(PcrBank::Sha256, index).is_none()) {
        return Err(AttestError::PcrSelection);
    }

    Ok(QuoteInfo {
        clock: quote.clock,
        firmware_version: quote.firmware_version,
        qualified_signer: quote.qualified_signer.to_vec(),
        pcrs: values.values().to_vec(),
    })
}
