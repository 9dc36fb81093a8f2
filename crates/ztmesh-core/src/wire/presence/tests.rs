use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{DeviceCertRequest, IssuedCertificate, SoftwareSigner};
use crate::wire::labels::TEST_OBJECT;

/// A device's key and certificate under a fresh root and site CA.
struct Fixture {
    pki: Pki,
    signer: SoftwareSigner,
    issued: IssuedCertificate,
    trust: TrustStore,
}

impl Fixture {
    fn new(device: &str, tenant: &str) -> Self {
        let pki = Pki::new();
        let (signer, csr) = device_csr(device, tenant);
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new(device, tenant)).unwrap();
        Self { trust: pki.trust(), pki, signer, issued }
    }

    /// Another device under the same site CA.
    fn other(&self, device: &str, tenant: &str) -> (SoftwareSigner, IssuedCertificate) {
        let (signer, csr) = device_csr(device, tenant);
        (signer, self.pki.site.issue(&csr, &DeviceCertRequest::new(device, tenant)).unwrap())
    }

    fn chain<'a>(&'a self, issued: &'a IssuedCertificate) -> [&'a [u8]; 2] {
        [&issued.der, self.pki.site.certificate_der()]
    }

    fn sign(&self, lease: &Lease) -> Vec<u8> {
        lease.sign(&self.chain(&self.issued), &self.signer).unwrap().encode()
    }
}

fn ms(time: SystemTime) -> u64 {
    u64::try_from(time.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn lease(seq: u64) -> Lease {
    let now = ms(SystemTime::now());
    Lease {
        device_id: "d-1".into(),
        tenant: "t".into(),
        hub_id: "hub-a".into(),
        seq,
        issued_at_ms: now,
        expires_at_ms: now + 30_000,
    }
}

fn policy() -> PeerPolicy {
    PeerPolicy { expected_tenant: Some("t".into()), ..PeerPolicy::default() }
}

#[test]
fn a_signed_lease_round_trips_and_names_its_device() {
    let f = Fixture::new("d-1", "t");
    let l = lease(7);
    let verified = verify(&f.sign(&l), &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap();
    assert_eq!(verified.lease, l);
    assert_eq!(verified.peer.device_id, "d-1");
    assert_eq!(Lease::decode(&l.encode().unwrap()).unwrap(), l);
}

#[test]
fn malformed_bodies_are_refused_and_bad_fields_never_encode() {
    let body = lease(1).encode().unwrap();
    for bad in [&body[..body.len() - 1], &[body.as_slice(), &[0]].concat(), &[], &body[..3]] {
        assert_eq!(Lease::decode(bad).unwrap_err(), WireError::Malformed);
    }
    let mut version = body.clone();
    version[0] = 2;
    assert_eq!(Lease::decode(&version).unwrap_err(), WireError::UnsupportedVersion(2));
    // A length byte that runs past the end.
    let mut long = body.clone();
    long[1] = 200;
    assert_eq!(Lease::decode(&long).unwrap_err(), WireError::Malformed);
    // seq 0, an empty or too long validity.
    let tail = body.len() - 24;
    let mut zero = body.clone();
    zero[tail..tail + 8].copy_from_slice(&[0; 8]);
    assert_eq!(Lease::decode(&zero).unwrap_err(), WireError::Malformed);
    let mut backwards = body.clone();
    backwards[tail + 16..].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(Lease::decode(&backwards).unwrap_err(), WireError::Malformed);
    let l = lease(1);
    assert_eq!(
        Lease { expires_at_ms: l.issued_at_ms + MAX_LEASE_MS + 1, ..l.clone() }.encode().unwrap_err(),
        WireError::Malformed
    );
    assert_eq!(Lease { expires_at_ms: l.issued_at_ms, ..l.clone() }.encode().unwrap_err(), WireError::Malformed);
    assert_eq!(Lease { seq: 0, ..l.clone() }.encode().unwrap_err(), WireError::Malformed);
    assert_eq!(Lease { device_id: "a b".into(), ..l.clone() }.encode().unwrap_err(), WireError::TooLarge);
    assert_eq!(Lease { hub_id: String::new(), ..l.clone() }.encode().unwrap_err(), WireError::TooLarge);
    assert_eq!(Lease { tenant: "x".repeat(65), ..l }.encode().unwrap_err(), WireError::TooLarge);
}

#[test]
fn a_lease_under_another_label_or_tampered_is_refused() {
    let f = Fixture::new("d-1", "t");
    let body = lease(1).encode().unwrap();
    let other = SignedObject::sign(TEST_OBJECT, &f.chain(&f.issued), &body, &f.signer).unwrap().encode();
    let error = verify(&other, &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), "ERR_WIRE_LABEL");
    // A hub that rewrites the lease (a later expiry) breaks the signature.
    let signed = f.sign(&lease(1));
    let object = SignedObject::decode(&signed).unwrap();
    let at = signed.len() - object.signature().len() - 1 - 1;
    let mut tampered = signed.clone();
    tampered[at] ^= 1;
    let error = verify(&tampered, &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), "ERR_SIGNATURE");
}

#[test]
fn a_lease_signed_by_another_device_or_for_another_tenant_is_refused() {
    let f = Fixture::new("d-1", "t");
    // The hub (or any device) signs a lease naming d-1 with its own key: the signer is not d-1.
    let (hub_signer, hub_cert) = f.other("hub", "t");
    let forged = lease(1).sign(&f.chain(&hub_cert), &hub_signer).unwrap().encode();
    let error = verify(&forged, &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error, PresenceError::Mismatch);
    assert_eq!(error.code(), "ERR_PRESENCE_MISMATCH");
    // A genuine lease of another tenant, read by a device of tenant t.
    let (s2, c2) = f.other("d-2", "u");
    let foreign =
        Lease { device_id: "d-2".into(), tenant: "u".into(), ..lease(1) }.sign(&f.chain(&c2), &s2).unwrap().encode();
    let error = verify(&foreign, &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), "ERR_TENANT_MISMATCH");
    // Under a foreign root.
    let stranger = Fixture::new("d-1", "t");
    let error = verify(&stranger.sign(&lease(1)), &f.trust, &RevocationSet::new(), &policy(), SystemTime::now());
    assert_eq!(error.unwrap_err().code(), "ERR_CHAIN");
}

#[test]
fn an_expired_or_future_lease_and_a_revoked_signer_are_refused() {
    let f = Fixture::new("d-1", "t");
    let signed = f.sign(&lease(1));
    let later = SystemTime::now() + Duration::from_secs(31);
    assert_eq!(verify(&signed, &f.trust, &RevocationSet::new(), &policy(), later).unwrap_err(), PresenceError::Expired);
    let future = lease(1);
    let ahead = Lease {
        issued_at_ms: future.issued_at_ms + 3_600_000,
        expires_at_ms: future.expires_at_ms + 3_600_000,
        ..future
    };
    let error = verify(&f.sign(&ahead), &f.trust, &RevocationSet::new(), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), "ERR_PRESENCE_EXPIRED");
    let error = verify(&signed, &f.trust, &f.pki.revoking(&f.issued), &policy(), SystemTime::now()).unwrap_err();
    assert_eq!(error.code(), "ERR_CERT_REVOKED");
}
