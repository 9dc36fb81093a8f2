/**
 * The message layer: many typed streams over one secure link, each opened with a protocol id,
 * as js-libp2p does with yamux and multistream-select. Quotes, gossip, bundles and signaling
 * share one authenticated link to a peer.
 *
 * Every frame is encoded and decoded by the core's sans-IO session (`ztmesh_core::mux`); this
 * file moves bytes between it, the link and Node streams. One native call per received chunk
 * returns all of its events; one per write returns its frames.
 *
 * Flow control is per stream: each direction may have at most `window` bytes in flight, and a
 * stream returns credit only as its reader consumes, so a stalled reader stops its own stream
 * and nothing else, and a session buffers at most `maxStreams × window` bytes. What a stream
 * holds for a reader that is behind is copied into blocks of its own, so that many tiny frames
 * cost their bytes and not an object each, and no view of the link's chunks outlives them. A
 * peer that breaks a rule (sends beyond its credit, floods opens, sends garbage) is cut off: the
 * session ends with a typed {@link MuxError}, every stream is destroyed with it, and the link is
 * closed. A peer that never returns credit cannot hold a writer forever: the stream is reset
 * with `ERR_MUX_CREDIT_TIMEOUT`. Whatever a handler does (throws, rejects, destroys its stream
 * with nobody listening), its stream is reset and the session goes on.
 *
 * @example
 * ```ts
 * const mux = new Mux(link, { role: 'responder' })
 * mux.handle('/ztmesh/echo/1', (stream, peer) => stream.pipe(stream))
 * // on the other side
 * const stream = await new Mux(link, { role: 'initiator' }).open('/ztmesh/echo/1', { signal })
 * ```
 */

import { Duplex } from 'node:stream'

import { createError, ZtError, type ErrorCode } from '../errors.js'
import { native, nativeError } from '../native.js'
import type { PeerIdentity } from '../primitives/pki/index.js'
import { reserve, take } from '../slab.js'
import { whenDrained } from './flow.js'
import type { SecureStream } from './noise-link.js'

type NativeMuxSession = InstanceType<typeof native.MuxSession>
type MuxEvent = ReturnType<NativeMuxSession['feed']>['events'][number]

/** The protocol constants, from the core. */
export const MUX_LIMITS = native.muxLimits()

/** The most stream data one native `send` frames: a few frames, so its region stays small. */
const SEND_SLICE = 4 * MUX_LIMITS.maxFrameBody
/** The room the core's `send` needs for a slice (asked once, not per write). */
const SEND_ROOM = native.MuxSession.sendLengthBound(SEND_SLICE)

/** The size of the blocks a stream copies data into while its reader is behind. */
const HOLD_BLOCK = 16 * 1024

/** The codes a stream reset carries (the core's `reset_code`). */
export const MUX_RESET_CODES = Object.freeze(native.muxResetCodes())

/** The codes a go-away carries (the core's `go_away_code`). */
const GO_AWAY_CODES = native.muxGoAwayCodes()

/** Options of {@link Mux}. */
export interface MuxInit {
  /** `initiator` (the side that connected: odd stream ids) or `responder` (even ids). */
  role: 'initiator' | 'responder'
  /** The most streams open at once, both sides' together. Default: the core's (64). */
  maxStreams?: number
  /** Bytes each stream may have received and not read (256 KiB to 16 MiB). Default: the core's (256 KiB). */
  window?: number
  /** How long {@link Mux.open} waits for the peer's answer, ms. Default 10 s. */
  openTimeoutMs?: number
  /**
   * How long a write may wait for the peer's credit, ms, before its stream is reset with
   * `ERR_MUX_CREDIT_TIMEOUT`: a peer that never reads cannot hold a writer (and what it
   * wrote) forever. Default 30 s.
   */
  creditTimeoutMs?: number
  /**
   * Bytes of answers (accepts, refusals, resets, credit) the peer may make this side queue on
   * the link while the link is backed up, before the session ends with `ERR_MUX_STALLED`: a
   * peer that floods opens and never reads cannot grow our memory. Default 1 MiB.
   */
  maxQueuedControlBytes?: number
}

/** Options of {@link Mux.open}. */
export interface MuxOpenInit {
  signal?: AbortSignal
  /** Overrides the session's `openTimeoutMs`. */
  timeoutMs?: number
}

/** A handler of the streams the peer opens for one protocol. */
export type MuxHandler = (stream: MuxStream, peer: PeerIdentity) => void | Promise<void>

interface PendingOpen {
  protocol: string
  resolve(stream: MuxStream): void
  reject(error: ZtError): void
}

/** One side of a multiplexed session over a secure link. */
export class Mux {
  /** The link's verified peer: every stream's peer. */
  readonly peer: PeerIdentity
  /** Resolves when the session ends: with the error that ended it, or undefined for a normal close. */
  readonly closed: Promise<ZtError | undefined>
  readonly #link: SecureStream
  readonly #session: NativeMuxSession
  readonly #handlers = new Map<string, MuxHandler>()
  readonly #streams = new Map<number, MuxStream>()
  readonly #pending = new Map<number, PendingOpen>()
  readonly #openTimeoutMs: number
  readonly #controlLimit: number
  /** Chunks that arrived while an earlier one was being dispatched (a synchronous link). */
  readonly #inbox: Buffer[] = []
  #receiving = false
  /** Control bytes written since the link last drained, while it was backed up. */
  #controlBacklog = 0
  /** Bytes each stream may have received and not read. */
  readonly window: number
  /** @internal How long a write waits for credit, ms. */
  readonly creditTimeoutMs: number
  #ended = false
  #resolveClosed!: (error: ZtError | undefined) => void

  constructor(link: SecureStream, init: MuxInit) {
    this.#link = link
    this.peer = link.peer
    this.#openTimeoutMs = init.openTimeoutMs ?? 10_000
    this.creditTimeoutMs = init.creditTimeoutMs ?? 30_000
    this.#session = callMux(() => new native.MuxSession(init.role, init.maxStreams, init.window))
    this.window = this.#session.window
    // Stream data queued on the link is bounded by the peer's credit; answers are not, so
    // they are counted while the link is backed up.
    this.#controlLimit = init.maxQueuedControlBytes ?? 1 << 20
    link.on('drain', () => (this.#controlBacklog = 0))
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve))
    link.on('data', (chunk: Buffer) => this.#receive(chunk))
    link.once('end', () => this.#end(createError('ERR_CLOSED', 'the link ended')))
    link.once('close', () => this.#end(createError('ERR_CLOSED', 'the link closed')))
    link.once('error', (error) => this.#end(createError('ERR_CLOSED', 'the link failed', { cause: error })))
  }

  /** Streams open now, both sides'. */
  get streamCount(): number {
    return this.#streams.size + this.#pending.size
  }

  /** Runs `handler` for every stream the peer opens for `protocol`; others are refused. */
  handle(protocol: string, handler: MuxHandler): void {
    this.#handlers.set(protocol, handler)
  }

  /** Stops accepting streams for `protocol` (open ones go on). */
  unhandle(protocol: string): void {
    this.#handlers.delete(protocol)
  }

  /**
   * Opens a stream for `protocol` and resolves once the peer accepts it. Rejects with
   * `ERR_MUX_UNSUPPORTED_PROTOCOL` (no handler there), `ERR_MUX_TOO_MANY_STREAMS` (a limit on
   * either side), `ERR_TIMEOUT`, `ERR_ABORTED`, or the error that ended the session.
   */
  open(protocol: string, init: MuxOpenInit = {}): Promise<MuxStream> {
    if (this.#ended) return Promise.reject(createError('ERR_CLOSED', 'the mux session has ended'))
    if (init.signal?.aborted) return Promise.reject(createError('ERR_ABORTED', 'the open was aborted'))
    let opened: { stream: number; out: Buffer }
    try {
      opened = callMux(() => this.#session.open(protocol))
    } catch (error) {
      return Promise.reject(error)
    }
    const id = opened.stream
    const answered = new Promise<MuxStream>((resolve, reject) => {
      const cancel = (error: ZtError) => {
        if (!this.#pending.delete(id)) return
        this.#write(callMux(() => this.#session.reset(id, MUX_RESET_CODES.cancel)))
        settle()
        reject(error)
      }
      const onAbort = () => cancel(createError('ERR_ABORTED', 'the open was aborted'))
      const timer = setTimeout(() => cancel(createError('ERR_TIMEOUT', `the peer did not answer the open of ${protocol} in time`)), init.timeoutMs ?? this.#openTimeoutMs)
      const settle = () => {
        clearTimeout(timer)
        init.signal?.removeEventListener('abort', onAbort)
      }
      init.signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, {
        protocol,
        resolve: (stream) => {
          settle()
          resolve(stream)
        },
        reject: (error) => {
          settle()
          reject(error)
        },
      })
    })
    // Registered first: on a synchronous link the answer may arrive within this write.
    this.#write(opened.out)
    return answered
  }

  /** Ends the session: tells the peer, destroys every stream with `ERR_CLOSED`, ends the link. */
  close(): void {
    if (this.#ended) return
    this.#write(this.#session.goAway(GO_AWAY_CODES.normal))
    this.#end(createError('ERR_CLOSED', 'the mux session was closed'), true, true)
  }

  /** @internal Writes frames for a stream; false when the link asks to wait for 'drain'. */
  write(frames: Buffer | null): boolean {
    return this.#write(frames)
  }

  /** @internal The link, to wait for its 'drain'. */
  get link(): SecureStream {
    return this.#link
  }

  /** @internal The native session, for the streams. */
  get session(): NativeMuxSession {
    return this.#session
  }

  /** @internal A stream is gone from the session. */
  forget(id: number): void {
    this.#streams.delete(id)
  }

  /** @internal Writes answers the peer's frames called for, counting them while the link is backed up. */
  writeControl(frames: Buffer | null | undefined): void {
    if (frames !== null && frames !== undefined && this.#link.writableNeedDrain) this.#controlBacklog += frames.length
    this.#write(frames)
  }

  #write(frames: Buffer | null | undefined): boolean {
    if (frames === null || frames === undefined || frames.length === 0 || this.#link.destroyed || this.#link.writableEnded) return true
    return this.#link.write(frames)
  }

  /** Takes a chunk from the link; one that arrives while another is dispatched waits its turn. */
  #receive(chunk: Buffer): void {
    this.#inbox.push(chunk)
    if (this.#receiving) return
    this.#receiving = true
    try {
      for (let next = this.#inbox.shift(); next !== undefined && !this.#ended; next = this.#inbox.shift()) this.#feed(next)
    } finally {
      this.#inbox.length = 0
      this.#receiving = false
    }
  }

  #feed(chunk: Buffer): void {
    let result
    let region: Buffer
    try {
      result = this.#session.feed(chunk, reserve(this.#session.dataLengthBound(chunk.length)))
      region = take(result.used)
    } catch (error) {
      this.#fail(nativeError(error))
      return
    }
    this.writeControl(result.out)
    if (result.errorCode !== undefined && result.errorCode !== null) {
      // The session is over: the events before the violation no longer matter.
      if (result.goAwayCode === GO_AWAY_CODES.normal) this.#end(createError('ERR_CLOSED', 'the peer closed the mux session'), true, true)
      else this.#end(createError(result.errorCode as ErrorCode, result.errorMessage ?? undefined), true)
      return
    }
    try {
      for (const event of result.events) this.#dispatch(event, chunk, region)
    } catch (error) {
      this.#fail(nativeError(error))
      return
    }
    if (this.#controlBacklog > this.#controlLimit) {
      this.#fail(createError('ERR_MUX_STALLED', `the peer does not read: ${this.#controlBacklog} bytes of answers are queued for it`))
    }
  }

  #dispatch(event: MuxEvent, chunk: Buffer, region: Buffer): void {
    const id = event.stream
    switch (event.kind) {
      case 'opened': {
        const handler = this.#handlers.get(event.protocol ?? '')
        if (handler === undefined) {
          this.writeControl(callMux(() => this.#session.refuse(id, MUX_RESET_CODES.unsupportedProtocol)))
          return
        }
        const accepted = callMux(() => this.#session.accept(id))
        // Empty: the peer reset the stream in the same chunk that opened it.
        if (accepted.length === 0) return
        // Registered before the accept goes out: on a synchronous link the peer's data may
        // arrive within the write.
        const stream = new MuxStream(this, id, event.protocol ?? '')
        this.#streams.set(id, stream)
        this.writeControl(accepted)
        runHandler(handler, stream, this.peer)
        return
      }
      case 'accepted': {
        const pending = this.#pending.get(id)
        if (pending === undefined) return
        this.#pending.delete(id)
        const stream = new MuxStream(this, id, pending.protocol)
        this.#streams.set(id, stream)
        pending.resolve(stream)
        return
      }
      case 'reset': {
        const error = createError(event.errorCode as ErrorCode, event.errorMessage ?? undefined)
        const pending = this.#pending.get(id)
        if (pending !== undefined) {
          this.#pending.delete(id)
          pending.reject(error)
        } else this.#toStream(id, (stream) => stream.remoteReset(error))
        return
      }
      case 'data':
        // A view, not a copy: link chunks are ours to keep (slab regions, never reused).
        this.#toStream(id, (stream) => stream.deliver((event.inChunk === true ? chunk : region).subarray(event.start!, event.end!)))
        return
      case 'credit':
        this.#toStream(id, (stream) => stream.credited())
        return
      case 'closed':
        this.#toStream(id, (stream) => stream.remoteClosed())
        return
    }
  }

  /**
   * Hands an event to a stream. What its listeners throw (they run within `push` and write
   * callbacks) fails that stream, not the session.
   */
  #toStream(id: number, action: (stream: MuxStream) => void): void {
    const stream = this.#streams.get(id)
    if (stream === undefined) return
    try {
      action(stream)
    } catch (error) {
      stream.destroy(asError(error))
    }
  }

  /** A failure found on this side: tell the peer (go-away, protocol error) and close the link. */
  #fail(error: ZtError): void {
    this.#write(this.#session.goAway(GO_AWAY_CODES.protocol))
    this.#end(error, true)
  }

  /** Ends the session: every stream and pending open fails with `error`. */
  #end(error: ZtError, closeLink = false, normal = false): void {
    if (this.#ended) return
    this.#ended = true
    for (const pending of this.#pending.values()) pending.reject(error)
    this.#pending.clear()
    for (const stream of this.#streams.values()) stream.sessionEnded(error)
    this.#streams.clear()
    if (closeLink) {
      this.#link.end()
      // A peer that does not read must not hold the link open.
      setTimeout(() => this.#link.destroy(), 1000).unref()
    }
    this.#resolveClosed(normal ? undefined : error)
  }
}

/**
 * One stream of a {@link Mux}: a Duplex whose writes wait for the peer's credit and whose reads
 * return credit. `end()` half-closes this direction; `destroy(error)` resets the stream (the
 * peer sees `ERR_MUX_RESET`). A stream never raises 'error' at the process: an error reaches
 * the 'error' listeners there are and `failure`, and nothing else, so that neither a peer nor a
 * handler that forgot its listener can crash the process.
 */
export class MuxStream extends Duplex {
  /** The stream id (odd: opened by the initiator). */
  readonly id: number
  /** The protocol id it was opened with. */
  readonly protocol: string
  /** The link's verified peer. */
  readonly peer: PeerIdentity
  /** Why the stream failed (the peer, the link, a credit timeout, its own handler), if it did. */
  failure: Error | undefined
  readonly #mux: Mux
  /** Bytes delivered, and read but not reported to the core yet. */
  #delivered = 0
  #reported = 0
  #waitingForCredit: (() => void) | undefined
  #creditTimer: NodeJS.Timeout | undefined
  /** The reset code `_destroy` sends, when not the default for its error. */
  #resetCode: number | undefined
  #gone = false
  /** The block data is copied into while the reader is behind: `[#heldStart, #heldEnd)` is not pushed yet. */
  #block: Buffer | undefined
  #heldStart = 0
  #heldEnd = 0

  /** @internal */
  constructor(mux: Mux, id: number, protocol: string) {
    // Our own buffer holds what credit allows; the high-water mark only decides when `_read`
    // runs, which is when credit goes back.
    super({ readableHighWaterMark: mux.window, writableHighWaterMark: MUX_LIMITS.maxFrameBody })
    this.#mux = mux
    this.id = id
    this.protocol = protocol
    this.peer = mux.peer
    this.on('error', (error: Error) => (this.failure ??= error))
  }

  /** Bytes received and not read yet: what the peer's credit bounds (at most the window). */
  get bufferedLength(): number {
    return this.readableLength + this.#heldEnd - this.#heldStart
  }

  override _read(): void {
    if (this.readableLength === 0) this.#pushHeld()
    this.#report()
  }

  /** Every way of reading (flowing, `read()`, pipes, iteration) comes through here: after it, the
   * bytes it took are consumed and may go back as credit, and once the buffer is empty what was
   * held is pushed. (`_read` alone would not do: Node calls it once and not again until the next
   * push, which a sender out of credit never makes.) */
  override read(size?: number): any {
    const chunk: unknown = super.read(size)
    if (this.readableLength === 0) this.#pushHeld()
    this.#report()
    return chunk
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk, 0, callback)
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#gone) this.#call(() => this.#mux.write(this.#mux.session.close(this.id)))
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#waitingForCredit = undefined
    clearTimeout(this.#creditTimer)
    this.#block = undefined
    this.#heldStart = this.#heldEnd = 0
    if (!this.#gone) {
      this.#gone = true
      const code = this.#resetCode ?? (error === null ? MUX_RESET_CODES.cancel : MUX_RESET_CODES.internal)
      this.#call(() => this.#mux.write(this.#mux.session.reset(this.id, code)))
      this.#mux.forget(this.id)
    }
    callback(error)
  }

  /**
   * @internal Data from the peer. A reader that takes it at once gets a view of the link's
   * chunk; a reader that is behind gets a copy, in blocks, so that what waits for it is its
   * bytes and a few blocks, whatever the sizes of the frames they came in.
   */
  deliver(data: Buffer): void {
    this.#delivered += data.length
    // Always accepted: the peer's credit already bounds what can be buffered here.
    if (this.readableFlowing === true && this.bufferedLength === 0) this.push(data)
    else {
      this.#hold(data)
      if (this.readableLength === 0) this.#pushHeld()
    }
    this.#report()
  }

  /** @internal The peer granted credit. */
  credited(): void {
    clearTimeout(this.#creditTimer)
    const resume = this.#waitingForCredit
    this.#waitingForCredit = undefined
    resume?.()
  }

  /** @internal The peer half-closed. */
  remoteClosed(): void {
    this.#pushHeld()
    this.push(null)
    if (this.writableFinished) this.#forgetIfDone()
    else this.once('finish', () => this.#forgetIfDone())
  }

  /** @internal The peer reset the stream. */
  remoteReset(error: ZtError): void {
    this.#gone = true
    this.#mux.forget(this.id)
    this.#fail(error)
  }

  /** @internal The session ended. */
  sessionEnded(error: ZtError): void {
    this.#gone = true
    this.#fail(error)
  }

  /** Destroys the stream with what the peer, the link or a timeout did to it. */
  #fail(error: ZtError): void {
    this.failure ??= error
    this.destroy(error)
  }

  #forgetIfDone(): void {
    this.#gone = true
    this.#mux.forget(this.id)
  }

  /** Copies `data` behind what is held, pushing each block as it fills. */
  #hold(data: Buffer): void {
    for (let at = 0; at < data.length; ) {
      if (this.#block === undefined || this.#heldEnd === this.#block.length) {
        this.#pushHeld()
        this.#block = Buffer.allocUnsafeSlow(HOLD_BLOCK)
        this.#heldStart = this.#heldEnd = 0
      }
      const copied = data.copy(this.#block, this.#heldEnd, at)
      this.#heldEnd += copied
      at += copied
    }
  }

  #pushHeld(): void {
    if (this.#block === undefined || this.#heldEnd === this.#heldStart) return
    const held = this.#block.subarray(this.#heldStart, this.#heldEnd)
    this.#heldStart = this.#heldEnd
    this.push(held)
  }

  /** Sends `chunk` from `offset` as far as credit allows, then waits for credit for the rest. */
  #send(chunk: Buffer, offset: number, callback: (error?: Error | null) => void): void {
    const session = this.#mux.session
    let flowing = true
    while (offset < chunk.length) {
      const piece = chunk.subarray(offset, offset + SEND_SLICE)
      let taken: number
      try {
        const written = session.send(this.id, piece, reserve(SEND_ROOM))
        taken = session.lastTaken
        flowing = this.#mux.write(take(written)) && flowing
      } catch (error) {
        callback(nativeError(error))
        return
      }
      offset += taken
      if (taken < piece.length) {
        this.#waitingForCredit = () => this.#send(chunk, offset, callback)
        this.#creditTimer = setTimeout(() => this.#creditTimedOut(), this.#mux.creditTimeoutMs).unref()
        return
      }
    }
    if (flowing) callback()
    else whenDrained(this.#mux.link, callback)
  }

  #creditTimedOut(): void {
    this.#resetCode = MUX_RESET_CODES.creditTimeout
    this.#fail(createError('ERR_MUX_CREDIT_TIMEOUT', `the peer returned no credit in ${this.#mux.creditTimeoutMs} ms`))
  }

  /**
   * Tells the core what the reader took; the core decides when credit goes back (once half a
   * window is taken). Reads are told in batches of a quarter window, one call into the core per
   * batch instead of per chunk: a sender that has used its whole window has then been read for
   * all but less than a quarter of it, so at least three quarters have been told, past the
   * core's half, and its credit goes back.
   */
  #report(): void {
    const unreported = this.#delivered - this.bufferedLength - this.#reported
    if (this.#gone || unreported === 0 || unreported < this.#mux.window / 4) return
    this.#reported += unreported
    this.#call(() => this.#mux.writeControl(this.#mux.session.consumed(this.id, unreported)))
  }

  #call(action: () => void): void {
    try {
      action()
    } catch {
      // The session ended: the stream learns it through `sessionEnded`.
    }
  }
}

/**
 * Runs a handler on a stream the peer opened. Whatever it does (throws, rejects), its stream
 * is reset with `internal` and the session goes on.
 */
function runHandler(handler: MuxHandler, stream: MuxStream, peer: PeerIdentity): void {
  try {
    const done = handler(stream, peer)
    if (done !== undefined) Promise.resolve(done).catch((error: unknown) => stream.destroy(asError(error)))
  } catch (error) {
    stream.destroy(asError(error))
  }
}

function callMux<T>(call: () => T): T {
  try {
    return call()
  } catch (error) {
    throw nativeError(error)
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}
