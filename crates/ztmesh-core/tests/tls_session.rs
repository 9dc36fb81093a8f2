//! ztmesh TLS client ↔ ztmesh TLS server in memory: mutual authentication, key exchange policies,
//! every way a peer is refused, resumption and revocation, and bad input.

mod tls_common;

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tls_common::{client_settings, pump, server_settings, Pair, Pki, DAY, TENANT};
use ztmesh_core::pki::{
    CaParams, CertSigner, CertificateAuthority, DeviceCertRequest, PeerPolicy, PkiError, RevocationSet, SoftwareSigner,
    VerifyError,
};
use ztmesh_core::testing::Rng;
use ztmesh_core::tls::{
    PqPolicy, TlsClientContext, TlsError, TlsServerContext, TlsSession, ALPN_ZTMESH_1, GROUP_X25519,
    GROUP_X25519MLKEM768, X25519MLKEM768,
};
use ztmesh_core::ErrorCode;

const CERTIFICATE_EXPIRED: u8 = 45;
const CERTIFICATE_REVOKED: u8 = 44;
const CERTIFICATE_UNKNOWN: u8 = 46;
const UNKNOWN_CA: u8 = 48;
const HANDSHAKE_FAILURE: u8 = 40;
const NO_APPLICATION_PROTOCOL: u8 = 120;

/// Sends `data` from one session and returns what the other reads.
fn transfer(from: &mut TlsSession, to: &mut TlsSession, data: &[u8]) -> Vec<u8> {
    from.write_plaintext(data).unwrap();
    to.read_tls(&from.take_outgoing()).unwrap();
    let mut out = Vec::new();
    to.read_plaintext(&mut out);
    out
}

#[test]
fn mutual_handshake_is_post_quantum_and_names_both_peers() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let mut client = pair.client.connect_to("gateway-1").unwrap();
    let mut server = pair.server.accept().unwrap();
    // Written before the handshake: held back until the server is established.
    client.write_plaintext(b"early ").unwrap();
    assert!(client.is_handshaking() && server.is_handshaking());
    let outcome = pump(&mut client, &mut server);
    assert!(outcome.client.is_ok() && outcome.server.is_ok(), "{outcome:?}");

    let server_peer = server.peer().unwrap();
    assert_eq!((server_peer.device_id.as_str(), server_peer.tenant.as_str()), ("tablet-1", TENANT));
    assert_eq!(server_peer.serial, pair.client_device.issued.serial);
    let client_peer = client.peer().unwrap();
    assert_eq!((client_peer.device_id.as_str(), client_peer.tenant.as_str()), ("gateway-1", TENANT));
    assert_eq!(client_peer.spki_sha256, pair.server_device.issued.spki_sha256);
    for session in [&client, &server] {
        assert_eq!(session.kx_group(), Some(GROUP_X25519MLKEM768));
        assert!(session.is_post_quantum() && !session.is_resumed() && !session.is_handshaking());
        assert_eq!(session.alpn_protocol(), Some(ALPN_ZTMESH_1));
        assert!(session.error().is_none());
    }
    assert!(server.is_server() && !client.is_server());

    let mut received = Vec::new();
    server.read_plaintext(&mut received);
    assert_eq!(received, b"early ");
    assert_eq!(transfer(&mut client, &mut server, b"ping"), b"ping");
    assert_eq!(transfer(&mut server, &mut client, b"pong"), b"pong");

    // A megabyte in 16 KiB writes arrives intact.
    let bulk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for chunk in bulk.chunks(16 * 1024) {
        client.write_plaintext(chunk).unwrap();
    }
    server.read_tls(&client.take_outgoing()).unwrap();
    let mut received = Vec::new();
    assert_eq!(server.read_plaintext(&mut received), bulk.len());
    assert_eq!(received, bulk);

    client.send_close_notify();
    assert_eq!(client.write_plaintext(b"x"), Err(TlsError::Closed));
    server.read_tls(&client.take_outgoing()).unwrap();
    assert!(server.peer_closed());
}

#[test]
fn key_exchange_follows_the_policies() {
    let cases = [
        (PqPolicy::Prefer, PqPolicy::Off, GROUP_X25519),
        (PqPolicy::Off, PqPolicy::Prefer, GROUP_X25519),
        (PqPolicy::Require, PqPolicy::Prefer, GROUP_X25519MLKEM768),
        (PqPolicy::Prefer, PqPolicy::Require, GROUP_X25519MLKEM768),
        (PqPolicy::Require, PqPolicy::Require, GROUP_X25519MLKEM768),
        (PqPolicy::Off, PqPolicy::Off, GROUP_X25519),
    ];
    for (client_pq, server_pq, group) in cases {
        let pair = Pair::new(server_pq, client_pq);
        let mut client = pair.client.connect_to("gateway-1").unwrap();
        let mut server = pair.server.accept().unwrap();
        // Two flights from the client (ClientHello, then Certificate…Finished): no HelloRetryRequest,
        // the client's hello always carries a share the server takes.
        let mut client_flights = 0;
        loop {
            let to_server = client.take_outgoing();
            if !to_server.is_empty() {
                client_flights += 1;
                server.read_tls(&to_server).unwrap();
            }
            let to_client = server.take_outgoing();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            client.read_tls(&to_client).unwrap();
        }
        assert_eq!(client_flights, 2, "{client_pq:?}/{server_pq:?}");
        assert_eq!(client.kx_group(), Some(group), "{client_pq:?}/{server_pq:?}");
        assert_eq!(server.kx_group(), Some(group));
        assert_eq!(server.is_post_quantum(), group == GROUP_X25519MLKEM768);
    }
}

#[test]
fn required_post_quantum_against_classical_only_fails_typed() {
    // The server requires it and the client cannot: the server says so.
    let pair = Pair::new(PqPolicy::Require, PqPolicy::Off);
    let (client, server, outcome) = pair.connect();
    assert_eq!(outcome.server, Err(TlsError::NoPostQuantum));
    assert_eq!(server.error().map(ErrorCode::code), Some("ERR_TLS_NO_PQ"));
    assert_eq!(outcome.client, Err(TlsError::Alert { description: HANDSHAKE_FAILURE }));
    assert!(client.peer().is_none() && server.peer().is_none());

    // The client requires it and the server cannot.
    let pair = Pair::new(PqPolicy::Off, PqPolicy::Require);
    let (_, _, outcome) = pair.connect();
    assert_eq!(outcome.server, Err(TlsError::Incompatible));
    assert_eq!(outcome.client, Err(TlsError::Alert { description: HANDSHAKE_FAILURE }));
    assert_eq!(outcome.client.unwrap_err().code(), "ERR_TLS_ALERT");
}

/// Handshakes a client presenting `client_device` with `pair`'s server (the client trusts the
/// server, so only the server refuses); returns the server's and the client's errors.
fn refused_client(pair: &Pair, client_device: &tls_common::Device) -> (TlsError, TlsError) {
    let client_ctx = TlsClientContext::new(client_settings(&pair.pki, client_device, PqPolicy::Prefer)).unwrap();
    let mut client = client_ctx.connect().unwrap();
    let mut server = pair.server.accept().unwrap();
    let outcome = pump(&mut client, &mut server);
    assert!(server.peer().is_none());
    (outcome.server.unwrap_err(), outcome.client.unwrap_err())
}

#[test]
fn bad_client_certificates_are_refused_with_their_pki_code() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let pki = &pair.pki;

    let wrong_tenant = pki.device("tablet-2", "property-2");
    let (server, client) = refused_client(&pair, &wrong_tenant);
    assert_eq!(server, TlsError::Peer(VerifyError::TenantMismatch));
    assert_eq!(server.code(), "ERR_TENANT_MISMATCH");
    assert_eq!(client, TlsError::Alert { description: CERTIFICATE_UNKNOWN });

    let mut request = DeviceCertRequest::new("tablet-3", TENANT);
    request.now = SystemTime::now() - 10 * DAY;
    request.validity = DAY;
    let expired = pki.device_with(request);
    let (server, client) = refused_client(&pair, &expired);
    assert_eq!(server.code(), "ERR_CERT_EXPIRED");
    assert_eq!(client, TlsError::Alert { description: CERTIFICATE_EXPIRED });

    let revoked = pki.device("tablet-4", TENANT);
    pair.server.set_revocations(pki.revoke(&[&revoked]));
    let (server, client) = refused_client(&pair, &revoked);
    assert_eq!(server, TlsError::Peer(VerifyError::Revoked));
    assert_eq!(server.code(), "ERR_CERT_REVOKED");
    assert_eq!(client, TlsError::Alert { description: CERTIFICATE_REVOKED });

    // A device certificate from another PKI, and a self-signed certificate.
    let other = Pki::new("other");
    let (server, client) = refused_client(&pair, &other.device("tablet-5", TENANT));
    assert_eq!((server.code(), client), ("ERR_CHAIN", TlsError::Alert { description: UNKNOWN_CA }));
    let (server, _) = refused_client(&pair, &self_signed_device());
    assert_eq!(server, TlsError::Peer(VerifyError::Chain));

    // The good client still gets in.
    let (_, server, outcome) = pair.connect();
    assert!(outcome.server.is_ok() && server.peer().is_some(), "{outcome:?}");
}

/// A "device" whose certificate is its own self-signed root.
fn self_signed_device() -> tls_common::Device {
    let material = CertificateAuthority::create_root(&CaParams::root("tablet-6", "ztmesh test")).unwrap();
    let key_pem = material.private_key_pem();
    let signer = SoftwareSigner::from_pkcs8_pem(&key_pem).unwrap();
    let der = material.certificate_der.clone();
    let issued = ztmesh_core::pki::IssuedCertificate {
        der: der.clone(),
        pem: material.certificate_pem.clone(),
        serial: String::new(),
        spki_sha256: [0; 32],
        not_before: SystemTime::now(),
        not_after: SystemTime::now(),
    };
    tls_common::Device { pkcs8: signer.to_pkcs8(), issued, chain: vec![der] }
}

#[test]
fn a_server_with_the_wrong_device_id_is_refused_by_the_client() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let mut client = pair.client.connect_to("gateway-2").unwrap();
    let mut server = pair.server.accept().unwrap();
    let outcome = pump(&mut client, &mut server);
    assert_eq!(outcome.client, Err(TlsError::Peer(VerifyError::DeviceMismatch)));
    assert_eq!(client.error().map(ErrorCode::code), Some("ERR_DEVICE_MISMATCH"));
    assert_eq!(outcome.server, Err(TlsError::Alert { description: CERTIFICATE_UNKNOWN }));

    // Another tenant's server is refused by the tenant policy.
    let other_tenant = pair.pki.device("gateway-1", "property-2");
    let server_ctx = TlsServerContext::new(server_settings(&pair.pki, &other_tenant, PqPolicy::Prefer)).unwrap();
    let mut client = pair.client.connect().unwrap();
    let mut server = server_ctx.accept().unwrap();
    let outcome = pump(&mut client, &mut server);
    assert_eq!(outcome.client, Err(TlsError::Peer(VerifyError::TenantMismatch)));

    // A device id the server name cannot carry is a settings error.
    assert!(matches!(pair.client.connect_to(""), Err(TlsError::Config(_))));
    assert_eq!(pair.client.connect_to(&"d".repeat(65)).unwrap_err().code(), "ERR_TLS_CONFIG");
}

#[test]
fn mismatched_alpn_is_refused() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let mut settings = client_settings(&pair.pki, &pair.client_device, PqPolicy::Prefer);
    settings.alpn = vec![b"other/1".to_vec()];
    let client_ctx = TlsClientContext::new(settings).unwrap();
    let mut client = client_ctx.connect().unwrap();
    let mut server = pair.server.accept().unwrap();
    let outcome = pump(&mut client, &mut server);
    assert_eq!(outcome.server, Err(TlsError::NoApplicationProtocol));
    assert_eq!(outcome.server.unwrap_err().code(), "ERR_TLS_ALPN");
    assert_eq!(outcome.client, Err(TlsError::Alert { description: NO_APPLICATION_PROTOCOL }));
}

/// A rustls client that accepts any server certificate: stands in for a foreign client.
#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// Handshakes a plain rustls client presenting `device` (or no certificate), offering `alpn`,
/// with a ztmesh server.
fn foreign_client(
    server_ctx: &TlsServerContext,
    device: Option<&tls_common::Device>,
    alpn: Vec<Vec<u8>>,
) -> (TlsSession, Option<rustls::Error>) {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![X25519MLKEM768];
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything));
    let mut config = match device {
        None => builder.with_no_client_auth(),
        Some(device) => {
            let chain = device.chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
            let key = PrivatePkcs8KeyDer::from(device.pkcs8.to_vec());
            builder.with_client_auth_cert(chain, key.into()).unwrap()
        }
    };
    config.alpn_protocols = alpn;
    let mut client =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("gateway-1").unwrap()).unwrap();
    let mut server = server_ctx.accept().unwrap();
    let mut client_error = None;
    for _ in 0..16 {
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        let to_client = server.take_outgoing();
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
        if !to_server.is_empty() && server.error().is_none() {
            let _ = server.read_tls(&to_server);
        }
        if !to_client.is_empty() && client_error.is_none() {
            client.read_tls(&mut to_client.as_slice()).unwrap();
            client_error = client.process_new_packets().err();
        }
    }
    (server, client_error)
}

#[test]
fn a_client_without_certificate_or_alpn_is_refused() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let (server, client_error) = foreign_client(&pair.server, None, vec![ALPN_ZTMESH_1.to_vec()]);
    assert_eq!(server.error(), Some(&TlsError::NoCertificate));
    assert_eq!(server.error().map(ErrorCode::code), Some("ERR_TLS_NO_CERT"));
    assert!(client_error.is_some());

    // The same client with its certificate gets in.
    let (server, client_error) = foreign_client(&pair.server, Some(&pair.client_device), vec![ALPN_ZTMESH_1.to_vec()]);
    assert!(client_error.is_none() && server.peer().is_some(), "{:?}", server.error());

    // Offering no ALPN at all: rustls completes the handshake, the session refuses it.
    let (server, _) = foreign_client(&pair.server, Some(&pair.client_device), Vec::new());
    assert_eq!(server.error(), Some(&TlsError::NoApplicationProtocol));
    assert!(server.peer().is_none());
    let mut settings = client_settings(&pair.pki, &pair.client_device, PqPolicy::Prefer);
    settings.alpn = Vec::new();
    assert!(matches!(TlsClientContext::new(settings), Err(TlsError::Config(_))));
}

#[test]
fn resumption_works_until_the_client_is_revoked() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let (_, _, outcome) = pair.connect();
    assert!(outcome.client.is_ok() && outcome.server.is_ok());

    // Resumed, and both peers are still named (re-verified from the stored chains).
    let (client, server, outcome) = pair.connect();
    assert!(outcome.client.is_ok() && outcome.server.is_ok(), "{outcome:?}");
    assert!(client.is_resumed() && server.is_resumed());
    assert_eq!(server.peer().map(|p| p.device_id.as_str()), Some("tablet-1"));
    assert_eq!(client.peer().map(|p| p.device_id.as_str()), Some("gateway-1"));
    assert_eq!(server.kx_group(), Some(GROUP_X25519MLKEM768));

    // Revoke the client on the server only: the client still offers its ticket, the server can no
    // longer open it, and the full handshake refuses the certificate.
    let revocations = pair.pki.revoke(&[&pair.client_device]);
    assert!(server.is_peer_revoked(&revocations) && !client.is_peer_revoked(&revocations));
    pair.server.set_revocations(revocations);
    let (client, server, outcome) = pair.connect();
    assert_eq!(outcome.server, Err(TlsError::Peer(VerifyError::Revoked)));
    assert_eq!(server.error().map(ErrorCode::code), Some("ERR_CERT_REVOKED"));
    assert!(!server.is_resumed() && server.peer().is_none());
    assert_eq!(outcome.client, Err(TlsError::Alert { description: CERTIFICATE_REVOKED }));
    assert!(client.peer().is_none());
}

#[test]
fn a_client_trust_update_drops_its_tickets() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let _ = pair.connect();
    pair.client.set_revocations(pair.pki.revoke(&[]));
    let (client, server, outcome) = pair.connect();
    assert!(outcome.client.is_ok() && outcome.server.is_ok());
    assert!(!client.is_resumed() && !server.is_resumed());

    // The server is revoked on the client: refused, resumption or not.
    let _ = pair.connect();
    pair.client.set_revocations(pair.pki.revoke(&[&pair.server_device]));
    let (_, _, outcome) = pair.connect();
    assert_eq!(outcome.client, Err(TlsError::Peer(VerifyError::Revoked)));

    // A trust store without our root: nobody is trusted any more.
    pair.client.set_revocations(RevocationSet::new());
    let other = Pki::new("other");
    pair.server.set_trust(other.trust.clone());
    let (_, _, outcome) = pair.connect();
    assert_eq!(outcome.server, Err(TlsError::Peer(VerifyError::Chain)));
}

#[test]
fn settings_are_checked() {
    let pki = Pki::new("settings");
    let device = pki.device("gateway-1", TENANT);
    let other = pki.device("gateway-2", TENANT);
    let mut settings = server_settings(&pki, &device, PqPolicy::Prefer);
    settings.signer = other.signer();
    assert_eq!(TlsServerContext::new(settings).unwrap_err().code(), "ERR_TLS_CONFIG");
    let mut settings = server_settings(&pki, &device, PqPolicy::Prefer);
    settings.chain_der.clear();
    assert!(matches!(TlsServerContext::new(settings), Err(TlsError::Config(_))));
    let mut settings = server_settings(&pki, &device, PqPolicy::Prefer);
    settings.chain_der = vec![b"junk".to_vec()];
    assert!(matches!(TlsServerContext::new(settings), Err(TlsError::Config(_))));
    let mut settings = client_settings(&pki, &device, PqPolicy::Prefer);
    settings.policy = PeerPolicy { expected_device: Some(String::new()), ..PeerPolicy::default() };
    assert!(matches!(TlsClientContext::new(settings), Err(TlsError::Config(_))));
}

/// A signer whose key is right but which cannot sign (a TPM gone away).
struct BrokenSigner(SoftwareSigner);

impl CertSigner for BrokenSigner {
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }

    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, PkiError> {
        Err(PkiError::Signer)
    }
}

#[test]
fn a_failing_signer_fails_the_handshake_typed() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);
    let mut settings = server_settings(&pair.pki, &pair.server_device, PqPolicy::Prefer);
    settings.signer = Box::new(BrokenSigner(SoftwareSigner::from_pkcs8(&pair.server_device.pkcs8).unwrap()));
    let server_ctx = TlsServerContext::new(settings).unwrap();
    let mut client = pair.client.connect().unwrap();
    let mut server = server_ctx.accept().unwrap();
    let outcome = pump(&mut client, &mut server);
    assert_eq!(outcome.server, Err(TlsError::Signer));
    assert_eq!(outcome.server.unwrap_err().code(), "ERR_SIGNER");
    assert!(client.peer().is_none() && server.peer().is_none());
}

#[test]
fn bad_input_is_a_typed_error_never_a_panic() {
    let pair = Pair::new(PqPolicy::Prefer, PqPolicy::Prefer);

    // Garbage, and an oversized record (length 0x4801 > 2^14 + 2048).
    for input in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x48, 0x01][..], &[0xff; 64][..]] {
        let mut server = pair.server.accept().unwrap();
        assert_eq!(server.read_tls(input), Err(TlsError::Protocol), "{input:?}");
        assert_eq!(server.read_tls(b"more"), Err(TlsError::Protocol));
        assert_eq!(server.write_plaintext(b"x"), Err(TlsError::Protocol));
        assert!(!server.take_outgoing().is_empty(), "an alert is queued");
        let mut client = pair.client.connect().unwrap();
        assert_eq!(client.read_tls(input).unwrap_err().code(), "ERR_TLS_PROTOCOL");
    }

    // A truncated ClientHello is not an error yet: the session waits for the rest.
    let mut client = pair.client.connect().unwrap();
    let hello = client.take_outgoing();
    assert!(hello.len() > 1216, "the hybrid key share is in the ClientHello");
    let mut server = pair.server.accept().unwrap();
    server.read_tls(&hello[..hello.len() / 2]).unwrap();
    assert!(server.is_handshaking() && server.take_outgoing().is_empty());
    server.read_tls(&hello[hello.len() / 2..]).unwrap();
    assert!(!server.take_outgoing().is_empty());

    // Mutated ClientHellos and server flights: errors are typed, nothing panics.
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let server_flight = {
        let mut server = pair.server.accept().unwrap();
        server.read_tls(&hello).unwrap();
        server.take_outgoing()
    };
    for round in 0..300 {
        let (original, to_server) = if round % 2 == 0 { (&hello, true) } else { (&server_flight, false) };
        let mut input = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len());
            input[at] = rng.byte();
        }
        if rng.below(4) == 0 {
            input.truncate(rng.below(input.len()));
        }
        let result = if to_server {
            pair.server.accept().unwrap().read_tls(&input)
        } else {
            let mut client = pair.client.connect().unwrap();
            let _ = client.take_outgoing();
            client.read_tls(&input)
        };
        if let Err(e) = result {
            assert!(e.code().starts_with("ERR_"), "{e:?}");
        }
    }
}
