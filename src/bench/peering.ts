/**
 * `datachannel-open`: the time from connect(peer) to an open, verified data channel, both peers in
 * this process on loopback, against the same stack (node-datachannel) opening the same channel
 * with no signing or verification. The ztmesh side does what the peer connector does on each
 * open: the offerer signs its offer (and names it by its digest), the answerer's guard verifies
 * it (six checks, policy, replay window, audit sink), the answerer signs its answer, and the
 * offerer's guard verifies it against the offer's digest and the device offered to. Target: a
 * ratio of at least 0.8, so that zero trust costs little next to ICE, DTLS and SCTP.
 */

import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, Signer, TrustStore, type DeviceCredential } from '../primitives/pki/index.js'
import { signAnswer, signOffer } from '../protocol/signal.js'
import { verifyObject } from '../protocol/signed.js'
import { SignalingGuard } from '../signaling/index.js'
import { createStack, openChannelPair, type PairInit, type WebRtcStack } from '../webrtc/index.js'
import type { Operation } from './harness.js'
import type { Case } from './index.js'

/** Two devices of one tenant under a fresh CA, each with its guard. */
function site() {
  const root = CertificateAuthority.createRoot({ commonName: 'Bench Root', organisation: 'Bench' })
  const siteCert = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Bench Site', organisation: 'Bench' })
  const siteCa = CertificateAuthority.load(siteCert.certificatePem, siteCert.privateKey)
  const device = (deviceId: string): DeviceCredential => {
    const key = generateP256Key()
    const cert = siteCa.issue(buildCsr(key, deviceId, 'bench'), { deviceId, tenant: 'bench' })
    return { certificateChainPem: cert.pem + siteCert.certificatePem, signer: Signer.fromPkcs8(key) }
  }
  const a = device('tablet-a')
  const b = device('tablet-b')
  const trustPem = root.certificatePem
  const audit = { append: () => undefined }
  return {
    a,
    b,
    trust: TrustStore.fromPem(trustPem),
    atA: new SignalingGuard({ identity: a, trustPem, audit, maxNonces: 1 << 20 }),
    atB: new SignalingGuard({ identity: b, trustPem, audit, maxNonces: 1 << 20 }),
  }
}

/** The signaling hooks of one verified open (as the peer connector runs them). */
function signedHooks(s: ReturnType<typeof site>): () => PairInit {
  const revocations = new RevocationSet()
  return () => {
    let digest = ''
    return {
      sendOffer: (sdp) => {
        const offer = signOffer({ from: 'tablet-a', to: 'tablet-b', tenant: 'bench', sdp, epoch: 0 }, s.a)
        digest = verifyObject(offer, 'offer', s.trust, revocations).digest
        return offer.toString('latin1')
      },
      receiveOffer: (sent) => s.atB.verifyOffer(Buffer.from(sent, 'latin1')).offer.sdp,
      sendAnswer: (sdp) => signAnswer({ from: 'tablet-b', to: 'tablet-a', tenant: 'bench', sdp, epoch: 0, offerDigest: digest }, s.b).toString('latin1'),
      receiveAnswer: (sent) => s.atA.verifyAnswer(Buffer.from(sent, 'latin1'), digest, { expectedFrom: 'tablet-b' }).answer.sdp,
    }
  }
}

/** One open (both ends), then closed; a libdatachannel connection failure is retried and its time counts. */
function opener(stack: WebRtcStack, hooks: () => PairInit = () => ({})): Operation {
  return async () => {
    const pair = await openChannelPair(stack, stack, { retries: 3, ...hooks() })
    pair.close()
    return 1
  }
}

export const PEERING_CASES: Case[] = [
  {
    op: 'datachannel-open',
    baseline: 'node-datachannel, same open with no signing or verification',
    target: 0.8,
    setup: async () => {
      const stack = createStack()
      const ztmesh = opener(stack, signedHooks(site()))
      const baseline = opener(stack)
      await ztmesh()
      await baseline()
      return { ztmesh, baseline }
    },
  },
]
