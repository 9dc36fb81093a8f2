import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Duplex } from 'node:stream'
import { createInterface } from 'node:readline'

import test from 'ava'

import { buildCsr, CertificateAuthority, Signer, type DeviceCredential, connectSecure, createSecureServer, generateP256Key, Mux, RevocationSet, TrustStore, wrapNoise, MUX_LIMITS, MUX_RESET_CODES, MuxError, type MuxInit, type MuxStream, type SecureStream, type ZtError } from '../src/index.js'
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

type Role = 'initiator' | 'responder'
const ROLES = ['initiator', 'responder'] as const
const STALL = '/test/stall/1'
const FLOOD = '/test/flood/1'

/**
 * A hostile peer in `role`: a raw secure link to an honest mux (the other role), framed by a
 * native session it misuses. The honest side answers ECHO, STALL (a reader that never reads) and
 * FLOOD (a writer of 1 MiB).
 */
async function hostile(t: Teardown, protocol: 'tls' | 'noise', role: Role, honestInit: Partial<MuxInit> = {}) {
  const stalled: MuxStream[] = []
  const flooding: MuxStream[] = []
  const honest = (link: SecureStream) => {
    const mux = new Mux(link, { role: role === 'initiator' ? 'responder' : 'initiator', ...honestInit })
    mux.handle(ECHO, echo)
    mux.handle(STALL, (stream) => {
      stream.on('error', () => {})
      stream.pause()
      stalled.push(stream)
    })
    mux.handle(FLOOD, (stream) => {
      stream.on('error', () => {})
      flooding.push(stream)
      stream.write(Buffer.alloc(1 << 20, 7))
    })
    return mux
  }
  let mux: Mux | undefined
  const { clientLink, server } = await secureLink(t, protocol, (serverLink) => {
    // A mux must listen from the first byte: the honest server starts at once.
    if (role === 'initiator') mux = honest(serverLink)
    return serverLink
  })
  const serverLink = await server
  if (role === 'responder') mux = honest(clientLink)
  const link = role === 'initiator' ? clientLink : serverLink
  const session = new native.MuxSession(role, 65_536)
  const linkClosed = once(link, 'close')
  return { link, session, mux: mux!, linkClosed, role, stalled, flooding }
}

type Hostile = Awaited<ReturnType<typeof hostile>>

/** Opens a stream from the hostile side and waits for the honest side's accept (and credit). */
async function hostileOpen(h: Hostile, protocol: string): Promise<number> {
  const { stream, out } = h.session.open(protocol)
  const accepted = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      const result = h.session.feed(chunk, Buffer.alloc(h.session.dataLengthBound(chunk.length)))
      if (result.errorCode !== null && result.errorCode !== undefined) reject(new Error(result.errorCode))
      if (result.events.some((e) => e.kind === 'accepted' && e.stream === stream)) {
        h.link.off('data', onData)
        resolve()
      }
    }
    h.link.on('data', onData)
  })
  h.link.write(out)
  await accepted
  return stream
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

/** Waits for a stream to close and returns why it failed (a stream's failure never reaches the process). */
async function failureOf(stream: MuxStream): Promise<Error | undefined> {
  if (!stream.closed) await new Promise((resolve) => stream.once('close', resolve))
  return stream.failure
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
    t.true(stalled!.bufferedLength <= server.window, `the stalled stream holds ${stalled!.bufferedLength} bytes`)
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
    // Aborted once the open is under way, before any timer can fire (a loaded machine must not
    // let the open's own timeout win the race).
    queueMicrotask(() => later.abort())
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
  for (const role of ROLES) {
    test(`over ${protocol}, a hostile ${role} is cut off with a typed error: oversized frame, garbage, ignored credit, open flood`, async (t) => {
      const cases: Array<[string, (h: Hostile) => Promise<void>, string]> = [
        ['oversized frame', async ({ link, session }) => {
          const { stream, out } = session.open(ECHO)
          link.write(out)
          link.write(rawHeader(2, stream, MUX_LIMITS.maxFrameBody + 1))
        }, 'ERR_MUX_FRAME_TOO_LARGE'],
        ['garbage after the handshake', async ({ link }) => {
          link.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
        }, 'ERR_MUX_MALFORMED'],
        ['data beyond its credit', async ({ link, session }) => {
          const { stream, out } = session.open(STALL)
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
          for (let i = 0; i < 2000; i++) flood.push(session.open(STALL).out)
          link.write(Buffer.concat(flood))
        }, 'ERR_MUX_TOO_MANY_STREAMS'],
        ['stream ids it may not use', async ({ link }) => {
          // An open with the other side's parity.
          link.write(Buffer.concat([rawHeader(0, role === 'initiator' ? 2 : 1, 4), Buffer.from('/x/1')]))
        }, 'ERR_MUX_STREAM_ID'],
      ]
      for (const [name, attack, code] of cases) {
        const h = await hostile(t, protocol, role, { maxStreams: 8 })
        await attack(h)
        const error = await h.mux.closed
        t.is<string | undefined, string>(error?.code, code, name)
        t.true(error instanceof MuxError, name)
        await h.linkClosed // the honest side closed the link
        t.is(h.mux.streamCount, 0, name)
      }
    })

    test(`over ${protocol}, a hostile ${role} that floods tiny frames into a stalled stream makes it hold its bytes in a few blocks, not an object per frame`, async (t) => {
      const h = await hostile(t, protocol, role)
      const id = await hostileOpen(h, STALL)
      const frames = 20_000
      const wire: Buffer[] = []
      const room = Buffer.alloc(64)
      for (let i = 0; i < frames; i++) {
        const written = h.session.send(id, Buffer.of(i & 0xff), room)
        wire.push(Buffer.from(room.subarray(0, written)))
      }
      h.link.write(Buffer.concat(wire))
      // Frames are handled in order: once this open is answered, the flood has been taken in.
      await hostileOpen(h, ECHO)
      const [stalled] = h.stalled
      t.is(stalled!.bufferedLength, frames)
      t.true(stalled!.bufferedLength <= h.mux.window)
      const entries = (stalled as unknown as { readableBuffer: { length: number } }).readableBuffer.length
      t.true(entries <= 4, `${frames} one-byte frames are held as ${entries} buffers`)
      const all = readAll(stalled!)
      stalled!.resume()
      h.link.write(h.session.close(id))
      const data = await all
      t.is(data.length, frames)
      t.true(data.every((byte, i) => byte === (i & 0xff)), 'every byte, in order')
      t.is(await Promise.race([h.mux.closed, 'open']), 'open', 'the session goes on')
    })

    test(`over ${protocol}, a writer waiting for credit a hostile ${role} never returns is reset with ERR_MUX_CREDIT_TIMEOUT, and the session goes on`, async (t) => {
      const h = await hostile(t, protocol, role, { creditTimeoutMs: 200 })
      const resets: Array<{ stream: number; code: number }> = []
      const id = await hostileOpen(h, FLOOD)
      // The hostile side reads everything and never grants credit.
      const reset = new Promise<void>((resolve) => {
        h.link.on('data', (chunk: Buffer) => {
          const result = h.session.feed(chunk, Buffer.alloc(h.session.dataLengthBound(chunk.length)))
          for (const event of result.events) {
            if (event.kind === 'reset') {
              resets.push({ stream: event.stream, code: event.code! })
              resolve()
            }
          }
        })
      })
      const [writer] = h.flooding
      const error = (await failureOf(writer!)) as ZtError
      t.is(error.code, 'ERR_MUX_CREDIT_TIMEOUT')
      t.true(error instanceof MuxError)
      await reset
      t.deepEqual(resets, [{ stream: id, code: MUX_RESET_CODES.creditTimeout }], 'the peer is told why')
      t.is(h.mux.streamCount, 0, 'the stream is forgotten')
      t.is(await Promise.race([h.mux.closed, 'open']), 'open', 'the session goes on')
    })
  }
}

for (const protocol of ['tls', 'noise'] as const) {
  for (const side of ['server', 'client'] as const) {
    test(`over ${protocol}, a ${side} handler that throws, rejects, destroys its stream unheard or throws in a listener resets only its stream, with code internal`, async (t) => {
      const { client, server } = await pair(t, protocol)
      const [handling, opener] = side === 'server' ? [server, client] : [client, server]
      handling.handle(ECHO, echo)
      const handlers: Record<string, (stream: MuxStream) => void | Promise<void>> = {
        '/test/throws/1': () => {
          throw new Error('handler bug')
        },
        '/test/rejects/1': async () => {
          await Promise.resolve()
          throw new Error('async handler bug')
        },
        '/test/rejects-with-nothing/1': () => Promise.reject(undefined),
        '/test/destroys/1': (stream) => {
          stream.destroy(new Error('nobody listens'))
        },
        '/test/listener-throws/1': (stream) => {
          stream.on('data', () => {
            throw new Error('listener bug')
          })
        },
      }
      for (const [protocolId, handler] of Object.entries(handlers)) handling.handle(protocolId, handler)
      for (const protocolId of Object.keys(handlers)) {
        const stream = await opener.open(protocolId)
        stream.write('x')
        const failure = (await failureOf(stream)) as ZtError | undefined
        t.is(failure?.code, 'ERR_MUX_RESET', protocolId)
        t.true(failure?.message.includes(`code ${MUX_RESET_CODES.internal}`), protocolId)
        // Both sessions go on.
        const again = await opener.open(ECHO)
        again.end('still here')
        t.is((await readAll(again)).toString(), 'still here', protocolId)
      }
      t.is(handling.streamCount, 0)
      t.is(await Promise.race([client.closed, server.closed, 'open']), 'open')
    })
  }
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

for (const role of ROLES) {
  test(`a peer that stops reading while making this side answer is cut off with ERR_MUX_STALLED, the peer as ${role}`, async (t) => {
    const honestRole = role === 'initiator' ? 'responder' : 'initiator'
    const [a, b] = duplexPair()
    const [link, serverLink] = await Promise.all([wrapNoise(a, noiseInit(role, tablet)), wrapNoise(b, noiseInit(honestRole, gateway))])
    link.on('error', () => {})
    serverLink.on('error', () => {})
    const mux = new Mux(serverLink, { role: honestRole, maxStreams: 1, maxQueuedControlBytes: 1024 })
    mux.handle(ECHO, echo)
    let ended = false
    void mux.closed.then(() => (ended = true))
    // Every open is accepted (a frame back) and reset by the attacker, which never reads.
    link.pause()
    const session = new native.MuxSession(role)
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
}

/** Two muxes over a Noise link on {@link duplexPair}, whose answers can arrive within the write that called for them. */
async function synchronousPair(t: Teardown): Promise<Pair> {
  const [a, b] = duplexPair()
  const [clientLink, serverLink] = await Promise.all([wrapNoise(a, noiseInit('initiator', tablet)), wrapNoise(b, noiseInit('responder', gateway))])
  clientLink.on('error', () => {})
  serverLink.on('error', () => {})
  t.teardown(() => {
    clientLink.destroy()
    serverLink.destroy()
  })
  const client = new Mux(clientLink, { role: 'initiator', openTimeoutMs: 2000 })
  const server = new Mux(serverLink, { role: 'responder', openTimeoutMs: 2000 })
  return { client, server, clientLink, serverLink }
}

test('on a link that answers within the write, every stream is registered before its open, accept or data can meet an answer, from both sides', async (t) => {
  const { client, server } = await synchronousPair(t)
  for (const mux of [client, server]) {
    mux.handle(ECHO, echo)
    // A handler that writes at once: its data follows the accept within the same turn.
    mux.handle('/test/greets/1', (stream) => {
      stream.on('error', () => {})
      stream.end('hello')
    })
  }
  for (const [opener, name] of [[client, 'initiator'], [server, 'responder']] as const) {
    const greeted = await opener.open('/test/greets/1')
    greeted.end()
    t.is((await readAll(greeted)).toString(), 'hello', name)
    const stream = await opener.open(ECHO)
    stream.end(randomBytes(300_000))
    t.is((await readAll(stream)).length, 300_000, name)
  }
  t.is(client.streamCount, 0)
  t.is(server.streamCount, 0)
})
