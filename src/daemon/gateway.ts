/**
 * The gateway daemon (`ztmesh gateway --config gateway.yaml`): the site's CA service and its TLS
 * enrollment API, the gateway's own persistent identity, CRL distribution to the hub, signed audit
 * checkpoints and, when configured, re-attestation, all under {@link runDaemon}.
 *
 * - **Identity.** On its first start the gateway enrolls itself with its own site CA, as any
 *   device does (a one-time token, a CSR, the answer checked against the root the token pins):
 *   device `gateway`, role `gateway`, its key in the TPM or the software keystore
 *   (`identity.keystore`). Later starts reuse it, and a renewal timer rotates it before expiry
 *   (`{"event":"renewed"}`). With it the gateway signs its audit checkpoints (every
 *   `audit.checkpointEvery` records and on stop) and, later, presents itself to the hub's clients.
 * - **Revocations.** The CA's CRL and the offline root's CRL are served on the CA API
 *   (`GET /v1/crl`, `GET /v1/root-crl`); every `revocations.pollMs` the gateway rebuilds its
 *   revocation set when the CRL number (or the root CRL) changed, and hands it to the hub (a
 *   revocation by `ztmesh ca revoke` from another process reaches the hub within one poll).
 * - **Hub seam.** The hub is a {@link GatewayHub} built by the `hub` factory given to
 *   {@link runGateway}, after the identity exists; without one the gateway runs without a hub.
 *
 * @example
 * ```ts
 * process.exitCode = await runGateway({ hub: (context) => new HubAdapter(context) })
 * ```
 */

import { mkdirSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

import { Gauge } from 'prom-client'
import { z } from 'zod'

import { Reattestor, type NodeEndpoint } from '../attestation/verifier/reattest.js'
import { CaDirectory, CaService } from '../ca/index.js'
import { keystorePassphrase } from '../ca/directory.js'
import { createEnrollmentServer } from '../ca/server.js'
import { DeviceIdentity } from '../identity/index.js'
import type { AuditSink } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, type DeviceCredential } from '../primitives/pki/index.js'
import { liveCredential } from './credential.js'
import { daemonConfigSchema, listenAddress } from './config.js'
import { GatewayStaff } from './staff.js'
import type { HubServer } from '../hub/index.js'
import { runDaemon, type Component, type DaemonContext, type RunDaemonInit } from './index.js'

/** The gateway's own device id and role in its site. */
export const GATEWAY_IDENTITY = Object.freeze({ deviceId: 'gateway', role: 'gateway' })

/** The environment variable holding the gateway's software keystore passphrase (else `<store>/passphrase`). */
export const GATEWAY_PASSPHRASE_ENV = 'ZTMESH_PASSPHRASE'

const tenantName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected a tenant name (letters, digits, . _ -)')

/** The gateway's configuration (YAML, then flags). */
export const gatewayConfigSchema = daemonConfigSchema({
  ca: z.strictObject({
    /** The CA directory (`ztmesh ca init` or `ca site install`). */
    dir: z.string().min(1),
    /** Where the enrollment API (TLS 1.3) listens. */
    listen: listenAddress.prefault('127.0.0.1:8443'),
    /** The tenant the CA API's certificate and the gateway's identity name. */
    tenant: tenantName,
    /** The public base URL devices reach the API at (their `crl_url`); default: the bound address. */
    url: z.url({ protocol: /^https$/ }).optional(),
    /** The TPM the site keystore's passphrase is sealed to, when it is. */
    tcti: z.string().min(1).optional(),
    rotationOverlapSeconds: z.number().int().min(0).max(90 * 86_400).optional(),
  }),
  identity: z
    .strictObject({
      /** The gateway's identity directory. Default `<ca.dir>/gateway`. */
      store: z.string().min(1).optional(),
      keystore: z.enum(['auto', 'tpm', 'software']).default('software'),
      tcti: z.string().min(1).optional(),
      /** How often renewal is checked, ms (it renews once a third of the lifetime is left). */
      renewCheckMs: z.number().int().min(1_000).max(86_400_000).default(3_600_000),
    })
    .prefault({}),
  revocations: z.strictObject({ pollMs: z.number().int().min(100).max(600_000).default(1_000) }).prefault({}),
  audit: z.strictObject({ checkpointEvery: z.number().int().min(1).max(1_000_000).default(100) }).prefault({}),
  hub: z
    .strictObject({
      /** Where the hub listens (the hub part decides its default). */
      listen: listenAddress.optional(),
      /** Redis for the cloud hub's scale-out. */
      redis: z.url({ protocol: /^rediss?$/ }).optional(),
      /** Announce the gateway (and its hub's port) over mDNS, role `gateway`. */
      mdns: z.boolean().default(false),
      /** The IPv4 address of the interface mDNS multicasts on (default: all). */
      mdnsInterface: z.ipv4().optional(),
    })
    .prefault({}),
  /** The staff page (browser clients, `src/staff/`): its own HTTPS listener; off unless set. */
  staff: z.strictObject({ listen: listenAddress.optional() }).prefault({}),
  reattest: z
    .strictObject({
      /** The nodes to ask for fresh quotes (each runs an attest responder); none: off. */
      nodes: z.array(z.strictObject({ deviceId: z.string().min(1), host: z.string().min(1), port: z.number().int().min(1).max(65535), tenant: tenantName.optional() })).max(10_000).default([]),
      intervalSeconds: z.number().int().min(1).max(86_400).default(900),
      protocol: z.enum(['tls', 'noise']).default('tls'),
    })
    .prefault({}),
})

/** The checked gateway configuration. */
export type GatewayConfig = z.output<typeof gatewayConfigSchema>

/** Keys that cannot change while the gateway runs (a reload changing one is refused, naming it). */
export const GATEWAY_FIXED_KEYS = ['ca.dir', 'ca.listen', 'ca.tenant', 'ca.url', 'ca.tcti', 'identity.store', 'identity.keystore', 'identity.tcti', 'hub.listen', 'hub.redis', 'hub.mdns', 'hub.mdnsInterface', 'staff.listen', 'reattest.protocol']

/** Flags of `ztmesh gateway` and the keys they override. */
export const GATEWAY_FLAGS = {
  dir: { key: 'ca.dir' },
  listen: { key: 'ca.listen' },
  tenant: { key: 'ca.tenant' },
  redis: { key: 'hub.redis' },
  'hub-listen': { key: 'hub.listen' },
  mdns: { key: 'hub.mdns', type: 'boolean' },
  'metrics-listen': { key: 'metrics.listen' },
  'log-level': { key: 'log.level' },
} as const

/**
 * The hub slot (the hub part plugs `HubServer` in): started after the CA and the gateway's
 * identity, stopped before them, and told every new revocation set with the CRL that made it.
 */
export interface GatewayHub {
  start(): void | Promise<void>
  stop(): void | Promise<void>
  setRevocations(revocations: RevocationSet, crlPem?: string): void
  /** The hub server, when the slot runs one: the staff page joins browsers to it (`staff.listen`). */
  readonly server?: HubServer
  /** Where it listens, once started (the `ready` line's `hub`). */
  readonly address?: AddressInfo | undefined
}

/** What a hub is built with. */
export interface GatewayHubContext {
  /** The gateway's identity (always its current certificate: it follows renewals). */
  identity: DeviceCredential
  trustPem: string
  /** The revocations in force at the hub's start. */
  revocations: RevocationSet
  /** The CA's audit log. */
  audit: AuditSink
  config: GatewayConfig['hub']
  daemon: DaemonContext
}

/** Builds the hub; called once, when the hub component starts. */
export type GatewayHubFactory = (context: GatewayHubContext) => GatewayHub | Promise<GatewayHub>

/** Options of {@link runGateway}. */
export interface RunGatewayInit extends RunDaemonInit {
  hub?: GatewayHubFactory
}

/** Runs the gateway daemon until SIGTERM or SIGINT; resolves with the exit status. */
export function runGateway(init: RunGatewayInit = {}): Promise<number> {
  let gateway: Gateway | undefined
  return runDaemon(
    {
      name: 'gateway',
      schema: gatewayConfigSchema,
      flags: GATEWAY_FLAGS,
      fixedKeys: GATEWAY_FIXED_KEYS,
      ready: () => gateway?.readyInfo() ?? {},
      components(config, context) {
        gateway = new Gateway(config, context, init.hub)
        return gateway.components()
      },
    },
    init,
  )
}

/** The gateway's parts and the state they share. */
class Gateway {
  #config: GatewayConfig
  readonly #context: DaemonContext
  readonly #hubFactory: GatewayHubFactory | undefined
  #ca: CaService | undefined
  #identity: DeviceIdentity | undefined
  #server: Server | undefined
  #url: string | undefined
  #hub: GatewayHub | undefined
  #renewal: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  #reattestor: Reattestor | undefined
  readonly #staff = new GatewayStaff()
  /** What the last revocation set was built from: the CRL number and the root CRL. */
  #crlSeen = ''
  readonly #crlNumber: Gauge

  constructor(config: GatewayConfig, context: DaemonContext, hubFactory: GatewayHubFactory | undefined) {
    this.#config = config
    this.#context = context
    this.#hubFactory = hubFactory
    this.#crlNumber = new Gauge({ name: 'ztmesh_gateway_crl_number', help: 'The CRL number of the revocations in force', registers: [context.metrics.registry] })
    context.metrics.addHealthCheck('ca', () => (this.#server?.listening === true ? true : 'the CA API is not listening'))
  }

  get #store(): string {
    return this.#config.identity.store ?? join(this.#config.ca.dir, 'gateway')
  }

  readyInfo(): Record<string, unknown> {
    const facts = this.#identity === undefined ? undefined : inspectCertificate(this.#identity.certificatePem)
    const hub = this.#hub?.address
    return {
      ca: this.#url,
      ...(hub !== undefined && { hub: `${hub.family === 'IPv6' ? `[${hub.address}]` : hub.address}:${hub.port}` }),
      ...(this.#staff.url !== undefined && { staff: this.#staff.url }),
      identity: facts === undefined ? undefined : { deviceId: facts.deviceId, tenant: facts.tenant, serial: facts.serial, keystore: this.#identity!.keystore },
    }
  }

  components(): Component<GatewayConfig>[] {
    const ca: Component<GatewayConfig> = { name: 'ca', start: () => this.#startCa(), stop: () => this.#stopCa() }
    const identity: Component<GatewayConfig> = {
      name: 'identity',
      start: () => this.#armRenewal(),
      stop: () => clearInterval(this.#renewal),
      reload: (next) => {
        this.#config = next
        this.#armRenewal()
      },
    }
    const hub: Component<GatewayConfig> = {
      name: 'hub',
      start: async () => {
        if (this.#hubFactory === undefined) return
        const ca = this.#ca!
        this.#hub = await this.#hubFactory({
          identity: liveCredential(this.#identity!),
          trustPem: ca.trustBundle(),
          revocations: ca.revocations(),
          audit: { append: (event) => ca.recordAudit(event) },
          config: this.#config.hub,
          daemon: this.#context,
        })
        await this.#hub.start()
      },
      stop: async () => {
        await this.#hub?.stop()
        this.#hub = undefined
      },
    }
    const revocations: Component<GatewayConfig> = {
      name: 'revocations',
      start: () => this.#armPoll(),
      stop: () => clearInterval(this.#poll),
      reload: (next) => {
        this.#config = next
        this.#armPoll()
      },
    }
    const reattest: Component<GatewayConfig> = {
      name: 'reattest',
      start: () => this.#startReattest(),
      stop: async () => {
        await this.#reattestor?.stop()
        this.#reattestor = undefined
      },
      reload: async (next) => {
        this.#config = next
        await this.#reattestor?.stop()
        this.#startReattest()
      },
    }
    const staff: Component<GatewayConfig> = {
      name: 'staff',
      start: () =>
        this.#staff.start({
          listen: this.#config.staff.listen,
          ca: this.#ca!,
          hub: this.#hub?.server,
          identity: liveCredential(this.#identity!),
          tenant: this.#config.ca.tenant,
          audit: { append: (event) => this.#ca!.recordAudit(event) },
          daemon: this.#context,
        }),
      stop: () => this.#staff.stop(),
    }
    return [ca, identity, hub, staff, revocations, reattest]
  }

  /**
   * Opens the CA (enrolling the gateway first when its store holds no identity), with its audit
   * checkpoints signed by the gateway's key, and serves the enrollment API.
   */
  async #startCa(): Promise<void> {
    const { ca: caConfig, identity: idConfig, audit } = this.#config
    const passphrase = keystorePassphrase(ensureDir(this.#store), GATEWAY_PASSPHRASE_ENV, true)
    let identity: DeviceIdentity
    try {
      identity = await DeviceIdentity.open(this.#store, passphrase, undefined, { ...(idConfig.tcti !== undefined && { tcti: idConfig.tcti }) })
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ERR_NOT_FOUND') throw error
      identity = await this.#enrollSelf(passphrase)
      this.#context.logger.info({ store: this.#store, keystore: identity.keystore }, 'the gateway enrolled itself with its site CA')
    }
    // Checkpoints are signed by the identity that renews, once it exists: a renewed (TPM) key
    // is then the one that signs, never the key of the copy opened here first.
    const credential = liveCredential(() => this.#identity ?? identity)
    const ca = await CaService.open({
      dir: caConfig.dir,
      ...(caConfig.tcti !== undefined && { tcti: caConfig.tcti }),
      ...(caConfig.rotationOverlapSeconds !== undefined && { rotationOverlapSeconds: caConfig.rotationOverlapSeconds }),
      audit: {
        checkpoints: {
          logId: `gateway/${caConfig.tenant}`,
          trust: TrustStore.fromPem(new CaDirectory(caConfig.dir).trustBundle()),
          signer: credential,
          policy: { expectedDevice: GATEWAY_IDENTITY.deviceId, expectedTenant: caConfig.tenant },
          every: audit.checkpointEvery,
          file: join(caConfig.dir, 'audit.checkpoint'),
        },
      },
    })
    try {
      const server = createEnrollmentServer({ ca, tenant: caConfig.tenant, ...(caConfig.url !== undefined && { url: caConfig.url }) })
      await listen(server, caConfig.listen.port, caConfig.listen.host)
      this.#server = server
      this.#url = caConfig.url ?? urlOf(server.address() as AddressInfo)
    } catch (error) {
      ca.close()
      throw error
    }
    this.#ca = ca
    // Renewals go to this gateway's own API, on loopback when it listens on every address.
    this.#identity = await DeviceIdentity.open(this.#store, passphrase, loopbackUrl(this.#server.address() as AddressInfo), { ...(idConfig.tcti !== undefined && { tcti: idConfig.tcti }) })
  }

  /**
   * The first start: a one-time token for device `gateway` (role `gateway`) and an enrollment
   * over TLS with the CA's API on a loopback port of its own, closed right after, as any device
   * enrolls. The CA is opened without checkpoint signing for it: the signer does not exist yet.
   */
  async #enrollSelf(passphrase: Buffer): Promise<DeviceIdentity> {
    const { ca: caConfig, identity: idConfig } = this.#config
    const ca = await CaService.open({ dir: caConfig.dir, ...(caConfig.tcti !== undefined && { tcti: caConfig.tcti }) })
    const server = createEnrollmentServer({ ca, tenant: caConfig.tenant })
    try {
      await listen(server, 0, '127.0.0.1')
      const { token } = ca.createToken({ deviceId: GATEWAY_IDENTITY.deviceId, tenant: caConfig.tenant, roles: [GATEWAY_IDENTITY.role], ttlSeconds: 300 }, 'gateway')
      return await DeviceIdentity.enroll({
        url: urlOf(server.address() as AddressInfo),
        token,
        dir: this.#store,
        passphrase,
        keystore: idConfig.keystore,
        ...(idConfig.tcti !== undefined && { tcti: idConfig.tcti }),
      })
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      ca.close()
    }
  }

  async #stopCa(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server !== undefined) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
    // Closing signs a checkpoint over the audit head: the store is flushed and sealed.
    this.#ca?.close()
    this.#ca = undefined
    this.#identity?.stop()
  }

  #armRenewal(): void {
    clearInterval(this.#renewal)
    const check = (): void => {
      const identity = this.#identity
      if (identity === undefined) return
      identity.renewIfDue().then(
        (renewed) => {
          if (!renewed) return
          const facts = inspectCertificate(identity.certificatePem)
          this.#context.logger.info({ serial: facts.serial }, 'the gateway identity was renewed')
          this.#context.emit({ event: 'renewed', deviceId: facts.deviceId, serial: facts.serial, notAfter: new Date(facts.notAfterMs).toISOString() })
        },
        (error: unknown) => this.#context.logger.error({ err: error }, 'the gateway identity could not be renewed; retrying at the next check'),
      )
    }
    check()
    this.#renewal = setInterval(check, this.#config.identity.renewCheckMs)
    this.#renewal.unref()
  }

  #armPoll(): void {
    clearInterval(this.#poll)
    this.#refreshRevocations()
    this.#poll = setInterval(() => this.#refreshRevocations(), this.#config.revocations.pollMs)
    this.#poll.unref()
  }

  /** Rebuilds the revocations when the CRL or the root CRL changed, and hands them to the hub. */
  #refreshRevocations(): void {
    const ca = this.#ca
    if (ca === undefined) return
    try {
      const crl = ca.crl()
      const seen = `${crl.crlNumber}:${ca.rootCrl() ?? ''}`
      if (seen === this.#crlSeen) return
      const first = this.#crlSeen === ''
      this.#crlSeen = seen
      const revocations = ca.revocations()
      this.#crlNumber.set(Number(crl.crlNumber))
      this.#hub?.setRevocations(revocations, crl.pem)
      this.#staff.setRevocations(revocations)
      if (!first) this.#context.emit({ event: 'crl', crlNumber: crl.crlNumber })
    } catch (error) {
      this.#context.logger.error({ err: error }, 'the revocations could not be refreshed; the ones in force stay')
    }
  }

  #startReattest(): void {
    const { nodes, intervalSeconds, protocol } = this.#config.reattest
    if (nodes.length === 0 || this.#ca === undefined || this.#identity === undefined) return
    this.#reattestor = new Reattestor({ ca: this.#ca, nodes: nodes as NodeEndpoint[], protocol, identity: liveCredential(this.#identity) })
    this.#reattestor.start({ intervalMs: intervalSeconds * 1000 })
  }
}


function ensureDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function urlOf(address: AddressInfo): string {
  return `https://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
}

/** The URL of a bound address, with a wildcard replaced by loopback (for this host's own requests). */
function loopbackUrl(address: AddressInfo): string {
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address
  return urlOf({ ...address, address: host })
}
