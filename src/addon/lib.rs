//! N-API binding of `ztmesh-core`: type conversion only, no logic of its own.
//!
//! Every export is a thin wrapper over one core function. CPU-heavy calls (Argon2, batch
//! verification) also have an `AsyncTask` twin that runs on the libuv thread pool.
#![deny(clippy::all)]
// `#[napi]` registers exports only outside `cfg(test)`, so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod aead;
mod atomic_file;
mod attest;
mod enroll;
mod error;
mod kem;
mod keystore;
mod link;
mod mux;
mod noise;
mod pki;
mod sign;
mod signal;
mod signer;
mod tls;
mod token;
mod tpm;
mod wire;
mod x25519;

#[napi_derive::module_init]
fn init() {
    error::install_panic_hook();
}
