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
  /**
   * Re-attestations of an attested device that may fail in a row (no answer, a timeout, an
   * error) before the drift action applies: silence is not a way out. Default 3; 1 to 100.
   */
  maxFailures: number
  /**
   * How long an attested device may go without a good quote: a failed re-attestation after
   * that applies the drift action. Default 86,400 s (one day); 60 s to 30 days.
   */
  maxSilenceSeconds: number
  /**
   * The trusted EK CA certificates (PEM: the TPM manufacturers' roots and CAs). When set, a
   * device that sends its EK certificate gets a credential challenge with its nonce, and under
   * `required` every enrollment must answer one (`ERR_ATTEST_CREDENTIAL`): only then is a quote
   * known to come from a TPM. Default: none; `required` without any refuses every enrollment
   * (it fails closed: a quote software can make proves nothing).
   */
  ekCasPem: string
}

/** What an enrollment nonce request returns. */
export interface IssuedNonce {
  /** The credential challenge for the device's TPM, when it sent its EK certificate and the CA trusts EK CAs. */
  challenge?: { credentialBlob: Buffer; encryptedSecret: Buffer }
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
 *   values, fewer PCRs than asked, AK binding, another AK), which a genuine node never does;
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
  maxFailures: 3,
  maxSilenceSeconds: 86_400,
  ekCasPem: '',
})

const MODES: readonly AttestationMode[] = ['off', 'optional', 'required']
const DRIFT_ACTIONS: readonly DriftAction[] = ['revoke', 'demote']
const MIN_NONCE_TTL_SECONDS = 10
const MAX_NONCE_TTL_SECONDS = 3600
const MAX_FAILURES = 100
const MIN_SILENCE_SECONDS = 60
const MAX_SILENCE_SECONDS = 30 * 86_400
export { AttestationRegistry, NonceStore, type NonceState } from './store.js'

const SETTING_KEYS = {
  mode: 'attest_mode',
  pcrPolicy: 'attest_pcr_policy',
  onDrift: 'attest_on_drift',
  nonceTtlSeconds: 'attest_nonce_ttl',
  maxFailures: 'attest_max_failures',
  maxSilenceSeconds: 'attest_max_silence',
  ekCasPem: 'attest_ek_cas',
} as const

/** Codes of evidence that was answered but does not verify: the `refused` verdict. */
const REFUSALS = new Set<ErrorCode>(['ERR_ATTEST_SIGNATURE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_PCR_VALUES', 'ERR_ATTEST_PCR_SELECTION', 'ERR_ATTEST_BINDING', 'ERR_ATTEST_KEY_CHANGED'])

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
  if (changes.ekCasPem !== undefined) {
    const pem = changes.ekCasPem
    if (typeof pem !== 'string' || pem.length > 256 * 1024 || (pem !== '' && !pem.includes('-----BEGIN CERTIFICATE-----'))) {
      throw createError('ERR_INVALID_ARG', 'the EK CAs are PEM certificates (or empty for none)')
    }
    checked.ekCasPem = pem
  }
  if (changes.maxFailures !== undefined) checked.maxFailures = integerIn('the failures allowed in a row', changes.maxFailures, 1, MAX_FAILURES)
  if (changes.maxSilenceSeconds !== undefined) checked.maxSilenceSeconds = integerIn('the longest time without a good quote (seconds)', changes.maxSilenceSeconds, MIN_SILENCE_SECONDS, MAX_SILENCE_SECONDS)
  return checked
}

function integerIn(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw createError('ERR_INVALID_ARG', `${what} must be an integer in ${min}..${max}`)
  return value
}

/** The attestation settings held in the CA's settings table (defaults where unset). */
export function readAttestationSettings(settings: Record<string, string | undefined>): AttestationSettings {
  const stored = (key: string) => settings[key]
  try {
    const policy = stored(SETTING_KEYS.pcrPolicy)
    const ttl = stored(SETTING_KEYS.nonceTtlSeconds)
    const maxFailures = stored(SETTING_KEYS.maxFailures)
    const maxSilence = stored(SETTING_KEYS.maxSilenceSeconds)
    return {
      ...DEFAULT_ATTESTATION_SETTINGS,
      pcrPolicy: {},
      ...checkAttestationSettings({
        mode: stored(SETTING_KEYS.mode),
        onDrift: stored(SETTING_KEYS.onDrift),
        pcrPolicy: policy === undefined ? undefined : (JSON.parse(policy) as unknown),
        nonceTtlSeconds: ttl === undefined ? undefined : Number(ttl),
        maxFailures: maxFailures === undefined ? undefined : Number(maxFailures),
        maxSilenceSeconds: maxSilence === undefined ? undefined : Number(maxSilence),
        ekCasPem: stored(SETTING_KEYS.ekCasPem),
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
  if (changes.maxFailures !== undefined) rows.push([SETTING_KEYS.maxFailures, String(changes.maxFailures)])
  if (changes.ekCasPem !== undefined) rows.push([SETTING_KEYS.ekCasPem, changes.ekCasPem])
  if (changes.maxSilenceSeconds !== undefined) rows.push([SETTING_KEYS.maxSilenceSeconds, String(changes.maxSilenceSeconds)])
  return rows
}

/** The PCRs to quote for `policy`: its indices with the default ones, ascending. */
export function quoteSelection(policy: PcrPolicy, defaults: readonly number[] = DEFAULT_QUOTE_PCRS): number[] {
  return [...new Set([...defaults, ...Object.keys(policy).map(Number)])].sort((a, b) => a - b)
}

/**
 * Checks enrollment evidence (decoded by the core, see `protocol/quote.ts`) whose nonce the
 * caller has consumed: the AK is bound to the CSR's key, and the quote is over the nonce by that
 * AK, meets `policy` and covers every PCR the nonce answer asked for ({@link quoteSelection} of
 * it: `ERR_ATTEST_PCR_SELECTION`). Returns the verified quote.
 */
export function verifyEnrollmentEvidence(evidence: QuoteEvidence, csrPem: string, policy: PcrPolicy): VerifiedQuote {
  verifyAkBinding(csrPem, evidence.quote.akPublicPem, evidence.quote.akBinding)
  return verifyQuote(evidence.quote, evidence.nonce, policy, quoteSelection(policy))
}

/**
 * Checks a re-attestation answer: quoted with the AK recorded at enrollment
 * (`ERR_ATTEST_KEY_CHANGED`), that AK bound to the certificate the node presented on the link
 * (`ERR_ATTEST_BINDING`), over `nonce`, meeting `policy` (`ERR_ATTEST_PCR_MISMATCH` is drift)
 * and covering every PCR of `asked`, the selection sent to the node (`ERR_ATTEST_PCR_SELECTION`).
 */
export function verifyReattestation(record: AttestationRecord, certificatePem: string, quote: BoundQuote, nonce: Uint8Array, policy: PcrPolicy, asked: readonly number[]): VerifiedQuote {
  if (!record.attested || record.akPublicPem === null) throw createError('ERR_ATTEST_NOT_ENROLLED')
  if (!sameKey(quote.akPublicPem, record.akPublicPem)) throw createError('ERR_ATTEST_KEY_CHANGED')
  verifyAkBinding(certificatePem, record.akPublicPem, quote.akBinding)
  return verifyQuote({ ...quote, akPublicPem: record.akPublicPem }, nonce, policy, asked)
}

/**
 * The policy a re-attestation is held to: the device's enrollment baseline, overridden by the
 * CA's policy where it names a PCR. Any change from the attested state is drift; to accept a
 * legitimate change (a firmware update), name the new values in the CA's policy.
 */
export function reattestationPolicy(record: AttestationRecord, caPolicy: PcrPolicy): PcrPolicy {
  return { ...record.pcrs, ...caPolicy }
}

/**
 * Why a `failed` re-attestation must still apply the drift action, if it must: `failures` (the
 * device failed `maxFailures` times in a row, this one included), `stale` (its last good quote,
 * or its enrollment, is older than `maxSilenceSeconds`), or `not-attested` (the CA requires
 * attestation and the device has no attested record). `record` is as it was before this check.
 */
export function silenceOf(record: AttestationRecord | undefined, settings: AttestationSettings, nowMs: number): 'failures' | 'stale' | 'not-attested' | undefined {
  if (record === undefined || !record.attested) return settings.mode === 'required' ? 'not-attested' : undefined
  if (record.failures + 1 >= settings.maxFailures) return 'failures'
  if (nowMs - (record.lastAttestedAtMs ?? record.enrolledAtMs) > settings.maxSilenceSeconds * 1000) return 'stale'
  return undefined
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
