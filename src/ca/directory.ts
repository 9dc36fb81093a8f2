/**
 * The CA directory: where the certificates, keys, passphrase and registry of one site CA live,
 * and the only code that reads or writes those files.
 *
 * ```
 * D/site.pem          the site CA certificate       D/site-key.ztks   the site CA key (keystore)
 * D/root.pem          the root certificate          D/site.csr        the site CA's CSR, for the root
 * D/trust.pem         the trust bundle (the roots; two during a rollover)
 * D/registry.db       the registry                  D/passphrase      the keystore's passphrase,
 * D/admin-token       the admin credential, once                      0600, unless ZTMESH_CA_PASSPHRASE is set
 * D/site-request.json what `ca site csr` asked for (name, organisation, tenants), until installed
 * D/passphrase.sealed the keystore's passphrase sealed to the gateway's TPM (`ca site csr --tpm`),
 * D/tpm.json          in place of D/passphrase: its TCTI and PCRs
 * D/root.crl          the root CRL (revoked site CAs), brought from the offline root
 * ```
 *
 * The way to build one is the split (`docs/ca.md`): `ca site csr` makes the site key here and a
 * CSR, the offline root ({@link RootDirectory}) signs it, `ca site install` checks the chain and
 * finishes the directory. No file of D then holds or unlocks the root key. `ca init` is the
 * one-machine shortcut for tests and demos: it also writes `D/root-key.ztks`, under the same
 * passphrase, and says so.
 */

import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { createError, ZtError } from '../errors.js'
import { Keystore } from '../primitives/keystore/index.js'
import { Tpm } from '../primitives/tpm/index.js'
import { CertificateAuthority, RevocationSet, splitCertificates, TrustStore, type Signer } from '../primitives/pki/index.js'
import { writeFileAtomic } from '../storage/files.js'
import { Registry } from './registry.js'

/** What {@link CaDirectory.create} made: the registry still has to record the admin credential. */
export interface CreatedCa {
  registry: Registry
  /** The admin credential (also written to D/admin-token, 0600). */
  adminToken: string
}

/** Where the site keystore's passphrase is sealed: `ca site csr --tpm`. */
export interface SealTo {
  /** The TPM (default: TPM2TOOLS_TCTI, TCTI, /dev/tpmrm0). */
  tcti?: string
  /** The SHA-256 PCRs the passphrase is sealed to (default: 7, the secure-boot state). */
  pcrs?: number[]
}

/** The files of one site CA. */
export class CaDirectory {
  readonly dir: string
  readonly #tcti: string | undefined

  /** `tcti` names the TPM a sealed passphrase is unsealed by, in place of the one D/tpm.json names. */
  constructor(dir: string, options: { tcti?: string } = {}) {
    this.dir = dir
    this.#tcti = options.tcti
  }

  /** Whether the directory holds a CA. */
  exists(): boolean {
    return existsSync(this.#path('site.pem')) && existsSync(this.#path('registry.db'))
  }

  /**
   * The one-machine shortcut: creates a root CA (its key in D/root-key.ztks, beside the site's),
   * a site CA (bound by name constraints to `tenants` when given), the trust bundle, the admin
   * credential and an empty registry; `ERR_INVALID_ARG` if the directory already holds a CA.
   */
  async create(init: { name: string; organisation: string; tenants?: string[] }): Promise<CreatedCa> {
    this.#refuseExisting()
    const passphrase = keystorePassphrase(this.dir, CA_PASSPHRASE_ENV, true)
    const root = CertificateAuthority.createRoot({ commonName: `${init.name} Root CA`, organisation: init.organisation })
    const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: `${init.name} Site CA`, organisation: init.organisation, ...(init.tenants !== undefined && { tenants: init.tenants }) })
    try {
      const rootKeys = await Keystore.create(this.#path('root-key.ztks'), passphrase)
      rootKeys.import('root-ca', 'ecdsa-p256', root.privateKey)
      const siteKeys = await Keystore.create(this.#path('site-key.ztks'), passphrase)
      siteKeys.import(SITE_KEY, 'ecdsa-p256', site.privateKey)
    } finally {
      root.privateKey.fill(0)
      site.privateKey.fill(0)
      passphrase.fill(0)
    }
    return this.#finish(site.certificatePem, root.certificatePem)
  }

  /**
   * The gateway's half of the split: creates the site CA key (in D/site-key.ztks) and returns
   * its CSR (also written to D/site.csr) for the offline root to sign. `tenants` are what the
   * site asks for: {@link install} refuses a chain whose site CA is not bound to them.
   * `ERR_INVALID_ARG` if the directory already holds a CA or a site key.
   */
  async createSiteKey(request: SiteRequest, sealTo?: SealTo): Promise<string> {
    this.#refuseExisting()
    if (existsSync(this.#path('site-key.ztks'))) throw createError('ERR_INVALID_ARG', `${this.dir} already holds a site key: install its chain (ztmesh ca site install)`)
    const passphrase = sealTo === undefined ? keystorePassphrase(this.dir, CA_PASSPHRASE_ENV, true) : await this.#sealNewPassphrase(sealTo)
    let signer: Signer | undefined
    try {
      const keys = await Keystore.create(this.#path('site-key.ztks'), passphrase)
      keys.generate(SITE_KEY, 'ecdsa-p256')
      signer = keys.signer(SITE_KEY)
      const csr = signer.buildCaCsr(`${request.name} Site CA`)
      writeFileSync(this.#path('site.csr'), csr, { mode: 0o644 })
      writeFileAtomic(this.#path('site-request.json'), JSON.stringify(request))
      return csr
    } finally {
      signer?.close()
      passphrase.fill(0)
    }
  }

  /**
   * Finishes the site CA from the chain the root signed (site CA then root, PEM): the site CA
   * must be a CA certificate for this directory's site key (`ERR_KEY_MISMATCH`, `ERR_NOT_CA`),
   * a site CA issued by that root (`ERR_CHAIN`, or the path's code), and bound to the tenants
   * the site asked for (`ERR_NAME_CONSTRAINT`). Then writes the certificates, the trust bundle
   * (the root), the admin credential and an empty registry.
   */
  async install(chainPem: string): Promise<CreatedCa & { request: SiteRequest }> {
    this.#refuseExisting()
    const requestFile = this.#path('site-request.json')
    if (!existsSync(requestFile)) throw createError('ERR_NOT_FOUND', `${this.dir} holds no site key request (run ztmesh ca site csr)`)
    const request = JSON.parse(readFileSync(requestFile, 'utf8')) as SiteRequest
    const chain = splitCertificates(chainPem)
    const [sitePem, rootPem] = chain
    if (chain.length !== 2 || sitePem === undefined || rootPem === undefined) throw createError('ERR_CHAIN', 'the chain is the site CA then the root, two certificates')
    const site = await this.#loadSite(sitePem)
    site.checkSiteUnder(TrustStore.fromPem(rootPem))
    const refused = (request.tenants ?? []).filter((tenant) => !site.permitsTenant(tenant))
    if (refused.length > 0) throw createError('ERR_NAME_CONSTRAINT', `the site CA is not bound to tenant ${refused.join(', ')}`)
    const created = this.#finish(sitePem, rootPem)
    rmSync(requestFile)
    return { ...created, request }
  }

  /** The site CA, its key unlocked with the passphrase (the root key stays locked). */
  async siteCa(): Promise<CertificateAuthority> {
    return this.#loadSite(this.sitePem())
  }

  /** Opens the registry. */
  registry(): Registry {
    return Registry.open(this.#path('registry.db'))
  }

  /** The trust bundle (the roots), PEM; `ERR_NOT_FOUND` when the directory has none. */
  trustBundle(): string {
    const file = this.#path('trust.pem')
    if (!existsSync(file)) throw createError('ERR_NOT_FOUND', `no trust bundle at ${file}`)
    return readFileSync(file, 'utf8')
  }

  /** `chainPem` with the site CA appended when it is a lone device certificate (as devices may present it). */
  completeChain(chainPem: string): string {
    if ((chainPem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length !== 1 || !existsSync(this.#path('site.pem'))) return chainPem
    return chainPem + this.sitePem()
  }

  /**
   * Stores the root CRL (`ca root crl`, brought from the offline root) in D/root.crl, after
   * checking that this directory's root signed it (`ERR_REVOCATION_SIGNATURE`,
   * `ERR_REVOCATION_ISSUER`), that it is current (`ERR_REVOCATION_STALE`) and not older than
   * the one it replaces (`ERR_REVOCATION_ROLLBACK`).
   */
  installRootCrl(crlPem: string): void {
    const rootPem = this.rootPem()
    const trust = TrustStore.fromPem(this.trustBundle())
    const revocations = new RevocationSet()
    const previous = this.rootCrl()
    if (previous !== undefined) {
      try {
        revocations.addCrl(previous, rootPem, trust)
      } catch (error) {
        // A stale CRL is the one a new CRL replaces; anything else about it is a fault to see.
        if (!(error instanceof ZtError && error.code === 'ERR_REVOCATION_STALE')) throw error
      }
    }
    revocations.addCrl(crlPem, rootPem, trust)
    writeFileAtomic(this.#path('root.crl'), crlPem)
  }

  /** The root CRL `installRootCrl` stored, PEM; undefined before the first. */
  rootCrl(): string | undefined {
    const file = this.#path('root.crl')
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined
  }

  /** The site CA certificate, PEM. */
  sitePem(): string {
    return readFileSync(this.#path('site.pem'), 'utf8')
  }

  /** The root certificate, PEM. */
  rootPem(): string {
    return readFileSync(this.#path('root.pem'), 'utf8')
  }

  #path(name: string): string {
    return join(this.dir, name)
  }

  /** `ERR_INVALID_ARG` if the directory already holds a CA; creates it (0700) otherwise. */
  #refuseExisting(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    if (existsSync(this.#path('site.pem')) || existsSync(this.#path('registry.db'))) {
      throw createError('ERR_INVALID_ARG', `${this.dir} already holds a CA`)
    }
  }

  /** The site CA `sitePem` with the key of D/site-key.ztks, unlocked with the passphrase. */
  async #loadSite(sitePem: string): Promise<CertificateAuthority> {
    const passphrase = existsSync(this.#path('passphrase.sealed')) ? await this.#unsealPassphrase() : keystorePassphrase(this.dir, CA_PASSPHRASE_ENV, false)
    let key: Buffer | undefined
    try {
      const keys = await Keystore.open(this.#path('site-key.ztks'), passphrase)
      key = keys.exportPrivateKey(SITE_KEY)
      return CertificateAuthority.load(sitePem, key)
    } finally {
      key?.fill(0)
      passphrase.fill(0)
    }
  }

  /**
   * A fresh random passphrase, sealed to the TPM's PCRs into D/passphrase.sealed (and the TPM
   * named in D/tpm.json): no file of D unlocks the site key without that TPM in that state.
   */
  async #sealNewPassphrase(sealTo: SealTo): Promise<Buffer> {
    const pcrs = sealTo.pcrs ?? [7]
    const tpm = Tpm.open(sealTo.tcti)
    const passphrase = Buffer.from(randomBytes(32).toString('base64url'), 'utf8')
    writeFileAtomic(this.#path('passphrase.sealed'), await tpm.seal(passphrase, pcrs), { createNew: true })
    writeFileAtomic(this.#path('tpm.json'), JSON.stringify({ ...(sealTo.tcti !== undefined && { tcti: sealTo.tcti }), pcrs }))
    return passphrase
  }

  /** The passphrase of D/passphrase.sealed; `ERR_TPM_KEY` on another TPM, `ERR_TPM_POLICY` once its PCRs changed. */
  async #unsealPassphrase(): Promise<Buffer> {
    const stored = JSON.parse(readFileSync(this.#path('tpm.json'), 'utf8')) as { tcti?: string }
    return Tpm.open(this.#tcti ?? stored.tcti).unseal(readFileSync(this.#path('passphrase.sealed')))
  }

  /** Writes the certificates, the trust bundle, the admin credential and an empty registry. */
  #finish(sitePem: string, rootPem: string): CreatedCa {
    writeFileSync(this.#path('root.pem'), rootPem, { mode: 0o644 })
    writeFileSync(this.#path('site.pem'), sitePem, { mode: 0o644 })
    writeFileSync(this.#path('trust.pem'), rootPem, { mode: 0o644 })
    // The admin credential of POST /v1/revoke: shown once in D/admin-token (0600), stored hashed.
    const adminToken = `ztma.${randomBytes(32).toString('base64url')}`
    writeFileAtomic(this.#path('admin-token'), adminToken)
    const registry = Registry.open(this.#path('registry.db'))
    chmodSync(this.#path('registry.db'), 0o600)
    return { registry, adminToken }
  }
}

/** What `ca site csr` asked for: kept in D/site-request.json until the chain is installed. */
export interface SiteRequest {
  /** The site's name: its CA is "<name> Site CA". */
  name: string
  /** The organisation recorded in the registry. */
  organisation: string
  /** The tenants the site CA must be bound to; absent: whatever the root grants. */
  tenants?: string[]
}

/** `ERR_INVALID_ARG` unless `name` is a CA name (1 to 48 characters): "<name> Root CA" must fit a CN. */
export function checkCaName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 48) throw createError('ERR_INVALID_ARG', 'the CA name must be 1-48 characters')
}

/** The environment variable that, when set, is the site keystore's passphrase. */
const CA_PASSPHRASE_ENV = 'ZTMESH_CA_PASSPHRASE'
/** The site CA key's entry in D/site-key.ztks. */
const SITE_KEY = 'site-ca'

/**
 * A keystore's passphrase: the environment variable `env` when set, else `dir`/passphrase
 * (created 0600 with 32 random bytes when `create`); `ERR_KEYSTORE_PASSPHRASE` if neither.
 */
export function keystorePassphrase(dir: string, env: string, create: boolean): Buffer {
  const fromEnv = process.env[env]
  if (fromEnv !== undefined && fromEnv !== '') return Buffer.from(fromEnv, 'utf8')
  const file = join(dir, 'passphrase')
  if (create && !existsSync(file)) {
    writeFileAtomic(file, randomBytes(32).toString('base64url'), { createNew: true })
  }
  if (!existsSync(file)) throw createError('ERR_KEYSTORE_PASSPHRASE', `set ${env}: ${dir} has no passphrase file`)
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8')
}
