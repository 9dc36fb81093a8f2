//! A minimal DER writer, for the few structures the PKI encodes itself: the device certificate
//! profile and ECDSA signature values; and a strict DER reader the tests check them with.
//!
//! Only single-byte tags and definite lengths up to 4 length octets exist here. The reader
//! rejects everything DER forbids that could give one value two encodings: indefinite or
//! non-minimal lengths, non-minimal integers. It never panics on any input.

/// Universal tag numbers (with the constructed bit where it belongs).
pub(crate) mod tag {
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const UTF8_STRING: u8 = 0x0c;
    pub(crate) const UTC_TIME: u8 = 0x17;
    pub(crate) const GENERALIZED_TIME: u8 = 0x18;
    pub(crate) const SEQUENCE: u8 = 0x30;
    pub(crate) const SET: u8 = 0x31;
}

/// OID contents (the bytes after tag and length).
pub(crate) mod oid {
    /// ecdsa-with-SHA256, 1.2.840.10045.4.3.2.
    pub(crate) const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// id-ecPublicKey, 1.2.840.10045.2.1.
    pub(crate) const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 (P-256), 1.2.840.10045.3.1.7.
    pub(crate) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// commonName, 2.5.4.3.
    pub(crate) const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// organizationName, 2.5.4.10.
    pub(crate) const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    /// organizationalUnitName, 2.5.4.11.
    pub(crate) const ORGANIZATIONAL_UNIT: &[u8] = &[0x55, 0x04, 0x0b];
    /// subjectKeyIdentifier, 2.5.29.14.
    pub(crate) const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    /// keyUsage, 2.5.29.15.
    pub(crate) const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// subjectAltName, 2.5.29.17.
    pub(crate) const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// basicConstraints, 2.5.29.19.
    pub(crate) const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// authorityKeyIdentifier, 2.5.29.35.
    pub(crate) const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    /// extKeyUsage, 2.5.29.37.
    pub(crate) const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// id-kp-serverAuth, 1.3.6.1.5.5.7.3.1.
    pub(crate) const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// id-kp-clientAuth, 1.3.6.1.5.5.7.3.2.
    pub(crate) const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

/// Appends one TLV.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// One TLV.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    push_tlv(&mut out, tag, content);
    out
}

/// A TLV whose content is the concatenation of `parts`.
pub(crate) fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A SEQUENCE of the concatenated `parts`.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(tag::SEQUENCE, parts)
}

/// A non-negative INTEGER from its big-endian magnitude (leading zeros allowed in the input).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let significant = magnitude.get(skip..).unwrap_or(&[]);
    let mut content = Vec::with_capacity(significant.len() + 1);
    match significant.first() {
        None => content.push(0),
        Some(first) if first & 0x80 != 0 => {
            content.push(0);
            content.extend_from_slice(significant);
        }
        Some(_) => content.extend_from_slice(significant),
    }
    tlv(tag::INTEGER, &content)
}

/// A BIT STRING with no unused bits.
pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(tag::BIT_STRING, &content)
}

/// An OBJECT IDENTIFIER from its content bytes.
pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
    tlv(tag::OID, content)
}

/// A UTCTime (years 1950–2049) or GeneralizedTime (otherwise), as RFC 5280 §4.1.2.5 requires,
/// for `seconds` since the Unix epoch. `None` outside years 0000–9999.
pub(crate) fn time(seconds: i64) -> Option<Vec<u8>> {
    let at = ::time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let year = at.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let rest =
        format!("{:02}{:02}{:02}{:02}{:02}Z", u8::from(at.month()), at.day(), at.hour(), at.minute(), at.second());
    Some(if (1950..2050).contains(&year) {
        tlv(tag::UTC_TIME, format!("{:02}{rest}", year % 100).as_bytes())
    } else {
        tlv(tag::GENERALIZED_TIME, format!("{year:04}{rest}").as_bytes())
    })
}

/// A strict reader over a sequence of DER TLVs.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// Reads one TLV that must carry `expected` as its tag; returns its content.
    pub(crate) fn read(&mut self, expected: u8) -> Option<&'a [u8]> {
        let (&tag, rest) = self.input.split_first()?;
        if tag != expected || tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None; // indefinite or absurdly long
            }
            let (len_bytes, rest) = rest.split_at_checked(count)?;
            if len_bytes.first() == Some(&0) {
                return None; // non-minimal: leading zero octet
            }
            let len = len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return None; // non-minimal: should have used the short form
            }
            (len, rest)
        };
        let (content, rest) = rest.split_at_checked(len)?;
        self.input = rest;
        Some(content)
    }

    /// Reads one INTEGER that must be positive and minimally encoded; returns its magnitude
    /// without the sign octet.
    pub(crate) fn read_positive_integer(&mut self) -> Option<&'a [u8]> {
        let content = self.read(tag::INTEGER)?;
        match content {
            [] => None,
            [first, ..] if first & 0x80 != 0 => None,      // negative
            [0] => None,                                   // zero
            [0, second, ..] if second & 0x80 == 0 => None, // non-minimal
            [0, rest @ ..] => Some(rest),
            _ => Some(content),
        }
    }
}

/// The canonical form of an X.509 serial number: the big-endian magnitude without leading zero
/// octets, from the content octets of its INTEGER. `None` for zero and negative numbers
/// (RFC 5280 requires a positive serial) and for more than 20 octets of magnitude.
pub(crate) fn canonical_serial(integer_content: &[u8]) -> Option<Vec<u8>> {
    if integer_content.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let skip = integer_content.iter().take_while(|b| **b == 0).count();
    let magnitude = integer_content.get(skip..)?;
    if magnitude.is_empty() || magnitude.len() > 20 {
        return None;
    }
    Some(magnitude.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a dotted OID with arbitrary-size arcs, to check the constants above.
    fn encode_oid(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u128> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
        let mut out = Vec::new();
        let mut all = vec![arcs[0] * 40 + arcs[1]];
        all.extend_from_slice(&arcs[2..]);
        for mut arc in all {
            let mut base128 = vec![(arc & 0x7f) as u8];
            arc >>= 7;
            while arc > 0 {
                base128.push((arc & 0x7f) as u8 | 0x80);
                arc >>= 7;
            }
            base128.reverse();
            out.extend(base128);
        }
        out
    }

    #[test]
    fn oid_constants_match_their_dotted_form() {
        for (dotted, bytes) in [
            ("1.2.840.10045.4.3.2", oid::ECDSA_WITH_SHA256),
            ("1.2.840.10045.2.1", oid::EC_PUBLIC_KEY),
            ("1.2.840.10045.3.1.7", oid::P256),
            ("2.5.4.3", oid::COMMON_NAME),
            ("2.5.4.10", oid::ORGANIZATION),
            ("2.5.4.11", oid::ORGANIZATIONAL_UNIT),
            ("2.5.29.14", oid::SUBJECT_KEY_ID),
            ("2.5.29.15", oid::KEY_USAGE),
            ("2.5.29.17", oid::SUBJECT_ALT_NAME),
            ("2.5.29.19", oid::BASIC_CONSTRAINTS),
            ("2.5.29.35", oid::AUTHORITY_KEY_ID),
            ("2.5.29.37", oid::EXT_KEY_USAGE),
            ("1.3.6.1.5.5.7.3.1", oid::SERVER_AUTH),
            ("1.3.6.1.5.5.7.3.2", oid::CLIENT_AUTH),
        ] {
            assert_eq!(encode_oid(dotted), bytes, "{dotted}");
        }
    }

    #[test]
    fn lengths_round_trip_and_reader_is_strict() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let encoded = tlv(tag::OCTET_STRING, &content);
            let mut reader = Reader::new(&encoded);
            assert_eq!(reader.read(tag::OCTET_STRING), Some(&content[..]));
            assert!(reader.is_empty());
        }
        // Long form for a short length, a leading zero length octet, indefinite length.
        for bad in [&[0x04, 0x81, 0x01, 0x00][..], &[0x04, 0x82, 0x00, 0x80], &[0x04, 0x80, 0x00, 0x00]] {
            assert_eq!(Reader::new(bad).read(tag::OCTET_STRING), None, "{bad:02x?}");
        }
        // Truncated content and wrong tag.
        assert_eq!(Reader::new(&[0x04, 0x02, 0x00]).read(tag::OCTET_STRING), None);
        assert_eq!(Reader::new(&[0x05, 0x00]).read(tag::OCTET_STRING), None);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), [0x02, 0x01, 0x01]);
        assert_eq!(unsigned_integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(Reader::new(&[0x02, 0x02, 0x00, 0x80]).read_positive_integer(), Some(&[0x80][..]));
        assert_eq!(Reader::new(&[0x02, 0x02, 0x00, 0x01]).read_positive_integer(), None);
        assert_eq!(Reader::new(&[0x02, 0x01, 0x80]).read_positive_integer(), None);
        assert_eq!(Reader::new(&[0x02, 0x01, 0x00]).read_positive_integer(), None);
        assert_eq!(canonical_serial(&[0x00, 0x00, 0x81]), Some(vec![0x81]));
        assert_eq!(canonical_serial(&[0x81]), None);
        assert_eq!(canonical_serial(&[0x00]), None);
        assert_eq!(canonical_serial(&[1u8; 21]), None);
    }

    #[test]
    fn times_follow_rfc_5280() {
        assert_eq!(time(0).unwrap(), tlv(tag::UTC_TIME, b"700101000000Z"));
        // 2050-01-01T00:00:00Z switches to GeneralizedTime.
        assert_eq!(time(2_524_608_000).unwrap(), tlv(tag::GENERALIZED_TIME, b"20500101000000Z"));
        assert_eq!(time(-631_152_001).unwrap(), tlv(tag::GENERALIZED_TIME, b"19491231235959Z"));
        assert!(time(i64::MAX).is_none());
    }
}
