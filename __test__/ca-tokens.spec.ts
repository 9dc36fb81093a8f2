import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CA_MIGRATIONS } from '../src/ca/schema.js'
import { TokenStore, type CreateTokenInit } from '../src/ca/tokens.js'
import { CaError } from '../src/errors.js'
import { openDatabase } from '../src/storage/index.js'
import { decodeEnrollmentToken, enrollRequestFor, nonceRequestFor } from '../src/protocol/enroll.js'
import { buildCsr, generateP256Key } from '../src/primitives/pki/index.js'

const ROOT = 'ab'.repeat(32)
const CSR = buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')
/** The request of the holder of `token`: what `check` is given. */
const presented = (token: string, csr = CSR) => enrollRequestFor(token, csr)

function registry(now: () => number = Date.now) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-tokens-'))
  const db = openDatabase(join(dir, 'registry.db'), { migrations: CA_MIGRATIONS })
  const store = new TokenStore(db, now)
  // Every token of these tests pins the same (made-up) root key.
  const tokens = {
    create: (init: CreateTokenInit) => store.create({ ...init, rootSpkiSha256: ROOT }),
    check: store.check.bind(store),
    checkNonceRequest: store.checkNonceRequest.bind(store),
    redeem: store.redeem.bind(store),
  }
  return { db, tokens, done: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

test('a token is bound to its device and tenant, single use, and stored only as a hash', (t) => {
  const { db, tokens, done } = registry()
  t.teardown(done)
  const { token } = tokens.create({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.regex(token, /^ztm2\.[A-Za-z0-9_-]+$/)
  t.like(decodeEnrollmentToken(token), { deviceId: 'tablet-7', tenant: 'hotel-1', rootSpkiSha256: ROOT })
  const stored = JSON.stringify(db.prepare('SELECT * FROM tokens').all())
  t.false(stored.includes(token.slice(5, 48)), 'the registry never holds the token itself')
  const claim = tokens.check(presented(token))
  t.like(claim, { deviceId: 'tablet-7', tenant: 'hotel-1' })
  tokens.redeem(claim, 'aa01')
  t.throws(() => tokens.check(presented(token)), { instanceOf: CaError, code: 'ERR_TOKEN_USED' })
  t.throws(() => tokens.redeem(claim, 'aa02'), { code: 'ERR_TOKEN_USED' })
})

test('a request proves the token for its own CSR and node id only (a captured request cannot be redeemed with another key)', (t) => {
  const { tokens, done } = registry()
  t.teardown(done)
  const { token } = tokens.create({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  const request = enrollRequestFor(token, CSR, { nodeId: 'tablet-7' })
  const attackerCsr = buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')
  t.throws(() => tokens.check({ ...request, csr: attackerCsr }), { instanceOf: CaError, code: 'ERR_TOKEN_PROOF' })
  t.throws(() => tokens.check({ ...request, nodeId: 'tablet-8' }), { code: 'ERR_TOKEN_PROOF' })
  t.throws(() => tokens.check({ ...request, tokenProof: '00'.repeat(64) }), { code: 'ERR_TOKEN_PROOF' })
  const { token: other } = tokens.create({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.throws(() => tokens.check({ ...request, tokenId: decodeEnrollmentToken(other).id }), { code: 'ERR_TOKEN_PROOF' }, "another token's id")
  t.like(tokens.check(request), { deviceId: 'tablet-7' })
  // A nonce request needs the same token's proof, for its own node.
  t.like(tokens.checkNonceRequest(nonceRequestFor(token, 'tablet-7')), { deviceId: 'tablet-7' })
  t.throws(() => tokens.checkNonceRequest({ ...nonceRequestFor(token, 'tablet-7'), nodeId: 'tablet-8' }), { code: 'ERR_TOKEN_PROOF' })
  t.throws(() => tokens.checkNonceRequest(nonceRequestFor(token, 'tablet-8')), { code: 'ERR_FORBIDDEN' })
  t.throws(() => tokens.checkNonceRequest({ ...nonceRequestFor(token, 'tablet-7'), tokenProof: request.tokenProof }), { code: 'ERR_TOKEN_PROOF' }, 'an enrollment proof is not a nonce proof')
})

test('expired, unknown and malformed tokens are refused with their own codes', (t) => {
  let now = 1_000_000
  const { tokens, done } = registry(() => now)
  t.teardown(done)
  const { token, expiresAt } = tokens.create({ deviceId: 'd', tenant: 't', ttlSeconds: 60 })
  t.is(expiresAt, 1_060_000)
  now = expiresAt
  t.throws(() => tokens.check(presented(token)), { code: 'ERR_TOKEN_EXPIRED' })
  t.throws(() => tokens.check({ ...presented(token), tokenId: 'ab'.repeat(32) }), { code: 'ERR_TOKEN_INVALID' })
  for (const bad of ['', 'ab', 'AB'.repeat(32), 'ab'.repeat(33), 'zz'.repeat(32), 42, null, undefined, { token }, `${'ab'.repeat(32)}\n`]) {
    t.throws(() => tokens.check({ ...presented(token), tokenId: bad as string }), { code: 'ERR_TOKEN_INVALID' })
  }
  // The device side's decoder is just as strict about the token itself.
  for (const bad of ['', 'ztm2.', `ztm1.${'A'.repeat(43)}`, `ztm2.${'A'.repeat(43)}`, `${token}\n`, `${token}=`, 42, null, undefined, { token }]) {
    t.throws(() => decodeEnrollmentToken(bad), { code: 'ERR_TOKEN_INVALID' })
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
  t.deepEqual(tokens.check(presented(token)).roles, roles)
})
