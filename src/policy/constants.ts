/** Limits and stable reasons of the policy decision point. */

/** The policy document format this build reads. */
export const POLICY_VERSION = 1

/** Most rules in one policy document (a document is data a tenant admin writes, not a database). */
export const MAX_RULES = 10_000

/** Most distinct action names whose applicable rules are cached; beyond it, lookups are not cached. */
export const MAX_CACHED_ACTIONS = 1024

/**
 * The grammar of action names, in rules and in requests: dot-separated segments of lowercase
 * letters, digits and `-`, each starting with a letter (`signal.offer`, `ca.revoke`), at most
 * {@link MAX_ACTION_LENGTH} characters. A rule's pattern is a name, a name followed by `.*` (every
 * action under it) or `*` alone (every action); there is no other wildcard.
 */
export const ACTION_NAME = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/

/** Longest action name or pattern, in characters. */
export const MAX_ACTION_LENGTH = 128

/** The time zone of time-of-day windows when the document names none. */
export const DEFAULT_TIME_ZONE = 'UTC'

/**
 * The stable reasons of decisions no rule made. A rule's decision has the reason `rule:<id>`;
 * a decision that could not be evaluated has `indeterminate:` followed by what was missing.
 */
export const REASONS = {
  /** No rule allowed the request (deny by default). */
  noRule: 'no-rule',
  /** The peer belongs to another tenant than the resource and no rule names the peer's tenant. */
  crossTenant: 'cross-tenant',
  /** The audit log could not be written, so nothing is allowed. */
  auditFailed: 'audit-failed',
  /** Prefix of a decision that could not be evaluated (fail closed). */
  indeterminate: 'indeterminate',
} as const

/** Weekday names as policy documents spell them, Sunday first (the index `Date#getUTCDay` returns). */
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const
