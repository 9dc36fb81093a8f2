/** Defaults of the peer connector. */

/** Each path of the fallback chain may take this long (signaling, ICE, DTLS, the channel open), ms. */
export const DEFAULT_PATH_TIMEOUT_MS = 10_000

/** The WebRTC session's own time limit (gathering, the channel open), ms. */
export const DEFAULT_SESSION_TIMEOUT_MS = 8_000

/** The time limit of a bootstrap probe (a mutual-TLS handshake that learns the device id), ms. */
export const BOOTSTRAP_PROBE_TIMEOUT_MS = 5_000

/** Largest signed answer read from a peer's `POST /offer`, bytes. */
export const MAX_ANSWER_BYTES = 64 * 1024

/** Live data channels held at most (all peers together); a new one beyond it is closed at once. */
export const MAX_CHANNELS = 256

/** Answering sessions opening at once (verified offers not yet open or failed); beyond, `ERR_RATE_LIMITED`. */
export const MAX_PENDING_ANSWERS = 32

/** The data channel label of a peer link. */
export const CHANNEL_LABEL = 'ztmesh'

/** The local API route offers are posted to (the node's `LOCAL_API_ROUTES.offer`). */
export const OFFER_ROUTE = '/offer'

/** How long `connect` waits for its peer to be discovered before trying the paths anyway, ms. */
export const DEFAULT_DISCOVERY_WAIT_MS = 30_000
