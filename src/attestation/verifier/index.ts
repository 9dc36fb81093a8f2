/**
 * TPM attestation on the CA's side: the CA's attestation settings, single-use nonces for
 * enrollment quotes, what each device's enrollment proved, and the checks of its evidence.
 *
 * Enrollment: the device asks `POST /v1/attest/nonce` for a nonce, quotes its PCRs over it with
 * an attestation key (AK), signs `akBindingMessage(akPublicPem)` with the key of its CSR, and
 * sends all of it with the CSR. The CA consumes the nonce in the enrollment transaction, checks
 * the binding against the CSR and the quote against its PCR policy, and records the AK and the
 * quoted PCRs: the device's baseline for later re-attestations (see `reattest.ts`). The nonces
 * and records are stored by `store.ts`, the only SQL of this folder.
 *
 * @example
 * ```ts
 * ca.setAttestationSettings({ mode: 'required', pcrPolicy: { 7: 'ab…' }, onDrift: 'revoke' })
 * const { nonce } = ca.issueNonce(nonceRequestFor(token, 'tablet-7'), '10.0.0.7')
 * ```
 */

import { akPublicKeySha256, checkPcrPolicy, verifyAkBinding, verifyQuote, type BoundQuote, type PcrPolicy, type PcrValue, type VerifiedQuote } from '../index.js'
import { createError, isErrorCode, ZtError, type ErrorCode } from '../../errors.js'
import type { QuoteEvidence } from '../../protocol/quote.js'

/** Whether enrollments carry TPM quotes: never looked at, verified when present, or required. */
export type AttestationMode = 'off' | 'optional' | 'required'

/** What happens to a device whose PCRs drift, or whose quote does not verify. */
export type DriftAction = 'revoke' | 'demote'

/** The CA's attestation policy. */
export interface AttestationSettings {
  /** Default `'optional'`: a quote is verified when present, and its absence recorded. */
  mode: AttestationMode
  /** The SHA-256 PCR values every quote must show, `{ index: hex }`. Default: none. */
  pcrPolicy: PcrPolicy
  /** Default `'revoke'`. */
  onDrift: DriftAction
  /** How long an enrollment nonce lives. Default 300 s; 10 s to 1 hour. */
  nonceTtlSeconds: number
}

/** What an enrollment nonce request returns. */
export interface IssuedNonce {
  /** 32 random bytes, hex. */
  nonce: string
  /** ms since the epoch. */
  expiresAt: number
  /** The PCRs the CA asks the device to quote. */
  pcrs: number[]
}

/** What the registry knows about one device's attestations. */
export interface AttestationRecord {
  tenant: string
  deviceId: string
  /** The certificate its enrollment issued. */
  serial: string
  /** Whether its enrollment carried a verified quote. */
  attested: boolean
  /** The AK its enrollment quoted with (PEM); re-attestations must use the same. */
  akPublicPem: string | null
  /** The SHA-256 PCRs its enrollment quoted: its baseline. */
  pcrs: PcrPolicy
  enrolledAtMs: number
  lastCheckedAtMs: number | null
  lastAttestedAtMs: number | null
  /** The last re-attestation's verdict, or null before the first. */
  lastVerdict: ReattestVerdict | null
  /** `'ok'` or the code the last re-attestation failed with. */
  lastReason: string | null
  /** Re-attestations failed in a row. */
  failures: number
  /** When drift demoted it (its next rotation issues no roles), else null. */
  demotedAtMs: number | null
  /** The roles its certificate had when it was demoted. */
  demotedRoles: string[]
}

/**
 * The verdict of one re-attestation:
 * - `ok`: a fresh quote by the recorded AK, bound to the device's certificate, meets the policy;
 * - `drift`: such a quote, but the PCRs differ from the policy or baseline;
 * - `refused`: the node answered with evidence that does not verify (signature, nonce, PCR
 *   values, AK binding, another AK), which a genuine node never does;
 * - `failed`: the check could not finish (unreachable, timeout, malformed answer, no AK on
 *   record, an error reported by the node): recorded, nothing else.
 */
export type ReattestVerdict = 'ok' | 'drift' | 'refused' | 'failed'

/** The PCRs asked for when neither the policy nor a baseline names any: the firmware and boot PCRs. */
export const DEFAULT_QUOTE_PCRS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7]

export const DEFAULT_ATTESTATION_SETTINGS: Readonly<AttestationSettings> = Object.freeze({
  mode: 'optional',
  pcrPolicy: Object.freeze({}),
  onDrift: 'revoke',
  nonceTtlSeconds: 300,
})

const MODES: readonly AttestationMode[] = ['off', 'optional', 'required']
const DRIFT_ACTIONS: readonly DriftAction[] = ['revoke', 'demote']
const MIN_NONCE_TTL_SECONDS = 10
const MAX_NONCE_TTL_SECONDS = 3600
export { AttestationRegistry, NonceStore, type NonceState } from './store.js'

const SETTING_KEYS = { mode: 'attest_mode', pcrPolicy: 'attest_pcr_policy', onDrift: 'attest_on_drift', nonceTtlSeconds: 'attest_nonce_ttl' } as const

/** Codes of evidence that was answered but does not verify: the `refused` verdict. */
const REFUSALS = new Set<ErrorCode>(['ERR_ATTEST_SIGNATURE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_PCR_VALUES', 'ERR_ATTEST_BINDING', 'ERR_ATTEST_KEY_CHANGED'])

/**
 * Checks settings changes given by an operator (CLI or API); throws `ERR_INVALID_ARG` for
 * anything out of range. PCR values come back lowercase.
 */
export function checkAttestationSettings(changes: Partial<Record<keyof AttestationSettings, unknown>>): Partial<AttestationSettings> {
  const checked: Partial<AttestationSettings> = {}
  if (changes.mode !== undefined) {
    if (!MODES.includes(changes.mode as AttestationMode)) throw createError('ERR_INVALID_ARG', `the attestation mode must be one of ${MODES.join(', ')}`)
    checked.mode = changes.mode as AttestationMode
  }
  if (changes.onDrift !== undefined) {
    if (!DRIFT_ACTIONS.includes(changes.onDrift as DriftAction)) throw createError('ERR_INVALID_ARG', `the drift action must be one of ${DRIFT_ACTIONS.join(', ')}`)
    checked.onDrift = changes.onDrift as DriftAction
  }
  if (changes.pcrPolicy !== undefined) checked.pcrPolicy = checkPcrPolicy(changes.pcrPolicy)
  if (changes.nonceTtlSeconds !== undefined) {
    const ttl = changes.nonceTtlSeconds
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < MIN_NONCE_TTL_SECONDS || ttl > MAX_NONCE_TTL_SECONDS) {
      throw createError('ERR_INVALID_ARG', `the nonce lifetime must be ${MIN_NONCE_TTL_SECONDS}..${MAX_NONCE_TTL_SECONDS} seconds`)
    }
    checked.nonceTtlSeconds = ttl
  }
  return checked
}

/** The attestation settings held in the CA's settings table (defaults where unset). */
export function readAttestationSettings(settings: Record<string, string | undefined>): AttestationSettings {
  const stored = (key: string) => settings[key]
  try {
    const policy = stored(SETTING_KEYS.pcrPolicy)
    const ttl = stored(SETTING_KEYS.nonceTtlSeconds)
    return {
      ...DEFAULT_ATTESTATION_SETTINGS,
      pcrPolicy: {},
      ...checkAttestationSettings({
        mode: stored(SETTING_KEYS.mode),
        onDrift: stored(SETTING_KEYS.onDrift),
        pcrPolicy: policy === undefined ? undefined : (JSON.parse(policy) as unknown),
        nonceTtlSeconds: ttl === undefined ? undefined : Number(ttl),
      }),
    }
  } catch (error) {
    // Settings nobody can read must not silently fall back to something weaker.
    throw createError('ERR_STORAGE', 'the stored attestation settings are unreadable', { cause: error })
  }
}

/** The settings table rows for `changes`. */
export function attestationSettingRows(changes: Partial<AttestationSettings>): Array<[string, string]> {
  const rows: Array<[string, string]> = []
  if (changes.mode !== undefined) rows.push([SETTING_KEYS.mode, changes.mode])
  if (changes.onDrift !== undefined) rows.push([SETTING_KEYS.onDrift, changes.onDrift])
  if (changes.pcrPolicy !== undefined) rows.push([SETTING_KEYS.pcrPolicy, JSON.stringify(changes.pcrPolicy)])
  if (changes.nonceTtlSeconds !== undefined) rows.push([SETTING_KEYS.nonceTtlSeconds, String(changes.nonceTtlSeconds)])
  return rows
}

/** The PCRs to quote for `policy`: its indices with the default ones, ascending. */
export function quoteSelection(policy: PcrPolicy, defaults: readonly number[] = DEFAULT_QUOTE_PCRS): number[] {
  return [...new Set([...defaults, ...Object.keys(policy).map(Number)])].sort((a, b) => a - b)
}

/**
 * Checks enrollment evidence (decoded by the core, see `protocol/quote.ts`) whose nonce the
 * caller has consumed: the AK is bound to the CSR's key, and the quote is over the nonce by that
 * AK and meets `policy`. Returns the verified quote.
 */
export function verifyEnrollmentEvidence(evidence: QuoteEvidence, csrPem: string, policy: PcrPolicy): VerifiedQuote {
  verifyAkBinding(csrPem, evidence.quote.akPublicPem, evidence.quote.akBinding)
  return verifyQuote(evidence.quote, evidence.nonce, policy)
}

/**
 * Checks a re-attestation answer: quoted with the AK recorded at enrollment
 * (`ERR_ATTEST_KEY_CHANGED`), that AK bound to the certificate the node presented on the link
 * (`ERR_ATTEST_BINDING`), over `nonce`, meeting `policy` (`ERR_ATTEST_PCR_MISMATCH` is drift).
 */
export function verifyReattestation(record: AttestationRecord, certificatePem: string, quote: BoundQuote, nonce: Uint8Array, policy: PcrPolicy): VerifiedQuote {
  if (!record.attested || record.akPublicPem === null) throw createError('ERR_ATTEST_NOT_ENROLLED')
  if (!sameKey(quote.akPublicPem, record.akPublicPem)) throw createError('ERR_ATTEST_KEY_CHANGED')
  verifyAkBinding(certificatePem, record.akPublicPem, quote.akBinding)
  return verifyQuote({ ...quote, akPublicPem: record.akPublicPem }, nonce, policy)
}

/**
 * The policy a re-attestation is held to: the device's enrollment baseline, overridden by the
 * CA's policy where it names a PCR. Any change from the attested state is drift; to accept a
 * legitimate change (a firmware update), name the new values in the CA's policy.
 */
export function reattestationPolicy(record: AttestationRecord, caPolicy: PcrPolicy): PcrPolicy {
  return { ...record.pcrs, ...caPolicy }
}

/** The verdict for a failed verification (see {@link ReattestVerdict}). */
export function verdictOf(error: unknown): ReattestVerdict {
  if (!(error instanceof ZtError)) return 'failed'
  if (error.code === 'ERR_ATTEST_PCR_MISMATCH') return 'drift'
  return REFUSALS.has(error.code) ? 'refused' : 'failed'
}

/** The code an audit row records for `error`. */
export function reasonOf(error: unknown): ErrorCode {
  return error instanceof ZtError && isErrorCode(error.code) ? error.code : 'ERR_INTERNAL'
}

/** The SHA-256 PCRs of a verified quote as `{ index: hex }`. */
export function sha256Pcrs(pcrs: readonly PcrValue[]): PcrPolicy {
  return Object.fromEntries(pcrs.filter((p) => p.bank === 'sha256').map((p) => [p.index, p.value.toLowerCase()]))
}

/** Whether two PEM attestation keys are the same key (parsed by the core; `ERR_ATTEST_MALFORMED` otherwise). */
function sameKey(a: string, b: string): boolean {
  return akPublicKeySha256(a) === akPublicKeySha256(b)
}
