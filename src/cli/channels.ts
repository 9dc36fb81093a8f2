/**
 * `ztmesh echo-server` and `ztmesh connect`: a secure echo service and a secure netcat, for
 * operators and for checks; `ztmesh attest-responder`: the device end of re-attestation. The device identity comes from `--store` (the directory
 * `ztmesh enroll` wrote; keystore passphrase in ZTMESH_PASSPHRASE).
 *
 * Zero trust by default: every peer goes through the policy decision point, whose default
 * policy admits peers of this device's own tenant only (`--role R`: only those certified with
 * role R; `--peer ID`: only that device). Cross-tenant access needs `--policy FILE`, a policy
 * document (JSON, docs/policy.md) that names the other tenant. Every decision is one
 * `{"event":"audit",…}` line on stderr.
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { VERIFIER_ROLE } from '../attestation/index.js'
import type { AuditEvent } from '../audit/index.js'
import { connectSecure, createSecureServer, type SecureEndpointInit } from '../channels/endpoints.js'
import { Mux } from '../channels/mux.js'
import type { SecureStream } from '../channels/noise-link.js'
import { LiveLinks, watchCrlFile } from '../channels/revocations.js'
import { createError, ZtError } from '../errors.js'
import { DeviceIdentity } from '../identity/index.js'
import { createPolicyDecisionPoint, type AuditSink } from '../policy/index.js'
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
  /** The peer's device id (`--device` is its older spelling). */
  peer: { type: 'string' },
  device: { type: 'string' },
  /** A role the peer's certificate must carry. */
  role: { type: 'string' },
  /** A policy document (JSON) instead of the default (own tenant only). */
  policy: { type: 'string' },
} as const

/** Every decision of the policy decision point, as one JSON line on stderr. */
const STDERR_AUDIT: AuditSink = {
  append: (event: AuditEvent) => process.stderr.write(`${JSON.stringify({ event: 'audit', ...event })}\n`),
}

/**
 * Parses the shared options and opens the device: what both ends of a secure link need.
 * `defaultRole`: the role peers must carry when the command line names neither a peer, a role
 * nor a policy.
 */
async function setup(args: string[], service: string, defaultRole?: string) {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true })
  const protocol = values.protocol ?? 'tls'
  if (protocol !== 'noise' && protocol !== 'tls') throw createError('ERR_INVALID_ARG', '--protocol must be tls or noise')
  if (values.store === undefined || values.trust === undefined) throw createError('ERR_INVALID_ARG', '--store and --trust are required')
  if (values.peer !== undefined && values.device !== undefined && values.peer !== values.device) throw createError('ERR_INVALID_ARG', '--peer and --device name different devices')
  const peer = values.peer ?? values.device
  if (values.policy !== undefined && values.role !== undefined) throw createError('ERR_INVALID_ARG', '--role and --policy exclude each other: put the role in the policy')
  const access = values.policy === undefined ? undefined : createPolicyDecisionPoint({ policy: readPolicy(values.policy), audit: STDERR_AUDIT })
  const peerRole = values.role ?? (peer === undefined && access === undefined ? defaultRole : undefined)
  // A software keystore needs ZTMESH_PASSPHRASE (it says so when it is missing); a TPM key does not.
  const identity = await DeviceIdentity.open(values.store, process.env.ZTMESH_PASSPHRASE || undefined)
  const trustPem = readFileSync(values.trust, 'utf8')
  const policy = { ...(values.tenant !== undefined && { expectedTenant: values.tenant }), ...(peer !== undefined && { expectedDevice: peer }) }
  const endpoint: SecureEndpointInit = {
    protocol,
    identity: identity.credential(),
    trustPem,
    policy,
    service,
    audit: STDERR_AUDIT,
    ...(access !== undefined && { access }),
    ...(peerRole !== undefined && { peerRole }),
  }
  return { values, peer, identity, trustPem, endpoint }
}

/** The policy document of `--policy FILE` (JSON); the decision point checks its shape. */
function readPolicy(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown
  } catch (cause) {
    throw createError('ERR_CONFIG', `--policy ${path} is not a readable JSON document`, { cause })
  }
}

/** The JSON line describing a secured link. */
function linkEvent(event: string, link: SecureStream): string {
  return `${JSON.stringify({ event, protocol: link.protocol, kxGroup: link.kxGroup, postQuantum: link.postQuantum, cipher: link.cipher, peer: link.peer })}\n`
}

/**
 * `ztmesh echo-server --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
 * [--peer ID | --role R | --policy FILE] [--crl FILE] [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]`
 */
export async function echoServer(args: string[]): Promise<void> {
  await serveLinks(args, 'echo', undefined, (link) => link.pipe(link))
}

/**
 * `ztmesh attest-responder --store DIR --trust CA.pem --listen HOST:PORT [--protocol tls|noise]
 * [--peer GATEWAY | --role R | --policy FILE] [--crl FILE] [--crl-state FILE] [--crl-grace SECONDS]
 * [--crl-fail-open]`: answers the gateway's quote requests with this device's TPM. Only gateways
 * ask: by default it admits only peers of its tenant certified with the `gateway` role, or the
 * one device `--peer` names.
 */
export async function attestResponder(args: string[]): Promise<void> {
  // One rule decides who may ask: the link's admission (by default the verifier role, the one
  // serveQuotes defaults to), so a peer admitted by --peer or --policy is not refused again per stream.
  await serveLinks(args, 'attest', VERIFIER_ROLE, (link, identity) => identity.answerQuotes(new Mux(link, { role: 'responder' }), { allow: () => true }))
}

/**
 * A secure server of this device ({@link createSecureServer}): one JSON line per accepted (or
 * refused) link, `--crl` applied live, and `onLink` for each link, until SIGINT or SIGTERM.
 */
async function serveLinks(args: string[], service: string, defaultRole: string | undefined, onLink: (link: SecureStream, identity: DeviceIdentity) => void): Promise<void> {
  const { values, identity, trustPem, endpoint } = await setup(args, service, defaultRole)
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
  const stopWatching = values.crl === undefined ? () => {} : watchCrl(values, identity, trustPem, (fresh) => server.setRevocations(fresh))
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
 * Applies `--crl` live: `onUpdate` gets each revocation set, the first one synchronously (a CRL
 * refused at start throws: fail closed). CRL numbers are saved in `--crl-state` (default
 * `<store>/crl-state.bin`) so an older CRL is refused across restarts; past its nextUpdate plus
 * `--crl-grace` seconds (default one day) links are refused with `ERR_REVOCATION_STALE`, unless
 * `--crl-fail-open`, which is announced as an audit event on stderr.
 */
function watchCrl(
  values: { crl?: string; store?: string; 'crl-state'?: string; 'crl-grace'?: string; 'crl-fail-open'?: boolean },
  identity: DeviceIdentity,
  trustPem: string,
  onUpdate: (revocations: RevocationSet) => void,
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
    onUpdate,
    onError: (error) => audit({ event: 'crl-refused', code: (error as ZtError).code ?? 'ERR_INTERNAL' }),
  })
}

/**
 * `ztmesh connect --store DIR --trust CA.pem --to HOST:PORT [--protocol tls|noise] [--peer ID]
 * [--role R] [--policy FILE] [--crl FILE] [--crl-state FILE] [--crl-grace SECONDS] [--crl-fail-open]`: stdin to the peer, the peer to stdout. The server
 * is checked against revocations: `--crl FILE` (applied live, like the servers'), else the CA's
 * CRL from the URL the store was given at enrollment; with neither, the connection is refused.
 */
export async function connect(args: string[]): Promise<void> {
  const { values, peer, identity, trustPem, endpoint } = await setup(args, 'connect')
  const { host, port } = parseListen(values.to ?? '')
  const links = new LiveLinks()
  let stopWatching = () => {}
  let revocations: RevocationSet
  if (values.crl === undefined) {
    if (identity.crlUrl === undefined) throw createError('ERR_INVALID_ARG', 'give --crl FILE: the store knows no CRL URL to check the server against')
    revocations = await identity.fetchRevocations(trustPem)
  } else {
    // The first set arrives synchronously (a CRL refused at start throws: fail closed).
    const loaded: { first?: RevocationSet } = {}
    stopWatching = watchCrl(values, identity, trustPem, (fresh) => {
      loaded.first ??= fresh
      links.apply(fresh)
    })
    if (loaded.first === undefined) throw createError('ERR_INTERNAL', 'the CRL watcher gave no revocations')
    revocations = loaded.first
  }
  try {
    const link = await connectSecure({ ...endpoint, host, port, revocations, links, ...(peer !== undefined && { serverDevice: peer }) })
    process.stderr.write(linkEvent('connected', link))
    process.stdin.pipe(link)
    link.pipe(process.stdout)
    await new Promise<void>((resolve, reject) => {
      link.once('close', () => resolve())
      link.once('error', reject)
    })
  } finally {
    stopWatching()
    // The link is over: stop reading stdin, or an open stdin would keep the process alive.
    process.stdin.destroy()
  }
}
