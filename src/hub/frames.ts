/**
 * The hub's own frames: routing metadata only, JSON text over the WebSocket, every signed
 * object (offer, answer, candidate, presence lease) carried as base64 and never looked into by
 * the hub beyond its size. The receiver verifies every object itself.
 *
 * Client to hub:
 * - `{ type: 'signal', to, kind, object, tenant? }`: relay `object` to device `to` of the sender's
 *   own tenant (`tenant`, if given, must be it: a cross-tenant relay is refused).
 * - `{ type: 'presence', lease }`: the sender's signed presence lease.
 *
 * Hub to client:
 * - `{ type: 'signal', from, kind, object }`: `from` stamped by the hub from the link's identity.
 * - `{ type: 'presence', deviceId, lease }`, `{ type: 'offline', deviceId }`.
 * - `{ type: 'revoked', crlPem }`: a device of the tenant was revoked; apply the CRL.
 * - `{ type: 'error', code, message }`: a refusal of one of the client's frames.
 *
 * Parsing is strict: exact key sets, types, the ids rule for device ids, canonical base64, and
 * bounded sizes. Every failure is a `ZtError` (`ERR_HUB_FRAME`, `ERR_HUB_FRAME_SIZE`).
 */

import { createError, isErrorCode, type ErrorCode } from '../errors.js'
import { checkDeviceId, checkTenant } from '../protocol/index.js'

/** The WebSocket path of the hub. */
export const HUB_PATH = '/hub'

/** The kinds of signaling objects a hub relays. */
export const SIGNAL_KINDS = ['offer', 'answer', 'candidate'] as const
export type SignalKind = (typeof SIGNAL_KINDS)[number]

/** The largest signed object a frame may carry by default, bytes (decoded). */
export const DEFAULT_MAX_OBJECT_BYTES = 32 * 1024

/** The largest CRL PEM a `revoked` frame may carry, characters. */
export const MAX_CRL_PEM = 256 * 1024

export type ClientFrame = { type: 'signal'; to: string; tenant?: string; kind: SignalKind; object: Buffer } | { type: 'presence'; lease: Buffer }

export type HubFrame =
  | { type: 'signal'; from: string; kind: SignalKind; object: Buffer }
  | { type: 'presence'; deviceId: string; lease: Buffer }
  | { type: 'offline'; deviceId: string }
  | { type: 'revoked'; crlPem: string }
  | { type: 'error'; code: ErrorCode; message: string }

/** Encodes a frame (either direction) as the text sent over the WebSocket. */
export function encodeFrame(frame: ClientFrame | HubFrame): string {
  // Frames are flat: their byte fields are turned into base64 here, before `JSON.stringify`
  // (whose replacer would see a Buffer only after its `toJSON`, an array of one number per byte).
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(frame)) {
    plain[key] = value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') : isBufferJson(value) ? Buffer.from(value.data).toString('base64') : value
  }
  return JSON.stringify(plain)
}

function isBufferJson(value: unknown): value is { type: 'Buffer'; data: number[] } {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)
}

/** Parses a frame a client sent to the hub. */
export function parseClientFrame(data: Buffer | string, maxObjectBytes = DEFAULT_MAX_OBJECT_BYTES): ClientFrame {
  const record = parseRecord(data, maxObjectBytes)
  switch (record.type) {
    case 'signal': {
      keys(record, ['type', 'to', 'kind', 'object'], ['tenant'])
      const frame: ClientFrame = { type: 'signal', to: deviceId(record.to, 'to'), kind: kind(record.kind), object: base64(record.object, maxObjectBytes) }
      if (record.tenant !== undefined) frame.tenant = tenant(record.tenant)
      return frame
    }
    case 'presence':
      keys(record, ['type', 'lease'])
      return { type: 'presence', lease: base64(record.lease, maxObjectBytes) }
    default:
      throw frameError('an unknown frame type')
  }
}

/** Parses a frame the hub sent to a client. */
export function parseHubFrame(data: Buffer | string, maxObjectBytes = DEFAULT_MAX_OBJECT_BYTES): HubFrame {
  const record = parseRecord(data, Math.max(maxObjectBytes, MAX_CRL_PEM))
  switch (record.type) {
    case 'signal':
      keys(record, ['type', 'from', 'kind', 'object'])
      return { type: 'signal', from: deviceId(record.from, 'from'), kind: kind(record.kind), object: base64(record.object, maxObjectBytes) }
    case 'presence':
      keys(record, ['type', 'deviceId', 'lease'])
      return { type: 'presence', deviceId: deviceId(record.deviceId, 'deviceId'), lease: base64(record.lease, maxObjectBytes) }
    case 'offline':
      keys(record, ['type', 'deviceId'])
      return { type: 'offline', deviceId: deviceId(record.deviceId, 'deviceId') }
    case 'revoked':
      keys(record, ['type', 'crlPem'])
      if (typeof record.crlPem !== 'string' || record.crlPem.length > MAX_CRL_PEM) throw frameError('crlPem must be a string of at most 256 KiB')
      return { type: 'revoked', crlPem: record.crlPem }
    case 'error':
      keys(record, ['type', 'code', 'message'])
      if (!isErrorCode(record.code) || typeof record.message !== 'string' || record.message.length > 1024) throw frameError('an error frame needs a known code and a short message')
      return { type: 'error', code: record.code, message: record.message }
    default:
      throw frameError('an unknown frame type')
  }
}

/** The largest frame text for objects of `maxObjectBytes`: base64 growth plus the routing fields. */
export function maxFrameBytes(maxObjectBytes: number): number {
  return Math.ceil(maxObjectBytes / 3) * 4 + 1024
}

function parseRecord(data: Buffer | string, maxObjectBytes: number): Record<string, unknown> {
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length
  if (size > maxFrameBytes(maxObjectBytes)) throw createError('ERR_HUB_FRAME_SIZE', `a hub frame of ${size} bytes is over the limit`)
  let value: unknown
  try {
    value = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'))
  } catch {
    throw frameError('not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw frameError('not a JSON object')
  return value as Record<string, unknown>
}

function keys(record: Record<string, unknown>, required: string[], optional: string[] = []): void {
  for (const key of required) if (!Object.hasOwn(record, key)) throw frameError(`missing ${key}`)
  for (const key of Object.keys(record)) if (!required.includes(key) && !optional.includes(key)) throw frameError(`unknown field ${JSON.stringify(key.slice(0, 32))}`)
}

function deviceId(value: unknown, field: string): string {
  if (typeof value !== 'string') throw frameError(`${field} must be a device id`)
  try {
    checkDeviceId(value)
  } catch {
    throw frameError(`${field} is not a valid device id`)
  }
  return value
}

function tenant(value: unknown): string {
  if (typeof value !== 'string') throw frameError('tenant must be a string')
  try {
    checkTenant(value)
  } catch {
    throw frameError('tenant is not a valid tenant')
  }
  return value
}

function kind(value: unknown): SignalKind {
  if (typeof value !== 'string' || !(SIGNAL_KINDS as readonly string[]).includes(value)) throw frameError('kind must be offer, answer or candidate')
  return value as SignalKind
}

function base64(value: unknown, maxBytes: number): Buffer {
  if (typeof value !== 'string' || value.length === 0) throw frameError('an object must be non-empty base64')
  if (value.length > Math.ceil(maxBytes / 3) * 4) throw createError('ERR_HUB_FRAME_SIZE', `an object of ${value.length} base64 characters is over the limit of ${maxBytes} bytes`)
  // Canonical by the round trip below: the text must be exactly what the bytes encode to (an
  // alphabet or padding slip, or any other text, encodes differently); no pattern test is needed.
  const bytes = Buffer.from(value, 'base64')
  if (bytes.toString('base64') !== value) throw frameError('an object is not canonical base64')
  if (bytes.length > maxBytes) throw createError('ERR_HUB_FRAME_SIZE', `an object of ${bytes.length} bytes is over the limit of ${maxBytes}`)
  checkedText.set(bytes, value)
  return bytes
}

/** The canonical base64 each parsed object arrived in (it is exactly what its bytes encode to). */
const checkedText = new WeakMap<Buffer, string>()

/** `bytes` in base64: the text it was parsed from when it came from a frame, so a relay does not encode it again. */
export function base64Of(bytes: Buffer): string {
  return checkedText.get(bytes) ?? bytes.toString('base64')
}

function frameError(why: string) {
  return createError('ERR_HUB_FRAME', `malformed hub frame: ${why}`)
}
