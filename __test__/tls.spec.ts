import test from 'ava'
import { execFileSync } from 'node:child_process'
import { createPrivateKey } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createConnection, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import * as tls from 'node:tls'

import {
  buildCsr,
  CertificateAuthority,
  generateP256Key,
  RevocationSet,
  secureTls,
  TlsContext,
  TrustStore,
  type SecureStream,
  type DeviceCredential,
  Signer,
} from '../src/index.js'

// The CAs date from two months ago, so a certificate that expired last week can be issued.
const caBirth = Date.now() - 60 * 86_400_000
const root = CertificateAuthority.createRoot({ commonName: 'TLS Root', organisation: 'Acme', nowMs: caBirth })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'TLS Site', organisation: 'Acme', nowMs: caBirth })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem

function device(deviceId: string, tenant = 'hotel-1'): DeviceCredential & { serial: string; spki: string; certPem: string; keyPem: string } {
  const key = generateP256Key()
  const cert = siteCa.issue(buildCsr(key, deviceId, tenant), { deviceId, tenant })
  const keyPem = createPrivateKey({ key, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string
  return { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(key), serial: cert.serial, spki: cert.spkiSha256, certPem: cert.pem, keyPem }
}

async function tlsServer(t: import('ava').ExecutionContext, context: TlsContext) {
  const results: Array<Promise<SecureStream>> = []
  const server = createServer((socket) => {
    socket.on('error', () => {})
    const secured = secureTls(socket, context)
    secured.then((s) => { s.on('error', () => {}); s.pipe(s) }, () => {})
    results.push(secured)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => resolve()); (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.() }))
  /** The n-th accepted connection's handshake, once the server has seen it. */
  const accepted = async (n: number): Promise<SecureStream> => {
    for (let i = 0; i < 500 && results[n] === undefined; i++) await new Promise((r) => setTimeout(r, 10))
    return results[n]!
  }
  return { port: (server.address() as AddressInfo).port, results, accepted }
}

/**
 * A TLS 1.3 client finishes its handshake before the server has judged its certificate, so a
 * refusal reaches it as a fatal alert just after: either the handshake rejects or the stream errors.
 */
async function refused(secured: Promise<SecureStream>): Promise<unknown> {
  try {
    const stream = await secured
    return await new Promise((resolve) => {
      stream.once('error', resolve)
      stream.once('close', () => resolve('closed'))
    })
  } catch (error) {
    return error
  }
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' }, () => resolve(socket))
    socket.once('error', reject)
  })
}

test('ztmesh TLS both ends: mutual, post-quantum, verified peers, echo', async (t) => {
  const gw = device('gw-1')
  const tab = device('tablet-7')
  const { port, accepted } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem, policy: { expectedTenant: 'hotel-1' } }))
  const client = await secureTls(await dial(port), new TlsContext('client', { identity: tab, trustPem, policy: { expectedDevice: 'gw-1' } }))
  t.like(client.peer, { deviceId: 'gw-1', tenant: 'hotel-1' })
  t.is(client.protocol, 'tls')
  t.is(client.kxGroup, 'X25519MLKEM768')
  t.true(client.postQuantum)
  const server = await accepted(0)
  t.like(server.peer, { deviceId: 'tablet-7', serial: tab.serial })
  const echoed = new Promise<Buffer>((resolve) => client.once('data', resolve))
  client.write('hello over tls')
  t.is((await echoed).toString(), 'hello over tls')
  client.destroy()
})

test('ending a link right after its peer reset the connection finishes without an error', async (t) => {
  const gw = device('gw-1')
  const tab = device('tablet-7')
  const { port } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem, policy: { expectedTenant: 'hotel-1' } }))
  const clientContext = new TlsContext('client', { identity: tab, trustPem, policy: { expectedDevice: 'gw-1' } })
  // A relay that resets the client's connection on demand (the peer vanishing).
  const facing: Socket[] = []
  const relay = createServer((inbound) => {
    facing.push(inbound)
    const outbound = createConnection({ port, host: '127.0.0.1' })
    for (const s of [inbound, outbound]) s.on('error', () => {})
    inbound.pipe(outbound).pipe(inbound)
    inbound.on('close', () => outbound.destroy())
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  t.teardown(() => relay.close())
  for (const waitMs of [0, 0, 0, 0]) {
    const link = await secureTls(await dial((relay.address() as AddressInfo).port), clientContext)
    const errors: unknown[] = []
    link.on('error', (error) => errors.push(error))
    facing.at(-1)!.resetAndDestroy()
    if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs))
    link.write(Buffer.from("last words"))
    link.resume()
    link.end()
    await new Promise((resolve) => {
      link.once('finish', resolve)
      link.once('close', resolve)
      link.once('error', resolve)
    })
    await new Promise((resolve) => setImmediate(resolve))
    t.deepEqual(errors.map((e) => (e as { code?: string }).code), [], `reset ${waitMs} ms before the end`)
  }
})

test('many writes in one tick, corked writes and a write past the flush room all arrive once, in order, over one TLS link', async (t) => {
  const gw = device('gw-1')
  const tab = device('tablet-7')
  const { port } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem, policy: { expectedTenant: 'hotel-1' } }))
  const client = await secureTls(await dial(port), new TlsContext('client', { identity: tab, trustPem, policy: { expectedDevice: 'gw-1' } }))
  t.teardown(() => client.destroy())
  const parts: Buffer[] = []
  for (let i = 0; i < 500; i++) parts.push(Buffer.from(`small-${i};`))
  const big = Buffer.alloc(300 * 1024, 7)
  parts.push(big)
  for (let i = 0; i < 10; i++) parts.push(Buffer.from(`corked-${i};`))
  const expected = Buffer.concat(parts)
  const echoed = new Promise<Buffer>((resolve) => {
    const got: Buffer[] = []
    let length = 0
    client.on('data', (chunk: Buffer) => {
      got.push(chunk)
      length += chunk.length
      if (length >= expected.length) resolve(Buffer.concat(got))
    })
  })
  // One synchronous burst: small writes, one larger than the room a flush waits for, then
  // corked ones (what `ws` does with a frame's header and payload) handed over together.
  for (let i = 0; i < 500; i++) client.write(parts[i])
  client.write(big)
  client.cork()
  for (let i = 0; i < 10; i++) client.write(parts[501 + i])
  client.uncork()
  const back = await echoed
  t.is(back.length, expected.length)
  t.true(back.equals(expected))
})

test('a revoked, wrong-tenant or unknown client is refused with its PKI code; a live link closes on revocation', async (t) => {
  const gw = device('gw-1')
  const context = new TlsContext('server', { identity: gw, trustPem, policy: { expectedTenant: 'hotel-1' } })
  const { port, accepted } = await tlsServer(t, context)
  const other = device('x', 'hotel-2')
  t.like(await refused(secureTls(await dial(port), new TlsContext('client', { identity: other, trustPem }))), { code: 'ERR_TLS_ALERT' })
  await t.throwsAsync(accepted(0), { code: 'ERR_TENANT_MISMATCH' })

  const live = device('live')
  const client = await secureTls(await dial(port), new TlsContext('client', { identity: live, trustPem }))
  const serverSide = await accepted(1)
  const revocations = new RevocationSet()
  const now = Date.now()
  revocations.addRecord(siteCa.signRevocationRecord(1, now, [{ serial: live.serial, spkiSha256: live.spki, revokedAtMs: now, reason: 1 }]), site.certificatePem, TrustStore.fromPem(trustPem))
  context.setRevocations(revocations)
  client.on('error', () => {})
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  t.true(serverSide.closeIfRevoked(revocations))
  await closed
  t.like(await refused(secureTls(await dial(port), new TlsContext('client', { identity: live, trustPem }))), { code: 'ERR_TLS_ALERT' })
  await t.throwsAsync(accepted(2), { code: 'ERR_CERT_REVOKED' })
})

test('interop: node:tls client with a device certificate, and ztmesh client to a node:tls server', async (t) => {
  const gw = device('gw-1')
  const { port, accepted } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem }))
  const phone = device('phone-1')
  const nodeClient = tls.connect({ port, host: '127.0.0.1', cert: phone.certPem + site.certificatePem, key: phone.keyPem, ca: trustPem, ALPNProtocols: ['ztmesh/1'], checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' })
  await new Promise<void>((resolve, reject) => nodeClient.once('secureConnect', () => resolve()).once('error', reject))
  const reply = new Promise<Buffer>((resolve) => nodeClient.once('data', resolve))
  nodeClient.write('from node')
  t.is((await reply).toString(), 'from node')
  t.like((await accepted(0)).peer, { deviceId: 'phone-1' })
  nodeClient.destroy()

  const nodeServer = tls.createServer({ cert: gw.certPem + site.certificatePem, key: gw.keyPem, ca: trustPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['ztmesh/1'], minVersion: 'TLSv1.3' }, (socket) => socket.pipe(socket))
  await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => nodeServer.close())
  const ours = await secureTls(await dial((nodeServer.address() as AddressInfo).port), new TlsContext('client', { identity: phone, trustPem }))
  t.like(ours.peer, { deviceId: 'gw-1' })
  const back = new Promise<Buffer>((resolve) => ours.once('data', resolve))
  ours.write('to node')
  t.is((await back).toString(), 'to node')
  ours.destroy()
})

test('garbage and silence end the handshake with a typed error; the server keeps serving', async (t) => {
  const gw = device('gw-1')
  const context = new TlsContext('server', { identity: gw, trustPem })
  const { port, accepted } = await tlsServer(t, context)
  const garbage = await dial(port)
  garbage.write(Buffer.alloc(64, 0x41))
  garbage.on('error', () => {})
  await t.throwsAsync(accepted(0), { code: 'ERR_TLS_PROTOCOL' })
  const fine = await secureTls(await dial(port), new TlsContext('client', { identity: device('c'), trustPem }), { handshakeTimeoutMs: 5000 })
  t.like(fine.peer, { deviceId: 'gw-1' })
  fine.destroy()
  const mute = await dial(port)
  t.teardown(() => mute.destroy())
  const timeout = secureTls(mute, new TlsContext('server', { identity: gw, trustPem }), { handshakeTimeoutMs: 200 })
  await t.throwsAsync(timeout, { code: 'ERR_HANDSHAKE_TIMEOUT' })
})

test('expired and self-signed client certificates are refused with their PKI codes', async (t) => {
  const gw = device('gw-1')
  const { port, accepted } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem }))
  const key = generateP256Key()
  const expired = siteCa.issue(buildCsr(key, 'old', 'hotel-1'), { deviceId: 'old', tenant: 'hotel-1', nowMs: Date.now() - 10 * 86_400_000, validitySeconds: 86_400 })
  const old = { certificateChainPem: expired.pem + site.certificatePem, signer: Signer.fromPkcs8(key) }
  t.like(await refused(secureTls(await dial(port), new TlsContext('client', { identity: old, trustPem }))), { code: 'ERR_TLS_ALERT' })
  await t.throwsAsync(accepted(0), { code: 'ERR_CERT_EXPIRED' })

  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-selfsigned-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=rogue/OU=hotel-1', '-addext', 'subjectAltName=URI:ztmesh://hotel-1/rogue', '-addext', 'extendedKeyUsage=clientAuth,serverAuth', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  const rogue = {
    certificateChainPem: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    signer: Signer.fromPkcs8(createPrivateKey(readFileSync(join(dir, 'key.pem'))).export({ format: 'der', type: 'pkcs8' })),
  }
  t.like(await refused(secureTls(await dial(port), new TlsContext('client', { identity: rogue, trustPem }))), { code: 'ERR_TLS_ALERT' })
  await t.throwsAsync(accepted(1), { code: 'ERR_CHAIN' })
})

test('truncated handshakes and oversized records end that connection with a typed error; the server keeps serving', async (t) => {
  const gw = device('gw-1')
  const { port, accepted } = await tlsServer(t, new TlsContext('server', { identity: gw, trustPem }))
  // A real ClientHello, cut in half, then the connection ends.
  const clientHello = await firstFlight(new TlsContext('client', { identity: device('c'), trustPem }))
  const truncated = await dial(port)
  truncated.end(clientHello.subarray(0, clientHello.length >> 1))
  await t.throwsAsync(accepted(0), { code: 'ERR_TLS_CLOSED' })
  // A record header announcing more than TLS allows (2^14 + 256), before and after the handshake.
  const oversized = await dial(port)
  oversized.on('error', () => {})
  oversized.write(Buffer.from([0x16, 0x03, 0x03, 0xff, 0xff, ...Buffer.alloc(64)]))
  await t.throwsAsync(accepted(1), { code: 'ERR_TLS_PROTOCOL' })
  const socket = await dial(port)
  socket.on('error', () => {})
  const established = await secureTls(socket, new TlsContext('client', { identity: device('c2'), trustPem }))
  established.on('error', () => {})
  const serverSide = await accepted(2)
  const failed = new Promise<{ code?: string }>((resolve) => serverSide.once('error', resolve))
  socket.write(Buffer.from([0x17, 0x03, 0x03, 0x48, 0x01, ...Buffer.alloc(64)]))
  t.like(await failed, { code: 'ERR_TLS_PROTOCOL' })
  const fine = await secureTls(await dial(port), new TlsContext('client', { identity: device('late'), trustPem }))
  t.like(fine.peer, { deviceId: 'gw-1' })
  fine.destroy()
})

/** The first bytes a client session sends (its ClientHello). */
function firstFlight(context: TlsContext): Promise<Buffer> {
  return new Promise((resolve) => {
    const sink = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        resolve(chunk)
        callback()
      },
    })
    secureTls(sink, context, { handshakeTimeoutMs: 1000 }).catch(() => {})
  })
}
