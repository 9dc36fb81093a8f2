//! Signed objects whose signature is made outside the core: a browser's non-extractable
//! WebCrypto key, which no [`CertSigner`] can reach.
//!
//! The core still owns every byte. [`Unsigned::prepare`] checks the label, chain and body
//! exactly as [`SignedObject::sign`] does and yields the exact bytes to sign
//! ([`Unsigned::to_be_signed`]: `label ‖ 0x00 ‖ SHA-256(leaf) ‖ body`). The signature comes back
//! as WebCrypto makes it (IEEE P1363 `r ‖ s`, 64 bytes); [`Unsigned::assemble`] converts it to
//! strict low-s DER, verifies it under the leaf's key, and only then returns the object. A
//! signature that does not verify never leaves the core as an object.
//!
//! Who prepares cannot sign: preparing needs only the public chain, and the object verifies only
//! under the leaf's key. A preparer who changes the body before handing out the bytes gets a
//! signature over *its* bytes, which is what a compromised page could ask for anyway; see
//! `docs/ARCHITECTURE.md` (the staff page) for why that is sound for the gateway that serves it.

use super::{check_fields, low_s, signed_message, SignedObject, WireError};
use crate::pki::cert::ParsedCert;
use crate::pki::signer::{ecdsa_p256_signature_to_der, verify_p256};
use crate::pki::{sha256, VerifyError};
use crate::wire::Label;

/// A signed object waiting for its signature: label, chain and body are fixed.
#[derive(Debug, Clone)]
pub struct Unsigned {
    label: Label,
    chain: Vec<Vec<u8>>,
    leaf_sha256: [u8; 32],
    leaf_key: Vec<u8>,
    body: Vec<u8>,
}

impl Unsigned {
    /// Prepares `body` under `label` for the leaf of `chain` (DER, leaf first, at most 3). The
    /// checks of [`SignedObject::sign`]: [`WireError::Label`] unless `label` is a signed-object
    /// label, [`WireError::TooLarge`] for a field out of range, [`WireError::Peer`] with
    /// [`VerifyError::Malformed`] for a leaf that does not parse or has no P-256 key.
    pub fn prepare(label: Label, chain: &[&[u8]], body: &[u8]) -> Result<Self, WireError> {
        let leaf = check_fields(label, chain, body)?;
        let parsed = ParsedCert::from_der(leaf).map_err(|()| WireError::Peer(VerifyError::Malformed))?;
        let leaf_key = parsed.p256_point.ok_or(WireError::Peer(VerifyError::Malformed))?;
        Ok(Self {
            label,
            chain: chain.iter().map(|c| c.to_vec()).collect(),
            leaf_sha256: sha256(leaf),
            leaf_key: leaf_key.to_vec(),
            body: body.to_vec(),
        })
    }

    /// The exact bytes the external key signs (ECDSA P-256 with SHA-256 over them, as
    /// WebCrypto's `sign({name: 'ECDSA', hash: 'SHA-256'}, key, bytes)` does).
    pub fn to_be_signed(&self) -> Vec<u8> {
        signed_message(self.label, &self.leaf_sha256, &self.body)
    }

    /// The body that will be signed.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Completes the object with `signature`, IEEE P1363 `r ‖ s` (64 bytes) or DER: normalised
    /// to low-s DER, then verified under the leaf's key. [`WireError::Signature`] when it is not
    /// a well-formed signature or does not verify.
    pub fn assemble(self, signature: &[u8]) -> Result<SignedObject, WireError> {
        let der = if signature.len() == 64 {
            ecdsa_p256_signature_to_der(signature).map_err(|_| WireError::Signature)?
        } else {
            signature.to_vec()
        };
        let signature = low_s(&der).ok_or(WireError::Signature)?;
        if !verify_p256(&self.leaf_key, &self.to_be_signed(), &signature) {
            return Err(WireError::Signature);
        }
        Ok(SignedObject {
            label: self.label.as_str().to_owned(),
            chain: self.chain,
            leaf_sha256: self.leaf_sha256,
            body: self.body,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::pki::testutil::{device_csr, Pki};
    use crate::pki::{CertSigner, DeviceCertRequest, PeerPolicy, RevocationSet, TrustStore};
    use crate::wire::labels::{OFFER, ROTATION, TEST_OBJECT, TEST_OBJECT_OTHER};
    use crate::wire::signed::MAX_BODY_LEN;

    fn fixture() -> (Pki, crate::pki::SoftwareSigner, Vec<u8>) {
        let pki = Pki::new();
        let (signer, csr) = device_csr("tablet-1", "t");
        let leaf = pki.site.issue(&csr, &DeviceCertRequest::new("tablet-1", "t")).unwrap().der;
        (pki, signer, leaf)
    }

    /// DER → P1363, as WebCrypto would return it.
    fn p1363(der: &[u8]) -> Vec<u8> {
        let (r, s) = super::super::signature_scalars(der).unwrap();
        [r, s].concat()
    }

    #[test]
    fn an_externally_signed_object_equals_a_core_signed_one_and_verifies() {
        let (pki, signer, leaf) = fixture();
        let chain: [&[u8]; 2] = [&leaf, pki.site.certificate_der()];
        let prepared = Unsigned::prepare(TEST_OBJECT, &chain, b"hello").unwrap();
        let signature = signer.sign(&prepared.to_be_signed()).unwrap();
        let object = prepared.clone().assemble(&p1363(&signature)).unwrap();
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        let verified = super::super::verify(
            &object.encode(),
            TEST_OBJECT,
            &trust,
            &RevocationSet::new(),
            &PeerPolicy::default(),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(verified.body, b"hello");
        assert_eq!(verified.peer.device_id, "tablet-1");
        // DER works too, and both forms give the same low-s object.
        assert_eq!(prepared.assemble(&signature).unwrap().encode(), object.encode());
    }

    #[test]
    fn a_wrong_or_garbage_signature_is_refused() {
        let (pki, signer, leaf) = fixture();
        let chain: [&[u8]; 1] = [&leaf];
        let prepared = Unsigned::prepare(TEST_OBJECT, &chain, b"hello").unwrap();
        // Signed over other bytes (another label): refused.
        let other = Unsigned::prepare(TEST_OBJECT_OTHER, &chain, b"hello").unwrap();
        let signature = p1363(&signer.sign(&other.to_be_signed()).unwrap());
        assert_eq!(prepared.clone().assemble(&signature).unwrap_err(), WireError::Signature);
        // Another key: refused.
        let (stranger, _) = device_csr("tablet-2", "t");
        let signature = p1363(&stranger.sign(&prepared.to_be_signed()).unwrap());
        assert_eq!(prepared.clone().assemble(&signature).unwrap_err(), WireError::Signature);
        for garbage in [&[][..], &[0u8; 64][..], &[0xffu8; 64][..], &[1u8; 63][..], &[0x30, 0x00][..]] {
            assert_eq!(prepared.clone().assemble(garbage).unwrap_err(), WireError::Signature);
        }
        let _ = pki;
    }

    #[test]
    fn prepare_refuses_what_sign_refuses() {
        let (_pki, _signer, leaf) = fixture();
        let chain: [&[u8]; 1] = [&leaf];
        assert_eq!(Unsigned::prepare(ROTATION, &chain, b"x").unwrap_err(), WireError::Label);
        assert_eq!(Unsigned::prepare(OFFER, &[], b"x").unwrap_err(), WireError::TooLarge);
        assert_eq!(
            Unsigned::prepare(TEST_OBJECT, &[b"junk"], b"x").unwrap_err(),
            WireError::Peer(VerifyError::Malformed)
        );
        let big = vec![0u8; MAX_BODY_LEN + 1];
        assert_eq!(Unsigned::prepare(TEST_OBJECT, &chain, &big).unwrap_err(), WireError::TooLarge);
    }
}
