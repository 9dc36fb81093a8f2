//! The one place where core errors become JavaScript errors.
//!
//! Every error that crosses N-API carries a stable `code` (`ERR_…`). Panics are caught at the
//! boundary and become `ERR_INTERNAL`; the process keeps running.

use std::panic::{self, AssertUnwindSafe};

use napi::bindgen_prelude::{Env, JsObjectValue, JsValue, Object};
use ztmesh_core::ErrorCode;

/// The error type of every exported function: `error.code` is the core's stable code.
pub type Result<T> = std::result::Result<T, napi::Error<String>>;

/// A core failure that can travel between threads (for async tasks).
pub struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// Converts into the error thrown by a synchronous call.
    pub fn into_napi(self) -> napi::Error<String> {
        napi::Error::new(self.code.to_string(), self.message)
    }

    /// Builds the JS error object that rejects an async task's promise (a `Task` can only
    /// reject with `napi::Error<Status>`, so the coded object is created here and reused).
    pub fn into_rejection(self, env: &Env) -> napi::Error {
        let build = || -> napi::Result<napi::Error> {
            let mut object: Object = env.create_error(napi::Error::from_reason(self.message.clone()))?;
            object.set_named_property("code", self.code)?;
            Ok(napi::Error::from(object.to_unknown()))
        };
        build().unwrap_or_else(|e| e)
    }
}

impl<E: ErrorCode> From<E> for Failure {
    fn from(error: E) -> Self {
        Self { code: error.code(), message: error.to_string() }
    }
}

/// Runs a core call, converting its error and any panic into a coded `Failure`.
pub fn guard<T>(call: impl FnOnce() -> std::result::Result<T, Failure>) -> std::result::Result<T, Failure> {
    panic::catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| Err(Failure::new("ERR_INTERNAL", "internal error")))
}

/// `guard` for synchronous exports.
pub fn sync<T>(call: impl FnOnce() -> std::result::Result<T, Failure>) -> Result<T> {
    guard(call).map_err(Failure::into_napi)
}

/// Reports a panic as a bug on stderr without payload details (they may hold input data).
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("ztmesh: internal error at {location}; this is a bug, please report it (ERR_INTERNAL)");
    }));
}

/// The error for an argument the binding itself rejects.
pub fn invalid_argument(message: &str) -> Failure {
    Failure::new("ERR_INVALID_ARG", message)
}

/// A byte count as the `u32` JavaScript receives.
pub fn byte_length(len: usize) -> std::result::Result<u32, Failure> {
    u32::try_from(len).map_err(|_| invalid_argument("message too large"))
}
