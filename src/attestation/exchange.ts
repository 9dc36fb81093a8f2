/**
 * Fresh quotes on demand, over a secure link: the verifier (the gateway) sends a nonce and the
 * PCRs it wants; the node answers with a quote over that nonce, its attestation key, and the
 * binding of that key to its certificate key.
 *
 * The exchange runs on its own stream of the link's message layer ({@link Mux}), protocol id
 * {@link QUOTE_PROTOCOL}, so a link to a node carries quotes beside its other protocols:
 * {@link serveQuotes} on the node, {@link askQuote} on the verifier. A stream carries exactly
 * one request and its answer, and the node ends it after the answer; a broken line resets that
 * stream, not the link.
 *
 * A quote costs the node's TPM real time (tens to hundreds of ms, and a TPM does one thing at a
 * time), so the node answers sparingly: by default only peers whose certificate carries the
 * {@link VERIFIER_ROLE} role (`ERR_FORBIDDEN` otherwise), one request at a time per link with at
 * most {@link ServeQuotesInit.maxQueued} waiting, and each peer within a token bucket
 * (`ERR_RATE_LIMITED`); refusals are answered at once, without touching the TPM.
 *
 * One JSON object per line, in both directions, at most {@link MAX_LINE} bytes a line; the
 * messages are encoded and decoded by the core (see `protocol/quote.ts`). This module moves
 * the lines.
 *
 * The link is already mutually authenticated, so the verifier knows which device answers; the
 * answer itself is checked by {@link verifyQuote} and {@link verifyAkBinding}.
 */
import type { Duplex } from 'node:stream'

import { RateLimiter } from '../rate-limit.js'
import type { Mux } from '../channels/mux.js'
import { createError, isErrorCode, ZtError } from '../errors.js'
import type { PeerIdentity } from '../primitives/pki/index.js'
import { decodeQuoteAnswer, decodeQuoteRequest, encodeQuoteAnswer, encodeQuoteRequest, MAX_QUOTE_LINE, type BoundQuote, type QuoteAnswer, type QuoteRequest } from '../protocol/quote.js'

export type { BoundQuote, QuoteRequest } from '../protocol/quote.js'

/** The longest line either side accepts. */
export const MAX_LINE = MAX_QUOTE_LINE

/** The message-layer protocol id of the quote exchange. */
export const QUOTE_PROTOCOL = '/ztmesh/quote/1'

/** The role a peer's certificate must carry for {@link serveQuotes}' default `allow`. */
export const VERIFIER_ROLE = 'gateway'

/** The default quote budget of one peer: {@link QUOTE_RATE.burst} at once, then one per 10 s. */
export const QUOTE_RATE = Object.freeze({ perSecond: 0.1, burst: 5 })

/** Options of {@link serveQuotes}. */
export interface ServeQuotesInit {
  /** Which peers may ask for quotes. Default: those whose certificate has the role {@link VERIFIER_ROLE}. */
  allow?: (peer: PeerIdentity) => boolean
  /**
   * The per-peer budget (keyed by tenant and device). Share one across the links of a process
   * (as `DeviceIdentity.answerQuotes` does) so a peer cannot multiply it by opening links.
   * Default: a {@link QUOTE_RATE} bucket for this link alone.
   */
  limiter?: RateLimiter
  /** Requests that may wait on this link behind the one being answered. Default 1. */
  maxQueued?: number
}

/**
 * Answers quote requests on the {@link QUOTE_PROTOCOL} streams the verifier opens on `mux`, with
 * `produce`: one request per stream, the stream ended after its answer, one `produce` at a time
 * on this link, within the allow rule and the per-peer budget of `init` (see the module notes).
 */
export function serveQuotes(mux: Mux, produce: (request: QuoteRequest) => Promise<BoundQuote>, init: ServeQuotesInit = {}): void {
  const allow = init.allow ?? ((peer: PeerIdentity) => peer.roles.includes(VERIFIER_ROLE))
  const limiter = init.limiter ?? new RateLimiter({ ...QUOTE_RATE, maxSources: 16 })
  const maxQueued = init.maxQueued ?? 1
  let busy = 0
  let queue = Promise.resolve()
  mux.handle(QUOTE_PROTOCOL, (stream, peer) => {
    stream.on('error', () => {}) // a reset stream concerns only its own request
    answerQuoteRequest(stream, (request) => {
      if (!allow(peer)) throw createError('ERR_FORBIDDEN', 'this node answers quote requests from its verifiers only')
      if (busy > maxQueued || !limiter.take(`${peer.tenant}/${peer.deviceId}`)) throw createError('ERR_RATE_LIMITED', 'too many quote requests')
      busy++
      const answer = queue.then(() => produce(request))
      queue = answer.then(
        () => undefined,
        () => undefined,
      )
      return answer.finally(() => busy--)
    })
  })
}

/**
 * Asks the node at the other end of `mux` for a quote on a stream of its own; rejects as
 * {@link requestQuote} does, and with `ERR_MUX_UNSUPPORTED_PROTOCOL` when the node serves no
 * quotes. The whole exchange, the stream's opening included, is bounded by `timeoutMs` and ends
 * with `ERR_ABORTED` when `signal` aborts.
 */
export async function askQuote(mux: Mux, request: QuoteRequest, init: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<BoundQuote> {
  const timeoutMs = init.timeoutMs ?? 10_000
  const started = Date.now()
  const stream = await mux.open(QUOTE_PROTOCOL, { timeoutMs, ...(init.signal !== undefined && { signal: init.signal }) })
  stream.on('error', () => {}) // failures surface through requestQuote
  try {
    return await requestQuote(stream, request, Math.max(1, timeoutMs - (Date.now() - started)), init.signal)
  } finally {
    stream.end()
  }
}

/**
 * Asks the node at the other end of `link` for a quote; rejects with `ERR_TIMEOUT` after
 * `timeoutMs`, `ERR_ABORTED` when `signal` aborts, `ERR_CLOSED` when the link ends first,
 * `ERR_ATTEST_MALFORMED` for an answer that is not one, or the code the node reported.
 */
export function requestQuote(link: Duplex, request: QuoteRequest, timeoutMs = 10_000, signal?: AbortSignal): Promise<BoundQuote> {
  link.write(encodeQuoteRequest(request))
  return readLine(link, timeoutMs, signal).then((line) => {
    const answer = decodeQuoteAnswer(line)
    if ('errorCode' in answer) throw createError(isErrorCode(answer.errorCode) ? answer.errorCode : 'ERR_ATTEST_MALFORMED', `the node could not quote (${answer.errorCode})`)
    return answer.quote
  })
}

/**
 * Answers the one quote request of `stream` with `produce`, then ends the stream: whatever
 * follows the request's line is never read. A request that is not one, or a failure of
 * `produce`, is answered with an error line carrying the code.
 */
export function answerQuoteRequest(stream: Duplex, produce: (request: QuoteRequest) => Promise<BoundQuote>): void {
  let buffered = Buffer.alloc(0)
  const onData = (chunk: Buffer | string) => {
    buffered = Buffer.concat([buffered, typeof chunk === 'string' ? Buffer.from(chunk) : chunk])
    const newline = buffered.indexOf(0x0a)
    if (newline >= 0) {
      stream.off('data', onData)
      stream.pause()
      void answer(buffered.subarray(0, newline))
    } else if (buffered.length > MAX_LINE) {
      stream.off('data', onData)
      stream.destroy(createError('ERR_ATTEST_MALFORMED', 'a quote request line is too long'))
    }
  }
  stream.on('data', onData)
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
    if (!stream.destroyed) stream.end(bytes)
  }
}

/** The next line from `link` (bounded in length and time, and cut short by `signal`). */
function readLine(link: Duplex, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(createError('ERR_ABORTED', 'the quote request was aborted'))
      return
    }
    let buffered = Buffer.alloc(0)
    const onAbort = () => done(createError('ERR_ABORTED', 'the quote request was aborted'))
    const done = (error: unknown, line?: Buffer) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
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
    signal?.addEventListener('abort', onAbort, { once: true })
    link.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError)
  })
}
