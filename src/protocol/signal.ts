/**
 * Signed signaling: WebRTC offers, answers and ICE candidates as signed objects under their own
 * labels (`offer`, `answer`, `candidate`). The Rust core dates each message, draws its nonce,
 * encodes, signs and verifies; this module passes strings and bytes through.
 *
 * The signature covers the whole SDP, so its DTLS fingerprint and ICE credentials are bound to
 * the signer's certificate. The SDP must carry exactly one `a=fingerprint:sha-256` (at the
 * session level or in every media section, all agreeing): anything else is `ERR_SIGNAL_SDP`,
 * when signing and when verifying.
 *
 * A {@link SignalVerifier} is a device's receiver-side check: the signed object (chain, expiry,
 * tenant, revocation, signature), then the body (from = signer, tenant, to = this device, the
 * SDP rule), then the time and the nonce in a replay window that remembers every nonce inside it
 * and refuses new messages when full (`ERR_REPLAY_FULL`) rather than forget a live one. Policy
 * (roles, time of day) and auditing come on top, in `signaling/`'s `SignalingGuard`.
 *
 * @example
 * ```ts
 * const offer = signOffer({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp, epoch: 0 }, tablet)
 * const verifier = new SignalVerifier({ trust, deviceId: 'kiosk-2', tenant: 'hotel-1' })
 * const { peer, offer: body, digest } = verifier.verifyOffer(offer)
 * const answer = signAnswer({ from: 'kiosk-2', to: peer.deviceId, tenant: 'hotel-1', sdp: answerSdp, epoch: 0, offerDigest: digest }, kiosk)
 * ```
 */

import { createError, isErrorCode, type ZtError } from '../errors.js'
import { callNative, native, type bindingTypes } from '../native.js'
import { credentialSigner, RevocationSet, type PeerIdentity, type TrustStore } from '../primitives/pki/index.js'
import type { ObjectSigner } from './signed.js'

/** What a verified offer says. */
export interface SignalBody {
  from: string
  to: string
  tenant: string
  sdp: string
  /** When it was signed, ms since the epoch. */
  ts: number
  /** 16 random bytes, hex. */
  nonce: string
  /** The sender's trust epoch. */
  epoch: number
}

/** What a verified answer says: an offer's fields and the digest of the offer it answers. */
export interface AnswerBody extends SignalBody {
  /** Hex SHA-256 digest of the offer's signed object (the `digest` its verification returned). */
  offerDigest: string
}

/** What a verified ICE candidate says. */
export interface CandidateBody {
  from: string
  to: string
  tenant: string
  offerDigest: string
  mid: string
  candidate: string
  ts: number
  nonce: string
}

/** An offer to sign: the core adds the time and the nonce. */
export interface OfferInit {
  from: string
  to: string
  tenant: string
  sdp: string
  epoch: number
}

/** An answer to sign. */
export interface AnswerInit extends OfferInit {
  offerDigest: string
}

/** An ICE candidate to sign. */
export interface CandidateInit {
  from: string
  to: string
  tenant: string
  offerDigest: string
  candidate: string
  mid: string
}

/**
 * The size limits of signed signaling, in bytes: `maxObjectLen` (a verifier refuses anything
 * longer unread, `ERR_MESSAGE_SIZE`: what a transport may cap its signaling messages at),
 * `maxSdpLen`, `maxCandidateLen`.
 */
export const SIGNAL_LIMITS: Readonly<bindingTypes.SignalLimits> = Object.freeze(native.signalLimits())

/** Signs an offer. Throws `ERR_SIGNAL_SDP`, `ERR_IDENTITY`, `ERR_MESSAGE_SIZE`, `ERR_KEY_MISMATCH`. */
export function signOffer(init: OfferInit, signer: ObjectSigner): Buffer {
  const key = credentialSigner(signer).native
  return callNative(() => native.signOffer(init, signer.certificateChainPem, key))
}

/** Signs an answer to the offer whose digest is `init.offerDigest`; as {@link signOffer}. */
export function signAnswer(init: AnswerInit, signer: ObjectSigner): Buffer {
  const key = credentialSigner(signer).native
  return callNative(() => native.signAnswer(init, signer.certificateChainPem, key))
}

/** Signs an ICE candidate of the session of the offer `init.offerDigest`. */
export function signCandidate(init: CandidateInit, signer: ObjectSigner): Buffer {
  const key = credentialSigner(signer).native
  return callNative(() => native.signCandidate(init, signer.certificateChainPem, key))
}

/**
 * The SHA-256 DTLS certificate fingerprint an SDP commits to, 64 lowercase hex digits (no `:`).
 * Throws `ERR_SIGNAL_SDP` unless the SDP carries exactly one, sha-256, agreed by every section.
 */
export function sdpFingerprint(sdp: string): string {
  return callNative(() => native.sdpFingerprint(sdp))
}

/** Options of {@link SignalVerifier}. */
export interface SignalVerifierInit {
  trust: TrustStore
  revocations?: RevocationSet
  /** This device: messages must be addressed to it. */
  deviceId: string
  /** This device's tenant: signers must belong to it. */
  tenant: string
  /** How old a message may be, ms (default 60000). */
  windowMs?: number
  /** How far ahead a message may be dated, ms (default 5000). */
  futureSkewMs?: number
  /** Live nonces remembered at most (default 65536); beyond, `ERR_REPLAY_FULL`. */
  maxNonces?: number
}

/** Where a message is checked from. */
export interface SignalCheckOptions {
  /** The authenticated peer of the link the offer came over: it must be the signer (`ERR_SIGNAL_LINK`). */
  linkPeer?: Pick<PeerIdentity, 'deviceId' | 'tenant'>
  /** For answers and candidates: the device that must have signed (`ERR_SIGNAL_MISMATCH`). */
  expectedFrom?: string
  /** Verify as of this time, ms since the epoch (default now). */
  nowMs?: number
}

/** A verified offer. */
export interface VerifiedOffer {
  peer: PeerIdentity
  offer: SignalBody
  /** The offer's digest, hex: what the answer names. */
  digest: string
}

/** A verified answer. */
export interface VerifiedAnswer {
  peer: PeerIdentity
  answer: AnswerBody
  digest: string
}

/** A verified ICE candidate. */
export interface VerifiedCandidate {
  peer: PeerIdentity
  candidate: CandidateBody
  digest: string
}

/**
 * What a check found: the verified message, or the refusal (a `ZtError` with the code of the
 * first check that failed) and, when the signature had verified before a later check refused
 * the message (a replay, a stale message, one for another device), its signer.
 */
export type SignalVerdict<T> = { ok: true; value: T } | { ok: false; error: ZtError; signer?: PeerIdentity }

/**
 * The core's receiver-side check of signed signaling for one device, with its replay window.
 * The `verify…` methods throw a `ZtError` with the code of the first check that fails; the
 * `check…` methods return it, with the signer when known.
 */
export class SignalVerifier {
  readonly #native: bindingTypes.SignalVerifier

  constructor(init: SignalVerifierInit) {
    const revocations = init.revocations ?? new RevocationSet()
    const window = { windowMs: init.windowMs, futureSkewMs: init.futureSkewMs, maxNonces: init.maxNonces }
    this.#native = callNative(() => new native.SignalVerifier(init.trust.native, revocations.native, init.deviceId, init.tenant, window))
  }

  /** Checks an offer to this device (`ERR_SIGNATURE`, `ERR_CHAIN`, `ERR_CERT_REVOKED`, `ERR_SIGNAL_*`, `ERR_REPLAY`…). */
  checkOffer(object: Uint8Array, options: SignalCheckOptions = {}): SignalVerdict<VerifiedOffer> {
    const check = { linkDevice: options.linkPeer?.deviceId, linkTenant: options.linkPeer?.tenant, nowMs: options.nowMs }
    const outcome = callNative(() => this.#native.checkOffer(object, check))
    return verdict(outcome, ({ peer, body, digest }) => ({ peer, offer: signalBody(body), digest }))
  }

  /** Checks an answer to the offer whose digest is `offerDigest`. */
  checkAnswer(object: Uint8Array, offerDigest: string, options: SignalCheckOptions = {}): SignalVerdict<VerifiedAnswer> {
    const check = { expectedFrom: options.expectedFrom, nowMs: options.nowMs }
    const outcome = callNative(() => this.#native.checkAnswer(object, offerDigest, check))
    return verdict(outcome, ({ peer, body, digest }) => ({ peer, answer: { ...signalBody(body), offerDigest: body.offerDigest ?? offerDigest }, digest }))
  }

  /** Checks an ICE candidate of the session of the offer `offerDigest`. */
  checkCandidate(object: Uint8Array, offerDigest: string, options: SignalCheckOptions = {}): SignalVerdict<VerifiedCandidate> {
    const check = { expectedFrom: options.expectedFrom, nowMs: options.nowMs }
    const outcome = callNative(() => this.#native.checkCandidate(object, offerDigest, check))
    return verdict(outcome, ({ peer, body, digest }) => ({ peer, candidate: body, digest }))
  }

  /** Verifies an offer to this device, or throws the refusal. */
  verifyOffer(object: Uint8Array, options: SignalCheckOptions = {}): VerifiedOffer {
    return settle(this.checkOffer(object, options))
  }

  /** Verifies an answer to the offer whose digest is `offerDigest`, or throws the refusal. */
  verifyAnswer(object: Uint8Array, offerDigest: string, options: SignalCheckOptions = {}): VerifiedAnswer {
    return settle(this.checkAnswer(object, offerDigest, options))
  }

  /** Verifies an ICE candidate of the session of the offer `offerDigest`, or throws the refusal. */
  verifyCandidate(object: Uint8Array, offerDigest: string, options: SignalCheckOptions = {}): VerifiedCandidate {
    return settle(this.checkCandidate(object, offerDigest, options))
  }

  /** Replaces the revocations: every message from now on is decided under them. */
  setRevocations(revocations: RevocationSet): void {
    this.#native.setRevocations(revocations.native)
  }

  /** How many nonces the replay window remembers. */
  get nonces(): number {
    return this.#native.nonces
  }
}

function verdict<N, T>(outcome: { verified?: N | null; refusal?: bindingTypes.SignalRefusal | null }, convert: (verified: N) => T): SignalVerdict<T> {
  if (outcome.verified != null) return { ok: true, value: convert(outcome.verified) }
  const refusal = outcome.refusal
  const code = refusal != null && isErrorCode(refusal.code) ? refusal.code : 'ERR_INTERNAL'
  const error = createError(code, refusal?.message ?? 'signal check returned nothing')
  return refusal?.signer != null ? { ok: false, error, signer: refusal.signer } : { ok: false, error }
}

function settle<T>(verdict: SignalVerdict<T>): T {
  if (!verdict.ok) throw verdict.error
  return verdict.value
}

function signalBody(body: bindingTypes.SignalBody): SignalBody {
  return { from: body.from, to: body.to, tenant: body.tenant, sdp: body.sdp, ts: body.ts, nonce: body.nonce, epoch: body.epoch }
}
