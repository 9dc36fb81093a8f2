//! Noise handshakes and transports (sans-IO).

use std::time::Duration;

use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;
use ztmesh_core::noise::{self, HandshakeConfig, Protocol};

use crate::error::{byte_length, invalid_argument, sync, Failure, Result};

/// The Noise cipher that is faster on this CPU: `AESGCM` with AES instructions, else `ChaChaPoly`.
#[napi]
pub fn noise_preferred_cipher() -> &'static str {
    noise::preferred_cipher()
}

/// Options of a Noise handshake.
#[napi(object)]
pub struct NoiseOptions {
    /// The full protocol name, e.g. `Noise_XX_25519_ChaChaPoly_SHA256`.
    pub pattern: String,
    /// This side's raw 32-byte X25519 static private key.
    pub static_private_key: Buffer,
    /// Bytes both sides must agree on (bound into the handshake hash).
    pub prologue: Option<Buffer>,
    /// The responder's static public key (required by an IK initiator).
    pub remote_static_public_key: Option<Buffer>,
}

/// A Noise handshake in progress.
#[napi]
pub struct NoiseHandshake {
    inner: Option<noise::Handshake>,
}

#[napi]
impl NoiseHandshake {
    /// Starts a handshake as the initiator.
    #[napi(factory)]
    pub fn initiator(options: NoiseOptions) -> Result<NoiseHandshake> {
        sync(|| Ok(NoiseHandshake { inner: Some(noise::Handshake::initiator(&config(&options)?)?) }))
    }

    /// Starts a handshake as the responder.
    #[napi(factory)]
    pub fn responder(options: NoiseOptions) -> Result<NoiseHandshake> {
        sync(|| Ok(NoiseHandshake { inner: Some(noise::Handshake::responder(&config(&options)?)?) }))
    }

    /// Writes the next handshake message carrying `payload`.
    #[napi]
    pub fn write_message(&mut self, payload: Option<&[u8]>) -> Result<Buffer> {
        sync(|| Ok(self.state()?.write_message(payload.unwrap_or_default())?.into()))
    }

    /// Reads the peer's next handshake message and returns its payload.
    #[napi]
    pub fn read_message(&mut self, message: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.state()?.read_message(message)?.into()))
    }

    /// Whether the handshake is complete.
    #[napi(getter)]
    pub fn is_finished(&self) -> bool {
        self.inner.as_ref().is_some_and(noise::Handshake::is_finished)
    }

    /// Whether the next call should be `writeMessage`.
    #[napi(getter)]
    pub fn is_my_turn(&self) -> bool {
        self.inner.as_ref().is_some_and(noise::Handshake::is_my_turn)
    }

    /// The peer's static public key, once the handshake has revealed it.
    #[napi(getter)]
    pub fn remote_static_public_key(&self) -> Option<Buffer> {
        self.inner.as_ref().and_then(|h| h.remote_static_public_key()).map(|k| k.to_vec().into())
    }

    /// The handshake hash (channel binding), final once the handshake is finished.
    #[napi(getter)]
    pub fn handshake_hash(&self) -> Buffer {
        self.inner.as_ref().map(|h| h.handshake_hash()).unwrap_or_default().into()
    }

    /// The protocol name.
    #[napi(getter)]
    pub fn protocol(&self) -> Option<&'static str> {
        self.inner.as_ref().map(|h| h.protocol().name())
    }

    /// Consumes the finished handshake into a transport; the handshake is unusable afterwards.
    // A napi method cannot take `self` by value; the handshake is moved out of `inner` instead.
    #[allow(clippy::wrong_self_convention)]
    #[napi]
    pub fn into_transport(&mut self) -> Result<NoiseTransport> {
        sync(|| {
            let handshake = self.inner.take().ok_or_else(used_up)?;
            if !handshake.is_finished() {
                self.inner = Some(handshake);
                return Err(Failure::new("ERR_NOISE_STATE", "handshake is not finished"));
            }
            Ok(NoiseTransport { inner: Some(handshake.into_transport()?) })
        })
    }
}

impl NoiseHandshake {
    fn state(&mut self) -> std::result::Result<&mut noise::Handshake, Failure> {
        self.inner.as_mut().ok_or_else(used_up)
    }
}

/// An established Noise session: each direction has its own key and nonce counter.
#[napi]
pub struct NoiseTransport {
    /// `None` once moved into a record layer.
    inner: Option<noise::Transport>,
}

#[napi]
impl NoiseTransport {
    /// Encrypts one message (at most 65519 bytes of plaintext).
    #[napi]
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.state()?.encrypt(plaintext)?.into()))
    }

    /// Decrypts one message; throws `ERR_NOISE_DECRYPT` if it is not authentic.
    #[napi]
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.state()?.decrypt(ciphertext)?.into()))
    }

    /// Encrypts into `out` (≥ plaintext.length + 16 bytes); returns the length.
    #[napi]
    pub fn encrypt_into(&mut self, plaintext: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.state()?.encrypt_into(plaintext, &mut out)?))
    }

    /// Decrypts into `out`; returns the plaintext length.
    #[napi]
    pub fn decrypt_into(&mut self, ciphertext: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.state()?.decrypt_into(ciphertext, &mut out)?))
    }

    /// Replaces the sending key (Noise §11.3); the peer must `rekeyIncoming` at the same point.
    #[napi]
    pub fn rekey_outgoing(&mut self) -> Result<()> {
        sync(|| {
            self.state()?.rekey_outgoing();
            Ok(())
        })
    }

    /// Replaces the receiving key.
    #[napi]
    pub fn rekey_incoming(&mut self) -> Result<()> {
        sync(|| {
            self.state()?.rekey_incoming();
            Ok(())
        })
    }

    /// How many messages were sent.
    #[napi(getter)]
    pub fn sending_nonce(&mut self) -> Result<f64> {
        sync(|| Ok(self.state()?.sending_nonce() as f64))
    }

    /// How many messages were received.
    #[napi(getter)]
    pub fn receiving_nonce(&mut self) -> Result<f64> {
        sync(|| Ok(self.state()?.receiving_nonce() as f64))
    }

    /// The handshake hash of the session (channel binding).
    #[napi(getter)]
    pub fn handshake_hash(&mut self) -> Result<Buffer> {
        sync(|| Ok(self.state()?.handshake_hash().to_vec().into()))
    }

    /// The peer's static public key.
    #[napi(getter)]
    pub fn remote_static_public_key(&mut self) -> Result<Option<Buffer>> {
        sync(|| Ok(self.state()?.remote_static_public_key().map(|k| k.to_vec().into())))
    }

    /// Moves the session into a record layer (framing, rekeying); the transport is unusable
    /// afterwards. Rekeys after `rekeyAfterRecords` records (default 65,536) or `rekeyAfterMs`
    /// (default 10 minutes).
    #[allow(clippy::wrong_self_convention)]
    #[napi]
    pub fn into_record_layer(
        &mut self,
        rekey_after_records: Option<f64>,
        rekey_after_ms: Option<f64>,
    ) -> Result<NoiseRecordLayer> {
        sync(|| {
            let mut policy = noise::RekeyPolicy::default();
            if let Some(records) = rekey_after_records {
                policy.after_records = positive_count(records, "rekeyAfterRecords")?;
            }
            if let Some(ms) = rekey_after_ms {
                policy.after = Duration::from_millis(positive_count(ms, "rekeyAfterMs")?);
            }
            let transport = self.inner.take().ok_or_else(used_up)?;
            Ok(NoiseRecordLayer { inner: noise::RecordLayer::new(transport, policy) })
        })
    }
}

impl NoiseTransport {
    fn state(&mut self) -> std::result::Result<&mut noise::Transport, Failure> {
        self.inner.as_mut().ok_or_else(used_up)
    }
}

/// The record layer of a Noise link: frames, encrypts and rekeys the link's data.
#[napi]
pub struct NoiseRecordLayer {
    inner: noise::RecordLayer,
}

impl NoiseRecordLayer {
    /// Wraps a core record layer (the Noise link's, once established).
    pub(crate) fn from_core(inner: noise::RecordLayer) -> Self {
        Self { inner }
    }
}

#[napi]
impl NoiseRecordLayer {
    /// The room `sealInto` needs for `dataLength` bytes.
    #[napi]
    pub fn sealed_length_bound(&self, data_length: u32) -> f64 {
        noise::RecordLayer::sealed_len_bound(data_length as usize) as f64
    }

    /// The room `openInto` needs for a `chunkLength`-byte chunk.
    #[napi]
    pub fn opened_length_bound(&self, chunk_length: u32) -> f64 {
        self.inner.opened_len_bound(chunk_length as usize) as f64
    }

    /// Writes the records that carry `data` to the front of `out`; returns their length.
    #[napi]
    pub fn seal_into(&mut self, data: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.inner.seal_into(data, &mut out)?))
    }

    /// Writes the data of the records `chunk` completes to the front of `out`; returns its
    /// length. Throws `ERR_NOISE_DECRYPT` or `ERR_NOISE_MALFORMED` (and stays failed) on a bad
    /// record.
    #[napi]
    pub fn open_into(&mut self, chunk: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.inner.open_into(chunk, &mut out)?))
    }

    /// Bytes of an unfinished incoming record.
    #[napi(getter)]
    pub fn buffered(&self) -> u32 {
        u32::try_from(self.inner.buffered()).unwrap_or(u32::MAX)
    }
}

/// A whole number ≥ 1 from JavaScript.
pub(crate) fn positive_count(value: f64, name: &str) -> std::result::Result<u64, Failure> {
    if value.fract() != 0.0 || !(1.0..=9_007_199_254_740_991.0).contains(&value) {
        return Err(invalid_argument(&format!("{name} must be a whole number of at least 1")));
    }
    Ok(value as u64)
}

fn config(options: &NoiseOptions) -> std::result::Result<HandshakeConfig<'_>, Failure> {
    Ok(HandshakeConfig {
        protocol: Protocol::from_name(&options.pattern)?,
        static_private_key: &options.static_private_key,
        prologue: options.prologue.as_deref().unwrap_or_default(),
        remote_static_public_key: options.remote_static_public_key.as_deref(),
    })
}

fn used_up() -> Failure {
    Failure::new("ERR_NOISE_STATE", "handshake or transport already consumed, or failed")
}
