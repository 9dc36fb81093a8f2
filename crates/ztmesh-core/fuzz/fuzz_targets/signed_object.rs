//! Signed-object decoding and verification on arbitrary bytes: only `Ok` or a typed error,
//! never a panic; whatever decodes re-encodes to the same bytes; and nothing verifies unless
//! it says what the genuine object says.
//!
//! The first byte picks the mode. Even: the rest is an object as is. Odd: the rest is a list
//! of edits `(offset u16, xor u8)` applied to a genuine object, with an optional truncation,
//! so mutations reach every field.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{
    build_csr, CaParams, CertificateAuthority, CertificateRequest, DeviceCertRequest, PeerPolicy, RevocationSet,
    SoftwareSigner, TrustStore,
};
use ztmesh_core::wire::{labels, SignedObject};

struct Fixture {
    trust: TrustStore,
    object: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = CertificateAuthority::create_root(&CaParams::root("fuzz root", "fuzz")).unwrap().authority().unwrap();
        let site = root.create_site_ca(&CaParams::site("fuzz site", "fuzz")).unwrap().authority().unwrap();
        let signer = SoftwareSigner::generate().unwrap();
        let csr = CertificateRequest::from_der(&build_csr(&signer, "d", "t").unwrap().der).unwrap();
        let leaf = site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap().der;
        let chain = [leaf.as_slice(), site.certificate_der()];
        let object = SignedObject::sign(labels::TEST_OBJECT, &chain, b"fuzz body", &signer).unwrap().encode();
        let trust = TrustStore::from_der(&[root.certificate_der()]).unwrap();
        Fixture { trust, object }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut bytes = fixture.object.clone();
        let mut edits = rest.chunks_exact(3);
        for edit in &mut edits {
            let offset = usize::from(u16::from_be_bytes([edit[0], edit[1]]));
            if let Some(byte) = bytes.get_mut(offset) {
                *byte ^= edit[2];
            }
        }
        if let [cut, ..] = edits.remainder() {
            bytes.truncate(bytes.len().saturating_sub(usize::from(*cut)));
        }
        bytes
    };
    let Ok(object) = SignedObject::decode(&bytes) else { return };
    assert_eq!(object.encode(), bytes, "one encoding");
    let now = SystemTime::now();
    let Ok(verified) =
        object.verify(labels::TEST_OBJECT, &fixture.trust, &RevocationSet::new(), &PeerPolicy::default(), now)
    else {
        return;
    };
    assert_eq!(verified.body, b"fuzz body");
    assert_eq!((verified.peer.device_id.as_str(), verified.peer.tenant.as_str()), ("d", "t"));
});
