//! The verdicts [`verify_peer_key`] already reached, so that a peer that connects again is not
//! charged its chain's signatures again: the one cache behind the TLS contexts and the Noise
//! links.
//!
//! A [`Verdicts`] belongs to one state of trust anchors and revocations, and its owner (the
//! trust snapshot of a TLS context or a link configuration, `pki::snapshot`) starts a new one
//! whenever either changes: nothing decided before a revocation or a trust change survives it. As
//! a second line, a kept verdict whose leaf serial or key is revoked in the revocations it is
//! asked under is dropped and decided again, and so is every verdict once some revocation data
//! of the set turns stale ([`RevocationSet::fresh_until`]).
//!
//! A verdict is keyed by SHA-256 of every policy input that can change it (expected device,
//! expected tenant, required usage, pins, clock skew) and of the exact chain, so a verdict
//! reached under one policy never answers for another. Each is kept for at most [`VERDICT_TTL`],
//! and never past the leaf's `notAfter` plus the policy's clock skew (ztmesh CAs cap a device
//! certificate at their own validity, so the leaf expires first; the TTL bounds the rest). At
//! most [`VERDICTS_MAX`] are kept: when full, the stale ones go, and if none is stale, all go.
//! Only successes are kept, with the leaf's key, so that a caller checking a proof of possession
//! (the Noise link's binding signature) still checks it every time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::{verify_peer_key, PeerIdentity, PeerPolicy, RequiredUsage, RevocationSet, TrustStore, VerifyError};

/// How long a verdict is reused.
const VERDICT_TTL: Duration = Duration::from_secs(5 * 60);
/// The most verdicts kept.
const VERDICTS_MAX: usize = 1024;

/// A verified peer and its leaf's public key (an uncompressed P-256 point).
pub(crate) type Verdict = (PeerIdentity, Vec<u8>);

/// The verdicts reached under one state of trust and revocations.
pub(crate) struct Verdicts {
    reached: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
    ttl: Duration,
    max: usize,
}

impl Default for Verdicts {
    fn default() -> Self {
        Self::with_limits(VERDICT_TTL, VERDICTS_MAX)
    }
}

impl Verdicts {
    fn with_limits(ttl: Duration, max: usize) -> Self {
        Self { reached: Mutex::new(HashMap::new()), ttl, max }
    }

    /// The peer presenting `chain` (DER, leaf first) under `policy` and its leaf key: a verdict
    /// reached before that still holds at `now`, or [`verify_peer_key`]'s.
    pub(crate) fn decide(
        &self,
        chain: &[&[u8]],
        trust: &TrustStore,
        revocations: &RevocationSet,
        policy: &PeerPolicy,
        now: SystemTime,
    ) -> Result<Verdict, VerifyError> {
        let key = verdict_key(chain, policy);
        if let Some(verdict) = self.reached(&key, revocations, now, policy.clock_skew) {
            return Ok(verdict);
        }
        let verdict = verify_peer_key(chain, trust, revocations, policy, now)?;
        let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
        if reached.len() >= self.max {
            reached.retain(|_, (_, at)| at.elapsed() <= self.ttl);
            if reached.len() >= self.max {
                reached.clear();
            }
        }
        reached.insert(key, (verdict.clone(), Instant::now()));
        Ok(verdict)
    }

    /// How many verdicts are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.reached.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The verdict kept under `key`, if it still holds at `now`; a stale one is dropped.
    fn reached(&self, key: &[u8; 32], revocations: &RevocationSet, now: SystemTime, skew: Duration) -> Option<Verdict> {
        let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
        let ((identity, _), at) = reached.get(key)?;
        // A leaf expiry past the end of time counts as expired: no verdict outlives a bound.
        let expired = identity.not_after.checked_add(skew).is_none_or(|end| now > end);
        // Past the moment some revocation data turns stale, decide again (and fail closed).
        let stale = revocations.fresh_until().is_some_and(|end| now > end);
        if expired || stale || at.elapsed() > self.ttl || is_revoked(identity, revocations) {
            reached.remove(key);
            return None;
        }
        reached.get(key).map(|(verdict, _)| verdict.clone())
    }
}

/// Whether `identity` is revoked in `revocations` by its issuer (by serial, in its one spelling,
/// or by key).
pub(crate) fn is_revoked(identity: &PeerIdentity, revocations: &RevocationSet) -> bool {
    // A serial that is not hex cannot come out of verify_peer; the key alone still counts then.
    let serial = crate::ids::parse_serial(&identity.serial).unwrap_or_default();
    revocations.is_revoked(&identity.issuer_key_id, &serial, &identity.spki_sha256)
}

/// The key of a verdict: SHA-256 over every policy input that can change the verdict, then the
/// certificates, each part tagged or length-prefixed (so no two distinct inputs share a key).
fn verdict_key(chain: &[&[u8]], policy: &PeerPolicy) -> [u8; 32] {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut optional = |value: Option<&[u8]>| match value {
        None => hash.update(&[0]),
        Some(bytes) => {
            hash.update(&[1]);
            hash.update(&(bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        }
    };
    optional(policy.expected_device.as_deref().map(str::as_bytes));
    optional(policy.expected_tenant.as_deref().map(str::as_bytes));
    optional(policy.pins.as_ref().map(|pins| pins.as_flattened()));
    let usage: u8 = match policy.required_usage {
        RequiredUsage::ClientAuth => 1,
        RequiredUsage::ServerAuth => 2,
        RequiredUsage::Any => 3,
    };
    hash.update(&[usage]);
    hash.update(&policy.clock_skew.as_secs().to_be_bytes());
    hash.update(&policy.clock_skew.subsec_nanos().to_be_bytes());
    for cert in chain {
        hash.update(&(cert.len() as u64).to_be_bytes());
        hash.update(cert);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(hash.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::{DeviceCertRequest, IssuedCertificate};
    use crate::pki::testutil::{device_csr, Pki};

    struct Fixture {
        pki: Pki,
        trust: TrustStore,
        stranger: TrustStore,
        issued: IssuedCertificate,
        chain: Vec<Vec<u8>>,
    }

    impl Fixture {
        fn new() -> Self {
            let pki = Pki::new();
            let (_, csr) = device_csr("tablet-7", "t");
            let issued = pki.site.issue(&csr, &DeviceCertRequest::new("tablet-7", "t")).unwrap();
            let chain = vec![issued.der.clone(), pki.site.certificate_der().to_vec()];
            Self { trust: pki.trust(), stranger: Pki::new().trust(), pki, issued, chain }
        }

        fn chain(&self) -> Vec<&[u8]> {
            self.chain.iter().map(Vec::as_slice).collect()
        }

        /// Decides under `policy` and no revocations.
        fn decide(&self, verdicts: &Verdicts, policy: &PeerPolicy, now: SystemTime) -> Result<Verdict, VerifyError> {
            verdicts.decide(&self.chain(), &self.trust, &RevocationSet::new(), policy, now)
        }

        /// Decides under a trust store the chain does not verify under: a kept verdict is the
        /// only way to succeed, so each call shows whether the cache answered.
        fn kept(&self, verdicts: &Verdicts, policy: &PeerPolicy, now: SystemTime) -> Result<Verdict, VerifyError> {
            verdicts.decide(&self.chain(), &self.stranger, &RevocationSet::new(), policy, now)
        }
    }

    #[test]
    fn a_kept_verdict_answers_for_the_same_chain_and_policy() {
        let f = Fixture::new();
        let verdicts = Verdicts::default();
        let (policy, now) = (PeerPolicy::default(), SystemTime::now());
        let verdict = f.decide(&verdicts, &policy, now).unwrap();
        assert_eq!(verdict.0.device_id, "tablet-7");
        let again = f.kept(&verdicts, &policy, now);
        assert_eq!(again.unwrap(), verdict, "the kept verdict answered, not verify_peer_key");
        assert_eq!(verdicts.len(), 1);
    }

    #[test]
    fn no_verdict_is_reused_once_the_revocations_turn_stale() {
        let f = Fixture::new();
        let verdicts = Verdicts::default();
        let policy = PeerPolicy::default();
        let now = SystemTime::now();
        // A CRL applied when issued: due 7 days later, stale a day after that (default grace).
        let crl = f.pki.site.issue_crl(&crate::pki::CrlParams::new(1, now)).unwrap();
        let issuer = f.trust.issuer(&[f.pki.site.certificate_der()], now).unwrap();
        let mut revocations = RevocationSet::new();
        revocations.add_crl(&crate::pki::VerifiedCrl::from_der(&crl.der, &issuer).unwrap(), now).unwrap();
        let chain = f.chain();
        assert!(verdicts.decide(&chain, &f.trust, &revocations, &policy, now).is_ok());
        // Under the stranger trust, only a kept verdict could succeed: it answers while fresh...
        let fresh = now + Duration::from_secs(7 * 86_400);
        assert!(verdicts.decide(&chain, &f.stranger, &revocations, &policy, fresh).is_ok());
        // ...and not once the CRL is past nextUpdate plus grace.
        let stale = now + Duration::from_secs(9 * 86_400);
        assert_eq!(verdicts.decide(&chain, &f.trust, &revocations, &policy, stale), Err(VerifyError::RevocationStale));
        assert_eq!(verdicts.len(), 0);
    }

    #[test]
    fn a_verdict_older_than_the_time_bound_is_decided_again() {
        let f = Fixture::new();
        let verdicts = Verdicts::with_limits(Duration::from_millis(20), VERDICTS_MAX);
        let (policy, now) = (PeerPolicy::default(), SystemTime::now());
        f.decide(&verdicts, &policy, now).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let again = f.kept(&verdicts, &policy, now);
        assert_eq!(again, Err(VerifyError::Chain));
        assert_eq!(verdicts.len(), 0, "the stale verdict was dropped");
    }

    #[test]
    fn a_verdict_is_not_reused_past_the_leafs_expiry_plus_skew() {
        let f = Fixture::new();
        let verdicts = Verdicts::default();
        let (policy, now) = (PeerPolicy::default(), SystemTime::now());
        let (identity, _) = f.decide(&verdicts, &policy, now).unwrap();
        let end = identity.not_after + policy.clock_skew;
        let at_end = f.kept(&verdicts, &policy, end);
        assert_eq!(at_end.unwrap().0, identity, "still within notAfter plus skew");
        let past = end + Duration::from_secs(1);
        assert_eq!(f.decide(&verdicts, &policy, past), Err(VerifyError::Expired));
        assert_eq!(verdicts.len(), 0);
    }

    #[test]
    fn a_verdict_never_answers_for_another_policy() {
        let f = Fixture::new();
        let verdicts = Verdicts::default();
        let now = SystemTime::now();
        f.decide(&verdicts, &PeerPolicy::default(), now).unwrap();
        let pin = f.issued.spki_sha256;
        let others = [
            PeerPolicy { expected_device: Some("other".into()), ..PeerPolicy::default() },
            PeerPolicy { expected_tenant: Some("other".into()), ..PeerPolicy::default() },
            PeerPolicy { pins: Some(vec![[9; 32]]), ..PeerPolicy::default() },
            PeerPolicy { pins: Some(vec![]), ..PeerPolicy::default() },
            PeerPolicy { required_usage: RequiredUsage::ServerAuth, ..PeerPolicy::default() },
            PeerPolicy { clock_skew: Duration::from_secs(1), ..PeerPolicy::default() },
        ];
        for policy in &others {
            let result = f.kept(&verdicts, policy, now);
            assert_eq!(result, Err(VerifyError::Chain), "{policy:?} was decided afresh");
        }
        // Each of those is its own verdict under the real trust; a mismatching one is refused.
        let device = PeerPolicy { expected_device: Some("other".into()), ..PeerPolicy::default() };
        assert_eq!(f.decide(&verdicts, &device, now), Err(VerifyError::DeviceMismatch));
        let pinned = PeerPolicy { pins: Some(vec![pin]), ..PeerPolicy::default() };
        f.decide(&verdicts, &pinned, now).unwrap();
        assert_eq!(verdicts.len(), 2, "failures are not kept");
    }

    #[test]
    fn a_revocation_voids_a_kept_verdict() {
        let f = Fixture::new();
        let verdicts = Verdicts::default();
        let (policy, now) = (PeerPolicy::default(), SystemTime::now());
        f.decide(&verdicts, &policy, now).unwrap();
        let revoked = f.pki.revoking(&f.issued);
        assert_eq!(verdicts.decide(&f.chain(), &f.trust, &revoked, &policy, now), Err(VerifyError::Revoked));
        assert_eq!(verdicts.len(), 0);
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_verdicts() {
        let f = Fixture::new();
        let verdicts = Verdicts::with_limits(VERDICT_TTL, 2);
        let now = SystemTime::now();
        let policies: Vec<PeerPolicy> = (1..=3)
            .map(|minutes| PeerPolicy { clock_skew: Duration::from_secs(60 * minutes), ..PeerPolicy::default() })
            .collect();
        for (i, policy) in policies.iter().enumerate() {
            f.decide(&verdicts, policy, now).unwrap();
            assert!(verdicts.len() <= 2, "after {} decisions", i + 1);
        }
        // The third decision found the cache full of fresh verdicts and started over.
        assert_eq!(verdicts.len(), 1);
        let first = f.kept(&verdicts, &policies[0], now);
        assert_eq!(first, Err(VerifyError::Chain), "the evicted verdict is decided afresh");
    }
}
