//! Shared fixtures for the PKI's unit tests.

use std::time::SystemTime;

use super::ca::{CaMaterial, CaParams, CertificateAuthority, IssuedCertificate};
use super::csr::{build_csr, CertificateRequest};
use super::revocation::{RecordEntry, RevocationReason, RevocationSet, VerifiedRecord};
use super::signer::SoftwareSigner;
use super::verify::TrustStore;

/// A root and a site CA under it.
pub(crate) struct Pki {
    pub(crate) root: CertificateAuthority,
    pub(crate) site: CertificateAuthority,
    pub(crate) site_material: CaMaterial,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let root_material =
            CertificateAuthority::create_root(&CaParams::root("ztmesh test root", "ztmesh test")).unwrap();
        let root = root_material.authority().unwrap();
        let site_material = root.create_site_ca(&CaParams::site("gateway 1", "ztmesh test")).unwrap();
        let site = site_material.authority().unwrap();
        Self { root, site, site_material }
    }
}

/// A fresh device key and its verified CSR.
pub(crate) fn device_csr(device_id: &str, tenant: &str) -> (SoftwareSigner, CertificateRequest) {
    let signer = SoftwareSigner::generate().unwrap();
    let csr = build_csr(&signer, device_id, tenant).unwrap();
    (signer, CertificateRequest::from_der(&csr.der).unwrap())
}

impl Pki {
    /// A trust store holding the root.
    pub(crate) fn trust(&self) -> TrustStore {
        TrustStore::from_der(&[self.root.certificate_der()]).unwrap()
    }

    /// The revocations of a record signed by the site CA that revokes `issued` (serial and key).
    pub(crate) fn revoking(&self, issued: &IssuedCertificate) -> RevocationSet {
        let now = SystemTime::now();
        let entry = RecordEntry {
            serial: crate::ids::parse_serial(&issued.serial).unwrap(),
            spki_sha256: issued.spki_sha256,
            reason: RevocationReason::KeyCompromise,
            revoked_at: now,
        };
        let record = self.site.sign_revocation_record(1, now, &[entry]).unwrap();
        let issuer = self.trust().issuer(&[self.site.certificate_der(), self.root.certificate_der()], now).unwrap();
        let mut set = RevocationSet::new();
        set.add_record(&VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
        set
    }
}
