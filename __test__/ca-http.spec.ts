import test from 'ava'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

import { readJsonBody, sendError, sendJson } from '../src/ca/http.js'
import { RateLimiter } from '../src/ca/rate-limit.js'
import { createError } from '../src/errors.js'

test('the rate limiter allows a burst, then the sustained rate, per source', (t) => {
  let now = 0
  const limiter = new RateLimiter({ perSecond: 2, burst: 3, now: () => now })
  t.deepEqual([1, 2, 3, 4].map(() => limiter.take('a')), [true, true, true, false])
  t.true(limiter.take('b'), 'other sources are not affected')
  now += 500
  t.true(limiter.take('a'))
  t.false(limiter.take('a'))
})

test('the rate limiter forgets the stalest sources beyond its bound', (t) => {
  const limiter = new RateLimiter({ perSecond: 0.001, burst: 1, maxSources: 2, now: () => 0 })
  t.true(limiter.take('a'))
  t.false(limiter.take('a'))
  t.true(limiter.take('b'))
  t.true(limiter.take('c')) // evicts 'a'
  t.true(limiter.take('a'), 'a forgotten source starts with a full bucket')
})

async function echoServer(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    try {
      sendJson(res, 200, await readJsonBody(req, 64))
    } catch (error) {
      sendError(res, error)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` }
}

function post(url: string, body: string, type = 'application/json'): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': type }, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('JSON bodies: malformed, oversized, wrong type and non-objects get typed 4xx errors', async (t) => {
  const { server, url } = await echoServer()
  t.teardown(() => server.close())
  t.deepEqual(await post(url, '{"a":1}'), { status: 200, json: { a: 1 } })
  t.like(await post(url, '{"a":'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(url, '[1,2]'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(url, 'null'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(url, '{"a":1}', 'text/plain'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
  t.like(await post(url, JSON.stringify({ a: 'x'.repeat(100) })), { status: 413, json: { code: 'ERR_PAYLOAD_TOO_LARGE' } })
  t.like(await post(url, '\u0000\uffff'), { status: 400, json: { code: 'ERR_BAD_REQUEST' } })
})

test('errors map to their HTTP status and internal errors do not leak', async (t) => {
  const statuses: Array<[unknown, number, string]> = [
    [createError('ERR_TOKEN_USED'), 409, 'ERR_TOKEN_USED'],
    [createError('ERR_RATE_LIMITED'), 429, 'ERR_RATE_LIMITED'],
    [createError('ERR_FORBIDDEN'), 403, 'ERR_FORBIDDEN'],
    [new Error('secret path /etc/x'), 500, 'ERR_INTERNAL'],
  ]
  for (const [error, status, code] of statuses) {
    const server = createServer((_req, res) => sendError(res, error))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const result = await post(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, '{}')
    server.close()
    t.is(result.status, status)
    t.like(result.json, { code })
    t.false(JSON.stringify(result.json).includes('/etc/x'))
  }
})
