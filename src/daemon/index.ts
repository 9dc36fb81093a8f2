/**
 * The composition root of ztmesh daemons (the gateway and the node): a daemon is a name, a
 * configuration schema, its flags, and a function that builds its components from the checked
 * configuration. {@link runDaemon} does the rest the same way for every daemon:
 *
 * - reads `--config FILE` (YAML) and the flags, which override the file; a mistake prints
 *   `{"code":"ERR_CONFIG","message":…}` naming the key on stderr and exits 78 (`EX_CONFIG`);
 * - logs JSON lines on stderr (pino) and writes its events, one JSON line each, on stdout
 *   (`{"event":"ready"}`, `reloaded`, `stopping`, `stopped`, plus the components' own);
 * - serves `/healthz` and `/metrics` on `metrics.listen` (loopback by default);
 * - starts the components in order (a failed start stops what started and exits 1);
 * - on SIGHUP re-reads the configuration and reloads the components; a refused configuration
 *   (a mistake, or a change to a key in `fixedKeys`) is logged and the running one stays;
 * - on SIGTERM or SIGINT stops the components in reverse within `shutdown.timeoutMs` and resolves
 *   0 when every one stopped cleanly, 1 otherwise. A second signal during the stop ends the
 *   process at once (the operating system's default action);
 * - a signal that arrives while the daemon starts is held, and acted on once the start settles
 *   (a stop then wins over a reload).
 *
 * @example
 * ```ts
 * const schema = daemonConfigSchema({ hub: z.strictObject({ listen: listenAddress }) })
 * const code = await runDaemon({
 *   name: 'gateway',
 *   schema,
 *   flags: { listen: { key: 'hub.listen' } },
 *   components: (config, { logger, metrics }) => [new Hub(config.hub, logger, metrics.registry)],
 * })
 * process.exit(code)
 * ```
 */

import { isDeepStrictEqual } from 'node:util'

import { Counter } from 'prom-client'
import type { z } from 'zod'

import { createError, ZtError } from '../errors.js'
import { type BaseConfig, type FlagSpec, loadConfig, parseFlags } from './config.js'
import { BASE_FIXED_KEYS, EXIT_CONFIG, EXIT_FAILURE } from './constants.js'
import { type Component, Lifecycle } from './lifecycle.js'
import { createLogger, type Logger } from './log.js'
import { MetricsServer } from './metrics.js'

export {
  baseConfigShape,
  daemonConfigSchema,
  listenAddress,
  loadConfig,
  loadYamlFile,
  LOG_LEVELS,
  parseFlags,
  type BaseConfig,
  type FlagSpec,
  type ListenAddress,
  type LoadConfigInit,
  type ParsedFlags,
} from './config.js'
export { EXIT_CONFIG, EXIT_FAILURE } from './constants.js'
export { Lifecycle, type Component, type LifecycleInit, type LifecycleState, type StopOutcome } from './lifecycle.js'
export { createLogger, type Logger, type LoggerInit } from './log.js'
export { MetricsServer, type HealthCheck, type MetricsServerInit } from './metrics.js'
export { GATEWAY_IDENTITY, gatewayConfigSchema, runGateway, type GatewayConfig, type GatewayHub, type GatewayHubContext, type GatewayHubFactory, type RunGatewayInit } from './gateway.js'
export { LOCAL_API_ROUTES, nodeConfigSchema, OFFER_CONTENT_TYPE, runNode, type NodeConfig, type OfferHandler, type PeerChannel, type PeerConnector, type PeerConnectorContext, type RunNodeInit } from './node.js'

/** One event line on stdout. */
export interface DaemonEvent {
  event: string
  [field: string]: unknown
}

/** What a daemon's components are built with. */
export interface DaemonContext {
  readonly logger: Logger
  /** The metrics registry and the health checks of `/healthz`. */
  readonly metrics: MetricsServer
  /** Writes one event as a JSON line on stdout. */
  emit(event: DaemonEvent): void
}

/** A daemon: its name, configuration schema, flags and components. */
export interface DaemonDefinition<S extends z.ZodType<BaseConfig>> {
  name: string
  /** Built with {@link daemonConfigSchema}, so the base sections are there. */
  schema: S
  /** Flag name (without `--`) → the configuration key it overrides. */
  flags?: Readonly<Record<string, FlagSpec>>
  /**
   * Dotted configuration keys that cannot change while the daemon runs (a listen address, a store
   * directory): a reload that changes one is refused with `ERR_CONFIG` naming it, and the running
   * configuration stays. `metrics.listen` is always one.
   */
  fixedKeys?: readonly string[]
  /**
   * Fields added to the `ready` event once every component started (the addresses a daemon bound,
   * which a port 0 in the configuration leaves to the system).
   */
  ready?(): Record<string, unknown>
  /** Builds the components, in start order, from the checked configuration. */
  components(config: z.output<S>, context: DaemonContext): Component<z.output<S>>[] | Promise<Component<z.output<S>>[]>
}

/** Where a daemon runs: its arguments and output (defaults: this process). */
export interface RunDaemonInit {
  argv?: readonly string[]
  stdout?: { write(line: string): unknown }
  stderr?: { write(line: string): unknown }
}

/** Runs a daemon until SIGTERM or SIGINT; resolves with the exit status. */
export async function runDaemon<S extends z.ZodType<BaseConfig>>(definition: DaemonDefinition<S>, init: RunDaemonInit = {}): Promise<number> {
  // The handlers go in before anything else: a signal that arrives while the daemon is still
  // starting must neither kill it with the default action nor be lost. It waits, and is acted
  // on once the start settles.
  const signals = new SignalInbox()
  try {
    return await run(definition, init, signals)
  } finally {
    signals.close()
  }
}

async function run<S extends z.ZodType<BaseConfig>>(definition: DaemonDefinition<S>, init: RunDaemonInit, signals: SignalInbox): Promise<number> {
  type Config = z.output<S>
  const stdout = init.stdout ?? process.stdout
  const stderr = init.stderr ?? process.stderr
  const emit = (event: DaemonEvent): void => void stdout.write(`${JSON.stringify(event)}\n`)
  const refuse = (error: unknown): number => {
    if (!(error instanceof ZtError && error.code === 'ERR_CONFIG')) throw error
    stderr.write(`${JSON.stringify({ code: error.code, message: error.message })}\n`)
    return EXIT_CONFIG
  }

  let flags: ReturnType<typeof parseFlags>
  let config: Config
  try {
    flags = parseFlags(init.argv ?? process.argv.slice(2), definition.flags)
    config = loadConfig(definition.schema, flags)
  } catch (error) {
    return refuse(error)
  }
  const fixedKeys = [...BASE_FIXED_KEYS, ...(definition.fixedKeys ?? [])]

  const logger = createLogger({ name: definition.name, level: config.log.level })
  let lifecycle: Lifecycle<Config> | undefined
  const metrics = new MetricsServer({ listen: config.metrics.listen, isRunning: () => lifecycle?.state === 'running' })
  const reloads = new Counter({ name: 'ztmesh_daemon_reloads_total', help: 'Configuration reloads, by outcome', labelNames: ['outcome'], registers: [metrics.registry] })
  const context: DaemonContext = { logger, metrics, emit }
  signals.onEarly = (signal) => logger.info({ signal }, 'signal received while starting; acted on once started')

  let components: Component<Config>[]
  try {
    components = await definition.components(config, context)
  } catch (error) {
    if (error instanceof ZtError && error.code === 'ERR_CONFIG') return refuse(error)
    logger.fatal({ err: error }, 'building the components failed')
    return EXIT_FAILURE
  }
  const logLevel: Component<Config> = {
    name: 'log',
    start() {},
    stop() {},
    reload(next) {
      logger.level = next.log.level
    },
  }
  lifecycle = new Lifecycle<Config>({ components: [metrics, logLevel, ...components], logger })
  try {
    await lifecycle.start()
  } catch (error) {
    logger.fatal({ err: error }, 'start failed')
    return EXIT_FAILURE
  }
  const running = lifecycle
  let reloading = Promise.resolve()
  const reload = async (): Promise<void> => {
    let next: Config
    try {
      next = loadConfig(definition.schema, flags)
      refuseFixedChanges(fixedKeys, config, next)
    } catch (error) {
      const { code, message } = error as ZtError
      logger.error({ code, message }, 'reload refused; the running configuration stays')
      reloads.inc({ outcome: 'refused' })
      emit({ event: 'reloaded', ok: false, code, message })
      return
    }
    const failed = await running.reload(next)
    config = next
    reloads.inc({ outcome: failed.length === 0 ? 'ok' : 'failed' })
    logger.info({ failed }, 'reloaded')
    emit({ event: 'reloaded', ok: failed.length === 0, failed })
  }
  const stopped = new Promise<number>((resolve) => {
    signals.onHangup = () => {
      reloading = reloading.then(reload)
    }
    signals.onStop = (signal) => {
      logger.info({ signal }, 'stopping')
      emit({ event: 'stopping', signal })
      // One deadline for everything: a reload still under way, then the stop itself.
      const deadline = Date.now() + config.shutdown.timeoutMs
      const reloadDone = new Promise<void>((settle) => {
        setTimeout(settle, config.shutdown.timeoutMs).unref()
        void reloading.then(settle)
      })
      void reloadDone
        .then(() => running.stop(Math.max(1, deadline - Date.now())))
        .then((outcome) => {
          logger.info({ outcome }, 'stopped')
          emit({ event: 'stopped', outcome })
          resolve(outcome === 'clean' ? 0 : EXIT_FAILURE)
        })
    }
  })
  logger.info({ metrics: metrics.address }, 'ready')
  emit({ ...definition.ready?.(), event: 'ready', daemon: definition.name, metrics: metrics.address })
  // Only now: the signals that came while starting (a stop wins over a reload).
  signals.deliverEarly()
  return stopped
}

/** Throws `ERR_CONFIG` naming the first fixed key whose value differs between two configurations. */
function refuseFixedChanges(keys: readonly string[], current: unknown, next: unknown): void {
  for (const key of keys) {
    if (!isDeepStrictEqual(valueAt(current, key), valueAt(next, key))) {
      throw createError('ERR_CONFIG', `config: ${key}: cannot change while the daemon runs (restart it to apply)`)
    }
  }
}

function valueAt(config: unknown, key: string): unknown {
  let node = config
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, part)) return undefined
    node = (node as Record<string, unknown>)[part]
  }
  return node
}

/**
 * The daemon's signal handlers, installed on creation. Until the daemon has started, signals are
 * held (the last stop signal, and whether a reload was asked for); `deliverEarly` acts on them.
 * The first SIGTERM or SIGINT removes every handler, so a second one ends the process at once
 * (the operating system's default action), also during a start that hangs.
 */
class SignalInbox {
  /** Acts on SIGHUP once the daemon runs. */
  onHangup: (() => void) | undefined
  /** Acts on SIGTERM or SIGINT once the daemon runs. */
  onStop: ((signal: NodeJS.Signals) => void) | undefined
  /** Told of a signal held while starting (to log it). */
  onEarly: ((signal: NodeJS.Signals) => void) | undefined
  #heldStop: NodeJS.Signals | undefined
  #heldHangup = false
  readonly #hangup = (): void => {
    if (this.onHangup !== undefined) return this.onHangup()
    this.#heldHangup = true
    this.onEarly?.('SIGHUP')
  }
  readonly #stop = (signal: NodeJS.Signals): void => {
    this.close()
    if (this.onStop !== undefined) return this.onStop(signal)
    this.#heldStop = signal
    this.onEarly?.(signal)
  }

  constructor() {
    process.on('SIGHUP', this.#hangup).on('SIGTERM', this.#stop).on('SIGINT', this.#stop)
  }

  /** Acts on what came while starting: a stop, else a reload. */
  deliverEarly(): void {
    if (this.#heldStop !== undefined) this.onStop?.(this.#heldStop)
    else if (this.#heldHangup) this.onHangup?.()
    this.#heldStop = undefined
    this.#heldHangup = false
  }

  /** Removes the handlers. */
  close(): void {
    process.off('SIGHUP', this.#hangup).off('SIGTERM', this.#stop).off('SIGINT', this.#stop)
  }
}
