import test from 'ava'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createPrivateKey } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

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
  const server = createEnrollmentServer({ ca, tenant: 'hotel-1' })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
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

test('echo-server refuses bad options with a typed error', async (t) => {
  const bad = start(t, ['echo-server', '--store', '/nonexistent', '--trust', '/nonexistent', '--protocol', 'carrier-pigeon'])
  let stderr = ''
  bad.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise<number>((resolve) => bad.once('exit', (c) => resolve(c ?? -1)))
  t.is(code, 1)
  t.regex(stderr, /ERR_INVALID_ARG/)
})
