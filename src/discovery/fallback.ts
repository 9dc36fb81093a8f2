/**
 * The fallback chain of seed 000: reach a peer through the gateway, else a local mDNS peer, else
 * the cloud hub, else a manual address. Each path runs alone, with its own time limit and its own
 * AbortSignal; a path that fails or runs out of time is aborted before the next starts, so at
 * most one path works at a time and none is left running when the chain settles.
 */

import { performance } from 'node:perf_hooks'

import { createError, type ZtError } from '../errors.js'
import { FALLBACK_PATHS, MAX_TIMEOUT_MS } from './constants.js'

/** A path of the fallback chain. */
export type FallbackPath = (typeof FALLBACK_PATHS)[number]

/** One way to reach the peer. */
export interface PathAttempt<T> {
  path: FallbackPath
  /**
   * Does the work; must stop and settle when `signal` aborts (its reason is the `ZtError` that
   * ended the attempt: `ERR_TIMEOUT` or `ERR_ABORTED`). A rejection's `code` is reported.
   */
  attempt(signal: AbortSignal): Promise<T>
  /** This path's time limit, ms (default: the chain's `timeoutMs`). */
  timeoutMs?: number
}

/** What `onAttempt` is told after each attempt. */
export interface AttemptEvent {
  path: FallbackPath
  ok: boolean
  /** How long the attempt took, ms. */
  ms: number
  /** Why it failed: the rejection's code (`ERR_UNREACHABLE` for an error without one), `ERR_TIMEOUT`, `ERR_ABORTED`. */
  code?: string
}

/** Options of {@link runFallbackChain}. */
export interface FallbackInit<T> {
  /** Each attempt's time limit, ms, unless the attempt sets its own. */
  timeoutMs: number
  /** Aborts the whole chain: the running attempt is aborted and the chain rejects with `ERR_ABORTED`. */
  signal?: AbortSignal
  /** Told of every attempt, in order, as it ends (an exception it throws is ignored). */
  onAttempt?: (event: AttemptEvent) => void
  /**
   * Given a value an attempt produced after the chain stopped waiting for it (it resolved after
   * its timeout or an abort), so that a late connection is closed rather than leaked.
   */
  discard?: (value: T, path: FallbackPath) => void
}

/** What the chain resolves with: the path that worked, its value, and the chain's total time. */
export interface FallbackResult<T> {
  path: FallbackPath
  value: T
  /** From the start of the chain to this success, ms. */
  ms: number
}

/** The error of a chain where every path failed: `ERR_UNREACHABLE`, with every attempt. */
export type FallbackError = ZtError & { readonly attempts: readonly AttemptEvent[] }

/**
 * Tries the attempts in the chain's order (gateway → mdns → cloud → manual; several attempts of
 * one path keep the order given; absent paths are skipped) and resolves with the first that
 * succeeds. Rejects with `ERR_UNREACHABLE` listing each path's code (`error.attempts` holds the
 * events) when all fail, `ERR_ABORTED` when `init.signal` aborts, `ERR_INVALID_ARG` for no
 * attempts or a bad time limit. No timer or listener is left behind.
 *
 * @example
 * ```ts
 * const { path, value: link } = await runFallbackChain([
 *   { path: 'gateway', attempt: (signal) => viaHub(peer, signal) },
 *   { path: 'mdns', attempt: (signal) => connectSecure({ ...found, serverDevice: peer, signal }) },
 * ], { timeoutMs: 3000, onAttempt: (e) => console.log(JSON.stringify({ event: 'attempt', ...e })), discard: (link) => link.destroy() })
 * ```
 */
export async function runFallbackChain<T>(attempts: readonly PathAttempt<T>[], init: FallbackInit<T>): Promise<FallbackResult<T>> {
  checkTimeout(init.timeoutMs, 'timeoutMs')
  if (!Array.isArray(attempts) || attempts.length === 0) throw createError('ERR_INVALID_ARG', 'the fallback chain has no path to try')
  for (const a of attempts) {
    if (!FALLBACK_PATHS.includes(a.path)) throw createError('ERR_INVALID_ARG', `unknown fallback path ${JSON.stringify(a.path)}`)
    if (typeof a.attempt !== 'function') throw createError('ERR_INVALID_ARG', `the ${a.path} attempt is not a function`)
    if (a.timeoutMs !== undefined) checkTimeout(a.timeoutMs, `${a.path}.timeoutMs`)
  }
  const ordered = attempts
    .map((a, index) => ({ a, index }))
    .sort((x, y) => FALLBACK_PATHS.indexOf(x.a.path) - FALLBACK_PATHS.indexOf(y.a.path) || x.index - y.index)
    .map(({ a }) => a)

  const start = performance.now()
  const events: AttemptEvent[] = []
  for (const a of ordered) {
    if (init.signal?.aborted) throw createError('ERR_ABORTED', 'the fallback chain was aborted')
    const began = performance.now()
    const outcome = await runOne(a, a.timeoutMs ?? init.timeoutMs, init)
    const event: AttemptEvent = { path: a.path, ok: outcome.ok, ms: round(performance.now() - began), ...(outcome.ok ? {} : { code: outcome.code }) }
    events.push(event)
    try {
      init.onAttempt?.(event)
    } catch {
      // A listener's bug must not change which path is chosen.
    }
    if (outcome.ok) return { path: a.path, value: outcome.value, ms: round(performance.now() - start) }
    if (outcome.code === 'ERR_ABORTED' && init.signal?.aborted) throw createError('ERR_ABORTED', 'the fallback chain was aborted')
  }
  const error = createError('ERR_UNREACHABLE', `no path reached the peer: ${events.map((e) => `${e.path} ${e.code}`).join(', ')}`)
  throw Object.assign(error, { attempts: Object.freeze(events) }) as FallbackError
}

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string }

/** Runs one attempt under its timeout and the chain's signal; aborts its signal whenever it did not succeed. */
function runOne<T>(a: PathAttempt<T>, timeoutMs: number, init: FallbackInit<T>): Promise<Outcome<T>> {
  const controller = new AbortController()
  return new Promise<Outcome<T>>((resolve) => {
    let settled = false
    const finish = (outcome: Outcome<T>, reason?: ZtError) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      init.signal?.removeEventListener('abort', onAbort)
      // The loser's work stops: its signal aborts with the reason it lost (or the chain moved on).
      if (!outcome.ok) controller.abort(reason ?? createError('ERR_ABORTED', `the ${a.path} attempt failed and was abandoned`))
      resolve(outcome)
    }
    const onAbort = () => finish({ ok: false, code: 'ERR_ABORTED' }, createError('ERR_ABORTED', 'the fallback chain was aborted'))
    const timer = setTimeout(() => finish({ ok: false, code: 'ERR_TIMEOUT' }, createError('ERR_TIMEOUT', `the ${a.path} path did not answer within ${timeoutMs} ms`)), timeoutMs)
    init.signal?.addEventListener('abort', onAbort, { once: true })
    let work: Promise<T>
    try {
      work = Promise.resolve(a.attempt(controller.signal))
    } catch (error) {
      work = Promise.reject(error)
    }
    work.then(
      (value) => {
        if (settled) {
          try {
            init.discard?.(value, a.path)
          } catch {
            // Nothing waits for a late value any more; its disposal failing cannot be reported.
          }
          return
        }
        finish({ ok: true, value })
      },
      (error: unknown) => finish({ ok: false, code: codeOf(error) }),
    )
  })
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code !== '' ? code : 'ERR_UNREACHABLE'
}

function checkTimeout(ms: unknown, key: string): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) throw createError('ERR_INVALID_ARG', `${key} must be a number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`)
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}
