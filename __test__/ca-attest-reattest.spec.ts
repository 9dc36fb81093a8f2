import test, { type ExecutionContext } from 'ava'
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
} from '../src/index.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

async function freshCa(t: ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-reattest-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Reattest Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  return ca
}

/** The gateway's identity: a device certificate of the site CA with a software key. */
function gatewayIdentity(ca: CaService) {
  const privateKey = generateP256Key()
  const { token } = ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const enrolled = ca.enroll(enrollRequestFor(token, buildCsr(privateKey, 'gw-1', 'hotel-1')), 'test')
  return { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromPkcs8(privateKey) }
}

/**
 * A node with a swtpm: enrolled with a genuine quote, and serving quote requests on a real
 * secure server whose answers the test can replace.
 */
async function attestedNode(t: ExecutionContext, ca: CaService, deviceId: string) {
  const tpm = Tpm.open((await startSwtpm(t)).tcti)
  const key = tpm.loadKey(await tpm.createSigningKey())
  const ak = await tpm.createAttestationKey()
  const genuine = async (request: QuoteRequest): Promise<BoundQuote> => {
    const quote = await tpm.quote(ak, request.nonce, request.pcrs)
    return { ...quote, akBinding: key.sign(akBindingMessage(quote.akPublicPem)) }
  }
  const { token } = ca.createToken({ deviceId, tenant: 'hotel-1', roles: ['pos-terminal'] })
  const issued = ca.issueNonce(nonceRequestFor(token, deviceId), 'test')
  const quote = await genuine({ nonce: Buffer.from(issued.nonce, 'hex'), pcrs: issued.pcrs })
  const csr = key.buildCsr(deviceId, 'hotel-1')
  const attestation = { nonce: Buffer.from(issued.nonce, 'hex'), quote }
  const enrolled = ca.enroll(enrollRequestFor(token, csr, { nodeId: deviceId, attestation }), 'test')
  const node = {
    tpm,
    key,
    enrolled,
    /** What the node answers quote requests with. */
    produce: genuine,
    server: undefined as SecureServer | undefined,
    port: 0,
    async listen() {
      const server = createSecureServer({ identity: { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: Signer.fromTpmKey(key) }, trustPem: ca.trustBundle() }, (link) => {
        link.on('error', () => {})
        serveQuotes(new Mux(link, { role: 'responder' }), (request) => node.produce(request))
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
