//! Mutual TLS 1.3 sessions (sans-IO): JavaScript moves the bytes between a socket and a session.

use std::sync::Arc;

use napi::bindgen_prelude::BufferSlice;
use napi_derive::napi;
use ztmesh_core::pki::{self, PeerPolicy};
use ztmesh_core::tls::{self, ClientSettings, PqPolicy, ServerSettings};

use crate::error::{byte_length, invalid_argument, sync, Failure, Result};
use crate::pki::{peer_identity, PeerIdentity, RevocationSet};
use crate::signer::Signer;

/// What a TLS context needs beside its signer: this device's chain, the trust anchors and the
/// policy.
#[napi(object)]
pub struct TlsContextInit {
    /// This device's certificate followed by its CA chain, PEM.
    pub chain_pem: String,
    /// The trust anchors, PEM.
    pub trust_pem: String,
    /// `'prefer'` (default: X25519MLKEM768, X25519 fallback), `'require'` or `'off'`.
    pub pq: Option<String>,
    /// The tenant every peer must belong to.
    pub expected_tenant: Option<String>,
    /// The device id the peer must have (clients: the server they dial).
    pub expected_device: Option<String>,
    /// Accepted peer SPKI SHA-256 hashes, hex.
    pub pins: Option<Vec<String>>,
    /// Session resumption (default on).
    pub resumption: Option<bool>,
    /// Servers: whether clients may present no certificate (default false); their sessions are
    /// established with no `peer`.
    pub anonymous_clients: Option<bool>,
    /// Servers: the ALPN protocols offered (default `['ztmesh/1']`); the staff page's server
    /// offers `['http/1.1']`, what a browser asks for.
    pub alpn: Option<Vec<String>>,
}

/// What a client with no certificate needs: the pinned root key and who the server must be.
#[napi(object)]
pub struct AnonymousTlsInit {
    /// SHA-256 of the root's SubjectPublicKeyInfo, hex: the server's chain must hold that root and
    /// lead to it.
    pub root_fingerprint: String,
    /// The tenant the server must belong to.
    pub expected_tenant: Option<String>,
    /// The device id the server must have.
    pub expected_device: Option<String>,
    /// A role the server's certificate must carry.
    pub required_role: Option<String>,
    /// `'prefer'` (default), `'require'` or `'off'`.
    pub pq: Option<String>,
}

/// A server context: accepts sessions; its trust and revocations can be swapped live.
#[napi]
pub struct TlsServerContext {
    inner: Arc<tls::TlsServerContext>,
}

#[napi]
impl TlsServerContext {
    /// A server context; `signer` holds the certificate's key (else `ERR_KEY_MISMATCH`).
    #[napi(constructor)]
    pub fn new(init: TlsContextInit, signer: &Signer) -> Result<Self> {
        sync(|| {
            let parts = Parts::from_init(init, signer)?;
            let mut settings = ServerSettings::new(parts.chain, parts.signer, parts.trust);
            (settings.policy, settings.pq) = (parts.policy, parts.pq);
            if let Some(resumption) = parts.resumption {
                settings.resumption = resumption;
            }
            settings.anonymous_clients = parts.anonymous_clients;
            if let Some(alpn) = parts.alpn {
                settings.alpn = alpn;
            }
            Ok(TlsServerContext { inner: Arc::new(tls::TlsServerContext::new(settings)?) })
        })
    }

    /// A new server-side session for one accepted connection.
    #[napi]
    pub fn accept(&self) -> Result<TlsSession> {
        sync(|| Ok(TlsSession { inner: self.inner.accept()? }))
    }

    /// Applies new revocations to every handshake from now on (and voids resumption tickets).
    #[napi]
    pub fn set_revocations(&self, revocations: &RevocationSet) {
        self.inner.set_revocations(revocations.inner.clone());
    }
}

/// A client context: opens sessions to servers.
#[napi]
pub struct TlsClientContext {
    inner: Arc<tls::TlsClientContext>,
}

#[napi]
impl TlsClientContext {
    /// A client context; `signer` holds the certificate's key (else `ERR_KEY_MISMATCH`).
    #[napi(constructor)]
    pub fn new(init: TlsContextInit, signer: &Signer) -> Result<Self> {
        sync(|| {
            let parts = Parts::from_init(init, signer)?;
            let mut settings = ClientSettings::new(parts.chain, parts.signer, parts.trust);
            (settings.policy, settings.pq) = (parts.policy, parts.pq);
            if let Some(resumption) = parts.resumption {
                settings.resumption = resumption;
            }
            Ok(TlsClientContext { inner: Arc::new(tls::TlsClientContext::new(settings)?) })
        })
    }

    /// A client context with no certificate that authenticates the server only: its chain must
    /// lead to the root pinned by `rootFingerprint` (found in the chain it presents), for the
    /// expected tenant and device, with the required role; else the session fails with the PKI
    /// code before any data leaves.
    #[napi(factory)]
    pub fn anonymous(init: AnonymousTlsInit) -> Result<TlsClientContext> {
        sync(|| {
            let root_key = crate::pki::pins_arg(&[init.root_fingerprint])?
                .pop()
                .ok_or_else(|| invalid_argument("rootFingerprint is required"))?;
            let mut settings = tls::AnonymousClientSettings::new(root_key);
            settings.policy = PeerPolicy {
                expected_tenant: init.expected_tenant,
                expected_device: init.expected_device,
                ..PeerPolicy::default()
            };
            settings.required_role = init.required_role;
            settings.pq = pq_arg(init.pq.as_deref())?;
            Ok(TlsClientContext { inner: Arc::new(tls::TlsClientContext::anonymous(settings)?) })
        })
    }

    /// A new client session (to the server the context expects, or to `deviceId`).
    #[napi]
    pub fn connect(&self, device_id: Option<String>) -> Result<TlsSession> {
        sync(|| {
            Ok(TlsSession { inner: device_id.map_or_else(|| self.inner.connect(), |d| self.inner.connect_to(&d))? })
        })
    }

    /// Applies new revocations to every handshake from now on (and forgets resumption tickets).
    #[napi]
    pub fn set_revocations(&self, revocations: &RevocationSet) {
        self.inner.set_revocations(revocations.inner.clone());
    }
}

/// One TLS connection's state: feed it the socket's bytes, send what it gives back.
#[napi]
pub struct TlsSession {
    inner: tls::TlsSession,
}

#[napi]
impl TlsSession {
    /// The room `readTlsInto` needs for `dataLength` bytes from the socket.
    #[napi]
    pub fn read_length_bound(&self, data_length: u32) -> f64 {
        tls::TlsSession::read_len_bound(data_length as usize) as f64
    }

    /// Processes bytes read from the socket and writes the plaintext they carried to the front
    /// of `out`; returns its length. Throws the typed reason (a PKI code for a refused peer);
    /// after a throw, `writeTlsInto` gives the alert for the peer.
    #[napi]
    pub fn read_tls_into(&mut self, data: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.inner.read_tls_into(data, &mut out)?))
    }

    /// Writes as much as fits of the bytes to send (handshake flights, records, alerts) to the
    /// front of `out`; returns how many (`wantsWrite` tells whether more wait).
    #[napi]
    pub fn write_tls_into(&mut self, mut out: BufferSlice) -> Result<u32> {
        sync(|| byte_length(self.inner.write_tls_into(&mut out)))
    }

    /// Whether bytes wait to be sent.
    #[napi(getter)]
    pub fn wants_write(&self) -> bool {
        self.inner.wants_write()
    }

    /// Queues application data (sent once the peer is verified).
    #[napi]
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<()> {
        sync(|| Ok(self.inner.write_plaintext(data)?))
    }

    #[napi(getter)]
    pub fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    /// Whether the session is established: its peer verified, or an anonymous client accepted.
    #[napi(getter)]
    pub fn is_established(&self) -> bool {
        self.inner.is_established()
    }

    /// The verified peer, once the handshake is complete (none for an anonymous client).
    #[napi(getter)]
    pub fn peer(&self) -> Option<PeerIdentity> {
        self.inner.peer().cloned().map(peer_identity)
    }

    /// The key exchange group: `X25519MLKEM768` or `X25519`.
    #[napi(getter)]
    pub fn kx_group(&self) -> Option<&'static str> {
        self.inner.kx_group()
    }

    /// The TLS 1.3 cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    #[napi(getter)]
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.inner.cipher_suite()
    }

    #[napi(getter)]
    pub fn is_post_quantum(&self) -> bool {
        self.inner.is_post_quantum()
    }

    #[napi(getter)]
    pub fn is_resumed(&self) -> bool {
        self.inner.is_resumed()
    }

    /// Whether the peer sent close_notify.
    #[napi(getter)]
    pub fn peer_closed(&self) -> bool {
        self.inner.peer_closed()
    }

    /// Queues close_notify.
    #[napi]
    pub fn send_close_notify(&mut self) {
        self.inner.send_close_notify();
    }

    /// Whether `revocations` names this session's peer (the caller then closes it).
    #[napi]
    pub fn is_peer_revoked(&self, revocations: &RevocationSet) -> bool {
        self.inner.is_peer_revoked(&revocations.inner)
    }
}

/// The parts of a context, parsed.
struct Parts {
    chain: Vec<Vec<u8>>,
    signer: Box<dyn pki::CertSigner + Send + Sync>,
    trust: pki::TrustStore,
    policy: PeerPolicy,
    pq: PqPolicy,
    resumption: Option<bool>,
    anonymous_clients: bool,
    alpn: Option<Vec<Vec<u8>>>,
}

impl Parts {
    fn from_init(init: TlsContextInit, signer: &Signer) -> std::result::Result<Self, Failure> {
        let chain = pki::pem::parse_certificates(&init.chain_pem)?;
        let signer = signer.for_chain(&chain)?;
        let trust = pki::TrustStore::from_pem(&init.trust_pem)?;
        let pq = pq_arg(init.pq.as_deref())?;
        let mut policy = PeerPolicy {
            expected_tenant: init.expected_tenant,
            expected_device: init.expected_device,
            ..PeerPolicy::default()
        };
        if let Some(pins) = init.pins {
            policy.pins = Some(crate::pki::pins_arg(&pins)?);
        }
        Ok(Parts {
            chain,
            signer,
            trust,
            policy,
            pq,
            resumption: init.resumption,
            anonymous_clients: init.anonymous_clients.unwrap_or(false),
            alpn: init.alpn.map(|list| list.into_iter().map(String::into_bytes).collect()),
        })
    }
}

fn pq_arg(pq: Option<&str>) -> std::result::Result<PqPolicy, Failure> {
    match pq {
        None | Some("prefer") => Ok(PqPolicy::Prefer),
        Some("require") => Ok(PqPolicy::Require),
        Some("off") => Ok(PqPolicy::Off),
        Some(_) => Err(invalid_argument("pq must be 'prefer', 'require' or 'off'")),
    }
}
