/**
 * Memory held by idle secure connections: `count` connections over loopback, both ends in one
 * process, opened, then left idle; the growth of the process's resident memory (and of the JS
 * heap plus external buffers) after a full garbage collection, per connection.
 *
 * Each side runs in a fresh child process, so neither inherits the other's freed memory, which
 * the allocator would otherwise hand out again without growing the process.
 */

import { execFile } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import * as tls from 'node:tls'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import { connectSecure, createSecureServer } from '../channels/endpoints.js'
import type { SecureStream } from '../channels/noise-link.js'
import { benchDevices } from './channels.js'

/** What each side is. */
export const IDLE_SIDES = {
  'ztmesh-tls': 'ztmesh mutual TLS 1.3 (createSecureServer / connectSecure, X25519MLKEM768)',
  'ztmesh-noise': 'ztmesh Noise link (createSecureServer / connectSecure, hybrid XX)',
  'node-tls': 'node:tls mutual TLS 1.3 (tls.createServer / tls.connect)',
} as const

export type IdleSide = keyof typeof IDLE_SIDES

/** One side's figures. */
export interface IdleMemory {
  side: IdleSide
  what: string
  connections: number
  /** Resident memory growth per connection (both ends), bytes. */
  rss_per_connection: number
  /** JS heap + external buffer growth per connection (both ends), bytes. */
  js_per_connection: number
}

/** Measures every side, each in its own child process. */
export async function measureIdleMemory(connections: number): Promise<IdleMemory[]> {
  const results: IdleMemory[] = []
  for (const side of Object.keys(IDLE_SIDES) as IdleSide[]) {
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
      execFile(process.execPath, [fileURLToPath(import.meta.url), side, String(connections)], { timeout: 300_000, maxBuffer: 1 << 20 }, (error, stdout) =>
        error ? reject(error) : resolve({ stdout }),
      ),
    )
    results.push(JSON.parse(stdout) as IdleMemory)
  }
  return results
}

/** Formats the figures as a Markdown table, with node:tls as the reference. */
export function formatIdleMemory(rows: readonly IdleMemory[]): string {
  const reference = rows.find((row) => row.side === 'node-tls')
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
  const lines = [
    `Memory held by ${rows[0]?.connections ?? 0} idle connections (both ends in one process, per connection):`,
    '',
    '| side | resident | JS heap + buffers | resident vs node:tls |',
    '| --- | ---: | ---: | ---: |',
  ]
  for (const row of rows) {
    const versus = reference === undefined ? '–' : `${(reference.rss_per_connection / row.rss_per_connection).toFixed(2)}× less`
    lines.push(`| ${row.what} | ${kib(row.rss_per_connection)} | ${kib(row.js_per_connection)} | ${row.side === 'node-tls' ? '1' : versus} |`)
  }
  return lines.join('\n')
}

/** In the child: opens `connections` idle connections of `side` and prints its figures. */
async function child(side: IdleSide, connections: number): Promise<void> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const d = benchDevices()
  const ends: { destroy(): void }[] = []
  const open = await opener(side, d, ends)
  await open() // warm up: code, contexts and caches are not per-connection memory
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  await settle()
  const before = process.memoryUsage()
  for (let i = 0; i < connections; i++) await open()
  await settle()
  const after = process.memoryUsage()
  const result: IdleMemory = {
    side,
    what: IDLE_SIDES[side],
    connections,
    rss_per_connection: Math.round((after.rss - before.rss) / connections),
    js_per_connection: Math.round((after.heapUsed + after.external - before.heapUsed - before.external) / connections),
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  for (const end of ends) end.destroy()
  process.exit(0)
}

/** A function that opens one connection of `side`, both ends kept in `ends`. */
async function opener(side: IdleSide, d: ReturnType<typeof benchDevices>, ends: { destroy(): void }[]): Promise<() => Promise<void>> {
  if (side === 'node-tls') {
    const common = { ca: d.trustPem, ALPNProtocols: ['ztmesh/1'], minVersion: 'TLSv1.3' as const }
    const server = tls.createServer({ cert: d.server.certPem, key: d.server.keyPem, requestCert: true, rejectUnauthorized: true, ...common }, (socket) => ends.push(socket))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    return async () => {
      const socket = tls.connect({ host: '127.0.0.1', port, cert: d.client.certPem, key: d.client.keyPem, checkServerIdentity: () => undefined, ...common })
      await once(socket, 'secureConnect')
      ends.push(socket)
    }
  }
  const protocol = side === 'ztmesh-tls' ? 'tls' : 'noise'
  const accepted: SecureStream[] = []
  const server = createSecureServer({ protocol, identity: d.server.identity, trustPem: d.trustPem }, (link) => accepted.push(link))
  await server.listen(0)
  const { port } = server.server.address() as AddressInfo
  return async () => {
    const before = accepted.length
    ends.push(await connectSecure({ protocol, host: '127.0.0.1', port, identity: d.client.identity, trustPem: d.trustPem }))
    for (let i = 0; i < 200 && accepted.length === before; i++) await new Promise((resolve) => setTimeout(resolve, 1))
    ends.push(...accepted.slice(before))
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const side = process.argv[2] as IdleSide
  if (!(side in IDLE_SIDES)) throw new Error(`usage: idle-memory.js ${Object.keys(IDLE_SIDES).join('|')} COUNT`)
  await child(side, Number(process.argv[3] ?? 1000))
}
