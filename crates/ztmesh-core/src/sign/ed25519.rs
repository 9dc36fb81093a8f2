//! Ed25519 verification under the cofactored ZIP-215 rules, one signature at a time or as a
//! randomized batch. See the parent module's documentation for the rule set and why.
//!
//! Both paths decode a signature the same way ([`Parsed::new`]) and accept exactly when
//! `[8]([S]B − R − [k]A)` is the identity. The batch path checks a random linear combination of
//! those equations and falls back to the single check, item by item, when the combination fails,
//! so each item always gets its own verdict.

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ring::digest;

use super::BatchItem;

/// Below this many signatures a batch equation costs more than checking each signature alone.
const MIN_BATCH: usize = 2;

/// A public key that passed the checks: it decodes to a curve point that is not of small order.
#[derive(Clone, Copy)]
struct Key {
    /// The encoding exactly as given; it is what the challenge hash covers.
    bytes: [u8; 32],
    point: EdwardsPoint,
}

impl Key {
    fn new(public_key: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = public_key.try_into().ok()?;
        // Non-canonical encodings (y ≥ p, or x = 0 with the sign bit set) decode as ZIP-215 says.
        let point = CompressedEdwardsY(bytes).decompress()?;
        // A small-order key is a weak key: [8]A is the identity, so the cofactored equation would
        // accept R = identity, S = 0 on any message.
        if point.is_small_order() {
            return None;
        }
        Some(Self { bytes, point })
    }
}

/// A signature decoded against its key and message.
struct Parsed {
    r: EdwardsPoint,
    s: Scalar,
    /// The challenge `k = SHA-512(R ‖ A ‖ M) mod L`, over the encodings as given.
    k: Scalar,
}

impl Parsed {
    fn new(key: &Key, message: &[u8], signature: &[u8]) -> Option<Self> {
        if signature.len() != 64 {
            return None;
        }
        let (r_bytes, s_bytes) = signature.split_first_chunk::<32>()?;
        let s_bytes: [u8; 32] = s_bytes.try_into().ok()?;
        // S ≥ L is rejected: S and S + L satisfy the same equation (malleability).
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
        let r = CompressedEdwardsY(*r_bytes).decompress()?;
        let mut hash = digest::Context::new(&digest::SHA512);
        hash.update(r_bytes);
        hash.update(&key.bytes);
        hash.update(message);
        let wide: [u8; 64] = hash.finish().as_ref().try_into().ok()?;
        Some(Self { r, s, k: Scalar::from_bytes_mod_order_wide(&wide) })
    }

    /// The cofactored verification equation `[8]([S]B − [k]A − R) = identity`.
    fn holds(&self, key: &Key) -> bool {
        let minus_a = -key.point;
        (EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &minus_a, &self.s) - self.r)
            .mul_by_cofactor()
            .is_identity()
    }
}

/// Verifies one signature.
pub(super) fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = Key::new(public_key) else { return false };
    Parsed::new(&key, message, signature).is_some_and(|sig| sig.holds(&key))
}

/// Verifies Ed25519 items (the algorithm field is not looked at) and returns one verdict per
/// item, in order. Same verdicts as [`verify`] on each item.
pub(super) fn verify_batch(items: &[BatchItem<'_>]) -> Vec<bool> {
    let mut verdicts = vec![false; items.len()];
    // Decode every distinct key encoding once; `None` remembers a rejected key.
    let mut keys: HashMap<[u8; 32], Option<Key>> = HashMap::new();
    // The items that decode, with their position in `items`.
    let mut parsed: Vec<(usize, Key, Parsed)> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Ok(bytes) = <[u8; 32]>::try_from(item.public_key) else { continue };
        let key = *keys.entry(bytes).or_insert_with(|| Key::new(&bytes));
        if let Some(key) = key {
            if let Some(sig) = Parsed::new(&key, item.message, item.signature) {
                parsed.push((index, key, sig));
            }
        }
    }

    let all_hold = parsed.len() >= MIN_BATCH && batch_equation_holds(&parsed);
    for (index, key, sig) in &parsed {
        if let Some(verdict) = verdicts.get_mut(*index) {
            *verdict = all_hold || sig.holds(key);
        }
    }
    verdicts
}

/// Checks `[8](−(Σ zᵢSᵢ)B + Σ zᵢRᵢ + Σ (zᵢkᵢ)Aᵢ) = identity` for independent random 128-bit `zᵢ`,
/// with the terms of identical key encodings merged into one.
///
/// If every item satisfies its own cofactored equation this holds. If one does not, its defect
/// `[8]([S]B − R − [k]A)` is a non-identity point of prime order L, and the sum is the identity
/// with probability at most 2⁻¹²⁸ over the `zᵢ`. So a `true` here means each item would pass
/// [`Parsed::holds`], up to that bound; `false` (also when randomness is unavailable) sends the
/// caller to the single check.
fn batch_equation_holds(parsed: &[(usize, Key, Parsed)]) -> bool {
    let mut weights = vec![[0u8; 16]; parsed.len()];
    if crate::rand::fill(weights.as_flattened_mut()).is_err() {
        return false;
    }
    let terms = 1 + 2 * parsed.len();
    let mut scalars: Vec<Scalar> = Vec::with_capacity(terms);
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(terms);
    // Index into `scalars`/`points` of each distinct key's term.
    let mut key_terms: HashMap<[u8; 32], usize> = HashMap::new();
    let mut b_coefficient = Scalar::ZERO;
    scalars.push(Scalar::ZERO); // the basepoint's, filled in at the end
    points.push(ED25519_BASEPOINT_POINT);
    for ((_, key, sig), weight) in parsed.iter().zip(&weights) {
        let z = Scalar::from(u128::from_le_bytes(*weight));
        b_coefficient -= z * sig.s;
        scalars.push(z);
        points.push(sig.r);
        let zk = z * sig.k;
        let term = *key_terms.entry(key.bytes).or_insert_with(|| {
            scalars.push(Scalar::ZERO);
            points.push(key.point);
            scalars.len() - 1
        });
        match scalars.get_mut(term) {
            Some(coefficient) => *coefficient += zk,
            None => return false,
        }
    }
    match scalars.first_mut() {
        Some(coefficient) => *coefficient = b_coefficient,
        None => return false,
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{Algorithm, SigningKey};

    fn parse_all(items: &[(Vec<u8>, Vec<u8>, Vec<u8>)]) -> Vec<(usize, Key, Parsed)> {
        items
            .iter()
            .enumerate()
            .map(|(i, (public_key, message, signature))| {
                let key = Key::new(public_key).unwrap();
                (i, key, Parsed::new(&key, message, signature).unwrap())
            })
            .collect()
    }

    fn ring_signed(keys: &[SigningKey], count: usize) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        (0..count)
            .map(|i| {
                let key = &keys[i % keys.len()];
                let message = vec![i as u8; 64 + i];
                (key.public_key().to_vec(), message.clone(), key.sign(&message).unwrap())
            })
            .collect()
    }

    /// A signature whose R carries a point of order 8: valid only under the cofactored equation.
    fn torsion_signed(message: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let random = || Scalar::from_bytes_mod_order_wide(&crate::rand::array::<64>().unwrap());
        let (a, r) = (random(), random());
        let t8 = curve25519_dalek::constants::EIGHT_TORSION[1];
        let public_key = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let r_bytes = (EdwardsPoint::mul_base(&r) + t8).compress().to_bytes();
        let key = Key::new(&public_key).unwrap();
        let k = Parsed::new(&key, message, &[r_bytes, [0; 32]].concat()).unwrap().k;
        let s = r + k * a;
        (public_key.to_vec(), message.to_vec(), [r_bytes, s.to_bytes()].concat())
    }

    #[test]
    fn batch_equation_accepts_valid_sets_and_rejects_a_bad_item() {
        let one = [SigningKey::generate(Algorithm::Ed25519).unwrap()];
        let many: Vec<SigningKey> = (0..8).map(|_| SigningKey::generate(Algorithm::Ed25519).unwrap()).collect();
        for keys in [&one[..], &many[..]] {
            let mut items = ring_signed(keys, 16);
            items.push(torsion_signed(b"torsion"));
            // The fast path is taken: no fallback to single checks for valid sets.
            assert!(batch_equation_holds(&parse_all(&items)));
            // The torsion component is what the cofactor removes.
            let (_, key, sig) = parse_all(&items).pop().unwrap();
            assert!(
                !(EdwardsPoint::vartime_double_scalar_mul_basepoint(&sig.k, &-key.point, &sig.s) - sig.r).is_identity()
            );
            assert!(sig.holds(&key));

            items[5].1.push(0);
            assert!(!batch_equation_holds(&parse_all(&items)));
            let refs: Vec<BatchItem<'_>> = items
                .iter()
                .map(|(public_key, message, signature)| BatchItem {
                    algorithm: Algorithm::Ed25519,
                    public_key,
                    message,
                    signature,
                })
                .collect();
            let expected: Vec<bool> = (0..items.len()).map(|i| i != 5).collect();
            assert_eq!(verify_batch(&refs), expected);
        }
    }

    #[test]
    fn batches_smaller_than_the_minimum_are_checked_singly() {
        let keys = [SigningKey::generate(Algorithm::Ed25519).unwrap()];
        let items = ring_signed(&keys, MIN_BATCH);
        for n in 0..=MIN_BATCH {
            let refs: Vec<BatchItem<'_>> = items[..n]
                .iter()
                .map(|(public_key, message, signature)| BatchItem {
                    algorithm: Algorithm::Ed25519,
                    public_key,
                    message,
                    signature,
                })
                .collect();
            assert_eq!(verify_batch(&refs), vec![true; n]);
        }
    }
}
