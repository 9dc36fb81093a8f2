/**
 * Structured logs: pino, one JSON object per line on stderr (stdout carries a daemon's events,
 * one JSON line each, for the programs that drive it). Writes are synchronous, so the last lines
 * before an exit are never lost, and known secret-bearing fields are redacted.
 *
 * pino rather than a hand-written JSON-lines writer: levels changeable at run time (on reload),
 * child loggers per component, error serialization and redaction are what daemons need, and it
 * is the fastest structured logger for Node.
 */

import { pino } from 'pino'

import type { LOG_LEVELS } from './config.js'

/** A structured logger. */
export type Logger = pino.Logger

/** Options of {@link createLogger}. */
export interface LoggerInit {
  /** The daemon's name, on every line. */
  name: string
  level: (typeof LOG_LEVELS)[number]
  /** Where lines go: a file descriptor (default 2, stderr). */
  fd?: number
}

/** Field paths never written in clear. */
export const REDACTED_FIELDS = ['passphrase', 'token', 'privateKey', 'secret', '*.passphrase', '*.token', '*.privateKey', '*.secret']

/** Creates the logger of a daemon. */
export function createLogger(init: LoggerInit): Logger {
  return pino(
    { name: init.name, level: init.level, redact: { paths: REDACTED_FIELDS, censor: '[redacted]' } },
    pino.destination({ dest: init.fd ?? 2, sync: true }),
  )
}
