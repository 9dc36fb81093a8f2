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

  /** Whether this CA's name constraints (if any: a site CA created with `tenants`) let it issue for `tenant`. */
  permitsTenant(tenant: string): boolean {
    return this.#ca.permitsTenant(tenant)
  }

  /** Signs a site CA with a fresh key (roots only); `tenants` binds it to them by name constraints. */
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

/** How a {@link RevocationSet} treats CRLs past their nextUpdate. */
export type RevocationSetInit = binding.RevocationSetInit

/**
 * Revoked serials and keys from verified CRLs and revocation records, kept per issuing CA (one
 * CA's data never revokes another CA's certificates), with the freshness rule for CRLs: past
 * nextUpdate plus `graceSeconds` (default one day), verification fails closed with
 * `ERR_REVOCATION_STALE` unless `failOpen` is set, and then every use is counted in
 * {@link RevocationSet.staleUses}.
 *
 * @example
 * ```ts
 * const revocations = new RevocationSet({ graceSeconds: 3600 })
 * revocations.addCrl(crlPem, siteCaPem, trust)
 * ```
 */
export class RevocationSet {
  /** @internal */
  readonly native: NativeRevocationSet

  constructor(init?: RevocationSetInit) {
    this.native = callNative(() => new native.RevocationSet(init))
  }

  /**
   * Verifies a CRL (PEM or DER) against its issuer chain and adds it; false if the same CRL was
   * applied already. Throws `ERR_REVOCATION_ROLLBACK` for an older one, `ERR_REVOCATION_STALE`
   * for one past nextUpdate plus the grace period.
   */
  addCrl(crl: string | Uint8Array, issuerChainPem: string, trust: TrustStore, nowMs?: number): boolean {
    const bytes = typeof crl === 'string' ? Buffer.from(crl, 'utf8') : crl
    return callNative(() => this.native.addCrl(bytes, issuerChainPem, trust.native, nowMs))
  }

  /** Verifies a signed revocation record and adds it; false if not newer. */
  addRecord(record: Uint8Array, issuerChainPem: string, trust: TrustStore, nowMs?: number): boolean {
    return callNative(() => this.native.addRecord(record, issuerChainPem, trust.native, nowMs))
  }

  /**
   * Whether the CA with key id `issuerKeyId` (a {@link PeerIdentity}'s `issuerKeyId`, a CA's
   * `keyId`) revoked its certificate with this serial (as users type it: optional `0x`, any case,
   * leading zeros) or this key (SPKI SHA-256, hex). Throws `ERR_SERIAL` for a string that is not
   * a serial.
   */
  isRevoked(serial: string, spkiSha256: string, issuerKeyId: string): boolean {
    return callNative(() => this.native.isRevoked(serial, spkiSha256, issuerKeyId))
  }

  /** How many times stale revocation data was used because the set fails open. */
  get staleUses(): number {
    return this.native.staleUses
  }

  /** The CRL and record numbers applied so far, per issuer: save it (atomically) to {@link restoreProgress} after a restart. */
  progress(): Buffer {
    return this.native.progress()
  }

  /** Refuses, from now on, CRLs and records older than the saved `progress` (`ERR_REVOCATION_ROLLBACK`). */
  restoreProgress(progress: Uint8Array): void {
    callNative(() => this.native.restoreProgress(progress))
  }
}

/**
 * Decides a peer: chain to the trust anchors, validity with clock skew, tenant and device,
 * revocation by serial and by key (each certificate against its own issuer's fresh data), name
 * constraints, key usage and pins. Returns the {@link PeerIdentity} or throws a `PkiError` with
 * `ERR_CERT_EXPIRED`, `ERR_CERT_NOT_YET_VALID`, `ERR_CERT_REVOKED`, `ERR_REVOCATION_STALE`,
 * `ERR_CHAIN`, `ERR_NAME_CONSTRAINT`, `ERR_TENANT_MISMATCH`, `ERR_DEVICE_MISMATCH`,
 * `ERR_KEY_USAGE`, `ERR_PIN` or `ERR_CERT_MALFORMED`.
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
