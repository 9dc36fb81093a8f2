import test from 'ava'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createPrivateKey } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import { CaDirectory } from '../src/ca/directory.js'
import { CaService } from '../src/ca/index.js'
import { createEnrollmentServer } from '../src/ca/server.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { Keystore } from '../src/primitives/keystore/index.js'

const CLI = join(process.cwd(), 'dist/cli/main.js')

function start(t: import('ava').ExecutionContext, args: string[]): ChildProcessWithoutNullStreams & { lines: AsyncIterableIterator<string> } {
  const child = spawn('node', [CLI, ...args], { env: { ...process.env, ZTMESH_PASSPHRASE: 'pw' } })
  t.teardown(() => child.kill('SIGKILL'))
  return Object.assign(child, { lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() })
}

async function nextJson(lines: AsyncIterableIterator<string>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no line in time')), timeoutMs).unref())
  const { value } = await Promise.race([lines.next(), timer])
  return JSON.parse(value as string) as Record<string, unknown>
}

for (const protocol of ['noise', 'tls'] as const) test(`echo-server and connect over ${protocol}; a CRL file change closes the live link within 2 s`, async (t) => {
  const { dir, ca } = await fleet(t, 'Echo', { 'gw-1': ['hotel-1', []], 'tablet-7': ['hotel-1', []] })
  writeFileSync(join(dir, 'crl.pem'), ca.crl().pem)
  const trust = join(dir, 'ca', 'trust.pem')
  const echo = start(t, ['echo-server', '--store', join(dir, 'gw-1'), '--trust', trust, '--listen', '127.0.0.1:0', '--protocol', protocol, '--crl', join(dir, 'crl.pem')])
  const listening = await nextJson(echo.lines)
  t.is(listening.event, 'listening')
  const client = start(t, ['connect', '--store', join(dir, 'tablet-7'), '--trust', trust, '--to', `127.0.0.1:${listening.port as number}`, '--protocol', protocol, '--tenant', 'hotel-1', '--device', 'gw-1'])
  const accepted = await nextJson(echo.lines)
  t.like(accepted, { event: 'accepted', protocol, kxGroup: 'X25519MLKEM768', postQuantum: true, peer: { deviceId: 'tablet-7', tenant: 'hotel-1' } })
  client.stdin.write(`hello through ${protocol}\n`)
  const echoed = await client.lines.next()
  t.is(echoed.value, `hello through ${protocol}`)

  const exited = new Promise<number>((resolve) => client.once('exit', () => resolve(Date.now())))
  ca.revoke({ device: 'tablet-7' }, 'keyCompromise')
  writeFileSync(join(dir, 'crl.new'), ca.crl().pem)
  const revokedAt = Date.now()
  renameSync(join(dir, 'crl.new'), join(dir, 'crl.pem'))
  const closedAt = await Promise.race([exited, new Promise<number>((resolve) => setTimeout(() => resolve(Number.POSITIVE_INFINITY), 5000))])
  t.true(closedAt - revokedAt < 2000, `the live link closed ${closedAt - revokedAt} ms after the CRL changed`)

  // New handshakes of the revoked device are refused at once; the server keeps serving.
  const again = start(t, ['connect', '--store', join(dir, 'tablet-7'), '--trust', trust, '--to', `127.0.0.1:${listening.port as number}`, '--protocol', protocol])
  const code = await new Promise<number>((resolve) => again.once('exit', (c) => resolve(c ?? -1)))
  t.not(code, 0)

  if (protocol === 'tls') {
    // openssl s_client with the tablet's own certificate and key talks to the echo server.
    const keys = await Keystore.open(join(dir, 'gw-1', 'keystore.ztks'), 'pw')
    const der = keys.exportPrivateKey('device')
    writeFileSync(join(dir, 'gw.key'), createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
    der.fill(0)
    const s = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${listening.port as number}`, '-cert', join(dir, 'gw-1', 'cert.pem'), '-key', join(dir, 'gw.key'), '-cert_chain', join(dir, 'gw-1', 'ca.pem'), '-CAfile', trust, '-alpn', 'ztmesh/1', '-tls1_3', '-quiet', '-verify_return_error'])
    t.teardown(() => s.kill('SIGKILL'))
    let out = ''
    s.stdout.on('data', (c: Buffer) => (out += c.toString()))
    s.stdin.write('from openssl\n')
    const seen = await nextJson(echo.lines)
    t.like(seen, { event: 'accepted', protocol: 'tls', peer: { deviceId: 'gw-1' } })
    for (let i = 0; i < 100 && !out.includes('from openssl'); i++) await new Promise((r) => setTimeout(r, 50))
    t.true(out.includes('from openssl'), 'openssl got its line echoed')
  }
})

test('an older, validly signed CRL put back in the file is refused with ERR_REVOCATION_ROLLBACK, live and after a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-rollback-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Rollback' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const device of ['gw-1', 'tablet-7']) {
    await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: device, tenant: 'hotel-1' }).token, dir: join(dir, device), passphrase: 'pw' })
  }
  const before = ca.crl().pem
  ca.revoke({ device: 'tablet-7' }, 'keyCompromise')
  const after = ca.crl().pem
  const crl = join(dir, 'crl.pem')
  const replace = (pem: string) => {
    writeFileSync(join(dir, 'crl.new'), pem)
    renameSync(join(dir, 'crl.new'), crl)
  }
  replace(after)
  const trust = join(dir, 'ca', 'trust.pem')
  const serve = () => start(t, ['echo-server', '--store', join(dir, 'gw-1'), '--trust', trust, '--listen', '127.0.0.1:0', '--crl', crl])
  const connect = async (port: number) => {
    const client = start(t, ['connect', '--store', join(dir, 'tablet-7'), '--trust', trust, '--to', `127.0.0.1:${port}`])
    return new Promise<number>((resolve) => client.once('exit', (c) => resolve(c ?? -1)))
  }
  const echo = serve()
  const errors = createInterface({ input: echo.stderr })[Symbol.asyncIterator]()
  const listening = await nextJson(echo.lines)
  t.is(listening.event, 'listening')
  t.true(existsSync(join(dir, 'gw-1', 'crl-state.bin')), 'the CRL number applied is saved next to the store')

  // The attack, live: the file goes back to the CRL from before the revocation.
  replace(before)
  t.like(await nextJson(errors), { event: 'crl-refused', code: 'ERR_REVOCATION_ROLLBACK' })
  t.not(await connect(listening.port as number), 0, 'the revoked device is still refused')

  // The attack across a restart: the server refuses to start on the older CRL.
  echo.kill('SIGTERM')
  await new Promise((resolve) => echo.once('exit', resolve))
  const restarted = serve()
  let stderr = ''
  restarted.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exit = await new Promise<number>((resolve) => restarted.once('close', (c) => resolve(c ?? -1)))
  t.is(exit, 1)
  t.like(JSON.parse(stderr.trim().split('\n').at(-1)!), { code: 'ERR_REVOCATION_ROLLBACK' })

  // With the current CRL back, it serves again and still refuses the revoked device.
  replace(after)
  const again = serve()
  const listeningAgain = await nextJson(again.lines)
  t.is(listeningAgain.event, 'listening')
  t.not(await connect(listeningAgain.port as number), 0)
})

test('a CRL whose nextUpdate passed 400 days ago stops echo-server (ERR_REVOCATION_STALE) unless --crl-fail-open, which is announced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-stale-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Stale' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const device of ['gw-1', 'tablet-7']) {
    await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: device, tenant: 'hotel-1' }).token, dir: join(dir, device), passphrase: 'pw' })
  }
  // The attack: an authentic CRL of the site CA, long past its nextUpdate.
  const site = await new CaDirectory(join(dir, 'ca')).siteCa()
  const day = 86_400_000
  const now = Date.now()
  writeFileSync(join(dir, 'crl.pem'), site.issueCrl(9, [], now - 407 * day, now - 400 * day).pem)
  const trust = join(dir, 'ca', 'trust.pem')
  const serve = (extra: string[]) => start(t, ['echo-server', '--store', join(dir, 'gw-1'), '--trust', trust, '--listen', '127.0.0.1:0', '--crl', join(dir, 'crl.pem'), ...extra])
  const closed = serve([])
  let stderr = ''
  closed.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  t.is(await new Promise<number>((resolve) => closed.once('close', (c) => resolve(c ?? -1))), 1)
  t.like(JSON.parse(stderr.trim().split('\n').at(-1)!), { code: 'ERR_REVOCATION_STALE' })

  const open = serve(['--crl-fail-open'])
  const events = createInterface({ input: open.stderr })[Symbol.asyncIterator]()
  t.like(await nextJson(events), { event: 'revocation-fail-open' })
  const listening = await nextJson(open.lines)
  t.is(listening.event, 'listening')
  const client = start(t, ['connect', '--store', join(dir, 'tablet-7'), '--trust', trust, '--to', `127.0.0.1:${listening.port as number}`, '--tenant', 'hotel-1', '--device', 'gw-1'])
  t.like(await nextJson(open.lines), { event: 'accepted', peer: { deviceId: 'tablet-7' } })
  client.kill('SIGKILL')
})

test('echo-server refuses bad options with a typed error', async (t) => {
  const bad = start(t, ['echo-server', '--store', '/nonexistent', '--trust', '/nonexistent', '--protocol', 'carrier-pigeon'])
  let stderr = ''
  bad.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number>((resolve) => bad.once('exit', (c) => resolve(c ?? -1)))
  t.is(code, 1)
  t.regex(stderr, /ERR_INVALID_ARG/)
})

/** A CLI process and every JSON line it wrote on stdout and stderr, as they come. */
function watch(t: import('ava').ExecutionContext, args: string[]) {
  const child = start(t, args)
  child.stdin.on('error', () => {}) // a process that closed its stdin
  const out: Record<string, unknown>[] = []
  const err: Record<string, unknown>[] = []
  /** Every stdout line, JSON or not (what `connect` got from its peer). */
  const raw: string[] = []
  const collect = (into: Record<string, unknown>[]) => (line: string) => {
    if (into === out) raw.push(line)
    try {
      into.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // the echoed payload, not an event
    }
  }
  void (async () => {
    for await (const line of child.lines) collect(out)(line)
  })().catch(() => {})
  createInterface({ input: child.stderr }).on('line', collect(err))
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)))
  /** Waits for the first line on `stream` that matches `like` (10 s at most). */
  const line = async (stream: 'out' | 'err', like: (event: Record<string, unknown>) => boolean) => {
    for (let i = 0; i < 400; i++) {
      const found = (stream === 'out' ? out : err).find(like)
      if (found !== undefined) return found
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`no matching line on std${stream} of ${args[0]}: ${JSON.stringify(stream === 'out' ? out : err)}`)
  }
  return { child, out, err, raw, exited, line }
}

/** A CA, its enrollment API, and devices enrolled in `dir` (`{ device: [tenant, roles] }`). */
async function fleet(t: import('ava').ExecutionContext, name: string, devices: Record<string, [string, string[]]>) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-echo-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const [device, [tenant, roles]] of Object.entries(devices)) {
    await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: device, tenant, roles }).token, dir: join(dir, device), passphrase: 'pw' })
  }
  const trust = join(dir, 'ca', 'trust.pem')
  const serve = async (command: string, device: string, protocol: string, ...extra: string[]) => {
    const server = watch(t, [command, '--store', join(dir, device), '--trust', trust, '--listen', '127.0.0.1:0', '--protocol', protocol, ...extra])
    const listening = await server.line('out', (e) => e.event === 'listening')
    return { ...server, port: listening.port as number }
  }
  const connect = (device: string, port: number, protocol: string, ...extra: string[]) =>
    watch(t, ['connect', '--store', join(dir, device), '--trust', trust, '--to', `127.0.0.1:${port}`, '--protocol', protocol, ...extra])
  return { dir, ca, serve, connect }
}

/** Writes a policy document to a file in `dir` and returns its path. */
function policyFile(dir: string, name: string, document: unknown): string {
  writeFileSync(join(dir, name), JSON.stringify(document))
  return join(dir, name)
}

for (const protocol of ['noise', 'tls'] as const) test(`over ${protocol}, echo-server and connect with no policy refuse a device of another tenant of the same CA (ERR_POLICY_DENIED, audited); --policy naming the tenant lets it in`, async (t) => {
  const { dir, serve, connect } = await fleet(t, 'Zero Trust', { 'gw-1': ['hotel-1', []], 'tablet-7': ['hotel-1', []], 'tablet-9': ['hotel-2', []], 'gw-9': ['hotel-2', []] })
  const echo = await serve('echo-server', 'gw-1', protocol)

  // Attack, server role: tablet-9 of hotel-2, whose own policy would let it reach hotel-1, connects.
  const reachHotel1 = policyFile(dir, 'reach-hotel-1.json', { version: 1, tenant: 'hotel-2', rules: [{ id: 'hotel-1-gateways', effect: 'allow', actions: ['link.connect'], peerTenants: ['hotel-1'] }] })
  const intruder = connect('tablet-9', echo.port, protocol, '--policy', reachHotel1)
  t.like(await echo.line('err', (e) => e.event === 'audit'), { actor: 'tablet-9', action: 'link.accept', outcome: 'deny', reason: 'cross-tenant', detail: { tenant: 'hotel-2', 'resource.tenant': 'hotel-1', 'resource.service': 'echo' } })
  t.like(await echo.line('err', (e) => e.event === 'refused'), { code: 'ERR_POLICY_DENIED' })
  intruder.child.stdin.write('let me in\n')
  await intruder.exited
  t.false(echo.out.some((e) => e.event === 'accepted'), 'the intruder was never accepted')
  t.deepEqual(intruder.raw, [], 'nothing came back to the intruder')

  // Its own tenant's tablet is accepted, and that decision is audited too.
  const own = connect('tablet-7', echo.port, protocol, '--peer', 'gw-1')
  t.like(await echo.line('out', (e) => e.event === 'accepted'), { peer: { deviceId: 'tablet-7', tenant: 'hotel-1' } })
  t.like(await echo.line('err', (e) => e.event === 'audit' && e.actor === 'tablet-7'), { action: 'link.accept', outcome: 'allow', reason: 'rule:same-tenant' })
  own.child.kill('SIGKILL')

  // Attack, client role: a hotel-2 server (whose policy admits hotel-1) answers a hotel-1 client.
  const admitHotel1 = policyFile(dir, 'admit-hotel-1.json', { version: 1, tenant: 'hotel-2', rules: [{ id: 'hotel-1-guests', effect: 'allow', actions: ['link.accept'], peerTenants: ['hotel-1'] }] })
  const foreign = await serve('echo-server', 'gw-9', protocol, '--policy', admitHotel1)
  const lured = connect('tablet-7', foreign.port, protocol)
  t.is(await lured.exited, 1)
  t.like(await lured.line('err', (e) => e.event === 'audit'), { actor: 'gw-9', action: 'link.connect', outcome: 'deny', reason: 'cross-tenant' })
  t.like(await lured.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_POLICY_DENIED' })

  // Cross-tenant access through an explicit policy, on both ends.
  const partner = policyFile(dir, 'partner.json', { version: 1, tenant: 'hotel-1', rules: [{ id: 'partner-gw', effect: 'allow', actions: ['link.connect'], devices: ['gw-9'], peerTenants: ['hotel-2'] }] })
  const invited = connect('tablet-7', foreign.port, protocol, '--policy', partner)
  t.like(await foreign.line('out', (e) => e.event === 'accepted'), { peer: { deviceId: 'tablet-7', tenant: 'hotel-1' } })
  invited.child.stdin.write('across tenants\n')
  for (let i = 0; i < 400 && !invited.raw.includes('across tenants'); i++) await new Promise((r) => setTimeout(r, 25))
  t.deepEqual(invited.raw, ['across tenants'])
  t.like(await invited.line('err', (e) => e.event === 'connected'), { peer: { deviceId: 'gw-9', tenant: 'hotel-2' } })
  t.like(await invited.line('err', (e) => e.event === 'audit'), { outcome: 'allow', reason: 'rule:partner-gw' })
})

for (const protocol of ['noise', 'tls'] as const) test(`over ${protocol}, attest-responder answers only gateway identities of its tenant; connect --role gateway and --peer refuse a server that is not the gateway`, async (t) => {
  const { dir, serve, connect } = await fleet(t, 'Gateways', { 'gw-1': ['hotel-1', ['gateway']], 'kiosk-4': ['hotel-1', []], 'tablet-7': ['hotel-1', []], 'gw-9': ['hotel-2', ['gateway']] })
  const responder = await serve('attest-responder', 'kiosk-4', protocol)

  // Attack: any device of the tenant queues TPM work on the node.
  const tablet = connect('tablet-7', responder.port, protocol)
  t.like(await responder.line('err', (e) => e.event === 'audit'), { actor: 'tablet-7', action: 'link.accept', outcome: 'deny', reason: 'no-rule', detail: { 'resource.service': 'attest' } })
  t.like(await responder.line('err', (e) => e.event === 'refused'), { code: 'ERR_POLICY_DENIED' })
  await tablet.exited
  // Attack: another tenant's gateway (a gateway role, but not of hotel-1).
  const reachHotel1 = policyFile(dir, 'reach-hotel-1.json', { version: 1, tenant: 'hotel-2', rules: [{ id: 'hotel-1', effect: 'allow', actions: ['link.connect'], peerTenants: ['hotel-1'] }] })
  const foreignGateway = connect('gw-9', responder.port, protocol, '--policy', reachHotel1)
  t.like(await responder.line('err', (e) => e.event === 'audit' && e.actor === 'gw-9'), { outcome: 'deny', reason: 'cross-tenant' })
  await foreignGateway.exited
  t.false(responder.out.some((e) => e.event === 'accepted'))
  // Its own gateway is answered.
  const gateway = connect('gw-1', responder.port, protocol)
  t.like(await responder.line('out', (e) => e.event === 'accepted'), { peer: { deviceId: 'gw-1', tenant: 'hotel-1', roles: ['gateway'] } })
  gateway.child.kill('SIGKILL')

  // A client that means to reach the gateway names it; a server that is not it is refused.
  const kioskEcho = await serve('echo-server', 'kiosk-4', protocol)
  const byRole = connect('tablet-7', kioskEcho.port, protocol, '--role', 'gateway')
  t.is(await byRole.exited, 1)
  t.like(await byRole.line('err', (e) => e.event === 'audit'), { actor: 'kiosk-4', action: 'link.connect', outcome: 'deny', reason: 'no-rule' })
  t.like(await byRole.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_POLICY_DENIED' })
  const byDevice = connect('tablet-7', kioskEcho.port, protocol, '--peer', 'gw-1')
  t.is(await byDevice.exited, 1)
  t.like(await byDevice.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_DEVICE_MISMATCH' })
  const gatewayEcho = await serve('echo-server', 'gw-1', protocol)
  const named = connect('tablet-7', gatewayEcho.port, protocol, '--role', 'gateway')
  t.like(await named.line('err', (e) => e.event === 'connected'), { peer: { deviceId: 'gw-1', roles: ['gateway'] } })
  named.child.kill('SIGKILL')
})

for (const protocol of ['noise', 'tls'] as const) test(`over ${protocol}, connect refuses a revoked server: by --crl FILE, and by the CA's CRL when given none; a CRL it cannot use refuses the connection`, async (t) => {
  const { dir, ca, serve, connect } = await fleet(t, 'Revoked Servers', { 'gw-1': ['hotel-1', []], 'tablet-7': ['hotel-1', []] })
  const echo = await serve('echo-server', 'gw-1', protocol)
  const before = connect('tablet-7', echo.port, protocol)
  t.like(await before.line('err', (e) => e.event === 'connected'), { peer: { deviceId: 'gw-1' } })
  before.child.kill('SIGKILL')

  ca.revoke({ device: 'gw-1' }, 'keyCompromise')
  writeFileSync(join(dir, 'crl.pem'), ca.crl().pem)
  const byFile = connect('tablet-7', echo.port, protocol, '--crl', join(dir, 'crl.pem'))
  t.is(await byFile.exited, 1)
  t.like(await byFile.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_CERT_REVOKED' })
  const byCa = connect('tablet-7', echo.port, protocol)
  t.is(await byCa.exited, 1)
  t.like(await byCa.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_CERT_REVOKED' })

  // Fail closed: a CRL file that is not a CRL refuses the connection instead of skipping the check.
  writeFileSync(join(dir, 'garbage.pem'), 'not a CRL')
  const garbage = connect('tablet-7', echo.port, protocol, '--crl', join(dir, 'garbage.pem'))
  t.is(await garbage.exited, 1)
  t.false(garbage.err.some((e) => e.event === 'connected'))
  t.true(garbage.err.some((e) => typeof e.code === 'string' && e.code !== 'ERR_INTERNAL'), JSON.stringify(garbage.err))
  // A store that knows no CRL URL connects only with --crl: no silent empty revocation set.
  rmSync(join(dir, 'tablet-7', 'config.json'))
  const unknown = connect('tablet-7', echo.port, protocol)
  t.is(await unknown.exited, 1)
  t.like(await unknown.line('err', (e) => typeof e.code === 'string'), { code: 'ERR_INVALID_ARG' })
})
