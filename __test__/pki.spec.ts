import test from 'ava'
import { execFileSync } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  buildCsr,
  CertificateAuthority,
  generateP256Key,
  parseCsr,
  PkiError,
  RevocationSet,
  SigningKey,
  TrustStore,
  verifyCertificateSignature,
  verifyPeer,
} from '../src/index.js'

function hierarchy() {
  const root = CertificateAuthority.createRoot({ commonName: 'Test Root', organisation: 'Acme' })
  const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
  const site = rootCa.createSiteCa({ commonName: 'Test Site', organisation: 'Acme' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  return { root, rootCa, site, siteCa, trust: TrustStore.fromPem(root.certificatePem) }
}

function device(siteCa: CertificateAuthority, deviceId = 'tablet-7', tenant = 'hotel-1', init = {}) {
  const key = generateP256Key()
  const cert = siteCa.issue(buildCsr(key, deviceId, tenant), { deviceId, tenant, ...init })
  return { key, cert }
}

test('a device certificate from a CSR verifies to its identity, and Node reads it', (t) => {
  const { site, siteCa, trust } = hierarchy()
  const { cert } = device(siteCa, 'tablet-7', 'hotel-1', { roles: ['frontdesk'] })
  const peer = verifyPeer(cert.pem + site.certificatePem, trust, new RevocationSet(), { expectedTenant: 'hotel-1', expectedDevice: 'tablet-7', usage: 'client' })
  t.like(peer, { deviceId: 'tablet-7', tenant: 'hotel-1', roles: ['frontdesk'], serial: cert.serial, spkiSha256: cert.spkiSha256 })
  t.true(Math.abs(peer.notAfterMs - (Date.now() + 90 * 86_400_000)) < 600_000, 'default validity is 90 days')
  const x509 = new X509Certificate(cert.pem)
  t.regex(x509.subject, /CN=tablet-7/)
  t.regex(x509.subject, /OU=hotel-1/)
  t.true(x509.checkIssued(new X509Certificate(site.certificatePem)))
  t.false(x509.ca)
  t.regex(x509.subjectAltName ?? '', /URI:ztmesh:\/\/hotel-1\/tablet-7/)
  t.is(cert.serial.length <= 32 && cert.serial.length >= 20, true)
})

test('every refusal has its typed reason', (t) => {
  const { site, siteCa, trust, root } = hierarchy()
  const { cert } = device(siteCa)
  const chain = cert.pem + site.certificatePem
  const none = new RevocationSet()
  const reject = (code: string, run: () => unknown) => t.throws(run, { instanceOf: PkiError, code }, code)
  reject('ERR_TENANT_MISMATCH', () => verifyPeer(chain, trust, none, { expectedTenant: 'hotel-2' }))
  reject('ERR_DEVICE_MISMATCH', () => verifyPeer(chain, trust, none, { expectedDevice: 'other' }))
  reject('ERR_PIN', () => verifyPeer(chain, trust, none, { pins: ['00'.repeat(32)] }))
  t.notThrows(() => verifyPeer(chain, trust, none, { pins: [cert.spkiSha256] }))
  reject('ERR_CERT_EXPIRED', () => verifyPeer(chain, trust, none, { nowMs: cert.notAfterMs + 3_600_000 }))
  reject('ERR_CERT_NOT_YET_VALID', () => verifyPeer(chain, trust, none, { nowMs: cert.notBeforeMs - 3_600_000 }))
  t.notThrows(() => verifyPeer(chain, trust, none, { nowMs: cert.notBeforeMs - 60_000 }), 'within the skew')
  reject('ERR_CHAIN', () => verifyPeer(cert.pem, trust, none)) // missing intermediate
  reject('ERR_CHAIN', () => verifyPeer(chain, hierarchy().trust, none)) // another root
  reject('ERR_KEY_USAGE', () => verifyPeer(site.certificatePem, trust, none)) // a CA as a leaf
  reject('ERR_CERT_MALFORMED', () => verifyPeer('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', trust, none))
  t.throws(() => verifyPeer('garbage', trust, none), { instanceOf: PkiError })
  t.throws(() => TrustStore.fromPem('nothing here'), { instanceOf: PkiError })
  // A rollover bundle holds the old and the new root: certificates under either verify.
  const next = hierarchy()
  const bundle = TrustStore.fromPem(root.certificatePem + next.root.certificatePem)
  t.is(bundle.size, 2)
  const fromNew = device(next.siteCa)
  t.is(verifyPeer(chain, bundle, none).deviceId, 'tablet-7')
  t.is(verifyPeer(fromNew.cert.pem + next.site.certificatePem, bundle, none).deviceId, 'tablet-7')
})

test('serial arguments follow the one serial rule: any spelling of a serial works, a non-serial is ERR_SERIAL', (t) => {
  const { site, siteCa, trust } = hierarchy()
  const a = device(siteCa, 'a')
  const now = Date.now()
  const spki = 'ab'.repeat(32)
  const upper = `0X${a.cert.serial.toUpperCase()}`
  const record = siteCa.signRevocationRecord(1, now, [{ serial: upper, spkiSha256: spki, revokedAtMs: now, reason: 1 }])
  const revocations = new RevocationSet()
  t.true(revocations.addRecord(record, site.certificatePem, trust))
  for (const spelling of [a.cert.serial, upper, `0x000${a.cert.serial}`]) t.true(revocations.isRevoked(spelling, 'cd'.repeat(32), siteCa.keyId), spelling)
  t.throws(() => verifyPeer(a.cert.pem + site.certificatePem, trust, revocations), { code: 'ERR_CERT_REVOKED' })
  // Zero, 41 significant digits, and non-hex are not serials: refused, never a quiet false.
  for (const bad of ['0', '0x00', 'ab'.repeat(40), `1${'0'.repeat(40)}`, 'xyz', '']) {
    t.throws(() => revocations.isRevoked(bad, spki, siteCa.keyId), { code: 'ERR_SERIAL' }, bad)
    t.throws(() => siteCa.signRevocationRecord(2, now, [{ serial: bad, spkiSha256: spki, revokedAtMs: now, reason: 1 }]), { code: 'ERR_SERIAL' }, bad)
    t.throws(() => siteCa.issueCrl(2, [{ serial: bad, revokedAtMs: now, reason: 1 }], now, now + 86_400_000), { code: 'ERR_SERIAL' }, bad)
  }
  t.true(revocations.isRevoked('0x1', spki, siteCa.keyId), 'the key is still found by its SPKI hash')
})

test('revocation by CRL serial and by key, with the CRL verified against its issuer', (t) => {
  const { site, siteCa, trust } = hierarchy()
  const a = device(siteCa, 'a')
  const now = Date.now()
  const crl = siteCa.issueCrl(1, [{ serial: a.cert.serial, revokedAtMs: now, reason: 1 }], now, now + 86_400_000)
  const revocations = new RevocationSet()
  t.true(revocations.addCrl(crl.pem, site.certificatePem, trust))
  t.false(revocations.addCrl(crl.der, site.certificatePem, trust), 'the same CRL again changes nothing')
  t.throws(() => verifyPeer(a.cert.pem + site.certificatePem, trust, revocations), { code: 'ERR_CERT_REVOKED' })

  // A second certificate for a key revoked by SPKI hash is revoked too.
  const b = device(siteCa, 'b')
  const again = siteCa.issue(buildCsr(b.key, 'b', 'hotel-1'), { deviceId: 'b', tenant: 'hotel-1' })
  const record = siteCa.signRevocationRecord(1, now, [{ serial: b.cert.serial, spkiSha256: b.cert.spkiSha256, revokedAtMs: now, reason: 1 }])
  t.true(revocations.addRecord(record, site.certificatePem, trust))
  t.throws(() => verifyPeer(again.pem + site.certificatePem, trust, revocations), { code: 'ERR_CERT_REVOKED' })
  t.true(revocations.isRevoked(again.serial, b.cert.spkiSha256, siteCa.keyId))

  // A CRL from another CA, or a tampered record, is refused.
  const other = hierarchy()
  const forged = other.siteCa.issueCrl(2, [], now, now + 1000)
  t.throws(() => revocations.addCrl(forged.pem, site.certificatePem, trust), { instanceOf: PkiError })
  const tampered = Buffer.from(record)
  tampered[tampered.length - 5]! ^= 1
  t.throws(() => new RevocationSet().addRecord(tampered, site.certificatePem, trust), { instanceOf: PkiError })
})

const DAY_MS = 86_400_000

test('a CRL whose nextUpdate passed 400 days ago is refused with ERR_REVOCATION_STALE, and a CRL that turns stale fails verification closed', (t) => {
  const { site, siteCa, trust } = hierarchy()
  const a = device(siteCa, 'a')
  const now = Date.now()
  // The attack: an authentic CRL, long past its nextUpdate, revoking nobody.
  const ancient = siteCa.issueCrl(1, [], now - 407 * DAY_MS, now - 400 * DAY_MS)
  const revocations = new RevocationSet()
  t.throws(() => revocations.addCrl(ancient.pem, site.certificatePem, trust), { instanceOf: PkiError, code: 'ERR_REVOCATION_STALE' })

  // Applied while fresh, a CRL turns stale after nextUpdate plus the grace period.
  const weekly = siteCa.issueCrl(2, [], now, now + 7 * DAY_MS)
  t.true(revocations.addCrl(weekly.pem, site.certificatePem, trust, now))
  const chain = a.cert.pem + site.certificatePem
  t.is(verifyPeer(chain, trust, revocations, { nowMs: now + 7 * DAY_MS + DAY_MS / 2 }).deviceId, 'a', 'within the default day of grace')
  t.throws(() => verifyPeer(chain, trust, revocations, { nowMs: now + 9 * DAY_MS, clockSkewSeconds: 0 }), { code: 'ERR_REVOCATION_STALE' })
  const strict = new RevocationSet({ graceSeconds: 0 })
  strict.addCrl(weekly.pem, site.certificatePem, trust, now)
  t.throws(() => verifyPeer(chain, trust, strict, { nowMs: now + 7 * DAY_MS + 60_000 }), { code: 'ERR_REVOCATION_STALE' })

  // Failing open is explicit, and counted.
  const open = new RevocationSet({ failOpen: true })
  t.true(open.addCrl(ancient.pem, site.certificatePem, trust))
  t.is(verifyPeer(chain, trust, open).deviceId, 'a')
  t.is(open.staleUses, 2, 'the stale CRL applied, then used for one decision')
  t.throws(() => new RevocationSet({ graceSeconds: -1 }), { code: 'ERR_INVALID_ARG' })
})

test('CRL numbers only go up, across a restart through saved progress', (t) => {
  const { site, siteCa, trust } = hierarchy()
  const a = device(siteCa, 'a')
  const now = Date.now()
  const older = siteCa.issueCrl(1, [], now, now + 7 * DAY_MS)
  const newer = siteCa.issueCrl(2, [{ serial: a.cert.serial, revokedAtMs: now, reason: 1 }], now, now + 7 * DAY_MS)
  const running = new RevocationSet()
  running.addCrl(newer.pem, site.certificatePem, trust)
  t.throws(() => running.addCrl(older.pem, site.certificatePem, trust), { code: 'ERR_REVOCATION_ROLLBACK' })
  const saved = running.progress()

  // The attack after a restart: a fresh set and the older, validly signed CRL un-revoke `a`.
  const restarted = new RevocationSet()
  restarted.restoreProgress(saved)
  t.throws(() => restarted.addCrl(older.pem, site.certificatePem, trust), { code: 'ERR_REVOCATION_ROLLBACK' })
  t.false(restarted.addCrl(newer.pem, site.certificatePem, trust), 'the saved CRL itself is a duplicate')
  t.throws(() => verifyPeer(a.cert.pem + site.certificatePem, trust, restarted), { code: 'ERR_CERT_REVOKED' })
  t.throws(() => new RevocationSet().restoreProgress(Buffer.from('not progress')), { code: 'ERR_REVOCATION_MALFORMED' })
})

test("one site CA's revocations never reach another site's devices or CA", (t) => {
  const { root, rootCa, site, siteCa, trust } = hierarchy()
  const siteB = rootCa.createSiteCa({ commonName: 'Site B', organisation: 'Acme' })
  const siteBCa = CertificateAuthority.load(siteB.certificatePem, siteB.privateKey)
  const a = device(siteCa, 'gw-1')
  const now = Date.now()
  const siteASerial = new X509Certificate(site.certificatePem).serialNumber
  // Site B lists site A's device serial, site A's own CA serial, and site A's device key.
  const crl = siteBCa.issueCrl(1, [{ serial: a.cert.serial, revokedAtMs: now, reason: 1 }, { serial: siteASerial, revokedAtMs: now, reason: 2 }], now, now + DAY_MS)
  const record = siteBCa.signRevocationRecord(1, now, [{ serial: '01', spkiSha256: a.cert.spkiSha256, revokedAtMs: now, reason: 1 }])
  const revocations = new RevocationSet()
  revocations.addCrl(crl.pem, siteB.certificatePem, trust)
  revocations.addRecord(record, siteB.certificatePem, trust)
  const peer = verifyPeer(a.cert.pem + site.certificatePem, trust, revocations)
  t.is(peer.issuerKeyId, siteCa.keyId)
  t.false(revocations.isRevoked(a.cert.serial, a.cert.spkiSha256, siteCa.keyId))
  t.true(revocations.isRevoked(a.cert.serial, a.cert.spkiSha256, siteBCa.keyId))
  // The root's CRL decides site A's CA.
  revocations.addCrl(rootCa.issueCrl(1, [{ serial: siteASerial, revokedAtMs: now, reason: 2 }], now, now + DAY_MS).pem, root.certificatePem, trust)
  t.throws(() => verifyPeer(a.cert.pem + site.certificatePem, trust, revocations), { code: 'ERR_CERT_REVOKED' })
})

test('an openssl CSR is accepted, its wishes ignored, and openssl verifies the chain and CRL', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-pki-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { root, site, siteCa } = hierarchy()
  execFileSync('openssl', [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'),
    '-out', join(dir, 'csr.pem'), '-subj', '/CN=evil/OU=other-tenant', '-addext', 'basicConstraints=critical,CA:TRUE',
  ], { stdio: 'ignore' })
  const csr = readFileSync(join(dir, 'csr.pem'), 'utf8')
  t.like(parseCsr(csr), { requestedCommonName: 'evil', requestedOrgUnit: 'other-tenant' })
  const cert = siteCa.issue(csr, { deviceId: 'sensor-1', tenant: 'hotel-1' })
  const x509 = new X509Certificate(cert.pem)
  t.false(x509.ca, 'CA:true asked in the CSR is never granted')
  t.regex(x509.subject, /CN=sensor-1/)
  writeFileSync(join(dir, 'root.pem'), root.certificatePem)
  writeFileSync(join(dir, 'site.pem'), site.certificatePem)
  writeFileSync(join(dir, 'device.pem'), cert.pem)
  const now = Date.now()
  writeFileSync(join(dir, 'crl.pem'), siteCa.issueCrl(1, [], now, now + 86_400_000).pem + CertificateAuthority.load(root.certificatePem, root.privateKey).issueCrl(1, [], now, now + 86_400_000).pem)
  const verify = () => execFileSync('openssl', ['verify', '-crl_check_all', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'site.pem'), '-CRLfile', join(dir, 'crl.pem'), join(dir, 'device.pem')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  t.regex(verify(), /OK/)
  writeFileSync(join(dir, 'crl.pem'), siteCa.issueCrl(2, [{ serial: cert.serial, revokedAtMs: now, reason: 1 }], now, now + 86_400_000).pem + CertificateAuthority.load(root.certificatePem, root.privateKey).issueCrl(1, [], now, now + 86_400_000).pem)
  t.throws(verify, undefined, 'openssl refuses the revoked certificate')
})

test('a site CA bound to its tenants cannot vouch for another tenant: the forged hotel-1/gw-1 admin is ERR_NAME_CONSTRAINT, and openssl agrees', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-nc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { root, rootCa, trust } = hierarchy()
  const siteA = rootCa.createSiteCa({ commonName: 'Site A', organisation: 'Acme', tenants: ['hotel-1'] })
  const siteB = rootCa.createSiteCa({ commonName: 'Site B', organisation: 'Acme', tenants: ['hotel-2'] })
  const siteACa = CertificateAuthority.load(siteA.certificatePem, siteA.privateKey)
  const siteBCa = CertificateAuthority.load(siteB.certificatePem, siteB.privateKey)
  const none = new RevocationSet()
  const gateway = device(siteACa, 'gw-1', 'hotel-1')
  t.like(verifyPeer(gateway.cert.pem + siteA.certificatePem, trust, none, { expectedTenant: 'hotel-1' }), { deviceId: 'gw-1', tenant: 'hotel-1' })
  const own = device(siteBCa, 'tablet-1', 'hotel-2')
  t.is(verifyPeer(own.cert.pem + siteB.certificatePem, trust, none).tenant, 'hotel-2')
  t.throws(() => device(siteBCa, 'gw-1', 'hotel-1'), { code: 'ERR_IDENTITY' }, "site B's own issuance refuses the other tenant")

  // The attack: site B's key signs hotel-1/gw-1 with an extra admin role, with openssl.
  writeFileSync(join(dir, 'root.pem'), root.certificatePem)
  writeFileSync(join(dir, 'site-b.pem'), siteB.certificatePem)
  writeFileSync(join(dir, 'site-b.key'), createPrivateKey({ key: Buffer.from(siteB.privateKey), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  writeFileSync(join(dir, 'ext.cnf'), [
    '[v3]', 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth',
    'subjectAltName=URI:ztmesh://hotel-1/gw-1,URI:urn:ztmesh:role:admin', 'authorityKeyIdentifier=keyid', 'subjectKeyIdentifier=hash', '',
  ].join('\n'))
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'forged.key'), '-out', join(dir, 'forged.csr'), '-subj', '/O=Acme/OU=hotel-1/CN=gw-1'], { stdio: 'ignore' })
  execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'forged.csr'), '-CA', join(dir, 'site-b.pem'), '-CAkey', join(dir, 'site-b.key'), '-set_serial', '0x4242', '-days', '1', '-sha256', '-extfile', join(dir, 'ext.cnf'), '-extensions', 'v3', '-out', join(dir, 'forged.pem')], { stdio: 'ignore' })
  const forged = readFileSync(join(dir, 'forged.pem'), 'utf8')
  t.throws(() => verifyPeer(forged + siteB.certificatePem, trust, none), { instanceOf: PkiError, code: 'ERR_NAME_CONSTRAINT' })
  t.throws(() => verifyPeer(forged + siteB.certificatePem, trust, none, { expectedTenant: 'hotel-1' }), { code: 'ERR_NAME_CONSTRAINT' })

  // openssl reads the same constraints: it accepts site B's own device and refuses the forgery.
  const opensslVerify = (pem: string) => {
    writeFileSync(join(dir, 'leaf.pem'), pem)
    return execFileSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'site-b.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  }
  t.regex(opensslVerify(own.cert.pem), /OK/)
  t.throws(() => opensslVerify(forged), undefined, 'openssl refuses the forged certificate')
})

test('malformed CSRs and arguments are typed errors', (t) => {
  const { siteCa } = hierarchy()
  for (const bad of ['', 'garbage', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n']) {
    t.throws(() => siteCa.issue(bad, { deviceId: 'd', tenant: 't' }), { instanceOf: PkiError })
    t.throws(() => parseCsr(bad), { instanceOf: PkiError })
  }
  const csr = buildCsr(generateP256Key(), 'd', 't')
  for (const deviceId of ['', 'a/b', 'x'.repeat(300)]) {
    t.throws(() => siteCa.issue(csr, { deviceId, tenant: 't' }), { code: 'ERR_IDENTITY' })
  }
  t.throws(() => siteCa.issue(csr, { deviceId: 'd', tenant: 't', validitySeconds: -1 }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => siteCa.issueCrl(1.5, [], 0, 1), { code: 'ERR_INVALID_ARG' })
  t.throws(() => buildCsr(Buffer.alloc(10), 'd', 't'), { code: 'ERR_PRIVATE_KEY' })
  t.throws(() => siteCa.issue(42 as never, { deviceId: 'd', tenant: 't' }), { code: 'ERR_INVALID_ARG' })
})

test('verifyCertificateSignature proves possession of a certificate key; malformed input is typed', (t) => {
  const { siteCa, site } = hierarchy()
  const { key, cert } = device(siteCa)
  const signer = SigningKey.fromPkcs8('ecdsa-p256-sha256', key)
  const message = Buffer.from('possession')
  const signature = signer.sign(message)
  t.true(verifyCertificateSignature(cert.pem + site.certificatePem, message, signature))
  t.false(verifyCertificateSignature(cert.pem, Buffer.from('other'), signature))
  t.false(verifyCertificateSignature(cert.pem, message, Buffer.from('garbage')))
  t.throws(() => verifyCertificateSignature('nope', message, signature), { instanceOf: PkiError })
  t.throws(() => verifyCertificateSignature(cert.pem, 'x' as never, signature), { code: 'ERR_INVALID_ARG' })
})
