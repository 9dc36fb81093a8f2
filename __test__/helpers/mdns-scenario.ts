/**
 * mDNS scenarios for __test__/discovery.spec.ts. Run ONLY inside a private network namespace with
 * loopback up (`unshare -rn sh -c 'ip link set lo up; exec node --import=tsx …/mdns-scenario.ts NAME'`):
 * it multicasts. It refuses to run where any interface other than `lo` exists. It prints one JSON
 * line with what it saw, then exits.
 */
import { createSocket } from 'node:dgram'
import { readlinkSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

import packet, { type Answer, type Question } from 'dns-packet'
import makeMdns from 'multicast-dns'

import { connectDiscovered, MdnsDiscovery, instanceName, type DiscoveredPeer } from '../../src/discovery/index.js'
import { buildCsr, CertificateAuthority, connectSecure, createPolicyDecisionPoint, createSecureServer, generateP256Key, Signer, type SecureStream } from '../../src/index.js'

const interfaces = Object.keys(networkInterfaces())
if (interfaces.some((name) => name !== 'lo')) {
  console.log(JSON.stringify({ error: `refusing to multicast outside a private namespace (interfaces: ${interfaces.join(', ')})` }))
  process.exit(2)
}
const netns = readlinkSync('/proc/self/ns/net')
const LO = { interface: '127.0.0.1', bind: '0.0.0.0' }
const SPKI_A = 'a'.repeat(64)
const SPKI_B = 'b'.repeat(64)

function brief(p: DiscoveredPeer) {
  return { deviceId: p.deviceId, tenant: p.tenant, role: p.role, host: p.host, port: p.port, spkiSha256: p.spkiSha256, via: p.via }
}

/** Waits until `check` holds, up to `ms`. */
async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await sleep(25)
  }
  return check()
}

/** Two devices: B advertises first and A finds it by querying; A advertises later and B finds it by the announcement; A says goodbye. */
async function pair() {
  const a = new MdnsDiscovery({ ...LO, tenant: 'hotel-1' })
  const b = new MdnsDiscovery(LO)
  const other = new MdnsDiscovery(LO)
  await Promise.all([a.ready(), b.ready(), other.ready()])
  b.advertise({ deviceId: 'gw-1', tenant: 'hotel-1', spkiSha256: SPKI_B, port: 7443, role: 'gateway' })
  other.advertise({ deviceId: 'gw-1', tenant: 'hotel-2', spkiSha256: SPKI_B, port: 7445, role: 'gateway' })
  await sleep(1500) // B's start-up announcements are over: A can only learn of B by asking
  const foundByA: DiscoveredPeer[] = []
  const foundByB: DiscoveredPeer[] = []
  const lostByB: DiscoveredPeer[] = []
  a.browse((p) => foundByA.push(p))
  b.browse(
    (p) => foundByB.push(p),
    (p) => lostByB.push(p),
  )
  await until(() => foundByA.length > 0)
  await until(() => foundByB.length > 0) // the other tenant's gateway, seen by B (no tenant filter), never by A
  const otherTenantSeenByB = foundByB.map((p) => p.tenant)
  await other.close()
  await until(() => lostByB.length > 0)
  foundByB.length = 0
  lostByB.length = 0
  a.advertise({ deviceId: 'tablet-9', tenant: 'hotel-1', spkiSha256: SPKI_A, port: 7444, role: 'node', host: '127.0.0.1' })
  await until(() => foundByB.length > 0)
  await sleep(1500) // the re-announcement and the second query come and go: no new report (dedupe)
  const tableB = b.peers()
  await a.close()
  await until(() => lostByB.length > 0)
  const after = b.peers()
  const good = { deviceId: 'x-1', tenant: 'hotel-1', spkiSha256: SPKI_A, port: 7443, role: 'node' as const }
  const refusals: Record<string, string | undefined> = {}
  for (const [key, bad] of Object.entries({
    deviceId: { deviceId: 'a/b' },
    tenant: { tenant: '' },
    spkiSha256: { spkiSha256: 'abc' },
    port: { port: 70000 },
    role: { role: 'admin' },
    host: { host: 'not-an-address' },
    unspecifiedHost: { host: '0.0.0.0' },
  })) {
    try {
      b.advertise({ ...good, ...bad } as typeof good)
    } catch (error) {
      refusals[key] = (error as { code?: string }).code
    }
  }
  await b.close()
  try {
    b.advertise(good)
  } catch (error) {
    refusals.afterClose = (error as { code?: string }).code
  }
  return { refusals, otherTenantSeenByB, netns, interfaces, foundByA: foundByA.map(brief), foundByB: foundByB.map(brief), tableB: tableB.map(brief), lostByB: lostByB.map(brief), afterGoodbye: after.length, statsA: a.stats(), statsB: b.stats() }
}

const GOOD_TTL = 120

/** A bare multicast-dns socket on the group: the attacker, who sends whatever it likes. */
async function rawMdns() {
  const mdns = makeMdns({ ...LO, loopback: true })
  mdns.on('warning', () => {})
  await new Promise((resolve) => mdns.once('ready', resolve))
  return mdns
}

/** The records of an announcement, with each part overridable to make it hostile. */
function announcement(init: { deviceId?: string; tenant?: string; instance?: string; port?: number; srvPort?: number; txt?: (string | Buffer)[]; ttl?: number; extra?: Record<string, string> }): Answer[] {
  const deviceId = init.deviceId ?? 'good-1'
  const tenant = init.tenant ?? 'hotel-1'
  const instance = init.instance ?? instanceName(deviceId, tenant)
  const port = init.port ?? 7443
  const ttl = init.ttl ?? GOOD_TTL
  const fields: Record<string, string> = { v: '1', id: deviceId, tenant, spki: SPKI_A, port: String(port), role: 'node', ...init.extra }
  const txt = init.txt ?? Object.entries(fields).map(([k, v]) => `${k}=${v}`)
  return [
    { name: '_ztmesh._tcp.local', type: 'PTR', ttl, data: instance },
    { name: instance, type: 'SRV', ttl, data: { port: init.srvPort ?? port, target: 'attacker.local', priority: 0, weight: 0 } },
    { name: instance, type: 'TXT', ttl, data: txt },
    { name: 'attacker.local', type: 'A', ttl, data: '127.0.0.1' },
  ]
}

/** One victim browsing, an attacker on the same group sending hostile announcements and garbage. */
async function hostile() {
  const victim = new MdnsDiscovery({ ...LO, maxPeers: 32 })
  const attacker = await rawMdns()
  await victim.ready()
  const found: string[] = []
  const lost: string[] = []
  victim.browse(
    (p) => found.push(p.deviceId),
    (p) => lost.push(p.deviceId),
  )
  const send = (answers: Answer[]) => new Promise<void>((resolve) => attacker.respond({ answers }, () => resolve()))

  // The control: a well-formed announcement is accepted.
  await send(announcement({}))
  await until(() => found.includes('good-1'))

  const cases: Record<string, Answer[]> = {
    oversizedTxt: announcement({ deviceId: 'big-1', extra: { pad: 'x'.repeat(250), pad2: 'y'.repeat(250) } }),
    tooManyTxtStrings: announcement({ deviceId: 'many-1', txt: Array.from({ length: 40 }, (_, i) => `k${i}=v`) }),
    badDeviceId: announcement({ deviceId: 'dev/1' }),
    dotDotDeviceId: announcement({ deviceId: '../etc' }),
    badTenant: announcement({ tenant: 'hotel 1' }),
    longDeviceId: announcement({ deviceId: 'd'.repeat(65) }),
    shortSpki: announcement({ deviceId: 'spki-1', extra: { spki: 'abcd' } }),
    upperSpki: announcement({ deviceId: 'spki-2', extra: { spki: 'A'.repeat(64) } }),
    nonHexSpki: announcement({ deviceId: 'spki-3', extra: { spki: 'z'.repeat(64) } }),
    portZero: announcement({ deviceId: 'port-0', port: 0, srvPort: 0 }),
    portTooBig: announcement({ deviceId: 'port-big', extra: { port: '70000' } }),
    portNotNumber: announcement({ deviceId: 'port-abc', extra: { port: 'abc' } }),
    portsDiffer: announcement({ deviceId: 'port-diff', srvPort: 9999 }),
    unknownRole: announcement({ deviceId: 'role-1', extra: { role: 'admin' } }),
    unknownVersion: announcement({ deviceId: 'ver-1', extra: { v: '2' } }),
    missingSpki: announcement({ deviceId: 'miss-1', txt: ['v=1', 'id=miss-1', 'tenant=hotel-1', 'port=7443', 'role=node'] }),
    repeatedKey: announcement({ deviceId: 'rep-1', txt: ['v=1', 'id=rep-1', 'id=other', 'tenant=hotel-1', `spki=${SPKI_A}`, 'port=7443', 'role=node'] }),
    binaryTxt: announcement({ deviceId: 'bin-1', txt: [Buffer.from([0x76, 0x3d, 0x31]), Buffer.from([0xff, 0xfe, 0x00, 0x3d])] }),
    nameMismatch: announcement({ deviceId: 'victim-1', instance: instanceName('someone-else', 'hotel-1') }),
    wrongRecordType: [{ name: instanceName('hinfo-1', 'hotel-1'), type: 'HINFO', ttl: GOOD_TTL, data: { cpu: 'x', os: 'y' } }],
    ptrElsewhere: [{ name: '_ztmesh._tcp.local', type: 'PTR', ttl: GOOD_TTL, data: 'evil.example.com' }],
  }
  const before = victim.stats()
  const perCase: Record<string, { refused: number; malformed: number }> = {}
  for (const [key, answers] of Object.entries(cases)) {
    const s0 = victim.stats()
    await send(answers)
    await sleep(50)
    const s1 = victim.stats()
    perCase[key] = { refused: s1.refused - s0.refused, malformed: s1.malformed - s0.malformed }
  }
  await sleep(300)
  const afterCases = victim.stats()

  // Garbage that does not decode, from another socket and port.
  const raw = createSocket({ type: 'udp4', reuseAddr: true })
  await new Promise<void>((resolve) => raw.bind(0, '127.0.0.1', () => resolve()))
  raw.setMulticastInterface('127.0.0.1')
  const rawSend = (bytes: Buffer) => new Promise<void>((resolve) => raw.send(bytes, 5353, '224.0.0.251', () => resolve()))
  for (const bytes of [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(12, 0xff), Buffer.concat([Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]), Buffer.from([0xc0, 0x0c])])]) await rawSend(bytes)
  // A well-formed announcement from a source port other than 5353 (not a multicast responder).
  await rawSend(packet.encode({ type: 'response', answers: announcement({ deviceId: 'wrong-port' }) }))
  // One packet with more records than any announcement needs.
  await send(Array.from({ length: 30 }, (_, i) => announcement({ deviceId: `burst-${i}` })).flat())
  await sleep(300)
  const afterGarbage = victim.stats()

  // A flood of distinct valid names: the table stays within its cap.
  for (let i = 0; i < 500; i += 10) {
    await send(Array.from({ length: 10 }, (_, j) => announcement({ deviceId: `flood-${i + j}` }).slice(1, 3)).flat())
  }
  await sleep(500)
  const tableAfterFlood = victim.peers().length
  const afterFlood = victim.stats()

  // A short-lived announcement (TTL 1) expires without a goodbye, on a fresh victim (the flooded table is full).
  const second = new MdnsDiscovery({ ...LO })
  await second.ready()
  const seen: string[] = []
  const expired: string[] = []
  second.browse(
    (p) => seen.push(p.deviceId),
    (p) => expired.push(p.deviceId),
  )
  await sleep(200)
  await send(announcement({ deviceId: 'brief-1', ttl: 1 }))
  await until(() => seen.includes('brief-1'))
  await until(() => expired.includes('brief-1'), 5000)
  const secondStats = second.stats()

  raw.close()
  await new Promise((resolve) => attacker.destroy(() => resolve(undefined)))
  await second.close()
  await victim.close()
  return {
    netns,
    found: [...new Set(found)].filter((id) => !id.startsWith('flood-')),
    floodFound: found.filter((id) => id.startsWith('flood-')).length,
    perCase,
    refusedByCases: afterCases.refused - before.refused,
    malformedByCases: afterCases.malformed - before.malformed,
    garbageMalformed: afterGarbage.malformed - afterCases.malformed,
    wrongPortRefused: afterGarbage.refused - afterCases.refused,
    tableAfterFlood,
    tableFull: afterFlood.tableFull,
    seen,
    expired,
    secondStats,
  }
}

/**
 * Announcement spoofing: a device of the same tenant, with a valid certificate of its own,
 * announces the victim's device id and key digest at its own address. The client that connects
 * to what it discovered, naming the device it expects, is refused by the link's handshake; the
 * victim's own announcement leads to a link.
 */
async function spoof() {
  const root = CertificateAuthority.createRoot({ commonName: 'Spoof Root', organisation: 'Acme' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Spoof Site', organisation: 'Acme' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const device = (deviceId: string, roles?: string[], tenant = 'hotel-1') => {
    const privateKey = generateP256Key()
    const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant, ...(roles !== undefined && { roles }) })
    return { identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(privateKey) }, cert }
  }
  const trustPem = root.certificatePem
  const victim = device('tablet-9')
  const attacker = device('evil-1')
  const client = device('pos-1')
  const gateway = device('gw-1', ['gateway'])
  const stranger = device('evil-2', undefined, 'hotel-2')
  const victimServer = createSecureServer({ identity: victim.identity, trustPem }, (link) => link.end('victim'))
  const attackerServer = createSecureServer({ identity: attacker.identity, trustPem }, (link) => link.end('attacker'))
  const gatewayServer = createSecureServer({ identity: gateway.identity, trustPem }, (link) => link.end('gateway'))
  // The stranger's server would talk to anyone: only the client's checks stand between them.
  const strangerServer = createSecureServer({ identity: stranger.identity, trustPem, access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-2', rules: [{ id: 'any', effect: 'allow', actions: ['*'], peerTenants: ['hotel-1'] }] }, audit: { append: () => undefined } }) }, (link) => link.end('stranger'))
  const victimPort = (await victimServer.listen(0, '127.0.0.1')).port
  const attackerPort = (await attackerServer.listen(0, '127.0.0.1')).port
  const gatewayPort = (await gatewayServer.listen(0, '127.0.0.1')).port
  const strangerPort = (await strangerServer.listen(0, '127.0.0.1')).port

  const outcome = async (connecting: Promise<SecureStream>) => {
    try {
      const link = await connecting
      const data = await new Promise<string>((resolve, reject) => {
        let text = ''
        link.on('data', (chunk: Buffer) => (text += chunk.toString()))
        link.once('end', () => resolve(text))
        link.once('error', reject)
      })
      link.destroy()
      return { ok: true, data }
    } catch (error) {
      return { ok: false, code: (error as { code?: string }).code }
    }
  }
  // The announced key digest as a pin, by hand; and the one helper, which checks device, tenant and a gateway's role.
  const pinned = (peer: DiscoveredPeer) =>
    outcome(connectSecure({ host: peer.host, port: peer.port, identity: client.identity, trustPem, serverDevice: peer.deviceId, policy: { expectedTenant: peer.tenant, pins: [peer.spkiSha256] }, handshakeTimeoutMs: 5000 }))
  const helper = (peer: DiscoveredPeer) => outcome(connectDiscovered(peer, { identity: client.identity, trustPem, handshakeTimeoutMs: 5000 }))

  const results: Record<string, unknown> = {}
  for (const [label, deviceId, port, spki, role] of [
    ['genuine', 'tablet-9', victimPort, victim.cert.spkiSha256, 'node'],
    ['spoofed', 'tablet-9', attackerPort, victim.cert.spkiSha256, 'node'],
    ['spoofedOwnKey', 'tablet-9', attackerPort, attacker.cert.spkiSha256, 'node'],
    ['genuineGateway', 'gw-1', gatewayPort, gateway.cert.spkiSha256, 'gateway'],
    ['nodeAsGateway', 'tablet-9', victimPort, victim.cert.spkiSha256, 'gateway'],
    ['otherTenant', 'evil-2', strangerPort, stranger.cert.spkiSha256, 'node'],
  ] as const) {
    const advertiser = new MdnsDiscovery(LO)
    const browser = new MdnsDiscovery(LO)
    await Promise.all([advertiser.ready(), browser.ready()])
    advertiser.advertise({ deviceId, tenant: 'hotel-1', spkiSha256: spki, port, role, host: '127.0.0.1' })
    const found: DiscoveredPeer[] = []
    browser.browse((p) => found.push(p))
    await until(() => found.length > 0)
    const peer = found[0]!
    results[label] = { discovered: peer.deviceId, pinned: await pinned(peer), helper: await helper(peer) }
    await advertiser.close()
    await browser.close()
  }
  await victimServer.close()
  await attackerServer.close()
  await gatewayServer.close()
  await strangerServer.close()
  return { netns, results }
}

/** A query flood: the advertiser's multicast answers stay within one per MIN_ANSWER_INTERVAL_MS (plus the one deferred answer). */
async function queryFlood() {
  const advertiser = new MdnsDiscovery(LO)
  const attacker = await rawMdns()
  await advertiser.ready()
  advertiser.advertise({ deviceId: 'tablet-9', tenant: 'hotel-1', spkiSha256: SPKI_A, port: 7443, role: 'node' })
  await sleep(1500) // the start-up announcements are over
  const before = advertiser.stats().answered
  const start = Date.now()
  for (let i = 0; i < 300; i++) {
    const questions: Question[] = [
      { name: '_ztmesh._tcp.local', type: 'PTR' },
      { name: instanceName('tablet-9', 'hotel-1'), type: 'ANY' as unknown as Question['type'] }, // QTYPE 255, missing from the typings
    ]
    await new Promise<void>((resolve) => attacker.query({ questions }, () => resolve()))
  }
  await sleep(400) // the deferred answer, if any, goes out
  const elapsedMs = Date.now() - start
  const answered = advertiser.stats().answered - before
  await new Promise((resolve) => attacker.destroy(() => resolve(undefined)))
  await advertiser.close()
  return { netns, queries: 300, answered, elapsedMs }
}

/** A forged goodbye and a conflicting announcement of a device's own name: the device re-announces at once. */
async function defend() {
  const owner = new MdnsDiscovery(LO)
  const browser = new MdnsDiscovery(LO)
  const attacker = await rawMdns()
  await Promise.all([owner.ready(), browser.ready()])
  owner.advertise({ deviceId: 'tablet-9', tenant: 'hotel-1', spkiSha256: SPKI_A, port: 7443, role: 'node', host: '127.0.0.1' })
  const events: string[] = []
  browser.browse(
    (p) => events.push(`found ${p.port}`),
    (p) => events.push(`lost ${p.port}`),
  )
  await until(() => events.length > 0)
  await sleep(1500) // the start-up announcements are over
  const send = (answers: Answer[]) => new Promise<void>((resolve) => attacker.respond({ answers }, () => resolve()))
  const instance = instanceName('tablet-9', 'hotel-1')
  await send([{ name: '_ztmesh._tcp.local', type: 'PTR', ttl: 0, data: instance }])
  await until(() => events.length >= 3)
  const afterGoodbye = [...events]
  await send(announcement({ deviceId: 'tablet-9', port: 6666 }))
  await until(() => events.length >= 5)
  const afterConflict = [...events]
  const table = browser.peers().map((p) => p.port)
  await new Promise((resolve) => attacker.destroy(() => resolve(undefined)))
  await browser.close()
  await owner.close()
  return { netns, afterGoodbye, afterConflict, table }
}

const scenarios: Record<string, () => Promise<unknown>> = { pair, hostile, spoof, queryFlood, defend }
const name = process.argv[2] ?? ''
const run = scenarios[name]
if (run === undefined) {
  console.log(JSON.stringify({ error: `unknown scenario ${name}` }))
  process.exit(2)
}
const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ error: 'scenario timed out' }))
  process.exit(3)
}, 60_000)
watchdog.unref()
run().then(
  (result) => {
    console.log(JSON.stringify(result))
    process.exit(0)
  },
  (error: unknown) => {
    console.log(JSON.stringify({ error: String((error as Error)?.stack ?? error) }))
    process.exit(1)
  },
)
