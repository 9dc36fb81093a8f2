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
import { createError } from '../../errors.js'
import { callNative, native, type NativeSigner } from '../../native.js'
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

  /** A fresh software key that lives only in this process, inside the core (no keystore entry). */
  static generate(): Signer {
    return new Signer(callNative(() => native.Signer.generate()))
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

  /**
   * Proves that this signer holds and can use the key of `certificatePem` (its first
   * certificate): a signature over a fresh challenge must verify under the certificate's key.
   * Throws `ERR_KEY_MISMATCH` if not, or the signer's own failure (a TPM that no longer loads it).
   */
  proveFor(certificatePem: string): void {
    callNative(() => this.native.proveFor(certificatePem))
  }

  /** A CSR (PEM) for `deviceId` in `tenant`, signed by this key. */
  buildCsr(deviceId: string, tenant: string): string {
    return callNative(() => this.native.buildCsr(deviceId, tenant))
  }

  /** A CSR (PEM) for a site CA key named `commonName`, signed by this key: what a gateway sends its offline root. */
  buildCaCsr(commonName: string): string {
    return callNative(() => this.native.buildCaCsr(commonName))
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

/** The signer of `credential`: `ERR_INVALID_ARG` unless it is a {@link Signer} (a PKCS#8 key or a TPM key becomes one through `Signer.fromPkcs8`/`Signer.fromTpmKey`). */
export function credentialSigner(credential: DeviceCredential): Signer {
  const signer: unknown = (credential as { signer?: unknown } | undefined)?.signer
  if (!(signer instanceof Signer)) throw createError('ERR_INVALID_ARG', 'the identity needs a signer (a Signer: Signer.fromKeystore, fromTpmKey or fromPkcs8)')
  return signer
}
