/**
 * The one way from a discovery hint to a link: the link's handshake proves what the hint claimed.
 */

import { connectSecure, type ConnectSecureInit, type SecureStream } from '../channels/index.js'
import type { DiscoveredPeer } from './announcement.js'

/** What {@link connectDiscovered} needs of a peer: where, and who it claims to be. */
export type DiscoveredAddress = Pick<DiscoveredPeer, 'deviceId' | 'tenant' | 'host' | 'port'> & { role?: DiscoveredPeer['role'] }

/**
 * Connects to a discovered peer, requiring the server to be the device it was announced as
 * (`serverDevice`), of the announced tenant (unless the caller's policy names one), and, when it
 * was announced as a gateway and the default access policy applies, certified with the role
 * `gateway`. A spoofed announcement therefore ends in a refused handshake
 * (`ERR_DEVICE_MISMATCH`, `ERR_TENANT_MISMATCH`, `ERR_POLICY_DENIED`, or a TLS/Noise refusal),
 * never in a link to someone else.
 *
 * @example
 * ```ts
 * mdns.browse(async (peer) => {
 *   const link = await connectDiscovered(peer, { identity, trustPem, signal })
 * })
 * ```
 */
export function connectDiscovered(peer: DiscoveredAddress, init: Omit<ConnectSecureInit, 'host' | 'port' | 'serverDevice'>): Promise<SecureStream> {
  const gatewayRole = peer.role === 'gateway' && init.access === undefined && init.peerRole === undefined
  return connectSecure({
    ...init,
    host: peer.host,
    port: peer.port,
    serverDevice: peer.deviceId,
    policy: { ...init.policy, expectedTenant: init.policy?.expectedTenant ?? peer.tenant },
    ...(gatewayRole && { peerRole: 'gateway' }),
  })
}
