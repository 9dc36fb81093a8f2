/**
 * The node's peer connector: discovery, the hub clients, the signaling guard and WebRTC joined
 * into verified data channels. See ./index.ts for the whole story.
 */


import { answerBody, connectSecure, requestOverStream, type SecureStream, type StreamAnswer } from '../channels/index.js'
import { connectDiscovered, MdnsDiscovery, runFallbackChain, type FallbackPath, type MdnsDiscoveryInit, type PathAttempt } from '../discovery/index.js'
import { createError, ZtError } from '../errors.js'
import { HubClient, type HubSignal } from '../hub/index.js'
import type { AuditSink } from '../policy/index.js'
import { inspectCertificate, type DeviceCredential, type PeerIdentity, type RevocationSet } from '../primitives/pki/index.js'
import { signAnswer, signOffer } from '../protocol/signal.js'
import { signedObjectDigest } from '../protocol/signed.js'
import { SignalingGuard } from '../signaling/index.js'
import { createStack, type DataChannel, type RtcSession, type WebRtcStack } from '../webrtc/index.js'
import { BOOTSTRAP_PROBE_TIMEOUT_MS, CHANNEL_LABEL, DEFAULT_DISCOVERY_WAIT_MS, DEFAULT_PATH_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS, MAX_ANSWER_BYTES, MAX_CHANNELS, MAX_PENDING_ANSWERS, OFFER_ROUTE } from './constants.js'

/** A `HOST:PORT` address, as the node's configuration parses it. */
export interface PeerAddress {
  host: string
  port: number
}

/** What the connector reads of the node's configuration (a structural subset of `NodeConfig`). */
export interface PeeringConfig {
  discovery: { mdns: boolean; bootstrap: readonly PeerAddress[] }
  /** The gateway's hub (`hub: HOST:PORT`); without it, the hub a gateway announces over mDNS. */
  hub?: PeerAddress | undefined
  /** The cloud hub (`cloud: HOST:PORT`). */
  cloud?: PeerAddress | undefined
}

/** What {@link WebRtcConnector.start} is given (the node's `PeerConnectorContext` fits it). */
export interface PeeringContext {
  /** This device's identity (its current certificate). */
  identity: DeviceCredential
  trustPem: string
  revocations: RevocationSet
  /** The node's audit log: the guard's refusals go there. */
  audit: AuditSink
  config: PeeringConfig
  /** Where the node's local API listens (advertised over mDNS). */
  localApi: PeerAddress
  /** One event line (`discovered`, `attempt`, `path`, `connected`, `message`, `closed`, `rejected`). */
  emit(event: { event: string; [field: string]: unknown }): void
  /** Fetches the CRL now and applies it everywhere (a hub's `revoked` notice triggers it). */
  refreshRevocations(): Promise<void>
  daemon?: { logger: { info(fields: object, message?: string): void; warn(fields: object, message?: string): void } }
}

/** Options of {@link WebRtcConnector}. */
export interface WebRtcConnectorInit {
  /** The WebRTC stack (default: node-datachannel on 127.0.0.1). */
  stack?: WebRtcStack
  /** mDNS socket options (a test namespace passes `interface: '127.0.0.1'`). */
  mdns?: MdnsDiscoveryInit
  /** Each path's time limit, ms. */
  pathTimeoutMs?: number
  /** The WebRTC session's time limit, ms. */
  sessionTimeoutMs?: number
  /** Presence lease lifetime on the hubs, ms. */
  leaseMs?: number
  /** Addresses of devices known by hand (the `manual` path), by device id. */
  manual?: Record<string, PeerAddress>
  /**
   * How long `connect` waits for the device to be discovered (hub presence, mDNS, bootstrap)
   * before it runs the chain anyway, ms. Default 30 s: a node told to `--connect` at start
   * waits for its peer to come up.
   */
  discoveryWaitMs?: number
}

/** An open, verified data channel to a peer, as {@link WebRtcConnector.connect} resolves it. */
export interface PeerLink {
  readonly peer: PeerIdentity
  readonly path: FallbackPath | 'incoming'
  send(data: string | Uint8Array): void
  close(): void
}

interface Opened {
  session: RtcSession
  channel: DataChannel
  peer: PeerIdentity
}

interface AnswerWaiter {
  deviceId: string
  hub: 'gateway' | 'cloud'
  resolve(answer: Buffer): void
}

interface Live {
  peer: PeerIdentity
  session: RtcSession
  channel: DataChannel
  closed: boolean
}

/**
 * The node's `PeerConnector`: verified WebRTC data channels to the devices of its tenant.
 *
 * @example
 * ```ts
 * await runNode({ connector: new WebRtcConnector() })
 * ```
 */
export class WebRtcConnector {
  readonly #init: WebRtcConnectorInit
  readonly #pathTimeoutMs: number
  readonly #sessionTimeoutMs: number
  #stack: WebRtcStack | undefined
  #context: PeeringContext | undefined
  #guard: SignalingGuard | undefined
  #revocations: RevocationSet | undefined
  #me: { deviceId: string; tenant: string } | undefined
  #mdns: MdnsDiscovery | undefined
  readonly #hubs = new Map<'gateway' | 'cloud', HubClient>()
  readonly #hubAddresses = new Map<'gateway' | 'cloud', PeerAddress & { serverDevice?: string }>()
  readonly #hubTimers = new Map<'gateway' | 'cloud', NodeJS.Timeout>()
  readonly #mdnsPeers = new Map<string, PeerAddress>()
  readonly #manual = new Map<string, PeerAddress>()
  readonly #discovered = new Set<string>()
  readonly #waiting = new Set<AnswerWaiter>()
  readonly #live = new Set<Live>()
  readonly #aborts = new AbortController()
  #answering = 0
  /** Answering sessions not open yet, by peer. */
  readonly #opening = new Map<string, Set<RtcSession>>()
  #stopped = false

  constructor(init: WebRtcConnectorInit = {}) {
    this.#init = init
    this.#pathTimeoutMs = init.pathTimeoutMs ?? DEFAULT_PATH_TIMEOUT_MS
    this.#sessionTimeoutMs = init.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS
    for (const [deviceId, address] of Object.entries(init.manual ?? {})) this.#manual.set(deviceId, address)
  }

  /** Builds the guard and the stack, starts discovery and connects the hubs (in the background). */
  async start(context: PeeringContext): Promise<void> {
    this.#context = context
    const facts = inspectCertificate(context.identity.certificateChainPem)
    if (facts.deviceId == null || facts.tenant == null) throw createError('ERR_INVALID_ARG', 'the identity certificate names no device id or tenant')
    this.#me = { deviceId: facts.deviceId, tenant: facts.tenant }
    this.#revocations = context.revocations
    this.#guard = new SignalingGuard({ identity: context.identity, trustPem: context.trustPem, revocations: context.revocations, audit: context.audit })
    this.#stack = this.#init.stack ?? createStack()
    const { config } = context
    if (config.hub !== undefined) this.#hubAddresses.set('gateway', config.hub)
    if (config.cloud !== undefined) this.#hubAddresses.set('cloud', config.cloud)
    for (const hub of this.#hubAddresses.keys()) this.#connectHub(hub)
    if (config.discovery.mdns) await this.#startMdns(facts.spkiSha256)
    for (const address of config.discovery.bootstrap) void this.#probe(address)
  }

  /** Stops discovery and the hubs and closes every channel. */
  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.#aborts.abort(createError('ERR_ABORTED', 'the connector stopped'))
    for (const timer of this.#hubTimers.values()) clearTimeout(timer)
    for (const live of [...this.#live]) this.#close(live, 'stopped')
    await Promise.all([...this.#hubs.values()].map((hub) => hub.close().catch(() => {})))
    this.#hubs.clear()
    await this.#mdns?.close().catch(() => {})
  }

  /** New revocations: the guard and the hubs decide under them; channels to revoked peers close now. */
  setRevocations(revocations: RevocationSet): void {
    this.#revocations = revocations
    this.#guard?.setRevocations(revocations)
    for (const hub of this.#hubs.values()) hub.setRevocations(revocations)
    for (const live of [...this.#live]) {
      const { serial, spkiSha256, issuerKeyId } = live.peer
      if (revocations.isRevoked(serial, spkiSha256, issuerKeyId)) {
        this.#context?.emit({ event: 'rejected', peer: live.peer.deviceId, code: 'ERR_CERT_REVOKED' })
        this.#close(live, 'ERR_CERT_REVOKED')
      }
    }
  }

  /** The devices this connector knows an address or a hub presence for. */
  known(): string[] {
    return [...this.#discovered].map((key) => key.split('\n')[0]!)
  }

  /**
   * Opens a verified data channel to `deviceId` through the fallback chain gateway → mdns →
   * cloud → manual; emits `attempt` for each path tried, `path` for the one that worked, then
   * `connected`. Rejects with the chain's error (its `attempts` say why each path failed).
   */
  async connect(deviceId: string, init: { signal?: AbortSignal } = {}): Promise<PeerLink> {
    const context = this.#running()
    const attempts: PathAttempt<Opened>[] = [
      { path: 'gateway', attempt: (signal) => this.#viaHub('gateway', deviceId, signal) },
      { path: 'mdns', attempt: (signal) => this.#viaLocalApi(this.#mdnsPeers.get(deviceId), 'mdns', deviceId, signal) },
      { path: 'cloud', attempt: (signal) => this.#viaHub('cloud', deviceId, signal) },
      { path: 'manual', attempt: (signal) => this.#viaLocalApi(this.#manual.get(deviceId), 'manual', deviceId, signal) },
    ]
    const signal = AbortSignal.any([this.#aborts.signal, ...(init.signal !== undefined ? [init.signal] : [])])
    // Right after start the peer may not be known yet: wait (bounded) until some source names it.
    await until(() => this.#knows(deviceId), signal, this.#init.discoveryWaitMs ?? DEFAULT_DISCOVERY_WAIT_MS)
    const result = await runFallbackChain(attempts, {
      timeoutMs: this.#pathTimeoutMs,
      signal,
      onAttempt: (attempt) => {
        const ms = Math.round(attempt.ms * 10) / 10
        context.daemon?.logger.info({ peer: deviceId, ...attempt, ms }, 'path attempt')
        context.emit({ event: 'attempt', peer: deviceId, path: attempt.path, ok: attempt.ok, ms, ...(attempt.code !== undefined && { code: attempt.code }) })
      },
      discard: (opened) => opened.session.close(),
    })
    context.emit({ event: 'path', peer: deviceId, path: result.path, ms: Math.round(result.ms * 10) / 10 })
    return this.#register(result.value, result.path)
  }

  /**
   * Answers an offer that came over the local API's mutual-TLS link from `linkPeer` (the node's
   * `POST /offer`): the guard (six checks, the link's peer, policy, replay, audit), an answering
   * session, the signed answer. Throws the guard's `ZtError` for a refused offer.
   */
  async handleOffer(offer: Buffer, linkPeer: PeerIdentity): Promise<Buffer> {
    return this.#answer(offer, linkPeer, 'incoming')
  }

  /** Whether a hub reports the device present, or mDNS, bootstrap or the manual list has an address for it. */
  #knows(deviceId: string): boolean {
    return this.#mdnsPeers.has(deviceId) || this.#manual.has(deviceId) || [...this.#hubs.values()].some((hub) => hub.peers().includes(deviceId))
  }

  // ── paths ─────────────────────────────────────────────────────────────────────────────────

  /** A signed offer through a hub, and its signed answer back through it. */
  async #viaHub(which: 'gateway' | 'cloud', deviceId: string, signal: AbortSignal): Promise<Opened> {
    // A configured hub still connecting gets a moment; an unconfigured one fails at once.
    if (this.#hubAddresses.has(which)) await until(() => this.#hubs.has(which), signal, HUB_WAIT_MS)
    const hub = this.#hubs.get(which)
    if (hub === undefined) throw createError('ERR_UNREACHABLE', `no ${which} hub is connected`)
    return this.#offer(deviceId, signal, (offer) =>
      new Promise<Buffer>((resolve, reject) => {
        const waiter: AnswerWaiter = { deviceId, hub: which, resolve: (answer) => (this.#waiting.delete(waiter), resolve(answer)) }
        this.#waiting.add(waiter)
        signal.addEventListener('abort', () => (this.#waiting.delete(waiter), reject(signal.reason)), { once: true })
        hub.send(deviceId, 'offer', offer)
      }),
    )
  }

  /** The peer's local API over mutual TLS (the link proves it is `deviceId`), `POST /offer`. */
  async #viaLocalApi(address: PeerAddress | undefined, path: 'mdns' | 'manual', deviceId: string, signal: AbortSignal): Promise<Opened> {
    if (address === undefined) throw createError('ERR_UNREACHABLE', `no ${path} address is known for ${deviceId}`)
    const context = this.#running()
    return this.#offer(deviceId, signal, async (offer) => {
      const link = await connectDiscovered(
        { deviceId, tenant: this.#me!.tenant, host: address.host, port: address.port },
        { identity: context.identity, trustPem: context.trustPem, revocations: this.#revocations!, signal, service: 'local-api', handshakeTimeoutMs: this.#pathTimeoutMs },
      )
      try {
        return await postOffer(link, offer, signal)
      } finally {
        link.destroy()
      }
    })
  }

  /**
   * {@link #offerOnce}, tried again (up to three times) with a new session and a new signed offer when the
   * connection fails between genuine peers (libdatachannel loses about 1 loopback open in 500,
   * seen as `ERR_WEBRTC_DTLS` or `ERR_WEBRTC_ICE`; see `openChannelPair`). The retry is verified
   * in full, so it never lets a wrong certificate through.
   */
  async #offer(deviceId: string, signal: AbortSignal, deliver: (offer: Buffer) => Promise<Buffer>): Promise<Opened> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#offerOnce(deviceId, signal, deliver)
      } catch (error) {
        const code = codeOf(error)
        if (attempt >= CONNECT_RETRIES || signal.aborted || (code !== 'ERR_WEBRTC_DTLS' && code !== 'ERR_WEBRTC_ICE')) throw error
        this.#context?.daemon?.logger.warn({ peer: deviceId, code }, 'the connection failed; retrying once with a new session')
      }
    }
  }

  async #offerOnce(deviceId: string, signal: AbortSignal, deliver: (offer: Buffer) => Promise<Buffer>): Promise<Opened> {
    const context = this.#running()
    const me = this.#me!
    const session = await this.#stack!.offer({ label: CHANNEL_LABEL, timeoutMs: this.#sessionTimeoutMs, signal })
    try {
      const sdp = await session.localDescription()
      const offer = signOffer({ from: me.deviceId, to: deviceId, tenant: me.tenant, sdp, epoch: 0 }, context.identity)
      const delivered = deliver(offer)
      delivered.catch(() => {}) // awaited below; never an unhandled rejection if the next line throws
      // The core names an offer by its signed-object digest (the answer must carry it): taken
      // while the offer travels.
      const digest = signedObjectDigest(offer)
      const answerBytes = await delivered
      let verified
      try {
        verified = this.#guard!.verifyAnswer(answerBytes, digest, { expectedFrom: deviceId })
      } catch (error) {
        context.emit({ event: 'rejected', peer: deviceId, code: codeOf(error) })
        throw error
      }
      await session.acceptAnswer(verified.answer.sdp)
      const channel = await session.channel
      return { session, channel, peer: verified.peer }
    } catch (error) {
      session.close()
      throw error
    }
  }

  /** The answering side, for the local API and the hubs. */
  async #answer(offer: Buffer, linkPeer: Pick<PeerIdentity, 'deviceId' | 'tenant'>, path: 'incoming'): Promise<Buffer> {
    const context = this.#running()
    const me = this.#me!
    const { peer, offer: body, digest } = this.#guard!.verifyOffer(offer, { linkPeer: linkPeer as PeerIdentity })
    // A new offer from a peer supersedes its sessions still opening: the peer gave them up (a
    // retry after a failed handshake), and a stale session probing the peer's recycled UDP ports
    // would break the new handshake.
    for (const stale of this.#opening.get(peer.deviceId) ?? []) stale.close()
    // Each verified offer costs a session until it opens or times out: their number is capped.
    if (this.#answering >= MAX_PENDING_ANSWERS) throw createError('ERR_RATE_LIMITED', 'too many channels are opening; retry later')
    this.#answering++
    const session = await this.#stack!.answer(body.sdp, { timeoutMs: this.#sessionTimeoutMs, signal: this.#aborts.signal }).catch((error: unknown) => {
      this.#answering--
      throw error
    })
    const opening = this.#opening.get(peer.deviceId) ?? new Set<RtcSession>()
    this.#opening.set(peer.deviceId, opening.add(session))
    const settled = (): void => {
      this.#answering--
      opening.delete(session)
      if (opening.size === 0 && this.#opening.get(peer.deviceId) === opening) this.#opening.delete(peer.deviceId)
    }
    session.channel.then(settled, settled)
    try {
      const sdp = await session.localDescription()
      const answer = signAnswer({ from: me.deviceId, to: peer.deviceId, tenant: me.tenant, sdp, epoch: 0, offerDigest: digest }, context.identity)
      session.channel.then(
        (channel) => this.#register({ session, channel, peer }, path),
        (error: unknown) => context.daemon?.logger.warn({ peer: peer.deviceId, code: codeOf(error) }, 'an answered channel did not open'),
      )
      return answer
    } catch (error) {
      session.close()
      throw error
    }
  }

  // ── channels ──────────────────────────────────────────────────────────────────────────────

  #register(opened: Opened, path: FallbackPath | 'incoming'): PeerLink {
    const context = this.#running()
    const { peer, session, channel } = opened
    const live: Live = { peer, session, channel, closed: false }
    const revoked = this.#revocations?.isRevoked(peer.serial, peer.spkiSha256, peer.issuerKeyId) === true
    if (this.#stopped || revoked || this.#live.size >= MAX_CHANNELS) {
      session.close()
      if (revoked) context.emit({ event: 'rejected', peer: peer.deviceId, code: 'ERR_CERT_REVOKED' })
      throw createError(revoked ? 'ERR_CERT_REVOKED' : 'ERR_CLOSED', revoked ? 'the peer was revoked while the channel opened' : 'the connector holds no more channels')
    }
    this.#live.add(live)
    channel.on('message', (data) => context.emit({ event: 'message', from: peer.deviceId, data: typeof data === 'string' ? data : data.toString('utf8') }))
    channel.on('close', () => this.#close(live, 'closed'))
    context.emit({ event: 'connected', peer: { deviceId: peer.deviceId, tenant: peer.tenant, roles: peer.roles, serial: peer.serial }, transport: 'webrtc', path })
    return {
      peer,
      path,
      send: (data) => channel.send(data),
      close: () => this.#close(live, 'closed'),
    }
  }

  #close(live: Live, reason: string): void {
    if (live.closed) return
    live.closed = true
    this.#live.delete(live)
    live.session.close()
    this.#context?.emit({ event: 'closed', peer: live.peer.deviceId, reason })
  }

  // ── discovery and hubs ────────────────────────────────────────────────────────────────────

  #discoveredOnce(deviceId: string, via: 'mdns' | 'bootstrap' | 'gateway'): void {
    const key = `${deviceId}\n${via}`
    if (this.#discovered.has(key)) return
    this.#discovered.add(key)
    this.#context?.emit({ event: 'discovered', deviceId, via })
  }

  async #startMdns(spkiSha256: string): Promise<void> {
    const context = this.#running()
    const me = this.#me!
    const mdns = new MdnsDiscovery({ ...this.#init.mdns, tenant: me.tenant })
    this.#mdns = mdns
    await mdns.ready()
    const host = context.localApi.host === '0.0.0.0' || context.localApi.host === '::' ? undefined : context.localApi.host
    mdns.advertise({ deviceId: me.deviceId, tenant: me.tenant, spkiSha256, port: context.localApi.port, role: 'node', ...(host !== undefined && { host }) })
    mdns.browse((peer) => {
      if (peer.deviceId === me.deviceId) return
      if (peer.role === 'gateway') {
        // The gateway's hub, unless one is configured; the link proves the gateway's identity.
        if (!this.#hubAddresses.has('gateway')) {
          this.#hubAddresses.set('gateway', { host: peer.host, port: peer.port, serverDevice: peer.deviceId })
          this.#connectHub('gateway')
        }
        return
      }
      this.#mdnsPeers.set(peer.deviceId, { host: peer.host, port: peer.port })
      this.#discoveredOnce(peer.deviceId, 'mdns')
    })
  }

  /** Learns who answers at a bootstrap address: a mutual-TLS handshake names the device. */
  async #probe(address: PeerAddress): Promise<void> {
    const context = this.#running()
    try {
      const link = await connectSecure({ ...address, identity: context.identity, trustPem: context.trustPem, revocations: this.#revocations!, signal: this.#aborts.signal, handshakeTimeoutMs: BOOTSTRAP_PROBE_TIMEOUT_MS, service: 'local-api' })
      const { deviceId } = link.peer
      link.destroy()
      if (deviceId === this.#me!.deviceId) return
      if (!this.#manual.has(deviceId)) this.#manual.set(deviceId, address)
      this.#discoveredOnce(deviceId, 'bootstrap')
    } catch (error) {
      context.daemon?.logger.warn({ host: address.host, port: address.port, code: codeOf(error) }, 'a bootstrap address did not prove a device of this tenant')
    }
  }

  #connectHub(which: 'gateway' | 'cloud', delayMs = 0): void {
    if (this.#stopped) return
    clearTimeout(this.#hubTimers.get(which))
    const timer = setTimeout(() => void this.#openHub(which), delayMs)
    timer.unref()
    this.#hubTimers.set(which, timer)
  }

  async #openHub(which: 'gateway' | 'cloud'): Promise<void> {
    const context = this.#running()
    const address = this.#hubAddresses.get(which)
    if (address === undefined || this.#stopped || this.#hubs.has(which)) return
    let hub: HubClient
    try {
      hub = await HubClient.connect({
        host: address.host,
        port: address.port,
        identity: context.identity,
        trustPem: context.trustPem,
        revocations: this.#revocations!,
        signal: this.#aborts.signal,
        ...(address.serverDevice !== undefined && { serverDevice: address.serverDevice }),
        ...(this.#init.leaseMs !== undefined && { leaseMs: this.#init.leaseMs }),
      })
    } catch (error) {
      context.daemon?.logger.warn({ hub: which, code: codeOf(error) }, 'the hub is unreachable; retrying')
      this.#connectHub(which, 2_000)
      return
    }
    if (this.#stopped) return void hub.close()
    this.#hubs.set(which, hub)
    context.daemon?.logger.info({ hub: which, hubId: hub.hubId }, 'connected to the hub')
    hub.on('signal', (message: HubSignal) => this.#onHubSignal(which, hub, message))
    hub.on('presence', ({ deviceId, online }) => {
      if (online && which === 'gateway') this.#discoveredOnce(deviceId, 'gateway')
    })
    hub.on('revoked', () => void context.refreshRevocations().catch(() => {}))
    hub.on('close', () => {
      if (this.#hubs.get(which) === hub) this.#hubs.delete(which)
      this.#connectHub(which, 1_000)
    })
    for (const deviceId of hub.peers()) if (which === 'gateway') this.#discoveredOnce(deviceId, 'gateway')
  }

  #onHubSignal(which: 'gateway' | 'cloud', hub: HubClient, message: HubSignal): void {
    const context = this.#running()
    if (message.kind === 'answer') {
      const waiter = [...this.#waiting].find((w) => w.hub === which && w.deviceId === message.from)
      waiter?.resolve(message.object)
      return
    }
    if (message.kind !== 'offer') return
    // The hub stamped `from` from its link: the offer must be signed by that device.
    this.#answer(message.object, { deviceId: message.from, tenant: this.#me!.tenant }, 'incoming').then(
      (answer) => {
        try {
          hub.send(message.from, 'answer', answer)
        } catch (error) {
          context.daemon?.logger.warn({ peer: message.from, code: codeOf(error) }, 'the answer could not be sent through the hub')
        }
      },
      (error: unknown) => context.emit({ event: 'rejected', peer: message.from, code: codeOf(error) }),
    )
  }

  #running(): PeeringContext {
    if (this.#context === undefined) throw createError('ERR_CLOSED', 'the connector is not started')
    return this.#context
  }
}

/** Creates the node's peer connector. */
export function createWebRtcConnector(init: WebRtcConnectorInit = {}): WebRtcConnector {
  return new WebRtcConnector(init)
}

/** Extra tries of a connection that failed in ICE or DTLS. */
const CONNECT_RETRIES = 3

/** How long a path waits for its configured hub to connect, ms. */
const HUB_WAIT_MS = 3_000

/** Resolves once `condition` holds, or after `ms`, or when `signal` aborts (never rejects). */
async function until(condition: () => boolean, signal: AbortSignal, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition() && !signal.aborted && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
}

function codeOf(error: unknown): string {
  return error instanceof ZtError ? error.code : 'ERR_INTERNAL'
}

/** `POST /offer` over an established link: the signed answer, or the peer's refusal as its `ZtError`. */
async function postOffer(link: SecureStream, offer: Buffer, signal: AbortSignal): Promise<Buffer> {
  let answer: StreamAnswer
  try {
    answer = await requestOverStream(link, { method: 'POST', path: OFFER_ROUTE, headers: { 'content-type': 'application/octet-stream' }, body: offer }, { maxAnswerBytes: MAX_ANSWER_BYTES, signal })
  } catch (error) {
    throw error instanceof ZtError ? error : createError('ERR_UNREACHABLE', 'the offer could not be posted', { cause: error })
  }
  return answerBody(answer, 'the peer', OFFER_ROUTE)
}
