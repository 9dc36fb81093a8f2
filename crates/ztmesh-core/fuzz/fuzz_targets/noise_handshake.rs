//! Feeds arbitrary bytes to Noise handshakes and transports as the peer's next message.
//!
//! The first input byte picks the protocol and which message is replaced by the rest of the
//! input: message 1, 2 or 3 of the handshake (an honest peer writes the ones before), or the
//! first transport message after an honest handshake. Nothing may panic; every failure must be
//! a typed error, after which the handshake refuses further use.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::noise::{Handshake, HandshakeConfig, NoiseError, Protocol};
use ztmesh_core::x25519;

const INITIATOR_STATIC: [u8; 32] = [0x11; 32];
const RESPONDER_STATIC: [u8; 32] = [0x22; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let protocol = Protocol::ALL[usize::from(selector) % Protocol::ALL.len()];
    let target = usize::from(selector / 4) % 4;
    let Some((mut initiator, mut responder)) = pair(protocol) else {
        return;
    };
    let messages = if protocol == Protocol::IkSha256 { 2 } else { 3 };

    // Honest messages up to the target.
    for index in 0..target.min(messages) {
        let (sender, receiver) =
            if index.is_multiple_of(2) { (&mut initiator, &mut responder) } else { (&mut responder, &mut initiator) };
        let honest = sender.write_message(b"honest").expect("honest write");
        receiver.read_message(&honest).expect("honest read");
    }

    if target < messages {
        let receiver = if target.is_multiple_of(2) { &mut responder } else { &mut initiator };
        match receiver.read_message(message) {
            Ok(_) => {
                // Accepted (possible only where Noise cannot authenticate yet, XX message 1):
                // answering must still work or fail cleanly.
                if receiver.is_my_turn() {
                    let _ = receiver.write_message(message);
                }
            }
            Err(error) => {
                assert!(matches!(
                    error,
                    NoiseError::Decrypt | NoiseError::Malformed | NoiseError::Hybrid | NoiseError::MessageSize
                ));
                assert_eq!(receiver.write_message(b"").unwrap_err(), NoiseError::State);
                assert_eq!(receiver.read_message(message).unwrap_err(), NoiseError::State);
            }
        }
        return;
    }

    // Transport: the bytes as the first message from the initiator.
    let (Ok(mut sender), Ok(mut receiver)) = (initiator.into_transport(), responder.into_transport()) else {
        panic!("an honest handshake must finish");
    };
    let mut out = vec![0u8; message.len()];
    let _ = receiver.decrypt_into(message, &mut out);
    let _ = receiver.decrypt(message);
    let sent = sender.encrypt(message);
    if let Ok(sent) = sent {
        assert_eq!(receiver.decrypt(&sent).expect("honest transport message"), message);
    }
});

fn pair(protocol: Protocol) -> Option<(Handshake, Handshake)> {
    let responder_public = *x25519::PrivateKey::from_bytes(&RESPONDER_STATIC).ok()?.public_key();
    let remote = (protocol == Protocol::IkSha256).then_some(&responder_public[..]);
    let initiator = Handshake::initiator(&HandshakeConfig {
        protocol,
        static_private_key: &INITIATOR_STATIC,
        prologue: b"fuzz",
        remote_static_public_key: remote,
    })
    .ok()?;
    let responder = Handshake::responder(&HandshakeConfig {
        protocol,
        static_private_key: &RESPONDER_STATIC,
        prologue: b"fuzz",
        remote_static_public_key: None,
    })
    .ok()?;
    Some((initiator, responder))
}
