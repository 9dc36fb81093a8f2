// Issue 10 §1: enrollment a man in the middle cannot hijack. Each test replays an attack against
// the real CA (its HTTP API on loopback) and a real device (the library, or the CLI in a child
// process), with a hostile server on loopback playing the man in the middle or a CA gone wrong.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { CaService } from '../src/ca/index.js'
import { createEnrollmentServer, type EnrollmentServerInit } from '../src/ca/server.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { buildCsr, CertificateAuthority, generateP256Key } from '../src/index.js'
import {
  decodeEnrollRequest,
  decodeRotationRequest,
  encodeEnrollRequest,
  encodeEnrollResponse,
  encodeNonceRequest,
  enrollRequestFor,
  nonceRequestFor,
  type EnrollResponse,
} from '../src/protocol/enroll.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')

async function freshCa(t: ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-mitm-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Real Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  return { dir, ca }
}

async function listen(t: ExecutionContext, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function serve(t: ExecutionContext, ca: CaService, init: Partial<EnrollmentServerInit> = {}): Promise<string> {
  return listen(t, createEnrollmentServer({ ca, rateLimit: { perSecond: 1000, burst: 1000 }, ...init }))
}

async function body(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/**
 * A hostile server: reads each request and answers with what `answer` builds from it (an
 * enrollment or a rotation answer, encoded by the core as the real CA would).
 */
async function hostile(t: ExecutionContext, answer: (path: string, bytes: Buffer) => EnrollResponse | Promise<EnrollResponse>): Promise<string> {
  const server = createServer((request, response) => {
    void (async () => {
      const encoded = encodeEnrollResponse(await answer(request.url ?? '/', await body(request)))
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': encoded.length }).end(encoded)
    })().catch(() => response.writeHead(500).end())
  })
  return listen(t, server)
}

/** An attacker's own PKI: a root and a site CA that issue whatever is asked. */
function attackerPki() {
  const root = CertificateAuthority.createRoot({ commonName: 'Real Hotel Root CA', organisation: 'Real Hotel' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Real Hotel Site CA', organisation: 'Real Hotel' })
  return { root, site, ca: CertificateAuthority.load(site.certificatePem, site.privateKey) }
}

/** Every file of an identity directory, byte for byte (what a refused answer must leave alone). */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {}
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    files[name] = statSync(path).isFile() ? readFileSync(path).toString('base64') : '<dir>'
  }
  return files
}

function issued(pem: string, chain: string, serial: string): EnrollResponse {
  return { certificate: pem, caChain: chain, serial, notAfterMs: Date.now() + 86_400_000, config: { bootstrap_peers: ['10.6.6.6:7000'], gossip_fanout: 3, crl_url: 'http://10.6.6.6/v1/crl' } }
}

test('a device refuses a certificate of a foreign root, for another device, tenant or key, at enrollment; its files stay byte for byte', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const store = join(dir, 'tablet')
  await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' }).token, dir: store, passphrase: 'pw' })
  const before = snapshot(store)
  const attacker = attackerPki()
  const realChain = ca.caChain()

  // Each hostile answer is built from the device's own request (its CSR), as a MITM would.
  const attacks: Array<[string, (csr: string) => EnrollResponse, string]> = [
    ['a certificate of the attacker root, chain and all', (csr) => {
      const cert = attacker.ca.issue(csr, { deviceId: 'tablet-7', tenant: 'hotel-1' })
      return issued(cert.pem, attacker.site.certificatePem + attacker.root.certificatePem, cert.serial)
    }, 'ERR_TRUST_ANCHOR'],
    ['a certificate of the attacker, under the real root shown beside it', (csr) => {
      const cert = attacker.ca.issue(csr, { deviceId: 'tablet-7', tenant: 'hotel-1' })
      return issued(cert.pem, attacker.site.certificatePem + realChain, cert.serial)
    }, 'ERR_CHAIN'],
    ['a real certificate for another device', (csr) => {
      const other = ca.enroll(enrollRequestFor(ca.createToken({ deviceId: 'tablet-8', tenant: 'hotel-1' }).token, csr), 'attacker')
      return issued(other.certificate, other.caChain, other.serial)
    }, 'ERR_DEVICE_MISMATCH'],
    ['a real certificate for another tenant', (csr) => {
      const other = ca.enroll(enrollRequestFor(ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-2' }).token, csr), 'attacker')
      return issued(other.certificate, other.caChain, other.serial)
    }, 'ERR_TENANT_MISMATCH'],
    ['a real certificate for the attacker key', () => {
      const other = ca.enroll(enrollRequestFor(ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' }).token, buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')), 'attacker')
      return issued(other.certificate, other.caChain, other.serial)
    }, 'ERR_PIN'],
  ]
  for (const [what, forge, code] of attacks) {
    const mitm = await hostile(t, (_path, bytes) => forge(decodeEnrollRequest(bytes).csr))
    const token = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' }).token
    await t.throwsAsync(DeviceIdentity.enroll({ url: mitm, token, dir: store, passphrase: 'pw' }), { code }, what)
    t.deepEqual(snapshot(store), before, `${what}: nothing on disk changed`)
    const fresh = join(dir, `fresh-${code}`)
    await t.throwsAsync(DeviceIdentity.enroll({ url: mitm, token, dir: fresh, passphrase: 'pw' }), { code }, `${what} (first enrollment)`)
    t.false(existsSync(join(fresh, 'cert.pem')) || existsSync(join(fresh, 'trust.pem')), `${what}: no certificate, no trust stored`)
  }
  // The device still opens its identity and trusts only the real root.
  const reopened = await DeviceIdentity.open(store, 'pw')
  t.is(readFileSync(join(store, 'trust.pem'), 'utf8'), ca.trustBundle())
  t.truthy(reopened.certificatePem)
})

test('a rotation answer that the device trust refuses changes nothing: the old certificate and key stay', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const store = join(dir, 'gw')
  await DeviceIdentity.enroll({ url, token: ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' }).token, dir: store, passphrase: 'pw' })
  const before = snapshot(store)
  const attacker = attackerPki()
  const mitm = await hostile(t, (_path, bytes) => {
    const cert = attacker.ca.issue(decodeRotationRequest(bytes).csr, { deviceId: 'gw-1', tenant: 'hotel-1' })
    return issued(cert.pem, attacker.site.certificatePem + attacker.root.certificatePem, cert.serial)
  })
  const device = await DeviceIdentity.open(store, 'pw', mitm)
  await t.throwsAsync(device.renewIfDue({ force: true }), { code: 'ERR_CHAIN' })
  t.deepEqual(snapshot(store), before, 'nothing on disk changed')
  // The real CA still renews it.
  const honest = await DeviceIdentity.open(store, 'pw', url)
  t.true(await honest.renewIfDue({ force: true }))
  t.notDeepEqual(snapshot(store), before)
})

test('the MITM of the issue, with the CLI: a captured request redeemed with the attacker key is refused and audited; the device refuses the attacker root and stores nothing', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const attacker = attackerPki()
  const stolen: Array<{ status: number; code: unknown }> = []
  // The MITM relays nothing honest: it redeems what it captured with its own CSR at the real CA,
  // then answers the device with a certificate of its own root, and itself as CRL and peers.
  const mitm = await hostile(t, async (_path, bytes) => {
    const captured = decodeEnrollRequest(bytes)
    const attackerCsr = buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')
    const replay = encodeEnrollRequest({ ...captured, csr: attackerCsr })
    const answer = await fetch(`${url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: replay })
    stolen.push({ status: answer.status, code: ((await answer.json()) as { code?: unknown }).code })
    const cert = attacker.ca.issue(captured.csr, { deviceId: 'tablet-7', tenant: 'hotel-1', roles: ['admin'] })
    return issued(cert.pem, attacker.site.certificatePem + attacker.root.certificatePem, cert.serial)
  })
  const token = (await run('node', [CLI, 'ca', 'token', '--dir', join(dir, 'ca'), '--device', 'tablet-7', '--tenant', 'hotel-1'])).stdout.trim()
  t.false(token.includes(' '))
  const store = join(dir, 'tablet')
  const env = { ...process.env, ZTMESH_PASSPHRASE: 'pw' }
  const refused = await run('node', [CLI, 'enroll', '--url', mitm, '--token', token, '--store', store, '--keystore', 'software'], { env }).catch((e: { code: number; stderr: string }) => e)
  t.is((refused as { code: number }).code, 1)
  t.like(JSON.parse((refused as { stderr: string }).stderr), { code: 'ERR_TRUST_ANCHOR' })
  t.deepEqual(stolen, [{ status: 403, code: 'ERR_TOKEN_PROOF' }])
  t.false(existsSync(join(store, 'cert.pem')) || existsSync(join(store, 'trust.pem')) || existsSync(join(store, 'config.json')))
  t.deepEqual(ca.listCertificates(), [], 'the real CA issued nothing to the attacker')
  t.like(ca.auditRecords(10).find((row) => row.action === 'enroll'), { outcome: 'deny', reason: 'ERR_TOKEN_PROOF', detail: { device: 'tablet-7', tenant: 'hotel-1' } })

  // The token is still good for the device itself, and a fingerprint given out of band must match.
  const fingerprint = (await run('node', [CLI, 'ca', 'fingerprint', '--dir', join(dir, 'ca')])).stdout.trim()
  t.regex(fingerprint, /^[0-9a-f]{64}$/)
  const wrong = await run('node', [CLI, 'enroll', '--url', url, '--token', token, '--store', store, '--root-fingerprint', 'ab'.repeat(32)], { env }).catch((e: { code: number; stderr: string }) => e)
  t.like(JSON.parse((wrong as { stderr: string }).stderr), { code: 'ERR_TRUST_ANCHOR' })
  const enrolled = JSON.parse((await run('node', [CLI, 'enroll', '--url', url, '--token', token, '--store', store, '--keystore', 'software', '--root-fingerprint', fingerprint.toUpperCase().match(/../g)!.join(':')], { env })).stdout)
  t.like(enrolled, { deviceId: 'tablet-7', tenant: 'hotel-1', roles: [] })
  t.is(readFileSync(join(store, 'trust.pem'), 'utf8'), ca.trustBundle())
})

test('nonces go only to the holder of the device token: 20 anonymous or forged requests cannot evict its nonce', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const post = (bytes: Buffer | string) => fetch(`${url}/v1/attest/nonce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bytes })
  const mine = await post(encodeNonceRequest(nonceRequestFor(token, 'node-1')))
  t.is(mine.status, 200)
  const { nonce } = (await mine.json()) as { nonce: string }

  const { token: other } = ca.createToken({ deviceId: 'node-2', tenant: 'hotel-1' })
  const forged = [
    ...Array.from({ length: 20 }, () => JSON.stringify({ node_id: 'node-1' })),
    ...Array.from({ length: 20 }, () => encodeNonceRequest({ ...nonceRequestFor(token, 'node-1'), tokenProof: '00'.repeat(64) })),
    encodeNonceRequest({ ...nonceRequestFor(other, 'node-2'), nodeId: 'node-1' }),
    encodeNonceRequest(nonceRequestFor(other, 'node-1')),
  ]
  const codes = []
  for (const request of forged) {
    const answer = await post(request)
    codes.push(`${answer.status} ${((await answer.json()) as { code: string }).code}`)
  }
  t.deepEqual(codes, [...Array(20).fill('400 ERR_BAD_REQUEST'), ...Array(20).fill('403 ERR_TOKEN_PROOF'), '403 ERR_TOKEN_PROOF', '403 ERR_FORBIDDEN'])
  t.is(ca.nonces.consume(nonce, 'node-1'), 'consumed', 'the device nonce survived')
  const denied = ca.auditRecords(100).filter((row) => row.action === 'attest.nonce' && row.outcome === 'deny')
  t.is(denied.length, 22, 'every forged request that reached the CA is audited')
})

test('a wrong token still burns the attestation nonce it presented: a nonce is never retried', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const { nonce } = ca.issueNonce(nonceRequestFor(token, 'node-1'), 'test')
  const csr = buildCsr(generateP256Key(), 'node-1', 'hotel-1')
  const quote = { akPublicPem: 'pem', akBinding: Buffer.alloc(70, 1), attest: Buffer.alloc(100, 2), signature: Buffer.alloc(72, 3), pcrValues: Buffer.alloc(200, 4) }
  const request = enrollRequestFor(token, csr, { nodeId: 'node-1', attestation: { nonce: Buffer.from(nonce, 'hex'), quote } })
  const answer = await fetch(`${url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeEnrollRequest({ ...request, tokenProof: 'ff'.repeat(64) }) })
  t.like(await answer.json(), { code: 'ERR_TOKEN_PROOF' })
  t.is(ca.nonces.consume(nonce, 'node-1'), 'used', 'the refused attempt burned the nonce')
})

test("crl_url comes from the server's configuration or its own address, never from the request's Host header", async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const port = new URL(url).port
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  const bytes = encodeEnrollRequest(enrollRequestFor(token, buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')))
  const answer = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const request = httpRequest(`${url}/v1/enroll`, { method: 'POST', headers: { host: 'evil.example:666', 'content-type': 'application/json', 'content-length': bytes.length } }, (response) => {
      void body(response).then((text) => resolve(JSON.parse(text.toString()) as Record<string, unknown>), reject)
    })
    request.on('error', reject)
    request.end(bytes)
  })
  t.like(answer, { config: { crl_url: `http://127.0.0.1:${port}/v1/crl` } })
  const configured = await serve(t, ca, { url: 'https://gw.hotel-1.lan:8443' })
  const { token: second } = ca.createToken({ deviceId: 'tablet-8', tenant: 'hotel-1' })
  const answered = await fetch(`${configured}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeEnrollRequest(enrollRequestFor(second, buildCsr(generateP256Key(), 'x', 'y'))) })
  t.like(await answered.json(), { config: { crl_url: 'https://gw.hotel-1.lan:8443/v1/crl' } })
})

test('nothing fails after the registry commit: an answer that cannot be encoded issues nothing and spends no token', async (t) => {
  const { ca } = await freshCa(t)
  // A configuration the answer's codec refuses (crl_url longer than 2048 bytes).
  const url = await serve(t, ca, { config: { crl_url: `http://x/${'a'.repeat(3000)}` } })
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  const csr = buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')
  const answer = await fetch(`${url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeEnrollRequest(enrollRequestFor(token, csr)) })
  t.is(answer.status, 500)
  t.deepEqual(ca.listCertificates(), [], 'no certificate was recorded')
  t.like(ca.enroll(enrollRequestFor(token, csr), 'test'), { serial: ca.listCertificates()[0]?.serial }, 'the token was not spent')
})
