//! N-API binding of `ztmesh-core`: type conversion only, no logic of its own.
//!
//! Every export is a thin wrapper over one core function. CPU-heavy calls (Argon2, batch
//! verification) also have an `AsyncTask` twin that runs on the libuv thread pool.
#![deny(clippy::all)]
// `#[napi]` registers exports only outside `cfg(test)`, so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod aead;
mod attest;
mod error;
mod kem;
mod keystore;
mod mux;
mod noise;
mod pki;
mod sign;
mod tls;
mod tpm;
mod x25519;

#[napi_derive::module_init]
fn init() {
    error::install_panic_hook();
}

/// A test hook: panics inside the binding, to prove a panic becomes `ERR_INTERNAL`.
#[napi_derive::napi(js_name = "panicForTestingOnly")]
pub fn panic_for_testing_only() -> error::Result<()> {
    error::sync(|| -> std::result::Result<(), error::Failure> { panic!("deliberate panic for testing") })
}
