import test from 'ava'

import { AeadKey, createError, CryptoError, ERROR_CODES, InternalError, isErrorCode, ZtError } from '../src/index.js'
import { callNative, native } from '../src/native.js'

test('a panic in the binding becomes ERR_INTERNAL and the process keeps running', (t) => {
  const error = t.throws(() => callNative(() => native.panicForTestingOnly()), { instanceOf: InternalError })
  t.is(error?.code, 'ERR_INTERNAL')
  t.true(error instanceof ZtError)
  // Still alive and working afterwards.
  const key = new AeadKey('chacha20-poly1305', Buffer.alloc(32))
  t.is(key.seal(Buffer.alloc(12), Buffer.from('ok')).length, 18)
})

test('every error carries a stable code from the catalog and a named class', (t) => {
  for (const code of Object.keys(ERROR_CODES)) {
    t.true(isErrorCode(code))
    const error = createError(code as keyof typeof ERROR_CODES)
    t.true(error instanceof ZtError)
    t.is<string, string>(error.code, code)
    t.is(error.name, (error.constructor as typeof ZtError).name)
  }
  t.true(createError('ERR_DECRYPT') instanceof CryptoError)
  t.false(isErrorCode('ERR_NOPE'))
})

test('every code the Rust core or the binding can raise is in the catalog', async (t) => {
  const { readdir, readFile } = await import('node:fs/promises')
  const roots = ['crates/ztmesh-core/src', 'src/addon']
  const raised = new Set<string>()
  for (const root of roots) {
    for (const entry of await readdir(root, { recursive: true })) {
      if (!entry.endsWith('.rs')) continue
      const text = await readFile(`${root}/${entry}`, 'utf8')
      for (const match of text.matchAll(/"(ERR_[A-Z0-9_]+)"/g)) raised.add(match[1]!)
    }
  }
  t.true(raised.size > 20, 'the scan found the codes')
  for (const code of raised) t.true(code in ERROR_CODES, `${code} is in ERROR_CODES`)
})
