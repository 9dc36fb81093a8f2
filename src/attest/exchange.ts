/**
 * Fresh quotes on demand, over a secure link: the verifier (the gateway) sends a nonce and the
 * PCRs it wants; the node answers with a quote over that nonce, its attestation key, and the
 * binding of that key to its certificate key.
 *
 * One JSON object per line, in both directions, at most {@link MAX_LINE} bytes a line:
 *
 * ```text
 * → {"v":1,"type":"quote-request","nonce":"<hex>","pcrs":[0,1,2,3,7]}
 * ← {"v":1,"type":"quote","ak_public_pem":"…","ak_binding":"<b64>","attest":"<b64>","signature":"<b64>","pcr_values":"<b64>"}
 * ← {"v":1,"type":"error","code":"ERR_TPM_UNAVAILABLE"}
 * ```
 *
 * The link is already mutually authenticated, so the verifier knows which device answers; the
 * answer itself is checked by {@link verifyQuote} and {@link verifyAkBinding}.
 */
import type { Duplex } from 'node:stream'

import { createError, isErrorCode, ZtError } from '../errors.js'
import type { QuoteFiles } from './index.js'

/** The longest line either side accepts. */
export const MAX_LINE = 64 * 1024

/** A quote with the binding of its attestation key to the device's certificate key. */
export interface BoundQuote extends QuoteFiles {
  /** The device certificate key's signature over `akBindingMessage(akPublicPem)`. */
  akBinding: Uint8Array
}

/** What a verifier asks for. */
export interface QuoteRequest {
  nonce: Uint8Array
  pcrs: number[]
}

/**
 * Asks the node at the other end of `link` for a quote; rejects with `ERR_TIMEOUT`
 * after `timeoutMs`, `ERR_ATTEST_MALFORMED` for an answer that is not one, or the code the node
 * reported.
 */
export function requestQuote(link: Duplex, request: QuoteRequest, timeoutMs = 10_000): Promise<BoundQuote> {
  link.write(`${JSON.stringify({ v: 1, type: 'quote-request', nonce: Buffer.from(request.nonce).toString('hex'), pcrs: request.pcrs })}\n`)
  return readLine(link, timeoutMs).then((line) => {
    const answer = parse(line)
    if (answer.type === 'error') {
      const code = answer.code
      throw createError(isErrorCode(code) ? code : 'ERR_ATTEST_MALFORMED', `the node could not quote (${String(code)})`)
    }
    const text = (name: string) => {
      const value = answer[name]
      if (typeof value !== 'string' || value.length === 0) throw createError('ERR_ATTEST_MALFORMED', `the quote answer has no ${name}`)
      return value
    }
    if (answer.type !== 'quote') throw createError('ERR_ATTEST_MALFORMED', 'the node did not answer with a quote')
    return {
      akPublicPem: text('ak_public_pem'),
      akBinding: Buffer.from(text('ak_binding'), 'base64'),
      attest: Buffer.from(text('attest'), 'base64'),
      signature: Buffer.from(text('signature'), 'base64'),
      pcrValues: Buffer.from(text('pcr_values'), 'base64'),
    }
  })
}

/**
 * Answers the quote requests that arrive on `link` with `produce`, until the link ends. A request
 * that is not one, or a failure of `produce`, is answered with an error line carrying the code.
 */
export function answerQuoteRequests(link: Duplex, produce: (request: QuoteRequest) => Promise<BoundQuote>): void {
  let buffered = ''
  let queue = Promise.resolve()
  link.setEncoding('utf8')
  link.on('data', (chunk: string) => {
    buffered += chunk
    if (buffered.length > MAX_LINE && !buffered.includes('\n')) {
      link.destroy(createError('ERR_ATTEST_MALFORMED', 'a quote request line is too long'))
      return
    }
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      // One request at a time, answered in order.
      queue = queue.then(() => answer(line))
    }
  })
  const answer = async (line: string) => {
    let reply: object
    try {
      const request = parse(line)
      const nonce = typeof request.nonce === 'string' && /^([0-9a-f]{2}){16,64}$/.test(request.nonce) ? Buffer.from(request.nonce, 'hex') : undefined
      const pcrs = Array.isArray(request.pcrs) && request.pcrs.length > 0 && request.pcrs.length <= 24 && request.pcrs.every((p) => Number.isInteger(p) && p >= 0 && p <= 23) ? (request.pcrs as number[]) : undefined
      if (request.type !== 'quote-request' || nonce === undefined || pcrs === undefined) throw createError('ERR_ATTEST_MALFORMED', 'not a quote request')
      const quote = await produce({ nonce, pcrs })
      reply = {
        v: 1,
        type: 'quote',
        ak_public_pem: quote.akPublicPem,
        ak_binding: Buffer.from(quote.akBinding).toString('base64'),
        attest: Buffer.from(quote.attest).toString('base64'),
        signature: Buffer.from(quote.signature).toString('base64'),
        pcr_values: Buffer.from(quote.pcrValues).toString('base64'),
      }
    } catch (error) {
      reply = { v: 1, type: 'error', code: error instanceof ZtError ? error.code : 'ERR_INTERNAL' }
    }
    if (!link.destroyed) link.write(`${JSON.stringify(reply)}\n`)
  }
}

function parse(line: string): Record<string, unknown> {
  try {
    const value = JSON.parse(line) as unknown
    if (value !== null && typeof value === 'object' && (value as { v?: unknown }).v === 1) return value as Record<string, unknown>
  } catch {
    // falls through
  }
  throw createError('ERR_ATTEST_MALFORMED', 'not a version-1 attestation message')
}

/** The next line from `link` (bounded in length and time). */
function readLine(link: Duplex, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = ''
    const done = (error: unknown, line?: string) => {
      clearTimeout(timer)
      link.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError)
      if (error === undefined) resolve(line!)
      else reject(error)
    }
    const onData = (chunk: Buffer | string) => {
      buffered += chunk.toString()
      const newline = buffered.indexOf('\n')
      if (newline >= 0) done(undefined, buffered.slice(0, newline))
      else if (buffered.length > MAX_LINE) done(createError('ERR_ATTEST_MALFORMED', 'the quote answer is too long'))
    }
    const onEnd = () => done(createError('ERR_CLOSED', 'the link closed before the node answered'))
    const onError = (error: unknown) => done(error)
    const timer = setTimeout(() => done(createError('ERR_TIMEOUT', 'the node did not answer the quote request in time')), timeoutMs)
    link.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError)
  })
}
