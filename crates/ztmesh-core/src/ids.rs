//! The one rulebook for the names ztmesh keys everything by: device ids, tenants, roles, and the
//! spellings of certificate serial numbers and key digests.
//!
//! The PKI enforces these rules when it issues and verifies certificates; the CA service, its
//! tokens, the CLI and the registry call the same functions (through the binding), so no two
//! components can disagree on whether a name is valid or whether two serials are the same.
//!
//! The alphabets are narrow on purpose: an id that needs no escaping anywhere (URI, file name,
//! log line, SQL) has one spelling.
//!
//! | name | rule |
//! | --- | --- |
//! | device id, tenant | 1 to 64 bytes of `[A-Za-z0-9._-]`, other than `.` and `..`; case-sensitive |
//! | role | 1 to 64 bytes of `[A-Za-z0-9._:-]` (so `pos:cashier` is a role); at most 32 per certificate, all distinct |
//! | serial | lowercase hexadecimal of the big-endian magnitude, two digits per byte, no leading zero byte; 1 to 20 bytes, not zero |
//! | key digest (SPKI SHA-256) | 64 lowercase hexadecimal digits; typed with any case and optional `:` between bytes |

use std::fmt;

use crate::ErrorCode;

/// The longest device id, tenant or role, in bytes (the X.520 upper bound for CN and OU).
pub const MAX_ID_LEN: usize = 64;

/// The most roles one certificate carries.
pub const MAX_ROLES: usize = 32;

/// The longest serial, in bytes of magnitude (RFC 5280 §4.1.2.2).
pub const MAX_SERIAL_LEN: usize = 20;

/// The longest serial text [`normalize_serial`] reads, leading zeros and `0x` included.
const MAX_SERIAL_TEXT: usize = 128;

/// Which rule a name broke. Every variant has the code `ERR_IDENTITY`, except
/// [`IdError::Serial`] (`ERR_SERIAL`) and [`IdError::KeyDigest`] (`ERR_INVALID_ARG`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdError {
    /// A device id is empty, longer than 64 bytes, `.`/`..`, or has a byte outside `[A-Za-z0-9._-]`.
    DeviceId,
    /// A tenant breaks the same rule as a device id.
    Tenant,
    /// A role is empty, longer than 64 bytes, or has a byte outside `[A-Za-z0-9._:-]`.
    Role,
    /// A list of roles has more than 32 entries or repeats one.
    Roles,
    /// A serial is not 1 to 20 bytes of hexadecimal magnitude (optionally `0x`), or is zero.
    Serial,
    /// A key digest is not 32 bytes of hexadecimal (optionally with `:` between bytes).
    KeyDigest,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DeviceId => "a device id must be 1-64 characters of [A-Za-z0-9._-], other than '.' and '..'",
            Self::Tenant => "a tenant must be 1-64 characters of [A-Za-z0-9._-], other than '.' and '..'",
            Self::Role => "a role must be 1-64 characters of [A-Za-z0-9._:-]",
            Self::Roles => "at most 32 roles, none repeated",
            Self::Serial => "a serial must be 1 to 40 hex digits (optionally 0x), not zero",
            Self::KeyDigest => "a key digest (SPKI SHA-256) must be 64 hex digits, optionally with ':' between bytes",
        })
    }
}

impl std::error::Error for IdError {}

impl ErrorCode for IdError {
    fn code(&self) -> &'static str {
        match self {
            Self::Serial => "ERR_SERIAL",
            Self::KeyDigest => "ERR_INVALID_ARG",
            _ => "ERR_IDENTITY",
        }
    }
}

/// Checks a device id: 1 to 64 bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn check_device_id(id: &str) -> Result<(), IdError> {
    is_valid_id(id).then_some(()).ok_or(IdError::DeviceId)
}

/// Checks a tenant (same rule as a device id).
pub fn check_tenant(tenant: &str) -> Result<(), IdError> {
    is_valid_id(tenant).then_some(()).ok_or(IdError::Tenant)
}

/// Checks one role: 1 to 64 bytes of `[A-Za-z0-9._:-]`.
pub fn check_role(role: &str) -> Result<(), IdError> {
    is_valid_role(role).then_some(()).ok_or(IdError::Role)
}

/// Checks the roles of one certificate: each valid, none repeated, at most 32.
pub fn check_roles<S: AsRef<str>>(roles: &[S]) -> Result<(), IdError> {
    if roles.len() > MAX_ROLES {
        return Err(IdError::Roles);
    }
    for (i, role) in roles.iter().enumerate() {
        check_role(role.as_ref())?;
        if roles.iter().take(i).any(|r| r.as_ref() == role.as_ref()) {
            return Err(IdError::Roles);
        }
    }
    Ok(())
}

/// The one spelling of a serial whose magnitude is `bytes` (no leading zero byte): lowercase
/// hex, two digits per byte. This is what [`crate::pki::PeerIdentity::serial`] and
/// [`crate::pki::IssuedCertificate::serial`] hold.
pub fn serial_hex(bytes: &[u8]) -> String {
    crate::pki::hex_lower(bytes)
}

/// Reads a serial as users type it (optional `0x`, any case, leading zeros, an odd number of
/// digits) and returns its magnitude: big-endian, no leading zero byte, 1 to 20 bytes.
pub fn parse_serial(text: &str) -> Result<Vec<u8>, IdError> {
    if text.len() > MAX_SERIAL_TEXT {
        return Err(IdError::Serial);
    }
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let nibbles: Vec<u8> = digits
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or(IdError::Serial)?;
    let significant = nibbles.iter().position(|n| *n != 0).map_or(&[][..], |first| &nibbles[first..]);
    if significant.is_empty() || significant.len() > MAX_SERIAL_LEN * 2 {
        return Err(IdError::Serial);
    }
    // An odd count gets a leading zero nibble.
    let padded: Vec<u8> =
        if significant.len() % 2 == 1 { [&[0u8][..], significant].concat() } else { significant.to_vec() };
    Ok(padded.chunks_exact(2).map(|pair| (pair[0] << 4) | pair[1]).collect())
}

/// The one spelling ([`serial_hex`]) of a serial as users type it ([`parse_serial`]):
/// `0x0ABC` and `abc` both become `0abc`.
pub fn normalize_serial(text: &str) -> Result<String, IdError> {
    parse_serial(text).map(|bytes| serial_hex(&bytes))
}

/// The one spelling of a key digest (an SPKI SHA-256: 64 lowercase hex digits) from what a user
/// typed: any case, optionally `:` between bytes as `openssl … -fingerprint` prints it.
pub fn normalize_key_digest(text: &str) -> Result<String, IdError> {
    let bytes = text.as_bytes();
    let plain = bytes.len() == 64 && bytes.iter().all(u8::is_ascii_hexdigit);
    let separated = bytes.len() == 95
        && bytes.iter().enumerate().all(|(i, b)| if i % 3 == 2 { *b == b':' } else { b.is_ascii_hexdigit() });
    if !plain && !separated {
        return Err(IdError::KeyDigest);
    }
    Ok(text.bytes().filter(|b| *b != b':').map(|b| char::from(b.to_ascii_lowercase())).collect())
}

/// Whether `id` is a valid device id or tenant.
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `role` is a valid role.
pub(crate) fn is_valid_role(role: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_digests_have_one_spelling() {
        let canonical = "00ff".repeat(16);
        let separated = ["00", "FF"].repeat(16).join(":");
        for typed in [canonical.as_str(), &canonical.to_uppercase(), &separated] {
            assert_eq!(normalize_key_digest(typed).as_deref(), Ok(canonical.as_str()), "{typed}");
        }
        let short = &canonical[..62];
        let misplaced = format!(":{}", &separated[..94]);
        let stray = format!("{}g", &canonical[..63]);
        for bad in ["", short, &misplaced, &stray, &format!("0x{canonical}"), &format!("{separated}:")] {
            assert_eq!(normalize_key_digest(bad), Err(IdError::KeyDigest), "{bad:?}");
        }
        assert_eq!(IdError::KeyDigest.code(), "ERR_INVALID_ARG");
    }

    #[test]
    fn ids_follow_one_rule_with_one_code() {
        for good in ["a", "A.b_c-9", "tablet-1", ".hidden", "-dash", &"x".repeat(64)] {
            assert_eq!(check_device_id(good), Ok(()), "{good:?}");
            assert_eq!(check_tenant(good), Ok(()), "{good:?}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a%2f", "a:b", &"x".repeat(65)] {
            assert_eq!(check_device_id(bad), Err(IdError::DeviceId), "{bad:?}");
            assert_eq!(check_tenant(bad), Err(IdError::Tenant), "{bad:?}");
        }
        assert_eq!(IdError::DeviceId.code(), "ERR_IDENTITY");
        assert_eq!(IdError::Roles.code(), "ERR_IDENTITY");
        assert_eq!(IdError::Serial.code(), "ERR_SERIAL");
    }

    #[test]
    fn roles_allow_colons_and_refuse_repeats() {
        assert_eq!(check_role("pos:cashier"), Ok(()));
        for bad in ["", "a b", "a/b", &"r".repeat(65)] {
            assert_eq!(check_role(bad), Err(IdError::Role), "{bad:?}");
        }
        assert_eq!(check_roles(&["staff", "pos:cashier"]), Ok(()));
        assert_eq!(check_roles::<&str>(&[]), Ok(()));
        assert_eq!(check_roles(&["a", "a"]), Err(IdError::Roles));
        assert_eq!(check_roles(&["a", "b c"]), Err(IdError::Role));
        let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
        assert_eq!(check_roles(&many[..32]), Ok(()));
        assert_eq!(check_roles(&many), Err(IdError::Roles));
    }

    #[test]
    fn serials_have_one_spelling_whatever_the_user_types() {
        for (typed, canonical) in [
            ("abc", "0abc"),
            ("0x0ABC", "0abc"),
            ("0X000abc", "0abc"),
            ("0abc", "0abc"),
            ("1", "01"),
            ("80", "80"),
            ("00ff", "ff"),
            ("7fA1", "7fa1"),
        ] {
            assert_eq!(normalize_serial(typed).as_deref(), Ok(canonical), "{typed}");
        }
        assert_eq!(parse_serial("0x0abc"), Ok(vec![0x0a, 0xbc]));
        let forty = "1".repeat(40);
        assert_eq!(normalize_serial(&forty).as_deref(), Ok(forty.as_str()));
        assert_eq!(normalize_serial(&format!("0000{forty}")).as_deref(), Ok(forty.as_str()));
        for bad in ["", "0x", "0", "000", "xyz", "0x-1", " 1", "1 ", "１", &"1".repeat(41), &"0".repeat(200)] {
            assert_eq!(normalize_serial(bad), Err(IdError::Serial), "{bad:?}");
        }
        assert_eq!(serial_hex(&[0x01, 0xab]), "01ab");
    }
}
