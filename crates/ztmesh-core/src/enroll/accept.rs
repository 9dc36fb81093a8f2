//! The device's check of what the CA issued, before it stores anything.
//!
//! An answer to an enrollment or a rotation is accepted only when its certificate passes
//! [`verify_peer`] against the device's own trust, for the device and tenant it expects, on the
//! key of its own CSR. The trust is chosen here, never taken from the answer alone:
//!
//! - at enrollment, the root pinned out of band ([`Anchor::RootKey`]: the SHA-256 of its
//!   SubjectPublicKeyInfo, from the token or `--root-fingerprint`). The root is looked for in the
//!   answer's CA chain by that key; an answer without it is refused ([`EnrollError::TrustAnchor`]);
//! - at rotation, the roots the device already trusts ([`Anchor::Trust`]: its `trust.pem`).
//!
//! So a man in the middle (or a CA gone wrong) cannot hand the device a certificate from another
//! root, for another device or tenant, or for another key, and a rotation cannot leave the device
//! with a certificate its own trust refuses.

use std::time::SystemTime;

use super::error::EnrollError;
use super::messages::EnrollResponse;
use crate::pki::pem::{self, parse_certificates, CERTIFICATE};
use crate::pki::{
    inspect_certificate, verify_peer, CertificateRequest, PeerIdentity, PeerPolicy, RequiredUsage, RevocationSet,
    TrustStore, VerifyError,
};

/// What the device trusts the CA's answer against.
#[derive(Debug, Clone, Copy)]
pub enum Anchor<'a> {
    /// The SHA-256 of the root's SubjectPublicKeyInfo, pinned out of band (enrollment).
    RootKey([u8; 32]),
    /// The roots the device already trusts (rotation).
    Trust(&'a TrustStore),
}

/// What the device expects its new certificate to be.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedCertificate<'a> {
    /// The device id it must name.
    pub device_id: &'a str,
    /// The tenant it must name.
    pub tenant: &'a str,
    /// The CSR the device sent (the exact text): the certificate must carry its key.
    pub csr_pem: &'a str,
}

/// An answer the device may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAnswer {
    /// Who the new certificate says the device is.
    pub identity: PeerIdentity,
    /// The pinned root, PEM, found in the answer ([`Anchor::RootKey`] only): the device's trust.
    pub root_pem: Option<String>,
}

/// Checks the CA's answer to an enrollment or a rotation (see the module documentation) at `now`.
///
/// Errors: [`EnrollError::TrustAnchor`] when no certificate of the answer's chain has the pinned
/// root key; [`EnrollError::Certificate`] with [`verify_peer`]'s verdict (`ERR_CHAIN` for another
/// root, `ERR_DEVICE_MISMATCH`, `ERR_TENANT_MISMATCH`, `ERR_PIN` for another key, …);
/// [`EnrollError::BadResponse`] when the answer's serial is not its certificate's;
/// [`EnrollError::InvalidArgument`] when `expected.csr_pem` is not a CSR.
pub fn check_answer(
    answer: &EnrollResponse,
    anchor: Anchor<'_>,
    expected: ExpectedCertificate<'_>,
    now: SystemTime,
) -> Result<AcceptedAnswer, EnrollError> {
    let csr = CertificateRequest::from_pem(expected.csr_pem)
        .map_err(|_| EnrollError::InvalidArgument("the device's own CSR does not parse".into()))?;
    let leaf = match parse_certificates(&answer.certificate_pem)?.as_slice() {
        [leaf] => leaf.clone(),
        _ => return Err(EnrollError::Certificate(VerifyError::Malformed)),
    };
    let ca_chain = parse_certificates(&answer.ca_chain_pem)?;
    let (trust, root_pem) = match anchor {
        Anchor::RootKey(pin) => {
            let root = pinned_root(&ca_chain, &pin)?;
            (TrustStore::from_der(&[root])?, Some(pem::encode(CERTIFICATE, root)))
        }
        Anchor::Trust(trust) => (trust.clone(), None),
    };
    let chain: Vec<&[u8]> = std::iter::once(leaf.as_slice()).chain(ca_chain.iter().map(Vec::as_slice)).collect();
    let policy = PeerPolicy {
        expected_device: Some(expected.device_id.to_owned()),
        expected_tenant: Some(expected.tenant.to_owned()),
        required_usage: RequiredUsage::ClientAuth,
        pins: Some(vec![csr.spki_sha256()]),
        ..PeerPolicy::default()
    };
    let identity = verify_peer(&chain, &trust, &RevocationSet::new(), &policy, now)?;
    if identity.serial != crate::ids::normalize_serial(&answer.serial).unwrap_or_default() {
        return Err(EnrollError::BadResponse("serial is not the certificate's".into()));
    }
    Ok(AcceptedAnswer { identity, root_pem })
}

/// The certificate of `chain` (DER) whose SubjectPublicKeyInfo hashes to `pin`: the root a device
/// pinned. [`EnrollError::TrustAnchor`] when there is none. Whether it is a root at all is decided
/// by [`TrustStore::from_der`].
pub fn pinned_root<'c>(chain: &'c [Vec<u8>], pin: &[u8; 32]) -> Result<&'c [u8], EnrollError> {
    chain
        .iter()
        .find(|der| inspect_certificate(der).is_ok_and(|facts| facts.spki_sha256 == *pin))
        .map(Vec::as_slice)
        .ok_or(EnrollError::TrustAnchor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testutil::Pki;
    use crate::pki::{build_csr, DeviceCertRequest, SoftwareSigner};
    use crate::ErrorCode;

    /// A CSR of a fresh key, as the device sent it (PEM), and its parsed form.
    fn csr(device: &str, tenant: &str) -> (String, CertificateRequest) {
        let encoded = build_csr(&SoftwareSigner::generate().unwrap(), device, tenant).unwrap();
        let parsed = CertificateRequest::from_pem(&encoded.pem).unwrap();
        (encoded.pem, parsed)
    }

    /// The answer of `pki` issuing `request` for `csr`, with its site CA and root as the chain.
    fn answer(pki: &Pki, csr: &CertificateRequest, request: &DeviceCertRequest) -> EnrollResponse {
        let issued = pki.site.issue(csr, request).unwrap();
        EnrollResponse {
            certificate_pem: issued.pem,
            ca_chain_pem: pki.site.certificate_pem() + &pki.root.certificate_pem(),
            serial: issued.serial,
            not_after_ms: 0,
            config: None,
        }
    }

    fn root_key(pki: &Pki) -> [u8; 32] {
        inspect_certificate(pki.root.certificate_der()).unwrap().spki_sha256
    }

    #[test]
    fn an_answer_of_the_pinned_root_for_this_device_and_key_is_accepted_with_the_root_as_trust() {
        let pki = Pki::new();
        let (pem_text, parsed) = csr("tablet-7", "hotel-1");
        let good = answer(&pki, &parsed, &DeviceCertRequest::new("tablet-7", "hotel-1"));
        let expected = ExpectedCertificate { device_id: "tablet-7", tenant: "hotel-1", csr_pem: &pem_text };
        let accepted = check_answer(&good, Anchor::RootKey(root_key(&pki)), expected, SystemTime::now()).unwrap();
        assert_eq!((accepted.identity.device_id.as_str(), accepted.identity.tenant.as_str()), ("tablet-7", "hotel-1"));
        assert_eq!(accepted.root_pem, Some(pki.root.certificate_pem()));
        let trust = pki.trust();
        let rotated = check_answer(&good, Anchor::Trust(&trust), expected, SystemTime::now()).unwrap();
        assert_eq!((rotated.identity, rotated.root_pem), (accepted.identity, None));
    }

    #[test]
    fn foreign_roots_other_devices_tenants_keys_and_serials_are_refused() {
        let pki = Pki::new();
        let foreign = Pki::new();
        let (pem_text, parsed) = csr("tablet-7", "hotel-1");
        let expected = ExpectedCertificate { device_id: "tablet-7", tenant: "hotel-1", csr_pem: &pem_text };
        let now = SystemTime::now();
        let pin = Anchor::RootKey(root_key(&pki));
        let trust = pki.trust();
        let request = DeviceCertRequest::new("tablet-7", "hotel-1");

        // The attacker's own root, chain and all: the pinned root is not there.
        let attacker = answer(&foreign, &parsed, &request);
        assert_eq!(check_answer(&attacker, pin, expected, now), Err(EnrollError::TrustAnchor));
        assert_eq!(
            check_answer(&attacker, Anchor::Trust(&trust), expected, now),
            Err(EnrollError::Certificate(VerifyError::Chain))
        );
        // The attacker's certificate beside the real root: the root is found, the chain fails.
        let beside =
            EnrollResponse { ca_chain_pem: foreign.site.certificate_pem() + &pki.root.certificate_pem(), ..attacker };
        assert_eq!(check_answer(&beside, pin, expected, now), Err(EnrollError::Certificate(VerifyError::Chain)));
        // Real certificates, but not this device's: another device, another tenant, another key.
        let cases = [
            (answer(&pki, &parsed, &DeviceCertRequest::new("tablet-8", "hotel-1")), VerifyError::DeviceMismatch),
            (answer(&pki, &parsed, &DeviceCertRequest::new("tablet-7", "hotel-2")), VerifyError::TenantMismatch),
            (answer(&pki, &csr("tablet-7", "hotel-1").1, &request), VerifyError::Pin),
        ];
        for (wrong, error) in cases {
            assert_eq!(check_answer(&wrong, pin, expected, now), Err(EnrollError::Certificate(error)));
            assert_eq!(
                check_answer(&wrong, Anchor::Trust(&trust), expected, now),
                Err(EnrollError::Certificate(error))
            );
        }
        // An answer whose serial is not its certificate's, two leaves, or none.
        let good = answer(&pki, &parsed, &request);
        let lying = EnrollResponse { serial: "0a".into(), ..good.clone() };
        assert!(matches!(check_answer(&lying, pin, expected, now), Err(EnrollError::BadResponse(_))));
        let two = EnrollResponse { certificate_pem: good.certificate_pem.repeat(2), ..good.clone() };
        assert_eq!(check_answer(&two, pin, expected, now), Err(EnrollError::Certificate(VerifyError::Malformed)));
        let none = EnrollResponse { certificate_pem: "not a certificate".into(), ..good };
        assert_eq!(check_answer(&none, pin, expected, now).map(|_| ()).unwrap_err().code(), "ERR_CERT_MALFORMED");
    }
}
