//! Ed25519 verification rules (cofactored ZIP-215, weak keys rejected): single and batch
//! verification must agree on every input.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ring::digest;
use ztmesh_core::sign::{self, Algorithm, BatchItem, SigningKey};
use ztmesh_core::testing::Rng;

/// An owned (public key, message, signature) triple.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Triple {
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Triple {
    fn item(&self) -> BatchItem<'_> {
        BatchItem {
            algorithm: Algorithm::Ed25519,
            public_key: &self.public_key,
            message: &self.message,
            signature: &self.signature,
        }
    }

    fn verify(&self) -> bool {
        sign::verify(Algorithm::Ed25519, &self.public_key, &self.message, &self.signature).is_ok()
    }

    /// ring's cofactorless verifier, the one ztmesh used before.
    fn ring_verify(&self) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.public_key)
            .verify(&self.message, &self.signature)
            .is_ok()
    }
}

fn batch(triples: &[Triple]) -> Vec<bool> {
    let items: Vec<BatchItem<'_>> = triples.iter().map(Triple::item).collect();
    sign::verify_batch(&items)
}

/// `sign::verify` on each triple (on two threads: unoptimized test builds are slow).
fn singles(triples: &[Triple]) -> Vec<bool> {
    let (first, second) = triples.split_at(triples.len() / 2);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| first.iter().map(Triple::verify).collect::<Vec<bool>>());
        let second: Vec<bool> = second.iter().map(Triple::verify).collect();
        [first.join().unwrap(), second].concat()
    })
}

fn signed(key: &SigningKey, message: &[u8]) -> Triple {
    Triple { public_key: key.public_key().to_vec(), message: message.to_vec(), signature: key.sign(message).unwrap() }
}

/// 64 messages of 64..128 bytes, as in the benchmark.
fn messages() -> Vec<Vec<u8>> {
    (0..64u8).map(|i| (0..64 + usize::from(i)).map(|j| i ^ j as u8).collect()).collect()
}

fn random_scalar() -> Scalar {
    Scalar::from_bytes_mod_order_wide(&ztmesh_core::rand::array::<64>().unwrap())
}

fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut hash = digest::Context::new(&digest::SHA512);
    hash.update(r);
    hash.update(a);
    hash.update(message);
    Scalar::from_bytes_mod_order_wide(&hash.finish().as_ref().try_into().unwrap())
}

/// Signs with explicit secret scalar `a`, nonce `r`, and small-order offsets added to the
/// public key and to R (the "Taming the many EdDSAs" constructions).
fn crafted(a: Scalar, r: Scalar, key_torsion: EdwardsPoint, r_torsion: EdwardsPoint, message: &[u8]) -> Triple {
    let public_key = (EdwardsPoint::mul_base(&a) + key_torsion).compress().to_bytes();
    let r_bytes = (EdwardsPoint::mul_base(&r) + r_torsion).compress().to_bytes();
    let s = r + challenge(&r_bytes, &public_key, message) * a;
    let mut signature = r_bytes.to_vec();
    signature.extend_from_slice(s.as_bytes());
    Triple { public_key: public_key.to_vec(), message: message.to_vec(), signature }
}

/// A point of order exactly 8.
fn order_8_point() -> EdwardsPoint {
    let t = EIGHT_TORSION[1];
    assert!(t.mul_by_cofactor().is_identity() && !(t + t + t + t).is_identity());
    t
}

const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Replaces S by S + L (which still fits in 256 bits because S < L < 2^253).
fn add_l_to_s(signature: &mut [u8]) {
    let mut carry = 0u16;
    for (s, l) in signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
}

#[test]
fn rfc8032_vectors_verify_single_and_in_batch() {
    // RFC 8032 §7.1, TEST 1, TEST 2 and TEST 3: (secret seed, public key, message, signature).
    const VECTORS: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    let mut triples = Vec::new();
    for (seed, public_key, message, signature) in VECTORS {
        let (seed, public_key) = (hex::decode(seed).unwrap(), hex::decode(public_key).unwrap());
        let (message, signature) = (hex::decode(message).unwrap(), hex::decode(signature).unwrap());
        // The vectors are what ring's signer (which ztmesh signs with) produces.
        let ring_key = ring::signature::Ed25519KeyPair::from_seed_and_public_key(&seed, &public_key).unwrap();
        assert_eq!(ring_key.sign(&message).as_ref(), signature.as_slice());
        let triple = Triple { public_key, message, signature };
        assert!(triple.verify());
        triples.push(triple);
    }
    assert_eq!(batch(&triples), [true; 3]);
    // Many copies, so the batch is split over threads and checked by batch equations.
    let many: Vec<Triple> = triples.iter().cycle().take(64).cloned().collect();
    assert_eq!(batch(&many), vec![true; 64]);
    // A wrong message for one of them.
    let mut wrong = many.clone();
    wrong[40].message.push(0);
    let expected: Vec<bool> = (0..64).map(|i| i != 40).collect();
    assert_eq!(batch(&wrong), expected);
    assert!(!wrong[40].verify());
}

#[test]
fn batches_of_valid_signatures_from_one_key_and_from_many_keys() {
    let one = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let messages = messages();
    let one_key: Vec<Triple> = messages.iter().map(|m| signed(&one, m)).collect();
    let many_keys: Vec<Triple> =
        messages.iter().map(|m| signed(&SigningKey::generate(Algorithm::Ed25519).unwrap(), m)).collect();
    for triples in [&one_key, &many_keys] {
        assert_eq!(batch(triples), vec![true; 64]);
        assert_eq!(singles(triples), vec![true; 64]);
        // Large enough for the Pippenger multiscalar multiplication (≥ 190 terms per thread).
        let large: Vec<Triple> = triples.iter().cycle().take(512).cloned().collect();
        assert_eq!(batch(&large), vec![true; 512]);
        // Sizes around the thresholds: single checks, one thread, two threads.
        for n in [0, 1, 2, 3, 7, 8, 9, 16, 17, 63] {
            assert_eq!(batch(&triples[..n]), vec![true; n], "first {n}");
        }
    }
}

#[test]
fn one_corrupted_item_fails_alone() {
    let one = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let messages = messages();
    let one_key: Vec<Triple> = messages.iter().map(|m| signed(&one, m)).collect();
    let many_keys: Vec<Triple> =
        messages.iter().map(|m| signed(&SigningKey::generate(Algorithm::Ed25519).unwrap(), m)).collect();
    let other_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let corruptions: [fn(&mut Triple, &SigningKey); 6] = [
        |t, _| t.signature[5] ^= 0x10,                 // R
        |t, _| t.signature[40] ^= 0x01,                // S
        |t, _| t.message[0] ^= 0x80,                   // message
        |t, _| t.message.push(0),                      // message length
        |t, k| t.public_key = k.public_key().to_vec(), // another valid key
        |t, _| t.public_key[3] ^= 0x04,                // a flipped key bit
    ];
    for triples in [&one_key, &many_keys] {
        for (c, corrupt) in corruptions.iter().enumerate() {
            // The middle, and for one kind also the ends (first and last item of a thread's part).
            let positions: &[usize] = if c == 0 { &[0, 31, 32, 63] } else { &[31] };
            for &position in positions {
                let mut corrupted = triples.clone();
                corrupt(&mut corrupted[position], &other_key);
                let expected: Vec<bool> = (0..64).map(|i| i != position).collect();
                assert_eq!(batch(&corrupted), expected, "corruption {c} at {position}");
                assert!(!corrupted[position].verify(), "corruption {c} at {position}");
            }
        }
    }
}

#[test]
fn duplicates_empty_and_malformed_items() {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let good = signed(&key, b"duplicate");
    assert_eq!(batch(&vec![good.clone(); 64]), vec![true; 64]);
    let mut bad = good.clone();
    bad.signature[0] ^= 1;
    assert_eq!(batch(&vec![bad.clone(); 64]), vec![false; 64]);
    let alternating: Vec<Triple> = (0..64).map(|i| if i % 2 == 0 { good.clone() } else { bad.clone() }).collect();
    let expected: Vec<bool> = (0..64).map(|i| i % 2 == 0).collect();
    assert_eq!(batch(&alternating), expected);
    assert!(sign::verify_batch(&[]).is_empty());

    // Wrong lengths and non-points get `false`, never a panic.
    let mut malformed = vec![good.clone(); 16];
    malformed[1].public_key.pop();
    malformed[2].public_key.push(0);
    malformed[3].public_key.clear();
    malformed[4].signature.pop();
    malformed[5].signature.push(0);
    malformed[6].signature.clear();
    // y = 2 is not the y-coordinate of a curve point.
    let not_a_point = [[2u8].as_slice(), &[0u8; 31]].concat();
    assert!(CompressedEdwardsY(not_a_point.as_slice().try_into().unwrap()).decompress().is_none());
    malformed[7].public_key = not_a_point.clone();
    malformed[8].signature[..32].copy_from_slice(&not_a_point);
    malformed[9].signature[32..].copy_from_slice(&[0xff; 32]);
    let expected: Vec<bool> = (0..16).map(|i| !(1..=9).contains(&i)).collect();
    assert_eq!(batch(&malformed), expected);
    assert_eq!(singles(&malformed), expected);
}

#[test]
fn non_canonical_s_is_rejected_single_and_batch() {
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let messages = messages();
    let mut triples: Vec<Triple> = messages.iter().map(|m| signed(&key, m)).collect();
    for i in [0, 17, 50] {
        add_l_to_s(&mut triples[i].signature);
        // S + L satisfies the same group equation; only the encoding check rejects it.
        let s_plus_l: [u8; 32] = triples[i].signature[32..].try_into().unwrap();
        assert_eq!(
            Scalar::from_bytes_mod_order(s_plus_l),
            Scalar::from_bytes_mod_order(signed(&key, &messages[i]).signature[32..].try_into().unwrap())
        );
    }
    let expected: Vec<bool> = (0..64).map(|i| ![0, 17, 50].contains(&i)).collect();
    assert_eq!(batch(&triples), expected);
    assert_eq!(singles(&triples), expected);
}

/// All encodings, canonical or not, that decode to a point of small order.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut candidates: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().to_bytes()).collect();
    // y + p for the 19 field elements y where that still fits in 255 bits.
    for y in 0..19u8 {
        let mut bytes = [0xff; 32];
        bytes[0] = 0xed + y;
        bytes[31] = 0x7f;
        candidates.push(bytes);
    }
    // The same with the sign bit flipped (for x = 0 this is the non-canonical "-0").
    let flipped: Vec<[u8; 32]> = candidates
        .iter()
        .map(|c| {
            let mut f = *c;
            f[31] ^= 0x80;
            f
        })
        .collect();
    candidates.extend(flipped);
    candidates.sort_unstable();
    candidates.dedup();
    candidates.into_iter().filter(|c| CompressedEdwardsY(*c).decompress().is_some_and(|p| p.is_small_order())).collect()
}

#[test]
fn small_order_public_keys_are_rejected_single_and_batch() {
    let encodings = small_order_encodings();
    // 8 canonical, plus non-canonical ones (the identity as y = p + 1, "-0" sign bits, ...).
    assert!(encodings.len() > 8, "{}", encodings.len());
    let mut identity_key = [0u8; 32];
    identity_key[0] = 1;
    assert!(encodings.contains(&identity_key));

    let valid_key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let mut triples = Vec::new();
    for a in &encodings {
        for r in &encodings {
            // R small-order, S = 0: [8]([0]B - R - [k]A) is the identity for every message, so a
            // cofactored verifier without the weak-key check would accept this forgery.
            let message = [b"weak key ".as_slice(), &a[..4], &r[..4]].concat();
            let signature = [r.as_slice(), &[0u8; 32]].concat();
            let a_point = CompressedEdwardsY(*a).decompress().unwrap();
            let r_point = CompressedEdwardsY(*r).decompress().unwrap();
            let k = challenge(r, a, &message);
            assert!((-r_point - k * a_point).mul_by_cofactor().is_identity());
            triples.push(Triple { public_key: a.to_vec(), message, signature });
        }
    }
    // Mix in valid items so batch equations are formed around the weak keys.
    let mut mixed = Vec::new();
    for (i, triple) in triples.iter().enumerate() {
        mixed.push(triple.clone());
        if i % 6 == 0 {
            mixed.push(signed(&valid_key, &i.to_le_bytes()));
        }
    }
    let expected: Vec<bool> = mixed.iter().map(|t| t.public_key == valid_key.public_key()).collect();
    assert_eq!(singles(&mixed), expected);
    assert_eq!(batch(&mixed), expected);
    for chunk in mixed.chunks(64) {
        assert_eq!(batch(chunk), singles(chunk));
    }
}

#[test]
fn torsion_crafted_signatures_get_the_same_verdict_single_and_batch() {
    let t8 = order_8_point();
    let identity = EdwardsPoint::mul_base(&Scalar::ZERO);
    let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let messages = messages();
    let mut valid: Vec<Triple> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let (a, r) = (random_scalar(), random_scalar());
        valid.push(match i % 3 {
            // R = rB + T8: the cofactorless equation fails, the cofactored one holds.
            0 => {
                let triple = crafted(a, r, identity, t8, message);
                // ring (cofactorless) rejects it: the case where verifiers can disagree.
                assert!(!triple.ring_verify());
                triple
            }
            // A = aB + T8 (mixed order, not small order) and R = rB + [3]T8.
            1 => crafted(a, r, t8, t8 + t8 + t8, message),
            // An ordinary signature.
            _ => signed(&key, message),
        });
    }
    assert_eq!(singles(&valid), vec![true; 64]);
    assert_eq!(batch(&valid), vec![true; 64]);
    // Large enough for the Pippenger multiscalar multiplication (≥ 190 terms per thread).
    let large: Vec<Triple> = valid.iter().cycle().take(400).cloned().collect();
    assert_eq!(batch(&large), vec![true; 400]);
    // Fresh random coefficients on every call: the verdict never flips (two threads, each with
    // a batch equation over two items of each kind).
    for _ in 0..200 {
        assert_eq!(batch(&valid[..12]), vec![true; 12]);
    }

    // Torsion in R but a wrong S is invalid under every rule set, also next to valid items.
    let mut mixed = valid.clone();
    for i in (0..64).step_by(9) {
        let (a, r) = (random_scalar(), random_scalar());
        let mut triple = crafted(a, r, identity, t8, &messages[i]);
        let s = Scalar::from_bytes_mod_order(triple.signature[32..].try_into().unwrap()) + Scalar::ONE;
        triple.signature[32..].copy_from_slice(s.as_bytes());
        mixed[i] = triple;
    }
    let expected: Vec<bool> = (0..64).map(|i| i % 9 != 0).collect();
    assert_eq!(singles(&mixed), expected);
    assert_eq!(batch(&mixed), expected);
    for _ in 0..5 {
        assert_eq!(batch(&mixed[..12]), expected[..12]);
    }
}

#[test]
fn random_mutations_get_the_same_verdict_single_and_batch() {
    let t8 = order_8_point();
    let identity = EdwardsPoint::mul_base(&Scalar::ZERO);
    let keys: Vec<SigningKey> = (0..4).map(|_| SigningKey::generate(Algorithm::Ed25519).unwrap()).collect();
    let messages = messages();
    let mut originals: Vec<Triple> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        originals.push(signed(&keys[i % keys.len()], message));
        originals.push(crafted(random_scalar(), random_scalar(), identity, t8, message));
        originals.push(crafted(random_scalar(), random_scalar(), t8, identity, message));
    }
    // A small-order "forgery" and a malleated S among the originals too.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    originals.push(Triple { public_key: forged[..32].to_vec(), message: b"m".to_vec(), signature: forged.to_vec() });
    let mut malleated = signed(&keys[0], b"malleated");
    add_l_to_s(&mut malleated.signature);
    originals.push(malleated);

    let mut prng = Rng::new(0x005e_ed0f_2a7e_11e5);
    let mut mutated = Vec::with_capacity(2125);
    for i in 0..2000 {
        // Every 16th an unmutated original too, so batches mix valid and invalid items.
        if i % 16 == 0 {
            mutated.push(originals[prng.below(originals.len())].clone());
        }
        let mut t = originals[prng.below(originals.len())].clone();
        for _ in 0..1 + prng.below(3) {
            let field = match prng.below(3) {
                0 => &mut t.public_key,
                1 => &mut t.message,
                _ => &mut t.signature,
            };
            if field.is_empty() {
                field.push(0);
            }
            let at = prng.below(field.len());
            field[at] ^= 1 << prng.below(8);
        }
        mutated.push(t);
    }
    let single = singles(&mutated);
    assert!(single.iter().filter(|v| **v).count() > 100 && single.iter().filter(|v| !**v).count() > 1000);
    // Batches of 64 (the usual size) and of small sizes.
    let mut sizes = [2, 7, 64].into_iter().cycle();
    let mut start = 0;
    while let Some(chunk) = mutated.get(start..(start + sizes.next().unwrap()).min(mutated.len())) {
        if chunk.is_empty() {
            break;
        }
        assert_eq!(batch(chunk), single[start..start + chunk.len()], "items {start}..{}", start + chunk.len());
        start += chunk.len();
    }
}

#[test]
fn mixed_algorithm_batches_keep_order() {
    let ed = SigningKey::generate(Algorithm::Ed25519).unwrap();
    let ec = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
    let messages = messages();
    let mut items = Vec::new();
    let mut expected = Vec::new();
    let signatures: Vec<(Vec<u8>, Vec<u8>)> =
        messages.iter().map(|m| (ed.sign(m).unwrap(), ec.sign(m).unwrap())).collect();
    for (i, (message, (ed_sig, ec_sig))) in messages.iter().zip(&signatures).enumerate() {
        let (algorithm, public_key, signature) = match i % 3 {
            0 => (Algorithm::EcdsaP256Sha256, ec.public_key(), ec_sig.as_slice()),
            // An Ed25519 signature labelled ECDSA, and the reverse: both fail.
            1 if i % 7 == 0 => (Algorithm::EcdsaP256Sha256, ed.public_key(), ed_sig.as_slice()),
            2 if i % 7 == 0 => (Algorithm::Ed25519, ec.public_key(), ec_sig.as_slice()),
            _ => (Algorithm::Ed25519, ed.public_key(), ed_sig.as_slice()),
        };
        expected.push(i % 7 != 0 || i % 3 == 0);
        items.push(BatchItem { algorithm, public_key, message, signature });
    }
    assert_eq!(sign::verify_batch(&items), expected);
    let single: Vec<bool> =
        items.iter().map(|it| sign::verify(it.algorithm, it.public_key, it.message, it.signature).is_ok()).collect();
    assert_eq!(single, expected);
}

#[test]
fn batch_equation_is_sound_for_basepoint_multiples() {
    // Sanity check of the helpers: a crafted signature without torsion is an ordinary one.
    let a = random_scalar();
    let triple = crafted(
        a,
        random_scalar(),
        EdwardsPoint::mul_base(&Scalar::ZERO),
        EdwardsPoint::mul_base(&Scalar::ZERO),
        b"plain",
    );
    assert!(triple.ring_verify());
    assert!(triple.verify());
    assert_eq!(
        ED25519_BASEPOINT_POINT.compress().to_bytes(),
        EdwardsPoint::mul_base(&Scalar::ONE).compress().to_bytes()
    );
}
