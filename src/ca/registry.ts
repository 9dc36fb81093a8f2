/**
 * The CA registry's certificate side: every SQL statement about issued certificates, their
 * lineage (which certificate a rotation replaced), their revocations and the CA's settings
 * lives here, each written once.
 *
 * The other stores of the same database keep their own SQL beside their rule: enrollment tokens
 * (`tokens.ts`), attestation nonces and records (`attestation/verifier/`), the audit chain
 * (`audit/`). All of them take the one `Db` and run inside the transaction the {@link CaService}
 * opens ({@link Registry.transaction}), so an effect and its audit row commit together.
 *
 * New certificate facts (issuer-keyed revocation, …) are new columns and new statements here,
 * not SQL in the service.
 *
 * The lineage is a chain: a rotated certificate names its predecessor, and a certificate has at
 * most one successor (a unique index enforces it). Revoking by serial or by key follows it both
 * ways ({@link Registry.liveSerials}), so a rotation cannot launder a certificate out of reach of
 * its revocation.
 */

import { normalizeSerial } from '../protocol/ids.js'
import { openDatabase, type Db } from '../storage/index.js'
import { CA_MIGRATIONS } from './schema.js'

/** An issued certificate as the registry knows it. */
export interface CertificateRecord {
  serial: string
  deviceId: string
  tenant: string
  spkiSha256: string
  notBeforeMs: number
  notAfterMs: number
  revokedAtMs: number | null
  revocationReason: string | null
  /** The certificate this one replaced by rotation; null for an enrollment's. */
  predecessor: string | null
  /** When this certificate, rotated, is revoked as superseded; null until it is rotated. */
  overlapEndsAtMs: number | null
  /** The certificate, PEM. */
  pem: string
}

/** A certificate to record: what issuance produced, for whom, when, and (rotated) what it replaces. */
export type NewCertificate = Omit<CertificateRecord, 'revokedAtMs' | 'revocationReason' | 'predecessor' | 'overlapEndsAtMs'> & {
  issuedAtMs: number
  predecessor?: string
}

/**
 * Which live certificates an operation is about: one certificate (by serial) or every
 * certificate of one key (by its SPKI SHA-256, lowercase hex), each with its whole lineage; or
 * every certificate of a device (in one tenant).
 */
export type CertificateTarget = { serial: string } | { spkiSha256: string } | { device: string; tenant?: string }

/** A revocation as the CRL lists it. */
export interface RevocationRow {
  serial: string
  revokedAtMs: number
  reason: string
}

/** The CA's key-value settings (CRL state, attestation settings, the admin credential's hash). */
export type Settings = Record<string, string | undefined>

/** The certificate and settings tables of one CA registry database. */
export class Registry {
  readonly #db: Db

  constructor(db: Db) {
    this.#db = db
  }

  /** Opens (or creates) the registry database at `path`, schema up to date. */
  static open(path: string): Registry {
    return new Registry(openDatabase(path, { migrations: CA_MIGRATIONS }))
  }

  /** The database, for the stores that share it (tokens, nonces, attestations, audit). */
  get db(): Db {
    return this.#db
  }

  close(): void {
    this.#db.close()
  }

  /** Runs `work` in one immediate (writer-serialized) transaction. */
  transaction<T>(work: () => T): T {
    return this.#db.transaction(work).immediate()
  }

  /** Records an issued certificate: the registry's one certificate INSERT. */
  insertCertificate(issued: NewCertificate): void {
    this.#db
      .prepare('INSERT INTO certificates (serial, device_id, tenant, spki_sha256, not_before, not_after, issued_at, pem, predecessor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(issued.serial, issued.deviceId, issued.tenant, issued.spkiSha256, issued.notBeforeMs, issued.notAfterMs, issued.issuedAtMs, issued.pem, issued.predecessor ?? null)
  }

  /** The serial of the certificate that replaced `serial` by rotation, if any. */
  successor(serial: string): string | undefined {
    const row = this.#db.prepare('SELECT serial FROM certificates WHERE predecessor = ?').get(normalizeSerial(serial)) as { serial: string } | undefined
    return row?.serial
  }

  /** Sets when the rotated certificate `serial` is revoked as superseded (see {@link supersedeDue}). */
  scheduleSupersession(serial: string, atMs: number): void {
    this.#db.prepare('UPDATE certificates SET overlap_ends_at = ? WHERE serial = ?').run(atMs, serial)
  }

  /**
   * Revokes as `superseded` every live rotated certificate whose overlap ended at or before
   * `nowMs`, dated at the overlap's end; returns their serials.
   */
  supersedeDue(nowMs: number): string[] {
    const due = this.#db.prepare('SELECT serial, overlap_ends_at FROM certificates WHERE overlap_ends_at <= ? AND revoked_at IS NULL ORDER BY overlap_ends_at').all(nowMs) as Array<{
      serial: string
      overlap_ends_at: number
    }>
    for (const row of due) this.markRevoked([row.serial], row.overlap_ends_at, 'superseded')
    return due.map((row) => row.serial)
  }

  /** One certificate, by serial in any spelling `normalizeSerial` accepts. */
  certificate(serial: string): CertificateRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM certificates WHERE serial = ?').get(normalizeSerial(serial)) as CertificateRow | undefined
    return row === undefined ? undefined : toRecord(row)
  }

  /** Every certificate, optionally of one device (and tenant), in order of issuance. */
  certificates(filter: { device?: string; tenant?: string } = {}): CertificateRecord[] {
    const rows = this.#db
      .prepare('SELECT * FROM certificates WHERE (? IS NULL OR device_id = ?) AND (? IS NULL OR tenant = ?) ORDER BY issued_at, rowid')
      .all(filter.device ?? null, filter.device ?? null, filter.tenant ?? null, filter.tenant ?? null) as CertificateRow[]
    return rows.map(toRecord)
  }

  /**
   * The serials of the unrevoked certificates `target` names, oldest first. A serial or a key
   * names its certificates' whole lineage: every successor (what rotations minted from them) and
   * every predecessor (still live during its overlap).
   */
  liveSerials(target: CertificateTarget): string[] {
    let rows: Array<{ serial: string }>
    if ('device' in target) {
      rows = this.#db
        .prepare('SELECT serial FROM certificates WHERE device_id = ? AND (? IS NULL OR tenant = ?) AND revoked_at IS NULL ORDER BY issued_at, rowid')
        .all(target.device, target.tenant ?? null, target.tenant ?? null) as Array<{ serial: string }>
    } else {
      const [column, value] = 'serial' in target ? ['serial', normalizeSerial(target.serial)] : ['spki_sha256', target.spkiSha256]
      rows = this.#db
        .prepare(
          `WITH RECURSIVE
             named(serial) AS (SELECT serial FROM certificates WHERE ${column} = ?),
             later(serial) AS (SELECT serial FROM named UNION SELECT c.serial FROM certificates c JOIN later ON c.predecessor = later.serial),
             earlier(serial, predecessor) AS (
               SELECT serial, predecessor FROM certificates WHERE serial IN (SELECT serial FROM named)
               UNION SELECT c.serial, c.predecessor FROM certificates c JOIN earlier ON c.serial = earlier.predecessor)
           SELECT serial FROM certificates
           WHERE revoked_at IS NULL AND (serial IN (SELECT serial FROM later) OR serial IN (SELECT serial FROM earlier))
           ORDER BY issued_at, rowid`,
        )
        .all(value) as Array<{ serial: string }>
    }
    return rows.map((row) => row.serial)
  }

  /** Marks certificates revoked. */
  markRevoked(serials: readonly string[], atMs: number, reason: string): void {
    const mark = this.#db.prepare('UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?')
    for (const serial of serials) mark.run(atMs, reason, serial)
  }

  /** Every revocation, oldest first: what the CRL lists. */
  revocations(): RevocationRow[] {
    const rows = this.#db.prepare('SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at').all() as Array<{
      serial: string
      revoked_at: number
      revocation_reason: string
    }>
    return rows.map((row) => ({ serial: row.serial, revokedAtMs: row.revoked_at, reason: row.revocation_reason }))
  }

  /** All settings. */
  settings(): Settings {
    const rows = this.#db.prepare('SELECT key, value FROM settings').all() as Array<{ key: string; value: string }>
    return Object.fromEntries(rows.map((r) => [r.key, r.value]))
  }

  /** Sets settings (inserted or replaced). */
  putSettings(entries: Iterable<readonly [string, string]>): void {
    const set = this.#db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
    for (const [key, value] of entries) set.run(key, value)
  }
}

interface CertificateRow {
  serial: string
  device_id: string
  tenant: string
  spki_sha256: string
  not_before: number
  not_after: number
  revoked_at: number | null
  revocation_reason: string | null
  predecessor: string | null
  overlap_ends_at: number | null
  pem: string
}

function toRecord(row: CertificateRow): CertificateRecord {
  return {
    serial: row.serial,
    deviceId: row.device_id,
    tenant: row.tenant,
    spkiSha256: row.spki_sha256,
    notBeforeMs: row.not_before,
    notAfterMs: row.not_after,
    revokedAtMs: row.revoked_at,
    revocationReason: row.revocation_reason,
    predecessor: row.predecessor,
    overlapEndsAtMs: row.overlap_ends_at,
    pem: row.pem,
  }
}
