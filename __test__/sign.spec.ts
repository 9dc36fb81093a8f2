import { createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'

import test from 'ava'

import { SigningKey, verify, verifyBatch, verifyBatchAsync, type SignatureAlgorithm, type VerifyItem } from '../src/index.js'

function nodePublicKey(algorithm: SignatureAlgorithm, raw: Buffer): KeyObject {
  if (algorithm === 'ed25519') {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' })
  }
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') },
    format: 'jwk',
  })
}

const ALGORITHMS: SignatureAlgorithm[] = ['ed25519', 'ecdsa-p256-sha256']

test('RFC 8032 §7.1 Ed25519 test vector 2 (one-byte message)', (t) => {
  // PKCS#8 v1 wrapping of the RFC's secret key 4ccd089b…
  const pkcs8 = Buffer.from('302e020100300506032b6570042204204ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', 'hex')
  const key = SigningKey.fromPkcs8('ed25519', pkcs8)
  t.is(key.publicKey.toString('hex'), '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c')
  t.is(
    key.sign(Buffer.from('72', 'hex')).toString('hex'),
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  )
})

test('signatures interoperate with node:crypto in both directions', (t) => {
  for (const algorithm of ALGORITHMS) {
    const key = SigningKey.generate(algorithm)
    const message = Buffer.from(`message for ${algorithm}`)
    const nodeKey = nodePublicKey(algorithm, key.publicKey)
    const digest = algorithm === 'ed25519' ? null : 'sha256'
    t.true(nodeVerify(digest, message, nodeKey, key.sign(message)), `node verifies ztmesh ${algorithm}`)
    // node:crypto's own key: its signature verifies here, and its PKCS#8 imports here.
    const nodePair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const jwk = nodePair.publicKey.export({ format: 'jwk' })
    const raw =
      algorithm === 'ed25519'
        ? Buffer.from(jwk.x!, 'base64url')
        : Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
    const nodeSig = nodeSign(digest, message, nodePair.privateKey)
    t.true(verify(algorithm, raw, message, nodeSig), `ztmesh verifies node ${algorithm}`)
    const imported = SigningKey.fromPkcs8(algorithm, nodePair.privateKey.export({ format: 'der', type: 'pkcs8' }))
    t.deepEqual(imported.publicKey, raw)
    t.true(nodeVerify(digest, message, nodePair.publicKey, imported.sign(message)))
    t.false(verify(algorithm, raw, Buffer.from('other'), nodeSig))
  }
})

test('malformed keys and signatures verify as false, unknown algorithms throw', (t) => {
  for (const algorithm of ALGORITHMS) {
    t.false(verify(algorithm, Buffer.alloc(0), Buffer.from('m'), Buffer.alloc(0)))
    t.false(verify(algorithm, Buffer.alloc(65, 4), Buffer.from('m'), Buffer.alloc(64)))
  }
  t.throws(() => verify('rsa' as SignatureAlgorithm, Buffer.alloc(32), Buffer.alloc(1), Buffer.alloc(64)), {
    code: 'ERR_ALGORITHM',
  })
  t.throws(() => SigningKey.fromPkcs8('ed25519', Buffer.from('junk')), { code: 'ERR_PRIVATE_KEY' })
  t.throws(() => SigningKey.generate(undefined as never), { code: 'ERR_INVALID_ARG' })
})

function batch(size: number): { items: VerifyItem[]; expected: boolean[] } {
  const keys = ALGORITHMS.map((a) => SigningKey.generate(a))
  const items: VerifyItem[] = []
  const expected: boolean[] = []
  for (let i = 0; i < size; i++) {
    const key = keys[i % 2]!
    const message = Buffer.from(`item ${i}`)
    const signature = key.sign(message)
    const good = i % 7 !== 3
    items.push({ algorithm: key.algorithm, publicKey: key.publicKey, message: good ? message : Buffer.from('forged'), signature })
    expected.push(good)
  }
  return { items, expected }
}

test('batch verification returns one verdict per item, in order, sync and async', async (t) => {
  for (const size of [0, 1, 7, 8, 64, 129]) {
    const { items, expected } = batch(size)
    t.deepEqual(verifyBatch(items), expected, `sync ${size}`)
    t.deepEqual(await verifyBatchAsync(items), expected, `async ${size}`)
  }
})

test('batch verification rejects malformed items with typed errors', async (t) => {
  t.throws(() => verifyBatch([{ algorithm: 'md5' as SignatureAlgorithm, publicKey: Buffer.alloc(1), message: Buffer.alloc(1), signature: Buffer.alloc(1) }]), {
    code: 'ERR_ALGORITHM',
  })
  t.throws(() => verifyBatch([{ algorithm: 'ed25519' } as VerifyItem]), { code: 'ERR_INVALID_ARG' })
  t.throws(() => verifyBatch('nope' as never), { code: 'ERR_INVALID_ARG' })
  await t.throwsAsync(
    verifyBatchAsync([{ algorithm: 'md5' as SignatureAlgorithm, publicKey: Buffer.alloc(1), message: Buffer.alloc(1), signature: Buffer.alloc(1) }]),
    { code: 'ERR_ALGORITHM' },
  )
})
