/**
 * The signaling guard: the one receiver-side check of every signed offer, answer and ICE
 * candidate a device receives, whatever carried it (the local `POST /offer`, the hub, a relay).
 *
 * 1. The core's {@link SignalVerifier}: seed 000's six checks through `verify_peer` and the
 *    signature (chain, expiry, CN = from, tenant, not revoked, signature), the body (to = this
 *    device, the SDP's one sha-256 fingerprint), the link's peer when the offer came over an
 *    authenticated link, then the time and the nonce in the replay window.
 * 2. The policy decision point: `decide(peer, 'signal.offer' | 'signal.answer' |
 *    'signal.candidate', { tenant, device: me })`, so roles, tenants and time of day come from a
 *    policy document. Without one, {@link sameTenantPolicy}: every device of this tenant.
 * 3. Every refusal is appended to the audit log, with the action and the code as its reason,
 *    before the `ZtError` is thrown.
 *
 * @example
 * ```ts
 * const guard = createSignalingGuard({ identity, trustPem, audit: new AuditLog(db) })
 * const { peer, offer, digest } = guard.verifyOffer(bytes, { linkPeer: link.peer })
 * ```
 */

import type { AuditEvent } from '../audit/index.js'
import { createError, ZtError } from '../errors.js'
import { createPolicyDecisionPoint, sameTenantPolicy, type AuditSink, type PolicyDecisionPoint } from '../policy/index.js'
import { inspectCertificate, TrustStore, type DeviceCredential, type PeerIdentity, type RevocationSet } from '../primitives/pki/index.js'
import { SignalVerifier, type SignalVerdict, type VerifiedAnswer, type VerifiedCandidate, type VerifiedOffer } from '../protocol/signal.js'
import { DEFAULT_SIGNAL_WINDOW_MS, REFUSAL_STATUS, SIGNAL_ACTIONS, type RefusalStatus, type SignalAction } from './constants.js'

export { SIGNAL_ACTIONS, DEFAULT_SIGNAL_WINDOW_MS, REFUSAL_STATUS, type RefusalStatus, type SignalAction } from './constants.js'

/** The HTTP status a signaling endpoint answers a refusal with ({@link REFUSAL_STATUS}; 401 for any other code). */
export function refusalStatus(code: string): RefusalStatus {
  return Object.hasOwn(REFUSAL_STATUS, code) ? REFUSAL_STATUS[code]! : 401
}

/** Options of {@link SignalingGuard}. */
export interface SignalingGuardInit {
  /** This device's credential: its certificate names the device messages must be addressed to, and its tenant. */
  identity: Pick<DeviceCredential, 'certificateChainPem'>
  /** The trust anchors (PEM) signers must chain to. */
  trustPem: string
  /** Revocations in force. The guard decides under a copy: after changing the set, hand it to {@link SignalingGuard.setRevocations}. */
  revocations?: RevocationSet
  /** The policy decision point; default: {@link sameTenantPolicy} of this device's tenant, auditing to `audit`. */
  access?: PolicyDecisionPoint
  /** Where refusals (and the default policy's decisions) are recorded: the project's `AuditLog`. Without it nothing is recorded. */
  audit?: AuditSink
  /** How old a message may be, ms (default 60000). */
  windowMs?: number
  /** How far ahead a message may be dated, ms (default 5000). */
  futureSkewMs?: number
  /** Live nonces remembered at most (default 65536); when full, new messages are refused (`ERR_REPLAY_FULL`). */
  maxNonces?: number
  /** The clock, ms since the epoch (default `Date.now`). */
  now?: () => number
}

const NO_AUDIT: AuditSink = { append() {} }

/** Verifies every signed signaling message a device receives; see the module documentation. */
export class SignalingGuard {
  /** This device, as its own certificate names it. */
  readonly me: { readonly deviceId: string; readonly tenant: string }
  readonly #verifier: SignalVerifier
  readonly #access: PolicyDecisionPoint
  readonly #audit: AuditSink
  readonly #now: () => number

  constructor(init: SignalingGuardInit) {
    const facts = inspectCertificate(init.identity.certificateChainPem)
    if (facts.deviceId == null || facts.tenant == null) throw createError('ERR_INVALID_ARG', 'the identity certificate names no device id or tenant')
    this.me = Object.freeze({ deviceId: facts.deviceId, tenant: facts.tenant })
    this.#audit = init.audit ?? NO_AUDIT
    this.#access = init.access ?? createPolicyDecisionPoint({ policy: sameTenantPolicy(facts.tenant), audit: this.#audit })
    this.#now = init.now ?? Date.now
    this.#verifier = new SignalVerifier({
      trust: TrustStore.fromPem(init.trustPem),
      revocations: init.revocations,
      deviceId: facts.deviceId,
      tenant: facts.tenant,
      windowMs: init.windowMs ?? DEFAULT_SIGNAL_WINDOW_MS,
      futureSkewMs: init.futureSkewMs,
      maxNonces: init.maxNonces,
    })
  }

  /**
   * Verifies an offer to this device, then asks the policy for `signal.offer`. With `linkPeer`
   * (the authenticated peer of the link it came over) the signer must be that peer. Throws the
   * `ZtError` of the first refusal, after auditing it.
   */
  verifyOffer(bytes: Uint8Array, opts: { linkPeer?: PeerIdentity } = {}): VerifiedOffer {
    const action = SIGNAL_ACTIONS.offer
    const verified = this.#settle(action, opts.linkPeer?.deviceId, bytes, () => this.#verifier.checkOffer(bytes, { linkPeer: opts.linkPeer, nowMs: this.#now() }))
    this.#allow(action, verified.peer, bytes)
    return verified
  }

  /**
   * Verifies an answer to the offer this device sent, named by its digest (hex); with
   * `expectedFrom` (the device offered to) the signer must be it. Then the policy for
   * `signal.answer`. Throws after auditing, as {@link verifyOffer}.
   */
  verifyAnswer(bytes: Uint8Array, offerDigest: string, opts: { expectedFrom?: string } = {}): VerifiedAnswer {
    const action = SIGNAL_ACTIONS.answer
    const verified = this.#settle(action, opts.expectedFrom, bytes, () => this.#verifier.checkAnswer(bytes, offerDigest, { expectedFrom: opts.expectedFrom, nowMs: this.#now() }))
    this.#allow(action, verified.peer, bytes)
    return verified
  }

  /** Verifies an ICE candidate of the session of the offer `offerDigest`; then the policy for `signal.candidate`. */
  verifyCandidate(bytes: Uint8Array, offerDigest: string, opts: { expectedFrom?: string } = {}): VerifiedCandidate {
    const action = SIGNAL_ACTIONS.candidate
    const verified = this.#settle(action, opts.expectedFrom, bytes, () => this.#verifier.checkCandidate(bytes, offerDigest, { expectedFrom: opts.expectedFrom, nowMs: this.#now() }))
    this.#allow(action, verified.peer, bytes)
    return verified
  }

  /** Replaces the revocations: every message from now on is decided under them. */
  setRevocations(revocations: RevocationSet): void {
    this.#verifier.setRevocations(revocations)
  }

  /** How many nonces the replay window remembers. */
  get nonces(): number {
    return this.#verifier.nonces
  }

  /**
   * Runs the core's check; a refusal is audited and thrown. The actor is who delivered or was
   * expected to send the message (the link's peer, the device offered to), else its verified
   * signer, else `unknown`; the signer, when known, is in the detail.
   */
  #settle<T>(action: SignalAction, expected: string | undefined, bytes: Uint8Array, check: () => SignalVerdict<T>): T {
    let verdict: SignalVerdict<T>
    try {
      verdict = check()
    } catch (error) {
      // Bad arguments (not bytes, a digest that is not hex): refused and audited the same way.
      verdict = { ok: false, error: error instanceof ZtError ? error : createError('ERR_INTERNAL', 'signal verification failed', { cause: error }) }
    }
    if (verdict.ok) return verdict.value
    const signer = verdict.signer
    this.#record(action, expected ?? signer?.deviceId ?? 'unknown', verdict.error.code, bytes, signer ?? null)
    throw verdict.error
  }

  /** The policy decision for a verified signer; a denial is audited with `ERR_POLICY_DENIED` and thrown. */
  #allow(action: SignalAction, peer: PeerIdentity, bytes: Uint8Array): void {
    const decision = this.#access.decide(peer, action, { tenant: this.me.tenant, device: this.me.deviceId })
    if (decision.allow) return
    this.#record(action, peer.deviceId, 'ERR_POLICY_DENIED', bytes, peer, decision.reason)
    throw createError('ERR_POLICY_DENIED', decision.reason)
  }

  #record(action: SignalAction, actor: string, code: string, bytes: Uint8Array, signer: PeerIdentity | null, policy?: string): void {
    const event: AuditEvent = {
      actor,
      action,
      outcome: 'deny',
      reason: code,
      detail: {
        device: this.me.deviceId,
        tenant: this.me.tenant,
        bytes: bytes?.length ?? 0,
        signer: signer?.deviceId ?? null,
        serial: signer?.serial ?? null,
        policy: policy ?? null,
      },
    }
    try {
      this.#audit.append(event)
    } catch {
      // The message is refused either way; a failing audit log must not turn a refusal into another error.
    }
  }
}

/** Creates the signaling guard of a device. */
export function createSignalingGuard(init: SignalingGuardInit): SignalingGuard {
  return new SignalingGuard(init)
}
