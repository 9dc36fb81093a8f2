// What both stacks share: the data channel wrapper (bounded messages, one close), the session's
// life (one deadline, one failure, one release) and the checks on a peer's session description.

import { EventEmitter } from 'node:events'

import { createError, type ErrorCode, ZtError } from '../errors.js'
import { sdpFingerprint } from '../protocol/signal.js'
import { MAX_SDP_LENGTH } from './constants.js'

/** An open WebRTC data channel. Messages above the session's size limit are refused both ways. */
export interface DataChannel {
  /** The label the offerer gave the channel. */
  readonly label: string
  /**
   * Sends one message. Throws `ERR_WEBRTC_MESSAGE_SIZE` above the size limit and
   * `ERR_WEBRTC_CLOSED` once the channel ended.
   */
  send(data: string | Uint8Array): void
  /** Closes the channel and its session. */
  close(): void
  on(event: 'message', listener: (data: Buffer | string) => void): this
  on(event: 'close', listener: () => void): this
}

/** The stack-specific part of a channel: what {@link Channel} drives. */
export interface RawChannel {
  sendText(text: string): void
  sendBinary(data: Uint8Array): void
  close(): void
}

/** A {@link DataChannel} over a stack's channel; the session feeds it messages and its end. */
export class Channel extends EventEmitter implements DataChannel {
  readonly label: string
  readonly #raw: RawChannel
  readonly #maxMessageSize: number
  readonly #onClose: () => void
  #closed = false

  constructor(label: string, raw: RawChannel, maxMessageSize: number, onClose: () => void) {
    super()
    this.label = label
    this.#raw = raw
    this.#maxMessageSize = maxMessageSize
    this.#onClose = onClose
  }

  send(data: string | Uint8Array): void {
    if (this.#closed) throw createError('ERR_WEBRTC_CLOSED', 'the data channel is closed')
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    if (size > this.#maxMessageSize) throw createError('ERR_WEBRTC_MESSAGE_SIZE', `a data channel message is limited to ${this.#maxMessageSize} bytes`)
    if (typeof data === 'string') this.#raw.sendText(data)
    else this.#raw.sendBinary(data)
  }

  close(): void {
    this.ended()
  }

  /** A message from the peer: delivered, or, above the limit, the end of the session (fail closed). */
  received(data: Buffer | string): void {
    if (this.#closed) return
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    if (size > this.#maxMessageSize) {
      this.ended()
      return
    }
    this.emit('message', data)
  }

  /** Ends the channel once: closes the stack's channel, the session, and tells the listeners. */
  ended(): void {
    if (this.#closed) return
    this.#closed = true
    try {
      this.#raw.close()
    } catch {}
    this.#onClose()
    this.emit('close')
    this.removeAllListeners('message')
  }
}

/**
 * A session's one deadline and one outcome: `channel` settles once, with the open channel or
 * with the first failure, and a failure or a close releases the stack's resources (`release`).
 */
export class Lifecycle {
  readonly channel: Promise<DataChannel>
  #resolve!: (channel: DataChannel) => void
  #reject!: (error: ZtError) => void
  #timer: NodeJS.Timeout | undefined
  #settled = false
  #closed = false
  #open: Channel | undefined
  readonly #release: () => void
  readonly #signal: AbortSignal | undefined
  readonly #onAbort = () => this.fail(createError('ERR_ABORTED', 'the WebRTC session was aborted'))

  constructor(timeoutMs: number, release: () => void, signal?: AbortSignal) {
    this.channel = new Promise<DataChannel>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // A caller that never awaits `channel` must not crash the process with an unhandled rejection.
    this.channel.catch(() => {})
    this.#release = release
    this.#signal = signal
    this.#timer = setTimeout(() => this.fail(createError('ERR_WEBRTC_TIMEOUT', `the data channel did not open within ${timeoutMs} ms`)), timeoutMs)
    if (signal?.aborted) queueMicrotask(this.#onAbort)
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  /** Whether the session has ended (failed or closed). */
  get closed(): boolean {
    return this.#closed
  }

  /** The channel opened: `channel` resolves with it (once; later opens are closed at once). */
  opened(channel: Channel): void {
    if (this.#settled) {
      channel.ended()
      return
    }
    this.#settled = true
    this.#open = channel
    this.#stopTimer()
    this.#resolve(channel)
  }

  /** The session failed: `channel` rejects (if it has not opened), and everything is released. */
  fail(error: ZtError): void {
    if (!this.#settled) {
      this.#settled = true
      this.#reject(error)
    }
    this.close()
  }

  /** Ends the session: the channel (if open) closes, the stack is released, once. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (!this.#settled) {
      this.#settled = true
      this.#reject(createError('ERR_WEBRTC_CLOSED', 'the WebRTC session was closed before its data channel opened'))
    }
    this.#stopTimer()
    this.#signal?.removeEventListener('abort', this.#onAbort)
    this.#open?.ended()
    try {
      this.#release()
    } catch {}
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * What every stack's session does the same way: the role, the one answer, the gathering wait,
 * the meaning of the connection's states, the one data channel. A stack supplies the calls.
 */
export abstract class StackSession {
  protected readonly lifecycle: Lifecycle
  protected role: 'offerer' | 'answerer' | undefined
  readonly #timeoutMs: number
  readonly #maxMessageSize: number
  #iceConnected = false
  #answered = false
  #adopted = false
  #gathering: Promise<void> | undefined

  constructor(timeoutMs: number, maxMessageSize: number, signal?: AbortSignal) {
    this.#timeoutMs = timeoutMs
    this.#maxMessageSize = maxMessageSize
    this.lifecycle = new Lifecycle(timeoutMs, () => this.release(), signal)
  }

  get channel(): Promise<DataChannel> {
    return this.lifecycle.channel
  }

  localDescription(): Promise<string> {
    if (this.lifecycle.closed) return Promise.reject(createError('ERR_WEBRTC_CLOSED', 'the WebRTC session is closed'))
    this.#gathering ??= gathered(this.lifecycle, (done) => this.whenGathered(done), this.#timeoutMs)
    return this.#gathering.then(() => {
      const sdp = this.currentDescription()
      if (sdp === undefined) throw createError('ERR_WEBRTC_CLOSED', 'the WebRTC session has no local description')
      return sdp
    })
  }

  async acceptAnswer(sdp: string): Promise<void> {
    if (this.lifecycle.closed) throw createError('ERR_WEBRTC_CLOSED', 'the WebRTC session is closed')
    if (this.role !== 'offerer' || this.#answered) throw createError('ERR_WEBRTC_SDP', 'only an offering session takes an answer, once')
    this.#answered = true
    try {
      await this.applyAnswer(checkRemoteDescription(sdp))
    } catch (error) {
      const failure = await this.answerFailure(error)
      this.lifecycle.fail(failure)
      throw failure
    }
  }

  close(): void {
    this.lifecycle.close()
  }

  /** The ICE state changed (the stack's names: `connected`, `completed`, `failed`…). */
  protected iceStateChanged(state: string): void {
    if (state === 'connected' || state === 'completed') this.#iceConnected = true
    if (state === 'failed') this.lifecycle.fail(createError('ERR_WEBRTC_ICE', 'ICE found no working path to the peer'))
  }

  /** The connection's state changed. `failed` after ICE connected is the DTLS handshake. */
  protected connectionStateChanged(state: string): void {
    if (state === 'failed') {
      this.lifecycle.fail(this.#iceConnected
        ? createError('ERR_WEBRTC_DTLS', 'the DTLS handshake failed: the peer did not prove the certificate of its session description')
        : createError('ERR_WEBRTC_ICE', 'ICE found no working path to the peer'))
    } else if (state === 'closed' || state === 'disconnected') {
      this.lifecycle.fail(createError('ERR_WEBRTC_CLOSED', 'the peer connection ended'))
    }
  }

  /**
   * Takes a stack's data channel as the session's one channel: the offerer's own, or the first
   * the answerer receives. Any other is refused (undefined: the caller closes it).
   */
  protected adopt(label: string, raw: RawChannel, incoming: boolean): Channel | undefined {
    if (this.#adopted || (incoming && this.role !== 'answerer')) return undefined
    this.#adopted = true
    return new Channel(label, raw, this.#maxMessageSize, () => this.lifecycle.close())
  }

  /** Why applying an answer failed: an unusable answer unless the stack knows better. */
  protected async answerFailure(error: unknown): Promise<ZtError> {
    if (error instanceof ZtError) return error
    return stackError('ERR_WEBRTC_SDP', 'the answer is not a usable session description', error)
  }

  /** Calls `done` once the stack has gathered every local candidate. */
  protected abstract whenGathered(done: () => void): void
  /** The complete local description, as it is handed out. */
  protected abstract currentDescription(): string | undefined
  protected abstract applyAnswer(sdp: string): void | Promise<void>
  /** Closes the stack's connection (once, from the lifecycle). */
  protected abstract release(): void
}

/** Waits for `ready` (a stack's "gathering complete"), or fails with `ERR_WEBRTC_TIMEOUT`/the session's end. */
export function gathered(lifecycle: Lifecycle, ready: (done: () => void) => void, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = createError('ERR_WEBRTC_TIMEOUT', `ICE gathering did not complete within ${timeoutMs} ms`)
      lifecycle.fail(error)
      reject(error)
    }, timeoutMs)
    lifecycle.channel.catch((error: unknown) => {
      clearTimeout(timer)
      reject(error)
    })
    ready(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/**
 * The first, stack-independent look at a peer's session description: bounded, text, and with
 * the parts the security of the channel rests on (a DTLS fingerprint, ICE credentials, a data
 * section). The stack parses it fully; this only refuses early, with a typed error, what no
 * stack may be handed. The signed-offer rules (the fingerprint bound to the signer) belong to
 * the signaling layer.
 */
export function checkRemoteDescription(sdp: unknown): string {
  if (typeof sdp !== 'string') throw createError('ERR_WEBRTC_SDP', 'a session description must be a string')
  if (sdp.length === 0 || sdp.length > MAX_SDP_LENGTH) throw createError('ERR_WEBRTC_SDP', `a session description must be 1 to ${MAX_SDP_LENGTH} bytes`)
  if (!sdp.startsWith('v=0')) throw createError('ERR_WEBRTC_SDP', 'a session description must start with v=0')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(sdp)) throw createError('ERR_WEBRTC_SDP', 'a session description holds control characters')
  const lines = sdp.split(/\r?\n/)
  const has = (prefix: string) => lines.some((line) => line.startsWith(prefix))
  // The fingerprint rule is the core's, the one signed offers are held to (exactly one sha-256
  // fingerprint, agreed by every section): a description that could never be signed is not applied.
  try {
    sdpFingerprint(sdp)
  } catch (error) {
    throw createError('ERR_WEBRTC_SDP', `a session description must carry exactly one sha-256 DTLS fingerprint (${error instanceof ZtError ? error.code : 'unreadable'})`, { cause: error })
  }
  if (!has('a=ice-ufrag:') || !has('a=ice-pwd:')) throw createError('ERR_WEBRTC_SDP', 'a session description must carry ICE credentials')
  if (!lines.some((line) => /^m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel/.test(line))) {
    throw createError('ERR_WEBRTC_SDP', 'a session description must offer a data channel (m=application … UDP/DTLS/SCTP webrtc-datachannel)')
  }
  return sdp
}

/** A stack's failure as a typed error: what the stack said stays in `cause`, never in the message. */
export function stackError(code: ErrorCode, message: string, cause: unknown): ZtError {
  return cause instanceof ZtError ? cause : createError(code, message, { cause })
}

/** A module loaded on its first use, once; `loaded` says whether that has happened. */
export function lazyModule<T>(importer: () => Promise<unknown>): (() => Promise<T>) & { readonly loaded: boolean } {
  let loading: Promise<T> | undefined
  const load = () => {
    loading ??= importer().then((module) => ((module as { default?: T }).default ?? module) as T)
    return loading
  }
  return Object.defineProperty(load, 'loaded', { get: () => loading !== undefined }) as (() => Promise<T>) & { readonly loaded: boolean }
}
