// Signed objects across the native boundary: TypeScript names a label and passes bytes; the
// core encodes, signs and verifies. Every attacker case that can be staged from JavaScript.
import test from 'ava'

import {
  buildCsr,
  CertificateAuthority,
  generateP256Key,
  RevocationSet,
  signedObjectDigest,
  signedObjectLabels,
  signObject,
  Tpm,
  TrustStore,
  verifyObject,
  WireError,
  ZtError,
  Signer,
} from '../src/index.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

function hierarchy(organisation = 'Acme') {
  const root = CertificateAuthority.createRoot({ commonName: 'Root', organisation })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Site', organisation })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const device = (deviceId = 'tablet-7', tenant = 'hotel-1', roles: string[] = []) => {
    const privateKey = generateP256Key()
    const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant, roles })
    return { signer: Signer.fromPkcs8(privateKey), cert, certificateChainPem: cert.pem + site.certificatePem }
  }
  return { root, site, siteCa, trust: TrustStore.fromPem(root.certificatePem), device }
}

const body = Buffer.from('{"sdp":"v=0 …","to":"kiosk-2"}')

test('a signed object round-trips through the core and names its signer', (t) => {
  const { trust, device } = hierarchy()
  const tablet = device('tablet-7', 'hotel-1', ['pos:cashier'])
  const object = signObject('test', body, tablet)
  const verified = verifyObject(object, 'test', trust, new RevocationSet(), { expectedTenant: 'hotel-1' })
  t.deepEqual(verified.body, body)
  t.like(verified.peer, { deviceId: 'tablet-7', tenant: 'hotel-1', roles: ['pos:cashier'], serial: tablet.cert.serial })
  t.regex(verified.digest, /^[0-9a-f]{64}$/)
  t.not(verifyObject(signObject('test', body, tablet), 'test', trust, new RevocationSet()).digest, verified.digest, 'each signature is its own object')
  t.is(signedObjectDigest(object), verified.digest, 'the digest of an object this side signed, without a trust decision, is the one its verification reports')
  t.throws(() => signedObjectDigest(Buffer.from([1, 2])), { code: 'ERR_WIRE_MALFORMED' })
  t.deepEqual(signedObjectLabels(), ['test', 'test-other', 'audit-checkpoint', 'offer', 'answer', 'candidate', 'presence', 'hub-challenge'])
})

test('an object signed for one purpose is refused for another, and labels are names, never strings', (t) => {
  const { trust, device } = hierarchy()
  const object = signObject('test', body, device())
  t.throws(() => verifyObject(object, 'test-other', trust, new RevocationSet()), { instanceOf: WireError, code: 'ERR_WIRE_LABEL' })
  for (const label of ['ztmesh-test-object-v1', 'rotate', 'ztmesh-rotate-v1', 'ztmesh-noise-static-key-v1', '', 'TEST']) {
    t.throws(() => signObject(label, body, device()), { code: 'ERR_WIRE_LABEL' }, label)
    t.throws(() => verifyObject(object, label, trust, new RevocationSet()), { code: 'ERR_WIRE_LABEL' }, label)
  }
})

test('tampered, truncated, extended and garbage objects are refused with typed codes', (t) => {
  const { trust, device } = hierarchy()
  const object = signObject('test', body, device())
  const none = new RevocationSet()
  // A flipped body byte fails the signature, not the format.
  const tamperedBody = Buffer.from(object)
  const at = object.indexOf(body) + body.length - 1
  tamperedBody[at]! ^= 0x01
  t.throws(() => verifyObject(tamperedBody, 'test', trust, none), { code: 'ERR_SIGNATURE' })
  const tamperedSignature = Buffer.from(object)
  tamperedSignature[object.length - 2]! ^= 0x01
  // A flipped signature byte breaks either the strict DER (malformed) or the signature.
  const refused = t.throws<ZtError>(() => verifyObject(tamperedSignature, 'test', trust, none), { instanceOf: ZtError })
  t.true(['ERR_SIGNATURE', 'ERR_WIRE_MALFORMED'].includes(refused?.code ?? ''))
  for (const len of [0, 1, 5, 30, object.length - 1]) {
    t.throws(() => verifyObject(object.subarray(0, len), 'test', trust, none), { code: 'ERR_WIRE_MALFORMED' }, `length ${len}`)
  }
  t.throws(() => verifyObject(Buffer.concat([object, Buffer.from([0])]), 'test', trust, none), { code: 'ERR_WIRE_MALFORMED' })
  const future = Buffer.from(object)
  future[0] = 2
  t.throws(() => verifyObject(future, 'test', trust, none), { code: 'ERR_WIRE_VERSION' })
  t.throws(() => verifyObject('not bytes' as never, 'test', trust, none), { code: 'ERR_INVALID_ARG' })
  let seed = 7
  for (let i = 0; i < 500; i++) {
    const garbage = Buffer.alloc(i % 200)
    for (let j = 0; j < garbage.length; j++) garbage[j] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24
    if (i % 2 === 1 && garbage.length > 0) garbage[0] = 1
    t.throws(() => verifyObject(garbage, 'test', trust, none), { instanceOf: ZtError })
  }
})

test('revoked, expired, foreign and other-tenant signers are refused with the PKI codes', (t) => {
  const { trust, device, siteCa, site } = hierarchy()
  const tablet = device()
  const object = signObject('test', body, tablet)
  const revoked = new RevocationSet()
  const record = siteCa.signRevocationRecord(1, Date.now(), [{ serial: tablet.cert.serial, spkiSha256: tablet.cert.spkiSha256, revokedAtMs: Date.now(), reason: 1 }])
  revoked.addRecord(record, site.certificatePem, trust)
  t.throws(() => verifyObject(object, 'test', trust, revoked), { code: 'ERR_CERT_REVOKED' })
  t.throws(() => verifyObject(object, 'test', trust, new RevocationSet(), { nowMs: tablet.cert.notAfterMs + 3_600_000 }), { code: 'ERR_CERT_EXPIRED' })
  t.throws(() => verifyObject(object, 'test', trust, new RevocationSet(), { expectedTenant: 'hotel-2' }), { code: 'ERR_TENANT_MISMATCH' })
  t.throws(() => verifyObject(object, 'test', trust, new RevocationSet(), { expectedDevice: 'kiosk-1' }), { code: 'ERR_DEVICE_MISMATCH' })
  const foreign = hierarchy('Evil').device()
  t.throws(() => verifyObject(signObject('test', body, foreign), 'test', trust, new RevocationSet()), { code: 'ERR_CHAIN' })
})

/** The object's chain replaced by `leafPem` (PEM) and the rest of the original chain, the rest kept. */
function withLeaf(object: Buffer, leafPem: string): Buffer {
  let i = 1 + 1 + object[1]!
  const count = object[i++]!
  const certsAt = i
  const certs: Buffer[] = []
  for (let k = 0; k < count; k++) {
    const len = object.readUInt16BE(i)
    certs.push(object.subarray(i, i + 2 + len))
    i += 2 + len
  }
  const der = Buffer.from(leafPem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
  const len = Buffer.alloc(2)
  len.writeUInt16BE(der.length)
  return Buffer.concat([object.subarray(0, certsAt), len, der, ...certs.slice(1), object.subarray(i)])
}

test('a relay cannot swap in another certificate of the same key, with more roles or fewer', (t) => {
  const { trust, siteCa, site } = hierarchy()
  // A software key keeps its key across renewal; the earlier certificate still has the role.
  const key = generateP256Key()
  const signer = Signer.fromPkcs8(key)
  const manager = siteCa.issue(buildCsr(key, 'tablet-7', 'hotel-1'), { deviceId: 'tablet-7', tenant: 'hotel-1', roles: ['pos:manager'] })
  const demoted = siteCa.issue(buildCsr(key, 'tablet-7', 'hotel-1'), { deviceId: 'tablet-7', tenant: 'hotel-1', roles: [] })
  const none = new RevocationSet()
  const object = signObject('test', body, { certificateChainPem: demoted.pem + site.certificatePem, signer })
  const genuine = verifyObject(object, 'test', trust, none)
  t.deepEqual(genuine.peer.roles, [])
  t.deepEqual(verifyObject(withLeaf(object, demoted.pem), 'test', trust, none), genuine, 'the splice itself is faithful')
  t.throws(() => verifyObject(withLeaf(object, manager.pem), 'test', trust, none), { code: 'ERR_SIGNATURE' })
  const promoted = signObject('test', body, { certificateChainPem: manager.pem + site.certificatePem, signer })
  t.throws(() => verifyObject(withLeaf(promoted, demoted.pem), 'test', trust, none), { code: 'ERR_SIGNATURE' })
})

test('a key that is not the leaf certificate key cannot sign, and oversized bodies are refused', (t) => {
  const { device } = hierarchy()
  const tablet = device()
  t.throws(() => signObject('test', body, { certificateChainPem: tablet.certificateChainPem, signer: Signer.fromPkcs8(generateP256Key()) }), { code: 'ERR_KEY_MISMATCH' })
  t.throws(() => signObject('test', body, { certificateChainPem: tablet.certificateChainPem } as never), { code: 'ERR_INVALID_ARG' })
  t.throws(() => signObject('test', Buffer.alloc((1 << 20) + 1), tablet), { code: 'ERR_MESSAGE_SIZE' })
  t.notThrows(() => signObject('test', Buffer.alloc(1 << 20), tablet))
})

tpmTestSerial('a TPM key signs objects that verify like software-signed ones', async (t) => {
  const swtpm = await startSwtpm(t)
  const tpm = Tpm.open(swtpm.tcti)
  const key = tpm.loadKey(await tpm.createSigningKey())
  const { trust, siteCa, site } = hierarchy()
  const cert = siteCa.issue(key.buildCsr('kiosk-1', 'hotel-1'), { deviceId: 'kiosk-1', tenant: 'hotel-1' })
  const object = signObject('test-other', body, { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromTpmKey(key) })
  t.like(verifyObject(object, 'test-other', trust, new RevocationSet()).peer, { deviceId: 'kiosk-1' })
  t.throws(() => verifyObject(object, 'test', trust, new RevocationSet()), { code: 'ERR_WIRE_LABEL' })
})
