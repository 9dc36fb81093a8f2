//! Shared fixtures for the PKI's unit tests.

use super::ca::{CaMaterial, CaParams, CertificateAuthority};
use super::csr::{build_csr, CertificateRequest};
use super::signer::SoftwareSigner;

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
