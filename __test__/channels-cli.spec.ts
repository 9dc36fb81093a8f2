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
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-echo-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Echo' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const device of ['gw-1', 'tablet-7']) {
    await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: device, tenant: 'hotel-1' }).token, dir: join(dir, device), passphrase: 'pw' })
  }
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
