//! Revocation record decoding (and CRL verification) on arbitrary bytes: only `Ok` or a typed
//! error, never a panic; and nothing but the signature encoding of a genuine record can change
//! without the signature check failing.
//!
//! The first byte picks the mode. Even: the rest is a record as is, and also tried as a CRL.
//! Odd: the rest is a list of edits `(offset u16, xor u8)` applied to a valid record, with an
//! optional truncation, so mutations reach every field.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{RecordEntry, RevocationReason, RevocationRecord, RevocationSet, TrustedIssuer, VerifiedCrl};
use ztmesh_core_fuzz::{apply_edits, Pki};

struct Fixture {
    issuer: TrustedIssuer,
    record: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let Pki { root, trust, .. } = Pki::new();
        let entries: Vec<RecordEntry> = (1..=3u8)
            .map(|i| RecordEntry {
                serial: vec![i; usize::from(i)],
                spki_sha256: [i; 32],
                reason: RevocationReason::KeyCompromise,
                revoked_at: SystemTime::now(),
            })
            .collect();
        let record = root.sign_revocation_record(42, SystemTime::now(), &entries).unwrap();
        let issuer = trust.issuer(&[root.certificate_der()], SystemTime::now()).unwrap();
        Fixture { issuer, record }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let bytes = if mode & 1 == 0 {
        let _ = VerifiedCrl::from_der(rest, &fixture.issuer);
        rest.to_vec()
    } else {
        apply_edits(&fixture.record, rest, true)
    };
    let Ok(record) = RevocationRecord::decode(&bytes) else { return };
    let number = record.record_number();
    let Ok(verified) = record.verify(&fixture.issuer) else { return };
    // Only a genuine record verifies: its meaning is the original's.
    let original = RevocationRecord::decode(&fixture.record).unwrap().verify(&fixture.issuer).unwrap();
    assert_eq!(number, 42);
    assert_eq!(verified.entries(), original.entries());
    let mut set = RevocationSet::new();
    assert!(set.add_record(&verified).is_ok());
    assert!(set.add_record(&original).is_ok(), "same content: a duplicate, not a conflict");
});
