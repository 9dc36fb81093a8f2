import { createConnection, createServer } from 'node:net'

import test from 'ava'

import { buildCsr, CertificateAuthority, connectSecure, createPolicyDecisionPoint, createSecureServer, generateP256Key, LiveLinks, RevocationSet, TrustStore, type AuditEvent, type SecureStream, Signer } from '../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'Endpoint Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Endpoint Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem

function device(deviceId: string, tenant = 'hotel-1') {
  const privateKey = generateP256Key()
  const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant })
  return { identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(privateKey) }, cert }
}

/** Revocations, signed by the site CA, naming `device`'s certificate. */
function revoking(revoked: { cert: { serial: string; spkiSha256: string } }): RevocationSet {
  const revocations = new RevocationSet()
  const now = Date.now()
  revocations.addRecord(siteCa.signRevocationRecord(1, now, [{ serial: revoked.cert.serial, spkiSha256: revoked.cert.spkiSha256, revokedAtMs: now, reason: 1 }]), site.certificatePem, TrustStore.fromPem(trustPem))
  return revocations
}

/** What a client sees when the server refuses it during the handshake. */
const clientRefusal = { tls: 'ERR_TLS_ALERT', noise: 'ERR_NOISE_REFUSED' } as const

/**
 * The code of the refusal a client met: the rejection of `connecting`, or, in TLS 1.3 (where a
 * client is done once it has sent its certificate, before the server judged it), the error that
 * ends the link it was given. A link that carries on is no refusal.
 */
async function refusal(connecting: Promise<SecureStream>): Promise<string | undefined> {
  let link: SecureStream
  try {
    link = await connecting
  } catch (error) {
    return (error as { code?: string }).code
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 3000)
    link.once('error', (error: { code?: string }) => {
      clearTimeout(timer)
      resolve(error.code)
    })
  })
}

/**
 * A TCP proxy in front of `port` that forwards the client's first flight and holds every later
 * byte from the client until `release()`: a handshake kept under way as long as an attacker likes.
 */
async function holdingProxy(port: number) {
  let held = true
  const backlog: Buffer[] = []
  let upstream: ReturnType<typeof createConnection> | undefined
  const proxy = createServer((client) => {
    const server = createConnection({ port, host: '127.0.0.1' })
    upstream = server
    server.on('data', (data) => client.write(data))
    server.on('error', () => {})
    client.on('error', () => {})
    server.on('close', () => client.destroy())
    client.on('close', () => server.destroy())
    let flights = 0
    client.on('data', (data) => {
      if (flights++ === 0 || !held) server.write(data)
      else backlog.push(data)
    })
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  return {
    port: (proxy.address() as { port: number }).port,
    heldBytes: () => backlog.reduce((n, b) => n + b.length, 0),
    release: () => {
      held = false
      for (const data of backlog.splice(0)) upstream?.write(data)
    },
    close: () => proxy.close(),
  }
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
    server.setRevocations(revoking(tablet))
    await closed
    t.is(server.links.size, 0)
    // New handshakes of the revoked device are refused: the server says why, the client is told no.
    refusals.length = 0
    t.is(await refusal(connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, serverDevice: 'gw-1' })), clientRefusal[protocol])
    for (let i = 0; i < 200 && refusals.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.like(refusals, [{ code: 'ERR_CERT_REVOKED' }])
    t.is(server.links.size, 0)
  })
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, a handshake held back across setRevocations is judged under the new revocations`, async (t) => {
    const gw = device('gw-1')
    const tablet = device('tablet-7')
    const refusals: unknown[] = []
    const server = createSecureServer({ protocol, identity: gw.identity, trustPem }, (link) => link.on('error', () => {}), (error) => refusals.push(error))
    const { port } = await server.listen(0)
    const proxy = await holdingProxy(port)
    t.teardown(async () => {
      proxy.close()
      await server.close()
    })
    const connecting = connectSecure({ protocol, host: '127.0.0.1', port: proxy.port, identity: tablet.identity, trustPem, handshakeTimeoutMs: 5000 })
    connecting.catch(() => {}) // judged below, once released
    // The client's second flight (its certificate chain) is held at the proxy.
    for (let i = 0; i < 400 && proxy.heldBytes() === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.true(proxy.heldBytes() > 0, 'the client sent its second flight')
    server.setRevocations(revoking(tablet))
    proxy.release()
    t.is(await refusal(connecting), clientRefusal[protocol])
    for (let i = 0; i < 200 && refusals.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.like(refusals, [{ code: 'ERR_CERT_REVOKED' }])
    t.is(server.links.size, 0, 'the revoked client never became a live link')
  })
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, a client's links registered in LiveLinks are closed when their server is revoked`, async (t) => {
    const gw = device('gw-1')
    const server = createSecureServer({ protocol, identity: gw.identity, trustPem }, (link) => link.on('error', () => {}))
    const { port } = await server.listen(0)
    t.teardown(() => server.close())
    const tablet = device('tablet-7')
    const links = new LiveLinks()
    const link = await connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, links })
    t.is(links.size, 1)
    t.is(links.apply(revoking(device('someone-else'))), 0, 'revocations naming another device close nothing')
    t.false(link.destroyed)
    const closed = new Promise<unknown>((resolve) => link.once('error', resolve))
    t.is(links.apply(revoking(gw)), 1)
    t.like(await closed, { code: 'ERR_CERT_REVOKED' })
    t.is(links.size, 0)
    // A later link to the revoked server, decided under the client's older revocations, is closed
    // as it is registered: the client never gets it.
    await t.throwsAsync(connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet.identity, trustPem, links }), { code: 'ERR_CERT_REVOKED' })
    t.is(links.size, 0)
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

/** An audit sink that keeps what it is given. */
function auditTrail() {
  const rows: AuditEvent[] = []
  return { rows, append: (event: AuditEvent) => rows.push(event) }
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, with no policy a server refuses a client of another tenant and a client refuses a server of another tenant (ERR_POLICY_DENIED, audited)`, async (t) => {
    // Attack, server role: a device of the same CA but another tenant connects to hotel-1's gateway.
    const audit = auditTrail()
    const refusals: unknown[] = []
    const accepted: SecureStream[] = []
    const server = createSecureServer({ protocol, identity: device('gw-1').identity, trustPem, audit }, (link) => {
      link.on('error', () => {})
      accepted.push(link)
    }, (error) => refusals.push(error))
    const { port } = await server.listen(0)
    t.teardown(() => server.close())
    const intruder = device('tablet-9', 'hotel-2')
    const link = await connectSecure({ protocol, host: '127.0.0.1', port, identity: intruder.identity, trustPem, access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-2', rules: [{ id: 'any-gateway', effect: 'allow', actions: ['link.connect'], peerTenants: ['hotel-1'] }] }, audit: auditTrail() }) }).catch((error: unknown) => error as SecureStream)
    if (typeof (link as SecureStream).once === 'function') {
      ;(link as SecureStream).on('error', () => {})
      if (!(link as SecureStream).destroyed) await new Promise((resolve) => (link as SecureStream).once('close', resolve))
    }
    for (let i = 0; i < 200 && refusals.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.like(refusals, [{ code: 'ERR_POLICY_DENIED' }])
    t.is(accepted.length, 0, 'the intruder never reached the service')
    t.is(server.links.size, 0)
    t.like(audit.rows, [{ actor: 'tablet-9', action: 'link.accept', outcome: 'deny', reason: 'cross-tenant', detail: { tenant: 'hotel-2', 'resource.tenant': 'hotel-1', 'resource.device': 'gw-1' } }])

    // A device of the gateway's own tenant is let in, and that is audited too.
    const own = await connectSecure({ protocol, host: '127.0.0.1', port, identity: device('tablet-7').identity, trustPem, serverDevice: 'gw-1' })
    t.teardown(() => own.destroy())
    for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.is(accepted.length, 1)
    t.like(audit.rows[1], { actor: 'tablet-7', action: 'link.accept', outcome: 'allow' })

    // Attack, client role: a server of another tenant (which would let hotel-1 in) answers a hotel-1 client.
    const foreign = createSecureServer(
      { protocol, identity: device('gw-9', 'hotel-2').identity, trustPem, access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-2', rules: [{ id: 'guests', effect: 'allow', actions: ['link.accept'], peerTenants: ['hotel-1'] }] }, audit: auditTrail() }) },
      (l) => l.on('error', () => {}),
    )
    const foreignPort = (await foreign.listen(0)).port
    t.teardown(() => foreign.close())
    const clientAudit = auditTrail()
    await t.throwsAsync(connectSecure({ protocol, host: '127.0.0.1', port: foreignPort, identity: device('tablet-8').identity, trustPem, audit: clientAudit }), { code: 'ERR_POLICY_DENIED' })
    t.like(clientAudit.rows, [{ actor: 'gw-9', action: 'link.connect', outcome: 'deny', reason: 'cross-tenant' }])

    // Cross-tenant access is possible, but only through a policy that names the other tenant.
    const crossing = await connectSecure({
      protocol, host: '127.0.0.1', port: foreignPort, identity: device('tablet-8').identity, trustPem,
      access: createPolicyDecisionPoint({ policy: { version: 1, tenant: 'hotel-1', rules: [{ id: 'partner-gw', effect: 'allow', actions: ['link.connect'], devices: ['gw-9'], peerTenants: ['hotel-2'] }] }, audit: clientAudit }),
    })
    t.like(crossing.peer, { deviceId: 'gw-9', tenant: 'hotel-2' })
    t.like(clientAudit.rows[1], { actor: 'gw-9', outcome: 'allow', reason: 'rule:partner-gw' })
    crossing.destroy()
  })
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, a peer that sends its leaf alone is accepted when the other end knows its site CA, and refused when it does not`, async (t) => {
    const gw = device('gw-1')
    const server = createSecureServer({ protocol, identity: gw.identity, trustPem }, (link) => {
      link.on('error', () => {})
      link.pipe(link)
    })
    const { port } = await server.listen(0)
    t.teardown(() => server.close())
    const leafOnly = (d: ReturnType<typeof device>) => ({ ...d.identity, certificateChainPem: d.cert.pem })

    // The leaf and its site CA, and the leaf alone (the server completes it with its own site CA).
    const full = await connectSecure({ protocol, host: '127.0.0.1', port, identity: device('tablet-7').identity, trustPem, serverDevice: 'gw-1' })
    t.like(full.peer, { deviceId: 'gw-1' })
    full.destroy()
    const alone = await connectSecure({ protocol, host: '127.0.0.1', port, identity: leafOnly(device('tablet-8')), trustPem, serverDevice: 'gw-1' })
    const echoed = new Promise<Buffer>((resolve) => alone.once('data', resolve))
    alone.write('leaf only')
    t.is((await echoed).toString(), 'leaf only')
    alone.destroy()

    // A client completes a leaf-only server the same way.
    const quiet = createSecureServer({ protocol, identity: leafOnly(device('gw-2')), trustPem }, (link) => link.on('error', () => {}))
    const quietPort = (await quiet.listen(0)).port
    t.teardown(() => quiet.close())
    const toQuiet = await connectSecure({ protocol, host: '127.0.0.1', port: quietPort, identity: device('tablet-9').identity, trustPem, serverDevice: 'gw-2' })
    t.like(toQuiet.peer, { deviceId: 'gw-2' })
    toQuiet.destroy()

    // A site CA the server does not hold is never made up: another site of the same root must
    // send its site CA, and is accepted then (same tenant).
    const other = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Other Site', organisation: 'Acme' })
    const otherCa = CertificateAuthority.load(other.certificatePem, other.privateKey)
    const key = generateP256Key()
    const cert = otherCa.issue(buildCsr(key, 'kiosk-1', 'hotel-1'), { deviceId: 'kiosk-1', tenant: 'hotel-1' })
    const refusals: unknown[] = []
    const strict = createSecureServer({ protocol, identity: gw.identity, trustPem }, (link) => link.on('error', () => {}), (error) => refusals.push(error))
    const strictPort = (await strict.listen(0)).port
    t.teardown(() => strict.close())
    t.is(await refusal(connectSecure({ protocol, host: '127.0.0.1', port: strictPort, identity: { certificateChainPem: cert.pem, signer: Signer.fromPkcs8(key) }, trustPem })), clientRefusal[protocol])
    for (let i = 0; i < 200 && refusals.length === 0; i++) await new Promise((r) => setTimeout(r, 5))
    t.like(refusals, [{ code: 'ERR_CHAIN' }])
    const sent = await connectSecure({ protocol, host: '127.0.0.1', port: strictPort, identity: { certificateChainPem: cert.pem + other.certificatePem, signer: Signer.fromPkcs8(key) }, trustPem })
    t.like(sent.peer, { deviceId: 'gw-1' })
    sent.destroy()
  })
}
