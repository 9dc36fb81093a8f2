/**
 * Signed objects whose signature is made outside the core, by a key no {@link Signer} can reach:
 * the staff page's non-extractable WebCrypto key. The core still builds every byte: `prepare…`
 * fixes the label, the chain and the body (the core dates offers and draws their nonces) and
 * gives the exact bytes to sign; `assemble` takes the signature as WebCrypto makes it (IEEE
 * P1363 `r ‖ s`), converts it to the low-s DER the format wants, verifies it under the leaf's key
 * and only then returns the object. A prepared object is single use.
 *
 * The hub's challenge (label `hub-challenge`) is how a client that cannot present its key in a
 * TLS handshake proves it holds the key of the chain it sent: {@link hubChallenge} issues one,
 * {@link verifyHubChallenge} checks the answer against those exact bytes, its age, and the chain
 * through `verifyPeer`.
 *
 * @example
 * ```ts
 * const prepared = prepareOffer({ from, to, tenant, sdp, epoch: 0 }, browserChainPem)
 * // … the browser signs prepared.toBeSigned with its key and sends the signature back …
 * const offer = assemble(prepared, signatureFromBrowser)
 * ```
 */

import { callNative, native, type bindingTypes } from '../native.js'
import type { PeerPolicy, RevocationSet, TrustStore } from '../primitives/pki/index.js'
import type { PresenceLease } from './presence.js'
import type { AnswerInit, OfferInit } from './signal.js'
import type { VerifiedObject } from './signed.js'

/** A signed object waiting for its signature; `toBeSigned` is the exact message to sign (ECDSA P-256, SHA-256). */
export type PreparedObject = bindingTypes.PreparedObject

/** Prepares `body` under the label named `label` for `chainPem` (leaf first). `ERR_WIRE_LABEL`, `ERR_MESSAGE_SIZE`. */
export function prepareObject(label: string, chainPem: string, body: Uint8Array): PreparedObject {
  return callNative(() => native.PreparedObject.object(label, chainPem, body))
}

/** Prepares an offer (the core dates it and draws its nonce); the codes of `signOffer` but `ERR_KEY_MISMATCH`. */
export function prepareOffer(init: OfferInit, chainPem: string): PreparedObject {
  return callNative(() => native.prepareOffer(init, chainPem))
}

/** Prepares an answer; as {@link prepareOffer}. */
export function prepareAnswer(init: AnswerInit, chainPem: string): PreparedObject {
  return callNative(() => native.prepareAnswer(init, chainPem))
}

/** Prepares a presence lease; the codes of `signPresenceLease` but `ERR_KEY_MISMATCH`. */
export function preparePresenceLease(lease: PresenceLease, chainPem: string): PreparedObject {
  return callNative(() => native.PreparedObject.presenceLease(lease, chainPem))
}

/** The bytes to sign. `ERR_CLOSED` once assembled. */
export function toBeSigned(prepared: PreparedObject): Buffer {
  return callNative(() => prepared.toBeSigned)
}

/**
 * Completes `prepared` with `signature` (P1363 `r ‖ s`, or DER) and returns the encoded object,
 * verified under the leaf's key first (`ERR_SIGNATURE`). Consumes it either way (`ERR_CLOSED` after).
 */
export function assemble(prepared: PreparedObject, signature: Uint8Array): Buffer {
  return callNative(() => prepared.assemble(signature))
}

/** A fresh challenge of hub `hubId` (its body: the hub id, the time and 16 random bytes), to be kept for one connection. */
export function hubChallenge(hubId: string): Buffer {
  return callNative(() => native.hubChallenge(hubId))
}

/**
 * Verifies an answer to the challenge `issued`: label `hub-challenge`, the exact bytes issued and
 * at most `maxAgeMs` old (`ERR_HUB_CHALLENGE`), the chain through `verifyPeer` (trust,
 * revocations, `policy`: set `expectedTenant`), then the signature (`ERR_SIGNATURE`).
 */
export function verifyHubChallenge(answer: Uint8Array, issued: Uint8Array, trust: TrustStore, revocations: RevocationSet, policy: PeerPolicy, maxAgeMs: number): VerifiedObject {
  return callNative(() => native.verifyHubChallenge(answer, issued, trust.native, revocations.native, policy, maxAgeMs))
}
