// 1,000 devices on one hub, in one process: 50 tenants (properties) of 20 devices each, all
// connected over mutual TLS, each seeing its 19 peers' verified leases, and each relaying one
// signed object to the next device of its tenant.
import test from 'ava'

import { signObject } from '../src/index.js'
import { HubClient, HubServer, type HubSignal } from '../src/hub/index.js'
import { device, hubAccess, trustPem } from './helpers/hub.js'

const TENANTS = 50
const PER_TENANT = 20

test('1,000 devices on one hub: all connected, every tenant sees its own presence, and messages are relayed', async (t) => {
  const tenants = Array.from({ length: TENANTS }, (_, i) => `property-${i}`)
  const hubDevice = device('hub-1', tenants[0]!, ['gateway'])
  const hub = new HubServer({ identity: hubDevice.identity, trustPem, access: hubAccess(tenants), limits: { connectionsPerDevice: 2 } })
  const { port } = await hub.listen(0)
  const started = performance.now()
  const devices = tenants.flatMap((tenant) => Array.from({ length: PER_TENANT }, (_, i) => device(`dev-${i}`, tenant)))
  const access = new Map(tenants.map((tenant) => [tenant, hubAccess([tenant, tenants[0]!])]))
  const clients: HubClient[] = []
  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await hub.close()
  })
  const received = new Map<string, HubSignal[]>()
  for (let i = 0; i < devices.length; i += 50) {
    const batch = devices.slice(i, i + 50)
    const connected = await Promise.all(batch.map((d) => HubClient.connect({ host: '127.0.0.1', port, identity: d.identity, trustPem, access: access.get(d.tenant)!, leaseMs: 600_000 })))
    connected.forEach((client, j) => {
      const key = `${batch[j]!.tenant}/${batch[j]!.deviceId}`
      received.set(key, [])
      client.on('signal', (s) => received.get(key)!.push(s))
    })
    clients.push(...connected)
  }
  const connectedMs = performance.now() - started
  t.is(hub.connections, TENANTS * PER_TENANT)
  const deadline = Date.now() + 120_000
  while (clients.some((c) => c.peers().length < PER_TENANT - 1)) {
    if (Date.now() > deadline) return t.fail(`presence incomplete: ${clients.filter((c) => c.peers().length < PER_TENANT - 1).length} devices`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const presenceMs = performance.now() - started
  // Nobody sees another tenant's devices.
  t.true(clients.every((c) => c.peers().length === PER_TENANT - 1))
  clients.forEach((client, n) => {
    const d = devices[n]!
    const next = `dev-${(Number(d.deviceId.slice(4)) + 1) % PER_TENANT}`
    client.send(next, 'offer', signObject('test', Buffer.from(`hello from ${d.deviceId}`), d.identity))
  })
  while ([...received.values()].some((list) => list.length < 1)) {
    if (Date.now() > deadline) return t.fail('relay incomplete')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  for (const [key, list] of received) {
    const [tenant, id] = key.split('/') as [string, string]
    const from = `dev-${(Number(id.slice(4)) + PER_TENANT - 1) % PER_TENANT}`
    t.deepEqual(list.map((s) => s.from), [from], `${tenant}/${id}`)
  }
  t.log(`connected in ${(connectedMs / 1000).toFixed(1)} s, presence complete at ${(presenceMs / 1000).toFixed(1)} s, relayed at ${((performance.now() - started) / 1000).toFixed(1)} s`)
})
