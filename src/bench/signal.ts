/**
 * Signaling benchmark: `offer-verify`, a receiver checking one signed WebRTC offer with all of
 * seed 000's checks, the policy and the replay window (`SignalingGuard.verifyOffer`), against
 * node:crypto doing the same checks by hand on an offer of the same content: the sender's chain
 * parsed and verified to the root with `X509Certificate`, validity dates, CN and OU, a serial and
 * key `Set` for revocation, `crypto.verify` of the signature, the body's from/tenant/to/time, its
 * one fingerprint line, the tenant rule, and a nonce `Map`.
 *
 * Both sides decide every message from its bytes. The core keeps the verdict on a chain it has
 * already verified under the same trust and revocations (as its TLS contexts do, dropped on every
 * revocation change); the hand-written side verifies the chain every time, as Node code does.
 * Both sides skip the audit write (a no-op sink), which costs the same whoever decides.
 */

import { createHash, verify, X509Certificate } from 'node:crypto'

import type { Operation } from './harness.js'
import type { Case } from './index.js'
import { checkChainByHand } from './pki.js'
import { createPolicyDecisionPoint, sameTenantPolicy } from '../policy/index.js'
import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, Signer, TrustStore, type RevokedEntry } from '../primitives/pki/index.js'
import { signOffer } from '../protocol/signal.js'
import { SignalingGuard } from '../signaling/index.js'

/** Offers signed up front; each side starts a fresh replay window when it has used them all. */
const POOL = 1000

const SDP =
  'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\n' +
  'a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\na=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n' +
  'a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n'

/** The prefix the hand-written side signs under (its own format, not the core's). */
const HAND_LABEL = Buffer.from('hand-offer\0')

/** A site, the sender tablet-1 and the receiver kiosk-2, and 1,000 revoked serials and keys. */
function fixture() {
  const root = CertificateAuthority.createRoot({ commonName: 'Bench Root', organisation: 'Bench' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Bench Site', organisation: 'Bench' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const device = (deviceId: string) => {
    const key = generateP256Key()
    const cert = siteCa.issue(buildCsr(key, deviceId, 'hotel-1'), { deviceId, tenant: 'hotel-1', roles: ['staff'] })
    return { cert, signer: Signer.fromPkcs8(key), certificateChainPem: cert.pem + site.certificatePem }
  }
  const now = Date.now()
  const entries: RevokedEntry[] = Array.from({ length: 1000 }, (_, i) => ({
    serial: createHash('sha256').update(`serial ${i}`).digest('hex').slice(0, 32).replace(/^[89a-f]/, '1'),
    spkiSha256: createHash('sha256').update(`key ${i}`).digest('hex'),
    revokedAtMs: now,
    reason: 1,
  }))
  const trust = TrustStore.fromPem(root.certificatePem)
  const revocations = new RevocationSet()
  revocations.addRecord(siteCa.signRevocationRecord(1, now, entries), site.certificatePem, trust)
  return { root, site, tablet: device('tablet-1'), kiosk: device('kiosk-2'), revocations, entries }
}

export const SIGNAL_CASES: Case[] = [
  {
    op: 'offer-verify',
    baseline: 'node:crypto X509Certificate chain + crypto.verify + the same checks by hand',
    target: 3,
    setup: async () => {
      const f = fixture()
      const offers = Array.from({ length: POOL }, () => signOffer({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: SDP, epoch: 1 }, f.tablet))
      const audit = { append() {} }
      const access = createPolicyDecisionPoint({ policy: sameTenantPolicy('hotel-1'), audit })
      const newGuard = () => new SignalingGuard({ identity: f.kiosk, trustPem: f.root.certificatePem, revocations: f.revocations, access, audit })
      let guard = newGuard()
      let next = 0
      const ztmesh: Operation = () => {
        if (next === POOL) {
          guard = newGuard()
          next = 0
        }
        if (guard.verifyOffer(offers[next++]!).peer.deviceId !== 'tablet-1') throw new Error('bench: wrong signer')
        return 1
      }

      // The same offers in the hand-written side's own format: the chain in PEM, a JSON body, a DER signature over its label and body.
      const handOffers = Array.from({ length: POOL }, (_, i) => {
        const body = Buffer.from(JSON.stringify({ from: 'tablet-1', to: 'kiosk-2', tenant: 'hotel-1', sdp: SDP, ts: Date.now(), nonce: createHash('sha256').update(`nonce ${i}`).digest('hex').slice(0, 32), epoch: 1 }))
        return { chainPem: f.tablet.certificateChainPem, body, signature: f.tablet.signer.sign(Buffer.concat([HAND_LABEL, body])) }
      })
      const rootX509 = new X509Certificate(f.root.certificatePem)
      const revokedSerials = new Set(f.entries.map((e) => e.serial.toUpperCase()))
      const revokedKeys = new Set(f.entries.map((e) => e.spkiSha256))
      let nonces = new Map<string, number>()
      let handNext = 0
      const baseline: Operation = () => {
        if (handNext === POOL) {
          nonces = new Map()
          handNext = 0
        }
        const message = handOffers[handNext++]!
        const { leaf, subject } = checkChainByHand(message.chainPem, rootX509, revokedSerials, revokedKeys)
        if (subject.OU !== 'hotel-1' || !leaf.subjectAltName?.startsWith(`URI:ztmesh://hotel-1/${subject.CN},`)) throw new Error('bench: identity')
        if (!verify('sha256', Buffer.concat([HAND_LABEL, message.body]), leaf.publicKey, message.signature)) throw new Error('bench: signature')
        const body = JSON.parse(message.body.toString('utf8')) as { from: string; to: string; tenant: string; sdp: string; ts: number; nonce: string }
        if (body.from !== subject.CN || body.tenant !== subject.OU || body.to !== 'kiosk-2') throw new Error('bench: routing')
        const now = Date.now()
        if (body.ts < now - 60_000 || body.ts > now + 5_000) throw new Error('bench: time')
        if (body.sdp.match(/^a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\r?$/gim)?.length !== 1) throw new Error('bench: fingerprint')
        if (subject.OU !== 'hotel-1') throw new Error('bench: policy')
        if (nonces.has(body.nonce)) throw new Error('bench: replay')
        nonces.set(body.nonce, body.ts)
        return 1
      }
      return { ztmesh, baseline }
    },
  },
]
