//! Noise handshakes and transports (sans-IO, on snow), with a post-quantum hybrid mode.
//!
//! [`Handshake`] turns payloads into handshake messages and back; the caller moves the bytes.
//! Once [`Handshake::is_finished`], [`Handshake::into_transport`] gives a [`Transport`] that
//! encrypts and decrypts the session's messages.
//!
//! # Protocols
//!
//! | [`Protocol`] | name |
//! | --- | --- |
//! | [`Protocol::XxSha256`] | `Noise_XX_25519_ChaChaPoly_SHA256` |
//! | [`Protocol::XxBlake2s`] | `Noise_XX_25519_ChaChaPoly_BLAKE2s` |
//! | [`Protocol::IkSha256`] | `Noise_IK_25519_ChaChaPoly_SHA256` |
//! | [`Protocol::XxHybridSha256`] | `Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768` |
//! | [`Protocol::XxAesGcmSha256`] | `Noise_XX_25519_AESGCM_SHA256` |
//! | [`Protocol::XxHybridAesGcmSha256`] | `Noise_XXpsk3_25519_AESGCM_SHA256+MLKEM768` |
//!
//! The classical ones are standard Noise and interoperate byte for byte with other
//! implementations (the caller's prologue is used unchanged). AESGCM is AES-256-GCM: on CPUs
//! with AES instructions ([`preferred_cipher`]) it is several times faster than ChaChaPoly.
//!
//! # The hybrid mode
//!
//! `Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768` runs standard
//! `Noise_XXpsk3_25519_ChaChaPoly_SHA256` with:
//!
//! - **prologue**: `0x00 0x1e || "ztmesh-noise-hybrid/1 MLKEM768" || caller's prologue` (the
//!   label's length as two big-endian bytes, the label, then the caller's prologue), so a
//!   classical peer, or anyone stripping the mode, derives different keys;
//! - **message 1** (initiator → responder): `e || AEAD(ek || payload)`, where `ek` is a fresh
//!   1184-byte ML-KEM-768 encapsulation key, checked by the responder (FIPS 203 §7.2). As in
//!   any psk mode, this AEAD key comes from public values only: message 1 is not
//!   confidential, but its bytes enter the transcript hash, so any change fails message 2;
//! - **message 2** (responder → initiator): `e || AEAD(s) || AEAD(ct || payload)`, where `ct`
//!   is the 1088-byte ML-KEM-768 ciphertext encapsulated to `ek`;
//! - **PSK**: both sides set
//!   `psk = HKDF-SHA256(salt = h, ikm = ML-KEM shared secret, info = "ztmesh-noise-hybrid/1 MLKEM768 psk")`,
//!   with `h` the Noise handshake hash after message 2, as the PSK at position 3;
//! - **message 3** (initiator → responder): `AEAD(s) || AEAD(payload)`, as in XXpsk3: the PSK
//!   is mixed in here, so message 3 and every transport key depend on X25519 and ML-KEM-768.
//!
//! `payload` is what the caller passes to [`Handshake::write_message`] and gets back from
//! [`Handshake::read_message`]; the KEM bytes never reach the caller. The ML-KEM decapsulation
//! key and shared secret are zeroized once used.
//!
//! # Failing closed
//!
//! A handshake whose [`Handshake::read_message`] fails, or whose write fails for any reason
//! other than the payload's size, is over: every later call returns [`NoiseError::State`].
//! Calls out of turn return [`NoiseError::State`] without harming the handshake. A transport
//! that fails to decrypt a message stays usable (its receiving nonce does not move).

use std::fmt;

use snow::params::NoiseParams;
use zeroize::Zeroizing;

use crate::rand::RandomError;
use crate::x25519;

mod hybrid;
mod records;
mod resolver;

pub use records::{RecordLayer, RekeyPolicy, MAX_RECORD_BODY};

use hybrid::Hybrid;
use resolver::{EphemeralOverride, Resolver};

/// The largest Noise message, handshake or transport, in bytes (Noise spec §3).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// A supported Noise protocol.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `Noise_XX_25519_ChaChaPoly_SHA256`: mutual authentication, static keys exchanged.
    XxSha256,
    /// `Noise_XX_25519_ChaChaPoly_BLAKE2s`: as [`Protocol::XxSha256`] with BLAKE2s.
    XxBlake2s,
    /// `Noise_IK_25519_ChaChaPoly_SHA256`: the initiator knows the responder's static key.
    IkSha256,
    /// `Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768`: XX with an ML-KEM-768 exchange
    /// feeding the PSK (see the [module docs](self)).
    XxHybridSha256,
    /// `Noise_XX_25519_AESGCM_SHA256`: as [`Protocol::XxSha256`] with AES-256-GCM.
    XxAesGcmSha256,
    /// `Noise_XXpsk3_25519_AESGCM_SHA256+MLKEM768`: as [`Protocol::XxHybridSha256`] with
    /// AES-256-GCM.
    XxHybridAesGcmSha256,
}

impl Protocol {
    /// Every supported protocol.
    pub const ALL: [Protocol; 6] = [
        Protocol::XxSha256,
        Protocol::XxBlake2s,
        Protocol::IkSha256,
        Protocol::XxHybridSha256,
        Protocol::XxAesGcmSha256,
        Protocol::XxHybridAesGcmSha256,
    ];

    /// Looks a protocol up by its full name, such as `Noise_XX_25519_ChaChaPoly_SHA256`.
    ///
    /// Fails with [`NoiseError::UnknownProtocol`] for any other name.
    pub fn from_name(name: &str) -> Result<Self, NoiseError> {
        Self::ALL.into_iter().find(|protocol| protocol.name() == name).ok_or(NoiseError::UnknownProtocol)
    }

    /// The protocol's full name.
    pub fn name(self) -> &'static str {
        match self {
            Self::XxSha256 => "Noise_XX_25519_ChaChaPoly_SHA256",
            Self::XxBlake2s => "Noise_XX_25519_ChaChaPoly_BLAKE2s",
            Self::IkSha256 => "Noise_IK_25519_ChaChaPoly_SHA256",
            Self::XxHybridSha256 => "Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768",
            Self::XxAesGcmSha256 => "Noise_XX_25519_AESGCM_SHA256",
            Self::XxHybridAesGcmSha256 => "Noise_XXpsk3_25519_AESGCM_SHA256+MLKEM768",
        }
    }

    /// Whether this is the post-quantum hybrid mode.
    pub fn is_hybrid(self) -> bool {
        matches!(self, Self::XxHybridSha256 | Self::XxHybridAesGcmSha256)
    }
}

/// The Noise cipher that is faster on this CPU: `AESGCM` where it has AES and carry-less
/// multiplication instructions (x86-64 AES-NI with PCLMULQDQ, AArch64 AES with PMULL),
/// `ChaChaPoly` otherwise (where AES-GCM would run in slower, table-free software).
pub fn preferred_cipher() -> &'static str {
    if has_aes_hardware() {
        "AESGCM"
    } else {
        "ChaChaPoly"
    }
}

#[cfg(target_arch = "x86_64")]
fn has_aes_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn has_aes_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn has_aes_hardware() -> bool {
    false
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a handshake needs to start.
#[derive(Clone, Copy)]
pub struct HandshakeConfig<'a> {
    /// The protocol both sides run.
    pub protocol: Protocol,
    /// This side's 32-byte X25519 static private key.
    pub static_private_key: &'a [u8],
    /// Data both sides must agree on, bound into the handshake (may be empty).
    pub prologue: &'a [u8],
    /// The peer's 32-byte static public key: required for the IK initiator, refused otherwise
    /// (the other roles learn it during the handshake: see
    /// [`Handshake::remote_static_public_key`]).
    pub remote_static_public_key: Option<&'a [u8]>,
}

impl fmt::Debug for HandshakeConfig<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("protocol", &self.protocol)
            .field("static_private_key", &"<redacted>")
            .field("prologue", &self.prologue)
            .field("remote_static_public_key", &self.remote_static_public_key)
            .finish()
    }
}

/// One side of a Noise handshake in progress.
pub struct Handshake {
    /// `None` once the handshake has failed (fail closed).
    state: Option<snow::HandshakeState>,
    protocol: Protocol,
    initiator: bool,
    /// How many handshake messages this side has written or read.
    message_index: usize,
    /// The ML-KEM side, in the hybrid mode.
    hybrid: Option<Hybrid>,
    #[cfg(any(test, feature = "testing"))]
    ephemeral_override: EphemeralOverride,
}

impl Handshake {
    /// Starts a handshake as the initiator (the side that writes the first message).
    ///
    /// Fails with [`NoiseError::KeyLength`] for a key that is not 32 bytes, and with
    /// [`NoiseError::MissingRemoteKey`], [`NoiseError::UnexpectedRemoteKey`] or
    /// [`NoiseError::InvalidRemoteKey`] for a remote static key that is missing (IK), not
    /// expected (any other role) or of small order.
    pub fn initiator(config: &HandshakeConfig<'_>) -> Result<Self, NoiseError> {
        Self::new(config, true)
    }

    /// Starts a handshake as the responder (the side that reads the first message).
    ///
    /// Fails as [`Handshake::initiator`] does; responders take no remote static key.
    pub fn responder(config: &HandshakeConfig<'_>) -> Result<Self, NoiseError> {
        Self::new(config, false)
    }

    /// Writes the next handshake message, carrying `payload`.
    ///
    /// The first message's payload is not confidential in XX or the hybrid mode (the hybrid
    /// mode encrypts it under a key derived from public values only), and no payload is
    /// authenticated before the handshake completes; see the Noise spec §7.7.
    /// Fails with [`NoiseError::State`] out of turn, after the end or after a failure, and with
    /// [`NoiseError::MessageSize`] if the message would exceed [`MAX_MESSAGE_LEN`] (the
    /// handshake stays usable: retry with a shorter payload).
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        self.ensure_turn(true)?;
        if payload.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageSize);
        }
        let result = self.write_unchecked(payload);
        if matches!(result, Err(error) if error != NoiseError::MessageSize) {
            self.fail();
        }
        result
    }

    /// Reads the peer's next handshake message and returns its payload.
    ///
    /// Fails with [`NoiseError::State`] out of turn or after the end (the handshake stays
    /// usable), and otherwise ends the handshake on failure: [`NoiseError::Decrypt`] when
    /// authentication fails, [`NoiseError::Malformed`] for a truncated message or missing KEM
    /// bytes, [`NoiseError::Hybrid`] for an invalid ML-KEM key, [`NoiseError::MessageSize`] for
    /// a message over [`MAX_MESSAGE_LEN`].
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        self.ensure_turn(false)?;
        let result = self.read_unchecked(message);
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Whether every handshake message has been written or read.
    pub fn is_finished(&self) -> bool {
        self.state.as_ref().is_some_and(snow::HandshakeState::is_handshake_finished)
    }

    /// Whether the next step is [`Handshake::write_message`] (rather than reading, or nothing).
    pub fn is_my_turn(&self) -> bool {
        self.state.as_ref().is_some_and(|state| state.is_my_turn() && !state.is_handshake_finished())
    }

    /// The peer's static public key, once known (from the start for the IK initiator).
    pub fn remote_static_public_key(&self) -> Option<[u8; 32]> {
        self.state.as_ref()?.get_remote_static()?.try_into().ok()
    }

    /// The current handshake hash `h`; once finished, a unique identifier of the session that
    /// both sides share (for channel binding). Empty after a failure.
    pub fn handshake_hash(&self) -> Vec<u8> {
        self.state.as_ref().map(|state| state.get_handshake_hash().to_vec()).unwrap_or_default()
    }

    /// The protocol this handshake runs.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Turns a finished handshake into a transport.
    ///
    /// Fails with [`NoiseError::State`] if the handshake is not finished or has failed.
    pub fn into_transport(self) -> Result<Transport, NoiseError> {
        let state = self.state.ok_or(NoiseError::State)?;
        if !state.is_handshake_finished() {
            return Err(NoiseError::State);
        }
        let handshake_hash = state.get_handshake_hash().to_vec();
        let inner = state.into_transport_mode().map_err(|_| NoiseError::Internal)?;
        Ok(Transport { inner, handshake_hash, protocol: self.protocol })
    }

    /// **Test vectors only**: makes `key` this side's next ephemeral private key instead of a
    /// fresh random one. Reusing an ephemeral key destroys Noise's security; never call this
    /// outside tests.
    ///
    /// Allowed only before the first message is written or read ([`NoiseError::State`]);
    /// `key` must be 32 bytes ([`NoiseError::KeyLength`]).
    /// Only with the feature `testing`.
    #[doc(hidden)]
    #[cfg(any(test, feature = "testing"))]
    pub fn set_fixed_ephemeral_key_for_testing_only(&mut self, key: &[u8]) -> Result<(), NoiseError> {
        let key: [u8; x25519::KEY_LEN] = key.try_into().map_err(|_| NoiseError::KeyLength)?;
        if self.state.is_none() || self.message_index != 0 {
            return Err(NoiseError::State);
        }
        if !self.ephemeral_override.set(key) {
            return Err(NoiseError::Internal);
        }
        Ok(())
    }

    fn new(config: &HandshakeConfig<'_>, initiator: bool) -> Result<Self, NoiseError> {
        let protocol = config.protocol;
        let static_key =
            x25519::PrivateKey::from_bytes(config.static_private_key).map_err(|_| NoiseError::KeyLength)?;
        let needs_remote = initiator && protocol == Protocol::IkSha256;
        match (needs_remote, config.remote_static_public_key) {
            (true, None) => return Err(NoiseError::MissingRemoteKey),
            (false, Some(_)) => return Err(NoiseError::UnexpectedRemoteKey),
            (true, Some(remote)) => {
                if remote.len() != x25519::KEY_LEN {
                    return Err(NoiseError::KeyLength);
                }
                // Refuse small-order keys now rather than failing on the first message.
                static_key.diffie_hellman(remote).map_err(|_| NoiseError::InvalidRemoteKey)?;
            }
            (false, None) => {}
        }
        drop(static_key);

        let params: NoiseParams = snow_name(protocol).parse().map_err(|_| NoiseError::Internal)?;
        let prologue = if protocol.is_hybrid() { hybrid::prologue(config.prologue) } else { config.prologue.to_vec() };
        let ephemeral_override = EphemeralOverride::default();
        let resolver = Box::new(Resolver::new(ephemeral_override.clone()));
        let mut builder = snow::Builder::with_resolver(params, resolver)
            .local_private_key(config.static_private_key)
            .and_then(|builder| builder.prologue(&prologue))
            .map_err(|_| NoiseError::Internal)?;
        if let Some(remote) = config.remote_static_public_key {
            builder = builder.remote_public_key(remote).map_err(|_| NoiseError::Internal)?;
        }
        let state = if initiator { builder.build_initiator() } else { builder.build_responder() }
            .map_err(|_| NoiseError::Internal)?;
        Ok(Self {
            state: Some(state),
            protocol,
            initiator,
            message_index: 0,
            hybrid: protocol.is_hybrid().then(Hybrid::default),
            #[cfg(any(test, feature = "testing"))]
            ephemeral_override,
        })
    }

    /// Checks that the handshake is live and that it is this side's turn to write or read.
    fn ensure_turn(&self, write: bool) -> Result<(), NoiseError> {
        match &self.state {
            Some(state) if !state.is_handshake_finished() && state.is_my_turn() == write => Ok(()),
            _ => Err(NoiseError::State),
        }
    }

    /// Ends the handshake: every later call fails with [`NoiseError::State`].
    fn fail(&mut self) {
        self.state = None;
        self.hybrid = None;
    }

    fn write_unchecked(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let state = self.state.as_mut().ok_or(NoiseError::State)?;
        let outgoing = match &self.hybrid {
            Some(hybrid) => Some(hybrid.prepare_write(self.initiator, self.message_index)?),
            None => None,
        };
        let body = match &outgoing {
            Some(outgoing) if !outgoing.prefix.is_empty() => {
                let mut body = Zeroizing::new(Vec::with_capacity(outgoing.prefix.len() + payload.len()));
                body.extend_from_slice(&outgoing.prefix);
                body.extend_from_slice(payload);
                body
            }
            _ => Zeroizing::new(payload.to_vec()),
        };
        // snow wants room for the payload's tag even when the payload is not encrypted; the
        // message-length limit itself is checked by snow against MAX_MESSAGE_LEN.
        let mut message = vec![0u8; (body.len() + HANDSHAKE_OVERHEAD_MAX + TAG_LEN).min(MAX_MESSAGE_LEN + TAG_LEN)];
        let len = state.write_message(&body, &mut message).map_err(|error| match error {
            // Only a message too long for its buffer or for MAX_MESSAGE_LEN.
            snow::Error::Input => NoiseError::MessageSize,
            other => handshake_error(other),
        })?;
        message.truncate(len);
        if let (Some(hybrid), Some(outgoing)) = (self.hybrid.as_mut(), outgoing) {
            hybrid.commit_write(outgoing, state)?;
        }
        self.message_index += 1;
        Ok(message)
    }

    fn read_unchecked(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageSize);
        }
        let state = self.state.as_mut().ok_or(NoiseError::State)?;
        let mut payload = Zeroizing::new(vec![0u8; message.len()]);
        let len = state.read_message(message, &mut payload).map_err(|error| match error {
            snow::Error::Input => NoiseError::Malformed,
            other => handshake_error(other),
        })?;
        payload.truncate(len);
        let kem_len = match self.hybrid.as_mut() {
            Some(hybrid) => hybrid.read(self.initiator, self.message_index, &payload, state)?,
            None => 0,
        };
        self.message_index += 1;
        if kem_len == 0 {
            Ok(std::mem::take(&mut *payload))
        } else {
            Ok(payload.get(kem_len..).ok_or(NoiseError::Malformed)?.to_vec())
        }
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("protocol", &self.protocol)
            .field("initiator", &self.initiator)
            .field("message_index", &self.message_index)
            .field("failed", &self.state.is_none())
            .finish_non_exhaustive()
    }
}

/// An established Noise session: encrypts outgoing and decrypts incoming messages in order.
///
/// Each direction has its own key and a 64-bit nonce that counts messages; messages must be
/// decrypted in the order they were encrypted.
pub struct Transport {
    inner: snow::TransportState,
    handshake_hash: Vec<u8>,
    protocol: Protocol,
}

impl Transport {
    /// Encrypts `plaintext` into a new message (16 bytes longer).
    ///
    /// Fails with [`NoiseError::MessageSize`] if the message would exceed [`MAX_MESSAGE_LEN`],
    /// and with [`NoiseError::State`] once the sending nonce is exhausted.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if plaintext.len() > MAX_MESSAGE_LEN - TAG_LEN {
            return Err(NoiseError::MessageSize);
        }
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        let len = self.encrypt_into(plaintext, &mut out)?;
        out.truncate(len);
        Ok(out)
    }

    /// Encrypts `plaintext` into `out` and returns the message length (`plaintext.len() + 16`).
    ///
    /// Fails as [`Transport::encrypt`] does, and with [`NoiseError::MessageSize`] if `out` is
    /// too small.
    pub fn encrypt_into(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if plaintext.len() > MAX_MESSAGE_LEN - TAG_LEN || out.len() < plaintext.len() + TAG_LEN {
            return Err(NoiseError::MessageSize);
        }
        self.inner.write_message(plaintext, out).map_err(transport_error)
    }

    /// Decrypts the next message from the peer.
    ///
    /// Fails with [`NoiseError::Decrypt`] if the message is not authentic (the transport stays
    /// usable and the nonce does not move), and with [`NoiseError::MessageSize`] for a message
    /// over [`MAX_MESSAGE_LEN`].
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if ciphertext.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageSize);
        }
        let mut out = vec![0u8; ciphertext.len()];
        let len = self.decrypt_into(ciphertext, &mut out)?;
        out.truncate(len);
        Ok(out)
    }

    /// Decrypts the next message from the peer into `out` and returns the plaintext length.
    ///
    /// Fails as [`Transport::decrypt`] does, and with [`NoiseError::MessageSize`] if `out` is
    /// shorter than the plaintext. On failure, `out` holds no plaintext.
    pub fn decrypt_into(&mut self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if ciphertext.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::MessageSize);
        }
        let Some(plaintext_len) = ciphertext.len().checked_sub(TAG_LEN) else {
            return Err(NoiseError::Decrypt);
        };
        if out.len() < plaintext_len {
            return Err(NoiseError::MessageSize);
        }
        self.inner.read_message(ciphertext, out).map_err(|error| {
            let touched = out.len().min(ciphertext.len());
            out[..touched].fill(0);
            transport_error(error)
        })
    }

    /// Replaces the sending key with one derived from it (Noise spec §11.3); the peer must call
    /// [`Transport::rekey_incoming`] at the same point of the message stream.
    pub fn rekey_outgoing(&mut self) {
        self.inner.rekey_outgoing();
    }

    /// Replaces the receiving key with one derived from it, matching the peer's
    /// [`Transport::rekey_outgoing`].
    pub fn rekey_incoming(&mut self) {
        self.inner.rekey_incoming();
    }

    /// The nonce of the next outgoing message (how many have been encrypted).
    pub fn sending_nonce(&self) -> u64 {
        self.inner.sending_nonce()
    }

    /// The nonce of the next incoming message (how many have been decrypted).
    pub fn receiving_nonce(&self) -> u64 {
        self.inner.receiving_nonce()
    }

    /// The handshake hash of the finished handshake, identical on both sides.
    pub fn handshake_hash(&self) -> &[u8] {
        &self.handshake_hash
    }

    /// The peer's static public key.
    pub fn remote_static_public_key(&self) -> Option<[u8; 32]> {
        self.inner.get_remote_static()?.try_into().ok()
    }

    /// The protocol the handshake ran.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("protocol", &self.protocol)
            .field("sending_nonce", &self.sending_nonce())
            .field("receiving_nonce", &self.receiving_nonce())
            .finish_non_exhaustive()
    }
}

/// Why a Noise operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseError {
    /// [`Protocol::from_name`] got a name that is not a supported protocol.
    UnknownProtocol,
    /// A static private key, remote static public key or fixed ephemeral key was not 32 bytes.
    KeyLength,
    /// The IK initiator was started without the responder's static public key.
    MissingRemoteKey,
    /// A remote static public key was given to a role that learns it during the handshake.
    UnexpectedRemoteKey,
    /// The remote static public key given to the IK initiator is of small order.
    InvalidRemoteKey,
    /// A call out of turn, after the handshake finished or failed, before it finished
    /// ([`Handshake::into_transport`]), or once a transport nonce is exhausted.
    State,
    /// A handshake or transport message failed authentication (or a key agreement with the
    /// peer's keys failed). Deliberately says nothing more.
    Decrypt,
    /// A message or payload over [`MAX_MESSAGE_LEN`], or an output buffer too small.
    MessageSize,
    /// A handshake message was truncated, or the hybrid KEM bytes were missing.
    Malformed,
    /// The peer's ML-KEM-768 encapsulation key failed the FIPS 203 input check.
    Hybrid,
    /// The operating system's random number generator failed.
    Random,
    /// The underlying library failed in a way that should be impossible.
    Internal,
}

impl fmt::Display for NoiseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownProtocol => "unknown or unsupported Noise protocol name",
            Self::KeyLength => "Noise keys must be 32 bytes",
            Self::MissingRemoteKey => "the IK initiator needs the responder's static public key",
            Self::UnexpectedRemoteKey => "only the IK initiator takes a remote static public key",
            Self::InvalidRemoteKey => "invalid remote static public key",
            Self::State => "Noise handshake or transport used out of turn, too early, or after it ended",
            Self::Decrypt => "decryption failed",
            Self::MessageSize => "Noise message, payload or output buffer has the wrong size",
            Self::Malformed => "malformed Noise handshake message",
            Self::Hybrid => "invalid ML-KEM-768 encapsulation key",
            Self::Random => "the operating system's random number generator failed",
            Self::Internal => "internal Noise failure",
        })
    }
}

impl std::error::Error for NoiseError {}

impl crate::ErrorCode for NoiseError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownProtocol => "ERR_NOISE_PROTOCOL",
            Self::KeyLength => "ERR_KEY_LENGTH",
            Self::MissingRemoteKey | Self::UnexpectedRemoteKey | Self::InvalidRemoteKey => "ERR_NOISE_CONFIG",
            Self::State => "ERR_NOISE_STATE",
            Self::Decrypt => "ERR_NOISE_DECRYPT",
            Self::MessageSize => "ERR_NOISE_MESSAGE_SIZE",
            Self::Malformed => "ERR_NOISE_MALFORMED",
            Self::Hybrid => "ERR_NOISE_HYBRID",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_INTERNAL",
        }
    }
}

impl From<RandomError> for NoiseError {
    fn from(_: RandomError) -> Self {
        Self::Random
    }
}

/// Length of a ChaCha20-Poly1305 tag.
const TAG_LEN: usize = 16;

/// The most a handshake message of our patterns adds to its payload: `e` (32), an encrypted
/// `s` (48) and the payload's tag (16).
const HANDSHAKE_OVERHEAD_MAX: usize = 96;

/// The standard Noise protocol snow runs for `protocol`.
fn snow_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::XxHybridSha256 => "Noise_XXpsk3_25519_ChaChaPoly_SHA256",
        Protocol::XxHybridAesGcmSha256 => "Noise_XXpsk3_25519_AESGCM_SHA256",
        classical => classical.name(),
    }
}

/// Maps a snow error during the handshake, other than `Input` (whose meaning depends on the
/// direction). Turn and state checks happen before snow is called, so a snow state error is
/// unexpected.
fn handshake_error(error: snow::Error) -> NoiseError {
    match error {
        snow::Error::Decrypt | snow::Error::Dh => NoiseError::Decrypt,
        snow::Error::Input => NoiseError::Malformed,
        snow::Error::Rng => NoiseError::Random,
        _ => NoiseError::Internal,
    }
}

/// Maps a snow error from a transport.
fn transport_error(error: snow::Error) -> NoiseError {
    match error {
        snow::Error::Decrypt => NoiseError::Decrypt,
        snow::Error::Input => NoiseError::MessageSize,
        snow::Error::State(_) => NoiseError::State,
        _ => NoiseError::Internal,
    }
}

#[cfg(test)]
mod tests;
