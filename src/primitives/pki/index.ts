/**
 * The PKI of ztmesh: a local CA (root → site CA → devices), CSRs, CRLs, signed incremental
 * revocation records, and {@link verifyPeer}, the one function that decides every peer.
 *
 * All certificate work happens in the Rust core. Private keys are PKCS#8 DER buffers: keep them
 * in a {@link Keystore} and zero-fill the buffers you are handed.
 *
 * @example
 * ```ts
 * const root = CertificateAuthority.createRoot({ commonName: 'Hotel Root', organisation: 'Acme' })
 * const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
 * const site = rootCa.createSiteCa({ commonName: 'Hotel Site', organisation: 'Acme' })
 * const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
 * const cert = siteCa.issue(csrPem, { deviceId: 'tablet-7', tenant: 'hotel-1' })
 * const peer = verifyPeer(cert.pem + site.certificatePem, TrustStore.fromPem(root.certificatePem), new RevocationSet(), {
 *   expectedTenant: 'hotel-1',
 * })
 * ```
 */

import type { bindingTypes as binding } from '../../native.js'
import {
  callNative,
  native,
  type NativeCertificateAuthority,
  type NativeRevocationSet,
  type NativeTrustStore,
} from '../../native.js'

export type CaInit = binding.CaInit
export type CaMaterial = binding.CaMaterial
export type DeviceCertInit = binding.DeviceCertInit
export type IssuedCertificate = binding.IssuedCertificate
export type RevokedEntry = binding.RevokedEntry
export type SignedCrl = binding.SignedCrl
export type CsrInfo = binding.CsrInfo
export type PeerIdentity = binding.PeerIdentity
export type UntrustedCertificateFacts = binding.UntrustedCertificateFacts

/** RFC 5280 revocation reason codes. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  caCompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aaCompromise: 10,
} as const

export type RevocationReason = keyof typeof REVOCATION_REASONS

/** What a caller expects of a peer beyond a valid chain. */
export interface PeerPolicy {
  expectedDevice?: string
  expectedTenant?: string
  /** `'client'`, `'server'` or `'any'` (default). */
  usage?: 'client' | 'server' | 'any'
  /** Accepted SPKI SHA-256 hashes, hex. */
  pins?: string[]
  /** Clock skew tolerated either side of validity, seconds (default 300). */
  clockSkewSeconds?: number
  /** Verify as of this time, ms since the epoch (default now). */
  nowMs?: number
}

/** A CA certificate with its signing key. */
export class CertificateAuthority {
  readonly #ca: NativeCertificateAuthority

  private constructor(ca: NativeCertificateAuthority) {
    this.#ca = ca
  }

  /** Creates a self-signed root CA with a fresh P-256 key. */
  static createRoot(init: CaInit): CaMaterial {
    return callNative(() => native.CertificateAuthority.createRoot(init))
  }

  /** Loads a CA from its certificate (PEM) and PKCS#8 key; the key buffer may be zeroed after. */
  static load(certificatePem: string, privateKey: Uint8Array): CertificateAuthority {
    return new CertificateAuthority(callNative(() => native.CertificateAuthority.load(certificatePem, privateKey)))
  }

  get certificatePem(): string {
    return this.#ca.certificatePem
  }

  /** SHA-256 of the CA's key, hex: names the issuer of its CRLs and revocation records. */
  get keyId(): string {
    return this.#ca.keyId
  }

  /** Signs a site CA with a fresh key (roots only). */
  createSiteCa(init: CaInit): CaMaterial {
    return callNative(() => this.#ca.createSiteCa(init))
  }

  /** Issues a device certificate for the key in `csrPem`; every other field is CA policy. */
  issue(csrPem: string, init: DeviceCertInit): IssuedCertificate {
    return callNative(() => this.#ca.issue(csrPem, init))
  }

  /** Signs a v2 CRL. */
  issueCrl(crlNumber: number, entries: RevokedEntry[], thisUpdateMs: number, nextUpdateMs: number): SignedCrl {
    return callNative(() => this.#ca.issueCrl(crlNumber, entries, thisUpdateMs, nextUpdateMs))
  }

  /** Signs an incremental revocation record (entries need `spkiSha256`). */
  signRevocationRecord(recordNumber: number, timestampMs: number, entries: RevokedEntry[]): Buffer {
    return callNative(() => this.#ca.signRevocationRecord(recordNumber, timestampMs, entries))
  }
}

/** The trust anchors: one root, or two during a rollover. */
export class TrustStore {
  /** @internal */
  readonly native: NativeTrustStore

  private constructor(store: NativeTrustStore) {
    this.native = store
  }

  static fromPem(bundle: string): TrustStore {
    return new TrustStore(callNative(() => native.TrustStore.fromPem(bundle)))
  }

  get size(): number {
    return this.native.size
  }
}

/** Revoked serials and keys from verified CRLs and revocation records. */
export class RevocationSet {
  /** @internal */
  readonly native: NativeRevocationSet = new native.RevocationSet()

  /** Verifies a CRL (PEM or DER) against its issuer chain and adds it; false if not newer. */
  addCrl(crl: string | Uint8Array, issuerChainPem: string, trust: TrustStore, nowMs?: number): boolean {
    const bytes = typeof crl === 'string' ? Buffer.from(crl, 'utf8') : crl
    return callNative(() => this.native.addCrl(bytes, issuerChainPem, trust.native, nowMs))
  }

  /** Verifies a signed revocation record and adds it; false if not newer. */
  addRecord(record: Uint8Array, issuerChainPem: string, trust: TrustStore, nowMs?: number): boolean {
    return callNative(() => this.native.addRecord(record, issuerChainPem, trust.native, nowMs))
  }

  /**
   * Whether a serial (as users type it: optional `0x`, any case, leading zeros) or a key (SPKI
   * SHA-256, hex) is revoked. Throws `ERR_SERIAL` for a string that is not a serial.
   */
  isRevoked(serial: string, spkiSha256: string): boolean {
    return callNative(() => this.native.isRevoked(serial, spkiSha256))
  }
}

/**
 * Decides a peer: chain to the trust anchors, validity with clock skew, tenant and device,
 * revocation by serial and by key, key usage and pins. Returns the {@link PeerIdentity} or
 * throws a `PkiError` with `ERR_CERT_EXPIRED`, `ERR_CERT_NOT_YET_VALID`, `ERR_CERT_REVOKED`,
 * `ERR_CHAIN`, `ERR_TENANT_MISMATCH`, `ERR_DEVICE_MISMATCH`, `ERR_KEY_USAGE`, `ERR_PIN` or
 * `ERR_CERT_MALFORMED`.
 */
export function verifyPeer(chainPem: string, trust: TrustStore, revocations: RevocationSet, policy: PeerPolicy = {}): PeerIdentity {
  return callNative(() => native.verifyPeer(chainPem, trust.native, revocations.native, policy))
}

/**
 * Whether `signature` (DER ECDSA P-256) over `message` was made with the key of the first
 * certificate of `chainPem` (proof of possession; the certificate itself is for `verifyPeer`).
 */
export function verifyCertificateSignature(chainPem: string, message: Uint8Array, signature: Uint8Array): boolean {
  return callNative(() => native.verifyCertificateSignature(chainPem, message, signature))
}

/**
 * Reads the facts of the first certificate in `pem` (device id, tenant, roles, serial,
 * validity, SPKI SHA-256) **without any trust decision**: no signature, chain, validity or
 * revocation is checked. For a device's own certificate, a CA's records and tools; a peer is
 * decided by {@link verifyPeer} only. Throws `ERR_CERT_MALFORMED` or `ERR_PEM`.
 */
export function inspectCertificate(pem: string): UntrustedCertificateFacts {
  return callNative(() => native.inspectCertificate(pem))
}

/** Parses and signature-checks a CSR; only its key will ever be used. */
export function parseCsr(csrPem: string): CsrInfo {
  return callNative(() => native.parseCsr(csrPem))
}

/** Builds a device CSR from a P-256 PKCS#8 key. */
export function buildCsr(privateKey: Uint8Array, deviceId: string, tenant: string): string {
  return callNative(() => native.buildCsr(privateKey, deviceId, tenant))
}

/** A fresh ECDSA P-256 key as PKCS#8 DER (zero-fill it when stored). */
export function generateP256Key(): Buffer {
  return callNative(() => native.generateP256Key())
}

export { credentialSigner, Signer, type DeviceCredential } from './signer.js'
