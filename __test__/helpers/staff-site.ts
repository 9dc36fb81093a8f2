/**
 * A site for the staff page's tests: a real CA service on disk, the gateway's identity enrolled
 * from it, a HubServer and the StaffServer on 127.0.0.1, and Node devices on the hub (HubClient +
 * SignalingGuard + node-datachannel) that answer verified offers and echo what they receive.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import type { ExecutionContext } from 'ava'

import { CaService } from '../../src/ca/index.js'
import { HubClient, HubServer } from '../../src/hub/index.js'
import { Signer, type DeviceCredential } from '../../src/primitives/pki/index.js'
import { enrollRequestFor, signAnswer } from '../../src/protocol/index.js'
import { SignalingGuard } from '../../src/signaling/index.js'
import { StaffServer } from '../../src/staff/index.js'
import { createStack, type RtcSession } from '../../src/webrtc/index.js'

export const CHROMIUM = '/usr/bin/chromium'
export const CHROMIUM_ARGS = ['--no-sandbox', '--headless=new', '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']

/** Why the browser tests cannot run here, or undefined. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install --no-install-recommends chromium)`
}

export interface StaffSite {
  ca: CaService
  tenant: string
  hub: HubServer
  staff: StaffServer
  hubPort: number
  staffUrl: string
  /** A one-time token for a staff device (role `staff` unless told otherwise). */
  token(deviceId: string, roles?: string[], tenant?: string): string
  /** A Node device of the site, enrolled by the CA (software key). */
  enroll(deviceId: string, roles?: string[]): DeviceCredential
  /** Refreshes the hub's and the staff server's revocations from the CA (as the gateway's poll does). */
  applyRevocations(): void
}

export async function staffSite(t: ExecutionContext, init: { tenant?: string; tenants?: string[]; challengeMaxAgeMs?: number } = {}): Promise<StaffSite> {
  const tenant = init.tenant ?? 'hotel-1'
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-staff-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Staff Site', ...(init.tenants !== undefined && { tenants: init.tenants }) })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  const audit = { append: (event: Parameters<CaService['recordAudit']>[0]) => ca.recordAudit(event) }
  const token = (deviceId: string, roles: string[] = ['staff'], forTenant = tenant): string => ca.createToken({ deviceId, tenant: forTenant, roles, ttlSeconds: 600 }, 'test').token
  const enroll = (deviceId: string, roles: string[] = ['node']): DeviceCredential => {
    const signer = Signer.generate()
    const enrollment = ca.enroll(enrollRequestFor(token(deviceId, roles), signer.buildCsr(deviceId, tenant)), 'test')
    return { certificateChainPem: `${enrollment.certificate.trim()}\n${enrollment.caChain.trim()}\n`, signer }
  }
  const identity = enroll('gateway', ['gateway'])
  const hub = new HubServer({ identity, trustPem: ca.trustBundle(), revocations: ca.revocations(), audit })
  const { port: hubPort } = await hub.listen(0, '127.0.0.1')
  const staff = new StaffServer({ ca, hub, identity, trustPem: ca.trustBundle(), tenant, revocations: ca.revocations(), audit, ...(init.challengeMaxAgeMs !== undefined && { challengeMaxAgeMs: init.challengeMaxAgeMs }) })
  const { port } = await staff.listen(0, '127.0.0.1')
  t.teardown(async () => {
    await staff.close()
    await hub.close()
    ca.close()
  })
  return {
    ca,
    tenant,
    hub,
    staff,
    hubPort,
    staffUrl: `https://127.0.0.1:${port}`,
    token,
    enroll,
    applyRevocations() {
      const revocations = ca.revocations()
      hub.setRevocations(revocations, ca.crl().pem)
      staff.setRevocations(revocations)
    },
  }
}

/** A Node device on the site's hub that answers every verified offer and echoes `echo:<text>`. */
export async function echoDevice(t: ExecutionContext, site: StaffSite, deviceId: string): Promise<{ client: HubClient; refusals: string[] }> {
  const identity = site.enroll(deviceId)
  const trustPem = site.ca.trustBundle()
  const client = await HubClient.connect({ host: '127.0.0.1', port: site.hubPort, identity, trustPem })
  const guard = new SignalingGuard({ identity, trustPem, revocations: site.ca.revocations() })
  const stack = createStack('node-datachannel')
  const sessions: RtcSession[] = []
  const refusals: string[] = []
  client.on('signal', ({ from, kind, object }) => {
    if (kind !== 'offer') return
    void (async () => {
      const verified = guard.verifyOffer(object)
      const session = await stack.answer(verified.offer.sdp, { timeoutMs: 20_000 })
      sessions.push(session)
      const sdp = await session.localDescription()
      client.send(from, 'answer', signAnswer({ from: deviceId, to: verified.peer.deviceId, tenant: site.tenant, sdp, epoch: 0, offerDigest: verified.digest }, identity))
      const channel = await session.channel
      channel.on('message', (data) => channel.send(`echo:${String(data)}`))
    })().catch((error: { code?: string }) => refusals.push(error.code ?? 'ERR_INTERNAL'))
  })
  t.teardown(async () => {
    for (const session of sessions) session.close()
    await client.close()
  })
  return { client, refusals }
}
