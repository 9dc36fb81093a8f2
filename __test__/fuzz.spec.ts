// Random and mutated inputs at every native entry point that parses untrusted bytes: each call
// must either succeed or throw a ZtError with a catalogued code — never crash, hang or throw
// anything else. The PRNG is seeded, so a failure names the input that caused it.
import { isIP } from 'node:net'

import test from 'ava'
import packet from 'dns-packet'

import * as protocol from '../src/protocol/index.js'
import {
  AeadKey,
  ERROR_CODES,
  generateX25519KeyPair,
  NoiseHandshake,
  SigningKey,
  verify,
  XWingSecretKey,
  xwingEncapsulate,
  ZtError,
  type NoisePattern,
  Signer,
} from '../src/index.js'
import { NoiseLinkContext } from '../src/channels/noise-link.js'
import { instanceName, readResponse } from '../src/discovery/announcement.js'
import { callNative } from '../src/native.js'
import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, TrustStore } from '../src/primitives/pki/index.js'

const ITERATIONS = 10_000

function prng(seed: number): () => number {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 2 ** 32
  }
}

function randomBytes(next: () => number, max: number): Buffer {
  const out = Buffer.alloc(Math.floor(next() * max))
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(next() * 256)
  return out
}

/** Half random bytes, half a valid input with a few bytes flipped, cut or extended. */
function mutate(next: () => number, valid: Buffer): Buffer {
  if (next() < 0.3) return randomBytes(next, valid.length * 2 + 8)
  const out = Buffer.from(valid)
  const flips = 1 + Math.floor(next() * 4)
  for (let f = 0; f < flips && out.length > 0; f++) out[Math.floor(next() * out.length)]! ^= 1 + Math.floor(next() * 255)
  if (next() < 0.2) return out.subarray(0, Math.floor(next() * out.length))
  if (next() < 0.1) return Buffer.concat([out, randomBytes(next, 64)])
  return out
}

function expectTyped(t: { fail(m: string): void }, label: string, call: () => unknown): void {
  try {
    call()
  } catch (error) {
    if (!(error instanceof ZtError) || !Object.hasOwn(ERROR_CODES, error.code)) {
      t.fail(`${label}: untyped error ${String(error)}`)
    }
  }
}

test(`Noise handshake messages: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0001)
  const patterns: NoisePattern[] = ['XX', 'XX_BLAKE2S', 'IK', 'XX_HYBRID']
  const a = generateX25519KeyPair()
  const b = generateX25519KeyPair()
  for (let n = 0; n < ITERATIONS; n++) {
    const pattern = patterns[n % patterns.length]!
    const opts = (key: Buffer, remote?: Buffer) => ({ pattern, staticPrivateKey: key, ...(pattern === 'IK' && remote && { remoteStaticPublicKey: remote }) })
    const i = NoiseHandshake.initiator(opts(a.privateKey, b.publicKey))
    const r = NoiseHandshake.responder(opts(b.privateKey))
    const m1 = i.writeMessage()
    if (n % 2 === 0) {
      expectTyped(t, `${pattern} msg1 #${n}`, () => r.readMessage(mutate(next, m1)))
    } else {
      r.readMessage(m1)
      const m2 = r.writeMessage()
      expectTyped(t, `${pattern} msg2 #${n}`, () => i.readMessage(mutate(next, m2)))
    }
  }
  t.pass()
})

test(`AEAD open: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0002)
  const keys = [new AeadKey('chacha20-poly1305', Buffer.alloc(32, 1)), new AeadKey('aes-256-gcm', Buffer.alloc(32, 2))]
  const nonce = Buffer.alloc(12)
  const valid = keys.map((k) => k.seal(nonce, Buffer.from('a valid message of some length')))
  let opened = 0
  for (let n = 0; n < ITERATIONS; n++) {
    const k = n % 2
    const input = mutate(next, valid[k]!)
    expectTyped(t, `open #${n}`, () => {
      keys[k]!.open(next() < 0.05 ? randomBytes(next, 16) : nonce, input)
      opened++
    })
  }
  t.true(opened < ITERATIONS / 10, 'mutated ciphertexts must almost never open')
})

test(`AEAD batch open: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0005)
  const key = new AeadKey('chacha20-poly1305', Buffer.alloc(32, 3))
  const lengths = new Uint32Array([5, 0, 17])
  const nonces = Buffer.alloc(36, 9)
  const sealed = Buffer.alloc(22 + 48)
  key.sealBatch(nonces, Buffer.alloc(22, 7), lengths, sealed)
  const out = Buffer.alloc(64)
  let opened = 0
  for (let n = 0; n < ITERATIONS; n++) {
    const input = mutate(next, sealed)
    const claimed = next() < 0.1 ? Uint32Array.from({ length: Math.floor(next() * 5) }, () => Math.floor(next() * 2 ** 32)) : lengths
    const nonceInput = next() < 0.05 ? randomBytes(next, 48) : nonces
    expectTyped(t, `openBatch #${n}`, () => {
      key.openBatch(nonceInput, input, claimed, out)
      opened++
    })
  }
  t.true(opened < ITERATIONS / 10, 'mutated batches must almost never open')
})

test(`signature verify: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0003)
  const keys = [SigningKey.generate('ed25519'), SigningKey.generate('ecdsa-p256-sha256')]
  const message = Buffer.from('signed')
  const sigs = keys.map((k) => k.sign(message))
  for (let n = 0; n < ITERATIONS; n++) {
    const k = n % 2
    const key = keys[k]!
    const publicKey = next() < 0.3 ? mutate(next, key.publicKey) : key.publicKey
    expectTyped(t, `verify #${n}`, () => {
      if (verify(key.algorithm, publicKey, message, mutate(next, sigs[k]!)) && publicKey !== key.publicKey) {
        t.fail(`verify #${n}: accepted a mutated key`)
      }
    })
  }
  t.pass()
})

test(`X-Wing decapsulate and encapsulate: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0004)
  const key = XWingSecretKey.generate()
  const { ciphertext } = xwingEncapsulate(key.publicKey)
  for (let n = 0; n < ITERATIONS; n++) {
    if (n % 10 === 0) expectTyped(t, `encapsulate #${n}`, () => xwingEncapsulate(mutate(next, key.publicKey)))
    else expectTyped(t, `decapsulate #${n}`, () => key.decapsulate(mutate(next, ciphertext)))
  }
  t.pass()
})

test(`Noise link handshake: ${ITERATIONS / 5} random and mutated first flights and answers, both roles`, (t) => {
  const next = prng(0x5eed_0006)
  const root = CertificateAuthority.createRoot({ commonName: 'Fuzz Root', organisation: 'Fuzz' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Fuzz Site', organisation: 'Fuzz' })
  const key = generateP256Key()
  const cert = CertificateAuthority.load(site.certificatePem, site.privateKey).issue(buildCsr(key, 'fuzz', 'fuzz'), { deviceId: 'fuzz', tenant: 'fuzz' })
  const context = new NoiseLinkContext({ identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(key) }, trust: TrustStore.fromPem(root.certificatePem), revocations: new RevocationSet() })
  const flight = callNative(() => context.handshake('initiator').feed(Buffer.alloc(0)))
  const answer = callNative(() => context.handshake('responder').feed(flight))
  for (let n = 0; n < ITERATIONS / 5; n++) {
    const [role, valid] = n % 2 === 0 ? (['responder', flight] as const) : (['initiator', answer] as const)
    const handshake = context.handshake(role)
    if (role === 'initiator') callNative(() => handshake.feed(Buffer.alloc(0)))
    const input = mutate(next, valid)
    // Cut anywhere: one native call per chunk, as a socket delivers it.
    const cut = 1 + Math.floor(next() * input.length)
    expectTyped(t, `${role} #${n}`, () => {
      for (let at = 0; at < input.length; at += cut) callNative(() => handshake.feed(input.subarray(at, at + cut)))
    })
  }
  t.pass()
})

test(`enrollment token decoder: ${ITERATIONS} mutated tokens`, (t) => {
  const next = prng(0x5eed_70c3)
  const { token } = protocol.generateEnrollmentToken('ab'.repeat(32), 'hotel-1', 'tablet-7')
  for (let n = 0; n < ITERATIONS; n++) {
    const input = mutate(next, Buffer.from(token)).toString('latin1')
    expectTyped(t, `decodeEnrollmentToken #${n}`, () => protocol.decodeEnrollmentToken(input))
  }
  t.pass()
})

test(`enrollment and quote-exchange decoders: ${ITERATIONS} random and mutated inputs`, (t) => {
  const next = prng(0x5eed_0e01)
  const nonce = Buffer.alloc(32, 7)
  const quote = { akPublicPem: 'pem', akBinding: Buffer.alloc(70, 1), attest: Buffer.alloc(100, 2), signature: Buffer.alloc(72, 3), pcrValues: Buffer.alloc(200, 4) }
  const seeds = [
    protocol.encodeEnrollRequest({ tokenId: '11'.repeat(32), tokenProof: '22'.repeat(64), csr: 'csr', nodeId: 'n', attestation: { nonce, quote } }),
    protocol.encodeNonceRequest({ nodeId: 'n', tokenId: '11'.repeat(32), tokenProof: '22'.repeat(64) }),
    protocol.encodeEnrollResponse({ certificate: 'c', caChain: 'a', serial: '0a', notAfterMs: 1, config: { bootstrap_peers: ['p'], gossip_fanout: 3, crl_url: 'u' } }),
    protocol.encodeRotationRequest({ certificate: 'c', csr: 'r', timestampMs: 1, signature: Buffer.alloc(70, 9) }),
    protocol.encodeNonceAnswer({ nonce, expiresAtMs: 1, pcrs: [0, 7] }),
    protocol.encodeQuoteRequest({ nonce, pcrs: [0, 7] }),
    protocol.encodeQuoteAnswer({ quote }),
  ]
  const decoders = [protocol.decodeEnrollRequest, protocol.decodeEnrollResponse, protocol.decodeRotationRequest, protocol.decodeNonceRequest, protocol.decodeNonceAnswer, protocol.decodeQuoteRequest, protocol.decodeQuoteAnswer, protocol.decodeQuoteEvidence]
  for (let n = 0; n < ITERATIONS; n++) {
    const input = mutate(next, seeds[n % seeds.length]!)
    for (const decode of decoders) expectTyped(t, `${decode.name} #${n}`, () => decode(input))
  }
  t.pass()
})

test(`mDNS responses: ${ITERATIONS} mutated announcements never throw, and every peer believed passes every check`, (t) => {
  const next = prng(0x5eed_3d45)
  const instance = instanceName('tablet-9', 'hotel-1')
  const announce = (ttl: number) =>
    packet.encode({
      type: 'response',
      answers: [
        { name: '_ztmesh._tcp.local', type: 'PTR', ttl, data: instance },
        { name: instance, type: 'SRV', ttl, data: { port: 7443, target: 'zt-1.local', priority: 0, weight: 0 } },
        { name: instance, type: 'TXT', ttl, data: ['v=1', 'id=tablet-9', 'tenant=hotel-1', `spki=${'a'.repeat(64)}`, 'port=7443', 'role=node'] },
        { name: 'zt-1.local', type: 'A', ttl, data: '127.0.0.1' },
      ],
    })
  const seeds = [announce(120), announce(0)]
  t.is(readResponse(packet.decode(seeds[0]!), { address: '127.0.0.1', port: 5353 }, 5353).found.length, 1, 'the seed itself is believed')
  let decoded = 0
  for (let n = 0; n < ITERATIONS; n++) {
    let message: ReturnType<typeof packet.decode>
    try {
      message = packet.decode(mutate(next, seeds[n % seeds.length]!))
    } catch {
      continue // dns-packet refuses it: counted as malformed by the socket's warning
    }
    decoded++
    try {
      const reading = readResponse(message, { address: '10.0.0.1', port: 5353 }, 5353)
      for (const { instance: name, peer, ttl } of reading.found) {
        protocol.checkDeviceId(peer.deviceId)
        protocol.checkTenant(peer.tenant)
        if (name !== instanceName(peer.deviceId, peer.tenant) || !/^[0-9a-f]{64}$/.test(peer.spkiSha256) || !(peer.port >= 1 && peer.port <= 65535) || !['node', 'gateway'].includes(peer.role) || isIP(peer.host) === 0 || !(ttl >= 1 && ttl <= 600)) {
          t.fail(`#${n}: a peer that breaks a check was believed: ${JSON.stringify(peer)}`)
        }
      }
    } catch (error) {
      t.fail(`#${n}: readResponse threw ${String(error)}`)
    }
  }
  t.true(decoded > ITERATIONS / 10, 'enough mutations decode to reach the checks')
  // Decoded shapes dns-packet never makes, in case a future version does.
  for (const answers of [null, 7, [null], [{ name: 5 }], [{ name: instance, type: 'TXT', data: 'x' }, { name: instance, type: 'SRV', data: null }], [{ name: instance, type: 'SRV', ttl: 9, data: { port: '7443', target: [] } }, { name: instance, type: 'TXT', ttl: 9, data: [{}] }]]) {
    t.notThrows(() => readResponse({ answers }, { address: '10.0.0.1', port: 5353 }, 5353))
  }
})

test(`signed offers, answers and candidates: ${ITERATIONS / 5} random and mutated objects through the verifier`, (t) => {
  const next = prng(0x5eed_5196)
  const root = CertificateAuthority.createRoot({ commonName: 'Fuzz Root', organisation: 'Fuzz' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Fuzz Site', organisation: 'Fuzz' })
  const key = generateP256Key()
  const cert = CertificateAuthority.load(site.certificatePem, site.privateKey).issue(buildCsr(key, 'a', 'fuzz'), { deviceId: 'a', tenant: 'fuzz' })
  const identity = { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(key) }
  const sdp = `v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 ${Array(32).fill('AB').join(':')}\r\n`
  const verifier = new protocol.SignalVerifier({ trust: TrustStore.fromPem(root.certificatePem), deviceId: 'b', tenant: 'fuzz' })
  const offer = protocol.signOffer({ from: 'a', to: 'b', tenant: 'fuzz', sdp, epoch: 0 }, identity)
  const digest = '11'.repeat(32)
  const answer = protocol.signAnswer({ from: 'a', to: 'b', tenant: 'fuzz', sdp, epoch: 0, offerDigest: digest }, identity)
  const candidate = protocol.signCandidate({ from: 'a', to: 'b', tenant: 'fuzz', offerDigest: digest, mid: '0', candidate: 'candidate:1 1 UDP 1 127.0.0.1 9 typ host' }, identity)
  let accepted = 0
  for (let n = 0; n < ITERATIONS / 5; n++) {
    const kind = n % 3
    const input = mutate(next, [offer, answer, candidate][kind]!)
    expectTyped(t, `signal #${n}`, () => {
      if (kind === 0) verifier.verifyOffer(input)
      else if (kind === 1) verifier.verifyAnswer(input, digest)
      else verifier.verifyCandidate(input, digest)
      accepted++
    })
    expectTyped(t, `sdpFingerprint #${n}`, () => protocol.sdpFingerprint(mutate(next, Buffer.from(sdp)).toString('latin1')))
  }
  t.true(accepted <= 3, 'only the genuine objects, once each, ever verify')
})
