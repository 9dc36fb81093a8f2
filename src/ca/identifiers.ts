/** Device ids and tenants: the names certificates, tokens and policies are keyed by. */

import { createError } from '../errors.js'

/** 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with a dot or dash. */
const IDENTIFIER = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/

/** Throws `ERR_INVALID_ARG` unless `value` is a well-formed identifier. */
export function checkIdentifier(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw createError('ERR_INVALID_ARG', `${what} must be 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'`)
  }
}
