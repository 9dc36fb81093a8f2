//! Every enrollment, rotation and quote-exchange decoder on arbitrary bytes: only `Ok` or a
//! typed error, never a panic; and whatever decodes re-encodes to bytes that decode to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::enroll::{
    EnrollRequest, EnrollResponse, NonceAnswer, NonceRequest, QuoteAnswer, QuoteEvidence, QuoteRequest,
    RotationRequest,
};

macro_rules! round_trip {
    ($ty:ty, $data:expr) => {
        if let Ok(message) = <$ty>::decode($data) {
            let encoded = message.encode().expect("a decoded message encodes");
            assert_eq!(<$ty>::decode(&encoded).expect("an encoded message decodes"), message);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(EnrollRequest, data);
    round_trip!(EnrollResponse, data);
    round_trip!(RotationRequest, data);
    round_trip!(NonceRequest, data);
    round_trip!(NonceAnswer, data);
    round_trip!(QuoteEvidence, data);
    round_trip!(QuoteRequest, data);
    round_trip!(QuoteAnswer, data);
});
