/**
 * Discovery: where a peer might be, and the order of the ways to reach it.
 *
 * - {@link MdnsDiscovery}: advertise and browse `_ztmesh._tcp.local` on the LAN (a gateway
 *   advertises itself the same way, with `role: 'gateway'`).
 * - {@link bootstrapPeers}: the static `HOST:PORT,…` list.
 * - {@link runFallbackChain}: gateway → mdns → cloud → manual, one path at a time, each with its
 *   own time limit and AbortSignal, every attempt reported.
 *
 * Everything found here is a **hint**. Who answers at an address is decided by the link's
 * handshake ({@link connectDiscovered}: `connectSecure` with `serverDevice` and the announced
 * tenant, deciding through `verify_peer` and the policy decision point), never by an
 * announcement or a list entry.
 */
export { MdnsDiscovery, type Advertised, type MdnsDiscoveryInit, type MdnsStats } from './mdns.js'
export { instanceName, type DiscoveredPeer } from './announcement.js'
export { connectDiscovered, type DiscoveredAddress } from './connect.js'
export { bootstrapPeers, type BootstrapPeer } from './bootstrap.js'
export { runFallbackChain, type AttemptEvent, type FallbackError, type FallbackInit, type FallbackPath, type FallbackResult, type PathAttempt } from './fallback.js'
export { FALLBACK_PATHS, SERVICE_TYPE } from './constants.js'
