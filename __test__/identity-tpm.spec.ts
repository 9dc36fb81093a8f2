import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'

import { DeviceIdentity } from '../src/identity/index.js'
import { askQuote, buildCsr, generateP256Key, Mux, rotationMessage, secureTls, TlsContext, verifyAkBinding, verifyPeer, verifyQuote, wrapNoise, RevocationSet, TrustStore, type DeviceCredential, type SecureStream } from '../src/index.js'
import { caFetch, caOnLoopback } from './helpers/ca-site.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

/** A CA with its enrollment API on loopback, and a gateway (software key) enrolled with it. */
async function site(t: ExecutionContext) {
  const { dir, ca, url } = await caOnLoopback(t, 'TPM Hotel')
  const token = (device: string, roles: string[] = []) => ca.createToken({ deviceId: device, tenant: 'hotel-1', roles }).token
  // The gateway role: nodes answer quote requests from their verifiers only.
  const gateway = await DeviceIdentity.enroll({ url, token: token('gw-1', ['gateway']), dir: join(dir, 'gw-1'), passphrase: 'pw', deviceId: 'gw-1', tenant: 'hotel-1' })
  return { dir, ca, url, token, gateway, trustPem: ca.trustBundle() }
}

/** A secure link on loopback: a TCP connection that each end secures; resolves both ends, closed in teardown. */
async function loopbackLink(t: ExecutionContext, secureServer: (socket: Socket) => Promise<SecureStream>, secureClient: (socket: Socket) => Promise<SecureStream>) {
  let accepted: Promise<SecureStream> | undefined
  const listener = createServer((socket) => {
    socket.on('error', () => {})
    accepted = secureServer(socket)
  })
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => listener.close(() => resolve())))
  const client = await secureClient(createConnection({ port: (listener.address() as AddressInfo).port, host: '127.0.0.1' }))
  for (let i = 0; i < 100 && accepted === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const server = await accepted!
  t.teardown(() => {
    client.destroy()
    server.destroy()
  })
  return { client, server }
}

/** A mutual TLS link: `client` connects to `server`. */
function tlsLink(t: ExecutionContext, server: DeviceCredential, client: DeviceCredential, trustPem: string) {
  const serverContext = new TlsContext('server', { identity: server, trustPem })
  const clientContext = new TlsContext('client', { identity: client, trustPem })
  return loopbackLink(t, (socket) => secureTls(socket, serverContext), (socket) => secureTls(socket, clientContext))
}

/** A Noise link between two link identities. */
function noiseLink(t: ExecutionContext, server: DeviceCredential, client: DeviceCredential, trustPem: string) {
  const trust = TrustStore.fromPem(trustPem)
  return loopbackLink(
    t,
    (socket) => wrapNoise(socket, { role: 'responder', identity: server, trust, revocations: new RevocationSet() }),
    (socket) => wrapNoise(socket, { role: 'initiator', identity: client, trust, revocations: new RevocationSet() }),
  )
}

/** What is left of interrupted commits in an identity directory. */
const leftovers = (dir: string) => readdirSync(dir).filter((name) => name.startsWith('.commit') || name.endsWith('.tmp'))

tpmTestSerial('a TPM identity: enrolls with an attestation, links over TLS and Noise with its TPM key, answers quotes, rotates to a new TPM key', async (t) => {
  const swtpm = await startSwtpm(t)
  const { dir, url, token, gateway, trustPem } = await site(t)
  const store = join(dir, 'tablet-7')
  const device = await DeviceIdentity.enroll({ url, token: token('tablet-7'), dir: store, keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.is(device.keystore, 'tpm')
  t.true(device.attested, 'the CA handed out a nonce, so the enrollment carried a quote')
  t.false(existsSync(join(store, 'keystore.ztks')), 'no software keystore for a TPM device')
  t.deepEqual(JSON.parse(readFileSync(join(store, 'key.json'), 'utf8')), { version: 1, keystore: 'tpm', tcti: swtpm.tcti })
  for (const file of ['tpm-key.blob', 'tpm-ak.blob', 'cert.pem']) t.is(statSync(join(store, file)).mode & 0o777, 0o600, file)
  t.deepEqual(leftovers(store), [])

  // Mutual TLS with the key in the TPM; the gateway then asks the device for a fresh quote.
  const link = await tlsLink(t, gateway.credential(), device.credential(), trustPem)
  t.like(link.server.peer, { deviceId: 'tablet-7', tenant: 'hotel-1' })
  t.like(link.client.peer, { deviceId: 'gw-1' })
  // On the link's message layer: the quote protocol has a stream of its own, and the same link
  // carries another protocol at the same time.
  const deviceMux = new Mux(link.client, { role: 'initiator' })
  deviceMux.handle('/test/echo/1', (stream) => void stream.pipe(stream))
  device.answerQuotes(deviceMux)
  const gatewayMux = new Mux(link.server, { role: 'responder' })
  const echo = await gatewayMux.open('/test/echo/1')
  const echoed = new Promise<string>((resolve) => echo.once('data', (chunk: Buffer) => resolve(chunk.toString())))
  echo.write('beside the quote')
  const nonce = randomBytes(32)
  const quote = await askQuote(gatewayMux, { nonce, pcrs: [0, 7] })
  t.is(await echoed, 'beside the quote')
  echo.end()
  t.deepEqual(verifyQuote(quote, nonce).pcrs.map((p) => p.index), [0, 7])
  t.notThrows(() => verifyAkBinding(device.certificatePem, quote.akPublicPem, quote.akBinding))

  // Rotation: a new key in the TPM, requested with a signature of the current one.
  const oldBlob = readFileSync(join(store, 'tpm-key.blob'))
  const oldCert = device.certificatePem
  t.true(await device.renewIfDue({ force: true }))
  t.not(device.certificatePem, oldCert)
  t.false(readFileSync(join(store, 'tpm-key.blob')).equals(oldBlob), 'the rotated certificate is for a new TPM key')
  t.deepEqual(leftovers(store), [])
  const trust = TrustStore.fromPem(trustPem)
  t.like(verifyPeer(device.certificatePem + device.caChainPem, trust, new RevocationSet()), { deviceId: 'tablet-7' })
  const reopened = await DeviceIdentity.open(store, undefined, url)
  const again = await tlsLink(t, gateway.credential(), reopened.credential(), trustPem)
  t.like(again.server.peer, { deviceId: 'tablet-7' })
  t.not(again.server.peer.serial, link.server.peer.serial)
  const noise = await noiseLink(t, gateway.credential(), reopened.credential(), trustPem)
  t.like(noise.server.peer, { deviceId: 'tablet-7', serial: again.server.peer.serial }, 'the Noise identity is signed in the TPM too')
  // The attestation key survives the rotation; its binding is signed by the new key.
  reopened.answerQuotes(new Mux(again.client, { role: 'initiator' }))
  const after = await askQuote(new Mux(again.server, { role: 'responder' }), { nonce, pcrs: [7] })
  t.is(after.akPublicPem, quote.akPublicPem)
  t.notThrows(() => verifyAkBinding(reopened.certificatePem, after.akPublicPem, after.akBinding))
  t.deepEqual(await swtpm.transientHandles(), [], 'no transient handle is left behind')
})

tpmTestSerial('a TPM with an EK certificate enrolls where the CA requires credential activation; the same device without its EK certificate would not', async (t) => {
  const swtpm = await startSwtpm(t, { ek: true })
  const { dir, ca, url, token } = await site(t)
  ca.setAttestationSettings({ mode: 'required', ekCasPem: swtpm.ekCasPem! })
  const device = await DeviceIdentity.enroll({ url, token: token('tablet-8'), dir: join(dir, 'tablet-8'), keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-8', tenant: 'hotel-1' })
  t.true(device.attested)
  t.like(ca.attestationStatus('tablet-8', 'hotel-1'), { attested: true })
  t.like(ca.auditRecords(20).find((row) => row.action === 'enroll' && row.outcome === 'allow'), { detail: { credential: 'activated', key: 'certified' } })

  // Rotation keeps the attested status: the new key is in the same TPM (certified by the AK), with a fresh quote.
  t.true(await device.renewIfDue({ force: true }))
  t.like(ca.attestationStatus('tablet-8', 'hotel-1'), { attested: true, lastVerdict: 'ok' })
  t.like(ca.auditRecords(20).find((row) => row.action === 'rotate'), { outcome: 'allow', detail: { attestation: 'kept' } })
  // The laundering attack: the TPM key signs a rotation onto a software key. The CA issues it (the
  // request is genuine), but the device is no longer attested, and re-attestation and policy see that.
  const softwareKey = generateP256Key()
  const csr = buildCsr(softwareKey, 'tablet-8', 'hotel-1')
  const timestamp = Date.now()
  ca.rotate({ certificate: device.certificatePem, csr, timestampMs: timestamp, signature: device.credential().signer.sign(rotationMessage(timestamp, csr)) }, 'test')
  t.like(ca.attestationStatus('tablet-8', 'hotel-1'), { attested: false, lastReason: 'ERR_ATTEST_REQUIRED' })
  t.like(ca.auditRecords(20).find((row) => row.action === 'rotate'), { outcome: 'allow', detail: { attestation: 'lost', attestation_reason: 'ERR_ATTEST_REQUIRED' } })

  // A TPM without EK certificate (the device cannot be challenged): refused, typed and audited.
  const bare = await startSwtpm(t)
  const refused = await DeviceIdentity.enroll({ url, token: token('tablet-9'), dir: join(dir, 'tablet-9'), keystore: 'tpm', tcti: bare.tcti, deviceId: 'tablet-9', tenant: 'hotel-1' }).catch((error: unknown) => error)
  t.like(refused, { code: 'ERR_ATTEST_CREDENTIAL' })
  t.deepEqual(await swtpm.transientHandles(), [])
})

tpmTestSerial('a CA without attestation (404 for the nonce) enrolls a TPM device without a quote, unless one is required', async (t) => {
  const swtpm = await startSwtpm(t)
  const { dir, url, token } = await site(t)
  // A CA of before attestation: the nonce endpoint is unknown, the rest is the real API.
  const front = createHttpServer(async (request, response) => {
    if (request.url === '/v1/attest/nonce') {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'ERR_NOT_FOUND', message: 'no such resource' }))
      return
    }
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const answer = await caFetch(`${url}${request.url}`, { method: request.method, headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) })
    response.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text())
  })
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => front.close(() => resolve())))
  const oldCa = `http://127.0.0.1:${(front.address() as AddressInfo).port}`

  // The old CA's front is plain HTTP: the device reaches it with insecureHttp.
  const required = DeviceIdentity.enroll({ url: oldCa, insecureHttp: true, token: token('tablet-8'), dir: join(dir, 'tablet-8'), keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-8', attestation: 'require' })
  await t.throwsAsync(required, { code: 'ERR_NOT_FOUND', message: /attestation is required/ })
  t.false(existsSync(join(dir, 'tablet-8', 'cert.pem')))
  const device = await DeviceIdentity.enroll({ url: oldCa, insecureHttp: true, token: token('tablet-8'), dir: join(dir, 'tablet-8'), keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-8' })
  t.is(device.keystore, 'tpm')
  t.false(device.attested)
  t.deepEqual(await swtpm.transientHandles(), [])
})

tpmTestSerial('a cleared TPM: opening fails with ERR_TPM_KEY, enrolling again in the same directory works; a TPM gone for good falls back to software with auto', async (t) => {
  const first = await startSwtpm(t)
  const { dir, url, token, gateway, trustPem } = await site(t)
  const store = join(dir, 'kiosk-1')
  const enrolled = await DeviceIdentity.enroll({ url, token: token('kiosk-1'), dir: store, keystore: 'tpm', tcti: first.tcti, deviceId: 'kiosk-1', tenant: 'hotel-1' })
  const firstSerial = (await tlsLink(t, gateway.credential(), enrolled.credential(), trustPem)).server.peer.serial

  // A fresh swtpm state is what a cleared (or replaced) TPM looks like to the device.
  const cleared = await startSwtpm(t)
  const refused = await t.throwsAsync(DeviceIdentity.open(store, undefined, url, { tcti: cleared.tcti }), { code: 'ERR_TPM_KEY' })
  t.regex(refused!.message, /cleared or replaced.*enroll again/)
  const reenrolled = await DeviceIdentity.enroll({ url, token: token('kiosk-1'), dir: store, keystore: 'tpm', tcti: cleared.tcti, deviceId: 'kiosk-1', tenant: 'hotel-1' })
  t.is(reenrolled.keystore, 'tpm')
  t.deepEqual(leftovers(store), [])
  const reopened = await DeviceIdentity.open(store) // the recorded TCTI is the new TPM's
  const link = await tlsLink(t, gateway.credential(), reopened.credential(), trustPem)
  t.like(link.server.peer, { deviceId: 'kiosk-1' })
  t.not(link.server.peer.serial, firstSerial)
  // The old TPM (still running) cannot use the new blob either: one key, one TPM.
  await t.throwsAsync(DeviceIdentity.open(store, undefined, url, { tcti: first.tcti }), { code: 'ERR_TPM_KEY' })

  // The TPM is gone: a typed error that says what to do; `auto` then enrolls with the software keystore.
  const gone = 'swtpm:host=127.0.0.1,port=1'
  const unavailable = await t.throwsAsync(DeviceIdentity.open(store, undefined, url, { tcti: gone }), { code: 'ERR_TPM_UNAVAILABLE' })
  t.regex(unavailable!.message, /enroll again/)
  await t.throwsAsync(DeviceIdentity.enroll({ url, token: token('kiosk-1'), dir: store, keystore: 'tpm', tcti: gone }), { code: 'ERR_TPM_UNAVAILABLE' })
  const software = await DeviceIdentity.enroll({ url, token: token('kiosk-1'), dir: store, keystore: 'auto', tcti: gone, passphrase: 'pw', deviceId: 'kiosk-1', tenant: 'hotel-1' })
  t.is(software.keystore, 'software')
  t.false(software.attested)
  t.like(JSON.parse(readFileSync(join(store, 'key.json'), 'utf8')), { keystore: 'software' })
  t.false(existsSync(join(store, 'tpm-key.blob')), 'the TPM blobs go with the TPM identity')
  t.false(existsSync(join(store, 'tpm-ak.blob')))
  const back = await DeviceIdentity.open(store, 'pw')
  t.like((await tlsLink(t, gateway.credential(), back.credential(), trustPem)).server.peer, { deviceId: 'kiosk-1' })
  await t.throwsAsync(back.quote({ nonce: randomBytes(32), pcrs: [7] }), { code: 'ERR_TPM_UNAVAILABLE' })
  t.deepEqual(await cleared.transientHandles(), [])
})

tpmTestSerial('a refused enrollment leaves the enrolled TPM identity as it was', async (t) => {
  const swtpm = await startSwtpm(t)
  const { dir, url, token } = await site(t)
  const store = join(dir, 'tablet-9')
  await DeviceIdentity.enroll({ url, token: token('tablet-9'), dir: store, keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-9' })
  const before = Object.fromEntries(['cert.pem', 'tpm-key.blob', 'tpm-ak.blob', 'key.json'].map((f) => [f, readFileSync(join(store, f), 'latin1')]))
  await t.throwsAsync(DeviceIdentity.enroll({ url, token: 'ztm1.not-a-token', dir: store, keystore: 'tpm', tcti: swtpm.tcti, deviceId: 'tablet-9' }), { code: 'ERR_TOKEN_INVALID' })
  for (const [file, contents] of Object.entries(before)) t.is(readFileSync(join(store, file), 'latin1'), contents, file)
  t.is((await DeviceIdentity.open(store)).keystore, 'tpm')
  t.deepEqual(await swtpm.transientHandles(), [])
})

test('an identity update interrupted by a crash is finished (committed) or discarded (staged) by the next open', async (t) => {
  const { dir, url, token } = await site(t)
  const store = join(dir, 'sensor-1')
  const identity = await DeviceIdentity.enroll({ url, token: token('sensor-1'), dir: store, passphrase: 'pw', deviceId: 'sensor-1' })
  const cert = identity.certificatePem
  // A crash before the commit point: the staged files are never used.
  mkdirSync(join(store, '.commit.tmp'))
  writeFileSync(join(store, '.commit.tmp', 'cert.pem'), 'garbage')
  t.is((await DeviceIdentity.open(store, 'pw')).certificatePem, cert)
  t.deepEqual(leftovers(store), [])
  // A crash after it, half applied: the rest is applied.
  mkdirSync(join(store, '.commit'))
  writeFileSync(join(store, '.commit', '.manifest.json'), JSON.stringify({ files: ['config.json', 'cert.pem'], remove: ['tpm-key.blob'] }))
  writeFileSync(join(store, '.commit', 'cert.pem'), cert)
  writeFileSync(join(store, 'tpm-key.blob'), 'stale')
  const reopened = await DeviceIdentity.open(store, 'pw')
  t.is(reopened.certificatePem, cert)
  t.false(existsSync(join(store, 'tpm-key.blob')))
  t.deepEqual(leftovers(store), [])
  // A certificate that is not for the device key is refused, not used.
  writeFileSync(join(store, 'cert.pem'), (await DeviceIdentity.enroll({ url, token: token('sensor-2'), dir: join(dir, 'sensor-2'), passphrase: 'pw' })).certificatePem)
  await t.throwsAsync(DeviceIdentity.open(store, 'pw'), { code: 'ERR_KEY_MISMATCH' })
})
