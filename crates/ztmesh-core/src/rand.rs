//! Randomness from the operating system's CSPRNG.

use ring::rand::{SecureRandom, SystemRandom};

/// Fills `out` with random bytes from the operating system.
///
/// Failing to read the OS CSPRNG is not something a caller can recover from sensibly, and
/// continuing with predictable bytes would be far worse, so this returns an error that every
/// caller propagates (fail closed).
pub fn fill(out: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(out).map_err(|_| RandomError)
}

/// Returns `N` random bytes from the operating system.
pub fn array<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError;

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operating system's random number generator failed")
    }
}

impl std::error::Error for RandomError {}

impl crate::ErrorCode for RandomError {
    fn code(&self) -> &'static str {
        "ERR_RANDOM"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let a: [u8; 32] = array().unwrap();
        let b: [u8; 32] = array().unwrap();
        assert_ne!(a, b);
    }
}
