/** PKI benchmark cases: peer verification and certificate issuance. */

import { createHash, createSign, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'

import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, TrustStore, verifyPeer, type RevokedEntry } from '../primitives/pki/index.js'
import type { Case } from './index.js'

/** A root, a site CA, one device certificate and 1,000 revoked serials and keys. */
function fixture() {
  const root = CertificateAuthority.createRoot({ commonName: 'Bench Root', organisation: 'Bench' })
  const rootCa = CertificateAuthority.load(root.certificatePem, root.privateKey)
  const site = rootCa.createSiteCa({ commonName: 'Bench Site', organisation: 'Bench' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const csr = buildCsr(generateP256Key(), 'tablet-7', 'hotel-1')
  const leaf = siteCa.issue(csr, { deviceId: 'tablet-7', tenant: 'hotel-1' })
  const now = Date.now()
  const entries: RevokedEntry[] = Array.from({ length: 1000 }, () => ({
    serial: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    spkiSha256: randomBytes(32).toString('hex'),
    revokedAtMs: now,
    reason: 1,
  }))
  const trust = TrustStore.fromPem(root.certificatePem)
  const revocations = new RevocationSet()
  revocations.addRecord(siteCa.signRevocationRecord(1, now, entries), site.certificatePem, trust)
  return { root, site, siteCa, csr, leaf, trust, revocations, entries }
}

/**
 * What the hand-written baselines do to a device's chain (PEM: leaf, then site CA) with
 * node:crypto: parse both, verify each signature up to `root`, the CA flags, the validity dates
 * (5 minutes of skew) and revocation by serial and by key. Returns the leaf and its subject's
 * fields; throws when a check fails.
 */
export function checkChainByHand(chainPem: string, root: X509Certificate, revokedSerials: ReadonlySet<string>, revokedKeys: ReadonlySet<string | undefined>): { leaf: X509Certificate; subject: Record<string, string | undefined> } {
  const [leafPem, sitePem] = chainPem.split(/(?<=-----END CERTIFICATE-----\n)/)
  const leaf = new X509Certificate(leafPem!)
  const site = new X509Certificate(sitePem!)
  const now = Date.now()
  const valid = (c: X509Certificate) => now >= new Date(c.validFrom).getTime() - 300_000 && now <= new Date(c.validTo).getTime() + 300_000
  if (!site.verify(root.publicKey) || !site.checkIssued(root) || !site.ca) throw new Error('bench: site CA')
  if (!leaf.verify(site.publicKey) || !leaf.checkIssued(site) || leaf.ca) throw new Error('bench: leaf')
  if (!valid(leaf) || !valid(site) || !valid(root)) throw new Error('bench: validity')
  const spki = createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('hex')
  const siteSpki = createHash('sha256').update(site.publicKey.export({ type: 'spki', format: 'der' })).digest('hex')
  if (revokedSerials.has(leaf.serialNumber) || revokedSerials.has(site.serialNumber) || revokedKeys.has(spki) || revokedKeys.has(siteSpki)) throw new Error('bench: revoked')
  const subject: Record<string, string | undefined> = Object.fromEntries(leaf.subject.split('\n').map((line) => line.split('=')))
  return { leaf, subject }
}

export const PKI_CASES: Case[] = [
  {
    op: 'verify-peer',
    baseline: 'node:crypto X509Certificate.verify + the same checks by hand',
    target: 3,
    setup: async () => {
      const f = fixture()
      const chain = f.leaf.pem + f.site.certificatePem
      const rootX509 = new X509Certificate(f.root.certificatePem)
      const revokedSerials = new Set(f.entries.map((e) => e.serial.toUpperCase()))
      const revokedKeys = new Set(f.entries.map((e) => e.spkiSha256))
      const policy = { expectedTenant: 'hotel-1', expectedDevice: 'tablet-7', usage: 'client' as const }
      return {
        ztmesh: () => {
          verifyPeer(chain, f.trust, f.revocations, policy)
          return 1
        },
        baseline: () => {
          const { leaf, subject } = checkChainByHand(chain, rootX509, revokedSerials, revokedKeys)
          if (subject.CN !== 'tablet-7' || subject.OU !== 'hotel-1' || leaf.subjectAltName !== 'URI:ztmesh://hotel-1/tablet-7') throw new Error('bench: identity')
          if (!(leaf.keyUsage ?? []).includes('1.3.6.1.5.5.7.3.2')) throw new Error('bench: usage')
          return 1
        },
      }
    },
  },
  {
    op: 'ca-issue',
    baseline: 'node:crypto ECDSA P-256 sign alone (Node cannot issue certificates)',
    target: null,
    setup: async () => {
      const f = fixture()
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      const tbs = randomBytes(450)
      return {
        ztmesh: () => {
          f.siteCa.issue(f.csr, { deviceId: 'tablet-7', tenant: 'hotel-1' })
          return 1
        },
        baseline: () => {
          createSign('sha256').update(tbs).sign(privateKey)
          return 1
        },
      }
    },
  },
]
