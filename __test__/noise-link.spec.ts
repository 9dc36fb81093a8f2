import test from 'ava'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'

import {
  CertificateAuthority,
  ChannelError,
  generateP256Key,
  generateX25519KeyPair,
  NoiseHandshake,
  NoiseLinkContext,
  RevocationSet,
  Signer,
  TrustStore,
  wrapNoise,
  ZtError,
  type DeviceCredential,
  type NoiseLinkInit,
  type SecureStream,
} from '../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'Link Root', organisation: 'Acme' })
const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
const site = rootCa.createSiteCa({ commonName: 'Link Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trust = TrustStore.fromPem(root.certificatePem)

function identity(deviceId: string, tenant = 'hotel-1'): DeviceCredential & { serial: string; spki: string } {
  const signer = Signer.fromPkcs8(generateP256Key())
  const cert = siteCa.issue(signer.buildCsr(deviceId, tenant), { deviceId, tenant })
  return { certificateChainPem: cert.pem + site.certificatePem, signer, serial: cert.serial, spki: cert.spkiSha256 }
}

/** A TCP server on 127.0.0.1 whose accepted sockets go to `onSocket`. */
async function listen(t: import('ava').ExecutionContext, onSocket: (socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    onSocket(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' }, () => resolve(socket))
    socket.once('error', reject)
  })
}

async function pair(t: import('ava').ExecutionContext, server: Partial<NoiseLinkInit> & { identity: DeviceCredential }, client: Partial<NoiseLinkInit> & { identity: DeviceCredential }) {
  let serverSide: Promise<SecureStream> | undefined
  const port = await listen(t, (socket) => {
    serverSide = wrapNoise(socket, { role: 'responder', trust, revocations: new RevocationSet(), ...server })
    serverSide.catch(() => {})
  })
  const clientSide = wrapNoise(await connect(port), { role: 'initiator', trust, revocations: new RevocationSet(), ...client })
  const [c, s] = await Promise.allSettled([clientSide, (async () => { while (serverSide === undefined) await new Promise((r) => setTimeout(r, 5)); return serverSide })()])
  return { client: c, server: s }
}

test('a hybrid Noise link: both peers verified, data both ways, large writes, rekeying', async (t) => {
  const a = identity('gw-1')
  const b = identity('tablet-7')
  const { client, server } = await pair(t, { identity: a, rekeyAfterMessages: 3 }, { identity: b, policy: { expectedDevice: 'gw-1', expectedTenant: 'hotel-1' }, rekeyAfterMessages: 2 })
  if (client.status !== 'fulfilled' || server.status !== 'fulfilled') return t.fail(String((client as PromiseRejectedResult).reason ?? (server as PromiseRejectedResult).reason))
  const [c, s] = [client.value, server.value]
  t.like(c.peer, { deviceId: 'gw-1', tenant: 'hotel-1', serial: a.serial })
  t.like(s.peer, { deviceId: 'tablet-7', serial: b.serial })
  t.is(c.protocol, 'noise')
  t.true(c.postQuantum && s.postQuantum)
  t.is(c.kxGroup, 'X25519MLKEM768')
  const big = Buffer.alloc(1_000_000, 7)
  const received: Buffer[] = []
  const done = new Promise<void>((resolve) => s.on('data', (chunk: Buffer) => { received.push(chunk); if (Buffer.concat(received).length >= big.length + 10) resolve() }))
  for (let i = 0; i < 10; i++) c.write(Buffer.from([i]))
  c.write(big)
  await done
  const all = Buffer.concat(received)
  t.deepEqual(all.subarray(0, 10), Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
  t.true(all.subarray(10).equals(big))
  const back = new Promise<Buffer>((resolve) => c.once('data', resolve))
  s.write('pong')
  t.is((await back).toString(), 'pong')
  c.destroy()
  s.destroy()
})

test('refusals: wrong tenant, revoked, and a stolen chain without its key', async (t) => {
  const good = identity('gw-1')
  const wrongTenant = await pair(t, { identity: good, policy: { expectedTenant: 'hotel-2' } }, { identity: identity('x') })
  t.is(wrongTenant.server.status, 'rejected')
  t.is((wrongTenant.server as PromiseRejectedResult).reason.code, 'ERR_TENANT_MISMATCH')
  t.is((wrongTenant.client as PromiseRejectedResult).reason.code, 'ERR_NOISE_REFUSED', 'the initiator learns it was refused')

  const victim = identity('victim')
  const revoked = new RevocationSet()
  const now = Date.now()
  revoked.addCrl(siteCa.issueCrl(1, [{ serial: victim.serial, revokedAtMs: now, reason: 1 }], now, now + 60_000).pem, site.certificatePem, trust)
  const r = await pair(t, { identity: good, revocations: revoked }, { identity: victim })
  t.is((r.server as PromiseRejectedResult).reason.code, 'ERR_CERT_REVOKED')

  // The attacker presents the victim's chain with its own key: refused when its context is built
  // (the peer's refusal of such a link, from a hand-built initiator, is a core link test).
  const stolen: DeviceCredential = { certificateChainPem: good.certificateChainPem, signer: identity('attacker').signer }
  t.throws(() => new NoiseLinkContext({ identity: stolen, trust, revocations: new RevocationSet() }), { instanceOf: ZtError, code: 'ERR_KEY_MISMATCH' })
})

test('the initiator refuses too: a responder of another tenant, a revoked one, one with a stolen chain', async (t) => {
  const client = identity('tablet-7')
  const otherTenant = await pair(t, { identity: identity('gw-1', 'hotel-2') }, { identity: client, policy: { expectedTenant: 'hotel-1' } })
  t.is((otherTenant.client as PromiseRejectedResult).reason.code, 'ERR_TENANT_MISMATCH')

  const server = identity('gw-1')
  const revoked = new RevocationSet()
  const now = Date.now()
  revoked.addCrl(siteCa.issueCrl(1, [{ serial: server.serial, revokedAtMs: now, reason: 1 }], now, now + 60_000).pem, site.certificatePem, trust)
  const r = await pair(t, { identity: server }, { identity: client, revocations: revoked })
  t.is((r.client as PromiseRejectedResult).reason.code, 'ERR_CERT_REVOKED')

  const stolen: DeviceCredential = { certificateChainPem: server.certificateChainPem, signer: identity('attacker').signer }
  t.throws(() => new NoiseLinkContext({ identity: stolen, trust, revocations: new RevocationSet() }), { instanceOf: ZtError, code: 'ERR_KEY_MISMATCH' })
})

test('on the wire, both roles: a flipped handshake byte, a replayed message 3 and a replayed confirmation all fail', async (t) => {
  /** One link over a tapped pair; `initiator`/`responder` rewrite that side's n-th write. */
  const run = async (rewrite: { initiator?: (chunk: Buffer, n: number) => Buffer; responder?: (chunk: Buffer, n: number) => Buffer } = {}) => {
    const [left, right] = tappedPair()
    let [sentLeft, sentRight] = [0, 0]
    left.tamper = (chunk) => rewrite.initiator?.(chunk, sentLeft++) ?? chunk
    right.tamper = (chunk) => rewrite.responder?.(chunk, sentRight++) ?? chunk
    const [c, s] = await Promise.allSettled([
      wrapNoise(left, { role: 'initiator', identity: identity('tablet-7'), trust, revocations: new RevocationSet(), handshakeTimeoutMs: 2000 }),
      wrapNoise(right, { role: 'responder', identity: identity('gw-1'), trust, revocations: new RevocationSet(), handshakeTimeoutMs: 2000 }),
    ])
    for (const side of [c, s]) if (side.status === 'fulfilled') side.value.destroy()
    const code = (side: PromiseSettledResult<SecureStream>) => (side.status === 'rejected' ? side.reason.code : 'ok')
    return { client: code(c), server: code(s), sent: { initiator: left.sent, responder: right.sent } }
  }
  const honest = await run()
  t.deepEqual([honest.client, honest.server], ['ok', 'ok'])
  // The initiator writes its proposal with message 1, then message 3; the responder message 2, then its confirmation.
  const [message3, confirmation] = [honest.sent.initiator[1]!, honest.sent.responder[1]!]
  const flipLast = (chunk: Buffer) => Buffer.from(chunk.map((byte, i) => (i === chunk.length - 1 ? byte ^ 1 : byte)))
  const flipped3 = await run({ initiator: (chunk, n) => (n === 1 ? flipLast(chunk) : chunk) })
  t.deepEqual([flipped3.server, flipped3.client], ['ERR_NOISE_DECRYPT', 'ERR_NOISE_REFUSED'])
  const flippedConfirmation = await run({ responder: (chunk, n) => (n === 1 ? flipLast(chunk) : chunk) })
  t.is(flippedConfirmation.client, 'ERR_NOISE_DECRYPT')
  const replayed3 = await run({ initiator: (chunk, n) => (n === 1 ? message3 : chunk) })
  t.deepEqual([replayed3.server, replayed3.client], ['ERR_NOISE_DECRYPT', 'ERR_NOISE_REFUSED'])
  const replayedConfirmation = await run({ responder: (chunk, n) => (n === 1 ? confirmation : chunk) })
  t.is(replayedConfirmation.client, 'ERR_NOISE_DECRYPT')
})

test('a man in the middle relaying the initiator identity to an honest responder is refused: the binding names another static key', async (t) => {
  const [aliceSide, mallorysLeft] = tappedPair()
  const [mallorysRight, bobSide] = tappedPair()
  const alice = wrapNoise(aliceSide, { role: 'initiator', identity: identity('tablet-7'), trust, revocations: new RevocationSet(), cipher: 'ChaChaPoly', handshakeTimeoutMs: 3000 })
  const bob = wrapNoise(bobSide, { role: 'responder', identity: identity('gw-1'), trust, revocations: new RevocationSet(), handshakeTimeoutMs: 3000 })
  alice.catch(() => {})
  // Mallory runs Noise by hand with its own static keys on both sides, with the link's prologue.
  const prologue = Buffer.from('ztmesh-noise-link-v2\0')
  // The link's handshake frames: u16 length ‖ body.
  const encodeFrame = (body: Uint8Array) => Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body])
  const frames = (side: Duplex) => {
    let pending = Buffer.alloc(0)
    const waiting: ((frame: Buffer) => void)[] = []
    const ready: Buffer[] = []
    side.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const frame = pending.subarray(2, 2 + pending.readUInt16BE(0))
        pending = pending.subarray(2 + frame.length)
        const next = waiting.shift()
        if (next !== undefined) next(frame)
        else ready.push(frame)
      }
    })
    return () => new Promise<Buffer>((resolve) => (ready.length > 0 ? resolve(ready.shift()!) : waiting.push(resolve)))
  }
  const [fromAlice, fromBob] = [frames(mallorysLeft), frames(mallorysRight)]
  const toAlice = NoiseHandshake.responder({ pattern: 'XX_HYBRID', staticPrivateKey: generateX25519KeyPair().privateKey, prologue })
  const toBob = NoiseHandshake.initiator({ pattern: 'XX_HYBRID', staticPrivateKey: generateX25519KeyPair().privateKey, prologue })
  t.is((await fromAlice()).toString(), 'Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768')
  t.is(toAlice.readMessage(await fromAlice()).length, 0)
  mallorysLeft.write(encodeFrame(toAlice.writeMessage()))
  const aliceIdentity = toAlice.readMessage(await fromAlice())
  t.true(aliceIdentity.length > 0 && aliceIdentity.length % 256 === 0, 'message 3 carries the padded identity')
  mallorysRight.write(Buffer.concat([encodeFrame(Buffer.from('Noise_XXpsk3_25519_ChaChaPoly_SHA256+MLKEM768')), encodeFrame(toBob.writeMessage())]))
  t.is(toBob.readMessage(await fromBob()).length, 0, 'message 2 carries no identity')
  mallorysRight.write(encodeFrame(toBob.writeMessage(aliceIdentity)))
  await t.throwsAsync(bob, { code: 'ERR_NOISE_IDENTITY' })
})

test('an initiator facing a responder that sends oversized frames, garbage, or stalls mid-frame fails with a typed error', async (t) => {
  const answers: [Buffer, string][] = [
    [Buffer.from([0xff, 0xff]), 'ERR_FRAME_TOO_LARGE'],
    [Buffer.from([0x00, 0x40, ...Buffer.alloc(64, 7)]), 'ERR_NOISE_MALFORMED'],
    [Buffer.from([0x04, 0x00, 1, 2, 3]), 'ERR_HANDSHAKE_TIMEOUT'],
  ]
  for (const [answer, code] of answers) {
    const port = await listen(t, (socket) => socket.once('data', () => socket.write(answer)))
    const error = await t.throwsAsync<ZtError>(wrapNoise(await connect(port), { role: 'initiator', identity: identity('tablet-7'), trust, revocations: new RevocationSet(), handshakeTimeoutMs: 300 }))
    t.regex(error?.code ?? "", code === 'ERR_NOISE_MALFORMED' ? /^ERR_NOISE_/ : new RegExp(`^${code}$`), answer.toString('hex'))
  }
})

test('a live link closes when its peer is revoked', async (t) => {
  const a = identity('gw-1')
  const b = identity('tablet-7')
  const { client, server } = await pair(t, { identity: a }, { identity: b })
  if (server.status !== 'fulfilled' || client.status !== 'fulfilled') return t.fail()
  const s = server.value as SecureStream & { closeIfRevoked(r: RevocationSet): boolean }
  const revocations = new RevocationSet()
  t.false(s.closeIfRevoked(revocations))
  const now = Date.now()
  revocations.addRecord(siteCa.signRevocationRecord(1, now, [{ serial: b.serial, spkiSha256: b.spki, revokedAtMs: now, reason: 1 }]), site.certificatePem, trust)
  const closed = new Promise<unknown>((resolve) => s.once('error', resolve))
  t.true(s.closeIfRevoked(revocations))
  t.like(await closed, { code: 'ERR_CERT_REVOKED' })
  await new Promise<void>((resolve) => client.value.once('close', () => resolve()))
  t.pass()
})

test('garbage, oversized frames, silent peers and aborts end the handshake with a typed error; the server keeps serving', async (t) => {
  const serverId = identity('gw-1')
  const outcomes: unknown[] = []
  const port = await listen(t, (socket) => {
    wrapNoise(socket, { role: 'responder', identity: serverId, trust, revocations: new RevocationSet(), handshakeTimeoutMs: 300 }).then(
      (s) => outcomes.push(s.peer.deviceId),
      (e: { code?: string }) => outcomes.push(e.code),
    )
  })
  const garbage = await connect(port)
  garbage.write(Buffer.from([0x00, 0x05, 1, 2, 3, 4, 5]))
  const oversized = await connect(port)
  oversized.write(Buffer.from([0xff, 0xff]))
  await connect(port) // says nothing
  const controller = new AbortController()
  const aborted = wrapNoise(await connect(port), { role: 'initiator', identity: identity('c'), trust, revocations: new RevocationSet(), signal: controller.signal, handshakeTimeoutMs: 5000 })
  controller.abort()
  await t.throwsAsync(aborted, { instanceOf: ChannelError, code: 'ERR_ABORTED' })
  const timeout = wrapNoise(await connect(port), { role: 'responder', identity: identity('c'), trust, revocations: new RevocationSet(), handshakeTimeoutMs: 200 })
  await t.throwsAsync(timeout, { code: 'ERR_HANDSHAKE_TIMEOUT' })
  const fine = await wrapNoise(await connect(port), { role: 'initiator', identity: identity('late'), trust, revocations: new RevocationSet() })
  t.is(fine.peer.deviceId, 'gw-1')
  fine.destroy()
  for (let i = 0; i < 100 && outcomes.length < 6; i++) await new Promise((r) => setTimeout(r, 20))
  t.true(outcomes.includes('late'))
  for (const code of outcomes.filter((o) => o !== 'late')) t.regex(String(code), /^ERR_/)
  t.true(outcomes.includes('ERR_FRAME_TOO_LARGE'))
  t.true(outcomes.includes('ERR_HANDSHAKE_TIMEOUT'))
})

test('the cipher: the initiator proposes, an auto responder follows, a mismatch is refused', async (t) => {
  const a = identity('gw-1')
  const b = identity('tablet-7')
  for (const cipher of ['ChaChaPoly', 'AESGCM'] as const) {
    const { client, server } = await pair(t, { identity: a }, { identity: b, cipher })
    if (client.status !== 'fulfilled' || server.status !== 'fulfilled') return t.fail(`${cipher} link failed`)
    t.is(client.value.cipher, cipher)
    t.is(server.value.cipher, cipher)
    const echoed = new Promise<Buffer>((resolve) => client.value.once('data', resolve))
    server.value.write(`over ${cipher}`)
    t.is((await echoed).toString(), `over ${cipher}`)
    client.value.destroy()
  }
  const refused = await pair(t, { identity: a, cipher: 'ChaChaPoly' }, { identity: b, cipher: 'AESGCM' })
  t.is((refused.server as PromiseRejectedResult).reason.code, 'ERR_NOISE_PROTOCOL')
  t.regex((refused.client as PromiseRejectedResult).reason.code, /^ERR_NOISE_/)
  const classical = await pair(t, { identity: a }, { identity: b, pattern: 'XX' })
  t.is((classical.server as PromiseRejectedResult).reason.code, 'ERR_NOISE_PROTOCOL', 'a hybrid responder refuses a classical initiator')
})

test('after the handshake, a tampered or malformed record ends that link with a typed error', async (t) => {
  for (const [attack, code] of [['flip', 'ERR_NOISE_DECRYPT'], ['short', 'ERR_NOISE_MALFORMED'], ['replay', 'ERR_NOISE_DECRYPT']] as const) {
    const [left, right] = tappedPair()
    const [c, s] = await Promise.all([
      wrapNoise(left, { role: 'initiator', identity: identity('tablet-7'), trust, revocations: new RevocationSet() }),
      wrapNoise(right, { role: 'responder', identity: identity('gw-1'), trust, revocations: new RevocationSet() }),
    ])
    const first = new Promise<Buffer>((resolve) => s.once('data', resolve))
    c.write('hello')
    t.is((await first).toString(), 'hello')
    const failed = new Promise<{ code?: string }>((resolve) => s.once('error', resolve))
    const received: Buffer[] = []
    s.on('data', (chunk: Buffer) => received.push(chunk))
    if (attack === 'flip') {
      left.tamper = (chunk) => Buffer.from(chunk.map((byte, i) => (i === chunk.length - 1 ? byte ^ 1 : byte)))
      c.write('evil')
    } else if (attack === 'short') {
      left.raw(Buffer.from([0x00, 0x0f, ...Buffer.alloc(15)]))
    } else {
      left.raw(left.sent.at(-1)!) // the 'hello' record again
    }
    t.like(await failed, { code }, attack)
    t.deepEqual(received, [], `${attack}: nothing of the bad record is delivered`)
    c.destroy()
  }
})

/** Two in-memory duplexes wired to each other; each can alter or inject what it sends. */
function tappedPair() {
  const sides: (Duplex & { tamper?: (chunk: Buffer) => Buffer; raw(chunk: Buffer): void; sent: Buffer[] })[] = []
  for (let i = 0; i < 2; i++) {
    const side = Object.assign(
      new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          const out = side.tamper?.(chunk) ?? chunk
          side.sent.push(out)
          sides[1 - i]!.push(out)
          callback()
        },
        // Like a socket: when one end goes, the other sees the end of the stream.
        destroy(error, callback) {
          sides[1 - i]!.push(null)
          callback(error)
        },
      }),
      { sent: [] as Buffer[], raw: (chunk: Buffer) => sides[1 - i]!.push(chunk) } as { tamper?: (chunk: Buffer) => Buffer; raw(chunk: Buffer): void; sent: Buffer[] },
    )
    sides.push(side)
  }
  return [sides[0]!, sides[1]!] as const
}
