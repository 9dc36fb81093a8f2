//! Fuzzes the keystore file parser: it reads untrusted bytes and must never panic.
//!
//! Each input is parsed as is (mostly rejected by the checksum), then with its trailing 32
//! bytes replaced by a valid SHA-256 so that mutations reach the structure parser, and opened
//! in memory with a fixed passphrase (Argon2 only runs when the file asks for tiny parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ztmesh_core::keystore;

fuzz_target!(|data: &[u8]| {
    let _ = keystore::parse_for_fuzzing(data);
    let fixed = keystore::fix_checksum_for_fuzzing(data);
    let _ = keystore::parse_for_fuzzing(&fixed);
    let _ = keystore::open_for_fuzzing(&fixed, b"fuzz");
});
