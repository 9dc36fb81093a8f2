// The one atomic file write (the core's) and the identity directory's multi-file commit on top of
// it: whole files, 0600, typed failures that leave the target as it was, and crashes at each step.
import test from 'ava'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { commitFiles, finishCommit } from '../src/identity/store.js'
import { syncDirectory, writeFileAtomic } from '../src/storage/files.js'
import { ZtError } from '../src/index.js'

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-atomic-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('an atomic write replaces the whole file, mode 0600, and leaves no temporary file', (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'trust.pem')
  writeFileAtomic(path, 'first')
  writeFileAtomic(path, Buffer.from('second'))
  t.is(readFileSync(path, 'utf8'), 'second')
  t.is(statSync(path).mode & 0o777, 0o600)
  t.deepEqual(readdirSync(dir), ['trust.pem'])
  t.notThrows(() => syncDirectory(dir))
})

test('createNew refuses an existing file and failures are typed, the target untouched', (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'admin-token')
  writeFileAtomic(path, 'one', { createNew: true })
  t.throws(() => writeFileAtomic(path, 'two', { createNew: true }), { instanceOf: ZtError, code: 'ERR_FILE_EXISTS' })
  t.is(readFileSync(path, 'utf8'), 'one')
  t.throws(() => writeFileAtomic(join(dir, 'missing', 'file'), 'x'), { instanceOf: ZtError, code: 'ERR_FILE_IO' })
  mkdirSync(join(dir, 'blocked'))
  t.throws(() => writeFileAtomic(join(dir, 'blocked'), 'x'), { code: 'ERR_FILE_IO' })
  t.throws(() => syncDirectory(join(dir, 'missing')), { code: 'ERR_FILE_IO' })
  t.deepEqual(readdirSync(dir).sort(), ['admin-token', 'blocked'])
})

test('a commit replaces several files together; a failure before the commit point changes nothing', (t) => {
  const dir = tempDir(t)
  commitFiles(dir, new Map([['key.json', '{"v":1}'], ['cert.pem', 'cert-1']]))
  t.deepEqual(readdirSync(dir).sort(), ['cert.pem', 'key.json'])
  for (const name of ['cert.pem', 'key.json']) t.is(statSync(join(dir, name)).mode & 0o777, 0o600)
  // A staged write that fails (a name the staging directory cannot hold) aborts the whole commit.
  t.throws(() => commitFiles(dir, new Map([['cert.pem', 'cert-2'], ['no-dir/key.json', 'x']]), ['key.json']), { code: 'ERR_FILE_IO' })
  t.is(readFileSync(join(dir, 'cert.pem'), 'utf8'), 'cert-1')
  t.true(existsSync(join(dir, 'key.json')))
  // As after a crash there: the next opener discards the staging directory.
  finishCommit(dir)
  t.deepEqual(readdirSync(dir).sort(), ['cert.pem', 'key.json'])
  // A crash after the commit point, half applied: the rest is applied, in order, and removals done.
  mkdirSync(join(dir, '.commit'))
  writeFileSync(join(dir, '.commit', '.manifest.json'), JSON.stringify({ files: ['cert.pem', 'chain.pem'], remove: ['key.json'] }))
  writeFileSync(join(dir, '.commit', 'chain.pem'), 'chain-3')
  finishCommit(dir)
  t.deepEqual(readdirSync(dir).sort(), ['cert.pem', 'chain.pem'])
  t.is(readFileSync(join(dir, 'chain.pem'), 'utf8'), 'chain-3')
  // An unreadable commit record is a typed error, never a guess.
  mkdirSync(join(dir, '.commit'))
  writeFileSync(join(dir, '.commit', '.manifest.json'), '{"files":')
  t.throws(() => finishCommit(dir), { code: 'ERR_STORAGE' })
})
