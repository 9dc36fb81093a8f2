import { diffieHellman, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'

import { ml_kem768 } from '@noble/post-quantum/ml-kem.js'
import test from 'ava'

import {
  generateX25519KeyPair,
  MlKem768SecretKey,
  mlkem768Encapsulate,
  x25519PublicKey,
  x25519SharedSecret,
  XWING_CIPHERTEXT_LENGTH,
  XWING_PUBLIC_KEY_LENGTH,
  XWingSecretKey,
  xwingEncapsulate,
} from '../src/index.js'

test('generateX25519KeyPair returns raw 32-byte keys that agree with node:crypto', (t) => {
  const ours = generateX25519KeyPair()
  t.true(Buffer.isBuffer(ours.publicKey) && Buffer.isBuffer(ours.privateKey))
  t.is(ours.publicKey.length, 32)
  t.is(ours.privateKey.length, 32)
  t.deepEqual(x25519PublicKey(ours.privateKey), ours.publicKey)
  const theirs = generateKeyPairSync('x25519')
  const theirRaw = Buffer.from(theirs.publicKey.export({ format: 'jwk' }).x!, 'base64url')
  const ourNodeKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: ours.privateKey.toString('base64url'), x: ours.publicKey.toString('base64url') },
    format: 'jwk',
  })
  const nodeSecret = diffieHellman({
    privateKey: theirs.privateKey,
    publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: ours.publicKey.toString('base64url') }, format: 'jwk' }),
  })
  t.deepEqual(x25519SharedSecret(ours.privateKey, theirRaw), nodeSecret)
  t.truthy(ourNodeKey)
  t.throws(() => x25519SharedSecret(ours.privateKey, Buffer.alloc(32)), { code: 'ERR_PUBLIC_KEY' })
  t.throws(() => x25519SharedSecret(Buffer.alloc(31), theirRaw), { code: 'ERR_KEY_LENGTH' })
})

test('X-Wing round trip, seed export and implicit rejection', (t) => {
  const key = XWingSecretKey.generate()
  t.is(key.publicKey.length, XWING_PUBLIC_KEY_LENGTH)
  const { ciphertext, sharedSecret } = xwingEncapsulate(key.publicKey)
  t.is(ciphertext.length, XWING_CIPHERTEXT_LENGTH)
  t.deepEqual(key.decapsulate(ciphertext), sharedSecret)
  t.deepEqual(XWingSecretKey.fromSeed(key.exportSeed()).decapsulate(ciphertext), sharedSecret)
  const tampered = Buffer.from(ciphertext)
  tampered[5]! ^= 1
  t.notDeepEqual(key.decapsulate(tampered), sharedSecret)
})

test('X-Wing draft-06 vector 1 through the Node API', (t) => {
  const key = XWingSecretKey.fromSeed(Buffer.from('7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26', 'hex'))
  t.is(key.publicKey.subarray(0, 8).toString('hex'), 'e2236b35a8c24b39')
})

test('ML-KEM-768 interoperates with @noble/post-quantum in both directions', (t) => {
  const ours = MlKem768SecretKey.generate()
  const toUs = ml_kem768.encapsulate(ours.publicKey)
  t.deepEqual(ours.decapsulate(toUs.cipherText), Buffer.from(toUs.sharedSecret))
  const theirs = ml_kem768.keygen()
  const toThem = mlkem768Encapsulate(theirs.publicKey)
  t.deepEqual(Buffer.from(ml_kem768.decapsulate(toThem.ciphertext, theirs.secretKey)), toThem.sharedSecret)
})

test('KEM inputs of the wrong size or shape are typed errors', (t) => {
  const key = XWingSecretKey.generate()
  t.throws(() => XWingSecretKey.fromSeed(Buffer.alloc(31)), { code: 'ERR_KEY_LENGTH' })
  t.throws(() => xwingEncapsulate(Buffer.alloc(1215)), { code: 'ERR_KEY_LENGTH' })
  t.throws(() => key.decapsulate(Buffer.alloc(1119)), { code: 'ERR_CIPHERTEXT' })
  const badKey = Buffer.from(key.publicKey)
  badKey.fill(0xff, 0, 384)
  t.throws(() => xwingEncapsulate(badKey), { code: 'ERR_PUBLIC_KEY' })
  t.throws(() => mlkem768Encapsulate(Buffer.alloc(1184, 0xff)), { code: 'ERR_PUBLIC_KEY' })
  t.throws(() => MlKem768SecretKey.generate().decapsulate(Buffer.alloc(10)), { code: 'ERR_CIPHERTEXT' })
  t.throws(() => key.decapsulate('ciphertext' as never), { code: 'ERR_INVALID_ARG' })
})
