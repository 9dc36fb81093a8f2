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
    t.is(error.code, code)
    t.is(error.name, (error.constructor as typeof ZtError).name)
  }
  t.true(createError('ERR_DECRYPT') instanceof CryptoError)
  t.false(isErrorCode('ERR_NOPE'))
})
