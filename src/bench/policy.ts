/**
 * Policy benchmark: a decision of the policy decision point (a seed-000 site policy of a dozen
 * rules: roles, a cross-tenant partner, shift hours in a time zone, resource conditions) against
 * the same policy written by hand as if-statements. Both sides skip the audit write (a no-op
 * sink): it costs the same whoever decides, and this row measures the deciding.
 */

import type { Operation } from './harness.js'
import type { Case } from './index.js'
import { createPolicyDecisionPoint, type PeerFacts, type PolicyResource } from '../policy/index.js'

const POLICY = {
  version: 1,
  tenant: 'hotel-1',
  timeZone: 'Europe/Paris',
  rules: [
    { id: 'staff-signal', effect: 'allow', actions: ['signal.*', 'link.connect'], roles: ['staff', 'manager'], hours: [{ from: '06:00', to: '23:00' }] },
    { id: 'pos-models', effect: 'allow', actions: ['model.load'], roles: ['pos:cashier'], resource: { model: { in: ['fraud-v2', 'ocr-v1'] } } },
    { id: 'own-telemetry', effect: 'allow', actions: ['mqtt.publish'], resource: { topic: { prefix: 'devices/' }, device: { equalsPeer: 'deviceId' } } },
    { id: 'gossip', effect: 'allow', actions: ['gossip.*'] },
    { id: 'partner-read', effect: 'allow', actions: ['gossip.subscribe'], peerTenants: ['hotel-2'], roles: ['staff'] },
    { id: 'admin-revoke', effect: 'allow', actions: ['ca.*'], roles: ['admin'] },
    { id: 'lost-devices', effect: 'deny', actions: ['*'], devices: ['tablet-13', 'pos-9'] },
    { id: 'no-big-models', effect: 'deny', actions: ['model.load'], resource: { sizeMb: { min: 1024 } } },
    { id: 'bundles', effect: 'allow', actions: ['bundle.*'], roles: ['gateway'] },
    { id: 'hub', effect: 'allow', actions: ['hub.join'], roles: ['staff', 'pos:cashier', 'gateway'] },
  ],
} as const

/** Counts allowed requests, so neither side's work can be optimized away. */
let allowed = 0

const peer = (deviceId: string, tenant: string, roles: string[]): PeerFacts => ({ deviceId, tenant, roles })
const REQUESTS: Array<[PeerFacts, string, PolicyResource]> = [
  [peer('tablet-1', 'hotel-1', ['staff']), 'signal.offer', { device: 'tablet-2' }],
  [peer('pos-1', 'hotel-1', ['pos:cashier']), 'model.load', { model: 'fraud-v2', sizeMb: 40 }],
  [peer('tablet-1', 'hotel-1', ['staff']), 'mqtt.publish', { topic: 'devices/tablet-1/telemetry', device: 'tablet-1' }],
  [peer('tablet-9', 'hotel-2', ['staff']), 'gossip.subscribe', { topic: 'menu' }],
  [peer('tablet-9', 'hotel-2', ['staff']), 'gossip.publish', { topic: 'menu' }],
  [peer('tablet-13', 'hotel-1', ['staff']), 'signal.offer', {}],
  [peer('pos-1', 'hotel-1', ['pos:cashier']), 'ca.revoke', {}],
  [peer('gw-1', 'hotel-1', ['gateway', 'admin']), 'ca.revoke', { device: 'pos-9' }],
]

/** The same policy as a developer would write it by hand for one deployment. */
function handWritten(p: PeerFacts, action: string, r: PolicyResource, minuteOfDay: number): boolean {
  if (p.deviceId === 'tablet-13' || p.deviceId === 'pos-9') return false
  const has = (role: string): boolean => p.roles.includes(role)
  if (p.tenant !== 'hotel-1') return p.tenant === 'hotel-2' && action === 'gossip.subscribe' && has('staff')
  if (action.startsWith('signal.') || action === 'link.connect') return (has('staff') || has('manager')) && minuteOfDay >= 360 && minuteOfDay < 1380
  if (action === 'model.load') {
    if (typeof r.sizeMb !== 'number' || r.sizeMb >= 1024) return false
    return has('pos:cashier') && (r.model === 'fraud-v2' || r.model === 'ocr-v1')
  }
  if (action === 'mqtt.publish') return typeof r.topic === 'string' && r.topic.startsWith('devices/') && r.device === p.deviceId
  if (action.startsWith('gossip.')) return true
  if (action.startsWith('ca.')) return has('admin')
  if (action.startsWith('bundle.')) return has('gateway')
  if (action === 'hub.join') return has('staff') || has('pos:cashier') || has('gateway')
  return false
}

/** Minute of the day in Paris, as the hand-written side must compute it too. */
function parisMinute(nowMs: number): number {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(nowMs)
  return Number(parts.find((x) => x.type === 'hour')!.value) * 60 + Number(parts.find((x) => x.type === 'minute')!.value)
}

export const POLICY_CASES: Case[] = [
  {
    op: 'policy-decide',
    baseline: 'hand-written if-statements',
    target: null,
    async setup() {
      // Noon in Paris, so the shift window is open on both sides.
      const now = (): number => Date.UTC(2026, 11, 7, 11, 0)
      const pdp = createPolicyDecisionPoint({ policy: POLICY, audit: { append() {} }, now })
      let minute = parisMinute(now())
      let cachedAt = Math.floor(now() / 60_000)
      for (const [p, action, r] of REQUESTS) {
        if (pdp.decide(p, action, r).allow !== handWritten(p, action, r, minute)) throw new Error(`bench: the two sides disagree on ${p.deviceId} ${action}`)
      }
      const ztmesh: Operation = () => {
        for (const [p, action, r] of REQUESTS) if (pdp.decide(p, action, r).allow) allowed++
        return REQUESTS.length
      }
      const baseline: Operation = () => {
        // The same once-a-minute time-zone lookup the engine does: a fair hand-written version.
        const at = Math.floor(now() / 60_000)
        if (at !== cachedAt) {
          cachedAt = at
          minute = parisMinute(now())
        }
        for (const [p, action, r] of REQUESTS) if (handWritten(p, action, r, minute)) allowed++
        return REQUESTS.length
      }
      return { ztmesh, baseline }
    },
  },
]
