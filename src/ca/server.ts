/**
 * The enrollment API of the site CA (seed 002 §7), node:http over TLS 1.3 (the core's rustls):
 * the server presents its own certificate (`CA_API_IDENTITY`: device `ca`, role `ca`, in the
 * tenant it serves, issued by the site CA for a key that lives only in the core, renewed at half
 * its life) with the site CA and root, so a device that pinned the root authenticates it before
 * it sends anything. Clients need no certificate (they have none yet; requests prove themselves).
 * Plain HTTP only with `insecureHttp` (tests), which warns, and which refuses the admin
 * credential (`POST /v1/revoke`, `ERR_INSECURE_TRANSPORT`).
 *
 * - `POST /v1/attest/nonce {node_id, token_id, token_proof, ek_certificate?, ak_public?}` →
 *   `{nonce, expires_at, pcrs, credential_blob?, encrypted_secret?}`: a single-use nonce for the
 *   TPM quote of that node's enrollment, the PCRs to quote, and a credential challenge for an
 *   endorsed AK; only for the holder of that node's enrollment token, or, for an attested
 *   rotation, `{node_id, certificate, timestamp, signature}`: that node's current certificate
 *   and its key's signature
 * - `POST /v1/enroll {token_id, token_proof, csr, attestation?, node_id?}` → `{certificate,
 *   ca_cert, serial, not_after, config}`; the token's proof covers the CSR and node id, and the
 *   CA's attestation mode decides whether `attestation` is required
 * - `POST /v1/rotate {certificate, csr, timestamp, signature, attestation?}` (signed by the current key) → the same
 *
 * The bodies of these three are encoded and decoded by the core (`protocol/enroll.ts`).
 * - `GET /v1/crl` → PEM, or DER for `Accept: application/pkix-crl` / `?format=der`; ETag, Cache-Control
 * - `GET /v1/root-crl` → the offline root's CRL as installed (`ca site root-crl`), PEM; 404
 *   `ERR_NOT_FOUND` before one was installed. Devices apply it as verify-peer does (a revoked site CA)
 * - `POST /v1/revoke {serial | spki_sha256 | device, tenant?, reason}` with `Authorization: Bearer
 *   <admin token>` → 204; a serial or a key revokes its whole live lineage (see `CaService.revoke`)
 *
 * Errors are `{code, message}` with 400/401/403/404/405/409/413/429; a refused attestation is a
 * 403 with its `ERR_ATTEST_…` code (400 `ERR_ATTEST_MALFORMED` for bytes that do not parse). Each
 * source is rate limited, before any storage work, and may hold a bounded number of connections
 * (as may all sources together): a connection over either cap gets a 503
 * `ERR_TOO_MANY_CONNECTIONS` and is closed. Every request within the rate limit is audited (by
 * the CA service, or here when it never reaches it, bodies refused for their size or syntax
 * included), naming its route by id, never by the path sent. Requests over the rate limit and
 * connections over the caps are counted per source instead, and written as one row each
 * `auditIntervalMs` and on close (`request-tally.ts`).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

import { secureTls, TlsContext } from '../channels/tls.js'
import { Signer } from '../primitives/pki/index.js'

import { createError, ZtError, type ErrorCode } from '../errors.js'
import type { RevocationReason } from '../primitives/pki/index.js'
import { decodeEnrollRequest, decodeNonceRequest, decodeRotationRequest, encodeEnrollResponse, encodeNonceAnswer, ENROLLMENT_ROUTES, type DeviceConfig, type EnrollResponse } from '../protocol/enroll.js'
import { readJsonBody, readJsonBytes, sendEncoded, sendError } from './http.js'
import { crlEtag, type CaService, type Enrollment } from './index.js'
import { RateLimiter, sourceOf, type RateLimiterInit } from './rate-limit.js'
import { RequestTally, routeAction, routeId } from './request-tally.js'
import { API_CERTIFICATE_VALIDITY_SECONDS } from './service.js'

export type { DeviceConfig } from '../protocol/enroll.js'

/** Options of {@link createEnrollmentServer}. */
export interface EnrollmentServerInit {
  ca: CaService
  /**
   * The config handed to enrolled devices. `crl_url` defaults to `<url>/v1/crl`, else to the
   * address the server's own socket is bound to: never to what a request's `Host` says.
   */
  config?: Partial<DeviceConfig>
  /** This server's public base URL (e.g. `https://gw.hotel-1.lan:8443`), for the default `crl_url`. */
  url?: string
  rateLimit?: RateLimiterInit
  /** Per-request time limit (headers and body), ms. Default 10 s. */
  requestTimeoutMs?: number
  /** Open connections one source may hold. Default 32. */
  maxConnectionsPerSource?: number
  /** Open connections in all. Default 1,024. */
  maxConnections?: number
  /** How often the counts of requests that never reach the CA service are written, ms. Default 60 s. */
  auditIntervalMs?: number
  /** The tenant the server's TLS certificate names: the tenant of the devices it enrolls. Required unless `insecureHttp`. */
  tenant?: string
  /**
   * Serve plain HTTP instead of TLS: for tests only. A warning is printed, and the admin
   * credential is refused (`ERR_INSECURE_TRANSPORT`).
   */
  insecureHttp?: boolean
  /** The TLS handshake's time limit, ms. Default 10 s. */
  handshakeTimeoutMs?: number
}

/**
 * Creates (but does not start) the enrollment server.
 *
 * @example
 * ```ts
 * const server = createEnrollmentServer({ ca: await CaService.open({ dir }), tenant: 'hotel-1' })
 * server.listen(8443, '127.0.0.1')
 * ```
 */
export function createEnrollmentServer(init: EnrollmentServerInit): Server {
  const limiter = new RateLimiter(init.rateLimit)
  const tally = new RequestTally()
  const timeout = init.requestTimeoutMs ?? 10_000
  const refused = new WeakSet<Socket>()
  const server = createServer({ requestTimeout: timeout, headersTimeout: timeout }, (request, response) => {
    if (refused.has(request.socket)) return void response.destroy()
    void handle(init, limiter, tally, request, response, timeout)
  })
  server.maxHeadersCount = 50
  const overTls = init.insecureHttp !== true
  capConnections(init.ca, server, tally, refused, init.maxConnectionsPerSource ?? 32, init.maxConnections ?? 1024, overTls)
  const flush = (): void => {
    const events = tally.flush()
    try {
      if (events.length > 0) init.ca.recordAudit(...events)
    } catch (error) {
      // A timer must not take the server down (a busy or full disk): the counts are lost, said so.
      process.emitWarning(`the request counts could not be audited: ${(error as Error).message}`, { code: 'ZTMESH_AUDIT_FLUSH' })
    }
  }
  const timer = setInterval(flush, init.auditIntervalMs ?? 60_000).unref()
  server.on('close', () => {
    clearInterval(timer)
    flush()
  })
  if (!overTls) {
    process.emitWarning('the enrollment API serves plain HTTP (insecureHttp): anyone on the path reads and rewrites it; for tests only', { code: 'ZTMESH_INSECURE_HTTP' })
    return server
  }
  serveOverTls(server, init, tally, refused)
  return server
}

/**
 * Refuses a connection over the per-source or total cap with a typed 503 before the HTTP
 * parser sees a byte of it (over TLS, by closing it: no answer can be read before a handshake
 * this refusal is meant to spare), and counts the refusal (the first of an interval is written).
 */
function capConnections(ca: CaService, server: Server, tally: RequestTally, refused: WeakSet<Socket>, perSource: number, total: number, overTls: boolean): void {
  const open = new Map<string, number>()
  let all = 0
  server.on('connection', (socket: Socket) => {
    const source = sourceOf(socket.remoteAddress)
    const mine = open.get(source) ?? 0
    if (mine >= perSource || all >= total) {
      refused.add(socket)
      const first = tally.count(source, 'other', 'ERR_TOO_MANY_CONNECTIONS')
      if (first !== undefined) ca.recordAudit(first)
      if (overTls) return void socket.destroy()
      const body = JSON.stringify({ code: 'ERR_TOO_MANY_CONNECTIONS', message: 'too many open connections; retry later' })
      socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
      return
    }
    all++
    open.set(source, mine + 1)
    socket.once('close', () => {
      all--
      const left = (open.get(source) ?? 1) - 1
      if (left === 0) open.delete(source)
      else open.set(source, left)
    })
  })
}

/**
 * Puts TLS under `server`: every accepted socket is handed to node:http only once its TLS
 * session is established. A failed handshake (plain HTTP to this port included) closes the
 * socket and is audited.
 */
function serveOverTls(server: Server, init: EnrollmentServerInit, tally: RequestTally, refused: WeakSet<Socket>): void {
  const { ca, tenant } = init
  if (tenant === undefined) throw createError('ERR_INVALID_ARG', 'the enrollment server needs the tenant its TLS certificate names (or insecureHttp)')
  let context = apiContext(ca, tenant)
  // Renewed at half its life; connections from then on get the new certificate. A renewal that
  // fails (a busy or full disk) keeps the current one, which has half its life left, and warns.
  const renew = (): void => {
    try {
      context = apiContext(ca, tenant)
    } catch (error) {
      process.emitWarning(`the CA API certificate could not be renewed: ${(error as Error).message}`, { code: 'ZTMESH_API_CERTIFICATE' })
    }
  }
  const renewal = setInterval(renew, (API_CERTIFICATE_VALIDITY_SECONDS * 1000) / 2)
  renewal.unref()
  server.once('close', () => clearInterval(renewal))
  // node:http's own listener (the first) gets the TLS stream instead of the socket; the cap's stays.
  const [serveHttp] = server.listeners('connection') as ((socket: unknown) => void)[]
  server.removeListener('connection', serveHttp!)
  server.on('connection', (socket: Socket) => {
    if (refused.has(socket)) return
    const source = sourceOf(socket.remoteAddress)
    socket.on('error', () => {})
    secureTls(socket, context, { handshakeTimeoutMs: init.handshakeTimeoutMs ?? 10_000 }).then(
      (stream) => serveHttp!.call(server, stream),
      (error: unknown) => {
        // Counted like every refusal before the service: one row per source and reason per interval.
        const first = tally.count(source, 'other', error instanceof ZtError ? error.code : 'ERR_TLS_HANDSHAKE')
        if (first !== undefined) ca.recordAudit({ ...first, action: TLS_HANDSHAKE_ACTION })
      },
    )
  })
}

/** The audit action of a refused TLS handshake. */
const TLS_HANDSHAKE_ACTION = 'tls.handshake'

/** A TLS server context with a fresh CA API certificate, its key inside the core. */
function apiContext(ca: CaService, tenant: string): TlsContext {
  const signer = Signer.generate()
  const { chainPem } = ca.issueApiCertificate(tenant, signer)
  return new TlsContext('server', { identity: { certificateChainPem: chainPem, signer }, trustPem: ca.trustBundle(), anonymousClients: true })
}

async function handle(init: EnrollmentServerInit, limiter: RateLimiter, tally: RequestTally, request: IncomingMessage, response: ServerResponse, timeout: number): Promise<void> {
  const { ca } = init
  const address = request.socket.remoteAddress ?? 'unknown'
  const source = sourceOf(address)
  // The rate limit comes first: a source over it costs a counter, and one row per interval.
  if (!limiter.take(source)) {
    const first = tally.count(source, routeId(pathOf(request)), 'ERR_RATE_LIMITED')
    if (first !== undefined) ca.recordAudit(first)
    return void sendError(response, createError('ERR_RATE_LIMITED'))
  }
  const url = new URL(request.url ?? '/', 'http://ca.invalid')
  const id = routeId(url.pathname)
  const route = `${request.method ?? 'GET'} ${url.pathname}`
  const refuse = (code: ErrorCode, message?: string): Error => {
    ca.recordAudit({ actor: address, action: routeAction(id), outcome: 'deny', reason: code })
    return createError(code, message)
  }
  try {
    switch (route) {
      case `POST ${ENROLLMENT_ROUTES.nonce}`: {
        // Room for an EK certificate in base64 (the core's codec bounds it the same).
        const body = await readMessage(refuse, request, 4096, timeout, decodeNonceRequest)
        const issued = ca.issueNonce(body, address)
        sendEncoded(
          response,
          200,
          encodeNonceAnswer({
            nonce: Buffer.from(issued.nonce, 'hex'),
            expiresAtMs: issued.expiresAt,
            pcrs: issued.pcrs,
            ...(issued.challenge !== undefined && { credentialBlob: issued.challenge.credentialBlob, encryptedSecret: issued.challenge.encryptedSecret }),
          }),
        )
        return
      }
      case `POST ${ENROLLMENT_ROUTES.enroll}`: {
        const body = await readMessage(refuse, request, 64 * 1024, timeout, decodeEnrollRequest)
        // The answer is encoded inside the issuance's transaction: nothing fails after the commit.
        let encoded: Buffer | undefined
        ca.enroll(body, address, (enrollment) => (encoded = encodeAnswer(enrollment, init, request)))
        sendEncoded(response, 200, encoded!)
        return
      }
      case `POST ${ENROLLMENT_ROUTES.rotate}`: {
        const body = await readMessage(refuse, request, 64 * 1024, timeout, decodeRotationRequest)
        let encoded: Buffer | undefined
        ca.rotate(body, address, undefined, (enrollment) => (encoded = encodeAnswer(enrollment, init, request)))
        sendEncoded(response, 200, encoded!)
        return
      }
      case 'GET /v1/crl': {
        const crl = ca.crl()
        const etag = crlEtag(crl.der)
        const headers = { etag, 'cache-control': 'public, max-age=60, must-revalidate' }
        const notModified = request.headers['if-none-match'] === etag
        ca.recordAudit({ actor: address, action: routeAction(id), outcome: 'allow', reason: notModified ? 'not-modified' : 'ok', detail: { crl_number: crl.crlNumber } })
        if (notModified) {
          response.writeHead(304, headers).end()
          return
        }
        const der = url.searchParams.get('format') === 'der' || /application\/pkix-crl/.test(request.headers.accept ?? '')
        const body = der ? crl.der : Buffer.from(crl.pem, 'utf8')
        response.writeHead(200, { ...headers, 'content-type': der ? 'application/pkix-crl' : 'application/x-pem-file', 'content-length': body.length })
        response.end(body)
        return
      }
      case `GET ${ENROLLMENT_ROUTES.rootCrl}`: {
        const pem = ca.rootCrl()
        if (pem === undefined) throw refuse('ERR_NOT_FOUND', 'no root CRL is installed')
        const body = Buffer.from(pem, 'utf8')
        const etag = crlEtag(body)
        const headers = { etag, 'cache-control': 'public, max-age=60, must-revalidate' }
        const notModified = request.headers['if-none-match'] === etag
        ca.recordAudit({ actor: address, action: routeAction(id), outcome: 'allow', reason: notModified ? 'not-modified' : 'ok' })
        if (notModified) return void response.writeHead(304, headers).end()
        response.writeHead(200, { ...headers, 'content-type': 'application/x-pem-file', 'content-length': body.length })
        response.end(body)
        return
      }
      case 'POST /v1/revoke': {
        // The admin credential never travels without server authentication.
        if (init.insecureHttp === true) throw refuse('ERR_INSECURE_TRANSPORT', 'the admin credential is accepted over TLS only')
        const credential = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
        if (credential === undefined) throw refuse('ERR_UNAUTHENTICATED')
        if (!ca.isAdmin(credential)) throw refuse('ERR_FORBIDDEN')
        const body = await readBody(refuse, request, 4 * 1024, timeout)
        const reason = (body.reason ?? 'unspecified') as RevocationReason
        const target =
          typeof body.serial === 'string'
            ? { serial: body.serial }
            : typeof body.spki_sha256 === 'string'
              ? { spkiSha256: body.spki_sha256 }
              : typeof body.device === 'string'
                ? { device: body.device, ...(typeof body.tenant === 'string' && { tenant: body.tenant }) }
                : undefined
        if (target === undefined) throw createError('ERR_BAD_REQUEST', 'give serial, spki_sha256 or device')
        ca.revoke(target, reason, 'admin')
        ca.crl()
        response.writeHead(204).end()
        return
      }
      default:
        throw refuse(id === 'other' ? 'ERR_NOT_FOUND' : 'ERR_METHOD_NOT_ALLOWED')
    }
  } catch (error) {
    if (!response.headersSent) sendError(response, error)
    else response.destroy()
  }
}

/** Audits a request refused before it reached the CA service, and returns its error. */
type Refuse = (code: ErrorCode, message?: string) => Error

/** The path of a request, without parsing its URL. */
function pathOf(request: IncomingMessage): string {
  const target = request.url ?? '/'
  const end = target.search(/[?#]/)
  return end === -1 ? target : target.slice(0, end)
}

/** Reads a request's JSON body; a body refused (malformed, oversized, too slow) is audited. */
async function readBody(refuse: Refuse, request: IncomingMessage, limit: number, timeout: number): Promise<Record<string, unknown>> {
  try {
    return await readJsonBody(request, limit, timeout)
  } catch (error) {
    if (error instanceof ZtError) throw refuse(error.code, error.message)
    throw error
  }
}

/**
 * Reads a body and decodes it with the core's codec; a body refused (oversized, too slow,
 * malformed) is audited.
 */
async function readMessage<T>(refuse: Refuse, request: IncomingMessage, limit: number, timeout: number, decode: (body: Uint8Array) => T): Promise<T> {
  try {
    return decode(await readJsonBytes(request, limit, timeout))
  } catch (error) {
    if (error instanceof ZtError) throw refuse(error.code, error.message)
    throw error
  }
}

/**
 * The answer to an enrollment or rotation, encoded. An answer that cannot be encoded (a config
 * the codec refuses) is the server's fault: `ERR_INTERNAL`, and the issuance is rolled back.
 */
function encodeAnswer(enrollment: Enrollment, init: EnrollmentServerInit, request: IncomingMessage): Buffer {
  const answer: EnrollResponse = { certificate: enrollment.certificate, caChain: enrollment.caChain, serial: enrollment.serial, notAfterMs: enrollment.notAfterMs, config: deviceConfig(init, request) }
  try {
    return encodeEnrollResponse(answer)
  } catch (error) {
    throw createError('ERR_INTERNAL', 'the answer could not be encoded', { cause: error })
  }
}

function deviceConfig(init: EnrollmentServerInit, request: IncomingMessage): DeviceConfig {
  return {
    bootstrap_peers: init.config?.bootstrap_peers ?? [],
    gossip_fanout: init.config?.gossip_fanout ?? 3,
    crl_url: init.config?.crl_url ?? new URL(ENROLLMENT_ROUTES.crl, init.url ?? ownUrl(init, request)).href,
  }
}

/** The URL of the address this server's socket is bound to (the `Host` header is the client's word). */
function ownUrl(init: EnrollmentServerInit, request: IncomingMessage): string {
  const { localAddress = '127.0.0.1', localPort } = request.socket
  const host = localAddress.includes(':') ? `[${localAddress}]` : localAddress
  return `${init.insecureHttp === true ? 'http' : 'https'}://${host}:${localPort ?? 443}`
}
