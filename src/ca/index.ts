/**
 * The site CA: a directory that holds the root and site CA certificates, their keys (each in
 * its own encrypted keystore, so the root's file can be carried offline), and the registry
 * (SQLite: tokens, issued certificates, revocations, settings and the audit log).
 *
 * ```
 * D/root.pem          the root certificate          D/root-key.ztks   the root key (keystore)
 * D/site.pem          the site CA certificate       D/site-key.ztks   the site CA key (keystore)
 * D/trust.pem         the trust bundle (the roots; two during a rollover)
 * D/registry.db       the registry                  D/passphrase      the keystores' passphrase,
 *                                                                     0600, unless ZTMESH_CA_PASSPHRASE is set
 * ```
 *
 * Every decision is audited in the same transaction as its effect; refusals are audited too.
 *
 * @example
 * ```ts
 * await CaService.init({ dir: '/var/lib/ztmesh/ca', name: 'Hotel One' })
 * const ca = await CaService.open({ dir: '/var/lib/ztmesh/ca' })
 * const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
 * const { certificate, caChain } = ca.enroll({ token, csr }, 'cli')
 * ```
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { AuditLog } from '../audit/index.js'
import { createError, ZtError } from '../errors.js'
import { Keystore } from '../keystore/index.js'
import {
  CertificateAuthority,
  inspectCertificate,
  REVOCATION_REASONS,
  RevocationSet,
  TrustStore,
  verifyCertificateSignature,
  verifyPeer,
  type PeerIdentity,
  type RevocationReason,
  type RevokedEntry,
} from '../pki/index.js'
import { checkDeviceId, normalizeSerial } from '../protocol/ids.js'
import { writeFileAtomic } from '../storage/files.js'
import { openDatabase, type Db } from '../storage/index.js'
import {
  AttestationRegistry,
  attestationSettingRows,
  checkAttestationSettings,
  NonceStore,
  quoteSelection,
  readAttestationSettings,
  sha256Pcrs,
  verifyEnrollmentEvidence,
  type AttestationRecord,
  type AttestationSettings,
  type DriftAction,
  type IssuedNonce,
  type ReattestVerdict,
} from '../attestation/verifier/index.js'
import { CA_MIGRATIONS } from './schema.js'
import { TokenStore, type CreateTokenInit } from './tokens.js'
import type { PcrPolicy } from '../attestation/index.js'
import { rotationMessage, type EnrollRequest, type RotationRequest } from '../protocol/enroll.js'
import type { QuoteEvidence } from '../protocol/quote.js'

export { TokenStore } from './tokens.js'
export { CA_MIGRATIONS } from './schema.js'
export { AttestationRegistry, DEFAULT_ATTESTATION_SETTINGS, NonceStore } from '../attestation/verifier/index.js'
export type { AttestationMode, AttestationRecord, AttestationSettings, DriftAction, IssuedNonce, ReattestVerdict } from '../attestation/verifier/index.js'

/** Options of {@link CaService.init}. */
export interface CaInitOptions {
  dir: string
  /** The site's name: the CAs are "<name> Root CA" and "<name> Site CA". */
  name: string
  /** The organisation (O) of every certificate. Default: the name. */
  organisation?: string
}

/** Options of {@link CaService.open}. */
export interface CaOpenOptions {
  dir: string
  /** The clock, for tests. */
  now?: () => number
}

/** What an enrollment returns to the device. */
export interface Enrollment {
  /** The device certificate, PEM. */
  certificate: string
  /** The CA chain above it: site CA then root, PEM. */
  caChain: string
  serial: string
  notAfterMs: number
}

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

/** What a re-attestation found out about one node, for {@link CaService.applyReattestation}. */
export interface ReattestOutcome {
  deviceId: string
  /** The tenant, when known (from the node's certificate, or the endpoint's configuration). */
  tenant?: string
  /** The serial of the certificate the node presented, when it got that far. */
  serial?: string
  verdict: ReattestVerdict
  /** `'ok'` or the code that decided the verdict. */
  reason: string
  /** The roles of the certificate the node presented (kept when it is demoted). */
  roles?: readonly string[]
}

/** What the CA decided on a re-attestation. */
export interface ReattestResult {
  deviceId: string
  tenant: string | null
  verdict: ReattestVerdict
  reason: string
  /** What the verdict did: nothing, a revocation, or a demotion. */
  action: 'none' | DriftAction
  /** The serials revoked because of it. */
  revoked: string[]
}

/** Audit details: flat scalars. */
type Detail = Record<string, string | number | boolean | null>

export type { RotationRequest } from '../protocol/enroll.js'
export { rotationMessage } from '../protocol/enroll.js'

const DEVICE_VALIDITY_SECONDS = 90 * 86_400
/** How far a rotation request's timestamp may be from the CA's clock. */
const ROTATION_WINDOW_MS = 5 * 60_000
/** How long after expiry a certificate may still rotate itself (offline-survivable identity). */
const DEFAULT_GRACE_SECONDS = 30 * 86_400
const CRL_LIFETIME_MS = 7 * 86_400_000
/** The RFC 5280 reason recorded when drift revokes a device: its key is not known to be lost, its standing is. */
const DRIFT_REVOCATION_REASON: RevocationReason = 'privilegeWithdrawn'

export class CaService {
  readonly dir: string
  readonly db: Db
  readonly audit: AuditLog
  readonly tokens: TokenStore
  readonly nonces: NonceStore
  readonly attestations: AttestationRegistry
  readonly #site: CertificateAuthority
  readonly #now: () => number

  private constructor(dir: string, db: Db, site: CertificateAuthority, now: () => number) {
    this.dir = dir
    this.db = db
    this.#site = site
    this.#now = now
    this.audit = new AuditLog(db, now)
    this.tokens = new TokenStore(db, now)
    this.nonces = new NonceStore(db, now)
    this.attestations = new AttestationRegistry(db)
  }

  /** Creates a root CA, a site CA and an empty registry in `dir` (which must not hold a CA yet). */
  static async init(options: CaInitOptions): Promise<void> {
    const { dir, name } = options
    if (typeof name !== 'string' || name.trim() === '' || name.length > 48) throw createError('ERR_INVALID_ARG', 'the CA name must be 1-48 characters')
    const organisation = options.organisation ?? name
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (existsSync(join(dir, 'site.pem')) || existsSync(join(dir, 'registry.db'))) {
      throw createError('ERR_INVALID_ARG', `${dir} already holds a CA`)
    }
    const passphrase = caPassphrase(dir, true)
    const root = CertificateAuthority.createRoot({ commonName: `${name} Root CA`, organisation })
    const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: `${name} Site CA`, organisation })
    try {
      const rootKeys = await Keystore.create(join(dir, 'root-key.ztks'), passphrase)
      rootKeys.import('root-ca', 'ecdsa-p256', root.privateKey)
      const siteKeys = await Keystore.create(join(dir, 'site-key.ztks'), passphrase)
      siteKeys.import('site-ca', 'ecdsa-p256', site.privateKey)
    } finally {
      root.privateKey.fill(0)
      site.privateKey.fill(0)
      passphrase.fill(0)
    }
    writeFileSync(join(dir, 'root.pem'), root.certificatePem, { mode: 0o644 })
    writeFileSync(join(dir, 'site.pem'), site.certificatePem, { mode: 0o644 })
    writeFileSync(join(dir, 'trust.pem'), root.certificatePem, { mode: 0o644 })
    // The admin credential of POST /v1/revoke: shown once in D/admin-token (0600), stored hashed.
    const adminToken = `ztma.${randomBytes(32).toString('base64url')}`
    writeFileAtomic(join(dir, 'admin-token'), adminToken)
    const db = openDatabase(join(dir, 'registry.db'), { migrations: CA_MIGRATIONS })
    chmodSync(join(dir, 'registry.db'), 0o600)
    try {
      db.transaction(() => {
        const set = db.prepare('INSERT INTO settings (key, value) VALUES (?, ?)')
        set.run('name', name)
        set.run('organisation', organisation)
        set.run('crl_number', '0')
        set.run('crl_revocations', '-1')
        set.run('admin_token_sha256', sha256Hex(adminToken))
        new AuditLog(db).append({ actor: 'cli', action: 'ca.init', outcome: 'allow', reason: 'ok', detail: { name } })
      }).immediate()
    } finally {
      db.close()
    }
  }

  /** Opens the CA in `dir`: the registry and the site CA key (the root key stays locked). */
  static async open(options: CaOpenOptions): Promise<CaService> {
    const { dir } = options
    if (!existsSync(join(dir, 'site.pem')) || !existsSync(join(dir, 'registry.db'))) {
      throw createError('ERR_NOT_FOUND', `${dir} holds no CA (run ztmesh ca init)`)
    }
    const passphrase = caPassphrase(dir, false)
    let key: Buffer | undefined
    try {
      const keys = await Keystore.open(join(dir, 'site-key.ztks'), passphrase)
      key = keys.exportPrivateKey('site-ca')
      const site = CertificateAuthority.load(readFileSync(join(dir, 'site.pem'), 'utf8'), key)
      return new CaService(dir, openDatabase(join(dir, 'registry.db'), { migrations: CA_MIGRATIONS }), site, options.now ?? Date.now)
    } finally {
      key?.fill(0)
      passphrase.fill(0)
    }
  }

  close(): void {
    this.db.close()
  }

  /** The trust bundle (the roots), PEM. */
  trustBundle(): string {
    return readFileSync(join(this.dir, 'trust.pem'), 'utf8')
  }

  /** The chain devices present above their own certificate: site CA, then root. */
  caChain(): string {
    return this.#site.certificatePem + readFileSync(join(this.dir, 'root.pem'), 'utf8')
  }

  /** Creates a one-time enrollment token (audited; the token itself never is). */
  createToken(init: CreateTokenInit, actor = 'cli'): { token: string; expiresAt: number } {
    const detail = { device: init.deviceId, tenant: init.tenant, ...(init.roles !== undefined && { roles: JSON.stringify(init.roles) }) }
    return this.#audited(actor, 'token.create', detail, () => this.tokens.create(init))
  }

  /**
   * Enrolls a device: checks the token and, per the CA's attestation mode, its TPM attestation;
   * issues a certificate for the CSR's key with the identity the token is bound to; redeems the
   * token and consumes the attestation nonce; records what the attestation proved. All in one
   * transaction. Throws the token's, the CSR's or the attestation's error code; every attempt is
   * audited, and a refused attempt burns the nonce it presented.
   */
  enroll(request: EnrollRequest, actor: string): Enrollment {
    const presented: { nonce?: string; nodeId?: string } = {}
    const burnNonce = () => {
      if (presented.nonce !== undefined && presented.nodeId !== undefined) this.nonces.burn(presented.nonce, presented.nodeId)
    }
    return this.#audited(actor, 'enroll', {}, (detail) => {
      if (typeof request.csr !== 'string') throw createError('ERR_BAD_REQUEST', 'csr must be a PEM string')
      if (request.nodeId !== undefined && typeof request.nodeId !== 'string') throw createError('ERR_BAD_REQUEST', 'node_id must be a string')
      const claim = this.tokens.check(request.token)
      Object.assign(detail, { device: claim.deviceId, tenant: claim.tenant })
      // The token decides the identity; a device that claims another one is refused, not renamed.
      if (request.nodeId !== undefined && request.nodeId !== claim.deviceId) throw createError('ERR_FORBIDDEN', 'node_id differs from the device the token was issued for')
      const proof = this.#enrollmentAttestation(request.attestation, claim.deviceId, request.csr, detail, presented)
      const now = this.#now()
      const issued = this.#site.issue(request.csr, {
        deviceId: claim.deviceId,
        tenant: claim.tenant,
        roles: claim.roles,
        validitySeconds: DEVICE_VALIDITY_SECONDS,
        nowMs: now,
      })
      this.tokens.redeem(claim, issued.serial)
      this.db
        .prepare('INSERT INTO certificates (serial, device_id, tenant, spki_sha256, not_before, not_after, issued_at, pem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(issued.serial, claim.deviceId, claim.tenant, issued.spkiSha256, issued.notBeforeMs, issued.notAfterMs, now, issued.pem)
      this.attestations.recordEnrollment({ tenant: claim.tenant, deviceId: claim.deviceId, serial: issued.serial, atMs: now, ...proof })
      detail.serial = issued.serial
      return { certificate: issued.pem, caChain: this.caChain(), serial: issued.serial, notAfterMs: issued.notAfterMs }
    }, burnNonce)
  }

  /**
   * The attestation step of an enrollment. `off`: any attestation is ignored. `optional`: an
   * attestation is verified when present; without one the device is recorded as not attested.
   * `required`: `ERR_ATTEST_REQUIRED` without one. Verifying means: the nonce was issued to this
   * device, is unexpired and unused (consumed here: `ERR_ATTEST_NONCE`), the AK is bound to the
   * CSR's key (`ERR_ATTEST_BINDING`), and the quote is over the nonce and meets the PCR policy.
   * Returns what to record for an attested enrollment.
   */
  #enrollmentAttestation(evidence: QuoteEvidence | undefined, deviceId: string, csrPem: string, detail: Detail, presented: { nonce?: string; nodeId?: string }): { akPublicPem: string; pcrs: PcrPolicy } | undefined {
    const settings = this.attestationSettings()
    detail.attestation_mode = settings.mode
    const absent = evidence === undefined || evidence === null
    if (absent && settings.mode === 'required') throw createError('ERR_ATTEST_REQUIRED')
    if (absent || settings.mode === 'off') {
      detail.attestation = absent ? 'none' : 'ignored'
      return undefined
    }
    detail.attestation = 'refused'
    const nonce = Buffer.from(evidence.nonce).toString('hex')
    const state = this.nonces.consume(nonce, deviceId)
    detail.nonce = state
    if (state !== 'consumed') throw createError('ERR_ATTEST_NONCE', state === 'unknown' ? 'the attestation nonce was not issued to this device' : `the attestation nonce is ${state}`)
    Object.assign(presented, { nonce, nodeId: deviceId })
    const verified = verifyEnrollmentEvidence(evidence, csrPem, settings.pcrPolicy)
    detail.attestation = 'verified'
    return { akPublicPem: evidence.quote.akPublicPem, pcrs: sha256Pcrs(verified.pcrs) }
  }

  /**
   * Issues a single-use attestation nonce bound to `nodeId`, for the quote of its enrollment;
   * also says which PCRs to quote. Audited (the nonce itself is not secret, but is not logged).
   */
  issueNonce(nodeId: unknown, actor: string): IssuedNonce {
    return this.#audited(actor, 'attest.nonce', {}, (detail) => {
      if (typeof nodeId !== 'string') throw createError('ERR_BAD_REQUEST', 'node_id must be a string')
      detail.device = nodeId.slice(0, 64)
      const settings = this.attestationSettings()
      const { nonce, expiresAt } = this.nonces.issue(nodeId, settings.nonceTtlSeconds)
      detail.expires_at = expiresAt
      return { nonce, expiresAt, pcrs: quoteSelection(settings.pcrPolicy) }
    })
  }

  /** The CA's attestation settings. */
  attestationSettings(): AttestationSettings {
    return readAttestationSettings(this.#settings())
  }

  /**
   * Changes the attestation settings (only the fields given) and returns the result; audited.
   * Throws `ERR_INVALID_ARG` for a value out of range, changing nothing.
   *
   * @example
   * ```ts
   * ca.setAttestationSettings({ mode: 'required', pcrPolicy: { 0: '3d45…', 7: 'b5a1…' }, onDrift: 'demote' })
   * ```
   */
  setAttestationSettings(changes: Partial<Record<keyof AttestationSettings, unknown>>, actor = 'cli'): AttestationSettings {
    return this.#audited(actor, 'attest.settings', {}, (detail) => {
      const checked = checkAttestationSettings(changes)
      const set = this.db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      for (const [key, value] of attestationSettingRows(checked)) {
        set.run(key, value)
        detail[key] = value
      }
      return this.attestationSettings()
    })
  }

  /** What the registry knows about a device's attestations; without a tenant, the id must be unique. */
  attestationStatus(deviceId: string, tenant?: string): AttestationRecord | undefined {
    return this.attestations.find(deviceId, tenant)
  }

  /**
   * Records the verdict of one re-attestation and acts on it, in one transaction with its audit
   * row (action `reattest`). `drift` and `refused` apply the drift action: `revoke` revokes
   * every live certificate of the device (reason `privilegeWithdrawn`) and publishes a new CRL;
   * `demote` marks the device demoted (see {@link rotate}). `failed` is recorded, nothing more:
   * an unreachable node is not a reason to revoke, but its status shows the failure.
   */
  applyReattestation(outcome: ReattestOutcome, actor = 'reattest'): ReattestResult {
    const { deviceId, verdict, reason } = outcome
    const result: ReattestResult = { deviceId, tenant: outcome.tenant ?? null, verdict, reason, action: 'none', revoked: [] }
    const detail: Detail = { device: deviceId, tenant: result.tenant, serial: outcome.serial ?? null, verdict }
    const onDrift = this.attestationSettings().onDrift
    this.db.transaction(() => {
      const record = this.attestations.find(deviceId, outcome.tenant)
      detail.known = record !== undefined
      if (record !== undefined) {
        result.tenant = record.tenant
        detail.tenant = record.tenant
        this.attestations.recordCheck(record, verdict, reason, this.#now())
        if (verdict === 'drift' || verdict === 'refused') this.#applyDriftAction(record, onDrift, outcome.roles ?? [], actor, result)
      }
      Object.assign(detail, { action: result.action, revoked: result.revoked.length })
      this.audit.append({ actor, action: 'reattest', outcome: verdict === 'ok' ? 'allow' : 'deny', reason, detail })
    }).immediate()
    if (result.revoked.length > 0) this.crl()
    return result
  }

  /**
   * Revokes or demotes a device whose re-attestation drifted or was refused.
   *
   * A certificate cannot lose a role while it lives: the only way to take a role away at once is
   * to revoke it, which is what `revoke` is for. `demote` is the milder choice for fleets that
   * must keep a drifted device reachable (to repair it): the device is marked demoted in the
   * registry (queryable through {@link attestationStatus}, so local services can refuse it
   * privileges now), and its next rotation issues a certificate without roles. The demotion
   * holds until the device is enrolled again with a new token, an operator's decision; a later
   * good re-attestation does not lift it.
   */
  #applyDriftAction(record: AttestationRecord, onDrift: DriftAction, roles: readonly string[], actor: string, result: ReattestResult): void {
    if (onDrift === 'demote') {
      this.attestations.demote(record, roles, this.#now())
      result.action = 'demote'
      return
    }
    const live = this.db.prepare('SELECT count(*) AS n FROM certificates WHERE device_id = ? AND tenant = ? AND revoked_at IS NULL').get(record.deviceId, record.tenant) as { n: number }
    result.action = 'revoke'
    if (live.n > 0) result.revoked = this.revoke({ device: record.deviceId, tenant: record.tenant }, DRIFT_REVOCATION_REASON, actor)
  }

  /** The site CA's current revocations (its CRL), for links the CA side opens itself. */
  revocations(): RevocationSet {
    const revocations = new RevocationSet()
    revocations.addCrl(this.crl().der, this.#site.certificatePem, TrustStore.fromPem(this.trustBundle()), this.#now())
    return revocations
  }

  /**
   * Renews a certificate. The request is signed by the current certificate's key, so no token
   * is needed. The current certificate must verify against this CA and must not be revoked; up
   * to `graceSeconds` after its expiry it is still accepted, so a device that was offline past
   * its expiry can still renew.
   *
   * The new certificate starts now and the old one stays valid until its own end, so the two
   * overlap. Each timestamp may be used once per certificate (no replay). A device demoted for
   * PCR drift gets a certificate without roles.
   */
  rotate(request: RotationRequest, actor: string, graceSeconds = DEFAULT_GRACE_SECONDS): Enrollment {
    return this.#audited(actor, 'rotate', {}, (detail) => {
      const { certificate, csr, timestampMs: timestamp, signature } = request
      const now = this.#now()
      if (Math.abs(now - timestamp) > ROTATION_WINDOW_MS) throw createError('ERR_UNAUTHENTICATED', 'the rotation request is too old or from the future')
      const peer = this.#verifyCurrent(certificate, now, graceSeconds)
      Object.assign(detail, { device: peer.deviceId, tenant: peer.tenant, old_serial: peer.serial })
      if (!verifyCertificateSignature(certificate, rotationMessage(timestamp, csr), signature)) {
        throw createError('ERR_UNAUTHENTICATED', 'the rotation request is not signed by the current certificate key')
      }
      const last = this.db.prepare('SELECT last_timestamp FROM rotations WHERE serial = ?').get(peer.serial) as { last_timestamp: number } | undefined
      if (last !== undefined && timestamp <= last.last_timestamp) throw createError('ERR_UNAUTHENTICATED', 'the rotation request was replayed')
      this.db.prepare('INSERT INTO rotations (serial, last_timestamp) VALUES (?, ?) ON CONFLICT (serial) DO UPDATE SET last_timestamp = excluded.last_timestamp').run(peer.serial, timestamp)
      // A device demoted for PCR drift keeps its identity but loses its roles (see #applyDriftAction).
      const demoted = this.attestations.isDemoted(peer.deviceId, peer.tenant)
      if (demoted) detail.roles_demoted = true
      const issued = this.#site.issue(csr, { deviceId: peer.deviceId, tenant: peer.tenant, roles: demoted ? [] : peer.roles, validitySeconds: DEVICE_VALIDITY_SECONDS, nowMs: now })
      this.db
        .prepare('INSERT INTO certificates (serial, device_id, tenant, spki_sha256, not_before, not_after, issued_at, pem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(issued.serial, peer.deviceId, peer.tenant, issued.spkiSha256, issued.notBeforeMs, issued.notAfterMs, now, issued.pem)
      detail.serial = issued.serial
      return { certificate: issued.pem, caChain: this.caChain(), serial: issued.serial, notAfterMs: issued.notAfterMs }
    })
  }

  /** Verifies a certificate of this CA against its current revocations, with an expiry grace. */
  #verifyCurrent(chainPem: string, now: number, graceSeconds: number): PeerIdentity {
    const trust = TrustStore.fromPem(this.trustBundle())
    const revocations = this.revocations()
    const chain = (chainPem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length === 1 ? chainPem + this.#site.certificatePem : chainPem
    try {
      return verifyPeer(chain, trust, revocations, { nowMs: now })
    } catch (error) {
      if (!(error instanceof ZtError) || error.code !== 'ERR_CERT_EXPIRED') throw error
      const notAfter = inspectCertificate(chainPem).notAfterMs
      if (now - notAfter > graceSeconds * 1000) throw error
      // Within the grace period: the certificate must have been good just before it expired.
      return verifyPeer(chain, trust, revocations, { nowMs: notAfter - 1000, clockSkewSeconds: 0 })
    }
  }

  /**
   * Revokes one certificate (by serial) or every live certificate of a device. Returns the
   * serials revoked; `ERR_NOT_FOUND` if nothing matched.
   */
  revoke(target: { serial?: string; device?: string; tenant?: string }, reason: RevocationReason = 'unspecified', actor = 'cli'): string[] {
    if (!Object.hasOwn(REVOCATION_REASONS, reason)) throw createError('ERR_INVALID_ARG', `unknown revocation reason ${reason}`)
    return this.#audited(actor, 'revoke', { reason }, (detail) => {
      let rows: Array<{ serial: string }>
      if (target.serial !== undefined) {
        const serial = normalizeSerial(target.serial)
        detail.serial = serial
        rows = this.db.prepare('SELECT serial FROM certificates WHERE serial = ? AND revoked_at IS NULL').all(serial) as Array<{ serial: string }>
      } else if (target.device !== undefined) {
        checkDeviceId(target.device)
        detail.device = target.device
        rows = (target.tenant === undefined
          ? this.db.prepare('SELECT serial FROM certificates WHERE device_id = ? AND revoked_at IS NULL').all(target.device)
          : this.db.prepare('SELECT serial FROM certificates WHERE device_id = ? AND tenant = ? AND revoked_at IS NULL').all(target.device, target.tenant)) as Array<{ serial: string }>
      } else {
        throw createError('ERR_INVALID_ARG', 'give a serial or a device to revoke')
      }
      if (rows.length === 0) throw createError('ERR_NOT_FOUND', 'no live certificate matches')
      const mark = this.db.prepare('UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?')
      for (const row of rows) mark.run(this.#now(), reason, row.serial)
      detail.count = rows.length
      return rows.map((r) => r.serial)
    })
  }

  /**
   * The current CRL of the site CA, PEM and DER. A new one (with the next CRL number) is signed
   * when revocations changed since the last one, or when the last is past half its lifetime.
   */
  crl(): { pem: string; der: Buffer; crlNumber: number } {
    return this.db.transaction(() => {
      const settings = this.#settings()
      const revoked = this.db.prepare('SELECT serial, revoked_at, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at').all() as Array<{
        serial: string
        revoked_at: number
        revocation_reason: string
      }>
      const now = this.#now()
      const fresh = settings.crl_pem !== undefined && Number(settings.crl_revocations) === revoked.length && now < Number(settings.crl_this_update) + CRL_LIFETIME_MS / 2
      if (fresh) {
        return { pem: settings.crl_pem!, der: Buffer.from(settings.crl_der!, 'base64'), crlNumber: Number(settings.crl_number) }
      }
      const crlNumber = Number(settings.crl_number) + 1
      const entries: RevokedEntry[] = revoked.map((r) => ({
        serial: r.serial,
        revokedAtMs: r.revoked_at,
        reason: REVOCATION_REASONS[r.revocation_reason as RevocationReason] ?? 0,
      }))
      const crl = this.#site.issueCrl(crlNumber, entries, now, now + CRL_LIFETIME_MS)
      const set = this.db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      set.run('crl_number', String(crlNumber))
      set.run('crl_revocations', String(revoked.length))
      set.run('crl_this_update', String(now))
      set.run('crl_pem', crl.pem)
      set.run('crl_der', crl.der.toString('base64'))
      return { pem: crl.pem, der: crl.der, crlNumber }
    }).immediate()
  }

  /** The registry's view of one certificate. */
  certificate(serial: string): CertificateRecord | undefined {
    const row = this.db.prepare('SELECT * FROM certificates WHERE serial = ?').get(normalizeSerial(serial)) as
      | { serial: string; device_id: string; tenant: string; spki_sha256: string; not_before: number; not_after: number; revoked_at: number | null; revocation_reason: string | null; pem: string }
      | undefined
    if (row === undefined) return undefined
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

  /**
   * Runs `work` in one immediate transaction with its audit row; a refusal is audited after the
   * rollback, together with `onDeny` (what a refusal must still leave behind).
   */
  #audited<T>(actor: string, action: string, detail: Detail, work: (detail: Detail) => T, onDeny?: () => void): T {
    try {
      return this.db.transaction(() => {
        const result = work(detail)
        this.audit.append({ actor, action, outcome: 'allow', reason: 'ok', detail })
        return result
      }).immediate()
    } catch (error) {
      const reason = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
      this.db.transaction(() => {
        onDeny?.()
        this.audit.append({ actor, action, outcome: reason === 'ERR_INTERNAL' ? 'error' : 'deny', reason, detail })
      }).immediate()
      throw error
    }
  }

  /** Whether `presented` is the admin credential (compared in constant time, as hashes). */
  isAdmin(presented: string): boolean {
    const expected = this.#settings().admin_token_sha256
    if (expected === undefined) return false
    return timingSafeEqual(Buffer.from(sha256Hex(presented), 'hex'), Buffer.from(expected, 'hex'))
  }

  #settings(): Record<string, string | undefined> {
    const rows = this.db.prepare('SELECT key, value FROM settings').all() as Array<{ key: string; value: string }>
    return Object.fromEntries(rows.map((r) => [r.key, r.value]))
  }
}

/** The keystores' passphrase: ZTMESH_CA_PASSPHRASE, else D/passphrase (created 0600 by init). */
function caPassphrase(dir: string, create: boolean): Buffer {
  const fromEnv = process.env.ZTMESH_CA_PASSPHRASE
  if (fromEnv !== undefined && fromEnv !== '') return Buffer.from(fromEnv, 'utf8')
  const file = join(dir, 'passphrase')
  if (create && !existsSync(file)) {
    writeFileAtomic(file, randomBytes(32).toString('base64url'), { createNew: true })
  }
  if (!existsSync(file)) throw createError('ERR_KEYSTORE_PASSPHRASE', 'set ZTMESH_CA_PASSPHRASE: this CA has no passphrase file')
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8')
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

/** ETag of a CRL: its DER's SHA-256. */
export function crlEtag(der: Uint8Array): string {
  return `"${createHash('sha256').update(der).digest('base64url')}"`
}
