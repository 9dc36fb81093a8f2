/**
 * The two calls most services need: {@link createSecureServer} and {@link connectSecure}, over
 * TCP, with TLS (default) or a Noise link, every peer decided by the PKI and then by the policy
 * decision point (zero trust by default: peers of this device's own tenant only; anything else
 * through an explicit `access` policy, see docs/policy.md), and revocations that
 * reach live connections: a server's through `setRevocations`, a client's through the
 * {@link LiveLinks} it registers them in (`links`) and applies revocations to.
 *
 * @example
 * ```ts
 * const server = createSecureServer({ identity, trustPem, policy: { expectedTenant: 'hotel-1' } }, (link) => link.pipe(link))
 * await server.listen(7443, '127.0.0.1')
 * const link = await connectSecure({ host: '127.0.0.1', port: 7443, identity, trustPem, signal })
 * server.setRevocations(revocations) // refuses new handshakes and closes live links of revoked peers
 * const links = new LiveLinks()
 * const client = await connectSecure({ host: '127.0.0.1', port: 7443, identity, trustPem, links })
 * links.apply(revocations) // closes the client's links to revoked peers
 * ```
 */

import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net'

import { createError } from '../errors.js'
import { createPolicyDecisionPoint, sameTenantPolicy, type AuditSink, type PolicyDecisionPoint, type PolicyDocument } from '../policy/index.js'
import { inspectCertificate, RevocationSet, TrustStore, type DeviceCredential, type PeerPolicy } from '../primitives/pki/index.js'
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
  /**
   * The policy decision point every authenticated peer goes through before its link is handed
   * over: a server asks `link.accept`, a client `link.connect`, on the resource `{ tenant,
   * device, service? }` of this device. Default: zero trust, peers of this device's own tenant
   * only (`sameTenantPolicy`). Cross-tenant links need a document that names the other tenant.
   */
  access?: PolicyDecisionPoint
  /** With the default policy: the role peers must also be certified with (e.g. `gateway`). */
  peerRole?: string
  /** Where the default decision point records its decisions (ignored with `access`). Default: nowhere. */
  audit?: AuditSink
  /** The service name this endpoint offers or reaches, as `resource.service` of its decisions. */
  service?: string
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

/**
 * Creates a server that secures every accepted connection and hands it to `onConnection`; a
 * peer the PKI or the access policy refuses goes to `onRefused` (`ERR_POLICY_DENIED`, audited,
 * for the policy) and its connection is closed.
 */
export function createSecureServer(init: SecureEndpointInit, onConnection: (link: SecureStream) => void, onRefused?: (error: unknown) => void): SecureServer {
  const endpoint = new Endpoint('server', init)
  const links = new LiveLinks()
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {})
    // Links carry small request/answer messages (signaling, hub frames): Nagle's algorithm with
    // delayed ACKs would hold each for ~40 ms.
    socket.setNoDelay(true)
    endpoint.secure(socket).then(
      (link) => {
        if (links.add(link)) onConnection(link)
        else onRefused?.(createError('ERR_CERT_REVOKED', 'the peer certificate was revoked'))
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

/** Options of {@link connectSecure}. */
export interface ConnectSecureInit extends SecureEndpointInit {
  host: string
  port: number
  signal?: AbortSignal
  /** The device id the server must have. */
  serverDevice?: string
  /**
   * Where the link is registered, so that `links.apply(revocations)` closes it once its peer is
   * revoked. A client that gives none must close its links to revoked peers itself
   * (`link.closeIfRevoked`).
   */
  links?: LiveLinks
}

/**
 * Connects over TCP and secures the connection; rejects with a typed error (`ERR_CERT_REVOKED`
 * when `links` has had revocations applied that name the server, `ERR_POLICY_DENIED` when the
 * access policy refuses the server).
 */
export async function connectSecure(init: ConnectSecureInit): Promise<SecureStream> {
  const endpoint = new Endpoint('client', init, init.serverDevice)
  const socket = await new Promise<Socket>((resolve, reject) => {
    if (init.signal?.aborted) return reject(createError('ERR_ABORTED', 'the connection was aborted'))
    const s = createConnection({ host: init.host, port: init.port, timeout: init.handshakeTimeoutMs ?? 10_000 }, () => resolve(s))
    s.once('error', (error) => reject(createError('ERR_UNREACHABLE', `cannot connect to ${init.host}:${init.port}`, { cause: error })))
    s.once('timeout', () => s.destroy(createError('ERR_UNREACHABLE', 'the connection timed out')))
    init.signal?.addEventListener('abort', () => s.destroy(createError('ERR_ABORTED', 'the connection was aborted')), { once: true })
  })
  socket.setTimeout(0)
  socket.setNoDelay(true)
  const link = await endpoint.secure(socket, init.signal)
  if (init.links !== undefined && !init.links.add(link)) throw createError('ERR_CERT_REVOKED', 'the peer certificate was revoked')
  return link
}

/** Zero trust by default: peers of `tenant` only, and with `role` only those certified with it. */
function defaultPolicy(tenant: string, role: string | undefined): PolicyDocument {
  const sameTenant = sameTenantPolicy(tenant)
  return role === undefined ? sameTenant : { ...sameTenant, rules: sameTenant.rules.map((rule) => ({ ...rule, roles: [role] })) }
}

/** The audit sink of a default decision point that was given none. */
const DISCARD: AuditSink = { append: () => undefined }

/**
 * One side's settings, ready to secure sockets: one native context (TLS or Noise), built once,
 * whose trust snapshot `setRevocations` swaps, so a handshake under way when the revocations
 * change is judged under the new ones.
 */
class Endpoint {
  readonly #role: 'server' | 'client'
  readonly #timeoutMs: number
  readonly #serverDevice: string | undefined
  readonly #tls: TlsContext | undefined
  readonly #noise: NoiseLinkContext | undefined
  readonly #access: PolicyDecisionPoint
  readonly #resource: { tenant: string; device: string; service?: string }

  /** Both contexts refuse an identity without a signer. `serverDevice`: the device a client expects. */
  constructor(role: 'server' | 'client', init: SecureEndpointInit, serverDevice?: string) {
    this.#role = role
    this.#timeoutMs = init.handshakeTimeoutMs ?? 10_000
    this.#serverDevice = serverDevice
    const own = inspectCertificate(init.identity.certificateChainPem)
    if (own.tenant === undefined || own.deviceId === undefined) throw createError('ERR_INVALID_ARG', 'the identity certificate names no device or tenant')
    this.#resource = { tenant: own.tenant, device: own.deviceId, ...(init.service !== undefined && { service: init.service }) }
    this.#access = init.access ?? createPolicyDecisionPoint({ policy: defaultPolicy(own.tenant, init.peerRole), audit: init.audit ?? DISCARD })
    const protocol = init.protocol ?? 'tls'
    if (protocol === 'tls') {
      this.#tls = new TlsContext(role, { identity: init.identity, trustPem: init.trustPem, ...(init.policy !== undefined && { policy: init.policy }), ...(init.pq !== undefined && { pq: init.pq }) })
      if (init.revocations !== undefined) this.#tls.setRevocations(init.revocations)
    } else if (protocol === 'noise') {
      this.#noise = new NoiseLinkContext({
        identity: init.identity,
        trust: TrustStore.fromPem(init.trustPem),
        revocations: init.revocations ?? new RevocationSet(),
        policy: { ...init.policy, ...(serverDevice !== undefined && { expectedDevice: serverDevice }) },
        ...(init.noiseCipher !== undefined && { cipher: init.noiseCipher }),
      })
    } else {
      throw createError('ERR_INVALID_ARG', "protocol must be 'tls' or 'noise'")
    }
  }

  /**
   * Runs the handshake, then asks the access policy about the authenticated peer: the link is
   * returned only when it allows; otherwise it is destroyed and `ERR_POLICY_DENIED` thrown.
   */
  async secure(socket: Socket, signal?: AbortSignal): Promise<SecureStream> {
    const options = { handshakeTimeoutMs: this.#timeoutMs, ...(signal !== undefined && { signal }) }
    const link =
      this.#tls !== undefined
        ? await secureTls(socket, this.#tls, { ...options, ...(this.#serverDevice !== undefined && { serverDevice: this.#serverDevice }) })
        : await secureNoise(socket, this.#noise!, this.#role === 'server' ? 'responder' : 'initiator', options)
    const decision = this.#access.decide(link.peer, this.#role === 'server' ? 'link.accept' : 'link.connect', this.#resource)
    if (!decision.allow) {
      const refusal = createError('ERR_POLICY_DENIED', `the access policy refused ${link.peer.deviceId} of ${link.peer.tenant}: ${decision.reason}`)
      link.on('error', () => {})
      link.destroy()
      throw refusal
    }
    return link
  }

  /** Swaps the revocations of the one context: later decisions, handshakes under way included, see them. */
  setRevocations(revocations: RevocationSet): void {
    this.#tls?.setRevocations(revocations)
    this.#noise?.setRevocations(revocations)
  }
}
