//! TLS contexts: one per role and identity, built once, handing out a [`TlsSession`] per
//! connection.
//!
//! A context holds the rustls configuration (TLS 1.3 only, the ring provider with the groups of
//! its [`PqPolicy`], our chain and [`CertSigner`], the verifier), the swappable trust snapshot,
//! and the resumption state: a rotating ticket key on a server, a ticket store on a client. A trust
//! update replaces the snapshot and throws the resumption state away (see the
//! [module documentation](super#live-trust-updates-and-resumption)).

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{NoServerSessionStorage, ProducesTickets};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ClientConnection, NamedGroup, ServerConfig, ServerConnection};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::session::TlsSession;
use super::sign::CertSignerKey;
use super::verify::{server_name, ClientAuth, PeerVerifier, ServerAuth};
use super::{kx, PqPolicy, TlsError, ALPN_ZTMESH_1};
use crate::pki::{CertSigner, PeerPolicy, RequiredUsage, RevocationSet, TrustStore};

/// Client tickets kept per context (rustls keeps a few per server name within this).
const CLIENT_SESSION_CACHE: usize = 256;
/// The most certificates our own chain may hold: leaf, site CA, root.
const MAX_CHAIN_LEN: usize = 3;

/// What a server context is built from.
pub struct ServerSettings {
    /// Our certificate chain, DER, leaf first: the device certificate, then its site CA (the root
    /// may follow; peers ignore it).
    pub chain_der: Vec<Vec<u8>>,
    /// The key of the leaf certificate.
    pub signer: Box<dyn CertSigner + Send + Sync>,
    /// The roots client certificates must chain to.
    pub trust: TrustStore,
    /// What is revoked at start; replace it later with [`TlsServerContext::set_revocations`].
    pub revocations: RevocationSet,
    /// What a client must be beyond a valid chain: normally the expected tenant, maybe pins.
    /// `required_usage` is ignored: a client always needs clientAuth.
    pub policy: PeerPolicy,
    /// Which key exchanges are accepted.
    pub pq: PqPolicy,
    /// The application protocols accepted, in preference order; `[ztmesh/1]` by default.
    pub alpn: Vec<Vec<u8>>,
    /// Whether clients may resume sessions with tickets (default true).
    pub resumption: bool,
}

impl ServerSettings {
    /// Settings with no revocations, the default policy, [`PqPolicy::Prefer`], ALPN `ztmesh/1`
    /// and resumption on.
    pub fn new(chain_der: Vec<Vec<u8>>, signer: Box<dyn CertSigner + Send + Sync>, trust: TrustStore) -> Self {
        Self {
            chain_der,
            signer,
            trust,
            revocations: RevocationSet::new(),
            policy: PeerPolicy::default(),
            pq: PqPolicy::default(),
            alpn: vec![ALPN_ZTMESH_1.to_vec()],
            resumption: true,
        }
    }
}

/// What a client context is built from.
pub struct ClientSettings {
    /// Our certificate chain, DER, leaf first: the device certificate, then its site CA.
    pub chain_der: Vec<Vec<u8>>,
    /// The key of the leaf certificate.
    pub signer: Box<dyn CertSigner + Send + Sync>,
    /// The roots server certificates must chain to.
    pub trust: TrustStore,
    /// What is revoked at start; replace it later with [`TlsClientContext::set_revocations`].
    pub revocations: RevocationSet,
    /// What a server must be beyond a valid chain: normally the expected tenant. Its
    /// `expected_device` is the default for [`TlsClientContext::connect`];
    /// [`TlsClientContext::connect_to`] names one per connection. `required_usage` is ignored: a
    /// server always needs serverAuth.
    pub policy: PeerPolicy,
    /// Which key exchanges are offered.
    pub pq: PqPolicy,
    /// The application protocols offered, in preference order; `[ztmesh/1]` by default.
    pub alpn: Vec<Vec<u8>>,
    /// Whether to keep tickets and resume sessions (default true).
    pub resumption: bool,
}

impl ClientSettings {
    /// Settings with no revocations, the default policy, [`PqPolicy::Prefer`], ALPN `ztmesh/1`
    /// and resumption on.
    pub fn new(chain_der: Vec<Vec<u8>>, signer: Box<dyn CertSigner + Send + Sync>, trust: TrustStore) -> Self {
        Self {
            chain_der,
            signer,
            trust,
            revocations: RevocationSet::new(),
            policy: PeerPolicy::default(),
            pq: PqPolicy::default(),
            alpn: vec![ALPN_ZTMESH_1.to_vec()],
            resumption: true,
        }
    }
}

/// The server side: accepts connections from clients with a certificate the trust snapshot accepts.
pub struct TlsServerContext {
    config: Arc<ServerConfig>,
    verifier: Arc<PeerVerifier>,
    /// The CA certificates above our leaf: they complete clients' leaf-only chains.
    own_cas: Vec<Vec<u8>>,
    ticketer: Arc<SwappableTicketer>,
    pq: PqPolicy,
}

impl TlsServerContext {
    /// Builds a server context.
    ///
    /// Fails with [`TlsError::Config`] for an empty chain or one longer than three certificates,
    /// a leaf that does not parse or whose key is not the signer's, or an empty or over-long ALPN
    /// entry (none at all included), and with [`TlsError::Random`] if the ticket key cannot be made.
    pub fn new(settings: ServerSettings) -> Result<Self, TlsError> {
        let ServerSettings { chain_der, signer, trust, revocations, policy, pq, alpn, resumption } = settings;
        check_alpn(&alpn)?;
        let (own_cas, trust) = knowing_own_cas(&chain_der, trust)?;
        let certified = certified_key(chain_der, signer)?;
        let verifier = Arc::new(PeerVerifier::new(trust, revocations, policy, RequiredUsage::ClientAuth));
        let ticketer = Arc::new(SwappableTicketer::new(resumption)?);

        let mut config = ServerConfig::builder_with_provider(provider(pq))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| TlsError::Internal)?
            .with_client_cert_verifier(Arc::new(ClientAuth(Arc::clone(&verifier))))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = alpn;
        // Stateless tickets only, under a key rotated on every trust update; no session cache.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.ticketer = Arc::clone(&ticketer) as Arc<dyn ProducesTickets>;
        if !resumption {
            config.send_tls13_tickets = 0;
        }
        config.max_early_data_size = 0;
        config.send_half_rtt_data = false;
        Ok(Self { config: Arc::new(config), verifier, own_cas, ticketer, pq })
    }

    /// A session for one incoming connection.
    pub fn accept(&self) -> Result<TlsSession, TlsError> {
        let connection = ServerConnection::new(Arc::clone(&self.config)).map_err(|_| TlsError::Internal)?;
        Ok(TlsSession::new(connection.into(), Arc::clone(&self.verifier), None, self.pq))
    }

    /// Replaces the revocations: handshakes that start from now on see them, every ticket issued
    /// so far stops working, and a session completing from now on is checked against them.
    pub fn set_revocations(&self, revocations: RevocationSet) {
        self.verifier.set_revocations(revocations);
        self.ticketer.rotate();
    }

    /// Replaces the trust anchors (a CA rollover), with the same effects as
    /// [`Self::set_revocations`].
    pub fn set_trust(&self, trust: TrustStore) {
        self.verifier.set_trust(with_own_cas(trust, &self.own_cas));
        self.ticketer.rotate();
    }

    /// The key exchange policy.
    pub fn pq_policy(&self) -> PqPolicy {
        self.pq
    }

    /// [`Self::set_revocations`] without the ticket key rotation, so that tests can reach the
    /// second defence: the check of a resumed session's stored chain.
    #[cfg(test)]
    pub(crate) fn set_revocations_keeping_tickets_for_testing_only(&self, revocations: RevocationSet) {
        self.verifier.set_revocations(revocations);
    }
}

impl std::fmt::Debug for TlsServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServerContext").field("pq", &self.pq).finish_non_exhaustive()
    }
}

/// The client side: connects to servers with a certificate the trust snapshot accepts.
pub struct TlsClientContext {
    config: Arc<ClientConfig>,
    verifier: Arc<PeerVerifier>,
    /// The CA certificates above our leaf: they complete servers' leaf-only chains.
    own_cas: Vec<Vec<u8>>,
    sessions: Arc<ClearableSessionStore>,
    default_device: Option<String>,
    pq: PqPolicy,
}

impl TlsClientContext {
    /// Builds a client context. Fails as [`TlsServerContext::new`] does.
    pub fn new(settings: ClientSettings) -> Result<Self, TlsError> {
        let ClientSettings { chain_der, signer, trust, revocations, policy, pq, alpn, resumption } = settings;
        check_alpn(&alpn)?;
        let (own_cas, trust) = knowing_own_cas(&chain_der, trust)?;
        let certified = certified_key(chain_der, signer)?;
        let default_device = policy.expected_device.clone();
        if let Some(device) = &default_device {
            server_name(Some(device))?;
        }
        let verifier = Arc::new(PeerVerifier::new(trust, revocations, policy, RequiredUsage::ServerAuth));
        let sessions = Arc::new(ClearableSessionStore::new());

        let mut config = ClientConfig::builder_with_provider(provider(pq))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|_| TlsError::Internal)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerAuth(Arc::clone(&verifier))))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = alpn;
        config.check_selected_alpn = true;
        config.resumption = if resumption {
            Resumption::store(Arc::clone(&sessions) as Arc<dyn ClientSessionStore>)
        } else {
            Resumption::disabled()
        };
        // The server name only carries the expected device (see `verify`); it is never sent.
        config.enable_sni = false;
        config.enable_early_data = false;
        Ok(Self { config: Arc::new(config), verifier, own_cas, sessions, default_device, pq })
    }

    /// A session for one outgoing connection to the device the settings' policy expects (any
    /// device passing the policy if it names none).
    ///
    /// Tickets are kept per expected device: connections that expect none share one ticket store
    /// entry, so prefer [`Self::connect_to`] when the device is known.
    pub fn connect(&self) -> Result<TlsSession, TlsError> {
        self.session(self.default_device.clone())
    }

    /// A session for one outgoing connection to `device_id`: the server's certificate must name
    /// it. Fails with [`TlsError::Config`] if it is empty or longer than 64 bytes.
    pub fn connect_to(&self, device_id: &str) -> Result<TlsSession, TlsError> {
        self.session(Some(device_id.to_owned()))
    }

    fn session(&self, expected_device: Option<String>) -> Result<TlsSession, TlsError> {
        let name: ServerName<'static> = server_name(expected_device.as_deref())?;
        let connection = ClientConnection::new(Arc::clone(&self.config), name).map_err(|_| TlsError::Internal)?;
        Ok(TlsSession::new(connection.into(), Arc::clone(&self.verifier), expected_device, self.pq))
    }

    /// Replaces the revocations: handshakes that start from now on see them, stored tickets are
    /// dropped, and a session completing from now on is checked against them.
    pub fn set_revocations(&self, revocations: RevocationSet) {
        self.verifier.set_revocations(revocations);
        self.sessions.clear();
    }

    /// Replaces the trust anchors (a CA rollover), with the same effects as
    /// [`Self::set_revocations`].
    pub fn set_trust(&self, trust: TrustStore) {
        self.verifier.set_trust(with_own_cas(trust, &self.own_cas));
        self.sessions.clear();
    }

    /// The key exchange policy.
    pub fn pq_policy(&self) -> PqPolicy {
        self.pq
    }

    /// [`Self::set_revocations`] keeping the stored tickets, so that tests can reach the check
    /// of a resumed session's stored chain.
    #[cfg(test)]
    pub(crate) fn set_revocations_keeping_tickets_for_testing_only(&self, revocations: RevocationSet) {
        self.verifier.set_revocations(revocations);
    }
}

impl std::fmt::Debug for TlsClientContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClientContext").field("pq", &self.pq).finish_non_exhaustive()
    }
}

/// rustls' ring provider with TLS 1.3 suites only and the groups of `pq`.
fn provider(pq: PqPolicy) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|suite| suite.tls13().is_some());
    provider.kx_groups = kx::groups(pq);
    Arc::new(provider)
}

fn check_alpn(alpn: &[Vec<u8>]) -> Result<(), TlsError> {
    if alpn.is_empty() || alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err(TlsError::Config("ALPN protocols must be 1 to 255 bytes, at least one"));
    }
    Ok(())
}

/// Our chain and signer, after checking the leaf carries the signer's key.
/// Our chain's CA certificates, and `trust` completing peers' chains through them (a peer may
/// send its leaf alone when we know its site CA). Fails with [`TlsError::Config`] when one is
/// not a CA.
fn knowing_own_cas(chain_der: &[Vec<u8>], trust: TrustStore) -> Result<(Vec<Vec<u8>>, TrustStore), TlsError> {
    let own_cas: Vec<Vec<u8>> = chain_der.iter().skip(1).cloned().collect();
    let trust =
        trust.with_intermediates(&own_cas).map_err(|_| TlsError::Config("a certificate above the leaf is not a CA"))?;
    Ok((own_cas, trust))
}

/// `trust` completing chains through `own_cas`, which [`knowing_own_cas`] accepted (so this
/// cannot fail; if it did, the trust would merely complete no chain).
fn with_own_cas(trust: TrustStore, own_cas: &[Vec<u8>]) -> TrustStore {
    trust.clone().with_intermediates(own_cas).unwrap_or(trust)
}

fn certified_key(chain_der: Vec<Vec<u8>>, signer: Box<dyn CertSigner + Send + Sync>) -> Result<CertifiedKey, TlsError> {
    let leaf = match chain_der.first() {
        Some(leaf) if chain_der.len() <= MAX_CHAIN_LEN => leaf,
        _ => return Err(TlsError::Config("the certificate chain must hold 1 to 3 certificates")),
    };
    let (rest, cert) = X509Certificate::from_der(leaf).map_err(|_| TlsError::Config("malformed leaf certificate"))?;
    if !rest.is_empty() || cert.public_key().subject_public_key.data.as_ref() != signer.public_key() {
        return Err(TlsError::Config("the signer's key is not the leaf certificate's key"));
    }
    let chain: Vec<CertificateDer<'static>> = chain_der.into_iter().map(CertificateDer::from).collect();
    let signer: Arc<dyn CertSigner + Send + Sync> = Arc::from(signer);
    Ok(CertifiedKey::new(chain, Arc::new(CertSignerKey::new(signer))))
}

/// The server's ticket keys: rustls' ring ticketer (ChaCha20-Poly1305, keys rotated every 6 hours,
/// tickets valid 12 hours), replaced whole on every trust update so no earlier ticket opens. If a
/// new one cannot be made, tickets stay off (fail closed: no resumption rather than resumption
/// under the old key).
struct SwappableTicketer {
    current: RwLock<Option<Arc<dyn ProducesTickets>>>,
}

impl SwappableTicketer {
    fn new(enabled: bool) -> Result<Self, TlsError> {
        let current =
            if enabled { Some(rustls::crypto::ring::Ticketer::new().map_err(|_| TlsError::Random)?) } else { None };
        Ok(Self { current: RwLock::new(current) })
    }

    fn rotate(&self) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.is_some() {
            *current = rustls::crypto::ring::Ticketer::new().ok();
        }
    }

    fn get(&self) -> Option<Arc<dyn ProducesTickets>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl ProducesTickets for SwappableTicketer {
    fn enabled(&self) -> bool {
        self.get().is_some_and(|t| t.enabled())
    }

    fn lifetime(&self) -> u32 {
        self.get().map_or(0, |t| t.lifetime())
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.get()?.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.get()?.decrypt(cipher)
    }
}

impl std::fmt::Debug for SwappableTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwappableTicketer").finish_non_exhaustive()
    }
}

/// The client's ticket store, emptied whole on every trust update.
#[derive(Debug)]
struct ClearableSessionStore {
    current: RwLock<Arc<ClientSessionMemoryCache>>,
}

impl ClearableSessionStore {
    fn new() -> Self {
        Self { current: RwLock::new(Arc::new(ClientSessionMemoryCache::new(CLIENT_SESSION_CACHE))) }
    }

    fn clear(&self) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(ClientSessionMemoryCache::new(CLIENT_SESSION_CACHE));
    }

    fn get(&self) -> Arc<ClientSessionMemoryCache> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientSessionStore for ClearableSessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.get().set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.get().kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.get().set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.get().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.get().remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.get().insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.get().take_tls13_ticket(server_name)
    }
}
