//! The local CA, CSRs, CRLs, revocation records and the one peer verification.
//!
//! Private keys cross as PKCS#8 DER buffers (the TypeScript layer zero-fills its copies) and
//! live on the Rust side inside `CertificateAuthority`. Times cross as milliseconds since the
//! epoch, durations as seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use ztmesh_core::pki::{
    self, CaParams, CertificateRequest, CrlEntry, CrlParams, DeviceCertRequest, PeerPolicy, RecordEntry, RequiredUsage,
    RevocationReason, SoftwareSigner, VerifiedCrl, VerifiedRecord,
};

use crate::error::{invalid_argument, sync, Failure, Result};

/// A new CA: certificate and private key.
#[napi(object)]
pub struct CaMaterial {
    /// The CA certificate, PEM.
    pub certificate_pem: String,
    /// The CA's ECDSA P-256 private key, PKCS#8 DER. Store it encrypted and zero-fill this buffer.
    pub private_key: Buffer,
}

/// The name and lifetime of a new CA.
#[napi(object)]
pub struct CaInit {
    /// The CA's common name.
    pub common_name: String,
    /// The organisation (O); device certificates carry it too.
    pub organisation: String,
    /// Validity in seconds (default: 10 years for a root, 3 for a site CA).
    pub validity_seconds: Option<f64>,
    /// Issuance time in ms since the epoch (default: now).
    pub now_ms: Option<f64>,
    /// Site CAs: the tenants it may issue for, written as name constraints that `verifyPeer`
    /// enforces (`ERR_NAME_CONSTRAINT`). Absent or empty: unconstrained. Ignored for a root.
    pub tenants: Option<Vec<String>>,
}

/// What a device certificate says beyond its key: decided by CA policy, never by the CSR.
#[napi(object)]
pub struct DeviceCertInit {
    /// The device id (CN).
    pub device_id: String,
    /// The tenant (OU).
    pub tenant: String,
    /// Roles, carried as `urn:ztmesh:role:<role>` SAN URIs.
    pub roles: Option<Vec<String>>,
    /// Validity in seconds (default 90 days).
    pub validity_seconds: Option<f64>,
    /// How far notBefore lies before now, in seconds (default 300).
    pub backdate_seconds: Option<f64>,
    /// Issuance time in ms since the epoch (default: now).
    pub now_ms: Option<f64>,
}

/// A certificate issued to a device.
#[napi(object)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub pem: String,
    /// The serial, lowercase hex without leading zeros.
    pub serial: String,
    /// SHA-256 of the SubjectPublicKeyInfo, lowercase hex.
    pub spki_sha256: String,
    /// Start of validity, ms since the epoch.
    pub not_before_ms: f64,
    /// End of validity, ms since the epoch.
    pub not_after_ms: f64,
}

/// One revoked certificate, for a CRL or a revocation record.
#[napi(object)]
pub struct RevokedEntry {
    /// The serial, as users type it (optional `0x`, any case, leading zeros; `ERR_SERIAL`
    /// otherwise, as `ztmesh_core::ids::parse_serial` decides).
    pub serial: String,
    /// SHA-256 of its SubjectPublicKeyInfo, hex (revocation records only; ignored by CRLs).
    pub spki_sha256: Option<String>,
    /// When it was revoked, ms since the epoch.
    pub revoked_at_ms: f64,
    /// RFC 5280 reason code (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation, ...).
    pub reason: u32,
}

/// A signed CRL.
#[napi(object)]
pub struct SignedCrl {
    /// DER.
    pub der: Buffer,
    /// PEM (`X509 CRL`).
    pub pem: String,
}

/// A CA certificate together with its signing key, ready to issue.
#[napi]
pub struct CertificateAuthority {
    inner: pki::CertificateAuthority,
}

#[napi]
impl CertificateAuthority {
    /// Creates a self-signed root CA with a fresh P-256 key.
    #[napi]
    pub fn create_root(init: CaInit) -> Result<CaMaterial> {
        sync(|| {
            let params = ca_params(init, CaParams::root)?;
            material(pki::CertificateAuthority::create_root(&params)?)
        })
    }

    /// Loads a CA from its certificate (PEM) and PKCS#8 private key.
    #[napi(factory)]
    pub fn load(certificate_pem: String, private_key: &[u8]) -> Result<CertificateAuthority> {
        sync(|| {
            let der = pki::pem::decode_one(&certificate_pem, "CERTIFICATE")?;
            Ok(CertificateAuthority { inner: pki::CertificateAuthority::load(&der, private_key)? })
        })
    }

    /// The CA certificate, PEM.
    #[napi(getter)]
    pub fn certificate_pem(&self) -> String {
        self.inner.certificate_pem()
    }

    /// SHA-256 of the CA's SubjectPublicKeyInfo, hex: the issuer key id of its CRLs and records.
    #[napi(getter)]
    pub fn key_id(&self) -> String {
        hex(&self.inner.key_id())
    }

    /// Whether this CA's name constraints (if any) let it issue for `tenant`.
    #[napi]
    pub fn permits_tenant(&self, tenant: String) -> bool {
        self.inner.permits_tenant(&tenant)
    }

    /// Signs a site CA (CA:true, pathLen 0) with a fresh key. Only a root may do this.
    #[napi]
    pub fn create_site_ca(&self, init: CaInit) -> Result<CaMaterial> {
        sync(|| {
            let params = ca_params(init, CaParams::site)?;
            material(self.inner.create_site_ca(&params)?)
        })
    }

    /// Issues a device certificate from a CSR (PEM). Only the CSR's key is used; every field
    /// of the certificate comes from `init` and CA policy.
    #[napi]
    pub fn issue(&self, csr_pem: String, init: DeviceCertInit) -> Result<IssuedCertificate> {
        sync(|| {
            let csr = CertificateRequest::from_pem(&csr_pem)?;
            let mut request = DeviceCertRequest::new(init.device_id, init.tenant);
            request.roles = init.roles.unwrap_or_default();
            if let Some(seconds) = init.validity_seconds {
                request.validity = seconds_arg("validitySeconds", seconds)?;
            }
            if let Some(seconds) = init.backdate_seconds {
                request.backdate = seconds_arg("backdateSeconds", seconds)?;
            }
            if let Some(ms) = init.now_ms {
                request.now = time_arg("nowMs", ms)?;
            }
            let issued = self.inner.issue(&csr, &request)?;
            Ok(IssuedCertificate {
                pem: issued.pem,
                serial: issued.serial,
                spki_sha256: hex(&issued.spki_sha256),
                not_before_ms: millis(issued.not_before),
                not_after_ms: millis(issued.not_after),
            })
        })
    }

    /// Signs a v2 CRL numbered `crlNumber` listing `entries`.
    #[napi]
    pub fn issue_crl(
        &self,
        crl_number: f64,
        entries: Vec<RevokedEntry>,
        this_update_ms: f64,
        next_update_ms: f64,
    ) -> Result<SignedCrl> {
        sync(|| {
            let mut params =
                CrlParams::new(counter_arg("crlNumber", crl_number)?, time_arg("thisUpdateMs", this_update_ms)?);
            params.next_update = time_arg("nextUpdateMs", next_update_ms)?;
            params.entries = entries
                .iter()
                .map(|e| {
                    Ok(CrlEntry {
                        serial: ztmesh_core::ids::parse_serial(&e.serial)?,
                        revoked_at: time_arg("revokedAtMs", e.revoked_at_ms)?,
                        reason: reason_arg(e.reason)?,
                    })
                })
                .collect::<std::result::Result<_, Failure>>()?;
            let crl = self.inner.issue_crl(&params)?;
            Ok(SignedCrl { der: crl.der.into(), pem: crl.pem })
        })
    }

    /// Signs an incremental revocation record (for gossip) numbered `recordNumber`.
    #[napi]
    pub fn sign_revocation_record(
        &self,
        record_number: f64,
        timestamp_ms: f64,
        entries: Vec<RevokedEntry>,
    ) -> Result<Buffer> {
        sync(|| {
            let entries = entries
                .iter()
                .map(|e| {
                    let spki = e
                        .spki_sha256
                        .as_deref()
                        .ok_or_else(|| invalid_argument("spkiSha256 is required in a revocation record"))?;
                    Ok(RecordEntry {
                        serial: ztmesh_core::ids::parse_serial(&e.serial)?,
                        spki_sha256: hex_arg("spkiSha256", spki)?
                            .try_into()
                            .map_err(|_| invalid_argument("spkiSha256 must be 32 bytes"))?,
                        reason: reason_arg(e.reason)?,
                        revoked_at: time_arg("revokedAtMs", e.revoked_at_ms)?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, Failure>>()?;
            let record = self.inner.sign_revocation_record(
                counter_arg("recordNumber", record_number)?,
                time_arg("timestampMs", timestamp_ms)?,
                &entries,
            )?;
            Ok(record.into())
        })
    }
}

/// What a CSR asks for; only its key is ever used.
#[napi(object)]
pub struct CsrInfo {
    /// SHA-256 of the requested SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
    /// The CN the requester asked for, if any (informational only).
    pub requested_common_name: Option<String>,
    /// The OU the requester asked for, if any (informational only).
    pub requested_org_unit: Option<String>,
}

/// Parses a CSR (PEM) and checks its signature; throws `ERR_CSR…` codes otherwise.
#[napi]
pub fn parse_csr(csr_pem: String) -> Result<CsrInfo> {
    sync(|| {
        let csr = CertificateRequest::from_pem(&csr_pem)?;
        Ok(CsrInfo {
            spki_sha256: hex(&csr.spki_sha256()),
            requested_common_name: csr.requested_common_name().map(str::to_owned),
            requested_org_unit: csr.requested_org_unit().map(str::to_owned),
        })
    })
}

/// Whether `signature` (DER ECDSA P-256) over `message` was made with the key of the first
/// certificate in `chainPem`: proof that the certificate's holder signed. Throws
/// `ERR_CERT_MALFORMED` if that certificate does not parse or has no P-256 key.
#[napi]
pub fn verify_certificate_signature(chain_pem: String, message: &[u8], signature: &[u8]) -> Result<bool> {
    sync(|| {
        let chain = pki::pem::parse_certificates(&chain_pem)?;
        let leaf = chain.first().ok_or_else(|| Failure::new("ERR_CERT_MALFORMED", "no certificate"))?;
        Ok(pki::verify_certificate_signature(leaf, message, signature)?)
    })
}

/// Builds a CSR (PEM) for a device from its P-256 PKCS#8 private key.
#[napi]
pub fn build_csr(private_key: &[u8], device_id: String, tenant: String) -> Result<String> {
    sync(|| {
        let signer = SoftwareSigner::from_pkcs8(private_key)?;
        Ok(pki::build_csr(&signer, &device_id, &tenant)?.pem)
    })
}

/// Generates a fresh ECDSA P-256 key and returns it as PKCS#8 DER.
#[napi]
pub fn generate_p256_key() -> Result<Buffer> {
    sync(|| Ok(SoftwareSigner::generate()?.to_pkcs8().to_vec().into()))
}

/// The trust anchors: one root, or two during a CA rollover.
#[napi]
pub struct TrustStore {
    pub(crate) inner: pki::TrustStore,
}

#[napi]
impl TrustStore {
    /// Loads the roots from a PEM bundle.
    #[napi(factory)]
    pub fn from_pem(bundle: String) -> Result<TrustStore> {
        sync(|| Ok(TrustStore { inner: pki::TrustStore::from_pem(&bundle)? }))
    }

    /// How many roots it holds.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }
}

/// How a revocation set treats CRLs past their `nextUpdate`.
#[napi(object)]
pub struct RevocationSetInit {
    /// How long past `nextUpdate` a CRL is still fresh, in seconds (default 86400, one day).
    pub grace_seconds: Option<f64>,
    /// Use stale revocation data instead of refusing (default false: verification fails with
    /// `ERR_REVOCATION_STALE`). Every use is counted in `staleUses`; audit the choice.
    pub fail_open: Option<bool>,
}

/// Revoked serials and keys, merged from verified CRLs and revocation records, kept per issuing
/// CA, with the freshness rule for CRLs.
#[napi]
pub struct RevocationSet {
    pub(crate) inner: pki::RevocationSet,
}

#[napi]
impl RevocationSet {
    /// An empty set (fails closed on stale CRLs after one day of grace, unless `init` says
    /// otherwise).
    #[napi(constructor)]
    pub fn new(init: Option<RevocationSetInit>) -> Result<Self> {
        sync(|| {
            let mut freshness = pki::Freshness::default();
            if let Some(init) = init {
                if let Some(seconds) = init.grace_seconds {
                    freshness.grace = seconds_arg("graceSeconds", seconds)?;
                }
                if init.fail_open == Some(true) {
                    freshness.on_stale = pki::StalePolicy::FailOpen;
                }
            }
            Ok(RevocationSet { inner: pki::RevocationSet::with_freshness(freshness) })
        })
    }

    /// Adds a CRL (PEM or DER) after verifying it against its issuer, the CA chain `issuerChainPem`
    /// (site CA, or the root itself) that must lead to `trust`. Returns whether it was newer
    /// than what the set had (`false` for the same CRL again). Throws `ERR_REVOCATION_ROLLBACK`
    /// for an older CRL and `ERR_REVOCATION_STALE` for one past `nextUpdate` plus the grace
    /// period (unless the set fails open).
    #[napi]
    pub fn add_crl(
        &mut self,
        crl: &[u8],
        issuer_chain_pem: String,
        trust: &TrustStore,
        now_ms: Option<f64>,
    ) -> Result<bool> {
        sync(|| {
            let issuer = trusted_issuer(&issuer_chain_pem, trust, now_ms)?;
            let verified = match std::str::from_utf8(crl) {
                Ok(text) if text.contains("-----BEGIN") => VerifiedCrl::from_pem(text, &issuer)?,
                _ => VerifiedCrl::from_der(crl, &issuer)?,
            };
            let now = now_ms.map_or(Ok(SystemTime::now()), |ms| time_arg("nowMs", ms))?;
            Ok(matches!(self.inner.add_crl(&verified, now)?, pki::Applied::New))
        })
    }

    /// Adds a signed revocation record after verifying it against its issuer. Returns whether
    /// it was newer than what the set had.
    #[napi]
    pub fn add_record(
        &mut self,
        record: &[u8],
        issuer_chain_pem: String,
        trust: &TrustStore,
        now_ms: Option<f64>,
    ) -> Result<bool> {
        sync(|| {
            let issuer = trusted_issuer(&issuer_chain_pem, trust, now_ms)?;
            let verified = VerifiedRecord::from_bytes(record, &issuer)?;
            Ok(matches!(self.inner.add_record(&verified)?, pki::Applied::New))
        })
    }

    /// Whether the CA with key id `issuerKeyId` (SHA-256 of its SPKI, hex) revoked its
    /// certificate with this serial (as users type it; `ERR_SERIAL` otherwise) or this key (SPKI
    /// SHA-256, hex). Other issuers' data never counts.
    #[napi]
    pub fn is_revoked(&self, serial: String, spki_sha256: String, issuer_key_id: String) -> Result<bool> {
        sync(|| {
            let spki = digest_arg("spkiSha256", &spki_sha256)?;
            let issuer = digest_arg("issuerKeyId", &issuer_key_id)?;
            Ok(self.inner.is_revoked(&issuer, &ztmesh_core::ids::parse_serial(&serial)?, &spki))
        })
    }

    /// How many times stale revocation data was used because the set fails open.
    #[napi(getter)]
    pub fn stale_uses(&self) -> f64 {
        self.inner.stale_uses() as f64
    }

    /// The last CRL and record numbers applied per issuer, to save (atomically) and restore
    /// after a restart with `restoreProgress`.
    #[napi]
    pub fn progress(&self) -> Buffer {
        self.inner.progress().into()
    }

    /// Raises the set's progress to saved `progress`: older CRLs and records are refused from
    /// then on (`ERR_REVOCATION_ROLLBACK`). Throws `ERR_REVOCATION_MALFORMED` for bytes that are
    /// not saved progress.
    #[napi]
    pub fn restore_progress(&mut self, progress: &[u8]) -> Result<()> {
        sync(|| Ok(self.inner.restore_progress(progress)?))
    }
}

/// A SHA-256 digest given in hex.
fn digest_arg(name: &str, value: &str) -> std::result::Result<[u8; 32], Failure> {
    hex_arg(name, value)?.try_into().map_err(|_| invalid_argument(&format!("{name} must be 32 bytes")))
}

/// What the caller expects of a peer beyond a valid chain.
#[napi(object)]
pub struct PeerPolicyInit {
    /// The device id the peer must have.
    pub expected_device: Option<String>,
    /// The tenant the peer must belong to.
    pub expected_tenant: Option<String>,
    /// `'client'`, `'server'` or `'any'` (default).
    pub usage: Option<String>,
    /// Accepted SPKI SHA-256 hashes (hex), if pinning.
    pub pins: Option<Vec<String>>,
    /// Clock skew tolerated, in seconds (default 300).
    pub clock_skew_seconds: Option<f64>,
    /// The time to verify at, ms since the epoch (default: now).
    pub now_ms: Option<f64>,
}

/// Who a verified peer is.
#[napi(object)]
pub struct PeerIdentity {
    /// The device id.
    pub device_id: String,
    /// The tenant.
    pub tenant: String,
    /// Roles from the certificate.
    pub roles: Vec<String>,
    /// The leaf serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
    /// SHA-256 of the issuing CA's SubjectPublicKeyInfo, hex: whose revocations apply to it.
    pub issuer_key_id: String,
    /// When the leaf expires, ms since the epoch.
    pub not_after_ms: f64,
}

/// Verifies a peer's certificate chain (PEM, leaf first) against the trust anchors, the
/// revocations and the policy. Throws `ERR_CERT_EXPIRED`, `ERR_CERT_NOT_YET_VALID`,
/// `ERR_CERT_REVOKED`, `ERR_REVOCATION_STALE`, `ERR_CHAIN`, `ERR_NAME_CONSTRAINT`,
/// `ERR_TENANT_MISMATCH`, `ERR_DEVICE_MISMATCH`, `ERR_KEY_USAGE`, `ERR_PIN` or
/// `ERR_CERT_MALFORMED`.
#[napi]
pub fn verify_peer(
    chain_pem: String,
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: PeerPolicyInit,
) -> Result<PeerIdentity> {
    sync(|| {
        let chain = pki::pem::parse_certificates(&chain_pem)?;
        let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        let (rules, now) = peer_policy(policy)?;
        Ok(peer_identity(pki::verify_peer(&chain, &trust.inner, &revocations.inner, &rules, now)?))
    })
}

/// The core's policy and the time to verify at, from their JavaScript form.
pub(crate) fn peer_policy(policy: PeerPolicyInit) -> std::result::Result<(PeerPolicy, SystemTime), Failure> {
    let mut rules = PeerPolicy {
        expected_device: policy.expected_device,
        expected_tenant: policy.expected_tenant,
        ..PeerPolicy::default()
    };
    rules.required_usage = match policy.usage.as_deref() {
        None | Some("any") => RequiredUsage::Any,
        Some("client") => RequiredUsage::ClientAuth,
        Some("server") => RequiredUsage::ServerAuth,
        Some(_) => return Err(invalid_argument("usage must be 'client', 'server' or 'any'")),
    };
    if let Some(pins) = policy.pins {
        rules.pins = Some(pins_arg(&pins)?);
    }
    if let Some(seconds) = policy.clock_skew_seconds {
        rules.clock_skew = seconds_arg("clockSkewSeconds", seconds)?;
    }
    let now = policy.now_ms.map_or(Ok(SystemTime::now()), |ms| time_arg("nowMs", ms))?;
    Ok((rules, now))
}

/// The JavaScript form of a verified peer.
pub(crate) fn peer_identity(peer: pki::PeerIdentity) -> PeerIdentity {
    PeerIdentity {
        device_id: peer.device_id,
        tenant: peer.tenant,
        roles: peer.roles,
        serial: peer.serial,
        spki_sha256: hex(&peer.spki_sha256),
        issuer_key_id: hex(&peer.issuer_key_id),
        not_after_ms: millis(peer.not_after),
    }
}

/// Pins: SPKI SHA-256 hashes in hex.
pub(crate) fn pins_arg(pins: &[String]) -> std::result::Result<Vec<[u8; 32]>, Failure> {
    pins.iter()
        .map(|p| hex_arg("pin", p)?.try_into().map_err(|_| invalid_argument("a pin must be a 32-byte SHA-256 in hex")))
        .collect()
}

fn trusted_issuer(
    chain_pem: &str,
    trust: &TrustStore,
    now_ms: Option<f64>,
) -> std::result::Result<pki::TrustedIssuer, Failure> {
    let chain = pki::pem::parse_certificates(chain_pem)?;
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let now = now_ms.map_or(Ok(SystemTime::now()), |ms| time_arg("nowMs", ms))?;
    Ok(trust.inner.issuer(&chain, now)?)
}

fn ca_params(init: CaInit, defaults: fn(String, String) -> CaParams) -> std::result::Result<CaParams, Failure> {
    let mut params = defaults(init.common_name, init.organisation);
    if let Some(seconds) = init.validity_seconds {
        params.validity = seconds_arg("validitySeconds", seconds)?;
    }
    if let Some(ms) = init.now_ms {
        params.now = time_arg("nowMs", ms)?;
    }
    params.tenants = init.tenants.unwrap_or_default();
    Ok(params)
}

fn material(material: pki::CaMaterial) -> std::result::Result<CaMaterial, Failure> {
    Ok(CaMaterial {
        certificate_pem: material.certificate_pem.clone(),
        private_key: material.private_key_pkcs8.to_vec().into(),
    })
}

fn seconds_arg(name: &str, seconds: f64) -> std::result::Result<Duration, Failure> {
    if !seconds.is_finite() || !(0.0..=1e11).contains(&seconds) {
        return Err(invalid_argument(&format!("{name} must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub(crate) fn time_arg(name: &str, ms: f64) -> std::result::Result<SystemTime, Failure> {
    if !ms.is_finite() || !(0.0..=1e14).contains(&ms) {
        return Err(invalid_argument(&format!("{name} must be milliseconds since 1970")));
    }
    Ok(UNIX_EPOCH + Duration::from_millis(ms as u64))
}

pub(crate) fn counter_arg(name: &str, value: f64) -> std::result::Result<u64, Failure> {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 || value > 9_007_199_254_740_991.0 {
        return Err(invalid_argument(&format!("{name} must be a non-negative safe integer")));
    }
    Ok(value as u64)
}

fn reason_arg(code: u32) -> std::result::Result<RevocationReason, Failure> {
    u8::try_from(code)
        .ok()
        .and_then(RevocationReason::from_code)
        .ok_or_else(|| invalid_argument("unknown revocation reason code"))
}

/// Bytes from hex, for SPKI hashes and pins (serials go through `ztmesh_core::ids::parse_serial`).
pub(crate) fn hex_arg(name: &str, text: &str) -> std::result::Result<Vec<u8>, Failure> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: Vec<u8> = text
        .bytes()
        .map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| invalid_argument(&format!("{name} must be hexadecimal")))?;
    if digits.is_empty() || digits.len() > 128 {
        return Err(invalid_argument(&format!("{name} must be 1 to 128 hex digits")));
    }
    // An odd count gets a leading zero nibble.
    let padded = if digits.len() % 2 == 1 { [&[0u8][..], &digits].concat() } else { digits };
    Ok(padded.chunks_exact(2).map(|pair| (pair[0] << 4) | pair[1]).collect())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn millis(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}
