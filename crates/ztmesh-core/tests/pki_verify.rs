//! `verify_peer` and revocation, through the public API: the accepted case and every way a
//! chain can be refused, including hand-crafted certificates a ztmesh CA would never issue.

use std::time::{Duration, SystemTime};

use ztmesh_core::pki::{
    build_csr, verify_peer, CaMaterial, CaParams, CertificateAuthority, CertificateRequest, CrlEntry, CrlParams,
    DeviceCertRequest, IssuedCertificate, PeerPolicy, RecordEntry, RequiredUsage, RevocationReason, RevocationSet,
    SoftwareSigner, TrustStore, VerifiedCrl, VerifiedRecord, VerifyError,
};
use ztmesh_core::ErrorCode;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A root, a site CA under it, and the trust store holding the root.
struct Pki {
    root: CertificateAuthority,
    site: CertificateAuthority,
    site_material: CaMaterial,
    trust: TrustStore,
    now: SystemTime,
}

impl Pki {
    fn new(name: &str) -> Self {
        let now = SystemTime::now();
        let root = CertificateAuthority::create_root(&CaParams::root(format!("{name} root"), "ztmesh"))
            .unwrap()
            .authority()
            .unwrap();
        let site_material = root.create_site_ca(&CaParams::site(format!("{name} site"), "ztmesh")).unwrap();
        let site = site_material.authority().unwrap();
        let trust = TrustStore::from_der(&[root.certificate_der()]).unwrap();
        Self { root, site, site_material, trust, now }
    }

    /// A device certificate for a fresh key.
    fn device(&self, device_id: &str, tenant: &str) -> (SoftwareSigner, IssuedCertificate) {
        let signer = SoftwareSigner::generate().unwrap();
        let issued = self.issue_for(&signer, DeviceCertRequest::new(device_id, tenant));
        (signer, issued)
    }

    fn issue_for(&self, signer: &SoftwareSigner, request: DeviceCertRequest) -> IssuedCertificate {
        let csr = build_csr(signer, &request.device_id, &request.tenant).unwrap();
        self.site.issue(&CertificateRequest::from_der(&csr.der).unwrap(), &request).unwrap()
    }

    fn verify(&self, chain: &[&[u8]], policy: &PeerPolicy) -> Result<ztmesh_core::pki::PeerIdentity, VerifyError> {
        self.verify_at(chain, &RevocationSet::new(), policy, self.now)
    }

    fn verify_at(
        &self,
        chain: &[&[u8]],
        revocations: &RevocationSet,
        policy: &PeerPolicy,
        now: SystemTime,
    ) -> Result<ztmesh_core::pki::PeerIdentity, VerifyError> {
        verify_peer(chain, &self.trust, revocations, policy, now)
    }

    /// A revocation set holding one record from the site CA.
    fn revoked_by_site(&self, entries: &[RecordEntry]) -> RevocationSet {
        let bytes = self.site.sign_revocation_record(1, self.now, entries).unwrap();
        let issuer = self.trust.issuer(&[self.site.certificate_der(), self.root.certificate_der()], self.now).unwrap();
        let mut set = RevocationSet::new();
        set.add_record(&VerifiedRecord::from_bytes(&bytes, &issuer).unwrap()).unwrap();
        set
    }

    /// rcgen's view of the site CA, to sign certificates ztmesh would never issue.
    fn rogue_issuer(&self) -> rcgen::Issuer<'static, rcgen::KeyPair> {
        let key = rcgen::KeyPair::try_from(self.site_material.private_key_pkcs8.as_slice()).unwrap();
        rcgen::Issuer::from_ca_cert_der(&self.site.certificate_der().into(), key).unwrap()
    }
}

/// rcgen parameters that look like a ztmesh device certificate.
fn device_like_params(cn: &str, ou: &str, uri: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "ztmesh");
    name.push(rcgen::DnType::OrganizationalUnitName, ou);
    name.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name = name;
    params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    params
}

/// Signs `params` for a fresh key with the site CA's key, outside ztmesh's CA policy.
fn rogue_cert(pki: &Pki, params: &rcgen::CertificateParams) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    params.signed_by(&key, &pki.rogue_issuer()).unwrap().der().to_vec()
}

fn policy() -> PeerPolicy {
    PeerPolicy::default()
}

#[test]
fn a_good_chain_yields_the_identity() {
    let pki = Pki::new("a");
    let signer = SoftwareSigner::generate().unwrap();
    let mut request = DeviceCertRequest::new("tablet-1", "property-123");
    request.roles = vec!["staff".into(), "pos:cashier".into()];
    let cert = pki.issue_for(&signer, request);

    let strict = PeerPolicy {
        expected_device: Some("tablet-1".into()),
        expected_tenant: Some("property-123".into()),
        required_usage: RequiredUsage::ClientAuth,
        pins: Some(vec![[0u8; 32], cert.spki_sha256]),
        clock_skew: Duration::from_secs(60),
    };
    let peer = pki.verify(&[&cert.der, pki.site.certificate_der()], &strict).unwrap();
    assert_eq!(peer.device_id, "tablet-1");
    assert_eq!(peer.tenant, "property-123");
    assert_eq!(peer.roles, ["staff", "pos:cashier"]);
    assert_eq!(peer.serial, cert.serial);
    assert_eq!(peer.spki_sha256, cert.spki_sha256);
    assert_eq!(peer.not_after, cert.not_after);
    assert_eq!(peer.serial, peer.serial.to_lowercase());

    // The root may be presented too (it equals the anchor), in PEM as well.
    let pem = format!("{}{}{}", cert.pem, pki.site.certificate_pem(), pki.root.certificate_pem());
    let ders = ztmesh_core::pki::pem::parse_certificates(&pem).unwrap();
    let chain: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
    assert_eq!(pki.verify(&chain, &strict).unwrap(), peer);
    for usage in [RequiredUsage::ServerAuth, RequiredUsage::Any] {
        let policy = PeerPolicy { required_usage: usage, ..policy() };
        assert!(pki.verify(&[&cert.der, pki.site.certificate_der()], &policy).is_ok());
    }
}

#[test]
fn validity_is_checked_with_skew() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("d", "t");
    let chain = [cert.der.as_slice(), pki.site.certificate_der()];
    let none = RevocationSet::new();
    let skew = |secs| PeerPolicy { clock_skew: Duration::from_secs(secs), ..policy() };

    // Expired: after notAfter, unless within the skew.
    let after = cert.not_after + Duration::from_secs(120);
    assert_eq!(pki.verify_at(&chain, &none, &skew(0), after), Err(VerifyError::Expired));
    assert!(pki.verify_at(&chain, &none, &skew(300), after).is_ok());
    assert_eq!(pki.verify_at(&chain, &none, &skew(300), cert.not_after + DAY), Err(VerifyError::Expired));

    // Not yet valid: before notBefore (5 minutes back from issuance), unless within the skew.
    let before = cert.not_before - Duration::from_secs(120);
    assert_eq!(pki.verify_at(&chain, &none, &skew(0), before), Err(VerifyError::NotYetValid));
    assert!(pki.verify_at(&chain, &none, &skew(300), before).is_ok());
    assert_eq!(pki.verify_at(&chain, &none, &skew(300), pki.now - DAY), Err(VerifyError::NotYetValid));

    // An expired site CA expires the chain: verify far in the future with a long-lived leaf.
    let signer = SoftwareSigner::generate().unwrap();
    let mut long = DeviceCertRequest::new("d", "t");
    long.validity = 10 * 365 * DAY;
    let long = pki.issue_for(&signer, long);
    // Clamped to the site CA's end, so both end together; one second later both are expired.
    assert_eq!(
        pki.verify_at(
            &[&long.der, pki.site.certificate_der()],
            &none,
            &skew(0),
            long.not_after + Duration::from_secs(1)
        ),
        Err(VerifyError::Expired)
    );
}

#[test]
fn revocation_by_serial_by_key_and_of_the_site_ca() {
    let pki = Pki::new("a");
    let (signer, first) = pki.device("d", "t");
    let second = pki.issue_for(&signer, DeviceCertRequest::new("d", "t"));
    let (_, other) = pki.device("other", "t");
    let chain = |c: &IssuedCertificate| -> Vec<Vec<u8>> { vec![c.der.clone(), pki.site.certificate_der().to_vec()] };
    let check = |set: &RevocationSet, c: &IssuedCertificate| {
        let owned = chain(c);
        let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        pki.verify_at(&refs, set, &policy(), pki.now)
    };

    // By serial only (the SPKI hash in the entry is of an unrelated key).
    let set = pki.revoked_by_site(&[RecordEntry {
        serial: hex::decode(&first.serial).unwrap(),
        spki_sha256: [7u8; 32],
        reason: RevocationReason::Superseded,
        revoked_at: pki.now,
    }]);
    assert_eq!(check(&set, &first), Err(VerifyError::Revoked));
    assert!(check(&set, &second).is_ok());

    // By key: revoking the first certificate's key revokes the second, which shares it.
    let set = pki.revoked_by_site(&[RecordEntry {
        serial: hex::decode(&first.serial).unwrap(),
        spki_sha256: first.spki_sha256,
        reason: RevocationReason::KeyCompromise,
        revoked_at: pki.now,
    }]);
    assert_eq!(first.spki_sha256, second.spki_sha256);
    assert_ne!(first.serial, second.serial);
    assert_eq!(check(&set, &second), Err(VerifyError::Revoked));
    assert!(check(&set, &other).is_ok());

    // The site CA revoked by the root's CRL revokes every device under it.
    let site_cert = x509_parser::parse_x509_certificate(pki.site.certificate_der()).unwrap().1;
    let mut params = CrlParams::new(1, pki.now);
    params.entries.push(CrlEntry {
        serial: site_cert.raw_serial().to_vec(),
        revoked_at: pki.now,
        reason: RevocationReason::CaCompromise,
    });
    let crl = pki.root.issue_crl(&params).unwrap();
    let root_issuer = pki.trust.issuer(&[pki.root.certificate_der()], pki.now).unwrap();
    let mut set = RevocationSet::new();
    set.add_crl(&VerifiedCrl::from_der(&crl.der, &root_issuer).unwrap(), pki.now).unwrap();
    assert_eq!(check(&set, &other), Err(VerifyError::Revoked));
    assert_eq!(check(&set, &first).unwrap_err().code(), "ERR_CERT_REVOKED");
}

/// P-256's group order n.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Splits one DER TLV off `input`: `(tag, content, rest)`.
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        l if l < 0x80 => (usize::from(l), 2),
        0x81 => (usize::from(input[2]), 3),
        0x82 => (usize::from(input[2]) << 8 | usize::from(input[3]), 4),
        _ => panic!("unsupported length"),
    };
    (tag, &input[header..header + len], &input[header + len..])
}

fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        l if l < 0x80 => out.push(l as u8),
        l if l < 0x100 => out.extend([0x81, l as u8]),
        l => out.extend([0x82, (l >> 8) as u8, l as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// Re-encodes a certificate's ECDSA signature `(r, s)` as `(r, n − s)`: another valid
/// signature of the same TBS, so a certificate with a different fingerprint.
fn malleate(cert: &[u8]) -> Vec<u8> {
    let (_, body, _) = tlv(cert);
    let (_, _, after_tbs) = tlv(body);
    let tbs = &body[..body.len() - after_tbs.len()];
    let (_, _, after_alg) = tlv(after_tbs);
    let alg = &after_tbs[..after_tbs.len() - after_alg.len()];
    let (_, bits, _) = tlv(after_alg);
    let (_, sig, _) = tlv(&bits[1..]);
    let (_, r, rest) = tlv(sig);
    let (_, s, _) = tlv(rest);
    let mut s32 = [0u8; 32];
    let s = &s[s.len().saturating_sub(32)..];
    s32[32 - s.len()..].copy_from_slice(s);
    let mut flipped = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(s32[i]) - borrow;
        borrow = i16::from(d < 0);
        flipped[i] = (d + 256 * borrow) as u8;
    }
    let mut s_int: Vec<u8> = flipped.iter().copied().skip_while(|b| *b == 0).collect();
    if s_int[0] & 0x80 != 0 {
        s_int.insert(0, 0);
    }
    let new_sig = encode(0x30, &[encode(0x02, r), encode(0x02, &s_int)].concat());
    let new_bits = encode(0x03, &[&[0u8][..], &new_sig].concat());
    encode(0x30, &[tbs, alg, &new_bits].concat())
}

#[test]
fn a_malleated_signature_does_not_escape_revocation() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("d", "t");
    let twin = malleate(&cert.der);
    assert_ne!(twin, cert.der, "a different encoding, so a different fingerprint");
    let site = pki.site.certificate_der();
    // ring accepts high-s ECDSA signatures, so the twin verifies as the same identity…
    let original = pki.verify(&[&cert.der, site], &policy()).unwrap();
    assert_eq!(pki.verify(&[&twin, site], &policy()).unwrap(), original);
    // …and revocation, keyed by serial, catches it all the same.
    let set = pki.revoked_by_site(&[RecordEntry {
        serial: hex::decode(&cert.serial).unwrap(),
        spki_sha256: [0u8; 32],
        reason: RevocationReason::KeyCompromise,
        revoked_at: pki.now,
    }]);
    assert_eq!(pki.verify_at(&[&twin, site], &set, &policy(), pki.now), Err(VerifyError::Revoked));
    // So does revocation by key alone.
    let set = pki.revoked_by_site(&[RecordEntry {
        serial: vec![1],
        spki_sha256: cert.spki_sha256,
        reason: RevocationReason::KeyCompromise,
        revoked_at: pki.now,
    }]);
    assert_eq!(pki.verify_at(&[&twin, site], &set, &policy(), pki.now), Err(VerifyError::Revoked));
}

#[test]
fn tenant_device_pin_and_usage_policies() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("tablet-1", "property-123");
    let chain = [cert.der.as_slice(), pki.site.certificate_der()];
    let tenant = PeerPolicy { expected_tenant: Some("property-999".into()), ..policy() };
    assert_eq!(pki.verify(&chain, &tenant), Err(VerifyError::TenantMismatch));
    let device = PeerPolicy { expected_device: Some("tablet-2".into()), ..policy() };
    assert_eq!(pki.verify(&chain, &device), Err(VerifyError::DeviceMismatch));
    // Case matters: ids compare byte for byte.
    let case = PeerPolicy { expected_device: Some("Tablet-1".into()), ..policy() };
    assert_eq!(pki.verify(&chain, &case), Err(VerifyError::DeviceMismatch));
    let pins = PeerPolicy { pins: Some(vec![[1u8; 32]]), ..policy() };
    assert_eq!(pki.verify(&chain, &pins), Err(VerifyError::Pin));
    let empty = PeerPolicy { pins: Some(Vec::new()), ..policy() };
    assert_eq!(pki.verify(&chain, &empty), Err(VerifyError::Pin));

    // A certificate with clientAuth only is no server, and one without EKU is nothing.
    let mut client_only = device_like_params("c", "property-123", "ztmesh://property-123/c");
    client_only.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_only = rogue_cert(&pki, &client_only);
    let server = PeerPolicy { required_usage: RequiredUsage::ServerAuth, ..policy() };
    assert_eq!(pki.verify(&[&client_only, pki.site.certificate_der()], &server), Err(VerifyError::KeyUsage));
    assert!(pki.verify(&[&client_only, pki.site.certificate_der()], &policy()).is_ok());
    let mut no_eku = device_like_params("c", "t", "ztmesh://t/c");
    no_eku.extended_key_usages.clear();
    let no_eku = rogue_cert(&pki, &no_eku);
    assert_eq!(pki.verify(&[&no_eku, pki.site.certificate_der()], &policy()), Err(VerifyError::KeyUsage));
    let mut no_ku = device_like_params("c", "t", "ztmesh://t/c");
    no_ku.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
    let no_ku = rogue_cert(&pki, &no_ku);
    assert_eq!(pki.verify(&[&no_ku, pki.site.certificate_der()], &policy()), Err(VerifyError::KeyUsage));
}

#[test]
fn identity_inside_the_certificate_must_agree() {
    let pki = Pki::new("a");
    let site = pki.site.certificate_der();
    for (cn, ou, uri) in [
        ("a", "t", "ztmesh://t/b"),
        ("a", "t", "ztmesh://u/a"),
        ("a", "t", "https://t/a"),
        ("a/b", "t", "ztmesh://t/a/b"),
    ] {
        let cert = rogue_cert(&pki, &device_like_params(cn, ou, uri));
        assert_eq!(pki.verify(&[&cert, site], &policy()), Err(VerifyError::Chain), "{cn} {ou} {uri}");
    }
    // Two ztmesh URIs, even if one matches.
    let mut two = device_like_params("a", "t", "ztmesh://t/a");
    two.subject_alt_names.push(rcgen::SanType::URI("ztmesh://t/b".try_into().unwrap()));
    assert_eq!(pki.verify(&[&rogue_cert(&pki, &two), site], &policy()), Err(VerifyError::Chain));
    // Extra non-ztmesh names are ignored.
    let mut dns = device_like_params("a", "t", "ztmesh://t/a");
    dns.subject_alt_names.push(rcgen::SanType::DnsName("a.example".try_into().unwrap()));
    assert!(pki.verify(&[&rogue_cert(&pki, &dns), site], &policy()).is_ok());
}

#[test]
fn unknown_critical_extensions_are_refused() {
    let pki = Pki::new("a");
    let site = pki.site.certificate_der();
    let mut critical = device_like_params("a", "t", "ztmesh://t/a");
    let mut ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
    ext.set_criticality(true);
    critical.custom_extensions.push(ext);
    assert_eq!(pki.verify(&[&rogue_cert(&pki, &critical), site], &policy()), Err(VerifyError::Chain));
    // The same extension, non-critical, is ignored.
    let mut benign = device_like_params("a", "t", "ztmesh://t/a");
    benign
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]));
    assert!(pki.verify(&[&rogue_cert(&pki, &benign), site], &policy()).is_ok());
    // A second keyUsage extension (rcgen writes the OID as given).
    let mut duplicate = device_like_params("a", "t", "ztmesh://t/a");
    duplicate
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, 0x05, 0xa0]));
    assert_eq!(pki.verify(&[&rogue_cert(&pki, &duplicate), site], &policy()), Err(VerifyError::Chain));
}

#[test]
fn other_key_types_are_refused() {
    let pki = Pki::new("a");
    let site = pki.site.certificate_der();
    // A P-384 leaf key, signed correctly by the site CA.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384 = device_like_params("a", "t", "ztmesh://t/a").signed_by(&key, &pki.rogue_issuer()).unwrap();
    assert_eq!(pki.verify(&[p384.der(), site], &policy()), Err(VerifyError::Chain));
    // An Ed25519 root cannot be a trust anchor.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ed_root = params.self_signed(&key).unwrap();
    assert_eq!(TrustStore::from_der(&[ed_root.der()]).unwrap_err(), VerifyError::Chain);
}

#[test]
fn chains_that_do_not_lead_to_a_trusted_root() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("d", "t");
    let site = pki.site.certificate_der();
    let root = pki.root.certificate_der();

    // Missing intermediate, wrong order, a CA presented as leaf.
    assert_eq!(pki.verify(&[&cert.der], &policy()), Err(VerifyError::Chain));
    assert_eq!(pki.verify(&[&cert.der, root], &policy()), Err(VerifyError::Chain));
    assert_eq!(pki.verify(&[site, &cert.der], &policy()), Err(VerifyError::KeyUsage));
    assert_eq!(pki.verify(&[site], &policy()), Err(VerifyError::KeyUsage));
    assert_eq!(pki.verify(&[root], &policy()), Err(VerifyError::KeyUsage));
    // Too long, empty.
    assert_eq!(pki.verify(&[&cert.der, site, root, root], &policy()), Err(VerifyError::Chain));
    assert_eq!(pki.verify(&[], &policy()), Err(VerifyError::Chain));

    // Issued under another, untrusted root; even when that root is presented.
    let other = Pki::new("b");
    let (_, foreign) = other.device("d", "t");
    let foreign_chain = [foreign.der.as_slice(), other.site.certificate_der(), other.root.certificate_der()];
    assert_eq!(pki.verify(&foreign_chain, &policy()), Err(VerifyError::Chain));
    // A foreign site CA signing under our site's name is caught by the signature.
    assert_eq!(pki.verify(&[&foreign.der, site], &policy()), Err(VerifyError::Chain));

    // A self-signed leaf that looks like a device.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = device_like_params("d", "t", "ztmesh://t/d");
    params.use_authority_key_identifier_extension = false;
    let self_signed = params.self_signed(&key).unwrap().der().to_vec();
    assert_eq!(pki.verify(&[&self_signed], &policy()), Err(VerifyError::Chain));
    assert_eq!(pki.verify(&[&self_signed, site], &policy()), Err(VerifyError::Chain));

    // A device certificate used as an issuer: CA:false.
    let device_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let device_cert = rogue_cert_with_key(&pki, &device_like_params("issuer", "t", "ztmesh://t/issuer"), &device_key);
    let issuer = rcgen::Issuer::from_ca_cert_der(&device_cert.as_slice().into(), device_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let under_device = device_like_params("d", "t", "ztmesh://t/d").signed_by(&key, &issuer).unwrap().der().to_vec();
    assert_eq!(pki.verify(&[&under_device, &device_cert, site], &policy()), Err(VerifyError::Chain));
    assert_eq!(pki.verify(&[&under_device, &device_cert], &policy()), Err(VerifyError::Chain));
}

fn rogue_cert_with_key(pki: &Pki, params: &rcgen::CertificateParams, key: &rcgen::KeyPair) -> Vec<u8> {
    params.signed_by(key, &pki.rogue_issuer()).unwrap().der().to_vec()
}

#[test]
fn path_length_is_enforced() {
    // A root with pathLen 0 may not have a site CA below it.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::OrganizationName, "ztmesh");
    name.push(rcgen::DnType::CommonName, "strict root");
    params.distinguished_name = name;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let root_der = params.self_signed(&key).unwrap().der().to_vec();
    let root = CertificateAuthority::load(&root_der, &key.serialize_der()).unwrap();
    assert!(root.create_site_ca(&CaParams::site("s", "ztmesh")).is_err());

    // Forge the site CA with rcgen anyway.
    let issuer = rcgen::Issuer::from_ca_cert_der(&root_der.as_slice().into(), key).unwrap();
    let site_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut site_params = params.clone();
    site_params.distinguished_name.push(rcgen::DnType::CommonName, "forged site");
    site_params.use_authority_key_identifier_extension = true;
    let site_der = site_params.signed_by(&site_key, &issuer).unwrap().der().to_vec();
    let site = CertificateAuthority::load(&site_der, &site_key.serialize_der()).unwrap();
    let signer = SoftwareSigner::generate().unwrap();
    let csr = CertificateRequest::from_der(&build_csr(&signer, "d", "t").unwrap().der).unwrap();
    let leaf = site.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
    let trust = TrustStore::from_der(&[&root_der]).unwrap();
    let result = verify_peer(&[&leaf.der, &site_der], &trust, &RevocationSet::new(), &policy(), SystemTime::now());
    assert_eq!(result, Err(VerifyError::Chain));
    // Issued directly by the root, the same leaf profile is fine (pathLen 0 allows a leaf).
    let direct = root.issue(&csr, &DeviceCertRequest::new("d", "t")).unwrap();
    assert!(verify_peer(&[&direct.der], &trust, &RevocationSet::new(), &policy(), SystemTime::now()).is_ok());
}

#[test]
fn two_roots_during_a_rollover() {
    let old = Pki::new("old");
    let new = Pki::new("new");
    let trust = TrustStore::from_pem(&format!("{}{}", old.root.certificate_pem(), new.root.certificate_pem())).unwrap();
    assert_eq!(trust.len(), 2);
    for pki in [&old, &new] {
        let (_, cert) = pki.device("d", "t");
        let chain = [cert.der.as_slice(), pki.site.certificate_der()];
        assert!(verify_peer(&chain, &trust, &RevocationSet::new(), &policy(), pki.now).is_ok());
    }
    // A third root is not trusted.
    let third = Pki::new("third");
    let (_, cert) = third.device("d", "t");
    let chain = [cert.der.as_slice(), third.site.certificate_der()];
    assert_eq!(verify_peer(&chain, &trust, &RevocationSet::new(), &policy(), third.now), Err(VerifyError::Chain));
}

#[test]
fn malformed_and_truncated_input() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("d", "t");
    let site = pki.site.certificate_der();
    for cut in [1, 2, 10, 200, 300] {
        let leaf_len = cert.der.len().saturating_sub(cut);
        let site_len = site.len().saturating_sub(cut);
        assert_eq!(pki.verify(&[&cert.der[..leaf_len], site], &policy()), Err(VerifyError::Malformed), "{cut}");
        assert_eq!(pki.verify(&[&cert.der, &site[..site_len]], &policy()), Err(VerifyError::Malformed), "{cut}");
    }
    assert_eq!(pki.verify(&[&[], site], &policy()), Err(VerifyError::Malformed));
    let mut trailing = cert.der.clone();
    trailing.push(0);
    assert_eq!(pki.verify(&[&trailing, site], &policy()), Err(VerifyError::Malformed));
    assert_eq!(pki.verify(&[b"not a certificate", site], &policy()), Err(VerifyError::Malformed));
    // A flipped bit in the signed part breaks the signature.
    let mut flipped = cert.der.clone();
    let at = flipped.windows(3).position(|w| w == [0x0c, 0x01, b'd']).unwrap() + 2;
    flipped[at] = b'e';
    assert_eq!(pki.verify(&[&flipped, site], &policy()), Err(VerifyError::Chain));

    // PEM problems are ERR_CERT_MALFORMED too.
    for bad in ["", "junk", &cert.pem[..cert.pem.len() - 10], &cert.pem.replace("CERTIFICATE", "X509 CRL")] {
        assert_eq!(ztmesh_core::pki::pem::parse_certificates(bad), Err(VerifyError::Malformed));
        assert_eq!(TrustStore::from_pem(bad).unwrap_err().code(), "ERR_CERT_MALFORMED");
    }
    // A trust store of a device certificate, or of nothing, is refused.
    assert_eq!(TrustStore::from_der(&[&cert.der]).unwrap_err(), VerifyError::Chain);
    assert_eq!(TrustStore::from_der(&[site]).unwrap_err(), VerifyError::Chain);
    assert_eq!(TrustStore::from_der(&[]).unwrap_err(), VerifyError::Chain);
}

#[test]
fn revocation_issuers_must_be_trusted_crl_signers() {
    let pki = Pki::new("a");
    let (_, cert) = pki.device("d", "t");
    let site = pki.site.certificate_der();
    let root = pki.root.certificate_der();
    assert!(pki.trust.issuer(&[site], pki.now).is_ok());
    assert!(pki.trust.issuer(&[site, root], pki.now).is_ok());
    assert!(pki.trust.issuer(&[root], pki.now).is_ok());
    assert_eq!(pki.trust.issuer(&[&cert.der, site], pki.now).unwrap_err(), VerifyError::KeyUsage);
    let other = Pki::new("b");
    assert_eq!(pki.trust.issuer(&[other.site.certificate_der()], pki.now).unwrap_err(), VerifyError::Chain);

    // A record signed by another CA cannot be passed off as this site's.
    let foreign = other.site.sign_revocation_record(1, pki.now, &[]).unwrap();
    let issuer = pki.trust.issuer(&[site], pki.now).unwrap();
    assert_eq!(VerifiedRecord::from_bytes(&foreign, &issuer).unwrap_err().code(), "ERR_REVOCATION_ISSUER");
    // Nor a CRL.
    let crl = other.site.issue_crl(&CrlParams::new(1, pki.now)).unwrap();
    assert_eq!(VerifiedCrl::from_der(&crl.der, &issuer).unwrap_err().code(), "ERR_REVOCATION_ISSUER");
}
