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
use ztmesh_core::pki::{DeviceCertRequest, PeerPolicy, RevocationSet, TrustStore};
use ztmesh_core::wire::{labels, SignedObject};
use ztmesh_core_fuzz::{apply_edits, Pki};

struct Fixture {
    trust: TrustStore,
    object: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new();
        let (signer, leaf) = pki.device(&DeviceCertRequest::new("d", "t"));
        let chain = [leaf.der.as_slice(), pki.site.certificate_der()];
        let object = SignedObject::sign(labels::TEST_OBJECT, &chain, b"fuzz body", &signer).unwrap().encode();
        Fixture { trust: pki.trust, object }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let bytes = if mode & 1 == 0 { rest.to_vec() } else { apply_edits(&fixture.object, rest, true) };
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
