//! The TPM 2.0 (cargo feature `tpm`): keys that never leave it, sealed secrets, quotes.
//!
//! The exports are the same with or without the feature, so the generated typings do not depend
//! on how the addon was built: without it, `tpmSupported()` is false and `Tpm.open` throws
//! `ERR_TPM_UNSUPPORTED`. Commands that create objects, seal, unseal or quote take several TPM
//! round trips and run on the libuv thread pool; signing is synchronous, because TLS asks for
//! its signature in the middle of a handshake step.

use napi::bindgen_prelude::{AsyncTask, Buffer, Env, Task};
use napi_derive::napi;

use crate::attest::PcrValue;
use crate::error::{guard, sync, Failure, Result};

#[cfg(feature = "tpm")]
use std::sync::Arc;
#[cfg(feature = "tpm")]
use ztmesh_core::pki::CertSigner;
#[cfg(feature = "tpm")]
use ztmesh_core::tpm;

/// Whether this build of the addon has TPM support (libtss2 was found when it was built).
#[napi]
pub fn tpm_supported() -> bool {
    cfg!(feature = "tpm")
}

/// What a TPM says about itself.
#[napi(object)]
pub struct TpmInfo {
    /// The manufacturer's four-character code, such as `IBM` or `IFX`.
    pub manufacturer: String,
    /// The vendor string.
    pub vendor: String,
    /// The firmware version, as a hex string (vendor-specific meaning).
    pub firmware_version: String,
    /// `2.0`.
    pub family: String,
    /// The specification revision, such as `1.64`.
    pub spec_revision: String,
    /// Whether ztmesh can use it: storage hierarchy on, empty owner password, no lockout,
    /// ECDSA P-256 keys.
    pub usable: bool,
}

/// A quote, in the files `tpm2_quote` writes and `tpm2_checkquote` reads.
#[napi(object)]
pub struct TpmQuote {
    /// The marshalled `TPMS_ATTEST` (`quote.msg`).
    pub attest: Buffer,
    /// The marshalled `TPMT_SIGNATURE` (`quote.sig`).
    pub signature: Buffer,
    /// The quoted PCR values, tpm2-tools format (`pcrs.bin`).
    pub pcr_values: Buffer,
    /// The attestation key's SubjectPublicKeyInfo, PEM (`ak.pub.pem`).
    pub ak_public_pem: String,
}

/// A connection to a TPM. One owner: commands are serialised.
#[napi]
pub struct Tpm {
    #[cfg(feature = "tpm")]
    inner: Arc<tpm::Tpm>,
}

#[napi]
impl Tpm {
    /// Connects to the TPM `tcti` names (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`,
    /// `tabrmd`), else the one `TPM2TOOLS_TCTI` or `TCTI` names, else `/dev/tpmrm0`. Throws
    /// `ERR_TPM_UNAVAILABLE` when none answers, `ERR_TPM_UNSUPPORTED` in a build without TPM
    /// support.
    #[napi(factory)]
    pub fn open(tcti: Option<String>) -> Result<Tpm> {
        sync(|| {
            #[cfg(feature = "tpm")]
            return Ok(Tpm { inner: Arc::new(tpm::Tpm::open(tcti.as_deref())?) });
            #[cfg(not(feature = "tpm"))]
            {
                let _ = tcti;
                Err(unsupported())
            }
        })
    }

    /// Manufacturer, firmware, and whether ztmesh can use this TPM.
    #[napi]
    pub fn info(&self) -> Result<TpmInfo> {
        sync(|| {
            #[cfg(feature = "tpm")]
            {
                let info = self.inner.info()?;
                Ok(TpmInfo {
                    manufacturer: info.manufacturer,
                    vendor: info.vendor,
                    firmware_version: format!("{:x}", info.firmware_version),
                    family: info.family,
                    spec_revision: format!("{}.{:02}", info.spec_revision / 100, info.spec_revision % 100),
                    usable: info.usable,
                })
            }
            #[cfg(not(feature = "tpm"))]
            Err(unsupported())
        })
    }

    /// Creates a non-exportable ECDSA P-256 signing key; resolves with its key blob (to store).
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn create_signing_key(&self) -> AsyncTask<TpmJob> {
        self.job(|_t| {
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Bytes(_t.create_signing_key()?.to_bytes()?));
            #[cfg(not(feature = "tpm"))]
            Err(unsupported())
        })
    }

    /// Creates a restricted ECDSA P-256 attestation key; resolves with its key blob.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn create_attestation_key(&self) -> AsyncTask<TpmJob> {
        self.job(|_t| {
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Bytes(_t.create_attestation_key()?.to_bytes()?));
            #[cfg(not(feature = "tpm"))]
            Err(unsupported())
        })
    }

    /// A signer for a signing-key blob; throws `ERR_TPM_BLOB` for a blob that is not one, and
    /// `ERR_TPM_KEY` when this TPM cannot load it (it was cleared, or the blob is another's).
    #[napi]
    pub fn load_key(&self, blob: &[u8]) -> Result<TpmKey> {
        sync(|| {
            #[cfg(feature = "tpm")]
            {
                let blob = tpm::KeyBlob::from_bytes(blob)?;
                Ok(TpmKey { inner: Arc::new(self.inner.load_signer(&blob)?) })
            }
            #[cfg(not(feature = "tpm"))]
            {
                let _ = blob;
                Err(unsupported())
            }
        })
    }

    /// Seals `secret` (at most 128 bytes) to the current values of the SHA-256 PCRs `pcrs`;
    /// resolves with the sealed blob.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn seal(&self, secret: &[u8], pcrs: Vec<u32>) -> AsyncTask<TpmJob> {
        let secret = zeroize::Zeroizing::new(secret.to_vec());
        self.job(move |_t| {
            let _pcrs = pcr_indexes(&pcrs)?;
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Bytes(_t.seal(&secret, &_pcrs)?.to_bytes()?));
            #[cfg(not(feature = "tpm"))]
            {
                let _ = &secret;
                Err(unsupported())
            }
        })
    }

    /// Unseals a sealed blob; rejects with `ERR_TPM_POLICY` when the PCRs no longer hold the
    /// values it was sealed to.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn unseal(&self, blob: &[u8]) -> AsyncTask<TpmJob> {
        let blob = blob.to_vec();
        self.job(move |_t| {
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Secret(_t.unseal(&tpm::SealedBlob::from_bytes(&blob)?)?));
            #[cfg(not(feature = "tpm"))]
            {
                let _ = &blob;
                Err(unsupported())
            }
        })
    }

    /// Quotes the SHA-256 PCRs `pcrs` with the attestation key `akBlob` over `nonce`.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn quote(&self, ak_blob: &[u8], nonce: &[u8], pcrs: Vec<u32>) -> AsyncTask<TpmJob> {
        let (ak_blob, nonce) = (ak_blob.to_vec(), nonce.to_vec());
        self.job(move |_t| {
            let _pcrs = pcr_indexes(&pcrs)?;
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Quote(_t.quote(&tpm::KeyBlob::from_bytes(&ak_blob)?, &nonce, &_pcrs)?));
            #[cfg(not(feature = "tpm"))]
            {
                let _ = (&ak_blob, &nonce);
                Err(unsupported())
            }
        })
    }

    /// The endorsement key certificate (DER) stored in the TPM for its RSA 2048 EK;
    /// `ERR_TPM_COMMAND` when it holds none.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn ek_certificate(&self) -> AsyncTask<TpmJob> {
        self.job(move |_t| {
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Bytes(_t.ek_certificate()?));
            #[cfg(not(feature = "tpm"))]
            Err(unsupported())
        })
    }

    /// The public area (marshalled `TPMT_PUBLIC`) of the key in `blob`.
    #[napi]
    pub fn public_area(&self, blob: &[u8]) -> Result<Buffer> {
        sync(|| {
            #[cfg(feature = "tpm")]
            return Ok(tpm::Tpm::public_area(&tpm::KeyBlob::from_bytes(blob)?)?.into());
            #[cfg(not(feature = "tpm"))]
            {
                let _ = blob;
                Err(unsupported())
            }
        })
    }

    /// `TPM2_ActivateCredential` with the attestation key `akBlob` and the RSA 2048 EK: the
    /// secret of a CA's credential challenge.
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn activate_credential(
        &self,
        ak_blob: &[u8],
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> AsyncTask<TpmJob> {
        let (ak_blob, credential_blob, encrypted_secret) =
            (ak_blob.to_vec(), credential_blob.to_vec(), encrypted_secret.to_vec());
        self.job(move |_t| {
            #[cfg(feature = "tpm")]
            return Ok(JobOutput::Secret(_t.activate_credential(
                &tpm::KeyBlob::from_bytes(&ak_blob)?,
                &credential_blob,
                &encrypted_secret,
            )?));
            #[cfg(not(feature = "tpm"))]
            {
                let _ = (&ak_blob, &credential_blob, &encrypted_secret);
                Err(unsupported())
            }
        })
    }

    /// `TPM2_Certify`: the attestation key `akBlob` certifies, over `nonce`, that the signing key
    /// `keyBlob` lives in this TPM; resolves with `{ attest, signature }` in `quote` (its
    /// `pcrValues` empty, `akPublicPem` the AK's).
    #[napi(ts_return_type = "Promise<TpmJobResult>")]
    pub fn certify(&self, ak_blob: &[u8], key_blob: &[u8], nonce: &[u8]) -> AsyncTask<TpmJob> {
        let (ak_blob, key_blob, nonce) = (ak_blob.to_vec(), key_blob.to_vec(), nonce.to_vec());
        self.job(move |_t| {
            #[cfg(feature = "tpm")]
            {
                let ak = tpm::KeyBlob::from_bytes(&ak_blob)?;
                let (attest, signature) = _t.certify(&ak, &tpm::KeyBlob::from_bytes(&key_blob)?, &nonce)?;
                let ak_public_pem = ak.ak_public_key()?.to_pem();
                return Ok(JobOutput::Quote(tpm::Quote { attest, signature, pcr_values: Vec::new(), ak_public_pem }));
            }
            #[cfg(not(feature = "tpm"))]
            {
                let _ = (&ak_blob, &key_blob, &nonce);
                Err(unsupported())
            }
        })
    }

    /// The current values of the SHA-256 PCRs `pcrs`.
    #[napi]
    pub fn read_pcrs(&self, pcrs: Vec<u32>) -> Result<Vec<PcrValue>> {
        sync(|| {
            let _pcrs = pcr_indexes(&pcrs)?;
            #[cfg(feature = "tpm")]
            return Ok(self.inner.read_pcrs(&_pcrs)?.values().iter().map(crate::attest::pcr_value).collect());
            #[cfg(not(feature = "tpm"))]
            Err(unsupported())
        })
    }

    /// Extends SHA-256 PCR `index` with the SHA-256 digest of `data` (what a boot stage does).
    #[napi]
    pub fn pcr_extend(&self, index: u32, data: &[u8]) -> Result<()> {
        sync(|| {
            let _index = u8::try_from(index).map_err(|_| crate::error::invalid_argument("PCR index out of range"))?;
            #[cfg(feature = "tpm")]
            return Ok(self.inner.pcr_extend(_index, data)?);
            #[cfg(not(feature = "tpm"))]
            {
                let _ = data;
                Err(unsupported())
            }
        })
    }
}

impl Tpm {
    fn job(
        &self,
        run: impl FnOnce(&TpmHandle) -> std::result::Result<JobOutput, Failure> + Send + 'static,
    ) -> AsyncTask<TpmJob> {
        #[cfg(feature = "tpm")]
        let tpm = Arc::clone(&self.inner);
        #[cfg(not(feature = "tpm"))]
        let tpm = ();
        AsyncTask::new(TpmJob { run: Some(Box::new(move || run(&tpm))) })
    }
}

#[cfg(feature = "tpm")]
type TpmHandle = Arc<tpm::Tpm>;
#[cfg(not(feature = "tpm"))]
type TpmHandle = ();

/// A key that lives in the TPM: ECDSA P-256, used wherever a device key is (CSRs, TLS, Noise
/// identity signatures).
#[napi]
pub struct TpmKey {
    #[cfg(feature = "tpm")]
    pub(crate) inner: Arc<tpm::TpmSigner>,
}

#[napi]
impl TpmKey {
    /// The public key: a 65-byte uncompressed P-256 point.
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        #[cfg(feature = "tpm")]
        return self.inner.public_key().to_vec().into();
        #[cfg(not(feature = "tpm"))]
        Vec::new().into()
    }

    /// Signs `message` (ECDSA P-256, SHA-256); returns a DER signature. Throws `ERR_TPM_*` when
    /// the TPM fails or is gone.
    #[napi]
    pub fn sign(&self, message: &[u8]) -> Result<Buffer> {
        sync(|| {
            #[cfg(feature = "tpm")]
            return Ok(self.inner.try_sign(message)?.into());
            #[cfg(not(feature = "tpm"))]
            {
                let _ = message;
                Err(unsupported())
            }
        })
    }

    /// A CSR (PEM) for `deviceId` in `tenant`, signed by this key.
    #[napi]
    pub fn build_csr(&self, device_id: String, tenant: String) -> Result<String> {
        sync(|| {
            #[cfg(feature = "tpm")]
            return Ok(ztmesh_core::pki::build_csr(self.inner.as_ref(), &device_id, &tenant)?.pem);
            #[cfg(not(feature = "tpm"))]
            {
                let _ = (device_id, tenant);
                Err(unsupported())
            }
        })
    }
}

impl TpmKey {
    /// The key as the signer TLS and the PKI sign through.
    pub(crate) fn cert_signer(
        &self,
    ) -> std::result::Result<Box<dyn ztmesh_core::pki::CertSigner + Send + Sync>, Failure> {
        #[cfg(feature = "tpm")]
        return Ok(Box::new(SharedSigner(Arc::clone(&self.inner))));
        #[cfg(not(feature = "tpm"))]
        Err(unsupported())
    }
}

/// A TPM signer shared between its JavaScript object and the contexts that use it.
#[cfg(feature = "tpm")]
struct SharedSigner(Arc<tpm::TpmSigner>);

#[cfg(feature = "tpm")]
impl CertSigner for SharedSigner {
    fn public_key(&self) -> &[u8] {
        self.0.public_key()
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, ztmesh_core::pki::PkiError> {
        self.0.sign(message)
    }
}

/// What a TPM job resolves with.
pub enum JobOutput {
    Bytes(Vec<u8>),
    #[cfg(feature = "tpm")]
    Secret(zeroize::Zeroizing<Vec<u8>>),
    #[cfg(feature = "tpm")]
    Quote(tpm::Quote),
}

/// A TPM command sequence on the libuv thread pool.
pub struct TpmJob {
    #[allow(clippy::type_complexity)]
    run: Option<Box<dyn FnOnce() -> std::result::Result<JobOutput, Failure> + Send>>,
}

/// The JavaScript value of a job: `bytes` (a blob or an unsealed secret) or a `quote`.
#[napi(object)]
pub struct TpmJobResult {
    pub bytes: Option<Buffer>,
    pub quote: Option<TpmQuote>,
}

impl Task for TpmJob {
    type Output = std::result::Result<JobOutput, Failure>;
    type JsValue = TpmJobResult;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let run = self.run.take();
        Ok(guard(|| run.ok_or_else(|| Failure::new("ERR_INTERNAL", "TPM job run twice"))?()))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output.map_err(|f| f.into_rejection(&env))? {
            JobOutput::Bytes(bytes) => Ok(TpmJobResult { bytes: Some(bytes.into()), quote: None }),
            #[cfg(feature = "tpm")]
            JobOutput::Secret(secret) => Ok(TpmJobResult { bytes: Some(secret.to_vec().into()), quote: None }),
            #[cfg(feature = "tpm")]
            JobOutput::Quote(quote) => Ok(TpmJobResult {
                bytes: None,
                quote: Some(TpmQuote {
                    attest: quote.attest.into(),
                    signature: quote.signature.into(),
                    pcr_values: quote.pcr_values.into(),
                    ak_public_pem: quote.ak_public_pem,
                }),
            }),
        }
    }
}

fn pcr_indexes(pcrs: &[u32]) -> std::result::Result<Vec<u8>, Failure> {
    pcrs.iter()
        .map(|&i| u8::try_from(i).map_err(|_| crate::error::invalid_argument("PCR index out of range")))
        .collect()
}

#[cfg(not(feature = "tpm"))]
fn unsupported() -> Failure {
    Failure::new(
        "ERR_TPM_UNSUPPORTED",
        "this build of ztmesh has no TPM support (libtss2 was not found when it was built)",
    )
}
