//! The device certificate profile, encoded byte by byte.
//!
//! rcgen writes the CA certificates, but device certificates are encoded here, for two
//! reasons: the issuer name is copied byte for byte from the CA's certificate (rcgen re-encodes
//! a loaded CA's name, which is not guaranteed to be identical, and chain building compares
//! names byte for byte); and a fixed layout with nothing taken from the request makes "CA
//! policy decides every field" true by construction. The layout is the table in the
//! [module documentation](super).

use super::der::{self, oid, tag};
use super::signer::{ecdsa_sha256_algorithm, p256_spki};

/// Everything a device certificate says, decided by the CA.
pub(crate) struct DeviceProfile<'a> {
    /// The serial's magnitude.
    pub(crate) serial: &'a [u8],
    /// The issuer name: the CA certificate's subject, DER.
    pub(crate) issuer: &'a [u8],
    /// The CA's subject key identifier, if it has one.
    pub(crate) issuer_key_id: Option<&'a [u8]>,
    /// `notBefore`, Unix seconds.
    pub(crate) not_before: i64,
    /// `notAfter`, Unix seconds.
    pub(crate) not_after: i64,
    /// The subject's `O`.
    pub(crate) organisation: &'a str,
    /// The subject's `OU`.
    pub(crate) tenant: &'a str,
    /// The subject's `CN`.
    pub(crate) device_id: &'a str,
    /// The device's public key, an uncompressed P-256 point.
    pub(crate) public_key: &'a [u8],
    /// The SAN URIs carrying the roles (`urn:ztmesh:role:<role>` each), written after the
    /// device URI; empty for none.
    pub(crate) role_uris: &'a [String],
}

/// The `tbsCertificate` of a device certificate; `None` if a time is not representable.
pub(crate) fn device_tbs(profile: &DeviceProfile<'_>) -> Option<Vec<u8>> {
    let version = der::tlv(0xa0, &der::unsigned_integer(&[2]));
    let validity = der::sequence(&[&der::time(profile.not_before)?, &der::time(profile.not_after)?]);
    let subject = der::sequence(&[
        &name_attribute(oid::ORGANIZATION, profile.organisation),
        &name_attribute(oid::ORGANIZATIONAL_UNIT, profile.tenant),
        &name_attribute(oid::COMMON_NAME, profile.device_id),
    ]);
    let uri = format!("{}{}/{}", super::identity::URI_SCHEME_PREFIX, profile.tenant, profile.device_id);

    let mut extensions = Vec::new();
    if let Some(key_id) = profile.issuer_key_id {
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
        extensions.push(extension(oid::AUTHORITY_KEY_ID, false, &der::tlv(tag::SEQUENCE, &der::tlv(0x80, key_id))));
    }
    extensions.push(extension(oid::SUBJECT_KEY_ID, false, &der::tlv(tag::OCTET_STRING, &key_id(profile.public_key))));
    // basicConstraints with cA absent (DEFAULT FALSE).
    extensions.push(extension(oid::BASIC_CONSTRAINTS, true, &der::sequence(&[])));
    // keyUsage: digitalSignature only, bit 0; 7 unused bits.
    extensions.push(extension(oid::KEY_USAGE, true, &der::tlv(tag::BIT_STRING, &[0x07, 0x80])));
    extensions.push(extension(
        oid::EXT_KEY_USAGE,
        false,
        &der::sequence(&[&der::oid(oid::SERVER_AUTH), &der::oid(oid::CLIENT_AUTH)]),
    ));
    // GeneralName uniformResourceIdentifier is [6] IMPLICIT IA5String: the device URI, then
    // one URI per role.
    let names: Vec<Vec<u8>> =
        std::iter::once(&uri).chain(profile.role_uris).map(|u| der::tlv(0x86, u.as_bytes())).collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    extensions.push(extension(oid::SUBJECT_ALT_NAME, false, &der::sequence(&names)));
    let extensions: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();

    Some(der::sequence(&[
        &version,
        &der::unsigned_integer(profile.serial),
        &ecdsa_sha256_algorithm(),
        profile.issuer,
        &validity,
        &subject,
        &p256_spki(profile.public_key),
        &der::tlv(0xa3, &der::sequence(&extensions)),
    ]))
}

/// The subject key identifier of a public key: the leftmost 160 bits of SHA-256 of the key
/// (RFC 7093 section 2, method 1).
pub(crate) fn key_id(public_key: &[u8]) -> Vec<u8> {
    super::sha256(public_key).get(..20).unwrap_or_default().to_vec()
}

/// `SET { SEQUENCE { type, UTF8String value } }`: one single-valued RDN.
/// The value of a site CA's nameConstraints extension binding it to `tenants`: one permitted
/// directoryName subtree `O=<organisation>, OU=<tenant>` per tenant, the prefix of the subject of
/// every device certificate it issues for that tenant.
///
/// ```text
/// NameConstraints ::= SEQUENCE { permittedSubtrees [0] IMPLICIT SEQUENCE OF GeneralSubtree }
/// GeneralSubtree  ::= SEQUENCE { base GeneralName }   -- minimum 0 and no maximum: omitted
/// directoryName   [4] EXPLICIT Name                  -- Name is a CHOICE, so explicit
/// ```
pub(crate) fn tenant_name_constraints(organisation: &str, tenants: &[String]) -> Vec<u8> {
    let subtrees: Vec<Vec<u8>> = tenants
        .iter()
        .map(|tenant| {
            let name = der::sequence(&[
                &name_attribute(oid::ORGANIZATION, organisation),
                &name_attribute(oid::ORGANIZATIONAL_UNIT, tenant),
            ]);
            der::sequence(&[&der::tlv(0xa4, &name)])
        })
        .collect();
    let subtrees: Vec<&[u8]> = subtrees.iter().map(Vec::as_slice).collect();
    der::sequence(&[&der::constructed(0xa0, &subtrees)])
}

fn name_attribute(kind: &[u8], value: &str) -> Vec<u8> {
    der::tlv(tag::SET, &der::sequence(&[&der::oid(kind), &der::tlv(tag::UTF8_STRING, value.as_bytes())]))
}

/// `Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`.
fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let value = der::tlv(tag::OCTET_STRING, value);
    if critical {
        der::sequence(&[&der::oid(id), &der::tlv(tag::BOOLEAN, &[0xff]), &value])
    } else {
        der::sequence(&[&der::oid(id), &value])
    }
}
