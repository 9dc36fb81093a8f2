//! TPM quote verification on arbitrary quotes, signatures and PCR files: only a `QuoteInfo` or
//! a typed error, never a panic; and a verified quote reports exactly the PCR values given.
//!
//! The first byte picks the mode. Mode 0: the rest is a quote, a signature and a PCR file,
//! each but the last prefixed with its length (u16, big-endian); the key, PEM and PCR parsers
//! also get the rest as is. Mode 1: the rest is a list of edits `(target u8, offset u16, xor
//! u8)` applied to a valid quote and PCR file, and the quote is then signed again with the
//! fuzzer's AK, so mutations get past the signature to the quote parser and the PCR checks.
//! Mode 2: the same edits applied to a quote made by swtpm and tpm2-tools, not signed again.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ztmesh_core::attest::{verify_quote, AkPublicKey, PcrBank, PcrPolicy, PcrValues};
use ztmesh_core::pki::{CertSigner, SoftwareSigner};

const NONCE: [u8; 32] = [0x5a; 32];

const SWTPM_AK: &str = include_str!("../../tests/tpm_common/vectors/swtpm-ak.pem");
const SWTPM_NONCE: &str = include_str!("../../tests/tpm_common/vectors/swtpm-nonce.hex");
const SWTPM_MSG: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.msg");
const SWTPM_SIG: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.sig");
const SWTPM_PCRS: &[u8] = include_bytes!("../../tests/tpm_common/vectors/swtpm-quote-12pcrs.pcrs");

struct Fixture {
    signer: SoftwareSigner,
    ak: AkPublicKey,
    attest: Vec<u8>,
    pcrs: Vec<u8>,
    policy: PcrPolicy,
    swtpm_ak: AkPublicKey,
    swtpm_nonce: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signer = SoftwareSigner::generate().unwrap();
        let ak = AkPublicKey::from_point(signer.public_key()).unwrap();
        let values = PcrValues::sha256(&[(0, [1; 32]), (7, [2; 32]), (16, [3; 32])]).unwrap();
        let attest = quote_of(&values);
        let policy = PcrPolicy::sha256(&[(7, [2; 32])]).unwrap();
        let swtpm_ak = AkPublicKey::from_pem(SWTPM_AK).unwrap();
        let swtpm_nonce = (0..SWTPM_NONCE.len() / 2)
            .map(|i| u8::from_str_radix(&SWTPM_NONCE[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        Fixture { signer, ak, attest, pcrs: values.to_tpm2_tools(), policy, swtpm_ak, swtpm_nonce }
    })
}

/// A marshalled `TPMS_ATTEST` quoting the SHA-256 PCRs of `values` over `NONCE`.
fn quote_of(values: &PcrValues) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xff54_4347u32.to_be_bytes());
    out.extend_from_slice(&0x8018u16.to_be_bytes());
    // qualifiedSigner, extraData.
    out.extend_from_slice(&[0, 4, 0, 0x0b, 1, 2]);
    out.extend_from_slice(&[0, 32]);
    out.extend_from_slice(&NONCE);
    // clockInfo (clock, resetCount, restartCount, safe), firmwareVersion.
    out.extend_from_slice(&[0; 17 + 8]);
    // TPML_PCR_SELECTION of the SHA-256 bank, then pcrDigest.
    let bitmap = values.values().iter().fold(0u32, |b, v| b | 1 << v.index);
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3]);
    out.extend_from_slice(&bitmap.to_le_bytes()[..3]);
    out.extend_from_slice(&[0, 32]);
    out.extend_from_slice(&values.quote_digest());
    out
}

/// Signs `attest` with the fixture's key: a marshalled ECDSA/SHA-256 `TPMT_SIGNATURE`.
fn tpm_sign(signer: &SoftwareSigner, attest: &[u8]) -> Vec<u8> {
    let der = signer.sign(attest).unwrap();
    let mut out = vec![0x00, 0x18, 0x00, 0x0b];
    // SEQUENCE { INTEGER r, INTEGER s }, short lengths only (P-256).
    let mut at = 2;
    for _ in 0..2 {
        let len = usize::from(der[at + 1]);
        let mut scalar = &der[at + 2..at + 2 + len];
        while scalar.len() > 32 && scalar[0] == 0 {
            scalar = &scalar[1..];
        }
        out.extend_from_slice(&(scalar.len() as u16).to_be_bytes());
        out.extend_from_slice(scalar);
        at += 2 + len;
    }
    out
}

/// Applies `(target, offset, xor)` edits: target 0 the quote, 1 the PCR file, 2 the signature;
/// `xor` 0 at an offset past the end truncates instead.
fn edit(parts: &mut [Vec<u8>; 3], edits: &[u8]) {
    for e in edits.chunks_exact(4) {
        let part = &mut parts[usize::from(e[0] % 3)];
        let offset = usize::from(u16::from_be_bytes([e[1], e[2]]));
        match part.get_mut(offset) {
            Some(byte) => *byte ^= e[3],
            None if e[3] == 0 => part.truncate(offset % (part.len() + 1)),
            None => part.push(e[3]),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fixture = fixture();
    let (ak, nonce, parts, policy) = match mode % 3 {
        0 => {
            let _ = PcrValues::from_tpm2_tools(rest);
            let _ = AkPublicKey::from_spki_der(rest);
            let _ = AkPublicKey::from_point(rest);
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = AkPublicKey::from_pem(text);
            }
            let mut parts: [Vec<u8>; 3] = Default::default();
            let mut rest = rest;
            for part in parts.iter_mut().take(2) {
                if rest.len() < 2 {
                    break;
                }
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
                *part = rest[2..2 + len].to_vec();
                rest = &rest[2 + len..];
            }
            parts[2] = rest.to_vec();
            // [quote, signature, PCR file] → the order `edit` uses: [quote, PCR file, signature].
            parts.swap(1, 2);
            (&fixture.ak, &NONCE[..], parts, PcrPolicy::default())
        }
        1 => {
            let mut parts = [fixture.attest.clone(), fixture.pcrs.clone(), Vec::new()];
            edit(&mut parts, rest);
            parts[2] = tpm_sign(&fixture.signer, &parts[0]);
            if rest.len() < 4 {
                let info = verify_quote(&fixture.ak, &parts[0], &parts[2], &parts[1], &NONCE, &fixture.policy);
                assert!(info.is_ok(), "the unedited quote verifies: {info:?}");
            }
            (&fixture.ak, &NONCE[..], parts, fixture.policy.clone())
        }
        _ => {
            let mut parts = [SWTPM_MSG.to_vec(), SWTPM_PCRS.to_vec(), SWTPM_SIG.to_vec()];
            edit(&mut parts, rest);
            (&fixture.swtpm_ak, &fixture.swtpm_nonce[..], parts, PcrPolicy::default())
        }
    };
    let [attest, pcrs, signature] = &parts;
    if let Ok(info) = verify_quote(ak, attest, signature, pcrs, nonce, &policy) {
        let values = PcrValues::from_tpm2_tools(pcrs).expect("a verified quote's PCR file parses");
        assert_eq!(info.pcrs, values.values());
        for (index, expected) in policy.expected() {
            assert_eq!(values.get(PcrBank::Sha256, index), Some(&expected[..]));
        }
    }
});
