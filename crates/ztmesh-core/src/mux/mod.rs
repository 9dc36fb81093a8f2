//! The message layer: typed, multiplexed, flow-controlled streams over one secure link.
//!
//! One authenticated link (TLS or Noise) to a peer carries many independent streams, each
//! opened with a protocol id (`/ztmesh/quote/1`, `/ztmesh/gossip/1`…), as js-libp2p does with
//! yamux and multistream-select. This module owns every byte of it, sans-IO: [`Session::feed`]
//! takes received bytes and returns events; the local calls ([`Session::open`],
//! [`Session::send`]…) write the frames to send into a caller's buffer.
//!
//! # Frames
//!
//! Every frame starts with a 12-byte header, big-endian:
//!
//! | bytes | field | |
//! | --- | --- | --- |
//! | 0 | version | [`VERSION`] (1) |
//! | 1 | type | [`FrameType`] |
//! | 2..4 | flags | none are defined: must be zero |
//! | 4..8 | stream id | 0 for the session ([`FrameType::GoAway`]), else the stream |
//! | 8..12 | value | the body length (`Open`, `Data`), a credit (`Credit`), a code (`Reset`, `GoAway`), or 0 |
//!
//! `Open` carries the protocol id as its body (1 to [`MAX_PROTOCOL_LEN`] bytes of
//! `[A-Za-z0-9/._-]`); `Data` carries 1 to [`MAX_FRAME_BODY`] (65,507) bytes. No other type
//! has a body.
//!
//! # Streams
//!
//! The initiator of the session opens odd ids, the responder even ids, each strictly
//! increasing, so two sides never pick the same id and an id is never reused. The opener sends
//! `Open`; the other side answers `Accept` (it has a handler) or `Reset` with a code
//! ([`reset_code`]; [`MuxError::from_reset`] says what a reset means to the opener, so the
//! binding reports refusals and resets with their typed codes). Each direction half-closes with
//! `Close`; either side may `Reset`. A stream
//! is forgotten once both directions are closed or it was reset; frames for a forgotten id still
//! in flight are ignored.
//!
//! # Flow control
//!
//! Every stream starts with [`INITIAL_WINDOW`] bytes of credit in each direction. The receiver
//! returns credit only as its application consumes data ([`Session::consumed`], which decides
//! alone when credit goes back: the caller reports every read), so a stalled
//! reader stops its own stream and nothing else, and the bytes buffered for a session are at
//! most `max_streams × window`. A peer that sends beyond its credit is cut off
//! ([`MuxError::Window`]), as is one that opens streams past the limit again and again, or breaks
//! any other rule: every violation is a typed [`MuxError`], after which the session stays
//! failed and the frames to send hold a `GoAway` with the reason.
//!
//! # Why the whole codec is here, not in TypeScript
//!
//! The project's rule is that the core owns every protocol byte. Decoding costs one native
//! crossing per received chunk (all complete frames of the chunk come back at once; the data of
//! a frame that lies within the chunk is returned as a range of it, without a copy, and only a
//! frame split across chunks is copied, once, into a caller's buffer); encoding costs one crossing per write, which copies the
//! payload once into a caller's buffer behind its headers. Both buffers are regions of the
//! binding's shared slabs, so no call allocates (fresh 64 KiB allocations cost page faults, and
//! cost more than the copy). A TypeScript writer of the header would save the copy, but it would
//! be a second copy of the layout; a write is already one crossing into the record layer of the
//! link, so the mux adds one crossing per write and per chunk, not per frame.

mod session;
#[cfg(test)]
mod tests;

use std::fmt;

pub use session::{Event, MuxConfig, Role, Session};

/// The version byte of every frame.
pub const VERSION: u8 = 1;
/// The length of a frame header.
pub const HEADER_LEN: usize = 12;
/// The largest body of a `Data` frame: with its header, it fills one Noise record (65,535
/// bytes less the 16-byte tag), so on a Noise link frames and records line up and most frames
/// are delivered without a copy.
pub const MAX_FRAME_BODY: u32 = 65_535 - 16 - HEADER_LEN as u32;
/// The longest protocol id.
pub const MAX_PROTOCOL_LEN: usize = 64;
/// The credit each direction of a new stream starts with.
pub const INITIAL_WINDOW: u32 = 256 * 1024;
/// The most credit a stream may hold: more is a violation (it would only buy memory).
pub const MAX_WINDOW: u32 = 16 * 1024 * 1024;

/// The codes a `Reset` frame carries (other values are accepted and reported as they are).
pub mod reset_code {
    /// The stream was cancelled by its application.
    pub const CANCEL: u32 = 0;
    /// No handler for the protocol id.
    pub const UNSUPPORTED_PROTOCOL: u32 = 1;
    /// The receiver already has as many streams as it allows.
    pub const REFUSED: u32 = 2;
    /// The handler failed.
    pub const INTERNAL: u32 = 3;
    /// The sender waited too long for credit the receiver never returned.
    pub const CREDIT_TIMEOUT: u32 = 4;
}

/// The codes a `GoAway` frame carries.
pub mod go_away_code {
    /// A normal end of the session.
    pub const NORMAL: u32 = 0;
    /// The receiver of the go-away broke the framing or stream rules.
    pub const PROTOCOL: u32 = 1;
    /// The receiver of the go-away sent beyond its credit.
    pub const WINDOW: u32 = 2;
    /// The receiver of the go-away kept opening streams past the limit.
    pub const TOO_MANY_STREAMS: u32 = 3;
}

/// The type byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Opens a stream; the body is the protocol id.
    Open = 0,
    /// Accepts a stream the peer opened.
    Accept = 1,
    /// Stream data.
    Data = 2,
    /// Grants the peer `value` more bytes of credit on the stream.
    Credit = 3,
    /// Half-closes the sender's direction of the stream.
    Close = 4,
    /// Abandons the stream in both directions with the code in `value`.
    Reset = 5,
    /// Ends the session with the code in `value` (stream id 0).
    GoAway = 6,
}

impl FrameType {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Open,
            1 => Self::Accept,
            2 => Self::Data,
            3 => Self::Credit,
            4 => Self::Close,
            5 => Self::Reset,
            6 => Self::GoAway,
            _ => return None,
        })
    }
}

/// A decoded frame, borrowing its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its type.
    pub kind: FrameType,
    /// Its stream (0 for the session).
    pub stream: u32,
    /// The header's value field (see the module docs).
    pub value: u32,
    /// The body (`Open`, `Data`), empty otherwise.
    pub body: &'a [u8],
    /// Where the body starts in the chunk given to [`FrameDecoder::decode`], when the whole
    /// frame came in that chunk (its data can then be delivered without a copy).
    pub chunk_offset: Option<usize>,
}

/// Appends one frame to `out`. The caller keeps to the rules (body only on `Open` and `Data`).
pub fn encode_frame(kind: FrameType, stream: u32, value: u32, body: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&header(kind, stream, value));
    out.extend_from_slice(body);
}

/// The header of a frame: the one place its layout is written.
fn header(kind: FrameType, stream: u32, value: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1] = kind as u8;
    header[4..8].copy_from_slice(&stream.to_be_bytes());
    header[8..12].copy_from_slice(&value.to_be_bytes());
    header
}

/// Whether `id` is a valid protocol id: 1 to [`MAX_PROTOCOL_LEN`] bytes of `[A-Za-z0-9/._-]`.
pub fn is_valid_protocol_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PROTOCOL_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
}

/// Cuts a byte stream into frames, at any chunking.
///
/// A header is checked as soon as its 12 bytes are in, before any of its body is buffered, so
/// a peer cannot make the decoder hold more than one header and one largest body.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// The start of a frame split across chunks (at most `HEADER_LEN + MAX_FRAME_BODY`).
    pending: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held of a frame not complete yet.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Decodes every complete frame of `chunk` (after what earlier chunks left) and hands each
    /// to `on_frame`; stops at the first error, from a header or from `on_frame`.
    pub fn decode<E: From<MuxError>>(
        &mut self,
        mut chunk: &[u8],
        mut on_frame: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let original_len = chunk.len();
        // First finish a frame split across chunks, copying only its missing bytes.
        if !self.pending.is_empty() {
            let need = if self.pending.len() < HEADER_LEN { HEADER_LEN } else { frame_len(&self.pending)? };
            let take = (need - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.pending.len() == HEADER_LEN {
                let total = frame_len(&self.pending)?;
                let take = (total - HEADER_LEN).min(chunk.len());
                self.pending.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
            }
            if self.pending.len() < HEADER_LEN || self.pending.len() < frame_len(&self.pending)? {
                return Ok(());
            }
            // Parsed in place and cleared, not taken: the buffer keeps its capacity, since a
            // fresh 64 KiB allocation per frame costs page faults.
            let result = parse(&self.pending).map(&mut on_frame);
            self.pending.clear();
            result??;
        }
        // Then whole frames straight from the chunk, keeping only a partial tail.
        let mut position = original_len - chunk.len();
        while !chunk.is_empty() {
            if chunk.len() < HEADER_LEN {
                self.pending.extend_from_slice(chunk);
                return Ok(());
            }
            let total = frame_len(chunk)?;
            if chunk.len() < total {
                self.pending.extend_from_slice(chunk);
                return Ok(());
            }
            let frame = parse(&chunk[..total])?;
            on_frame(Frame { chunk_offset: Some(position + HEADER_LEN), ..frame })?;
            chunk = &chunk[total..];
            position += total;
        }
        Ok(())
    }
}

/// Checks a header and returns the length of its whole frame.
fn frame_len(bytes: &[u8]) -> Result<usize, MuxError> {
    let header = Header::check(bytes)?;
    Ok(HEADER_LEN + header.body_len())
}

/// Parses one whole frame whose header [`frame_len`] accepted.
fn parse(bytes: &[u8]) -> Result<Frame<'_>, MuxError> {
    let header = Header::check(bytes)?;
    let body = &bytes[HEADER_LEN..];
    if header.kind == FrameType::Open && !is_valid_protocol_id(body) {
        return Err(MuxError::ProtocolId);
    }
    Ok(Frame { kind: header.kind, stream: header.stream, value: header.value, body, chunk_offset: None })
}

/// The fields of a header that passed every check that needs no session state.
struct Header {
    kind: FrameType,
    stream: u32,
    value: u32,
}

impl Header {
    fn check(bytes: &[u8]) -> Result<Self, MuxError> {
        let field = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if bytes.len() < HEADER_LEN || bytes[0] != VERSION || bytes[2] != 0 || bytes[3] != 0 {
            return Err(MuxError::Malformed);
        }
        let kind = FrameType::from_byte(bytes[1]).ok_or(MuxError::Malformed)?;
        let (stream, value) = (field(4), field(8));
        if (kind == FrameType::GoAway) != (stream == 0) {
            return Err(MuxError::StreamId);
        }
        match kind {
            FrameType::Open if value == 0 || value as usize > MAX_PROTOCOL_LEN => return Err(MuxError::ProtocolId),
            FrameType::Data if value > MAX_FRAME_BODY => return Err(MuxError::FrameTooLarge),
            FrameType::Data | FrameType::Credit if value == 0 => return Err(MuxError::Malformed),
            FrameType::Accept | FrameType::Close if value != 0 => return Err(MuxError::Malformed),
            _ => {}
        }
        Ok(Self { kind, stream, value })
    }

    fn body_len(&self) -> usize {
        match self.kind {
            FrameType::Open | FrameType::Data => self.value as usize,
            _ => 0,
        }
    }
}

/// Why the message layer refused a frame or a call.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxError {
    /// A frame with another version, an unknown type, flags set, or a value its type forbids.
    Malformed,
    /// A `Data` frame longer than [`MAX_FRAME_BODY`].
    FrameTooLarge,
    /// A protocol id that is empty, too long, or has characters outside `[A-Za-z0-9/._-]`.
    ProtocolId,
    /// A stream id of the wrong parity, reused, not opened yet, or 0 where a stream is needed.
    StreamId,
    /// A frame the state of its stream does not allow (data before accept or after close…).
    State,
    /// The peer sent beyond its credit, or granted more than [`MAX_WINDOW`].
    Window,
    /// Too many streams: locally at the limit, or a peer that kept opening past it.
    TooManyStreams,
    /// The peer ended the session with this go-away code.
    GoAway(u32),
    /// The peer refused a stream this side opened: it has no handler for the protocol id.
    UnsupportedProtocol,
    /// The peer reset the stream (or refused its open) with this [`reset_code`].
    Reset(u32),
    /// A call on a stream that is closed in that direction, reset, or unknown, or on a session
    /// that has ended.
    Closed,
    /// A session setting out of range.
    Config,
    /// An output buffer smaller than the call's bound.
    BufferTooSmall,
}

impl MuxError {
    /// What a peer's reset with `code` means to this side: for a stream this side opened and
    /// the peer had not accepted yet (`refused_open`), a refusal by its code; otherwise a reset.
    pub fn from_reset(code: u32, refused_open: bool) -> Self {
        match code {
            reset_code::UNSUPPORTED_PROTOCOL if refused_open => Self::UnsupportedProtocol,
            reset_code::REFUSED if refused_open => Self::TooManyStreams,
            _ => Self::Reset(code),
        }
    }

    /// The go-away code that tells the peer why the session ends.
    pub fn go_away_code(self) -> u32 {
        match self {
            Self::Window => go_away_code::WINDOW,
            Self::TooManyStreams => go_away_code::TOO_MANY_STREAMS,
            _ => go_away_code::PROTOCOL,
        }
    }
}

impl fmt::Display for MuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed mux frame"),
            Self::FrameTooLarge => write!(f, "mux frame body larger than {MAX_FRAME_BODY} bytes"),
            Self::ProtocolId => f.write_str("invalid protocol id (1 to 64 characters of [A-Za-z0-9/._-])"),
            Self::StreamId => f.write_str("invalid mux stream id"),
            Self::State => f.write_str("mux frame not allowed in the state of its stream"),
            Self::Window => f.write_str("the peer sent beyond its credit or granted too much"),
            Self::TooManyStreams => f.write_str("too many mux streams"),
            Self::GoAway(code) => write!(f, "the peer ended the mux session (go-away code {code})"),
            Self::UnsupportedProtocol => f.write_str("the peer has no handler for this protocol"),
            Self::Reset(code) => write!(f, "the peer reset the stream (code {code})"),
            Self::Closed => f.write_str("the mux stream or session is closed"),
            Self::Config => f.write_str("a mux setting is out of range"),
            Self::BufferTooSmall => f.write_str("the output buffer is smaller than the bound"),
        }
    }
}

impl std::error::Error for MuxError {}

impl crate::ErrorCode for MuxError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "ERR_MUX_MALFORMED",
            Self::FrameTooLarge => "ERR_MUX_FRAME_TOO_LARGE",
            Self::ProtocolId => "ERR_MUX_PROTOCOL_ID",
            Self::StreamId => "ERR_MUX_STREAM_ID",
            Self::State => "ERR_MUX_STATE",
            Self::Window => "ERR_MUX_WINDOW",
            Self::TooManyStreams => "ERR_MUX_TOO_MANY_STREAMS",
            Self::GoAway(_) => "ERR_MUX_GOAWAY",
            Self::UnsupportedProtocol => "ERR_MUX_UNSUPPORTED_PROTOCOL",
            Self::Reset(_) => "ERR_MUX_RESET",
            Self::Closed => "ERR_CLOSED",
            Self::Config => "ERR_CONFIG",
            Self::BufferTooSmall => "ERR_BUFFER_TOO_SMALL",
        }
    }
}
