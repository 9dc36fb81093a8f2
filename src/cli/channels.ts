/**
 * `ztmesh echo-server` and `ztmesh connect`: a secure echo service and a secure netcat, for
 * operators and for checks; `ztmesh attest-responder`: the device end of re-attestation. The device identity comes from `--store` (the directory
 * `ztmesh enroll` wrote; keystore passphrase in ZTMESH_PASSPHRASE).
 */

import { readFileSync } from 'node:fs'
import { createConnection, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

import { LiveLinks, watchCrlFile } from '../channels/revocations.js'
import { wrapNoise, type SecureStream } from '../channels/noise-link.js'
import { secureTls, TlsContext } from '../channels/tls.js'
import { createError, ZtError } from '../errors.js'
import { DeviceIdentity } from '../identity/index.js'
import { RevocationSet, TrustStore } from '../pki/index.js'
import { parseListen } from './listen.js'

const OPTIONS = {
  store: { type: 'string' },
  trust: { type: 'string' },
  listen: { type: 'string' },
  to: { type: 'string' },
  protocol: { type: 'string' },
  crl: { type: 'string' },
  tenant: { type: 'string' },
  device: { type: 'string' },
} as const

async function setup(args: string[]) {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true })
  const protocol = values.protocol ?? 'tls'
  if (protocol !== 'noise' && protocol !== 'tls') throw createError('ERR_INVALID_ARG', '--protocol must be tls or noise')
  if (values.store === undefined || values.trust === undefined) throw createError('ERR_INVALID_ARG', '--store and --trust are required')
  // A software keystore needs ZTMESH_PASSPHRASE (it says so when it is missing); a TPM key does not.
  const identity = await DeviceIdentity.open(values.store, process.env.ZTMESH_PASSPHRASE || undefined)
  const trust = TrustStore.fromPem(readFileSync(values.trust, 'utf8'))
  const policy = { ...(values.tenant !== undefined && { expectedTenant: values.tenant }), ...(values.device !== undefined && { expectedDevice: values.device }) }
  const trustPem = readFileSync(values.trust, 'utf8')
  /** A TLS context of this device (its key stays in the native signer). */
  const tlsContext = (role: 'server' | 'client') => new TlsContext(role, { identity: identity.credential(), trustPem, policy })
  return { values, identity, trust, policy, protocol, tlsContext }
}

/** `ztmesh echo-server --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise] [--crl FILE]` */
export async function echoServer(args: string[]): Promise<void> {
  await serveLinks(args, (link) => link.pipe(link))
}

/**
 * `ztmesh attest-responder --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
 * [--device GATEWAY] [--crl FILE]`: answers the gateway's quote requests with this device's TPM.
 */
export async function attestResponder(args: string[]): Promise<void> {
  await serveLinks(args, (link, identity) => identity.answerQuotes(link))
}

/**
 * A secure server of this device: one JSON line per accepted (or refused) link, `--crl` applied
 * live, and `onLink` for each link, until SIGINT or SIGTERM.
 */
async function serveLinks(args: string[], onLink: (link: SecureStream, identity: DeviceIdentity) => void): Promise<void> {
  const { values, identity, trust, policy, protocol, tlsContext } = await setup(args)
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:7443')
  const context = protocol === 'tls' ? tlsContext('server') : undefined
  const links = new LiveLinks()
  let revocations = new RevocationSet()
  const stopWatching =
    values.crl === undefined
      ? () => {}
      : watchCrlFile(values.crl, {
          trust,
          issuerChainPem: identity.caChainPem,
          onUpdate: (fresh) => {
            revocations = fresh
            context?.setRevocations(fresh)
            links.apply(fresh)
          },
          onError: (error) => process.stderr.write(`${JSON.stringify({ event: 'crl-refused', code: (error as ZtError).code ?? 'ERR_INTERNAL' })}\n`),
        })
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {})
    const secured = context !== undefined ? secureTls(socket, context) : wrapNoise(socket, { role: 'responder', identity: identity.linkIdentity(), trust, revocations, policy })
    secured.then(
      (link: SecureStream) => {
        links.add(link)
        process.stdout.write(`${JSON.stringify({ event: 'accepted', protocol: link.protocol, kxGroup: link.kxGroup, postQuantum: link.postQuantum, cipher: link.cipher, peer: link.peer })}\n`)
        link.on('error', () => {})
        onLink(link, identity)
      },
      (error: unknown) => process.stderr.write(`${JSON.stringify({ event: 'refused', code: (error as ZtError).code ?? 'ERR_INTERNAL', message: (error as Error).message })}\n`),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const address = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ event: 'listening', address: address.address, port: address.port })}\n`)
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve())
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  stopWatching()
}

/** `ztmesh connect --store DIR --trust CA.pem --to HOST:PORT [--protocol tls|noise]`: stdin to the peer, the peer to stdout. */
export async function connect(args: string[]): Promise<void> {
  const { values, identity, trust, policy, protocol, tlsContext } = await setup(args)
  const { host, port } = parseListen(values.to ?? '')
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ host, port, timeout: 10_000 }, () => resolve(s))
    s.once('error', (error) => reject(createError('ERR_UNREACHABLE', `cannot connect to ${values.to}`, { cause: error })))
  })
  const link =
    protocol === 'tls'
      ? await secureTls(socket, tlsContext('client'))
      : await wrapNoise(socket, { role: 'initiator', identity: identity.linkIdentity(), trust, revocations: new RevocationSet(), policy })
  process.stderr.write(`${JSON.stringify({ event: 'connected', protocol: link.protocol, kxGroup: link.kxGroup, postQuantum: link.postQuantum, cipher: link.cipher, peer: link.peer })}\n`)
  process.stdin.pipe(link)
  link.pipe(process.stdout)
  await new Promise<void>((resolve, reject) => {
    link.once('close', () => resolve())
    link.once('error', reject)
  })
}
