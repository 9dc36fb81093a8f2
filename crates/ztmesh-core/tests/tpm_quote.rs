//! Quotes on swtpm: ours verified by `attest::verify_quote` and by `tpm2_checkquote`, quotes of
//! tpm2-tools verified by `verify_quote`, refusals with the right codes, and AK bindings.
#![cfg(feature = "tpm")]

mod peers;
mod tpm_common;

use std::fs;
use std::sync::Arc;
use std::time::Instant;

use tpm_common::Swtpm;
use ztmesh_core::attest::{
    sign_ak_binding, verify_ak_binding, verify_quote, AkPublicKey, AttestError, PcrBank, PcrPolicy, PcrValues,
};
use ztmesh_core::pki::{build_csr, CaParams, CertificateAuthority, CertificateRequest, DeviceCertRequest};
use ztmesh_core::tpm::{KeyKind, Tpm, TpmError};
use ztmesh_core::ErrorCode;

const NONCE: [u8; 32] = *b"verifier nonce, 32 bytes long..!";

/// The SHA-256 policy of every PCR in `values`.
fn policy_of(values: &PcrValues) -> PcrPolicy {
    let expected: Vec<(u8, [u8; 32])> =
        values.values().iter().map(|v| (v.index, v.value.as_slice().try_into().unwrap())).collect();
    PcrPolicy::sha256(&expected).unwrap()
}

#[test]
fn quotes_verify_here_and_with_tpm2_checkquote() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    tpm.pcr_extend(16, b"firmware").unwrap();
    let ak = tpm.create_attestation_key().unwrap();
    assert_eq!(ak.kind(), KeyKind::Attestation);
    let pcrs = [0, 7, 16, 23];
    let golden = tpm.read_pcrs(&pcrs).unwrap();
    let quote = tpm.quote(&ak, &NONCE, &pcrs).unwrap();

    let ak_public = AkPublicKey::from_pem(&quote.ak_public_pem).unwrap();
    assert_eq!(ak_public.point(), ak.public_key());
    let policy = policy_of(&golden);
    let info = verify_quote(&ak_public, &quote.attest, &quote.signature, &quote.pcr_values, &NONCE, &policy).unwrap();
    let quoted: Vec<(PcrBank, u8)> = info.pcrs.iter().map(|p| (p.bank, p.index)).collect();
    assert_eq!(quoted, pcrs.map(|i| (PcrBank::Sha256, i)));
    assert_eq!(info.pcrs, golden.values());
    assert!(info.clock.safe);

    // Refusals, with their codes.
    let check = |nonce: &[u8], policy: &PcrPolicy| {
        verify_quote(&ak_public, &quote.attest, &quote.signature, &quote.pcr_values, nonce, policy).map(|_| ())
    };
    let mut other_nonce = NONCE;
    other_nonce[0] ^= 1;
    let err = check(&other_nonce, &policy).unwrap_err();
    assert_eq!((err, err.code()), (AttestError::Nonce, "ERR_ATTEST_NONCE"));
    let wrong = PcrPolicy::sha256(&[(16, [0; 32])]).unwrap();
    let err = check(&NONCE, &wrong).unwrap_err();
    assert_eq!((err, err.code()), (AttestError::PcrMismatch, "ERR_ATTEST_PCR_MISMATCH"));
    let mut forged = quote.attest.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let err = verify_quote(&ak_public, &forged, &quote.signature, &quote.pcr_values, &NONCE, &policy).unwrap_err();
    assert_eq!((err, err.code()), (AttestError::Signature, "ERR_ATTEST_SIGNATURE"));

    // After a measurement the device's next quote no longer meets the golden policy.
    tpm.pcr_extend(16, b"rootkit").unwrap();
    let later = tpm.quote(&ak, &NONCE, &pcrs).unwrap();
    let verdict = verify_quote(&ak_public, &later.attest, &later.signature, &later.pcr_values, &NONCE, &policy);
    assert_eq!(verdict.unwrap_err(), AttestError::PcrMismatch);
    // And the old PCR values cannot be passed off with the new quote.
    let verdict = verify_quote(&ak_public, &later.attest, &later.signature, &quote.pcr_values, &NONCE, &policy);
    assert_eq!(verdict.unwrap_err(), AttestError::PcrValues);

    // Latency of one quote (primary, load AK, PCR read, quote, flushes).
    let started = Instant::now();
    for _ in 0..10 {
        tpm.quote(&ak, &NONCE, &pcrs).unwrap();
    }
    eprintln!("swtpm: one quote of {} PCRs in {:?}", pcrs.len(), started.elapsed() / 10);

    // Bad arguments.
    assert_eq!(tpm.quote(&ak, &[0; 65], &pcrs).unwrap_err(), TpmError::Argument);
    assert_eq!(tpm.quote(&ak, &NONCE, &[]).unwrap_err(), TpmError::Argument);
    let signing = tpm.create_signing_key().unwrap();
    assert_eq!(tpm.quote(&signing, &NONCE, &pcrs).unwrap_err(), TpmError::Blob);
    drop(tpm);

    // tpm2_checkquote agrees, and disagrees on the wrong nonce.
    fs::write(swtpm.path("ak.pem"), &quote.ak_public_pem).unwrap();
    fs::write(swtpm.path("quote.msg"), &quote.attest).unwrap();
    fs::write(swtpm.path("quote.sig"), &quote.signature).unwrap();
    fs::write(swtpm.path("pcrs.bin"), &quote.pcr_values).unwrap();
    let checkquote = |nonce: &[u8]| {
        let nonce = hex::encode(nonce);
        let args =
            ["-u", "ak.pem", "-m", "quote.msg", "-s", "quote.sig", "-f", "pcrs.bin", "-g", "sha256", "-q", &nonce];
        swtpm.tool("tpm2_checkquote", &args)
    };
    let output = checkquote(&NONCE);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!checkquote(&other_nonce).status.success());

    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn quotes_of_tpm2_tools_verify_here() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    tpm.pcr_extend(16, b"kernel").unwrap();
    tpm.pcr_extend(10, b"ima").unwrap();
    let golden = tpm.read_pcrs(&[10, 16]).unwrap();
    drop(tpm);

    // An endorsement key and an AK under it, as `tpm2_createak` makes them; without a resource
    // manager the tools leave what they load behind, so flush after each.
    swtpm.tool_ok("tpm2_createek", &["-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub"]);
    swtpm.flush_transient();
    let createak =
        ["-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u", "ak.pem", "-f", "pem"];
    swtpm.tool_ok("tpm2_createak", &createak);
    swtpm.flush_transient();
    let nonce = hex::encode(NONCE);
    let quote = [
        "-c",
        "ak.ctx",
        "-l",
        "sha256:10,16",
        "-q",
        &nonce,
        "-g",
        "sha256",
        "-m",
        "quote.msg",
        "-s",
        "quote.sig",
        "-o",
        "pcrs.bin",
    ];
    swtpm.tool_ok("tpm2_quote", &quote);
    swtpm.flush_transient();

    let read = |name: &str| fs::read(swtpm.path(name)).unwrap();
    let ak = AkPublicKey::from_pem(&String::from_utf8(read("ak.pem")).unwrap()).unwrap();
    let (msg, sig, pcrs) = (read("quote.msg"), read("quote.sig"), read("pcrs.bin"));
    let policy = policy_of(&golden);
    let info = verify_quote(&ak, &msg, &sig, &pcrs, &NONCE, &policy).unwrap();
    assert_eq!(info.pcrs, golden.values());
    assert_eq!(PcrValues::from_tpm2_tools(&pcrs).unwrap(), golden);
    assert_eq!(golden.to_tpm2_tools(), pcrs, "our PCR file is byte for byte the one tpm2-tools writes");
    assert_eq!(verify_quote(&ak, &msg, &sig, &pcrs, &[0; 32], &policy).unwrap_err(), AttestError::Nonce);
    let wrong = PcrPolicy::sha256(&[(10, [0; 32])]).unwrap();
    assert_eq!(verify_quote(&ak, &msg, &sig, &pcrs, &NONCE, &wrong).unwrap_err(), AttestError::PcrMismatch);

    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn devices_bind_their_attestation_key() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Arc::new(Tpm::open(Some(&swtpm.tcti())).unwrap());
    let device = tpm.load_signer(&tpm.create_signing_key().unwrap()).unwrap();
    let root = CertificateAuthority::create_root(&CaParams::root("root", "o")).unwrap().authority().unwrap();
    let site = root.create_site_ca(&CaParams::site("site", "o")).unwrap().authority().unwrap();
    let csr = CertificateRequest::from_der(&build_csr(&device, "tablet-1", "t").unwrap().der).unwrap();
    let certificate = site.issue(&csr, &DeviceCertRequest::new("tablet-1", "t")).unwrap().der;

    let ak = tpm.create_attestation_key().unwrap().ak_public_key().unwrap();
    let binding = sign_ak_binding(&device, &ak).unwrap();
    assert_eq!(verify_ak_binding(&certificate, &ak, &binding), Ok(()));
    let other_ak = tpm.create_attestation_key().unwrap().ak_public_key().unwrap();
    let err = verify_ak_binding(&certificate, &other_ak, &binding).unwrap_err();
    assert_eq!((err, err.code()), (AttestError::Binding, "ERR_ATTEST_BINDING"));

    drop((device, tpm));
    assert_eq!(swtpm.transient_handles(), "");
}
