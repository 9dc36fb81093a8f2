import test from 'ava'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'

import { AUDIT_MIGRATION, AuditLog } from '../src/audit/index.js'
import { ConfigError, PolicyError } from '../src/errors.js'
import { runBench } from '../src/bench/index.js'
import { createPolicyDecisionPoint, parsePolicy, sameTenantPolicy, type PolicyDecisionPointInit } from '../src/policy/index.js'
import type { PeerIdentity } from '../src/primitives/pki/index.js'
import { openDatabase } from '../src/storage/index.js'

function peer(deviceId: string, tenant: string, roles: string[] = []): PeerIdentity {
  return { deviceId, tenant, roles, serial: `0a${deviceId.length}f`, spkiSha256: 'ab'.repeat(32), issuerKeyId: 'cd'.repeat(32), notAfterMs: 2e12 }
}

/** A decision point over a real audit log in a fresh SQLite file. */
function pdp(policy: unknown, now?: () => number, init: Partial<PolicyDecisionPointInit> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-policy-'))
  const db = openDatabase(join(dir, 'audit.db'), { migrations: [AUDIT_MIGRATION] })
  const audit = new AuditLog(db)
  const point = createPolicyDecisionPoint({ policy, audit, ...(now ? { now } : {}), ...init })
  return { point, audit, db, done: () => { db.close(); rmSync(dir, { recursive: true, force: true }) } }
}

const alice = peer('tablet-1', 'hotel-1', ['staff'])
const cashier = peer('pos-1', 'hotel-1', ['pos:cashier'])
const stranger = peer('tablet-9', 'hotel-2', ['staff', 'admin'])

// 2026-12-07 was a Monday. 09:30 UTC = 10:30 in Paris (CET, UTC+1).
const MONDAY_0930_UTC = Date.UTC(2026, 11, 7, 9, 30)

test('with no rules every request is denied, and the denial is audited with its reason', (t) => {
  const { point, audit, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [] })
  t.teardown(done)
  t.deepEqual({ ...point.decide(alice, 'link.connect') }, { allow: false, reason: 'no-rule' })
  const [row] = audit.recent(1)
  t.is(row?.actor, 'tablet-1')
  t.is(row?.action, 'link.connect')
  t.is(row?.outcome, 'deny')
  t.is(row?.reason, 'no-rule')
  t.is(row?.detail?.tenant, 'hotel-1')
  t.is(audit.verify(), 1)
})

test('an allow rule allows only its actions, and the allowance is audited with the rule', (t) => {
  const { point, audit, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    revision: 7,
    rules: [{ id: 'signal', effect: 'allow', actions: ['signal.*', 'link.connect'] }],
  })
  t.teardown(done)
  t.deepEqual({ ...point.decide(alice, 'signal.offer', { device: 'tablet-2' }) }, { allow: true, reason: 'rule:signal', rule: 'signal' })
  t.true(point.decide(alice, 'signal.answer').allow)
  t.true(point.decide(alice, 'link.connect').allow)
  t.false(point.decide(alice, 'signals.offer').allow, 'a prefix matches whole name segments only')
  t.false(point.decide(alice, 'ca.revoke').allow)
  const rows = audit.recent(10).reverse()
  t.deepEqual(
    rows.map((r) => [r.action, r.outcome, r.reason]),
    [
      ['signal.offer', 'allow', 'rule:signal'],
      ['signal.answer', 'allow', 'rule:signal'],
      ['link.connect', 'allow', 'rule:signal'],
      ['signals.offer', 'deny', 'no-rule'],
      ['ca.revoke', 'deny', 'no-rule'],
    ],
  )
  t.is(rows[0]?.detail?.['resource.device'], 'tablet-2')
  t.is(rows[0]?.detail?.rule, 'signal')
  t.is(rows[0]?.detail?.revision, 7)
  t.is(rows[0]?.detail?.serial, alice.serial)
})

test('a peer of another tenant is refused even by a rule that covers everyone of its role', (t) => {
  const { point, audit, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'all', effect: 'allow', actions: ['*'], roles: ['staff', 'admin'] }] })
  t.teardown(done)
  t.true(point.decide(alice, 'gossip.publish').allow)
  t.deepEqual({ ...point.decide(stranger, 'gossip.publish') }, { allow: false, reason: 'cross-tenant' })
  // The resource's own tenant decides, not the peer's claim about it.
  t.deepEqual({ ...point.decide(stranger, 'gossip.publish', { tenant: 'hotel-1' }) }, { allow: false, reason: 'cross-tenant' })
  t.is(audit.recent(1)[0]?.reason, 'cross-tenant')
  t.is(audit.recent(1)[0]?.detail?.tenant, 'hotel-2')
  // Nor can the peer make the resource its own tenant's by naming it so.
  const claimed = point.decide(stranger, 'gossip.publish', { tenant: 'hotel-2' })
  t.false(claimed.allow)
  t.is(claimed.reason, "indeterminate:the resource is of tenant hotel-2, not of this policy's")
})

test('a cross-tenant rule admits exactly the tenants it names, for exactly its actions', (t) => {
  const { point, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    rules: [
      { id: 'partner-read', effect: 'allow', actions: ['gossip.subscribe'], peerTenants: ['hotel-2'], roles: ['staff'] },
      { id: 'local', effect: 'allow', actions: ['gossip.*'] },
    ],
  })
  t.teardown(done)
  t.true(point.decide(stranger, 'gossip.subscribe').allow)
  t.deepEqual({ ...point.decide(stranger, 'gossip.publish') }, { allow: false, reason: 'cross-tenant' })
  t.false(point.decide(peer('x', 'hotel-3', ['staff']), 'gossip.subscribe').allow)
  t.false(point.decide(peer('x', 'hotel-2', ['guest']), 'gossip.subscribe').allow, 'the cross-tenant rule still needs its role')
  // A rule naming only another tenant does not cover the home tenant's own peers.
  const partnersOnly = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'p', effect: 'allow', actions: ['*'], peerTenants: ['hotel-2'] }] })
  t.teardown(partnersOnly.done)
  t.false(partnersOnly.point.decide(alice, 'x').allow)
})

test('roles come from the certificate: any one listed role matches, and no other source grants one', (t) => {
  const { point, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    rules: [
      { id: 'till', effect: 'allow', actions: ['model.load'], roles: ['pos:cashier', 'pos:manager'] },
      { id: 'revoke', effect: 'allow', actions: ['ca.revoke'], roles: ['admin'] },
    ],
  })
  t.teardown(done)
  t.true(point.decide(cashier, 'model.load', { model: 'fraud-v2' }).allow)
  t.false(point.decide(alice, 'model.load', { model: 'fraud-v2' }).allow)
  t.false(point.decide(alice, 'ca.revoke', { role: 'admin', roles: 'admin' }).allow, 'resource attributes never grant a role')
  t.true(point.decide(peer('gw', 'hotel-1', ['admin']), 'ca.revoke').allow)
})

test('deny overrides: a matching deny wins over any allow, whatever the order', (t) => {
  const rules = [
    { id: 'staff', effect: 'allow', actions: ['signal.*'], roles: ['staff'] },
    { id: 'lost-tablet', effect: 'deny', actions: ['*'], devices: ['tablet-1'] },
  ]
  for (const order of [rules, [...rules].reverse()]) {
    const { point, done } = pdp({ version: 1, tenant: 'hotel-1', rules: order })
    t.deepEqual({ ...point.decide(alice, 'signal.offer') }, { allow: false, reason: 'rule:lost-tablet', rule: 'lost-tablet' })
    t.true(point.decide(peer('tablet-2', 'hotel-1', ['staff']), 'signal.offer').allow)
    done()
  }
})

test('a deny rule stops peers of every tenant, even one a cross-tenant rule allows', (t) => {
  const partner = peer('tablet-9', 'hotel-2', ['staff'])
  const rules = [
    { id: 'partner-read', effect: 'allow', actions: ['gossip.*'], peerTenants: ['hotel-2'], roles: ['staff'] },
    { id: 'lost-tablet', effect: 'deny', actions: ['*'], devices: ['tablet-9'] },
    { id: 'no-publish', effect: 'deny', actions: ['gossip.publish'] },
  ]
  for (const order of [rules, [...rules].reverse()]) {
    const { point, audit, done } = pdp({ version: 1, tenant: 'hotel-1', rules: order })
    t.deepEqual({ ...point.decide(partner, 'gossip.subscribe') }, { allow: false, reason: 'rule:lost-tablet', rule: 'lost-tablet' })
    t.is(audit.recent(1)[0]?.reason, 'rule:lost-tablet')
    t.is(audit.recent(1)[0]?.detail?.tenant, 'hotel-2')
    const other = peer('tablet-8', 'hotel-2', ['staff'])
    t.true(point.decide(other, 'gossip.subscribe').allow, 'the partner rule still admits the other partner devices')
    t.is(point.decide(other, 'gossip.publish').reason, 'rule:no-publish', 'a deny naming no tenant covers the partner tenant too')
    done()
  }
  // A deny that names tenants covers exactly those: here the partner, not the home tenant.
  const { point, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    rules: [
      { id: 'all', effect: 'allow', actions: ['gossip.*'], peerTenants: ['hotel-1', 'hotel-2'] },
      { id: 'partner-no-publish', effect: 'deny', actions: ['gossip.publish'], peerTenants: ['hotel-2'] },
    ],
  })
  t.teardown(done)
  t.is(point.decide(partner, 'gossip.publish').reason, 'rule:partner-no-publish')
  t.true(point.decide(partner, 'gossip.subscribe').allow)
  t.true(point.decide(alice, 'gossip.publish').allow)
})

test('a policy document that names no tenant is refused at load, naming the key', (t) => {
  for (const document of [{ version: 1, rules: [] }, { version: 1, rules: [{ id: 'all', effect: 'allow', actions: ['*'] }] }]) {
    const error = t.throws(() => parsePolicy(document), { instanceOf: ConfigError })
    t.is(error?.code, 'ERR_CONFIG')
    t.regex(error?.message ?? '', /^policy: tenant: /)
  }
  t.throws(() => parsePolicy({ version: 1, tenant: '', rules: [] }), { code: 'ERR_CONFIG', message: /^policy: tenant: / })
  t.throws(() => parsePolicy({ version: 1, tenant: '*', rules: [] }), { code: 'ERR_CONFIG', message: /^policy: tenant: / })
  // Nor can an update remove the tenant: the document in force stays.
  const { point, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'all', effect: 'allow', actions: ['*'] }] })
  t.teardown(done)
  t.throws(() => point.update({ version: 1, rules: [{ id: 'all', effect: 'allow', actions: ['*'] }] }), { code: 'ERR_CONFIG', message: /policy: tenant/ })
  t.is(point.policy.tenant, 'hotel-1')
  t.deepEqual({ ...point.decide(stranger, 'link.connect', { tenant: 'hotel-2' }) }, { allow: false, reason: "indeterminate:the resource is of tenant hotel-2, not of this policy's" })
})

test('actions follow one grammar: anything else is refused at load naming the key, and denied at decision', (t) => {
  const good = ['*', 'a', 'signal.offer', 'signal.*', 'mqtt.publish', 'x-1.y-2.*', `a${'b'.repeat(127)}`]
  for (const action of good) t.notThrows(() => parsePolicy({ version: 1, tenant: 'h', rules: [{ id: 'r', effect: 'allow', actions: [action] }] }), action)
  const bad = [
    '', ' ', 'Signal.offer', 'signal offer', 'signal.', '.signal', 'signal..offer', 'signal.*.offer', '*.offer', 'sig*', 'signal.off*',
    '**', 'signal.**', '1signal', 'signal.1', 'signal_offer', 'signal/offer', 'signal.offer\n', 'sígnal', '-signal', `a${'b'.repeat(128)}`, `${'a'.repeat(127)}.*`,
  ]
  for (const action of bad) {
    const error = t.throws(() => parsePolicy({ version: 1, tenant: 'h', rules: [{ id: 'r', effect: 'allow', actions: ['link.connect', action] }] }), { instanceOf: ConfigError }, JSON.stringify(action))
    t.regex(error?.message ?? '', /^policy: rules\[0\]\.actions\[1\]: expected an action/, JSON.stringify(action))
  }
  t.throws(() => parsePolicy({ version: 1, tenant: 'h', rules: [{ id: 'r', effect: 'allow', actions: [7] }] }), { code: 'ERR_CONFIG', message: /rules\[0\]\.actions\[0\]/ })
  // A request whose action is not an action name is denied, even where a wildcard or a prefix would match it.
  const { point, audit, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'all', effect: 'allow', actions: ['*'] }, { id: 'sig', effect: 'allow', actions: ['signal.*'] }] })
  t.teardown(done)
  for (const action of ['signal.', 'signal.offer\n', 'Signal.offer', '', 'a'.repeat(129)]) {
    t.deepEqual({ ...point.decide(alice, action) }, { allow: false, reason: 'indeterminate:the action is not an action name' }, JSON.stringify(action))
  }
  t.is(audit.recent(1)[0]?.outcome, 'deny')
  t.true(point.decide(alice, 'signal.offer').allow)
})

test('a window across midnight counts its morning hours on the day it opened', (t) => {
  // 2026-12-07 was a Monday; the document's zone is UTC.
  const at = (day: number, hour: number, minute: number) => Date.UTC(2026, 11, day, hour, minute)
  let now = 0
  const { point, done } = pdp(
    { version: 1, tenant: 'hotel-1', rules: [{ id: 'monday-night', effect: 'allow', actions: ['door.open'], hours: [{ days: ['mon'], from: '22:00', to: '06:00' }] }] },
    () => now,
  )
  t.teardown(done)
  const cases: Array<[number, number, number, boolean, string]> = [
    [7, 21, 59, false, 'Monday 21:59: not yet open'],
    [7, 22, 0, true, 'Monday 22:00: opens'],
    [7, 23, 59, true, 'Monday 23:59'],
    [8, 0, 0, true, 'Tuesday 00:00: still the Monday window'],
    [8, 1, 0, true, 'Tuesday 01:00: still the Monday window'],
    [8, 5, 59, true, 'Tuesday 05:59'],
    [8, 6, 0, false, 'Tuesday 06:00: closed (the end is exclusive)'],
    [8, 22, 0, false, 'Tuesday 22:00: Tuesday is not a day of the window'],
    [9, 1, 0, false, 'Wednesday 01:00: the Tuesday night was never opened'],
    [7, 1, 0, false, 'Monday 01:00: belongs to the Sunday night'],
    [7, 5, 59, false, 'Monday 05:59: belongs to the Sunday night'],
  ]
  for (const [day, hour, minute, allowed, what] of cases) {
    now = at(day, hour, minute)
    t.is(point.decide(alice, 'door.open').allow, allowed, what)
  }
  // The same in a time zone: Sunday 22:00–06:00 in Paris holds at Monday 01:00 Paris time (00:00 UTC).
  const paris = pdp(
    { version: 1, tenant: 'hotel-1', timeZone: 'Europe/Paris', rules: [{ id: 'sunday-night', effect: 'allow', actions: ['door.open'], hours: [{ days: ['sun'], from: '22:00', to: '06:00' }] }] },
    () => now,
  )
  t.teardown(paris.done)
  now = at(7, 0, 0)
  t.true(paris.point.decide(alice, 'door.open').allow)
  now = at(8, 0, 0)
  t.false(paris.point.decide(alice, 'door.open').allow, 'Tuesday 01:00 in Paris: Monday night is not a day of the window')
})

test('time windows are read in the configured time zone, on the configured days, across midnight', (t) => {
  let now = MONDAY_0930_UTC
  const { point, done } = pdp(
    {
      version: 1,
      tenant: 'hotel-1',
      timeZone: 'Europe/Paris',
      rules: [
        { id: 'day-shift', effect: 'allow', actions: ['signal.offer'], roles: ['staff'], hours: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '10:00', to: '18:00' }] },
        { id: 'night-shift', effect: 'allow', actions: ['link.connect'], hours: [{ from: '22:00', to: '06:00' }] },
      ],
    },
    () => now,
  )
  t.teardown(done)
  t.true(point.decide(alice, 'signal.offer').allow, '10:30 in Paris on a Monday')
  now = Date.UTC(2026, 11, 7, 8, 30) // 09:30 in Paris: before the window
  t.false(point.decide(alice, 'signal.offer').allow)
  now = Date.UTC(2026, 11, 7, 16, 59) // 17:59 in Paris
  t.true(point.decide(alice, 'signal.offer').allow)
  now = Date.UTC(2026, 11, 7, 17, 0) // 18:00 in Paris: the end is exclusive
  t.false(point.decide(alice, 'signal.offer').allow)
  now = Date.UTC(2026, 11, 12, 10, 0) // Saturday 11:00 in Paris
  t.false(point.decide(alice, 'signal.offer').allow)
  now = Date.UTC(2026, 11, 7, 23, 30) // 00:30 in Paris
  t.true(point.decide(alice, 'link.connect').allow)
  now = Date.UTC(2026, 11, 7, 12, 0)
  t.false(point.decide(alice, 'link.connect').allow)
  // Summer time: 09:30 UTC in July is 11:30 in Paris (UTC+2), inside; 07:30 UTC is 09:30, outside.
  now = Date.UTC(2026, 6, 6, 7, 30)
  t.false(point.decide(alice, 'signal.offer').allow)
  now = Date.UTC(2026, 6, 6, 8, 30)
  t.true(point.decide(alice, 'signal.offer').allow)
})

test('a clock that gives no valid time fails closed, even where only a time-bound deny rule would apply', (t) => {
  let now = Number.NaN
  const { point, done } = pdp(
    {
      version: 1,
      tenant: 'hotel-1',
      rules: [
        { id: 'all', effect: 'allow', actions: ['*'] },
        { id: 'night-lock', effect: 'deny', actions: ['door.open'], hours: [{ from: '22:00', to: '06:00' }] },
      ],
    },
    () => now,
  )
  t.teardown(done)
  t.deepEqual({ ...point.decide(alice, 'door.open') }, { allow: false, reason: 'indeterminate:the clock gave no valid time' })
  t.true(point.decide(alice, 'link.connect').allow, 'decisions that do not read the clock go on')
  now = Date.UTC(2026, 11, 7, 23, 0)
  t.is(point.decide(alice, 'door.open').reason, 'rule:night-lock')
  now = Date.UTC(2026, 11, 7, 12, 0)
  t.true(point.decide(alice, 'door.open').allow)
})

test('time windows default to UTC', (t) => {
  let now = Date.UTC(2026, 11, 7, 9, 59)
  const { point, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'w', effect: 'allow', actions: ['*'], hours: [{ from: '10:00', to: '11:00' }] }] }, () => now)
  t.teardown(done)
  t.false(point.decide(alice, 'a').allow)
  now += 60_000
  t.true(point.decide(alice, 'a').allow)
})

test('resource conditions: device match, prefix, set membership and ranges', (t) => {
  const { point, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    rules: [
      { id: 'own-telemetry', effect: 'allow', actions: ['mqtt.publish'], resource: { topic: { prefix: 'devices/' }, device: { equalsPeer: 'deviceId' } } },
      { id: 'models', effect: 'allow', actions: ['model.load'], resource: { model: { in: ['fraud-v2', 'ocr-v1'] }, sizeMb: { max: 512 } } },
    ],
  })
  t.teardown(done)
  t.true(point.decide(alice, 'mqtt.publish', { topic: 'devices/tablet-1/telemetry', device: 'tablet-1' }).allow)
  t.false(point.decide(alice, 'mqtt.publish', { topic: 'devices/tablet-2/telemetry', device: 'tablet-2' }).allow, "another device's topic")
  t.false(point.decide(alice, 'mqtt.publish', { topic: 'admin/x', device: 'tablet-1' }).allow)
  t.true(point.decide(alice, 'model.load', { model: 'ocr-v1', sizeMb: 100 }).allow)
  t.false(point.decide(alice, 'model.load', { model: 'ocr-v1', sizeMb: 900 }).allow)
  t.false(point.decide(alice, 'model.load', { model: 'llm-x', sizeMb: 1 }).allow)
})

test('a decision that cannot be evaluated is denied and says what was missing (fail closed)', (t) => {
  const { point, audit, done } = pdp({
    version: 1,
    tenant: 'hotel-1',
    rules: [
      { id: 'models', effect: 'allow', actions: ['model.load'], resource: { model: { in: ['ocr-v1'] } } },
      { id: 'no-big', effect: 'deny', actions: ['model.load'], resource: { sizeMb: { min: 1024 } } },
      { id: 'topics', effect: 'allow', actions: ['mqtt.publish'], resource: { topic: { prefix: 'devices/' } } },
    ],
  })
  t.teardown(done)
  // The deny rule cannot tell whether the model is too big: denied, although an allow matched.
  const missing = point.decide(alice, 'model.load', { model: 'ocr-v1' })
  t.false(missing.allow)
  t.is(missing.reason, 'indeterminate:rule no-big needs resource.sizeMb')
  t.is(audit.recent(1)[0]?.reason, missing.reason)
  t.true(point.decide(alice, 'model.load', { model: 'ocr-v1', sizeMb: 3 }).allow)
  const wrongType = point.decide(alice, 'mqtt.publish', { topic: 42 } as never)
  t.false(wrongType.allow)
  t.is(wrongType.reason, 'indeterminate:rule topics: resource.topic is not a string')
  // Garbage instead of a verified identity.
  for (const bad of [null, {}, { deviceId: 'x', tenant: 'hotel-1' }, { deviceId: 'x', tenant: 'hotel-1', roles: 'admin' }]) {
    const decision = point.decide(bad as unknown as PeerIdentity, 'model.load', { model: 'ocr-v1', sizeMb: 1 })
    t.false(decision.allow)
    t.regex(decision.reason, /^indeterminate:the peer/)
  }
  t.regex(point.decide(alice, 'model.load', null as never).reason, /^indeterminate:the resource/)
  const hostile = { get model(): string { throw new Error('boom') } }
  t.deepEqual({ ...point.decide(alice, 'model.load', hostile as never) }, { allow: false, reason: 'indeterminate:the request could not be read' })
  // No tenant anywhere to compare the peer with: such a document is refused at load (below), so
  // a resource can never choose the tenant it is judged as.
  t.throws(() => pdp({ version: 1, rules: [{ id: 'all', effect: 'allow', actions: ['*'] }] }), { code: 'ERR_CONFIG', message: /policy: tenant/ })
})

test('a decision whose audit row cannot be written is denied', (t) => {
  const { point, db, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'all', effect: 'allow', actions: ['*'] }] })
  t.teardown(done)
  t.true(point.decide(alice, 'x').allow)
  db.close()
  t.deepEqual({ ...point.decide(alice, 'x') }, { allow: false, reason: 'audit-failed' })
})

test('enforce throws ERR_POLICY_DENIED with the reason', (t) => {
  const { point, done } = pdp({ version: 1, tenant: 'hotel-1', rules: [{ id: 'all', effect: 'allow', actions: ['link.*'] }] })
  t.teardown(done)
  t.is(point.enforce(alice, 'link.connect').rule, 'all')
  const error = t.throws(() => point.enforce(stranger, 'link.connect'), { instanceOf: PolicyError })
  t.is(error?.code, 'ERR_POLICY_DENIED')
  t.is(error?.message, 'cross-tenant')
})

test('malformed policies are refused with ERR_CONFIG naming the key', (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /policy: \(root\)/],
    [{ rules: [] }, /policy: version/],
    [{ version: 2, tenant: 'h', rules: [] }, /policy: version/],
    [{ version: 1, tenant: 'h', rules: [], extra: 1 }, /policy: extra: unknown key/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'permit', actions: ['*'] }] }, /policy: rules\[0\]\.effect/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: [] }] }, /policy: rules\[0\]\.actions/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['Signal Offer'] }] }, /policy: rules\[0\]\.actions\[0\]/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], role: ['x'] }] }, /policy: rules\[0\]\.role: unknown key/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], peerTenants: ['*'] }] }, /policy: rules\[0\]\.peerTenants\[0\]/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], hours: [{ from: '25:00', to: '26:00' }] }] }, /policy: rules\[0\]\.hours\[0\]\.from/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], hours: [{ from: '10:00', to: '10:00' }] }] }, /policy: rules\[0\]\.hours\[0\]\.to/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], hours: [{ days: ['monday'], from: '10:00', to: '11:00' }] }] }, /policy: rules\[0\]\.hours\[0\]\.days\[0\]/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], resource: { topic: {} } }] }, /policy: rules\[0\]\.resource\.topic/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'], resource: { topic: { startsWith: 'x' } } }] }, /policy: rules\[0\]\.resource\.topic\.startsWith: unknown key/],
    [{ version: 1, tenant: 'h', timeZone: 'Mars/Olympus', rules: [] }, /policy: timeZone/],
    [{ version: 1, tenant: 'h', rules: [{ id: 'a', effect: 'allow', actions: ['*'] }, { id: 'a', effect: 'deny', actions: ['*'] }] }, /policy: rules\[1\]\.id: duplicate/],
  ]
  for (const [document, message] of cases) {
    const error = t.throws(() => parsePolicy(document), { instanceOf: ConfigError }, JSON.stringify(document))
    t.is(error?.code, 'ERR_CONFIG')
    t.regex(error?.message ?? '', message)
    t.throws(() => pdp(document), { code: 'ERR_CONFIG' })
  }
})

test('update swaps the whole policy, keeps the old one when the new one is refused, and audits both', (t) => {
  const { point, audit, done } = pdp({ version: 1, tenant: 'hotel-1', revision: 1, rules: [] })
  t.teardown(done)
  t.false(point.decide(alice, 'link.connect').allow)
  point.update({ version: 1, tenant: 'hotel-1', revision: 2, rules: [{ id: 'l', effect: 'allow', actions: ['link.connect'] }] })
  t.true(point.decide(alice, 'link.connect').allow)
  t.throws(() => point.update({ version: 1, rules: [{ id: 'l' }] }), { code: 'ERR_CONFIG' })
  t.true(point.decide(alice, 'link.connect').allow)
  t.is(point.policy.revision, 2)
  const updates = audit.recent(10).filter((row) => row.action === 'policy.update')
  t.deepEqual(updates.map((row) => row.outcome), ['deny', 'allow'])
})

test('the example document of docs/policy.md is valid and decides as the page says', (t) => {
  const page = readFileSync(join(import.meta.dirname, '..', 'docs', 'policy.md'), 'utf8')
  const example = /```yaml\n(version: 1[\s\S]*?)```/.exec(page)?.[1]
  const document = parsePolicy(parseYaml(example ?? ''))
  t.is(document.rules.length, 5)
  let now = Date.UTC(2026, 11, 7, 12, 0) // Monday 13:00 in Paris
  const { point, done } = pdp(document, () => now)
  t.teardown(done)
  t.is(point.decide(alice, 'signal.offer').reason, 'rule:staff-signal')
  now = Date.UTC(2026, 11, 12, 22, 30) // Saturday 23:30 in Paris
  t.true(point.decide(alice, 'link.connect').allow)
  t.true(point.decide(alice, 'mqtt.publish', { topic: 'devices/tablet-1/t', device: 'tablet-1' }).allow)
  t.true(point.decide(stranger, 'gossip.subscribe').allow)
  t.is(point.decide(peer('tablet-13', 'hotel-1', ['staff']), 'link.connect').reason, 'rule:lost-tablet')
  t.is(point.decide(peer('tablet-13', 'hotel-2', ['staff']), 'gossip.subscribe').reason, 'rule:lost-tablet', "a deny covers every tenant's peers")
  now = Date.UTC(2026, 11, 14, 0, 0) // Monday 01:00 in Paris: the Sunday night window
  t.true(point.decide(alice, 'link.connect').allow)
  now = Date.UTC(2026, 11, 12, 0, 0) // Saturday 01:00 in Paris: the Friday night, not a day of the window
  t.false(point.decide(alice, 'link.connect').allow)
  t.is(point.decide(cashier, 'model.load', {}).reason, 'indeterminate:rule no-big-models needs resource.sizeMb')
})

test('with no policy of its own, a service allows its own tenant and no other (zero trust by default)', (t) => {
  const { point, done } = pdp(sameTenantPolicy('hotel-1'))
  t.teardown(done)
  t.true(point.decide(alice, 'link.connect').allow)
  t.true(point.decide(cashier, 'attest.quote').allow)
  t.deepEqual({ ...point.decide(stranger, 'link.connect') }, { allow: false, reason: 'cross-tenant' })
  t.throws(() => sameTenantPolicy('bad tenant!'), { code: 'ERR_CONFIG' })
})

test('the policy-decide bench row runs, its two sides agreeing on every request', async (t) => {
  const rows = await runBench({ filter: 'policy-decide', quick: true })
  t.is(rows.length, 1)
  t.true(rows[0]!.ztmesh_ns > 0 && rows[0]!.baseline_ns > 0)
})
