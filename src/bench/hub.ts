/**
 * `hub-relay`: relayed messages per second through the hub with 1,000 connected devices (mutual
 * TLS, identity from the link, frame checks, per-identity limits, the bus), against a plain `ws`
 * relay with no TLS and no authentication on the same machine, same clients count and frames.
 * Both ends of every connection run in this process, so the ztmesh side pays TLS twice (hub and
 * device). Latency (send to delivery) is recorded on both sides; {@link hubRelayLatency} gives
 * the p50 and p99 the report prints under the table.
 */

import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'

import WebSocket, { WebSocketServer } from 'ws'

import { HubClient, HubServer } from '../hub/index.js'
import { createPolicyDecisionPoint } from '../policy/index.js'
import { CertificateAuthority, buildCsr, generateP256Key, Signer, type DeviceCredential } from '../primitives/pki/index.js'
import type { Case } from './index.js'

/** Connected devices, in tenants (properties) of 20: presence fans out within a tenant only. */
const DEVICES = 1000
const PER_TENANT = 20
const tenantOf = (i: number) => `property-${Math.floor(i / PER_TENANT)}`
/** Sender/receiver pairs each round, and messages per pair. */
const PAIRS = 100
const PER_PAIR = 2
/** The relayed object's size: a signed offer with its chain is 1-3 KiB. */
const OBJECT_BYTES = 1500

/** Latencies of each side, ms, since the last reset. */
const latencies = { ztmesh: [] as number[], baseline: [] as number[] }

/** p50 and p99 of the relay latency of each side, ms. */
export function hubRelayLatency(): { ztmesh: { p50: number; p99: number }; baseline: { p50: number; p99: number } } | undefined {
  if (latencies.ztmesh.length === 0 || latencies.baseline.length === 0) return undefined
  return { ztmesh: percentiles(latencies.ztmesh), baseline: percentiles(latencies.baseline) }
}

function percentiles(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { p50: at(0.5), p99: at(0.99) }
}

/** Routes each message's delivery to the round waiting for it. */
class Rounds {
  #pending = 0
  #done: (() => void) | undefined
  readonly #sentAt = new Map<number, number>()
  #seq = 0

  constructor(readonly record: number[]) {}

  start(count: number): Promise<void> {
    this.#pending = count
    return new Promise((resolve) => (this.#done = resolve))
  }

  /** The object of the next message: its number, padded to the object size. */
  next(): Buffer {
    const seq = ++this.#seq
    this.#sentAt.set(seq, performance.now())
    const head = `${seq}:`
    return Buffer.from(head.padEnd(OBJECT_BYTES, 'x'))
  }

  delivered(object: Buffer): void {
    const seq = Number(object.subarray(0, 16).toString('latin1').split(':')[0])
    const at = this.#sentAt.get(seq)
    if (at !== undefined) {
      this.#sentAt.delete(seq)
      if (this.record.length < 200_000) this.record.push(performance.now() - at)
    }
    if (--this.#pending === 0) this.#done?.()
  }
}

export const HUB_CASES: Case[] = [
  {
    op: 'hub-relay',
    baseline: `plain ws relay, no TLS, no authentication (per message; ${DEVICES} connected devices in tenants of ${PER_TENANT}, ${PAIRS * PER_PAIR} in flight)`,
    target: 0.8,
    setup: async () => {
      latencies.ztmesh.length = 0
      latencies.baseline.length = 0
      const ours = await ztmeshRelay()
      const theirs = await plainRelay()
      return {
        teardown: async () => {
          await Promise.all(ours.clients.map((c) => c.close()))
          await ours.hub.close()
          for (const ws of theirs.clients) ws.terminate()
          await new Promise((resolve) => theirs.http.close(resolve))
        },
        ztmesh: async () => {
          const done = ours.rounds.start(PAIRS * PER_PAIR)
          for (let p = 0; p < PAIRS; p++) for (let m = 0; m < PER_PAIR; m++) ours.clients[2 * p]!.send(`dev-${2 * p + 1}`, 'offer', ours.rounds.next())
          await done
          return PAIRS * PER_PAIR
        },
        baseline: async () => {
          const done = theirs.rounds.start(PAIRS * PER_PAIR)
          for (let p = 0; p < PAIRS; p++) {
            for (let m = 0; m < PER_PAIR; m++) {
              theirs.clients[2 * p]!.send(JSON.stringify({ type: 'signal', to: `dev-${2 * p + 1}`, kind: 'offer', object: theirs.rounds.next().toString('base64') }))
            }
          }
          await done
          return PAIRS * PER_PAIR
        },
      }
    },
  },
]

/** A hub with 1,000 devices connected over mutual TLS. */
async function ztmeshRelay() {
  const root = CertificateAuthority.createRoot({ commonName: 'Bench Root', organisation: 'ztmesh bench' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Bench Site', organisation: 'ztmesh bench' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const credential = (deviceId: string, tenant: string): DeviceCredential => {
    const key = generateP256Key()
    const cert = siteCa.issue(buildCsr(key, deviceId, tenant), { deviceId, tenant })
    return { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(key) }
  }
  // Offers are limited per identity in production; the bench measures the relay, not the limit.
  const tenants = Array.from({ length: DEVICES / PER_TENANT }, (_, k) => tenantOf(k * PER_TENANT))
  const audit = { append: () => undefined }
  const hubAccess = createPolicyDecisionPoint({ policy: { version: 1, tenant: tenants[0], rules: [{ id: 'hub', effect: 'allow', actions: ['link.accept'], peerTenants: tenants }] }, audit })
  const hub = new HubServer({ identity: credential('hub', tenants[0]!), trustPem: root.certificatePem, access: hubAccess, handshakeTimeoutMs: 60_000, limits: { offersPerMinute: 1e9, framesPerMinute: 1e9 } })
  const { port } = await hub.listen(0, '127.0.0.1')
  const rounds = new Rounds(latencies.ztmesh)
  const clients: HubClient[] = []
  const access = new Map(tenants.map((tenant) => [tenant, createPolicyDecisionPoint({ policy: { version: 1, tenant, rules: [{ id: 'hub', effect: 'allow', actions: ['link.connect'], peerTenants: [tenant, tenants[0]!] }] }, audit })]))
  const identities = Array.from({ length: DEVICES }, (_, i) => credential(`dev-${i}`, tenantOf(i)))
  for (let i = 0; i < DEVICES; i += 50) {
    const batch = await Promise.all(
      identities.map((identity, n) => ({ identity, n })).slice(i, i + 50).map(({ identity, n }) => HubClient.connect({ host: '127.0.0.1', port, identity, trustPem: root.certificatePem, access: access.get(tenantOf(n))!, leaseMs: 600_000, handshakeTimeoutMs: 60_000 })),
    )
    for (const client of batch) client.on('signal', (s) => rounds.delivered(s.object))
    clients.push(...batch)
  }
  // Every receiver present, so nothing is queued for a late joiner.
  for (let spins = 0; clients.some((c) => c.peers().length < PER_TENANT - 1) && spins < 6000; spins++) await new Promise((resolve) => setTimeout(resolve, 50))
  return { rounds, clients, hub }
}

/** The same relay with `ws` alone: no TLS, the device id taken from the URL on trust. */
async function plainRelay() {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false })
  const byId = new Map<string, WebSocket>()
  const http = createHttpServer()
  http.on('upgrade', (request, socket, head) =>
    wss.handleUpgrade(request, socket, head, (ws) => {
      const id = new URL(request.url ?? '/', 'http://relay.invalid').searchParams.get('id') ?? ''
      byId.set(id, ws)
      ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as { to: string; kind: string; object: string }
        byId.get(frame.to)?.send(JSON.stringify({ type: 'signal', from: id, kind: frame.kind, object: frame.object }))
      })
    }),
  )
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const { port } = http.address() as AddressInfo
  const rounds = new Rounds(latencies.baseline)
  const clients: WebSocket[] = []
  for (let i = 0; i < DEVICES; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, DEVICES - i) }, (_, j) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/?id=dev-${i + j}`, { perMessageDeflate: false })
        ws.on('message', (data: Buffer) => rounds.delivered(Buffer.from((JSON.parse(data.toString('utf8')) as { object: string }).object, 'base64')))
        return new Promise<WebSocket>((resolve, reject) => {
          ws.once('open', () => resolve(ws))
          ws.once('error', reject)
        })
      }),
    )
    clients.push(...batch)
  }
  return { rounds, clients, http }
}
