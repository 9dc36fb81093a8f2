//! The facts the PKI needs from one X.509 certificate, read once by x509-parser into an owned
//! value.
//!
//! Parsing only fails when the DER does not parse at all; everything else (an unsupported
//! algorithm, a duplicate extension, a name that is not a string) is recorded as a fact, so
//! the verifier decides what each means and reports the right error.

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Class, Tag};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, X509Name};

use super::der::{self, oid};
use super::signer::is_uncompressed_p256_point;

/// keyUsage bits as x509-parser numbers them (bit 0 is digitalSignature).
pub(crate) mod key_usage {
    pub(crate) const DIGITAL_SIGNATURE: u16 = 1 << 0;
    pub(crate) const KEY_CERT_SIGN: u16 = 1 << 5;
    pub(crate) const CRL_SIGN: u16 = 1 << 6;
}

/// basicConstraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BasicConstraints {
    pub(crate) ca: bool,
    pub(crate) path_len: Option<u32>,
}

/// The extended key usages the PKI looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExtendedKeyUsage {
    pub(crate) server_auth: bool,
    pub(crate) client_auth: bool,
}

/// One name an X.509 name constraint bounds, as far as the PKI reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subtree {
    /// A directoryName: the attributes (type OID, string value or `None` when not a string) of
    /// a name prefix, in order.
    Directory(Vec<(Vec<u8>, Option<String>)>),
    /// A uniformResourceIdentifier constraint: a host (`.suffix` for subdomains).
    Uri(String),
    /// Any other kind of name (DNS, IP, e-mail…): ztmesh certificates carry none it checks.
    Other,
}

/// A CA's nameConstraints: what the certificates below it may be named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NameConstraints {
    pub(crate) permitted: Vec<Subtree>,
    pub(crate) excluded: Vec<Subtree>,
}

impl NameConstraints {
    /// Whether a certificate whose subject has `subject` attributes, and whose device URI (a
    /// device certificate's `ztmesh://<tenant>/<device>`) has host `uri_host`, is inside these
    /// constraints. directoryName constraints match a prefix of the subject's attributes, value
    /// for value exactly (ztmesh names are case-sensitive); URI constraints match the device
    /// URI's host, exactly or, for a `.suffix`, as a subdomain. A kind of constraint applies
    /// only when the certificate has a name of that kind; role URNs and other names are not
    /// checked, and neither are other kinds of constraint.
    pub(crate) fn permits(&self, subject: &[(Vec<u8>, Option<String>)], uri_host: Option<&str>) -> bool {
        let within_directory = |base: &[(Vec<u8>, Option<String>)]| {
            subject.len() >= base.len() && subject.iter().zip(base).all(|(a, b)| a.1.is_some() && a == b)
        };
        let within_uri = |base: &str, host: &str| match base.strip_prefix('.') {
            Some(suffix) => host.strip_suffix(suffix).is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => host == base,
        };
        let directories = |list: &[Subtree]| -> Vec<Vec<(Vec<u8>, Option<String>)>> {
            list.iter().filter_map(|s| if let Subtree::Directory(d) = s { Some(d.clone()) } else { None }).collect()
        };
        let uris = |list: &[Subtree]| -> Vec<String> {
            list.iter().filter_map(|s| if let Subtree::Uri(u) = s { Some(u.clone()) } else { None }).collect()
        };
        let permitted = directories(&self.permitted);
        if !permitted.is_empty() && !permitted.iter().any(|base| within_directory(base)) {
            return false;
        }
        if directories(&self.excluded).iter().any(|base| within_directory(base)) {
            return false;
        }
        if let Some(host) = uri_host {
            let permitted = uris(&self.permitted);
            if !permitted.is_empty() && !permitted.iter().any(|base| within_uri(base, host)) {
                return false;
            }
            if uris(&self.excluded).iter().any(|base| within_uri(base, host)) {
                return false;
            }
        }
        true
    }
}

/// One parsed certificate.
#[derive(Debug, Clone)]
pub(crate) struct ParsedCert {
    /// The whole certificate as given.
    pub(crate) der: Vec<u8>,
    /// The signed part, `tbsCertificate`, as given.
    pub(crate) tbs: Vec<u8>,
    /// The signature value (a DER `ECDSA-Sig-Value` when the algorithm is ECDSA).
    pub(crate) signature: Vec<u8>,
    /// Both algorithm fields are ecdsa-with-SHA256 without parameters, and the signature BIT
    /// STRING has no unused bits.
    pub(crate) ecdsa_sha256: bool,
    /// The version is v3.
    pub(crate) v3: bool,
    /// The serial's canonical magnitude; `None` for zero, negative or over 20 octets.
    pub(crate) serial: Option<Vec<u8>>,
    /// The issuer name, DER as given.
    pub(crate) issuer: Vec<u8>,
    /// The subject name, DER as given.
    pub(crate) subject: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo, DER as given.
    pub(crate) spki_sha256: [u8; 32],
    /// The public key point when the key is ECDSA P-256 (named curve, uncompressed).
    pub(crate) p256_point: Option<Vec<u8>>,
    /// `notBefore`, Unix seconds.
    pub(crate) not_before: i64,
    /// `notAfter`, Unix seconds.
    pub(crate) not_after: i64,
    /// basicConstraints, if present.
    pub(crate) basic_constraints: Option<BasicConstraints>,
    /// keyUsage bits, if present.
    pub(crate) key_usage: Option<u16>,
    /// extKeyUsage, if present.
    pub(crate) extended_key_usage: Option<ExtendedKeyUsage>,
    /// The authority key identifier's keyIdentifier, if present.
    pub(crate) authority_key_id: Option<Vec<u8>>,
    /// The subject key identifier, if present.
    pub(crate) subject_key_id: Option<Vec<u8>>,
    /// The URIs in subjectAltName, in order (the device URI and the role URIs among them).
    pub(crate) san_uris: Vec<String>,
    /// The subject's commonName values.
    pub(crate) common_names: Vec<String>,
    /// The subject's organizationalUnitName values.
    pub(crate) org_units: Vec<String>,
    /// The subject's organizationName values.
    pub(crate) organisations: Vec<String>,
    /// Every attribute of the subject, in order: type OID and string value (`None` when not a
    /// string). What directoryName constraints are matched against.
    pub(crate) subject_attributes: Vec<(Vec<u8>, Option<String>)>,
    /// nameConstraints, if present.
    pub(crate) name_constraints: Option<NameConstraints>,
    /// Every CN, OU and O value is a string, and every RDN of subject and issuer holds exactly
    /// one attribute.
    pub(crate) names_well_formed: bool,
    /// No extension appears twice, every extension x509-parser knows parsed, and no critical
    /// extension is one the PKI does not understand.
    pub(crate) extensions_acceptable: bool,
}

impl ParsedCert {
    /// Parses one certificate; `Err` unless `der` is exactly one well-formed certificate.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, ()> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|_| ())?;
        if !rest.is_empty() || !strict_outer_framing(der) {
            return Err(());
        }
        let tbs = &cert.tbs_certificate;
        let ecdsa_sha256 = is_ecdsa_sha256(&cert.signature_algorithm)
            && is_ecdsa_sha256(&tbs.signature)
            && cert.signature_value.unused_bits == 0;
        let spki = &tbs.subject_pki;
        let p256_point = (is_p256_key(&spki.algorithm)
            && spki.subject_public_key.unused_bits == 0
            && is_uncompressed_p256_point(&spki.subject_public_key.data))
        .then(|| spki.subject_public_key.data.to_vec());

        let mut parsed = Self {
            der: der.to_vec(),
            tbs: tbs.as_ref().to_vec(),
            signature: cert.signature_value.data.to_vec(),
            ecdsa_sha256,
            v3: tbs.version.0 == 2,
            serial: der::canonical_serial(tbs.raw_serial()),
            issuer: tbs.issuer.as_raw().to_vec(),
            subject: tbs.subject.as_raw().to_vec(),
            spki_sha256: super::sha256(spki.raw),
            p256_point,
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            basic_constraints: None,
            key_usage: None,
            extended_key_usage: None,
            authority_key_id: None,
            subject_key_id: None,
            san_uris: Vec::new(),
            common_names: Vec::new(),
            org_units: Vec::new(),
            organisations: Vec::new(),
            subject_attributes: Vec::new(),
            name_constraints: None,
            names_well_formed: single_valued(&tbs.issuer) && single_valued(&tbs.subject),
            extensions_acceptable: true,
        };
        parsed.read_subject(&tbs.subject);
        parsed.read_extensions(tbs.extensions());
        Ok(parsed)
    }

    fn read_subject(&mut self, subject: &X509Name<'_>) {
        for attribute in subject.iter_attributes() {
            let kind = attribute.attr_type().as_bytes();
            self.subject_attributes.push((kind.to_vec(), attribute.as_str().ok().map(str::to_owned)));
            let list = if kind == oid::COMMON_NAME {
                &mut self.common_names
            } else if kind == oid::ORGANIZATIONAL_UNIT {
                &mut self.org_units
            } else if kind == oid::ORGANIZATION {
                &mut self.organisations
            } else {
                continue;
            };
            match attribute.as_str() {
                Ok(value) => list.push(value.to_owned()),
                Err(_) => self.names_well_formed = false,
            }
        }
    }

    fn read_extensions(&mut self, extensions: &[x509_parser::extensions::X509Extension<'_>]) {
        for (i, extension) in extensions.iter().enumerate() {
            let id = extension.oid.as_bytes();
            if extensions.iter().take(i).any(|e| e.oid.as_bytes() == id) {
                self.extensions_acceptable = false;
            }
            let understood = match extension.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    self.basic_constraints = Some(BasicConstraints { ca: bc.ca, path_len: bc.path_len_constraint });
                    true
                }
                ParsedExtension::KeyUsage(ku) => {
                    self.key_usage = Some(ku.flags);
                    true
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    self.extended_key_usage =
                        Some(ExtendedKeyUsage { server_auth: eku.server_auth, client_auth: eku.client_auth });
                    true
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    self.authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
                    true
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => {
                    self.subject_key_id = Some(ski.0.to_vec());
                    true
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::URI(uri) = name {
                            self.san_uris.push((*uri).to_owned());
                        }
                    }
                    true
                }
                ParsedExtension::NameConstraints(constraints) => {
                    let subtrees = |list: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
                        list.iter().flatten().map(|subtree| subtree_of(&subtree.base)).collect()
                    };
                    self.name_constraints = Some(NameConstraints {
                        permitted: subtrees(&constraints.permitted_subtrees),
                        excluded: subtrees(&constraints.excluded_subtrees),
                    });
                    true
                }
                ParsedExtension::ParseError { .. } => {
                    self.extensions_acceptable = false;
                    false
                }
                _ => false,
            };
            if extension.critical && !understood {
                self.extensions_acceptable = false;
            }
        }
    }

    /// Whether this certificate's signature verifies under `issuer_point` (ECDSA P-256 with
    /// SHA-256 only).
    pub(crate) fn signed_by(&self, issuer_point: &[u8]) -> bool {
        self.ecdsa_sha256 && super::signer::verify_p256(issuer_point, &self.tbs, &self.signature)
    }

    /// Whether this certificate names `issuer` as its issuer: raw subject/issuer names equal,
    /// and key identifiers equal when both are present.
    pub(crate) fn names_issuer(&self, issuer: &ParsedCert) -> bool {
        self.issuer == issuer.subject
            && match (&self.authority_key_id, &issuer.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    }

    /// Whether subject and issuer are the same name (a root, or a self-issued certificate).
    pub(crate) fn is_self_issued(&self) -> bool {
        self.issuer == self.subject
    }

    /// Whether this is a CA certificate allowed to sign certificates.
    pub(crate) fn is_certificate_signer(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca)
            && self.key_usage.is_some_and(|ku| ku & key_usage::KEY_CERT_SIGN != 0)
    }

    /// Whether this is a CA certificate allowed to sign revocation data.
    pub(crate) fn is_crl_signer(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca) && self.key_usage.is_some_and(|ku| ku & key_usage::CRL_SIGN != 0)
    }

    /// Whether `now` (Unix seconds) is inside the validity period widened by `skew` seconds.
    /// `Err(true)` when expired, `Err(false)` when not yet valid.
    pub(crate) fn check_validity(&self, now: i64, skew: i64) -> Result<(), bool> {
        if now > self.not_after.saturating_add(skew) {
            Err(true)
        } else if now < self.not_before.saturating_sub(skew) {
            Err(false)
        } else {
            Ok(())
        }
    }
}

/// The part of a constraint's base name the PKI checks.
fn subtree_of(name: &GeneralName<'_>) -> Subtree {
    match name {
        GeneralName::DirectoryName(name) => Subtree::Directory(
            name.iter_attributes()
                .map(|a| (a.attr_type().as_bytes().to_vec(), a.as_str().ok().map(str::to_owned)))
                .collect(),
        ),
        GeneralName::URI(uri) => Subtree::Uri((*uri).to_owned()),
        _ => Subtree::Other,
    }
}

/// Whether the framing outside `tbsCertificate` is strict DER: `SEQUENCE { SEQUENCE tbs,
/// SEQUENCE { OID, … } algorithm, BIT STRING signature }`, nothing after. x509-parser tolerates
/// another tag for the algorithm's OID, and those bytes are under no signature, so a relay
/// could re-encode a certificate that still verified.
fn strict_outer_framing(der: &[u8]) -> bool {
    let mut outer = der::Reader::new(der);
    let Some(content) = outer.read(der::tag::SEQUENCE) else { return false };
    let mut inner = der::Reader::new(content);
    let framed = inner.read(der::tag::SEQUENCE).is_some()
        && inner
            .read(der::tag::SEQUENCE)
            .is_some_and(|algorithm| der::Reader::new(algorithm).read(der::tag::OID).is_some())
        && inner.read(der::tag::BIT_STRING).is_some();
    framed && inner.is_empty() && outer.is_empty()
}

/// ecdsa-with-SHA256 with absent parameters.
fn is_ecdsa_sha256(algorithm: &AlgorithmIdentifier<'_>) -> bool {
    algorithm.algorithm.as_bytes() == oid::ECDSA_WITH_SHA256 && algorithm.parameters.is_none()
}

/// id-ecPublicKey on the named curve P-256.
pub(crate) fn is_p256_key(algorithm: &AlgorithmIdentifier<'_>) -> bool {
    algorithm.algorithm.as_bytes() == oid::EC_PUBLIC_KEY
        && algorithm
            .parameters
            .as_ref()
            .is_some_and(|p| p.header.class() == Class::Universal && p.header.tag() == Tag::Oid && p.data == oid::P256)
}

/// Every RDN holds exactly one attribute.
fn single_valued(name: &X509Name<'_>) -> bool {
    name.iter().all(|rdn| rdn.iter().count() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_trailing_bytes_are_rejected() {
        assert!(ParsedCert::from_der(&[]).is_err());
        assert!(ParsedCert::from_der(&[0x30, 0x00]).is_err());
        let root = crate::pki::testutil::Pki::new();
        let mut der = root.root.certificate_der().to_vec();
        assert!(ParsedCert::from_der(&der).is_ok());
        der.push(0);
        assert!(ParsedCert::from_der(&der).is_err());
    }

    #[test]
    fn the_unsigned_framing_must_be_strict_der() {
        let pki = crate::pki::testutil::Pki::new();
        let der = pki.root.certificate_der().to_vec();
        // The OID inside the signatureAlgorithm right after tbsCertificate, retagged.
        let tbs_len = ParsedCert::from_der(&der).unwrap().tbs.len();
        let header = der.len() - der::Reader::new(&der).read(der::tag::SEQUENCE).unwrap().len();
        let at = header + tbs_len + 2;
        let mut retagged = der.clone();
        assert_eq!(retagged[at], der::tag::OID);
        retagged[at] ^= 0x01;
        assert!(X509Certificate::from_der(&retagged).is_ok(), "x509-parser alone accepts it");
        assert!(ParsedCert::from_der(&retagged).is_err());
    }
}
