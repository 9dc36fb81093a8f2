// Whether this machine can build the addon's TPM support: tss-esapi needs tpm2-tss (found through
// pkg-config) and libclang (for bindgen). Used by the native build and by the test command.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'

/** `{ ok: true }`, or `{ ok: false, reason }` naming what is missing. */
export function tpmBuildSupport() {
  if (process.env.ZTMESH_TPM === '0') return { ok: false, reason: 'ZTMESH_TPM=0' }
  const pkgConfig = spawnSync('pkg-config', ['--exists', 'tss2-esys', 'tss2-tctildr', 'tss2-mu', 'tss2-sys'])
  if (pkgConfig.error !== undefined || pkgConfig.status !== 0) return { ok: false, reason: 'tpm2-tss not found by pkg-config (Debian: libtss2-dev pkg-config)' }
  if (!hasLibclang()) return { ok: false, reason: 'libclang not found (Debian: libclang-dev)' }
  return { ok: true }
}

function hasLibclang() {
  if (process.env.LIBCLANG_PATH) return true
  for (const dir of ['/usr/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/local/lib']) {
    try {
      if (readdirSync(dir).some((name) => /^libclang(-\d+)?\.so/.test(name))) return true
      if (readdirSync(dir).some((name) => name.startsWith('llvm-') && readdirSync(`${dir}/${name}/lib`).some((n) => n.startsWith('libclang')))) return true
    } catch {
      // not there: try the next
    }
  }
  return false
}
