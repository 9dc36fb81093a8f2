/**
 * How the enrollment API keeps refusals from filling the disk (issue 10 §5): one client made
 * 3,000 requests in 1.7 s and grew the registry by 53 MB, because every request, rate-limited
 * ones included, wrote a synced audit row holding the path it sent.
 *
 * Audit rows name routes by id from a fixed set, never by the path a client sent. A request
 * within the rate limit is audited on its own (the limit bounds how many rows a source can
 * cause). A refusal that costs the server nothing, a request over the rate limit or a
 * connection over the caps, is counted instead: per source and reason, the first of each
 * interval is written at once (an operator sees the attack start) and the rest are flushed as
 * one row with their count at the end of the interval.
 */

import type { AuditEvent } from '../audit/index.js'
import { ENROLLMENT_ROUTES } from '../protocol/enroll.js'

/** The routes of the enrollment API, and `other` for every path it does not serve. */
export const ROUTE_IDS = ['nonce', 'enroll', 'rotate', 'crl', 'rootCrl', 'revoke', 'other'] as const

/** A route id: what audit rows name instead of a path. */
export type RouteId = (typeof ROUTE_IDS)[number]

/** The action of a flushed count. */
export const TALLY_ACTION = 'http.tally'

/** The id of the route at `pathname`; `other` for any path the API does not serve. */
export function routeId(pathname: string): RouteId {
  for (const [id, path] of Object.entries(ENROLLMENT_ROUTES)) if (path === pathname) return id as RouteId
  return 'other'
}

/** The audit action of a request to `route`. */
export function routeAction(route: RouteId): string {
  return `http.${route}`
}

/** Options of {@link RequestTally}. */
export interface RequestTallyInit {
  /** Sources counted separately per interval; the rest are counted together as `other-sources`. Default 1,000. */
  maxSources?: number
}

interface Count {
  /** Refusals since the first, per route. */
  routes: Map<RouteId, number>
}

/** Counts refusals per source and reason until {@link RequestTally.flush}. */
export class RequestTally {
  readonly #maxSources: number
  /** source → reason → what is not written yet. */
  readonly #counts = new Map<string, Map<string, Count>>()

  constructor(init: RequestTallyInit = {}) {
    this.#maxSources = init.maxSources ?? 1000
  }

  /**
   * Counts one refusal of `source` on `route` for `reason` (an error code). Returns the event to
   * write now for the first of its source and reason in this interval, else undefined.
   */
  count(source: string, route: RouteId, reason: string): AuditEvent | undefined {
    const actor = this.#counts.has(source) || this.#counts.size < this.#maxSources ? source : 'other-sources'
    const reasons = this.#counts.get(actor) ?? new Map<string, Count>()
    this.#counts.set(actor, reasons)
    const count = reasons.get(reason)
    if (count === undefined) {
      reasons.set(reason, { routes: new Map() })
      return { actor, action: routeAction(route), outcome: 'deny', reason, detail: { counted: 'first of interval' } }
    }
    count.routes.set(route, (count.routes.get(route) ?? 0) + 1)
    return undefined
  }

  /** The refusals counted since their first, as one event per source and reason; starts a new interval. */
  flush(): AuditEvent[] {
    const events: AuditEvent[] = []
    for (const [actor, reasons] of this.#counts) {
      for (const [reason, { routes }] of reasons) {
        if (routes.size === 0) continue
        const count = [...routes.values()].reduce((a, b) => a + b, 0)
        events.push({ actor, action: TALLY_ACTION, outcome: 'deny', reason, detail: { count, ...Object.fromEntries(routes) } })
      }
    }
    this.#counts.clear()
    return events
  }
}
