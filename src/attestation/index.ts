/**
 * Remote attestation, in one home with one part per side:
 *
 * ```text
 * attestation/index.ts     quotes and AK bindings checked by the core (no TPM needed), for both sides
 * attestation/exchange.ts  the quote exchange over a secure link (askQuote / serveQuotes)
 * attestation/verifier/    the CA's side: settings, nonce store, registry, evidence checks, re-attestation
 * attestation/device/      the device's side: the evidence of an enrollment
 * ```
 *
 * The messages themselves are in `protocol/quote.ts` (encoded and decoded by the core); the TPM
 * that produces quotes is `tpm/`. `device/` never imports `verifier/` or the CA service.
 *
 * A quote travels as the three files `tpm2_quote` writes: `attest` (`TPMS_ATTEST`, quote.msg),
 * `signature` (`TPMT_SIGNATURE`, quote.sig) and `pcrValues` (tpm2-tools format, pcrs.bin), with
 * the attestation key's public key as PEM.
 */
import { createError } from '../errors.js'
import { callNative, native } from '../native.js'
import type { PcrValue } from '../primitives/tpm/index.js'

export type { PcrValue } from '../primitives/tpm/index.js'

/** A quote as it travels. */
export interface QuoteFiles {
  akPublicPem: string
  attest: Uint8Array
  signature: Uint8Array
  pcrValues: Uint8Array
}

/** What the SHA-256 PCRs must hold: `{ index: hex }`; PCRs not named may hold anything. */
export type PcrPolicy = Record<number, string>

/** A PCR policy from untrusted JSON: `{ "0".."23": 64 hex digits }`; throws `ERR_INVALID_ARG`. */
export function checkPcrPolicy(policy: unknown): PcrPolicy {
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy)) throw createError('ERR_INVALID_ARG', 'a PCR policy is a JSON object {"index": "hex"}')
  const checked: PcrPolicy = {}
  for (const [index, value] of Object.entries(policy)) {
    if (!/^(1?[0-9]|2[0-3])$/.test(index)) throw createError('ERR_INVALID_ARG', `PCR index ${index} is not 0..23`)
    if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw createError('ERR_INVALID_ARG', `PCR ${index} must be a SHA-256 value: 64 hex digits`)
    checked[Number(index)] = value.toLowerCase()
  }
  return checked
}

/** What a verified quote says. */
export type VerifiedQuote = ReturnType<typeof native.verifyQuote>

/**
 * Verifies `quote` against `nonce` and `policy`, and that it covers every PCR of `requiredPcrs`
 * (the selection the verifier asked for) in the SHA-256 bank. Throws an `AttestationError`:
 * `ERR_ATTEST_SIGNATURE`, `ERR_ATTEST_NONCE`, `ERR_ATTEST_PCR_VALUES` (the values are not the
 * quoted ones), `ERR_ATTEST_PCR_MISMATCH` (policy not met), `ERR_ATTEST_PCR_SELECTION` (a PCR
 * asked for is not quoted) or `ERR_ATTEST_MALFORMED`.
 */
export function verifyQuote(quote: QuoteFiles, nonce: Uint8Array, policy?: PcrPolicy, requiredPcrs?: readonly number[]): VerifiedQuote {
  return callNative(() =>
    native.verifyQuote({
      akPublicPem: quote.akPublicPem,
      attest: Buffer.from(quote.attest),
      signature: Buffer.from(quote.signature),
      pcrValues: Buffer.from(quote.pcrValues),
      nonce: Buffer.from(nonce),
      ...(policy !== undefined && { policy: Object.entries(policy).map(([index, value]) => ({ index: Number(index), bank: 'sha256', value: value.toLowerCase() })) }),
      ...(requiredPcrs !== undefined && { requiredPcrs: [...requiredPcrs] }),
    }),
  )
}

/** The PCR values of a tpm2-tools PCR file. */
export function parsePcrValues(pcrValues: Uint8Array): PcrValue[] {
  return callNative(() => native.parsePcrValues(pcrValues))
}

/**
 * SHA-256 (hex) of an attestation key's SubjectPublicKeyInfo, from its `PUBLIC KEY` PEM, parsed
 * by the core: two spellings of one key give the same value. Throws `ERR_ATTEST_MALFORMED`.
 */
export function akPublicKeySha256(akPublicPem: string): string {
  return callNative(() => native.akPublicKeySha256(akPublicPem))
}

/** A credential challenge: what goes to the device, and the SHA-256s (hex) the CA keeps. */
export type AkChallenge = ReturnType<typeof native.challengeAttestationKey>

/**
 * Challenges an attestation key (the CA's `MakeCredential`, in the core): `ekCertificate` (DER)
 * must chain to `ekCasPem` at `nowMs` (`ERR_ATTEST_EK_CERTIFICATE`), and `akPublic` (its
 * `TPMT_PUBLIC`) must be a restricted signing key fixed to its TPM (`ERR_ATTEST_KEY_ATTRIBUTES`).
 */
export function challengeAttestationKey(ekCertificate: Uint8Array, ekCasPem: string, akPublic: Uint8Array, nowMs: number): AkChallenge {
  return callNative(() => native.challengeAttestationKey(ekCertificate, ekCasPem, akPublic, nowMs))
}

/** Checks an activated secret against the SHA-256 (hex) kept with its challenge, in constant time; `ERR_ATTEST_CREDENTIAL`. */
export function verifyActivatedSecret(activated: Uint8Array, secretSha256: string): void {
  callNative(() => native.verifyActivatedSecret(activated, secretSha256))
}

/** A `TPM2_Certify` of a device key by its attestation key. */
export interface KeyCertification {
  /** The device key's public area (`TPMT_PUBLIC`). */
  keyPublic: Uint8Array
  attest: Uint8Array
  signature: Uint8Array
}

/**
 * Checks that the key of `csrPem` lives in the TPM of `akPublicPem`: certified by the AK over
 * `nonce`, a signing key fixed to its TPM. Throws `ERR_ATTEST_KEY_ATTRIBUTES`, `ERR_ATTEST_CERTIFY`,
 * `ERR_ATTEST_SIGNATURE`, `ERR_ATTEST_NONCE` or `ERR_ATTEST_MALFORMED`.
 */
export function verifyKeyCertification(akPublicPem: string, certification: KeyCertification, nonce: Uint8Array, csrPem: string): void {
  callNative(() => native.verifyKeyCertification(akPublicPem, Buffer.from(certification.keyPublic), Buffer.from(certification.attest), Buffer.from(certification.signature), Buffer.from(nonce), csrPem))
}

/** What a device signs, with its certificate key, to bind an attestation key to itself. */
export function akBindingMessage(akPublicPem: string): Buffer {
  return callNative(() => native.akBindingMessage(akPublicPem))
}

/**
 * Checks the binding signature by the key of `certificateOrCsrPem`: a device certificate already
 * decided by `verifyPeer`, or the CSR of an enrollment. Throws `ERR_ATTEST_BINDING`.
 */
export function verifyAkBinding(certificateOrCsrPem: string, akPublicPem: string, signature: Uint8Array): void {
  callNative(() => native.verifyAkBinding(certificateOrCsrPem, akPublicPem, signature))
}

export { answerQuoteRequest, askQuote, QUOTE_PROTOCOL, QUOTE_RATE, requestQuote, serveQuotes, VERIFIER_ROLE, type BoundQuote, type QuoteRequest, type ServeQuotesInit } from './exchange.js'
