//! What the fuzz targets share: the mutation of a genuine input by a list of edits, and the PKI
//! (a root, a site CA under it, devices of the site) the targets sign and verify with.

use ztmesh_core::pki::{
    build_csr, CaParams, CertificateAuthority, CertificateRequest, DeviceCertRequest, IssuedCertificate,
    SoftwareSigner, TrustStore,
};

/// `original` with `edits` applied: each 3-byte edit `(offset u16 big-endian, xor u8)` flips the
/// byte at `offset` (ignored past the end); when `truncate` is set, a leftover byte `cut` after
/// the last whole edit drops the last `cut` bytes. Mutations reach every field of a structure
/// that parses, which a fuzzer starting from garbage rarely does.
pub fn apply_edits(original: &[u8], edits: &[u8], truncate: bool) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let mut chunks = edits.chunks_exact(3);
    for edit in &mut chunks {
        let offset = usize::from(u16::from_be_bytes([edit[0], edit[1]]));
        if let Some(byte) = bytes.get_mut(offset) {
            *byte ^= edit[2];
        }
    }
    if let (true, [cut, ..]) = (truncate, chunks.remainder()) {
        bytes.truncate(bytes.len().saturating_sub(usize::from(*cut)));
    }
    bytes
}

/// A root, a site CA it issued, and a trust store holding the root.
pub struct Pki {
    /// The root CA.
    pub root: CertificateAuthority,
    /// The site CA, issued by the root.
    pub site: CertificateAuthority,
    /// Trusts the root.
    pub trust: TrustStore,
}

impl Pki {
    /// A fresh root (`fuzz root`) and site CA (`fuzz site`) of the organisation `fuzz`.
    pub fn new() -> Self {
        let root = CertificateAuthority::create_root(&CaParams::root("fuzz root", "fuzz")).expect("root");
        let root = root.authority().expect("root");
        let site = root.create_site_ca(&CaParams::site("fuzz site", "fuzz")).expect("site").authority().expect("site");
        let trust = TrustStore::from_der(&[root.certificate_der()]).expect("trust");
        Self { root, site, trust }
    }

    /// A fresh device key and the certificate the site CA issues it for `request`.
    pub fn device(&self, request: &DeviceCertRequest) -> (SoftwareSigner, IssuedCertificate) {
        let signer = SoftwareSigner::generate().expect("key");
        let csr = build_csr(&signer, &request.device_id, &request.tenant).expect("csr");
        let csr = CertificateRequest::from_der(&csr.der).expect("csr");
        let issued = self.site.issue(&csr, request).expect("certificate");
        (signer, issued)
    }

    /// The chain a device presents: its certificate, then the site CA's.
    pub fn chain(&self, issued: &IssuedCertificate) -> Vec<Vec<u8>> {
        vec![issued.der.clone(), self.site.certificate_der().to_vec()]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_flip_bytes_ignore_offsets_past_the_end_and_truncate_only_when_asked() {
        let original = [0u8; 8];
        let edits = [0, 1, 0xff, 0xff, 0xff, 0x01, 0, 7, 0x10, 3];
        assert_eq!(apply_edits(&original, &edits, false), [0, 0xff, 0, 0, 0, 0, 0, 0x10]);
        assert_eq!(apply_edits(&original, &edits, true), [0, 0xff, 0, 0, 0]);
        assert_eq!(apply_edits(&original, &[9], true), [0; 0]);
        assert_eq!(apply_edits(&original, &[], true), original);
    }
}
