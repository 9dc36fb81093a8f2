/**
 * ztmesh: a zero-trust, local-first security runtime for fleets of edge devices.
 *
 * @packageDocumentation
 */
export * from './crypto/index.js'
export * from './errors.js'
export * from './keystore/index.js'
export * from './noise/index.js'
export * from './pki/index.js'
export * from './channels/index.js'
export * from './attestation/index.js'
export * from './tpm/index.js'
export * from './protocol/index.js'
