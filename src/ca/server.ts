/**
 * The enrollment API of the site CA (seed 002 §7), over node:http:
 *
 * - `POST /v1/attest/nonce {node_id}` → `{nonce, expires_at, pcrs}`: a single-use nonce for the
 *   TPM quote of that node's enrollment, and the PCRs to quote
 * - `POST /v1/enroll {token, csr, attestation?, node_id?}` → `{certificate, ca_cert, serial,
 *   not_after, config}`; the CA's attestation mode decides whether `attestation` is required
 * - `POST /v1/rotate {certificate, csr, timestamp, signature}` (signed by the current key) → the same
 *
 * The bodies of these three are encoded and decoded by the core (`protocol/enroll.ts`).
 * - `GET /v1/crl` → PEM, or DER for `Accept: application/pkix-crl` / `?format=der`; ETag, Cache-Control
 * - `POST /v1/revoke {serial | device, reason}` with `Authorization: Bearer <admin token>` → 204
 *
 * Errors are `{code, message}` with 400/401/403/404/405/409/413/429; a refused attestation is a
 * 403 with its `ERR_ATTEST_…` code (400 `ERR_ATTEST_MALFORMED` for bytes that do not parse). Each
 * source is rate limited; every request is audited (by the CA service, or here when it never
 * reaches it, bodies refused for their size or syntax included).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'

import { createError, ZtError, type ErrorCode } from '../errors.js'
import type { RevocationReason } from '../primitives/pki/index.js'
import { decodeEnrollRequest, decodeNonceRequest, decodeRotationRequest, encodeEnrollResponse, encodeNonceAnswer, ENROLLMENT_ROUTES, type DeviceConfig, type EnrollResponse } from '../protocol/enroll.js'
import { readJsonBody, readJsonBytes, sendEncoded, sendError } from './http.js'
import { crlEtag, type CaService, type Enrollment } from './index.js'
import { RateLimiter, type RateLimiterInit } from './rate-limit.js'

export type { DeviceConfig } from '../protocol/enroll.js'

/** Options of {@link createEnrollmentServer}. */
export interface EnrollmentServerInit {
  ca: CaService
  /** The config handed to enrolled devices; `crl_url` defaults to this server's own. */
  config?: Partial<DeviceConfig>
  rateLimit?: RateLimiterInit
  /** Per-request time limit (headers and body), ms. Default 10 s. */
  requestTimeoutMs?: number
}

/**
 * Creates (but does not start) the enrollment server.
 *
 * @example
 * ```ts
 * const server = createEnrollmentServer({ ca: await CaService.open({ dir }) })
 * server.listen(8443, '127.0.0.1')
 * ```
 */
export function createEnrollmentServer(init: EnrollmentServerInit): Server {
  const limiter = new RateLimiter(init.rateLimit)
  const timeout = init.requestTimeoutMs ?? 10_000
  const server = createServer({ requestTimeout: timeout, headersTimeout: timeout }, (request, response) => {
    void handle(init, limiter, request, response, timeout)
  })
  server.maxHeadersCount = 50
  return server
}

async function handle(init: EnrollmentServerInit, limiter: RateLimiter, request: IncomingMessage, response: ServerResponse, timeout: number): Promise<void> {
  const { ca } = init
  const source = request.socket.remoteAddress ?? 'unknown'
  const url = new URL(request.url ?? '/', 'http://ca.invalid')
  const route = `${request.method ?? 'GET'} ${url.pathname}`
  try {
    if (!limiter.take(source)) throw refuse(ca, source, route, 'ERR_RATE_LIMITED')
    switch (route) {
      case `POST ${ENROLLMENT_ROUTES.nonce}`: {
        // Room for an EK certificate in base64 (the core's codec bounds it the same).
        const asked = await readMessage(ca, source, route, request, 4096, timeout, decodeNonceRequest)
        const issued = ca.issueNonce(asked.nodeId, source, asked.ekCertificate !== undefined && asked.akPublic !== undefined ? { ekCertificate: asked.ekCertificate, akPublic: asked.akPublic } : undefined)
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
        const body = await readMessage(ca, source, route, request, 64 * 1024, timeout, decodeEnrollRequest)
        sendEncoded(response, 200, encodeEnrollResponse(answer(ca.enroll(body, source), init, request)))
        return
      }
      case `POST ${ENROLLMENT_ROUTES.rotate}`: {
        const body = await readMessage(ca, source, route, request, 64 * 1024, timeout, decodeRotationRequest)
        sendEncoded(response, 200, encodeEnrollResponse(answer(ca.rotate(body, source), init, request)))
        return
      }
      case 'GET /v1/crl': {
        const crl = ca.crl()
        const etag = crlEtag(crl.der)
        const headers = { etag, 'cache-control': 'public, max-age=60, must-revalidate' }
        const notModified = request.headers['if-none-match'] === etag
        ca.recordAudit({ actor: source, action: route, outcome: 'allow', reason: notModified ? 'not-modified' : 'ok', detail: { crl_number: crl.crlNumber } })
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
      case 'POST /v1/revoke': {
        const credential = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1]
        if (credential === undefined) throw refuse(ca, source, route, 'ERR_UNAUTHENTICATED')
        if (!ca.isAdmin(credential)) throw refuse(ca, source, route, 'ERR_FORBIDDEN')
        const body = await readBody(ca, source, route, request, 4 * 1024, timeout)
        const reason = (body.reason ?? 'unspecified') as RevocationReason
        const target =
          typeof body.serial === 'string' ? { serial: body.serial } : typeof body.device === 'string' ? { device: body.device, ...(typeof body.tenant === 'string' && { tenant: body.tenant }) } : undefined
        if (target === undefined) throw createError('ERR_BAD_REQUEST', 'give serial or device')
        ca.revoke(target, reason, 'admin')
        ca.crl()
        response.writeHead(204).end()
        return
      }
      default:
        throw refuse(ca, source, route, /^(GET|POST) \/v1\/(enroll|rotate|crl|revoke|attest\/nonce)$/.test(route) ? 'ERR_METHOD_NOT_ALLOWED' : 'ERR_NOT_FOUND')
    }
  } catch (error) {
    if (!response.headersSent) sendError(response, error)
    else response.destroy()
  }
}

/** Audits a request refused before it reached the CA service, and returns its error. */
function refuse(ca: CaService, source: string, route: string, code: ErrorCode, message?: string): Error {
  ca.recordAudit({ actor: source, action: route, outcome: 'deny', reason: code })
  return createError(code, message)
}

/** Reads a request's JSON body; a body refused (malformed, oversized, too slow) is audited. */
async function readBody(ca: CaService, source: string, route: string, request: IncomingMessage, limit: number, timeout: number): Promise<Record<string, unknown>> {
  try {
    return await readJsonBody(request, limit, timeout)
  } catch (error) {
    if (error instanceof ZtError) throw refuse(ca, source, route, error.code, error.message)
    throw error
  }
}

/**
 * Reads a body and decodes it with the core's codec; a body refused (oversized, too slow,
 * malformed) is audited.
 */
async function readMessage<T>(ca: CaService, source: string, route: string, request: IncomingMessage, limit: number, timeout: number, decode: (body: Uint8Array) => T): Promise<T> {
  try {
    return decode(await readJsonBytes(request, limit, timeout))
  } catch (error) {
    if (error instanceof ZtError) throw refuse(ca, source, route, error.code, error.message)
    throw error
  }
}

/** The answer to an enrollment or rotation. */
function answer(enrollment: Enrollment, init: EnrollmentServerInit, request: IncomingMessage): EnrollResponse {
  return { certificate: enrollment.certificate, caChain: enrollment.caChain, serial: enrollment.serial, notAfterMs: enrollment.notAfterMs, config: deviceConfig(init, request) }
}

function deviceConfig(init: EnrollmentServerInit, request: IncomingMessage): DeviceConfig {
  const host = request.headers.host ?? `${request.socket.localAddress}:${request.socket.localPort}`
  return {
    bootstrap_peers: init.config?.bootstrap_peers ?? [],
    gossip_fanout: init.config?.gossip_fanout ?? 3,
    crl_url: init.config?.crl_url ?? `http://${host}/v1/crl`,
  }
}
