//! The error-code contract shared by every area of the core.

/// A stable, machine-readable code for an error, such as `ERR_AEAD_DECRYPT`.
///
/// Codes never change once published: the binding passes them to JavaScript as `error.code`,
/// and callers branch on them. Messages may change; codes may not.
pub trait ErrorCode: std::error::Error {
    /// The stable `ERR_…` code of this error.
    fn code(&self) -> &'static str;
}
