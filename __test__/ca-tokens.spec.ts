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
  for (const deviceId of ['', '-x', '.x', 'a/b', 'x'.repeat(65), 'é']) {
    t.throws(() => tokens.create({ deviceId, tenant: 't' }), { code: 'ERR_INVALID_ARG' })
  }
  for (const ttlSeconds of [0, -1, 1.5, 31 * 86_400]) {
    t.throws(() => tokens.create({ deviceId: 'd', tenant: 't', ttlSeconds }), { code: 'ERR_INVALID_ARG' })
  }
})
