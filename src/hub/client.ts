/**
 * A device's connection to a hub: a `ws` client whose transport is the project's mutual TLS
 * (`connectSecure`), so the hub knows the device from its certificate and the device knows the
 * hub from its own. The client publishes its signed presence lease at once and renews it before
 * it expires; it verifies every lease the hub forwards itself (a lease the hub rewrote or made
 * is refused, `refused` event) and drops presence whose lease expired. Signed objects relayed to
 * it are handed over as received: verify them (the signaling guard) before use.
 *
 * @example
 * ```ts
 * const client = await HubClient.connect({ host, port, identity, trustPem })
 * client.on('presence', ({ deviceId, online }) => …)
 * client.on('signal', ({ from, kind, object }) => guard.verifyOffer(object))
 * client.send('tablet-2', 'offer', signedOffer)
 * ```
 */

import { EventEmitter } from 'node:events'

import WebSocket from 'ws'

import { connectSecure, type SecureStream } from '../channels/index.js'
import { createError, ZtError, type ErrorCode } from '../errors.js'
import type { PolicyDecisionPoint } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, type DeviceCredential } from '../primitives/pki/index.js'
import { signPresenceLease, verifyPresenceLease, MAX_LEASE_MS } from '../protocol/index.js'
import { DEFAULT_MAX_OBJECT_BYTES, encodeFrame, HUB_PATH, maxFrameBytes, MAX_CRL_PEM, parseHubFrame, type SignalKind } from './frames.js'

/** Options of {@link HubClient.connect}. */
export interface HubClientInit {
  host: string
  port: number
  identity: DeviceCredential
  trustPem: string
  /** The hub's device id, if known (its certificate must name it). */
  serverDevice?: string
  signal?: AbortSignal
  /** Revocations leases are checked against (update with `setRevocations`). */
  revocations?: RevocationSet
  /** The decision point the hub's link goes through (default: the device's own tenant only). */
  access?: PolicyDecisionPoint
  /** Lease lifetime, ms (renewed at a third of it). Default 30 s; at most 10 minutes. */
  leaseMs?: number
  /** The largest object accepted, bytes. Default 32 KiB. */
  maxObjectBytes?: number
  handshakeTimeoutMs?: number
}

export interface HubSignal {
  /** The sender, as the hub's link authenticated it (still verify the object). */
  from: string
  kind: SignalKind
  object: Buffer
}

export interface HubPresence {
  deviceId: string
  online: boolean
}

/** A refusal: one the hub sent for a frame of ours, or a lease we refused. */
export interface HubRefusal {
  code: ErrorCode
  message: string
  /** The device a refused lease claimed to be. */
  deviceId?: string
  source: 'hub' | 'lease'
}

export interface HubClient {
  on(event: 'signal', listener: (m: HubSignal) => void): this
  on(event: 'presence', listener: (p: HubPresence) => void): this
  on(event: 'revoked', listener: (m: { crlPem: string }) => void): this
  on(event: 'refused', listener: (r: HubRefusal) => void): this
  on(event: 'close', listener: (code: number) => void): this
}

export class HubClient extends EventEmitter {
  readonly #ws: WebSocket
  readonly #link: SecureStream
  readonly #credential: DeviceCredential
  readonly #trust: TrustStore
  readonly #tenant: string
  readonly #deviceId: string
  readonly #hubId: string
  readonly #leaseMs: number
  readonly #maxObjectBytes: number
  readonly #leases = new Map<string, { seq: number; expiresAtMs: number }>()
  readonly #timer: NodeJS.Timeout
  #revocations: RevocationSet
  #seq = 0
  #renewAt = 0
  #closed: Promise<void>

  private constructor(ws: WebSocket, link: SecureStream, init: HubClientInit) {
    super()
    this.#ws = ws
    this.#link = link
    this.#credential = init.identity
    this.#trust = TrustStore.fromPem(init.trustPem)
    this.#revocations = init.revocations ?? new RevocationSet()
    const own = inspectCertificate(init.identity.certificateChainPem)
    this.#tenant = own.tenant!
    this.#deviceId = own.deviceId!
    this.#hubId = link.peer.deviceId
    this.#leaseMs = Math.min(init.leaseMs ?? 30_000, MAX_LEASE_MS)
    this.#maxObjectBytes = init.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES
    this.#closed = new Promise((resolve) =>
      ws.once('close', (code: number) => {
        clearInterval(this.#timer)
        for (const deviceId of [...this.#leases.keys()]) this.#offline(deviceId)
        this.emit('close', code)
        resolve()
      }),
    )
    ws.on('error', () => {})
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onFrame(data, isBinary))
    this.#timer = setInterval(() => this.#tick(), Math.min(1000, Math.max(50, this.#leaseMs / 10)))
    this.#timer.unref()
  }

  /** Connects over mutual TLS, opens the WebSocket and publishes this device's presence. */
  static async connect(init: HubClientInit): Promise<HubClient> {
    const link = await connectSecure({
      host: init.host,
      port: init.port,
      identity: init.identity,
      trustPem: init.trustPem,
      ...(init.serverDevice !== undefined && { serverDevice: init.serverDevice }),
      ...(init.signal !== undefined && { signal: init.signal }),
      ...(init.revocations !== undefined && { revocations: init.revocations }),
      ...(init.access !== undefined && { access: init.access }),
      ...(init.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: init.handshakeTimeoutMs }),
      service: 'hub',
    })
    const maxObjectBytes = init.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES
    const ws = new WebSocket(`ws://${init.host.includes(':') ? `[${init.host}]` : init.host}:${init.port}${HUB_PATH}`, {
      createConnection: () => link as never,
      perMessageDeflate: false,
      maxPayload: Math.max(maxFrameBytes(maxObjectBytes), MAX_CRL_PEM + 1024),
      handshakeTimeout: init.handshakeTimeoutMs ?? 10_000,
    })
    // Frames that come with the upgrade answer (the hub's presence snapshot) are emitted before
    // the promise below resumes: keep them for the client.
    const early: [Buffer, boolean][] = []
    ws.on('message', (data: Buffer, isBinary: boolean) => early.length < 10_000 && early.push([data, isBinary]))
    await new Promise<void>((resolve, reject) => {
      const fail = (error: unknown) => {
        ws.terminate()
        link.destroy()
        reject(error instanceof ZtError ? error : createError('ERR_UNREACHABLE', `the hub refused the WebSocket: ${(error as Error).message}`, { cause: error }))
      }
      ws.once('open', () => {
        ws.off('error', fail)
        resolve()
      })
      ws.once('error', fail)
      ws.once('unexpected-response', (_req, res) => fail(createError(res.statusCode === 429 ? 'ERR_HUB_TOO_MANY_CONNECTIONS' : 'ERR_BAD_RESPONSE', `the hub answered ${res.statusCode}`)))
      init.signal?.addEventListener('abort', () => fail(createError('ERR_ABORTED', 'the connection was aborted')), { once: true })
    })
    ws.removeAllListeners('message')
    const client = new HubClient(ws, link, init)
    for (const [data, isBinary] of early) client.#onFrame(data, isBinary)
    client.#renew()
    return client
  }

  /** The hub's id (its certificate's device id): what this device's leases name. */
  get hubId(): string {
    return this.#hubId
  }

  /** Sends a signed object to `to` of this device's tenant (`tenant`: only to show a refusal). */
  send(to: string, kind: SignalKind, object: Uint8Array, options: { tenant?: string } = {}): void {
    if (object.length > this.#maxObjectBytes) throw createError('ERR_HUB_FRAME_SIZE', `an object of ${object.length} bytes is over the limit of ${this.#maxObjectBytes}`)
    this.#sendRaw(encodeFrame({ type: 'signal', to, kind, object: Buffer.from(object.buffer, object.byteOffset, object.byteLength), ...(options.tenant !== undefined && { tenant: options.tenant }) }))
  }

  /** Sends text as is (tests of the hub's parser). */
  sendRaw(data: string | Buffer): void {
    this.#sendRaw(data)
  }

  #sendRaw(data: string | Buffer): void {
    if (this.#ws.readyState !== WebSocket.OPEN) throw createError('ERR_CLOSED', 'the hub connection is closed')
    this.#ws.send(data)
  }

  /** The devices whose verified lease is current. */
  peers(): string[] {
    const now = Date.now()
    return [...this.#leases].filter(([, lease]) => lease.expiresAtMs > now).map(([deviceId]) => deviceId)
  }

  /** New revocations: leases are checked against them from now on; a revoked peer goes offline. */
  setRevocations(revocations: RevocationSet): void {
    this.#revocations = revocations
    this.#link.closeIfRevoked(revocations)
  }

  /** Renews this device's lease now (the client also does so at a third of its lifetime). */
  renew(): void {
    this.#renew()
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) this.#ws.close(1000)
    const timer = setTimeout(() => this.#ws.terminate(), 2000)
    await this.#closed
    clearTimeout(timer)
    this.#link.destroy()
  }

  #renew(): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return
    const now = Date.now()
    this.#seq = Math.max(this.#seq + 1, now)
    const lease = signPresenceLease({ deviceId: this.#deviceId, tenant: this.#tenant, hubId: this.#hubId, seq: this.#seq, issuedAtMs: now, expiresAtMs: now + this.#leaseMs }, this.#credential)
    this.#renewAt = now + this.#leaseMs / 3
    this.#ws.send(encodeFrame({ type: 'presence', lease }))
  }

  #tick(): void {
    const now = Date.now()
    if (now >= this.#renewAt) this.#renew()
    for (const [deviceId, lease] of this.#leases) if (lease.expiresAtMs <= now) this.#offline(deviceId)
  }

  #offline(deviceId: string): void {
    if (this.#leases.delete(deviceId)) this.emit('presence', { deviceId, online: false } satisfies HubPresence)
  }

  #onFrame(data: Buffer, isBinary: boolean): void {
    let frame
    try {
      if (isBinary) throw createError('ERR_HUB_FRAME', 'hub frames are JSON text')
      frame = parseHubFrame(data, this.#maxObjectBytes)
    } catch (error) {
      this.emit('refused', { code: error instanceof ZtError ? error.code : 'ERR_HUB_FRAME', message: (error as Error).message, source: 'hub' } satisfies HubRefusal)
      return
    }
    switch (frame.type) {
      case 'signal':
        this.emit('signal', { from: frame.from, kind: frame.kind, object: frame.object } satisfies HubSignal)
        return
      case 'presence':
        return this.#onLease(frame.deviceId, frame.lease)
      case 'offline':
        return this.#offline(frame.deviceId)
      case 'revoked':
        this.emit('revoked', { crlPem: frame.crlPem })
        return
      case 'error':
        this.emit('refused', { code: frame.code, message: frame.message, source: 'hub' } satisfies HubRefusal)
        return
    }
  }

  /** Verifies a forwarded lease itself: the hub may drop presence, never make it. */
  #onLease(deviceId: string, bytes: Buffer): void {
    try {
      const { lease } = verifyPresenceLease(bytes, this.#trust, this.#revocations, { expectedTenant: this.#tenant })
      if (lease.deviceId !== deviceId) throw createError('ERR_PRESENCE_MISMATCH', `the hub forwarded the lease of ${lease.deviceId} as ${deviceId}`)
      const known = this.#leases.get(deviceId)
      if (known !== undefined && known.seq >= lease.seq) return
      this.#leases.set(deviceId, { seq: lease.seq, expiresAtMs: lease.expiresAtMs })
      if (known === undefined) this.emit('presence', { deviceId, online: true } satisfies HubPresence)
    } catch (error) {
      const code: ErrorCode = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
      this.emit('refused', { code, message: (error as Error).message, deviceId, source: 'lease' } satisfies HubRefusal)
    }
  }
}
