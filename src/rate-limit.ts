/**
 * A per-source token bucket (the CA API per IP address, the quote responder per peer): each source may make `burst` requests at once and
 * `perSecond` on average. Buckets of quiet sources are dropped, so memory stays bounded by the
 * number of sources seen within one refill period (and never above `maxSources`).
 */

/** Options of {@link RateLimiter}. */
export interface RateLimiterInit {
  /** Sustained requests per second per source. Default 5. */
  perSecond?: number
  /** Requests a quiet source may make at once. Default 20. */
  burst?: number
  /** Sources tracked at most; beyond that the stalest are forgotten. Default 10,000. */
  maxSources?: number
  now?: () => number
}

interface Bucket {
  tokens: number
  updatedAt: number
}

export class RateLimiter {
  readonly #perSecond: number
  readonly #burst: number
  readonly #maxSources: number
  readonly #now: () => number
  readonly #buckets = new Map<string, Bucket>()

  constructor(init: RateLimiterInit = {}) {
    this.#perSecond = init.perSecond ?? 5
    this.#burst = init.burst ?? 20
    this.#maxSources = init.maxSources ?? 10_000
    this.#now = init.now ?? Date.now
  }

  /** Takes one token for `source`; false means the source is over its limit. */
  take(source: string): boolean {
    const now = this.#now()
    const bucket = this.#buckets.get(source)
    const tokens = bucket === undefined ? this.#burst : Math.min(this.#burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.#perSecond)
    this.#buckets.delete(source) // re-inserted below: the Map's order is then least recently seen first
    if (this.#buckets.size >= this.#maxSources) {
      const stalest = this.#buckets.keys().next()
      if (stalest.done !== true) this.#buckets.delete(stalest.value)
    }
    const allowed = tokens >= 1
    this.#buckets.set(source, { tokens: allowed ? tokens - 1 : tokens, updatedAt: now })
    return allowed
  }
}

/**
 * The source a request is counted under: an IPv4 address as is (also when IPv4-mapped), an
 * IPv6 address by its /64 prefix, since one host is routinely given a whole /64 and could
 * otherwise start every request from a fresh address with a fresh budget.
 */
export function sourceOf(address: string | undefined): string {
  if (address === undefined) return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (!address.includes(':')) return address
  const [head = '', tail] = address.split('%')[0]!.toLowerCase().split('::')
  const front = head === '' ? [] : head.split(':')
  const back = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? front : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back]
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, '')).join(':')}::/64`
}
