/**
 * A software TPM (swtpm) on loopback, for development, tests and the benchmark: two consecutive
 * free ports (swtpm's TCTI takes the control port as the server port + 1), a state directory of
 * the caller's, and a watchdog shell that stops swtpm when it is told to, when swtpm exits, or
 * when this process is gone (even killed), so no swtpm outlives the process that started it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'

/** A running swtpm. */
export interface SoftwareTpm {
  /** The TCTI for ztmesh and tpm2-tools: `swtpm:host=127.0.0.1,port=…`. */
  tcti: string
  /** Stops swtpm (bounded: SIGTERM, then SIGKILL after 2 s). */
  stop(): Promise<void>
}

/**
 * swtpm under a watchdog: `$1` is the pid to outlive, the rest are swtpm's arguments. The shell
 * waits on swtpm itself, so it exits the moment swtpm does (a lost port race shows at once); a
 * background loop stops swtpm when the parent process is gone, and is ended with it (nothing of
 * the watchdog outlives swtpm).
 */
const WATCHDOG = `parent=$1; shift
swtpm "$@" & child=$!
( while kill -0 "$parent" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done; kill $child 2>/dev/null ) & loop=$!
trap 'kill $child 2>/dev/null' TERM INT
wait $child
kill $loop 2>/dev/null
wait $child`

/**
 * How long swtpm must stay up after its port answers: another process may have started a swtpm on
 * the same ports a moment earlier, and then ours fails to bind and exits, while the port answers
 * for the other one.
 */
const SETTLE_MS = 200

/** Starts swtpm with its state in `stateDir` (10 attempts at free ports, 10 s each to listen). */
export async function startSoftwareTpm(stateDir: string): Promise<SoftwareTpm> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePortPair()
    const args = ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear', '--tpmstate', `dir=${stateDir}`]
    const watchdog = spawn('sh', ['-c', WATCHDOG, 'swtpm-watchdog', String(process.pid), ...args], { stdio: 'ignore' })
    // swtpm serves this process; it must not keep it alive (the watchdog stops it when it ends).
    watchdog.unref()
    let exited = false
    watchdog.once('exit', () => (exited = true))
    watchdog.once('error', () => (exited = true))
    if (await listening(port, () => exited)) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
      if (!exited) return { tcti: `swtpm:host=127.0.0.1,port=${port}`, stop: () => stop(watchdog, () => exited) }
    }
    await stop(watchdog, () => exited)
  }
  throw new Error('could not start swtpm on 127.0.0.1')
}

/**
 * Manufactures a TPM state in `root/tpm` as a TPM maker would (`swtpm_setup --create-ek-cert
 * --create-platform-cert`): its EK certificates are signed by a fresh `swtpm_localca` CA of its
 * own in `root/localca`, with configuration files of its own (nothing depends on the machine's
 * `/var/lib/swtpm-localca`). Returns the state directory for {@link startSoftwareTpm} and the
 * local CA's certificates (root and issuing CA), PEM: the EK CAs a verifier trusts.
 */
export async function manufactureSoftwareTpm(root: string): Promise<{ stateDir: string; ekCasPem: string }> {
  const stateDir = join(root, 'tpm')
  const ca = join(root, 'localca')
  mkdirSync(stateDir, { recursive: true })
  mkdirSync(ca, { recursive: true })
  const localcaConf = join(root, 'swtpm-localca.conf')
  writeFileSync(localcaConf, `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`)
  const options = join(root, 'swtpm-localca.options')
  writeFileSync(options, '--platform-manufacturer ztmesh\n--platform-version 2.1\n--platform-model test\n')
  const setupConf = join(root, 'swtpm_setup.conf')
  writeFileSync(setupConf, `create_certs_tool = swtpm_localca\ncreate_certs_tool_config = ${localcaConf}\ncreate_certs_tool_options = ${options}\nactive_pcr_banks = sha256\n`)
  await promisify(execFile)('swtpm_setup', ['--tpm2', '--create-ek-cert', '--create-platform-cert', '--overwrite', '--tpmstate', stateDir, '--config', setupConf], { timeout: 60_000 })
  const ekCasPem = readFileSync(join(ca, 'swtpm-localca-rootca-cert.pem'), 'utf8') + readFileSync(join(ca, 'issuercert.pem'), 'utf8')
  return { stateDir, ekCasPem }
}

async function stop(watchdog: ChildProcess, exited: () => boolean): Promise<void> {
  if (exited()) return
  const gone = new Promise((resolve) => watchdog.once('exit', resolve))
  watchdog.kill('SIGTERM')
  await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 2000))])
  if (!exited()) watchdog.kill('SIGKILL')
}

/** Two consecutive loopback ports that are free right now. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await listenOn(0)
    if (port !== undefined && port < 65535 && (await listenOn(port + 1)) !== undefined) return port
  }
  throw new Error('no two consecutive free ports on 127.0.0.1')
}

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(undefined))
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as { port: number }).port
      server.close(() => resolve(bound))
    })
  })
}

/** Whether something answers on `port` within 10 s (false at once if swtpm exited). */
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
