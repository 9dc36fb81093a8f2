// The node-datachannel (libdatachannel) stack: the default. libdatachannel checks the peer's
// DTLS certificate against the fingerprint of the remote description inside its certificate
// verify callback, and OpenSSL verifies the handshake signatures, so a mismatch ends the
// handshake before SCTP, let alone a data channel, starts (`disableFingerprintVerification` is
// never set here).

import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

import type { DataChannel as NdcChannel, PeerConnection } from 'node-datachannel'

import { createError, ZtError } from '../errors.js'
import { DEFAULT_LABEL } from './constants.js'
import { checkRemoteDescription, lazyModule, StackSession, stackError } from './session.js'
import type { AnswerInit, OfferInit, RtcSession, StackInit, WebRtcStack } from './index.js'

type Ndc = typeof import('node-datachannel')
/** node-datachannel, loaded on first use, so that importing ztmesh does not load the native WebRTC library. */
const load = lazyModule<Ndc>(() => import('node-datachannel'))

/** The live sessions, so that {@link closeAllDataChannelSessions} can end them all. */
const live = new Set<NdcSession>()

/** Creates the node-datachannel stack. */
export function createDataChannelStack(init: Required<StackInit>): WebRtcStack {
  return {
    name: 'node-datachannel',
    async offer(offer: OfferInit = {}): Promise<RtcSession> {
      const session = new NdcSession(await load(), init, offer.timeoutMs ?? init.timeoutMs, offer.signal)
      session.createChannel(offer.label ?? DEFAULT_LABEL)
      return session
    },
    async answer(remoteOfferSdp: string, answer: AnswerInit = {}): Promise<RtcSession> {
      const sdp = checkRemoteDescription(remoteOfferSdp)
      const session = new NdcSession(await load(), init, answer.timeoutMs ?? init.timeoutMs, answer.signal)
      session.applyOffer(sdp)
      return session
    },
  }
}

/**
 * Ends every live node-datachannel session, then stops libdatachannel's threads (its
 * `cleanup()`). An open session holds the process like an open socket does; a daemon calls this
 * when it stops so the process can end on its own. Sessions made afterwards still work.
 */
export async function closeAllDataChannelSessions(): Promise<void> {
  for (const session of [...live]) session.close()
  if (load.loaded) (await load()).cleanup()
}

class NdcSession extends StackSession implements RtcSession {
  readonly #pc: PeerConnection
  readonly #channels: NdcChannel[] = []

  constructor(ndc: Ndc, init: Required<StackInit>, timeoutMs: number, signal?: AbortSignal) {
    super(timeoutMs, init.maxMessageSize, signal)
    this.#pc = new ndc.PeerConnection(`ztmesh-${randomUUID()}`, {
      iceServers: [],
      bindAddress: init.bindAddress,
      maxMessageSize: init.maxMessageSize,
    })
    live.add(this)
    this.#pc.onIceStateChange((state) => this.iceStateChanged(state))
    this.#pc.onStateChange((state) => this.connectionStateChanged(state))
    this.#pc.onDataChannel((dc) => this.#take(dc, true))
  }

  createChannel(label: string): void {
    this.role = 'offerer'
    this.#take(this.#pc.createDataChannel(label), false)
  }

  applyOffer(sdp: string): void {
    this.role = 'answerer'
    try {
      this.#pc.setRemoteDescription(withoutCandidates(sdp), 'offer')
    } catch (error) {
      const refused = stackError('ERR_WEBRTC_SDP', 'the offer is not a usable session description', error)
      this.lifecycle.fail(refused)
      throw refused
    }
  }

  protected whenGathered(done: () => void): void {
    this.#pc.onGatheringStateChange((state) => {
      if (state === 'complete') done()
    })
    if (this.#pc.gatheringState() === 'complete') done()
  }

  protected currentDescription(): string | undefined {
    // As libdatachannel writes it: the offer says `actpass`, the answerer is the DTLS client.
    // Its ClientHello is not lost: its ICE connects only from the offerer's checks (see
    // withoutCandidates), so the offerer has the answer and a DTLS transport by then. (An offer
    // rewritten to `active` made the offerer the client: with the answerer waiting for checks,
    // the offerer's ClientHello then often arrived before the answerer's ICE had connected, and
    // about half the opens waited a 1 s retransmission.)
    return this.#pc.localDescription()?.sdp
  }

  protected applyAnswer(sdp: string): void {
    this.#pc.setRemoteDescription(sdp, 'answer')
  }

  protected override async answerFailure(error: unknown): Promise<ZtError> {
    // libdatachannel sometimes fails the connection while it applies an answer ("Got a remote
    // candidate without ICE transport": about 1 loopback open in 300 here, a connectivity
    // failure before any DTLS), and a DTLS handshake refused at once ends the same way. The
    // connection's own events say which (they arrive on the next turns): wait for them briefly.
    const state = this.#pc.state()
    if (state !== 'closed' && state !== 'failed') return super.answerFailure(error)
    const outcome = await Promise.race([this.lifecycle.channel.then(() => undefined, (reason: unknown) => reason), sleep(1_000)])
    return outcome instanceof ZtError ? outcome : createError('ERR_WEBRTC_ICE', 'the connection failed while the answer was applied', { cause: error })
  }

  protected release(): void {
    live.delete(this)
    for (const dc of this.#channels) {
      try {
        dc.close()
      } catch {}
    }
    this.#pc.close()
  }

  #take(dc: NdcChannel, incoming: boolean): void {
    this.#channels.push(dc)
    const channel = this.adopt(dc.getLabel(), {
      sendText: (text) => void dc.sendMessage(text),
      sendBinary: (data) => void dc.sendMessageBinary(data),
      close: () => dc.close(),
    }, incoming)
    if (channel === undefined) {
      dc.close() // one channel per session, opened by the offerer
      return
    }
    dc.onMessage((message) => {
      channel.received(typeof message === 'string' ? message : Buffer.from(message instanceof ArrayBuffer ? new Uint8Array(message) : message))
    })
    dc.onClosed(() => this.lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the data channel closed')))
    dc.onError(() => this.lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the data channel failed')))
    const open = () => this.lifecycle.opened(channel)
    if (dc.isOpen()) open()
    else dc.onOpen(open)
  }
}

/**
 * The offer as the answerer applies it: without the offerer's candidates, so that the answerer
 * never starts ICE checks itself and only answers the offerer's (RFC 8445 lets an agent learn a
 * peer-reflexive candidate from a check it receives, and libjuice answers it with a triggered
 * check). Why: checks sent before the offerer has the answer made libjuice, on the offerer,
 * record the answerer as a peer-reflexive candidate; when the answer was then applied, ICE
 * connected on libjuice's thread within microseconds, the offerer's DTLS client sent its
 * ClientHello, and the answerer's certificate arrived while libdatachannel's
 * `setRemoteDescription` had set the ICE role but not yet stored the remote description: its
 * fingerprint check found no description and refused (a genuine peer, ERR_WEBRTC_DTLS). Without
 * early checks, the offerer's ICE can only connect from the candidates of the answer, which
 * libdatachannel adds after it has stored that answer, fingerprint included.
 */
export function withoutCandidates(sdp: string): string {
  return sdp.split(/(?<=\n)/).filter((line) => !/^a=(candidate:|end-of-candidates)/.test(line)).join('')
}
