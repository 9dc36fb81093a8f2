//! X.509 v2 CRLs: signed by a CA with rcgen, verified here before anything in them is believed.
//!
//! Issued CRLs are v2 with a CRL Number and an authority key identifier, `thisUpdate` and
//! `nextUpdate`, and per entry the serial, the revocation time and a reason code (RFC 5280 says
//! to leave the code out for `unspecified`). That is what webpki and OpenSSL require; the
//! issuing CA must have keyCertSign and cRLSign, which both ztmesh CA profiles have.
//!
//! [`VerifiedCrl::from_der`] checks a CRL against a [`TrustedIssuer`] — a CA already validated
//! up to a trust anchor — and fails closed: v2 only; ecdsa-with-SHA256 in both algorithm
//! fields; issuer name equal to the CA's subject byte for byte and key identifiers equal when
//! both present; a valid signature; a CRL Number; no duplicate extensions and no critical
//! extension it does not understand (an issuing distribution point, a delta-CRL indicator, a
//! certificate issuer entry extension all make the CRL rejected rather than half-understood);
//! every serial positive and at most 20 octets.

use std::time::{Duration, SystemTime};

use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::ca::{map_rcgen, offset_date_time, CertificateAuthority};
use super::der::{self, oid};
use super::error::{PkiError, RevocationError};
use super::revocation::RevocationReason;
use super::verify::TrustedIssuer;
use super::{system_time, unix_seconds};

/// The OID content of the invalidity date entry extension, 2.5.29.24.
const INVALIDITY_DATE: &[u8] = &[0x55, 0x1d, 0x18];

/// One revoked certificate in a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlEntry {
    /// The certificate's serial: big-endian magnitude, 1 to 20 octets (leading zeros are
    /// ignored).
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub revoked_at: SystemTime,
    /// Why.
    pub reason: RevocationReason,
}

/// What a CRL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlParams {
    /// The CRL Number: must grow with every CRL the CA issues.
    pub crl_number: u64,
    /// Issue time.
    pub this_update: SystemTime,
    /// When the next CRL will be out at the latest; after `this_update`.
    pub next_update: SystemTime,
    /// The revoked certificates.
    pub entries: Vec<CrlEntry>,
}

impl CrlParams {
    /// An empty CRL numbered `crl_number`, issued at `now`, with the next one due in 7 days.
    pub fn new(crl_number: u64, now: SystemTime) -> Self {
        // Unrepresentable (far-future) times end up equal and are refused by `issue_crl`.
        let next_update = now.checked_add(Duration::from_secs(7 * 24 * 3600)).unwrap_or(now);
        Self { crl_number, this_update: now, next_update, entries: Vec::new() }
    }
}

/// A signed CRL, DER and PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// PEM, label `X509 CRL`.
    pub pem: String,
}

impl CertificateAuthority {
    /// Signs a v2 CRL.
    ///
    /// Fails with [`PkiError::InvalidValidity`] unless `next_update` is after `this_update`
    /// (both representable), [`PkiError::InvalidRevocation`] for an empty or over-long serial,
    /// and [`PkiError::Signer`] if the CA's signer fails.
    pub fn issue_crl(&self, params: &CrlParams) -> Result<EncodedCrl, PkiError> {
        let this_update = unix_seconds(params.this_update);
        let next_update = unix_seconds(params.next_update);
        if next_update <= this_update || der::time(this_update).is_none() || der::time(next_update).is_none() {
            return Err(PkiError::InvalidValidity);
        }
        let mut revoked_certs = Vec::with_capacity(params.entries.len());
        for entry in &params.entries {
            let serial =
                canonical_magnitude(&entry.serial).filter(|m| !m.is_empty()).ok_or(PkiError::InvalidRevocation)?;
            let revoked_at = unix_seconds(entry.revoked_at);
            if der::time(revoked_at).is_none() {
                return Err(PkiError::InvalidValidity);
            }
            revoked_certs.push(rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(serial),
                revocation_time: offset_date_time(revoked_at)?,
                reason_code: Some(entry.reason.to_rcgen()),
                invalidity_date: None,
            });
        }
        let key_identifier_method = match &self.parsed().subject_key_id {
            Some(id) => rcgen::KeyIdMethod::PreSpecified(id.clone()),
            None => rcgen::KeyIdMethod::Sha256,
        };
        let crl_params = rcgen::CertificateRevocationListParams {
            this_update: offset_date_time(this_update)?,
            next_update: offset_date_time(next_update)?,
            crl_number: rcgen::SerialNumber::from_slice(&params.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method,
        };
        let der = crl_params.signed_by(&self.rcgen_issuer()?).map_err(map_rcgen)?.der().to_vec();
        // Check what was produced with the same code that checks everyone else's CRLs.
        TrustedIssuer::from_parsed(self.parsed().clone())
            .and_then(|issuer| VerifiedCrl::from_der(&der, &issuer).map_err(|_| PkiError::Internal))?;
        let pem = super::pem::encode(super::pem::X509_CRL, &der);
        Ok(EncodedCrl { der, pem })
    }
}

/// One entry of a verified CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// The serial's canonical magnitude (no leading zeros).
    pub serial: Vec<u8>,
    /// When the certificate was revoked.
    pub revoked_at: SystemTime,
    /// Why (`Unspecified` when the CRL gives no reason).
    pub reason: RevocationReason,
}

/// A CRL whose signature and issuer have been verified against a trusted CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCrl {
    issuer_key_id: [u8; 32],
    crl_number: Vec<u8>,
    signed_digest: [u8; 32],
    this_update: SystemTime,
    next_update: Option<SystemTime>,
    entries: Vec<RevokedSerial>,
}

impl VerifiedCrl {
    /// Parses a DER CRL and verifies it against `issuer`; see the [module documentation](self).
    ///
    /// Fails with [`RevocationError::Malformed`], [`RevocationError::WrongIssuer`] or
    /// [`RevocationError::Signature`].
    pub fn from_der(der: &[u8], issuer: &TrustedIssuer) -> Result<Self, RevocationError> {
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|_| RevocationError::Malformed)?;
        if !rest.is_empty() {
            return Err(RevocationError::Malformed);
        }
        let tbs = &crl.tbs_cert_list;
        if tbs.version.map(|v| v.0) != Some(1) {
            return Err(RevocationError::Malformed);
        }
        let ca = issuer.cert();
        if tbs.issuer.as_raw() != ca.subject.as_slice() {
            return Err(RevocationError::WrongIssuer);
        }
        let ecdsa = |a: &x509_parser::x509::AlgorithmIdentifier<'_>| {
            a.algorithm.as_bytes() == oid::ECDSA_WITH_SHA256 && a.parameters.is_none()
        };
        let point = ca.p256_point.as_deref().ok_or(RevocationError::Signature)?;
        if !ecdsa(&crl.signature_algorithm)
            || !ecdsa(&tbs.signature)
            || crl.signature_value.unused_bits != 0
            || !super::signer::verify_p256(point, tbs.as_ref(), &crl.signature_value.data)
        {
            return Err(RevocationError::Signature);
        }

        let mut crl_number = None;
        check_extensions(tbs.extensions(), |extension| match extension.parsed_extension() {
            ParsedExtension::CRLNumber(number) => {
                crl_number = canonical_magnitude(&number.to_bytes_be()).map(<[u8]>::to_vec);
                crl_number.is_some()
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                match (aki.key_identifier.as_ref(), ca.subject_key_id.as_deref()) {
                    (Some(given), Some(expected)) => given.0 == expected,
                    _ => true,
                }
            }
            _ => !extension.critical,
        })?;
        let crl_number = crl_number.ok_or(RevocationError::Malformed)?;

        let mut entries = Vec::with_capacity(tbs.revoked_certificates.len());
        for revoked in &tbs.revoked_certificates {
            let serial = der::canonical_serial(revoked.raw_serial()).ok_or(RevocationError::Malformed)?;
            let mut reason = RevocationReason::Unspecified;
            check_extensions(revoked.extensions(), |extension| match extension.parsed_extension() {
                ParsedExtension::ReasonCode(code) => match RevocationReason::from_code(code.0) {
                    Some(known) => {
                        reason = known;
                        true
                    }
                    None => false,
                },
                _ if extension.oid.as_bytes() == INVALIDITY_DATE => true,
                _ => !extension.critical,
            })?;
            let revoked_at = system_time(revoked.revocation_date.timestamp()).ok_or(RevocationError::Malformed)?;
            entries.push(RevokedSerial { serial, revoked_at, reason });
        }
        let next_update = match tbs.next_update {
            Some(t) => Some(system_time(t.timestamp()).ok_or(RevocationError::Malformed)?),
            None => None,
        };
        Ok(Self {
            issuer_key_id: issuer.key_id(),
            crl_number,
            signed_digest: super::sha256(tbs.as_ref()),
            this_update: system_time(tbs.this_update.timestamp()).ok_or(RevocationError::Malformed)?,
            next_update,
            entries,
        })
    }

    /// Parses an `X509 CRL` PEM block and verifies it; see [`Self::from_der`].
    pub fn from_pem(pem: &str, issuer: &TrustedIssuer) -> Result<Self, RevocationError> {
        Self::from_der(&super::pem::decode_one(pem, super::pem::X509_CRL)?, issuer)
    }

    /// The issuing CA's key id (SHA-256 of its SubjectPublicKeyInfo).
    pub fn issuer_key_id(&self) -> [u8; 32] {
        self.issuer_key_id
    }

    /// The CRL Number, big-endian magnitude without leading zeros (empty for zero).
    pub fn crl_number(&self) -> &[u8] {
        &self.crl_number
    }

    /// `thisUpdate`.
    pub fn this_update(&self) -> SystemTime {
        self.this_update
    }

    /// `nextUpdate`, if the CRL has one.
    pub fn next_update(&self) -> Option<SystemTime> {
        self.next_update
    }

    /// The revoked certificates.
    pub fn entries(&self) -> &[RevokedSerial] {
        &self.entries
    }

    /// SHA-256 of the signed part: identifies the content whatever the signature encoding.
    pub(crate) fn signed_digest(&self) -> [u8; 32] {
        self.signed_digest
    }
}

/// Applies `accept` to every extension; fails on a duplicate, on one x509-parser could not
/// parse, or on one `accept` refuses.
fn check_extensions(
    extensions: &[X509Extension<'_>],
    mut accept: impl FnMut(&X509Extension<'_>) -> bool,
) -> Result<(), RevocationError> {
    for (i, extension) in extensions.iter().enumerate() {
        let id = extension.oid.as_bytes();
        let duplicate = extensions.iter().take(i).any(|e| e.oid.as_bytes() == id);
        let unparsable = matches!(extension.parsed_extension(), ParsedExtension::ParseError { .. });
        if duplicate || unparsable || !accept(extension) {
            return Err(RevocationError::Malformed);
        }
    }
    Ok(())
}

/// The magnitude without leading zero octets; `None` when longer than 20 octets. Zero is the
/// empty slice.
pub(crate) fn canonical_magnitude(bytes: &[u8]) -> Option<&[u8]> {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let magnitude = bytes.get(skip..)?;
    (magnitude.len() <= 20).then_some(magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testutil::Pki;
    use crate::pki::verify::TrustStore;

    fn issuer(pki: &Pki) -> TrustedIssuer {
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        trust.issuer(&[pki.site.certificate_der()], SystemTime::now()).unwrap()
    }

    #[test]
    fn issued_crls_verify_and_round_trip() {
        let pki = Pki::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds(SystemTime::now()) as u64);
        let mut params = CrlParams::new(258, now);
        params.entries = vec![
            CrlEntry { serial: vec![0, 0x80, 1], revoked_at: now, reason: RevocationReason::KeyCompromise },
            CrlEntry { serial: vec![5], revoked_at: now, reason: RevocationReason::Unspecified },
        ];
        let crl = pki.site.issue_crl(&params).unwrap();
        let verified = VerifiedCrl::from_pem(&crl.pem, &issuer(&pki)).unwrap();
        assert_eq!(verified, VerifiedCrl::from_der(&crl.der, &issuer(&pki)).unwrap());
        assert_eq!(verified.crl_number(), [1, 2]);
        assert_eq!(verified.issuer_key_id(), pki.site.key_id());
        assert_eq!(verified.this_update(), now);
        assert_eq!(verified.next_update(), Some(params.next_update));
        let entries: Vec<_> = verified.entries().iter().map(|e| (e.serial.clone(), e.reason)).collect();
        assert_eq!(
            entries,
            [(vec![0x80, 1], RevocationReason::KeyCompromise), (vec![5], RevocationReason::Unspecified)]
        );
        // An empty CRL is fine too.
        let empty = pki.site.issue_crl(&CrlParams::new(0, now)).unwrap();
        assert!(VerifiedCrl::from_der(&empty.der, &issuer(&pki)).unwrap().entries().is_empty());
    }

    #[test]
    fn bad_parameters_are_refused() {
        let pki = Pki::new();
        let now = SystemTime::now();
        let mut params = CrlParams::new(1, now);
        params.next_update = now;
        assert_eq!(pki.site.issue_crl(&params).unwrap_err(), PkiError::InvalidValidity);
        let mut params = CrlParams::new(1, now);
        for serial in [vec![], vec![0, 0], vec![1u8; 21]] {
            params.entries = vec![CrlEntry { serial, revoked_at: now, reason: RevocationReason::Superseded }];
            assert_eq!(pki.site.issue_crl(&params).unwrap_err(), PkiError::InvalidRevocation);
        }
    }

    #[test]
    fn tampered_foreign_or_truncated_crls_are_refused() {
        let pki = Pki::new();
        let mut params = CrlParams::new(1, SystemTime::now());
        params.entries =
            vec![CrlEntry { serial: vec![0x42], revoked_at: SystemTime::now(), reason: RevocationReason::Superseded }];
        let crl = pki.site.issue_crl(&params).unwrap().der;
        let issuer = issuer(&pki);
        // Change the revoked serial 0x42 inside the signed part.
        let mut tampered = crl.clone();
        let at = tampered.windows(3).position(|w| w == [0x02, 0x01, 0x42]).unwrap() + 2;
        tampered[at] = 0x43;
        assert_eq!(VerifiedCrl::from_der(&tampered, &issuer), Err(RevocationError::Signature));
        for len in [0, 1, crl.len() / 2, crl.len() - 1] {
            assert_eq!(VerifiedCrl::from_der(&crl[..len], &issuer), Err(RevocationError::Malformed), "{len}");
        }
        let mut trailing = crl.clone();
        trailing.push(0);
        assert_eq!(VerifiedCrl::from_der(&trailing, &issuer), Err(RevocationError::Malformed));
        // The root's CRL checked against the site CA, and vice versa.
        let root_crl = pki.root.issue_crl(&CrlParams::new(1, SystemTime::now())).unwrap().der;
        assert_eq!(VerifiedCrl::from_der(&root_crl, &issuer), Err(RevocationError::WrongIssuer));
        assert_eq!(VerifiedCrl::from_pem("junk", &issuer), Err(RevocationError::Malformed));
    }

    #[test]
    fn critical_extensions_it_does_not_understand_are_refused() {
        let pki = Pki::new();
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: Some(rcgen::CrlIssuingDistributionPoint {
                distribution_point: rcgen::CrlDistributionPoint { uris: vec!["http://crl.example/site.crl".into()] },
                scope: Some(rcgen::CrlScope::UserCertsOnly),
            }),
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::PreSpecified(pki.site.parsed().subject_key_id.clone().unwrap()),
        };
        let crl = params.signed_by(&pki.site.rcgen_issuer().unwrap()).unwrap().der().to_vec();
        assert_eq!(VerifiedCrl::from_der(&crl, &issuer(&pki)), Err(RevocationError::Malformed));
    }
}
