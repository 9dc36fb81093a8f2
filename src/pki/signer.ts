/**
 * The one signer handle and the one credential shape.
 *
 * A {@link Signer} is an ECDSA P-256 key held natively, in software or in a TPM; every native
 * operation that signs (TLS and Noise link contexts, signed objects, CSRs) takes it. A keystore
 * entry becomes a signer inside the core, so a device key never becomes a JavaScript buffer.
 *
 * @example
 * ```ts
 * const signer = Signer.fromKeystore(keystore, 'device')
 * const credential: DeviceCredential = { certificateChainPem, signer }
 * const context = new TlsContext('client', { identity: credential, trustPem })
 * ```
 */
import { createError } from '../errors.js'
import { callNative, native, type NativeSigner } from '../native.js'
import type { Keystore } from '../keystore/index.js'
import type { TpmKey } from '../tpm/index.js'

/** An ECDSA P-256 signing key, in software or in a TPM. */
export class Signer {
  /** @internal */
  readonly native: NativeSigner

  /** @internal */
  constructor(signer: NativeSigner) {
    this.native = signer
  }

  /** The ecdsa-p256 entry `name` of `keystore`, decrypted inside the core. */
  static fromKeystore(keystore: Keystore, name: string): Signer {
    return keystore.signer(name)
  }

  /** A key in the TPM. */
  static fromTpmKey(key: TpmKey): Signer {
    return new Signer(callNative(() => native.Signer.fromTpmKey(key.native)))
  }

  /** A software key from PKCS#8 DER, for CA tooling and tests: zero-fill the buffer after. */
  static fromPkcs8(privateKey: Uint8Array): Signer {
    return new Signer(callNative(() => native.Signer.fromPkcs8(privateKey)))
  }

  /** The 65-byte uncompressed public point (`ERR_CLOSED` once closed). */
  get publicKey(): Buffer {
    return callNative(() => this.native.publicKey)
  }

  /** ECDSA P-256/SHA-256 signature of `message`, DER (`ERR_CLOSED` once closed). */
  sign(message: Uint8Array): Buffer {
    return callNative(() => this.native.sign(message))
  }

  /** A CSR (PEM) for `deviceId` in `tenant`, signed by this key. */
  buildCsr(deviceId: string, tenant: string): string {
    return callNative(() => this.native.buildCsr(deviceId, tenant))
  }

  /** Drops this handle's key: later uses throw `ERR_CLOSED`; contexts already built keep working. */
  close(): void {
    this.native.close()
  }

  get closed(): boolean {
    return this.native.isClosed
  }
}

/** What a device presents, to TLS, Noise links and endpoints alike: its chain and its signer. */
export interface DeviceCredential {
  /** The device certificate followed by its CA chain, PEM. */
  certificateChainPem: string
  /** The certificate's key. */
  signer: Signer
}

/**
 * A credential, or the older shapes still accepted for CA tooling and tests: a PKCS#8 key
 * (copied into a native signer; zero-fill it after) or a TPM key.
 */
export type CredentialInit =
  | DeviceCredential
  | { certificateChainPem: string; privateKey: Uint8Array; signer?: undefined; tpmKey?: undefined }
  | { certificateChainPem: string; tpmKey: TpmKey; signer?: undefined; privateKey?: undefined }

/** The signer of `credential` (`ERR_INVALID_ARG` when it has none); one made here is new. */
export function credentialSigner(credential: CredentialInit): Signer {
  const given = credential as { signer?: unknown; privateKey?: Uint8Array; tpmKey?: TpmKey }
  if (given.signer instanceof Signer) return given.signer
  if (given.signer !== undefined) throw createError('ERR_INVALID_ARG', 'signer must be a Signer')
  if (given.privateKey !== undefined) return Signer.fromPkcs8(given.privateKey)
  if (given.tpmKey !== undefined) return Signer.fromTpmKey(given.tpmKey)
  throw createError('ERR_INVALID_ARG', 'the identity needs a signer')
}

/**
 * Runs `use` with the signer of `credential`; a signer made here from an older shape is closed
 * after (the native contexts built from it keep their own share of the key).
 */
export function withCredentialSigner<T>(credential: CredentialInit, use: (signer: Signer) => T): T {
  const signer = credentialSigner(credential)
  try {
    return use(signer)
  } finally {
    if (signer !== (credential as { signer?: Signer }).signer) signer.close()
  }
}
