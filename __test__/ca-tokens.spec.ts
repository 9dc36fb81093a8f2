import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CA_MIGRATIONS } from '../src/ca/schema.js'
import { TokenStore } from '../src/ca/tokens.js'
import { CaError } from '../src/errors.js'
import { openDatabase } from '../src/storage/index.js'

function registry(now: () => number = Date.now) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-tokens-'))
  const db = openDatabase(join(dir, 'registry.db'), { migrations: CA_MIGRATIONS })
  return { db, tokens: new TokenStore(db, now), done: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

test('a token is bound to its device and tenant, single use, and stored only as a hash', (t) => {
  const { db, tokens, done } = registry()
  t.teardown(done)
  const { token } = tokens.create({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.regex(token, /^ztm1\.[A-Za-z0-9_-]{43}$/)
  const stored = JSON.stringify(db.prepare('SELECT * FROM tokens').all())
  t.false(stored.includes(token.slice(5)), 'the registry never holds the token itself')
  const claim = tokens.check(token)
  t.like(claim, { deviceId: 'tablet-7', tenant: 'hotel-1' })
  tokens.redeem(claim, 'aa01')
  t.throws(() => tokens.check(token), { instanceOf: CaError, code: 'ERR_TOKEN_USED' })
  t.throws(() => tokens.redeem(claim, 'aa02'), { code: 'ERR_TOKEN_USED' })
})

test('expired, unknown and malformed tokens are refused with their own codes', (t) => {
  let now = 1_000_000
  const { tokens, done } = registry(() => now)
  t.teardown(done)
  const { token, expiresAt } = tokens.create({ deviceId: 'd', tenant: 't', ttlSeconds: 60 })
  t.is(expiresAt, 1_060_000)
  now = expiresAt
  t.throws(() => tokens.check(token), { code: 'ERR_TOKEN_EXPIRED' })
  t.throws(() => tokens.check(`ztm1.${'A'.repeat(43)}`), { code: 'ERR_TOKEN_INVALID' })
  for (const bad of ['', 'ztm1.', `ztm2.${'A'.repeat(43)}`, `ztm1.${'A'.repeat(44)}`, 42, null, undefined, { token }, `${token}\n`]) {
    t.throws(() => tokens.check(bad), { code: 'ERR_TOKEN_INVALID' })
  }
})

test('token parameters are validated', (t) => {
  const { tokens, done } = registry()
  t.teardown(done)
  // The core's rule (ids.rs), with its code: the same one certificates are issued under.
  for (const deviceId of ['', '.', '..', 'a/b', 'a:b', 'x'.repeat(65), 'é', 42]) {
    t.throws(() => tokens.create({ deviceId: deviceId as string, tenant: 't' }), { code: 'ERR_IDENTITY' })
  }
  for (const tenant of ['', '..', 'a b']) t.throws(() => tokens.create({ deviceId: 'd', tenant }), { code: 'ERR_IDENTITY' })
  for (const roles of [['a b'], ['a', 'a'], [''], Array.from({ length: 33 }, (_, i) => `r${i}`), 'staff', [42]]) {
    t.throws(() => tokens.create({ deviceId: 'd', tenant: 't', roles: roles as string[] }), { code: 'ERR_IDENTITY' }, JSON.stringify(roles))
  }
  for (const ttlSeconds of [0, -1, 1.5, 31 * 86_400]) {
    t.throws(() => tokens.create({ deviceId: 'd', tenant: 't', ttlSeconds }), { code: 'ERR_INVALID_ARG' })
  }
})

test('roles follow the core rule: pos:cashier is a role (regression: tokens refused it)', (t) => {
  const { tokens, done } = registry()
  t.teardown(done)
  const roles = ['pos:cashier', 'front.desk', '-x', ...Array.from({ length: 29 }, (_, i) => `r${i}`)]
  const { token } = tokens.create({ deviceId: '.tablet', tenant: 'hotel-1', roles })
  t.deepEqual(tokens.check(token).roles, roles)
})
