/**
 * The site CA service: orchestrates the CA's modules, runs each decision in one transaction
 * with its audit row, and is the only way callers (the HTTP API, the CLI, the reattestor)
 * reach them.
 *
 * - `directory.ts`: the CA's files, keys and passphrase;
 * - `registry.ts`: every SQL statement about certificates, their lineage and settings;
 * - `crl.ts`: CRL publication;
 * - `tokens.ts`: enrollment tokens; `attestation/verifier/`: nonces and attestation records;
 * - `provisioners/`: the enrollment methods (one file each);
 * - `audit/`: the hash-chained audit log.
 *
 * Every decision is audited in the same transaction as its effect; refusals are audited too.
 *
 * @example
 * ```ts
 * await CaService.init({ dir: '/var/lib/ztmesh/ca', name: 'Hotel One' })
 * const ca = await CaService.open({ dir: '/var/lib/ztmesh/ca' })
 * const { token } = ca.createToken({ deviceId: 'tablet-7', tenant: 'hotel-1' })
 * const { certificate, caChain } = ca.enroll(enrollRequestFor(token, csr), 'cli')
 * ```
 */

export { CaService, type CaInitOptions, type CaOpenOptions, type Enrollment } from './service.js'
export { TokenStore } from './tokens.js'
export { CA_MIGRATIONS } from './schema.js'
export { CaDirectory } from './directory.js'
export { crlEtag, type PublishedCrl } from './crl.js'
export { Registry, type CertificateRecord, type CertificateTarget } from './registry.js'
export { selectProvisioner, tokenProvisioner, tokenTpmProvisioner, type Authorization, type Provisioner, type ProvisionerContext } from './provisioners/index.js'
export { AttestationRegistry, DEFAULT_ATTESTATION_SETTINGS, NonceStore } from '../attestation/verifier/index.js'
export type { AttestationMode, AttestationRecord, AttestationSettings, DriftAction, IssuedNonce, ReattestVerdict } from '../attestation/verifier/index.js'
export type { ReattestationSink, ReattestOutcome, ReattestResult } from '../attestation/verifier/reattest.js'
export type { RotationRequest } from '../protocol/enroll.js'
export { rotationMessage } from '../protocol/enroll.js'
