//! Certificate signing requests: built on the device, checked on the CA.
//!
//! On the device, [`build_csr`] asks a [`CertSigner`] (a software key from the keystore today,
//! a TPM key later) to sign a PKCS#10 request naming the device. rcgen encodes it and signs
//! through the signer; the result is parsed and verified again before it is returned.
//!
//! On the CA, [`CertificateRequest::from_der`] keeps exactly one thing from the request: its
//! public key, after the request's signature has verified under it (proof of possession). The
//! subject, SANs, key usages and basic constraints a request asks for are ignored; the CA's
//! policy decides them ([`CertificateAuthority::issue`](super::CertificateAuthority::issue)).
//! The requested CN and OU are exposed only so an enrolment service can compare them with
//! what it expected.
//!
//! rcgen's own `CertificateSigningRequestParams::from_der` also verifies the signature (through
//! x509-parser's `verify` feature, which rcgen's `ring` feature turns on), but it copies the
//! requested fields and rejects requests carrying extensions it does not know, such as the
//! subjectKeyIdentifier some tools add. Parsing with x509-parser and verifying with ring here
//! keeps the one check that matters and ignores the rest. Only ECDSA P-256 keys with
//! ecdsa-with-SHA256 signatures are accepted: TPMs do P-256, and one key type keeps every
//! verifier simple.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::cert::is_p256_key;
use super::der::oid;
use super::error::PkiError;
use super::identity::{is_valid_display_name, is_valid_id};
use super::signer::{is_uncompressed_p256_point, p256_spki, verify_p256, CertSigner, RcgenKey};

/// A certificate signing request whose signature has verified under its ECDSA P-256 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    public_key: Vec<u8>,
    spki_sha256: [u8; 32],
    common_name: Option<String>,
    org_unit: Option<String>,
}

impl CertificateRequest {
    /// Parses a DER PKCS#10 request and verifies its signature.
    ///
    /// Fails with [`PkiError::CsrMalformed`] if the bytes are not exactly one request,
    /// [`PkiError::UnsupportedKey`] if its key is not ECDSA P-256 (named curve, uncompressed
    /// point) or its signature algorithm not ecdsa-with-SHA256, and [`PkiError::CsrSignature`]
    /// if the signature does not verify.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|_| PkiError::CsrMalformed)?;
        if !rest.is_empty() {
            return Err(PkiError::CsrMalformed);
        }
        let info = &csr.certification_request_info;
        if info.version.0 != 0 {
            return Err(PkiError::CsrMalformed);
        }
        let key = &info.subject_pki;
        let point = key.subject_public_key.data.as_ref();
        if !is_p256_key(&key.algorithm) || key.subject_public_key.unused_bits != 0 || !is_uncompressed_p256_point(point)
        {
            return Err(PkiError::UnsupportedKey);
        }
        let algorithm = &csr.signature_algorithm;
        if algorithm.algorithm.as_bytes() != oid::ECDSA_WITH_SHA256
            || algorithm.parameters.is_some()
            || csr.signature_value.unused_bits != 0
        {
            return Err(PkiError::UnsupportedKey);
        }
        if !verify_p256(point, info.raw, &csr.signature_value.data) {
            return Err(PkiError::CsrSignature);
        }
        let first = |kind: &[u8]| {
            info.subject
                .iter_attributes()
                .find(|a| a.attr_type().as_bytes() == kind)
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned)
        };
        Ok(Self {
            public_key: point.to_vec(),
            spki_sha256: super::sha256(&p256_spki(point)),
            common_name: first(oid::COMMON_NAME),
            org_unit: first(oid::ORGANIZATIONAL_UNIT),
        })
    }

    /// Parses a `CERTIFICATE REQUEST` PEM block; see [`Self::from_der`].
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(&super::pem::decode_one(pem, super::pem::CERTIFICATE_REQUEST)?)
    }

    /// The requested public key: a 65-byte uncompressed P-256 point.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// SHA-256 of the key's canonical SubjectPublicKeyInfo: the value a certificate issued for
    /// this request reports as its SPKI hash, and what pins and key revocations use.
    pub fn spki_sha256(&self) -> [u8; 32] {
        self.spki_sha256
    }

    /// The subject CN the requester asked for. Informational: the CA never copies it.
    pub fn requested_common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject OU the requester asked for. Informational: the CA never copies it.
    pub fn requested_org_unit(&self) -> Option<&str> {
        self.org_unit.as_deref()
    }
}

/// A CSR, DER and PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedCsr {
    /// DER.
    pub der: Vec<u8>,
    /// PEM, label `CERTIFICATE REQUEST`.
    pub pem: String,
}

/// Builds the CSR of device `device_id` in `tenant` (subject `OU=tenant, CN=device_id`),
/// signed by `signer`.
///
/// Fails with [`PkiError::InvalidIdentity`] for an invalid id, [`PkiError::UnsupportedKey`]
/// if the signer's key is not a P-256 point, and [`PkiError::Signer`] if the signer fails or
/// its signature does not verify.
pub fn build_csr(signer: &dyn CertSigner, device_id: &str, tenant: &str) -> Result<EncodedCsr, PkiError> {
    if !is_valid_id(device_id) || !is_valid_id(tenant) {
        return Err(PkiError::InvalidIdentity);
    }
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationalUnitName, tenant);
    name.push(rcgen::DnType::CommonName, device_id);
    signed_request(signer, name)
}

/// Builds the CSR of a site CA key (subject `CN=common_name`), signed by `signer`: what a
/// gateway sends to its offline root, which keeps only the key
/// ([`CertificateAuthority::sign_site_ca`](super::CertificateAuthority::sign_site_ca)).
///
/// Fails with [`PkiError::InvalidIdentity`] for a name that is not a display name (1 to 64
/// bytes, no control characters), otherwise as [`build_csr`].
pub fn build_ca_csr(signer: &dyn CertSigner, common_name: &str) -> Result<EncodedCsr, PkiError> {
    if !is_valid_display_name(common_name) {
        return Err(PkiError::InvalidIdentity);
    }
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, common_name);
    signed_request(signer, name)
}

/// A CSR for `name`, signed by `signer` and checked.
fn signed_request(signer: &dyn CertSigner, name: rcgen::DistinguishedName) -> Result<EncodedCsr, PkiError> {
    if !is_uncompressed_p256_point(signer.public_key()) {
        return Err(PkiError::UnsupportedKey);
    }
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = name;
    let csr = params.serialize_request(&RcgenKey(signer)).map_err(|e| match e {
        rcgen::Error::RemoteKeyError => PkiError::Signer,
        _ => PkiError::Internal,
    })?;
    let der = csr.der().to_vec();
    // Fails closed on a signer that returned a wrong signature.
    let check = CertificateRequest::from_der(&der).map_err(|_| PkiError::Signer)?;
    if check.public_key() != signer.public_key() {
        return Err(PkiError::Internal);
    }
    let pem = super::pem::encode(super::pem::CERTIFICATE_REQUEST, &der);
    Ok(EncodedCsr { der, pem })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::SoftwareSigner;

    #[test]
    fn built_csrs_parse_and_name_the_device() {
        let signer = SoftwareSigner::generate().unwrap();
        let csr = build_csr(&signer, "tablet-1", "property-123").unwrap();
        let parsed = CertificateRequest::from_pem(&csr.pem).unwrap();
        assert_eq!(parsed, CertificateRequest::from_der(&csr.der).unwrap());
        assert_eq!(parsed.public_key(), signer.public_key());
        assert_eq!(parsed.requested_common_name(), Some("tablet-1"));
        assert_eq!(parsed.requested_org_unit(), Some("property-123"));
        assert_eq!(build_csr(&signer, "a/b", "t").unwrap_err(), PkiError::InvalidIdentity);
    }

    #[test]
    fn tampered_or_truncated_csrs_are_rejected() {
        let signer = SoftwareSigner::generate().unwrap();
        let csr = build_csr(&signer, "d", "t").unwrap().der;
        // Flip a byte of the CN "d" inside the signed part.
        let mut tampered = csr.clone();
        let at = tampered.windows(3).position(|w| w == [0x0c, 0x01, b'd']).unwrap() + 2;
        tampered[at] = b'e';
        assert_eq!(CertificateRequest::from_der(&tampered), Err(PkiError::CsrSignature));
        for len in [0, 1, csr.len() / 2, csr.len() - 1] {
            assert_eq!(CertificateRequest::from_der(&csr[..len]), Err(PkiError::CsrMalformed), "{len}");
        }
        let mut trailing = csr.clone();
        trailing.push(0);
        assert_eq!(CertificateRequest::from_der(&trailing), Err(PkiError::CsrMalformed));
    }

    #[test]
    fn other_key_types_are_refused() {
        for algorithm in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P384_SHA384] {
            let key = rcgen::KeyPair::generate_for(algorithm).unwrap();
            let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap();
            assert_eq!(CertificateRequest::from_der(csr.der()), Err(PkiError::UnsupportedKey));
        }
    }

    #[test]
    fn a_lying_signer_is_caught() {
        struct Liar(SoftwareSigner, SoftwareSigner);
        impl CertSigner for Liar {
            fn public_key(&self) -> &[u8] {
                self.0.public_key()
            }
            fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
                self.1.sign(message)
            }
        }
        let liar = Liar(SoftwareSigner::generate().unwrap(), SoftwareSigner::generate().unwrap());
        assert_eq!(build_csr(&liar, "d", "t").unwrap_err(), PkiError::Signer);
    }

    #[test]
    fn ca_csrs_name_the_ca_and_check_the_name() {
        let signer = SoftwareSigner::generate().unwrap();
        let csr = build_ca_csr(&signer, "hotel Site CA").unwrap();
        let parsed = CertificateRequest::from_pem(&csr.pem).unwrap();
        assert_eq!(parsed.public_key(), signer.public_key());
        assert_eq!(parsed.requested_common_name(), Some("hotel Site CA"));
        assert_eq!(parsed.requested_org_unit(), None);
        assert_eq!(build_ca_csr(&signer, "").unwrap_err(), PkiError::InvalidIdentity);
        assert_eq!(build_ca_csr(&signer, "a\nb").unwrap_err(), PkiError::InvalidIdentity);
    }
}
