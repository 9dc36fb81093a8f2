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

import { CATALOG } from './error-catalog.js'

// CATALOG (src/error-catalog.ts) is every error code with when it happens, grouped by area; the
// class of each area is declared below (CLASS_OF_AREA). It is generated from the core's catalog
// (`CATALOG` in crates/ztmesh-core/src/error.rs, the source of truth, exported as
// `errorCatalog()`) by scripts/gen-errors.mjs on every build, so that `ErrorCode` is a type;
// __test__/errors.spec.ts fails on any difference. A new code goes into the core only.

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
