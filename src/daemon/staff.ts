/**
 * The gateway's staff page (`staff.listen`, off unless set): the {@link StaffServer} on a
 * listener of its own, HTTPS with the gateway's certificate, joined to the gateway's hub. It needs
 * the hub slot to expose its `HubServer` (`GatewayHub.server`); without one it is not started,
 * and says so in the log.
 */

import type { CaService } from '../ca/index.js'
import type { HubServer } from '../hub/index.js'
import type { AuditSink } from '../policy/index.js'
import type { DeviceCredential, RevocationSet } from '../primitives/pki/index.js'
import { StaffServer } from '../staff/index.js'
import type { DaemonContext } from './index.js'

/** What the staff component reads from the gateway when it starts. */
export interface GatewayStaffParts {
  listen: { host: string; port: number } | undefined
  ca: CaService
  hub: HubServer | undefined
  identity: DeviceCredential
  tenant: string
  audit: AuditSink
  daemon: DaemonContext
}

/** The staff page's part of the gateway: started after the hub, stopped before it. */
export class GatewayStaff {
  #server: StaffServer | undefined
  #url: string | undefined

  async start(parts: GatewayStaffParts): Promise<void> {
    if (parts.listen === undefined) return
    if (parts.hub === undefined) {
      parts.daemon.logger.warn('staff.listen is set but the hub slot exposes no HubServer: the staff page is not served')
      return
    }
    const server = new StaffServer({ ca: parts.ca, hub: parts.hub, identity: parts.identity, trustPem: parts.ca.trustBundle(), tenant: parts.tenant, revocations: parts.ca.revocations(), audit: parts.audit })
    const address = await server.listen(parts.listen.port, parts.listen.host)
    this.#server = server
    this.#url = `https://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/staff/`
    parts.daemon.logger.info({ url: this.#url }, 'the staff page is served')
  }

  get url(): string | undefined {
    return this.#url
  }

  setRevocations(revocations: RevocationSet): void {
    this.#server?.setRevocations(revocations)
  }

  async stop(): Promise<void> {
    await this.#server?.close()
    this.#server = undefined
    this.#url = undefined
  }
}
