// Builds the release addon, with TPM support when this machine can build it, and says clearly
// when it cannot (everything else works without it).
import { spawnSync } from 'node:child_process'
import { tpmBuildSupport } from './tpm-support.mjs'

const args = ['build', '--platform', '--release', '--esm', '--js', 'binding.js', '--dts', 'binding.d.ts']
const support = tpmBuildSupport()
if (support.ok) args.push('--features', 'tpm')
else console.warn(`ztmesh: building WITHOUT TPM support: ${support.reason}. The software keystore still works; install it and run \`npm run build:native\` for TPM keys.`)
const result = spawnSync('napi', args, { stdio: 'inherit' })
process.exit(result.status ?? 1)
