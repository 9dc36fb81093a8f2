//! The error-code contract shared by every area of the core.

/// A stable, machine-readable code for an error, such as `ERR_AEAD_DECRYPT`.
///
/// Codes never change once published: the binding passes them to JavaScript as `error.code`,
/// and callers branch on them. Messages may change; codes may not.
pub trait ErrorCode: std::error::Error {
    /// The stable `ERR_…` code of this error.
    fn code(&self) -> &'static str;
}

/// The family of an error code. The TypeScript layer throws the codes of each area as one
/// error class (`argument` as `InvalidArgumentError`, `pki` as `PkiError`…).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorArea {
    /// Bad arguments: wrong types, lengths, algorithms or buffers (InvalidArgumentError).
    Argument,
    /// A cryptographic check failed; deliberately coarse (CryptoError).
    Crypto,
    /// Noise handshakes and transports (NoiseError).
    Noise,
    /// Secure links: framing, TLS, timeouts, aborts, unreachable peers (ChannelError).
    Channel,
    /// The software keystore (KeystoreError).
    Keystore,
    /// The CA and its HTTP API: requests, credentials, tokens (CaError).
    Ca,
    /// Certificates, chains, CSRs, CRLs and revocation records (PkiError).
    Pki,
    /// The TPM (TpmError).
    Tpm,
    /// Remote attestation: quotes, PCR values, attestation keys (AttestationError).
    Attest,
    /// Configuration files and settings (ConfigError).
    Config,
    /// Signed objects: offers, gossip, bundles, manifests, policy documents (WireError).
    Wire,
    /// The policy decision point (PolicyError).
    Policy,
    /// The message layer: multiplexed streams over one secure link (MuxError).
    Mux,
    /// Persistent state (StorageError).
    Storage,
    /// Bugs and environment failures (InternalError).
    Internal,
}

impl ErrorArea {
    /// The area's name as the TypeScript catalog spells it (`argument`, `pki`…).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Argument => "argument",
            Self::Crypto => "crypto",
            Self::Noise => "noise",
            Self::Channel => "channel",
            Self::Keystore => "keystore",
            Self::Ca => "ca",
            Self::Pki => "pki",
            Self::Tpm => "tpm",
            Self::Attest => "attest",
            Self::Config => "config",
            Self::Wire => "wire",
            Self::Policy => "policy",
            Self::Mux => "mux",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }
}

/// One entry of the error catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The stable code.
    pub code: &'static str,
    /// The family it belongs to.
    pub area: ErrorArea,
    /// When it happens, in one line.
    pub meaning: &'static str,
}

/// Every error code of ztmesh, raised by the core, the binding or the TypeScript layer, once:
/// the single source of truth. The binding exports it (`errorCatalog()`), and a test fails when
/// `src/errors.ts` differs from it in any code, area or meaning.
pub const CATALOG: &[ErrorInfo] = &[
    ErrorInfo {
        code: "ERR_INVALID_ARG",
        area: ErrorArea::Argument,
        meaning: "an argument has the wrong type or shape",
    },
    ErrorInfo { code: "ERR_ALGORITHM", area: ErrorArea::Argument, meaning: "an algorithm name is not supported" },
    ErrorInfo { code: "ERR_KEY_LENGTH", area: ErrorArea::Argument, meaning: "a key has the wrong length" },
    ErrorInfo { code: "ERR_NONCE_LENGTH", area: ErrorArea::Argument, meaning: "an AEAD nonce is not 12 bytes" },
    ErrorInfo {
        code: "ERR_BUFFER_TOO_SMALL",
        area: ErrorArea::Argument,
        meaning: "an output buffer is too small for the result",
    },
    ErrorInfo {
        code: "ERR_BUFFER_OVERLAP",
        area: ErrorArea::Argument,
        meaning: "an output buffer overlaps an input buffer",
    },
    ErrorInfo {
        code: "ERR_MESSAGE_SIZE",
        area: ErrorArea::Argument,
        meaning: "a message is larger than the protocol allows",
    },
    ErrorInfo {
        code: "ERR_BATCH_LAYOUT",
        area: ErrorArea::Argument,
        meaning: "the lengths of a batch do not add up to its input",
    },
    ErrorInfo {
        code: "ERR_PUBLIC_KEY",
        area: ErrorArea::Argument,
        meaning: "a public key is malformed or of small order",
    },
    ErrorInfo { code: "ERR_PRIVATE_KEY", area: ErrorArea::Argument, meaning: "a private key document is malformed" },
    ErrorInfo { code: "ERR_CIPHERTEXT", area: ErrorArea::Argument, meaning: "a KEM ciphertext is malformed" },
    ErrorInfo { code: "ERR_DECRYPT", area: ErrorArea::Crypto, meaning: "an AEAD ciphertext is not authentic" },
    ErrorInfo { code: "ERR_SIGNATURE", area: ErrorArea::Crypto, meaning: "a signature did not verify" },
    ErrorInfo { code: "ERR_NOISE_PROTOCOL", area: ErrorArea::Noise, meaning: "a Noise protocol name is not supported" },
    ErrorInfo {
        code: "ERR_NOISE_CONFIG",
        area: ErrorArea::Noise,
        meaning: "a Noise handshake is missing something its pattern needs",
    },
    ErrorInfo {
        code: "ERR_NOISE_STATE",
        area: ErrorArea::Noise,
        meaning: "a Noise call came out of turn, after the end, or after a failure",
    },
    ErrorInfo { code: "ERR_NOISE_DECRYPT", area: ErrorArea::Noise, meaning: "a Noise message is not authentic" },
    ErrorInfo {
        code: "ERR_NOISE_MESSAGE_SIZE",
        area: ErrorArea::Noise,
        meaning: "a Noise message or payload exceeds 65535 bytes",
    },
    ErrorInfo {
        code: "ERR_NOISE_MALFORMED",
        area: ErrorArea::Noise,
        meaning: "a Noise handshake message is truncated or malformed",
    },
    ErrorInfo {
        code: "ERR_NOISE_HYBRID",
        area: ErrorArea::Noise,
        meaning: "the post-quantum part of a hybrid Noise handshake is invalid",
    },
    ErrorInfo {
        code: "ERR_NOISE_REFUSED",
        area: ErrorArea::Noise,
        meaning: "the peer closed the Noise link instead of confirming it: it refused this device",
    },
    ErrorInfo {
        code: "ERR_NOISE_IDENTITY",
        area: ErrorArea::Noise,
        meaning: "the peer of a Noise link sent no valid identity, or its certificate key did not sign its static key",
    },
    ErrorInfo {
        code: "ERR_FRAME_TOO_LARGE",
        area: ErrorArea::Channel,
        meaning: "a peer sent a frame longer than the link allows",
    },
    ErrorInfo {
        code: "ERR_HANDSHAKE_TIMEOUT",
        area: ErrorArea::Channel,
        meaning: "a handshake did not finish within its time limit",
    },
    ErrorInfo {
        code: "ERR_ABORTED",
        area: ErrorArea::Channel,
        meaning: "the operation was aborted by its AbortSignal",
    },
    ErrorInfo {
        code: "ERR_TLS_CLOSED",
        area: ErrorArea::Channel,
        meaning: "the TLS connection closed, or data was written after close_notify",
    },
    ErrorInfo { code: "ERR_TLS_NO_CERT", area: ErrorArea::Channel, meaning: "the TLS peer sent no certificate" },
    ErrorInfo {
        code: "ERR_TLS_ALPN",
        area: ErrorArea::Channel,
        meaning: "the TLS peer offered or selected no application protocol we accept (ztmesh/1)",
    },
    ErrorInfo {
        code: "ERR_TLS_NO_PQ",
        area: ErrorArea::Channel,
        meaning: "post-quantum key exchange is required and the TLS peer did not offer X25519MLKEM768",
    },
    ErrorInfo {
        code: "ERR_TLS_INCOMPATIBLE",
        area: ErrorArea::Channel,
        meaning: "no TLS version, cipher suite, group or signature scheme in common",
    },
    ErrorInfo {
        code: "ERR_TLS_ALERT",
        area: ErrorArea::Channel,
        meaning: "the TLS peer ended the session with a fatal alert",
    },
    ErrorInfo {
        code: "ERR_TLS_PROTOCOL",
        area: ErrorArea::Channel,
        meaning: "the TLS peer broke the protocol (garbage, truncated or oversized records, bad messages)",
    },
    ErrorInfo {
        code: "ERR_TLS_HANDSHAKE",
        area: ErrorArea::Channel,
        meaning: "the TLS handshake failed (for instance a handshake signature that does not verify)",
    },
    ErrorInfo { code: "ERR_TLS_CONFIG", area: ErrorArea::Channel, meaning: "the TLS settings are unusable" },
    ErrorInfo { code: "ERR_UNREACHABLE", area: ErrorArea::Channel, meaning: "a server did not answer in time" },
    ErrorInfo {
        code: "ERR_INSECURE_TRANSPORT",
        area: ErrorArea::Channel,
        meaning: "a request would travel without server authentication (plain HTTP without --insecure-http)",
    },
    ErrorInfo {
        code: "ERR_TIMEOUT",
        area: ErrorArea::Channel,
        meaning: "a peer did not answer a request within its time limit",
    },
    ErrorInfo {
        code: "ERR_CLOSED",
        area: ErrorArea::Channel,
        meaning: "the link or stream closed, or data was written after it ended",
    },
    ErrorInfo {
        code: "ERR_BAD_RESPONSE",
        area: ErrorArea::Channel,
        meaning: "a server or peer answered with something that is not a valid response",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_SDP",
        area: ErrorArea::Channel,
        meaning: "a WebRTC session description is malformed or unusable (no DTLS fingerprint, no ICE credentials, no data section)",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_DTLS",
        area: ErrorArea::Channel,
        meaning: "the WebRTC DTLS handshake failed: the peer's certificate does not match the fingerprint in its session description, or the handshake broke",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_ICE",
        area: ErrorArea::Channel,
        meaning: "WebRTC connectivity failed: ICE found no working candidate pair, or the path was lost",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_TIMEOUT",
        area: ErrorArea::Channel,
        meaning: "a WebRTC session did not gather its candidates or open its data channel within its time limit",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_CLOSED",
        area: ErrorArea::Channel,
        meaning: "the WebRTC session or data channel closed, or data was sent after it ended",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_STACK",
        area: ErrorArea::Channel,
        meaning: "a WebRTC stack is unknown or not shipped (werift: its DTLS does not authenticate the peer)",
    },
    ErrorInfo {
        code: "ERR_WEBRTC_MESSAGE_SIZE",
        area: ErrorArea::Channel,
        meaning: "a WebRTC data channel message is larger than the session allows",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_PASSPHRASE",
        area: ErrorArea::Keystore,
        meaning: "the keystore passphrase is wrong",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_CORRUPT",
        area: ErrorArea::Keystore,
        meaning: "the keystore file is corrupt or truncated (it is left untouched)",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_VERSION",
        area: ErrorArea::Keystore,
        meaning: "the keystore file has a version this build cannot read",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_EXISTS",
        area: ErrorArea::Keystore,
        meaning: "a keystore file already exists at that path",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_IO",
        area: ErrorArea::Keystore,
        meaning: "the keystore file could not be read or written",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_NOT_FOUND",
        area: ErrorArea::Keystore,
        meaning: "no keystore file, or no entry, by that name",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_ENTRY_EXISTS",
        area: ErrorArea::Keystore,
        meaning: "an entry with that name already exists",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_NAME",
        area: ErrorArea::Keystore,
        meaning: "an entry name is empty, too long or has characters outside [A-Za-z0-9._-]",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_KIND",
        area: ErrorArea::Keystore,
        meaning: "an entry kind is unknown, or the operation does not apply to that kind",
    },
    ErrorInfo {
        code: "ERR_KEYSTORE_PARAMS",
        area: ErrorArea::Keystore,
        meaning: "Argon2id parameters are out of range",
    },
    ErrorInfo {
        code: "ERR_BAD_REQUEST",
        area: ErrorArea::Ca,
        meaning: "an HTTP request is malformed: content type, JSON, or a field",
    },
    ErrorInfo {
        code: "ERR_PAYLOAD_TOO_LARGE",
        area: ErrorArea::Ca,
        meaning: "an HTTP request body is larger than the API allows",
    },
    ErrorInfo {
        code: "ERR_RATE_LIMITED",
        area: ErrorArea::Ca,
        meaning: "too many requests from this source; retry later",
    },
    ErrorInfo {
        code: "ERR_TOO_MANY_CONNECTIONS",
        area: ErrorArea::Ca,
        meaning: "this source, or all sources together, hold as many connections as the server allows; retry later",
    },
    ErrorInfo { code: "ERR_UNAUTHENTICATED", area: ErrorArea::Ca, meaning: "the request carries no valid credential" },
    ErrorInfo {
        code: "ERR_FORBIDDEN",
        area: ErrorArea::Ca,
        meaning: "the credential is valid but policy refuses the request",
    },
    ErrorInfo { code: "ERR_NOT_FOUND", area: ErrorArea::Ca, meaning: "no such resource" },
    ErrorInfo {
        code: "ERR_METHOD_NOT_ALLOWED",
        area: ErrorArea::Ca,
        meaning: "the resource does not support this HTTP method",
    },
    ErrorInfo {
        code: "ERR_TOKEN_INVALID",
        area: ErrorArea::Ca,
        meaning: "an enrollment token is malformed or unknown",
    },
    ErrorInfo { code: "ERR_TOKEN_EXPIRED", area: ErrorArea::Ca, meaning: "an enrollment token has expired" },
    ErrorInfo { code: "ERR_TOKEN_USED", area: ErrorArea::Ca, meaning: "an enrollment token was already used" },
    ErrorInfo {
        code: "ERR_ALREADY_ROTATED",
        area: ErrorArea::Ca,
        meaning: "the certificate was already rotated: each certificate has at most one successor",
    },
    ErrorInfo {
        code: "ERR_TOKEN_PROOF",
        area: ErrorArea::Ca,
        meaning: "a request's proof of its enrollment token does not match what it asks for (another CSR or node id)",
    },
    ErrorInfo {
        code: "ERR_CERT_EXPIRED",
        area: ErrorArea::Pki,
        meaning: "a certificate in the chain has expired (beyond the clock skew)",
    },
    ErrorInfo {
        code: "ERR_CERT_NOT_YET_VALID",
        area: ErrorArea::Pki,
        meaning: "a certificate in the chain is not valid yet (beyond the clock skew)",
    },
    ErrorInfo {
        code: "ERR_CERT_REVOKED",
        area: ErrorArea::Pki,
        meaning: "the certificate, its key or its issuing CA is revoked",
    },
    ErrorInfo {
        code: "ERR_CHAIN",
        area: ErrorArea::Pki,
        meaning: "the chain does not lead to a trust anchor, or a certificate in it is not what its place requires",
    },
    ErrorInfo {
        code: "ERR_TENANT_MISMATCH",
        area: ErrorArea::Pki,
        meaning: "the peer belongs to another tenant than expected",
    },
    ErrorInfo {
        code: "ERR_NAME_CONSTRAINT",
        area: ErrorArea::Pki,
        meaning: "a certificate is outside the name constraints of a CA above it (a tenant its site CA was not issued for)",
    },
    ErrorInfo {
        code: "ERR_DEVICE_MISMATCH",
        area: ErrorArea::Pki,
        meaning: "the peer is another device than expected",
    },
    ErrorInfo {
        code: "ERR_KEY_USAGE",
        area: ErrorArea::Pki,
        meaning: "the certificate may not be used for this purpose (key usage or extended key usage)",
    },
    ErrorInfo { code: "ERR_PIN", area: ErrorArea::Pki, meaning: "the peer's key is not in the pin set" },
    ErrorInfo {
        code: "ERR_TRUST_ANCHOR",
        area: ErrorArea::Pki,
        meaning: "the CA presented no certificate of the root the device pinned (token or --root-fingerprint)",
    },
    ErrorInfo { code: "ERR_CERT_MALFORMED", area: ErrorArea::Pki, meaning: "a certificate is not valid DER or PEM" },
    ErrorInfo { code: "ERR_PEM", area: ErrorArea::Pki, meaning: "a PEM document is malformed or has the wrong label" },
    ErrorInfo {
        code: "ERR_CSR_MALFORMED",
        area: ErrorArea::Pki,
        meaning: "a certificate signing request is not valid DER or PEM",
    },
    ErrorInfo {
        code: "ERR_CSR_SIGNATURE",
        area: ErrorArea::Pki,
        meaning: "a certificate signing request is not signed by its own key",
    },
    ErrorInfo {
        code: "ERR_KEY_TYPE",
        area: ErrorArea::Pki,
        meaning: "a key is not of a supported type (certificates use ECDSA P-256)",
    },
    ErrorInfo {
        code: "ERR_IDENTITY",
        area: ErrorArea::Pki,
        meaning: "a device id, tenant, name or role is empty, too long or has forbidden characters",
    },
    ErrorInfo {
        code: "ERR_VALIDITY",
        area: ErrorArea::Pki,
        meaning: "a validity period is empty, too long, or outlives the issuing CA",
    },
    ErrorInfo {
        code: "ERR_CA_NOT_VALID",
        area: ErrorArea::Pki,
        meaning: "the issuing CA certificate is not valid at the time of issuance",
    },
    ErrorInfo { code: "ERR_NOT_CA", area: ErrorArea::Pki, meaning: "the certificate is not a CA that may sign this" },
    ErrorInfo {
        code: "ERR_KEY_MISMATCH",
        area: ErrorArea::Pki,
        meaning: "a private key does not belong to the certificate it was loaded with",
    },
    ErrorInfo {
        code: "ERR_SIGNER",
        area: ErrorArea::Pki,
        meaning: "the signing key failed to produce a valid signature",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_MALFORMED",
        area: ErrorArea::Pki,
        meaning: "a CRL or revocation record is malformed",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_VERSION",
        area: ErrorArea::Pki,
        meaning: "a revocation record has a version this build cannot read",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_SIGNATURE",
        area: ErrorArea::Pki,
        meaning: "a CRL or revocation record is not signed by its claimed issuer",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_ISSUER",
        area: ErrorArea::Pki,
        meaning: "a CRL or revocation record names an issuer other than the CA given",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_ROLLBACK",
        area: ErrorArea::Pki,
        meaning: "a CRL or revocation record is older than one already applied or saved (rollback)",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_STALE",
        area: ErrorArea::Pki,
        meaning: "revocation data is past its nextUpdate plus the grace period (fail closed)",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_CONFLICT",
        area: ErrorArea::Pki,
        meaning: "a CRL or revocation record reuses a number with different contents",
    },
    ErrorInfo {
        code: "ERR_REVOCATION_ENTRY",
        area: ErrorArea::Pki,
        meaning: "a revocation entry is invalid (serial, time or count)",
    },
    ErrorInfo { code: "ERR_SERIAL", area: ErrorArea::Pki, meaning: "a certificate serial is not 1 to 40 hex digits (optionally 0x), or is zero" },
    ErrorInfo {
        code: "ERR_TPM_UNSUPPORTED",
        area: ErrorArea::Tpm,
        meaning: "this build of ztmesh has no TPM support (libtss2 was not found when it was built)",
    },
    ErrorInfo {
        code: "ERR_TPM_UNAVAILABLE",
        area: ErrorArea::Tpm,
        meaning: "no TPM answers on the configured TCTI, or the connection to it broke",
    },
    ErrorInfo {
        code: "ERR_TPM_TCTI",
        area: ErrorArea::Tpm,
        meaning: "the TCTI configuration is not one tpm2-tss understands",
    },
    ErrorInfo {
        code: "ERR_TPM_BLOB",
        area: ErrorArea::Tpm,
        meaning: "a TPM key or sealed blob is malformed, of another version, or of the wrong kind",
    },
    ErrorInfo {
        code: "ERR_TPM_KEY",
        area: ErrorArea::Tpm,
        meaning: "the TPM refused a key blob: it belongs to another TPM, the TPM was cleared, or the blob was altered",
    },
    ErrorInfo {
        code: "ERR_TPM_POLICY",
        area: ErrorArea::Tpm,
        meaning: "the PCRs a secret is sealed to no longer hold the values it was sealed under",
    },
    ErrorInfo {
        code: "ERR_TPM_ARGUMENT",
        area: ErrorArea::Tpm,
        meaning: "a TPM argument is out of range (PCR index, secret or nonce length)",
    },
    ErrorInfo { code: "ERR_TPM_COMMAND", area: ErrorArea::Tpm, meaning: "the TPM refused a command" },
    ErrorInfo {
        code: "ERR_ATTEST_MALFORMED",
        area: ErrorArea::Attest,
        meaning: "a quote, signature, PCR values file, key or binding is not well formed",
    },
    ErrorInfo {
        code: "ERR_ATTEST_SIGNATURE",
        area: ErrorArea::Attest,
        meaning: "the quote's signature does not verify under the attestation key",
    },
    ErrorInfo {
        code: "ERR_ATTEST_NONCE",
        area: ErrorArea::Attest,
        meaning: "the quote's nonce is not the verifier's, or the nonce is unknown, used or expired",
    },
    ErrorInfo {
        code: "ERR_ATTEST_PCR_VALUES",
        area: ErrorArea::Attest,
        meaning: "the PCR values sent with a quote are not the ones it signed",
    },
    ErrorInfo {
        code: "ERR_ATTEST_PCR_MISMATCH",
        area: ErrorArea::Attest,
        meaning: "the quoted PCRs do not hold the values the verifier's policy expects",
    },
    ErrorInfo {
        code: "ERR_ATTEST_PCR_SELECTION",
        area: ErrorArea::Attest,
        meaning: "the quote does not cover every PCR the verifier asked for",
    },
    ErrorInfo {
        code: "ERR_ATTEST_BINDING",
        area: ErrorArea::Attest,
        meaning: "the attestation key is not bound to the device's certificate key",
    },
    ErrorInfo {
        code: "ERR_ATTEST_KEY_ATTRIBUTES",
        area: ErrorArea::Attest,
        meaning: "a TPM key's public area is not acceptable: an attestation key that is not restricted and fixed to its TPM, a device key that can leave its TPM, or another key than the one presented",
    },
    ErrorInfo {
        code: "ERR_ATTEST_CERTIFY",
        area: ErrorArea::Attest,
        meaning: "the attestation key's certification (TPM2_Certify) is of another key than the device key",
    },
    ErrorInfo {
        code: "ERR_ATTEST_EK_CERTIFICATE",
        area: ErrorArea::Attest,
        meaning: "the endorsement key certificate does not chain to a trusted EK CA, or is not valid now",
    },
    ErrorInfo {
        code: "ERR_ATTEST_CREDENTIAL",
        area: ErrorArea::Attest,
        meaning: "credential activation failed: the secret returned is not the one encrypted to the endorsement key",
    },
    ErrorInfo {
        code: "ERR_ATTEST_REQUIRED",
        area: ErrorArea::Attest,
        meaning: "the CA requires a TPM attestation and the request carries none",
    },
    ErrorInfo {
        code: "ERR_ATTEST_NOT_ENROLLED",
        area: ErrorArea::Attest,
        meaning: "the device has no attestation key on record: it enrolled without a verified TPM attestation",
    },
    ErrorInfo {
        code: "ERR_ATTEST_KEY_CHANGED",
        area: ErrorArea::Attest,
        meaning: "the node quoted with another attestation key than the one recorded at its enrollment",
    },
    ErrorInfo {
        code: "ERR_CONFIG",
        area: ErrorArea::Config,
        meaning: "a configuration value is missing, of the wrong type or out of range (the message names its key)",
    },
    ErrorInfo { code: "ERR_WIRE_MALFORMED", area: ErrorArea::Wire, meaning: "a signed object is truncated, has a field out of range, a non-canonical signature, or bytes after its end" },
    ErrorInfo { code: "ERR_WIRE_VERSION", area: ErrorArea::Wire, meaning: "a signed object has a format version this build cannot read" },
    ErrorInfo { code: "ERR_WIRE_LABEL", area: ErrorArea::Wire, meaning: "a signed object was signed for another purpose (label) than the one expected, or under a label signed objects may not use" },
    ErrorInfo { code: "ERR_SIGNAL_MALFORMED", area: ErrorArea::Wire, meaning: "a signed offer, answer or ICE candidate has a body that is truncated, has a field out of range or an invalid id, or bytes after its end" },
    ErrorInfo { code: "ERR_SIGNAL_SDP", area: ErrorArea::Wire, meaning: "an SDP does not carry exactly one DTLS fingerprint, sha-256, agreed by the session and every media section" },
    ErrorInfo { code: "ERR_SIGNAL_STALE", area: ErrorArea::Wire, meaning: "a signed offer, answer or candidate is older than the replay window" },
    ErrorInfo { code: "ERR_SIGNAL_FUTURE", area: ErrorArea::Wire, meaning: "a signed offer, answer or candidate is dated further in the future than the clock skew allows" },
    ErrorInfo { code: "ERR_SIGNAL_SENDER", area: ErrorArea::Wire, meaning: "a signed offer, answer or candidate names another sender (from) than the device whose certificate signed it" },
    ErrorInfo { code: "ERR_SIGNAL_RECIPIENT", area: ErrorArea::Wire, meaning: "a signed offer, answer or candidate is addressed (to) to another device than this one" },
    ErrorInfo { code: "ERR_SIGNAL_MISMATCH", area: ErrorArea::Wire, meaning: "an answer or candidate names another offer than the one it is checked against, or comes from another device than the one offered to" },
    ErrorInfo { code: "ERR_SIGNAL_LINK", area: ErrorArea::Wire, meaning: "a signed offer came over a link whose authenticated peer is not its signer" },
    ErrorInfo { code: "ERR_REPLAY", area: ErrorArea::Wire, meaning: "a signed message was seen before: its nonce is already in the replay window" },
    ErrorInfo { code: "ERR_REPLAY_FULL", area: ErrorArea::Wire, meaning: "the replay window holds as many live nonces as it may: new messages are refused until old ones leave the window (fail closed)" },
    ErrorInfo { code: "ERR_PRESENCE_EXPIRED", area: ErrorArea::Wire, meaning: "a presence lease is not valid now: it expired (the device is offline) or claims a future issue time" },
    ErrorInfo { code: "ERR_HUB_CHALLENGE", area: ErrorArea::Wire, meaning: "an answer to the hub's challenge signs another challenge than the one issued on this connection (another hub, a replay, a second answer) or one no longer fresh" },
    ErrorInfo { code: "ERR_PRESENCE_MISMATCH", area: ErrorArea::Wire, meaning: "a presence lease names another device or tenant than the certificate that signed it (a forged lease)" },
    ErrorInfo { code: "ERR_POLICY_DENIED", area: ErrorArea::Policy, meaning: "the policy decision point refused the request (the message gives its reason: the rule, or that no rule allowed it)" },
    ErrorInfo { code: "ERR_MUX_MALFORMED", area: ErrorArea::Mux, meaning: "a mux frame has another version, an unknown type, flags set, or a value its type forbids" },
    ErrorInfo { code: "ERR_MUX_FRAME_TOO_LARGE", area: ErrorArea::Mux, meaning: "a mux data frame is longer than 64 KiB" },
    ErrorInfo { code: "ERR_MUX_PROTOCOL_ID", area: ErrorArea::Mux, meaning: "a protocol id is empty, longer than 64 characters, or has characters outside [A-Za-z0-9/._-]" },
    ErrorInfo { code: "ERR_MUX_STREAM_ID", area: ErrorArea::Mux, meaning: "a mux stream id has the wrong parity, was reused, or was never opened" },
    ErrorInfo { code: "ERR_MUX_STATE", area: ErrorArea::Mux, meaning: "a mux frame came out of turn for its stream (data before accept or after close, a second accept)" },
    ErrorInfo { code: "ERR_MUX_WINDOW", area: ErrorArea::Mux, meaning: "the peer sent beyond its credit on a stream, or granted more than the largest window" },
    ErrorInfo { code: "ERR_MUX_TOO_MANY_STREAMS", area: ErrorArea::Mux, meaning: "too many streams: the limit is reached, or the peer kept opening streams past it" },
    ErrorInfo { code: "ERR_MUX_GOAWAY", area: ErrorArea::Mux, meaning: "the peer ended the mux session with an error (go-away)" },
    ErrorInfo { code: "ERR_MUX_UNSUPPORTED_PROTOCOL", area: ErrorArea::Mux, meaning: "the peer has no handler for the protocol id of a stream this side opened" },
    ErrorInfo { code: "ERR_MUX_RESET", area: ErrorArea::Mux, meaning: "the peer reset the stream" },
    ErrorInfo { code: "ERR_MUX_STALLED", area: ErrorArea::Mux, meaning: "the peer stopped reading while this side had frames to send, past the limit: the session ends" },
    ErrorInfo { code: "ERR_MUX_CREDIT_TIMEOUT", area: ErrorArea::Mux, meaning: "a write waited longer than the limit for credit the peer never returned: the stream is reset" },
    ErrorInfo {
        code: "ERR_STORAGE",
        area: ErrorArea::Storage,
        meaning: "the database could not be opened, migrated or written",
    },
    ErrorInfo {
        code: "ERR_AUDIT_TAMPERED",
        area: ErrorArea::Storage,
        meaning: "the audit log hash chain is broken: a row was changed, removed or reordered",
    },
    ErrorInfo {
        code: "ERR_AUDIT_TRUNCATED",
        area: ErrorArea::Storage,
        meaning: "the audit log lacks records a signed checkpoint covers: rows were deleted after it, or pruned outside retention",
    },
    ErrorInfo {
        code: "ERR_FILE_IO",
        area: ErrorArea::Storage,
        meaning: "a file could not be written atomically (the target is left as it was)",
    },
    ErrorInfo {
        code: "ERR_FILE_EXISTS",
        area: ErrorArea::Storage,
        meaning: "a file that must be created new already exists (it is left as it was)",
    },
    ErrorInfo { code: "ERR_HUB_FRAME", area: ErrorArea::Channel, meaning: "a hub frame is malformed: not JSON, a missing or unknown field, a wrong type, or a bad base64 object" },
    ErrorInfo { code: "ERR_HUB_FRAME_SIZE", area: ErrorArea::Channel, meaning: "a hub frame or the object it carries is larger than the hub allows" },
    ErrorInfo { code: "ERR_HUB_CROSS_TENANT", area: ErrorArea::Channel, meaning: "the hub refused to relay to a device of another tenant" },
    ErrorInfo { code: "ERR_HUB_RATE_LIMITED", area: ErrorArea::Channel, meaning: "this device identity sent more offers or frames than the hub allows per minute" },
    ErrorInfo { code: "ERR_HUB_TOO_MANY_CONNECTIONS", area: ErrorArea::Channel, meaning: "this device identity already holds as many hub connections as allowed" },
    ErrorInfo {
        code: "ERR_TLS_INTERNAL",
        area: ErrorArea::Internal,
        meaning: "a bug in the TLS layer: an internal invariant failed",
    },
    ErrorInfo {
        code: "ERR_TPM_INTERNAL",
        area: ErrorArea::Internal,
        meaning: "the TPM or tpm2-tss returned something that should be impossible",
    },
    ErrorInfo {
        code: "ERR_PKI_INTERNAL",
        area: ErrorArea::Internal,
        meaning: "a bug in the PKI core: an internal invariant failed",
    },
    ErrorInfo {
        code: "ERR_RANDOM",
        area: ErrorArea::Internal,
        meaning: "the operating system's random number generator failed",
    },
    ErrorInfo {
        code: "ERR_INTERNAL",
        area: ErrorArea::Internal,
        meaning: "a bug: an internal invariant failed (a panic in the core is reported so)",
    },
];

/// The catalog entry of `code`, if it is one.
pub fn lookup(code: &str) -> Option<&'static ErrorInfo> {
    CATALOG.iter().find(|info| info.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_spelled_err_upper_case() {
        let mut seen = std::collections::HashSet::new();
        for info in CATALOG {
            assert!(seen.insert(info.code), "{} is listed twice", info.code);
            assert!(info.code.starts_with("ERR_"), "{}", info.code);
            assert!(
                info.code[4..].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                info.code
            );
            assert!(!info.meaning.is_empty(), "{} has a meaning", info.code);
        }
        assert_eq!(lookup("ERR_DECRYPT").map(|info| info.area), Some(ErrorArea::Crypto));
        assert_eq!(lookup("NOPE"), None);
    }

    #[test]
    fn every_code_the_core_or_the_binding_can_raise_is_in_the_catalog() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("../../src/addon")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    files.push(path);
                }
            }
        }
        let mut found = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for literal in text.split("\"ERR_").skip(1) {
                let name: String =
                    literal.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
                if name.is_empty() || !literal[name.len()..].starts_with('"') {
                    continue;
                }
                found += 1;
                assert!(
                    lookup(&format!("ERR_{name}")).is_some(),
                    "ERR_{name} (in {}) is not in CATALOG",
                    file.display()
                );
            }
        }
        assert!(found > 100, "the scan found the codes ({found})");
    }
}
