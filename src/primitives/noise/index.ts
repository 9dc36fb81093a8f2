/**
 * Noise handshakes and transports (sans-IO): the bytes go wherever you send them.
 *
 * Protocols: `Noise_XX_25519_ChaChaPoly_SHA256`, `Noise_XX_25519_ChaChaPoly_BLAKE2s`,
 * `Noise_IK_25519_ChaChaPoly_SHA256` (standard, interoperable byte for byte), and the
 * post-quantum hybrid `Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768`, whose session keys depend
 * on both X25519 and ML-KEM-768; its mode is bound into the prologue, so a peer or a man in the
 * middle cannot strip it.
 *
 * @example
 * ```ts
 * const alice = NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: a.privateKey })
 * const bob = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: b.privateKey })
 * bob.readMessage(alice.writeMessage())
 * alice.readMessage(bob.writeMessage())
 * bob.readMessage(alice.writeMessage())
 * const tx = alice.intoTransport(), rx = bob.intoTransport()
 * rx.decrypt(tx.encrypt(Buffer.from('hi')))
 * ```
 */
import { reserve, take } from '../../slab.js'
import { callNative, native, nativeError, type NativeNoiseHandshake, type NativeNoiseRecordLayer, type NativeNoiseTransport } from '../../native.js'

/** The full protocol names. */
export const NOISE_PROTOCOLS = {
  XX: 'Noise_XX_25519_ChaChaPoly_SHA256',
  XX_BLAKE2S: 'Noise_XX_25519_ChaChaPoly_BLAKE2s',
  IK: 'Noise_IK_25519_ChaChaPoly_SHA256',
  XX_HYBRID: 'Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768',
  XX_AESGCM: 'Noise_XX_25519_AESGCM_SHA256',
  XX_HYBRID_AESGCM: 'Noise_XXpsk3_25519_AESGCM_SHA256+MLKEM768',
} as const

/** A full protocol name. */
export type NoiseProtocolName = (typeof NOISE_PROTOCOLS)[keyof typeof NOISE_PROTOCOLS]

/** A full protocol name, or a short alias (`XX`, `IK`, `XX_BLAKE2S`, `XX_HYBRID`, `XX_AESGCM`, `XX_HYBRID_AESGCM`). */
export type NoisePattern = NoiseProtocolName | keyof typeof NOISE_PROTOCOLS

/** The Noise cipher that is faster on this CPU: `AESGCM` where it has AES instructions, else `ChaChaPoly`. */
export function noisePreferredCipher(): 'AESGCM' | 'ChaChaPoly' {
  return native.noisePreferredCipher() as 'AESGCM' | 'ChaChaPoly'
}

/** Largest Noise message, in bytes. */
export const NOISE_MAX_MESSAGE_LENGTH = 65535

/** Options of {@link NoiseHandshake.initiator} and {@link NoiseHandshake.responder}. */
export interface NoiseHandshakeInit {
  /** The protocol (default `XX`). */
  pattern?: NoisePattern
  /** This side's raw 32-byte X25519 static private key. */
  staticPrivateKey: Uint8Array
  /** Bytes both sides must agree on; bound into the handshake hash. */
  prologue?: Uint8Array
  /** The responder's static public key: required by an IK initiator. */
  remoteStaticPublicKey?: Uint8Array
}

function protocolName(pattern: NoisePattern = 'XX'): string {
  return Object.hasOwn(NOISE_PROTOCOLS, pattern) ? NOISE_PROTOCOLS[pattern as keyof typeof NOISE_PROTOCOLS] : pattern
}

function toBuffer(bytes: Uint8Array | undefined): Buffer | undefined {
  // Anything that is not a Uint8Array goes through unchanged: the binding refuses it with ERR_INVALID_ARG.
  if (!(bytes instanceof Uint8Array) || Buffer.isBuffer(bytes)) return bytes as Buffer | undefined
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** A Noise handshake state machine. */
export class NoiseHandshake {
  readonly #state: NativeNoiseHandshake

  private constructor(state: NativeNoiseHandshake) {
    this.#state = state
  }

  /** Starts a handshake as the initiator. */
  static initiator(init: NoiseHandshakeInit): NoiseHandshake {
    return new NoiseHandshake(callNative(() => native.NoiseHandshake.initiator(nativeOptions(init))))
  }

  /** Starts a handshake as the responder. */
  static responder(init: NoiseHandshakeInit): NoiseHandshake {
    return new NoiseHandshake(callNative(() => native.NoiseHandshake.responder(nativeOptions(init))))
  }

  /** Writes the next handshake message, carrying `payload` (encrypted once keys exist). */
  writeMessage(payload?: Uint8Array): Buffer {
    return callNative(() => this.#state.writeMessage(payload))
  }

  /** Reads the peer's next handshake message and returns its payload. */
  readMessage(message: Uint8Array): Buffer {
    return callNative(() => this.#state.readMessage(message))
  }

  /** Whether the handshake is complete. */
  get isFinished(): boolean {
    return this.#state.isFinished
  }

  /** Whether the next call should be {@link writeMessage}. */
  get isMyTurn(): boolean {
    return this.#state.isMyTurn
  }

  /** The peer's static public key, once revealed. */
  get remoteStaticPublicKey(): Buffer | undefined {
    return this.#state.remoteStaticPublicKey ?? undefined
  }

  /** The handshake hash: a channel binding, final once finished. */
  get handshakeHash(): Buffer {
    return this.#state.handshakeHash
  }

  /** The full protocol name. */
  get protocol(): NoiseProtocolName | undefined {
    return (this.#state.protocol ?? undefined) as NoiseProtocolName | undefined
  }

  /** Consumes the finished handshake into a transport. */
  intoTransport(): NoiseTransport {
    return new NoiseTransport(callNative(() => this.#state.intoTransport()))
  }
}

/** An established Noise session. */
export class NoiseTransport {
  readonly #session: NativeNoiseTransport

  /** @internal */
  constructor(session: NativeNoiseTransport) {
    this.#session = session
  }

  /** Encrypts one message (≤ 65519 bytes). */
  encrypt(plaintext: Uint8Array): Buffer {
    return callNative(() => this.#session.encrypt(plaintext))
  }

  /** Decrypts one message; throws `ERR_NOISE_DECRYPT` if it is not authentic. */
  decrypt(ciphertext: Uint8Array): Buffer {
    return callNative(() => this.#session.decrypt(ciphertext))
  }

  /** Encrypts into `out` (≥ plaintext.length + 16 bytes); returns the length. */
  encryptInto(plaintext: Uint8Array, out: Uint8Array): number {
    try {
      return this.#session.encryptInto(plaintext, out as Buffer)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Decrypts into `out`; returns the plaintext length. */
  decryptInto(ciphertext: Uint8Array, out: Uint8Array): number {
    try {
      return this.#session.decryptInto(ciphertext, out as Buffer)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Replaces the sending key; the peer calls {@link rekeyIncoming} at the same message. */
  rekeyOutgoing(): void {
    callNative(() => this.#session.rekeyOutgoing())
  }

  /** Replaces the receiving key. */
  rekeyIncoming(): void {
    callNative(() => this.#session.rekeyIncoming())
  }

  /** Messages sent so far. */
  get sendingNonce(): number {
    return callNative(() => this.#session.sendingNonce)
  }

  /** Messages received so far. */
  get receivingNonce(): number {
    return callNative(() => this.#session.receivingNonce)
  }

  /** The session's handshake hash. */
  get handshakeHash(): Buffer {
    return callNative(() => this.#session.handshakeHash)
  }

  /** The peer's static public key. */
  get remoteStaticPublicKey(): Buffer | undefined {
    return callNative(() => this.#session.remoteStaticPublicKey) ?? undefined
  }

  /**
   * Moves the session into a {@link NoiseRecordLayer} (length-prefixed records, rekeying); this
   * transport is unusable afterwards.
   */
  intoRecordLayer(rekey: { afterRecords?: number; afterMs?: number } = {}): NoiseRecordLayer {
    return new NoiseRecordLayer(callNative(() => this.#session.intoRecordLayer(rekey.afterRecords, rekey.afterMs)))
  }
}

/**
 * The record layer of a Noise link, sans-IO: `seal` turns data into records for the wire, `open`
 * turns received bytes (cut anywhere) back into data. A record is `u16 length ‖ Noise message`;
 * an empty message marks the sender's rekey. A bad record throws `ERR_NOISE_DECRYPT` or
 * `ERR_NOISE_MALFORMED` and ends the layer.
 */
export class NoiseRecordLayer {
  readonly #records: NativeNoiseRecordLayer

  /** @internal */
  constructor(records: NativeNoiseRecordLayer) {
    this.#records = records
  }

  /** The records carrying `data` (rekey records included where due). */
  seal(data: Uint8Array): Buffer {
    try {
      const out = reserve(this.#records.sealedLengthBound(data.length))
      return take(this.#records.sealInto(data, out))
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** The data of every record `chunk` completes (possibly empty). */
  open(chunk: Uint8Array): Buffer {
    try {
      const out = reserve(this.#records.openedLengthBound(chunk.length))
      return take(this.#records.openInto(chunk, out))
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Bytes of an unfinished record. */
  get buffered(): number {
    return this.#records.buffered
  }
}

function nativeOptions(init: NoiseHandshakeInit) {
  if (init === null || typeof init !== 'object') {
    return init as never // the binding rejects it with ERR_INVALID_ARG
  }
  return {
    pattern: protocolName(init.pattern),
    staticPrivateKey: toBuffer(init.staticPrivateKey)!,
    prologue: toBuffer(init.prologue),
    remoteStaticPublicKey: toBuffer(init.remoteStaticPublicKey),
  }
}
