//! The snow crypto resolver: X25519, ChaChaPoly and AESGCM from aws-lc (through our own modules;
//! its fused ChaCha20-Poly1305 assembly is about twice as fast as ring's on bulk data, and its
//! AES-GCM uses VAES where the CPU has it), SHA-256 from ring, BLAKE2s from snow's default
//! (RustCrypto) resolver.
//!
//! The randomness snow asks for is used only to generate ephemeral keys. It comes from the
//! operating system, except when a test has queued a fixed ephemeral key through
//! [`EphemeralOverride`]: that is what makes the published test vectors reproducible.

use std::sync::{Arc, Mutex};

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

use crate::{aead, x25519};

/// Resolves the primitives of one handshake.
pub(crate) struct Resolver {
    ephemeral_override: EphemeralOverride,
}

impl Resolver {
    /// A resolver whose random number generator serves a queued fixed ephemeral key, if any.
    pub(crate) fn new(ephemeral_override: EphemeralOverride) -> Self {
        Self { ephemeral_override }
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(HandshakeRng { ephemeral_override: self.ephemeral_override.clone() }))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::<X25519Dh>::default()),
            _ => None,
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        RingResolver.resolve_hash(choice).or_else(|| DefaultResolver.resolve_hash(choice))
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => Some(Box::new(NoiseCipher::new(aead::Algorithm::ChaCha20Poly1305))),
            CipherChoice::AESGCM => Some(Box::new(NoiseCipher::new(aead::Algorithm::Aes256Gcm))),
        }
    }
}

/// Noise's two ciphers on [`crate::aead`] (aws-lc): ChaChaPoly (RFC 8439; the 64-bit counter
/// little-endian after 4 zero bytes) and AESGCM (AES-256-GCM; the counter big-endian after 4
/// zero bytes), Noise spec §12.
struct NoiseCipher {
    algorithm: aead::Algorithm,
    key: Option<aead::Key>,
}

impl NoiseCipher {
    fn new(algorithm: aead::Algorithm) -> Self {
        Self { algorithm, key: None }
    }

    fn nonce(&self, counter: u64) -> [u8; aead::NONCE_LEN] {
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce[4..].copy_from_slice(&match self.algorithm {
            aead::Algorithm::ChaCha20Poly1305 => counter.to_le_bytes(),
            aead::Algorithm::Aes256Gcm => counter.to_be_bytes(),
        });
        nonce
    }
}

impl Cipher for NoiseCipher {
    fn name(&self) -> &'static str {
        match self.algorithm {
            aead::Algorithm::ChaCha20Poly1305 => "ChaChaPoly",
            aead::Algorithm::Aes256Gcm => "AESGCM",
        }
    }

    fn set(&mut self, key: &[u8; 32]) {
        self.key = aead::Key::new(self.algorithm, key).ok();
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        // Cannot fail: snow sizes `out` for the tag and calls `set` first. Should it ever, the
        // output is all zeros, which the peer rejects as inauthentic (fail closed).
        match self.key.as_ref().map(|key| key.seal_into(&self.nonce(nonce), authtext, plaintext, out)) {
            Some(Ok(len)) => len,
            _ => {
                let len = (plaintext.len() + aead::TAG_LEN).min(out.len());
                out[..len].fill(0);
                len
            }
        }
    }

    fn decrypt(&self, nonce: u64, authtext: &[u8], ciphertext: &[u8], out: &mut [u8]) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        key.open_into(&self.nonce(nonce), authtext, ciphertext, out).map_err(|_| snow::Error::Decrypt)
    }
}

/// A one-shot fixed ephemeral private key, shared between a handshake and its generator.
///
/// Test-only: the next 32-byte draw snow makes (the next ephemeral key it generates) returns
/// this key instead of fresh randomness.
#[derive(Clone, Default)]
pub(crate) struct EphemeralOverride {
    slot: Arc<Mutex<Option<Zeroizing<[u8; x25519::KEY_LEN]>>>>,
}

impl EphemeralOverride {
    /// Queues `key` as the next ephemeral private key. Returns `false` if the lock is poisoned.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn set(&self, key: [u8; x25519::KEY_LEN]) -> bool {
        match self.slot.lock() {
            Ok(mut slot) => {
                *slot = Some(Zeroizing::new(key));
                true
            }
            Err(_) => false,
        }
    }

    /// Takes the queued key, if any.
    fn take(&self) -> Result<Option<Zeroizing<[u8; x25519::KEY_LEN]>>, snow::Error> {
        self.slot.lock().map(|mut slot| slot.take()).map_err(|_| snow::Error::Rng)
    }
}

/// snow's random number generator: the OS CSPRNG, or a queued fixed ephemeral key.
struct HandshakeRng {
    ephemeral_override: EphemeralOverride,
}

impl Random for HandshakeRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        if dest.len() == x25519::KEY_LEN {
            if let Some(key) = self.ephemeral_override.take()? {
                dest.copy_from_slice(&key[..]);
                return Ok(());
            }
        }
        crate::rand::fill(dest).map_err(|_| snow::Error::Rng)
    }
}

/// X25519 for snow, on [`crate::x25519`] (aws-lc).
///
/// The raw private key bytes are kept because snow's `Dh` trait can hand them out; they are
/// zeroized on drop and whenever a new key is loaded.
#[derive(Default)]
struct X25519Dh {
    key: Option<x25519::PrivateKey>,
    private: Zeroizing<[u8; x25519::KEY_LEN]>,
    public: [u8; x25519::KEY_LEN],
}

impl X25519Dh {
    /// Loads a private key; a key of the wrong length leaves the object without a key, so
    /// every later `dh` fails.
    fn load(&mut self, private: &[u8]) -> Result<(), snow::Error> {
        self.key = None;
        self.private = Zeroizing::new([0; x25519::KEY_LEN]);
        self.public = [0; x25519::KEY_LEN];
        let key = x25519::PrivateKey::from_bytes(private).map_err(|_| snow::Error::Dh)?;
        self.private.copy_from_slice(private);
        self.public = *key.public_key();
        self.key = Some(key);
        Ok(())
    }
}

impl Dh for X25519Dh {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        x25519::KEY_LEN
    }

    fn priv_len(&self) -> usize {
        x25519::KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // The trait cannot report failure; a bad key leaves no key, and `dh` then fails.
        let _ = self.load(privkey);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = Zeroizing::new([0u8; x25519::KEY_LEN]);
        rng.try_fill_bytes(&mut private[..])?;
        self.load(&private[..])
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private[..]
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        // snow passes its whole remote-key buffer (56 bytes); the key is at the front.
        let key = self.key.as_ref().ok_or(snow::Error::Dh)?;
        let peer = pubkey.get(..x25519::KEY_LEN).ok_or(snow::Error::Dh)?;
        let out = out.get_mut(..x25519::KEY_LEN).ok_or(snow::Error::Dh)?;
        let shared = key.diffie_hellman(peer).map_err(|_| snow::Error::Dh)?;
        out.copy_from_slice(&shared[..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dh_matches_rfc7748_and_refuses_small_order_points() {
        let mut alice = X25519Dh::default();
        alice.set(&hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap());
        let bob_public = hex::decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f").unwrap();
        assert_eq!(
            alice.pubkey(),
            hex::decode("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a").unwrap()
        );
        // snow hands over a 56-byte buffer with the key at the front.
        let mut remote = [0u8; 56];
        remote[..32].copy_from_slice(&bob_public);
        let mut out = [0u8; 56];
        alice.dh(&remote, &mut out).unwrap();
        assert_eq!(out[..32], hex::decode("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742").unwrap());

        assert_eq!(alice.dh(&[0u8; 56], &mut out), Err(snow::Error::Dh));
        let mut order_4 = [0u8; 32];
        order_4[0] = 1; // u = 1 has order 4
        assert_eq!(alice.dh(&order_4, &mut out), Err(snow::Error::Dh));
        let order_8 = hex::decode("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800").unwrap();
        assert_eq!(alice.dh(&order_8, &mut out), Err(snow::Error::Dh));
        assert_eq!(alice.dh(&[9u8; 31], &mut out), Err(snow::Error::Dh));
        assert_eq!(X25519Dh::default().dh(&bob_public, &mut out), Err(snow::Error::Dh));
    }

    #[test]
    fn bad_private_key_leaves_no_key() {
        let mut dh = X25519Dh::default();
        dh.set(&[7u8; 31]);
        assert_eq!(dh.pubkey(), [0u8; 32]);
        assert_eq!(dh.dh(&[9u8; 32], &mut [0u8; 32]), Err(snow::Error::Dh));
    }

    /// Replays the cacophony `Noise_XXpsk3_25519_{ChaChaPoly,AESGCM}_SHA256` vectors (the
    /// protocols under the hybrid modes) through snow with this resolver, PSK included.
    #[test]
    fn xxpsk3_cacophony_vectors() {
        for name in ["Noise_XXpsk3_25519_ChaChaPoly_SHA256", "Noise_XXpsk3_25519_AESGCM_SHA256"] {
            replay_xxpsk3(name);
        }
    }

    fn replay_xxpsk3(name: &str) {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/noise_cacophony.json")).unwrap();
        let vector = json["vectors"].as_array().unwrap().iter().find(|v| v["protocol_name"] == name).unwrap();
        let field = |name: &str| hex::decode(vector[name].as_str().unwrap()).unwrap();
        let psk =
            |name: &str| -> [u8; 32] { hex::decode(vector[name][0].as_str().unwrap()).unwrap().try_into().unwrap() };
        let build = |prefix: &str| {
            let fixed = EphemeralOverride::default();
            assert!(fixed.set(field(&format!("{prefix}_ephemeral")).try_into().unwrap()));
            let (s, prologue, psk) = (
                field(&format!("{prefix}_static")),
                field(&format!("{prefix}_prologue")),
                psk(&format!("{prefix}_psks")),
            );
            let builder = snow::Builder::with_resolver(name.parse().unwrap(), Box::new(Resolver::new(fixed)))
                .local_private_key(&s)
                .unwrap()
                .prologue(&prologue)
                .unwrap()
                .psk(3, &psk)
                .unwrap();
            if prefix == "init" {
                builder.build_initiator().unwrap()
            } else {
                builder.build_responder().unwrap()
            }
        };
        let (mut init, mut resp) = (build("init"), build("resp"));
        let messages = vector["messages"].as_array().unwrap();
        let mut buf = vec![0u8; 65535];
        let mut out = vec![0u8; 65535];
        for (i, message) in messages.iter().enumerate().take(3) {
            let payload = hex::decode(message["payload"].as_str().unwrap()).unwrap();
            let (sender, receiver) = if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
            let n = sender.write_message(&payload, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf[..n]), message["ciphertext"].as_str().unwrap());
            let m = receiver.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(out[..m], payload[..]);
        }
        assert_eq!(hex::encode(init.get_handshake_hash()), vector["handshake_hash"].as_str().unwrap());
        let (mut init, mut resp) = (init.into_transport_mode().unwrap(), resp.into_transport_mode().unwrap());
        for (i, message) in messages.iter().enumerate().skip(3) {
            let payload = hex::decode(message["payload"].as_str().unwrap()).unwrap();
            let (sender, receiver) = if i.is_multiple_of(2) { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
            let n = sender.write_message(&payload, &mut buf).unwrap();
            assert_eq!(hex::encode(&buf[..n]), message["ciphertext"].as_str().unwrap());
            let m = receiver.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(out[..m], payload[..]);
        }
    }

    #[test]
    fn rng_serves_the_fixed_key_once() {
        let fixed = EphemeralOverride::default();
        assert!(fixed.set([5u8; 32]));
        let resolver = Resolver::new(fixed);
        let mut rng = resolver.resolve_rng().unwrap();
        let mut dh = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.generate(&mut *rng).unwrap();
        assert_eq!(dh.privkey(), [5u8; 32]);
        dh.generate(&mut *rng).unwrap();
        assert_ne!(dh.privkey(), [5u8; 32]);
    }
}
