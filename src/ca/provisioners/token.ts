/**
 * The one-time token provisioner: the token decides the identity (device, tenant, roles); a
 * device that claims another node id is refused, not renamed. The token never travels: the
 * request carries its id and a signed proof over the CSR (`tokens.ts`). The token is redeemed in
 * the issuance transaction, so it pays for exactly one certificate.
 */

import { createError } from '../../errors.js'
import type { EnrollRequest } from '../../protocol/enroll.js'
import type { Authorization, Provisioner, ProvisionerContext } from './index.js'

export const tokenProvisioner: Provisioner = {
  name: 'token',
  authorize(request: EnrollRequest, context: ProvisionerContext): Authorization {
    const authorization = authorizeToken(request, context)
    context.detail.attestation = request.attestation === undefined || request.attestation === null ? 'none' : 'ignored'
    return authorization
  },
}

/**
 * The token check, shared by the provisioners that start with a token: the request's proof must
 * be the token's over this CSR and node id (`ERR_TOKEN_PROOF`), so a captured request cannot be
 * redeemed with another key.
 */
export function authorizeToken(request: EnrollRequest, context: ProvisionerContext): Authorization {
  const claim = context.tokens.check(request, (holder) => Object.assign(context.detail, { device: holder.deviceId, tenant: holder.tenant }))
  if (request.nodeId !== undefined && request.nodeId !== claim.deviceId) throw createError('ERR_FORBIDDEN', 'node_id differs from the device the token was issued for')
  return { deviceId: claim.deviceId, tenant: claim.tenant, roles: claim.roles, redeem: (serial) => context.tokens.redeem(claim, serial) }
}
