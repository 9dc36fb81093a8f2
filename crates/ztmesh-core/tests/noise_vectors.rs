//! Replays the cacophony Noise test vectors (from snow 0.10's `tests/vectors/cacophony.txt`)
//! through the public `noise::Handshake` API: every handshake message, the handshake hash and
//! every transport message must match byte for byte.
//!
//! `Noise_XXpsk3_25519_{ChaChaPoly,AESGCM}_SHA256` are in the file too; they are not public
//! protocols (the hybrid modes run them underneath), so the resolver's unit tests replay them.

use serde::Deserialize;
use ztmesh_core::noise::{Handshake, HandshakeConfig, Protocol};
use ztmesh_core::x25519;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    protocol_name: String,
    init_prologue: String,
    init_static: String,
    init_ephemeral: String,
    init_remote_static: Option<String>,
    resp_prologue: String,
    resp_static: String,
    resp_ephemeral: String,
    handshake_hash: String,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    payload: String,
    ciphertext: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn public_key(private: &[u8]) -> [u8; 32] {
    *x25519::PrivateKey::from_bytes(private).unwrap().public_key()
}

fn replay(vector: &Vector, protocol: Protocol) {
    let name = &vector.protocol_name;
    let (init_static, resp_static) = (unhex(&vector.init_static), unhex(&vector.resp_static));
    let (init_prologue, resp_prologue) = (unhex(&vector.init_prologue), unhex(&vector.resp_prologue));
    let init_remote = vector.init_remote_static.as_deref().map(unhex);

    let mut init = Handshake::initiator(&HandshakeConfig {
        protocol,
        static_private_key: &init_static,
        prologue: &init_prologue,
        remote_static_public_key: init_remote.as_deref(),
    })
    .unwrap();
    let mut resp = Handshake::responder(&HandshakeConfig {
        protocol,
        static_private_key: &resp_static,
        prologue: &resp_prologue,
        remote_static_public_key: None,
    })
    .unwrap();
    init.set_fixed_ephemeral_key_for_testing_only(&unhex(&vector.init_ephemeral)).unwrap();
    resp.set_fixed_ephemeral_key_for_testing_only(&unhex(&vector.resp_ephemeral)).unwrap();

    let mut messages = vector.messages.iter().enumerate();
    while !init.is_finished() {
        let (i, message) = messages.next().unwrap();
        let (sender, receiver) = if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let payload = unhex(&message.payload);
        let written = sender.write_message(&payload).unwrap();
        assert_eq!(hex::encode(&written), message.ciphertext, "{name}: handshake message {i}");
        assert_eq!(receiver.read_message(&written).unwrap(), payload, "{name}: payload {i}");
    }
    assert!(resp.is_finished(), "{name}");
    assert_eq!(hex::encode(init.handshake_hash()), vector.handshake_hash, "{name}: handshake hash");
    assert_eq!(hex::encode(resp.handshake_hash()), vector.handshake_hash, "{name}: handshake hash");
    assert_eq!(init.remote_static_public_key(), Some(public_key(&resp_static)), "{name}");
    assert_eq!(resp.remote_static_public_key(), Some(public_key(&init_static)), "{name}");

    let mut init = init.into_transport().unwrap();
    let mut resp = resp.into_transport().unwrap();
    assert_eq!(hex::encode(init.handshake_hash()), vector.handshake_hash, "{name}");
    let mut transport_messages = 0;
    for (i, message) in messages {
        let (sender, receiver) = if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let payload = unhex(&message.payload);
        let written = sender.encrypt(&payload).unwrap();
        assert_eq!(hex::encode(&written), message.ciphertext, "{name}: transport message {i}");
        assert_eq!(receiver.decrypt(&written).unwrap(), payload, "{name}: transport payload {i}");
        transport_messages += 1;
    }
    assert!(transport_messages > 0, "{name}");
}

#[test]
fn cacophony_vectors() {
    let vectors: Vectors = serde_json::from_str(include_str!("vectors/noise_cacophony.json")).unwrap();
    let mut replayed = Vec::new();
    for vector in &vectors.vectors {
        match Protocol::from_name(&vector.protocol_name) {
            Ok(protocol) => {
                replay(vector, protocol);
                replayed.push(protocol);
            }
            Err(_) => assert!(vector.protocol_name.starts_with("Noise_XXpsk3_25519_"), "{}", vector.protocol_name),
        }
    }
    replayed.sort_by_key(|p| p.name());
    assert_eq!(replayed, [Protocol::IkSha256, Protocol::XxAesGcmSha256, Protocol::XxBlake2s, Protocol::XxSha256]);
}
