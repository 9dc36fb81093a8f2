import { createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo, createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  CertificateAuthority,
  generateP256Key,
  parseCsr,
  secureTls,
  Tpm,
  TlsContext,
  tpmAvailable,
  verifyQuote,
  buildCsr,
  type SecureStream,
  Signer,
} from '../src/index.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

const root = CertificateAuthority.createRoot({ commonName: 'TPM Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'TPM Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)

/** The SPKI of a 65-byte P-256 point, for node:crypto. */
function p256PublicKey(point: Buffer) {
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' })
}

tpmTestSerial('a TPM key signs, builds a CSR the CA accepts, and serves as the client key of a mutual TLS link', async (t) => {
  const swtpm = await startSwtpm(t)
  t.true(tpmAvailable(swtpm.tcti))
  const tpm = Tpm.open(swtpm.tcti)
  t.like(tpm.info(), { family: '2.0', usable: true })
  const blob = await tpm.createSigningKey()
  const key = tpm.loadKey(blob)
  t.is(key.publicKey.length, 65)
  const message = Buffer.from('a message from the TPM')
  t.true(nodeVerify('sha256', message, p256PublicKey(key.publicKey), key.sign(message)))

  const csr = key.buildCsr('tablet-7', 'hotel-1')
  t.like(parseCsr(csr), { requestedCommonName: 'tablet-7', requestedOrgUnit: 'hotel-1' })
  const cert = siteCa.issue(csr, { deviceId: 'tablet-7', tenant: 'hotel-1' })

  const gwKey = generateP256Key()
  const gwCert = siteCa.issue(buildCsr(gwKey, 'gw-1', 'hotel-1'), { deviceId: 'gw-1', tenant: 'hotel-1' })
  const serverContext = new TlsContext('server', { identity: { certificateChainPem: gwCert.pem + site.certificatePem, signer: Signer.fromPkcs8(gwKey) }, trustPem: root.certificatePem })
  const accepted: Promise<SecureStream>[] = []
  const server = createServer((socket) => {
    socket.on('error', () => {})
    accepted.push(secureTls(socket, serverContext))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const socket = createConnection({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' })
  const clientContext = new TlsContext('client', { identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromTpmKey(key) }, trustPem: root.certificatePem })
  const client = await secureTls(socket, clientContext)
  for (let i = 0; i < 100 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
  const serverSide = await accepted[0]!
  t.like(serverSide.peer, { deviceId: 'tablet-7', serial: cert.serial })
  t.like(client.peer, { deviceId: 'gw-1' })
  client.destroy()

  // The blob is bound to this TPM: another TPM refuses it.
  const other = Tpm.open((await startSwtpm(t)).tcti)
  t.throws(() => other.loadKey(blob), { code: 'ERR_TPM_KEY' })
  t.throws(() => tpm.loadKey(Buffer.from('not a blob')), { code: 'ERR_TPM_BLOB' })
  t.deepEqual(await swtpm.transientHandles(), [], 'no transient handle is left behind')
})

tpmTestSerial('a sealed secret unseals until a PCR is extended', async (t) => {
  const swtpm = await startSwtpm(t)
  const tpm = Tpm.open(swtpm.tcti)
  const secret = randomBytes(32)
  const sealed = await tpm.seal(secret, [7, 16])
  t.deepEqual(await tpm.unseal(sealed), secret)
  tpm.pcrExtend(16, Buffer.from('a new boot stage'))
  await t.throwsAsync(tpm.unseal(sealed), { code: 'ERR_TPM_POLICY' })
  await t.throwsAsync(tpm.seal(Buffer.alloc(0), [7]), { code: 'ERR_TPM_ARGUMENT' })
  t.deepEqual(await swtpm.transientHandles(), [])
})

tpmTestSerial('a ztmesh quote verifies with tpm2_checkquote, and a tpm2_quote quote verifies with ztmesh', async (t) => {
  const swtpm = await startSwtpm(t)
  const tpm = Tpm.open(swtpm.tcti)
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-quote-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ak = await tpm.createAttestationKey()
  const nonce = randomBytes(32)
  const quote = await tpm.quote(ak, nonce, [0, 1, 2, 3, 7])
  const expected = Object.fromEntries(tpm.readPcrs([0, 7]).map((p) => [p.index, p.value]))
  const verified = verifyQuote(quote, nonce, expected)
  t.deepEqual(verified.pcrs.map((p) => p.index), [0, 1, 2, 3, 7])
  t.throws(() => verifyQuote(quote, randomBytes(32), expected), { code: 'ERR_ATTEST_NONCE' })
  t.throws(() => verifyQuote(quote, nonce, { 7: 'ff'.repeat(32) }), { code: 'ERR_ATTEST_PCR_MISMATCH' })
  const forged = Buffer.from(quote.attest)
  forged[forged.length - 1]! ^= 1
  t.throws(() => verifyQuote({ ...quote, attest: forged }, nonce), { code: 'ERR_ATTEST_SIGNATURE' })

  writeFileSync(join(dir, 'quote.msg'), quote.attest)
  writeFileSync(join(dir, 'quote.sig'), quote.signature)
  writeFileSync(join(dir, 'pcrs.bin'), quote.pcrValues)
  writeFileSync(join(dir, 'ak.pub.pem'), quote.akPublicPem)
  const file = (name: string) => join(dir, name)
  await t.notThrowsAsync(swtpm.tool('tpm2_checkquote', ['-u', file('ak.pub.pem'), '-m', file('quote.msg'), '-s', file('quote.sig'), '-f', file('pcrs.bin'), '-g', 'sha256', '-q', nonce.toString('hex')]))

  // tpm2-tools without a resource manager: flush what each tool leaves loaded (swtpm has 3 slots).
  await swtpm.tool('tpm2_createek', ['-c', file('ek.ctx'), '-G', 'ecc', '-u', file('ek.pub')])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
  await swtpm.tool('tpm2_createak', ['-C', file('ek.ctx'), '-c', file('ak.ctx'), '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', file('ak2.pem'), '-f', 'pem', '-n', file('ak.name')])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
  await swtpm.tool('tpm2_flushcontext', ['-s'])
  await swtpm.tool('tpm2_quote', ['-c', file('ak.ctx'), '-l', 'sha256:0,7', '-q', nonce.toString('hex'), '-m', file('q.msg'), '-s', file('q.sig'), '-o', file('q.pcrs'), '-g', 'sha256'])
  await swtpm.tool('tpm2_flushcontext', ['-t'])
  const theirs = verifyQuote({ akPublicPem: readFileSync(file('ak2.pem'), 'utf8'), attest: readFileSync(file('q.msg')), signature: readFileSync(file('q.sig')), pcrValues: readFileSync(file('q.pcrs')) }, nonce, expected)
  t.deepEqual(theirs.pcrs.map((p) => p.index), [0, 7])
  t.deepEqual(await swtpm.transientHandles(), [])
})

tpmTestSerial('bad TCTI strings and a TPM that is not there are typed errors', async (t) => {
  t.regex(t.throws<Error & { code: string }>(() => Tpm.open('nonsense-tcti:x'))!.code, /^ERR_TPM_(TCTI|UNAVAILABLE)$/)
  t.throws(() => Tpm.open('swtpm:host=127.0.0.1,port=1'), { code: 'ERR_TPM_UNAVAILABLE' })
  t.false(tpmAvailable('swtpm:host=127.0.0.1,port=1'))
})
