/**
 * ztmesh: a zero-trust, local-first security runtime for fleets of edge devices.
 *
 * The daemon composition root is the subpath `ztmesh/daemon`: it loads a logger, a metrics
 * registry and a YAML parser that a program using the library alone should not pay for.
 *
 * @packageDocumentation
 */
export * from './primitives/crypto/index.js'
export * from './errors.js'
export * from './primitives/keystore/index.js'
export * from './primitives/noise/index.js'
export * from './primitives/pki/index.js'
export * from './channels/index.js'
export * from './attestation/index.js'
export * from './primitives/tpm/index.js'
export * from './protocol/index.js'
export { AUDIT_CHECKPOINT_MIGRATION, AUDIT_MIGRATION, AuditLog, PRUNE_ACTION, verifyAuditCheckpoint, type AuditCheckpoint, type AuditCheckpointInit, type AuditEvent, type AuditLogInit, type AuditOutcome, type AuditRecord, type AuditRetention, type VerifiedAuditCheckpoint } from './audit/index.js'
export { openDatabase, type Db, type Migration, type OpenDatabaseInit } from './storage/index.js'
export { DeviceIdentity, type EnrollInit, type OpenInit, type RenewalState } from './identity/index.js'
export { CaService, type CaInitOptions, type CaOpenOptions, type CertificateRecord, type Enrollment } from './ca/index.js'
export * from './policy/index.js'
export * from './discovery/index.js'
export { createSignalingGuard, DEFAULT_SIGNAL_WINDOW_MS, REFUSAL_STATUS, refusalStatus, SIGNAL_ACTIONS, SignalingGuard, type SignalAction, type SignalingGuardInit } from './signaling/index.js'
export { closeAllSessions, createStack, openChannelPair, checkRemoteDescription, type AnswerInit, type ChannelPair, type DataChannel, type OfferInit, type PairInit, type RtcSession, type StackInit, type StackName, type WebRtcStack } from './webrtc/index.js'
export { HubClient, HubServer, MemoryBus, RedisBus, type Bus, type HubClientInit, type HubLimits, type HubPresence, type HubRefusal, type HubServerInit, type HubSignal, type RedisBusInit } from './hub/index.js'
export { createWebRtcConnector, WebRtcConnector, type PeerAddress, type PeerLink, type PeeringConfig, type PeeringContext, type WebRtcConnectorInit } from './peering/index.js'
export { StaffServer, type StaffEnroller, type StaffServerInit } from './staff/index.js'
