/** Channel benchmark cases: bulk data through one secure link, both ends in this process. */

import { createPrivateKey } from 'node:crypto'
import { Duplex } from 'node:stream'
import * as tls from 'node:tls'

import { Mux, type MuxStream } from '../channels/mux.js'
import { NoiseLinkContext, secureNoise, wrapNoise } from '../channels/noise-link.js'
import { secureTls, TlsContext } from '../channels/tls.js'
import { noisePreferredCipher } from '../primitives/noise/index.js'
import { buildCsr, CertificateAuthority, generateP256Key, RevocationSet, Signer, TrustStore, type DeviceCredential } from '../primitives/pki/index.js'
import type { Case } from './index.js'
import { libp2pNoiseConnection, libp2pNoiseNodes } from './libp2p-noise.js'

const MIB = 1024 * 1024
const CHUNK = 64 * 1024

/** Two in-memory duplexes wired to each other: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = []
  for (let i = 0; i < 2; i++) {
    sides.push(
      new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, callback) {
          sides[1 - i]!.push(chunk)
          callback()
        },
      }),
    )
  }
  return [sides[0]!, sides[1]!]
}

/** Writes one MiB into `from` in 64 KiB chunks and resolves once `to` has delivered it. */
async function sendMib(from: Duplex, to: Duplex): Promise<number> {
  const payload = Buffer.alloc(CHUNK, 1)
  const done = receive(to, MIB)
  for (let sent = 0; sent < MIB; sent += CHUNK) from.write(payload)
  await done
  return 1
}

/** Resolves once `stream` has delivered `bytes` more bytes. */
function receive(stream: Duplex, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    let got = 0
    const onData = (chunk: Buffer) => {
      got += chunk.length
      if (got >= bytes) {
        stream.off('data', onData)
        resolve()
      }
    }
    stream.on('data', onData)
  })
}

export const CHANNEL_CASES: Case[] = [
  noiseBulkCase('noise-link-bulk', 'auto', 5),
  noiseBulkCase('noise-link-bulk-chachapoly', 'ChaChaPoly', null),
  {
    op: 'noise-link-handshake',
    baseline:
      '@chainsafe/libp2p-noise 17 secureOutbound + secureInbound (XX, each side signs its Ed25519 identity over its static key and checks the other), both ends, in memory (ztmesh: hybrid XX + ML-KEM-768, certificate chains decided by verify_peer with verdicts cached as in a long-running server, ECDSA P-256 bindings checked every time, READY)',
    target: 10,
    setup: async () => {
      const d = benchDevices()
      const [trust, revocations] = [TrustStore.fromPem(d.trustPem), new RevocationSet()]
      // One context per side, as an endpoint keeps one for all its links.
      const client = new NoiseLinkContext({ identity: d.client.identity, trust, revocations })
      const server = new NoiseLinkContext({ identity: d.server.identity, trust, revocations })
      const libp2p = await libp2pNoiseNodes()
      return {
        ztmesh: async () => {
          const [left, right] = duplexPair()
          const [c, s] = await Promise.all([secureNoise(left, client, 'initiator'), secureNoise(right, server, 'responder')])
          if (c.peer.deviceId !== 'server' || s.peer.deviceId !== 'client') throw new Error('bench: wrong peers')
          c.destroy()
          s.destroy()
          return 1
        },
        baseline: async () => {
          const { initiator, responder } = await libp2p.secure()
          const close = (end: { connection: unknown }) => (end.connection as { abort(error: Error): void }).abort(new Error('done'))
          close(initiator)
          close(responder)
          return 1
        },
      }
    },
  },
]

/**
 * Bulk data through one Noise link against libp2p's. `auto` lets the link pick its cipher as it
 * does in use (AES-256-GCM on CPUs with AES instructions); the ChaChaPoly row is the same cipher
 * as libp2p-noise's.
 */
function noiseBulkCase(op: string, cipher: 'auto' | 'ChaChaPoly', target: number | null): Case {
  const ours = cipher === 'auto' ? `ztmesh: ${noisePreferredCipher()} (auto on this CPU)` : 'ztmesh: ChaChaPoly too'
  return {
    op,
    baseline: `@chainsafe/libp2p-noise 17 secured connection, ChaChaPoly (its message stream, framing and ciphers), in memory (per MiB; ${ours})`,
    target,
    setup: async () => {
      const d = benchDevices()
      const trust = TrustStore.fromPem(d.trustPem)
      const [left, right] = duplexPair()
      const revocations = new RevocationSet()
      const [client, server] = await Promise.all([
        wrapNoise(left, { role: 'initiator', identity: d.client.identity, trust, revocations, cipher }),
        wrapNoise(right, { role: 'responder', identity: d.server.identity, trust, revocations }),
      ])
      const payload = Buffer.alloc(CHUNK, 1)
      const libp2p = await libp2pNoiseConnection()
      const libp2pReceived = (bytes: number) =>
        new Promise<void>((resolve) => {
          let got = 0
          const onMessage = (event: { data: { byteLength: number } }) => {
            got += event.data.byteLength
            if (got >= bytes) {
              libp2p.responder.removeEventListener('message', onMessage)
              resolve()
            }
          }
          libp2p.responder.addEventListener('message', onMessage)
        })
      return {
        ztmesh: async () => {
          const done = receive(server, MIB)
          for (let sent = 0; sent < MIB; sent += CHUNK) client.write(payload)
          await done
          return 1
        },
        baseline: async () => {
          const done = libp2pReceived(MIB)
          for (let sent = 0; sent < MIB; sent += CHUNK) libp2p.initiator.send(payload)
          await done
          return 1
        },
      }
    },
  }
}

/** A root, a site CA and two devices, each as a credential (TLS, Noise links, endpoints) and PEM for node:tls. */
export function benchDevices() {
  const root = CertificateAuthority.createRoot({ commonName: 'Bench Root', organisation: 'Bench' })
  const site = CertificateAuthority.load(root.certificatePem, root.privateKey).createSiteCa({ commonName: 'Bench Site', organisation: 'Bench' })
  const siteCa = CertificateAuthority.load(site.certificatePem, site.privateKey)
  const make = (deviceId: string) => {
    const key = generateP256Key()
    const cert = siteCa.issue(buildCsr(key, deviceId, 'bench'), { deviceId, tenant: 'bench' })
    const keyPem = createPrivateKey({ key, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string
    const chain = cert.pem + site.certificatePem
    const identity: DeviceCredential = { certificateChainPem: chain, signer: Signer.fromPkcs8(key) }
    return { identity, certPem: chain, keyPem }
  }
  return { trustPem: root.certificatePem, server: make('server'), client: make('client') }
}

/** ztmesh TLS contexts for the two bench devices. */
function tlsContexts(d: ReturnType<typeof benchDevices>, resumption = true) {
  return {
    serverTls: new TlsContext('server', { identity: d.server.identity, trustPem: d.trustPem, resumption }),
    clientTls: new TlsContext('client', { identity: d.client.identity, trustPem: d.trustPem, resumption }),
  }
}

/** node:tls both ends over one in-memory pipe; resolves when both are connected. */
function nodeTlsPair(d: ReturnType<typeof benchDevices>, session?: Buffer): Promise<{ client: tls.TLSSocket; server: tls.TLSSocket }> {
  const [left, right] = duplexPair()
  const common = { ca: d.trustPem, ALPNProtocols: ['ztmesh/1'], minVersion: 'TLSv1.3' as const }
  const server = new tls.TLSSocket(right, { isServer: true, requestCert: true, rejectUnauthorized: true, cert: d.server.certPem, key: d.server.keyPem, ...common, secureContext: serverContext(d) })
  const client = tls.connect({ socket: left, cert: d.client.certPem, key: d.client.keyPem, checkServerIdentity: () => undefined, ...(session !== undefined && { session }), ...common })
  return Promise.all([
    new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject)),
    new Promise<void>((resolve, reject) => server.once('secure', resolve).once('error', reject)),
  ]).then(() => ({ client, server }))
}

const serverContexts = new WeakMap<object, tls.SecureContext>()
function serverContext(d: ReturnType<typeof benchDevices>): tls.SecureContext {
  let context = serverContexts.get(d)
  if (context === undefined) {
    context = tls.createSecureContext({ cert: d.server.certPem, key: d.server.keyPem, ca: d.trustPem, minVersion: 'TLSv1.3', sessionIdContext: 'ztmesh-bench' })
    serverContexts.set(d, context)
  }
  return context
}

CHANNEL_CASES.push({
  op: 'mtls-handshake',
  baseline: 'node:tls mutual TLS 1.3 handshake, both ends, same pipe',
  target: 3,
  setup: async () => {
    const d = benchDevices()
    const { serverTls, clientTls } = tlsContexts(d, false)
    return {
      ztmesh: async () => {
        const [left, right] = duplexPair()
        const [c, s] = await Promise.all([secureTls(left, clientTls), secureTls(right, serverTls)])
        c.destroy()
        s.destroy()
        return 1
      },
      baseline: async () => {
        const { client, server } = await nodeTlsPair(d)
        client.destroy()
        server.destroy()
        return 1
      },
    }
  },
})

CHANNEL_CASES.push({
  op: 'mtls-resumed',
  baseline: 'node:tls resumed mutual TLS 1.3 handshake (session ticket), both ends, same pipe',
  target: 3,
  setup: async () => {
    const d = benchDevices()
    const { serverTls, clientTls } = tlsContexts(d)
    const ours = async () => {
      const [left, right] = duplexPair()
      const [c, s] = await Promise.all([secureTls(left, clientTls), secureTls(right, serverTls)])
      // A ticket arrives after the handshake: one round of data lets it land before closing.
      const echoed = new Promise((resolve) => c.once('data', resolve))
      s.once('data', (chunk: Buffer) => s.write(chunk))
      c.write('x')
      await echoed
      const resumed = (c as unknown as { resumed: boolean }).resumed
      c.destroy()
      s.destroy()
      return resumed
    }
    await ours() // the first, full handshake stores a ticket
    if (!(await ours())) throw new Error('bench: ztmesh did not resume')
    let session: Buffer | undefined
    const theirs = async () => {
      const { client, server } = await nodeTlsPair(d, session)
      const echoed = new Promise((resolve) => client.once('data', resolve))
      server.once('data', (chunk: Buffer) => server.write(chunk))
      // Tickets come right after the handshake, ahead of the echoed byte; keep the newest.
      client.on('session', (ticket: Buffer) => (session = ticket))
      client.write('x')
      await echoed
      const resumed = client.isSessionReused()
      client.destroy()
      server.destroy()
      return resumed
    }
    await theirs()
    if (!(await theirs())) throw new Error('bench: node:tls did not resume')
    return {
      ztmesh: async () => {
        if (!(await ours())) throw new Error('bench: ztmesh did not resume')
        return 1
      },
      baseline: async () => {
        if (!(await theirs())) throw new Error('bench: node:tls did not resume')
        return 1
      },
    }
  },
})

CHANNEL_CASES.push({
  op: 'mtls-bulk',
  baseline: 'node:tls, one mutual TLS 1.3 connection, same pipe (per MiB)',
  target: 1,
  setup: async () => {
    const d = benchDevices()
    const { serverTls, clientTls } = tlsContexts(d)
    const [left, right] = duplexPair()
    const [ourClient, ourServer] = await Promise.all([secureTls(left, clientTls), secureTls(right, serverTls)])
    const { client: theirClient, server: theirServer } = await nodeTlsPair(d)
    return { ztmesh: () => sendMib(ourClient, ourServer), baseline: () => sendMib(theirClient, theirServer) }
  },
})

CHANNEL_CASES.push({
  op: 'mux-throughput',
  baseline: 'the raw Noise link the mux runs over, same cipher, in memory (per MiB; ratio 1 = the mux costs nothing)',
  target: 0.8,
  setup: async () => {
    const d = benchDevices()
    const trust = TrustStore.fromPem(d.trustPem)
    const revocations = new RevocationSet()
    const link = async () => {
      const [left, right] = duplexPair()
      return Promise.all([
        wrapNoise(left, { role: 'initiator', identity: d.client.identity, trust, revocations }),
        wrapNoise(right, { role: 'responder', identity: d.server.identity, trust, revocations }),
      ])
    }
    const [rawClient, rawServer] = await link()
    const [muxClient, muxServer] = await link()
    const server = new Mux(muxServer, { role: 'responder' })
    const accepted = new Promise<MuxStream>((resolve) => server.handle('/bench/bulk/1', resolve))
    const sender = await new Mux(muxClient, { role: 'initiator' }).open('/bench/bulk/1')
    const receiver = await accepted
    return { ztmesh: () => sendMib(sender, receiver), baseline: () => sendMib(rawClient, rawServer) }
  },
})
