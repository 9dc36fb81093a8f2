// The one signer handle: a software key, a keystore entry or a TPM key behind one native class,
// taken by TLS, Noise links and signed objects alike; refused at context creation when it is not
// the certificate's key, typed once closed; and a software device that never exports its key.
import test, { type ExecutionContext } from 'ava'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { DeviceIdentity } from '../src/identity/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'
import {
  CertificateAuthority,
  connectSecure,
  createSecureServer,
  generateP256Key,
  Keystore,
  NoiseLinkContext,
  RevocationSet,
  signObject,
  Signer,
  TlsContext,
  Tpm,
  TrustStore,
  verifyObject,
  ZtError,
  type DeviceCredential,
  type SecureStream,
} from '../src/index.js'
import { caOnLoopback } from './helpers/ca-site.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

const root = CertificateAuthority.createRoot({ commonName: 'Signer Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Signer Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem
const trust = TrustStore.fromPem(trustPem)

/** A credential for `signer`, certified by the site CA. */
function certify(signer: Signer, deviceId: string, tenant = 'hotel-1'): DeviceCredential {
  const cert = siteCa.issue(signer.buildCsr(deviceId, tenant), { deviceId, tenant })
  return { certificateChainPem: cert.pem + site.certificatePem, signer }
}

/** A software credential, its key given to the native signer and wiped here. */
function softwareCredential(deviceId: string): DeviceCredential {
  const key = generateP256Key()
  try {
    return certify(Signer.fromPkcs8(key), deviceId)
  } finally {
    key.fill(0)
  }
}

/** One echo round trip between `server` and `client` over `protocol`; resolves the verified peers. */
async function roundTrip(t: ExecutionContext, protocol: 'tls' | 'noise', server: DeviceCredential, client: DeviceCredential, trustBundle = trustPem) {
  const secure = createSecureServer({ protocol, identity: server, trustPem: trustBundle }, (link) => link.pipe(link))
  const { port } = await secure.listen(0, '127.0.0.1')
  t.teardown(() => secure.close())
  const link: SecureStream = await connectSecure({ protocol, host: '127.0.0.1', port, identity: client, trustPem: trustBundle })
  t.teardown(() => link.destroy())
  const echoed = new Promise<Buffer>((resolve) => link.once('data', resolve))
  link.write('ping')
  t.is((await echoed).toString(), 'ping', protocol)
  return link.peer
}

test('a software signer works in TLS, Noise links and signed objects', async (t) => {
  const gateway = softwareCredential('gw-1')
  const tablet = softwareCredential('tablet-7')
  for (const protocol of ['tls', 'noise'] as const) t.like(await roundTrip(t, protocol, gateway, tablet), { deviceId: 'gw-1' })
  const object = signObject('test', Buffer.from('hello'), tablet)
  t.like(verifyObject(object, 'test', trust, new RevocationSet()), { peer: { deviceId: 'tablet-7' }, body: Buffer.from('hello') })
})

test('a keystore entry becomes a signer inside the core; a wrong kind or name is typed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-signer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keystore = await Keystore.create(join(dir, 'keys.ztks'), 'pw', { memoryKib: 8, iterations: 1 })
  const { publicKey } = keystore.generate('device', 'ecdsa-p256')
  keystore.generate('ed', 'ed25519')
  const signer = Signer.fromKeystore(keystore, 'device')
  t.deepEqual(signer.publicKey, publicKey)
  const credential = certify(signer, 'kiosk-1')
  t.like(await roundTrip(t, 'tls', softwareCredential('gw-1'), credential), { deviceId: 'gw-1' })
  t.like(verifyObject(signObject('test', Buffer.from('x'), credential), 'test', trust, new RevocationSet()).peer, { deviceId: 'kiosk-1' })
  t.throws(() => Signer.fromKeystore(keystore, 'ed'), { instanceOf: ZtError, code: 'ERR_KEYSTORE_KIND' })
  t.throws(() => Signer.fromKeystore(keystore, 'missing'), { instanceOf: ZtError, code: 'ERR_KEYSTORE_NOT_FOUND' })
  t.throws(() => Signer.fromPkcs8(Buffer.from('not a key')), { instanceOf: ZtError, code: 'ERR_PRIVATE_KEY' })
})

test('a signer that is not the certificate key is refused with ERR_KEY_MISMATCH when each context is built', (t) => {
  const victim = softwareCredential('victim')
  const stolen: DeviceCredential = { certificateChainPem: victim.certificateChainPem, signer: Signer.fromPkcs8(generateP256Key()) }
  const mismatch = { instanceOf: ZtError, code: 'ERR_KEY_MISMATCH' }
  t.throws(() => new TlsContext('server', { identity: stolen, trustPem }), mismatch)
  t.throws(() => new TlsContext('client', { identity: stolen, trustPem }), mismatch)
  t.throws(() => new NoiseLinkContext({ identity: stolen, trust, revocations: new RevocationSet() }), mismatch)
  t.throws(() => signObject('test', Buffer.from('x'), stolen), mismatch)
  t.throws(() => createSecureServer({ protocol: 'noise', identity: stolen, trustPem }, () => {}), mismatch)
  // The CA's certificate is no one's device certificate either.
  t.throws(() => new TlsContext('client', { identity: { certificateChainPem: site.certificatePem, signer: victim.signer }, trustPem }), mismatch)
  t.throws(() => new TlsContext('client', { identity: { certificateChainPem: 'garbage', signer: victim.signer }, trustPem }), { instanceOf: ZtError })
  t.throws(() => new TlsContext('client', { identity: { certificateChainPem: victim.certificateChainPem } as DeviceCredential, trustPem }), { code: 'ERR_INVALID_ARG' })
  t.throws(() => new TlsContext('client', { identity: { certificateChainPem: victim.certificateChainPem, signer: {} as Signer }, trustPem }), { code: 'ERR_INVALID_ARG' })
})

test('a closed signer fails with ERR_CLOSED; contexts built before keep their share of the key', async (t) => {
  const gateway = softwareCredential('gw-1')
  const tablet = softwareCredential('tablet-7')
  const before = new TlsContext('client', { identity: tablet, trustPem })
  tablet.signer.close()
  tablet.signer.close() // twice is fine
  t.true(tablet.signer.closed)
  const closed = { instanceOf: ZtError, code: 'ERR_CLOSED' }
  t.throws(() => tablet.signer.sign(Buffer.from('x')), closed)
  t.throws(() => tablet.signer.publicKey, closed)
  t.throws(() => tablet.signer.buildCsr('tablet-7', 'hotel-1'), closed)
  t.throws(() => new TlsContext('server', { identity: tablet, trustPem }), closed)
  t.throws(() => new NoiseLinkContext({ identity: tablet, trust, revocations: new RevocationSet() }), closed)
  t.throws(() => signObject('test', Buffer.from('x'), tablet), closed)
  t.notThrows(() => before.session(), 'a context built before the close still opens sessions')
  t.like(await roundTrip(t, 'tls', gateway, gateway), { deviceId: 'gw-1' })
})

tpmTestSerial('a TPM signer works in TLS, Noise links and signed objects, beside a software peer', async (t) => {
  const swtpm = await startSwtpm(t)
  const tpm = Tpm.open(swtpm.tcti)
  const key = tpm.loadKey(await tpm.createSigningKey())
  const kiosk = certify(Signer.fromTpmKey(key), 'kiosk-1')
  t.deepEqual(kiosk.signer.publicKey, key.publicKey)
  const gateway = softwareCredential('gw-1')
  for (const protocol of ['tls', 'noise'] as const) {
    t.like(await roundTrip(t, protocol, gateway, kiosk), { deviceId: 'gw-1' })
    t.like(await roundTrip(t, protocol, kiosk, gateway), { deviceId: 'kiosk-1' })
  }
  t.like(verifyObject(signObject('test', Buffer.from('x'), kiosk), 'test', trust, new RevocationSet()).peer, { deviceId: 'kiosk-1' })
  const stolen: DeviceCredential = { certificateChainPem: gateway.certificateChainPem, signer: kiosk.signer }
  t.throws(() => new TlsContext('client', { identity: stolen, trustPem }), { code: 'ERR_KEY_MISMATCH' })
})

test('a software-key device enrolls, links and rotates while its keystore refuses to export the device key', async (t) => {
  const { dir, ca, url } = await caOnLoopback(t, 'Signer Hotel')

  // Any export from the device's keystore fails the test; the CA's own keystore may still export.
  const deviceDir = join(dir, 'dev')
  const exportPrivateKey = Keystore.prototype.exportPrivateKey
  let exports = 0
  Keystore.prototype.exportPrivateKey = function (this: Keystore, name: string) {
    if (this.path.startsWith(deviceDir)) {
      exports++
      throw new Error('the device key must not be exported')
    }
    return exportPrivateKey.call(this, name)
  }
  t.teardown(() => {
    Keystore.prototype.exportPrivateKey = exportPrivateKey
  })

  const { token } = ca.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const device = await DeviceIdentity.enroll({ url, token, dir: deviceDir, passphrase: 'pw', deviceId: 'gw-1', tenant: 'hotel-1', keystore: 'software' })
  t.is(device.keystore, 'software')
  const credential = device.credential()
  t.true(credential.signer instanceof Signer)
  t.false('privateKey' in credential)

  const peerSigner = Signer.fromPkcs8(generateP256Key())
  const { token: peerToken } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
  const enrolled = ca.enroll(enrollRequestFor(peerToken, peerSigner.buildCsr('tablet-7', 'hotel-1')), 'test')
  const peer: DeviceCredential = { certificateChainPem: enrolled.certificate + enrolled.caChain, signer: peerSigner }
  for (const protocol of ['tls', 'noise'] as const) t.like(await roundTrip(t, protocol, credential, peer, ca.trustBundle()), { deviceId: 'gw-1' })

  t.true(await device.renewIfDue({ force: true }))
  t.like(await roundTrip(t, 'tls', device.credential(), peer, ca.trustBundle()), { deviceId: 'gw-1' })
  const reopened = await DeviceIdentity.open(deviceDir, 'pw', url)
  t.like(await roundTrip(t, 'noise', reopened.credential(), peer, ca.trustBundle()), { deviceId: 'gw-1' })
  t.is(exports, 0)
})

test('no device-side source exports a private key from the keystore (only the CA may, for its own keys)', (t) => {
  const sources = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []))
  const callers = sources(join(process.cwd(), 'src'))
    .filter((file) => /\bexportPrivateKey\(/.test(readFileSync(file, 'utf8')))
    .map((file) => file.slice(process.cwd().length + 1))
  t.true(callers.includes('src/primitives/keystore/index.ts'), 'the scan sees the explicit backup API')
  t.deepEqual(callers.filter((file) => file !== 'src/primitives/keystore/index.ts' && !file.startsWith('src/ca/')), [])
})

test('every Signer method in the generated binding types carries its own documentation', (t) => {
  const types = readFileSync(new URL('../binding.d.ts', import.meta.url), 'utf8')
  const body = /export declare class Signer \{([\s\S]*?)\n\}/.exec(types)?.[1] ?? ''
  const documented = new Map<string, string>()
  for (const [, doc, member] of body.matchAll(/\/\*\*([\s\S]*?)\*\/\n\s*([^\n]+)/g)) documented.set(member!.trim(), doc!)
  t.true(documented.size >= 8, 'the Signer class was found')
  for (const line of body.split('\n').map((l) => l.trim()).filter((l) => /^(static |get )?[a-zA-Z]+\(/.test(l))) {
    t.true(documented.has(line), `${line} has a doc comment`)
  }
  const doc = (name: string) => [...documented].find(([member]) => member.startsWith(`${name}(`))?.[1] ?? ''
  t.regex(doc('buildCsr'), /CSR/)
  t.notRegex(doc('proveFor'), /CSR/, 'proveFor documents proving possession only')
})
