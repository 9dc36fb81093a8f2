//! TPM signing keys on swtpm: signatures ring verifies, CSRs the CA accepts, a mutual TLS
//! handshake with the client key in the TPM, blobs that survive reopening the TPM and are
//! refused by another TPM, and nothing left loaded in the TPM afterwards.
#![cfg(feature = "tpm")]

mod peers;
mod tls_common;
mod tpm_common;

use std::sync::Arc;
use std::time::Instant;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use tls_common::{pump, server_settings, Pki, TENANT};
use tpm_common::Swtpm;
use ztmesh_core::pki::{build_csr, CertSigner, CertificateRequest, DeviceCertRequest, PeerPolicy};
use ztmesh_core::tls::{ClientSettings, PqPolicy, TlsClientContext, TlsServerContext};
use ztmesh_core::tpm::{KeyBlob, KeyKind, Tpm, TpmError};
use ztmesh_core::ErrorCode;

fn open(swtpm: &Swtpm) -> Arc<Tpm> {
    Arc::new(Tpm::open(Some(&swtpm.tcti())).unwrap())
}

fn verifies(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key).verify(message, signature).is_ok()
}

#[test]
fn signs_what_ring_verifies_and_survives_a_reopen() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = open(&swtpm);
    let info = tpm.info().unwrap();
    assert_eq!((info.manufacturer.as_str(), info.family.as_str()), ("IBM", "2.0"), "{info:?}");
    assert!(info.usable, "{info:?}");

    let blob = tpm.create_signing_key().unwrap();
    assert_eq!(blob.kind(), KeyKind::Signing);
    let signer = tpm.load_signer(&blob).unwrap();
    assert_eq!(signer.public_key(), blob.public_key());
    for message in [&b""[..], b"hello", &[7u8; 10_000]] {
        let signature = signer.sign(message).unwrap();
        assert!(verifies(signer.public_key(), message, &signature));
        assert!(!verifies(signer.public_key(), b"other", &signature));
    }
    // Two keys are two keys.
    let other = tpm.load_signer(&tpm.create_signing_key().unwrap()).unwrap();
    assert_ne!(other.public_key(), signer.public_key());

    // The blob, through its bytes, after the TPM connection is closed and opened again.
    let bytes = blob.to_bytes().unwrap();
    drop((signer, other, tpm));
    let tpm = open(&swtpm);
    let again = tpm.load_signer(&KeyBlob::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(again.public_key(), blob.public_key());
    let signature = again.sign(b"after reopening").unwrap();
    assert!(verifies(blob.public_key(), b"after reopening", &signature));

    // Throughput of the chosen strategy (ContextLoad, Sign, Flush per signature).
    let started = Instant::now();
    let count = 50;
    for i in 0..count {
        again.sign(&[i as u8]).unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!("swtpm: {count} signatures in {elapsed:?}, {:.0} signatures/s", f64::from(count) / elapsed.as_secs_f64());
    // Nothing stays loaded between signatures.
    assert_eq!(swtpm.transient_handles(), "");

    // A reboot invalidates the signer's saved context: it loads the key from its blob again.
    swtpm.reset();
    let signature = again.sign(b"after a reset").unwrap();
    assert!(verifies(blob.public_key(), b"after a reset", &signature));
    assert!(verifies(blob.public_key(), b"again", &again.sign(b"again").unwrap()));

    drop((again, tpm));
    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn signers_fit_the_pki_and_mutual_tls() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = open(&swtpm);
    let signer = tpm.load_signer(&tpm.create_signing_key().unwrap()).unwrap();

    // The CSR verifies on the CA and the certificate carries the TPM key.
    let csr = build_csr(&signer, "tablet-1", TENANT).unwrap();
    let request = CertificateRequest::from_der(&csr.der).unwrap();
    assert_eq!(request.public_key(), signer.public_key());
    assert_eq!(request.requested_common_name(), Some("tablet-1"));
    let pki = Pki::new("tpm");
    let issued = pki.site.issue(&request, &DeviceCertRequest::new("tablet-1", TENANT)).unwrap();

    // Mutual TLS: a software server, a client whose key never leaves the TPM.
    let server_device = pki.device("gateway-1", TENANT);
    let server = TlsServerContext::new(server_settings(&pki, &server_device, PqPolicy::Prefer)).unwrap();
    let chain = vec![issued.der.clone(), pki.site.certificate_der().to_vec()];
    let mut settings = ClientSettings::new(chain, Box::new(signer), pki.trust.clone());
    settings.policy = PeerPolicy { expected_tenant: Some(TENANT.into()), ..PeerPolicy::default() };
    let client = TlsClientContext::new(settings).unwrap();
    for _ in 0..2 {
        let mut client_session = client.connect_to("gateway-1").unwrap();
        let mut server_session = server.accept().unwrap();
        let outcome = pump(&mut client_session, &mut server_session);
        assert!(outcome.client.is_ok() && outcome.server.is_ok(), "{outcome:?}");
        let peer = server_session.peer().unwrap();
        assert_eq!((peer.device_id.as_str(), peer.serial.as_str()), ("tablet-1", issued.serial.as_str()));
        client_session.write_plaintext(b"from the TPM").unwrap();
        server_session.read_tls(&client_session.take_outgoing()).unwrap();
        let mut received = Vec::new();
        server_session.read_plaintext(&mut received);
        assert_eq!(received, b"from the TPM");
    }

    drop((client, tpm));
    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn refuses_blobs_it_should_not_use() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = open(&swtpm);
    let blob = tpm.create_signing_key().unwrap();
    let bytes = blob.to_bytes().unwrap();

    // An attestation key is not a signing key.
    let ak = tpm.create_attestation_key().unwrap();
    assert_eq!(ak.kind(), KeyKind::Attestation);
    assert_eq!(tpm.load_signer(&ak).unwrap_err(), TpmError::Blob);
    let mut relabelled = ak.to_bytes().unwrap();
    relabelled[9] = 1;
    assert_eq!(KeyBlob::from_bytes(&relabelled).unwrap_err(), TpmError::Blob);

    // Truncated, extended, another version, another magic.
    for len in [0, 8, 9, 10, 14, 16, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(KeyBlob::from_bytes(&bytes[..len]).unwrap_err(), TpmError::Blob, "{len}");
    }
    assert_eq!(KeyBlob::from_bytes(&[&bytes[..], &[0]].concat()).unwrap_err(), TpmError::Blob);
    for (at, value) in [(0, b'X'), (8, 2), (13, 1)] {
        let mut edited = bytes.clone();
        edited[at] = value;
        assert_eq!(KeyBlob::from_bytes(&edited).unwrap_err(), TpmError::Blob, "{at}");
    }

    // An altered private area parses, but the TPM refuses it.
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let altered = KeyBlob::from_bytes(&altered).unwrap();
    let err = tpm.load_signer(&altered).unwrap_err();
    assert_eq!((err, err.code()), (TpmError::KeyRejected, "ERR_TPM_KEY"));

    // Another TPM (another storage seed) refuses the blob.
    let elsewhere = Swtpm::start().unwrap();
    let other_tpm = open(&elsewhere);
    assert_eq!(other_tpm.load_signer(&blob).unwrap_err(), TpmError::KeyRejected);
    drop(other_tpm);
    assert_eq!(elsewhere.transient_handles(), "");

    drop(tpm);
    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn blobs_load_with_tpm2_tools_under_the_same_primary() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = open(&swtpm);
    let blob = tpm.create_signing_key().unwrap();
    drop(tpm);

    // The blob's TPM2B_PUBLIC and TPM2B_PRIVATE, as tpm2_load reads them: they load only under
    // the very primary key ztmesh derives, so this shows the templates are the same.
    let bytes = blob.to_bytes().unwrap();
    let public_len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    std::fs::write(swtpm.path("key.pub"), &bytes[14..16 + public_len]).unwrap();
    std::fs::write(swtpm.path("key.priv"), &bytes[16 + public_len..]).unwrap();
    std::fs::write(swtpm.path("message"), b"signed by tpm2_sign").unwrap();
    swtpm.tool_ok("tpm2_createprimary", &["-C", "o", "-G", "ecc256:aes128cfb", "-c", "primary.ctx"]);
    swtpm.tool_ok("tpm2_load", &["-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx"]);
    swtpm.flush_transient();
    swtpm.tool_ok("tpm2_sign", &["-c", "key.ctx", "-g", "sha256", "-f", "plain", "-o", "signature", "message"]);
    swtpm.flush_transient();
    let signature = std::fs::read(swtpm.path("signature")).unwrap();
    assert!(verifies(blob.public_key(), b"signed by tpm2_sign", &signature));
    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn says_when_no_tpm_answers() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tcti = swtpm.tcti();
    drop(swtpm);
    let err = Tpm::open(Some(&tcti)).unwrap_err();
    assert_eq!((err, err.code()), (TpmError::Unavailable, "ERR_TPM_UNAVAILABLE"));
    assert_eq!(Tpm::open(Some("no-such-tcti")).unwrap_err(), TpmError::Tcti);
}
