/**
 * One-time enrollment tokens: single use, expiring, bound to one device id and tenant.
 *
 * A token is the core's `ztm2.` format (`ztmesh_core::enroll::EnrollmentToken`): a secret, the
 * SHA-256 of the root's SubjectPublicKeyInfo (the device pins it: step-ca's root fingerprint),
 * the tenant and the device id. The token never reaches the CA again: a request names it by its
 * id and proves it holds it with a signature, under an Ed25519 key derived from the token, over
 * what it asks for (the CSR and node id, or the node id of a nonce request). A captured request
 * cannot be redeemed with another CSR. The registry keeps the id and the proof key's public half,
 * never the token: a copy of the registry can check proofs, not make them, so it cannot enroll.
 *
 * Redemption happens inside the caller's enrollment transaction, so a token is marked used in
 * the same commit as the certificate it paid for: never used-but-unissued, never issued twice.
 */

import { createError } from '../errors.js'
import type { Db } from '../storage/index.js'
import { checkDeviceId, checkRoles, checkTenant } from '../protocol/ids.js'
import { generateEnrollmentToken, verifyEnrollmentProof, verifyNonceProof, type EnrollRequest, type NonceRequest } from '../protocol/enroll.js'

/** What a valid token entitles its bearer to. */
export interface TokenClaim {
  deviceId: string
  tenant: string
  /** The roles its certificate carries. */
  roles: string[]
  /** The token's id: the key under which redemption is recorded. */
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

const DEFAULT_TTL_SECONDS = 86_400
const MAX_TTL_SECONDS = 30 * 86_400
const TOKEN_ID = /^[0-9a-f]{64}$/

interface TokenRow {
  device_id: string
  tenant: string
  expires_at: number
  used_at: number | null
  roles: string
  proof_key: string | null
}

/** Creates, checks and redeems enrollment tokens in the CA registry. */
export class TokenStore {
  readonly #db: Db
  readonly #now: () => number

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db
    this.#now = now
  }

  /**
   * Creates a token pinning the root whose SPKI SHA-256 is `rootSpkiSha256` (hex) and returns
   * it. Only its id and public proof key are stored: show the token once.
   */
  create(init: CreateTokenInit & { rootSpkiSha256: string }): { token: string; expiresAt: number } {
    checkDeviceId(init.deviceId)
    checkTenant(init.tenant)
    const ttl = init.ttlSeconds ?? DEFAULT_TTL_SECONDS
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
      throw createError('ERR_INVALID_ARG', `token lifetime must be 1..${MAX_TTL_SECONDS} seconds`)
    }
    // The core's rule, the one certificates are issued under (so `pos:cashier` is a role).
    const roles = init.roles ?? []
    checkRoles(roles)
    const { token, id, proofKey } = generateEnrollmentToken(init.rootSpkiSha256, init.tenant, init.deviceId)
    const now = this.#now()
    const expiresAt = now + ttl * 1000
    this.#db
      .prepare('INSERT INTO tokens (hash, device_id, tenant, created_at, expires_at, roles, proof_key) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, init.deviceId, init.tenant, now, expiresAt, JSON.stringify(roles), proofKey)
    return { token, expiresAt }
  }

  /**
   * Checks the token an enrollment request presents: `ERR_TOKEN_INVALID` if its id is malformed
   * or unknown, `ERR_TOKEN_PROOF` if its proof is not over this CSR and node id (a captured
   * request replayed with another CSR), `ERR_TOKEN_EXPIRED` past its lifetime, `ERR_TOKEN_USED`
   * if already redeemed. The proof is checked first: without the token, nothing else is learnt.
   * `seen` hears whose token the request names before the proof is checked (for the audit row
   * of a refusal).
   */
  check(request: Pick<EnrollRequest, 'tokenId' | 'tokenProof' | 'csr' | 'nodeId'>, seen?: (holder: { deviceId: string; tenant: string }) => void): TokenClaim {
    const { id, row } = this.#find(request.tokenId)
    seen?.({ deviceId: row.device_id, tenant: row.tenant })
    verifyEnrollmentProof(row.proof_key, request)
    return this.#claim(id, row)
  }

  /**
   * Checks the token a nonce request presents, with the same codes as {@link check}; the token
   * must be for the node the nonce is asked for (`ERR_FORBIDDEN`).
   */
  checkNonceRequest(request: NonceRequest): TokenClaim {
    const { id, row } = this.#find(request.tokenId)
    verifyNonceProof(row.proof_key, request)
    const claim = this.#claim(id, row)
    if (claim.deviceId !== request.nodeId) throw createError('ERR_FORBIDDEN', 'the token is for another device')
    return claim
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

  #find(tokenId: unknown): { id: string; row: TokenRow & { proof_key: string } } {
    if (typeof tokenId !== 'string' || !TOKEN_ID.test(tokenId)) throw createError('ERR_TOKEN_INVALID', 'the enrollment token id is malformed')
    const row = this.#db.prepare('SELECT device_id, tenant, expires_at, used_at, roles, proof_key FROM tokens WHERE hash = ?').get(tokenId) as TokenRow | undefined
    // A token of the earlier format (no proof key) cannot prove anything: it is as good as unknown.
    if (row === undefined || row.proof_key === null) throw createError('ERR_TOKEN_INVALID', 'the enrollment token is not known')
    return { id: tokenId, row: row as TokenRow & { proof_key: string } }
  }

  #claim(id: string, row: TokenRow): TokenClaim {
    if (row.used_at !== null) throw createError('ERR_TOKEN_USED', 'the enrollment token was already used')
    if (this.#now() >= row.expires_at) throw createError('ERR_TOKEN_EXPIRED', 'the enrollment token has expired')
    return { deviceId: row.device_id, tenant: row.tenant, roles: JSON.parse(row.roles) as string[], tokenHash: id }
  }
}
