/**
 * mDNS / DNS-SD discovery of ztmesh devices (`_ztmesh._tcp.local`) over multicast-dns.
 *
 * **A hint only.** Anything on the LAN can send an mDNS packet, so nothing here is trusted: an
 * announcement tells where a device *says* it listens. Identity is proven by the link:
 * `connectDiscovered(peer, …)` requires the server to be the announced device, of the announced
 * tenant (and certified as a gateway when announced as one), so the handshake's `verify_peer`
 * refuses a spoofed announcement. The announced SPKI hash may be given as a pin too, but a pin
 * taken from an unauthenticated hint adds nothing beyond the device id check.
 *
 * What an announcement can still do is bounded: every field is checked (`announcement.ts`: the
 * core's id rules, hex length, port range, TXT size), packets that do not decode or do not fit
 * are dropped and counted, the table of peers has a cap and TTLs are clamped, and answers to
 * queries are rate limited, so a flood costs memory and CPU within fixed limits and never
 * crashes the process. A device defends its own name: a goodbye or a different announcement of
 * it from anyone else is answered by a re-announcement. What mDNS cannot prevent is denial of
 * service on the LAN (a flooded table, a peer's entry kept flapping); the other paths of the
 * fallback chain remain.
 */

import type { RemoteInfo } from 'node:dgram'
import { isIPv4 } from 'node:net'
import { networkInterfaces } from 'node:os'

import type { Answer } from 'dns-packet'
import makeMdns from 'multicast-dns'

import { createError } from '../errors.js'
import { checkDeviceId, checkTenant, normalizeKeyDigest } from '../protocol/index.js'
import { hostTarget, instanceName, isUnicast, readResponse, records, type AdvertisedRecords, type DiscoveredPeer } from './announcement.js'
import { ADVERTISED_ROLES, DEFAULT_MAX_PEERS, DEFAULT_TTL_SECONDS, MAX_QUESTIONS_PER_PACKET, MAX_TTL_SECONDS, MDNS_PORT, MIN_ANSWER_INTERVAL_MS, REANNOUNCE_MS, SERVICE_TYPE, SWEEP_INTERVAL_MS } from './constants.js'

export type { DiscoveredPeer } from './announcement.js'

/** What {@link MdnsDiscovery.advertise} announces; `host` defaults to this machine's address. */
export type Advertised = Omit<DiscoveredPeer, 'host' | 'via'> & { host?: string }

/** Options of {@link MdnsDiscovery}. */
export interface MdnsDiscoveryInit {
  /** The IPv4 address of the interface to multicast on (`127.0.0.1` in a test namespace). Default: all. */
  interface?: string
  /**
   * The address the socket binds. Default `0.0.0.0`: a socket bound to an interface address
   * never receives multicast on Linux.
   */
  bind?: string
  /** UDP port, default 5353. Responses from any other source port are ignored (RFC 6762 §6). */
  port?: number
  /** TTL of advertised records, seconds (default 120, at most 600). */
  ttlSeconds?: number
  /** Most peers held while browsing (default 256). */
  maxPeers?: number
  /** Browse only this tenant: announcements of other tenants are ignored. */
  tenant?: string
}

/** Counters of what discovery received and dropped. */
export interface MdnsStats {
  /** mDNS packets received. */
  packets: number
  /** Packets that did not decode, or carried more records than {@link MAX_RECORDS_PER_PACKET}. */
  malformed: number
  /** Announcements of `_ztmesh._tcp.local` refused by a check (field, size, name, source port). */
  refused: number
  /** New peers dropped because the table was full. */
  tableFull: number
  /** Multicast answers sent to queries. */
  answered: number
  /** Socket errors reported as warnings (sends that failed, memberships that could not be added). */
  socketErrors: number
}

interface Advertisement extends AdvertisedRecords {
  lastSent: number
  /** The deferred answer to queries inside the answer interval. */
  pending: NodeJS.Timeout | undefined
  /** The re-announcements. */
  timers: NodeJS.Timeout[]
}

interface Entry {
  peer: DiscoveredPeer
  expiresAt: number
}

/**
 * Advertises this device and browses for others on `_ztmesh._tcp.local`.
 *
 * @example
 * ```ts
 * const mdns = new MdnsDiscovery({ tenant: 'hotel-1' })
 * mdns.advertise({ deviceId: 'tablet-9', tenant: 'hotel-1', spkiSha256, port: 7443, role: 'node' })
 * mdns.browse((peer) => console.log(JSON.stringify({ event: 'discovered', deviceId: peer.deviceId, via: peer.via })))
 * // identity is proven by the link, never by the announcement:
 * const link = await connectDiscovered(peer, { identity, trustPem })
 * await mdns.close() // sends goodbyes (TTL 0)
 * ```
 */
export class MdnsDiscovery {
  readonly #mdns: makeMdns.MulticastDNS
  readonly #ready: Promise<void>
  readonly #port: number
  readonly #ttl: number
  readonly #maxPeers: number
  readonly #interface: string | undefined
  readonly #tenant: string | undefined
  readonly #ads = new Map<string, Advertisement>()
  readonly #peers = new Map<string, Entry>()
  readonly #onPeer = new Set<(peer: DiscoveredPeer) => void>()
  readonly #onLost = new Set<(peer: DiscoveredPeer) => void>()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #stats: MdnsStats = { packets: 0, malformed: 0, refused: 0, tableFull: 0, answered: 0, socketErrors: 0 }
  #sweep: NodeJS.Timeout | undefined
  #browsing = false
  #closed: Promise<void> | undefined

  constructor(init: MdnsDiscoveryInit = {}) {
    this.#port = init.port ?? MDNS_PORT
    if (!Number.isInteger(this.#port) || this.#port < 1 || this.#port > 65535) throw createError('ERR_INVALID_ARG', 'port must be an integer from 1 to 65535')
    this.#ttl = init.ttlSeconds ?? DEFAULT_TTL_SECONDS
    if (!Number.isInteger(this.#ttl) || this.#ttl < 1 || this.#ttl > MAX_TTL_SECONDS) throw createError('ERR_INVALID_ARG', `ttlSeconds must be an integer from 1 to ${MAX_TTL_SECONDS}`)
    this.#maxPeers = init.maxPeers ?? DEFAULT_MAX_PEERS
    if (!Number.isInteger(this.#maxPeers) || this.#maxPeers < 1) throw createError('ERR_INVALID_ARG', 'maxPeers must be a positive integer')
    if (init.interface !== undefined && !isIPv4(init.interface)) throw createError('ERR_INVALID_ARG', 'interface must be an IPv4 address')
    if (init.tenant !== undefined) checkTenant(init.tenant)
    this.#interface = init.interface
    this.#tenant = init.tenant
    this.#mdns = makeMdns({
      port: this.#port,
      ...(init.interface !== undefined && { interface: init.interface }),
      bind: init.bind ?? '0.0.0.0',
      reuseAddr: true,
      loopback: true,
    })
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#mdns.once('ready', resolve)
      this.#mdns.once('error', (error: Error) => reject(createError('ERR_UNREACHABLE', `the mDNS socket could not bind: ${error.message}`, { cause: error })))
    })
    this.#ready.catch(() => {})
    // An EventEmitter with no 'error' listener throws: keep one for the whole life of the socket.
    this.#mdns.on('error', () => this.#stats.socketErrors++)
    this.#mdns.on('warning', (error: Error) => {
      if ((error as NodeJS.ErrnoException).syscall !== undefined) this.#stats.socketErrors++
      else this.#stats.malformed++ // dns-packet could not decode it
    })
    this.#mdns.on('query', (packet, rinfo) => this.#guard(() => this.#onQuery(packet, rinfo)))
    this.#mdns.on('response', (packet, rinfo) => this.#guard(() => this.#onResponse(packet, rinfo)))
  }

  /** Resolves once the socket is bound; rejects with `ERR_UNREACHABLE` when it cannot bind. */
  ready(): Promise<void> {
    return this.#ready
  }

  /**
   * Announces `peer` (twice, one second apart, then every half TTL) and answers queries for it
   * until {@link close}. Throws `ERR_IDENTITY` for a bad device id or tenant, `ERR_INVALID_ARG`
   * for a bad key digest, port, role or host, `ERR_CLOSED` after close.
   */
  advertise(peer: Advertised): void {
    if (this.#closed !== undefined) throw createError('ERR_CLOSED', 'the mDNS discovery is closed')
    checkDeviceId(peer.deviceId)
    checkTenant(peer.tenant)
    const spkiSha256 = normalizeKeyDigest(peer.spkiSha256)
    if (!Number.isInteger(peer.port) || peer.port < 1 || peer.port > 65535) throw createError('ERR_INVALID_ARG', 'port must be an integer from 1 to 65535')
    if (!(ADVERTISED_ROLES as readonly string[]).includes(peer.role)) throw createError('ERR_INVALID_ARG', `role must be one of ${ADVERTISED_ROLES.join(', ')}`)
    const host = peer.host ?? this.#defaultHost()
    if (typeof host !== 'string' || !isUnicast(host)) throw createError('ERR_INVALID_ARG', 'host must be a unicast IPv4 or IPv6 address')
    const instance = instanceName(peer.deviceId, peer.tenant)
    const previous = this.#ads.get(instance)
    if (previous !== undefined) this.#stop(previous)
    const ad: Advertisement = {
      instance,
      target: hostTarget(instance),
      peer: { deviceId: peer.deviceId, tenant: peer.tenant, spkiSha256, host, port: peer.port, role: peer.role },
      lastSent: 0,
      pending: undefined,
      timers: [],
    }
    this.#ads.set(instance, ad)
    this.#announce(ad)
    ad.timers.push(this.#later(REANNOUNCE_MS, () => this.#announce(ad)), this.#every((this.#ttl * 1000) / 2, () => this.#announce(ad)))
  }

  /** Stops the timers of a replaced advertisement. */
  #stop(ad: Advertisement): void {
    if (ad.pending !== undefined) clearTimeout(ad.pending)
    for (const timer of ad.timers) {
      clearTimeout(timer)
      this.#timers.delete(timer)
    }
  }

  /**
   * Browses: queries for `_ztmesh._tcp.local` now, after one second, then every half TTL, and
   * listens to every announcement. `onPeer` is called for each new peer and each change of one
   * (not for refreshes); `onLost` when a peer says goodbye or its TTL runs out. This device's
   * own advertisements are not reported.
   */
  browse(onPeer: (peer: DiscoveredPeer) => void, onLost?: (peer: DiscoveredPeer) => void): void {
    if (this.#closed !== undefined) throw createError('ERR_CLOSED', 'the mDNS discovery is closed')
    this.#onPeer.add(onPeer)
    if (onLost !== undefined) this.#onLost.add(onLost)
    if (this.#browsing) {
      for (const { peer } of this.#peers.values()) this.#call(onPeer, peer)
      return
    }
    this.#browsing = true
    const query = () => this.#mdns.query([{ name: SERVICE_TYPE, type: 'PTR' }])
    query()
    this.#later(REANNOUNCE_MS, query)
    this.#every((this.#ttl * 1000) / 2, query)
    this.#sweep = setInterval(() => this.#expire(), SWEEP_INTERVAL_MS)
    this.#sweep.unref()
  }

  /** The peers in the table now. */
  peers(): DiscoveredPeer[] {
    this.#expire()
    return [...this.#peers.values()].map(({ peer }) => ({ ...peer }))
  }

  /** A copy of the counters. */
  stats(): MdnsStats {
    return { ...this.#stats }
  }

  /** Sends a goodbye (TTL 0) for every advertisement, stops every timer and closes the socket. */
  close(): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    if (this.#sweep !== undefined) clearInterval(this.#sweep)
    for (const ad of this.#ads.values()) this.#stop(ad)
    const bound = await this.#ready.then(
      () => true,
      () => false,
    )
    if (bound && this.#ads.size > 0) {
      const answers = [...this.#ads.values()].flatMap((ad) => records(ad, 0)) as Answer[]
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        this.#mdns.respond({ answers }, () => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    this.#ads.clear()
    this.#peers.clear()
    this.#onPeer.clear()
    this.#onLost.clear()
    await new Promise<void>((resolve) => this.#mdns.destroy(resolve))
  }

  #onQuery(packet: makeMdns.QueryPacket, rinfo: RemoteInfo): void {
    this.#stats.packets++
    if (this.#ads.size === 0 || this.#closed !== undefined) return
    if (rinfo.port !== this.#port) return // legacy unicast queries are not answered
    const questions = Array.isArray(packet.questions) ? packet.questions.slice(0, MAX_QUESTIONS_PER_PACKET) : []
    const wanted = new Set<Advertisement>()
    for (const q of questions) {
      if (typeof q?.name !== 'string') continue
      const name = q.name.toLowerCase()
      const type = q.type as string
      for (const ad of this.#ads.values()) {
        if (name === SERVICE_TYPE && (type === 'PTR' || type === 'ANY')) wanted.add(ad)
        else if (name === ad.instance.toLowerCase() && (type === 'SRV' || type === 'TXT' || type === 'ANY')) wanted.add(ad)
        else if (name === ad.target && (type === 'A' || type === 'AAAA' || type === 'ANY')) wanted.add(ad)
      }
    }
    for (const ad of wanted) this.#answer(ad)
  }

  /** Answers for `ad`, at most once per {@link MIN_ANSWER_INTERVAL_MS}: queries inside it share one deferred answer. */
  #answer(ad: Advertisement): void {
    if (ad.pending !== undefined) return
    const wait = ad.lastSent + MIN_ANSWER_INTERVAL_MS - Date.now()
    if (wait <= 0) {
      this.#stats.answered++
      this.#announce(ad)
      return
    }
    ad.pending = setTimeout(() => {
      ad.pending = undefined
      if (this.#closed !== undefined || this.#ads.get(ad.instance) !== ad) return
      this.#stats.answered++
      this.#announce(ad)
    }, wait)
    ad.pending.unref()
  }

  #announce(ad: Advertisement): void {
    if (this.#closed !== undefined) return
    ad.lastSent = Date.now()
    this.#mdns.respond({ answers: records(ad, this.#ttl) as Answer[] })
  }

  #onResponse(packet: makeMdns.ResponsePacket, rinfo: RemoteInfo): void {
    this.#stats.packets++
    if ((!this.#browsing && this.#ads.size === 0) || this.#closed !== undefined) return
    const reading = readResponse(packet, rinfo, this.#port)
    if (reading.malformed) this.#stats.malformed++
    this.#stats.refused += reading.refused
    for (const instance of reading.gone) {
      const own = this.#ads.get(instance)
      if (own !== undefined) this.#answer(own) // a goodbye for this device, sent by someone else: defend the name
      else if (this.#browsing) this.#remove(instance)
    }
    const expiresFrom = Date.now()
    for (const { instance, peer, ttl } of reading.found) {
      const own = this.#ads.get(instance)
      if (own !== undefined) {
        // Our own announcement looped back, or another sender claiming our name: defend it.
        if (!samePeer({ ...own.peer, via: 'mdns' }, peer)) this.#answer(own)
        continue
      }
      if (!this.#browsing || (this.#tenant !== undefined && peer.tenant !== this.#tenant)) continue
      this.#upsert(instance, peer, expiresFrom + ttl * 1000)
    }
  }

  #upsert(instance: string, peer: DiscoveredPeer, expiresAt: number): void {
    const known = this.#peers.get(instance)
    if (known !== undefined) {
      known.expiresAt = expiresAt
      if (samePeer(known.peer, peer)) return
      known.peer = peer
    } else {
      if (this.#peers.size >= this.#maxPeers) {
        this.#expire()
        if (this.#peers.size >= this.#maxPeers) {
          this.#stats.tableFull++
          return
        }
      }
      this.#peers.set(instance, { peer, expiresAt })
    }
    for (const listener of this.#onPeer) this.#call(listener, peer)
  }

  #remove(instance: string): void {
    const entry = this.#peers.get(instance)
    if (entry === undefined) return
    this.#peers.delete(instance)
    for (const listener of this.#onLost) this.#call(listener, entry.peer)
  }

  #expire(): void {
    const now = Date.now()
    for (const [instance, entry] of this.#peers) if (entry.expiresAt <= now) this.#remove(instance)
  }

  /** The address announced when the caller gives none: the multicast interface's, else the first external IPv4, else loopback. */
  #defaultHost(): string {
    if (this.#interface !== undefined && this.#interface !== '0.0.0.0') return this.#interface
    for (const addresses of Object.values(networkInterfaces())) {
      for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
    }
    return '127.0.0.1'
  }

  #later(ms: number, f: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#closed === undefined) f()
    }, ms)
    timer.unref()
    this.#timers.add(timer)
    return timer
  }

  #every(ms: number, f: () => void): NodeJS.Timeout {
    const timer = setInterval(() => {
      if (this.#closed === undefined) f()
    }, ms)
    timer.unref()
    this.#timers.add(timer)
    return timer
  }

  /** A listener's exception must not take the socket (and the process) down. */
  #call(listener: (peer: DiscoveredPeer) => void, peer: DiscoveredPeer): void {
    try {
      listener({ ...peer })
    } catch {
      // The application's bug; discovery carries on.
    }
  }

  /** Whatever a hostile packet makes a handler throw, it is dropped and counted, never a crash. */
  #guard(f: () => void): void {
    try {
      f()
    } catch {
      this.#stats.malformed++
    }
  }
}

function samePeer(a: DiscoveredPeer, b: DiscoveredPeer): boolean {
  return a.deviceId === b.deviceId && a.tenant === b.tenant && a.spkiSha256 === b.spkiSha256 && a.host === b.host && a.port === b.port && a.role === b.role
}
