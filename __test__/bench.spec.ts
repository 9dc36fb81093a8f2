import test from 'ava'
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { tpmTest } from './helpers/swtpm.js'

const run = promisify(execFile)

// The shape of `ztmesh bench --json`, not its speed: speed is measured by the bench itself.
test('bench --json prints {op, ztmesh_ns, baseline, baseline_ns, ratio} rows', async (t) => {
  const { stdout } = await run('node', [join(process.cwd(), 'dist/cli/main.js'), 'bench', '--json', '--quick', '--filter', 'verify-peer'], { timeout: 120_000 })
  const { rows, idle_memory } = JSON.parse(stdout) as { rows: Array<Record<string, unknown>>; idle_memory: unknown[] }
  t.deepEqual(idle_memory, [], 'the memory of idle connections runs only when asked for')
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

test('bench --filter idle-memory measures idle connections of each side in its own process', async (t) => {
  const { stdout } = await run('node', [join(process.cwd(), 'dist/cli/main.js'), 'bench', '--json', '--quick', '--filter', 'idle-memory'], { timeout: 120_000 })
  const { rows, idle_memory } = JSON.parse(stdout) as { rows: unknown[]; idle_memory: Array<Record<string, unknown>> }
  t.deepEqual(rows, [])
  t.deepEqual(idle_memory.map((m) => m.side), ['ztmesh-tls', 'ztmesh-noise', 'node-tls'])
  for (const m of idle_memory) {
    t.is(m.connections, 100)
    t.true(typeof m.rss_per_connection === 'number' && typeof m.js_per_connection === 'number', String(m.side))
    t.true((m.js_per_connection as number) > 0, `${m.side}: open connections hold some memory`)
  }
})

tpmTest('bench --filter tpm reports TPM signing and quotes on a private swtpm, and exits', async (t) => {
  const env = { ...process.env }
  delete env.TPM2TOOLS_TCTI
  delete env.TCTI
  const { stdout } = await run('node', [join(process.cwd(), 'dist/cli/main.js'), 'bench', '--json', '--quick', '--filter', 'tpm'], { timeout: 120_000, env })
  const { rows } = JSON.parse(stdout) as { rows: Array<{ op: string; ztmesh_ns: number; baseline_ns: number }> }
  t.deepEqual(rows.map((row) => row.op), ['tpm-sign', 'tpm-quote'])
  for (const row of rows) t.true(row.ztmesh_ns > 0 && row.baseline_ns > 0, row.op)
})

test('without its baseline package, bench fails with ERR_NOT_FOUND naming the package, not a raw import error', async (t) => {
  // A real installation without @noble/post-quantum: a copy of dist/ beside the binding, whose
  // node_modules holds every installed package but that one.
  const root = process.cwd()
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-bench-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true })
  cpSync(join(root, 'package.json'), join(dir, 'package.json'))
  for (const file of readdirSync(root).filter((name) => name === 'binding.js' || name.endsWith('.node'))) symlinkSync(join(root, file), join(dir, file))
  const modules = join(root, 'node_modules')
  mkdirSync(join(dir, 'node_modules', '@noble'), { recursive: true })
  for (const name of readdirSync(modules)) {
    if (name !== '@noble') symlinkSync(join(modules, name), join(dir, 'node_modules', name))
  }
  for (const name of readdirSync(join(modules, '@noble'))) {
    if (name !== 'post-quantum') symlinkSync(join(modules, '@noble', name), join(dir, 'node_modules', '@noble', name))
  }
  const failed = await run('node', [join(dir, 'dist/cli/main.js'), 'bench', '--json', '--quick', '--filter', 'mlkem768-encap-decap'], { timeout: 120_000 }).catch(
    (e: { code: number; stdout: string; stderr: string }) => e,
  )
  t.is((failed as { code: number }).code, 1)
  const lines = (failed as { stderr: string }).stderr.trim().split('\n')
  t.is(lines.length, 1, 'one line, no stack trace')
  const { code, message } = JSON.parse(lines[0]!) as { code: string; message: string }
  t.is(code, 'ERR_NOT_FOUND')
  t.regex(message, /^bench mlkem768-encap-decap: cannot load @noble\/post-quantum: the baselines are devDependencies/)
})
