/**
 * What the device and the CA share: the core's protocol codecs and rules, wrapped for
 * TypeScript. This folder imports neither `identity/` nor `ca/`.
 */
export { signObject, verifyObject, signedObjectLabels, type ObjectSigner, type VerifiedObject } from './signed.js'
export { checkDeviceId, checkTenant, checkRoles, normalizeSerial } from './ids.js'
