//! Key and sealed-secret blobs: what a TPM object is outside the TPM, in a versioned byte
//! format suitable for a file ([`KeyBlob`] describes it).

use tss_esapi::structures::{Private, Public};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::error::{from_tss, TpmError};
use super::templates;
use crate::attest::{AkPublicKey, AttestError};

/// The magic of every blob.
const MAGIC: &[u8; 8] = b"ZTMESHTP";
/// The format version written and read.
const VERSION: u8 = 1;
/// The highest PCR index a sealed blob may name (TPMs implement 24 PCRs).
pub(crate) const MAX_PCR: u8 = 23;

/// The kind of key a [`KeyBlob`] holds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An unrestricted ECDSA P-256 signing key: signs any digest (certificates, CSRs, TLS).
    Signing,
    /// A restricted ECDSA P-256 attestation key: signs only quotes and other structures the
    /// TPM made itself.
    Attestation,
}

impl KeyKind {
    fn code(self) -> u8 {
        match self {
            Self::Signing => 1,
            Self::Attestation => 2,
        }
    }

    fn is_restricted(self) -> bool {
        self == Self::Attestation
    }
}

/// The kind code of sealed secrets.
const SEALED: u8 = 3;

/// A TPM key outside the TPM.
///
/// A blob holds the object's public area and its private area, which the TPM encrypted and
/// integrity-protected under the storage primary key: it is useless without the TPM that made
/// it, and the TPM refuses a blob that was altered. It is not secret in the sense a private key
/// is, but it is the capability to use the key on that TPM, so store it like one.
///
/// # Format (version 1)
///
/// Integers are big-endian.
///
/// | offset | length | field |
/// | --- | --- | --- |
/// | 0 | 8 | magic `ZTMESHTP` |
/// | 8 | 1 | format version, `1` |
/// | 9 | 1 | kind: 1 signing key, 2 attestation key, 3 sealed secret |
/// | 10 | 4 | the SHA-256 PCRs the object's policy reads, as a bitmap (bit `i` = PCR `i`); 0 for keys |
/// | 14 | 2 + `p` | `TPM2B_PUBLIC`: size `p`, then the marshalled `TPMT_PUBLIC` |
/// | 16 + `p` | 2 + `q` | `TPM2B_PRIVATE`: size `q`, then the TPM's private blob |
///
/// Nothing may follow. The public area must be exactly the ztmesh template of the kind (so an
/// attestation key is never loaded as a signing key, nor the reverse), and must re-marshal to
/// the same bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlob {
    kind: KeyKind,
    public: Public,
    private: Private,
    point: [u8; 65],
}

impl KeyBlob {
    /// Wraps what `TPM2_Create` returned for a key of `kind`.
    pub(crate) fn new(kind: KeyKind, public: Public, private: Private) -> Result<Self, TpmError> {
        let point = templates::ecdsa_point(&public, kind.is_restricted()).map_err(|_| TpmError::Internal)?;
        Ok(Self { kind, public, private, point })
    }

    /// Parses a blob written by [`Self::to_bytes`]. Fails with [`TpmError::Blob`] if it is
    /// malformed, of another version, a sealed secret, or not of a ztmesh key template.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        let (kind, pcrs, public, private) = decode(bytes)?;
        let kind = match kind {
            1 => KeyKind::Signing,
            2 => KeyKind::Attestation,
            _ => return Err(TpmError::Blob),
        };
        if pcrs != 0 {
            return Err(TpmError::Blob);
        }
        let point = templates::ecdsa_point(&public, kind.is_restricted())?;
        Ok(Self { kind, public, private, point })
    }

    /// The blob in the format above.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TpmError> {
        encode(self.kind.code(), 0, &self.public, &self.private)
    }

    /// What kind of key this is.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key: a 65-byte uncompressed P-256 point.
    pub fn public_key(&self) -> &[u8] {
        &self.point
    }

    /// The public key as an [`AkPublicKey`] (for an attestation key's quotes).
    pub fn ak_public_key(&self) -> Result<AkPublicKey, AttestError> {
        AkPublicKey::from_point(&self.point)
    }

    pub(crate) fn public(&self) -> &Public {
        &self.public
    }

    pub(crate) fn private(&self) -> &Private {
        &self.private
    }
}

impl std::fmt::Debug for KeyBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBlob").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A secret sealed by a TPM to the values of some of its PCRs, in the format of [`KeyBlob`]
/// (kind 3).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlob {
    pcrs: u32,
    public: Public,
    private: Private,
}

impl SealedBlob {
    /// Wraps what `TPM2_Create` returned for a sealed object bound to the PCRs of `pcrs`.
    pub(crate) fn new(pcrs: u32, public: Public, private: Private) -> Self {
        Self { pcrs, public, private }
    }

    /// Parses a blob written by [`Self::to_bytes`]. Fails with [`TpmError::Blob`] if it is
    /// malformed, of another version, a key, or names no PCR or a PCR above 23.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        let (kind, pcrs, public, private) = decode(bytes)?;
        if kind != SEALED || pcrs == 0 || pcrs >> (MAX_PCR + 1) != 0 || !templates::is_sealed_object(&public) {
            return Err(TpmError::Blob);
        }
        Ok(Self { pcrs, public, private })
    }

    /// The blob in the format above.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TpmError> {
        encode(SEALED, self.pcrs, &self.public, &self.private)
    }

    /// The SHA-256 PCRs the secret is sealed to, ascending.
    pub fn pcrs(&self) -> Vec<u8> {
        (0..=MAX_PCR).filter(|i| self.pcrs & (1 << i) != 0).collect()
    }

    pub(crate) fn pcr_bitmap(&self) -> u32 {
        self.pcrs
    }

    pub(crate) fn public(&self) -> &Public {
        &self.public
    }

    pub(crate) fn private(&self) -> &Private {
        &self.private
    }
}

impl std::fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBlob").field("pcrs", &self.pcrs()).finish_non_exhaustive()
    }
}

fn encode(kind: u8, pcrs: u32, public: &Public, private: &Private) -> Result<Vec<u8>, TpmError> {
    let public = public.marshall().map_err(from_tss)?;
    let mut out = Vec::with_capacity(18 + public.len() + private.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&pcrs.to_be_bytes());
    for part in [&public[..], private.value()] {
        let len = u16::try_from(part.len()).map_err(|_| TpmError::Internal)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// Splits a blob into its kind, PCR bitmap, public and private areas.
fn decode(bytes: &[u8]) -> Result<(u8, u32, Public, Private), TpmError> {
    let rest = bytes.strip_prefix(&MAGIC[..]).ok_or(TpmError::Blob)?;
    let [version, kind, p0, p1, p2, p3, rest @ ..] = rest else { return Err(TpmError::Blob) };
    if *version != VERSION {
        return Err(TpmError::Blob);
    }
    let pcrs = u32::from_be_bytes([*p0, *p1, *p2, *p3]);
    let (public_bytes, rest) = sized(rest, <Public as Marshall>::BUFFER_SIZE)?;
    let (private_bytes, rest) = sized(rest, Private::MAX_SIZE)?;
    if !rest.is_empty() || public_bytes.is_empty() || private_bytes.is_empty() {
        return Err(TpmError::Blob);
    }
    let public = Public::unmarshall(public_bytes).map_err(|_| TpmError::Blob)?;
    // The unmarshaller ignores trailing bytes and accepts some non-canonical forms: insist on
    // the one encoding.
    if public.marshall().map_err(|_| TpmError::Blob)? != public_bytes {
        return Err(TpmError::Blob);
    }
    let private = Private::try_from(private_bytes).map_err(|_| TpmError::Blob)?;
    Ok((*kind, pcrs, public, private))
}

/// A big-endian `u16` size of at most `max`, and that many bytes.
fn sized(input: &[u8], max: usize) -> Result<(&[u8], &[u8]), TpmError> {
    let [a, b, rest @ ..] = input else { return Err(TpmError::Blob) };
    let len = usize::from(u16::from_be_bytes([*a, *b]));
    if len > max || len > rest.len() {
        return Err(TpmError::Blob);
    }
    Ok(rest.split_at(len))
}
