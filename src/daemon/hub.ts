/**
 * The gateway's hub slot filled with the signaling hub: `HubServer` on `hub.listen` (over the
 * gateway's mutual TLS identity), `RedisBus` when `hub.redis` is set (the cloud hub's scale-out),
 * every new revocation set with its CRL handed to it (revoked devices are cut, their tenants
 * told), and, with `hub.mdns`, the gateway announced over mDNS (role `gateway`, the hub's port)
 * so nodes on the LAN find the hub without configuration.
 */

import type { AddressInfo } from 'node:net'

import { MdnsDiscovery } from '../discovery/index.js'
import { HubServer, MemoryBus, RedisBus, type Bus } from '../hub/index.js'
import { inspectCertificate, type RevocationSet } from '../primitives/pki/index.js'
import type { GatewayHub, GatewayHubContext, GatewayHubFactory } from './gateway.js'

/**
 * The hub listens here unless `hub.listen` says otherwise: a free loopback port (the gateway's
 * `ready` line names it as `hub`; announced over mDNS with `hub.mdns`), so that gateways of
 * tests and demos never collide. A site sets `hub.listen`.
 */
export const DEFAULT_HUB_LISTEN = Object.freeze({ host: '127.0.0.1', port: 0 })

/** The gateway's hub: see the module documentation. */
export class GatewayHubServer implements GatewayHub {
  readonly #context: GatewayHubContext
  #hub: HubServer | undefined
  #bus: Bus | undefined
  #mdns: MdnsDiscovery | undefined
  #address: AddressInfo | undefined

  constructor(context: GatewayHubContext) {
    this.#context = context
  }

  /** The hub server, once started: the staff page admits browsers to it (`staff.listen`). */
  get server(): HubServer | undefined {
    return this.#hub
  }

  /** Where the hub listens, once started. */
  get address(): AddressInfo | undefined {
    return this.#address
  }

  async start(): Promise<void> {
    const { identity, trustPem, revocations, audit, config, daemon } = this.#context
    this.#bus = config.redis !== undefined ? new RedisBus(config.redis) : new MemoryBus()
    this.#hub = new HubServer({ identity, trustPem, revocations, audit, bus: this.#bus })
    const listen = config.listen ?? DEFAULT_HUB_LISTEN
    this.#address = await this.#hub.listen(listen.port, listen.host)
    daemon.logger.info({ hub: `${this.#address.address}:${this.#address.port}`, bus: config.redis !== undefined ? 'redis' : 'memory' }, 'the hub listens')
    if (config.mdns) {
      const facts = inspectCertificate(identity.certificateChainPem)
      const mdns = new MdnsDiscovery(config.mdnsInterface !== undefined ? { interface: config.mdnsInterface } : {})
      this.#mdns = mdns
      await mdns.ready()
      const host = this.#address.address === '0.0.0.0' || this.#address.address === '::' ? undefined : this.#address.address
      mdns.advertise({ deviceId: facts.deviceId!, tenant: facts.tenant!, spkiSha256: facts.spkiSha256, port: this.#address.port, role: 'gateway', ...(host !== undefined && { host }) })
    }
  }

  setRevocations(revocations: RevocationSet, crlPem?: string): void {
    this.#hub?.setRevocations(revocations, crlPem)
  }

  async stop(): Promise<void> {
    await this.#mdns?.close().catch(() => {})
    await this.#hub?.close()
    await this.#bus?.close().catch(() => {})
    this.#hub = undefined
  }
}

/** The default hub factory of `ztmesh gateway`. */
export const gatewayHubServer: GatewayHubFactory = (context) => new GatewayHubServer(context)
