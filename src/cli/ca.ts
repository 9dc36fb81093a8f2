/** `ztmesh ca …`, `ztmesh verify-peer`: the operator's side of the local CA. */

import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { CaDirectory, CaService, RootDirectory } from '../ca/index.js'
import { Reattestor, type NodeEndpoint } from '../attestation/verifier/reattest.js'
import { createEnrollmentServer } from '../ca/server.js'
import { DeviceIdentity } from '../identity/index.js'
import { enrollRequestFor } from '../protocol/enroll.js'
import { parseListen } from './listen.js'
import { createError, ZtError } from '../errors.js'
import { inspectCertificate, REVOCATION_REASONS, type RevocationReason } from '../primitives/pki/index.js'

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value === '') throw createError('ERR_INVALID_ARG', `--${name} is required`)
  return value
}

/** A JSON file an operator wrote; `ERR_INVALID_ARG` if it is missing or not JSON. */
function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown
  } catch (error) {
    throw createError('ERR_INVALID_ARG', `${file} is not a readable JSON file`, { cause: error })
  }
}

/** A text file an operator named; `ERR_INVALID_ARG` if it cannot be read. */
function readTextFile(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    throw createError('ERR_INVALID_ARG', `${file} is not a readable file`, { cause: error })
  }
}

async function withCa<T>(dir: string, run: (ca: CaService) => T): Promise<T> {
  const ca = await CaService.open({ dir })
  try {
    return run(ca)
  } finally {
    ca.close()
  }
}

const CA_COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  async init(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' }, name: { type: 'string' }, org: { type: 'string' }, tenant: { type: 'string', multiple: true } }, strict: true })
    const dir = required(values, 'dir')
    await CaService.init({ dir, name: required(values, 'name'), ...(values.org !== undefined && { organisation: values.org }), ...(values.tenant !== undefined && { tenants: values.tenant }) })
    process.stderr.write(`warning: the root key is on this machine (${join(dir, 'root-key.ztks')}, unlocked by the same passphrase as the site key). ca init is for tests and demos; a gateway uses ca root init on an offline machine, ca site csr, ca root sign and ca site install.\n`)
    out(JSON.stringify({ dir, trust: join(dir, 'trust.pem'), siteCa: join(dir, 'site.pem') }))
  },
  /**
   * The offline root: `ca root init --dir R --name NAME [--org ORG]`, `ca root sign --dir R --csr FILE
   * [--tenant T]... [--days N] [--name CN]` (prints the chain for `ca site install`), `ca root crl
   * --dir R [--revoke-site SERIAL] [--days N]` (prints the root CRL). The passphrase is
   * ZTMESH_ROOT_PASSPHRASE, or R/passphrase (made by init).
   */
  async root(args) {
    const [sub, ...rest] = args
    if (sub === 'init') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' }, name: { type: 'string' }, org: { type: 'string' } }, strict: true })
      const root = await RootDirectory.create({ dir: required(values, 'dir'), name: required(values, 'name'), ...(values.org !== undefined && { organisation: values.org }) })
      out(JSON.stringify({ dir: root.dir, root: join(root.dir, 'root.pem'), fingerprint: inspectCertificate(root.rootPem()).spkiSha256 }))
    } else if (sub === 'sign') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' }, csr: { type: 'string' }, tenant: { type: 'string', multiple: true }, days: { type: 'string' }, name: { type: 'string' } }, strict: true })
      const csr = readFileSync(required(values, 'csr'), 'utf8')
      const signed = await new RootDirectory(required(values, 'dir')).signSite(csr, {
        ...(values.tenant !== undefined && { tenants: values.tenant }),
        ...(values.days !== undefined && { days: Number(values.days) }),
        ...(values.name !== undefined && { commonName: values.name }),
      })
      out(signed.chain)
    } else if (sub === 'crl') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' }, 'revoke-site': { type: 'string' }, days: { type: 'string' } }, strict: true })
      const root = new RootDirectory(required(values, 'dir'))
      out(await root.crl({ ...(values['revoke-site'] !== undefined && { revokeSite: values['revoke-site'] }), ...(values.days !== undefined && { days: Number(values.days) }) }))
    } else {
      throw createError('ERR_INVALID_ARG', 'usage: ztmesh ca root <init|sign|crl> [options]')
    }
  },
  /**
   * The gateway's side of the split: `ca site csr --dir D --name NAME [--org ORG] [--tenant T]...
   * [--tpm [--tcti T] [--seal-pcrs 7]]` makes the site CA key and prints its CSR (also in
   * D/site.csr); with `--tpm` its keystore's passphrase is sealed to the TPM, not written beside it; `ca site install --dir D --chain
   * FILE` checks the chain the root signed and finishes the CA; `ca site root-crl --dir D --crl FILE`
   * checks and stores the root's CRL, which verify-peer then applies. D never holds the root key.
   */
  async site(args) {
    const [sub, ...rest] = args
    if (sub === 'csr') {
      const { values } = parseArgs({
        args: rest,
        options: { dir: { type: 'string' }, name: { type: 'string' }, org: { type: 'string' }, tenant: { type: 'string', multiple: true }, tpm: { type: 'boolean' }, tcti: { type: 'string' }, 'seal-pcrs': { type: 'string' } },
        strict: true,
      })
      if (values.tpm !== true && (values.tcti !== undefined || values['seal-pcrs'] !== undefined)) throw createError('ERR_INVALID_ARG', '--tcti and --seal-pcrs go with --tpm')
      const pcrs = values['seal-pcrs']?.split(',').map(Number)
      if (pcrs !== undefined && !pcrs.every((pcr) => Number.isInteger(pcr) && pcr >= 0 && pcr <= 23)) throw createError('ERR_INVALID_ARG', '--seal-pcrs is a list of PCR indexes, 0 to 23: 7 or 0,7')
      const sealTo = values.tpm === true ? { ...(values.tcti !== undefined && { tcti: values.tcti }), ...(pcrs !== undefined && { pcrs }) } : undefined
      out(await CaService.createSiteKey({ dir: required(values, 'dir'), name: required(values, 'name'), ...(values.org !== undefined && { organisation: values.org }), ...(values.tenant !== undefined && { tenants: values.tenant }), ...(sealTo !== undefined && { sealTo }) }))
    } else if (sub === 'install') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' }, chain: { type: 'string' } }, strict: true })
      const dir = required(values, 'dir')
      await CaService.install({ dir, chainPem: readFileSync(required(values, 'chain'), 'utf8') })
      out(JSON.stringify({ dir, trust: join(dir, 'trust.pem'), siteCa: join(dir, 'site.pem') }))
    } else if (sub === 'root-crl') {
      const { values } = parseArgs({ args: rest, options: { dir: { type: 'string' }, crl: { type: 'string' } }, strict: true })
      const dir = required(values, 'dir')
      new CaDirectory(dir).installRootCrl(readFileSync(required(values, 'crl'), 'utf8'))
      out(JSON.stringify({ rootCrl: join(dir, 'root.crl') }))
    } else {
      throw createError('ERR_INVALID_ARG', 'usage: ztmesh ca site <csr|install|root-crl> [options]')
    }
  },
  async trust(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' } }, strict: true })
    out(new CaDirectory(required(values, 'dir')).trustBundle())
  },
  /** `ca fingerprint --dir D`: the root's SPKI SHA-256 (hex), for `enroll --root-fingerprint`. */
  async fingerprint(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' } }, strict: true })
    out(await withCa(required(values, 'dir'), (ca) => ca.rootFingerprint()))
  },
  async token(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' }, device: { type: 'string' }, tenant: { type: 'string' }, ttl: { type: 'string' }, roles: { type: 'string' } }, strict: true })
    const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl)
    const roles = values.roles === undefined ? undefined : values.roles.split(',').filter((role) => role !== '')
    const { token } = await withCa(required(values, 'dir'), (ca) =>
      ca.createToken({ deviceId: required(values, 'device'), tenant: required(values, 'tenant'), ...(ttlSeconds !== undefined && { ttlSeconds }), ...(roles !== undefined && { roles }) }),
    )
    out(token)
  },
  async sign(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' }, csr: { type: 'string' }, token: { type: 'string' } }, strict: true })
    const csr = readFileSync(required(values, 'csr'), 'utf8')
    const enrollment = await withCa(required(values, 'dir'), (ca) => ca.enroll(enrollRequestFor(required(values, 'token'), csr), 'cli'))
    out(enrollment.certificate + enrollment.caChain)
  },
  /**
   * `ca revoke --dir D (--serial S | --spki SHA256 | --device ID [--tenant T]) [--reason R]`: a
   * serial or a key revokes its whole live lineage (the certificates rotated from it too);
   * prints `{revoked: [serials]}` and publishes the CRL.
   */
  async revoke(args) {
    const { values } = parseArgs({
      args,
      options: { dir: { type: 'string' }, serial: { type: 'string' }, spki: { type: 'string' }, device: { type: 'string' }, tenant: { type: 'string' }, reason: { type: 'string' } },
      strict: true,
    })
    if ([values.serial, values.spki, values.device].filter((v) => v !== undefined).length !== 1) throw createError('ERR_INVALID_ARG', 'give exactly one of --serial, --spki and --device')
    const reason = (values.reason ?? 'unspecified') as RevocationReason
    if (!Object.hasOwn(REVOCATION_REASONS, reason)) throw createError('ERR_INVALID_ARG', `--reason must be one of ${Object.keys(REVOCATION_REASONS).join(', ')}`)
    const revoked = await withCa(required(values, 'dir'), (ca) => {
      const target = {
        ...(values.serial !== undefined && { serial: values.serial }),
        ...(values.spki !== undefined && { spkiSha256: values.spki }),
        ...(values.device !== undefined && { device: values.device }),
        ...(values.tenant !== undefined && { tenant: values.tenant }),
      }
      const serials = ca.revoke(target, reason)
      ca.crl() // publish at once: verify-peer and GET /v1/crl see it
      return serials
    })
    out(JSON.stringify({ revoked }))
  },
  /** `ca serve --dir D [--listen HOST:PORT] [--rotation-overlap SECONDS]` (overlap default one day). */
  async serve(args) {
    const { values } = parseArgs({
      args,
      options: { dir: { type: 'string' }, listen: { type: 'string' }, tenant: { type: 'string' }, 'insecure-http': { type: 'boolean' }, 'rotation-overlap': { type: 'string' } },
      strict: true,
    })
    const { host, port } = parseListen(values.listen ?? '127.0.0.1:8443')
    const insecureHttp = values['insecure-http'] === true
    const tenant = insecureHttp ? values.tenant : required(values, 'tenant')
    const overlap = values['rotation-overlap']
    const service = await CaService.open({ dir: required(values, 'dir'), ...(overlap !== undefined && { rotationOverlapSeconds: Number(overlap) }) })
    const server = createEnrollmentServer({ ca: service, ...(tenant !== undefined && { tenant }), ...(insecureHttp && { insecureHttp }) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, resolve)
    })
    const address = server.address() as AddressInfo
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
    out(JSON.stringify({ listening: `${insecureHttp ? 'http' : 'https'}://${shown}:${address.port}` }))
    await new Promise<void>((resolve) => {
      const stop = () => server.close(() => resolve())
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
    service.close()
  },
  /**
   * `ca attestation --dir D [--mode off|optional|required] [--pcr-policy FILE] [--on-drift revoke|demote]
   * [--nonce-ttl SECONDS] [--max-failures N] [--max-silence SECONDS] [--ek-cas PEMFILE]`: changes
   * the options given (FILE is JSON `{"0": "hex", …}`; PEMFILE the trusted EK CA certificates, `''`
   * for none) and prints the resulting settings as JSON (the EK CAs as PEM).
   */
  async attestation(args) {
    const { values } = parseArgs({
      args,
      options: { dir: { type: 'string' }, mode: { type: 'string' }, 'pcr-policy': { type: 'string' }, 'on-drift': { type: 'string' }, 'nonce-ttl': { type: 'string' }, 'max-failures': { type: 'string' }, 'max-silence': { type: 'string' }, 'ek-cas': { type: 'string' } },
      strict: true,
    })
    const changes = {
      ...(values.mode !== undefined && { mode: values.mode }),
      ...(values['pcr-policy'] !== undefined && { pcrPolicy: readJsonFile(values['pcr-policy']) }),
      ...(values['on-drift'] !== undefined && { onDrift: values['on-drift'] }),
      ...(values['nonce-ttl'] !== undefined && { nonceTtlSeconds: Number(values['nonce-ttl']) }),
      ...(values['max-failures'] !== undefined && { maxFailures: Number(values['max-failures']) }),
      ...(values['max-silence'] !== undefined && { maxSilenceSeconds: Number(values['max-silence']) }),
      ...(values['ek-cas'] !== undefined && { ekCasPem: values['ek-cas'] === '' ? '' : readTextFile(values['ek-cas']) }),
    }
    const settings = await withCa(required(values, 'dir'), (ca) => (Object.keys(changes).length === 0 ? ca.attestationSettings() : ca.setAttestationSettings(changes)))
    out(JSON.stringify(settings))
  },
  /**
   * `ca reattest --dir D --store GW --nodes FILE [--protocol tls|noise] [--interval SECONDS]`: asks
   * each node of FILE (JSON `[{deviceId, host, port, tenant?}]`, each running
   * `ztmesh attest-responder`) for a fresh quote, as the gateway enrolled in GW, and applies the
   * CA's decisions (audited). Prints the results as JSON; with `--interval`, then goes on every
   * SECONDS until SIGINT or SIGTERM (later results: the audit log and `attestationStatus`).
   */
  async reattest(args) {
    const { values } = parseArgs({
      args,
      options: { dir: { type: 'string' }, store: { type: 'string' }, nodes: { type: 'string' }, protocol: { type: 'string' }, interval: { type: 'string' } },
      strict: true,
    })
    const protocol = values.protocol ?? 'tls'
    if (protocol !== 'tls' && protocol !== 'noise') throw createError('ERR_INVALID_ARG', '--protocol must be tls or noise')
    const nodes = readJsonFile(required(values, 'nodes'))
    if (!Array.isArray(nodes)) throw createError('ERR_INVALID_ARG', '--nodes is a JSON array of {deviceId, host, port, tenant?}')
    const interval = values.interval === undefined ? undefined : Number(values.interval)
    if (interval !== undefined && !(Number.isInteger(interval) && interval >= 1 && interval <= 86_400)) throw createError('ERR_INVALID_ARG', '--interval is a whole number of seconds, 1 to 86400')
    const gateway = await DeviceIdentity.open(required(values, 'store'), process.env.ZTMESH_PASSPHRASE || undefined)
    const ca = await CaService.open({ dir: required(values, 'dir') })
    try {
      const reattestor = new Reattestor({ ca, nodes: nodes as NodeEndpoint[], protocol, identity: gateway.credential() })
      out(JSON.stringify(await reattestor.runOnce()))
      if (interval === undefined) return
      reattestor.start({ intervalMs: interval * 1000 })
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await reattestor.stop()
    } finally {
      ca.close()
    }
  },
  async crl(args) {
    const { values } = parseArgs({ args, options: { dir: { type: 'string' } }, strict: true })
    out(await withCa(required(values, 'dir'), (ca) => ca.crl().pem))
  },
}

/**
 * `ztmesh enroll --url URL --token T --store DIR [--root-fingerprint HEX] [--device ID] [--tenant T]
 * [--keystore tpm|software|auto] [--tcti T] [--attest auto|require|off] [--insecure-http]`: creates the device key in
 * the TPM or in DIR's keystore (passphrase from ZTMESH_PASSPHRASE, not needed for the TPM), enrolls
 * (with a TPM quote when the CA takes one), checks the certificate against the root the token pins
 * (and `--root-fingerprint`, when given, must be that root), stores it. Enrolling again in the
 * same DIR replaces the identity. The URL is `https:`: the server must prove it is the CA API of
 * the token's tenant under the pinned root before anything is sent; `--insecure-http` (tests
 * only, with a warning) allows `http:`.
 */
export async function enrollCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      'root-fingerprint': { type: 'string' },
      store: { type: 'string' },
      device: { type: 'string' },
      tenant: { type: 'string' },
      keystore: { type: 'string' },
      tcti: { type: 'string' },
      attest: { type: 'string' },
      'insecure-http': { type: 'boolean' },
    },
    strict: true,
  })
  const insecureHttp = values['insecure-http'] === true
  if (insecureHttp) process.stderr.write('warning: --insecure-http: the CA is not authenticated and the request travels in the clear; for tests only\n')
  const keystore = values.keystore ?? 'auto'
  if (keystore !== 'tpm' && keystore !== 'software' && keystore !== 'auto') throw createError('ERR_INVALID_ARG', '--keystore must be tpm, software or auto')
  const attestation = values.attest ?? 'auto'
  if (attestation !== 'auto' && attestation !== 'require' && attestation !== 'off') throw createError('ERR_INVALID_ARG', '--attest must be auto, require or off')
  const passphrase = process.env.ZTMESH_PASSPHRASE
  const identity = await DeviceIdentity.enroll({
    url: required(values, 'url'),
    token: required(values, 'token'),
    dir: required(values, 'store'),
    keystore,
    ...(values['root-fingerprint'] !== undefined && { rootFingerprint: values['root-fingerprint'] }),
    attestation,
    ...(passphrase !== undefined && passphrase !== '' && { passphrase }),
    ...(values.tcti !== undefined && { tcti: values.tcti }),
    ...(values.device !== undefined && { deviceId: values.device }),
    ...(values.tenant !== undefined && { tenant: values.tenant }),
    ...(insecureHttp && { insecureHttp }),
  })
  // The serial in the core's one spelling, the same as verify-peer and the registry print.
  const cert = inspectCertificate(identity.certificatePem)
  out(
    JSON.stringify({
      store: identity.dir,
      serial: cert.serial,
      deviceId: cert.deviceId,
      tenant: cert.tenant,
      roles: cert.roles,
      notAfter: new Date(cert.notAfterMs).toISOString(),
      keystore: identity.keystore,
      attested: identity.attested,
    }),
  )
}

/** `ztmesh ca <init|root|site|trust|token|sign|serve|revoke|attestation|crl> …` */
export async function ca(args: string[]): Promise<void> {
  const [sub, ...rest] = args
  const run = sub === undefined ? undefined : CA_COMMANDS[sub]
  if (run === undefined) throw createError('ERR_INVALID_ARG', `usage: ztmesh ca <${Object.keys(CA_COMMANDS).join('|')}> [options]`)
  await run(rest)
}

/**
 * `ztmesh verify-peer --dir D --cert FILE [--tenant T] [--device ID]`: prints the PeerIdentity
 * as JSON, or fails with `{code, message}` (exit 1). Trust comes from D/trust.pem, revocations
 * from the CA's last published CRL; no key is needed.
 */
export async function verifyPeerCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { dir: { type: 'string' }, cert: { type: 'string' }, tenant: { type: 'string' }, device: { type: 'string' } }, strict: true })
  const chain = readFileSync(required(values, 'cert'), 'utf8')
  try {
    const peer = CaService.verifyOffline(required(values, 'dir'), chain, {
      ...(values.tenant !== undefined && { expectedTenant: values.tenant }),
      ...(values.device !== undefined && { expectedDevice: values.device }),
    })
    out(JSON.stringify(peer))
  } catch (error) {
    // The verdict is the output: a refusal goes to stdout like an identity, with exit code 1.
    if (!(error instanceof ZtError)) throw error
    out(JSON.stringify({ code: error.code, message: error.message }))
    process.exitCode = 1
  }
}
