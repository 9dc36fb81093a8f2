import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { CaService, rotationMessage } from '../src/ca/index.js'
import { createEnrollmentServer } from '../src/ca/server.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { buildCsr, CertificateAuthority, generateP256Key, inspectCertificate, normalizeSerial, RevocationSet, SigningKey, TrustStore, verifyPeer } from '../src/index.js'
import { CA_MIGRATIONS } from '../src/ca/schema.js'
import { encodeEnrollRequest, enrollRequestFor } from '../src/protocol/enroll.js'
import { openDatabase } from '../src/storage/index.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')

async function freshCa(t: import('ava').ExecutionContext, now?: () => number) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Test Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca'), ...(now !== undefined && { now }) })
  t.teardown(() => ca.close())
  return { dir, ca }
}

async function serve(t: import('ava').ExecutionContext, ca: CaService, rateLimit = { perSecond: 1000, burst: 1000 }) {
  const server = createEnrollmentServer({ ca, rateLimit, maxConnectionsPerSource: 1000 })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The body of an enrollment request by the holder of `token` (its id and proof, never the token). */
function enrollBody(token: string, csr: string, nodeId?: string): string {
  return encodeEnrollRequest(enrollRequestFor(token, csr, nodeId === undefined ? {} : { nodeId })).toString()
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

test('ca init --tenant binds the site CA: a token for another tenant is refused (ERR_NAME_CONSTRAINT, audited) and its certificates verify', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const init = await run('node', [CLI, 'ca', 'init', '--dir', join(dir, 'ca'), '--name', 'Bound', '--tenant', 'hotel-1', '--tenant', 'hotel-3'])
  t.is(JSON.parse(init.stdout).dir, join(dir, 'ca'))
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  t.throws(() => ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-2' }), { code: 'ERR_NAME_CONSTRAINT' })
  t.true(ca.auditRecords(5).some((r) => r.action === 'token.create' && r.outcome === 'deny' && r.reason === 'ERR_NAME_CONSTRAINT'))
  const url = await serve(t, ca)
  for (const tenant of ['hotel-1', 'hotel-3']) {
    const store = join(dir, tenant)
    await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: 'gw-1', tenant }).token, dir: store, passphrase: 'pw' })
    t.like(CaService.verifyOffline(join(dir, 'ca'), readFileSync(join(store, 'cert.pem'), 'utf8'), { expectedTenant: tenant }), { deviceId: 'gw-1', tenant })
  }
})

test('enrollment over HTTP: certificate, chain and config; the token binds the identity, not the CSR', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  const csr = buildCsr(generateP256Key(), 'someone-else', 'other-tenant')
  const { status, json } = await post(`${url}/v1/enroll`, enrollBody(token, csr))
  t.is(status, 200)
  const trust = TrustStore.fromPem(ca.trustBundle())
  const peer = verifyPeer(`${json!.certificate as string}${json!.ca_cert as string}`, trust, new RevocationSet())
  t.like(peer, { deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.like(json!.config, { gossip_fanout: 3, crl_url: `${url}/v1/crl` })
  t.like(await post(`${url}/v1/enroll`, enrollBody(token, csr)), { status: 409, json: { code: 'ERR_TOKEN_USED' } })
  t.like(await post(`${url}/v1/enroll`, { token_id: '00'.repeat(32), token_proof: '00'.repeat(64), csr }), { status: 400, json: { code: 'ERR_TOKEN_INVALID' } })
  const { token: other } = ca.createToken({ deviceId: 'x', tenant: 'y' })
  t.like(await post(`${url}/v1/enroll`, enrollBody(other, 'not a csr')), { status: 400, json: { code: 'ERR_PEM' } })
  const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64')
  der[der.length - 3]! ^= 0x01 // inside the signature
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
  t.like(await post(`${url}/v1/enroll`, enrollBody(other, tampered)), { status: 400, json: { code: 'ERR_CSR_SIGNATURE' } })
  t.like(await post(`${url}/v1/enroll`, enrollBody(other, csr, 'not-x')), { status: 403, json: { code: 'ERR_FORBIDDEN' } })
  t.like(await post(`${url}/v1/enroll`, enrollBody(other, csr, 'x')), { status: 200 }, 'failed attempts do not burn the token')
  t.like(await post(`${url}/v1/enroll`, '{"token":'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(`${url}/v1/nothing`, {}), { status: 404, json: { code: 'ERR_NOT_FOUND' } })
  t.is((await fetch(`${url}/v1/enroll`)).status, 405)
  t.true(ca.verifyAudit() >= 6)
  t.true(ca.auditRecords(50).some((r) => r.action === 'enroll' && r.outcome === 'deny' && r.reason === 'ERR_TOKEN_USED'))
})

test('100 parallel enrollments racing for one token produce exactly one certificate', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'racer', tenant: 'hotel-1' })
  const csr = buildCsr(generateP256Key(), 'racer', 'hotel-1')
  const results = await Promise.all(Array.from({ length: 100 }, () => post(`${url}/v1/enroll`, enrollBody(token, csr))))
  t.is(results.filter((r) => r.status === 200).length, 1)
  t.is(results.filter((r) => r.status === 409).length, 99)
  t.is(ca.listCertificates().length, 1)
})

test('the rate limit answers 429 with a JSON error, and it is audited', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca, { perSecond: 0.001, burst: 3 })
  const statuses = []
  for (let i = 0; i < 5; i++) statuses.push((await post(`${url}/v1/enroll`, {})).status)
  t.deepEqual(statuses, [400, 400, 400, 429, 429])
  t.true(ca.auditRecords(5).some((r) => r.reason === 'ERR_RATE_LIMITED'))
})

test('revocation needs the admin credential, answers 204 and reaches the CRL with ETag caching', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'd1', tenant: 'hotel-1' })
  const enrolled = ca.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), 'd1', 'hotel-1')), 'test')
  const first = await fetch(`${url}/v1/crl`)
  const etag = first.headers.get('etag')!
  t.is(first.status, 200)
  t.regex(await first.text(), /BEGIN X509 CRL/)
  t.is((await fetch(`${url}/v1/crl`, { headers: { 'if-none-match': etag } })).status, 304)
  t.like(await post(`${url}/v1/revoke`, { serial: enrolled.serial }), { status: 401, json: { code: 'ERR_UNAUTHENTICATED' } })
  t.like(await post(`${url}/v1/revoke`, { serial: enrolled.serial }, { authorization: 'Bearer wrong' }), { status: 403, json: { code: 'ERR_FORBIDDEN' } })
  const admin = readFileSync(join(dir, 'ca', 'admin-token'), 'utf8')
  t.is((await post(`${url}/v1/revoke`, { serial: enrolled.serial, reason: 'keyCompromise' }, { authorization: `Bearer ${admin}` })).status, 204)
  const der = await fetch(`${url}/v1/crl?format=der`)
  t.is(der.headers.get('content-type'), 'application/pkix-crl')
  t.not(der.headers.get('etag'), etag)
  const revocations = new RevocationSet()
  const trust = TrustStore.fromPem(ca.trustBundle())
  revocations.addCrl(Buffer.from(await der.arrayBuffer()), ca.caChain(), trust)
  t.throws(() => verifyPeer(enrolled.certificate + enrolled.caChain, trust, revocations), { code: 'ERR_CERT_REVOKED' })
  t.like(await post(`${url}/v1/revoke`, { serial: 'abcdef' }, { authorization: `Bearer ${admin}` }), { status: 404 })
})

test('rotation: signed by the current key, overlapping, replay-proof; revoked certificates cannot rotate', async (t) => {
  let now = Date.now()
  const { dir, ca } = await freshCa(t, () => now)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const identity = await DeviceIdentity.enroll({ url, token, dir: join(dir, 'dev'), passphrase: 'pw', deviceId: 'gw-1', tenant: 'hotel-1' })
  const oldCert = identity.certificatePem
  t.is(identity.renewalState(), 'fresh')
  t.false(await identity.renewIfDue())
  now = Date.now() + 60_000 // the CA's clock a minute on: the new certificate ends later
  t.is(identity.renewalState(Date.now() + 61 * 86_400_000), 'due')
  t.is(identity.renewalState(Date.now() + 91 * 86_400_000), 'grace')
  t.is(identity.renewalState(Date.now() + 200 * 86_400_000), 'expired')
  t.true(await identity.renewIfDue({ force: true }))
  t.not(identity.certificatePem, oldCert)
  const trust = TrustStore.fromPem(ca.trustBundle())
  const oldPeer = verifyPeer(oldCert + identity.caChainPem, trust, new RevocationSet())
  const newPeer = verifyPeer(identity.certificatePem + identity.caChainPem, trust, new RevocationSet())
  t.is(newPeer.deviceId, 'gw-1')
  t.true(newPeer.notAfterMs > oldPeer.notAfterMs, 'the new certificate outlives the old; both are valid now')

  // Forged or replayed requests are refused.
  const key = generateP256Key()
  const csr = buildCsr(key, 'gw-1', 'hotel-1')
  const stranger = SigningKey.fromPkcs8('ecdsa-p256-sha256', generateP256Key())
  const timestamp = Date.now()
  const forged = { certificate: identity.certificatePem, csr, timestamp, signature: stranger.sign(rotationMessage(timestamp, csr)).toString('base64') }
  t.like(await post(`${url}/v1/rotate`, forged), { status: 401, json: { code: 'ERR_UNAUTHENTICATED' } })
  t.like(await post(`${url}/v1/rotate`, { ...forged, timestamp: timestamp - 3_600_000 }), { status: 401 })
  t.like(await post(`${url}/v1/rotate`, { certificate: 1 }), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })

  // Within the grace period after expiry, rotation still works; a revoked certificate never.
  now = newPeer.notAfterMs + 86_400_000
  t.is(identity.renewalState(now), 'grace')
  t.true(await identity.renewIfDue({ now }))
  ca.revoke({ device: 'gw-1' }, 'keyCompromise')
  await t.throwsAsync(identity.renewIfDue({ now, force: true }), { code: 'ERR_CERT_REVOKED' })
})

test('the CLI contract: init, trust, token, sign (openssl CSR), revoke, crl and verify-peer', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ca = join(dir, 'ca')
  await run('node', [CLI, 'ca', 'init', '--dir', ca, '--name', 'CLI Hotel'])
  t.regex((await run('node', [CLI, 'ca', 'trust', '--dir', ca])).stdout, /^-----BEGIN CERTIFICATE-----/)
  const token = (await run('node', [CLI, 'ca', 'token', '--dir', ca, '--device', 'kiosk-1', '--tenant', 'hotel-9', '--ttl', '600'])).stdout.trim()
  t.regex(token, /^ztm2\.[A-Za-z0-9_-]+$/)
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'csr.pem'), '-subj', '/CN=whatever'])
  const chain = (await run('node', [CLI, 'ca', 'sign', '--dir', ca, '--csr', join(dir, 'csr.pem'), '--token', token])).stdout
  writeFileSync(join(dir, 'chain.pem'), chain)
  const ok = await run('node', [CLI, 'verify-peer', '--dir', ca, '--cert', join(dir, 'chain.pem'), '--tenant', 'hotel-9', '--device', 'kiosk-1'])
  t.like(JSON.parse(ok.stdout), { deviceId: 'kiosk-1', tenant: 'hotel-9' })
  const wrong = await run('node', [CLI, 'verify-peer', '--dir', ca, '--cert', join(dir, 'chain.pem'), '--tenant', 'hotel-1']).catch((e: { code: number; stdout: string }) => e)
  t.is((wrong as { code: number }).code, 1)
  t.like(JSON.parse((wrong as { stdout: string }).stdout), { code: 'ERR_TENANT_MISMATCH' })
  const reused = await run('node', [CLI, 'ca', 'sign', '--dir', ca, '--csr', join(dir, 'csr.pem'), '--token', token]).catch((e: { code: number; stderr: string }) => e)
  t.is((reused as { code: number }).code, 1)
  t.like(JSON.parse((reused as { stderr: string }).stderr), { code: 'ERR_TOKEN_USED' })
  const revoked = JSON.parse((await run('node', [CLI, 'ca', 'revoke', '--dir', ca, '--device', 'kiosk-1', '--reason', 'keyCompromise'])).stdout)
  t.is(revoked.revoked.length, 1)
  const crl = (await run('node', [CLI, 'ca', 'crl', '--dir', ca])).stdout
  writeFileSync(join(dir, 'crl.pem'), crl)
  t.regex((await run('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-noout', '-text'])).stdout, new RegExp(revoked.revoked[0], 'i'))
  const denied = await run('node', [CLI, 'verify-peer', '--dir', ca, '--cert', join(dir, 'chain.pem')]).catch((e: { code: number; stdout: string }) => e)
  t.like(JSON.parse((denied as { stdout: string }).stdout), { code: 'ERR_CERT_REVOKED' })
  const bad = await run('node', [CLI, 'ca', 'revoke', '--dir', ca]).catch((e: { code: number; stderr: string }) => e)
  t.is((bad as { code: number }).code, 1)
})

test('kill -9 in the middle of enrollments never leaves a half-issued certificate or a used-but-unissued token', async (t) => {
  const { dir, ca } = await freshCa(t)
  const tokens = Array.from({ length: 40 }, (_, i) => ca.createToken({ deviceId: `k${i}`, tenant: 'hotel-1' }).token)
  ca.close()
  const script = `
    import { CaService } from ${JSON.stringify(join(process.cwd(), 'dist/ca/index.js'))}
    import { buildCsr, generateP256Key } from ${JSON.stringify(join(process.cwd(), 'dist/index.js'))}
    import { enrollRequestFor } from ${JSON.stringify(join(process.cwd(), 'dist/protocol/enroll.js'))}
    const ca = await CaService.open({ dir: ${JSON.stringify(join(dir, 'ca'))} })
    const tokens = ${JSON.stringify(tokens)}
    process.stdout.write('ready\\n')
    for (const [i, token] of tokens.entries()) ca.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), 'k' + i, 'hotel-1')), 'test')
  `
  const child = spawn('node', ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
  await new Promise((resolve) => setTimeout(resolve, 60))
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  const reopened = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => reopened.close())
  // The registry's tables, read the way an auditor of the file would: a second connection.
  const db = openDatabase(join(dir, 'ca', 'registry.db'), { migrations: CA_MIGRATIONS })
  t.teardown(() => db.close())
  const used = db.prepare('SELECT serial FROM tokens WHERE used_at IS NOT NULL').all() as Array<{ serial: string }>
  const issued = db.prepare('SELECT serial FROM certificates').all() as Array<{ serial: string }>
  t.deepEqual(used.map((r) => r.serial).sort(), issued.map((r) => r.serial).sort(), 'every used token has exactly its certificate')
  t.is((db.prepare('SELECT count(*) AS n FROM tokens WHERE used_at IS NULL AND serial IS NOT NULL').get() as { n: number }).n, 0)
  t.true(reopened.verifyAudit() > 40)
  t.log(`${issued.length} of 40 enrollments committed before the kill`)
})

test('serials are matched however they are written: case, 0x prefix, leading zeros', async (t) => {
  const { ca } = await freshCa(t)
  // Enroll until a serial starts with a zero nibble (1 in 16), the case that once broke revocation.
  let serial = ''
  for (let i = 0; i < 200 && !serial.startsWith('0'); i++) {
    const { token } = ca.createToken({ deviceId: `s${i}`, tenant: 't' })
    serial = ca.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), 'x', 'y')), 'test').serial
  }
  t.true(serial.startsWith('0'))
  t.like(ca.certificate(serial.slice(1).toUpperCase()), { serial })
  t.like(ca.certificate(`0x00${serial}`), { serial })
  t.deepEqual(ca.revoke({ serial: serial.replace(/^0/, '') }), [serial])
})

test('ztmesh ca token --roles pos:cashier is accepted and the certificate carries the role (regression)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-cli-roles-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ca = join(dir, 'ca')
  await run('node', [CLI, 'ca', 'init', '--dir', ca, '--name', 'Roles Hotel'])
  const token = (await run('node', [CLI, 'ca', 'token', '--dir', ca, '--device', 'till-1', '--tenant', 'hotel-9', '--roles', 'pos:cashier,staff'])).stdout.trim()
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'csr.pem'), '-subj', '/CN=whatever'])
  writeFileSync(join(dir, 'chain.pem'), (await run('node', [CLI, 'ca', 'sign', '--dir', ca, '--csr', join(dir, 'csr.pem'), '--token', token])).stdout)
  const peer = JSON.parse((await run('node', [CLI, 'verify-peer', '--dir', ca, '--cert', join(dir, 'chain.pem')])).stdout)
  t.deepEqual(peer.roles, ['pos:cashier', 'staff'])
  const refused = await run('node', [CLI, 'ca', 'token', '--dir', ca, '--device', 'till-2', '--tenant', 'hotel-9', '--roles', 'pos cashier']).catch((e: { code: number; stderr: string }) => e)
  t.like(JSON.parse((refused as { stderr: string }).stderr), { code: 'ERR_IDENTITY' })
})

test('ztmesh enroll prints the serial spelled as verify-peer and the registry spell it', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const store = join(dir, 'device')
  const { token } = ca.createToken({ deviceId: 'kiosk-2', tenant: 'hotel-1', roles: ['pos:cashier'] })
  const enrolled = JSON.parse((await run('node', [CLI, 'enroll', '--url', url, '--token', token, '--store', store, '--keystore', 'software'], { env: { ...process.env, ZTMESH_PASSPHRASE: 'pw' } })).stdout)
  t.like(enrolled, { deviceId: 'kiosk-2', tenant: 'hotel-1', roles: ['pos:cashier'] })
  const chain = readFileSync(join(store, 'cert.pem'), 'utf8') + readFileSync(join(store, 'ca.pem'), 'utf8')
  const peer = verifyPeer(chain, TrustStore.fromPem(ca.trustBundle()), new RevocationSet())
  t.is(enrolled.serial, peer.serial)
  t.deepEqual(ca.revoke({ serial: `0x${enrolled.serial.toUpperCase()}` }), [peer.serial], 'the registry holds the same spelling')
})

test('serials whose hex starts with 0 keep one spelling everywhere (regression: the CLI stripped the nibble)', (t) => {
  const root = CertificateAuthority.createRoot({ commonName: 'r', organisation: 'o' })
  const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
  const site = rootCa.createSiteCa({ commonName: 's', organisation: 'o' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const trust = TrustStore.fromPem(root.certificatePem)
  let seen = 0
  // Serials are random: about one in eight starts with a 0 nibble; issue until three have.
  for (let i = 0; i < 400 && seen < 3; i++) {
    const issued = siteCa.issue(buildCsr(generateP256Key(), 'd', 't'), { deviceId: 'd', tenant: 't' })
    if (!issued.serial.startsWith('0')) continue
    seen++
    t.is(inspectCertificate(issued.pem).serial, issued.serial)
    t.is(verifyPeer(issued.pem + site.certificatePem, trust, new RevocationSet()).serial, issued.serial)
    t.is(normalizeSerial(issued.serial.replace(/^0/, '')), issued.serial, 'what a user types without the zero')
    t.is(normalizeSerial(`0x000${issued.serial.toUpperCase()}`), issued.serial)
  }
  t.is(seen, 3)
  t.throws(() => normalizeSerial('0x'), { code: 'ERR_SERIAL' })
  t.throws(() => normalizeSerial('00'), { code: 'ERR_SERIAL' })
  t.throws(() => normalizeSerial('1'.repeat(41)), { code: 'ERR_SERIAL' })
})
