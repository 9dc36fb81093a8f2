//! Passphrase-encrypted software keystore: the fallback key store when no TPM is present.
//!
//! A keystore is one file holding named entries: Ed25519 and ECDSA P-256 signing keys, X25519
//! keys and opaque secrets. Argon2id derives a 256-bit store key from the passphrase; AES-256-GCM
//! under that key seals each private key, with a fresh random 96-bit nonce per seal and the
//! entry's metadata and the file header as AAD. Public keys and names are stored in the clear.
//!
//! Every change is persisted first and applied in memory only once the file is safely on
//! disk: a new file image goes to a temporary file in the same directory (mode 0600), which is
//! fsynced, renamed over the keystore, and the directory fsynced ([`crate::atomic_file`], the one
//! atomic write of ztmesh). A failed write loses nothing
//! and a failed open never touches the file.
//!
//! # File format (version 1)
//!
//! Integers are big-endian.
//!
//! | offset | length | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `ZTMESHKS` |
//! | 8 | 2 | format version, `1` |
//! | 10 | 4 | Argon2id memory cost in KiB |
//! | 14 | 4 | Argon2id iterations |
//! | 18 | 4 | Argon2id parallelism |
//! | 22 | 16 | Argon2id salt |
//! | 38 | 12 | key-check nonce |
//! | 50 | 16 | key-check tag |
//! | 66 | 4 | entry count `n` |
//! | 70 | … | `n` entries, laid out below |
//! | end − 60 | 12 | file nonce |
//! | end − 48 | 16 | file tag |
//! | end − 32 | 32 | SHA-256 of every byte before it |
//!
//! Each entry:
//!
//! | length | field |
//! | --- | --- |
//! | 1 | name length `l`, 1..=128 |
//! | `l` | name, bytes of `[A-Za-z0-9._-]` |
//! | 1 | kind: 1 Ed25519, 2 ECDSA P-256, 3 X25519, 4 secret |
//! | 8 | creation time, Unix seconds |
//! | 2 | public key length `p`: 32, 65, 32 or 0 by kind |
//! | `p` | public key |
//! | 12 | nonce |
//! | 4 | sealed length `c`, 17..=4112 |
//! | `c` | AES-256-GCM ciphertext ‖ tag of the private key |
//!
//! Private keys are PKCS#8 v1/v2 documents (Ed25519, ECDSA P-256), 32 raw bytes (X25519) or
//! 1..=4096 raw bytes (secret). Three kinds of seal use the store key, each with its own
//! NUL-terminated label prefixed to its AAD:
//!
//! - key-check: the empty plaintext, AAD = label ‖ header bytes 0..50;
//! - entry: the private key, AAD = label ‖ header (66 bytes) ‖ the entry's bytes up to its nonce;
//! - file: the empty plaintext, AAD = label ‖ every byte from offset 0 to the file nonce, so no
//!   entry can be dropped, reordered or replayed from another version of the file.
//!
//! Opening checks, in order: magic (else corrupt), version (else [`KeystoreError::UnsupportedVersion`]),
//! checksum, structure and Argon2 bounds (else corrupt, before any key derivation); then the
//! key-check tag (else [`KeystoreError::Passphrase`]); then, the passphrase being proven right,
//! the file tag and every entry, whose private key must parse and match its stored public key
//! (else corrupt). Accidental damage is caught by the checksum and is never mistaken for a
//! wrong passphrase.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::{Argon2, Params, Version};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::error::Unspecified;
use zeroize::Zeroizing;

use crate::atomic_file::{self, AtomicFileError, WriteMode};
use crate::sign::{self, SignError, SigningKey};
use crate::x25519::{self, X25519Error};

mod format;

use format::{Header, MAX_NAME_LEN, MAX_PRIVATE_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};

/// Argon2id cost parameters for deriving the store key from the passphrase.
///
/// Accepted ranges, enforced on create, on a passphrase change and when reading a file:
/// parallelism 1..=16, iterations 1..=64, memory from 8 × parallelism KiB up to 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 iterations, 1 lane.
    fn default() -> Self {
        Self { memory_kib: 65536, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// The cheapest parameters Argon2 accepts (8 KiB, 1 iteration, 1 lane), for tests only: a
    /// keystore created with them is barely protected against passphrase guessing. Only with the
    /// feature `testing`.
    #[cfg(any(test, feature = "testing"))]
    pub const fn for_testing_only() -> Self {
        Self { memory_kib: 8, iterations: 1, parallelism: 1 }
    }
}

/// The kind of key an entry holds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// An Ed25519 signing key, stored as PKCS#8; public key 32 bytes.
    Ed25519,
    /// An ECDSA P-256 signing key, stored as PKCS#8; public key a 65-byte uncompressed point.
    EcdsaP256,
    /// An X25519 key, stored as 32 raw bytes; public key 32 bytes.
    X25519,
    /// An opaque secret of 1..=4096 bytes; no public key.
    Secret,
}

impl KeyKind {
    /// Parses the kind's stable name: `ed25519`, `ecdsa-p256`, `x25519` or `secret`.
    pub fn from_name(name: &str) -> Result<Self, KeystoreError> {
        match name {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            "x25519" => Ok(Self::X25519),
            "secret" => Ok(Self::Secret),
            _ => Err(KeystoreError::UnknownKind),
        }
    }

    /// The kind's stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::X25519 => "x25519",
            Self::Secret => "secret",
        }
    }
}

/// The public description of an entry; never holds private material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's name, 1..=128 bytes of `[A-Za-z0-9._-]`.
    pub name: String,
    /// The kind of key.
    pub kind: KeyKind,
    /// The public key (see [`KeyKind`]); empty for [`KeyKind::Secret`].
    pub public_key: Vec<u8>,
    /// When the entry was generated or imported, in Unix seconds.
    pub created_at: u64,
}

/// An open keystore: the store key and the sealed entries, bound to one file.
///
/// Private keys stay sealed in memory and are opened only for the operation that needs them,
/// in buffers zeroized afterwards. Only one `Keystore` should write a given file at a time.
pub struct Keystore {
    path: PathBuf,
    header: Header,
    key: StoreKey,
    entries: Vec<Entry>,
}

impl Keystore {
    /// Creates a new, empty keystore file at `path`, encrypted under `passphrase`.
    ///
    /// Fails with [`KeystoreError::Exists`] if anything already exists at `path`, and with
    /// [`KeystoreError::InvalidParams`] if `params` is out of range.
    pub fn create(path: &Path, passphrase: &[u8], params: KdfParams) -> Result<Self, KeystoreError> {
        if !params.within_bounds() {
            return Err(KeystoreError::InvalidParams);
        }
        // Checked before the (slow) key derivation; the final link refuses to replace anything.
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(KeystoreError::Exists(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, &e)),
        }
        let (header, key) = new_header(passphrase, params)?;
        let store = Self { path: path.to_path_buf(), header, key, entries: Vec::new() };
        let image = file_image(&store.header, &store.key, &store.entries)?;
        write_atomically(path, &image, WriteMode::CreateNew)?;
        Ok(store)
    }

    /// Opens the keystore file at `path` with `passphrase`. The file is only read.
    ///
    /// Fails with [`KeystoreError::Passphrase`] for a wrong passphrase, with
    /// [`KeystoreError::Corrupt`] for a damaged file, with [`KeystoreError::UnsupportedVersion`]
    /// for a format this library does not know and with [`KeystoreError::FileNotFound`] if
    /// there is no file.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Self, KeystoreError> {
        let bytes = fs::read(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => KeystoreError::FileNotFound(path.to_path_buf()),
            _ => io_error(path, &e),
        })?;
        let raw = format::parse(&bytes)?;
        let key =
            StoreKey::derive(passphrase, raw.header.params, &raw.header.salt).map_err(|_| KeystoreError::Corrupt)?;
        let (header, entries) = unlock(raw, &key)?;
        Ok(Self { path: path.to_path_buf(), header, key, entries })
    }

    /// The path of the keystore file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Describes every entry, in the order they were added.
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.entries.iter().map(|entry| entry.info.clone()).collect()
    }

    /// Generates a new key of `kind` under `name` and persists it.
    ///
    /// A secret is 32 random bytes. Fails with [`KeystoreError::EntryExists`] if the name is
    /// taken.
    pub fn generate(&mut self, name: &str, kind: KeyKind) -> Result<EntryInfo, KeystoreError> {
        self.check_new_name(name)?;
        let private_key = generate_private_key(kind)?;
        self.insert(name, kind, &private_key)
    }

    /// Imports `private_key` as a key of `kind` under `name` and persists it.
    ///
    /// Ed25519 and ECDSA P-256 keys are PKCS#8 documents (DER), X25519 keys 32 raw bytes and
    /// secrets 1..=4096 bytes; anything else is [`KeystoreError::PrivateKey`].
    pub fn import(&mut self, name: &str, kind: KeyKind, private_key: &[u8]) -> Result<EntryInfo, KeystoreError> {
        self.check_new_name(name)?;
        self.insert(name, kind, private_key)
    }

    /// The public key of the entry `name`. A secret has none: [`KeystoreError::WrongKind`].
    pub fn public_key(&self, name: &str) -> Result<Vec<u8>, KeystoreError> {
        let entry = self.find(name)?;
        match entry.info.kind {
            KeyKind::Secret => Err(KeystoreError::WrongKind(KeyKind::Secret)),
            _ => Ok(entry.info.public_key.clone()),
        }
    }

    /// Signs `message` with the Ed25519 or ECDSA P-256 entry `name` (see [`crate::sign`]).
    ///
    /// Other kinds are [`KeystoreError::WrongKind`].
    pub fn sign(&self, name: &str, message: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        let entry = self.find(name)?;
        let algorithm = signing_algorithm(entry.info.kind).ok_or(KeystoreError::WrongKind(entry.info.kind))?;
        let private_key = self.unseal(entry)?;
        let signing_key = SigningKey::from_pkcs8(algorithm, &private_key).map_err(|_| KeystoreError::Internal)?;
        signing_key.sign(message).map_err(from_sign_error)
    }

    /// The ecdsa-p256 entry `name` as a certificate signer, decrypted here so its private key
    /// never leaves the core. Other kinds are [`KeystoreError::WrongKind`].
    pub fn cert_signer(&self, name: &str) -> Result<crate::pki::SoftwareSigner, KeystoreError> {
        let entry = self.find(name)?;
        if entry.info.kind != KeyKind::EcdsaP256 {
            return Err(KeystoreError::WrongKind(entry.info.kind));
        }
        let private_key = self.unseal(entry)?;
        crate::pki::SoftwareSigner::from_pkcs8(&private_key).map_err(|_| KeystoreError::Internal)
    }

    /// The private key of the entry `name`, in the form [`Keystore::import`] takes.
    pub fn export_private_key(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let entry = self.find(name)?;
        self.unseal(entry)
    }

    /// Removes the entry `name` and persists the change.
    pub fn remove(&mut self, name: &str) -> Result<(), KeystoreError> {
        self.find(name)?;
        let next: Vec<Entry> = self.entries.iter().filter(|entry| entry.info.name != name).cloned().collect();
        self.persist(&self.header, &self.key, &next)?;
        self.entries = next;
        Ok(())
    }

    /// Re-encrypts the keystore under `new_passphrase` with a new salt and `params`.
    ///
    /// Every entry is resealed with a fresh nonce and the file is replaced in one atomic write;
    /// on failure the keystore keeps its old passphrase, on disk and in memory.
    pub fn change_passphrase(&mut self, new_passphrase: &[u8], params: KdfParams) -> Result<(), KeystoreError> {
        if !params.within_bounds() {
            return Err(KeystoreError::InvalidParams);
        }
        let (header, key) = new_header(new_passphrase, params)?;
        let mut next = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let private_key = self.unseal(entry)?;
            next.push(seal_entry(&key, &header, entry.info.clone(), &private_key)?);
        }
        self.persist(&header, &key, &next)?;
        self.header = header;
        self.key = key;
        self.entries = next;
        Ok(())
    }

    /// Fails unless `name` is a valid name not yet in use.
    fn check_new_name(&self, name: &str) -> Result<(), KeystoreError> {
        if !valid_name(name.as_bytes()) {
            return Err(KeystoreError::InvalidName);
        }
        if self.entries.iter().any(|entry| entry.info.name == name) {
            return Err(KeystoreError::EntryExists(name.to_owned()));
        }
        Ok(())
    }

    /// Validates `private_key`, seals it as a new entry, persists, then adds it in memory.
    fn insert(&mut self, name: &str, kind: KeyKind, private_key: &[u8]) -> Result<EntryInfo, KeystoreError> {
        let public_key = public_key_of(kind, private_key)?;
        let info = EntryInfo { name: name.to_owned(), kind, public_key, created_at: unix_now() };
        let entry = seal_entry(&self.key, &self.header, info.clone(), private_key)?;
        let mut next = self.entries.clone();
        next.push(entry);
        self.persist(&self.header, &self.key, &next)?;
        self.entries = next;
        Ok(info)
    }

    /// The entry named `name`.
    fn find(&self, name: &str) -> Result<&Entry, KeystoreError> {
        if !valid_name(name.as_bytes()) {
            return Err(KeystoreError::InvalidName);
        }
        self.entries
            .iter()
            .find(|entry| entry.info.name == name)
            .ok_or_else(|| KeystoreError::EntryNotFound(name.to_owned()))
    }

    /// Opens an entry's sealed private key. Every entry was authenticated on open or sealed by
    /// this process, so a failure here is internal.
    fn unseal(&self, entry: &Entry) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
        let aad = format::entry_aad(&self.header, &entry.info)?;
        self.key.open(&entry.nonce, &aad, &entry.sealed).map_err(|_| KeystoreError::Internal)
    }

    /// Atomically replaces the file with the image of `header` and `entries` under `key`.
    fn persist(&self, header: &Header, key: &StoreKey, entries: &[Entry]) -> Result<(), KeystoreError> {
        let image = file_image(header, key, entries)?;
        write_atomically(&self.path, &image, WriteMode::Replace)
    }
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("path", &self.path)
            .field("params", &self.header.params)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Why a keystore operation failed. Messages never contain key material or passphrases.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoreError {
    /// The passphrase does not unlock the keystore (its key-check record did not open).
    Passphrase,
    /// The file is truncated, damaged or malformed, its Argon2 parameters are out of range, or
    /// an entry did not open under the right passphrase.
    Corrupt,
    /// The file is a keystore of a format version this library does not read.
    UnsupportedVersion(u16),
    /// [`Keystore::create`] found something already at the path.
    Exists(PathBuf),
    /// [`Keystore::open`] found no file at the path.
    FileNotFound(PathBuf),
    /// No entry has this name.
    EntryNotFound(String),
    /// An entry of this name already exists.
    EntryExists(String),
    /// An entry name is empty, longer than 128 bytes or has a byte outside `[A-Za-z0-9._-]`.
    InvalidName,
    /// [`KeyKind::from_name`] got a name it does not know.
    UnknownKind,
    /// The operation is not valid for an entry of this kind.
    WrongKind(KeyKind),
    /// The Argon2 parameters given to create or change the passphrase are out of range.
    InvalidParams,
    /// A private key to import is malformed for its kind.
    PrivateKey,
    /// Reading or writing the keystore file failed.
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        kind: io::ErrorKind,
    },
    /// The operating system's random number generator failed.
    Random,
    /// An underlying library failed in a way that should be impossible.
    Internal,
}

impl fmt::Display for KeystoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passphrase => f.write_str("wrong keystore passphrase"),
            Self::Corrupt => f.write_str("the keystore file is corrupt or truncated"),
            Self::UnsupportedVersion(version) => write!(f, "unsupported keystore format version {version}"),
            Self::Exists(path) => write!(f, "a file already exists at {}", path.display()),
            Self::FileNotFound(path) => write!(f, "no keystore file at {}", path.display()),
            Self::EntryNotFound(name) => write!(f, "no keystore entry named {name:?}"),
            Self::EntryExists(name) => write!(f, "a keystore entry named {name:?} already exists"),
            Self::InvalidName => f.write_str("entry names must be 1 to 128 bytes of [A-Za-z0-9._-]"),
            Self::UnknownKind => f.write_str("unknown key kind"),
            Self::WrongKind(kind) => write!(f, "operation not valid for a {} entry", kind.name()),
            Self::InvalidParams => f.write_str("Argon2 parameters out of range"),
            Self::PrivateKey => f.write_str("invalid private key for its kind"),
            Self::Io { path, kind } => write!(f, "keystore I/O error on {}: {kind}", path.display()),
            Self::Random => f.write_str("the operating system's random number generator failed"),
            Self::Internal => f.write_str("internal keystore failure"),
        }
    }
}

impl std::error::Error for KeystoreError {}

impl crate::ErrorCode for KeystoreError {
    fn code(&self) -> &'static str {
        match self {
            Self::Passphrase => "ERR_KEYSTORE_PASSPHRASE",
            Self::Corrupt => "ERR_KEYSTORE_CORRUPT",
            Self::UnsupportedVersion(_) => "ERR_KEYSTORE_VERSION",
            Self::Exists(_) => "ERR_KEYSTORE_EXISTS",
            Self::FileNotFound(_) | Self::EntryNotFound(_) => "ERR_KEYSTORE_NOT_FOUND",
            Self::EntryExists(_) => "ERR_KEYSTORE_ENTRY_EXISTS",
            Self::InvalidName => "ERR_KEYSTORE_NAME",
            Self::UnknownKind | Self::WrongKind(_) => "ERR_KEYSTORE_KIND",
            Self::InvalidParams => "ERR_KEYSTORE_PARAMS",
            Self::PrivateKey => "ERR_PRIVATE_KEY",
            Self::Io { .. } => "ERR_KEYSTORE_IO",
            Self::Random => "ERR_RANDOM",
            Self::Internal => "ERR_INTERNAL",
        }
    }
}

/// Parses a keystore file image without deriving a key; returns the number of entries.
///
/// For fuzzing: this is the code that reads untrusted bytes before any authentication.
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub fn parse_for_fuzzing(bytes: &[u8]) -> Result<usize, KeystoreError> {
    format::parse(bytes).map(|raw| raw.entries.len())
}

/// Opens a keystore file image in memory, like [`Keystore::open`]; returns the number of
/// entries, or `None` without deriving a key if the file asks for more than 64 KiB, 2
/// iterations or 2 lanes of Argon2 (too slow for a fuzzer).
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub fn open_for_fuzzing(bytes: &[u8], passphrase: &[u8]) -> Result<Option<usize>, KeystoreError> {
    let raw = format::parse(bytes)?;
    let params = raw.header.params;
    if params.memory_kib > 64 || params.iterations > 2 || params.parallelism > 2 {
        return Ok(None);
    }
    let key = StoreKey::derive(passphrase, params, &raw.header.salt).map_err(|_| KeystoreError::Corrupt)?;
    let (_, entries) = unlock(raw, &key)?;
    Ok(Some(entries.len()))
}

/// Replaces the last 32 bytes of `bytes` with the SHA-256 of the rest, so that a fuzzer's
/// mutations get past the checksum.
#[doc(hidden)]
#[cfg(any(test, feature = "testing"))]
pub fn fix_checksum_for_fuzzing(bytes: &[u8]) -> Vec<u8> {
    match bytes.len().checked_sub(32) {
        Some(content_len) => format::with_checksum(bytes[..content_len].to_vec()),
        None => bytes.to_vec(),
    }
}

/// An entry held in memory: its description and its sealed private key.
#[derive(Clone)]
struct Entry {
    info: EntryInfo,
    nonce: [u8; NONCE_LEN],
    sealed: Vec<u8>,
}

/// The 256-bit store key derived from the passphrase, zeroized on drop.
struct StoreKey(Zeroizing<[u8; 32]>);

impl StoreKey {
    /// Runs Argon2id over the passphrase; `params` must be within bounds.
    fn derive(passphrase: &[u8], params: KdfParams, salt: &[u8; SALT_LEN]) -> Result<Self, argon2::Error> {
        let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))?;
        let argon = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, argon_params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon.hash_password_into(passphrase, salt, key.as_mut_slice())?;
        Ok(Self(key))
    }

    /// The AES-256-GCM key schedule of the store key.
    fn aead(&self) -> Result<LessSafeKey, KeystoreError> {
        let unbound = UnboundKey::new(&aead::AES_256_GCM, self.0.as_slice()).map_err(|_| KeystoreError::Internal)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plaintext` under a fresh random nonce; returns the nonce and ciphertext ‖ tag.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), KeystoreError> {
        let nonce = fresh_nonce()?;
        // Room for the tag up front: appending it must not reallocate and leave a plaintext copy.
        let mut buffer = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buffer.extend_from_slice(plaintext);
        self.aead()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buffer)
            .map_err(|_| KeystoreError::Internal)?;
        Ok((nonce, buffer))
    }

    /// The tag of the empty plaintext under `nonce` (which must be fresh): a MAC of `aad`.
    fn tag(&self, nonce: &[u8; NONCE_LEN], aad: &[u8]) -> Result<[u8; TAG_LEN], KeystoreError> {
        let tag = self
            .aead()?
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut [])
            .map_err(|_| KeystoreError::Internal)?;
        tag.as_ref().try_into().map_err(|_| KeystoreError::Internal)
    }

    /// Opens ciphertext ‖ tag into a buffer zeroized on drop.
    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Unspecified> {
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let key = self.aead().map_err(|_| Unspecified)?;
        let len = key.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buffer.as_mut_slice())?.len();
        buffer.truncate(len);
        Ok(buffer)
    }

    /// Checks a tag made by [`StoreKey::tag`].
    fn verify_tag(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], tag: &[u8; TAG_LEN]) -> Result<(), Unspecified> {
        self.open(nonce, aad, tag).map(drop)
    }
}

impl KdfParams {
    /// Whether these parameters are within the accepted ranges (see [`KdfParams`]).
    fn within_bounds(self) -> bool {
        (1..=16).contains(&self.parallelism)
            && (1..=64).contains(&self.iterations)
            && (8 * self.parallelism..=4 * 1024 * 1024).contains(&self.memory_kib)
    }
}

/// Whether `name` is 1..=128 bytes of `[A-Za-z0-9._-]`.
fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Derives a store key from `passphrase` under a fresh salt and builds the header with its
/// key-check record.
fn new_header(passphrase: &[u8], params: KdfParams) -> Result<(Header, StoreKey), KeystoreError> {
    let salt = crate::rand::array::<SALT_LEN>().map_err(|_| KeystoreError::Random)?;
    let key = StoreKey::derive(passphrase, params, &salt).map_err(|_| KeystoreError::InvalidParams)?;
    // The key-check AAD covers the nonce, so the tag is computed once the rest is in place.
    let mut header = Header { params, salt, check_nonce: fresh_nonce()?, check_tag: [0; TAG_LEN] };
    header.check_tag = key.tag(&header.check_nonce, &header.key_check_aad())?;
    Ok((header, key))
}

/// Authenticates a parsed file under `key` and checks every entry.
///
/// The key-check record failing means a wrong passphrase; anything failing after it, with the
/// passphrase proven right, means a corrupt file.
fn unlock(raw: format::RawFile<'_>, key: &StoreKey) -> Result<(Header, Vec<Entry>), KeystoreError> {
    let header = raw.header;
    key.verify_tag(&header.check_nonce, &header.key_check_aad(), &header.check_tag)
        .map_err(|_| KeystoreError::Passphrase)?;
    key.verify_tag(&raw.file_nonce, &format::file_aad(raw.body), &raw.file_tag).map_err(|_| KeystoreError::Corrupt)?;
    let mut entries = Vec::with_capacity(raw.entries.len());
    for entry in raw.entries {
        let aad = format::entry_aad(&header, &entry.info)?;
        let private_key = key.open(&entry.nonce, &aad, entry.sealed).map_err(|_| KeystoreError::Corrupt)?;
        let public_key = public_key_of(entry.info.kind, &private_key).map_err(|_| KeystoreError::Corrupt)?;
        if public_key != entry.info.public_key {
            return Err(KeystoreError::Corrupt);
        }
        entries.push(Entry { info: entry.info, nonce: entry.nonce, sealed: entry.sealed.to_vec() });
    }
    Ok((header, entries))
}

/// The complete file image of `header` and `entries`, with a fresh file tag under `key`.
fn file_image(header: &Header, key: &StoreKey, entries: &[Entry]) -> Result<Vec<u8>, KeystoreError> {
    let body = format::encode_body(header, entries)?;
    let nonce = fresh_nonce()?;
    let tag = key.tag(&nonce, &format::file_aad(&body))?;
    Ok(format::finish(body, &nonce, &tag))
}

/// A random 96-bit AES-GCM nonce.
fn fresh_nonce() -> Result<[u8; NONCE_LEN], KeystoreError> {
    crate::rand::array().map_err(|_| KeystoreError::Random)
}

/// Seals `private_key` as the entry described by `info`.
fn seal_entry(key: &StoreKey, header: &Header, info: EntryInfo, private_key: &[u8]) -> Result<Entry, KeystoreError> {
    let aad = format::entry_aad(header, &info)?;
    let (nonce, sealed) = key.seal(&aad, private_key)?;
    Ok(Entry { info, nonce, sealed })
}

/// Validates `private_key` for `kind` and returns its public key (empty for a secret).
fn public_key_of(kind: KeyKind, private_key: &[u8]) -> Result<Vec<u8>, KeystoreError> {
    if private_key.is_empty() || private_key.len() > MAX_PRIVATE_LEN {
        return Err(KeystoreError::PrivateKey);
    }
    let public_key = match kind {
        KeyKind::Ed25519 | KeyKind::EcdsaP256 => {
            let algorithm = signing_algorithm(kind).ok_or(KeystoreError::Internal)?;
            SigningKey::from_pkcs8(algorithm, private_key).map_err(|_| KeystoreError::PrivateKey)?.public_key().to_vec()
        }
        KeyKind::X25519 => {
            x25519::PrivateKey::from_bytes(private_key).map_err(|_| KeystoreError::PrivateKey)?.public_key().to_vec()
        }
        KeyKind::Secret => Vec::new(),
    };
    if public_key.len() != format::public_key_len(kind) {
        return Err(KeystoreError::Internal);
    }
    Ok(public_key)
}

/// The signature algorithm of a signing-key kind.
fn signing_algorithm(kind: KeyKind) -> Option<sign::Algorithm> {
    match kind {
        KeyKind::Ed25519 => Some(sign::Algorithm::Ed25519),
        KeyKind::EcdsaP256 => Some(sign::Algorithm::EcdsaP256Sha256),
        KeyKind::X25519 | KeyKind::Secret => None,
    }
}

/// A fresh private key of `kind`, in the form [`Keystore::import`] takes.
fn generate_private_key(kind: KeyKind) -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
    match kind {
        KeyKind::Ed25519 | KeyKind::EcdsaP256 => {
            let algorithm = signing_algorithm(kind).ok_or(KeystoreError::Internal)?;
            Ok(SigningKey::generate(algorithm).map_err(from_sign_error)?.to_pkcs8())
        }
        KeyKind::X25519 => {
            let key = x25519::PrivateKey::generate().map_err(from_x25519_error)?;
            let bytes = key.to_bytes().map_err(from_x25519_error)?;
            Ok(Zeroizing::new(bytes.to_vec()))
        }
        KeyKind::Secret => {
            let mut secret = Zeroizing::new(vec![0u8; 32]);
            crate::rand::fill(&mut secret).map_err(|_| KeystoreError::Random)?;
            Ok(secret)
        }
    }
}

/// Maps a signature-module failure: only randomness can fail for a validated key.
fn from_sign_error(error: SignError) -> KeystoreError {
    match error {
        SignError::Random => KeystoreError::Random,
        _ => KeystoreError::Internal,
    }
}

/// Maps an X25519-module failure: only randomness can fail for a validated key.
fn from_x25519_error(error: X25519Error) -> KeystoreError {
    match error {
        X25519Error::Random => KeystoreError::Random,
        _ => KeystoreError::Internal,
    }
}

/// The current time in Unix seconds (0 if the clock is before 1970).
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

/// An I/O failure on `path`, keeping only the error kind.
fn io_error(path: &Path, error: &io::Error) -> KeystoreError {
    KeystoreError::Io { path: path.to_path_buf(), kind: error.kind() }
}

/// Writes the keystore file through the one atomic write, keeping the keystore's error codes.
fn write_atomically(path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), KeystoreError> {
    atomic_file::write_atomically(path, bytes, mode).map_err(|error| match error {
        AtomicFileError::Exists(path) => KeystoreError::Exists(path),
        AtomicFileError::Io { path, kind } => KeystoreError::Io { path, kind },
        AtomicFileError::Random => KeystoreError::Random,
    })
}

#[cfg(test)]
mod tests;
