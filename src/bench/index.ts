/**
 * `ztmesh bench`: every ztmesh operation beside what a Node developer would use instead
 * (node:crypto, @noble/post-quantum, @chainsafe/libp2p-noise), measured in the same run.
 *
 * The baselines are devDependencies: they are loaded only here, on demand.
 */
import { createCipheriv, createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto'

import { createError } from '../errors.js'
import { AeadKey } from '../primitives/crypto/aead.js'
import { MlKem768SecretKey, mlkem768Encapsulate, XWingSecretKey, xwingEncapsulate } from '../primitives/crypto/kem.js'
import { SigningKey, verifyBatch, type VerifyItem } from '../primitives/crypto/sign.js'
import { generateX25519KeyPair } from '../primitives/crypto/x25519.js'
import { NoiseHandshake } from '../primitives/noise/index.js'
import { measurePair, type MeasureOptions, type Operation } from './harness.js'
import { loadLibp2pNoise } from './libp2p-noise.js'
import { CHANNEL_CASES } from './channels.js'
import { PKI_CASES } from './pki.js'
import { POLICY_CASES } from './policy.js'
import { SIGNAL_CASES } from './signal.js'
import { TPM_CASES } from './tpm.js'
import { WEBRTC_CASES } from './webrtc.js'
import { PEERING_CASES } from './peering.js'
import { HUB_CASES, hubRelayLatency } from './hub.js'

/** One row of the report. */
export interface BenchRow {
  /** The operation's stable name. */
  op: string
  /** ztmesh, ns per operation. */
  ztmesh_ns: number
  /** What the baseline is. */
  baseline: string
  /** The baseline, ns per operation. */
  baseline_ns: number
  /** baseline_ns / ztmesh_ns: how many times faster ztmesh is. */
  ratio: number
  /** The ratio the issues ask for, if any. */
  target: number | null
}

/** Options of {@link runBench}. */
export interface BenchInit {
  /** Short rounds, for smoke tests (figures are then rough). */
  quick?: boolean
  /** Only operations whose name contains this. */
  filter?: string
}

/** One benchmark: an op, its baseline, and a setup returning both sides. */
export interface Case {
  op: string
  baseline: string
  target: number | null
  /** Both sides, or `null` when this machine cannot run the case (no TPM, say): no row then. */
  setup: () => Promise<{ ztmesh: Operation; baseline: Operation; teardown?: () => Promise<void> } | null>
}

const CASES: Case[] = [
  aeadBatchCase('aead-seal-64', 64, 32, 10),
  aeadCase('aead-seal-64-single', 64),
  aeadCase('aead-seal-16k', 16 * 1024, 1.5),
  {
    op: 'ed25519-verify-batch64',
    baseline: 'node:crypto verify (one by one)',
    target: 4,
    setup: async () => {
      const key = SigningKey.generate('ed25519')
      const items: VerifyItem[] = Array.from({ length: 64 }, (_, i) => {
        const message = randomBytes(64 + i)
        return { algorithm: 'ed25519', publicKey: key.publicKey, message, signature: key.sign(message) }
      })
      const nodeKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.publicKey.toString('base64url') }, format: 'jwk' })
      return {
        ztmesh: () => {
          if (!verifyBatch(items).every(Boolean)) throw new Error('bench: batch verify failed')
          return items.length
        },
        baseline: () => {
          for (const item of items) if (!nodeVerify(null, item.message, nodeKey, item.signature)) throw new Error('bench: verify failed')
          return items.length
        },
      }
    },
  },
  {
    op: 'xwing-encap-decap',
    baseline: '@noble/post-quantum ml_kem768 encapsulate + decapsulate',
    target: 20,
    setup: async () => {
      const { ml_kem768 } = await import('@noble/post-quantum/ml-kem.js')
      const ours = XWingSecretKey.generate()
      const publicKey = ours.publicKey
      const theirs = ml_kem768.keygen()
      return {
        ztmesh: () => {
          ours.decapsulate(xwingEncapsulate(publicKey).ciphertext)
          return 1
        },
        baseline: () => {
          ml_kem768.decapsulate(ml_kem768.encapsulate(theirs.publicKey).cipherText, theirs.secretKey)
          return 1
        },
      }
    },
  },
  {
    // The same comparison without X-Wing's three X25519 operations: ML-KEM-768 against ML-KEM-768.
    op: 'mlkem768-encap-decap',
    baseline: '@noble/post-quantum ml_kem768 encapsulate + decapsulate',
    target: null,
    setup: async () => {
      const { ml_kem768 } = await import('@noble/post-quantum/ml-kem.js')
      const ours = MlKem768SecretKey.generate()
      const publicKey = ours.publicKey
      const theirs = ml_kem768.keygen()
      return {
        ztmesh: () => {
          ours.decapsulate(mlkem768Encapsulate(publicKey).ciphertext)
          return 1
        },
        baseline: () => {
          ml_kem768.decapsulate(ml_kem768.encapsulate(theirs.publicKey).cipherText, theirs.secretKey)
          return 1
        },
      }
    },
  },
  {
    op: 'noise-xx-handshake',
    baseline: '@chainsafe/libp2p-noise XX, both sides',
    target: 10,
    setup: async () => {
      const libp2p = await loadLibp2pNoise()
      const a = generateX25519KeyPair()
      const b = generateX25519KeyPair()
      const la = libp2p.generateKeyPair()
      const lb = libp2p.generateKeyPair()
      const prologue = Buffer.alloc(0)
      return {
        ztmesh: () => {
          const i = NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: a.privateKey })
          const r = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: b.privateKey })
          r.readMessage(i.writeMessage())
          i.readMessage(r.writeMessage())
          r.readMessage(i.writeMessage())
          i.intoTransport()
          r.intoTransport()
          return 1
        },
        baseline: () => {
          libp2p.handshake(la, lb, prologue)
          return 1
        },
      }
    },
  },
  ...PKI_CASES,
  ...CHANNEL_CASES,
  ...TPM_CASES,
  ...POLICY_CASES,
  ...SIGNAL_CASES,
  ...WEBRTC_CASES,
  ...PEERING_CASES,
  ...HUB_CASES,
]

/** `batch` messages of `size` bytes per native call through `sealBatch`, reported per message. */
function aeadBatchCase(op: string, size: number, batch: number, target: number): Case {
  return {
    op,
    baseline: `node:crypto createCipheriv chacha20-poly1305 (ztmesh: sealBatch of ${batch}, per message)`,
    target,
    setup: async () => {
      const keyBytes = randomBytes(32)
      const key = new AeadKey('chacha20-poly1305', keyBytes)
      const plaintexts = randomBytes(size * batch)
      const lengths = new Uint32Array(batch).fill(size)
      const nonces = Buffer.alloc(12 * batch)
      const out = Buffer.alloc((size + 16) * batch)
      const nonce = Buffer.alloc(12)
      let counter = 0
      return {
        ztmesh: () => {
          for (let i = 0; i < batch; i++) nonces.writeUInt32LE(++counter, 12 * i + 4)
          key.sealBatch(nonces, plaintexts, lengths, out)
          return batch
        },
        baseline: () => {
          nonce.writeUInt32LE(++counter, 4)
          const cipher = createCipheriv('chacha20-poly1305', keyBytes, nonce, { authTagLength: 16 })
          cipher.update(plaintexts.subarray(0, size))
          cipher.final()
          cipher.getAuthTag()
          return 1
        },
      }
    },
  }
}

function aeadCase(op: string, size: number, target?: number): Case {
  return {
    op,
    baseline: 'node:crypto createCipheriv chacha20-poly1305',
    target: target ?? null,
    setup: async () => {
      const keyBytes = randomBytes(32)
      const key = new AeadKey('chacha20-poly1305', keyBytes)
      const plaintext = randomBytes(size)
      const out = Buffer.alloc(size + 16)
      const nonce = Buffer.alloc(12)
      let counter = 0
      return {
        ztmesh: () => {
          nonce.writeUInt32LE(++counter, 4)
          key.sealInto(nonce, plaintext, out)
          return 1
        },
        baseline: () => {
          nonce.writeUInt32LE(++counter, 4)
          const cipher = createCipheriv('chacha20-poly1305', keyBytes, nonce, { authTagLength: 16 })
          cipher.update(plaintext)
          cipher.final()
          cipher.getAuthTag()
          return 1
        },
      }
    },
  }
}

/** Runs the benchmark cases and returns one row each. */
export async function runBench(init: BenchInit = {}): Promise<BenchRow[]> {
  const options: MeasureOptions = init.quick ? { roundMs: 20, rounds: 3 } : { roundMs: 300, rounds: 5 }
  const rows: BenchRow[] = []
  for (const c of CASES) {
    if (init.filter !== undefined && !c.op.includes(init.filter)) continue
    const sides = await c.setup().catch((error: unknown) => {
      throw missingBaseline(c.op, error)
    })
    if (sides === null) continue
    const { ztmesh, baseline } = sides
    // Servers and connections a case opened are closed after it (else the process never exits).
    const { ztmeshNs, baselineNs } = await measurePair(ztmesh, baseline, options).finally(() => sides.teardown?.())
    rows.push({ op: c.op, ztmesh_ns: round(ztmeshNs), baseline: c.baseline, baseline_ns: round(baselineNs), ratio: round(baselineNs / ztmeshNs), target: c.target })
  }
  return rows
}

/**
 * A baseline package that cannot be loaded (the baselines are devDependencies, absent from an
 * installation without them) as `ERR_NOT_FOUND` naming it, instead of Node's raw import error.
 * Any other error is returned as it is.
 */
export function missingBaseline(op: string, error: unknown): unknown {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') return error
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(error.message)?.[1] ?? 'a baseline package'
  return createError('ERR_NOT_FOUND', `bench ${op}: cannot load ${name}: the baselines are devDependencies; run \`npm install\` in a clone of ztmesh`, { cause: error })
}

function round(value: number): number {
  return Math.round(value * 100) / 100
}

/** Formats rows as a Markdown table. */
export function formatTable(rows: readonly BenchRow[]): string {
  const lines = [
    '| op | ztmesh | baseline | baseline time | ratio | target |',
    '| --- | ---: | --- | ---: | ---: | ---: |',
  ]
  for (const row of rows) {
    const verdict = row.target === null ? '–' : `≥ ${row.target} ${row.ratio >= row.target ? '✓' : '✗'}`
    lines.push(`| ${row.op} | ${formatNs(row.ztmesh_ns)} | ${row.baseline} | ${formatNs(row.baseline_ns)} | ${row.ratio.toFixed(2)} | ${verdict} |`)
  }
  const issue = rows.find((row) => row.op === 'ca-issue')
  if (issue !== undefined) lines.push('', `CA issuance: ${Math.round(1e9 / issue.ztmesh_ns)} device certificates per second (CSR parse and check, sign, self-verify).`)
  const tpmSign = rows.find((row) => row.op === 'tpm-sign')
  const tpmQuote = rows.find((row) => row.op === 'tpm-quote')
  if (tpmSign !== undefined) lines.push('', `TPM: ${Math.round(1e9 / tpmSign.ztmesh_ns)} signatures per second with the key in the TPM, against ${Math.round(1e9 / tpmSign.baseline_ns)} with a software key${tpmQuote === undefined ? '' : `; a quote of PCRs 0-3 and 7 takes ${formatNs(tpmQuote.ztmesh_ns)}`}.`)
  const relay = rows.find((row) => row.op === 'hub-relay')
  const latency = hubRelayLatency()
  if (relay !== undefined && latency !== undefined) {
    const ms = (value: number) => `${value.toFixed(2)} ms`
    lines.push('', `Hub relay, 1,000 devices connected: ${Math.round(1e9 / relay.ztmesh_ns)} messages per second over mutual TLS (latency p50 ${ms(latency.ztmesh.p50)}, p99 ${ms(latency.ztmesh.p99)}), against ${Math.round(1e9 / relay.baseline_ns)} through a plain ws relay (p50 ${ms(latency.baseline.p50)}, p99 ${ms(latency.baseline.p99)}).`)
  }
  return lines.join('\n')
}

function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`
  return `${ns.toFixed(0)} ns`
}
