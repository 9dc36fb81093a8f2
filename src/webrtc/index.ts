/**
 * WebRTC data channels between devices (issue 11), behind one small interface so that the
 * signaling (signed offers and answers, src/signaling) does not depend on the stack.
 *
 * The sessions are non-trickle: `localDescription()` resolves once ICE gathering has finished,
 * so the one description the signaling layer signs carries every candidate as well as the DTLS
 * fingerprint. The DTLS fingerprint is enforced by the stack during the DTLS handshake
 * (libdatachannel's certificate verify callback): a peer whose certificate does not match the
 * description's fingerprint never gets a data channel, and `channel` rejects with
 * `ERR_WEBRTC_DTLS`.
 *
 * Only node-datachannel is shipped: werift 0.24.4 neither checks the fingerprint during the
 * handshake nor verifies the DTLS handshake signatures (see ./werift.ts), so
 * `createStack('werift')` refuses with `ERR_WEBRTC_STACK`.
 *
 * @example
 * ```ts
 * const stack = createStack()
 * const offerer = await stack.offer({ label: 'chat' })
 * const offerSdp = await offerer.localDescription()        // sign it, send it
 * const answerer = await stack.answer(offerSdp)            // after verifying the signed offer
 * await offerer.acceptAnswer(await answerer.localDescription())
 * const channel = await offerer.channel
 * channel.send('hello')
 * ```
 */

import { createError, ZtError } from '../errors.js'
import { DEFAULT_BIND_ADDRESS, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TIMEOUT_MS } from './constants.js'
import { closeAllDataChannelSessions, createDataChannelStack } from './datachannel.js'
import type { DataChannel } from './session.js'
import { createWeriftStack } from './werift.js'

export type { DataChannel } from './session.js'
export { checkRemoteDescription } from './session.js'

/** The stacks ztmesh knows. */
export type StackName = 'node-datachannel' | 'werift'

/** Options of a stack (every session it makes). */
export interface StackInit {
  /** The local address ICE binds to and offers. Default `127.0.0.1` (nothing leaves the machine unless asked). */
  bindAddress?: string
  /** The largest message sent or accepted, advertised in the SDP. Default 64 KiB. */
  maxMessageSize?: number
  /** Default time limit for gathering and for the channel to open, ms. Default 15 s. */
  timeoutMs?: number
}

/** Options of {@link WebRtcStack.offer}. */
export interface OfferInit {
  /** The data channel's label. Default `ztmesh`. */
  label?: string
  /** Time limit for gathering and for the channel to open, ms. */
  timeoutMs?: number
  /** Ends the session (`ERR_ABORTED`). */
  signal?: AbortSignal
}

/** Options of {@link WebRtcStack.answer}. */
export interface AnswerInit {
  /** Time limit for gathering and for the channel to open, ms. */
  timeoutMs?: number
  /** Ends the session (`ERR_ABORTED`). */
  signal?: AbortSignal
}

/** One peer connection carrying one data channel. */
export interface RtcSession {
  /**
   * The complete local description, once ICE gathering has finished (candidates included).
   * Rejects with `ERR_WEBRTC_TIMEOUT` after the session's time limit.
   */
  localDescription(): Promise<string>
  /** The offerer applies the peer's answer. `ERR_WEBRTC_SDP` when it is unusable (the session then ends). */
  acceptAnswer(sdp: string): Promise<void>
  /**
   * The open data channel, or a typed error: `ERR_WEBRTC_DTLS` (the peer did not prove the
   * certificate of its description), `ERR_WEBRTC_ICE`, `ERR_WEBRTC_TIMEOUT`, `ERR_WEBRTC_CLOSED`,
   * `ERR_ABORTED`. On any failure the session has released everything.
   */
  readonly channel: Promise<DataChannel>
  /** Ends the session and releases everything (idempotent). */
  close(): void
}

/** A WebRTC implementation. */
export interface WebRtcStack {
  readonly name: StackName
  /** A session that offers a data channel; `ERR_WEBRTC_SDP` if the stack cannot make one. */
  offer(init?: OfferInit): Promise<RtcSession>
  /** A session answering a (verified) offer; `ERR_WEBRTC_SDP` when the offer is unusable. */
  answer(remoteOfferSdp: string, init?: AnswerInit): Promise<RtcSession>
}

function withDefaults(init: StackInit): Required<StackInit> {
  return {
    bindAddress: init.bindAddress ?? DEFAULT_BIND_ADDRESS,
    maxMessageSize: init.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    timeoutMs: init.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  }
}

/**
 * The WebRTC stack: node-datachannel, the one ztmesh ships. `werift` is refused with
 * `ERR_WEBRTC_STACK` (its DTLS does not authenticate the peer; see ./werift.ts).
 */
export function createStack(name: StackName = 'node-datachannel', init: StackInit = {}): WebRtcStack {
  if (name === 'node-datachannel') return createDataChannelStack(withDefaults(init))
  if (name === 'werift') {
    throw createError('ERR_WEBRTC_STACK', 'werift is not shipped: its DTLS neither enforces the fingerprint during the handshake nor verifies the handshake signatures')
  }
  throw createError('ERR_WEBRTC_STACK', 'unknown WebRTC stack')
}

/**
 * Closes every live session of the shipped stack and stops its native threads, so that the
 * process can end on its own (an open session holds it, like an open socket). For a daemon's stop.
 */
export function closeAllSessions(): Promise<void> {
  return closeAllDataChannelSessions()
}

/**
 * The werift stack, for interoperability tests and benchmarks only: its DTLS does not
 * authenticate the peer (see ./werift.ts). Never use it for a channel that must be trusted.
 */
export function createWeriftStackForTestingOnly(init: StackInit = {}): WebRtcStack {
  return createWeriftStack(withDefaults(init))
}

/** Both ends of an open channel, as {@link openChannelPair} returns them. */
export interface ChannelPair {
  offerer: RtcSession
  answerer: RtcSession
  offererChannel: DataChannel
  answererChannel: DataChannel
  /** Closes both sessions. */
  close(): void
}

/** Hooks of {@link openChannelPair}: where the signaling layer signs and verifies the descriptions. */
export interface PairInit {
  label?: string
  timeoutMs?: number
  signal?: AbortSignal
  /** Turns the offer SDP into what travels (a signed offer, say); default: the SDP itself. */
  sendOffer?: (sdp: string) => string | Promise<string>
  /** Turns what traveled back into the SDP the answerer applies (verify a signed offer, say). */
  receiveOffer?: (sent: string) => string | Promise<string>
  sendAnswer?: (sdp: string) => string | Promise<string>
  receiveAnswer?: (sent: string) => string | Promise<string>
  /**
   * How many more times to try, with new sessions, when an attempt ends with `ERR_WEBRTC_ICE` or
   * `ERR_WEBRTC_DTLS`. libdatachannel loses about 1 loopback open in 500 between genuine peers
   * that way (its ICE transport closes under the connection; seen as either code). Every attempt
   * is verified in full, so a retry never lets a wrong certificate through; SDP, timeout and
   * abort failures are never retried. Default 0.
   */
  retries?: number
}

/** The failures {@link PairInit.retries} retries. */
const RETRIED = new Set<string>(['ERR_WEBRTC_ICE', 'ERR_WEBRTC_DTLS'])

/**
 * Opens one data channel from `offering` to `answering` (two stacks, or one twice) in one process,
 * the hooks standing for the signaling path. Used by tests and by the `datachannel-open` bench
 * (the signed variant passes signing and verifying hooks). Both sessions are closed on failure.
 */
export async function openChannelPair(offering: WebRtcStack, answering: WebRtcStack, init: PairInit = {}): Promise<ChannelPair> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await openOnce(offering, answering, init)
    } catch (error) {
      if (!(error instanceof ZtError) || !RETRIED.has(error.code) || attempt >= (init.retries ?? 0)) throw error
    }
  }
}

async function openOnce(offering: WebRtcStack, answering: WebRtcStack, init: PairInit): Promise<ChannelPair> {
  const identity = (text: string) => text
  const sessions: RtcSession[] = []
  try {
    const common = { ...(init.timeoutMs !== undefined && { timeoutMs: init.timeoutMs }), ...(init.signal !== undefined && { signal: init.signal }) }
    const offerer = await offering.offer({ ...common, ...(init.label !== undefined && { label: init.label }) })
    sessions.push(offerer)
    const offer = await (init.sendOffer ?? identity)(await offerer.localDescription())
    const answerer = await answering.answer(await (init.receiveOffer ?? identity)(offer), common)
    sessions.push(answerer)
    const answer = await (init.sendAnswer ?? identity)(await answerer.localDescription())
    await offerer.acceptAnswer(await (init.receiveAnswer ?? identity)(answer))
    const [offererChannel, answererChannel] = await Promise.all([offerer.channel, answerer.channel])
    return {
      offerer,
      answerer,
      offererChannel,
      answererChannel,
      close: () => {
        offerer.close()
        answerer.close()
      },
    }
  } catch (error) {
    for (const session of sessions) session.close()
    throw error
  }
}
