// Issue 10 §5: the enrollment API's audit log cannot be used to fill the disk. One anonymous
// client made 3,000 requests with ~15 KB paths in 1.7 s and grew the registry by 53 MB: every
// request, rate-limited ones included, wrote a synced row holding the path.
import test, { type ExecutionContext } from 'ava'
import { Agent, request as httpRequest } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { CaService } from '../src/ca/index.js'
import { sourceOf } from '../src/ca/rate-limit.js'
import { RequestTally, ROUTE_IDS, routeId, TALLY_ACTION } from '../src/ca/request-tally.js'
import { createEnrollmentServer, type EnrollmentServerInit } from '../src/ca/server.js'
import { caFetch, serveCa } from './helpers/ca-site.js'

async function caServing(t: ExecutionContext, init: Omit<EnrollmentServerInit, 'ca'>) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-flood-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Flood Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  // Plain HTTP: the flood and the connection caps are defences of the HTTP layer, and the typed
  // 503 of a connection over a cap can only be read without TLS (over TLS it is closed at once).
  const server = createEnrollmentServer({ ca, insecureHttp: true, ...init })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  let closed = false
  const close = () => (closed ? Promise.resolve() : new Promise<void>((resolve) => { closed = true; server.close(() => resolve()) }))
  t.teardown(close)
  return { ca, port: (server.address() as AddressInfo).port, close }
}

function get(port: string | number, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, timeout: 30_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

test('attack: 3,000 requests with 15 KB paths grow the audit log by a bounded number of small rows', async (t) => {
  // The default limits, on a clock that stands still: exactly the burst gets through.
  const { ca, port, close } = await caServing(t, { rateLimit: { now: () => 0 } })
  const before = ca.verifyAudit()
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => agent.destroy())
  const statuses = new Map<number, number>()
  for (let batch = 0; batch < 30; batch++) {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => get(port, `/${'a'.repeat(15_000)}?${batch * 100 + i}`, agent)))
    for (const status of results) statuses.set(status, (statuses.get(status) ?? 0) + 1)
  }
  t.deepEqual(Object.fromEntries(statuses), { 404: 20, 429: 2980 })
  await close() // flushes the counts

  const added = ca.auditRecords(10_000).filter((row) => row.seq > before)
  t.is(ca.verifyAudit(), before + added.length)
  t.true(added.length <= 22, `${added.length} rows`)
  const bytes = added.reduce((sum, row) => sum + JSON.stringify(row).length, 0)
  t.true(bytes < 22 * 400, `${bytes} bytes`)
  t.true(added.every((row) => !JSON.stringify(row).includes('aaaa')), 'no row holds the path sent')
  t.true(added.every((row) => row.action === TALLY_ACTION || ROUTE_IDS.some((id) => row.action === `http.${id}`)))
  t.is(added.filter((row) => row.reason === 'ERR_NOT_FOUND').length, 20, 'requests within the limit are audited one by one')
  const limited = added.filter((row) => row.reason === 'ERR_RATE_LIMITED')
  t.is(limited.length, 2, 'the first refusal at once, then one count for the interval')
  t.like(limited.find((row) => row.action === TALLY_ACTION), { actor: '127.0.0.1', outcome: 'deny', detail: { count: 2979, other: 2979 } })
})

/** A connection that has sent one request and read its answer (so the server counts it). */
async function openConnection(port: number, localAddress: string): Promise<{ socket: Socket; answer: string }> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  const chunks: Buffer[] = []
  const answer = await new Promise<string>((resolve, reject) => {
    // A refused connection is closed at once: a reset after its answer arrived is expected.
    socket.on('error', (error) => (chunks.length > 0 ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(error)))
    socket.once('connect', () => socket.write('GET /v1/crl HTTP/1.1\r\nhost: ca\r\n\r\n'))
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      const text = Buffer.concat(chunks).toString('latin1')
      const head = text.indexOf('\r\n\r\n')
      const length = /content-length: (\d+)/i.exec(text)?.[1]
      if (head !== -1 && length !== undefined && text.length >= head + 4 + Number(length)) resolve(text)
    })
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
  })
  return { socket, answer }
}

test('attack: connections over the per-source and total caps get a typed 503 and are closed, and are audited', async (t) => {
  const { ca, port, close } = await caServing(t, { maxConnectionsPerSource: 2, maxConnections: 3 })
  const held: Socket[] = []
  t.teardown(() => held.forEach((socket) => socket.destroy()))
  for (const source of ['127.0.0.1', '127.0.0.1', '127.0.0.2']) {
    const { socket, answer } = await openConnection(port, source)
    held.push(socket)
    t.regex(answer, /^HTTP\/1\.1 200 /)
  }
  const perSource = await openConnection(port, '127.0.0.1')
  held.push(perSource.socket)
  t.regex(perSource.answer, /^HTTP\/1\.1 503 [^]*"code":"ERR_TOO_MANY_CONNECTIONS"/)
  const total = await openConnection(port, '127.0.0.3')
  held.push(total.socket)
  t.regex(total.answer, /^HTTP\/1\.1 503 [^]*"code":"ERR_TOO_MANY_CONNECTIONS"/)
  held.forEach((socket) => socket.destroy())
  await close()
  const refused = ca.auditRecords(50).filter((row) => row.reason === 'ERR_TOO_MANY_CONNECTIONS').map((row) => row.actor).sort()
  t.deepEqual(refused, ['127.0.0.1', '127.0.0.3'])
})

test('attack over TLS: a connection over the per-source cap is closed before any handshake work, and audited; other sources are still served', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-flood-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await CaService.init({ dir: join(dir, 'ca'), name: 'Flood Hotel' })
  const ca = await CaService.open({ dir: join(dir, 'ca') })
  t.teardown(() => ca.close())
  const url = await serveCa(t, ca, { maxConnectionsPerSource: 2 })
  const port = Number(new URL(url).port)
  const open = (localAddress: string) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, localAddress })
      socket.once('connect', () => resolve(socket))
      socket.once('error', reject)
    })
  const held = [await open('127.0.0.2'), await open('127.0.0.2')]
  t.teardown(() => held.forEach((socket) => socket.destroy()))
  // The third from the same source: closed by the server, not a byte answered.
  const third = await open('127.0.0.2')
  const received = await new Promise<number>((resolve, reject) => {
    let bytes = 0
    const timer = setTimeout(() => reject(new Error('the server kept a connection over the cap open')), 10_000)
    third.on('data', (chunk: Buffer) => (bytes += chunk.length))
    third.on('error', () => {})
    third.once('close', () => {
      clearTimeout(timer)
      resolve(bytes)
    })
  })
  t.is(received, 0)
  t.is((await caFetch(`${url}/v1/crl`)).status, 200, 'another source is served over TLS')
  t.true(ca.auditRecords(50).some((row) => row.reason === 'ERR_TOO_MANY_CONNECTIONS' && row.actor === '127.0.0.2'))
})

test('an IPv6 client is counted by its /64: a fresh address in the same prefix gets no fresh budget', (t) => {
  t.is(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  t.is(sourceOf('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64')
  t.is(sourceOf('2001:db8::1'), '2001:db8:0:0::/64')
  t.is(sourceOf('fe80::1%eth0'), 'fe80:0:0:0::/64')
  t.is(sourceOf('::1'), '0:0:0:0::/64')
  t.not(sourceOf('2001:db8:1:3::1'), sourceOf('2001:db8:1:2::1'))
  t.is(sourceOf('::ffff:192.0.2.7'), '192.0.2.7')
  t.is(sourceOf('192.0.2.7'), '192.0.2.7')
  t.is(sourceOf(undefined), 'unknown')
})

test('the refusal counts are bounded: routes by id, sources up to a limit, then counted together', (t) => {
  t.deepEqual(['/v1/enroll', '/v1/attest/nonce', '/v1/crl', '/v1/enroll/', '/x'.repeat(5000)].map(routeId), ['enroll', 'nonce', 'crl', 'other', 'other'])
  const tally = new RequestTally({ maxSources: 2 })
  t.like(tally.count('a', 'enroll', 'ERR_RATE_LIMITED'), { actor: 'a', action: 'http.enroll', reason: 'ERR_RATE_LIMITED' })
  t.is(tally.count('a', 'other', 'ERR_RATE_LIMITED'), undefined)
  t.truthy(tally.count('b', 'crl', 'ERR_RATE_LIMITED'))
  t.like(tally.count('c', 'crl', 'ERR_RATE_LIMITED'), { actor: 'other-sources' })
  for (const source of ['d', 'e', 'c']) t.is(tally.count(source, 'crl', 'ERR_RATE_LIMITED'), undefined)
  t.deepEqual(tally.flush(), [
    { actor: 'a', action: TALLY_ACTION, outcome: 'deny', reason: 'ERR_RATE_LIMITED', detail: { count: 1, other: 1 } },
    { actor: 'other-sources', action: TALLY_ACTION, outcome: 'deny', reason: 'ERR_RATE_LIMITED', detail: { count: 3, crl: 3 } },
  ])
  t.deepEqual(tally.flush(), [], 'a new interval')
  t.truthy(tally.count('a', 'enroll', 'ERR_RATE_LIMITED'), 'the first of the new interval is written again')
})
