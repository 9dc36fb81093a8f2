// WebRTC data channels (src/webrtc): the shipped stack (node-datachannel) opens, carries and
// closes channels; the DTLS fingerprint is enforced during the handshake in both roles, against
// a tampered fingerprint and against a relay that terminates DTLS with its own certificate;
// node-datachannel and werift interoperate; malformed descriptions are refused with typed errors.
// Everything runs on 127.0.0.1 (empty ICE servers), and every session is closed in teardown.

import test, { type ExecutionContext } from 'ava'

import { createStack, openChannelPair, type DataChannel, type RtcSession, type WebRtcStack, ZtError } from '../src/index.js'
import { createWeriftStackForTestingOnly } from '../src/webrtc/index.js'
import { withoutCandidates } from '../src/webrtc/datachannel.js'

/** Closes the session when the test ends, whatever happened (tests of a file run concurrently). */
function track<T extends RtcSession>(t: { teardown: (f: () => void) => void }, session: T): T {
  t.teardown(() => session.close())
  return session
}

const ndc = () => createStack('node-datachannel', { timeoutMs: 20_000 })
const werift = () => createWeriftStackForTestingOnly({ timeoutMs: 20_000 })

/** The typed error a promise rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ZtError) return error.code
    return `untyped: ${String(error)}`
  }
  return 'resolved'
}

/** Records what a session's channel receives, and sends from it as soon as (if ever) it opens. */
function watch(session: RtcSession, name: string) {
  const seen = { opened: false, received: [] as (string | Buffer)[] }
  session.channel.then((channel) => {
    seen.opened = true
    channel.on('message', (data) => seen.received.push(data))
    try {
      channel.send(`application data from ${name}`)
      channel.send(Buffer.from(`binary data from ${name}`))
    } catch {}
  }, () => {})
  return seen
}

/** The description with the last hex digit of its DTLS fingerprint changed. */
function tamperFingerprint(sdp: string): string {
  const tampered = sdp.replace(/(a=fingerprint:sha-256 [0-9A-F:]*)([0-9A-F])(\r?\n)/i, (_, head: string, last: string, eol: string) => `${head}${last === '0' ? '1' : '0'}${eol}`)
  if (tampered === sdp) throw new Error('no fingerprint to tamper with')
  return tampered
}

const fingerprintLine = (sdp: string) => /a=fingerprint:[^\r\n]+/.exec(sdp)![0]

/**
 * The relay's description: the genuine party's SDP (its genuine fingerprint) with the attacker's
 * ICE credentials, candidates and port spliced in, so that ICE and DTLS reach the attacker.
 */
function splice(genuine: string, attacker: string): string {
  const pick = (sdp: string, prefix: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith(prefix))
  const iceLines = (sdp: string) => [...pick(sdp, 'a=ice-ufrag:'), ...pick(sdp, 'a=ice-pwd:'), ...pick(sdp, 'a=candidate:')]
  const attackerPort = /^m=application (\d+)/m.exec(attacker)![1]
  const lines = genuine.split(/\r?\n/).filter((line) => !/^a=(ice-ufrag|ice-pwd|candidate):/.test(line))
  const at = lines.findIndex((line) => line.startsWith('a=mid:'))
  lines.splice(at + 1, 0, ...iceLines(attacker))
  const forged = lines.join('\r\n').replace(/^m=application \d+/m, `m=application ${attackerPort}`)
  if (fingerprintLine(forged) !== fingerprintLine(genuine)) throw new Error('the splice lost the genuine fingerprint')
  return forged
}

/**
 * Applies an answer in an attack test: when the victim refuses the handshake at once, applying
 * the answer itself rejects, with the same typed error as the channel.
 */
async function settledAnswer(session: RtcSession, sdp: string): Promise<void> {
  await session.acceptAnswer(sdp).catch(async (error: unknown) => {
    if (!(error instanceof ZtError) || error.code === 'ERR_WEBRTC_SDP') throw error
    await session.channel.catch((reason: unknown) => {
      if (reason !== error) throw reason
    })
  })
}

/** Lets any data in flight arrive before the "nothing arrived" assertions. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 500))

/**
 * The outcome every fingerprint test asserts: the victim's session ends with ERR_WEBRTC_DTLS,
 * the other session (if ours) ends typed too, and after a moment for data in flight, no channel
 * opened and nothing arrived at either end.
 */
async function refusedInDtls(t: ExecutionContext, victim: RtcSession, other: RtcSession | undefined, ...ends: { opened: boolean; received: unknown[] }[]): Promise<void> {
  t.is(await codeOf(victim.channel), 'ERR_WEBRTC_DTLS')
  if (other !== undefined) t.true((await codeOf(other.channel)).startsWith('ERR_WEBRTC_'), 'the other side ends too, typed')
  await settle()
  for (const end of ends) {
    t.false(end.opened)
    t.deepEqual(end.received, [])
  }
}

async function exchange(t: { is: (a: unknown, b: unknown) => void; deepEqual: (a: unknown, b: unknown) => void }, a: DataChannel, b: DataChannel) {
  const atB = new Promise<Buffer | string>((resolve) => b.on('message', resolve))
  a.send('hello from the offerer')
  t.is(await atB, 'hello from the offerer')
  const atA = new Promise<Buffer | string>((resolve) => a.on('message', resolve))
  b.send(Uint8Array.from([1, 2, 3, 250]))
  t.deepEqual([...(await atA as Buffer)], [1, 2, 3, 250])
}

for (const [name, make] of [['node-datachannel', ndc], ['werift', werift]] as [string, () => WebRtcStack][]) {
  test(`${name}: two sessions open a data channel on loopback and exchange text and binary messages both ways`, async (t) => {
    const pair = await openChannelPair(make(), make(), { label: 'chat', retries: 2 })
    track(t, pair.offerer)
    track(t, pair.answerer)
    t.is(pair.offererChannel.label, 'chat')
    t.is(pair.answererChannel.label, 'chat')
    await exchange(t, pair.offererChannel, pair.answererChannel)
    const closed = new Promise<void>((resolve) => pair.answererChannel.on('close', resolve))
    pair.offerer.close()
    // libdatachannel tells the peer at once; werift's peer notices only when its transport times out.
    if (name === 'node-datachannel') await closed
    t.is(await codeOf(pair.offerer.localDescription()), 'ERR_WEBRTC_CLOSED', 'a closed session offers nothing more')
    t.throws(() => pair.offererChannel.send('late'), { code: 'ERR_WEBRTC_CLOSED' })
  })

  test(`${name}: the local description is complete (fingerprint, ICE credentials and a loopback candidate) before it is handed out`, async (t) => {
    const offerer = track(t, await make().offer())
    const sdp = await offerer.localDescription()
    t.regex(sdp, /a=fingerprint:sha-256 /)
    t.regex(sdp, /a=ice-ufrag:/)
    t.regex(sdp, /a=candidate:.* 127\.0\.0\.1 \d+ typ host/)
  })

  test(`${name}: a malformed description is refused with ERR_WEBRTC_SDP, by the answerer and by the offerer, without a crash or a hang`, async (t) => {
    const stack = make()
    const good = await track(t, await stack.offer()).localDescription()
    const bad = [
      '',
      'garbage',
      'v=0\r\n'.repeat(20_000),
      good.replace(/a=fingerprint:[^\r\n]+\r?\n/, ''),
      good.replace(/a=ice-pwd:[^\r\n]+\r?\n/, ''),
      good.replace(/^m=application[^\r\n]+/m, 'm=audio 9 UDP/TLS/RTP/SAVPF 111'),
      good.replace('a=fingerprint:sha-256', 'a=fingerprint:md5'),
      `${good}\u0000`,
    ]
    for (const sdp of bad) t.is(await codeOf(stack.answer(sdp)), 'ERR_WEBRTC_SDP', JSON.stringify(sdp.slice(0, 40)))
    t.is(await codeOf(stack.answer(42 as unknown as string)), 'ERR_WEBRTC_SDP')
    for (const sdp of bad.slice(0, 3)) {
      const offerer = track(t, await stack.offer())
      await offerer.localDescription()
      t.is(await codeOf(offerer.acceptAnswer(sdp)), 'ERR_WEBRTC_SDP')
      t.is(await codeOf(offerer.channel), 'ERR_WEBRTC_SDP', 'the session ends with the refusal')
    }
  })

  test(`${name}: a channel that does not open in time ends with ERR_WEBRTC_TIMEOUT, and an aborted session with ERR_ABORTED`, async (t) => {
    const offerer = track(t, await make().offer({ timeoutMs: 1_500 }))
    await offerer.localDescription()
    t.is(await codeOf(offerer.channel), 'ERR_WEBRTC_TIMEOUT')
    const controller = new AbortController()
    const aborted = track(t, await make().offer({ signal: controller.signal }))
    controller.abort()
    t.is(await codeOf(aborted.channel), 'ERR_ABORTED')
  })
}

test('node-datachannel: a message above the size limit is refused with ERR_WEBRTC_MESSAGE_SIZE and the channel stays usable', async (t) => {
  const stack = createStack('node-datachannel', { maxMessageSize: 1024 })
  const pair = await openChannelPair(stack, stack, { retries: 2 })
  track(t, pair.offerer)
  track(t, pair.answerer)
  t.throws(() => pair.offererChannel.send(new Uint8Array(1025)), { code: 'ERR_WEBRTC_MESSAGE_SIZE' })
  t.throws(() => pair.offererChannel.send('é'.repeat(513)), { code: 'ERR_WEBRTC_MESSAGE_SIZE' }, 'counted in bytes, not characters')
  await exchange(t, pair.offererChannel, pair.answererChannel)
})

test('werift is not shipped: createStack refuses it with ERR_WEBRTC_STACK', (t) => {
  t.throws(() => createStack('werift'), { code: 'ERR_WEBRTC_STACK' })
  t.throws(() => createStack('nope' as 'werift'), { code: 'ERR_WEBRTC_STACK' })
})

for (const [offering, answering] of [['node-datachannel', 'werift'], ['werift', 'node-datachannel']] as const) {
  test(`interop: a ${offering} offerer and a ${answering} answerer open a channel and exchange messages`, async (t) => {
    const stackOf = (name: string) => (name === 'werift' ? werift() : ndc())
    const pair = await openChannelPair(stackOf(offering), stackOf(answering), { retries: 2 })
    track(t, pair.offerer)
    track(t, pair.answerer)
    await exchange(t, pair.offererChannel, pair.answererChannel)
  })
}

// An answer that travels through a hub or an HTTP POST (signed, verified) reaches the offerer
// some tens of ms after the answerer started. libdatachannel once refused about 1 such open in
// 10 between genuine peers with ERR_WEBRTC_DTLS (the answerer's early ICE checks let the
// offerer connect and check the certificate before it had stored the answer; see
// withoutCandidates in src/webrtc/datachannel.ts). No retries: every open must succeed.
test('node-datachannel: 50 opens between genuine peers whose answer arrives 30 ms late all succeed, without retries', async (t) => {
  const failures: string[] = []
  for (let i = 0; i < 50; i++) {
    try {
      const pair = await openChannelPair(ndc(), ndc(), { sendAnswer: async (sdp) => { await new Promise((resolve) => setTimeout(resolve, 30)); return sdp } })
      pair.close()
    } catch (error) {
      failures.push(`open ${i}: ${error instanceof ZtError ? error.code : String(error)}`)
    }
  }
  t.deepEqual(failures, [])
})

test('node-datachannel: the answerer applies the offer without the offerer\'s candidates (it answers checks, never starts them), the rest of the offer unchanged', async (t) => {
  const offerer = track(t, await ndc().offer())
  const offer = await offerer.localDescription()
  t.regex(offer, /\r\na=candidate:/)
  const applied = withoutCandidates(offer)
  t.notRegex(applied, /a=(candidate|end-of-candidates)/)
  t.is(fingerprintLine(applied), fingerprintLine(offer))
  t.deepEqual(applied.split('\r\n'), offer.split('\r\n').filter((line) => !/^a=(candidate:|end-of-candidates)/.test(line)))
})

// The fingerprint tests, for each shipped stack (node-datachannel), in both roles. In each, the
// victim's channel never opens, no application data reaches it (everything that opens sends),
// and its session ends with ERR_WEBRTC_DTLS.
const shipped: [string, () => WebRtcStack][] = [['node-datachannel', ndc]]
for (const [name, make] of shipped) {
  test(`${name}: a tampered fingerprint in the offer ends the connection in the DTLS handshake, before any application data`, async (t) => {
    const offerer = track(t, await make().offer())
    const victim = track(t, await make().answer(tamperFingerprint(await offerer.localDescription())))
    const atOfferer = watch(offerer, 'offerer')
    const atVictim = watch(victim, 'victim')
    await settledAnswer(offerer, await victim.localDescription())
    await refusedInDtls(t, victim, offerer, atVictim, atOfferer)
  })

  test(`${name}: a tampered fingerprint in the answer ends the connection in the DTLS handshake, before any application data`, async (t) => {
    const victim = track(t, await make().offer())
    const answerer = track(t, await make().answer(await victim.localDescription()))
    const atVictim = watch(victim, 'victim')
    const atAnswerer = watch(answerer, 'answerer')
    await settledAnswer(victim, tamperFingerprint(await answerer.localDescription()))
    await refusedInDtls(t, victim, answerer, atVictim, atAnswerer)
  })

  test(`${name}: a relay that forwards the genuine offer but terminates DTLS with its own certificate never gets a channel (attacker as offerer)`, async (t) => {
    const genuine = track(t, await make().offer())
    const attacker = track(t, await make().offer())
    const forged = splice(await genuine.localDescription(), await attacker.localDescription())
    const victim = track(t, await make().answer(forged))
    const atVictim = watch(victim, 'victim')
    const atAttacker = watch(attacker, 'attacker')
    // The attacker takes the victim's genuine answer on its own connection: ICE reaches it.
    await settledAnswer(attacker, await victim.localDescription())
    await refusedInDtls(t, victim, attacker, atVictim, atAttacker)
  })

  test(`${name}: a relay that forwards the genuine answer but terminates DTLS with its own certificate never gets a channel (attacker as answerer)`, async (t) => {
    const victim = track(t, await make().offer())
    const offer = await victim.localDescription()
    const genuine = track(t, await make().answer(offer))
    const attacker = track(t, await make().answer(offer))
    const forged = splice(await genuine.localDescription(), await attacker.localDescription())
    const atVictim = watch(victim, 'victim')
    const atAttacker = watch(attacker, 'attacker')
    await settledAnswer(victim, forged)
    await refusedInDtls(t, victim, attacker, atVictim, atAttacker)
  })
}

test('node-datachannel: a process with open sessions ends on its own once closeAllSessions() has run, and sessions made afterwards still work', async (t) => {
  const { spawn } = await import('node:child_process')
  const script = `
    import { closeAllSessions, createStack, openChannelPair } from './src/index.ts'
    const stack = createStack()
    await openChannelPair(stack, stack, { retries: 2 })
    await closeAllSessions()
    const again = await openChannelPair(stack, stack, { retries: 2 })
    again.offererChannel.send('still works')
    await closeAllSessions()
    console.log('done')
  `
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearTimeout(timer)
  t.is(code, 0, 'the process ended by itself, not by the kill')
  t.is(out.trim(), 'done')
})

// The strongest relay: it presents the genuine party's certificate itself (a DTLS 1.2
// certificate travels in clear, so anyone on the path has it) but not its private key, so its
// SDP carries the genuine fingerprint and the certificate matches it. Only the handshake
// signatures (ServerKeyExchange, CertificateVerify) can tell, and libdatachannel checks them.

/** A werift peer connection that presents `certPem` with a key of its own (not the certificate's). */
async function certificateThief(certPem: string) {
  const werift = ((await import('werift')) as { default?: typeof import('werift') }).default ?? (await import('werift'))
  const sha256Ecdsa = { signature: werift.SignatureAlgorithm.ecdsa_3, hash: werift.HashAlgorithm.sha256_4 }
  const own = await werift.CipherContext.createSelfSignedCertificateWithKey(sha256Ecdsa, werift.NamedCurveAlgorithm.secp256r1_23)
  const pc = new werift.RTCPeerConnection({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceUseIpv6: false,
    dtls: { keys: { certPem, keyPem: own.keyPem, signatureHash: own.signatureHash } },
  } as ConstructorParameters<typeof werift.RTCPeerConnection>[0])
  const seen = { opened: false, received: [] as (string | Buffer)[] }
  const adopt = (dc: import('werift').RTCDataChannel) => {
    dc.onMessage.subscribe((m) => seen.received.push(m))
    dc.stateChanged.subscribe((state) => {
      if (state !== 'open') return
      seen.opened = true
      dc.send('application data from the thief')
    })
  }
  pc.onDataChannel.subscribe(adopt)
  const gathered = async () => {
    if (pc.iceGatheringState !== 'complete') await new Promise<void>((resolve) => pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve()))
    return pc.localDescription!.sdp
  }
  return { pc, seen, adopt, gathered }
}

/** A certificate (and its fingerprint line) of a genuine party; the thief has the certificate only. */
async function genuineCertificate() {
  const werift = ((await import('werift')) as { default?: typeof import('werift') }).default ?? (await import('werift'))
  return werift.CipherContext.createSelfSignedCertificateWithKey({ signature: werift.SignatureAlgorithm.ecdsa_3, hash: werift.HashAlgorithm.sha256_4 }, werift.NamedCurveAlgorithm.secp256r1_23)
}

for (const [name, make] of shipped) {
  test(`${name}: a peer presenting the genuine certificate without its key, as DTLS client (attacker as answerer), never gets a channel`, async (t) => {
    const thief = await certificateThief((await genuineCertificate()).certPem)
    t.teardown(() => void thief.pc.close())
    const victim = track(t, await make().offer())
    const atVictim = watch(victim, 'victim')
    await thief.pc.setRemoteDescription({ type: 'offer', sdp: await victim.localDescription() })
    await thief.pc.setLocalDescription(await thief.pc.createAnswer())
    const answer = await thief.gathered()
    t.regex(answer, /a=setup:active/, 'the thief is the DTLS client: it must sign a CertificateVerify')
    await settledAnswer(victim, answer)
    await refusedInDtls(t, victim, undefined, atVictim, thief.seen)
  })

  test(`${name}: a peer presenting the genuine certificate without its key, as DTLS server (attacker as offerer), never gets a channel`, async (t) => {
    const thief = await certificateThief((await genuineCertificate()).certPem)
    t.teardown(() => void thief.pc.close())
    thief.adopt(thief.pc.createDataChannel('ztmesh'))
    await thief.pc.setLocalDescription(await thief.pc.createOffer())
    const victim = track(t, await make().answer(await thief.gathered()))
    const atVictim = watch(victim, 'victim')
    const answer = await victim.localDescription()
    t.regex(answer, /a=setup:active/, 'the victim is the DTLS client: the thief must sign the ServerKeyExchange')
    await thief.pc.setRemoteDescription({ type: 'answer', sdp: answer })
    await refusedInDtls(t, victim, undefined, atVictim, thief.seen)
  })
}

test('why werift is not shipped: a werift victim opens a channel to a peer that presents the genuine certificate without its key', async (t) => {
  // werift 0.24.4 compares the certificate with the fingerprint only after its handshake, and
  // verifies neither the ServerKeyExchange nor the CertificateVerify signature. If this test
  // fails, a werift release has fixed that: look again at shipping it.
  const thief = await certificateThief((await genuineCertificate()).certPem)
  t.teardown(() => void thief.pc.close())
  const victim = track(t, await werift().offer())
  const atVictim = watch(victim, 'victim')
  await thief.pc.setRemoteDescription({ type: 'offer', sdp: await victim.localDescription() })
  await thief.pc.setLocalDescription(await thief.pc.createAnswer())
  await settledAnswer(victim, await thief.gathered())
  await victim.channel
  await settle()
  t.true(atVictim.opened, 'werift accepted the stolen certificate')
  t.true(thief.seen.received.length > 0, 'and its application data reached the thief')
})

test('node-datachannel: a message above the receiver\'s limit is never delivered (refused by the sender\'s stack, or the receiving session closes: fail closed)', async (t) => {
  const small = createStack('node-datachannel', { maxMessageSize: 1024 })
  const large = createWeriftStackForTestingOnly({ maxMessageSize: 65_536 })
  const pair = await openChannelPair(large, small, { retries: 2 })
  track(t, pair.offerer)
  track(t, pair.answerer)
  const received: (Buffer | string)[] = []
  pair.answererChannel.on('message', (data) => received.push(data))
  const closed = new Promise<void>((resolve) => pair.answererChannel.on('close', resolve))
  try {
    pair.offererChannel.send(new Uint8Array(4096).fill(7))
  } catch {}
  pair.offererChannel.send('small')
  // Either the sender's stack refuses the large message, or the receiver closes on it.
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('open'), 3_000))])
  t.log(`outcome: ${String(outcome)}, received ${received.length}`)
  t.true(received.every((data) => (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength) <= 1024), 'nothing above the limit was delivered')
  if (outcome === 'open') t.deepEqual(received, ['small'])
  else t.pass('the receiving session closed')
})

test('node-datachannel: 300 randomly damaged offers and answers each end in a session or a typed error, never a crash or a hang', async (t) => {
  const stack = ndc()
  const offerer = track(t, await stack.offer())
  const offer = await offerer.localDescription()
  const answer = await track(t, await stack.answer(offer)).localDescription()
  // A fixed seed, so that a failure can be replayed.
  let seed = 0x5eed
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const damage = (sdp: string): string => {
    const at = random(sdp.length)
    switch (random(5)) {
      case 0: return sdp.slice(0, at)
      case 1: return sdp.slice(0, at) + String.fromCharCode(32 + random(95)) + sdp.slice(at + 1)
      case 2: return sdp.slice(0, at) + sdp.slice(at + 1 + random(40))
      case 3: return sdp.slice(0, at) + '\r\na=candidate:1 1 UDP 1 999.1.1.1 99999 typ host\r\n' + sdp.slice(at)
      default: return sdp.replace(/\r\n/g, random(2) === 0 ? '\n' : '\r')
    }
  }
  const outcomes = new Map<string, number>()
  for (let i = 0; i < 300; i++) {
    const asOffer = i % 2 === 0
    let outcome: string
    try {
      if (asOffer) {
        const session = await stack.answer(damage(offer), { timeoutMs: 5_000 })
        session.close()
      } else {
        const session = track(t, await stack.offer({ timeoutMs: 5_000 }))
        await session.localDescription()
        await session.acceptAnswer(damage(answer)).finally(() => session.close())
      }
      outcome = 'accepted'
    } catch (error) {
      outcome = error instanceof ZtError ? error.code : `untyped: ${String(error)}`
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
  }
  t.log(Object.fromEntries(outcomes))
  for (const outcome of outcomes.keys()) t.true(outcome === 'accepted' || outcome.startsWith('ERR_WEBRTC_'), outcome)
})
