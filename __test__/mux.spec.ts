import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Duplex } from 'node:stream'
import { createInterface } from 'node:readline'

import test from 'ava'

import { buildCsr, CertificateAuthority, Signer, type DeviceCredential, connectSecure, createSecureServer, generateP256Key, Mux, RevocationSet, TrustStore, wrapNoise, MUX_LIMITS, MuxError, type MuxInit, type MuxStream, type SecureStream, type ZtError } from '../src/index.js'
import { native } from '../src/native.js'

const root = CertificateAuthority.createRoot({ commonName: 'Mux Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Mux Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
const trustPem = root.certificatePem

function device(deviceId: string) {
  const privateKey = generateP256Key()
  const cert = siteCa.issue(buildCsr(privateKey, deviceId, 'hotel-1'), { deviceId, tenant: 'hotel-1' })
  return { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(privateKey) }
}

const gateway = device('gw-1')
const tablet = device('tablet-7')
const ECHO = '/test/echo/1'
const LINES = '/test/lines/1'

/** Echoes every byte back, then half-closes when the opener does. */
function echo(stream: MuxStream): void {
  stream.on('error', () => {})
  stream.pipe(stream)
}

/** Answers each line with its upper-case copy and, when the opener half-closes, a count. */
function lines(stream: MuxStream): void {
  stream.on('error', () => {})
  let count = 0
  const reader = createInterface({ input: stream, crlfDelay: Infinity })
  reader.on('error', () => {})
  reader.on('line', (line) => {
    count++
    stream.write(`${line.toUpperCase()}\n`)
  })
  reader.on('close', () => stream.end(`count ${count}\n`))
}

interface Pair {
  client: Mux
  server: Mux
  clientLink: SecureStream
  serverLink: SecureStream
}

type Teardown = { teardown(fn: () => unknown): void }

/**
 * A real secure link on 127.0.0.1: `onServerLink` gets the server's end as soon as it is
 * secured (a mux must listen from the first byte), the client's end is returned.
 */
async function secureLink<T>(t: Teardown, protocol: 'tls' | 'noise', onServerLink: (link: SecureStream) => T): Promise<{ clientLink: SecureStream; server: Promise<T> }> {
  let accepted: ((value: T) => void) | undefined
  const server = new Promise<T>((resolve) => (accepted = resolve))
  const listener = createSecureServer({ protocol, identity: gateway, trustPem }, (link) => {
    link.on('error', () => {})
    accepted!(onServerLink(link))
  })
  const { port } = await listener.listen(0)
  t.teardown(() => listener.close())
  const clientLink = await connectSecure({ protocol, host: '127.0.0.1', port, identity: tablet, trustPem })
  clientLink.on('error', () => {})
  t.teardown(() => clientLink.destroy())
  return { clientLink, server }
}

/** Two endpoints over one real secure link, each side with its own mux. */
async function pair(t: Teardown, protocol: 'tls' | 'noise', serverInit: Partial<MuxInit> = {}, clientInit: Partial<MuxInit> = {}): Promise<Pair> {
  const { clientLink, server } = await secureLink(t, protocol, (link) => {
    const mux = new Mux(link, { role: 'responder', ...serverInit })
    mux.handle(ECHO, echo)
    mux.handle(LINES, lines)
    return { mux, link }
  })
  const { mux, link } = await server
  return { client: new Mux(clientLink, { role: 'initiator', ...clientInit }), server: mux, clientLink, serverLink: link }
}

/** A hostile peer: a raw secure link to a mux server, framed by a native session it misuses. */
async function hostile(t: Teardown, protocol: 'tls' | 'noise', serverInit: Partial<MuxInit> = {}) {
  const { clientLink: link, server } = await secureLink(t, protocol, (serverLink) => {
    const mux = new Mux(serverLink, { role: 'responder', ...serverInit })
    mux.handle(ECHO, echo)
    mux.handle('/test/stall/1', (stream) => {
      stream.on('error', () => {})
      stream.pause()
    })
    return mux
  })
  const session = new native.MuxSession('initiator', 65_536)
  const linkClosed = once(link, 'close')
  return { link, session, mux: await server, linkClosed }
}

/** Reads a stream to its end, leaving its writable side alone (async iteration would destroy it). */
function readAll(stream: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
  })
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex')

for (const protocol of ['tls', 'noise'] as const) {
  test(`over one ${protocol} link, an echo and a line protocol run concurrently with interleaved large writes, opened from both sides`, async (t) => {
    const { client, server } = await pair(t, protocol)
    client.handle(ECHO, echo)
    t.is(client.peer.deviceId, 'gw-1')
    t.is(server.peer.deviceId, 'tablet-7')

    const echoOne = async (size: number, opener: Mux) => {
      const stream = await opener.open(ECHO)
      t.is(stream.protocol, ECHO)
      const data = randomBytes(size)
      const back = readAll(stream)
      // Uneven writes, so frames of several streams interleave on the link.
      for (let at = 0; at < data.length; at += 100_003) stream.write(data.subarray(at, at + 100_003))
      stream.end()
      t.is(sha(await back), sha(data))
    }
    const lineOne = async () => {
      const stream = await client.open(LINES)
      const answer = readAll(stream)
      for (let i = 0; i < 500; i++) stream.write(`line ${i}\n`)
      stream.end() // half-close: the answer still comes back
      const text = (await answer).toString()
      t.true(text.startsWith('LINE 0\nLINE 1\n'))
      t.true(text.endsWith('LINE 499\ncount 500\n'))
    }
    await Promise.all([echoOne(3 << 20, client), echoOne(2 << 20, client), echoOne(1 << 20, server), lineOne(), lineOne()])
    const served = new Promise<MuxStream>((resolve) => server.handle('/test/peer/1', (stream) => resolve(stream)))
    await client.open('/test/peer/1')
    t.is((await served).peer.deviceId, 'tablet-7', 'every stream knows the verified peer')
    client.close()
    t.is(await client.closed, undefined)
    t.is(await server.closed, undefined, 'a go-away with code 0 is a normal end')
  })

  test(`over ${protocol}, a stalled reader stops only its own stream, buffers at most its window, and loses nothing`, async (t) => {
    const { client, server } = await pair(t, protocol)
    let stalled: MuxStream | undefined
    server.handle('/test/stall/1', (stream) => {
      stream.pause()
      stalled = stream
    })
    const slow = await client.open('/test/stall/1')
    const data = randomBytes(4 << 20)
    let writesDone = false
    slow.end(data, () => (writesDone = true))
    // Meanwhile another stream on the same link works at full speed.
    const fast = await client.open(ECHO)
    const back = readAll(fast)
    const payload = randomBytes(1 << 20)
    fast.end(payload)
    t.is(sha(await back), sha(payload))
    await new Promise((r) => setTimeout(r, 100))
    t.false(writesDone, 'the writer of the stalled stream waits for credit')
    t.true(stalled!.readableLength <= server.window, `the stalled stream buffers ${stalled!.readableLength} bytes`)
    const all = readAll(stalled!)
    stalled!.resume()
    t.is(sha(await all), sha(data))
  })

  test(`over ${protocol}, end() half-closes and destroy() resets, in both roles`, async (t) => {
    const { client, server } = await pair(t, protocol)
    const serverSide = new Promise<MuxStream>((resolve) => server.handle('/test/keep/1', (stream) => resolve(stream)))
    const stream = await client.open('/test/keep/1')
    const peerStream = await serverSide
    // The opener resets: the acceptor sees ERR_MUX_RESET.
    const failed = once(peerStream, 'error')
    stream.on('error', () => {})
    stream.destroy(new Error('changed my mind'))
    const [error] = (await failed) as [ZtError]
    t.is(error.code, 'ERR_MUX_RESET')
    t.true(error instanceof MuxError)
    // The acceptor resets: the opener sees it too.
    const next = new Promise<MuxStream>((resolve) => server.handle('/test/keep/2', (s) => resolve(s)))
    const second = await client.open('/test/keep/2')
    const secondFailed = once(second, 'error')
    ;(await next).destroy()
    t.is(((await secondFailed) as [ZtError])[0].code, 'ERR_MUX_RESET')
    // Half-close: the acceptor half-closes first and still reads.
    const third = new Promise<MuxStream>((resolve) => server.handle('/test/keep/3', (s) => resolve(s)))
    const opener = await client.open('/test/keep/3')
    const acceptor = await third
    acceptor.end('bye')
    t.is((await readAll(opener)).toString(), 'bye')
    const read = readAll(acceptor)
    opener.end('still here')
    t.is((await read).toString(), 'still here')
    t.is(client.streamCount, 0)
  })

  test(`over ${protocol}, an unknown protocol and streams past the limit are refused with typed errors, and the session goes on`, async (t) => {
    const { client } = await pair(t, protocol, { maxStreams: 2 }, { maxStreams: 3 })
    await t.throwsAsync(client.open('/nobody/1'), { code: 'ERR_MUX_UNSUPPORTED_PROTOCOL', instanceOf: MuxError })
    await t.throwsAsync(client.open('bad id with spaces'), { code: 'ERR_MUX_PROTOCOL_ID' })
    const kept = [await client.open(ECHO), await client.open(ECHO)]
    await t.throwsAsync(client.open(ECHO), { code: 'ERR_MUX_TOO_MANY_STREAMS' }, 'the peer refuses past its limit')
    kept[0]!.end()
    await readAll(kept[0]!)
    const again = await client.open(ECHO)
    again.end('ok')
    t.is((await readAll(again)).toString(), 'ok')
  })

  test(`over ${protocol}, closing the link mid-stream fails every stream and pending open with ERR_CLOSED`, async (t) => {
    const { client, serverLink } = await pair(t, protocol)
    const stream = await client.open(ECHO)
    const failed = once(stream, 'error')
    stream.write(randomBytes(100_000))
    serverLink.destroy()
    t.is(((await failed) as [ZtError])[0].code, 'ERR_CLOSED')
    t.is((await client.closed)?.code, 'ERR_CLOSED')
    await t.throwsAsync(client.open(ECHO), { code: 'ERR_CLOSED' })
  })

  test(`over ${protocol}, opens honour abort signals and time out`, async (t) => {
    // This peer reads and never answers: a raw link, not a mux.
    const { clientLink: link } = await secureLink(t, protocol, (serverLink) => serverLink.resume())
    const mux = new Mux(link, { role: 'initiator', openTimeoutMs: 150 })
    const aborted = new AbortController()
    aborted.abort()
    await t.throwsAsync(mux.open(ECHO, { signal: aborted.signal }), { code: 'ERR_ABORTED' })
    const later = new AbortController()
    const pending = mux.open(ECHO, { signal: later.signal })
    setTimeout(() => later.abort(), 20)
    await t.throwsAsync(pending, { code: 'ERR_ABORTED' })
    await t.throwsAsync(mux.open(ECHO), { code: 'ERR_TIMEOUT' })
    t.is(mux.streamCount, 0)
    mux.close()
  })
}

/** Header bytes a hostile peer writes by hand (the honest ones come from the core). */
function rawHeader(type: number, stream: number, value: number): Buffer {
  const header = Buffer.alloc(MUX_LIMITS.headerLength)
  header[0] = 1
  header[1] = type
  header.writeUInt32BE(stream, 4)
  header.writeUInt32BE(value, 8)
  return header
}

for (const protocol of ['tls', 'noise'] as const) {
  test(`over ${protocol}, a hostile peer is cut off with a typed error: oversized frame, garbage, ignored credit, open flood`, async (t) => {
    const cases: Array<[string, (h: Awaited<ReturnType<typeof hostile>>) => Promise<void>, string]> = [
      ['oversized frame', async ({ link, session }) => {
        link.write(session.open(ECHO).out)
        link.write(rawHeader(2, 1, MUX_LIMITS.maxFrameBody + 1))
      }, 'ERR_MUX_FRAME_TOO_LARGE'],
      ['garbage after the handshake', async ({ link }) => {
        link.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
      }, 'ERR_MUX_MALFORMED'],
      ['data beyond its credit', async ({ link, session }) => {
        const { stream, out } = session.open('/test/stall/1')
        link.write(out)
        const [answer] = (await once(link, 'data')) as [Buffer]
        session.feed(answer, Buffer.alloc(session.dataLengthBound(answer.length)))
        const room = Buffer.alloc(2 * MUX_LIMITS.initialWindow)
        const window = room.subarray(0, session.send(stream, Buffer.alloc(MUX_LIMITS.initialWindow), room))
        link.write(window)
        // Replays one frame: honest framing, but past the credit the reader never returned.
        link.write(window.subarray(0, MUX_LIMITS.headerLength + MUX_LIMITS.maxFrameBody))
      }, 'ERR_MUX_WINDOW'],
      ['an open flood', async ({ link, session }) => {
        const flood: Buffer[] = []
        for (let i = 0; i < 2000; i++) flood.push(session.open('/test/stall/1').out)
        link.write(Buffer.concat(flood))
      }, 'ERR_MUX_TOO_MANY_STREAMS'],
      ['stream ids it may not use', async ({ link }) => {
        link.write(Buffer.concat([rawHeader(0, 2, 4), Buffer.from('/x/1')]))
      }, 'ERR_MUX_STREAM_ID'],
    ]
    for (const [name, attack, code] of cases) {
      const h = await hostile(t, protocol, { maxStreams: 8 })
      await attack(h)
      const error = await h.mux.closed
      t.is<string | undefined, string>(error?.code, code, name)
      t.true(error instanceof MuxError, name)
      await h.linkClosed // the server closed the link
      t.is(h.mux.streamCount, 0, name)
    }
  })
}

/**
 * Two ends of an in-memory byte pipe that honours backpressure: a write completes only once the
 * other end's reader has room, as a socket does once the kernel buffers are full (here they
 * are 16 KiB instead of megabytes, so a test reaches the limit with little work).
 */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = []
  const waiting: Array<(() => void) | undefined> = [undefined, undefined]
  for (const i of [0, 1]) {
    ends.push(
      new Duplex({
        read() {
          const resume = waiting[1 - i]
          waiting[1 - i] = undefined
          resume?.()
        },
        write(chunk, _encoding, callback) {
          if (ends[1 - i]!.push(chunk)) callback()
          else waiting[i] = callback
        },
        final(callback) {
          ends[1 - i]!.push(null)
          callback()
        },
      }),
    )
  }
  return [ends[0]!, ends[1]!]
}

function noiseInit(role: 'initiator' | 'responder', identity: DeviceCredential) {
  return { role, identity, trust: TrustStore.fromPem(trustPem), revocations: new RevocationSet() }
}

test('a peer that stops reading while making this side answer is cut off with ERR_MUX_STALLED', async (t) => {
  const [a, b] = duplexPair()
  const [link, serverLink] = await Promise.all([wrapNoise(a, noiseInit('initiator', tablet)), wrapNoise(b, noiseInit('responder', gateway))])
  link.on('error', () => {})
  serverLink.on('error', () => {})
  const mux = new Mux(serverLink, { role: 'responder', maxStreams: 1, maxQueuedControlBytes: 1024 })
  mux.handle(ECHO, echo)
  let ended = false
  void mux.closed.then(() => (ended = true))
  // Every open is accepted (a frame back) and reset by the attacker, which never reads.
  link.pause()
  const session = new native.MuxSession('initiator')
  for (let round = 0; round < 100 && !ended; round++) {
    for (let i = 0; i < 500; i++) {
      // Apart, so that each open is accepted before its reset arrives.
      const { stream, out } = session.open(ECHO)
      link.write(out)
      link.write(session.reset(stream, 0))
    }
    await new Promise((r) => setImmediate(r))
  }
  const error = await mux.closed
  t.is(error?.code, 'ERR_MUX_STALLED')
  t.true(serverLink.writableLength < 64 * 1024, `${serverLink.writableLength} bytes were queued`)
})
