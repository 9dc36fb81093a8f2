// The hub over the project's mutual TLS: relay with the link's identity, tenants kept apart,
// late joiners, presence leases the hub cannot forge, the revocation cut, per-identity limits,
// and every malformed or oversized frame refused with its code and audited.
import { once } from 'node:events'

import test from 'ava'
import { WebSocketServer } from 'ws'

import { createSecureServer, signObject, signPresenceLease, verifyObject, RevocationSet, TrustStore, type SecureStream } from '../src/index.js'
import { encodeFrame, HubClient, HubServer, parseClientFrame, parseHubFrame, type HubPresence, type HubRefusal, type HubSignal } from '../src/hub/index.js'
import { device, hubAccess, memoryAudit, revoking, siteChainPem, trustPem, type TestDevice } from './helpers/hub.js'

const hubDevice = device('hub-1', 'hotel-1', ['gateway'])

async function startHub(init: Partial<ConstructorParameters<typeof HubServer>[0]> = {}) {
  const audit = memoryAudit()
  const hub = new HubServer({ identity: hubDevice.identity, trustPem, audit, ...init })
  const { port } = await hub.listen(0, '127.0.0.1')
  return { hub, port, audit }
}

function connect(port: number, d: TestDevice, extra: Partial<Parameters<typeof HubClient.connect>[0]> = {}) {
  return HubClient.connect({ host: '127.0.0.1', port, identity: d.identity, trustPem, ...extra })
}

/** Resolves with the first event `name` of `emitter` that `match` accepts. */
function next<T>(emitter: HubClient, name: 'signal' | 'presence' | 'refused' | 'revoked' | 'close', match: (value: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ;(emitter as unknown as import('node:events').EventEmitter).off(name, listener as (...args: unknown[]) => void)
      reject(new Error(`no ${name} event within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (value: T) => {
      if (!match(value)) return
      clearTimeout(timer)
      ;(emitter as unknown as import('node:events').EventEmitter).off(name, listener as (...args: unknown[]) => void)
      resolve(value)
    }
    ;(emitter as unknown as import('node:events').EventEmitter).on(name, listener as (...args: unknown[]) => void)
  })
}

const online = (deviceId: string) => (p: HubPresence) => p.deviceId === deviceId && p.online
const offline = (deviceId: string) => (p: HubPresence) => p.deviceId === deviceId && !p.online

/** Waits until `client` has a verified lease of every device in `ids`. */
async function seen(client: HubClient, ids: string[]): Promise<void> {
  const missing = () => ids.filter((id) => !client.peers().includes(id))
  while (missing().length > 0) await next<HubPresence>(client, 'presence', (p) => p.online)
}

test('two devices of a tenant see each other through signed leases and relay offers; from is the link identity, and the receiver verifies the object itself', async (t) => {
  const { hub, port, audit } = await startHub()
  const a = device('tablet-a')
  const b = device('tablet-b')
  const ca = await connect(port, a)
  const cb = await connect(port, b)
  t.teardown(async () => {
    await Promise.all([ca.close(), cb.close()])
    await hub.close()
  })
  await seen(ca, ['tablet-b'])
  await seen(cb, ['tablet-a'])
  t.is(ca.hubId, 'hub-1')

  const object = signObject('test', Buffer.from('v=0 offer'), a.identity)
  const received = next<HubSignal>(cb, 'signal')
  ca.send('tablet-b', 'offer', object)
  const signal = await received
  t.is(signal.from, 'tablet-a')
  t.is(signal.kind, 'offer')
  const verified = verifyObject(signal.object, 'test', TrustStore.fromPem(trustPem), new RevocationSet(), { expectedTenant: 'hotel-1', expectedDevice: signal.from })
  t.is(verified.body.toString(), 'v=0 offer')

  // Every connection was audited, with the certificate's identity.
  const connects = audit.events.filter((e) => e.action === 'hub.connect' && e.outcome === 'allow').map((e) => e.actor)
  t.deepEqual(connects.sort(), ['tablet-a', 'tablet-b'])
  t.is(hub.connections, 2)

  // Leaving ends the presence at once.
  const gone = next<HubPresence>(cb, 'presence', offline('tablet-a'))
  await ca.close()
  await gone
  t.deepEqual(cb.peers(), [])
})

test('a forged from is never relayed: the frame is refused, and what is relayed carries the sender link identity', async (t) => {
  const { hub, port, audit } = await startHub()
  const a = device('mallory')
  const b = device('tablet-b')
  const ca = await connect(port, a)
  const cb = await connect(port, b)
  t.teardown(async () => {
    await Promise.all([ca.close(), cb.close()])
    await hub.close()
  })
  await seen(cb, ['mallory'])
  const object = Buffer.from(signObject('test', Buffer.from('x'), a.identity))
  const refused = next<HubRefusal>(ca, 'refused')
  ca.sendRaw(JSON.stringify({ type: 'signal', to: 'tablet-b', kind: 'offer', object: object.toString('base64'), from: 'ceo-laptop' }))
  t.is((await refused).code, 'ERR_HUB_FRAME')
  t.true(audit.events.some((e) => e.actor === 'mallory' && e.action === 'hub.frame' && e.reason === 'ERR_HUB_FRAME'))
  const received = next<HubSignal>(cb, 'signal')
  ca.send('tablet-b', 'offer', object)
  t.is((await received).from, 'mallory')
})

test('cross-tenant relay is refused and audited; a device id of another tenant is never reached, and presence stays within the tenant', async (t) => {
  const { hub, port, audit } = await startHub({ access: hubAccess(['hotel-1', 'hotel-2']) })
  const a = device('tablet-a', 'hotel-1')
  const x = device('intruder', 'hotel-2')
  const twin = device('tablet-a', 'hotel-2') // the same device id in the other tenant
  const ca = await connect(port, a)
  const cx = await connect(port, x, { access: hubAccess(['hotel-2', 'hotel-1']) })
  const ct = await connect(port, twin, { access: hubAccess(['hotel-2', 'hotel-1']) })
  t.teardown(async () => {
    await Promise.all([ca.close(), cx.close(), ct.close()])
    await hub.close()
  })
  await seen(cx, ['tablet-a']) // hotel-2's own tablet-a
  const got: HubSignal[] = []
  ca.on('signal', (s) => got.push(s))
  const object = signObject('test', Buffer.from('x'), x.identity)
  const refused = next<HubRefusal>(cx, 'refused')
  cx.send('tablet-a', 'offer', object, { tenant: 'hotel-1' })
  t.is((await refused).code, 'ERR_HUB_CROSS_TENANT')
  const denial = audit.events.find((e) => e.reason === 'ERR_HUB_CROSS_TENANT')
  t.like(denial, { actor: 'intruder', action: 'hub.signal', outcome: 'deny', detail: { tenant: 'hotel-2', toTenant: 'hotel-1' } })
  // Without a tenant, `tablet-a` means hotel-2's tablet-a: hotel-1's never hears of it.
  const twinGot = next<HubSignal>(ct, 'signal')
  cx.send('tablet-a', 'offer', object)
  t.is((await twinGot).from, 'intruder')
  t.deepEqual(got, [])
  t.deepEqual(ca.peers(), [], 'hotel-1 sees no presence of hotel-2')
})

test('offers and candidates sent before the receiver joins are kept and delivered when it arrives', async (t) => {
  const { hub, port } = await startHub()
  const a = device('tablet-a')
  const late = device('tablet-late')
  const ca = await connect(port, a)
  t.teardown(async () => {
    await ca.close()
    await hub.close()
  })
  const offer = signObject('test', Buffer.from('offer'), a.identity)
  const candidates = [1, 2, 3].map((i) => signObject('test', Buffer.from(`candidate ${i}`), a.identity))
  ca.send('tablet-late', 'offer', offer)
  for (const c of candidates) ca.send('tablet-late', 'candidate', c)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const cl = await connect(port, late)
  t.teardown(() => cl.close())
  const got: HubSignal[] = []
  cl.on('signal', (s) => got.push(s))
  while (got.length < 4) await new Promise((resolve) => setTimeout(resolve, 20))
  t.deepEqual(got.map((s) => s.kind), ['offer', 'candidate', 'candidate', 'candidate'])
  t.true(got.every((s) => s.from === 'tablet-a'))
  t.deepEqual(got[3]!.object, candidates[2])
})

test('a revoked device is cut well within 5 s, its tenant is told with the CRL, its presence ends, and its reconnect is refused', async (t) => {
  const { hub, port, audit } = await startHub()
  const a = device('tablet-a')
  const r = device('stolen')
  const ca = await connect(port, a)
  const cr = await connect(port, r)
  t.teardown(async () => {
    await Promise.all([ca.close(), cr.close()])
    await hub.close()
  })
  await seen(ca, ['stolen'])
  const { revocations, crlPem } = revoking(r)
  const closed = once(cr, 'close')
  const told = next<{ crlPem: string }>(ca, 'revoked')
  const gone = next<HubPresence>(ca, 'presence', offline('stolen'))
  const started = performance.now()
  hub.setRevocations(revocations, crlPem)
  await closed
  const cutMs = performance.now() - started
  t.true(cutMs <= 5000, `cut after ${cutMs} ms`)
  t.log(`revoked device cut after ${cutMs.toFixed(1)} ms`)
  t.is((await told).crlPem, crlPem)
  await gone
  t.true(audit.events.some((e) => e.actor === 'stolen' && e.action === 'hub.revoked' && e.reason === 'ERR_CERT_REVOKED'))
  // The peer can apply it itself: the CRL names the stolen device.
  const applied = new RevocationSet()
  applied.addCrl(crlPem, siteChainPem, TrustStore.fromPem(trustPem))
  t.true(applied.isRevoked(r.cert.serial, r.cert.spkiSha256, issuerOf(r)))
  // Reconnecting is refused during the TLS handshake.
  const error = await t.throwsAsync(connect(port, r))
  t.true(['ERR_TLS_ALERT', 'ERR_UNREACHABLE', 'ERR_CLOSED', 'ERR_TLS_CLOSED'].includes((error as { code?: string }).code ?? ''), String((error as { code?: string }).code))
  t.true(audit.events.some((e) => e.action === 'hub.connect' && e.outcome === 'deny' && e.reason === 'ERR_CERT_REVOKED'))
})

/** The issuer key id of the device's certificate, as verifyPeer reports it. */
function issuerOf(d: TestDevice): string {
  return verifyObject(signObject('test', Buffer.from('k'), d.identity), 'test', TrustStore.fromPem(trustPem), new RevocationSet()).peer.issuerKeyId
}

test('the periodic re-check cuts a live link the revocations name even when no call reached it (revocations handed at start)', async (t) => {
  const r = device('quiet-stolen')
  const { revocations } = revoking(r)
  // A hub started before the device was revoked, whose revocations change under it.
  const { hub, port } = await startHub({ revocationCheckMs: 200 })
  const cr = await connect(port, r)
  t.teardown(async () => {
    await cr.close()
    await hub.close()
  })
  const closed = once(cr, 'close')
  const started = performance.now()
  hub.setRevocations(revocations)
  await closed
  t.true(performance.now() - started <= 5000)
})

test('offers per minute are limited per certificate identity, not per address: one device is refused, another on the same address is not', async (t) => {
  const { hub, port, audit } = await startHub({ limits: { offersPerMinute: 3 } })
  const a = device('flooder')
  const b = device('tablet-b')
  const c = device('tablet-c')
  const [ca, cb, cc] = await Promise.all([connect(port, a), connect(port, b), connect(port, c)])
  t.teardown(async () => {
    await Promise.all([ca.close(), cb.close(), cc.close()])
    await hub.close()
  })
  await seen(ca, ['tablet-b'])
  await seen(cc, ['tablet-b'])
  const refusals: HubRefusal[] = []
  ca.on('refused', (r) => refusals.push(r))
  const got: HubSignal[] = []
  cb.on('signal', (s) => got.push(s))
  const object = signObject('test', Buffer.from('o'), a.identity)
  for (let i = 0; i < 8; i++) ca.send('tablet-b', 'offer', object)
  for (let i = 0; i < 3; i++) cc.send('tablet-b', 'offer', object)
  while (got.length < 6 || refusals.length < 5) await new Promise((resolve) => setTimeout(resolve, 20))
  t.is(got.filter((s) => s.from === 'flooder').length, 3)
  t.is(got.filter((s) => s.from === 'tablet-c').length, 3)
  t.true(refusals.every((r) => r.code === 'ERR_HUB_RATE_LIMITED'))
  t.is(audit.events.filter((e) => e.actor === 'flooder' && e.reason === 'ERR_HUB_RATE_LIMITED').length, 5)
  // Candidates are not offers: still relayed.
  const candidate = next<HubSignal>(cb, 'signal', (s) => s.kind === 'candidate')
  ca.send('tablet-b', 'candidate', object)
  t.is((await candidate).from, 'flooder')
})

test('a flood of frames past the per-identity budget is refused, and the connection closed after too many refusals', async (t) => {
  const { hub, port, audit } = await startHub({ limits: { framesPerMinute: 20, maxRefusals: 5 } })
  const a = device('spammer')
  const ca = await connect(port, a)
  t.teardown(() => hub.close())
  const closed = once(ca, 'close')
  const object = signObject('test', Buffer.from('c'), a.identity)
  for (let i = 0; i < 60; i++) {
    try {
      ca.send('tablet-b', 'candidate', object)
    } catch {
      break
    }
  }
  const [code] = (await closed) as [number]
  t.is(code, 1008)
  t.true(audit.events.filter((e) => e.actor === 'spammer' && e.reason === 'ERR_HUB_RATE_LIMITED').length >= 5)
})

test('connections per device are limited per certificate identity and the refusal is audited', async (t) => {
  const { hub, port, audit } = await startHub({ limits: { connectionsPerDevice: 2 } })
  const a = device('tablet-a')
  const first = await connect(port, a)
  const second = await connect(port, a)
  t.teardown(async () => {
    await Promise.all([first.close(), second.close()])
    await hub.close()
  })
  const error = await t.throwsAsync(connect(port, a))
  t.is((error as { code?: string }).code, 'ERR_HUB_TOO_MANY_CONNECTIONS')
  t.true(audit.events.some((e) => e.actor === 'tablet-a' && e.action === 'hub.connect' && e.outcome === 'deny' && e.reason === 'ERR_HUB_TOO_MANY_CONNECTIONS'))
  // Another device is not affected.
  const b = await connect(port, device('tablet-b'))
  await b.close()
})

test('oversized frames: an object over the limit is refused with ERR_HUB_FRAME_SIZE, a frame over the WebSocket limit closes the connection, both audited', async (t) => {
  const { hub, port, audit } = await startHub({ limits: { maxObjectBytes: 4096 } })
  const a = device('big-sender')
  const ca = await connect(port, a, { maxObjectBytes: 1 << 20 })
  t.teardown(() => hub.close())
  const refused = next<HubRefusal>(ca, 'refused')
  ca.send('tablet-b', 'offer', Buffer.alloc(4200, 1))
  t.is((await refused).code, 'ERR_HUB_FRAME_SIZE')
  const closed = once(ca, 'close')
  ca.sendRaw('x'.repeat(200_000))
  const [code] = (await closed) as [number]
  t.is(code, 1009)
  t.true(audit.events.some((e) => e.actor === 'big-sender' && e.reason === 'ERR_HUB_FRAME_SIZE' && e.action === 'hub.signal') || audit.events.some((e) => e.actor === 'big-sender' && e.reason === 'ERR_HUB_FRAME_SIZE' && e.action === 'hub.frame'))
  t.true(audit.events.some((e) => e.actor === 'big-sender' && e.action === 'hub.frame' && e.detail?.ws === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'))
  // The client refuses to send an object over its own limit.
  const small = await connect(port, device('small'))
  t.teardown(() => small.close())
  t.is((t.throws(() => small.send('x', 'offer', Buffer.alloc(40_000))) as { code?: string } | undefined)?.code, 'ERR_HUB_FRAME_SIZE')
})

const MALFORMED: [string, string | Buffer][] = [
  ['not JSON', '{"type":'],
  ['an array', '[]'],
  ['a number', '42'],
  ['an unknown type', JSON.stringify({ type: 'admin' })],
  ['a missing to', JSON.stringify({ type: 'signal', kind: 'offer', object: 'AAAA' })],
  ['a path as device id', JSON.stringify({ type: 'signal', to: '../etc', kind: 'offer', object: 'AAAA' })],
  ['an unknown kind', JSON.stringify({ type: 'signal', to: 'b', kind: 'bye', object: 'AAAA' })],
  ['a non-canonical base64 object', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AAB=' })],
  ['base64 with junk', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AA$A' })],
  ['base64url letters', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AA-_' })],
  ['base64 without its padding', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AAA' })],
  ['base64 with a space', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AAAA AAAA' })],
  ['base64 with a newline', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AAAA\nAAAA' })],
  ['base64 with padding inside', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AA==AAAA' })],
  ['an empty object', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: '' })],
  ['an object as a number', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 7 })],
  ['an extra field', JSON.stringify({ type: 'signal', to: 'b', kind: 'offer', object: 'AAAA', x: 1 })],
  ['a bad tenant', JSON.stringify({ type: 'signal', to: 'b', tenant: '', kind: 'offer', object: 'AAAA' })],
  ['a lease that is not base64', JSON.stringify({ type: 'presence', lease: '!!' })],
  ['a prototype key', '{"type":"signal","to":"b","kind":"offer","object":"AAAA","__proto__":{}}'],
  ['a binary frame', Buffer.from([1, 2, 3])],
]

test('malformed frames are each refused with ERR_HUB_FRAME and audited; the hub keeps serving', async (t) => {
  const { hub, port, audit } = await startHub({ limits: { maxRefusals: 1000 } })
  const a = device('fuzzer')
  const b = device('tablet-b')
  const ca = await connect(port, a)
  const cb = await connect(port, b)
  t.teardown(async () => {
    await Promise.all([ca.close(), cb.close()])
    await hub.close()
  })
  for (const [what, frame] of MALFORMED) {
    const refused = next<HubRefusal>(ca, 'refused')
    ca.sendRaw(frame)
    t.is((await refused).code, 'ERR_HUB_FRAME', what)
  }
  t.is(audit.events.filter((e) => e.actor === 'fuzzer' && e.reason === 'ERR_HUB_FRAME').length, MALFORMED.length)
  await seen(ca, ['tablet-b'])
  const received = next<HubSignal>(cb, 'signal')
  ca.send('tablet-b', 'answer', signObject('test', Buffer.from('ok'), a.identity))
  t.is((await received).kind, 'answer')
})

test('the frame parsers refuse garbage with typed codes and never throw anything else', (t) => {
  for (const [, frame] of MALFORMED) {
    if (typeof frame !== 'string') continue
    const error = t.throws(() => parseClientFrame(frame)) as { code?: string } | undefined
    t.true(error?.code === 'ERR_HUB_FRAME' || error?.code === 'ERR_HUB_FRAME_SIZE')
  }
  const hubSide = ['{}', '{"type":"signal","from":"a","kind":"offer"}', '{"type":"error","code":"ERR_NOPE","message":"x"}', '{"type":"revoked","crlPem":5}', '{"type":"offline","deviceId":"a b"}', 'x'.repeat(600_000)]
  for (const frame of hubSide) {
    const error = t.throws(() => parseHubFrame(frame)) as { code?: string } | undefined
    t.true(error?.code === 'ERR_HUB_FRAME' || error?.code === 'ERR_HUB_FRAME_SIZE', frame.slice(0, 40))
  }
  // Seeded garbage: only typed refusals.
  let seed = 7
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  const alphabet = '{}[]":,abcdefghijklmnopqrstuvwxyz0123456789+/=-_ \\'
  for (let i = 0; i < 2000; i++) {
    const text = Array.from({ length: Math.floor(random() * 120) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')
    for (const parse of [parseClientFrame, parseHubFrame]) {
      try {
        parse(text)
      } catch (error) {
        t.true(['ERR_HUB_FRAME', 'ERR_HUB_FRAME_SIZE'].includes((error as { code?: string }).code ?? ''), text)
      }
    }
  }
  // A genuine frame round-trips.
  const frame = { type: 'signal' as const, to: 'b', kind: 'offer' as const, object: Buffer.from('xyz') }
  t.deepEqual(parseClientFrame(encodeFrame(frame)), frame)
})

test('the hub refuses a lease that is not the link device own, names another hub, or is older than the last', async (t) => {
  const { hub, port, audit } = await startHub()
  const a = device('tablet-a')
  const b = device('tablet-b')
  const ca = await connect(port, a)
  t.teardown(async () => {
    await ca.close()
    await hub.close()
  })
  const now = Date.now()
  const bLease = signPresenceLease({ deviceId: 'tablet-b', tenant: 'hotel-1', hubId: 'hub-1', seq: now, issuedAtMs: now, expiresAtMs: now + 30_000 }, b.identity)
  const replayed = next<HubRefusal>(ca, 'refused')
  ca.sendRaw(encodeFrame({ type: 'presence', lease: bLease }))
  t.is((await replayed).code, 'ERR_DEVICE_MISMATCH')
  const otherHub = next<HubRefusal>(ca, 'refused')
  ca.sendRaw(encodeFrame({ type: 'presence', lease: signPresenceLease({ deviceId: 'tablet-a', tenant: 'hotel-1', hubId: 'hub-9', seq: now + 1e6, issuedAtMs: now, expiresAtMs: now + 30_000 }, a.identity) }))
  t.is((await otherHub).code, 'ERR_PRESENCE_MISMATCH')
  const older = next<HubRefusal>(ca, 'refused')
  ca.sendRaw(encodeFrame({ type: 'presence', lease: signPresenceLease({ deviceId: 'tablet-a', tenant: 'hotel-1', hubId: 'hub-1', seq: 1, issuedAtMs: now, expiresAtMs: now + 30_000 }, a.identity) }))
  t.is((await older).code, 'ERR_PRESENCE_EXPIRED')
  t.is(audit.events.filter((e) => e.actor === 'tablet-a' && e.action === 'hub.presence' && e.outcome === 'deny').length, 3)
})

/**
 * A compromised hub: a real mutual-TLS WebSocket server with the hub's certificate that sends
 * the client what it likes.
 */
async function rogueHub(onClient: (send: (frame: string) => void) => void) {
  const wss = new WebSocketServer({ noServer: true })
  const { createServer } = await import('node:http')
  const http = createServer()
  // It answers the client's first frame (its own lease), so the client is listening by then.
  http.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => ws.once('message', () => onClient((frame) => ws.send(frame)))))
  const secure = createSecureServer({ identity: hubDevice.identity, trustPem }, (link: SecureStream) => http.emit('connection', link))
  const { port } = await secure.listen(0, '127.0.0.1')
  return { port, close: () => secure.close() }
}

test('a hub that rewrites or forges leases cannot make a device present: the client refuses each, and an expired lease means offline', async (t) => {
  const victim = device('tablet-v')
  const reader = device('tablet-r')
  const foreign = device('tablet-f', 'hotel-2')
  const rogue = await rogueHub((send) => {
    const now = Date.now()
    const genuine = signPresenceLease({ deviceId: 'tablet-v', tenant: 'hotel-1', hubId: 'hub-1', seq: 10, issuedAtMs: now, expiresAtMs: now + 3000 }, victim.identity)
    const rewritten = rewriteExpiry(genuine)
    const forged = signPresenceLease({ deviceId: 'tablet-v', tenant: 'hotel-1', hubId: 'hub-1', seq: 11, issuedAtMs: now, expiresAtMs: now + 600_000 }, hubDevice.identity)
    const otherTenant = signPresenceLease({ deviceId: 'tablet-f', tenant: 'hotel-2', hubId: 'hub-1', seq: 1, issuedAtMs: now, expiresAtMs: now + 60_000 }, foreign.identity)
    const expired = signPresenceLease({ deviceId: 'tablet-v', tenant: 'hotel-1', hubId: 'hub-1', seq: 12, issuedAtMs: now - 60_000, expiresAtMs: now - 1000 }, victim.identity)
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-v', lease: rewritten }))
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-v', lease: forged }))
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-f', lease: otherTenant }))
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-v', lease: expired }))
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-x', lease: genuine })) // a genuine lease under another name
    send(encodeFrame({ type: 'presence', deviceId: 'tablet-v', lease: genuine }))
  })
  const refusals: HubRefusal[] = []
  const client = await HubClient.connect({ host: '127.0.0.1', port: rogue.port, identity: reader.identity, trustPem })
  client.on('refused', (r) => refusals.push(r))
  t.teardown(async () => {
    await client.close()
    await rogue.close()
  })
  await next<HubPresence>(client, 'presence', online('tablet-v'))
  t.deepEqual(client.peers(), ['tablet-v'], 'only the genuine lease counts')
  t.deepEqual(
    refusals.map((r) => [r.deviceId, r.code]),
    [
      ['tablet-v', 'ERR_SIGNATURE'],
      ['tablet-v', 'ERR_PRESENCE_MISMATCH'],
      ['tablet-f', 'ERR_TENANT_MISMATCH'],
      ['tablet-v', 'ERR_PRESENCE_EXPIRED'],
      ['tablet-x', 'ERR_PRESENCE_MISMATCH'],
    ],
  )
  // The hub never renews it: the lease runs out and the device is offline.
  await next<HubPresence>(client, 'presence', offline('tablet-v'), 10_000)
  t.deepEqual(client.peers(), [])
})

/** The lease with its expiry moved (the body's last 8 bytes sit right before the signature). */
function rewriteExpiry(lease: Buffer): Buffer {
  const copy = Buffer.from(lease)
  // The signature is the last `len` bytes, preceded by its one-byte length.
  for (let len = 72; len >= 8; len--) {
    if (copy[copy.length - len - 1] === len && copy[copy.length - len] === 0x30) {
      copy[copy.length - len - 2]! ^= 0x40 // the last byte of expiresAt
      return copy
    }
  }
  throw new Error('no signature found')
}

test('the hub records into the one AuditLog: connections and refusals land in the hash chain, which verifies', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { AUDIT_MIGRATION, AuditLog, openDatabase } = await import('../src/index.js')
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-hub-audit-'))
  const db = openDatabase(join(dir, 'audit.db'), { migrations: [AUDIT_MIGRATION] })
  const log = new AuditLog(db)
  const hub = new HubServer({ identity: hubDevice.identity, trustPem, audit: log })
  const { port } = await hub.listen(0, '127.0.0.1')
  const a = device('tablet-a')
  const client = await connect(port, a)
  t.teardown(async () => {
    await client.close()
    await hub.close()
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const refused = next<HubRefusal>(client, 'refused')
  client.sendRaw('not json')
  await refused
  const records = log.recent(50)
  t.true(records.some((r) => r.actor === 'tablet-a' && r.action === 'hub.connect' && r.outcome === 'allow'))
  t.true(records.some((r) => r.actor === 'tablet-a' && r.action === 'hub.frame' && r.reason === 'ERR_HUB_FRAME'))
  t.true(log.verify() >= 2)
})
