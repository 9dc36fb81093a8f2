/** The daemons' view of their own identity as a credential that follows renewals. */

import type { DeviceIdentity } from '../identity/index.js'
import type { DeviceCredential } from '../primitives/pki/index.js'

/**
 * A credential that always reads the identity's current certificate and key: handed to parts
 * built once (the audit log's checkpoint signer, a hub), it follows every renewal. Given a
 * function, it reads whichever identity the function names now (the gateway opens the one that
 * renews only after its CA, whose checkpoints are signed from the start, is up).
 */
export function liveCredential(identity: DeviceIdentity | (() => DeviceIdentity)): DeviceCredential {
  const current = typeof identity === 'function' ? identity : () => identity
  return {
    get certificateChainPem() {
      return current().credential().certificateChainPem
    },
    get signer() {
      return current().credential().signer
    },
  }
}
