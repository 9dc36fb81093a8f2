/** Defaults and limits of the daemon composition root. */

/** Exit status of a daemon refused for its configuration (sysexits.h `EX_CONFIG`). */
export const EXIT_CONFIG = 78

/** Exit status of a daemon that failed to start, or did not stop cleanly within its deadline. */
export const EXIT_FAILURE = 1

/** Largest configuration file read, in bytes (a configuration is hand-written, not a data set). */
export const MAX_CONFIG_BYTES = 1024 * 1024

/** Most YAML aliases expanded in one file (defuses "billion laughs" documents). */
export const MAX_YAML_ALIASES = 100

/** How long a graceful stop may take before the daemon exits anyway, ms (`shutdown.timeoutMs`). */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000

/** Where `/healthz` and `/metrics` are served unless configured (`metrics.listen`): loopback only. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464'

/** Configuration keys no daemon can change while it runs (a reload changing one is refused): the metrics server is bound once. */
export const BASE_FIXED_KEYS: readonly string[] = ['metrics.listen']

/** Time limits and a connection cap of the health and metrics server (it is unauthenticated). */
export const METRICS_SERVER_LIMITS = {
  requestTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 64,
} as const
