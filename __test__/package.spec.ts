import test from 'ava'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')

/** Every name the README's code blocks import from 'ztmesh', and the API its prose promises. */
function readmeNames(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const names = new Set<string>()
  for (const block of readme.matchAll(/```ts\n([\s\S]*?)```/g)) {
    for (const [, list] of block[1]!.matchAll(/import\s*\{([^}]*)\}\s*from\s*'ztmesh'/g)) {
      for (const name of list!.split(',')) if (name.trim() !== '') names.add(name.trim().replace(/^type\s+/, ''))
    }
  }
  return [...names]
}

const PROMISED = ['DeviceIdentity', 'CaService', 'AuditLog', 'ERROR_CODES', 'tpmSupported', 'verifyPeer', 'createPolicyDecisionPoint', 'PolicyDecisionPoint', 'parsePolicy']
/** The daemon composition root, a subpath of its own (it loads pino, prom-client and yaml). */
const DAEMON = ['runDaemon', 'daemonConfigSchema', 'listenAddress', 'loadConfig', 'loadYamlFile', 'parseFlags', 'Lifecycle', 'MetricsServer', 'createLogger', 'EXIT_CONFIG']

const keysOf = async (project: string, specifier: string): Promise<Set<string>> => {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', `const m = await import('${specifier}'); console.log(JSON.stringify(Object.keys(m)))`], { cwd: project })
  return new Set(JSON.parse(stdout) as string[])
}

/**
 * Installs the package the way npm would lay it out for a user: a project directory whose
 * node_modules/ztmesh holds package.json, the compiled dist/ and the binding, so `import 'ztmesh'`
 * goes through package.json `exports`. dist/ is compiled into the temporary package, so the
 * repository's dist/ (which other tests run) is left alone.
 */
async function install(project: string): Promise<string> {
  const pkg = join(project, 'node_modules', 'ztmesh')
  mkdirSync(pkg, { recursive: true })
  await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', join(pkg, 'dist')], { cwd: ROOT })
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'))
  for (const file of readdirSync(ROOT).filter((name) => name.startsWith('binding.') || name.endsWith('.node'))) symlinkSync(join(ROOT, file), join(pkg, file))
  // The package's own dependencies, as npm would install them beside it.
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'))
  return project
}

// One installation (one compile) for the whole file.
const PROJECT = mkdtempSync(join(tmpdir(), 'ztmesh-package-'))
let installation: Promise<string> | undefined
const installed = (): Promise<string> => (installation ??= install(PROJECT))
test.after.always(() => rmSync(PROJECT, { recursive: true, force: true }))

test('the package imports by name, and exports every name the README imports or promises', async (t) => {
  const project = await installed()
  const names = readmeNames()
  t.true(names.includes('DeviceIdentity') || names.includes('AeadKey'), 'the README scan found imports')
  const exported = await keysOf(project, 'ztmesh')
  for (const name of [...names, ...PROMISED]) t.true(exported.has(name), `ztmesh exports ${name}`)
  const daemon = await keysOf(project, 'ztmesh/daemon')
  for (const name of DAEMON) t.true(daemon.has(name), `ztmesh/daemon exports ${name}`)
  // Only the root entry point is public: internals are not reachable by path.
  await t.throwsAsync(run(process.execPath, ['--input-type=module', '-e', "await import('ztmesh/dist/native.js')"], { cwd: project }), { message: /ERR_PACKAGE_PATH_NOT_EXPORTED/ })
})

test("the README's imports type-check against the published declarations", async (t) => {
  const project = await installed()
  const imports = readmeNames()
  writeFileSync(
    join(project, 'user.ts'),
    `import { ${imports.join(', ')} } from 'ztmesh'\nexport const used: unknown[] = [${imports.join(', ')}]\n` +
      `import { createPolicyDecisionPoint as create, type Decision } from 'ztmesh'\n` +
      `import { daemonConfigSchema, type Component } from 'ztmesh/daemon'\n` +
      `export const schema = daemonConfigSchema({})\n` +
      `export const component: Component = { name: 'c', start() {}, stop() {} }\n` +
      `const pdp = create({ policy: { version: 1, tenant: 't', rules: [] }, audit: { append() {} } })\n` +
      `export const decision: Decision = pdp.decide({ deviceId: 'd', tenant: 't', roles: [] }, 'link.connect')\n`,
  )
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] }, files: ['user.ts'] }),
  )
  const result = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project }).catch((error: { stdout: string }) => error)
  t.is('stdout' in result ? result.stdout : '', '', 'no type errors')
})

test('the published package holds no benchmark or test harness code', async (t) => {
  // What `npm pack` would publish, read from package.json `files` (scripts off: no build).
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT })
  const paths = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((file) => file.path)
  t.true(paths.includes('dist/index.js'), 'the library is in it')
  t.true(paths.includes('binding.js'), 'the binding is in it')
  t.deepEqual(paths.filter((path) => /^(dist\/(bench|harness)\/|__test__\/|src\/)/.test(path)), [])
})
