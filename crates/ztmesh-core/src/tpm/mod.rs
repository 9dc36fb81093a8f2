//! TPM 2.0 on the device: non-exportable signing keys, secrets sealed to PCR values, and quotes
//! for remote attestation (cargo feature `tpm`; tss-esapi over the system's tpm2-tss).
//!
//! A [`Tpm`] is one connection to one TPM. [`Tpm::create_signing_key`] makes an ECDSA P-256 key
//! that never leaves the TPM and returns it as a [`KeyBlob`] to store in a file;
//! [`Tpm::load_signer`] turns a blob into a [`TpmSigner`], a
//! [`CertSigner`](crate::pki::CertSigner) the PKI and TLS use
//! like a software key. [`Tpm::seal`] binds a secret to the current values of some PCRs and
//! [`Tpm::unseal`] gives it back only while they hold them. [`Tpm::create_attestation_key`]
//! and [`Tpm::quote`] produce quotes that [`attest::verify_quote`](crate::attest::verify_quote)
//! and `tpm2_checkquote` verify.
//!
//! # Which TPM
//!
//! [`Tpm::open`] takes a TCTI configuration in the syntax of tpm2-tools: `device:/dev/tpmrm0`,
//! `tabrmd`, `swtpm:host=127.0.0.1,port=2321`, `mssim:host=…,port=…`. Without one it reads
//! `TPM2TOOLS_TCTI`, then `TCTI`, and falls back to `device:/dev/tpmrm0` (the kernel's resource
//! manager). Opening sends one command, so a TPM that does not answer is
//! [`TpmError::Unavailable`] at once.
//!
//! # Objects
//!
//! | object | type | attributes | parameters |
//! | --- | --- | --- | --- |
//! | storage primary | ECC P-256 | fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, decrypt | AES-128-CFB, no scheme, unique empty |
//! | signing key | ECC P-256 | fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, sign | ECDSA with SHA-256 |
//! | attestation key | ECC P-256 | fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign | ECDSA with SHA-256 |
//! | sealed secret | keyed hash | fixedTPM, fixedParent, noDA; no userWithAuth | authPolicy = PolicyPCR over the chosen SHA-256 PCRs |
//!
//! Every name algorithm is SHA-256. Keys and sealed secrets are children of the storage
//! primary and leave the TPM only as [`KeyBlob`]s and [`SealedBlob`]s.
//!
//! # TPM resources
//!
//! Without a resource manager (a raw `/dev/tpm0`, swtpm) a TPM holds about three transient
//! objects at once, and every process sharing it sees the objects of the others. So a [`Tpm`]
//! leaves nothing loaded between calls:
//!
//! - The storage primary key (ECC P-256 under the owner hierarchy, the template of
//!   `tpm2_createprimary -C o -G ecc256:aes128cfb`) is derived afresh from the hierarchy's seed
//!   by every operation that needs a parent, and flushed when it is done. The template never
//!   changes, so neither does the key; nothing about it is stored.
//! - A [`TpmSigner`] keeps its key as a saved context (`TPM2_ContextSave`, encrypted by the
//!   TPM) and signs with `ContextLoad`, `Sign`, `FlushContext`. The saved context dies with a
//!   TPM reset; the signer then loads the key from its blob again, once, and goes on.
//! - Sessions are flushed as soon as the command they served has run.
//!
//! Measured on swtpm 0.7 on a 2-core VM (one signature, the digest computed in software):
//!
//! | strategy | per signature | objects held between signatures |
//! | --- | --- | --- |
//! | key resident, `Sign` only | 0.95 ms | key (and its parent, to load it) |
//! | saved context: `ContextLoad`, `Sign`, `Flush` (chosen) | 1.3 ms | none |
//! | primary resident: `Load`, `Sign`, `Flush` | 2.3 ms | primary |
//! | `CreatePrimary`, `Load`, `Flush`, `Sign`, `Flush` | 4.0 ms | none |
//!
//! The saved context costs a third more than a resident key and never holds a slot, so any
//! number of signers, a seal and a quote can run side by side on a TPM with three slots.
//!
//! # Concurrency
//!
//! tss-esapi's `Context` is not `Sync`: the [`Tpm`] owns it behind a `Mutex`, and each
//! operation holds the lock from its first command to its last flush. [`TpmSigner`] holds an
//! `Arc<Tpm>` and is `Send + Sync`.
//!
//! # Secrets on the bus
//!
//! A sealed secret travels between the host and the TPM twice. Both times it is encrypted:
//! `TPM2_Create` runs in an HMAC session and `TPM2_Unseal` in a policy session, each salted
//! with the storage primary key (ECDH), with parameter encryption on. Secrets are zeroized in
//! ztmesh's buffers and tss-esapi's; tpm2-tss's own C buffers are beyond reach.
//!
//! Every signature is verified in software before it is returned, so a faulty signature (a
//! fault attack on the TPM, say) is never released.
//!
//! # Authorization
//!
//! The owner hierarchy and every object use empty authorization values (`userWithAuth` with an
//! empty password for keys, PolicyPCR only for sealed secrets). A TPM whose owner password is
//! set is reported as not usable by [`Tpm::info`].

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tss_esapi::abstraction::{ek, AsymmetricAlgorithmSelection};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    AttestInfo, CapabilityData, Data, Digest, DigestValues, EncryptedSecret, IdObject, Nonce, PcrSelectionList,
    PcrSelectionListBuilder, PcrSlot, Private, Public, PublicParameters, SensitiveData, SignatureScheme,
    SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::attest::PcrValues;

mod blob;
mod error;
mod signer;
mod templates;

pub use blob::{KeyBlob, KeyKind, SealedBlob};
pub use error::TpmError;
pub use signer::TpmSigner;

use blob::MAX_PCR;
use error::{from_tss, policy_checked, refused_as};

/// The TCTI used when neither an argument nor the environment names one.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// The largest secret [`Tpm::seal`] accepts (`MAX_SYM_DATA`).
pub const MAX_SEALED_LEN: usize = 128;
/// The longest nonce [`Tpm::quote`] accepts.
pub const MAX_QUOTE_NONCE_LEN: usize = 64;

/// How many times [`Tpm::quote`] reads the PCRs and quotes before giving up on PCRs that keep
/// changing in between.
const QUOTE_ATTEMPTS: usize = 3;
/// The most `TPM2_PCR_Read` calls one read of up to 24 PCRs needs (the TPM returns at least
/// one and at most eight values per call).
const PCR_READS: usize = 24;

/// A connection to a TPM.
pub struct Tpm {
    context: Mutex<Context>,
}

/// What a TPM says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TpmInfo {
    /// The manufacturer's four-character code (`TPM_PT_MANUFACTURER`), such as `IBM` or `IFX`.
    pub manufacturer: String,
    /// The vendor string (`TPM_PT_VENDOR_STRING_1..4`).
    pub vendor: String,
    /// The firmware version, `TPM_PT_FIRMWARE_VERSION_1` in the high 32 bits and `_2` in the
    /// low ones (vendor-specific meaning).
    pub firmware_version: u64,
    /// The TPM family, `2.0`.
    pub family: String,
    /// The specification revision times 100 (`TPM_PT_REVISION`), such as 164 for 1.64.
    pub spec_revision: u32,
    /// Whether ztmesh can use this TPM: the storage hierarchy is enabled, the owner password
    /// is empty, the TPM is not in dictionary-attack lockout, and it supports ECDSA P-256
    /// keys with SHA-256.
    pub usable: bool,
}

/// A quote, in the forms [`attest::verify_quote`](crate::attest::verify_quote) and
/// `tpm2_checkquote` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The marshalled `TPMS_ATTEST` the attestation key signed (`tpm2_quote -m`).
    pub attest: Vec<u8>,
    /// The marshalled `TPMT_SIGNATURE` (`tpm2_quote -s`).
    pub signature: Vec<u8>,
    /// The quoted PCR values in the tpm2-tools PCR file format (`tpm2_quote -o`).
    pub pcr_values: Vec<u8>,
    /// The attestation key's SubjectPublicKeyInfo, PEM.
    pub ak_public_pem: String,
}

impl Tpm {
    /// Connects to the TPM `tcti` names (see the [module documentation](self)), or the one
    /// the environment names, or [`DEFAULT_TCTI`].
    ///
    /// Fails with [`TpmError::Tcti`] for a configuration tpm2-tss does not understand and
    /// [`TpmError::Unavailable`] when no TPM answers.
    pub fn open(tcti: Option<&str>) -> Result<Self, TpmError> {
        let configured = match tcti {
            Some(tcti) => tcti.to_owned(),
            None => ["TPM2TOOLS_TCTI", "TCTI"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
                .unwrap_or_else(|| DEFAULT_TCTI.to_owned()),
        };
        let name = TctiNameConf::from_str(&configured).map_err(|_| TpmError::Tcti)?;
        let context = Context::new(name).map_err(|_| TpmError::Unavailable)?;
        let tpm = Self { context: Mutex::new(context) };
        // Initialising a TCTI does not always talk to the TPM (a device node opens without
        // one): ask it something.
        tpm.lock()
            .get_capability(CapabilityType::TpmProperties, PropertyTag::FamilyIndicator.into(), 1)
            .map_err(|_| TpmError::Unavailable)?;
        Ok(tpm)
    }

    /// The TPM's manufacturer, firmware and family, and whether ztmesh can use it.
    pub fn info(&self) -> Result<TpmInfo, TpmError> {
        let mut ctx = self.lock();
        let fixed = properties(&mut ctx, PropertyTag::FamilyIndicator, 13)?;
        let variable = properties(&mut ctx, PropertyTag::Permanent, 2)?;
        let get = |list: &[(PropertyTag, u32)], tag: PropertyTag| {
            list.iter().find(|(t, _)| *t == tag).map_or(0, |(_, value)| *value)
        };
        let vendor: String = [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ]
        .iter()
        .map(|tag| ascii(get(&fixed, *tag)))
        .collect();
        let permanent = get(&variable, PropertyTag::Permanent);
        let startup_clear = get(&variable, PropertyTag::StartupClear);
        let (owner_auth_set, in_lockout, storage_enabled) =
            (permanent & 1 != 0, permanent & (1 << 9) != 0, startup_clear & (1 << 1) != 0);
        let ecdsa_p256 = match templates::ecdsa_key(false)? {
            Public::Ecc { parameters, .. } => ctx.test_parms(PublicParameters::Ecc(parameters)).is_ok(),
            _ => false,
        };
        Ok(TpmInfo {
            manufacturer: ascii(get(&fixed, PropertyTag::Manufacturer)),
            vendor: vendor.trim().to_owned(),
            firmware_version: u64::from(get(&fixed, PropertyTag::FirmwareVersion1)) << 32
                | u64::from(get(&fixed, PropertyTag::FirmwareVersion2)),
            family: ascii(get(&fixed, PropertyTag::FamilyIndicator)),
            spec_revision: get(&fixed, PropertyTag::Revision),
            usable: storage_enabled && !owner_auth_set && !in_lockout && ecdsa_p256,
        })
    }

    /// Creates a non-exportable ECDSA P-256 signing key under the storage primary key.
    pub fn create_signing_key(&self) -> Result<KeyBlob, TpmError> {
        self.create_key(KeyKind::Signing)
    }

    /// Creates a restricted ECDSA P-256 attestation key under the storage primary key: it
    /// signs quotes, never digests it is handed.
    pub fn create_attestation_key(&self) -> Result<KeyBlob, TpmError> {
        self.create_key(KeyKind::Attestation)
    }

    /// A signer for the signing key in `blob`.
    ///
    /// Fails with [`TpmError::Blob`] for an attestation key and [`TpmError::KeyRejected`] if
    /// this TPM did not make the blob (or it was altered).
    pub fn load_signer(self: &Arc<Self>, blob: &KeyBlob) -> Result<TpmSigner, TpmError> {
        if blob.kind() != KeyKind::Signing {
            return Err(TpmError::Blob);
        }
        TpmSigner::new(Arc::clone(self), blob.clone())
    }

    /// Seals `secret` (1 to 128 bytes) to the current values of the SHA-256 PCRs `pcrs`
    /// (indexes 0 to 23, each once, at least one).
    pub fn seal(&self, secret: &[u8], pcrs: &[u8]) -> Result<SealedBlob, TpmError> {
        if secret.is_empty() || secret.len() > MAX_SEALED_LEN {
            return Err(TpmError::Argument);
        }
        let bitmap = pcr_bitmap(pcrs)?;
        let data = SensitiveData::try_from(secret).map_err(|_| TpmError::Argument)?;
        let mut ctx = self.lock();
        let policy = pcr_policy_digest(&mut ctx, bitmap)?;
        let template = templates::sealed_object(policy)?;
        let created = with_primary(&mut ctx, |ctx, primary| {
            let session = start_session(ctx, primary, SessionType::Hmac)?;
            let created = ctx
                .execute_with_session(Some(session), |c| c.create(primary, template, None, Some(data), None, None))
                .map_err(from_tss);
            flush(ctx, SessionHandle::from(session).into(), created)
        })?;
        Ok(SealedBlob::new(bitmap, created.out_public, created.out_private))
    }

    /// Unseals a secret sealed by this TPM.
    ///
    /// Fails with [`TpmError::Policy`] if one of its PCRs has changed since it was sealed, and
    /// [`TpmError::KeyRejected`] if this TPM did not seal it (or it was altered).
    pub fn unseal(&self, blob: &SealedBlob) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let selection = pcr_selection(blob.pcr_bitmap())?;
        let mut ctx = self.lock();
        let (object, session) = with_primary(&mut ctx, |ctx, primary| {
            let object = load_object(ctx, primary, blob.public(), blob.private())?;
            match start_session(ctx, primary, SessionType::Policy) {
                Ok(session) => Ok((object, session)),
                Err(error) => flush(ctx, object.into(), Err(error)),
            }
        })?;
        let unsealed = (|| {
            let policy = PolicySession::try_from(session).map_err(from_tss)?;
            ctx.policy_pcr(policy, Digest::default(), selection).map_err(policy_checked)?;
            let data = ctx.execute_with_session(Some(session), |c| c.unseal(object.into())).map_err(policy_checked)?;
            Ok(Zeroizing::new(data.value().to_vec()))
        })();
        let unsealed = flush(&mut ctx, object.into(), unsealed);
        flush(&mut ctx, SessionHandle::from(session).into(), unsealed)
    }

    /// Quotes the SHA-256 PCRs `pcrs` (indexes 0 to 23, each once, at least one) with the
    /// attestation key in `ak`, over `nonce` (at most 64 bytes; a verifier requires at least
    /// 16).
    ///
    /// The PCRs are read, then quoted; if the quoted digest is not the digest of the values
    /// read (a PCR was extended in between), both are done again, at most three times, and
    /// then the quote fails with [`TpmError::Internal`].
    pub fn quote(&self, ak: &KeyBlob, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, TpmError> {
        if ak.kind() != KeyKind::Attestation {
            return Err(TpmError::Blob);
        }
        if nonce.len() > MAX_QUOTE_NONCE_LEN {
            return Err(TpmError::Argument);
        }
        let bitmap = pcr_bitmap(pcrs)?;
        let ak_public_pem = ak.ak_public_key().map_err(|_| TpmError::Internal)?.to_pem();
        let mut ctx = self.lock();
        let handle = with_primary(&mut ctx, |ctx, primary| load_object(ctx, primary, ak.public(), ak.private()))?;
        let quoted = (|| {
            for _ in 0..QUOTE_ATTEMPTS {
                let values = read_pcrs(&mut ctx, bitmap)?;
                let qualifying = Data::try_from(nonce).map_err(|_| TpmError::Argument)?;
                let selection = pcr_selection(bitmap)?;
                let (attest, signature) = ctx
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.quote(handle, qualifying, SignatureScheme::Null, selection)
                    })
                    .map_err(from_tss)?;
                let AttestInfo::Quote { info } = attest.attested() else { return Err(TpmError::Internal) };
                if info.pcr_digest().value() != values.quote_digest() {
                    continue;
                }
                return Ok(Quote {
                    attest: attest.marshall().map_err(from_tss)?,
                    signature: signature.marshall().map_err(from_tss)?,
                    pcr_values: values.to_tpm2_tools(),
                    ak_public_pem: ak_public_pem.clone(),
                });
            }
            Err(TpmError::Internal)
        })();
        flush(&mut ctx, handle.into(), quoted)
    }

    /// The endorsement key certificate (DER) its manufacturer stored in the TPM's NV memory,
    /// for the RSA 2048 EK (index `0x01c00002`). Fails with [`TpmError::Command`] when the TPM
    /// holds none.
    pub fn ek_certificate(&self) -> Result<Vec<u8>, TpmError> {
        let mut ctx = self.lock();
        ek::retrieve_ek_pubcert(&mut ctx, AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048)).map_err(from_tss)
    }

    /// The public area (a marshalled `TPMT_PUBLIC`) of the key in `blob`: what a verifier
    /// hashes into the key's name and reads its attributes from.
    pub fn public_area(blob: &KeyBlob) -> Result<Vec<u8>, TpmError> {
        blob.public().marshall().map_err(from_tss)
    }

    /// `TPM2_ActivateCredential`: gives back the secret a verifier encrypted to this TPM's RSA
    /// 2048 endorsement key for the attestation key in `ak` (see
    /// [`attest::make_credential`](crate::attest::make_credential)). Fails with
    /// [`TpmError::Command`] when the credential is for another EK or another key.
    pub fn activate_credential(
        &self,
        ak: &KeyBlob,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        if ak.kind() != KeyKind::Attestation {
            return Err(TpmError::Blob);
        }
        let blob = IdObject::try_from(credential_blob.to_vec()).map_err(|_| TpmError::Argument)?;
        let secret = EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(|_| TpmError::Argument)?;
        let mut ctx = self.lock();
        let handle = with_primary(&mut ctx, |ctx, primary| load_object(ctx, primary, ak.public(), ak.private()))?;
        // (tss-esapi runs it in an HMAC session of its own.)
        let ek_handle = ek::create_ek_object_2(&mut ctx, AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048), None)
            .map_err(from_tss);
        let ek_handle = match ek_handle {
            Ok(ek_handle) => ek_handle,
            Err(error) => return flush(&mut ctx, handle.into(), Err(error)),
        };
        let activated = (|| {
            let session = ctx
                .start_auth_session(
                    None,
                    None,
                    None,
                    SessionType::Policy,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
                .map_err(from_tss)?
                .ok_or(TpmError::Internal)?;
            // The EK's policy: PolicySecret with the endorsement hierarchy's (empty) authorization.
            let result = (|| {
                let policy = PolicySession::try_from(session).map_err(from_tss)?;
                ctx.execute_with_session(Some(AuthSession::Password), |c| {
                    c.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Nonce::default(),
                        Digest::default(),
                        Nonce::default(),
                        None,
                    )
                })
                .map_err(from_tss)?;
                let digest = ctx
                    .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |c| {
                        c.activate_credential(handle, ek_handle, blob, secret)
                    })
                    .map_err(from_tss)?;
                Ok(Zeroizing::new(digest.value().to_vec()))
            })();
            flush(&mut ctx, SessionHandle::from(session).into(), result)
        })();
        let activated = flush(&mut ctx, ek_handle.into(), activated);
        flush(&mut ctx, handle.into(), activated)
    }

    /// `TPM2_Certify`: the attestation key in `ak` certifies, over `nonce` (at most 64 bytes),
    /// that the signing key in `key` lives in this TPM. Returns the marshalled `TPMS_ATTEST`
    /// and `TPMT_SIGNATURE` ([`attest::verify_certify`](crate::attest::verify_certify) checks them).
    pub fn certify(&self, ak: &KeyBlob, key: &KeyBlob, nonce: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        if ak.kind() != KeyKind::Attestation || key.kind() != KeyKind::Signing {
            return Err(TpmError::Blob);
        }
        let qualifying = Data::try_from(nonce).map_err(|_| TpmError::Argument)?;
        let mut ctx = self.lock();
        let (ak_handle, key_handle) = with_primary(&mut ctx, |ctx, primary| {
            let ak_handle = load_object(ctx, primary, ak.public(), ak.private())?;
            match load_object(ctx, primary, key.public(), key.private()) {
                Ok(key_handle) => Ok((ak_handle, key_handle)),
                Err(error) => flush(ctx, ak_handle.into(), Err(error)),
            }
        })?;
        let certified = ctx
            .execute_with_sessions((Some(AuthSession::Password), Some(AuthSession::Password), None), |c| {
                c.certify(key_handle.into(), ak_handle, qualifying, SignatureScheme::Null)
            })
            .map_err(from_tss)
            .and_then(|(attest, signature)| {
                Ok((attest.marshall().map_err(from_tss)?, signature.marshall().map_err(from_tss)?))
            });
        let certified = flush(&mut ctx, key_handle.into(), certified);
        flush(&mut ctx, ak_handle.into(), certified)
    }

    /// The current values of the SHA-256 PCRs `pcrs` (indexes 0 to 23, each once, at least
    /// one): what a verifier's [`PcrPolicy`](crate::attest::PcrPolicy) expects of a known-good
    /// device.
    pub fn read_pcrs(&self, pcrs: &[u8]) -> Result<PcrValues, TpmError> {
        let bitmap = pcr_bitmap(pcrs)?;
        read_pcrs(&mut self.lock(), bitmap)
    }

    /// Extends SHA-256 PCR `index` (0 to 23) with SHA-256 of `data`: records a measurement.
    pub fn pcr_extend(&self, index: u8, data: &[u8]) -> Result<(), TpmError> {
        if index > MAX_PCR {
            return Err(TpmError::Argument);
        }
        let pcr = PcrHandle::try_from(u32::from(index)).map_err(|_| TpmError::Argument)?;
        let mut digests = DigestValues::new();
        digests.set(HashingAlgorithm::Sha256, Digest::try_from(&crate::pki::sha256(data)[..]).map_err(from_tss)?);
        self.lock().execute_with_session(Some(AuthSession::Password), |c| c.pcr_extend(pcr, digests)).map_err(from_tss)
    }

    fn create_key(&self, kind: KeyKind) -> Result<KeyBlob, TpmError> {
        let template = templates::ecdsa_key(kind == KeyKind::Attestation)?;
        let created = with_primary(&mut self.lock(), |ctx, primary| {
            ctx.execute_with_session(Some(AuthSession::Password), |c| {
                c.create(primary, template, None, None, None, None)
            })
            .map_err(from_tss)
        })?;
        KeyBlob::new(kind, created.out_public, created.out_private)
    }

    /// The context, recovered if a panic poisoned the lock: tss-esapi tracks its handles
    /// itself, and a half-finished operation leaves at worst objects that are flushed when the
    /// context is dropped.
    fn lock(&self) -> MutexGuard<'_, Context> {
        self.context.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm").finish_non_exhaustive()
    }
}

/// Creates the storage primary key, runs `f` with it, and flushes it whatever `f` returned.
fn with_primary<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context, KeyHandle) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    let template = templates::storage_primary()?;
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |c| {
            c.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map_err(from_tss)?
        .key_handle;
    let result = f(ctx, primary);
    flush(ctx, primary.into(), result)
}

/// Flushes `handle` and returns `result`; the result's error wins over the flush's.
fn flush<T>(ctx: &mut Context, handle: ObjectHandle, result: Result<T, TpmError>) -> Result<T, TpmError> {
    let flushed = ctx.flush_context(handle).map_err(from_tss);
    let value = result?;
    flushed.map(|()| value)
}

/// Loads an object under `primary`; a TPM refusal is [`TpmError::KeyRejected`].
fn load_object(
    ctx: &mut Context,
    primary: KeyHandle,
    public: &Public,
    private: &Private,
) -> Result<KeyHandle, TpmError> {
    ctx.execute_with_session(Some(AuthSession::Password), |c| c.load(primary, private.clone(), public.clone()))
        .map_err(refused_as(TpmError::KeyRejected))
}

/// Starts a session salted with `primary` (which must stay loaded until it has started):
/// an HMAC session that encrypts the first command parameter, or a policy session that
/// encrypts the first response parameter.
fn start_session(ctx: &mut Context, primary: KeyHandle, kind: SessionType) -> Result<AuthSession, TpmError> {
    let session = ctx
        .start_auth_session(Some(primary), None, None, kind, SymmetricDefinition::AES_128_CFB, HashingAlgorithm::Sha256)
        .map_err(from_tss)?
        .ok_or(TpmError::Internal)?;
    let builder = SessionAttributesBuilder::new().with_continue_session(true);
    let (attributes, mask) = match kind {
        SessionType::Hmac => builder.with_decrypt(true).build(),
        _ => builder.with_encrypt(true).build(),
    };
    let set = ctx.tr_sess_set_attributes(session, attributes, mask).map_err(from_tss);
    match set {
        Ok(()) => Ok(session),
        Err(error) => flush(ctx, SessionHandle::from(session).into(), Err(error)),
    }
}

/// The policy digest of PolicyPCR over the current values of the PCRs in `bitmap`, computed
/// by the TPM in a trial session.
fn pcr_policy_digest(ctx: &mut Context, bitmap: u32) -> Result<Digest, TpmError> {
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .map_err(from_tss)?
        .ok_or(TpmError::Internal)?;
    let digest = (|| {
        let trial = PolicySession::try_from(session).map_err(from_tss)?;
        ctx.policy_pcr(trial, Digest::default(), pcr_selection(bitmap)?).map_err(from_tss)?;
        ctx.policy_get_digest(trial).map_err(from_tss)
    })();
    flush(ctx, SessionHandle::from(session).into(), digest)
}

/// Reads the SHA-256 PCRs in `bitmap`, as many `TPM2_PCR_Read`s as it takes.
fn read_pcrs(ctx: &mut Context, bitmap: u32) -> Result<PcrValues, TpmError> {
    let mut remaining = bitmap;
    let mut values: Vec<(u8, [u8; 32])> = Vec::new();
    for _ in 0..PCR_READS {
        if remaining == 0 {
            break;
        }
        let (_, read, digests) = ctx.pcr_read(pcr_selection(remaining)?).map_err(from_tss)?;
        let indexes: Vec<u8> = read
            .get_selections()
            .iter()
            .filter(|s| s.hashing_algorithm() == HashingAlgorithm::Sha256)
            .flat_map(|s| s.selected())
            .filter_map(|slot| u8::try_from(u32::from(slot).trailing_zeros()).ok())
            .collect();
        if indexes.is_empty() || indexes.len() != digests.len() {
            return Err(TpmError::Internal);
        }
        for (index, digest) in indexes.into_iter().zip(digests.value()) {
            let bit = 1u32 << index;
            let value = <[u8; 32]>::try_from(digest.value()).map_err(|_| TpmError::Internal)?;
            if remaining & bit == 0 {
                return Err(TpmError::Internal);
            }
            remaining &= !bit;
            values.push((index, value));
        }
    }
    if remaining != 0 {
        return Err(TpmError::Internal);
    }
    PcrValues::sha256(&values).map_err(|_| TpmError::Internal)
}

/// The bitmap of PCR indexes `pcrs`: at least one, each at most 23 and named once.
fn pcr_bitmap(pcrs: &[u8]) -> Result<u32, TpmError> {
    let mut bitmap = 0u32;
    for index in pcrs {
        if *index > MAX_PCR || bitmap & (1 << index) != 0 {
            return Err(TpmError::Argument);
        }
        bitmap |= 1 << index;
    }
    if bitmap == 0 {
        return Err(TpmError::Argument);
    }
    Ok(bitmap)
}

/// The SHA-256 bank selection of the PCRs in `bitmap`.
fn pcr_selection(bitmap: u32) -> Result<PcrSelectionList, TpmError> {
    let slots: Vec<PcrSlot> = (0..=MAX_PCR)
        .filter(|i| bitmap & (1 << i) != 0)
        .map(|i| PcrSlot::try_from(1u32 << i).map_err(|_| TpmError::Internal))
        .collect::<Result<_, _>>()?;
    PcrSelectionListBuilder::new().with_selection(HashingAlgorithm::Sha256, &slots).build().map_err(from_tss)
}

/// `count` TPM properties from `first` on.
fn properties(ctx: &mut Context, first: PropertyTag, count: u32) -> Result<Vec<(PropertyTag, u32)>, TpmError> {
    let (data, _) = ctx.get_capability(CapabilityType::TpmProperties, first.into(), count).map_err(from_tss)?;
    match data {
        CapabilityData::TpmProperties(list) => Ok(list.iter().map(|p| (p.property(), p.value())).collect()),
        _ => Err(TpmError::Internal),
    }
}

/// The printable ASCII characters of a property holding four characters.
fn ascii(value: u32) -> String {
    value
        .to_be_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_lists_are_checked() {
        assert_eq!(pcr_bitmap(&[0, 16, 23]), Ok(1 | 1 << 16 | 1 << 23));
        assert_eq!(pcr_bitmap(&[]), Err(TpmError::Argument));
        assert_eq!(pcr_bitmap(&[24]), Err(TpmError::Argument));
        assert_eq!(pcr_bitmap(&[255]), Err(TpmError::Argument));
        assert_eq!(pcr_bitmap(&[3, 3]), Err(TpmError::Argument));
        assert_eq!(ascii(u32::from_be_bytes(*b"IBM\0")), "IBM");
        assert_eq!(ascii(u32::from_be_bytes([b'2', b'.', b'0', 0])), "2.0");
    }

    #[test]
    fn bad_tcti_configurations_are_refused() {
        assert_eq!(Tpm::open(Some("carrier-pigeon:coop=1")).unwrap_err(), TpmError::Tcti);
        assert_eq!(Tpm::open(Some("device:/nonexistent/tpm")).unwrap_err(), TpmError::Unavailable);
    }
}
