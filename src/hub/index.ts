/**
 * The hub (seed 000, Scenario 4): WebSocket signaling relay over the project's mutual TLS, with
 * device-signed presence, revocation cut, per-identity limits, and scale-out over a {@link Bus}.
 */
export { HubServer, type HubLimits, type HubServerInit, type HubSocket } from './server.js'
export { HubClient, type HubClientInit, type HubPresence, type HubRefusal, type HubSignal } from './client.js'
export { MemoryBus, RedisBus, type Bus, type RedisBusInit } from './bus.js'
export { HUB_PATH, SIGNAL_KINDS, DEFAULT_MAX_OBJECT_BYTES, encodeFrame, parseClientFrame, parseHubFrame, type ClientFrame, type HubFrame, type SignalKind } from './frames.js'
