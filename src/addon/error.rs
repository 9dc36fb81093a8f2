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

/// One entry of the core's error catalog.
#[napi_derive::napi(object)]
pub struct ErrorCatalogEntry {
    /// The stable `ERR_…` code.
    pub code: String,
    /// Its area (`argument`, `pki`…), which names its class in `src/errors.ts`.
    pub area: String,
    /// When it happens.
    pub meaning: String,
}

/// Every error code of ztmesh, from the core's catalog (`src/errors.ts` is checked against it).
#[napi_derive::napi]
pub fn error_catalog() -> Vec<ErrorCatalogEntry> {
    ztmesh_core::ERROR_CATALOG
        .iter()
        .map(|info| ErrorCatalogEntry {
            code: info.code.into(),
            area: info.area.name().into(),
            meaning: info.meaning.into(),
        })
        .collect()
}

/// The error for an argument the binding itself rejects.
pub fn invalid_argument(message: &str) -> Failure {
    Failure::new("ERR_INVALID_ARG", message)
}

/// A byte count as the `u32` JavaScript receives.
pub fn byte_length(len: usize) -> std::result::Result<u32, Failure> {
    u32::try_from(len).map_err(|_| invalid_argument("message too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Refused;

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refused")
        }
    }

    impl std::error::Error for Refused {}

    impl ErrorCode for Refused {
        fn code(&self) -> &'static str {
            "ERR_SIGNATURE"
        }
    }

    #[test]
    fn a_panic_in_a_synchronous_export_becomes_err_internal_without_its_message() {
        let error = sync(|| -> std::result::Result<(), Failure> { panic!("secret input 1234") }).unwrap_err();
        assert_eq!(error.status, "ERR_INTERNAL");
        assert_eq!(error.reason, "internal error");
        // The thread that panicked keeps working.
        assert_eq!(sync(|| Ok(7)).unwrap(), 7);
    }

    #[test]
    fn a_panic_in_an_async_task_becomes_an_err_internal_failure() {
        let failure = guard(|| -> std::result::Result<(), Failure> { panic!("in a task") }).err().unwrap();
        assert_eq!((failure.code, failure.message.as_str()), ("ERR_INTERNAL", "internal error"));
    }

    #[test]
    fn a_core_error_crosses_with_its_code_and_message() {
        let error = sync(|| -> std::result::Result<(), Failure> { Err(Refused.into()) }).unwrap_err();
        assert_eq!((error.status.as_str(), error.reason.as_str()), ("ERR_SIGNATURE", "refused"));
    }
}
