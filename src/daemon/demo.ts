/**
 * `ztmesh demo`: a whole site on loopback in a temporary directory, as an operator would run it,
 * with a timeline of what happens and how long it takes:
 *
 * 1. a site CA (`ca init`), and one-time enrollment tokens for three nodes;
 * 2. the gateway daemon (a child process of this CLI): it enrolls itself with its CA and serves
 *    the enrollment API and the CRLs;
 * 3. three node daemons (child processes), each enrolling from its configuration, with its key in
 *    a TPM (one swtpm each, when swtpm is installed) or in the software keystore;
 * 4. discovery and verified data channels: every node connects to the gateway's hub (its
 *    signed presence lease makes the others discover it), and each opens a WebRTC data channel
 *    to the next (node-1 → node-2 → node-3 → node-1) through the fallback chain, with signed
 *    offers and answers checked by the receiver's guard, and sends it a message;
 * 5. the operator revokes node-3: the node learns it from the gateway's CRL and stops serving,
 *    the hub cuts it and tells the tenant, its peers close their channels to it, and its
 *    certificate no longer verifies;
 * 6. every process is stopped (SIGTERM, then waited for), the temporary directory removed.
 *
 * Exits 0 when every step happened; otherwise prints which step failed and why (with the end of
 * the failing process's log) and exits 1. Ctrl-C stops everything the same way and exits 130.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { stringify } from 'yaml'

import { CaService } from '../ca/index.js'
import { ZtError } from '../errors.js'

/** The tenant of the demo site. */
const TENANT = 'hotel-demo'
/** The nodes of the demo site. */
const NODES = ['node-1', 'node-2', 'node-3'] as const
/** Who each node opens a data channel to, once ready. */
const CHANNELS: Record<(typeof NODES)[number], (typeof NODES)[number]> = { 'node-1': 'node-2', 'node-2': 'node-3', 'node-3': 'node-1' }
/** The node the operator revokes. */
const REVOKED = 'node-3'
/** How long one step may take, ms (TPM key creation in swtpm is the slow part). */
const STEP_TIMEOUT_MS = 90_000

type Line = Record<string, unknown>

/** A daemon the demo started. */
interface Daemon {
  name: string
  child: ChildProcess
  /** The first event line (stdout) for which `match` holds, within the step timeout. */
  next(match: (line: Line) => boolean, what: string): Promise<Line>
  exited: Promise<number | null>
  /** The end of its log (stderr). */
  tail(): string
}

/** Runs the demo with `ztmesh demo`'s arguments; resolves with the exit status. */
export async function runDemo(args: string[], out: (text: string) => void = (text) => void process.stdout.write(text)): Promise<number> {
  const { values } = parseArgs({ args, options: { keystore: { type: 'string', default: 'auto' }, keep: { type: 'boolean', default: false } }, strict: true })
  const keystore = values.keystore
  if (keystore !== 'auto' && keystore !== 'tpm' && keystore !== 'software') {
    out('demo: --keystore must be auto, tpm or software\n')
    return 2
  }
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-demo-'))
  const started = Date.now()
  const daemons: Daemon[] = []
  const tpms: Array<{ stop(): Promise<void> }> = []
  let step = 'setting up'
  const say = (who: string, what: string): void => out(`  ${`+${((Date.now() - started) / 1000).toFixed(3)}s`.padStart(9)}  ${who.padEnd(8)} ${what}\n`)

  let cleaned: Promise<void> | undefined
  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      await Promise.all(daemons.map((daemon) => stopDaemon(daemon)))
      await Promise.all(tpms.map((tpm) => tpm.stop().catch(() => {})))
      if (!values.keep) rmSync(dir, { recursive: true, force: true })
    })())
  const interrupted = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      out(`\ndemo: ${signal}: stopping everything\n`)
      void cleanup().then(() => resolve(130))
    }
    process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  })

  const run = async (): Promise<number> => {
    out(`ztmesh demo: a site on loopback (tenant ${TENANT}) in ${dir}\n\n`)
    step = 'creating the site CA'
    const caDir = join(dir, 'ca')
    await CaService.init({ dir: caDir, name: 'Demo Hotel', tenants: [TENANT] })
    const tokens = await withCa(caDir, (ca) => Object.fromEntries(NODES.map((device) => [device, ca.createToken({ deviceId: device, tenant: TENANT, roles: ['staff'], ttlSeconds: 600 }, 'demo').token])))
    say('operator', `site CA created; enrollment tokens for ${NODES.join(', ')}`)

    step = 'choosing where the device keys live'
    // One TPM per device, the gateway's last.
    const tctis = await deviceTpms(keystore, dir, NODES.length + 1, tpms)
    const gatewayTcti = tctis?.[NODES.length]
    say('operator', tctis === undefined ? `device keys: software keystore${keystore === 'auto' ? ' (swtpm is not installed)' : ''}` : `device keys: a TPM each (${tctis.length} swtpm on loopback)`)

    step = 'starting the gateway'
    const gatewayConfig = join(dir, 'gateway.yaml')
    writeFileSync(gatewayConfig, stringify({ log: { level: 'warn' }, metrics: { listen: '127.0.0.1:0' }, ca: { dir: caDir, listen: '127.0.0.1:0', tenant: TENANT }, identity: gatewayTcti === undefined ? {} : { keystore: 'tpm', tcti: gatewayTcti }, revocations: { pollMs: 500 } }))
    const gateway = startDaemon('gateway', ['gateway', '--config', gatewayConfig], daemons)
    const gatewayReady = await gateway.next((line) => line.event === 'ready', 'ready')
    const caUrl = String(gatewayReady.ca)
    const hubAddress = String(gatewayReady.hub)
    const gatewayId = gatewayReady.identity as { deviceId?: string; keystore?: string } | undefined
    say('gateway', `ready: CA API ${caUrl}, identity ${gatewayId?.deviceId}/${TENANT} (${gatewayId?.keystore} key), signs its audit checkpoints`)
    say('gateway', `hub listening on ${hubAddress} (WebSocket over mutual TLS): relays signed offers and answers, presence leases, the revocation cut`)

    step = 'enrolling the nodes'
    const nodes = NODES.map((device, i) => {
      const config = join(dir, `${device}.yaml`)
      const tcti = tctis?.[i]
      writeFileSync(
        config,
        stringify({
          log: { level: 'warn' },
          metrics: { listen: '127.0.0.1:0' },
          store: join(dir, device),
          gateway: caUrl,
          enroll: { url: caUrl, token: tokens[device] },
          identity: { keystore: tcti === undefined ? 'software' : 'tpm', ...(tcti !== undefined && { tcti }) },
          listen: '127.0.0.1:0',
          revocations: { refreshMs: 1_000 },
          hub: hubAddress,
          connect: CHANNELS[device],
          send: `good morning ${CHANNELS[device]}, from ${device}`,
        }),
      )
      return startDaemon(device, ['node', '--config', config], daemons)
    })
    const ready = await Promise.all(nodes.map((node) => node.next((line) => line.event === 'ready', 'ready')))
    ready.forEach((line, i) => say(NODES[i]!, `enrolled and ready: ${line.deviceId}/${line.tenant}, ${line.keystore} key, local API ${line.listen} (mutual TLS)`))

    step = 'discovering the peers'
    const discovered = await Promise.all(nodes.map((node, i) => node.next((line) => line.event === 'discovered' && line.deviceId === CHANNELS[NODES[i]!], 'discovered')))
    discovered.forEach((line, i) => say(NODES[i]!, `discovered ${String(line.deviceId)} via ${String(line.via)} (its signed presence lease, verified)`))

    step = 'opening verified data channels'
    const paths = await Promise.all(nodes.map((node) => node.next((line) => line.event === 'path', 'path')))
    paths.forEach((line, i) => say(NODES[i]!, `→ ${String(line.peer)}: path ${String(line.path)}, signed offer and answer verified, data channel open in ${String(line.ms)} ms`))
    const messages = await Promise.all(nodes.map((node) => node.next((line) => line.event === 'message', 'message')))
    messages.forEach((line, i) => say(NODES[i]!, `← ${String(line.from)}: "${String(line.data)}"`))

    step = `revoking ${REVOKED}`
    await withCa(caDir, (ca) => {
      ca.revoke({ device: REVOKED, tenant: TENANT }, 'keyCompromise', 'demo')
      ca.crl()
    })
    const revokedAt = Date.now()
    say('operator', `revoked ${REVOKED} (ztmesh ca revoke --device ${REVOKED}); the CRL is published`)
    const victim = nodes[NODES.indexOf(REVOKED)]!
    const peersOfVictim = NODES.filter((device) => device !== REVOKED && (CHANNELS[device] === REVOKED || CHANNELS[REVOKED] === device))
    const cut = Promise.all(
      peersOfVictim.map(async (device) => {
        const line = await nodes[NODES.indexOf(device)]!.next((l) => l.event === 'closed' && l.peer === REVOKED, `its channel to ${REVOKED} closed`)
        return { device, ms: Date.now() - revokedAt, reason: String(line.reason) }
      }),
    )
    await victim.next((line) => line.event === 'revoked', 'revoked')
    say(REVOKED, `learned it from the gateway's CRL after ${Date.now() - revokedAt} ms: stopped serving`)
    for (const { device, ms, reason } of await cut) say(device, `its data channel to ${REVOKED} is closed ${ms} ms after the revocation (${reason === 'ERR_CERT_REVOKED' ? 'the hub told it; the CRL names the peer' : 'the peer hung up'})`)

    step = `checking that ${REVOKED} is cut off`
    const api = String(ready[NODES.indexOf(REVOKED)]!.listen)
    if (await accepts(api)) throw new Error(`${REVOKED}'s local API still accepts connections at ${api}`)
    const refusal = verifyCode(caDir, join(dir, REVOKED, 'cert.pem'))
    if (refusal !== 'ERR_CERT_REVOKED') throw new Error(`${REVOKED}'s certificate still verifies (${refusal})`)
    say(REVOKED, `cut off: its local API is closed, and its certificate verifies no more (${refusal})`)

    step = 'stopping the site'
    const stopping = Date.now()
    const codes = await Promise.all(daemons.map((daemon) => stopDaemon(daemon)))
    const failed = daemons.filter((_, i) => codes[i] !== 0)
    if (failed.length > 0) throw new Error(`${failed.map((d) => d.name).join(', ')} did not stop cleanly:\n${failed.map((d) => d.tail()).join('\n')}`)
    say('demo', `every daemon stopped cleanly (SIGTERM, stores flushed) in ${Date.now() - stopping} ms`)
    await cleanup()
    out(`\ndone in ${((Date.now() - started) / 1000).toFixed(1)} s; nothing left running${values.keep ? `; kept ${dir}` : ''}\n`)
    return 0
  }

  const finished = run().catch(async (error: unknown) => {
    const message = error instanceof ZtError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error)
    out(`\ndemo failed while ${step}: ${message}\n`)
    await cleanup()
    return 1
  })
  return Promise.race([finished, interrupted])
}

async function withCa<T>(dir: string, work: (ca: CaService) => T): Promise<T> {
  const ca = await CaService.open({ dir })
  try {
    return work(ca)
  } finally {
    ca.close()
  }
}

/** One swtpm per node when asked (`tpm`) or when swtpm is installed (`auto`); undefined: software keys. */
async function deviceTpms(keystore: 'auto' | 'tpm' | 'software', dir: string, count: number, started: Array<{ stop(): Promise<void> }>): Promise<string[] | undefined> {
  if (keystore === 'software') return undefined
  const installed = spawnSync('swtpm', ['--version'], { stdio: 'ignore' }).status === 0
  if (!installed) {
    if (keystore === 'tpm') throw new Error('--keystore tpm: swtpm is not installed')
    return undefined
  }
  // The harness is not part of the published package: from a clone only.
  const harness = await import('../harness/swtpm.js').catch(() => undefined)
  if (harness === undefined) {
    if (keystore === 'tpm') throw new Error('--keystore tpm: the swtpm harness is not in this installation')
    return undefined
  }
  const tctis: string[] = []
  for (let i = 0; i < count; i++) {
    const state = join(dir, `tpm-${i + 1}`)
    mkdirSync(state, { recursive: true })
    const tpm = await harness.startSoftwareTpm(state)
    started.push(tpm)
    tctis.push(tpm.tcti)
  }
  return tctis
}

/**
 * Calls `onLine` with each line of `stream` that is a JSON object (a daemon's events); other
 * lines (a crash's stack trace) are skipped.
 */
export function onJsonLines(stream: NodeJS.ReadableStream, onLine: (line: Record<string, unknown>) => void): void {
  let buffered = ''
  stream.on('data', (chunk: Buffer | string) => {
    buffered += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      let line: unknown
      try {
        line = JSON.parse(text)
      } catch {
        continue
      }
      if (typeof line === 'object' && line !== null && !Array.isArray(line)) onLine(line as Record<string, unknown>)
    }
  })
}

/** Starts `ztmesh ARGS` as a child process of this very CLI (same Node, same loader). */
function startDaemon(name: string, args: string[], daemons: Daemon[]): Daemon {
  const main = process.argv[1]!
  const child = spawn(process.execPath, [...process.execArgv, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } })
  let log = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8192)
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const lines: Line[] = []
  const waiters: Array<{ match: (line: Line) => boolean; resolve: (line: Line) => void }> = []
  onJsonLines(child.stdout!, (line) => {
    lines.push(line)
    for (const waiter of waiters.filter((w) => w.match(line))) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(line)
    }
  })
  const tail = (): string => `--- ${name} log ---\n${log.trim().split('\n').slice(-15).join('\n')}`
  const daemon: Daemon = {
    name,
    child,
    exited,
    tail,
    next: (match, what) =>
      new Promise<Line>((resolve, reject) => {
        const seen = lines.find(match)
        if (seen !== undefined) return resolve(seen)
        const timer = setTimeout(() => reject(new Error(`${name}: no ${what} event within ${STEP_TIMEOUT_MS / 1000} s\n${tail()}`)), STEP_TIMEOUT_MS)
        timer.unref()
        waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) })
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`${name} exited (status ${code}) before its ${what} event\n${tail()}`))
        })
      }),
  }
  daemons.push(daemon)
  return daemon
}

/** SIGTERM, then SIGKILL after 15 s; resolves the exit status. */
async function stopDaemon(daemon: Daemon): Promise<number | null> {
  const { child } = daemon
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    timer.unref()
    const code = await daemon.exited
    clearTimeout(timer)
    return code
  }
  return daemon.exited
}

/** Whether a TCP connection to `HOST:PORT` is accepted. */
function accepts(address: string): Promise<boolean> {
  const colon = address.lastIndexOf(':')
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(address.slice(colon + 1)) })
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
  })
}

/** The code verify-peer gives a certificate under the CA's published revocations; `ok` if it verifies. */
function verifyCode(caDir: string, certFile: string): string {
  try {
    CaService.verifyOffline(caDir, readFileSync(certFile, 'utf8'))
    return 'ok'
  } catch (error) {
    return error instanceof ZtError ? error.code : 'ERR_INTERNAL'
  }
}
