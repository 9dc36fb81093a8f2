/**
 * The lifecycle of a daemon's components: started in order, stopped in reverse, reloaded in
 * order. A failed start stops what had already started, so a daemon never runs half-built.
 *
 * @example
 * ```ts
 * const lifecycle = new Lifecycle({ components: [store, server], logger })
 * await lifecycle.start()
 * process.on('SIGTERM', async () => process.exit((await lifecycle.stop(10_000)) === 'clean' ? 0 : 1))
 * ```
 */

import type { Logger } from './log.js'

/** A part of a daemon that runs. */
export interface Component<Config = unknown> {
  /** Names the component in logs and health reports. */
  readonly name: string
  start(): void | Promise<void>
  /** Releases everything `start` took; must not throw for a component that never started. */
  stop(): void | Promise<void>
  /** Applies a new configuration without a restart (on SIGHUP). */
  reload?(config: Config): void | Promise<void>
}

/** Where a lifecycle stands. */
export type LifecycleState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'

/** How a stop ended: every component stopped, one failed to, or the deadline passed first. */
export type StopOutcome = 'clean' | 'errors' | 'timeout'

/** Options of {@link Lifecycle}. */
export interface LifecycleInit<Config> {
  components: readonly Component<Config>[]
  logger: Logger
}

/** Starts, reloads and stops components. */
export class Lifecycle<Config = unknown> {
  readonly #components: readonly Component<Config>[]
  readonly #logger: Logger
  #started: Component<Config>[] = []
  #state: LifecycleState = 'idle'
  #stopping: Promise<StopOutcome> | undefined

  constructor(init: LifecycleInit<Config>) {
    this.#components = init.components
    this.#logger = init.logger
  }

  get state(): LifecycleState {
    return this.#state
  }

  /**
   * Starts every component in order. If one fails, the ones already started are stopped in
   * reverse and the failure is thrown.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`cannot start a lifecycle that is ${this.#state}`)
    this.#state = 'starting'
    for (const component of this.#components) {
      try {
        await component.start()
      } catch (error) {
        this.#logger.error({ component: component.name, err: error }, 'start failed; stopping what started')
        await this.#stopStarted()
        this.#state = 'failed'
        throw error
      }
      this.#started.push(component)
      this.#logger.debug({ component: component.name }, 'started')
    }
    this.#state = 'running'
  }

  /**
   * Gives every component that can reload the new configuration, in order. Returns the names of
   * the components whose reload failed (each is logged; the others keep the new configuration).
   */
  async reload(config: Config): Promise<string[]> {
    if (this.#state !== 'running') return []
    const failed: string[] = []
    for (const component of this.#started) {
      if (component.reload === undefined) continue
      try {
        await component.reload(config)
      } catch (error) {
        failed.push(component.name)
        this.#logger.error({ component: component.name, err: error }, 'reload failed')
      }
    }
    return failed
  }

  /**
   * Stops the started components in reverse order, each after the previous one finished, and
   * gives up waiting after `timeoutMs`. Calling it again returns the same outcome.
   */
  stop(timeoutMs: number): Promise<StopOutcome> {
    this.#stopping ??= this.#stopWithin(timeoutMs)
    return this.#stopping
  }

  async #stopWithin(timeoutMs: number): Promise<StopOutcome> {
    this.#state = 'stopping'
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<StopOutcome>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
      timer.unref()
    })
    const outcome = await Promise.race([this.#stopStarted(), deadline])
    clearTimeout(timer)
    if (outcome === 'timeout') this.#logger.error({ timeoutMs, pending: this.#started.at(-1)?.name }, 'stop deadline passed')
    this.#state = 'stopped'
    return outcome
  }

  async #stopStarted(): Promise<StopOutcome> {
    let outcome: StopOutcome = 'clean'
    while (this.#started.length > 0) {
      const component = this.#started.at(-1)!
      try {
        await component.stop()
        this.#logger.debug({ component: component.name }, 'stopped')
      } catch (error) {
        outcome = 'errors'
        this.#logger.error({ component: component.name, err: error }, 'stop failed')
      }
      this.#started.pop()
    }
    return outcome
  }
}
