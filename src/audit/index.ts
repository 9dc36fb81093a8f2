/**
 * The tamper-evident audit log: every security decision (who, what, outcome, reason) is one row
 * of an append-only table whose rows form a SHA-256 hash chain.
 *
 * Append-only is enforced by SQLite triggers that abort any UPDATE or DELETE; tamper evidence by
 * the chain: each row's hash covers its content and the previous row's hash, so editing,
 * removing or reordering rows with a raw SQLite tool breaks {@link AuditLog.verify} at that row.
 * The log lives in the same database as the state it audits, so a decision and its audit row
 * commit in one transaction.
 *
 * The chain alone cannot catch someone who can write the file: they drop the triggers, delete
 * the last rows, or rewrite a row and recompute every hash after it. Signed checkpoints can.
 * Every `every` records (and on {@link AuditLog.checkpoint}) the node signs
 * `{log id, seq, head hash, time}` with its own key, as a signed object the core encodes
 * (`audit-checkpoint`). The latest is exported ({@link AuditLog.latestCheckpoint}, for peers) and
 * written atomically to a file of its own; {@link AuditLog.verify} given such a checkpoint
 * reports the rows deleted after it (`ERR_AUDIT_TRUNCATED`) and a chain rewritten under it
 * (`ERR_AUDIT_TAMPERED`). Checkpoints kept in the database also anchor retention: {@link
 * AuditLog.prune} removes old records only up to a checkpoint, which it keeps, so the rest of
 * the chain still verifies from a signed starting point.
 */

import { createHash } from 'node:crypto'

import { createError, ZtError } from '../errors.js'
import { callNative, native } from '../native.js'
import { credentialSigner, inspectCertificate, RevocationSet, type DeviceCredential, type PeerIdentity, type PeerPolicy, type TrustStore } from '../primitives/pki/index.js'
import { writeFileAtomic } from '../storage/files.js'
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

const NO_UPDATE = `CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`
const NO_DELETE = `CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`
const CHECKPOINT_NO_UPDATE = `CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`
const CHECKPOINT_NO_DELETE = `CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`

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
  ${NO_UPDATE}
  ${NO_DELETE}
`

/**
 * The schema step that adds the signed checkpoints; include it after {@link AUDIT_MIGRATION}.
 * Each row is a checkpoint over the record of the same `seq`, as the signed object's bytes.
 */
export const AUDIT_CHECKPOINT_MIGRATION: Migration = `
  CREATE TABLE audit_checkpoint (seq INTEGER PRIMARY KEY, object BLOB NOT NULL);
  ${CHECKPOINT_NO_UPDATE}
  ${CHECKPOINT_NO_DELETE}
`

/** The action of the record {@link AuditLog.prune} appends. */
export const PRUNE_ACTION = 'audit.prune'

const GENESIS = '0'.repeat(64)

/** How the log signs and reads back its checkpoints. */
export interface AuditCheckpointInit {
  /** The log's name in its checkpoints (1-64 printable characters, no spaces), e.g. `ca/site-1`. */
  logId: string
  /** Trust anchors for the node's own chain: checkpoints read back are verified against them. */
  trust: TrustStore
  revocations?: RevocationSet
  /**
   * The node's key and chain. Without it the log only verifies (an auditor's copy); with it
   * the log signs a checkpoint every `every` records. Checkpoints must then be signed by this
   * device of this tenant (any of its certificates: it may have rotated since).
   */
  signer?: DeviceCredential
  /** The device and tenant whose checkpoints are accepted; default: the signer's. */
  policy?: Pick<PeerPolicy, 'expectedDevice' | 'expectedTenant'>
  /** Records between checkpoints. Default 100. */
  every?: number
  /** A file the latest checkpoint is also written to (atomically, 0600) once its record commits. */
  file?: string
}

/** How long records are kept; {@link AuditLog.prune} keeps the newer of the two bounds. */
export interface AuditRetention {
  /** Records older than this (ms) may go. */
  maxAgeMs?: number
  /** At most this many records are kept (plus those since the last checkpoint). */
  maxRows?: number
}

/** Options of {@link AuditLog}. */
export interface AuditLogInit {
  /** The clock, ms since the epoch. Default `Date.now`. */
  now?: () => number
  /** Signed checkpoints; without them, {@link AuditLog.verify} checks the chain alone. */
  checkpoints?: AuditCheckpointInit
  /** The policy {@link AuditLog.prune} applies. Default: keep everything. */
  retention?: AuditRetention
}

/** What a verified checkpoint says. */
export interface AuditCheckpoint {
  logId: string
  seq: number
  /** The chain hash of record `seq`, hex. */
  headSha256: string
  atMs: number
}

/** A signed checkpoint that verified, and who signed it. */
export interface VerifiedAuditCheckpoint {
  checkpoint: AuditCheckpoint
  peer: PeerIdentity
  /** The signed object's digest, hex. */
  digest: string
}

/**
 * Verifies a signed checkpoint (a peer's, or one read from a checkpoint file): the signer's
 * chain against `trust`, `revocations` and `policy` at the time the checkpoint carries, then
 * the signature. Throws `ERR_WIRE_…`, `ERR_SIGNATURE` or a PKI code (`ERR_CERT_REVOKED`,
 * `ERR_DEVICE_MISMATCH`, `ERR_CHAIN`…). `policy.nowMs` is not used.
 *
 * @example
 * ```ts
 * const { checkpoint, peer } = verifyAuditCheckpoint(bytes, trust, revocations, { expectedDevice: 'gw-1' })
 * ```
 */
export function verifyAuditCheckpoint(object: Uint8Array, trust: TrustStore, revocations: RevocationSet = new RevocationSet(), policy: PeerPolicy = {}): VerifiedAuditCheckpoint {
  return callNative(() => native.verifyAuditCheckpoint(object, trust.native, revocations.native, policy))
}

/**
 * Appends to and checks the audit chain of one database.
 *
 * @example
 * ```ts
 * const log = new AuditLog(db, { checkpoints: { logId: 'ca/site-1', trust, signer: credential, file: 'audit.checkpoint' } })
 * log.append({ actor: 'cli', action: 'revoke', outcome: 'allow', reason: 'ok' })
 * const exported = log.checkpoint() // hand to peers; later: log.verify(exported)
 * ```
 */
export class AuditLog {
  readonly #db: Db
  readonly #now: () => number
  readonly #checkpoints: Checkpoints | undefined
  readonly #retention: AuditRetention
  /** Whether the database has {@link AUDIT_CHECKPOINT_MIGRATION}. */
  readonly #hasCheckpointTable: boolean
  #exportPending = false

  /** Throws `ERR_STORAGE` for checkpoints in a database without {@link AUDIT_CHECKPOINT_MIGRATION}. */
  constructor(db: Db, init: AuditLogInit = {}) {
    this.#db = db
    this.#now = init.now ?? Date.now
    this.#hasCheckpointTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoint'").get() !== undefined
    if (init.checkpoints !== undefined && !this.#hasCheckpointTable) throw createError('ERR_STORAGE', 'audit checkpoints need AUDIT_CHECKPOINT_MIGRATION in the schema')
    this.#checkpoints = init.checkpoints === undefined ? undefined : checkpointsOf(init.checkpoints)
    this.#retention = init.retention ?? {}
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
    const checkpoints = this.#checkpoints
    if (checkpoints?.signer !== undefined && seq % checkpoints.every === 0) this.#sign(checkpoints.logId, checkpoints.signer, seq, hash, at)
    return { ...event, detail: JSON.parse(detail), seq, at, hash }
  }

  /**
   * Signs a checkpoint over the current head now (at close, or before exporting), unless the
   * head has one already; returns the latest checkpoint, or undefined for an empty log.
   * Throws `ERR_INVALID_ARG` when the log has no signer.
   */
  checkpoint(): Buffer | undefined {
    const checkpoints = this.#checkpoints
    if (checkpoints?.signer === undefined) throw createError('ERR_INVALID_ARG', 'this audit log has no signer for checkpoints')
    const last = this.#db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined
    if (last !== undefined && this.#storedCheckpoint(last.seq) === undefined) this.#sign(checkpoints.logId, checkpoints.signer, last.seq, last.hash, this.#now())
    return this.latestCheckpoint()
  }

  /** The latest signed checkpoint (the signed object's bytes), for peers; undefined if none. */
  latestCheckpoint(): Buffer | undefined {
    if (!this.#hasCheckpointTable) return undefined
    const row = this.#db.prepare('SELECT object FROM audit_checkpoint ORDER BY seq DESC LIMIT 1').get() as { object: Buffer } | undefined
    return row?.object
  }

  /** The most recent events, newest first. */
  recent(limit = 100): AuditRecord[] {
    const rows = this.#db.prepare('SELECT * FROM audit ORDER BY seq DESC LIMIT ?').all(limit) as AuditRow[]
    return rows.map(toRecord)
  }

  /**
   * Walks the chain and checks it against the signed checkpoints: those the log keeps, and
   * `checkpoint` if given (the latest one a peer or the checkpoint file holds). Throws
   * `ERR_AUDIT_TAMPERED` naming the first record that breaks the chain, or the records a
   * checkpoint no longer matches (a chain rewritten and recomputed); `ERR_AUDIT_TRUNCATED` when
   * records a checkpoint covers are gone (deleted after it, or pruned outside retention);
   * a signed-object or PKI code when `checkpoint` itself does not verify.
   *
   * Stored checkpoints are read back only when the log has {@link AuditCheckpointInit}.
   * Returns the number of records checked.
   */
  verify(checkpoint?: Uint8Array): number {
    const expected = checkpoint === undefined ? undefined : this.#read(checkpoint)
    const stored = new Map<number, Buffer>()
    if (this.#hasCheckpointTable) for (const row of this.#db.prepare('SELECT seq, object FROM audit_checkpoint ORDER BY seq').iterate() as IterableIterator<{ seq: number; object: Buffer }>) {
      stored.set(row.seq, row.object)
    }
    let prevHash = GENESIS
    let expectedSeq = 1
    let first: number | undefined
    let lastGood = 0
    let prunedThrough = 0
    let expectedHead: string | undefined
    let expectedFrom = 1
    for (const row of this.#db.prepare('SELECT * FROM audit ORDER BY seq').iterate() as IterableIterator<AuditRow>) {
      if (first === undefined) {
        first = row.seq
        if (row.seq !== 1) {
          const anchor = this.#storedAt(stored, row.seq - 1)
          if (anchor === undefined) throw truncated(`the audit log starts at row ${row.seq}, and no signed checkpoint covers the rows before it`)
          prevHash = anchor.headSha256
          expectedSeq = row.seq
          lastGood = anchor.seq
          if (expected?.seq === anchor.seq) expectedHead = anchor.headSha256
        }
      }
      const event: AuditEvent = { actor: row.actor, action: row.action, outcome: row.outcome, reason: row.reason }
      if (row.seq !== expectedSeq || row.prev_hash !== prevHash || row.hash !== chainHash(prevHash, row.seq, row.at, event, row.detail)) {
        throw tampered(`the audit chain breaks at row ${row.seq}`)
      }
      if (expected?.seq === row.seq) expectedFrom = lastGood + 1
      if (row.action === PRUNE_ACTION) prunedThrough = Number((JSON.parse(row.detail) as { through?: unknown }).through)
      if (stored.has(row.seq)) {
        const signed = this.#storedAt(stored, row.seq)
        if (signed !== undefined) {
          if (signed.headSha256 !== row.hash) throw tampered(`rows ${lastGood + 1} to ${row.seq} were rewritten: the chain no longer matches the signed checkpoint at row ${row.seq}`)
          lastGood = row.seq
        }
      }
      if (expected?.seq === row.seq) expectedHead = row.hash
      prevHash = row.hash
      expectedSeq++
    }
    const last = expectedSeq - 1
    if (first !== undefined && first > 1 && prunedThrough !== first - 1) {
      throw truncated(`the rows before ${first} were removed, but no prune record says so`)
    }
    const beyond = [...stored.keys()].find((seq) => seq > last)
    if (beyond !== undefined) throw truncated(`the audit log ends at row ${last}, but a signed checkpoint covers row ${beyond}`)
    if (expected !== undefined) {
      if (expected.seq > last) throw truncated(`the audit log ends at row ${last}, but the checkpoint covers row ${expected.seq}: rows ${last + 1} to ${expected.seq} were deleted`)
      if (expectedHead !== undefined && expectedHead !== expected.headSha256) {
        throw tampered(`rows ${expectedFrom} to ${expected.seq} were rewritten: the chain no longer matches the checkpoint at row ${expected.seq}`)
      }
    }
    return first === undefined ? 0 : last - first + 1
  }

  /**
   * Applies the retention policy: removes the oldest records up to the newest checkpoint that
   * they reach (older than `maxAgeMs`, or beyond the newest `maxRows`), keeps that checkpoint as
   * the chain's new signed start, and appends an audited `audit.prune` record. Returns the
   * number of records removed (0 when no checkpoint lies in the prunable range, or the log has
   * no checkpoints to verify a pruned chain with).
   */
  prune(retention: AuditRetention = this.#retention): number {
    if (!this.#hasCheckpointTable || this.#checkpoints === undefined) return 0
    return this.#db
      .transaction(() => {
        const last = this.#db.prepare('SELECT seq FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number } | undefined
        if (last === undefined) return 0
        let cut = 0
        if (retention.maxRows !== undefined) cut = Math.max(cut, last.seq - retention.maxRows)
        if (retention.maxAgeMs !== undefined) {
          const old = this.#db.prepare('SELECT MAX(seq) AS seq FROM audit WHERE at < ?').get(this.#now() - retention.maxAgeMs) as { seq: number | null }
          cut = Math.max(cut, old.seq ?? 0)
        }
        // The head row always stays: the chain goes on from it, and the prune record links to it.
        cut = Math.min(cut, last.seq - 1)
        const anchor = this.#db.prepare('SELECT seq FROM audit_checkpoint WHERE seq <= ? ORDER BY seq DESC LIMIT 1').get(cut) as { seq: number } | undefined
        const first = this.#db.prepare('SELECT MIN(seq) AS seq FROM audit').get() as { seq: number }
        if (anchor === undefined || anchor.seq < first.seq) return 0
        this.#db.exec('DROP TRIGGER audit_no_delete; DROP TRIGGER audit_checkpoint_no_delete')
        const removed = this.#db.prepare('DELETE FROM audit WHERE seq <= ?').run(anchor.seq).changes
        this.#db.prepare('DELETE FROM audit_checkpoint WHERE seq < ?').run(anchor.seq)
        this.#db.exec(`${NO_DELETE} ${CHECKPOINT_NO_DELETE}`)
        this.append({ actor: 'audit', action: PRUNE_ACTION, outcome: 'allow', reason: 'retention', detail: { through: anchor.seq, rows: removed } })
        return removed
      })
      .immediate()
  }

  /** Signs and stores a checkpoint over record `seq`; the file follows once it commits. */
  #sign(logId: string, signer: DeviceCredential, seq: number, headSha256: string, atMs: number): void {
    const object = callNative(() => native.signAuditCheckpoint({ logId, seq, headSha256, atMs }, signer.certificateChainPem, credentialSigner(signer).native))
    this.#db.prepare('INSERT OR REPLACE INTO audit_checkpoint (seq, object) VALUES (?, ?)').run(seq, object)
    this.#scheduleExport()
  }

  /** Writes the latest checkpoint to the file after the transaction it was made in ends. */
  #scheduleExport(): void {
    const file = this.#checkpoints?.file
    if (file === undefined || this.#exportPending) return
    const write = (): void => {
      this.#exportPending = false
      if (!this.#db.open) return
      const latest = this.latestCheckpoint()
      if (latest !== undefined) writeFileAtomic(file, latest)
    }
    if (!this.#db.inTransaction) return write()
    this.#exportPending = true
    queueMicrotask(write)
  }

  /** A checkpoint, verified as this log's. */
  #read(object: Uint8Array): AuditCheckpoint {
    const checkpoints = this.#checkpoints
    if (checkpoints === undefined) throw createError('ERR_INVALID_ARG', 'this audit log has no trust anchors to read checkpoints with')
    const verified = verifyAuditCheckpoint(object, checkpoints.trust, checkpoints.revocations, checkpoints.policy)
    if (verified.checkpoint.logId !== checkpoints.logId) {
      throw tampered(`the checkpoint is for the audit log ${JSON.stringify(verified.checkpoint.logId)}, not ${JSON.stringify(checkpoints.logId)}`)
    }
    return verified.checkpoint
  }

  /** The stored checkpoint at `seq`, verified; `ERR_AUDIT_TAMPERED` if it does not verify. */
  #storedAt(stored: Map<number, Buffer>, seq: number): AuditCheckpoint | undefined {
    const object = stored.get(seq)
    if (object === undefined || this.#checkpoints === undefined) return undefined
    let checkpoint: AuditCheckpoint
    try {
      checkpoint = this.#read(object)
    } catch (error) {
      if (error instanceof ZtError && error.code !== 'ERR_AUDIT_TAMPERED') throw tampered(`the stored checkpoint at row ${seq} does not verify (${error.code})`, error)
      throw error
    }
    if (checkpoint.seq !== seq) throw tampered(`the stored checkpoint at row ${seq} is for row ${checkpoint.seq}`)
    return checkpoint
  }

  #storedCheckpoint(seq: number): Buffer | undefined {
    return (this.#db.prepare('SELECT object FROM audit_checkpoint WHERE seq = ?').get(seq) as { object: Buffer } | undefined)?.object
  }
}

interface Checkpoints {
  logId: string
  trust: TrustStore
  revocations: RevocationSet
  signer: DeviceCredential | undefined
  policy: { expectedDevice?: string; expectedTenant?: string }
  every: number
  file: string | undefined
}

function checkpointsOf(init: AuditCheckpointInit): Checkpoints {
  const every = init.every ?? 100
  if (!Number.isSafeInteger(every) || every < 1) throw createError('ERR_INVALID_ARG', 'checkpoints.every must be a positive integer')
  let policy = init.policy ?? {}
  if (init.policy === undefined && init.signer !== undefined) {
    const facts = inspectCertificate(init.signer.certificateChainPem)
    policy = { ...(facts.deviceId !== undefined && { expectedDevice: facts.deviceId }), ...(facts.tenant !== undefined && { expectedTenant: facts.tenant }) }
  }
  return { logId: init.logId, trust: init.trust, revocations: init.revocations ?? new RevocationSet(), signer: init.signer, policy, every, file: init.file }
}

function tampered(message: string, cause?: unknown): Error {
  return createError('ERR_AUDIT_TAMPERED', message, cause === undefined ? undefined : { cause })
}

function truncated(message: string): Error {
  return createError('ERR_AUDIT_TRUNCATED', message)
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
