import test from 'ava'

import { buildCsr, CertificateAuthority, connectSecure, createSecureServer, generateP256Key, RevocationSet, TrustStore, type SecureStream, Signer } from '../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'Endpoint Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Endpoint Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem

function device(deviceId: string, tenant = 'hotel-1') {
  const privateKey = generateP256Key()
  const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant })
  return { identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(privateKey) }, cert }
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`createSecureServer/connectSecure over ${protocol}: echo, typed refusal, revocation push closes live links`, async (t) => {
    const gw = device('gw-1')
    const refusals: unknown[] = []
    const server = createSecureServer({ protocol, identity: gw.identity, trustPem, policy: { expectedTenant: 'hotel-1' } }, (link) => {
      link.on('error', () => {})
      link.pipe(link)
    }, (error) => refusals.push(error))
    const { port } = await server.listen(0)
    t.teardown(() => server.close())
    const tablet = device('tablet-7')
    const link: SecureStream = await connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, serverDevice: 'gw-1' })
    t.like(link.peer, { deviceId: 'gw-1' })
    t.is(link.protocol, protocol)
    t.true(link.postQuantum)
    const echoed = new Promise<Buffer>((resolve) => link.once('data', resolve))
    link.write('ping')
    t.is((await echoed).toString(), 'ping')

    await t.throwsAsync(connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, serverDevice: 'someone-else' }), { code: 'ERR_DEVICE_MISMATCH' })
    await t.throwsAsync(connectSecure({ protocol, host: '127.0.0.1', port: 1, identity: tablet.identity, trustPem }), { code: 'ERR_UNREACHABLE' })
    const controller = new AbortController()
    controller.abort()
    await t.throwsAsync(connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, signal: controller.signal }), { code: 'ERR_ABORTED' })

    link.on('error', () => {})
    const closed = new Promise<void>((resolve) => link.once('close', () => resolve()))
    const revocations = new RevocationSet()
    const now = Date.now()
    revocations.addRecord(siteCa.signRevocationRecord(1, now, [{ serial: tablet.cert.serial, spkiSha256: tablet.cert.spkiSha256, revokedAtMs: now, reason: 1 }]), site.certificatePem, TrustStore.fromPem(trustPem))
    server.setRevocations(revocations)
    await closed
    t.is(server.links.size, 0)
  })
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, a slow reader holds the writer back (bounded buffering) and loses nothing`, async (t) => {
    const gw = device('gw-1')
    let serverLink: SecureStream | undefined
    const server = createSecureServer({ protocol, identity: gw.identity, trustPem }, (link) => {
      link.on('error', () => {})
      link.pause() // a reader that does not read yet
      serverLink = link
    })
    const { port } = await server.listen(0)
    t.teardown(() => server.close())
    const link = await connectSecure({ protocol, host: '127.0.0.1', port, identity: device('tablet-7').identity, trustPem })
    for (let i = 0; i < 200 && serverLink === undefined; i++) await new Promise((r) => setTimeout(r, 5))
    const chunk = Buffer.alloc(64 * 1024)
    let sent = 0
    // Writes until the link says to wait; loopback socket buffers hold a few MiB at most.
    for (let i = 0; i < 1024; i++) {
      chunk.writeUInt32BE(i, 0)
      sent += chunk.length
      if (!link.write(chunk)) break
    }
    t.true(sent < 48 * 1024 * 1024, `the writer was held back after ${sent} bytes`)
    await new Promise((r) => setTimeout(r, 100))
    t.true(serverLink!.readableLength <= 2 * 1024 * 1024, `the paused reader buffers ${serverLink!.readableLength} bytes`)
    const received: Buffer[] = []
    let got = 0
    const all = new Promise<void>((resolve) => serverLink!.on('data', (data: Buffer) => { received.push(data); got += data.length; if (got >= sent) resolve() }))
    serverLink!.resume()
    await all
    const bytes = Buffer.concat(received)
    t.is(bytes.length, sent)
    for (let i = 0; i * chunk.length < sent; i++) t.is(bytes.readUInt32BE(i * chunk.length), i)
    link.destroy()
  })
}
