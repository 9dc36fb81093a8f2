//! Helpers for tests and fuzzing only (the `testing` feature, which the core's own tests turn on
//! through their dev-dependency): never in a release build.

/// A deterministic pseudo-random generator (xorshift64*) for seeded-garbage and mutation tests:
/// the same seed gives the same bytes on every machine, so a failure replays. Not for keys or
/// nonces (use [`crate::rand`]).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`; a zero seed (which xorshift never leaves) is replaced by one.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_be_bytes()[0]
    }

    /// A number in `0..n`; `0` when `n` is zero.
    pub fn below(&mut self, n: usize) -> usize {
        match u64::try_from(n) {
            Ok(0) | Err(_) => 0,
            Ok(n) => usize::try_from(self.next_u64() % n).unwrap_or(0),
        }
    }

    /// `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn a_seed_replays_and_every_draw_stays_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.bytes(64), b.bytes(64));
        assert_ne!(Rng::new(8).bytes(16), Rng::new(7).bytes(16));
        assert_ne!(Rng::new(0).next_u64(), 0, "a zero seed still moves");
        assert!((0..1_000).all(|_| a.below(5) < 5));
        assert_eq!(a.below(0), 0);
        let mut seen = [false; 5];
        (0..1_000).for_each(|_| seen[b.below(5)] = true);
        assert!(seen.iter().all(|s| *s), "every value in range comes up");
    }
}
