// Discovery: mDNS (always inside a private network namespace with only loopback up: nothing
// multicasts in the main namespace), the bootstrap list, and the fallback chain.
import { execFile } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

import test from 'ava'

import { bootstrapPeers, instanceName, runFallbackChain, type AttemptEvent, type FallbackError, type PathAttempt } from '../src/index.js'
import { readResponse } from '../src/discovery/announcement.js'
import { requirePeer, runs } from './helpers/peers.js'

const SCENARIO = '__test__/helpers/mdns-scenario.ts'
const netnsMissing = runs('unshare', ['-rn', 'sh', '-c', 'ip link set lo up']) ? undefined : 'unshare -rn (a private network namespace) is not available'
const netnsTest = requirePeer(netnsMissing, test)

interface Run {
  status: number | null
  result: Record<string, unknown>
}

/** Runs a scenario of mdns-scenario.ts in a child node, inside a fresh network namespace when `netns`. */
function scenario(name: string, netns = true): Promise<Run> {
  const [file, args] = netns ? ['unshare', ['-rn', 'sh', '-c', `ip link set lo up && exec node --import=tsx ${SCENARIO} "$0"`, name]] : [process.execPath, ['--import=tsx', SCENARIO, name]]
  return new Promise((resolve) => {
    execFile(file as string, args as string[], { timeout: 90_000 }, (error, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? ''
      let result: Record<string, unknown>
      try {
        result = JSON.parse(line) as Record<string, unknown>
      } catch {
        result = { error: `no JSON from the scenario: ${stdout} ${stderr}` }
      }
      resolve({ status: error === null ? 0 : ((error as { code?: number }).code ?? null), result })
    })
  })
}

const ownNetns = readlinkSync('/proc/self/ns/net')

netnsTest('mDNS: two devices in a private namespace find each other by query and by announcement, once each; a tenant filter hides other tenants; a goodbye removes a peer', async (t) => {
  const { status, result } = await scenario('pair')
  t.is(status, 0, JSON.stringify(result))
  t.not(result.netns, ownNetns, 'the scenario ran in another network namespace')
  t.deepEqual(result.interfaces, ['lo'], 'with loopback only')
  t.deepEqual(result.foundByA, [{ deviceId: 'gw-1', tenant: 'hotel-1', role: 'gateway', host: '127.0.0.1', port: 7443, spkiSha256: 'b'.repeat(64), via: 'mdns' }], 'A found B by asking, once, and never the gateway of another tenant')
  t.deepEqual(result.otherTenantSeenByB, ['hotel-2'], 'B, browsing every tenant, saw it')
  t.deepEqual(result.foundByB, [{ deviceId: 'tablet-9', tenant: 'hotel-1', role: 'node', host: '127.0.0.1', port: 7444, spkiSha256: 'a'.repeat(64), via: 'mdns' }], 'B found A by its announcement, once despite re-announcements')
  t.is((result.tableB as unknown[]).length, 1, 'B never lists itself')
  t.deepEqual(
    (result.lostByB as { deviceId: string }[]).map((p) => p.deviceId),
    ['tablet-9'],
    "A's goodbye (TTL 0) removed it",
  )
  t.is(result.afterGoodbye, 0)
  for (const stats of [result.statsA, result.statsB] as { malformed: number; refused: number }[]) {
    t.is(stats.malformed, 0)
    t.is(stats.refused, 0)
  }
})

netnsTest('mDNS: advertise refuses a bad device id, tenant, key digest, port, role or host with its code, and refuses after close', async (t) => {
  const { status, result } = await scenario('pair')
  t.is(status, 0, JSON.stringify(result))
  t.deepEqual(result.refusals, { deviceId: 'ERR_IDENTITY', tenant: 'ERR_IDENTITY', spkiSha256: 'ERR_INVALID_ARG', port: 'ERR_INVALID_ARG', role: 'ERR_INVALID_ARG', host: 'ERR_INVALID_ARG', unspecifiedHost: 'ERR_INVALID_ARG', afterClose: 'ERR_CLOSED' })
})

netnsTest('mDNS: hostile announcements (oversized, wrong types, bad ids, garbage, a flood of distinct names) are dropped and counted, the table stays bounded, the process lives', async (t) => {
  const { status, result } = await scenario('hostile')
  t.is(status, 0, JSON.stringify(result))
  t.not(result.netns, ownNetns)
  t.deepEqual(result.found, ['good-1'], 'only the well-formed announcement was believed')
  const perCase = result.perCase as Record<string, { refused: number; malformed: number }>
  t.true(Object.keys(perCase).length >= 20)
  for (const [key, counts] of Object.entries(perCase)) t.true(counts.refused + counts.malformed >= 1, `${key} was counted`)
  t.true((result.garbageMalformed as number) >= 4, 'bytes that do not decode, and a packet with too many records, are malformed')
  t.is(result.wrongPortRefused, 1, 'a response from a port other than 5353 is refused')
  t.is(result.tableAfterFlood, 32, 'the table holds at most maxPeers')
  t.is(result.floodFound, 31)
  t.true((result.tableFull as number) > 100, 'the rest of the flood was dropped and counted')
  t.deepEqual(result.seen, ['brief-1'])
  t.deepEqual(result.expired, ['brief-1'], 'an announcement whose TTL ran out is forgotten without a goodbye')
})

netnsTest('mDNS spoofing: a device announcing another device id at its own address is refused by the link (ERR_DEVICE_MISMATCH), with or without the announced pin; a stranger of another tenant, and a node announced as a gateway, are refused by connectDiscovered; genuine announcements lead to a link', async (t) => {
  const { status, result } = await scenario('spoof')
  t.is(status, 0, JSON.stringify(result))
  type Outcome = { ok: boolean; code?: string; data?: string }
  const results = result.results as Record<string, { discovered: string; pinned: Outcome; helper: Outcome }>
  t.deepEqual(results.genuine, { discovered: 'tablet-9', pinned: { ok: true, data: 'victim' }, helper: { ok: true, data: 'victim' } })
  t.deepEqual(results.genuineGateway, { discovered: 'gw-1', pinned: { ok: true, data: 'gateway' }, helper: { ok: true, data: 'gateway' } })
  for (const key of ['spoofed', 'spoofedOwnKey']) {
    t.is(results[key]!.discovered, 'tablet-9', `${key}: the hint was believed as a hint`)
    t.deepEqual(results[key]!.pinned, { ok: false, code: 'ERR_DEVICE_MISMATCH' }, key)
    t.deepEqual(results[key]!.helper, { ok: false, code: 'ERR_DEVICE_MISMATCH' }, key)
  }
  t.deepEqual(results.otherTenant!.helper, { ok: false, code: 'ERR_TENANT_MISMATCH' }, 'a device of another tenant announced under this tenant')
  t.deepEqual(results.nodeAsGateway!.helper, { ok: false, code: 'ERR_POLICY_DENIED' }, 'an announced gateway role must be certified')
})

netnsTest('mDNS: a query flood is not amplified: answers stay within one per interval', async (t) => {
  const { status, result } = await scenario('queryFlood')
  t.is(status, 0, JSON.stringify(result))
  const bound = Math.ceil((result.elapsedMs as number) / 250) + 2
  t.true((result.answered as number) >= 1, 'queries are answered')
  t.true((result.answered as number) <= bound, `${String(result.answered)} answers to ${String(result.queries)} queries (bound ${bound})`)
})

netnsTest('mDNS: a forged goodbye or a conflicting announcement of a device\'s own name is answered by the device re-announcing at once', async (t) => {
  const { status, result } = await scenario('defend')
  t.is(status, 0, JSON.stringify(result))
  t.deepEqual(result.afterGoodbye, ['found 7443', 'lost 7443', 'found 7443'], 'the forged goodbye removed it for a moment only')
  t.deepEqual(result.afterConflict, ['found 7443', 'lost 7443', 'found 7443', 'found 6666', 'found 7443'], 'the conflicting announcement was overridden')
  t.deepEqual(result.table, [7443])
})

netnsTest('mDNS never multicasts in the main namespace: the scenario refuses to run outside a private one', async (t) => {
  const { status, result } = await scenario('pair', false)
  t.is(status, 2)
  t.regex(String(result.error), /refusing to multicast outside a private namespace/)
})

/** The records of an announcement of `tablet-9` as a decoded response holds them. */
function announced(ttl: number, extra: object[] = []) {
  const instance = instanceName('tablet-9', 'hotel-1')
  return {
    answers: [
      { name: '_ztmesh._tcp.local', type: 'PTR', ttl, data: instance },
      { name: instance, type: 'SRV', ttl, data: { port: 7443, target: 'zt-1.local', priority: 0, weight: 0 } },
      { name: instance, type: 'TXT', ttl, data: ['v=1', 'id=tablet-9', 'tenant=hotel-1', `spki=${'a'.repeat(64)}`, 'port=7443', 'role=node'].map((s) => Buffer.from(s)) },
      ...extra,
    ],
  }
}
const MDNS_SOURCE = { address: '192.0.2.7', port: 5353 }

test('an mDNS response is read without a socket: TTLs are clamped to 600 s, the SRV target address is used, else the source address', (t) => {
  const instance = instanceName('tablet-9', 'hotel-1')
  const withAddress = readResponse(announced(2 ** 31 - 1, [{ name: 'zt-1.local', type: 'A', ttl: 120, data: '127.0.0.1' }]), MDNS_SOURCE, 5353)
  t.deepEqual(withAddress, {
    malformed: false,
    refused: 0,
    gone: [],
    found: [{ instance, ttl: 600, peer: { deviceId: 'tablet-9', tenant: 'hotel-1', spkiSha256: 'a'.repeat(64), host: '127.0.0.1', port: 7443, role: 'node', via: 'mdns' } }],
  })
  t.is(readResponse(announced(120), MDNS_SOURCE, 5353).found[0]!.peer.host, '192.0.2.7')
  t.is(readResponse(announced(120), MDNS_SOURCE, 5353).found[0]!.ttl, 120)
})

test('an mDNS announcement pointing at an unspecified, multicast or broadcast address is refused; loopback and unicast addresses are kept', (t) => {
  const at = (type: 'A' | 'AAAA', data: string) => readResponse(announced(120, [{ name: 'zt-1.local', type, ttl: 120, data }]), MDNS_SOURCE, 5353)
  for (const [type, address] of [['A', '0.0.0.0'], ['A', '0.1.2.3'], ['A', '224.0.0.251'], ['A', '239.1.1.1'], ['A', '255.255.255.255'], ['AAAA', '::'], ['AAAA', '0:0:0:0:0:0:0:0'], ['AAAA', 'ff02::fb']] as const) {
    t.deepEqual(at(type, address), { malformed: false, refused: 1, gone: [], found: [] }, address)
  }
  for (const [type, address] of [['A', '127.0.0.1'], ['A', '10.1.2.3'], ['A', '192.168.1.20'], ['AAAA', '::1'], ['AAAA', 'fe80::1'], ['AAAA', '2001:db8::7']] as const) {
    t.is(at(type, address).found[0]?.peer.host, address, address)
  }
})

test('an mDNS goodbye (TTL 0) names the instance and believes nothing; a response from another port than 5353 is refused whole; other services are ignored', (t) => {
  const instance = instanceName('tablet-9', 'hotel-1')
  t.deepEqual(readResponse(announced(0), MDNS_SOURCE, 5353), { malformed: false, refused: 0, gone: [instance], found: [] })
  t.deepEqual(readResponse(announced(120), { address: '192.0.2.7', port: 40000 }, 5353), { malformed: false, refused: 1, gone: [], found: [] })
  t.deepEqual(readResponse({ answers: [{ name: '_http._tcp.local', type: 'PTR', ttl: 120, data: 'printer._http._tcp.local' }] }, { address: '192.0.2.7', port: 40000 }, 5353), { malformed: false, refused: 0, gone: [], found: [] })
  t.true(readResponse({ answers: Array.from({ length: 65 }, () => announced(120).answers[0]) }, MDNS_SOURCE, 5353).malformed, 'more than 64 records')
})

test('bootstrapPeers parses IPv4, bracketed IPv6 and DNS names, trims and drops duplicates', (t) => {
  t.deepEqual(bootstrapPeers('10.0.0.7:7443, [fe80::1]:7443,GW.Hotel.lan:8443,10.0.0.7:7443'), [
    { host: '10.0.0.7', port: 7443, via: 'bootstrap' },
    { host: 'fe80::1', port: 7443, via: 'bootstrap' },
    { host: 'gw.hotel.lan', port: 8443, via: 'bootstrap' },
  ])
  t.deepEqual(bootstrapPeers('[::1]:1'), [{ host: '::1', port: 1, via: 'bootstrap' }])
  t.deepEqual(bootstrapPeers('localhost:65535'), [{ host: 'localhost', port: 65535, via: 'bootstrap' }])
})

test('bootstrapPeers refuses every malformed list with ERR_CONFIG naming the entry', (t) => {
  const bad: [string, RegExp][] = [
    ['', /bootstrap\[0\]: empty entry/],
    ['10.0.0.1:7443,', /bootstrap\[1\]: empty entry/],
    ['10.0.0.1', /missing :PORT/],
    ['10.0.0.1:0', /port/],
    ['10.0.0.1:65536', /port/],
    ['10.0.0.1:+80', /port/],
    ['10.0.0.1:080', /port/],
    ['10.0.0.1:80a', /port/],
    ['10.0.0.1:', /port/],
    ['fe80::1:7443', /brackets/],
    ['[fe80::1]7443', /\[IPv6\]:PORT/],
    ['[fe80::1:7443', /\[IPv6\]:PORT/],
    ['[10.0.0.1]:7443', /not an IPv6/],
    ['999.1.1.1:80', /neither/],
    ['-bad.lan:80', /neither/],
    ['bad_host:80', /neither/],
    ['a b:80', /neither/],
    [':80', /neither/],
    [`${'a'.repeat(64)}.lan:80`, /neither/],
    ['x:1,'.repeat(65).slice(0, -1), /more than 64 entries/],
    ['a'.repeat(5000), /longer than/],
  ]
  for (const [list, message] of bad) {
    const error = t.throws(() => bootstrapPeers(list), undefined, list.slice(0, 40))
    t.is((error as { code?: string }).code, 'ERR_CONFIG', list.slice(0, 40))
    t.regex(error!.message, message, list.slice(0, 40))
  }
  t.is((t.throws(() => bootstrapPeers(42 as unknown as string)) as { code?: string }).code, 'ERR_CONFIG')
  t.regex(t.throws(() => bootstrapPeers('nope', 'node.bootstrap'))!.message, /^node\.bootstrap\[0\]/)
})

/** Timers and handles this process holds, by kind (to prove the chain leaves none behind). */
function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
}

function failing(path: PathAttempt<string>['path'], code: string): PathAttempt<string> {
  return { path, attempt: async () => Promise.reject(Object.assign(new Error(`${path} failed`), { code })) }
}

test('the fallback chain tries gateway, mdns, cloud, manual in that order whatever the order given, reports each attempt, and resolves the first success', async (t) => {
  const order: string[] = []
  const events: AttemptEvent[] = []
  const attempt = (path: PathAttempt<string>['path'], ok: boolean): PathAttempt<string> => ({
    path,
    attempt: async () => {
      order.push(path)
      if (!ok) throw Object.assign(new Error('no'), { code: 'ERR_UNREACHABLE' })
      return `via ${path}`
    },
  })
  const result = await runFallbackChain([attempt('manual', true), attempt('cloud', true), attempt('gateway', false), attempt('mdns', false)], { timeoutMs: 5000, onAttempt: (e) => events.push(e) })
  t.is(result.path, 'cloud')
  t.is(result.value, 'via cloud')
  t.true(result.ms >= 0)
  t.deepEqual(order, ['gateway', 'mdns', 'cloud'], 'manual never ran')
  t.deepEqual(
    events.map(({ path, ok, code }) => ({ path, ok, code })),
    [
      { path: 'gateway', ok: false, code: 'ERR_UNREACHABLE' },
      { path: 'mdns', ok: false, code: 'ERR_UNREACHABLE' },
      { path: 'cloud', ok: true, code: undefined },
    ],
  )
  for (const e of events) t.true(typeof e.ms === 'number' && e.ms >= 0)
})

test('the fallback chain skips absent paths and keeps the given order within one path', async (t) => {
  const order: string[] = []
  const result = await runFallbackChain(
    [
      { path: 'manual', attempt: async () => (order.push('manual-1'), Promise.reject(new Error('refused'))) },
      { path: 'manual', attempt: async () => (order.push('manual-2'), 'second') },
      { path: 'mdns', attempt: async () => (order.push('mdns'), Promise.reject(new Error('refused'))) },
    ],
    { timeoutMs: 5000 },
  )
  t.deepEqual(order, ['mdns', 'manual-1', 'manual-2'])
  t.deepEqual([result.path, result.value], ['manual', 'second'])
})

test('the fallback chain rejects with ERR_UNREACHABLE listing each path and its code when all fail', async (t) => {
  const error = (await t.throwsAsync(runFallbackChain([failing('gateway', 'ERR_TLS_ALERT'), failing('mdns', 'ERR_DEVICE_MISMATCH'), { path: 'cloud', attempt: async () => Promise.reject(new Error('plain')) }, failing('manual', 'ECONNREFUSED')], { timeoutMs: 5000 }))) as FallbackError
  t.is(error.code, 'ERR_UNREACHABLE')
  t.is(error.message, 'no path reached the peer: gateway ERR_TLS_ALERT, mdns ERR_DEVICE_MISMATCH, cloud ERR_UNREACHABLE, manual ECONNREFUSED')
  t.deepEqual(
    error.attempts.map((e) => [e.path, e.ok, e.code]),
    [
      ['gateway', false, 'ERR_TLS_ALERT'],
      ['mdns', false, 'ERR_DEVICE_MISMATCH'],
      ['cloud', false, 'ERR_UNREACHABLE'],
      ['manual', false, 'ECONNREFUSED'],
    ],
  )
})

test.serial('a hanging attempt times out with ERR_TIMEOUT, its signal is aborted, the next path runs, and no timer is left behind', async (t) => {
  const before = timers()
  let hungSignal: AbortSignal | undefined
  const events: AttemptEvent[] = []
  const result = await runFallbackChain(
    [
      // Ignores its signal entirely: the chain must not wait for it.
      { path: 'gateway', attempt: (signal) => ((hungSignal = signal), new Promise<string>(() => {})) },
      { path: 'mdns', timeoutMs: 5000, attempt: async () => 'found' },
    ],
    { timeoutMs: 100, onAttempt: (e) => events.push(e) },
  )
  t.is(result.path, 'mdns')
  t.deepEqual(
    events.map((e) => [e.path, e.ok, e.code]),
    [
      ['gateway', false, 'ERR_TIMEOUT'],
      ['mdns', true, undefined],
    ],
  )
  t.true(hungSignal?.aborted, "the loser's work was told to stop")
  t.is((hungSignal?.reason as { code?: string }).code, 'ERR_TIMEOUT')
  t.is(timers(), before, 'no timer left behind')
})

test('a per-path timeout overrides the chain timeout', async (t) => {
  const events: AttemptEvent[] = []
  await t.throwsAsync(runFallbackChain([{ path: 'cloud', timeoutMs: 50, attempt: () => new Promise<string>(() => {}) }], { timeoutMs: 60_000, onAttempt: (e) => events.push(e) }), { code: 'ERR_UNREACHABLE' })
  t.deepEqual(
    events.map((e) => e.code),
    ['ERR_TIMEOUT'],
  )
})

test.serial('aborting the chain aborts the running attempt, skips the rest, rejects with ERR_ABORTED and leaves no timer or listener', async (t) => {
  const before = timers()
  const controller = new AbortController()
  let running: AbortSignal | undefined
  let laterRan = false
  const events: AttemptEvent[] = []
  const chain = runFallbackChain(
    [
      {
        path: 'gateway',
        attempt: (signal) =>
          new Promise<string>((_, reject) => {
            running = signal
            signal.addEventListener('abort', () => reject(signal.reason))
          }),
      },
      { path: 'manual', attempt: async () => ((laterRan = true), 'x') },
    ],
    { timeoutMs: 60_000, signal: controller.signal, onAttempt: (e) => events.push(e) },
  )
  await sleep(20)
  controller.abort()
  await t.throwsAsync(chain, { code: 'ERR_ABORTED' })
  t.true(running?.aborted)
  t.false(laterRan, 'no later path starts after an abort')
  t.deepEqual(
    events.map((e) => [e.path, e.code]),
    [['gateway', 'ERR_ABORTED']],
  )
  t.is(timers(), before)
  // An already aborted signal: nothing runs.
  let ran = false
  await t.throwsAsync(runFallbackChain([{ path: 'gateway', attempt: async () => ((ran = true), 'x') }], { timeoutMs: 1000, signal: AbortSignal.abort() }), { code: 'ERR_ABORTED' })
  t.false(ran)
})

test('a value that arrives after its attempt timed out is discarded, not leaked', async (t) => {
  const discarded: [string, string][] = []
  let resolveLate: (v: string) => void = () => {}
  const result = await runFallbackChain(
    [
      { path: 'gateway', attempt: () => new Promise<string>((resolve) => (resolveLate = resolve)) },
      { path: 'manual', attempt: async () => 'manual-link' },
    ],
    { timeoutMs: 50, discard: (value, path) => discarded.push([path, value]) },
  )
  t.is(result.value, 'manual-link')
  resolveLate('late-gateway-link')
  await sleep(10)
  t.deepEqual(discarded, [['gateway', 'late-gateway-link']])
})

test('the fallback chain refuses no attempts, an unknown path and a bad timeout with ERR_INVALID_ARG; a throwing listener changes nothing', async (t) => {
  await t.throwsAsync(runFallbackChain([], { timeoutMs: 1000 }), { code: 'ERR_INVALID_ARG' })
  await t.throwsAsync(runFallbackChain([{ path: 'carrier-pigeon' as 'manual', attempt: async () => 1 }], { timeoutMs: 1000 }), { code: 'ERR_INVALID_ARG' })
  for (const timeoutMs of [0, -1, Number.NaN, Infinity, 2 ** 31]) await t.throwsAsync(runFallbackChain([{ path: 'manual', attempt: async () => 1 }], { timeoutMs }), { code: 'ERR_INVALID_ARG' })
  const sync = await runFallbackChain(
    [
      {
        path: 'gateway',
        attempt: () => {
          throw Object.assign(new Error('sync'), { code: 'ERR_CONFIG' })
        },
      },
      { path: 'manual', attempt: async () => 'ok' },
    ],
    {
      timeoutMs: 1000,
      onAttempt: () => {
        throw new Error('listener bug')
      },
    },
  )
  t.is(sync.path, 'manual', 'an attempt that throws synchronously fails like one that rejects')
})
