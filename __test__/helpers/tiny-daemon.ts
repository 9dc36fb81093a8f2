/**
 * A tiny daemon made of two real components, for the composition-root tests: an HTTP server that
 * answers its configured greeting, and a timer that counts ticks into a metric. Run it as
 * `node --import=tsx __test__/helpers/tiny-daemon.ts --config FILE [--greeting TEXT]`. `http.listen`
 * cannot change on a reload.
 */

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

import { Counter } from 'prom-client'
import { z } from 'zod'

import { type Component, daemonConfigSchema, listenAddress, runDaemon } from '../../src/daemon/index.js'

const schema = daemonConfigSchema({
  http: z.strictObject({
    listen: listenAddress,
    greeting: z.string().min(1),
    /** Whether the start waits, after `listening`, for a request to /release (to signal a starting daemon). */
    holdStart: z.boolean().default(false),
  }),
  timer: z.strictObject({
    intervalMs: z.number().int().min(5),
    /** How long the timer takes to stop (to test the stop deadline). */
    stopDelayMs: z.number().int().min(0).default(0),
  }),
})
type Config = z.output<typeof schema>

const code = await runDaemon({
  name: 'tiny',
  schema,
  fixedKeys: ['http.listen'],
  flags: { greeting: { key: 'http.greeting' }, 'interval-ms': { key: 'timer.intervalMs', type: 'number' } },
  components(config, { emit, metrics, logger }) {
    let greeting = config.http.greeting
    let server: Server | undefined
    const http: Component<Config> = {
      name: 'http',
      async start() {
        let release = (): void => {}
        const released = new Promise<void>((resolve) => (release = resolve))
        server = createServer((request, response) => {
          if (request.url === '/release') release()
          response.end(greeting)
        })
        await new Promise<void>((resolve) => server!.listen(config.http.listen.port, config.http.listen.host, resolve))
        emit({ event: 'listening', port: (server.address() as AddressInfo).port })
        if (config.http.holdStart) await released
      },
      async stop() {
        server?.closeAllConnections()
        await new Promise((resolve) => server?.close(resolve))
      },
      reload(next) {
        greeting = next.http.greeting
      },
    }

    const ticks = new Counter({ name: 'tiny_ticks_total', help: 'Timer ticks', registers: [metrics.registry] })
    let interval: NodeJS.Timeout | undefined
    let stopDelayMs = config.timer.stopDelayMs
    const arm = (ms: number): void => {
      clearInterval(interval)
      interval = setInterval(() => ticks.inc(), ms)
    }
    const timer: Component<Config> = {
      name: 'timer',
      start: () => arm(config.timer.intervalMs),
      async stop() {
        clearInterval(interval)
        await new Promise((resolve) => setTimeout(resolve, stopDelayMs))
      },
      reload(next) {
        arm(next.timer.intervalMs)
        stopDelayMs = next.timer.stopDelayMs
        logger.info({ intervalMs: next.timer.intervalMs }, 'timer re-armed')
      },
    }
    metrics.addHealthCheck('timer', () => (interval === undefined ? 'not armed' : true))
    return [http, timer]
  },
})
process.exit(code)
