//! Mutual TLS 1.3 between ztmesh devices (rustls), sans-IO: the caller moves bytes, this module
//! decides who is on the other end.
//!
//! # What a session guarantees
//!
//! - TLS 1.3 only (rustls is built without TLS 1.2), both sides authenticated by certificate
//!   (two exceptions, for enrollment, where the device has no certificate yet: a server built with
//!   `anonymous_clients` also accepts clients with none, established with no peer; and
//!   [`TlsClientContext::anonymous`] presents none and authenticates the server against a root
//!   known only by its key's SHA-256, taken from the server's chain, plus a required role), ALPN
//!   `ztmesh/1` required on both sides: a peer that offers or selects no common protocol is refused.
//! - Every peer certificate chain is decided by [`pki::verify_peer`](crate::pki::verify_peer), with
//!   [`RequiredUsage::ClientAuth`](crate::pki::RequiredUsage) for clients and `ServerAuth` for
//!   servers: chain, tenant, device, revocation by serial and SPKI, pins, key usage. A refusal
//!   surfaces as [`TlsError::Peer`] carrying the [`VerifyError`](crate::pki::VerifyError), so its PKI
//!   code (`ERR_CERT_REVOKED`, `ERR_TENANT_MISMATCH`, …) reaches the caller unchanged.
//! - Handshake signatures (CertificateVerify) are ECDSA P-256/SHA-256 only, and our own private key
//!   stays behind a [`CertSigner`](crate::pki::CertSigner): rustls never holds key bytes.
//! - Key exchange follows [`PqPolicy`]: the hybrid [`X25519MLKEM768`] (implemented here from ring's
//!   X25519 and libcrux's ML-KEM-768), with X25519 as fallback unless post-quantum is required.
//! - No plaintext moves in either direction before the peer's identity is established: nothing
//!   written with [`TlsSession::write_plaintext`] leaves before [`TlsSession::peer`] is set, and
//!   nothing is handed to the reader before either.
//!
//! # Live trust updates and resumption
//!
//! The trust anchors and the [`RevocationSet`](crate::pki::RevocationSet) of a context live in one
//! swappable snapshot; [`TlsServerContext::set_revocations`] (and `set_trust`, and the client
//! twins) replace it, and every handshake that starts afterwards sees the new state.
//!
//! TLS 1.3 resumption (stateless tickets, one rotating ticket key per server context) skips
//! certificate verification inside rustls. Two independent defences keep a revoked certificate
//! from coming back through it:
//!
//! 1. Every trust update rotates the server's ticket key and empties the client's ticket store, so
//!    tickets issued before the update are useless and the next handshake is a full one.
//! 2. When any handshake completes, full or resumed, the session re-establishes the peer's identity
//!    from the chain rustls holds (for a resumed session: the chain stored in the ticket) under the
//!    *current* snapshot: [`verify_peer`](crate::pki::verify_peer)'s verdict, reused when this very
//!    snapshot already reached it (the verifier's, moments earlier, in a full handshake), computed
//!    again otherwise. Snapshots start with no verdicts, so nothing decided before an update
//!    survives it. A refusal fails the session with the PKI code and sends `close_notify` before
//!    any application data moves.
//!
//! Resumption is `psk_dhe_ke` only: a resumed handshake runs the negotiated key exchange again,
//! post-quantum included, so it keeps forward secrecy. 0-RTT and 0.5-RTT data are off.
//!
//! Live connections are not torn down by an update: the caller checks
//! [`TlsSession::is_peer_revoked`] against the new set and closes the ones that match.
//!
//! # Driving a session
//!
//! ```text
//! let mut session = server_ctx.accept()?;
//! loop {
//!     socket.write_all(&session.take_outgoing())?;     // handshake flights, records, alerts
//!     let n = socket.read(&mut buf)?;
//!     session.read_tls(&buf[..n])?;                      // typed TlsError on any failure
//!     if let Some(peer) = session.peer() { … }           // set once the handshake is complete
//!     session.read_plaintext(&mut inbox);
//! }
//! ```
//!
//! After a failed [`TlsSession::read_tls`], call [`TlsSession::take_outgoing`] once more: it holds
//! the alert telling the peer why.
//!
//! # Modules
//!
//! | module | what |
//! | --- | --- |
//! | `context` | [`TlsServerContext`], [`TlsClientContext`] and their settings |
//! | `session` | [`TlsSession`] |
//! | `kx` | the X25519MLKEM768 hybrid group, and the groups of each [`PqPolicy`] |
//! | `verify` | the rustls verifiers over `verify_peer`, under the swappable trust of `pki::snapshot` |
//! | `sign` | rustls signing through a [`CertSigner`](crate::pki::CertSigner) |
//! | `error` | [`TlsError`] |

mod context;
mod error;
mod kx;
mod session;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

pub use context::{AnonymousClientSettings, ClientSettings, ServerSettings, TlsClientContext, TlsServerContext};
pub use error::TlsError;
pub use kx::{
    X25519MLKEM768, X25519MLKEM768_CLIENT_SHARE_LEN, X25519MLKEM768_SECRET_LEN, X25519MLKEM768_SERVER_SHARE_LEN,
};
pub use session::TlsSession;

/// The application protocol every ztmesh TLS connection negotiates.
pub const ALPN_ZTMESH_1: &[u8] = b"ztmesh/1";

/// The name [`TlsSession::kx_group`] reports for the hybrid group (codepoint 0x11EC).
pub const GROUP_X25519MLKEM768: &str = "X25519MLKEM768";

/// The name [`TlsSession::kx_group`] reports for classical X25519 (codepoint 0x001D).
pub const GROUP_X25519: &str = "X25519";

/// Which key exchanges a context offers (client) or accepts (server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PqPolicy {
    /// Only X25519MLKEM768. A peer without it fails the handshake; a server reports
    /// [`TlsError::NoPostQuantum`].
    Require,
    /// X25519MLKEM768 first, X25519 as fallback. A client sends both key shares (one X25519 key
    /// serves both), so falling back costs no extra round trip. A server takes the first group in
    /// the client's order that it supports: X25519MLKEM768 for ztmesh, Go (1.24+) and OpenSSL
    /// (3.5+) clients.
    #[default]
    Prefer,
    /// Only X25519.
    Off,
}
