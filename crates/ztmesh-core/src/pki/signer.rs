//! The signing keys of the PKI: the [`CertSigner`] trait and its software implementation.
//!
//! CAs sign certificates, CRLs and revocation records, and devices sign CSRs, through
//! [`CertSigner`] only, so a key that never leaves a TPM can take the place of a software key
//! later without touching the PKI. The trait is deliberately small: a P-256 public key, and
//! ECDSA P-256/SHA-256 signatures as DER `ECDSA-Sig-Value`s. A TPM returns raw `r ‖ s`;
//! [`ecdsa_p256_signature_to_der`] converts it.
//!
//! Every signature a signer produces for a certificate or CSR is verified before the result is
//! returned, so a faulty or misconfigured signer yields [`PkiError::Signer`], never a bad
//! certificate.

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use zeroize::Zeroizing;

use super::cert::ParsedCert;
use super::der::{self, oid, tag};
use super::error::PkiError;
use crate::sign::{Algorithm, SigningKey};
use crate::wire::labels;

/// A P-256 signing key, in software or in hardware.
pub trait CertSigner {
    /// The public key: a 65-byte uncompressed SEC1 P-256 point (`04 ‖ x ‖ y`).
    fn public_key(&self) -> &[u8];

    /// Signs `message` with ECDSA P-256 and SHA-256; returns a DER `ECDSA-Sig-Value`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// An ECDSA P-256 key held in memory (the key of a software keystore entry or of a CA key
/// file). The PKCS#8 document is zeroized when the signer is dropped.
pub struct SoftwareSigner {
    key: SigningKey,
}

impl SoftwareSigner {
    /// Generates a new key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, PkiError> {
        let key = SigningKey::generate(Algorithm::EcdsaP256Sha256).map_err(|_| PkiError::Random)?;
        Ok(Self { key })
    }

    /// Loads a key from a PKCS#8 document (DER), which must hold an ECDSA P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, PkiError> {
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, pkcs8).map_err(|_| PkiError::PrivateKey)?;
        Ok(Self { key })
    }

    /// Loads a key from a `PRIVATE KEY` PEM block.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        let pkcs8 = super::pem::decode_private_key(pem)?;
        Self::from_pkcs8(&pkcs8)
    }

    /// The private key as a PKCS#8 document, zeroized when dropped.
    pub fn to_pkcs8(&self) -> Zeroizing<Vec<u8>> {
        self.key.to_pkcs8()
    }
}

impl CertSigner for SoftwareSigner {
    fn public_key(&self) -> &[u8] {
        self.key.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.key.sign(message).map_err(|_| PkiError::Signer)
    }
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner").finish_non_exhaustive()
    }
}

/// Checks that `signer` holds the key of the certificate `leaf_der` (its SubjectPublicKeyInfo
/// point), so that a context built from the two fails when it is created, not at the first
/// handshake. Fails with [`PkiError::KeyMismatch`] for another key and
/// [`PkiError::CertificateMalformed`] for a certificate that does not parse.
///
/// The certificate is read by the PKI's one parser ([`ParsedCert::from_der`], as strict as
/// `verify_peer`), so a leaf this accepts is one a peer can parse.
pub fn check_signer_matches(leaf_der: &[u8], signer: &dyn CertSigner) -> Result<(), PkiError> {
    let leaf = ParsedCert::from_der(leaf_der).map_err(|()| PkiError::CertificateMalformed)?;
    if leaf.p256_point.as_deref() != Some(signer.public_key()) {
        return Err(PkiError::KeyMismatch);
    }
    Ok(())
}

/// Proves that `signer` holds, and can use, the key of the certificate `leaf_der`: it must be
/// the certificate's key ([`check_signer_matches`]), and a signature over a fresh challenge under
/// [`labels::KEY_CHECK`] must verify under it. A TPM that no longer loads the key, or a signer
/// that answers with anything but a valid signature, fails here rather than at the first
/// handshake. Fails with [`PkiError::KeyMismatch`], [`PkiError::Signer`],
/// [`PkiError::CertificateMalformed`] or [`PkiError::Random`].
pub fn prove_possession(leaf_der: &[u8], signer: &dyn CertSigner) -> Result<(), PkiError> {
    check_signer_matches(leaf_der, signer)?;
    let challenge = crate::rand::array::<32>().map_err(|_| PkiError::Random)?;
    let message = labels::KEY_CHECK.message(&challenge);
    let signature = signer.sign(&message)?;
    if !verify_p256(signer.public_key(), &message, &signature) {
        return Err(PkiError::KeyMismatch);
    }
    Ok(())
}

/// Converts a raw ECDSA P-256 signature `r ‖ s` (64 bytes, as a TPM returns it) into a DER
/// `ECDSA-Sig-Value`. Fails with [`PkiError::Signer`] on another length or a zero `r` or `s`.
pub fn ecdsa_p256_signature_to_der(raw: &[u8]) -> Result<Vec<u8>, PkiError> {
    if raw.len() != 64 {
        return Err(PkiError::Signer);
    }
    let (r, s) = raw.split_at(32);
    if r.iter().all(|b| *b == 0) || s.iter().all(|b| *b == 0) {
        return Err(PkiError::Signer);
    }
    Ok(der::sequence(&[&der::unsigned_integer(r), &der::unsigned_integer(s)]))
}

/// Whether `signature` (DER) is a valid ECDSA P-256/SHA-256 signature of `message` under
/// `public_key` (an uncompressed point).
pub(crate) fn verify_p256(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key).verify(message, signature).is_ok()
}

/// Whether `point` looks like an uncompressed P-256 point (ring checks it is on the curve when
/// it verifies with it).
pub(crate) fn is_uncompressed_p256_point(point: &[u8]) -> bool {
    point.len() == 65 && point.first() == Some(&0x04)
}

/// The canonical SubjectPublicKeyInfo of a P-256 point: named curve, uncompressed point.
pub(crate) fn p256_spki(point: &[u8]) -> Vec<u8> {
    let algorithm = der::sequence(&[&der::oid(oid::EC_PUBLIC_KEY), &der::oid(oid::P256)]);
    der::sequence(&[&algorithm, &der::bit_string(point)])
}

/// The AlgorithmIdentifier of ecdsa-with-SHA256 (parameters absent, RFC 5758).
pub(crate) fn ecdsa_sha256_algorithm() -> Vec<u8> {
    der::sequence(&[&der::oid(oid::ECDSA_WITH_SHA256)])
}

/// Signs `tbs` with `signer`, checks the signature, and wraps both into a signed structure
/// `SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature }` (a certificate).
pub(crate) fn sign_structure(signer: &dyn CertSigner, tbs: &[u8]) -> Result<Vec<u8>, PkiError> {
    let signature = signer.sign(tbs)?;
    if !verify_p256(signer.public_key(), tbs, &signature) {
        return Err(PkiError::Signer);
    }
    Ok(der::sequence(&[tbs, &ecdsa_sha256_algorithm(), &der::tlv(tag::BIT_STRING, &[&[0u8][..], &signature].concat())]))
}

/// A [`CertSigner`] seen through rcgen's key traits, so rcgen can sign with any signer.
pub(crate) struct RcgenKey<'a>(pub(crate) &'a dyn CertSigner);

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A P-256 public key (an uncompressed point) for rcgen: the key of a verified CSR that a CA
/// certifies.
pub(crate) struct P256PublicKey<'a>(pub(crate) &'a [u8]);

impl rcgen::PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(message).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_signer_round_trips_and_verifies() {
        let signer = SoftwareSigner::generate().unwrap();
        assert!(is_uncompressed_p256_point(signer.public_key()));
        let sig = signer.sign(b"m").unwrap();
        assert!(verify_p256(signer.public_key(), b"m", &sig));
        assert!(!verify_p256(signer.public_key(), b"n", &sig));
        let pem = super::super::pem::encode_private_key(&signer.to_pkcs8());
        let again = SoftwareSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        assert_eq!(SoftwareSigner::from_pkcs8(b"junk").unwrap_err(), PkiError::PrivateKey);
        let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
        assert_eq!(SoftwareSigner::from_pkcs8(&ed.to_pkcs8()).unwrap_err(), PkiError::PrivateKey);
    }

    #[test]
    fn raw_signatures_convert_to_der() {
        let signer = SoftwareSigner::generate().unwrap();
        let der_sig = signer.sign(b"m").unwrap();
        // Take the DER apart into r and s (left-padded to 32 bytes) and back again.
        let mut outer = der::Reader::new(&der_sig);
        let mut inner = der::Reader::new(outer.read(tag::SEQUENCE).unwrap());
        let mut raw = Vec::new();
        for _ in 0..2 {
            let int = inner.read_positive_integer().unwrap();
            raw.extend(std::iter::repeat_n(0u8, 32 - int.len()));
            raw.extend_from_slice(int);
        }
        assert_eq!(ecdsa_p256_signature_to_der(&raw).unwrap(), der_sig);
        assert_eq!(ecdsa_p256_signature_to_der(&raw[..63]), Err(PkiError::Signer));
        assert_eq!(ecdsa_p256_signature_to_der(&[0u8; 64]), Err(PkiError::Signer));
    }

    #[test]
    fn a_signer_matches_only_its_own_certificate() {
        use super::super::ca::DeviceCertRequest;
        use super::super::testutil::{device_csr, Pki};
        let pki = Pki::new();
        let (signer, csr) = device_csr("d", "t");
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
        assert_eq!(check_signer_matches(&issued.der, &signer), Ok(()));
        let stranger = SoftwareSigner::generate().unwrap();
        assert_eq!(check_signer_matches(&issued.der, &stranger), Err(PkiError::KeyMismatch));
        assert_eq!(prove_possession(&issued.der, &signer), Ok(()));
        assert_eq!(prove_possession(&issued.der, &stranger), Err(PkiError::KeyMismatch));
        assert_eq!(prove_possession(b"junk", &signer), Err(PkiError::CertificateMalformed));
        assert_eq!(check_signer_matches(pki.site.certificate_der(), &signer), Err(PkiError::KeyMismatch));
        let mut extended = issued.der.clone();
        extended.push(0);
        assert_eq!(check_signer_matches(&extended, &signer), Err(PkiError::CertificateMalformed));
        assert_eq!(check_signer_matches(b"garbage", &signer), Err(PkiError::CertificateMalformed));
        assert_eq!(check_signer_matches(&[], &signer), Err(PkiError::CertificateMalformed));
    }

    #[test]
    fn a_leaf_the_verifier_would_refuse_never_matches_a_signer() {
        use super::super::ca::DeviceCertRequest;
        use super::super::testutil::{device_csr, Pki};
        use x509_parser::prelude::FromDer;
        let pki = Pki::new();
        let (signer, csr) = device_csr("d", "t");
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
        // The outer SEQUENCE's length in a non-minimal long form (0x83 00 hi lo for 0x82 hi lo):
        // x509-parser reads it, the PKI's parser (and so `verify_peer`) does not.
        assert_eq!(issued.der[1], 0x82);
        let loose = [&[0x30, 0x83, 0x00][..], &issued.der[2..]].concat();
        assert!(x509_parser::certificate::X509Certificate::from_der(&loose).is_ok());
        assert_eq!(check_signer_matches(&loose, &signer), Err(PkiError::CertificateMalformed));
    }
}
