#!/usr/bin/env node
// The test command of README.md and CI: compiles the TypeScript (the CLI tests run dist/, which
// must never be stale), runs the Rust tests, then the ava suite, then prints one plain closing
// line `N passed, N failed` (CI reads that line, not the runners' own summaries).
import { spawn } from 'node:child_process'
import { tpmBuildSupport } from './tpm-support.mjs'

/** Runs a command, echoing its output, and returns the output and exit code. */
function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    let output = ''
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk
        ;(stream === child.stdout ? process.stdout : process.stderr).write(chunk)
      })
    }
    child.on('close', (code, signal) => resolve({ output, code: code ?? (signal ? 1 : 0) }))
  })
}

let passed = 0
let failed = 0

// A clean build of dist/ (the CLI tests and the Rust interop tests run it), never a stale one.
const tsc = await run('npm', ['run', '--silent', 'build:ts'])
if (tsc.code !== 0) failed += 1

// With TPM support, the core's TPM tests run against swtpm (without swtpm they fail under CI and
// say why they did not run elsewhere). Under CI, a build without TPM support is itself a failure:
// the TPM tests would not even compile.
const inCi = !['', '0', 'false'].includes((process.env.CI ?? '').trim())
const tpm = tpmBuildSupport()
if (!tpm.ok && inCi) {
  console.error(`FAILED: CI=true and the TPM tests cannot be built: ${tpm.reason}`)
  failed += 1
}
const features = tpm.ok ? ['--features', 'ztmesh-core/tpm'] : []
// --no-fail-fast: one failing test binary must not hide the results of the others.
const cargo = await run('cargo', ['test', '--workspace', '--no-fail-fast', ...features, '--color', 'never'])
for (const match of cargo.output.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
  passed += Number(match[1])
  failed += Number(match[2])
}
if (cargo.code !== 0 && !/test result: FAILED/.test(cargo.output)) failed += 1 // did not build or crashed

const ava = await run('npx', ['ava', '--tap'], { env: { ...process.env, FORCE_COLOR: '0' } })
const tapPass = ava.output.match(/^# pass (\d+)/m)
const tapFail = ava.output.match(/^# fail (\d+)/m)
passed += tapPass ? Number(tapPass[1]) : 0
failed += tapFail ? Number(tapFail[1]) : 0
if (ava.code !== 0 && !(tapFail && Number(tapFail[1]) > 0)) failed += 1 // crashed or timed out

console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 || tsc.code !== 0 || cargo.code !== 0 || ava.code !== 0 ? 1 : 0)
