/**
 * The static bootstrap list: `HOST:PORT,…`, where HOST is an IPv4 address, a DNS name, or an
 * IPv6 address in brackets (`[fe80::1]:7443`). Like mDNS, it is a hint: who answers at an
 * address is proven by the link's handshake.
 */

import { isIPv4, isIPv6 } from 'node:net'

import { createError } from '../errors.js'
import { MAX_BOOTSTRAP_LENGTH, MAX_BOOTSTRAP_PEERS } from './constants.js'

/** One address of the bootstrap list. */
export interface BootstrapPeer {
  /** An IPv4 address, an IPv6 address (without brackets) or a lowercase DNS name. */
  host: string
  port: number
  via: 'bootstrap'
}

const PORT = /^[1-9][0-9]{0,4}$/
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/**
 * Parses a bootstrap list; duplicates are kept once, in their first place. Throws `ERR_CONFIG`
 * naming the entry (`bootstrap[2]: …`) for an empty list or entry, a missing or out-of-range
 * port, a bare IPv6 address, a host that is neither an address nor a DNS name, or more than
 * {@link MAX_BOOTSTRAP_PEERS} entries.
 *
 * @example
 * ```ts
 * bootstrapPeers('10.0.0.7:7443,[fe80::1]:7443,gw.hotel.lan:7443')
 * // [{ host: '10.0.0.7', port: 7443, via: 'bootstrap' }, { host: 'fe80::1', … }, { host: 'gw.hotel.lan', … }]
 * ```
 */
export function bootstrapPeers(list: string, key = 'bootstrap'): BootstrapPeer[] {
  if (typeof list !== 'string') throw createError('ERR_CONFIG', `${key}: must be a string of HOST:PORT entries separated by commas`)
  if (list.length > MAX_BOOTSTRAP_LENGTH) throw createError('ERR_CONFIG', `${key}: longer than ${MAX_BOOTSTRAP_LENGTH} characters`)
  const entries = list.split(',')
  if (entries.length > MAX_BOOTSTRAP_PEERS) throw createError('ERR_CONFIG', `${key}: more than ${MAX_BOOTSTRAP_PEERS} entries`)
  const peers: BootstrapPeer[] = []
  const seen = new Set<string>()
  entries.forEach((raw, index) => {
    const peer = parseEntry(raw.trim(), `${key}[${index}]`)
    const id = `${peer.host}|${peer.port}`
    if (seen.has(id)) return
    seen.add(id)
    peers.push(peer)
  })
  return peers
}

function parseEntry(entry: string, key: string): BootstrapPeer {
  if (entry === '') throw createError('ERR_CONFIG', `${key}: empty entry (expected HOST:PORT)`)
  let host: string
  let port: string
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']')
    if (close < 0 || entry[close + 1] !== ':') throw createError('ERR_CONFIG', `${key}: expected [IPv6]:PORT`)
    host = entry.slice(1, close)
    port = entry.slice(close + 2)
    if (!isIPv6(host)) throw createError('ERR_CONFIG', `${key}: not an IPv6 address inside the brackets`)
  } else {
    const colon = entry.lastIndexOf(':')
    if (colon < 0) throw createError('ERR_CONFIG', `${key}: missing :PORT`)
    host = entry.slice(0, colon)
    port = entry.slice(colon + 1)
    if (host.includes(':')) throw createError('ERR_CONFIG', `${key}: an IPv6 address must be written in brackets, [ADDRESS]:PORT`)
    if (!isIPv4(host)) {
      host = host.toLowerCase()
      if (!isDnsName(host)) throw createError('ERR_CONFIG', `${key}: the host is neither an IPv4 address nor a DNS name`)
    }
  }
  if (!PORT.test(port) || Number(port) > 65535) throw createError('ERR_CONFIG', `${key}: the port must be a number from 1 to 65535`)
  return { host, port: Number(port), via: 'bootstrap' }
}

/** RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens; not all digits (that would be a malformed IPv4 address). */
function isDnsName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false
  const labels = host.endsWith('.') ? host.slice(0, -1).split('.') : host.split('.')
  if (!labels.every((label) => LABEL.test(label))) return false
  return !/^[0-9.]+$/.test(host)
}
