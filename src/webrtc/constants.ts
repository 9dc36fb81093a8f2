/** Defaults of the WebRTC stacks (src/webrtc). */

/** How long a session may take to gather its candidates and to open its data channel (ms). */
export const DEFAULT_TIMEOUT_MS = 15_000

/** The largest data channel message a session sends or accepts (bytes), advertised in the SDP. */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024

/** The largest session description a session accepts from a peer (bytes). */
export const MAX_SDP_LENGTH = 64 * 1024

/** The address the stacks bind to unless told otherwise: loopback, so that nothing leaves the machine by default. */
export const DEFAULT_BIND_ADDRESS = '127.0.0.1'

/** The data channel label when the offerer names none. */
export const DEFAULT_LABEL = 'ztmesh'
