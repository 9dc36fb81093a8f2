/** Small HTTP helpers of the enrollment API: bounded JSON bodies and typed JSON errors. */

import type { IncomingMessage, ServerResponse } from 'node:http'

import { createError, isErrorCode, ZtError, type ErrorCode } from '../errors.js'

/** The HTTP status of each error code the API returns; anything else is a 500. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_INVALID_ARG: 400,
  ERR_BAD_REQUEST: 400,
  ERR_TOKEN_INVALID: 400,
  ERR_TOKEN_EXPIRED: 400,
  ERR_TOKEN_PROOF: 403,
  ERR_CSR_MALFORMED: 400,
  ERR_CSR_SIGNATURE: 400,
  ERR_KEY_TYPE: 400,
  ERR_PEM: 400,
  ERR_IDENTITY: 400,
  ERR_SERIAL: 400,
  ERR_CERT_MALFORMED: 400,
  ERR_CERT_EXPIRED: 401,
  ERR_CERT_NOT_YET_VALID: 401,
  ERR_CHAIN: 401,
  ERR_CERT_REVOKED: 403,
  ERR_KEY_USAGE: 403,
  ERR_TENANT_MISMATCH: 403,
  ERR_DEVICE_MISMATCH: 403,
  ERR_UNAUTHENTICATED: 401,
  ERR_INSECURE_TRANSPORT: 403,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_TOKEN_USED: 409,
  ERR_ALREADY_ROTATED: 409,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_TOO_MANY_CONNECTIONS: 503,
  ERR_ATTEST_MALFORMED: 400,
  ERR_ATTEST_SIGNATURE: 403,
  ERR_ATTEST_NONCE: 403,
  ERR_ATTEST_PCR_VALUES: 403,
  ERR_ATTEST_PCR_MISMATCH: 403,
  ERR_ATTEST_PCR_SELECTION: 403,
  ERR_ATTEST_KEY_ATTRIBUTES: 403,
  ERR_ATTEST_CERTIFY: 403,
  ERR_ATTEST_EK_CERTIFICATE: 403,
  ERR_ATTEST_CREDENTIAL: 403,
  ERR_ATTEST_BINDING: 403,
  ERR_ATTEST_REQUIRED: 403,
}

/** The status for an error, for the API's responses and its audit rows. */
export function statusFor(error: unknown): number {
  return error instanceof ZtError ? (STATUS[error.code] ?? 500) : 500
}

/**
 * Reads a JSON object body of at most `limit` bytes within `timeoutMs`. Throws
 * `ERR_PAYLOAD_TOO_LARGE`, or `ERR_BAD_REQUEST` for a wrong content type, invalid JSON, a
 * non-object or a body that does not arrive in time.
 */
export async function readJsonBody(request: IncomingMessage, limit = 64 * 1024, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const body = await readJsonBytes(request, limit, timeoutMs)
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw createError('ERR_BAD_REQUEST', 'the body is not valid JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw createError('ERR_BAD_REQUEST', 'the body must be a JSON object')
  }
  return parsed as Record<string, unknown>
}

/**
 * Reads an `application/json` body of at most `limit` bytes within `timeoutMs`, undecoded (for
 * the core's codecs). Throws `ERR_PAYLOAD_TOO_LARGE`, or `ERR_BAD_REQUEST` for a wrong content
 * type or a body that does not arrive in time.
 */
export async function readJsonBytes(request: IncomingMessage, limit = 64 * 1024, timeoutMs = 10_000): Promise<Buffer> {
  return readBodyBytes(request, { contentType: /^application\/json\b/i, typeName: 'application/json', limit, timeoutMs })
}

/** What {@link readBodyBytes} accepts. */
export interface ReadBodyInit {
  /** What the `content-type` header must match, and its name for the error message. */
  contentType: RegExp
  typeName: string
  limit: number
  timeoutMs: number
}

/**
 * Reads a body of the given content type, of at most `limit` bytes (announced or sent) within
 * `timeoutMs`. Throws `ERR_PAYLOAD_TOO_LARGE`, or `ERR_BAD_REQUEST` for a wrong content type or
 * a body that does not arrive in time.
 */
export async function readBodyBytes(request: IncomingMessage, init: ReadBodyInit): Promise<Buffer> {
  const { limit } = init
  const type = request.headers['content-type'] ?? ''
  if (!init.contentType.test(type)) throw createError('ERR_BAD_REQUEST', `the body must be ${init.typeName}`)
  const declared = Number(request.headers['content-length'] ?? 0)
  if (declared > limit) throw createError('ERR_PAYLOAD_TOO_LARGE', `the body exceeds ${limit} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  const timer = setTimeout(() => request.destroy(createError('ERR_BAD_REQUEST', 'the body did not arrive in time')), init.timeoutMs)
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > limit) throw createError('ERR_PAYLOAD_TOO_LARGE', `the body exceeds ${limit} bytes`)
      chunks.push(chunk)
    }
  } catch (error) {
    if (error instanceof ZtError) throw error
    throw createError('ERR_BAD_REQUEST', 'the body could not be read')
  } finally {
    clearTimeout(timer)
  }
  return Buffer.concat(chunks)
}

/** Sends a JSON body. */
export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  response.end(text)
}

/** Sends a JSON body the core has encoded. */
export function sendEncoded(response: ServerResponse, status: number, body: Uint8Array): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': body.byteLength, 'cache-control': 'no-store' })
  response.end(body)
}

/** Sends `{code, message}` for an error; internal errors never leak their message. */
export function sendError(response: ServerResponse, error: unknown): void {
  const status = statusFor(error)
  const code = error instanceof ZtError && isErrorCode(error.code) && status !== 500 ? error.code : 'ERR_INTERNAL'
  const message = status === 500 ? 'internal error' : (error as Error).message
  sendJson(response, status, { code, message })
}
