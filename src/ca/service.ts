/**
 * The {@link CaService}: the one entry point of the site CA. It opens the directory and the
 * registry, picks the provisioner of each enrollment, and runs every decision in one
 * transaction with its audit row; the modules it composes are listed in `index.ts`.
 */

import { createHash, timingSafeEqual } from 'node:crypto'

import { AuditLog, type AuditEvent, type AuditLogInit, type AuditRecord } from '../audit/index.js'
import { akPublicKeySha256, challengeAttestationKey, verifyAkBinding, verifyKeyCertification, verifyQuote } from '../attestation/index.js'
import { createError, ZtError } from '../errors.js'
import {
  inspectCertificate,
  REVOCATION_REASONS,
  RevocationSet,
  TrustStore,
  verifyCertificateSignature,
  verifyPeer,
  type CertificateAuthority,
  type PeerIdentity,
  type PeerPolicy,
  type RevocationReason,
  type Signer,
} from '../primitives/pki/index.js'
import { checkDeviceId, normalizeKeyDigest, normalizeSerial } from '../protocol/ids.js'
import {
  AttestationRegistry,
  attestationSettingRows,
  checkAttestationSettings,
  NonceStore,
  quoteSelection,
  readAttestationSettings,
  reattestationPolicy,
  silenceOf,
  type AttestationRecord,
  type AttestationSettings,
  type DriftAction,
  type IssuedNonce,
} from '../attestation/verifier/index.js'
import type { ReattestationSink, ReattestOutcome, ReattestResult } from '../attestation/verifier/reattest.js'
import { CaDirectory, checkCaName, type SealTo } from './directory.js'
import { currentCrl, INITIAL_CRL_SETTINGS, publishedCrlPem, type PublishedCrl } from './crl.js'
import { selectProvisioner, type Detail } from './provisioners/index.js'
import { Registry, type CertificateRecord, type CertificateTarget } from './registry.js'
import { TokenStore, type CreateTokenInit } from './tokens.js'
import { CA_API_IDENTITY, nonceRequestMessage, rotationMessage, type EnrollRequest, type NonceRequest, type RotationRequest } from '../protocol/enroll.js'


/** Options of {@link CaService.init}. */
export interface CaInitOptions {
  dir: string
  /** The site's name: the CAs are "<name> Root CA" and "<name> Site CA". */
  name: string
  /** The organisation (O) of every certificate. Default: the name. */
  organisation?: string
  /**
   * The tenants the site CA may issue for, written as its name constraints: peers refuse a
   * certificate of another tenant from it (`ERR_NAME_CONSTRAINT`). Default: unconstrained.
   */
  tenants?: string[]
}

/** Options of {@link CaService.open}. */
export interface CaOpenOptions {
  dir: string
  /**
   * The TPM the site keystore's passphrase is sealed to, when it is (`ca site csr --tpm`):
   * default, the one named at creation. Another TPM cannot unseal it (`ERR_TPM_KEY`).
   */
  tcti?: string
  /** The clock, for tests. */
  now?: () => number
  /**
   * How long a rotated certificate stays valid beside its successor before it is revoked as
   * superseded (never past its own expiry). Default one day.
   */
  rotationOverlapSeconds?: number
  /**
   * Signed checkpoints and retention for the CA's audit log: the gateway's own credential signs
   * them (`checkpoints.signer`), `checkpoints.file` keeps the latest outside the registry.
   */
  audit?: Pick<AuditLogInit, 'checkpoints' | 'retention'>
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


const DEVICE_VALIDITY_SECONDS = 90 * 86_400
/** How long the CA API's own TLS certificate lives; servers renew it at half that. */
export const API_CERTIFICATE_VALIDITY_SECONDS = 7 * 86_400
/** How far a rotation request's timestamp may be from the CA's clock. */
const ROTATION_WINDOW_MS = 5 * 60_000
/** How long after expiry a certificate may still rotate itself (offline-survivable identity). */
const DEFAULT_GRACE_SECONDS = 30 * 86_400
/** The RFC 5280 reason recorded when drift revokes a device: its key is not known to be lost, its standing is. */
const DRIFT_REVOCATION_REASON: RevocationReason = 'privilegeWithdrawn'
/** How long a rotated certificate stays valid beside its successor: time for the device's links to move over. */
const DEFAULT_ROTATION_OVERLAP_SECONDS = 86_400

/** The site CA: enrollment, rotation, revocation, CRLs and attestation decisions, each audited. */
export class CaService implements ReattestationSink {
  readonly dir: string
  readonly tokens: TokenStore
  readonly nonces: NonceStore
  readonly attestations: AttestationRegistry
  readonly #directory: CaDirectory
  readonly #registry: Registry
  readonly #audit: AuditLog
  readonly #site: CertificateAuthority
  readonly #now: () => number
  readonly #rotationOverlapMs: number
  readonly #auditSigns: boolean

  private constructor(directory: CaDirectory, registry: Registry, site: CertificateAuthority, now: () => number, rotationOverlapSeconds: number, audit: CaOpenOptions['audit'] = {}) {
    this.dir = directory.dir
    this.#directory = directory
    this.#registry = registry
    this.#site = site
    this.#now = now
    this.#rotationOverlapMs = rotationOverlapSeconds * 1000
    this.#audit = new AuditLog(registry.db, { now, ...audit })
    this.#auditSigns = audit.checkpoints?.signer !== undefined
    this.tokens = new TokenStore(registry.db, now)
    this.nonces = new NonceStore(registry.db, now)
    this.attestations = new AttestationRegistry(registry.db)
  }

  /**
   * The one-machine shortcut: creates a root CA, a site CA and an empty registry in `dir`
   * (which must not hold a CA yet). The root key stays in `dir`, beside the passphrase that
   * unlocks it: for tests and demos. A gateway is built with {@link CaService.createSiteKey},
   * an offline root ({@link RootDirectory}) and {@link CaService.install}.
   */
  static async init(options: CaInitOptions): Promise<void> {
    const { dir, name } = options
    checkCaName(name)
    const organisation = options.organisation ?? name
    const created = await new CaDirectory(dir).create({ name, organisation, ...(options.tenants !== undefined && { tenants: options.tenants }) })
    CaService.#record(created, { name, organisation }, 'ca.init')
  }

  /**
   * The gateway's half of the split: creates the site CA key in `dir` and returns its CSR, for
   * the offline root (`ztmesh ca root sign`). `tenants` are the ones the site asks to be bound
   * to: {@link CaService.install} refuses a site CA without them.
   */
  static async createSiteKey(options: CaInitOptions & { sealTo?: SealTo }): Promise<string> {
    const { dir, name } = options
    checkCaName(name)
    return new CaDirectory(dir).createSiteKey({ name, organisation: options.organisation ?? name, ...(options.tenants !== undefined && { tenants: options.tenants }) }, options.sealTo)
  }

  /**
   * Finishes the CA in `dir` from the chain the offline root signed (site CA, then root): see
   * {@link CaDirectory.install} for the checks and their codes. The directory then holds the
   * site CA key and no root key.
   */
  static async install(options: { dir: string; chainPem: string; tcti?: string }): Promise<void> {
    const created = await new CaDirectory(options.dir, { ...(options.tcti !== undefined && { tcti: options.tcti }) }).install(options.chainPem)
    CaService.#record(created, created.request, 'ca.install')
  }

  /** Records a new CA's settings, its admin credential's hash and its first audit row. */
  static #record({ registry, adminToken }: { registry: Registry; adminToken: string }, { name, organisation }: { name: string; organisation: string }, action: string): void {
    try {
      registry.transaction(() => {
        registry.putSettings([['name', name], ['organisation', organisation], ...INITIAL_CRL_SETTINGS, ['admin_token_sha256', sha256Hex(adminToken)]])
        new AuditLog(registry.db).append({ actor: 'cli', action, outcome: 'allow', reason: 'ok', detail: { name } })
      })
    } finally {
      registry.close()
    }
  }

  /** Opens the CA in `dir`: the registry and the site CA key (a root key, where `ca init` left one, stays locked). */
  static async open(options: CaOpenOptions): Promise<CaService> {
    const directory = new CaDirectory(options.dir, { ...(options.tcti !== undefined && { tcti: options.tcti }) })
    if (!directory.exists()) throw createError('ERR_NOT_FOUND', `${options.dir} holds no CA (run ztmesh ca init)`)
    const overlap = options.rotationOverlapSeconds ?? DEFAULT_ROTATION_OVERLAP_SECONDS
    if (!(Number.isInteger(overlap) && overlap >= 0 && overlap <= DEVICE_VALIDITY_SECONDS)) {
      throw createError('ERR_INVALID_ARG', `the rotation overlap is a whole number of seconds, 0 to ${DEVICE_VALIDITY_SECONDS}`)
    }
    const site = await directory.siteCa()
    return new CaService(directory, directory.registry(), site, options.now ?? Date.now, overlap, options.audit)
  }

  /**
   * Verifies a certificate (or chain) against the CA in `dir` without its key: its trust
   * bundle, the revocations of its last published CRL (none before the first), and of the
   * root CRL when one was installed (`ca site root-crl`: a revoked site CA). What
   * `ztmesh verify-peer` does; throws the typed error of the refusal.
   */
  static verifyOffline(dir: string, chainPem: string, policy: PeerPolicy = {}): PeerIdentity {
    const directory = new CaDirectory(dir)
    const trust = TrustStore.fromPem(directory.trustBundle())
    const revocations = new RevocationSet()
    if (directory.exists()) {
      const registry = directory.registry()
      try {
        const pem = publishedCrlPem(registry)
        if (pem !== undefined) revocations.addCrl(pem, directory.sitePem(), trust)
        const rootCrl = directory.rootCrl()
        if (rootCrl !== undefined) revocations.addCrl(rootCrl, directory.rootPem(), trust)
      } finally {
        registry.close()
      }
    }
    return verifyPeer(directory.completeChain(chainPem), trust, revocations, policy)
  }

  /** Closes the registry, after a checkpoint over the audit head when the log has a signer. */
  close(): void {
    try {
      if (this.#auditSigns) this.#audit.checkpoint()
    } finally {
      this.#registry.close()
    }
  }

  /** The trust bundle (the roots), PEM. */
  trustBundle(): string {
    return this.#directory.trustBundle()
  }

  /** The chain devices present above their own certificate: site CA, then root. */
  caChain(): string {
    return this.#site.certificatePem + this.#directory.rootPem()
  }

  /**
   * The SHA-256 of the root's SubjectPublicKeyInfo, hex: the trust anchor every token pins and
   * `enroll --root-fingerprint` takes.
   */
  rootFingerprint(): string {
    return inspectCertificate(this.#directory.rootPem()).spkiSha256
  }

  /**
   * Creates a one-time enrollment token pinning this CA's root (audited; the token itself never
   * is). A tenant the site CA's name constraints do not permit is refused here with
   * `ERR_NAME_CONSTRAINT`, before any token exists.
   */
  createToken(init: CreateTokenInit, actor = 'cli'): { token: string; expiresAt: number } {
    const detail = { device: init.deviceId, tenant: init.tenant, ...(init.roles !== undefined && { roles: JSON.stringify(init.roles) }) }
    return this.#audited(actor, 'token.create', detail, () => {
      if (typeof init.tenant === 'string' && !this.#site.permitsTenant(init.tenant)) {
        throw createError('ERR_NAME_CONSTRAINT', `the site CA is not bound to tenant ${init.tenant}`)
      }
      // The CA API's identity is the CA's alone: no device may enroll as it.
      if (init.deviceId === CA_API_IDENTITY.deviceId || init.roles?.includes(CA_API_IDENTITY.role) === true) {
        throw createError('ERR_INVALID_ARG', `the device id and role '${CA_API_IDENTITY.deviceId}' are reserved for the CA API`)
      }
      return this.tokens.create({ ...init, rootSpkiSha256: this.rootFingerprint() })
    })
  }

  /**
   * Issues the CA API's own TLS certificate for `signer`'s key (a key that never leaves the
   * core): device `ca`, role `ca`, in `tenant`, valid {@link API_CERTIFICATE_VALIDITY_SECONDS};
   * recorded and audited like any certificate. Returns its chain (leaf, site CA, root: a device
   * finds its pinned root there).
   */
  issueApiCertificate(tenant: string, signer: Signer, actor = 'ca'): { chainPem: string; serial: string; notAfterMs: number } {
    return this.#audited(actor, 'ca.api-certificate', { tenant }, (detail) => {
      const now = this.#now()
      const subject = { deviceId: CA_API_IDENTITY.deviceId, tenant, roles: [CA_API_IDENTITY.role] }
      const issued = this.#site.issue(signer.buildCsr(subject.deviceId, tenant), { ...subject, validitySeconds: API_CERTIFICATE_VALIDITY_SECONDS, nowMs: now })
      this.#registry.insertCertificate({ ...issued, deviceId: subject.deviceId, tenant, issuedAtMs: now })
      detail.serial = issued.serial
      return { chainPem: issued.pem + this.caChain(), serial: issued.serial, notAfterMs: issued.notAfterMs }
    })
  }

  /**
   * Enrolls a device: the provisioner the CA's attestation mode and the request select (see
   * `provisioners/`) decides the identity and checks any attestation; then a certificate is
   * issued for the CSR's key, the token redeemed, the certificate and what the attestation
   * proved recorded. All in one transaction. Throws the token's, the CSR's or the attestation's
   * error code; every attempt is audited, and a refused attempt burns the nonce it presented.
   *
   * Enrolling a device again revokes its earlier live certificates at once (reason
   * `superseded`; the audit row lists them) and publishes a new CRL: a new token is the
   * operator's decision that the device starts over, so nothing it held before stays valid
   * beside the new certificate.
   *
   * `finish`, when given, runs inside the transaction after the issuance (the server encodes
   * its answer there): if it throws, nothing was issued and the token is not spent.
   */
  enroll(request: EnrollRequest, actor: string, finish?: (enrollment: Enrollment) => void): Enrollment {
    const presented: { nonce?: string; deviceId?: string } = {}
    const burnNonce = () => {
      if (presented.nonce !== undefined && presented.deviceId !== undefined) this.nonces.burn(presented.nonce, presented.deviceId)
    }
    return this.#audited(actor, 'enroll', {}, (detail) => {
      if (typeof request.csr !== 'string') throw createError('ERR_BAD_REQUEST', 'csr must be a PEM string')
      if (request.nodeId !== undefined && typeof request.nodeId !== 'string') throw createError('ERR_BAD_REQUEST', 'node_id must be a string')
      const settings = this.attestationSettings()
      detail.attestation_mode = settings.mode
      const provisioner = selectProvisioner(settings, request)
      detail.provisioner = provisioner.name
      const authorization = provisioner.authorize(request, {
        tokens: this.tokens,
        nonces: this.nonces,
        settings,
        detail,
        presented: (nonce, deviceId) => Object.assign(presented, { nonce, deviceId }),
      })
      const { deviceId, tenant } = authorization
      const earlier = this.#registry.liveSerials({ device: deviceId, tenant })
      const issued = this.#issue(request.csr, { deviceId, tenant, roles: authorization.roles })
      authorization.redeem(issued.serial)
      this.attestations.recordEnrollment({ tenant, deviceId, serial: issued.serial, atMs: this.#now(), ...authorization.attestation })
      detail.serial = issued.serial
      if (earlier.length > 0) {
        this.#registry.markRevoked(earlier, this.#now(), 'superseded')
        detail.superseded = earlier.join(',')
        // Published in the same transaction: nothing can fail after the commit.
        this.crl()
      }
      finish?.(issued)
      return issued
    }, burnNonce)
  }

  /**
   * Issues a single-use attestation nonce bound to the request's node, for the quote of its
   * enrollment (or attested rotation); also says which PCRs to quote. Only the holder of that
   * node's enrollment token gets one (the request's token proof: `ERR_TOKEN_INVALID`,
   * `ERR_TOKEN_PROOF`, `ERR_FORBIDDEN` for another node's token), or, once enrolled, of its
   * certificate key (see #checkNonceCertificate), so nobody else can evict its nonces. Audited (the nonce itself is
   * not secret, but is not logged).
   */
  issueNonce(request: NonceRequest, actor: string): IssuedNonce {
    return this.#audited(actor, 'attest.nonce', {}, (detail) => {
      const nodeId = request.nodeId
      if (typeof nodeId !== 'string') throw createError('ERR_BAD_REQUEST', 'node_id must be a string')
      detail.device = nodeId.slice(0, 64)
      checkDeviceId(nodeId)
      if (request.certificate !== undefined) this.#checkNonceCertificate(request, detail)
      else this.tokens.checkNonceRequest(request)
      const settings = this.attestationSettings()
      // The credential challenge (issue 10 §3): the EK certificate must chain to a trusted EK CA
      // and the AK must be a restricted key fixed to its TPM; the secret goes to that TPM alone.
      const { ekCertificate, akPublic } = request
      const challenge = ekCertificate !== undefined && akPublic !== undefined && settings.ekCasPem !== '' ? challengeAttestationKey(ekCertificate, settings.ekCasPem, akPublic, this.#now()) : undefined
      if (challenge !== undefined) detail.challenge = 'issued'
      const { nonce, expiresAt } = this.nonces.issue(nodeId, settings.nonceTtlSeconds, challenge)
      detail.expires_at = expiresAt
      return {
        nonce,
        expiresAt,
        pcrs: quoteSelection(settings.pcrPolicy),
        ...(challenge !== undefined && { challenge: { credentialBlob: challenge.credentialBlob, encryptedSecret: challenge.encryptedSecret } }),
      }
    })
  }

  /**
   * The authentication of an enrolled device's nonce request (its token is spent): its current
   * certificate, decided by `verify_peer` as for a rotation (revoked: `ERR_CERT_REVOKED`; expired
   * within the grace period: accepted), must name the node the nonce is for (`ERR_FORBIDDEN`),
   * and its key must have signed {@link nonceRequestMessage} within the rotation window
   * (`ERR_UNAUTHENTICATED`).
   */
  #checkNonceCertificate(request: NonceRequest, detail: Detail): void {
    const { certificate, timestampMs, signature, nodeId } = request
    if (certificate === undefined || timestampMs === undefined || signature === undefined) throw createError('ERR_BAD_REQUEST', 'a certificate nonce request is signed and dated')
    detail.auth = 'certificate'
    const now = this.#now()
    if (Math.abs(now - timestampMs) > ROTATION_WINDOW_MS) throw createError('ERR_UNAUTHENTICATED', 'the nonce request is too old or from the future')
    const peer = this.#verifyCurrent(certificate, now, DEFAULT_GRACE_SECONDS)
    Object.assign(detail, { tenant: peer.tenant, serial: peer.serial })
    if (!verifyCertificateSignature(certificate, nonceRequestMessage(timestampMs, nodeId), signature)) {
      throw createError('ERR_UNAUTHENTICATED', 'the nonce request is not signed by the certificate key')
    }
    if (peer.deviceId !== nodeId) throw createError('ERR_FORBIDDEN', 'the certificate is for another device')
  }

  /** The CA's attestation settings. */
  attestationSettings(): AttestationSettings {
    return readAttestationSettings(this.#registry.settings())
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
      const rows = attestationSettingRows(checkAttestationSettings(changes))
      this.#registry.putSettings(rows)
      for (const [key, value] of rows) detail[key] = value
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
   * `demote` marks the device demoted (see {@link rotate}).
   *
   * `failed` is recorded, and silence is no way out: for an attested device, the drift action
   * applies once `maxFailures` checks failed in a row or no good quote came for longer than
   * `maxSilenceSeconds`; under the mode `required`, a device the link proved to be itself
   * (the outcome has its serial) with no attested record gets it at once (revoked when the
   * registry has no record to demote). The audit row's `silence` says which rule applied.
   */
  applyReattestation(outcome: ReattestOutcome, actor = 'reattest'): ReattestResult {
    const { deviceId, verdict, reason } = outcome
    const result: ReattestResult = { deviceId, tenant: outcome.tenant ?? null, verdict, reason, action: 'none', revoked: [] }
    const detail: Detail = { device: deviceId, tenant: result.tenant, serial: outcome.serial ?? null, verdict }
    const settings = this.attestationSettings()
    const onDrift = settings.onDrift
    this.#registry.transaction(() => {
      const now = this.#now()
      const record = this.attestations.find(deviceId, outcome.tenant)
      detail.known = record !== undefined
      // Only a failure of the device itself counts against it: one whose link got as far as its certificate.
      const silence = verdict === 'failed' && (record?.attested === true || outcome.serial !== undefined) ? silenceOf(record, settings, now) : undefined
      if (silence !== undefined) detail.silence = silence
      if (record !== undefined) {
        result.tenant = record.tenant
        detail.tenant = record.tenant
        this.attestations.recordCheck(record, verdict, reason, now)
        if (verdict === 'drift' || verdict === 'refused' || silence !== undefined) this.#applyDriftAction(record, onDrift, outcome.roles ?? [], actor, result)
      } else if (silence !== undefined && outcome.tenant !== undefined) {
        const target = { device: deviceId, tenant: outcome.tenant }
        result.action = 'revoke'
        if (this.#registry.liveSerials(target).length > 0) result.revoked = this.revoke(target, DRIFT_REVOCATION_REASON, actor)
      }
      Object.assign(detail, { action: result.action, revoked: result.revoked.length })
      this.#audit.append({ actor, action: 'reattest', outcome: verdict === 'ok' ? 'allow' : 'deny', reason, detail })
    })
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
    const target = { device: record.deviceId, tenant: record.tenant }
    result.action = 'revoke'
    if (this.#registry.liveSerials(target).length > 0) result.revoked = this.revoke(target, DRIFT_REVOCATION_REASON, actor)
  }

  /** The site CA's current revocations (its CRL), for links the CA side opens itself. */
  revocations(): RevocationSet {
    const revocations = new RevocationSet()
    const trust = TrustStore.fromPem(this.trustBundle())
    revocations.addCrl(this.crl().der, this.#site.certificatePem, trust, this.#now())
    // The offline root's CRL too, as verify-peer applies it: a site CA the root revoked vouches for nothing.
    const rootCrl = this.#directory.rootCrl()
    if (rootCrl !== undefined) revocations.addCrl(rootCrl, this.#directory.rootPem(), trust, this.#now())
    return revocations
  }

  /**
   * Renews a certificate. The request is signed by the current certificate's key, so no token
   * is needed. The current certificate must verify against this CA and must not be revoked; up
   * to `graceSeconds` after its expiry it is still accepted, so a device that was offline past
   * its expiry can still renew.
   *
   * A certificate is rotated once: the registry records the new certificate as its successor,
   * and any later request for the same certificate (a replay, a second device holding the same
   * key, a thief) is refused with `ERR_ALREADY_ROTATED` and audited, naming the successor. The
   * new certificate starts now; the old one stays valid beside it for the rotation overlap
   * (never past its own expiry), then is revoked as `superseded`, dated at the overlap's end, by
   * the first CRL built after it ({@link crl}). A device demoted for PCR drift gets a
   * certificate without roles.
   */
  rotate(request: RotationRequest, actor: string, graceSeconds = DEFAULT_GRACE_SECONDS, finish?: (enrollment: Enrollment) => void): Enrollment {
    return this.#audited(actor, 'rotate', {}, (detail) => {
      const { certificate, csr, timestampMs: timestamp, signature } = request
      const now = this.#now()
      if (Math.abs(now - timestamp) > ROTATION_WINDOW_MS) throw createError('ERR_UNAUTHENTICATED', 'the rotation request is too old or from the future')
      const peer = this.#verifyCurrent(certificate, now, graceSeconds)
      Object.assign(detail, { device: peer.deviceId, tenant: peer.tenant, old_serial: peer.serial })
      if (!verifyCertificateSignature(certificate, rotationMessage(timestamp, csr), signature)) {
        throw createError('ERR_UNAUTHENTICATED', 'the rotation request is not signed by the current certificate key')
      }
      const successor = this.#registry.successor(peer.serial)
      if (successor !== undefined) {
        detail.successor = successor
        throw createError('ERR_ALREADY_ROTATED', `certificate ${peer.serial} was already rotated`)
      }
      // A device demoted for PCR drift keeps its identity but loses its roles (see #applyDriftAction).
      const demoted = this.attestations.isDemoted(peer.deviceId, peer.tenant)
      if (demoted) detail.roles_demoted = true
      const issued = this.#issue(csr, { deviceId: peer.deviceId, tenant: peer.tenant, roles: demoted ? [] : peer.roles }, peer.serial)
      const overlapEndsAt = Math.min(now + this.#rotationOverlapMs, peer.notAfterMs)
      this.#registry.scheduleSupersession(peer.serial, overlapEndsAt)
      Object.assign(detail, { serial: issued.serial, overlap_ends_at: overlapEndsAt })
      this.#attestRotation(peer, request, issued.serial, detail)
      finish?.(issued)
      return issued
    })
  }

  /**
   * An attested device keeps its status through a rotation only if the new key is in the same
   * TPM: the request carries a quote over a nonce issued to the device, by the AK on record,
   * bound to the new CSR's key, meeting its baseline and the CA's policy, and the AK's
   * `TPM2_Certify` of the new key. Otherwise the rotation goes through and the device loses its
   * attested status (`attested: false`, visible to re-attestation and policy), audited as
   * `attestation: 'lost'` with the reason.
   */
  #attestRotation(peer: { deviceId: string; tenant: string }, request: RotationRequest, serial: string, detail: Detail): void {
    const record = this.attestations.find(peer.deviceId, peer.tenant)
    if (record === undefined || !record.attested || record.akPublicPem === null) return
    const now = this.#now()
    try {
      const evidence = request.attestation
      if (evidence === undefined || evidence.certification === undefined) throw createError('ERR_ATTEST_REQUIRED', 'an attested device rotates with a fresh quote and the certification of its new key')
      const nonce = Buffer.from(evidence.nonce).toString('hex')
      const state = this.nonces.consume(nonce, peer.deviceId)
      if (state !== 'consumed') throw createError('ERR_ATTEST_NONCE', `the attestation nonce is ${state}`)
      if (akPublicKeySha256(evidence.quote.akPublicPem) !== akPublicKeySha256(record.akPublicPem)) throw createError('ERR_ATTEST_KEY_CHANGED')
      verifyKeyCertification(record.akPublicPem, evidence.certification, evidence.nonce, request.csr)
      verifyAkBinding(request.csr, record.akPublicPem, evidence.quote.akBinding)
      const policy = reattestationPolicy(record, this.attestationSettings().pcrPolicy)
      verifyQuote({ ...evidence.quote, akPublicPem: record.akPublicPem }, evidence.nonce, policy, quoteSelection(policy))
      this.attestations.recordAttestedRotation(record, serial, now)
      detail.attestation = 'kept'
    } catch (error) {
      const reason = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
      this.attestations.loseAttestation(record, reason, now)
      Object.assign(detail, { attestation: 'lost', attestation_reason: reason })
    }
  }

  /**
   * Issues a device certificate and records it (with the certificate it replaces, for a
   * rotation); call inside the decision's transaction.
   */
  #issue(csr: string, subject: { deviceId: string; tenant: string; roles: readonly string[] }, predecessor?: string): Enrollment {
    const now = this.#now()
    const issued = this.#site.issue(csr, { ...subject, roles: [...subject.roles], validitySeconds: DEVICE_VALIDITY_SECONDS, nowMs: now })
    this.#registry.insertCertificate({ ...issued, deviceId: subject.deviceId, tenant: subject.tenant, issuedAtMs: now, ...(predecessor !== undefined && { predecessor }) })
    return { certificate: issued.pem, caChain: this.caChain(), serial: issued.serial, notAfterMs: issued.notAfterMs }
  }

  /** Verifies a certificate of this CA against its current revocations, with an expiry grace. */
  #verifyCurrent(chainPem: string, now: number, graceSeconds: number): PeerIdentity {
    const trust = TrustStore.fromPem(this.trustBundle())
    const revocations = this.revocations()
    const chain = this.#directory.completeChain(chainPem)
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
   * Revokes a certificate (by serial), the certificates of a key (by its SPKI SHA-256), or every
   * live certificate of a device. A serial or a key revokes the whole live lineage with them:
   * every certificate rotated from them, and the predecessors still in their overlap. Returns
   * the serials revoked; `ERR_NOT_FOUND` if nothing live matched.
   */
  revoke(target: { serial?: string; spkiSha256?: string; device?: string; tenant?: string }, reason: RevocationReason = 'unspecified', actor = 'cli'): string[] {
    if (!Object.hasOwn(REVOCATION_REASONS, reason)) throw createError('ERR_INVALID_ARG', `unknown revocation reason ${reason}`)
    return this.#audited(actor, 'revoke', { reason }, (detail) => {
      let which: CertificateTarget
      if (target.serial !== undefined) {
        which = { serial: normalizeSerial(target.serial) }
        detail.serial = which.serial
      } else if (target.spkiSha256 !== undefined) {
        which = { spkiSha256: normalizeKeyDigest(target.spkiSha256) }
        detail.spki_sha256 = which.spkiSha256
      } else if (target.device !== undefined) {
        checkDeviceId(target.device)
        detail.device = target.device
        which = { device: target.device, ...(target.tenant !== undefined && { tenant: target.tenant }) }
      } else {
        throw createError('ERR_INVALID_ARG', 'give a serial, a key digest or a device to revoke')
      }
      const serials = this.#registry.liveSerials(which)
      if (serials.length === 0) throw createError('ERR_NOT_FOUND', 'no live certificate matches')
      this.#registry.markRevoked(serials, this.#now(), reason)
      Object.assign(detail, { count: serials.length, revoked: serials.join(',') })
      return serials
    })
  }

  /**
   * The current CRL of the site CA, PEM and DER. First the rotated certificates whose overlap
   * ended are revoked as `superseded` (audited, action `supersede`). A new CRL (with the next
   * CRL number) is signed when revocations changed since the last one, or when the last is
   * past half its lifetime. Every CRL request (`GET /v1/crl`, `ztmesh ca crl`, a rotation's
   * check) runs this sweep, so a superseded certificate is listed from the first CRL built
   * after its overlap's end.
   */
  crl(): PublishedCrl {
    return this.#registry.transaction(() => {
      const now = this.#now()
      const superseded = this.#registry.supersedeDue(now)
      if (superseded.length > 0) {
        this.#audit.append({ actor: 'ca', action: 'supersede', outcome: 'allow', reason: 'ok', detail: { revoked: superseded.join(','), count: superseded.length } })
      }
      return currentCrl(this.#registry, this.#site, now)
    })
  }

  /** The offline root's CRL as installed (`ca site root-crl`), PEM; undefined before the first. */
  rootCrl(): string | undefined {
    return this.#directory.rootCrl()
  }

  /** The registry's view of one certificate. */
  certificate(serial: string): CertificateRecord | undefined {
    return this.#registry.certificate(serial)
  }

  /** Every certificate the CA issued, optionally of one device (and tenant), oldest first. */
  listCertificates(filter: { device?: string; tenant?: string } = {}): CertificateRecord[] {
    return this.#registry.certificates(filter)
  }

  /** The most recent audit records, newest first. */
  auditRecords(limit = 100): AuditRecord[] {
    return this.#audit.recent(limit)
  }

  /**
   * Walks the audit chain against its stored checkpoints and `checkpoint` (the latest one a peer
   * or the checkpoint file holds): the number of records, or `ERR_AUDIT_TAMPERED` /
   * `ERR_AUDIT_TRUNCATED` naming the records (see {@link AuditLog.verify}).
   */
  verifyAudit(checkpoint?: Uint8Array): number {
    return this.#audit.verify(checkpoint)
  }

  /** The latest signed audit checkpoint, for peers; undefined before the first. */
  latestAuditCheckpoint(): Buffer | undefined {
    return this.#audit.latestCheckpoint()
  }

  /** Applies the audit retention policy (audited); the number of records removed. */
  pruneAudit(): number {
    return this.#audit.prune()
  }

  /**
   * Records decisions made outside the service (the counts of requests refused before they
   * reached it, of CRLs served) in one transaction of their own.
   */
  recordAudit(...events: AuditEvent[]): void {
    this.#registry.transaction(() => {
      for (const event of events) this.#audit.append(event)
    })
  }

  /**
   * Runs `work` in one immediate transaction with its audit row; a refusal is audited after the
   * rollback, together with `onDeny` (what a refusal must still leave behind).
   */
  #audited<T>(actor: string, action: string, detail: Detail, work: (detail: Detail) => T, onDeny?: () => void): T {
    try {
      return this.#registry.transaction(() => {
        const result = work(detail)
        this.#audit.append({ actor, action, outcome: 'allow', reason: 'ok', detail })
        return result
      })
    } catch (error) {
      const reason = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
      this.#registry.transaction(() => {
        onDeny?.()
        this.#audit.append({ actor, action, outcome: reason === 'ERR_INTERNAL' ? 'error' : 'deny', reason, detail })
      })
      throw error
    }
  }

  /** Whether `presented` is the admin credential (compared in constant time, as hashes). */
  isAdmin(presented: string): boolean {
    const expected = this.#registry.settings().admin_token_sha256
    if (expected === undefined) return false
    return timingSafeEqual(Buffer.from(sha256Hex(presented), 'hex'), Buffer.from(expected, 'hex'))
  }
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}
