/**
 * The device's requests to the CA's enrollment API, each with a time limit: encoded bytes in,
 * the answer's bytes out (the codecs are in `protocol/enroll.ts`). An error answer is the CA's
 * `{code, message}`, thrown as that error.
 */
import { createError, isErrorCode } from '../errors.js'
import { DEFAULT_TIMEOUT_MS } from './constants.js'

/** The time limit and abort signal of a request. */
export interface RequestInit {
  signal?: AbortSignal
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number
}

/** POSTs an encoded JSON body and returns the answer's bytes; a `{code, message}` answer is thrown as that error. */
export async function postJson(url: URL, body: Uint8Array, init: RequestInit): Promise<Buffer> {
  return readAnswer(url, await send(url, body, init))
}

/** Like {@link postJson}, but resolves `undefined` when the CA answers 404: it has no such endpoint. */
export async function postJsonIfServed(url: URL, body: Uint8Array, init: RequestInit): Promise<Buffer | undefined> {
  const response = await send(url, body, init)
  if (response.status !== 404) return readAnswer(url, response)
  await response.body?.cancel()
  return undefined
}

/** GETs `url` and returns the answer's bytes; a `{code, message}` answer is thrown as that error. */
export async function getBytes(url: URL, init: RequestInit): Promise<Buffer> {
  let response: Response
  try {
    response = await fetch(url, { signal: requestSignal(init) })
  } catch (error) {
    throw createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`, { cause: error })
  }
  return readAnswer(url, response)
}

function requestSignal(init: RequestInit): AbortSignal {
  return AbortSignal.any([AbortSignal.timeout(init.timeoutMs ?? DEFAULT_TIMEOUT_MS), ...(init.signal === undefined ? [] : [init.signal])])
}

async function send(url: URL, body: Uint8Array, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: requestSignal(init) })
  } catch (error) {
    throw createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`, { cause: error })
  }
}

/** An answer longer than this is refused before it is decoded. */
const MAX_ANSWER = 64 * 1024

async function readAnswer(url: URL, response: Response): Promise<Buffer> {
  const bytes = await readBounded(url, response)
  if (response.ok) return bytes
  let answer: { code?: unknown; message?: unknown } = {}
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as unknown
    if (typeof parsed === 'object' && parsed !== null) answer = parsed
  } catch {
    throw createError('ERR_BAD_RESPONSE', `the CA answered ${url.pathname} with ${response.status} without JSON`)
  }
  const code = isErrorCode(answer.code) ? answer.code : 'ERR_BAD_RESPONSE'
  throw createError(code, typeof answer.message === 'string' ? answer.message : `the CA answered ${response.status}`)
}

/** The answer's body, refused once it passes {@link MAX_ANSWER} bytes (a hostile CA cannot fill memory). */
async function readBounded(url: URL, response: Response): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength
    if (size > MAX_ANSWER) {
      await response.body?.cancel().catch(() => {})
      throw createError('ERR_BAD_RESPONSE', `the CA answered ${url.pathname} with more than ${MAX_ANSWER} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
