/**
 * Signed objects: a body signed by a device key for one purpose (a label), carrying the
 * signer's certificate chain. Offers, gossip messages, bundles and policy documents are all
 * this one type. The Rust core encodes, signs and verifies every byte; this module only passes
 * them through.
 *
 * A label is named by its short name (`'test'`, later `'offer'`…); the core maps it to the
 * registered `ztmesh-…-v1` string and refuses any other name with `ERR_WIRE_LABEL`. An object
 * signed under one label never verifies under another.
 *
 * @example
 * ```ts
 * const object = signObject('test', Buffer.from('hello'), { certificateChainPem, signer })
 * const { peer, body } = verifyObject(object, 'test', trust, revocations, { expectedTenant: 'hotel-1' })
 * ```
 */

import { callNative, native } from '../native.js'
import { credentialSigner, type DeviceCredential, type PeerIdentity, type PeerPolicy, type RevocationSet, type TrustStore } from '../primitives/pki/index.js'

/** The key that signs, and the chain that names it (leaf first, at most 3 certificates). */
export type ObjectSigner = DeviceCredential

/** A signed object that verified: who signed it, and the body they signed. */
export interface VerifiedObject {
  peer: PeerIdentity
  body: Buffer
  /** The object's identity for deduplication, hex (SHA-256 of the signed statement, leaf certificate included, and the signature). */
  digest: string
}

/**
 * Signs `body` under the label named `label`. Throws `ERR_WIRE_LABEL` for an unknown label
 * name, `ERR_MESSAGE_SIZE` for a body over 1 MiB or a chain over 3 certificates,
 * `ERR_KEY_MISMATCH` when the key is not the leaf certificate's.
 */
export function signObject(label: string, body: Uint8Array, signer: ObjectSigner): Buffer {
  const key = credentialSigner(signer).native
  return callNative(() => native.signObject(label, signer.certificateChainPem, body, key))
}

/**
 * Verifies a signed object for the purpose `label`: the label, then the embedded chain through
 * `verifyPeer` (trust, revocations, policy), then the signature. Throws `ERR_WIRE_MALFORMED`,
 * `ERR_WIRE_VERSION`, `ERR_WIRE_LABEL`, `ERR_SIGNATURE`, or the PKI's codes
 * (`ERR_CERT_REVOKED`, `ERR_CERT_EXPIRED`, `ERR_TENANT_MISMATCH`, `ERR_CHAIN`…).
 */
export function verifyObject(object: Uint8Array, label: string, trust: TrustStore, revocations: RevocationSet, policy: PeerPolicy = {}): VerifiedObject {
  return callNative(() => native.verifyObject(object, label, trust.native, revocations.native, policy))
}

/**
 * The digest of a signed object this side signed itself (what an answer names its offer by);
 * no trust decision. Throws `ERR_WIRE_MALFORMED` for bytes that are not a signed object.
 */
export function signedObjectDigest(object: Uint8Array): string {
  return callNative(() => native.signedObjectDigest(object))
}

/** The names of the labels signed objects may use. */
export function signedObjectLabels(): string[] {
  return native.signedObjectLabels()
}
