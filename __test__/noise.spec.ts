import test from 'ava'
import { loadLibp2pNoise } from '../src/bench/libp2p-noise.js'
import { generateX25519KeyPair, NOISE_PROTOCOLS, NoiseError, NoiseHandshake, type NoisePattern } from '../src/index.js'

const bytes = (u: Uint8Array | { subarray(): Uint8Array }) => Buffer.from(u.subarray())

function handshake(pattern: NoisePattern, prologue = Buffer.from('ztmesh test')) {
  const a = generateX25519KeyPair()
  const b = generateX25519KeyPair()
  const initiator = NoiseHandshake.initiator({
    pattern,
    staticPrivateKey: a.privateKey,
    prologue,
    ...(pattern === 'IK' && { remoteStaticPublicKey: b.publicKey }),
  })
  const responder = NoiseHandshake.responder({ pattern, staticPrivateKey: b.privateKey, prologue })
  return { a, b, initiator, responder }
}

for (const pattern of ['XX', 'XX_BLAKE2S', 'XX_HYBRID'] as const) {
  test(`${pattern}: handshake, payloads, identities, transport and rekey`, (t) => {
    const { a, b, initiator, responder } = handshake(pattern)
    t.is(initiator.protocol, NOISE_PROTOCOLS[pattern])
    t.deepEqual(responder.readMessage(initiator.writeMessage(Buffer.from('one'))), Buffer.from('one'))
    t.deepEqual(initiator.readMessage(responder.writeMessage(Buffer.from('two'))), Buffer.from('two'))
    t.deepEqual(responder.readMessage(initiator.writeMessage()), Buffer.alloc(0))
    t.true(initiator.isFinished && responder.isFinished)
    t.deepEqual(initiator.remoteStaticPublicKey, b.publicKey)
    t.deepEqual(responder.remoteStaticPublicKey, a.publicKey)
    t.deepEqual(initiator.handshakeHash, responder.handshakeHash)
    const tx = initiator.intoTransport()
    const rx = responder.intoTransport()
    for (let i = 0; i < 5; i++) t.deepEqual(rx.decrypt(tx.encrypt(Buffer.from(`m${i}`))), Buffer.from(`m${i}`))
    t.deepEqual(tx.decrypt(rx.encrypt(Buffer.from('back'))), Buffer.from('back'))
    tx.rekeyOutgoing()
    rx.rekeyIncoming()
    t.deepEqual(rx.decrypt(tx.encrypt(Buffer.from('after rekey'))), Buffer.from('after rekey'))
    t.is(tx.sendingNonce, 6)
    const forged = tx.encrypt(Buffer.from('x'))
    forged[0]! ^= 1
    t.throws(() => rx.decrypt(forged), { instanceOf: NoiseError, code: 'ERR_NOISE_DECRYPT' })
    t.throws(() => initiator.intoTransport(), { code: 'ERR_NOISE_STATE' })
  })
}

test('IK: one round trip with the known responder key; an IK initiator needs that key', (t) => {
  const { initiator, responder, a } = handshake('IK')
  responder.readMessage(initiator.writeMessage(Buffer.from('0-RTT')))
  initiator.readMessage(responder.writeMessage())
  t.true(initiator.isFinished && responder.isFinished)
  t.deepEqual(responder.remoteStaticPublicKey, a.publicKey)
  t.deepEqual(initiator.handshakeHash, responder.handshakeHash)
  t.throws(() => NoiseHandshake.initiator({ pattern: 'IK', staticPrivateKey: a.privateKey }), { code: 'ERR_NOISE_CONFIG' })
})

test('interop: ztmesh initiator with @chainsafe/libp2p-noise responder, byte for byte', async (t) => {
  const libp2p = await loadLibp2pNoise()
  const prologue = Buffer.from('interop')
  const ours = generateX25519KeyPair()
  const theirKeys = libp2p.generateKeyPair()
  const i = NoiseHandshake.initiator({ pattern: NOISE_PROTOCOLS.XX, staticPrivateKey: ours.privateKey, prologue })
  const r = libp2p.state(false, theirKeys, prologue)
  t.deepEqual(bytes(r.readMessageA(libp2p.list(i.writeMessage(Buffer.from('hello'))))), Buffer.from('hello'))
  t.deepEqual(i.readMessage(bytes(r.writeMessageB(Buffer.from('from libp2p')))), Buffer.from('from libp2p'))
  t.deepEqual(bytes(r.readMessageC(libp2p.list(i.writeMessage(Buffer.from('done'))))), Buffer.from('done'))
  t.deepEqual(i.handshakeHash, bytes(r.ss.h))
  t.deepEqual(i.remoteStaticPublicKey, bytes(theirKeys.publicKey))
  t.deepEqual(bytes(r.rs!), ours.publicKey)
  const [rIn, rOut] = r.ss.split() // responder: first cipher receives from the initiator
  const tx = i.intoTransport()
  t.deepEqual(bytes(rIn.decryptWithAd(new Uint8Array(0), tx.encrypt(Buffer.from('ping')))), Buffer.from('ping'))
  t.deepEqual(tx.decrypt(bytes(rOut.encryptWithAd(new Uint8Array(0), Buffer.from('pong')))), Buffer.from('pong'))
})

test('interop: @chainsafe/libp2p-noise initiator with ztmesh responder, byte for byte', async (t) => {
  const libp2p = await loadLibp2pNoise()
  const prologue = Buffer.alloc(0)
  const ours = generateX25519KeyPair()
  const theirKeys = libp2p.generateKeyPair()
  const i = libp2p.state(true, theirKeys, prologue)
  const r = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: ours.privateKey })
  t.deepEqual(r.readMessage(bytes(i.writeMessageA(Buffer.from('a')))), Buffer.from('a'))
  t.deepEqual(bytes(i.readMessageB(libp2p.list(r.writeMessage(Buffer.from('b'))))), Buffer.from('b'))
  t.deepEqual(r.readMessage(bytes(i.writeMessageC(Buffer.from('c')))), Buffer.from('c'))
  t.deepEqual(r.handshakeHash, bytes(i.ss.h))
  const [iOut, iIn] = i.ss.split()
  const rx = r.intoTransport()
  t.deepEqual(rx.decrypt(bytes(iOut.encryptWithAd(new Uint8Array(0), Buffer.from('ping')))), Buffer.from('ping'))
  t.deepEqual(bytes(iIn.decryptWithAd(new Uint8Array(0), rx.encrypt(Buffer.from('pong')))), Buffer.from('pong'))
})

test('hybrid mode cannot be stripped or altered', (t) => {
  const a = generateX25519KeyPair()
  const b = generateX25519KeyPair()
  const hybrid = (side: 'initiator' | 'responder', key: Buffer) => NoiseHandshake[side]({ pattern: 'XX_HYBRID', staticPrivateKey: key })
  const classic = (side: 'initiator' | 'responder', key: Buffer) => NoiseHandshake[side]({ pattern: 'XX', staticPrivateKey: key })

  // Hybrid initiator, classical responder: the classical reply does not authenticate.
  let i = hybrid('initiator', a.privateKey)
  let r = classic('responder', b.privateKey)
  r.readMessage(i.writeMessage())
  t.throws(() => i.readMessage(r.writeMessage()), { instanceOf: NoiseError })

  // A man in the middle strips the ML-KEM key from message 1 so it looks classical.
  i = hybrid('initiator', a.privateKey)
  r = hybrid('responder', b.privateKey)
  const m1 = i.writeMessage()
  t.true(m1.length > 32 + 1184 - 1)
  t.throws(() => r.readMessage(m1.subarray(0, 32)), { instanceOf: NoiseError })

  // Flipping a byte of the ML-KEM key: the handshake fails before any transport exists.
  i = hybrid('initiator', a.privateKey)
  r = hybrid('responder', b.privateKey)
  const altered = Buffer.from(i.writeMessage())
  altered[32 + 100]! ^= 0x01
  let failed = false
  try {
    r.readMessage(altered)
    i.readMessage(r.writeMessage())
    r.readMessage(i.writeMessage())
  } catch (error) {
    failed = error instanceof NoiseError
  }
  t.true(failed, 'an altered KEM key must fail the handshake')

  // Classical initiator, hybrid responder.
  i = classic('initiator', a.privateKey)
  r = hybrid('responder', b.privateKey)
  t.throws(() => r.readMessage(i.writeMessage()), { instanceOf: NoiseError })
})

test('different prologues fail the handshake', (t) => {
  const a = generateX25519KeyPair()
  const b = generateX25519KeyPair()
  const i = NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: a.privateKey, prologue: Buffer.from('v1') })
  const r = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: b.privateKey, prologue: Buffer.from('v2') })
  r.readMessage(i.writeMessage())
  t.throws(() => i.readMessage(r.writeMessage()), { code: 'ERR_NOISE_DECRYPT' })
})

test('misuse and malformed input are typed errors', (t) => {
  const a = generateX25519KeyPair()
  t.throws(() => NoiseHandshake.initiator({ pattern: 'Noise_NN_448_AESGCM_SHA512' as NoisePattern, staticPrivateKey: a.privateKey }), {
    code: 'ERR_NOISE_PROTOCOL',
  })
  t.throws(() => NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: Buffer.alloc(31) }), { code: 'ERR_KEY_LENGTH' })
  t.throws(() => NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: 'key' as never }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => NoiseHandshake.initiator(null as never), { code: 'ERR_INVALID_ARG' })
  const i = NoiseHandshake.initiator({ pattern: 'XX', staticPrivateKey: a.privateKey })
  t.throws(() => i.readMessage(Buffer.alloc(32)), { code: 'ERR_NOISE_STATE' }) // not its turn
  t.throws(() => i.intoTransport(), { code: 'ERR_NOISE_STATE' })
  t.throws(() => i.writeMessage(Buffer.alloc(70_000)), { code: 'ERR_NOISE_MESSAGE_SIZE' })
  for (const garbage of [Buffer.alloc(0), Buffer.alloc(5), Buffer.alloc(31, 1)]) {
    const r = NoiseHandshake.responder({ pattern: 'XX', staticPrivateKey: a.privateKey })
    t.throws(() => r.readMessage(garbage), { instanceOf: NoiseError })
  }
})
