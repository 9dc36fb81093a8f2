/**
 * A device's identity: its key (in the TPM, or in the software keystore), its certificate and CA
 * chain, enrollment with a one-time token, and renewal that keeps the device valid without gaps.
 *
 * ```
 * DIR/key.json        where the key lives: {"version":1,"keystore":"tpm"|"software","tcti"?}
 * DIR/tpm-key.blob    the device key, as a blob only this TPM can load     (TPM keystore)
 * DIR/tpm-ak.blob     the attestation key, the same way                    (TPM keystore)
 * DIR/keystore.ztks   the device key (entry "device"), encrypted under the passphrase (software)
 * DIR/cert.pem        the current certificate        DIR/ca.pem      the CA chain above it
 * DIR/trust.pem       the trust bundle (the root or roots)            DIR/config.json the CA's config
 * ```
 *
 * Enrollment and renewal replace the key files and the certificate together, in one commit
 * (`store.ts`), so a crash never leaves a key beside a certificate for another key. Nothing is
 * stored before the CA's answer passes `checkEnrollAnswer` (the core's `verify_peer`): at
 * enrollment against the root the token pins (and `trust.pem` becomes that root), at renewal
 * against `trust.pem`; a certificate from another root, for another device, tenant or key
 * changes nothing on disk.
 *
 * Renewal (seed 000): once less than a third of the lifetime is left, the device asks
 * `POST /v1/rotate` with a request signed by its current key; the new certificate starts now
 * and the old one stays valid beside it for the CA's rotation overlap (a day by default), then
 * is revoked as superseded, so connections move over without a gap. Each certificate rotates
 * once: a second request for it is `ERR_ALREADY_ROTATED` (a device that lost the answer, or a
 * thief racing it, enrolls again with a new token). After expiry the same request works within
 * the CA's grace period (offline-survivable identity); past it, the device must enroll again
 * with a new token.
 *
 * A TPM that is cleared or replaced cannot load the device key any more: {@link DeviceIdentity.open}
 * then fails with the TPM's error code and a message saying to enroll again, and enrolling again
 * in the same directory replaces the old key and certificate; the device is never locked out.
 *
 * @example
 * ```ts
 * const id = await DeviceIdentity.enroll({ url: 'https://gw:8443', token, dir, keystore: 'auto', passphrase })
 * // token: `ztmesh ca token` output; it pins the root every answer is checked against
 * id.start() // renews in the background
 * ```
 */

import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { QUOTE_RATE, serveQuotes, type BoundQuote, type QuoteRequest, type ServeQuotesInit } from '../attestation/index.js'
import { RateLimiter } from '../rate-limit.js'
import type { Mux } from '../channels/mux.js'
import { createError, ZtError } from '../errors.js'
import type { Passphrase } from '../primitives/keystore/index.js'
import { inspectCertificate, RevocationSet, splitCertificates, TrustStore, type DeviceCredential } from '../primitives/pki/index.js'
import { writeFileAtomic } from '../storage/files.js'
import { normalizeKeyDigest } from '../protocol/ids.js'
import {
  checkEnrollAnswer,
  decodeEnrollmentToken,
  decodeEnrollResponse,
  encodeEnrollRequest,
  encodeRotationRequest,
  enrollRequestFor,
  ENROLLMENT_ROUTES,
  nonceRequestByCertificate,
  nonceRequestFor,
  rotationMessage,
  type EnrollResponse,
} from '../protocol/enroll.js'
import { enrollmentAttestation, type AttestationMode } from '../attestation/device/index.js'
import { DEFAULT_ATTESTATION_PCRS, FILES } from './constants.js'
import { getBytes, postJson, type RequestInit } from './http.js'
import { createDeviceKey, KEY_FILES, openDeviceKey, TpmDeviceKey, type DeviceKey, type KeystoreChoice, type KeystoreKind } from './keys.js'
import { commitFiles, finishCommit } from './store.js'

export type { AttestationMode, EnrollmentAttestation } from '../attestation/device/index.js'
export type { KeystoreChoice, KeystoreKind } from './keys.js'

/** Options of {@link DeviceIdentity.enroll}. */
export interface EnrollInit {
  /**
   * The enrollment API's base URL, e.g. `https://gw.hotel-1.lan:8443`. The server must prove it
   * is the CA API of the token's tenant under the root the token pins before anything is sent.
   */
  url: string
  /** Allow an `http:` URL (no server authentication at all): for tests only. */
  insecureHttp?: boolean
  /**
   * The one-time token (`ztm2.…`, from `ztmesh ca token`). It names the device and tenant and
   * pins the CA's root; it never leaves the device (requests carry its id and a proof signed with a key derived from it).
   */
  token: string
  /**
   * The SHA-256 of the root's SubjectPublicKeyInfo (hex, colons allowed), obtained out of band:
   * must equal the token's, else `ERR_TRUST_ANCHOR`.
   */
  rootFingerprint?: string
  /** The identity directory (created if missing). An earlier identity in it is replaced once the CA has answered. */
  dir: string
  /** The software keystore's passphrase (not needed when the key is in the TPM). */
  passphrase?: Passphrase
  /**
   * Where the device key lives: `software` (default), `tpm`, or `auto` (the TPM when one that
   * ztmesh can use answers, else software). Recorded in `key.json`.
   */
  keystore?: KeystoreChoice
  /** The TPM's TCTI (default `TPM2TOOLS_TCTI`, `TCTI`, `/dev/tpmrm0`); recorded when given. */
  tcti?: string
  /** Whether the enrollment carries a TPM quote; default `auto`. */
  attestation?: AttestationMode
  /** The PCRs that quote covers when the CA's nonce answer names none. Default 0, 1, 2, 3, 7. */
  attestationPcrs?: readonly number[]
  /** The device id and tenant the token is bound to, if the caller knows them: must be the token's (`ERR_INVALID_ARG`). */
  deviceId?: string
  tenant?: string
  signal?: AbortSignal
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number
}

/** Options of {@link DeviceIdentity.open}. */
export interface OpenInit {
  /** The TPM's TCTI, instead of the one recorded at enrollment (or the environment's). */
  tcti?: string
  /** Allow an `http:` CA URL for renewals (no server authentication at all): for tests only. */
  insecureHttp?: boolean
}

/** The CRLs {@link DeviceIdentity.fetchRevocations} fetched: the site CA's, and the offline root's when the CA serves one. */
export interface FetchedCrls {
  crl: Buffer
  rootCrl?: Buffer
}

/** The state of the certificate's lifetime. */
export type RenewalState = 'fresh' | 'due' | 'grace' | 'expired'

export class DeviceIdentity {
  readonly dir: string
  #key: DeviceKey
  #timer: NodeJS.Timeout | undefined
  #url: string | undefined
  #insecureHttp: boolean
  #attested = false
  /** One quote budget per peer for every link this identity answers quotes on. */
  readonly #quoteLimiter = new RateLimiter({ ...QUOTE_RATE, maxSources: 256 })

  private constructor(dir: string, key: DeviceKey, url?: string, insecureHttp = false) {
    this.dir = dir
    this.#key = key
    this.#url = url
    this.#insecureHttp = insecureHttp
  }

  /**
   * Creates the device key (in the TPM, or in the software keystore where it is reused if
   * there), builds a CSR, enrolls, and stores the result. Enrolling again in the same directory
   * (a new token; a cleared or replaced TPM) replaces the key and certificate in one step, and
   * only once the CA has issued: a refusal leaves the old identity as it was.
   */
  static async enroll(init: EnrollInit): Promise<DeviceIdentity> {
    const token = decodeEnrollmentToken(init.token)
    const { deviceId, tenant, rootSpkiSha256 } = token
    if (init.rootFingerprint !== undefined && normalizeKeyDigest(init.rootFingerprint) !== rootSpkiSha256) {
      throw createError('ERR_TRUST_ANCHOR', 'the root fingerprint given is not the one the token pins')
    }
    if ((init.deviceId !== undefined && init.deviceId !== deviceId) || (init.tenant !== undefined && init.tenant !== tenant)) {
      throw createError('ERR_INVALID_ARG', `the token is for ${tenant}/${deviceId}`)
    }
    mkdirSync(init.dir, { recursive: true, mode: 0o700 })
    finishCommit(init.dir)
    const key = await createDeviceKey({
      dir: init.dir,
      keystore: init.keystore ?? 'software',
      ...(init.tcti !== undefined && { tcti: init.tcti }),
      ...(init.passphrase !== undefined && { passphrase: init.passphrase }),
    })
    const csr = key.buildCsr(deviceId, tenant)
    // Every request goes to a server that proved it is the CA API of this tenant under the pinned root.
    const transport = { ca: { rootFingerprint: rootSpkiSha256, tenant }, ...(init.insecureHttp !== undefined && { insecureHttp: init.insecureHttp }) }
    const attestation = await enrollmentAttestation(key, {
      ...transport,
      url: init.url,
      authenticate: (nodeId) => nonceRequestFor(init.token, nodeId),
      deviceId,
      mode: init.attestation ?? 'auto',
      pcrs: init.attestationPcrs ?? DEFAULT_ATTESTATION_PCRS,
      ...(init.signal !== undefined && { signal: init.signal }),
      ...(init.timeoutMs !== undefined && { timeoutMs: init.timeoutMs }),
    })
    const request = encodeEnrollRequest(enrollRequestFor(init.token, csr, { nodeId: deviceId, ...(attestation !== undefined && { attestation }) }))
    const response = decodeEnrollResponse(await postJson(new URL(ENROLLMENT_ROUTES.enroll, init.url), request, { ...init, ...transport }))
    // Checked before anything is stored: the pinned root, this device and tenant, this CSR's key.
    const accepted = checkEnrollAnswer(response, { deviceId, tenant, csr, rootSpkiSha256 })
    const identity = new DeviceIdentity(init.dir, key, init.url, init.insecureHttp)
    identity.#store(response, key, accepted.rootPem)
    identity.#attested = attestation !== undefined
    return identity
  }

  /**
   * Opens an enrolled identity. When its key is in a TPM that is gone, or that refuses the key
   * (cleared or replaced), this throws that TPM error (`ERR_TPM_KEY`, `ERR_TPM_UNAVAILABLE`…)
   * and the device must {@link enroll} again with a new token.
   */
  static async open(dir: string, passphrase?: Passphrase, url?: string, init: OpenInit = {}): Promise<DeviceIdentity> {
    if (existsSync(dir)) finishCommit(dir)
    if (!existsSync(join(dir, FILES.certificate))) throw createError('ERR_NOT_FOUND', `${dir} holds no enrolled identity`)
    const key = await openDeviceKey(dir, { ...(init.tcti !== undefined && { tcti: init.tcti }), ...(passphrase !== undefined && { passphrase }) })
    const identity = new DeviceIdentity(dir, key, url, init.insecureHttp)
    identity.#checkKey(identity.certificatePem, key)
    return identity
  }

  /** Where the device key lives. */
  get keystore(): KeystoreKind {
    return this.#key.kind
  }

  /** Whether the enrollment that created this object carried a TPM quote (false for an opened identity). */
  get attested(): boolean {
    return this.#attested
  }

  /** The current certificate, PEM. */
  get certificatePem(): string {
    return readFileSync(join(this.dir, FILES.certificate), 'utf8')
  }

  /** The trust bundle this device checks peers and its CA against (the pinned root, or roots during a rollover), PEM. */
  get trustPem(): string {
    return readFileSync(join(this.dir, FILES.trust), 'utf8')
  }

  /** The CA chain above it, PEM. */
  get caChainPem(): string {
    return readFileSync(join(this.dir, FILES.caChain), 'utf8')
  }

  /** Where the CA publishes its CRL, as its config told this device at enrollment; undefined when it told none. */
  get crlUrl(): string | undefined {
    const path = join(this.dir, FILES.config)
    if (!existsSync(path)) return undefined
    let config: { crl_url?: unknown } | null
    try {
      config = JSON.parse(readFileSync(path, 'utf8')) as { crl_url?: unknown } | null
    } catch (cause) {
      throw createError('ERR_CONFIG', `${path} is not JSON`, { cause })
    }
    if (typeof config !== 'object' || config === null) throw createError('ERR_CONFIG', `${path} is not a config object`)
    return typeof config.crl_url === 'string' && config.crl_url !== '' ? config.crl_url : undefined
  }

  /**
   * The CA's current revocations: its CRL fetched from {@link crlUrl} and verified against this
   * device's CA chain and `trustPem`, with the offline root's CRL (`/v1/root-crl` beside it) when
   * the CA serves one. `ERR_NOT_FOUND` when the store knows no CRL URL,
   * `ERR_UNREACHABLE` when the CA does not answer, the PKI's code for a CRL it refuses
   * (`ERR_REVOCATION_ROLLBACK` for one older than what `init.into` already applied).
   *
   * `init.into`: the set to add them to (one with restored progress, or freshness rules), else a
   * new one. `init.onVerified`: told the CRLs' bytes once both verified (to keep them for a
   * restart while the CA is unreachable, see {@link revocationsFrom}).
   */
  async fetchRevocations(trustPem: string, init: RequestInit & { into?: RevocationSet; onVerified?: (crls: FetchedCrls) => void } = {}): Promise<RevocationSet> {
    const url = this.crlUrl
    if (url === undefined) throw createError('ERR_NOT_FOUND', `${this.dir} knows no CRL URL`)
    const server = { ...init, ...this.#caServer() }
    const crl = await getBytes(new URL(url), server)
    // The offline root's CRL beside it (a revoked site CA vouches for nothing), when the CA has one.
    let rootCrl: Buffer | undefined
    try {
      rootCrl = await getBytes(new URL(ENROLLMENT_ROUTES.rootCrl, url), server)
    } catch (error) {
      if (!(error instanceof ZtError && error.code === 'ERR_NOT_FOUND')) throw error
    }
    const fetched = { crl, ...(rootCrl !== undefined && { rootCrl }) }
    const revocations = this.revocationsFrom(fetched, trustPem, init.into)
    init.onVerified?.(fetched)
    return revocations
  }

  /**
   * Verifies CRLs this device fetched earlier ({@link fetchRevocations}'s `onVerified`) against
   * its CA chain and `trustPem`, into `into` (else a new set). Throws the PKI's code for a CRL
   * it refuses (`ERR_REVOCATION_STALE` past its freshness).
   */
  revocationsFrom(crls: FetchedCrls, trustPem: string, into: RevocationSet = new RevocationSet()): RevocationSet {
    const trust = TrustStore.fromPem(trustPem)
    into.addCrl(crls.crl, this.caChainPem, trust)
    if (crls.rootCrl !== undefined) into.addCrl(crls.rootCrl, splitCertificates(this.caChainPem).at(-1)!, trust)
    return into
  }

  /**
   * Who the CA API must prove to be for this device's requests after enrollment: the CA API of
   * its tenant under the root in `trust.pem`; plain HTTP only when the identity was made with
   * `insecureHttp`.
   */
  #caServer(): Pick<RequestInit, 'ca' | 'insecureHttp'> {
    const trustPem = readFileSync(join(this.dir, FILES.trust), 'utf8')
    const tenant = inspectCertificate(this.certificatePem).tenant ?? 'tenant'
    return { ca: { rootFingerprint: inspectCertificate(trustPem).spkiSha256, tenant }, insecureHttp: this.#insecureHttp }
  }

  /** Where the certificate stands in its lifetime at `now`, with the CA's grace period. */
  renewalState(now = Date.now(), graceMs = 30 * 86_400_000): RenewalState {
    const { notBeforeMs: from, notAfterMs: to } = inspectCertificate(this.certificatePem)
    if (now >= to) return now - to <= graceMs ? 'grace' : 'expired'
    return to - now < (to - from) / 3 ? 'due' : 'fresh'
  }

  /**
   * Renews through `POST /v1/rotate` when due (or in grace); returns whether it renewed. Past
   * the grace period it throws `ERR_CERT_EXPIRED`: enroll again with a new token. A TPM device
   * gets a new key in the TPM; the request is signed by the current one.
   */
  async renewIfDue(init: { now?: number; force?: boolean; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<boolean> {
    const state = this.renewalState(init.now)
    if (state === 'fresh' && init.force !== true) return false
    if (state === 'expired') throw createError('ERR_CERT_EXPIRED', 'the certificate expired beyond the grace period: enroll again')
    if (this.#url === undefined) throw createError('ERR_INVALID_ARG', 'no CA URL to renew with')
    const current = inspectCertificate(this.certificatePem)
    const next = await this.#key.successor()
    const csr = next.buildCsr(current.deviceId ?? 'device', current.tenant ?? 'tenant')
    const timestamp = init.now ?? Date.now()
    const signature = this.#key.sign(rotationMessage(timestamp, csr))
    // An attested device keeps its status only with a fresh quote and the AK's certification of
    // the new key; its token is spent, so its current certificate key signs the nonce request.
    const attestation =
      next instanceof TpmDeviceKey && current.deviceId !== undefined
        ? await enrollmentAttestation(next, {
            ...this.#caServer(),
            url: this.#url,
            authenticate: (nodeId) => nonceRequestByCertificate(this.certificatePem, nodeId, (message) => this.#key.sign(message), timestamp),
            deviceId: current.deviceId,
            mode: 'auto',
            pcrs: DEFAULT_ATTESTATION_PCRS,
            ...(init.signal !== undefined && { signal: init.signal }),
            ...(init.timeoutMs !== undefined && { timeoutMs: init.timeoutMs }),
          })
        : undefined
    const request = encodeRotationRequest({ certificate: this.certificatePem, csr, timestampMs: timestamp, signature, ...(attestation !== undefined && { attestation }) })
    const trustPem = readFileSync(join(this.dir, FILES.trust), 'utf8')
    const response = decodeEnrollResponse(await postJson(new URL(ENROLLMENT_ROUTES.rotate, this.#url), request, { ...init, ...this.#caServer() }))
    // Checked against the device's own trust before the old certificate and key are replaced.
    checkEnrollAnswer(response, { deviceId: current.deviceId ?? 'device', tenant: current.tenant ?? 'tenant', csr, trustPem, nowMs: timestamp })
    this.#store(response, next)
    this.#key = next
    return true
  }

  /** Checks for renewal now and then every `intervalMs` (default one hour) until {@link stop}. */
  start(intervalMs = 3_600_000, onError: (error: unknown) => void = () => {}): void {
    this.stop()
    const tick = () => void this.renewIfDue().catch(onError)
    tick()
    this.#timer = setInterval(tick, intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * What this device presents to TLS, Noise links and endpoints alike: its chain and the native
   * signer of its key (in the TPM or the software keystore; the key itself never leaves them).
   */
  credential(): DeviceCredential {
    return { certificateChainPem: this.certificatePem + this.caChainPem, signer: this.#key.signer }
  }

  /**
   * A fresh quote of the SHA-256 PCRs `request.pcrs` over `request.nonce` by the attestation key,
   * with that key's binding signed by the device key. `ERR_TPM_UNAVAILABLE` without a TPM key.
   */
  async quote(request: QuoteRequest): Promise<BoundQuote> {
    if (!(this.#key instanceof TpmDeviceKey)) throw createError('ERR_TPM_UNAVAILABLE', 'the device key is not in a TPM: this device cannot quote')
    return this.#key.quote(request.nonce, request.pcrs)
  }

  /**
   * Answers a verifier's quote requests on the message layer of a secure link to the gateway
   * (the quote protocol's streams), until the link ends: by default only for peers with the
   * `gateway` role, one at a time per link, and within one per-peer budget shared by all the
   * links of this identity (see `serveQuotes`).
   *
   * @example
   * ```ts
   * const link = await secureTls(socket, new TlsContext('client', { identity: id.credential(), trustPem }))
   * id.answerQuotes(new Mux(link, { role: 'initiator' }))
   * ```
   */
  answerQuotes(mux: Mux, init: Omit<ServeQuotesInit, 'limiter'> = {}): void {
    serveQuotes(mux, (request) => this.quote(request), { ...init, limiter: this.#quoteLimiter })
  }

  /** Accepts a CA rollover: a new trust bundle holding the old and the new root. */
  acceptTrustBundle(bundlePem: string): void {
    if (!bundlePem.includes('-----BEGIN CERTIFICATE-----')) throw createError('ERR_PEM', 'the trust bundle holds no certificate')
    writeFileAtomic(join(this.dir, FILES.trust), bundlePem)
  }

  /**
   * Stores what the CA issued for `key` (already checked with `checkEnrollAnswer`), with the
   * key's files and, at enrollment, the pinned root as the trust, in one commit.
   */
  #store(response: EnrollResponse, key: DeviceKey, trustPem?: string): void {
    const { certificate, caChain, config } = response
    this.#checkKey(certificate, key)
    const files = key.files()
    files.set(FILES.caChain, caChain)
    if (trustPem !== undefined) files.set(FILES.trust, trustPem)
    if (config !== undefined) files.set(FILES.config, `${JSON.stringify(config, null, 2)}\n`)
    files.set(FILES.certificate, certificate) // last: the certificate is what readers look at
    commitFiles(this.dir, files, KEY_FILES.filter((name) => !files.has(name)))
  }

  /** Proves that `key` is the key `certificatePem` certifies, by a signature; `ERR_KEY_MISMATCH` if not. */
  #checkKey(certificatePem: string, key: DeviceKey): void {
    try {
      key.signer.proveFor(certificatePem)
    } catch (error) {
      if (error instanceof ZtError && error.code === 'ERR_KEY_MISMATCH') {
        throw createError('ERR_KEY_MISMATCH', `the certificate in ${this.dir} is not for the device key: enroll again with a new token`, { cause: error })
      }
      throw error
    }
  }
}
