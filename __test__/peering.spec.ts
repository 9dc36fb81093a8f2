// The node's peer connector, composed in-process from the real parts: the signaling guard,
// node-datachannel on loopback, real hubs (one in memory, two over a real redis-server), and a
// local API over mutual TLS answering POST /offer through the connector. Two nodes open a
// verified data channel over each path of the fallback chain, the chain falls through, attacks
// are refused with their codes (audited, `rejected`), and a revoked device is cut off.
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { request } from 'node:http'

import { connectSecure } from '../src/channels/index.js'
import { HubServer, RedisBus } from '../src/hub/index.js'
import { createPolicyDecisionPoint } from '../src/policy/index.js'
import { RevocationSet, TrustStore, type DeviceCredential } from '../src/primitives/pki/index.js'
import { verifyObject } from '../src/protocol/signed.js'
import { signOffer } from '../src/protocol/signal.js'
import { CaService } from '../src/ca/index.js'
import type { GatewayHubContext } from '../src/daemon/gateway.js'
import { GatewayHubServer } from '../src/daemon/hub.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { SignalingGuard } from '../src/signaling/index.js'
import { createStack } from '../src/webrtc/index.js'
import { serveCa } from './helpers/ca-site.js'
import { startCli, workdir, writeFile } from './helpers/daemon-process.js'
import Database from 'better-sqlite3'
import type { PeerAddress, PeerLink } from '../src/peering/index.js'
import { refusalStatus } from '../src/signaling/index.js'
import type { ZtError } from '../src/errors.js'
import { device, freePort, memoryAudit, redisMissing, revoking, startRedis, trustPem, type TestDevice } from './helpers/hub.js'
import { startPeeringNode, type Node } from './helpers/peering-node.js'
import { requirePeer, runs } from './helpers/peers.js'

const SDP_FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89'
const fakeSdp = () =>
  'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n' +
  `c=IN IP4 127.0.0.1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\na=fingerprint:sha-256 ${SDP_FP}\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n`

async function until(condition: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function startNode(t: ExecutionContext, ...args: Parameters<typeof startPeeringNode>): Promise<Node> {
  const node = await startPeeringNode(...args)
  t.teardown(() => node.stop())
  return node
}

async function startHub(t: ExecutionContext, init: Partial<ConstructorParameters<typeof HubServer>[0]> = {}) {
  const audit = memoryAudit()
  const hub = new HubServer({ identity: device('hub-1', 'hotel-1', ['gateway']).identity, trustPem, audit, ...init })
  const { port } = await hub.listen(0, '127.0.0.1')
  t.teardown(() => hub.close())
  return { hub, audit, address: { host: '127.0.0.1', port } }
}

/** Messages both ways over an open link pair; the events say who sent what. */
async function exchange(t: ExecutionContext, a: Node, link: PeerLink, b: Node): Promise<void> {
  await b.next((e) => e.event === 'connected' && (e.peer as { deviceId: string }).deviceId === a.device.deviceId, 'connected at the answerer')
  link.send('hello from a')
  t.like(await b.next((e) => e.event === 'message' && e.data === 'hello from a', 'the message at b'), { from: a.device.deviceId })
  t.is(link.peer.deviceId, b.device.deviceId)
  t.like(await a.next((e) => e.event === 'connected'), { transport: 'webrtc', peer: { deviceId: b.device.deviceId, tenant: 'hotel-1' } })
}

/** POST raw bytes to a node's local API as `as`. */
async function post(node: Node, as: TestDevice, body: Buffer): Promise<{ status: number; code?: string; body: Buffer }> {
  const crossTenant = as.tenant !== node.device.tenant
  const access = crossTenant ? createPolicyDecisionPoint({ policy: { version: 1, tenant: as.tenant, rules: [{ id: 'any', effect: 'allow', actions: ['link.connect'], peerTenants: [node.device.tenant] }] }, audit: { append() {} } }) : undefined
  return postTo(node.api, node.device.deviceId, as.identity, trustPem, body, access !== undefined ? { access, policy: { expectedTenant: node.device.tenant } } : {})
}

/** POST raw bytes to the local API at `api` (which must be `serverDevice`) over mutual TLS. */
async function postTo(api: PeerAddress, serverDevice: string, identity: DeviceCredential, trust: string, body: Buffer, extra: Partial<Parameters<typeof connectSecure>[0]> = {}): Promise<{ status: number; code?: string; body: Buffer }> {
  const link = await connectSecure({ ...api, identity, trustPem: trust, serverDevice, ...extra })
  try {
    return await new Promise((resolve, reject) => {
      const req = request({ createConnection: () => link as never, method: 'POST', path: '/offer', headers: { 'content-type': 'application/octet-stream', 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const answer = Buffer.concat(chunks)
          resolve({ status: res.statusCode ?? 0, body: answer, ...(res.statusCode !== 200 && { code: (JSON.parse(answer.toString()) as { code: string }).code }) })
        })
      })
      req.on('error', reject)
      req.end(body)
    })
  } finally {
    link.destroy()
  }
}

test.serial('two nodes open a verified data channel through the gateway hub (path gateway) and exchange messages both ways', async (t) => {
  const { address } = await startHub(t)
  const a = await startNode(t, device('tablet-a'), { hub: address })
  const b = await startNode(t, device('tablet-b'), { hub: address })
  await a.next((e) => e.event === 'discovered' && e.deviceId === 'tablet-b' && e.via === 'gateway', 'tablet-b discovered through the gateway')
  const link = await a.connector.connect('tablet-b')
  t.is(link.path, 'gateway')
  t.like(await a.next((e) => e.event === 'path'), { peer: 'tablet-b', path: 'gateway' })
  await exchange(t, a, link, b)
  // And back: b's end of the channel is in its registry too.
  t.like(await b.next((e) => e.event === 'connected'), { transport: 'webrtc', peer: { deviceId: 'tablet-a', tenant: 'hotel-1' } })
  link.close()
  await b.next((e) => e.event === 'closed' && e.peer === 'tablet-a', 'the channel closed at b')
})

test.serial('the chain falls through a gateway hub that is down, no mDNS peer and no cloud hub to the manual address (path manual), an attempt event for each', async (t) => {
  const down = { host: '127.0.0.1', port: await freePort() }
  const b = await startNode(t, device('tablet-d'))
  const a = await startNode(t, device('tablet-c'), { hub: down }, { manual: { 'tablet-d': b.api } })
  const link = await a.connector.connect('tablet-d')
  t.is(link.path, 'manual')
  const attempts = a.events.filter((e) => e.event === 'attempt')
  t.deepEqual(
    attempts.map((e) => [e.path, e.ok]),
    [
      ['gateway', false],
      ['mdns', false],
      ['cloud', false],
      ['manual', true],
    ],
  )
  t.is(attempts[0]!.code, 'ERR_UNREACHABLE')
  t.like(await a.next((e) => e.event === 'path'), { peer: 'tablet-d', path: 'manual' })
  await exchange(t, a, link, b)
})

test.serial('a bootstrap address is proven by a handshake (discovered via bootstrap) and reached as the manual path', async (t) => {
  const b = await startNode(t, device('tablet-f'))
  const a = await startNode(t, device('tablet-e'), { discovery: { mdns: false, bootstrap: [b.api] } })
  await a.next((e) => e.event === 'discovered' && e.deviceId === 'tablet-f' && e.via === 'bootstrap', 'discovered via bootstrap')
  const link = await a.connector.connect('tablet-f')
  t.is(link.path, 'manual')
  await exchange(t, a, link, b)
})

requirePeer(redisMissing(), test.serial)('two nodes on two cloud hub instances sharing a real redis-server open a channel (path cloud)', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const busA = new RedisBus(redis.url)
  const busB = new RedisBus(redis.url)
  t.teardown(async () => {
    await busA.close()
    await busB.close()
  })
  const one = await startHub(t, { bus: busA })
  const two = await startHub(t, { bus: busB })
  const a = await startNode(t, device('tablet-g'), { cloud: one.address })
  const b = await startNode(t, device('tablet-h'), { cloud: two.address })
  await until(() => a.connector.known().length >= 0 && b.events.length >= 0, 'start')
  const link = await a.connector.connect('tablet-h')
  t.is(link.path, 'cloud')
  t.deepEqual(
    a.events.filter((e) => e.event === 'attempt').map((e) => [e.path, e.ok]),
    [
      ['gateway', false],
      ['mdns', false],
      ['cloud', true],
    ],
  )
  await exchange(t, a, link, b)
})

test.serial('a spoofed address (another device listening where tablet-j is claimed) never yields a channel: the link proves who answers', async (t) => {
  const impostor = await startNode(t, device('tablet-x'))
  const a = await startNode(t, device('tablet-i'), {}, { manual: { 'tablet-j': impostor.api }, pathTimeoutMs: 5_000 })
  const error = await t.throwsAsync(a.connector.connect('tablet-j'))
  const attempts = a.events.filter((e) => e.event === 'attempt')
  t.like(attempts.at(-1), { path: 'manual', ok: false, code: 'ERR_DEVICE_MISMATCH' }, JSON.stringify(attempts))
  t.truthy(error)
  t.false(a.events.some((e) => e.event === 'connected'))
  t.false(impostor.events.some((e) => e.event === 'connected' || e.event === 'rejected'), 'the impostor never saw an offer')
})

test.serial('POST /offer: forged, tampered, replayed, misaddressed and cross-tenant offers are refused with their codes, audited, and reported as rejected', async (t) => {
  const b = await startNode(t, device('kiosk-1'), {}, { linkTenants: ['hotel-1', 'hotel-2'] })
  const alice = device('tablet-k')
  const mallory = device('tablet-m', 'hotel-2')
  const good = signOffer({ from: 'tablet-k', to: 'kiosk-1', tenant: 'hotel-1', sdp: fakeSdp(), epoch: 0 }, alice.identity)
  const tampered = Buffer.from(good)
  const at = good.indexOf('ice-pwd:') + 9
  tampered[at] = tampered[at]! ^ 0x01
  const cases: Array<[string, TestDevice, Buffer, string]> = [
    ['tampered', alice, tampered, 'ERR_SIGNATURE'],
    ['signed by another device than the link', alice, signOffer({ from: 'tablet-m', to: 'kiosk-1', tenant: 'hotel-2', sdp: fakeSdp(), epoch: 0 }, mallory.identity), 'ERR_TENANT_MISMATCH'],
    ['addressed to another device', alice, signOffer({ from: 'tablet-k', to: 'kiosk-9', tenant: 'hotel-1', sdp: fakeSdp(), epoch: 0 }, alice.identity), 'ERR_SIGNAL_RECIPIENT'],
    ['not a signed object', alice, Buffer.from('forged'), 'ERR_WIRE_VERSION'],
    ['cross-tenant, over a link of that tenant', mallory, signOffer({ from: 'tablet-m', to: 'kiosk-1', tenant: 'hotel-2', sdp: fakeSdp(), epoch: 0 }, mallory.identity), 'ERR_TENANT_MISMATCH'],
  ]
  for (const [what, as, bytes, code] of cases) {
    const answer = await post(b, as, bytes)
    t.is(answer.code, code, what)
    t.is(answer.status, refusalStatus(code), what)
    t.true(b.audit.events.some((e) => e.action === 'signal.offer' && e.outcome === 'deny' && e.reason === code), `${what}: audited`)
    t.truthy(b.events.find((e) => e.event === 'rejected' && e.code === code), `${what}: rejected event`)
  }
  // The genuine offer is answered once (its fake SDP gets an answer: the guard passed it) …
  const first = await post(b, alice, good)
  t.true(first.status === 200 || first.code?.startsWith('ERR_WEBRTC') === true, JSON.stringify(first))
  // … and refused when replayed.
  const replay = await post(b, alice, good)
  t.is(replay.code, 'ERR_REPLAY')
  t.true(b.audit.events.some((e) => e.action === 'signal.offer' && e.reason === 'ERR_REPLAY'))
})

test.serial('hub-relayed offers: a forged or replayed offer is refused (audited, rejected event) and a cross-tenant offer is never relayed', async (t) => {
  const { address, hub } = await startHub(t, { access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-1', rules: [{ id: 'hub-tenants', effect: 'allow', actions: ['link.accept', 'link.connect'], peerTenants: ['hotel-1', 'hotel-2'] }] }, audit: { append() {} } }) })
  t.truthy(hub)
  const b = await startNode(t, device('kiosk-2'), { hub: address })
  const { HubClient } = await import('../src/hub/index.js')
  const alice = device('tablet-n')
  const mallory = device('tablet-o', 'hotel-2')
  const client = await HubClient.connect({ ...address, identity: alice.identity, trustPem })
  t.teardown(() => client.close())
  await until(() => client.peers().includes('kiosk-2'), 'kiosk-2 present')
  const good = signOffer({ from: 'tablet-n', to: 'kiosk-2', tenant: 'hotel-1', sdp: fakeSdp(), epoch: 0 }, alice.identity)
  const tampered = Buffer.from(good)
  const at = good.indexOf('ice-pwd:') + 9
  tampered[at] = tampered[at]! ^ 0x01
  client.send('kiosk-2', 'offer', tampered)
  t.like(await b.next((e) => e.event === 'rejected' && e.code === 'ERR_SIGNATURE', 'tampered refused'), { peer: 'tablet-n' })
  client.send('kiosk-2', 'offer', good)
  client.send('kiosk-2', 'offer', good)
  t.like(await b.next((e) => e.event === 'rejected' && e.code === 'ERR_REPLAY', 'replay refused'), { peer: 'tablet-n' })
  t.true(b.audit.events.some((e) => e.action === 'signal.offer' && e.reason === 'ERR_SIGNATURE'))
  t.true(b.audit.events.some((e) => e.action === 'signal.offer' && e.reason === 'ERR_REPLAY'))
  // Another tenant's device on the same hub: the hub relays within a tenant only.
  const other = await HubClient.connect({ ...address, identity: mallory.identity, trustPem, access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-2', rules: [{ id: 'hub', effect: 'allow', actions: ['link.connect'], peerTenants: ['hotel-1'] }] }, audit: { append() {} } }) })
  t.teardown(() => other.close())
  const refused = new Promise<{ code: string }>((resolve) => other.once('refused', resolve))
  other.send('kiosk-2', 'offer', signOffer({ from: 'tablet-o', to: 'kiosk-2', tenant: 'hotel-2', sdp: fakeSdp(), epoch: 0 }, mallory.identity), { tenant: 'hotel-1' })
  const refusal = await Promise.race([refused, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2_000))])
  t.truthy(refusal === undefined || refusal.code.startsWith('ERR_'), 'the hub refuses or drops it')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.false(b.events.some((e) => e.peer === 'tablet-o'), 'kiosk-2 never received it')
})

test.serial('a revoked device is cut from the hub within 5 s, its live data channel closes, and its peers are told', async (t) => {
  const { address, hub } = await startHub(t)
  const published = { current: new RevocationSet() }
  const a = await startNode(t, device('tablet-p'), { hub: address }, { published })
  const victim = device('tablet-q')
  const b = await startNode(t, victim, { hub: address })
  const link = await a.connector.connect('tablet-q')
  await exchange(t, a, link, b)
  const { revocations, crlPem } = revoking(victim)
  published.current = revocations
  const started = Date.now()
  // The gateway hands the new CRL to its hub: the victim is cut, its tenant told; a's connector
  // hears the hub's notice, fetches the CRL (here: the published set) and closes its channel.
  hub.setRevocations(revocations, crlPem)
  t.like(await a.next((e) => e.event === 'rejected' && e.code === 'ERR_CERT_REVOKED', 'a cuts tablet-q'), { peer: 'tablet-q' })
  await a.next((e) => e.event === 'closed' && e.peer === 'tablet-q', 'a closed its channel')
  await b.next((e) => e.event === 'closed' && e.peer === 'tablet-p', "the victim's end closes too")
  t.true(Date.now() - started < 5_000, 'within 5 s')
  t.throws(() => link.send('still there?'))
  t.false(hub.connections > 1, 'the hub dropped the revoked device')
})

const MDNS_SCENARIO = '__test__/helpers/peering-mdns-scenario.ts'
const netnsMissing = runs('unshare', ['-rn', 'sh', '-c', 'ip link set lo up']) ? undefined : 'unshare -rn (a private network namespace) is not available'

/** Runs a scenario of peering-mdns-scenario.ts in a fresh network namespace with only loopback up. */
function mdnsScenario(name: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn('unshare', ['-rn', 'sh', '-c', `ip link set lo up && exec node --import=tsx ${MDNS_SCENARIO} "$0"`, name], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.once('exit', () => {
      clearTimeout(timer)
      const line = stdout.trim().split('\n').at(-1) ?? ''
      try {
        resolve(JSON.parse(line) as Record<string, unknown>)
      } catch {
        resolve({ error: `no JSON from the scenario: ${stdout} ${stderr.slice(-2000)}` })
      }
    })
  })
}

requirePeer(netnsMissing, test.serial)('in a private network namespace, two nodes find each other over mDNS and open a verified data channel (path mdns) after the gateway path fails', async (t) => {
  const result = await mdnsScenario('pair')
  t.is(result.error, undefined, String(result.error))
  t.is(result.path, 'mdns')
  t.like(result.message, { from: 'tablet-a', data: 'hello over the LAN' })
  t.deepEqual(result.attempts, [
    { path: 'gateway', ok: false, code: 'ERR_UNREACHABLE' },
    { path: 'mdns', ok: true },
  ])
  t.deepEqual(result.discovered, [{ event: 'discovered', deviceId: 'tablet-b', via: 'mdns' }])
})

requirePeer(netnsMissing, test.serial)('a spoofed mDNS announcement (tablet-b at another genuine device\'s address) never yields a channel: the mdns path fails with ERR_DEVICE_MISMATCH', async (t) => {
  const result = await mdnsScenario('spoof')
  t.is(result.error, undefined, String(result.error))
  t.like((result.attempts as unknown[])[1], { path: 'mdns', ok: false, code: 'ERR_DEVICE_MISMATCH' })
  t.is(result.connected, 0)
  t.false(result.impostorSawOffer, 'the offer never left: the handshake refused the server first')
  t.truthy(result.code)
})

test.serial('ztmesh node (the daemon, its connector plugged in) answers a genuine offer on POST /offer with a verified signed answer and opens the channel; tampered and replayed offers are refused with their codes, audited and reported as rejected', async (t) => {
  const dir = workdir(t, 'ztmesh-peering-')
  await CaService.init({ dir: join(dir, 'ca'), name: 'Peering Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const url = await serveCa(t, ca)
  const token = (deviceId: string) => ca.createToken({ deviceId, tenant: 'hotel-1', roles: ['staff'] }).token
  const config = writeFile(dir, 'node.yaml', `log:\n  level: warn\nmetrics:\n  listen: 127.0.0.1:0\nstore: ${join(dir, 'kiosk')}\nenroll:\n  url: ${url}\n  token: ${token('kiosk-7')}\nlisten: 127.0.0.1:0\n`)
  const node = startCli(t, ['node', '--config', config])
  const ready = await node.next((e) => e.event === 'ready')
  const [host, port] = String(ready.listen).split(':')
  const api = { host: host!, port: Number(port) }
  const tablet = await DeviceIdentity.enroll({ url, token: token('tablet-7'), dir: join(dir, 'tablet'), passphrase: 'pw' })
  const credential = tablet.credential()
  const guard = new SignalingGuard({ identity: credential, trustPem: tablet.trustPem })

  const session = await createStack().offer()
  t.teardown(() => session.close())
  const good = signOffer({ from: 'tablet-7', to: 'kiosk-7', tenant: 'hotel-1', sdp: await session.localDescription(), epoch: 0 }, credential)
  const tampered = Buffer.from(good)
  const at = good.indexOf('ice-pwd:') + 9
  tampered[at] = tampered[at]! ^ 0x01
  const refusedTampered = await postTo(api, 'kiosk-7', credential, tablet.trustPem, tampered)
  t.like(refusedTampered, { status: 401, code: 'ERR_SIGNATURE' })
  t.like(await node.next((e) => e.event === 'rejected'), { peer: 'tablet-7', code: 'ERR_SIGNATURE' })

  const answered = await postTo(api, 'kiosk-7', credential, tablet.trustPem, good)
  t.is(answered.status, 200)
  const { digest } = verifyObject(good, 'offer', TrustStore.fromPem(tablet.trustPem), new RevocationSet())
  const { answer, peer } = guard.verifyAnswer(answered.body, digest, { expectedFrom: 'kiosk-7' })
  t.is(peer.deviceId, 'kiosk-7')
  await session.acceptAnswer(answer.sdp)
  const channel = await session.channel
  t.like(await node.next((e) => e.event === 'connected'), { transport: 'webrtc', peer: { deviceId: 'tablet-7', tenant: 'hotel-1' } })
  channel.send('hello kiosk')
  t.like(await node.next((e) => e.event === 'message'), { from: 'tablet-7', data: 'hello kiosk' })

  const replayed = await postTo(api, 'kiosk-7', credential, tablet.trustPem, good)
  t.like(replayed, { status: 401, code: 'ERR_REPLAY' })
  t.like(await node.next((e) => e.event === 'rejected'), { peer: 'tablet-7', code: 'ERR_REPLAY' })

  node.child.kill('SIGTERM')
  t.is((await node.exited).code, 0)
  const db = new Database(join(dir, 'kiosk', 'audit.db'), { readonly: true, fileMustExist: true })
  const rows = db.prepare("SELECT action, outcome, reason FROM audit WHERE action IN ('signal.offer', 'local-api.offer') ORDER BY seq").all() as Array<{ action: string; outcome: string; reason: string }>
  db.close()
  for (const code of ['ERR_SIGNATURE', 'ERR_REPLAY']) {
    t.true(rows.some((r) => r.action === 'signal.offer' && r.outcome === 'deny' && r.reason === code), `the guard audited ${code}`)
    t.true(rows.some((r) => r.action === 'local-api.offer' && r.outcome === 'deny' && r.reason === code), `the local API audited ${code}`)
  }
  t.true(rows.some((r) => r.action === 'local-api.offer' && r.outcome === 'allow'))
})

requirePeer(netnsMissing, test.serial)('in a private network namespace, the gateway announces its hub over mDNS (hub.mdns) and nodes with no hub configured find it, discover each other through it and open a channel over the gateway path', async (t) => {
  const result = await mdnsScenario('gateway')
  t.is(result.error, undefined, String(result.error))
  t.is(result.path, 'gateway')
  t.like(result.message, { from: 'tablet-a', data: 'hello through the gateway' })
  t.true((result.discovered as Array<{ via: string }>).some((e) => e.via === 'gateway'))
})

requirePeer(redisMissing(), test.serial)("the gateway's hub slot with hub.redis (GatewayHubServer over RedisBus): two gateway hub instances on one redis-server relay a verified channel between their nodes, and when the CRL reaches the hubs the peer of the revoked device closes its channel", async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const quiet = { info() {}, warn() {}, error() {}, debug() {} }
  const gateway = device('gateway', 'hotel-1', ['gateway'])
  const hubs = [new GatewayHubServer(hubContext(gateway, redis.url, quiet)), new GatewayHubServer(hubContext(gateway, redis.url, quiet))]
  for (const hub of hubs) {
    await hub.start()
    t.teardown(() => hub.stop())
  }
  const at = (i: number) => ({ host: '127.0.0.1', port: hubs[i]!.address!.port })
  const published = { current: new RevocationSet() }
  const a = await startNode(t, device('tablet-r'), { hub: at(0) }, { published })
  const victim = device('tablet-s')
  const b = await startNode(t, victim, { hub: at(1) })
  const link = await a.connector.connect('tablet-s')
  t.is(link.path, 'gateway')
  await exchange(t, a, link, b)
  const { revocations, crlPem } = revoking(victim)
  published.current = revocations
  // Each gateway instance hands its hub the CRL it polled.
  for (const hub of hubs) hub.setRevocations(revocations, crlPem)
  t.like(await a.next((e) => e.event === 'rejected' && e.code === 'ERR_CERT_REVOKED', 'a cuts tablet-s'), { peer: 'tablet-s' })
  await b.next((e) => e.event === 'closed' && e.peer === 'tablet-r', "the victim's end closes")
})

function hubContext(gateway: TestDevice, redisUrl: string, logger: object): GatewayHubContext {
  return { identity: gateway.identity, trustPem, revocations: new RevocationSet(), audit: { append() {} }, config: { redis: redisUrl, mdns: false }, daemon: { logger } } as unknown as GatewayHubContext
}

test.serial('verified offers from many peers cannot pin unbounded WebRTC sessions: beyond 32 answering sessions still opening, an offer is refused with ERR_RATE_LIMITED', async (t) => {
  const b = await startNode(t, device('kiosk-9'))
  const stack = createStack()
  const offerers = await Promise.all(Array.from({ length: 33 }, () => stack.offer()))
  t.teardown(() => {
    for (const session of offerers) session.close()
  })
  const codes: string[] = []
  for (const [i, session] of offerers.entries()) {
    const peer = device(`tablet-flood-${i}`)
    const offer = signOffer({ from: peer.deviceId, to: 'kiosk-9', tenant: 'hotel-1', sdp: await session.localDescription(), epoch: 0 }, peer.identity)
    try {
      await b.connector.handleOffer(offer, { deviceId: peer.deviceId, tenant: 'hotel-1' } as never)
      codes.push('answered')
    } catch (error) {
      codes.push((error as ZtError).code)
    }
  }
  t.deepEqual(codes.slice(0, 32), Array.from({ length: 32 }, () => 'answered'))
  t.is(codes[32], 'ERR_RATE_LIMITED')
})
