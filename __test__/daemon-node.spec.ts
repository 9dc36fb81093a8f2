import test, { type ExecutionContext } from 'ava'
import Database from 'better-sqlite3'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect as connectTcp, type AddressInfo } from 'node:net'
import { join } from 'node:path'

import { CaService } from '../src/ca/index.js'
import { createEnrollmentServer } from '../src/ca/server.js'
import { connectSecure } from '../src/channels/endpoints.js'
import type { SecureStream } from '../src/channels/noise-link.js'
import { runNode } from '../src/daemon/node.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { createPolicyDecisionPoint, parsePolicy } from '../src/policy/index.js'
import { serveCa } from './helpers/ca-site.js'
import { startCli, workdir, writeFile, type CliProcess } from './helpers/daemon-process.js'

const WITH_CONNECTOR = join(import.meta.dirname, 'helpers', 'node-with-connector.ts')
/** The node with no connector at all (`ztmesh node` plugs the WebRTC connector in). */
const BARE = join(import.meta.dirname, 'helpers', 'node-bare.ts')

/** Runs the node in this process until it returns (configuration refusals return at once). */
async function refusal(argv: string[]): Promise<{ status: number; code?: string; message?: string }> {
  let stderr = ''
  const status = await runNode({ argv, stdout: { write: () => true }, stderr: { write: (line: string) => (stderr += line) } })
  return { status, ...(stderr === '' ? {} : (JSON.parse(stderr) as { code: string; message: string })) }
}

/** A CA of no fixed tenant (so another tenant's device can be made) serving on loopback. */
async function site(t: ExecutionContext) {
  const dir = workdir(t)
  await CaService.init({ dir: join(dir, 'ca'), name: 'Node Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const url = await serveCa(t, ca)
  const device = async (deviceId: string, tenant = 'hotel-1') => {
    const { token } = ca.createToken({ deviceId, tenant, roles: ['staff'] })
    // The CA API proves the tenant of the devices it enrolls: another tenant's on a server of its own.
    const api = tenant === 'hotel-1' ? url : await serveCa(t, ca, { tenant })
    return DeviceIdentity.enroll({ url: api, token, dir: join(dir, deviceId), passphrase: 'pw' })
  }
  const nodeConfig = (name: string, extra = '') =>
    writeFile(
      dir,
      `${name}.yaml`,
      `log:\n  level: info\nmetrics:\n  listen: 127.0.0.1:0\nstore: ${join(dir, name)}\nenroll:\n  url: ${url}\n  token: ${ca.createToken({ deviceId: name, tenant: 'hotel-1', roles: ['staff'] }).token}\nlisten: 127.0.0.1:0\nrevocations:\n  refreshMs: 200\nlimits:\n  maxOfferBytes: 256\n${extra}`,
    )
  return { dir, ca, url, device, nodeConfig }
}

/** The local API's address from a ready event. */
function apiOf(ready: Record<string, unknown>): { host: string; port: number } {
  const [host, port] = String(ready.listen).split(':')
  return { host: host!, port: Number(port) }
}

/** One HTTP request over an established secure link. */
function over(link: SecureStream, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ createConnection: () => link as never, method, path, headers: { ...(body !== undefined && { 'content-type': 'application/octet-stream' }), ...headers } }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function offer(node: { host: string; port: number }, identity: DeviceIdentity, body?: Buffer | string, headers: Record<string, string> = {}, path = '/offer', method = 'POST') {
  const link = await connectSecure({ ...node, identity: identity.credential(), trustPem: identity.trustPem })
  try {
    return await over(link, method, path, body, headers)
  } finally {
    link.destroy()
  }
}

function auditRows(store: string): Array<{ actor: string; action: string; outcome: string; reason: string }> {
  const db = new Database(join(store, 'audit.db'), { readonly: true, fileMustExist: true })
  try {
    return db.prepare('SELECT actor, action, outcome, reason FROM audit ORDER BY seq').all() as Array<{ actor: string; action: string; outcome: string; reason: string }>
  } finally {
    db.close()
  }
}

async function stop(node: CliProcess): Promise<number | null> {
  node.child.kill('SIGTERM')
  return (await node.exited).code
}

test('node: every configuration mistake is refused with ERR_CONFIG naming its key, exit status 78', async (t) => {
  const dir = workdir(t)
  const store = join(dir, 'store')
  const cases: Array<[string[], RegExp]> = [
    [['--config', writeFile(dir, 'empty.yaml', 'log:\n  level: info\n')], /config: store/],
    [['--store', store], /config: enroll: .* holds no identity/],
    [['--config', writeFile(dir, 'http.yaml', `store: ${store}\nenroll:\n  url: http://gw.lan:8443\n  token: ztm2.x\n`)], /config: enroll\.url/],
    [['--config', writeFile(dir, 'token.yaml', `store: ${store}\nenroll:\n  url: https://gw.lan:8443\n`)], /config: enroll\.token/],
    [['--config', writeFile(dir, 'typo.yaml', `store: ${store}\ngatway: https://gw.lan:8443\n`)], /gatway.*unknown key|unknown key.*gatway/],
    [['--config', writeFile(dir, 'limits.yaml', `store: ${store}\nlimits:\n  maxOfferBytes: 10\n`)], /config: limits\.maxOfferBytes/],
    [['--config', writeFile(dir, 'keystore.yaml', `store: ${store}\nidentity:\n  keystore: floppy\n`)], /config: identity\.keystore/],
    [['--store', store, '--listen', 'nowhere'], /config: listen: expected HOST:PORT/],
    [['--store', store, '--bootstrap', '127.0.0.1:7443,nowhere'], /config: discovery\.bootstrap\[1\]/],
    [['--store', store, '--gateway', 'ftp://gw.lan'], /config: gateway/],
    [['--store', store, '--mdns=maybe'], /flag --mdns \(discovery\.mdns\): expected true or false/],
    [['--store', store, '--colour', 'red'], /flag --colour: unknown flag/],
  ]
  for (const [argv, message] of cases) {
    const result = await refusal(argv)
    t.is(result.status, 78, argv.join(' '))
    t.is(result.code, 'ERR_CONFIG', argv.join(' '))
    t.regex(result.message ?? '', message, argv.join(' '))
  }
})

test.serial('node: enrolls from its configuration on the first start, restarts without enrolling again, and refuses offers when no signaling guard is plugged in', async (t) => {
  const { dir, ca, device, nodeConfig } = await site(t)
  const config = nodeConfig('node-1')
  const first = startCli(t, ['--config', config], { script: BARE })
  const ready = await first.next((e) => e.event === 'ready')
  t.is(first.events()[0]!.event, 'ready', 'ready is the first event')
  t.like(ready, { daemon: 'node', deviceId: 'node-1', tenant: 'hotel-1', keystore: 'software' })

  // Fail closed: no connector, no answer.
  const tablet = await device('tablet-1')
  const refused = await offer(apiOf(ready), tablet, 'an offer')
  t.is(refused.status, 403)
  t.like(JSON.parse(refused.body.toString()), { code: 'ERR_POLICY_DENIED' })
  t.like(await first.next((e) => e.event === 'rejected'), { peer: 'tablet-1', code: 'ERR_POLICY_DENIED' })
  const health = await offer(apiOf(ready), tablet, undefined, {}, '/v1/health', 'GET')
  t.is(health.status, 200)
  t.like(JSON.parse(health.body.toString()), { ok: true, deviceId: 'node-1' })
  t.is(await stop(first), 0)

  // The token is spent: a second enrollment would fail. The node opens what it has.
  const second = startCli(t, ['--config', config], { script: BARE })
  const again = await second.next((e) => e.event === 'ready')
  t.is(again.serial, ready.serial)
  t.is(ca.listCertificates({ device: 'node-1' }).length, 1)
  t.is(await stop(second), 0)
  t.true(auditRows(join(dir, 'node-1')).some((row) => row.action === 'local-api.offer' && row.outcome === 'deny' && row.reason === 'ERR_POLICY_DENIED'))
})

test.serial('node: POST /offer hands the offer and the link peer to the signaling seam, and refuses malformed bodies and refused offers with typed codes, each audited', async (t) => {
  const { dir, device, nodeConfig } = await site(t)
  const node = startCli(t, ['--config', nodeConfig('node-2')], { script: WITH_CONNECTOR })
  const ready = await node.next((e) => e.event === 'ready')
  const api = apiOf(ready)
  const tablet = await device('tablet-2')

  const answered = await offer(api, tablet, 'hello')
  t.is(answered.status, 200)
  t.is(answered.body.toString(), 'answer:tablet-2:hello', 'the seam sees the link peer the TLS handshake proved')

  const cases: Array<[Parameters<typeof offer>, number, string]> = [
    [[api, tablet, 'forged'], 401, 'ERR_SIGNATURE'],
    [[api, tablet, 'other-tenant'], 403, 'ERR_TENANT_MISMATCH'],
    [[api, tablet, 'crash'], 500, 'ERR_INTERNAL'],
    [[api, tablet, ''], 400, 'ERR_BAD_REQUEST'],
    [[api, tablet, 'hello', { 'content-type': 'text/plain' }], 400, 'ERR_BAD_REQUEST'],
    [[api, tablet, 'x'.repeat(300)], 413, 'ERR_PAYLOAD_TOO_LARGE'],
    [[api, tablet, undefined, {}, '/offer', 'GET'], 405, 'ERR_METHOD_NOT_ALLOWED'],
    [[api, tablet, 'hello', {}, '/elsewhere'], 404, 'ERR_NOT_FOUND'],
  ]
  for (const [args, status, code] of cases) {
    const answer = await offer(...args)
    t.is(answer.status, status, code)
    const body = JSON.parse(answer.body.toString()) as { code: string; message: string }
    t.is(body.code, code)
    t.false(body.message.includes('secret'), 'an internal error does not leak its message')
    t.like(await node.next((e) => e.event === 'rejected'), { peer: 'tablet-2', code })
  }
  const metrics = await (await fetch(`http://${String(ready.metrics)}/metrics`)).text()
  t.regex(metrics, /^ztmesh_node_offers_total\{outcome="refused",code="ERR_SIGNATURE"\} 1$/m)
  t.regex(metrics, /^ztmesh_node_offers_total\{outcome="answered",code="ok"\} 1$/m)
  t.is(await stop(node), 0)
  const rows = auditRows(join(dir, 'node-2')).filter((row) => row.action === 'local-api.offer')
  t.deepEqual(
    rows.map((row) => [row.actor, row.outcome, row.reason]),
    [['tablet-2', 'allow', 'ok'], ...cases.map(([, status, code]) => ['tablet-2', status === 500 ? 'error' : 'deny', code])],
  )
})

test.serial('node: the local API refuses a client without a certificate and a client of another tenant before any request, audited', async (t) => {
  const { dir, device, nodeConfig } = await site(t)
  const node = startCli(t, ['--config', nodeConfig('node-3')], { script: WITH_CONNECTOR })
  const api = apiOf(await node.next((e) => e.event === 'ready'))

  // Plain HTTP: no TLS, no certificate, no answer.
  const plain = await new Promise<string>((resolve) => {
    const socket = connectTcp(api, () => socket.write('POST /offer HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 5\r\n\r\nhello'))
    let received = ''
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
    socket.on('close', () => resolve(received))
    socket.on('error', () => {})
  })
  t.false(plain.startsWith('HTTP/'), 'no HTTP answer to a client that did not prove an identity')
  const rejected = await node.next((e) => e.event === 'rejected')
  t.is(rejected.peer, null)
  t.regex(String(rejected.code), /^ERR_TLS_/)

  // Another tenant of the same CA, whose own policy would let it in: the node refuses it.
  const intruder = await device('intruder', 'hotel-2')
  const access = createPolicyDecisionPoint({ policy: parsePolicy({ version: 1, tenant: 'hotel-2', rules: [{ id: 'reach-hotel-1', effect: 'allow', actions: ['*'], peerTenants: ['hotel-1'] }] }), audit: { append: () => undefined } })
  const outcome = await connectSecure({ ...api, identity: intruder.credential(), trustPem: intruder.trustPem, policy: { expectedTenant: 'hotel-1' }, access }).then(
    (link) => {
      link.on('error', () => {})
      return over(link, 'POST', '/offer', 'hello').then((answer) => `answered ${answer.status}`, (error: Error) => `failed: ${error.message}`)
    },
    (error: Error) => `failed: ${error.message}`,
  )
  t.regex(outcome, /^failed/)
  const crossTenant = await node.next((e) => e.event === 'rejected')
  t.true(crossTenant.code === 'ERR_TENANT_MISMATCH' || crossTenant.code === 'ERR_POLICY_DENIED', String(crossTenant.code))
  t.is(await stop(node), 0)
  const rows = auditRows(join(dir, 'node-3'))
  t.true(rows.some((row) => row.action === 'local-api.link' && row.outcome === 'deny' && row.reason.startsWith('ERR_TLS_')), 'the failed handshake is audited')
  t.true(
    rows.some((row) => (row.action === 'local-api.link' && row.reason === 'ERR_TENANT_MISMATCH') || (row.actor === 'intruder' && row.action === 'link.accept' && row.outcome === 'deny')),
    'the cross-tenant refusal is audited',
  )
  t.false(rows.some((row) => row.action === 'local-api.offer'), 'no request reached the API')
})

test.serial('node: a revocation reaches the node: a revoked peer loses its live link, and when this device is revoked it emits revoked and stops serving', async (t) => {
  const { ca, device, nodeConfig } = await site(t)
  const node = startCli(t, ['--config', nodeConfig('node-4')], { script: WITH_CONNECTOR })
  const ready = await node.next((e) => e.event === 'ready')
  const api = apiOf(ready)
  const tablet = await device('tablet-4')

  t.is((await offer(api, tablet, 'before')).status, 200)
  // A live, idle link of the tablet: only the revocation can close it (the request timeout is 10 s, checked every 30 s).
  const link = await connectSecure({ ...api, identity: tablet.credential(), trustPem: tablet.trustPem })
  link.on('error', () => {})
  const closed = new Promise<void>((resolve) => link.once('close', () => resolve()))
  ca.revoke({ device: 'tablet-4' }, 'keyCompromise')
  ca.crl()
  await closed
  t.pass('the node closed the revoked peer’s live link')
  const after = await offer(api, tablet, 'after').then((answer) => answer.status, (error: Error) => error.message)
  t.not(after, 200, 'and refuses its new handshakes')

  ca.revoke({ device: 'node-4' }, 'keyCompromise')
  ca.crl()
  await node.next((e) => e.event === 'revoked')
  const accepted = await new Promise<boolean>((resolve) => {
    const socket = connectTcp(api, () => (socket.destroy(), resolve(true)))
    socket.on('error', () => resolve(false))
  })
  t.false(accepted, 'the local API is closed')
  const health = await fetch(`http://${String(ready.metrics)}/healthz`)
  t.is(health.status, 503)
  t.like(await health.json(), { failing: { identity: 'this device is revoked' } })
  t.is(node.events().filter((e) => e.event === 'revoked').length, 1, 'reported once')
  t.is(await stop(node), 0)
})

test.serial('node: restarted while the gateway is unreachable, it enforces the CRL it fetched last', async (t) => {
  const dir = workdir(t)
  await CaService.init({ dir: join(dir, 'ca'), name: 'Offline Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca, tenant: 'hotel-1', rateLimit: { perSecond: 1000, burst: 1000 } })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const closeServer = () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())))
  t.teardown(() => (server.listening ? closeServer() : undefined))
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const enroll = (deviceId: string) => DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId, tenant: 'hotel-1' }).token, dir: join(dir, deviceId), passphrase: 'pw' })
  const lost = await enroll('lost-tablet')
  const kept = await enroll('kept-tablet')
  const config = writeFile(dir, 'node.yaml', `metrics:\n  listen: 127.0.0.1:0\nstore: ${join(dir, 'node-5')}\nenroll:\n  url: ${url}\n  token: ${ca.createToken({ deviceId: 'node-5', tenant: 'hotel-1' }).token}\nlisten: 127.0.0.1:0\nrevocations:\n  refreshMs: 200\n`)

  const first = startCli(t, ['--config', config], { script: WITH_CONNECTOR })
  const api = apiOf(await first.next((e) => e.event === 'ready'))
  t.is((await offer(api, lost, 'hello')).status, 200)
  ca.revoke({ device: 'lost-tablet' }, 'keyCompromise')
  ca.crl()
  let refused = false
  for (let i = 0; i < 100 && !refused; i++) {
    refused = await offer(api, lost, 'hello').then((answer) => answer.status !== 200, () => true)
    if (!refused) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.true(refused, 'the node applied the revocation')
  t.is(await stop(first), 0)

  await closeServer()
  const second = startCli(t, ['--config', config], { script: WITH_CONNECTOR })
  const api2 = apiOf(await second.next((e) => e.event === 'ready'))
  t.is((await offer(api2, kept, 'hello')).status, 200, 'it serves')
  t.not(await offer(api2, lost, 'hello').then((answer) => answer.status, (error: Error) => error.message), 200, 'with the revocations it fetched last')
  t.regex(second.stderr(), /the CRL fetched last is in force/)
  t.is(await stop(second), 0)
})

test.serial('node: a gateway that serves an older CRL (rolled back, or an old copy of the CA) cannot un-revoke a peer: ERR_REVOCATION_ROLLBACK, audited', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Rollback Hotel' })
  const ca = await CaService.open({ dir: caDir })
  t.teardown(() => ca.close())
  const serve = async (service: CaService, port = 0) => {
    const server = createEnrollmentServer({ ca: service, tenant: 'hotel-1', rateLimit: { perSecond: 1000, burst: 1000 } })
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    const close = () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())))
    t.teardown(() => (server.listening ? close() : undefined))
    return { port: (server.address() as AddressInfo).port, close }
  }
  let served = await serve(ca)
  const url = `https://127.0.0.1:${served.port}`
  const lost = await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: 'lost-tablet', tenant: 'hotel-1' }).token, dir: join(dir, 'lost-tablet'), passphrase: 'pw' })
  const config = writeFile(dir, 'node.yaml', `metrics:\n  listen: 127.0.0.1:0\nstore: ${join(dir, 'node-6')}\nenroll:\n  url: ${url}\n  token: ${ca.createToken({ deviceId: 'node-6', tenant: 'hotel-1' }).token}\nlisten: 127.0.0.1:0\nrevocations:\n  refreshMs: 200\n`)
  ca.crl()
  // The attacker's copy of the CA (its database with its write-ahead log), from before the revocation.
  cpSync(caDir, join(dir, 'ca-old'), { recursive: true })

  const node = startCli(t, ['--config', config], { script: WITH_CONNECTOR })
  const api = apiOf(await node.next((e) => e.event === 'ready'))
  ca.revoke({ device: 'lost-tablet' }, 'keyCompromise')
  ca.crl()
  let refused = false
  for (let i = 0; i < 100 && !refused; i++) {
    refused = await offer(api, lost, 'hello').then((answer) => answer.status !== 200, () => true)
    if (!refused) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.true(refused, 'the node applied the revocation')

  // The old copy answers on the gateway's address now.
  await served.close()
  const old = await CaService.open({ dir: join(dir, 'ca-old') })
  t.teardown(() => old.close())
  served = await serve(old, served.port)
  let audited = false
  for (let i = 0; i < 100 && !audited; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    audited = auditRows(join(dir, 'node-6')).some((row) => row.action === 'revocations.refresh' && row.reason === 'ERR_REVOCATION_ROLLBACK')
  }
  t.true(audited, 'the older CRL is refused and audited')
  t.not(await offer(api, lost, 'hello').then((answer) => answer.status, (error: Error) => error.message), 200, 'the peer stays revoked')
  t.is(await stop(node), 0)
})

test.serial('node: --connect and --send go to the peer connector once the node is ready, and ready is the first event', async (t) => {
  const { nodeConfig } = await site(t)
  const node = startCli(t, ['--config', nodeConfig('node-7'), '--connect', 'node-8', '--send', 'good morning'], { script: WITH_CONNECTOR })
  await node.next((e) => e.event === 'connector' && e.call === 'send')
  const events = node.events().filter((e) => e.event !== 'connector' || e.call !== 'setRevocations')
  t.like(events[0], { event: 'ready', deviceId: 'node-7' })
  t.like(events[1], { event: 'connector', call: 'connect', deviceId: 'node-8' })
  t.like(events[2], { event: 'connector', call: 'send', data: 'good morning' })
  t.is(await stop(node), 0)
})

test.serial('node: offers are rate limited per peer identity (429 ERR_RATE_LIMITED), audited once per peer and minute, and other peers are still served', async (t) => {
  const { device, nodeConfig } = await site(t)
  const config = nodeConfig('node-9')
  writeFileSync(config, readFileSync(config, 'utf8').replace('maxOfferBytes: 256', 'maxOfferBytes: 256\n  offerBurst: 2\n  offersPerMinute: 1'))
  const node = startCli(t, ['--config', config], { script: WITH_CONNECTOR })
  const api = apiOf(await node.next((e) => e.event === 'ready'))
  const [flooder, other] = await Promise.all([device('flooder'), device('colleague')])
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await offer(api, flooder, `offer ${i}`)).status)
  t.deepEqual(statuses, [200, 200, 429, 429, 429, 429])
  t.is((await offer(api, other, 'hello')).status, 200, 'the limit is per identity, not per address')
  t.like(await node.next((e) => e.event === 'rejected'), { peer: 'flooder', code: 'ERR_RATE_LIMITED' })
  t.is(await stop(node), 0)
  t.is(node.events().filter((e) => e.event === 'rejected').length, 1, 'reported once')
  const limited = auditRows(join(config, '..', 'node-9')).filter((row) => row.reason === 'ERR_RATE_LIMITED')
  t.is(limited.length, 1, 'audited once')
})

test.serial('node: a reload (SIGHUP, as sent to refresh the CRL) does not refill a flooding peer\'s offer budget; a changed rate does', async (t) => {
  const { device, nodeConfig } = await site(t)
  const config = nodeConfig('node-11')
  writeFileSync(config, readFileSync(config, 'utf8').replace('maxOfferBytes: 256', 'maxOfferBytes: 256\n  offerBurst: 2\n  offersPerMinute: 1'))
  const node = startCli(t, ['--config', config], { script: WITH_CONNECTOR })
  const api = apiOf(await node.next((e) => e.event === 'ready'))
  const flooder = await device('flooder')
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await offer(api, flooder, `offer ${i}`)).status)
  t.deepEqual(statuses, [200, 200, 429])
  node.child.kill('SIGHUP')
  t.like(await node.next((e) => e.event === 'reloaded'), { ok: true })
  t.is((await offer(api, flooder, 'after reload')).status, 429, 'the same configuration reloaded keeps the bucket empty')
  writeFileSync(config, readFileSync(config, 'utf8').replace('offerBurst: 2', 'offerBurst: 3'))
  node.child.kill('SIGHUP')
  t.like(await node.next((e) => e.event === 'reloaded'), { ok: true })
  t.is((await offer(api, flooder, 'new rate')).status, 200, 'a changed rate starts new buckets')
  t.is(await stop(node), 0)
})

test.serial('node: a flood of connections that never complete a TLS handshake is audited as its first refusal and one count, not a row each', async (t) => {
  const { dir, nodeConfig } = await site(t)
  const node = startCli(t, ['--config', nodeConfig('node-10')], { script: WITH_CONNECTOR })
  const ready = await node.next((e) => e.event === 'ready')
  const api = apiOf(ready)
  const plainRequest = () =>
    new Promise<void>((resolve) => {
      const socket = connectTcp(api, () => socket.write('POST /offer HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 5\r\n\r\nhello'))
      socket.on('close', () => resolve())
      socket.on('error', () => {})
      // The TLS layer waits for the rest of the "record" these bytes announce: the client gives up.
      setTimeout(() => socket.destroy(), 200)
    })
  for (let i = 0; i < 8; i++) await plainRequest()
  let counted = 0
  for (let i = 0; i < 100 && counted < 8; i++) {
    const metrics = await (await fetch(`http://${String(ready.metrics)}/metrics`)).text()
    counted = [...metrics.matchAll(/^ztmesh_node_link_refusals_total\{code="[A-Z_]+"\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0)
    if (counted < 8) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.is(counted, 8, 'every refusal is counted')
  t.is(node.events().filter((e) => e.event === 'rejected').length, 1, 'reported once')
  t.is(await stop(node), 0)
  const db = new Database(join(dir, 'node-10', 'audit.db'), { readonly: true })
  const rows = db.prepare("SELECT reason, detail FROM audit WHERE action = 'local-api.link' ORDER BY seq").all() as Array<{ reason: string; detail: string }>
  db.close()
  t.is(rows.length, 2, JSON.stringify(rows))
  t.deepEqual(JSON.parse(rows[1]!.detail), { count: 7, tally: true })
})
