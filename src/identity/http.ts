/**
 * The device's requests to the CA's enrollment API, each with a time limit: encoded bytes in,
 * the answer's bytes out (the codecs are in `protocol/enroll.ts`). An error answer is the CA's
 * `{code, message}`, thrown as that error.
 *
 * Requests go over TLS 1.3 (`https:`) to a server that proved, before a byte of the request
 * leaves, that it is the CA API (`CA_API_IDENTITY`) of the expected tenant under the root the
 * device pinned (the token's, or its `trust.pem`'s). Plain `http:` only with `insecureHttp`
 * (tests); otherwise `ERR_INSECURE_TRANSPORT`.
 */
import { connect } from 'node:net'

import { answerBody, requestOverStream, type StreamAnswer } from '../channels/http.js'
import { secureTls, TlsContext } from '../channels/tls.js'
import { createError, ZtError } from '../errors.js'
import { CA_API_IDENTITY } from '../protocol/enroll.js'
import { DEFAULT_TIMEOUT_MS } from './constants.js'

/** Who the CA API must prove to be. */
export interface CaServerTrust {
  /** SHA-256 of the pinned root's SubjectPublicKeyInfo, hex. */
  rootFingerprint: string
  /** The tenant its certificate must name. */
  tenant: string
}

/** The time limit, abort signal and server authentication of a request. */
export interface RequestInit {
  signal?: AbortSignal
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number
  /** Who the server must be (required for `https:`). */
  ca?: CaServerTrust
  /** Allow plain `http:` URLs, with no server authentication at all: for tests only. */
  insecureHttp?: boolean
}

/** POSTs an encoded JSON body and returns the answer's bytes; a `{code, message}` answer is thrown as that error. */
export async function postJson(url: URL, body: Uint8Array, init: RequestInit): Promise<Buffer> {
  return readAnswer(url, await send(url, body, init))
}

/** Like {@link postJson}, but resolves `undefined` when the CA answers 404: it has no such endpoint. */
export async function postJsonIfServed(url: URL, body: Uint8Array, init: RequestInit): Promise<Buffer | undefined> {
  const response = await send(url, body, init)
  if (response.status !== 404) return readAnswer(url, response)
  return undefined
}

/** GETs `url` and returns the answer's bytes; a `{code, message}` answer is thrown as that error. */
export async function getBytes(url: URL, init: RequestInit): Promise<Buffer> {
  return readAnswer(url, await requestCa(url, { method: 'GET' }, init))
}

/** An answer longer than this is refused before it is decoded. */
const MAX_ANSWER = 64 * 1024

/** An answer of the CA API. */
export type CaAnswer = StreamAnswer

/** What {@link requestCa} sends. */
export interface CaRequest {
  method?: string
  headers?: Record<string, string>
  body?: Uint8Array
}

async function send(url: URL, body: Uint8Array, init: RequestInit): Promise<CaAnswer> {
  return requestCa(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }, init)
}

/**
 * One request to the CA API on a connection of its own, over TLS to a server that proved it is
 * the CA API of `init.ca` (or plain HTTP with `insecureHttp`); the answer is read up to 64 KiB.
 * A server that cannot prove it is refused with the PKI's code before the request leaves.
 */
export async function requestCa(url: URL, request: CaRequest, init: RequestInit): Promise<CaAnswer> {
  if (url.protocol === 'http:' && init.insecureHttp !== true) {
    throw createError('ERR_INSECURE_TRANSPORT', `refusing plain HTTP to ${url.origin}: the CA API is served over TLS (https:)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw createError('ERR_INVALID_ARG', 'the CA URL must be https:')
  if (url.protocol === 'https:' && init.ca === undefined) throw createError('ERR_INVALID_ARG', 'an https: request needs the pinned root and tenant')
  const signals = [AbortSignal.timeout(init.timeoutMs ?? DEFAULT_TIMEOUT_MS), ...(init.signal === undefined ? [] : [init.signal])]
  const signal = AbortSignal.any(signals)
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const socket = connect({ host, port })
  const onAbort = () => socket.destroy(createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    let connection: NodeJS.ReadWriteStream & { destroy(): void } = socket
    if (url.protocol === 'https:') {
      const ca = init.ca!
      const context = TlsContext.anonymous({ rootFingerprint: ca.rootFingerprint, expectedTenant: ca.tenant, expectedDevice: CA_API_IDENTITY.deviceId, requiredRole: CA_API_IDENTITY.role })
      // A server that cannot prove it is the CA API is refused here, with the PKI's code.
      connection = (await secureTls(socket, context, { handshakeTimeoutMs: init.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal })) as unknown as typeof connection
    }
    return await requestOverStream(connection, { method: request.method ?? 'GET', host: url.hostname, path: url.pathname + url.search, headers: request.headers ?? {}, ...(request.body !== undefined && { body: request.body }) }, { maxAnswerBytes: MAX_ANSWER, signal, what: 'the CA' })
  } catch (error) {
    socket.destroy()
    if (error instanceof ZtError && error.code !== 'ERR_TLS_CLOSED' && error.code !== 'ERR_ABORTED' && error.code !== 'ERR_HANDSHAKE_TIMEOUT') throw error
    throw createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`, { cause: error })
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

function readAnswer(url: URL, response: CaAnswer): Buffer {
  return answerBody(response, 'the CA', url.pathname)
}
