//! Certificate authorities: creating the root and site CAs, loading a CA, and issuing device
//! certificates from CSRs.
//!
//! A root CA is self-signed (CA:true, pathLen 1, keyUsage keyCertSign+cRLSign) and may stay
//! offline; it signs one site CA per gateway (CA:true, pathLen 0, same key usages), which signs
//! device certificates. Both are created by rcgen and come back as a [`CaMaterial`]: the
//! certificate (DER and PEM) and the PKCS#8 private key, zeroized when dropped.
//!
//! [`CertificateAuthority::issue`] applies the device profile of the
//! [module documentation](super): CA policy decides every field, and only the public key of the
//! verified CSR is kept. A CSR asking for CA:true, other names or other key usages gets the
//! profile all the same. Every certificate a CA produces is checked before it is returned: its
//! signature must verify under the CA key and its issuer name must be the CA's subject, byte
//! for byte.
//!
//! A CA signs through a [`CertSigner`], so its key can live in a TPM
//! ([`CertificateAuthority::with_signer`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::cert::ParsedCert;
use super::csr::CertificateRequest;
use super::error::PkiError;
use super::identity::{is_valid_display_name, is_valid_id, role_uris};
use super::profile::{device_tbs, tenant_name_constraints, DeviceProfile};
use super::signer::{sign_structure, CertSigner, RcgenKey, SoftwareSigner};
use super::{duration_seconds, hex_lower, system_time, unix_seconds, DEFAULT_CLOCK_SKEW};

/// The nameConstraints extension, 2.5.29.30, as rcgen spells OIDs.
const NAME_CONSTRAINTS: &[u64] = &[2, 5, 29, 30];

/// Default validity of a device certificate: 90 days.
pub const DEFAULT_DEVICE_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default validity of a root CA: 10 years.
pub const DEFAULT_ROOT_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default validity of a site CA: 3 years.
pub const DEFAULT_SITE_VALIDITY: Duration = Duration::from_secs(3 * 365 * 24 * 3600);

/// The name and lifetime of a new root or site CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaParams {
    /// The CA's CN, 1 to 64 bytes without control characters.
    pub common_name: String,
    /// The CA's O, 1 to 64 bytes without control characters; device certificates the CA
    /// issues carry it as their O.
    pub organisation: String,
    /// How long the CA is valid from `now`. A site CA never outlives its root.
    pub validity: Duration,
    /// How far `notBefore` lies before `now`, for clock skew.
    pub backdate: Duration,
    /// The time of issuance.
    pub now: SystemTime,
    /// The tenants a site CA may issue certificates for, written as its name constraints and
    /// enforced by [`verify_peer`](super::verify_peer) (a site CA for site B cannot vouch for a
    /// device of site A's tenant). Empty: no constraints (the only choice for a root).
    pub tenants: Vec<String>,
}

impl CaParams {
    /// A root CA valid for 10 years from now, backdated 5 minutes.
    pub fn root(common_name: impl Into<String>, organisation: impl Into<String>) -> Self {
        Self::new(common_name.into(), organisation.into(), DEFAULT_ROOT_VALIDITY)
    }

    /// A site CA valid for 3 years from now, backdated 5 minutes.
    pub fn site(common_name: impl Into<String>, organisation: impl Into<String>) -> Self {
        Self::new(common_name.into(), organisation.into(), DEFAULT_SITE_VALIDITY)
    }

    fn new(common_name: String, organisation: String, validity: Duration) -> Self {
        Self {
            common_name,
            organisation,
            validity,
            backdate: DEFAULT_CLOCK_SKEW,
            now: SystemTime::now(),
            tenants: Vec::new(),
        }
    }
}

/// A newly created CA: its certificate and private key.
pub struct CaMaterial {
    /// The CA certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The CA certificate, PEM.
    pub certificate_pem: String,
    /// The CA's ECDSA P-256 private key, PKCS#8 DER, zeroized when dropped.
    pub private_key_pkcs8: Zeroizing<Vec<u8>>,
}

impl CaMaterial {
    /// The private key as a `PRIVATE KEY` PEM block, zeroized when dropped.
    pub fn private_key_pem(&self) -> Zeroizing<String> {
        super::pem::encode_private_key(&self.private_key_pkcs8)
    }

    /// The CA, ready to issue.
    pub fn authority(&self) -> Result<CertificateAuthority, PkiError> {
        CertificateAuthority::load(&self.certificate_der, &self.private_key_pkcs8)
    }
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial").field("certificate_pem", &self.certificate_pem).finish_non_exhaustive()
    }
}

/// What a device certificate says beyond its key: decided by the caller (the enrolment
/// service, after it authenticated the device), never by the CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertRequest {
    /// The device id: the certificate's CN.
    pub device_id: String,
    /// The tenant: the certificate's OU.
    pub tenant: String,
    /// Roles, written as `urn:ztmesh:role:<role>` SAN URIs; empty for none.
    pub roles: Vec<String>,
    /// How long the certificate is valid from `now` (90 days by default). A new certificate
    /// can be requested well before the old one expires, so the two overlap during rotation.
    pub validity: Duration,
    /// How far `notBefore` lies before `now`, for peers whose clocks run behind (5 minutes by
    /// default).
    pub backdate: Duration,
    /// The time of issuance.
    pub now: SystemTime,
}

impl DeviceCertRequest {
    /// A request for `device_id` in `tenant`: no roles, 90 days, backdated 5 minutes, now.
    pub fn new(device_id: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            tenant: tenant.into(),
            roles: Vec::new(),
            validity: DEFAULT_DEVICE_VALIDITY,
            backdate: DEFAULT_CLOCK_SKEW,
            now: SystemTime::now(),
        }
    }
}

/// A certificate issued to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The serial number in its one spelling ([`crate::ids::serial_hex`]): lowercase hex, no
    /// leading zero byte (as in [`PeerIdentity::serial`](super::PeerIdentity::serial)).
    pub serial: String,
    /// SHA-256 of the SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

/// A CA certificate with the key that signs for it.
pub struct CertificateAuthority {
    cert: ParsedCert,
    organisation: String,
    signer: Box<dyn CertSigner + Send + Sync>,
}

impl CertificateAuthority {
    /// Creates a new self-signed root CA with a fresh P-256 key.
    pub fn create_root(params: &CaParams) -> Result<CaMaterial, PkiError> {
        let signer = SoftwareSigner::generate()?;
        let pkcs8 = signer.to_pkcs8();
        let mut cert_params = ca_params(params, 1, None)?;
        cert_params.use_authority_key_identifier_extension = false;
        let der = cert_params.self_signed(&RcgenKey(&signer)).map_err(map_rcgen)?.der().to_vec();
        let root = Self::with_signer(&der, Box::new(signer))?;
        if !root.cert.is_self_issued() || !root.cert.signed_by(root.signer.public_key()) {
            return Err(PkiError::Internal);
        }
        Ok(material(der, pkcs8))
    }

    /// Creates a new site CA signed by this CA, with a fresh P-256 key.
    ///
    /// With `params.tenants`, the site CA is bound to them by name constraints.
    ///
    /// Fails with [`PkiError::NotCa`] unless this CA may have a CA below it (path length
    /// absent or at least 1), [`PkiError::CaNotValid`] outside its validity, and
    /// [`PkiError::InvalidIdentity`] for a tenant that is not a valid id.
    pub fn create_site_ca(&self, params: &CaParams) -> Result<CaMaterial, PkiError> {
        if self.cert.basic_constraints.and_then(|bc| bc.path_len) == Some(0) {
            return Err(PkiError::NotCa);
        }
        self.check_valid_at(params.now)?;
        let signer = SoftwareSigner::generate()?;
        let pkcs8 = signer.to_pkcs8();
        let mut cert_params = ca_params(params, 0, Some(self.cert.not_after))?;
        if !params.tenants.is_empty() {
            if !params.tenants.iter().all(|t| is_valid_id(t)) {
                return Err(PkiError::InvalidIdentity);
            }
            // Not critical, as the CA/Browser Forum allows for name-constrained CAs: Go's
            // crypto/x509 refuses a chain whose critical nameConstraints hold a directoryName
            // (it cannot check those), while it, OpenSSL and this PKI read the non-critical one.
            let value = tenant_name_constraints(&params.organisation, &params.tenants);
            let mut extension = rcgen::CustomExtension::from_oid_content(NAME_CONSTRAINTS, value);
            extension.set_criticality(false);
            cert_params.custom_extensions.push(extension);
        }
        let der = cert_params.signed_by(&RcgenKey(&signer), &self.rcgen_issuer()?).map_err(map_rcgen)?.der().to_vec();
        self.check_issued(&der)?;
        Self::with_signer(&der, Box::new(signer))?;
        Ok(material(der, pkcs8))
    }

    /// Loads a CA from its certificate (DER) and PKCS#8 private key (DER).
    ///
    /// Fails with [`PkiError::CertificateMalformed`], [`PkiError::UnsupportedKey`] (not
    /// P-256), [`PkiError::NotCa`] (not CA:true with keyCertSign and cRLSign, no single
    /// organisation, an unknown critical extension), [`PkiError::PrivateKey`] or
    /// [`PkiError::KeyMismatch`].
    pub fn load(certificate_der: &[u8], private_key_pkcs8: &[u8]) -> Result<Self, PkiError> {
        Self::with_signer(certificate_der, Box::new(SoftwareSigner::from_pkcs8(private_key_pkcs8)?))
    }

    /// Loads a CA from a `CERTIFICATE` and a `PRIVATE KEY` PEM block.
    pub fn load_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, PkiError> {
        let der = super::pem::decode_one(certificate_pem, super::pem::CERTIFICATE)?;
        Self::with_signer(&der, Box::new(SoftwareSigner::from_pkcs8_pem(private_key_pem)?))
    }

    /// Loads a CA whose key is held by `signer` (a TPM, for instance); see [`Self::load`].
    pub fn with_signer(certificate_der: &[u8], signer: Box<dyn CertSigner + Send + Sync>) -> Result<Self, PkiError> {
        let cert = ParsedCert::from_der(certificate_der).map_err(|()| PkiError::CertificateMalformed)?;
        let point = cert.p256_point.as_deref().ok_or(PkiError::UnsupportedKey)?;
        if !cert.ecdsa_sha256 {
            return Err(PkiError::UnsupportedKey);
        }
        if !cert.v3
            || !cert.is_certificate_signer()
            || !cert.is_crl_signer()
            || !cert.extensions_acceptable
            || !cert.names_well_formed
        {
            return Err(PkiError::NotCa);
        }
        let organisation = match cert.organisations.as_slice() {
            [one] if is_valid_display_name(one) => one.clone(),
            _ => return Err(PkiError::NotCa),
        };
        if signer.public_key() != point {
            return Err(PkiError::KeyMismatch);
        }
        Ok(Self { cert, organisation, signer })
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert.der
    }

    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        super::pem::encode(super::pem::CERTIFICATE, &self.cert.der)
    }

    /// SHA-256 of the CA's SubjectPublicKeyInfo: how revocation records name their issuer.
    pub fn key_id(&self) -> [u8; 32] {
        self.cert.spki_sha256
    }

    /// Whether this CA is self-issued (a root).
    pub fn is_root(&self) -> bool {
        self.cert.is_self_issued()
    }

    /// Issues a device certificate for the key of `csr`, as `request` and CA policy say.
    ///
    /// Fails with [`PkiError::InvalidIdentity`] (device id, tenant or roles, or a tenant outside
    /// this CA's name constraints),
    /// [`PkiError::InvalidValidity`] (zero validity, or the CA expires before the certificate
    /// would start), [`PkiError::CaNotValid`], [`PkiError::Random`] or [`PkiError::Signer`].
    pub fn issue(&self, csr: &CertificateRequest, request: &DeviceCertRequest) -> Result<IssuedCertificate, PkiError> {
        if !is_valid_id(&request.device_id) || !is_valid_id(&request.tenant) {
            return Err(PkiError::InvalidIdentity);
        }
        let role_uris = role_uris(&request.roles)?;
        if !self.permits_tenant(&request.tenant) {
            return Err(PkiError::InvalidIdentity);
        }
        self.check_valid_at(request.now)?;
        let (not_before, not_after) =
            validity_window(request.now, request.backdate, request.validity, Some(self.cert.not_after))?;
        let serial = random_serial()?;
        let tbs = device_tbs(&DeviceProfile {
            serial: &serial,
            issuer: &self.cert.subject,
            issuer_key_id: self.cert.subject_key_id.as_deref(),
            not_before,
            not_after,
            organisation: &self.organisation,
            tenant: &request.tenant,
            device_id: &request.device_id,
            public_key: csr.public_key(),
            role_uris: &role_uris,
        })
        .ok_or(PkiError::InvalidValidity)?;
        let der = sign_structure(self.signer.as_ref(), &tbs)?;
        let issued = self.check_issued(&der)?;
        let serial = issued.serial.as_deref().ok_or(PkiError::Internal)?;
        Ok(IssuedCertificate {
            pem: super::pem::encode(super::pem::CERTIFICATE, &der),
            serial: hex_lower(serial),
            spki_sha256: issued.spki_sha256,
            not_before: system_time(not_before).ok_or(PkiError::InvalidValidity)?,
            not_after: system_time(not_after).ok_or(PkiError::InvalidValidity)?,
            der,
        })
    }

    /// Whether this CA's name constraints (if any) let it issue for `tenant`: the same check
    /// [`verify_peer`](super::verify_peer) applies, on the subject prefix every device certificate
    /// gets.
    pub fn permits_tenant(&self, tenant: &str) -> bool {
        self.cert.name_constraints.as_ref().is_none_or(|constraints| {
            let subject = [
                (super::der::oid::ORGANIZATION.to_vec(), Some(self.organisation.clone())),
                (super::der::oid::ORGANIZATIONAL_UNIT.to_vec(), Some(tenant.to_owned())),
            ];
            constraints.permits(&subject, Some(tenant))
        })
    }

    /// The signer of this CA.
    pub(crate) fn signer(&self) -> &dyn CertSigner {
        self.signer.as_ref()
    }

    /// The parsed CA certificate.
    pub(crate) fn parsed(&self) -> &ParsedCert {
        &self.cert
    }

    /// rcgen's view of this CA, for the structures rcgen writes (site CAs, CRLs).
    pub(crate) fn rcgen_issuer(&self) -> Result<rcgen::Issuer<'static, RcgenKey<'_>>, PkiError> {
        rcgen::Issuer::from_ca_cert_der(&self.cert.der.as_slice().into(), RcgenKey(self.signer.as_ref()))
            .map_err(map_rcgen)
    }

    /// Fails with [`PkiError::CaNotValid`] unless the CA certificate is valid at `now`.
    pub(crate) fn check_valid_at(&self, now: SystemTime) -> Result<(), PkiError> {
        self.cert.check_validity(unix_seconds(now), 0).map_err(|_| PkiError::CaNotValid)
    }

    /// Parses a certificate this CA just produced and checks the CA really signed it.
    fn check_issued(&self, der: &[u8]) -> Result<ParsedCert, PkiError> {
        let issued = ParsedCert::from_der(der).map_err(|()| PkiError::Internal)?;
        if issued.issuer != self.cert.subject {
            return Err(PkiError::Internal);
        }
        if !issued.signed_by(self.signer.public_key()) {
            return Err(PkiError::Signer);
        }
        Ok(issued)
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("organisation", &self.organisation)
            .field("root", &self.is_root())
            .finish_non_exhaustive()
    }
}

/// A random serial: 16 bytes from the OS CSPRNG, top bit cleared so it is positive; never zero.
pub(crate) fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial: [u8; 16] = crate::rand::array()?;
    serial[0] &= 0x7f;
    if serial.iter().all(|b| *b == 0) {
        serial[15] = 1;
    }
    Ok(serial)
}

/// `(notBefore, notAfter)` in Unix seconds: `now − backdate` to `now + validity`, the end
/// clamped to `limit` (the issuer's own `notAfter`).
pub(crate) fn validity_window(
    now: SystemTime,
    backdate: Duration,
    validity: Duration,
    limit: Option<i64>,
) -> Result<(i64, i64), PkiError> {
    if validity.is_zero() {
        return Err(PkiError::InvalidValidity);
    }
    let now = unix_seconds(now);
    let not_before = now.checked_sub(duration_seconds(backdate)).ok_or(PkiError::InvalidValidity)?;
    let mut not_after = now.checked_add(duration_seconds(validity)).ok_or(PkiError::InvalidValidity)?;
    if let Some(limit) = limit {
        not_after = not_after.min(limit);
    }
    if not_after <= not_before || super::der::time(not_before).is_none() || super::der::time(not_after).is_none() {
        return Err(PkiError::InvalidValidity);
    }
    Ok((not_before, not_after))
}

/// rcgen parameters for a CA certificate with `path_len`.
fn ca_params(params: &CaParams, path_len: u8, limit: Option<i64>) -> Result<rcgen::CertificateParams, PkiError> {
    if !is_valid_display_name(&params.common_name) || !is_valid_display_name(&params.organisation) {
        return Err(PkiError::InvalidIdentity);
    }
    let (not_before, not_after) = validity_window(params.now, params.backdate, params.validity, limit)?;
    let mut cert_params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, params.organisation.as_str());
    name.push(rcgen::DnType::CommonName, params.common_name.as_str());
    cert_params.distinguished_name = name;
    cert_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(path_len));
    cert_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    cert_params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_serial()?));
    cert_params.not_before = offset_date_time(not_before)?;
    cert_params.not_after = offset_date_time(not_after)?;
    cert_params.use_authority_key_identifier_extension = true;
    Ok(cert_params)
}

/// rcgen's date type for Unix seconds.
pub(crate) fn offset_date_time(seconds: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| PkiError::InvalidValidity)
}

/// Maps an rcgen failure: a signer failure stays one, anything else should not happen.
pub(crate) fn map_rcgen(error: rcgen::Error) -> PkiError {
    match error {
        rcgen::Error::RemoteKeyError => PkiError::Signer,
        _ => PkiError::Internal,
    }
}

fn material(certificate_der: Vec<u8>, private_key_pkcs8: Zeroizing<Vec<u8>>) -> CaMaterial {
    CaMaterial {
        certificate_pem: super::pem::encode(super::pem::CERTIFICATE, &certificate_der),
        certificate_der,
        private_key_pkcs8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::cert::key_usage;
    use crate::pki::testutil::{device_csr, Pki};

    #[test]
    fn root_and_site_have_the_ca_profile() {
        let pki = Pki::new();
        let root = pki.root.parsed();
        assert!(pki.root.is_root() && !pki.site.is_root());
        assert_eq!(root.basic_constraints.unwrap().path_len, Some(1));
        let site = pki.site.parsed();
        assert_eq!(site.basic_constraints.unwrap().path_len, Some(0));
        for ca in [root, site] {
            assert_eq!(ca.key_usage, Some(key_usage::KEY_CERT_SIGN | key_usage::CRL_SIGN));
            assert!(ca.subject_key_id.is_some());
        }
        assert_eq!(site.issuer, root.subject);
        assert_eq!(site.authority_key_id, root.subject_key_id);
        assert!(site.signed_by(root.p256_point.as_deref().unwrap()));
        // A site CA (pathLen 0) cannot create another CA.
        assert_eq!(pki.site.create_site_ca(&CaParams::site("x", "y")).unwrap_err(), PkiError::NotCa);
    }

    #[test]
    fn loading_checks_key_and_certificate() {
        let pki = Pki::new();
        let other = SoftwareSigner::generate().unwrap();
        assert_eq!(
            CertificateAuthority::load(pki.site.certificate_der(), &other.to_pkcs8()).unwrap_err(),
            PkiError::KeyMismatch
        );
        assert_eq!(CertificateAuthority::load(b"junk", &other.to_pkcs8()).unwrap_err(), PkiError::CertificateMalformed);
        // A device certificate is no CA.
        let (signer, csr) = device_csr("d", "t");
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
        assert_eq!(CertificateAuthority::load(&issued.der, &signer.to_pkcs8()).unwrap_err(), PkiError::NotCa);
        let pem =
            CertificateAuthority::load_pem(&pki.site_material.certificate_pem, &pki.site_material.private_key_pem());
        assert_eq!(pem.unwrap().key_id(), pki.site.key_id());
    }

    #[test]
    fn device_certificates_follow_ca_policy() {
        let pki = Pki::new();
        let (_, csr) = device_csr("ignored-cn", "ignored-ou");
        let mut request = DeviceCertRequest::new("tablet-1", "property-123");
        request.roles = vec!["staff".into(), "pos:cashier".into()];
        let issued = pki.site.issue(&csr, &request).unwrap();
        let cert = ParsedCert::from_der(&issued.der).unwrap();
        assert_eq!(cert.common_names, ["tablet-1"]);
        assert_eq!(cert.org_units, ["property-123"]);
        assert_eq!(cert.organisations, ["ztmesh test"]);
        assert_eq!(
            cert.san_uris,
            ["ztmesh://property-123/tablet-1", "urn:ztmesh:role:staff", "urn:ztmesh:role:pos:cashier"]
        );
        assert_eq!(cert.basic_constraints.map(|bc| bc.ca), Some(false));
        assert_eq!(cert.key_usage, Some(key_usage::DIGITAL_SIGNATURE));
        let eku = cert.extended_key_usage.unwrap();
        assert!(eku.client_auth && eku.server_auth);
        assert_eq!(cert.authority_key_id, pki.site.parsed().subject_key_id);
        assert_eq!(cert.subject_key_id.as_ref().map(Vec::len), Some(20));
        assert!(cert.extensions_acceptable && cert.v3 && cert.ecdsa_sha256);
        assert_eq!(cert.spki_sha256, csr.spki_sha256());
        assert_eq!(issued.spki_sha256, csr.spki_sha256());
        assert_eq!(hex_lower(cert.serial.as_deref().unwrap()), issued.serial);
        assert!(issued.serial.len() <= 32);
        // 90 days from now, backdated 5 minutes.
        assert_eq!(cert.not_after - cert.not_before, 90 * 24 * 3600 + 300);
        // Fresh serials every time.
        let again = pki.site.issue(&csr, &request).unwrap();
        assert_ne!(again.serial, issued.serial);
    }

    #[test]
    fn issuance_rejects_bad_requests() {
        let pki = Pki::new();
        let (_, csr) = device_csr("d", "t");
        let mut request = DeviceCertRequest::new("d", "t/x");
        assert_eq!(pki.site.issue(&csr, &request).unwrap_err(), PkiError::InvalidIdentity);
        request.tenant = "t".into();
        request.roles = vec!["bad role".into()];
        assert_eq!(pki.site.issue(&csr, &request).unwrap_err(), PkiError::InvalidIdentity);
        request.roles = vec!["a".into(), "a".into()];
        assert_eq!(pki.site.issue(&csr, &request).unwrap_err(), PkiError::InvalidIdentity);
        request.roles.clear();
        request.validity = Duration::ZERO;
        assert_eq!(pki.site.issue(&csr, &request).unwrap_err(), PkiError::InvalidValidity);
        request.validity = DEFAULT_DEVICE_VALIDITY;
        request.now = SystemTime::now() + Duration::from_secs(4 * 365 * 24 * 3600);
        assert_eq!(pki.site.issue(&csr, &request).unwrap_err(), PkiError::CaNotValid);
    }

    #[test]
    fn device_validity_is_clamped_to_the_ca() {
        let pki = Pki::new();
        let (_, csr) = device_csr("d", "t");
        let mut request = DeviceCertRequest::new("d", "t");
        request.validity = Duration::from_secs(50 * 365 * 24 * 3600);
        let issued = pki.site.issue(&csr, &request).unwrap();
        assert_eq!(unix_seconds(issued.not_after), pki.site.parsed().not_after);
    }
}
