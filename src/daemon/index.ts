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
 * - on SIGHUP re-reads the configuration and reloads the components; a refused configuration is
 *   logged and the running one stays;
 * - on SIGTERM or SIGINT stops the components in reverse within `shutdown.timeoutMs` and resolves
 *   0 when every one stopped cleanly, 1 otherwise. A second signal during the stop ends the
 *   process at once (the operating system's default action).
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

import { Counter } from 'prom-client'
import type { z } from 'zod'

import { ZtError } from '../errors.js'
import { type BaseConfig, type FlagSpec, loadConfig, parseFlags } from './config.js'
import { EXIT_CONFIG, EXIT_FAILURE } from './constants.js'
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

  const logger = createLogger({ name: definition.name, level: config.log.level })
  let lifecycle: Lifecycle<Config> | undefined
  const metrics = new MetricsServer({ listen: config.metrics.listen, isRunning: () => lifecycle?.state === 'running' })
  const reloads = new Counter({ name: 'ztmesh_daemon_reloads_total', help: 'Configuration reloads, by outcome', labelNames: ['outcome'], registers: [metrics.registry] })
  const context: DaemonContext = { logger, metrics, emit }

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
  const stopped = new Promise<number>((resolve) => {
    let reloading = Promise.resolve()
    const reload = async (): Promise<void> => {
      let next: Config
      try {
        next = loadConfig(definition.schema, flags)
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
    const onHangup = (): void => {
      reloading = reloading.then(reload)
    }
    const onStop = (signal: NodeJS.Signals): void => {
      process.off('SIGHUP', onHangup).off('SIGTERM', onStop).off('SIGINT', onStop)
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
    process.on('SIGHUP', onHangup).on('SIGTERM', onStop).on('SIGINT', onStop)
  })
  // Only now: whoever reads "ready" may signal at once, and the handlers must be in place.
  logger.info({ metrics: metrics.address }, 'ready')
  emit({ event: 'ready', daemon: definition.name, metrics: metrics.address })
  return stopped
}
