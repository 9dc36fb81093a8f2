/** The device's requests to the CA's enrollment API: JSON in, JSON out, each with a time limit. */
import { createError, isErrorCode } from '../errors.js'
import { DEFAULT_TIMEOUT_MS } from './constants.js'

/** The time limit and abort signal of a request. */
export interface RequestInit {
  signal?: AbortSignal
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number
}

/** POSTs JSON and returns the JSON answer; a `{code, message}` answer is thrown as that error. */
export async function postJson(url: URL, body: unknown, init: RequestInit): Promise<Record<string, unknown>> {
  return readAnswer(url, await send(url, body, init))
}

/** Like {@link postJson}, but resolves `undefined` when the CA answers 404: it has no such endpoint. */
export async function postJsonIfServed(url: URL, body: unknown, init: RequestInit): Promise<Record<string, unknown> | undefined> {
  const response = await send(url, body, init)
  if (response.status !== 404) return readAnswer(url, response)
  await response.body?.cancel()
  return undefined
}

async function send(url: URL, body: unknown, init: RequestInit): Promise<Response> {
  const signals = [AbortSignal.timeout(init.timeoutMs ?? DEFAULT_TIMEOUT_MS), ...(init.signal === undefined ? [] : [init.signal])]
  try {
    return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.any(signals) })
  } catch (error) {
    throw createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`, { cause: error })
  }
}

async function readAnswer(url: URL, response: Response): Promise<Record<string, unknown>> {
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw createError('ERR_BAD_RESPONSE', `the CA answered ${url.pathname} with ${response.status} without JSON`)
  }
  if (typeof parsed !== 'object' || parsed === null) throw createError('ERR_BAD_RESPONSE', 'the CA answered with a non-object')
  const answer = parsed as Record<string, unknown>
  if (!response.ok) {
    const code = isErrorCode(answer.code) ? answer.code : 'ERR_BAD_RESPONSE'
    throw createError(code, typeof answer.message === 'string' ? answer.message : `the CA answered ${response.status}`)
  }
  return answer
}
