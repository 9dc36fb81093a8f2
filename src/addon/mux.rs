//! The message layer's session (sans-IO): frames in, events out; local calls return the frames
//! to send.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::mux::{self, Event, MuxConfig, Role, Session};
use ztmesh_core::ErrorCode;

use crate::error::{invalid_argument, sync, Failure, Result};

/// What the peer did: `kind` is `opened`, `accepted`, `data`, `credit`, `closed` or `reset`.
#[napi(object, object_from_js = false)]
pub struct MuxEvent {
    pub kind: &'static str,
    pub stream: u32,
    /// The protocol id (`opened`).
    pub protocol: Option<String>,
    /// The bytes (`data`).
    pub data: Option<Buffer>,
    /// The reset code (`reset`).
    pub code: Option<u32>,
}

/// The result of feeding a chunk: the events, the frames to send, and the error that ended the
/// session (its code and message) if one did; the events before it stay valid.
#[napi(object, object_from_js = false)]
pub struct MuxFeed {
    pub events: Vec<MuxEvent>,
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

/// What `send` took of the data (the rest waits for credit), and the frames that carry it.
#[napi(object)]
pub struct MuxSent {
    pub taken: u32,
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
            Ok(Self { inner: Session::new(config)? })
        })
    }

    /// Takes received bytes; never throws for what the peer sent (see `MuxFeed`).
    #[napi]
    pub fn feed(&mut self, chunk: &[u8]) -> Result<MuxFeed> {
        sync(|| {
            let (mut events, mut out) = (Vec::new(), Vec::new());
            let result = self.inner.feed(chunk, &mut events, &mut out);
            Ok(MuxFeed {
                events: events.into_iter().map(convert).collect(),
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

    /// Sends what the stream's credit allows of `data`.
    #[napi]
    pub fn send(&mut self, stream: u32, data: &[u8]) -> Result<MuxSent> {
        sync(|| {
            let mut out = Vec::new();
            let taken = self.inner.send(stream, data, &mut out)?;
            Ok(MuxSent {
                taken: u32::try_from(taken).map_err(|_| invalid_argument("write too large"))?,
                out: out.into(),
            })
        })
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

fn convert(event: Event) -> MuxEvent {
    let base = |kind, stream| MuxEvent { kind, stream, protocol: None, data: None, code: None };
    match event {
        Event::Opened { stream, protocol } => MuxEvent { protocol: Some(protocol), ..base("opened", stream) },
        Event::Accepted { stream } => base("accepted", stream),
        Event::Data { stream, data } => MuxEvent { data: Some(data.into()), ..base("data", stream) },
        Event::Credit { stream } => base("credit", stream),
        Event::Closed { stream } => base("closed", stream),
        Event::Reset { stream, code } => MuxEvent { code: Some(code), ..base("reset", stream) },
    }
}
