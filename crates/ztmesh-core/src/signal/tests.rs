use std::time::{Duration, SystemTime};

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{DeviceCertRequest, IssuedCertificate, SoftwareSigner};

const FP: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
const FP2: &str = "00:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

fn sdp(fingerprint: &str) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\na=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n"
    )
}

/// A device of the test PKI: its key, certificate and chain.
struct Device {
    signer: SoftwareSigner,
    issued: IssuedCertificate,
    chain: Vec<Vec<u8>>,
}

impl Device {
    fn chain(&self) -> Vec<&[u8]> {
        self.chain.iter().map(Vec::as_slice).collect()
    }

    fn offer(&self, to: &str, tenant: &str, sdp: &str, now: SystemTime) -> SignedObject {
        let from = crate::pki::inspect_certificate(&self.issued.der).unwrap().device_id.unwrap();
        let description = Description::new(&from, to, tenant, sdp, 7, now).unwrap();
        sign_offer(&description, &self.chain(), &self.signer).unwrap()
    }

    fn answer(&self, offer: &SignedObject, to: &str, now: SystemTime) -> SignedObject {
        let from = crate::pki::inspect_certificate(&self.issued.der).unwrap().device_id.unwrap();
        let description = Description::new(&from, to, "t", &sdp(FP2), 7, now).unwrap();
        sign_answer(&Answer { description, offer_digest: offer.digest() }, &self.chain(), &self.signer).unwrap()
    }
}

struct Site {
    pki: Pki,
}

impl Site {
    fn new() -> Self {
        Self { pki: Pki::new() }
    }

    fn device(&self, id: &str, tenant: &str) -> Device {
        let (signer, csr) = device_csr(id, tenant);
        let issued = self.pki.site.issue(&csr, &DeviceCertRequest::new(id, tenant)).unwrap();
        let chain = vec![issued.der.clone(), self.pki.site.certificate_der().to_vec()];
        Device { signer, issued, chain }
    }

    fn verifier(&self, me: &str) -> SignalVerifier {
        self.verifier_with(me, WindowLimits::default())
    }

    fn verifier_with(&self, me: &str, limits: WindowLimits) -> SignalVerifier {
        SignalVerifier::new(self.pki.trust(), RevocationSet::new(), me, "t", limits).unwrap()
    }
}

/// A signed object's encoding from its parts, as an attacker would write it.
fn encode_raw(label: Label, chain: &[&[u8]], body: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = vec![1, u8::try_from(label.as_str().len()).unwrap()];
    out.extend_from_slice(label.as_bytes());
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

fn code<T: fmt::Debug, E: ErrorCode + fmt::Debug>(result: Result<T, E>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn an_offer_and_its_answer_round_trip_and_name_their_signers() {
    let site = Site::new();
    let (alice, bob) = (site.device("alice", "t"), site.device("bob", "t"));
    let (at_alice, at_bob) = (site.verifier("alice"), site.verifier("bob"));
    let now = SystemTime::now();
    let offer = alice.offer("bob", "t", &sdp(FP), now);
    let verified = at_bob.verify_offer(&offer.encode(), None, now).unwrap();
    assert_eq!(verified.peer.device_id, "alice");
    assert_eq!((verified.description.from.as_str(), verified.description.to.as_str()), ("alice", "bob"));
    assert_eq!(verified.digest, offer.digest());
    assert_eq!(sdp_fingerprint(&verified.description.sdp).unwrap()[..2], [0xab, 0xcd]);

    let answer = bob.answer(&offer, "alice", now);
    let answered = at_alice.verify_answer(&answer.encode(), &offer.digest(), Some("bob"), now).unwrap();
    assert_eq!(answered.peer.device_id, "bob");
    assert_eq!(answered.answer.offer_digest, offer.digest());

    let candidate =
        Candidate::new("bob", "alice", "t", offer.digest(), "0", "candidate:1 1 UDP 1 127.0.0.1 5000 typ host", now)
            .unwrap();
    let signed = sign_candidate(&candidate, &bob.chain(), &bob.signer).unwrap();
    let got = at_alice.verify_candidate(&signed.encode(), &offer.digest(), Some("bob"), now).unwrap();
    assert_eq!(got.candidate, candidate);
    assert_eq!(code(at_alice.verify_candidate(&signed.encode(), &offer.digest(), Some("bob"), now)), "ERR_REPLAY");
    assert_eq!(code(at_alice.verify_candidate(&signed.encode(), &[0; 32], None, now)), "ERR_SIGNAL_MISMATCH");
}

#[test]
fn bodies_are_strict_and_bounded() {
    let now = SystemTime::now();
    let description = Description::new("alice", "bob", "t", &sdp(FP), 1, now).unwrap();
    let body = description.encode().unwrap();
    assert_eq!(Description::decode(&body).unwrap(), description);
    for bad in [&body[..body.len() - 1], &[body.as_slice(), &[0]].concat(), &[], &[2]] {
        assert_eq!(Description::decode(bad).unwrap_err(), SignalError::Malformed);
    }
    let mut version = body.clone();
    version[0] = 2;
    assert_eq!(Description::decode(&version).unwrap_err(), SignalError::Malformed);
    // An id that breaks the rule, as written by someone else's encoder.
    let mut bad_id = body.clone();
    bad_id[2] = b'/';
    assert_eq!(Description::decode(&bad_id).unwrap_err(), SignalError::Malformed);
    let longest = Answer {
        description: Description {
            from: "f".repeat(64),
            to: "t".repeat(64),
            tenant: "n".repeat(64),
            sdp: "a".repeat(MAX_SDP_LEN),
            ..description.clone()
        },
        offer_digest: [0; 32],
    };
    assert_eq!(longest.encode().unwrap().len(), MAX_BODY_LEN);
    let big = Description { sdp: "a".repeat(MAX_SDP_LEN + 1), ..description.clone() };
    assert_eq!(big.encode().unwrap_err(), SignalError::TooLarge);
    assert_eq!(Description { from: "a/b".into(), ..description.clone() }.encode().unwrap_err().code(), "ERR_IDENTITY");
    let answer = Answer { description: description.clone(), offer_digest: [9; 32] };
    let encoded = answer.encode().unwrap();
    assert_eq!(Answer::decode(&encoded).unwrap(), answer);
    assert_eq!(Answer::decode(&body).unwrap_err(), SignalError::Malformed, "an offer body is not an answer");
    assert_eq!(Description::decode(&encoded).unwrap_err(), SignalError::Malformed, "nor the reverse");
    let candidate = Candidate::new("a", "b", "t", [1; 32], "0", "candidate:1", now).unwrap();
    let encoded = candidate.encode().unwrap();
    assert_eq!(Candidate::decode(&encoded).unwrap(), candidate);
    assert_eq!(Candidate::decode(&encoded[..encoded.len() - 1]).unwrap_err(), SignalError::Malformed);
    let long = Candidate { candidate: "c".repeat(MAX_CANDIDATE_LEN + 1), ..candidate.clone() };
    assert_eq!(long.encode().unwrap_err(), SignalError::TooLarge);
    assert_eq!(Candidate { candidate: "a\r\nb".into(), ..candidate }.encode().unwrap_err(), SignalError::TooLarge);
    assert_ne!(
        Description::new("a", "b", "t", "", 1, now).unwrap().nonce,
        Description::new("a", "b", "t", "", 1, now).unwrap().nonce
    );
}

#[test]
fn the_sdp_carries_exactly_one_sha256_fingerprint() {
    let one = sdp(FP);
    assert_eq!(sdp_fingerprint(&one).unwrap()[31], 0x89);
    assert_eq!(sdp_fingerprint(&one.replace("\r\n", "\n")).unwrap(), sdp_fingerprint(&one).unwrap());
    assert_eq!(sdp_fingerprint(&one.replace("sha-256", "SHA-256")).unwrap(), sdp_fingerprint(&one).unwrap());
    // Session level only, inherited by the media section.
    let session = one
        .replace(&format!("a=fingerprint:sha-256 {FP}\r\n"), "")
        .replace("t=0 0\r\n", &format!("t=0 0\r\na=fingerprint:sha-256 {FP}\r\n"));
    assert_eq!(sdp_fingerprint(&session).unwrap(), sdp_fingerprint(&one).unwrap());
    // Session and media agreeing.
    let both = one.replace("t=0 0\r\n", &format!("t=0 0\r\na=fingerprint:sha-256 {FP}\r\n"));
    assert_eq!(sdp_fingerprint(&both).unwrap(), sdp_fingerprint(&one).unwrap());
    let refused = [
        one.replace(&format!("a=fingerprint:sha-256 {FP}\r\n"), ""),
        one.replace("sha-256", "sha-1"),
        one.replace(
            &format!("a=fingerprint:sha-256 {FP}\r\n"),
            &format!("a=fingerprint:sha-256 {FP}\r\na=fingerprint:sha-256 {FP2}\r\n"),
        ),
        one.replace(
            &format!("a=fingerprint:sha-256 {FP}\r\n"),
            &format!("a=fingerprint:sha-256 {FP}\r\na=fingerprint:sha-256 {FP}\r\n"),
        ),
        one.replace("t=0 0\r\n", &format!("t=0 0\r\na=fingerprint:sha-256 {FP2}\r\n")),
        format!("{one}m=audio 9 RTP/AVP 0\r\n"),
        format!("{one}m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 {FP2}\r\n"),
        one.replace(FP, &FP[..FP.len() - 3]),
        one.replace(FP, &FP.replace(':', "-")),
        one.replace(FP, &FP.replace("AB", "AG")),
        one.replace(FP, &format!("{FP}:00")),
        String::new(),
    ];
    for (i, sdp) in refused.iter().enumerate() {
        assert_eq!(sdp_fingerprint(sdp), Err(SignalError::Sdp), "case {i}");
    }
    // Signing refuses it too.
    let site = Site::new();
    let alice = site.device("alice", "t");
    let description = Description::new("alice", "bob", "t", &refused[0], 1, SystemTime::now()).unwrap();
    assert_eq!(code(sign_offer(&description, &alice.chain(), &alice.signer)), "ERR_SIGNAL_SDP");
    // And verifying, for an offer signed by some other encoder.
    let body = description.encode().unwrap();
    let object = SignedObject::sign(labels::OFFER, &alice.chain(), &body, &alice.signer).unwrap();
    assert_eq!(code(site.verifier("bob").verify_offer(&object.encode(), None, SystemTime::now())), "ERR_SIGNAL_SDP");
}

#[test]
fn forged_tampered_and_foreign_offers_are_refused() {
    let site = Site::new();
    let alice = site.device("alice", "t");
    let bob = site.verifier("bob");
    let now = SystemTime::now();
    let offer = alice.offer("bob", "t", &sdp(FP), now).encode();
    // A byte of the SDP, and of the fingerprint line.
    for needle in ["ice-pwd:0", "sha-256 AB"] {
        let at = offer.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() + needle.len() - 1;
        let mut tampered = offer.clone();
        tampered[at] ^= 1;
        assert_eq!(code(bob.verify_offer(&tampered, None, now)), "ERR_SIGNATURE", "{needle}");
    }
    // Signed by another key than the certificate's: the chain of alice, the key of mallory.
    let mallory = site.device("mallory", "t");
    let description = Description::new("alice", "bob", "t", &sdp(FP), 1, now).unwrap();
    let signed =
        SignedObject::sign(labels::OFFER, &mallory.chain(), &description.encode().unwrap(), &mallory.signer).unwrap();
    let swapped = signed.encode();
    let forged = encode_raw(labels::OFFER, &alice.chain(), signed.body(), signed.signature());
    assert_eq!(code(bob.verify_offer(&forged, None, now)), "ERR_SIGNATURE");
    // Mallory's own certificate with from = alice: the sender is not the signer.
    assert_eq!(code(bob.verify_offer(&swapped, None, now)), "ERR_SIGNAL_SENDER");
    // Another CA.
    let stranger = Site::new().device("alice", "t");
    assert_eq!(code(bob.verify_offer(&stranger.offer("bob", "t", &sdp(FP), now).encode(), None, now)), "ERR_CHAIN");
    // Another tenant's device, and a body naming another tenant.
    let other = site.device("carol", "u");
    assert_eq!(
        code(bob.verify_offer(&other.offer("bob", "u", &sdp(FP), now).encode(), None, now)),
        "ERR_TENANT_MISMATCH"
    );
    assert_eq!(
        code(bob.verify_offer(&alice.offer("bob", "u", &sdp(FP), now).encode(), None, now)),
        "ERR_TENANT_MISMATCH"
    );
    // Addressed to someone else.
    assert_eq!(
        code(bob.verify_offer(&alice.offer("dave", "t", &sdp(FP), now).encode(), None, now)),
        "ERR_SIGNAL_RECIPIENT"
    );
    // Another label.
    let test =
        SignedObject::sign(labels::TEST_OBJECT, &alice.chain(), &description.encode().unwrap(), &alice.signer).unwrap();
    assert_eq!(code(bob.verify_offer(&test.encode(), None, now)), "ERR_WIRE_LABEL");
    // An answer is not an offer.
    let answer = site.device("bob", "t").answer(&alice.offer("bob", "t", &sdp(FP), now), "alice", now);
    assert_eq!(code(bob.verify_offer(&answer.encode(), None, now)), "ERR_WIRE_LABEL");
    // Garbage, truncated, extended.
    for bad in [&offer[..offer.len() - 1], &[offer.as_slice(), &[0]].concat(), &[][..], &[1, 2, 3]] {
        assert_eq!(code(bob.verify_offer(bad, None, now)), "ERR_WIRE_MALFORMED");
    }
    // Longer than any signal can be: refused unread.
    let huge = [offer.as_slice(), &vec![0; MAX_OBJECT_LEN]].concat();
    assert_eq!(code(bob.verify_offer(&huge, None, now)), "ERR_MESSAGE_SIZE");
    // Nothing refused used up a nonce: the genuine offer still passes, once.
    assert_eq!(bob.nonces(), 0);
    bob.verify_offer(&offer, None, now).unwrap();
    let replay = bob.verify_offer(&offer, None, now).unwrap_err();
    assert_eq!(replay.code(), "ERR_REPLAY");
    assert_eq!(
        replay.signer.map(|p| p.device_id).as_deref(),
        Some("alice"),
        "a refusal after the signature names the signer"
    );
    assert_eq!(bob.verify_offer(&offer[..10], None, now).unwrap_err().signer, None, "one before it names no one");
}

#[test]
fn time_expiry_and_revocation_are_enforced() {
    let site = Site::new();
    let alice = site.device("alice", "t");
    let bob = site.verifier("bob");
    let now = SystemTime::now();
    let old = alice.offer("bob", "t", &sdp(FP), now - Duration::from_secs(61));
    assert_eq!(code(bob.verify_offer(&old.encode(), None, now)), "ERR_SIGNAL_STALE");
    let ahead = alice.offer("bob", "t", &sdp(FP), now + Duration::from_secs(6));
    assert_eq!(code(bob.verify_offer(&ahead.encode(), None, now)), "ERR_SIGNAL_FUTURE");
    let slightly = alice.offer("bob", "t", &sdp(FP), now + Duration::from_secs(2));
    bob.verify_offer(&slightly.encode(), None, now).unwrap();
    // A certificate expired at the time of verifying (a year on, the offer dated then too).
    let later = now + Duration::from_secs(365 * 86_400);
    let expired = alice.offer("bob", "t", &sdp(FP), later);
    assert_eq!(code(bob.verify_offer(&expired.encode(), None, later)), "ERR_CERT_EXPIRED");
    // Revoked after a verdict was reached: no verdict survives set_revocations.
    let first = alice.offer("bob", "t", &sdp(FP), now);
    bob.verify_offer(&first.encode(), None, now).unwrap();
    bob.set_revocations(site.pki.revoking(&alice.issued));
    let second = alice.offer("bob", "t", &sdp(FP), now);
    assert_eq!(code(bob.verify_offer(&second.encode(), None, now)), "ERR_CERT_REVOKED");
    // Revoked from the start.
    let fresh =
        SignalVerifier::new(site.pki.trust(), site.pki.revoking(&alice.issued), "bob", "t", WindowLimits::default())
            .unwrap();
    assert_eq!(
        code(fresh.verify_offer(&alice.offer("bob", "t", &sdp(FP), now).encode(), None, now)),
        "ERR_CERT_REVOKED"
    );
}

#[test]
fn answers_must_name_our_offer_and_come_from_whom_we_offered_to() {
    let site = Site::new();
    let (alice, bob, carol) = (site.device("alice", "t"), site.device("bob", "t"), site.device("carol", "t"));
    let at_alice = site.verifier("alice");
    let now = SystemTime::now();
    let offer = alice.offer("bob", "t", &sdp(FP), now);
    let other = alice.offer("carol", "t", &sdp(FP), now);
    let answer = bob.answer(&other, "alice", now);
    assert_eq!(code(at_alice.verify_answer(&answer.encode(), &offer.digest(), None, now)), "ERR_SIGNAL_MISMATCH");
    let from_carol = carol.answer(&offer, "alice", now);
    assert_eq!(
        code(at_alice.verify_answer(&from_carol.encode(), &offer.digest(), Some("bob"), now)),
        "ERR_SIGNAL_MISMATCH"
    );
    let good = bob.answer(&offer, "alice", now);
    at_alice.verify_answer(&good.encode(), &offer.digest(), Some("bob"), now).unwrap();
    assert_eq!(code(at_alice.verify_answer(&good.encode(), &offer.digest(), Some("bob"), now)), "ERR_REPLAY");
    // An offer is not an answer.
    assert_eq!(code(at_alice.verify_answer(&offer.encode(), &offer.digest(), None, now)), "ERR_WIRE_LABEL");
}

#[test]
fn an_offer_over_a_link_must_be_signed_by_the_links_peer() {
    let site = Site::new();
    let alice = site.device("alice", "t");
    let bob = site.verifier("bob");
    let now = SystemTime::now();
    let offer = alice.offer("bob", "t", &sdp(FP), now).encode();
    let mallory = LinkPeer { device_id: "mallory", tenant: "t" };
    assert_eq!(code(bob.verify_offer(&offer, Some(mallory), now)), "ERR_SIGNAL_LINK");
    bob.verify_offer(&offer, Some(LinkPeer { device_id: "alice", tenant: "t" }), now).unwrap();
}

#[test]
fn the_replay_window_remembers_every_nonce_inside_it_and_fails_closed_when_full() {
    let mut window = ReplayWindow::new(Duration::from_secs(60), Duration::from_secs(5), 3).unwrap();
    let t0 = 1_000_000_000_000u64;
    window.admit([1; 32], t0, t0).unwrap();
    assert_eq!(window.admit([1; 32], t0, t0 + 59_000), Err(SignalError::Replay));
    assert_eq!(window.admit([1; 32], t0, t0 + 60_001), Err(SignalError::Stale), "refused by time once forgotten");
    // The clock steps back: the window's now does not, so the forgotten nonce stays refused.
    window.admit([2; 32], t0 + 61_000, t0 + 120_001).unwrap();
    assert_eq!(window.admit([1; 32], t0, t0 + 1_000), Err(SignalError::Stale));
    window.admit([3; 32], t0 + 120_000, t0 + 120_001).unwrap();
    window.admit([4; 32], t0 + 120_000, t0 + 120_001).unwrap();
    // Full of live nonces: refused, and no live nonce was let go.
    assert_eq!(window.admit([5; 32], t0 + 120_000, t0 + 120_001), Err(SignalError::ReplayFull));
    assert_eq!(window.len(), 3);
    for key in [[2; 32], [3; 32], [4; 32]] {
        assert_eq!(window.admit(key, t0 + 120_000, t0 + 120_001), Err(SignalError::Replay));
    }
    // Once [2] leaves the window by time, there is room again.
    window.admit([5; 32], t0 + 120_000, t0 + 121_001).unwrap();
    assert_eq!(window.admit([5; 32], t0 + 120_000, t0 + 121_001), Err(SignalError::Replay));
    assert_eq!(window.len(), 3);
    assert_eq!(ReplayWindow::new(Duration::from_secs(1), Duration::ZERO, 0).unwrap_err(), SignalError::TooLarge);

    let site = Site::new();
    let alice = site.device("alice", "t");
    let limits = WindowLimits { capacity: 2, ..WindowLimits::default() };
    let bob = site.verifier_with("bob", limits);
    let now = SystemTime::now();
    for _ in 0..2 {
        bob.verify_offer(&alice.offer("bob", "t", &sdp(FP), now).encode(), None, now).unwrap();
    }
    assert_eq!(code(bob.verify_offer(&alice.offer("bob", "t", &sdp(FP), now).encode(), None, now)), "ERR_REPLAY_FULL");
}

#[test]
fn the_verifier_refuses_ids_that_break_the_rules() {
    let site = Site::new();
    let error = SignalVerifier::new(site.pki.trust(), RevocationSet::new(), "a/b", "t", WindowLimits::default());
    assert_eq!(code(error), "ERR_IDENTITY");
}

#[test]
fn seeded_garbage_and_mutations_give_typed_errors() {
    let site = Site::new();
    let alice = site.device("alice", "t");
    let bob = site.verifier("bob");
    let now = SystemTime::now();
    let offer = alice.offer("bob", "t", &sdp(FP), now).encode();
    let mut state = 0x5eed_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2_000 {
        let mut bytes = offer.clone();
        for _ in 0..1 + next() % 4 {
            let at = usize::try_from(next() % bytes.len() as u64).unwrap();
            bytes[at] ^= u8::try_from(1 + next() % 255).unwrap();
        }
        let result = bob.verify_offer(&bytes, None, now);
        assert!(result.is_err(), "a mutated offer never verifies");
        assert!(crate::error_info(result.unwrap_err().code()).is_some());
        let body: Vec<u8> = (0..next() % 200).map(|_| u8::try_from(next() % 256).unwrap()).collect();
        for result in [Description::decode(&body).err(), Answer::decode(&body).err(), Candidate::decode(&body).err()] {
            assert!(result.is_none_or(|e| e == SignalError::Malformed));
        }
    }
}
