/**
 * The token + TPM provisioner, the attestation-required path: the token as in `token.ts`, then
 * the device's quote. Its nonce must have been issued to this device, be unexpired and unused
 * (consumed here, `ERR_ATTEST_NONCE`); the AK must be bound to the CSR's key
 * (`ERR_ATTEST_BINDING`); the quote must be over the nonce and meet the CA's PCR policy. No
 * attestation at all is `ERR_ATTEST_REQUIRED`. When the nonce carried a credential challenge
 * (the device's EK chains to a trusted EK CA), the TPM's answer must match and the quote be by
 * the challenged AK (`ERR_ATTEST_CREDENTIAL`), and the AK must certify the CSR's key
 * (`TPM2_Certify`, `ERR_ATTEST_CERTIFY`); under `required` with EK CAs set, the challenge is
 * mandatory. What the quote proved becomes the device's baseline for re-attestation.
 */

import { akPublicKeySha256, verifyActivatedSecret, verifyKeyCertification } from '../../attestation/index.js'
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
    // The AK is in a TPM whose EK chains to a trusted maker only if the TPM activated the
    // nonce's credential for it; under `required`, nothing less will do. Without EK CAs no
    // challenge can be issued, so `required` then refuses every enrollment: it fails closed
    // rather than take a quote that software can make.
    const challenge = context.nonces.challenge(nonce)
    if (challenge !== undefined || context.settings.mode === 'required') {
      if (context.settings.mode === 'required' && context.settings.ekCasPem === '') throw createError('ERR_ATTEST_CREDENTIAL', 'attestation is required, but the CA trusts no EK CAs (attest_ek_cas): no quote can be known to come from a TPM')
      if (challenge === undefined || evidence.activatedSecret === undefined) throw createError('ERR_ATTEST_CREDENTIAL', 'the enrollment answers no credential challenge of an EK the CA trusts')
      verifyActivatedSecret(evidence.activatedSecret, challenge.secretSha256)
      if (akPublicKeySha256(evidence.quote.akPublicPem) !== challenge.akSpkiSha256) throw createError('ERR_ATTEST_CREDENTIAL', 'the quote is by another attestation key than the challenged one')
      detail.credential = 'activated'
    }
    // The certificate's key in the AK's TPM (TPM2_Certify): required once the AK is proven in a TPM.
    if (evidence.certification !== undefined) {
      verifyKeyCertification(evidence.quote.akPublicPem, evidence.certification, evidence.nonce, request.csr)
      detail.key = 'certified'
    } else if (challenge !== undefined) {
      throw createError('ERR_ATTEST_CERTIFY', 'the enrollment carries no certification of its key by the attestation key')
    }
    const verified = verifyEnrollmentEvidence(evidence, request.csr, context.settings.pcrPolicy)
    detail.attestation = 'verified'
    return { ...authorization, attestation: { akPublicPem: evidence.quote.akPublicPem, pcrs: sha256Pcrs(verified.pcrs) } }
  },
}
