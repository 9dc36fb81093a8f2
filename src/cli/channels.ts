/**
 * `ztmesh echo-server` and `ztmesh connect`: a secure echo service and a secure netcat, for
 * operators and for checks; `ztmesh attest-responder`: the device end of re-attestation. The device identity comes from `--store` (the directory
 * `ztmesh enroll` wrote; keystore passphrase in ZTMESH_PASSPHRASE).
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { connectSecure, createSecureServer, type SecureEndpointInit } from '../channels/endpoints.js'
import { Mux } from '../channels/mux.js'
import type { SecureStream } from '../channels/noise-link.js'
import { watchCrlFile } from '../channels/revocations.js'
import { createError, ZtError } from '../errors.js'
import { DeviceIdentity } from '../identity/index.js'
import { TrustStore, type RevocationSet } from '../primitives/pki/index.js'
import { parseListen } from './listen.js'

const OPTIONS = {
  store: { type: 'string' },
  trust: { type: 'string' },
  listen: { type: 'string' },
  to: { type: 'string' },
  protocol: { type: 'string' },
  crl: { type: 'string' },
  'crl-state': { type: 'string' },
  'crl-grace': { type: 'string' },
  'crl-fail-open': { type: 'boolean' },
  tenant: { type: 'string' },
  device: { type: 'string' },
} as const

/** Parses the shared options and opens the device: what both ends of a secure link need. */
async function setup(args: string[]) {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true })
  const protocol = values.protocol ?? 'tls'
  if (protocol !== 'noise' && protocol !== 'tls') throw createError('ERR_INVALID_ARG', '--protocol must be tls or noise')
  if (values.store === undefined || values.trust === undefined) throw createError('ERR_INVALID_ARG', '--store and --trust are required')
  // A software keystore needs ZTMESH_PASSPHRASE (it says so when it is missing); a TPM key does not.
  const identity = await DeviceIdentity.open(values.store, process.env.ZTMESH_PASSPHRASE || undefined)
  const trustPem = readFileSync(values.trust, 'utf8')
  const policy = { ...(values.tenant !== undefined && { expectedTenant: values.tenant }), ...(values.device !== undefined && { expectedDevice: values.device }) }
  const endpoint: SecureEndpointInit = { protocol, identity: identity.credential(), trustPem, policy }
  return { values, identity, trustPem, endpoint }
}

/** The JSON line describing a secured link. */
function linkEvent(event: string, link: SecureStream): string {
  return `${JSON.stringify({ event, protocol: link.protocol, kxGroup: link.kxGroup, postQuantum: link.postQuantum, cipher: link.cipher, peer: link.peer })}\n`
}

/**
 * `ztmesh echo-server --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise] [--crl FILE]
 * [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]`
 */
export async function echoServer(args: string[]): Promise<void> {
  await serveLinks(args, (link) => link.pipe(link))
}

/**
 * `ztmesh attest-responder --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
 * [--device GATEWAY] [--crl FILE] [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]`: answers the
 * gateway's quote requests with this device's TPM.
 */
export async function attestResponder(args: string[]): Promise<void> {
  await serveLinks(args, (link, identity) => identity.answerQuotes(new Mux(link, { role: 'responder' })))
}

/**
 * A secure server of this device ({@link createSecureServer}): one JSON line per accepted (or
 * refused) link, `--crl` applied live, and `onLink` for each link, until SIGINT or SIGTERM.
 */
async function serveLinks(args: string[], onLink: (link: SecureStream, identity: DeviceIdentity) => void): Promise<void> {
  const { values, identity, trustPem, endpoint } = await setup(args)
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:7443')
  const server = createSecureServer(
    endpoint,
    (link) => {
      process.stdout.write(linkEvent('accepted', link))
      link.on('error', () => {})
      onLink(link, identity)
    },
    (error: unknown) => process.stderr.write(`${JSON.stringify({ event: 'refused', code: (error as ZtError).code ?? 'ERR_INTERNAL', message: (error as Error).message })}\n`),
  )
  const stopWatching = values.crl === undefined ? () => {} : watchCrl(values, identity, trustPem, server)
  const address = await server.listen(port, host)
  process.stdout.write(`${JSON.stringify({ event: 'listening', address: address.address, port: address.port })}\n`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  stopWatching()
  await server.close()
}

/**
 * Applies `--crl` to `server` live. CRL numbers are saved in `--crl-state` (default
 * `<store>/crl-state.bin`) so an older CRL is refused across restarts; past its nextUpdate plus
 * `--crl-grace` seconds (default one day) links are refused with `ERR_REVOCATION_STALE`, unless
 * `--crl-fail-open`, which is announced as an audit event on stderr.
 */
function watchCrl(
  values: { crl?: string; store?: string; 'crl-state'?: string; 'crl-grace'?: string; 'crl-fail-open'?: boolean },
  identity: DeviceIdentity,
  trustPem: string,
  server: { setRevocations(revocations: RevocationSet): void },
): () => void {
  const grace = values['crl-grace']
  const graceSeconds = grace === undefined ? undefined : Number(grace)
  if (graceSeconds !== undefined && !(Number.isSafeInteger(graceSeconds) && graceSeconds >= 0)) throw createError('ERR_INVALID_ARG', '--crl-grace is a number of seconds')
  const failOpen = values['crl-fail-open'] === true
  if (failOpen) process.stderr.write(`${JSON.stringify({ event: 'revocation-fail-open', graceSeconds: graceSeconds ?? null })}\n`)
  const audit = (event: Record<string, unknown>) => process.stderr.write(`${JSON.stringify(event)}\n`)
  return watchCrlFile(values.crl!, {
    trust: TrustStore.fromPem(trustPem),
    issuerChainPem: identity.caChainPem,
    statePath: values['crl-state'] ?? join(values.store!, 'crl-state.bin'),
    freshness: { ...(graceSeconds !== undefined && { graceSeconds }), failOpen },
    onUpdate: (fresh) => server.setRevocations(fresh),
    onError: (error) => audit({ event: 'crl-refused', code: (error as ZtError).code ?? 'ERR_INTERNAL' }),
  })
}

/** `ztmesh connect --store DIR --trust CA.pem --to HOST:PORT [--protocol tls|noise]`: stdin to the peer, the peer to stdout. */
export async function connect(args: string[]): Promise<void> {
  const { values, endpoint } = await setup(args)
  const { host, port } = parseListen(values.to ?? '')
  const connecting = connectSecure({ ...endpoint, host, port })
  const link = await connecting
  process.stderr.write(linkEvent('connected', link))
  process.stdin.pipe(link)
  link.pipe(process.stdout)
  await new Promise<void>((resolve, reject) => {
    link.once('close', () => resolve())
    link.once('error', reject)
  })
}
