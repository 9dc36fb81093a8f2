/**
 * A Noise link over any duplex (TCP, a WebSocket stream, a WebRTC data channel): the XX
 * handshake (post-quantum hybrid by default) bound to device certificates, then an encrypted,
 * framed, rekeyed stream.
 *
 * Identity binding: each side's handshake payload carries its certificate chain and a
 * signature by the certificate key over the Noise static public key (as libp2p binds its peer
 * ids). The receiver decides the chain with {@link verifyPeer} and checks that the signature
 * covers the very static key Noise authenticated, so the certificate holder owns this session.
 *
 * Transport frames are `u16 length ‖ Noise message`; inside, a 1-byte type: ready (the
 * responder's first frame: it has accepted the initiator), data, or rekey (the sender switches
 * to a new key after this frame, the receiver after reading it). Rekeying
 * happens every `rekeyAfterMessages` frames or `rekeyAfterMs`, whichever comes first.
 */

import { Duplex } from 'node:stream'

import { generateX25519KeyPair, x25519PublicKey } from '../crypto/x25519.js'
import { createError, ZtError } from '../errors.js'
import { NoiseHandshake, type NoiseTransport } from '../noise/index.js'
import { verifyCertificateSignature, verifyPeer, type PeerIdentity, type PeerPolicy, type RevocationSet, type TrustStore } from '../pki/index.js'
import { encodeFrame, FrameDecoder, MAX_FRAME_LENGTH } from './framing.js'

/** How this device proves who it is: its chain and a signer for its certificate key. */
export interface LinkIdentity {
  /** The device certificate followed by its CA chain, PEM. */
  certificateChainPem: string
  /** Signs with the certificate's key (ECDSA P-256, DER), e.g. a keystore entry or a TPM key. */
  sign(message: Uint8Array): Buffer
}

/** Options of {@link wrapNoise}. */
export interface NoiseLinkInit {
  role: 'initiator' | 'responder'
  identity: LinkIdentity
  trust: TrustStore
  /** The current revocations; read at the handshake. */
  revocations: RevocationSet
  /** Who the peer must be (expected tenant, device, pins). */
  policy?: PeerPolicy
  /** `XX_HYBRID` (default: X25519 + ML-KEM-768) or `XX` (classical). */
  pattern?: 'XX_HYBRID' | 'XX'
  /** This side's X25519 static key; a fresh one per link by default. */
  staticPrivateKey?: Uint8Array
  /** The whole handshake must finish within this many ms. Default 10 s. */
  handshakeTimeoutMs?: number
  signal?: AbortSignal
  /** Rekey after this many frames sent. Default 65,536. */
  rekeyAfterMessages?: number
  /** Rekey after this much time. Default 10 minutes. */
  rekeyAfterMs?: number
}

/** A secured link: a Duplex of plaintext with the verified peer. */
export interface SecureStream extends Duplex {
  readonly peer: PeerIdentity
  readonly protocol: 'noise' | 'tls'
  /** The key exchange: `X25519MLKEM768` (hybrid) or `X25519`. */
  readonly kxGroup: string
  readonly postQuantum: boolean
  /** Closes the link with `ERR_CERT_REVOKED` if `revocations` names the peer; returns whether it did. */
  closeIfRevoked(revocations: RevocationSet): boolean
}

const IDENTITY_CONTEXT = Buffer.from('ztmesh-noise-static-key:', 'utf8')
const FRAME_DATA = 0
const FRAME_REKEY = 1
const FRAME_READY = 2
const MAX_PLAINTEXT = MAX_FRAME_LENGTH - 16 - 1
const HANDSHAKE_MAX_FRAME = 16 * 1024

/**
 * Runs the handshake over `duplex` and resolves with the secured stream, or rejects with a typed
 * error (`ERR_HANDSHAKE_TIMEOUT`, `ERR_ABORTED`, a PKI code such as `ERR_CERT_REVOKED`,
 * `ERR_NOISE_IDENTITY`, a Noise code) after destroying `duplex`.
 */
export async function wrapNoise(duplex: Duplex, init: NoiseLinkInit): Promise<SecureStream> {
  const pattern = init.pattern ?? 'XX_HYBRID'
  const staticKey = init.staticPrivateKey ?? generateX25519KeyPair().privateKey
  const handshake = NoiseHandshake[init.role]({ pattern, staticPrivateKey: staticKey, prologue: Buffer.from('ztmesh/1') })
  const staticPublicKey = x25519PublicKey(staticKey)
  if (init.staticPrivateKey === undefined) staticKey.fill(0)
  // Handshake messages are small (the largest, with an ML-KEM ciphertext and a certificate
  // chain, is a few KiB): a peer cannot make us buffer 64 KiB before it authenticates.
  const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME)
  const ownPayload = (publicKey: Buffer) =>
    Buffer.from(JSON.stringify({ v: 1, chain: init.identity.certificateChainPem, sig: init.identity.sign(Buffer.concat([IDENTITY_CONTEXT, publicKey])).toString('base64') }))

  const frames: Buffer[] = []
  let wake: (() => void) | undefined
  let failure: unknown
  const onData = (chunk: Buffer) => {
    try {
      frames.push(...decoder.push(chunk))
    } catch (error) {
      failure = error
    }
    wake?.()
  }
  const onEnd = () => {
    failure ??= createError('ERR_NOISE_MALFORMED', 'the peer closed the link during the handshake')
    wake?.()
  }
  const onError = (error: unknown) => {
    failure ??= error
    wake?.()
  }
  duplex.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError)
  const timeout = setTimeout(() => onError(createError('ERR_HANDSHAKE_TIMEOUT', 'the Noise handshake did not finish in time')), init.handshakeTimeoutMs ?? 10_000)
  const onAbort = () => onError(createError('ERR_ABORTED', 'the handshake was aborted'))
  init.signal?.addEventListener('abort', onAbort, { once: true })
  const nextFrame = async (): Promise<Buffer> => {
    for (;;) {
      if (failure !== undefined) throw failure
      const frame = frames.shift()
      if (frame !== undefined) return frame
      await new Promise<void>((resolve) => (wake = resolve))
      wake = undefined
    }
  }

  try {
    if (init.signal?.aborted) throw createError('ERR_ABORTED', 'the handshake was aborted')
    let peerPayload: Buffer
    if (init.role === 'initiator') {
      duplex.write(encodeFrame(handshake.writeMessage()))
      peerPayload = handshake.readMessage(await nextFrame())
      duplex.write(encodeFrame(handshake.writeMessage(ownPayload(staticPublicKey))))
    } else {
      handshake.readMessage(await nextFrame())
      duplex.write(encodeFrame(handshake.writeMessage(ownPayload(staticPublicKey))))
      peerPayload = handshake.readMessage(await nextFrame())
    }
    const peer = decidePeer(peerPayload, handshake.remoteStaticPublicKey, init)
    const transport = handshake.intoTransport()
    // XX lets the initiator finish before the responder has judged it, so the responder confirms
    // with a first transport frame; until it arrives the initiator does not consider itself in.
    if (init.role === 'responder') {
      duplex.write(encodeFrame(transport.encrypt(Buffer.from([FRAME_READY]))))
    } else {
      let confirmation: Buffer
      try {
        confirmation = transport.decrypt(await nextFrame())
      } catch (error) {
        if (error instanceof ZtError && (error.code === 'ERR_HANDSHAKE_TIMEOUT' || error.code === 'ERR_ABORTED')) throw error
        throw createError('ERR_NOISE_REFUSED', 'the peer refused this device', { cause: error })
      }
      if (confirmation.length !== 1 || confirmation[0] !== FRAME_READY) throw createError('ERR_NOISE_MALFORMED', 'the peer did not confirm the handshake')
    }
    decoder.maxFrameLength = MAX_FRAME_LENGTH
    return new NoiseLinkStream(duplex, transport, decoder, frames, peer, pattern === 'XX_HYBRID', init)
  } catch (error) {
    duplex.destroy()
    throw error instanceof ZtError ? error : createError('ERR_NOISE_MALFORMED', 'the Noise handshake failed', { cause: error })
  } finally {
    clearTimeout(timeout)
    init.signal?.removeEventListener('abort', onAbort)
    duplex.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError)
  }
}

function decidePeer(payload: Buffer, remoteStatic: Buffer | undefined, init: NoiseLinkInit): PeerIdentity {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload.toString('utf8'))
  } catch {
    throw createError('ERR_NOISE_IDENTITY', 'the peer sent no identity')
  }
  const { v, chain, sig } = (parsed ?? {}) as { v?: unknown; chain?: unknown; sig?: unknown }
  if (v !== 1 || typeof chain !== 'string' || typeof sig !== 'string' || remoteStatic === undefined) {
    throw createError('ERR_NOISE_IDENTITY', 'the peer identity payload is malformed')
  }
  const peer = verifyPeer(chain, init.trust, init.revocations, init.policy ?? {})
  if (!verifyCertificateSignature(chain, Buffer.concat([IDENTITY_CONTEXT, remoteStatic]), Buffer.from(sig, 'base64'))) {
    throw createError('ERR_NOISE_IDENTITY', 'the certificate key did not sign this Noise static key')
  }
  return peer
}

class NoiseLinkStream extends Duplex implements SecureStream {
  readonly peer: PeerIdentity
  readonly protocol = 'noise' as const
  readonly kxGroup: string
  readonly postQuantum: boolean
  readonly #inner: Duplex
  readonly #transport: NoiseTransport
  readonly #decoder: FrameDecoder
  readonly #rekeyAfterMessages: number
  readonly #rekeyAfterMs: number
  #sentSinceRekey = 0
  #lastRekey = Date.now()
  readonly #scratch = Buffer.allocUnsafe(1 + MAX_PLAINTEXT)

  constructor(inner: Duplex, transport: NoiseTransport, decoder: FrameDecoder, early: Buffer[], peer: PeerIdentity, postQuantum: boolean, init: NoiseLinkInit) {
    super()
    this.#inner = inner
    this.#transport = transport
    this.#decoder = decoder
    this.peer = peer
    this.postQuantum = postQuantum
    this.kxGroup = postQuantum ? 'X25519MLKEM768' : 'X25519'
    this.#rekeyAfterMessages = init.rekeyAfterMessages ?? 65_536
    this.#rekeyAfterMs = init.rekeyAfterMs ?? 600_000
    for (const frame of early) this.#receive(frame)
    inner.on('data', (chunk: Buffer) => {
      let frames: Buffer[]
      try {
        frames = this.#decoder.push(chunk)
      } catch (error) {
        this.destroy(error as Error)
        return
      }
      for (const frame of frames) if (!this.#receive(frame)) return
    })
    inner.once('end', () => this.push(null))
    inner.once('error', (error) => this.destroy(error))
    inner.once('close', () => this.destroy())
  }

  /** Closes the link with `ERR_CERT_REVOKED` if the peer is now revoked; returns whether it did. */
  closeIfRevoked(revocations: RevocationSet): boolean {
    if (!revocations.isRevoked(this.peer.serial, this.peer.spkiSha256)) return false
    this.destroy(createError('ERR_CERT_REVOKED', 'the peer certificate was revoked'))
    return true
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      for (let at = 0; at < chunk.length; at += MAX_PLAINTEXT) this.#send(FRAME_DATA, chunk.subarray(at, at + MAX_PLAINTEXT))
      callback()
    } catch (error) {
      callback(error as Error)
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end(callback)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy()
    callback(error)
  }

  #send(type: number, body: Uint8Array): void {
    // The type byte and the body are assembled in a scratch buffer, then sealed straight into
    // the frame that goes to the socket: one copy and one allocation per frame.
    const scratch = this.#scratch
    scratch[0] = type
    scratch.set(body, 1)
    const frame = Buffer.allocUnsafe(2 + 1 + body.length + 16)
    const sealed = this.#transport.encryptInto(scratch.subarray(0, 1 + body.length), frame.subarray(2))
    frame.writeUInt16BE(sealed, 0)
    this.#inner.write(frame)
    if (type === FRAME_REKEY) {
      this.#transport.rekeyOutgoing()
      this.#sentSinceRekey = 0
      this.#lastRekey = Date.now()
    } else if (++this.#sentSinceRekey >= this.#rekeyAfterMessages || Date.now() - this.#lastRekey >= this.#rekeyAfterMs) {
      this.#send(FRAME_REKEY, Buffer.alloc(0))
    }
  }

  /** Decrypts and delivers one frame; false (and the stream destroyed) if it is bad. */
  #receive(frame: Buffer): boolean {
    let plaintext: Buffer
    try {
      plaintext = Buffer.allocUnsafe(Math.max(0, frame.length - 16))
      plaintext = plaintext.subarray(0, this.#transport.decryptInto(frame, plaintext))
    } catch (error) {
      this.destroy(error as Error)
      return false
    }
    const type = plaintext[0]
    if (type === FRAME_DATA) {
      if (plaintext.length > 1) this.push(plaintext.subarray(1))
      return true
    }
    if (type === FRAME_REKEY && plaintext.length === 1) {
      this.#transport.rekeyIncoming()
      return true
    }
    this.destroy(createError('ERR_NOISE_MALFORMED', 'the peer sent an unknown frame type'))
    return false
  }
}
