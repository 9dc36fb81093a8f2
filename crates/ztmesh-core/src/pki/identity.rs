//! The SAN URI that names a device, the SAN URIs that carry roles, and the naming rule for CAs.
//! The rules for device ids, tenants and roles themselves live in [`crate::ids`].

use super::error::PkiError;
use crate::ids::is_valid_role;
pub(crate) use crate::ids::{is_valid_id, MAX_ROLES};

/// The prefix of the SAN URIs carrying roles: one `urn:ztmesh:role:<role>` URI per role, after
/// the device's `ztmesh://<tenant>/<device-id>` URI in the same subjectAltName.
///
/// Roles used to travel in a private extension under a UUID OID (`2.25.<128-bit arc>`); Go's
/// crypto/x509 and other parsers cap OID arcs well below 128 bits and refuse the whole
/// certificate, so roles now use a name form every X.509 parser reads.
pub const ROLE_URI_PREFIX: &str = "urn:ztmesh:role:";

/// The scheme of the SAN URI naming a device.
pub(crate) const URI_SCHEME_PREFIX: &str = "ztmesh://";

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

/// Whether `name` is a valid CA common name or organisation: 1 to 64 bytes, no control
/// characters.
pub(crate) fn is_valid_display_name(name: &str) -> bool {
    (1..=crate::ids::MAX_ID_LEN).contains(&name.len()) && !name.chars().any(char::is_control)
}

/// The SAN URIs carrying `roles`, in order: `urn:ztmesh:role:<role>` each. Fails on an invalid
/// or repeated role, or more than 32.
pub(crate) fn role_uris(roles: &[String]) -> Result<Vec<String>, PkiError> {
    crate::ids::check_roles(roles).map_err(|_| PkiError::InvalidIdentity)?;
    Ok(roles.iter().map(|role| format!("{ROLE_URI_PREFIX}{role}")).collect())
}

/// The roles among a certificate's SAN URIs, strictly: every URI starting with
/// `urn:ztmesh:role:` in any case must be exactly that prefix and a valid role, with no role
/// repeated and at most 32; `None` otherwise. Other URIs are ignored.
pub(crate) fn roles_from_uris(uris: &[String]) -> Option<Vec<String>> {
    let mut roles: Vec<String> = Vec::new();
    for uri in uris {
        let Some(prefix) = uri.get(..ROLE_URI_PREFIX.len()) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case(ROLE_URI_PREFIX) {
            continue;
        }
        let role = uri.strip_prefix(ROLE_URI_PREFIX)?;
        if !is_valid_role(role) || roles.iter().any(|r| r == role) || roles.len() == MAX_ROLES {
            return None;
        }
        roles.push(role.to_owned());
    }
    Some(roles)
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
        assert_eq!(role_uris(&[]).unwrap(), Vec::<String>::new());
        let roles = vec!["staff".to_owned(), "pos:cashier".to_owned()];
        let uris = role_uris(&roles).unwrap();
        assert_eq!(uris, ["urn:ztmesh:role:staff", "urn:ztmesh:role:pos:cashier"]);
        assert_eq!(roles_from_uris(&uris).unwrap(), roles);
        // Other URIs are ignored, the device URI included.
        let mixed: Vec<String> =
            ["ztmesh://t/d", "urn:ztmesh:role:a", "https://example.com/", "urn:other:x", "urn:ztmesh:rol"]
                .map(String::from)
                .to_vec();
        assert_eq!(roles_from_uris(&mixed).unwrap(), ["a"]);
        assert_eq!(roles_from_uris(&[]).unwrap(), Vec::<String>::new());
        // An empty or invalid role, a duplicate, another spelling of the prefix, too many.
        for bad in [
            &["urn:ztmesh:role:"][..],
            &["urn:ztmesh:role:a b"],
            &["urn:ztmesh:role:a/b"],
            &["urn:ztmesh:role:a", "urn:ztmesh:role:a"],
            &["URN:ztmesh:role:a"],
            &["urn:ZTMESH:Role:a"],
        ] {
            let bad: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(roles_from_uris(&bad), None, "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
        assert_eq!(roles_from_uris(&many.iter().map(|r| format!("{ROLE_URI_PREFIX}{r}")).collect::<Vec<_>>()), None);
        assert_eq!(roles_from_uris(&role_uris(&many[..32]).unwrap()).map(|r| r.len()), Some(32));
        assert_eq!(role_uris(&["a".into(), "a".into()]), Err(PkiError::InvalidIdentity));
        assert_eq!(role_uris(&["a b".into()]), Err(PkiError::InvalidIdentity));
        assert_eq!(role_uris(&["".into()]), Err(PkiError::InvalidIdentity));
        assert_eq!(role_uris(&many), Err(PkiError::InvalidIdentity));
    }
}
