/**
 * The messages of the enrollment API, shared by the device (`identity/`) and the CA (`ca/`);
 * this module imports neither. The core (`ztmesh_core::enroll`) encodes and decodes every one
 * of them, strictly: a bad request is `ERR_BAD_REQUEST` (the CA's verdict), a bad answer
 * `ERR_BAD_RESPONSE` (the device's).
 *
 * ```text
 * POST /v1/attest/nonce {node_id, ek_certificate?, ak_public?} → {nonce, expires_at, pcrs?, credential_blob?, encrypted_secret?}
 * POST /v1/enroll {token, csr, node_id?, attestation?}      → {certificate, ca_cert, serial, not_after, config?}
 * POST /v1/rotate {certificate, csr, timestamp, signature}  → the same
 * ```
 *
 * A rotation request is signed by the current certificate's key over {@link rotationMessage}.
 */
import { callNative, native } from '../native.js'

/** The routes of the enrollment API. */
export const ENROLLMENT_ROUTES = Object.freeze({ nonce: '/v1/attest/nonce', enroll: '/v1/enroll', rotate: '/v1/rotate', crl: '/v1/crl', revoke: '/v1/revoke' })

/** `POST /v1/enroll`: `{token (a secret), csr, nodeId? (the token decides), attestation?}`. */
export type EnrollRequest = ReturnType<typeof native.decodeEnrollRequest>

/**
 * `POST /v1/rotate`: a new CSR, signed by the key of the certificate it replaces (its chain may
 * follow), over {@link rotationMessage}`(timestampMs, csr)`.
 */
export type RotationRequest = ReturnType<typeof native.decodeRotationRequest>

/** The CA's answer to an enrollment or a rotation: `{certificate, caChain, serial, notAfterMs, config?}`. */
export type EnrollResponse = ReturnType<typeof native.decodeEnrollResponse>

/** What enrolled devices are told (seed 002's bootstrap config). */
export type DeviceConfig = NonNullable<EnrollResponse['config']>

/** The CA's answer to `POST /v1/attest/nonce`: a 16- to 64-byte nonce, its expiry, the PCRs to quote. */
export type NonceAnswer = ReturnType<typeof native.decodeNonceAnswer>

/** The bytes a rotation request signs: the `ztmesh-rotate-v1` label, the time and the CSR's SHA-256. */
export function rotationMessage(timestampMs: number, csrPem: string): Buffer {
  return callNative(() => native.rotationMessage(timestampMs, csrPem))
}

/** Encodes an enrollment request (device). */
export function encodeEnrollRequest(request: EnrollRequest): Buffer {
  return callNative(() => native.encodeEnrollRequest(request))
}

/** Decodes an enrollment request (CA); `ERR_BAD_REQUEST`. */
export function decodeEnrollRequest(body: Uint8Array): EnrollRequest {
  return callNative(() => native.decodeEnrollRequest(body))
}

/** Encodes a rotation request (device). */
export function encodeRotationRequest(request: RotationRequest): Buffer {
  return callNative(() => native.encodeRotationRequest(request))
}

/** Decodes a rotation request (CA); `ERR_BAD_REQUEST`. */
export function decodeRotationRequest(body: Uint8Array): RotationRequest {
  return callNative(() => native.decodeRotationRequest(body))
}

/** Encodes the answer to an enrollment or rotation (CA). */
export function encodeEnrollResponse(response: EnrollResponse): Buffer {
  return callNative(() => native.encodeEnrollResponse(response))
}

/** Decodes the answer to an enrollment or rotation (device); `ERR_BAD_RESPONSE`. */
export function decodeEnrollResponse(body: Uint8Array): EnrollResponse {
  return callNative(() => native.decodeEnrollResponse(body))
}

/**
 * A nonce request: the node id, and, to ask for a credential challenge, the TPM's EK
 * certificate (DER) with its attestation key's public area (`TPMT_PUBLIC`).
 */
export type NonceRequest = ReturnType<typeof native.decodeNonceRequest>

/** Encodes `{node_id, ek_certificate?, ak_public?}` (device). */
export function encodeNonceRequest(request: NonceRequest): Buffer {
  return callNative(() => native.encodeNonceRequest(request))
}

/** Decodes a nonce request (CA); `ERR_BAD_REQUEST`. */
export function decodeNonceRequest(body: Uint8Array): NonceRequest {
  return callNative(() => native.decodeNonceRequest(body))
}

/** Encodes the nonce answer (CA). */
export function encodeNonceAnswer(answer: NonceAnswer): Buffer {
  return callNative(() => native.encodeNonceAnswer(answer))
}

/** Decodes the nonce answer (device); `ERR_BAD_RESPONSE`. */
export function decodeNonceAnswer(body: Uint8Array): NonceAnswer {
  return callNative(() => native.decodeNonceAnswer(body))
}
