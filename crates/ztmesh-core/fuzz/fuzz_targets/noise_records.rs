//! Feeds arbitrary bytes to the record layer of an established Noise link, cut into chunks at
//! arbitrary places, after some honest records.
//!
//! The first input byte says how many honest records come first and how to cut the rest. Nothing
//! may panic; the layer must deliver exactly the honest data, and a failure must be a typed
//! error after which the layer stays failed and has delivered nothing of the failed chunk.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::noise::{Handshake, HandshakeConfig, NoiseError, Protocol, RecordLayer, RekeyPolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (mut sender, mut receiver) = pair();
    let honest_records = usize::from(selector % 4);
    let cut = usize::from(selector / 4) + 1;

    let mut wire = Vec::new();
    for i in 0..honest_records {
        sender.seal(&[i as u8; 100], &mut wire).expect("honest seal");
    }
    let mut delivered = Vec::new();
    receiver.open(&wire, &mut delivered).expect("honest records open");
    assert_eq!(delivered.len(), honest_records * 100);

    for chunk in rest.chunks(cut) {
        let mut out = vec![0u8; receiver.opened_len_bound(chunk.len())];
        match receiver.open_into(chunk, &mut out) {
            Ok(n) => assert!(n <= chunk.len() + 65_535),
            Err(error) => {
                assert!(matches!(error, NoiseError::Decrypt | NoiseError::Malformed));
                assert!(out.iter().all(|b| *b == 0), "nothing of a failed chunk is delivered");
                assert_eq!(receiver.open_into(&[], &mut out), Err(error), "the layer stays failed");
                return;
            }
        }
    }
});

fn pair() -> (RecordLayer, RecordLayer) {
    let config = |key: &'static [u8; 32]| HandshakeConfig {
        protocol: Protocol::XxAesGcmSha256,
        static_private_key: key,
        prologue: b"",
        remote_static_public_key: None,
    };
    let mut a = Handshake::initiator(&config(&[0x11; 32])).expect("initiator");
    let mut b = Handshake::responder(&config(&[0x22; 32])).expect("responder");
    b.read_message(&a.write_message(&[]).expect("m1")).expect("m1");
    a.read_message(&b.write_message(&[]).expect("m2")).expect("m2");
    b.read_message(&a.write_message(&[]).expect("m3")).expect("m3");
    let policy = RekeyPolicy { after_records: 2, ..RekeyPolicy::default() };
    (
        RecordLayer::new(a.into_transport().expect("transport"), policy),
        RecordLayer::new(b.into_transport().expect("transport"), policy),
    )
}
