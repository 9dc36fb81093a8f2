/** The CA's per-source rate limit is the shared token bucket (`src/rate-limit.ts`), also used by the quote responder. */
export { RateLimiter, sourceOf, type RateLimiterInit } from '../rate-limit.js'
