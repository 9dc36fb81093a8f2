/**
 * Fresh quotes on demand, over a secure link: the verifier (the gateway) sends a nonce and the
 * PCRs it wants; the node answers with a quote over that nonce, its attestation key, and the
 * binding of that key to its certificate key.
 *
 * The exchange runs on its own stream of the link's message layer ({@link Mux}), protocol id
 * {@link QUOTE_PROTOCOL}, so a link to a node carries quotes beside its other protocols:
 * {@link serveQuotes} on the node, {@link askQuote} on the verifier. A stream carries one
 * request and its answer; a broken line resets that stream, not the link.
 *
 * One JSON object per line, in both directions, at most {@link MAX_LINE} bytes a line; the
 * messages are encoded and decoded by the core (see `protocol/quote.ts`). This module moves
 * the lines.
 *
 * The link is already mutually authenticated, so the verifier knows which device answers; the
 * answer itself is checked by {@link verifyQuote} and {@link verifyAkBinding}.
 */
import type { Duplex } from 'node:stream'

import type { Mux } from '../channels/mux.js'
import { createError, isErrorCode, ZtError } from '../errors.js'
import { decodeQuoteAnswer, decodeQuoteRequest, encodeQuoteAnswer, encodeQuoteRequest, MAX_QUOTE_LINE, type BoundQuote, type QuoteAnswer, type QuoteRequest } from '../protocol/quote.js'

export type { BoundQuote, QuoteRequest } from '../protocol/quote.js'

/** The longest line either side accepts. */
export const MAX_LINE = MAX_QUOTE_LINE

/** The message-layer protocol id of the quote exchange. */
export const QUOTE_PROTOCOL = '/ztmesh/quote/1'

/**
 * Answers quote requests on every {@link QUOTE_PROTOCOL} stream the verifier opens on `mux`, with
 * `produce` (see {@link answerQuoteRequests}).
 */
export function serveQuotes(mux: Mux, produce: (request: QuoteRequest) => Promise<BoundQuote>): void {
  mux.handle(QUOTE_PROTOCOL, (stream) => {
    stream.on('error', () => {}) // a reset stream concerns only its own request
    answerQuoteRequests(stream, produce)
  })
}

/**
 * Asks the node at the other end of `mux` for a quote on a stream of its own; rejects as
 * {@link requestQuote} does, and with `ERR_MUX_UNSUPPORTED_PROTOCOL` when the node serves no
 * quotes. The whole exchange, the stream's opening included, is bounded by `timeoutMs`.
 */
export async function askQuote(mux: Mux, request: QuoteRequest, init: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<BoundQuote> {
  const timeoutMs = init.timeoutMs ?? 10_000
  const started = Date.now()
  const stream = await mux.open(QUOTE_PROTOCOL, { timeoutMs, ...(init.signal !== undefined && { signal: init.signal }) })
  stream.on('error', () => {}) // failures surface through requestQuote
  try {
    return await requestQuote(stream, request, Math.max(1, timeoutMs - (Date.now() - started)))
  } finally {
    stream.end()
  }
}

/**
 * Asks the node at the other end of `link` for a quote; rejects with `ERR_TIMEOUT` after
 * `timeoutMs`, `ERR_CLOSED` when the link ends first, `ERR_ATTEST_MALFORMED` for an answer that
 * is not one, or the code the node reported.
 */
export function requestQuote(link: Duplex, request: QuoteRequest, timeoutMs = 10_000): Promise<BoundQuote> {
  link.write(encodeQuoteRequest(request))
  return readLine(link, timeoutMs).then((line) => {
    const answer = decodeQuoteAnswer(line)
    if ('errorCode' in answer) throw createError(isErrorCode(answer.errorCode) ? answer.errorCode : 'ERR_ATTEST_MALFORMED', `the node could not quote (${answer.errorCode})`)
    return answer.quote
  })
}

/**
 * Answers the quote requests that arrive on `link` with `produce`, until the link ends. A request
 * that is not one, or a failure of `produce`, is answered with an error line carrying the code.
 */
export function answerQuoteRequests(link: Duplex, produce: (request: QuoteRequest) => Promise<BoundQuote>): void {
  let buffered = Buffer.alloc(0)
  let queue = Promise.resolve()
  link.on('data', (chunk: Buffer | string) => {
    buffered = Buffer.concat([buffered, typeof chunk === 'string' ? Buffer.from(chunk) : chunk])
    let newline: number
    while ((newline = buffered.indexOf(0x0a)) >= 0) {
      const line = buffered.subarray(0, newline)
      buffered = buffered.subarray(newline + 1)
      // One request at a time, answered in order.
      queue = queue.then(() => answer(line))
    }
    if (buffered.length > MAX_LINE) link.destroy(createError('ERR_ATTEST_MALFORMED', 'a quote request line is too long'))
  })
  const answer = async (line: Buffer) => {
    let reply: QuoteAnswer
    try {
      reply = { quote: await produce(decodeQuoteRequest(line)) }
    } catch (error) {
      reply = { errorCode: error instanceof ZtError ? error.code : 'ERR_INTERNAL' }
    }
    let bytes: Buffer
    try {
      bytes = encodeQuoteAnswer(reply)
    } catch (error) {
      // A quote too large for the line, say: the verifier hears the code, not a half answer.
      bytes = encodeQuoteAnswer({ errorCode: error instanceof ZtError ? error.code : 'ERR_INTERNAL' })
    }
    if (!link.destroyed) link.write(bytes)
  }
}

/** The next line from `link` (bounded in length and time). */
function readLine(link: Duplex, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const done = (error: unknown, line?: Buffer) => {
      clearTimeout(timer)
      link.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError)
      if (error === undefined) resolve(line!)
      else reject(error)
    }
    const onData = (chunk: Buffer | string) => {
      buffered = Buffer.concat([buffered, typeof chunk === 'string' ? Buffer.from(chunk) : chunk])
      const newline = buffered.indexOf(0x0a)
      if (newline >= 0) done(undefined, buffered.subarray(0, newline))
      else if (buffered.length > MAX_LINE) done(createError('ERR_ATTEST_MALFORMED', 'the quote answer is too long'))
    }
    const onEnd = () => done(createError('ERR_CLOSED', 'the link closed before the node answered'))
    const onError = (error: unknown) => done(error)
    const timer = setTimeout(() => done(createError('ERR_TIMEOUT', 'the node did not answer the quote request in time')), timeoutMs)
    link.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError)
  })
}
