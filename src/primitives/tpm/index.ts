/**
 * The TPM 2.0: device keys that never leave it, secrets sealed to PCR values, and quotes.
 *
 * ```ts
 * const tpm = Tpm.open('swtpm:host=127.0.0.1,port=2321') // or TPM2TOOLS_TCTI, or /dev/tpmrm0
 * const blob = await tpm.createSigningKey()               // store it: only this TPM can use it
 * const key = tpm.loadKey(blob)                            // a signer for CSRs, TLS and Noise
 * ```
 *
 * Every transient object is flushed after each command, so nothing stays loaded between calls
 * (swtpm and raw `/dev/tpm0` have three slots). Key creation, sealing and quotes run on the
 * libuv thread pool; `sign` is synchronous.
 */
import { callNative, native, awaitNative, type bindingTypes } from '../../native.js'

/** One PCR value as the core reads it: its index, its bank, and the value in hex. */
export type PcrValue = bindingTypes.PcrValue

/** Whether this build has TPM support (libtss2 was found when the addon was built). */
export function tpmSupported(): boolean {
  return native.tpmSupported()
}

/** Whether a TPM answers on `tcti` (or the environment's, or /dev/tpmrm0). Never throws. */
export function tpmAvailable(tcti?: string): boolean {
  try {
    Tpm.open(tcti)
    return true
  } catch {
    return false
  }
}

/** What a TPM says about itself. */
export type TpmInfo = ReturnType<InstanceType<typeof native.Tpm>['info']>

/** A quote, as `tpm2_quote` writes it. */
export interface TpmQuote {
  attest: Buffer
  signature: Buffer
  pcrValues: Buffer
  akPublicPem: string
}

/** The TCTI used when neither the caller nor the environment names one. */
const DEFAULT_TCTI = 'device:/dev/tpmrm0'

/** The open connections, by TCTI. */
const OPEN = new Map<string, Tpm>()

/** A connection to a TPM. */
export class Tpm {
  readonly #tpm: InstanceType<typeof native.Tpm>

  private constructor(tpm: InstanceType<typeof native.Tpm>) {
    this.#tpm = tpm
  }

  /**
   * The connection to the TPM `tcti` names (else `TPM2TOOLS_TCTI`, `TCTI`, `/dev/tpmrm0`);
   * throws `ERR_TPM_UNAVAILABLE`, `ERR_TPM_TCTI` or `ERR_TPM_UNSUPPORTED`.
   *
   * One connection per TPM and process, shared by every caller: a TPM without a resource manager
   * (swtpm, `/dev/tpm0`) serves one connection at a time, and a second one from the same process
   * would wait for the first forever.
   */
  static open(tcti?: string): Tpm {
    const name = tcti ?? (process.env.TPM2TOOLS_TCTI || process.env.TCTI || DEFAULT_TCTI)
    let tpm = OPEN.get(name)
    if (tpm === undefined) {
      tpm = new Tpm(callNative(() => native.Tpm.open(name)))
      OPEN.set(name, tpm)
    }
    return tpm
  }

  /** Manufacturer, firmware, and whether ztmesh can use it. */
  info(): TpmInfo {
    return callNative(() => this.#tpm.info())
  }

  /** Creates a non-exportable ECDSA P-256 signing key; resolves with its blob. */
  async createSigningKey(): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.createSigningKey()))
  }

  /** Creates a restricted ECDSA P-256 attestation key; resolves with its blob. */
  async createAttestationKey(): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.createAttestationKey()))
  }

  /** A signer for a signing-key blob; `ERR_TPM_KEY` if this TPM cannot load it (cleared or another TPM). */
  loadKey(blob: Uint8Array): TpmKey {
    return new TpmKey(callNative(() => this.#tpm.loadKey(blob)))
  }

  /** Seals `secret` (≤ 128 bytes) to the current values of the SHA-256 PCRs `pcrs`. */
  async seal(secret: Uint8Array, pcrs: readonly number[]): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.seal(secret, [...pcrs])))
  }

  /** Unseals; rejects with `ERR_TPM_POLICY` once the PCRs changed. */
  async unseal(blob: Uint8Array): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.unseal(blob)))
  }

  /** Quotes the SHA-256 PCRs `pcrs` with the attestation key `akBlob` over `nonce`. */
  async quote(akBlob: Uint8Array, nonce: Uint8Array, pcrs: readonly number[]): Promise<TpmQuote> {
    const { quote } = await awaitNative(() => this.#tpm.quote(akBlob, nonce, [...pcrs]))
    if (quote === undefined || quote === null) throw new Error('ztmesh: a quote job returned no quote')
    return quote
  }

  /** The endorsement key certificate (DER) the TPM stores for its RSA 2048 EK; `ERR_TPM_COMMAND` when it has none. */
  async ekCertificate(): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.ekCertificate()))
  }

  /** The public area (`TPMT_PUBLIC`) of the key in `blob`: what a verifier names it by. */
  publicArea(blob: Uint8Array): Buffer {
    return callNative(() => this.#tpm.publicArea(blob))
  }

  /** `TPM2_ActivateCredential`: the secret of a CA's credential challenge for the attestation key `akBlob`. */
  async activateCredential(akBlob: Uint8Array, credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Promise<Buffer> {
    return bytes(await awaitNative(() => this.#tpm.activateCredential(akBlob, credentialBlob, encryptedSecret)))
  }

  /** `TPM2_Certify`: the attestation key `akBlob` certifies, over `nonce`, that the signing key `keyBlob` lives in this TPM. */
  async certify(akBlob: Uint8Array, keyBlob: Uint8Array, nonce: Uint8Array): Promise<{ attest: Buffer; signature: Buffer }> {
    const { quote } = await awaitNative(() => this.#tpm.certify(akBlob, keyBlob, nonce))
    if (quote === undefined || quote === null) throw new Error('ztmesh: a certify job returned no certification')
    return { attest: quote.attest, signature: quote.signature }
  }

  /** The current values of the SHA-256 PCRs `pcrs`. */
  readPcrs(pcrs: readonly number[]): PcrValue[] {
    return callNative(() => this.#tpm.readPcrs([...pcrs]))
  }

  /** Extends SHA-256 PCR `index` with the digest of `data`. */
  pcrExtend(index: number, data: Uint8Array): void {
    callNative(() => this.#tpm.pcrExtend(index, data))
  }
}

/** An ECDSA P-256 key in the TPM: signs CSRs, TLS handshakes and Noise identities. */
export class TpmKey {
  /** @internal */
  readonly native: InstanceType<typeof native.TpmKey>

  /** @internal */
  constructor(key: InstanceType<typeof native.TpmKey>) {
    this.native = key
  }

  /** The 65-byte uncompressed public point. */
  get publicKey(): Buffer {
    return this.native.publicKey
  }

  /** ECDSA P-256/SHA-256 signature, DER. */
  sign(message: Uint8Array): Buffer {
    return callNative(() => this.native.sign(message))
  }

  /** A CSR (PEM) for `deviceId` in `tenant`. */
  buildCsr(deviceId: string, tenant: string): string {
    return callNative(() => this.native.buildCsr(deviceId, tenant))
  }
}

function bytes(result: { bytes?: Buffer | null }): Buffer {
  if (result.bytes === undefined || result.bytes === null) throw new Error('ztmesh: a TPM job returned no bytes')
  return result.bytes
}
