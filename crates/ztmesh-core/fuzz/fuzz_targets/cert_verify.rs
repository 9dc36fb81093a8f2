//! `verify_peer` on arbitrary certificate chains: only a `PeerIdentity` or a typed error,
//! never a panic. Also the trust store, revocation-issuer and PEM chain parsers.
//!
//! The first byte picks the mode and the policy. Mode 0: the rest is up to three certificates,
//! each prefixed with its length (u16, big-endian). Mode 1: the rest is a list of edits
//! `(chain index u8, offset u16, xor u8)` applied to a valid chain `[leaf, site CA, root]`,
//! so mutations reach the checks after parsing. Mode 2: the rest is a PEM bundle.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::{
    pem, verify_peer, DeviceCertRequest, PeerPolicy, RecordEntry, RequiredUsage, RevocationReason, RevocationSet,
    TrustStore, VerifiedRecord,
};
use ztmesh_core_fuzz::Pki;

struct Fixture {
    trust: TrustStore,
    chain: Vec<Vec<u8>>,
    revoked: RevocationSet,
    pin: [u8; 32],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new();
        let mut request = DeviceCertRequest::new("d", "t");
        request.roles = vec!["r".into()];
        let (_, leaf) = pki.device(&request);
        let Pki { root, site, trust } = pki;
        // Revoke some other serial and key, so the revocation lookups run.
        let record = site
            .sign_revocation_record(
                1,
                SystemTime::now(),
                &[RecordEntry {
                    serial: vec![1, 2, 3],
                    spki_sha256: [9; 32],
                    reason: RevocationReason::Superseded,
                    revoked_at: SystemTime::now(),
                }],
            )
            .unwrap();
        let issuer = trust.issuer(&[site.certificate_der()], SystemTime::now()).unwrap();
        let mut revoked = RevocationSet::new();
        revoked.add_record(&VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
        let chain = vec![leaf.der, site.certificate_der().to_vec(), root.certificate_der().to_vec()];
        Fixture { trust, chain, revoked, pin: leaf.spki_sha256 }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let chain: Vec<Vec<u8>> = match mode % 3 {
        0 => {
            let mut chain = Vec::new();
            let mut rest = rest;
            while chain.len() < 3 && rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let (cert, tail) = rest[2..].split_at(len.min(rest.len() - 2));
                chain.push(cert.to_vec());
                rest = tail;
            }
            chain
        }
        1 => {
            let mut chain = fixture.chain.clone();
            for edit in rest.chunks_exact(4) {
                let index = usize::from(edit[0] % 4);
                let offset = usize::from(u16::from_be_bytes([edit[1], edit[2]]));
                if index == 3 {
                    // Drop a certificate, or cut one short.
                    let at = offset % 3;
                    if edit[3] == 0 && at < chain.len() {
                        chain.remove(at);
                    } else if let Some(cert) = chain.get_mut(at) {
                        cert.truncate(usize::from(edit[3]) * 4);
                    }
                } else if let Some(byte) = chain.get_mut(index).and_then(|c| c.get_mut(offset)) {
                    *byte ^= edit[3];
                }
            }
            chain
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let _ = TrustStore::from_pem(text);
            match pem::parse_certificates(text) {
                Ok(chain) => chain,
                Err(_) => return,
            }
        }
    };
    let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let policy = PeerPolicy {
        expected_device: (mode & 0x08 != 0).then(|| "d".to_owned()),
        expected_tenant: (mode & 0x10 != 0).then(|| "t".to_owned()),
        required_usage: match (mode >> 5) & 3 {
            0 => RequiredUsage::Any,
            1 => RequiredUsage::ClientAuth,
            _ => RequiredUsage::ServerAuth,
        },
        pins: (mode & 0x80 != 0).then(|| vec![fixture.pin]),
        clock_skew: Duration::from_secs(300),
    };
    let now = SystemTime::now();
    let verdict = verify_peer(&refs, &fixture.trust, &fixture.revoked, &policy, now);
    if mode % 3 == 1 && rest.is_empty() {
        assert!(verdict.is_ok(), "the unedited chain verifies: {verdict:?}");
    }
    if let Ok(peer) = verdict {
        assert_eq!((peer.device_id.as_str(), peer.tenant.as_str()), ("d", "t"));
    }
    let _ = fixture.trust.issuer(&refs, now);
    let _ = TrustStore::from_der(&refs);
});
