/**
 * The hub (seed 000, Scenario 4): a WebSocket server (`ws`) over the project's mutual TLS, so a
 * device's identity is its link's (`link.peer`), with no second login. It relays signed offers,
 * answers and candidates between devices of one tenant, stamping `from` with the link's device
 * id; keeps them for a device that is not present yet (bounded); forwards device-signed
 * presence leases; cuts revoked devices within a second of `setRevocations` (and re-checks every
 * second); and limits every certificate identity (offers per minute, frames per minute,
 * connections, frame size). Every connection and refusal is audited.
 *
 * Instances share presence and relay through a {@link Bus}: {@link MemoryBus} in one process,
 * {@link RedisBus} across machines. Channels: `hub/<tenant>/d/<device>` carries what is relayed
 * to one device, `hub/<tenant>/p` the tenant's presence, revocations and sync requests.
 *
 * The hub is not trusted with the objects it relays: receivers verify every signed object and
 * every lease themselves. A compromised hub can drop or delay, not forge.
 *
 * @example
 * ```ts
 * const hub = new HubServer({ identity, trustPem, audit: auditLog })
 * await hub.listen(7443, '127.0.0.1')
 * hub.setRevocations(revocations, crlPem) // cuts revoked devices, tells their tenants
 * ```
 */

import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'

import { WebSocketServer } from 'ws'

import { createSecureServer, type SecureServer, type SecureStream } from '../channels/index.js'
import { createError, ZtError, type ErrorCode } from '../errors.js'
import type { AuditEvent } from '../audit/index.js'
import type { AuditSink, PolicyDecisionPoint } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, type DeviceCredential, type PeerIdentity } from '../primitives/pki/index.js'
import { verifyPresenceLease } from '../protocol/index.js'
import { RateLimiter } from '../rate-limit.js'
import { MemoryBus, type Bus } from './bus.js'
import { base64Of, DEFAULT_MAX_OBJECT_BYTES, encodeFrame, HUB_PATH, maxFrameBytes, parseClientFrame, type HubFrame, type SignalKind } from './frames.js'

/** The hub's limits, each per certificate identity (tenant and device id), never per address. */
export interface HubLimits {
  /** Offers a device may send per minute (a token bucket with this burst). Default 60. */
  offersPerMinute?: number
  /** Frames of any kind a device may send per minute. Default 1,200. */
  framesPerMinute?: number
  /** Connections one device may hold at once on this instance. Default 4. */
  connectionsPerDevice?: number
  /** The largest signed object a frame may carry, bytes. Default 32 KiB. */
  maxObjectBytes?: number
  /** Refused frames after which a connection is closed. Default 32. */
  maxRefusals?: number
  /** Objects kept for a device that is not present yet, per device. Default 64. */
  pendingPerDevice?: number
  /** How long they are kept, ms. Default 30 s. */
  pendingTtlMs?: number
  /** Bytes kept for absent devices, per tenant. Default 1 MiB. */
  pendingBytesPerTenant?: number
}

/** Options of {@link HubServer}. */
export interface HubServerInit {
  /** The hub's own device credential (its TLS server identity). */
  identity: DeviceCredential
  /** Trust anchors, PEM: whose devices may connect, and whose leases verify. */
  trustPem: string
  /** Revocations in force at start; update with `setRevocations`. */
  revocations?: RevocationSet
  /** Shared with other instances; default a private {@link MemoryBus}. */
  bus?: Bus
  /** The one audit log (every connection and refusal). */
  audit?: AuditSink
  /**
   * The policy decision point each device link goes through (`link.accept`). Default: devices
   * of the hub's own tenant only. A multi-tenant hub passes a document naming its tenants;
   * relays stay within each device's tenant whatever it says.
   */
  access?: PolicyDecisionPoint
  limits?: HubLimits
  /** This instance's id in leases; default the hub certificate's device id. */
  hubId?: string
  /** How often live links are re-checked against the revocations, ms. Default 1,000. */
  revocationCheckMs?: number
  /** The TLS handshake's time limit, ms. Default 10 s. */
  handshakeTimeoutMs?: number
}


const AUDIT_CONNECT = 'hub.connect'
const AUDIT_SIGNAL = 'hub.signal'
const AUDIT_PRESENCE = 'hub.presence'
const AUDIT_REVOKED = 'hub.revoked'
const AUDIT_FRAME = 'hub.frame'

/**
 * What the hub needs of a client's socket: a `ws` WebSocket, or a stand-in for a client admitted
 * by {@link HubServer.admit} (the staff page, whose frames a gateway module carries).
 */
export interface HubSocket {
  readonly readyState: number
  readonly OPEN: number
  send(text: string): void
  close(code?: number, reason?: string): void
  terminate(): void
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): unknown
  on(event: 'close', listener: () => void): unknown
  on(event: 'error', listener: (error: Error & { code?: string }) => void): unknown
}

/** One device connection. */
interface Conn {
  readonly ws: HubSocket
  /** Closes the connection's transport if `revocations` name its peer; whether it did. */
  readonly closeIfRevoked: (revocations: RevocationSet) => boolean
  readonly peer: PeerIdentity
  readonly key: string
  refusals: number
  /** The last lease it sent that verified (republished on sync requests). */
  lease?: { bytes: Buffer; seq: number; expiresAtMs: number }
  /**
   * Frames that arrived while the connection was being attached (its bus subscriptions not yet
   * in place), handled in order once they are: a lease published before the tenant's
   * subscription would otherwise never reach this instance's presence table.
   */
  early?: { data: Buffer; isBinary: boolean }[]
}

/** What an instance knows of a tenant with local devices. */
interface TenantState {
  readonly leases: Map<string, { bytes: Buffer; seq: number; expiresAtMs: number }>
  readonly pending: Map<string, { message: Buffer; at: number }[]>
  pendingBytes: number
  unsubscribe?: () => Promise<void>
  devices: number
}

/** A bus message: internal to hub instances, JSON. */
type BusMessage =
  | { t: 'signal'; tenant: string; from: string; kind: SignalKind; object: string }
  | { t: 'presence'; deviceId: string; seq: number; expiresAtMs: number; lease: string }
  | { t: 'offline'; deviceId: string; seq: number }
  | { t: 'revoked'; crlPem: string }
  | { t: 'sync' }

export class HubServer {
  readonly #init: HubServerInit
  readonly #secure: SecureServer
  readonly #http: HttpServer
  readonly #wss: WebSocketServer
  readonly #bus: Bus
  readonly #ownBus: boolean
  readonly #trust: TrustStore
  readonly #hubId: string
  readonly #limits: Required<HubLimits>
  readonly #offers: RateLimiter
  readonly #frames: RateLimiter
  readonly #conns = new Map<string, Set<Conn>>()
  readonly #tenants = new Map<string, TenantState>()
  readonly #deviceSubs = new Map<string, Promise<() => Promise<void>>>()
  readonly #timer: NodeJS.Timeout
  #revocations: RevocationSet
  #closed = false

  constructor(init: HubServerInit) {
    this.#init = init
    const own = inspectCertificate(init.identity.certificateChainPem)
    this.#hubId = init.hubId ?? own.deviceId ?? 'hub'
    this.#trust = TrustStore.fromPem(init.trustPem)
    this.#revocations = init.revocations ?? new RevocationSet()
    this.#bus = init.bus ?? new MemoryBus()
    this.#ownBus = init.bus === undefined
    const l = init.limits ?? {}
    this.#limits = {
      offersPerMinute: l.offersPerMinute ?? 60,
      framesPerMinute: l.framesPerMinute ?? 1200,
      connectionsPerDevice: l.connectionsPerDevice ?? 4,
      maxObjectBytes: l.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES,
      maxRefusals: l.maxRefusals ?? 32,
      pendingPerDevice: l.pendingPerDevice ?? 64,
      pendingTtlMs: l.pendingTtlMs ?? 30_000,
      pendingBytesPerTenant: l.pendingBytesPerTenant ?? 1 << 20,
    }
    this.#offers = new RateLimiter({ perSecond: this.#limits.offersPerMinute / 60, burst: this.#limits.offersPerMinute, maxSources: 100_000 })
    this.#frames = new RateLimiter({ perSecond: this.#limits.framesPerMinute / 60, burst: this.#limits.framesPerMinute, maxSources: 100_000 })
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes(this.#limits.maxObjectBytes), perMessageDeflate: false, clientTracking: false })
    this.#http = createHttpServer((_request, response) => {
      response.writeHead(426, { 'content-type': 'application/json', upgrade: 'websocket' })
      response.end(JSON.stringify({ code: 'ERR_BAD_REQUEST', message: `the hub speaks WebSocket at ${HUB_PATH}` }))
    })
    this.#http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head))
    this.#http.on('clientError', (_error, socket: Duplex) => socket.destroy())
    this.#secure = createSecureServer(
      {
        identity: init.identity,
        trustPem: init.trustPem,
        revocations: this.#revocations,
        ...(init.access !== undefined && { access: init.access }),
        ...(init.audit !== undefined && { audit: init.audit }),
        ...(init.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: init.handshakeTimeoutMs }),
        service: 'hub',
      },
      (link) => this.#http.emit('connection', link),
      (error) => this.#audit({ actor: 'unknown', action: AUDIT_CONNECT, outcome: 'deny', reason: codeOf(error) }),
    )
    this.#timer = setInterval(() => this.#sweep(), init.revocationCheckMs ?? 1000)
    this.#timer.unref()
  }

  /** This instance's hub id (what leases name). */
  get hubId(): string {
    return this.#hubId
  }

  /** Live device connections on this instance. */
  get connections(): number {
    let n = 0
    for (const set of this.#conns.values()) n += set.size
    return n
  }

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return this.#secure.listen(port, host)
  }

  /**
   * Applies new revocations at once: new handshakes (reconnects) are refused, live links of
   * revoked devices are closed now (and re-checked every second), their presence is withdrawn,
   * and, with `crlPem`, the other devices of their tenants are sent it (`revoked`) so that they
   * apply it to their own links.
   */
  setRevocations(revocations: RevocationSet, crlPem?: string): void {
    this.#revocations = revocations
    this.#secure.setRevocations(revocations)
    const tenants = this.#cutRevoked()
    if (crlPem !== undefined) for (const tenant of tenants) this.#publishTenant(tenant, { t: 'revoked', crlPem })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    for (const set of this.#conns.values()) for (const conn of set) conn.ws.terminate()
    await this.#secure.close()
    for (const state of this.#tenants.values()) await state.unsubscribe?.().catch(() => {})
    for (const sub of this.#deviceSubs.values()) await (await sub.catch(() => async () => {}))().catch(() => {})
    this.#tenants.clear()
    this.#deviceSubs.clear()
    if (this.#ownBus) await this.#bus.close()
  }

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const link = socket as SecureStream
    const peer = link.peer
    if (peer === undefined || new URL(request.url ?? '/', 'http://hub.invalid').pathname !== HUB_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    const key = `${peer.tenant}/${peer.deviceId}`
    const detail = { tenant: peer.tenant, serial: peer.serial }
    if ((this.#conns.get(key)?.size ?? 0) >= this.#limits.connectionsPerDevice) {
      this.#audit({ actor: peer.deviceId, action: AUDIT_CONNECT, outcome: 'deny', reason: 'ERR_HUB_TOO_MANY_CONNECTIONS', detail })
      socket.end('HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const conn: Conn = { ws, closeIfRevoked: (revocations) => link.closeIfRevoked(revocations), peer, key, refusals: 0 }
      this.#audit({ actor: peer.deviceId, action: AUDIT_CONNECT, outcome: 'allow', reason: 'ok', detail })
      void this.#attach(conn)
    })
  }

  /**
   * Admits a client whose identity was proven by other means than its TLS link: the staff page,
   * whose WebCrypto key cannot be a TLS client certificate, after its signed challenge
   * (`src/staff/`). From here it is a device like any other: the same per-identity limits,
   * `from` stamped from `peer`, relays within its tenant, its leases verified, and
   * `closeIfRevoked` asked on every revocation cut. Refused (and audited) over the connection
   * limit: `ERR_HUB_TOO_MANY_CONNECTIONS` is thrown.
   */
  admit(peer: PeerIdentity, socket: HubSocket, closeIfRevoked: (revocations: RevocationSet) => boolean): void {
    const key = `${peer.tenant}/${peer.deviceId}`
    const detail = { tenant: peer.tenant, serial: peer.serial, via: 'challenge' }
    if (this.#closed) throw createError('ERR_CLOSED', 'the hub is closed')
    if ((this.#conns.get(key)?.size ?? 0) >= this.#limits.connectionsPerDevice) {
      this.#audit({ actor: peer.deviceId, action: AUDIT_CONNECT, outcome: 'deny', reason: 'ERR_HUB_TOO_MANY_CONNECTIONS', detail })
      throw createError('ERR_HUB_TOO_MANY_CONNECTIONS', 'this identity holds as many hub connections as allowed')
    }
    if (closeIfRevoked(this.#revocations)) {
      this.#audit({ actor: peer.deviceId, action: AUDIT_CONNECT, outcome: 'deny', reason: 'ERR_CERT_REVOKED', detail })
      throw createError('ERR_CERT_REVOKED', 'the certificate is revoked')
    }
    this.#audit({ actor: peer.deviceId, action: AUDIT_CONNECT, outcome: 'allow', reason: 'ok', detail })
    void this.#attach({ ws: socket, closeIfRevoked, peer, key, refusals: 0 })
  }

  async #attach(conn: Conn): Promise<void> {
    const { ws, peer, key } = conn
    let set = this.#conns.get(key)
    if (set === undefined) this.#conns.set(key, (set = new Set()))
    set.add(conn)
    ws.on('error', (error: Error & { code?: string }) => {
      const reason = error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'ERR_HUB_FRAME_SIZE' : 'ERR_HUB_FRAME'
      this.#audit({ actor: peer.deviceId, action: AUDIT_FRAME, outcome: 'deny', reason, detail: { tenant: peer.tenant, ws: error.code ?? 'error' } })
    })
    ws.on('close', () => this.#detach(conn))
    conn.early = []
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // Bounded: the frame budget is spent on arrival, as for every frame.
      if (conn.early === undefined) this.#onFrame(conn, data, isBinary)
      else if (this.#frames.take(conn.key)) conn.early.push({ data, isBinary })
      else this.#refuse(conn, AUDIT_FRAME, 'ERR_HUB_RATE_LIMITED', 'too many frames from this device')
    })
    // Subscribed before the device's frames are handled, so its lease and nothing relayed after
    // its presence is missed.
    const tenant = this.#tenant(peer.tenant)
    tenant.devices++
    try {
      await this.#subscribeDevice(key, peer.tenant, peer.deviceId)
      await this.#subscribeTenant(peer.tenant, tenant)
    } catch (error) {
      this.#refuse(conn, AUDIT_CONNECT, codeOf(error), 'the hub bus is unavailable')
      ws.close(1011)
      return
    }
    if (ws.readyState !== ws.OPEN) return
    const now = Date.now()
    for (const [deviceId, lease] of tenant.leases) {
      if (deviceId !== peer.deviceId && lease.expiresAtMs > now) this.#send(conn, { type: 'presence', deviceId, lease: lease.bytes })
    }
    const early = conn.early
    conn.early = undefined
    for (const frame of early) this.#onFrame(conn, frame.data, frame.isBinary, true)
  }

  #detach(conn: Conn): void {
    const set = this.#conns.get(conn.key)
    if (set === undefined || !set.delete(conn)) return
    const tenant = this.#tenants.get(conn.peer.tenant)
    if (tenant !== undefined) tenant.devices--
    if (set.size === 0) {
      this.#conns.delete(conn.key)
      const sub = this.#deviceSubs.get(conn.key)
      this.#deviceSubs.delete(conn.key)
      void sub?.then((unsubscribe) => unsubscribe()).catch(() => {})
      if (conn.lease !== undefined && !this.#closed) this.#publishTenant(conn.peer.tenant, { t: 'offline', deviceId: conn.peer.deviceId, seq: conn.lease.seq })
    }
    if (tenant !== undefined && tenant.devices <= 0 && !this.#closed) {
      this.#tenants.delete(conn.peer.tenant)
      void tenant.unsubscribe?.().catch(() => {})
    }
  }

  #onFrame(conn: Conn, data: Buffer, isBinary: boolean, counted = false): void {
    const { peer } = conn
    if (!counted && !this.#frames.take(conn.key)) return this.#refuse(conn, AUDIT_FRAME, 'ERR_HUB_RATE_LIMITED', 'too many frames from this device')
    if (isBinary) return this.#refuse(conn, AUDIT_FRAME, 'ERR_HUB_FRAME', 'hub frames are JSON text')
    let frame
    try {
      frame = parseClientFrame(data, this.#limits.maxObjectBytes)
    } catch (error) {
      return this.#refuse(conn, AUDIT_FRAME, codeOf(error), (error as Error).message)
    }
    if (frame.type === 'presence') return this.#onLease(conn, frame.lease)
    if (frame.tenant !== undefined && frame.tenant !== peer.tenant) {
      return this.#refuse(conn, AUDIT_SIGNAL, 'ERR_HUB_CROSS_TENANT', 'the hub relays only within your tenant', { to: frame.to, toTenant: frame.tenant })
    }
    if (frame.kind === 'offer' && !this.#offers.take(conn.key)) return this.#refuse(conn, AUDIT_SIGNAL, 'ERR_HUB_RATE_LIMITED', 'too many offers from this device')
    // `from` is the link's identity, never what the sender claims.
    const message: BusMessage = { t: 'signal', tenant: peer.tenant, from: peer.deviceId, kind: frame.kind, object: base64Of(frame.object) }
    this.#relay(peer.tenant, frame.to, Buffer.from(JSON.stringify(message)))
  }

  #onLease(conn: Conn, bytes: Buffer): void {
    const { peer } = conn
    let verified
    try {
      verified = verifyPresenceLease(bytes, this.#trust, this.#revocations, { expectedTenant: peer.tenant, expectedDevice: peer.deviceId })
      if (verified.peer.serial !== peer.serial) throw createError('ERR_PRESENCE_MISMATCH', 'the lease is signed under another certificate than the link')
      if (verified.lease.hubId !== this.#hubId) throw createError('ERR_PRESENCE_MISMATCH', `the lease names hub ${verified.lease.hubId}, not ${this.#hubId}`)
    } catch (error) {
      return this.#refuse(conn, AUDIT_PRESENCE, codeOf(error), (error as Error).message)
    }
    const { seq, expiresAtMs } = verified.lease
    if (conn.lease !== undefined && seq <= conn.lease.seq) return this.#refuse(conn, AUDIT_PRESENCE, 'ERR_PRESENCE_EXPIRED', 'a lease older than the last one')
    conn.lease = { bytes, seq, expiresAtMs }
    this.#publishTenant(peer.tenant, { t: 'presence', deviceId: peer.deviceId, seq, expiresAtMs, lease: bytes.toString('base64') })
  }

  /** Publishes to the device's channel if it is present anywhere, else keeps it (bounded) until it is. */
  #relay(tenantName: string, to: string, message: Buffer): void {
    const tenant = this.#tenants.get(tenantName)
    if (tenant === undefined) return
    const lease = tenant.leases.get(to)
    if (lease !== undefined && lease.expiresAtMs > Date.now()) {
      this.#bus.publish(deviceChannel(tenantName, to), message).catch(() => {})
      return
    }
    const queue = tenant.pending.get(to) ?? []
    if (queue.length >= this.#limits.pendingPerDevice) tenant.pendingBytes -= queue.shift()!.message.length
    while (tenant.pendingBytes + message.length > this.#limits.pendingBytesPerTenant && this.#dropOldestPending(tenant));
    if (tenant.pendingBytes + message.length > this.#limits.pendingBytesPerTenant) return
    queue.push({ message, at: Date.now() })
    tenant.pending.set(to, queue)
    tenant.pendingBytes += message.length
  }

  #dropOldestPending(tenant: TenantState): boolean {
    let oldest: { deviceId: string; at: number } | undefined
    for (const [deviceId, queue] of tenant.pending) if (queue[0] !== undefined && (oldest === undefined || queue[0].at < oldest.at)) oldest = { deviceId, at: queue[0].at }
    if (oldest === undefined) return false
    const queue = tenant.pending.get(oldest.deviceId)!
    tenant.pendingBytes -= queue.shift()!.message.length
    if (queue.length === 0) tenant.pending.delete(oldest.deviceId)
    return true
  }

  #tenant(name: string): TenantState {
    let state = this.#tenants.get(name)
    if (state === undefined) this.#tenants.set(name, (state = { leases: new Map(), pending: new Map(), pendingBytes: 0, devices: 0 }))
    return state
  }

  async #subscribeTenant(name: string, state: TenantState): Promise<void> {
    if (state.unsubscribe !== undefined) return
    const unsubscribe = await this.#bus.subscribe(tenantChannel(name), (message) => this.#onTenantMessage(name, message))
    if (state.unsubscribe !== undefined || this.#tenants.get(name) !== state) return void (await unsubscribe())
    state.unsubscribe = unsubscribe
    // Another instance may hold devices of this tenant already: ask them to republish their leases.
    this.#publishTenant(name, { t: 'sync' })
  }

  #subscribeDevice(key: string, tenant: string, deviceId: string): Promise<() => Promise<void>> {
    let sub = this.#deviceSubs.get(key)
    if (sub === undefined) {
      sub = this.#bus.subscribe(deviceChannel(tenant, deviceId), (message) => this.#onDeviceMessage(key, tenant, message))
      this.#deviceSubs.set(key, sub)
      sub.catch(() => this.#deviceSubs.get(key) === sub && this.#deviceSubs.delete(key))
    }
    return sub
  }

  #onDeviceMessage(key: string, tenant: string, raw: Buffer): void {
    const message = parseBus(raw)
    if (message?.t !== 'signal' || message.tenant !== tenant) return
    // The object stays in the base64 it was checked in: encoded once per relay, never decoded here.
    const text = JSON.stringify({ type: 'signal', from: message.from, kind: message.kind, object: message.object })
    for (const conn of this.#conns.get(key) ?? []) if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(text)
  }

  #onTenantMessage(tenant: string, raw: Buffer): void {
    const state = this.#tenants.get(tenant)
    const message = parseBus(raw)
    if (state === undefined || message === undefined) return
    switch (message.t) {
      case 'presence': {
        const known = state.leases.get(message.deviceId)
        if (known !== undefined && known.seq >= message.seq) return
        const bytes = Buffer.from(message.lease, 'base64')
        state.leases.set(message.deviceId, { bytes, seq: message.seq, expiresAtMs: message.expiresAtMs })
        this.#toTenant(tenant, { type: 'presence', deviceId: message.deviceId, lease: bytes }, message.deviceId)
        const queue = state.pending.get(message.deviceId)
        if (queue !== undefined) {
          state.pending.delete(message.deviceId)
          for (const item of queue) {
            state.pendingBytes -= item.message.length
            this.#bus.publish(deviceChannel(tenant, message.deviceId), item.message).catch(() => {})
          }
        }
        return
      }
      case 'offline': {
        const known = state.leases.get(message.deviceId)
        if (known === undefined || known.seq > message.seq) return
        // Still connected here (a second connection): the lease stands.
        if ((this.#conns.get(`${tenant}/${message.deviceId}`)?.size ?? 0) > 0 && message.seq !== Number.MAX_SAFE_INTEGER) return
        state.leases.delete(message.deviceId)
        this.#toTenant(tenant, { type: 'offline', deviceId: message.deviceId })
        return
      }
      case 'revoked':
        this.#toTenant(tenant, { type: 'revoked', crlPem: message.crlPem })
        return
      case 'sync':
        for (const [key, set] of this.#conns) {
          if (!key.startsWith(`${tenant}/`)) continue
          for (const conn of set) {
            if (conn.lease !== undefined && conn.lease.expiresAtMs > Date.now()) {
              this.#publishTenant(tenant, { t: 'presence', deviceId: conn.peer.deviceId, seq: conn.lease.seq, expiresAtMs: conn.lease.expiresAtMs, lease: conn.lease.bytes.toString('base64') })
            }
          }
        }
        return
    }
  }

  #toTenant(tenant: string, frame: HubFrame, except?: string): void {
    for (const [key, set] of this.#conns) {
      if (!key.startsWith(`${tenant}/`) || key === `${tenant}/${except}`) continue
      for (const conn of set) this.#send(conn, frame)
    }
  }

  #publishTenant(tenant: string, message: BusMessage): void {
    this.#bus.publish(tenantChannel(tenant), Buffer.from(JSON.stringify(message))).catch(() => {})
  }

  #send(conn: Conn, frame: HubFrame): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(encodeFrame(frame))
  }

  /** Refuses one frame: audited, told to the device, and the connection closed past `maxRefusals`. */
  #refuse(conn: Conn, action: string, code: ErrorCode, message: string, detail: Record<string, string> = {}): void {
    conn.refusals++
    this.#audit({ actor: conn.peer.deviceId, action, outcome: 'deny', reason: code, detail: { tenant: conn.peer.tenant, ...detail } })
    this.#send(conn, { type: 'error', code, message: message.slice(0, 512) })
    if (conn.refusals >= this.#limits.maxRefusals) conn.ws.close(1008, code)
  }

  /** Closes every live link the revocations name; returns the tenants that lost a device. */
  #cutRevoked(): Set<string> {
    const tenants = new Set<string>()
    for (const set of this.#conns.values()) {
      for (const conn of set) {
        if (!conn.closeIfRevoked(this.#revocations)) continue
        tenants.add(conn.peer.tenant)
        this.#audit({ actor: conn.peer.deviceId, action: AUDIT_REVOKED, outcome: 'deny', reason: 'ERR_CERT_REVOKED', detail: { tenant: conn.peer.tenant, serial: conn.peer.serial } })
        conn.ws.terminate()
        // Its presence ends now, on every instance, whatever its lease says.
        this.#publishTenant(conn.peer.tenant, { t: 'offline', deviceId: conn.peer.deviceId, seq: Number.MAX_SAFE_INTEGER })
      }
    }
    return tenants
  }

  #sweep(): void {
    this.#cutRevoked()
    const now = Date.now()
    for (const state of this.#tenants.values()) {
      for (const [deviceId, lease] of state.leases) if (lease.expiresAtMs <= now) state.leases.delete(deviceId)
      for (const [deviceId, queue] of state.pending) {
        while (queue[0] !== undefined && now - queue[0].at > this.#limits.pendingTtlMs) state.pendingBytes -= queue.shift()!.message.length
        if (queue.length === 0) state.pending.delete(deviceId)
      }
    }
  }

  #audit(event: AuditEvent): void {
    try {
      this.#init.audit?.append(event)
    } catch (error) {
      process.emitWarning(`the hub could not audit ${event.action}: ${(error as Error).message}`, { code: 'ZTMESH_HUB_AUDIT' })
    }
  }
}

function deviceChannel(tenant: string, deviceId: string): string {
  return `hub/${tenant}/d/${deviceId}`
}

function tenantChannel(tenant: string): string {
  return `hub/${tenant}/p`
}

function parseBus(raw: Buffer): BusMessage | undefined {
  try {
    const value = JSON.parse(raw.toString('utf8')) as BusMessage
    return typeof value === 'object' && value !== null && typeof value.t === 'string' ? value : undefined
  } catch {
    return undefined
  }
}

function codeOf(error: unknown): ErrorCode {
  return error instanceof ZtError ? error.code : 'ERR_INTERNAL'
}
