/**
 * One-time enrollment tokens: single use, expiring, bound to one device id and tenant, and
 * stored only as SHA-256 hashes, so a copy of the registry cannot enroll anything.
 *
 * A token is `ztm1.` followed by 32 random bytes in base64url. Redemption happens inside the
 * caller's enrollment transaction, so a token is marked used in the same commit as the
 * certificate it paid for: never used-but-unissued, never issued twice.
 */

import { createHash, randomBytes } from 'node:crypto'

import { createError } from '../errors.js'
import type { Db } from '../storage/index.js'
import { checkDeviceId, checkRoles, checkTenant } from '../protocol/ids.js'

/** What a valid token entitles its bearer to. */
export interface TokenClaim {
  deviceId: string
  tenant: string
  /** The roles its certificate carries. */
  roles: string[]
  /** The token's hash: the key under which redemption is recorded. */
  tokenHash: string
}

/** Options of {@link TokenStore.create}. */
export interface CreateTokenInit {
  deviceId: string
  tenant: string
  /** Lifetime in seconds. Default 86400 (one day); at most 30 days. */
  ttlSeconds?: number
  /** The roles the device's certificate will carry (the core's rule: at most 32). Default none. */
  roles?: readonly string[]
}

const PREFIX = 'ztm1.'
const DEFAULT_TTL_SECONDS = 86_400
const MAX_TTL_SECONDS = 30 * 86_400

/** Creates, checks and redeems enrollment tokens in the CA registry. */
export class TokenStore {
  readonly #db: Db
  readonly #now: () => number

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db
    this.#now = now
  }

  /** Creates a token and returns it. Only its hash is stored: show the token once. */
  create(init: CreateTokenInit): { token: string; expiresAt: number } {
    checkDeviceId(init.deviceId)
    checkTenant(init.tenant)
    const ttl = init.ttlSeconds ?? DEFAULT_TTL_SECONDS
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
      throw createError('ERR_INVALID_ARG', `token lifetime must be 1..${MAX_TTL_SECONDS} seconds`)
    }
    // The core's rule, the one certificates are issued under (so `pos:cashier` is a role).
    const roles = init.roles ?? []
    checkRoles(roles)
    const token = PREFIX + randomBytes(32).toString('base64url')
    const now = this.#now()
    const expiresAt = now + ttl * 1000
    this.#db
      .prepare('INSERT INTO tokens (hash, device_id, tenant, created_at, expires_at, roles) VALUES (?, ?, ?, ?, ?, ?)')
      .run(hashToken(token), init.deviceId, init.tenant, now, expiresAt, JSON.stringify(roles))
    return { token, expiresAt }
  }

  /**
   * Checks a presented token: `ERR_TOKEN_INVALID` if it is malformed or unknown,
   * `ERR_TOKEN_EXPIRED` past its lifetime, `ERR_TOKEN_USED` if already redeemed.
   */
  check(token: unknown): TokenClaim {
    if (typeof token !== 'string' || !/^ztm1\.[A-Za-z0-9_-]{43}$/.test(token)) {
      throw createError('ERR_TOKEN_INVALID', 'the enrollment token is malformed')
    }
    const tokenHash = hashToken(token)
    const row = this.#db.prepare('SELECT device_id, tenant, expires_at, used_at, roles FROM tokens WHERE hash = ?').get(tokenHash) as
      | { device_id: string; tenant: string; expires_at: number; used_at: number | null; roles: string }
      | undefined
    if (row === undefined) throw createError('ERR_TOKEN_INVALID', 'the enrollment token is not known')
    if (row.used_at !== null) throw createError('ERR_TOKEN_USED', 'the enrollment token was already used')
    if (this.#now() >= row.expires_at) throw createError('ERR_TOKEN_EXPIRED', 'the enrollment token has expired')
    return { deviceId: row.device_id, tenant: row.tenant, roles: JSON.parse(row.roles) as string[], tokenHash }
  }

  /**
   * Marks a checked token used by the certificate `serial`. Call it in the same transaction as
   * {@link check} and the issuance; it throws `ERR_TOKEN_USED` if another redemption won.
   */
  redeem(claim: TokenClaim, serial: string): void {
    const result = this.#db
      .prepare('UPDATE tokens SET used_at = ?, serial = ? WHERE hash = ? AND used_at IS NULL')
      .run(this.#now(), serial, claim.tokenHash)
    if (result.changes !== 1) throw createError('ERR_TOKEN_USED', 'the enrollment token was already used')
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}
