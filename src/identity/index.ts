/**
 * A device's identity: its key in the keystore, its certificate and CA chain, enrollment with a
 * one-time token, and renewal that keeps the device valid without gaps.
 *
 * ```
 * DIR/keystore.ztks   the device key (entry "device"), encrypted under the passphrase
 * DIR/cert.pem        the current certificate        DIR/ca.pem      the CA chain above it
 * DIR/trust.pem       the trust bundle (the root or roots)            DIR/config.json the CA's config
 * ```
 *
 * Renewal (seed 000): once less than a third of the lifetime is left, the device asks
 * `POST /v1/rotate` with a request signed by its current key; the new certificate starts now
 * and the old one stays valid to its end, so connections never see a gap. After expiry the
 * same request works within the CA's grace period (offline-survivable identity); past it, the
 * device must enroll again with a new token.
 *
 * @example
 * ```ts
 * const id = await DeviceIdentity.enroll({ url: 'http://gw:8443', token, dir, passphrase })
 * id.start() // renews in the background
 * ```
 */

import { X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { createError, isErrorCode } from '../errors.js'
import { Keystore, type Passphrase } from '../keystore/index.js'
import { buildCsr } from '../pki/index.js'
import { rotationMessage } from '../ca/index.js'
import type { LinkIdentity } from '../channels/noise-link.js'
import type { TlsIdentity } from '../channels/tls.js'

const KEY_NAME = 'device'

/** Options of {@link DeviceIdentity.enroll}. */
export interface EnrollInit {
  /** The enrollment API's base URL, e.g. `http://127.0.0.1:8443`. */
  url: string
  token: string
  /** The identity directory (created if missing). */
  dir: string
  passphrase: Passphrase
  /** The device id and tenant the token is bound to (the CSR carries them for the record; the CA decides). */
  deviceId?: string
  tenant?: string
  signal?: AbortSignal
  /** Per-request timeout, ms. Default 15 s. */
  timeoutMs?: number
}

/** The state of the certificate's lifetime. */
export type RenewalState = 'fresh' | 'due' | 'grace' | 'expired'

export class DeviceIdentity {
  readonly dir: string
  readonly #keystore: Keystore
  #timer: NodeJS.Timeout | undefined
  #url: string | undefined

  private constructor(dir: string, keystore: Keystore, url?: string) {
    this.dir = dir
    this.#keystore = keystore
    this.#url = url
  }

  /** Generates the device key (if none yet), builds a CSR, enrolls and stores the result. */
  static async enroll(init: EnrollInit): Promise<DeviceIdentity> {
    mkdirSync(init.dir, { recursive: true, mode: 0o700 })
    const path = join(init.dir, 'keystore.ztks')
    const keystore = existsSync(path) ? await Keystore.open(path, init.passphrase) : await Keystore.create(path, init.passphrase)
    if (!keystore.entries().some((e) => e.name === KEY_NAME)) keystore.generate(KEY_NAME, 'ecdsa-p256')
    const identity = new DeviceIdentity(init.dir, keystore, init.url)
    const csr = identity.#csr(init.deviceId ?? 'device', init.tenant ?? 'tenant')
    const response = await postJson(new URL('/v1/enroll', init.url), { token: init.token, csr }, init)
    identity.#store(response)
    return identity
  }

  /** Opens an enrolled identity. */
  static async open(dir: string, passphrase: Passphrase, url?: string): Promise<DeviceIdentity> {
    if (!existsSync(join(dir, 'cert.pem'))) throw createError('ERR_NOT_FOUND', `${dir} holds no enrolled identity`)
    return new DeviceIdentity(dir, await Keystore.open(join(dir, 'keystore.ztks'), passphrase), url)
  }

  /** The current certificate, PEM. */
  get certificatePem(): string {
    return readFileSync(join(this.dir, 'cert.pem'), 'utf8')
  }

  /** The CA chain above it, PEM. */
  get caChainPem(): string {
    return readFileSync(join(this.dir, 'ca.pem'), 'utf8')
  }

  /** Where the certificate stands in its lifetime at `now`, with the CA's grace period. */
  renewalState(now = Date.now(), graceMs = 30 * 86_400_000): RenewalState {
    const cert = new X509Certificate(this.certificatePem)
    const from = new Date(cert.validFrom).getTime()
    const to = new Date(cert.validTo).getTime()
    if (now >= to) return now - to <= graceMs ? 'grace' : 'expired'
    return to - now < (to - from) / 3 ? 'due' : 'fresh'
  }

  /**
   * Renews through `POST /v1/rotate` when due (or in grace); returns whether it renewed. Past
   * the grace period it throws `ERR_CERT_EXPIRED`: enroll again with a new token.
   */
  async renewIfDue(init: { now?: number; force?: boolean; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<boolean> {
    const state = this.renewalState(init.now)
    if (state === 'fresh' && init.force !== true) return false
    if (state === 'expired') throw createError('ERR_CERT_EXPIRED', 'the certificate expired beyond the grace period: enroll again')
    if (this.#url === undefined) throw createError('ERR_INVALID_ARG', 'no CA URL to renew with')
    const peer = new X509Certificate(this.certificatePem)
    const subject = Object.fromEntries(peer.subject.split('\n').map((line) => line.split('=') as [string, string]))
    const csr = this.#csr(subject.CN ?? 'device', subject.OU ?? 'tenant')
    const timestamp = init.now ?? Date.now()
    const signature = this.#keystore.sign(KEY_NAME, rotationMessage(timestamp, csr)).toString('base64')
    const response = await postJson(new URL('/v1/rotate', this.#url), { certificate: this.certificatePem, csr, timestamp, signature }, init)
    this.#store(response)
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

  /** What a secure link presents: the chain, and a signer for the device key that never exports it. */
  linkIdentity(): LinkIdentity {
    return { certificateChainPem: this.certificatePem + this.caChainPem, sign: (message) => this.#keystore.sign(KEY_NAME, message) }
  }

  /**
   * The TLS credentials: the chain and the device key as PKCS#8, which the native TLS context
   * copies into its signer. Zero-fill `privateKey` once the context exists.
   */
  tlsIdentity(): TlsIdentity {
    return { certificateChainPem: this.certificatePem + this.caChainPem, privateKey: this.#keystore.exportPrivateKey(KEY_NAME) }
  }

  /** Accepts a CA rollover: a new trust bundle holding the old and the new root. */
  acceptTrustBundle(bundlePem: string): void {
    if (!bundlePem.includes('-----BEGIN CERTIFICATE-----')) throw createError('ERR_PEM', 'the trust bundle holds no certificate')
    writeAtomic(join(this.dir, 'trust.pem'), bundlePem)
  }

  #csr(deviceId: string, tenant: string): string {
    const key = this.#keystore.exportPrivateKey(KEY_NAME)
    try {
      return buildCsr(key, deviceId, tenant)
    } finally {
      key.fill(0)
    }
  }

  #store(response: Record<string, unknown>): void {
    const { certificate, ca_cert: caChain, config } = response
    if (typeof certificate !== 'string' || typeof caChain !== 'string') throw createError('ERR_BAD_REQUEST', 'the CA answered without a certificate')
    const blocks = caChain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
    writeAtomic(join(this.dir, 'ca.pem'), caChain)
    if (!existsSync(join(this.dir, 'trust.pem')) && blocks.length > 0) writeAtomic(join(this.dir, 'trust.pem'), blocks[blocks.length - 1]!)
    if (config !== undefined) writeAtomic(join(this.dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
    writeAtomic(join(this.dir, 'cert.pem'), certificate) // last: the certificate is the commit point
  }
}

function writeAtomic(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`
  writeFileSync(temp, text, { mode: 0o600, flush: true })
  renameSync(temp, path)
}

/** POSTs JSON and returns the JSON answer; a `{code, message}` answer is thrown as that error. */
async function postJson(url: URL, body: unknown, init: { signal?: AbortSignal; timeoutMs?: number }): Promise<Record<string, unknown>> {
  const signals = [AbortSignal.timeout(init.timeoutMs ?? 15_000), ...(init.signal === undefined ? [] : [init.signal])]
  let response: Response
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.any(signals) })
  } catch (error) {
    throw createError('ERR_UNREACHABLE', `the CA at ${url.origin} did not answer`, { cause: error })
  }
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw createError('ERR_BAD_REQUEST', `the CA answered ${response.status} without JSON`)
  }
  if (typeof parsed !== 'object' || parsed === null) throw createError('ERR_BAD_REQUEST', 'the CA answered with a non-object')
  const answer = parsed as Record<string, unknown>
  if (!response.ok) {
    const code = isErrorCode(answer.code) ? answer.code : 'ERR_INTERNAL'
    throw createError(code, typeof answer.message === 'string' ? answer.message : `the CA answered ${response.status}`)
  }
  return answer
}

