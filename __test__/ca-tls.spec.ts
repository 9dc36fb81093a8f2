// Issue 10 §1: the CA API over TLS 1.3 only. A device (the library, or the CLI in a child process)
// talks to the real CA on loopback, or to a man in the middle on loopback that terminates TLS with
// a certificate of its own; the device must refuse the MITM before the token proof or the CSR
// leaves, and the admin credential never travels without server authentication.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { CaService } from '../src/ca/index.js'
import { createEnrollmentServer, type EnrollmentServerInit } from '../src/ca/server.js'
import { secureTls, TlsContext } from '../src/channels/tls.js'
import { requestCa } from '../src/identity/http.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { Signer } from '../src/primitives/pki/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')
const TENANT = 'hotel-1'

async function freshCa(t: ExecutionContext, name = 'Real Hotel') {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-catls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  return { dir, ca }
}

async function listen(t: ExecutionContext, server: Server | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as AddressInfo).port
}

async function serve(t: ExecutionContext, ca: CaService, init: Partial<EnrollmentServerInit> = {}): Promise<string> {
  const server = createEnrollmentServer({ ca, tenant: TENANT, rateLimit: { perSecond: 1000, burst: 1000 }, ...init })
  const port = await listen(t, server)
  return `${init.insecureHttp === true ? 'http' : 'https'}://127.0.0.1:${port}`
}

/**
 * A man in the middle: terminates TLS on loopback with `chainPem` and `signer` (clients need no
 * certificate), and counts every byte of plaintext and every raw byte it receives.
 */
async function mitm(t: ExecutionContext, chainPem: string, signer: Signer, trustPem: string) {
  const seen = { plaintext: 0, raw: 0, handshakes: 0 }
  const context = new TlsContext('server', { identity: { certificateChainPem: chainPem, signer }, trustPem, anonymousClients: true })
  const server = createNetServer((socket) => {
    socket.on('data', (chunk: Buffer) => (seen.raw += chunk.length))
    socket.on('error', () => {})
    secureTls(socket, context).then(
      (stream) => {
        seen.handshakes++
        stream.on('data', (chunk: Buffer) => (seen.plaintext += chunk.length))
        stream.on('error', () => {})
      },
      () => {},
    )
  })
  const port = await listen(t, server)
  return { url: `https://127.0.0.1:${port}`, seen }
}

/** The real CA's certificate for `deviceId` (its key in `signer`), enrolled with a token as a device would. */
function deviceCertificate(ca: CaService, deviceId: string, signer: Signer): string {
  const { token } = ca.createToken({ deviceId, tenant: TENANT })
  const enrollment = ca.enroll(enrollRequestFor(token, signer.buildCsr(deviceId, TENANT)), 'test')
  return enrollment.certificate + enrollment.caChain
}

test('a device enrolls and rotates over TLS 1.3 with the CA API certificate; plain HTTP to the TLS port is refused and audited', async (t) => {
  const { dir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: TENANT })
  const identity = await DeviceIdentity.enroll({ url, token, dir: join(dir, 'device'), passphrase: 'pw' })
  t.is(identity.certificatePem.length > 0, true)
  t.true(await identity.renewIfDue({ force: true }))
  // The CA API's certificate is recorded like any certificate: device ca, tenant hotel-1.
  t.true(ca.listCertificates({ device: 'ca', tenant: TENANT }).length >= 1)

  const plain = url.replace('https:', 'http:')
  await t.throwsAsync(fetch(`${plain}/v1/crl`))
  const port = Number(new URL(url).port)
  await t.throwsAsync(requestCa(new URL(`http://127.0.0.1:${port}/v1/crl`), { method: 'GET' }, { insecureHttp: true }))
  const denied = ca.auditRecords(20).filter((record) => record.action === 'tls.handshake' && record.outcome === 'deny')
  t.true(denied.length >= 1, 'the refused handshake is audited')
})

test('an http: CA URL is refused before anything is sent, unless insecureHttp; an insecure server warns', async (t) => {
  const { dir, ca } = await freshCa(t)
  let received = 0
  const sink = createNetServer((socket) => socket.on('data', (chunk: Buffer) => (received += chunk.length)))
  const port = await listen(t, sink)
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: TENANT })
  const error = await t.throwsAsync(DeviceIdentity.enroll({ url: `http://127.0.0.1:${port}`, token, dir: join(dir, 'device'), passphrase: 'pw' }))
  t.is((error as { code?: string }).code, 'ERR_INSECURE_TRANSPORT')
  t.is(received, 0)

  const warnings: string[] = []
  const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? '')
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const insecure = await serve(t, ca, { insecureHttp: true })
  await new Promise((resolve) => setImmediate(resolve))
  t.true(warnings.includes('ZTMESH_INSECURE_HTTP'))
  const identity = await DeviceIdentity.enroll({ url: insecure, token, dir: join(dir, 'device'), passphrase: 'pw', insecureHttp: true })
  t.truthy(identity.certificatePem)
  // An enrollment server without insecureHttp needs the tenant its certificate names.
  t.throws(() => createEnrollmentServer({ ca }), { code: 'ERR_INVALID_ARG' })
})

test('a MITM terminating TLS with another root, a device certificate of the real CA, or the CA API certificate of another tenant is refused before the token proof leaves', async (t) => {
  const { dir, ca } = await freshCa(t)
  const other = await freshCa(t, 'Evil Hotel')
  const realTrust = ca.trustBundle()

  const foreignSigner = Signer.generate()
  const foreign = other.ca.issueApiCertificate(TENANT, foreignSigner)
  const deviceSigner = Signer.generate()
  const device = deviceCertificate(ca, 'tablet-9', deviceSigner)
  const otherTenantSigner = Signer.generate()
  const otherTenant = ca.issueApiCertificate('hotel-2', otherTenantSigner)
  const cases = [
    { name: 'the attacker root', chain: foreign.chainPem, signer: foreignSigner, code: 'ERR_CHAIN' },
    { name: 'a device of the real CA', chain: device, signer: deviceSigner, code: 'ERR_DEVICE_MISMATCH' },
    { name: 'the CA API of another tenant', chain: otherTenant.chainPem, signer: otherTenantSigner, code: 'ERR_TENANT_MISMATCH' },
  ]
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: TENANT })
  for (const { name, chain, signer, code } of cases) {
    const relay = await mitm(t, chain, signer, realTrust)
    const error = await t.throwsAsync(DeviceIdentity.enroll({ url: relay.url, token, dir: join(dir, 'device'), passphrase: 'pw', attestation: 'off' }), undefined, name)
    t.is((error as { code?: string }).code, code, name)
    t.is(relay.seen.plaintext, 0, `${name}: no token proof, no CSR`)
    t.false(existsSync(join(dir, 'device', 'cert.pem')), name)
  }
  // The token was never spent: the real CA enrolls with it.
  const identity = await DeviceIdentity.enroll({ url: await serve(t, ca), token, dir: join(dir, 'device'), passphrase: 'pw' })
  t.truthy(identity.certificatePem)
})

test('the admin credential travels only to an authenticated CA API: a MITM gets nothing, insecure HTTP refuses it', async (t) => {
  const { dir, ca } = await freshCa(t)
  const admin = readFileSync(join(dir, 'ca', 'admin-token'), 'utf8')
  const fingerprint = ca.rootFingerprint()
  const trust = { rootFingerprint: fingerprint, tenant: TENANT }
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: TENANT })
  const signer = Signer.generate()
  const enrollment = ca.enroll(enrollRequestFor(token, signer.buildCsr('tablet-7', TENANT)), 'test')
  const body = Buffer.from(JSON.stringify({ serial: enrollment.serial }))
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${admin}` }

  const foreign = (await freshCa(t, 'Evil Hotel')).ca
  const foreignSigner = Signer.generate()
  const relay = await mitm(t, foreign.issueApiCertificate(TENANT, foreignSigner).chainPem, foreignSigner, ca.trustBundle())
  const error = await t.throwsAsync(requestCa(new URL(`${relay.url}/v1/revoke`), { method: 'POST', headers, body }, { ca: trust }))
  t.is((error as { code?: string }).code, 'ERR_CHAIN')
  t.is(relay.seen.plaintext, 0, 'the bearer never reached the MITM')

  // Over insecure HTTP the server refuses the route before it reads the credential, and audits it.
  const insecure = await serve(t, ca, { insecureHttp: true })
  const refused = await requestCa(new URL(`${insecure}/v1/revoke`), { method: 'POST', headers, body }, { insecureHttp: true })
  t.like({ status: refused.status, json: JSON.parse(refused.body.toString('utf8')) as unknown }, { status: 403, json: { code: 'ERR_INSECURE_TRANSPORT' } })
  t.true(ca.auditRecords(10).some((record) => record.action === 'http.revoke' && record.reason === 'ERR_INSECURE_TRANSPORT'))
  t.is(ca.listCertificates({ device: 'tablet-7' }).filter((record) => record.revokedAtMs !== null).length, 0)
  // Over TLS to the real CA API the credential works.
  const url = await serve(t, ca)
  const answer = await requestCa(new URL(`${url}/v1/revoke`), { method: 'POST', headers, body }, { ca: trust })
  t.is(answer.status, 204)
})

test('tokens cannot name the CA API identity: device ca or role ca is refused', async (t) => {
  const { ca } = await freshCa(t)
  t.throws(() => ca.createToken({ deviceId: 'ca', tenant: TENANT }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => ca.createToken({ deviceId: 'tablet-7', tenant: TENANT, roles: ['ca'] }), { code: 'ERR_INVALID_ARG' })
})

test('the MITM of the issue, with the CLI: enroll --url https://mitm refuses before sending, and without --insecure-http an http: URL is refused', async (t) => {
  const { dir, ca } = await freshCa(t)
  const foreign = (await freshCa(t, 'Evil Hotel')).ca
  const signer = Signer.generate()
  const relay = await mitm(t, foreign.issueApiCertificate(TENANT, signer).chainPem, signer, ca.trustBundle())
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: TENANT })
  const env = { ...process.env, ZTMESH_PASSPHRASE: 'pw' }
  const store = join(dir, 'device')
  const refused = await t.throwsAsync(run(process.execPath, [CLI, 'enroll', '--url', relay.url, '--token', token, '--store', store, '--keystore', 'software', '--attest', 'off'], { env }))
  t.regex((refused as { stderr?: string }).stderr ?? '', /ERR_CHAIN/)
  t.is(relay.seen.plaintext, 0)
  const plain = await t.throwsAsync(run(process.execPath, [CLI, 'enroll', '--url', relay.url.replace('https:', 'http:'), '--token', token, '--store', store, '--keystore', 'software'], { env }))
  t.regex((plain as { stderr?: string }).stderr ?? '', /ERR_INSECURE_TRANSPORT/)
  t.false(existsSync(join(store, 'cert.pem')))
})
