/**
 * TPM figures, for the record (no target): signatures per second with a key in the TPM next to
 * the same signature with a software keystore key, and the latency of a quote next to tpm2-tools
 * doing the same quote. They run when a TPM is reachable: the one `TPM2TOOLS_TCTI` or `TCTI`
 * names, else a private swtpm started for the run (and stopped after it), if swtpm is installed.
 */
import { execFile, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { SigningKey } from '../primitives/crypto/sign.js'
import { Tpm, tpmSupported } from '../primitives/tpm/index.js'
import { startSoftwareTpm } from '../harness/swtpm.js'
import type { Case } from './index.js'

const run = promisify(execFile)
const PCRS = [0, 1, 2, 3, 7]

export const TPM_CASES: Case[] = [
  {
    op: 'tpm-sign',
    baseline: 'software keystore key: ztmesh SigningKey ECDSA P-256 (ztmesh: the key in the TPM, swtpm or the configured TPM)',
    target: null,
    setup: async () => {
      const tpm = await benchTpm()
      if (tpm === undefined) return null
      const key = tpm.tpm.loadKey(await tpm.tpm.createSigningKey())
      const software = SigningKey.generate('ecdsa-p256-sha256')
      const message = randomBytes(64)
      return { ztmesh: () => (key.sign(message), 1), baseline: () => (software.sign(message), 1) }
    },
  },
  {
    op: 'tpm-quote',
    baseline: 'tpm2-tools tpm2_quote of the same PCRs, one process per quote (what a Node service would shell out to)',
    target: null,
    setup: async () => {
      const tpm = await benchTpm()
      if (tpm === undefined || !hasTool('tpm2_quote')) return null
      const ak = await tpm.tpm.createAttestationKey()
      const dir = mkdtempSync(join(tmpdir(), 'ztmesh-bench-quote-'))
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
      const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti }
      const tool = (command: string, args: string[]) => run(command, args, { env, timeout: 30_000 })
      // tpm2-tools' own attestation key (under its endorsement key), left as a context file;
      // without a resource manager every tool's leftovers are flushed.
      const file = (name: string) => join(dir, name)
      await tool('tpm2_createek', ['-c', file('ek.ctx'), '-G', 'ecc', '-u', file('ek.pub')])
      await tool('tpm2_flushcontext', ['-t'])
      await tool('tpm2_createak', ['-C', file('ek.ctx'), '-c', file('ak.ctx'), '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', file('ak.pem'), '-f', 'pem', '-n', file('ak.name')])
      await tool('tpm2_flushcontext', ['-t'])
      await tool('tpm2_flushcontext', ['-s'])
      return {
        ztmesh: async () => {
          await tpm.tpm.quote(ak, randomBytes(32), PCRS)
          return 1
        },
        baseline: async () => {
          await tool('tpm2_quote', ['-c', join(dir, 'ak.ctx'), '-l', `sha256:${PCRS.join(',')}`, '-q', randomBytes(32).toString('hex'), '-m', join(dir, 'q.msg'), '-s', join(dir, 'q.sig'), '-o', join(dir, 'q.pcrs'), '-g', 'sha256'])
          await tool('tpm2_flushcontext', ['-t'])
          return 1
        },
      }
    },
  },
]

let shared: Promise<{ tpm: Tpm; tcti: string } | undefined> | undefined

/** The TPM of the run, started once. */
function benchTpm(): Promise<{ tpm: Tpm; tcti: string } | undefined> {
  shared ??= openBenchTpm()
  return shared
}

async function openBenchTpm(): Promise<{ tpm: Tpm; tcti: string } | undefined> {
  if (!tpmSupported()) return undefined
  const configured = process.env.TPM2TOOLS_TCTI || process.env.TCTI
  if (configured) return { tpm: Tpm.open(configured), tcti: configured }
  if (!hasTool('swtpm')) return undefined
  const tcti = await startSwtpm()
  return { tpm: Tpm.open(tcti), tcti }
}

function hasTool(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0
}

/** A private swtpm for the run, stopped with the process. */
async function startSwtpm(): Promise<string> {
  const state = mkdtempSync(join(tmpdir(), 'ztmesh-bench-swtpm-'))
  process.once('exit', () => rmSync(state, { recursive: true, force: true }))
  return (await startSoftwareTpm(state)).tcti
}
