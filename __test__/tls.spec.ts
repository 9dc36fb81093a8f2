import test from 'ava'
import { createPrivateKey } from 'node:crypto'
import { createConnection, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
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
  type TlsIdentity,
} from '../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'TLS Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'TLS Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem

function device(deviceId: string, tenant = 'hotel-1'): TlsIdentity & { serial: string; spki: string; certPem: string; keyPem: string } {
  const key = generateP256Key()
  const cert = siteCa.issue(buildCsr(key, deviceId, tenant), { deviceId, tenant })
  const keyPem = createPrivateKey({ key, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string
  return { certificateChainPem: cert.pem + site.certificatePem, privateKey: key, serial: cert.serial, spki: cert.spkiSha256, certPem: cert.pem, keyPem }
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
