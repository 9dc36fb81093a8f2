/** Secure channels: mutual TLS 1.3 and Noise links bound to device certificates, as Node streams. */
export { NoiseLinkContext, wrapNoise, type NoiseCipher, type NoiseLinkContextInit, type NoiseLinkInit, type SecureStream } from './noise-link.js'
export { LiveLinks, watchCrlFile, type WatchCrlInit } from './revocations.js'
export { secureTls, TlsContext, type SecureTlsInit, type TlsContextInit } from './tls.js'
export { connectSecure, createSecureServer, type ConnectSecureInit, type SecureEndpointInit, type SecureServer } from './endpoints.js'
export { Mux, MuxStream, MUX_LIMITS, MUX_RESET_CODES, type MuxHandler, type MuxInit, type MuxOpenInit } from './mux.js'
export { answerBody, requestOverStream, type StreamAnswer, type StreamRequest } from './http.js'
