/**
 * Provisioners: the enrollment methods of the CA, one file each, behind one interface (the
 * shape of step-ca's provisioners). A provisioner decides who an enrollment request is (device,
 * tenant, roles) and what its attestation proved; the {@link CaService} issues, records and
 * audits, all in one transaction.
 *
 * - `token.ts`: a one-time enrollment token;
 * - `token-tpm.ts`: the token plus a TPM quote over a CA nonce, the key bound to the CSR.
 *
 * **A new enrollment method is a new file here** implementing {@link Provisioner}, registered in
 * {@link selectProvisioner}; the service does not change.
 */

import type { AuditEvent } from '../../audit/index.js'
import type { AttestationSettings, NonceStore } from '../../attestation/verifier/index.js'
import type { PcrPolicy } from '../../attestation/index.js'
import type { EnrollRequest } from '../../protocol/enroll.js'
import type { TokenStore } from '../tokens.js'
import { tokenProvisioner } from './token.js'
import { tokenTpmProvisioner } from './token-tpm.js'

export { tokenProvisioner } from './token.js'
export { tokenTpmProvisioner } from './token-tpm.js'

/** An audit row's details: flat scalars. */
export type Detail = NonNullable<AuditEvent['detail']>

/** What a provisioner may use while it decides, all inside the enrollment's transaction. */
export interface ProvisionerContext {
  tokens: TokenStore
  nonces: NonceStore
  settings: AttestationSettings
  /** The enrollment's audit details; a provisioner adds what it checked (never a secret). */
  detail: Detail
  /** Records a single-use value the attempt presented, so a refused attempt still burns it. */
  presented(nonce: string, deviceId: string): void
}

/** What an authorized enrollment is entitled to. */
export interface Authorization {
  deviceId: string
  tenant: string
  /** The roles the certificate carries. */
  roles: readonly string[]
  /** What a verified attestation proved: the device's baseline. Absent: not attested. */
  attestation?: { akPublicPem: string; pcrs: PcrPolicy }
  /**
   * Spends what paid for the certificate `serial` (a token), in the issuance transaction;
   * throws if another enrollment spent it first.
   */
  redeem(serial: string): void
}

/** One enrollment method. */
export interface Provisioner {
  /** Its name, recorded in the audit row (`provisioner`). */
  readonly name: string
  /** Decides a request, or throws the typed error that refuses it. */
  authorize(request: EnrollRequest, context: ProvisionerContext): Authorization
}

/**
 * The provisioner for `request` under the CA's attestation mode: `required` → token + TPM;
 * `optional` → token + TPM when the request carries an attestation, else token; `off` → token
 * (an attestation is ignored).
 */
export function selectProvisioner(settings: AttestationSettings, request: EnrollRequest): Provisioner {
  const carries = request.attestation !== undefined && request.attestation !== null
  if (settings.mode === 'required' || (settings.mode === 'optional' && carries)) return tokenTpmProvisioner
  return tokenProvisioner
}
