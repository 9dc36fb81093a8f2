/**
 * @chainsafe/libp2p-noise's own XX state machine, loaded for the benchmark baseline and the
 * interop tests. It is a devDependency: only `ztmesh bench` and the test suite reach it.
 */

/** The parts of libp2p-noise's `XXHandshakeState` that the bench and the tests drive. */
export interface Libp2pXXState {
  writeMessageA(payload: Uint8Array): Uint8Array
  writeMessageB(payload: Uint8Array): Uint8Array
  writeMessageC(payload: Uint8Array): Uint8Array
  readMessageA(message: Libp2pBytes): Uint8Array
  readMessageB(message: Libp2pBytes): Uint8Array
  readMessageC(message: Libp2pBytes): Uint8Array
  ss: { h: Uint8Array; split(): [Libp2pCipher, Libp2pCipher] }
  rs?: Uint8Array
}

export interface Libp2pCipher {
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array | Libp2pBytes
  decryptWithAd(ad: Uint8Array, ciphertext: Libp2pBytes): Uint8Array | Libp2pBytes
}

/** A `Uint8ArrayList`, libp2p-noise's input type. */
export interface Libp2pBytes {
  subarray(): Uint8Array
}

export interface Libp2pKeyPair {
  publicKey: Uint8Array
  privateKey: Uint8Array
}

export interface Libp2pNoise {
  generateKeyPair(): Libp2pKeyPair
  /** A fresh `Noise_XX_25519_ChaChaPoly_SHA256` state. */
  state(initiator: boolean, staticKeys: Libp2pKeyPair, prologue: Uint8Array): Libp2pXXState
  /** Wraps bytes in the list type the state machine reads. */
  list(bytes: Uint8Array): Libp2pBytes
  /** A whole XX handshake, both sides in memory, through to the split. */
  handshake(initiatorKeys: Libp2pKeyPair, responderKeys: Libp2pKeyPair, prologue: Uint8Array): void
}

const PROTOCOL_NAME = 'Noise_XX_25519_ChaChaPoly_SHA256'

export async function loadLibp2pNoise(): Promise<Libp2pNoise> {
  const { defaultCrypto } = await import('@chainsafe/libp2p-noise/crypto')
  // protocol.js and crypto.js are not in the package's exports map; reach them beside the entry point.
  const entry = import.meta.resolve('@chainsafe/libp2p-noise')
  const { XXHandshakeState } = (await import(new URL('./protocol.js', entry).href)) as {
    XXHandshakeState: new (init: object) => Libp2pXXState
  }
  // The state machine wants the wrapped interface (hash, hkdf, dh...), as the package's own Noise class builds it.
  const { wrapCrypto } = (await import(new URL('./crypto.js', entry).href)) as { wrapCrypto(c: object): object }
  const { Uint8ArrayList } = await import('uint8arraylist')
  const crypto = wrapCrypto(defaultCrypto)
  const state = (initiator: boolean, s: Libp2pKeyPair, prologue: Uint8Array) =>
    new XXHandshakeState({ crypto, protocolName: PROTOCOL_NAME, initiator, prologue, s })
  const list = (bytes: Uint8Array) => new Uint8ArrayList(bytes)
  const empty = new Uint8Array(0)
  return {
    generateKeyPair: () => defaultCrypto.generateX25519KeyPair(),
    state,
    list,
    handshake(initiatorKeys, responderKeys, prologue) {
      const i = state(true, initiatorKeys, prologue)
      const r = state(false, responderKeys, prologue)
      r.readMessageA(list(i.writeMessageA(empty)))
      i.readMessageB(list(r.writeMessageB(empty)))
      r.readMessageC(list(i.writeMessageC(empty)))
      i.ss.split()
      r.ss.split()
    },
  }
}

/** One end of a secured libp2p connection: what a libp2p node's upper layers see. */
export interface Libp2pSecureEnd {
  send(data: Uint8Array): boolean
  addEventListener(type: 'message', listener: (event: { data: { byteLength: number } }) => void): void
  removeEventListener(type: 'message', listener: (event: { data: { byteLength: number } }) => void): void
}

/**
 * Two libp2p nodes' Noise encrypters, connected in memory and secured by a real handshake
 * (`secureOutbound` / `secureInbound`): the whole pipeline a libp2p application runs its data
 * through (message stream, u16 length-prefixed framing, encryption, decoding, decryption).
 */
export async function libp2pNoiseConnection(): Promise<{ initiator: Libp2pSecureEnd; responder: Libp2pSecureEnd }> {
  const { secure } = await libp2pNoiseNodes()
  const { initiator, responder } = await secure()
  return { initiator: initiator.connection as unknown as Libp2pSecureEnd, responder: responder.connection as unknown as Libp2pSecureEnd }
}

/** A secured libp2p connection pair: each end's connection, as `secureOutbound`/`secureInbound` return it. */
interface Libp2pSecured {
  initiator: { connection: unknown }
  responder: { connection: unknown }
}

/**
 * Two libp2p nodes' Noise security transports (Ed25519 identities), and `secure()`: a new
 * in-memory connection pair secured by both (`secureOutbound` / `secureInbound`): an XX handshake
 * whose payloads carry each node's identity key and its signature over the Noise static key.
 *
 * libp2p-noise 17 calls `Promise.withResolvers` (ES2024), which Node 20 lacks; the standard
 * definition is installed when it is missing.
 */
export async function libp2pNoiseNodes(): Promise<{ secure(): Promise<Libp2pSecured> }> {
  installPromiseWithResolvers()
  const { noise } = await import('@chainsafe/libp2p-noise')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { defaultLogger } = await import('@libp2p/logger')
  const { multiaddrConnectionPair } = await import('@libp2p/utils')
  const node = async () =>
    noise()({ privateKey: await generateKeyPair('Ed25519'), logger: defaultLogger(), upgrader: { getStreamMuxers: () => new Map() } } as never)
  const [initiatorNode, responderNode] = [await node(), await node()]
  const options = { skipStreamMuxerNegotiation: true }
  return {
    secure: async () => {
      const [outbound, inbound] = multiaddrConnectionPair()
      const [initiator, responder] = await Promise.all([initiatorNode.secureOutbound(outbound, options), responderNode.secureInbound(inbound, options)])
      return { initiator, responder } as Libp2pSecured
    },
  }
}

function installPromiseWithResolvers(): void {
  const promise = Promise as unknown as { withResolvers?: () => object }
  promise.withResolvers ??= () => {
    let resolve: unknown
    let reject: unknown
    const settled = new Promise((yes, no) => ((resolve = yes), (reject = no)))
    return { promise: settled, resolve, reject }
  }
}
