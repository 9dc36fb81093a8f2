// The CA's seams, checked. SQL lives only in the store modules (each statement once, beside its
// rule), never in the service, the HTTP layer or the CLI; and the reattestor works against the
// small ReattestationSink interface, so a second implementation can stand in for CaService.
import test, { type ExecutionContext } from 'ava'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

import type { AuditEvent } from '../src/audit/index.js'
import { Reattestor, type ReattestationSink, type ReattestOutcome, type ReattestResult } from '../src/attestation/verifier/reattest.js'
import { DEFAULT_ATTESTATION_SETTINGS, type AttestationRecord, type AttestationSettings } from '../src/attestation/verifier/index.js'
import { CaService, selectProvisioner, tokenProvisioner, tokenTpmProvisioner } from '../src/ca/index.js'
import { buildCsr, generateP256Key, RevocationSet, Signer } from '../src/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'

const SRC = join(process.cwd(), 'src')

/**
 * The modules that own a table, and may hold SQL: each store keeps its statements beside its
 * rule, and all run inside the transaction the CaService opens.
 */
const STORES = new Set([
  'src/ca/registry.ts', // certificates, their lineage, settings
  'src/ca/schema.ts', // the registry's migrations
  'src/ca/tokens.ts', // enrollment tokens
  'src/attestation/verifier/store.ts', // attestation nonces and records
  'src/audit/index.ts', // the audit chain
  'src/storage/index.ts', // migrations and pragmas
])

/** Statements and database calls: what "SQL in this file" means. */
const SQL = [
  /\.prepare\s*\(/,
  /\b(?:db|database|this\.#db)\s*\.\s*(?:exec|pragma)\s*\(/,
  /\bSELECT\b[\s\S]{0,200}?\bFROM\b/,
  /\bINSERT\s+INTO\b/,
  /\bUPDATE\s+\w+\s+SET\b/,
  /\bDELETE\s+FROM\b/,
  /\b(?:CREATE|ALTER|DROP)\s+(?:TABLE|INDEX|TRIGGER)\b/,
]

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

/** The SQL patterns `text` matches. */
function sqlIn(text: string): string[] {
  return SQL.filter((pattern) => pattern.test(text)).map(String)
}

test('no file outside the store modules contains SQL, and the CLI none at all', (t) => {
  const offenders: string[] = []
  for (const file of sourceFiles(SRC)) {
    const name = relative(process.cwd(), file)
    if (STORES.has(name)) continue
    const found = sqlIn(readFileSync(file, 'utf8'))
    if (found.length > 0) offenders.push(`${name}: ${found.join(' ')}`)
  }
  t.deepEqual(offenders, [])
  for (const store of STORES) t.true(sqlIn(readFileSync(store, 'utf8')).length > 0, `${store} is listed as a store but holds no SQL (stale entry)`)
  const cli = sourceFiles(join(SRC, 'cli'))
  t.true(cli.length >= 4)
  for (const file of cli) t.false(STORES.has(relative(process.cwd(), file)))
})

test('the SQL scan catches statements and database calls, and not regular expressions', (t) => {
  t.true(sqlIn("db.prepare('SELECT serial FROM certificates')").length > 0)
  t.true(sqlIn('this.#db.exec(migration)').length > 0)
  t.true(sqlIn('const q = `UPDATE tokens SET used_at = ?`').length > 0)
  t.true(sqlIn("'INSERT INTO certificates (serial) VALUES (?)'").length > 0)
  t.true(sqlIn("'DELETE FROM attest_nonces'").length > 0)
  t.deepEqual(sqlIn("/^Bearer (\\S+)$/.exec(header)"), [])
  t.deepEqual(sqlIn("const match = /^--([a-z]+)$/.exec(arg)"), [])
})

test('the certificate INSERT is written once, in the registry', (t) => {
  const hits = sourceFiles(SRC).filter((file) => /INSERT\s+INTO\s+certificates\b/.test(readFileSync(file, 'utf8')))
  t.deepEqual(hits.map((file) => relative(process.cwd(), file)), ['src/ca/registry.ts'])
})

async function freshCa(t: ExecutionContext): Promise<CaService> {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-ca-layout-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir, name: 'Layout' })
  const ca = await CaService.open({ dir })
  t.teardown(() => ca.close())
  return ca
}

/** A second ReattestationSink: the records and decisions of a fleet kept in memory. */
class MemorySink implements ReattestationSink {
  readonly outcomes: ReattestOutcome[] = []
  readonly events: AuditEvent[] = []
  settings: AttestationSettings = { ...DEFAULT_ATTESTATION_SETTINGS, pcrPolicy: {} }
  constructor(readonly trustPem: string) {}
  attestationSettings(): AttestationSettings {
    return this.settings
  }
  attestationStatus(): AttestationRecord | undefined {
    return undefined
  }
  certificate(): { pem: string } | undefined {
    return undefined
  }
  trustBundle(): string {
    return this.trustPem
  }
  revocations(): RevocationSet {
    return new RevocationSet()
  }
  applyReattestation(outcome: ReattestOutcome): ReattestResult {
    this.outcomes.push(outcome)
    return { deviceId: outcome.deviceId, tenant: outcome.tenant ?? null, verdict: outcome.verdict, reason: outcome.reason, action: 'none', revoked: [] }
  }
  recordAudit(event: AuditEvent): void {
    this.events.push(event)
  }
}

test('the reattestor runs against any ReattestationSink: real links, verdicts and run failures go to it', async (t) => {
  const ca = await freshCa(t)
  const key = generateP256Key()
  const { token } = ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const gateway = ca.enroll(enrollRequestFor(token, buildCsr(key, 'gw-1', 'hotel-1')), 'test')
  const identity = { certificateChainPem: gateway.certificate + gateway.caChain, signer: Signer.fromPkcs8(key) }

  // A port that refuses connections, and one that accepts and never answers.
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const silent = createServer((socket) => socket.on('error', () => {}))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => silent.close())
  const silentPort = (silent.address() as AddressInfo).port

  const sink = new MemorySink(ca.trustBundle())
  const nodes = [
    { deviceId: 'node-1', tenant: 'hotel-1', host: '127.0.0.1', port: closedPort },
    { deviceId: 'node-2', tenant: 'hotel-1', host: '127.0.0.1', port: silentPort },
  ]
  const reattestor = new Reattestor({ ca: sink, identity, nodes, timeoutMs: 500 })
  const results = await reattestor.runOnce()
  t.deepEqual(results.map((r) => [r.deviceId, r.verdict]), [['node-1', 'failed'], ['node-2', 'failed']])
  t.deepEqual(sink.outcomes.map((o) => o.reason).sort(), ['ERR_HANDSHAKE_TIMEOUT', 'ERR_UNREACHABLE'].sort())

  sink.settings = { ...sink.settings, mode: 'off' }
  t.deepEqual(await reattestor.runOnce(), [], 'mode off: nothing is checked')
  t.is(sink.outcomes.length, 2)

  sink.settings = { ...sink.settings, mode: 'optional' }
  const failing = new Reattestor({ ca: sink, identity, nodes: () => { throw new Error('inventory down') } })
  failing.start({ intervalMs: 100 })
  for (let i = 0; i < 50 && sink.events.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  await failing.stop()
  t.like(sink.events[0], { action: 'reattest.run', outcome: 'error', reason: 'ERR_INTERNAL' })
})

test('enrollment picks its provisioner from the attestation mode and the request, and audits which', async (t) => {
  const ca = await freshCa(t)
  t.is(selectProvisioner(ca.attestationSettings(), { tokenId: '', tokenProof: '', csr: '' }), tokenProvisioner)
  const enroll = (device: string, attestation?: unknown) => {
    const { token } = ca.createToken({ deviceId: device, tenant: 'hotel-1' })
    return ca.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), device, 'hotel-1'), attestation === undefined ? {} : { attestation: attestation as never }), 'test')
  }
  const lastEnroll = () => ca.auditRecords(10).find((row) => row.action === 'enroll')
  enroll('plain-1')
  t.like(lastEnroll(), { outcome: 'allow', detail: { provisioner: 'token', attestation: 'none', attestation_mode: 'optional' } })

  ca.setAttestationSettings({ mode: 'off' })
  enroll('ignored-1', { nonce: Buffer.alloc(32), quote: {} })
  t.like(lastEnroll(), { outcome: 'allow', detail: { provisioner: 'token', attestation: 'ignored' } })

  ca.setAttestationSettings({ mode: 'required' })
  t.is(selectProvisioner(ca.attestationSettings(), { tokenId: '', tokenProof: '', csr: '' }), tokenTpmProvisioner)
  t.throws(() => enroll('bare-1'), { code: 'ERR_ATTEST_REQUIRED' })
  t.like(lastEnroll(), { outcome: 'deny', reason: 'ERR_ATTEST_REQUIRED', detail: { provisioner: 'token-tpm', device: 'bare-1' } })
  t.throws(() => enroll('forged-1', { nonce: Buffer.alloc(32), quote: {} }), { code: 'ERR_ATTEST_NONCE' }, 'a nonce the CA never issued')
  t.deepEqual(ca.listCertificates().map((c) => c.deviceId), ['plain-1', 'ignored-1'])
})
