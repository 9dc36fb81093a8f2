/**
 * Re-attestation: the gateway asks its nodes for fresh TPM quotes, over mutually authenticated
 * secure links, and the CA decides on each answer.
 *
 * For each node the {@link Reattestor} connects (as the gateway, with its own device
 * certificate), checks that the peer is the node it expects, sends a fresh 32-byte nonce and
 * the PCRs to quote ({@link askQuote}, on a stream of the link's message layer), and verifies the answer: quoted by the AK recorded
 * at the node's enrollment, that AK bound to the certificate the node presented, over the
 * nonce, and meeting the node's baseline overridden by the CA's PCR policy. The verdict goes to
 * {@link ReattestationSink.applyReattestation} (`CaService` implements it): `ok` is recorded; `drift` (PCRs changed) and `refused`
 * (evidence that does not verify) apply the CA's drift action, revoke or demote; `failed`
 * (unreachable, timeout, malformed, no AK on record) is recorded and audited without further
 * action. Every verdict is one audit row.
 *
 * Every wait is bounded: each node's connection and its quote have `timeoutMs` each, at most
 * `concurrency` nodes are checked at once, a run checks at most {@link MAX_NODES} nodes, and
 * periodic runs never overlap.
 *
 * @example
 * ```ts
 * const reattestor = new Reattestor({ ca, identity: gateway.credential(), nodes: [{ deviceId: 'tablet-7', host: '10.0.0.7', port: 7443 }] })
 * reattestor.start({ intervalMs: 15 * 60_000 })
 * // …
 * await reattestor.stop()
 * ```
 */

import { randomBytes } from 'node:crypto'

import { askQuote, type BoundQuote, type PcrPolicy } from '../index.js'
import { connectSecure, Mux, type SecureEndpointInit, type SecureStream } from '../../channels/index.js'
import { createError } from '../../errors.js'
import type { AuditEvent } from '../../audit/index.js'
import type { PeerIdentity, RevocationSet } from '../../primitives/pki/index.js'
import {
  DEFAULT_QUOTE_PCRS,
  quoteSelection,
  reasonOf,
  reattestationPolicy,
  verdictOf,
  verifyReattestation,
  type AttestationRecord,
  type AttestationSettings,
  type DriftAction,
  type ReattestVerdict,
} from './index.js'

/** What a re-attestation found out about one node, for {@link ReattestationSink.applyReattestation}. */
export interface ReattestOutcome {
  deviceId: string
  /** The tenant, when known (from the node's certificate, or the endpoint's configuration). */
  tenant?: string
  /** The serial of the certificate the node presented, when it got that far. */
  serial?: string
  verdict: ReattestVerdict
  /** `'ok'` or the code that decided the verdict. */
  reason: string
  /** The roles of the certificate the node presented (kept when it is demoted). */
  roles?: readonly string[]
}

/** What the CA decided on a re-attestation. */
export interface ReattestResult {
  deviceId: string
  tenant: string | null
  verdict: ReattestVerdict
  reason: string
  /** What the verdict did: nothing, a revocation, or a demotion. */
  action: 'none' | DriftAction
  /** The serials revoked because of it. */
  revoked: string[]
}

/**
 * What the {@link Reattestor} reads and where its verdicts go: the CA service implements it
 * (`CaService`), and so can anything else that keeps attestation records and decides on drift
 * (a remote CA over its API, a test double).
 */
export interface ReattestationSink {
  /** The attestation settings (mode and PCR policy). */
  attestationSettings(): AttestationSettings
  /** What is recorded about a device's attestations. */
  attestationStatus(deviceId: string, tenant?: string): AttestationRecord | undefined
  /** The issued certificate with this serial (its PEM binds the AK), if known. */
  certificate(serial: string): { pem: string } | undefined
  /** The trust anchors the nodes' certificates chain to, PEM. */
  trustBundle(): string
  /** The current revocations, for the links the reattestor opens. */
  revocations(): RevocationSet
  /** Records a verdict and acts on it (audited). */
  applyReattestation(outcome: ReattestOutcome, actor?: string): ReattestResult
  /** Records an event that is not a verdict (a run that failed as a whole). */
  recordAudit(event: AuditEvent): void
}

/** Where a node listens for the gateway's quote requests. */
export interface NodeEndpoint {
  deviceId: string
  /** The node's tenant; when given, the node's certificate must be of it. */
  tenant?: string
  host: string
  port: number
}

/** Options of {@link Reattestor}. */
export interface ReattestorInit {
  /** The CA (or any {@link ReattestationSink}) that holds the records and decides. */
  ca: ReattestationSink
  /** The nodes to check, or a function that lists them at the start of each run. */
  nodes: readonly NodeEndpoint[] | (() => readonly NodeEndpoint[])
  /** The gateway's own identity (a device certificate of the site CA); needed unless `connect` is given. */
  identity?: SecureEndpointInit['identity']
  /** `'tls'` (default) or `'noise'`. */
  protocol?: 'tls' | 'noise'
  /**
   * Opens the link to a node instead of {@link connectSecure}: for links that already exist,
   * or other transports. The link must be mutually authenticated; its peer is checked.
   */
  connect?: (node: NodeEndpoint, signal: AbortSignal) => Promise<SecureStream>
  /** The time limit of a node's connection, and again of its quote, ms. Default 10 s. */
  timeoutMs?: number
  /** Nodes checked at once. Default 4. */
  concurrency?: number
  /** The audit actor. Default `'reattest'`. */
  actor?: string
}

/** The most nodes one run checks; a longer list is refused (`ERR_INVALID_ARG`), not cut short. */
export const MAX_NODES = 10_000
const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_CONCURRENCY = 4
const MIN_INTERVAL_MS = 100
const MAX_INTERVAL_MS = 86_400_000

/** Asks nodes for fresh quotes, once or periodically, and has the CA decide on each. */
export class Reattestor {
  readonly #init: ReattestorInit
  readonly #timeoutMs: number
  readonly #concurrency: number
  #timer: NodeJS.Timeout | undefined
  #periodic: AbortController | undefined
  #running: Promise<unknown> | undefined

  constructor(init: ReattestorInit) {
    if (init.identity === undefined && init.connect === undefined) throw createError('ERR_INVALID_ARG', 'the reattestor needs the gateway identity or a connect function')
    this.#init = init
    this.#timeoutMs = boundedInteger('timeoutMs', init.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 600_000)
    this.#concurrency = boundedInteger('concurrency', init.concurrency ?? DEFAULT_CONCURRENCY, 1, 64)
  }

  /**
   * Checks every node once and returns the CA's decisions, in the order of the node list. Under
   * the attestation mode `off` it checks nothing. Aborting `signal` ends the run early: links in
   * use are closed, and the checks cut short and the nodes not checked yet are left out (and
   * not recorded).
   */
  async runOnce(options: { signal?: AbortSignal } = {}): Promise<ReattestResult[]> {
    const { ca } = this.#init
    if (ca.attestationSettings().mode === 'off') return []
    const nodes = typeof this.#init.nodes === 'function' ? this.#init.nodes() : this.#init.nodes
    if (nodes.length > MAX_NODES) throw createError('ERR_INVALID_ARG', `a re-attestation run checks at most ${MAX_NODES} nodes`)
    const signal = options.signal ?? new AbortController().signal
    const results: ReattestResult[] = new Array(nodes.length)
    let next = 0
    const worker = async () => {
      while (next < nodes.length && !signal.aborted) {
        const index = next++
        const outcome = await this.#examine(nodes[index]!, signal)
        // A check cut short by stop() says nothing about the node: it is not recorded.
        if (signal.aborted) return
        results[index] = ca.applyReattestation(outcome, this.#init.actor)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, nodes.length) }, worker))
    return results.filter((result) => result !== undefined)
  }

  /**
   * Runs {@link runOnce} every `intervalMs` (default 15 minutes; 100 ms to 24 h), the first time
   * after one interval. Runs never overlap: the next is scheduled when one ends. A run that
   * fails as a whole (the node list throws, or is too long) is audited as `reattest.run`.
   */
  start(options: { intervalMs?: number } = {}): void {
    if (this.#periodic !== undefined) return
    const interval = boundedInteger('intervalMs', options.intervalMs ?? 15 * 60_000, MIN_INTERVAL_MS, MAX_INTERVAL_MS)
    const controller = new AbortController()
    this.#periodic = controller
    const schedule = () => {
      this.#timer = setTimeout(() => {
        this.#running = this.runOnce({ signal: controller.signal })
          .catch((error: unknown) => this.#auditRunFailure(error))
          .finally(() => {
            this.#running = undefined
            if (!controller.signal.aborted) schedule()
          })
      }, interval)
      this.#timer.unref()
    }
    schedule()
  }

  /** Stops the periodic runs: aborts a run in progress and waits for it to end. */
  async stop(): Promise<void> {
    this.#periodic?.abort()
    this.#periodic = undefined
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#running
  }

  /** Asks one node for a quote and verifies it; never throws: a failure is a verdict. */
  async #examine(node: NodeEndpoint, signal: AbortSignal): Promise<ReattestOutcome> {
    let link: SecureStream | undefined
    let peer: PeerIdentity | undefined
    let answer: Answer
    const onAbort = () => link?.destroy(createError('ERR_ABORTED', 'the re-attestation was stopped'))
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      link = await this.#connect(node, signal)
      link.on('error', () => {}) // failures surface through askQuote
      checkPeer(link.peer, node)
      peer = link.peer
      answer = await this.#askQuote(new Mux(link, { role: 'initiator' }), peer, signal)
    } catch (error) {
      // Nothing verifiable came back: whatever the code, this is a failure, never drift.
      return { deviceId: node.deviceId, ...(node.tenant !== undefined && { tenant: node.tenant }), ...identityOf(peer), verdict: 'failed', reason: reasonOf(error) }
    } finally {
      signal.removeEventListener('abort', onAbort)
      link?.destroy()
    }
    return judge(answer, peer, this.#init.ca)
  }

  /** Sends a fresh nonce and the PCRs of the node's policy; resolves with the answer. */
  async #askQuote(mux: Mux, peer: PeerIdentity, signal: AbortSignal): Promise<Answer> {
    const { ca } = this.#init
    const record = ca.attestationStatus(peer.deviceId, peer.tenant)
    if (record === undefined || !record.attested) throw createError('ERR_ATTEST_NOT_ENROLLED')
    const policy = reattestationPolicy(record, ca.attestationSettings().pcrPolicy)
    const nonce = randomBytes(32)
    const pcrs = pcrsToQuote(policy)
    const quote = await askQuote(mux, { nonce, pcrs }, { timeoutMs: this.#timeoutMs, signal })
    return { record, quote, nonce, policy, pcrs }
  }

  #connect(node: NodeEndpoint, signal: AbortSignal): Promise<SecureStream> {
    if (this.#init.connect !== undefined) return this.#init.connect(node, signal)
    const { ca, identity, protocol } = this.#init
    return connectSecure({
      host: node.host,
      port: node.port,
      identity: identity!,
      trustPem: ca.trustBundle(),
      revocations: ca.revocations(),
      serverDevice: node.deviceId,
      ...(node.tenant !== undefined && { policy: { expectedTenant: node.tenant } }),
      ...(protocol !== undefined && { protocol }),
      handshakeTimeoutMs: this.#timeoutMs,
      signal,
    })
  }

  #auditRunFailure(error: unknown): void {
    const { ca } = this.#init
    ca.recordAudit({ actor: this.#init.actor ?? 'reattest', action: 'reattest.run', outcome: 'error', reason: reasonOf(error) })
  }
}

/** A node's answer with what it is checked against. */
interface Answer {
  record: AttestationRecord
  quote: BoundQuote
  nonce: Buffer
  policy: PcrPolicy
  /** The PCRs the node was asked to quote. */
  pcrs: number[]
}

/** Verifies an answer against the registry: `ok`, or the verdict its failure means. */
function judge(answer: Answer, peer: PeerIdentity, ca: ReattestationSink): ReattestOutcome {
  const identity = { ...identityOf(peer), deviceId: peer.deviceId }
  try {
    const certificate = ca.certificate(peer.serial)
    if (certificate === undefined) throw createError('ERR_NOT_FOUND', 'the node presented a certificate this CA has no record of')
    verifyReattestation(answer.record, certificate.pem, answer.quote, answer.nonce, answer.policy, answer.pcrs)
    return { ...identity, verdict: 'ok', reason: 'ok' }
  } catch (error) {
    return { ...identity, verdict: verdictOf(error), reason: reasonOf(error) }
  }
}

/** The PCRs a policy names, or the default ones when it names none. */
function pcrsToQuote(policy: PcrPolicy): number[] {
  return Object.keys(policy).length === 0 ? [...DEFAULT_QUOTE_PCRS] : quoteSelection(policy, [])
}

/** The peer must be the node expected: `ERR_DEVICE_MISMATCH`, `ERR_TENANT_MISMATCH`. */
function checkPeer(peer: PeerIdentity, node: NodeEndpoint): void {
  if (peer.deviceId !== node.deviceId) throw createError('ERR_DEVICE_MISMATCH', `the node at ${node.host}:${node.port} is ${peer.deviceId}, not ${node.deviceId}`)
  if (node.tenant !== undefined && peer.tenant !== node.tenant) throw createError('ERR_TENANT_MISMATCH')
}

/** What a (checked) peer says about itself, for the registry. */
function identityOf(peer: PeerIdentity | undefined): Partial<ReattestOutcome> {
  return peer === undefined ? {} : { deviceId: peer.deviceId, tenant: peer.tenant, serial: peer.serial, roles: peer.roles }
}

function boundedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw createError('ERR_INVALID_ARG', `${name} must be an integer in ${min}..${max}`)
  return value
}
