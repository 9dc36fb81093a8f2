//! The ztmesh security core.
//!
//! Pure Rust, no N-API: a Linux gateway can link this crate on its own. Every area has its own
//! module and its own error type; each error type maps to a stable `ERR_…` code through
//! [`ErrorCode`], which is what the N-API binding and the TypeScript layer expose.
//!
//! | module | what |
//! | --- | --- |
//! | [`sign`] | Ed25519 (ZIP-215 rules, true batch verification) and ECDSA P-256/SHA-256 (ring), batches on all cores |
//! | [`aead`] | ChaCha20-Poly1305 and AES-256-GCM (aws-lc-rs), sealing into caller buffers |
//! | [`x25519`] | X25519 Diffie-Hellman with static or ephemeral keys |
//! | [`kem`] | ML-KEM-768 (FIPS 203) and the X-Wing hybrid KEM (X25519 + ML-KEM-768) |
//! | [`noise`] | Noise handshakes and transports (snow), with a post-quantum hybrid mode |
//! | [`keystore`] | passphrase-encrypted software keystore (Argon2id + AES-256-GCM) |
//! | [`link`] | the Noise link: a certificate-bound Noise XX handshake (hybrid by default), sans-IO |
//! | [`tls`] | mutual TLS 1.3 (rustls), sans-IO sessions, `verify_peer` verifiers, X25519MLKEM768 |
//! | [`attest`] | verifying TPM 2.0 quotes (`TPMS_ATTEST`, tpm2-tools PCR files) and AK bindings |
//! | [`enroll`] | the enrollment, rotation and quote-exchange messages (strict JSON codecs) |
//! | [`ids`] | the one rulebook for device ids, tenants, roles and serial spellings |
//! | [`mux`] | the message layer: typed, multiplexed, flow-controlled streams over one secure link |
//! | [`wire`] | the registry of domain-separation labels; signed objects |
//! | [`signal`] | signed WebRTC offers, answers and ICE candidates, the SDP fingerprint rule, their verifier and replay window |
//! | `tpm` | TPM 2.0 keys, sealing and quotes through tpm2-tss (cargo feature `tpm`) |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aead;
pub mod atomic_file;
pub mod attest;
pub mod enroll;
pub mod ids;
pub mod kem;
pub mod keystore;
pub mod link;
pub mod mux;
pub mod noise;
pub mod pki;
pub mod rand;
pub mod sign;
pub mod signal;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
#[cfg(feature = "tpm")]
pub mod tpm;
pub mod wire;
pub mod x25519;

mod error;

pub use error::{lookup as error_info, ErrorArea, ErrorCode, ErrorInfo, CATALOG as ERROR_CATALOG};
