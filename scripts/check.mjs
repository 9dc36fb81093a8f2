#!/usr/bin/env node
// The static checks of README.md and CI, each a command that fails on any finding: formatting,
// clippy (warnings are errors, so the addon's `deny(clippy::all)` holds), the library clippy'd
// as shipped (without the `testing` feature the tests turn on), the TypeScript type check of
// src/ and __test__/ (tsx strips types when the tests run), and the fuzz targets built (they are
// their own cargo package, so nothing else compiles them). Prints each step's time.
import { copyFileSync, existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tpmBuildSupport } from './tpm-support.mjs'

const tpm = tpmBuildSupport().ok ? ['--features', 'ztmesh-core/tpm'] : []
// The fuzz crate has no lock file of its own: start from the project's, so it builds the
// dependency versions the project tests.
const fuzzLock = 'crates/ztmesh-core/fuzz/Cargo.lock'
if (!existsSync(fuzzLock)) copyFileSync('Cargo.lock', fuzzLock)

const steps = [
  ['cargo', ['fmt', '--all', '--check']],
  ['cargo', ['clippy', '--workspace', '--all-targets', ...tpm, '--', '-D', 'warnings']],
  ['cargo', ['clippy', '--workspace', ...tpm, '--', '-D', 'warnings']],
  ['npx', ['tsc', '-p', 'tsconfig.test.json']],
  // Plain stable cargo builds them (libFuzzer links without the sanitizer; `cargo +nightly fuzz`
  // adds it); warnings are errors here too (dependencies' lints stay capped).
  ['cargo', ['build', '--manifest-path', 'crates/ztmesh-core/fuzz/Cargo.toml', '--bins'], { RUSTFLAGS: '-D warnings' }],
]
for (const [command, args, env = {}] of steps) {
  const line = [command, ...args].join(' ')
  console.log(`check: ${line}`)
  const started = Date.now()
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...env } })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (result.status !== 0) {
    console.error(`check FAILED (${seconds} s): ${line}`)
    process.exit(1)
  }
  console.log(`check ok (${seconds} s): ${line}`)
}
