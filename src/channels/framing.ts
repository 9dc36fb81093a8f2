/**
 * Length-prefixed framing of handshake messages: each frame is a 2-byte big-endian length and
 * that many bytes, so a frame never exceeds 65535 bytes (a Noise message's limit). The decoder
 * cuts frames one at a time, refuses a length above its maximum before buffering the frame, and
 * hands back the bytes after the last frame taken, so the next layer starts exactly there.
 */

import { createError } from '../errors.js'

/** Largest frame body. */
export const MAX_FRAME_LENGTH = 65535

/** Prefixes `body` with its length. */
export function encodeFrame(body: Uint8Array): Buffer {
  if (body.length > MAX_FRAME_LENGTH) throw createError('ERR_FRAME_TOO_LARGE', `a frame holds at most ${MAX_FRAME_LENGTH} bytes`)
  const frame = Buffer.allocUnsafe(2 + body.length)
  frame.writeUInt16BE(body.length, 0)
  frame.set(body, 2)
  return frame
}

/** Cuts a byte stream into frames. */
export class FrameDecoder {
  readonly maxFrameLength: number
  #pending: Buffer = Buffer.alloc(0)

  constructor(maxFrameLength = MAX_FRAME_LENGTH) {
    this.maxFrameLength = maxFrameLength
  }

  /** Adds received bytes. */
  push(chunk: Uint8Array): void {
    // No copy when nothing is pending: frames are views of the chunk, which stream chunks allow.
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.#pending = this.#pending.length === 0 ? bytes : Buffer.concat([this.#pending, bytes])
  }

  /** The next complete frame, if there is one; throws `ERR_FRAME_TOO_LARGE` on an oversized length. */
  next(): Buffer | undefined {
    if (this.#pending.length < 2) return undefined
    const length = this.#pending.readUInt16BE(0)
    if (length > this.maxFrameLength) throw createError('ERR_FRAME_TOO_LARGE', `a peer sent a frame of ${length} bytes (limit ${this.maxFrameLength})`)
    if (this.#pending.length < 2 + length) return undefined
    const frame = this.#pending.subarray(2, 2 + length)
    this.#pending = this.#pending.subarray(2 + length)
    return frame
  }

  /** Bytes received and not taken as frames yet. */
  get buffered(): number {
    return this.#pending.length
  }

  /** Removes and returns the bytes not taken as frames yet. */
  takeRest(): Buffer {
    const rest = this.#pending
    this.#pending = Buffer.alloc(0)
    return rest
  }
}
