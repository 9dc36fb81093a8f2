import test from 'ava'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'

import { ConfigError } from '../src/errors.js'
import { createLogger, daemonConfigSchema, Lifecycle, listenAddress, loadConfig, loadYamlFile, MetricsServer, parseFlags, type Component } from '../src/daemon/index.js'
import { parsePolicy } from '../src/policy/index.js'
import { jsonLines } from './helpers/daemon-process.js'

const TINY = join(import.meta.dirname, 'helpers', 'tiny-daemon.ts')

interface Daemon {
  child: ChildProcess
  /** Resolves with the first stdout event for which `match` holds (30 s at most). */
  next(match: (event: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  /** Resolves with the first stderr log line for which `match` holds (30 s at most). */
  nextLog(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr: () => string
}

function start(args: string[]): Daemon {
  const child = spawn(process.execPath, ['--import=tsx', TINY, ...args], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let exit = 'running'
  child.once('exit', (code, signal) => (exit = `${code} ${signal}`))
  return {
    child,
    exited,
    stderr: () => stderr,
    next: jsonLines(child.stdout!, () => `${exit}; stderr: ${stderr}`),
    nextLog: jsonLines(child.stderr!, () => exit),
  }
}

function yaml(dir: string, name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

function workdir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-daemon-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const CONFIG = (greeting: string, extra = '') => `
log:
  level: info
metrics:
  listen: 127.0.0.1:0
shutdown:
  timeoutMs: 3000
http:
  listen: 127.0.0.1:0
  greeting: ${greeting}
timer:
  intervalMs: 10
${extra}`

test.serial('a daemon of two components starts, serves health and metrics, reloads on SIGHUP and stops on SIGTERM with status 0', async (t) => {
  const dir = workdir(t)
  const file = yaml(dir, 'tiny.yaml', CONFIG('hello'))
  const daemon = start(['--config', file])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  const listening = daemon.next((e) => e.event === 'listening')
  const ready = await daemon.next((e) => e.event === 'ready')
  const port = (await listening).port as number
  t.regex(String(ready.metrics), /^127\.0\.0\.1:\d+$/)
  const metricsUrl = `http://${ready.metrics as string}`

  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello')
  const health = await fetch(`${metricsUrl}/healthz`)
  t.is(health.status, 200)
  t.deepEqual(await health.json(), { status: 'ok', failing: {} })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const metrics = await (await fetch(`${metricsUrl}/metrics`)).text()
  const ticks = Number(/^tiny_ticks_total (\d+)/m.exec(metrics)?.[1])
  t.true(ticks > 0, 'the timer component runs and its metric is served')
  t.regex(metrics, /^process_resident_memory_bytes \d+/m)
  t.is((await fetch(`${metricsUrl}/other`)).status, 404)
  t.is((await fetch(`${metricsUrl}/metrics`, { method: 'POST' })).status, 405)

  // A new configuration is observed after SIGHUP.
  yaml(dir, 'tiny.yaml', CONFIG('bonjour'))
  const reloaded = daemon.next((e) => e.event === 'reloaded')
  daemon.child.kill('SIGHUP')
  t.like(await reloaded, { ok: true, failed: [] })
  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'bonjour')
  t.regex(await (await fetch(`${metricsUrl}/metrics`)).text(), /^ztmesh_daemon_reloads_total\{outcome="ok"\} 1/m)

  // A broken configuration on reload is refused, named, and the running one stays.
  yaml(dir, 'tiny.yaml', CONFIG('bonjour', 'timer2: {}\n'))
  const refused = daemon.next((e) => e.event === 'reloaded')
  daemon.child.kill('SIGHUP')
  t.like(await refused, { ok: false, code: 'ERR_CONFIG' })
  t.regex(String((await refused).message), /timer2: unknown key/)
  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'bonjour')
  t.is((await fetch(`${metricsUrl}/healthz`)).status, 200)

  const began = Date.now()
  const stopped = daemon.next((e) => e.event === 'stopped')
  daemon.child.kill('SIGTERM')
  t.like(await stopped, { outcome: 'clean' })
  t.deepEqual(await daemon.exited, { code: 0, signal: null })
  t.true(Date.now() - began < 3000, 'within the deadline')
  await t.throwsAsync(fetch(`http://127.0.0.1:${port}/`), undefined, 'the HTTP component is closed')
  // Logs are JSON lines on stderr, with the daemon's name.
  const lines = daemon.stderr().trim().split('\n').map((line) => JSON.parse(line) as { name: string; msg: string })
  t.true(lines.every((line) => line.name === 'tiny'))
  t.true(lines.some((line) => line.msg === 'ready'))
})

test.serial('flags override the file', async (t) => {
  const dir = workdir(t)
  const daemon = start(['--config', yaml(dir, 'tiny.yaml', CONFIG('from-file')), '--greeting', 'from-flag'])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  const port = (await daemon.next((e) => e.event === 'listening')).port as number
  await daemon.next((e) => e.event === 'ready')
  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'from-flag')
  daemon.child.kill('SIGINT')
  t.is((await daemon.exited).code, 0)
})

test.serial('a bad configuration is refused with ERR_CONFIG naming the key and exit status 78, before anything starts', async (t) => {
  const dir = workdir(t)
  const cases: Array<[string[], RegExp]> = [
    [['--config', yaml(dir, 'typo.yaml', CONFIG('hi').replace('greeting:', 'greting:'))], /config: .*http\.greting: unknown key/],
    [['--config', yaml(dir, 'type.yaml', CONFIG('hi').replace('intervalMs: 10', 'intervalMs: often'))], /config: timer\.intervalMs: /],
    [['--config', yaml(dir, 'port.yaml', CONFIG('hi').replace('listen: 127.0.0.1:0\n  greeting', 'listen: 127.0.0.1:70000\n  greeting'))], /config: http\.listen: the port is above 65535/],
    [['--config', yaml(dir, 'dup.yaml', `${CONFIG('hi')}timer:\n  intervalMs: 5\n`)], /config: .*dup\.yaml:\d+:\d+: Map keys must be unique/],
    [['--config', join(dir, 'missing.yaml')], /config: cannot read .*missing\.yaml/],
    [['--config', yaml(dir, 'ok.yaml', CONFIG('hi')), '--interval-ms', 'soon'], /flag --interval-ms \(timer\.intervalMs\): expected a number/],
    [['--config', yaml(dir, 'ok2.yaml', CONFIG('hi')), '--colour', 'red'], /flag --colour: unknown flag/],
  ]
  for (const [args, message] of cases) {
    const daemon = start(args)
    const { code } = await daemon.exited
    t.is(code, 78, args.join(' '))
    const refusal = JSON.parse(daemon.stderr().trim()) as { code: string; message: string }
    t.is(refusal.code, 'ERR_CONFIG')
    t.regex(refusal.message, message)
  }
})

test.serial('a stop that outlives its deadline exits with status 1, at the deadline', async (t) => {
  const dir = workdir(t)
  const file = yaml(dir, 'slow.yaml', CONFIG('hi').replace('timeoutMs: 3000', 'timeoutMs: 300').replace('intervalMs: 10', 'intervalMs: 10\n  stopDelayMs: 60000'))
  const daemon = start(['--config', file])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  await daemon.next((e) => e.event === 'ready')
  const began = Date.now()
  const stopped = daemon.next((e) => e.event === 'stopped')
  daemon.child.kill('SIGTERM')
  t.like(await stopped, { outcome: 'timeout' })
  t.is((await daemon.exited).code, 1)
  const elapsed = Date.now() - began
  t.true(elapsed >= 250 && elapsed < 3000, `stopped after ${elapsed} ms`)
})

const HOLD = (greeting: string) => CONFIG(greeting).replace(`greeting: ${greeting}`, `greeting: ${greeting}\n  holdStart: true`)
const HELD = 'signal received while starting; acted on once started'

test.serial('a SIGHUP that arrives while the daemon starts is held, and reloads once it has started', async (t) => {
  const dir = workdir(t)
  const file = yaml(dir, 'hold.yaml', HOLD('hello'))
  const daemon = start(['--config', file])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  const port = (await daemon.next((e) => e.event === 'listening')).port as number
  yaml(dir, 'hold.yaml', HOLD('bonjour'))
  daemon.child.kill('SIGHUP')
  await daemon.nextLog((line) => line.msg === HELD && line.signal === 'SIGHUP')
  t.is(await (await fetch(`http://127.0.0.1:${port}/release`)).text(), 'hello', 'still starting, with the first configuration')
  await daemon.next((e) => e.event === 'ready')
  t.like(await daemon.next((e) => e.event === 'reloaded'), { ok: true, failed: [] })
  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'bonjour')
  daemon.child.kill('SIGTERM')
  t.deepEqual(await daemon.exited, { code: 0, signal: null })
})

test.serial('a SIGTERM that arrives while the daemon starts stops it gracefully once the start settles, with status 0', async (t) => {
  const dir = workdir(t)
  const daemon = start(['--config', yaml(dir, 'hold.yaml', HOLD('hello'))])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  const port = (await daemon.next((e) => e.event === 'listening')).port as number
  daemon.child.kill('SIGTERM')
  await daemon.nextLog((line) => line.msg === HELD && line.signal === 'SIGTERM')
  await fetch(`http://127.0.0.1:${port}/release`)
  await daemon.next((e) => e.event === 'ready')
  t.like(await daemon.next((e) => e.event === 'stopping'), { signal: 'SIGTERM' })
  t.like(await daemon.next((e) => e.event === 'stopped'), { outcome: 'clean' })
  t.deepEqual(await daemon.exited, { code: 0, signal: null })
  await t.throwsAsync(fetch(`http://127.0.0.1:${port}/`), undefined, 'the components that started were stopped')
})

test.serial('a reload that changes a key fixed at start is refused naming the key, logged, and the running configuration stays', async (t) => {
  const dir = workdir(t)
  const file = yaml(dir, 'tiny.yaml', CONFIG('hello'))
  const daemon = start(['--config', file])
  t.teardown(() => daemon.child.kill('SIGKILL'))
  const port = (await daemon.next((e) => e.event === 'listening')).port as number
  const ready = await daemon.next((e) => e.event === 'ready')
  const changes: Array<[string, string]> = [
    [CONFIG('bonjour').replace('listen: 127.0.0.1:0\n  greeting', 'listen: 127.0.0.1:1\n  greeting'), 'http.listen'],
    [CONFIG('bonjour').replace('metrics:\n  listen: 127.0.0.1:0', 'metrics:\n  listen: 127.0.0.1:1'), 'metrics.listen'],
  ]
  for (const [text, key] of changes) {
    yaml(dir, 'tiny.yaml', text)
    const refused = daemon.next((e) => e.event === 'reloaded')
    daemon.child.kill('SIGHUP')
    t.like(await refused, { ok: false, code: 'ERR_CONFIG' })
    t.is((await refused).message, `config: ${key}: cannot change while the daemon runs (restart it to apply)`)
    t.like(await daemon.nextLog((line) => line.msg === 'reload refused; the running configuration stays'), { code: 'ERR_CONFIG', message: (await refused).message })
    t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'hello', 'the greeting of the refused file is not applied either')
  }
  t.regex(await (await fetch(`http://${ready.metrics as string}/metrics`)).text(), /^ztmesh_daemon_reloads_total\{outcome="refused"\} 2/m)
  // Changing only what can change still reloads.
  yaml(dir, 'tiny.yaml', CONFIG('bonjour'))
  const reloaded = daemon.next((e) => e.event === 'reloaded')
  daemon.child.kill('SIGHUP')
  t.like(await reloaded, { ok: true })
  t.is(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'bonjour')
  daemon.child.kill('SIGTERM')
  t.is((await daemon.exited).code, 0)
})

// In process: the order guarantees of the lifecycle. (The tests above run one at a time: each
// starts a daemon process, and several starting at once on a loaded machine crowd each other out.)

function recorder(log: string[], name: string, failStart = false): Component<{ n: number }> {
  return {
    name,
    start() {
      if (failStart) throw new Error(`${name} cannot start`)
      log.push(`start ${name}`)
    },
    async stop() {
      await new Promise((resolve) => setTimeout(resolve, 5))
      log.push(`stop ${name}`)
    },
    reload(config) {
      log.push(`reload ${name} ${config.n}`)
    },
  }
}

const quiet = createLogger({ name: 'test', level: 'silent' })

test('components start in order, reload in order, and stop in reverse', async (t) => {
  const log: string[] = []
  const lifecycle = new Lifecycle({ components: [recorder(log, 'a'), recorder(log, 'b'), recorder(log, 'c')], logger: quiet })
  await lifecycle.start()
  t.is(lifecycle.state, 'running')
  t.deepEqual(await lifecycle.reload({ n: 2 }), [])
  t.is(await lifecycle.stop(1000), 'clean')
  t.is(await lifecycle.stop(1000), 'clean', 'a second stop is the same stop')
  t.deepEqual(log, ['start a', 'start b', 'start c', 'reload a 2', 'reload b 2', 'reload c 2', 'stop c', 'stop b', 'stop a'])
})

test('a failed start stops, in reverse, exactly the components that had started', async (t) => {
  const log: string[] = []
  const lifecycle = new Lifecycle({ components: [recorder(log, 'a'), recorder(log, 'b'), recorder(log, 'c', true), recorder(log, 'd')], logger: quiet })
  await t.throwsAsync(lifecycle.start(), { message: 'c cannot start' })
  t.is(lifecycle.state, 'failed')
  t.deepEqual(log, ['start a', 'start b', 'stop b', 'stop a'])
})

test('configuration loading: defaults, overrides by dotted key, and prototype keys refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const schema = daemonConfigSchema({ hub: z.strictObject({ listen: listenAddress }) })
  const file = join(dir, 'c.yaml')
  writeFileSync(file, 'hub:\n  listen: "[::1]:8443"\n')
  const config = loadConfig(schema, { file })
  t.deepEqual(config.hub.listen, { host: '::1', port: 8443 })
  t.deepEqual(config.metrics.listen, { host: '127.0.0.1', port: 9464 })
  t.is(config.log.level, 'info')
  t.is(config.shutdown.timeoutMs, 10_000)
  const flags = parseFlags(['--config', file, '--listen=0.0.0.0:1'], { listen: { key: 'hub.listen' } })
  t.deepEqual(loadConfig(schema, flags).hub.listen, { host: '0.0.0.0', port: 1 })
  t.throws(() => loadConfig(schema, { file, overrides: { '__proto__.polluted': 1 } }), { instanceOf: ConfigError, message: /__proto__/ })
  writeFileSync(file, 'hub:\n  listen: 127.0.0.1:1\n__proto__:\n  polluted: true\n')
  t.throws(() => loadConfig(schema, { file }), { code: 'ERR_CONFIG', message: /__proto__: unknown key/ })
  t.is(({} as Record<string, unknown>).polluted, undefined)
  writeFileSync(file, `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`)
  t.throws(() => loadConfig(schema, { file }), { code: 'ERR_CONFIG', message: /alias/i })
  writeFileSync(file, '- a\n- b\n')
  t.throws(() => loadConfig(schema, { file }), { code: 'ERR_CONFIG', message: /mapping/ })
})

test('/healthz answers 503 naming the failing check, or while the daemon is not running', async (t) => {
  let running = false
  let timer: true | string = 'not armed'
  const server = new MetricsServer({ listen: { host: '127.0.0.1', port: 0 }, isRunning: () => running })
  server.addHealthCheck('timer', () => timer)
  server.addHealthCheck('store', () => {
    throw new Error('disk gone')
  })
  await server.start()
  t.teardown(() => server.stop())
  const health = async () => {
    const response = await fetch(`http://${server.address!}/healthz`)
    return [response.status, await response.json()]
  }
  t.deepEqual(await health(), [503, { status: 'not running', failing: { timer: 'not armed', store: 'disk gone' } }])
  running = true
  timer = true
  t.deepEqual(await health(), [503, { status: 'unhealthy', failing: { store: 'disk gone' } }])
  const address = server.address!
  await server.stop()
  await t.throwsAsync(fetch(`http://${address}/healthz`), undefined, 'stopped means closed')
})

test('a policy document in YAML loads through the same checks (key named on a mistake)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'policy.yaml')
  writeFileSync(file, 'version: 1\ntenant: hotel-1\nrules:\n  - id: staff\n    effect: allow\n    actions: [signal.*]\n    roles: [staff]\n')
  t.is(parsePolicy(loadYamlFile(file)).rules[0]?.id, 'staff')
  writeFileSync(file, 'version: 1\nrules:\n  - id: staff\n    effect: alow\n    actions: [signal.*]\n')
  t.throws(() => parsePolicy(loadYamlFile(file)), { code: 'ERR_CONFIG', message: /rules\[0\]\.effect/ })
  writeFileSync(file, 'version: 1\nrules: [\n')
  t.throws(() => loadYamlFile(file), { code: 'ERR_CONFIG', message: /policy\.yaml:\d+:\d+/ })
})
