//! The record layer of a ztmesh Noise link: framing, encryption and rekeying of the data that
//! flows once the handshake is done, sans-IO like [`crate::tls::TlsSession`].
//!
//! A record is a 2-byte big-endian length and a Noise transport message of that length:
//!
//! ```text
//! u16 length ‖ ChaChaPoly(body)         length = body.len() + 16, 17..=65535
//! u16 16     ‖ ChaChaPoly(empty)        the sender has just rekeyed (Noise spec §11.3)
//! ```
//!
//! Data records always carry at least one byte, so an authenticated empty record can only mean
//! "rekey": it cannot be forged or injected, and a receiver that misses it fails the next record.
//! The sender rekeys after a number of records or an amount of time ([`RekeyPolicy`]).
//!
//! Any failure (a record that does not authenticate, a length below the tag size) ends the
//! layer: every later call fails with the same error, and no plaintext of the failed chunk is
//! delivered. Callers own their buffers ([`RecordLayer::seal_into`] and
//! [`RecordLayer::open_into`] write into a slice of the caller's, [`RecordLayer::seal`] and
//! [`RecordLayer::open`] append to a vector), so an idle link holds no I/O buffer beyond an
//! unfinished incoming record.

use std::time::{Duration, Instant};

use super::{NoiseError, Transport, MAX_MESSAGE_LEN, TAG_LEN};

/// The most plaintext one record carries.
pub const MAX_RECORD_BODY: usize = MAX_MESSAGE_LEN - TAG_LEN;

/// Bytes of the length prefix.
const HEADER_LEN: usize = 2;

/// When the sender replaces its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// After this many records (at least 1).
    pub after_records: u64,
    /// Or once this much time has passed since the last rekey.
    pub after: Duration,
}

impl Default for RekeyPolicy {
    /// 65,536 records or 10 minutes, whichever comes first.
    fn default() -> Self {
        Self { after_records: 65_536, after: Duration::from_secs(600) }
    }
}

/// The sealing and opening half of an established Noise link.
pub struct RecordLayer {
    transport: Transport,
    policy: RekeyPolicy,
    sent_since_rekey: u64,
    last_rekey: Instant,
    /// The start of a record whose end has not arrived yet (at most one record).
    pending: Vec<u8>,
    error: Option<NoiseError>,
}

impl RecordLayer {
    /// Wraps the transport of a finished handshake.
    pub fn new(transport: Transport, policy: RekeyPolicy) -> Self {
        let policy = RekeyPolicy { after_records: policy.after_records.max(1), ..policy };
        Self { transport, policy, sent_since_rekey: 0, last_rekey: Instant::now(), pending: Vec::new(), error: None }
    }

    /// The most bytes [`Self::seal_into`] writes for `data_len` bytes of data: the records,
    /// and one rekey record.
    pub fn sealed_len_bound(data_len: usize) -> usize {
        data_len + (data_len.div_ceil(MAX_RECORD_BODY) + 1) * (HEADER_LEN + TAG_LEN)
    }

    /// The most bytes of data [`Self::open_into`] returns for a `chunk_len`-byte chunk.
    pub fn opened_len_bound(&self, chunk_len: usize) -> usize {
        chunk_len + self.pending.len()
    }

    /// Writes the records that carry `data` to the front of `out` (nothing for empty `data`),
    /// with a rekey record wherever the policy calls for one; returns how many bytes.
    ///
    /// Fails with [`NoiseError::MessageSize`] if `out` is shorter than
    /// [`Self::sealed_len_bound`], with [`NoiseError::State`] once the sending nonce is
    /// exhausted, or with the layer's error.
    pub fn seal_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        self.check()?;
        if out.len() < Self::sealed_len_bound(data.len()) {
            return Err(NoiseError::MessageSize);
        }
        let mut written = 0;
        for body in data.chunks(MAX_RECORD_BODY) {
            written += self.seal_record(body, &mut out[written..]).or_else(|e| self.fail(e))?;
            self.sent_since_rekey += 1;
            if self.sent_since_rekey >= self.policy.after_records || self.last_rekey.elapsed() >= self.policy.after {
                written += self.seal_record(&[], &mut out[written..]).or_else(|e| self.fail(e))?;
                self.transport.rekey_outgoing();
                self.sent_since_rekey = 0;
                self.last_rekey = Instant::now();
            }
        }
        Ok(written)
    }

    /// Feeds bytes received from the peer: opens every record they complete, writes their data
    /// to the front of `out`, and keeps the start of an unfinished record for the next call.
    /// Returns how many bytes of data.
    ///
    /// Fails with [`NoiseError::MessageSize`] if `out` is shorter than
    /// [`Self::opened_len_bound`]; with [`NoiseError::Decrypt`] for a record that does not
    /// authenticate and [`NoiseError::Malformed`] for a length below the tag size, after which
    /// `out` holds no plaintext and the layer is done.
    pub fn open_into(&mut self, chunk: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        self.check()?;
        if out.len() < self.opened_len_bound(chunk.len()) {
            return Err(NoiseError::MessageSize);
        }
        match self.open_all(chunk, out) {
            Ok(written) => Ok(written),
            Err((e, written)) => {
                out[..written].fill(0);
                self.pending = Vec::new();
                self.fail(e)
            }
        }
    }

    /// [`Self::seal_into`] appending to a vector.
    pub fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseError> {
        let start = out.len();
        out.resize(start + Self::sealed_len_bound(data.len()), 0);
        let result = self.seal_into(data, &mut out[start..]);
        out.truncate(start + *result.as_ref().unwrap_or(&0));
        result.map(|_| ())
    }

    /// [`Self::open_into`] appending to a vector.
    pub fn open(&mut self, chunk: &[u8], plaintext: &mut Vec<u8>) -> Result<(), NoiseError> {
        let start = plaintext.len();
        plaintext.resize(start + self.opened_len_bound(chunk.len()), 0);
        let result = self.open_into(chunk, &mut plaintext[start..]);
        plaintext.truncate(start + *result.as_ref().unwrap_or(&0));
        result.map(|_| ())
    }

    /// Bytes of an unfinished incoming record.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Records sealed since the last rekey.
    pub fn sent_since_rekey(&self) -> u64 {
        self.sent_since_rekey
    }

    /// Opens the records into `out` (long enough); on failure, also says how much was written.
    fn open_all(&mut self, mut chunk: &[u8], out: &mut [u8]) -> Result<usize, (NoiseError, usize)> {
        let mut written = 0;
        if !self.pending.is_empty() {
            let mut pending = std::mem::take(&mut self.pending);
            let taken = complete_record(&mut pending, chunk).map_err(|e| (e, 0))?;
            chunk = &chunk[taken..];
            match record_len(&pending).map_err(|e| (e, 0))? {
                Some(len) if pending.len() == HEADER_LEN + len => {
                    written += self.open_record(&pending[HEADER_LEN..], out).map_err(|e| (e, 0))?;
                }
                _ => {
                    self.pending = pending;
                    return Ok(0);
                }
            }
        }
        while let Some(len) = record_len(chunk).map_err(|e| (e, written))? {
            let Some(record) = chunk.get(HEADER_LEN..HEADER_LEN + len) else { break };
            written += self.open_record(record, &mut out[written..]).map_err(|e| (e, written))?;
            chunk = &chunk[HEADER_LEN + len..];
        }
        self.pending.extend_from_slice(chunk);
        Ok(written)
    }

    /// Opens one record into the front of `out`; returns the data length (0 for a rekey).
    fn open_record(&mut self, record: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        if record.len() == TAG_LEN {
            self.transport.decrypt_into(record, &mut [])?;
            self.transport.rekey_incoming();
            return Ok(0);
        }
        self.transport.decrypt_into(record, out)
    }

    /// Seals one record into the front of `out` (long enough); returns its length.
    fn seal_record(&mut self, body: &[u8], out: &mut [u8]) -> Result<usize, NoiseError> {
        let len = body.len() + TAG_LEN;
        let header = u16::try_from(len).map_err(|_| NoiseError::MessageSize)?;
        out[..HEADER_LEN].copy_from_slice(&header.to_be_bytes());
        self.transport.encrypt_into(body, &mut out[HEADER_LEN..HEADER_LEN + len])?;
        Ok(HEADER_LEN + len)
    }

    fn check(&self) -> Result<(), NoiseError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fail<T>(&mut self, error: NoiseError) -> Result<T, NoiseError> {
        self.error = Some(error);
        Err(error)
    }
}

impl std::fmt::Debug for RecordLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordLayer")
            .field("policy", &self.policy)
            .field("buffered", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The body length announced by the header at the start of `bytes`, once the header is there.
fn record_len(bytes: &[u8]) -> Result<Option<usize>, NoiseError> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else { return Ok(None) };
    let len = usize::from(u16::from_be_bytes(*header));
    if len < TAG_LEN {
        return Err(NoiseError::Malformed);
    }
    Ok(Some(len))
}

/// Moves bytes from `chunk` to `pending` until `pending` holds a whole record (or `chunk` runs
/// out); returns how many it took.
fn complete_record(pending: &mut Vec<u8>, chunk: &[u8]) -> Result<usize, NoiseError> {
    let mut taken = 0;
    if pending.len() < HEADER_LEN {
        taken = (HEADER_LEN - pending.len()).min(chunk.len());
        pending.extend_from_slice(&chunk[..taken]);
    }
    if let Some(len) = record_len(pending)? {
        let missing = (HEADER_LEN + len).saturating_sub(pending.len());
        let more = missing.min(chunk.len() - taken);
        pending.extend_from_slice(&chunk[taken..taken + more]);
        taken += more;
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Handshake, HandshakeConfig, Protocol};

    fn pair(policy: RekeyPolicy) -> (RecordLayer, RecordLayer) {
        let config = |key: &'static [u8; 32]| HandshakeConfig {
            protocol: Protocol::XxSha256,
            static_private_key: key,
            prologue: b"",
            remote_static_public_key: None,
        };
        let mut a = Handshake::initiator(&config(&[1; 32])).unwrap();
        let mut b = Handshake::responder(&config(&[2; 32])).unwrap();
        b.read_message(&a.write_message(&[]).unwrap()).unwrap();
        a.read_message(&b.write_message(&[]).unwrap()).unwrap();
        b.read_message(&a.write_message(&[]).unwrap()).unwrap();
        (RecordLayer::new(a.into_transport().unwrap(), policy), RecordLayer::new(b.into_transport().unwrap(), policy))
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn data_of_any_size_arrives_whole_in_any_chunking() {
        for size in [1, 100, MAX_RECORD_BODY, MAX_RECORD_BODY + 1, 3 * MAX_RECORD_BODY + 7, 1 << 20] {
            for step in [1usize, 2, 3, 17, 4096, 65_537, usize::MAX] {
                // Byte-by-byte feeding of big data costs a bound-sized buffer per byte here.
                if (step < 17 && size > 100) || (step < 1000 && size > 70_000) {
                    continue;
                }
                let (mut a, mut b) = pair(RekeyPolicy::default());
                let sent = data(size);
                let mut wire = Vec::new();
                a.seal(&sent, &mut wire).unwrap();
                let mut got = Vec::new();
                for piece in wire.chunks(step.min(wire.len())) {
                    b.open(piece, &mut got).unwrap();
                }
                assert_eq!(got, sent, "size {size}, step {step}");
                assert_eq!(b.buffered(), 0);
            }
        }
    }

    #[test]
    fn rekeys_after_the_record_count_and_both_sides_follow() {
        let (mut a, mut b) = pair(RekeyPolicy { after_records: 3, after: Duration::from_secs(3600) });
        let mut got = Vec::new();
        for round in 0..10 {
            let mut wire = Vec::new();
            a.seal(&[round as u8; 10], &mut wire).unwrap();
            b.open(&wire, &mut got).unwrap();
            assert_eq!(a.sent_since_rekey(), (round + 1) % 3);
        }
        assert_eq!(got.len(), 100);
    }

    #[test]
    fn rekeys_after_the_time_limit() {
        let (mut a, mut b) = pair(RekeyPolicy { after_records: u64::MAX, after: Duration::ZERO });
        let mut wire = Vec::new();
        a.seal(b"x", &mut wire).unwrap();
        assert_eq!(wire.len(), 2 * HEADER_LEN + 1 + 2 * TAG_LEN, "a data record and a rekey record");
        let mut got = Vec::new();
        b.open(&wire, &mut got).unwrap();
        assert_eq!(got, b"x");
    }

    #[test]
    fn a_dropped_rekey_record_fails_the_next_record() {
        let (mut a, mut b) = pair(RekeyPolicy { after_records: 1, after: Duration::from_secs(3600) });
        let mut wire = Vec::new();
        a.seal(b"first", &mut wire).unwrap();
        let without_rekey = &wire[..HEADER_LEN + 5 + TAG_LEN];
        let mut got = Vec::new();
        b.open(without_rekey, &mut got).unwrap();
        let mut next = Vec::new();
        a.seal(b"second", &mut next).unwrap();
        assert_eq!(b.open(&next, &mut got), Err(NoiseError::Decrypt));
    }

    #[test]
    fn a_tampered_record_ends_the_layer_and_delivers_nothing_of_the_chunk() {
        let (mut a, mut b) = pair(RekeyPolicy::default());
        let mut wire = Vec::new();
        a.seal(b"good", &mut wire).unwrap();
        a.seal(b"evil", &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut got = b"before".to_vec();
        assert_eq!(b.open(&wire, &mut got), Err(NoiseError::Decrypt));
        assert_eq!(got, b"before");
        assert_eq!(b.open(&[], &mut got), Err(NoiseError::Decrypt), "the layer stays failed");
    }

    #[test]
    fn lengths_below_the_tag_are_malformed_even_split() {
        for bad in [[0u8, 0], [0, 15]] {
            let (_, mut b) = pair(RekeyPolicy::default());
            let mut got = Vec::new();
            b.open(&bad[..1], &mut got).unwrap();
            assert_eq!(b.open(&bad[1..], &mut got), Err(NoiseError::Malformed));
        }
    }

    #[test]
    fn replayed_and_reordered_records_fail() {
        let (mut a, mut b) = pair(RekeyPolicy::default());
        let (mut one, mut two) = (Vec::new(), Vec::new());
        a.seal(b"one", &mut one).unwrap();
        a.seal(b"two", &mut two).unwrap();
        let mut got = Vec::new();
        assert_eq!(b.open(&two, &mut got), Err(NoiseError::Decrypt));
        let (mut a, mut b) = pair(RekeyPolicy::default());
        let mut one = Vec::new();
        a.seal(b"one", &mut one).unwrap();
        b.open(&one, &mut got).unwrap();
        assert_eq!(b.open(&one, &mut got), Err(NoiseError::Decrypt));
    }

    #[test]
    fn seeded_garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let (_, mut b) = pair(RekeyPolicy::default());
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 300) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            let mut got = Vec::new();
            let _ = b.open(&bytes, &mut got);
            assert!(got.is_empty());
        }
    }
}
