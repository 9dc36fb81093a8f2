//! The link handshake against honest peers, and against every attacker the module docs name, in
//! both roles. Attackers speak the wire format by hand with [`noise::Handshake`].

use std::sync::Arc;

use super::*;
use crate::pki::testutil::{device_csr, Pki};
use crate::pki::{DeviceCertRequest, IssuedCertificate, SoftwareSigner};

/// A root, a site CA, and the trust in the root.
struct Fixture {
    pki: Pki,
    trust: TrustStore,
}

/// A device of the fixture: its chain (leaf, site CA) and key.
struct Device {
    chain: Vec<Vec<u8>>,
    pkcs8: zeroize::Zeroizing<Vec<u8>>,
    issued: IssuedCertificate,
}

impl Device {
    fn signer(&self) -> SoftwareSigner {
        SoftwareSigner::from_pkcs8(&self.pkcs8).unwrap()
    }

    /// This device's identity payload binding `static_public`.
    fn identity(&self, static_public: &[u8]) -> Vec<u8> {
        let signature = self.signer().sign(&labels::NOISE_STATIC_KEY.message(static_public)).unwrap();
        identity::encode(&self.chain, &signature).unwrap()
    }
}

impl Fixture {
    fn new() -> Self {
        let pki = Pki::new();
        Self { trust: pki.trust(), pki }
    }

    fn device(&self, device_id: &str, tenant: &str) -> Device {
        let (signer, csr) = device_csr(device_id, tenant);
        let issued = self.pki.site.issue(&csr, &DeviceCertRequest::new(device_id, tenant)).unwrap();
        let chain = vec![issued.der.clone(), self.pki.site.certificate_der().to_vec()];
        Device { chain, pkcs8: signer.to_pkcs8(), issued }
    }

    fn config(&self, device: &Device) -> LinkConfig {
        LinkConfig::new(device.chain.clone(), Box::new(device.signer()), self.trust.clone()).unwrap()
    }

    fn revoking(&self, device: &Device) -> RevocationSet {
        self.pki.revoking(&device.issued)
    }
}

fn start(config: LinkConfig, role: Role) -> LinkHandshake {
    LinkHandshake::new(Arc::new(config), role, None).unwrap()
}

/// Moves bytes between the two sides until neither has anything to say or one failed.
fn pump(initiator: &mut LinkHandshake, responder: &mut LinkHandshake) {
    for _ in 0..8 {
        let (to_responder, to_initiator) = (initiator.take_output(), responder.take_output());
        if to_responder.is_empty() && to_initiator.is_empty() {
            return;
        }
        if responder.error().is_none() {
            let _ = responder.feed(&to_responder);
        }
        if initiator.error().is_none() {
            let _ = initiator.feed(&to_initiator);
        }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_frame(&mut out, body).unwrap();
    out
}

/// Cuts a byte string into frames.
fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        out.push(bytes[2..2 + len].to_vec());
        bytes = &bytes[2 + len..];
    }
    out
}

fn raw(protocol: Protocol, initiator: bool, static_key: &[u8; 32]) -> noise::Handshake {
    let prologue = labels::NOISE_LINK_PROLOGUE.prefix();
    let config = noise::HandshakeConfig {
        protocol,
        static_private_key: static_key,
        prologue: &prologue,
        remote_static_public_key: None,
    };
    if initiator {
        noise::Handshake::initiator(&config).unwrap()
    } else {
        noise::Handshake::responder(&config).unwrap()
    }
}

fn public(key: &[u8; 32]) -> [u8; 32] {
    *x25519::PrivateKey::from_bytes(key).unwrap().public_key()
}

const HYBRID: Protocol = Protocol::XxHybridSha256;

/// A hand-made initiator against an honest responder: runs messages 1 and 2, then sends
/// `message3_payload(own static public key)` and returns the responder and the raw transport.
fn raw_initiator_against(
    responder: &mut LinkHandshake,
    message3_payload: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> (Result<(), LinkError>, noise::Transport) {
    let key = [0x41u8; 32];
    let mut attacker = raw(HYBRID, true, &key);
    let mut flight = frame(HYBRID.name().as_bytes());
    flight.extend(frame(&attacker.write_message(&[]).unwrap()));
    responder.feed(&flight).unwrap();
    let message2 = frames(&responder.take_output()).remove(0);
    assert!(attacker.read_message(&message2).unwrap().is_empty(), "message 2 carries no identity");
    let message3 = attacker.write_message(&message3_payload(&public(&key))).unwrap();
    let result = responder.feed(&frame(&message3));
    (result, attacker.into_transport().unwrap())
}

/// A hand-made responder against an honest initiator: runs messages 1 to 3, then confirms with
/// `confirmation(own static public key)`. Returns the initiator's result and the initiator's
/// identity payload.
fn raw_responder_against(
    initiator: &mut LinkHandshake,
    confirmation: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> (Result<(), LinkError>, Vec<u8>) {
    let key = [0x52u8; 32];
    let mut flight = frames(&initiator.take_output());
    assert_eq!(flight.remove(0), HYBRID.name().as_bytes());
    let mut attacker = raw(HYBRID, false, &key);
    assert!(attacker.read_message(&flight.remove(0)).unwrap().is_empty(), "message 1 carries no identity");
    initiator.feed(&frame(&attacker.write_message(&[]).unwrap())).unwrap();
    let identity = attacker.read_message(&frames(&initiator.take_output()).remove(0)).unwrap();
    let mut transport = attacker.into_transport().unwrap();
    let result = initiator.feed(&frame(&transport.encrypt(&confirmation(&public(&key))).unwrap()));
    (result, identity)
}

fn hybrid_chacha(config: LinkConfig) -> LinkConfig {
    LinkConfig { cipher: CipherSetting::ChaChaPoly, ..config }
}

/// `config` with `revocations` in force.
fn revoking(config: LinkConfig, revocations: RevocationSet) -> LinkConfig {
    config.set_revocations(revocations);
    config
}

#[test]
fn an_honest_link_verifies_both_peers_and_carries_data_both_ways_in_every_mode() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "hotel-1"), f.device("tablet-7", "hotel-1"));
    for mode in [LinkMode::Hybrid, LinkMode::Classical] {
        for cipher in [CipherSetting::Auto, CipherSetting::AesGcm, CipherSetting::ChaChaPoly] {
            let mut i = start(LinkConfig { mode, cipher, ..f.config(&tablet) }, Role::Initiator);
            let policy = PeerPolicy { expected_tenant: Some("hotel-1".into()), ..PeerPolicy::default() };
            let mut r = start(LinkConfig { mode, policy, ..f.config(&gw) }, Role::Responder);
            pump(&mut i, &mut r);
            assert!(i.is_established() && r.is_established(), "{mode:?} {cipher:?}");
            assert_eq!(i.peer().unwrap().device_id, "gw-1");
            assert_eq!(r.peer().unwrap().device_id, "tablet-7");
            assert_eq!(i.protocol(), r.protocol());
            assert_eq!(i.protocol().unwrap().is_hybrid(), mode == LinkMode::Hybrid);
            let (mut a, mut b) = (i.into_established().unwrap(), r.into_established().unwrap());
            assert!(a.rest.is_empty() && b.rest.is_empty());
            let (mut wire, mut got) = (Vec::new(), Vec::new());
            a.records.seal(b"ping", &mut wire).unwrap();
            b.records.open(&wire, &mut got).unwrap();
            wire.clear();
            b.records.seal(b"pong", &mut wire).unwrap();
            a.records.open(&wire, &mut got).unwrap();
            assert_eq!(got, b"pingpong");
        }
    }
}

#[test]
fn one_byte_at_a_time_and_records_right_behind_the_confirmation_both_arrive() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let mut i = start(f.config(&tablet), Role::Initiator);
    let mut r = start(f.config(&gw), Role::Responder);
    for byte in i.take_output() {
        r.feed(&[byte]).unwrap();
    }
    for byte in r.take_output() {
        i.feed(&[byte]).unwrap();
    }
    for byte in i.take_output() {
        r.feed(&[byte]).unwrap();
    }
    assert!(r.is_established() && !i.is_established());
    // The responder is in: its first record travels in the same chunk as its confirmation.
    let mut chunk = r.take_output();
    let mut server = r.into_established().unwrap();
    server.records.seal(b"early", &mut chunk).unwrap();
    i.feed(&chunk).unwrap();
    let mut client = i.into_established().unwrap();
    let mut got = Vec::new();
    client.records.open(&std::mem::take(&mut client.rest), &mut got).unwrap();
    assert_eq!(got, b"early");
}

#[test]
fn only_message_3_and_the_confirmation_carry_identities_padded_to_256_bytes() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    // The hand-made peers assert that messages 1 and 2 carry no payload at all.
    let mut r = start(f.config(&gw), Role::Responder);
    let (result, _) = raw_initiator_against(&mut r, |key| tablet.identity(key));
    result.unwrap();
    let mut i = start(LinkConfig { cipher: CipherSetting::ChaChaPoly, ..f.config(&tablet) }, Role::Initiator);
    let (result, identity) = raw_responder_against(&mut i, |key| [&[READY][..], &gw.identity(key)].concat());
    result.unwrap();
    assert_eq!(identity.len() % 256, 0);
    assert_eq!(i.peer().unwrap().device_id, "gw-1");
}

#[test]
fn no_certificate_byte_or_device_name_crosses_the_wire_in_the_clear_in_either_mode() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gateway-one", "hotel-1"), f.device("tablet-seven", "hotel-1"));
    for mode in [LinkMode::Hybrid, LinkMode::Classical] {
        let mut i = start(LinkConfig { mode, ..f.config(&tablet) }, Role::Initiator);
        let mut r = start(LinkConfig { mode, ..f.config(&gw) }, Role::Responder);
        let mut wire = Vec::new();
        for _ in 0..3 {
            let to_responder = i.take_output();
            r.feed(&to_responder).unwrap();
            let to_initiator = r.take_output();
            i.feed(&to_initiator).unwrap();
            wire.extend(to_responder);
            wire.extend(to_initiator);
        }
        assert!(i.is_established() && r.is_established());
        let contains = |needle: &[u8]| wire.windows(needle.len()).any(|window| window == needle);
        for secret in [&b"gateway-one"[..], b"tablet-seven", b"hotel-1", &gw.issued.der[..40], &tablet.issued.der[..40]]
        {
            assert!(!contains(secret), "{mode:?}: {:?} is on the wire", String::from_utf8_lossy(secret));
        }
        assert!(contains(i.protocol().unwrap().name().as_bytes()), "the proposal is the one clear field");
    }
}

#[test]
fn a_tampered_identity_is_refused_in_both_roles() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let flip = |mut payload: Vec<u8>, at: usize| {
        payload[at] ^= 1;
        payload
    };
    // A flipped signature byte (it sits right after the chain), and a flipped leaf byte.
    let signature_at = |device: &Device| 2 + device.chain.iter().map(|c| 2 + c.len()).sum::<usize>() + 10;
    for (at, expected) in [(signature_at(&tablet), LinkError::Identity), (60, LinkError::Peer(VerifyError::Chain))] {
        let mut r = start(f.config(&gw), Role::Responder);
        let (result, _) = raw_initiator_against(&mut r, |key| flip(tablet.identity(key), at));
        assert_eq!(result.unwrap_err(), expected);
        assert!(r.feed(&[]).is_err(), "the failure is final");
    }
    for (at, expected) in [(signature_at(&gw) + 1, LinkError::Identity), (61, LinkError::Peer(VerifyError::Chain))] {
        let mut i = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
        let (result, _) = raw_responder_against(&mut i, |key| flip([&[READY][..], &gw.identity(key)].concat(), at));
        assert_eq!(result.unwrap_err(), expected);
        assert!(i.peer().is_none());
    }
    // Not an identity at all, and a confirmation without READY.
    let mut r = start(f.config(&gw), Role::Responder);
    assert_eq!(raw_initiator_against(&mut r, |_| b"{\"v\":1}".to_vec()).0.unwrap_err(), LinkError::Identity);
    let mut i = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
    assert_eq!(
        raw_responder_against(&mut i, |key| [&[1u8][..], &gw.identity(key)].concat()).0.unwrap_err(),
        LinkError::Malformed
    );
}

#[test]
fn a_binding_signature_over_another_static_key_is_refused_in_both_roles() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let mut r = start(f.config(&gw), Role::Responder);
    let (result, _) = raw_initiator_against(&mut r, |_| tablet.identity(&public(&[7; 32])));
    assert_eq!(result.unwrap_err(), LinkError::Identity);
    let mut i = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
    let (result, _) = raw_responder_against(&mut i, |_| [&[READY][..], &gw.identity(&public(&[7; 32]))].concat());
    assert_eq!(result.unwrap_err(), LinkError::Identity);
    // A chain presented with another device's key (a stolen chain) is the same thing.
    let attacker = f.device("attacker", "t");
    // `LinkConfig::new` refuses the pair; the fields are public, so a caller can still build it.
    assert_eq!(
        LinkConfig::new(gw.chain.clone(), Box::new(attacker.signer()), f.trust.clone()).unwrap_err(),
        crate::pki::PkiError::KeyMismatch
    );
    assert_eq!(
        LinkConfig::new(Vec::new(), Box::new(gw.signer()), f.trust.clone()).unwrap_err(),
        crate::pki::PkiError::CertificateMalformed
    );
    let stolen = LinkConfig { signer: Box::new(attacker.signer()), ..f.config(&gw) };
    let mut i = start(stolen, Role::Initiator);
    let mut r = start(f.config(&gw), Role::Responder);
    pump(&mut i, &mut r);
    assert_eq!(r.error(), Some(&LinkError::Identity));
    assert_eq!(i.peer_closed(), LinkError::Refused);
}

#[test]
fn a_verdict_reused_for_a_known_chain_still_checks_each_links_binding() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let responder = Arc::new(f.config(&gw));
    for _ in 0..2 {
        let mut i = start(f.config(&tablet), Role::Initiator);
        let mut r = LinkHandshake::new(Arc::clone(&responder), Role::Responder, None).unwrap();
        pump(&mut i, &mut r);
        assert!(i.is_established() && r.is_established());
    }
    assert_eq!(responder.trust.verdicts_len(), 1, "the second link reused the first one's verdict");
    // The same chain again, now with a binding over another static key: refused all the same.
    let mut r = LinkHandshake::new(Arc::clone(&responder), Role::Responder, None).unwrap();
    let (result, _) = raw_initiator_against(&mut r, |_| tablet.identity(&public(&[7; 32])));
    assert_eq!(result.unwrap_err(), LinkError::Identity);
    // New revocations start the shared configuration without verdicts: the revoked peer is refused.
    responder.set_revocations(f.revoking(&tablet));
    assert_eq!(responder.trust.verdicts_len(), 0);
    let mut r = LinkHandshake::new(Arc::clone(&responder), Role::Responder, None).unwrap();
    let mut i = start(f.config(&tablet), Role::Initiator);
    pump(&mut i, &mut r);
    assert_eq!(r.error(), Some(&LinkError::Peer(VerifyError::Revoked)));
}

#[test]
fn a_handshake_under_way_when_its_peer_is_revoked_is_refused_in_both_roles() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let (initiator, responder) = (Arc::new(f.config(&tablet)), Arc::new(f.config(&gw)));
    // The responder: revoked between message 2 and message 3 (the attacker held its flight back).
    let mut i = LinkHandshake::new(Arc::clone(&initiator), Role::Initiator, None).unwrap();
    let mut r = LinkHandshake::new(Arc::clone(&responder), Role::Responder, None).unwrap();
    r.feed(&i.take_output()).unwrap();
    i.feed(&r.take_output()).unwrap();
    responder.set_revocations(f.revoking(&tablet));
    assert_eq!(r.feed(&i.take_output()).unwrap_err(), LinkError::Peer(VerifyError::Revoked));
    assert!(!r.wants_write(), "no confirmation for a revoked initiator");
    assert_eq!(i.peer_closed(), LinkError::Refused);
    // The initiator: revoked between message 3 and the confirmation.
    responder.set_revocations(RevocationSet::new());
    let mut i = LinkHandshake::new(Arc::clone(&initiator), Role::Initiator, None).unwrap();
    let mut r = LinkHandshake::new(Arc::clone(&responder), Role::Responder, None).unwrap();
    r.feed(&i.take_output()).unwrap();
    i.feed(&r.take_output()).unwrap();
    r.feed(&i.take_output()).unwrap();
    assert!(r.is_established());
    initiator.set_revocations(f.revoking(&gw));
    assert_eq!(i.feed(&r.take_output()).unwrap_err(), LinkError::Peer(VerifyError::Revoked));
    assert!(!i.is_established() && i.peer().is_none());
}

#[test]
fn a_replayed_message_3_or_confirmation_from_another_session_fails() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let config = |device: &Device| hybrid_chacha(f.config(device));
    // Record one whole honest session.
    let mut i = start(config(&tablet), Role::Initiator);
    let mut r = start(config(&gw), Role::Responder);
    let flight1 = i.take_output();
    r.feed(&flight1).unwrap();
    let flight2 = r.take_output();
    i.feed(&flight2).unwrap();
    let message3 = i.take_output();
    r.feed(&message3).unwrap();
    let confirmation = r.take_output();
    i.feed(&confirmation).unwrap();
    assert!(i.is_established());
    // Message 3 replayed into a new session of the responder, after a fresh message 1.
    let mut r2 = start(config(&gw), Role::Responder);
    let mut i2 = start(config(&tablet), Role::Initiator);
    r2.feed(&i2.take_output()).unwrap();
    assert_eq!(r2.feed(&message3).unwrap_err(), LinkError::Noise(NoiseError::Decrypt));
    // The whole recorded initiator side replayed: message 2 differs, so message 3 does not fit.
    let mut r3 = start(config(&gw), Role::Responder);
    r3.feed(&flight1).unwrap();
    assert_eq!(r3.feed(&message3).unwrap_err(), LinkError::Noise(NoiseError::Decrypt));
    // The confirmation replayed to a new initiator session.
    let mut i3 = start(config(&tablet), Role::Initiator);
    let mut r4 = start(config(&gw), Role::Responder);
    r4.feed(&i3.take_output()).unwrap();
    i3.feed(&r4.take_output()).unwrap();
    assert_eq!(i3.feed(&confirmation).unwrap_err(), LinkError::Noise(NoiseError::Decrypt));
}

#[test]
fn a_man_in_the_middle_relaying_identities_between_two_honest_peers_fails_in_both_directions() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    // Toward the responder: Mallory relays the initiator's identity as its own.
    let mut alice = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
    let (_, alice_identity) = raw_responder_against(&mut alice, |_| Vec::new());
    let mut bob = start(f.config(&gw), Role::Responder);
    let (result, _) = raw_initiator_against(&mut bob, |_| alice_identity.clone());
    assert_eq!(result.unwrap_err(), LinkError::Identity, "the binding names Alice's static key, not Mallory's");
    // Toward the initiator: Mallory, a valid device, gets Bob's confirmation and relays it.
    let mallory = f.device("mallory", "t");
    let mut bob = start(f.config(&gw), Role::Responder);
    let (result, mut to_bob) = raw_initiator_against(&mut bob, |key| mallory.identity(key));
    result.unwrap();
    let bob_confirmation = to_bob.decrypt(&frames(&bob.take_output()).remove(0));
    // (Mallory's transport decrypts what Bob sent it.)
    let _ = &mut to_bob;
    let mut alice = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
    let bob_confirmation = bob_confirmation.unwrap();
    let (result, _) = raw_responder_against(&mut alice, |_| bob_confirmation.clone());
    assert_eq!(result.unwrap_err(), LinkError::Identity);
}

#[test]
fn another_tenant_another_ca_and_revoked_peers_are_refused_in_both_roles() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "hotel-1"), f.device("tablet-7", "hotel-2"));
    let hotel_1 = PeerPolicy { expected_tenant: Some("hotel-1".into()), ..PeerPolicy::default() };
    let hotel_2 = PeerPolicy { expected_tenant: Some("hotel-2".into()), ..PeerPolicy::default() };
    let stranger_ca = Fixture::new();
    let stranger = stranger_ca.device("gw-1", "hotel-1");
    let cases = [
        // (initiator config, responder config, who refuses, its error)
        (
            f.config(&tablet),
            LinkConfig { policy: hotel_1, ..f.config(&gw) },
            Role::Responder,
            VerifyError::TenantMismatch,
        ),
        (
            LinkConfig { policy: hotel_2, ..f.config(&tablet) },
            f.config(&gw),
            Role::Initiator,
            VerifyError::TenantMismatch,
        ),
        (stranger_ca.config(&stranger), f.config(&gw), Role::Responder, VerifyError::Chain),
        (
            f.config(&gw),
            {
                let config = stranger_ca.config(&stranger);
                config.set_trust(f.trust.clone());
                config
            },
            Role::Initiator,
            VerifyError::Chain,
        ),
        (f.config(&tablet), revoking(f.config(&gw), f.revoking(&tablet)), Role::Responder, VerifyError::Revoked),
        (revoking(f.config(&tablet), f.revoking(&gw)), f.config(&gw), Role::Initiator, VerifyError::Revoked),
    ];
    for (n, (initiator, responder, refuser, expected)) in cases.into_iter().enumerate() {
        let mut i = start(initiator, Role::Initiator);
        let mut r = start(responder, Role::Responder);
        pump(&mut i, &mut r);
        let (refusing, other) = if refuser == Role::Responder { (&mut r, &mut i) } else { (&mut i, &mut r) };
        assert_eq!(refusing.error(), Some(&LinkError::Peer(expected)), "case {n}");
        assert!(!refusing.wants_write(), "case {n}: a refusal sends nothing");
        if refuser == Role::Responder {
            assert!(!other.is_established());
            assert_eq!(other.peer_closed(), LinkError::Refused, "case {n}");
        } else {
            // The responder was in already; the initiator closes and the link is over.
            assert!(other.is_established());
        }
    }
}

#[test]
fn proposals_outside_the_responders_setting_and_rewritten_proposals_fail() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let cases = [
        (CipherSetting::ChaChaPoly, LinkMode::Hybrid, CipherSetting::AesGcm, LinkMode::Hybrid),
        (CipherSetting::Auto, LinkMode::Classical, CipherSetting::Auto, LinkMode::Hybrid),
        (CipherSetting::Auto, LinkMode::Hybrid, CipherSetting::Auto, LinkMode::Classical),
    ];
    for (i_cipher, i_mode, r_cipher, r_mode) in cases {
        let mut i = start(LinkConfig { cipher: i_cipher, mode: i_mode, ..f.config(&tablet) }, Role::Initiator);
        let mut r = start(LinkConfig { cipher: r_cipher, mode: r_mode, ..f.config(&gw) }, Role::Responder);
        pump(&mut i, &mut r);
        assert_eq!(r.error(), Some(&LinkError::Protocol));
        assert_eq!(i.peer_closed(), LinkError::Refused);
    }
    // A man in the middle rewrites a proposal into another one an `Auto` responder accepts: the
    // name is in the handshake hash, so the first message authenticated under it fails. Hybrid:
    // message 1, which the psk3 pattern already encrypts (under a key from public values), at the
    // responder. Classical: message 2 (its encrypted static key), at the initiator.
    let cases = [
        (LinkMode::Hybrid, Protocol::XxHybridAesGcmSha256, Role::Responder),
        (LinkMode::Classical, Protocol::XxAesGcmSha256, Role::Initiator),
    ];
    for (mode, rewritten, failing) in cases {
        let mut i = start(LinkConfig { mode, ..hybrid_chacha(f.config(&tablet)) }, Role::Initiator);
        let mut r = start(LinkConfig { mode, ..f.config(&gw) }, Role::Responder);
        let mut flight = frames(&i.take_output());
        flight[0] = rewritten.name().as_bytes().to_vec();
        let responder = r.feed(&flight.iter().flat_map(|body| frame(body)).collect::<Vec<_>>());
        let decrypt = Err(LinkError::Noise(NoiseError::Decrypt));
        if failing == Role::Responder {
            assert_eq!(responder, decrypt, "{mode:?}: the responder refuses message 1");
            assert!(!r.wants_write(), "{mode:?}: no message 2");
        } else {
            assert_eq!(responder, Ok(()), "{mode:?}: message 1 carries nothing authenticated");
            assert_eq!(i.feed(&r.take_output()), decrypt, "{mode:?}: the initiator refuses message 2");
        }
    }
}

#[test]
fn oversized_frames_are_refused_on_their_header_and_garbage_fails_typed() {
    let f = Fixture::new();
    let gw = f.device("gw-1", "t");
    let responder = || start(f.config(&gw), Role::Responder);
    assert_eq!(responder().feed(&[0xff, 0xff]).unwrap_err(), LinkError::FrameTooLarge);
    assert_eq!(responder().feed(&[0, MAX_PROPOSAL_LEN as u8 + 1]).unwrap_err(), LinkError::FrameTooLarge);
    assert_eq!(responder().feed(&[0, 5, 1, 2, 3, 4, 5]).unwrap_err(), LinkError::Protocol);
    let mut r = responder();
    r.feed(&frame(HYBRID.name().as_bytes())).unwrap();
    let too_large = u16::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes();
    assert_eq!(r.feed(&too_large).unwrap_err(), LinkError::FrameTooLarge);
    let mut r = responder();
    r.feed(&frame(HYBRID.name().as_bytes())).unwrap();
    assert!(matches!(r.feed(&frame(&[7; 100])).unwrap_err(), LinkError::Noise(_)));
    // The initiator side: garbage in place of message 2 and of the confirmation.
    let tablet = f.device("tablet-7", "t");
    let mut i = start(f.config(&tablet), Role::Initiator);
    assert_eq!(i.feed(&[0xff, 0xff]).unwrap_err(), LinkError::FrameTooLarge);
    let mut i = start(f.config(&tablet), Role::Initiator);
    assert!(matches!(i.feed(&frame(&[7; 100])).unwrap_err(), LinkError::Noise(_)));
    let mut i = start(hybrid_chacha(f.config(&tablet)), Role::Initiator);
    assert_eq!(raw_responder_against(&mut i, |_| Vec::new()).0.unwrap_err(), LinkError::Malformed);
}

#[test]
fn a_stalled_peer_leaves_at_most_one_partial_frame_buffered_and_a_close_is_typed() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let mut r = start(f.config(&gw), Role::Responder);
    r.feed(&frame(HYBRID.name().as_bytes())).unwrap();
    let mut partial = u16::try_from(MAX_FRAME_LEN).unwrap().to_be_bytes().to_vec();
    partial.extend(vec![0u8; MAX_FRAME_LEN - 1]);
    r.feed(&partial).unwrap();
    assert!(r.input.len() <= HEADER_LEN + MAX_FRAME_LEN);
    assert!(!r.is_established() && r.error().is_none(), "a stall is the caller's timeout to end");
    assert_eq!(r.peer_closed(), LinkError::Malformed);
    assert_eq!(r.feed(&[0]).unwrap_err(), LinkError::Malformed);
    // An initiator whose responder closes at any point before confirming was refused.
    let mut i = start(f.config(&tablet), Role::Initiator);
    assert_eq!(i.peer_closed(), LinkError::Refused);
    assert!(matches!(start(f.config(&tablet), Role::Initiator).into_established(), Err(LinkError::State)));
}

#[test]
fn bad_configurations_are_refused_up_front() {
    let f = Fixture::new();
    let gw = f.device("gw-1", "t");
    let bad = |chain: Vec<Vec<u8>>| {
        LinkHandshake::new(Arc::new(LinkConfig { chain, ..f.config(&gw) }), Role::Initiator, None)
    };
    assert_eq!(bad(Vec::new()).unwrap_err(), LinkError::Config);
    assert_eq!(bad(vec![vec![1]; 4]).unwrap_err(), LinkError::Config);
    assert_eq!(bad(vec![vec![1; MAX_FRAME_LEN]]).unwrap_err(), LinkError::Config);
    assert_eq!(
        LinkHandshake::new(Arc::new(f.config(&gw)), Role::Initiator, Some(&[1; 31])).unwrap_err(),
        LinkError::Config
    );
    let fixed = LinkHandshake::new(Arc::new(f.config(&gw)), Role::Responder, Some(&[9; 32])).unwrap();
    assert_eq!(fixed.static_public_key(), public(&[9; 32]));
}

#[test]
fn seeded_garbage_never_panics_in_either_role() {
    let f = Fixture::new();
    let (gw, tablet) = (f.device("gw-1", "t"), f.device("tablet-7", "t"));
    let (gw_config, tablet_config) = (Arc::new(f.config(&gw)), Arc::new(f.config(&tablet)));
    let mut rng = crate::testing::Rng::new(0x2545_f491_4f6c_dd1d);
    for round in 0..600 {
        let len = rng.below(400);
        let mut bytes = rng.bytes(len);
        let (config, role) =
            if round % 2 == 0 { (&gw_config, Role::Responder) } else { (&tablet_config, Role::Initiator) };
        let mut link = LinkHandshake::new(Arc::clone(config), role, None).unwrap();
        if role == Role::Responder && round % 4 == 0 {
            // Get past the proposal so the garbage reaches Noise.
            let mut with_proposal = frame(HYBRID.name().as_bytes());
            with_proposal.append(&mut bytes);
            bytes = with_proposal;
        }
        for piece in bytes.chunks(rng.below(7) + 1) {
            if link.feed(piece).is_err() {
                break;
            }
        }
        assert!(!link.is_established());
    }
}
