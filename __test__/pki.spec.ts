import test from 'ava'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
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
  for (const spelling of [a.cert.serial, upper, `0x000${a.cert.serial}`]) t.true(revocations.isRevoked(spelling, 'cd'.repeat(32)), spelling)
  t.throws(() => verifyPeer(a.cert.pem + site.certificatePem, trust, revocations), { code: 'ERR_CERT_REVOKED' })
  // Zero, 41 significant digits, and non-hex are not serials: refused, never a quiet false.
  for (const bad of ['0', '0x00', 'ab'.repeat(40), `1${'0'.repeat(40)}`, 'xyz', '']) {
    t.throws(() => revocations.isRevoked(bad, spki), { code: 'ERR_SERIAL' }, bad)
    t.throws(() => siteCa.signRevocationRecord(2, now, [{ serial: bad, spkiSha256: spki, revokedAtMs: now, reason: 1 }]), { code: 'ERR_SERIAL' }, bad)
    t.throws(() => siteCa.issueCrl(2, [{ serial: bad, revokedAtMs: now, reason: 1 }], now, now + 86_400_000), { code: 'ERR_SERIAL' }, bad)
  }
  t.true(revocations.isRevoked('0x1', spki), 'the key is still found by its SPKI hash')
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
  t.true(revocations.isRevoked(again.serial, b.cert.spkiSha256))

  // A CRL from another CA, or a tampered record, is refused.
  const other = hierarchy()
  const forged = other.siteCa.issueCrl(2, [], now, now + 1000)
  t.throws(() => revocations.addCrl(forged.pem, site.certificatePem, trust), { instanceOf: PkiError })
  const tampered = Buffer.from(record)
  tampered[tampered.length - 5]! ^= 1
  t.throws(() => new RevocationSet().addRecord(tampered, site.certificatePem, trust), { instanceOf: PkiError })
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
