//! The TPM's error type, mapped to stable `ERR_TPM_…` codes, and the translation of tpm2-tss
//! errors into it.
//!
//! Messages never carry secret data: a TPM response code says which rule a command broke, not
//! what it was given.

use std::fmt;

use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};

use crate::ErrorCode;

/// Why a TPM operation failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TpmError {
    /// No TPM answers on the configured TCTI, or the connection to it broke.
    Unavailable,
    /// The TCTI configuration is not one tpm2-tss understands (see
    /// [`Tpm::open`](super::Tpm::open)).
    Tcti,
    /// A key or sealed blob is malformed, of another format version, or of another kind or
    /// template than the operation needs.
    Blob,
    /// The TPM refused to load a blob: it was made by another TPM or under another storage
    /// key, or it was altered.
    KeyRejected,
    /// The PCRs a sealed secret is bound to no longer hold the values they held when it was
    /// sealed.
    Policy,
    /// An argument is out of range: a PCR index above 23 or named twice, no PCR, a secret
    /// empty or over 128 bytes, a nonce over 64 bytes.
    Argument,
    /// The TPM refused a command; the TSS response code is kept for diagnosis.
    Command(u32),
    /// The TPM or tpm2-tss returned something that should be impossible.
    Internal,
}

impl fmt::Display for TpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable => f.write_str("no TPM available"),
            Self::Tcti => f.write_str("invalid TPM TCTI configuration"),
            Self::Blob => f.write_str("malformed or unsuitable TPM key blob"),
            Self::KeyRejected => f.write_str("the TPM refused to load the key blob"),
            Self::Policy => f.write_str("TPM policy not satisfied (PCR values changed)"),
            Self::Argument => f.write_str("invalid argument for a TPM operation"),
            Self::Command(rc) => write!(f, "TPM command failed (response code {rc:#x})"),
            Self::Internal => f.write_str("internal TPM error"),
        }
    }
}

impl std::error::Error for TpmError {}

impl ErrorCode for TpmError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable => "ERR_TPM_UNAVAILABLE",
            Self::Tcti => "ERR_TPM_TCTI",
            Self::Blob => "ERR_TPM_BLOB",
            Self::KeyRejected => "ERR_TPM_KEY",
            Self::Policy => "ERR_TPM_POLICY",
            Self::Argument => "ERR_TPM_ARGUMENT",
            Self::Command(_) => "ERR_TPM_COMMAND",
            Self::Internal => "ERR_TPM_INTERNAL",
        }
    }
}

/// The TSS layer of response codes from the TCTI (the transport to the TPM).
const TCTI_LAYER: u32 = 10;

/// Translates a tss-esapi error: transport failures are [`TpmError::Unavailable`], TPM
/// refusals [`TpmError::Command`], wrapper errors [`TpmError::Internal`].
pub(crate) fn from_tss(error: tss_esapi::Error) -> TpmError {
    match error {
        tss_esapi::Error::WrapperError(_) => TpmError::Internal,
        tss_esapi::Error::Tss2Error(rc) => match raw_code(rc) {
            Some(raw) if (raw >> 16) & 0xff == TCTI_LAYER => TpmError::Unavailable,
            Some(raw) => TpmError::Command(raw),
            None => TpmError::Internal,
        },
    }
}

/// Like [`from_tss`], but a TPM refusal (not a transport failure) becomes `refusal`.
pub(crate) fn refused_as(refusal: TpmError) -> impl Fn(tss_esapi::Error) -> TpmError {
    move |error| match from_tss(error) {
        TpmError::Command(_) => refusal,
        other => other,
    }
}

/// Like [`from_tss`], but a failed policy check (the PCRs changed) becomes [`TpmError::Policy`].
pub(crate) fn policy_checked(error: tss_esapi::Error) -> TpmError {
    if let tss_esapi::Error::Tss2Error(rc) = error {
        if matches!(
            rc.kind(),
            Some(Tss2ResponseCodeKind::PolicyFail | Tss2ResponseCodeKind::PcrChanged | Tss2ResponseCodeKind::Policy)
        ) && raw_code(rc).is_some_and(|raw| raw >> 16 == 0)
        {
            return TpmError::Policy;
        }
    }
    from_tss(error)
}

/// The raw `TSS2_RC` of a response code. tss-esapi 7 exposes it only through `Display`
/// ("Response code value: 0x…"), so it is read back from there.
fn raw_code(rc: Tss2ResponseCode) -> Option<u32> {
    let text = match rc {
        Tss2ResponseCode::Success => return Some(0),
        Tss2ResponseCode::FormatZero(code) => code.to_string(),
        Tss2ResponseCode::FormatOne(code) => code.to_string(),
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_errors_are_classified() {
        let rc = |raw: u32| tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(raw));
        // TSS2_TCTI_RC_IO_ERROR: the swtpm or device went away.
        assert_eq!(from_tss(rc(0x000a_000a)), TpmError::Unavailable);
        // TPM_RC_POLICY_FAIL on session 1, TPM_RC_PCR_CHANGED.
        assert_eq!(policy_checked(rc(0x99d)), TpmError::Policy);
        assert_eq!(policy_checked(rc(0x128)), TpmError::Policy);
        assert_eq!(from_tss(rc(0x99d)), TpmError::Command(0x99d));
        // TPM_RC_INTEGRITY on parameter 1 of a load.
        assert_eq!(refused_as(TpmError::KeyRejected)(rc(0x15f)), TpmError::KeyRejected);
        assert_eq!(refused_as(TpmError::KeyRejected)(rc(0x000a_000a)), TpmError::Unavailable);
        assert_eq!(
            from_tss(tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam)),
            TpmError::Internal
        );
        assert_eq!(TpmError::Command(0x99d).code(), "ERR_TPM_COMMAND");
        assert_eq!(TpmError::Command(0x99d).to_string(), "TPM command failed (response code 0x99d)");
    }
}
