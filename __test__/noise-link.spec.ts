import test from 'ava'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'

import {
  buildCsr,
  CertificateAuthority,
  ChannelError,
  generateP256Key,
  RevocationSet,
  SigningKey,
  TrustStore,
  wrapNoise,
  type LinkIdentity,
  type NoiseLinkInit,
  type SecureStream,
} from '../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'Link Root', organisation: 'Acme' })
const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
const site = rootCa.createSiteCa({ commonName: 'Link Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trust = TrustStore.fromPem(root.certificatePem)

function identity(deviceId: string, tenant = 'hotel-1'): LinkIdentity & { serial: string; spki: string } {
  const key = generateP256Key()
  const cert = siteCa.issue(buildCsr(key, deviceId, tenant), { deviceId, tenant })
  const signer = SigningKey.fromPkcs8('ecdsa-p256-sha256', key)
  return { certificateChainPem: cert.pem + site.certificatePem, sign: (m) => signer.sign(m), serial: cert.serial, spki: cert.spkiSha256 }
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

async function pair(t: import('ava').ExecutionContext, server: Partial<NoiseLinkInit> & { identity: LinkIdentity }, client: Partial<NoiseLinkInit> & { identity: LinkIdentity }) {
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

  // The attacker presents the victim's chain but signs with its own key.
  const attacker = identity('attacker')
  const stolen: LinkIdentity = { certificateChainPem: good.certificateChainPem, sign: attacker.sign }
  const s = await pair(t, { identity: good }, { identity: stolen })
  t.is((s.server as PromiseRejectedResult).reason.code, 'ERR_NOISE_IDENTITY')
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

/** Two in-memory duplexes wired to each other; the left one can alter or inject what it sends. */
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
      }),
      { sent: [] as Buffer[], raw: (chunk: Buffer) => sides[1 - i]!.push(chunk) } as { tamper?: (chunk: Buffer) => Buffer; raw(chunk: Buffer): void; sent: Buffer[] },
    )
    sides.push(side)
  }
  return [sides[0]!, sides[1]!] as const
}
