//! Verifying TPM 2.0 quotes and attestation-key bindings (no TPM needed).

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::attest::{self, AkPublicKey, PcrPolicy, PcrValues};

use crate::error::{invalid_argument, sync, Failure, Result};

/// One PCR value.
#[napi(object)]
pub struct PcrValue {
    /// The PCR index (0 to 23).
    pub index: u32,
    /// The bank: `sha1`, `sha256`, `sha384` or `sha512`.
    pub bank: String,
    /// The value, hex.
    pub value: String,
}

/// A quote to verify, in the files `tpm2_quote` writes.
#[napi(object)]
pub struct QuoteToVerify {
    /// The attestation key's public key: SubjectPublicKeyInfo PEM.
    pub ak_public_pem: String,
    /// The marshalled `TPMS_ATTEST` (`quote.msg`).
    pub attest: Buffer,
    /// The marshalled `TPMT_SIGNATURE` (`quote.sig`).
    pub signature: Buffer,
    /// The quoted PCR values in the tpm2-tools format (`pcrs.bin`).
    pub pcr_values: Buffer,
    /// The verifier's nonce (16 to 64 bytes).
    pub nonce: Buffer,
    /// What the SHA-256 PCRs must hold: any PCR not listed may hold anything.
    pub policy: Option<Vec<PcrValue>>,
    /// The PCRs the verifier asked for (0 to 31): each must be quoted in the SHA-256 bank.
    pub required_pcrs: Option<Vec<u32>>,
}

/// What a verified quote says.
#[napi(object)]
pub struct VerifiedQuote {
    /// The quoted PCR values.
    pub pcrs: Vec<PcrValue>,
    /// The TPM clock, in ms.
    pub clock_ms: f64,
    /// TPM resets since the TPM was cleared.
    pub reset_count: u32,
    /// TPM restarts since the last reset.
    pub restart_count: u32,
    /// Whether the clock has not gone backwards since it was last reported.
    pub clock_safe: bool,
    /// The firmware version (vendor-specific).
    pub firmware_version: f64,
}

/// Verifies a quote: the attestation key's signature, the nonce, that the PCR values are the
/// quoted ones, the policy, and that every PCR asked for is quoted. Throws
/// `ERR_ATTEST_SIGNATURE`, `ERR_ATTEST_NONCE`, `ERR_ATTEST_PCR_VALUES`,
/// `ERR_ATTEST_PCR_MISMATCH`, `ERR_ATTEST_PCR_SELECTION` or `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn verify_quote(quote: QuoteToVerify) -> Result<VerifiedQuote> {
    sync(|| {
        let ak = AkPublicKey::from_pem(&quote.ak_public_pem)?;
        let policy = match &quote.policy {
            None => PcrPolicy::default(),
            Some(expected) => PcrPolicy::sha256(&sha256_values(expected)?)?,
        };
        let required = quote
            .required_pcrs
            .iter()
            .flatten()
            .map(|index| u8::try_from(*index).map_err(|_| invalid_argument("PCR index out of range")))
            .collect::<std::result::Result<Vec<u8>, Failure>>()?;
        let policy = policy.requiring(&required)?;
        let info =
            attest::verify_quote(&ak, &quote.attest, &quote.signature, &quote.pcr_values, &quote.nonce, &policy)?;
        Ok(VerifiedQuote {
            pcrs: info.pcrs.iter().map(pcr_value).collect(),
            clock_ms: info.clock.clock as f64,
            reset_count: info.clock.reset_count,
            restart_count: info.clock.restart_count,
            clock_safe: info.clock.safe,
            firmware_version: info.firmware_version as f64,
        })
    })
}

/// A credential challenge for an enrollment: what goes to the device, and what the CA keeps.
#[napi(object)]
pub struct AkChallenge {
    /// For the device's TPM: the buffer of the `TPM2B_ID_OBJECT`.
    pub credential_blob: Buffer,
    /// For the device's TPM: the buffer of the `TPM2B_ENCRYPTED_SECRET`.
    pub encrypted_secret: Buffer,
    /// SHA-256 of the secret, hex: what the CA stores.
    pub secret_sha256: String,
    /// SHA-256 of the attestation key's SubjectPublicKeyInfo, hex: the AK the enrollment must quote with.
    pub ak_spki_sha256: String,
}

/// Challenges an attestation key: `ekCertificate` (DER) must chain to `ekCasPem` (the trusted EK
/// CA certificates) now, and `akPublic` (a marshalled `TPMT_PUBLIC`) must be a restricted signing
/// key fixed to its TPM; then a fresh secret is encrypted to the EK for the AK's name. Throws
/// `ERR_ATTEST_EK_CERTIFICATE`, `ERR_ATTEST_KEY_ATTRIBUTES` or `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn challenge_attestation_key(
    ek_certificate: &[u8],
    ek_cas_pem: String,
    ak_public: &[u8],
    now_ms: f64,
) -> Result<AkChallenge> {
    sync(|| {
        let cas = ztmesh_core::pki::pem::parse_certificates(&ek_cas_pem)?;
        let now = (now_ms / 1000.0).floor() as i64;
        let challenge = attest::challenge_attestation_key(ek_certificate, &cas, ak_public, now)?;
        Ok(AkChallenge {
            credential_blob: challenge.credential.credential_blob.into(),
            encrypted_secret: challenge.credential.encrypted_secret.into(),
            secret_sha256: hex(&challenge.secret_sha256),
            ak_spki_sha256: hex(&challenge.ak.spki_sha256()),
        })
    })
}

/// Checks the secret a device's TPM activated against the SHA-256 (hex) the CA kept, in
/// constant time; throws `ERR_ATTEST_CREDENTIAL`.
#[napi]
pub fn verify_activated_secret(activated: &[u8], secret_sha256: String) -> Result<()> {
    sync(|| {
        let expected = unhex(&secret_sha256).ok_or_else(|| invalid_argument("a SHA-256 is 64 hex digits"))?;
        Ok(attest::verify_activated_secret(activated, &expected)?)
    })
}

/// Checks that the key of `csrPem` lives in the TPM of the attestation key `akPublicPem`: its
/// public area `keyPublic` is a signing key fixed to its TPM with the CSR's key
/// (`ERR_ATTEST_KEY_ATTRIBUTES`), certified by the AK over `nonce` (`attest`, `signature`:
/// `ERR_ATTEST_SIGNATURE`, `ERR_ATTEST_NONCE`, `ERR_ATTEST_CERTIFY`).
#[napi]
pub fn verify_key_certification(
    ak_public_pem: String,
    key_public: &[u8],
    attest: &[u8],
    signature: &[u8],
    nonce: &[u8],
    csr_pem: String,
) -> Result<()> {
    sync(|| {
        let ak = AkPublicKey::from_pem(&ak_public_pem)?;
        let csr = ztmesh_core::pki::CertificateRequest::from_pem(&csr_pem)?;
        Ok(attest::verify_key_certification(&ak, key_public, attest, signature, nonce, csr.public_key())?)
    })
}

/// The PCR values in a tpm2-tools PCR file (`pcrs.bin`); throws `ERR_ATTEST_MALFORMED`.
#[napi]
pub fn parse_pcr_values(pcr_values: &[u8]) -> Result<Vec<PcrValue>> {
    sync(|| Ok(PcrValues::from_tpm2_tools(pcr_values)?.values().iter().map(pcr_value).collect()))
}

/// The statement a device signs with its certificate key to bind an attestation key to its
/// identity.
#[napi]
pub fn ak_binding_message(ak_public_pem: String) -> Result<Buffer> {
    sync(|| Ok(attest::ak_binding_message(&AkPublicKey::from_pem(&ak_public_pem)?).into()))
}

/// Checks that the key of `certificateOrCsrPem` signed the binding of `akPublicPem`: a device
/// certificate already decided by `verifyPeer`, or the CSR of an enrollment. Throws
/// `ERR_ATTEST_BINDING`.
#[napi]
pub fn verify_ak_binding(certificate_or_csr_pem: String, ak_public_pem: String, signature: &[u8]) -> Result<()> {
    sync(|| {
        let ak = AkPublicKey::from_pem(&ak_public_pem)?;
        if certificate_or_csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            let csr = ztmesh_core::pki::CertificateRequest::from_pem(&certificate_or_csr_pem)?;
            return Ok(attest::verify_ak_binding_key(csr.public_key(), &ak, signature)?);
        }
        let certificates = ztmesh_core::pki::pem::parse_certificates(&certificate_or_csr_pem)?;
        let leaf = certificates.first().ok_or_else(|| invalid_argument("no certificate"))?;
        Ok(attest::verify_ak_binding(leaf, &ak, signature)?)
    })
}

pub(crate) fn pcr_value(value: &attest::PcrValue) -> PcrValue {
    PcrValue { index: u32::from(value.index), bank: value.bank.name().to_owned(), value: hex(&value.value) }
}

/// SHA-256 expectations from JavaScript: every entry of the `sha256` bank, 32-byte hex values.
fn sha256_values(values: &[PcrValue]) -> std::result::Result<Vec<(u8, [u8; 32])>, Failure> {
    values
        .iter()
        .map(|v| {
            let index = u8::try_from(v.index).map_err(|_| invalid_argument("PCR index out of range"))?;
            if v.bank != "sha256" {
                return Err(invalid_argument("PCR policies are of the sha256 bank"));
            }
            let bytes = unhex(&v.value).ok_or_else(|| invalid_argument("a PCR value is 64 hex digits"))?;
            let value: [u8; 32] = bytes.try_into().map_err(|_| invalid_argument("a PCR value is 64 hex digits"))?;
            Ok((index, value))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect()
}
