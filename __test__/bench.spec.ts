import test from 'ava'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

// The shape of `ztmesh bench --json`, not its speed: speed is measured by the bench itself.
test('bench --json prints {op, ztmesh_ns, baseline, baseline_ns, ratio} rows', async (t) => {
  const { stdout } = await run('node', [join(process.cwd(), 'dist/cli/main.js'), 'bench', '--json', '--quick', '--filter', 'verify-peer'], { timeout: 120_000 })
  const rows = JSON.parse(stdout) as Array<Record<string, unknown>>
  t.is(rows.length, 1)
  const [row] = rows
  t.is(row!.op, 'verify-peer')
  for (const key of ['ztmesh_ns', 'baseline_ns', 'ratio']) t.true(typeof row![key] === 'number' && (row![key] as number) > 0, key)
  t.is(typeof row!.baseline, 'string')
  t.true(Math.abs((row!.ratio as number) - (row!.baseline_ns as number) / (row!.ztmesh_ns as number)) < 0.02 * (row!.ratio as number) + 0.01)
})

test('unknown commands and options exit non-zero with usage or a typed error', async (t) => {
  const cli = join(process.cwd(), 'dist/cli/main.js')
  const unknown = await run('node', [cli, 'nonsense']).catch((e: { code: number; stderr: string }) => e)
  t.is((unknown as { code: number }).code, 2)
  const badOption = await run('node', [cli, 'bench', '--nope']).catch((e: { code: number; stderr: string }) => e)
  t.is((badOption as { code: number }).code, 2)
  t.regex((badOption as { stderr: string }).stderr, /"code":"ERR_PARSE_ARGS/)
})
