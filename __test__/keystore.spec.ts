import { createPublicKey, verify as nodeVerify } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { KeystoreError, Keystore, NoiseHandshake, generateX25519KeyPair, verify, type KdfOptions } from '../src/index.js'

const FAST: KdfOptions = { memoryKib: 64, iterations: 1, parallelism: 1 }

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ztmesh-ks-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

test('create, generate every kind, reopen, sign and export', async (t) => {
  const path = join(await tempDir(t), 'keys.ztks')
  const ks = await Keystore.create(path, 'correct horse', FAST)
  t.is(ks.path, path)
  const device = ks.generate('device', 'ecdsa-p256')
  t.is(device.publicKey.length, 65)
  ks.generate('gossip', 'ed25519')
  const noise = ks.generate('noise-static', 'x25519')
  ks.generate('db-key', 'secret')
  t.is((await stat(path)).mode & 0o777, 0o600)

  const reopened = await Keystore.open(path, 'correct horse')
  t.deepEqual(reopened.entries().map((e) => e.name).sort(), ['db-key', 'device', 'gossip', 'noise-static'])
  const message = Buffer.from('certificate request')
  const sig = reopened.sign('device', message)
  const jwk = { kty: 'EC', crv: 'P-256', x: device.publicKey.subarray(1, 33).toString('base64url'), y: device.publicKey.subarray(33).toString('base64url') }
  t.true(nodeVerify('sha256', message, createPublicKey({ key: jwk, format: 'jwk' }), sig))
  t.true(verify('ed25519', reopened.publicKey('gossip'), message, reopened.sign('gossip', message)))
  // The stored X25519 key works as a Noise static key.
  const staticKey = reopened.exportPrivateKey('noise-static')
  const peer = generateX25519KeyPair()
  const i = NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: staticKey })
  const r = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: peer.privateKey })
  r.readMessage(i.writeMessage())
  i.readMessage(r.writeMessage())
  r.readMessage(i.writeMessage())
  t.deepEqual(r.remoteStaticPublicKey, noise.publicKey)
  t.throws(() => reopened.sign('noise-static', message), { code: 'ERR_KEYSTORE_KIND' })
  t.throws(() => reopened.sign('nobody', message), { code: 'ERR_KEYSTORE_NOT_FOUND' })
})

test('a wrong passphrase is ERR_KEYSTORE_PASSPHRASE', async (t) => {
  const path = join(await tempDir(t), 'keys.ztks')
  ;(await Keystore.create(path, 'right', FAST)).generate('k', 'ed25519')
  const error = await t.throwsAsync(Keystore.open(path, 'wrong'), { instanceOf: KeystoreError })
  t.is(error?.code, 'ERR_KEYSTORE_PASSPHRASE')
})

test('a truncated or corrupt file is ERR_KEYSTORE_CORRUPT and stays untouched', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'keys.ztks')
  ;(await Keystore.create(path, 'pw', FAST)).generate('k', 'ecdsa-p256')
  const original = await readFile(path)
  for (const cut of [0, 1, 7, 20, Math.floor(original.length / 2), original.length - 1]) {
    await writeFile(path, original.subarray(0, cut))
    await t.throwsAsync(Keystore.open(path, 'pw'), { code: cut === 0 ? 'ERR_KEYSTORE_CORRUPT' : 'ERR_KEYSTORE_CORRUPT' })
    t.deepEqual(await readFile(path), original.subarray(0, cut), 'a failed open never rewrites the file')
  }
  const flipped = Buffer.from(original)
  flipped[flipped.length - 40]! ^= 0xff
  await writeFile(path, flipped)
  await t.throwsAsync(Keystore.open(path, 'pw'), { code: 'ERR_KEYSTORE_CORRUPT' })
  t.deepEqual(await readFile(path), flipped)
  await writeFile(path, Buffer.from('not a keystore at all, just text'))
  await t.throwsAsync(Keystore.open(path, 'pw'), { code: 'ERR_KEYSTORE_CORRUPT' })
})

test('create refuses to overwrite, open of a missing file is NOT_FOUND', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'keys.ztks')
  await Keystore.create(path, 'pw', FAST)
  await t.throwsAsync(Keystore.create(path, 'pw', FAST), { code: 'ERR_KEYSTORE_EXISTS' })
  await t.throwsAsync(Keystore.open(join(dir, 'missing.ztks'), 'pw'), { code: 'ERR_KEYSTORE_NOT_FOUND' })
})

test('names, duplicates, removal and passphrase change', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'keys.ztks')
  const ks = await Keystore.create(path, 'old', FAST)
  t.throws(() => ks.generate('bad name!', 'ed25519'), { code: 'ERR_KEYSTORE_NAME' })
  t.throws(() => ks.generate('', 'ed25519'), { code: 'ERR_KEYSTORE_NAME' })
  t.throws(() => ks.generate('k', 'rsa' as never), { code: 'ERR_KEYSTORE_KIND' })
  const key = ks.generate('k', 'ed25519')
  t.throws(() => ks.generate('k', 'ed25519'), { code: 'ERR_KEYSTORE_ENTRY_EXISTS' })
  t.throws(() => ks.import('x', 'x25519', Buffer.alloc(5)), { code: 'ERR_PRIVATE_KEY' })
  ks.generate('gone', 'secret')
  ks.remove('gone')
  await ks.changePassphrase('new', FAST)
  await t.throwsAsync(Keystore.open(path, 'old'), { code: 'ERR_KEYSTORE_PASSPHRASE' })
  const reopened = await Keystore.open(path, 'new')
  t.deepEqual(reopened.entries().map((e) => e.name), ['k'])
  t.deepEqual(reopened.publicKey('k'), key.publicKey)
  t.deepEqual((await readdir(dir)).sort(), ['keys.ztks'], 'atomic writes leave no temp files')
})
