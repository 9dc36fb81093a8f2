/**
 * TPM quotes as they travel: the evidence of an enrollment, and the quote exchange over a secure
 * link. Every byte is encoded and decoded by the core (`ztmesh_core::enroll`), for the device,
 * the CA and the gateway alike; this module only converts types. It imports neither side.
 *
 * ```text
 * → {"v":1,"type":"quote-request","nonce":"<hex>","pcrs":[0,1,2,3,7]}
 * ← {"v":1,"type":"quote","ak_public_pem":"…","ak_binding":"<b64>","attest":"<b64>","signature":"<b64>","pcr_values":"<b64>"}
 * ← {"v":1,"type":"error","code":"ERR_TPM_UNAVAILABLE"}
 * ```
 *
 * PCR lists follow one rule ({@link checkPcrSelection}): 1 to 24 distinct SHA-256 PCR indices
 * 0..23, any order in, ascending out.
 */
import { callNative, native } from '../native.js'

/** The longest quote-exchange line either side reads, `\n` excluded. */
export const MAX_QUOTE_LINE = 64 * 1024

/**
 * A quote with the binding of its attestation key (AK) to the device's certificate key:
 * `akPublicPem` (SubjectPublicKeyInfo PEM), `akBinding` (the device key's signature over
 * `akBindingMessage(akPublicPem)`), `attest` (`TPMS_ATTEST`, quote.msg), `signature`
 * (`TPMT_SIGNATURE`, quote.sig) and `pcrValues` (tpm2-tools format, pcrs.bin).
 */
export type BoundQuote = NonNullable<ReturnType<typeof native.decodeQuoteAnswer>['quote']>

/** The `attestation` of an enrollment: `{nonce, quote}`, a quote over the CA's nonce (16 to 64 bytes). */
export type QuoteEvidence = ReturnType<typeof native.decodeQuoteEvidence>

/** What a verifier asks for: a nonce of 16 to 64 bytes and SHA-256 PCR indices (see {@link checkPcrSelection}). */
export interface QuoteRequest {
  nonce: Uint8Array
  pcrs: number[]
}

/** A node's answer: its quote, or the code it failed with. */
export type QuoteAnswer = { quote: BoundQuote } | { errorCode: string }

/**
 * The one PCR-list rule: 1 to 24 distinct indices 0..23; returns them ascending. Throws
 * `ERR_INVALID_ARG`.
 *
 * @example
 * ```ts
 * checkPcrSelection([7, 0]) // [0, 7]
 * ```
 */
export function checkPcrSelection(pcrs: readonly number[]): number[] {
  return callNative(() => native.checkPcrSelection([...pcrs]))
}

/** Encodes a quote-request line, `\n` included (verifier). */
export function encodeQuoteRequest(request: QuoteRequest): Buffer {
  return callNative(() => native.encodeQuoteRequest({ nonce: Buffer.from(request.nonce), pcrs: [...request.pcrs] }))
}

/** Decodes a quote-request line (node); `ERR_ATTEST_MALFORMED`. */
export function decodeQuoteRequest(line: Uint8Array): QuoteRequest {
  return callNative(() => native.decodeQuoteRequest(line))
}

/** Encodes a quote-answer line, `\n` included (node). */
export function encodeQuoteAnswer(answer: QuoteAnswer): Buffer {
  return callNative(() => native.encodeQuoteAnswer(answer))
}

/** Decodes a quote-answer line (verifier); `ERR_ATTEST_MALFORMED`. */
export function decodeQuoteAnswer(line: Uint8Array): QuoteAnswer {
  const answer = callNative(() => native.decodeQuoteAnswer(line))
  return answer.quote !== undefined ? { quote: answer.quote } : { errorCode: answer.errorCode ?? 'ERR_ATTEST_MALFORMED' }
}

/** Decodes enrollment evidence held as JSON (the API decodes it with its request); `ERR_BAD_REQUEST`. */
export function decodeQuoteEvidence(json: Uint8Array): QuoteEvidence {
  return callNative(() => native.decodeQuoteEvidence(json))
}
