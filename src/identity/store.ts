/**
 * All-or-nothing updates of an identity directory. An enrollment or a rotation replaces several
 * files (key blob, certificate, chain, key record) that only make sense together; a crash between
 * two of them must not leave a key beside a certificate for another key. So the new files are
 * written into a staging directory, which one rename turns into a commit; the commit is then
 * applied, and whoever opens the directory next finishes an interrupted one.
 *
 * ```text
 * DIR/.commit.tmp/   being written: discarded when found (it never committed)
 * DIR/.commit/       committed: its files are moved into DIR, in order, then it is removed
 * ```
 *
 * Each file is written with the core's one atomic write (`storage/files.ts`); this module adds
 * only the multi-file commit on top.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'

import { createError } from '../errors.js'
import { syncDirectory, writeFileAtomic } from '../storage/files.js'

const STAGING = '.commit.tmp'
const COMMITTED = '.commit'
/** The commit's own record: the files in the order they are applied, and the files it removes. */
const MANIFEST = '.manifest.json'

/**
 * Replaces `files` (name → contents, applied in this order, each 0600) and removes `remove`
 * in `dir`, as one change.
 */
export function commitFiles(dir: string, files: ReadonlyMap<string, string | Uint8Array>, remove: readonly string[] = []): void {
  finishCommit(dir)
  const staging = join(dir, STAGING)
  mkdirSync(staging, { mode: 0o700 })
  for (const [name, contents] of files) writeFileAtomic(join(staging, name), contents, { createNew: true })
  writeFileAtomic(join(staging, MANIFEST), JSON.stringify({ files: [...files.keys()], remove }), { createNew: true })
  renameSync(staging, join(dir, COMMITTED)) // the commit point
  syncDirectory(dir)
  apply(dir)
}

/** Discards an unfinished staging directory and applies a commit a crash interrupted. */
export function finishCommit(dir: string): void {
  rmSync(join(dir, STAGING), { recursive: true, force: true })
  if (existsSync(join(dir, COMMITTED))) apply(dir)
}

/** Moves a commit's files into place; safe to run again after a crash in the middle. */
function apply(dir: string): void {
  const committed = join(dir, COMMITTED)
  let manifest: { files: string[]; remove: string[] }
  try {
    manifest = JSON.parse(readFileSync(join(committed, MANIFEST), 'utf8')) as typeof manifest
    if (!Array.isArray(manifest.files) || !Array.isArray(manifest.remove)) throw new Error('not a manifest')
  } catch (error) {
    throw createError('ERR_STORAGE', `the identity update in ${committed} is unreadable`, { cause: error })
  }
  for (const name of manifest.files) {
    if (existsSync(join(committed, name))) renameSync(join(committed, name), join(dir, name))
  }
  for (const name of manifest.remove) rmSync(join(dir, name), { force: true })
  syncDirectory(dir)
  rmSync(committed, { recursive: true, force: true })
}
