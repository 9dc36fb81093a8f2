//! Endorsement keys on a swtpm manufactured with EK certificates: the EK certificate checked
//! against its local CA, credential activation against `make_credential` done in software, the
//! AK's and the device key's public areas checked against their names, and certifications.
#![cfg(feature = "tpm")]

mod peers;
mod tpm_common;

use tpm_common::Swtpm;
use ztmesh_core::attest::{
    make_credential, verify_certify, verify_ek_certificate, AttestError, TpmPublic, CREDENTIAL_SECRET_LEN,
};
use ztmesh_core::pki::{pem, CaParams, CertificateAuthority};
use ztmesh_core::tpm::{Tpm, TpmError};

const NONCE: [u8; 32] = *b"verifier nonce, 32 bytes long..!";

fn der(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    pem::decode_one(&text, "CERTIFICATE").unwrap()
}

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

#[test]
fn the_ek_certificate_chains_to_its_manufacturer_and_activates_a_credential_for_the_ak_only() {
    let Some(swtpm) = Swtpm::start_with_ek() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    let root = der(&swtpm.ek_ca_dir().join("swtpm-localca-rootca-cert.pem"));
    let issuer = der(&swtpm.ek_ca_dir().join("issuercert.pem"));

    // The EK certificate: trusted through its issuing CA up to the root, not otherwise.
    let ek_certificate = tpm.ek_certificate().unwrap();
    let ek_spki =
        verify_ek_certificate(&ek_certificate, std::slice::from_ref(&root), std::slice::from_ref(&issuer), now())
            .unwrap();
    assert_eq!(verify_ek_certificate(&ek_certificate, std::slice::from_ref(&issuer), &[], now()), Ok(ek_spki.clone()));
    assert_eq!(
        verify_ek_certificate(&ek_certificate, std::slice::from_ref(&root), &[], now()),
        Err(AttestError::EkCertificate)
    );
    let stranger = CertificateAuthority::create_root(&CaParams::root("Not a TPM maker", "x")).unwrap();
    assert_eq!(
        verify_ek_certificate(
            &ek_certificate,
            std::slice::from_ref(&stranger.certificate_der),
            std::slice::from_ref(&issuer),
            now()
        ),
        Err(AttestError::EkCertificate)
    );
    assert_eq!(
        verify_ek_certificate(&ek_certificate, std::slice::from_ref(&root), std::slice::from_ref(&issuer), 0),
        Err(AttestError::EkCertificate),
        "not valid in 1970"
    );

    // The AK's public area: restricted, fixed to the TPM, a signing key, with the AK's point.
    let ak = tpm.create_attestation_key().unwrap();
    let key = tpm.create_signing_key().unwrap();
    let ak_public = TpmPublic::parse(&Tpm::public_area(&ak).unwrap()).unwrap();
    let key_public = TpmPublic::parse(&Tpm::public_area(&key).unwrap()).unwrap();
    let ak_key = ak.ak_public_key().unwrap();
    assert_eq!(ak_public.check_attestation_key(&ak_key), Ok(()));
    assert_eq!(key_public.check_attestation_key(&ak_key), Err(AttestError::KeyAttributes), "not restricted");
    assert_eq!(key_public.check_device_key(key.public_key()), Ok(()));
    assert_eq!(ak_public.check_device_key(key.public_key()), Err(AttestError::KeyAttributes), "another point");

    // Credential activation: the TPM gives the secret back for the AK's name, and only for it.
    let secret = [7u8; CREDENTIAL_SECRET_LEN];
    let made = make_credential(&ek_spki, &ak_public.name(), &secret).unwrap();
    let activated = tpm.activate_credential(&ak, &made.credential_blob, &made.encrypted_secret).unwrap();
    assert_eq!(&activated[..], &secret[..]);
    let for_the_key = make_credential(&ek_spki, &key_public.name(), &secret).unwrap();
    assert!(matches!(
        tpm.activate_credential(&ak, &for_the_key.credential_blob, &for_the_key.encrypted_secret),
        Err(TpmError::Command(_) | TpmError::KeyRejected)
    ));
    // Encrypted to another RSA key (the issuing CA's, no EK of this TPM): refused.
    let issuer_spki = verify_ek_certificate(&issuer, std::slice::from_ref(&root), &[], now()).unwrap();
    let other = make_credential(&issuer_spki, &ak_public.name(), &secret).unwrap();
    assert!(tpm.activate_credential(&ak, &other.credential_blob, &other.encrypted_secret).is_err());

    // Certification: the AK certifies the device key over the verifier's nonce.
    let (attest, signature) = tpm.certify(&ak, &key, &NONCE).unwrap();
    assert_eq!(verify_certify(&ak_key, &attest, &signature, &NONCE, &key_public), Ok(()));
    assert_eq!(verify_certify(&ak_key, &attest, &signature, &NONCE, &ak_public), Err(AttestError::Certify));
    let mut other_nonce = NONCE;
    other_nonce[0] ^= 1;
    assert_eq!(verify_certify(&ak_key, &attest, &signature, &other_nonce, &key_public), Err(AttestError::Nonce));
    let mut forged = attest.clone();
    *forged.last_mut().unwrap() ^= 1;
    assert_eq!(verify_certify(&ak_key, &forged, &signature, &NONCE, &key_public), Err(AttestError::Signature));
    let (quote_attest, quote_signature) = {
        let quote = tpm.quote(&ak, &NONCE, &[7]).unwrap();
        (quote.attest, quote.signature)
    };
    assert_eq!(
        verify_certify(&ak_key, &quote_attest, &quote_signature, &NONCE, &key_public),
        Err(AttestError::Malformed),
        "a quote is not a certification"
    );

    assert_eq!(swtpm.transient_handles(), "", "no transient handle is left behind");
}

#[test]
fn public_areas_are_parsed_strictly() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    let area = Tpm::public_area(&tpm.create_attestation_key().unwrap()).unwrap();
    let parsed = TpmPublic::parse(&area).unwrap();
    assert_eq!(parsed.bytes(), &area[..]);
    assert_eq!(parsed.name().len(), 34);
    assert_eq!(parsed.name()[..2], [0x00, 0x0b]);
    for len in 0..area.len() {
        assert_eq!(TpmPublic::parse(&area[..len]), Err(AttestError::Malformed), "{len}");
    }
    let mut long = area.clone();
    long.push(0);
    assert_eq!(TpmPublic::parse(&long), Err(AttestError::Malformed));
    let mut sha1 = area.clone();
    sha1[2..4].copy_from_slice(&[0x00, 0x04]);
    assert_eq!(TpmPublic::parse(&sha1), Err(AttestError::Malformed), "a SHA-1 name");
    // Clearing `restricted` changes the name, and the AK check refuses it.
    let mut unrestricted = area.clone();
    unrestricted[5] &= !0x01;
    let loose = TpmPublic::parse(&unrestricted).unwrap();
    assert_ne!(loose.name(), parsed.name());
}
