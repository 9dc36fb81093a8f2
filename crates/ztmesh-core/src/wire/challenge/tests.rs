use std::time::{Duration, SystemTime};

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{CertSigner, DeviceCertRequest, RevocationSet, SoftwareSigner};
use crate::wire::signed::external::Unsigned;

struct Fixture {
    pki: Pki,
    signer: SoftwareSigner,
    leaf: Vec<u8>,
    trust: TrustStore,
}

impl Fixture {
    fn new(tenant: &str) -> Self {
        let pki = Pki::new();
        let (signer, csr) = device_csr("staff-1", tenant);
        let mut request = DeviceCertRequest::new("staff-1", tenant);
        request.roles = vec!["staff".into()];
        let leaf = pki.site.issue(&csr, &request).unwrap().der;
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        Self { pki, signer, leaf, trust }
    }

    fn answer(&self, body: &[u8]) -> Vec<u8> {
        let chain: [&[u8]; 2] = [&self.leaf, self.pki.site.certificate_der()];
        let prepared = Unsigned::prepare(labels::HUB_CHALLENGE, &chain, body).unwrap();
        let signature = self.signer.sign(&prepared.to_be_signed()).unwrap();
        prepared.assemble(&signature).unwrap().encode()
    }

    fn check(&self, answer: &[u8], issued: &[u8], policy: &PeerPolicy) -> Result<Verified, ChallengeError> {
        verify(answer, issued, &self.trust, &RevocationSet::new(), policy, Duration::from_secs(30), SystemTime::now())
    }
}

#[test]
fn a_signed_challenge_verifies_and_names_its_signer() {
    let f = Fixture::new("t");
    let issued = Challenge::new("gateway", SystemTime::now()).unwrap().encode();
    assert_eq!(Challenge::decode(&issued).unwrap().hub_id, "gateway");
    let verified = f.check(&f.answer(&issued), &issued, &PeerPolicy::default()).unwrap();
    assert_eq!(verified.peer.device_id, "staff-1");
}

#[test]
fn another_challenge_a_stale_one_or_another_tenant_is_refused() {
    let f = Fixture::new("t");
    let now = SystemTime::now();
    let first = Challenge::new("gateway", now).unwrap().encode();
    let second = Challenge::new("gateway", now).unwrap().encode();
    // An answer to an earlier challenge (a replay on a new connection) does not match.
    assert_eq!(f.check(&f.answer(&first), &second, &PeerPolicy::default()).unwrap_err(), ChallengeError::Mismatch);
    // Another hub's challenge.
    let other = Challenge::new("gateway-2", now).unwrap().encode();
    assert_eq!(f.check(&f.answer(&other), &first, &PeerPolicy::default()).unwrap_err(), ChallengeError::Mismatch);
    // Too old.
    let old = Challenge::new("gateway", now - Duration::from_secs(120)).unwrap().encode();
    assert_eq!(f.check(&f.answer(&old), &old, &PeerPolicy::default()).unwrap_err(), ChallengeError::Expired);
    // Another tenant.
    let policy = PeerPolicy { expected_tenant: Some("u".into()), ..PeerPolicy::default() };
    assert!(matches!(
        f.check(&f.answer(&first), &first, &policy).unwrap_err(),
        ChallengeError::Wire(WireError::Peer(_))
    ));
    // A signature under another label over the same body.
    let chain: [&[u8]; 1] = [&f.leaf];
    let prepared = Unsigned::prepare(labels::TEST_OBJECT, &chain, &first).unwrap();
    let forged = prepared.clone().assemble(&f.signer.sign(&prepared.to_be_signed()).unwrap()).unwrap().encode();
    assert_eq!(f.check(&forged, &first, &PeerPolicy::default()).unwrap_err(), ChallengeError::Wire(WireError::Label));
}

#[test]
fn garbage_never_panics() {
    let f = Fixture::new("t");
    let issued = Challenge::new("gateway", SystemTime::now()).unwrap().encode();
    let mut rng = crate::testing::Rng::new(7);
    for len in 0..200 {
        let bytes = rng.bytes(len);
        assert!(f.check(&bytes, &issued, &PeerPolicy::default()).is_err());
        let _ = Challenge::decode(&bytes);
    }
    assert_eq!(Challenge::decode(&[]).unwrap_err(), WireError::Malformed);
}
