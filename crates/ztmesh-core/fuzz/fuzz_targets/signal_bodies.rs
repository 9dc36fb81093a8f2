//! The bodies of signed offers, answers and ICE candidates on arbitrary bytes: only `Ok` or
//! `ERR_SIGNAL_MALFORMED`, never a panic; whatever decodes re-encodes to the same bytes; and the
//! SDP rule on whatever text an offer carries gives a fingerprint or `ERR_SIGNAL_SDP`.
//!
//! The first byte picks the decoder (mod 3) and the mode (bit 2). Clear: the rest is a body as
//! is. Set: the rest is a list of edits `(offset u16, xor u8)` applied to a genuine body of that
//! kind, with an optional truncation, so mutations reach every field.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::signal::{sdp_fingerprint, Answer, Candidate, Description, SignalError};
use ztmesh_core_fuzz::apply_edits;

const SDP: &str = "v=0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=mid:0\r\n";

fn genuine() -> &'static [Vec<u8>; 3] {
    static BODIES: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    BODIES.get_or_init(|| {
        let now = SystemTime::now();
        let description = Description::new("alice", "bob", "t", SDP, 3, now).expect("offer");
        let answer = Answer { description: description.clone(), offer_digest: [7; 32] };
        let candidate = Candidate::new("bob", "alice", "t", [7; 32], "0", "candidate:1 1 UDP 1 127.0.0.1 9 typ host", now)
            .expect("candidate");
        [description.encode().expect("offer"), answer.encode().expect("answer"), candidate.encode().expect("candidate")]
    })
}

fn check<T>(result: Result<T, SignalError>, bytes: &[u8], encode: impl Fn(&T) -> Result<Vec<u8>, SignalError>) -> Option<T> {
    match result {
        Ok(value) => {
            assert_eq!(encode(&value).expect("what decodes encodes"), bytes, "one encoding");
            Some(value)
        }
        Err(e) => {
            assert_eq!(e, SignalError::Malformed);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let kind = usize::from(mode % 3);
    let bytes = if mode & 4 == 0 { rest.to_vec() } else { apply_edits(&genuine()[kind], rest, true) };
    let sdp = match kind {
        0 => check(Description::decode(&bytes), &bytes, Description::encode).map(|d| d.sdp),
        1 => check(Answer::decode(&bytes), &bytes, Answer::encode).map(|a| a.description.sdp),
        _ => check(Candidate::decode(&bytes), &bytes, Candidate::encode).map(|c| c.candidate),
    };
    if let Some(text) = sdp {
        if let Err(e) = sdp_fingerprint(&text) {
            assert_eq!(e, SignalError::Sdp);
        }
    }
});
