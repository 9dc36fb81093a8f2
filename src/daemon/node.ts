/**
 * The node daemon (`ztmesh node --config node.yaml`): one device of a site, under {@link runDaemon}.
 *
 * - **Identity.** Opens the identity in `store`, or, when the store holds none, enrolls with
 *   `enroll: { url, token }` (the key in the TPM or the software keystore, `identity.keystore`).
 *   A restart reuses it and never enrolls again. A renewal timer rotates it before expiry
 *   (`{"event":"renewed"}`).
 * - **Revocations.** The CA's CRL (and the root CRL) are fetched from the gateway every
 *   `revocations.refreshMs`, on SIGHUP and on demand ({@link PeerConnectorContext.refreshRevocations}),
 *   and applied to every live link: the local API's and the peer connector's. When they name this
 *   device, it emits `{"event":"revoked"}` once and stops serving (the local API closes, the
 *   connector stops); `/healthz` then reports it.
 * - **Local API.** A mutual-TLS listener (`createSecureServer`: peers of this tenant only, every
 *   decision audited) running node:http: `POST /offer` (the body is a signed offer; the answer is
 *   the signed answer, or 400/401/403/413 with `{code, message}`; every refusal audited and
 *   reported as `{"event":"rejected"}`) and `GET /v1/health`.
 * - **Seams.** Discovery, the hub client, WebRTC and the fallback chain sit behind
 *   {@link PeerConnector} (`runNode({ connector })`; `ztmesh node` plugs in `WebRtcConnector`
 *   from src/peering). Its `handleOffer` answers the local API's offers; without a connector
 *   every offer is refused (fail closed). Refusals are answered with the status
 *   `refusalStatus(code)` of src/signaling gives (the one table).
 *
 * Events on stdout, one JSON line each, `ready` first: `ready`, `discovered`, `path`,
 * `connected`, `message`, `rejected`, `revoked`, `renewed` (plus the daemon's `reloaded`,
 * `stopping`, `stopped`).
 */

import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

import { Counter } from 'prom-client'
import { z } from 'zod'

import { AUDIT_CHECKPOINT_MIGRATION, AUDIT_MIGRATION, AuditLog, type AuditEvent } from '../audit/index.js'
import { keystorePassphrase } from '../ca/directory.js'
import { readBodyBytes, sendJson } from '../ca/http.js'
import { createSecureServer, type SecureServer } from '../channels/endpoints.js'
import type { SecureStream } from '../channels/noise-link.js'
import { createError, isErrorCode, ZtError } from '../errors.js'
import { DeviceIdentity, type FetchedCrls } from '../identity/index.js'
import { FILES } from '../identity/constants.js'
import type { AuditSink } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, verifyPeer, type DeviceCredential, type PeerIdentity } from '../primitives/pki/index.js'
import { writeFileAtomic } from '../storage/files.js'
import { openDatabase, type Db } from '../storage/index.js'
import { RateLimiter } from '../rate-limit.js'
import { refusalStatus } from '../signaling/index.js'
import { liveCredential } from './credential.js'
import { daemonConfigSchema, listenAddress, type ListenAddress } from './config.js'
import { runDaemon, type Component, type DaemonContext, type DaemonEvent, type RunDaemonInit } from './index.js'

/** The environment variable holding the node's software keystore passphrase (else `<store>/passphrase`). */
export const NODE_PASSPHRASE_ENV = 'ZTMESH_PASSPHRASE'

/** The local API's routes. */
export const LOCAL_API_ROUTES = Object.freeze({ offer: '/offer', health: '/v1/health' })

/** The content type of `POST /offer` bodies and answers: the signed object's bytes as the core encodes them. */
export const OFFER_CONTENT_TYPE = 'application/octet-stream'
const OFFER_CONTENT_TYPE_PATTERN = /^application\/octet-stream\s*(;|$)/i

/** Where the node keeps the CRLs it fetched last and the CRL numbers it applied (in its store). */
const CRL_FILES = { crl: 'crl.der', rootCrl: 'root-crl.der', progress: 'crl-progress.bin' } as const

/** The node's configuration (YAML, then flags). */
export const nodeConfigSchema = daemonConfigSchema({
  /** The identity directory (key, certificate, trust, the audit log). */
  store: z.string().min(1),
  /** The gateway's CA API base URL (renewals; the CRL comes from the URL the CA gave at enrollment). */
  gateway: z.url({ protocol: /^https$/ }).optional(),
  /** Used on the first start only, when the store holds no identity. */
  enroll: z.strictObject({ url: z.url({ protocol: /^https$/ }), token: z.string().min(1).max(4096) }).optional(),
  identity: z
    .strictObject({
      keystore: z.enum(['auto', 'tpm', 'software']).default('software'),
      tcti: z.string().min(1).optional(),
      renewCheckMs: z.number().int().min(1_000).max(86_400_000).default(3_600_000),
    })
    .prefault({}),
  /** The local API (mutual TLS). */
  listen: listenAddress.prefault('127.0.0.1:7443'),
  revocations: z.strictObject({ refreshMs: z.number().int().min(100).max(86_400_000).default(30_000) }).prefault({}),
  limits: z
    .strictObject({
      /** Largest `POST /offer` body, bytes. */
      maxOfferBytes: z.number().int().min(256).max(1024 * 1024).default(64 * 1024),
      /** Open connections to the local API. */
      maxConnections: z.number().int().min(1).max(100_000).default(256),
      /** Time limit of one request (headers and body), ms. */
      requestTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
      /** Offers one peer identity (tenant and device, not an address) may send per minute on average … */
      offersPerMinute: z.number().int().min(1).max(60_000).default(120),
      /** … and at once. */
      offerBurst: z.number().int().min(1).max(10_000).default(20),
    })
    .prefault({}),
  discovery: z.strictObject({ mdns: z.boolean().default(false), bootstrap: z.array(listenAddress).max(1_000).default([]) }).prefault({}),
  /** The gateway's hub (HOST:PORT); without it, the hub a gateway announces over mDNS. */
  hub: listenAddress.optional(),
  /** The cloud hub (HOST:PORT), after the LAN paths in the fallback chain. */
  cloud: listenAddress.optional(),
  /** Once ready: open a channel to this device (through the connector) … */
  connect: z.string().min(1).max(64).optional(),
  /** … and send this text on it. */
  send: z.string().max(64 * 1024).optional(),
})

/** The checked node configuration. */
export type NodeConfig = z.output<typeof nodeConfigSchema>

/** Keys that cannot change while the node runs. */
export const NODE_FIXED_KEYS = ['store', 'gateway', 'enroll', 'identity.keystore', 'identity.tcti', 'listen', 'discovery.mdns', 'discovery.bootstrap', 'hub', 'cloud', 'connect', 'send']

/** Flags of `ztmesh node` and the keys they override. */
export const NODE_FLAGS = {
  store: { key: 'store' },
  gateway: { key: 'gateway' },
  mdns: { key: 'discovery.mdns', type: 'boolean' },
  bootstrap: { key: 'discovery.bootstrap', type: 'list' },
  listen: { key: 'listen' },
  hub: { key: 'hub' },
  cloud: { key: 'cloud' },
  connect: { key: 'connect' },
  send: { key: 'send' },
  'metrics-listen': { key: 'metrics.listen' },
  'log-level': { key: 'log.level' },
} as const

/**
 * Answers a signed offer that arrived on the local API over a mutual-TLS link from `linkPeer`:
 * resolves the signed answer's bytes, or throws a `ZtError` (the refusal's code).
 */
export type OfferHandler = (offer: Buffer, linkPeer: PeerIdentity) => Promise<Buffer>

/** An open data channel to a peer, as the connector hands it out. */
export interface PeerChannel {
  send(data: string | Uint8Array): void
  close(): void
}

/** What a {@link PeerConnector} is started with. */
export interface PeerConnectorContext {
  /** This device's identity (always its current certificate: it follows renewals). */
  identity: DeviceCredential
  trustPem: string
  /** The revocations in force now; later ones come through `setRevocations`. */
  revocations: RevocationSet
  /** This node's audit log. */
  audit: AuditSink
  config: NodeConfig
  /** Where the local API listens (for mDNS adverts). */
  localApi: ListenAddress
  /** Emits an event line (`discovered`, `path`, `connected`, `message`, `rejected`). */
  emit(event: DaemonEvent): void
  daemon: DaemonContext
  /** Fetches the CRL now and applies it everywhere (e.g. when the hub says a peer was revoked). */
  refreshRevocations(): Promise<void>
}

/**
 * Discovery, the hub client, WebRTC and the fallback chain, behind one interface (the lead fills
 * it): started after the local API, stopped before it, told every new revocation set.
 */
export interface PeerConnector {
  start(context: PeerConnectorContext): void | Promise<void>
  /** Opens a verified data channel to `deviceId` (emitting `path` and `connected`). */
  connect(deviceId: string, init: { signal: AbortSignal }): Promise<PeerChannel>
  setRevocations(revocations: RevocationSet): void
  /** Answers the local API's `POST /offer`; without it offers are refused. */
  handleOffer?: OfferHandler
  stop(): void | Promise<void>
}

/** Options of {@link runNode}. */
export interface RunNodeInit extends RunDaemonInit {
  connector?: PeerConnector
}

/** Runs the node daemon until SIGTERM or SIGINT; resolves with the exit status. */
export function runNode(init: RunNodeInit = {}): Promise<number> {
  let node: NodeDaemon | undefined
  return runDaemon(
    {
      name: 'node',
      schema: nodeConfigSchema,
      flags: NODE_FLAGS,
      fixedKeys: NODE_FIXED_KEYS,
      ready: () => node?.readyInfo() ?? {},
      components(config, context) {
        node = new NodeDaemon(config, context, init.connector)
        return node.components()
      },
    },
    init,
  )
}

/** The node's parts and the state they share. */
class NodeDaemon {
  #config: NodeConfig
  readonly #context: DaemonContext
  readonly #connector: PeerConnector | undefined
  #identity: DeviceIdentity | undefined
  #db: Db | undefined
  #audit: AuditLog | undefined
  #revocations = new RevocationSet()
  #api: SecureServer | undefined
  #http: HttpServer | undefined
  #apiAddress: AddressInfo | undefined
  #revoked = false
  #renewal: NodeJS.Timeout | undefined
  #refresh: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #connectorStarted = false
  #refreshedOnce = false
  readonly #aborts = new AbortController()
  readonly #offers: Counter<'outcome' | 'code'>
  /** The per-peer offer buckets, and the rate (`offerRate`) they were built for. */
  #offerLimiter: { limiter: RateLimiter; rate: string }
  /** When each peer's last rate-limit refusal was audited (one row per peer per minute, not per request). */
  readonly #limitAudited = new Map<string, number>()
  /** Link refusals by code: when the first was audited, and how many came after it in its minute. */
  readonly #refusalWindows = new Map<string, { since: number; suppressed: number }>()
  readonly #linkRefusals: Counter<'code'>

  constructor(config: NodeConfig, context: DaemonContext, connector: PeerConnector | undefined) {
    this.#config = config
    this.#context = context
    this.#connector = connector
    this.#offerLimiter = offerLimiter(config)
    this.#linkRefusals = new Counter({ name: 'ztmesh_node_link_refusals_total', help: 'Links to the local API refused before any request, by code', labelNames: ['code'], registers: [context.metrics.registry] })
    this.#offers = new Counter({ name: 'ztmesh_node_offers_total', help: 'Offers on the local API, answered or refused (by code)', labelNames: ['outcome', 'code'], registers: [context.metrics.registry] })
    context.metrics.addHealthCheck('identity', () => (this.#revoked ? 'this device is revoked' : true))
  }

  readyInfo(): Record<string, unknown> {
    const facts = this.#identity === undefined ? undefined : inspectCertificate(this.#identity.certificatePem)
    const api = this.#apiAddress
    return {
      deviceId: facts?.deviceId,
      tenant: facts?.tenant,
      serial: facts?.serial,
      keystore: this.#identity?.keystore,
      listen: api === undefined ? undefined : `${api.family === 'IPv6' ? `[${api.address}]` : api.address}:${api.port}`,
    }
  }

  components(): Component<NodeConfig>[] {
    // Refused before anything starts: the first start needs its enrollment.
    if (this.#config.enroll === undefined && !existsSync(join(this.#config.store, FILES.certificate))) {
      throw createError('ERR_CONFIG', `config: enroll: ${this.#config.store} holds no identity; give enroll.url and enroll.token for the first start`)
    }
    const identity: Component<NodeConfig> = {
      name: 'identity',
      start: () => this.#openIdentity(),
      stop: () => this.#closeStore(),
      reload: (next) => {
        this.#config = next
        this.#armRenewal()
      },
    }
    const revocations: Component<NodeConfig> = {
      name: 'revocations',
      start: async () => {
        await this.refreshRevocations()
        this.#armRefresh()
      },
      stop: () => clearInterval(this.#refresh),
      reload: async (next) => {
        this.#config = next
        this.#armRefresh()
        await this.refreshRevocations()
      },
    }
    const api: Component<NodeConfig> = {
      name: 'local-api',
      start: async () => {
        if (!this.#revoked) await this.#startApi(this.#config.listen)
      },
      stop: () => this.#stopApi(),
      reload: (next) => {
        this.#config = next
        // A reload (SIGHUP, also sent to refresh the CRL) keeps every peer's bucket unless the rate changed.
        if (this.#offerLimiter.rate !== offerRate(next)) this.#offerLimiter = offerLimiter(next)
        this.#applyLimits()
      },
    }
    const connector: Component<NodeConfig> = {
      name: 'connector',
      start: () => this.#startConnector(),
      stop: () => this.#stopConnector(),
    }
    const renewal: Component<NodeConfig> = {
      name: 'renewal',
      start: () => this.#armRenewal(),
      stop: () => clearInterval(this.#renewal),
    }
    return [identity, revocations, api, connector, renewal]
  }

  /** Opens the identity, or enrolls on the first start; then the audit log it signs. */
  async #openIdentity(): Promise<void> {
    const { store, enroll, identity: idConfig } = this.#config
    mkdirSync(store, { recursive: true, mode: 0o700 })
    const passphrase = keystorePassphrase(store, NODE_PASSPHRASE_ENV, true)
    const tcti = idConfig.tcti !== undefined ? { tcti: idConfig.tcti } : {}
    const url = this.#config.gateway ?? enroll?.url
    if (existsSync(join(store, FILES.certificate))) {
      this.#identity = await DeviceIdentity.open(store, passphrase, url, tcti)
    } else {
      if (enroll === undefined) throw createError('ERR_CONFIG', `config: enroll: ${store} holds no identity`)
      const enrolled = await DeviceIdentity.enroll({ url: enroll.url, token: enroll.token, dir: store, passphrase, keystore: idConfig.keystore, ...tcti })
      this.#context.logger.info({ store, keystore: enrolled.keystore, attested: enrolled.attested }, 'enrolled')
      this.#identity = await DeviceIdentity.open(store, passphrase, url, tcti)
    }
    const facts = inspectCertificate(this.#identity.certificatePem)
    this.#db = openDatabase(join(store, 'audit.db'), { migrations: [AUDIT_MIGRATION, AUDIT_CHECKPOINT_MIGRATION] })
    this.#audit = new AuditLog(this.#db, {
      checkpoints: {
        logId: `node/${facts.deviceId ?? 'device'}`,
        trust: TrustStore.fromPem(this.#identity.trustPem),
        signer: liveCredential(this.#identity),
        policy: { ...(facts.deviceId !== undefined && { expectedDevice: facts.deviceId }), ...(facts.tenant !== undefined && { expectedTenant: facts.tenant }) },
        file: join(store, 'audit.checkpoint'),
      },
    })
  }

  /** Signs a checkpoint over the audit head and closes the store. */
  #closeStore(): void {
    clearInterval(this.#renewal)
    this.#flushRefusals()
    try {
      if (this.#audit !== undefined && this.#identity !== undefined) this.#audit.checkpoint()
    } catch (error) {
      this.#context.logger.error({ err: error }, 'the audit checkpoint could not be signed at stop')
    } finally {
      this.#db?.close()
      this.#db = undefined
      this.#audit = undefined
    }
  }

  /** The audit log as a sink that throws when a row cannot be written (the store is closed, the disk full). */
  #auditSink(): AuditSink {
    return {
      append: (event) => {
        if (this.#audit === undefined) throw createError('ERR_STORAGE', 'the audit log is closed')
        return this.#audit.append(event)
      },
    }
  }

  #record(event: AuditEvent): void {
    try {
      this.#audit?.append(event)
    } catch (error) {
      this.#context.logger.error({ err: error, action: event.action }, 'an audit row could not be written')
    }
  }

  /**
   * Fetches the CRL and applies it to every live link; when it names this device, reports
   * `revoked` once and stops serving. A CRL that cannot be fetched keeps the revocations in force.
   */
  refreshRevocations(): Promise<void> {
    this.#refreshing ??= this.#refreshOnce().finally(() => (this.#refreshing = undefined))
    return this.#refreshing
  }

  async #refreshOnce(): Promise<void> {
    const identity = this.#identity
    if (identity === undefined || this.#revoked) return
    const first = !this.#refreshedOnce
    this.#refreshedOnce = true
    let revocations: RevocationSet
    try {
      revocations = await identity.fetchRevocations(identity.trustPem, { timeoutMs: 10_000, signal: this.#aborts.signal, into: this.#newRevocationSet(), onVerified: (crls) => this.#keepCrls(crls) })
    } catch (error) {
      const code = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
      // A CRL the PKI refused (older than one applied, badly signed, stale) is an attack or a
      // broken CA: audited. An unreachable gateway is only logged (it is down now and then).
      if (code !== 'ERR_UNREACHABLE' && code !== 'ERR_TIMEOUT' && code !== 'ERR_ABORTED') this.#record({ actor: 'gateway', action: 'revocations.refresh', outcome: 'deny', reason: code })
      this.#context.logger.warn({ code, message: (error as Error).message }, 'the CRL could not be fetched; the revocations in force stay')
      const cached = first ? this.#cachedRevocations() : undefined
      if (cached === undefined) return
      this.#context.logger.warn('the gateway is unreachable: the CRL fetched last is in force')
      revocations = cached
    }
    writeFileAtomic(join(this.#config.store, CRL_FILES.progress), revocations.progress())
    this.#revocations = revocations
    this.#api?.setRevocations(revocations)
    this.#connector?.setRevocations(revocations)
    try {
      verifyPeer(identity.credential().certificateChainPem, TrustStore.fromPem(identity.trustPem), revocations)
    } catch (error) {
      if (error instanceof ZtError && error.code === 'ERR_CERT_REVOKED') return this.#onRevoked()
      this.#context.logger.error({ code: (error as ZtError).code }, 'this device does not verify under its own trust')
    }
  }

  /** A revocation set that refuses CRLs older than those applied before (also before a restart). */
  #newRevocationSet(): RevocationSet {
    const set = new RevocationSet()
    const progress = join(this.#config.store, CRL_FILES.progress)
    if (existsSync(progress)) set.restoreProgress(readFileSync(progress))
    return set
  }

  /** Keeps the CRLs just verified, for a restart while the gateway is unreachable. */
  #keepCrls(crls: FetchedCrls): void {
    writeFileAtomic(join(this.#config.store, CRL_FILES.crl), crls.crl)
    if (crls.rootCrl !== undefined) writeFileAtomic(join(this.#config.store, CRL_FILES.rootCrl), crls.rootCrl)
  }

  /** The CRLs kept from the last fetch, verified again; undefined when there are none or they no longer verify. */
  #cachedRevocations(): RevocationSet | undefined {
    const identity = this.#identity!
    const path = join(this.#config.store, CRL_FILES.crl)
    if (!existsSync(path)) return undefined
    const rootPath = join(this.#config.store, CRL_FILES.rootCrl)
    try {
      return identity.revocationsFrom({ crl: readFileSync(path), ...(existsSync(rootPath) && { rootCrl: readFileSync(rootPath) }) }, identity.trustPem, new RevocationSet())
    } catch (error) {
      this.#context.logger.error({ code: (error as ZtError).code }, 'the CRL kept from the last fetch does not verify any more')
      return undefined
    }
  }

  async #onRevoked(): Promise<void> {
    if (this.#revoked) return
    this.#revoked = true
    this.#record({ actor: 'ca', action: 'node.revoked', outcome: 'deny', reason: 'ERR_CERT_REVOKED' })
    this.#context.logger.error('this device was revoked: it stops serving')
    this.#aborts.abort(createError('ERR_CERT_REVOKED', 'this device was revoked'))
    clearInterval(this.#refresh)
    clearInterval(this.#renewal)
    // Reported once nothing serves any more: whoever reads the event finds the node cut off.
    try {
      await this.#stopConnector()
    } finally {
      await this.#stopApi()
      this.#context.emit({ event: 'revoked' })
    }
  }

  #armRefresh(): void {
    clearInterval(this.#refresh)
    if (this.#revoked) return
    this.#refresh = setInterval(() => void this.refreshRevocations(), this.#config.revocations.refreshMs)
    this.#refresh.unref()
  }

  #armRenewal(): void {
    clearInterval(this.#renewal)
    if (this.#revoked) return
    const check = (): void => {
      const identity = this.#identity
      if (identity === undefined || this.#revoked) return
      identity.renewIfDue({ signal: this.#aborts.signal }).then(
        async (renewed) => {
          if (!renewed) return
          const facts = inspectCertificate(identity.certificatePem)
          this.#context.emit({ event: 'renewed', deviceId: facts.deviceId, serial: facts.serial, notAfter: new Date(facts.notAfterMs).toISOString() })
          // The listener presents the new certificate from now on: rebuilt on the port it holds.
          const address = this.#apiAddress
          if (address !== undefined && this.#api !== undefined) {
            await this.#stopApi()
            // A revocation handled while the old listener stopped keeps the device silent.
            if (!this.#revoked) await this.#startApi({ host: address.address, port: address.port })
          }
        },
        (error: unknown) => this.#context.logger.error({ code: (error as ZtError).code, message: (error as Error).message }, 'renewal failed; retrying at the next check'),
      )
    }
    check()
    this.#renewal = setInterval(check, this.#config.identity.renewCheckMs)
    this.#renewal.unref()
  }

  async #startApi(listen: ListenAddress): Promise<void> {
    const identity = this.#identity!
    const http = createServer((request, response) => void this.#handle(request, response))
    this.#http = http
    const api = createSecureServer(
      // The decision point's sink throws when a row cannot be written: it then denies (fail closed).
      { identity: liveCredential(identity), trustPem: identity.trustPem, revocations: this.#revocations, audit: this.#auditSink(), service: 'local-api' },
      (link) => http.emit('connection', link),
      (error) => this.#linkRefused(error instanceof ZtError ? error.code : 'ERR_TLS_HANDSHAKE'),
    )
    this.#api = api
    this.#applyLimits()
    this.#apiAddress = await api.listen(listen.port, listen.host)
  }

  /**
   * A link refused before any request. Policy refusals (an authenticated peer) are audited by
   * the decision point, each. The others come from anyone who can open a socket (no client
   * certificate, a chain that does not verify, a revoked peer): the first of each code per
   * minute is audited and reported, the rest counted, and the count written as one row when the
   * minute is over (or at stop), so a flood of handshakes cannot flood the audit log.
   */
  #linkRefused(code: string): void {
    this.#linkRefusals.inc({ code })
    if (code === 'ERR_POLICY_DENIED') return void this.#context.emit({ event: 'rejected', peer: null, code })
    const now = Date.now()
    const window = this.#refusalWindows.get(code)
    if (window !== undefined && now - window.since < 60_000) {
      window.suppressed++
      return
    }
    if (window !== undefined) this.#flushRefusals(code)
    this.#refusalWindows.set(code, { since: now, suppressed: 0 })
    this.#record({ actor: 'unknown', action: 'local-api.link', outcome: 'deny', reason: code })
    this.#context.emit({ event: 'rejected', peer: null, code })
  }

  /** Writes the count of refusals not audited one by one (all codes, or one). */
  #flushRefusals(only?: string): void {
    for (const [code, window] of this.#refusalWindows) {
      if (only !== undefined && code !== only) continue
      if (window.suppressed > 0) this.#record({ actor: 'unknown', action: 'local-api.link', outcome: 'deny', reason: code, detail: { count: window.suppressed, tally: true } })
      this.#refusalWindows.delete(code)
    }
  }

  #applyLimits(): void {
    const { maxConnections, requestTimeoutMs } = this.#config.limits
    if (this.#api !== undefined) this.#api.server.maxConnections = maxConnections
    if (this.#http !== undefined) {
      this.#http.requestTimeout = requestTimeoutMs
      this.#http.headersTimeout = requestTimeoutMs
      this.#http.maxHeadersCount = 50
    }
  }

  async #stopApi(): Promise<void> {
    const api = this.#api
    this.#api = undefined
    this.#http?.closeAllConnections()
    this.#http = undefined
    await api?.close()
  }

  async #startConnector(): Promise<void> {
    const connector = this.#connector
    const { connect, send } = this.#config
    if (connector === undefined) {
      if (connect !== undefined) this.#context.logger.warn({ connect }, 'this build has no peer connector (discovery, hub, WebRTC): --connect is ignored')
      return
    }
    const identity = this.#identity!
    await connector.start({
      identity: liveCredential(identity),
      trustPem: identity.trustPem,
      revocations: this.#revocations,
      audit: this.#auditSink(),
      config: this.#config,
      localApi: { host: this.#apiAddress?.address ?? this.#config.listen.host, port: this.#apiAddress?.port ?? this.#config.listen.port },
      emit: this.#context.emit,
      daemon: this.#context,
      refreshRevocations: () => this.refreshRevocations(),
    })
    this.#connectorStarted = true
    if (connect !== undefined) {
      // After `ready`: the connection runs in the background and reports through its events.
      setImmediate(() => {
        connector.connect(connect, { signal: this.#aborts.signal }).then(
          (channel) => {
            if (send !== undefined) channel.send(send)
          },
          (error: unknown) => this.#context.logger.error({ connect, code: (error as ZtError).code, message: (error as Error).message }, 'the connection failed'),
        )
      })
    }
  }

  async #stopConnector(): Promise<void> {
    if (!this.#connectorStarted) return
    this.#connectorStarted = false
    await this.#connector?.stop()
  }

  /**
   * Refuses an offer over the peer's rate (429 `ERR_RATE_LIMITED`): counted every time, audited
   * and reported once per peer per minute, so a flood cannot flood the audit log.
   */
  #rateLimited(peer: PeerIdentity, response: ServerResponse): void {
    const key = `${peer.tenant}/${peer.deviceId}`
    const now = Date.now()
    this.#offers.inc({ outcome: 'refused', code: 'ERR_RATE_LIMITED' })
    if ((this.#limitAudited.get(key) ?? 0) + 60_000 <= now) {
      if (this.#limitAudited.size >= 10_000) this.#limitAudited.clear()
      this.#limitAudited.set(key, now)
      this.#record({ actor: peer.deviceId, action: 'local-api.offer', outcome: 'deny', reason: 'ERR_RATE_LIMITED', detail: { tenant: peer.tenant } })
      this.#context.emit({ event: 'rejected', peer: peer.deviceId, code: 'ERR_RATE_LIMITED' })
    }
    sendJson(response, 429, { code: 'ERR_RATE_LIMITED', message: 'too many offers; retry later' })
  }

  /** One request of the local API; the link's peer is already authenticated and admitted. */
  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const link = request.socket as unknown as SecureStream
    const peer = link.peer
    const path = (request.url ?? '/').split(/[?#]/)[0]
    const refuse = (error: unknown): void => {
      const code = error instanceof ZtError && isErrorCode(error.code) ? error.code : 'ERR_INTERNAL'
      const status = code === 'ERR_INTERNAL' ? 500 : refusalStatus(code)
      this.#record({ actor: peer.deviceId, action: 'local-api.offer', outcome: status === 500 ? 'error' : 'deny', reason: code, detail: { tenant: peer.tenant } })
      this.#context.emit({ event: 'rejected', peer: peer.deviceId, code })
      this.#offers.inc({ outcome: 'refused', code })
      sendJson(response, status, { code, message: status === 500 ? 'internal error' : (error as Error).message })
    }
    try {
      if (path === LOCAL_API_ROUTES.health) {
        if (request.method !== 'GET') throw createError('ERR_METHOD_NOT_ALLOWED', 'GET only')
        return sendJson(response, 200, { ok: !this.#revoked, ...this.readyInfo() })
      }
      if (path !== LOCAL_API_ROUTES.offer) throw createError('ERR_NOT_FOUND', 'no such route')
      if (request.method !== 'POST') throw createError('ERR_METHOD_NOT_ALLOWED', 'POST only')
      if (this.#revoked) throw createError('ERR_CERT_REVOKED', 'this device was revoked')
      if (!this.#offerLimiter.limiter.take(`${peer.tenant}/${peer.deviceId}`)) return this.#rateLimited(peer, response)
      const offer = await readBody(request, this.#config.limits.maxOfferBytes, this.#config.limits.requestTimeoutMs)
      const handler = this.#connector?.handleOffer
      if (handler === undefined) throw createError('ERR_POLICY_DENIED', 'this node has no signaling guard: offers are refused')
      const answer = await handler.call(this.#connector, offer, peer)
      // No answer leaves without its audit row (a row that cannot be written refuses the offer).
      this.#auditSink().append({ actor: peer.deviceId, action: 'local-api.offer', outcome: 'allow', reason: 'ok', detail: { tenant: peer.tenant } })
      this.#offers.inc({ outcome: 'answered', code: 'ok' })
      response.writeHead(200, { 'content-type': OFFER_CONTENT_TYPE, 'content-length': answer.length, 'cache-control': 'no-store' })
      response.end(answer)
    } catch (error) {
      if (response.headersSent) return void response.destroy()
      refuse(error)
    }
  }
}

/** The per-identity token bucket of `POST /offer`. */
function offerLimiter(config: NodeConfig): { limiter: RateLimiter; rate: string } {
  return { limiter: new RateLimiter({ perSecond: config.limits.offersPerMinute / 60, burst: config.limits.offerBurst, maxSources: 10_000 }), rate: offerRate(config) }
}

/** What the offer buckets depend on: a reload that changes it starts new ones. */
function offerRate(config: NodeConfig): string {
  return `${config.limits.offersPerMinute}/${config.limits.offerBurst}`
}

/** Reads a signed object's bytes: `application/octet-stream`, not empty, at most `limit` bytes, within `timeoutMs`. */
async function readBody(request: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const body = await readBodyBytes(request, { contentType: OFFER_CONTENT_TYPE_PATTERN, typeName: OFFER_CONTENT_TYPE, limit, timeoutMs })
  if (body.length === 0) throw createError('ERR_BAD_REQUEST', 'the body is empty: expected a signed offer')
  return body
}
