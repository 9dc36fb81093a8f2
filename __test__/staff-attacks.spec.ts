// Attacks on the staff page's server, from a Node stand-in for the page speaking its frames over
// the real TLS listener: forged, replayed and second challenge answers, a revoked certificate,
// another tenant, a certificate without the staff role, malformed frames and enrollment bodies.
// Every refusal is typed and audited. The page itself runs in Chromium in staff.spec.ts.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import { request as httpsRequest } from 'node:https'

import * as x509 from '@peculiar/x509'

import test from 'ava'
import WebSocket from 'ws'

import { ZtError } from '../src/errors.js'
import { Signer, type DeviceCredential } from '../src/primitives/pki/index.js'
import { assemble, enrollRequestFor, hubChallenge, prepareObject, signObject, toBeSigned, verifyHubChallenge } from '../src/protocol/index.js'
import { RevocationSet, TrustStore } from '../src/primitives/pki/index.js'
import { createStack } from '../src/webrtc/index.js'
import { parsePageFrame } from '../src/staff/index.js'
import { echoDevice, staffSite, type StaffSite } from './helpers/staff-site.js'

/** The page's server speaks TLS 1.3 with ALPN http/1.1 and a certificate naming a device, not a host. */
const TLS_OPTIONS = { rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }

interface Frame {
  type: string
  [key: string]: unknown
}

/** A WebSocket to the staff server, collecting frames and its close. */
async function socket(site: StaffSite): Promise<{ ws: WebSocket; next(type?: string): Promise<Frame>; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`${site.staffUrl.replace('https', 'wss')}/staff/v1/ws`, TLS_OPTIONS)
  const queue: Frame[] = []
  const waiters: ((f: Frame) => void)[] = []
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Frame
    const waiter = waiters.shift()
    if (waiter !== undefined) waiter(frame)
    else queue.push(frame)
  })
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  let open = true
  void closed.then(() => {
    open = false
    for (const waiter of waiters.splice(0)) waiter({ type: 'closed' })
  })
  /** The next frame (of `type`, skipping others such as presence), or `{type: 'closed'}`. */
  const next = (type?: string): Promise<Frame> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type ?? 'frame'} within 10 s`)), 10_000)
      const take = (f: Frame): void => {
        if (type !== undefined && f.type !== type && f.type !== 'closed' && f.type !== 'error') {
          waiters.unshift(take)
          return
        }
        clearTimeout(timer)
        resolve(f)
      }
      let queued = queue.shift()
      while (queued !== undefined && type !== undefined && queued.type !== type && queued.type !== 'error') queued = queue.shift()
      if (queued !== undefined) take(queued)
      else if (!open) take({ type: 'closed' })
      else waiters.push(take)
    })
  return { ws, next, closed }
}

/** A staff credential enrolled by the site's CA (software key standing in for the page's). */
function staffCredential(site: StaffSite, deviceId: string, roles: string[] = ['staff'], tenant = site.tenant): DeviceCredential {
  const signer = Signer.generate()
  const enrollment = site.ca.enroll(enrollRequestFor(site.token(deviceId, roles, tenant), signer.buildCsr(deviceId, tenant)), 'test')
  return { certificateChainPem: `${enrollment.certificate.trim()}\n${enrollment.caChain.trim()}\n`, signer }
}

/** Says hello with `credential`'s chain and answers the challenge with `answer` (default: genuine). */
async function join(site: StaffSite, credential: DeviceCredential, answer?: (toBeSigned: Buffer) => Record<string, unknown>) {
  const conn = await socket(site)
  conn.ws.send(JSON.stringify({ type: 'hello', chain: credential.certificateChainPem }))
  const challenge = await conn.next('challenge')
  const tbs = Buffer.from(challenge.toBeSigned as string, 'base64')
  const signature = credential.signer.sign(tbs).toString('base64')
  conn.ws.send(JSON.stringify(answer?.(tbs) ?? { type: 'answer', signature }))
  return { ...conn, challenge, signature, reply: await conn.next() }
}

function denials(site: StaffSite, action = 'staff.join'): string[] {
  return site.ca
    .auditRecords(1000)
    .filter((r) => r.action === action && r.outcome === 'deny')
    .map((r) => r.reason)
}

test('a genuine answer is admitted; a second answer on the admitted connection is refused as a spent challenge', async (t) => {
  const site = await staffSite(t)
  const staff = staffCredential(site, 'tablet-1')
  const conn = await join(site, staff)
  t.is(conn.reply.type, 'welcome')
  t.like(conn.reply.identity as object, { deviceId: 'tablet-1', tenant: 'hotel-1' })
  conn.ws.send(JSON.stringify({ type: 'answer', signature: conn.signature }))
  t.like(await conn.next('error'), { type: 'error', code: 'ERR_HUB_CHALLENGE' })
  t.true(denials(site, 'staff.frame').includes('ERR_HUB_CHALLENGE'))
  conn.ws.close()
})

test('a forged challenge answer (another key over the victim chain, or garbage) is refused, audited, and the socket closed', async (t) => {
  const site = await staffSite(t)
  const victim = staffCredential(site, 'tablet-1')
  const thief = Signer.generate()
  const forged = await join(site, victim, (tbs) => ({ type: 'answer', signature: thief.sign(tbs).toString('base64') }))
  t.like(forged.reply, { type: 'error', code: 'ERR_SIGNATURE' })
  t.is((await forged.closed).code, 1008)
  const garbage = await join(site, victim, () => ({ type: 'answer', signature: Buffer.alloc(64, 7).toString('base64') }))
  t.like(garbage.reply, { type: 'error', code: 'ERR_SIGNATURE' })
  t.deepEqual(denials(site), ['ERR_SIGNATURE', 'ERR_SIGNATURE'])
  t.is(site.hub.connections, 0)
})

test('a replayed challenge answer is refused: an old signature, and an old complete answer object, on a new connection', async (t) => {
  const site = await staffSite(t)
  const staff = staffCredential(site, 'tablet-1')
  const first = await join(site, staff)
  t.is(first.reply.type, 'welcome')
  first.ws.close()
  // The recorded signature over the first connection's challenge.
  const replayed = await join(site, staff, () => ({ type: 'answer', signature: first.signature }))
  t.like(replayed.reply, { type: 'error', code: 'ERR_SIGNATURE' })
  // A complete hub-challenge object made for the first challenge's bytes (as an eavesdropper of
  // a Node staff tool could record it): signed, chained, but for another challenge.
  const firstBody = Buffer.from(first.challenge.toBeSigned as string, 'base64')
  const bodyOffset = firstBody.length - (2 + 'gateway'.length + 8 + 16)
  const oldObject = signObject('hub-challenge', firstBody.subarray(bodyOffset), staff)
  const replayedObject = await join(site, staff, () => ({ type: 'answer', object: oldObject.toString('base64') }))
  t.like(replayedObject.reply, { type: 'error', code: 'ERR_HUB_CHALLENGE' })
  t.deepEqual(denials(site).sort(), ['ERR_HUB_CHALLENGE', 'ERR_SIGNATURE'])
})

test('a revoked staff certificate cannot join, and an admitted page is cut from the hub when it is revoked', async (t) => {
  const site = await staffSite(t)
  const live = staffCredential(site, 'tablet-1')
  const admitted = await join(site, live)
  t.is(admitted.reply.type, 'welcome')
  t.is(site.hub.connections, 1)
  site.ca.revoke({ device: 'tablet-1', tenant: 'hotel-1' }, 'keyCompromise', 'test')
  site.applyRevocations()
  t.is((await admitted.closed).code, 1006)
  t.is(site.hub.connections, 0)
  const again = await join(site, live)
  t.like(again.reply, { type: 'error', code: 'ERR_CERT_REVOKED' })
  t.true(denials(site).includes('ERR_CERT_REVOKED'))
  t.true(site.ca.auditRecords(1000).some((r) => r.action === 'hub.revoked' && r.actor === 'tablet-1'))
})

test('a staff certificate of another tenant, or without the staff role, is refused', async (t) => {
  const site = await staffSite(t, { tenants: ['hotel-1', 'hotel-2'] })
  const stranger = staffCredential(site, 'tablet-9', ['staff'], 'hotel-2')
  const cross = await join(site, stranger)
  t.like(cross.reply, { type: 'error', code: 'ERR_TENANT_MISMATCH' })
  const node = staffCredential(site, 'kiosk-1', ['node'])
  const noRole = await join(site, node)
  t.like(noRole.reply, { type: 'error', code: 'ERR_FORBIDDEN' })
  t.deepEqual(denials(site).sort(), ['ERR_FORBIDDEN', 'ERR_TENANT_MISMATCH'])
  t.is(site.hub.connections, 0)
})

test('an admitted page signs through prepare/assemble: a wrong signature is refused with its frame id, a spent object cannot be signed again, and a genuine offer is answered through both guards', async (t) => {
  const site = await staffSite(t)
  const device = await echoDevice(t, site, 'node-1')
  const staff = staffCredential(site, 'tablet-1')
  const conn = await join(site, staff)
  t.is(conn.reply.type, 'welcome')
  // Its presence lease first (prepared, signed, assembled): the hub relays to present devices only.
  conn.ws.send(JSON.stringify({ type: 'prepare', id: 0, what: 'presence' }))
  const lease = await conn.next('tbs')
  conn.ws.send(JSON.stringify({ type: 'signed', id: 0, signature: staff.signer.sign(Buffer.from(lease.toBeSigned as string, 'base64')).toString('base64') }))
  t.like(await conn.next('sent'), { id: 0 })
  // A real offer (node-datachannel's), standing in for the page's RTCPeerConnection.
  const session = await createStack('node-datachannel').offer()
  t.teardown(() => session.close())
  const sdp = await session.localDescription()
  conn.ws.send(JSON.stringify({ type: 'prepare', id: 1, what: 'offer', to: 'node-1', sdp }))
  const tbs = await conn.next('tbs')
  t.is(tbs.id, 1)
  conn.ws.send(JSON.stringify({ type: 'signed', id: 1, signature: Signer.generate().sign(Buffer.from(tbs.toBeSigned as string, 'base64')).toString('base64') }))
  t.like(await conn.next('error'), { type: 'error', code: 'ERR_SIGNATURE', id: 1 })
  // The prepared object is spent: the genuine signature now finds nothing waiting.
  conn.ws.send(JSON.stringify({ type: 'signed', id: 1, signature: staff.signer.sign(Buffer.from(tbs.toBeSigned as string, 'base64')).toString('base64') }))
  t.like(await conn.next('error'), { type: 'error', code: 'ERR_NOT_FOUND', id: 1 })
  // A genuine offer goes through, and the device's guard accepts it (it answers).
  conn.ws.send(JSON.stringify({ type: 'prepare', id: 2, what: 'offer', to: 'node-1', sdp }))
  const tbs2 = await conn.next('tbs')
  conn.ws.send(JSON.stringify({ type: 'signed', id: 2, signature: staff.signer.sign(Buffer.from(tbs2.toBeSigned as string, 'base64')).toString('base64') }))
  const sent = await conn.next('sent')
  t.regex(sent.digest as string, /^[0-9a-f]{64}$/)
  // The device's guard verified the offer and answered; the page's guard verified the answer.
  const answer = await conn.next('answer')
  t.like(answer, { from: 'node-1', offerDigest: sent.digest })
  t.regex(answer.sdp as string, /a=fingerprint:sha-256/)
  t.deepEqual(device.refusals, [])
  conn.ws.close()
})

test('malformed page frames get typed errors and end an unauthenticated connection', async (t) => {
  const site = await staffSite(t)
  const cases: [string | Buffer, string][] = [
    ['not json', 'ERR_HUB_FRAME'],
    ['[1,2]', 'ERR_HUB_FRAME'],
    ['{"type":"nope"}', 'ERR_HUB_FRAME'],
    ['{"type":"hello"}', 'ERR_HUB_FRAME'],
    ['{"type":"hello","chain":"x","extra":1}', 'ERR_HUB_FRAME'],
    ['{"type":"hello","chain":"not a certificate"}', 'ERR_'],
    ['{"type":"answer","signature":"AAAA"}', 'ERR_UNAUTHENTICATED'],
    ['{"type":"prepare","id":1,"what":"presence"}', 'ERR_UNAUTHENTICATED'],
    [Buffer.from([1, 2, 3]), 'ERR_HUB_FRAME'],
    [JSON.stringify({ type: 'hello', chain: 'x'.repeat(70_000) }), 'ERR_HUB_FRAME_SIZE'],
  ]
  for (const [data, code] of cases) {
    const conn = await socket(site)
    conn.ws.send(data)
    const reply = await conn.next()
    const closed = await conn.closed
    if (reply.type === 'error') t.true(String(reply.code).startsWith(code), `${String(data).slice(0, 40)} → ${String(reply.code)}`)
    else t.true(closed.code === 1009 && code === 'ERR_HUB_FRAME_SIZE', `${String(data).slice(0, 40)} → close ${closed.code}`)
  }
  t.true(denials(site).length >= cases.length - 1)
})

test('parsePageFrame refuses garbage with typed errors and never throws anything else', (t) => {
  let state = 12345
  const next = (): number => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const samples = ['{"type":"signed","id":-1,"signature":"AA=="}', '{"type":"signed","id":1.5,"signature":"AA=="}', '{"type":"signed","id":1,"signature":"A A"}', '{"type":"prepare","id":1,"what":"offer","to":"../x","sdp":"v=0"}', '{"type":"answer"}', '{"type":"answer","signature":"AA==","object":"AA=="}']
  for (const sample of samples) t.throws(() => parsePageFrame(sample), { instanceOf: ZtError, code: 'ERR_HUB_FRAME' }, sample)
  for (let i = 0; i < 5000; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(next() * 200) }, () => Math.floor(next() * 256)))
    try {
      parsePageFrame(bytes)
    } catch (error) {
      t.true(error instanceof ZtError && error.code.startsWith('ERR_HUB_FRAME'), String(error))
    }
  }
})

test('the enrollment route refuses malformed bodies and bad tokens with typed, audited errors', async (t) => {
  const site = await staffSite(t)
  const post = (body: string): Promise<{ status: number; code: string }> =>
    new Promise((resolve, reject) => {
      const request = httpsRequest(`${site.staffUrl}/staff/v1/enroll`, { method: 'POST', ...TLS_OPTIONS, headers: { 'content-type': 'application/json' } }, (response) => {
        let text = ''
        response.on('data', (c: Buffer) => (text += String(c)))
        response.on('end', () => resolve({ status: response.statusCode ?? 0, code: (JSON.parse(text) as { code: string }).code }))
      })
      request.on('error', reject)
      request.end(body)
    })
  t.like(await post('nope'), { status: 400, code: 'ERR_BAD_REQUEST' })
  t.like(await post('{"token":1,"csr":"x"}'), { status: 400, code: 'ERR_BAD_REQUEST' })
  t.like(await post(JSON.stringify({ token: 'x', csr: 'y', more: 1 })), { status: 400, code: 'ERR_BAD_REQUEST' })
  const bad = await post(JSON.stringify({ token: 'not-a-token', csr: Signer.generate().buildCsr('tablet-1', 'hotel-1') }))
  t.true(bad.status >= 400 && bad.status < 500 && bad.code.startsWith('ERR_TOKEN'), JSON.stringify(bad))
  t.true(denials(site, 'staff.enroll').length >= 4)
  const big = await post(JSON.stringify({ token: 'x'.repeat(20_000), csr: 'y' }))
  t.is(big.status, 413)
})

test('a socket that never answers its challenge is closed with ERR_TIMEOUT, audited', async (t) => {
  const site = await staffSite(t, { challengeMaxAgeMs: 300 })
  const staff = staffCredential(site, 'tablet-1')
  const conn = await socket(site)
  conn.ws.send(JSON.stringify({ type: 'hello', chain: staff.certificateChainPem }))
  t.is((await conn.next('challenge')).type, 'challenge')
  t.like(await conn.next('error'), { code: 'ERR_TIMEOUT' })
  t.is((await conn.closed).code, 1008)
  t.deepEqual(denials(site), ['ERR_TIMEOUT'])
})

test('the prepare/assemble and challenge entry points take garbage with typed errors only', async (t) => {
  const site = await staffSite(t)
  const staff = staffCredential(site, 'tablet-1')
  const trust = TrustStore.fromPem(site.ca.trustBundle())
  const issued = hubChallenge('gateway')
  let state = 99
  const next = (): number => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32)
  const typed = (call: () => unknown): void => {
    try {
      call()
    } catch (error) {
      t.true(error instanceof ZtError, String(error))
    }
  }
  const genuine = (() => {
    const prepared = prepareObject('hub-challenge', staff.certificateChainPem, issued)
    return assemble(prepared, staff.signer.sign(toBeSigned(prepared)))
  })()
  t.is(verifyHubChallenge(genuine, issued, trust, new RevocationSet(), { expectedTenant: 'hotel-1' }, 30_000).peer.deviceId, 'tablet-1')
  for (let i = 0; i < 2000; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(next() * 120) }, () => Math.floor(next() * 256)))
    const mutated = Buffer.from(genuine)
    mutated[Math.floor(next() * mutated.length)]! ^= 1 + Math.floor(next() * 255)
    typed(() => verifyHubChallenge(bytes, issued, trust, new RevocationSet(), {}, 30_000))
    // A flip in the embedded site CA (not under the signature; verify_peer decides the chain
    // from the trust bundle) may still verify: then it says exactly what the genuine one says.
    typed(() => {
      const verified = verifyHubChallenge(mutated, issued, trust, new RevocationSet(), {}, 30_000)
      t.deepEqual([verified.peer.deviceId, verified.body], ['tablet-1', issued])
    })
    typed(() => verifyHubChallenge(genuine, bytes, trust, new RevocationSet(), {}, 30_000))
    t.throws(() => assemble(prepareObject('hub-challenge', staff.certificateChainPem, issued), bytes), { instanceOf: ZtError })
    typed(() => prepareObject('hub-challenge', bytes.toString('latin1'), issued))
  }
  t.throws(() => prepareObject('rotate', staff.certificateChainPem, issued), { instanceOf: ZtError, code: 'ERR_WIRE_LABEL' })
  const spent = prepareObject('test', staff.certificateChainPem, Buffer.from('x'))
  assemble(spent, staff.signer.sign(toBeSigned(spent)))
  t.throws(() => assemble(spent, Buffer.alloc(64, 1)), { instanceOf: ZtError, code: 'ERR_CLOSED' })
})

test('the page, its module and both browser bundles are served over the core TLS with a strict content security policy', async (t) => {
  const site = await staffSite(t)
  const get = (path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> =>
    new Promise((resolve, reject) => {
      const request = httpsRequest(`${site.staffUrl}${path}`, { ...TLS_OPTIONS }, (response) => {
        let body = ''
        response.on('data', (c: Buffer) => (body += String(c)))
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
      })
      request.on('error', reject)
      request.end()
    })
  const page = await get('/staff/')
  t.is(page.status, 200)
  t.regex(String(page.headers['content-security-policy']), /default-src 'self'/)
  t.regex(page.body, /\/staff\/app\.js/)
  for (const path of ['/staff/app.js', '/staff/vendor/reflect.js', '/staff/vendor/x509.js']) {
    const asset = await get(path)
    t.is(asset.status, 200, path)
    t.regex(String(asset.headers['content-type']), /javascript/, path)
  }
  t.regex((await get('/staff/app.js')).body, /extractable|generateKey\(\{ name: 'ECDSA', namedCurve: 'P-256' \}, false/)
  t.like(await get('/nowhere'), { status: 404 })
})

test('a non-extractable WebCrypto key (Node webcrypto, P1363 signatures, a CSR by @peculiar/x509) enrolls through the route and joins, as the page does', async (t) => {
  const site = await staffSite(t)
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' }
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
  t.false(keys.privateKey.extractable)
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=staff', keys: keys as unknown as NonNullable<Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys']>, signingAlgorithm: ecdsa })
  const enrolled = await new Promise<{ chainPem: string; identity: { deviceId: string } }>((resolve, reject) => {
    const request = httpsRequest(`${site.staffUrl}/staff/v1/enroll`, { method: 'POST', ...TLS_OPTIONS, headers: { 'content-type': 'application/json' } }, (response) => {
      let text = ''
      response.on('data', (c: Buffer) => (text += String(c)))
      response.on('end', () => resolve(JSON.parse(text) as { chainPem: string; identity: { deviceId: string } }))
    })
    request.on('error', reject)
    request.end(JSON.stringify({ token: site.token('tablet-5'), csr: csr.toString('pem') }))
  })
  t.is(enrolled.identity.deviceId, 'tablet-5')
  const conn = await socket(site)
  conn.ws.send(JSON.stringify({ type: 'hello', chain: enrolled.chainPem }))
  const challenge = await conn.next('challenge')
  const signature = Buffer.from(await webcrypto.subtle.sign(ecdsa, keys.privateKey, Buffer.from(challenge.toBeSigned as string, 'base64')))
  t.is(signature.length, 64, 'WebCrypto signs in IEEE P1363 r ‖ s')
  conn.ws.send(JSON.stringify({ type: 'answer', signature: signature.toString('base64') }))
  t.like(await conn.next('welcome'), { identity: { deviceId: 'tablet-5', tenant: 'hotel-1' } })
  t.is(site.hub.connections, 1)
  conn.ws.close()
})
