/** Identities, revocations, policies and a Redis server for the hub's tests and benchmark. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { buildCsr, CertificateAuthority, createPolicyDecisionPoint, generateP256Key, RevocationSet, Signer, TrustStore, type AuditEvent, type DeviceCredential } from '../../src/index.js'

const root = CertificateAuthority.createRoot({ commonName: 'Hub Root', organisation: 'Acme' })
const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Hub Site', organisation: 'Acme' })
const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
export const trustPem = root.certificatePem
export const siteChainPem = site.certificatePem

export interface TestDevice {
  deviceId: string
  tenant: string
  identity: DeviceCredential
  cert: { serial: string; spkiSha256: string; pem: string }
  privateKey: Buffer
}

/** A device certificate of `tenant` issued by the in-memory site CA. */
export function device(deviceId: string, tenant = 'hotel-1', roles?: string[]): TestDevice {
  const privateKey = generateP256Key()
  const cert = siteCa.issue(buildCsr(privateKey, deviceId, tenant), { deviceId, tenant, ...(roles !== undefined && { roles }) })
  return { deviceId, tenant, identity: { certificateChainPem: cert.pem + site.certificatePem, signer: Signer.fromPkcs8(privateKey) }, cert, privateKey: Buffer.from(privateKey) }
}

let recordNumber = 0

/** Revocations signed by the site CA naming the devices, and the CRL PEM saying the same. */
export function revoking(...revoked: TestDevice[]): { revocations: RevocationSet; crlPem: string } {
  const revocations = new RevocationSet()
  const now = Date.now()
  const entries = revoked.map((d) => ({ serial: d.cert.serial, spkiSha256: d.cert.spkiSha256, revokedAtMs: now, reason: 1 }))
  revocations.addRecord(siteCa.signRevocationRecord(++recordNumber, now, entries), site.certificatePem, TrustStore.fromPem(trustPem))
  const crl = siteCa.issueCrl(recordNumber, entries, now, now + 86_400_000)
  return { revocations, crlPem: crl.pem }
}

/** The decision point of a hub serving several tenants (its own first). */
export function hubAccess(tenants: string[], audit: { append(e: AuditEvent): unknown } = { append: () => undefined }) {
  return createPolicyDecisionPoint({
    policy: { version: 1, tenant: tenants[0], rules: [{ id: 'hub-tenants', effect: 'allow', actions: ['link.accept', 'link.connect'], peerTenants: tenants }] },
    audit,
  })
}

/** An audit sink that keeps what it is given. */
export function memoryAudit() {
  const events: AuditEvent[] = []
  return { events, append: (e: AuditEvent) => void events.push(e) }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Whether redis-server can be run here (undefined) or why not. */
export function redisMissing(): string | undefined {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'redis-server is not installed'
}

/** A Redis server on 127.0.0.1 with persistence off; `stop()` shuts it down (nosave) and waits. */
export async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ztmesh-redis-'))
  const child: ChildProcess = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)))
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' })
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
