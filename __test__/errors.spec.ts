import test from 'ava'

import { AeadKey, createError, CryptoError, ERROR_CODES, InternalError, isErrorCode, ZtError } from '../src/index.js'
import { errorClassFor } from '../src/errors.js'
import { callNative, native } from '../src/native.js'

// A panic inside the binding is caught by `error::guard` and becomes ERR_INTERNAL: proved by the
// addon's Rust unit tests (`cargo test -p ztmesh-napi`), since the default build exports no panic
// trigger. Here: the code it produces crosses N-API like every other code (ERR_DECRYPT below is
// the same `Failure::into_napi` path) and becomes an InternalError.
test('the default build exports no test hook, and ERR_INTERNAL from the binding is an InternalError', (t) => {
  t.deepEqual(Object.keys(native).filter((name) => /panic|testing|fuzzing/i.test(name)), [])
  const key = new AeadKey('chacha20-poly1305', Buffer.alloc(32))
  t.throws(() => key.open(Buffer.alloc(12), Buffer.alloc(17)), { instanceOf: CryptoError, code: 'ERR_DECRYPT' })
  const internal = Object.assign(new Error('internal error'), { code: 'ERR_INTERNAL' })
  const error = t.throws(() => callNative(() => { throw internal }), { instanceOf: InternalError })
  t.is(error?.code, 'ERR_INTERNAL')
  t.true(error instanceof ZtError)
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

test('src/errors.ts lists exactly the core catalog: every code, its class and its meaning', (t) => {
  // The core's `CATALOG` (crates/ztmesh-core/src/error.rs) is the one source of truth;
  // src/error-catalog.ts is generated from it (scripts/gen-errors.mjs, on every build) so that
  // `ErrorCode` is a type, and must not drift from it.
  const classOfArea: Record<string, string> = {
    argument: 'InvalidArgumentError',
    crypto: 'CryptoError',
    noise: 'NoiseError',
    channel: 'ChannelError',
    keystore: 'KeystoreError',
    ca: 'CaError',
    pki: 'PkiError',
    tpm: 'TpmError',
    attest: 'AttestationError',
    wire: 'WireError',
    policy: 'PolicyError',
    mux: 'MuxError',
    config: 'ConfigError',
    storage: 'StorageError',
    internal: 'InternalError',
  }
  const core = native.errorCatalog()
  t.true(core.length > 100, 'the binding exports the catalog')
  t.deepEqual(core.map((entry) => entry.code).sort(), Object.keys(ERROR_CODES).sort(), 'the same codes')
  for (const { code, area, meaning } of core) {
    if (!isErrorCode(code)) continue
    t.is(ERROR_CODES[code], meaning, `${code}: the same meaning`)
    t.is<string | undefined, string | undefined>(errorClassFor(code).name, classOfArea[area], `${code}: the class of its area (${area})`)
  }
})
