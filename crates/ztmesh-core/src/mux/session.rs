//! The session state machine: stream ids, stream states, credit, limits.

use std::collections::HashMap;

use super::{
    encode_frame, header, reset_code, Frame, FrameDecoder, FrameType, MuxError, HEADER_LEN, INITIAL_WINDOW,
    MAX_FRAME_BODY, MAX_WINDOW,
};

/// Which side of the session this is; it decides the parity of the ids it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd stream ids (the side that connected).
    Initiator,
    /// Opens even stream ids (the side that accepted).
    Responder,
}

/// The settings of a session.
#[derive(Debug, Clone, Copy)]
pub struct MuxConfig {
    /// This side's role.
    pub role: Role,
    /// The most streams open at once, counting both sides' (1 to 65,536).
    pub max_streams: u32,
    /// How many bytes each stream may have received and not consumed ([`INITIAL_WINDOW`] to
    /// [`MAX_WINDOW`]); the part above the initial window is granted right after the open.
    pub window: u32,
}

impl MuxConfig {
    /// The defaults for `role`: 64 streams, a 256 KiB window.
    pub fn new(role: Role) -> Self {
        Self { role, max_streams: 64, window: INITIAL_WINDOW }
    }
}

/// Opens past the limit the peer may make in a row before the session ends.
pub(super) const MAX_REFUSED_IN_A_ROW: u32 = 64;

/// What the peer did, in the order its frames came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream for `protocol`: answer with [`Session::accept`] or [`Session::refuse`].
    Opened {
        /// The stream.
        stream: u32,
        /// Its protocol id.
        protocol: String,
    },
    /// The peer accepted a stream this side opened.
    Accepted {
        /// The stream.
        stream: u32,
    },
    /// Data on a stream, at `start..end` of the chunk given to [`Session::feed`] (`in_chunk`)
    /// or of its `data` buffer (a frame split across chunks); report it with
    /// [`Session::consumed`] once the application took it.
    Data {
        /// The stream.
        stream: u32,
        /// Where the bytes start.
        start: usize,
        /// Where they end.
        end: usize,
        /// Whether they are in the chunk (else in `data`).
        in_chunk: bool,
    },
    /// The peer granted credit: writes held on the stream may continue.
    Credit {
        /// The stream.
        stream: u32,
    },
    /// The peer half-closed the stream: no more data will come.
    Closed {
        /// The stream.
        stream: u32,
    },
    /// The peer reset the stream (or refused an open) with a [`super::reset_code`].
    Reset {
        /// The stream.
        stream: u32,
        /// Why.
        code: u32,
        /// What it means to this side ([`MuxError::from_reset`]): a refusal of an open, or a reset.
        reason: MuxError,
    },
}

#[derive(Debug)]
struct Stream {
    /// Whether this side opened it.
    ours: bool,
    /// Whether the answer came (ours) or was given (theirs).
    accepted: bool,
    /// This side may still send.
    local_open: bool,
    /// The peer may still send.
    remote_open: bool,
    /// Bytes this side may still send.
    send_credit: u32,
    /// Bytes the peer may still send.
    recv_allowance: u32,
    /// Bytes consumed and not returned as credit yet.
    unreported: u32,
}

/// One side of a multiplexed session (see the module docs).
#[derive(Debug)]
pub struct Session {
    config: MuxConfig,
    decoder: FrameDecoder,
    streams: HashMap<u32, Stream>,
    /// The next id this side opens.
    next_local: u32,
    /// The highest id the peer opened (0 for none).
    last_remote: u32,
    refused_in_a_row: u32,
    failed: Option<MuxError>,
}

impl Session {
    /// A session at its start.
    pub fn new(config: MuxConfig) -> Result<Self, MuxError> {
        if !(1..=65_536).contains(&config.max_streams) || !(INITIAL_WINDOW..=MAX_WINDOW).contains(&config.window) {
            return Err(MuxError::Config);
        }
        let next_local = if config.role == Role::Initiator { 1 } else { 2 };
        Ok(Self {
            config,
            decoder: FrameDecoder::new(),
            streams: HashMap::new(),
            next_local,
            last_remote: 0,
            refused_in_a_row: 0,
            failed: None,
        })
    }

    /// Bytes each stream may have received and not consumed.
    pub fn window(&self) -> u32 {
        self.config.window
    }

    /// The streams open now, both sides'.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Bytes this side may send on `stream` now (0 for a stream that is gone).
    pub fn send_credit(&self, stream: u32) -> u32 {
        self.streams.get(&stream).map_or(0, |s| s.send_credit)
    }

    /// Bytes held of a frame not complete yet.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// The error that ended the session, if one did.
    pub fn failure(&self) -> Option<MuxError> {
        self.failed
    }

    /// The most stream data one [`Session::feed`] of `chunk_len` bytes can deliver: the size
    /// its `data` buffer needs.
    pub fn data_len_bound(&self, chunk_len: usize) -> usize {
        chunk_len + self.decoder.buffered()
    }

    /// Takes received bytes, at any chunking: appends what the peer did to `events`, copies the
    /// data of frames split across chunks into `data` (each [`Event::Data`] says where its bytes
    /// are; `data` must hold [`Session::data_len_bound`] bytes), appends to `out` the frames this side answers with on
    /// its own (refusals past the limit), and returns how many bytes of `data` it used.
    ///
    /// A violation ends the session: the error is returned (now and by every later call), the
    /// events before it stay valid, and `out` ends with a `GoAway` telling the peer why. A
    /// go-away from the peer ends it with [`MuxError::GoAway`] and no answer.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        events: &mut Vec<Event>,
        data: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, MuxError> {
        self.check()?;
        if data.len() < self.data_len_bound(chunk.len()) {
            return Err(MuxError::BufferTooSmall);
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        let mut used = 0;
        let result = decoder.decode(chunk, |frame| self.on_frame(frame, events, data, &mut used, out));
        self.decoder = decoder;
        if let Err(error) = result {
            if !matches!(error, MuxError::GoAway(_)) {
                encode_frame(FrameType::GoAway, 0, error.go_away_code(), &[], out);
            }
            self.failed = Some(error);
            self.streams.clear();
            return Err(error);
        }
        Ok(used)
    }

    /// Opens a stream for `protocol`; returns its id. Data may flow once the peer accepts.
    pub fn open(&mut self, protocol: &str, out: &mut Vec<u8>) -> Result<u32, MuxError> {
        self.check()?;
        if !super::is_valid_protocol_id(protocol.as_bytes()) {
            return Err(MuxError::ProtocolId);
        }
        if self.streams.len() >= self.config.max_streams as usize {
            return Err(MuxError::TooManyStreams);
        }
        let id = self.next_local;
        // u32::MAX is odd: the initiator's last id is u32::MAX, the responder's u32::MAX - 1.
        self.next_local = id.checked_add(2).ok_or(MuxError::TooManyStreams)?;
        self.streams.insert(id, Stream::new(true));
        encode_frame(FrameType::Open, id, protocol.len() as u32, protocol.as_bytes(), out);
        self.grant_extra_window(id, out);
        Ok(id)
    }

    /// Accepts a stream the peer opened; returns false (and sends nothing) when the peer has
    /// reset it already, as it may in the same chunk that opened it.
    pub fn accept(&mut self, stream: u32, out: &mut Vec<u8>) -> Result<bool, MuxError> {
        self.check()?;
        match self.streams.get_mut(&stream) {
            Some(s) if !s.ours && !s.accepted => s.accepted = true,
            Some(_) => return Err(MuxError::State),
            None => return Ok(false),
        }
        self.refused_in_a_row = 0;
        encode_frame(FrameType::Accept, stream, 0, &[], out);
        self.grant_extra_window(stream, out);
        Ok(true)
    }

    /// Refuses a stream the peer opened, with a [`super::reset_code`] (nothing when the peer
    /// has reset it already).
    pub fn refuse(&mut self, stream: u32, code: u32, out: &mut Vec<u8>) -> Result<(), MuxError> {
        self.check()?;
        match self.streams.get(&stream) {
            Some(s) if !s.ours && !s.accepted => self.reset(stream, code, out),
            Some(_) => Err(MuxError::State),
            None => Ok(()),
        }
    }

    /// The room [`Session::send`] needs in `out` to frame all of `data_len` bytes.
    pub fn send_len_bound(data_len: usize) -> usize {
        data_len + HEADER_LEN * data_len.div_ceil(MAX_FRAME_BODY as usize).max(1)
    }

    /// Frames as much of `data` as the stream's credit and the room in `out` allow, in frames of
    /// at most [`MAX_FRAME_BODY`] bytes; returns how many bytes of `data` it took (0 when out of
    /// credit: wait for [`Event::Credit`]) and how many of `out` it wrote.
    pub fn send(&mut self, stream: u32, data: &[u8], out: &mut [u8]) -> Result<(usize, usize), MuxError> {
        self.check()?;
        let s = match self.streams.get_mut(&stream) {
            Some(s) if s.accepted && s.local_open => s,
            _ => return Err(MuxError::Closed),
        };
        let allowed = data.len().min(s.send_credit as usize);
        let (mut taken, mut written) = (0, 0);
        for body in data[..allowed].chunks(MAX_FRAME_BODY as usize) {
            let end = written + HEADER_LEN + body.len();
            if end > out.len() {
                break;
            }
            out[written..written + HEADER_LEN].copy_from_slice(&header(FrameType::Data, stream, body.len() as u32));
            out[written + HEADER_LEN..end].copy_from_slice(body);
            (taken, written) = (taken + body.len(), end);
        }
        s.send_credit -= taken as u32;
        Ok((taken, written))
    }

    /// Reports that the application took `bytes` of the stream's data; returns credit to the
    /// peer once half a window has been taken (fewer, larger credit frames).
    pub fn consumed(&mut self, stream: u32, bytes: u32, out: &mut Vec<u8>) -> Result<(), MuxError> {
        self.check()?;
        let window = self.config.window;
        let Some(s) = self.streams.get_mut(&stream) else { return Ok(()) };
        if !s.remote_open {
            return Ok(());
        }
        // Never more than was delivered: the application cannot widen the window.
        let outstanding = window - s.recv_allowance - s.unreported;
        s.unreported += bytes.min(outstanding);
        if s.unreported >= window / 2 {
            encode_frame(FrameType::Credit, stream, s.unreported, &[], out);
            s.recv_allowance += s.unreported;
            s.unreported = 0;
        }
        Ok(())
    }

    /// Half-closes this side's direction of the stream (idempotent; nothing for a stream that
    /// is gone).
    pub fn close(&mut self, stream: u32, out: &mut Vec<u8>) -> Result<(), MuxError> {
        self.check()?;
        let Some(s) = self.streams.get_mut(&stream) else { return Ok(()) };
        if !s.local_open {
            return Ok(());
        }
        if !s.accepted {
            // Nothing was sent yet: closing an unanswered stream abandons it.
            return self.reset(stream, reset_code::CANCEL, out);
        }
        s.local_open = false;
        encode_frame(FrameType::Close, stream, 0, &[], out);
        if !s.remote_open {
            self.streams.remove(&stream);
        }
        Ok(())
    }

    /// Abandons the stream in both directions with a [`super::reset_code`] (nothing for a
    /// stream that is gone).
    pub fn reset(&mut self, stream: u32, code: u32, out: &mut Vec<u8>) -> Result<(), MuxError> {
        self.check()?;
        if self.streams.remove(&stream).is_some() {
            encode_frame(FrameType::Reset, stream, code, &[], out);
        }
        Ok(())
    }

    /// Ends the session with a go-away `code`; every later call fails with [`MuxError::Closed`].
    pub fn go_away(&mut self, code: u32, out: &mut Vec<u8>) {
        if self.failed.is_none() {
            encode_frame(FrameType::GoAway, 0, code, &[], out);
            self.failed = Some(MuxError::Closed);
            self.streams.clear();
        }
    }

    fn check(&self) -> Result<(), MuxError> {
        self.failed.map_or(Ok(()), Err)
    }

    fn grant_extra_window(&mut self, stream: u32, out: &mut Vec<u8>) {
        let extra = self.config.window - INITIAL_WINDOW;
        if extra > 0 {
            if let Some(s) = self.streams.get_mut(&stream) {
                s.recv_allowance += extra;
                encode_frame(FrameType::Credit, stream, extra, &[], out);
            }
        }
    }

    fn is_ours(&self, stream: u32) -> bool {
        (stream % 2 == 1) == (self.config.role == Role::Initiator)
    }

    /// Whether a frame names a stream that existed and is gone: frames in flight for it are
    /// ignored. An id never opened is a violation.
    fn is_past(&self, stream: u32) -> Result<bool, MuxError> {
        let opened = if self.is_ours(stream) { stream < self.next_local } else { stream <= self.last_remote };
        if opened {
            Ok(true)
        } else {
            Err(MuxError::StreamId)
        }
    }

    fn on_frame(
        &mut self,
        frame: Frame<'_>,
        events: &mut Vec<Event>,
        data: &mut [u8],
        used: &mut usize,
        out: &mut Vec<u8>,
    ) -> Result<(), MuxError> {
        let id = frame.stream;
        match frame.kind {
            FrameType::GoAway => return Err(MuxError::GoAway(frame.value)),
            FrameType::Open => return self.on_open(id, frame.body, events, out),
            _ => {}
        }
        let Some(s) = self.streams.get_mut(&id) else {
            self.is_past(id)?;
            return Ok(());
        };
        match frame.kind {
            FrameType::Accept => {
                if !s.ours || s.accepted {
                    return Err(MuxError::State);
                }
                s.accepted = true;
                events.push(Event::Accepted { stream: id });
            }
            FrameType::Data => {
                if !s.accepted || !s.remote_open {
                    return Err(MuxError::State);
                }
                if frame.value > s.recv_allowance {
                    return Err(MuxError::Window);
                }
                s.recv_allowance -= frame.value;
                if let Some(start) = frame.chunk_offset {
                    events.push(Event::Data { stream: id, start, end: start + frame.body.len(), in_chunk: true });
                } else {
                    // `feed` checked that `data` holds every body of the chunk.
                    let (start, end) = (*used, *used + frame.body.len());
                    data.get_mut(start..end).ok_or(MuxError::BufferTooSmall)?.copy_from_slice(frame.body);
                    *used = end;
                    events.push(Event::Data { stream: id, start, end, in_chunk: false });
                }
            }
            FrameType::Credit => {
                let credit =
                    s.send_credit.checked_add(frame.value).filter(|c| *c <= MAX_WINDOW).ok_or(MuxError::Window)?;
                s.send_credit = credit;
                events.push(Event::Credit { stream: id });
            }
            FrameType::Close => {
                if !s.accepted || !s.remote_open {
                    return Err(MuxError::State);
                }
                s.remote_open = false;
                if !s.local_open {
                    self.streams.remove(&id);
                }
                events.push(Event::Closed { stream: id });
            }
            FrameType::Reset => {
                let refused_open = s.ours && !s.accepted;
                self.streams.remove(&id);
                events.push(Event::Reset {
                    stream: id,
                    code: frame.value,
                    reason: MuxError::from_reset(frame.value, refused_open),
                });
            }
            FrameType::Open | FrameType::GoAway => unreachable_frame()?,
        }
        Ok(())
    }

    fn on_open(
        &mut self,
        id: u32,
        protocol: &[u8],
        events: &mut Vec<Event>,
        out: &mut Vec<u8>,
    ) -> Result<(), MuxError> {
        if self.is_ours(id) || id <= self.last_remote {
            return Err(MuxError::StreamId);
        }
        self.last_remote = id;
        if self.streams.len() >= self.config.max_streams as usize {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > MAX_REFUSED_IN_A_ROW {
                return Err(MuxError::TooManyStreams);
            }
            encode_frame(FrameType::Reset, id, reset_code::REFUSED, &[], out);
            return Ok(());
        }
        // The decoder checked the alphabet, which is ASCII.
        let protocol = String::from_utf8_lossy(protocol).into_owned();
        self.streams.insert(id, Stream::new(false));
        events.push(Event::Opened { stream: id, protocol });
        Ok(())
    }
}

/// `on_frame` handles `Open` and `GoAway` before it looks a stream up.
fn unreachable_frame() -> Result<(), MuxError> {
    Err(MuxError::Malformed)
}

impl Stream {
    fn new(ours: bool) -> Self {
        Self {
            ours,
            accepted: false,
            local_open: true,
            remote_open: true,
            send_credit: INITIAL_WINDOW,
            recv_allowance: INITIAL_WINDOW,
            unreported: 0,
        }
    }
}
