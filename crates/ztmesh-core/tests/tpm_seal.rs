//! Secrets sealed to PCR values on swtpm: they come back while the PCRs hold their values,
//! through the blob's bytes and a reopened TPM, and not after one of the PCRs is extended.
#![cfg(feature = "tpm")]

mod peers;
mod tpm_common;

use tpm_common::{RecordingProxy, Swtpm};
use ztmesh_core::tpm::{KeyBlob, SealedBlob, Tpm, TpmError, MAX_SEALED_LEN};
use ztmesh_core::ErrorCode;

#[test]
fn unseals_until_a_sealed_pcr_changes() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    tpm.pcr_extend(16, b"boot measurement").unwrap();
    let secret = b"disk key 0123456789abcdef0123456789abcdef";
    let sealed = tpm.seal(secret, &[23, 16]).unwrap();
    assert_eq!(sealed.pcrs(), [16, 23]);
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), secret);
    let largest = tpm.seal(&[0xa5; MAX_SEALED_LEN], &[0]).unwrap();
    assert_eq!(tpm.unseal(&largest).unwrap().as_slice(), [0xa5; MAX_SEALED_LEN]);

    // Through the blob's bytes and a new connection.
    let bytes = sealed.to_bytes().unwrap();
    drop(tpm);
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    let sealed = SealedBlob::from_bytes(&bytes).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), secret);

    // A PCR outside the policy may change; one inside may not.
    tpm.pcr_extend(15, b"unrelated").unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), secret);
    tpm.pcr_extend(23, b"tampered").unwrap();
    let err = tpm.unseal(&sealed).unwrap_err();
    assert_eq!((err, err.code()), (TpmError::Policy, "ERR_TPM_POLICY"));
    assert_eq!(tpm.unseal(&sealed).unwrap_err(), TpmError::Policy);
    // Sealing again binds to the new values.
    let resealed = tpm.seal(secret, &[16, 23]).unwrap();
    assert_eq!(tpm.unseal(&resealed).unwrap().as_slice(), secret);

    drop(tpm);
    assert_eq!(swtpm.transient_handles(), "");
    let sessions = swtpm.tool_ok("tpm2_getcap", &["handles-loaded-session"]);
    assert_eq!(String::from_utf8_lossy(&sessions.stdout).trim(), "");
}

#[test]
fn refuses_bad_arguments_and_blobs() {
    let Some(swtpm) = Swtpm::start() else { return };
    let tpm = Tpm::open(Some(&swtpm.tcti())).unwrap();
    for (secret, pcrs) in [
        (&b""[..], &[16u8][..]),
        (&[1; MAX_SEALED_LEN + 1][..], &[16][..]),
        (b"s", &[][..]),
        (b"s", &[24][..]),
        (b"s", &[16, 16][..]),
    ] {
        let err = tpm.seal(secret, pcrs).unwrap_err();
        assert_eq!((err, err.code()), (TpmError::Argument, "ERR_TPM_ARGUMENT"), "{pcrs:?}");
    }
    for pcr in [24, 255] {
        assert_eq!(tpm.pcr_extend(pcr, b"x").unwrap_err(), TpmError::Argument);
    }

    let sealed = tpm.seal(b"secret", &[16]).unwrap();
    let bytes = sealed.to_bytes().unwrap();
    // A sealed blob is not a key, nor the reverse.
    assert_eq!(KeyBlob::from_bytes(&bytes).unwrap_err(), TpmError::Blob);
    let key = tpm.create_signing_key().unwrap().to_bytes().unwrap();
    assert_eq!(SealedBlob::from_bytes(&key).unwrap_err(), TpmError::Blob);
    // No PCR, a PCR above 23, truncated.
    for pcrs in [[0u8, 0, 0, 0], [1, 0, 0, 0]] {
        let mut edited = bytes.clone();
        edited[10..14].copy_from_slice(&pcrs);
        assert_eq!(SealedBlob::from_bytes(&edited).unwrap_err(), TpmError::Blob, "{pcrs:?}");
    }
    assert_eq!(SealedBlob::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err(), TpmError::Blob);
    // Another PCR list than the one sealed to: the policy no longer matches.
    let mut other_pcrs = bytes.clone();
    other_pcrs[10..14].copy_from_slice(&(1u32 << 17).to_be_bytes());
    assert_eq!(tpm.unseal(&SealedBlob::from_bytes(&other_pcrs).unwrap()).unwrap_err(), TpmError::Policy);
    // An altered private area.
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert_eq!(tpm.unseal(&SealedBlob::from_bytes(&altered).unwrap()).unwrap_err(), TpmError::KeyRejected);

    drop(tpm);
    assert_eq!(swtpm.transient_handles(), "");
}

#[test]
fn sealed_secrets_never_cross_the_bus_in_clear() {
    let Some(swtpm) = Swtpm::start() else { return };
    let proxy = RecordingProxy::new(&swtpm);
    let tpm = Tpm::open(Some(&proxy.tcti())).unwrap();
    let secret = b"this secret must only ever travel encrypted";
    let sealed = tpm.seal(secret, &[16]).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), secret);
    // The proxy does see what is not encrypted: the digest a PCR is extended with.
    tpm.pcr_extend(23, b"visible").unwrap();
    drop(tpm);
    let seen = proxy.seen();
    let digest = ring::digest::digest(&ring::digest::SHA256, b"visible");
    assert!(seen.windows(32).any(|w| w == digest.as_ref()), "the proxy records the traffic");
    assert!(!seen.windows(16).any(|w| secret.windows(16).any(|s| s == w)), "the secret crossed the bus in clear");
    drop(proxy);
    assert_eq!(swtpm.transient_handles(), "");
}
