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

/** Every error code, with when it happens. */
export const ERROR_CODES = {
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
  ERR_DECRYPT: 'an AEAD ciphertext is not authentic',
  ERR_SIGNATURE: 'a signature did not verify',
  ERR_NOISE_PROTOCOL: 'a Noise protocol name is not supported',
  ERR_NOISE_CONFIG: 'a Noise handshake is missing something its pattern needs',
  ERR_NOISE_STATE: 'a Noise call came out of turn, after the end, or after a failure',
  ERR_NOISE_DECRYPT: 'a Noise message is not authentic',
  ERR_NOISE_MESSAGE_SIZE: 'a Noise message or payload exceeds 65535 bytes',
  ERR_NOISE_MALFORMED: 'a Noise handshake message is truncated or malformed',
  ERR_NOISE_HYBRID: 'the post-quantum part of a hybrid Noise handshake is invalid',
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
  ERR_BAD_REQUEST: 'an HTTP request is malformed: content type, JSON, or a field',
  ERR_PAYLOAD_TOO_LARGE: 'an HTTP request body is larger than the API allows',
  ERR_RATE_LIMITED: 'too many requests from this source; retry later',
  ERR_UNAUTHENTICATED: 'the request carries no valid credential',
  ERR_FORBIDDEN: 'the credential is valid but policy refuses the request',
  ERR_NOT_FOUND: 'no such resource',
  ERR_CSR: 'a certificate signing request is malformed, badly signed or has an unsupported key',
  ERR_TOKEN_INVALID: 'an enrollment token is malformed or unknown',
  ERR_TOKEN_EXPIRED: 'an enrollment token has expired',
  ERR_TOKEN_USED: 'an enrollment token was already used',
  ERR_STORAGE: 'the database could not be opened, migrated or written',
  ERR_AUDIT_TAMPERED: 'the audit log hash chain is broken: a row was changed, removed or reordered',
  ERR_RANDOM: "the operating system's random number generator failed",
  ERR_INTERNAL: 'a bug: an internal invariant failed (a panic in the core is reported so)',
} as const

/** A stable ztmesh error code. */
export type ErrorCode = keyof typeof ERROR_CODES

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

/** Persistent state could not be read, written or trusted. */
export class StorageError extends ZtError {
  static override name = 'StorageError'
}

/** A bug or an environment failure (no randomness). */
export class InternalError extends ZtError {
  static override name = 'InternalError'
}

const CRYPTO_CODES = new Set<string>(['ERR_DECRYPT', 'ERR_SIGNATURE'])
const CA_CODES = new Set<string>(['ERR_BAD_REQUEST', 'ERR_PAYLOAD_TOO_LARGE', 'ERR_RATE_LIMITED', 'ERR_UNAUTHENTICATED', 'ERR_FORBIDDEN', 'ERR_NOT_FOUND', 'ERR_CSR'])

/** The named class for a code. */
export function errorClassFor(code: ErrorCode): typeof ZtError {
  if (CRYPTO_CODES.has(code)) return CryptoError
  if (code.startsWith('ERR_NOISE_')) return NoiseError
  if (code.startsWith('ERR_KEYSTORE_')) return KeystoreError
  if (code.startsWith('ERR_TOKEN_') || CA_CODES.has(code)) return CaError
  if (code === 'ERR_STORAGE' || code === 'ERR_AUDIT_TAMPERED') return StorageError
  if (code === 'ERR_INTERNAL' || code === 'ERR_RANDOM') return InternalError
  return InvalidArgumentError
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
