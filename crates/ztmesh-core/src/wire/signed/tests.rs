use std::time::{Duration, SystemTime};

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{
    build_csr, CertificateRequest, DeviceCertRequest, RecordEntry, RevocationReason, SoftwareSigner, VerifiedRecord,
};
use crate::testing::Rng;
use crate::wire::labels::{self, TEST_OBJECT, TEST_OBJECT_OTHER};

/// A CA pair, one device of tenant `t` with roles, its key, and its chain (leaf, site CA).
struct Fixture {
    pki: Pki,
    signer: SoftwareSigner,
    leaf: Vec<u8>,
    trust: TrustStore,
}

impl Fixture {
    fn new() -> Self {
        let pki = Pki::new();
        let (signer, csr) = device_csr("tablet-1", "t");
        let mut request = DeviceCertRequest::new("tablet-1", "t");
        request.roles = vec!["pos:cashier".into()];
        let leaf = pki.site.issue(&csr, &request).unwrap().der;
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        Self { pki, signer, leaf, trust }
    }

    fn chain(&self) -> [&[u8]; 2] {
        [&self.leaf, self.pki.site.certificate_der()]
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        SignedObject::sign(TEST_OBJECT, &self.chain(), body, &self.signer).unwrap().encode()
    }

    fn verify(&self, bytes: &[u8]) -> Result<Verified, WireError> {
        self.verify_with(bytes, TEST_OBJECT, &RevocationSet::new(), &PeerPolicy::default(), SystemTime::now())
    }

    fn verify_with(
        &self,
        bytes: &[u8],
        label: Label,
        revocations: &RevocationSet,
        policy: &PeerPolicy,
        now: SystemTime,
    ) -> Result<Verified, WireError> {
        verify(bytes, label, &self.trust, revocations, policy, now)
    }
}

/// An object assembled by hand, for the cases `sign` refuses to produce.
fn assemble(label: &[u8], chain: &[&[u8]], body: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = vec![VERSION, u8::try_from(label.len()).unwrap()];
    out.extend_from_slice(label);
    out.push(u8::try_from(chain.len()).unwrap());
    for cert in chain {
        out.extend_from_slice(&u16::try_from(cert.len()).unwrap().to_be_bytes());
        out.extend_from_slice(cert);
    }
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out.push(u8::try_from(signature.len()).unwrap());
    out.extend_from_slice(signature);
    out
}

#[test]
fn a_signed_object_round_trips_and_names_its_signer() {
    let f = Fixture::new();
    let bytes = f.sign(b"hello offer");
    let decoded = SignedObject::decode(&bytes).unwrap();
    assert_eq!(decoded.encode(), bytes, "one encoding");
    assert_eq!(decoded.label(), TEST_OBJECT.as_str());
    assert_eq!(decoded.body(), b"hello offer");
    assert_eq!(decoded.chain().len(), 2);
    let verified = f.verify(&bytes).unwrap();
    assert_eq!(verified.body, b"hello offer");
    assert_eq!(verified.peer.device_id, "tablet-1");
    assert_eq!(verified.peer.tenant, "t");
    assert_eq!(verified.peer.roles, ["pos:cashier"]);
    assert_eq!(verified.digest, decoded.digest());
    // Two signatures of one body are two objects; the chain does not enter the digest.
    let again = SignedObject::decode(&f.sign(b"hello offer")).unwrap();
    assert_ne!(again.digest(), decoded.digest());
    let chain: Vec<&[u8]> = decoded.chain().iter().map(Vec::as_slice).collect();
    let leaf_only = assemble(TEST_OBJECT.as_bytes(), &chain[..1], decoded.body(), decoded.signature());
    assert_eq!(SignedObject::decode(&leaf_only).unwrap().digest(), decoded.digest());
    // An empty body and a chain of three (the root included) are fine too.
    let three = [f.leaf.as_slice(), f.pki.site.certificate_der(), f.pki.root.certificate_der()];
    let empty = SignedObject::sign(TEST_OBJECT, &three, b"", &f.signer).unwrap().encode();
    assert!(f.verify(&empty).unwrap().body.is_empty());
}

#[test]
fn a_signature_made_for_one_purpose_is_never_accepted_for_another() {
    let f = Fixture::new();
    let bytes = f.sign(b"body");
    let other = (RevocationSet::new(), PeerPolicy::default(), SystemTime::now());
    assert_eq!(f.verify_with(&bytes, TEST_OBJECT_OTHER, &other.0, &other.1, other.2).unwrap_err(), WireError::Label);
    // Relabelled on the wire: the label check passes, the signature does not.
    let object = SignedObject::decode(&bytes).unwrap();
    let chain: Vec<&[u8]> = object.chain().iter().map(Vec::as_slice).collect();
    let relabelled = assemble(TEST_OBJECT_OTHER.as_bytes(), &chain, b"body", object.signature());
    assert_eq!(
        f.verify_with(&relabelled, TEST_OBJECT_OTHER, &other.0, &other.1, other.2).unwrap_err(),
        WireError::Signature
    );
    // Labels of fixed protocols can be neither signed under nor expected.
    for fixed in [labels::ROTATION, labels::NOISE_STATIC_KEY, labels::AK_BINDING] {
        assert_eq!(SignedObject::sign(fixed, &f.chain(), b"x", &f.signer).unwrap_err(), WireError::Label);
        let forged = assemble(fixed.as_bytes(), &chain, b"body", object.signature());
        assert_eq!(f.verify_with(&forged, fixed, &other.0, &other.1, other.2).unwrap_err(), WireError::Label);
    }
    assert_eq!(WireError::Label.code(), "ERR_WIRE_LABEL");
}

#[test]
fn every_tampered_byte_is_refused() {
    let f = Fixture::new();
    let bytes = f.sign(b"the whole SDP");
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        assert!(f.verify(&tampered).is_err(), "byte {i} of {} was tampered and still verified", bytes.len());
    }
    // The body's bytes in particular fail on the signature, not the format.
    let body_at = bytes.len() - 1 - SignedObject::decode(&bytes).unwrap().signature().len() - 1;
    let mut tampered = bytes.clone();
    tampered[body_at] ^= 0x20;
    assert_eq!(f.verify(&tampered).unwrap_err(), WireError::Signature);
    assert_eq!(WireError::Signature.code(), "ERR_SIGNATURE");
}

#[test]
fn truncated_objects_and_trailing_bytes_are_malformed() {
    let f = Fixture::new();
    let bytes = f.sign(b"body");
    for len in 0..bytes.len() {
        assert_eq!(SignedObject::decode(&bytes[..len]), Err(WireError::Malformed), "length {len}");
    }
    for extra in [&[0u8][..], b"x", &[0; 100]] {
        assert_eq!(SignedObject::decode(&[&bytes[..], extra].concat()), Err(WireError::Malformed));
    }
    let mut future = bytes.clone();
    future[0] = 2;
    assert_eq!(SignedObject::decode(&future), Err(WireError::UnsupportedVersion(2)));
    assert_eq!(WireError::Malformed.code(), "ERR_WIRE_MALFORMED");
}

#[test]
fn a_signer_whose_key_is_not_the_leafs_is_refused_both_ways() {
    let f = Fixture::new();
    let stranger = SoftwareSigner::generate().unwrap();
    assert_eq!(SignedObject::sign(TEST_OBJECT, &f.chain(), b"x", &stranger).unwrap_err(), WireError::KeyMismatch);
    assert_eq!(WireError::KeyMismatch.code(), "ERR_KEY_MISMATCH");
    // Built by hand with the stranger's signature: the verifier refuses it.
    let message = signed_message(TEST_OBJECT, &crate::pki::sha256(&f.leaf), b"x");
    let signature = low_s(&stranger.sign(&message).unwrap()).unwrap();
    let forged = assemble(TEST_OBJECT.as_bytes(), &f.chain(), b"x", &signature);
    assert_eq!(f.verify(&forged).unwrap_err(), WireError::Signature);
}

#[test]
fn another_certificate_of_the_same_key_cannot_be_swapped_in() {
    // A software key keeps its key across renewal; the earlier certificate still carries a role the
    // renewed one dropped. A relay puts the earlier leaf in the renewed object's chain.
    let f = Fixture::new();
    let csr = CertificateRequest::from_der(&build_csr(&f.signer, "tablet-1", "t").unwrap().der).unwrap();
    let renewed = f.pki.site.issue(&csr, &DeviceCertRequest::new("tablet-1", "t")).unwrap().der;
    let chain = [renewed.as_slice(), f.pki.site.certificate_der()];
    let object = SignedObject::sign(TEST_OBJECT, &chain, b"order 66", &f.signer).unwrap();
    let genuine = f.verify(&object.encode()).unwrap();
    assert!(genuine.peer.roles.is_empty());
    let swapped = assemble(TEST_OBJECT.as_bytes(), &f.chain(), object.body(), object.signature());
    assert_eq!(f.verify(&swapped).unwrap_err(), WireError::Signature);
    // Both are well-formed and name different certificates, so they are different objects.
    assert_ne!(SignedObject::decode(&swapped).unwrap().digest(), genuine.digest);
    // The other way round too: signed under the role-bearing leaf, presented with the renewed one.
    let original = SignedObject::decode(&f.sign(b"order 66")).unwrap();
    let demoted = assemble(TEST_OBJECT.as_bytes(), &chain, original.body(), original.signature());
    assert_eq!(f.verify(&demoted).unwrap_err(), WireError::Signature);
}

#[test]
fn revoked_expired_foreign_and_other_tenant_signers_are_refused_with_pki_codes() {
    let f = Fixture::new();
    let bytes = f.sign(b"body");
    let now = SystemTime::now();

    let identity = f.verify(&bytes).unwrap().peer;
    let entry = RecordEntry {
        serial: crate::ids::parse_serial(&identity.serial).unwrap(),
        spki_sha256: identity.spki_sha256,
        reason: RevocationReason::KeyCompromise,
        revoked_at: now,
    };
    let record = f.pki.site.sign_revocation_record(1, now, &[entry]).unwrap();
    let issuer = f.trust.issuer(&[f.pki.site.certificate_der()], now).unwrap();
    let mut revoked = RevocationSet::new();
    revoked.add_record(&VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
    let error = f.verify_with(&bytes, TEST_OBJECT, &revoked, &PeerPolicy::default(), now).unwrap_err();
    assert_eq!((error.clone(), error.code()), (WireError::Peer(VerifyError::Revoked), "ERR_CERT_REVOKED"));

    let later = now + Duration::from_secs(400 * 86_400);
    let error = f.verify_with(&bytes, TEST_OBJECT, &RevocationSet::new(), &PeerPolicy::default(), later).unwrap_err();
    assert_eq!(error.code(), "ERR_CERT_EXPIRED");

    let policy = PeerPolicy { expected_tenant: Some("other".into()), ..PeerPolicy::default() };
    let error = f.verify_with(&bytes, TEST_OBJECT, &RevocationSet::new(), &policy, now).unwrap_err();
    assert_eq!(error.code(), "ERR_TENANT_MISMATCH");

    // A device of a foreign CA, with a perfectly good signature.
    let foreign = Fixture::new();
    let error = f.verify(&foreign.sign(b"body")).unwrap_err();
    assert_eq!((error.clone(), error.code()), (WireError::Peer(VerifyError::Chain), "ERR_CHAIN"));
}

#[test]
fn oversized_fields_are_refused_when_signing_and_decoding() {
    let f = Fixture::new();
    let big = vec![0u8; MAX_BODY_LEN + 1];
    assert_eq!(SignedObject::sign(TEST_OBJECT, &f.chain(), &big, &f.signer).unwrap_err(), WireError::TooLarge);
    assert_eq!(WireError::TooLarge.code(), "ERR_MESSAGE_SIZE");
    let huge_cert = vec![0x30; MAX_CERT_LEN + 1];
    assert_eq!(SignedObject::sign(TEST_OBJECT, &[&huge_cert], b"", &f.signer).unwrap_err(), WireError::TooLarge);
    let four = [f.leaf.as_slice(); 4];
    assert_eq!(SignedObject::sign(TEST_OBJECT, &four, b"", &f.signer).unwrap_err(), WireError::TooLarge);
    assert_eq!(SignedObject::sign(TEST_OBJECT, &[], b"", &f.signer).unwrap_err(), WireError::TooLarge);

    let object = SignedObject::decode(&f.sign(b"b")).unwrap();
    let sig = object.signature();
    let leaf: &[u8] = &f.leaf;
    // The largest body decodes; one more byte does not.
    let max = assemble(TEST_OBJECT.as_bytes(), &[leaf], &vec![7; MAX_BODY_LEN], sig);
    assert!(SignedObject::decode(&max).is_ok());
    let over = assemble(TEST_OBJECT.as_bytes(), &[leaf], &big, sig);
    assert_eq!(SignedObject::decode(&over), Err(WireError::Malformed));
    // Lengths that claim more than is there, or more than allowed.
    for bad in [
        assemble(b"", &[leaf], b"b", sig),
        assemble(&[b'x'; 65], &[leaf], b"b", sig),
        assemble(b"bad\0label", &[leaf], b"b", sig),
        assemble(TEST_OBJECT.as_bytes(), &[], b"b", sig),
        assemble(TEST_OBJECT.as_bytes(), &[leaf; 4], b"b", sig),
        assemble(TEST_OBJECT.as_bytes(), &[b""], b"b", sig),
        assemble(TEST_OBJECT.as_bytes(), &[&huge_cert], b"b", sig),
        assemble(TEST_OBJECT.as_bytes(), &[leaf], b"b", b""),
        assemble(TEST_OBJECT.as_bytes(), &[leaf], b"b", &[0x30; 73]),
    ] {
        assert_eq!(SignedObject::decode(&bad), Err(WireError::Malformed));
    }
    let mut claims_4gib = assemble(TEST_OBJECT.as_bytes(), &[leaf], b"", sig);
    let at = claims_4gib.len() - sig.len() - 1 - 4;
    claims_4gib[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(SignedObject::decode(&claims_4gib), Err(WireError::Malformed));
}

#[test]
fn signatures_have_one_encoding_low_s_and_strict_der() {
    let f = Fixture::new();
    let bytes = f.sign(b"body");
    let object = SignedObject::decode(&bytes).unwrap();
    let (r, s) = signature_scalars(object.signature()).unwrap();
    assert!(s <= P256_HALF_ORDER);
    let chain: Vec<&[u8]> = object.chain().iter().map(Vec::as_slice).collect();
    // The mirror signature (r, n − s) verifies under ECDSA but is not the object's encoding.
    let high = encode_signature(&r, &subtract(&P256_ORDER, &s));
    let message = signed_message(TEST_OBJECT, &crate::pki::sha256(&f.leaf), b"body");
    assert!(verify_p256(f.signer.public_key(), &message, &high));
    assert_eq!(
        SignedObject::decode(&assemble(TEST_OBJECT.as_bytes(), &chain, b"body", &high)),
        Err(WireError::Malformed)
    );
    // A signer that returns the high form still yields the low one.
    struct HighS<'a>(&'a SoftwareSigner);
    impl CertSigner for HighS<'_> {
        fn public_key(&self) -> &[u8] {
            self.0.public_key()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
            let (r, s) = signature_scalars(&self.0.sign(message)?).ok_or(PkiError::Signer)?;
            let s = if s <= P256_HALF_ORDER { subtract(&P256_ORDER, &s) } else { s };
            Ok(encode_signature(&r, &s))
        }
    }
    let normalised = SignedObject::sign(TEST_OBJECT, &chain, b"body", &HighS(&f.signer)).unwrap();
    assert!(signature_scalars(normalised.signature()).unwrap().1 <= P256_HALF_ORDER);
    assert!(f.verify(&normalised.encode()).is_ok());
    // A non-minimal INTEGER (an extra leading zero) is refused.
    let mut padded_r = vec![0x02, 0x21, 0x00];
    padded_r.extend_from_slice(&[0x01; 32]);
    let loose = der::sequence(&[&padded_r, &der::unsigned_integer(&s)]);
    assert!(!is_strict_low_s(&loose));
    assert_eq!(subtract(&[0xff; 32], &[0xff; 32]), [0; 32]);
}

#[test]
fn seeded_garbage_and_mutations_never_panic_or_verify() {
    let f = Fixture::new();
    let bytes = f.sign(b"seeded");
    let original = f.verify(&bytes).unwrap();
    let mut rng = Rng::new(0x005e_ed0b_1ec7_u64);
    for _ in 0..2_000 {
        let len = rng.below(300);
        let garbage = rng.bytes(len);
        assert!(SignedObject::decode(&garbage).is_err() || f.verify(&garbage).is_err());
    }
    for _ in 0..300 {
        let mut mutated = bytes.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(mutated.len());
            mutated[at] = rng.byte();
        }
        // Either refused, or (a tolerated re-encoding inside the unsigned chain) the same meaning.
        if let Ok(verified) = f.verify(&mutated) {
            assert_eq!((verified.body, verified.peer), (original.body.clone(), original.peer.clone()));
        }
    }
}
