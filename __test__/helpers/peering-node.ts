// A ztmesh node composed in-process for the peering tests: the WebRTC connector and a local API
// (mutual TLS, node:http) whose POST /offer goes to connector.handleOffer with the link's peer,
// refusals answered with refusalStatus, as the node daemon does.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'

import { createSecureServer, type SecureStream } from '../../src/channels/index.js'
import { ZtError } from '../../src/errors.js'
import { createPolicyDecisionPoint } from '../../src/policy/index.js'
import { RevocationSet } from '../../src/primitives/pki/index.js'
import { WebRtcConnector, type PeerAddress, type PeeringContext, type WebRtcConnectorInit } from '../../src/peering/index.js'
import { refusalStatus } from '../../src/signaling/index.js'
import { createStack } from '../../src/webrtc/index.js'
import { memoryAudit, trustPem, type TestDevice } from './hub.js'

export type Event = { event: string; [field: string]: unknown }

export interface Node {
  device: TestDevice
  connector: WebRtcConnector
  events: Event[]
  audit: ReturnType<typeof memoryAudit>
  api: PeerAddress
  /** Waits for the first event (from the start) matching. */
  next(match: (e: Event) => boolean, what?: string): Promise<Event>
  setRevocations(revocations: RevocationSet): void
  stop(): Promise<void>
}

/**
 * A node: the connector and a local API (mutual TLS, node:http) whose POST /offer goes to
 * `connector.handleOffer` with the link's peer, refusals answered with `refusalStatus`, as the
 * node daemon does. `linkTenants`: the tenants the local API admits (default its own).
 */
export async function startPeeringNode(d: TestDevice, config: Partial<PeeringContext['config']> = {}, init: { manual?: Record<string, PeerAddress>; linkTenants?: string[]; pathTimeoutMs?: number; published?: { current: RevocationSet }; mdns?: WebRtcConnectorInit['mdns'] } = {}): Promise<Node> {
  const events: Event[] = []
  const audit = memoryAudit()
  const connector = new WebRtcConnector({ stack: createStack(), pathTimeoutMs: init.pathTimeoutMs ?? 8_000, ...(init.manual !== undefined && { manual: init.manual }), ...(init.mdns !== undefined && { mdns: init.mdns }) })
  const http = createServer((req, res) => void answerOffer(connector, req, res, events))
  const access = init.linkTenants === undefined ? undefined : createPolicyDecisionPoint({ policy: { version: 1, tenant: d.tenant, rules: [{ id: 'tenants', effect: 'allow', actions: ['link.accept'], peerTenants: init.linkTenants }] }, audit })
  const api = createSecureServer({ identity: d.identity, trustPem, service: 'local-api', ...(access !== undefined && { access }) }, (link) => http.emit('connection', link))
  const address = await api.listen(0, '127.0.0.1')
  let revocations = new RevocationSet()
  const waiters: Array<{ match: (e: Event) => boolean; resolve: (e: Event) => void }> = []
  const node: Node = {
    device: d,
    connector,
    events,
    audit,
    api: { host: '127.0.0.1', port: address.port },
    next: (match, what = 'an event') =>
      new Promise((resolve, reject) => {
        const seen = events.find(match)
        if (seen !== undefined) return resolve(seen)
        const timer = setTimeout(() => reject(new Error(`${d.deviceId}: no ${what} in ${JSON.stringify(events)}`)), 20_000)
        waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) })
      }),
    stop: async () => {
      await connector.stop()
      await api.close()
    },
    setRevocations: (next) => {
      revocations = next
      api.setRevocations(next)
      connector.setRevocations(next)
    },
  }
  await connector.start({
    identity: d.identity,
    trustPem,
    revocations,
    audit,
    config: { discovery: { mdns: false, bootstrap: [] }, ...config },
    localApi: node.api,
    emit: (event) => {
      events.push(event)
      for (const waiter of waiters.filter((w) => w.match(event))) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(event)
      }
    },
    // What the node's CRL fetch does: the CA's published revocations applied everywhere.
    refreshRevocations: async () => node.setRevocations(init.published?.current ?? revocations),
  })
  return node
}

async function answerOffer(connector: WebRtcConnector, req: IncomingMessage, res: ServerResponse, events: Event[]): Promise<void> {
  const peer = (req.socket as unknown as SecureStream).peer
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  try {
    const answer = await connector.handleOffer(Buffer.concat(chunks), peer)
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(answer)
  } catch (error) {
    const code = error instanceof ZtError ? error.code : 'ERR_INTERNAL'
    events.push({ event: 'rejected', peer: peer.deviceId, code })
    res.writeHead(refusalStatus(code), { 'content-type': 'application/json' }).end(JSON.stringify({ code, message: (error as Error).message }))
  }
}

