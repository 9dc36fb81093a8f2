/**
 * A real software TPM (swtpm) for a test: on two consecutive free loopback ports, with a fresh
 * state directory, stopped (and its state removed) in the test's teardown even when it fails.
 * `tpmTest` is ava's `test` where the addon has TPM support and swtpm is installed, and
 * `test.skip` elsewhere (CI installs both, so there the tests always run).
 */
import test, { type ExecutionContext } from 'ava'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { tpmSupported } from '../../src/index.js'

// tpm2-tss logs every refused command to stderr; the tests provoke refusals on purpose.
process.env.TSS2_LOG ??= 'all+NONE'

const hasSwtpm = spawnSync('swtpm', ['--version'], { stdio: 'ignore' }).status === 0

/** `test` when a TPM can be tested here, `test.skip` otherwise. */
export const tpmTest = tpmSupported() && hasSwtpm ? test : test.skip

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
}

const run = promisify(execFile)

/** Starts a swtpm for the test `t`. */
export async function startSwtpm(t: ExecutionContext): Promise<Swtpm> {
  const state = mkdtempSync(join(tmpdir(), 'ztmesh-swtpm-'))
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePortPair()
    const child = spawn(
      'swtpm',
      ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear', '--tpmstate', `dir=${state}`],
      { stdio: 'ignore' },
    )
    let exited = false
    child.once('exit', () => (exited = true))
    if (await listening(port, () => exited)) {
      t.teardown(async () => {
        if (!exited) {
          const gone = new Promise((resolve) => child.once('exit', resolve))
          child.kill('SIGTERM')
          await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 2000))])
          if (!exited) child.kill('SIGKILL')
        }
        rmSync(state, { recursive: true, force: true })
      })
      const tcti = `swtpm:host=127.0.0.1,port=${port}`
      const env = { ...process.env, TPM2TOOLS_TCTI: tcti }
      const tool = (command: string, args: string[]) => run(command, args, { env, timeout: 30_000 })
      return {
        tcti,
        env,
        tool,
        transientHandles: async () => (await tool('tpm2_getcap', ['handles-transient'])).stdout.split('\n').map((l) => l.trim()).filter((l) => l.length > 0),
      }
    }
    child.kill('SIGKILL')
  }
  rmSync(state, { recursive: true, force: true })
  throw new Error('could not start swtpm')
}

/** Two consecutive ports that are free right now. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number }
        server.close(() => resolve(port))
      })
      server.once('error', reject)
    })
    if (port < 65535 && (await isFree(port + 1))) return port
  }
  throw new Error('no two consecutive free ports')
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Whether swtpm answers on `port` within 10 s (false at once if it exited). */
async function listening(port: number, exited: () => boolean): Promise<boolean> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline && !exited()) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (up) return !exited()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}
