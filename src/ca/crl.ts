/**
 * CRL publication: the site CA's current CRL, re-signed (with the next CRL number) when the
 * revocations changed since the last one or when it is past half its lifetime, and kept in the
 * registry's settings so readers without the CA key (`ztmesh verify-peer`) see what was
 * published.
 *
 * Stricter freshness or issuer-scoped revocation data is a change here and in the registry.
 */

import { createHash } from 'node:crypto'

import { REVOCATION_REASONS, type CertificateAuthority, type RevocationReason, type RevokedEntry } from '../primitives/pki/index.js'
import type { Registry } from './registry.js'

/** A signed CRL. */
export interface PublishedCrl {
  pem: string
  der: Buffer
  crlNumber: number
}

/** How long a CRL is valid (its nextUpdate); it is re-signed at half of it. */
export const CRL_LIFETIME_MS = 7 * 86_400_000

/** The settings a fresh registry starts with: no CRL published yet. */
export const INITIAL_CRL_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['crl_number', '0'],
  ['crl_revocations', '-1'],
]

/**
 * The current CRL of `site`, signing a new one if needed. Call it inside a registry
 * transaction: the CRL number and the revocations it lists are read and written together.
 */
export function currentCrl(registry: Registry, site: CertificateAuthority, now: number): PublishedCrl {
  const settings = registry.settings()
  const revoked = registry.revocations()
  const fresh = settings.crl_pem !== undefined && Number(settings.crl_revocations) === revoked.length && now < Number(settings.crl_this_update) + CRL_LIFETIME_MS / 2
  if (fresh) return { pem: settings.crl_pem!, der: Buffer.from(settings.crl_der!, 'base64'), crlNumber: Number(settings.crl_number) }
  const crlNumber = Number(settings.crl_number) + 1
  const entries: RevokedEntry[] = revoked.map((r) => ({
    serial: r.serial,
    revokedAtMs: r.revokedAtMs,
    reason: REVOCATION_REASONS[r.reason as RevocationReason] ?? 0,
  }))
  const crl = site.issueCrl(crlNumber, entries, now, now + CRL_LIFETIME_MS)
  registry.putSettings([
    ['crl_number', String(crlNumber)],
    ['crl_revocations', String(revoked.length)],
    ['crl_this_update', String(now)],
    ['crl_pem', crl.pem],
    ['crl_der', crl.der.toString('base64')],
  ])
  return { pem: crl.pem, der: crl.der, crlNumber }
}

/** The last CRL published, PEM, without signing anything (no CA key needed). */
export function publishedCrlPem(registry: Registry): string | undefined {
  return registry.settings().crl_pem
}

/** ETag of a CRL: its DER's SHA-256. */
export function crlEtag(der: Uint8Array): string {
  return `"${createHash('sha256').update(der).digest('base64url')}"`
}
