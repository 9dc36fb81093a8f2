/**
 * Mutual TLS 1.3 links (rustls in the core, sans-IO) as Node streams: the session lives in Rust,
 * this file only moves bytes between it and a socket.
 *
 * TLS 1.3 only, client certificates required (except on a server built with `anonymousClients`, and
 * from a client built with `TlsContext.anonymous`, which authenticates the server only), ALPN `ztmesh/1`, X25519MLKEM768 preferred with
 * X25519 fallback (`pq: 'require' | 'prefer' | 'off'`). Every peer is decided by the PKI's
 * `verifyPeer`; a refusal rejects with its PKI code (`ERR_CERT_REVOKED`, `ERR_TENANT_MISMATCH`…).
 */

import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

import { createError, ZtError } from '../errors.js'
import { native, nativeError, type NativeTlsSession } from '../native.js'
import { reserve, take } from '../slab.js'
import { credentialSigner, type DeviceCredential, type PeerIdentity, type PeerPolicy, type RevocationSet } from '../primitives/pki/index.js'
import { whenDrained } from './flow.js'
import type { SecureStream } from './noise-link.js'

/** Socket errors that mean the peer closed first (its end of the connection is gone). */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED'])

/** Options of {@link TlsContext}. */
export interface TlsContextInit {
  /** This device: its chain and its signer. */
  identity: DeviceCredential
  /** The trust anchors, PEM. */
  trustPem: string
  /** Who peers must be (tenant, device, pins). */
  policy?: Pick<PeerPolicy, 'expectedTenant' | 'expectedDevice' | 'pins'>
  pq?: 'require' | 'prefer' | 'off'
  resumption?: boolean
  /**
   * Servers: let clients present no certificate (default false). Their streams are established
   * with no peer (`peer` throws `ERR_UNAUTHENTICATED`): for the enrollment API, whose clients
   * prove themselves inside the protocol.
   */
  anonymousClients?: boolean
  /** Servers: the ALPN protocols offered (default `['ztmesh/1']`); a server for browsers offers `['http/1.1']`. */
  alpn?: string[]
}

/** Options of {@link TlsContext.anonymous}: who the server must be, known by a pinned root. */
export interface AnonymousTlsInit {
  /** SHA-256 of the root's SubjectPublicKeyInfo, hex: the server's chain must hold that root and lead to it. */
  rootFingerprint: string
  /** The tenant the server must belong to. */
  expectedTenant?: string
  /** The device id the server must have. */
  expectedDevice?: string
  /** A role the server's certificate must carry. */
  requiredRole?: string
  pq?: 'require' | 'prefer' | 'off'
}

/** A server or client TLS context: the settings every session of one side shares. */
export class TlsContext {
  readonly role: 'server' | 'client'
  readonly #server: InstanceType<typeof native.TlsServerContext> | undefined
  readonly #client: InstanceType<typeof native.TlsClientContext> | undefined

  /**
   * A client context with no certificate: it authenticates the server only, against the root
   * pinned by `rootFingerprint` (found in the chain the server presents), and refuses before any
   * data leaves (`ERR_CHAIN`, `ERR_TENANT_MISMATCH`, `ERR_DEVICE_MISMATCH`, `ERR_KEY_USAGE` for a
   * missing role).
   */
  static anonymous(init: AnonymousTlsInit): TlsContext {
    try {
      return new TlsContext('client', undefined, native.TlsClientContext.anonymous(init))
    } catch (error) {
      throw nativeError(error)
    }
  }

  constructor(role: 'server' | 'client', init: TlsContextInit)
  /** @internal */
  constructor(role: 'server' | 'client', init: TlsContextInit | undefined, client: InstanceType<typeof native.TlsClientContext>)
  constructor(role: 'server' | 'client', init: TlsContextInit | undefined, client?: InstanceType<typeof native.TlsClientContext>) {
    this.role = role
    if (init === undefined) {
      this.#client = client
      return
    }
    const nativeInit = {
      chainPem: init.identity.certificateChainPem,
      trustPem: init.trustPem,
      ...(init.pq !== undefined && { pq: init.pq }),
      ...(init.policy?.expectedTenant !== undefined && { expectedTenant: init.policy.expectedTenant }),
      ...(init.policy?.expectedDevice !== undefined && { expectedDevice: init.policy.expectedDevice }),
      ...(init.policy?.pins !== undefined && { pins: init.policy.pins }),
      ...(init.resumption !== undefined && { resumption: init.resumption }),
      ...(init.anonymousClients !== undefined && { anonymousClients: init.anonymousClients }),
      ...(init.alpn !== undefined && { alpn: init.alpn }),
    }
    const signer = credentialSigner(init.identity).native
    try {
      if (role === 'server') this.#server = new native.TlsServerContext(nativeInit, signer)
      else this.#client = new native.TlsClientContext(nativeInit, signer)
    } catch (error) {
      throw nativeError(error)
    }
  }

  /** Applies new revocations to every later handshake and voids resumption. */
  setRevocations(revocations: RevocationSet): void {
    ;(this.#server ?? this.#client)!.setRevocations(revocations.native)
  }

  /** @internal A new session. */
  session(deviceId?: string): NativeTlsSession {
    try {
      return this.#server !== undefined ? this.#server.accept() : this.#client!.connect(deviceId)
    } catch (error) {
      throw nativeError(error)
    }
  }
}

/** Options of {@link secureTls}. */
export interface SecureTlsInit {
  /** For clients: the device id of the server, if the context does not fix it. */
  serverDevice?: string
  handshakeTimeoutMs?: number
  signal?: AbortSignal
}

/**
 * Runs a TLS handshake on `socket` with a session of `context` and resolves with the secured
 * stream; rejects with the typed reason (and destroys the socket) otherwise.
 */
export function secureTls(socket: Socket | Duplex, context: TlsContext, init: SecureTlsInit = {}): Promise<SecureStream> {
  const stream = new TlsLinkStream(socket, context.session(init.serverDevice))
  return stream.handshake(init.handshakeTimeoutMs ?? 10_000, init.signal)
}

/** Room offered to the session per round of outgoing records. */
const OUTGOING_ROOM = 128 * 1024

class TlsLinkStream extends Duplex implements SecureStream {
  readonly protocol = 'tls' as const
  readonly #socket: Socket | Duplex
  readonly #session: NativeTlsSession
  #peer: PeerIdentity | undefined
  #established = false
  #settle: ((error?: unknown) => void) | undefined
  /** Plaintext bytes written since the last flush. */
  #unflushed = 0
  #flushQueued = false

  constructor(socket: Socket | Duplex, session: NativeTlsSession) {
    super()
    this.#socket = socket
    this.#session = session
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
    socket.once('end', () => {
      this.#fail(createError('ERR_TLS_CLOSED', 'the peer closed the connection'))
      this.push(null)
    })
    socket.on('error', (error) => this.#fail(error)) // every error, not the first only: a second one (EPIPE after a reset) must not reach the process
    socket.once('close', () => {
      this.#fail(createError('ERR_TLS_CLOSED', 'the connection closed'))
      this.destroy()
    })
    this.#flush()
  }

  get peer(): PeerIdentity {
    if (this.#peer === undefined) {
      if (this.#established) throw createError('ERR_UNAUTHENTICATED', 'the client presented no certificate')
      throw createError('ERR_TLS_HANDSHAKE', 'the handshake is not complete')
    }
    return this.#peer
  }

  /** The underlying socket's addresses (node:http reads them from the stream it serves). */
  get remoteAddress(): string | undefined {
    return (this.#socket as Partial<Socket>).remoteAddress
  }

  get remotePort(): number | undefined {
    return (this.#socket as Partial<Socket>).remotePort
  }

  get localAddress(): string | undefined {
    return (this.#socket as Partial<Socket>).localAddress
  }

  get localPort(): number | undefined {
    return (this.#socket as Partial<Socket>).localPort
  }

  get kxGroup(): string {
    return this.#session.kxGroup ?? 'unknown'
  }

  get cipher(): string {
    return this.#session.cipherSuite ?? 'unknown'
  }

  get postQuantum(): boolean {
    return this.#session.isPostQuantum
  }

  /** Whether this session was resumed from a ticket. */
  get resumed(): boolean {
    return this.#session.isResumed
  }

  closeIfRevoked(revocations: RevocationSet): boolean {
    if (!this.#session.isPeerRevoked(revocations.native)) return false
    this.destroy(createError('ERR_CERT_REVOKED', 'the peer certificate was revoked'))
    return true
  }

  handshake(timeoutMs: number, signal?: AbortSignal): Promise<SecureStream> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(createError('ERR_HANDSHAKE_TIMEOUT', 'the TLS handshake did not finish in time')), timeoutMs)
      const onAbort = () => this.#fail(createError('ERR_ABORTED', 'the handshake was aborted'))
      if (signal?.aborted) onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#settle = (error) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#settle = undefined
        if (error === undefined) resolve(this)
        else {
          this.#socket.destroy()
          reject(error instanceof ZtError ? error : createError('ERR_TLS_HANDSHAKE', 'the TLS handshake failed', { cause: error }))
        }
      }
      this.#checkEstablished()
    })
  }

  /** The reader wants more: let the socket flow again (it was paused when our buffer filled). */
  override _read(): void {
    if (this.#socket.isPaused()) this.#socket.resume()
  }

  /** Encrypts `chunk` at once and hands the records to the socket with the rest of the tick's;
   * when the socket's buffer is full, the next write waits for it to drain (backpressure). */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#writeChunk(chunk, callback)
  }

  #writeChunk(chunk: Buffer, callback: (error?: Error | null) => void): void {
    try {
      this.#session.writePlaintext(chunk)
    } catch (error) {
      callback(nativeError(error))
      return
    }
    this.#unflushed += chunk.length
    // The records of every write of this tick go out in one socket write (one syscall instead of
    // one per write) once the tick's work is done; past OUTGOING_ROOM they go at once, so what
    // waits is bounded. A socket asking to wait holds the next write back, as before.
    if (this.#unflushed >= OUTGOING_ROOM) {
      if (this.#flush()) callback()
      else whenDrained(this.#socket, callback)
      return
    }
    if (!this.#flushQueued) {
      this.#flushQueued = true
      process.nextTick(this.#flushLater)
    }
    if (this.#socket.writableNeedDrain) whenDrained(this.#socket, callback)
    else callback()
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false
    if (this.#unflushed > 0) this.#flush()
  }

  /** Several chunks at once (`ws` corks each frame's header and payload; Node batches what was
   * written while a write was pending): one plaintext call, so one record and one socket write
   * where there would be one of each per chunk. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#writeChunk(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#socket.destroyed) return callback() // the connection is gone: nothing left to end
    this.#session.sendCloseNotify()
    this.#flush()
    // A peer that is already gone cannot take our close_notify: ending is then done, not an
    // error (else a graceful end() raced by the peer's own close fails the stream).
    this.#socket.end((error?: Error | null) => callback(error !== undefined && error !== null && !PEER_GONE.has((error as NodeJS.ErrnoException).code ?? '') ? error : null))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy()
    callback(error)
  }

  #receive(chunk: Buffer): void {
    let plaintext: Buffer
    try {
      const out = reserve(this.#session.readLengthBound(chunk.length))
      plaintext = take(this.#session.readTlsInto(chunk, out))
    } catch (error) {
      this.#flush() // the alert that tells the peer why
      this.#fail(nativeError(error))
      return
    }
    this.#flush()
    this.#checkEstablished()
    // Past our high-water mark, stop reading the socket until the reader catches up.
    if (plaintext.length > 0 && !this.push(plaintext)) this.#socket.pause()
    if (this.#session.peerClosed) this.push(null)
  }

  #checkEstablished(): void {
    if (!this.#established && this.#session.isEstablished) {
      this.#established = true
      const peer = this.#session.peer
      if (peer !== null && peer !== undefined) this.#peer = peer
      this.#settle?.()
    }
  }

  /** Sends what the session has for the peer; false when the socket asks us to wait for 'drain'. */
  #flush(): boolean {
    this.#unflushed = 0
    let flowing = true
    // Each round moves up to OUTGOING_ROOM bytes; a 64 KiB write needs one.
    for (let round = 0; round < 1024 && this.#session.wantsWrite; round++) {
      const out = reserve(OUTGOING_ROOM)
      const written = this.#session.writeTlsInto(out)
      if (written === 0) break
      const records = take(written)
      if (!this.#socket.destroyed) flowing = this.#socket.write(records) && flowing
    }
    return flowing
  }

  #fail(error: unknown): void {
    if (this.#settle !== undefined) this.#settle(error)
    else if (!this.destroyed && error instanceof ZtError && error.code !== 'ERR_TLS_CLOSED') this.destroy(error)
  }
}

