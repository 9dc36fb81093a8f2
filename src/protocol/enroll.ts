/**
 * The messages of the enrollment API, shared by the device (`identity/`) and the CA (`ca/`);
 * this module imports neither. The core (`ztmesh_core::enroll`) encodes and decodes every one
 * of them, strictly: a bad request is `ERR_BAD_REQUEST` (the CA's verdict), a bad answer
 * `ERR_BAD_RESPONSE` (the device's).
 *
 * ```text
 * POST /v1/attest/nonce {node_id, token_id, token_proof, ek_certificate?, ak_public?} → {nonce, expires_at, pcrs?, credential_blob?, encrypted_secret?}
 *                       {node_id, certificate, timestamp, signature}              (an enrolled device: its certificate key signs)
 * POST /v1/enroll {token_id, token_proof, csr, node_id?, attestation?}                 → {certificate, ca_cert, serial, not_after, config?}
 * POST /v1/rotate {certificate, csr, timestamp, signature, attestation?}               → the same
 * ```
 *
 * A rotation request is signed by the current certificate's key over {@link rotationMessage}.
 * The enrollment token (`ztm2.…`, the core's codec) never travels: a request names it by its id
 * and carries its proof (a signature under a key derived from it) over what it asks for ({@link enrollRequestFor},
 * {@link nonceRequestFor}); the token also pins the root the device checks every answer against
 * ({@link checkEnrollAnswer}).
 */
import { createError } from '../errors.js'
import { callNative, native } from '../native.js'

/** The routes of the enrollment API. */
export const ENROLLMENT_ROUTES = Object.freeze({ nonce: '/v1/attest/nonce', enroll: '/v1/enroll', rotate: '/v1/rotate', crl: '/v1/crl', rootCrl: '/v1/root-crl', revoke: '/v1/revoke' })

/**
 * Who the CA API's own TLS certificate names: device `ca` with role `ca`, in the tenant it
 * serves, issued by the site CA. A device talks to the API only once the server proved this
 * identity under its pinned root; tokens can name neither (`ERR_INVALID_ARG`).
 */
export const CA_API_IDENTITY = Object.freeze({ deviceId: 'ca', role: 'ca' })

/** `POST /v1/enroll`: `{tokenId, tokenProof, csr, nodeId? (the token decides), attestation?}`. */
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

/**
 * `POST /v1/attest/nonce`: `{nodeId, tokenId, tokenProof}` (or, from an enrolled device,
 * `{nodeId, certificate, timestampMs, signature}`), and, to ask for a credential
 * challenge, the TPM's EK certificate (DER) with its attestation key's public area (`TPMT_PUBLIC`).
 */
export type NonceRequest = ReturnType<typeof native.decodeNonceRequest>

/** What an enrollment token says: `{id, rootSpkiSha256, tenant, deviceId}` (hex where bytes). */
export type EnrollmentTokenFacts = ReturnType<typeof native.decodeEnrollmentToken>

/** A new token, `{token, id, proofKey}`: the token is shown once, the CA keeps the id and the public proof key. */
export type NewEnrollmentToken = ReturnType<typeof native.generateEnrollmentToken>

/** An answer the device may store: `{identity, rootPem?}`. */
export type AcceptedAnswer = ReturnType<typeof native.checkEnrollAnswer>

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

/** Encodes `{node_id, token_id, token_proof, ek_certificate?, ak_public?}` (device). */
export function encodeNonceRequest(request: NonceRequest): Buffer {
  return callNative(() => native.encodeNonceRequest(request))
}

/** Decodes a nonce request (CA); `ERR_BAD_REQUEST`. */
export function decodeNonceRequest(body: Uint8Array): NonceRequest {
  return callNative(() => native.decodeNonceRequest(body))
}

/**
 * A new enrollment token for `deviceId` of `tenant`, pinning the root whose SubjectPublicKeyInfo
 * hashes to `rootSpkiSha256` (hex; `inspectCertificate(root).spkiSha256`).
 */
export function generateEnrollmentToken(rootSpkiSha256: string, tenant: string, deviceId: string): NewEnrollmentToken {
  return callNative(() => native.generateEnrollmentToken(rootSpkiSha256, tenant, deviceId))
}

/** What a token says; `ERR_TOKEN_INVALID` for anything but a `ztm2.` token. */
export function decodeEnrollmentToken(token: unknown): EnrollmentTokenFacts {
  if (typeof token !== 'string') throw createError('ERR_TOKEN_INVALID', 'the enrollment token is malformed')
  return callNative(() => native.decodeEnrollmentToken(token))
}

/**
 * The enrollment request of the holder of `token` for `csr` (the exact text sent): the token's
 * id and its proof over the CSR and node id, never the token.
 *
 * @example
 * ```ts
 * const body = encodeEnrollRequest(enrollRequestFor(token, csr, { nodeId: 'tablet-7' }))
 * ```
 */
export function enrollRequestFor(token: string, csr: string, init: { nodeId?: string; attestation?: EnrollRequest['attestation'] } = {}): EnrollRequest {
  const { id } = decodeEnrollmentToken(token)
  const tokenProof = callNative(() => native.enrollmentTokenProof(token, csr, init.nodeId))
  return { tokenId: id, tokenProof, csr, ...(init.nodeId !== undefined && { nodeId: init.nodeId }), ...(init.attestation !== undefined && { attestation: init.attestation }) }
}

/**
 * The bytes the current certificate key of an enrolled device signs to ask for a nonce
 * ({@link nonceRequestByCertificate}).
 */
export function nonceRequestMessage(timestampMs: number, nodeId: string): Buffer {
  return callNative(() => native.nonceRequestMessage(timestampMs, nodeId))
}

/**
 * The nonce request of an enrolled device, whose token is spent (for an attested rotation): its
 * current certificate, and `sign` (its certificate key) over {@link nonceRequestMessage}. The CA
 * decides the certificate with `verify_peer` and gives the nonce only to the device it names.
 */
export function nonceRequestByCertificate(certificatePem: string, nodeId: string, sign: (message: Buffer) => Buffer, timestampMs = Date.now()): NonceRequest {
  return { nodeId, certificate: certificatePem, timestampMs, signature: sign(nonceRequestMessage(timestampMs, nodeId)) }
}

/** The nonce request of the holder of `token` for `nodeId`. */
export function nonceRequestFor(token: string, nodeId: string): NonceRequest {
  const { id } = decodeEnrollmentToken(token)
  return { nodeId, tokenId: id, tokenProof: callNative(() => native.nonceRequestProof(token, nodeId)) }
}

/** Checks an enrollment request's proof under its token's public proof key (CA); `ERR_TOKEN_PROOF`. */
export function verifyEnrollmentProof(proofKey: string, request: Pick<EnrollRequest, 'csr' | 'nodeId' | 'tokenProof'>): void {
  callNative(() => native.verifyEnrollmentProof(proofKey, request.csr, request.nodeId ?? undefined, request.tokenProof))
}

/** Checks a nonce request's proof under its token's public proof key (CA); `ERR_TOKEN_PROOF`. */
export function verifyNonceProof(proofKey: string, request: NonceRequest): void {
  const proof = request.tokenProof
  if (proof === undefined) throw createError('ERR_TOKEN_PROOF', 'the nonce request carries no token proof')
  callNative(() => native.verifyNonceProof(proofKey, request.nodeId, proof))
}

/**
 * The device's check of the CA's answer, before it stores anything: the certificate must pass
 * `verify_peer` against the pinned root (`expected.rootSpkiSha256`, at enrollment: the root is
 * taken from the answer only if it has that key) or the device's own `expected.trustPem` (at
 * rotation), name
 * the expected device and tenant, and carry the key of `expected.csr`. Throws
 * `ERR_TRUST_ANCHOR`, `ERR_CHAIN`, `ERR_DEVICE_MISMATCH`, `ERR_TENANT_MISMATCH`, `ERR_PIN`, ….
 */
export function checkEnrollAnswer(
  answer: Pick<EnrollResponse, 'certificate' | 'caChain' | 'serial'>,
  expected: { deviceId: string; tenant: string; csr: string; rootSpkiSha256?: string; trustPem?: string; nowMs?: number },
): AcceptedAnswer {
  return callNative(() => native.checkEnrollAnswer({ certificate: answer.certificate, caChain: answer.caChain, serial: answer.serial }, expected))
}

/** Encodes the nonce answer (CA). */
export function encodeNonceAnswer(answer: NonceAnswer): Buffer {
  return callNative(() => native.encodeNonceAnswer(answer))
}

/** Decodes the nonce answer (device); `ERR_BAD_RESPONSE`. */
export function decodeNonceAnswer(body: Uint8Array): NonceAnswer {
  return callNative(() => native.decodeNonceAnswer(body))
}
