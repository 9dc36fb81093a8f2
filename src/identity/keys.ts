/**
 * The device key behind one interface, wherever it lives: in the TPM (non-exportable, only that
 * TPM can load its blob) or in the software keystore (encrypted under a passphrase).
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { akBindingMessage, type BoundQuote } from '../attestation/index.js'
import { createError, ZtError } from '../errors.js'
import { Keystore, type Passphrase } from '../primitives/keystore/index.js'
import { Signer } from '../primitives/pki/index.js'
import { Tpm, tpmSupported, type TpmKey } from '../primitives/tpm/index.js'
import { FILES, KEY_NAME } from './constants.js'

/** Where a device key lives. */
export type KeystoreKind = 'tpm' | 'software'

/** The keystore asked for at enrollment: `auto` is the TPM when a usable one answers, else software. */
export type KeystoreChoice = KeystoreKind | 'auto'

/** The device's certificate key. */
export interface DeviceKey {
  readonly kind: KeystoreKind
  /** The native signer: every signature by the device key (TLS, links, CSRs, objects) goes through it. */
  readonly signer: Signer
  /** ECDSA P-256 signature (DER) by the device key. */
  sign(message: Uint8Array): Buffer
  /** A CSR (PEM) signed by the device key. */
  buildCsr(deviceId: string, tenant: string): string
  /** The key a rotation certifies: a fresh key in the TPM; the same key in the software keystore. */
  successor(): Promise<DeviceKey>
  /** The files of the identity directory that hold this key, `key.json` first. */
  files(): Map<string, string | Uint8Array>
}

/** The files a device key may own; a commit removes those the new key does not use. */
export const KEY_FILES: readonly string[] = [FILES.tpmKey, FILES.tpmAk]

/** Whether a TPM that ztmesh can use answers on `tcti`. Never throws. */
function usableTpm(tcti?: string): boolean {
  if (!tpmSupported()) return false
  try {
    return Tpm.open(tcti).info().usable
  } catch {
    return false
  }
}

/** Creates the key of a new enrollment. */
export async function createDeviceKey(init: { dir: string; keystore: KeystoreChoice; tcti?: string; passphrase?: Passphrase }): Promise<DeviceKey> {
  if (init.keystore !== 'tpm' && init.keystore !== 'software' && init.keystore !== 'auto') throw createError('ERR_INVALID_ARG', 'keystore must be tpm, software or auto')
  if (init.keystore === 'tpm' || (init.keystore === 'auto' && usableTpm(init.tcti))) return TpmDeviceKey.create(init.tcti)
  return SoftwareKey.openOrCreate(init.dir, init.passphrase)
}

/** Opens the key of an enrolled identity, as `key.json` records it (software when absent). */
export async function openDeviceKey(dir: string, init: { tcti?: string; passphrase?: Passphrase }): Promise<DeviceKey> {
  const record = readKeyRecord(dir)
  if (record.keystore === 'software') return SoftwareKey.open(dir, init.passphrase)
  return TpmDeviceKey.open(dir, init.tcti ?? record.tcti)
}

/** The device key in the software keystore. */
export class SoftwareKey implements DeviceKey {
  readonly kind = 'software'
  /** Built inside the core from the keystore entry: the private key never reaches JavaScript. */
  readonly signer: Signer

  private constructor(keystore: Keystore) {
    this.signer = keystore.signer(KEY_NAME)
  }

  /** Opens the directory's keystore, or creates it; generates the device key if it has none. */
  static async openOrCreate(dir: string, passphrase: Passphrase | undefined): Promise<SoftwareKey> {
    const path = join(dir, FILES.keystore)
    const pass = needPassphrase(passphrase)
    const keystore = existsSync(path) ? await Keystore.open(path, pass) : await Keystore.create(path, pass)
    if (!keystore.entries().some((e) => e.name === KEY_NAME)) keystore.generate(KEY_NAME, 'ecdsa-p256')
    return new SoftwareKey(keystore)
  }

  static async open(dir: string, passphrase: Passphrase | undefined): Promise<SoftwareKey> {
    return new SoftwareKey(await Keystore.open(join(dir, FILES.keystore), needPassphrase(passphrase)))
  }

  sign(message: Uint8Array): Buffer {
    return this.signer.sign(message)
  }

  buildCsr(deviceId: string, tenant: string): string {
    return this.signer.buildCsr(deviceId, tenant)
  }

  async successor(): Promise<SoftwareKey> {
    return this
  }

  files(): Map<string, string> {
    return new Map([[FILES.key, keyRecord({ keystore: 'software' })]])
  }
}

/** The device key in a TPM, with the attestation key created beside it. */
export class TpmDeviceKey implements DeviceKey {
  readonly kind = 'tpm'
  readonly #tpm: Tpm
  /** The TCTI to record, when one was named (else the environment's is used each time). */
  readonly #tcti: string | undefined
  readonly #blob: Buffer
  readonly #key: TpmKey
  readonly #akBlob: Buffer | undefined
  readonly signer: Signer

  private constructor(tpm: Tpm, tcti: string | undefined, blob: Buffer, akBlob: Buffer | undefined) {
    this.#tpm = tpm
    this.#tcti = tcti
    this.#blob = blob
    this.#key = tpm.loadKey(blob)
    this.#akBlob = akBlob
    this.signer = Signer.fromTpmKey(this.#key)
  }

  /** Creates a signing key and an attestation key in the TPM `tcti` names. */
  static async create(tcti: string | undefined): Promise<TpmDeviceKey> {
    const tpm = Tpm.open(tcti)
    const blob = await tpm.createSigningKey()
    return new TpmDeviceKey(tpm, tcti, blob, await tpm.createAttestationKey())
  }

  /**
   * Loads the enrolled key. A TPM that is gone, or that refuses the blob (cleared, replaced),
   * is an error with its TPM code (`ERR_TPM_KEY`, `ERR_TPM_UNAVAILABLE`…) telling the device to
   * enroll again: nothing else can bring the key back.
   */
  static async open(dir: string, tcti: string | undefined): Promise<TpmDeviceKey> {
    const read = (name: string) => {
      try {
        return readFileSync(join(dir, name))
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw createError('ERR_STORAGE', `cannot read ${join(dir, name)}`, { cause: error })
      }
    }
    const blob = read(FILES.tpmKey)
    if (blob === undefined) throw createError('ERR_TPM_BLOB', `${dir} records a TPM key but holds no ${FILES.tpmKey}: enroll again with a new token`)
    const akBlob = read(FILES.tpmAk)
    try {
      return new TpmDeviceKey(Tpm.open(tcti), tcti, blob, akBlob)
    } catch (error) {
      throw mustReenroll(error, tcti)
    }
  }

  sign(message: Uint8Array): Buffer {
    return this.signer.sign(message)
  }

  buildCsr(deviceId: string, tenant: string): string {
    return this.signer.buildCsr(deviceId, tenant)
  }

  async successor(): Promise<TpmDeviceKey> {
    return new TpmDeviceKey(this.#tpm, this.#tcti, await this.#tpm.createSigningKey(), this.#akBlob)
  }

  files(): Map<string, string | Uint8Array> {
    const files = new Map<string, string | Uint8Array>([
      [FILES.key, keyRecord({ keystore: 'tpm', ...(this.#tcti !== undefined && { tcti: this.#tcti }) })],
      [FILES.tpmKey, this.#blob],
    ])
    if (this.#akBlob !== undefined) files.set(FILES.tpmAk, this.#akBlob)
    return files
  }

  /**
   * What the TPM shows a CA for a credential challenge: its EK certificate and the attestation
   * key's public area; `undefined` when the TPM holds no EK certificate (or there is no AK).
   */
  async endorsement(): Promise<{ ekCertificate: Buffer; akPublic: Buffer } | undefined> {
    if (this.#akBlob === undefined) return undefined
    const ekCertificate = await this.#tpm.ekCertificate().catch(() => undefined)
    return ekCertificate === undefined ? undefined : { ekCertificate, akPublic: this.#tpm.publicArea(this.#akBlob) }
  }

  /** Answers a CA's credential challenge with the attestation key (`TPM2_ActivateCredential`). */
  async activateCredential(credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Promise<Buffer> {
    if (this.#akBlob === undefined) throw createError('ERR_TPM_BLOB', `this identity has no attestation key (${FILES.tpmAk}): enroll again to create one`)
    return this.#tpm.activateCredential(this.#akBlob, credentialBlob, encryptedSecret)
  }

  /** The attestation key's certification (`TPM2_Certify` over `nonce`) of this device key: it lives in the AK's TPM. */
  async certify(nonce: Uint8Array): Promise<{ keyPublic: Buffer; attest: Buffer; signature: Buffer }> {
    if (this.#akBlob === undefined) throw createError('ERR_TPM_BLOB', `this identity has no attestation key (${FILES.tpmAk}): enroll again to create one`)
    const { attest, signature } = await this.#tpm.certify(this.#akBlob, this.#blob, nonce)
    return { keyPublic: this.#tpm.publicArea(this.#blob), attest, signature }
  }

  /** A quote of `pcrs` over `nonce` by the attestation key, bound to the device key. */
  async quote(nonce: Uint8Array, pcrs: readonly number[]): Promise<BoundQuote> {
    if (this.#akBlob === undefined) throw createError('ERR_TPM_BLOB', `this identity has no attestation key (${FILES.tpmAk}): enroll again to create one`)
    const quote = await this.#tpm.quote(this.#akBlob, nonce, pcrs)
    return { ...quote, akBinding: this.sign(akBindingMessage(quote.akPublicPem)) }
  }
}

/** What `key.json` holds. */
interface KeyRecord {
  keystore: KeystoreKind
  tcti?: string
}

function keyRecord(record: KeyRecord): string {
  return `${JSON.stringify({ version: 1, ...record }, null, 2)}\n`
}

function readKeyRecord(dir: string): KeyRecord {
  const path = join(dir, FILES.key)
  if (!existsSync(path)) return { keystore: 'software' } // enrolled before the TPM keystore existed
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw createError('ERR_STORAGE', `${path} is not JSON`, { cause: error })
  }
  const { version, keystore, tcti } = (value ?? {}) as Record<string, unknown>
  if (version !== 1 || (keystore !== 'tpm' && keystore !== 'software') || (tcti !== undefined && typeof tcti !== 'string')) {
    throw createError('ERR_STORAGE', `${path} is not a version-1 key record`)
  }
  return { keystore, ...(tcti !== undefined && { tcti }) }
}

function needPassphrase(passphrase: Passphrase | undefined): Passphrase {
  if (passphrase === undefined || passphrase.length === 0) throw createError('ERR_KEYSTORE_PASSPHRASE', 'the software keystore needs a passphrase (ZTMESH_PASSPHRASE for the CLI)')
  return passphrase
}

/** The TPM error `error` of opening an identity, with a message that says what to do; its code is kept. */
function mustReenroll(error: unknown, tcti: string | undefined): ZtError {
  const code = error instanceof ZtError ? error.code : 'ERR_TPM_UNAVAILABLE'
  const refused = code === 'ERR_TPM_KEY' || code === 'ERR_TPM_BLOB'
  const what = refused ? 'the TPM refused the device key: it was cleared or replaced, or the blob was altered' : `the TPM that holds the device key cannot be used${tcti === undefined ? '' : ` on ${tcti}`}`
  const fallback = refused ? '' : ' (if that TPM is gone for good, keystore auto falls back to the software keystore)'
  return createError(code, `${what} (${code}): the device must enroll again, with a new token, in the same directory${fallback}`, { cause: error })
}
