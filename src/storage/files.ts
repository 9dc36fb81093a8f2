/**
 * The one atomic file write, the core's (`ztmesh_core::atomic_file`): every file that holds
 * security state (identity files, trust bundles, CA secrets, the keystore) is written through it.
 *
 * A fsynced temporary file (mode 0600) is renamed over the target and the directory fsynced: a
 * crash leaves the old contents or the new, never a mix. Failures are `ERR_FILE_IO`, or
 * `ERR_FILE_EXISTS` when `createNew` finds the file there; the target is then untouched.
 *
 * @example
 * ```ts
 * writeFileAtomic('/var/lib/ztmesh/trust.pem', bundlePem)
 * writeFileAtomic('/var/lib/ztmesh/ca/admin-token', token, { createNew: true })
 * ```
 */
import { callNative, native } from '../native.js'

/** Writes `contents` to `path` atomically, mode 0600. */
export function writeFileAtomic(path: string, contents: string | Uint8Array, options: { createNew?: boolean } = {}): void {
  const bytes = typeof contents === 'string' ? Buffer.from(contents, 'utf8') : contents
  callNative(() => native.writeFileAtomic(path, bytes, options.createNew === true))
}

/** Fsyncs the directory `dir`, so that the renames and removals made in it are durable. */
export function syncDirectory(dir: string): void {
  callNative(() => native.syncDirectory(dir))
}
