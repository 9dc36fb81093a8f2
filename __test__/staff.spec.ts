// The staff page end to end in headless Debian Chromium (playwright-core): a non-extractable
// WebCrypto key, a CSR made in the page, enrollment, the hub's signed challenge, an offer signed
// through the core's prepare/assemble path, and a data channel to a Node device both ways.
import test from 'ava'
import { chromium, type Browser, type Page } from 'playwright-core'

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
