//! Signed incremental revocation records, and the [`RevocationSet`] that merges them with CRLs
//! and answers "is this certificate revoked?".
//!
//! A CRL lists serials only and is rebuilt in full each time. A revocation record is small,
//! carries SPKI hashes too (so revoking a key revokes every certificate carrying it), and is
//! meant to be gossiped from device to device. Records are signed by the same CA key that signs
//! certificates and CRLs; they cannot be mistaken for either, since a record starts with the
//! magic `ZTRV` and every X.509 structure with the DER byte `0x30`.
//!
//! # Record format, version 1
//!
//! Integers are big-endian; times are Unix seconds.
//!
//! | offset | length | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `ZTRV` |
//! | 4 | 1 | format version, `1` |
//! | 5 | 32 | issuer key id: SHA-256 of the issuing CA's SubjectPublicKeyInfo |
//! | 37 | 8 | record number, per issuer, increasing |
//! | 45 | 8 | timestamp |
//! | 53 | 2 | entry count `n`, 0..=4096 |
//! | 55 | … | `n` entries, laid out below |
//! | end − 1 − `l` | 1 | signature length `l`, 8..=72 |
//! | end − `l` | `l` | ECDSA P-256/SHA-256 signature (DER) by the issuer over every byte before `l` |
//!
//! Each entry:
//!
//! | length | field |
//! | --- | --- |
//! | 1 | serial length `s`, 1..=20 |
//! | `s` | serial, big-endian magnitude, first byte non-zero |
//! | 32 | SHA-256 of the certificate's SubjectPublicKeyInfo |
//! | 1 | reason: an RFC 5280 CRLReason code other than 7 and 8 (removeFromCRL) |
//! | 8 | revocation time |
//!
//! Decoding is strict: every length is checked against its bounds and the input must end
//! exactly after the signature. The signed part excludes the signature, so re-encoding the
//! signature (ECDSA `s` ↔ `n − s`) changes nothing about what a record means.
//!
//! # Merging
//!
//! Revocation only ever grows: entries from an authentic CRL or record are added and never
//! removed. Per issuer, the set remembers the highest CRL Number and record number applied and
//! refuses anything lower ([`RevocationError::Stale`]), or the same number with different
//! content ([`RevocationError::Conflict`]); the same content again is a harmless
//! [`Applied::Duplicate`], since gossip delivers duplicates all the time. A record's number may
//! jump ahead; a skipped record can no longer be applied afterwards, so deliver records in
//! order ([`RevocationSet::last_record_number`] tells a peer where to resume). Because merging is
//! a union, a CA can heal any gap by publishing a record that lists every current entry.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use super::ca::CertificateAuthority;
use super::crl::{canonical_magnitude, VerifiedCrl};
use super::error::{PkiError, RevocationError};
use super::signer::verify_p256;
use super::verify::TrustedIssuer;
use super::{system_time, unix_seconds};

/// The magic at the start of every revocation record.
const MAGIC: &[u8; 4] = b"ZTRV";
/// The record format version this library writes and reads.
const VERSION: u8 = 1;
/// The most entries one record carries.
pub const MAX_RECORD_ENTRIES: usize = 4096;
/// Bounds of a DER ECDSA P-256 signature.
const SIGNATURE_LEN: std::ops::RangeInclusive<usize> = 8..=72;

/// Why a certificate was revoked: the RFC 5280 CRLReason codes (removeFromCRL excepted: ztmesh
/// never un-revokes).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// 0: no reason given.
    Unspecified,
    /// 1: the certificate's private key was compromised.
    KeyCompromise,
    /// 2: a CA key was compromised.
    CaCompromise,
    /// 3: the subject's affiliation changed.
    AffiliationChanged,
    /// 4: the certificate was replaced.
    Superseded,
    /// 5: the device was retired.
    CessationOfOperation,
    /// 6: on hold (ztmesh treats it as revoked).
    CertificateHold,
    /// 9: a privilege was withdrawn.
    PrivilegeWithdrawn,
    /// 10: an attribute authority was compromised.
    AaCompromise,
}

impl RevocationReason {
    /// The reason for an RFC 5280 code; `None` for 7, 8 (removeFromCRL) and unknown codes.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Unspecified,
            1 => Self::KeyCompromise,
            2 => Self::CaCompromise,
            3 => Self::AffiliationChanged,
            4 => Self::Superseded,
            5 => Self::CessationOfOperation,
            6 => Self::CertificateHold,
            9 => Self::PrivilegeWithdrawn,
            10 => Self::AaCompromise,
            _ => return None,
        })
    }

    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Self::Unspecified => R::Unspecified,
            Self::KeyCompromise => R::KeyCompromise,
            Self::CaCompromise => R::CaCompromise,
            Self::AffiliationChanged => R::AffiliationChanged,
            Self::Superseded => R::Superseded,
            Self::CessationOfOperation => R::CessationOfOperation,
            Self::CertificateHold => R::CertificateHold,
            Self::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Self::AaCompromise => R::AaCompromise,
        }
    }
}

/// One entry of a revocation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// The certificate's serial, big-endian magnitude (leading zeros are dropped on encoding).
    pub serial: Vec<u8>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo: revokes the key itself.
    pub spki_sha256: [u8; 32],
    /// Why.
    pub reason: RevocationReason,
    /// When.
    pub revoked_at: SystemTime,
}

impl CertificateAuthority {
    /// Signs revocation record number `record_number` with `entries`.
    ///
    /// Fails with [`PkiError::InvalidRevocation`] for more than 4096 entries, an empty or
    /// over-long serial, or a time before 1970, and with [`PkiError::Signer`] if the signer
    /// fails.
    pub fn sign_revocation_record(
        &self,
        record_number: u64,
        timestamp: SystemTime,
        entries: &[RecordEntry],
    ) -> Result<Vec<u8>, PkiError> {
        if entries.len() > MAX_RECORD_ENTRIES {
            return Err(PkiError::InvalidRevocation);
        }
        let seconds = |t: SystemTime| u64::try_from(unix_seconds(t)).map_err(|_| PkiError::InvalidRevocation);
        let mut out = Vec::with_capacity(56 + entries.len() * 62 + 73);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.key_id());
        out.extend_from_slice(&record_number.to_be_bytes());
        out.extend_from_slice(&seconds(timestamp)?.to_be_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for entry in entries {
            let serial =
                canonical_magnitude(&entry.serial).filter(|s| !s.is_empty()).ok_or(PkiError::InvalidRevocation)?;
            out.push(serial.len() as u8);
            out.extend_from_slice(serial);
            out.extend_from_slice(&entry.spki_sha256);
            out.push(entry.reason.code());
            out.extend_from_slice(&seconds(entry.revoked_at)?.to_be_bytes());
        }
        let signature = self.signer().sign(&out)?;
        if !SIGNATURE_LEN.contains(&signature.len()) || !verify_p256(self.signer().public_key(), &out, &signature) {
            return Err(PkiError::Signer);
        }
        out.push(signature.len() as u8);
        out.extend_from_slice(&signature);
        RevocationRecord::decode(&out).map_err(|_| PkiError::Internal)?;
        Ok(out)
    }
}

/// A decoded revocation record whose signature has not been checked yet: only good for
/// finding its issuer ([`Self::issuer_key_id`]) and then [`Self::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    issuer_key_id: [u8; 32],
    record_number: u64,
    timestamp: SystemTime,
    entries: Vec<RecordEntry>,
    signed: Vec<u8>,
    signature: Vec<u8>,
}

impl RevocationRecord {
    /// Decodes a record; see the [format](self#record-format-version-1).
    ///
    /// Fails with [`RevocationError::UnsupportedVersion`] for another format version and
    /// [`RevocationError::Malformed`] for anything else out of place.
    pub fn decode(bytes: &[u8]) -> Result<Self, RevocationError> {
        let mut cursor = Cursor(bytes);
        if cursor.take(4) != Some(MAGIC.as_slice()) {
            return Err(RevocationError::Malformed);
        }
        let version = cursor.u8().ok_or(RevocationError::Malformed)?;
        if version != VERSION {
            return Err(RevocationError::UnsupportedVersion(version));
        }
        Self::decode_v1(cursor, bytes).ok_or(RevocationError::Malformed)
    }

    fn decode_v1(mut cursor: Cursor<'_>, bytes: &[u8]) -> Option<Self> {
        let issuer_key_id = cursor.array()?;
        let record_number = cursor.u64()?;
        let timestamp = time_from(cursor.u64()?)?;
        let count = usize::from(cursor.u16()?);
        if count > MAX_RECORD_ENTRIES {
            return None;
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let serial_len = usize::from(cursor.u8()?);
            if !(1..=20).contains(&serial_len) {
                return None;
            }
            let serial = cursor.take(serial_len)?;
            if serial.first() == Some(&0) {
                return None;
            }
            let spki_sha256 = cursor.array()?;
            let reason = RevocationReason::from_code(cursor.u8()?)?;
            let revoked_at = time_from(cursor.u64()?)?;
            entries.push(RecordEntry { serial: serial.to_vec(), spki_sha256, reason, revoked_at });
        }
        let signed_len = bytes.len().checked_sub(cursor.0.len())?;
        let signature_len = usize::from(cursor.u8()?);
        if !SIGNATURE_LEN.contains(&signature_len) {
            return None;
        }
        let signature = cursor.take(signature_len)?;
        if !cursor.0.is_empty() {
            return None;
        }
        Some(Self {
            issuer_key_id,
            record_number,
            timestamp,
            entries,
            signed: bytes.get(..signed_len)?.to_vec(),
            signature: signature.to_vec(),
        })
    }

    /// The issuing CA's key id, SHA-256 of its SubjectPublicKeyInfo (as claimed, until verified).
    pub fn issuer_key_id(&self) -> [u8; 32] {
        self.issuer_key_id
    }

    /// The record number (as claimed, until verified).
    pub fn record_number(&self) -> u64 {
        self.record_number
    }

    /// Checks the record against `issuer`: the key ids must match
    /// ([`RevocationError::WrongIssuer`]) and the signature verify
    /// ([`RevocationError::Signature`]).
    pub fn verify(self, issuer: &TrustedIssuer) -> Result<VerifiedRecord, RevocationError> {
        if self.issuer_key_id != issuer.key_id() {
            return Err(RevocationError::WrongIssuer);
        }
        let point = issuer.cert().p256_point.as_deref().ok_or(RevocationError::Signature)?;
        if !verify_p256(point, &self.signed, &self.signature) {
            return Err(RevocationError::Signature);
        }
        let signed_digest = super::sha256(&self.signed);
        Ok(VerifiedRecord { record: self, signed_digest })
    }
}

/// A revocation record whose signature verified under a trusted CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    record: RevocationRecord,
    signed_digest: [u8; 32],
}

impl VerifiedRecord {
    /// Decodes `bytes` and verifies the record against `issuer` in one step.
    pub fn from_bytes(bytes: &[u8], issuer: &TrustedIssuer) -> Result<Self, RevocationError> {
        RevocationRecord::decode(bytes)?.verify(issuer)
    }

    /// The issuing CA's key id.
    pub fn issuer_key_id(&self) -> [u8; 32] {
        self.record.issuer_key_id
    }

    /// The record number.
    pub fn record_number(&self) -> u64 {
        self.record.record_number
    }

    /// When the CA signed the record.
    pub fn timestamp(&self) -> SystemTime {
        self.record.timestamp
    }

    /// The entries.
    pub fn entries(&self) -> &[RecordEntry] {
        &self.record.entries
    }
}

/// The outcome of merging revocation data that was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A newer CRL or record: its entries were added.
    New,
    /// The same CRL or record as the last one applied for its issuer: nothing changed.
    Duplicate,
}

/// Everything known to be revoked, merged from verified CRLs and records.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    serials: HashSet<Vec<u8>>,
    keys: HashSet<[u8; 32]>,
    progress: HashMap<[u8; 32], Progress>,
}

/// Per issuer: the last CRL and record applied, by number and signed-content digest.
#[derive(Debug, Clone, Default)]
struct Progress {
    crl: Option<(Vec<u8>, [u8; 32])>,
    record: Option<(u64, [u8; 32])>,
}

impl RevocationSet {
    /// An empty set: nothing revoked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Merges a verified CRL. Fails with [`RevocationError::Stale`] if a CRL with a higher
    /// number from the same issuer was applied, and [`RevocationError::Conflict`] if one with
    /// the same number but other content was.
    pub fn add_crl(&mut self, crl: &VerifiedCrl) -> Result<Applied, RevocationError> {
        let progress = self.progress.entry(crl.issuer_key_id()).or_default();
        if let Some((number, digest)) = &progress.crl {
            match compare_magnitudes(crl.crl_number(), number) {
                std::cmp::Ordering::Less => return Err(RevocationError::Stale),
                std::cmp::Ordering::Equal if *digest == crl.signed_digest() => return Ok(Applied::Duplicate),
                std::cmp::Ordering::Equal => return Err(RevocationError::Conflict),
                std::cmp::Ordering::Greater => {}
            }
        }
        progress.crl = Some((crl.crl_number().to_vec(), crl.signed_digest()));
        self.serials.extend(crl.entries().iter().map(|e| e.serial.clone()));
        Ok(Applied::New)
    }

    /// Merges a verified record. Fails with [`RevocationError::Stale`] if a record with a
    /// higher number from the same issuer was applied, and [`RevocationError::Conflict`] if one
    /// with the same number but other content was.
    pub fn add_record(&mut self, record: &VerifiedRecord) -> Result<Applied, RevocationError> {
        let progress = self.progress.entry(record.issuer_key_id()).or_default();
        if let Some((number, digest)) = progress.record {
            if record.record_number() < number {
                return Err(RevocationError::Stale);
            }
            if record.record_number() == number {
                return if digest == record.signed_digest {
                    Ok(Applied::Duplicate)
                } else {
                    Err(RevocationError::Conflict)
                };
            }
        }
        progress.record = Some((record.record_number(), record.signed_digest));
        for entry in record.entries() {
            self.serials.insert(entry.serial.clone());
            self.keys.insert(entry.spki_sha256);
        }
        Ok(Applied::New)
    }

    /// Whether a certificate with this serial (big-endian magnitude; leading zeros ignored) or
    /// this SPKI SHA-256 is revoked.
    pub fn is_revoked(&self, serial: &[u8], spki_sha256: &[u8; 32]) -> bool {
        let skip = serial.iter().take_while(|b| **b == 0).count();
        let serial = serial.get(skip..).unwrap_or_default();
        self.keys.contains(spki_sha256) || self.serials.contains(serial)
    }

    /// The highest record number applied for the issuer with this key id.
    pub fn last_record_number(&self, issuer_key_id: &[u8; 32]) -> Option<u64> {
        self.progress.get(issuer_key_id).and_then(|p| p.record.map(|(n, _)| n))
    }

    /// The highest CRL Number applied for the issuer with this key id (big-endian magnitude).
    pub fn last_crl_number(&self, issuer_key_id: &[u8; 32]) -> Option<&[u8]> {
        self.progress.get(issuer_key_id).and_then(|p| p.crl.as_ref().map(|(n, _)| n.as_slice()))
    }

    /// How many serials and how many keys are revoked, in that order.
    pub fn counts(&self) -> (usize, usize) {
        (self.serials.len(), self.keys.len())
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.keys.is_empty()
    }
}

/// Compares two big-endian magnitudes without leading zeros.
fn compare_magnitudes(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn time_from(seconds: u64) -> Option<SystemTime> {
    system_time(i64::try_from(seconds).ok()?)
}

/// Reads fixed-size fields off the front of a slice, never past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pki::crl::CrlParams;
    use crate::pki::testutil::Pki;
    use crate::pki::verify::TrustStore;

    fn issuer(pki: &Pki) -> TrustedIssuer {
        let trust = TrustStore::from_der(&[pki.root.certificate_der()]).unwrap();
        trust.issuer(&[pki.site.certificate_der()], SystemTime::now()).unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn entries() -> Vec<RecordEntry> {
        vec![
            RecordEntry {
                serial: vec![0, 0x80, 1],
                spki_sha256: [1; 32],
                reason: RevocationReason::KeyCompromise,
                revoked_at: at(1_700_000_000),
            },
            RecordEntry {
                serial: vec![9; 20],
                spki_sha256: [2; 32],
                reason: RevocationReason::AaCompromise,
                revoked_at: at(0),
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        let pki = Pki::new();
        let bytes = pki.site.sign_revocation_record(7, at(1_800_000_000), &entries()).unwrap();
        assert_eq!(bytes.get(..5), Some(&b"ZTRV\x01"[..]));
        let decoded = RevocationRecord::decode(&bytes).unwrap();
        assert_eq!(decoded.issuer_key_id(), pki.site.key_id());
        assert_eq!(decoded.record_number(), 7);
        let verified = decoded.verify(&issuer(&pki)).unwrap();
        assert_eq!(verified.timestamp(), at(1_800_000_000));
        let mut expected = entries();
        expected[0].serial = vec![0x80, 1];
        assert_eq!(verified.entries(), expected);
        let empty = pki.site.sign_revocation_record(8, at(1), &[]).unwrap();
        assert!(VerifiedRecord::from_bytes(&empty, &issuer(&pki)).unwrap().entries().is_empty());
    }

    #[test]
    fn every_truncation_and_extension_is_malformed() {
        let pki = Pki::new();
        let bytes = pki.site.sign_revocation_record(1, at(1), &entries()).unwrap();
        for len in 0..bytes.len() {
            assert_eq!(RevocationRecord::decode(&bytes[..len]).unwrap_err(), RevocationError::Malformed, "{len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(RevocationRecord::decode(&longer).unwrap_err(), RevocationError::Malformed);
    }

    #[test]
    fn out_of_bounds_fields_are_malformed() {
        let pki = Pki::new();
        let one = vec![RecordEntry {
            serial: vec![0x11],
            spki_sha256: [3; 32],
            reason: RevocationReason::Superseded,
            revoked_at: at(5),
        }];
        let bytes = pki.site.sign_revocation_record(1, at(1), &one).unwrap();
        let patched = |offset: usize, value: &[u8]| {
            let mut copy = bytes.clone();
            copy.splice(offset..offset + value.len(), value.iter().copied());
            RevocationRecord::decode(&copy).unwrap_err()
        };
        assert_eq!(patched(0, b"ZTRX"), RevocationError::Malformed);
        assert_eq!(patched(4, &[2]), RevocationError::UnsupportedVersion(2));
        assert_eq!(patched(53, &[0x10, 0x01]), RevocationError::Malformed); // 4097 entries
        assert_eq!(patched(53, &[0, 2]), RevocationError::Malformed); // more entries than bytes
        assert_eq!(patched(55, &[0]), RevocationError::Malformed); // serial length 0
        assert_eq!(patched(55, &[21]), RevocationError::Malformed); // serial length 21
        assert_eq!(patched(56, &[0]), RevocationError::Malformed); // leading zero serial
        assert_eq!(patched(89, &[7]), RevocationError::Malformed); // reason 7
        assert_eq!(patched(89, &[8]), RevocationError::Malformed); // removeFromCRL
        assert_eq!(patched(98, &[7]), RevocationError::Malformed); // signature length 7
        assert_eq!(patched(98, &[73]), RevocationError::Malformed); // signature length 73
                                                                    // A changed entry breaks the signature.
        let mut copy = bytes.clone();
        copy[60] ^= 1;
        assert_eq!(RevocationRecord::decode(&copy).unwrap().verify(&issuer(&pki)), Err(RevocationError::Signature));
    }

    #[test]
    fn signing_refuses_bad_entries() {
        let pki = Pki::new();
        let mut bad = entries();
        bad[0].serial = vec![0, 0];
        assert_eq!(pki.site.sign_revocation_record(1, at(1), &bad), Err(PkiError::InvalidRevocation));
        bad[0].serial = vec![1; 21];
        assert_eq!(pki.site.sign_revocation_record(1, at(1), &bad), Err(PkiError::InvalidRevocation));
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(pki.site.sign_revocation_record(1, before_1970, &[]), Err(PkiError::InvalidRevocation));
        let many = vec![entries()[1].clone(); MAX_RECORD_ENTRIES + 1];
        assert_eq!(pki.site.sign_revocation_record(1, at(1), &many), Err(PkiError::InvalidRevocation));
        let max = vec![entries()[1].clone(); MAX_RECORD_ENTRIES];
        let bytes = pki.site.sign_revocation_record(1, at(1), &max).unwrap();
        assert_eq!(RevocationRecord::decode(&bytes).unwrap().entries.len(), MAX_RECORD_ENTRIES);
    }

    #[test]
    fn the_set_refuses_rollbacks_and_tolerates_duplicates() {
        let pki = Pki::new();
        let issuer = issuer(&pki);
        let record = |n: u64, serial: u8| {
            let entry = RecordEntry {
                serial: vec![serial],
                spki_sha256: [serial; 32],
                reason: RevocationReason::Superseded,
                revoked_at: at(1),
            };
            let bytes = pki.site.sign_revocation_record(n, at(1), &[entry]).unwrap();
            VerifiedRecord::from_bytes(&bytes, &issuer).unwrap()
        };
        let mut set = RevocationSet::new();
        assert!(set.is_empty());
        assert_eq!(set.add_record(&record(5, 1)), Ok(Applied::New));
        // ECDSA is randomised: signing the same content again gives other bytes, same meaning.
        assert_eq!(set.add_record(&record(5, 1)), Ok(Applied::Duplicate));
        assert_eq!(set.add_record(&record(5, 2)), Err(RevocationError::Conflict));
        assert_eq!(set.add_record(&record(4, 3)), Err(RevocationError::Stale));
        assert_eq!(set.add_record(&record(9, 4)), Ok(Applied::New));
        assert_eq!(set.last_record_number(&pki.site.key_id()), Some(9));
        assert_eq!(set.last_record_number(&pki.root.key_id()), None);
        assert!(set.is_revoked(&[1], &[0; 32]) && set.is_revoked(&[0, 0, 1], &[0; 32]));
        assert!(set.is_revoked(&[0x77], &[4; 32]));
        assert!(!set.is_revoked(&[2], &[2; 32]) && !set.is_revoked(&[3], &[3; 32]));
        assert_eq!(set.counts(), (2, 2));

        let crl = |n: u64, serial: u8| {
            let mut params = CrlParams::new(n, SystemTime::now());
            params.entries.push(crate::pki::CrlEntry {
                serial: vec![serial],
                revoked_at: SystemTime::now(),
                reason: RevocationReason::Unspecified,
            });
            let der = pki.site.issue_crl(&params).unwrap().der;
            VerifiedCrl::from_der(&der, &issuer).unwrap()
        };
        let first = crl(300, 0x51);
        assert_eq!(set.add_crl(&first), Ok(Applied::New));
        assert_eq!(set.add_crl(&first), Ok(Applied::Duplicate));
        assert_eq!(set.add_crl(&crl(300, 0x52)), Err(RevocationError::Conflict));
        assert_eq!(set.add_crl(&crl(299, 0x53)), Err(RevocationError::Stale));
        assert_eq!(set.add_crl(&crl(301, 0x54)), Ok(Applied::New));
        assert_eq!(set.last_crl_number(&pki.site.key_id()), Some(&[1, 0x2d][..]));
        assert!(set.is_revoked(&[0x51], &[0; 32]) && set.is_revoked(&[0x54], &[0; 32]));
        assert!(!set.is_revoked(&[0x52], &[0; 32]) && !set.is_revoked(&[0x53], &[0; 32]));
    }

    #[test]
    fn reason_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(reason) = RevocationReason::from_code(code) {
                assert_eq!(reason.code(), code);
            } else {
                assert!(code == 7 || code == 8 || code > 10, "{code}");
            }
        }
    }
}
