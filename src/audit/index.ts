/**
 * The tamper-evident audit log: every security decision (who, what, outcome, reason) is one row
 * of an append-only table whose rows form a SHA-256 hash chain.
 *
 * Append-only is enforced by SQLite triggers that abort any UPDATE or DELETE; tamper evidence by
 * the chain: each row's hash covers its content and the previous row's hash, so editing,
 * removing or reordering rows with a raw SQLite tool breaks {@link AuditLog.verify} at that row.
 * The log lives in the same database as the state it audits, so a decision and its audit row
 * commit in one transaction.
 */

import { createHash } from 'node:crypto'

import { createError } from '../errors.js'
import type { Db, Migration } from '../storage/index.js'

/** The outcome of an audited decision. */
export type AuditOutcome = 'allow' | 'deny' | 'error'

/** One decision to record. */
export interface AuditEvent {
  /** Who asked: a device id, `admin`, `cli`, or the source address of an anonymous request. */
  actor: string
  /** What was asked, e.g. `enroll`, `rotate`, `revoke`, `token.create`. */
  action: string
  outcome: AuditOutcome
  /** Why, as a stable code or short phrase (`ERR_TOKEN_USED`, `ok`). */
  reason: string
  /** Anything else worth keeping (serial, tenant, device). Must not hold secrets. */
  detail?: Record<string, string | number | boolean | null>
}

/** A recorded event with its place in the chain. */
export interface AuditRecord extends AuditEvent {
  seq: number
  /** Milliseconds since the epoch. */
  at: number
  hash: string
}

/** The schema step that creates the audit table; include it in the database's migrations. */
export const AUDIT_MIGRATION: Migration = `
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('allow', 'deny', 'error')),
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`

const GENESIS = '0'.repeat(64)

/** Appends to and checks the audit chain of one database. */
export class AuditLog {
  readonly #db: Db
  readonly #now: () => number

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db
    this.#now = now
  }

  /** Appends one event; call it inside the transaction of the decision it records. */
  append(event: AuditEvent): AuditRecord {
    const last = this.#db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as
      | { seq: number; hash: string }
      | undefined
    const seq = (last?.seq ?? 0) + 1
    const prevHash = last?.hash ?? GENESIS
    const at = this.#now()
    const detail = canonicalDetail(event.detail)
    const hash = chainHash(prevHash, seq, at, event, detail)
    this.#db
      .prepare('INSERT INTO audit (seq, at, actor, action, outcome, reason, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(seq, at, event.actor, event.action, event.outcome, event.reason, detail, prevHash, hash)
    return { ...event, detail: JSON.parse(detail), seq, at, hash }
  }

  /** The most recent events, newest first. */
  recent(limit = 100): AuditRecord[] {
    const rows = this.#db.prepare('SELECT * FROM audit ORDER BY seq DESC LIMIT ?').all(limit) as AuditRow[]
    return rows.map(toRecord)
  }

  /**
   * Walks the whole chain and throws `ERR_AUDIT_TAMPERED` at the first row whose hash, link or
   * sequence number does not hold; returns the number of rows checked.
   */
  verify(): number {
    let prevHash = GENESIS
    let expectedSeq = 1
    for (const row of this.#db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<AuditRow>) {
      const event: AuditEvent = { actor: row.actor, action: row.action, outcome: row.outcome, reason: row.reason }
      if (
        row.seq !== expectedSeq ||
        row.prev_hash !== prevHash ||
        row.hash !== chainHash(prevHash, row.seq, row.at, event, row.detail)
      ) {
        throw createError('ERR_AUDIT_TAMPERED', `the audit chain breaks at row ${row.seq}`)
      }
      prevHash = row.hash
      expectedSeq++
    }
    return expectedSeq - 1
  }
}

interface AuditRow {
  seq: number
  at: number
  actor: string
  action: string
  outcome: AuditOutcome
  reason: string
  detail: string
  prev_hash: string
  hash: string
}

function toRecord(row: AuditRow): AuditRecord {
  return {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    action: row.action,
    outcome: row.outcome,
    reason: row.reason,
    detail: JSON.parse(row.detail) as AuditEvent['detail'],
    hash: row.hash,
  }
}

/** JSON with sorted keys, so the same detail always hashes the same. */
function canonicalDetail(detail: AuditEvent['detail']): string {
  const entries = Object.entries(detail ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify(Object.fromEntries(entries))
}

function chainHash(prevHash: string, seq: number, at: number, event: AuditEvent, detail: string): string {
  // Length-prefixed fields: no two different rows serialize to the same bytes.
  const fields = [prevHash, String(seq), String(at), event.actor, event.action, event.outcome, event.reason, detail]
  const hash = createHash('sha256')
  for (const field of fields) {
    const bytes = Buffer.from(field, 'utf8')
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    hash.update(length).update(bytes)
  }
  return hash.digest('hex')
}
