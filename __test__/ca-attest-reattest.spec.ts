import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import type { AuditRecord } from '../src/audit/index.js'
import { enrollRequestFor, nonceRequestFor } from '../src/protocol/enroll.js'
import { CaService, rotationMessage, type ReattestResult } from '../src/ca/index.js'
import { Reattestor } from '../src/attestation/verifier/reattest.js'
import {
  akBindingMessage,
  Mux,
  serveQuotes,
  buildCsr,
  connectSecure,
  createError,
  createSecureServer,
  generateP256Key,
  SigningKey,
  Tpm,
  TrustStore,
  verifyPeer,
  type BoundQuote,
  type QuoteRequest,
  type SecureServer,
  Signer,
  askQuote,
  encodeQuoteRequest,
  QUOTE_PROTOCOL,
  QUOTE_RATE,
} from '../src/index.js'
import { RateLimiter } from '../src/rate-limit.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

async function freshCa(t: ExecutionContext, now?: () => number) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-reattest-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Reattest Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca'), ...(now !== undefined && { now }) })
  t.teardown(() => ca.close())
  return ca
}

/** The gateway's identity: a device certificate of the site CA with a software key, and the role nodes answer quotes for. */
function gatewayIdentity(ca: CaService) {
  const privateKey = generateP256Key()
  const { token } = ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1', roles: ['gateway'] })
  const enrolled = ca.enroll(enrollRequestFor(token, buildCsr(privateKey, 'gw-1', 'hotel-1')), 'test')
  return { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromPkcs8(privateKey) }
}

/**
 * A node with a swtpm: enrolled with a genuine quote, and serving quote requests on a real
 * secure server whose answers the test can replace.
 */
async function attestedNode(t: ExecutionContext, ca: CaService, deviceId: string) {
  // A TPM with an EK certificate of a maker the CA trusts: `required` enrolls only such a TPM.
  const swtpm = await startSwtpm(t, { ek: true })
  ca.setAttestationSettings({ ekCasPem: swtpm.ekCasPem! })
  const tpm = Tpm.open(swtpm.tcti)
  const keyBlob = await tpm.createSigningKey()
  const key = tpm.loadKey(keyBlob)
  const ak = await tpm.createAttestationKey()
  const genuine = async (request: QuoteRequest): Promise<BoundQuote> => {
    const quote = await tpm.quote(ak, request.nonce, request.pcrs)
    return { ...quote, akBinding: key.sign(akBindingMessage(quote.akPublicPem)) }
  }
  const { token } = ca.createToken({ deviceId, tenant: 'hotel-1', roles: ['pos-terminal'] })
  const issued = ca.issueNonce({ ...nonceRequestFor(token, deviceId), ekCertificate: await tpm.ekCertificate(), akPublic: tpm.publicArea(ak) }, 'test')
  const nonce = Buffer.from(issued.nonce, 'hex')
  const quote = await genuine({ nonce, pcrs: issued.pcrs })
  const csr = key.buildCsr(deviceId, 'hotel-1')
  const activatedSecret = await tpm.activateCredential(ak, issued.challenge!.credentialBlob, issued.challenge!.encryptedSecret)
  const certified = await tpm.certify(ak, keyBlob, nonce)
  const certification = { keyPublic: tpm.publicArea(keyBlob), attest: certified.attest, signature: certified.signature }
  const attestation = { nonce, quote, activatedSecret, certification }
  const enrolled = ca.enroll(enrollRequestFor(token, csr, { nodeId: deviceId, attestation }), 'test')
  // One quote budget per peer across all the node's links, as DeviceIdentity.answerQuotes has;
  // its clock stands still, so the budget never refills during a test.
  const limiter = new RateLimiter({ ...QUOTE_RATE, now: () => 0 })
  const node = {
    tpm,
    key,
    enrolled,
    /** What the node answers quote requests with. */
    produce: genuine,
    genuine,
    server: undefined as SecureServer | undefined,
    port: 0,
    async listen() {
      const server = createSecureServer({ identity: { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromTpmKey(key) }, trustPem: ca.trustBundle() }, (link) => {
        link.on('error', () => {})
        serveQuotes(new Mux(link, { role: 'responder' }), (request) => node.produce(request), { limiter })
      })
      node.port = (await server.listen(0)).port
      node.server = server
      t.teardown(() => server.close())
    },
  }
  await node.listen()
  return node
}

function reattestRows(ca: CaService): AuditRecord[] {
  return ca.auditRecords(500).filter((row) => row.action === 'reattest').reverse()
}

function assertRevoked(t: ExecutionContext, ca: CaService, certificateChain: string) {
  const trust = TrustStore.fromPem(ca.trustBundle())
  t.throws(() => verifyPeer(certificateChain, trust, ca.revocations()), { code: 'ERR_CERT_REVOKED' })
}

tpmTestSerial("re-attestation: fresh quotes are recorded; PCR drift revokes the node's certificate under 'revoke'", async (t) => {
  const ca = await freshCa(t)
  const identity = gatewayIdentity(ca)
  ca.setAttestationSettings({ mode: 'required', onDrift: 'revoke' }) // no CA policy: the enrollment baseline rules
  const node = await attestedNode(t, ca, 'node-1')
  const reattestor = new Reattestor({ ca, identity, nodes: () => [{ deviceId: 'node-1', tenant: 'hotel-1', host: '127.0.0.1', port: node.port }], timeoutMs: 5000 })

  const ok = await reattestor.runOnce()
  t.like(ok, [{ deviceId: 'node-1', tenant: 'hotel-1', verdict: 'ok', reason: 'ok', action: 'none', revoked: [] }])
  const checked = ca.attestationStatus('node-1', 'hotel-1')!
  t.like(checked, { lastVerdict: 'ok', lastReason: 'ok', failures: 0 })
  t.is(checked.lastAttestedAtMs, checked.lastCheckedAtMs)

  node.tpm.pcrExtend(7, Buffer.from('an unsigned bootloader'))
  const drift = await reattestor.runOnce()
  t.like(drift, [{ verdict: 'drift', reason: 'ERR_ATTEST_PCR_MISMATCH', action: 'revoke', revoked: [node.enrolled.serial] }])
  t.like(ca.certificate(node.enrolled.serial), { revocationReason: 'privilegeWithdrawn' })
  assertRevoked(t, ca, node.enrolled.certificate + node.enrolled.caChain)
  t.like(ca.attestationStatus('node-1')!, { lastVerdict: 'drift', failures: 1 })

  // Revoked, the node can no longer even open the link: a failure, and nothing more to revoke.
  const after = await reattestor.runOnce()
  t.like(after, [{ verdict: 'failed', action: 'none', revoked: [] }])
  t.regex(after[0]!.reason, /^ERR_(CERT_REVOKED|TLS_ALERT|TLS_HANDSHAKE)$/)
  t.log(`the revoked node's link failed with ${after[0]!.reason}`)

  const rows = reattestRows(ca)
  t.deepEqual(rows.map((row) => [row.outcome, row.reason, row.detail?.action]), [
    ['allow', 'ok', 'none'],
    ['deny', 'ERR_ATTEST_PCR_MISMATCH', 'revoke'],
    ['deny', after[0]!.reason, 'none'],
  ])
  t.like(rows[1], { actor: 'reattest', detail: { device: 'node-1', tenant: 'hotel-1', verdict: 'drift', serial: node.enrolled.serial, revoked: 1 } })
  const revocation = ca.auditRecords(100).find((row) => row.action === 'revoke')
  t.like(revocation, { actor: 'reattest', outcome: 'allow', detail: { device: 'node-1', reason: 'privilegeWithdrawn', count: 1 } })
  t.true(ca.verifyAudit() > 0)
})

tpmTestSerial("re-attestation under 'demote': an unreachable node is recorded, not revoked; drift demotes its roles", async (t) => {
  const ca = await freshCa(t)
  const identity = gatewayIdentity(ca)
  const node = await attestedNode(t, ca, 'node-1')
  const pcr7 = node.tpm.readPcrs([7])[0]!.value
  ca.setAttestationSettings({ mode: 'required', onDrift: 'demote', pcrPolicy: { 7: pcr7 } })
  const reattestor = new Reattestor({ ca, identity, nodes: () => [{ deviceId: 'node-1', host: '127.0.0.1', port: node.port }], timeoutMs: 3000 })
  t.like(await reattestor.runOnce(), [{ verdict: 'ok' }])
  const trust = TrustStore.fromPem(ca.trustBundle())
  t.deepEqual(verifyPeer(node.enrolled.certificate + node.enrolled.caChain, trust, ca.revocations()).roles, ['pos-terminal'])

  await node.server!.close()
  const unreachable = await reattestor.runOnce()
  t.like(unreachable, [{ deviceId: 'node-1', tenant: 'hotel-1', verdict: 'failed', reason: 'ERR_UNREACHABLE', action: 'none', revoked: [] }])
  t.like(ca.attestationStatus('node-1')!, { lastVerdict: 'failed', lastReason: 'ERR_UNREACHABLE', failures: 1, demotedAtMs: null })
  t.like(ca.certificate(node.enrolled.serial), { revokedAtMs: null })

  await node.listen()
  t.like(await reattestor.runOnce(), [{ verdict: 'ok' }])
  t.like(ca.attestationStatus('node-1')!, { failures: 0 })

  node.tpm.pcrExtend(7, Buffer.from('an unsigned bootloader'))
  const drift = await reattestor.runOnce()
  t.like(drift, [{ verdict: 'drift', reason: 'ERR_ATTEST_PCR_MISMATCH', action: 'demote', revoked: [] }])
  const demoted = ca.attestationStatus('node-1')!
  t.truthy(demoted.demotedAtMs)
  t.deepEqual(demoted.demotedRoles, ['pos-terminal'])
  t.like(ca.certificate(node.enrolled.serial), { revokedAtMs: null })

  // Its next rotation keeps its identity and drops its roles.
  const csr = node.key.buildCsr('node-1', 'hotel-1')
  const timestamp = Date.now()
  const rotated = ca.rotate({ certificate: node.enrolled.certificate, csr, timestampMs: timestamp, signature: node.key.sign(rotationMessage(timestamp, csr)) }, 'node-1')
  t.like(verifyPeer(rotated.certificate + rotated.caChain, trust, ca.revocations()), { deviceId: 'node-1', roles: [] })
  t.like(ca.auditRecords(10).find((row) => row.action === 'rotate'), { outcome: 'allow', detail: { roles_demoted: true } })

  t.deepEqual(reattestRows(ca).map((row) => [row.reason, row.detail?.action]), [
    ['ok', 'none'],
    ['ERR_UNREACHABLE', 'none'],
    ['ok', 'none'],
    ['ERR_ATTEST_PCR_MISMATCH', 'demote'],
  ])
})

tpmTestSerial('re-attestation fails closed: another AK is refused, and silence, errors or the wrong peer are recorded failures', async (t) => {
  const ca = await freshCa(t)
  const identity = gatewayIdentity(ca)
  ca.setAttestationSettings({ mode: 'required', onDrift: 'demote' })
  const node = await attestedNode(t, ca, 'node-1')
  const nodes = [{ deviceId: 'node-1', host: '127.0.0.1', port: node.port }]
  const reattestor = new Reattestor({ ca, identity, nodes, timeoutMs: 1000 })
  const once = async (): Promise<ReattestResult> => (await reattestor.runOnce())[0]!

  node.produce = () => Promise.reject(createError('ERR_TPM_UNAVAILABLE'))
  t.like(await once(), { verdict: 'failed', reason: 'ERR_TPM_UNAVAILABLE', action: 'none' })
  node.produce = () => new Promise(() => {}) // never answers
  t.like(await once(), { verdict: 'failed', reason: 'ERR_TIMEOUT', action: 'none' })
  const stranger = SigningKey.fromPkcs8('ecdsa-p256-sha256', generateP256Key())
  node.produce = async (request) => {
    const quote = await node.tpm.quote(await node.tpm.createAttestationKey(), request.nonce, request.pcrs)
    return { ...quote, akBinding: stranger.sign(akBindingMessage(quote.akPublicPem)) }
  }
  t.like(await once(), { verdict: 'refused', reason: 'ERR_ATTEST_KEY_CHANGED', action: 'demote' })
  t.truthy(ca.attestationStatus('node-1')!.demotedAtMs)

  // The wrong device at the address: nobody is punished, the expected node's check failed.
  const wrong = new Reattestor({ ca, identity, nodes: [{ deviceId: 'node-9', host: '127.0.0.1', port: node.port }], timeoutMs: 1000 })
  t.like(await wrong.runOnce(), [{ deviceId: 'node-9', tenant: null, verdict: 'failed', reason: 'ERR_DEVICE_MISMATCH', action: 'none' }])
  t.like(ca.attestationStatus('node-1')!, { lastVerdict: 'refused', failures: 3 })
  t.like(ca.certificate(node.enrolled.serial), { revokedAtMs: null })
  t.deepEqual(reattestRows(ca).map((row) => [row.outcome, row.reason]), [
    ['deny', 'ERR_TPM_UNAVAILABLE'],
    ['deny', 'ERR_TIMEOUT'],
    ['deny', 'ERR_ATTEST_KEY_CHANGED'],
    ['deny', 'ERR_DEVICE_MISMATCH'],
  ])
  t.like(reattestRows(ca)[3], { detail: { device: 'node-9', known: false } })
})

tpmTestSerial('re-attestation cannot be evaded by silence: failures in a row or no good quote for too long apply the drift action; required mode refuses a device with no attested record', async (t) => {
  let later = 0
  const ca = await freshCa(t, () => Date.now() + later)
  const identity = gatewayIdentity(ca)
  ca.setAttestationSettings({ mode: 'required', onDrift: 'revoke', maxFailures: 2 })
  const node = await attestedNode(t, ca, 'node-1')
  const reattestor = (deviceId: string, port: number) => new Reattestor({ ca, identity, nodes: [{ deviceId, host: '127.0.0.1', port }], timeoutMs: 1000 })
  const once = async (deviceId: string, port: number): Promise<ReattestResult> => (await reattestor(deviceId, port).runOnce())[0]!

  // The attack: a node that drifted answers with errors, or not at all, instead of a quote.
  node.produce = () => Promise.reject(createError('ERR_TPM_UNAVAILABLE'))
  t.like(await once('node-1', node.port), { verdict: 'failed', reason: 'ERR_TPM_UNAVAILABLE', action: 'none' })
  node.produce = () => new Promise(() => {}) // never answers
  t.like(await once('node-1', node.port), { verdict: 'failed', reason: 'ERR_TIMEOUT', action: 'revoke', revoked: [node.enrolled.serial] })
  assertRevoked(t, ca, node.enrolled.certificate + node.enrolled.caChain)
  t.like(ca.attestationStatus('node-1')!, { lastVerdict: 'failed', failures: 2 })

  // Required mode: a device whose enrollment was not attested is refused at its first check.
  ca.setAttestationSettings({ mode: 'optional' })
  const plainKey = generateP256Key()
  const plain = ca.enroll(enrollRequestFor(ca.createToken({ deviceId: 'plain-1', tenant: 'hotel-1' }).token, buildCsr(plainKey, 'plain-1', 'hotel-1')), 'test')
  const server = createSecureServer({ identity: { certificateChainPem: plain.certificate + plain.caChain, signer: Signer.fromPkcs8(plainKey) }, trustPem: ca.trustBundle() }, (link) => {
    link.on('error', () => {})
    serveQuotes(new Mux(link, { role: 'responder' }), () => Promise.reject(createError('ERR_TPM_UNSUPPORTED')))
  })
  const { port } = await server.listen(0)
  t.teardown(() => server.close())
  t.like(await once('plain-1', port), { verdict: 'failed', reason: 'ERR_ATTEST_NOT_ENROLLED', action: 'none' }, 'optional mode: recorded only')
  ca.setAttestationSettings({ mode: 'required' })
  t.like(await once('plain-1', port), { verdict: 'failed', reason: 'ERR_ATTEST_NOT_ENROLLED', action: 'revoke', revoked: [plain.serial] })

  // No good quote for longer than maxSilenceSeconds: the next failure applies the drift action, here demote.
  ca.setAttestationSettings({ onDrift: 'demote', maxFailures: 100, maxSilenceSeconds: 3600 })
  const quiet = await attestedNode(t, ca, 'node-2')
  await quiet.server!.close()
  t.like(await once('node-2', quiet.port), { verdict: 'failed', reason: 'ERR_UNREACHABLE', action: 'none' })
  later = 3_601_000
  t.like(await once('node-2', quiet.port), { verdict: 'failed', reason: 'ERR_UNREACHABLE', action: 'demote', revoked: [] })
  t.truthy(ca.attestationStatus('node-2')!.demotedAtMs)

  t.deepEqual(reattestRows(ca).map((row) => [row.reason, row.detail?.action, row.detail?.silence ?? null]), [
    ['ERR_TPM_UNAVAILABLE', 'none', null],
    ['ERR_TIMEOUT', 'revoke', 'failures'],
    ['ERR_ATTEST_NOT_ENROLLED', 'none', null],
    ['ERR_ATTEST_NOT_ENROLLED', 'revoke', 'not-attested'],
    ['ERR_UNREACHABLE', 'none', null],
    ['ERR_UNREACHABLE', 'demote', 'stale'],
  ])
})

tpmTestSerial('the quote responder answers gateways only, one request per stream and at a time per link, within a per-peer budget; askQuote can be aborted', async (t) => {
  const ca = await freshCa(t)
  const gateway = gatewayIdentity(ca)
  const node = await attestedNode(t, ca, 'node-1')
  let running = 0
  let most = 0
  let produced = 0
  let gate = Promise.resolve()
  node.produce = async (request) => {
    produced++
    most = Math.max(most, ++running)
    try {
      await gate
      return await node.genuine(request)
    } finally {
      running--
    }
  }
  const link = async (identity: { certificateChainPem: string; signer: Signer }) => {
    const secure = await connectSecure({ host: '127.0.0.1', port: node.port, identity, trustPem: ca.trustBundle(), serverDevice: 'node-1' })
    secure.on('error', () => {})
    t.teardown(() => secure.destroy())
    return new Mux(secure, { role: 'initiator' })
  }
  const request = () => ({ nonce: randomBytes(32), pcrs: [0, 7] })
  const codeOf = (promise: Promise<unknown>) => promise.then(() => 'ok', (error: { code?: string }) => error.code)

  // The attack: any device of the CA asks for quotes. A device without the gateway role is refused, and the TPM is not touched.
  const tabletKey = generateP256Key()
  const { token } = ca.createToken({ deviceId: 'tablet-9', tenant: 'hotel-1' })
  const tablet = ca.enroll(enrollRequestFor(token, buildCsr(tabletKey, 'tablet-9', 'hotel-1')), 'test')
  const tabletMux = await link({ certificateChainPem: tablet.certificate + tablet.caChain, signer: Signer.fromPkcs8(tabletKey) })
  t.is(await codeOf(askQuote(tabletMux, request(), { timeoutMs: 5000 })), 'ERR_FORBIDDEN')
  t.is(produced, 0)

  // askQuote takes an AbortSignal: a node that never answers is given up on when it aborts.
  const genuine = node.produce
  node.produce = () => new Promise(() => {})
  const stuck = await link(gateway)
  const aborted = new AbortController()
  const pending = codeOf(askQuote(stuck, request(), { timeoutMs: 60_000, signal: aborted.signal }))
  setTimeout(() => aborted.abort(), 50)
  t.is(await pending, 'ERR_ABORTED')
  t.is(await codeOf(askQuote(stuck, request(), { signal: AbortSignal.abort() })), 'ERR_ABORTED')
  node.produce = genuine

  // A burst on one link: one quote at a time, one waiting, the rest refused at once.
  // The first quote is held until the other three have arrived: one waits, two are refused.
  const mux = await link(gateway)
  let release = () => {}
  gate = new Promise<void>((resolve) => (release = resolve))
  let refused = 0
  const asks = [1, 2, 3, 4].map(() => codeOf(askQuote(mux, request(), { timeoutMs: 20_000 })).then((code) => ((refused += code === 'ERR_RATE_LIMITED' ? 1 : 0), code)))
  for (let i = 0; i < 1000 && refused < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.is(produced, 1, 'one quote in progress, one waiting behind it')
  release()
  const burst = await Promise.all(asks)
  t.deepEqual(burst.sort(), ['ERR_RATE_LIMITED', 'ERR_RATE_LIMITED', 'ok', 'ok'])
  t.is(most, 1, 'the TPM never worked on two requests of the link at once')

  // One request per stream: a second line is never answered, and the node ends the stream.
  const stream = await mux.open(QUOTE_PROTOCOL)
  stream.on('error', () => {})
  stream.write(Buffer.concat([encodeQuoteRequest(request()), encodeQuoteRequest(request())]))
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  await new Promise((resolve) => stream.once('end', resolve))
  stream.end()
  t.is(Buffer.concat(chunks).toString().split('\n').filter((line) => line !== '').length, 1)

  // The budget (5 at once, then 1 per 10 s; the test's clock stands still) is the peer's, not the link's: a new link does not refill it.
  t.is(await codeOf(askQuote(mux, request())), 'ok')
  const other = await link(gateway)
  t.is(await codeOf(askQuote(other, request())), 'ERR_RATE_LIMITED')
  t.is(produced, 4)
})

test('a node enrolled without attestation cannot be re-attested; periodic runs start, stop, and never overlap', async (t) => {
  const ca = await freshCa(t)
  const identity = gatewayIdentity(ca)
  const nodeKey = generateP256Key()
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const enrolled = ca.enroll(enrollRequestFor(token, buildCsr(nodeKey, 'node-1', 'hotel-1')), 'test')
  let asked = 0
  const server = createSecureServer({ protocol: 'noise', identity: { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromPkcs8(nodeKey) }, trustPem: ca.trustBundle() }, (link) => {
    link.on('error', () => {})
    serveQuotes(new Mux(link, { role: 'responder' }), () => {
      asked++
      return Promise.reject(createError('ERR_TPM_UNSUPPORTED'))
    })
  })
  const { port } = await server.listen(0)
  t.teardown(() => server.close())
  // Links opened by the caller: here over Noise, through the `connect` option.
  let opened = 0
  const reattestor = new Reattestor({
    ca,
    nodes: [{ deviceId: 'node-1', host: '127.0.0.1', port }],
    connect: (node, signal) => {
      opened++
      return connectSecure({ protocol: 'noise', host: node.host, port: node.port, identity, trustPem: ca.trustBundle(), serverDevice: node.deviceId, signal })
    },
  })
  t.like(await reattestor.runOnce(), [{ verdict: 'failed', reason: 'ERR_ATTEST_NOT_ENROLLED', action: 'none' }])
  t.is(asked, 0, 'no quote is asked of a node with no AK on record')

  reattestor.start({ intervalMs: 100 })
  reattestor.start({ intervalMs: 100 }) // a second start is a no-op
  for (let i = 0; i < 100 && opened < 4; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  await reattestor.stop()
  const runs = opened
  t.true(runs >= 4)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.is(opened, runs, 'no run after stop')
  // A check that stop() cut short is not recorded: it says nothing about the node.
  const recorded = reattestRows(ca).length
  t.true(recorded === runs || recorded === runs - 1, `${recorded} of ${runs} checks recorded`)
  t.like(ca.attestationStatus('node-1')!, { attested: false, lastVerdict: 'failed', lastReason: 'ERR_ATTEST_NOT_ENROLLED', failures: recorded })

  ca.setAttestationSettings({ mode: 'off' })
  t.deepEqual(await reattestor.runOnce(), [])
  t.throws(() => new Reattestor({ ca, nodes: [] }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => reattestor.start({ intervalMs: 1 }), { code: 'ERR_INVALID_ARG' })
  const failing = new Reattestor({ ca, identity, nodes: () => { throw new Error('inventory down') } })
  ca.setAttestationSettings({ mode: 'optional' })
  failing.start({ intervalMs: 100 })
  for (let i = 0; i < 50 && !ca.auditRecords(5).some((row) => row.action === 'reattest.run'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  await failing.stop()
  t.like(ca.auditRecords(20).find((row) => row.action === 'reattest.run'), { outcome: 'error', reason: 'ERR_INTERNAL' })
})
