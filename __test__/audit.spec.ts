import test from 'ava'
import Database from 'better-sqlite3'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CaService } from '../src/ca/index.js'
import { AUDIT_CHECKPOINT_MIGRATION, AUDIT_MIGRATION, AuditLog, PRUNE_ACTION, verifyAuditCheckpoint, type AuditCheckpointInit, type AuditEvent } from '../src/audit/index.js'
import { StorageError } from '../src/errors.js'
import { buildCsr, CertificateAuthority, generateP256Key, Signer, TrustStore } from '../src/index.js'
import { openDatabase, type Db } from '../src/storage/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'

function fresh() {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-audit-'))
  const path = join(dir, 'audit.db')
  const db = openDatabase(path, { migrations: [AUDIT_MIGRATION] })
  return { dir, path, db, log: new AuditLog(db), done: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

test('events chain and verify; details are canonical and hold no surprises', (t) => {
  const { log, done } = fresh()
  t.teardown(done)
  const a = log.append({ actor: 'cli', action: 'token.create', outcome: 'allow', reason: 'ok', detail: { tenant: 'h1', device: 'd1' } })
  const b = log.append({ actor: '127.0.0.1', action: 'enroll', outcome: 'deny', reason: 'ERR_TOKEN_USED' })
  t.is(a.seq, 1)
  t.is(b.seq, 2)
  t.not(a.hash, b.hash)
  t.is(log.verify(), 2)
  t.deepEqual(log.recent(1)[0]?.reason, 'ERR_TOKEN_USED')
  t.deepEqual(log.recent(5)[1]?.detail, { device: 'd1', tenant: 'h1' })
})

test('rows cannot be updated or deleted through SQL', (t) => {
  const { log, db, done } = fresh()
  t.teardown(done)
  log.append({ actor: 'cli', action: 'revoke', outcome: 'allow', reason: 'ok' })
  t.throws(() => db.prepare("UPDATE audit SET outcome = 'deny'").run(), { any: true, message: /append-only/ })
  t.throws(() => db.prepare('DELETE FROM audit').run(), { any: true, message: /append-only/ })
  t.is(log.verify(), 1)
})

test('tampering with the file under the triggers is detected at the broken row', (t) => {
  const { log, db, path, done } = fresh()
  t.teardown(done)
  for (let i = 0; i < 5; i++) log.append({ actor: `d${i}`, action: 'enroll', outcome: 'allow', reason: 'ok' })
  db.close()
  // An attacker with the file drops the triggers and rewrites history.
  const raw = new Database(path)
  raw.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete')
  raw.prepare("UPDATE audit SET outcome = 'deny' WHERE seq = 3").run()
  raw.close()
  const reopened = openDatabase(path, { migrations: [AUDIT_MIGRATION] })
  t.teardown(() => reopened.close())
  const error = t.throws(() => new AuditLog(reopened).verify(), { instanceOf: StorageError })
  t.is(error?.code, 'ERR_AUDIT_TAMPERED')
  t.regex(error?.message ?? '', /row 3/)

  const again = new Database(path)
  again.prepare('DELETE FROM audit WHERE seq = 4').run()
  again.prepare("UPDATE audit SET outcome = 'allow' WHERE seq = 3").run()
  again.close()
  t.throws(() => new AuditLog(reopened).verify(), { code: 'ERR_AUDIT_TAMPERED', message: /row 5/ })
})

test('a database newer than this build, or an unopenable path, is a StorageError', (t) => {
  const { path, db, done } = fresh()
  t.teardown(done)
  db.pragma('user_version = 9')
  db.close()
  t.throws(() => openDatabase(path, { migrations: [AUDIT_MIGRATION] }), { instanceOf: StorageError, code: 'ERR_STORAGE' })
  t.throws(() => openDatabase('/nonexistent-dir/x/y.db', { migrations: [] }), { code: 'ERR_STORAGE' })
})

// Signed checkpoints and retention (issue 10 §5). The attacker below can write the database
// file: they drop the triggers, delete rows, and recompute the chain with the project's own code.

function hierarchy() {
  const root = CertificateAuthority.createRoot({ commonName: 'Root', organisation: 'Acme' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Site', organisation: 'Acme' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const device = (deviceId: string, tenant = 'hotel-1') => {
    const privateKey = generateP256Key()
    const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant })
    return { signer: Signer.fromPkcs8(privateKey), certificateChainPem: cert.pem + site.certificatePem }
  }
  return { trust: TrustStore.fromPem(root.certificatePem), device }
}

const pki = hierarchy()
const gateway = pki.device('gw-1')

function signed(init: Partial<AuditCheckpointInit> & { now?: () => number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-audit-'))
  const path = join(dir, 'audit.db')
  const db = openDatabase(path, { migrations: [AUDIT_MIGRATION, AUDIT_CHECKPOINT_MIGRATION] })
  const { now, ...rest } = init
  const checkpoints: AuditCheckpointInit = { logId: 'ca/site-1', trust: pki.trust, signer: gateway, every: 2, ...rest }
  const open = (on: Db) => new AuditLog(on, { checkpoints, ...(now !== undefined && { now }) })
  return { dir, path, db, log: open(db), open, done: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

function appendEvents(log: AuditLog, count: number): void {
  for (let i = 0; i < count; i++) log.append({ actor: `d${i}`, action: 'enroll', outcome: 'allow', reason: 'ok' })
}

/** The attacker's handle on the file: no triggers. */
function raw(path: string): Database.Database {
  const db = new Database(path)
  db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; DROP TRIGGER IF EXISTS audit_checkpoint_no_update; DROP TRIGGER IF EXISTS audit_checkpoint_no_delete')
  return db
}

test('the log signs a checkpoint every N records, exports the latest and writes it to its file once committed', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ztmesh-audit-cp-')), 'audit.checkpoint')
  const { log, db, done } = signed({ every: 3, file })
  t.teardown(done)
  appendEvents(log, 2)
  t.is(log.latestCheckpoint(), undefined)
  appendEvents(log, 1)
  const third = log.latestCheckpoint()
  t.truthy(third)
  t.deepEqual(readFileSync(file), third)
  const verified = verifyAuditCheckpoint(third!, pki.trust)
  t.like(verified.checkpoint, { logId: 'ca/site-1', seq: 3, headSha256: log.recent(1)[0]!.hash })
  t.is(verified.peer.deviceId, 'gw-1')

  // Inside a transaction, the file waits for the commit; a rolled-back checkpoint never reaches it.
  t.throws(() => db.transaction(() => { appendEvents(log, 3); throw new Error('rolled back') })())
  await new Promise(setImmediate)
  t.deepEqual(readFileSync(file), third)
  db.transaction(() => appendEvents(log, 3))()
  t.deepEqual(readFileSync(file), third, 'not before the commit')
  await new Promise(setImmediate)
  t.is(verifyAuditCheckpoint(readFileSync(file), pki.trust).checkpoint.seq, 6)

  // On close: a checkpoint over the head, whatever the count.
  appendEvents(log, 1)
  t.is(verifyAuditCheckpoint(log.checkpoint()!, pki.trust).checkpoint.seq, 7)
  t.is(log.verify(log.latestCheckpoint()), 7)
})

test('attack: drop the triggers and delete the last rows → verify against the exported checkpoint reports the truncation', (t) => {
  const { log, path, done, db, open } = signed()
  t.teardown(done)
  appendEvents(log, 6)
  const exported = log.latestCheckpoint()!
  t.is(log.verify(exported), 6)

  const attacker = raw(path)
  attacker.prepare('DELETE FROM audit WHERE seq > 4').run()
  attacker.prepare('DELETE FROM audit_checkpoint WHERE seq > 4').run()
  attacker.close()
  const reopened = open(db)
  t.is(reopened.verify(), 4, 'the chain alone still holds: this is what the checkpoint is for')
  const error = t.throws(() => reopened.verify(exported), { instanceOf: StorageError, code: 'ERR_AUDIT_TRUNCATED' })
  t.regex(error?.message ?? '', /ends at row 4.*rows 5 to 6 were deleted/)

  // Left behind, a stored checkpoint past the end gives the truncation away on its own.
  const again = raw(path)
  again.prepare('DELETE FROM audit WHERE seq > 3').run()
  again.close()
  t.throws(() => open(db).verify(), { code: 'ERR_AUDIT_TRUNCATED', message: /ends at row 3, but a signed checkpoint covers row 4/ })
})

test('attack: rewrite one row and recompute the whole chain → the checkpoints no longer match, naming the rows', (t) => {
  const { log, path, db, open, done } = signed()
  t.teardown(done)
  appendEvents(log, 6)
  const exported = log.latestCheckpoint()!
  const rewrite = (dropCheckpoints: boolean) => {
    const attacker = raw(path)
    const rows = attacker.prepare('SELECT actor, action, outcome, reason FROM audit WHERE seq >= 3 ORDER BY seq').all() as AuditEvent[]
    attacker.prepare('DELETE FROM audit WHERE seq >= 3').run()
    if (dropCheckpoints) attacker.prepare('DELETE FROM audit_checkpoint WHERE seq >= 3').run()
    // The project's own code recomputes every hash from row 3 on: the chain is whole again.
    const forger = new AuditLog(attacker)
    rows.forEach((row, i) => forger.append(i === 0 ? { ...row, outcome: 'deny', reason: 'ERR_TOKEN_USED' } : row))
    attacker.close()
  }
  rewrite(false)
  t.throws(() => open(db).verify(), { instanceOf: StorageError, code: 'ERR_AUDIT_TAMPERED', message: /rows 3 to 4 were rewritten.*checkpoint at row 4/ })

  rewrite(true)
  t.is(open(db).verify(), 6, 'stored checkpoints gone too, the chain alone holds')
  t.throws(() => open(db).verify(exported), { code: 'ERR_AUDIT_TAMPERED', message: /rows 3 to 6 were rewritten.*checkpoint at row 6/ })
})

test('a checkpoint of another log, by another signer, or forged into the table is refused', (t) => {
  const { log, path, db, open, done } = signed()
  t.teardown(done)
  appendEvents(log, 4)
  const other = signed({ logId: 'ca/site-2' })
  t.teardown(other.done)
  appendEvents(other.log, 4)
  t.throws(() => log.verify(other.log.latestCheckpoint()), { code: 'ERR_AUDIT_TAMPERED', message: /ca\/site-2/ })
  // Another device of the same CA signs a checkpoint with this log's id: not this node's.
  const intruder = signed({ signer: pki.device('tablet-7') })
  t.teardown(intruder.done)
  appendEvents(intruder.log, 4)
  t.throws(() => log.verify(intruder.log.latestCheckpoint()), { code: 'ERR_DEVICE_MISMATCH' })

  // The intruder's checkpoint planted in the table does not verify as this log's.
  const attacker = raw(path)
  attacker.prepare('DELETE FROM audit_checkpoint WHERE seq = 4').run()
  attacker.prepare('INSERT INTO audit_checkpoint (seq, object) VALUES (4, ?)').run(intruder.log.latestCheckpoint())
  attacker.close()
  t.throws(() => open(db).verify(), { code: 'ERR_AUDIT_TAMPERED', message: /stored checkpoint at row 4 does not verify \(ERR_DEVICE_MISMATCH\)/ })
})

test('retention that reaches the head keeps the head row: the chain goes on from it and still verifies', (t) => {
  const { log, done } = signed({ every: 5 })
  t.teardown(done)
  appendEvents(log, 10) // a checkpoint on the head, row 10
  t.is(log.prune({ maxRows: 0 }), 5, 'up to the checkpoint before the head, never the head itself')
  t.is(log.verify(), 6)
  appendEvents(log, 3)
  t.is(log.verify(), 9)
  t.like(log.recent(1)[0], { seq: 14 })
})

test('retention prunes up to a signed checkpoint it keeps, the rest verifies from it, and the prune is audited', (t) => {
  let clock = Date.now() - 60_000
  const { log, path, db, open, done } = signed({ every: 10, now: () => clock })
  t.teardown(done)
  for (let i = 0; i < 35; i++) {
    clock += 1000
    appendEvents(log, 1)
  }
  const exported = log.latestCheckpoint()!
  t.is(log.prune({ maxRows: 12 }), 20, 'up to the checkpoint at row 20, not row 23')
  t.like(log.recent(1)[0], { seq: 36, action: PRUNE_ACTION, outcome: 'allow', detail: { rows: 20, through: 20 } })
  t.is(log.verify(), 16)
  t.is(log.verify(exported), 16)
  t.is(log.prune({ maxRows: 12 }), 0, 'no checkpoint in reach: nothing goes')
  // By age: rows 21..30 are more than 4.5 s old (row 30 was written at +30 s, the clock is at +35 s).
  t.is(log.prune({ maxAgeMs: 4_500 }), 10)
  t.is(log.verify(), 7)
  t.throws(() => db.prepare('DELETE FROM audit WHERE seq = 31').run(), { any: true, message: /append-only/ }, 'the triggers are back')

  // Attack: records removed outside retention, down to a real checkpoint or not.
  appendEvents(log, 10)
  const attacker = raw(path)
  attacker.prepare('DELETE FROM audit WHERE seq <= 40').run()
  attacker.close()
  t.throws(() => open(db).verify(), { code: 'ERR_AUDIT_TRUNCATED', message: /rows before 41 were removed, but no prune record says so/ })
  const deeper = raw(path)
  deeper.prepare('DELETE FROM audit WHERE seq <= 42').run()
  deeper.close()
  t.throws(() => open(db).verify(), { code: 'ERR_AUDIT_TRUNCATED', message: /starts at row 43, and no signed checkpoint/ })
})

test('checkpoints need their schema step; a log without a signer cannot sign one', (t) => {
  const { db, done } = fresh()
  t.teardown(done)
  t.throws(() => new AuditLog(db, { checkpoints: { logId: 'x', trust: pki.trust, signer: gateway } }), { code: 'ERR_STORAGE', message: /AUDIT_CHECKPOINT_MIGRATION/ })
  t.throws(() => new AuditLog(db).checkpoint(), { code: 'ERR_INVALID_ARG' })
  t.is(new AuditLog(db).prune({ maxRows: 0 }), 0)
})

test('the CA signs audit checkpoints with the gateway credential, one more on close, and catches a truncation after reopening', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-audit-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const caDir = join(dir, 'ca')
  await CaService.init({ dir: caDir, name: 'Audit Hotel' })
  const plain = await CaService.open({ dir: caDir })
  const key = generateP256Key()
  const { token } = plain.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const enrolled = plain.enroll(enrollRequestFor(token, buildCsr(key, 'gw-1', 'hotel-1')), 'test')
  const trust = TrustStore.fromPem(plain.trustBundle())
  plain.close()

  const file = join(dir, 'audit.checkpoint')
  const audit = { checkpoints: { logId: 'ca/audit-hotel', trust, signer: { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromPkcs8(key) }, every: 1000, file } }
  const ca = await CaService.open({ dir: caDir, audit })
  for (let i = 0; i < 3; i++) ca.createToken({ deviceId: `d${i}`, tenant: 'hotel-1' })
  const records = ca.verifyAudit()
  t.is(ca.latestAuditCheckpoint(), undefined, 'every 1000: none yet')
  ca.close()
  const exported = readFileSync(file)
  t.like(verifyAuditCheckpoint(exported, trust).checkpoint, { logId: 'ca/audit-hotel', seq: records })

  const reopened = await CaService.open({ dir: caDir, audit })
  t.teardown(() => reopened.close())
  t.is(reopened.verifyAudit(exported), records)
  const attacker = raw(join(caDir, 'registry.db'))
  attacker.prepare('DELETE FROM audit WHERE seq >= ?').run(records - 1)
  attacker.prepare('DELETE FROM audit_checkpoint').run()
  attacker.close()
  t.throws(() => reopened.verifyAudit(exported), { code: 'ERR_AUDIT_TRUNCATED', message: new RegExp(`rows ${records - 1} to ${records} were deleted`) })
})
