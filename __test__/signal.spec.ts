// Signed signaling: offers, answers and ICE candidates signed and verified by the core, and the
// SignalingGuard on top (core checks, then the policy decision point, every refusal audited).
// Every attacker case that can be staged from JavaScript, each refused with its code and audited.
import test from 'ava'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { AUDIT_MIGRATION, AuditLog } from '../src/audit/index.js'
import { createPolicyDecisionPoint } from '../src/policy/index.js'
import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, Signer, TrustStore } from '../src/primitives/pki/index.js'
import { sdpFingerprint, SIGNAL_LIMITS, signAnswer, signCandidate, signedObjectLabels, signObject, signOffer, SignalVerifier } from '../src/protocol/index.js'
import { createSignalingGuard, refusalStatus, SignalingGuard, type SignalingGuardInit } from '../src/signaling/index.js'
import { openDatabase } from '../src/storage/index.js'
import { ZtError } from '../src/errors.js'

const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89'
const FP2 = '00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF'
const sdp = (fingerprint = `a=fingerprint:sha-256 ${FP}\r\n`) =>
  'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n' +
  `c=IN IP4 127.0.0.1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n${fingerprint}a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n`

function hierarchy(organisation = 'Acme', nowMs?: number) {
  const root = CertificateAuthority.createRoot({ commonName: 'Root', organisation, nowMs })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Site', organisation, nowMs })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const trust = TrustStore.fromPem(root.certificatePem)
  const device = (deviceId: string, tenant = 'hotel-1', roles: string[] = [], extra: { validitySeconds?: number; nowMs?: number } = {}) => {
    const privateKey = generateP256Key()
    const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant, roles, ...extra })
    return { deviceId, signer: Signer.fromPkcs8(privateKey), cert, certificateChainPem: cert.pem + site.certificatePem }
  }
  const revoking = (...certs: Array<{ serial: string; spkiSha256: string }>) => {
    const revocations = new RevocationSet()
    const now = Date.now()
    const record = siteCa.signRevocationRecord(1, now, certs.map((c) => ({ serial: c.serial, spkiSha256: c.spkiSha256, revokedAtMs: now, reason: 1 })))
    revocations.addRecord(record, site.certificatePem, trust)
    return revocations
  }
  return { root, site, siteCa, trust, trustPem: root.certificatePem, device, revoking }
}

type Hierarchy = ReturnType<typeof hierarchy>
type Device = ReturnType<Hierarchy['device']>

/** A guard for `me` over a real audit log in a fresh SQLite file. */
function guardOf(t: { teardown(f: () => void): void }, h: Hierarchy, me: Device, init: Partial<SignalingGuardInit> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-signal-'))
  const db = openDatabase(join(dir, 'audit.db'), { migrations: [AUDIT_MIGRATION] })
  const audit = new AuditLog(db)
  t.teardown(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const guard = createSignalingGuard({ identity: me, trustPem: h.trustPem, audit, ...init })
  return { guard, audit }
}

function offer(from: Device, to: string, extra: { tenant?: string; sdp?: string; from?: string } = {}) {
  return signOffer({ from: extra.from ?? from.deviceId, to, tenant: extra.tenant ?? 'hotel-1', sdp: extra.sdp ?? sdp(), epoch: 3 }, from)
}

/** Asserts that `call` is refused with `code` and that the refusal is the audit log's last row. */
function refused(t: import('ava').ExecutionContext, audit: AuditLog, call: () => unknown, code: string, action = 'signal.offer', what = code): void {
  const before = audit.recent(1)[0]?.seq ?? 0
  t.throws(call, { instanceOf: ZtError, code }, what)
  const [row] = audit.recent(1)
  t.true((row?.seq ?? 0) > before, `${what}: audited`)
  t.like(row, { action, outcome: 'deny', reason: code }, what)
}

// ---- Hand-made bodies and objects: what another encoder (an attacker) could send -------------

function field8(text: string): Buffer {
  const bytes = Buffer.from(text)
  return Buffer.concat([Buffer.from([bytes.length]), bytes])
}

function offerBody(b: { from: string; to: string; tenant: string; sdp: string; ts?: number }): Buffer {
  const sdpBytes = Buffer.from(b.sdp)
  const head = Buffer.alloc(2)
  head.writeUInt16BE(sdpBytes.length)
  const ts = Buffer.alloc(8)
  ts.writeBigUInt64BE(BigInt(b.ts ?? Date.now()))
  const nonce = Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256)))
  return Buffer.concat([Buffer.from([1]), field8(b.from), field8(b.to), field8(b.tenant), head, sdpBytes, ts, nonce, Buffer.alloc(8)])
}

/** The certificates (DER) of a PEM chain. */
function ders(pem: string): Buffer[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))
}

/** A signed object's parts, as the wire format lays them out. */
function parts(object: Buffer): { label: Buffer; chain: Buffer[]; body: Buffer; signature: Buffer } {
  let at = 1
  const labelLength = object[at++]!
  const label = object.subarray(at, (at += labelLength))
  const count = object[at++]!
  const chain: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const length = object.readUInt16BE(at)
    at += 2
    chain.push(object.subarray(at, (at += length)))
  }
  const bodyLength = object.readUInt32BE(at)
  at += 4
  const body = object.subarray(at, (at += bodyLength))
  const signature = object.subarray(at + 1, at + 1 + object[at]!)
  return { label, chain, body, signature }
}

function assemble(p: { label: Buffer; chain: Buffer[]; body: Buffer; signature: Buffer }): Buffer {
  const out: Buffer[] = [Buffer.from([1, p.label.length]), p.label, Buffer.from([p.chain.length])]
  for (const cert of p.chain) {
    const length = Buffer.alloc(2)
    length.writeUInt16BE(cert.length)
    out.push(length, cert)
  }
  const bodyLength = Buffer.alloc(4)
  bodyLength.writeUInt32BE(p.body.length)
  out.push(bodyLength, p.body, Buffer.from([p.signature.length]), p.signature)
  return Buffer.concat(out)
}

// ---- The contract ----------------------------------------------------------------------------------

test('an offer, its answer and a candidate round-trip between two guards, and nothing is refused', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const bob = h.device('kiosk-2')
  const atAlice = guardOf(t, h, alice)
  const atBob = guardOf(t, h, bob)
  t.deepEqual(atBob.guard.me, { deviceId: 'kiosk-2', tenant: 'hotel-1' })

  const o = offer(alice, 'kiosk-2')
  const { peer, offer: body, digest } = atBob.guard.verifyOffer(o)
  t.like(peer, { deviceId: 'tablet-1', tenant: 'hotel-1', serial: alice.cert.serial })
  t.like(body, { from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp(), epoch: 3 })
  t.regex(body.nonce, /^[0-9a-f]{32}$/)
  t.true(Math.abs(body.ts - Date.now()) < 60_000)
  t.regex(digest, /^[0-9a-f]{64}$/)
  t.is(sdpFingerprint(body.sdp), FP.replace(/:/g, '').toLowerCase())

  const a = signAnswer({ from: 'kiosk-2', to: 'tablet-1', tenant: 'hotel-1', sdp: sdp(`a=fingerprint:sha-256 ${FP2}\r\n`), epoch: 3, offerDigest: digest }, bob)
  const answered = atAlice.guard.verifyAnswer(a, digest, { expectedFrom: 'kiosk-2' })
  t.like(answered.peer, { deviceId: 'kiosk-2' })
  t.like(answered.answer, { from: 'kiosk-2', to: 'tablet-1', offerDigest: digest })
  t.is(sdpFingerprint(answered.answer.sdp), FP2.replace(/:/g, '').toLowerCase())

  const c = signCandidate({ from: 'kiosk-2', to: 'tablet-1', tenant: 'hotel-1', offerDigest: digest, mid: '0', candidate: 'candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host' }, bob)
  t.like(atAlice.guard.verifyCandidate(c, digest, { expectedFrom: 'kiosk-2' }).candidate, { mid: '0', offerDigest: digest })

  for (const { audit } of [atAlice, atBob]) t.deepEqual(audit.recent(100).filter((row) => row.outcome === 'deny'), [])
  t.deepEqual(signedObjectLabels().filter((label) => ['offer', 'answer', 'candidate'].includes(label)), ['offer', 'answer', 'candidate'])
  // The allowed decisions of the default same-tenant policy are audited by the decision point.
  t.like(atBob.audit.recent(1)[0], { actor: 'tablet-1', action: 'signal.offer', outcome: 'allow' })
})

test('forged offers are refused: a key that is not the certificate’s, another CA, a sender that is not the signer', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const mallory = h.device('tablet-6')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  // Mallory signs a body saying tablet-1, then swaps in tablet-1's certificate.
  const signed = parts(offer(mallory, 'kiosk-2', { from: 'tablet-1' }))
  const forged = assemble({ ...signed, chain: ders(alice.certificateChainPem) })
  refused(t, audit, () => guard.verifyOffer(forged), 'ERR_SIGNATURE', 'signal.offer', 'key not the certificate’s')
  t.like(audit.recent(1)[0], { actor: 'unknown', detail: { signer: null } }, 'no one is named on a signature that did not verify')
  // With her own certificate, the body names another sender than its signer.
  refused(t, audit, () => guard.verifyOffer(offer(mallory, 'kiosk-2', { from: 'tablet-1' })), 'ERR_SIGNAL_SENDER', 'signal.offer', 'CN ≠ from')
  // Another CA issued a certificate for the same name.
  const stranger = hierarchy('Evil').device('tablet-1')
  refused(t, audit, () => guard.verifyOffer(offer(stranger, 'kiosk-2')), 'ERR_CHAIN', 'signal.offer', 'another CA')
  // A signed object for another purpose.
  refused(t, audit, () => guard.verifyOffer(signObject('test', offerBody({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() }), alice)), 'ERR_WIRE_LABEL')
})

test('tampered offers are refused: a byte of the SDP, a byte of the fingerprint line', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  const o = offer(alice, 'kiosk-2')
  for (const needle of ['ice-pwd:0', `sha-256 ${FP.slice(0, 5)}`]) {
    const tampered = Buffer.from(o)
    tampered[o.indexOf(needle) + needle.length - 1]! ^= 0x01
    refused(t, audit, () => guard.verifyOffer(tampered), 'ERR_SIGNATURE', 'signal.offer', needle)
  }
  // The genuine offer was not used up by the tampered copies.
  t.notThrows(() => guard.verifyOffer(o))
})

test('a replayed offer is refused, and an offer is accepted once only whoever delivers it', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  const o = offer(alice, 'kiosk-2')
  guard.verifyOffer(o)
  refused(t, audit, () => guard.verifyOffer(o), 'ERR_REPLAY')
  t.like(audit.recent(1)[0], { actor: 'tablet-1', detail: { signer: 'tablet-1', serial: alice.cert.serial } }, 'a refusal after the signature names the signer')
  refused(t, audit, () => guard.verifyOffer(o, { linkPeer: guard.verifyOffer(offer(alice, 'kiosk-2')).peer }), 'ERR_REPLAY', 'signal.offer', 'over a link')
  t.is(guard.nonces, 2)
})

test('time is enforced: an expired certificate, a stale offer, an offer from the future', (t) => {
  const day = 86_400_000
  const h = hierarchy('Acme', Date.now() - 5 * day)
  const alice = h.device('tablet-1')
  const bob = h.device('kiosk-2')
  const old = h.device('tablet-3', 'hotel-1', [], { nowMs: Date.now() - 3 * day, validitySeconds: 86_400 })
  const now = guardOf(t, h, bob)
  refused(t, now.audit, () => now.guard.verifyOffer(offer(old, 'kiosk-2')), 'ERR_CERT_EXPIRED', 'signal.offer', 'expired certificate')
  const later = guardOf(t, h, bob, { now: () => Date.now() + 61_000 })
  refused(t, later.audit, () => later.guard.verifyOffer(offer(alice, 'kiosk-2')), 'ERR_SIGNAL_STALE', 'signal.offer', 'stale')
  const earlier = guardOf(t, h, bob, { now: () => Date.now() - 10_000 })
  refused(t, earlier.audit, () => earlier.guard.verifyOffer(offer(alice, 'kiosk-2')), 'ERR_SIGNAL_FUTURE', 'signal.offer', 'future')
  const window = guardOf(t, h, bob, { windowMs: 200_000, now: () => Date.now() + 100_000 })
  t.notThrows(() => window.guard.verifyOffer(offer(alice, 'kiosk-2')), 'a wider window takes it')
})

test('cross-tenant offers, offers to another device, and offers over another device’s link are refused', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const carol = h.device('tablet-9', 'hotel-2')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  refused(t, audit, () => guard.verifyOffer(offer(carol, 'kiosk-2', { tenant: 'hotel-2' })), 'ERR_TENANT_MISMATCH', 'signal.offer', 'signer of another tenant')
  refused(t, audit, () => guard.verifyOffer(offer(alice, 'kiosk-2', { tenant: 'hotel-2' })), 'ERR_TENANT_MISMATCH', 'signal.offer', 'body of another tenant')
  refused(t, audit, () => guard.verifyOffer(offer(alice, 'kiosk-3')), 'ERR_SIGNAL_RECIPIENT', 'signal.offer', 'to ≠ me')
  const link = { deviceId: 'tablet-6', tenant: 'hotel-1', roles: [], serial: '01', spkiSha256: '00'.repeat(32), issuerKeyId: '00'.repeat(32), notAfterMs: 0 }
  refused(t, audit, () => guard.verifyOffer(offer(alice, 'kiosk-2'), { linkPeer: link }), 'ERR_SIGNAL_LINK', 'signal.offer', 'link peer ≠ signer')
  t.like(audit.recent(1)[0], { actor: 'tablet-6' }, 'the refusal names the link peer')
  t.notThrows(() => guard.verifyOffer(offer(alice, 'kiosk-2'), { linkPeer: { ...link, deviceId: 'tablet-1' } }))
})

test('the policy decides after the core: a role required, and shift hours', (t) => {
  const h = hierarchy()
  const staff = h.device('tablet-1', 'hotel-1', ['staff'])
  const guest = h.device('tablet-5', 'hotel-1', ['guest'])
  const bob = h.device('kiosk-2')
  const policy = {
    version: 1,
    tenant: 'hotel-1',
    timeZone: 'Europe/Paris',
    rules: [{ id: 'staff-signal', effect: 'allow', actions: ['signal.*'], roles: ['staff'], hours: [{ from: '07:00', to: '20:00' }] }],
  }
  let clock = Date.UTC(2026, 11, 7, 9, 30) // 10:30 in Paris
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-signal-'))
  const db = openDatabase(join(dir, 'audit.db'), { migrations: [AUDIT_MIGRATION] })
  t.teardown(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const audit = new AuditLog(db)
  const access = createPolicyDecisionPoint({ policy, audit, now: () => clock })
  const guard = new SignalingGuard({ identity: bob, trustPem: h.trustPem, audit, access })
  t.notThrows(() => guard.verifyOffer(offer(staff, 'kiosk-2')))
  refused(t, audit, () => guard.verifyOffer(offer(guest, 'kiosk-2')), 'ERR_POLICY_DENIED', 'signal.offer', 'wrong role')
  t.like(audit.recent(1)[0], { actor: 'tablet-5', detail: { policy: 'no-rule', serial: guest.cert.serial } })
  clock = Date.UTC(2026, 11, 7, 21, 0) // 22:00 in Paris
  refused(t, audit, () => guard.verifyOffer(offer(staff, 'kiosk-2')), 'ERR_POLICY_DENIED', 'signal.offer', 'out of hours')
})

test('revoked signers are refused, from the start and after setRevocations', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const bob = h.device('kiosk-2')
  const revoked = guardOf(t, h, bob, { revocations: h.revoking(alice.cert) })
  refused(t, revoked.audit, () => revoked.guard.verifyOffer(offer(alice, 'kiosk-2')), 'ERR_CERT_REVOKED', 'signal.offer', 'revoked from the start')
  const { guard, audit } = guardOf(t, h, bob)
  t.notThrows(() => guard.verifyOffer(offer(alice, 'kiosk-2')), 'verified (and its verdict cached)')
  guard.setRevocations(h.revoking(alice.cert))
  refused(t, audit, () => guard.verifyOffer(offer(alice, 'kiosk-2')), 'ERR_CERT_REVOKED', 'signal.offer', 'revoked after setRevocations')
})

test('answers are refused for another offer, from another device than the one offered to, and when replayed', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const bob = h.device('kiosk-2')
  const carol = h.device('kiosk-3')
  const atAlice = guardOf(t, h, alice)
  const atBob = guardOf(t, h, bob)
  const { digest } = atBob.guard.verifyOffer(offer(alice, 'kiosk-2'))
  const other = atBob.guard.verifyOffer(offer(alice, 'kiosk-2')).digest
  const answer = (by: Device, offerDigest: string) =>
    signAnswer({ from: by.deviceId, to: 'tablet-1', tenant: 'hotel-1', sdp: sdp(), epoch: 1, offerDigest }, by)
  const { audit, guard } = atAlice
  refused(t, audit, () => guard.verifyAnswer(answer(bob, other), digest, { expectedFrom: 'kiosk-2' }), 'ERR_SIGNAL_MISMATCH', 'signal.answer', 'another offer')
  refused(t, audit, () => guard.verifyAnswer(answer(carol, digest), digest, { expectedFrom: 'kiosk-2' }), 'ERR_SIGNAL_MISMATCH', 'signal.answer', 'another device')
  const good = answer(bob, digest)
  t.notThrows(() => guard.verifyAnswer(good, digest, { expectedFrom: 'kiosk-2' }))
  refused(t, audit, () => guard.verifyAnswer(good, digest, { expectedFrom: 'kiosk-2' }), 'ERR_REPLAY', 'signal.answer', 'answer replayed')
  refused(t, audit, () => guard.verifyAnswer(offer(bob, 'tablet-1'), digest), 'ERR_WIRE_LABEL', 'signal.answer', 'an offer is not an answer')
  t.throws(() => guard.verifyAnswer(good, 'not hex'), { code: 'ERR_INVALID_ARG' })
})

test('an SDP without a fingerprint, with two, or of another hash is refused when signing and when verifying', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  const bad = {
    none: sdp(''),
    two: sdp(`a=fingerprint:sha-256 ${FP}\r\na=fingerprint:sha-256 ${FP2}\r\n`),
    sha1: sdp(`a=fingerprint:sha-1 ${FP.slice(0, 59)}\r\n`),
    media: `${sdp()}m=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256 ${FP2}\r\n`,
  }
  for (const [name, text] of Object.entries(bad)) {
    t.throws(() => sdpFingerprint(text), { code: 'ERR_SIGNAL_SDP' }, name)
    t.throws(() => offer(alice, 'kiosk-2', { sdp: text }), { code: 'ERR_SIGNAL_SDP' }, name)
    // Signed by some other encoder: the receiver applies the rule itself.
    const object = signObject('offer', offerBody({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: text }), alice)
    refused(t, audit, () => guard.verifyOffer(object), 'ERR_SIGNAL_SDP', 'signal.offer', name)
  }
  t.notThrows(() => guard.verifyOffer(signObject('offer', offerBody({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() }), alice)), 'the hand-made body is right')
})

test('malformed objects and bodies are refused with typed codes: truncated, trailing bytes, oversized, garbage', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'))
  const o = offer(alice, 'kiosk-2')
  for (const len of [0, 1, 7, 100, o.length - 1]) refused(t, audit, () => guard.verifyOffer(o.subarray(0, len)), 'ERR_WIRE_MALFORMED', 'signal.offer', `object cut at ${len}`)
  refused(t, audit, () => guard.verifyOffer(Buffer.concat([o, Buffer.from([0])])), 'ERR_WIRE_MALFORMED', 'signal.offer', 'object with a trailing byte')
  const body = offerBody({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() })
  const bodies = {
    truncated: body.subarray(0, body.length - 1),
    trailing: Buffer.concat([body, Buffer.from([0])]),
    oversized: offerBody({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() + 'a=x:'.padEnd(17 * 1024, 'x') + '\r\n' }),
    'bad id': offerBody({ from: 'tablet/1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() }),
    empty: Buffer.alloc(0),
  }
  for (const [name, b] of Object.entries(bodies)) refused(t, audit, () => guard.verifyOffer(signObject('offer', b, alice)), 'ERR_SIGNAL_MALFORMED', 'signal.offer', name)
  t.throws(() => signOffer({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp() + 'x'.repeat(17 * 1024), epoch: 0 }, alice), { code: 'ERR_MESSAGE_SIZE' })
  t.throws(() => signOffer({ from: 'tablet/1', to: 'kiosk-2', tenant: 'hotel-1', sdp: sdp(), epoch: 0 }, alice), { code: 'ERR_IDENTITY' })
  refused(t, audit, () => guard.verifyOffer(Buffer.concat([o, Buffer.alloc(SIGNAL_LIMITS.maxObjectLen)])), 'ERR_MESSAGE_SIZE', 'signal.offer', 'longer than any offer')
  t.true(SIGNAL_LIMITS.maxObjectLen > 16 * 1024 && SIGNAL_LIMITS.maxObjectLen < 64 * 1024)
  t.is(SIGNAL_LIMITS.maxSdpLen, 16 * 1024)
  refused(t, audit, () => guard.verifyOffer('not bytes' as never), 'ERR_INVALID_ARG', 'signal.offer', 'not bytes')
  t.is(guard.nonces, 0, 'no refused message took a nonce')
})

test('a full replay window refuses new offers (fail closed) and never forgets a live nonce', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const { guard, audit } = guardOf(t, h, h.device('kiosk-2'), { maxNonces: 2 })
  const first = offer(alice, 'kiosk-2')
  guard.verifyOffer(first)
  guard.verifyOffer(offer(alice, 'kiosk-2'))
  refused(t, audit, () => guard.verifyOffer(offer(alice, 'kiosk-2')), 'ERR_REPLAY_FULL')
  refused(t, audit, () => guard.verifyOffer(first), 'ERR_REPLAY', 'signal.offer', 'the first is still remembered')
  t.is(guard.nonces, 2)
})

test('the core verifier stands alone: the same checks without policy or audit', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const verifier = new SignalVerifier({ trust: h.trust, deviceId: 'kiosk-2', tenant: 'hotel-1' })
  const o = offer(alice, 'kiosk-2')
  t.is(verifier.verifyOffer(o).peer.deviceId, 'tablet-1')
  t.throws(() => verifier.verifyOffer(o), { code: 'ERR_REPLAY' })
  const replay = verifier.checkOffer(o)
  t.like(replay, { ok: false, error: { code: 'ERR_REPLAY' }, signer: { deviceId: 'tablet-1' } })
  t.like(verifier.checkOffer(o.subarray(1)), { ok: false, error: { code: 'ERR_WIRE_VERSION' } })
  t.is((verifier.checkOffer(o.subarray(0, 9)) as { signer?: unknown }).signer, undefined)
  t.throws(() => new SignalVerifier({ trust: h.trust, deviceId: 'a/b', tenant: 'hotel-1' }), { code: 'ERR_IDENTITY' })
  t.throws(() => new SignalVerifier({ trust: h.trust, deviceId: 'a', tenant: 'hotel-1', maxNonces: 0 }), { code: 'ERR_MESSAGE_SIZE' })
})

test('ICE candidates are refused for another offer, from another device, when replayed, and when malformed', (t) => {
  const h = hierarchy()
  const alice = h.device('tablet-1')
  const bob = h.device('kiosk-2')
  const carol = h.device('kiosk-3')
  const { guard, audit } = guardOf(t, h, alice)
  const digest = 'ab'.repeat(32)
  const candidate = (by: Device, offerDigest = digest, line = 'candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host') =>
    signCandidate({ from: by.deviceId, to: 'tablet-1', tenant: 'hotel-1', offerDigest, mid: '0', candidate: line }, by)
  refused(t, audit, () => guard.verifyCandidate(candidate(bob, 'cd'.repeat(32)), digest), 'ERR_SIGNAL_MISMATCH', 'signal.candidate', 'another offer')
  refused(t, audit, () => guard.verifyCandidate(candidate(carol), digest, { expectedFrom: 'kiosk-2' }), 'ERR_SIGNAL_MISMATCH', 'signal.candidate', 'another device')
  const good = candidate(bob)
  t.like(guard.verifyCandidate(good, digest, { expectedFrom: 'kiosk-2' }).peer, { deviceId: 'kiosk-2' })
  refused(t, audit, () => guard.verifyCandidate(good, digest), 'ERR_REPLAY', 'signal.candidate', 'candidate replayed')
  refused(t, audit, () => guard.verifyCandidate(offer(bob, 'tablet-1'), digest), 'ERR_WIRE_LABEL', 'signal.candidate', 'an offer is not a candidate')
  t.notThrows(() => guard.verifyCandidate(candidate(bob, digest, ''), digest), 'an empty line ends the candidates')
  t.throws(() => candidate(bob, digest, 'a\r\nb'), { code: 'ERR_MESSAGE_SIZE' })
  t.throws(() => candidate(bob, digest, 'c'.repeat(1025)), { code: 'ERR_MESSAGE_SIZE' })
  t.throws(() => signCandidate({ from: 'kiosk-2', to: 'tablet-1', tenant: 'hotel-1', offerDigest: digest, mid: 'a b', candidate: '' }, bob), { code: 'ERR_MESSAGE_SIZE' })
})

test('a signaling endpoint answers 401 for what does not authenticate, 403 for what policy refuses, 400 for garbage', (t) => {
  for (const code of ['ERR_SIGNATURE', 'ERR_CHAIN', 'ERR_CERT_REVOKED', 'ERR_CERT_EXPIRED', 'ERR_REPLAY', 'ERR_SIGNAL_STALE', 'ERR_SIGNAL_SENDER', 'ERR_SIGNAL_LINK', 'ERR_WIRE_LABEL', 'toString']) t.is(refusalStatus(code), 401, code)
  for (const code of ['ERR_POLICY_DENIED', 'ERR_TENANT_MISMATCH', 'ERR_SIGNAL_RECIPIENT']) t.is(refusalStatus(code), 403, code)
  for (const code of ['ERR_WIRE_MALFORMED', 'ERR_SIGNAL_MALFORMED', 'ERR_SIGNAL_SDP']) t.is(refusalStatus(code), 400, code)
  t.is(refusalStatus('ERR_REPLAY_FULL'), 503)
})
