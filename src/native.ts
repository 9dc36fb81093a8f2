/**
 * The only module that imports the generated N-API binding.
 *
 * It re-exports the native classes and functions for the rest of `src/`, and owns the mapping
 * of native errors to the named classes of `errors.ts`: a core error carries its `ERR_…` code;
 * an argument napi-rs itself rejects (wrong JS type) arrives with a napi status such as
 * `InvalidArg` and becomes `ERR_INVALID_ARG`.
 */
import * as binding from '../binding.js'
import { createError, isErrorCode, ZtError } from './errors.js'

export const native = binding

/** Native class types, for the wrappers in `src/`. */
/** The binding's types, for the facades that re-export them (`import type { bindingTypes }`). */
export type * as bindingTypes from '../binding.js'
export type NativeAeadKey = binding.AeadKey
export type NativeSigningKey = binding.SigningKey
export type NativeXWingSecretKey = binding.XWingSecretKey
export type NativeMlKem768SecretKey = binding.MlKem768SecretKey
export type NativeNoiseHandshake = binding.NoiseHandshake
export type NativeNoiseTransport = binding.NoiseTransport
export type NativeNoiseRecordLayer = binding.NoiseRecordLayer
export type NativeKeystore = binding.Keystore
export type NativeSigner = binding.Signer
export type NativeCertificateAuthority = binding.CertificateAuthority
export type NativeTrustStore = binding.TrustStore
export type NativeRevocationSet = binding.RevocationSet
export type NativeTlsSession = binding.TlsSession
export type NativeNoiseLinkContext = binding.NoiseLinkContext
export type NativeNoiseLinkHandshake = binding.NoiseLinkHandshake

/** Converts anything the binding threw into a {@link ZtError}. */
export function nativeError(error: unknown): ZtError {
  if (error instanceof ZtError) return error
  const code = (error as { code?: unknown } | null)?.code
  const message = error instanceof Error ? error.message : String(error)
  if (isErrorCode(code)) return createError(code, message)
  if (error instanceof TypeError || (typeof code === 'string' && !code.startsWith('ERR_'))) {
    // napi-rs argument conversion (InvalidArg, StringExpected, ObjectExpected…).
    return createError('ERR_INVALID_ARG', message, { cause: error })
  }
  return createError('ERR_INTERNAL', message, { cause: error })
}

/** Runs a native call and rethrows its failure as a {@link ZtError}. */
export function callNative<T>(call: () => T): T {
  try {
    return call()
  } catch (error) {
    throw nativeError(error)
  }
}

/** Awaits a native promise and rethrows its failure as a {@link ZtError}. */
export async function awaitNative<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw nativeError(error)
  }
}
