/**
 * The staff page's server (seed 000's staff tablet), run by the gateway on its own listener
 * (`staff.listen`): HTTPS over the core's TLS 1.3 with the gateway's own certificate (ALPN
 * `http/1.1`, anonymous clients: a browser has no certificate to present), serving
 *
 * - `GET /staff/` and `/staff/app.js`: the page, which makes a **non-extractable** WebCrypto
 *   ECDSA P-256 key and a CSR for it (@peculiar/x509, served from node_modules with
 *   reflect-metadata);
 * - `POST /staff/v1/enroll {token, csr}` → `{chainPem, identity}`: a one-time token's
 *   enrollment, the token's proof computed here by the core exactly as a device computes it
 *   (`enrollRequestFor`), then the CA service's one enrollment path (roles come from the token:
 *   issue staff tokens with role `staff`);
 * - `GET /staff/v1/ws` (WebSocket): the page's hub connection. The page sends its chain; the
 *   gateway sends a fresh challenge of this hub (`hubChallenge`, label `hub-challenge`) as the
 *   exact bytes to sign; the page signs them with its key; the core assembles and verifies the
 *   answer (`verifyHubChallenge`: the bytes issued on this connection, their age, `verifyPeer`
 *   with the tenant and revocations, the signature), the certificate must carry the staff role,
 *   and only then is the socket admitted to the hub (`HubServer.admit`) as that identity. One
 *   answer per connection: a second, a replayed or a forged one is refused and audited.
 *
 * After admission the page asks the gateway to prepare what it signs (its presence lease, its
 * offers: the core builds, dates and nonces them), signs `toBeSigned` with its key, and the core
 * assembles and verifies the object before it enters the hub. Answers to the page are verified
 * by a `SignalingGuard` for the page's identity, and the page gets what the guard verified.
 *
 * Why this is sound: the gateway serves the page's code, so it is already trusted with
 * everything the page does; preparing on its side adds no power (it could serve a page that
 * signs anything). What it cannot do is sign: each object still needs the page's
 * non-extractable key, so a compromised gateway can make the browser sign only while the
 * browser is connected, and every object stays attributable to that key and verifiable by any
 * receiver. A device receiving the page's offer verifies it like any other (`SignalingGuard`).
 */

import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import type { Duplex } from 'node:stream'
import { EventEmitter } from 'node:events'

import { WebSocketServer, type WebSocket } from 'ws'

import type { AuditEvent } from '../audit/index.js'
import { sendError, sendJson } from '../ca/http.js'
import type { Enrollment } from '../ca/index.js'
import { secureTls, TlsContext } from '../channels/index.js'
import { createError, ZtError, type ErrorCode } from '../errors.js'
import { encodeFrame, parseHubFrame, type HubServer } from '../hub/index.js'
import type { AuditSink } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, verifyPeer, type DeviceCredential, type PeerIdentity } from '../primitives/pki/index.js'
import {
  assemble,
  enrollRequestFor,
  hubChallenge,
  prepareObject,
  prepareOffer,
  preparePresenceLease,
  toBeSigned,
  verifyHubChallenge,
  verifyObject,
  verifyPresenceLease,
  type EnrollRequest,
  type PreparedObject,
} from '../protocol/index.js'
import { RateLimiter } from '../rate-limit.js'
import { SignalingGuard } from '../signaling/index.js'
import {
  AUDIT_STAFF_ENROLL,
  AUDIT_STAFF_FRAME,
  AUDIT_STAFF_JOIN,
  DEFAULT_CHALLENGE_MAX_AGE_MS,
  DEFAULT_STAFF_ROLE,
  MAX_PENDING_SIGNATURES,
  MAX_STAFF_FRAME_BYTES,
  STAFF_LEASE_MS,
  STAFF_ROUTES,
} from './constants.js'
import { parsePageFrame, type PageFrame } from './frames.js'

/** What the staff server needs of the CA: its one enrollment path (`CaService` is one). */
export interface StaffEnroller {
  enroll(request: EnrollRequest, actor: string): Enrollment
}

/** Options of {@link StaffServer}. */
export interface StaffServerInit {
  /** The CA service that enrolls the page's key. */
  ca: StaffEnroller
  /** The hub the page joins. */
  hub: HubServer
  /** The gateway's identity: the page's HTTPS certificate. */
  identity: DeviceCredential
  /** Trust anchors, PEM. */
  trustPem: string
  /** The site's tenant: the only tenant whose staff may join. */
  tenant: string
  revocations?: RevocationSet
  /** The one audit log. */
  audit?: AuditSink
  /** The role a staff certificate must carry (default `staff`). */
  role?: string
  /** How long a challenge may be answered, ms (default 30 s). */
  challengeMaxAgeMs?: number
  handshakeTimeoutMs?: number
}

/**
 * The staff page's HTTPS and WebSocket server; see the module documentation.
 *
 * @example
 * ```ts
 * const staff = new StaffServer({ ca, hub, identity, trustPem: ca.trustBundle(), tenant: 'hotel-1', audit })
 * const { port } = await staff.listen(9443, '127.0.0.1') // https://127.0.0.1:9443/staff/
 * ```
 */
export class StaffServer {
  readonly #init: StaffServerInit
  readonly #net: NetServer
  readonly #http: HttpServer
  readonly #wss: WebSocketServer
  #tls: TlsContext
  /** The chain #tls presents: rebuilt when the gateway's identity was renewed. */
  #tlsChain: string
  readonly #trust: TrustStore
  readonly #limiter = new RateLimiter({ perSecond: 1, burst: 10 })
  /** @internal Frames per admitted identity (prepare and signed): as the hub's own frame limit. */
  readonly frames = new RateLimiter({ perSecond: 20, burst: 200, maxSources: 100_000 })
  readonly #sessions = new Set<StaffSession>()
  readonly #sockets = new Set<Duplex>()
  readonly #assets: Map<string, { type: string; body: Buffer }>
  #revocations: RevocationSet

  constructor(init: StaffServerInit) {
    this.#init = init
    this.#trust = TrustStore.fromPem(init.trustPem)
    this.#revocations = init.revocations ?? new RevocationSet()
    this.#assets = loadAssets()
    this.#tlsChain = init.identity.certificateChainPem
    this.#tls = pageTls(init)
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_STAFF_FRAME_BYTES, perMessageDeflate: false, clientTracking: false })
    this.#http = createHttpServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, (request, response) => void this.#handle(request, response))
    this.#http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head))
    this.#http.on('clientError', (_error, socket: Duplex) => socket.destroy())
    this.#net = createNetServer((socket: Socket) => {
      socket.on('error', () => {})
      if (init.identity.certificateChainPem !== this.#tlsChain) {
        // The gateway's identity was renewed: new connections get the new certificate.
        this.#tlsChain = init.identity.certificateChainPem
        this.#tls = pageTls(init)
      }
      secureTls(socket, this.#tls, { handshakeTimeoutMs: init.handshakeTimeoutMs ?? 10_000 }).then(
        (stream) => {
          this.#sockets.add(stream)
          stream.once('close', () => this.#sockets.delete(stream))
          this.#http.emit('connection', stream)
        },
        () => {},
      )
    })
  }

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#net.once('error', reject)
      this.#net.listen(port, host, () => {
        this.#net.off('error', reject)
        resolve(this.#net.address() as AddressInfo)
      })
    })
  }

  /** New revocations: sessions of revoked staff are cut by the hub; guards decide under them. */
  setRevocations(revocations: RevocationSet): void {
    this.#revocations = revocations
    for (const session of this.#sessions) session.setRevocations(revocations)
  }

  /** @internal For the sessions. */
  get revocations(): RevocationSet {
    return this.#revocations
  }

  /** @internal For the sessions. */
  get trust(): TrustStore {
    return this.#trust
  }

  /** @internal For the sessions. */
  get init(): StaffServerInit {
    return this.#init
  }

  async close(): Promise<void> {
    for (const session of this.#sessions) session.close()
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.#net.close(resolve))
  }

  /** @internal For the sessions. */
  audit(event: AuditEvent): void {
    try {
      this.#init.audit?.append(event)
    } catch (error) {
      process.emitWarning(`the staff server could not audit ${event.action}: ${(error as Error).message}`, { code: 'ZTMESH_STAFF_AUDIT' })
    }
  }

  /** @internal For the sessions. */
  forget(session: StaffSession): void {
    this.#sessions.delete(session)
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'https://staff.invalid')
    const asset = request.method === 'GET' ? this.#assets.get(url.pathname) : undefined
    if (asset !== undefined) {
      response.writeHead(200, {
        'content-type': asset.type,
        'content-length': asset.body.length,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "default-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
      })
      return void response.end(asset.body)
    }
    if (request.method === 'POST' && url.pathname === STAFF_ROUTES.enroll) return this.#enroll(request, response)
    if (request.method === 'GET' && url.pathname === '/favicon.ico') return void response.writeHead(204).end()
    sendError(response, createError('ERR_NOT_FOUND', 'no such route'))
  }

  async #enroll(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const source = request.socket.remoteAddress ?? 'unknown'
    const refuse = (code: ErrorCode, message: string): void => {
      this.audit({ actor: source, action: AUDIT_STAFF_ENROLL, outcome: 'deny', reason: code })
      sendError(response, createError(code, message))
    }
    if (!this.#limiter.take(source)) return refuse('ERR_RATE_LIMITED', 'too many enrollments from this address')
    let body: { token: string; csr: string }
    try {
      body = parseEnrollBody(await readBody(request, 16 * 1024))
    } catch (error) {
      return refuse(error instanceof ZtError ? error.code : 'ERR_BAD_REQUEST', (error as Error).message)
    }
    try {
      // The token's proof over the CSR is computed by the core, exactly as a device does.
      const enrollment = this.#init.ca.enroll(enrollRequestFor(body.token, body.csr), `staff:${source}`)
      const facts = inspectCertificate(enrollment.certificate)
      sendJson(response, 200, {
        chainPem: `${enrollment.certificate.trim()}\n${enrollment.caChain.trim()}\n`,
        identity: { deviceId: facts.deviceId, tenant: facts.tenant, roles: facts.roles, serial: facts.serial },
      })
    } catch (error) {
      // The CA service audits its own refusals; a token the core cannot read never reached it.
      if (error instanceof ZtError && error.code.startsWith('ERR_TOKEN')) this.audit({ actor: source, action: AUDIT_STAFF_ENROLL, outcome: 'deny', reason: error.code })
      sendError(response, error)
    }
  }

  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (new URL(request.url ?? '/', 'https://staff.invalid').pathname !== STAFF_ROUTES.socket) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
      return
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const session = new StaffSession(this, ws, request.socket.remoteAddress ?? 'unknown')
      this.#sessions.add(session)
    })
  }
}

/**
 * One page's WebSocket: unauthenticated until its challenge answer verifies, then a hub client
 * as its certificate's identity. Its stand-in socket (`HubSocket`) carries the hub's frames.
 */
class StaffSession {
  readonly #server: StaffServer
  readonly #ws: WebSocket
  readonly #source: string
  readonly #pending = new Map<number, { prepared: PreparedObject; what: 'offer' | 'presence'; to?: string }>()
  /** The last offer digest sent to each device: the answer the guard expects. */
  readonly #offers = new Map<string, string>()
  #state: 'hello' | 'challenged' | 'admitted' | 'closed' = 'hello'
  #chain = ''
  #challenge: { issued: Buffer; prepared: PreparedObject } | undefined
  #peer: PeerIdentity | undefined
  #guard: SignalingGuard | undefined
  #hubSocket: HubSocketShim | undefined
  #seq = 0
  readonly #joinTimer: NodeJS.Timeout

  constructor(server: StaffServer, ws: WebSocket, source: string) {
    this.#server = server
    this.#ws = ws
    this.#source = source
    // A socket that does not complete its challenge in time is closed: no idle unauthenticated sockets.
    this.#joinTimer = setTimeout(() => {
      if (this.#state === 'hello' || this.#state === 'challenged') this.#refuse(AUDIT_STAFF_JOIN, createError('ERR_TIMEOUT', 'the challenge was not answered in time'))
    }, server.init.challengeMaxAgeMs ?? DEFAULT_CHALLENGE_MAX_AGE_MS)
    this.#joinTimer.unref()
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onFrame(data, isBinary))
    ws.on('error', () => {})
    ws.on('close', () => {
      clearTimeout(this.#joinTimer)
      this.#state = 'closed'
      this.#hubSocket?.closed()
      this.#server.forget(this)
    })
  }

  setRevocations(revocations: RevocationSet): void {
    this.#guard?.setRevocations(revocations)
  }

  close(): void {
    this.#ws.terminate()
  }

  #send(frame: Record<string, unknown>): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(JSON.stringify(frame))
  }

  #actor(): string {
    return this.#peer?.deviceId ?? this.#source
  }

  /** A refused frame: audited, told to the page; before admission the connection ends too. */
  #refuse(action: string, error: unknown, id?: number): void {
    const code: ErrorCode = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
    const message = error instanceof ZtError ? error.message.slice(0, 256) : 'internal error'
    this.#server.audit({ actor: this.#actor(), action, outcome: 'deny', reason: code, detail: { source: this.#source, ...(this.#peer !== undefined && { tenant: this.#peer.tenant }) } })
    this.#send({ type: 'error', code, message, ...(id !== undefined && { id }) })
    if (this.#state !== 'admitted') {
      this.#state = 'closed'
      this.#ws.close(1008, code)
    }
  }

  #onFrame(data: Buffer, isBinary: boolean): void {
    if (this.#state === 'closed') return
    let frame: PageFrame
    try {
      frame = parsePageFrame(data, isBinary)
    } catch (error) {
      return this.#refuse(this.#state === 'admitted' ? AUDIT_STAFF_FRAME : AUDIT_STAFF_JOIN, error)
    }
    try {
      switch (this.#state) {
        case 'hello':
          if (frame.type !== 'hello') throw createError('ERR_UNAUTHENTICATED', 'say hello with your certificate chain first')
          return this.#hello(frame.chain)
        case 'challenged':
          if (frame.type !== 'answer') throw createError('ERR_UNAUTHENTICATED', 'answer the challenge first')
          return this.#answer(frame)
        case 'admitted':
          if (!this.#server.frames.take(`${this.#peer!.tenant}/${this.#peer!.deviceId}`)) throw createError('ERR_RATE_LIMITED', 'too many frames from this identity')
          if (frame.type === 'prepare') return this.#prepare(frame)
          if (frame.type === 'signed') return this.#signed(frame.id, frame.signature)
          // A second hello or answer on an admitted connection: the challenge is spent.
          throw createError('ERR_HUB_CHALLENGE', 'this connection already answered its challenge')
      }
    } catch (error) {
      const id = frame.type === 'prepare' || frame.type === 'signed' ? frame.id : undefined
      this.#refuse(this.#state === 'admitted' ? AUDIT_STAFF_FRAME : AUDIT_STAFF_JOIN, error, id)
    }
  }

  #hello(chain: string): void {
    const { hub } = this.#server.init
    const issued = hubChallenge(hub.hubId)
    // The chain is only named here; it is decided when the answer is verified.
    const prepared = prepareObject('hub-challenge', chain, issued)
    this.#chain = chain
    this.#challenge = { issued, prepared }
    this.#state = 'challenged'
    this.#send({ type: 'challenge', hubId: hub.hubId, toBeSigned: toBeSigned(prepared).toString('base64') })
  }

  #answer(frame: Extract<PageFrame, { type: 'answer' }>): void {
    const { init } = this.#server
    const challenge = this.#challenge!
    // One answer per challenge, whatever its outcome.
    this.#challenge = undefined
    this.#state = 'closed'
    const object = frame.signature !== undefined ? assemble(challenge.prepared, frame.signature) : frame.object!
    const policy = { expectedTenant: init.tenant }
    const verified = verifyHubChallenge(object, challenge.issued, this.#server.trust, this.#server.revocations, policy, init.challengeMaxAgeMs ?? DEFAULT_CHALLENGE_MAX_AGE_MS)
    const peer = verified.peer
    this.#peer = peer
    const role = init.role ?? DEFAULT_STAFF_ROLE
    if (!peer.roles.includes(role)) throw createError('ERR_FORBIDDEN', `the certificate does not carry the ${role} role`)
    // The chain of an object signed elsewhere is the one verified, not the hello's.
    if (frame.object !== undefined) this.#chain = chainOf(this.#chain, peer)
    this.#guard = new SignalingGuard({ identity: { certificateChainPem: this.#chain }, trustPem: init.trustPem, revocations: this.#server.revocations, ...(init.audit !== undefined && { audit: init.audit }) })
    const shim = new HubSocketShim((text) => this.#fromHub(text), () => this.#ws.terminate())
    const chain = this.#chain
    const trust = this.#server.trust
    init.hub.admit(peer, shim, (revocations) => {
      try {
        verifyPeer(chain, trust, revocations, policy)
        return false
      } catch {
        this.#state = 'closed'
        this.#ws.terminate()
        return true
      }
    })
    this.#hubSocket = shim
    this.#state = 'admitted'
    this.#server.audit({ actor: peer.deviceId, action: AUDIT_STAFF_JOIN, outcome: 'allow', reason: 'ok', detail: { tenant: peer.tenant, serial: peer.serial, source: this.#source } })
    this.#send({ type: 'welcome', hubId: init.hub.hubId, identity: { deviceId: peer.deviceId, tenant: peer.tenant, roles: peer.roles, serial: peer.serial } })
  }

  #prepare(frame: Extract<PageFrame, { type: 'prepare' }>): void {
    const peer = this.#peer!
    if (this.#pending.size >= MAX_PENDING_SIGNATURES || this.#pending.has(frame.id)) throw createError('ERR_RATE_LIMITED', 'too many objects waiting for a signature')
    let prepared: PreparedObject
    if (frame.what === 'offer') {
      prepared = prepareOffer({ from: peer.deviceId, to: frame.to, tenant: peer.tenant, sdp: frame.sdp, epoch: 0 }, this.#chain)
    } else {
      const now = Date.now()
      prepared = preparePresenceLease({ deviceId: peer.deviceId, tenant: peer.tenant, hubId: this.#server.init.hub.hubId, seq: ++this.#seq, issuedAtMs: now, expiresAtMs: now + STAFF_LEASE_MS }, this.#chain)
    }
    this.#pending.set(frame.id, { prepared, what: frame.what, ...(frame.what === 'offer' && { to: frame.to }) })
    this.#send({ type: 'tbs', id: frame.id, toBeSigned: toBeSigned(prepared).toString('base64') })
  }

  #signed(id: number, signature: Buffer): void {
    const pending = this.#pending.get(id)
    if (pending === undefined) throw createError('ERR_NOT_FOUND', 'no object waits for this signature')
    this.#pending.delete(id)
    const object = assemble(pending.prepared, signature)
    const peer = this.#peer!
    if (pending.what === 'presence') {
      const { digest } = verifyPresenceLease(object, this.#server.trust, this.#server.revocations, { expectedTenant: peer.tenant, expectedDevice: peer.deviceId })
      this.#hubSocket!.fromClient(encodeFrame({ type: 'presence', lease: object }))
      return this.#send({ type: 'sent', id, digest })
    }
    const { digest } = verifyObject(object, 'offer', this.#server.trust, this.#server.revocations, { expectedTenant: peer.tenant, expectedDevice: peer.deviceId })
    this.#offers.set(pending.to!, digest)
    this.#hubSocket!.fromClient(encodeFrame({ type: 'signal', to: pending.to!, kind: 'offer', object }))
    this.#send({ type: 'sent', id, digest })
  }

  /** A frame the hub sends this page: verified here by the page's guard, then told to the page. */
  #fromHub(text: string): void {
    let frame
    try {
      frame = parseHubFrame(text)
    } catch {
      return
    }
    switch (frame.type) {
      case 'signal': {
        const offerDigest = this.#offers.get(frame.from)
        if (frame.kind !== 'answer' || offerDigest === undefined) {
          return this.#send({ type: 'error', code: 'ERR_HUB_FRAME', message: `the page takes answers to its own offers only (a ${frame.kind} from ${frame.from} was dropped)` })
        }
        try {
          const verified = this.#guard!.verifyAnswer(frame.object, offerDigest, { expectedFrom: frame.from })
          this.#offers.delete(frame.from)
          this.#send({ type: 'answer', from: verified.peer.deviceId, sdp: verified.answer.sdp, offerDigest })
        } catch (error) {
          // Audited by the guard.
          this.#send({ type: 'error', code: error instanceof ZtError ? error.code : 'ERR_INTERNAL', message: `an answer from ${frame.from} was refused` })
        }
        return
      }
      case 'presence':
        try {
          verifyPresenceLease(frame.lease, this.#server.trust, this.#server.revocations, { expectedTenant: this.#peer!.tenant, expectedDevice: frame.deviceId })
          this.#send({ type: 'presence', deviceId: frame.deviceId, online: true })
        } catch {
          // A lease that does not verify is no presence.
        }
        return
      case 'offline':
        return this.#send({ type: 'presence', deviceId: frame.deviceId, online: false })
      case 'error':
        return this.#send({ type: 'error', code: frame.code, message: frame.message })
      case 'revoked':
        return
    }
  }
}

/** The hub's view of a page: frames from the page are emitted as `message`, the hub's go to `deliver`. */
class HubSocketShim extends EventEmitter {
  readonly OPEN = 1
  #open = true
  readonly #deliver: (text: string) => void
  readonly #end: () => void

  constructor(deliver: (text: string) => void, end: () => void) {
    super()
    this.#deliver = deliver
    this.#end = end
  }

  get readyState(): number {
    return this.#open ? 1 : 3
  }

  send(text: string): void {
    if (this.#open) this.#deliver(text)
  }

  close(): void {
    this.terminate()
  }

  terminate(): void {
    if (!this.#open) return
    this.#end()
    this.closed()
  }

  fromClient(text: string): void {
    if (this.#open) this.emit('message', Buffer.from(text), false)
  }

  closed(): void {
    if (!this.#open) return
    this.#open = false
    this.emit('close')
  }
}

function pageTls(init: StaffServerInit): TlsContext {
  return new TlsContext('server', { identity: init.identity, trustPem: init.trustPem, anonymousClients: true, alpn: ['http/1.1'] })
}

/** The chain to keep for a peer admitted by a complete object: the hello's chain must name it. */
function chainOf(hello: string, peer: PeerIdentity): string {
  const facts = inspectCertificate(hello)
  if (facts.serial !== peer.serial) throw createError('ERR_HUB_CHALLENGE', 'the answer is signed under another certificate than the one presented')
  return hello
}

function parseEnrollBody(text: string): { token: string; csr: string } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw createError('ERR_BAD_REQUEST', 'the body is JSON')
  }
  const record = value as Record<string, unknown>
  if (typeof value !== 'object' || value === null || Object.keys(record).sort().join() !== 'csr,token') throw createError('ERR_BAD_REQUEST', 'the body is {token, csr}')
  if (typeof record.token !== 'string' || typeof record.csr !== 'string' || record.token.length > 4096 || record.csr.length > 8192) throw createError('ERR_BAD_REQUEST', 'token and csr are strings')
  return { token: record.token, csr: record.csr }
}

function readBody(request: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      // Past the limit the rest is drained unread (bounded by the request timeout), so that the
      // client reads its 413 rather than a reset.
      if (size > max) return reject(createError('ERR_PAYLOAD_TOO_LARGE', 'the body is too large'))
      chunks.push(chunk)
    })
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    request.on('error', reject)
  })
}

/** The page, its module, and the two browser bundles it loads from node_modules. */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const require = createRequire(import.meta.url)
  const here = new URL('../../static/staff/', import.meta.url)
  const js = 'text/javascript; charset=utf-8'
  return new Map([
    [STAFF_ROUTES.page, { type: 'text/html; charset=utf-8', body: readFileSync(new URL('index.html', here)) }],
    [STAFF_ROUTES.app, { type: js, body: readFileSync(new URL('app.js', here)) }],
    [STAFF_ROUTES.reflect, { type: js, body: readFileSync(require.resolve('reflect-metadata')) }],
    [STAFF_ROUTES.x509, { type: js, body: readFileSync(join(dirname(require.resolve('@peculiar/x509')), 'x509.js')) }],
  ])
}
