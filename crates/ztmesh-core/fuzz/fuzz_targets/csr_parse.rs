//! CSR parsing and issuance on arbitrary bytes: only `Ok` or a typed error, never a panic; and
//! every CSR the CA accepts yields a certificate that verifies as exactly the requested device.
//!
//! The first byte picks the mode. Even: the rest is a CSR as is (DER, and PEM when it is
//! UTF-8). Odd: the rest is a list of edits `(offset u16, xor u8)` applied to a valid CSR, so
//! mutations reach deep into a structure that parses.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{
    build_csr, verify_peer, CertificateAuthority, CertificateRequest, DeviceCertRequest, PeerPolicy, RevocationSet,
    SoftwareSigner, TrustStore,
};
use ztmesh_core_fuzz::{apply_edits, Pki};

struct Fixture {
    site: CertificateAuthority,
    trust: TrustStore,
    csr: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let Pki { site, trust, .. } = Pki::new();
        let csr = build_csr(&SoftwareSigner::generate().unwrap(), "fuzz-device", "fuzz-tenant").unwrap().der;
        Fixture { site, trust, csr }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let csr = if mode & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = CertificateRequest::from_pem(text);
        }
        rest.to_vec()
    } else {
        apply_edits(&fixture.csr, rest, false)
    };
    let Ok(request) = CertificateRequest::from_der(&csr) else { return };
    let issued = fixture.site.issue(&request, &DeviceCertRequest::new("d", "t")).expect("an accepted CSR is issued");
    assert_eq!(issued.spki_sha256, request.spki_sha256());
    let peer = verify_peer(
        &[&issued.der, fixture.site.certificate_der()],
        &fixture.trust,
        &RevocationSet::new(),
        &PeerPolicy::default(),
        SystemTime::now(),
    )
    .expect("an issued certificate verifies");
    assert_eq!((peer.device_id.as_str(), peer.tenant.as_str()), ("d", "t"));
});
