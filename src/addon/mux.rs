//! The message layer's session (sans-IO): frames in, events out; local calls return the frames
//! to send.

use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;
use ztmesh_core::mux::{self, Event, MuxConfig, Role, Session};
use ztmesh_core::ErrorCode;

use crate::error::{byte_length, invalid_argument, sync, Failure, Result};

/// What the peer did: `kind` is `opened`, `accepted`, `data`, `credit`, `closed` or `reset`.
#[napi(object, object_from_js = false)]
pub struct MuxEvent {
    pub kind: &'static str,
    pub stream: u32,
    /// The protocol id (`opened`).
    pub protocol: Option<String>,
    /// Where the bytes start in the feed's `data` buffer (`data`).
    pub start: Option<u32>,
    /// Where they end (`data`).
    pub end: Option<u32>,
    /// Whether the bytes are in the chunk fed (else in the `data` buffer) (`data`).
    pub in_chunk: Option<bool>,
    /// The reset code (`reset`).
    pub code: Option<u32>,
    /// What the reset means to this side (`reset`): `ERR_MUX_UNSUPPORTED_PROTOCOL` or
    /// `ERR_MUX_TOO_MANY_STREAMS` for a refused open, else `ERR_MUX_RESET`.
    pub error_code: Option<&'static str>,
    /// Its message (`reset`).
    pub error_message: Option<String>,
}

/// The result of feeding a chunk: the events, the bytes of `data` used, the frames to send, and
/// the error that ended the session (its code and message) if one did; the events before it
/// stay valid.
#[napi(object, object_from_js = false)]
pub struct MuxFeed {
    pub events: Vec<MuxEvent>,
    pub used: u32,
    pub out: Option<Buffer>,
    pub error_code: Option<&'static str>,
    pub error_message: Option<String>,
    /// The peer's go-away code, when a go-away ended the session.
    pub go_away_code: Option<u32>,
}

/// A stream opened by this side, and the frames that open it.
#[napi(object)]
pub struct MuxOpened {
    pub stream: u32,
    pub out: Buffer,
}

/// The protocol constants of the message layer.
#[napi(object)]
pub struct MuxLimits {
    pub header_length: u32,
    pub max_frame_body: u32,
    pub max_protocol_length: u32,
    pub initial_window: u32,
    pub max_window: u32,
}

/// The codes a stream reset carries (the core's `reset_code`).
#[napi(object)]
pub struct MuxResetCodes {
    /// The stream was cancelled by its application.
    pub cancel: u32,
    /// No handler for the protocol id.
    pub unsupported_protocol: u32,
    /// The receiver already has as many streams as it allows.
    pub refused: u32,
    /// The handler failed.
    pub internal: u32,
    /// The sender waited too long for credit.
    pub credit_timeout: u32,
}

/// The codes a stream reset carries.
#[napi]
pub fn mux_reset_codes() -> MuxResetCodes {
    use mux::reset_code;
    MuxResetCodes {
        cancel: reset_code::CANCEL,
        unsupported_protocol: reset_code::UNSUPPORTED_PROTOCOL,
        refused: reset_code::REFUSED,
        internal: reset_code::INTERNAL,
        credit_timeout: reset_code::CREDIT_TIMEOUT,
    }
}

/// The codes a go-away carries (the core's `go_away_code`).
#[napi(object)]
pub struct MuxGoAwayCodes {
    /// A normal end of the session.
    pub normal: u32,
    /// The receiver of the go-away broke the framing or stream rules.
    pub protocol: u32,
    /// The receiver of the go-away sent beyond its credit.
    pub window: u32,
    /// The receiver of the go-away kept opening streams past the limit.
    pub too_many_streams: u32,
}

/// The codes a go-away carries.
#[napi]
pub fn mux_go_away_codes() -> MuxGoAwayCodes {
    use mux::go_away_code;
    MuxGoAwayCodes {
        normal: go_away_code::NORMAL,
        protocol: go_away_code::PROTOCOL,
        window: go_away_code::WINDOW,
        too_many_streams: go_away_code::TOO_MANY_STREAMS,
    }
}

/// The protocol constants of the message layer.
#[napi]
pub fn mux_limits() -> MuxLimits {
    MuxLimits {
        header_length: mux::HEADER_LEN as u32,
        max_frame_body: mux::MAX_FRAME_BODY,
        max_protocol_length: mux::MAX_PROTOCOL_LEN as u32,
        initial_window: mux::INITIAL_WINDOW,
        max_window: mux::MAX_WINDOW,
    }
}

/// One side of a multiplexed session over one secure link.
#[napi]
pub struct MuxSession {
    inner: Session,
    last_taken: u32,
}

#[napi]
impl MuxSession {
    /// A session; `role` is `initiator` (odd ids) or `responder` (even ids).
    #[napi(constructor)]
    pub fn new(role: String, max_streams: Option<u32>, window: Option<u32>) -> Result<Self> {
        sync(|| {
            let role = match role.as_str() {
                "initiator" => Role::Initiator,
                "responder" => Role::Responder,
                _ => return Err(invalid_argument("role must be 'initiator' or 'responder'")),
            };
            let defaults = MuxConfig::new(role);
            let config = MuxConfig {
                max_streams: max_streams.unwrap_or(defaults.max_streams),
                window: window.unwrap_or(defaults.window),
                role,
            };
            Ok(Self { inner: Session::new(config)?, last_taken: 0 })
        })
    }

    /// The size `data` needs for a `feed` of `chunk_length` bytes.
    #[napi]
    pub fn data_length_bound(&self, chunk_length: u32) -> f64 {
        self.inner.data_len_bound(chunk_length as usize) as f64
    }

    /// Takes received bytes; the data of frames split across chunks is copied to the front of
    /// `data`, the rest is a range of `chunk`. Never throws for what the peer sent (see `MuxFeed`).
    #[napi]
    pub fn feed(&mut self, chunk: &[u8], mut data: BufferSlice) -> Result<MuxFeed> {
        sync(|| {
            let (mut events, mut out) = (Vec::new(), Vec::new());
            let result = self.inner.feed(chunk, &mut events, &mut data, &mut out);
            if result == Err(mux::MuxError::BufferTooSmall) {
                return Err(mux::MuxError::BufferTooSmall.into());
            }
            Ok(MuxFeed {
                used: byte_length(*result.as_ref().unwrap_or(&0))?,
                events: events.into_iter().map(convert).collect::<std::result::Result<_, _>>()?,
                out: (!out.is_empty()).then(|| out.into()),
                error_code: result.as_ref().err().map(ErrorCode::code),
                go_away_code: match result {
                    Err(mux::MuxError::GoAway(code)) => Some(code),
                    _ => None,
                },
                error_message: result.err().map(|e| e.to_string()),
            })
        })
    }

    /// Opens a stream for `protocol`.
    #[napi]
    pub fn open(&mut self, protocol: String) -> Result<MuxOpened> {
        sync(|| {
            let mut out = Vec::new();
            let stream = self.inner.open(&protocol, &mut out)?;
            Ok(MuxOpened { stream, out: out.into() })
        })
    }

    /// Accepts a stream the peer opened; empty when the peer has reset it already.
    #[napi]
    pub fn accept(&mut self, stream: u32) -> Result<Buffer> {
        frames(|out| self.inner.accept(stream, out).map(drop))
    }

    /// Refuses a stream the peer opened with a reset code.
    #[napi]
    pub fn refuse(&mut self, stream: u32, code: u32) -> Result<Buffer> {
        frames(|out| self.inner.refuse(stream, code, out))
    }

    /// The room `send` needs to frame all of `data_length` bytes.
    #[napi]
    pub fn send_length_bound(data_length: u32) -> f64 {
        Session::send_len_bound(data_length as usize) as f64
    }

    /// Frames what the stream's credit allows of `data` at the front of `out`; returns the
    /// length written (`lastTaken` says how much of `data` went).
    #[napi]
    pub fn send(&mut self, stream: u32, data: &[u8], mut out: BufferSlice) -> Result<u32> {
        sync(|| {
            let (taken, written) = self.inner.send(stream, data, &mut out)?;
            self.last_taken = byte_length(taken)?;
            byte_length(written)
        })
    }

    /// How many bytes of its data the last `send` took (the rest waits for credit).
    #[napi(getter)]
    pub fn last_taken(&self) -> u32 {
        self.last_taken
    }

    /// Reports data the application took; returns a credit frame when one is due.
    #[napi]
    pub fn consumed(&mut self, stream: u32, bytes: u32) -> Result<Option<Buffer>> {
        frames(|out| self.inner.consumed(stream, bytes, out)).map(|b| (!b.is_empty()).then_some(b))
    }

    /// Half-closes this side's direction of the stream.
    #[napi]
    pub fn close(&mut self, stream: u32) -> Result<Buffer> {
        frames(|out| self.inner.close(stream, out))
    }

    /// Resets the stream with a code.
    #[napi]
    pub fn reset(&mut self, stream: u32, code: u32) -> Result<Buffer> {
        frames(|out| self.inner.reset(stream, code, out))
    }

    /// Ends the session with a go-away code.
    #[napi]
    pub fn go_away(&mut self, code: u32) -> Buffer {
        let mut out = Vec::new();
        self.inner.go_away(code, &mut out);
        out.into()
    }

    /// Bytes this side may send on the stream now.
    #[napi]
    pub fn send_credit(&self, stream: u32) -> u32 {
        self.inner.send_credit(stream)
    }

    /// Bytes each stream may have received and not read.
    #[napi(getter)]
    pub fn window(&self) -> u32 {
        self.inner.window()
    }

    /// Streams open now, both sides'.
    #[napi(getter)]
    pub fn stream_count(&self) -> u32 {
        self.inner.stream_count() as u32
    }
}

fn frames(call: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), mux::MuxError>) -> Result<Buffer> {
    sync(|| {
        let mut out = Vec::new();
        call(&mut out).map_err(Failure::from)?;
        Ok(out.into())
    })
}

fn convert(event: Event) -> std::result::Result<MuxEvent, Failure> {
    let base = |kind, stream| MuxEvent {
        kind,
        stream,
        protocol: None,
        start: None,
        end: None,
        in_chunk: None,
        code: None,
        error_code: None,
        error_message: None,
    };
    Ok(match event {
        Event::Opened { stream, protocol } => MuxEvent { protocol: Some(protocol), ..base("opened", stream) },
        Event::Accepted { stream } => base("accepted", stream),
        Event::Data { stream, start, end, in_chunk } => MuxEvent {
            start: Some(byte_length(start)?),
            end: Some(byte_length(end)?),
            in_chunk: Some(in_chunk),
            ..base("data", stream)
        },
        Event::Credit { stream } => base("credit", stream),
        Event::Closed { stream } => base("closed", stream),
        Event::Reset { stream, code, reason } => MuxEvent {
            code: Some(code),
            error_code: Some(reason.code()),
            error_message: Some(reason.to_string()),
            ..base("reset", stream)
        },
    })
}
