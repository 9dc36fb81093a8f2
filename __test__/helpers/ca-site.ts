// A CA in a temporary directory with its enrollment API on loopback, closed and removed in teardown.
import type { ExecutionContext } from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CaService } from '../../src/ca/index.js'
import { createEnrollmentServer } from '../../src/ca/server.js'

/** A fresh CA named `name` under a new temporary `dir` (the CA in `dir/ca`), serving at `url`. */
export async function caOnLoopback(t: ExecutionContext, name: string) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-site-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const server = createEnrollmentServer({ ca, rateLimit: { perSecond: 1000, burst: 1000 }, maxConnectionsPerSource: 1000 })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { dir, ca, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}
