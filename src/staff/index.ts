/**
 * The staff page (seed 000's staff tablet): a browser client whose key is a non-extractable
 * WebCrypto key, enrolled with a CSR made in the page, admitted to the hub by a signed challenge,
 * and signing its offers through the core's prepare/assemble path. See `server.ts`.
 */
export { StaffServer, type StaffEnroller, type StaffServerInit } from './server.js'
export { parsePageFrame, type PageFrame } from './frames.js'
export { STAFF_ROUTES, DEFAULT_STAFF_ROLE, DEFAULT_CHALLENGE_MAX_AGE_MS } from './constants.js'
