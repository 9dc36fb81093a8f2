/**
 * The CA directory: where the certificates, keys, passphrase and registry of one site CA live,
 * and the only code that reads or writes those files.
 *
 * ```
 * D/root.pem          the root certificate          D/root-key.ztks   the root key (keystore)
 * D/site.pem          the site CA certificate       D/site-key.ztks   the site CA key (keystore)
 * D/trust.pem         the trust bundle (the roots; two during a rollover)
 * D/registry.db       the registry                  D/passphrase      the keystores' passphrase,
 * D/admin-token       the admin credential, once                      0600, unless ZTMESH_CA_PASSPHRASE is set
 * ```
 *
 * An offline root (a root directory apart from the site's) or a passphrase sealed to a TPM is a
 * change to this module alone: the service asks it for the site CA and the chain, nothing more.
 */

import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { createError } from '../errors.js'
import { Keystore } from '../primitives/keystore/index.js'
import { CertificateAuthority } from '../primitives/pki/index.js'
import { writeFileAtomic } from '../storage/files.js'
import { Registry } from './registry.js'

/** What {@link CaDirectory.create} made: the registry still has to record the admin credential. */
export interface CreatedCa {
  registry: Registry
  /** The admin credential (also written to D/admin-token, 0600). */
  adminToken: string
}

/** The files of one site CA. */
export class CaDirectory {
  readonly dir: string

  constructor(dir: string) {
    this.dir = dir
  }

  /** Whether the directory holds a CA. */
  exists(): boolean {
    return existsSync(this.#path('site.pem')) && existsSync(this.#path('registry.db'))
  }

  /**
   * Creates a root CA, a site CA (keys in their keystores; bound by name constraints to
   * `tenants` when given), the trust bundle, the admin credential and an empty registry;
   * `ERR_INVALID_ARG` if the directory already holds a CA.
   */
  async create(init: { name: string; organisation: string; tenants?: string[] }): Promise<CreatedCa> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    if (existsSync(this.#path('site.pem')) || existsSync(this.#path('registry.db'))) {
      throw createError('ERR_INVALID_ARG', `${this.dir} already holds a CA`)
    }
    const passphrase = this.#passphrase(true)
    const root = CertificateAuthority.createRoot({ commonName: `${init.name} Root CA`, organisation: init.organisation })
    const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: `${init.name} Site CA`, organisation: init.organisation, ...(init.tenants !== undefined && { tenants: init.tenants }) })
    try {
      const rootKeys = await Keystore.create(this.#path('root-key.ztks'), passphrase)
      rootKeys.import('root-ca', 'ecdsa-p256', root.privateKey)
      const siteKeys = await Keystore.create(this.#path('site-key.ztks'), passphrase)
      siteKeys.import('site-ca', 'ecdsa-p256', site.privateKey)
    } finally {
      root.privateKey.fill(0)
      site.privateKey.fill(0)
      passphrase.fill(0)
    }
    writeFileSync(this.#path('root.pem'), root.certificatePem, { mode: 0o644 })
    writeFileSync(this.#path('site.pem'), site.certificatePem, { mode: 0o644 })
    writeFileSync(this.#path('trust.pem'), root.certificatePem, { mode: 0o644 })
    // The admin credential of POST /v1/revoke: shown once in D/admin-token (0600), stored hashed.
    const adminToken = `ztma.${randomBytes(32).toString('base64url')}`
    writeFileAtomic(this.#path('admin-token'), adminToken)
    const registry = Registry.open(this.#path('registry.db'))
    chmodSync(this.#path('registry.db'), 0o600)
    return { registry, adminToken }
  }

  /** The site CA, its key unlocked with the passphrase (the root key stays locked). */
  async siteCa(): Promise<CertificateAuthority> {
    const passphrase = this.#passphrase(false)
    let key: Buffer | undefined
    try {
      const keys = await Keystore.open(this.#path('site-key.ztks'), passphrase)
      key = keys.exportPrivateKey('site-ca')
      return CertificateAuthority.load(this.sitePem(), key)
    } finally {
      key?.fill(0)
      passphrase.fill(0)
    }
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

  /** The keystores' passphrase: ZTMESH_CA_PASSPHRASE, else D/passphrase (created 0600 by init). */
  #passphrase(create: boolean): Buffer {
    const fromEnv = process.env.ZTMESH_CA_PASSPHRASE
    if (fromEnv !== undefined && fromEnv !== '') return Buffer.from(fromEnv, 'utf8')
    const file = this.#path('passphrase')
    if (create && !existsSync(file)) {
      writeFileAtomic(file, randomBytes(32).toString('base64url'), { createNew: true })
    }
    if (!existsSync(file)) throw createError('ERR_KEYSTORE_PASSPHRASE', 'set ZTMESH_CA_PASSPHRASE: this CA has no passphrase file')
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8')
  }
}
