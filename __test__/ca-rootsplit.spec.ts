// The root key does not live on the gateway (issue 10 §5): an offline root directory signs the
// site CA from the gateway's CSR, and the gateway's CA directory holds, and unlocks, no root key.
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { CaService, RootDirectory } from '../src/ca/index.js'
import { DeviceIdentity } from '../src/identity/index.js'
import { buildCsr, CertificateAuthority, generateP256Key, inspectCertificate, Keystore, RevocationSet, TrustStore, verifyPeer } from '../src/index.js'
import { enrollRequestFor } from '../src/protocol/enroll.js'
import { serveCa } from './helpers/ca-site.js'
import { startSwtpm, tpmTestSerial } from './helpers/swtpm.js'

const run = promisify(execFile)
const CLI = join(process.cwd(), 'dist/cli/main.js')

interface Failed {
  code: number
  stdout: string
  stderr: string
}

/** Runs the CLI; a failure resolves to its exit code and output. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Failed> {
  return run('node', [CLI, ...args], { env: { ...process.env, ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: Failed) => error,
  )
}

function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-rootsplit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The whole split through the CLI: root R offline, gateway CA directory D. */
async function splitCa(t: ExecutionContext, siteTenants: string[] = [], rootTenants = siteTenants) {
  const dir = scratch(t)
  const root = join(dir, 'root')
  const ca = join(dir, 'ca')
  const init = await cli(['ca', 'root', 'init', '--dir', root, '--name', 'Acme', '--org', 'Acme'])
  t.is(init.code, 0, init.stderr)
  const csr = await cli(['ca', 'site', 'csr', '--dir', ca, '--name', 'Hotel One', ...siteTenants.flatMap((x) => ['--tenant', x])])
  t.is(csr.code, 0, csr.stderr)
  t.is(readFileSync(join(ca, 'site.csr'), 'utf8'), csr.stdout)
  const signed = await cli(['ca', 'root', 'sign', '--dir', root, '--csr', join(ca, 'site.csr'), ...rootTenants.flatMap((x) => ['--tenant', x])])
  t.is(signed.code, 0, signed.stderr)
  writeFileSync(join(dir, 'chain.pem'), signed.stdout)
  return { dir, root, ca, chain: join(dir, 'chain.pem'), fingerprint: JSON.parse(init.stdout).fingerprint as string }
}

/** Every file under `dir`. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

test('the split through the CLI: no file of the gateway directory holds or unlocks the root key, and enroll, revoke, crl and verify-peer work with it', async (t) => {
  const { root, ca, chain, fingerprint } = await splitCa(t, ['hotel-1'])
  const installed = await cli(['ca', 'site', 'install', '--dir', ca, '--chain', chain])
  t.is(installed.code, 0, installed.stderr)
  t.like(JSON.parse(installed.stdout), { dir: ca, trust: join(ca, 'trust.pem') })

  // The root key, as the offline root holds it: its keystore file, the passphrase that unlocks it, its public key.
  const rootPassphrase = readFileSync(join(root, 'passphrase'), 'utf8').trim()
  const rootKeystore = readFileSync(join(root, 'root-key.ztks'))
  const rootPublic = (await Keystore.open(join(root, 'root-key.ztks'), rootPassphrase)).publicKey('root-ca')
  const caPassphrase = readFileSync(join(ca, 'passphrase'), 'utf8').trim()
  t.false(existsSync(join(ca, 'root-key.ztks')))
  for (const file of files(ca)) {
    const bytes = readFileSync(file)
    t.false(bytes.includes(rootKeystore.subarray(0, 64)), `${file} holds the root keystore`)
    t.false(bytes.includes(Buffer.from(rootPassphrase)), `${file} holds the root passphrase`)
    t.false(bytes.includes(rootPublic) && file.endsWith('.ztks'), `${file} is a keystore with the root's key`)
    // Every keystore the directory's own passphrase opens holds only the site key.
    const opened = await Keystore.open(file, caPassphrase).catch(() => undefined)
    for (const entry of opened?.entries() ?? []) t.false(opened!.publicKey(entry.name).equals(rootPublic), `${file} unlocks the root key`)
  }
  t.true(files(ca).some((f) => f.endsWith('site-key.ztks')))

  // The gateway's CA works end to end: token (pinning the offline root), enroll over TLS, verify, revoke, CRL.
  t.is((await cli(['ca', 'fingerprint', '--dir', ca])).stdout.trim(), fingerprint)
  const service = await CaService.open({ dir: ca })
  t.teardown(() => service.close())
  const url = await serveCa(t, service)
  const token = (await cli(['ca', 'token', '--dir', ca, '--device', 'tablet-7', '--tenant', 'hotel-1'])).stdout.trim()
  const device = await DeviceIdentity.enroll({ url, token, dir: join(ca, '..', 'tablet-7'), passphrase: 'pw', rootFingerprint: fingerprint })
  t.like(inspectCertificate(device.certificatePem), { deviceId: 'tablet-7', tenant: 'hotel-1' })
  const certFile = join(ca, '..', 'tablet-7', 'cert.pem')
  t.like(JSON.parse((await cli(['verify-peer', '--dir', ca, '--cert', certFile, '--tenant', 'hotel-1'])).stdout), { deviceId: 'tablet-7' })
  t.is((await cli(['ca', 'token', '--dir', ca, '--device', 'x', '--tenant', 'hotel-2'])).code, 1, 'the root bound the site CA to hotel-1')
  const revoked = await cli(['ca', 'revoke', '--dir', ca, '--device', 'tablet-7'])
  t.is(JSON.parse(revoked.stdout).revoked.length, 1)
  t.regex((await cli(['ca', 'crl', '--dir', ca])).stdout, /BEGIN X509 CRL/)
  t.like(JSON.parse((await cli(['verify-peer', '--dir', ca, '--cert', certFile])).stdout), { code: 'ERR_CERT_REVOKED' })
})

test('attack: a copy of the gateway CA directory, passphrase included, cannot issue a site CA or stand in for the root', async (t) => {
  const { dir, ca, chain } = await splitCa(t)
  t.is((await cli(['ca', 'site', 'install', '--dir', ca, '--chain', chain])).code, 0)
  // The thief unlocks everything the directory holds: the site CA key alone.
  const keys = await Keystore.open(join(ca, 'site-key.ztks'), readFileSync(join(ca, 'passphrase'), 'utf8').trim())
  t.deepEqual(keys.entries().map((e) => e.name), ['site-ca'])
  const key = keys.exportPrivateKey('site-ca')
  const stolen = CertificateAuthority.load(readFileSync(join(ca, 'site.pem'), 'utf8'), key)
  key.fill(0)
  const rogueKey = generateP256Key()
  const rogueCsr = await Keystore.create(join(dir, 'rogue.ztks'), 'x').then((k) => {
    k.import('k', 'ecdsa-p256', rogueKey)
    return k.signer('k').buildCaCsr('Rogue Site CA')
  })
  t.throws(() => stolen.signSiteCa(rogueCsr, { commonName: 'Rogue Site CA', organisation: 'Acme' }), { code: 'ERR_NOT_CA' })
  t.throws(() => stolen.createSiteCa({ commonName: 'Rogue Site CA', organisation: 'Acme' }), { code: 'ERR_NOT_CA' })
  // Nor can the CLI, pointed at the gateway directory as if it were the root.
  writeFileSync(join(dir, 'rogue.csr'), rogueCsr)
  const signed = await cli(['ca', 'root', 'sign', '--dir', ca, '--csr', join(dir, 'rogue.csr')])
  t.is(signed.code, 1)
  t.like(JSON.parse(signed.stderr), { code: 'ERR_NOT_FOUND' })
  // A device certificate the stolen site CA issues is all it can make; a CA-shaped one from the
  // thief's own root does not chain to the pinned root.
  const trust = TrustStore.fromPem(readFileSync(join(ca, 'trust.pem'), 'utf8'))
  const own = CertificateAuthority.createRoot({ commonName: 'Acme Root CA', organisation: 'Acme' })
  const rogueSite = CertificateAuthority.load(own.certificatePem, own.privateKey).signSiteCa(rogueCsr, { commonName: 'Rogue Site CA', organisation: 'Acme' })
  const rogue = CertificateAuthority.load(rogueSite.pem, rogueKey)
  t.throws(() => rogue.checkSiteUnder(trust), { code: 'ERR_CHAIN' })
  const leaf = rogue.issue(buildCsr(generateP256Key(), 'd', 't'), { deviceId: 'gw-1', tenant: 'hotel-1' })
  t.throws(() => verifyPeer(leaf.pem + rogueSite.pem, trust, new RevocationSet()), { code: 'ERR_CHAIN' })
})

test('attack: a site CSR asking for another name, pathLen 5, other name constraints, a SAN and more key usages gets the root policy only', async (t) => {
  const dir = scratch(t)
  const root = join(dir, 'root')
  t.is((await cli(['ca', 'root', 'init', '--dir', root, '--name', 'Acme'])).code, 0)
  await run('openssl', [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'greedy.csr'),
    '-subj', '/O=Evil/OU=hotel-2/CN=Evil Site CA',
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:5',
    '-addext', 'nameConstraints=permitted;URI:.evil.example',
    '-addext', 'subjectAltName=URI:ztmesh://hotel-2/gw-1',
    '-addext', 'keyUsage=critical,digitalSignature,keyCertSign,cRLSign',
    '-addext', 'extendedKeyUsage=serverAuth',
  ])
  const signed = await cli(['ca', 'root', 'sign', '--dir', root, '--csr', join(dir, 'greedy.csr'), '--tenant', 'hotel-1', '--name', 'Hotel One Site CA'])
  t.is(signed.code, 0, signed.stderr)
  writeFileSync(join(dir, 'chain.pem'), signed.stdout)
  const text = (await run('openssl', ['x509', '-in', join(dir, 'chain.pem'), '-noout', '-text'])).stdout
  t.regex(text, /Subject: O ?= ?Acme, CN ?= ?Hotel One Site CA/)
  t.regex(text, /CA:TRUE, pathlen:0/)
  t.regex(text, /Certificate Sign, CRL Sign/)
  t.notRegex(text, /Digital Signature|Subject Alternative Name|Extended Key Usage|evil|Evil|hotel-2/)
  t.regex(text, /Permitted:[\s\S]*hotel-1/)
  // Its key is the CSR's, and it chains to the root.
  const site = inspectCertificate(signed.stdout)
  const key = (await run('openssl', ['pkey', '-in', join(dir, 'k.pem'), '-pubout', '-outform', 'DER'], { encoding: 'buffer' })).stdout
  t.is(site.spkiSha256, createHash('sha256').update(key).digest('hex'))
  t.true(site.isCa)
})

test('site install refuses a chain that is not for its key, not under a root, or not bound to the tenants it asked for', async (t) => {
  const { dir, root, ca, chain } = await splitCa(t, ['hotel-1'], ['hotel-2'])
  const install = async (pem: string) => {
    writeFileSync(join(dir, 'try.pem'), pem)
    const result = await cli(['ca', 'site', 'install', '--dir', ca, '--chain', join(dir, 'try.pem')])
    t.is(result.code, 1)
    return JSON.parse(result.stderr) as { code: string }
  }
  const [sitePem, rootPem] = readFileSync(chain, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)
  t.like(await install(readFileSync(chain, 'utf8')), { code: 'ERR_NAME_CONSTRAINT' }, 'asked for hotel-1, bound to hotel-2')
  t.like(await install(sitePem!), { code: 'ERR_CHAIN' }, 'the root is missing')
  const other = CertificateAuthority.createRoot({ commonName: 'Other Root CA', organisation: 'Acme' })
  t.like(await install(sitePem! + other.certificatePem), { code: 'ERR_CHAIN' }, 'another root')
  t.like(await install(rootPem! + rootPem!), { code: 'ERR_KEY_MISMATCH' }, 'the root is no site CA for this key')
  // A site CA the root signed for another key.
  const elsewhere = new RootDirectory(root)
  const otherKey = await Keystore.create(join(dir, 'other.ztks'), 'x')
  otherKey.generate('k', 'ecdsa-p256')
  const foreign = await elsewhere.signSite(otherKey.signer('k').buildCaCsr('Other Site CA'), { tenants: ['hotel-1'] })
  t.like(await install(foreign.chain), { code: 'ERR_KEY_MISMATCH' })
  t.false(existsSync(join(ca, 'site.pem')))
  t.false(existsSync(join(ca, 'registry.db')))
})

test('the root CRL, signed offline, revokes a site CA: its devices are refused; numbers only go up', async (t) => {
  const { root, ca, chain } = await splitCa(t)
  t.is((await cli(['ca', 'site', 'install', '--dir', ca, '--chain', chain])).code, 0)
  const service = await CaService.open({ dir: ca })
  t.teardown(() => service.close())
  const { token } = service.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  const device = service.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), 'gw-1', 'hotel-1')), 'test')
  const trust = TrustStore.fromPem(service.trustBundle())
  const rootPem = readFileSync(join(root, 'root.pem'), 'utf8')
  const siteSerial = inspectCertificate(readFileSync(join(ca, 'site.pem'), 'utf8')).serial
  const first = await cli(['ca', 'root', 'crl', '--dir', root])
  t.is(first.code, 0, first.stderr)
  const clean = new RevocationSet()
  clean.addCrl(first.stdout, rootPem, trust)
  t.like(verifyPeer(device.certificate + device.caChain, trust, clean), { deviceId: 'gw-1' })
  const unknown = await cli(['ca', 'root', 'crl', '--dir', root, '--revoke-site', 'abcdef'])
  t.like(JSON.parse(unknown.stderr), { code: 'ERR_NOT_FOUND' })
  const second = await cli(['ca', 'root', 'crl', '--dir', root, '--revoke-site', siteSerial!])
  t.is(second.code, 0, second.stderr)
  const revocations = new RevocationSet()
  revocations.addCrl(second.stdout, rootPem, trust)
  t.throws(() => verifyPeer(device.certificate + device.caChain, trust, revocations), { code: 'ERR_CERT_REVOKED' })
  // An older root CRL after a newer one is a rollback, refused.
  t.throws(() => revocations.addCrl(first.stdout, rootPem, trust), { code: 'ERR_REVOCATION_ROLLBACK' })
  // The revocation stays in later CRLs.
  const third = await cli(['ca', 'root', 'crl', '--dir', root])
  const later = new RevocationSet()
  later.addCrl(third.stdout, rootPem, trust)
  t.throws(() => verifyPeer(device.certificate + device.caChain, trust, later), { code: 'ERR_CERT_REVOKED' })
  t.true(readFileSync(join(root, 'root.crl'), 'utf8') === third.stdout || third.stdout.startsWith(readFileSync(join(root, 'root.crl'), 'utf8')))
})

test('ca site root-crl brings the offline root CRL to the gateway: verify-peer refuses the revoked site CA; an older or foreign CRL is refused', async (t) => {
  const { dir, root, ca, chain } = await splitCa(t)
  t.is((await cli(['ca', 'site', 'install', '--dir', ca, '--chain', chain])).code, 0)
  const token = (await cli(['ca', 'token', '--dir', ca, '--device', 'gw-1', '--tenant', 'hotel-1'])).stdout.trim()
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'csr.pem'), '-subj', '/CN=gw-1'])
  writeFileSync(join(dir, 'device.pem'), (await cli(['ca', 'sign', '--dir', ca, '--csr', join(dir, 'csr.pem'), '--token', token])).stdout)
  const verify = async () => JSON.parse((await cli(['verify-peer', '--dir', ca, '--cert', join(dir, 'device.pem')])).stdout) as { code?: string; deviceId?: string }
  const crlFile = async (name: string, args: string[]) => {
    const crl = await cli(['ca', 'root', 'crl', '--dir', root, ...args])
    t.is(crl.code, 0, crl.stderr)
    writeFileSync(join(dir, name), crl.stdout)
    return join(dir, name)
  }
  const first = await crlFile('first.crl', [])
  t.is((await cli(['ca', 'site', 'root-crl', '--dir', ca, '--crl', first])).code, 0)
  t.like(await verify(), { deviceId: 'gw-1' })
  const serial = inspectCertificate(readFileSync(join(ca, 'site.pem'), 'utf8')).serial!
  const revoking = await crlFile('revoking.crl', ['--revoke-site', serial])
  t.is((await cli(['ca', 'site', 'root-crl', '--dir', ca, '--crl', revoking])).code, 0)
  t.like(await verify(), { code: 'ERR_CERT_REVOKED' })
  // Putting the older CRL back, to un-revoke the site CA, is a rollback.
  const rollback = await cli(['ca', 'site', 'root-crl', '--dir', ca, '--crl', first])
  t.like(JSON.parse(rollback.stderr), { code: 'ERR_REVOCATION_ROLLBACK' })
  // A CRL from another root is not this root's.
  const other = join(dir, 'other')
  t.is((await cli(['ca', 'root', 'init', '--dir', other, '--name', 'Acme'])).code, 0)
  const foreign = await cli(['ca', 'root', 'crl', '--dir', other, '--days', '2'])
  writeFileSync(join(dir, 'foreign.crl'), foreign.stdout)
  const refused = await cli(['ca', 'site', 'root-crl', '--dir', ca, '--crl', join(dir, 'foreign.crl')])
  t.is(refused.code, 1)
  t.like(JSON.parse(refused.stderr), { code: 'ERR_REVOCATION_SIGNATURE' })
  t.like(await verify(), { code: 'ERR_CERT_REVOKED' })
  // The running service applies it too (rotations and certificate-authenticated requests are
  // decided under its revocations): the revoked site CA's devices are refused there as well.
  const service = await CaService.open({ dir: ca })
  t.teardown(() => service.close())
  const device = readFileSync(join(dir, 'device.pem'), 'utf8')
  t.throws(() => verifyPeer(device, TrustStore.fromPem(service.trustBundle()), service.revocations()), { code: 'ERR_CERT_REVOKED' })
})

test('ca init still works as the one-machine shortcut, and warns that the root key is on this machine', async (t) => {
  const dir = scratch(t)
  const init = await cli(['ca', 'init', '--dir', join(dir, 'ca'), '--name', 'Demo'])
  t.is(init.code, 0)
  t.regex(init.stderr, /warning: the root key is on this machine/)
  t.true(existsSync(join(dir, 'ca', 'root-key.ztks')))
})

test('a root passphrase from ZTMESH_ROOT_PASSPHRASE leaves no passphrase file, and the wrong one cannot sign', async (t) => {
  const dir = scratch(t)
  const root = join(dir, 'root')
  const env = { ZTMESH_ROOT_PASSPHRASE: 'offline secret' }
  t.is((await cli(['ca', 'root', 'init', '--dir', root, '--name', 'Acme'], env)).code, 0)
  t.false(existsSync(join(root, 'passphrase')))
  t.is((await cli(['ca', 'site', 'csr', '--dir', join(dir, 'ca'), '--name', 'Hotel'])).code, 0)
  const wrong = await cli(['ca', 'root', 'sign', '--dir', root, '--csr', join(dir, 'ca', 'site.csr')], { ZTMESH_ROOT_PASSPHRASE: 'guess' })
  t.like(JSON.parse(wrong.stderr), { code: 'ERR_KEYSTORE_PASSPHRASE' })
  const none = await cli(['ca', 'root', 'sign', '--dir', root, '--csr', join(dir, 'ca', 'site.csr')])
  t.like(JSON.parse(none.stderr), { code: 'ERR_KEYSTORE_PASSPHRASE' })
  t.is((await cli(['ca', 'root', 'sign', '--dir', root, '--csr', join(dir, 'ca', 'site.csr')], env)).code, 0)
})

tpmTestSerial('ca site csr --tpm seals the site passphrase to the TPM: no passphrase file, the CA opens on its TPM, a copy on another TPM cannot (ERR_TPM_KEY)', async (t) => {
  const [gatewayTpm, otherTpm] = [await startSwtpm(t), await startSwtpm(t)]
  const dir = scratch(t)
  const ca = join(dir, 'ca')
  const csr = await cli(['ca', 'site', 'csr', '--dir', ca, '--name', 'Hotel One', '--tpm', '--tcti', gatewayTpm.tcti])
  t.is(csr.code, 0, csr.stderr)
  t.false(existsSync(join(ca, 'passphrase')))
  t.true(existsSync(join(ca, 'passphrase.sealed')))
  const root = await RootDirectory.create({ dir: join(dir, 'root'), name: 'Acme' })
  const { chain } = await root.signSite(csr.stdout)
  await CaService.install({ dir: ca, chainPem: chain })
  t.false(existsSync(join(ca, 'passphrase')))
  // The gateway opens its CA through the TPM and issues.
  const service = await CaService.open({ dir: ca })
  const { token } = service.createToken({ deviceId: 'gw-1', tenant: 'hotel-1' })
  t.like(inspectCertificate(service.enroll(enrollRequestFor(token, buildCsr(generateP256Key(), 'gw-1', 'hotel-1')), 'test').certificate), { deviceId: 'gw-1' })
  service.close()
  // A copy of the directory, on a machine with another TPM, unlocks nothing.
  const copy = join(dir, 'copy')
  cpSync(ca, copy, { recursive: true })
  await t.throwsAsync(CaService.open({ dir: copy, tcti: otherTpm.tcti }), { code: 'ERR_TPM_KEY' })
  // Nor does guessing through the environment: the sealed passphrase is the only one.
  process.env.ZTMESH_CA_PASSPHRASE = 'guess'
  t.teardown(() => delete process.env.ZTMESH_CA_PASSPHRASE)
  await t.throwsAsync(CaService.open({ dir: copy, tcti: otherTpm.tcti }), { code: 'ERR_TPM_KEY' })
})
