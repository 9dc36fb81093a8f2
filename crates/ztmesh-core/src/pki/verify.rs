//! Peer verification: the one decision every part of ztmesh takes about a certificate chain.
//!
//! [`verify_peer`] takes the chain a peer presented (DER, leaf first), the [`TrustStore`] of
//! roots, the [`RevocationSet`] and a [`PeerPolicy`], and returns the peer's [`PeerIdentity`]
//! or the first rule the chain broke. Anything that cannot be checked is an error, never an
//! accept.
//!
//! # Chain building
//!
//! At most three certificates are accepted (leaf, site CA, root). Presented certificates other
//! than the leaf are sorted out first: one that is byte for byte a trust anchor, or any
//! self-issued one (a root the store does not hold), is ignored — roots come from the store
//! only. The rest are candidate intermediates. Candidate paths are then every
//! `leaf → intermediate → anchor` and `leaf → anchor` whose links match: the child's issuer
//! name equals the parent's subject name byte for byte, and when the child has an authority
//! key identifier and the parent a subject key identifier, those are equal too. During a
//! rollover two roots may share a name; the key identifiers, and failing those the signatures,
//! tell them apart. Each candidate path is checked in full; the first that passes wins. When
//! none passes, the error reported is the one from the path that got furthest through the
//! checks below.
//!
//! A peer may send its leaf alone: the store's *known intermediates*
//! ([`TrustStore::with_intermediates`], normally the site CA above the verifier's own
//! certificate) are candidates too, after the presented ones. They only complete paths: a known
//! intermediate is never an anchor, so a path through it still needs its signature by an anchor
//! and passes every check below like a presented one.
//!
//! # Checks, in order
//!
//! 1. Signatures: each certificate is signed by the next with ECDSA P-256 and SHA-256 (ring);
//!    any other algorithm fails ([`VerifyError::Chain`]). Anchors' self-signatures are checked
//!    when the [`TrustStore`] is built.
//! 2. Structure ([`VerifyError::Chain`]): every certificate v3, ecdsa-with-SHA256 in both
//!    algorithm fields, a P-256 key, a positive serial of at most 20 octets, no duplicate
//!    extension, no extension that failed to parse, no critical extension other than
//!    basicConstraints, keyUsage, extKeyUsage, subjectAltName, nameConstraints and the key identifiers. Every issuer is CA:true with keyCertSign, and its pathLen is respected.
//! 3. Validity of every certificate on the path, anchor included, widened by
//!    [`PeerPolicy::clock_skew`] on both sides ([`VerifyError::Expired`],
//!    [`VerifyError::NotYetValid`]).
//! 4. Leaf usage ([`VerifyError::KeyUsage`]): not a CA, keyUsage present with
//!    digitalSignature, extKeyUsage present with the [`RequiredUsage`].
//! 5. Leaf identity ([`VerifyError::Chain`]): exactly one CN (the device id) and one OU (the
//!    tenant), both valid ids, exactly one `ztmesh:` SAN URI, equal to
//!    `ztmesh://<OU>/<CN>`; every `urn:ztmesh:role:` SAN URI a valid role, none repeated, at
//!    most 32 (these are the roles; other SAN URIs and names are ignored).
//! 6. Name constraints ([`VerifyError::NameConstraint`]): every certificate below a CA with
//!    nameConstraints is inside them. A site CA issued for some tenants carries directoryName
//!    subtrees `O=<organisation>, OU=<tenant>`; a leaf's subject must start with one of them,
//!    and since step 5 ties the subject's OU to the SAN URI's tenant, the site CA can vouch for
//!    no other tenant. URI subtrees are matched against the device URI's host (the tenant).
//!    A site CA without nameConstraints is unconstrained (created before tenants were bound,
//!    or by `create_site_ca` without tenants).
//! 7. Expected tenant ([`VerifyError::TenantMismatch`]) and device
//!    ([`VerifyError::DeviceMismatch`]).
//! 8. Revocation of the leaf and of the intermediate, each by serial and by SPKI SHA-256 in the
//!    revocation data of its own issuer only ([`VerifyError::Revoked`]), which must be fresh
//!    ([`VerifyError::RevocationStale`] when the set fails closed; see [`RevocationSet`]). Never
//!    by a hash of the certificate: the certificate's bytes are malleable, its serial and key
//!    are not.
//! 9. Pins ([`VerifyError::Pin`]): when the policy has pins, the leaf's SPKI SHA-256 must be
//!    one of them (an empty pin list accepts nobody).

use std::time::{Duration, SystemTime};

use super::cert::{key_usage, ParsedCert};
use super::error::{PkiError, VerifyError};
use super::identity::{is_valid_id, parse_device_uri, roles_from_uris};
use super::revocation::RevocationSet;
use super::{duration_seconds, hex_lower, system_time, unix_seconds, DEFAULT_CLOCK_SKEW};

/// The longest chain accepted: leaf, site CA, root.
const MAX_CHAIN_LEN: usize = 3;

/// The roots a verifier trusts: one normally, two during a CA rollover.
#[derive(Debug, Clone)]
pub struct TrustStore {
    anchors: Vec<ParsedCert>,
    /// CA certificates that complete a leaf-only chain; never anchors.
    intermediates: Vec<ParsedCert>,
}

impl TrustStore {
    /// A store of the given roots (DER).
    ///
    /// Each root must parse ([`VerifyError::Malformed`]) and be a self-signed v3 ECDSA P-256
    /// CA certificate with keyCertSign and no unknown critical extension
    /// ([`VerifyError::Chain`]); at least one is required ([`VerifyError::Chain`]).
    /// Duplicates are dropped. Validity is checked at verification time, not here.
    pub fn from_der(roots: &[&[u8]]) -> Result<Self, VerifyError> {
        if roots.is_empty() {
            return Err(VerifyError::Chain);
        }
        let mut anchors: Vec<ParsedCert> = Vec::with_capacity(roots.len());
        for der in roots {
            let cert = ParsedCert::from_der(der).map_err(|()| VerifyError::Malformed)?;
            let self_signed = cert.p256_point.as_deref().is_some_and(|point| cert.signed_by(point));
            if !self_signed
                || !cert.is_self_issued()
                || !cert.v3
                || !cert.is_certificate_signer()
                || !cert.extensions_acceptable
                || cert.serial.is_none()
            {
                return Err(VerifyError::Chain);
            }
            if !anchors.iter().any(|a| a.der == cert.der) {
                anchors.push(cert);
            }
        }
        Ok(Self { anchors, intermediates: Vec::new() })
    }

    /// This store, also completing chains through `intermediates` (DER): the site CAs the
    /// verifier knows, so that a peer may present its leaf alone (see the
    /// [module documentation](self)). Self-issued certificates (roots) and the store's anchors
    /// are skipped: roots come from the anchors only. Each other one must parse
    /// ([`VerifyError::Malformed`]) and be a CA with keyCertSign ([`VerifyError::Chain`]); it
    /// is trusted only as a link in a path that ends in an anchor.
    pub fn with_intermediates<D: AsRef<[u8]>>(mut self, intermediates: &[D]) -> Result<Self, VerifyError> {
        for der in intermediates {
            let cert = ParsedCert::from_der(der.as_ref()).map_err(|()| VerifyError::Malformed)?;
            if cert.is_self_issued() || self.anchors.iter().any(|a| a.der == cert.der) {
                continue;
            }
            if !cert.is_certificate_signer() {
                return Err(VerifyError::Chain);
            }
            if !self.intermediates.iter().any(|i| i.der == cert.der) {
                self.intermediates.push(cert);
            }
        }
        Ok(self)
    }

    /// A store of the roots in a PEM bundle of `CERTIFICATE` blocks; see [`Self::from_der`].
    pub fn from_pem(bundle: &str) -> Result<Self, VerifyError> {
        let ders = super::pem::parse_certificates(bundle)?;
        let roots: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
        Self::from_der(&roots)
    }

    /// The number of roots.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether the store is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Validates a CA certificate as an issuer of revocation data (CRLs and records).
    ///
    /// `ca_chain` is the CA certificate first, then optionally its issuer: a root from this
    /// store, or a site CA followed by nothing or its root. The path is built and checked as
    /// for [`verify_peer`] (steps 1 to 3, with the default 5-minute skew), and the CA must have
    /// cRLSign ([`VerifyError::KeyUsage`]).
    pub fn issuer(&self, ca_chain: &[&[u8]], now: SystemTime) -> Result<TrustedIssuer, VerifyError> {
        let (target, presented) = self.parse_chain(ca_chain)?;
        let (now, skew) = (unix_seconds(now), duration_seconds(DEFAULT_CLOCK_SKEW));
        let mut best: Option<Failure> = None;
        for path in self.paths(&target, &presented) {
            let outcome = check_path(&path, now, skew).and_then(|()| {
                if target.is_crl_signer() {
                    Ok(())
                } else {
                    Err((STAGE_USAGE, VerifyError::KeyUsage))
                }
            });
            match outcome {
                Ok(()) => return Ok(TrustedIssuer { cert: target }),
                Err(failure) => keep_furthest(&mut best, failure),
            }
        }
        Err(best.map_or(VerifyError::Chain, |(_, e)| e))
    }

    /// Parses a presented chain: the target, and the candidate intermediates (anchors and
    /// other self-issued certificates left out, duplicates dropped).
    fn parse_chain(&self, chain: &[&[u8]]) -> Result<(ParsedCert, Vec<ParsedCert>), VerifyError> {
        let (first, rest) = chain.split_first().ok_or(VerifyError::Chain)?;
        if chain.len() > MAX_CHAIN_LEN {
            return Err(VerifyError::Chain);
        }
        let target = ParsedCert::from_der(first).map_err(|()| VerifyError::Malformed)?;
        let mut presented: Vec<ParsedCert> = Vec::with_capacity(rest.len());
        for der in rest {
            let cert = ParsedCert::from_der(der).map_err(|()| VerifyError::Malformed)?;
            let ignored = cert.is_self_issued()
                || cert.der == target.der
                || self.anchors.iter().any(|a| a.der == cert.der)
                || presented.iter().any(|p| p.der == cert.der);
            if !ignored {
                presented.push(cert);
            }
        }
        Ok((target, presented))
    }

    /// Every candidate path from `target` to an anchor, through at most one intermediate: a
    /// presented one, else a known one.
    fn paths<'a>(&'a self, target: &'a ParsedCert, presented: &'a [ParsedCert]) -> Vec<Vec<&'a ParsedCert>> {
        let mut paths = Vec::new();
        let known = self.intermediates.iter().filter(|k| !presented.iter().any(|p| p.der == k.der));
        for intermediate in presented.iter().chain(known).filter(|i| target.names_issuer(i)) {
            for anchor in self.anchors.iter().filter(|a| intermediate.names_issuer(a)) {
                paths.push(vec![target, intermediate, anchor]);
            }
        }
        for anchor in self.anchors.iter().filter(|a| target.names_issuer(a)) {
            paths.push(vec![target, anchor]);
        }
        paths
    }
}

/// A CA certificate validated up to a trust anchor and allowed to sign revocation data: the
/// only thing CRLs and revocation records are checked against.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    cert: ParsedCert,
}

impl TrustedIssuer {
    /// The CA's key id: SHA-256 of its SubjectPublicKeyInfo.
    pub fn key_id(&self) -> [u8; 32] {
        self.cert.spki_sha256
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert.der
    }

    pub(crate) fn cert(&self) -> &ParsedCert {
        &self.cert
    }

    /// Wraps a CA certificate the caller already trusts (a CA checking its own output).
    pub(crate) fn from_parsed(cert: ParsedCert) -> Result<Self, PkiError> {
        if cert.is_crl_signer() && cert.p256_point.is_some() {
            Ok(Self { cert })
        } else {
            Err(PkiError::NotCa)
        }
    }
}

/// The extended key usage the caller needs from the peer's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequiredUsage {
    /// The peer acts as a client (id-kp-clientAuth).
    ClientAuth,
    /// The peer acts as a server (id-kp-serverAuth).
    ServerAuth,
    /// Either of the two (for signatures outside TLS: offers, gossip, bundles).
    Any,
}

/// What a caller expects of a peer beyond a valid chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The device id the peer must have, if the caller knows it.
    pub expected_device: Option<String>,
    /// The tenant the peer must belong to; set it everywhere tenants must stay apart.
    pub expected_tenant: Option<String>,
    /// The extended key usage required.
    pub required_usage: RequiredUsage,
    /// SHA-256 hashes of the SubjectPublicKeyInfos accepted, if pinning.
    pub pins: Option<Vec<[u8; 32]>>,
    /// The clock difference tolerated either side of each validity period.
    pub clock_skew: Duration,
}

impl Default for PeerPolicy {
    /// No expected identity, any usage, no pins, 5 minutes of skew.
    fn default() -> Self {
        Self {
            expected_device: None,
            expected_tenant: None,
            required_usage: RequiredUsage::Any,
            pins: None,
            clock_skew: DEFAULT_CLOCK_SKEW,
        }
    }
}

/// Who a verified peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The device id (the certificate's CN, equal to the SAN URI's device).
    pub device_id: String,
    /// The tenant (the certificate's OU, equal to the SAN URI's tenant).
    pub tenant: String,
    /// The roles from the `urn:ztmesh:role:<role>` SAN URIs, in order; empty when there are none.
    pub roles: Vec<String>,
    /// The certificate serial in its one spelling ([`crate::ids::serial_hex`]): lowercase hex, two
    /// digits per byte, no leading zero byte.
    pub serial: String,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo: what pins and key revocation use.
    pub spki_sha256: [u8; 32],
    /// SHA-256 of the issuing CA's SubjectPublicKeyInfo: whose revocation data decides the leaf.
    pub issuer_key_id: [u8; 32],
    /// When the leaf certificate expires.
    pub not_after: SystemTime,
}

/// Whether `signature` (a DER ECDSA P-256/SHA-256 signature) over `message` was made with the key
/// of `certificate` (DER). This proves possession of a certificate's key, as the Noise link's
/// identity binding and signed rotation requests need; it says nothing about the certificate
/// itself, which [`verify_peer`] decides. Fails with [`VerifyError::Malformed`] if the
/// certificate does not parse or holds no P-256 key.
pub fn verify_certificate_signature(certificate: &[u8], message: &[u8], signature: &[u8]) -> Result<bool, VerifyError> {
    let parsed = ParsedCert::from_der(certificate).map_err(|()| VerifyError::Malformed)?;
    let point = parsed.p256_point.as_deref().ok_or(VerifyError::Malformed)?;
    Ok(super::signer::verify_p256(point, message, signature))
}

/// Verifies a peer's certificate chain (DER, leaf first, then at most two more certificates)
/// against `trust`, `revocations` and `policy` at time `now`. See the
/// [module documentation](self) for the rules, in the order they are applied.
pub fn verify_peer(
    chain: &[&[u8]],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: SystemTime,
) -> Result<PeerIdentity, VerifyError> {
    verify_peer_leaf(chain, trust, revocations, policy, now).map(|(identity, _)| identity)
}

/// [`verify_peer`], also returning the verified leaf's public key (an uncompressed P-256 point),
/// from the one parse of the chain: for a caller that checks a proof of possession of the
/// certificate's key (the Noise link's static-key binding) and may keep the key with its verdict.
pub fn verify_peer_key(
    chain: &[&[u8]],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: SystemTime,
) -> Result<(PeerIdentity, Vec<u8>), VerifyError> {
    let (identity, leaf) = verify_peer_leaf(chain, trust, revocations, policy, now)?;
    // A verified path has a P-256 leaf (structure check); the error is unreachable.
    let point = leaf.p256_point.ok_or(VerifyError::Chain)?;
    Ok((identity, point))
}

/// [`verify_peer`], also handing back the parsed leaf.
fn verify_peer_leaf(
    chain: &[&[u8]],
    trust: &TrustStore,
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: SystemTime,
) -> Result<(PeerIdentity, ParsedCert), VerifyError> {
    let (leaf, presented) = trust.parse_chain(chain)?;
    let (now, skew) = (unix_seconds(now), duration_seconds(policy.clock_skew));
    let mut best: Option<Failure> = None;
    let mut verified = None;
    for path in trust.paths(&leaf, &presented) {
        match check_path(&path, now, skew).and_then(|()| check_leaf(&path, revocations, policy, now)) {
            Ok(identity) => {
                verified = Some(identity);
                break;
            }
            Err(failure) => keep_furthest(&mut best, failure),
        }
    }
    match verified {
        Some(identity) => Ok((identity, leaf)),
        None => Err(best.map_or(VerifyError::Chain, |(_, e)| e)),
    }
}

/// A failed check: how far the path got (a stage below), and the error.
type Failure = (u8, VerifyError);

const STAGE_SIGNATURE: u8 = 1;
const STAGE_STRUCTURE: u8 = 2;
const STAGE_VALIDITY: u8 = 3;
const STAGE_USAGE: u8 = 4;
const STAGE_IDENTITY: u8 = 5;
const STAGE_NAMES: u8 = 6;
const STAGE_EXPECTED: u8 = 7;
const STAGE_REVOCATION: u8 = 8;
const STAGE_PIN: u8 = 9;

fn keep_furthest(best: &mut Option<Failure>, failure: Failure) {
    if best.is_none_or(|(stage, _)| failure.0 > stage) {
        *best = Some(failure);
    }
}

/// Steps 1 to 3 for a path `[target, (intermediate), anchor]`.
fn check_path(path: &[&ParsedCert], now: i64, skew: i64) -> Result<(), Failure> {
    let signature = (STAGE_SIGNATURE, VerifyError::Chain);
    for link in path.windows(2) {
        let [child, parent] = link else { return Err(signature) };
        let point = parent.p256_point.as_deref().ok_or(signature)?;
        if !child.signed_by(point) {
            return Err(signature);
        }
    }

    let structure = (STAGE_STRUCTURE, VerifyError::Chain);
    for cert in path {
        if !cert.v3 || !cert.ecdsa_sha256 || !cert.extensions_acceptable || cert.serial.is_none() {
            return Err(structure);
        }
        if cert.p256_point.is_none() {
            return Err(structure);
        }
    }
    // `below` counts the CA certificates between an issuer and the target.
    for (below, issuer) in path.iter().skip(1).enumerate() {
        if !issuer.is_certificate_signer() {
            return Err(structure);
        }
        if let Some(max) = issuer.basic_constraints.and_then(|bc| bc.path_len) {
            if u32::try_from(below).map_or(true, |below| below > max) {
                return Err(structure);
            }
        }
    }

    for cert in path {
        cert.check_validity(now, skew).map_err(|expired| {
            (STAGE_VALIDITY, if expired { VerifyError::Expired } else { VerifyError::NotYetValid })
        })?;
    }
    Ok(())
}

/// Steps 4 to 9 for a path whose signatures, structure and validity passed.
fn check_leaf(
    path: &[&ParsedCert],
    revocations: &RevocationSet,
    policy: &PeerPolicy,
    now: i64,
) -> Result<PeerIdentity, Failure> {
    let leaf = *path.first().ok_or((STAGE_SIGNATURE, VerifyError::Chain))?;

    let usage = (STAGE_USAGE, VerifyError::KeyUsage);
    if leaf.basic_constraints.is_some_and(|bc| bc.ca)
        || leaf.key_usage.is_none_or(|ku| ku & key_usage::DIGITAL_SIGNATURE == 0)
    {
        return Err(usage);
    }
    let eku = leaf.extended_key_usage.ok_or(usage)?;
    let allowed = match policy.required_usage {
        RequiredUsage::ClientAuth => eku.client_auth,
        RequiredUsage::ServerAuth => eku.server_auth,
        RequiredUsage::Any => eku.client_auth || eku.server_auth,
    };
    if !allowed {
        return Err(usage);
    }

    let identity = (STAGE_IDENTITY, VerifyError::Chain);
    let (device_id, tenant) = leaf_identity(leaf).ok_or(identity)?;
    let roles = roles_from_uris(&leaf.san_uris).ok_or(identity)?;
    let not_after = system_time(leaf.not_after).ok_or(identity)?;

    // Every certificate below a CA with name constraints must be inside them; the leaf's
    // device URI host is its tenant.
    for (above, ca) in path.iter().enumerate().skip(1) {
        let Some(constraints) = &ca.name_constraints else { continue };
        for (below, cert) in path.iter().take(above).enumerate() {
            let host = (below == 0).then_some(tenant);
            if !constraints.permits(&cert.subject_attributes, host) {
                return Err((STAGE_NAMES, VerifyError::NameConstraint));
            }
        }
    }

    if policy.expected_tenant.as_deref().is_some_and(|expected| expected != tenant) {
        return Err((STAGE_EXPECTED, VerifyError::TenantMismatch));
    }
    if policy.expected_device.as_deref().is_some_and(|expected| expected != device_id) {
        return Err((STAGE_EXPECTED, VerifyError::DeviceMismatch));
    }

    // The leaf and the intermediate, each against its own issuer's data only; the anchor (last)
    // is governed by the trust store.
    let now = system_time(now).ok_or((STAGE_REVOCATION, VerifyError::RevocationStale))?;
    for link in path.windows(2) {
        let [cert, issuer] = link else { return Err((STAGE_REVOCATION, VerifyError::Chain)) };
        let serial = cert.serial.as_deref().ok_or((STAGE_REVOCATION, VerifyError::Chain))?;
        match revocations.check(&issuer.spki_sha256, serial, &cert.spki_sha256, now) {
            Ok(false) => {}
            Ok(true) => return Err((STAGE_REVOCATION, VerifyError::Revoked)),
            Err(_) => return Err((STAGE_REVOCATION, VerifyError::RevocationStale)),
        }
    }

    if policy.pins.as_ref().is_some_and(|pins| !pins.contains(&leaf.spki_sha256)) {
        return Err((STAGE_PIN, VerifyError::Pin));
    }

    let serial = leaf.serial.as_deref().ok_or(identity)?;
    Ok(PeerIdentity {
        device_id: device_id.to_owned(),
        tenant: tenant.to_owned(),
        roles,
        serial: hex_lower(serial),
        spki_sha256: leaf.spki_sha256,
        issuer_key_id: path.get(1).map_or(leaf.spki_sha256, |issuer| issuer.spki_sha256),
        not_after,
    })
}

/// `(device_id, tenant)` when CN, OU and the one `ztmesh:` SAN URI agree.
fn leaf_identity(leaf: &ParsedCert) -> Option<(&str, &str)> {
    if !leaf.names_well_formed {
        return None;
    }
    let ([device_id], [tenant]) = (leaf.common_names.as_slice(), leaf.org_units.as_slice()) else {
        return None;
    };
    if !is_valid_id(device_id) || !is_valid_id(tenant) {
        return None;
    }
    let mut ours = leaf.san_uris.iter().filter(|uri| uri.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("ztmesh:")));
    let (Some(uri), None) = (ours.next(), ours.next()) else {
        return None;
    };
    let (uri_tenant, uri_device) = parse_device_uri(uri)?;
    (uri_tenant == tenant && uri_device == device_id).then_some((device_id.as_str(), tenant.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::der::oid;
    use crate::pki::profile::{device_tbs, DeviceProfile};
    use crate::pki::signer::sign_structure;
    use crate::pki::testutil::{device_csr, Pki};
    use crate::pki::{
        CaParams, CertSigner, CertificateAuthority, CrlEntry, CrlParams, DeviceCertRequest, Freshness, PkiError,
        RecordEntry, RevocationError, RevocationReason, StalePolicy, VerifiedCrl, VerifiedRecord,
    };
    use crate::ErrorCode;

    #[test]
    fn certificate_signatures_prove_possession_of_the_certificate_key() {
        let pki = Pki::new();
        let (signer, csr) = device_csr("d", "t");
        let issued = pki.site.issue(&csr, &crate::pki::DeviceCertRequest::new("d", "t")).unwrap();
        let signature = signer.sign(b"bind me").unwrap();
        assert_eq!(verify_certificate_signature(&issued.der, b"bind me", &signature), Ok(true));
        assert_eq!(verify_certificate_signature(&issued.der, b"bind you", &signature), Ok(false));
        let (stranger, _) = device_csr("e", "t");
        assert_eq!(
            verify_certificate_signature(&issued.der, b"bind me", &stranger.sign(b"bind me").unwrap()),
            Ok(false)
        );
        assert_eq!(verify_certificate_signature(&issued.der, b"bind me", b"garbage"), Ok(false));
        assert_eq!(verify_certificate_signature(b"not a certificate", b"m", &signature), Err(VerifyError::Malformed));
    }

    /// A device certificate signed by the site CA with a hand-picked serial and role URIs.
    fn crafted(pki: &Pki, serial: &[u8], role_uris: &[&str]) -> Vec<u8> {
        crafted_by(&pki.site, serial, "t", "d", role_uris)
    }

    /// A device certificate signed by `ca` with a hand-picked serial, tenant, device and roles.
    fn crafted_by(ca: &CertificateAuthority, serial: &[u8], tenant: &str, device: &str, role_uris: &[&str]) -> Vec<u8> {
        let role_uris: Vec<String> = role_uris.iter().map(|u| (*u).to_owned()).collect();
        let (_, csr) = device_csr(device, tenant);
        let site = ca.parsed();
        let now = unix_seconds(SystemTime::now());
        let tbs = device_tbs(&DeviceProfile {
            serial,
            issuer: &site.subject,
            issuer_key_id: site.subject_key_id.as_deref(),
            not_before: now - 60,
            not_after: now + 3600,
            organisation: &site.organisations[0],
            tenant,
            device_id: device,
            public_key: csr.public_key(),
            role_uris: &role_uris,
        })
        .unwrap();
        sign_structure(ca.signer(), &tbs).unwrap()
    }

    /// The CRL of `ca` numbered `number`, issued at `now`, revoking `serials`, verified.
    fn crl_of(pki: &Pki, ca: &CertificateAuthority, number: u64, serials: &[&[u8]], now: SystemTime) -> VerifiedCrl {
        let mut params = CrlParams::new(number, now);
        for serial in serials {
            params.entries.push(CrlEntry {
                serial: serial.to_vec(),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            });
        }
        let chain: Vec<&[u8]> = if ca.is_root() {
            vec![ca.certificate_der()]
        } else {
            vec![ca.certificate_der(), pki.root.certificate_der()]
        };
        let issuer = pki.trust().issuer(&chain, SystemTime::now()).unwrap();
        VerifiedCrl::from_der(&ca.issue_crl(&params).unwrap().der, &issuer).unwrap()
    }

    #[test]
    fn one_site_cas_revocations_reach_only_the_certificates_it_issued() {
        let pki = Pki::new();
        let site_b = pki.root.create_site_ca(&CaParams::site("gateway 2", "ztmesh test")).unwrap().authority().unwrap();
        let now = SystemTime::now();
        let trust = pki.trust();
        let policy = PeerPolicy::default();
        // The serials collide on purpose: a device of site A and a device of site B share one.
        let device_a = crafted_by(&pki.site, &[0x42, 0x42], "hotel-1", "gw-1", &[]);
        let device_b = crafted_by(&site_b, &[0x42, 0x42], "hotel-2", "gw-1", &[]);
        let site_a_serial = pki.site.parsed().serial.clone().unwrap();
        let chain_a = [device_a.as_slice(), pki.site.certificate_der()];
        let chain_b = [device_b.as_slice(), site_b.certificate_der()];

        // The attack: site B's CRL lists the shared serial and site A's own CA serial.
        let mut set = RevocationSet::new();
        set.add_crl(&crl_of(&pki, &site_b, 1, &[&[0x42, 0x42], &site_a_serial], now), now).unwrap();
        let a = verify_peer(&chain_a, &trust, &set, &policy, now).unwrap();
        assert_eq!((a.tenant.as_str(), a.issuer_key_id), ("hotel-1", pki.site.key_id()));
        assert_eq!(verify_peer(&chain_b, &trust, &set, &policy, now), Err(VerifyError::Revoked));

        // Nor can site B revoke site A's device by its key (SPKIs are scoped too).
        let spki_a = ParsedCert::from_der(&device_a).unwrap().spki_sha256;
        let entry = RecordEntry {
            serial: vec![1],
            spki_sha256: spki_a,
            reason: RevocationReason::KeyCompromise,
            revoked_at: now,
        };
        let record = site_b.sign_revocation_record(1, now, &[entry]).unwrap();
        let b_issuer = trust.issuer(&[site_b.certificate_der(), pki.root.certificate_der()], now).unwrap();
        set.add_record(&VerifiedRecord::from_bytes(&record, &b_issuer).unwrap()).unwrap();
        assert!(verify_peer(&chain_a, &trust, &set, &policy, now).is_ok());

        // Site A's CA is revoked by its issuer's data only: the root's CRL.
        set.add_crl(&crl_of(&pki, &pki.root, 1, &[&site_a_serial], now), now).unwrap();
        assert_eq!(verify_peer(&chain_a, &trust, &set, &policy, now), Err(VerifyError::Revoked));
    }

    #[test]
    fn a_site_ca_cannot_vouch_for_a_tenant_it_was_not_issued_for() {
        let pki = Pki::new();
        let site_params = |name: &str, tenant: &str| CaParams {
            tenants: vec![tenant.to_owned()],
            ..CaParams::site(name, "ztmesh test")
        };
        let site_a = pki.root.create_site_ca(&site_params("site A", "hotel-1")).unwrap().authority().unwrap();
        let site_b = pki.root.create_site_ca(&site_params("site B", "hotel-2")).unwrap().authority().unwrap();
        let (trust, policy, now) = (pki.trust(), PeerPolicy::default(), SystemTime::now());
        let none = RevocationSet::new();

        let genuine = crafted_by(&site_a, &[1], "hotel-1", "gw-1", &[]);
        let peer = verify_peer(&[&genuine, site_a.certificate_der()], &trust, &none, &policy, now).unwrap();
        assert_eq!((peer.tenant.as_str(), peer.device_id.as_str()), ("hotel-1", "gw-1"));
        let own = crafted_by(&site_b, &[2], "hotel-2", "tablet-1", &[]);
        assert!(verify_peer(&[&own, site_b.certificate_der()], &trust, &none, &policy, now).is_ok());

        // The attack: site B mints hotel-1/gw-1 with an extra admin role.
        let forged = crafted_by(&site_b, &[1], "hotel-1", "gw-1", &["urn:ztmesh:role:admin"]);
        let chain = [forged.as_slice(), site_b.certificate_der()];
        assert_eq!(verify_peer(&chain, &trust, &none, &policy, now), Err(VerifyError::NameConstraint));
        assert_eq!(VerifyError::NameConstraint.code(), "ERR_NAME_CONSTRAINT");
        let expecting = PeerPolicy { expected_tenant: Some("hotel-1".into()), ..PeerPolicy::default() };
        assert_eq!(verify_peer(&chain, &trust, &none, &expecting, now), Err(VerifyError::NameConstraint));
        // Site B's own issuance refuses it too, and a site CA for several tenants serves each.
        let (_, csr) = device_csr("gw-1", "hotel-1");
        assert_eq!(site_b.issue(&csr, &DeviceCertRequest::new("gw-1", "hotel-1")), Err(PkiError::InvalidIdentity));
        assert!(
            site_b.permits_tenant("hotel-2") && !site_b.permits_tenant("hotel-1") && !site_b.permits_tenant("hotel-22")
        );
        let both =
            CaParams { tenants: vec!["hotel-1".into(), "hotel-2".into()], ..CaParams::site("both", "ztmesh test") };
        let both = pki.root.create_site_ca(&both).unwrap().authority().unwrap();
        assert!(both.permits_tenant("hotel-1") && both.permits_tenant("hotel-2") && !both.permits_tenant("hotel-3"));
        let bad = CaParams { tenants: vec!["no/slash".into()], ..CaParams::site("bad", "ztmesh test") };
        assert_eq!(pki.root.create_site_ca(&bad).unwrap_err(), PkiError::InvalidIdentity);
        // A site CA without constraints stays unconstrained.
        assert!(pki.site.permits_tenant("anything"));
    }

    #[test]
    fn name_constraints_match_subject_prefixes_and_uri_hosts() {
        use crate::pki::cert::{NameConstraints, Subtree};
        let attr = |kind: &[u8], value: &str| (kind.to_vec(), Some(value.to_owned()));
        let subject = [attr(oid::ORGANIZATION, "o"), attr(oid::ORGANIZATIONAL_UNIT, "t"), attr(oid::COMMON_NAME, "d")];
        let dir = |values: &[(&[u8], &str)]| Subtree::Directory(values.iter().map(|(k, v)| attr(k, v)).collect());
        let permit = |subtrees: Vec<Subtree>| NameConstraints { permitted: subtrees, excluded: Vec::new() };
        let exclude = |subtrees: Vec<Subtree>| NameConstraints { permitted: Vec::new(), excluded: subtrees };
        let o_t = dir(&[(oid::ORGANIZATION, "o"), (oid::ORGANIZATIONAL_UNIT, "t")]);
        let o_u = dir(&[(oid::ORGANIZATION, "o"), (oid::ORGANIZATIONAL_UNIT, "u")]);
        assert!(permit(vec![o_t.clone()]).permits(&subject, Some("t")));
        assert!(permit(vec![o_u.clone(), o_t.clone()]).permits(&subject, Some("t")));
        assert!(!permit(vec![o_u.clone()]).permits(&subject, Some("t")));
        assert!(
            !permit(vec![dir(&[(oid::ORGANIZATIONAL_UNIT, "t")])]).permits(&subject, Some("t")),
            "a prefix, not a subset"
        );
        assert!(!permit(vec![dir(&[(oid::ORGANIZATION, "O")])]).permits(&subject, None), "case-sensitive");
        assert!(!exclude(vec![o_t]).permits(&subject, Some("t")));
        assert!(exclude(vec![o_u]).permits(&subject, Some("t")));
        assert!(permit(vec![Subtree::Uri("t".into())]).permits(&subject, Some("t")));
        assert!(permit(vec![Subtree::Uri("t".into())]).permits(&subject, None), "no URI, nothing to check");
        assert!(!permit(vec![Subtree::Uri("t".into())]).permits(&subject, Some("tt")));
        assert!(permit(vec![Subtree::Uri(".example".into())]).permits(&subject, Some("a.example")));
        assert!(!permit(vec![Subtree::Uri(".example".into())]).permits(&subject, Some("example")));
        assert!(!permit(vec![Subtree::Uri(".example".into())]).permits(&subject, Some("aexample")));
        assert!(!exclude(vec![Subtree::Uri("t".into())]).permits(&subject, Some("t")));
        assert!(permit(vec![Subtree::Other]).permits(&subject, Some("t")));
    }

    #[test]
    fn a_stale_crl_fails_verification_closed_and_open_only_when_asked() {
        let pki = Pki::new();
        let device = crafted_by(&pki.site, &[7], "hotel-1", "tablet-7", &[]);
        let chain = [device.as_slice(), pki.site.certificate_der()];
        let (trust, policy, now) = (pki.trust(), PeerPolicy::default(), SystemTime::now());
        // CrlParams::new: due 7 days after issue; the default grace is one more day.
        let day = Duration::from_secs(86_400);
        let (fresh, stale) = (now - 7 * day - day / 2, now - 9 * day);
        let mut closed = RevocationSet::new();
        closed.add_crl(&crl_of(&pki, &pki.site, 1, &[&[9]], fresh), now).unwrap();
        assert!(verify_peer(&chain, &trust, &closed, &policy, now).is_ok());
        assert_eq!(closed.add_crl(&crl_of(&pki, &pki.site, 2, &[&[9]], stale), now), Err(RevocationError::Stale));
        // Applied while it was fresh, it turns stale: verification fails closed from then on.
        let mut turned = RevocationSet::new();
        turned.add_crl(&crl_of(&pki, &pki.site, 2, &[&[9]], stale), stale).unwrap();
        assert_eq!(verify_peer(&chain, &trust, &turned, &policy, now), Err(VerifyError::RevocationStale));
        assert_eq!(VerifyError::RevocationStale.code(), "ERR_REVOCATION_STALE");
        let freshness = Freshness { on_stale: StalePolicy::FailOpen, ..Freshness::default() };
        let mut open = RevocationSet::with_freshness(freshness);
        open.add_crl(&crl_of(&pki, &pki.site, 2, &[&[9]], stale), now).unwrap();
        assert!(verify_peer(&chain, &trust, &open, &policy, now).is_ok());
        assert_eq!(open.stale_uses(), 2, "the CRL applied stale, then the check");
    }

    fn verify(pki: &Pki, leaf: &[u8]) -> Result<PeerIdentity, VerifyError> {
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        let chain = [leaf, pki.site.certificate_der()];
        verify_peer(&chain, &trust, &RevocationSet::new(), &PeerPolicy::default(), SystemTime::now())
    }

    #[test]
    fn a_leaf_alone_verifies_only_through_a_known_intermediate_that_chains_to_an_anchor() {
        let pki = Pki::new();
        let (_, csr) = device_csr("d", "t");
        let leaf = pki.site.issue(&csr, &crate::pki::DeviceCertRequest::new("d", "t")).unwrap().der;
        let (none, policy, now) = (RevocationSet::new(), PeerPolicy::default(), SystemTime::now());
        let site = pki.site.certificate_der();
        assert_eq!(verify_peer(&[&leaf], &pki.trust(), &none, &policy, now), Err(VerifyError::Chain));
        let knowing = pki.trust().with_intermediates(&[site, pki.root.certificate_der()]).unwrap();
        assert_eq!(verify_peer(&[&leaf], &knowing, &none, &policy, now).unwrap().device_id, "d");
        assert_eq!(verify_peer(&[&leaf, site], &knowing, &none, &policy, now).unwrap().device_id, "d");

        // Another CA's site (same names, another root) known as an intermediate admits none of
        // its leaves, alone or with it: it never becomes an anchor.
        let other = Pki::new();
        let (_, csr) = device_csr("d", "t");
        let foreign = other.site.issue(&csr, &crate::pki::DeviceCertRequest::new("d", "t")).unwrap().der;
        let confused =
            pki.trust().with_intermediates(&[other.site.certificate_der(), other.root.certificate_der()]).unwrap();
        assert_eq!(verify_peer(&[&foreign], &confused, &none, &policy, now), Err(VerifyError::Chain));
        assert_eq!(
            verify_peer(&[&foreign, other.site.certificate_der()], &confused, &none, &policy, now),
            Err(VerifyError::Chain)
        );
        // A revoked known intermediate revokes the leaves it completes.
        let site_revoked = {
            let entry = crate::pki::RecordEntry {
                serial: pki.site.parsed().serial.clone().unwrap(),
                spki_sha256: pki.site.parsed().spki_sha256,
                reason: crate::pki::RevocationReason::CaCompromise,
                revoked_at: now,
            };
            let record = pki.root.sign_revocation_record(1, now, &[entry]).unwrap();
            let issuer = pki.trust().issuer(&[pki.root.certificate_der()], now).unwrap();
            let mut set = RevocationSet::new();
            set.add_record(&crate::pki::VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
            set
        };
        assert_eq!(verify_peer(&[&leaf], &knowing, &site_revoked, &policy, now), Err(VerifyError::Revoked));
        // A certificate that is not a CA is refused as an intermediate.
        assert_eq!(pki.trust().with_intermediates(&[&leaf]).err(), Some(VerifyError::Chain));
        assert_eq!(pki.trust().with_intermediates(&[b"garbage"]).err(), Some(VerifyError::Malformed));
    }

    #[test]
    fn serials_must_be_positive_and_at_most_20_octets() {
        let pki = Pki::new();
        assert_eq!(verify(&pki, &crafted(&pki, &[0x80], &[])).unwrap().serial, "80");
        assert_eq!(verify(&pki, &crafted(&pki, &[1u8; 20], &[])).unwrap().serial, "01".repeat(20));
        assert_eq!(verify(&pki, &crafted(&pki, &[0], &[])), Err(VerifyError::Chain));
        assert_eq!(verify(&pki, &crafted(&pki, &[1u8; 21], &[])), Err(VerifyError::Chain));
    }

    #[test]
    fn roles_are_decoded_strictly() {
        let pki = Pki::new();
        let uris = ["urn:ztmesh:role:a", "https://example.com/", "urn:ztmesh:role:b:c"];
        assert_eq!(verify(&pki, &crafted(&pki, &[1], &uris)).unwrap().roles, ["a", "b:c"]);
        assert!(verify(&pki, &crafted(&pki, &[1], &[])).unwrap().roles.is_empty());
        for bad in [
            &["urn:ztmesh:role:"][..],
            &["urn:ztmesh:role:a b"],
            &["urn:ztmesh:role:a", "urn:ztmesh:role:a"],
            &["URN:ZTMESH:ROLE:a"],
        ] {
            assert_eq!(verify(&pki, &crafted(&pki, &[1], bad)), Err(VerifyError::Chain), "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("urn:ztmesh:role:r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(verify(&pki, &crafted(&pki, &[1], &many[..32])).unwrap().roles.len(), 32);
        assert_eq!(verify(&pki, &crafted(&pki, &[1], &many)), Err(VerifyError::Chain));
        // A second device URI is still refused, roles or not.
        assert_eq!(verify(&pki, &crafted(&pki, &[1], &["ztmesh://t/d"])), Err(VerifyError::Chain));
    }

    #[test]
    fn the_furthest_failure_is_reported() {
        let mut best = None;
        keep_furthest(&mut best, (STAGE_SIGNATURE, VerifyError::Chain));
        keep_furthest(&mut best, (STAGE_REVOCATION, VerifyError::Revoked));
        keep_furthest(&mut best, (STAGE_VALIDITY, VerifyError::Expired));
        assert_eq!(best, Some((STAGE_REVOCATION, VerifyError::Revoked)));
        const {
            assert!(STAGE_PIN > STAGE_REVOCATION && STAGE_REVOCATION > STAGE_EXPECTED && STAGE_EXPECTED > STAGE_NAMES);
            assert!(STAGE_NAMES > STAGE_IDENTITY && STAGE_IDENTITY > STAGE_USAGE);
            assert!(STAGE_USAGE > STAGE_VALIDITY && STAGE_VALIDITY > STAGE_STRUCTURE);
        }
    }

    #[test]
    fn a_renewed_root_with_the_same_key_still_verifies_when_the_old_one_expired() {
        // Two anchors with the same name and key: one expired, one valid. The path through the
        // valid one must win over the expired one, whatever their order in the store.
        let pki = Pki::new();
        let root = pki.root.parsed();
        let mut params = rcgen::CertificateParams::default();
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::OrganizationName, "ztmesh test");
        name.push(rcgen::DnType::CommonName, "ztmesh test root");
        params.distinguished_name = name;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(root.subject_key_id.clone().unwrap());
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(1_100_000_000).unwrap();
        let expired = params.self_signed(&crate::pki::signer::RcgenKey(pki.root.signer())).unwrap().der().to_vec();
        assert_eq!(ParsedCert::from_der(&expired).unwrap().subject, root.subject);
        let (_, csr) = device_csr("d", "t");
        let leaf = pki.site.issue(&csr, &crate::pki::DeviceCertRequest::new("d", "t")).unwrap();
        let chain = [leaf.der.as_slice(), pki.site.certificate_der()];
        for order in [[expired.as_slice(), pki.root.certificate_der()], [pki.root.certificate_der(), &expired]] {
            let trust = TrustStore::from_der(&order).unwrap();
            assert!(
                verify_peer(&chain, &trust, &RevocationSet::new(), &PeerPolicy::default(), SystemTime::now()).is_ok()
            );
        }
        let only_expired = TrustStore::from_der(&[&expired]).unwrap();
        assert_eq!(
            verify_peer(&chain, &only_expired, &RevocationSet::new(), &PeerPolicy::default(), SystemTime::now()),
            Err(VerifyError::Expired)
        );
    }
}
