import { callNative, native, nativeError, type NativeAeadKey } from '../../native.js'

/** AEAD algorithms: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM. */
export type AeadAlgorithm = 'chacha20-poly1305' | 'aes-256-gcm'

/** Key length of every AEAD algorithm, in bytes. */
export const AEAD_KEY_LENGTH = 32
/** Nonce length of every AEAD algorithm, in bytes. */
export const AEAD_NONCE_LENGTH = 12
/** Tag length appended to every ciphertext, in bytes. */
export const AEAD_TAG_LENGTH = 16

/**
 * An AEAD key whose key schedule lives in the Rust core.
 *
 * `sealInto`/`openInto` write into a buffer you own, so sealing many small messages costs no
 * allocation per message; `sealBatch`/`openBatch` also pay the native call only once for many
 * messages. A nonce must never repeat under one key: use a counter.
 *
 * @example
 * ```ts
 * const key = new AeadKey('chacha20-poly1305', randomBytes(32))
 * const out = Buffer.alloc(1500)
 * const n = key.sealInto(nonce, packet, out)      // out.subarray(0, n) is ciphertext ‖ tag
 * const m = key.openInto(nonce, out.subarray(0, n), plain)
 * ```
 */
export class AeadKey {
  readonly #key: NativeAeadKey

  constructor(algorithm: AeadAlgorithm, key: Uint8Array) {
    this.#key = callNative(() => new native.AeadKey(algorithm, key))
  }

  /** The algorithm of this key. */
  get algorithm(): AeadAlgorithm {
    return this.#key.algorithm as AeadAlgorithm
  }

  /** Seals into `out` (≥ plaintext.length + 16 bytes, not overlapping); returns the length. */
  sealInto(nonce: Uint8Array, plaintext: Uint8Array, out: Uint8Array, aad?: Uint8Array): number {
    try {
      return this.#key.sealInto(nonce, plaintext, out as Buffer, aad)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Opens `ciphertext ‖ tag` into `out` (≥ ciphertext.length - 16 bytes); returns the length. */
  openInto(nonce: Uint8Array, ciphertext: Uint8Array, out: Uint8Array, aad?: Uint8Array): number {
    try {
      return this.#key.openInto(nonce, ciphertext, out as Buffer, aad)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /**
   * Seals many messages in one native call: message `i` is the next `lengths[i]` bytes of
   * `plaintexts`, sealed under `nonces.subarray(12 * i, 12 * i + 12)`. The sealed messages
   * (`ciphertext ‖ tag` each) go to `out` back to back; returns the bytes written. Nothing is
   * written unless the whole batch fits.
   */
  sealBatch(nonces: Uint8Array, plaintexts: Uint8Array, lengths: Uint32Array, out: Uint8Array, aad?: Uint8Array): number {
    try {
      return this.#key.sealBatch(nonces, plaintexts, lengths, out as Buffer, aad)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /**
   * Opens a batch made by {@link sealBatch} (`lengths` are the plaintext lengths) into `out`;
   * returns the plaintext bytes written. All or nothing: if any message is not authentic it
   * throws `ERR_DECRYPT` and leaves `out` zeroed.
   */
  openBatch(nonces: Uint8Array, ciphertexts: Uint8Array, lengths: Uint32Array, out: Uint8Array, aad?: Uint8Array): number {
    try {
      return this.#key.openBatch(nonces, ciphertexts, lengths, out as Buffer, aad)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Seals and returns `ciphertext ‖ tag` in a new Buffer. */
  seal(nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
    return callNative(() => this.#key.seal(nonce, plaintext, aad))
  }

  /** Opens `ciphertext ‖ tag`; throws `ERR_DECRYPT` if it is not authentic. */
  open(nonce: Uint8Array, ciphertext: Uint8Array, aad?: Uint8Array): Buffer {
    return callNative(() => this.#key.open(nonce, ciphertext, aad))
  }
}
