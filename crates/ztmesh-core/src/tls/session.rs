//! [`TlsSession`]: one TLS connection, sans-IO.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::{Connection, HandshakeKind};

use super::kx::group_name;
use super::verify::PeerVerifier;
use super::{PqPolicy, TlsError, GROUP_X25519MLKEM768};
use crate::pki::verdicts::is_revoked;
use crate::pki::{PeerIdentity, RevocationSet};

/// The most plaintext a TLS record carries (RFC 8446 §5.1).
const MAX_RECORD_PLAINTEXT: usize = 1 << 14;

/// One TLS connection, client or server, from [`TlsServerContext::accept`](super::TlsServerContext::accept)
/// or [`TlsClientContext::connect`](super::TlsClientContext::connect).
///
/// The caller moves bytes: ciphertext from the network into [`Self::read_tls`], ciphertext for
/// the network out of [`Self::take_outgoing`] (after every call that may produce some), plaintext
/// in with [`Self::write_plaintext`] and out with [`Self::read_plaintext`]. Buffers grow as needed;
/// back-pressure is the caller's (stop reading the socket while plaintext piles up).
///
/// The session is established once the handshake is complete *and* the peer's identity has been
/// established under the context's current trust snapshot: [`Self::peer`] becomes `Some`. Before
/// that, plaintext written is held back and nothing is readable. A failure is final: the error is
/// kept ([`Self::error`]) and returned by every later call that moves data.
pub struct TlsSession {
    conn: Connection,
    verifier: Arc<PeerVerifier>,
    expected_device: Option<String>,
    pq: PqPolicy,
    peer: Option<PeerIdentity>,
    /// The handshake is complete and the peer established: verified, or an anonymous client
    /// that the context accepts.
    established: bool,
    error: Option<TlsError>,
    /// Plaintext written before the peer was established.
    held_back: Vec<u8>,
    /// Plaintext received and not read yet.
    received: Vec<u8>,
    /// We sent close_notify.
    closed: bool,
    /// The peer sent close_notify.
    peer_closed: bool,
}

impl TlsSession {
    pub(crate) fn new(
        mut conn: Connection,
        verifier: Arc<PeerVerifier>,
        expected_device: Option<String>,
        pq: PqPolicy,
    ) -> Self {
        // Writes never fail for lack of room; the caller drains with take_outgoing.
        conn.set_buffer_limit(None);
        Self {
            conn,
            verifier,
            expected_device,
            pq,
            peer: None,
            established: false,
            error: None,
            held_back: Vec::new(),
            received: Vec::new(),
            closed: false,
            peer_closed: false,
        }
    }

    /// Feeds ciphertext received from the peer and processes all of it: handshake messages,
    /// records, alerts. Bytes after the peer's close_notify are ignored. The plaintext waits for
    /// [`Self::read_plaintext`].
    ///
    /// Fails with the session's error, typed: [`TlsError::Peer`] with the PKI's code when the
    /// peer's certificate is refused, [`TlsError::Alert`] when the peer refused us,
    /// [`TlsError::Protocol`] for garbage, and so on. Send [`Self::take_outgoing`] afterwards: it
    /// holds the alert that tells the peer.
    pub fn read_tls(&mut self, data: &[u8]) -> Result<(), TlsError> {
        let start = self.received.len();
        self.received.resize(start + Self::read_len_bound(data.len()), 0);
        let mut received = std::mem::take(&mut self.received);
        let result = self.read_tls_into(data, &mut received[start..]);
        received.truncate(start + *result.as_ref().unwrap_or(&0));
        self.received = received;
        result.map(|_| ())
    }

    /// The most plaintext [`Self::read_tls_into`] writes for `data_len` bytes of ciphertext:
    /// the plaintext they carry, and that of one record begun in an earlier call.
    pub fn read_len_bound(data_len: usize) -> usize {
        data_len + MAX_RECORD_PLAINTEXT
    }

    /// Like [`Self::read_tls`], but writes the plaintext to the front of `out` at once instead of
    /// keeping it, and returns its length: a session fed this way holds no plaintext buffer of
    /// its own. `out` must hold [`Self::read_len_bound`] bytes, or the call fails with
    /// [`TlsError::Internal`] before reading anything.
    pub fn read_tls_into(&mut self, mut data: &[u8], out: &mut [u8]) -> Result<usize, TlsError> {
        self.check()?;
        if out.len() < Self::read_len_bound(data.len()) {
            return Err(TlsError::Internal);
        }
        let mut written = 0;
        while !data.is_empty() {
            let read = match self.conn.read_tls(&mut data) {
                Ok(read) => read,
                Err(_) => return self.fail(TlsError::Protocol),
            };
            match self.conn.process_new_packets() {
                Ok(state) => self.peer_closed |= state.peer_has_closed(),
                Err(e) => return self.fail(TlsError::from_rustls(&e, self.pq)),
            }
            written += self.progress(&mut out[written..])?;
            if read == 0 {
                // close_notify received: rustls reads nothing more.
                break;
            }
        }
        Ok(written)
    }

    /// Appends the ciphertext waiting to be sent to `out`; returns how many bytes.
    pub fn write_tls(&mut self, out: &mut Vec<u8>) -> usize {
        let mut written = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n,
            }
        }
        written
    }

    /// Writes as much of the ciphertext waiting to be sent as fits to the front of `out`;
    /// returns how many bytes ([`Self::wants_write`] tells whether more is waiting).
    pub fn write_tls_into(&mut self, out: &mut [u8]) -> usize {
        let mut written = 0;
        while self.conn.wants_write() && written < out.len() {
            let mut rest = &mut out[written..];
            match self.conn.write_tls(&mut rest) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n,
            }
        }
        written
    }

    /// The ciphertext waiting to be sent.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_tls(&mut out);
        out
    }

    /// Whether ciphertext is waiting to be sent.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Queues plaintext for the peer. Before the session is established it is held back, and sent
    /// once the peer's identity is established; it is discarded if that fails.
    ///
    /// Fails with the session's error, or [`TlsError::Closed`] after [`Self::send_close_notify`].
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<(), TlsError> {
        self.check()?;
        if self.closed {
            return Err(TlsError::Closed);
        }
        if !self.established {
            self.held_back.extend_from_slice(data);
            return Ok(());
        }
        self.conn.writer().write_all(data).map_err(|_| TlsError::Internal)
    }

    /// Moves the plaintext received so far to the end of `out`; returns how many bytes.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.received.len();
        if out.is_empty() {
            std::mem::swap(out, &mut self.received);
        } else {
            out.append(&mut self.received);
        }
        n
    }

    /// Whether the session is still on its way to being established: neither established nor
    /// failed.
    pub fn is_handshaking(&self) -> bool {
        !self.established && self.error.is_none()
    }

    /// Whether the session is established (and has not failed since): its peer verified, or, on
    /// a server that accepts anonymous clients, a client that presented no certificate.
    pub fn is_established(&self) -> bool {
        self.established && self.error.is_none()
    }

    /// The peer, once the session is established; `None` again once it failed, and for an
    /// anonymous client. (In TLS 1.3 a
    /// client finishes its handshake before the server has judged its certificate, so a client
    /// session can be established first and fail with the server's alert afterwards.)
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref().filter(|_| self.error.is_none())
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&TlsError> {
        self.error.as_ref()
    }

    /// The negotiated key exchange group, `"X25519MLKEM768"` or `"X25519"`, once known.
    pub fn kx_group(&self) -> Option<&'static str> {
        self.conn.negotiated_key_exchange_group().and_then(|group| group_name(group.name()))
    }

    /// The negotiated TLS 1.3 cipher suite, once known, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.conn.negotiated_cipher_suite().and_then(|suite| suite.suite().as_str())
    }

    /// Whether the key exchange was post-quantum (X25519MLKEM768).
    pub fn is_post_quantum(&self) -> bool {
        self.kx_group() == Some(GROUP_X25519MLKEM768)
    }

    /// Whether the handshake resumed an earlier session (its peer was verified again anyway).
    pub fn is_resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The negotiated application protocol, once known.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        matches!(self.conn, Connection::Server(_))
    }

    /// Queues a close_notify alert: no more plaintext is accepted from the caller. The peer may
    /// still send; read until [`Self::peer_closed`].
    pub fn send_close_notify(&mut self) {
        if !self.closed {
            self.closed = true;
            self.conn.send_close_notify();
        }
    }

    /// Whether the peer sent close_notify: it sends nothing more.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Whether the established peer is revoked in `revocations`, by serial or by key: after a
    /// revocation update, the caller closes the live sessions for which this is true.
    pub fn is_peer_revoked(&self, revocations: &RevocationSet) -> bool {
        self.peer().is_some_and(|peer| is_revoked(peer, revocations))
    }

    fn check(&self) -> Result<(), TlsError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, error: TlsError) -> Result<T, TlsError> {
        self.held_back.clear();
        self.error = Some(error.clone());
        Err(error)
    }

    /// After rustls made progress: establish the peer when the handshake has just completed, then
    /// collect the plaintext.
    fn progress(&mut self, out: &mut [u8]) -> Result<usize, TlsError> {
        if !self.established && !self.conn.is_handshaking() {
            if let Err(e) = self.establish() {
                // rustls completed the handshake, so it queued no alert; tell the peer we are done.
                self.conn.send_close_notify();
                self.closed = true;
                return self.fail(e);
            }
        }
        let mut written = 0;
        if self.established {
            // Drains rustls' buffer (`out` has room for all of it); WouldBlock only says it is empty.
            while written < out.len() {
                match self.conn.reader().read(&mut out[written..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => written += n,
                }
            }
        }
        Ok(written)
    }

    /// The checks between a completed handshake and an established session.
    fn establish(&mut self) -> Result<(), TlsError> {
        if self.conn.alpn_protocol().is_none() {
            return Err(TlsError::NoApplicationProtocol);
        }
        if self.pq == PqPolicy::Require && !self.is_post_quantum() {
            return Err(TlsError::NoPostQuantum);
        }
        let certificates = self.conn.peer_certificates().unwrap_or_default();
        if certificates.is_empty() {
            if !(self.is_server() && self.verifier.allows_anonymous_clients()) {
                return Err(TlsError::NoCertificate);
            }
        } else {
            let chain: Vec<&[u8]> = certificates.iter().map(|c| c.as_ref()).collect();
            let peer = self
                .verifier
                .identity(&chain, self.expected_device.as_deref(), SystemTime::now())
                .map_err(TlsError::Peer)?;
            self.peer = Some(peer);
        }
        self.established = true;
        if !self.held_back.is_empty() {
            let held_back = std::mem::take(&mut self.held_back);
            self.conn.writer().write_all(&held_back).map_err(|_| TlsError::Internal)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &self.is_server())
            .field("peer", &self.peer)
            .field("error", &self.error)
            .field("kx_group", &self.kx_group())
            .finish_non_exhaustive()
    }
}
