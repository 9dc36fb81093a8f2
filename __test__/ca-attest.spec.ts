import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import type { AuditRecord } from '../src/audit/index.js'
import { CaService } from '../src/ca/index.js'
import { CA_MIGRATIONS } from '../src/ca/schema.js'
import { TokenStore } from '../src/ca/tokens.js'
import { CA_API_IDENTITY, encodeNonceRequest, enrollRequestFor, nonceRequestByCertificate, nonceRequestFor } from '../src/protocol/enroll.js'
import { openDatabase } from '../src/storage/index.js'
import { akBindingMessage, buildCsr, generateP256Key, RevocationSet, SigningKey, Tpm, TrustStore, verifyPeer } from '../src/index.js'
import { caFetch, serveCa } from './helpers/ca-site.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')

async function freshCa(t: ExecutionContext, now?: () => number) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-ca-attest-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Attest Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca'), ...(now !== undefined && { now }) })
  t.teardown(() => ca.close())
  return { dir, ca }
}

/** The CA's enrollment API over TLS (tenant hotel-1); `caFetch` talks to it as a device would. */
async function serve(t: ExecutionContext, ca: CaService, rateLimit = { perSecond: 1000, burst: 1000 }) {
  return serveCa(t, ca, { rateLimit })
}

/** A request's proof of `token` over `csr` and `nodeId`, in wire form (the token itself never travels). */
function proofOf(token: string, csr: string, nodeId?: string): { token_id: string; token_proof: string } {
  const request = enrollRequestFor(token, csr, nodeId === undefined ? {} : { nodeId })
  return { token_id: request.tokenId, token_proof: request.tokenProof }
}

/** A nonce request of the holder of `token`, in wire form. */
function nonceBody(token: string, nodeId: string): { node_id: string; token_id: string; token_proof: string } {
  const request = nonceRequestFor(token, nodeId)
  return { node_id: nodeId, token_id: request.tokenId!, token_proof: request.tokenProof! }
}

async function post(url: string, body: unknown, type = 'application/json') {
  const response = await caFetch(url, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

/**
 * A node whose certificate key and attestation key live in a fresh swtpm with an EK certificate
 * of a maker the CA may trust (`ekCasPem`): its nonce requests carry `endorsement`, and its
 * attestations answer the credential challenge that came with the nonce and certify the CSR key.
 */
async function tpmNode(t: ExecutionContext, deviceId: string) {
  const swtpm = await startSwtpm(t, { ek: true })
  const tpm = Tpm.open(swtpm.tcti)
  const keyBlob = await tpm.createSigningKey()
  const key = tpm.loadKey(keyBlob)
  const ak = await tpm.createAttestationKey()
  const challenges = new Map<string, { credential_blob: string; encrypted_secret: string }>()
  return {
    tpm,
    ekCasPem: swtpm.ekCasPem!,
    csr: key.buildCsr(deviceId, 'hotel-1'),
    endorsement: { ek_certificate: (await tpm.ekCertificate()).toString('base64'), ak_public: tpm.publicArea(ak).toString('base64') },
    /** Keeps the credential challenge of a nonce answer, for {@link attestation}. */
    remember<T extends { nonce: string }>(answer: T): T {
      const challenge = answer as Partial<{ credential_blob: string; encrypted_secret: string }>
      if (challenge.credential_blob !== undefined && challenge.encrypted_secret !== undefined) {
        challenges.set(answer.nonce, { credential_blob: challenge.credential_blob, encrypted_secret: challenge.encrypted_secret })
      }
      return answer
    },
    /** The `attestation` member of an enrollment: a quote over `quotedNonce`, presented with `nonce`. */
    async attestation(nonce: string, pcrs: number[], quotedNonce = nonce, sign: (message: Buffer) => Buffer = (m) => key.sign(m)) {
      const quote = await tpm.quote(ak, Buffer.from(quotedNonce, 'hex'), pcrs)
      const challenge = challenges.get(nonce)
      const secret = challenge === undefined ? undefined : await tpm.activateCredential(ak, Buffer.from(challenge.credential_blob, 'base64'), Buffer.from(challenge.encrypted_secret, 'base64'))
      const certification = await tpm.certify(ak, keyBlob, Buffer.from(nonce, 'hex'))
      return {
        type: 'tpm2-quote',
        nonce,
        ak_public_pem: quote.akPublicPem,
        ak_binding: sign(akBindingMessage(quote.akPublicPem)).toString('base64'),
        attest: quote.attest.toString('base64'),
        signature: quote.signature.toString('base64'),
        pcr_values: quote.pcrValues.toString('base64'),
        key_public: tpm.publicArea(keyBlob).toString('base64'),
        certify_attest: certification.attest.toString('base64'),
        certify_signature: certification.signature.toString('base64'),
        ...(secret !== undefined && { activated_secret: secret.toString('base64') }),
      }
    },
  }
}

function auditRows(ca: CaService, action: string): AuditRecord[] {
  return ca.auditRecords(500).filter((row) => row.action === action).reverse()
}

tpmTestSerial('an enrollment that requires attestation succeeds with a genuine quote and refuses a stale nonce or a wrong PCR', async (t) => {
  let now = Date.now()
  const { ca } = await freshCa(t, () => now)
  const url = await serve(t, ca)
  const node = await tpmNode(t, 'node-1')
  now = Date.now() // the CA's clock after the TPM's EK certificate was made
  const pcrs = Object.fromEntries(node.tpm.readPcrs([0, 7]).map((p) => [p.index, p.value]))
  ca.setAttestationSettings({ mode: 'required', pcrPolicy: pcrs, ekCasPem: node.ekCasPem })
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const { token: node2Token } = ca.createToken({ deviceId: 'node-2', tenant: 'hotel-1' })
  const nonceFor = async (nodeId: string) =>
    node.remember((await post(`${url}/v1/attest/nonce`, { ...nonceBody(nodeId === 'node-2' ? node2Token : token, nodeId), ...node.endorsement })).json as { nonce: string; expires_at: number; pcrs: number[] })
  const enroll = (attestation: unknown, withToken = token) => post(`${url}/v1/enroll`, { ...proofOf(withToken, node.csr, 'node-1'), csr: node.csr, node_id: 'node-1', attestation })

  t.like(await enroll(undefined), { status: 403, json: { code: 'ERR_ATTEST_REQUIRED' } })

  const issued = await nonceFor('node-1')
  t.regex(issued.nonce, /^[0-9a-f]{64}$/)
  t.is(issued.expires_at, now + 300_000)
  t.deepEqual(issued.pcrs, [0, 1, 2, 3, 4, 5, 6, 7])

  // Refused: a quote over another nonce (which burns the nonce presented), a nonce of another
  // node, an AK bound by another key, a PCR the policy does not expect, an expired nonce.
  const other = await nonceFor('node-1')
  t.like(await enroll(await node.attestation(other.nonce, issued.pcrs, randomBytes(32).toString('hex'))), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  t.like(await enroll(await node.attestation(other.nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } }, 'a refused attempt burned its nonce')
  const foreign = await nonceFor('node-2')
  t.like(await enroll(await node.attestation(foreign.nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  const stranger = SigningKey.fromPkcs8('ecdsa-p256-sha256', generateP256Key())
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs, undefined, (m) => stranger.sign(m))), { status: 403, json: { code: 'ERR_ATTEST_BINDING' } })
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, [7])), { status: 403, json: { code: 'ERR_ATTEST_PCR_MISMATCH' } }, 'PCR 0 of the policy is not quoted')
  ca.setAttestationSettings({ pcrPolicy: { ...pcrs, 7: 'ab'.repeat(32) } })
  t.like(await enroll(await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs)), { status: 403, json: { code: 'ERR_ATTEST_PCR_MISMATCH' } })
  ca.setAttestationSettings({ pcrPolicy: pcrs })
  const expiring = await nonceFor('node-1')
  const late = await node.attestation(expiring.nonce, issued.pcrs)
  now += 301_000
  t.like(await enroll(late), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  const forged = await node.attestation((await nonceFor('node-1')).nonce, issued.pcrs)
  const attest = Buffer.from(forged.attest, 'base64')
  attest[attest.length - 1]! ^= 1
  t.like(await enroll({ ...forged, attest: attest.toString('base64') }), { status: 403, json: { code: 'ERR_ATTEST_SIGNATURE' } })
  t.is(ca.attestationStatus('node-1'), undefined, 'no refusal enrolled anything')

  // The genuine quote over a fresh nonce: enrolled, and the AK and PCRs are on record.
  const fresh = await nonceFor('node-1')
  const genuine = await node.attestation(fresh.nonce, fresh.pcrs)
  const accepted = await enroll(genuine)
  t.is(accepted.status, 200)
  const peer = verifyPeer(`${accepted.json!.certificate as string}${accepted.json!.ca_cert as string}`, TrustStore.fromPem(ca.trustBundle()), new RevocationSet())
  const status = ca.attestationStatus('node-1', 'hotel-1')!
  t.like(status, { attested: true, serial: peer.serial, akPublicPem: genuine.ak_public_pem, lastAttestedAtMs: now, demotedAtMs: null })
  t.deepEqual(Object.keys(status.pcrs), ['0', '1', '2', '3', '4', '5', '6', '7'])
  t.is(status.pcrs[7], pcrs[7])

  // The nonce was consumed with the enrollment: a second enrollment cannot reuse it.
  const { token: again } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  t.like(await enroll(genuine, again), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })

  // Every outcome is audited with its reason code.
  const enrolls = auditRows(ca, 'enroll')
  t.deepEqual(
    enrolls.map((row) => row.reason),
    ['ERR_ATTEST_REQUIRED', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_BINDING', 'ERR_ATTEST_PCR_MISMATCH', 'ERR_ATTEST_PCR_MISMATCH', 'ERR_ATTEST_NONCE', 'ERR_ATTEST_SIGNATURE', 'ok', 'ERR_ATTEST_NONCE'],
  )
  t.deepEqual(enrolls.map((row) => row.detail?.nonce ?? null), [null, 'consumed', 'used', 'unknown', 'consumed', 'consumed', 'consumed', 'expired', 'consumed', 'consumed', 'used'])
  t.like(enrolls[9], { outcome: 'allow', detail: { attestation: 'verified', attestation_mode: 'required', serial: peer.serial } })
  t.true(auditRows(ca, 'attest.nonce').every((row) => row.outcome === 'allow'))
  t.true(ca.verifyAudit() > 20)
})

tpmTestSerial('a quote that leaves out a PCR the CA asked for is refused, audited, and shrinks no baseline', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const node = await tpmNode(t, 'node-1')
  // The policy fixes PCR 7 only; the CA still asks for the boot PCRs 0 to 7, whose values become the baseline.
  ca.setAttestationSettings({ mode: 'required', pcrPolicy: { 7: node.tpm.readPcrs([7])[0]!.value }, ekCasPem: node.ekCasPem })
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const nonceFor = async () => node.remember((await post(`${url}/v1/attest/nonce`, { ...nonceBody(token, 'node-1'), ...node.endorsement })).json as { nonce: string; pcrs: number[] })
  const enroll = (attestation: unknown) => post(`${url}/v1/enroll`, { ...proofOf(token, node.csr, 'node-1'), csr: node.csr, node_id: 'node-1', attestation })

  // The attack: a quote over PCR 7 alone, which meets the policy, when 0 to 7 were asked for.
  const asked = await nonceFor()
  t.deepEqual(asked.pcrs, [0, 1, 2, 3, 4, 5, 6, 7])
  t.like(await enroll(await node.attestation(asked.nonce, [7])), { status: 403, json: { code: 'ERR_ATTEST_PCR_SELECTION' } })
  t.like(await enroll(await node.attestation((await nonceFor()).nonce, [0, 1, 2, 3, 4, 5, 7])), { status: 403, json: { code: 'ERR_ATTEST_PCR_SELECTION' } }, 'one PCR left out is enough')
  t.is(ca.attestationStatus('node-1'), undefined)

  const fresh = await nonceFor()
  t.is((await enroll(await node.attestation(fresh.nonce, fresh.pcrs))).status, 200)
  t.deepEqual(Object.keys(ca.attestationStatus('node-1')!.pcrs), ['0', '1', '2', '3', '4', '5', '6', '7'])
  t.deepEqual(
    auditRows(ca, 'enroll').map((row) => [row.reason, row.detail?.attestation]),
    [
      ['ERR_ATTEST_PCR_SELECTION', 'refused'],
      ['ERR_ATTEST_PCR_SELECTION', 'refused'],
      ['ok', 'verified'],
    ],
  )
})

/** The `attestation` of an enrollment, in wire form, around a quote forged with the software `ak`, bound by `deviceKey`. */
function forgedAttestation(issued: { nonce: string; pcrs: number[] }, ak: KeyObject, deviceKey: Buffer) {
  const forged = forgeQuote(Buffer.from(issued.nonce, 'hex'), issued.pcrs, ak)
  return {
    type: 'tpm2-quote',
    nonce: issued.nonce,
    ak_public_pem: forged.akPublicPem,
    ak_binding: SigningKey.fromPkcs8('ecdsa-p256-sha256', deviceKey).sign(akBindingMessage(forged.akPublicPem)).toString('base64'),
    attest: forged.attest.toString('base64'),
    signature: forged.signature.toString('base64'),
    pcr_values: forged.pcrValues.toString('base64'),
  }
}

/**
 * The quote structures a machine without a TPM builds in JavaScript: a `TPMS_ATTEST` of type
 * quote over `nonce` and the all-zero SHA-256 PCRs `pcrs`, its `TPMT_SIGNATURE` by a software
 * P-256 "AK", and the tpm2-tools PCR file.
 */
function forgeQuote(nonce: Buffer, pcrs: number[], ak: KeyObject) {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
  const tpm2b = (bytes: Buffer) => Buffer.concat([u16(bytes.length), bytes])
  const bitmap = Buffer.alloc(3)
  for (const pcr of pcrs) bitmap[pcr >> 3]! |= 1 << (pcr & 7)
  const digest = createHash('sha256').update(Buffer.alloc(32 * pcrs.length)).digest()
  const attest = Buffer.concat([
    Buffer.from('ff544347', 'hex'), // TPM_GENERATED_VALUE
    u16(0x8018), // TPM_ST_ATTEST_QUOTE
    tpm2b(Buffer.concat([u16(0x000b), randomBytes(32)])), // qualifiedSigner
    tpm2b(nonce),
    Buffer.alloc(17, 0), // clockInfo
    Buffer.alloc(8, 0), // firmwareVersion
    Buffer.from([0, 0, 0, 1]), u16(0x000b), Buffer.from([3]), bitmap, // one SHA-256 selection
    tpm2b(digest),
  ])
  const raw = sign('sha256', attest, { key: ak, dsaEncoding: 'ieee-p1363' })
  const signature = Buffer.concat([u16(0x0018), u16(0x000b), tpm2b(raw.subarray(0, 32)), tpm2b(raw.subarray(32))])
  // tpm2-tools' PCR file: the selection (little-endian, padded), one TPML_DIGEST of the values.
  const pcrValues = Buffer.alloc(136 + 532)
  pcrValues.writeUInt32LE(1, 0)
  pcrValues.writeUInt16LE(0x000b, 4)
  pcrValues[6] = 3
  bitmap.copy(pcrValues, 7)
  pcrValues.writeUInt32LE(1, 132)
  pcrValues.writeUInt32LE(pcrs.length, 136)
  for (let i = 0; i < pcrs.length; i++) pcrValues.writeUInt16LE(32, 140 + i * 66)
  return { attest, signature, pcrValues, akPublicPem: createPublicKey(ak).export({ type: 'spki', format: 'pem' }) as string }
}

/** A `TPMT_PUBLIC` claiming that the software P-256 key `ak` is a restricted attestation key fixed to a TPM. */
function forgedAkArea(ak: KeyObject): Buffer {
  const jwk = createPublicKey(ak).export({ format: 'jwk' })
  const coordinate = (c: string | undefined) => Buffer.concat([Buffer.from([0, 32]), Buffer.from(c!, 'base64url')])
  // ECC, SHA-256 name; fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|restricted|sign; no policy;
  // no symmetric; ECDSA/SHA-256; P-256; no KDF; the point.
  return Buffer.concat([Buffer.from('0023000b00050072000000100018000b00030010', 'hex'), coordinate(jwk.x), coordinate(jwk.y)])
}

tpmTestSerial('a machine without a TPM that forges the quote in JavaScript with a software key is refused in required mode', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  // The CA trusts the EK CA of a TPM maker (here: the local CA of a manufactured swtpm).
  const genuine = await startSwtpm(t, { ek: true })
  ca.setAttestationSettings({ mode: 'required', ekCasPem: genuine.ekCasPem! })
  const deviceKey = generateP256Key()
  const csr = buildCsr(deviceKey, 'forger-1', 'hotel-1')
  const { token } = ca.createToken({ deviceId: 'forger-1', tenant: 'hotel-1' })
  const { privateKey: softwareAk } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const nonceFor = async (body: Record<string, unknown> = {}) => (await post(`${url}/v1/attest/nonce`, { ...nonceBody(token, 'forger-1'), ...body })).json as { nonce: string; pcrs: number[]; credential_blob?: string }
  const attempt = async (issued: { nonce: string; pcrs: number[] }, extra: Record<string, unknown> = {}) => {
    const attestation = { ...forgedAttestation(issued, softwareAk, deviceKey), ...extra }
    return post(`${url}/v1/enroll`, { ...proofOf(token, csr, 'forger-1'), csr, node_id: 'forger-1', attestation })
  }

  // The attack as it was: no EK, a quote built in JavaScript. It verifies as a quote; it answers no credential.
  t.like(await attempt(await nonceFor()), { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })
  // With a guessed answer to a challenge it never got.
  t.like(await attempt(await nonceFor(), { activated_secret: randomBytes(32).toString('base64') }), { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })
  // An EK certificate of no trusted maker (the CA's own site certificate): no nonce at all.
  const site = ca.trustBundle().match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]
  const siteDer = Buffer.from(site.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
  t.like(await post(`${url}/v1/attest/nonce`, { ...nonceBody(token, 'forger-1'), ek_certificate: siteDer.toString('base64'), ak_public: forgedAkArea(softwareAk).toString('base64') }), { status: 403, json: { code: 'ERR_ATTEST_EK_CERTIFICATE' } })
  // A genuine TPM's EK certificate (public) with the software key dressed as an AK: the secret
  // is encrypted to that TPM's EK, so the forger can only guess it.
  const ekCertificate = await Tpm.open(genuine.tcti).ekCertificate()
  const challenged = await nonceFor({ ek_certificate: ekCertificate.toString('base64'), ak_public: forgedAkArea(softwareAk).toString('base64') })
  t.truthy(challenged.credential_blob)
  t.like(await attempt(challenged, { activated_secret: randomBytes(32).toString('base64') }), { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })

  t.is(ca.attestationStatus('forger-1'), undefined, 'no software key is recorded as attested')
  t.is(ca.listCertificates().filter((record) => record.deviceId !== CA_API_IDENTITY.deviceId).length, 0, 'none but the CA API certificate')
  t.deepEqual(auditRows(ca, 'enroll').map((row) => row.reason), ['ERR_ATTEST_CREDENTIAL', 'ERR_ATTEST_CREDENTIAL', 'ERR_ATTEST_CREDENTIAL'])
  t.like(auditRows(ca, 'attest.nonce').find((row) => row.outcome === 'deny'), { reason: 'ERR_ATTEST_EK_CERTIFICATE' })
})

tpmTestSerial('a TPM whose EK chains to a trusted maker proves its AK by credential activation and certifies the CSR key with it; another AK, an uncertified key, or a TPM without an EK certificate, is refused', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const swtpm = await startSwtpm(t, { ek: true })
  ca.setAttestationSettings({ mode: 'required', ekCasPem: swtpm.ekCasPem! })
  const tpm = Tpm.open(swtpm.tcti)
  const keyBlob = await tpm.createSigningKey()
  const key = tpm.loadKey(keyBlob)
  const ak = await tpm.createAttestationKey()
  const ekCertificate = (await tpm.ekCertificate()).toString('base64')
  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const csr = key.buildCsr('node-1', 'hotel-1')
  const challenge = async (akBlob: Buffer) =>
    (await post(`${url}/v1/attest/nonce`, { ...nonceBody(token, 'node-1'), ek_certificate: ekCertificate, ak_public: tpm.publicArea(akBlob).toString('base64') })).json as {
      nonce: string
      pcrs: number[]
      credential_blob: string
      encrypted_secret: string
    }
  const evidence = async (issued: Awaited<ReturnType<typeof challenge>>, challenged: Buffer, quoting: Buffer, certified: Buffer | null = keyBlob) => {
    const secret = await tpm.activateCredential(challenged, Buffer.from(issued.credential_blob, 'base64'), Buffer.from(issued.encrypted_secret, 'base64'))
    const quote = await tpm.quote(quoting, Buffer.from(issued.nonce, 'hex'), issued.pcrs)
    const certification = certified === null ? undefined : await tpm.certify(quoting, certified, Buffer.from(issued.nonce, 'hex'))
    return {
      ...(certification !== undefined && {
        key_public: tpm.publicArea(certified as Buffer).toString('base64'),
        certify_attest: certification.attest.toString('base64'),
        certify_signature: certification.signature.toString('base64'),
      }),
      type: 'tpm2-quote',
      nonce: issued.nonce,
      ak_public_pem: quote.akPublicPem,
      ak_binding: key.sign(akBindingMessage(quote.akPublicPem)).toString('base64'),
      attest: quote.attest.toString('base64'),
      signature: quote.signature.toString('base64'),
      pcr_values: quote.pcrValues.toString('base64'),
      activated_secret: secret.toString('base64'),
    }
  }
  const enroll = (attestation: unknown) => post(`${url}/v1/enroll`, { ...proofOf(token, csr, 'node-1'), csr, node_id: 'node-1', attestation })

  // The device's signing key is no AK: not challenged.
  t.like(await post(`${url}/v1/attest/nonce`, { ...nonceBody(token, 'node-1'), ek_certificate: ekCertificate, ak_public: tpm.publicArea(await tpm.createSigningKey()).toString('base64') }), {
    status: 403,
    json: { code: 'ERR_ATTEST_KEY_ATTRIBUTES' },
  })
  // The challenge answered for one AK, the quote made by another AK of the same TPM.
  const other = await tpm.createAttestationKey()
  t.like(await enroll(await evidence(await challenge(ak), ak, other)), { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })

  // The CSR's key must be the one the AK certifies (TPM2_Certify): none, or another key of the TPM, is refused.
  t.like(await enroll(await evidence(await challenge(ak), ak, ak, null)), { status: 403, json: { code: 'ERR_ATTEST_CERTIFY' } })
  t.like(await enroll(await evidence(await challenge(ak), ak, ak, await tpm.createSigningKey())), { status: 403, json: { code: 'ERR_ATTEST_KEY_ATTRIBUTES' } })

  const accepted = await enroll(await evidence(await challenge(ak), ak, ak))
  t.is(accepted.status, 200)
  t.like(ca.attestationStatus('node-1'), { attested: true })
  t.like(auditRows(ca, 'enroll').at(-1), { outcome: 'allow', detail: { credential: 'activated', key: 'certified', attestation: 'verified' } })
  t.like(auditRows(ca, 'attest.nonce').at(-1), { outcome: 'allow', detail: { challenge: 'issued' } })

  // A TPM with no EK certificate cannot be challenged, and required mode then refuses it.
  const bare = Tpm.open((await startSwtpm(t)).tcti)
  await t.throwsAsync(bare.ekCertificate(), { code: 'ERR_TPM_COMMAND' })
  const bareKey = bare.loadKey(await bare.createSigningKey())
  const bareAk = await bare.createAttestationKey()
  const { token: bareToken } = ca.createToken({ deviceId: 'node-2', tenant: 'hotel-1' })
  const issued = (await post(`${url}/v1/attest/nonce`, nonceBody(bareToken, 'node-2'))).json as { nonce: string; pcrs: number[] }
  const quote = await bare.quote(bareAk, Buffer.from(issued.nonce, 'hex'), issued.pcrs)
  const bareCsr = bareKey.buildCsr('node-2', 'hotel-1')
  const refused = await post(`${url}/v1/enroll`, {
    ...proofOf(bareToken, bareCsr, 'node-2'),
    csr: bareCsr,
    node_id: 'node-2',
    attestation: {
      type: 'tpm2-quote',
      nonce: issued.nonce,
      ak_public_pem: quote.akPublicPem,
      ak_binding: bareKey.sign(akBindingMessage(quote.akPublicPem)).toString('base64'),
      attest: quote.attest.toString('base64'),
      signature: quote.signature.toString('base64'),
      pcr_values: quote.pcrValues.toString('base64'),
    },
  })
  t.like(refused, { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })
  t.deepEqual(await swtpm.transientHandles(), [])
})

test('optional mode enrolls without attestation and records the device as not attested; off ignores attestations', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  t.like(ca.attestationSettings(), { mode: 'optional', onDrift: 'revoke', nonceTtlSeconds: 300, pcrPolicy: {} })
  const enroll = (deviceId: string, attestation?: unknown) => {
    const csr = buildCsr(generateP256Key(), deviceId, 'hotel-1')
    return post(`${url}/v1/enroll`, { ...proofOf(ca.createToken({ deviceId, tenant: 'hotel-1' }).token, csr), csr, attestation })
  }
  t.is((await enroll('plain')).status, 200)
  t.like(ca.attestationStatus('plain'), { attested: false, akPublicPem: null, lastAttestedAtMs: null, pcrs: {} })

  // Present means verified: an attestation that does not hold is refused, not ignored.
  const { nonce } = ca.issueNonce(nonceRequestFor(ca.createToken({ deviceId: 'faker', tenant: 'hotel-1' }).token, 'faker'), 'test')
  const junk = { type: 'tpm2-quote', nonce, ak_public_pem: 'not a key', ak_binding: 'AAAA', attest: 'AAAA', signature: 'AAAA', pcr_values: 'AAAA' }
  const refused = await enroll('faker', junk)
  t.true(refused.status === 400 || refused.status === 403)
  t.regex(String(refused.json!.code), /^ERR_ATTEST_/)
  t.is(ca.attestationStatus('faker'), undefined)

  ca.setAttestationSettings({ mode: 'off' })
  t.is((await enroll('faker', junk)).status, 200)
  t.like(ca.attestationStatus('faker'), { attested: false })
  t.deepEqual(auditRows(ca, 'enroll').map((row) => [row.reason, row.detail?.attestation]), [['ok', 'none'], [refused.json!.code, 'refused'], ['ok', 'ignored']])
})

test('the nonce endpoint and attested enrollments refuse malformed input with typed, audited errors', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  const nonceUrl = `${url}/v1/attest/nonce`
  t.like(await post(nonceUrl, '{"node_id":'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, '["node-1"]'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, { node_id: 'node-1' }, 'text/plain'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, {}), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(nonceUrl, { node_id: 42 }), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  const someProof = { token_id: 'ab'.repeat(32), token_proof: 'ab'.repeat(64) }
  t.like(await post(nonceUrl, { node_id: '../etc/passwd', ...someProof }), { status: 400, json: { code: 'ERR_IDENTITY' } })
  t.like(await post(nonceUrl, { node_id: 'node-1', ...someProof, padding: 'x'.repeat(4096) }), { status: 413, json: { code: 'ERR_PAYLOAD_TOO_LARGE' } })
  t.like(await caFetch(nonceUrl), { status: 405 })
  const denied = ca.auditRecords(20).filter((row) => row.outcome === 'deny').map((row) => row.reason)
  t.true(denied.includes('ERR_PAYLOAD_TOO_LARGE') && denied.includes('ERR_METHOD_NOT_ALLOWED') && denied.filter((r) => r === 'ERR_BAD_REQUEST').length >= 5, 'refused bodies are audited')

  const { token } = ca.createToken({ deviceId: 'node-1', tenant: 'hotel-1' })
  const csr = buildCsr(generateP256Key(), 'node-1', 'hotel-1')
  const { nonce } = ca.issueNonce(nonceRequestFor(token, 'node-1'), 'test')
  const valid = { type: 'tpm2-quote', nonce, ak_public_pem: '-----BEGIN PUBLIC KEY-----', ak_binding: 'AAAA', attest: 'AAAA', signature: 'AAAA', pcr_values: 'AAAA' }
  const enroll = (attestation: unknown) => post(`${url}/v1/enroll`, { ...proofOf(token, csr), csr, attestation })
  // A nonce that is not 16 to 64 bytes of hex is a malformed request (the core's codec), not an unknown nonce.
  for (const attestation of ['tpm2-quote', [valid], { ...valid, type: 'sgx' }, { ...valid, nonce: 7 }, { ...valid, nonce: 'zz' }, { ...valid, attest: 'not base64!' }, { ...valid, signature: '' }, { ...valid, pcr_values: 'A'.repeat(20_000) }, { ...valid, extra: 1 }]) {
    t.like(await enroll(attestation), { status: 400, json: { code: 'ERR_BAD_REQUEST' } }, JSON.stringify(attestation).slice(0, 80))
  }
  t.like(await enroll({ ...valid, nonce: randomBytes(32).toString('hex') }), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } })
  t.like(await post(`${url}/v1/enroll`, { ...proofOf(token, csr), csr, attestation: valid, padding: 'x'.repeat(70_000) }), { status: 413 })
  t.like(await enroll(valid), { status: 400, json: { code: 'ERR_ATTEST_MALFORMED' } }, 'well-typed garbage is malformed')
  t.like(await enroll(valid), { status: 403, json: { code: 'ERR_ATTEST_NONCE' } }, 'and it burned its nonce')
  t.is(ca.listCertificates().filter((record) => record.deviceId !== CA_API_IDENTITY.deviceId).length, 0, 'none but the CA API certificate')
})

test('nonces are single use, bounded per node, rate limited, and their lifetime is a setting', async (t) => {
  // The CA's clock, moved by hand; it starts at the real time so that the CA API's TLS certificate can be issued.
  let now = Date.now()
  const { dir, ca } = await freshCa(t, () => now)
  const holder = (nodeId: string) => nonceRequestFor(ca.createToken({ deviceId: nodeId, tenant: 'hotel-1' }).token, nodeId)
  const [node1, node2] = [holder('node-1'), holder('node-2')]
  const first = ca.issueNonce(node1, 'test')
  for (let i = 0; i < 20; i++) ca.issueNonce(node1, 'test')
  const db = openDatabase(join(dir, 'ca', 'registry.db'), { migrations: CA_MIGRATIONS })
  t.teardown(() => db.close())
  t.is((db.prepare("SELECT count(*) AS n FROM attest_nonces WHERE node_id = 'node-1'").get() as { n: number }).n, 16)
  t.is(ca.nonces.consume(first.nonce, 'node-1'), 'unknown', 'the oldest gave way')
  ca.setAttestationSettings({ nonceTtlSeconds: 30 })
  const short = ca.issueNonce(node2, 'test')
  t.is(short.expiresAt, now + 30_000)
  t.is(ca.nonces.consume(short.nonce, 'node-1'), 'unknown', 'bound to its node')
  now += 30_000
  t.is(ca.nonces.consume(short.nonce, 'node-2'), 'expired')
  const once = ca.issueNonce(node2, 'test')
  t.is(ca.nonces.consume(once.nonce.toUpperCase(), 'node-2'), 'consumed')
  t.is(ca.nonces.consume(once.nonce, 'node-2'), 'used')

  const url = await serve(t, ca, { perSecond: 0.001, burst: 2 })
  const statuses = []
  const node3 = nonceBody(ca.createToken({ deviceId: 'node-3', tenant: 'hotel-1' }).token, 'node-3')
  for (let i = 0; i < 4; i++) statuses.push((await post(`${url}/v1/attest/nonce`, node3)).status)
  t.deepEqual(statuses, [200, 200, 429, 429])
})

test('attestation settings: checked, audited, and managed from the CLI', async (t) => {
  const { dir, ca } = await freshCa(t)
  const policy = { 0: 'AB'.repeat(32), 7: '01'.repeat(32) }
  t.deepEqual(ca.setAttestationSettings({ mode: 'required', pcrPolicy: policy, onDrift: 'demote' }, 'admin'), {
    mode: 'required',
    pcrPolicy: { 0: 'ab'.repeat(32), 7: '01'.repeat(32) },
    onDrift: 'demote',
    nonceTtlSeconds: 300,
    maxFailures: 3,
    maxSilenceSeconds: 86_400,
    ekCasPem: '',
  })
  for (const bad of [{ mode: 'sometimes' }, { onDrift: 'ignore' }, { pcrPolicy: { 24: '00'.repeat(32) } }, { pcrPolicy: { 1: 'abc' } }, { pcrPolicy: [] }, { nonceTtlSeconds: 5 }, { nonceTtlSeconds: 1.5 }, { maxFailures: 0 }, { maxSilenceSeconds: 59 }]) {
    t.throws(() => ca.setAttestationSettings(bad), { code: 'ERR_INVALID_ARG' }, JSON.stringify(bad))
  }
  t.like(ca.attestationSettings(), { mode: 'required', onDrift: 'demote' }, 'a refused change changes nothing')
  const rows = auditRows(ca, 'attest.settings')
  t.like(rows[0], { actor: 'admin', outcome: 'allow', detail: { attest_mode: 'required', attest_on_drift: 'demote' } })
  t.is(rows.filter((row) => row.outcome === 'deny' && row.reason === 'ERR_INVALID_ARG').length, 9)
  ca.close()

  const caDir = join(dir, 'ca')
  const token = (await run('node', [CLI, 'ca', 'token', '--dir', caDir, '--device', 'kiosk-1', '--tenant', 'hotel-1', '--roles', 'pos-terminal,door'])).stdout.trim()
  const reopened = await CaService.open({ dir: caDir })
  t.like(reopened.tokens.check(enrollRequestFor(token, buildCsr(generateP256Key(), 'kiosk-1', 'hotel-1'))), { roles: ['pos-terminal', 'door'] })
  reopened.close()
  const shown = JSON.parse((await run('node', [CLI, 'ca', 'attestation', '--dir', caDir])).stdout)
  t.like(shown, { mode: 'required', onDrift: 'demote' })
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({ 16: '00'.repeat(32) }))
  const changed = JSON.parse((await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--mode', 'optional', '--pcr-policy', join(dir, 'policy.json'), '--on-drift', 'revoke', '--nonce-ttl', '60', '--max-failures', '5', '--max-silence', '3600'])).stdout)
  t.deepEqual(changed, { mode: 'optional', pcrPolicy: { 16: '00'.repeat(32) }, onDrift: 'revoke', nonceTtlSeconds: 60, maxFailures: 5, maxSilenceSeconds: 3600, ekCasPem: '' })
  writeFileSync(join(dir, 'bad.json'), '{"0": "nope"}')
  const refused = await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--pcr-policy', join(dir, 'bad.json')]).catch((e: { code: number; stderr: string }) => e)
  t.is((refused as { code: number }).code, 1)
  t.like(JSON.parse((refused as { stderr: string }).stderr), { code: 'ERR_INVALID_ARG' })
  const missing = await run('node', [CLI, 'ca', 'attestation', '--dir', caDir, '--pcr-policy', join(dir, 'nothing.json')]).catch((e: { code: number; stderr: string }) => e)
  t.like(JSON.parse((missing as { stderr: string }).stderr), { code: 'ERR_INVALID_ARG' })
})

test('a registry of before attestation migrates: its tokens get no roles, and (no root pin, no proof key) can no longer enroll', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-migrate-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'registry.db')
  const old = openDatabase(file, { migrations: CA_MIGRATIONS.slice(0, 1) })
  const token = `ztm1.${randomBytes(32).toString('base64url')}`
  old.prepare('INSERT INTO tokens (hash, device_id, tenant, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(createHash('sha256').update(token).digest('hex'), 'old-1', 'hotel-1', Date.now(), Date.now() + 60_000)
  old.close()
  const db = openDatabase(file, { migrations: CA_MIGRATIONS })
  t.teardown(() => db.close())
  t.is(db.pragma('user_version', { simple: true }), CA_MIGRATIONS.length)
  t.like(db.prepare('SELECT device_id, tenant, roles, proof_key FROM tokens').get(), { device_id: 'old-1', tenant: 'hotel-1', roles: '[]', proof_key: null })
  // A token of the first format would have to travel to be checked, and pins no root: refused.
  const tokenId = createHash('sha256').update(token).digest('hex')
  t.throws(() => new TokenStore(db).check({ tokenId, tokenProof: '00'.repeat(64), csr: 'csr' }), { code: 'ERR_TOKEN_INVALID' })
  t.deepEqual(db.prepare('SELECT * FROM attestations').all(), [])
})

test('an enrolled device asks for a rotation nonce with its certificate key; a revoked, foreign, stale or forged certificate request is refused and audited', async (t) => {
  const now = Date.now()
  const { ca } = await freshCa(t, () => now)
  const url = await serve(t, ca)
  const device = (deviceId: string) => {
    const pkcs8 = generateP256Key()
    const enrolled = ca.enroll(enrollRequestFor(ca.createToken({ deviceId, tenant: 'hotel-1' }).token, buildCsr(pkcs8, deviceId, 'hotel-1')), 'test')
    const key = SigningKey.fromPkcs8('ecdsa-p256-sha256', pkcs8)
    return { certificate: enrolled.certificate, serial: enrolled.serial, sign: (message: Buffer) => key.sign(message) }
  }
  const node = device('node-1')
  const other = device('node-2')
  const codeOf = (run: () => unknown) => {
    try {
      run()
      return 'issued'
    } catch (error) {
      return (error as { code?: string }).code
    }
  }

  // The genuine request, over HTTP: its certificate names the node, its key signed now.
  const answer = await post(`${url}/v1/attest/nonce`, encodeNonceRequest(nonceRequestByCertificate(node.certificate, 'node-1', node.sign, now)).toString())
  t.is(answer.status, 200)
  t.like(auditRows(ca, 'attest.nonce').at(-1), { outcome: 'allow', detail: { auth: 'certificate', device: 'node-1', serial: node.serial } })

  // The attacks: another device's certificate (well signed) for node-1's nonces; node-1's
  // certificate signed by another key; a signature of long ago; a certificate since revoked.
  t.is(codeOf(() => ca.issueNonce(nonceRequestByCertificate(other.certificate, 'node-1', other.sign, now), 'attacker')), 'ERR_FORBIDDEN')
  t.is(codeOf(() => ca.issueNonce(nonceRequestByCertificate(node.certificate, 'node-1', other.sign, now), 'attacker')), 'ERR_UNAUTHENTICATED')
  t.is(codeOf(() => ca.issueNonce(nonceRequestByCertificate(node.certificate, 'node-1', node.sign, now - 3_600_000), 'attacker')), 'ERR_UNAUTHENTICATED')
  ca.revoke({ serial: node.serial }, 'keyCompromise')
  t.is(codeOf(() => ca.issueNonce(nonceRequestByCertificate(node.certificate, 'node-1', node.sign, now), 'attacker')), 'ERR_CERT_REVOKED')
  const revoked = await post(`${url}/v1/attest/nonce`, encodeNonceRequest(nonceRequestByCertificate(node.certificate, 'node-1', node.sign, now)).toString())
  t.like(revoked, { json: { code: 'ERR_CERT_REVOKED' } })
  t.true(revoked.status >= 400)
  t.deepEqual(
    auditRows(ca, 'attest.nonce')
      .filter((row) => row.outcome === 'deny')
      .map((row) => row.reason),
    ['ERR_FORBIDDEN', 'ERR_UNAUTHENTICATED', 'ERR_UNAUTHENTICATED', 'ERR_CERT_REVOKED', 'ERR_CERT_REVOKED'],
  )
})

test('required mode without trusted EK CAs fails closed: a quote forged in software, which verifies as a quote, is refused and audited', async (t) => {
  const { ca } = await freshCa(t)
  const url = await serve(t, ca)
  ca.setAttestationSettings({ mode: 'required' }) // and no --ek-cas: no challenge can be issued
  const deviceKey = generateP256Key()
  const csr = buildCsr(deviceKey, 'forger-2', 'hotel-1')
  const { token } = ca.createToken({ deviceId: 'forger-2', tenant: 'hotel-1' })
  const { privateKey: softwareAk } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const issued = (await post(`${url}/v1/attest/nonce`, nonceBody(token, 'forger-2'))).json as { nonce: string; pcrs: number[] }
  t.is((issued as { credential_blob?: string }).credential_blob, undefined, 'no challenge without EK CAs')

  // The attack: a quote built in JavaScript over the CA's nonce, the AK bound by the device key.
  const attestation = forgedAttestation(issued, softwareAk, deviceKey)
  const refused = await post(`${url}/v1/enroll`, { ...proofOf(token, csr, 'forger-2'), csr, node_id: 'forger-2', attestation })
  t.like(refused, { status: 403, json: { code: 'ERR_ATTEST_CREDENTIAL' } })
  t.regex(String(refused.json!.message), /attest_ek_cas/)
  t.is(ca.listCertificates().filter((record) => record.deviceId !== CA_API_IDENTITY.deviceId).length, 0, 'none but the CA API certificate')
  t.is(ca.attestationStatus('forger-2'), undefined)
  t.like(auditRows(ca, 'enroll').at(-1), { outcome: 'deny', reason: 'ERR_ATTEST_CREDENTIAL', detail: { device: 'forger-2' } })
})
