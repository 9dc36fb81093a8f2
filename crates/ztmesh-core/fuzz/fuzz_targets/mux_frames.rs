//! Feeds arbitrary bytes to a mux session, cut into chunks at arbitrary places, after an honest
//! open and accept, answering every open it reports.
//!
//! The first input byte picks the role and how to cut the rest. Nothing may panic; a failure
//! must be a typed error after which the session stays failed and ends its output with a
//! go-away (except for the peer's own go-away); the decoder never holds more than one frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::mux::{Event, MuxConfig, MuxError, Role, Session, HEADER_LEN, MAX_FRAME_BODY};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let role = if selector & 1 == 0 { Role::Initiator } else { Role::Responder };
    let cut = usize::from(selector >> 1) + 1;
    let mut session = Session::new(MuxConfig { max_streams: 8, ..MuxConfig::new(role) }).expect("config");
    let mut out = Vec::new();
    session.open("/fuzz/1", &mut out).expect("open");
    for chunk in rest.chunks(cut) {
        let (mut events, mut out) = (Vec::new(), Vec::new());
        let mut data = vec![0u8; session.data_len_bound(chunk.len())];
        let result = session.feed(chunk, &mut events, &mut data, &mut out);
        assert!(session.buffered() <= HEADER_LEN + MAX_FRAME_BODY as usize);
        for event in &events {
            match event {
                Event::Opened { stream, .. } if result.is_ok() => {
                    let _ = session.accept(*stream, &mut out);
                }
                Event::Data { stream, start, end, in_chunk } if result.is_ok() => {
                    let bytes = if *in_chunk { &chunk[*start..*end] } else { &data[*start..*end] };
                    let _ = session.consumed(*stream, bytes.len() as u32, &mut out);
                    let mut frames = vec![0u8; Session::send_len_bound(bytes.len())];
                    let _ = session.send(*stream, bytes, &mut frames);
                }
                _ => {}
            }
        }
        if let Err(error) = result {
            if !matches!(error, MuxError::GoAway(_)) {
                assert!(out.len() >= HEADER_LEN && out[out.len() - HEADER_LEN + 1] == 6, "a go-away ends the output");
            }
            assert_eq!(session.feed(&[], &mut Vec::new(), &mut data, &mut Vec::new()), Err(error), "the session stays failed");
            assert_eq!(session.stream_count(), 0);
            return;
        }
    }
});
