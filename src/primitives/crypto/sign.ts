import { awaitNative, callNative, native, type NativeSigningKey } from '../../native.js'

/** Signature algorithms: Ed25519 and ECDSA P-256 with SHA-256 (DER signatures). */
export type SignatureAlgorithm = 'ed25519' | 'ecdsa-p256-sha256'

/** One (message, signature, public key) triple of a batch. */
export interface VerifyItem {
  algorithm: SignatureAlgorithm
  publicKey: Uint8Array
  message: Uint8Array
  signature: Uint8Array
}

/**
 * A private signing key held in the Rust core.
 *
 * @example
 * ```ts
 * const key = SigningKey.generate('ed25519')
 * const sig = key.sign(message)
 * verify('ed25519', key.publicKey, message, sig) // true
 * ```
 */
export class SigningKey {
  readonly #key: NativeSigningKey

  private constructor(key: NativeSigningKey) {
    this.#key = key
  }

  /** Generates a new key pair. */
  static generate(algorithm: SignatureAlgorithm): SigningKey {
    return new SigningKey(callNative(() => native.SigningKey.generate(algorithm)))
  }

  /** Loads a key pair from PKCS#8 DER. */
  static fromPkcs8(algorithm: SignatureAlgorithm, pkcs8: Uint8Array): SigningKey {
    return new SigningKey(callNative(() => native.SigningKey.fromPkcs8(algorithm, pkcs8)))
  }

  /** The algorithm of this key. */
  get algorithm(): SignatureAlgorithm {
    return this.#key.algorithm as SignatureAlgorithm
  }

  /** 32 raw bytes (Ed25519) or a 65-byte uncompressed SEC1 point (P-256). */
  get publicKey(): Buffer {
    return this.#key.publicKey
  }

  /** Signs a message (ECDSA: DER-encoded, randomized). */
  sign(message: Uint8Array): Buffer {
    return callNative(() => this.#key.sign(message))
  }

  /** The private key as PKCS#8 DER. Zero the buffer when done. */
  toPkcs8(): Buffer {
    return this.#key.toPkcs8()
  }
}

/** Verifies one signature: `false` for any bad signature, key or encoding. */
export function verify(
  algorithm: SignatureAlgorithm,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  return callNative(() => native.verify(algorithm, publicKey, message, signature))
}

/** Verifies many signatures in one native call, on all cores; one verdict per item. */
export function verifyBatch(items: readonly VerifyItem[]): boolean[] {
  return callNative(() => native.verifyBatch(items as VerifyItem[] as never))
}

/** {@link verifyBatch} off the JavaScript thread (libuv pool). */
export function verifyBatchAsync(items: readonly VerifyItem[]): Promise<boolean[]> {
  return awaitNative(() => native.verifyBatchAsync(items as VerifyItem[] as never))
}
