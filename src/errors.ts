/**
 * The error model of ztmesh.
 *
 * Every failure, whether it comes from the Rust core or from the TypeScript layer, is a
 * {@link ZtError} (or a named subclass) with a stable `code`. Codes never change once published;
 * messages may. Crypto failures stay coarse on purpose ("decryption failed", never why).
 *
 * @example
 * ```ts
 * try { key.open(nonce, ciphertext) } catch (e) {
 *   if (e instanceof ZtError && e.code === 'ERR_DECRYPT') drop(packet)
 * }
 * ```
 */

/**
 * Every error code, with when it happens, grouped by the error class it is thrown as: the class
 * of a code is declared here, next to the code, not derived from its spelling. A copy of the
 * core's catalog (`CATALOG` in crates/ztmesh-core/src/error.rs, the source of truth, exported as
 * `errorCatalog()`), kept here so that `ErrorCode` is a type; __test__/errors.spec.ts fails on any
 * difference. A new code goes into both.
 */
const CATALOG = {
  /** Bad arguments: wrong types, lengths, algorithms or buffers (InvalidArgumentError). */
  argument: {
    ERR_INVALID_ARG: 'an argument has the wrong type or shape',
    ERR_ALGORITHM: 'an algorithm name is not supported',
    ERR_KEY_LENGTH: 'a key has the wrong length',
    ERR_NONCE_LENGTH: 'an AEAD nonce is not 12 bytes',
    ERR_BUFFER_TOO_SMALL: 'an output buffer is too small for the result',
    ERR_BUFFER_OVERLAP: 'an output buffer overlaps an input buffer',
    ERR_MESSAGE_SIZE: 'a message is larger than the protocol allows',
    ERR_BATCH_LAYOUT: 'the lengths of a batch do not add up to its input',
    ERR_PUBLIC_KEY: 'a public key is malformed or of small order',
    ERR_PRIVATE_KEY: 'a private key document is malformed',
    ERR_CIPHERTEXT: 'a KEM ciphertext is malformed',
  },
  /** A cryptographic check failed; deliberately coarse (CryptoError). */
  crypto: {
    ERR_DECRYPT: 'an AEAD ciphertext is not authentic',
    ERR_SIGNATURE: 'a signature did not verify',
  },
  /** Noise handshakes and transports (NoiseError). */
  noise: {
    ERR_NOISE_PROTOCOL: 'a Noise protocol name is not supported',
    ERR_NOISE_CONFIG: 'a Noise handshake is missing something its pattern needs',
    ERR_NOISE_STATE: 'a Noise call came out of turn, after the end, or after a failure',
    ERR_NOISE_DECRYPT: 'a Noise message is not authentic',
    ERR_NOISE_MESSAGE_SIZE: 'a Noise message or payload exceeds 65535 bytes',
    ERR_NOISE_MALFORMED: 'a Noise handshake message is truncated or malformed',
    ERR_NOISE_HYBRID: 'the post-quantum part of a hybrid Noise handshake is invalid',
    ERR_NOISE_REFUSED: 'the peer closed the Noise link instead of confirming it: it refused this device',
    ERR_NOISE_IDENTITY: 'the peer of a Noise link sent no valid identity, or its certificate key did not sign its static key',
  },
  /** Secure links: framing, TLS, timeouts, aborts, unreachable peers (ChannelError). */
  channel: {
    ERR_FRAME_TOO_LARGE: 'a peer sent a frame longer than the link allows',
    ERR_HANDSHAKE_TIMEOUT: 'a handshake did not finish within its time limit',
    ERR_ABORTED: 'the operation was aborted by its AbortSignal',
    ERR_TLS_CLOSED: 'the TLS connection closed, or data was written after close_notify',
    ERR_TLS_NO_CERT: 'the TLS peer sent no certificate',
    ERR_TLS_ALPN: 'the TLS peer offered or selected no application protocol we accept (ztmesh/1)',
    ERR_TLS_NO_PQ: 'post-quantum key exchange is required and the TLS peer did not offer X25519MLKEM768',
    ERR_TLS_INCOMPATIBLE: 'no TLS version, cipher suite, group or signature scheme in common',
    ERR_TLS_ALERT: 'the TLS peer ended the session with a fatal alert',
    ERR_TLS_PROTOCOL: 'the TLS peer broke the protocol (garbage, truncated or oversized records, bad messages)',
    ERR_TLS_HANDSHAKE: 'the TLS handshake failed (for instance a handshake signature that does not verify)',
    ERR_TLS_CONFIG: 'the TLS settings are unusable',
    ERR_UNREACHABLE: 'a server did not answer in time',
    ERR_TIMEOUT: 'a peer did not answer a request within its time limit',
    ERR_CLOSED: 'the link or stream closed, or data was written after it ended',
    ERR_BAD_RESPONSE: 'a server or peer answered with something that is not a valid response',
  },
  /** The message layer: multiplexed streams over one secure link (MuxError). */
  mux: {
    ERR_MUX_MALFORMED: 'a mux frame has another version, an unknown type, flags set, or a value its type forbids',
    ERR_MUX_FRAME_TOO_LARGE: 'a mux data frame is longer than 64 KiB',
    ERR_MUX_PROTOCOL_ID: 'a protocol id is empty, longer than 64 characters, or has characters outside [A-Za-z0-9/._-]',
    ERR_MUX_STREAM_ID: 'a mux stream id has the wrong parity, was reused, or was never opened',
    ERR_MUX_STATE: 'a mux frame came out of turn for its stream (data before accept or after close, a second accept)',
    ERR_MUX_WINDOW: 'the peer sent beyond its credit on a stream, or granted more than the largest window',
    ERR_MUX_TOO_MANY_STREAMS: 'too many streams: the limit is reached, or the peer kept opening streams past it',
    ERR_MUX_GOAWAY: 'the peer ended the mux session with an error (go-away)',
    ERR_MUX_UNSUPPORTED_PROTOCOL: 'the peer has no handler for the protocol id of a stream this side opened',
    ERR_MUX_RESET: 'the peer reset the stream',
    ERR_MUX_STALLED: 'the peer stopped reading while this side had frames to send, past the limit: the session ends',
  },
  /** The software keystore (KeystoreError). */
  keystore: {
    ERR_KEYSTORE_PASSPHRASE: 'the keystore passphrase is wrong',
    ERR_KEYSTORE_CORRUPT: 'the keystore file is corrupt or truncated (it is left untouched)',
    ERR_KEYSTORE_VERSION: 'the keystore file has a version this build cannot read',
    ERR_KEYSTORE_EXISTS: 'a keystore file already exists at that path',
    ERR_KEYSTORE_IO: 'the keystore file could not be read or written',
    ERR_KEYSTORE_NOT_FOUND: 'no keystore file, or no entry, by that name',
    ERR_KEYSTORE_ENTRY_EXISTS: 'an entry with that name already exists',
    ERR_KEYSTORE_NAME: 'an entry name is empty, too long or has characters outside [A-Za-z0-9._-]',
    ERR_KEYSTORE_KIND: 'an entry kind is unknown, or the operation does not apply to that kind',
    ERR_KEYSTORE_PARAMS: 'Argon2id parameters are out of range',
  },
  /** The CA and its HTTP API: requests, credentials, tokens (CaError). */
  ca: {
    ERR_BAD_REQUEST: 'an HTTP request is malformed: content type, JSON, or a field',
    ERR_PAYLOAD_TOO_LARGE: 'an HTTP request body is larger than the API allows',
    ERR_RATE_LIMITED: 'too many requests from this source; retry later',
    ERR_UNAUTHENTICATED: 'the request carries no valid credential',
    ERR_FORBIDDEN: 'the credential is valid but policy refuses the request',
    ERR_NOT_FOUND: 'no such resource',
    ERR_METHOD_NOT_ALLOWED: 'the resource does not support this HTTP method',
    ERR_TOKEN_INVALID: 'an enrollment token is malformed or unknown',
    ERR_TOKEN_EXPIRED: 'an enrollment token has expired',
    ERR_TOKEN_USED: 'an enrollment token was already used',
  },
  /** Certificates, chains, CSRs, CRLs and revocation records (PkiError). */
  pki: {
    ERR_CERT_EXPIRED: 'a certificate in the chain has expired (beyond the clock skew)',
    ERR_CERT_NOT_YET_VALID: 'a certificate in the chain is not valid yet (beyond the clock skew)',
    ERR_CERT_REVOKED: 'the certificate, its key or its issuing CA is revoked',
    ERR_CHAIN: 'the chain does not lead to a trust anchor, or a certificate in it is not what its place requires',
    ERR_TENANT_MISMATCH: 'the peer belongs to another tenant than expected',
    ERR_DEVICE_MISMATCH: 'the peer is another device than expected',
    ERR_KEY_USAGE: 'the certificate may not be used for this purpose (key usage or extended key usage)',
    ERR_PIN: "the peer's key is not in the pin set",
    ERR_CERT_MALFORMED: 'a certificate is not valid DER or PEM',
    ERR_PEM: 'a PEM document is malformed or has the wrong label',
    ERR_CSR_MALFORMED: 'a certificate signing request is not valid DER or PEM',
    ERR_CSR_SIGNATURE: 'a certificate signing request is not signed by its own key',
    ERR_KEY_TYPE: 'a key is not of a supported type (certificates use ECDSA P-256)',
    ERR_IDENTITY: 'a device id, tenant, name or role is empty, too long or has forbidden characters',
    ERR_SERIAL: 'a certificate serial is not 1 to 40 hex digits (optionally 0x), or is zero',
    ERR_VALIDITY: 'a validity period is empty, too long, or outlives the issuing CA',
    ERR_CA_NOT_VALID: 'the issuing CA certificate is not valid at the time of issuance',
    ERR_NOT_CA: 'the certificate is not a CA that may sign this',
    ERR_KEY_MISMATCH: 'a private key does not belong to the certificate it was loaded with',
    ERR_SIGNER: 'the signing key failed to produce a valid signature',
    ERR_REVOCATION_MALFORMED: 'a CRL or revocation record is malformed',
    ERR_REVOCATION_VERSION: 'a revocation record has a version this build cannot read',
    ERR_REVOCATION_SIGNATURE: 'a CRL or revocation record is not signed by its claimed issuer',
    ERR_REVOCATION_ISSUER: 'a CRL or revocation record names an issuer other than the CA given',
    ERR_REVOCATION_STALE: 'a CRL or revocation record is older than one already applied (rollback)',
    ERR_REVOCATION_CONFLICT: 'a CRL or revocation record reuses a number with different contents',
    ERR_REVOCATION_ENTRY: 'a revocation entry is invalid (serial, time or count)',
  },
  /** The TPM (TpmError). */
  tpm: {
    ERR_TPM_UNSUPPORTED: 'this build of ztmesh has no TPM support (libtss2 was not found when it was built)',
    ERR_TPM_UNAVAILABLE: 'no TPM answers on the configured TCTI, or the connection to it broke',
    ERR_TPM_TCTI: 'the TCTI configuration is not one tpm2-tss understands',
    ERR_TPM_BLOB: 'a TPM key or sealed blob is malformed, of another version, or of the wrong kind',
    ERR_TPM_KEY: "the TPM refused a key blob: it belongs to another TPM, the TPM was cleared, or the blob was altered",
    ERR_TPM_POLICY: 'the PCRs a secret is sealed to no longer hold the values it was sealed under',
    ERR_TPM_ARGUMENT: 'a TPM argument is out of range (PCR index, secret or nonce length)',
    ERR_TPM_COMMAND: 'the TPM refused a command',
  },
  /** Remote attestation: quotes, PCR values, attestation keys (AttestationError). */
  attest: {
    ERR_ATTEST_MALFORMED: 'a quote, signature, PCR values file, key or binding is not well formed',
    ERR_ATTEST_SIGNATURE: "the quote's signature does not verify under the attestation key",
    ERR_ATTEST_NONCE: "the quote's nonce is not the verifier's, or the nonce is unknown, used or expired",
    ERR_ATTEST_PCR_VALUES: 'the PCR values sent with a quote are not the ones it signed',
    ERR_ATTEST_PCR_MISMATCH: "the quoted PCRs do not hold the values the verifier's policy expects",
    ERR_ATTEST_PCR_SELECTION: 'the quote does not cover every PCR the verifier asked for',
    ERR_ATTEST_BINDING: "the attestation key is not bound to the device's certificate key",
    ERR_ATTEST_KEY_ATTRIBUTES: "a TPM key's public area is not acceptable: an attestation key that is not restricted and fixed to its TPM, a device key that can leave its TPM, or another key than the one presented",
    ERR_ATTEST_CERTIFY: "the attestation key's certification (TPM2_Certify) is of another key than the device key",
    ERR_ATTEST_EK_CERTIFICATE: 'the endorsement key certificate does not chain to a trusted EK CA, or is not valid now',
    ERR_ATTEST_CREDENTIAL: 'credential activation failed: the secret returned is not the one encrypted to the endorsement key',
    ERR_ATTEST_REQUIRED: 'the CA requires a TPM attestation and the request carries none',
    ERR_ATTEST_NOT_ENROLLED: 'the device has no attestation key on record: it enrolled without a verified TPM attestation',
    ERR_ATTEST_KEY_CHANGED: 'the node quoted with another attestation key than the one recorded at its enrollment',
  },
  /** Signed objects: offers, gossip, bundles, manifests, policy documents (WireError). */
  wire: {
    ERR_WIRE_MALFORMED: 'a signed object is truncated, has a field out of range, a non-canonical signature, or bytes after its end',
    ERR_WIRE_VERSION: 'a signed object has a format version this build cannot read',
    ERR_WIRE_LABEL: 'a signed object was signed for another purpose (label) than the one expected, or under a label signed objects may not use',
  },
  /** The policy decision point (PolicyError). */
  policy: {
    ERR_POLICY_DENIED: 'the policy decision point refused the request (the message gives its reason: the rule, or that no rule allowed it)',
  },
  /** Configuration files and settings (ConfigError). */
  config: {
    ERR_CONFIG: 'a configuration value is missing, of the wrong type or out of range (the message names its key)',
  },
  /** Persistent state (StorageError). */
  storage: {
    ERR_STORAGE: 'the database could not be opened, migrated or written',
    ERR_AUDIT_TAMPERED: 'the audit log hash chain is broken: a row was changed, removed or reordered',
    ERR_FILE_IO: 'a file could not be written atomically (the target is left as it was)',
    ERR_FILE_EXISTS: 'a file that must be created new already exists (it is left as it was)',
  },
  /** Bugs and environment failures (InternalError). */
  internal: {
    ERR_TLS_INTERNAL: 'a bug in the TLS layer: an internal invariant failed',
    ERR_TPM_INTERNAL: 'the TPM or tpm2-tss returned something that should be impossible',
    ERR_PKI_INTERNAL: 'a bug in the PKI core: an internal invariant failed',
    ERR_RANDOM: "the operating system's random number generator failed",
    ERR_INTERNAL: 'a bug: an internal invariant failed (a panic in the core is reported so)',
  },
} as const

type Area = keyof typeof CATALOG

/** A stable ztmesh error code. */
export type ErrorCode = { [A in Area]: keyof (typeof CATALOG)[A] }[Area]

/** Every error code with its meaning. */
export const ERROR_CODES: Readonly<Record<ErrorCode, string>> = Object.freeze(Object.assign({}, ...Object.values(CATALOG)))

const AREA_OF = new Map<string, Area>(Object.entries(CATALOG).flatMap(([area, codes]) => Object.keys(codes).map((code) => [code, area as Area])))


/** The base class of every ztmesh error. */
export class ZtError extends Error {
  static override name = 'ZtError'
  /** The stable code, one of {@link ERROR_CODES}. */
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string = ERROR_CODES[code], options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.name = (this.constructor as typeof ZtError).name
  }
}

/** Bad arguments: wrong types, lengths, algorithms or buffers. */
export class InvalidArgumentError extends ZtError {
  static override name = 'InvalidArgumentError'
}

/** A cryptographic check failed: not authentic, bad signature. Deliberately coarse. */
export class CryptoError extends ZtError {
  static override name = 'CryptoError'
}

/** A Noise handshake or transport failed. */
export class NoiseError extends ZtError {
  static override name = 'NoiseError'
}

/** The software keystore refused or failed. */
export class KeystoreError extends ZtError {
  static override name = 'KeystoreError'
}

/** The CA refused a request: token, CSR, policy or credential. */
export class CaError extends ZtError {
  static override name = 'CaError'
}

/** A certificate, chain, CSR, CRL or revocation record was refused. */
export class PkiError extends ZtError {
  static override name = 'PkiError'
}

/** A secure channel failed: framing, timeouts, aborts. */
export class ChannelError extends ZtError {
  static override name = 'ChannelError'
}

/** A mux session or stream failed: a protocol violation, a reset, a refused open. */
export class MuxError extends ZtError {
  static override name = 'MuxError'
}

/** The TPM refused or failed, or is not there. */
export class TpmError extends ZtError {
  static override name = 'TpmError'
}

/** A quote or attestation key was refused: the device did not prove its state. */
export class AttestationError extends ZtError {
  static override name = 'AttestationError'
}

/** The policy decision point refused a request; the message gives the reason. */
export class PolicyError extends ZtError {
  static override name = 'PolicyError'
}

/** A configuration file or setting is invalid; the message names the key. */
export class ConfigError extends ZtError {
  static override name = 'ConfigError'
}

/** A signed object was refused: malformed, of another version, or made for another purpose. */
export class WireError extends ZtError {
  static override name = 'WireError'
}

/** Persistent state could not be read, written or trusted. */
export class StorageError extends ZtError {
  static override name = 'StorageError'
}

/** A bug or an environment failure (no randomness). */
export class InternalError extends ZtError {
  static override name = 'InternalError'
}

const CLASS_OF_AREA: Record<Area, typeof ZtError> = {
  argument: InvalidArgumentError,
  crypto: CryptoError,
  noise: NoiseError,
  channel: ChannelError,
  mux: MuxError,
  keystore: KeystoreError,
  ca: CaError,
  pki: PkiError,
  tpm: TpmError,
  attest: AttestationError,
  wire: WireError,
  config: ConfigError,
  policy: PolicyError,
  storage: StorageError,
  internal: InternalError,
}

/** The named class for a code. */
export function errorClassFor(code: ErrorCode): typeof ZtError {
  const area = AREA_OF.get(code)
  return area === undefined ? InvalidArgumentError : CLASS_OF_AREA[area]
}

/** Builds the named error for a code. */
export function createError(code: ErrorCode, message?: string, options?: ErrorOptions): ZtError {
  const ErrorClass = errorClassFor(code)
  return new ErrorClass(code, message, options)
}

/** Whether a string is a known ztmesh code. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
}
