/**
 * Policy documents: their schema, and their compilation into rules that the decision point
 * evaluates without parsing, sorting or allocating per decision.
 */

import { createRequire } from 'node:module'

import type * as Zod from 'zod'

import { parseWithSchema } from '../schema.js'
import { ACTION_NAME, DEFAULT_TIME_ZONE, MAX_ACTION_LENGTH, MAX_RULES, POLICY_VERSION, REASONS, WEEKDAYS } from './constants.js'

// ---- The document (data: JSON or YAML shaped) -------------------------------------------------
//
// The schemas are built on first use: zod takes longer to load than the rest of the package, and
// most programs that import ztmesh never read a policy document.

const require = createRequire(import.meta.url)

function buildSchemas(z: typeof Zod.z) {
  const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/, 'expected a name of letters, digits and . _ : @ - (at most 128)')
  const ActionPattern = z.string().refine(isActionPattern, {
    message: `expected an action ("signal.offer"), a prefix ("signal.*") or "*", of lowercase letters, digits, - and dots (at most ${MAX_ACTION_LENGTH})`,
  })
  const Clock = z.string().regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$/, 'expected a time of day "HH:MM"')
  const Scalar = z.union([z.string(), z.number(), z.boolean()])
  const list = <T extends Zod.z.ZodType>(item: T) => z.array(item).min(1).max(1000)

  const TimeWindow = z
    .strictObject({
      /** Local weekdays on which the window opens (default every day); a window across midnight runs into the next day. */
      days: list(z.enum(WEEKDAYS)).optional(),
      /** Opening time, local, inclusive. */
      from: Clock,
      /** Closing time, local, exclusive; before `from` for a window across midnight. */
      to: Clock,
    })
    .refine((w) => w.from !== w.to, { message: 'from and to are equal (an empty window)', path: ['to'] })

  const Condition = z
    .strictObject({
      equals: Scalar.optional(),
      in: list(Scalar).optional(),
      prefix: z.string().min(1).optional(),
      /** The attribute must equal this attribute of the peer's certificate. */
      equalsPeer: z.enum(['deviceId', 'tenant']).optional(),
      min: z.number().optional(),
      max: z.number().optional(),
    })
    .refine((c) => Object.keys(c).length > 0, { message: 'a condition needs at least one test' })

  const Rule = z.strictObject({
    /** Names the rule in decisions and audit rows. */
    id: Name,
    effect: z.enum(['allow', 'deny']),
    actions: list(ActionPattern),
    /** Any one of these certified roles (default: any peer). */
    roles: list(Name).optional(),
    /** Only these device ids (default: any device). */
    devices: list(Name).optional(),
    /**
     * The tenants whose peers the rule covers, named one by one (no wildcard). Default: for an
     * allow rule, only the resource's own tenant, so a peer of another tenant is never allowed by
     * accident; for a deny rule, every tenant, so no allow can carry a peer past it.
     */
    peerTenants: list(Name).optional(),
    /** Open only in one of these local time windows. */
    hours: list(TimeWindow).optional(),
    /** Conditions on the resource's attributes, all of which must hold. */
    resource: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'expected an attribute name'), Condition).optional(),
  })

  const Document = z
    .strictObject({
      version: z.literal(POLICY_VERSION),
      /** A number the issuer raises with each edition; recorded in audit rows. */
      revision: z.number().int().min(0).optional(),
      /**
       * The tenant this document governs, required: its resources are this tenant's, and a peer
       * of any other tenant is covered only by rules naming it in `peerTenants`.
       */
      tenant: Name,
      /** IANA time zone of the `hours` windows (default UTC). */
      timeZone: z
        .string()
        .refine(isTimeZone, { message: 'expected an IANA time zone such as "Europe/Paris" or "UTC"' })
        .optional(),
      rules: z.array(Rule).max(MAX_RULES),
    })
    .superRefine((doc, ctx) => {
      const seen = new Set<string>()
      doc.rules.forEach((rule, index) => {
        if (seen.has(rule.id)) ctx.addIssue({ code: 'custom', message: `duplicate rule id "${rule.id}"`, path: ['rules', index, 'id'] })
        seen.add(rule.id)
      })
    })
  return { Document, Rule, Condition }
}

type Schemas = ReturnType<typeof buildSchemas>
let schemas: Schemas | undefined
const loadSchemas = (): Schemas => (schemas ??= buildSchemas((require('zod') as typeof Zod).z))

/** A checked policy document. */
export type PolicyDocument = Zod.z.output<Schemas['Document']>
/** One rule of a {@link PolicyDocument}. */
export type PolicyRule = Zod.z.output<Schemas['Rule']>
type Condition = Zod.z.output<Schemas['Condition']>

/**
 * Checks a policy document (parsed JSON or YAML) and returns it typed; throws `ERR_CONFIG`
 * naming the offending key (`policy: rules[1].effect: …`), unknown keys included.
 */
export function parsePolicy(document: unknown): PolicyDocument {
  return parseWithSchema(loadSchemas().Document, document, 'policy')
}

// ---- Compiled form ------------------------------------------------------------------------------

/** What a decision point answers. */
export interface Decision {
  /** Whether the request is allowed. */
  readonly allow: boolean
  /** Why: `rule:<id>`, `no-rule`, `cross-tenant`, `audit-failed`, or `indeterminate:<what>`. */
  readonly reason: string
  /** The id of the rule that decided, if one did. */
  readonly rule?: string
}

/** Facts about the peer that rules read: only what its certificate says. */
export interface PeerFacts {
  readonly deviceId: string
  readonly tenant: string
  readonly roles: readonly string[]
}

/** Attributes of the thing acted on. `tenant` defaults to the document's tenant. */
export interface PolicyResource {
  tenant?: string
  device?: string
  topic?: string
  model?: string
  [attribute: string]: string | number | boolean | undefined
}

/** The local weekday (0 = Sunday) and minute of the day, computed at most once per decision. */
export interface LocalTime {
  weekday: number
  minute: number
}

/** A rule's verdict on one request: not applicable, applicable, or not evaluable (why). */
export const NO_MATCH = 0
export const MATCH = 1
export type Verdict = typeof NO_MATCH | typeof MATCH | string

interface Window {
  days: number // bit i = weekday i
  from: number
  to: number
}

type Test = (value: string | number | boolean, peer: PeerFacts) => boolean | string

/** A rule ready to evaluate. */
export class CompiledRule {
  readonly id: string
  readonly allow: boolean
  /** The decision this rule makes, shared by every request it decides. */
  readonly decision: Decision
  readonly #roles: ReadonlySet<string> | undefined
  readonly #devices: ReadonlySet<string> | undefined
  readonly #peerTenants: ReadonlySet<string> | undefined
  readonly #windows: readonly Window[] | undefined
  readonly #attributes: readonly string[]
  readonly #tests: readonly Test[]

  constructor(rule: PolicyRule) {
    this.id = rule.id
    this.allow = rule.effect === 'allow'
    this.decision = Object.freeze({ allow: this.allow, reason: `rule:${rule.id}`, rule: rule.id })
    this.#roles = rule.roles && new Set(rule.roles)
    this.#devices = rule.devices && new Set(rule.devices)
    this.#peerTenants = rule.peerTenants && new Set(rule.peerTenants)
    this.#windows = rule.hours?.map((w) => ({
      days: dayBits(w.days ?? WEEKDAYS),
      from: minuteOf(w.from),
      to: minuteOf(w.to),
    }))
    const conditions = Object.entries(rule.resource ?? {})
    this.#attributes = conditions.map(([attribute]) => attribute)
    this.#tests = conditions.map(([, condition]) => compileCondition(condition))
  }

  /** Whether the rule reads the local time (so the decision computes it once, up front). */
  get readsTime(): boolean {
    return this.#windows !== undefined
  }

  /**
   * Whether the rule may cover peers of `tenant` when the resource belongs to `home`: the tenants
   * it names, else the home tenant for an allow and every tenant for a deny.
   */
  coversTenant(tenant: string, home: string): boolean {
    if (this.#peerTenants !== undefined) return this.#peerTenants.has(tenant)
    return !this.allow || tenant === home
  }

  /** This rule's verdict: who first (tenant, device, roles), then when, then what. */
  evaluate(peer: PeerFacts, home: string, resource: PolicyResource, time: LocalTime | undefined): Verdict {
    if (!this.coversTenant(peer.tenant, home)) return NO_MATCH
    if (this.#devices !== undefined && !this.#devices.has(peer.deviceId)) return NO_MATCH
    if (this.#roles !== undefined && !hasAny(this.#roles, peer.roles)) return NO_MATCH
    if (this.#windows !== undefined && (time === undefined || !inWindow(this.#windows, time))) return NO_MATCH
    for (let i = 0; i < this.#tests.length; i++) {
      const attribute = this.#attributes[i]!
      const value = resource[attribute]
      if (value === undefined) return `${REASONS.indeterminate}:rule ${this.id} needs resource.${attribute}`
      const verdict = this.#tests[i]!(value, peer)
      if (typeof verdict === 'string') return `${REASONS.indeterminate}:rule ${this.id}: resource.${attribute} ${verdict}`
      if (!verdict) return NO_MATCH
    }
    return MATCH
  }
}

/** Whether `action` is an action name ({@link ACTION_NAME}, at most {@link MAX_ACTION_LENGTH} characters). */
export function isActionName(action: string): boolean {
  return action.length <= MAX_ACTION_LENGTH && ACTION_NAME.test(action)
}

/** Whether `pattern` is an action pattern: `*`, an action name, or an action name followed by `.*`. */
function isActionPattern(pattern: string): boolean {
  if (pattern === '*') return true
  if (pattern.length > MAX_ACTION_LENGTH) return false
  return isActionName(pattern.endsWith('.*') ? pattern.slice(0, -2) : pattern)
}

/** Whether an action pattern (`*`, `signal.*`, `signal.offer`) covers an action. */
export function actionMatches(pattern: string, action: string): boolean {
  if (pattern === '*') return true
  if (pattern.endsWith('.*')) return action.startsWith(pattern.slice(0, -1))
  return pattern === action
}

/**
 * The local weekday and minute of `nowMs` in `timeZone`. UTC is arithmetic; other zones go
 * through Intl once per minute (a decision point sees many decisions per minute).
 */
export function localTimeFn(timeZone: string): (nowMs: number) => LocalTime {
  if (timeZone === DEFAULT_TIME_ZONE) {
    return (nowMs) => {
      const minutes = Math.floor(nowMs / 60_000)
      // 1970-01-01 was a Thursday (weekday 4).
      return { weekday: (((Math.floor(minutes / 1440) + 4) % 7) + 7) % 7, minute: ((minutes % 1440) + 1440) % 1440 }
    }
  }
  const format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit' })
  let cachedMinute = Number.NaN
  let cached: LocalTime = { weekday: 0, minute: 0 }
  return (nowMs) => {
    const minute = Math.floor(nowMs / 60_000)
    if (minute !== cachedMinute) {
      let weekday = 0
      let hour = 0
      let min = 0
      for (const part of format.formatToParts(nowMs)) {
        if (part.type === 'weekday') weekday = WEEKDAYS.indexOf(part.value.toLowerCase() as (typeof WEEKDAYS)[number])
        else if (part.type === 'hour') hour = Number(part.value)
        else if (part.type === 'minute') min = Number(part.value)
      }
      cached = { weekday, minute: hour * 60 + min }
      cachedMinute = minute
    }
    return cached
  }
}

function compileCondition(condition: Condition): Test {
  const tests: Test[] = []
  if (condition.equals !== undefined) {
    const expected = condition.equals
    tests.push((value) => value === expected)
  }
  if (condition.in !== undefined) {
    const allowed = new Set<string | number | boolean>(condition.in)
    tests.push((value) => allowed.has(value))
  }
  if (condition.prefix !== undefined) {
    const prefix = condition.prefix
    tests.push((value) => (typeof value === 'string' ? value.startsWith(prefix) : 'is not a string'))
  }
  if (condition.equalsPeer !== undefined) {
    const fact = condition.equalsPeer
    tests.push((value, peer) => value === peer[fact])
  }
  if (condition.min !== undefined) {
    const min = condition.min
    tests.push((value) => (typeof value === 'number' ? value >= min : 'is not a number'))
  }
  if (condition.max !== undefined) {
    const max = condition.max
    tests.push((value) => (typeof value === 'number' ? value <= max : 'is not a number'))
  }
  if (tests.length === 1) return tests[0]!
  return (value, peer) => {
    for (const test of tests) {
      const verdict = test(value, peer)
      if (verdict !== true) return verdict
    }
    return true
  }
}

function hasAny(wanted: ReadonlySet<string>, held: readonly string[]): boolean {
  for (let i = 0; i < held.length; i++) if (wanted.has(held[i]!)) return true
  return false
}

/**
 * Whether `time` falls in one of the windows. A window's days are the days it opens: the part of
 * a window across midnight after 00:00 belongs to the day before (Monday 22:00–06:00 holds at
 * 01:00 on Tuesday, not at 01:00 on Monday).
 */
function inWindow(windows: readonly Window[], time: LocalTime): boolean {
  const yesterday = (time.weekday + 6) % 7
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i]!
    if (w.from < w.to) {
      if (time.minute >= w.from && time.minute < w.to && opensOn(w, time.weekday)) return true
    } else if (time.minute >= w.from ? opensOn(w, time.weekday) : time.minute < w.to && opensOn(w, yesterday)) {
      return true
    }
  }
  return false
}

function opensOn(window: Window, weekday: number): boolean {
  return (window.days & (1 << weekday)) !== 0
}

function dayBits(days: readonly (typeof WEEKDAYS)[number][]): number {
  let bits = 0
  for (const day of days) bits |= 1 << WEEKDAYS.indexOf(day)
  return bits
}

function minuteOf(clock: string): number {
  return Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5))
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name })
    return true
  } catch {
    return false
  }
}
