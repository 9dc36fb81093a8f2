//! The trust a side decides its peers under, swappable while it is shared: the one concept
//! behind a TLS context's verifiers and a Noise link configuration.
//!
//! [`SharedTrust`] holds the current [`TrustSnapshot`] (trust anchors, revocations and the
//! verdicts reached under them, `pki::verdicts`) behind an `RwLock<Arc<…>>`. A decision clones
//! the `Arc` and verifies without holding the lock; an update builds a new snapshot and swaps it
//! in. So every decision reads the state in force *when it is made*: a handshake that started
//! before a revocation and reaches its peer's chain after it is judged under the revocation.
//! A snapshot is never changed in place (apart from its verdicts) and a new one starts with no
//! verdicts, so nothing decided before an update survives it.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use super::verdicts::{Verdict, Verdicts};
use super::{PeerPolicy, RevocationSet, TrustStore, VerifyError};

/// Trust anchors and revocations, replaced whole by [`Self::set_revocations`] and
/// [`Self::set_trust`], read by every decision at the moment it is made.
pub(crate) struct SharedTrust {
    current: RwLock<Arc<TrustSnapshot>>,
}

/// One state of trust: swapped whole, never changed in place (apart from its verdicts).
struct TrustSnapshot {
    trust: TrustStore,
    revocations: RevocationSet,
    verdicts: Verdicts,
}

impl SharedTrust {
    /// Trust in `trust`'s anchors with `revocations` in force.
    pub(crate) fn new(trust: TrustStore, revocations: RevocationSet) -> Self {
        Self { current: RwLock::new(Arc::new(TrustSnapshot::new(trust, revocations))) }
    }

    /// Replaces the revocations; the trust anchors stay. Decisions made from now on see them.
    pub(crate) fn set_revocations(&self, revocations: RevocationSet) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(TrustSnapshot::new(current.trust.clone(), revocations));
    }

    /// Replaces the trust anchors (a CA rollover); the revocations stay.
    pub(crate) fn set_trust(&self, trust: TrustStore) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(TrustSnapshot::new(trust, current.revocations.clone()));
    }

    /// The peer presenting `chain` (DER, leaf first) under `policy` at `now`, and its leaf key,
    /// decided under the current snapshot: a verdict it already reached, or
    /// [`verify_peer_key`](super::verify_peer_key)'s.
    pub(crate) fn decide(&self, chain: &[&[u8]], policy: &PeerPolicy, now: SystemTime) -> Result<Verdict, VerifyError> {
        let snapshot = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        snapshot.verdicts.decide(chain, &snapshot.trust, &snapshot.revocations, policy, now)
    }

    /// The revocations in force now (for a verifier that takes its anchor from elsewhere).
    pub(crate) fn revocations(&self) -> RevocationSet {
        self.current.read().unwrap_or_else(PoisonError::into_inner).revocations.clone()
    }

    /// How many verdicts the current snapshot keeps.
    #[cfg(test)]
    pub(crate) fn verdicts_len(&self) -> usize {
        self.current.read().unwrap_or_else(PoisonError::into_inner).verdicts.len()
    }
}

impl TrustSnapshot {
    fn new(trust: TrustStore, revocations: RevocationSet) -> Self {
        Self { trust, revocations, verdicts: Verdicts::default() }
    }
}

impl std::fmt::Debug for SharedTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTrust").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ca::DeviceCertRequest;
    use crate::pki::testutil::{device_csr, Pki};

    #[test]
    fn a_decision_sees_the_revocations_in_force_when_it_is_made() {
        let pki = Pki::new();
        let (_, csr) = device_csr("tablet-7", "t");
        let issued = pki.site.issue(&csr, &DeviceCertRequest::new("tablet-7", "t")).unwrap();
        let chain = [issued.der.as_slice(), pki.site.certificate_der()];
        let (policy, now) = (PeerPolicy::default(), SystemTime::now());
        let shared = SharedTrust::new(pki.trust(), RevocationSet::new());
        assert_eq!(shared.decide(&chain, &policy, now).unwrap().0.device_id, "tablet-7");
        assert_eq!(shared.verdicts_len(), 1);

        shared.set_revocations(pki.revoking(&issued));
        assert_eq!(shared.verdicts_len(), 0, "a new snapshot starts with no verdicts");
        assert_eq!(shared.decide(&chain, &policy, now), Err(VerifyError::Revoked));

        // A trust update keeps the revocations in force.
        shared.set_trust(pki.trust());
        assert_eq!(shared.decide(&chain, &policy, now), Err(VerifyError::Revoked));
        shared.set_revocations(RevocationSet::new());
        shared.set_trust(Pki::new().trust());
        assert_eq!(shared.decide(&chain, &policy, now), Err(VerifyError::Chain));
    }
}
