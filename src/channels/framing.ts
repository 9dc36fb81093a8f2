/**
 * Length-prefixed framing: each frame is a 2-byte big-endian length and that many bytes, so a
 * frame never exceeds 65535 bytes (a Noise message's limit). The decoder holds at most one
 * partial frame and refuses a length above its maximum before buffering it.
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
  /** The largest frame accepted; a protocol may raise it after its handshake. */
  maxFrameLength: number
  #pending: Buffer = Buffer.alloc(0)

  constructor(maxFrameLength = MAX_FRAME_LENGTH) {
    this.maxFrameLength = maxFrameLength
  }

  /** Adds bytes and returns every frame now complete; throws `ERR_FRAME_TOO_LARGE` on an oversized length. */
  push(chunk: Uint8Array): Buffer[] {
    // No copy when nothing is pending: frames are views of the chunk, which stream chunks allow.
    this.#pending = this.#pending.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.#pending, chunk])
    const frames: Buffer[] = []
    while (this.#pending.length >= 2) {
      const length = this.#pending.readUInt16BE(0)
      if (length > this.maxFrameLength) throw createError('ERR_FRAME_TOO_LARGE', `a peer sent a frame of ${length} bytes (limit ${this.maxFrameLength})`)
      if (this.#pending.length < 2 + length) break
      frames.push(this.#pending.subarray(2, 2 + length))
      this.#pending = this.#pending.subarray(2 + length)
    }
    return frames
  }

  /** Bytes of an unfinished frame. */
  get buffered(): number {
    return this.#pending.length
  }
}
