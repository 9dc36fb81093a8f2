/**
 * A real software TPM (swtpm) for a test: on two consecutive free loopback ports, with a fresh
 * state directory, stopped (and its state removed) in the test's teardown even when it fails,
 * and with the test process even when that is killed (see src/harness/swtpm.ts).
 * `tpmTest` is ava's `test` where the addon has TPM support and swtpm is installed; elsewhere
 * the tests are skipped visibly, or fail under CI (see `requirePeer`).
 */
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { tpmSupported } from '../../src/index.js'
import { manufactureSoftwareTpm, startSoftwareTpm } from '../../src/harness/swtpm.js'
import { requirePeer, runs } from './peers.js'

// tpm2-tss logs every refused command to stderr; the tests provoke refusals on purpose.
process.env.TSS2_LOG ??= 'all+NONE'

/** What a TPM test needs and is missing here, if anything. */
const tpmMissing = !tpmSupported()
  ? 'the addon was built without TPM support (libtss2-dev, libclang-dev and pkg-config were missing)'
  : !runs('swtpm', ['--version'])
    ? '`swtpm` is not installed (Debian: swtpm swtpm-tools)'
    : undefined

/** `test` when a TPM can be tested here (see {@link requirePeer} otherwise). */
export const tpmTest = requirePeer(tpmMissing, test)

/** {@link tpmTest}, one test at a time within the file. */
export const tpmTestSerial = requirePeer(tpmMissing, test.serial)

/** A running swtpm. */
export interface Swtpm {
  /** The TCTI string for ztmesh and tpm2-tools. */
  tcti: string
  /** Environment for tpm2-tools and child processes (`TPM2TOOLS_TCTI`). */
  env: NodeJS.ProcessEnv
  /** Runs a tpm2-tools command against this TPM (30 s limit). */
  tool(command: string, args: string[]): Promise<{ stdout: string; stderr: string }>
  /** The transient handles in use (`tpm2_getcap handles-transient`). */
  transientHandles(): Promise<string[]>
  /** With `{ ek: true }`: the certificates of the local CA that signed its EK certificates, PEM. */
  ekCasPem?: string
}

const run = promisify(execFile)

/** Starts a swtpm for the test `t`; it is stopped in the test's teardown, or with this process. */
export async function startSwtpm(t: ExecutionContext, init: { ek?: boolean } = {}): Promise<Swtpm> {
  const state = mkdtempSync(join(tmpdir(), 'ztmesh-swtpm-'))
  let swtpm
  let ekCasPem: string | undefined
  try {
    // A TPM as its maker ships it, with EK certificates signed by a CA of this test's own.
    const manufactured = init.ek === true ? await manufactureSoftwareTpm(state) : undefined
    ekCasPem = manufactured?.ekCasPem
    swtpm = await startSoftwareTpm(manufactured?.stateDir ?? state)
  } catch (error) {
    rmSync(state, { recursive: true, force: true })
    throw error
  }
  t.teardown(async () => {
    await swtpm.stop()
    rmSync(state, { recursive: true, force: true })
  })
  const { tcti } = swtpm
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti }
  const tool = (command: string, args: string[]) => run(command, args, { env, timeout: 30_000 })
  return {
    tcti,
    env,
    tool,
    ...(ekCasPem !== undefined && { ekCasPem }),
    transientHandles: async () => (await tool('tpm2_getcap', ['handles-transient'])).stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0),
  }
}
