/**
 * The verifier's stores in the CA registry: single-use enrollment nonces and per-device
 * attestation records. Like the CA's own registry (`ca/registry.ts`) they hold their SQL here,
 * each statement once, take the shared database, and run inside the transaction the CA service
 * opens, so a nonce is consumed and a record written in the same commit as the certificate.
 */

import { randomBytes } from 'node:crypto'

import type { PcrPolicy } from '../index.js'
import { createError } from '../../errors.js'
import { checkDeviceId } from '../../protocol/ids.js'
import type { Db } from '../../storage/index.js'
import type { AttestationRecord, ReattestVerdict } from './index.js'

/** Outstanding nonces per node: more push out the oldest, so a node can always get one. */
const MAX_NONCES_PER_NODE = 16
/** Outstanding nonces in all; beyond this the endpoint answers `ERR_RATE_LIMITED`. */
const MAX_NONCES = 100_000
/** Expired nonces are kept this long, so a late use is reported as expired rather than unknown. */
const EXPIRED_NONCE_RETENTION_MS = 3_600_000

/** What a nonce's credential challenge expects: SHA-256 (hex) of the secret, and of the AK's SubjectPublicKeyInfo. */
export interface NonceChallenge {
  secretSha256: string
  akSpkiSha256: string
}

/** What happened to a presented nonce: consumed now, or why it was refused. */
export type NonceState = 'consumed' | 'unknown' | 'used' | 'expired'

/**
 * Enrollment nonces: 32 random bytes, bound to one node id, short-lived and single use.
 * Consumption happens in the caller's enrollment transaction, like token redemption.
 */
export class NonceStore {
  readonly #db: Db
  readonly #now: () => number

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db
    this.#now = now
  }

  /**
   * Issues a nonce for `nodeId`, with the credential challenge it carries if any (what the
   * activated secret must hash to, and the AK it is for); `ERR_INVALID_ARG` for a malformed id,
   * `ERR_RATE_LIMITED` when too many are outstanding.
   */
  issue(nodeId: unknown, ttlSeconds: number, challenge?: NonceChallenge): { nonce: string; expiresAt: number } {
    checkDeviceId(nodeId)
    const now = this.#now()
    this.#db.prepare('DELETE FROM attest_nonces WHERE expires_at <= ?').run(now - EXPIRED_NONCE_RETENTION_MS)
    const { n } = this.#db.prepare('SELECT count(*) AS n FROM attest_nonces').get() as { n: number }
    if (n >= MAX_NONCES) throw createError('ERR_RATE_LIMITED', 'too many attestation nonces are outstanding')
    this.#db
      .prepare('DELETE FROM attest_nonces WHERE node_id = ? AND nonce NOT IN (SELECT nonce FROM attest_nonces WHERE node_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?)')
      .run(nodeId, nodeId, MAX_NONCES_PER_NODE - 1)
    const nonce = randomBytes(32).toString('hex')
    const expiresAt = now + ttlSeconds * 1000
    this.#db
      .prepare('INSERT INTO attest_nonces (nonce, node_id, created_at, expires_at, credential_sha256, ak_spki_sha256) VALUES (?, ?, ?, ?, ?, ?)')
      .run(nonce, nodeId, now, expiresAt, challenge?.secretSha256 ?? null, challenge?.akSpkiSha256 ?? null)
    return { nonce, expiresAt }
  }

  /** The credential challenge `nonce` was issued with, if any. */
  challenge(nonce: string): NonceChallenge | undefined {
    const row = this.#db.prepare('SELECT credential_sha256, ak_spki_sha256 FROM attest_nonces WHERE nonce = ?').get(nonce.toLowerCase()) as
      | { credential_sha256: string | null; ak_spki_sha256: string | null }
      | undefined
    if (row === undefined || row.credential_sha256 === null || row.ak_spki_sha256 === null) return undefined
    return { secretSha256: row.credential_sha256, akSpkiSha256: row.ak_spki_sha256 }
  }

  /** Marks `nonce` used if it was issued to `nodeId`, is unexpired and unused; else says why not. */
  consume(nonce: string, nodeId: string): NonceState {
    const row = this.#db.prepare('SELECT node_id, expires_at, used_at FROM attest_nonces WHERE nonce = ?').get(nonce.toLowerCase()) as
      | { node_id: string; expires_at: number; used_at: number | null }
      | undefined
    if (row === undefined || row.node_id !== nodeId) return 'unknown'
    if (row.used_at !== null) return 'used'
    const now = this.#now()
    if (now >= row.expires_at) return 'expired'
    const result = this.#db.prepare('UPDATE attest_nonces SET used_at = ? WHERE nonce = ? AND used_at IS NULL').run(now, nonce.toLowerCase())
    return result.changes === 1 ? 'consumed' : 'used'
  }

  /** Burns `nonce` after a refused attempt: a nonce backs one attempt, successful or not. */
  burn(nonce: string, nodeId: string): void {
    this.#db.prepare('UPDATE attest_nonces SET used_at = ? WHERE nonce = ? AND node_id = ? AND used_at IS NULL').run(this.#now(), nonce.toLowerCase(), nodeId)
  }
}

/** The per-device attestation records of the CA registry. */
export class AttestationRegistry {
  readonly #db: Db

  constructor(db: Db) {
    this.#db = db
  }

  /** Records an enrollment, attested or not; replaces what an earlier enrollment recorded (and lifts a demotion). */
  recordEnrollment(entry: { tenant: string; deviceId: string; serial: string; atMs: number; akPublicPem?: string; pcrs?: PcrPolicy }): void {
    const attested = entry.akPublicPem !== undefined
    this.#db
      .prepare(
        `INSERT INTO attestations (tenant, device_id, serial, attested, ak_public_pem, pcrs, enrolled_at, last_attested_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, device_id) DO UPDATE SET serial = excluded.serial, attested = excluded.attested,
           ak_public_pem = excluded.ak_public_pem, pcrs = excluded.pcrs, enrolled_at = excluded.enrolled_at,
           last_attested_at = excluded.last_attested_at, last_checked_at = NULL, last_verdict = NULL, last_reason = NULL,
           failures = 0, demoted_at = NULL, demoted_roles = NULL`,
      )
      .run(entry.tenant, entry.deviceId, entry.serial, attested ? 1 : 0, entry.akPublicPem ?? null, JSON.stringify(entry.pcrs ?? {}), entry.atMs, attested ? entry.atMs : null)
  }

  /** The record of a device; without a tenant, the device id must name exactly one. */
  find(deviceId: string, tenant?: string): AttestationRecord | undefined {
    const rows = (tenant === undefined
      ? this.#db.prepare('SELECT * FROM attestations WHERE device_id = ? LIMIT 2').all(deviceId)
      : this.#db.prepare('SELECT * FROM attestations WHERE device_id = ? AND tenant = ?').all(deviceId, tenant)) as AttestationRow[]
    return rows.length === 1 ? toRecord(rows[0]!) : undefined
  }

  /** Records the verdict of one re-attestation. */
  recordCheck(record: AttestationRecord, verdict: ReattestVerdict, reason: string, atMs: number): void {
    this.#db
      .prepare(
        `UPDATE attestations SET last_checked_at = ?, last_verdict = ?, last_reason = ?,
           last_attested_at = CASE WHEN ? THEN ? ELSE last_attested_at END,
           failures = CASE WHEN ? THEN 0 ELSE failures + 1 END
         WHERE tenant = ? AND device_id = ?`,
      )
      .run(atMs, verdict, reason, verdict === 'ok' ? 1 : 0, atMs, verdict === 'ok' ? 1 : 0, record.tenant, record.deviceId)
  }

  /**
   * Takes the attested status away (a rotation without a fresh quote and the AK's certification
   * of the new key): the record keeps its AK and baseline, `lastReason` says why.
   */
  loseAttestation(record: AttestationRecord, reason: string, atMs: number): void {
    this.#db
      .prepare("UPDATE attestations SET attested = 0, last_checked_at = ?, last_verdict = 'refused', last_reason = ? WHERE tenant = ? AND device_id = ?")
      .run(atMs, reason, record.tenant, record.deviceId)
  }

  /** Records an attested rotation: the new certificate, and a good quote now. */
  recordAttestedRotation(record: AttestationRecord, serial: string, atMs: number): void {
    this.#db
      .prepare("UPDATE attestations SET serial = ?, last_checked_at = ?, last_attested_at = ?, last_verdict = 'ok', last_reason = 'ok', failures = 0 WHERE tenant = ? AND device_id = ?")
      .run(serial, atMs, atMs, record.tenant, record.deviceId)
  }

  /** Marks a device demoted (keeping the first demotion's time and roles). */
  demote(record: AttestationRecord, roles: readonly string[], atMs: number): void {
    this.#db
      .prepare('UPDATE attestations SET demoted_at = ?, demoted_roles = ? WHERE tenant = ? AND device_id = ? AND demoted_at IS NULL')
      .run(atMs, JSON.stringify(roles), record.tenant, record.deviceId)
  }

  /** Whether drift demoted the device. */
  isDemoted(deviceId: string, tenant: string): boolean {
    const record = this.find(deviceId, tenant)
    return record !== undefined && record.demotedAtMs !== null
  }
}

interface AttestationRow {
  tenant: string
  device_id: string
  serial: string
  attested: number
  ak_public_pem: string | null
  pcrs: string
  enrolled_at: number
  last_checked_at: number | null
  last_attested_at: number | null
  last_verdict: ReattestVerdict | null
  last_reason: string | null
  failures: number
  demoted_at: number | null
  demoted_roles: string | null
}

function toRecord(row: AttestationRow): AttestationRecord {
  return {
    tenant: row.tenant,
    deviceId: row.device_id,
    serial: row.serial,
    attested: row.attested === 1,
    akPublicPem: row.ak_public_pem,
    pcrs: JSON.parse(row.pcrs) as PcrPolicy,
    enrolledAtMs: row.enrolled_at,
    lastCheckedAtMs: row.last_checked_at,
    lastAttestedAtMs: row.last_attested_at,
    lastVerdict: row.last_verdict,
    lastReason: row.last_reason,
    failures: row.failures,
    demotedAtMs: row.demoted_at,
    demotedRoles: row.demoted_roles === null ? [] : (JSON.parse(row.demoted_roles) as string[]),
  }
}

