//! Signed objects: a body, signed by a device key under a domain-separation [`Label`], carrying
//! the signer's certificate chain. Offers, gossip messages, bundles, manifests and policy
//! documents are all this one type.
//!
//! Signing works with any [`CertSigner`] (a software key or a TPM key). Verifying is
//! [`verify_peer`] on the embedded chain, then the ECDSA P-256/SHA-256 signature under the
//! leaf's key over
//!
//! ```text
//! Label::message(SHA-256(leaf DER) ‖ body) = label ‖ 0x00 ‖ SHA-256(leaf DER) ‖ body
//! ```
//!
//! The verifier names the label it expects: an object signed for one purpose is never accepted
//! for another. The leaf's hash is under the signature because one key can have several valid
//! certificates (a software key keeps its key when its certificate is renewed; a demoted
//! device's old certificate still carries its roles): the signature names the certificate it
//! was made under, so a relay cannot swap in another certificate of the same key and change who
//! the object says signed it. The hash has a fixed length, so the message stays prefix-free.
//!
//! # Encoding (version 1)
//!
//! Big-endian, fixed-width length prefixes, every field bounded, nothing after the signature:
//!
//! ```text
//! u8   version            = 1
//! u8   label length       1..=64, then the label's bytes (printable ASCII)
//! u8   certificate count  1..=3, then for each (leaf first):
//!        u16 length       1..=4096, then the certificate's DER
//! u32  body length        0..=1 MiB, then the body
//! u8   signature length   8..=72, then the signature: strict DER ECDSA-Sig-Value with a low s
//! ```
//!
//! Fixed-width prefixes and strict DER give every object exactly one encoding. ECDSA
//! signatures are malleable (`(r, s)` and `(r, n − s)` both verify); signing normalises `s` to
//! the lower half and decoding refuses the upper half, so nobody but the signer can produce a
//! second valid encoding of the same signed statement (what deduplication by hash needs). The
//! leaf is under the signature (by its hash); the rest of the chain (the site CA, the root) is
//! not: [`verify_peer`] decides it, and it names no one but the issuers.
//!
//! A binary format rather than CBOR or JSON: the structure is five fields, the core is the only
//! encoder, and a hand-written decoder of this size is easier to make strict (and to fuzz) than
//! a general-purpose one.

use std::fmt;
use std::time::SystemTime;

use super::reader::{Reader, Truncated};
use super::{labels, Label};
use crate::pki::der::{self, tag};
use crate::pki::signer::verify_p256;
#[cfg(doc)]
use crate::pki::verify_peer;
use crate::pki::{
    check_signer_matches, sha256, verify_peer_key, CertSigner, PeerIdentity, PeerPolicy, PkiError, RevocationSet,
    TrustStore, VerifyError,
};
use crate::ErrorCode;

/// The format version this library writes and reads.
pub const VERSION: u8 = 1;

/// The longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// The most certificates in the embedded chain (leaf, site CA, root), as [`verify_peer`] allows.
pub const MAX_CHAIN_LEN: usize = 3;

/// The longest certificate, in bytes. ztmesh certificates are well under 1 KiB.
pub const MAX_CERT_LEN: usize = 4096;

/// The longest body, in bytes: 1 MiB. Larger payloads travel as bundles.
pub const MAX_BODY_LEN: usize = 1 << 20;

/// The shortest and longest DER ECDSA P-256 signature.
const SIGNATURE_LEN: std::ops::RangeInclusive<usize> = 8..=72;

/// The longest encoded object.
pub const MAX_ENCODED_LEN: usize =
    1 + 1 + MAX_LABEL_LEN + 1 + MAX_CHAIN_LEN * (2 + MAX_CERT_LEN) + 4 + MAX_BODY_LEN + 1 + 72;

/// Why a signed object was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The bytes are not a well-formed signed object: truncated, a length out of range, a
    /// label that is not printable ASCII, a signature that is not strict low-s DER, or bytes
    /// after the end.
    Malformed,
    /// The object is of a format version this library does not read.
    UnsupportedVersion(u8),
    /// The object was signed under another label than the one the verifier expects, or the
    /// label is not one signed objects may use.
    Label,
    /// A field is larger than the format allows (when signing).
    TooLarge,
    /// The signature does not verify over the body under the leaf certificate's key.
    Signature,
    /// The signer's key is not the key of the leaf certificate (when signing).
    KeyMismatch,
    /// The signer failed.
    Signer(PkiError),
    /// The embedded chain was refused by [`verify_peer`].
    Peer(VerifyError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed signed object"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported signed object version {v}"),
            Self::Label => f.write_str("signed object made for another purpose (label)"),
            Self::TooLarge => f.write_str("signed object field too large"),
            Self::Signature => f.write_str("signed object signature invalid"),
            Self::KeyMismatch => f.write_str("the signing key does not belong to the leaf certificate"),
            Self::Signer(e) => write!(f, "{e}"),
            Self::Peer(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WireError {}

impl ErrorCode for WireError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "ERR_WIRE_MALFORMED",
            Self::UnsupportedVersion(_) => "ERR_WIRE_VERSION",
            Self::Label => "ERR_WIRE_LABEL",
            Self::TooLarge => "ERR_MESSAGE_SIZE",
            Self::Signature => "ERR_SIGNATURE",
            Self::KeyMismatch => "ERR_KEY_MISMATCH",
            Self::Signer(e) => e.code(),
            Self::Peer(e) => e.code(),
        }
    }
}

impl From<Truncated> for WireError {
    fn from(_: Truncated) -> Self {
        Self::Malformed
    }
}

impl From<VerifyError> for WireError {
    fn from(e: VerifyError) -> Self {
        Self::Peer(e)
    }
}

/// A signed object, decoded but not yet verified: nothing in it is trusted until
/// [`SignedObject::verify`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedObject {
    label: String,
    /// Leaf first; never empty.
    chain: Vec<Vec<u8>>,
    /// SHA-256 of the leaf (the first certificate of `chain`): what the signature covers.
    leaf_sha256: [u8; 32],
    body: Vec<u8>,
    signature: Vec<u8>,
}

/// What a verified signed object says: who signed it, and the body they signed.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The signer, as [`verify_peer`] decided it.
    pub peer: PeerIdentity,
    /// The body.
    pub body: Vec<u8>,
    /// The object's identity for deduplication ([`SignedObject::digest`]).
    pub digest: [u8; 32],
}

impl SignedObject {
    /// Signs `body` under `label` with `signer`, whose certificate chain (DER, leaf first, at
    /// most 3) is embedded. Fails with [`WireError::Label`] unless `label` is one of the
    /// signed-object labels ([`labels::SIGNED_OBJECTS`]: a signed object can never stand in for
    /// a rotation request or a Noise binding), [`WireError::TooLarge`] when a field exceeds the
    /// format, [`WireError::KeyMismatch`] when `signer` is not the leaf's key,
    /// [`WireError::Signer`] when the signer fails or yields a signature that does not verify.
    pub fn sign(label: Label, chain: &[&[u8]], body: &[u8], signer: &dyn CertSigner) -> Result<Self, WireError> {
        let leaf = check_fields(label, chain, body)?;
        check_signer_matches(leaf, signer).map_err(|e| match e {
            PkiError::KeyMismatch => WireError::KeyMismatch,
            PkiError::CertificateMalformed => WireError::Peer(VerifyError::Malformed),
            other => WireError::Signer(other),
        })?;
        let leaf_sha256 = sha256(leaf);
        let message = signed_message(label, &leaf_sha256, body);
        let signature =
            low_s(&signer.sign(&message).map_err(WireError::Signer)?).ok_or(WireError::Signer(PkiError::Signer))?;
        if !verify_p256(signer.public_key(), &message, &signature) {
            return Err(WireError::Signer(PkiError::Signer));
        }
        Ok(Self {
            label: label.as_str().to_owned(),
            chain: chain.iter().map(|c| c.to_vec()).collect(),
            leaf_sha256,
            body: body.to_vec(),
            signature,
        })
    }

    /// Decodes an object, strictly (see the module documentation); verifies nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut input = Reader::new(bytes);
        let version = input.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let label_len = usize::from(input.u8()?);
        let label = input.take(label_len)?;
        if !(1..=MAX_LABEL_LEN).contains(&label_len) || !label.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(WireError::Malformed);
        }
        let count = usize::from(input.u8()?);
        if !(1..=MAX_CHAIN_LEN).contains(&count) {
            return Err(WireError::Malformed);
        }
        let leaf = certificate(&mut input)?;
        let leaf_sha256 = sha256(leaf);
        let mut chain = Vec::with_capacity(count);
        chain.push(leaf.to_vec());
        for _ in 1..count {
            chain.push(certificate(&mut input)?.to_vec());
        }
        let body_len = usize::try_from(input.u32()?).map_err(|_| WireError::Malformed)?;
        if body_len > MAX_BODY_LEN {
            return Err(WireError::Malformed);
        }
        let body = input.take(body_len)?.to_vec();
        let signature_len = usize::from(input.u8()?);
        let signature = input.take(signature_len)?.to_vec();
        if !SIGNATURE_LEN.contains(&signature_len) || !is_strict_low_s(&signature) || !input.is_empty() {
            return Err(WireError::Malformed);
        }
        // Printable ASCII checked above, so this cannot fail.
        let label = String::from_utf8(label.to_vec()).map_err(|_| WireError::Malformed)?;
        Ok(Self { label, chain, leaf_sha256, body, signature })
    }

    /// The encoding: the inverse of [`Self::decode`].
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_chain(true)
    }

    /// The object's identity for deduplication: SHA-256 of what the signature covers and the
    /// signature, `version ‖ label ‖ 0 ‖ SHA-256(leaf) ‖ body ‖ signature` with the label, body
    /// and signature length-prefixed as on the wire (a certificate count of zero stands in for
    /// the chain, then the leaf's hash). The site CA and root are left out: they are not under
    /// the signature, and a relay that re-encodes or drops them does not make a new object. The
    /// leaf is in, by its hash, as it is under the signature: two objects naming two
    /// certificates are two statements. Signatures are low-s and strict DER, so only the signer
    /// can make two valid objects with one body, and they differ here.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.encode_with_chain(false))
    }

    /// The encoding; without the chain, the bytes [`Self::digest`] hashes.
    fn encode_with_chain(&self, with_chain: bool) -> Vec<u8> {
        let chain: &[Vec<u8>] = if with_chain { &self.chain } else { &[] };
        let certs: usize = chain.iter().map(|c| 2 + c.len()).sum();
        let mut out = Vec::with_capacity(40 + self.label.len() + certs + self.body.len() + self.signature.len());
        out.push(VERSION);
        push_prefixed(&mut out, &[as_u8(self.label.len())], self.label.as_bytes());
        out.push(as_u8(chain.len()));
        for cert in chain {
            push_prefixed(&mut out, &u16::try_from(cert.len()).unwrap_or(u16::MAX).to_be_bytes(), cert);
        }
        if !with_chain {
            out.extend_from_slice(&self.leaf_sha256);
        }
        push_prefixed(&mut out, &u32::try_from(self.body.len()).unwrap_or(u32::MAX).to_be_bytes(), &self.body);
        push_prefixed(&mut out, &[as_u8(self.signature.len())], &self.signature);
        out
    }

    /// Verifies the object for the purpose `expected`: the label first (it must be `expected`,
    /// and `expected` a signed-object label, else [`WireError::Label`]), then the chain through
    /// [`verify_peer`] ([`WireError::Peer`]), then the signature under the leaf's key over the
    /// label, the leaf's hash and the body ([`WireError::Signature`]).
    pub fn verify(
        self,
        expected: Label,
        trust: &TrustStore,
        revocations: &RevocationSet,
        policy: &PeerPolicy,
        now: SystemTime,
    ) -> Result<Verified, WireError> {
        self.verify_decided(expected, |chain| verify_peer_key(chain, trust, revocations, policy, now))
    }

    /// [`Self::verify`] with the chain decided by `decide`, which must be [`verify_peer_key`]
    /// or a cache of its verdicts (`pki::snapshot`): for verifiers that keep a trust snapshot,
    /// as the TLS contexts do. The label is checked before `decide` runs, the signature after.
    pub(crate) fn verify_decided(
        self,
        expected: Label,
        decide: impl FnOnce(&[&[u8]]) -> Result<(PeerIdentity, Vec<u8>), VerifyError>,
    ) -> Result<Verified, WireError> {
        if self.label.as_bytes() != expected.as_bytes() || !labels::is_signed_object(expected) {
            return Err(WireError::Label);
        }
        let chain: Vec<&[u8]> = self.chain.iter().map(Vec::as_slice).collect();
        let (peer, leaf_key) = decide(&chain)?;
        if !verify_p256(&leaf_key, &signed_message(expected, &self.leaf_sha256, &self.body), &self.signature) {
            return Err(WireError::Signature);
        }
        let digest = self.digest();
        Ok(Verified { peer, body: self.body, digest })
    }

    /// The label the object claims to be signed under (untrusted until verified).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The embedded chain, DER, leaf first (untrusted until verified).
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The body (untrusted until verified).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The signature, DER.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Decodes and verifies `bytes` in one step; see [`SignedObject::decode`] and
/// [`SignedObject::verify`].
pub fn verify(
    bytes: &[u8],
    expected: Label,
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: SystemTime,
) -> Result<Verified, WireError> {
    SignedObject::decode(bytes)?.verify(expected, trust, revocations, policy, now)
}

/// The checks of what is signed, before any key is involved (signing here or outside the core):
/// a signed-object label ([`WireError::Label`]) and every field within the format
/// ([`WireError::TooLarge`]). Returns the leaf.
fn check_fields<'a>(label: Label, chain: &[&'a [u8]], body: &[u8]) -> Result<&'a [u8], WireError> {
    if !labels::is_signed_object(label) {
        return Err(WireError::Label);
    }
    let [leaf, ..] = chain else { return Err(WireError::TooLarge) };
    if chain.len() > MAX_CHAIN_LEN
        || chain.iter().any(|c| c.is_empty() || c.len() > MAX_CERT_LEN)
        || body.len() > MAX_BODY_LEN
        || label.as_bytes().len() > MAX_LABEL_LEN
    {
        return Err(WireError::TooLarge);
    }
    Ok(leaf)
}

/// The bytes a signature covers: [`Label::message`] of the leaf's SHA-256 followed by the body.
fn signed_message(label: Label, leaf_sha256: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut message = label.prefix();
    message.reserve(leaf_sha256.len() + body.len());
    message.extend_from_slice(leaf_sha256);
    message.extend_from_slice(body);
    message
}

/// The order of the P-256 group, and half of it (rounded down).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d,
    0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// `(r, s)` of a strict DER ECDSA-Sig-Value (minimal positive INTEGERs of at most 32 bytes of
/// magnitude, nothing after), each left-padded to 32 bytes.
fn signature_scalars(signature: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    let mut outer = der::Reader::new(signature);
    let mut inner = der::Reader::new(outer.read(tag::SEQUENCE)?);
    let (r, s) = (padded(inner.read_positive_integer()?)?, padded(inner.read_positive_integer()?)?);
    (outer.is_empty() && inner.is_empty()).then_some((r, s))
}

fn padded(magnitude: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    out.get_mut(32usize.checked_sub(magnitude.len())?..)?.copy_from_slice(magnitude);
    Some(out)
}

/// Whether `signature` is strict DER with `s` in the lower half of the group order.
/// Re-encoding the scalars must give back the same bytes, which rules out every non-minimal
/// form the reader might tolerate.
fn is_strict_low_s(signature: &[u8]) -> bool {
    signature_scalars(signature).is_some_and(|(r, s)| s <= P256_HALF_ORDER && encode_signature(&r, &s) == signature)
}

/// The signature with `s` replaced by `n − s` when it is in the upper half; `None` when it is
/// not a well-formed DER signature.
fn low_s(signature: &[u8]) -> Option<Vec<u8>> {
    let (r, mut s) = signature_scalars(signature)?;
    if s > P256_HALF_ORDER {
        s = subtract(&P256_ORDER, &s);
    }
    Some(encode_signature(&r, &s))
}

fn encode_signature(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    der::sequence(&[&der::unsigned_integer(r), &der::unsigned_integer(s)])
}

/// `a − b` for 256-bit big-endian numbers with `a ≥ b`.
fn subtract(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = u8::try_from(digit).unwrap_or(0);
    }
    out
}

fn as_u8(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

fn push_prefixed(out: &mut Vec<u8>, prefix: &[u8], bytes: &[u8]) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(bytes);
}

/// One certificate of the chain: a `u16` length in `1..=MAX_CERT_LEN`, then its bytes.
fn certificate<'a>(input: &mut Reader<'a>) -> Result<&'a [u8], WireError> {
    let len = usize::from(input.u16()?);
    if !(1..=MAX_CERT_LEN).contains(&len) {
        return Err(WireError::Malformed);
    }
    Ok(input.take(len)?)
}

pub mod external;

#[cfg(test)]
mod tests;
