import { callNative, native } from '../../native.js'

/** A raw X25519 key pair. */
export interface X25519KeyPair {
  /** 32 bytes. */
  publicKey: Buffer
  /** 32 bytes. Keep it secret; zero it when done. */
  privateKey: Buffer
}

/**
 * Generates an X25519 key pair as raw 32-byte Buffers (the Noise static key format).
 *
 * @example
 * ```ts
 * const { publicKey, privateKey } = generateX25519KeyPair()
 * ```
 */
export function generateX25519KeyPair(): X25519KeyPair {
  return callNative(() => native.generateX25519KeyPair())
}

/** X25519(privateKey, peerPublicKey); refuses peer keys of small order (`ERR_PUBLIC_KEY`). */
export function x25519SharedSecret(privateKey: Uint8Array, peerPublicKey: Uint8Array): Buffer {
  return callNative(() => native.x25519SharedSecret(privateKey, peerPublicKey))
}

/** The public key of a raw X25519 private key. */
export function x25519PublicKey(privateKey: Uint8Array): Buffer {
  return callNative(() => native.x25519PublicKey(privateKey))
}
