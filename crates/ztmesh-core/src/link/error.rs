//! [`LinkError`]: why a link handshake failed.

use std::fmt;

use crate::noise::NoiseError;
use crate::pki::VerifyError;

/// Why a link handshake failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The initiator proposed a protocol this responder does not accept (another mode or
    /// cipher, or not a link protocol at all).
    Protocol,
    /// A frame announced a length above the limit of its place in the handshake.
    FrameTooLarge,
    /// A Noise message failed (authentication, truncation, an invalid ML-KEM key…).
    Noise(NoiseError),
    /// The peer's identity payload is malformed, or its certificate key did not sign the
    /// static key of this session.
    Identity,
    /// The peer's certificate chain was refused (the PKI's reason).
    Peer(VerifyError),
    /// A message that breaks the link protocol: an unexpected payload, a confirmation without
    /// `READY`, or a stream that ended inside the handshake.
    Malformed,
    /// The responder closed the stream instead of confirming: it refused this side.
    Refused,
    /// This side's signer failed to sign its static-key binding.
    Signer,
    /// This side's configuration cannot run a link: a chain that is empty, longer than three
    /// certificates or too large, or a static key of the wrong length.
    Config,
    /// A call out of order: taking an unfinished handshake apart, or a frame after the end.
    State,
    /// The operating system's random number generator failed.
    Random,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol => f.write_str("the peer proposed a Noise link protocol this side does not accept"),
            Self::FrameTooLarge => f.write_str("the peer sent a handshake frame over the link's limit"),
            Self::Noise(error) => write!(f, "Noise link handshake: {error}"),
            Self::Identity => {
                f.write_str("the peer sent no valid identity, or its certificate key did not sign its static key")
            }
            Self::Peer(error) => write!(f, "the peer's certificate was refused: {error}"),
            Self::Malformed => f.write_str("the peer broke the Noise link protocol or closed inside the handshake"),
            Self::Refused => {
                f.write_str("the peer closed the Noise link instead of confirming it: it refused this device")
            }
            Self::Signer => f.write_str("this device's signer failed to sign the link's static key"),
            Self::Config => f.write_str("this side's link configuration is invalid (chain or static key)"),
            Self::State => f.write_str("link handshake used out of order"),
            Self::Random => f.write_str("the operating system's random number generator failed"),
        }
    }
}

impl std::error::Error for LinkError {}

impl crate::ErrorCode for LinkError {
    fn code(&self) -> &'static str {
        match self {
            Self::Protocol => "ERR_NOISE_PROTOCOL",
            Self::FrameTooLarge => "ERR_FRAME_TOO_LARGE",
            Self::Noise(error) => error.code(),
            Self::Identity => "ERR_NOISE_IDENTITY",
            Self::Peer(error) => error.code(),
            Self::Malformed => "ERR_NOISE_MALFORMED",
            Self::Refused => "ERR_NOISE_REFUSED",
            Self::Signer => "ERR_SIGNER",
            Self::Config => "ERR_NOISE_CONFIG",
            Self::State => "ERR_NOISE_STATE",
            Self::Random => "ERR_RANDOM",
        }
    }
}
