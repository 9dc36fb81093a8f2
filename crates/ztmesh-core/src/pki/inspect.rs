//! What a certificate says, read without deciding whether to trust it.
//!
//! [`inspect_certificate`] is for a device reading its own certificate (when to renew, what
//! to ask for in the next CSR), a CA reading one it issued, and tools printing one. It checks
//! no signature, no chain, no validity and no revocation: a peer is decided by
//! [`verify_peer`](super::verify_peer) and nothing else.

use std::time::SystemTime;

use super::cert::ParsedCert;
use super::error::VerifyError;
use super::identity::roles_from_uris;
use super::system_time;

/// The facts of one certificate, untrusted. The name says so: nothing here was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedCertificateFacts {
    /// The subject's commonName (the device id of a device certificate), if it has exactly one.
    pub device_id: Option<String>,
    /// The subject's organizationalUnitName (the tenant), if it has exactly one.
    pub tenant: Option<String>,
    /// The roles among the SAN URIs (strictly decoded; see [`super::ROLE_URI_PREFIX`]).
    pub roles: Vec<String>,
    /// The serial in its one spelling ([`crate::ids::serial_hex`]); `None` when it is zero,
    /// negative or longer than 20 bytes.
    pub serial: Option<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// SHA-256 of the SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// Whether basicConstraints says CA:true.
    pub is_ca: bool,
}

/// Reads the facts of one certificate (DER) without any trust decision. Fails with
/// [`VerifyError::Malformed`] when the DER does not parse, its validity is not representable,
/// or its role URIs break the role rules.
pub fn inspect_certificate(der: &[u8]) -> Result<UntrustedCertificateFacts, VerifyError> {
    let cert = ParsedCert::from_der(der).map_err(|()| VerifyError::Malformed)?;
    let single = |values: &[String]| match values {
        [one] => Some(one.clone()),
        _ => None,
    };
    Ok(UntrustedCertificateFacts {
        device_id: single(&cert.common_names),
        tenant: single(&cert.org_units),
        roles: roles_from_uris(&cert.san_uris).ok_or(VerifyError::Malformed)?,
        serial: cert.serial.as_deref().map(crate::ids::serial_hex),
        not_before: system_time(cert.not_before).ok_or(VerifyError::Malformed)?,
        not_after: system_time(cert.not_after).ok_or(VerifyError::Malformed)?,
        spki_sha256: cert.spki_sha256,
        is_ca: cert.basic_constraints.is_some_and(|bc| bc.ca),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testutil::{device_csr, Pki};
    use crate::pki::{verify_peer, DeviceCertRequest, PeerPolicy, RevocationSet, TrustStore};

    #[test]
    fn inspection_reads_what_verification_would_return_and_decides_nothing() {
        let pki = Pki::new();
        let (_, csr) = device_csr("tablet-1", "hotel-1");
        let mut request = DeviceCertRequest::new("tablet-1", "hotel-1");
        request.roles = vec!["pos:cashier".into(), "staff".into()];
        let issued = pki.site.issue(&csr, &request).unwrap();
        let facts = inspect_certificate(&issued.der).unwrap();
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        let chain = [issued.der.as_slice(), pki.site.certificate_der()];
        let peer =
            verify_peer(&chain, &trust, &RevocationSet::new(), &PeerPolicy::default(), SystemTime::now()).unwrap();
        assert_eq!(facts.device_id.as_deref(), Some(peer.device_id.as_str()));
        assert_eq!(facts.tenant.as_deref(), Some(peer.tenant.as_str()));
        assert_eq!(facts.roles, peer.roles);
        assert_eq!(facts.serial.as_deref(), Some(peer.serial.as_str()));
        assert_eq!(facts.serial.as_deref(), Some(issued.serial.as_str()));
        assert_eq!(facts.spki_sha256, peer.spki_sha256);
        assert_eq!(facts.not_after, peer.not_after);
        assert_eq!(facts.not_before, issued.not_before);
        assert!(!facts.is_ca);
        // A CA certificate is inspected all the same, and so is a certificate of a foreign CA:
        // no trust decision here.
        let foreign = Pki::new();
        let (_, csr) = device_csr("d", "t");
        let stranger = foreign.site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
        assert_eq!(inspect_certificate(&stranger.der).unwrap().device_id.as_deref(), Some("d"));
        let ca = inspect_certificate(pki.site.certificate_der()).unwrap();
        assert!(ca.is_ca && ca.tenant.is_none() && ca.roles.is_empty());
        assert_eq!(inspect_certificate(b"garbage"), Err(VerifyError::Malformed));
        assert_eq!(inspect_certificate(&[&issued.der[..], &[0]].concat()), Err(VerifyError::Malformed));
    }
}
