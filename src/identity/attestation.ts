/**
 * Attestation at enrollment: the device asks the CA for a nonce, quotes its PCRs over it with the
 * attestation key, binds that key to the CSR's key, and sends the lot with the enrollment.
 *
 * ```text
 * POST /v1/attest/nonce {node_id}  →  {nonce, expires_at, pcrs?}  (404: this CA does not attest)
 * POST /v1/enroll {token, csr, node_id, attestation: {type: 'tpm2-quote', nonce, ak_public_pem,
 *                  ak_binding, attest, signature, pcr_values}}   (binary fields base64)
 * ```
 */
import { createError } from '../errors.js'
import { postJsonIfServed, type RequestInit } from './http.js'
import { TpmDeviceKey, type DeviceKey } from './keys.js'

/**
 * Whether an enrollment carries a TPM quote: `auto` (default) when the key is in a TPM, the
 * device id is known and the CA hands out nonces; `require` fails otherwise; `off` never.
 */
export type AttestationMode = 'auto' | 'require' | 'off'

/** The `attestation` field of an enrollment request. */
export interface EnrollmentAttestation {
  type: 'tpm2-quote'
  /** The CA's nonce, as the CA wrote it. */
  nonce: string
  ak_public_pem: string
  ak_binding: string
  attest: string
  signature: string
  pcr_values: string
}

/** The attestation to enroll with, or `undefined` when there is none to send (see {@link AttestationMode}). */
export async function enrollmentAttestation(
  key: DeviceKey,
  init: RequestInit & { url: string; deviceId: string | undefined; mode: AttestationMode; pcrs: readonly number[] },
): Promise<EnrollmentAttestation | undefined> {
  if (init.mode !== 'auto' && init.mode !== 'require' && init.mode !== 'off') throw createError('ERR_INVALID_ARG', 'attestation must be auto, require or off')
  if (init.mode === 'off') return undefined
  const refuse = (message: string, code: 'ERR_INVALID_ARG' | 'ERR_NOT_FOUND' = 'ERR_INVALID_ARG') => {
    if (init.mode === 'require') throw createError(code, `attestation is required, but ${message}`)
    return undefined
  }
  if (!(key instanceof TpmDeviceKey)) return refuse('the device key is not in a TPM')
  // The CA binds its nonce to the node it was issued to.
  if (init.deviceId === undefined) return refuse('the device id (node_id) is not given')
  const answer = await postJsonIfServed(new URL('/v1/attest/nonce', init.url), { node_id: init.deviceId }, init)
  if (answer === undefined) return refuse(`the CA at ${new URL(init.url).origin} has no attestation endpoint (POST /v1/attest/nonce answered 404)`, 'ERR_NOT_FOUND')
  const nonce = nonceBytes(answer.nonce)
  // The CA may name the PCRs its policy needs; else the caller's choice.
  const quote = await key.quote(nonce, pcrList(answer.pcrs) ?? init.pcrs)
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
  return {
    type: 'tpm2-quote',
    nonce: answer.nonce as string,
    ak_public_pem: quote.akPublicPem,
    ak_binding: base64(quote.akBinding),
    attest: base64(quote.attest),
    signature: base64(quote.signature),
    pcr_values: base64(quote.pcrValues),
  }
}

/** The PCRs the CA asks for, if it names a valid list of SHA-256 PCR indices. */
function pcrList(value: unknown): number[] | undefined {
  if (value === undefined) return undefined
  if (Array.isArray(value) && value.length > 0 && value.length <= 24 && value.every((p) => Number.isInteger(p) && p >= 0 && p <= 23)) return value as number[]
  throw createError('ERR_BAD_RESPONSE', 'the CA answered POST /v1/attest/nonce with pcrs that are not a list of PCR indices 0..23')
}

/** The bytes of the CA's nonce: hex, else base64 (or base64url); 16 to 64 bytes. */
function nonceBytes(value: unknown): Buffer {
  if (typeof value === 'string') {
    const bytes = /^(?:[0-9a-fA-F]{2})+$/.test(value) ? Buffer.from(value, 'hex') : /^[A-Za-z0-9+/_-]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : undefined
    if (bytes !== undefined && bytes.length >= 16 && bytes.length <= 64) return bytes
  }
  throw createError('ERR_BAD_RESPONSE', 'the CA answered POST /v1/attest/nonce without a nonce of 16 to 64 bytes (hex or base64)')
}
