import test from 'ava'
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { AUDIT_MIGRATION, AuditLog } from '../src/audit/index.js'
import { StorageError } from '../src/errors.js'
import { openDatabase } from '../src/storage/index.js'

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
