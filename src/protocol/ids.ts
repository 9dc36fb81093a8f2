/**
 * The one rulebook for device ids, tenants, roles and serial spellings, from the Rust core (the
 * same rules the PKI enforces in every certificate). Every failure is `ERR_IDENTITY`, or
 * `ERR_SERIAL` for a serial, `ERR_INVALID_ARG` for a key digest.
 *
 * @example
 * ```ts
 * checkRoles(['pos:cashier'])        // fine: roles may contain ':'
 * normalizeSerial('0x0ABC')          // '0abc', as verifyPeer and the registry spell it
 * ```
 */

import { createError } from '../errors.js'
import { callNative, native } from '../native.js'

/** Throws `ERR_IDENTITY` unless `deviceId` is 1-64 characters of `[A-Za-z0-9._-]`, not `.` or `..`. */
export function checkDeviceId(deviceId: unknown): asserts deviceId is string {
  if (typeof deviceId !== 'string') throw createError('ERR_IDENTITY', 'a device id must be a string')
  callNative(() => native.checkDeviceId(deviceId))
}

/** Throws `ERR_IDENTITY` unless `tenant` follows the device id rule. */
export function checkTenant(tenant: unknown): asserts tenant is string {
  if (typeof tenant !== 'string') throw createError('ERR_IDENTITY', 'a tenant must be a string')
  callNative(() => native.checkTenant(tenant))
}

/** Throws `ERR_IDENTITY` unless `roles` is at most 32 distinct roles of 1-64 characters of `[A-Za-z0-9._:-]`. */
export function checkRoles(roles: unknown): asserts roles is string[] {
  if (!Array.isArray(roles) || !roles.every((role) => typeof role === 'string')) throw createError('ERR_IDENTITY', 'roles must be an array of strings')
  callNative(() => native.checkRoles(roles))
}

/**
 * The one spelling of a certificate serial (lowercase hex, two digits per byte, no leading zero
 * byte) from what a user typed (optional `0x`, any case, leading zeros). Throws `ERR_SERIAL`.
 */
export function normalizeSerial(serial: unknown): string {
  if (typeof serial !== 'string') throw createError('ERR_SERIAL', 'a serial must be a string of hex digits')
  return callNative(() => native.normalizeSerial(serial))
}

/**
 * The one spelling of a key digest (SPKI SHA-256: 64 lowercase hex digits) from what a user
 * typed (any case, optionally `:` between bytes). Throws `ERR_INVALID_ARG`.
 */
export function normalizeKeyDigest(digest: unknown): string {
  if (typeof digest !== 'string') throw createError('ERR_INVALID_ARG', 'a key digest must be a string of hex digits')
  return callNative(() => native.normalizeKeyDigest(digest))
}
