import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import type { AuditRecord } from '../src/audit/index.js'
import { CaService } from '../src/ca/index.js'
import { CA_MIGRATIONS } from '../src/ca/schema.js'
import { TokenStore } from '../src/ca/tokens.js'
import { CA_API_IDENTITY, enrollRequestFor, nonceRequestFor } from '../src/protocol/enroll.js'
import { openDatabase } from '../src/storage/index.js'
import { akBindingMessage, buildCsr, generateP256Key, RevocationSet, SigningKey, Tpm, TrustStore, verifyPeer } from '../src/index.js'
import { caFetch, serveCa } from './helpers/ca-site.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')

async function freshCa(t: ExecutionContext, now?: () => number) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-ca-attest-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Attest Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca'), ...(now !== undefined && { now }) })
  t.teardown(() => ca.close())
  return { dir, ca }
}

/** The CA's enrollment API over TLS (tenant hotel-1); `caFetch` talks to it as a device would. */
async function serve(t: ExecutionContext, ca: CaService, rateLimit = { perSecond: 1000, burst: 1000 }) {
  return serveCa(t, ca, { rateLimit })
}

/** A request's proof of `token` over `csr` and `nodeId`, in wire form (the token itself never travels). */
function proofOf(token: string, csr: string, nodeId?: string): { token_id: string; token_proof: string } {
  const request = enrollRequestFor(token, csr, nodeId === undefined ? {} : { nodeId })
  return { token_id: request.tokenId, token_proof: request.tokenProof }
}

/** A nonce request of the holder of `token`, in wire form. */
function nonceBody(token: string, nodeId: string): { node_id: string; token_id: string; token_proof: string } {
  const request = nonceRequestFor(token, nodeId)
  return { node_id: nodeId, token_id: request.tokenId, token_proof: request.tokenProof }
}

async function post(url: string, body: unknown, type = 'application/json') {
  const response = await caFetch(url, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

/** A node whose certificate key and attestation key live in a fresh swtpm. */
async function tpmNode(t: ExecutionContext, deviceId: string) {
  const tpm = Tpm.open((await startSwtpm(t)).tcti)
  const key = tpm.loadKey(await tpm.createSigningKey())
  const ak = await tpm.createAttestationKey()
  return {
    tpm,
    csr: key.buildCsr(deviceId, 'hotel-1'),
    /** The `attestation` member of an enrollment: a quote over `quotedNonce`, presented with `nonce`. */
    async attestation(nonce: string, pcrs: number[], quotedNonce = nonce, sign: (message: Buffer) => Buffer = (m) => key.sign(m)) {
      const quote = await tpm.quote(ak, Buffer.from(quotedNonce, 'hex'), pcrs)
      return {
        type: 'tpm2-quote',
        nonce,
        ak_public_pem: quote.akPublicPem,
        ak_binding: sign(akBindingMessage(quote.akPublicPem)).toString('base64'),
        attest: quote.attest.toString('base64'),
        signature: quote.signature.toString('base64'),
        pcr_values: quote.pcrValues.toString('base64'),
      }
    },
  }
}

function auditRows(ca: CaService, action: string): AuditRecord[] {
  return ca.auditRecords(500).filter((row) => row.action === action).reverse()
}

tpmTestSerial('an enrollment that requires attestation succeeds with a genuine quote and refuses a stale nonce or a wrong PCR', async (t) => {
  let now = Date.now()
  const { ca } = await freshCa(t, () => now)
  const url = await serve(t, ca)
  const node = await tpmNode(t, 'node-1')
  const pcrs = Object.fromEntries(node.tpm.readPcrs([0, 7]).map((p) => [p.index, p.value]))
  ca.setAttestationSettings({ mode: 'required', pcrPolicy: pcrs })
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const { token: node2Token } = ca.createToken({ deviceId: 'node-2', tenant: 'hotel-1' })
  const nonceFor = async (nodeId: string) =>
    (await post(`${url}/v1/attest/nonce`, nonceBody(nodeId === 'node-2' ? node2Token : token, nodeId))).json as { nonce: string; expires_at: number; pcrs: number[] }
  const enroll = (attestation: unknown, withToken = token) => post(`${url}/v1/enroll`, { ...proofOf(withToken, node.csr, 'node-1'), csr: node.csr, node_id: 'node-1', attestation })

  t.like(await enroll(undefined), { status: 403, json: { code: 'ERR_ATTEST_REQUIRED' } })

  const issued = await nonceFor('node-1')
  t.regex(issued.nonce, /^[0-9a-f]{64}$/)
  t.is(issued.expires_at, now + 300_000)
  t.deepEqual(issued.pcrs, [0, 1, 2, 3, 4, 5, 6, 7])

  // Refused: a quote over another nonce (which burns the nonce presented), a nonce of another
  // node, an AK bound by another key, a PCR the policy does not expect, an expired nonce.
  const other = await nonceFor('node-1')
  t.like(await enroll(await node.attestation(other.nonce, issued.pcrs, randomBytes(32).toString('hex'))), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  t.like(await enroll(await node.attestation(other.nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } }, 'a refused attempt burned its nonce')
  const foreign = await nonceFor('node-2')
  t.like(await enroll(await node.attestation(foreign.nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  const stranger = SigningKey.fromPkcs8('ecdsa-p256-sha256', generateP256Key())
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs, undefined, (m) => stranger.sign(m))), { status: 403, json: { code: 'ERR_ATTEST_BINDING' } })
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, [7])), { status: 403, json: { code: 'ERR_ATTEST_PCR_MISMATCH' } }, 'PCR 0 of the policy is not quoted')
  ca.setAttestationSettings({ pcrPolicy: { ...pcrs, 7: 'ab'.repeat(32) } })
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_PCR_MISMATCH' } })
  ca.setAttestationSettings({ pcrPolicy: pcrs })
  const expiring = await nonceFor('node-1')
  const late = await node.attestation(expiring.nonce, issued.pcrs)
  now += 301_000
  t.like(await enroll(late), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  const forged = await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs)
  const attest = Buffer.from(forged.attest, 'base64')
  attest[attest.length - 1]! ^= 1
  t.like(await enroll({ ...forged, attest: attest.toString('base64') }), { status: 403, json: { code: 'ERR_ATTEST_SIGNATURE' } })
  t.is(ca.attestationStatus('node-1'), undefined, 'no refusal enrolled anything')

  // The genuine quote over a fresh nonce: enrolled, and the AK and PCRs are on record.
  const fresh = await nonceFor('node-1')
  const genuine = await node.attestation(fresh.nonce, fresh.pcrs)
  const accepted = await enroll(genuine)
  t.is(accepted.status, 200)
  const peer = verifyPeer(`${accepted.json!.certificate as string}${accepted.json!.ca_cert as string}`, TrustStore.fromPem(ca.trustBundle()), new RevocationSet())
  const status = ca.attestationStatus('node-1', 'hotel-1')!
  t.like(status, { attested: true, serial: peer.serial, akPublicPem: genuine.ak_public_pem, lastAttestedAtMs: now, demotedAtMs: null })
  t.deepEqual(Object.keys(status.pcrs), ['0', '1', '2', '3', '4', '5', '6', '7'])
  t.is(status.pcrs[7], pcrs[7])

  // The nonce was consumed with the enrollment: a second enrollment cannot reuse it.
  const { token: again } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  t.like(await enroll(genuine, again), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })

  // Every outcome is audited with its reason code.
  const enrolls = auditRows(ca, 'enroll')
  t.deepEqual(
    enrolls.map((row) => row.reason),
    ['ERR_ATTEST_REQUIRED', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_BINDING', 'ERR_ATTEST_PCR_MISMATCH', 'ERR_ATTEST_PCR_MISMATCH', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_SIGNATURE', 'ok', 'ERR_ATTEST_NONCE'],
  )
  t.deepEqual(enrolls.map((row) => row.detail?.nonce ?? null), [null, 'consumed', 'used', 'unknown', 'consumed', 'consumed', 'consumed', 'expired', 'consumed', 'consumed', 'used'])
  t.like(enrolls[9], { outcome: 'allow', detail: { attestation: 'verified', attestation_mode: 'required', serial: peer.serial } })
  t.true(auditRows(ca, 'attest.nonce').every((row) => row.outcome === 'allow'))
  t.true(ca.verifyAudit() > 20)
})

test('optional mode enrolls without attestation and records the device as not attested; off ignores attestations', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  t.like(ca.attestationSettings(), { mode: 'optional', onDrift: 'revoke', nonceTtlSeconds: 300, pcrPolicy: {} })
  const enroll = (deviceId: string, attestation?: unknown) => {
    const csr = buildCsr(generateP256Key(), deviceId, 'hotel-1')
    return post(`${url}/v1/enroll`, { ...proofOf(ca.createToken({ deviceId, tenant: 'hotel-1' }).token, csr), csr, attestation })
  }
  t.is((await enroll('plain')).status, 200)
  t.like(ca.attestationStatus('plain'), { attested: false, akPublicPem: null, lastAttestedAtMs: null, pcrs: {} })

  // Present means verified: an attestation that does not hold is refused, not ignored.
  const { nonce } = ca.issueNonce(nonceRequestFor(ca.createToken({ deviceId: 'faker', tenant: 'hotel-1' }).token, 'faker'), 'test')
  const junk = { type: 'tpm2-quote', nonce, ak_public_pem: 'not a key', ak_binding: 'AAAA', attest: 'AAAA', signature: 'AAAA', pcr_values: 'AAAA' }
  const refused = await enroll('faker', junk)
  t.true(refused.status === 400 || refused.status === 403)
  t.regex(String(refused.json!.code), /^ERR_ATTEST_/)
  t.is(ca.attestationStatus('faker'), undefined)

  ca.setAttestationSettings({ mode: 'off' })
  t.is((await enroll('faker', junk)).status, 200)
  t.like(ca.attestationStatus('faker'), { attested: false })
  t.deepEqual(auditRows(ca, 'enroll').map((row) => [row.reason, row.detail?.attestation]), [['ok', 'none'], [refused.json!.code, 'refused'], ['ok', 'ignored']])
})

test('the nonce endpoint and attested enrollments refuse malformed input with typed, audited errors', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const nonceUrl = `${url}/v1/attest/nonce`
  t.like(await post(nonceUrl, '{"node_id":'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, '["node-1"]'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, { node_id: 'node-1' }, 'text/plain'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, {}), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, { node_id: 42 }), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  const someProof = { token_id: 'ab'.repeat(32), token_proof: 'ab'.repeat(64) }
  t.like(await post(nonceUrl, { node_id: '../etc/passwd', ...someProof }), { status: 400, json: { code: 'ERR_IDENTITY' } })
  t.like(await post(nonceUrl, { node_id: 'node-1', ...someProof, padding: 'x'.repeat(4096) }), { status: 413, json: { code: 'ERR_PAYLOAD_TOO_LARGE' } })
  t.like(await caFetch(nonceUrl), { status: 405 })
  const denied = ca.auditRecords(20).filter((row) => row.outcome === 'deny').map((row) => row.reason)
  t.true(denied.includes('ERR_PAYLOAD_TOO_LARGE') && denied.includes('ERR_METHOD_NOT_ALLOWED') && denied.filter((r) => r === 'ERR_BAD_REQUEST').length >= 5, 'refused bodies are audited')

  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const csr = buildCsr(generateP256Key(), 'node-1', 'hotel-1')
  const { nonce } = ca.issueNonce(nonceRequestFor(token, 'node-1'), 'test')
  const valid = { type: 'tpm2-quote', nonce, ak_public_pem: '-----BEGIN PUBLIC KEY-----', ak_binding: 'AAAA', attest: 'AAAA', signature: 'AAAA', pcr_values: 'AAAA' }
  const enroll = (attestation: unknown) => post(`${url}/v1/enroll`, { ...proofOf(token, csr), csr, attestation })
  // A nonce that is not 16 to 64 bytes of hex is a malformed request (the core's codec), not an unknown nonce.
  for (const attestation of ['tpm2-quote', [valid], { ...valid, type: 'sgx' }, { ...valid, nonce: 7 }, { ...valid, nonce: 'zz' }, { ...valid, attest: 'not base64!' }, { ...valid, signature: '' }, { ...valid, pcr_values: 'A'.repeat(20_000) }, { ...valid, extra: 1 }]) {
    t.like(await enroll(attestation), { status: 400, json: { code: 'ERR_BAD_REQUEST' } }, JSON.stringify(attestation).slice(0, 80))
  }
  t.like(await enroll({ ...valid, nonce: randomBytes(32).toString('hex') }), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  t.like(await post(`${url}/v1/enroll`, { ...proofOf(token, csr), csr, attestation: valid, padding: 'x'.repeat(70_000) }), { status: 413 })
  t.like(await enroll(valid), { status: 400, json: { code: 'ERR_ATTEST_MALFORMED' } }, 'well-typed garbage is malformed')
  t.like(await enroll(valid), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } }, 'and it burned its nonce')
  t.is(ca.listCertificates().filter((record) => record.deviceId !== CA_API_IDENTITY.deviceId).length, 0, 'none but the CA API certificate')
})

test('nonces are single use, bounded per node, rate limited, and their lifetime is a setting', async (t) => {
  // The CA's clock, moved by hand; it starts at the real time so that the CA API's TLS certificate can be issued.
  let now = Date.now()
  const { dir, ca } = await freshCa(t, () => now)
  const holder = (nodeId: string) => nonceRequestFor(ca.createToken({ deviceId: nodeId, tenant: 'hotel-1' }).token, nodeId)
  const [node1, node2] = [holder('node-1'), holder('node-2')]
  const first = ca.issueNonce(node1, 'test')
  for (let i = 0; i < 20; i++) ca.issueNonce(node1, 'test')
  const db = openDatabase(join(dir, 'ca', 'registry.db'), { migrations: CA_MIGRATIONS })
  t.teardown(() => db.close())
  t.is((db.prepare("SELECT count(*) AS n FROM attest_nonces WHERE node_id = 'node-1'").get() as { n: number }).n, 16)
  t.is(ca.nonces.consume(first.nonce, 'node-1'), 'unknown', 'the oldest gave way')
  ca.setAttestationSettings({ nonceTtlSeconds: 30 })
  const short = ca.issueNonce(node2, 'test')
  t.is(short.expiresAt, now + 30_000)
  t.is(ca.nonces.consume(short.nonce, 'node-1'), 'unknown', 'bound to its node')
  now += 30_000
  t.is(ca.nonces.consume(short.nonce, 'node-2'), 'expired')
  const once = ca.issueNonce(node2, 'test')
  t.is(ca.nonces.consume(once.nonce.toUpperCase(), 'node-2'), 'consumed')
  t.is(ca.nonces.consume(once.nonce, 'node-2'), 'used')

  const url = await serve(t, ca, { perSecond: 0.001, burst: 2 })
  const statuses = []
  const node3 = nonceBody(ca.createToken({ deviceId: 'node-3', tenant: 'hotel-1' }).token, 'node-3')
  for (let i = 0; i < 4; i++) statuses.push((await post(`${url}/v1/attest/nonce`, node3)).status)
  t.deepEqual(statuses, [200, 200, 429, 429])
})

test('attestation settings: checked, audited, and managed from the CLI', async (t) => {
  const { dir, ca } = await freshCa(t)
  const policy = { 0: 'AB'.repeat(32), 7: '01'.repeat(32) }
  t.deepEqual(ca.setAttestationSettings({ mode: 'required', pcrPolicy: policy, onDrift: 'demote' }, 'admin'), {
    mode: 'required',
    pcrPolicy: { 0: 'ab'.repeat(32), 7: '01'.repeat(32) },
    onDrift: 'demote',
    nonceTtlSeconds: 300,
  })
  for (const bad of [{ mode: 'sometimes' }, { onDrift: 'ignore' }, { pcrPolicy: { 24: '00'.repeat(32) } }, { pcrPolicy: { 1: 'abc' } }, { pcrPolicy: [] }, { nonceTtlSeconds: 5 }, { nonceTtlSeconds: 1.5 }]) {
    t.throws(() => ca.setAttestationSettings(bad), { code: 'ERR_INVALID_ARG' }, JSON.stringify(bad))
  }
  t.like(ca.attestationSettings(), { mode: 'required', onDrift: 'demote' }, 'a refused change changes nothing')
  const rows = auditRows(ca, 'attest.settings')
  t.like(rows[0], { actor: 'admin', outcome: 'allow', detail: { attest_mode: 'required', attest_on_drift: 'demote' } })
  t.is(rows.filter((row) => row.outcome === 'deny' && row.reason === 'ERR_INVALID_ARG').length, 7)
  ca.close()

  const caDir = join(dir, 'ca')
  const token = (await run('node', [CLI, 'ca', 'token', '--dir', caDir, '--device', 'kiosk-1', '--tenant', 'hotel-1', '--roles', 'pos-terminal,door'])).stdout.trim()
  const reopened = await CaService.open({ dir: caDir })
  t.like(reopened.tokens.check(enrollRequestFor(token, buildCsr(generateP256Key(), 'kiosk-1', 'hotel-1'))), { roles: ['pos-terminal', 'door'] })
  reopened.close()
  const shown = JSON.parse((await run('node', [CLI, 'ca', 'attestation', '--dir', caDir])).stdout)
  t.like(shown, { mode: 'required', onDrift: 'demote' })
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({ 16: '00'.repeat(32) }))
  const changed = JSON.parse((await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--mode', 'optional', '--pcr-policy', join(dir, 'policy.json'), '--on-drift', 'revoke', '--nonce-ttl', '60'])).stdout)
  t.deepEqual(changed, { mode: 'optional', pcrPolicy: { 16: '00'.repeat(32) }, onDrift: 'revoke', nonceTtlSeconds: 60 })
  writeFileSync(join(dir, 'bad.json'), '{"0": "nope"}')
  const refused = await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--pcr-policy', join(dir, 'bad.json')]).catch((e: { code: number; stderr: string }) => e)
  t.is((refused as { code: number }).code, 1)
  t.like(JSON.parse((refused as { stderr: string }).stderr), { code: 'ERR_INVALID_ARG' })
  const missing = await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--pcr-policy', join(dir, 'nothing.json')]).catch((e: { code: number; stderr: string }) => e)
  t.like(JSON.parse((missing as { stderr: string }).stderr), { code: 'ERR_INVALID_ARG' })
})

test('a registry of before attestation migrates: its tokens get no roles, and (no root pin, no proof key) can no longer enroll', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-migrate-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'registry.db')
  const old = openDatabase(file, { migrations: CA_MIGRATIONS.slice(0, 1) })
  const token = `ztm1.${randomBytes(32).toString('base64url')}`
  old.prepare('INSERT INTO tokens (hash, device_id, tenant, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(createHash('sha256').update(token).digest('hex'), 'old-1', 'hotel-1', Date.now(), Date.now() + 60_000)
  old.close()
  const db = openDatabase(file, { migrations: CA_MIGRATIONS })
  t.teardown(() => db.close())
  t.is(db.pragma('user_version', { simple: true }), CA_MIGRATIONS.length)
  t.like(db.prepare('SELECT device_id, tenant, roles, proof_key FROM tokens').get(), { device_id: 'old-1', tenant: 'hotel-1', roles: '[]', proof_key: null })
  // A token of the first format would have to travel to be checked, and pins no root: refused.
  const tokenId = createHash('sha256').update(token).digest('hex')
  t.throws(() => new TokenStore(db).check({ tokenId, tokenProof: '00'.repeat(64), csr: 'csr' }), { code: 'ERR_TOKEN_INVALID' })
  t.deepEqual(db.prepare('SELECT * FROM attestations').all(), [])
})
