//! The ztmesh Noise link: a certificate-bound Noise XX handshake over any byte stream, sans-IO
//! like [`crate::tls::TlsSession`].
//!
//! [`LinkHandshake`] owns every byte of the protocol: the caller feeds it what the socket
//! delivers ([`LinkHandshake::feed`]), sends what it hands back ([`LinkHandshake::take_output`]),
//! and once it is [established](LinkHandshake::is_established) takes the verified peer and a
//! [`RecordLayer`] for the data ([`LinkHandshake::into_established`]). One call per socket
//! chunk; the peer's certificate chain is parsed once, by [`crate::pki::verify_peer_key`], and
//! a chain already decided under the same [`LinkConfig`] and trust snapshot is not parsed again
//! (`pki::verdicts`).
//!
//! # Wire format
//!
//! Every handshake frame is `u16 length (big-endian) ‖ body`:
//!
//! ```text
//! initiator                                               responder
//!  frame(protocol name, UTF-8)          ─►                 accepts it, or closes (1)
//!  frame(message 1: e [‖ ML-KEM ek])    ─►
//!                                       ◄─  frame(message 2: e, s [‖ ML-KEM ct]; no payload)
//!  frame(message 3: s, payload = identity(initiator))  ─►  verifies it, or closes (2)
//!                                       ◄─  frame(transport message: 0x02 ‖ identity(responder))
//!  verifies it, or closes (3)
//!  then noise::records records both ways
//! ```
//!
//! 1. The protocol name is one of [`Protocol::XxHybridSha256`],
//!    [`Protocol::XxHybridAesGcmSha256`] (hybrid, the default) or [`Protocol::XxSha256`],
//!    [`Protocol::XxAesGcmSha256`] (classical). The initiator proposes its [`CipherSetting`]
//!    (`Auto`: the faster on this CPU, [`crate::noise::preferred_cipher`]); the responder
//!    accepts it if it is its own setting, or either cipher of its own mode under `Auto`. The
//!    name is bound into the handshake hash by Noise itself, so a rewritten name fails the first
//!    message authenticated under it: message 1 at the responder in the hybrid mode (the psk3
//!    pattern already encrypts its empty payload), message 2 at the initiator in the classical
//!    mode.
//! 2. The responder decides the initiator's identity (see [Identity](#identity)) under the trust
//!    and revocations in force at that moment. Refusing it, it closes the stream without the
//!    confirmation; the initiator then reports [`LinkError::Refused`].
//! 3. The responder's first transport message is the confirmation: `READY (0x02) ‖ identity`.
//!    The initiator does not consider itself in before it has read and verified it.
//!
//! The prologue is [`labels::NOISE_LINK_PROLOGUE`]'s prefix, `ztmesh-noise-link-v2 ‖ 0x00`.
//!
//! The handshake messages carry no payload other than message 3's. A frame is at most
//! [`MAX_FRAME_LEN`] bytes (the proposal [`MAX_PROPOSAL_LEN`]), refused on its header before it
//! is buffered, and every complete frame is consumed at once, so before authentication the
//! handshake holds at most one partial frame. Bytes after the confirmation belong to the record
//! layer ([`Established::rest`]).
//!
//! ## Identity
//!
//! ```text
//! identity = 0x01 (version) ‖ u8 n (1..=3)
//!          ‖ n × (u16 length (≥ 1) ‖ certificate DER)      the chain, leaf first
//!          ‖ u8 length (1..=72) ‖ signature                 DER ECDSA P-256/SHA-256
//!          ‖ zero bytes up to a multiple of 256 bytes        padding
//! ```
//!
//! The signature is the certificate key's, through a [`CertSigner`] (a software or a TPM key),
//! over [`labels::NOISE_STATIC_KEY`]`.message(static public key)`: the sender's Noise static key,
//! which Noise has just authenticated. The receiver decides the chain with [`crate::pki::verify_peer`]'s
//! rules under the trust and revocations in force at that moment (or reuses its verdict on that
//! exact chain under the same configuration and snapshot, for at most five minutes) and checks that the leaf's key signed the very static key of this session, on
//! every link, so a chain
//! copied from another session, relayed by a man in the middle, or presented without its key
//! fails ([`LinkError::Identity`]). The padding hides the exact chain length (and with it, for
//! instance, the number of roles) from anyone watching record sizes.
//!
//! # Identity hiding, post-quantum
//!
//! In the hybrid mode (`Noise_XXpsk3…+MLKEM768`, see [`crate::noise`]) the ML-KEM-768 secret is
//! mixed in as the PSK at the end of message 3: message 3's payload and every transport message
//! are under keys that depend on both X25519 and ML-KEM-768, while message 2's payload (and the
//! static keys of messages 2 and 3) are under X25519 alone. So the certificate chains travel only
//! in message 3's payload and the confirmation, and never in message 2. What each party learns:
//!
//! - **A passive adversary who records the traffic and later breaks X25519** (harvest now,
//!   decrypt later) but not ML-KEM-768 learns the protocol name, the two ephemeral keys, the two
//!   static keys and the sizes of the messages (the identities padded to 256 bytes). It does not
//!   learn either certificate chain, device id, tenant, role or binding signature. Static keys
//!   are fresh per link by default, so they link nothing to a device; a caller that reuses a
//!   static key makes its links linkable to one another (never to its certificate).
//! - **A passive classical adversary** learns no more than the protocol name and the sizes.
//! - **An active attacker** who answers in place of the responder completes messages 1–3 with its
//!   own keys and so **learns the initiator's identity** before anyone authenticated the
//!   responder (as in any XX pattern: the initiator reveals itself first). It cannot complete
//!   the link: it has no certificate that passes the initiator's checks. It learns nothing of a
//!   responder it impersonates.
//! - **The responder's identity** is sent only to an initiator it has verified (chain, policy,
//!   revocation, binding), so an active attacker without a valid certificate of an accepted
//!   tenant never learns it; an initiator the responder refuses learns only that it was refused.
//!
//! The classical mode (`Noise_XX…`) has the same structure with X25519 alone: the chains are
//! hidden from passive classical adversaries only.
//!
//! # Failing closed
//!
//! Every failure is final: the error is kept ([`LinkHandshake::error`]) and returned by every
//! later call, and the caller closes the stream. Timeouts and aborts are the caller's (it owns
//! the clock and the socket).

use std::sync::Arc;
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::noise::{self, NoiseError, Protocol, RecordLayer, RekeyPolicy, Transport};
use crate::pki::signer::verify_p256;
use crate::pki::snapshot::SharedTrust;
use crate::pki::{CertSigner, PeerIdentity, PeerPolicy, RevocationSet, TrustStore, VerifyError};
use crate::wire::labels;
use crate::x25519;

mod error;
mod identity;

pub use error::LinkError;
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub use identity::{
    decode_for_fuzzing as decode_identity_for_fuzzing, encode_for_fuzzing as encode_identity_for_fuzzing,
};

/// The largest handshake frame body: message 3 or the confirmation with a three-certificate
/// chain and its padding fit several times over.
pub const MAX_FRAME_LEN: usize = 8 * 1024;

/// The largest protocol-name proposal.
pub const MAX_PROPOSAL_LEN: usize = 64;

/// The confirmation's first byte.
const READY: u8 = 2;

/// Bytes of a frame header.
const HEADER_LEN: usize = 2;

/// Which side of the link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that opens the link and proposes the protocol.
    Initiator,
    /// The side that accepts links.
    Responder,
}

/// The key exchange of a link.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// X25519 and ML-KEM-768 (`Noise_XXpsk3_25519_…+MLKEM768`): the default.
    Hybrid,
    /// X25519 alone (`Noise_XX_25519_…`).
    Classical,
}

/// The record cipher a side proposes (initiator) or accepts (responder).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSetting {
    /// Initiator: the faster on this CPU. Responder: either.
    Auto,
    /// AES-256-GCM.
    AesGcm,
    /// ChaCha20-Poly1305.
    ChaChaPoly,
}

/// What every link of one side shares: its credentials, its trust and its rules.
///
/// The trust anchors and the revocations are not fields: they live in one swappable snapshot
/// (`pki::snapshot`, as in a TLS context), replaced by [`Self::set_revocations`] and
/// [`Self::set_trust`] while the configuration is shared, and read by each handshake at the
/// moment it decides its peer. A handshake that started before a revocation is judged under it.
pub struct LinkConfig {
    /// This side's certificate chain, DER, leaf first (at most three certificates).
    pub chain: Vec<Vec<u8>>,
    /// The certificate's key: signs the binding of each link's static key.
    pub signer: Box<dyn CertSigner + Send + Sync>,
    /// Who peers must be.
    pub policy: PeerPolicy,
    /// Hybrid (default) or classical.
    pub mode: LinkMode,
    /// The cipher proposed or accepted.
    pub cipher: CipherSetting,
    /// When the record layers rekey.
    pub rekey: RekeyPolicy,
    /// The roots peers must chain to, the revocations in force and the verdicts reached under
    /// them (`pki::snapshot`).
    trust: SharedTrust,
}

impl LinkConfig {
    /// A configuration with the defaults: any peer the trust accepts, no revocations, hybrid,
    /// `Auto` cipher, the default rekey policy.
    ///
    /// `signer` must hold the key of the chain's leaf ([`crate::pki::check_signer_matches`]):
    /// peers refuse a link whose static key is bound by another key, so a configuration that
    /// could only fail at every handshake fails here. Fails with
    /// [`PkiError::KeyMismatch`](crate::pki::PkiError::KeyMismatch) for another key, and
    /// [`PkiError::CertificateMalformed`](crate::pki::PkiError::CertificateMalformed) for an empty
    /// chain or a leaf that does not parse, [`PkiError::NotCa`](crate::pki::PkiError::NotCa) for
    /// a certificate above the leaf that is not a CA. The CA certificates of `chain` complete the
    /// chain of a peer that sends its leaf alone ([`TrustStore::with_intermediates`]).
    pub fn new(
        chain: Vec<Vec<u8>>,
        signer: Box<dyn CertSigner + Send + Sync>,
        trust: TrustStore,
    ) -> Result<Self, crate::pki::PkiError> {
        let leaf = chain.first().ok_or(crate::pki::PkiError::CertificateMalformed)?;
        crate::pki::check_signer_matches(leaf, &*signer)?;
        // Our site CA completes the chain of a peer that sends its leaf alone.
        let trust = trust.with_intermediates(&chain[1..]).map_err(|_| crate::pki::PkiError::NotCa)?;
        Ok(Self {
            chain,
            signer,
            policy: PeerPolicy::default(),
            mode: LinkMode::Hybrid,
            cipher: CipherSetting::Auto,
            rekey: RekeyPolicy::default(),
            trust: SharedTrust::new(trust, RevocationSet::new()),
        })
    }

    /// Replaces the revocations, also while links share this configuration: every peer decided
    /// from now on, on links already under way included, is decided under them. The trust
    /// anchors stay; verdicts reached before are dropped.
    pub fn set_revocations(&self, revocations: RevocationSet) {
        self.trust.set_revocations(revocations);
    }

    /// Replaces the trust anchors (a CA rollover), with the same effect as
    /// [`Self::set_revocations`]; the revocations stay.
    pub fn set_trust(&self, trust: TrustStore) {
        // Our chain's CAs passed `with_intermediates` in `new`; they cannot fail it here.
        let trust = trust.clone().with_intermediates(&self.chain[1..]).unwrap_or(trust);
        self.trust.set_trust(trust);
    }

    /// The protocols a responder with this configuration accepts.
    fn accepted(&self) -> Vec<Protocol> {
        match self.cipher {
            CipherSetting::Auto => vec![protocol_for(self.mode, false), protocol_for(self.mode, true)],
            CipherSetting::AesGcm => vec![protocol_for(self.mode, true)],
            CipherSetting::ChaChaPoly => vec![protocol_for(self.mode, false)],
        }
    }

    /// The protocol an initiator with this configuration proposes.
    fn proposed(&self) -> Protocol {
        let aes = match self.cipher {
            CipherSetting::Auto => noise::preferred_cipher() == "AESGCM",
            CipherSetting::AesGcm => true,
            CipherSetting::ChaChaPoly => false,
        };
        protocol_for(self.mode, aes)
    }
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("chain_len", &self.chain.len())
            .field("policy", &self.policy)
            .field("mode", &self.mode)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// A finished link handshake: who the peer is, and the record layer of the link.
#[derive(Debug)]
pub struct Established {
    /// The verified peer.
    pub peer: PeerIdentity,
    /// The protocol the link runs.
    pub protocol: Protocol,
    /// Seals and opens the link's data.
    pub records: RecordLayer,
    /// Bytes received after the handshake: the first records, to open before anything else.
    pub rest: Vec<u8>,
}

/// One side of a link handshake in progress (see the [module docs](self)).
pub struct LinkHandshake {
    config: Arc<LinkConfig>,
    role: Role,
    static_private: Zeroizing<[u8; x25519::KEY_LEN]>,
    static_public: [u8; x25519::KEY_LEN],
    state: State,
    /// Received bytes not consumed yet: a partial frame, or after the handshake the records.
    input: Vec<u8>,
    /// Bytes for the peer, waiting for [`Self::take_output`].
    output: Vec<u8>,
    peer: Option<PeerIdentity>,
    error: Option<LinkError>,
}

enum State {
    /// Responder: waiting for the protocol proposal.
    Proposal,
    /// Noise messages 1 to 3.
    Noise(Box<noise::Handshake>),
    /// Initiator: message 3 sent, waiting for the confirmation.
    Confirmation(Box<Transport>),
    /// Established.
    Done(Box<Transport>),
    /// Failed or taken apart.
    Over,
}

impl LinkHandshake {
    /// Starts a link as `role`. The static key is `static_private_key` (32 bytes) or, by
    /// default, a fresh one (so links are unlinkable to one another).
    ///
    /// The initiator's proposal and message 1 are ready at once in [`Self::take_output`].
    /// Fails with [`LinkError::Config`] for a chain that is empty, longer than three
    /// certificates or too large for a frame, or a static key of the wrong length.
    pub fn new(config: Arc<LinkConfig>, role: Role, static_private_key: Option<&[u8]>) -> Result<Self, LinkError> {
        if config.chain.is_empty()
            || config.chain.len() > identity::MAX_CHAIN_LEN
            || config.chain.iter().any(|cert| cert.is_empty() || cert.len() > usize::from(u16::MAX))
            || identity::encoded_len_bound(&config.chain) + TRANSPORT_OVERHEAD > MAX_FRAME_LEN
        {
            return Err(LinkError::Config);
        }
        let mut static_private = Zeroizing::new([0u8; x25519::KEY_LEN]);
        match static_private_key {
            Some(key) if key.len() == x25519::KEY_LEN => static_private.copy_from_slice(key),
            Some(_) => return Err(LinkError::Config),
            None => crate::rand::fill(&mut static_private[..]).map_err(|_| LinkError::Random)?,
        }
        let static_public =
            *x25519::PrivateKey::from_bytes(&static_private[..]).map_err(|_| LinkError::Config)?.public_key();
        let mut link = Self {
            config,
            role,
            static_private,
            static_public,
            state: State::Proposal,
            input: Vec::new(),
            output: Vec::new(),
            peer: None,
            error: None,
        };
        if role == Role::Initiator {
            let protocol = link.config.proposed();
            push_frame(&mut link.output, protocol.name().as_bytes())?;
            let mut handshake = link.noise(protocol)?;
            let message1 = handshake.write_message(&[])?;
            push_frame(&mut link.output, &message1)?;
            link.state = State::Noise(handshake);
        }
        Ok(link)
    }

    /// Feeds bytes received from the peer and processes every frame they complete; the answer,
    /// if any, waits in [`Self::take_output`]. After the handshake, bytes are kept for the record
    /// layer ([`Established::rest`]).
    ///
    /// Fails, for good, with the reason: [`LinkError::FrameTooLarge`], [`LinkError::Protocol`],
    /// a Noise error ([`LinkError::Noise`]), [`LinkError::Identity`], the PKI's verdict
    /// ([`LinkError::Peer`]), [`LinkError::Malformed`]…; the caller then closes the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.check()?;
        self.input.extend_from_slice(bytes);
        let mut consumed = 0;
        let result = loop {
            if matches!(self.state, State::Done(_)) {
                break Ok(());
            }
            let limit = if matches!(self.state, State::Proposal) { MAX_PROPOSAL_LEN } else { MAX_FRAME_LEN };
            let Some(header) = self.input.get(consumed..consumed + HEADER_LEN) else { break Ok(()) };
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            if len > limit {
                break Err(LinkError::FrameTooLarge);
            }
            let start = consumed + HEADER_LEN;
            if self.input.len() < start + len {
                break Ok(());
            }
            let frame = self.input[start..start + len].to_vec();
            consumed = start + len;
            if let Err(error) = self.step(&frame) {
                break Err(error);
            }
        };
        self.input.drain(..consumed);
        result.or_else(|error| self.fail(error))
    }

    /// The peer closed its side of the stream: the error that means at this point. An initiator
    /// that has sent message 3 and got no confirmation was refused ([`LinkError::Refused`]);
    /// otherwise the stream ended inside the handshake ([`LinkError::Malformed`]). Once
    /// established, the end of the stream is the record layer's business: this returns
    /// [`LinkError::State`] and changes nothing.
    pub fn peer_closed(&mut self) -> LinkError {
        if let Some(error) = &self.error {
            return *error;
        }
        let error = match (&self.state, self.role) {
            (State::Done(_), _) => return LinkError::State,
            (State::Confirmation(_), _) | (State::Noise(_), Role::Initiator) => LinkError::Refused,
            _ => LinkError::Malformed,
        };
        self.error = Some(error);
        self.state = State::Over;
        error
    }

    /// Takes the bytes waiting to be sent to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether bytes wait to be sent.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Whether the handshake is done and the peer verified (a responder as soon as it has sent
    /// its confirmation, an initiator once it has verified the responder's).
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Done(_)) && self.error.is_none()
    }

    /// The verified peer, once established.
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref().filter(|_| self.is_established())
    }

    /// The error that ended the handshake, if one did.
    pub fn error(&self) -> Option<&LinkError> {
        self.error.as_ref()
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The protocol, once known (the initiator's from the start, the responder's once proposed).
    pub fn protocol(&self) -> Option<Protocol> {
        match &self.state {
            State::Proposal | State::Over => None,
            State::Noise(handshake) => Some(handshake.protocol()),
            State::Confirmation(transport) | State::Done(transport) => Some(transport.protocol()),
        }
    }

    /// This side's static public key on this link.
    pub fn static_public_key(&self) -> [u8; x25519::KEY_LEN] {
        self.static_public
    }

    /// The peer and the record layer of an established link.
    ///
    /// Fails with the handshake's error, or [`LinkError::State`] before it is established.
    pub fn into_established(mut self) -> Result<Established, LinkError> {
        self.check()?;
        match (std::mem::replace(&mut self.state, State::Over), self.peer.take()) {
            (State::Done(transport), Some(peer)) => Ok(Established {
                peer,
                protocol: transport.protocol(),
                records: RecordLayer::new(*transport, self.config.rekey),
                rest: std::mem::take(&mut self.input),
            }),
            _ => Err(LinkError::State),
        }
    }

    /// Processes one complete frame.
    fn step(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Proposal => {
                let protocol = std::str::from_utf8(frame)
                    .ok()
                    .and_then(|name| Protocol::from_name(name).ok())
                    .filter(|protocol| self.config.accepted().contains(protocol))
                    .ok_or(LinkError::Protocol)?;
                self.state = State::Noise(self.noise(protocol)?);
            }
            State::Noise(mut handshake) => {
                let payload = handshake.read_message(frame)?;
                match self.role {
                    // Message 1 read: answer with message 2, which carries nothing.
                    Role::Responder if !handshake.is_finished() => {
                        if !payload.is_empty() {
                            return Err(LinkError::Malformed);
                        }
                        let message2 = handshake.write_message(&[])?;
                        push_frame(&mut self.output, &message2)?;
                        self.state = State::Noise(handshake);
                    }
                    // Message 3 read: judge the initiator, then confirm with our own identity.
                    Role::Responder => {
                        let remote = handshake.remote_static_public_key().ok_or(LinkError::Malformed)?;
                        let peer = self.decide(&payload, &remote)?;
                        let mut transport = handshake.into_transport()?;
                        let mut confirmation = vec![READY];
                        confirmation.extend_from_slice(&self.own_identity()?);
                        push_frame(&mut self.output, &transport.encrypt(&confirmation)?)?;
                        self.peer = Some(peer);
                        self.state = State::Done(Box::new(transport));
                    }
                    // Message 2 read: send message 3 with our identity, under the PSK-mixed key.
                    Role::Initiator => {
                        if !payload.is_empty() {
                            return Err(LinkError::Malformed);
                        }
                        let message3 = handshake.write_message(&self.own_identity()?)?;
                        push_frame(&mut self.output, &message3)?;
                        self.state = State::Confirmation(Box::new(handshake.into_transport()?));
                    }
                }
            }
            State::Confirmation(mut transport) => {
                let confirmation = Zeroizing::new(transport.decrypt(frame)?);
                let Some((&READY, identity)) = confirmation.split_first() else {
                    return Err(LinkError::Malformed);
                };
                let remote = transport.remote_static_public_key().ok_or(LinkError::Malformed)?;
                self.peer = Some(self.decide(identity, &remote)?);
                self.state = State::Done(transport);
            }
            State::Done(_) | State::Over => return Err(LinkError::State),
        }
        Ok(())
    }

    /// A Noise handshake of `protocol` for this side.
    fn noise(&self, protocol: Protocol) -> Result<Box<noise::Handshake>, LinkError> {
        let prologue = labels::NOISE_LINK_PROLOGUE.prefix();
        let config = noise::HandshakeConfig {
            protocol,
            static_private_key: &self.static_private[..],
            prologue: &prologue,
            remote_static_public_key: None,
        };
        let handshake = match self.role {
            Role::Initiator => noise::Handshake::initiator(&config)?,
            Role::Responder => noise::Handshake::responder(&config)?,
        };
        Ok(Box::new(handshake))
    }

    /// This side's identity payload, signing the binding of this link's static key.
    fn own_identity(&self) -> Result<Vec<u8>, LinkError> {
        let signature = self
            .config
            .signer
            .sign(&labels::NOISE_STATIC_KEY.message(&self.static_public))
            .map_err(|_| LinkError::Signer)?;
        identity::encode(&self.config.chain, &signature)
    }

    /// The peer that sent `payload` over a session whose peer static key is `remote_static`.
    fn decide(&self, payload: &[u8], remote_static: &[u8; x25519::KEY_LEN]) -> Result<PeerIdentity, LinkError> {
        let identity = identity::decode(payload)?;
        // The trust in force now, not when the link started: a revocation applied meanwhile counts.
        let (peer, leaf_key) = self.config.trust.decide(&identity.chain, &self.config.policy, SystemTime::now())?;
        // Every link, cached verdict or not: the leaf's key signed this session's static key.
        if !verify_p256(&leaf_key, &labels::NOISE_STATIC_KEY.message(remote_static), identity.signature) {
            return Err(LinkError::Identity);
        }
        Ok(peer)
    }

    fn check(&self) -> Result<(), LinkError> {
        match &self.error {
            Some(error) => Err(*error),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, error: LinkError) -> Result<T, LinkError> {
        self.state = State::Over;
        self.input = Vec::new();
        self.output.clear();
        self.peer = None;
        self.error = Some(error);
        Err(error)
    }
}

impl std::fmt::Debug for LinkHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandshake")
            .field("role", &self.role)
            .field("protocol", &self.protocol())
            .field("established", &self.is_established())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl From<VerifyError> for LinkError {
    fn from(error: VerifyError) -> Self {
        Self::Peer(error)
    }
}

impl From<NoiseError> for LinkError {
    fn from(error: NoiseError) -> Self {
        Self::Noise(error)
    }
}

/// The most message 3 or the confirmation adds to an identity: an encrypted static key (48),
/// the payload's tag (16), the READY byte.
const TRANSPORT_OVERHEAD: usize = 48 + 16 + 1;

/// The link protocol of a mode and a cipher.
fn protocol_for(mode: LinkMode, aes: bool) -> Protocol {
    match (mode, aes) {
        (LinkMode::Hybrid, true) => Protocol::XxHybridAesGcmSha256,
        (LinkMode::Hybrid, false) => Protocol::XxHybridSha256,
        (LinkMode::Classical, true) => Protocol::XxAesGcmSha256,
        (LinkMode::Classical, false) => Protocol::XxSha256,
    }
}

/// Appends `u16 length ‖ body` to `out`.
fn push_frame(out: &mut Vec<u8>, body: &[u8]) -> Result<(), LinkError> {
    let len = u16::try_from(body.len()).map_err(|_| LinkError::FrameTooLarge)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests;
