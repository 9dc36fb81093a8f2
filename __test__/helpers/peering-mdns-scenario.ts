/**
 * mDNS scenarios of __test__/peering.spec.ts. Run ONLY inside a private network namespace with
 * loopback up (`unshare -rn sh -c 'ip link set lo up; exec node --import=tsx …/peering-mdns-scenario.ts NAME'`):
 * it multicasts. It refuses to run where any interface other than `lo` exists, prints one JSON
 * line with what it saw, and exits.
 *
 * - `pair`: two nodes advertise and browse; A finds B over mDNS, connects (path mdns: no hub is
 *   configured, so the gateway path fails first), and they exchange a message.
 * - `gateway`: the gateway's hub slot (GatewayHubServer, `hub.mdns`) announces the gateway over
 *   mDNS; two nodes with no hub configured find it there, connect to its hub, discover each
 *   other through it and open a channel over the gateway path.
 * - `spoof`: an attacker announces `tablet-b` at the address of its own local API (a genuine
 *   device of the tenant, `tablet-x`); A's connect to tablet-b over mDNS fails with the link's
 *   refusal and no channel opens.
 */
import { networkInterfaces } from 'node:os'
import { readlinkSync } from 'node:fs'

import { GatewayHubServer } from '../../src/daemon/hub.js'
import type { GatewayHubContext } from '../../src/daemon/gateway.js'
import { MdnsDiscovery } from '../../src/discovery/index.js'
import { RevocationSet } from '../../src/primitives/pki/index.js'
import { device, trustPem } from './hub.js'
import { startPeeringNode, type Node } from './peering-node.js'

const interfaces = Object.keys(networkInterfaces())
if (interfaces.some((name) => name !== 'lo')) {
  console.log(JSON.stringify({ error: `refusing to multicast outside a private namespace (interfaces: ${interfaces.join(', ')})` }))
  process.exit(2)
}
const LO = { interface: '127.0.0.1', bind: '0.0.0.0' }
const MDNS = { discovery: { mdns: true, bootstrap: [] } }

async function pair(): Promise<Record<string, unknown>> {
  const b = await startPeeringNode(device('tablet-b'), MDNS, { mdns: LO })
  const a = await startPeeringNode(device('tablet-a'), MDNS, { mdns: LO })
  try {
    await a.next((e) => e.event === 'discovered' && e.deviceId === 'tablet-b' && e.via === 'mdns', 'tablet-b over mDNS')
    const link = await a.connector.connect('tablet-b')
    await b.next((e) => e.event === 'connected', 'connected at b')
    link.send('hello over the LAN')
    const message = await b.next((e) => e.event === 'message', 'the message')
    return { path: link.path, message, attempts: attempts(a), discovered: a.events.filter((e) => e.event === 'discovered') }
  } finally {
    await stopAll([a, b])
  }
}

async function spoof(): Promise<Record<string, unknown>> {
  const impostor = await startPeeringNode(device('tablet-x'))
  const a = await startPeeringNode(device('tablet-a'), MDNS, { mdns: LO, pathTimeoutMs: 5_000 })
  const liar = new MdnsDiscovery(LO)
  try {
    await liar.ready()
    liar.advertise({ deviceId: 'tablet-b', tenant: 'hotel-1', spkiSha256: impostor.device.cert.spkiSha256, port: impostor.api.port, host: '127.0.0.1', role: 'node' })
    await a.next((e) => e.event === 'discovered' && e.deviceId === 'tablet-b', 'the spoofed announcement')
    let code: string | undefined
    try {
      await a.connector.connect('tablet-b')
    } catch (error) {
      code = (error as { code?: string }).code
    }
    return { code, attempts: attempts(a), connected: [...a.events, ...impostor.events].filter((e) => e.event === 'connected').length, impostorSawOffer: impostor.events.some((e) => e.event === 'rejected' || e.event === 'connected') }
  } finally {
    await liar.close()
    await stopAll([a, impostor])
  }
}

async function gateway(): Promise<Record<string, unknown>> {
  const quiet = { info() {}, warn() {}, error() {}, debug() {} }
  const context = { identity: device('gateway', 'hotel-1', ['gateway']).identity, trustPem, revocations: new RevocationSet(), audit: { append() {} }, config: { mdns: true, mdnsInterface: '127.0.0.1' }, daemon: { logger: quiet } } as unknown as GatewayHubContext
  const hub = new GatewayHubServer(context)
  await hub.start()
  const a = await startPeeringNode(device('tablet-a'), MDNS, { mdns: LO })
  const b = await startPeeringNode(device('tablet-b'), MDNS, { mdns: LO })
  try {
    await a.next((e) => e.event === 'discovered' && e.deviceId === 'tablet-b' && e.via === 'gateway', 'tablet-b through the gateway hub')
    const link = await a.connector.connect('tablet-b')
    link.send('hello through the gateway')
    const message = await b.next((e) => e.event === 'message', 'the message')
    return { path: link.path, message, hubPort: hub.address?.port, discovered: a.events.filter((e) => e.event === 'discovered') }
  } finally {
    await stopAll([a, b])
    await hub.stop()
  }
}

function attempts(node: Node) {
  return node.events.filter((e) => e.event === 'attempt').map((e) => ({ path: e.path, ok: e.ok, code: e.code }))
}

async function stopAll(nodes: Node[]): Promise<void> {
  for (const node of nodes) await node.stop().catch(() => {})
}

const scenarios: Record<string, () => Promise<Record<string, unknown>>> = { pair, spoof, gateway }
const name = process.argv[2] ?? ''
try {
  const run = scenarios[name]
  if (run === undefined) throw new Error(`unknown scenario ${name}`)
  const result = await run()
  console.log(JSON.stringify({ netns: readlinkSync('/proc/self/ns/net'), ...result }))
  process.exit(0)
} catch (error) {
  console.log(JSON.stringify({ error: String((error as Error).stack ?? error) }))
  process.exit(1)
}
