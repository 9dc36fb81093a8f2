// `ztmesh demo` as a user runs it: the built CLI (`npm test` builds dist/ before ava; by hand:
// `npx tsc -p tsconfig.json`), a whole site on loopback, then nothing left behind.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import { requirePeer, runs } from './helpers/peers.js'

const CLI = join(process.cwd(), 'dist', 'cli', 'main.js')

interface Run {
  code: number | null
  stdout: string
  stderr: string
  /** The demo's temporary directory, from its first line. */
  dir: string
}

/** Runs `ztmesh demo ARGS`; `interrupt` says when (given the output so far) to send SIGINT. */
function demo(args: string[], interrupt?: (stdout: string) => boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    if (!existsSync(CLI)) return reject(new Error(`${CLI} is missing: build first (npx tsc -p tsconfig.json)`))
    const child = spawn(process.execPath, [CLI, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let sent = false
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (!sent && interrupt?.(stdout) === true) {
        sent = true
        child.kill('SIGINT')
      }
    })
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, dir: /in (\/\S+ztmesh-demo-\S+)/.exec(stdout)?.[1] ?? '' })
    })
  })
}

/** The processes whose command line names `dir` (the daemons' configurations, swtpm's state). */
function processesUsing(dir: string): string {
  return spawnSync('pgrep', ['-af', dir], { encoding: 'utf8' }).stdout.split('\n').filter((line) => line !== '' && !line.includes('pgrep')).join('\n')
}

async function assertSiteRun(t: import('ava').ExecutionContext, args: string[], keystore: string): Promise<void> {
  const run = await demo(args)
  t.is(run.code, 0, `${run.stdout}\n${run.stderr}`)
  t.regex(run.stdout, /gateway +ready: CA API https:\/\/127\.0\.0\.1:\d+, identity gateway\/hotel-demo/)
  for (const node of ['node-1', 'node-2', 'node-3']) t.regex(run.stdout, new RegExp(`${node} +enrolled and ready: ${node}/hotel-demo, ${keystore} key`))
  for (const [from, to] of [['node-1', 'node-2'], ['node-2', 'node-3'], ['node-3', 'node-1']]) {
    t.regex(run.stdout, new RegExp(`${from} +discovered ${to} via gateway`))
    t.regex(run.stdout, new RegExp(`${from} +→ ${to}: path (gateway|mdns|cloud|manual), signed offer and answer verified, data channel open in [\\d.]+ ms`))
    t.regex(run.stdout, new RegExp(`${to} +← ${from}: "good morning ${to}, from ${from}"`))
  }
  t.regex(run.stdout, /node-3 +learned it from the gateway's CRL after \d+ ms: stopped serving/)
  for (const peer of ['node-1', 'node-2']) t.regex(run.stdout, new RegExp(`${peer} +its data channel to node-3 is closed \\d+ ms after the revocation`))
  t.regex(run.stdout, /node-3 +cut off: .*ERR_CERT_REVOKED/)
  t.regex(run.stdout, /every daemon stopped cleanly/)
  t.regex(run.stdout, /^ +\+\d+\.\d{3}s /m, 'a timeline with timings')
  t.not(run.dir, '')
  t.false(existsSync(run.dir), 'the temporary directory is removed')
  t.is(processesUsing(run.dir), '', 'nothing is left running')
}

test.serial('ztmesh demo runs a site on loopback with software keys (a gateway and three nodes enroll, one is revoked and cut off) and exits 0 leaving nothing behind', async (t) => {
  await assertSiteRun(t, ['--keystore', 'software'], 'software')
})

requirePeer(runs('swtpm', ['--version']) ? undefined : 'swtpm is not installed', test.serial)('ztmesh demo runs the same site with every key in a TPM (swtpm) and exits 0 leaving nothing behind', async (t) => {
  await assertSiteRun(t, ['--keystore', 'tpm'], 'tpm')
})

test.serial('ztmesh demo stopped with Ctrl-C (SIGINT) stops every daemon, removes its directory and exits 130', async (t) => {
  const run = await demo(['--keystore', 'software'], (stdout) => /gateway +ready/.test(stdout))
  t.is(run.code, 130, `${run.stdout}\n${run.stderr}`)
  t.regex(run.stdout, /SIGINT: stopping everything/)
  t.not(run.dir, '')
  t.false(existsSync(run.dir))
  t.is(processesUsing(run.dir), '')
})

test.serial('ztmesh demo refuses an unknown keystore with a clear message and a non-zero status', async (t) => {
  const run = await demo(['--keystore', 'floppy'])
  t.is(run.code, 2)
  t.regex(run.stdout, /--keystore must be auto, tpm or software/)
})
