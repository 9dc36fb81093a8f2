/** The daemons' view of their own identity as a credential that follows renewals. */

import type { DeviceIdentity } from '../identity/index.js'
import type { DeviceCredential } from '../primitives/pki/index.js'

/**
 * A credential that always reads the identity's current certificate and key: handed to parts
 * built once (the audit log's checkpoint signer, a hub), it follows every renewal.
 */
export function liveCredential(identity: DeviceIdentity): DeviceCredential {
  return {
    get certificateChainPem() {
      return identity.credential().certificateChainPem
    },
    get signer() {
      return identity.credential().signer
    },
  }
}
