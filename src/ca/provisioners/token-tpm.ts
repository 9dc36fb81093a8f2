/**
 * The token + TPM provisioner, the attestation-required path: the token as in `token.ts`, then
 * the device's quote. Its nonce must have been issued to this device, be unexpired and unused
 * (consumed here, `ERR_ATTEST_NONCE`); the AK must be bound to the CSR's key
 * (`ERR_ATTEST_BINDING`); the quote must be over the nonce and meet the CA's PCR policy. No
 * attestation at all is `ERR_ATTEST_REQUIRED`. What the quote proved becomes the device's
 * baseline for re-attestation.
 */

import { sha256Pcrs, verifyEnrollmentEvidence } from '../../attestation/verifier/index.js'
import { createError } from '../../errors.js'
import type { EnrollRequest } from '../../protocol/enroll.js'
import type { Authorization, Provisioner, ProvisionerContext } from './index.js'
import { authorizeToken } from './token.js'

export const tokenTpmProvisioner: Provisioner = {
  name: 'token-tpm',
  authorize(request: EnrollRequest, context: ProvisionerContext): Authorization {
    const evidence = request.attestation
    // The nonce is burnt by any refused attempt, a wrong token included: it is never retried.
    const nonce = evidence === undefined || evidence === null ? undefined : Buffer.from(evidence.nonce).toString('hex')
    if (nonce !== undefined && typeof request.nodeId === 'string') context.presented(nonce, request.nodeId)
    const authorization = authorizeToken(request, context)
    if (evidence === undefined || evidence === null || nonce === undefined) throw createError('ERR_ATTEST_REQUIRED')
    const { detail } = context
    detail.attestation = 'refused'
    const state = context.nonces.consume(nonce, authorization.deviceId)
    detail.nonce = state
    if (state !== 'consumed') throw createError('ERR_ATTEST_NONCE', state === 'unknown' ? 'the attestation nonce was not issued to this device' : `the attestation nonce is ${state}`)
    context.presented(nonce, authorization.deviceId)
    const verified = verifyEnrollmentEvidence(evidence, request.csr, context.settings.pcrPolicy)
    detail.attestation = 'verified'
    return { ...authorization, attestation: { akPublicPem: evidence.quote.akPublicPem, pcrs: sha256Pcrs(verified.pcrs) } }
  },
}
