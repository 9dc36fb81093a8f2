//! The peers a link configuration has already decided, so that a device that links again is not
//! charged its chain's signatures again.
//!
//! A [`LinkConfig`](super::LinkConfig) is shared by every link of one side and never changes
//! once shared (its trust, revocations and policy are fixed; new revocations mean a new
//! configuration, with no verdicts). So a verdict reached under it is the verdict
//! [`verify_peer_key`] would reach again, for as long as the leaf is valid: each is kept for at
//! most [`VERDICT_TTL`], and never past the leaf's `notAfter` plus the policy's clock skew (ztmesh
//! CAs cap a device certificate at their own validity, so the leaf expires first; the TTL bounds
//! the rest), as the TLS contexts do. Verdicts are keyed by SHA-256 of the exact chain and keep
//! the leaf's key: the binding signature of each link is still checked against it, every time.
//! Only successes are kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::pki::{verify_peer_key, PeerIdentity, PeerPolicy, RevocationSet, TrustStore, VerifyError};

/// How long a verdict is reused.
const VERDICT_TTL: Duration = Duration::from_secs(5 * 60);
/// The most verdicts kept.
const VERDICTS_MAX: usize = 1024;

/// A verified peer and its leaf's public key.
pub(super) type Verdict = (PeerIdentity, Vec<u8>);

/// The verdicts of one configuration.
#[derive(Default)]
pub(super) struct Verdicts {
    reached: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
}

impl Verdicts {
    /// The peer presenting `chain` (DER, leaf first) and its leaf key: a verdict reached before
    /// that still holds at `now`, or [`verify_peer_key`]'s.
    pub(super) fn decide(
        &self,
        chain: &[&[u8]],
        trust: &TrustStore,
        revocations: &RevocationSet,
        policy: &PeerPolicy,
        now: SystemTime,
    ) -> Result<Verdict, VerifyError> {
        let key = chain_key(chain);
        if let Some(verdict) = self.reached(&key, now, policy.clock_skew) {
            return Ok(verdict);
        }
        let verdict = verify_peer_key(chain, trust, revocations, policy, now)?;
        let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
        if reached.len() >= VERDICTS_MAX {
            reached.retain(|_, (_, at)| at.elapsed() <= VERDICT_TTL);
            if reached.len() >= VERDICTS_MAX {
                reached.clear();
            }
        }
        reached.insert(key, (verdict.clone(), Instant::now()));
        Ok(verdict)
    }

    /// How many verdicts are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.reached.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn reached(&self, key: &[u8; 32], now: SystemTime, skew: Duration) -> Option<Verdict> {
        let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
        let ((identity, _), at) = reached.get(key)?;
        let expired = identity.not_after.checked_add(skew).is_none_or(|end| now > end);
        if expired || at.elapsed() > VERDICT_TTL {
            reached.remove(key);
            return None;
        }
        reached.get(key).map(|(verdict, _)| verdict.clone())
    }
}

/// SHA-256 of the chain, each certificate length-prefixed (so no two chains share a key).
fn chain_key(chain: &[&[u8]]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        context.update(&(cert.len() as u64).to_be_bytes());
        context.update(cert);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}
