import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

import test from 'ava'

import { AeadKey, type AeadAlgorithm, CryptoError, InvalidArgumentError } from '../src/index.js'

const ALGORITHMS: Array<[AeadAlgorithm, 'chacha20-poly1305' | 'aes-256-gcm']> = [
  ['chacha20-poly1305', 'chacha20-poly1305'],
  ['aes-256-gcm', 'aes-256-gcm'],
]

function nodeSeal(algorithm: string, key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const cipher = createCipheriv(algorithm as 'aes-256-gcm', key, nonce, { authTagLength: 16 })
  cipher.setAAD(aad)
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
}

test('RFC 8439 §2.8.2 ChaCha20-Poly1305 test vector', (t) => {
  const key = Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex')
  const nonce = Buffer.from('070000004041424344454647', 'hex')
  const aad = Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex')
  const plaintext = Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  )
  const sealed = new AeadKey('chacha20-poly1305', key).seal(nonce, plaintext, aad)
  t.is(sealed.subarray(-16).toString('hex'), '1ae10b594f09e26a7e902ecbd0600691')
  t.is(sealed.subarray(0, 16).toString('hex'), 'd31a8d34648e60db7b86afbc53ef7ec2')
})

test('ciphertexts are byte-identical to node:crypto both ways, for many sizes', (t) => {
  for (const [algorithm, nodeName] of ALGORITHMS) {
    for (const size of [0, 1, 15, 16, 17, 63, 64, 65, 1024, 16 * 1024, 100_000]) {
      const key = randomBytes(32)
      const nonce = randomBytes(12)
      const aad = randomBytes(size % 40)
      const plaintext = randomBytes(size)
      const ours = new AeadKey(algorithm, key)
      const sealed = ours.seal(nonce, plaintext, aad)
      t.deepEqual(sealed, nodeSeal(nodeName, key, nonce, plaintext, aad), `${algorithm} ${size}`)
      const decipher = createDecipheriv(nodeName as 'aes-256-gcm', key, nonce, { authTagLength: 16 })
      decipher.setAAD(aad)
      decipher.setAuthTag(sealed.subarray(-16))
      t.deepEqual(Buffer.concat([decipher.update(sealed.subarray(0, -16)), decipher.final()]), plaintext)
      t.deepEqual(ours.open(nonce, sealed, aad), plaintext)
    }
  }
})

test('sealInto/openInto use the caller buffer and report lengths', (t) => {
  const key = new AeadKey('chacha20-poly1305', randomBytes(32))
  const nonce = randomBytes(12)
  const out = Buffer.alloc(200)
  const n = key.sealInto(nonce, Buffer.from('hello'), out)
  t.is(n, 21)
  const plain = new Uint8Array(100)
  t.is(key.openInto(nonce, out.subarray(0, n), plain), 5)
  t.is(Buffer.from(plain.subarray(0, 5)).toString(), 'hello')
})

test('tampering, truncation, wrong nonce or AAD fail with a coarse ERR_DECRYPT', (t) => {
  for (const [algorithm] of ALGORITHMS) {
    const key = new AeadKey(algorithm, randomBytes(32))
    const nonce = randomBytes(12)
    const sealed = key.seal(nonce, Buffer.from('attack at dawn'), Buffer.from('hdr'))
    for (let i = 0; i < sealed.length; i++) {
      const bad = Buffer.from(sealed)
      bad[i]! ^= 1
      const error = t.throws(() => key.open(nonce, bad, Buffer.from('hdr')), { instanceOf: CryptoError })
      t.is(error?.code, 'ERR_DECRYPT')
      t.is(error?.message, 'decryption failed')
    }
    for (let len = 0; len < sealed.length; len++) {
      t.throws(() => key.open(nonce, sealed.subarray(0, len), Buffer.from('hdr')), { code: 'ERR_DECRYPT' })
    }
    t.throws(() => key.open(randomBytes(12), sealed, Buffer.from('hdr')), { code: 'ERR_DECRYPT' })
    t.throws(() => key.open(nonce, sealed), { code: 'ERR_DECRYPT' })
  }
})

test('bad parameters are typed errors', (t) => {
  t.throws(() => new AeadKey('rot13' as AeadAlgorithm, randomBytes(32)), { code: 'ERR_ALGORITHM' })
  t.throws(() => new AeadKey('aes-256-gcm', randomBytes(16)), { code: 'ERR_KEY_LENGTH' })
  const key = new AeadKey('aes-256-gcm', randomBytes(32))
  t.throws(() => key.seal(randomBytes(8), Buffer.from('x')), { code: 'ERR_NONCE_LENGTH' })
  t.throws(() => key.sealInto(randomBytes(12), Buffer.alloc(10), Buffer.alloc(20)), { code: 'ERR_BUFFER_TOO_SMALL' })
  const shared = Buffer.alloc(64)
  t.throws(() => key.sealInto(randomBytes(12), shared.subarray(0, 16), shared.subarray(8)), {
    code: 'ERR_BUFFER_OVERLAP',
  })
  for (const bad of ['string', 42, null, {}, [1, 2, 3]]) {
    t.throws(() => key.seal(bad as never, Buffer.from('x')), { instanceOf: InvalidArgumentError, code: 'ERR_INVALID_ARG' })
    t.throws(() => key.seal(randomBytes(12), bad as never), { code: 'ERR_INVALID_ARG' })
  }
})

test('sealBatch/openBatch match per-message seals and are all or nothing', (t) => {
  for (const [algorithm, nodeName] of ALGORITHMS) {
    const keyBytes = randomBytes(32)
    const key = new AeadKey(algorithm, keyBytes)
    const lengths = new Uint32Array([0, 1, 64, 100, 3])
    const total = lengths.reduce((a, b) => a + b, 0)
    const plaintexts = randomBytes(total)
    const nonces = randomBytes(12 * lengths.length)
    const aad = Buffer.from('batch header')
    const sealed = Buffer.alloc(total + 16 * lengths.length)
    t.is(key.sealBatch(nonces, plaintexts, lengths, sealed, aad), sealed.length)
    let at = 0
    let from = 0
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!
      const expected = nodeSeal(nodeName, keyBytes, nonces.subarray(12 * i, 12 * i + 12), plaintexts.subarray(from, from + len), aad)
      t.deepEqual(sealed.subarray(at, at + len + 16), expected, `${algorithm} message ${i}`)
      at += len + 16
      from += len
    }
    const opened = Buffer.alloc(total)
    t.is(key.openBatch(nonces, sealed, lengths, opened, aad), total)
    t.deepEqual(opened, plaintexts)
    sealed[sealed.length - 1]! ^= 1
    t.throws(() => key.openBatch(nonces, sealed, lengths, opened, aad), { instanceOf: CryptoError, code: 'ERR_DECRYPT' })
    t.true(opened.every((b) => b === 0), 'a failed batch leaves no plaintext behind')
  }
})

test('malformed batches are typed errors and write nothing', (t) => {
  const key = new AeadKey('chacha20-poly1305', randomBytes(32))
  const out = Buffer.alloc(64, 0xaa)
  t.throws(() => key.sealBatch(Buffer.alloc(12), Buffer.alloc(10), new Uint32Array([11]), out), { code: 'ERR_BATCH_LAYOUT' })
  t.throws(() => key.sealBatch(Buffer.alloc(13), Buffer.alloc(10), new Uint32Array([10]), out), { code: 'ERR_NONCE_LENGTH' })
  t.throws(() => key.sealBatch(Buffer.alloc(24), Buffer.alloc(40), new Uint32Array([20, 20]), out), { code: 'ERR_BUFFER_TOO_SMALL' })
  t.throws(() => key.sealBatch(Buffer.alloc(12), out.subarray(0, 8), new Uint32Array([8]), out.subarray(4)), { code: 'ERR_BUFFER_OVERLAP' })
  t.true(out.every((b) => b === 0xaa))
  t.throws(() => key.openBatch(Buffer.alloc(12), Buffer.alloc(15), new Uint32Array([0]), out), { code: 'ERR_DECRYPT' })
  for (const bad of [[1, 2], 'lengths', Buffer.alloc(4), null]) {
    t.throws(() => key.sealBatch(Buffer.alloc(12), Buffer.alloc(1), bad as never, out), { instanceOf: InvalidArgumentError })
  }
})
