/**
 * The software keystore: the fallback key store when a device has no TPM.
 *
 * One file holds every key, each sealed with AES-256-GCM under a key that Argon2id derives from
 * the passphrase. Writes are atomic (temp file, fsync, rename). A wrong passphrase is
 * `ERR_KEYSTORE_PASSPHRASE`; a corrupt or truncated file is `ERR_KEYSTORE_CORRUPT` and is left
 * untouched. Argon2id runs off the JavaScript thread.
 *
 * @example
 * ```ts
 * const ks = await Keystore.create('/var/lib/ztmesh/keys.ztks', process.env.ZTMESH_PASSPHRASE!)
 * const { publicKey } = ks.generate('device', 'ecdsa-p256')
 * const signature = ks.sign('device', csrBytes)
 * ```
 */
import { awaitNative, callNative, native, type NativeKeystore } from '../../native.js'
import { Signer } from '../pki/signer.js'

/** What a keystore entry holds. */
export type KeyKind = 'ed25519' | 'ecdsa-p256' | 'x25519' | 'secret'

/** One entry, without its private part. */
export interface KeystoreEntry {
  name: string
  kind: KeyKind
  /** The public key (empty for `secret`). */
  publicKey: Buffer
  /** Unix seconds. */
  createdAt: number
}

/** Argon2id cost. The defaults (64 MiB, 3 passes, 1 lane) follow RFC 9106's second option. */
export interface KdfOptions {
  memoryKib?: number
  iterations?: number
  parallelism?: number
}

/** A passphrase: a UTF-8 string or raw bytes. */
export type Passphrase = string | Uint8Array

/** An open keystore. */
export class Keystore {
  readonly #store: NativeKeystore

  private constructor(store: NativeKeystore) {
    this.#store = store
  }

  /** Creates a new keystore file; refuses to overwrite one (`ERR_KEYSTORE_EXISTS`). */
  static async create(path: string, passphrase: Passphrase, kdf?: KdfOptions): Promise<Keystore> {
    return withPassphrase(passphrase, async (bytes) => new Keystore(await awaitNative(() => native.createKeystore(path, bytes, kdf))))
  }

  /** Opens an existing keystore file. */
  static async open(path: string, passphrase: Passphrase): Promise<Keystore> {
    return withPassphrase(passphrase, async (bytes) => new Keystore(await awaitNative(() => native.openKeystore(path, bytes))))
  }

  /** The file path. */
  get path(): string {
    return callNative(() => this.#store.path)
  }

  /** Every entry. */
  entries(): KeystoreEntry[] {
    return callNative(() => this.#store.entries()) as KeystoreEntry[]
  }

  /** Generates a key inside the keystore; returns its entry. */
  generate(name: string, kind: KeyKind): KeystoreEntry {
    return callNative(() => this.#store.generate(name, kind)) as KeystoreEntry
  }

  /** Imports a private key (PKCS#8 DER for ed25519/ecdsa-p256, 32 raw bytes for x25519). */
  import(name: string, kind: KeyKind, privateKey: Uint8Array): KeystoreEntry {
    return callNative(() => this.#store.import(name, kind, privateKey)) as KeystoreEntry
  }

  /** An entry's public key. */
  publicKey(name: string): Buffer {
    return callNative(() => this.#store.publicKey(name))
  }

  /** Signs with an ed25519 or ecdsa-p256 entry (ECDSA: DER). */
  sign(name: string, message: Uint8Array): Buffer {
    return callNative(() => this.#store.sign(name, message))
  }

  /** The ecdsa-p256 entry `name` as a {@link Signer}: the private key stays in the core. */
  signer(name: string): Signer {
    return new Signer(callNative(() => native.Signer.fromKeystore(this.#store, name)))
  }

  /** Exports an entry's private key (for backups; signing goes through {@link Keystore.signer}). Zero the buffer when done. */
  exportPrivateKey(name: string): Buffer {
    return callNative(() => this.#store.exportPrivateKey(name))
  }

  /** Removes an entry. */
  remove(name: string): void {
    callNative(() => this.#store.remove(name))
  }

  /** Re-encrypts every key under a new passphrase in one atomic write. */
  async changePassphrase(passphrase: Passphrase, kdf?: KdfOptions): Promise<void> {
    await withPassphrase(passphrase, (bytes) => awaitNative(() => this.#store.changePassphrase(bytes, kdf)))
  }
}

/** Hands the passphrase to the core as bytes and zeroes our copy afterwards. */
async function withPassphrase<T>(passphrase: Passphrase, use: (bytes: Uint8Array) => Promise<T>): Promise<T> {
  const bytes = typeof passphrase === 'string' ? Buffer.from(passphrase, 'utf8') : passphrase
  try {
    return await use(bytes)
  } finally {
    if (bytes !== passphrase) bytes.fill(0)
  }
}
