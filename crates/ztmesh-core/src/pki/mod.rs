//! The ztmesh PKI: certificate authorities, CSRs, CRLs, signed revocation records, and the one
//! function that decides whether a peer's certificate chain is trusted.
//!
//! Every later part of ztmesh (TLS, Noise, signed offers, gossip, bundles) authenticates peers
//! through [`verify_peer`] and nothing else: it returns a [`PeerIdentity`] or a typed
//! [`VerifyError`], and callers never re-check.
//!
//! # Hierarchy
//!
//! ```text
//! root CA (ECDSA P-256, may stay offline; CA:true pathLen 1, KU keyCertSign+cRLSign)
//!   └── site CA, one per gateway (ECDSA P-256; CA:true pathLen 0, KU keyCertSign+cRLSign)
//!         └── device certificate, issued from the device's CSR
//! ```
//!
//! A [`TrustStore`] holds one or more roots; during a CA rollover it holds the old and the new
//! root and certificates chaining to either verify.
//!
//! # Device certificate profile
//!
//! The CA decides every field ([`CertificateAuthority::issue`]); only the public key comes from
//! the CSR, and the CSR's own signature must verify over it first.
//!
//! | field | value |
//! | --- | --- |
//! | version | v3 |
//! | serial | 16 bytes from the OS CSPRNG with the top bit cleared (positive, ≤ 127 bits) |
//! | signature | ecdsa-with-SHA256 by the issuing CA |
//! | issuer | the issuing CA's subject, copied byte for byte from its certificate |
//! | validity | `now − backdate` (default 5 min) to `now + validity` (default 90 days), capped at the CA's `notAfter` |
//! | subject | `O` = the issuing CA's organisation, `OU` = tenant, `CN` = device id (UTF8String) |
//! | public key | the CSR's ECDSA P-256 key, re-encoded canonically (named curve, uncompressed point) |
//! | authority key id | the issuing CA's subject key id |
//! | subject key id | the first 160 bits of SHA-256 of the public key (RFC 7093 method 1) |
//! | basic constraints | critical, CA:false |
//! | key usage | critical, digitalSignature |
//! | extended key usage | serverAuth, clientAuth |
//! | subject alt name | the URI `ztmesh://<tenant>/<device-id>`, then one `urn:ztmesh:role:<role>` URI per role |
//!
//! Device ids and tenants ([`crate::ids`]) are 1 to 64 bytes of `[A-Za-z0-9._-]`, other than `.` and `..`; they
//! compare byte for byte (case-sensitive). With that alphabet the SAN URI never needs
//! percent-encoding, so `ztmesh://<tenant>/<device-id>` has exactly one spelling, and a
//! verifier compares it with the subject's `CN` and `OU` exactly ([`device_uri`]).
//!
//! # Roles
//!
//! Roles travel as extra SAN URIs, one `uniformResourceIdentifier` per role, after the device
//! URI in the same subjectAltName ([`ROLE_URI_PREFIX`]):
//!
//! ```text
//! URI:ztmesh://property-123/tablet-1
//! URI:urn:ztmesh:role:frontdesk
//! URI:urn:ztmesh:role:pos:cashier
//! ```
//!
//! A role is 1 to 64 bytes of `[A-Za-z0-9._:-]`; a certificate carries at most 32, all
//! distinct, and none means no roles. A verifier refuses a certificate whose role URIs break
//! these rules (the prefix is matched in any case, so `URN:ZTMESH:ROLE:x` is refused rather
//! than ignored) and ignores every other URI and name.
//!
//! Roles used to be a private extension under a UUID OID (`2.25.` and a 128-bit arc). Go's
//! crypto/x509 refuses to parse any certificate carrying an OID arc that large
//! (`x509: malformed extension OID field`), and other parsers have similar limits, so Go
//! peers and tools could not load a device certificate with roles. SAN URIs are read by every
//! X.509 parser. Such an extension, if met, is now an unknown non-critical extension and
//! ignored.
//!
//! # Revocation
//!
//! Revocation is keyed by the issuing CA, and under it by certificate serial and by the SHA-256
//! of the SubjectPublicKeyInfo, never by a hash of the certificate: a certificate's bytes are
//! malleable (an ECDSA signature `(r, s)` can be re-encoded as `(r, n − s)` and still verify)
//! but its serial and key are under the CA's signature. Revoking a key revokes every
//! certificate of that CA that carries it; one CA's data never revokes another CA's
//! certificates (serials are only unique per issuer). CRLs must be fresh: past `nextUpdate`
//! plus a grace period, verification fails closed unless the set was told to fail open. Revocation data
//! arrives as X.509 CRLs ([`crl`]) or as compact signed records gossip can carry
//! ([`revocation`]); both are verified against a trusted CA before they enter a
//! [`RevocationSet`].
//!
//! # Modules
//!
//! | module | what |
//! | --- | --- |
//! | [`ca`] | root and site CAs, device certificate issuance |
//! | [`csr`] | building CSRs on the device, parsing and checking them on the CA |
//! | [`crl`] | signing and verifying v2 CRLs |
//! | [`revocation`] | signed incremental revocation records and the [`RevocationSet`] |
//! | [`verify`] | [`TrustStore`], [`verify_peer`] and [`PeerIdentity`] |
//! | [`inspect`] | [`inspect_certificate`]: a certificate's facts, with no trust decision |
//! | [`signer`] | the [`CertSigner`] trait (software keys now, TPM keys later) |
//! | [`pem`] | strict PEM decoding and encoding |
//! | `verdicts` | the cache of [`verify_peer`]'s verdicts that TLS and Noise links reuse |
//! | `snapshot` | the swappable trust (anchors, revocations, verdicts) of TLS contexts and Noise links |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod ca;
pub mod crl;
pub mod csr;
pub mod inspect;
pub mod pem;
pub mod revocation;
pub mod signer;
pub mod verify;

pub(crate) mod cert;
pub(crate) mod der;
mod error;
mod identity;
mod profile;
pub(crate) mod snapshot;
pub(crate) mod verdicts;

#[cfg(test)]
pub(crate) mod testutil;

pub use ca::{CaMaterial, CaParams, CertificateAuthority, DeviceCertRequest, IssuedCertificate};
pub use crl::{CrlEntry, CrlParams, EncodedCrl, RevokedSerial, VerifiedCrl};
pub use csr::{build_ca_csr, build_csr, CertificateRequest, EncodedCsr};
pub use error::{PemError, PkiError, RevocationError, VerifyError};
pub use identity::{device_uri, ROLE_URI_PREFIX};
pub use inspect::{inspect_certificate, UntrustedCertificateFacts};
pub use revocation::{
    Applied, Freshness, RecordEntry, RevocationReason, RevocationRecord, RevocationSet, StalePolicy, VerifiedRecord,
    DEFAULT_CRL_GRACE,
};
pub use signer::{check_signer_matches, ecdsa_p256_signature_to_der, prove_possession, CertSigner, SoftwareSigner};
pub use verify::{
    verify_certificate_signature, verify_peer, verify_peer_key, PeerIdentity, PeerPolicy, RequiredUsage, TrustStore,
    TrustedIssuer,
};

/// The clock skew tolerated by default: 5 minutes. Certificates are issued backdated by as
/// much, and [`PeerPolicy::default`] accepts as much either side of a validity period.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Seconds since the Unix epoch, negative before it, saturating far outside the range.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The `SystemTime` `seconds` after the Unix epoch, if the platform can represent it.
pub(crate) fn system_time(seconds: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// A duration in whole seconds as `i64`, saturating.
pub(crate) fn duration_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lowercase hexadecimal, two digits per byte.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
