// The werift stack, for interoperability tests and the benchmark ONLY: it is not shipped.
//
// Why: werift 0.24.4 compares the peer's certificate with the SDP fingerprint only after its
// DTLS handshake has finished (RTCDtlsTransport.start → verifyRemoteCertificateFingerprint),
// and, worse, its DTLS never checks that the peer holds that certificate's key: as a server it
// does not verify the client's CertificateVerify signature (flight6 only logs it), as a client it
// does not verify the ServerKeyExchange signature (flight5 only stores the key). A certificate
// travels in clear in DTLS 1.2, so anyone who has seen it can present it and pass werift's
// fingerprint comparison. Enforcing the fingerprint in the handshake would not help without
// those signatures, and verifying handshake signatures in TypeScript would break the project's
// layer rule. `createStack('werift')` therefore refuses; this factory says in its name that it
// is for tests.

import type { RTCDataChannel, RTCPeerConnection } from 'werift'

import { createError } from '../errors.js'
import { DEFAULT_LABEL } from './constants.js'
import { checkRemoteDescription, lazyModule, StackSession, stackError } from './session.js'
import type { AnswerInit, OfferInit, RtcSession, StackInit, WebRtcStack } from './index.js'

type Werift = typeof import('werift')
/** werift, loaded on first use (it is large, and only tests and benchmarks use it). */
const load = lazyModule<Werift>(() => import('werift'))

/** Creates the werift stack. Not for production: see the top of this file. */
export function createWeriftStack(init: Required<StackInit>): WebRtcStack {
  return {
    name: 'werift',
    async offer(offer: OfferInit = {}): Promise<RtcSession> {
      const session = new WeriftSession(await load(), init, offer.timeoutMs ?? init.timeoutMs, offer.signal)
      session.createChannel(offer.label ?? DEFAULT_LABEL)
      await session.createOffer()
      return session
    },
    async answer(remoteOfferSdp: string, answer: AnswerInit = {}): Promise<RtcSession> {
      const sdp = checkRemoteDescription(remoteOfferSdp)
      const session = new WeriftSession(await load(), init, answer.timeoutMs ?? init.timeoutMs, answer.signal)
      await session.applyOffer(sdp)
      return session
    },
  }
}

class WeriftSession extends StackSession implements RtcSession {
  readonly #pc: RTCPeerConnection
  readonly #channels: RTCDataChannel[] = []
  readonly #bindAddress: string

  constructor(werift: Werift, init: Required<StackInit>, timeoutMs: number, signal?: AbortSignal) {
    super(timeoutMs, init.maxMessageSize, signal)
    this.#bindAddress = init.bindAddress
    this.#pc = new werift.RTCPeerConnection({
      iceServers: [],
      iceAdditionalHostAddresses: [init.bindAddress],
      iceInterfaceAddresses: { udp4: init.bindAddress },
      iceUseIpv6: false,
      maxMessageSize: init.maxMessageSize,
    } as ConstructorParameters<Werift['RTCPeerConnection']>[0])
    this.#pc.iceConnectionStateChange.subscribe((state) => this.iceStateChanged(state))
    this.#pc.connectionStateChange.subscribe((state) => this.connectionStateChanged(state))
    this.#pc.onDataChannel.subscribe((dc) => this.#take(dc, true))
  }

  createChannel(label: string): void {
    this.role = 'offerer'
    this.#take(this.#pc.createDataChannel(label), false)
  }

  async createOffer(): Promise<void> {
    try {
      await this.#pc.setLocalDescription(await this.#pc.createOffer())
    } catch (error) {
      const failed = stackError('ERR_WEBRTC_SDP', 'werift could not create an offer', error)
      this.lifecycle.fail(failed)
      throw failed
    }
  }

  async applyOffer(sdp: string): Promise<void> {
    this.role = 'answerer'
    try {
      await this.#pc.setRemoteDescription({ type: 'offer', sdp })
      await this.#pc.setLocalDescription(await this.#pc.createAnswer())
    } catch (error) {
      const refused = stackError('ERR_WEBRTC_SDP', 'the offer is not a usable session description', error)
      this.lifecycle.fail(refused)
      throw refused
    }
  }

  protected whenGathered(done: () => void): void {
    if (this.#pc.iceGatheringState === 'complete') return done()
    const { unSubscribe } = this.#pc.iceGatheringStateChange.subscribe((state) => {
      if (state === 'complete') {
        unSubscribe()
        done()
      }
    })
  }

  protected currentDescription(): string | undefined {
    // werift gathers on every interface besides the bind address (its interface filter keeps
    // all when loopback is asked for): offer only the bind address, as node-datachannel does.
    return this.#pc.localDescription?.sdp
      .split('\r\n')
      .filter((line) => !line.startsWith('a=candidate:') || line.split(' ')[4] === this.#bindAddress)
      .join('\r\n')
  }

  protected async applyAnswer(sdp: string): Promise<void> {
    await this.#pc.setRemoteDescription({ type: 'answer', sdp })
  }

  protected release(): void {
    for (const dc of this.#channels) {
      try {
        dc.close()
      } catch {}
    }
    this.#pc.close().catch(() => {})
  }

  #take(dc: RTCDataChannel, incoming: boolean): void {
    this.#channels.push(dc)
    const channel = this.adopt(dc.label, {
      sendText: (text) => dc.send(text),
      sendBinary: (data) => dc.send(Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
      close: () => dc.close(),
    }, incoming)
    if (channel === undefined) {
      dc.close()
      return
    }
    dc.onMessage.subscribe((message) => channel.received(message))
    dc.stateChanged.subscribe((state) => {
      if (state === 'open') this.lifecycle.opened(channel)
      if (state === 'closed' || state === 'closing') this.lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the data channel closed'))
    })
    if (dc.readyState === 'open') this.lifecycle.opened(channel)
  }
}
