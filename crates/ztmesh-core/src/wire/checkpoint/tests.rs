use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{DeviceCertRequest, IssuedCertificate, SoftwareSigner};
use crate::wire::labels::TEST_OBJECT;
use crate::ErrorCode;

/// A gateway's key and certificate under a fresh root and site CA.
struct Fixture {
    pki: Pki,
    signer: SoftwareSigner,
    issued: IssuedCertificate,
    trust: TrustStore,
}

impl Fixture {
    fn new() -> Self {
        let pki = Pki::new();
        let (signer, csr) = device_csr("gw-1", "t");
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new("gw-1", "t")).unwrap();
        Self { trust: pki.trust(), pki, signer, issued }
    }

    fn sign(&self, checkpoint: &Checkpoint) -> Vec<u8> {
        checkpoint.sign(&[&self.issued.der, self.pki.site.certificate_der()], &self.signer).unwrap().encode()
    }
}

fn at(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn checkpoint(seq: u64) -> Checkpoint {
    Checkpoint { log_id: "ca/site-1".into(), seq, head: [7; 32], at_ms: at(SystemTime::now()) }
}

#[test]
fn a_signed_checkpoint_round_trips_and_names_its_signer() {
    let f = Fixture::new();
    let cp = checkpoint(42);
    let verified = verify(&f.sign(&cp), &f.trust, &RevocationSet::new(), &PeerPolicy::default()).unwrap();
    assert_eq!(verified.checkpoint, cp);
    assert_eq!(verified.peer.device_id, "gw-1");
    assert_eq!(Checkpoint::decode(&cp.encode().unwrap()).unwrap(), cp);
}

#[test]
fn malformed_bodies_and_other_labels_are_refused() {
    let f = Fixture::new();
    let body = checkpoint(1).encode().unwrap();
    for bad in [&body[..body.len() - 1], &[body.as_slice(), &[0]].concat(), &[]] {
        assert_eq!(Checkpoint::decode(bad).unwrap_err(), WireError::Malformed);
    }
    let mut zero_seq = body.clone();
    let seq_at = 2 + "ca/site-1".len();
    zero_seq[seq_at..seq_at + 8].copy_from_slice(&[0; 8]);
    assert_eq!(Checkpoint::decode(&zero_seq).unwrap_err(), WireError::Malformed);
    let mut version = body.clone();
    version[0] = 2;
    assert_eq!(Checkpoint::decode(&version).unwrap_err(), WireError::UnsupportedVersion(2));
    assert_eq!(Checkpoint { log_id: String::new(), ..checkpoint(1) }.encode().unwrap_err(), WireError::TooLarge);
    assert_eq!(Checkpoint { log_id: "a b".into(), ..checkpoint(1) }.encode().unwrap_err(), WireError::TooLarge);

    // The same body under the test label is not a checkpoint.
    let chain = [f.issued.der.as_slice(), f.pki.site.certificate_der()];
    let other = SignedObject::sign(TEST_OBJECT, &chain, &body, &f.signer).unwrap().encode();
    let error = verify(&other, &f.trust, &RevocationSet::new(), &PeerPolicy::default()).unwrap_err();
    assert_eq!(error.code(), "ERR_WIRE_LABEL");
}

#[test]
fn the_chain_is_checked_at_the_checkpoint_time_and_revocation_still_applies() {
    let f = Fixture::new();
    let now = SystemTime::now();
    // Verified at the time it carries, whenever it is read.
    let old = f.sign(&checkpoint(3));
    assert!(verify(&old, &f.trust, &RevocationSet::new(), &PeerPolicy::default()).is_ok());
    // A checkpoint claiming a time when the certificate was not valid is refused.
    let future = f.sign(&Checkpoint { at_ms: at(now + Duration::from_secs(400 * 86_400)), ..checkpoint(3) });
    let error = verify(&future, &f.trust, &RevocationSet::new(), &PeerPolicy::default()).unwrap_err();
    assert_eq!(error.code(), "ERR_CERT_EXPIRED");

    let error = verify(&old, &f.trust, &f.pki.revoking(&f.issued), &PeerPolicy::default()).unwrap_err();
    assert_eq!(error.code(), "ERR_CERT_REVOKED");

    let foreign = Fixture::new();
    let error = verify(&foreign.sign(&checkpoint(3)), &f.trust, &RevocationSet::new(), &PeerPolicy::default());
    assert_eq!(error.unwrap_err().code(), "ERR_CHAIN");
}
