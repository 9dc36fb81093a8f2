/**
 * The two calls most services need: {@link createSecureServer} and {@link connectSecure}, over
 * TCP, with TLS (default) or a Noise link, every peer decided by the PKI, and revocations that
 * reach live connections.
 *
 * @example
 * ```ts
 * const server = createSecureServer({ identity, trustPem, policy: { expectedTenant: 'hotel-1' } }, (link) => link.pipe(link))
 * await server.listen(7443, '127.0.0.1')
 * const link = await connectSecure({ host: '127.0.0.1', port: 7443, identity, trustPem, signal })
 * server.setRevocations(revocations) // refuses new handshakes and closes live links of revoked peers
 * ```
 */

import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net'

import { createError } from '../errors.js'
import { credentialSigner, RevocationSet, TrustStore, type DeviceCredential, type PeerPolicy } from '../primitives/pki/index.js'
import { NoiseLinkContext, secureNoise, type NoiseCipher, type SecureStream } from './noise-link.js'
import { LiveLinks } from './revocations.js'
import { secureTls, TlsContext } from './tls.js'

/** What both ends of a secure link need. */
export interface SecureEndpointInit {
  /** `'tls'` (default) or `'noise'`. */
  protocol?: 'tls' | 'noise'
  /** This device: its chain and its signer. */
  identity: DeviceCredential
  /** The trust anchors, PEM. */
  trustPem: string
  /** Who peers must be. */
  policy?: Pick<PeerPolicy, 'expectedTenant' | 'expectedDevice' | 'pins'>
  /** Revocations in force at start; update with `setRevocations`. */
  revocations?: RevocationSet
  /** Post-quantum policy of TLS (`prefer` by default); Noise links are always hybrid. */
  pq?: 'require' | 'prefer' | 'off'
  /** The Noise cipher (see `NoiseLinkInit.cipher`): `auto` by default. */
  noiseCipher?: 'auto' | NoiseCipher
  /** Each handshake's time limit, ms. Default 10 s. */
  handshakeTimeoutMs?: number
}

/** A listening secure server. */
export interface SecureServer {
  readonly server: Server
  readonly links: LiveLinks
  listen(port: number, host?: string): Promise<AddressInfo>
  /** Applies new revocations: new handshakes are refused, live links of revoked peers closed. */
  setRevocations(revocations: RevocationSet): void
  close(): Promise<void>
}

/** Creates a server that secures every accepted connection and hands it to `onConnection`. */
export function createSecureServer(init: SecureEndpointInit, onConnection: (link: SecureStream) => void, onRefused?: (error: unknown) => void): SecureServer {
  const endpoint = new Endpoint('server', init)
  const links = new LiveLinks()
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {})
    endpoint.secure(socket).then(
      (link) => {
        links.add(link)
        onConnection(link)
      },
      (error: unknown) => onRefused?.(error),
    )
  })
  return {
    server,
    links,
    listen: (port, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => resolve(server.address() as AddressInfo))
      }),
    setRevocations: (revocations) => {
      endpoint.setRevocations(revocations)
      links.apply(revocations)
    },
    close: () =>
      new Promise((resolve) => {
        for (const link of links.list()) link.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Connects over TCP and secures the connection; rejects with a typed error. */
export async function connectSecure(init: SecureEndpointInit & { host: string; port: number; signal?: AbortSignal; serverDevice?: string }): Promise<SecureStream> {
  const endpoint = new Endpoint('client', init)
  const socket = await new Promise<Socket>((resolve, reject) => {
    if (init.signal?.aborted) return reject(createError('ERR_ABORTED', 'the connection was aborted'))
    const s = createConnection({ host: init.host, port: init.port, timeout: init.handshakeTimeoutMs ?? 10_000 }, () => resolve(s))
    s.once('error', (error) => reject(createError('ERR_UNREACHABLE', `cannot connect to ${init.host}:${init.port}`, { cause: error })))
    s.once('timeout', () => s.destroy(createError('ERR_UNREACHABLE', 'the connection timed out')))
    init.signal?.addEventListener('abort', () => s.destroy(createError('ERR_ABORTED', 'the connection was aborted')), { once: true })
  })
  socket.setTimeout(0)
  return endpoint.secure(socket, init.signal, init.serverDevice)
}

/** One side's settings, ready to secure sockets. */
class Endpoint {
  readonly #role: 'server' | 'client'
  readonly #init: SecureEndpointInit
  readonly #tls: TlsContext | undefined
  readonly #trust: TrustStore
  #revocations: RevocationSet
  /** The Noise links' shared settings, rebuilt when the revocations change. */
  #noise: NoiseLinkContext | undefined

  constructor(role: 'server' | 'client', init: SecureEndpointInit) {
    this.#role = role
    this.#init = init
    this.#trust = TrustStore.fromPem(init.trustPem)
    this.#revocations = init.revocations ?? new RevocationSet()
    const protocol = init.protocol ?? 'tls'
    if (protocol !== 'tls' && protocol !== 'noise') throw createError('ERR_INVALID_ARG', "protocol must be 'tls' or 'noise'")
    this.#tls = protocol === 'tls' ? new TlsContext(role, { identity: init.identity, trustPem: init.trustPem, ...(init.policy !== undefined && { policy: init.policy }), ...(init.pq !== undefined && { pq: init.pq }) }) : undefined
    if (this.#tls !== undefined && init.revocations !== undefined) this.#tls.setRevocations(init.revocations)
    credentialSigner(init.identity) // refuses an identity with no signer, whatever the protocol
    this.#noise = protocol === 'noise' ? this.#noiseContext() : undefined
  }

  secure(socket: Socket, signal?: AbortSignal, serverDevice?: string): Promise<SecureStream> {
    const timeout = this.#init.handshakeTimeoutMs ?? 10_000
    if (this.#tls !== undefined) {
      return secureTls(socket, this.#tls, { handshakeTimeoutMs: timeout, ...(signal !== undefined && { signal }), ...(serverDevice !== undefined && { serverDevice }) })
    }
    let context: NoiseLinkContext
    try {
      context = serverDevice !== undefined ? this.#noiseContext(serverDevice) : this.#noise!
    } catch (error) {
      socket.destroy()
      return Promise.reject(error)
    }
    return secureNoise(socket, context, this.#role === 'server' ? 'responder' : 'initiator', { handshakeTimeoutMs: timeout, ...(signal !== undefined && { signal }) })
  }

  setRevocations(revocations: RevocationSet): void {
    this.#revocations = revocations
    this.#tls?.setRevocations(revocations)
    if (this.#noise !== undefined) this.#noise = this.#noiseContext()
  }

  /** The Noise settings under the current revocations, for links to `serverDevice` if given. */
  #noiseContext(serverDevice?: string): NoiseLinkContext {
    return new NoiseLinkContext({
      identity: this.#init.identity,
      trust: this.#trust,
      revocations: this.#revocations,
      policy: { ...this.#init.policy, ...(serverDevice !== undefined && { expectedDevice: serverDevice }) },
      ...(this.#init.noiseCipher !== undefined && { cipher: this.#init.noiseCipher }),
    })
  }
}
