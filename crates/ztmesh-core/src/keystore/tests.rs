use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::format::HEADER_LEN;
use super::*;
use crate::ErrorCode;

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const TINY: KdfParams = KdfParams::for_testing_only();
const ALL_KINDS: [KeyKind; 4] = [KeyKind::Ed25519, KeyKind::EcdsaP256, KeyKind::X25519, KeyKind::Secret];

/// An empty keystore at `<dir>/keys.zks`.
fn new_store(dir: &TempDir) -> (PathBuf, Keystore) {
    let path = dir.path().join("keys.zks");
    let store = Keystore::create(&path, PASSPHRASE, TINY).unwrap();
    (path, store)
}

/// A keystore holding one generated key of every kind; returns its path and file bytes.
fn populated(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let (path, mut store) = new_store(dir);
    for kind in ALL_KINDS {
        store.generate(kind.name(), kind).unwrap();
    }
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

/// Writes `bytes` over the keystore file, opens it, and checks the file was not touched.
fn open_bytes(path: &Path, bytes: &[u8], passphrase: &[u8]) -> Result<Keystore, KeystoreError> {
    fs::write(path, bytes).unwrap();
    let result = Keystore::open(path, passphrase);
    assert_eq!(fs::read(path).unwrap(), bytes, "a failed or successful open must not modify the file");
    result
}

fn with_checksum(bytes: &[u8]) -> Vec<u8> {
    fix_checksum_for_fuzzing(bytes)
}

/// Every file in `dir`.
fn dir_listing(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn round_trip_every_kind() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    let mut generated = Vec::new();
    for kind in ALL_KINDS {
        let info = store.generate(&format!("gen-{}", kind.name()), kind).unwrap();
        assert_eq!(info.kind, kind);
        assert_eq!(info.public_key.len(), format::public_key_len(kind));
        assert!(info.created_at > 1_600_000_000);
        generated.push(info);
    }
    // Import each generated key under a second name: same public key.
    for info in generated.clone() {
        let private_key = store.export_private_key(&info.name).unwrap();
        let imported = store.import(&format!("imp-{}", info.kind.name()), info.kind, &private_key).unwrap();
        assert_eq!(imported.public_key, info.public_key);
    }
    let before = store.entries();
    assert_eq!(before.len(), 8);
    let exports: Vec<_> = before.iter().map(|e| store.export_private_key(&e.name).unwrap()).collect();

    let reopened = Keystore::open(&path, PASSPHRASE).unwrap();
    assert_eq!(reopened.path(), path);
    assert_eq!(reopened.entries(), before);
    for (entry, export) in before.iter().zip(&exports) {
        assert_eq!(reopened.export_private_key(&entry.name).unwrap(), *export);
        match entry.kind {
            KeyKind::Secret => {
                assert_eq!(export.len(), 32);
                assert_eq!(reopened.public_key(&entry.name), Err(KeystoreError::WrongKind(KeyKind::Secret)));
            }
            _ => assert_eq!(reopened.public_key(&entry.name).unwrap(), entry.public_key),
        }
    }
    // An X25519 export is the raw key: it reproduces the public key.
    let x = reopened.export_private_key("gen-x25519").unwrap();
    assert_eq!(x25519::PrivateKey::from_bytes(&x).unwrap().public_key().as_slice(), generated[2].public_key);
}

#[test]
fn imported_secret_of_any_valid_length_round_trips() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.import("one", KeyKind::Secret, &[7]).unwrap();
    store.import("max", KeyKind::Secret, &[9u8; 4096]).unwrap();
    let reopened = Keystore::open(&path, PASSPHRASE).unwrap();
    assert_eq!(reopened.export_private_key("one").unwrap().as_slice(), [7]);
    assert_eq!(reopened.export_private_key("max").unwrap().as_slice(), [9u8; 4096]);
}

#[test]
fn stored_keys_sign_verifiably() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.generate("ed", KeyKind::Ed25519).unwrap();
    store.generate("ec", KeyKind::EcdsaP256).unwrap();
    store.generate("x", KeyKind::X25519).unwrap();
    store.generate("s", KeyKind::Secret).unwrap();
    let store = Keystore::open(&path, PASSPHRASE).unwrap();
    for (name, algorithm) in [("ed", sign::Algorithm::Ed25519), ("ec", sign::Algorithm::EcdsaP256Sha256)] {
        let signature = store.sign(name, b"message").unwrap();
        let public_key = store.public_key(name).unwrap();
        sign::verify(algorithm, &public_key, b"message", &signature).unwrap();
        assert!(sign::verify(algorithm, &public_key, b"massage", &signature).is_err());
    }
    for name in ["x", "s"] {
        let err = store.sign(name, b"message").unwrap_err();
        assert!(matches!(err, KeystoreError::WrongKind(_)));
        assert_eq!(err.code(), "ERR_KEYSTORE_KIND");
    }
    assert_eq!(store.sign("missing", b"m").unwrap_err().code(), "ERR_KEYSTORE_NOT_FOUND");
}

#[test]
fn an_ecdsa_entry_becomes_a_cert_signer_and_other_kinds_are_refused() {
    use crate::pki::CertSigner;
    let dir = TempDir::new().unwrap();
    let (_, mut store) = new_store(&dir);
    store.generate("ec", KeyKind::EcdsaP256).unwrap();
    store.generate("ed", KeyKind::Ed25519).unwrap();
    let signer = store.cert_signer("ec").unwrap();
    assert_eq!(signer.public_key(), store.public_key("ec").unwrap().as_slice());
    let signature = signer.sign(b"message").unwrap();
    sign::verify(sign::Algorithm::EcdsaP256Sha256, signer.public_key(), b"message", &signature).unwrap();
    assert_eq!(store.cert_signer("ed").unwrap_err().code(), "ERR_KEYSTORE_KIND");
    assert_eq!(store.cert_signer("missing").unwrap_err().code(), "ERR_KEYSTORE_NOT_FOUND");
}

#[test]
fn wrong_passphrase_is_passphrase_error_and_leaves_the_file() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    for wrong in [&b"correct horse battery stapl"[..], b"", b"Correct horse battery staple"] {
        let err = open_bytes(&path, &bytes, wrong).unwrap_err();
        assert_eq!(err, KeystoreError::Passphrase);
        assert_eq!(err.code(), "ERR_KEYSTORE_PASSPHRASE");
    }
    Keystore::open(&path, PASSPHRASE).unwrap();
}

#[test]
fn every_truncation_is_corrupt_never_passphrase() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    for len in 0..bytes.len() {
        let err = open_bytes(&path, &bytes[..len], PASSPHRASE).unwrap_err();
        assert_eq!(err, KeystoreError::Corrupt, "truncated to {len}");
        assert_eq!(err.code(), "ERR_KEYSTORE_CORRUPT");
        // A wrong passphrase must not turn damage into a passphrase error either.
        assert_eq!(open_bytes(&path, &bytes[..len], b"wrong").unwrap_err(), KeystoreError::Corrupt);
    }
    assert_eq!(open_bytes(&path, &bytes, PASSPHRASE).unwrap().entries().len(), 4);
}

#[test]
fn every_flipped_byte_is_corrupt_or_version() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[i] ^= mask;
            let err = open_bytes(&path, &damaged, PASSPHRASE).unwrap_err();
            let expected = if (8..10).contains(&i) {
                KeystoreError::UnsupportedVersion(u16::from_be_bytes([damaged[8], damaged[9]]))
            } else {
                KeystoreError::Corrupt
            };
            assert_eq!(err, expected, "byte {i} ^ {mask:#x}");
        }
    }
}

#[test]
fn tampering_with_a_recomputed_checksum_never_succeeds() {
    // An attacker can fix the unkeyed checksum; the AEAD tags must still catch every change.
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    let content_len = bytes.len() - 32;
    for i in 0..content_len {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x01;
        let damaged = with_checksum(&damaged);
        let err = open_bytes(&path, &damaged, PASSPHRASE).unwrap_err();
        if i < 8 {
            assert_eq!(err, KeystoreError::Corrupt, "byte {i}");
        } else if i < 10 {
            assert!(matches!(err, KeystoreError::UnsupportedVersion(_)), "byte {i}");
        } else if i < HEADER_LEN {
            // Parameters, salt or key-check record: indistinguishable from a wrong passphrase.
            assert!(matches!(err, KeystoreError::Corrupt | KeystoreError::Passphrase), "byte {i}: {err:?}");
        } else {
            // The key check passed, so the passphrase is right: anything else is corruption.
            assert_eq!(err, KeystoreError::Corrupt, "byte {i}");
        }
    }
}

#[test]
fn entries_are_bound_to_their_metadata() {
    // Swap the sealed keys of two secrets and write a file with a valid file tag: the entry
    // AAD (name, kind, public key, header) must still reject the swap.
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.import("a", KeyKind::Secret, b"first secret").unwrap();
    store.import("b", KeyKind::Secret, b"other secret").unwrap();
    let mut swapped = store.entries.clone();
    let (first, second) = swapped.split_at_mut(1);
    std::mem::swap(&mut first[0].sealed, &mut second[0].sealed);
    std::mem::swap(&mut first[0].nonce, &mut second[0].nonce);
    store.persist(&store.header, &store.key, &swapped).unwrap();
    assert_eq!(Keystore::open(&path, PASSPHRASE).unwrap_err(), KeystoreError::Corrupt);

    // A stored public key that does not match the sealed private key is corrupt too.
    let (path2, mut other) = {
        let dir2 = dir.path().join("second.zks");
        (dir2.clone(), Keystore::create(&dir2, PASSPHRASE, TINY).unwrap())
    };
    other.generate("ed", KeyKind::Ed25519).unwrap();
    let mut mismatched = other.entries.clone();
    let private_key = other.export_private_key("ed").unwrap();
    mismatched[0].info.public_key = vec![0x42; 32];
    mismatched[0] = seal_entry(&other.key, &other.header, mismatched[0].info.clone(), &private_key).unwrap();
    other.persist(&other.header, &other.key, &mismatched).unwrap();
    assert_eq!(Keystore::open(&path2, PASSPHRASE).unwrap_err(), KeystoreError::Corrupt);
}

#[test]
fn unknown_version_is_version_error() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    for version in [0u16, 2, 0xffff] {
        let mut future = bytes.clone();
        future[8..10].copy_from_slice(&version.to_be_bytes());
        let err = open_bytes(&path, &future, PASSPHRASE).unwrap_err();
        assert_eq!(err, KeystoreError::UnsupportedVersion(version));
        assert_eq!(err.code(), "ERR_KEYSTORE_VERSION");
        // Even with a different layout (and checksum) after the version.
        let err = open_bytes(&path, &future[..12], PASSPHRASE).unwrap_err();
        assert_eq!(err, KeystoreError::UnsupportedVersion(version));
    }
}

#[test]
fn random_garbage_gives_typed_errors() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("garbage.zks");
    let allowed = ["ERR_KEYSTORE_CORRUPT", "ERR_KEYSTORE_VERSION", "ERR_KEYSTORE_PASSPHRASE"];
    let mut lengths = [0u8; 200];
    crate::rand::fill(&mut lengths).unwrap();
    for (i, len) in lengths.iter().enumerate() {
        let mut garbage = vec![0u8; usize::from(*len) * 4];
        crate::rand::fill(&mut garbage).unwrap();
        let err = open_bytes(&path, &garbage, PASSPHRASE).unwrap_err();
        assert!(allowed.contains(&err.code()), "{err:?}");
        // Valid magic and version, random rest, valid checksum: reaches the structure parser.
        if garbage.len() >= 10 {
            garbage[..8].copy_from_slice(&format::MAGIC);
            garbage[8..10].copy_from_slice(&format::VERSION.to_be_bytes());
            if i % 2 == 0 && garbage.len() >= 22 {
                // Tiny Argon2 parameters, so the key derivation is reached when the rest parses.
                garbage[10..22].copy_from_slice(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1]);
            }
            let garbage = with_checksum(&garbage);
            let err = open_bytes(&path, &garbage, PASSPHRASE).unwrap_err();
            assert!(allowed.contains(&err.code()), "{err:?}");
            assert!(parse_for_fuzzing(&garbage).is_err() || open_for_fuzzing(&garbage, PASSPHRASE).is_err());
        }
    }
}

#[test]
fn structural_mutations_never_panic_or_succeed() {
    // What the fuzzer does, on stable: insert, delete or overwrite bytes of a valid file (shifting
    // every length field after the edit), fix the checksum, and parse and open in memory.
    let dir = TempDir::new().unwrap();
    let (_, bytes) = populated(&dir);
    let mut random = [0u8; 4 * 600];
    crate::rand::fill(&mut random).unwrap();
    for draw in random.chunks_exact(4) {
        let mut mutated = bytes[..bytes.len() - 32].to_vec();
        let at = usize::from(u16::from_be_bytes([draw[1], draw[2]])) % mutated.len();
        match draw[0] % 4 {
            0 => mutated.insert(at, draw[3]),
            1 => {
                mutated.remove(at);
            }
            2 => {
                let end = (at + 4).min(mutated.len());
                mutated[at..end].copy_from_slice(&[0xff; 4][..end - at]);
            }
            _ => mutated[at] = draw[3],
        }
        mutated.extend_from_slice(&[0; 32]);
        let mutated = with_checksum(&mutated);
        let _ = parse_for_fuzzing(&mutated);
        if let Ok(Some(_)) = open_for_fuzzing(&mutated, PASSPHRASE) {
            assert_eq!(mutated, bytes, "a changed file opened");
        }
    }
}

#[test]
fn huge_argon2_parameters_are_corrupt_without_running_the_kdf() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = new_store_bytes(&dir);
    let crafted = [
        (u32::MAX, u32::MAX, u32::MAX),
        (4 * 1024 * 1024 + 1, 1, 1),
        (u32::MAX, 1, 1),
        (65536, 65, 1),
        (65536, u32::MAX, 1),
        (65536, 3, 17),
        (65536, 0, 1),
        (65536, 3, 0),
        (0, 1, 1),
        (7, 1, 1),
        (15, 1, 2),
    ];
    for (memory, iterations, parallelism) in crafted {
        let mut evil = bytes.clone();
        evil[10..14].copy_from_slice(&memory.to_be_bytes());
        evil[14..18].copy_from_slice(&iterations.to_be_bytes());
        evil[18..22].copy_from_slice(&parallelism.to_be_bytes());
        let evil = with_checksum(&evil);
        let start = Instant::now();
        let err = open_bytes(&path, &evil, PASSPHRASE).unwrap_err();
        assert_eq!(err, KeystoreError::Corrupt, "{memory} {iterations} {parallelism}");
        assert!(start.elapsed() < Duration::from_secs(1));
        let params = KdfParams { memory_kib: memory, iterations, parallelism };
        let other = dir.path().join("other.zks");
        assert_eq!(Keystore::create(&other, PASSPHRASE, params).unwrap_err(), KeystoreError::InvalidParams);
        assert!(!other.exists());
    }
}

fn new_store_bytes(dir: &TempDir) -> (PathBuf, Vec<u8>) {
    let (path, _) = new_store(dir);
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

#[test]
fn crafted_entry_counts_and_lengths_are_corrupt() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = new_store_bytes(&dir);
    // An empty store: header, count 0, trailer, checksum.
    assert_eq!(bytes.len(), HEADER_LEN + 4 + 12 + 16 + 32);
    let mut huge_count = bytes.clone();
    huge_count[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let huge_count = with_checksum(&huge_count);
    assert_eq!(parse_for_fuzzing(&huge_count).unwrap_err(), KeystoreError::Corrupt);
    assert_eq!(open_bytes(&path, &huge_count, PASSPHRASE).unwrap_err(), KeystoreError::Corrupt);
    // Trailing bytes after the last entry.
    let mut trailing = bytes[..bytes.len() - 32].to_vec();
    trailing.insert(HEADER_LEN + 4, 0);
    assert_eq!(
        parse_for_fuzzing(&with_checksum(&[&trailing[..], &[0; 32]].concat())).unwrap_err(),
        KeystoreError::Corrupt
    );
}

#[test]
fn entry_names_are_validated() {
    let dir = TempDir::new().unwrap();
    let (_, mut store) = new_store(&dir);
    let longest = "a".repeat(128);
    for good in ["a", "A-z_0.9", "key.v2", "-", longest.as_str()] {
        store.generate(good, KeyKind::Secret).unwrap();
    }
    let too_long = "a".repeat(129);
    for bad in ["", "a b", "a/b", "../x", "é", "a\0", "tab\t", too_long.as_str()] {
        let err = store.generate(bad, KeyKind::Secret).unwrap_err();
        assert_eq!(err, KeystoreError::InvalidName, "{bad:?}");
        assert_eq!(err.code(), "ERR_KEYSTORE_NAME");
        assert_eq!(store.import(bad, KeyKind::Secret, b"s").unwrap_err(), KeystoreError::InvalidName);
        assert_eq!(store.export_private_key(bad).unwrap_err(), KeystoreError::InvalidName);
        assert_eq!(store.remove(bad).unwrap_err(), KeystoreError::InvalidName);
    }
    assert_eq!(store.entries().len(), 5);
}

#[test]
fn duplicate_names_are_refused() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.generate("k", KeyKind::Ed25519).unwrap();
    let before = fs::read(&path).unwrap();
    let err = store.generate("k", KeyKind::Secret).unwrap_err();
    assert_eq!(err, KeystoreError::EntryExists("k".into()));
    assert_eq!(err.code(), "ERR_KEYSTORE_ENTRY_EXISTS");
    assert_eq!(store.import("k", KeyKind::Secret, b"x").unwrap_err().code(), "ERR_KEYSTORE_ENTRY_EXISTS");
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(store.entries().len(), 1);
}

#[test]
fn invalid_imports_are_private_key_errors() {
    let dir = TempDir::new().unwrap();
    let (_, mut store) = new_store(&dir);
    let ed = SigningKey::generate(sign::Algorithm::Ed25519).unwrap().to_pkcs8();
    let cases: [(KeyKind, &[u8]); 8] = [
        (KeyKind::Ed25519, b"junk"),
        (KeyKind::Ed25519, b""),
        (KeyKind::EcdsaP256, &ed),
        (KeyKind::X25519, &[1u8; 31]),
        (KeyKind::X25519, &[1u8; 33]),
        (KeyKind::X25519, b""),
        (KeyKind::Secret, b""),
        (KeyKind::Secret, &[0u8; 4097]),
    ];
    for (kind, key) in cases {
        let err = store.import("k", kind, key).unwrap_err();
        assert_eq!(err, KeystoreError::PrivateKey, "{kind:?} {}", key.len());
        assert_eq!(err.code(), "ERR_PRIVATE_KEY");
    }
    assert!(store.entries().is_empty());
}

#[test]
fn remove_deletes_and_persists() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.generate("keep", KeyKind::Ed25519).unwrap();
    store.generate("drop", KeyKind::X25519).unwrap();
    store.remove("drop").unwrap();
    assert_eq!(store.entries().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["keep"]);
    let reopened = Keystore::open(&path, PASSPHRASE).unwrap();
    assert_eq!(reopened.entries(), store.entries());
    let err = store.remove("drop").unwrap_err();
    assert_eq!(err, KeystoreError::EntryNotFound("drop".into()));
    assert_eq!(err.code(), "ERR_KEYSTORE_NOT_FOUND");
    assert_eq!(reopened.export_private_key("drop").unwrap_err().code(), "ERR_KEYSTORE_NOT_FOUND");
    assert_eq!(reopened.public_key("drop").unwrap_err().code(), "ERR_KEYSTORE_NOT_FOUND");
}

#[test]
fn change_passphrase_reseals_everything() {
    let dir = TempDir::new().unwrap();
    let (path, bytes) = populated(&dir);
    let mut store = Keystore::open(&path, PASSPHRASE).unwrap();
    let exports: Vec<_> = store.entries().iter().map(|e| store.export_private_key(&e.name).unwrap()).collect();
    let params = KdfParams { memory_kib: 16, iterations: 2, parallelism: 2 };
    store.change_passphrase(b"new passphrase", params).unwrap();
    assert_eq!(Keystore::open(&path, PASSPHRASE).unwrap_err(), KeystoreError::Passphrase);
    let reopened = Keystore::open(&path, b"new passphrase").unwrap();
    assert_eq!(reopened.header.params, params);
    assert_eq!(reopened.entries(), store.entries());
    for (entry, export) in reopened.entries().iter().zip(&exports) {
        assert_eq!(reopened.export_private_key(&entry.name).unwrap(), *export);
    }
    // New salt and fresh nonces: no ciphertext survives.
    let new_bytes = fs::read(&path).unwrap();
    assert_ne!(new_bytes[22..38], bytes[22..38]);
    for entry in &reopened.entries {
        assert!(!bytes.windows(entry.sealed.len()).any(|w| w == entry.sealed.as_slice()));
    }
    // The in-memory store keeps working under the new key.
    store.generate("after", KeyKind::Secret).unwrap();
    assert_eq!(Keystore::open(&path, b"new passphrase").unwrap().entries().len(), 5);
    assert_eq!(
        store.change_passphrase(b"x", KdfParams { memory_kib: 8, iterations: 0, parallelism: 1 }).unwrap_err(),
        KeystoreError::InvalidParams
    );
}

#[test]
fn writes_leave_no_temporary_files() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    store.generate("a", KeyKind::Ed25519).unwrap();
    store.import("b", KeyKind::Secret, b"s").unwrap();
    store.remove("a").unwrap();
    store.change_passphrase(b"p2", TINY).unwrap();
    let _ = store.generate("b", KeyKind::Secret);
    assert_eq!(dir_listing(&dir), ["keys.zks"]);
    assert!(path.is_file());
}

#[cfg(unix)]
#[test]
fn file_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    store.generate("a", KeyKind::Secret).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_failed_write_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("keys.zks");
    let mut store = Keystore::create(&path, PASSPHRASE, TINY).unwrap();
    store.generate("a", KeyKind::Ed25519).unwrap();
    let before = store.entries();
    // Take the directory away: every write now fails.
    let moved = dir.path().join("moved");
    fs::rename(&sub, &moved).unwrap();
    let err = store.generate("b", KeyKind::Secret).unwrap_err();
    assert_eq!(err.code(), "ERR_KEYSTORE_IO");
    assert!(err.to_string().contains("sub"), "{err}");
    assert_eq!(store.remove("a").unwrap_err().code(), "ERR_KEYSTORE_IO");
    assert_eq!(store.change_passphrase(b"p2", TINY).unwrap_err().code(), "ERR_KEYSTORE_IO");
    assert_eq!(store.entries(), before);
    // Put it back: the store still works under the old passphrase and still has "a".
    fs::rename(&moved, &sub).unwrap();
    store.generate("b", KeyKind::Secret).unwrap();
    let reopened = Keystore::open(&path, PASSPHRASE).unwrap();
    assert_eq!(reopened.entries().len(), 2);
    assert!(reopened.sign("a", b"m").is_ok());
}

#[test]
fn create_and_open_report_existing_and_missing_files() {
    let dir = TempDir::new().unwrap();
    let (path, _) = new_store(&dir);
    let before = fs::read(&path).unwrap();
    let err = Keystore::create(&path, b"other", TINY).unwrap_err();
    assert_eq!(err, KeystoreError::Exists(path.clone()));
    assert_eq!(err.code(), "ERR_KEYSTORE_EXISTS");
    assert_eq!(fs::read(&path).unwrap(), before);
    let missing = dir.path().join("missing.zks");
    let err = Keystore::open(&missing, PASSPHRASE).unwrap_err();
    assert_eq!(err, KeystoreError::FileNotFound(missing.clone()));
    assert_eq!(err.code(), "ERR_KEYSTORE_NOT_FOUND");
    assert!(!missing.exists());
    assert_eq!(Keystore::open(dir.path(), PASSPHRASE).unwrap_err().code(), "ERR_KEYSTORE_IO");
    let nowhere = dir.path().join("no-such-dir").join("k.zks");
    assert_eq!(Keystore::create(&nowhere, PASSPHRASE, TINY).unwrap_err().code(), "ERR_KEYSTORE_IO");
}

#[test]
fn default_params_round_trip() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("default.zks");
    let params = KdfParams::default();
    assert_eq!(params, KdfParams { memory_kib: 65536, iterations: 3, parallelism: 1 });
    let mut store = Keystore::create(&path, PASSPHRASE, params).unwrap();
    store.generate("ed", KeyKind::Ed25519).unwrap();
    let reopened = Keystore::open(&path, PASSPHRASE).unwrap();
    assert_eq!(reopened.header.params, params);
    assert_eq!(reopened.entries(), store.entries());
}

#[test]
fn kind_names_round_trip() {
    for kind in ALL_KINDS {
        assert_eq!(KeyKind::from_name(kind.name()).unwrap(), kind);
    }
    let err = KeyKind::from_name("rsa").unwrap_err();
    assert_eq!(err, KeystoreError::UnknownKind);
    assert_eq!(err.code(), "ERR_KEYSTORE_KIND");
    assert_eq!(KeyKind::from_name("ecdsa-p256-sha256").unwrap_err(), KeystoreError::UnknownKind);
}

#[test]
fn no_secrets_in_debug_or_messages() {
    let dir = TempDir::new().unwrap();
    let (path, mut store) = new_store(&dir);
    let secret = b"SUPERSECRETVALUE";
    store.import("s", KeyKind::Secret, secret).unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("SUPERSECRET") && !debug.contains("horse"), "{debug}");
    assert!(!debug.contains(&format!("{:?}", &secret[..4])));
    let errors = [
        KeystoreError::Passphrase,
        KeystoreError::Corrupt,
        KeystoreError::UnsupportedVersion(9),
        KeystoreError::Exists(path.clone()),
        KeystoreError::FileNotFound(path.clone()),
        KeystoreError::EntryNotFound("n".into()),
        KeystoreError::EntryExists("n".into()),
        KeystoreError::InvalidName,
        KeystoreError::UnknownKind,
        KeystoreError::WrongKind(KeyKind::Secret),
        KeystoreError::InvalidParams,
        KeystoreError::PrivateKey,
        KeystoreError::Io { path: path.clone(), kind: io::ErrorKind::PermissionDenied },
        KeystoreError::Random,
        KeystoreError::Internal,
    ];
    for err in errors {
        assert!(err.code().starts_with("ERR_"));
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn fuzzing_entry_points_accept_valid_files() {
    let dir = TempDir::new().unwrap();
    let (_, bytes) = populated(&dir);
    assert_eq!(parse_for_fuzzing(&bytes).unwrap(), 4);
    assert_eq!(open_for_fuzzing(&bytes, PASSPHRASE).unwrap(), Some(4));
    assert_eq!(open_for_fuzzing(&bytes, b"wrong").unwrap_err(), KeystoreError::Passphrase);
    assert_eq!(fix_checksum_for_fuzzing(&bytes), bytes);
    assert_eq!(fix_checksum_for_fuzzing(b"short"), b"short");
}
