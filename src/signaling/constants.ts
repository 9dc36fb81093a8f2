/** Actions and defaults of the signaling guard. */

/** The policy actions (and audit actions) of the three kinds of signed signaling message. */
export const SIGNAL_ACTIONS = {
  offer: 'signal.offer',
  answer: 'signal.answer',
  candidate: 'signal.candidate',
} as const

/** One of {@link SIGNAL_ACTIONS}. */
export type SignalAction = (typeof SIGNAL_ACTIONS)[keyof typeof SIGNAL_ACTIONS]

/** How old a signed offer, answer or candidate may be, ms. */
export const DEFAULT_SIGNAL_WINDOW_MS = 60_000

/** An HTTP status a signaling endpoint refuses with. */
export type RefusalStatus = 400 | 401 | 403 | 404 | 405 | 413 | 429 | 503

/**
 * The HTTP status of each refusal a signaling endpoint (the node's `POST /offer`) answers with,
 * by code; every other code is 401 (the message does not authenticate). 403: the signer is
 * authenticated but not allowed. 400: the bytes are not a signaling message (or the request is
 * not one). 404/405/413/429: the HTTP request itself (route, method, size, the peer's rate).
 * 503: the replay window is full (retry later; the guard fails closed meanwhile).
 */
export const REFUSAL_STATUS: Readonly<Record<string, RefusalStatus>> = Object.freeze({
  ERR_POLICY_DENIED: 403,
  ERR_TENANT_MISMATCH: 403,
  ERR_SIGNAL_RECIPIENT: 403,
  ERR_WIRE_MALFORMED: 400,
  ERR_WIRE_VERSION: 400,
  ERR_SIGNAL_MALFORMED: 400,
  ERR_SIGNAL_SDP: 400,
  ERR_INVALID_ARG: 400,
  ERR_REPLAY_FULL: 503,
  ERR_BAD_REQUEST: 400,
  ERR_PEM: 400,
  ERR_CERT_MALFORMED: 400,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
})
