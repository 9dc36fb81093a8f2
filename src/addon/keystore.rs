//! The passphrase-encrypted software keystore.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{AsyncTask, Buffer, Env, Task};
use napi_derive::napi;
use zeroize::Zeroizing;
use ztmesh_core::keystore::{self, EntryInfo, KdfParams, KeyKind};

use crate::error::{guard, sync, Failure, Result};

/// Argon2id cost of a keystore's passphrase.
#[napi(object)]
pub struct KeystoreKdfOptions {
    /// Memory in KiB (default 65536).
    pub memory_kib: Option<u32>,
    /// Passes over memory (default 3).
    pub iterations: Option<u32>,
    /// Lanes (default 1).
    pub parallelism: Option<u32>,
}

/// One key in the keystore (never the private part).
#[napi(object)]
pub struct KeystoreEntry {
    /// The entry's name.
    pub name: String,
    /// `ed25519`, `ecdsa-p256`, `x25519` or `secret`.
    pub kind: String,
    /// The public key (empty for `secret`).
    pub public_key: Buffer,
    /// When the entry was added, in Unix seconds.
    pub created_at: f64,
}

/// An open keystore: its master key stays in the core; private keys are decrypted per use.
#[napi]
pub struct Keystore {
    inner: Arc<Mutex<keystore::Keystore>>,
}

#[napi]
impl Keystore {
    /// The file path.
    #[napi(getter)]
    pub fn path(&self) -> Result<String> {
        sync(|| Ok(self.lock()?.path().to_string_lossy().into_owned()))
    }

    /// Every entry, without private material.
    #[napi]
    pub fn entries(&self) -> Result<Vec<KeystoreEntry>> {
        sync(|| Ok(self.lock()?.entries().into_iter().map(entry).collect()))
    }

    /// Generates a key inside the keystore and persists it atomically.
    #[napi]
    pub fn generate(&self, name: String, kind: String) -> Result<KeystoreEntry> {
        sync(|| Ok(entry(self.lock()?.generate(&name, KeyKind::from_name(&kind)?)?)))
    }

    /// Imports a private key (PKCS#8 DER for ed25519/ecdsa-p256, 32 raw bytes for x25519).
    #[napi(js_name = "import")]
    pub fn import_key(&self, name: String, kind: String, private_key: &[u8]) -> Result<KeystoreEntry> {
        sync(|| Ok(entry(self.lock()?.import(&name, KeyKind::from_name(&kind)?, private_key)?)))
    }

    /// The public key of an entry.
    #[napi]
    pub fn public_key(&self, name: String) -> Result<Buffer> {
        sync(|| Ok(self.lock()?.public_key(&name)?.into()))
    }

    /// Signs with an ed25519 or ecdsa-p256 entry; the private key never leaves the core.
    #[napi]
    pub fn sign(&self, name: String, message: &[u8]) -> Result<Buffer> {
        sync(|| Ok(self.lock()?.sign(&name, message)?.into()))
    }

    /// Exports an entry's private key. Zero the buffer when done.
    #[napi]
    pub fn export_private_key(&self, name: String) -> Result<Buffer> {
        sync(|| Ok(self.lock()?.export_private_key(&name)?.to_vec().into()))
    }

    /// Removes an entry and persists atomically.
    #[napi]
    pub fn remove(&self, name: String) -> Result<()> {
        sync(|| Ok(self.lock()?.remove(&name)?))
    }

    /// Re-encrypts everything under a new passphrase, off the JavaScript thread.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn change_passphrase(
        &self,
        new_passphrase: &[u8],
        options: Option<KeystoreKdfOptions>,
    ) -> Result<AsyncTask<ChangePassphraseTask>> {
        sync(|| {
            Ok(AsyncTask::new(ChangePassphraseTask {
                keystore: Arc::clone(&self.inner),
                passphrase: Zeroizing::new(new_passphrase.to_vec()),
                params: params(options),
            }))
        })
    }
}

impl Keystore {
    /// The ecdsa-p256 entry `name` as a signer, built in the core (see `Signer.fromKeystore`).
    pub(crate) fn software_signer(&self, name: &str) -> std::result::Result<ztmesh_core::pki::SoftwareSigner, Failure> {
        Ok(self.lock()?.cert_signer(name)?)
    }

    fn lock(&self) -> std::result::Result<MutexGuard<'_, keystore::Keystore>, Failure> {
        lock(&self.inner)
    }
}

fn lock(inner: &Mutex<keystore::Keystore>) -> std::result::Result<MutexGuard<'_, keystore::Keystore>, Failure> {
    inner.lock().map_err(|_| Failure::new("ERR_INTERNAL", "keystore lock poisoned"))
}

/// Creates (`create`) or opens (`open`) a keystore file on the libuv thread pool.
pub struct OpenKeystoreTask {
    path: PathBuf,
    passphrase: Zeroizing<Vec<u8>>,
    create: Option<KdfParams>,
}

#[napi]
impl Task for OpenKeystoreTask {
    type Output = std::result::Result<keystore::Keystore, Failure>;
    type JsValue = Keystore;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| match self.create {
            Some(params) => Ok(keystore::Keystore::create(&self.path, &self.passphrase, params)?),
            None => Ok(keystore::Keystore::open(&self.path, &self.passphrase)?),
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map(|k| Keystore { inner: Arc::new(Mutex::new(k)) }).map_err(|f| f.into_rejection(&env))
    }
}

/// The task behind `changePassphrase`.
pub struct ChangePassphraseTask {
    keystore: Arc<Mutex<keystore::Keystore>>,
    passphrase: Zeroizing<Vec<u8>>,
    params: KdfParams,
}

#[napi]
impl Task for ChangePassphraseTask {
    type Output = std::result::Result<(), Failure>;
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| Ok(lock(&self.keystore)?.change_passphrase(&self.passphrase, self.params)?)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map_err(|f| f.into_rejection(&env))
    }
}

/// Creates a new keystore file (refuses to overwrite one); Argon2id runs off the JS thread.
#[napi(ts_return_type = "Promise<Keystore>")]
pub fn create_keystore(
    path: String,
    passphrase: &[u8],
    options: Option<KeystoreKdfOptions>,
) -> Result<AsyncTask<OpenKeystoreTask>> {
    sync(|| {
        Ok(AsyncTask::new(OpenKeystoreTask {
            path: PathBuf::from(path),
            passphrase: Zeroizing::new(passphrase.to_vec()),
            create: Some(params(options)),
        }))
    })
}

/// Opens an existing keystore file; Argon2id runs off the JS thread.
#[napi(ts_return_type = "Promise<Keystore>")]
pub fn open_keystore(path: String, passphrase: &[u8]) -> Result<AsyncTask<OpenKeystoreTask>> {
    sync(|| {
        Ok(AsyncTask::new(OpenKeystoreTask {
            path: PathBuf::from(path),
            passphrase: Zeroizing::new(passphrase.to_vec()),
            create: None,
        }))
    })
}

fn params(options: Option<KeystoreKdfOptions>) -> KdfParams {
    let defaults = KdfParams::default();
    let Some(o) = options else { return defaults };
    // Range checks are the core's (ERR_KEYSTORE_PARAMS).
    KdfParams {
        memory_kib: o.memory_kib.unwrap_or(defaults.memory_kib),
        iterations: o.iterations.unwrap_or(defaults.iterations),
        parallelism: o.parallelism.unwrap_or(defaults.parallelism),
    }
}

fn entry(info: EntryInfo) -> KeystoreEntry {
    KeystoreEntry {
        name: info.name,
        kind: info.kind.name().to_string(),
        public_key: info.public_key.into(),
        created_at: info.created_at as f64,
    }
}
