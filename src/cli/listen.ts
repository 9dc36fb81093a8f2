/** `HOST:PORT` and `[V6]:PORT` addresses of the command line. */

import { createError } from '../errors.js'

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen)
  const port = Number(match?.[3])
  if (match === null || !(port >= 0 && port <= 65535)) throw createError('ERR_INVALID_ARG', 'an address must be HOST:PORT or [IPV6]:PORT')
  return { host: match[1] ?? match[2]!, port }
}
