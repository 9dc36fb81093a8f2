#!/usr/bin/env node
/**
 * The `ztmesh` command line.
 *
 * ```
 * ztmesh bench [--json] [--quick] [--filter OP]
 * ```
 */
import { parseArgs } from 'node:util'

import { formatTable, runBench } from '../bench/index.js'
import { ZtError } from '../errors.js'

const USAGE = `usage: ztmesh <command> [options]

commands:
  bench [--json] [--quick] [--filter OP]   measure ztmesh against the Node alternatives
`

async function bench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, filter: { type: 'string' } },
    strict: true,
  })
  const rows = await runBench({ quick: values.quick ?? false, ...(values.filter !== undefined && { filter: values.filter }) })
  process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatTable(rows)}\n`)
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { bench }

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  const run = command === undefined ? undefined : COMMANDS[command]
  if (run === undefined) {
    process.stderr.write(USAGE)
    return command === undefined || command === 'help' || command === '--help' ? 0 : 2
  }
  try {
    await run(rest)
    return 0
  } catch (error) {
    const code = error instanceof ZtError ? error.code : ((error as { code?: string }).code ?? 'ERR_INTERNAL')
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`${JSON.stringify({ code, message })}\n`)
    return code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code.startsWith('ERR_PARSE_ARGS') ? 2 : 1
  }
}

process.exitCode = await main(process.argv.slice(2))
