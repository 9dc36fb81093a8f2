use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::quote::{TPM_ALG_ECDSA, TPM_ALG_SHA256, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};
use super::*;
use crate::pki::{
    build_csr, CaParams, CertSigner, CertificateAuthority, CertificateRequest, DeviceCertRequest, SoftwareSigner,
};
use crate::ErrorCode;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tpm_common/vectors/");
const PCR16: &str = "90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365";

/// A quote from the swtpm vectors: the AK and nonce, and the three pieces of one quote.
struct Vector {
    ak: AkPublicKey,
    nonce: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
    pcrs: Vec<u8>,
}

fn vector(name: &str) -> Vector {
    let read = |file: &str| std::fs::read(format!("{VECTORS}{file}")).unwrap();
    let ak = AkPublicKey::from_pem(&String::from_utf8(read("swtpm-ak.pem")).unwrap()).unwrap();
    let nonce = hex::decode(read("swtpm-nonce.hex")).unwrap();
    let (msg, sig, pcrs) = (read(&format!("{name}.msg")), read(&format!("{name}.sig")), read(&format!("{name}.pcrs")));
    Vector { ak, nonce, msg, sig, pcrs }
}

impl Vector {
    fn verify(&self, policy: &PcrPolicy) -> Result<QuoteInfo, AttestError> {
        verify_quote(&self.ak, &self.msg, &self.sig, &self.pcrs, &self.nonce, policy)
    }
}

fn pcr16() -> [u8; 32] {
    hex::decode(PCR16).unwrap().try_into().unwrap()
}

#[test]
fn verifies_quotes_made_by_tpm2_tools() {
    let twelve = vector("swtpm-quote-12pcrs");
    let policy = PcrPolicy::sha256(&[(16, pcr16()), (0, [0; 32]), (10, [0; 32])]).unwrap();
    let info = twelve.verify(&policy).unwrap();
    assert_eq!(info.pcrs.len(), 12);
    assert_eq!(info.pcrs[11], PcrValue { bank: PcrBank::Sha256, index: 16, value: pcr16().to_vec() });
    assert!(info.clock.safe);
    assert_eq!(info.qualified_signer.len(), 34);
    assert!(twelve.verify(&PcrPolicy::default()).is_ok());

    let two = vector("swtpm-quote-2banks");
    let info = two.verify(&PcrPolicy::sha256(&[(16, pcr16())]).unwrap()).unwrap();
    let banks: Vec<(PcrBank, u8)> = info.pcrs.iter().map(|p| (p.bank, p.index)).collect();
    assert_eq!(banks, [(PcrBank::Sha1, 0), (PcrBank::Sha1, 16), (PcrBank::Sha256, 16)]);
    // PCR 0 is quoted in the SHA-1 bank only: the SHA-256 policy cannot be met.
    assert_eq!(two.verify(&PcrPolicy::sha256(&[(0, [0; 32])]).unwrap()), Err(AttestError::PcrMismatch));
}

#[test]
fn refuses_quotes_that_break_a_rule() {
    let v = vector("swtpm-quote-12pcrs");
    let any = PcrPolicy::default();
    let check = |ak: &AkPublicKey, msg: &[u8], sig: &[u8], pcrs: &[u8], nonce: &[u8], policy: &PcrPolicy| {
        verify_quote(ak, msg, sig, pcrs, nonce, policy).map(|_| ())
    };

    // Nonce: another one, a prefix, a too short or too long expectation.
    let mut other = v.nonce.clone();
    other[31] ^= 1;
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &other, &any), Err(AttestError::Nonce));
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &v.nonce[..16], &any), Err(AttestError::Nonce));
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &v.nonce[..15], &any), Err(AttestError::Nonce));
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &[0; 65], &any), Err(AttestError::Nonce));

    // Signature: another key, a flipped bit in the quote or in the signature.
    let stranger = AkPublicKey::from_pem(&software_ak().1.to_pem()).unwrap();
    assert_eq!(check(&stranger, &v.msg, &v.sig, &v.pcrs, &v.nonce, &any), Err(AttestError::Signature));
    for at in [0, 10, v.msg.len() - 1] {
        let mut msg = v.msg.clone();
        msg[at] ^= 0x80;
        assert_eq!(check(&v.ak, &msg, &v.sig, &v.pcrs, &v.nonce, &any), Err(AttestError::Signature), "{at}");
    }
    let mut sig = v.sig.clone();
    sig[20] ^= 1;
    assert_eq!(check(&v.ak, &v.msg, &sig, &v.pcrs, &v.nonce, &any), Err(AttestError::Signature));
    let zero_r = [&v.sig[..6], &[0; 32], &v.sig[38..]].concat();
    assert_eq!(check(&v.ak, &v.msg, &zero_r, &v.pcrs, &v.nonce, &any), Err(AttestError::Signature));
    assert_eq!(check(&v.ak, &v.msg, &v.sig[..70], &v.pcrs, &v.nonce, &any), Err(AttestError::Malformed));
    assert_eq!(check(&v.ak, &v.msg, b"", &v.pcrs, &v.nonce, &any), Err(AttestError::Malformed));

    // PCR values: a changed value, the values of another quote, a broken file.
    let mut pcrs = v.pcrs.clone();
    pcrs[150] ^= 1; // inside the value of PCR 0
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &pcrs, &v.nonce, &any), Err(AttestError::PcrValues));
    let two = vector("swtpm-quote-2banks");
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &two.pcrs, &v.nonce, &any), Err(AttestError::PcrValues));
    let same_selection_other_values =
        PcrValues::sha256(&(0..=10).map(|i| (i, [0; 32])).chain([(16, [1; 32])]).collect::<Vec<_>>()).unwrap();
    let forged = same_selection_other_values.to_tpm2_tools();
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &forged, &v.nonce, &any), Err(AttestError::PcrValues));
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs[1..], &v.nonce, &any), Err(AttestError::Malformed));

    // Policy: another value expected, or a PCR the quote does not cover.
    let wrong = PcrPolicy::sha256(&[(16, [0; 32])]).unwrap();
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &v.nonce, &wrong), Err(AttestError::PcrMismatch));
    let uncovered = PcrPolicy::sha256(&[(16, pcr16()), (11, [0; 32])]).unwrap();
    assert_eq!(check(&v.ak, &v.msg, &v.sig, &v.pcrs, &v.nonce, &uncovered), Err(AttestError::PcrMismatch));

    let codes: Vec<&str> = [
        AttestError::Malformed,
        AttestError::Signature,
        AttestError::Nonce,
        AttestError::PcrValues,
        AttestError::PcrMismatch,
        AttestError::PcrSelection,
        AttestError::Binding,
    ]
    .iter()
    .map(ErrorCode::code)
    .collect();
    assert_eq!(
        codes,
        [
            "ERR_ATTEST_MALFORMED",
            "ERR_ATTEST_SIGNATURE",
            "ERR_ATTEST_NONCE",
            "ERR_ATTEST_PCR_VALUES",
            "ERR_ATTEST_PCR_MISMATCH",
            "ERR_ATTEST_PCR_SELECTION",
            "ERR_ATTEST_BINDING"
        ]
    );
}

/// A software P-256 key standing in for an AK that would sign anything (an unrestricted key).
fn software_ak() -> (EcdsaKeyPair, AkPublicKey) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let ak = AkPublicKey::from_point(pair.public_key().as_ref()).unwrap();
    (pair, ak)
}

/// Signs `attest` as a TPM would: a marshalled ECDSA/SHA-256 `TPMT_SIGNATURE`.
fn tpm_sign(pair: &EcdsaKeyPair, attest: &[u8]) -> Vec<u8> {
    let raw = pair.sign(&SystemRandom::new(), attest).unwrap();
    let (r, s) = raw.as_ref().split_at(32);
    let mut out = Vec::new();
    out.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
    out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    for scalar in [r, s] {
        wire::push_tpm2b(&mut out, scalar).unwrap();
    }
    out
}

/// A marshalled `TPMS_ATTEST` of type `kind` quoting `values` with `nonce`.
fn attest(magic: u32, kind: u16, nonce: &[u8], values: &PcrValues) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    wire::push_tpm2b(&mut out, &[0x00, 0x0b, 7, 7, 7, 7]).unwrap();
    wire::push_tpm2b(&mut out, nonce).unwrap();
    out.extend_from_slice(&1234u64.to_be_bytes());
    out.extend_from_slice(&5u32.to_be_bytes());
    out.extend_from_slice(&6u32.to_be_bytes());
    out.push(1);
    out.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
    // TPML_PCR_SELECTION of the SHA-256 bank.
    let bitmap = values.values().iter().fold(0u32, |b, v| b | 1 << v.index);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&PcrBank::Sha256.algorithm_id().to_be_bytes());
    out.push(3);
    out.extend_from_slice(&bitmap.to_le_bytes()[..3]);
    wire::push_tpm2b(&mut out, &values.quote_digest()).unwrap();
    out
}

#[test]
fn checks_what_an_unrestricted_key_could_sign() {
    let (pair, ak) = software_ak();
    let nonce = [9u8; 20];
    let values = PcrValues::sha256(&[(7, [3; 32]), (1, [4; 32])]).unwrap();
    let pcrs = values.to_tpm2_tools();
    let any = PcrPolicy::default();
    let signed = |msg: Vec<u8>| {
        let sig = tpm_sign(&pair, &msg);
        verify_quote(&ak, &msg, &sig, &pcrs, &nonce, &any)
    };

    let info = signed(attest(TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, &nonce, &values)).unwrap();
    assert_eq!(info.clock, ClockInfo { clock: 1234, reset_count: 5, restart_count: 6, safe: true });
    assert_eq!(info.firmware_version, 0x0102_0304_0506_0708);
    assert_eq!(info.qualified_signer, [0x00, 0x0b, 7, 7, 7, 7]);
    assert_eq!(info.pcrs, values.values());

    // Not made by a TPM, not a quote, a byte more: signed, but refused.
    assert_eq!(signed(attest(0x1234_5678, TPM_ST_ATTEST_QUOTE, &nonce, &values)), Err(AttestError::Malformed));
    assert_eq!(signed(attest(TPM_GENERATED_VALUE, 0x8017, &nonce, &values)), Err(AttestError::Malformed));
    let mut long = attest(TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, &nonce, &values);
    long.push(0);
    assert_eq!(signed(long), Err(AttestError::Malformed));
    // Every truncation of a signed quote is refused as malformed.
    let full = attest(TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, &nonce, &values);
    for len in 0..full.len() {
        assert_eq!(signed(full[..len].to_vec()), Err(AttestError::Malformed), "{len}");
    }
    // An empty or shorter nonce in the quote.
    assert_eq!(signed(attest(TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, &[], &values)), Err(AttestError::Nonce));
    assert_eq!(
        signed(attest(TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE, &nonce[..19], &values)),
        Err(AttestError::Nonce)
    );
}

#[test]
fn ak_public_keys_parse_strictly() {
    let pem = std::fs::read_to_string(format!("{VECTORS}swtpm-ak.pem")).unwrap();
    let ak = AkPublicKey::from_pem(&pem).unwrap();
    assert_eq!(ak.to_pem(), pem);
    assert_eq!(AkPublicKey::from_spki_der(&ak.spki_der()).unwrap(), ak);
    assert_eq!(AkPublicKey::from_point(ak.point()).unwrap(), ak);
    let spki = ak.spki_der();
    assert_eq!(AkPublicKey::from_spki_der(&spki[..90]), Err(AttestError::Malformed));
    assert_eq!(AkPublicKey::from_spki_der(&[&spki[..], &[0]].concat()), Err(AttestError::Malformed));
    let mut compressed = ak.point().to_vec();
    compressed[0] = 0x02;
    assert_eq!(AkPublicKey::from_point(&compressed), Err(AttestError::Malformed));
    assert_eq!(AkPublicKey::from_point(&ak.point()[..33]), Err(AttestError::Malformed));
    let mut other_curve = spki.clone();
    other_curve[22] = 0x22;
    assert_eq!(AkPublicKey::from_spki_der(&other_curve), Err(AttestError::Malformed));
    assert_eq!(AkPublicKey::from_pem(&pem.replace("PUBLIC KEY", "CERTIFICATE")), Err(AttestError::Malformed));
}

#[test]
fn ak_bindings_name_the_device() {
    let root = CertificateAuthority::create_root(&CaParams::root("r", "o")).unwrap().authority().unwrap();
    let site = root.create_site_ca(&CaParams::site("s", "o")).unwrap().authority().unwrap();
    let issue = |signer: &SoftwareSigner| {
        let csr = CertificateRequest::from_der(&build_csr(signer, "tablet-1", "t").unwrap().der).unwrap();
        site.issue(&csr, &DeviceCertRequest::new("tablet-1", "t")).unwrap().der
    };
    let device = SoftwareSigner::generate().unwrap();
    let certificate = issue(&device);
    let (_, ak) = software_ak();
    let (_, other_ak) = software_ak();

    let message = ak_binding_message(&ak);
    assert!(message.starts_with(&crate::wire::labels::AK_BINDING.prefix()));
    assert_eq!(message.len(), crate::wire::labels::AK_BINDING.prefix().len() + 32);
    assert_ne!(ak_binding_message(&other_ak), message);

    let binding = sign_ak_binding(&device, &ak).unwrap();
    assert_eq!(verify_ak_binding(&certificate, &ak, &binding), Ok(()));
    assert_eq!(verify_ak_binding(&certificate, &other_ak, &binding), Err(AttestError::Binding));
    let stranger = issue(&SoftwareSigner::generate().unwrap());
    assert_eq!(verify_ak_binding(&stranger, &ak, &binding), Err(AttestError::Binding));
    assert_eq!(verify_ak_binding(&certificate, &ak, b"junk"), Err(AttestError::Binding));
    assert_eq!(verify_ak_binding(b"not a certificate", &ak, &binding), Err(AttestError::Malformed));
    // The same key signing the bare SPKI hash (another statement) does not bind.
    let bare = device.sign(&crate::pki::sha256(&ak.spki_der())).unwrap();
    assert_eq!(verify_ak_binding(&certificate, &ak, &bare), Err(AttestError::Binding));
}

#[test]
fn refuses_quotes_that_leave_out_a_pcr_asked_for() {
    // The attack: the verifier asks for PCRs 0 to 10 and 16 (whose values it does not fix yet:
    // the quote becomes the baseline); a quote over PCR 16 alone would shrink that baseline.
    let twelve = vector("swtpm-quote-12pcrs");
    let asked: Vec<u8> = (0..=10).chain([16]).collect();
    assert!(twelve.verify(&PcrPolicy::default().requiring(&asked).unwrap()).is_ok());
    let more = PcrPolicy::default().requiring(&[11]).unwrap();
    assert_eq!(twelve.verify(&more), Err(AttestError::PcrSelection));
    // A policy on the values is checked first, and coverage then still holds with values fixed.
    let both = PcrPolicy::sha256(&[(16, pcr16())]).unwrap().requiring(&asked).unwrap();
    assert!(twelve.verify(&both).is_ok());

    // Quoted in the SHA-1 bank only does not count: the baseline is SHA-256.
    let two = vector("swtpm-quote-2banks");
    assert!(two.verify(&PcrPolicy::default().requiring(&[16]).unwrap()).is_ok());
    assert_eq!(two.verify(&PcrPolicy::default().requiring(&[0, 16]).unwrap()), Err(AttestError::PcrSelection));

    assert_eq!(PcrPolicy::default().requiring(&[32]), Err(AttestError::Malformed));
    assert!(!PcrPolicy::default().requiring(&[7]).unwrap().is_empty());
    assert_eq!(PcrPolicy::default().requiring(&[7, 0, 7]).unwrap().required().collect::<Vec<_>>(), [0, 7]);
}

#[test]
fn policies_refuse_bad_indexes() {
    assert_eq!(PcrPolicy::sha256(&[(32, [0; 32])]), Err(AttestError::Malformed));
    assert_eq!(PcrPolicy::sha256(&[(1, [0; 32]), (1, [0; 32])]), Err(AttestError::Malformed));
    let policy = PcrPolicy::sha256(&[(9, [1; 32]), (2, [2; 32])]).unwrap();
    assert_eq!(policy.expected().map(|(i, _)| i).collect::<Vec<_>>(), [2, 9]);
    assert!(!policy.is_empty() && PcrPolicy::default().is_empty());
}
