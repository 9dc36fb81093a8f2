//! Endorsement keys: their certificates, and credential activation.
//!
//! A TPM's endorsement key (EK) is certified by its manufacturer. A verifier that trusts the
//! manufacturer's CA and wants to know that an attestation key (AK) lives in that TPM encrypts
//! a fresh secret to the EK, bound to the AK's name (`TPM2_MakeCredential`, done here in
//! software: the verifier needs no TPM). Only that TPM can decrypt it, and only for an object
//! of that name loaded beside its EK (`TPM2_ActivateCredential`); a device that returns the
//! secret has proved both. Since the name is the hash of the AK's public area, which says the
//! AK is restricted and fixed to the TPM ([`TpmPublic::check_attestation_key`]), quotes by
//! that AK can only come from that TPM.
//!
//! # MakeCredential (TPM 2.0 Part 1, §24; RSA EK with the default template)
//!
//! ```text
//! seed          32 random bytes, RSA-OAEP(SHA-256, label "IDENTITY\0") to the EK: the encrypted secret
//! symKey        KDFa(SHA-256, seed, "STORAGE", name, "", 128)
//! encIdentity   AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential))
//! hmacKey       KDFa(SHA-256, seed, "INTEGRITY", "", "", 256)
//! outerHMAC     HMAC-SHA-256(hmacKey, encIdentity ‖ name)
//! credential    TPM2B_DIGEST(outerHMAC) ‖ encIdentity (the buffer of a TPM2B_ID_OBJECT)
//! ```

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use ring::hmac;
use ring::signature::{self, UnparsedPublicKey};
use subtle::ConstantTimeEq;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use super::error::AttestError;
use super::public::TpmPublic;
use super::AkPublicKey;

/// The length of the credential secret the verifier chooses.
pub const CREDENTIAL_SECRET_LEN: usize = 32;
/// How many certificates an EK chain may have between the EK certificate and its anchor.
const MAX_INTERMEDIATES: usize = 3;

/// A credential for one AK name, encrypted to one EK: what the device hands its TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeCredential {
    /// The buffer of the `TPM2B_ID_OBJECT` (`credentialBlob`, without its size):
    /// `TPM2B_DIGEST(outerHMAC) ‖ encIdentity`.
    pub credential_blob: Vec<u8>,
    /// The buffer of the `TPM2B_ENCRYPTED_SECRET` (`secret`, without its size): the seed,
    /// RSA-OAEP encrypted to the EK.
    pub encrypted_secret: Vec<u8>,
}

/// Checks an EK certificate (DER) against the trusted EK CA certificates (`anchors`, DER: the
/// manufacturers' roots, and any intermediate the verifier chooses to trust directly), with
/// `intermediates` (DER) to bridge the gap, at `now_unix` seconds. Returns the EK's
/// SubjectPublicKeyInfo (DER).
///
/// Every certificate on the path is within its validity period; each is signed by the next
/// (RSA PKCS#1 v1.5 with SHA-256/384/512, or ECDSA P-256/SHA-256, P-384/SHA-384), whose
/// subject is the issuer it names and which is a CA. Fails with [`AttestError::EkCertificate`].
pub fn verify_ek_certificate(
    ek_certificate: &[u8],
    anchors: &[Vec<u8>],
    intermediates: &[Vec<u8>],
    now_unix: i64,
) -> Result<Vec<u8>, AttestError> {
    let now = x509_parser::time::ASN1Time::from_timestamp(now_unix).map_err(|_| AttestError::EkCertificate)?;
    let leaf = parse(ek_certificate)?;
    let spki = leaf.tbs_certificate.subject_pki.raw.to_vec();
    let anchors: Vec<X509Certificate<'_>> = anchors.iter().map(|der| parse(der)).collect::<Result<_, _>>()?;
    let intermediates: Vec<X509Certificate<'_>> =
        intermediates.iter().map(|der| parse(der)).collect::<Result<_, _>>()?;
    let mut current = leaf;
    for _ in 0..=MAX_INTERMEDIATES {
        if !current.validity().is_valid_at(now) {
            return Err(AttestError::EkCertificate);
        }
        if let Some(anchor) = anchors.iter().find(|a| issued(&current, a)) {
            return if anchor.validity().is_valid_at(now) { Ok(spki) } else { Err(AttestError::EkCertificate) };
        }
        match intermediates.iter().find(|i| issued(&current, i)) {
            Some(next) => current = next.clone(),
            None => return Err(AttestError::EkCertificate),
        }
    }
    Err(AttestError::EkCertificate)
}

/// The CA's side of credential activation for one enrollment: what goes to the device, and
/// what the CA keeps to check its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkChallenge {
    /// The credential, for the device's TPM.
    pub credential: MadeCredential,
    /// SHA-256 of the secret: what the CA stores (the secret itself is not kept).
    pub secret_sha256: [u8; 32],
    /// The attestation key the challenge is for: its quotes are the ones to accept.
    pub ak: AkPublicKey,
}

/// Challenges the attestation key whose public area (a marshalled `TPMT_PUBLIC`) is
/// `ak_public`, in the TPM whose EK certificate (DER) is `ek_certificate`: the certificate must
/// chain to `ek_cas` (trusted EK CA certificates, DER, each usable as anchor or intermediate)
/// at `now_unix` ([`AttestError::EkCertificate`]); the area must be an attestation key
/// ([`AttestError::KeyAttributes`]). A fresh 32-byte secret is encrypted to the EK for the
/// AK's name.
pub fn challenge_attestation_key(
    ek_certificate: &[u8],
    ek_cas: &[Vec<u8>],
    ak_public: &[u8],
    now_unix: i64,
) -> Result<AkChallenge, AttestError> {
    let ek_spki = verify_ek_certificate(ek_certificate, ek_cas, ek_cas, now_unix)?;
    let area = TpmPublic::parse(ak_public)?;
    let ak = area.attestation_key()?;
    let mut secret = Zeroizing::new([0u8; CREDENTIAL_SECRET_LEN]);
    crate::rand::fill(&mut secret[..]).map_err(|_| AttestError::Random)?;
    let credential = make_credential(&ek_spki, &area.name(), &secret[..])?;
    Ok(AkChallenge { credential, secret_sha256: crate::pki::sha256(&secret[..]), ak })
}

/// Checks the secret a device's TPM gave back (`TPM2_ActivateCredential`) against the SHA-256
/// the CA kept, in constant time; [`AttestError::Credential`] otherwise.
pub fn verify_activated_secret(activated: &[u8], secret_sha256: &[u8]) -> Result<(), AttestError> {
    if bool::from(crate::pki::sha256(activated)[..].ct_eq(secret_sha256)) {
        Ok(())
    } else {
        Err(AttestError::Credential)
    }
}

/// `TPM2_MakeCredential` in software: encrypts `secret` (1 to 64 bytes) for the object named
/// `name` to the RSA EK whose SubjectPublicKeyInfo (DER) is `ek_spki`. Fails with
/// [`AttestError::Malformed`] for a key that is not RSA (2048 to 4096 bits) or a secret or name
/// out of range.
pub fn make_credential(ek_spki: &[u8], name: &[u8], secret: &[u8]) -> Result<MadeCredential, AttestError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    crate::rand::fill(&mut seed[..]).map_err(|_| AttestError::Random)?;
    make_credential_with_seed(ek_spki, name, secret, &seed)
}

fn make_credential_with_seed(
    ek_spki: &[u8],
    name: &[u8],
    secret: &[u8],
    seed: &[u8; 32],
) -> Result<MadeCredential, AttestError> {
    if secret.is_empty() || secret.len() > 64 || name.len() != 34 {
        return Err(AttestError::Malformed);
    }
    let ek = PublicEncryptingKey::from_der(ek_spki).map_err(|_| AttestError::Malformed)?;
    if !(256..=512).contains(&ek.key_size_bytes()) {
        return Err(AttestError::Malformed);
    }
    let oaep = OaepPublicEncryptingKey::new(ek).map_err(|_| AttestError::Malformed)?;
    let mut encrypted = vec![0u8; oaep.ciphertext_size()];
    let encrypted = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, seed, &mut encrypted, Some(b"IDENTITY\0"))
        .map_err(|_| AttestError::Malformed)?
        .to_vec();

    let sym_key = Zeroizing::new(kdfa(seed, b"STORAGE", name, b"", 16));
    let mut enc_identity = Zeroizing::new(tpm2b(secret));
    let key = UnboundCipherKey::new(&AES_128, &sym_key).map_err(|_| AttestError::Malformed)?;
    EncryptingKey::cfb128(key)
        .and_then(|key| {
            key.less_safe_encrypt(&mut enc_identity, EncryptionContext::Iv128(FixedLength::from([0u8; 16])))
        })
        .map_err(|_| AttestError::Malformed)?;
    let hmac_key = Zeroizing::new(kdfa(seed, b"INTEGRITY", b"", b"", 32));
    let outer = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key), &[&enc_identity[..], name].concat());
    let credential_blob = [tpm2b(outer.as_ref()), enc_identity.to_vec()].concat();
    Ok(MadeCredential { credential_blob, encrypted_secret: encrypted })
}

/// KDFa with HMAC-SHA-256 (TPM 2.0 Part 1, §11.4.10.2): `bytes` of
/// `HMAC(key, i ‖ label ‖ 0x00 ‖ context_u ‖ context_v ‖ bits)` for i = 1, 2, …
fn kdfa(key: &[u8], label: &[u8], context_u: &[u8], context_v: &[u8], bytes: usize) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let bits = u32::try_from(bytes * 8).unwrap_or(u32::MAX).to_be_bytes();
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter = 1u32;
    while out.len() < bytes {
        let block = hmac::sign(&key, &[&counter.to_be_bytes()[..], label, &[0], context_u, context_v, &bits].concat());
        out.extend_from_slice(block.as_ref());
        counter += 1;
    }
    out.truncate(bytes);
    out
}

/// A `TPM2B_*` holding `data` (callers keep it under 64 KiB).
fn tpm2b(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    [&len.to_be_bytes()[..], data].concat()
}

/// A certificate with nothing after it.
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, AttestError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(AttestError::EkCertificate),
    }
}

/// Whether `issuer` issued `cert`: it names it, is a CA, and its key verifies the signature.
fn issued(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return false;
    }
    let is_ca = matches!(issuer.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return false;
    }
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    let key = &issuer.tbs_certificate.subject_pki;
    let key_curve = key.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|oid| oid.to_id_string());
    let verification: &dyn signature::VerificationAlgorithm = match (algorithm.as_str(), key_curve.as_deref()) {
        ("1.2.840.113549.1.1.11", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return false,
    };
    UnparsedPublicKey::new(verification, &key.subject_public_key.data[..])
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data[..])
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_an_independent_computation() {
        // HMAC-SHA-256(key, i ‖ label ‖ 0 ‖ u ‖ v ‖ bits), computed with Python's hmac module.
        assert_eq!(hex::encode(kdfa(b"key", b"STORAGE", b"u", b"v", 16)), "9418b46f02485cac720cb67efc450bf0");
        assert_eq!(
            hex::encode(kdfa(b"key", b"INTEGRITY", b"", b"", 40)),
            "610de258f0a1e78d1c3603ff3849dbb7cf2b741b94829e626b516b06b532d643d9b115da43b00357"
        );
    }

    #[test]
    fn refuses_bad_inputs() {
        assert_eq!(make_credential(b"not a key", &[0; 34], &[1; 32]), Err(AttestError::Malformed));
        assert_eq!(verify_ek_certificate(b"junk", &[], &[], 0), Err(AttestError::EkCertificate));
    }
}
