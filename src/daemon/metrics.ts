/**
 * The metrics registry of a daemon (prom-client) and its HTTP endpoint: `GET /metrics` in the
 * Prometheus text format and `GET /healthz`, which answers 200 only while the daemon runs and
 * every health check passes (503 with the failing checks otherwise). The endpoint carries no
 * credential, so it listens on loopback unless configured otherwise, and is bounded in time and
 * connections.
 *
 * @example
 * ```ts
 * const metrics = new MetricsServer({ listen: { host: '127.0.0.1', port: 9464 }, isRunning: () => true })
 * new Counter({ name: 'hub_offers_total', help: 'offers relayed', registers: [metrics.registry] })
 * await metrics.start()
 * ```
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

import { collectDefaultMetrics, Registry } from 'prom-client'

import type { ListenAddress } from './config.js'
import { METRICS_SERVER_LIMITS } from './constants.js'
import type { Component } from './lifecycle.js'

/** A named health check: true when healthy, or a short reason when not. */
export type HealthCheck = () => true | string

/** Options of {@link MetricsServer}. */
export interface MetricsServerInit {
  listen: ListenAddress
  /** Whether the daemon is running (all components started and not stopping). */
  isRunning: () => boolean
  /** The registry to serve (default: a fresh one with Node's default metrics). */
  registry?: Registry
}

/** Serves `/healthz` and `/metrics`; a {@link Component}. */
export class MetricsServer implements Component {
  readonly name = 'metrics'
  readonly registry: Registry
  readonly #listen: ListenAddress
  readonly #isRunning: () => boolean
  readonly #checks = new Map<string, HealthCheck>()
  #server: Server | undefined

  constructor(init: MetricsServerInit) {
    this.#listen = init.listen
    this.#isRunning = init.isRunning
    if (init.registry === undefined) {
      this.registry = new Registry()
      collectDefaultMetrics({ register: this.registry })
    } else {
      this.registry = init.registry
    }
  }

  /** Adds a health check reported by `/healthz` under `name`. */
  addHealthCheck(name: string, check: HealthCheck): void {
    this.#checks.set(name, check)
  }

  /** The bound address, once started (`host:port`). */
  get address(): string | undefined {
    const address = this.#server?.address() as AddressInfo | null | undefined
    if (!address) return undefined
    return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
  }

  async start(): Promise<void> {
    const server = createServer({ requestTimeout: METRICS_SERVER_LIMITS.requestTimeoutMs }, (request, response) => {
      this.#handle(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500)
        response.end()
      })
    })
    server.headersTimeout = METRICS_SERVER_LIMITS.headersTimeoutMs
    server.keepAliveTimeout = METRICS_SERVER_LIMITS.keepAliveTimeoutMs
    server.maxConnections = METRICS_SERVER_LIMITS.maxConnections
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#listen.port, this.#listen.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#server = server
  }

  async stop(): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#server = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }

  /** The health report: `ok` and the failing checks. */
  health(): { ok: boolean; status: string; failing: Record<string, string> } {
    const failing: Record<string, string> = {}
    for (const [name, check] of this.#checks) {
      let verdict: true | string
      try {
        verdict = check()
      } catch (error) {
        verdict = (error as Error).message
      }
      if (verdict !== true) failing[name] = verdict
    }
    const running = this.#isRunning()
    const ok = running && Object.keys(failing).length === 0
    return { ok, status: ok ? 'ok' : running ? 'unhealthy' : 'not running', failing }
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '').split('?')[0]
    if (path !== '/healthz' && path !== '/metrics') return void response.writeHead(404).end()
    if (request.method !== 'GET' && request.method !== 'HEAD') return void response.writeHead(405, { allow: 'GET, HEAD' }).end()
    if (path === '/healthz') {
      const report = this.health()
      response.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      return void response.end(JSON.stringify({ status: report.status, failing: report.failing }))
    }
    const body = await this.registry.metrics()
    response.writeHead(200, { 'content-type': this.registry.contentType, 'cache-control': 'no-store' })
    response.end(body)
  }
}
