/**
 * The frames between the staff page and the gateway, JSON text over the page's WebSocket. Strict:
 * exact key sets, types and sizes; every failure is a `ZtError` (`ERR_HUB_FRAME`,
 * `ERR_HUB_FRAME_SIZE`). The page never builds or parses a protocol byte: it signs the
 * `toBeSigned` bytes the gateway's core prepared and gets back what the core verified.
 *
 * Page to gateway:
 * - `{type:'hello', chain}`: its certificate chain (PEM, leaf first); answered by a challenge.
 * - `{type:'answer', signature}` (the WebCrypto signature over the challenge's `toBeSigned`) or
 *   `{type:'answer', object}` (a complete signed `hub-challenge` object, base64).
 * - `{type:'prepare', id, what:'offer', to, sdp}`, `{type:'prepare', id, what:'presence'}`.
 * - `{type:'signed', id, signature}`: the signature of a prepared object.
 *
 * Gateway to page: `{type:'challenge', toBeSigned}`, `{type:'welcome', identity, hubId}`,
 * `{type:'tbs', id, toBeSigned}`, `{type:'sent', id, digest}`, `{type:'answer', from, sdp,
 * offerDigest}` (verified by the guard), `{type:'presence', deviceId, online}`, `{type:'error',
 * code, message, id?}`.
 */

import { createError } from '../errors.js'
import { checkDeviceId } from '../protocol/index.js'
import { MAX_STAFF_FRAME_BYTES } from './constants.js'

export type PageFrame =
  | { type: 'hello'; chain: string }
  | { type: 'answer'; signature?: Buffer; object?: Buffer }
  | { type: 'prepare'; id: number; what: 'offer'; to: string; sdp: string }
  | { type: 'prepare'; id: number; what: 'presence' }
  | { type: 'signed'; id: number; signature: Buffer }

/** Parses one frame of the page. */
export function parsePageFrame(data: Buffer | string, isBinary = false): PageFrame {
  const text = typeof data === 'string' ? data : data.toString('utf8')
  if (isBinary) throw createError('ERR_HUB_FRAME', 'staff frames are JSON text')
  if (Buffer.byteLength(text) > MAX_STAFF_FRAME_BYTES) throw createError('ERR_HUB_FRAME_SIZE', 'frame too large')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw createError('ERR_HUB_FRAME', 'a staff frame is JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw createError('ERR_HUB_FRAME', 'a staff frame is a JSON object')
  const record = value as Record<string, unknown>
  switch (record.type) {
    case 'hello':
      keys(record, ['type', 'chain'])
      return { type: 'hello', chain: text1(record, 'chain', 16 * 1024) }
    case 'answer':
      keys(record, ['type'], ['signature', 'object'])
      if ((record.signature === undefined) === (record.object === undefined)) throw createError('ERR_HUB_FRAME', 'an answer carries a signature or an object')
      return record.signature !== undefined ? { type: 'answer', signature: base64(record, 'signature', 128) } : { type: 'answer', object: base64(record, 'object', 16 * 1024) }
    case 'prepare': {
      const id = frameId(record)
      if (record.what === 'offer') {
        keys(record, ['type', 'id', 'what', 'to', 'sdp'])
        const to = text1(record, 'to', 64)
        try {
          checkDeviceId(to)
        } catch {
          throw createError('ERR_HUB_FRAME', 'to is not a device id')
        }
        return { type: 'prepare', id, what: 'offer', to, sdp: text1(record, 'sdp', 16 * 1024) }
      }
      if (record.what === 'presence') {
        keys(record, ['type', 'id', 'what'])
        return { type: 'prepare', id, what: 'presence' }
      }
      throw createError('ERR_HUB_FRAME', 'what must be offer or presence')
    }
    case 'signed':
      keys(record, ['type', 'id', 'signature'])
      return { type: 'signed', id: frameId(record), signature: base64(record, 'signature', 128) }
    default:
      throw createError('ERR_HUB_FRAME', 'unknown frame type')
  }
}

function keys(record: Record<string, unknown>, required: string[], optional: string[] = []): void {
  for (const key of required) if (!(key in record)) throw createError('ERR_HUB_FRAME', `missing ${key}`)
  for (const key of Object.keys(record)) if (!required.includes(key) && !optional.includes(key)) throw createError('ERR_HUB_FRAME', `unknown field ${key.slice(0, 32)}`)
}

function text1(record: Record<string, unknown>, key: string, max: number): string {
  const value = record[key]
  if (typeof value !== 'string' || value.length === 0) throw createError('ERR_HUB_FRAME', `${key} must be a non-empty string`)
  if (value.length > max) throw createError('ERR_HUB_FRAME_SIZE', `${key} is too long`)
  return value
}

function frameId(record: Record<string, unknown>): number {
  const id = record.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw createError('ERR_HUB_FRAME', 'id must be a non-negative integer')
  return id
}

function base64(record: Record<string, unknown>, key: string, maxBytes: number): Buffer {
  const value = text1(record, key, Math.ceil(maxBytes / 3) * 4)
  const bytes = Buffer.from(value, 'base64')
  if (bytes.toString('base64') !== value) throw createError('ERR_HUB_FRAME', `${key} is not canonical base64`)
  return bytes
}
