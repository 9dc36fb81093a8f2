//! TPM public areas (`TPMT_PUBLIC`), their names, and certifications (`TPM2_Certify`).
//!
//! A TPM names an object by the hash of its public area: `name = nameAlg ‖ H(TPMT_PUBLIC)`. A
//! verifier that has the public area recomputes the name, so what the area says about the key
//! (its attributes: `fixedTPM`, `fixedParent`, `restricted`, `sign`…) is exactly what the TPM
//! holds under that name. Credential activation (`credential`) proves that a TPM with a given
//! endorsement key holds an object of a given name; a certification proves that the object of
//! another name lives in the same TPM as the attestation key that signed it.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use subtle::ConstantTimeEq;

use super::error::AttestError;
use super::quote::{parse_ecdsa_sha256_signature, TPM_ALG_SHA256, TPM_GENERATED_VALUE};
use super::wire::Reader;
use super::{AkPublicKey, MAX_NONCE_LEN, MIN_NONCE_LEN};
use crate::pki::ecdsa_p256_signature_to_der;

/// `TPM_ALG_RSA`.
const TPM_ALG_RSA: u16 = 0x0001;
/// `TPM_ALG_ECC`.
const TPM_ALG_ECC: u16 = 0x0023;
/// `TPM_ALG_NULL`.
const TPM_ALG_NULL: u16 = 0x0010;
/// `TPM_ECC_NIST_P256`.
const TPM_ECC_NIST_P256: u16 = 0x0003;
/// `TPM_ST_ATTEST_CERTIFY`.
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;

/// `TPMA_OBJECT` bits.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
const RESTRICTED: u32 = 1 << 16;
const DECRYPT: u32 = 1 << 17;
const SIGN: u32 = 1 << 18;

/// What an attestation key must be: made in the TPM, never leaving it, signing only what the TPM
/// itself produced.
const AK_ATTRIBUTES: u32 = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN;
/// What a certified device key must be: made in the TPM and never leaving it, a signing key.
const DEVICE_KEY_ATTRIBUTES: u32 = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | SIGN;

/// The largest public area accepted (`sizeof(TPMT_PUBLIC)` with a 4096-bit RSA key, rounded up).
const MAX_PUBLIC: usize = 1024;
/// `sizeof(TPMU_HA)`.
const MAX_DIGEST: usize = 64;
/// `sizeof(TPMU_NAME)`.
const MAX_NAME: usize = 2 + 64;
/// `sizeof(TPMT_HA)`, the bound of `TPM2B_DATA`.
const MAX_DATA: usize = 2 + 64;
/// The largest RSA modulus accepted, in bytes.
const MAX_RSA: usize = 512;

/// A parsed, bounded `TPMT_PUBLIC` with a SHA-256 name algorithm: the public area of an ECC P-256
/// or RSA key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmPublic {
    bytes: Vec<u8>,
    attributes: u32,
    key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    EccP256 { point: [u8; 65] },
    Rsa { modulus: Vec<u8>, exponent: u32 },
}

impl TpmPublic {
    /// Parses a marshalled `TPMT_PUBLIC`. Fails with [`AttestError::Malformed`] for anything
    /// but an RSA or ECC P-256 key with a SHA-256 name algorithm, a length out of bounds, or
    /// trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        if bytes.len() > MAX_PUBLIC {
            return Err(AttestError::Malformed);
        }
        parse_public(bytes).ok_or(AttestError::Malformed)
    }

    /// The marshalled `TPMT_PUBLIC`.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The object's TPM name: `TPM_ALG_SHA256 ‖ SHA-256(TPMT_PUBLIC)`.
    pub fn name(&self) -> Vec<u8> {
        [&TPM_ALG_SHA256.to_be_bytes()[..], &crate::pki::sha256(&self.bytes)].concat()
    }

    /// Checks that this is an attestation key (`fixedTPM`, `fixedParent`,
    /// `sensitiveDataOrigin`, `restricted`, `sign`; not `decrypt`) on P-256 whose point is
    /// `ak`'s. Fails with [`AttestError::KeyAttributes`].
    pub fn check_attestation_key(&self, ak: &AkPublicKey) -> Result<(), AttestError> {
        self.check_p256(AK_ATTRIBUTES, ak.point())
    }

    /// The attestation key this area describes, if it is one (as
    /// [`check_attestation_key`](Self::check_attestation_key) requires); else
    /// [`AttestError::KeyAttributes`].
    pub fn attestation_key(&self) -> Result<AkPublicKey, AttestError> {
        match &self.key {
            PublicKey::EccP256 { point }
                if self.attributes & AK_ATTRIBUTES == AK_ATTRIBUTES && self.attributes & DECRYPT == 0 =>
            {
                AkPublicKey::from_point(point).map_err(|_| AttestError::KeyAttributes)
            }
            _ => Err(AttestError::KeyAttributes),
        }
    }

    /// Checks that this is a device key (`fixedTPM`, `fixedParent`, `sensitiveDataOrigin`,
    /// `sign`; not `decrypt`) on P-256 whose uncompressed point is `point` (the key of a CSR).
    /// Fails with [`AttestError::KeyAttributes`].
    pub fn check_device_key(&self, point: &[u8]) -> Result<(), AttestError> {
        self.check_p256(DEVICE_KEY_ATTRIBUTES, point)
    }

    /// The RSA modulus (big-endian) and public exponent of an RSA key (an exponent of 0 in
    /// the area means 65537), or `None` for another key type.
    pub fn rsa(&self) -> Option<(&[u8], u32)> {
        match &self.key {
            PublicKey::Rsa { modulus, exponent } => Some((modulus, *exponent)),
            PublicKey::EccP256 { .. } => None,
        }
    }

    fn check_p256(&self, required: u32, point: &[u8]) -> Result<(), AttestError> {
        match &self.key {
            PublicKey::EccP256 { point: own }
                if self.attributes & required == required
                    && self.attributes & DECRYPT == 0
                    && bool::from(own[..].ct_eq(point)) =>
            {
                Ok(())
            }
            _ => Err(AttestError::KeyAttributes),
        }
    }
}

/// Verifies a certification (`TPM2_Certify`) by the attestation key `ak` over `nonce` (16 to 64
/// bytes): `attest` (a marshalled `TPMS_ATTEST` of type certify) is signed by `ak` with
/// `signature` (a marshalled ECDSA/SHA-256 `TPMT_SIGNATURE`), carries the nonce, and certifies
/// the object named by `certified`. Fails with [`AttestError::Nonce`], [`AttestError::Malformed`],
/// [`AttestError::Signature`] or [`AttestError::Certify`] (another object is certified).
pub fn verify_certify(
    ak: &AkPublicKey,
    attest: &[u8],
    signature: &[u8],
    nonce: &[u8],
    certified: &TpmPublic,
) -> Result<(), AttestError> {
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len()) {
        return Err(AttestError::Nonce);
    }
    let raw = parse_ecdsa_sha256_signature(signature).ok_or(AttestError::Malformed)?;
    let der = ecdsa_p256_signature_to_der(&raw).map_err(|_| AttestError::Signature)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ak.point())
        .verify(attest, &der)
        .map_err(|_| AttestError::Signature)?;
    let (extra_data, name) = parse_certify_attest(attest).ok_or(AttestError::Malformed)?;
    if !bool::from(extra_data.ct_eq(nonce)) {
        return Err(AttestError::Nonce);
    }
    if name != certified.name().as_slice() {
        return Err(AttestError::Certify);
    }
    Ok(())
}

/// Checks that the device key whose uncompressed P-256 point is `device_point` (the key of a
/// CSR) lives in the TPM of `ak`: `key_public` is its public area (fixed to the TPM, a signing
/// key: [`AttestError::KeyAttributes`]) and `ak` certified it over `nonce` ([`verify_certify`]).
pub fn verify_key_certification(
    ak: &AkPublicKey,
    key_public: &[u8],
    attest: &[u8],
    signature: &[u8],
    nonce: &[u8],
    device_point: &[u8],
) -> Result<(), AttestError> {
    let area = TpmPublic::parse(key_public)?;
    area.check_device_key(device_point)?;
    verify_certify(ak, attest, signature, nonce, &area)
}

/// The extra data and the certified name of a `TPMS_ATTEST` of type certify; `None` unless it
/// is well formed, TPM-generated and nothing follows it.
fn parse_certify_attest(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut reader = Reader::new(bytes);
    if reader.u32_be()? != TPM_GENERATED_VALUE || reader.u16_be()? != TPM_ST_ATTEST_CERTIFY {
        return None;
    }
    reader.tpm2b(MAX_NAME)?; // qualifiedSigner
    let extra_data = reader.tpm2b(MAX_DATA)?;
    reader.take(8 + 4 + 4 + 1 + 8)?; // clockInfo, firmwareVersion
    let name = reader.tpm2b(MAX_NAME)?;
    reader.tpm2b(MAX_NAME)?; // qualifiedName
    reader.is_empty().then_some((extra_data, name))
}

fn parse_public(bytes: &[u8]) -> Option<TpmPublic> {
    let mut reader = Reader::new(bytes);
    let kind = reader.u16_be()?;
    if reader.u16_be()? != TPM_ALG_SHA256 {
        return None;
    }
    let attributes = reader.u32_be()?;
    reader.tpm2b(MAX_DIGEST)?; // authPolicy
                               // TPMT_SYM_DEF_OBJECT: an algorithm, and unless it is NULL, key bits and a mode.
    if reader.u16_be()? != TPM_ALG_NULL {
        reader.take(4)?;
    }
    // The scheme: an algorithm, and unless it is NULL, its hash.
    if reader.u16_be()? != TPM_ALG_NULL {
        reader.take(2)?;
    }
    let key = match kind {
        TPM_ALG_ECC => {
            if reader.u16_be()? != TPM_ECC_NIST_P256 {
                return None;
            }
            if reader.u16_be()? != TPM_ALG_NULL {
                reader.take(2)?; // the KDF's hash
            }
            let (x, y) = (reader.tpm2b(32)?, reader.tpm2b(32)?);
            if x.is_empty() || y.is_empty() {
                return None;
            }
            let mut point = [0u8; 65];
            point[0] = 0x04;
            point[33 - x.len()..33].copy_from_slice(x);
            point[65 - y.len()..].copy_from_slice(y);
            PublicKey::EccP256 { point }
        }
        TPM_ALG_RSA => {
            let bits = usize::from(reader.u16_be()?);
            let exponent = match reader.u32_be()? {
                0 => 65_537,
                e => e,
            };
            let modulus = reader.tpm2b(MAX_RSA)?;
            if bits == 0 || modulus.len() * 8 != bits {
                return None;
            }
            PublicKey::Rsa { modulus: modulus.to_vec(), exponent }
        }
        _ => return None,
    };
    reader.is_empty().then(|| TpmPublic { bytes: bytes.to_vec(), attributes, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECC P-256 AK area as the TPM writes it (the template of `tpm::templates::ecdsa_key(true)`).
    fn ak_area(point: &[u8; 65]) -> Vec<u8> {
        let mut area = hex::decode("0023000b00050072000000100018000b00030010").unwrap();
        for coordinate in [&point[1..33], &point[33..]] {
            area.extend_from_slice(&[0, 32]);
            area.extend_from_slice(coordinate);
        }
        area
    }

    #[test]
    fn attribute_checks_follow_the_area() {
        let point = [4u8; 65];
        let ak = AkPublicKey::from_point(&point).unwrap();
        let area = TpmPublic::parse(&ak_area(&point)).unwrap();
        assert_eq!(area.check_attestation_key(&ak), Ok(()));
        assert_eq!(area.attestation_key(), Ok(ak.clone()));
        assert_eq!(area.check_device_key(&point), Ok(()), "an AK is also fixed to its TPM");
        // Not restricted: a signing key, never an AK.
        let mut loose = ak_area(&point);
        loose[5] &= !0x01;
        let loose = TpmPublic::parse(&loose).unwrap();
        assert_eq!(loose.check_attestation_key(&ak), Err(AttestError::KeyAttributes));
        assert_eq!(loose.attestation_key(), Err(AttestError::KeyAttributes));
        // Not fixedTPM: the key could have been imported, or can leave.
        let mut movable = ak_area(&point);
        movable[7] &= !0x02;
        assert_eq!(TpmPublic::parse(&movable).unwrap().check_device_key(&point), Err(AttestError::KeyAttributes));
        assert_eq!(area.check_device_key(&[5u8; 65]), Err(AttestError::KeyAttributes), "another point");
        assert_eq!(area.rsa(), None);
    }

    #[test]
    fn seeded_garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = ak_area(&[4u8; 65]);
        let ak = AkPublicKey::from_point(&[4u8; 65]).unwrap();
        let area = TpmPublic::parse(&base).unwrap();
        for _ in 0..20_000 {
            let mut bytes = base.clone();
            let edits = 1 + next() % 4;
            for _ in 0..edits {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            let _ = TpmPublic::parse(&bytes).map(|p| p.name());
            let _ = verify_certify(&ak, &bytes, &bytes, &[0u8; 32], &area);
            let _ = parse_certify_attest(&bytes);
        }
    }
}
