/**
 * Peering: the node's verified WebRTC data channels, joining the parts of issue 11.
 *
 * {@link WebRtcConnector} is the node daemon's `PeerConnector`:
 * - **Discovery** (hints only): mDNS (advertises this device: id, tenant, SPKI hash, local API
 *   port, role `node`; browses its tenant; a gateway's announcement gives the hub address), the
 *   bootstrap list (a mutual-TLS handshake to each address names the device there), and the
 *   gateway hub's presence. Each new device is reported once per source (`discovered`).
 * - **`connect(deviceId)`**: the fallback chain gateway → mdns → cloud → manual
 *   (`runFallbackChain`, one path at a time, each under its time limit; an `attempt` event per
 *   path and a `path` event for the one that worked). Hub paths send the signed offer through
 *   the hub and wait for the signed answer; LAN paths open a mutual-TLS link that must prove the
 *   device (`connectDiscovered`) and `POST /offer` on it. The answer goes through the guard
 *   (`verifyAnswer` with the offer's digest and the device offered to) before its SDP is used.
 * - **Answering** (`handleOffer` for the local API, and offers relayed by a hub): the one
 *   {@link SignalingGuard} (six checks, the link's peer or the hub-stamped sender, policy,
 *   replay, audit), then an answering session and the signed answer. A hub-relayed refusal is
 *   reported as `rejected`; the local API reports its own.
 * - **Channels**: a registry of live channels by peer. `connected` when a channel opens,
 *   `message` per message, `closed` when it ends; new revocations close the channels of
 *   revoked peers at once (`rejected` with `ERR_CERT_REVOKED`), and a hub's `revoked` notice
 *   makes the node fetch the CRL now.
 */
export { createWebRtcConnector, WebRtcConnector, type PeerAddress, type PeerLink, type PeeringConfig, type PeeringContext, type WebRtcConnectorInit } from './connector.js'
export { DEFAULT_PATH_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS } from './constants.js'
