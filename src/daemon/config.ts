/**
 * Daemon configuration: a YAML file, overridden by command-line flags, checked against a zod
 * schema into a typed object. Every mistake is one `ConfigError` (`ERR_CONFIG`) naming its key
 * (or its flag), and unknown keys are refused, so a typo never silently falls back to a default.
 *
 * @example
 * ```ts
 * const Config = daemonConfigSchema({ ca: z.strictObject({ dir: z.string() }) })
 * const { file, overrides } = parseFlags(process.argv.slice(2), { dir: { key: 'ca.dir' } })
 * const config = loadConfig(Config, { file, overrides }) // config.ca.dir: string
 * ```
 */

import { readFileSync, statSync } from 'node:fs'

import { parseDocument } from 'yaml'
import { z } from 'zod'

import { createError } from '../errors.js'
import { parseWithSchema } from '../schema.js'
import { DEFAULT_METRICS_LISTEN, DEFAULT_STOP_TIMEOUT_MS, MAX_CONFIG_BYTES, MAX_YAML_ALIASES } from './constants.js'

/** A `HOST:PORT` (IPv6 in brackets) to listen on or connect to. */
export interface ListenAddress {
  host: string
  port: number
}

/** The schema of a `HOST:PORT` value (port 0 picks a free port). */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'expected HOST:PORT')
  .transform((value, ctx): ListenAddress => {
    const colon = value.lastIndexOf(':')
    const port = Number(value.slice(colon + 1))
    if (port > 65535) ctx.addIssue({ code: 'custom', message: 'the port is above 65535' })
    return { host: value.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port }
  })

/** Log levels, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** The sections every daemon has: logs, the health and metrics endpoint, and the stop deadline. */
export const baseConfigShape = {
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).prefault({}),
  metrics: z.strictObject({ listen: listenAddress.prefault(DEFAULT_METRICS_LISTEN) }).prefault({}),
  shutdown: z.strictObject({ timeoutMs: z.number().int().min(1).max(600_000).default(DEFAULT_STOP_TIMEOUT_MS) }).prefault({}),
}

/** The configuration every daemon has (see {@link baseConfigShape}). */
export type BaseConfig = z.output<z.ZodObject<typeof baseConfigShape>>

/** A strict schema of the base sections plus a daemon's own sections. */
export function daemonConfigSchema<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject({ ...baseConfigShape, ...shape })
}

/** Where a configuration comes from. */
export interface LoadConfigInit {
  /** The YAML file (optional: defaults and flags may be enough). */
  file?: string | undefined
  /** Dotted keys (`metrics.listen`) whose values replace the file's, from flags. */
  overrides?: Readonly<Record<string, unknown>> | undefined
}

/** Reads, overrides and checks a configuration; throws `ERR_CONFIG` naming the key. */
export function loadConfig<S extends z.ZodType>(schema: S, init: LoadConfigInit = {}): z.output<S> {
  const raw = init.file === undefined ? {} : loadYamlFile(init.file)
  for (const [key, value] of Object.entries(init.overrides ?? {})) setPath(raw, key, value)
  return parseWithSchema(schema, raw, 'config')
}

/** How one flag maps onto a configuration key. */
export interface FlagSpec {
  /** The dotted key the flag overrides. */
  key: string
  /** How its value is read (default string; `list` splits on commas). */
  type?: 'string' | 'number' | 'boolean' | 'list'
}

/** Flags parsed by {@link parseFlags}. */
export interface ParsedFlags {
  /** The `--config FILE` value. */
  file: string | undefined
  /** Dotted key → value, for {@link loadConfig}. */
  overrides: Record<string, unknown>
}

/**
 * Parses `--name value`, `--name=value` and (for booleans) `--name`, plus `--config FILE`.
 * Unknown flags and unreadable values throw `ERR_CONFIG` naming the flag.
 */
export function parseFlags(argv: readonly string[], specs: Readonly<Record<string, FlagSpec>> = {}): ParsedFlags {
  let file: string | undefined
  const overrides: Record<string, unknown> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const match = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg)
    if (match === null) throw createError('ERR_CONFIG', `flag ${JSON.stringify(arg)}: expected --name [value]`)
    const name = match[1]!
    const spec = name === 'config' ? undefined : specs[name]
    if (name !== 'config' && spec === undefined) throw createError('ERR_CONFIG', `flag --${name}: unknown flag`)
    const type = spec?.type ?? 'string'
    let value = match[2]
    if (value === undefined && type === 'boolean') value = 'true'
    if (value === undefined) {
      value = argv[++i]
      if (value === undefined) throw createError('ERR_CONFIG', `flag --${name}: needs a value`)
    }
    if (spec === undefined) file = value
    else overrides[spec.key] = flagValue(name, spec, type, value)
  }
  return { file, overrides }
}

function flagValue(name: string, spec: FlagSpec, type: NonNullable<FlagSpec['type']>, value: string): unknown {
  switch (type) {
    case 'string':
      return value
    case 'list':
      return value.split(',').filter((item) => item !== '')
    case 'number': {
      const number = Number(value)
      if (value.trim() === '' || !Number.isFinite(number)) throw createError('ERR_CONFIG', `flag --${name} (${spec.key}): expected a number`)
      return number
    }
    case 'boolean':
      if (value !== 'true' && value !== 'false') throw createError('ERR_CONFIG', `flag --${name} (${spec.key}): expected true or false`)
      return value === 'true'
  }
}

/**
 * Reads a YAML file that must hold a mapping (a configuration, a policy document) as plain data;
 * throws `ERR_CONFIG` with the file, line and column of a syntax error, a duplicate key, too many
 * aliases, or a file larger than 1 MiB.
 */
export function loadYamlFile(file: string): Record<string, unknown> {
  let text: string
  try {
    if (statSync(file).size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`)
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw createError('ERR_CONFIG', `config: cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true })
  const problem = document.errors[0]
  if (problem !== undefined) {
    const where = problem.linePos?.[0]
    throw createError('ERR_CONFIG', `config: ${file}${where ? `:${where.line}:${where.col}` : ''}: ${problem.message.split('\n')[0]}`)
  }
  let value: unknown
  try {
    value = document.toJS({ maxAliasCount: MAX_YAML_ALIASES })
  } catch (error) {
    throw createError('ERR_CONFIG', `config: ${file}: ${(error as Error).message}`, { cause: error })
  }
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw createError('ERR_CONFIG', `config: ${file}: the document must be a mapping of keys`)
  return value as Record<string, unknown>
}

/** Sets `a.b.c` in `target`, creating plain objects on the way; refuses prototype keys. */
function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.')
  if (parts.some((part) => part === '' || part === '__proto__' || part === 'constructor' || part === 'prototype')) {
    throw createError('ERR_CONFIG', `${key}: not a configuration key`)
  }
  let node = target
  for (const part of parts.slice(0, -1)) {
    const next = Object.hasOwn(node, part) ? node[part] : undefined
    if (next === undefined || next === null) node = node[part] = {}
    else if (typeof next === 'object' && !Array.isArray(next)) node = next as Record<string, unknown>
    else throw createError('ERR_CONFIG', `${key}: ${part} is not a section`)
  }
  node[parts.at(-1)!] = value
}
