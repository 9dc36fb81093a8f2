import { callNative, native, type NativeMlKem768SecretKey, type NativeXWingSecretKey } from '../../native.js'

/** X-Wing public key length (ML-KEM-768 key ‖ X25519 key). */
export const XWING_PUBLIC_KEY_LENGTH = 1216
/** X-Wing ciphertext length (ML-KEM-768 ciphertext ‖ X25519 share). */
export const XWING_CIPHERTEXT_LENGTH = 1120

/** A KEM ciphertext and the shared secret it carries. */
export interface Encapsulation {
  ciphertext: Buffer
  sharedSecret: Buffer
}

/**
 * An X-Wing (X25519 + ML-KEM-768) decapsulation key, draft-connolly-cfrg-xwing-kem-06.
 *
 * @example
 * ```ts
 * const sk = XWingSecretKey.generate()
 * const { ciphertext, sharedSecret } = xwingEncapsulate(sk.publicKey)
 * sk.decapsulate(ciphertext).equals(sharedSecret) // true
 * ```
 */
export class XWingSecretKey {
  readonly #key: NativeXWingSecretKey
  #publicKey: Buffer | undefined

  private constructor(key: NativeXWingSecretKey) {
    this.#key = key
  }

  /** Generates a new key. */
  static generate(): XWingSecretKey {
    return new XWingSecretKey(callNative(() => native.XWingSecretKey.generate()))
  }

  /** Loads a key from its 32-byte seed. */
  static fromSeed(seed: Uint8Array): XWingSecretKey {
    return new XWingSecretKey(callNative(() => native.XWingSecretKey.fromSeed(seed)))
  }

  /** The 1216-byte public key (a fresh copy each time, so callers may keep or change it). */
  get publicKey(): Buffer {
    this.#publicKey ??= this.#key.publicKey
    return Buffer.from(this.#publicKey)
  }

  /** The 32-byte seed: the whole secret key. Zero the buffer when done. */
  exportSeed(): Buffer {
    return this.#key.exportSeed()
  }

  /** Recovers the shared secret (a tampered ciphertext yields an unrelated secret). */
  decapsulate(ciphertext: Uint8Array): Buffer {
    return callNative(() => this.#key.decapsulate(ciphertext))
  }
}

/** Encapsulates a fresh shared secret to an X-Wing public key. */
export function xwingEncapsulate(publicKey: Uint8Array): Encapsulation {
  return callNative(() => native.xwingEncapsulate(publicKey))
}

/** An ML-KEM-768 (FIPS 203) decapsulation key. */
export class MlKem768SecretKey {
  readonly #key: NativeMlKem768SecretKey

  private constructor(key: NativeMlKem768SecretKey) {
    this.#key = key
  }

  /** Generates a new key pair. */
  static generate(): MlKem768SecretKey {
    return new MlKem768SecretKey(callNative(() => native.MlKem768SecretKey.generate()))
  }

  /** The 1184-byte encapsulation key. */
  get publicKey(): Buffer {
    return this.#key.publicKey
  }

  /** Recovers the shared secret from a 1088-byte ciphertext. */
  decapsulate(ciphertext: Uint8Array): Buffer {
    return callNative(() => this.#key.decapsulate(ciphertext))
  }
}

/** Encapsulates to an ML-KEM-768 key (validated per FIPS 203 §7.2). */
export function mlkem768Encapsulate(publicKey: Uint8Array): Encapsulation {
  return callNative(() => native.mlkem768Encapsulate(publicKey))
}
