// A CA in a temporary directory with its enrollment API on loopback (TLS 1.3, the CA API
// certificate of tenant hotel-1 unless told), closed and removed in teardown; and a fetch that
// talks to such a server as a device does (server authenticated against the pinned root).
import type { ExecutionContext } from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CaService } from '../../src/ca/index.js'
import { createEnrollmentServer, type EnrollmentServerInit } from '../../src/ca/server.js'
import { requestCa, type CaServerTrust } from '../../src/identity/http.js'

/** Who each served URL's origin must prove to be. */
const SERVED = new Map<string, CaServerTrust>()

/** Serves `ca`'s enrollment API on loopback until teardown; returns its base URL (https:, or http: with insecureHttp). */
export async function serveCa(t: ExecutionContext, ca: CaService, init: Partial<EnrollmentServerInit> = {}): Promise<string> {
  const tenant = init.tenant ?? 'hotel-1'
  const server = createEnrollmentServer({ ca, rateLimit: { perSecond: 1000, burst: 1000 }, maxConnectionsPerSource: 1000, ...init, tenant })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const url = `${init.insecureHttp === true ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`
  SERVED.set(url, { rootFingerprint: ca.rootFingerprint(), tenant })
  return url
}

/** Statuses whose Response has no body. */
const NO_BODY = new Set([101, 204, 205, 304])

/**
 * `fetch` for a URL {@link serveCa} returned: over TLS, the server authenticated as a device
 * authenticates it. Resolves a standard `Response`.
 */
export async function caFetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; signal?: AbortSignal } = {}): Promise<Response> {
  const target = new URL(url)
  const trust = SERVED.get(target.origin)
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? Buffer.from(init.body) : init.body
  const answer = await requestCa(target, { method: init.method ?? 'GET', headers: init.headers ?? {}, ...(body !== undefined && { body }) }, { ...(trust !== undefined && { ca: trust }), insecureHttp: target.protocol === 'http:' })
  const headers = new Headers()
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value)
  }
  return new Response(NO_BODY.has(answer.status) ? null : answer.body, { status: answer.status, headers })
}

/** A fresh CA named `name` under a new temporary `dir` (the CA in `dir/ca`), serving at `url`. */
export async function caOnLoopback(t: ExecutionContext, name: string, init: Partial<EnrollmentServerInit> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-site-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  return { dir, ca, url: await serveCa(t, ca, init) }
}
