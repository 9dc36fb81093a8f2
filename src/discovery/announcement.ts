/**
 * The records of `_ztmesh._tcp.local`, sans-IO: what an advertisement announces
 * ({@link records}) and what a received response says ({@link readResponse}: the peers it
 * announces, the instances it says goodbye to, and how many of its records were refused). The
 * DNS wire format itself is multicast-dns's (dns-packet); everything a decoded packet carries is
 * checked here before anything believes it, and nothing here throws on what a packet holds.
 */

import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

import { checkDeviceId, checkTenant } from '../protocol/index.js'
import { DEFAULT_TTL_SECONDS, INSTANCE_SUFFIX, MAX_RECORDS_PER_PACKET, MAX_TTL_SECONDS, MAX_TXT_BYTES, MAX_TXT_ENTRIES, SERVICE_TYPE, TXT_VERSION } from './constants.js'

/** A device found by discovery. A hint: the link proves who answers at `host:port`. */
export interface DiscoveredPeer {
  deviceId: string
  tenant: string
  /** SHA-256 of the certificate's SubjectPublicKeyInfo, 64 lowercase hex digits, as announced. */
  spkiSha256: string
  host: string
  port: number
  role: 'node' | 'gateway'
  via: 'mdns' | 'bootstrap' | 'gateway'
}

/**
 * A DNS resource record as multicast-dns (dns-packet) encodes and decodes it: only the fields read
 * here, and `data` unknown until checked. (Our own type, so the published declarations do not
 * depend on dns-packet's.)
 */
export interface MdnsRecord {
  name: string
  type: string
  ttl?: number
  flush?: boolean
  data?: unknown
}

/** What the records of one advertisement are made of. */
export interface AdvertisedRecords {
  instance: string
  target: string
  peer: Omit<DiscoveredPeer, 'via'>
}

/** What one response packet says about `_ztmesh._tcp.local`. */
export interface ResponseReading {
  /** More records than {@link MAX_RECORDS_PER_PACKET}: nothing in it was read. */
  malformed: boolean
  /** Records or announcements refused by a check. */
  refused: number
  /** Instances that said goodbye (TTL 0). */
  gone: string[]
  /** Announcements that passed every check, with their clamped TTL, seconds. */
  found: { instance: string; peer: DiscoveredPeer; ttl: number }[]
}

/**
 * Reads a decoded response: PTR goodbyes, SRV+TXT pairs of one instance (with the address record
 * their SRV names, else the packet's source address), each checked by {@link checkAnnouncement}.
 * A response from a source port other than `mdnsPort` that speaks of our service is refused
 * whole (RFC 6762 §6: only port 5353 answers multicast). Records of other services are ignored.
 */
export function readResponse(packet: { answers?: unknown; additionals?: unknown }, source: { address: string; port: number }, mdnsPort: number): ResponseReading {
  const reading: ResponseReading = { malformed: false, refused: 0, gone: [], found: [] }
  const answers = Array.isArray(packet.answers) ? (packet.answers as unknown[]) : []
  const additionals = Array.isArray(packet.additionals) ? (packet.additionals as unknown[]) : []
  if (answers.length + additionals.length > MAX_RECORDS_PER_PACKET) return { ...reading, malformed: true }
  const all = [...answers, ...additionals].filter((r): r is MdnsRecord => typeof r === 'object' && r !== null && typeof (r as { name?: unknown }).name === 'string')
  const ours = all.filter((r) => isOurs(r.name))
  if (ours.length === 0) return reading // another service's traffic
  if (source.port !== mdnsPort) return { ...reading, refused: 1 }
  const srv = new Map<string, MdnsRecord>()
  const txt = new Map<string, MdnsRecord>()
  const gone = new Set<string>()
  for (const r of ours) {
    const name = r.name
    const ttl = r.ttl
    if (r.type === 'PTR' && name.toLowerCase() === SERVICE_TYPE) {
      const data = r.data
      if (typeof data !== 'string' || !data.endsWith(INSTANCE_SUFFIX)) reading.refused++
      else if (ttl === 0) gone.add(data)
    } else if (r.type === 'SRV' && name.endsWith(INSTANCE_SUFFIX)) {
      if (ttl === 0) gone.add(name)
      else if (!srv.has(name)) srv.set(name, r)
    } else if (r.type === 'TXT' && name.endsWith(INSTANCE_SUFFIX)) {
      if (ttl === 0) gone.add(name)
      else if (!txt.has(name)) txt.set(name, r)
    } else if (r.type !== 'NSEC') {
      reading.refused++ // a record of another type under our names, or a PTR elsewhere
    }
  }
  reading.gone = [...gone]
  for (const [instance, s] of srv) {
    const t = txt.get(instance)
    if (t === undefined || gone.has(instance)) continue // a lone SRV: its TXT comes in another packet or not at all
    const checked = checkAnnouncement(instance, s, t, all, source)
    if (typeof checked === 'string') reading.refused++
    else reading.found.push({ instance, ...checked })
  }
  return reading
}

/** The DNS-SD instance name of a device: `<deviceId>@<tenant>._ztmesh._tcp.local` (`@` is in neither rule, so the name is unambiguous). */
export function instanceName(deviceId: string, tenant: string): string {
  return `${deviceId}@${tenant}${INSTANCE_SUFFIX}`
}

/** The host name an advertisement's SRV points to: a hash of the instance, a valid DNS label whatever the ids hold. */
export function hostTarget(instance: string): string {
  return `zt-${createHash('sha256').update(instance).digest('hex').slice(0, 16)}.local`
}

/** The PTR, SRV, TXT and A/AAAA records of an advertisement; `ttl` 0 is the goodbye. */
export function records(ad: AdvertisedRecords, ttl: number): MdnsRecord[] {
  const { peer } = ad
  return [
    { name: SERVICE_TYPE, type: 'PTR', ttl, data: ad.instance },
    { name: ad.instance, type: 'SRV', ttl, flush: true, data: { port: peer.port, target: ad.target, priority: 0, weight: 0 } },
    {
      name: ad.instance,
      type: 'TXT',
      ttl,
      flush: true,
      data: [`v=${TXT_VERSION}`, `id=${peer.deviceId}`, `tenant=${peer.tenant}`, `spki=${peer.spkiSha256}`, `port=${peer.port}`, `role=${peer.role}`],
    },
    isIPv4(peer.host) ? { name: ad.target, type: 'A', ttl, flush: true, data: peer.host } : { name: ad.target, type: 'AAAA', ttl, flush: true, data: peer.host },
  ]
}

function isOurs(name: string): boolean {
  const lower = name.toLowerCase()
  return lower === SERVICE_TYPE || lower.endsWith(INSTANCE_SUFFIX)
}

const SPKI = /^[0-9a-f]{64}$/
const PORT = /^[1-9][0-9]{0,4}$/
const TXT_KEYS = new Set(['v', 'id', 'tenant', 'spki', 'port', 'role'])

/**
 * The peer an SRV and a TXT record of one instance describe, with its TTL (clamped), or the
 * reason it is refused. Every field is checked: the TXT's size and shape, the core's id rules,
 * the key digest's length, the port's range and agreement with the SRV, the role, and that the
 * instance name is the one its TXT fields make.
 */
export function checkAnnouncement(instance: string, srv: MdnsRecord, txt: MdnsRecord, all: readonly MdnsRecord[], rinfo: { address: string }): { peer: DiscoveredPeer; ttl: number } | string {
  const s = srv.data as { port?: unknown; target?: unknown } | undefined
  if (typeof s !== 'object' || s === null || typeof s.port !== 'number' || typeof s.target !== 'string') return 'SRV data malformed'
  const strings = txt.data
  if (!Array.isArray(strings) || strings.length > MAX_TXT_ENTRIES) return 'TXT has too many strings'
  let size = 0
  const fields = new Map<string, string>()
  for (const item of strings) {
    if (!Buffer.isBuffer(item) && typeof item !== 'string') return 'TXT string of a wrong type'
    const bytes = Buffer.isBuffer(item) ? item : Buffer.from(item)
    size += bytes.length + 1
    if (size > MAX_TXT_BYTES) return 'TXT too large'
    if (!bytes.every((b) => b >= 0x20 && b < 0x7f)) return 'TXT not printable ASCII'
    const text = bytes.toString('ascii')
    const eq = text.indexOf('=')
    if (eq <= 0) return 'TXT string without key'
    const key = text.slice(0, eq).toLowerCase()
    if (fields.has(key)) return 'TXT key repeated'
    fields.set(key, text.slice(eq + 1))
  }
  for (const key of TXT_KEYS) if (!fields.has(key)) return `TXT lacks ${key}`
  if (fields.get('v') !== TXT_VERSION) return 'TXT version unknown'
  const deviceId = fields.get('id')!
  const tenant = fields.get('tenant')!
  try {
    checkDeviceId(deviceId)
    checkTenant(tenant)
  } catch {
    return 'device id or tenant breaks the id rules'
  }
  const spkiSha256 = fields.get('spki')!
  if (!SPKI.test(spkiSha256)) return 'spki is not 64 lowercase hex digits'
  const portText = fields.get('port')!
  if (!PORT.test(portText) || Number(portText) > 65535) return 'port out of range'
  const port = Number(portText)
  if (s.port !== port) return 'SRV and TXT ports differ'
  const role = fields.get('role')!
  if (role !== 'node' && role !== 'gateway') return 'role unknown'
  if (instance !== instanceName(deviceId, tenant)) return 'instance name does not match its TXT'
  const target = s.target.toLowerCase()
  const address = all.find((r) => typeof r?.name === 'string' && r.name.toLowerCase() === target && (r.type === 'A' || r.type === 'AAAA'))
  let host = rinfo.address
  if (address !== undefined) {
    const data = address.data
    if (typeof data !== 'string' || !(address.type === 'A' ? isIPv4(data) : isIPv6(data))) return 'address record malformed'
    host = data
  }
  if (!isUnicast(host)) return 'the address is not a unicast address'
  const ttl = Math.min(clampTtl(srv.ttl), clampTtl(txt.ttl))
  return { peer: { deviceId, tenant, spkiSha256, host, port, role, via: 'mdns' }, ttl }
}

/**
 * Whether `host` is an IPv4 or IPv6 address a device could listen on: not unspecified (`0.0.0.0`,
 * `::`, which connect to this machine), not multicast or broadcast. Loopback stays allowed: devices
 * on one machine, and tests.
 */
export function isUnicast(host: string): boolean {
  if (isIPv4(host)) {
    const first = Number(host.split('.')[0])
    return first !== 0 && first < 224
  }
  if (isIPv6(host)) {
    const lower = host.toLowerCase()
    return !/^(0*:)*:?0*$/.test(lower) && !lower.startsWith('ff')
  }
  return false
}

function clampTtl(ttl: unknown): number {
  return typeof ttl === 'number' && Number.isFinite(ttl) ? Math.min(Math.max(Math.floor(ttl), 1), MAX_TTL_SECONDS) : DEFAULT_TTL_SECONDS
}
