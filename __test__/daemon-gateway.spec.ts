import test from 'ava'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { verifyAuditCheckpoint } from '../src/audit/index.js'
import { CaDirectory, CaService, RootDirectory } from '../src/ca/index.js'
import { runGateway } from '../src/daemon/gateway.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { requestCa } from '../src/identity/http.js'
import { inspectCertificate, RevocationSet, TrustStore, verifyPeer } from '../src/primitives/pki/index.js'
import { caFetch, serveCa } from './helpers/ca-site.js'
import { startCli, workdir, writeFile } from './helpers/daemon-process.js'

const HUB_GATEWAY = join(import.meta.dirname, 'helpers', 'gateway-with-hub.ts')

/** Runs the gateway in this process until it returns (configuration refusals return at once). */
async function refusal(argv: string[]): Promise<{ status: number; code?: string; message?: string }> {
  let stderr = ''
  const status = await runGateway({ argv, stdout: { write: () => true }, stderr: { write: (line: string) => (stderr += line) } })
  return { status, ...(stderr === '' ? {} : (JSON.parse(stderr) as { code: string; message: string })) }
}

function gatewayYaml(caDir: string, extra = '', listen = '127.0.0.1:0'): string {
  return `log:\n  level: info\nmetrics:\n  listen: 127.0.0.1:0\nca:\n  dir: ${caDir}\n  listen: ${listen}\n  tenant: hotel-1\nrevocations:\n  pollMs: 200\n${extra}`
}

test('gateway: every configuration mistake is refused with ERR_CONFIG naming its key, exit status 78', async (t) => {
  const dir = workdir(t)
  const ca = join(dir, 'ca')
  const cases: Array<[string[], RegExp]> = [
    [['--config', writeFile(dir, 'no-tenant.yaml', `ca:\n  dir: ${ca}\n`)], /config: ca\.tenant/],
    [['--config', writeFile(dir, 'typo.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\n  lisen: 127.0.0.1:1\n`)], /ca\.lisen.*unknown key|unknown key.*lisen/],
    [['--config', writeFile(dir, 'listen.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\n  listen: nowhere\n`)], /config: ca\.listen: expected HOST:PORT/],
    [['--config', writeFile(dir, 'tenant.yaml', `ca:\n  dir: ${ca}\n  tenant: "hotel 1"\n`)], /config: ca\.tenant: expected a tenant name/],
    [['--config', writeFile(dir, 'url.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\n  url: http://gw.lan:8443\n`)], /config: ca\.url/],
    [['--config', writeFile(dir, 'poll.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\nrevocations:\n  pollMs: 5\n`)], /config: revocations\.pollMs/],
    [['--config', writeFile(dir, 'redis.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\nhub:\n  redis: http://127.0.0.1:6379\n`)], /config: hub\.redis/],
    [['--config', writeFile(dir, 'keystore.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\nidentity:\n  keystore: floppy\n`)], /config: identity\.keystore/],
    [['--config', writeFile(dir, 'nodes.yaml', `ca:\n  dir: ${ca}\n  tenant: hotel-1\nreattest:\n  nodes:\n    - { deviceId: n1, host: 127.0.0.1, port: 99999 }\n`)], /config: reattest\.nodes\[0\]\.port/],
    [['--dir', ca, '--listen', '127.0.0.1:1', '--tenant', 'hotel-1', '--colour', 'red'], /flag --colour: unknown flag/],
    [['--dir', ca, '--listen', 'nowhere', '--tenant', 'hotel-1'], /config: ca\.listen/],
  ]
  for (const [argv, message] of cases) {
    const result = await refusal(argv)
    t.is(result.status, 78, argv.join(' '))
    t.is(result.code, 'ERR_CONFIG', argv.join(' '))
    t.regex(result.message ?? '', message, argv.join(' '))
  }
})

test.serial('gateway: the first start enrolls the gateway with its own site CA (device gateway, role gateway), a restart reuses that identity, and its audit checkpoints are signed with it', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Gateway Hotel', tenants: ['hotel-1'] })
  const config = writeFile(dir, 'gateway.yaml', gatewayYaml(caDir))

  const first = startCli(t, ['gateway', '--config', config])
  const ready = await first.next((e) => e.event === 'ready')
  t.like(ready, { daemon: 'gateway', identity: { deviceId: 'gateway', tenant: 'hotel-1', keystore: 'software' } })
  t.regex(String(ready.ca), /^https:\/\/127\.0\.0\.1:\d+$/)
  const serial = (ready.identity as { serial: string }).serial
  const cert = inspectCertificate(readFileSync(join(caDir, 'gateway', 'cert.pem'), 'utf8'))
  t.deepEqual(cert.roles, ['gateway'])
  t.is(cert.serial, serial)
  // It chains to the site's root like any device's certificate.
  const peer = verifyPeer(readFileSync(join(caDir, 'gateway', 'cert.pem'), 'utf8') + readFileSync(join(caDir, 'gateway', 'ca.pem'), 'utf8'), TrustStore.fromPem(new CaDirectory(caDir).trustBundle()), new RevocationSet(), { expectedDevice: 'gateway' })
  t.like(peer, { deviceId: 'gateway', tenant: 'hotel-1' })
  first.child.kill('SIGTERM')
  t.like(await first.next((e) => e.event === 'stopped'), { outcome: 'clean' })
  t.is((await first.exited).code, 0)

  // The stop signed a checkpoint over the audit head with the gateway's key.
  const checkpoint = readFileSync(join(caDir, 'audit.checkpoint'))
  const verified = verifyAuditCheckpoint(checkpoint, TrustStore.fromPem(new CaDirectory(caDir).trustBundle()), undefined, { expectedDevice: 'gateway', expectedTenant: 'hotel-1' })
  t.is(verified.peer.serial, serial)
  t.is(verified.checkpoint.logId, 'gateway/hotel-1')

  const second = startCli(t, ['gateway', '--config', config])
  const again = await second.next((e) => e.event === 'ready')
  t.is((again.identity as { serial: string }).serial, serial, 'the same identity, not a new enrollment')
  second.child.kill('SIGTERM')
  t.is((await second.exited).code, 0)
  const trust = TrustStore.fromPem(new CaDirectory(caDir).trustBundle())
  const ca = await CaService.open({ dir: caDir, audit: { checkpoints: { logId: 'gateway/hotel-1', trust, policy: { expectedDevice: 'gateway', expectedTenant: 'hotel-1' } } } })
  t.teardown(() => ca.close())
  t.is(ca.listCertificates({ device: 'gateway' }).length, 1, 'one gateway certificate across restarts')
  t.is(ca.verifyAudit(readFileSync(join(caDir, 'audit.checkpoint'))) > 0, true, 'the audit chain verifies against the latest signed checkpoint')
})

test.serial('gateway: SIGHUP reloads the log level and the CRL poll; a change to a fixed key is refused naming it; SIGTERM stops cleanly with status 0', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Reload Hotel', tenants: ['hotel-1'] })
  const config = writeFile(dir, 'gateway.yaml', gatewayYaml(caDir))
  const gateway = startCli(t, ['gateway', '--config', config])
  const ready = await gateway.next((e) => e.event === 'ready')

  writeFile(dir, 'gateway.yaml', gatewayYaml(caDir).replace('level: info', 'level: debug').replace('pollMs: 200', 'pollMs: 300'))
  gateway.child.kill('SIGHUP')
  t.like(await gateway.next((e) => e.event === 'reloaded'), { ok: true, failed: [] })

  writeFile(dir, 'gateway.yaml', gatewayYaml(caDir, '', '127.0.0.1:1'))
  gateway.child.kill('SIGHUP')
  const refused = await gateway.next((e) => e.event === 'reloaded')
  t.like(refused, { ok: false, code: 'ERR_CONFIG' })
  t.regex(String(refused.message), /ca\.listen: cannot change while the daemon runs/)
  // Still serving on the address it started with.
  const rootFingerprint = inspectCertificate(new CaDirectory(caDir).trustBundle()).spkiSha256
  const crl = await requestCa(new URL('/v1/crl', String(ready.ca)), { method: 'GET', headers: {} }, { ca: { rootFingerprint, tenant: 'hotel-1' } })
  t.is(crl.status, 200)
  t.regex(crl.body.toString(), /BEGIN X509 CRL/)

  gateway.child.kill('SIGTERM')
  t.like(await gateway.next((e) => e.event === 'stopped'), { outcome: 'clean' })
  t.deepEqual(await gateway.exited, { code: 0, signal: null })
  t.true(existsSync(join(caDir, 'audit.checkpoint')), 'the stop flushed and sealed the audit log')
})

test.serial('gateway: the hub slot starts with the gateway identity and is handed every new CRL, also one made by ztmesh ca revoke from another process', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Hub Hotel', tenants: ['hotel-1'] })
  const gateway = startCli(t, ['--config', writeFile(dir, 'gateway.yaml', gatewayYaml(caDir))], { script: HUB_GATEWAY })
  t.like(await gateway.next((e) => e.event === 'hub' && e.call === 'start'), { identity: 'gateway', revocations: true })
  t.like(await gateway.next((e) => e.event === 'hub' && e.call === 'setRevocations'), { crl: true })
  await gateway.next((e) => e.event === 'ready')

  // The operator enrolls a device, then revokes it from another process.
  const ca = await CaService.open({ dir: caDir })
  try {
    const { token } = ca.createToken({ deviceId: 'lost-tablet', tenant: 'hotel-1' })
    const url = await serveCa(t, ca)
    await DeviceIdentity.enroll({ url, token, dir: join(dir, 'tablet'), passphrase: 'pw' })
    ca.revoke({ device: 'lost-tablet' }, 'keyCompromise')
    ca.crl()
  } finally {
    ca.close()
  }
  t.like(await gateway.next((e) => e.event === 'hub' && e.call === 'setRevocations'), { crl: true })
  t.regex(String((await gateway.next((e) => e.event === 'crl')).crlNumber), /^\d+$/)
  gateway.child.kill('SIGTERM')
  await gateway.next((e) => e.event === 'hub' && e.call === 'stop')
  t.is((await gateway.exited).code, 0)
})

test('the CA API serves the offline root CRL at GET /v1/root-crl (404 ERR_NOT_FOUND before one is installed), and a device applies it: a revoked site CA vouches for nothing', async (t) => {
  const dir = workdir(t)
  const root = new RootDirectory(join(dir, 'root'))
  await RootDirectory.create({ dir: join(dir, 'root'), name: 'Acme' })
  const caDir = join(dir, 'ca')
  const csr = await CaService.createSiteKey({ dir: caDir, name: 'Split Hotel', tenants: ['hotel-1'] })
  const signed = await root.signSite(csr, { tenants: ['hotel-1'] })
  await CaService.install({ dir: caDir, chainPem: signed.chain })
  const ca = await CaService.open({ dir: caDir })
  t.teardown(() => ca.close())
  const url = await serveCa(t, ca)

  const missing = await caFetch(`${url}/v1/root-crl`)
  t.is(missing.status, 404)
  t.like(await missing.json(), { code: 'ERR_NOT_FOUND' })

  const { token } = ca.createToken({ deviceId: 'tablet-1', tenant: 'hotel-1' })
  const device = await DeviceIdentity.enroll({ url, token, dir: join(dir, 'tablet'), passphrase: 'pw' })
  const peerChain = device.credential().certificateChainPem
  const trust = TrustStore.fromPem(device.trustPem)
  t.like(verifyPeer(peerChain, trust, await device.fetchRevocations(device.trustPem)), { deviceId: 'tablet-1' }, 'no root CRL: the site CRL alone')

  new CaDirectory(caDir).installRootCrl(await root.crl())
  const served = await caFetch(`${url}/v1/root-crl`)
  t.is(served.status, 200)
  t.regex(await served.text(), /BEGIN X509 CRL/)
  const etag = served.headers.get('etag')!
  t.is((await caFetch(`${url}/v1/root-crl`, { headers: { 'if-none-match': etag } })).status, 304)
  t.like(verifyPeer(peerChain, trust, await device.fetchRevocations(device.trustPem)), { deviceId: 'tablet-1' })

  // The root revokes the site CA: every device certificate under it stops verifying for devices.
  new CaDirectory(caDir).installRootCrl(await root.crl({ revokeSite: inspectCertificate(new CaDirectory(caDir).sitePem()).serial! }))
  const revocations = await device.fetchRevocations(device.trustPem)
  t.like(t.throws(() => verifyPeer(peerChain, trust, revocations)), { code: 'ERR_CERT_REVOKED' })
  t.true(ca.auditRecords(50).some((row) => row.action === 'http.rootCrl' && row.outcome === 'allow'), 'served CRLs are audited')
})

test.serial('gateway: the flags alone run it (ztmesh gateway --dir CA_DIR --listen HOST:PORT --tenant T)', async (t) => {
  const dir = workdir(t)
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Flag Hotel', tenants: ['hotel-1'] })
  const gateway = startCli(t, ['gateway', '--dir', caDir, '--listen', '127.0.0.1:0', '--tenant', 'hotel-1', '--metrics-listen', '127.0.0.1:0'])
  const ready = await gateway.next((e) => e.event === 'ready')
  t.like(ready, { identity: { deviceId: 'gateway', tenant: 'hotel-1' } })
  t.is((await fetch(`http://${String(ready.metrics)}/healthz`)).status, 200)
  gateway.child.kill('SIGTERM')
  t.is((await gateway.exited).code, 0)
})
