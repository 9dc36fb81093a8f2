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
//! removed. Everything is kept per issuer (the SHA-256 of the issuing CA's SubjectPublicKeyInfo):
//! an issuer's entries revoke only the certificates it signed, so one site CA's data cannot
//! revoke another site's devices or another site CA, and an intermediate is checked against its
//! issuer's (the root's) data alone. Per issuer, the set remembers the highest CRL Number and
//! record number applied and refuses anything lower ([`RevocationError::Rollback`]), or the
//! same number with different content ([`RevocationError::Conflict`]); the same content again is
//! a harmless [`Applied::Duplicate`], since gossip delivers duplicates all the time. A record's
//! number may jump ahead; a skipped record can no longer be applied afterwards, so deliver
//! records in order ([`RevocationSet::last_record_number`] tells a peer where to resume).
//! Because merging is a union, a CA can heal any gap by publishing a record that lists every
//! current entry.
//!
//! # Freshness
//!
//! A CRL is fresh until its `nextUpdate` plus a grace period ([`Freshness`], one day by
//! default). A stale CRL is not applied, and once the newest CRL of an issuer turns stale every
//! certificate that issuer signed fails verification with `ERR_REVOCATION_STALE`
//! ([`StalePolicy::FailClosed`], the default). [`StalePolicy::FailOpen`] uses the stale data
//! instead and counts each use ([`RevocationSet::stale_uses`]). Records carry no `nextUpdate`:
//! an issuer known from records alone is never stale.
//!
//! # Saved progress
//!
//! [`RevocationSet::progress`] encodes the numbers applied so far, to be written next to the
//! store and given back to [`RevocationSet::restore_progress`] after a reload or a restart: an
//! older CRL or record, validly signed but rolled back, is refused then too.
//!
//! | length | field |
//! | --- | --- |
//! | 4 | magic `ZTRP` |
//! | 1 | version, `1` |
//! | 2 | issuer count `n` |
//!
//! then `n` times: the issuer key id (32), a CRL flag (1: `0` none, `1` present) followed when
//! present by the CRL Number's length (1, 0..=20), the number (big-endian, no leading zero) and
//! the SHA-256 of its signed part (32); a record flag (1) followed when present by the record
//! number (8) and its signed-part SHA-256 (32). Decoding is strict.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// How long revocation data stays usable past a CRL's `nextUpdate` by default: one day, so a
/// gateway that is briefly unreachable does not cut every link at once.
pub const DEFAULT_CRL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What a [`RevocationSet`] does with an issuer's revocation data once its newest CRL is past
/// `nextUpdate` plus the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StalePolicy {
    /// Refuse: the CRL is not applied ([`RevocationError::Stale`]) and every certificate that
    /// issuer vouches for fails [`verify_peer`](super::verify_peer) with
    /// [`VerifyError::RevocationStale`](super::VerifyError::RevocationStale). The default.
    FailClosed,
    /// Use the stale data anyway, and count each use ([`RevocationSet::stale_uses`]): an
    /// explicit, audited operator choice for sites that prefer availability.
    FailOpen,
}

/// The freshness rule of a [`RevocationSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Freshness {
    /// How long past `nextUpdate` a CRL is still fresh.
    pub grace: Duration,
    /// What happens after that.
    pub on_stale: StalePolicy,
}

impl Default for Freshness {
    /// [`DEFAULT_CRL_GRACE`], failing closed.
    fn default() -> Self {
        Self { grace: DEFAULT_CRL_GRACE, on_stale: StalePolicy::FailClosed }
    }
}

/// Everything known to be revoked, merged from verified CRLs and records, kept per issuing CA.
///
/// Each issuer's entries revoke only certificates that issuer signed: site B's CRL cannot
/// revoke site A's devices, nor site A's CA (the root's data decides that).
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    issuers: HashMap<[u8; 32], IssuerRevocations>,
    freshness: Freshness,
    /// Decisions taken on stale data under [`StalePolicy::FailOpen`]; shared by the clones of a
    /// set, as the snapshots of one trust state are.
    stale_uses: Arc<AtomicU64>,
}

/// One issuer's revocations and how far its data goes.
#[derive(Debug, Clone, Default)]
struct IssuerRevocations {
    serials: HashSet<Vec<u8>>,
    keys: HashSet<[u8; 32]>,
    progress: Progress,
    /// Whether a CRL was applied to this set (not only restored progress).
    crl_applied: bool,
    /// `nextUpdate` of the newest CRL applied.
    next_update: Option<SystemTime>,
}

/// Per issuer: the last CRL and record applied (or restored), by number and signed-content digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Progress {
    crl: Option<(Vec<u8>, [u8; 32])>,
    record: Option<(u64, [u8; 32])>,
}

impl RevocationSet {
    /// An empty set: nothing revoked, [`Freshness::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with this freshness rule.
    pub fn with_freshness(freshness: Freshness) -> Self {
        Self { freshness, ..Self::default() }
    }

    /// The freshness rule.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// Merges a verified CRL at `now`.
    ///
    /// Fails with [`RevocationError::Stale`] if the CRL is past `nextUpdate` plus the grace
    /// period (or has no `nextUpdate`) and the set fails closed, [`RevocationError::Rollback`]
    /// if a CRL with a higher number from the same issuer was applied (or restored with
    /// [`Self::restore_progress`]), and [`RevocationError::Conflict`] if one with the same number
    /// but other content was. Nothing changes when it fails.
    pub fn add_crl(&mut self, crl: &VerifiedCrl, now: SystemTime) -> Result<Applied, RevocationError> {
        if !self.is_within(crl.next_update(), now) {
            self.use_stale()?;
        }
        let issuer = self.issuers.entry(crl.issuer_key_id()).or_default();
        let applied = match &issuer.progress.crl {
            Some((number, digest)) => match compare_magnitudes(crl.crl_number(), number) {
                Ordering::Less => return Err(RevocationError::Rollback),
                Ordering::Equal if *digest == crl.signed_digest() => Applied::Duplicate,
                Ordering::Equal => return Err(RevocationError::Conflict),
                Ordering::Greater => Applied::New,
            },
            None => Applied::New,
        };
        issuer.progress.crl = Some((crl.crl_number().to_vec(), crl.signed_digest()));
        issuer.next_update = crl.next_update();
        issuer.crl_applied = true;
        // A duplicate adds its entries too: a set restored from saved progress starts empty.
        issuer.serials.extend(crl.entries().iter().map(|e| e.serial.clone()));
        Ok(applied)
    }

    /// Merges a verified record. Fails with [`RevocationError::Rollback`] if a record with a
    /// higher number from the same issuer was applied (or restored), and
    /// [`RevocationError::Conflict`] if one with the same number but other content was.
    pub fn add_record(&mut self, record: &VerifiedRecord) -> Result<Applied, RevocationError> {
        let issuer = self.issuers.entry(record.issuer_key_id()).or_default();
        let applied = match issuer.progress.record {
            Some((number, digest)) => match record.record_number().cmp(&number) {
                Ordering::Less => return Err(RevocationError::Rollback),
                Ordering::Equal if digest == record.signed_digest => Applied::Duplicate,
                Ordering::Equal => return Err(RevocationError::Conflict),
                Ordering::Greater => Applied::New,
            },
            None => Applied::New,
        };
        issuer.progress.record = Some((record.record_number(), record.signed_digest));
        for entry in record.entries() {
            issuer.serials.insert(entry.serial.clone());
            issuer.keys.insert(entry.spki_sha256);
        }
        Ok(applied)
    }

    /// Whether the CA with key id `issuer_key_id` revoked the certificate it issued with this
    /// serial (big-endian magnitude; leading zeros ignored) or this SPKI SHA-256. Only that
    /// issuer's data counts; freshness is not checked (see [`Self::check`]).
    pub fn is_revoked(&self, issuer_key_id: &[u8; 32], serial: &[u8], spki_sha256: &[u8; 32]) -> bool {
        let Some(issuer) = self.issuers.get(issuer_key_id) else { return false };
        let skip = serial.iter().take_while(|b| **b == 0).count();
        let serial = serial.get(skip..).unwrap_or_default();
        issuer.keys.contains(spki_sha256) || issuer.serials.contains(serial)
    }

    /// [`Self::is_revoked`] at `now`, failing with [`RevocationError::Stale`] when the issuer's
    /// newest CRL is past `nextUpdate` plus the grace period and the set fails closed (under
    /// [`StalePolicy::FailOpen`] the stale data answers, and the use is counted).
    pub fn check(
        &self,
        issuer_key_id: &[u8; 32],
        serial: &[u8],
        spki_sha256: &[u8; 32],
        now: SystemTime,
    ) -> Result<bool, RevocationError> {
        if let Some(issuer) = self.issuers.get(issuer_key_id) {
            if issuer.crl_applied && !self.is_within(issuer.next_update, now) {
                self.use_stale()?;
            }
        }
        Ok(self.is_revoked(issuer_key_id, serial, spki_sha256))
    }

    /// The first moment some issuer's CRL turns stale (its `nextUpdate` plus the grace period),
    /// if any CRL is applied: a verdict reached under this set is not reused past it.
    pub fn fresh_until(&self) -> Option<SystemTime> {
        self.issuers
            .values()
            .filter(|issuer| issuer.crl_applied)
            .map(|issuer| issuer.next_update.and_then(|t| t.checked_add(self.freshness.grace)).unwrap_or(UNIX_EPOCH))
            .min()
    }

    /// How many times stale data was used under [`StalePolicy::FailOpen`] (CRLs applied and
    /// certificates checked past their issuer's `nextUpdate` plus grace), by this set and its
    /// clones.
    pub fn stale_uses(&self) -> u64 {
        self.stale_uses.load(AtomicOrdering::Relaxed)
    }

    /// The highest record number applied for the issuer with this key id.
    pub fn last_record_number(&self, issuer_key_id: &[u8; 32]) -> Option<u64> {
        self.issuers.get(issuer_key_id).and_then(|i| i.progress.record.map(|(n, _)| n))
    }

    /// The highest CRL Number applied for the issuer with this key id (big-endian magnitude).
    pub fn last_crl_number(&self, issuer_key_id: &[u8; 32]) -> Option<&[u8]> {
        self.issuers.get(issuer_key_id).and_then(|i| i.progress.crl.as_ref().map(|(n, _)| n.as_slice()))
    }

    /// How many serials and how many keys are revoked, in that order, over all issuers.
    pub fn counts(&self) -> (usize, usize) {
        self.issuers.values().fold((0, 0), |(s, k), i| (s + i.serials.len(), k + i.keys.len()))
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.issuers.values().all(|i| i.serials.is_empty() && i.keys.is_empty())
    }

    /// The progress of every issuer (the last CRL and record numbers applied, with their content
    /// digests), encoded to be saved and given to [`Self::restore_progress`] after a restart, so
    /// that an older CRL or record is refused then too. Format in the
    /// [module documentation](self).
    pub fn progress(&self) -> Vec<u8> {
        let mut issuers: Vec<_> = self.issuers.iter().filter(|(_, i)| i.progress != Progress::default()).collect();
        issuers.sort_by_key(|(id, _)| **id);
        let mut out = Vec::with_capacity(7 + issuers.len() * 140);
        out.extend_from_slice(PROGRESS_MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(issuers.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        for (id, issuer) in issuers.into_iter().take(usize::from(u16::MAX)) {
            out.extend_from_slice(id);
            match &issuer.progress.crl {
                Some((number, digest)) => {
                    out.push(1);
                    out.push(number.len() as u8);
                    out.extend_from_slice(number);
                    out.extend_from_slice(digest);
                }
                None => out.push(0),
            }
            match &issuer.progress.record {
                Some((number, digest)) => {
                    out.push(1);
                    out.extend_from_slice(&number.to_be_bytes());
                    out.extend_from_slice(digest);
                }
                None => out.push(0),
            }
        }
        out
    }

    /// Raises this set's progress to the saved `progress` ([`Self::progress`]): from then on a
    /// CRL or record older than the saved one is refused ([`RevocationError::Rollback`]), and the
    /// saved one itself is applied as a duplicate. Progress already higher here stays. Fails
    /// with [`RevocationError::Malformed`] (nothing changed) unless `progress` decodes strictly.
    pub fn restore_progress(&mut self, progress: &[u8]) -> Result<(), RevocationError> {
        let decoded = decode_progress(progress).ok_or(RevocationError::Malformed)?;
        for (id, saved) in decoded {
            let current = &mut self.issuers.entry(id).or_default().progress;
            if let Some((number, digest)) = saved.crl {
                let higher = current.crl.as_ref().is_none_or(|(n, _)| compare_magnitudes(&number, n).is_gt());
                if higher {
                    current.crl = Some((number, digest));
                }
            }
            if let Some((number, digest)) = saved.record {
                if current.record.is_none_or(|(n, _)| number > n) {
                    current.record = Some((number, digest));
                }
            }
        }
        Ok(())
    }

    /// Whether data whose next update is due at `next_update` is still fresh at `now`.
    fn is_within(&self, next_update: Option<SystemTime>, now: SystemTime) -> bool {
        next_update.and_then(|t| t.checked_add(self.freshness.grace)).is_some_and(|end| now <= end)
    }

    /// Stale data is about to be used: refused when failing closed, counted when failing open.
    fn use_stale(&self) -> Result<(), RevocationError> {
        match self.freshness.on_stale {
            StalePolicy::FailClosed => Err(RevocationError::Stale),
            StalePolicy::FailOpen => {
                self.stale_uses.fetch_add(1, AtomicOrdering::Relaxed);
                Ok(())
            }
        }
    }
}

/// The magic at the start of saved progress.
const PROGRESS_MAGIC: &[u8; 4] = b"ZTRP";

/// Decodes saved progress strictly: every length in bounds, no issuer twice, nothing after.
fn decode_progress(bytes: &[u8]) -> Option<Vec<([u8; 32], Progress)>> {
    let mut cursor = Cursor(bytes);
    if cursor.take(4)? != PROGRESS_MAGIC || cursor.u8()? != VERSION {
        return None;
    }
    let count = cursor.u16()?;
    let mut out: Vec<([u8; 32], Progress)> = Vec::with_capacity(usize::from(count).min(bytes.len() / 34));
    for _ in 0..count {
        let id: [u8; 32] = cursor.array()?;
        if out.iter().any(|(seen, _)| *seen == id) {
            return None;
        }
        let crl = match cursor.u8()? {
            0 => None,
            1 => {
                let len = usize::from(cursor.u8()?);
                let number = cursor.take(len)?;
                if len > 20 || number.first() == Some(&0) {
                    return None;
                }
                Some((number.to_vec(), cursor.array()?))
            }
            _ => return None,
        };
        let record = match cursor.u8()? {
            0 => None,
            1 => Some((cursor.u64()?, cursor.array()?)),
            _ => return None,
        };
        out.push((id, Progress { crl, record }));
    }
    cursor.0.is_empty().then_some(out)
}

/// Compares two big-endian magnitudes without leading zeros.
fn compare_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
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
        let site = pki.site.key_id();
        let mut set = RevocationSet::new();
        assert!(set.is_empty());
        assert_eq!(set.add_record(&record(5, 1)), Ok(Applied::New));
        // ECDSA is randomised: signing the same content again gives other bytes, same meaning.
        assert_eq!(set.add_record(&record(5, 1)), Ok(Applied::Duplicate));
        assert_eq!(set.add_record(&record(5, 2)), Err(RevocationError::Conflict));
        assert_eq!(set.add_record(&record(4, 3)), Err(RevocationError::Rollback));
        assert_eq!(set.add_record(&record(9, 4)), Ok(Applied::New));
        assert_eq!(set.last_record_number(&pki.site.key_id()), Some(9));
        assert_eq!(set.last_record_number(&pki.root.key_id()), None);
        assert!(set.is_revoked(&site, &[1], &[0; 32]) && set.is_revoked(&site, &[0, 0, 1], &[0; 32]));
        assert!(set.is_revoked(&site, &[0x77], &[4; 32]));
        assert!(!set.is_revoked(&site, &[2], &[2; 32]) && !set.is_revoked(&site, &[3], &[3; 32]));
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
        assert_eq!(set.add_crl(&first, SystemTime::now()), Ok(Applied::New));
        assert_eq!(set.add_crl(&first, SystemTime::now()), Ok(Applied::Duplicate));
        assert_eq!(set.add_crl(&crl(300, 0x52), SystemTime::now()), Err(RevocationError::Conflict));
        assert_eq!(set.add_crl(&crl(299, 0x53), SystemTime::now()), Err(RevocationError::Rollback));
        assert_eq!(set.add_crl(&crl(301, 0x54), SystemTime::now()), Ok(Applied::New));
        assert_eq!(set.last_crl_number(&pki.site.key_id()), Some(&[1, 0x2d][..]));
        assert!(set.is_revoked(&site, &[0x51], &[0; 32]) && set.is_revoked(&site, &[0x54], &[0; 32]));
        assert!(!set.is_revoked(&site, &[0x52], &[0; 32]) && !set.is_revoked(&site, &[0x53], &[0; 32]));
    }

    /// A CRL signed by the site CA, numbered `n`, issued `age` ago and due `lifetime` after that.
    fn aged_crl(pki: &Pki, n: u64, serial: u8, age: Duration, lifetime: Duration) -> VerifiedCrl {
        let issued = SystemTime::now() - age;
        let mut params = CrlParams::new(n, issued);
        params.next_update = issued + lifetime;
        params.entries.push(crate::pki::CrlEntry {
            serial: vec![serial],
            revoked_at: issued,
            reason: RevocationReason::KeyCompromise,
        });
        VerifiedCrl::from_der(&pki.site.issue_crl(&params).unwrap().der, &issuer(pki)).unwrap()
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn a_crl_past_its_next_update_is_stale_unless_the_set_fails_open() {
        let pki = Pki::new();
        let site = pki.site.key_id();
        let now = SystemTime::now();
        // The attack: a CRL whose nextUpdate passed about 400 days ago.
        let ancient = aged_crl(&pki, 1, 0x42, 407 * DAY, 7 * DAY);
        let mut set = RevocationSet::new();
        assert_eq!(set.add_crl(&ancient, now), Err(RevocationError::Stale));
        assert!(set.is_empty() && set.last_crl_number(&site).is_none(), "nothing applied");

        // Within the grace period it is still fresh; after it, checks against it fail closed.
        let due_an_hour_ago = aged_crl(&pki, 2, 0x42, 7 * DAY + Duration::from_secs(3600), 7 * DAY);
        assert_eq!(set.add_crl(&due_an_hour_ago, now), Ok(Applied::New));
        assert_eq!(set.check(&site, &[0x42], &[0; 32], now), Ok(true));
        assert_eq!(set.check(&site, &[0x43], &[0; 32], now), Ok(false));
        let later = now + DAY;
        assert_eq!(set.check(&site, &[0x43], &[0; 32], later), Err(RevocationError::Stale));
        assert!(set.fresh_until().is_some_and(|t| t > now && t < later));
        // Another issuer's certificates are not held up by this issuer's stale data.
        assert_eq!(set.check(&pki.root.key_id(), &[0x43], &[0; 32], later), Ok(false));
        let strict = RevocationSet::with_freshness(Freshness { grace: Duration::ZERO, ..Freshness::default() });
        assert_eq!(strict.clone().add_crl(&due_an_hour_ago, now), Err(RevocationError::Stale));

        // Failing open is explicit and counted, by the set and its clones.
        let mut open =
            RevocationSet::with_freshness(Freshness { on_stale: StalePolicy::FailOpen, ..Freshness::default() });
        assert_eq!(open.add_crl(&ancient, now), Ok(Applied::New));
        let clone = open.clone();
        assert_eq!(clone.check(&site, &[0x42], &[0; 32], now), Ok(true));
        assert_eq!(open.stale_uses(), 2);
    }

    #[test]
    fn saved_progress_refuses_an_older_crl_after_a_restart() {
        let pki = Pki::new();
        let site = pki.site.key_id();
        let now = SystemTime::now();
        let old = aged_crl(&pki, 4, 0x11, DAY, 7 * DAY);
        let new = aged_crl(&pki, 5, 0x22, Duration::ZERO, 7 * DAY);
        let mut set = RevocationSet::new();
        set.add_crl(&old, now).unwrap();
        set.add_crl(&new, now).unwrap();
        set.add_record(
            &VerifiedRecord::from_bytes(&pki.site.sign_revocation_record(3, now, &[]).unwrap(), &issuer(&pki)).unwrap(),
        )
        .unwrap();
        let saved = set.progress();

        // The attack: after a restart, the file holds the older, validly signed CRL.
        let mut restarted = RevocationSet::new();
        restarted.restore_progress(&saved).unwrap();
        assert_eq!(restarted.add_crl(&old, now), Err(RevocationError::Rollback));
        assert!(!restarted.is_revoked(&site, &[0x11], &[0; 32]));
        // The saved CRL itself applies (as a duplicate), with its entries.
        assert_eq!(restarted.add_crl(&new, now), Ok(Applied::Duplicate));
        assert!(restarted.is_revoked(&site, &[0x22], &[0; 32]));
        assert_eq!(restarted.last_record_number(&site), Some(3));
        assert_eq!(restarted.progress(), saved);
        // Restoring lower progress never lowers what a set has.
        let mut ahead = RevocationSet::new();
        ahead.add_crl(&aged_crl(&pki, 9, 0x33, Duration::ZERO, DAY), now).unwrap();
        ahead.restore_progress(&saved).unwrap();
        assert_eq!(ahead.last_crl_number(&site), Some(&[9][..]));
        assert_eq!(ahead.last_record_number(&site), Some(3));
    }

    #[test]
    fn saved_progress_decodes_strictly() {
        let pki = Pki::new();
        let mut set = RevocationSet::new();
        set.add_crl(&aged_crl(&pki, 0x1234, 1, Duration::ZERO, DAY), SystemTime::now()).unwrap();
        let saved = set.progress();
        assert_eq!(saved.get(..5), Some(&b"ZTRP\x01"[..]));
        for len in 0..saved.len() {
            assert_eq!(RevocationSet::new().restore_progress(&saved[..len]), Err(RevocationError::Malformed), "{len}");
        }
        let mut longer = saved.clone();
        longer.push(0);
        assert_eq!(RevocationSet::new().restore_progress(&longer), Err(RevocationError::Malformed));
        let mut bad_flag = saved.clone();
        bad_flag[39] = 2;
        assert_eq!(RevocationSet::new().restore_progress(&bad_flag), Err(RevocationError::Malformed));
        let mut leading_zero = saved.clone();
        leading_zero[41] = 0;
        assert_eq!(RevocationSet::new().restore_progress(&leading_zero), Err(RevocationError::Malformed));
        assert_eq!(RevocationSet::new().progress(), b"ZTRP\x01\x00\x00");
    }

    #[test]
    fn seeded_garbage_progress_is_refused_or_restored_never_a_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pki = Pki::new();
        let mut valid = RevocationSet::new();
        valid.add_crl(&aged_crl(&pki, 0x0102, 1, Duration::ZERO, DAY), SystemTime::now()).unwrap();
        let record = pki.site.sign_revocation_record(7, SystemTime::now(), &[]).unwrap();
        valid.add_record(&VerifiedRecord::from_bytes(&record, &issuer(&pki)).unwrap()).unwrap();
        let seed = valid.progress();
        let mut restored = 0;
        for _ in 0..5000 {
            let mut bytes = seed.clone();
            for _ in 0..=next() % 3 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            match next() % 4 {
                0 => bytes.truncate((next() as usize) % bytes.len()),
                1 => bytes.push(next() as u8),
                _ => {}
            }
            let mut set = RevocationSet::new();
            if set.restore_progress(&bytes).is_ok() {
                restored += 1;
                let saved = set.progress();
                assert_eq!(RevocationSet::new().restore_progress(&saved), Ok(()));
            } else {
                assert!(set.progress() == b"ZTRP\x01\x00\x00", "a refused input changes nothing");
            }
        }
        assert!(restored > 0, "the generator reaches valid inputs");
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
