//! Feeds arbitrary bytes to both roles of a Noise link handshake, cut into chunks at arbitrary
//! places: as the first flight to a responder (optionally behind a valid protocol proposal, so
//! the bytes reach the Noise message decoder), and as the answer to an initiator. The identity
//! decoder runs only on payloads that decrypt under the session's keys, which garbage never
//! does: `link_identity` fuzzes it directly.
//!
//! The first input byte picks the role, whether to prepend the proposal, and how to cut the
//! rest. Nothing may panic or establish a link; a failure must be typed and final, (nothing is
//! left to send after one).

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use ztmesh_core::link::{LinkConfig, LinkHandshake, Role};
use ztmesh_core::noise::Protocol;
use ztmesh_core::pki::DeviceCertRequest;
use ztmesh_core_fuzz::Pki;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let role = if selector & 1 == 0 { Role::Responder } else { Role::Initiator };
    let mut link = LinkHandshake::new(Arc::clone(config()), role, Some(&[0x33; 32])).expect("link");
    let mut bytes = Vec::new();
    if role == Role::Responder && selector & 2 != 0 {
        let name = Protocol::XxHybridSha256.name().as_bytes();
        bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
        bytes.extend_from_slice(name);
    }
    bytes.extend_from_slice(rest);
    let cut = usize::from(selector >> 2) + 1;
    for chunk in bytes.chunks(cut) {
        link.take_output();
        match link.feed(chunk) {
            Ok(()) => assert!(!link.is_established(), "garbage never establishes a link"),
            Err(error) => {
                assert_eq!(link.feed(&[]), Err(error), "the failure is final");
                assert!(!link.wants_write());
                return;
            }
        }
    }
});

/// One device's link configuration, built once: a root, a site CA and a device certificate.
fn config() -> &'static Arc<LinkConfig> {
    static CONFIG: OnceLock<Arc<LinkConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let pki = Pki::new();
        let (signer, issued) = pki.device(&DeviceCertRequest::new("fuzz-device", "fuzz"));
        Arc::new(LinkConfig::new(pki.chain(&issued), Box::new(signer), pki.trust).expect("config"))
    })
}
