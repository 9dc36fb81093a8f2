use ring::{aead, digest, hmac};

use super::*;
use crate::ErrorCode;

struct Keys {
    initiator: Zeroizing<[u8; 32]>,
    responder: Zeroizing<[u8; 32]>,
    initiator_public: [u8; 32],
    responder_public: [u8; 32],
}

fn keys() -> Keys {
    let i = x25519::PrivateKey::generate().unwrap();
    let r = x25519::PrivateKey::generate().unwrap();
    Keys {
        initiator: i.to_bytes().unwrap(),
        responder: r.to_bytes().unwrap(),
        initiator_public: *i.public_key(),
        responder_public: *r.public_key(),
    }
}

fn pair_with(protocol: Protocol, keys: &Keys, init_prologue: &[u8], resp_prologue: &[u8]) -> (Handshake, Handshake) {
    let remote = (protocol == Protocol::IkSha256).then_some(&keys.responder_public[..]);
    let init = Handshake::initiator(&HandshakeConfig {
        protocol,
        static_private_key: &keys.initiator[..],
        prologue: init_prologue,
        remote_static_public_key: remote,
    })
    .unwrap();
    let resp = Handshake::responder(&HandshakeConfig {
        protocol,
        static_private_key: &keys.responder[..],
        prologue: resp_prologue,
        remote_static_public_key: None,
    })
    .unwrap();
    (init, resp)
}

fn pair(protocol: Protocol) -> (Handshake, Handshake) {
    pair_with(protocol, &keys(), b"prologue", b"prologue")
}

fn responder(protocol: Protocol) -> Handshake {
    Handshake::responder(&HandshakeConfig {
        protocol,
        static_private_key: &[3u8; 32],
        prologue: b"",
        remote_static_public_key: None,
    })
    .unwrap()
}

fn message_count(protocol: Protocol) -> usize {
    if protocol == Protocol::IkSha256 {
        2
    } else {
        3
    }
}

/// Runs a whole handshake, checking every payload on the way.
fn complete(init: &mut Handshake, resp: &mut Handshake) {
    let mut i = 0usize;
    while !init.is_finished() || !resp.is_finished() {
        let (sender, receiver) = if i.is_multiple_of(2) { (&mut *init, &mut *resp) } else { (&mut *resp, &mut *init) };
        assert!(sender.is_my_turn() && !receiver.is_my_turn());
        let payload = format!("payload {i}").into_bytes();
        let message = sender.write_message(&payload).unwrap();
        assert_eq!(receiver.read_message(&message).unwrap(), payload);
        i += 1;
    }
    assert_eq!(i, message_count(init.protocol()));
}

/// Runs the handshake up to (not including) message `index`, returning the receiver of that
/// message and, if the sender's message is wanted, the honest message.
fn advance_to(protocol: Protocol, index: usize) -> (Handshake, Handshake) {
    let (mut init, mut resp) = pair(protocol);
    for i in 0..index {
        let (sender, receiver) = if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let message = sender.write_message(b"").unwrap();
        receiver.read_message(&message).unwrap();
    }
    (init, resp)
}

fn code<T: fmt::Debug>(result: Result<T, NoiseError>) -> &'static str {
    result.unwrap_err().code()
}

fn assert_failed_closed(hs: &mut Handshake) {
    assert_eq!(code(hs.write_message(b"x")), "ERR_NOISE_STATE");
    assert_eq!(code(hs.read_message(&[0u8; 64])), "ERR_NOISE_STATE");
    assert!(!hs.is_my_turn());
    assert!(!hs.is_finished());
    assert!(hs.handshake_hash().is_empty());
}

#[test]
fn names_round_trip() {
    for protocol in Protocol::ALL {
        assert_eq!(Protocol::from_name(protocol.name()).unwrap(), protocol);
        assert_eq!(protocol.to_string(), protocol.name());
        assert_eq!(protocol.is_hybrid(), protocol.name().ends_with("+MLKEM768"));
    }
    for bad in [
        "",
        "Noise_IK_25519_AESGCM_SHA256",
        "Noise_XXpsk3_25519_ChaChaPoly_SHA256",
        "Noise_XXpsk3_25519_AESGCM_SHA256",
        "noise_xx_25519_chachapoly_sha256",
    ] {
        assert_eq!(code(Protocol::from_name(bad)), "ERR_NOISE_PROTOCOL");
    }
}

#[test]
fn round_trip_all_protocols() {
    for protocol in Protocol::ALL {
        let keys = keys();
        let (mut init, mut resp) = pair_with(protocol, &keys, b"p", b"p");
        assert_eq!(init.protocol(), protocol);
        complete(&mut init, &mut resp);
        assert!(!init.is_my_turn() && !resp.is_my_turn());
        assert_eq!(init.remote_static_public_key(), Some(keys.responder_public));
        assert_eq!(resp.remote_static_public_key(), Some(keys.initiator_public));
        let hash = init.handshake_hash();
        assert_eq!(hash.len(), 32);
        assert_eq!(hash, resp.handshake_hash());

        let mut a = init.into_transport().unwrap();
        let mut b = resp.into_transport().unwrap();
        assert_eq!(a.handshake_hash(), &hash[..]);
        assert_eq!(b.handshake_hash(), &hash[..]);
        assert_eq!(a.remote_static_public_key(), Some(keys.responder_public));
        assert_eq!(b.remote_static_public_key(), Some(keys.initiator_public));
        assert_eq!(a.protocol(), protocol);
        transport_exchange(&mut a, &mut b);
    }
}

fn transport_exchange(a: &mut Transport, b: &mut Transport) {
    for n in 0..3u64 {
        let m = a.encrypt(b"ping").unwrap();
        assert_eq!(m.len(), 4 + 16);
        assert_eq!(b.decrypt(&m).unwrap(), b"ping");
        let m = b.encrypt(b"").unwrap();
        assert_eq!(a.decrypt(&m).unwrap(), b"");
        assert_eq!((a.sending_nonce(), b.receiving_nonce()), (n + 1, n + 1));
        assert_eq!((b.sending_nonce(), a.receiving_nonce()), (n + 1, n + 1));
    }
    // Both directions use different keys.
    let m = a.encrypt(b"one way").unwrap();
    assert_eq!(code(a.decrypt(&m)), "ERR_NOISE_DECRYPT");
    assert_eq!(b.decrypt(&m).unwrap(), b"one way");

    // Buffers.
    let mut out = [0u8; 64];
    let n = a.encrypt_into(b"into", &mut out).unwrap();
    assert_eq!(n, 20);
    let mut plain = [0u8; 4];
    assert_eq!(b.decrypt_into(&out[..n], &mut plain).unwrap(), 4);
    assert_eq!(&plain, b"into");

    // Rekey: matched works, unmatched fails.
    a.rekey_outgoing();
    b.rekey_incoming();
    let m = a.encrypt(b"after rekey").unwrap();
    assert_eq!(b.decrypt(&m).unwrap(), b"after rekey");
    b.rekey_outgoing();
    let m = b.encrypt(b"unmatched").unwrap();
    assert_eq!(code(a.decrypt(&m)), "ERR_NOISE_DECRYPT");
    a.rekey_incoming();
    assert_eq!(a.decrypt(&m).unwrap(), b"unmatched");
}

#[test]
fn transport_errors() {
    let (mut init, mut resp) = pair(Protocol::XxSha256);
    complete(&mut init, &mut resp);
    let (mut a, mut b) = (init.into_transport().unwrap(), resp.into_transport().unwrap());

    // A tampered message fails, leaves the nonce alone, and the real one still decrypts.
    let m = a.encrypt(b"hello").unwrap();
    for i in 0..m.len() {
        let mut bad = m.clone();
        bad[i] ^= 0x01;
        assert_eq!(code(b.decrypt(&bad)), "ERR_NOISE_DECRYPT");
    }
    assert_eq!(code(b.decrypt(&m[..m.len() - 1])), "ERR_NOISE_DECRYPT");
    assert_eq!(code(b.decrypt(&[])), "ERR_NOISE_DECRYPT");
    assert_eq!(code(b.decrypt(&[0u8; 15])), "ERR_NOISE_DECRYPT");
    assert_eq!(b.receiving_nonce(), 0);
    let mut out = [0xAAu8; 64];
    let mut bad = m.clone();
    bad[0] ^= 1;
    assert_eq!(code(b.decrypt_into(&bad, &mut out)), "ERR_NOISE_DECRYPT");
    assert!(out[..bad.len()].iter().all(|&x| x == 0), "no unauthenticated plaintext left behind");
    assert_eq!(b.decrypt(&m).unwrap(), b"hello");
    // Replays fail (the nonce moved on).
    assert_eq!(code(b.decrypt(&m)), "ERR_NOISE_DECRYPT");

    // Sizes.
    assert_eq!(a.encrypt(&vec![0u8; MAX_MESSAGE_LEN - 16]).unwrap().len(), MAX_MESSAGE_LEN);
    assert_eq!(code(a.encrypt(&vec![0u8; MAX_MESSAGE_LEN - 15])), "ERR_NOISE_MESSAGE_SIZE");
    assert_eq!(code(a.encrypt_into(b"abc", &mut [0u8; 18])), "ERR_NOISE_MESSAGE_SIZE");
    assert_eq!(code(b.decrypt(&vec![0u8; MAX_MESSAGE_LEN + 1])), "ERR_NOISE_MESSAGE_SIZE");
    let m = a.encrypt(b"abcd").unwrap();
    assert_eq!(code(b.decrypt_into(&m, &mut [0u8; 3])), "ERR_NOISE_MESSAGE_SIZE");
    assert_eq!(b.receiving_nonce(), 1);
}

#[test]
fn config_errors() {
    let k = [7u8; 32];
    let config = |protocol, key: &'static [u8], remote: Option<&'static [u8]>| HandshakeConfig {
        protocol,
        static_private_key: key,
        prologue: b"",
        remote_static_public_key: remote,
    };
    let leaked: &'static [u8] = Box::leak(Box::new(k));
    let remote: &'static [u8] = Box::leak(Box::new(*x25519::PrivateKey::from_bytes(&[8u8; 32]).unwrap().public_key()));

    assert_eq!(code(Handshake::initiator(&config(Protocol::IkSha256, leaked, None))), "ERR_NOISE_CONFIG");
    assert_eq!(code(Handshake::initiator(&config(Protocol::XxSha256, leaked, Some(remote)))), "ERR_NOISE_CONFIG");
    assert_eq!(code(Handshake::responder(&config(Protocol::IkSha256, leaked, Some(remote)))), "ERR_NOISE_CONFIG");
    assert_eq!(code(Handshake::initiator(&config(Protocol::IkSha256, leaked, Some(&[0u8; 32])))), "ERR_NOISE_CONFIG");
    assert_eq!(code(Handshake::initiator(&config(Protocol::IkSha256, leaked, Some(&[9u8; 31])))), "ERR_KEY_LENGTH");
    for protocol in Protocol::ALL {
        assert_eq!(code(Handshake::responder(&config(protocol, &[1u8; 31], None))), "ERR_KEY_LENGTH");
        assert_eq!(code(Handshake::responder(&config(protocol, &[1u8; 33], None))), "ERR_KEY_LENGTH");
        assert_eq!(code(Handshake::initiator(&config(protocol, &[], Some(remote)))), "ERR_KEY_LENGTH");
    }
    Handshake::initiator(&config(Protocol::IkSha256, leaked, Some(remote))).unwrap();

    let (mut init, _) = pair(Protocol::XxSha256);
    assert_eq!(code(init.set_fixed_ephemeral_key_for_testing_only(&[1u8; 31])), "ERR_KEY_LENGTH");
    init.set_fixed_ephemeral_key_for_testing_only(&[1u8; 32]).unwrap();
    init.write_message(b"").unwrap();
    assert_eq!(code(init.set_fixed_ephemeral_key_for_testing_only(&[1u8; 32])), "ERR_NOISE_STATE");
}

#[test]
fn out_of_turn_calls_are_refused_without_harm() {
    for protocol in Protocol::ALL {
        let (mut init, mut resp) = pair(protocol);
        assert_eq!(code(resp.write_message(b"")), "ERR_NOISE_STATE");
        assert_eq!(code(init.read_message(&[0u8; 48])), "ERR_NOISE_STATE");
        let m1 = init.write_message(b"").unwrap();
        assert_eq!(code(init.write_message(b"")), "ERR_NOISE_STATE");
        resp.read_message(&m1).unwrap();
        assert_eq!(code(resp.read_message(&m1)), "ERR_NOISE_STATE");
        let m2 = resp.write_message(b"").unwrap();
        init.read_message(&m2).unwrap();
        if message_count(protocol) == 3 {
            let (init2, _) = pair(protocol);
            assert_eq!(code(init2.into_transport()), "ERR_NOISE_STATE");
            let m3 = init.write_message(b"").unwrap();
            resp.read_message(&m3).unwrap();
        }
        assert!(init.is_finished() && resp.is_finished());
        assert_eq!(code(init.write_message(b"")), "ERR_NOISE_STATE");
        assert_eq!(code(resp.write_message(b"")), "ERR_NOISE_STATE");
        assert_eq!(code(init.read_message(&m2)), "ERR_NOISE_STATE");
        assert_eq!(code(resp.read_message(&m1)), "ERR_NOISE_STATE");
        let (mut a, mut b) = (init.into_transport().unwrap(), resp.into_transport().unwrap());
        transport_exchange(&mut a, &mut b);
    }
}

#[test]
fn too_early_into_transport() {
    for protocol in Protocol::ALL {
        let (mut init, _) = pair(protocol);
        init.write_message(b"").unwrap();
        assert_eq!(code(init.into_transport()), "ERR_NOISE_STATE");
    }
}

#[test]
fn over_long_payloads() {
    for protocol in Protocol::ALL {
        let kem = if protocol.is_hybrid() { hybrid::ENCAPSULATION_KEY_LEN + 16 } else { 0 };
        // Message 1: `e` (32), plus the KEM key and a tag in the hybrid mode, plus for IK an
        // encrypted `s` (48) and a tag.
        let overhead = match protocol {
            Protocol::IkSha256 => 32 + 48 + 16,
            _ => 32 + kem,
        };
        let (mut init, mut resp) = pair(protocol);
        assert_eq!(code(init.write_message(&vec![0u8; MAX_MESSAGE_LEN + 1])), "ERR_NOISE_MESSAGE_SIZE");
        assert_eq!(code(init.write_message(&vec![0u8; MAX_MESSAGE_LEN - overhead + 1])), "ERR_NOISE_MESSAGE_SIZE");
        // Still usable: the exact limit works.
        let payload = vec![0x5au8; MAX_MESSAGE_LEN - overhead];
        let m = init.write_message(&payload).unwrap();
        assert_eq!(m.len(), MAX_MESSAGE_LEN);
        assert_eq!(resp.read_message(&m).unwrap(), payload);
        // Message 2 has at least `e` and a tag.
        assert_eq!(code(resp.write_message(&vec![0u8; MAX_MESSAGE_LEN - 47])), "ERR_NOISE_MESSAGE_SIZE");
        let m = resp.write_message(b"ok").unwrap();
        assert_eq!(init.read_message(&m).unwrap(), b"ok");
        // A message over the limit is refused (and ends the handshake).
        let (_, mut resp) = pair(protocol);
        assert_eq!(code(resp.read_message(&vec![0u8; MAX_MESSAGE_LEN + 1])), "ERR_NOISE_MESSAGE_SIZE");
        assert_failed_closed(&mut resp);
    }
}

#[test]
fn tampered_messages_fail_to_decrypt_and_fail_closed() {
    for protocol in Protocol::ALL {
        // Message 2 is always authenticated: flip each byte in turn (stride for speed).
        let last = message_count(protocol) - 1;
        for index in 1..=last {
            let len = {
                let (mut init, mut resp) = advance_to(protocol, index);
                let sender = if index.is_multiple_of(2) { &mut init } else { &mut resp };
                sender.write_message(b"payload").unwrap().len()
            };
            for position in (0..len).step_by(29).chain([len - 1]) {
                let (mut init, mut resp) = advance_to(protocol, index);
                let (sender, receiver) =
                    if index.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
                let mut m = sender.write_message(b"payload").unwrap();
                m[position] ^= 0x80;
                assert_eq!(
                    code(receiver.read_message(&m)),
                    "ERR_NOISE_DECRYPT",
                    "{protocol}, message {index}, byte {position}"
                );
                assert_failed_closed(receiver);
                assert_eq!(code(std::mem::replace(receiver, responder(protocol)).into_transport()), "ERR_NOISE_STATE");
            }
        }
    }
}

#[test]
fn tampered_first_messages() {
    // IK and the hybrid mode authenticate message 1's payload; XX sends it in clear.
    for protocol in [Protocol::IkSha256, Protocol::XxHybridSha256] {
        let (mut init, _) = pair(protocol);
        let m = init.write_message(b"payload").unwrap();
        for position in (32..m.len()).step_by(17) {
            let (_, mut resp) = pair(protocol);
            let mut bad = m.clone();
            bad[position] ^= 0x04;
            assert_eq!(code(resp.read_message(&bad)), "ERR_NOISE_DECRYPT", "{protocol} byte {position}");
        }
    }
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    crate::rand::fill(&mut v).unwrap();
    v
}

/// Feeds `message` as message `index` and checks the outcome is a typed result.
fn feed(protocol: Protocol, index: usize, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
    let (mut init, mut resp) = advance_to(protocol, index);
    let receiver = if index.is_multiple_of(2) { &mut resp } else { &mut init };
    let result = receiver.read_message(message);
    match &result {
        Ok(_) => {
            // Only XX's first message is unauthenticated; a random one may even be followed
            // by a reply, but that reply must not be readable by anyone else.
            assert!(index == 0 && !protocol.is_hybrid() && protocol != Protocol::IkSha256);
        }
        Err(error) => {
            assert!(
                matches!(
                    error,
                    NoiseError::Decrypt | NoiseError::Malformed | NoiseError::Hybrid | NoiseError::MessageSize
                ),
                "{protocol} message {index}: {error:?}"
            );
            assert_failed_closed(receiver);
        }
    }
    result
}

#[test]
fn garbage_first_messages() {
    for protocol in Protocol::ALL {
        for len in 0..2000 {
            let _ = feed(protocol, 0, &random(len));
        }
        let _ = feed(protocol, 0, &[0u8; 2000]);
        // An all-zero `e` is of small order: the XX responder accepts the message but cannot
        // answer it.
        if matches!(protocol, Protocol::XxSha256 | Protocol::XxBlake2s) {
            let mut resp = responder(protocol);
            resp.read_message(&[0u8; 40]).unwrap();
            assert_eq!(code(resp.write_message(b"")), "ERR_NOISE_DECRYPT");
            assert_failed_closed(&mut resp);
        }
    }
}

#[test]
fn garbage_later_messages() {
    for protocol in Protocol::ALL {
        for index in 1..message_count(protocol) {
            for len in (0..2000).step_by(23).chain([32, 47, 48, 95, 96, 1183, 1184, 1200]) {
                assert!(feed(protocol, index, &random(len)).is_err());
            }
        }
    }
}

#[test]
fn truncated_messages() {
    for protocol in Protocol::ALL {
        for index in 0..message_count(protocol) {
            let (mut init, mut resp) = advance_to(protocol, index);
            let sender = if index.is_multiple_of(2) { &mut init } else { &mut resp };
            let m = sender.write_message(b"hello").unwrap();
            let step = if protocol.is_hybrid() { 7 } else { 1 };
            for len in (0..m.len()).step_by(step).chain([m.len() - 1]) {
                let result = feed(protocol, index, &m[..len]);
                let clear_first = index == 0
                    && matches!(protocol, Protocol::XxSha256 | Protocol::XxBlake2s | Protocol::XxAesGcmSha256);
                if clear_first && len >= 32 {
                    assert_eq!(result.unwrap(), &b"hello"[..len - 32]);
                } else if clear_first {
                    assert_eq!(code(result), "ERR_NOISE_MALFORMED");
                } else {
                    assert!(result.is_err());
                }
            }
        }
    }
}

#[test]
fn different_prologues_fail() {
    for protocol in Protocol::ALL {
        let (mut init, mut resp) = pair_with(protocol, &keys(), b"one", b"two");
        let m1 = init.write_message(b"").unwrap();
        let failed = match resp.read_message(&m1) {
            Err(error) => error,
            Ok(_) => {
                let m2 = resp.write_message(b"").unwrap();
                init.read_message(&m2).unwrap_err()
            }
        };
        assert_eq!(failed, NoiseError::Decrypt, "{protocol}");
    }
}

#[test]
fn handshake_and_transport_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Handshake>();
    check::<Transport>();
    check::<NoiseError>();
}

#[test]
fn debug_output_has_no_secrets() {
    let config = HandshakeConfig {
        protocol: Protocol::XxSha256,
        static_private_key: &[0xabu8; 32],
        prologue: b"",
        remote_static_public_key: None,
    };
    assert!(!format!("{config:?}").contains("171"));
    let hs = Handshake::responder(&config).unwrap();
    assert!(format!("{hs:?}").starts_with("Handshake"));
}

// ---- The hybrid mode ----

#[test]
fn hybrid_wire_format() {
    let (mut init, mut resp) = pair(Protocol::XxHybridSha256);
    let m1 = init.write_message(b"one").unwrap();
    assert_eq!(m1.len(), 32 + hybrid::ENCAPSULATION_KEY_LEN + 3 + 16);
    assert_eq!(resp.read_message(&m1).unwrap(), b"one");
    let m2 = resp.write_message(b"two").unwrap();
    assert_eq!(m2.len(), 32 + 48 + hybrid::CIPHERTEXT_LEN + 3 + 16);
    assert_eq!(init.read_message(&m2).unwrap(), b"two");
    let m3 = init.write_message(b"three").unwrap();
    assert_eq!(m3.len(), 48 + 5 + 16);
    assert_eq!(resp.read_message(&m3).unwrap(), b"three");
    assert_eq!(init.handshake_hash(), resp.handshake_hash());
    // The KEM state is gone once used.
    assert!(init.hybrid.as_ref().unwrap().is_spent());
    assert!(resp.hybrid.as_ref().unwrap().is_spent());
}

#[test]
fn hybrid_initiator_vs_classical_responder_fails() {
    let keys = keys();
    let (mut init, _) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    let (_, mut resp) = pair_with(Protocol::XxSha256, &keys, b"p", b"p");
    let m1 = init.write_message(b"").unwrap();
    // XX's first payload is in clear, so the classical responder takes it all as payload…
    assert_eq!(resp.read_message(&m1).unwrap().len(), m1.len() - 32);
    // …but its answer comes from a different protocol.
    let m2 = resp.write_message(b"").unwrap();
    assert_eq!(code(init.read_message(&m2)), "ERR_NOISE_DECRYPT");
}

#[test]
fn classical_initiator_vs_hybrid_responder_fails() {
    let keys = keys();
    for payload_len in [0, 16, 2000] {
        let (mut init, _) = pair_with(Protocol::XxSha256, &keys, b"p", b"p");
        let (_, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
        let m1 = init.write_message(&vec![1u8; payload_len]).unwrap();
        assert_eq!(code(resp.read_message(&m1)), "ERR_NOISE_DECRYPT");
    }
}

/// A man in the middle rewriting message 1 of the hybrid mode. Message 1's payload key comes
/// from public values only (the protocol name, the prologue and `e`), so an attacker can
/// decrypt and re-encrypt it; the transcript hash must still catch any change.
struct Msg1Mitm {
    h: [u8; 32],
    k: [u8; 32],
}

impl Msg1Mitm {
    fn new(caller_prologue: &[u8], e: &[u8]) -> Self {
        let sha = |parts: &[&[u8]]| -> [u8; 32] {
            let mut ctx = digest::Context::new(&digest::SHA256);
            for p in parts {
                ctx.update(p);
            }
            ctx.finish().as_ref().try_into().unwrap()
        };
        let hmac = |key: &[u8], data: &[u8]| -> [u8; 32] {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().try_into().unwrap()
        };
        let h = sha(&[snow_name(Protocol::XxHybridSha256).as_bytes()]); // 36 bytes > 32: hashed
        let ck = h;
        let h = sha(&[&h, &hybrid::prologue(caller_prologue)]);
        let h = sha(&[&h, e]);
        // psk modes mix `e` into the key too.
        let temp = hmac(&ck, e);
        let ck = hmac(&temp, &[1]);
        let k = hmac(&temp, &[&ck[..], &[2]].concat());
        Self { h, k }
    }

    fn key(&self) -> aead::LessSafeKey {
        aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &self.k).unwrap())
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Vec<u8> {
        let mut buf = ciphertext.to_vec();
        let nonce = aead::Nonce::assume_unique_for_key([0; 12]);
        let len = self.key().open_in_place(nonce, aead::Aad::from(self.h), &mut buf).unwrap().len();
        buf.truncate(len);
        buf
    }

    fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        let nonce = aead::Nonce::assume_unique_for_key([0; 12]);
        self.key().seal_in_place_append_tag(nonce, aead::Aad::from(self.h), &mut buf).unwrap();
        buf
    }

    /// Rewrites the plaintext payload of message 1 with `f`.
    fn rewrite(caller_prologue: &[u8], m1: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let (e, ciphertext) = m1.split_at(32);
        let mitm = Self::new(caller_prologue, e);
        let mut payload = mitm.decrypt(ciphertext);
        f(&mut payload);
        [e.to_vec(), mitm.encrypt(&payload)].concat()
    }
}

#[test]
fn mitm_model_is_faithful() {
    // Re-encrypting the unchanged payload yields the very same message, which still works.
    let (mut init, mut resp) = pair(Protocol::XxHybridSha256);
    let m1 = init.write_message(b"hi").unwrap();
    let same =
        Msg1Mitm::rewrite(b"prologue", &m1, |payload| assert_eq!(&payload[hybrid::ENCAPSULATION_KEY_LEN..], b"hi"));
    assert_eq!(same, m1);
    complete_from_message_1(&mut init, &mut resp, &same).unwrap();
}

/// Delivers message 1 and runs the rest of the handshake; returns the first failure.
fn complete_from_message_1(init: &mut Handshake, resp: &mut Handshake, m1: &[u8]) -> Result<(), NoiseError> {
    resp.read_message(m1)?;
    let m2 = resp.write_message(b"")?;
    init.read_message(&m2)?;
    let m3 = init.write_message(b"")?;
    resp.read_message(&m3)?;
    let (mut a, mut b) = (
        std::mem::replace(init, responder(Protocol::XxSha256)).into_transport()?,
        std::mem::replace(resp, responder(Protocol::XxSha256)).into_transport()?,
    );
    let m = a.encrypt(b"x")?;
    b.decrypt(&m)?;
    Ok(())
}

#[test]
fn mitm_stripping_the_kem_key_is_caught() {
    let keys = keys();
    // Forwarded, stripped, to a hybrid responder: the KEM key is missing.
    let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    let m1 = init.write_message(b"user").unwrap();
    let stripped = Msg1Mitm::rewrite(b"p", &m1, |payload| {
        payload.drain(..hybrid::ENCAPSULATION_KEY_LEN);
    });
    assert_eq!(complete_from_message_1(&mut init, &mut resp, &stripped), Err(NoiseError::Malformed));

    // Stripped with a long user payload, part of which now looks like a KEM key: the
    // transcripts differ, so the initiator refuses message 2.
    let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    let user = random(hybrid::ENCAPSULATION_KEY_LEN + 10);
    let m1 = init.write_message(&user).unwrap();
    let stripped = Msg1Mitm::rewrite(b"p", &m1, |payload| {
        payload.drain(..hybrid::ENCAPSULATION_KEY_LEN);
    });
    let result = complete_from_message_1(&mut init, &mut resp, &stripped);
    assert!(matches!(result, Err(NoiseError::Hybrid | NoiseError::Decrypt)), "{result:?}");

    // Made to look classical (`e || user payload` in clear) for a classical responder: it
    // accepts message 1, but the hybrid initiator refuses its answer.
    let (mut init, _) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    let (_, mut resp) = pair_with(Protocol::XxSha256, &keys, b"p", b"p");
    let m1 = init.write_message(b"user").unwrap();
    let payload = Msg1Mitm::new(b"p", &m1[..32]).decrypt(&m1[32..]);
    let classical = [&m1[..32], &payload[hybrid::ENCAPSULATION_KEY_LEN..]].concat();
    assert_eq!(resp.read_message(&classical).unwrap(), b"user");
    let m2 = resp.write_message(b"").unwrap();
    assert_eq!(code(init.read_message(&m2)), "ERR_NOISE_DECRYPT");
}

#[test]
fn mitm_changing_the_kem_key_is_caught() {
    let keys = keys();
    // A byte of `rho` (the last 32 bytes): the key stays valid, so the responder goes on,
    // and the initiator refuses message 2.
    for position in [0, 1, 100, hybrid::ENCAPSULATION_KEY_LEN - 32, hybrid::ENCAPSULATION_KEY_LEN - 1] {
        let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
        let m1 = init.write_message(b"").unwrap();
        let changed = Msg1Mitm::rewrite(b"p", &m1, |payload| payload[position] ^= 0x01);
        let result = complete_from_message_1(&mut init, &mut resp, &changed);
        assert!(matches!(result, Err(NoiseError::Hybrid | NoiseError::Decrypt)), "{position}: {result:?}");
        if position >= hybrid::ENCAPSULATION_KEY_LEN - 32 {
            assert_eq!(result, Err(NoiseError::Decrypt));
            assert!(resp.state.is_some(), "the responder accepted message 1");
        }
    }
    // A coefficient out of range (12 bits of ones >= q): the key fails the FIPS 203 check.
    let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    let m1 = init.write_message(b"").unwrap();
    let invalid = Msg1Mitm::rewrite(b"p", &m1, |payload| {
        payload[0] = 0xff;
        payload[1] |= 0x0f;
    });
    assert_eq!(complete_from_message_1(&mut init, &mut resp, &invalid), Err(NoiseError::Hybrid));
}

#[test]
fn changing_the_kem_ciphertext_is_caught() {
    // Message 2's payload is encrypted under keys from `ee`: a changed ciphertext fails.
    for position in [0, 500, hybrid::CIPHERTEXT_LEN - 1] {
        let (mut init, mut resp) = pair(Protocol::XxHybridSha256);
        let m1 = init.write_message(b"").unwrap();
        resp.read_message(&m1).unwrap();
        let mut m2 = resp.write_message(b"").unwrap();
        m2[32 + 48 + position] ^= 0x01;
        assert_eq!(code(init.read_message(&m2)), "ERR_NOISE_DECRYPT");
    }
}

#[test]
fn hybrid_keys_depend_on_the_kem_secret() {
    // Same transcript up to message 2; the initiator then uses the PSK a plain XXpsk3 with a
    // zero PSK would use instead of the ML-KEM one. The responder must refuse message 3.
    let (mut init, mut resp) = pair(Protocol::XxHybridSha256);
    let m1 = init.write_message(b"").unwrap();
    resp.read_message(&m1).unwrap();
    let m2 = resp.write_message(b"").unwrap();
    init.read_message(&m2).unwrap();
    init.state.as_mut().unwrap().set_psk(hybrid::PSK_POSITION, &[0u8; 32]).unwrap();
    let m3 = init.write_message(b"").unwrap();
    assert_eq!(code(resp.read_message(&m3)), "ERR_NOISE_DECRYPT");

    // And with the same ephemeral and static keys, a plain snow XXpsk3 run with a zero PSK
    // (same prologue, same message 1 and 2 payloads) gives a different session.
    let keys = keys();
    let (e_i, e_r) = ([0x11u8; 32], [0x22u8; 32]);
    let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
    init.set_fixed_ephemeral_key_for_testing_only(&e_i).unwrap();
    resp.set_fixed_ephemeral_key_for_testing_only(&e_r).unwrap();
    let prologue = hybrid::prologue(b"p");
    let plain = |initiator: bool, e: &[u8; 32]| {
        let fixed = EphemeralOverride::default();
        assert!(fixed.set(*e));
        let builder = snow::Builder::with_resolver(
            snow_name(Protocol::XxHybridSha256).parse().unwrap(),
            Box::new(Resolver::new(fixed)),
        )
        .prologue(&prologue)
        .unwrap()
        .psk(3, &[0u8; 32])
        .unwrap();
        if initiator {
            builder.local_private_key(&keys.initiator[..]).unwrap().build_initiator().unwrap()
        } else {
            builder.local_private_key(&keys.responder[..]).unwrap().build_responder().unwrap()
        }
    };
    let (mut plain_init, mut plain_resp) = (plain(true, &e_i), plain(false, &e_r));
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let mut payload = vec![0u8; MAX_MESSAGE_LEN];

    let m1 = init.write_message(b"").unwrap();
    let n = plain_resp.read_message(&m1, &mut payload).unwrap();
    let p1 = payload[..n].to_vec();
    let n = plain_init.write_message(&p1, &mut buf).unwrap();
    assert_eq!(buf[..n], m1[..], "same message 1");
    resp.read_message(&m1).unwrap();
    let m2 = resp.write_message(b"").unwrap();
    let n = plain_init.read_message(&m2, &mut payload).unwrap();
    let p2 = payload[..n].to_vec();
    let n = plain_resp.write_message(&p2, &mut buf).unwrap();
    assert_eq!(buf[..n], m2[..], "same message 2");
    init.read_message(&m2).unwrap();
    assert_eq!(plain_init.get_handshake_hash(), &init.handshake_hash()[..]);

    let m3 = init.write_message(b"").unwrap();
    let n = plain_init.write_message(&[], &mut buf).unwrap();
    assert_ne!(buf[..n], m3[..], "message 3 depends on the ML-KEM secret");
    assert!(plain_resp.read_message(&m3, &mut payload).is_err());
    resp.read_message(&m3).unwrap();
    assert_ne!(plain_init.get_handshake_hash(), &init.handshake_hash()[..]);
    let (mut a, mut b) = (init.into_transport().unwrap(), resp.into_transport().unwrap());
    let mut plain_a = plain_init.into_transport_mode().unwrap();
    let m = a.encrypt(b"secret").unwrap();
    let n = plain_a.write_message(b"secret", &mut buf).unwrap();
    assert_ne!(buf[..n], m[..]);
    assert_eq!(b.decrypt(&m).unwrap(), b"secret");
}

#[test]
fn hybrid_runs_are_fresh() {
    // Fixed X25519 ephemerals, yet the ML-KEM exchange makes every session different.
    let keys = keys();
    let run = || {
        let (mut init, mut resp) = pair_with(Protocol::XxHybridSha256, &keys, b"p", b"p");
        init.set_fixed_ephemeral_key_for_testing_only(&[1; 32]).unwrap();
        resp.set_fixed_ephemeral_key_for_testing_only(&[2; 32]).unwrap();
        complete(&mut init, &mut resp);
        init.handshake_hash()
    };
    assert_ne!(run(), run());
}
