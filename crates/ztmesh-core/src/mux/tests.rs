use super::*;

/// An initiator and a responder joined by hand: `a` opens odd ids, `b` even ids.
fn pair() -> (Session, Session) {
    (Session::new(MuxConfig::new(Role::Initiator)).unwrap(), Session::new(MuxConfig::new(Role::Responder)).unwrap())
}

/// What a test compares: events, with each one's data copied out of the feed's buffer.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Event(Event),
    Data(u32, Vec<u8>),
}

fn feed(session: &mut Session, bytes: &[u8]) -> (Result<(), MuxError>, Vec<Seen>, Vec<u8>) {
    let (mut events, mut out) = (Vec::new(), Vec::new());
    let mut data = vec![0u8; session.data_len_bound(bytes.len())];
    let result = session.feed(bytes, &mut events, &mut data, &mut out).map(drop);
    (result, seen(events, bytes, &data), out)
}

fn seen(events: Vec<Event>, chunk: &[u8], data: &[u8]) -> Vec<Seen> {
    events
        .into_iter()
        .map(|event| match event {
            Event::Data { stream, start, end, in_chunk: true } => Seen::Data(stream, chunk[start..end].to_vec()),
            Event::Data { stream, start, end, in_chunk: false } => Seen::Data(stream, data[start..end].to_vec()),
            other => Seen::Event(other),
        })
        .collect()
}

/// Frames all of `data` the credit allows into a fresh buffer.
fn send(session: &mut Session, stream: u32, data: &[u8], wire: &mut Vec<u8>) -> Result<usize, MuxError> {
    let mut out = vec![0u8; Session::send_len_bound(data.len())];
    let (taken, written) = session.send(stream, data, &mut out)?;
    wire.extend_from_slice(&out[..written]);
    Ok(taken)
}

fn frame(kind: FrameType, stream: u32, value: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(kind, stream, value, body, &mut out);
    out
}

/// `a` opens `/echo/1` and `b` accepts it; returns the stream id.
fn open_accepted(a: &mut Session, b: &mut Session) -> u32 {
    let mut wire = Vec::new();
    let id = a.open("/echo/1", &mut wire).unwrap();
    let (result, events, _) = feed(b, &wire);
    result.unwrap();
    assert_eq!(events[0], Seen::Event(Event::Opened { stream: id, protocol: "/echo/1".into() }));
    let mut answer = Vec::new();
    b.accept(id, &mut answer).unwrap();
    let (result, events, _) = feed(a, &answer);
    result.unwrap();
    assert_eq!(events[0], Seen::Event(Event::Accepted { stream: id }));
    id
}

/// Feeds `bytes` from a hostile peer in both roles: as written, to a responder, and with every
/// stream id's parity flipped ([`mirror`]), to an initiator.
fn assert_violation(bytes: &[u8], expected: MuxError) {
    assert_violation_at(Role::Responder, bytes, expected);
    assert_violation_at(Role::Initiator, &mirror(bytes), expected);
}

fn assert_violation_at(role: Role, bytes: &[u8], expected: MuxError) {
    let mut b = Session::new(MuxConfig::new(role)).unwrap();
    let (result, _, out) = feed(&mut b, bytes);
    assert_eq!(result, Err(expected), "{role:?}");
    assert_eq!(
        &out[out.len() - HEADER_LEN..],
        frame(FrameType::GoAway, 0, expected.go_away_code(), &[]).as_slice(),
        "the peer is told why"
    );
    assert_eq!(feed(&mut b, &[]).0, Err(expected), "the session stays failed");
    assert_eq!(b.open("/x", &mut Vec::new()), Err(expected));
}

/// The same frames sent by the other role: every stream id but 0 moves to the other parity
/// (1 ↔ 2, 3 ↔ 4…), keeping its order. Stops at the first header too short to hold an id.
fn mirror(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at + HEADER_LEN <= out.len() {
        let id = u32::from_be_bytes([out[at + 4], out[at + 5], out[at + 6], out[at + 7]]);
        out[at + 4..at + 8].copy_from_slice(&mirror_id(id).to_be_bytes());
        let value = u32::from_be_bytes([out[at + 8], out[at + 9], out[at + 10], out[at + 11]]);
        let has_body = matches!(FrameType::from_byte(out[at + 1]), Some(FrameType::Open | FrameType::Data));
        at += HEADER_LEN + if has_body { value as usize } else { 0 };
    }
    out
}

fn mirror_id(id: u32) -> u32 {
    match id {
        0 => 0,
        odd if odd % 2 == 1 => odd + 1,
        even => even - 1,
    }
}

/// Both ways round: (initiator, responder) and (responder, initiator), as (a, b).
fn both_ways() -> [(Session, Session); 2] {
    let ((i1, r1), (i2, r2)) = (pair(), pair());
    [(i1, r1), (r2, i2)]
}

#[test]
fn a_stream_opens_carries_data_both_ways_and_closes_in_both_directions() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    assert_eq!(id, 1);
    let mut wire = Vec::new();
    assert_eq!(send(&mut a, id, b"ping", &mut wire), Ok(4));
    a.close(id, &mut wire).unwrap();
    let (result, events, _) = feed(&mut b, &wire);
    result.unwrap();
    assert_eq!(events, vec![Seen::Data(id, b"ping".to_vec()), Seen::Event(Event::Closed { stream: id })]);
    let mut back = Vec::new();
    assert_eq!(send(&mut b, id, b"pong", &mut back), Ok(4), "a half-closed stream still carries the other direction");
    b.close(id, &mut back).unwrap();
    assert_eq!(b.stream_count(), 0, "closed both ways: forgotten");
    let (result, events, _) = feed(&mut a, &back);
    result.unwrap();
    assert_eq!(events, vec![Seen::Data(id, b"pong".to_vec()), Seen::Event(Event::Closed { stream: id })]);
    assert_eq!(a.stream_count(), 0);
    assert_eq!(send(&mut a, id, b"late", &mut Vec::new()), Err(MuxError::Closed));
}

#[test]
fn the_two_sides_open_ids_of_their_own_parity_that_never_repeat() {
    let (mut a, mut b) = pair();
    let mut sink = Vec::new();
    assert_eq!([a.open("/p", &mut sink).unwrap(), a.open("/p", &mut sink).unwrap()], [1, 3]);
    assert_eq!([b.open("/p", &mut sink).unwrap(), b.open("/p", &mut sink).unwrap()], [2, 4]);
}

#[test]
fn any_chunking_of_the_same_bytes_gives_the_same_events() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let mut wire = Vec::new();
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(send(&mut a, id, &payload, &mut wire), Ok(payload.len()));
    let second = a.open("/line/1", &mut wire).unwrap();
    a.close(id, &mut wire).unwrap();
    for cut in [1, 5, 11, 12, 13, 4096, 65_548, wire.len()] {
        let (_, mut b) = pair();
        // The stream must exist on this fresh `b`: replay the open and accept first.
        let mut open = Vec::new();
        encode_frame(FrameType::Open, id, 7, b"/echo/1", &mut open);
        feed(&mut b, &open).0.unwrap();
        b.accept(id, &mut Vec::new()).unwrap();
        let mut events = Vec::new();
        for chunk in wire.chunks(cut) {
            let (result, seen, _) = feed(&mut b, chunk);
            result.unwrap();
            events.extend(seen);
        }
        let mut data = Vec::new();
        for event in &events {
            if let Seen::Data(_, d) = event {
                assert!(d.len() <= MAX_FRAME_BODY as usize);
                data.extend_from_slice(d);
            }
        }
        assert_eq!(data, payload, "cut {cut}");
        assert_eq!(events.last(), Some(&Seen::Event(Event::Closed { stream: id })), "cut {cut}");
        assert!(events.contains(&Seen::Event(Event::Opened { stream: second, protocol: "/line/1".into() })));
        assert_eq!(b.buffered(), 0);
    }
}

#[test]
fn a_frame_within_one_chunk_is_delivered_as_a_range_of_it_and_only_a_split_frame_is_copied() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let mut wire = Vec::new();
    send(&mut a, id, b"whole", &mut wire).unwrap();
    send(&mut a, id, b"split", &mut wire).unwrap();
    let cut = wire.len() - 2;
    let (mut events, mut out) = (Vec::new(), Vec::new());
    let mut data = vec![0u8; b.data_len_bound(cut)];
    assert_eq!(b.feed(&wire[..cut], &mut events, &mut data, &mut out), Ok(0), "nothing copied");
    assert_eq!(events, vec![Event::Data { stream: id, start: HEADER_LEN, end: HEADER_LEN + 5, in_chunk: true }]);
    events.clear();
    let mut data = vec![0u8; b.data_len_bound(2)];
    assert_eq!(b.feed(&wire[cut..], &mut events, &mut data, &mut out), Ok(5));
    assert_eq!(events, vec![Event::Data { stream: id, start: 0, end: 5, in_chunk: false }]);
    assert_eq!(&data[..5], b"split");
}

#[test]
fn a_sender_stops_at_its_credit_and_resumes_when_the_reader_consumes() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let big = vec![7u8; INITIAL_WINDOW as usize + 1000];
    let mut wire = Vec::new();
    assert_eq!(send(&mut a, id, &big, &mut wire), Ok(INITIAL_WINDOW as usize));
    assert_eq!(send(&mut a, id, &big, &mut wire), Ok(0), "no credit left");
    feed(&mut b, &wire).0.unwrap();
    let mut credit = Vec::new();
    b.consumed(id, INITIAL_WINDOW / 2 - 1, &mut credit).unwrap();
    assert!(credit.is_empty(), "credit is returned in half windows");
    b.consumed(id, 1, &mut credit).unwrap();
    assert_eq!(credit, frame(FrameType::Credit, id, INITIAL_WINDOW / 2, &[]));
    let (result, events, _) = feed(&mut a, &credit);
    result.unwrap();
    assert_eq!(events, vec![Seen::Event(Event::Credit { stream: id })]);
    assert_eq!(a.send_credit(id), INITIAL_WINDOW / 2);
}

#[test]
fn consuming_more_than_was_delivered_cannot_widen_the_window() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let mut credit = Vec::new();
    b.consumed(id, u32::MAX, &mut credit).unwrap();
    assert!(credit.is_empty());
}

#[test]
fn a_larger_window_is_granted_right_after_the_open() {
    let mut a = Session::new(MuxConfig { window: 1 << 20, ..MuxConfig::new(Role::Initiator) }).unwrap();
    let mut b = Session::new(MuxConfig { window: 1 << 20, ..MuxConfig::new(Role::Responder) }).unwrap();
    let id = open_accepted(&mut a, &mut b);
    let mut wire = Vec::new();
    assert_eq!(send(&mut a, id, &vec![0; 1 << 20], &mut wire), Ok(1 << 20));
    assert_eq!(feed(&mut b, &wire).0, Ok(()));
}

#[test]
fn a_peer_that_sends_beyond_its_credit_ends_the_session() {
    for (mut a, mut b) in both_ways() {
        let id = open_accepted(&mut a, &mut b);
        let mut wire = Vec::new();
        send(&mut a, id, &vec![1; INITIAL_WINDOW as usize], &mut wire).unwrap();
        // A hostile sender ignores its credit and sends one more byte.
        encode_frame(FrameType::Data, id, 1, b"x", &mut wire);
        let (result, events, out) = feed(&mut b, &wire);
        assert_eq!(result, Err(MuxError::Window));
        assert!(!events.is_empty(), "the events before the violation stay valid");
        assert_eq!(out, frame(FrameType::GoAway, 0, go_away_code::WINDOW, &[]));
        assert_eq!(b.stream_count(), 0);
    }
}

#[test]
fn a_grant_past_the_largest_window_ends_the_session() {
    for (mut a, mut b) in both_ways() {
        let id = open_accepted(&mut a, &mut b);
        // The acceptor grants too much to the opener, and the opener to the acceptor.
        let (result, _, _) = feed(&mut a, &frame(FrameType::Credit, id, MAX_WINDOW, &[]));
        assert_eq!(result, Err(MuxError::Window));
        let (result, _, _) = feed(&mut b, &frame(FrameType::Credit, id, MAX_WINDOW, &[]));
        assert_eq!(result, Err(MuxError::Window));
    }
}

#[test]
fn opens_past_the_limit_are_refused_and_a_flood_of_them_ends_the_session() {
    for role in [Role::Responder, Role::Initiator] {
        // The ids the peer opens: odd to a responder, even to an initiator.
        let peer = |id: u32| if role == Role::Responder { id } else { mirror_id(id) };
        let mut b = Session::new(MuxConfig { max_streams: 2, ..MuxConfig::new(role) }).unwrap();
        let mut wire = Vec::new();
        for id in [1, 3, 5] {
            encode_frame(FrameType::Open, peer(id), 2, b"/p", &mut wire);
        }
        let (result, events, out) = feed(&mut b, &wire);
        result.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(out, frame(FrameType::Reset, peer(5), reset_code::REFUSED, &[]));
        assert_eq!(b.open("/p", &mut Vec::new()), Err(MuxError::TooManyStreams), "the local limit counts both sides");
        let mut flood = Vec::new();
        for i in 0..session::MAX_REFUSED_IN_A_ROW {
            encode_frame(FrameType::Open, peer(7 + 2 * i), 2, b"/p", &mut flood);
        }
        let (result, _, out) = feed(&mut b, &flood);
        assert_eq!(result, Err(MuxError::TooManyStreams));
        assert!(out.ends_with(&frame(FrameType::GoAway, 0, go_away_code::TOO_MANY_STREAMS, &[])));
    }
}

#[test]
fn frames_for_a_stream_already_reset_are_ignored() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let mut in_flight = Vec::new();
    send(&mut a, id, b"late", &mut in_flight).unwrap();
    a.close(id, &mut in_flight).unwrap();
    let mut reset = Vec::new();
    b.reset(id, reset_code::CANCEL, &mut reset).unwrap();
    let (result, events, _) = feed(&mut b, &in_flight);
    assert_eq!((result, events), (Ok(()), vec![]));
    let (result, events, _) = feed(&mut a, &reset);
    assert_eq!(
        (result, events),
        (
            Ok(()),
            vec![Seen::Event(Event::Reset {
                stream: id,
                code: reset_code::CANCEL,
                reason: MuxError::Reset(reset_code::CANCEL)
            })]
        )
    );
}

#[test]
fn an_open_reset_in_the_same_chunk_is_not_accepted() {
    let (mut a, mut b) = pair();
    let mut wire = Vec::new();
    let id = a.open("/p", &mut wire).unwrap();
    a.reset(id, reset_code::CANCEL, &mut wire).unwrap();
    let (result, events, _) = feed(&mut b, &wire);
    result.unwrap();
    assert_eq!(events.len(), 2);
    let mut out = Vec::new();
    assert_eq!(b.accept(id, &mut out), Ok(false));
    assert_eq!(b.refuse(id, reset_code::REFUSED, &mut out), Ok(()));
    assert!(out.is_empty());
    assert_eq!(b.stream_count(), 0);
}

#[test]
fn an_unanswered_open_can_be_refused_with_a_code() {
    let (mut a, mut b) = pair();
    let mut wire = Vec::new();
    let id = a.open("/nobody/1", &mut wire).unwrap();
    feed(&mut b, &wire).0.unwrap();
    let mut answer = Vec::new();
    b.refuse(id, reset_code::UNSUPPORTED_PROTOCOL, &mut answer).unwrap();
    let (result, events, _) = feed(&mut a, &answer);
    assert_eq!(
        (result, events),
        (
            Ok(()),
            vec![Seen::Event(Event::Reset {
                stream: id,
                code: reset_code::UNSUPPORTED_PROTOCOL,
                reason: MuxError::UnsupportedProtocol
            })]
        )
    );
    assert_eq!(a.stream_count(), 0);
}

#[test]
fn a_go_away_from_the_peer_ends_the_session_without_an_answer() {
    let (_, mut b) = pair();
    let (result, _, out) = feed(&mut b, &frame(FrameType::GoAway, 0, 9, &[]));
    assert_eq!(result, Err(MuxError::GoAway(9)));
    assert!(out.is_empty());
    let mut ours = Vec::new();
    b.go_away(0, &mut ours);
    assert!(ours.is_empty(), "a failed session says nothing more");
}

#[test]
fn every_malformed_header_is_refused() {
    let mut bad_version = frame(FrameType::Accept, 2, 0, &[]);
    bad_version[0] = 2;
    assert_violation(&bad_version, MuxError::Malformed);
    let mut bad_type = frame(FrameType::Accept, 2, 0, &[]);
    bad_type[1] = 7;
    assert_violation(&bad_type, MuxError::Malformed);
    let mut flags = frame(FrameType::Accept, 2, 0, &[]);
    flags[3] = 1;
    assert_violation(&flags, MuxError::Malformed);
    assert_violation(&frame(FrameType::Accept, 2, 5, &[]), MuxError::Malformed);
    assert_violation(&frame(FrameType::Close, 2, 5, &[]), MuxError::Malformed);
    assert_violation(&frame(FrameType::Credit, 2, 0, &[]), MuxError::Malformed);
    assert_violation(&frame(FrameType::Data, 2, 0, &[]), MuxError::Malformed);
    assert_violation(&frame(FrameType::GoAway, 3, 0, &[]), MuxError::StreamId);
    assert_violation(&frame(FrameType::Reset, 0, 0, &[]), MuxError::StreamId);
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let header = &frame(FrameType::Data, 1, MAX_FRAME_BODY + 1, &[])[..HEADER_LEN];
    assert_violation(header, MuxError::FrameTooLarge);
    let open = &frame(FrameType::Open, 1, MAX_PROTOCOL_LEN as u32 + 1, &[])[..HEADER_LEN];
    assert_violation(open, MuxError::ProtocolId);
}

#[test]
fn protocol_ids_outside_the_alphabet_are_refused() {
    for id in [&b"/with space"[..], b"/\xff", b"/semi;colon", b"/new\nline"] {
        assert_violation(&frame(FrameType::Open, 1, id.len() as u32, id), MuxError::ProtocolId);
    }
    let (mut a, _) = pair();
    assert_eq!(a.open("", &mut Vec::new()), Err(MuxError::ProtocolId));
    assert_eq!(a.open(&"a".repeat(65), &mut Vec::new()), Err(MuxError::ProtocolId));
    assert!(a.open(&"a".repeat(64), &mut Vec::new()).is_ok());
}

#[test]
fn stream_ids_of_the_wrong_parity_reused_or_never_opened_are_refused() {
    assert_violation(&frame(FrameType::Open, 2, 2, b"/p"), MuxError::StreamId);
    let mut reused = frame(FrameType::Open, 3, 2, b"/p");
    reused.extend(frame(FrameType::Open, 1, 2, b"/p"));
    assert_violation(&reused, MuxError::StreamId);
    let mut again = frame(FrameType::Open, 3, 2, b"/p");
    again.extend(frame(FrameType::Open, 3, 2, b"/p"));
    assert_violation(&again, MuxError::StreamId);
    assert_violation(&frame(FrameType::Data, 5, 1, b"x"), MuxError::StreamId);
    assert_violation(&frame(FrameType::Accept, 2, 0, &[]), MuxError::StreamId);
}

#[test]
fn frames_out_of_turn_are_refused() {
    // Data on a stream the receiver has not accepted yet.
    let mut early = frame(FrameType::Open, 1, 2, b"/p");
    early.extend(frame(FrameType::Data, 1, 1, b"x"));
    assert_violation(&early, MuxError::State);
    // An accept of a stream the peer opened itself.
    let mut accept_own = frame(FrameType::Open, 1, 2, b"/p");
    accept_own.extend(frame(FrameType::Accept, 1, 0, &[]));
    assert_violation(&accept_own, MuxError::State);
    // Data after the peer's close, and a second close.
    for after in [frame(FrameType::Data, 2, 1, b"x"), frame(FrameType::Close, 2, 0, &[])] {
        let (mut a, mut b) = pair();
        let mut wire = Vec::new();
        let id = b.open("/p", &mut wire).unwrap();
        feed(&mut a, &wire).0.unwrap();
        let mut answer = Vec::new();
        a.accept(id, &mut answer).unwrap();
        feed(&mut b, &answer).0.unwrap();
        let mut close = frame(FrameType::Close, 2, 0, &[]);
        close.extend(&after);
        assert_eq!(feed(&mut a, &close).0, Err(MuxError::State));
    }
    // A second accept.
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    assert_eq!(feed(&mut a, &frame(FrameType::Accept, id, 0, &[])).0, Err(MuxError::State));
}

#[test]
fn a_data_buffer_below_the_bound_is_refused_and_send_stops_at_the_room_it_has() {
    let (mut a, mut b) = pair();
    let id = open_accepted(&mut a, &mut b);
    let mut small = [0u8; 3];
    assert_eq!(b.feed(&[0; 4], &mut Vec::new(), &mut small, &mut Vec::new()), Err(MuxError::BufferTooSmall));
    let mut room = vec![0u8; HEADER_LEN + 10];
    assert_eq!(a.send(id, &[1; 100_000], &mut room), Ok((0, 0)), "a frame that does not fit is not cut");
    assert_eq!(a.send_credit(id), INITIAL_WINDOW);
    let mut room = vec![0u8; Session::send_len_bound(70_000)];
    assert_eq!(a.send(id, &[1; 70_000], &mut room), Ok((70_000, 70_000 + 2 * HEADER_LEN)));
}

#[test]
fn settings_out_of_range_are_refused() {
    for config in [
        MuxConfig { max_streams: 0, ..MuxConfig::new(Role::Initiator) },
        MuxConfig { window: INITIAL_WINDOW - 1, ..MuxConfig::new(Role::Initiator) },
        MuxConfig { window: MAX_WINDOW + 1, ..MuxConfig::new(Role::Initiator) },
    ] {
        assert_eq!(Session::new(config).err(), Some(MuxError::Config));
    }
}

#[test]
fn seeded_garbage_never_panics_and_fails_with_a_typed_error() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2000 {
        // Half the rounds against each role.
        let (a, b) = pair();
        let mut b = if round % 2 == 0 { b } else { a };
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Often a valid-looking header, so the state machine is reached too.
        if len >= HEADER_LEN && next() % 2 == 0 {
            bytes[0] = VERSION;
            bytes[1] %= 7;
            bytes[2] = 0;
            bytes[3] = 0;
        }
        for chunk in bytes.chunks(1 + (next() % 20) as usize) {
            if feed(&mut b, chunk).0.is_err() {
                break;
            }
        }
        assert!(b.buffered() <= HEADER_LEN + MAX_FRAME_BODY as usize);
    }
}

#[test]
fn a_reset_says_what_it_means_to_this_side_a_refused_open_or_a_reset_in_both_roles() {
    for opener_role in [Role::Initiator, Role::Responder] {
        let (mut i, mut r) = pair();
        let (opener, other) = if opener_role == Role::Initiator { (&mut i, &mut r) } else { (&mut r, &mut i) };
        for (code, reason) in [
            (reset_code::UNSUPPORTED_PROTOCOL, MuxError::UnsupportedProtocol),
            (reset_code::REFUSED, MuxError::TooManyStreams),
            (reset_code::INTERNAL, MuxError::Reset(reset_code::INTERNAL)),
        ] {
            let mut wire = Vec::new();
            let id = opener.open("/p", &mut wire).unwrap();
            feed(other, &wire).0.unwrap();
            let mut answer = Vec::new();
            other.refuse(id, code, &mut answer).unwrap();
            let (result, events, _) = feed(opener, &answer);
            assert_eq!((result, events), (Ok(()), vec![Seen::Event(Event::Reset { stream: id, code, reason })]));
        }
        // After the accept, the same codes are plain resets.
        let mut wire = Vec::new();
        let id = opener.open("/p", &mut wire).unwrap();
        feed(other, &wire).0.unwrap();
        let mut answer = Vec::new();
        other.accept(id, &mut answer).unwrap();
        other.reset(id, reset_code::REFUSED, &mut answer).unwrap();
        let (result, events, _) = feed(opener, &answer);
        result.unwrap();
        let reason = MuxError::Reset(reset_code::REFUSED);
        assert_eq!(events[1], Seen::Event(Event::Reset { stream: id, code: reset_code::REFUSED, reason }));
    }
}
