//! The replay window of signed signaling: complete by design.
//!
//! A message is admitted only if its time lies in the window (not older than `window`, not
//! further ahead than `future_skew`) and its nonce is not already remembered. Every nonce
//! admitted is remembered until its message leaves the window by time, after which the time
//! check refuses it anyway: so forgetting it is safe, and nothing inside the window is ever
//! forgotten. The window's "now" never goes back (a clock stepped backwards cannot bring back
//! a message whose nonce was already let go).
//!
//! Memory is bounded: at most `capacity` nonces. When the window is full of live nonces, new
//! messages are refused ([`SignalError::ReplayFull`]): failing closed, never evicting a live
//! nonce (which would reopen the replay it guards against).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use super::SignalError;

/// The default window: messages older than 60 seconds are refused.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// The default clock skew tolerated ahead: 5 seconds.
pub const DEFAULT_FUTURE_SKEW: Duration = Duration::from_secs(5);

/// The default number of live nonces remembered: 65,536 (about 10 MiB at most).
pub const DEFAULT_CAPACITY: usize = 1 << 16;

/// The largest capacity a window may be given.
pub const MAX_CAPACITY: usize = 1 << 22;

/// Remembers every nonce inside its window; see the module documentation.
#[derive(Debug)]
pub struct ReplayWindow {
    window_ms: u64,
    future_skew_ms: u64,
    capacity: usize,
    /// The latest time the window has been asked at, ms: its "now" never goes back.
    high_water_ms: u64,
    seen: HashSet<[u8; 32]>,
    /// The same keys by message time, to let go of those that left the window.
    by_time: BTreeSet<(u64, [u8; 32])>,
}

impl ReplayWindow {
    /// A window of `window` into the past, `future_skew` into the future, remembering at most
    /// `capacity` nonces (1..=[`MAX_CAPACITY`], else [`SignalError::TooLarge`]).
    pub fn new(window: Duration, future_skew: Duration, capacity: usize) -> Result<Self, SignalError> {
        if !(1..=MAX_CAPACITY).contains(&capacity) {
            return Err(SignalError::TooLarge);
        }
        Ok(Self {
            window_ms: u64::try_from(window.as_millis()).map_err(|_| SignalError::TooLarge)?,
            future_skew_ms: u64::try_from(future_skew.as_millis()).map_err(|_| SignalError::TooLarge)?,
            capacity,
            high_water_ms: 0,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
        })
    }

    /// Checks the time of a message, `ts_ms`, at `now_ms` (both ms since the epoch), without
    /// remembering anything: [`SignalError::Stale`] when it is older than the window (measured
    /// from the latest time the window has seen), [`SignalError::Future`] when it is ahead of
    /// `now_ms` by more than the skew.
    pub fn check_time(&self, ts_ms: u64, now_ms: u64) -> Result<(), SignalError> {
        let now = now_ms.max(self.high_water_ms);
        if ts_ms.saturating_add(self.window_ms) < now {
            return Err(SignalError::Stale);
        }
        if ts_ms > now_ms.saturating_add(self.future_skew_ms) {
            return Err(SignalError::Future);
        }
        Ok(())
    }

    /// Admits the message `key` (a nonce, bound to its sender) dated `ts_ms`, at `now_ms`:
    /// [`Self::check_time`], then [`SignalError::Replay`] if `key` is remembered, then
    /// [`SignalError::ReplayFull`] if the window holds `capacity` live nonces. Only an admitted
    /// message is remembered.
    pub fn admit(&mut self, key: [u8; 32], ts_ms: u64, now_ms: u64) -> Result<(), SignalError> {
        self.check_time(ts_ms, now_ms)?;
        self.high_water_ms = self.high_water_ms.max(now_ms);
        if self.seen.contains(&key) {
            return Err(SignalError::Replay);
        }
        self.forget_expired();
        if self.seen.len() >= self.capacity {
            return Err(SignalError::ReplayFull);
        }
        self.seen.insert(key);
        self.by_time.insert((ts_ms, key));
        Ok(())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Lets go of the nonces of messages that [`Self::check_time`] now refuses as stale.
    fn forget_expired(&mut self) {
        while let Some(&(ts, key)) = self.by_time.first() {
            if ts.saturating_add(self.window_ms) >= self.high_water_ms {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&key);
        }
    }
}
