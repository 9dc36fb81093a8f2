/**
 * The CA registry's certificate side: every SQL statement about issued certificates, their
 * revocations, rotation replay marks and the CA's settings lives here, each written once.
 *
 * The other stores of the same database keep their own SQL beside their rule: enrollment tokens
 * (`tokens.ts`), attestation nonces and records (`attestation/verifier/`), the audit chain
 * (`audit/`). All of them take the one `Db` and run inside the transaction the {@link CaService}
 * opens ({@link Registry.transaction}), so an effect and its audit row commit together.
 *
 * New certificate facts (lineage, issuer-keyed revocation) are new columns and new statements
 * here, not SQL in the service.
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
  /** The certificate, PEM. */
  pem: string
}

/** A certificate to record: what issuance produced, for whom, and when. */
export type NewCertificate = Omit<CertificateRecord, 'revokedAtMs' | 'revocationReason'> & { issuedAtMs: number }

/** Which live certificates an operation is about: one serial, or a device (in one tenant). */
export type CertificateTarget = { serial: string } | { device: string; tenant?: string }

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
      .prepare('INSERT INTO certificates (serial, device_id, tenant, spki_sha256, not_before, not_after, issued_at, pem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(issued.serial, issued.deviceId, issued.tenant, issued.spkiSha256, issued.notBeforeMs, issued.notAfterMs, issued.issuedAtMs, issued.pem)
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

  /** The serials of the unrevoked certificates `target` names. */
  liveSerials(target: CertificateTarget): string[] {
    const rows = (
      'serial' in target
        ? this.#db.prepare('SELECT serial FROM certificates WHERE serial = ? AND revoked_at IS NULL').all(normalizeSerial(target.serial))
        : this.#db
            .prepare('SELECT serial FROM certificates WHERE device_id = ? AND (? IS NULL OR tenant = ?) AND revoked_at IS NULL')
            .all(target.device, target.tenant ?? null, target.tenant ?? null)
    ) as Array<{ serial: string }>
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

  /**
   * Records a rotation request's timestamp for the certificate `serial`; false (and nothing
   * recorded) when it is not later than the last one: a replay.
   */
  recordRotation(serial: string, timestampMs: number): boolean {
    const last = this.#db.prepare('SELECT last_timestamp FROM rotations WHERE serial = ?').get(serial) as { last_timestamp: number } | undefined
    if (last !== undefined && timestampMs <= last.last_timestamp) return false
    this.#db.prepare('INSERT INTO rotations (serial, last_timestamp) VALUES (?, ?) ON CONFLICT (serial) DO UPDATE SET last_timestamp = excluded.last_timestamp').run(serial, timestampMs)
    return true
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
    pem: row.pem,
  }
}
