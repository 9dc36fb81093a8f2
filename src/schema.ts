/**
 * Schema checks for configuration-shaped data (daemon configuration, policy documents): a zod
 * schema decides, and every mistake becomes one `ConfigError` (`ERR_CONFIG`) whose message names
 * the key, as a dotted path with indices (`rules[2].when.from`).
 *
 * @example
 * ```ts
 * const Config = z.strictObject({ port: z.number().int() })
 * const config = parseWithSchema(Config, JSON.parse(text), 'config') // ERR_CONFIG "config: port: …"
 * ```
 */

import type { z } from 'zod'

import { createError } from './errors.js'

/**
 * Checks `value` against `schema` and returns the parsed, typed value; throws `ERR_CONFIG` naming
 * the first few offending keys (unknown keys are refused when the schema is strict).
 */
export function parseWithSchema<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const problems = result.error.issues.slice(0, 5).map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${keyPath([...issue.path, key])}: unknown key`).join('; ')
    }
    return `${keyPath(issue.path)}: ${issue.message}`
  })
  throw createError('ERR_CONFIG', `${what}: ${problems.join('; ')}`)
}

/** `['rules', 2, 'when', 'from']` → `rules[2].when.from`; the root is `(root)`. */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? String(part) : `.${String(part)}`
  }
  return out === '' ? '(root)' : out
}
