use super::*;
use crate::ErrorCode;

fn quote() -> BoundQuote {
    BoundQuote {
        ak_public_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        ak_binding: vec![1; 70],
        attest: vec![2; 120],
        signature: vec![3; 72],
        pcr_values: vec![4; 300],
    }
}

fn evidence() -> QuoteEvidence {
    QuoteEvidence { nonce: vec![0xab; 32], quote: quote(), activated_secret: None, certification: None }
}

fn enroll_request() -> EnrollRequest {
    EnrollRequest {
        token_id: [0x11; 32],
        token_proof: [0x22; 64],
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n".into(),
        node_id: Some("tablet-7".into()),
        attestation: Some(evidence()),
    }
}

fn response() -> EnrollResponse {
    EnrollResponse {
        certificate_pem: "-----BEGIN CERTIFICATE-----\n".into(),
        ca_chain_pem: "-----BEGIN CERTIFICATE-----\n".into(),
        serial: "0a1b2c".into(),
        not_after_ms: 1_800_000_000_000,
        config: Some(DeviceConfig {
            bootstrap_peers: vec!["10.0.0.1:7000".into()],
            gossip_fanout: 3,
            crl_url: "http://ca/v1/crl".into(),
        }),
    }
}

fn json(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

/// The enrollment request's JSON text with `from` replaced by `to` (a duplicate field).
fn edited_json(from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(enroll_request().encode().unwrap()).unwrap().replacen(from, to, 1).into_bytes()
}

/// The enrollment request as JSON, with `edit` applied to it.
fn edited_request(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&enroll_request().encode().unwrap()).unwrap();
    edit(&mut value);
    json(value)
}

#[test]
fn every_message_round_trips_through_its_codec() {
    assert_eq!(EnrollRequest::decode(&enroll_request().encode().unwrap()).unwrap(), enroll_request());
    assert_eq!(EnrollResponse::decode(&response().encode().unwrap()).unwrap(), response());
    assert_eq!(QuoteEvidence::decode(&evidence().encode().unwrap()).unwrap(), evidence());
    let rotation = RotationRequest {
        certificate_pem: "c".into(),
        csr_pem: "r".into(),
        timestamp_ms: 1_700_000_000_000,
        signature: vec![9; 71],
        attestation: None,
    };
    assert_eq!(RotationRequest::decode(&rotation.encode().unwrap()).unwrap(), rotation);
    let certification = KeyCertification { key_public: vec![6; 90], attest: vec![7; 130], signature: vec![8; 72] };
    let attested = RotationRequest {
        attestation: Some(QuoteEvidence { certification: Some(certification), ..evidence() }),
        ..rotation.clone()
    };
    assert_eq!(RotationRequest::decode(&attested.encode().unwrap()).unwrap(), attested);
    let mut wire: serde_json::Value = serde_json::from_slice(&attested.encode().unwrap()).unwrap();
    wire["attestation"].as_object_mut().unwrap().remove("certify_signature");
    assert!(
        matches!(RotationRequest::decode(wire.to_string().as_bytes()), Err(EnrollError::BadRequest(_))),
        "a third of a certification"
    );
    let nonce = NonceRequest {
        node_id: "n1".into(),
        auth: NonceAuth::Token { token_id: [1; 32], token_proof: [2; 64] },
        endorsement: None,
    };
    assert_eq!(NonceRequest::decode(&nonce.encode().unwrap()).unwrap(), nonce);
    let endorsed = NonceRequest {
        endorsement: Some(Endorsement { ek_certificate: vec![1; 1500], ak_public: vec![2; 90] }),
        ..nonce.clone()
    };
    assert_eq!(NonceRequest::decode(&endorsed.encode().unwrap()).unwrap(), endorsed);
    let by_certificate = NonceRequest {
        auth: NonceAuth::Certificate {
            certificate_pem: "c".into(),
            timestamp_ms: 1_700_000_000_000,
            signature: vec![9; 71],
        },
        ..nonce.clone()
    };
    assert_eq!(NonceRequest::decode(&by_certificate.encode().unwrap()).unwrap(), by_certificate);
    let unsigned = NonceRequest {
        auth: NonceAuth::Certificate { certificate_pem: "c".into(), timestamp_ms: 1, signature: vec![] },
        ..nonce.clone()
    };
    assert!(unsigned.encode().is_err(), "an unsigned certificate request is never written");
    let answer = NonceAnswer {
        nonce: vec![7; 32],
        expires_at_ms: 5,
        pcrs: Some(PcrSelection::new(&[7, 0]).unwrap()),
        challenge: None,
    };
    assert_eq!(NonceAnswer::decode(&answer.encode().unwrap()).unwrap(), answer);
    let challenged = NonceAnswer {
        challenge: Some(CredentialChallenge { credential_blob: vec![3; 68], encrypted_secret: vec![4; 256] }),
        ..answer
    };
    assert_eq!(NonceAnswer::decode(&challenged.encode().unwrap()).unwrap(), challenged);
    let activated = QuoteEvidence { activated_secret: Some(vec![5; 32]), ..evidence() };
    assert_eq!(QuoteEvidence::decode(&activated.encode().unwrap()).unwrap(), activated);
    // Half a challenge is malformed on either side.
    assert!(matches!(
        NonceRequest::decode(
            format!(
                r#"{{"node_id":"n1","token_id":"{}","token_proof":"{}","ek_certificate":"AAAA"}}"#,
                "01".repeat(32),
                "02".repeat(64)
            )
            .as_bytes()
        ),
        Err(EnrollError::BadRequest(_))
    ));
    assert!(matches!(
        NonceAnswer::decode(
            format!(r#"{{"nonce":"{}","expires_at":5,"credential_blob":"AAAA"}}"#, "ab".repeat(16)).as_bytes()
        ),
        Err(EnrollError::BadResponse(_))
    ));
    let huge = NonceRequest {
        endorsement: Some(Endorsement { ek_certificate: vec![1; 4000], ak_public: vec![2; 90] }),
        ..nonce.clone()
    };
    assert!(huge.encode().is_err(), "an encoder never writes what its decoder refuses");
    let request = QuoteRequest { nonce: vec![1; 16], pcrs: PcrSelection::new(&[0, 1, 2, 3, 7]).unwrap() };
    assert_eq!(QuoteRequest::decode(&request.encode().unwrap()).unwrap(), request);
    for answer in [QuoteAnswer::Quote(quote()), QuoteAnswer::Error { code: "ERR_TPM_UNAVAILABLE".into() }] {
        assert_eq!(QuoteAnswer::decode(&answer.encode().unwrap()).unwrap(), answer);
    }
}

#[test]
fn the_wire_format_is_the_documented_json() {
    let request = QuoteRequest { nonce: vec![0xab; 16], pcrs: PcrSelection::new(&[7, 0]).unwrap() };
    assert_eq!(
        request.encode().unwrap(),
        format!("{{\"v\":1,\"type\":\"quote-request\",\"nonce\":\"{}\",\"pcrs\":[0,7]}}\n", "ab".repeat(16)).as_bytes()
    );
    let error = QuoteAnswer::Error { code: "ERR_TPM_KEY".into() }.encode().unwrap();
    assert_eq!(error, b"{\"v\":1,\"type\":\"error\",\"code\":\"ERR_TPM_KEY\"}\n");
    let value: serde_json::Value = serde_json::from_slice(&evidence().encode().unwrap()).unwrap();
    assert_eq!(value["type"], "tpm2-quote");
    assert_eq!(value["nonce"], "ab".repeat(32));
    assert_eq!(value["ak_binding"], <base64ct::Base64 as base64ct::Encoding>::encode_string(&[1; 70]).as_str());
    let value: serde_json::Value = serde_json::from_slice(&response().encode().unwrap()).unwrap();
    assert_eq!(value["ca_cert"], "-----BEGIN CERTIFICATE-----\n");
    assert_eq!(value["not_after"], 1_800_000_000_000u64);
}

#[test]
fn a_rotation_signs_the_labelled_time_and_csr_hash() {
    let message = rotation_message(0x0102, "csr");
    assert!(message.starts_with(b"ztmesh-rotate-v1\0\0\0\0\0\0\0\x01\x02"));
    assert_eq!(message.len(), "ztmesh-rotate-v1".len() + 1 + 8 + 32);
    assert_ne!(rotation_message(0x0102, "csr2"), message);
    assert_ne!(rotation_message(0x0103, "csr"), message);
}

#[test]
fn a_certificate_nonce_request_signs_the_labelled_time_and_node() {
    let message = nonce_request_message(0x0102, "tablet-7");
    assert_eq!(message, b"ztmesh-nonce-by-certificate-v1\0\0\0\0\0\0\0\x01\x02tablet-7".to_vec());
    assert_ne!(nonce_request_message(0x0102, "tablet-8"), message);
    assert_ne!(nonce_request_message(0x0103, "tablet-7"), message);
    assert_ne!(&message[..], &rotation_message(0x0102, "tablet-7")[..], "another label than a rotation's");
}

#[test]
fn malformed_requests_are_bad_requests_with_a_field_but_no_value() {
    let cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{\"token_id\":".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        json(serde_json::json!({"csr": "x"})),
        edited_request(|v| v["extra"] = 1.into()),
        edited_request(|v| v["token_id"] = 5.into()),
        edited_request(|v| v["token_id"] = "".into()),
        edited_request(|v| v["token_id"] = "t".repeat(2000).into()),
        edited_request(|v| v["token_id"] = "1".repeat(63).into()),
        edited_request(|v| v["token_proof"] = "zz".repeat(64).into()),
        edited_request(|v| v["token_proof"] = "22".repeat(32).into()),
        // The token itself is no longer a field: a client sending it is refused, not ignored.
        edited_request(|v| v["token"] = "ztm1.secret-token".into()),
        edited_request(|v| {
            v.as_object_mut().unwrap().remove("token_proof");
        }),
        edited_request(|v| v["attestation"]["type"] = "sgx".into()),
        edited_request(|v| v["attestation"]["nonce"] = "zz".into()),
        edited_request(|v| v["attestation"]["nonce"] = "ab".repeat(8 - 1).into()),
        edited_request(|v| v["attestation"]["nonce"] = "ab".repeat(65).into()),
        edited_request(|v| v["attestation"]["nonce"] = 7.into()),
        edited_request(|v| v["attestation"]["attest"] = "not base64!".into()),
        edited_request(|v| v["attestation"]["attest"] = "AAA".into()),
        edited_request(|v| v["attestation"]["signature"] = "".into()),
        edited_request(|v| v["attestation"]["pcr_values"] = "A".repeat(20_000).into()),
        edited_request(|v| v["attestation"]["extra"] = "x".into()),
        edited_request(|v| v["attestation"] = serde_json::json!(["tpm2-quote"])),
        edited_json(r#","csr":"#, &format!(r#","token_id":"{}","csr":"#, "33".repeat(32))),
        [b"{\"token_id\":\"a\",\"csr\":\"c\",\"pad\":\"".as_slice(), &[b'x'; MAX_REQUEST], b"\"}"].concat(),
    ];
    for (i, case) in cases.iter().enumerate() {
        let error = EnrollRequest::decode(case).expect_err(&format!("case {i}"));
        assert_eq!(error.code(), "ERR_BAD_REQUEST", "case {i}: {error}");
        assert!(!error.to_string().contains("secret-token"), "case {i}: {error}");
    }
    // A token where a number belongs is not echoed either.
    let error =
        RotationRequest::decode(br#"{"certificate":"c","csr":"r","timestamp":"ztm1.secret-token","signature":"AA=="}"#)
            .unwrap_err();
    assert!(!error.to_string().contains("secret-token"), "{error}");
    assert!(EnrollRequest::decode(&edited_request(|v| v["attestation"] = serde_json::Value::Null))
        .unwrap()
        .attestation
        .is_none());
}

#[test]
fn malformed_rotation_and_nonce_requests_are_bad_requests() {
    let cases: [&[u8]; 7] = [
        br#"{"certificate":1,"csr":"r","timestamp":1,"signature":"AA=="}"#,
        br#"{"certificate":"c","csr":"r","timestamp":-1,"signature":"AA=="}"#,
        br#"{"certificate":"c","csr":"r","timestamp":1.5,"signature":"AA=="}"#,
        br#"{"certificate":"c","csr":"r","timestamp":9007199254740992,"signature":"AA=="}"#,
        br#"{"certificate":"c","csr":"r","timestamp":1,"signature":"!"}"#,
        br#"{"certificate":"c","csr":"r","timestamp":1}"#,
        br#"{"certificate":"c","csr":"r","timestamp":1,"signature":"AA==","roles":["admin"]}"#,
    ];
    for case in cases {
        assert_eq!(
            RotationRequest::decode(case).map(|_| ()).unwrap_err().code(),
            "ERR_BAD_REQUEST",
            "{}",
            String::from_utf8_lossy(case)
        );
    }
    let id = "11".repeat(32);
    let proof = "22".repeat(64);
    let good = format!(r#"{{"node_id":"n","token_id":"{id}","token_proof":"{proof}"}}"#);
    assert!(NonceRequest::decode(good.as_bytes()).is_ok());
    assert!(NonceRequest::decode(br#"{"node_id":"n","certificate":"c","timestamp":1,"signature":"AA=="}"#).is_ok());
    let cases = [
        "{}".to_owned(),
        format!(r#"{{"node_id":42,"token_id":"{id}","token_proof":"{proof}"}}"#),
        format!(r#"{{"node_id":"","token_id":"{id}","token_proof":"{proof}"}}"#),
        r#"["n"]"#.to_owned(),
        // An anonymous nonce request (no token proof) is refused.
        r#"{"node_id":"n"}"#.to_owned(),
        format!(r#"{{"node_id":"n","token_id":"{id}"}}"#),
        format!(r#"{{"node_id":"n","token_id":"{id}","token_proof":"{}"}}"#, &proof[2..]),
        format!(r#"{{"node_id":"n","token_id":"{id}","token_proof":"{id}"}}"#),
        // A certificate without its signature or time, or both authentications at once.
        r#"{"node_id":"n","certificate":"c","timestamp":1}"#.to_owned(),
        r#"{"node_id":"n","certificate":"c","signature":"AA=="}"#.to_owned(),
        r#"{"node_id":"n","timestamp":1,"signature":"AA=="}"#.to_owned(),
        format!(
            r#"{{"node_id":"n","token_id":"{id}","token_proof":"{proof}","certificate":"c","timestamp":1,"signature":"AA=="}}"#
        ),
        format!(r#"{{"node_id":"n","token_id":"{id}","certificate":"c","timestamp":1,"signature":"AA=="}}"#),
        r#"{"node_id":"n","certificate":"c","timestamp":-1,"signature":"AA=="}"#.to_owned(),
        r#"{"node_id":"n","certificate":"c","timestamp":1,"signature":"not base64"}"#.to_owned(),
    ];
    for case in cases {
        assert_eq!(NonceRequest::decode(case.as_bytes()).unwrap_err().code(), "ERR_BAD_REQUEST", "{case}");
    }
}

#[test]
fn malformed_answers_of_the_ca_are_bad_responses() {
    let good: serde_json::Value = serde_json::from_slice(&response().encode().unwrap()).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        json(v)
    };
    let cases = [
        edit(&|v| v["certificate"] = serde_json::Value::Null),
        edit(&|v| v["ca_cert"] = "".into()),
        edit(&|v| v["serial"] = "zz".into()),
        edit(&|v| v["not_after"] = (-1).into()),
        edit(&|v| v["config"]["crl_url"] = 5.into()),
        edit(&|v| v["config"]["gossip_fanout"] = 1000.into()),
        edit(&|v| v["config"]["bootstrap_peers"] = serde_json::json!(vec!["p"; 65])),
        edit(&|v| v["config"]["evil"] = true.into()),
        edit(&|v| v["trust"] = "x".into()),
        b"<html>".to_vec(),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(EnrollResponse::decode(case).unwrap_err().code(), "ERR_BAD_RESPONSE", "case {i}");
    }
    for case in [
        &br#"{"nonce":"zz","expires_at":1}"#[..],
        br#"{"nonce":"00112233445566778899aabbccddeeff","expires_at":1,"pcrs":[24]}"#,
        br#"{"nonce":"00112233445566778899aabbccddeeff","expires_at":1,"pcrs":[]}"#,
        br#"{"nonce":"00112233445566778899aabbccddeeff","expires_at":1,"pcrs":[7,7]}"#,
        br#"{"nonce":"00112233445566778899aabbccddeeff"}"#,
    ] {
        assert_eq!(NonceAnswer::decode(case).unwrap_err().code(), "ERR_BAD_RESPONSE");
    }
}

#[test]
fn malformed_quote_exchange_messages_are_malformed_attestations() {
    let nonce = "ab".repeat(16);
    let cases = [
        format!(r#"{{"v":2,"type":"quote-request","nonce":"{nonce}","pcrs":[0]}}"#),
        format!(r#"{{"type":"quote-request","nonce":"{nonce}","pcrs":[0]}}"#),
        format!(r#"{{"v":1,"type":"quote-request","nonce":"{nonce}","pcrs":[0],"code":"ERR_TPM_KEY"}}"#),
        format!(r#"{{"v":1,"type":"quote-request","nonce":"{nonce}","pcrs":[0,0]}}"#),
        format!(r#"{{"v":1,"type":"quote-request","nonce":"{nonce}","pcrs":[-1]}}"#),
        format!(r#"{{"v":1,"type":"quote-request","nonce":"{nonce}","pcrs":[{}]}}"#, vec!["1"; 10_000].join(",")),
        r#"{"v":1,"type":"quote-request","nonce":"abc","pcrs":[0]}"#.to_string(),
        r#"{"v":1,"type":"quote","nonce":"ab"}"#.to_string(),
        "not json".to_string(),
    ];
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(QuoteRequest::decode(case.as_bytes()).unwrap_err().code(), "ERR_ATTEST_MALFORMED", "case {i}");
    }
    let answers = [
        r#"{"v":1,"type":"error","code":"not a code"}"#,
        r#"{"v":1,"type":"error","code":"ERR_"}"#,
        r#"{"v":1,"type":"error"}"#,
        r#"{"v":1,"type":"quote","ak_public_pem":"k","ak_binding":"AA==","attest":"AA==","signature":"AA=="}"#,
        r#"{"v":1,"type":"quote","ak_public_pem":"k","ak_binding":"AA==","attest":"AA==","signature":"AA==","pcr_values":"AA==","code":"ERR_TPM_KEY"}"#,
        r#"{"v":1,"type":"quote-request","nonce":"00112233445566778899aabbccddeeff","pcrs":[0]}"#,
    ];
    for (i, case) in answers.iter().enumerate() {
        assert_eq!(QuoteAnswer::decode(case.as_bytes()).unwrap_err().code(), "ERR_ATTEST_MALFORMED", "case {i}");
    }
}

#[test]
fn pcr_selections_are_distinct_indices_kept_ascending() {
    assert_eq!(PcrSelection::new(&[7, 0, 3]).unwrap().indices(), &[0, 3, 7]);
    assert_eq!(PcrSelection::new(&(0..24).collect::<Vec<_>>()).unwrap().indices().len(), 24);
    for bad in [&[][..], &[24], &[u32::MAX], &[1, 1], &[0; 25]] {
        assert_eq!(PcrSelection::new(bad).unwrap_err().code(), "ERR_INVALID_ARG", "{bad:?}");
    }
}

#[test]
fn encoders_refuse_what_their_decoders_would_refuse() {
    let mut request = enroll_request();
    request.attestation.as_mut().unwrap().nonce = vec![1; 8];
    assert_eq!(request.encode().unwrap_err().code(), "ERR_INVALID_ARG");
    let mut quote = quote();
    quote.pcr_values = vec![0; MAX_EVIDENCE_FIELD];
    assert_eq!(QuoteAnswer::Quote(quote).encode().unwrap_err().code(), "ERR_INVALID_ARG");
    assert_eq!(QuoteAnswer::Error { code: "oops".into() }.encode().unwrap_err().code(), "ERR_INVALID_ARG");
    let mut answer = response();
    answer.not_after_ms = u64::MAX;
    assert_eq!(answer.encode().unwrap_err().code(), "ERR_INVALID_ARG");
    let unsigned = RotationRequest {
        certificate_pem: "c".into(),
        csr_pem: "r".into(),
        timestamp_ms: 1,
        signature: vec![],
        attestation: None,
    };
    assert_eq!(unsigned.encode().unwrap_err().code(), "ERR_INVALID_ARG");
}

#[test]
fn the_decoders_survive_seeded_garbage_and_mutations() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        enroll_request().encode().unwrap(),
        response().encode().unwrap(),
        QuoteAnswer::Quote(quote()).encode().unwrap(),
        QuoteRequest { nonce: vec![1; 16], pcrs: PcrSelection::new(&[0, 7]).unwrap() }.encode().unwrap(),
    ];
    for round in 0..4000 {
        let mut bytes = if round % 4 == 0 {
            (0..(next() % 256)).map(|_| next() as u8).collect::<Vec<_>>()
        } else {
            seeds[round % seeds.len()].clone()
        };
        for _ in 0..(next() % 4) {
            let len = bytes.len().max(1);
            if let Some(byte) = bytes.get_mut((next() as usize) % len) {
                *byte = next() as u8;
            }
        }
        let _ = EnrollRequest::decode(&bytes);
        let _ = EnrollResponse::decode(&bytes);
        let _ = RotationRequest::decode(&bytes);
        let _ = NonceRequest::decode(&bytes);
        let _ = NonceAnswer::decode(&bytes);
        let _ = QuoteRequest::decode(&bytes);
        let _ = QuoteAnswer::decode(&bytes);
    }
}

#[test]
fn a_struct_spelled_as_an_array_is_refused() {
    // serde would read these positionally.
    assert_eq!(NonceRequest::decode(br#"["n"]"#).unwrap_err().code(), "ERR_BAD_REQUEST");
    let positional = edited_request(|v| {
        v["attestation"] = serde_json::json!(["tpm2-quote", "ab".repeat(16), "k", "AA==", "AA==", "AA==", "AA=="])
    });
    assert_eq!(EnrollRequest::decode(&positional).unwrap_err().code(), "ERR_BAD_REQUEST");
    let nested = br#"{"v":1,"type":"quote-request","nonce":"00112233445566778899aabbccddeeff","pcrs":[[0]]}"#;
    assert_eq!(QuoteRequest::decode(nested).unwrap_err().code(), "ERR_ATTEST_MALFORMED");
}
