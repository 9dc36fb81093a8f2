//! Hub challenges and their answers on arbitrary bytes: only `Ok` or a typed error, never a
//! panic; whatever challenge body decodes re-encodes to the same bytes; nothing verifies unless
//! it is the genuine answer to the challenge issued; and an external signature (P1363 or DER)
//! assembles only when it verifies.
//!
//! The first byte picks the mode. Mode 0: the rest is a challenge body. Mode 1: the rest is an
//! answer as is. Mode 2: edits `(offset u16, xor u8)` to the genuine answer. Mode 3: the rest is
//! a signature handed to `Unsigned::assemble`.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{CertSigner, DeviceCertRequest, PeerPolicy, RevocationSet, TrustStore};
use ztmesh_core::wire::challenge::{self, Challenge};
use ztmesh_core::wire::labels;
use ztmesh_core::wire::signed::external::Unsigned;
use ztmesh_core_fuzz::{apply_edits, Pki};

struct Fixture {
    trust: TrustStore,
    issued: Vec<u8>,
    answer: Vec<u8>,
    prepared: Unsigned,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new();
        let (signer, leaf) = pki.device(&DeviceCertRequest::new("d", "t"));
        let chain = [leaf.der.as_slice(), pki.site.certificate_der()];
        let issued = Challenge::new("hub", SystemTime::now()).unwrap().encode();
        let prepared = Unsigned::prepare(labels::HUB_CHALLENGE, &chain, &issued).unwrap();
        let signature = signer.sign(&prepared.to_be_signed()).unwrap();
        let answer = prepared.clone().assemble(&signature).unwrap().encode();
        Fixture { trust: pki.trust, issued, answer, prepared }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    match mode % 4 {
        0 => {
            if let Ok(challenge) = Challenge::decode(rest) {
                assert_eq!(challenge.encode(), rest, "one encoding");
            }
        }
        3 => {
            if let Ok(object) = fixture.prepared.clone().assemble(rest) {
                assert_eq!(object.body(), fixture.issued.as_slice());
            }
        }
        m => {
            let bytes = if m == 1 { rest.to_vec() } else { apply_edits(&fixture.answer, rest, true) };
            let verdict = challenge::verify(
                &bytes,
                &fixture.issued,
                &fixture.trust,
                &RevocationSet::new(),
                &PeerPolicy::default(),
                Duration::from_secs(3600),
                SystemTime::now(),
            );
            if let Ok(verified) = verdict {
                assert_eq!(verified.body, fixture.issued);
                assert_eq!(verified.peer.device_id, "d");
            }
        }
    }
});
