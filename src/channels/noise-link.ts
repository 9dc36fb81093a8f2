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
 * Handshake messages travel as `u16 length ‖ message` frames (at most 16 KiB each here). Then
 * the responder sends one confirmation message (`READY`: it has accepted the initiator), and
 * the data flows through the core's record layer ({@link NoiseRecordLayer}): `u16 length ‖
 * Noise message` records, where an empty message marks the sender's rekey. Rekeying happens
 * every `rekeyAfterMessages` records or `rekeyAfterMs`, whichever comes first.
 *
 * The stream honours backpressure both ways: it stops reading the underlying duplex while its
 * reader is behind, and holds writes while the duplex is full.
 */

import { Duplex } from 'node:stream'

import { generateX25519KeyPair, x25519PublicKey } from '../crypto/x25519.js'
import { createError, ZtError } from '../errors.js'
import { NOISE_PROTOCOLS, NoiseHandshake, noisePreferredCipher, type NoisePattern, type NoiseRecordLayer } from '../noise/index.js'
import { verifyCertificateSignature, verifyPeer, type PeerIdentity, type PeerPolicy, type RevocationSet, type TrustStore } from '../pki/index.js'
import { whenDrained } from './flow.js'
import { encodeFrame, FrameDecoder } from './framing.js'

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
  /**
   * The cipher. The initiator proposes it; a responder accepts it if it is its own setting or
   * its setting is `auto`. `auto` (default) proposes the faster one on this CPU
   * ({@link noisePreferredCipher}: AES-256-GCM with AES instructions, else ChaCha20-Poly1305).
   */
  cipher?: 'auto' | NoiseCipher
  /** This side's X25519 static key; a fresh one per link by default. */
  staticPrivateKey?: Uint8Array
  /** The whole handshake must finish within this many ms. Default 10 s. */
  handshakeTimeoutMs?: number
  signal?: AbortSignal
  /** Rekey after this many records sent. Default 65,536. */
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
  /** The record cipher: a TLS 1.3 suite such as `TLS13_AES_256_GCM_SHA384`, or the Noise cipher (`AESGCM`, `ChaChaPoly`). */
  readonly cipher: string
  readonly postQuantum: boolean
  /** Closes the link with `ERR_CERT_REVOKED` if `revocations` names the peer; returns whether it did. */
  closeIfRevoked(revocations: RevocationSet): boolean
}

/** A Noise cipher of the link. */
export type NoiseCipher = 'AESGCM' | 'ChaChaPoly'

const NOISE_CIPHERS: readonly NoiseCipher[] = ['AESGCM', 'ChaChaPoly']

/** The full name of the link protocol for a pattern and a cipher. */
function linkProtocol(pattern: 'XX_HYBRID' | 'XX', cipher: NoiseCipher): string {
  return NOISE_PROTOCOLS[`${pattern}${cipher === 'AESGCM' ? '_AESGCM' : ''}`]
}

const IDENTITY_CONTEXT = Buffer.from('ztmesh-noise-static-key:', 'utf8')
/** The responder's confirmation, its first transport message. */
const READY = 2
const HANDSHAKE_MAX_FRAME = 16 * 1024
/** Unread bytes allowed during the handshake: its frames, and the first records behind them. */
const HANDSHAKE_MAX_BUFFERED = 256 * 1024

/**
 * Runs the handshake over `duplex` and resolves with the secured stream, or rejects with a typed
 * error (`ERR_HANDSHAKE_TIMEOUT`, `ERR_ABORTED`, a PKI code such as `ERR_CERT_REVOKED`,
 * `ERR_NOISE_IDENTITY`, a Noise code) after destroying `duplex`.
 */
export async function wrapNoise(duplex: Duplex, init: NoiseLinkInit): Promise<SecureStream> {
  const pattern = init.pattern ?? 'XX_HYBRID'
  const cipher = init.cipher ?? 'auto'
  const staticKey = init.staticPrivateKey ?? generateX25519KeyPair().privateKey
  const staticPublicKey = x25519PublicKey(staticKey)
  // Handshake messages are small (the largest, with an ML-KEM ciphertext and a certificate
  // chain, is a few KiB): a peer cannot make us buffer 64 KiB before it authenticates.
  const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME)
  const ownPayload = (publicKey: Buffer) =>
    Buffer.from(JSON.stringify({ v: 1, chain: init.identity.certificateChainPem, sig: init.identity.sign(Buffer.concat([IDENTITY_CONTEXT, publicKey])).toString('base64') }))

  let wake: (() => void) | undefined
  let failure: unknown
  const onData = (chunk: Buffer) => {
    decoder.push(chunk)
    // The handshake is a few frames: a peer that sends far more before it is authenticated is
    // refused instead of buffered.
    if (decoder.buffered > HANDSHAKE_MAX_BUFFERED) failure ??= createError('ERR_FRAME_TOO_LARGE', 'the peer sent too much during the handshake')
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
      const frame = decoder.next()
      if (frame !== undefined) return frame
      await new Promise<void>((resolve) => (wake = resolve))
      wake = undefined
    }
  }

  try {
    if (init.signal?.aborted) throw createError('ERR_ABORTED', 'the handshake was aborted')
    // The initiator names the protocol in a first frame; the responder runs it if it accepts it.
    let protocol: string
    if (init.role === 'initiator') {
      protocol = linkProtocol(pattern, cipher === 'auto' ? noisePreferredCipher() : cipher)
      duplex.write(encodeFrame(Buffer.from(protocol, 'utf8')))
    } else {
      protocol = (await nextFrame()).toString('utf8')
      const accepted = (cipher === 'auto' ? NOISE_CIPHERS : [cipher]).map((c) => linkProtocol(pattern, c))
      if (!accepted.includes(protocol)) throw createError('ERR_NOISE_PROTOCOL', `the peer proposed a Noise protocol this side does not accept (it accepts ${accepted.join(', ')})`)
    }
    const handshake = NoiseHandshake[init.role]({ pattern: protocol as NoisePattern, staticPrivateKey: staticKey, prologue: Buffer.from('ztmesh/1') })
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
      duplex.write(encodeFrame(transport.encrypt(Buffer.from([READY]))))
    } else {
      let confirmation: Buffer
      try {
        confirmation = transport.decrypt(await nextFrame())
      } catch (error) {
        if (error instanceof ZtError && (error.code === 'ERR_HANDSHAKE_TIMEOUT' || error.code === 'ERR_ABORTED')) throw error
        throw createError('ERR_NOISE_REFUSED', 'the peer refused this device', { cause: error })
      }
      if (confirmation.length !== 1 || confirmation[0] !== READY) throw createError('ERR_NOISE_MALFORMED', 'the peer did not confirm the handshake')
    }
    const records = transport.intoRecordLayer({ afterRecords: init.rekeyAfterMessages, afterMs: init.rekeyAfterMs })
    return new NoiseLinkStream(duplex, records, decoder.takeRest(), peer, pattern === 'XX_HYBRID', protocol)
  } catch (error) {
    duplex.destroy()
    throw error instanceof ZtError ? error : createError('ERR_NOISE_MALFORMED', 'the Noise handshake failed', { cause: error })
  } finally {
    if (init.staticPrivateKey === undefined) staticKey.fill(0)
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
  readonly cipher: string
  readonly postQuantum: boolean
  readonly #inner: Duplex
  readonly #records: NoiseRecordLayer

  constructor(inner: Duplex, records: NoiseRecordLayer, early: Buffer, peer: PeerIdentity, postQuantum: boolean, protocol: string) {
    super()
    this.#inner = inner
    this.#records = records
    this.peer = peer
    this.postQuantum = postQuantum
    this.kxGroup = postQuantum ? 'X25519MLKEM768' : 'X25519'
    this.cipher = protocol.includes('_AESGCM_') ? 'AESGCM' : 'ChaChaPoly'
    if (early.length > 0) this.#receive(early)
    inner.on('data', (chunk: Buffer) => this.#receive(chunk))
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

  /** The reader wants more: let the duplex flow again (it was paused when our buffer filled). */
  override _read(): void {
    if (this.#inner.isPaused()) this.#inner.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let records: Buffer
    try {
      records = this.#records.seal(chunk)
    } catch (error) {
      callback(error as Error)
      return
    }
    if (records.length === 0 || this.#inner.write(records)) callback()
    else whenDrained(this.#inner, callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end(callback)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy()
    callback(error)
  }

  /** Opens what `chunk` completes and delivers it; a bad record destroys the stream. */
  #receive(chunk: Buffer): void {
    if (this.destroyed) return
    let plaintext: Buffer
    try {
      plaintext = this.#records.open(chunk)
    } catch (error) {
      this.destroy(error as Error)
      return
    }
    // Past our high-water mark, stop reading the duplex until the reader catches up.
    if (plaintext.length > 0 && !this.push(plaintext)) this.#inner.pause()
  }
}

