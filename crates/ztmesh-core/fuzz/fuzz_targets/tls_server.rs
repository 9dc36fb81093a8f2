//! Feeds arbitrary bytes to a ztmesh TLS server session as the client's side of the connection.
//!
//! The first input byte picks the scenario: the rest of the input as the very first bytes of a
//! connection (split into two reads at a position taken from the second byte), or as the client's
//! second flight after an honest ClientHello (whose server answer is discarded). Nothing may
//! panic; a failure must be a typed error that sticks, and no input may establish a peer.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::pki::DeviceCertRequest;
use ztmesh_core::tls::{ClientSettings, ServerSettings, TlsClientContext, TlsServerContext};
use ztmesh_core::ErrorCode;
use ztmesh_core_fuzz::Pki;

/// A server context, and an honest ClientHello from a client of the same PKI.
struct Fixture {
    server: TlsServerContext,
    client_hello: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let pki = Pki::new();
        let device = |id: &str| {
            let (signer, issued) = pki.device(&DeviceCertRequest::new(id, "t"));
            (pki.chain(&issued), Box::new(signer))
        };
        let (chain, signer) = device("server");
        let server = TlsServerContext::new(ServerSettings::new(chain, signer, pki.trust.clone())).unwrap();
        let (chain, signer) = device("client");
        let client = TlsClientContext::new(ClientSettings::new(chain, signer, pki.trust.clone())).unwrap();
        let client_hello = client.connect().unwrap().take_outgoing();
        Fixture { server, client_hello }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let fixture = fixture();
    let mut session = fixture.server.accept().unwrap();
    let result = if selector % 2 == 0 {
        let split = input.first().map_or(0, |&b| usize::from(b)).min(input.len());
        let (first, second) = input.split_at(split);
        session.read_tls(first).and_then(|()| session.read_tls(second))
    } else {
        session.read_tls(&fixture.client_hello).expect("an honest ClientHello is accepted");
        let _ = session.take_outgoing();
        session.read_tls(input)
    };
    let _ = session.take_outgoing();
    assert!(session.peer().is_none(), "no input establishes a peer");
    if let Err(error) = result {
        assert!(error.code().starts_with("ERR_"));
        assert!(!session.is_handshaking());
        assert_eq!(session.error(), Some(&error));
        assert_eq!(session.read_tls(b"\x16\x03\x03\x00\x01\x00"), Err(error.clone()));
        assert_eq!(session.write_plaintext(b"x"), Err(error));
    }
});
