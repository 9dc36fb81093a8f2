/**
 * Presence leases: a device's signed statement "I am reachable through hub `hubId` until
 * `expiresAtMs`". The core encodes, signs and verifies them (`wire::presence`, label
 * `presence`); a hub relays them but cannot make them, so a compromised hub can drop a device's
 * presence but never forge it: every receiver verifies each lease itself.
 *
 * @example
 * ```ts
 * const lease = signPresenceLease({ deviceId, tenant, hubId: 'hub-1', seq: 1, issuedAtMs: now, expiresAtMs: now + 30_000 }, credential)
 * const { lease: facts, peer } = verifyPresenceLease(lease, trust, revocations, { expectedTenant: tenant })
 * ```
 */

import { callNative, native } from '../native.js'
import { credentialSigner, type DeviceCredential, type PeerIdentity, type PeerPolicy, type RevocationSet, type TrustStore } from '../primitives/pki/index.js'

/** What a lease says. */
export interface PresenceLease {
  deviceId: string
  tenant: string
  hubId: string
  /** ≥ 1, grows with each lease the device signs; a receiver keeps the highest. */
  seq: number
  issuedAtMs: number
  /** After `issuedAtMs` by at most {@link MAX_LEASE_MS}. */
  expiresAtMs: number
}

/** A lease that verified, with the device that signed it. */
export interface VerifiedPresenceLease {
  lease: PresenceLease
  peer: PeerIdentity
  digest: string
}

/** The longest lease the core accepts: 10 minutes. */
export const MAX_LEASE_MS = 10 * 60 * 1000

/**
 * Signs `lease` with the device's key. Throws `ERR_MESSAGE_SIZE` for an id out of range,
 * `ERR_WIRE_MALFORMED` for seq 0 or a validity that is empty or over 10 minutes,
 * `ERR_KEY_MISMATCH`.
 */
export function signPresenceLease(lease: PresenceLease, credential: DeviceCredential): Buffer {
  const key = credentialSigner(credential).native
  return callNative(() => native.signPresenceLease(lease, credential.certificateChainPem, key))
}

/**
 * Verifies a signed lease (at `policy.nowMs`, default now): label and body, the signer's chain
 * (`verifyPeer`: set `expectedTenant` to the reader's tenant), that the signer is the device the
 * lease names (`ERR_PRESENCE_MISMATCH`), and that it is valid now (`ERR_PRESENCE_EXPIRED`).
 */
export function verifyPresenceLease(object: Uint8Array, trust: TrustStore, revocations: RevocationSet, policy: PeerPolicy = {}): VerifiedPresenceLease {
  return callNative(() => native.verifyPresenceLease(object, trust.native, revocations.native, policy))
}
