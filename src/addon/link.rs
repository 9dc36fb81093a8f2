//! Noise links (sans-IO): JavaScript moves the bytes between a socket and a link handshake, then
//! between the socket and the link's record layer.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::link::{self, CipherSetting, LinkConfig, LinkMode, Role};
use ztmesh_core::pki::{self, PeerPolicy};

use crate::error::{invalid_argument, sync, Failure, Result};
use crate::noise::{positive_count, NoiseRecordLayer};
use crate::pki::{peer_identity, pins_arg, PeerIdentity, RevocationSet, TrustStore};
use crate::signer::Signer;

/// What every link of one side shares.
#[napi(object)]
pub struct NoiseLinkInit {
    /// This device's certificate followed by its CA chain, PEM.
    pub chain_pem: String,
    /// The tenant every peer must belong to.
    pub expected_tenant: Option<String>,
    /// The device id the peer must have.
    pub expected_device: Option<String>,
    /// Accepted peer SPKI SHA-256 hashes, hex.
    pub pins: Option<Vec<String>>,
    /// `'XX_HYBRID'` (default: X25519 + ML-KEM-768) or `'XX'`.
    pub pattern: Option<String>,
    /// `'auto'` (default), `'AESGCM'` or `'ChaChaPoly'`.
    pub cipher: Option<String>,
    /// Rekey after this many records sent (default 65,536).
    pub rekey_after_records: Option<f64>,
    /// Rekey after this many ms (default 10 minutes).
    pub rekey_after_ms: Option<f64>,
}

/// The settings of one side's links: credentials, trust, revocations and rules.
#[napi]
pub struct NoiseLinkContext {
    inner: Arc<LinkConfig>,
}

#[napi]
impl NoiseLinkContext {
    /// A context; `signer` holds the certificate's key (else `ERR_KEY_MISMATCH`). The trust and
    /// the revocations are copied; replace the revocations with `setRevocations`.
    #[napi(constructor)]
    pub fn new(init: NoiseLinkInit, trust: &TrustStore, revocations: &RevocationSet, signer: &Signer) -> Result<Self> {
        sync(|| {
            let chain = pki::pem::parse_certificates(&init.chain_pem)?;
            let signer = signer.for_chain(&chain)?;
            let mut config = LinkConfig::new(chain, signer, trust.inner.clone())?;
            config.set_revocations(revocations.inner.clone());
            config.policy = PeerPolicy {
                expected_tenant: init.expected_tenant,
                expected_device: init.expected_device,
                ..PeerPolicy::default()
            };
            if let Some(pins) = init.pins {
                config.policy.pins = Some(pins_arg(&pins)?);
            }
            config.mode = match init.pattern.as_deref() {
                None | Some("XX_HYBRID") => LinkMode::Hybrid,
                Some("XX") => LinkMode::Classical,
                Some(_) => return Err(invalid_argument("pattern must be 'XX_HYBRID' or 'XX'")),
            };
            config.cipher = match init.cipher.as_deref() {
                None | Some("auto") => CipherSetting::Auto,
                Some("AESGCM") => CipherSetting::AesGcm,
                Some("ChaChaPoly") => CipherSetting::ChaChaPoly,
                Some(_) => return Err(invalid_argument("cipher must be 'auto', 'AESGCM' or 'ChaChaPoly'")),
            };
            if let Some(records) = init.rekey_after_records {
                config.rekey.after_records = positive_count(records, "rekeyAfterMessages")?;
            }
            if let Some(ms) = init.rekey_after_ms {
                config.rekey.after = Duration::from_millis(positive_count(ms, "rekeyAfterMs")?);
            }
            Ok(NoiseLinkContext { inner: Arc::new(config) })
        })
    }

    /// A new link as the initiator; its first flight comes out of the first `feed`. The static
    /// key is fresh unless `staticPrivateKey` (32 bytes) is given.
    #[napi]
    pub fn initiator(&self, static_private_key: Option<&[u8]>) -> Result<NoiseLinkHandshake> {
        self.start(Role::Initiator, static_private_key)
    }

    /// A new link as the responder.
    #[napi]
    pub fn responder(&self, static_private_key: Option<&[u8]>) -> Result<NoiseLinkHandshake> {
        self.start(Role::Responder, static_private_key)
    }

    /// Replaces the revocations (copied): every peer decided from now on is decided under them,
    /// on handshakes already under way too.
    #[napi]
    pub fn set_revocations(&self, revocations: &RevocationSet) {
        self.inner.set_revocations(revocations.inner.clone());
    }
}

impl NoiseLinkContext {
    fn start(&self, role: Role, static_private_key: Option<&[u8]>) -> Result<NoiseLinkHandshake> {
        sync(|| {
            let handshake = link::LinkHandshake::new(Arc::clone(&self.inner), role, static_private_key)?;
            Ok(NoiseLinkHandshake { inner: Some(handshake), rest: Vec::new() })
        })
    }
}

/// One link's handshake: feed it the socket's bytes, send what it gives back.
#[napi]
pub struct NoiseLinkHandshake {
    /// `None` once moved into a record layer.
    inner: Option<link::LinkHandshake>,
    /// The bytes after the handshake, kept by `intoRecordLayer` for `takeRest`.
    rest: Vec<u8>,
}

#[napi]
impl NoiseLinkHandshake {
    /// Processes bytes read from the socket (none for the initiator's first flight) and returns
    /// the bytes to send (possibly empty). Throws the typed reason, for good: `ERR_FRAME_TOO_LARGE`,
    /// `ERR_NOISE_PROTOCOL`, `ERR_NOISE_IDENTITY`, a PKI code, a Noise code…
    #[napi]
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Buffer> {
        sync(|| {
            let handshake = self.state()?;
            handshake.feed(chunk)?;
            Ok(handshake.take_output().into())
        })
    }

    /// The socket ended during the handshake: throws what that means here (`ERR_NOISE_REFUSED`
    /// for an initiator the responder did not confirm, else `ERR_NOISE_MALFORMED`).
    #[napi]
    pub fn peer_closed(&mut self) -> Result<()> {
        sync(|| Err(self.state()?.peer_closed().into()))
    }

    /// Whether the handshake is done and the peer verified.
    #[napi(getter)]
    pub fn is_established(&self) -> bool {
        self.inner.as_ref().is_some_and(link::LinkHandshake::is_established)
    }

    /// The verified peer, once established.
    #[napi(getter)]
    pub fn peer(&self) -> Option<PeerIdentity> {
        self.inner.as_ref().and_then(|h| h.peer()).cloned().map(peer_identity)
    }

    /// The full Noise protocol name, once known.
    #[napi(getter)]
    pub fn protocol(&self) -> Option<&'static str> {
        self.inner.as_ref().and_then(|h| h.protocol()).map(|p| p.name())
    }

    /// Moves the established link into its record layer; `takeRest` then gives the bytes that
    /// arrived after the handshake (the first records, to open before anything else).
    // A napi method cannot take `self` by value; the handshake is moved out of `inner` instead.
    #[allow(clippy::wrong_self_convention)]
    #[napi]
    pub fn into_record_layer(&mut self) -> Result<NoiseRecordLayer> {
        sync(|| {
            let established = self.inner.take().ok_or_else(used_up)?.into_established()?;
            self.rest = established.rest;
            Ok(NoiseRecordLayer::from_core(established.records))
        })
    }

    /// The bytes that arrived after the handshake (once, after `intoRecordLayer`).
    #[napi]
    pub fn take_rest(&mut self) -> Buffer {
        std::mem::take(&mut self.rest).into()
    }
}

impl NoiseLinkHandshake {
    fn state(&mut self) -> std::result::Result<&mut link::LinkHandshake, Failure> {
        self.inner.as_mut().ok_or_else(used_up)
    }
}

fn used_up() -> Failure {
    Failure::new("ERR_NOISE_STATE", "link handshake already moved into its record layer")
}
