// Scale-out: hub instances sharing presence and relay through a real Redis (redis-server on
// 127.0.0.1, persistence off). A device on instance A reaches a device on instance B; when A is
// killed, its devices reconnect through B and lose nothing they need.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

import test from 'ava'

import { signObject } from '../src/index.js'
import { HubClient, HubServer, MemoryBus, RedisBus, type HubPresence, type HubSignal } from '../src/hub/index.js'
import { device, redisMissing, revoking, startRedis, trustPem, type TestDevice } from './helpers/hub.js'
import { requirePeer } from './helpers/peers.js'

const withRedis = requirePeer(redisMissing(), test.serial)
const hubDevice = device('hub-1', 'hotel-1', ['gateway'])

function connect(port: number, d: TestDevice) {
  return HubClient.connect({ host: '127.0.0.1', port, identity: d.identity, trustPem })
}

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A hub instance in a child process, on the Redis at `redisUrl`. */
async function spawnInstance(redisUrl: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import=tsx', join(process.cwd(), '__test__/helpers/hub-instance.ts')], {
    env: { ...process.env, HUB_INSTANCE: JSON.stringify({ chainPem: hubDevice.identity.certificateChainPem, keyB64: hubDevice.privateKey.toString('base64'), trustPem, redisUrl }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port)
    })
    child.once('exit', (code) => reject(new Error(`the hub instance exited with ${code}`)))
  })
  return { port, child }
}

test.serial('two hub instances in one process share presence and relay through one bus', async (t) => {
  const bus = new MemoryBus()
  const hubA = new HubServer({ identity: hubDevice.identity, trustPem, bus })
  const hubB = new HubServer({ identity: hubDevice.identity, trustPem, bus })
  const { port: portA } = await hubA.listen(0)
  const { port: portB } = await hubB.listen(0)
  const a = await connect(portA, device('tablet-a'))
  const b = await connect(portB, device('tablet-b'))
  t.teardown(async () => {
    await Promise.all([a.close(), b.close()])
    await Promise.all([hubA.close(), hubB.close()])
    await bus.close()
  })
  await until(() => a.peers().includes('tablet-b') && b.peers().includes('tablet-a'), 'presence across instances')
  const got: HubSignal[] = []
  b.on('signal', (s) => got.push(s))
  a.send('tablet-b', 'offer', Buffer.from('signed offer bytes'))
  await until(() => got.length === 1, 'the relayed offer')
  t.is(got[0]!.from, 'tablet-a')

  // A device revoked on instance A: cut there, and its peer on instance B is told (CRL) and sees it go.
  const stolen = device('stolen')
  const s = await connect(portA, stolen)
  await until(() => b.peers().includes('stolen'), 'the soon-revoked device present on B')
  const told: string[] = []
  b.on('revoked', (m) => told.push(m.crlPem))
  const { revocations, crlPem } = revoking(stolen)
  const cut = new Promise((resolve) => s.once('close', resolve))
  hubA.setRevocations(revocations, crlPem)
  hubB.setRevocations(revocations, crlPem)
  await cut
  await until(() => told.includes(crlPem) && !b.peers().includes('stolen'), 'the revocation told across instances')
  await t.throwsAsync(connect(portB, stolen))
})

withRedis('over Redis, a device on instance A reaches a device on instance B; A is killed and its device reconnects through B with presence and relay intact', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const instanceA = await spawnInstance(redis.url)
  t.teardown(() => void instanceA.child.kill('SIGKILL'))
  const bus = new RedisBus(redis.url)
  const hubB = new HubServer({ identity: hubDevice.identity, trustPem, bus })
  const { port: portB } = await hubB.listen(0)
  t.teardown(async () => {
    await hubB.close()
    await bus.close()
  })
  const da = device('tablet-a')
  const db = device('tablet-b')
  const a = await connect(instanceA.port, da)
  const b = await connect(portB, db)
  t.teardown(() => b.close())
  await until(() => a.peers().includes('tablet-b') && b.peers().includes('tablet-a'), 'presence across instances over Redis')
  const got: HubSignal[] = []
  b.on('signal', (s) => got.push(s))
  const offer = signObject('test', Buffer.from('offer over redis'), da.identity)
  a.send('tablet-b', 'offer', offer)
  await until(() => got.length === 1, 'the offer relayed through Redis')
  t.is(got[0]!.from, 'tablet-a')
  t.deepEqual(got[0]!.object, offer)
  const back: HubSignal[] = []
  a.on('signal', (s) => back.push(s))
  b.send('tablet-a', 'answer', signObject('test', Buffer.from('answer'), db.identity))
  await until(() => back.length === 1, 'the answer back through Redis')

  // Instance A dies without a word: no offline is published; its device sees its link close.
  const closed = new Promise((resolve) => a.once('close', resolve))
  instanceA.child.kill('SIGKILL')
  await closed
  // Until tablet-a is back, what b sends it is kept for it (a late joiner).
  const presence: HubPresence[] = []
  b.on('presence', (p) => presence.push(p))
  const again = await connect(portB, da)
  t.teardown(() => again.close())
  const reGot: HubSignal[] = []
  again.on('signal', (s) => reGot.push(s))
  await until(() => again.peers().includes('tablet-b'), 'the reconnected device sees its peer')
  await until(() => b.peers().includes('tablet-a'), 'the peer sees the reconnected device (presence republished)')
  b.send('tablet-a', 'offer', signObject('test', Buffer.from('offer after failover'), db.identity))
  await until(() => reGot.length === 1, 'relay after failover')
  t.is(reGot[0]!.from, 'tablet-b')
  again.send('tablet-b', 'candidate', signObject('test', Buffer.from('candidate'), da.identity))
  await until(() => got.some((s) => s.kind === 'candidate'), 'relay from the reconnected device')
})
