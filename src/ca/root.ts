/**
 * The offline root: its directory, and the only code that unlocks the root key.
 *
 * ```
 * R/root.pem          the root certificate          R/root-key.ztks   the root key (keystore)
 * R/root.json         the site CAs it signed, the last CRL number
 * R/root.crl          the last root CRL (revoked site CAs)
 * R/passphrase        the keystore's passphrase, 0600, unless ZTMESH_ROOT_PASSPHRASE is set
 * ```
 *
 * R lives on an offline machine or medium. It signs site CAs from the CSRs gateways make
 * (`ca site csr`), and the CRL that revokes a site CA; a gateway's directory ({@link CaDirectory})
 * never holds this key. The root's policy decides every field of a site CA: the CSR gives its
 * key and nothing else.
 *
 * @example
 * ```ts
 * const root = await RootDirectory.create({ dir: '/media/offline/root', name: 'Acme' })
 * const { chain } = await root.signSite(csrPem, { tenants: ['hotel-1'] })
 * const crlPem = await root.crl({ revokeSite: serial })
 * ```
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { createError } from '../errors.js'
import { Keystore } from '../primitives/keystore/index.js'
import { CertificateAuthority, parseCsr, REVOCATION_REASONS } from '../primitives/pki/index.js'
import { normalizeSerial } from '../protocol/ids.js'
import { writeFileAtomic } from '../storage/files.js'
import { checkCaName, keystorePassphrase } from './directory.js'

/** Options of {@link RootDirectory.create}. */
export interface RootInit {
  dir: string
  /** The root is "<name> Root CA". */
  name: string
  /** The organisation (O) of the root, of the site CAs it signs and of their devices. Default: the name. */
  organisation?: string
}

/** Options of {@link RootDirectory.signSite}. */
export interface SignSiteOptions {
  /** The tenants the site CA may issue for (its name constraints). Default: unconstrained. */
  tenants?: string[]
  /** Validity in days (default 3 years, never past the root). */
  days?: number
  /** The site CA's common name. Default: the CN the CSR asks for, when it is a valid name. */
  commonName?: string
}

/** A site CA the root signed. */
export interface SignedSite {
  /** The site CA certificate, PEM. */
  certificate: string
  /** The chain `ca site install` takes: the site CA, then the root. */
  chain: string
  serial: string
}

/** One site CA in R/root.json. */
interface SiteRecord {
  serial: string
  commonName: string
  spkiSha256: string
  notAfterMs: number
  revokedAtMs?: number
}

/** R/root.json. */
interface RootState {
  name: string
  organisation: string
  crlNumber: number
  sites: SiteRecord[]
}

/** The environment variable that, when set, is the root keystore's passphrase. */
const ROOT_PASSPHRASE_ENV = 'ZTMESH_ROOT_PASSPHRASE'
const ROOT_KEY = 'root-ca'
const DAY_MS = 86_400_000
/** How long a root CRL is current: the offline root is brought out at least this often. */
const DEFAULT_CRL_DAYS = 30

/** The offline root's directory. */
export class RootDirectory {
  readonly dir: string

  constructor(dir: string) {
    this.dir = dir
  }

  /** Creates the root (key encrypted in R/root-key.ztks) in `dir`; `ERR_INVALID_ARG` if it holds one. */
  static async create(init: RootInit): Promise<RootDirectory> {
    const { dir, name } = init
    checkCaName(name)
    const organisation = init.organisation ?? name
    const root = new RootDirectory(dir)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    if (existsSync(root.#path('root.pem')) || existsSync(root.#path('root-key.ztks'))) throw createError('ERR_INVALID_ARG', `${dir} already holds a root`)
    const passphrase = keystorePassphrase(dir, ROOT_PASSPHRASE_ENV, true)
    const material = CertificateAuthority.createRoot({ commonName: `${name} Root CA`, organisation })
    try {
      const keys = await Keystore.create(root.#path('root-key.ztks'), passphrase)
      keys.import(ROOT_KEY, 'ecdsa-p256', material.privateKey)
    } finally {
      material.privateKey.fill(0)
      passphrase.fill(0)
    }
    writeFileSync(root.#path('root.pem'), material.certificatePem, { mode: 0o644 })
    root.#save({ name, organisation, crlNumber: 0, sites: [] })
    return root
  }

  /** The root certificate, PEM; `ERR_NOT_FOUND` when `dir` holds no root. */
  rootPem(): string {
    const file = this.#path('root.pem')
    if (!existsSync(file)) throw createError('ERR_NOT_FOUND', `${this.dir} holds no root (run ztmesh ca root init)`)
    return readFileSync(file, 'utf8')
  }

  /**
   * Signs a site CA for the key of `csrPem` (`ERR_CSR_…` if the CSR does not verify): the
   * root's organisation, pathLen 0, the name constraints of `tenants`, whatever the CSR asks.
   * Recorded in R/root.json, so that {@link crl} can revoke it.
   */
  async signSite(csrPem: string, options: SignSiteOptions = {}): Promise<SignedSite> {
    const state = this.#load()
    const commonName = options.commonName ?? parseCsr(csrPem).requestedCommonName
    if (commonName === undefined || commonName === null) throw createError('ERR_INVALID_ARG', 'the CSR names no site CA: give --name')
    const days = options.days
    if (days !== undefined && !(Number.isInteger(days) && days >= 1 && days <= 3650)) throw createError('ERR_INVALID_ARG', '--days is a whole number, 1 to 3650')
    const issued = await this.#withRoot((root) =>
      root.signSiteCa(csrPem, {
        commonName,
        organisation: state.organisation,
        ...(days !== undefined && { validitySeconds: days * 86_400 }),
        ...(options.tenants !== undefined && { tenants: options.tenants }),
      }),
    )
    state.sites.push({ serial: issued.serial, commonName, spkiSha256: issued.spkiSha256, notAfterMs: issued.notAfterMs })
    this.#save(state)
    return { certificate: issued.pem, chain: issued.pem + this.rootPem(), serial: issued.serial }
  }

  /**
   * Signs the next root CRL (numbered past the last, current for `days`, default 30), listing
   * every site CA revoked so far, and `revokeSite` (a serial this root signed; `ERR_NOT_FOUND`
   * otherwise) from now on. Writes it to R/root.crl and returns its PEM.
   */
  async crl(options: { revokeSite?: string; days?: number } = {}): Promise<string> {
    const state = this.#load()
    const now = Date.now()
    if (options.revokeSite !== undefined) {
      const serial = normalizeSerial(options.revokeSite)
      const site = state.sites.find((s) => s.serial === serial)
      if (site === undefined) throw createError('ERR_NOT_FOUND', `this root signed no site CA with serial ${serial}`)
      site.revokedAtMs ??= now
    }
    const days = options.days ?? DEFAULT_CRL_DAYS
    if (!(Number.isInteger(days) && days >= 1 && days <= 365)) throw createError('ERR_INVALID_ARG', '--days is a whole number, 1 to 365')
    const entries = state.sites.flatMap((s) => (s.revokedAtMs === undefined ? [] : [{ serial: s.serial, revokedAtMs: s.revokedAtMs, reason: REVOCATION_REASONS.cessationOfOperation }]))
    const crl = await this.#withRoot((root) => root.issueCrl(state.crlNumber + 1, entries, now, now + days * DAY_MS))
    state.crlNumber += 1
    this.#save(state)
    writeFileAtomic(this.#path('root.crl'), crl.pem)
    return crl.pem
  }

  /** The site CAs this root signed. */
  sites(): readonly SiteRecord[] {
    return this.#load().sites
  }

  /** Runs `use` with the root CA, its key unlocked for the call alone. */
  async #withRoot<T>(use: (root: CertificateAuthority) => T): Promise<T> {
    const pem = this.rootPem()
    const passphrase = keystorePassphrase(this.dir, ROOT_PASSPHRASE_ENV, false)
    let key: Buffer | undefined
    try {
      const keys = await Keystore.open(this.#path('root-key.ztks'), passphrase)
      key = keys.exportPrivateKey(ROOT_KEY)
      return use(CertificateAuthority.load(pem, key))
    } finally {
      key?.fill(0)
      passphrase.fill(0)
    }
  }

  /** R/root.json; `ERR_NOT_FOUND` when `dir` is no root directory (a gateway's CA directory holds root.pem, not the root). */
  #load(): RootState {
    if (!existsSync(this.#path('root.json')) || !existsSync(this.#path('root-key.ztks'))) throw createError('ERR_NOT_FOUND', `${this.dir} holds no root (run ztmesh ca root init)`)
    return JSON.parse(readFileSync(this.#path('root.json'), 'utf8')) as RootState
  }

  #save(state: RootState): void {
    writeFileAtomic(this.#path('root.json'), JSON.stringify(state, null, 2))
  }

  #path(name: string): string {
    return join(this.dir, name)
  }
}

