/** The routes of the staff page's server. */
export const STAFF_ROUTES = Object.freeze({
  page: '/staff/',
  app: '/staff/app.js',
  reflect: '/staff/vendor/reflect.js',
  x509: '/staff/vendor/x509.js',
  enroll: '/staff/v1/enroll',
  socket: '/staff/v1/ws',
})

/** The role a staff certificate must carry to join the hub from the page. */
export const DEFAULT_STAFF_ROLE = 'staff'

/** How long a challenge may be answered, ms. */
export const DEFAULT_CHALLENGE_MAX_AGE_MS = 30_000

/** The largest frame the page may send, bytes (an SDP is at most 16 KiB, a chain three certificates). */
export const MAX_STAFF_FRAME_BYTES = 64 * 1024

/** Prepared objects one page may have waiting for a signature. */
export const MAX_PENDING_SIGNATURES = 8

/** How long a page's presence lease lives, ms (renewed by the page at a third of it). */
export const STAFF_LEASE_MS = 60_000

/** Audit actions. */
export const AUDIT_STAFF_ENROLL = 'staff.enroll'
export const AUDIT_STAFF_JOIN = 'staff.join'
export const AUDIT_STAFF_FRAME = 'staff.frame'
