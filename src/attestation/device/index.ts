/**
 * Attestation at enrollment: the device asks the CA for a nonce, quotes its PCRs over it with the
 * attestation key, binds that key to the CSR's key, and sends the lot with the enrollment.
 *
 * The messages are in `protocol/` (404 on the nonce route: this CA does not attest).
 */
import { createError } from '../../errors.js'
import { decodeNonceAnswer, encodeNonceRequest, ENROLLMENT_ROUTES, type NonceRequest } from '../../protocol/enroll.js'
import { checkPcrSelection, type QuoteEvidence } from '../../protocol/quote.js'
import { postJsonIfServed, type RequestInit } from '../../identity/http.js'
import { TpmDeviceKey, type DeviceKey } from '../../identity/keys.js'

/**
 * Whether an enrollment carries a TPM quote: `auto` (default) when the key is in a TPM, the
 * device id is known and the CA hands out nonces; `require` fails otherwise; `off` never.
 */
export type AttestationMode = 'auto' | 'require' | 'off'

/** The `attestation` of an enrollment request. */
export type EnrollmentAttestation = QuoteEvidence

/**
 * The attestation to enroll (or rotate) with, or `undefined` when there is none to send (see
 * {@link AttestationMode}). `authenticate` makes the nonce request's proof of who asks.
 */
export async function enrollmentAttestation(
  key: DeviceKey,
  init: RequestInit & { url: string; authenticate: (nodeId: string) => NonceRequest; deviceId: string | undefined; mode: AttestationMode; pcrs: readonly number[] },
): Promise<EnrollmentAttestation | undefined> {
  if (init.mode !== 'auto' && init.mode !== 'require' && init.mode !== 'off') throw createError('ERR_INVALID_ARG', 'attestation must be auto, require or off')
  if (init.mode === 'off') return undefined
  const refuse = (message: string, code: 'ERR_INVALID_ARG' | 'ERR_NOT_FOUND' = 'ERR_INVALID_ARG') => {
    if (init.mode === 'require') throw createError(code, `attestation is required, but ${message}`)
    return undefined
  }
  if (!(key instanceof TpmDeviceKey)) return refuse('the device key is not in a TPM')
  // The CA binds its nonce to the node it was issued to, and gives it to that node only: the
  // holder of its token (`nonceRequestFor`) or, once enrolled, of its certificate key (`nonceRequestByCertificate`).
  if (init.deviceId === undefined) return refuse('the device id (node_id) is not given')
  // With its EK certificate, the CA can challenge the AK: only this TPM can answer (issue 10 §3).
  const endorsement = await key.endorsement()
  const body = await postJsonIfServed(new URL(ENROLLMENT_ROUTES.nonce, init.url), encodeNonceRequest({ ...init.authenticate(init.deviceId), ...endorsement }), init)
  if (body === undefined) return refuse(`the CA at ${new URL(init.url).origin} has no attestation endpoint (POST ${ENROLLMENT_ROUTES.nonce} answered 404)`, 'ERR_NOT_FOUND')
  const answer = decodeNonceAnswer(body)
  // The CA may name the PCRs its policy needs; else the caller's choice.
  const quote = await key.quote(answer.nonce, answer.pcrs ?? checkPcrSelection(init.pcrs))
  const activatedSecret =
    answer.credentialBlob !== undefined && answer.encryptedSecret !== undefined ? await key.activateCredential(answer.credentialBlob, answer.encryptedSecret) : undefined
  // The AK vouches that the key of the CSR lives in its TPM (TPM2_Certify over the same nonce).
  const certification = await key.certify(answer.nonce)
  return { nonce: answer.nonce, quote, certification, ...(activatedSecret !== undefined && { activatedSecret }) }
}
