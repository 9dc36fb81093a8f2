/**
 * The one policy decision point: `decide(peer, action, resource) → {allow, reason}`. The hub, the
 * mesh, the CA API, MQTT and model policy all ask it, and it audits every answer.
 *
 * - **Deny by default**: a request no rule allows is refused (`no-rule`).
 * - **Zero trust across tenants**: every document names the tenant it governs. A peer of another
 *   tenant is allowed only by rules that name its tenant in `peerTenants` (`cross-tenant`
 *   otherwise), while a deny rule covers peers of every tenant unless it names some.
 * - **RBAC from the certificate only**: `roles` match the roles of the verified
 *   {@link PeerIdentity}, which come from its certificate; nothing else grants a role.
 * - **ABAC**: device ids, local time-of-day windows (the document's IANA `timeZone`, else UTC)
 *   and conditions on resource attributes (`equals`, `in`, `prefix`, `equalsPeer`, `min`, `max`).
 * - **Deny overrides**: a request is allowed when at least one allow rule covers it and no deny
 *   rule does, whatever the order of the rules. Order-free documents can be merged and reviewed
 *   rule by rule; an allow rule can never shadow a later deny.
 * - **Fail closed**: a rule that covers the peer but cannot be evaluated (a resource attribute it
 *   tests is missing or of the wrong type) denies the request, and the reason says what was missing.
 *
 * Documents are data (JSON or YAML shaped), checked by {@link parsePolicy}; mistakes are
 * `ERR_CONFIG` naming the key. Rules are compiled once and indexed by action, so a decision
 * looks only at the rules of its action and allocates nothing but its audit row.
 *
 * @example
 * ```ts
 * const pdp = createPolicyDecisionPoint({
 *   policy: { version: 1, tenant: 'hotel-1', timeZone: 'Europe/Paris', rules: [
 *     { id: 'staff-signal', effect: 'allow', actions: ['signal.*'], roles: ['staff'],
 *       hours: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '07:00', to: '20:00' }] },
 *   ] },
 *   audit: new AuditLog(db),
 * })
 * const { allow, reason } = pdp.decide(link.peer, 'signal.offer', { device: 'tablet-9' })
 * ```
 */

import type { AuditEvent } from '../audit/index.js'
import { createError } from '../errors.js'
import type { PeerIdentity } from '../primitives/pki/index.js'
import { DEFAULT_TIME_ZONE, MAX_CACHED_ACTIONS, REASONS } from './constants.js'
import {
  actionMatches,
  CompiledRule,
  type Decision,
  isActionName,
  type LocalTime,
  localTimeFn,
  MATCH,
  NO_MATCH,
  parsePolicy,
  type PeerFacts,
  type PolicyDocument,
  type PolicyResource,
} from './document.js'

export { parsePolicy, type Decision, type PeerFacts, type PolicyDocument, type PolicyResource, type PolicyRule } from './document.js'
export { REASONS as POLICY_REASONS } from './constants.js'

/** Where decisions are recorded: the project's {@link AuditLog} (or anything with its `append`). */
export interface AuditSink {
  append(event: AuditEvent): unknown
}

/** Options of {@link createPolicyDecisionPoint}. */
export interface PolicyDecisionPointInit {
  /** The policy document (parsed JSON or YAML); checked with {@link parsePolicy}. */
  policy: unknown
  /** The audit log every decision is appended to. */
  audit: AuditSink
  /** The clock of time-of-day windows, ms since the epoch (default `Date.now`). */
  now?: () => number
}

const NO_RULE: Decision = Object.freeze({ allow: false, reason: REASONS.noRule })
const CROSS_TENANT: Decision = Object.freeze({ allow: false, reason: REASONS.crossTenant })
const AUDIT_FAILED: Decision = Object.freeze({ allow: false, reason: REASONS.auditFailed })
const EMPTY_RESOURCE: PolicyResource = Object.freeze({})

/** The rules an action may match, and whether any of them reads the clock. */
interface RulesOfAction {
  rules: readonly CompiledRule[]
  readsTime: boolean
}

/** One compiled edition of a policy: swapped whole on {@link PolicyDecisionPoint.update}. */
class CompiledPolicy {
  readonly document: PolicyDocument
  readonly #rules: readonly CompiledRule[]
  readonly #patterns: readonly (readonly string[])[]
  readonly #byAction = new Map<string, RulesOfAction>()
  readonly #peerTenants: ReadonlySet<string>
  readonly localTime: (nowMs: number) => LocalTime

  constructor(document: PolicyDocument) {
    this.document = document
    this.#rules = document.rules.map((rule) => new CompiledRule(rule))
    this.#patterns = document.rules.map((rule) => rule.actions)
    this.#peerTenants = new Set(document.rules.flatMap((rule) => rule.peerTenants ?? []))
    this.localTime = localTimeFn(document.timeZone ?? DEFAULT_TIME_ZONE)
  }

  /**
   * The rules whose action patterns cover `action`, in document order (cached per action), or
   * `undefined` when `action` is not an action name (a prefix pattern must not match garbage).
   */
  rulesFor(action: string): RulesOfAction | undefined {
    let entry = this.#byAction.get(action)
    if (entry === undefined) {
      if (!isActionName(action)) return undefined
      const rules = this.#rules.filter((_, index) => this.#patterns[index]!.some((pattern) => actionMatches(pattern, action)))
      entry = { rules, readsTime: rules.some((rule) => rule.readsTime) }
      if (this.#byAction.size < MAX_CACHED_ACTIONS) this.#byAction.set(action, entry)
    }
    return entry
  }

  /** Whether any rule names `tenant` as a peer tenant (cross-tenant access is possible at all). */
  namesPeerTenant(tenant: string): boolean {
    return this.#peerTenants.has(tenant)
  }
}

/** The policy decision point. Create it with {@link createPolicyDecisionPoint}. */
export class PolicyDecisionPoint {
  #policy: CompiledPolicy
  readonly #audit: AuditSink
  readonly #now: () => number

  constructor(init: PolicyDecisionPointInit) {
    this.#policy = new CompiledPolicy(parsePolicy(init.policy))
    this.#audit = init.audit
    this.#now = init.now ?? Date.now
  }

  /** The document in force. */
  get policy(): PolicyDocument {
    return this.#policy.document
  }

  /**
   * Decides whether `peer` (a verified identity: `verifyPeer`'s result or a link's `peer`) may
   * do `action` on `resource`, and appends the decision to the audit log. Never throws: a
   * request that cannot be evaluated, or whose decision cannot be audited, is denied.
   */
  decide(peer: PeerIdentity | PeerFacts, action: string, resource: PolicyResource = EMPTY_RESOURCE): Decision {
    let decision: Decision
    try {
      decision = this.#evaluate(peer, action, resource)
    } catch {
      // A hostile or broken input (a throwing getter, a proxy): refuse, never throw.
      decision = indeterminate('the request could not be read')
    }
    try {
      this.#audit.append(auditEvent(peer, action, resource, decision, this.#policy.document.revision))
    } catch {
      return AUDIT_FAILED
    }
    return decision
  }

  /**
   * {@link decide}, for callers that refuse by throwing: returns the allowing decision, or
   * throws a `PolicyError` `ERR_POLICY_DENIED` whose message is the reason.
   */
  enforce(peer: PeerIdentity | PeerFacts, action: string, resource?: PolicyResource): Decision {
    const decision = this.decide(peer, action, resource)
    if (!decision.allow) throw createError('ERR_POLICY_DENIED', decision.reason)
    return decision
  }

  /**
   * Replaces the policy with a new document (on reload). The new document is checked first; if
   * it is refused (`ERR_CONFIG`), the one in force stays. The change is audited.
   */
  update(policy: unknown): void {
    let next: CompiledPolicy
    try {
      next = new CompiledPolicy(parsePolicy(policy))
    } catch (error) {
      this.#audit.append({ actor: 'policy', action: 'policy.update', outcome: 'deny', reason: 'ERR_CONFIG' })
      throw error
    }
    this.#audit.append({ actor: 'policy', action: 'policy.update', outcome: 'allow', reason: 'ok', detail: { revision: next.document.revision ?? null } })
    this.#policy = next
  }

  #evaluate(peer: PeerFacts, action: string, resource: PolicyResource): Decision {
    if (typeof peer !== 'object' || peer === null || typeof peer.tenant !== 'string' || typeof peer.deviceId !== 'string' || !Array.isArray(peer.roles)) {
      return indeterminate('the peer is not a verified identity')
    }
    if (typeof action !== 'string') return indeterminate('the action is not a string')
    if (typeof resource !== 'object' || resource === null) return indeterminate('the resource is not a record')
    const policy = this.#policy
    const home = policy.document.tenant
    // A document governs its tenant's resources only: a resource naming another tenant (perhaps
    // named by the requester itself) is not this document's to allow.
    if (resource.tenant !== undefined && resource.tenant !== home) {
      return indeterminate(`the resource is of tenant ${String(resource.tenant)}, not of this policy's`)
    }
    const forAction = policy.rulesFor(action)
    if (forAction === undefined) return indeterminate('the action is not an action name')
    if (peer.tenant !== home && !policy.namesPeerTenant(peer.tenant)) return CROSS_TENANT

    const { rules, readsTime } = forAction
    let time: LocalTime | undefined
    if (readsTime) {
      const now = this.#now()
      // A broken clock must not let a time-bound deny rule miss.
      if (!Number.isFinite(now)) return indeterminate('the clock gave no valid time')
      time = policy.localTime(now)
    }
    let allowed: Decision | undefined
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!
      const verdict = rule.evaluate(peer, home, resource, time)
      if (verdict === NO_MATCH) continue
      if (verdict !== MATCH) return { allow: false, reason: verdict }
      if (!rule.allow) return rule.decision
      allowed ??= rule.decision
    }
    if (allowed !== undefined) return allowed
    return peer.tenant === home ? NO_RULE : CROSS_TENANT
  }
}

/**
 * The policy of a server or client that was given none (zero trust by default): every action
 * for peers of its own tenant, nothing for anyone else. Cross-tenant access needs a document
 * that names the other tenant.
 */
export function sameTenantPolicy(tenant: string): PolicyDocument {
  return parsePolicy({ version: 1, tenant, rules: [{ id: 'same-tenant', effect: 'allow', actions: ['*'] }] })
}

/** Creates the policy decision point of a daemon or service. */
export function createPolicyDecisionPoint(init: PolicyDecisionPointInit): PolicyDecisionPoint {
  return new PolicyDecisionPoint(init)
}

function indeterminate(what: string): Decision {
  return { allow: false, reason: `${REASONS.indeterminate}:${what}` }
}

function auditEvent(peer: PeerFacts, action: string, resource: PolicyResource, decision: Decision, revision: number | undefined): AuditEvent {
  const detail: NonNullable<AuditEvent['detail']> = {
    tenant: typeof peer?.tenant === 'string' ? peer.tenant : null,
    roles: Array.isArray(peer?.roles) ? peer.roles.join(',') : null,
    serial: typeof (peer as Partial<PeerIdentity>)?.serial === 'string' ? (peer as PeerIdentity).serial : null,
    rule: decision.rule ?? null,
    revision: revision ?? null,
  }
  try {
    for (const key in resource) {
      const value = resource[key]
      if (value === undefined) continue
      detail[detailKey(key)] = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : String(typeof value)
    }
  } catch {
    detail.resource = 'unreadable'
  }
  return {
    actor: typeof peer?.deviceId === 'string' ? peer.deviceId : 'unknown',
    action: typeof action === 'string' ? action : 'unknown',
    outcome: decision.allow ? 'allow' : 'deny',
    reason: decision.reason,
    detail,
  }
}

const DETAIL_KEYS = new Map<string, string>()

/** `resource.<key>`, built once per attribute name (a few distinct names, many decisions). */
function detailKey(key: string): string {
  let name = DETAIL_KEYS.get(key)
  if (name === undefined) {
    name = `resource.${key}`
    if (DETAIL_KEYS.size < MAX_CACHED_ACTIONS) DETAIL_KEYS.set(key, name)
  }
  return name
}
