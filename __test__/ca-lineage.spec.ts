// Certificate lineage (issue 10 §2): a certificate is rotated once, revocation by serial or by key
// follows the rotations, a rotated certificate is superseded when its overlap ends, and enrolling
// a device again supersedes what it held. The attack runs against the enrollment API on loopback
// and the real CLI.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { CA_MIGRATIONS, CaService, Registry, rotationMessage } from '../src/ca/index.js'
import { createEnrollmentServer } from '../src/ca/server.js'
import { buildCsr, encodeEnrollRequest, encodeRotationRequest, generateP256Key, inspectCertificate, RevocationSet, SigningKey, TrustStore, verifyPeer, type RotationRequest } from '../src/index.js'
import { openDatabase } from '../src/storage/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')
const DAY_MS = 86_400_000

async function freshCa(t: ExecutionContext, init: { now?: () => number; rotationOverlapSeconds?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-lineage-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Lineage Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca'), ...init })
  t.teardown(() => ca.close())
  return { dir, caDir: join(dir, 'ca'), ca }
}

async function serve(t: ExecutionContext, ca: CaService) {
  const server = createEnrollmentServer({ ca, rateLimit: { perSecond: 1000, burst: 1000 }, maxConnectionsPerSource: 1000 })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** POSTs a JSON body: an object, or bytes the core encoded. */
async function post(url: string, body: object, headers: Record<string, string> = {}) {
  const bytes = body instanceof Uint8Array ? body : JSON.stringify(body)
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: bytes, signal: AbortSignal.timeout(20_000) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

/** A device key (PKCS#8) and what it signs with. */
function deviceKey() {
  const pkcs8 = generateP256Key()
  return { pkcs8, signer: SigningKey.fromPkcs8('ecdsa-p256-sha256', pkcs8) }
}

/** A rotation request for `certificate`, signed by its key, for a new key's CSR. */
function rotation(certificate: string, key: ReturnType<typeof deviceKey>, next: Buffer, timestampMs = Date.now()): RotationRequest {
  const csr = buildCsr(next, 'ignored', 'ignored')
  return { certificate, csr, timestampMs, signature: key.signer.sign(rotationMessage(timestampMs, csr)) }
}

/** Enrolls `deviceId` with a fresh key, in process. */
function enroll(ca: CaService, deviceId: string, tenant = 'hotel-1') {
  const key = deviceKey()
  const { token } = ca.createToken({ deviceId, tenant, roles: ['pos:cashier'] })
  return { key, ...ca.enroll(enrollRequestFor(token, buildCsr(key.pkcs8, deviceId, tenant)), 'test') }
}

/** Rotates `certificate` (held with `key`) to a new key, in process, at `timestamp` (the CA's clock). */
function rotate(ca: CaService, certificate: string, key: ReturnType<typeof deviceKey>, timestamp = Date.now()) {
  const next = deviceKey()
  return { key: next, ...ca.rotate(rotation(certificate, key, next.pkcs8, timestamp), 'test') }
}

/** Whether the CA's current CRL lets `certificate` through at `nowMs` (the CA's clock). */
function verdict(ca: CaService, certificate: string, nowMs = Date.now()): string {
  try {
    verifyPeer(certificate + ca.caChain(), TrustStore.fromPem(ca.trustBundle()), ca.revocations(), { nowMs })
    return 'valid'
  } catch (error) {
    return (error as { code: string }).code
  }
}

test('the stolen certificate attack: 50 rotations mint one successor, revoke --serial on the original puts its successors on the CRL, re-enrolling supersedes', async (t) => {
  const { dir, caDir, ca } = await freshCa(t)
  const url = await serve(t, ca)
  const stolen = deviceKey()
  const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1', roles: ['pos:cashier'] })
  const original = await post(`${url}/v1/enroll`, encodeEnrollRequest(enrollRequestFor(token, buildCsr(stolen.pkcs8, 'tablet-7', 'hotel-1'))))
  t.is(original.status, 200)
  const originalPem = original.json!.certificate as string
  const originalSerial = original.json!.serial as string

  // The thief rotates the stolen certificate 50 times at once, each onto a new key of its own.
  const keys = Array.from({ length: 50 }, () => deviceKey())
  const answers = await Promise.all(keys.map((next, i) => post(`${url}/v1/rotate`, encodeRotationRequest(rotation(originalPem, stolen, next.pkcs8, Date.now() - i)))))
  const minted = answers.filter((a) => a.status === 200)
  t.is(minted.length, 1, 'one rotation succeeds')
  t.true(answers.filter((a) => a.status !== 200).every((a) => a.status === 409 && a.json!.code === 'ERR_ALREADY_ROTATED'))
  t.is(ca.listCertificates().length, 2, 'the registry holds the original and one successor')
  const successorSerial = minted[0]!.json!.serial as string
  t.like(ca.certificate(successorSerial), { predecessor: originalSerial })
  const refusals = ca.auditRecords(200).filter((r) => r.action === 'rotate' && r.reason === 'ERR_ALREADY_ROTATED')
  t.is(refusals.length, 49, 'every refused rotation is audited')
  t.true(refusals.every((r) => r.outcome === 'deny' && r.detail?.successor === successorSerial && r.detail?.old_serial === originalSerial))

  // The successor rotates once more (its own right), so the chain is three long.
  const successorKey = keys[answers.indexOf(minted[0]!)]!
  const grandchild = deviceKey()
  const third = await post(`${url}/v1/rotate`, encodeRotationRequest(rotation(minted[0]!.json!.certificate as string, successorKey, grandchild.pkcs8)))
  t.is(third.status, 200)
  const chainSerials = [originalSerial, successorSerial, third.json!.serial as string]

  // The operator revokes the stolen original by serial, with the CLI: the whole chain goes.
  const revoked = JSON.parse((await run('node', [CLI, 'ca', 'revoke', '--dir', caDir, '--serial', originalSerial, '--reason', 'keyCompromise'])).stdout) as { revoked: string[] }
  t.deepEqual(revoked.revoked, chainSerials)
  const der = Buffer.from(await (await fetch(`${url}/v1/crl?format=der`)).arrayBuffer())
  const trust = TrustStore.fromPem(ca.trustBundle())
  const revocations = new RevocationSet()
  revocations.addCrl(der, ca.caChain(), trust)
  for (const pem of [originalPem, minted[0]!.json!.certificate as string, third.json!.certificate as string]) {
    t.throws(() => verifyPeer(pem + ca.caChain(), trust, revocations), { code: 'ERR_CERT_REVOKED' })
  }
  writeFileSync(join(dir, 'crl.der'), der)
  const listed = (await run('openssl', ['crl', '-inform', 'DER', '-in', join(dir, 'crl.der'), '-noout', '-text'])).stdout.toLowerCase()
  for (const serial of chainSerials) t.true(listed.includes(serial), `${serial} is on the CRL`)

  // The device is enrolled again: whatever it held before is superseded at once.
  const first = await post(`${url}/v1/enroll`, encodeEnrollRequest(enrollRequestFor(ca.createToken({ deviceId: 'kiosk-3', tenant: 'hotel-1' }).token, buildCsr(generateP256Key(), 'kiosk-3', 'hotel-1'))))
  const again = await post(`${url}/v1/enroll`, encodeEnrollRequest(enrollRequestFor(ca.createToken({ deviceId: 'kiosk-3', tenant: 'hotel-1' }).token, buildCsr(generateP256Key(), 'kiosk-3', 'hotel-1'))))
  t.is(again.status, 200)
  writeFileSync(join(dir, 'old.pem'), first.json!.certificate as string)
  writeFileSync(join(dir, 'new.pem'), again.json!.certificate as string)
  const old = await run('node', [CLI, 'verify-peer', '--dir', caDir, '--cert', join(dir, 'old.pem')]).catch((e: { code: number; stdout: string }) => e)
  t.like(JSON.parse((old as { stdout: string }).stdout), { code: 'ERR_CERT_REVOKED' })
  t.like(JSON.parse((await run('node', [CLI, 'verify-peer', '--dir', caDir, '--cert', join(dir, 'new.pem')])).stdout), { deviceId: 'kiosk-3', serial: again.json!.serial })
  t.like(ca.certificate(first.json!.serial as string), { revocationReason: 'superseded' })
  t.true(ca.auditRecords(10).some((r) => r.action === 'enroll' && r.detail?.superseded === first.json!.serial))
  t.true(ca.verifyAudit() > 50)
})

test('a rotated certificate stays valid through the overlap, then is revoked as superseded dated at its end', async (t) => {
  let now = Date.now()
  const { ca } = await freshCa(t, { now: () => now, rotationOverlapSeconds: 3600 })
  const first = enroll(ca, 'gw-1')
  now += DAY_MS
  const second = rotate(ca, first.certificate, first.key, now)
  t.like(ca.certificate(first.serial), { overlapEndsAtMs: now + 3_600_000, revokedAtMs: null })
  now += 3_600_000 - 1
  t.is(verdict(ca, first.certificate, now), 'valid', 'the overlap: both certificates are good')
  t.is(verdict(ca, second.certificate, now), 'valid')
  now += 1
  t.is(verdict(ca, first.certificate, now), 'ERR_CERT_REVOKED', 'the overlap ended')
  t.is(verdict(ca, second.certificate, now), 'valid')
  t.like(ca.certificate(first.serial), { revokedAtMs: now, revocationReason: 'superseded' })
  t.like(ca.auditRecords(5).find((r) => r.action === 'supersede'), { outcome: 'allow', detail: { revoked: first.serial, count: 1 } })
  // Superseded, it cannot rotate again either: the lineage goes on from its successor only.
  t.throws(() => rotate(ca, first.certificate, first.key, now), { code: 'ERR_CERT_REVOKED' })
  const third = rotate(ca, second.certificate, second.key, now)
  t.like(ca.certificate(third.serial), { predecessor: second.serial })
  // The theft comes to light after the overlap: revoking the superseded original still reaches its successors.
  t.deepEqual(ca.revoke({ serial: first.serial }, 'keyCompromise'), [second.serial, third.serial])
  t.like(ca.certificate(first.serial), { revocationReason: 'superseded' })
})

test('the overlap never outlives the rotated certificate: one rotated in its grace period is superseded at once', async (t) => {
  let now = Date.now()
  const { ca } = await freshCa(t, { now: () => now })
  const first = enroll(ca, 'gw-2')
  now = first.notAfterMs + DAY_MS // offline past expiry, inside the grace period
  const second = rotate(ca, first.certificate, first.key, now)
  t.like(ca.certificate(first.serial), { overlapEndsAtMs: first.notAfterMs })
  ca.crl()
  t.like(ca.certificate(first.serial), { revokedAtMs: first.notAfterMs, revocationReason: 'superseded' })
  t.is(verdict(ca, second.certificate, now), 'valid')
})

test('a rotation replayed or sent twice is refused as already rotated, and nothing is issued', async (t) => {
  const { ca } = await freshCa(t)
  const first = enroll(ca, 'kiosk-1')
  const next = deviceKey()
  const request = rotation(first.certificate, first.key, next.pkcs8)
  const second = ca.rotate(request, 'test')
  t.throws(() => ca.rotate(request, 'test'), { code: 'ERR_ALREADY_ROTATED' }, 'the same request again')
  t.throws(() => ca.rotate(rotation(first.certificate, first.key, next.pkcs8, Date.now() + 1), 'test'), { code: 'ERR_ALREADY_ROTATED' }, 'a new request for the same certificate')
  t.deepEqual(
    ca.listCertificates().map((c) => c.serial),
    [first.serial, second.serial],
  )
  t.like(ca.auditRecords(1)[0], { action: 'rotate', outcome: 'deny', reason: 'ERR_ALREADY_ROTATED', detail: { successor: second.serial } })
})

test('revoking a key revokes every certificate of it and their whole live lineage; a serial takes the overlapping predecessor too', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const first = enroll(ca, 'till-1')
  const second = rotate(ca, first.certificate, first.key)
  const third = rotate(ca, second.certificate, second.key)
  const bystander = enroll(ca, 'till-2')
  const spki = inspectCertificate(first.certificate).spkiSha256
  const typed = spki.toUpperCase().match(/../g)!.join(':') // as openssl prints a fingerprint
  const admin = readFileSync(join(ca.dir, 'admin-token'), 'utf8')
  t.like(await post(`${url}/v1/revoke`, { spki_sha256: 'abc' }, { authorization: `Bearer ${admin}` }), { status: 400, json: { code: 'ERR_INVALID_ARG' } })
  t.is((await post(`${url}/v1/revoke`, { spki_sha256: typed, reason: 'keyCompromise' }, { authorization: `Bearer ${admin}` })).status, 204)
  for (const serial of [first.serial, second.serial, third.serial]) t.like(ca.certificate(serial), { revocationReason: 'keyCompromise' })
  t.is(verdict(ca, third.certificate), 'ERR_CERT_REVOKED', 'the latest successor, on a key never revoked itself')
  t.is(verdict(ca, bystander.certificate), 'valid')
  t.like(ca.auditRecords(5).find((r) => r.action === 'revoke'), { outcome: 'allow', detail: { spki_sha256: spki, count: 3 } })

  // By serial, in the middle of a lineage: the predecessor still in its overlap and the successor go with it.
  const a = enroll(ca, 'till-3')
  const b = rotate(ca, a.certificate, a.key)
  const c = rotate(ca, b.certificate, b.key)
  t.deepEqual(ca.revoke({ serial: b.serial }, 'keyCompromise'), [a.serial, b.serial, c.serial])
  t.throws(() => ca.revoke({ serial: b.serial }), { code: 'ERR_NOT_FOUND' }, 'nothing live is left of it')
  t.throws(() => ca.revoke({ spkiSha256: 'zz' }), { code: 'ERR_INVALID_ARG' })
})

test('revoking a device revokes all of its certificates, rotated ones included, and no other device', async (t) => {
  const { caDir, ca } = await freshCa(t)
  const first = enroll(ca, 'pos-1')
  const second = rotate(ca, first.certificate, first.key)
  const third = rotate(ca, second.certificate, second.key)
  const other = enroll(ca, 'pos-1', 'hotel-2')
  const revoked = JSON.parse((await run('node', [CLI, 'ca', 'revoke', '--dir', caDir, '--device', 'pos-1', '--tenant', 'hotel-1'])).stdout) as { revoked: string[] }
  t.deepEqual(revoked.revoked, [first.serial, second.serial, third.serial])
  for (const pem of [first.certificate, second.certificate, third.certificate]) t.is(verdict(ca, pem), 'ERR_CERT_REVOKED')
  t.is(verdict(ca, other.certificate), 'valid', 'the same device id in another tenant is another device')
  const both = await run('node', [CLI, 'ca', 'revoke', '--dir', caDir, '--serial', first.serial, '--device', 'pos-1']).catch((e: { code: number; stderr: string }) => e)
  t.like(JSON.parse((both as { stderr: string }).stderr), { code: 'ERR_INVALID_ARG' })
})

test('a registry of before lineage migrates: its certificates have no predecessor, and the replay marks are gone', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-migrate-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'registry.db')
  const old = openDatabase(file, { migrations: CA_MIGRATIONS.slice(0, 2) })
  const insert = old.prepare('INSERT INTO certificates (serial, device_id, tenant, spki_sha256, not_before, not_after, issued_at, pem) VALUES (?, ?, ?, ?, 0, 1, 0, ?)')
  insert.run('0a', 'old-1', 'hotel-1', 'ab'.repeat(32), 'pem')
  insert.run('0b', 'old-1', 'hotel-1', 'cd'.repeat(32), 'pem')
  old.prepare('INSERT INTO rotations (serial, last_timestamp) VALUES (?, ?)').run('0a', 1)
  old.close()
  const registry = Registry.open(file)
  t.teardown(() => registry.close())
  t.is(registry.db.pragma('user_version', { simple: true }), CA_MIGRATIONS.length)
  t.like(registry.certificate('0a'), { predecessor: null, overlapEndsAtMs: null, revokedAtMs: null })
  t.is(registry.successor('0a'), undefined)
  t.deepEqual(registry.liveSerials({ spkiSha256: 'cd'.repeat(32) }), ['0b'])
  t.deepEqual(registry.db.prepare("SELECT name FROM sqlite_master WHERE name = 'rotations'").all(), [])
})
