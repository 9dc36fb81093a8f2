//! The byte layout of a keystore file (version 1): hostile-input-safe parsing and encoding.
//!
//! Nothing here derives keys or decrypts. [`parse`] checks the magic, the version, the SHA-256
//! checksum, every length against the bytes that remain and every field against its bounds,
//! and hands back borrowed views for the caller to authenticate. The layout itself is
//! documented in the parent module.

use std::collections::HashSet;

use ring::digest;

use super::{valid_name, Entry, EntryInfo, KdfParams, KeyKind, KeystoreError};
use crate::wire::labels;

/// The first eight bytes of every keystore file.
pub(super) const MAGIC: [u8; 8] = *b"ZTMESHKS";
/// The format version this module reads and writes.
pub(super) const VERSION: u16 = 1;
/// Length in bytes of the Argon2id salt.
pub(super) const SALT_LEN: usize = 16;
/// Length in bytes of an AES-256-GCM nonce.
pub(super) const NONCE_LEN: usize = 12;
/// Length in bytes of an AES-256-GCM tag.
pub(super) const TAG_LEN: usize = 16;
/// Length in bytes of the header: magic, version, KDF parameters, salt, key-check record.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 2 + 3 * 4 + SALT_LEN + NONCE_LEN + TAG_LEN;
/// The longest entry name, in bytes.
pub(super) const MAX_NAME_LEN: usize = 128;
/// The longest private key (PKCS#8 document, raw key or secret), in bytes.
pub(super) const MAX_PRIVATE_LEN: usize = 4096;

/// Length in bytes of the SHA-256 checksum that ends the file.
const CHECKSUM_LEN: usize = 32;
/// The header bytes the key-check tag covers: everything before the tag.
const KEY_CHECK_COVERED: usize = HEADER_LEN - TAG_LEN;
/// The smallest possible file: a header, a zero entry count and the trailer.
const MIN_FILE_LEN: usize = HEADER_LEN + 4 + NONCE_LEN + TAG_LEN + CHECKSUM_LEN;
/// The smallest possible entry: one-byte name, no public key, one-byte private key.
const MIN_ENTRY_LEN: usize = 1 + 1 + 1 + 8 + 2 + NONCE_LEN + 4 + 1 + TAG_LEN;

/// The fixed-size header of a keystore file.
#[derive(Clone)]
pub(super) struct Header {
    /// Argon2id cost parameters.
    pub(super) params: KdfParams,
    /// Argon2id salt.
    pub(super) salt: [u8; SALT_LEN],
    /// Nonce of the key-check record.
    pub(super) check_nonce: [u8; NONCE_LEN],
    /// Tag of the key-check record: AES-256-GCM of the empty plaintext.
    pub(super) check_tag: [u8; TAG_LEN],
}

impl Header {
    /// The header's encoding, as it appears at the start of the file.
    pub(super) fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields: [&[u8]; 8] = [
            &MAGIC,
            &VERSION.to_be_bytes(),
            &self.params.memory_kib.to_be_bytes(),
            &self.params.iterations.to_be_bytes(),
            &self.params.parallelism.to_be_bytes(),
            &self.salt,
            &self.check_nonce,
            &self.check_tag,
        ];
        let mut at = 0;
        for field in fields {
            out[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        out
    }

    /// The AAD of the key-check record: its label and every header byte before the tag.
    pub(super) fn key_check_aad(&self) -> Vec<u8> {
        let header = self.to_bytes();
        labels::KEYSTORE_KEY_CHECK.message(&header[..KEY_CHECK_COVERED])
    }
}

/// A parsed file whose structure is valid but which is not yet authenticated.
pub(super) struct RawFile<'a> {
    /// The header.
    pub(super) header: Header,
    /// The entries, in file order, names unique.
    pub(super) entries: Vec<RawEntry<'a>>,
    /// Header, entry count and entries: the bytes the file tag covers.
    pub(super) body: &'a [u8],
    /// Nonce of the file tag.
    pub(super) file_nonce: [u8; NONCE_LEN],
    /// The file tag: AES-256-GCM of the empty plaintext over [`file_aad`] of the body.
    pub(super) file_tag: [u8; TAG_LEN],
}

/// One entry as parsed, its private key still sealed.
pub(super) struct RawEntry<'a> {
    /// Name, kind, public key and creation time.
    pub(super) info: EntryInfo,
    /// Nonce of the sealed private key.
    pub(super) nonce: [u8; NONCE_LEN],
    /// The sealed private key: ciphertext ‖ tag.
    pub(super) sealed: &'a [u8],
}

/// Parses a whole keystore file without deriving any key.
///
/// A bad magic, a checksum mismatch, a truncation, any out-of-range field, a duplicate name or
/// trailing bytes are [`KeystoreError::Corrupt`]; a version other than [`VERSION`] is
/// [`KeystoreError::UnsupportedVersion`]. Allocation is bounded by the input length.
pub(super) fn parse(bytes: &[u8]) -> Result<RawFile<'_>, KeystoreError> {
    let mut prefix = Reader::new(bytes);
    if prefix.take(MAGIC.len())? != MAGIC {
        return Err(KeystoreError::Corrupt);
    }
    let version = prefix.u16()?;
    if version != VERSION {
        return Err(KeystoreError::UnsupportedVersion(version));
    }
    if bytes.len() < MIN_FILE_LEN {
        return Err(KeystoreError::Corrupt);
    }
    let (content, checksum) = bytes.split_at_checked(bytes.len() - CHECKSUM_LEN).ok_or(KeystoreError::Corrupt)?;
    if digest::digest(&digest::SHA256, content).as_ref() != checksum {
        return Err(KeystoreError::Corrupt);
    }
    let (body, trailer) =
        content.split_at_checked(content.len() - NONCE_LEN - TAG_LEN).ok_or(KeystoreError::Corrupt)?;
    let mut trailer = Reader::new(trailer);
    let file_nonce = trailer.array()?;
    let file_tag = trailer.array()?;

    let mut r = Reader::new(body);
    r.take(MAGIC.len() + 2)?;
    let params = KdfParams { memory_kib: r.u32()?, iterations: r.u32()?, parallelism: r.u32()? };
    if !params.within_bounds() {
        return Err(KeystoreError::Corrupt);
    }
    let header = Header { params, salt: r.array()?, check_nonce: r.array()?, check_tag: r.array()? };

    let count = usize::try_from(r.u32()?).map_err(|_| KeystoreError::Corrupt)?;
    if count > r.remaining() / MIN_ENTRY_LEN {
        return Err(KeystoreError::Corrupt);
    }
    let mut entries = Vec::with_capacity(count);
    let mut names = HashSet::with_capacity(count);
    for _ in 0..count {
        let entry = parse_entry(&mut r)?;
        if !names.insert(entry.info.name.clone()) {
            return Err(KeystoreError::Corrupt);
        }
        entries.push(entry);
    }
    if r.remaining() != 0 {
        return Err(KeystoreError::Corrupt);
    }
    Ok(RawFile { header, entries, body, file_nonce, file_tag })
}

/// Encodes the header, the entry count and the entries: the bytes the file tag covers.
pub(super) fn encode_body(header: &Header, entries: &[Entry]) -> Result<Vec<u8>, KeystoreError> {
    let count = u32::try_from(entries.len()).map_err(|_| KeystoreError::Internal)?;
    let mut out = Vec::new();
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        let sealed_len = u32::try_from(entry.sealed.len()).map_err(|_| KeystoreError::Internal)?;
        out.extend_from_slice(&encode_metadata(&entry.info)?);
        out.extend_from_slice(&entry.nonce);
        out.extend_from_slice(&sealed_len.to_be_bytes());
        out.extend_from_slice(&entry.sealed);
    }
    Ok(out)
}

/// Completes a file image: appends the file tag and its nonce, then the checksum.
pub(super) fn finish(mut body: Vec<u8>, file_nonce: &[u8; NONCE_LEN], file_tag: &[u8; TAG_LEN]) -> Vec<u8> {
    body.extend_from_slice(file_nonce);
    body.extend_from_slice(file_tag);
    with_checksum(body)
}

/// Appends the SHA-256 checksum of `content`.
pub(super) fn with_checksum(mut content: Vec<u8>) -> Vec<u8> {
    let checksum = digest::digest(&digest::SHA256, &content);
    content.extend_from_slice(checksum.as_ref());
    content
}

/// The AAD of the file tag: its label and the file body.
pub(super) fn file_aad(body: &[u8]) -> Vec<u8> {
    labels::KEYSTORE_FILE.message(body)
}

/// The AAD of an entry's sealed private key: its label, the header and the entry's metadata.
pub(super) fn entry_aad(header: &Header, info: &EntryInfo) -> Result<Vec<u8>, KeystoreError> {
    Ok(labels::KEYSTORE_ENTRY.message(&[&header.to_bytes()[..], &encode_metadata(info)?].concat()))
}

/// The wire code of a key kind.
fn kind_code(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Ed25519 => 1,
        KeyKind::EcdsaP256 => 2,
        KeyKind::X25519 => 3,
        KeyKind::Secret => 4,
    }
}

/// The key kind of a wire code.
fn kind_from_code(code: u8) -> Option<KeyKind> {
    match code {
        1 => Some(KeyKind::Ed25519),
        2 => Some(KeyKind::EcdsaP256),
        3 => Some(KeyKind::X25519),
        4 => Some(KeyKind::Secret),
        _ => None,
    }
}

/// The length of a public key of this kind; a secret has none.
pub(super) fn public_key_len(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Ed25519 | KeyKind::X25519 => 32,
        KeyKind::EcdsaP256 => 65,
        KeyKind::Secret => 0,
    }
}

/// Encodes an entry's name, kind, creation time and public key.
fn encode_metadata(info: &EntryInfo) -> Result<Vec<u8>, KeystoreError> {
    let name_len = u8::try_from(info.name.len()).map_err(|_| KeystoreError::Internal)?;
    let public_len = u16::try_from(info.public_key.len()).map_err(|_| KeystoreError::Internal)?;
    let mut out = Vec::with_capacity(1 + info.name.len() + 1 + 8 + 2 + info.public_key.len());
    out.push(name_len);
    out.extend_from_slice(info.name.as_bytes());
    out.push(kind_code(info.kind));
    out.extend_from_slice(&info.created_at.to_be_bytes());
    out.extend_from_slice(&public_len.to_be_bytes());
    out.extend_from_slice(&info.public_key);
    Ok(out)
}

/// Parses one entry, checking every field; the encoding is canonical, so
/// [`encode_metadata`] of the result reproduces the bytes read.
fn parse_entry<'a>(r: &mut Reader<'a>) -> Result<RawEntry<'a>, KeystoreError> {
    let name_len = usize::from(r.u8()?);
    let name = r.take(name_len)?;
    if !valid_name(name) {
        return Err(KeystoreError::Corrupt);
    }
    let name = std::str::from_utf8(name).map_err(|_| KeystoreError::Corrupt)?.to_owned();
    let kind = kind_from_code(r.u8()?).ok_or(KeystoreError::Corrupt)?;
    let created_at = r.u64()?;
    let public_len = usize::from(r.u16()?);
    if public_len != public_key_len(kind) {
        return Err(KeystoreError::Corrupt);
    }
    let public_key = r.take(public_len)?.to_vec();
    let nonce = r.array()?;
    let sealed_len = usize::try_from(r.u32()?).map_err(|_| KeystoreError::Corrupt)?;
    if !(TAG_LEN + 1..=TAG_LEN + MAX_PRIVATE_LEN).contains(&sealed_len) {
        return Err(KeystoreError::Corrupt);
    }
    let sealed = r.take(sealed_len)?;
    Ok(RawEntry { info: EntryInfo { name, kind, public_key, created_at }, nonce, sealed })
}

/// A cursor over untrusted bytes: every read is bounds-checked and a short read is
/// [`KeystoreError::Corrupt`].
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], KeystoreError> {
        let (head, tail) = self.rest.split_at_checked(len).ok_or(KeystoreError::Corrupt)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeystoreError> {
        self.take(N)?.try_into().map_err(|_| KeystoreError::Corrupt)
    }

    fn u8(&mut self) -> Result<u8, KeystoreError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, KeystoreError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, KeystoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, KeystoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}
