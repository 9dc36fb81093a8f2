// The staff page end to end in headless Debian Chromium (playwright-core): a non-extractable
// WebCrypto key, a CSR made in the page, enrollment, the hub's signed challenge, an offer signed
// through the core's prepare/assemble path, and a data channel to a Node device both ways.
import test from 'ava'
import { chromium, type Browser, type Page } from 'playwright-core'

import { join } from 'node:path'

import { CaService } from '../src/ca/index.js'
import { HubClient } from '../src/hub/index.js'
import { Signer } from '../src/primitives/pki/index.js'
import { enrollRequestFor, signAnswer } from '../src/protocol/index.js'
import { SignalingGuard } from '../src/signaling/index.js'
import { createStack } from '../src/webrtc/index.js'
import { startCli, workdir, writeFile } from './helpers/daemon-process.js'
import { requirePeer } from './helpers/peers.js'
import { CHROMIUM, CHROMIUM_ARGS, chromiumMissing, echoDevice, staffSite, type StaffSite } from './helpers/staff-site.js'

const browserTest = requirePeer(chromiumMissing(), test.serial)

async function openPage(t: import('ava').ExecutionContext, site: StaffSite): Promise<Page> {
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  // The page is served with the gateway's own certificate, which names a device, not a host
  // name: the test trusts the site by ignoring that (a tablet installs the site's root instead).
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  const page = await context.newPage()
  page.on('console', (message) => t.log(`page: ${message.text()}`))
  await page.goto(`${site.staffUrl}/staff/`)
  return page
}

browserTest('the staff page enrolls a non-extractable key, joins the hub by its signed challenge and exchanges a message both ways with a Node device', async (t) => {
  const site = await staffSite(t)
  const device = await echoDevice(t, site, 'node-1')
  const page = await openPage(t, site)
  const token = site.token('tablet-7')
  const result = await page.evaluate((args) => (globalThis as unknown as { ztStaff: { run(a: unknown): Promise<{ extractable: boolean; identity: { deviceId: string; roles: string[] }; reply: string }> } }).ztStaff.run(args), { token, deviceId: 'node-1', text: 'hello from the tablet' })
  t.false(result.extractable, 'the page key is not extractable')
  t.is(result.identity.deviceId, 'tablet-7')
  t.true(result.identity.roles.includes('staff'))
  t.is(result.reply, 'echo:hello from the tablet')
  t.deepEqual(device.refusals, [])
  const joins = site.ca.auditRecords(500).filter((r) => r.action === 'staff.join' && r.outcome === 'allow')
  t.is(joins.length, 1)
  t.is(joins[0]!.actor, 'tablet-7')
})

browserTest('ztmesh gateway serves the staff page on staff.listen: Chromium enrolls, joins the daemon hub and talks to a Node device', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Staff Hotel', tenants: ['hotel-1'] })
  const yaml = `log:\n  level: info\nmetrics:\n  listen: 127.0.0.1:0\nca:\n  dir: ${caDir}\n  listen: 127.0.0.1:0\n  tenant: hotel-1\nstaff:\n  listen: 127.0.0.1:0\n`
  const gateway = startCli(t, ['--config', writeFile(dir, 'gateway.yaml', yaml)], { script: join(import.meta.dirname, 'helpers', 'gateway-with-staff.ts') })
  const { port: hubPort } = (await gateway.next((e) => e.event === 'hub')) as { port: number }
  const ready = await gateway.next((e) => e.event === 'ready')
  const staffUrl = String(ready.staff)
  t.regex(staffUrl, /^https:\/\/127\.0\.0\.1:\d+\/staff\/$/)
  // The operator issues a staff token and enrolls a Node device, from another process's CA handle.
  const ca = await CaService.open({ dir: caDir })
  const token = ca.createToken({ deviceId: 'tablet-3', tenant: 'hotel-1', roles: ['staff'] }, 'test').token
  const signer = Signer.generate()
  const enrollment = ca.enroll(enrollRequestFor(ca.createToken({ deviceId: 'node-2', tenant: 'hotel-1', roles: ['node'] }, 'test').token, signer.buildCsr('node-2', 'hotel-1')), 'test')
  const trustPem = ca.trustBundle()
  ca.close()
  const identity = { certificateChainPem: `${enrollment.certificate.trim()}\n${enrollment.caChain.trim()}\n`, signer }
  const client = await HubClient.connect({ host: '127.0.0.1', port: hubPort, identity, trustPem })
  t.teardown(() => client.close())
  const guard = new SignalingGuard({ identity, trustPem })
  const stack = createStack('node-datachannel')
  client.on('signal', ({ from, kind, object }) => {
    if (kind !== 'offer') return
    void (async () => {
      const verified = guard.verifyOffer(object)
      const session = await stack.answer(verified.offer.sdp)
      t.teardown(() => session.close())
      client.send(from, 'answer', signAnswer({ from: 'node-2', to: verified.peer.deviceId, tenant: 'hotel-1', sdp: await session.localDescription(), epoch: 0, offerDigest: verified.digest }, identity))
      const channel = await session.channel
      channel.on('message', (data) => channel.send(`node-2 got ${String(data)}`))
    })()
  })
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage()
  await page.goto(staffUrl)
  const result = await page.evaluate((args) => (globalThis as unknown as { ztStaff: { run(a: unknown): Promise<{ reply: string }> } }).ztStaff.run(args), { token, deviceId: 'node-2', text: 'ping' })
  t.is(result.reply, 'node-2 got ping')
  gateway.child.kill('SIGTERM')
  t.is((await gateway.exited).code, 0)
})
