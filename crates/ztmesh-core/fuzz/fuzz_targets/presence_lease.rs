//! Presence-lease decoding and verification on arbitrary bytes: only `Ok` or a typed error,
//! never a panic; whatever body decodes re-encodes to the same bytes; and nothing verifies
//! unless it is the genuine lease.
//!
//! The first byte picks the mode. Even: the rest is a signed lease as is (and also a body).
//! Odd: the rest is a list of edits `(offset u16, xor u8)` applied to a genuine signed lease.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{DeviceCertRequest, PeerPolicy, RevocationSet, TrustStore};
use ztmesh_core::wire::presence::{self, Lease};
use ztmesh_core_fuzz::{apply_edits, Pki};

struct Fixture {
    trust: TrustStore,
    lease: Lease,
    object: Vec<u8>,
    now: SystemTime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new();
        let (signer, leaf) = pki.device(&DeviceCertRequest::new("d", "t"));
        let chain = [leaf.der.as_slice(), pki.site.certificate_der()];
        let now = SystemTime::now();
        let at = u64::try_from(now.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let lease = Lease { device_id: "d".into(), tenant: "t".into(), hub_id: "hub".into(), seq: 1, issued_at_ms: at, expires_at_ms: at + 60_000 };
        let object = lease.sign(&chain, &signer).unwrap().encode();
        Fixture { trust: pki.trust, lease, object, now: now + Duration::from_secs(1) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    if mode & 1 == 0 {
        if let Ok(lease) = Lease::decode(rest) {
            assert_eq!(lease.encode().unwrap(), rest, "one encoding");
        }
    }
    let bytes = if mode & 1 == 0 { rest.to_vec() } else { apply_edits(&fixture.object, rest, true) };
    let Ok(verified) = presence::verify(&bytes, &fixture.trust, &RevocationSet::new(), &PeerPolicy::default(), fixture.now)
    else {
        return;
    };
    assert_eq!(verified.lease, fixture.lease);
    assert_eq!((verified.peer.device_id.as_str(), verified.peer.tenant.as_str()), ("d", "t"));
});
