//! Unit tests of the TLS module: the hybrid group on its own, the server-name encoding, and the
//! second resumption defence (reached by keeping the tickets across a revocation update).

use std::time::SystemTime;

use rustls::{Error, NamedGroup, PeerMisbehaved};

use super::verify::{expected_device, server_name};
use super::*;
use crate::pki::verdicts::is_revoked;
use crate::pki::{
    build_csr, CaParams, CertificateAuthority, CertificateRequest, DeviceCertRequest, PeerIdentity, PeerPolicy,
    RecordEntry, RevocationReason, RevocationSet, SoftwareSigner, TrustStore, VerifiedRecord, VerifyError,
};

const INVALID_KEY_SHARE: Error = Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare);

#[test]
fn hybrid_key_exchange_agrees_and_has_the_draft_layout() {
    let client = X25519MLKEM768.start().unwrap();
    assert_eq!(client.group(), NamedGroup::X25519MLKEM768);
    let client_share = client.pub_key().to_vec();
    assert_eq!(client_share.len(), X25519MLKEM768_CLIENT_SHARE_LEN);
    assert_eq!(client_share.len(), 1216);
    // The X25519 half, offered on its own as well.
    let (group, x25519) = client.hybrid_component().unwrap();
    assert_eq!((group, x25519), (NamedGroup::X25519, &client_share[1184..]));

    let server = X25519MLKEM768.start_and_complete(&client_share).unwrap();
    assert_eq!(server.group, NamedGroup::X25519MLKEM768);
    assert_eq!(server.pub_key.len(), X25519MLKEM768_SERVER_SHARE_LEN);
    assert_eq!(server.pub_key.len(), 1120);
    let secret = client.complete(&server.pub_key).unwrap();
    assert_eq!(secret.secret_bytes(), server.secret.secret_bytes());
    assert_eq!(secret.secret_bytes().len(), X25519MLKEM768_SECRET_LEN);

    // The X25519 half alone against plain X25519.
    let client = X25519MLKEM768.start().unwrap();
    let (_, x25519) = client.hybrid_component().unwrap();
    let classical = rustls::crypto::ring::kx_group::X25519.start_and_complete(x25519).unwrap();
    let secret = client.complete_hybrid_component(&classical.pub_key).unwrap();
    assert_eq!(secret.secret_bytes(), classical.secret.secret_bytes());
}

#[test]
fn a_tampered_ciphertext_gives_another_secret() {
    let client = X25519MLKEM768.start().unwrap();
    let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
    let mut tampered = server.pub_key.clone();
    tampered[100] ^= 1;
    let secret = client.complete(&tampered).unwrap();
    assert_ne!(secret.secret_bytes(), server.secret.secret_bytes());
}

#[test]
fn malformed_key_shares_are_refused() {
    let client_share = X25519MLKEM768.start().unwrap().pub_key().to_vec();
    for len in [0, 32, 1184, 1215, 1217, 4096] {
        let share = vec![7u8; len];
        assert_eq!(X25519MLKEM768.start_and_complete(&share).err(), Some(INVALID_KEY_SHARE), "{len}");
    }
    // An encapsulation key with coefficients at or above q (FIPS 203 §7.2).
    let mut bad_key = client_share.clone();
    bad_key[..1184].fill(0xff);
    assert_eq!(X25519MLKEM768.start_and_complete(&bad_key).err(), Some(INVALID_KEY_SHARE));
    // An X25519 share of small order (zero).
    let mut small_order = client_share.clone();
    small_order[1184..].fill(0);
    assert_eq!(X25519MLKEM768.start_and_complete(&small_order).err(), Some(INVALID_KEY_SHARE));

    let server_share = X25519MLKEM768.start_and_complete(&client_share).unwrap().pub_key;
    for len in [0, 32, 1088, 1119, 1121, 1216] {
        let client = X25519MLKEM768.start().unwrap();
        assert_eq!(client.complete(&vec![7u8; len]).err(), Some(INVALID_KEY_SHARE), "{len}");
    }
    let mut small_order = server_share.clone();
    small_order[1088..].fill(0);
    let client = X25519MLKEM768.start().unwrap();
    assert_eq!(client.complete(&small_order).err(), Some(INVALID_KEY_SHARE));
    let client = X25519MLKEM768.start().unwrap();
    assert_eq!(client.complete_hybrid_component(&[0u8; 31]).err(), Some(INVALID_KEY_SHARE));
}

#[test]
fn server_names_carry_the_expected_device() {
    use rustls::pki_types::ServerName;
    for device in ["d", "tablet-1", "A.b_c-9", &"x".repeat(64)] {
        let name = server_name(Some(device)).unwrap();
        let ServerName::DnsName(dns) = &name else { panic!("{name:?}") };
        assert!(dns.as_ref().ends_with(".dev.ztmesh.invalid"), "{dns:?}");
        assert_eq!(expected_device(&name), Some(Some(device.to_owned())));
    }
    let any = server_name(None).unwrap();
    assert_eq!(expected_device(&any), Some(None));
    let foreign = ServerName::try_from("example.com").unwrap();
    assert_eq!(expected_device(&foreign), None);
    assert!(server_name(Some("")).is_err() && server_name(Some(&"x".repeat(65))).is_err());
}

#[test]
fn revocation_of_an_identity_by_serial_or_key() {
    let fixture = Fixture::new();
    let identity = |serial: &str| PeerIdentity {
        device_id: "d".into(),
        tenant: "t".into(),
        roles: Vec::new(),
        serial: serial.into(),
        spki_sha256: [1; 32],
        issuer_key_id: fixture.site.key_id(),
        not_after: SystemTime::now(),
    };
    let revoked = fixture.revocations(&[(vec![0x0a, 0xbc], [9; 32])]);
    assert!(is_revoked(&identity("abc"), &revoked), "odd-length serial");
    assert!(!is_revoked(&identity("abd"), &revoked));
    let by_key = fixture.revocations(&[(vec![0x55], [1; 32])]);
    assert!(is_revoked(&identity("abd"), &by_key));
    // Only the issuer's own data counts: the same serial and key under another CA are not revoked.
    let foreign = PeerIdentity { issuer_key_id: fixture.root.key_id(), ..identity("abc") };
    assert!(!is_revoked(&foreign, &revoked) && !is_revoked(&foreign, &by_key));
}

/// A root, a site CA, and devices under it.
struct Fixture {
    root: CertificateAuthority,
    site: CertificateAuthority,
    trust: TrustStore,
}

/// A device's chain, key and certificate serial and key hash.
struct Device {
    chain: Vec<Vec<u8>>,
    pkcs8: zeroize::Zeroizing<Vec<u8>>,
    serial: Vec<u8>,
    spki_sha256: [u8; 32],
}

impl Fixture {
    fn new() -> Self {
        let root = CertificateAuthority::create_root(&CaParams::root("unit root", "ztmesh test")).unwrap();
        let root = root.authority().unwrap();
        let site = root.create_site_ca(&CaParams::site("unit site", "ztmesh test")).unwrap().authority().unwrap();
        let trust = TrustStore::from_der(&[root.certificate_der()]).unwrap();
        Self { root, site, trust }
    }

    fn device(&self, device_id: &str) -> Device {
        let signer = SoftwareSigner::generate().unwrap();
        let csr = build_csr(&signer, device_id, "t").unwrap();
        let request = CertificateRequest::from_der(&csr.der).unwrap();
        let issued = self.site.issue(&request, &DeviceCertRequest::new(device_id, "t")).unwrap();
        let serial_hex = if issued.serial.len() % 2 == 1 { format!("0{}", issued.serial) } else { issued.serial };
        Device {
            chain: vec![issued.der, self.site.certificate_der().to_vec()],
            pkcs8: signer.to_pkcs8(),
            serial: hex::decode(serial_hex).unwrap(),
            spki_sha256: issued.spki_sha256,
        }
    }

    fn revocations(&self, entries: &[(Vec<u8>, [u8; 32])]) -> RevocationSet {
        let now = SystemTime::now();
        let entries: Vec<RecordEntry> = entries
            .iter()
            .map(|(serial, spki_sha256)| RecordEntry {
                serial: serial.clone(),
                spki_sha256: *spki_sha256,
                reason: RevocationReason::KeyCompromise,
                revoked_at: now,
            })
            .collect();
        let record = self.site.sign_revocation_record(1, now, &entries).unwrap();
        let issuer = self.trust.issuer(&[self.site.certificate_der(), self.root.certificate_der()], now).unwrap();
        let mut set = RevocationSet::new();
        set.add_record(&VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
        set
    }

    fn server(&self, device: &Device) -> TlsServerContext {
        let signer = Box::new(SoftwareSigner::from_pkcs8(&device.pkcs8).unwrap());
        TlsServerContext::new(ServerSettings::new(device.chain.clone(), signer, self.trust.clone())).unwrap()
    }

    fn client(&self, device: &Device) -> TlsClientContext {
        let signer = Box::new(SoftwareSigner::from_pkcs8(&device.pkcs8).unwrap());
        let mut settings = ClientSettings::new(device.chain.clone(), signer, self.trust.clone());
        settings.policy = PeerPolicy { expected_tenant: Some("t".into()), ..PeerPolicy::default() };
        TlsClientContext::new(settings).unwrap()
    }
}

/// Connects to the device "server" and pumps in memory; returns both sessions.
fn handshake(client: &TlsClientContext, server: &TlsServerContext) -> (TlsSession, TlsSession) {
    handshake_to("server", client, server)
}

/// Connects to `device` and pumps in memory until both sides fall silent; returns both sessions.
fn handshake_to(device: &str, client: &TlsClientContext, server: &TlsServerContext) -> (TlsSession, TlsSession) {
    let mut c = client.connect_to(device).unwrap();
    let mut s = server.accept().unwrap();
    for _ in 0..16 {
        let (to_server, to_client) = (c.take_outgoing(), s.take_outgoing());
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
        if s.error().is_none() {
            let _ = s.read_tls(&to_server);
        }
        if c.error().is_none() {
            let _ = c.read_tls(&to_client);
        }
    }
    (c, s)
}

#[test]
fn a_resumed_session_is_checked_against_current_revocations() {
    let fixture = Fixture::new();
    let (server_device, client_device) = (fixture.device("server"), fixture.device("client"));
    let (server, client) = (fixture.server(&server_device), fixture.client(&client_device));
    let (c, s) = handshake(&client, &server);
    assert!(c.peer().is_some() && s.peer().is_some());
    let (c, s) = handshake(&client, &server);
    assert!(c.is_resumed() && s.is_resumed() && s.peer().is_some());

    // The server keeps its ticket key: rustls resumes, and the session refuses the stored chain.
    let revoked = fixture.revocations(&[(client_device.serial.clone(), client_device.spki_sha256)]);
    server.set_revocations_keeping_tickets_for_testing_only(revoked);
    let (mut c, mut s) = handshake(&client, &server);
    assert!(s.is_resumed(), "rustls itself resumed");
    assert_eq!(s.error(), Some(&TlsError::Peer(VerifyError::Revoked)));
    assert!(s.peer().is_none());
    assert_eq!(s.write_plaintext(b"x"), Err(TlsError::Peer(VerifyError::Revoked)));
    // Whatever the client sends is never read; it is told with close_notify.
    c.write_plaintext(b"hello").unwrap();
    assert_eq!(s.read_tls(&c.take_outgoing()), Err(TlsError::Peer(VerifyError::Revoked)));
    let mut nothing = Vec::new();
    assert_eq!(s.read_plaintext(&mut nothing), 0);
    assert!(c.peer_closed());

    // The same on the client side, with the server revoked.
    let (server, client) = (fixture.server(&server_device), fixture.client(&client_device));
    let _ = handshake(&client, &server);
    let revoked = fixture.revocations(&[(server_device.serial.clone(), server_device.spki_sha256)]);
    client.set_revocations_keeping_tickets_for_testing_only(revoked);
    let (c, _) = handshake(&client, &server);
    assert!(c.is_resumed());
    assert_eq!(c.error(), Some(&TlsError::Peer(VerifyError::Revoked)));
    assert!(c.peer().is_none());
}

#[test]
fn verdicts_are_reused_only_under_their_snapshot_and_within_validity() {
    use super::verify::PeerVerifier;
    use crate::pki::RequiredUsage;
    let fixture = Fixture::new();
    let device = fixture.device("client");
    let chain: Vec<&[u8]> = device.chain.iter().map(Vec::as_slice).collect();
    let verifier = PeerVerifier::new(
        fixture.trust.clone(),
        RevocationSet::new(),
        PeerPolicy::default(),
        RequiredUsage::ClientAuth,
    );
    let now = SystemTime::now();
    let identity = verifier.identity(&chain, None, now).unwrap();
    assert_eq!(verifier.identity(&chain, None, now).unwrap(), identity);
    // Another expected device is another verdict.
    assert_eq!(verifier.identity(&chain, Some("other"), now), Err(VerifyError::DeviceMismatch));
    // Past the leaf's validity the verdict is dropped and verify_peer decides again.
    let later = identity.not_after + std::time::Duration::from_secs(3600);
    assert_eq!(verifier.identity(&chain, None, later), Err(VerifyError::Expired));
    assert_eq!(verifier.identity(&chain, None, now).unwrap(), identity);
    // A revocation update leaves no verdict behind.
    verifier.set_revocations(fixture.revocations(&[(device.serial.clone(), device.spki_sha256)]));
    assert_eq!(verifier.identity(&chain, None, now), Err(VerifyError::Revoked));
}

/// A gateway certificate of `fixture`'s site CA (device `device`, tenant "t", `roles`), its chain
/// ending in the root, and its server context accepting anonymous clients.
fn gateway(fixture: &Fixture, device: &str, roles: &[&str]) -> TlsServerContext {
    gateway_with(fixture, device, roles, true)
}

fn gateway_with(fixture: &Fixture, device: &str, roles: &[&str], anonymous_clients: bool) -> TlsServerContext {
    let signer = SoftwareSigner::generate().unwrap();
    let csr = build_csr(&signer, device, "t").unwrap();
    let request = CertificateRequest::from_der(&csr.der).unwrap();
    let mut cert_request = DeviceCertRequest::new(device, "t");
    cert_request.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    let issued = fixture.site.issue(&request, &cert_request).unwrap();
    let chain = vec![issued.der, fixture.site.certificate_der().to_vec(), fixture.root.certificate_der().to_vec()];
    let mut settings = ServerSettings::new(chain, Box::new(signer), fixture.trust.clone());
    settings.anonymous_clients = anonymous_clients;
    TlsServerContext::new(settings).unwrap()
}

/// An anonymous client pinning `fixture`'s root, expecting the gateway `ca` of tenant "t" with role `ca`.
fn pinned_client(fixture: &Fixture) -> TlsClientContext {
    let root_key = crate::pki::inspect_certificate(fixture.root.certificate_der()).unwrap().spki_sha256;
    let mut settings = AnonymousClientSettings::new(root_key);
    settings.policy = PeerPolicy { expected_tenant: Some("t".into()), ..PeerPolicy::default() };
    settings.required_role = Some("ca".into());
    TlsClientContext::anonymous(settings).unwrap()
}

#[test]
fn an_anonymous_client_reaches_only_the_gateway_of_its_pinned_root() {
    let fixture = Fixture::new();
    let client = pinned_client(&fixture);

    // The real gateway: the client verifies it, the server has no peer but is established.
    let (mut c, mut s) = handshake_to("ca", &client, &gateway(&fixture, "ca", &["ca"]));
    assert_eq!(c.peer().map(|p| (p.device_id.as_str(), p.roles.clone())), Some(("ca", vec!["ca".to_owned()])));
    assert!(s.is_established() && s.peer().is_none() && !s.is_handshaking());
    c.write_plaintext(b"csr").unwrap();
    s.read_tls(&c.take_outgoing()).unwrap();
    let mut got = Vec::new();
    s.read_plaintext(&mut got);
    assert_eq!(got, b"csr");

    // A MITM with its own root (chain and all), a device of the real CA without the role, and
    // the real CA's certificate for another device: refused before any plaintext leaves.
    let foreign = Fixture::new();
    let cases = [
        ("ca", gateway(&foreign, "ca", &["ca"]), VerifyError::Chain),
        ("ca", gateway(&fixture, "ca", &[]), VerifyError::KeyUsage),
        ("ca", gateway(&fixture, "tablet-9", &["ca"]), VerifyError::DeviceMismatch),
    ];
    for (device, server, error) in cases {
        let (mut c, mut s) = handshake_to(device, &client, &server);
        assert_eq!(c.error(), Some(&TlsError::Peer(error)));
        assert!(c.peer().is_none() && !c.is_established());
        assert_eq!(c.write_plaintext(b"token proof"), Err(TlsError::Peer(error)));
        let _ = s.read_tls(&c.take_outgoing());
        let mut nothing = Vec::new();
        assert_eq!(s.read_plaintext(&mut nothing), 0);
    }

    // The pinned client decides under its revocations like any other: a revoked CA API
    // certificate is refused.
    let server = gateway(&fixture, "ca", &["ca"]);
    let (c, _) = handshake_to("ca", &client, &server);
    let serial = crate::ids::parse_serial(&c.peer().unwrap().serial).unwrap();
    client.set_revocations(fixture.revocations(&[(serial, [0; 32])]));
    let (c, _) = handshake_to("ca", &client, &server);
    assert_eq!(c.error(), Some(&TlsError::Peer(VerifyError::Revoked)));

    // A server that does not accept anonymous clients refuses them.
    let (_, s) = handshake_to("ca", &client, &gateway_with(&fixture, "ca", &["ca"], false));
    assert_eq!(s.error(), Some(&TlsError::NoCertificate));
    assert!(!s.is_established());
}
