/**
 * A Noise link over any duplex (TCP, a WebSocket stream, a WebRTC data channel): the XX
 * handshake (post-quantum hybrid by default) bound to device certificates, then an encrypted,
 * framed, rekeyed stream.
 *
 * The whole protocol (the protocol proposal, the handshake frames, the identities and their
 * binding to the Noise static keys, the confirmation, the records) lives in the Rust core
 * (`ztmesh_core::link`, described in docs/noise-link.md); this file only moves bytes between a
 * duplex and it: one native call per chunk received. The peer's chain is decided by the PKI's
 * `verify_peer` rules, and its certificate key must have signed this session's static key.
 * Certificate chains travel only under keys that include the ML-KEM secret (hybrid mode).
 *
 * The stream honours backpressure both ways: it stops reading the underlying duplex while its
 * reader is behind, and holds writes while the duplex is full.
 */

import { Duplex } from 'node:stream'

import { createError, ZtError } from '../errors.js'
import { native, nativeError, type NativeNoiseLinkContext, type NativeNoiseLinkHandshake } from '../native.js'
import { NoiseRecordLayer } from '../primitives/noise/index.js'
import { credentialSigner, type DeviceCredential, type PeerIdentity, type PeerPolicy, type RevocationSet, type TrustStore } from '../primitives/pki/index.js'
import { whenDrained } from './flow.js'

/** Options of {@link wrapNoise}. */
export interface NoiseLinkInit {
  role: 'initiator' | 'responder'
  /** This device: its chain and its signer. */
  identity: DeviceCredential
  trust: TrustStore
  /** The revocations in force at start (a context replaces them with `setRevocations`). */
  revocations: RevocationSet
  /** Who the peer must be (expected tenant, device, pins). */
  policy?: Pick<PeerPolicy, 'expectedTenant' | 'expectedDevice' | 'pins'>
  /** `XX_HYBRID` (default: X25519 + ML-KEM-768) or `XX` (classical). */
  pattern?: 'XX_HYBRID' | 'XX'
  /**
   * The cipher. The initiator proposes it; a responder accepts it if it is its own setting or
   * its setting is `auto`. `auto` (default) proposes the faster one on this CPU
   * (AES-256-GCM with AES instructions, else ChaCha20-Poly1305).
   */
  cipher?: 'auto' | NoiseCipher
  /** This side's X25519 static key; a fresh one per link by default (links stay unlinkable). */
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

/** The settings every link of one side shares; build one per identity, trust and policy. */
export type NoiseLinkContextInit = Omit<NoiseLinkInit, 'role' | 'staticPrivateKey' | 'handshakeTimeoutMs' | 'signal'>

/**
 * One side's Noise link settings, in native memory: its credentials (the key is copied into a
 * native signer), trust, revocations and rules. {@link NoiseLinkContext.setRevocations} replaces
 * the revocations for every link of the context, handshakes under way included.
 */
export class NoiseLinkContext {
  readonly #native: NativeNoiseLinkContext

  constructor(init: NoiseLinkContextInit) {
    const nativeInit = {
      chainPem: init.identity.certificateChainPem,
      ...(init.policy?.expectedTenant !== undefined && { expectedTenant: init.policy.expectedTenant }),
      ...(init.policy?.expectedDevice !== undefined && { expectedDevice: init.policy.expectedDevice }),
      ...(init.policy?.pins !== undefined && { pins: init.policy.pins }),
      ...(init.pattern !== undefined && { pattern: init.pattern }),
      ...(init.cipher !== undefined && { cipher: init.cipher }),
      ...(init.rekeyAfterMessages !== undefined && { rekeyAfterRecords: init.rekeyAfterMessages }),
      ...(init.rekeyAfterMs !== undefined && { rekeyAfterMs: init.rekeyAfterMs }),
    }
    const signer = credentialSigner(init.identity).native
    try {
      this.#native = new native.NoiseLinkContext(nativeInit, init.trust.native, init.revocations.native, signer)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /**
   * Replaces the revocations: every peer decided from now on is decided under them, on the
   * handshakes already under way too (a peer revoked while its handshake is held back is refused).
   * Live links are not closed here: `LiveLinks.apply` does that.
   */
  setRevocations(revocations: RevocationSet): void {
    this.#native.setRevocations(revocations.native)
  }

  /** @internal A new handshake. */
  handshake(role: 'initiator' | 'responder', staticPrivateKey?: Uint8Array): NativeNoiseLinkHandshake {
    const key = staticPrivateKey === undefined ? undefined : Buffer.from(staticPrivateKey)
    try {
      return role === 'initiator' ? this.#native.initiator(key) : this.#native.responder(key)
    } catch (error) {
      throw nativeError(error)
    } finally {
      key?.fill(0)
    }
  }
}

/**
 * Runs the handshake over `duplex` and resolves with the secured stream, or rejects with a typed
 * error (`ERR_HANDSHAKE_TIMEOUT`, `ERR_ABORTED`, a PKI code such as `ERR_CERT_REVOKED`,
 * `ERR_NOISE_IDENTITY`, `ERR_NOISE_REFUSED`, `ERR_FRAME_TOO_LARGE`, a Noise code) after
 * destroying `duplex`.
 *
 * @example
 * ```ts
 * const link = await wrapNoise(socket, { role: 'initiator', identity: device.credential(), trust, revocations, policy: { expectedTenant: 'hotel-1' } })
 * link.peer.deviceId // verified
 * ```
 */
export function wrapNoise(duplex: Duplex, init: NoiseLinkInit): Promise<SecureStream> {
  let context: NoiseLinkContext
  try {
    context = new NoiseLinkContext(init)
  } catch (error) {
    duplex.destroy()
    return Promise.reject(error)
  }
  return secureNoise(duplex, context, init.role, init)
}

const EMPTY = Buffer.alloc(0)

/**
 * @internal Runs a link handshake of `context` over `duplex` (what {@link wrapNoise} does with a
 * context of its own; endpoints share one context between their links).
 */
export function secureNoise(
  duplex: Duplex,
  context: NoiseLinkContext,
  role: 'initiator' | 'responder',
  options: Pick<NoiseLinkInit, 'staticPrivateKey' | 'handshakeTimeoutMs' | 'signal'> = {},
): Promise<SecureStream> {
  return new Promise<SecureStream>((resolve, reject) => {
    let handshake: NativeNoiseLinkHandshake | undefined
    let settled = false
    const finish = (error?: unknown) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      duplex.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError)
      if (error === undefined && handshake !== undefined) {
        try {
          const [protocol, peer] = [handshake.protocol ?? '', handshake.peer!]
          const records = new NoiseRecordLayer(handshake.intoRecordLayer())
          resolve(new NoiseLinkStream(duplex, records, handshake.takeRest(), peer, protocol))
          return
        } catch (failure) {
          error = nativeError(failure)
        }
      }
      duplex.destroy()
      reject(error instanceof ZtError ? error : createError('ERR_NOISE_MALFORMED', 'the Noise handshake failed', { cause: error }))
    }
    // One native call per chunk: it consumes the frames, answers, and decides the peer.
    const onData = (chunk: Buffer) => {
      if (settled || handshake === undefined) return
      let out: Buffer
      try {
        out = handshake.feed(chunk)
      } catch (error) {
        return finish(nativeError(error))
      }
      if (out.length > 0) duplex.write(out)
      if (handshake.isEstablished) finish()
    }
    const onEnd = () => {
      try {
        handshake?.peerClosed()
        finish(createError('ERR_CLOSED', 'the link closed during the handshake'))
      } catch (error) {
        finish(nativeError(error))
      }
    }
    // A reset means what an orderly close means at this point (an initiator was refused…).
    const onError = (error: unknown) => (error instanceof ZtError ? finish(error) : onEnd())
    const onAbort = () => finish(createError('ERR_ABORTED', 'the handshake was aborted'))
    const timer = setTimeout(() => finish(createError('ERR_HANDSHAKE_TIMEOUT', 'the Noise handshake did not finish in time')), options.handshakeTimeoutMs ?? 10_000)
    if (options.signal?.aborted) return onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      handshake = context.handshake(role, options.staticPrivateKey)
    } catch (error) {
      return finish(error)
    }
    duplex.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError)
    onData(EMPTY) // the initiator's first flight
  })
}

class NoiseLinkStream extends Duplex implements SecureStream {
  readonly peer: PeerIdentity
  readonly protocol = 'noise' as const
  readonly kxGroup: string
  readonly cipher: string
  readonly postQuantum: boolean
  readonly #inner: Duplex
  readonly #records: NoiseRecordLayer

  constructor(inner: Duplex, records: NoiseRecordLayer, early: Buffer, peer: PeerIdentity, protocol: string) {
    super()
    this.#inner = inner
    this.#records = records
    this.peer = peer
    this.postQuantum = protocol.endsWith('+MLKEM768')
    this.kxGroup = this.postQuantum ? 'X25519MLKEM768' : 'X25519'
    this.cipher = protocol.includes('_AESGCM_') ? 'AESGCM' : 'ChaChaPoly'
    if (early.length > 0) this.#receive(early)
    inner.on('data', (chunk: Buffer) => this.#receive(chunk))
    inner.once('end', () => this.push(null))
    inner.once('error', (error) => this.destroy(error))
    inner.once('close', () => this.destroy())
  }

  /** Closes the link with `ERR_CERT_REVOKED` if the peer is now revoked; returns whether it did. */
  closeIfRevoked(revocations: RevocationSet): boolean {
    if (!revocations.isRevoked(this.peer.serial, this.peer.spkiSha256, this.peer.issuerKeyId)) return false
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

