// The enrollment and quote-exchange messages as TypeScript sees them: one codec in the core for
// both sides, the side-specific error codes, a device that refuses a malformed answer without
// touching its directory, and the import graph that keeps the device out of the CA service.
import test from 'ava'
import { createServer } from 'node:http'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'

import { DeviceIdentity } from '../src/identity/index.js'
import {
  checkPcrSelection,
  decodeEnrollRequest,
  decodeEnrollResponse,
  decodeNonceAnswer,
  decodeQuoteAnswer,
  decodeQuoteRequest,
  decodeRotationRequest,
  encodeEnrollRequest,
  encodeEnrollResponse,
  encodeNonceAnswer,
  encodeQuoteAnswer,
  encodeQuoteRequest,
  generateEnrollmentToken,
  rotationMessage,
} from '../src/protocol/index.js'
import { ZtError } from '../src/index.js'
import { reachable } from './helpers/imports.js'

test('the device side never imports the CA service, and protocol/ imports neither side', (t) => {
  const src = resolve('src')
  const inside = (files: Set<string>, folder: string) => [...files].map((f) => relative(src, f)).filter((f) => f.startsWith(`${folder}/`))
  const device = reachable('src/identity/index.ts')
  t.true(device.size > 5, 'the scan follows imports')
  t.deepEqual(inside(device, 'ca'), [])
  t.deepEqual(inside(device, 'attestation/verifier'), [])
  for (const file of readdirSync('src/protocol')) {
    const reached = reachable(join('src/protocol', file))
    t.deepEqual([...inside(reached, 'ca'), ...inside(reached, 'identity')], [], file)
  }
  // The scan itself sees a CA import where there is one.
  t.true(inside(reachable('src/ca/server.ts'), 'ca').includes('ca/index.ts'))
})

test('the codecs round-trip and refuse malformed input with the code of the side that was wrong', (t) => {
  const nonce = Buffer.alloc(32, 0xab)
  const quote = { akPublicPem: 'pem', akBinding: Buffer.from([1]), attest: Buffer.from([2]), signature: Buffer.from([3]), pcrValues: Buffer.from([4]) }
  const request = decodeEnrollRequest(encodeEnrollRequest({ tokenId: '11'.repeat(32), tokenProof: '22'.repeat(64), csr: 'csr', nodeId: 'n1', attestation: { nonce, quote } }))
  t.like(request, { tokenId: '11'.repeat(32), tokenProof: '22'.repeat(64), csr: 'csr', nodeId: 'n1', attestation: { quote: { akPublicPem: 'pem' } } })
  t.deepEqual(Buffer.from(request.attestation!.nonce), nonce)
  const response = { certificate: 'c', caChain: 'ca', serial: '0a', notAfterMs: 1_800_000_000_000, config: { bootstrap_peers: [], gossip_fanout: 3, crl_url: 'http://x/v1/crl' } }
  t.deepEqual(decodeEnrollResponse(encodeEnrollResponse(response)), response)
  t.like(decodeNonceAnswer(encodeNonceAnswer({ nonce, expiresAtMs: 5, pcrs: [7, 0] })), { expiresAtMs: 5, pcrs: [0, 7] })
  t.like(decodeQuoteRequest(encodeQuoteRequest({ nonce, pcrs: [7, 0] })), { pcrs: [0, 7] })
  t.like(decodeQuoteAnswer(encodeQuoteAnswer({ quote })), { quote: { akPublicPem: 'pem' } })
  t.deepEqual(decodeQuoteAnswer(encodeQuoteAnswer({ errorCode: 'ERR_TPM_KEY' })), { errorCode: 'ERR_TPM_KEY' })
  t.is(rotationMessage(1, 'csr').subarray(0, 17).toString('latin1'), 'ztmesh-rotate-v1\0')

  const code = (call: () => unknown) => t.throws(call, { instanceOf: ZtError })?.code
  t.is(code(() => decodeEnrollRequest(Buffer.from('{"token":"t","csr":"c","roles":["admin"]}'))), 'ERR_BAD_REQUEST')
  t.is(code(() => decodeRotationRequest(Buffer.from('{"certificate":"c","csr":"r","timestamp":1.5,"signature":"AA=="}'))), 'ERR_BAD_REQUEST')
  t.is(code(() => decodeEnrollResponse(Buffer.from('{"certificate":"c","ca_cert":"a","serial":"0a","not_after":1,"trust":"evil"}'))), 'ERR_BAD_RESPONSE')
  t.is(code(() => decodeNonceAnswer(Buffer.from(`{"nonce":"${nonce.toString('hex')}","expires_at":1,"pcrs":[7,7]}`))), 'ERR_BAD_RESPONSE')
  t.is(code(() => decodeQuoteRequest(Buffer.from(`{"v":1,"type":"quote-request","nonce":"${nonce.toString('hex')}","pcrs":[24]}`))), 'ERR_ATTEST_MALFORMED')
  t.is(code(() => decodeQuoteAnswer(Buffer.from('{"v":1,"type":"error","code":"rm -rf"}'))), 'ERR_ATTEST_MALFORMED')
  t.is(code(() => checkPcrSelection([0, 0])), 'ERR_INVALID_ARG')
  t.is(code(() => encodeQuoteRequest({ nonce: Buffer.alloc(8), pcrs: [0] })), 'ERR_INVALID_ARG')
  t.is(code(() => rotationMessage(-1, 'csr')), 'ERR_INVALID_ARG')
})

test('a device refuses a malformed answer of the CA with ERR_BAD_RESPONSE and writes nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-protocol-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const answers = [
    '{"certificate":"-----BEGIN CERTIFICATE-----","ca_cert":"x","serial":"0a","not_after":1,"trust":"evil"}',
    '{"certificate":"x","ca_cert":"x"}',
    '<html>hello</html>',
    '{"certificate":"x","ca_cert":"x","serial":"0a","not_after":1,"config":{"bootstrap_peers":[],"gossip_fanout":3,"crl_url":7}}',
    `{"certificate":"${'A'.repeat(200_000)}"}`,
  ]
  let next = 0
  const server = createServer((_request, response) => {
    // No Content-Length: the device must bound what it reads by itself.
    response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }).end(answers[next++ % answers.length])
  })
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  t.teardown(() => new Promise<void>((done) => server.close(() => done())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const [i] of answers.entries()) {
    const store = join(dir, `device-${i}`)
    const { token } = generateEnrollmentToken('ab'.repeat(32), 'hotel-1', 'd')
    await t.throwsAsync(DeviceIdentity.enroll({ url, token, dir: store, passphrase: 'pw', keystore: 'software' }), { code: 'ERR_BAD_RESPONSE' }, answers[i])
    t.false(existsSync(join(store, 'cert.pem')), 'no certificate is stored')
    t.false(existsSync(join(store, 'trust.pem')), 'no trust anchor is stored')
  }
})
