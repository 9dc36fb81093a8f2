//! Naming rules for devices, tenants, roles and CAs, the SAN URI that names a device, and the
//! roles extension codec.
//!
//! The alphabets are narrow on purpose: an id that needs no escaping anywhere (URI, file name,
//! log line, SQL) has one spelling, so two components can never disagree on whether two ids are
//! the same.

use super::der::{self, tag, Reader};
use super::error::PkiError;

/// The OID of the roles extension: a UUID OID (ITU-T X.667, arc `2.25`) from the random UUID
/// `7aaef254-e70e-4f71-a39c-98d1892550f0`. Its value is `SEQUENCE SIZE (1..32) OF UTF8String`.
pub const ROLES_OID: &str = "2.25.163074190208942868797504729473276530928";

/// The scheme of the SAN URI naming a device.
pub(crate) const URI_SCHEME_PREFIX: &str = "ztmesh://";

/// The most roles one certificate carries.
pub(crate) const MAX_ROLES: usize = 32;

/// The longest device id, tenant or role, in bytes (the X.520 upper bound for CN and OU).
const MAX_ID_LEN: usize = 64;

/// The SAN URI naming `device_id` within `tenant`: `ztmesh://<tenant>/<device-id>`.
///
/// Fails with [`PkiError::InvalidIdentity`] if either breaks the id rules: 1 to 64 bytes of
/// `[A-Za-z0-9._-]`, and neither `.` nor `..` (which URI normalisation would remove).
pub fn device_uri(tenant: &str, device_id: &str) -> Result<String, PkiError> {
    if !is_valid_id(tenant) || !is_valid_id(device_id) {
        return Err(PkiError::InvalidIdentity);
    }
    Ok(format!("{URI_SCHEME_PREFIX}{tenant}/{device_id}"))
}

/// Splits a device URI into `(tenant, device_id)`; `None` unless it is exactly
/// `ztmesh://<tenant>/<device-id>` with valid ids.
pub(crate) fn parse_device_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(URI_SCHEME_PREFIX)?;
    let (tenant, device_id) = rest.split_once('/')?;
    (is_valid_id(tenant) && is_valid_id(device_id)).then_some((tenant, device_id))
}

/// Whether `id` is a valid device id or tenant.
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `role` is a valid role: 1 to 64 bytes of `[A-Za-z0-9._:-]`.
pub(crate) fn is_valid_role(role: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Whether `name` is a valid CA common name or organisation: 1 to 64 bytes, no control
/// characters.
pub(crate) fn is_valid_display_name(name: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&name.len()) && !name.chars().any(char::is_control)
}

/// The DER value of the roles extension, or `None` when there are no roles (the extension is
/// then left out). Fails on an invalid or repeated role, or more than 32.
pub(crate) fn encode_roles(roles: &[String]) -> Result<Option<Vec<u8>>, PkiError> {
    if roles.is_empty() {
        return Ok(None);
    }
    if roles.len() > MAX_ROLES {
        return Err(PkiError::InvalidIdentity);
    }
    let mut content = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        if !is_valid_role(role) || roles.iter().take(i).any(|r| r == role) {
            return Err(PkiError::InvalidIdentity);
        }
        der::push_tlv(&mut content, tag::UTF8_STRING, role.as_bytes());
    }
    Ok(Some(der::tlv(tag::SEQUENCE, &content)))
}

/// Decodes the roles extension value strictly: one SEQUENCE of 1 to 32 distinct valid roles
/// and nothing after it.
pub(crate) fn decode_roles(value: &[u8]) -> Option<Vec<String>> {
    let mut outer = Reader::new(value);
    let content = outer.read(tag::SEQUENCE)?;
    if !outer.is_empty() {
        return None;
    }
    let mut reader = Reader::new(content);
    let mut roles: Vec<String> = Vec::new();
    while !reader.is_empty() {
        let bytes = reader.read(tag::UTF8_STRING)?;
        let role = std::str::from_utf8(bytes).ok()?;
        if !is_valid_role(role) || roles.iter().any(|r| r == role) || roles.len() == MAX_ROLES {
            return None;
        }
        roles.push(role.to_owned());
    }
    (!roles.is_empty()).then_some(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_uris() {
        assert_eq!(device_uri("property-123", "tablet-1").unwrap(), "ztmesh://property-123/tablet-1");
        for bad in ["", ".", "..", "a/b", "a b", "é", "a%2f", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?}");
            assert_eq!(device_uri(bad, "d"), Err(PkiError::InvalidIdentity));
        }
        assert!(is_valid_id("A.b_c-9"));
        assert_eq!(parse_device_uri("ztmesh://t/d"), Some(("t", "d")));
        for bad in ["ztmesh://t/d/e", "ztmesh://t", "ZTMESH://t/d", "ztmesh:///d", "ztmesh://t/", "ztmesh://t/.."] {
            assert_eq!(parse_device_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_round_trip_and_decode_strictly() {
        assert_eq!(encode_roles(&[]).unwrap(), None);
        let roles = vec!["staff".to_owned(), "pos:cashier".to_owned()];
        let value = encode_roles(&roles).unwrap().unwrap();
        assert_eq!(decode_roles(&value).unwrap(), roles);
        // Trailing bytes, an empty list, a duplicate, a wrong string type.
        let mut trailing = value.clone();
        trailing.push(0);
        assert_eq!(decode_roles(&trailing), None);
        assert_eq!(decode_roles(&[0x30, 0x00]), None);
        assert_eq!(decode_roles(&[0x30, 0x06, 0x0c, 0x01, b'a', 0x0c, 0x01, b'a']), None);
        assert_eq!(decode_roles(&[0x30, 0x03, 0x13, 0x01, b'a']), None);
        assert_eq!(encode_roles(&["a".into(), "a".into()]), Err(PkiError::InvalidIdentity));
        assert_eq!(encode_roles(&["a b".into()]), Err(PkiError::InvalidIdentity));
        let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
        assert_eq!(encode_roles(&many), Err(PkiError::InvalidIdentity));
    }
}
