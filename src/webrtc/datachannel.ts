// The node-datachannel (libdatachannel) stack: the default. libdatachannel checks the peer's
// DTLS certificate against the fingerprint of the remote description inside its certificate
// verify callback, so a mismatch ends the handshake before SCTP, let alone a data channel,
// starts (`disableFingerprintVerification` is never set here).

import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

import type { DataChannel as NdcChannel, PeerConnection } from 'node-datachannel'

import { createError, ZtError } from '../errors.js'
import { DEFAULT_LABEL } from './constants.js'
import { Channel, checkRemoteDescription, gathered, Lifecycle, stackError } from './session.js'
import type { OfferInit, AnswerInit, RtcSession, StackInit, WebRtcStack } from './index.js'

/** The live peer connections, so that the process can end them all (see {@link closeAllForExit}). */
const live = new Set<NdcSession>()

type Ndc = typeof import('node-datachannel')
let loading: Promise<Ndc> | undefined
/** node-datachannel, loaded on first use, so that importing ztmesh does not load the native WebRTC library. */
function load(): Promise<Ndc> {
  loading ??= import('node-datachannel').then((module) => ((module as { default?: Ndc }).default ?? module) as Ndc)
  return loading
}

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
  if (loading !== undefined) (await loading).cleanup()
}

class NdcSession implements RtcSession {
  readonly #pc: PeerConnection
  readonly #lifecycle: Lifecycle
  readonly #timeoutMs: number
  readonly #maxMessageSize: number
  readonly #channels: NdcChannel[] = []
  #role: 'offerer' | 'answerer' | undefined
  #iceConnected = false
  #answered = false
  #gathering: Promise<void> | undefined

  constructor(ndc: Ndc, init: Required<StackInit>, timeoutMs: number, signal?: AbortSignal) {
    this.#timeoutMs = timeoutMs
    this.#maxMessageSize = init.maxMessageSize
    this.#pc = new ndc.PeerConnection(`ztmesh-${randomUUID()}`, {
      iceServers: [],
      bindAddress: init.bindAddress,
      maxMessageSize: init.maxMessageSize,
    })
    this.#lifecycle = new Lifecycle(timeoutMs, () => this.#release(), signal)
    live.add(this)
    this.#pc.onIceStateChange((state) => {
      if (state === 'connected' || state === 'completed') this.#iceConnected = true
      if (state === 'failed') this.#lifecycle.fail(createError('ERR_WEBRTC_ICE', 'ICE found no working path to the peer'))
    })
    this.#pc.onStateChange((state) => {
      // 'failed' after ICE connected is the DTLS handshake: libdatachannel ends it when the
      // peer's certificate does not match the remote description's fingerprint.
      if (state === 'failed') {
        this.#lifecycle.fail(this.#iceConnected
          ? createError('ERR_WEBRTC_DTLS', 'the DTLS handshake failed: the peer did not prove the certificate of its session description')
          : createError('ERR_WEBRTC_ICE', 'ICE found no working path to the peer'))
      } else if (state === 'closed' || state === 'disconnected') {
        this.#lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the peer connection ended'))
      }
    })
    this.#pc.onDataChannel((dc) => {
      if (this.#role !== 'answerer' || this.#channels.length > 0) {
        dc.close() // one channel per session, opened by the offerer
        return
      }
      this.#adopt(dc)
    })
  }

  get channel() {
    return this.#lifecycle.channel
  }

  createChannel(label: string): void {
    this.#role = 'offerer'
    this.#adopt(this.#pc.createDataChannel(label))
  }

  applyOffer(sdp: string): void {
    this.#role = 'answerer'
    try {
      this.#pc.setRemoteDescription(sdp, 'offer')
    } catch (error) {
      const refused = stackError('ERR_WEBRTC_SDP', 'the offer is not a usable session description', error)
      this.#lifecycle.fail(refused)
      throw refused
    }
  }

  localDescription(): Promise<string> {
    if (this.#lifecycle.closed) return Promise.reject(createError('ERR_WEBRTC_CLOSED', 'the WebRTC session is closed'))
    this.#gathering ??= gathered(this.#lifecycle, (done) => {
      if (this.#pc.gatheringState() === 'complete') return done()
      this.#pc.onGatheringStateChange((state) => {
        if (state === 'complete') done()
      })
      if (this.#pc.gatheringState() === 'complete') done()
    }, this.#timeoutMs)
    return this.#gathering.then(() => {
      const description = this.#pc.localDescription()
      if (description === null) throw createError('ERR_WEBRTC_CLOSED', 'the WebRTC session has no local description')
      // The offerer takes the DTLS client role (RFC 8842 lets an offer say `active`). With
      // `actpass` the answerer would be the client, and it starts ICE, then DTLS, as soon as it
      // has the offer: its ClientHello often reaches an offerer that has no answer yet and is
      // lost, and the handshake waits a full retransmission (measured here: 1 open in 10 took
      // ~1 s instead of ~3 ms).
      return this.#role === 'offerer' ? description.sdp.replace(/^a=setup:actpass(?=\r?$)/m, 'a=setup:active') : description.sdp
    })
  }

  async acceptAnswer(sdp: string): Promise<void> {
    if (this.#lifecycle.closed) throw createError('ERR_WEBRTC_CLOSED', 'the WebRTC session is closed')
    if (this.#role !== 'offerer' || this.#answered) throw createError('ERR_WEBRTC_SDP', 'only an offering session takes an answer, once')
    this.#answered = true
    try {
      this.#pc.setRemoteDescription(checkRemoteDescription(sdp), 'answer')
    } catch (error) {
      // libdatachannel sometimes fails the connection while it applies an answer (its ICE
      // transport is gone: "Got a remote candidate without ICE transport", about 1 open in 300
      // on loopback here); that is a connectivity failure before any DTLS, not a bad answer.
      // A DTLS handshake refused at once ends the same way. The connection's own events say
      // which (they arrive on the next turns): wait for them briefly, ICE failure otherwise.
      const state = this.#pc.state()
      if (state === 'closed' || state === 'failed') {
        const outcome = await Promise.race([this.#lifecycle.channel.then(() => undefined, (reason: unknown) => reason), sleep(1_000)])
        const failure = outcome instanceof ZtError ? outcome : createError('ERR_WEBRTC_ICE', 'the connection failed while the answer was applied', { cause: error })
        this.#lifecycle.fail(failure)
        throw failure
      }
      const refused = stackError('ERR_WEBRTC_SDP', 'the answer is not a usable session description', error)
      this.#lifecycle.fail(refused)
      throw refused
    }
  }

  close(): void {
    this.#lifecycle.close()
  }

  #adopt(dc: NdcChannel): void {
    this.#channels.push(dc)
    const channel = new Channel(dc.getLabel(), {
      sendText: (text) => void dc.sendMessage(text),
      sendBinary: (data) => void dc.sendMessageBinary(data),
      close: () => dc.close(),
    }, this.#maxMessageSize, () => this.#lifecycle.close())
    dc.onMessage((message) => {
      channel.received(typeof message === 'string' ? message : Buffer.from(message instanceof ArrayBuffer ? new Uint8Array(message) : message))
    })
    dc.onClosed(() => this.#lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the data channel closed')))
    dc.onError(() => this.#lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the data channel failed')))
    const open = () => this.#lifecycle.opened(channel)
    if (dc.isOpen()) open()
    else dc.onOpen(open)
  }

  #release(): void {
    live.delete(this)
    for (const dc of this.#channels) {
      try {
        dc.close()
      } catch {}
    }
    this.#pc.close()
  }
}
